//! The fuzz corpora of the partner answers, replayed on stable
//! (docs/fuzzing.md).

#[path = "../../fuzz/replay.rs"]
mod replay;

use passerelle_adapters::fuzzing;

#[test]
fn xml_answer_corpus() {
    assert!(replay::replay("xml_answer", fuzzing::xml_answer) > 0);
}

#[test]
fn fhir_claim_response_corpus() {
    assert!(replay::replay("fhir_claim_response", fuzzing::fhir_claim_response) > 0);
}

#[test]
fn fhir_eligibility_response_corpus() {
    assert!(
        replay::replay(
            "fhir_eligibility_response",
            fuzzing::fhir_eligibility_response
        ) > 0
    );
}

#[test]
fn fhir_claim_corpus() {
    assert!(replay::replay("fhir_claim", fuzzing::fhir_claim) > 0);
}
