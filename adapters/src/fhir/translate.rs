//! `passerelle translate --adapter fhir-r4`: what the broker reads from one
//! FHIR resource, as JSON.

use serde_json::{Value, json};

use crate::decimal::{amount_json as amount, opt_amount_json as opt_amount};

/// The partner's `[partners.fhir]` table, read as the broker reads it
/// (unknown keys refused, named): translate needs only its dialect and
/// currency symbols, so `base_url` may be left out.
fn settings_of(table: toml::Table) -> Result<super::FhirConfig, String> {
    crate::registry::translate_settings(table, "partners.fhir", |t| {
        t.entry("base_url")
            .or_insert_with(|| "http://translate.invalid".into());
    })
}

/// Reads a ClaimResponse, Claim, CoverageEligibilityResponse or
/// CoverageEligibilityRequest (read from `file`); `currency` when the
/// resource names none.
pub fn translate(
    settings: toml::Table,
    payload: &[u8],
    file: &str,
    currency: &str,
) -> Result<Value, String> {
    let cfg = settings_of(settings)?;
    let dialect = cfg.dialect;
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("{file}: not JSON: {e}"))?;
    let kind = v.get("resourceType").and_then(Value::as_str).unwrap_or("");
    let syms = &cfg.currency_symbols;
    match kind {
        "ClaimResponse"
        | "ExplanationOfBenefit"
        | "PaymentReconciliation"
        | "PaymentNotice"
        | "Coverage" => {
            let r = super::parse_claim_response(&v, dialect, syms, Some(currency))
                .map_err(|e| e.to_string())?;
            let cur = if r.currency.is_empty() {
                currency.to_string()
            } else {
                r.currency.clone()
            };
            Ok(json!({
                "resource": kind,
                "dialect": format!("{dialect:?}").to_lowercase(),
                "outcome": r.outcome,
                // As the broker reads it: an openIMIS line not valuated
                // yet keeps the claim waiting, whatever the outcome.
                "claim_lifecycle": match (super::outcome_effect(&r.outcome), super::not_valuated(&r, dialect)) {
                    (super::OutcomeEffect::Final, Some(_)) => super::OutcomeEffect::Pending.words(),
                    (effect, _) => effect.words(),
                },
                "disposition": r.disposition,
                "errors": r.errors.iter().map(|(line, e)| json!({"line": line, "error": e})).collect::<Vec<_>>(),
                "process_notes": r.notes,
                "reference": r.reference,
                "currency": cur,
                "lines": r.lines.iter().map(|l| json!({
                    "sequence": l.sequence,
                    "quantity": l.quantity,
                    "unit_price": opt_amount(l.unit_price, &cur),
                    "line_total": opt_amount(l.line_total, &cur),
                    "mutuelle_share": amount(l.benefit, &cur),
                    "status": l.status,
                    "reasons": l.reasons.iter().map(|x| x.message.clone()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "total_mutuelle_share": amount(r.lines.iter().map(|l| l.benefit).sum(), &cur),
            }))
        }
        "Claim" => {
            let lines = super::parse_claim(&v, syms).map_err(|e| e.to_string())?;
            let cur = v
                .pointer("/total/currency")
                .or_else(|| v.pointer("/item/0/unitPrice/currency"))
                .or_else(|| v.pointer("/item/0/net/currency"))
                .and_then(Value::as_str)
                .map(|c| super::currency(c, syms, "Claim.total.currency").map(|(code, _)| code))
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or_else(|| currency.to_string());
            let total = v
                .get("total")
                .map(|t| super::read_money(t, "Claim.total", syms, Some(&cur)))
                .transpose()
                .map_err(|e| e.to_string())?;
            Ok(json!({
                "resource": "Claim",
                "currency": cur,
                "lines": lines.iter().map(|l| json!({
                    "sequence": l.sequence,
                    "quantity": l.quantity,
                    "unit_price": opt_amount(l.unit_price, &cur),
                    "line_total": opt_amount(l.line_total, &cur),
                })).collect::<Vec<_>>(),
                "total": opt_amount(total.as_ref().map(|(t, _)| *t), &cur),
                "lines_add_up": total.as_ref().map(|(t, _)| *t == lines.iter().filter_map(|l| l.line_total).sum::<i64>()),
            }))
        }
        "CoverageEligibilityResponse" => {
            let e =
                super::parse_eligibility(&v, syms, Some(currency)).map_err(|e| e.to_string())?;
            // As the broker reads it: its outcome and errors first.
            let (covered, read) = match e.effect() {
                Ok(()) => (e.covered, "an answer".to_string()),
                Err(crate::AdapterError::Rejected(r)) => {
                    (false, format!("not covered: {}", r.message))
                }
                Err(other) => (false, other.to_string()),
            };
            Ok(json!({
                "resource": "CoverageEligibilityResponse",
                "outcome": e.outcome,
                "as_the_broker_reads_it": read,
                "disposition": e.disposition,
                "errors": e.errors.iter().map(|(_, x)| x).collect::<Vec<_>>(),
                "covered": covered,
                "amounts": e.amounts.iter().map(|(n, a, u, c)| json!({ "benefit": n, "allowed": amount(*a, c), "used": amount(*u, c), "left": amount(a.saturating_sub(*u), c) })).collect::<Vec<_>>(),
                "counts": e.counts.iter().map(|(n, a, u)| json!({ "benefit": n, "allowed": a, "used": u, "left": a.saturating_sub(*u) })).collect::<Vec<_>>(),
                "cost_shares": e.cost_shares,
            }))
        }
        "CoverageEligibilityRequest" => Ok(json!({
            "resource": "CoverageEligibilityRequest",
            "patient": v.pointer("/patient/reference").or_else(|| v.pointer("/patient/identifier/value")),
            "items": v.get("item").and_then(Value::as_array).map(|items| items.iter().map(|i| json!({
                "category": i.pointer("/category/coding/0/code").or_else(|| i.pointer("/category/text")),
                "code": i.pointer("/productOrService/text").or_else(|| i.pointer("/productOrService/coding/0/code")),
            })).collect::<Vec<_>>()),
        })),
        other => Err(format!(
            "resourceType: {other:?} is not a resource passerelle reads"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    /// Issue 15, item 5: the partner's table is read as the broker reads it.
    #[test]
    fn the_partner_table_refuses_what_the_broker_refuses() {
        let full = "base_url = \"https://imis.example/api_fhir_r4\"\ndialect = \"openimis\"\n\
                    timeout_ms = 5000\ncurrency_symbols = { \"$\" = \"XOF\" }\n";
        let cfg = settings_of(table(full)).unwrap();
        assert_eq!(cfg.currency_symbols["$"], "XOF");
        let cfg = settings_of(table("dialect = \"openimis\"")).unwrap();
        assert!(cfg.currency_symbols.is_empty(), "base_url may be left out");
        let e = settings_of(table("currency_symbol = { \"$\" = \"XOF\" }")).unwrap_err();
        assert!(e.contains("currency_symbol"), "{e}");
        let e = settings_of(table(
            "[partners.fhir]\ncurrency_symbols = { \"$\" = \"XOF\" }",
        ))
        .unwrap_err();
        assert!(e.contains("[partners.fhir]"), "{e}");
    }

    /// An eligibility answer is shown as the broker reads it: `error[]`
    /// beside `inforce: true` is not covered, in the payer's words.
    #[test]
    fn an_eligibility_error_is_shown_as_not_covered() {
        let read_as = |v: serde_json::Value| {
            translate(
                toml::Table::new(),
                v.to_string().as_bytes(),
                "e.json",
                "XOF",
            )
            .unwrap()
        };
        let v = serde_json::json!({"resourceType": "CoverageEligibilityResponse", "outcome": "complete",
            "error": [{"code": {"text": "Assuré inconnu"}}], "insurance": [{"inforce": true}]});
        let out = read_as(v);
        assert_eq!(out["covered"], false, "{out}");
        assert_eq!(out["errors"][0], "Assuré inconnu");
        let read = out["as_the_broker_reads_it"].as_str().unwrap();
        assert!(
            read.starts_with("not covered") && read.contains("Assuré inconnu"),
            "{read}"
        );
        let v = serde_json::json!({"resourceType": "CoverageEligibilityResponse", "outcome": "complete",
            "insurance": [{"inforce": true}]});
        let out = read_as(v);
        assert_eq!(
            (
                out["covered"].as_bool(),
                out["as_the_broker_reads_it"].as_str()
            ),
            (Some(true), Some("an answer"))
        );
    }
}
