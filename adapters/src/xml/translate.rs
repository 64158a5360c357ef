//! `passerelle translate --adapter xml-http`: what the broker reads from one
//! XML answer with a partner's mapping, as JSON.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{AnswerPaths, NumberFormat};
use crate::decimal::amount_json as amount;

/// What translate needs of a `[partners.xml]` table; its other keys are
/// accepted and ignored.
#[derive(Debug, Default, Deserialize)]
struct Loose {
    #[serde(default)]
    numbers: NumberFormat,
    #[serde(default)]
    adjudicate: Option<LooseOp>,
}

#[derive(Debug, Default, Deserialize)]
struct LooseOp {
    #[serde(default)]
    answer: AnswerPaths,
}

/// Reads an adjudication answer with the mapping's paths and number format.
pub fn translate(
    settings: toml::Table,
    payload: &[u8],
    _file: &str,
    currency: &str,
) -> Result<Value, String> {
    let loose: Loose = settings.try_into().map_err(|e| e.message().to_string())?;
    let root = super::parse_xml(payload, 1 << 20, 32)?;
    let root = super::unwrap_soap(root).map_err(|e| e.to_string())?;
    let a = loose.adjudicate.map(|o| o.answer).unwrap_or_default();
    if a.lines.is_none() {
        return Err("the config's adjudicate.answer.lines is needed to read an answer".into());
    }
    let answer = super::read_adjudication(&root, &a, &loose.numbers, currency)?;
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
