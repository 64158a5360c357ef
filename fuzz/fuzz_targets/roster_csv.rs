#![no_main]
//! Target `roster_csv`: see docs/fuzzing.md; the entry point is shared with the
//! stable replay of the corpus.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    passerelle_files::fuzzing::roster_csv(data);
});
