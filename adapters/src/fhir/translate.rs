//! `passerelle translate --adapter fhir-r4`: what the broker reads from one
//! FHIR resource, as JSON.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Dialect;
use crate::decimal::{amount_json as amount, opt_amount_json as opt_amount};

/// What translate needs of a `[partners.fhir]` table; its other keys are
/// accepted and ignored.
#[derive(Debug, Default, Deserialize)]
struct Loose {
    #[serde(default)]
    dialect: Dialect,
    #[serde(default)]
    currency_symbols: HashMap<String, String>,
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
    let loose: Loose = settings.try_into().map_err(|e| e.message().to_string())?;
    let dialect = loose.dialect;
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("{file}: not JSON: {e}"))?;
    let kind = v.get("resourceType").and_then(Value::as_str).unwrap_or("");
    let syms = &loose.currency_symbols;
    match kind {
        "ClaimResponse" => {
            let r = super::parse_claim_response(&v, dialect, syms, Some(currency))
                .map_err(|e| e.to_string())?;
            let cur = if r.currency.is_empty() {
                currency.to_string()
            } else {
                r.currency.clone()
            };
            Ok(json!({
                "resource": "ClaimResponse",
                "dialect": format!("{dialect:?}").to_lowercase(),
                "outcome": r.outcome,
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
            Ok(json!({
                "resource": "CoverageEligibilityResponse",
                "covered": e.covered,
                "amounts_left": e.amounts.iter().map(|(n, a, c)| json!({ "benefit": n, "amount": amount(*a, c) })).collect::<Vec<_>>(),
                "counts_left": e.counts.iter().map(|(n, c)| json!({ "benefit": n, "count": c })).collect::<Vec<_>>(),
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
