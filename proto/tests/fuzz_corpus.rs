//! The fuzz corpus of the API requests, replayed on stable
//! (docs/fuzzing.md).

#[path = "../../fuzz/replay.rs"]
mod replay;

#[test]
fn api_request_corpus() {
    assert!(replay::replay("api_request", passerelle_proto::fuzzing::api_request) > 0);
}

#[test]
fn json_request_corpus() {
    assert!(replay::replay("json_request", passerelle_proto::fuzzing::json_request) > 0);
}
