//! The claim file of `passerelle claim submit FILE`: JSON or TOML, by its
//! extension. Field names are those of `CoordinateClaimRequest`; enums are
//! written in words ("consultation", "covered", "provider"). Documented in
//! docs/cli.md. The broker checks the content; this only reads the file.

use std::path::Path;

use passerelle_domain::{CareCategory, Payee, SchemeOutcome};
use passerelle_proto::common::v1::Stay;
use passerelle_proto::convert;
use passerelle_proto::scheme::v1 as pb;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimFile {
    pub scheme_id: String,
    pub claim_id: String,
    pub provider_id: String,
    pub invoice_number: String,
    /// "provider" (tiers payant, the default) or "member".
    #[serde(default = "provider")]
    pub payee: Payee,
    pub beneficiary_id: String,
    #[serde(default)]
    pub beneficiary_category: String,
    #[serde(default)]
    pub mutuelle_id: String,
    #[serde(default)]
    pub member_number: String,
    pub date_of_care: String,
    #[serde(default)]
    pub stay: Option<StayFile>,
    #[serde(default)]
    pub diagnoses: Vec<String>,
    pub currency: String,
    /// The reference of a prior authorization the claim is paid against.
    #[serde(default)]
    pub prior_authorization_reference: String,
    pub lines: Vec<LineFile>,
}

fn provider() -> Payee {
    Payee::Provider
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StayFile {
    pub stay_id: String,
    pub admission_date: String,
    #[serde(default)]
    pub discharge_date: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineFile {
    pub act_code: String,
    pub care_category: CareCategory,
    #[serde(default = "one")]
    pub quantity: u32,
    pub billed: i64,
    pub tariff_base: i64,
    pub scheme_share: i64,
    /// "covered" (the default), "out_of_basket" or "refused".
    #[serde(default = "covered")]
    pub scheme_outcome: SchemeOutcome,
    #[serde(default)]
    pub scheme_reason: String,
}

fn one() -> u32 {
    1
}

fn covered() -> SchemeOutcome {
    SchemeOutcome::Covered
}

impl ClaimFile {
    /// Reads a .json or .toml claim file.
    pub fn read(path: &Path) -> Result<ClaimFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let parsed = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => ClaimFile::from_json(&text),
            Some("toml") => ClaimFile::from_toml(&text),
            _ => Err("the file must end in .json or .toml".to_string()),
        };
        parsed.map_err(|e| format!("{}: {}", path.display(), e.trim_end()))
    }

    /// A claim file's text in JSON.
    pub fn from_json(text: &str) -> Result<ClaimFile, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// A claim file's text in TOML.
    pub fn from_toml(text: &str) -> Result<ClaimFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn into_request(self) -> pb::CoordinateClaimRequest {
        pb::CoordinateClaimRequest {
            scheme_id: self.scheme_id,
            claim_id: self.claim_id,
            provider_id: self.provider_id,
            invoice_number: self.invoice_number,
            payee: convert::payee_to_pb(self.payee),
            beneficiary_id: self.beneficiary_id,
            beneficiary_category: self.beneficiary_category,
            mutuelle_id: self.mutuelle_id,
            member_number: self.member_number,
            date_of_care: self.date_of_care,
            stay: self.stay.map(|s| Stay {
                stay_id: s.stay_id,
                admission_date: s.admission_date,
                discharge_date: s.discharge_date,
            }),
            diagnoses: self.diagnoses,
            currency: self.currency,
            prior_authorization_reference: self.prior_authorization_reference,
            lines: self
                .lines
                .into_iter()
                .map(|l| pb::ClaimLine {
                    act_code: l.act_code,
                    care_category: convert::care_category_to_pb(l.care_category),
                    quantity: l.quantity,
                    billed: l.billed,
                    tariff_base: l.tariff_base,
                    scheme_share: l.scheme_share,
                    scheme_outcome: convert::scheme_outcome_to_pb(l.scheme_outcome),
                    scheme_reason: l.scheme_reason,
                })
                .collect(),
        }
    }
}
