//! Input checks on domain values, reported per field with the field path as
//! the protobuf contract spells it (for example `lines[2].scheme_share`).

use crate::claim::{Claim, ClaimLine, SchemeOutcome};
use crate::money::is_currency_code;

// Every bound below is listed in docs/security.md ("Limits"). Amounts are
// in the currency's minor unit. With these bounds no sum passerelle makes
// can overflow an i64 below 92 million claims at the maximum in one total,
// and the store sums in i128 anyway (see `store::Totals`).

/// Most lines in one claim or eligibility request.
pub const MAX_LINES: usize = 200;
/// Most characters in an identifier (claim, beneficiary, act code...).
pub const MAX_ID_LEN: usize = 128;
/// Most diagnoses on one claim.
pub const MAX_DIAGNOSES: usize = 50;
/// Largest amount on one line (billed, tariff base, scheme share):
/// 10,000,000,000 minor units, ten billion F CFA (about 15 million euros),
/// or 100 million in a currency with cents. No act comes near it.
pub const MAX_LINE_AMOUNT: i64 = 10_000_000_000;
/// Largest billed total of one claim: 100,000,000,000 minor units.
pub const MAX_CLAIM_AMOUNT: i64 = 100_000_000_000;
/// Largest amount in a product (a ceiling, a fixed amount per act):
/// 1,000,000,000,000 minor units.
pub const MAX_PRODUCT_AMOUNT: i64 = 1_000_000_000_000;
/// Most product periods on one member.
pub const MAX_PRODUCT_PERIODS: usize = 50;
/// Most members of one mutuelle for one scheme beneficiary: a beneficiary
/// id names one person, whom a mutuelle may renumber a few times. A
/// placeholder written for members without a scheme id (`0`, `NEANT`)
/// would make every eligibility check and claim of that id read them all,
/// and the coverage rule compare them with each other mutuelle's.
pub const MAX_MEMBERS_PER_BENEFICIARY: usize = 10;
/// Largest quantity on one line.
pub const MAX_QUANTITY: u32 = 10_000;
/// Most characters in a short label (beneficiary category).
pub const MAX_LABEL_LEN: usize = 64;
/// Most characters in a free text (a scheme's reason, a cancel reason, a
/// product name).
pub const MAX_TEXT_LEN: usize = 500;
/// Most characters kept of a text a partner sends (an error body, a reason
/// message, a reference): longer texts are cut, on a character boundary,
/// before they are stored.
pub const MAX_PARTNER_TEXT: usize = 1_000;

/// `s` cut to at most `max` characters, on a character boundary (French
/// text has accents: a byte cut could split one), with "…" marking the cut.
pub fn truncate_text(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some(_) => {
            let keep: String = s.chars().take(max.saturating_sub(1)).collect();
            format!("{keep}…")
        }
    }
}

/// `s` as every store can keep it: a NUL, which PostgreSQL refuses in any
/// text (a caller's refused id in an audit row, a partner's binary error
/// body read as text), written as U+FFFD.
pub fn without_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

/// Checks an optional free text: bounded, no control characters but line
/// breaks and tabs.
pub fn check_text(field: &str, v: &str, max: usize, out: &mut Vec<FieldViolation>) {
    if v.chars().count() > max {
        out.push(FieldViolation::new(
            field,
            format!("must be at most {max} characters"),
        ));
    } else if v
        .chars()
        .any(|c| (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || is_bidi_control(c))
    {
        out.push(FieldViolation::new(
            field,
            "must not contain control characters (bidirectional overrides included)",
        ));
    }
}

/// Unicode's bidirectional embeddings, overrides and isolates (U+202A to
/// U+202E, U+2066 to U+2069): invisible, they reorder the text around
/// them where a person reads it (a console page, a mutuelle's screen), so
/// that what is shown is not what was sent. Right-to-left text needs none.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn a_free_text_refuses_control_characters_and_bidi_overrides() {
        let said = |v: &str| {
            let mut out = Vec::new();
            check_text("reason", v, 40, &mut out);
            out.into_iter().map(|f| f.description).collect::<Vec<_>>()
        };
        assert!(said("ligne 1\nligne 2\t.").is_empty());
        assert!(said("عربي ok").is_empty(), "right-to-left text is text");
        for bad in ["a\u{1b}b", "a\u{0}", "x\u{202E}cba", "x\u{2066}y"] {
            assert_eq!(
                said(bad),
                ["must not contain control characters (bidirectional overrides included)"],
                "{bad:?}"
            );
        }
        assert_eq!(said(&"é".repeat(41)), ["must be at most 40 characters"]);
    }

    /// A list past its bound is refused whole, its elements unread: the
    /// violations of one request stay a handful.
    #[test]
    fn a_list_past_its_bound_is_refused_whole() {
        let c = Claim {
            scheme_id: "CNSS".into(),
            claim_id: "C-1".into(),
            provider_id: "CHU".into(),
            invoice_number: "F-1".into(),
            payee: crate::claim::Payee::Provider,
            beneficiary_id: "TG-1".into(),
            beneficiary_category: String::new(),
            mutuelle_id: None,
            member_number: None,
            date_of_care: crate::date::parse("2026-11-20").unwrap(),
            stay: None,
            diagnoses: vec![String::new(); 100_000],
            currency: "XOF".into(),
            lines: vec![],
            prior_authorization: None,
        };
        let mut out = Vec::new();
        check_claim(&c, &mut out);
        assert_eq!(
            out.iter()
                .filter(|v| v.field.starts_with("diagnoses"))
                .count(),
            1
        );
    }

    /// An identifier refuses bidirectional controls as a free text does:
    /// shown reordered on a page, a notice or a CSV, it is not the id sent.
    #[test]
    fn an_identifier_refuses_bidi_controls() {
        let bad = |v: &str| {
            let mut out = Vec::new();
            check_id("claim_id", v, &mut out);
            !out.is_empty()
        };
        assert!(!bad("CNSS-2026-000123"));
        assert!(!bad("عربي-1"));
        for v in ["CNSS-2026-\u{202E}321000", "A\u{2066}B", "A\u{0}B"] {
            assert!(bad(v), "{v:?}");
        }
    }
}

/// Checks an amount: not negative, at most `max`.
pub fn check_amount(field: &str, v: i64, max: i64, out: &mut Vec<FieldViolation>) {
    if v < 0 {
        out.push(FieldViolation::new(field, "must not be negative"));
    } else if v > max {
        out.push(FieldViolation::new(
            field,
            format!("must be at most {max} (minor units)"),
        ));
    }
}

/// One wrong field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Checks a required identifier: non-empty, no surrounding blanks, bounded.
pub fn check_id(field: &str, v: &str, out: &mut Vec<FieldViolation>) {
    if v.trim().is_empty() {
        out.push(FieldViolation::new(field, "must not be empty"));
    } else if v.chars().count() > MAX_ID_LEN {
        out.push(FieldViolation::new(
            field,
            format!("must be at most {MAX_ID_LEN} characters"),
        ));
    } else if v.trim() != v || v.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        // Bidirectional controls too: an id shown reordered (a console
        // page, a notice, a CSV) is not the id sent.
        out.push(FieldViolation::new(
            field,
            "must not have surrounding blanks or control characters",
        ));
    }
}

/// Checks one line's amounts against the money rules.
pub fn check_line(prefix: &str, line: &ClaimLine, out: &mut Vec<FieldViolation>) {
    let f = |name: &str| format!("{prefix}.{name}");
    check_id(&f("act_code"), &line.act_code, out);
    if line.quantity == 0 {
        out.push(FieldViolation::new(f("quantity"), "must be 1 or more"));
    } else if line.quantity > MAX_QUANTITY {
        out.push(FieldViolation::new(
            f("quantity"),
            format!("must be at most {MAX_QUANTITY}"),
        ));
    }
    check_text(&f("scheme_reason"), &line.scheme_reason, MAX_TEXT_LEN, out);
    check_amount(&f("billed"), line.billed, MAX_LINE_AMOUNT, out);
    check_amount(&f("tariff_base"), line.tariff_base, MAX_LINE_AMOUNT, out);
    if line.scheme_share < 0 || line.scheme_share > MAX_LINE_AMOUNT {
        check_amount(&f("scheme_share"), line.scheme_share, MAX_LINE_AMOUNT, out);
    } else if line.billed >= 0 && line.tariff_base >= 0 {
        let max = line.billed.min(line.tariff_base);
        // An amount left out of a JSON or protobuf body reads 0: name it,
        // where the share it bounds would be blamed alone.
        for (name, amount) in [("billed", line.billed), ("tariff_base", line.tariff_base)] {
            if amount == 0 && line.scheme_share > 0 {
                out.push(FieldViolation::new(
                    f(name),
                    "is 0 while the scheme pays a share: is it missing? (a field left out reads 0)",
                ));
            }
        }
        if line.scheme_share > max {
            out.push(FieldViolation::new(
                f("scheme_share"),
                format!(
                    "must be between 0 and min(billed, tariff_base) = min({}, {}) = {max}",
                    line.billed, line.tariff_base
                ),
            ));
        }
    }
    if line.outcome != SchemeOutcome::Covered && line.scheme_share != 0 {
        out.push(FieldViolation::new(
            f("scheme_share"),
            "must be 0 when the scheme outcome is out of basket or refused",
        ));
    }
}

/// Checks a whole claim (after its fields were parsed).
pub fn check_claim(claim: &Claim, out: &mut Vec<FieldViolation>) {
    check_id("scheme_id", &claim.scheme_id, out);
    check_id("claim_id", &claim.claim_id, out);
    check_id("provider_id", &claim.provider_id, out);
    check_id("invoice_number", &claim.invoice_number, out);
    check_id("beneficiary_id", &claim.beneficiary_id, out);
    check_text(
        "beneficiary_category",
        &claim.beneficiary_category,
        MAX_LABEL_LEN,
        out,
    );
    if let Some(m) = &claim.mutuelle_id {
        check_id("mutuelle_id", m, out);
    }
    if let Some(m) = &claim.member_number {
        check_id("member_number", m, out);
    }
    if !is_currency_code(&claim.currency) {
        out.push(FieldViolation::new(
            "currency",
            "must be an ISO 4217 code such as XOF",
        ));
    }
    // Past the bound, the list is refused whole, its elements unread: 4
    // MiB of empty diagnoses made two million violations.
    if claim.diagnoses.len() > MAX_DIAGNOSES {
        out.push(FieldViolation::new(
            "diagnoses",
            format!("at most {MAX_DIAGNOSES} diagnoses"),
        ));
    } else {
        for (i, d) in claim.diagnoses.iter().enumerate() {
            check_id(&format!("diagnoses[{i}]"), d, out);
        }
    }
    if let Some(stay) = &claim.stay {
        check_id("stay.stay_id", &stay.stay_id, out);
        if let Some(d) = stay.discharge
            && d < stay.admission
        {
            out.push(FieldViolation::new(
                "stay.discharge_date",
                "must not be before stay.admission_date",
            ));
        }
        if claim.date_of_care < stay.admission {
            out.push(FieldViolation::new(
                "date_of_care",
                "must not be before stay.admission_date",
            ));
        }
    }
    if claim.lines.is_empty() {
        out.push(FieldViolation::new("lines", "at least one line is needed"));
    } else if claim.lines.len() > MAX_LINES {
        out.push(FieldViolation::new(
            "lines",
            format!("at most {MAX_LINES} lines"),
        ));
    } else {
        for (i, l) in claim.lines.iter().enumerate() {
            check_line(&format!("lines[{i}]"), l, out);
        }
        // i128: each line was checked above, but a sum must never wrap.
        let total: i128 = claim
            .lines
            .iter()
            .map(|l| i128::from(l.billed.max(0)))
            .sum();
        if total > i128::from(MAX_CLAIM_AMOUNT) {
            out.push(FieldViolation::new(
                "lines",
                format!("the billed total must be at most {MAX_CLAIM_AMOUNT} (minor units)"),
            ));
        }
    }
}

/// Checks a partner's answer to a claim paid against its prior
/// authorization (`granted`, each claim line matched to an authorized line
/// as the engine matches them, [`crate::engine::Granted::matches`]): a
/// line billed as authorized (from its authorized amount up to the
/// tolerance above it), which the scheme covered, gets at least what the
/// partner committed for it, as far as the remainder goes: the partner
/// reserved that on its ceilings. A line billed below its authorized
/// amount or past the tolerance, one the scheme left out of its basket or
/// refused, or one matched to no authorized line, is the partner's to value
/// anew. `shares` are [`check_answer`]'s, in line order. Returns a short
/// reason for refusing the answer.
pub fn check_commitment(
    lines: &[ClaimLine],
    shares: &[crate::claim::LineShare],
    granted: &crate::engine::Granted,
) -> Result<(), String> {
    let matched = granted.matches(lines);
    for ((line, share), m) in lines.iter().zip(shares).zip(matched) {
        let Some(g) = m.and_then(|j| granted.lines.get(j)) else {
            continue;
        };
        let Some(floor) = granted.floor(line, g) else {
            continue;
        };
        if share.mutuelle_share < floor {
            return Err(format!(
                "line {}: mutuelle share {} below {floor}, what the prior authorization commits on it (committed {}, remainder {}; billed {}, authorized {})",
                share.sequence,
                share.mutuelle_share,
                g.mutuelle_share,
                line.remainder(),
                line.billed,
                g.billed
            ));
        }
    }
    Ok(())
}

/// Checks a partner's answer against the claim lines it answers: every line
/// answered exactly once, no unknown line, no negative share, M <= R, and
/// M = 0 on a line the scheme refused. Returns the shares in line order, or
/// a short reason for refusing the answer.
pub fn check_answer(
    lines: &[ClaimLine],
    shares: Vec<crate::claim::LineShare>,
) -> Result<Vec<crate::claim::LineShare>, String> {
    let mut slots: Vec<Option<crate::claim::LineShare>> = vec![None; lines.len()];
    for s in shares {
        let idx = (s.sequence as usize).wrapping_sub(1);
        let Some(line) = lines.get(idx) else {
            return Err(format!("answer names unknown line {}", s.sequence));
        };
        if slots[idx].is_some() {
            return Err(format!("line {} answered twice", s.sequence));
        }
        if s.mutuelle_share < 0 {
            return Err(format!(
                "line {}: negative mutuelle share {}",
                s.sequence, s.mutuelle_share
            ));
        }
        if s.mutuelle_share > line.remainder() {
            return Err(format!(
                "line {}: mutuelle share {} above the remainder {}",
                s.sequence,
                s.mutuelle_share,
                line.remainder()
            ));
        }
        if line.outcome == SchemeOutcome::Refused && s.mutuelle_share != 0 {
            return Err(format!(
                "line {}: mutuelle share on a line the scheme refused",
                s.sequence
            ));
        }
        slots[idx] = Some(s);
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.ok_or_else(|| format!("line {} not answered", i + 1)))
        .collect()
}
