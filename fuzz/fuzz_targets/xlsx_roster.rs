#![no_main]
//! Target `xlsx_roster`: see docs/fuzzing.md; the entry point is shared with
//! the stable replay of the corpus.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    passerelle_files::fuzzing::xlsx_roster(data);
});
