#![no_main]
//! Target `json_request`: see docs/fuzzing.md; the entry point is shared with the
//! stable replay of the corpus.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    passerelle_proto::fuzzing::json_request(data);
});
