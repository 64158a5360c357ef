//! The fuzz corpus of the API requests, replayed on stable
//! (docs/fuzzing.md).

#[path = "../../fuzz/replay.rs"]
mod replay;

#[test]
fn api_request_corpus() {
    assert!(replay::replay("api_request", passerelle_proto::fuzzing::api_request) > 0);
}
