//! The entry point of the fuzz target `api_request` (`fuzz/`, see
//! docs/fuzzing.md), also replayed on stable over every corpus file
//! (`proto/tests/fuzz_corpus.rs`): protobuf bytes to a domain request or
//! every wrong field, never a panic.

use passerelle_domain::validate::{MAX_LINES, check_claim, check_line};
use prost::Message;

use crate::parse;
use crate::scheme::v1 as pb;

/// The first byte chooses the request (even: `CoordinateClaimRequest`, odd:
/// `CheckEligibilityRequest`); the rest is its protobuf encoding. A request
/// that parses re-checks clean.
pub fn api_request(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    if kind % 2 == 0 {
        let Ok(r) = pb::CoordinateClaimRequest::decode(bytes) else {
            return;
        };
        match parse::claim(r) {
            Ok(c) => {
                let mut again = Vec::new();
                check_claim(&c, &mut again);
                assert!(
                    again.is_empty(),
                    "a parsed claim re-checks clean: {again:?}"
                );
                let _ = c.canonical_hash();
            }
            Err(v) => assert!(!v.is_empty(), "an error names a field"),
        }
    } else {
        let Ok(r) = pb::CheckEligibilityRequest::decode(bytes) else {
            return;
        };
        match parse::eligibility(r) {
            Ok(e) => {
                assert!(e.lines.len() <= MAX_LINES);
                for (i, l) in e.lines.iter().enumerate() {
                    let mut again = Vec::new();
                    check_line(&format!("planned_lines[{i}]"), l, &mut again);
                    assert!(again.is_empty(), "a parsed line re-checks clean: {again:?}");
                }
            }
            Err(v) => assert!(!v.is_empty(), "an error names a field"),
        }
    }
}
