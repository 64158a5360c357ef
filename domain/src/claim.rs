//! A claim as the scheme adjudicated it, in domain form.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::date::{self, Date};
use crate::money::Amount;
use crate::reason::Reason;

/// Care category of an act; mirrors `passerelle.common.v1.CareCategory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CareCategory {
    Consultation,
    Pharmacy,
    Lab,
    Imaging,
    Hospitalisation,
    Maternity,
    Dental,
    Optical,
    Other,
}

impl CareCategory {
    pub const ALL: [CareCategory; 9] = [
        CareCategory::Consultation,
        CareCategory::Pharmacy,
        CareCategory::Lab,
        CareCategory::Imaging,
        CareCategory::Hospitalisation,
        CareCategory::Maternity,
        CareCategory::Dental,
        CareCategory::Optical,
        CareCategory::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CareCategory::Consultation => "consultation",
            CareCategory::Pharmacy => "pharmacy",
            CareCategory::Lab => "lab",
            CareCategory::Imaging => "imaging",
            CareCategory::Hospitalisation => "hospitalisation",
            CareCategory::Maternity => "maternity",
            CareCategory::Dental => "dental",
            CareCategory::Optical => "optical",
            CareCategory::Other => "other",
        }
    }
}

/// The scheme's outcome for a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SchemeOutcome {
    Covered,
    OutOfBasket,
    Refused,
}

impl SchemeOutcome {
    /// Its name, as serde writes it ("out_of_basket").
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Who is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payee {
    Provider,
    Member,
}

/// A hospital stay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stay {
    pub stay_id: String,
    #[serde(with = "date::serde_iso")]
    pub admission: Date,
    #[serde(with = "date::serde_iso::option", default)]
    pub discharge: Option<Date>,
}

/// One claim line. Amounts are line totals with the quantity applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimLine {
    pub act_code: String,
    pub category: CareCategory,
    pub quantity: u32,
    /// B.
    pub billed: Amount,
    /// E.
    pub tariff_base: Amount,
    /// S.
    pub scheme_share: Amount,
    pub outcome: SchemeOutcome,
    #[serde(default)]
    pub scheme_reason: String,
}

impl ClaimLine {
    /// TM = min(B, E) - S. Never negative for a valid line.
    pub fn ticket_moderateur(&self) -> Amount {
        (self.billed.min(self.tariff_base) - self.scheme_share).max(0)
    }

    /// D = max(0, B - E).
    pub fn overrun(&self) -> Amount {
        (self.billed - self.tariff_base).max(0)
    }

    /// R = B - S = TM + D for a valid line.
    pub fn remainder(&self) -> Amount {
        self.billed - self.scheme_share
    }
}

/// A claim: what the scheme sends, in canonical domain form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub scheme_id: String,
    pub claim_id: String,
    pub provider_id: String,
    pub invoice_number: String,
    pub payee: Payee,
    pub beneficiary_id: String,
    #[serde(default)]
    pub beneficiary_category: String,
    #[serde(default)]
    pub mutuelle_id: Option<String>,
    #[serde(default)]
    pub member_number: Option<String>,
    #[serde(with = "date::serde_iso")]
    pub date_of_care: Date,
    #[serde(default)]
    pub stay: Option<Stay>,
    #[serde(default)]
    pub diagnoses: Vec<String>,
    pub currency: String,
    pub lines: Vec<ClaimLine>,
    /// The reference of the prior authorization the claim quotes. Not
    /// written when absent, so that a claim without one hashes as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_authorization: Option<String>,
}

impl Claim {
    /// SHA-256 (hex) of the claim's canonical form: the JSON of this struct,
    /// fields in declaration order. Two requests that mean the same claim hash
    /// the same whatever their protobuf encoding (field order, default values).
    pub fn canonical_hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("claim serializes");
        hex::encode(Sha256::digest(&json))
    }
}

/// The mutuelle's answer for one line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineShare {
    /// 1-based line position.
    pub sequence: u32,
    /// M.
    pub mutuelle_share: Amount,
    #[serde(default)]
    pub reasons: Vec<Reason>,
}

/// Lifecycle of a claim; mirrors `passerelle.scheme.v1.ClaimState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    Received,
    PendingPartner,
    Coordinated,
    Rejected,
    CancelPending,
    Cancelled,
}

impl ClaimState {
    /// Every state, in the order of a claim's life.
    pub const ALL: [ClaimState; 6] = [
        ClaimState::Received,
        ClaimState::PendingPartner,
        ClaimState::Coordinated,
        ClaimState::Rejected,
        ClaimState::CancelPending,
        ClaimState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::Received => "received",
            ClaimState::PendingPartner => "pending_partner",
            ClaimState::Coordinated => "coordinated",
            ClaimState::Rejected => "rejected",
            ClaimState::CancelPending => "cancel_pending",
            ClaimState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => ClaimState::Received,
            "pending_partner" => ClaimState::PendingPartner,
            "coordinated" => ClaimState::Coordinated,
            "rejected" => ClaimState::Rejected,
            "cancel_pending" => ClaimState::CancelPending,
            "cancelled" => ClaimState::Cancelled,
            _ => return None,
        })
    }

    /// The mutuelle has not given its final answer yet.
    pub fn awaiting_partner(self) -> bool {
        matches!(self, ClaimState::Received | ClaimState::PendingPartner)
    }
}

/// An eligibility question in domain form: who, on which date, and
/// optionally the lines the provider plans (for an estimate).
#[derive(Clone, Debug)]
pub struct EligibilityInput {
    pub scheme_id: String,
    pub beneficiary_id: String,
    pub date_of_care: Date,
    pub mutuelle_id: Option<String>,
    pub member_number: Option<String>,
    pub currency: String,
    pub lines: Vec<ClaimLine>,
    pub diagnoses: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_are_serde_s() {
        for o in [
            SchemeOutcome::Covered,
            SchemeOutcome::OutOfBasket,
            SchemeOutcome::Refused,
        ] {
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                serde_json::Value::String(o.as_str().into())
            );
        }
    }
}
