#![no_main]
//! Target `xml_answer`: see docs/fuzzing.md; the entry point is shared with the
//! stable replay of the corpus.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    passerelle_adapters::fuzzing::xml_answer(data);
});
