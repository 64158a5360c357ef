//! The simulated openIMIS server's reading of a Claim, with the rules of
//! openIMIS's FHIR module (`ClaimConverter`): what it would refuse, this
//! refuses, with openIMIS's messages; and its answer's shape (items then
//! services, numbered anew, each naming its definition).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::fhir::openimis::{
    CARE_CATEGORY, IDENTIFIERS, ITEM_REFERENCE, MAX_CLAIM_CODE, MAX_DIAGNOSES,
};

/// The answers given, by claim code: openIMIS refuses a second claim with a
/// code it holds, and serves `GET ClaimResponse/<code>`.
#[derive(Clone, Default)]
pub struct Answers(Arc<Mutex<HashMap<String, Value>>>);

impl Answers {
    pub fn get(&self, code: &str) -> Option<Value> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(code)
            .cloned()
    }

    pub fn put(&self, code: &str, answer: Value) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(code.to_string(), answer);
    }
}

/// One line of a Claim as openIMIS reads it.
pub struct ItemIn {
    /// "item" or "service".
    pub kind: String,
    pub code: String,
    /// The broker's care category when the claim carries it.
    pub category: String,
    pub quantity: u64,
    pub unit: Value,
}

/// A Claim as openIMIS reads it.
pub struct ClaimIn {
    pub code: String,
    pub chfid: String,
    pub created: String,
    pub diagnoses: Vec<String>,
    pub items: Vec<ItemIn>,
}

/// The value of the first identifier whose type code is `type_code`
/// (openIMIS ignores the systems).
fn typed_identifier<'a>(ids: &'a Value, type_code: &str) -> Option<&'a str> {
    ids.as_array()?
        .iter()
        .find(|i| i.pointer("/type/coding/0/code").and_then(Value::as_str) == Some(type_code))
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
}

/// A reference openIMIS can resolve: a type and an identifier typed `Code`.
/// A `reference` would be read as an openIMIS UUID, which the simulated
/// server (like the broker) does not know: refused.
fn by_code(v: &Value, field: &str, kind: &str) -> Result<String, String> {
    let bad = || format!("Missing or invalid `{field}` reference");
    let r = v.get(field).ok_or_else(bad)?;
    if r.get("reference").is_some() {
        return Err(format!(
            "{}: a `reference` is read as an openIMIS UUID",
            bad()
        ));
    }
    if r.get("type").and_then(Value::as_str) != Some(kind) {
        return Err(bad());
    }
    let id = r.get("identifier").ok_or_else(bad)?;
    let code = id.pointer("/type/coding/0/code").and_then(Value::as_str);
    if !code.is_some_and(|c| c.eq_ignore_ascii_case("code")) {
        return Err(bad());
    }
    id.get("value")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .ok_or_else(bad)
}

/// Reads a Claim as openIMIS's `ClaimConverter.to_imis_obj` would, refusing
/// what it refuses.
pub fn read_claim(v: &Value, claim_code_type: &str) -> Result<ClaimIn, String> {
    let code = typed_identifier(&v["identifier"], claim_code_type)
        .filter(|c| !c.is_empty())
        .ok_or("Missing or invalid `identifier` attribute")?;
    if code.chars().count() > MAX_CLAIM_CODE {
        return Err(format!(
            "claim code {code:?} is longer than {MAX_CLAIM_CODE}"
        ));
    }
    let chfid = by_code(v, "patient", "Patient")?;
    by_code(v, "enterer", "Practitioner")?;
    by_code(v, "provider", "Organization")?;
    let visit = v.pointer("/type/coding/0/code").and_then(Value::as_str);
    if !matches!(visit, Some("O" | "E" | "R")) {
        return Err(format!(
            "Missing or invalid `type` attribute: visit type {visit:?} is none of O, E, R"
        ));
    }
    let created = v["created"]
        .as_str()
        .ok_or("Missing `created` attribute")?
        .to_string();
    v.pointer("/billablePeriod/start")
        .and_then(Value::as_str)
        .ok_or("Missing or invalid 'billable_period' attribute")?;
    let total = v.pointer("/total/value").map(|t| t.to_string());
    let zero = |t: &str| {
        t.trim_matches('"')
            .chars()
            .all(|c| matches!(c, '0' | '.' | '-'))
    };
    if total.is_none_or(|t| zero(&t)) {
        return Err("Missing `total` attribute".into());
    }
    // openIMIS keeps the first five (icd, icd_1 .. icd_4).
    let mut diagnoses = super::claim_diagnoses(v);
    diagnoses.truncate(MAX_DIAGNOSES);
    if diagnoses.is_empty() {
        return Err("Missing or invalid `diagnosis` attribute".into());
    }
    let mut items = Vec::new();
    for item in v["item"].as_array().into_iter().flatten() {
        let kind = item
            .pointer("/category/text")
            .and_then(Value::as_str)
            .unwrap_or("");
        if kind != "item" && kind != "service" {
            return Err(format!("Unknown item category: `{kind}`"));
        }
        let reference = item
            .pointer("/extension/0")
            .filter(|e| e["url"] == ITEM_REFERENCE)
            .and_then(|e| e.get("valueReference"))
            .ok_or("an item without its claim-item-reference extension")?;
        let definition = if kind == "item" {
            "Medication"
        } else {
            "ActivityDefinition"
        };
        let code = by_code(&json!({ "r": reference }), "r", definition)
            .map_err(|_| format!("{kind}: invalid {definition} reference"))?;
        let category = item["extension"]
            .as_array()
            .and_then(|e| e.iter().find(|x| x["url"] == CARE_CATEGORY))
            .and_then(|x| x["valueCode"].as_str())
            .unwrap_or("")
            .to_string();
        items.push(ItemIn {
            kind: kind.to_string(),
            code,
            category,
            quantity: item
                .pointer("/quantity/value")
                .and_then(|q| q.to_string().parse().ok())
                .unwrap_or(1),
            unit: item["unitPrice"].clone(),
        });
    }
    if items.is_empty() {
        return Err("a claim without items".into());
    }
    Ok(ClaimIn {
        code: code.to_string(),
        chfid,
        created,
        diagnoses,
        items,
    })
}

/// openIMIS's order of an answer's lines: items first, then services, each
/// in the claim's order. Returns indexes into `items`.
pub fn answer_order(items: &[ItemIn]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].kind == "item")
        .collect();
    order.extend((0..items.len()).filter(|&i| items[i].kind == "service"));
    order
}

/// The first extension of an answer line: its Medication or
/// ActivityDefinition, named by its code in `display`.
pub fn item_reference(item: &ItemIn) -> Value {
    let kind = if item.kind == "item" {
        "Medication"
    } else {
        "ActivityDefinition"
    };
    json!([{ "url": ITEM_REFERENCE, "valueReference": {
        "type": kind,
        "identifier": { "type": { "coding": [{ "system": IDENTIFIERS, "code": "Code" }] }, "value": item.code },
        "display": item.code
    } }])
}
