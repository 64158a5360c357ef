//! openIMIS's dialect of FHIR R4, as its FHIR module
//! (openimis-be-api_fhir_r4_py, converters `ClaimConverter`,
//! `ClaimResponseConverter`, `CoverageEligibilityRequestConverter`) and its
//! implementation guide (openimis_fhir_r4_ig) define it:
//!
//! - every reference is a type and an identifier typed `Code` (system
//!   [`IDENTIFIERS`]): the insuree by its CHFID, the health facility by its
//!   code, the claim administrator (`enterer`, required) by his code, each
//!   medication or activity definition by its code. A `reference` would be
//!   read as an openIMIS UUID, which the broker does not know;
//! - the claim's code is a typed identifier (`Code`, or `MR` where the
//!   module's configuration says so) of at most 50 characters, unique: a
//!   resend with the same code is refused, so the broker reads the earlier
//!   answer back (`GET ClaimResponse/<code>`) instead;
//! - `type` is openIMIS's visit type (O, E, R);
//! - each item's category is `item` (a Medication) or `service` (an
//!   ActivityDefinition), read from `category.text`, and its first extension
//!   is the `claim-item-reference` to that definition;
//! - diagnoses are openIMIS's own codes (map them in `codes.diagnoses`), at
//!   least one and at most five;
//! - amounts are read without their currency; openIMIS writes its own
//!   currency string (`$` by default) in answers.
//!
//! openIMIS's answer lists items first and services second, numbered anew:
//! its lines are matched back to the claim's by kind and code, in order.
//! openIMIS offers no cancellation over FHIR (no Task, no `$cancel`, no
//! DELETE or PUT of a Claim): a cancel is refused as unsupported.

use passerelle_domain::{CareCategory, date};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::codes::{MappedClaim, MappedLine};

/// openIMIS's identifier types.
pub const IDENTIFIERS: &str =
    "https://openimis.github.io/openimis_fhir_r4_ig/CodeSystem/openimis-identifiers";
/// openIMIS's visit types (E emergency, R referral, O other).
pub const VISIT_TYPES: &str =
    "https://openimis.github.io/openimis_fhir_r4_ig/CodeSystem/claim-visit-type";
/// openIMIS's item categories (item, service).
pub const ITEM_CATEGORIES: &str =
    "https://openimis.github.io/openimis_fhir_r4_ig/CodeSystem/claim-item-category";
/// The extension naming an item's Medication or ActivityDefinition.
pub const ITEM_REFERENCE: &str =
    "https://openimis.github.io/openimis_fhir_r4_ig/StructureDefinition/claim-item-reference";
/// openIMIS's diagnosis codes.
pub const DIAGNOSES: &str =
    "https://openimis.github.io/openimis_fhir_r4_ig/CodeSystem/diagnosis-ICD10-level1";
/// Categories of a claim's supporting information.
pub const SUPPORTING_INFO: &str =
    "https://openimis.github.io/openimis_fhir_r4_ig/CodeSystem/claim-supporting-info-category";

/// The broker's care category of an item (an extension openIMIS ignores).
pub const CARE_CATEGORY: &str = "urn:passerelle:care-category";

/// The longest claim code openIMIS stores (`tblClaim.ClaimCode`).
pub const MAX_CLAIM_CODE: usize = 50;
/// Diagnoses an openIMIS claim holds (`icd`, `icd_1` .. `icd_4`).
pub const MAX_DIAGNOSES: usize = 5;

/// `[partners.fhir.openimis]`: what an openIMIS partner needs besides the
/// common FHIR settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OpenimisSettings {
    /// The code of the claim administrator the broker enters claims as
    /// (openIMIS requires one: `Claim.enterer`).
    pub claim_admin: String,
    /// The identifier type openIMIS reads a claim's code under: "Code"
    /// (the implementation guide, and the default) or "MR" (the module's
    /// default `fhir_code_for_imis_claim_code_type`).
    #[serde(default = "default_claim_code_type")]
    pub claim_code_type: String,
    /// The visit type of every claim: "O" other (default), "E" emergency,
    /// "R" referral.
    #[serde(default = "default_visit_type")]
    pub visit_type: String,
    /// The diagnosis code sent for a claim that carries none (openIMIS
    /// requires one; schemes often send none): a code of the partner's own
    /// diagnosis table, such as its "unspecified". Without it such a claim
    /// is refused before it is sent, with that reason.
    #[serde(default)]
    pub default_diagnosis: Option<String>,
}

fn default_claim_code_type() -> String {
    "Code".into()
}
fn default_visit_type() -> String {
    "O".into()
}

impl OpenimisSettings {
    pub fn check(&self) -> Result<(), String> {
        if self.claim_admin.trim().is_empty() {
            return Err("openimis.claim_admin: the claim administrator's code is required".into());
        }
        if !["Code", "MR"].contains(&self.claim_code_type.as_str()) {
            return Err(format!(
                "openimis.claim_code_type: {:?} is neither \"Code\" nor \"MR\"",
                self.claim_code_type
            ));
        }
        if self
            .default_diagnosis
            .as_deref()
            .is_some_and(|d| d.trim().is_empty())
        {
            return Err("openimis.default_diagnosis: must not be empty".into());
        }
        if !["O", "E", "R"].contains(&self.visit_type.as_str()) {
            return Err(format!(
                "openimis.visit_type: {:?} is none of \"O\", \"E\", \"R\"",
                self.visit_type
            ));
        }
        Ok(())
    }
}

/// An openIMIS reference: a type and an identifier typed `Code`.
fn by_code(kind: &str, code: &str) -> Value {
    json!({ "type": kind, "identifier": typed("Code", code) })
}

fn typed(type_code: &str, value: &str) -> Value {
    json!({ "type": { "coding": [{ "system": IDENTIFIERS, "code": type_code }] }, "value": value })
}

/// The claim code of an adjudication: 16 characters from its idempotency
/// key (the same key, the same code), letters and digits only.
pub fn claim_code(key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    format!("PS{}", hex::encode_upper(&digest[..7]))
}

/// Whether openIMIS's answer is for the claim code sent. openIMIS names
/// its claim by the claim's code (`imis_claim.code`) in an identifier
/// typed `Code` or `MR` (`fhir_code_for_imis_claim_code_type`), in the
/// ClaimResponse's `identifier` or in its `request`'s. Another code there
/// is an answer for another claim: lines are matched by act code alone
/// (`renumber`), so it would fit any claim of the same acts and be paid on
/// this one; it is refused as malformed instead. An answer that names no
/// code cannot be checked and is matched by its lines.
pub fn answers_the_code(answer: &Value, code: &str) -> Result<(), String> {
    let typed = |i: &Value| {
        i.pointer("/type/coding")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| matches!(c.get("code").and_then(Value::as_str), Some("Code" | "MR")))
            })
    };
    let top = answer
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, id)| (format!("ClaimResponse.identifier[{i}]"), id));
    let request = answer
        .pointer("/request/identifier")
        .map(|id| ("ClaimResponse.request.identifier".to_string(), id));
    for (path, id) in top.chain(request) {
        let value = id.get("value").and_then(Value::as_str).unwrap_or("");
        if typed(id) && value != code {
            return Err(format!(
                "{path}: the answer is for claim code {value:?}, not for the claim sent, {code:?}: an answer for another claim is never booked"
            ));
        }
    }
    Ok(())
}

/// openIMIS's kind of a line: `item` (a medication or device) or `service`.
/// A category mapped to "item" or "service" in `codes.categories` says it;
/// otherwise pharmacy and optical lines are items, the rest services.
pub fn kind(m: &MappedLine) -> &'static str {
    match m.category.as_str() {
        "item" => "item",
        "service" => "service",
        _ => match m.line.category {
            CareCategory::Pharmacy | CareCategory::Optical => "item",
            _ => "service",
        },
    }
}

/// The lines openIMIS is never asked about, answered here with M = 0:
/// those the scheme refused (an openIMIS Claim has no field for the
/// scheme's outcome, so it would be asked for the whole billed amount, and
/// any share it answered, which the broker refuses on a line the scheme
/// refused, would reject the whole claim) and those with nothing left to
/// pay (a remainder of 0). Moved from `mapped.lines` to
/// `mapped.unmapped`, the lines already answered.
pub fn answer_here(mapped: &mut crate::codes::MappedClaim) {
    let (asked, here): (Vec<_>, Vec<_>) =
        std::mem::take(&mut mapped.lines)
            .into_iter()
            .partition(|m| {
                m.line.outcome != passerelle_domain::SchemeOutcome::Refused
                    && m.line.remainder() > 0
            });
    mapped.lines = asked;
    mapped
        .unmapped
        .extend(here.into_iter().map(|m| passerelle_domain::LineShare {
            sequence: m.sequence,
            mutuelle_share: 0,
            reasons: if m.line.outcome == passerelle_domain::SchemeOutcome::Refused {
                vec![passerelle_domain::engine::scheme_refused(&m.line)]
            } else {
                Vec::new()
            },
        }));
    mapped.unmapped.sort_by_key(|s| s.sequence);
}

/// The Claim of a remainder adjudication. Refused before sending when
/// openIMIS would refuse it: no diagnosis, or nothing to claim.
pub fn claim(
    key: &str,
    c: &passerelle_domain::Claim,
    mapped: &MappedClaim,
    s: &OpenimisSettings,
    currency: &str,
) -> Result<Value, String> {
    let diagnoses: Vec<&str> = if mapped.diagnoses.is_empty() {
        match &s.default_diagnosis {
            Some(d) => vec![d.as_str()],
            None => {
                return Err(
                    "openIMIS requires a diagnosis, and the claim has none (a partner may set openimis.default_diagnosis)"
                        .into(),
                );
            }
        }
    } else {
        mapped.diagnoses.iter().map(String::as_str).collect()
    };
    let total: i64 = mapped.lines.iter().map(|m| m.line.remainder()).sum();
    if total == 0 {
        return Err("nothing to claim: the remainder of every line is 0".into());
    }
    let day = date::format(c.date_of_care);
    let items: Vec<Value> = mapped
        .lines
        .iter()
        .map(|m| {
            let kind = kind(m);
            let (qty, unit) = super::remainder_units(&m.line);
            let definition = if kind == "item" {
                "Medication"
            } else {
                "ActivityDefinition"
            };
            json!({
                "sequence": m.sequence,
                // openIMIS reads the first extension; the second, which it
                // ignores, keeps the broker's care category for the
                // mutuelle's staff (and the simulator).
                "extension": [
                    { "url": ITEM_REFERENCE, "valueReference": by_code(definition, &m.act) },
                    { "url": CARE_CATEGORY, "valueCode": m.line.category.as_str() }
                ],
                "category": { "coding": [{ "system": ITEM_CATEGORIES, "code": kind }], "text": kind },
                "productOrService": { "text": m.act },
                "quantity": { "value": qty },
                "unitPrice": { "value": crate::fhir::decimal(unit, digits(currency, &c.currency)), "currency": currency },
            })
        })
        .collect();
    let display = match s.visit_type.as_str() {
        "E" => "Emergency",
        "R" => "Referrals",
        _ => "Other",
    };
    Ok(json!({
        "resourceType": "Claim",
        "identifier": [
            typed(&s.claim_code_type, &claim_code(key)),
            { "system": crate::fhir::KEY_SYSTEM, "value": key }
        ],
        "status": "active",
        "type": { "coding": [{ "system": VISIT_TYPES, "code": s.visit_type, "display": display }] },
        "use": "claim",
        "patient": by_code("Patient", &mapped.member),
        "billablePeriod": { "start": day, "end": day },
        "created": day,
        "enterer": by_code("Practitioner", &s.claim_admin),
        "provider": by_code("Organization", &mapped.facility),
        "priority": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal" }] },
        // Required by FHIR R4, ignored by openIMIS: the insuree's coverage.
        "insurance": [{ "sequence": 1, "focal": true, "coverage": by_code("Coverage", &mapped.member) }],
        "supportingInfo": [{
            "sequence": 1,
            "category": { "coding": [{ "system": SUPPORTING_INFO, "code": "explanation" }] },
            "valueString": format!("passerelle {}/{}", c.scheme_id, c.claim_id),
        }],
        "diagnosis": diagnoses.iter().take(MAX_DIAGNOSES).enumerate().map(|(i, d)| json!({
            "sequence": i + 1,
            "diagnosisCodeableConcept": { "coding": [{ "system": DIAGNOSES, "code": d }] }
        })).collect::<Vec<_>>(),
        "item": items,
        "total": { "value": crate::fhir::decimal(total, digits(currency, &c.currency)), "currency": currency },
    }))
}

/// The minor-unit digits of the claim's currency (what the amounts are in,
/// whatever string the partner writes for it).
fn digits(_written: &str, iso: &str) -> u32 {
    passerelle_domain::money::minor_unit_digits(iso).unwrap_or(0)
}

/// openIMIS's eligibility question: the insuree as `Patient/<CHFID>` (in
/// this resource openIMIS reads the reference's id as the CHFID), the items
/// and services asked about by code and kind (from the coding).
pub fn eligibility(q: &crate::EligibilityQuery, member: &str, lines: &[MappedLine]) -> Value {
    let day = date::format(q.date_of_care);
    json!({
        "resourceType": "CoverageEligibilityRequest",
        "identifier": [{ "system": crate::fhir::KEY_SYSTEM, "value": q.idempotency_key }],
        "status": "active",
        "purpose": ["benefits"],
        "patient": { "reference": format!("Patient/{member}") },
        "servicedDate": day,
        "created": day,
        "insurer": { "display": "openIMIS" },
        "item": lines.iter().map(|m| json!({
            "category": { "coding": [{ "system": ITEM_CATEGORIES, "code": kind(m) }], "text": kind(m) },
            "productOrService": { "text": m.act },
        })).collect::<Vec<_>>(),
    })
}

/// Gives each item of openIMIS's answer the sequence of the claim line it
/// answers. openIMIS numbers its answer anew (items, then services), and
/// names each line's Medication or ActivityDefinition in the first
/// extension (`valueReference.display`, or its identifier): lines are
/// matched by kind and code (letter case aside, as openIMIS looks codes
/// up), in order when a code repeats. A line that names no code cannot be
/// placed (its number is openIMIS's, not the claim's): the answer is
/// refused, as is one naming a code the claim does not hold.
pub fn renumber(answer: &mut Value, lines: &[MappedLine]) -> Result<(), String> {
    let Some(items) = answer.get_mut("item").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    let mut taken = vec![false; lines.len()];
    for (i, item) in items.iter_mut().enumerate() {
        let unplaced = || {
            format!(
                "ClaimResponse.item[{i}]: names no Medication or ActivityDefinition code (extension[0].valueReference): it cannot be matched to a claim line"
            )
        };
        let r = item
            .pointer("/extension/0/valueReference")
            .ok_or_else(unplaced)?;
        let code = r
            .get("display")
            .or_else(|| r.pointer("/identifier/value"))
            .and_then(Value::as_str)
            .ok_or_else(unplaced)?;
        let kind = match r.get("type").and_then(Value::as_str).or_else(|| {
            r.get("reference")
                .and_then(Value::as_str)
                .and_then(|s| s.split('/').next())
        }) {
            Some("Medication") => Some("item"),
            Some("ActivityDefinition") => Some("service"),
            _ => None,
        };
        let found = lines.iter().enumerate().position(|(j, m)| {
            !taken[j] && m.act.eq_ignore_ascii_case(code) && kind.is_none_or(|k| k == self::kind(m))
        });
        let Some(j) = found else {
            return Err(format!(
                "ClaimResponse.item[{i}]: answers {code:?}, which the claim does not hold"
            ));
        };
        taken[j] = true;
        item["itemSequence"] = json!(lines[j].sequence);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Issue 15, item 8: the dialect as openIMIS reads it, against a
    //! simulated openIMIS that applies its converter's rules.

    use passerelle_domain::{CareCategory, ClaimLine, SchemeOutcome};
    use serde_json::json;

    use super::*;
    use crate::fhir::{Dialect, FhirAdapter, FhirConfig};
    use crate::sim_http::SimFhir;
    use crate::{Adapter, kit};

    fn settings() -> OpenimisSettings {
        OpenimisSettings {
            claim_admin: "KIT-ADMIN".into(),
            claim_code_type: "Code".into(),
            visit_type: "O".into(),
            default_diagnosis: Some("Z00".into()),
        }
    }

    /// The kit's consultation, then a pharmacy line (an openIMIS item).
    fn claim_with_medicine(id: &str) -> passerelle_domain::Claim {
        let mut c = kit::claim(id);
        c.lines.truncate(1);
        c.lines.push(ClaimLine {
            act_code: "P-MED".into(),
            category: CareCategory::Pharmacy,
            quantity: 2,
            billed: 1000,
            tariff_base: 1000,
            scheme_share: 600,
            outcome: SchemeOutcome::Covered,
            scheme_reason: String::new(),
        });
        c
    }

    fn codes() -> crate::codes::CodeMaps {
        let mut c = crate::codes::CodeMaps::default();
        c.acts.insert("C-CONS".into(), "CONSULT".into());
        c.acts.insert("P-MED".into(), "PARA500".into());
        c.members.insert("K-1".into(), "070707070".into());
        c
    }

    /// A simulated openIMIS and the adapter in front of it.
    async fn partner() -> (
        FhirAdapter,
        crate::sim::SimMutuelle,
        tokio::task::JoinHandle<()>,
    ) {
        partner_keeping(Default::default()).await
    }

    /// The same, keeping its answers by claim code in `answers`.
    async fn partner_keeping(
        answers: crate::sim_http::OpenimisAnswers,
    ) -> (
        FhirAdapter,
        crate::sim::SimMutuelle,
        tokio::task::JoinHandle<()>,
    ) {
        let mut member = kit::member();
        member.member_number = "070707070".into();
        let sim = crate::sim::SimMutuelle::new("MUT-KIT", vec![member], vec![kit::product()]);
        let (addr, task) = SimFhir {
            sim: sim.clone(),
            dialect: Dialect::Openimis,
            currency_text: "$".into(),
            currency: "XOF".into(),
            login: None,
            answers,
        }
        .start()
        .await
        .unwrap();
        let cfg = FhirConfig {
            base_url: format!("http://{addr}/api/api_fhir_r4"),
            dialect: Dialect::Openimis,
            timeout_ms: 2000,
            connect_timeout_ms: 2000,
            pool: Default::default(),
            tls: None,
            token_file: None,
            username: None,
            password_file: None,
            currency_symbols: [("$".to_string(), "XOF".to_string())].into(),
            codes: codes(),
            openimis: Some(settings()),
        };
        (FhirAdapter::new("MUT-KIT", &cfg).unwrap(), sim, task)
    }

    #[test]
    fn the_claim_is_what_openimis_reads() {
        let c = claim_with_medicine("oi-1");
        let mapped = codes().claim(&c, "K-1").unwrap();
        let v = claim("key-1", &c, &mapped, &settings(), "$").unwrap();
        // The claim code: typed `Code`, short, letters and digits only.
        let code = v.pointer("/identifier/0/value").unwrap().as_str().unwrap();
        assert_eq!(
            v.pointer("/identifier/0/type/coding/0/code"),
            Some(&json!("Code"))
        );
        assert!(
            code.len() <= 20 && code.chars().all(|c| c.is_ascii_alphanumeric()),
            "{code}"
        );
        assert_eq!(code, claim_code("key-1"));
        // References by code, never a `reference` read as a UUID.
        for (field, kind, value) in [
            ("patient", "Patient", "070707070"),
            ("enterer", "Practitioner", "KIT-ADMIN"),
            ("provider", "Organization", "CHU-KIT"),
        ] {
            assert_eq!(v[field]["type"], kind, "{field}");
            assert!(v[field].get("reference").is_none(), "{field}");
            assert_eq!(v[field]["identifier"]["value"], value, "{field}");
            assert_eq!(v[field]["identifier"]["type"]["coding"][0]["code"], "Code");
        }
        assert_eq!(v.pointer("/type/coding/0/code"), Some(&json!("O")));
        assert_eq!(
            v.pointer("/type/coding/0/system"),
            Some(&json!(VISIT_TYPES))
        );
        // Items: kind in category.text, the definition in the first
        // extension; the claimed amount is the remainder in the partner's
        // currency string.
        let items = v["item"].as_array().unwrap();
        assert_eq!(items[0]["category"]["text"], "service");
        assert_eq!(items[0]["extension"][0]["url"], ITEM_REFERENCE);
        assert_eq!(
            items[0]["extension"][0]["valueReference"]["type"],
            "ActivityDefinition"
        );
        assert_eq!(
            items[0]["extension"][0]["valueReference"]["identifier"]["value"],
            "CONSULT"
        );
        assert_eq!(items[1]["category"]["text"], "item");
        assert_eq!(
            items[1]["extension"][0]["valueReference"]["type"],
            "Medication"
        );
        assert_eq!(
            (
                items[1]["quantity"]["value"].clone(),
                items[1]["unitPrice"]["value"].clone()
            ),
            (json!(2), json!(200))
        );
        assert_eq!(items[1]["unitPrice"]["currency"], "$");
        assert_eq!(v["total"]["value"], json!(1900));
        // No diagnosis on the claim: the partner's default one.
        assert_eq!(
            v.pointer("/diagnosis/0/diagnosisCodeableConcept/coding/0/code"),
            Some(&json!("Z00"))
        );
        // The simulated openIMIS reads it.
        let read = crate::sim_http::openimis_read_claim(&v).unwrap();
        assert_eq!(read, (code.to_string(), "070707070".to_string(), 2));
    }

    /// What the dialect sent before this issue (an untyped 36-character
    /// key, no enterer, the patient as a `Patient/<chfid>` reference, HL7's
    /// claim type, the kind only in `category.text` without the item
    /// reference) is refused by the simulated openIMIS, rule by rule.
    #[test]
    fn the_earlier_claim_is_refused_by_openimis() {
        let c = kit::claim("oi-old");
        let mapped = codes().claim(&c, "K-1").unwrap();
        let good = claim("key-old", &c, &mapped, &settings(), "$").unwrap();
        let refused = |v: &Value| crate::sim_http::openimis_read_claim(v).unwrap_err();
        let mut v = good.clone();
        v["identifier"] = json!([{ "system": crate::fhir::KEY_SYSTEM, "value": "0b9f9d2e-5d4c-4b0e-9d8e-7b6a5c4d3e2f" }]);
        assert!(refused(&v).contains("`identifier`"), "{}", refused(&v));
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove("enterer");
        assert!(refused(&v).contains("`enterer`"));
        let mut v = good.clone();
        v["patient"] = json!({ "reference": "Patient/070707070", "type": "Patient" });
        assert!(refused(&v).contains("`patient`"));
        let mut v = good.clone();
        v["type"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional" }] });
        assert!(refused(&v).contains("`type`"));
        let mut v = good.clone();
        v["item"][0] = json!({ "sequence": 1, "category": { "text": "consultation" }, "productOrService": { "text": "CONSULT" }, "quantity": { "value": 1 }, "unitPrice": { "value": 1500 } });
        assert!(refused(&v).contains("Unknown item category"));
        let mut v = good.clone();
        v["item"][0]["extension"] = json!([]);
        assert!(refused(&v).contains("claim-item-reference"));
        let mut v = good;
        v["diagnosis"] = json!([]);
        assert!(refused(&v).contains("`diagnosis`"));
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings().check().is_ok());
        let mut s = settings();
        s.claim_admin = " ".into();
        assert!(s.check().unwrap_err().contains("claim_admin"));
        let mut s = settings();
        s.visit_type = "X".into();
        assert!(s.check().unwrap_err().contains("visit_type"));
        let mut s = settings();
        s.claim_code_type = "UUID".into();
        assert!(s.check().unwrap_err().contains("claim_code_type"));
        let mut s = settings();
        s.default_diagnosis = None;
        let c = kit::claim("no-dx");
        let mapped = codes().claim(&c, "K-1").unwrap();
        assert!(
            claim("k", &c, &mapped, &s, "$")
                .unwrap_err()
                .contains("diagnosis")
        );
    }

    /// openIMIS answers items first, then services, numbered anew: each
    /// share lands on the claim line it answers (the consultation is paid,
    /// the uncovered medicine is not), and a resend, refused by openIMIS as
    /// a duplicate code, reads the first answer back.
    #[tokio::test]
    async fn answers_are_matched_by_code_and_a_resend_reads_the_first_back() {
        let (adapter, sim, _task) = partner().await;
        let c = claim_with_medicine("oi-2");
        let req = kit::req("oi-key-2", &c);
        let a = adapter.adjudicate(req).await.unwrap();
        let share = |seq: u32| {
            a.lines
                .iter()
                .find(|l| l.sequence == seq)
                .map(|l| l.mutuelle_share)
        };
        assert_eq!(share(1), Some(1500), "{a:?}");
        assert_eq!(share(2), Some(0), "{a:?}");
        let again = adapter.adjudicate(kit::req("oi-key-2", &c)).await.unwrap();
        assert_eq!(again.lines, a.lines);
        assert_eq!(again.partner_reference, a.partner_reference);
        assert_eq!(
            sim.seen().borrow().adjudications,
            1,
            "openIMIS adjudicated once"
        );
    }

    /// An answer openIMIS gives for another claim code (read back for a
    /// resend, a proxy's cache) is refused as malformed, never booked on
    /// this claim: its lines name the same acts, and would fit it. The
    /// simulated openIMIS holds, under this claim's code, the answer to
    /// another claim of the same acts.
    #[tokio::test]
    async fn an_answer_for_another_claim_code_is_never_booked() {
        let answers = crate::sim_http::OpenimisAnswers::default();
        let (adapter, _sim, _task) = partner_keeping(answers.clone()).await;
        let first = claim_with_medicine("oi-a");
        adapter
            .adjudicate(kit::req("oi-key-a", &first))
            .await
            .unwrap();
        let other = answers.get(&claim_code("oi-key-a")).unwrap();
        answers.put(&claim_code("oi-key-b"), other.clone());
        let second = claim_with_medicine("oi-b");
        match adapter.adjudicate(kit::req("oi-key-b", &second)).await {
            Err(crate::AdapterError::Malformed(m)) => {
                assert!(m.contains(&claim_code("oi-key-a")), "{m}");
                assert!(m.contains(&claim_code("oi-key-b")), "{m}");
            }
            other => panic!("{other:?}"),
        }
        // Its own code, in `identifier` or in `request`, is read.
        let mut own = other.clone();
        own["identifier"][0]["value"] = json!(claim_code("oi-key-b"));
        assert!(answers_the_code(&own, &claim_code("oi-key-b")).is_ok());
        own["request"] =
            json!({ "identifier": { "type": { "coding": [{ "code": "MR" }] }, "value": "PS00" } });
        assert!(
            answers_the_code(&own, &claim_code("oi-key-b"))
                .unwrap_err()
                .contains("request")
        );
        // One that names no code is matched by its lines.
        own.as_object_mut().unwrap().remove("identifier");
        own.as_object_mut().unwrap().remove("request");
        assert!(answers_the_code(&own, &claim_code("oi-key-b")).is_ok());
    }

    /// A line the scheme refused is never asked of openIMIS (its Claim has
    /// no field for the scheme's outcome: it was asked for the whole
    /// billed amount, and any share answered made the broker reject the
    /// whole claim); it is answered here, M = 0, with the scheme's reason.
    /// A claim left with nothing to ask is answered here entirely, M = 0,
    /// never refused as if the mutuelle had refused it.
    #[tokio::test]
    async fn lines_the_scheme_refused_are_answered_here() {
        use passerelle_domain::ReasonCode;
        let (adapter, sim, _task) = partner().await;
        let mut c = claim_with_medicine("oi-refused");
        c.lines[0].outcome = SchemeOutcome::Refused;
        c.lines[0].scheme_share = 0;
        c.lines[0].scheme_reason = "acte non remboursable".into();
        let a = adapter
            .adjudicate(kit::req("oi-key-refused", &c))
            .await
            .unwrap();
        let shares =
            passerelle_domain::validate::check_answer(&c.lines, a.lines).expect("a valid answer");
        assert_eq!(shares[0].mutuelle_share, 0);
        assert_eq!(shares[0].reasons[0].code, ReasonCode::SchemeRefused);
        assert!(
            shares[0].reasons[0]
                .message
                .contains("acte non remboursable")
        );
        assert_eq!(sim.seen().borrow().adjudications, 1, "the medicine asked");
        c.lines.truncate(1);
        let a = adapter
            .adjudicate(kit::req("oi-key-none", &c))
            .await
            .expect("answered here, not refused");
        assert_eq!(
            a.lines.iter().map(|l| l.mutuelle_share).collect::<Vec<_>>(),
            [0]
        );
        assert_eq!(sim.seen().borrow().adjudications, 1, "nothing sent");
        // Its cancel has nothing to undo in openIMIS: done, no person told
        // to reject in openIMIS a claim it never received.
        assert_eq!(a.partner_reference, "");
        adapter
            .cancel(crate::CancelRequest {
                idempotency_key: "cxl-none",
                adjudication_key: "oi-key-none",
                scheme_id: "CNSS",
                claim_id: "oi-refused",
                reason: "sent twice",
                partner_reference: &a.partner_reference,
                answer_refused: false,
            })
            .await
            .expect("nothing to undo");
    }

    /// Matching openIMIS's renumbered answer back to the claim: by kind
    /// and code, repeated codes in order, letter case aside; a line naming
    /// no code, or a code the claim does not hold, is refused.
    #[test]
    fn renumbering_matches_kind_and_code() {
        let mut c = claim_with_medicine("rn-1");
        // Lines: 1 service CONSULT, 2 item PARA500, 3 service CONSULT.
        c.lines.push(c.lines[0].clone());
        let lines = codes().claim(&c, "K-1").unwrap().lines;
        let item = |kind: &str, code: &str, seq: u32| json!({ "itemSequence": seq, "extension": [{ "url": ITEM_REFERENCE, "valueReference": { "type": kind, "display": code } }] });
        let mut answer = json!({ "item": [
            item("Medication", "para500", 1),
            item("ActivityDefinition", "CONSULT", 2),
            item("ActivityDefinition", "CONSULT", 3)
        ] });
        renumber(&mut answer, &lines).unwrap();
        let seqs: Vec<u64> = answer["item"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["itemSequence"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, vec![2, 1, 3]);
        // A fourth CONSULT: no line left to match.
        let mut extra = answer.clone();
        extra["item"]
            .as_array_mut()
            .unwrap()
            .push(item("ActivityDefinition", "CONSULT", 4));
        assert!(
            renumber(&mut extra, &lines)
                .unwrap_err()
                .contains("item[3]")
        );
        // The kind counts: PARA500 as a service is no claim line.
        let mut wrong_kind = json!({ "item": [item("ActivityDefinition", "PARA500", 1)] });
        assert!(renumber(&mut wrong_kind, &lines).is_err());
        // A line without its code reference cannot be placed.
        let mut bare = json!({ "item": [{ "itemSequence": 1 }] });
        assert!(
            renumber(&mut bare, &lines)
                .unwrap_err()
                .contains("cannot be matched")
        );
    }

    #[tokio::test]
    async fn a_cancel_is_refused_as_unsupported_naming_the_claim_code() {
        let (adapter, sim, _task) = partner().await;
        let e = adapter
            .cancel(crate::CancelRequest {
                idempotency_key: "cxl",
                adjudication_key: "oi-key-3",
                scheme_id: "CNSS",
                claim_id: "oi-3",
                reason: "sent twice",
                partner_reference: "IMIS-RESP-3",
                answer_refused: false,
            })
            .await
            .unwrap_err();
        match e {
            crate::AdapterError::Unsupported(m) => {
                assert!(m.contains(&claim_code("oi-key-3")), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(sim.cancel_keys().is_empty());
        // The cancel of an answer passerelle refused (no reference stored,
        // but openIMIS holds the claim) is a person's to make too, never
        // taken for a claim openIMIS never received.
        let refused = |answer_refused| crate::CancelRequest {
            idempotency_key: "cxl-4",
            adjudication_key: "oi-key-4",
            scheme_id: "CNSS",
            claim_id: "oi-4",
            reason: "passerelle refused this adjudication's answer",
            partner_reference: "",
            answer_refused,
        };
        match adapter.cancel(refused(true)).await {
            Err(crate::AdapterError::Unsupported(m)) => {
                assert!(m.contains(&claim_code("oi-key-4")), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(adapter.cancel(refused(false)).await.is_ok(), "never sent");
    }
}
