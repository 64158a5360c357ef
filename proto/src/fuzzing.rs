//! The entry point of the fuzz target `api_request` (`fuzz/`, see
//! docs/fuzzing.md), also replayed on stable over every corpus file
//! (`proto/tests/fuzz_corpus.rs`): protobuf bytes to a domain request or
//! every wrong field, never a panic.

use passerelle_domain::validate::{MAX_LINES, check_claim, check_line};
use prost::Message;

use crate::parse;
use crate::scheme::v1 as pb;

/// The first byte chooses the request (modulo 4: 0 `CoordinateClaimRequest`,
/// 1 `CheckEligibilityRequest`, 2 `UpsertMembersRequest`, 3
/// `PutProductsRequest`); the rest is its protobuf encoding. A request that
/// parses re-checks clean.
pub fn api_request(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    if kind % 4 == 2 {
        return members(bytes);
    }
    if kind % 4 == 3 {
        return products(bytes);
    }
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

/// Roster members: a member read without a wrong field has valid ids, dates
/// in order and product periods that do not overlap.
fn members(bytes: &[u8]) {
    let Ok(r) = crate::roster::v1::UpsertMembersRequest::decode(bytes) else {
        return;
    };
    for (i, m) in r.members.into_iter().enumerate() {
        let mut v = parse::Violations::new();
        let member = parse::member(&mut v, i, &r.mutuelle_id, m, &|s| s == "CNSS");
        let Some(member) = member.filter(|_| v.0.is_empty()) else {
            continue;
        };
        let mut again = Vec::new();
        for (field, id) in [
            ("scheme_id", &member.scheme_id),
            ("beneficiary_id", &member.beneficiary_id),
            ("member_number", &member.member_number),
        ] {
            passerelle_domain::validate::check_id(field, id, &mut again);
        }
        assert!(again.is_empty(), "a read member re-checks clean: {again:?}");
        assert_eq!(member.scheme_id, "CNSS", "only a known scheme");
        let mut periods: Vec<_> = member.products.iter().collect();
        periods.sort_by_key(|p| p.start);
        for p in &periods {
            assert!(
                p.end.is_none_or(|e| e >= p.start),
                "a period ends after it starts"
            );
        }
        for w in periods.windows(2) {
            assert!(
                w[0].end.is_some_and(|e| e < w[1].start),
                "periods do not overlap"
            );
        }
    }
}

/// Products: a product read without a wrong field passes the domain's own
/// check (every identifier, amount and rate bounded).
fn products(bytes: &[u8]) {
    let Ok(r) = crate::product::v1::PutProductsRequest::decode(bytes) else {
        return;
    };
    for (i, p) in r.products.into_iter().enumerate() {
        let mut v = parse::Violations::new();
        let product = parse::product(&mut v, i, p);
        if v.0.is_empty() {
            assert!(product.check().is_empty(), "a read product re-checks clean");
        }
    }
}

/// The entry point of the fuzz target `json_request`: a JSON-door body.
/// The first byte picks a unary method of the broker's services (modulo
/// their number, in [`crate::json::BROKER_SERVICES`] order); the rest is
/// the JSON body. Never a panic; a refusal names a field (or `body`); a
/// body that reads is a valid protobuf of the method's input, and its
/// canonical JSON reads back to the same bytes.
pub fn json_request(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let methods = crate::json::unary_methods();
    let method = &methods[usize::from(pick) % methods.len()];
    let input = method.input();
    match crate::json::json_to_proto(&input, body) {
        Ok(bytes) => {
            let json = crate::json::proto_to_json(&input, &bytes)
                .expect("what was read writes back as JSON");
            let again = crate::json::json_to_proto(&input, &json)
                .expect("the canonical JSON of a message reads back");
            assert_eq!(again, bytes, "canonical JSON round-trips");
        }
        Err(v) => assert!(!v.field.is_empty(), "a refusal names a field"),
    }
}
