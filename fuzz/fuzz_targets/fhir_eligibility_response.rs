#![no_main]
//! Target `fhir_eligibility_response`: see docs/fuzzing.md; the entry point is shared with the
//! stable replay of the corpus.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    passerelle_adapters::fuzzing::fhir_eligibility_response(data);
});
