//! Code mapping per partner, from tables in its config: the broker's codes
//! (the scheme's act codes, care categories, facility ids, beneficiary ids,
//! ICD-10 diagnoses) to the partner's.
//!
//! A table left empty passes codes through unchanged. A table with entries is
//! complete: a code missing from it is unmapped, and an unmapped code is a
//! clear reason (UNMAPPED_CODE) — on its line for act codes and categories,
//! on the whole claim for the member, the facility and diagnoses — never a
//! silent zero.

use std::collections::HashMap;

use passerelle_domain::{CareCategory, Claim, ClaimLine, DetailKey, LineShare, Reason, ReasonCode};
use serde::Deserialize;

/// The tables of one partner.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeMaps {
    /// Scheme act code -> partner act code.
    #[serde(default)]
    pub acts: HashMap<String, String>,
    /// Care category ("consultation", "pharmacy"...) -> partner category.
    #[serde(default)]
    pub categories: HashMap<String, String>,
    /// Scheme facility (provider) id -> partner facility id.
    #[serde(default)]
    pub facilities: HashMap<String, String>,
    /// Member number or scheme beneficiary id -> partner member id (for
    /// example an openIMIS CHFID).
    #[serde(default)]
    pub members: HashMap<String, String>,
    /// ICD-10 code -> partner diagnosis code.
    #[serde(default)]
    pub diagnoses: HashMap<String, String>,
}

fn map(table: &HashMap<String, String>, code: &str) -> Option<String> {
    if table.is_empty() {
        Some(code.to_string())
    } else {
        table.get(code).cloned()
    }
}

/// A claim line as the partner knows it.
#[derive(Clone, Debug)]
pub struct MappedLine {
    /// The broker's line (for amounts and the answer).
    pub line: ClaimLine,
    pub sequence: u32,
    pub act: String,
    pub category: String,
}

/// A claim translated to the partner's codes: the lines it can be asked
/// about, and the lines already answered locally (unmapped codes).
#[derive(Clone, Debug)]
pub struct MappedClaim {
    pub member: String,
    pub facility: String,
    pub diagnoses: Vec<String>,
    pub lines: Vec<MappedLine>,
    pub unmapped: Vec<LineShare>,
}

/// `what` in words ("act code"); its detail names it with dashes
/// ("act-code"), which the catalogues say in each language.
fn unmapped(what: &str, code: &str) -> Reason {
    Reason::said(
        ReasonCode::UnmappedCode,
        format!("{what} {code:?} has no mapping for this mutuelle"),
        DetailKey::UnmappedCode,
        [("what", what.replace(' ', "-")), ("code", code.to_string())],
    )
}

impl CodeMaps {
    pub fn category(&self, c: CareCategory) -> Option<String> {
        map(&self.categories, c.as_str())
    }

    /// The partner's member id for a member number (or, failing that, the
    /// scheme beneficiary id).
    /// The member number an answer shows the scheme: the broker's own when
    /// it has one, never the partner's identifier it was mapped to (that
    /// is an internal mapping); else the one the partner was asked with.
    pub fn shown_member(broker_number: Option<&str>, asked: String) -> String {
        match broker_number {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => asked,
        }
    }

    /// Whether member ids are mapped (`codes.members`).
    pub fn maps_members(&self) -> bool {
        !self.members.is_empty()
    }

    pub fn member(&self, member_number: &str, beneficiary_id: &str) -> Result<String, Reason> {
        if self.members.is_empty() {
            return Ok(if member_number.is_empty() {
                beneficiary_id
            } else {
                member_number
            }
            .to_string());
        }
        self.members
            .get(member_number)
            .or_else(|| self.members.get(beneficiary_id))
            .cloned()
            .ok_or_else(|| {
                unmapped(
                    "member",
                    if member_number.is_empty() {
                        beneficiary_id
                    } else {
                        member_number
                    },
                )
            })
    }

    /// Maps lines; lines with an unmapped code are answered here with M = 0.
    pub fn lines(&self, lines: &[ClaimLine]) -> (Vec<MappedLine>, Vec<LineShare>) {
        let mut ok = Vec::new();
        let mut local = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let sequence = i as u32 + 1;
            let act = map(&self.acts, &l.act_code);
            let category = self.category(l.category);
            match (act, category) {
                (Some(act), Some(category)) => ok.push(MappedLine {
                    line: l.clone(),
                    sequence,
                    act,
                    category,
                }),
                (None, _) => local.push(LineShare {
                    sequence,
                    mutuelle_share: 0,
                    reasons: vec![unmapped("act code", &l.act_code)],
                }),
                (_, None) => local.push(LineShare {
                    sequence,
                    mutuelle_share: 0,
                    reasons: vec![unmapped("care category", l.category.as_str())],
                }),
            }
        }
        (ok, local)
    }

    /// Maps a whole claim; a claim-wide code that is unmapped is the reason
    /// the claim cannot be sent.
    pub fn claim(&self, c: &Claim, member_number: &str) -> Result<MappedClaim, Reason> {
        let member = self.member(member_number, &c.beneficiary_id)?;
        let facility = map(&self.facilities, &c.provider_id)
            .ok_or_else(|| unmapped("facility", &c.provider_id))?;
        let diagnoses = c
            .diagnoses
            .iter()
            .map(|d| map(&self.diagnoses, d).ok_or_else(|| unmapped("diagnosis", d)))
            .collect::<Result<Vec<_>, _>>()?;
        let (lines, unmapped) = self.lines(&c.lines);
        Ok(MappedClaim {
            member,
            facility,
            diagnoses,
            lines,
            unmapped,
        })
    }
}

/// Merges the partner's answers with the lines answered locally, in line
/// order.
pub fn merge(mut partner: Vec<LineShare>, local: Vec<LineShare>) -> Vec<LineShare> {
    partner.extend(local);
    partner.sort_by_key(|s| s.sequence);
    partner
}
