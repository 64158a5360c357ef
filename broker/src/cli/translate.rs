//! `passerelle translate`: what the broker understands from one partner
//! payload, as JSON, or the error with its path.

use std::collections::HashMap;
use std::path::Path;

use passerelle_adapters::fhir::{self, Dialect};
use passerelle_adapters::xml::{AnswerPaths, parse_xml};
use passerelle_domain::money::minor_unit_digits;
use serde::Deserialize;
use serde_json::{Value, json};

/// What translate needs from a partner config (the partner's adapter table);
/// every other key of that table is accepted and ignored.
#[derive(Debug, Default, Deserialize)]
struct Loose {
    #[serde(default)]
    dialect: Option<Dialect>,
    #[serde(default)]
    currency_symbols: HashMap<String, String>,
    #[serde(default)]
    numbers: Option<passerelle_adapters::xml::NumberFormat>,
    #[serde(default)]
    adjudicate: Option<LooseOp>,
}

#[derive(Debug, Default, Deserialize)]
struct LooseOp {
    #[serde(default)]
    answer: AnswerPaths,
}

/// An amount, both ways: a decimal in the currency's major unit, and the
/// minor-unit count with the currency.
fn amount(minor: i64, currency: &str) -> Value {
    let digits = minor_unit_digits(currency).unwrap_or(0);
    json!({ "value": passerelle_adapters::decimal::format_minor(minor, digits), "minor": minor, "currency": currency })
}

fn opt_amount(v: Option<i64>, currency: &str) -> Value {
    v.map(|m| amount(m, currency)).unwrap_or(Value::Null)
}

/// Translates a payload; `Err` is the message (with its path).
pub fn translate(
    adapter: &str,
    dialect: Option<Dialect>,
    config: Option<&Path>,
    file: &Path,
    currency: &str,
) -> Result<Value, String> {
    let loose: Loose = match config {
        None => Loose::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            toml::from_str(&text)
                .map_err(|e| format!("{}: {}", p.display(), e.to_string().trim_end()))?
        }
    };
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    match adapter {
        "fhir-r4" => {
            let dialect = dialect.or(loose.dialect).unwrap_or_default();
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
            let kind = v.get("resourceType").and_then(Value::as_str).unwrap_or("");
            let syms = &loose.currency_symbols;
            match kind {
                "ClaimResponse" => {
                    let r =
                        fhir::parse_claim_response(&v, dialect, syms).map_err(|e| e.to_string())?;
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
                    let lines = fhir::parse_claim(&v, syms).map_err(|e| e.to_string())?;
                    let cur = v
                        .pointer("/total/currency")
                        .or_else(|| v.pointer("/item/0/unitPrice/currency"))
                        .or_else(|| v.pointer("/item/0/net/currency"))
                        .and_then(Value::as_str)
                        .map(|c| {
                            fhir::currency(c, syms, "Claim.total.currency").map(|(code, _)| code)
                        })
                        .transpose()
                        .map_err(|e| e.to_string())?
                        .unwrap_or_else(|| currency.to_string());
                    let total = v
                        .get("total")
                        .map(|t| fhir::read_money(t, "Claim.total", syms, Some(&cur)))
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
                    let e = fhir::parse_eligibility(&v, syms, Some(currency))
                        .map_err(|e| e.to_string())?;
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
        "xml-http" => {
            let root = parse_xml(&bytes, 1 << 20, 32)?;
            let root = passerelle_adapters::xml::unwrap_soap(root).map_err(|e| e.to_string())?;
            let a = loose.adjudicate.map(|o| o.answer).unwrap_or_default();
            let numbers = loose.numbers.unwrap_or_default();
            if a.lines.is_none() {
                return Err(
                    "the config's adjudicate.answer.lines is needed to read an answer".into(),
                );
            }
            let answer =
                passerelle_adapters::xml::read_adjudication(&root, &a, &numbers, currency)?;
            let lines: Vec<Value> = answer
                .lines
                .iter()
                .map(|l| {
                    json!({
                        "sequence": l.sequence,
                        "mutuelle_share": amount(l.share, currency),
                        "reason": l.reason,
                    })
                })
                .collect();
            Ok(json!({ "document": root.name, "currency": currency, "lines": lines }))
        }
        other => Err(format!("--adapter {other:?}: fhir-r4 or xml-http")),
    }
}
