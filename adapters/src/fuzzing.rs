//! The entry points of the fuzz targets of the partner answers (`fuzz/`, see
//! docs/fuzzing.md), one per target, also replayed on stable over every
//! corpus file (`adapters/tests/fuzz_corpus.rs`): bytes to a domain answer or
//! a clean error, never a panic. Each asserts what an accepted answer must
//! satisfy, so a fuzzer finds wrong answers as well as crashes.

use std::collections::HashMap;

use passerelle_domain::money::minor_unit_digits;
use passerelle_domain::validate::check_answer;
use passerelle_domain::{CareCategory, Claim, ClaimLine, LineShare, Payee, SchemeOutcome, date};
use serde_json::Value;

use crate::codes::CodeMaps;
use crate::fhir::{self, Dialect};
use crate::xml::{self, XmlConfig};

/// The claim every answer is read against: three lines in XOF (a covered
/// consultation, a covered lab line, a line the scheme refused) whose acts
/// the kit's XML partners map, and a fourth whose act they do not.
pub fn claim() -> Claim {
    let line = |act: &str, category, billed, tariff_base, scheme_share, outcome| ClaimLine {
        act_code: act.to_string(),
        category,
        quantity: 1,
        billed,
        tariff_base,
        scheme_share,
        outcome,
        scheme_reason: String::new(),
    };
    Claim {
        scheme_id: "CNSS".into(),
        claim_id: "FUZZ-1".into(),
        provider_id: "CHU-1".into(),
        invoice_number: "F-1".into(),
        payee: Payee::Provider,
        beneficiary_id: "TG-1".into(),
        beneficiary_category: String::new(),
        mutuelle_id: None,
        member_number: Some("M-1".into()),
        date_of_care: date::parse("2026-11-20").expect("a date"),
        stay: None,
        diagnoses: Vec::new(),
        currency: "XOF".into(),
        lines: vec![
            line(
                "C-CONS",
                CareCategory::Consultation,
                10_000,
                8_000,
                5_600,
                SchemeOutcome::Covered,
            ),
            line(
                "L-LAB",
                CareCategory::Lab,
                6_000,
                6_000,
                4_200,
                SchemeOutcome::Covered,
            ),
            line(
                "L-LAB",
                CareCategory::Lab,
                3_000,
                3_000,
                0,
                SchemeOutcome::Refused,
            ),
            line(
                "P-NONE",
                CareCategory::Pharmacy,
                2_000,
                2_000,
                1_000,
                SchemeOutcome::Covered,
            ),
        ],
        prior_authorization: None,
    }
}

/// What the broker requires of every answer it stores: checked by
/// `check_answer`, asserted here so that a check that let a bad answer
/// through is a finding too.
fn assert_checked(claim: &Claim, shares: &[LineShare]) {
    assert_eq!(shares.len(), claim.lines.len(), "one share per line");
    for (i, (s, l)) in shares.iter().zip(&claim.lines).enumerate() {
        assert_eq!(s.sequence as usize, i + 1, "shares in line order");
        assert!(s.mutuelle_share >= 0, "no negative share");
        assert!(s.mutuelle_share <= l.remainder(), "M <= R");
        if l.outcome == SchemeOutcome::Refused {
            assert_eq!(s.mutuelle_share, 0, "M = 0 on a refused line");
        }
    }
}

/// The kit's two XML partners (adapters/kit): plain XML with spaces grouping
/// thousands, and SOAP with decimal commas.
fn xml_partners() -> &'static [XmlConfig] {
    static PARTNERS: std::sync::OnceLock<Vec<XmlConfig>> = std::sync::OnceLock::new();
    PARTNERS.get_or_init(|| {
        [
            include_str!("../kit/xml-a.toml"),
            include_str!("../kit/xml-b.toml"),
        ]
        .iter()
        .map(|t| {
            let t = t
                .replace("{URL}", "http://127.0.0.1:9")
                .replace("{SECRET}", "/nonexistent");
            toml::from_str(&t).expect("the kit's configs parse")
        })
        .collect()
    })
}

/// Target `xml_answer`: a partner's XML answer, read as each kit partner's
/// adjudication answer (then checked against [`claim`]) and as its
/// eligibility answer.
pub fn xml_answer(data: &[u8]) {
    let claim = claim();
    for cfg in xml_partners() {
        let Ok(root) = xml::answer_root(hyper::StatusCode::OK, data, cfg.max_bytes, cfg.max_depth)
        else {
            continue;
        };
        if let Some(op) = &cfg.eligibility
            && xml::refusal(&op.answer, &root).is_none()
        {
            let _ = xml::read_covered(&op.answer, &root);
        }
        let op = &cfg.adjudicate;
        if xml::refusal(&op.answer, &root).is_some() {
            continue;
        }
        let Ok(mapped) = cfg.codes.claim(&claim, "M-1") else {
            unreachable!("the claim's member and facility pass through")
        };
        let Ok(answer) = xml::read_adjudication(&root, &op.answer, &cfg.numbers, &claim.currency)
        else {
            continue;
        };
        let shares = answer
            .lines
            .into_iter()
            .map(|l| LineShare {
                sequence: l.sequence,
                mutuelle_share: l.share,
                reasons: Vec::new(),
            })
            .collect();
        let merged = crate::codes::merge(shares, mapped.unmapped);
        if let Ok(checked) = check_answer(&claim.lines, merged) {
            assert_checked(&claim, &checked);
        }
    }
}

fn symbols() -> HashMap<String, String> {
    HashMap::from([
        ("$".to_string(), "XOF".to_string()),
        ("FCFA".to_string(), "XOF".to_string()),
    ])
}

/// Target `fhir_claim_response`: a partner's ClaimResponse, in both dialects,
/// to the shares of [`claim`] (then checked).
pub fn fhir_claim_response(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let claim = claim();
    let Ok(mapped) = CodeMaps::default().claim(&claim, "M-1") else {
        unreachable!("empty tables map every code")
    };
    for dialect in [Dialect::Standard, Dialect::Openimis] {
        // openIMIS numbers its answer anew: the adapter matches its lines
        // back to the claim's by kind and code before reading it.
        let mut doc = v.clone();
        if dialect == Dialect::Openimis {
            if fhir::openimis::renumber(&mut doc, &mapped.lines).is_err() {
                continue;
            }
            let mut matched = std::collections::HashSet::new();
            for item in doc["item"].as_array().into_iter().flatten() {
                if let Some(seq) = item["itemSequence"].as_u64()
                    && item.pointer("/extension/0/valueReference").is_some()
                    && mapped.lines.iter().any(|m| u64::from(m.sequence) == seq)
                {
                    assert!(
                        matched.insert(seq),
                        "two answer lines matched to one claim line"
                    );
                }
            }
        }
        let v = &doc;
        let Ok(parsed) = fhir::parse_claim_response(v, dialect, &symbols(), None) else {
            continue;
        };
        if !parsed.currency.is_empty() {
            assert!(
                minor_unit_digits(&parsed.currency).is_some(),
                "a known currency"
            );
        }
        if dialect == Dialect::Standard {
            // Every amount (the standard dialect reads them all) is in the
            // answer's one currency.
            for item in v["item"].as_array().into_iter().flatten() {
                for a in item["adjudication"].as_array().into_iter().flatten() {
                    if let Some(c) = a.pointer("/amount/currency").and_then(Value::as_str) {
                        let code = symbols().get(c).cloned().unwrap_or_else(|| c.to_string());
                        assert_eq!(
                            code, parsed.currency,
                            "amounts in two currencies read as one"
                        );
                    }
                }
            }
        }
        for (l, item) in parsed
            .lines
            .iter()
            .zip(v["item"].as_array().into_iter().flatten())
        {
            assert_eq!(
                item["itemSequence"].as_u64(),
                Some(u64::from(l.sequence)),
                "the line is the one the document names"
            );
            if dialect == Dialect::Openimis && l.status == Some(1) {
                assert_eq!(l.benefit, 0, "a rejected openIMIS line pays nothing");
            }
        }
        let Ok((shares, _)) =
            fhir::shares_from_response(parsed, dialect, &mapped.lines, &claim.currency)
        else {
            continue;
        };
        let merged = crate::codes::merge(shares, mapped.unmapped.clone());
        if let Ok(checked) = check_answer(&claim.lines, merged) {
            assert_checked(&claim, &checked);
        }
    }
}

/// Target `fhir_eligibility_response`: a partner's
/// CoverageEligibilityResponse.
pub fn fhir_eligibility_response(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for default in [None, Some("XOF")] {
        let Ok(e) = fhir::parse_eligibility(&v, &symbols(), default) else {
            continue;
        };
        for (_, _, _, currency) in &e.amounts {
            assert!(minor_unit_digits(currency).is_some(), "a known currency");
        }
        for c in &e.cost_shares {
            assert!(
                c.rate_bp.is_none_or(|r| r <= 10_000),
                "a rate is at most 100%"
            );
        }
        let a = fhir::eligibility_answer(&e, "M-1".into(), Vec::new(), 0);
        assert_eq!(a.covered, e.covered);
        assert_eq!(a.cost_shares, e.cost_shares);
        assert_eq!(a.ceilings.len(), e.amounts.len() + e.counts.len());
        for (c, (_, n, _)) in a.ceilings[e.amounts.len()..].iter().zip(&e.counts) {
            let left = c.limit_count.map(u64::from);
            assert!(
                left == Some(*n) || (left == Some(u64::from(u32::MAX)) && *n > u64::from(u32::MAX)),
                "a count left is the document's, or as many as a ceiling holds: {left:?} for {n}"
            );
        }
    }
}

/// Target `fhir_claim`: a FHIR Claim, as `passerelle translate` reads it.
pub fn fhir_claim(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(lines) = fhir::parse_claim(&v, &symbols()) {
        for (l, item) in lines.iter().zip(v["item"].as_array().into_iter().flatten()) {
            assert!(l.quantity.is_some(), "a quantity on every line");
            if let Some(seq) = item.get("sequence").and_then(Value::as_u64) {
                assert_eq!(
                    seq,
                    u64::from(l.sequence),
                    "the line is the one the document names"
                );
            }
        }
        if let Some(t) = v.get("total") {
            let _ = fhir::read_money(t, "Claim.total", &symbols(), Some("XOF"));
        }
    }
}
