//! Reading what a FHIR partner answers, as pure functions of the JSON:
//! ClaimResponse (either dialect), CoverageEligibilityResponse, the Claim
//! (for `passerelle translate`), and the exact decimals and currencies in
//! them; every error names its path. The fuzz targets call these.

use std::collections::HashMap;

use passerelle_domain::engine::CostShareKind;
use passerelle_domain::money::minor_unit_digits;
use passerelle_domain::{DetailKey, LineShare, Reason, ReasonCode};
use serde_json::{Value, json};

use super::Dialect;
use crate::codes::MappedLine;
use crate::decimal::{format_minor, parse_minor, parse_whole};
use crate::{AdapterError, EligibilityAnswer};

// ---------------------------------------------------------------- decimals

/// A decimal as exact JSON (arbitrary precision), from minor units.
pub fn decimal(v: i64, digits: u32) -> Value {
    Value::Number(format_minor(v, digits).parse().expect("a decimal"))
}

pub(super) fn money(v: i64, currency: &str) -> Value {
    json!({ "value": decimal(v, minor_unit_digits(currency).unwrap_or(0)), "currency": currency })
}

/// Where a bad value is in a document: "ClaimResponse.item[0].adjudication[3].amount.value".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PathError {
    pub path: String,
    pub message: String,
}

fn perr(path: &str, m: impl Into<String>) -> PathError {
    PathError {
        path: path.to_string(),
        message: m.into(),
    }
}

/// Resolves a currency string: an ISO code, or one mapped by config.
pub fn currency(
    raw: &str,
    symbols: &HashMap<String, String>,
    path: &str,
) -> Result<(String, u32), PathError> {
    let code = symbols.get(raw).cloned().unwrap_or_else(|| raw.to_string());
    let digits = minor_unit_digits(&code).ok_or_else(|| {
        perr(
            path,
            format!(
                "{raw:?} is not an ISO 4217 currency in use; a symbol (such as \"$\" or \"FCFA\") is mapped to a code in the partner's currency_symbols"
            ),
        )
    })?;
    Ok((code, digits))
}

/// Reads a FHIR Money into minor units, with the currency it carries (or
/// `default` when it carries none).
pub fn read_money(
    v: &Value,
    path: &str,
    symbols: &HashMap<String, String>,
    default: Option<&str>,
) -> Result<(i64, String), PathError> {
    let raw_cur = v
        .get("currency")
        .and_then(Value::as_str)
        .or(default)
        .ok_or_else(|| perr(path, "no currency"))?;
    let (code, digits) = currency(raw_cur, symbols, &format!("{path}.currency"))?;
    let value = v.get("value").ok_or_else(|| perr(path, "no value"))?;
    let text = number_text(value, &format!("{path}.value"))?;
    let minor =
        parse_minor(&text, digits, false, false).map_err(|m| perr(&format!("{path}.value"), m))?;
    Ok((minor, code))
}

fn number_text(v: &Value, path: &str) -> Result<String, PathError> {
    match v {
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(s.clone()),
        _ => Err(perr(path, "not a number")),
    }
}

fn code_of(v: &Value) -> Option<&str> {
    v.pointer("/coding/0/code")
        .and_then(Value::as_str)
        .or_else(|| v.get("text").and_then(Value::as_str))
}

// ---------------------------------------------------------------- answers

/// One line of a ClaimResponse as the broker understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseLine {
    pub sequence: u32,
    pub quantity: Option<i64>,
    pub unit_price: Option<i64>,
    pub line_total: Option<i64>,
    /// The mutuelle's share (benefit), minor units.
    pub benefit: i64,
    /// openIMIS: the claim-status code of the line; standard: None.
    pub status: Option<u32>,
    pub reasons: Vec<Reason>,
}

/// A ClaimResponse as the broker understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedClaimResponse {
    pub outcome: String,
    pub currency: String,
    pub lines: Vec<ResponseLine>,
    pub reference: String,
    /// `disposition`: the payer's words on the outcome.
    pub disposition: String,
    /// `error[]`: each error's code (display when given), with the line it
    /// names (`itemSequence`) if any.
    pub errors: Vec<PayerError>,
    /// `processNote[].text`: notes for the provider.
    pub notes: Vec<String>,
}

/// One `error[]` of a ClaimResponse: the line it names, and its words.
pub type PayerError = (Option<u32>, String);

/// `disposition`, `error[]` and `processNote[]` of a ClaimResponse.
fn payer_words(v: &Value) -> (String, Vec<PayerError>, Vec<String>) {
    let text = |x: Option<&Value>| x.and_then(Value::as_str).unwrap_or("").to_string();
    let disposition = text(v.get("disposition"));
    let errors = v
        .get("error")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let line = e
                .get("itemSequence")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok());
            let coding = e.pointer("/code/coding/0");
            let word = coding
                .and_then(|c| c.get("display").or_else(|| c.get("code")))
                .or_else(|| e.pointer("/code/text"))
                .and_then(Value::as_str)
                .unwrap_or("unspecified error")
                .to_string();
            (line, word)
        })
        .collect();
    let notes = v
        .get("processNote")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| n.get("text").and_then(Value::as_str))
        .map(String::from)
        .collect();
    (disposition, errors, notes)
}

impl ParsedClaimResponse {
    /// The payer's own words on an answer it did not complete: its
    /// disposition and the errors it names, for the claim's reason.
    pub fn explanation(&self) -> String {
        let mut parts = Vec::new();
        if !self.disposition.is_empty() {
            parts.push(self.disposition.clone());
        }
        for (line, e) in &self.errors {
            parts.push(match line {
                Some(n) => format!("line {n}: {e}"),
                None => e.clone(),
            });
        }
        parts.join("; ")
    }
}

const STATUS: [(u32, &str); 5] = [
    (1, "rejected"),
    (2, "entered"),
    (4, "checked"),
    (8, "processed"),
    (16, "valuated"),
];

/// One currency per answer: the first amount's; another is an error (never
/// amounts in two currencies read as one).
fn same_currency(seen: &mut String, c: &str, path: &str) -> Result<(), PathError> {
    if seen.is_empty() {
        *seen = c.to_string();
    } else if seen != c {
        return Err(perr(
            path,
            format!("{c} where the answer's earlier amounts are in {seen}"),
        ));
    }
    Ok(())
}

/// Whether an adjudication answers the Claim that was sent: a
/// ClaimResponse names it in `request` (an ExplanationOfBenefit in
/// `claim`), a Reference(Claim). Where that reference carries an
/// identifier of a system the Claim was sent with (`sent`: the Claim's
/// `identifier` array), its value must be the one sent; one without a
/// system that has the form of a value sent (`adj-…`, `CNSS/…`) must be
/// one of them. Another system's identifier, a value of another form (the
/// server's own number), or none (a reference by the server's own id,
/// `Claim/123`) cannot be checked and passes. An answer for another claim is refused as
/// malformed, never booked on this one.
pub fn answers_the_claim_sent(v: &Value, sent: &Value) -> Result<(), PathError> {
    let (res, field) = match v.get("resourceType").and_then(Value::as_str) {
        Some("ExplanationOfBenefit") => ("ExplanationOfBenefit", "claim"),
        Some("CoverageEligibilityResponse") => ("CoverageEligibilityResponse", "request"),
        _ => ("ClaimResponse", "request"),
    };
    let what = if field == "request" && res != "ClaimResponse" {
        "question"
    } else {
        "claim"
    };
    let Some(id) = v.get(field).and_then(|r| r.get("identifier")) else {
        return Ok(());
    };
    let path = format!("{res}.{field}.identifier");
    let value = id.get("value").and_then(Value::as_str).unwrap_or("");
    let system = id.get("system").and_then(Value::as_str);
    let sent: Vec<(&str, &str)> = sent
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| Some((i.get("system")?.as_str()?, i.get("value")?.as_str()?)))
        .collect();
    // The form of a value sent: up to its first '-' or '/' ("adj-",
    // "CNSS/"), by which a value without a system is told to be one of
    // ours rather than the server's own number.
    let form = |v: &str| v.find(['-', '/']).map(|i| v[..=i].to_string());
    let ours = match system {
        Some(system) => match sent.iter().find(|(s, _)| *s == system) {
            Some((_, v)) => *v == value,
            None => return Ok(()),
        },
        None if sent.iter().any(|(_, v)| *v == value) => true,
        // Without a system, only a value of the form of ours is checked: a
        // server's own claim number cannot be told from another claim's.
        None => !sent
            .iter()
            .any(|(_, v)| form(v).is_some_and(|f| value.starts_with(&f))),
    };
    if ours {
        return Ok(());
    }
    let expected: Vec<String> = sent.iter().map(|(s, v)| format!("{v} ({s})")).collect();
    Err(perr(
        &path,
        format!(
            "the answer is for {what} {value:?}, not for the {what} sent, {}: an answer for another {what} is never used",
            expected.join(" or ")
        ),
    ))
}

/// Whether an answer is about the patient the request named (`sent`: the
/// request's `patient`, by an identifier or, openIMIS, `Patient/<CHFID>`):
/// a patient identifier of the system (or the identifier type) sent, or of
/// openIMIS's CHFID type (`Code`), with another value is an answer about
/// someone else: refused as malformed, never shown to a scheme nor booked
/// on this claim, and without quoting that person's number. A reference
/// (`Patient/<id>`) in the answer is not compared: a server answers with
/// its own id (openIMIS replaces the `Patient/<CHFID>` it is asked about
/// with its insuree's UUID), which cannot be told from another person's.
/// A patient named another way, or not named, passes.
pub fn answers_the_patient_sent(v: &Value, sent: &Value) -> Result<(), PathError> {
    let res = v
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("answer");
    let Some(got) = v.pointer("/patient/identifier") else {
        return Ok(());
    };
    let text = |x: Option<&Value>, p: &str| {
        x.and_then(|x| x.pointer(p))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let asked = sent.get("identifier");
    let asked_value = text(asked, "/value").or_else(|| {
        text(Some(sent), "/reference").and_then(|r| r.strip_prefix("Patient/").map(String::from))
    });
    let same_kind =
        |p: &str| matches!((text(Some(got), p), text(asked, p)), (Some(a), Some(b)) if a == b);
    // openIMIS's CHFID type, where the question named the patient so.
    let chfid =
        asked.is_none() && text(Some(got), "/type/coding/0/code").as_deref() == Some("Code");
    match (text(Some(got), "/value"), asked_value) {
        (Some(a), Some(b))
            if a != b && (same_kind("/system") || same_kind("/type/coding/0/code") || chfid) =>
        {
            Err(perr(
                &format!("{res}.patient.identifier.value"),
                format!(
                    "the answer is about another patient than {b:?}, the one asked about: an answer about another person is never used"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Reads a ClaimResponse (standard or openIMIS).
///
/// `default_currency` is the currency of an amount that names none (the
/// claim's, which the partner answers in): openIMIS's implementation guide
/// publishes answers whose Money carries no currency.
pub fn parse_claim_response(
    v: &Value,
    dialect: Dialect,
    symbols: &HashMap<String, String>,
    default_currency: Option<&str>,
) -> Result<ParsedClaimResponse, PathError> {
    // A payer may answer with an ExplanationOfBenefit instead: the same
    // items, adjudications, added items and totals, its items numbered by
    // `sequence` rather than `itemSequence`.
    let res = match v.get("resourceType").and_then(Value::as_str) {
        Some("ClaimResponse") => "ClaimResponse",
        Some("ExplanationOfBenefit") if dialect == Dialect::Standard => "ExplanationOfBenefit",
        Some(other @ ("PaymentReconciliation" | "PaymentNotice" | "Coverage")) => {
            return Err(perr(
                "resourceType",
                format!(
                    "a {other} is no adjudication: passerelle reads the shares of a ClaimResponse or an ExplanationOfBenefit"
                ),
            ));
        }
        _ => return Err(perr("resourceType", "not a ClaimResponse")),
    };
    let seq_field = if res == "ClaimResponse" {
        "itemSequence"
    } else {
        "sequence"
    };
    let outcome = v
        .get("outcome")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let reference = v
        .pointer("/identifier/0/value")
        .or_else(|| v.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut currency_code = String::new();
    let mut lines = Vec::new();
    let items = v
        .get("item")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{res}.item[{i}]");
        let seq = item
            .get(seq_field)
            .and_then(Value::as_u64)
            .ok_or_else(|| perr(&format!("{p}.{seq_field}"), "missing"))?;
        // Never truncated: 4294967297 is no line, not line 1.
        let seq = u32::try_from(seq).map_err(|_| {
            perr(
                &format!("{p}.{seq_field}"),
                format!("{seq} is not a line number"),
            )
        })?;
        let adj = item
            .get("adjudication")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut line = ResponseLine {
            sequence: seq,
            quantity: None,
            unit_price: None,
            line_total: None,
            benefit: 0,
            status: None,
            reasons: Vec::new(),
        };
        let mut seen_benefit = false;
        // openIMIS: the unit price the line was entered with (status 2).
        let mut asked_unit: Option<i64> = None;
        for (j, a) in adj.iter().enumerate() {
            let ap = format!("{p}.adjudication[{j}]");
            let cat = a.get("category").and_then(code_of).unwrap_or("");
            let reason = a.pointer("/reason/coding/0").map(|r| {
                let code = r.get("code").and_then(Value::as_str).unwrap_or("");
                let display = r.get("display").and_then(Value::as_str).unwrap_or(code);
                Reason::new(ReasonCode::PartnerRule, display.to_string())
            });
            match dialect {
                Dialect::Standard => {
                    let amount = a
                        .get("amount")
                        .map(|m| read_money(m, &format!("{ap}.amount"), symbols, default_currency))
                        .transpose()?;
                    if let Some((_, c)) = &amount {
                        same_currency(&mut currency_code, c, &format!("{ap}.amount.currency"))?;
                    }
                    match cat {
                        "submitted" => line.line_total = amount.map(|(x, _)| x).or(line.line_total),
                        "eligible" if line.line_total.is_none() => {
                            line.line_total = amount.map(|(x, _)| x)
                        }
                        "benefit" if seen_benefit => return Err(twice(&ap)),
                        "benefit" => {
                            line.benefit = amount.map(|(x, _)| x).ok_or_else(|| {
                                perr(&format!("{ap}.amount"), "benefit without amount")
                            })?;
                            seen_benefit = true;
                            line.reasons.extend(reason);
                        }
                        _ => {}
                    }
                }
                Dialect::Openimis => {
                    let status: Option<u32> = match cat.parse::<u32>() {
                        // A number is a status code: one openIMIS defines,
                        // never a line left waiting on a code it has not.
                        Ok(n) if STATUS.iter().any(|(c, _)| *c == n) => Some(n),
                        Ok(n) => {
                            return Err(perr(
                                &format!("{ap}.category"),
                                format!("{n} is not an openIMIS claim status (1, 2, 4, 8 or 16)"),
                            ));
                        }
                        Err(_) => STATUS.iter().find(|(_, t)| *t == cat).map(|(c, _)| *c),
                    };
                    let Some(status) = status else { continue };
                    line.status = Some(status);
                    // openIMIS writes rejection reason 0, "ACCEPTED", on
                    // every line it accepts, in each status it reached:
                    // no reason; any other is said once.
                    let code = a.pointer("/reason/coding/0/code").and_then(Value::as_str);
                    let accepted = code.is_some_and(|c| c.trim() == "0")
                        || reason
                            .as_ref()
                            .is_some_and(|r| r.message.eq_ignore_ascii_case("accepted"));
                    if let Some(r) = reason.filter(|_| !accepted)
                        && !line.reasons.contains(&r)
                    {
                        line.reasons.push(r);
                    }
                    // What openIMIS writes (api_fhir_r4's ClaimResponse
                    // converter, claim module's valuation): in the
                    // earlier statuses `amount` is a unit price and
                    // `value` the quantity; in the valuated status (16)
                    // `amount` is the line's valuated price, already a
                    // line total (quantity × unit price, then deductibles
                    // and ceilings). A line valued at 0 carries no amount
                    // (older releases) or the asked unit price again
                    // (later ones): an amount equal to the asked unit
                    // price on more than one unit is read as 0; on one
                    // unit it cannot be told from a line valued in full,
                    // and is read so (docs/adapters.md).
                    let amount = match a.get("amount") {
                        Some(m) => {
                            let (v, c) =
                                read_money(m, &format!("{ap}.amount"), symbols, default_currency)?;
                            same_currency(
                                &mut currency_code,
                                &c,
                                &format!("{ap}.amount.currency"),
                            )?;
                            Some(v)
                        }
                        None => None,
                    };
                    // A quantity openIMIS approved may be fractional (it
                    // keeps two decimals): read where a unit price needs
                    // it, and for the valuated line only as a count.
                    let whole = |a: &Value| -> Result<Option<i64>, PathError> {
                        a.get("value")
                            .map(|q| {
                                parse_whole(&number_text(q, &format!("{ap}.value"))?)
                                    .map_err(|m| perr(&format!("{ap}.value"), m))
                            })
                            .transpose()
                    };
                    match status {
                        1 => line.benefit = 0,
                        16 => {
                            let qty = whole(a).ok().flatten();
                            line.quantity = qty.or(line.quantity);
                            let valued_zero = amount.is_none()
                                || (amount == asked_unit && qty.or(line.quantity).unwrap_or(1) > 1);
                            let total = if valued_zero { 0 } else { amount.unwrap_or(0) };
                            line.line_total = Some(total);
                            line.benefit = total;
                        }
                        _ => {
                            let qty = whole(a)?.unwrap_or(1);
                            line.quantity = Some(qty);
                            if let Some(unit) = amount {
                                if status == 2 {
                                    asked_unit = Some(unit);
                                }
                                let total = unit
                                    .checked_mul(qty)
                                    .ok_or_else(|| perr(&ap, "amount x value overflows"))?;
                                line.unit_price = Some(unit);
                                line.line_total = Some(total);
                                line.benefit = total;
                            }
                        }
                    }
                    seen_benefit = true;
                }
            }
        }
        if !seen_benefit {
            return Err(perr(&p, "no benefit adjudication for this item"));
        }
        lines.push(line);
    }
    if dialect == Dialect::Standard {
        let money = |m: &Value, path: &str| read_money(m, path, symbols, default_currency);
        add_items(v, res, &mut lines, &mut currency_code, &money)?;
        check_total(v, res, &lines, &mut currency_code, &money)?;
    }
    let (disposition, errors, notes) = payer_words(v);
    Ok(ParsedClaimResponse {
        outcome,
        currency: currency_code,
        lines,
        reference,
        disposition,
        errors,
        notes,
    })
}

/// Reads a Money at a path: minor units and currency code.
type ReadMoney<'a> = dyn Fn(&Value, &str) -> Result<(i64, String), PathError> + 'a;

/// A second `benefit` adjudication on one item: which of the two the
/// mutuelle pays cannot be told (the last one read was paid, and the sum
/// of the items no longer tied to what was booked).
fn twice(path: &str) -> PathError {
    perr(
        path,
        "a second benefit adjudication on this item: which one the mutuelle pays cannot be told",
    )
}

/// The benefit of one adjudication list (category `benefit`), if any.
fn benefit_of(
    adjudication: Option<&Value>,
    path: &str,
    currency: &mut String,
    money: &ReadMoney<'_>,
) -> Result<(Option<i64>, Vec<Reason>), PathError> {
    let mut benefit = None;
    let mut reasons = Vec::new();
    for (j, a) in adjudication
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if a.get("category").and_then(code_of) != Some("benefit") {
            continue;
        }
        if benefit.is_some() {
            return Err(twice(&format!("{path}.adjudication[{j}]")));
        }
        let ap = format!("{path}.adjudication[{j}].amount");
        let m = a
            .get("amount")
            .ok_or_else(|| perr(&ap, "benefit without amount"))?;
        let (amount, c) = money(m, &ap)?;
        same_currency(currency, &c, &format!("{ap}.currency"))?;
        benefit = Some(amount);
        if let Some(r) = a.pointer("/reason/coding/0") {
            let code = r.get("code").and_then(Value::as_str).unwrap_or("");
            let display = r.get("display").and_then(Value::as_str).unwrap_or(code);
            reasons.push(Reason::new(ReasonCode::PartnerRule, display.to_string()));
        }
    }
    Ok((benefit, reasons))
}

/// `ClaimResponse.addItem`: services the payer adds, each tied to the claim
/// line it belongs to (`itemSequence`, one line). Its benefit is paid on
/// that line, beside the line's own (a payer that substitutes a service
/// for the one billed answers so). An added item tied to no line, or to
/// several, cannot be paid per claim line: refused, named.
fn add_items(
    v: &Value,
    res: &str,
    lines: &mut [ResponseLine],
    currency: &mut String,
    money: &ReadMoney<'_>,
) -> Result<(), PathError> {
    let Some(added) = v.get("addItem").and_then(Value::as_array) else {
        return Ok(());
    };
    for (k, add) in added.iter().enumerate() {
        let p = format!("{res}.addItem[{k}]");
        let seqs: Vec<u64> = add
            .get("itemSequence")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let [seq] = seqs.as_slice() else {
            return Err(perr(
                &format!("{p}.itemSequence"),
                "a service the payer adds must name the one claim line it belongs to: \
                 passerelle pays per claim line",
            ));
        };
        let line = lines
            .iter_mut()
            .find(|l| u64::from(l.sequence) == *seq)
            .ok_or_else(|| {
                perr(
                    &format!("{p}.itemSequence"),
                    format!("line {seq} is not adjudicated in this answer's items"),
                )
            })?;
        let (benefit, reasons) = benefit_of(add.get("adjudication"), &p, currency, money)?;
        let benefit = benefit.ok_or_else(|| perr(&p, "no benefit adjudication for this item"))?;
        line.benefit = line
            .benefit
            .checked_add(benefit)
            .ok_or_else(|| perr(&p, "benefit overflows"))?;
        line.reasons.extend(reasons);
    }
    Ok(())
}

/// `ClaimResponse.total` (category `benefit`) must equal the benefits read
/// from the items and added items: an answer whose totals do not tie out is
/// refused, never paid on either figure.
fn check_total(
    v: &Value,
    res: &str,
    lines: &[ResponseLine],
    currency: &mut String,
    money: &ReadMoney<'_>,
) -> Result<(), PathError> {
    let Some(totals) = v.get("total").and_then(Value::as_array) else {
        return Ok(());
    };
    let read: i128 = lines.iter().map(|l| i128::from(l.benefit)).sum();
    for (i, t) in totals.iter().enumerate() {
        if t.get("category").and_then(code_of) != Some("benefit") {
            continue;
        }
        let p = format!("{res}.total[{i}].amount");
        let m = t.get("amount").ok_or_else(|| perr(&p, "missing"))?;
        let (total, c) = money(m, &p)?;
        same_currency(currency, &c, &format!("{p}.currency"))?;
        if i128::from(total) != read {
            return Err(perr(
                &p,
                format!(
                    "the benefit total is {total} (minor units) but its items and added items \
                     sum to {read}: the answer does not tie out"
                ),
            ));
        }
    }
    Ok(())
}

/// A FHIR Claim as the broker understands it (for `translate`).
pub fn parse_claim(
    v: &Value,
    symbols: &HashMap<String, String>,
) -> Result<Vec<ResponseLine>, PathError> {
    if v.get("resourceType").and_then(Value::as_str) != Some("Claim") {
        return Err(perr("resourceType", "not a Claim"));
    }
    let items = v
        .get("item")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("Claim.item[{i}]");
        let qty = match item.pointer("/quantity/value") {
            Some(q) => parse_whole(&number_text(q, &format!("{p}.quantity.value"))?)
                .map_err(|m| perr(&format!("{p}.quantity.value"), m))?,
            None => 1,
        };
        let unit = item
            .get("unitPrice")
            .map(|m| read_money(m, &format!("{p}.unitPrice"), symbols, None))
            .transpose()?;
        let net = item
            .get("net")
            .map(|m| read_money(m, &format!("{p}.net"), symbols, None))
            .transpose()?;
        let total = match (net, &unit) {
            (Some((n, _)), _) => Some(n),
            (None, Some((u, _))) => Some(u.checked_mul(qty).ok_or_else(|| perr(&p, "overflow"))?),
            (None, None) => None,
        };
        // Absent: the item's position; present, a line number (never
        // truncated: 4294967297 is no line, not line 1).
        let sequence = match item.get("sequence") {
            None => i as u32 + 1,
            Some(s) => s
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    perr(
                        &format!("{p}.sequence"),
                        format!("{s} is not a line number"),
                    )
                })?,
        };
        out.push(ResponseLine {
            sequence,
            quantity: Some(qty),
            unit_price: unit.map(|(u, _)| u),
            line_total: total,
            benefit: 0,
            status: None,
            reasons: Vec::new(),
        });
    }
    Ok(out)
}

/// What an eligibility answer says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedEligibility {
    pub covered: bool,
    /// Money ceilings: (name, allowed, used, currency), minor units.
    pub amounts: Vec<(String, i64, i64, String)>,
    /// Count ceilings: (name, allowed, used).
    pub counts: Vec<(String, u64, u64)>,
    /// Each ceiling's period (its item's `term`: annual, day, lifetime, or
    /// empty), by index in `amounts` then `counts`.
    pub periods: Vec<String>,
    /// What the payer states that is no ceiling: co-payments and
    /// deductibles (benefit types copay, copay-percent, copay-maximum,
    /// deductible) and the categories it excludes.
    pub cost_shares: Vec<passerelle_domain::engine::CostShare>,
    /// `outcome` as written (`complete`, `partial`, `error`, `queued`).
    pub outcome: String,
    /// `disposition`: the payer's words on the outcome.
    pub disposition: String,
    /// `error[]`: each error's code (display when given).
    pub errors: Vec<PayerError>,
}

impl ParsedEligibility {
    /// What the answer's outcome and errors mean for the question asked,
    /// as a ClaimResponse's do (`outcome_effect`): `complete` or `partial`
    /// without errors is an answer; `error`, or any `error[]` whatever the
    /// outcome (the payer found errors: its ceilings and "in force" are not
    /// to be trusted), is the payer's refusal, in its words, which the
    /// broker answers as no cover (the counter then asks the patient for
    /// the remainder rather than counting on a share the payer did not
    /// grant); `queued` is asked again; any other outcome is malformed.
    pub fn effect(&self) -> Result<(), AdapterError> {
        // The payer's words, after a colon, when it gave any.
        let why = || {
            let mut parts = Vec::new();
            if !self.disposition.is_empty() {
                parts.push(self.disposition.clone());
            }
            parts.extend(self.errors.iter().map(|(_, e)| e.clone()));
            match parts.join("; ") {
                w if w.is_empty() => w,
                w => format!(": {w}"),
            }
        };
        match outcome_effect(&self.outcome) {
            OutcomeEffect::Final if self.errors.is_empty() => Ok(()),
            // The payer's words alone (the console and the CLI say the
            // refusal in the reader's language around them).
            OutcomeEffect::Final | OutcomeEffect::Rejected => {
                Err(AdapterError::Rejected(Reason::new(
                    ReasonCode::PartnerRejected,
                    match why() {
                        w if w.is_empty() => {
                            format!("the mutuelle answered outcome={}", self.outcome)
                        }
                        w => w[2..].to_string(),
                    },
                )))
            }
            OutcomeEffect::Pending => Err(AdapterError::Pending(format!(
                "the mutuelle queued the eligibility question{}; ask again later",
                why()
            ))),
            OutcomeEffect::Refused => Err(AdapterError::Malformed(format!(
                "CoverageEligibilityResponse.outcome: {:?} is not an outcome FHIR R4 defines",
                self.outcome
            ))),
        }
    }
}

/// An item's `network`, `unit` and `term`, read by their FHIR code systems
/// (benefit-network: in, out; benefit-unit: individual, family;
/// benefit-term: annual, day, lifetime). A code of those systems that is
/// not one of these has no mapping: refused, named. A partner's own code
/// (another system, or none) is kept as it is written.
fn qualifiers(item: &Value, path: &str) -> Result<[String; 3], PathError> {
    const SYSTEMS: [(&str, &str, &[&str]); 3] = [
        (
            "network",
            "http://terminology.hl7.org/CodeSystem/benefit-network",
            &["in", "out"],
        ),
        (
            "unit",
            "http://terminology.hl7.org/CodeSystem/benefit-unit",
            &["individual", "family"],
        ),
        (
            "term",
            "http://terminology.hl7.org/CodeSystem/benefit-term",
            &["annual", "day", "lifetime"],
        ),
    ];
    let mut out: [String; 3] = Default::default();
    for (i, (field, system, codes)) in SYSTEMS.iter().enumerate() {
        let Some(v) = item.get(*field) else { continue };
        let coding = v.pointer("/coding/0");
        let code = code_of(v).unwrap_or("");
        let in_system =
            coding.and_then(|c| c.get("system")).and_then(Value::as_str) == Some(*system);
        if in_system && !codes.contains(&code) {
            return Err(perr(
                &format!("{path}.{field}"),
                format!("{field} {code:?} has no mapping in passerelle"),
            ));
        }
        out[i] = code.to_string();
    }
    Ok(out)
}

/// FHIR's benefit-type code system.
const BENEFIT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/benefit-type";

/// What a benefit's type makes of it.
enum BenefitKind {
    /// A maximum the payer pays (or counts): a ceiling, limit and used.
    Ceiling,
    /// A share or threshold the patient bears: a term, never a ceiling.
    Term,
}

/// `benefit.type` by its code system: the maxima (`benefit`, `visit`,
/// `room`, `vision-*`, `medical-primarycare`, `pharmacy-dispense`, and a
/// partner's own codes without the FHIR system, as openIMIS sends) are
/// ceilings; `copay`, `copay-percent`, `copay-maximum` and `deductible` are
/// terms. Another code of the FHIR system has no mapping: refused, named.
fn benefit_kind(b: &Value, path: &str) -> Result<(String, BenefitKind), PathError> {
    let coding = b.pointer("/type/coding/0");
    let code = b.get("type").and_then(code_of).unwrap_or("benefit");
    let system = coding.and_then(|c| c.get("system")).and_then(Value::as_str);
    let kind = match code {
        "copay" | "copay-percent" | "copay-maximum" | "deductible" => BenefitKind::Term,
        "benefit"
        | "visit"
        | "room"
        | "vision-exam"
        | "vision-glasses"
        | "vision-contacts"
        | "medical-primarycare"
        | "pharmacy-dispense" => BenefitKind::Ceiling,
        other if system == Some(BENEFIT_TYPE) => {
            return Err(perr(
                &format!("{path}.type"),
                format!("benefit type {other:?} has no mapping in passerelle"),
            ));
        }
        _ => BenefitKind::Ceiling,
    };
    Ok((code.to_string(), kind))
}

/// Reads a CoverageEligibilityResponse (standard or openIMIS).
pub fn parse_eligibility(
    v: &Value,
    symbols: &HashMap<String, String>,
    default_currency: Option<&str>,
) -> Result<ParsedEligibility, PathError> {
    if v.get("resourceType").and_then(Value::as_str) != Some("CoverageEligibilityResponse") {
        return Err(perr("resourceType", "not a CoverageEligibilityResponse"));
    }
    let mut out = ParsedEligibility::default();
    // The term (period) of each amount and count ceiling, in order.
    let (mut amount_terms, mut count_terms) = (Vec::new(), Vec::new());
    let insurance = v
        .get("insurance")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let outcome_ok = v.get("outcome").and_then(Value::as_str) == Some("complete");
    out.outcome = v
        .get("outcome")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    (out.disposition, out.errors, _) = payer_words(v);
    for (i, ins) in insurance.iter().enumerate() {
        // Standard: inforce; openIMIS sends no inforce: an insurance entry
        // with a complete outcome means a policy in force.
        let inforce = ins
            .get("inforce")
            .and_then(Value::as_bool)
            .unwrap_or(outcome_ok);
        out.covered |= inforce;
        for (j, item) in ins
            .get("item")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let name = item
                .get("category")
                .and_then(code_of)
                .unwrap_or("benefit")
                .to_string();
            let ip = format!("CoverageEligibilityResponse.insurance[{i}].item[{j}]");
            let [network, unit, term] = qualifiers(item, &ip)?;
            let share = |kind| passerelle_domain::engine::CostShare {
                kind,
                applies_to: name.clone(),
                amount: None,
                rate_bp: None,
                count: None,
                used_amount: None,
                used_count: None,
                currency: String::new(),
                network: network.clone(),
                unit: unit.clone(),
                term: term.clone(),
            };
            // A ceiling's scope says whom and where it applies to when the
            // payer says it; its period is the term.
            let mut scope = name.clone();
            if unit == "family" {
                scope.push_str(" (family)");
            }
            if network == "out" {
                scope.push_str(" (out of network)");
            }
            if item.get("excluded").and_then(Value::as_bool) == Some(true) {
                out.cost_shares.push(share(CostShareKind::Excluded));
                continue;
            }
            for (k, b) in item
                .get("benefit")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let p =
                    format!("CoverageEligibilityResponse.insurance[{i}].item[{j}].benefit[{k}]");
                let (code, kind) = benefit_kind(b, &p)?;
                let money = |field: &str| {
                    b.get(field)
                        .map(|m| read_money(m, &format!("{p}.{field}"), symbols, default_currency))
                        .transpose()
                };
                let count = |field: &str| b.get(field).and_then(Value::as_u64);
                let (allowed_money, used_money) = (money("allowedMoney")?, money("usedMoney")?);
                let (allowed_n, used_n) = (count("allowedUnsignedInt"), count("usedUnsignedInt"));
                match kind {
                    BenefitKind::Ceiling => {
                        if let Some(n) = allowed_n {
                            out.counts.push((scope.clone(), n, used_n.unwrap_or(0)));
                            count_terms.push(term.clone());
                        }
                        if let Some((amount, cur)) = allowed_money {
                            let used = match used_money {
                                Some((u, c)) if c == cur => u,
                                Some((_, c)) => {
                                    return Err(perr(
                                        &format!("{p}.usedMoney.currency"),
                                        format!("{c} where the allowed amount is in {cur}"),
                                    ));
                                }
                                None => 0,
                            };
                            // In the question's currency: another one,
                            // shown as the question's, would misstate what
                            // is left (500 EUR read as 50,000 XOF).
                            if let Some(asked) = default_currency.filter(|c| !c.is_empty())
                                && cur != asked
                            {
                                return Err(perr(
                                    &format!("{p}.allowedMoney.currency"),
                                    format!("{cur} where the question is in {asked}"),
                                ));
                            }
                            out.amounts.push((scope.clone(), amount, used, cur));
                            amount_terms.push(term.clone());
                        }
                    }
                    BenefitKind::Term => {
                        let kind = match code.as_str() {
                            "copay" => CostShareKind::Copay,
                            "copay-percent" => CostShareKind::CopayPercent,
                            "copay-maximum" => CostShareKind::CopayMaximum,
                            _ => CostShareKind::Deductible,
                        };
                        let count = allowed_n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
                        let (rate_bp, count) = if kind == CostShareKind::CopayPercent {
                            // A percentage: 20 is 2000 basis points; past
                            // 100% it is no rate.
                            match count {
                                Some(pct) if pct <= 100 => (Some(pct * 100), None),
                                Some(pct) => {
                                    return Err(perr(
                                        &format!("{p}.allowedUnsignedInt"),
                                        format!("{pct}% is no co-payment rate"),
                                    ));
                                }
                                None => (None, None),
                            }
                        } else {
                            (None, count)
                        };
                        // Allowed and used in one currency, as for ceilings.
                        let currency = match (&allowed_money, &used_money) {
                            (Some((_, a)), Some((_, u))) if a != u => {
                                return Err(perr(
                                    &format!("{p}.usedMoney.currency"),
                                    format!("{u} where the allowed amount is in {a}"),
                                ));
                            }
                            (Some((_, c)), _) | (None, Some((_, c))) => c.clone(),
                            (None, None) => String::new(),
                        };
                        let mut cs = share(kind);
                        cs.amount = allowed_money.map(|(m, _)| m);
                        cs.rate_bp = rate_bp;
                        cs.count = count;
                        cs.used_amount = used_money.map(|(m, _)| m);
                        cs.used_count = used_n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
                        cs.currency = currency;
                        out.cost_shares.push(cs);
                    }
                }
            }
        }
    }
    out.periods = amount_terms.into_iter().chain(count_terms).collect();
    Ok(out)
}

/// What a ClaimResponse's `outcome` (FHIR's RemittanceOutcome) makes of
/// the claim (docs/adapters.md, "FHIR outcome → claim lifecycle").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeEffect {
    /// `complete`, `partial`: the shares are final (each line must still
    /// be answered).
    Final,
    /// `queued`: the claim stays pending and is asked again, same key.
    Pending,
    /// `error`: the claim is rejected with the payer's disposition.
    Rejected,
    /// Anything else: the answer is refused as malformed.
    Refused,
}

/// A Task the server answered a cancel (or a release) with, when it says
/// the cancel was not done: its status `rejected`, `failed`, `cancelled`
/// or `entered-in-error` (FHIR R4's TaskStatus), with its `statusReason`
/// (else its `businessStatus`) in the mutuelle's words. Any other answer
/// (a Task requested, accepted, in progress or completed; no body; an
/// OperationOutcome of success) is the cancel taken, as before.
pub fn task_refusal(v: &Value) -> Option<Reason> {
    if v.get("resourceType").and_then(Value::as_str) != Some("Task") {
        return None;
    }
    let status = v.get("status").and_then(Value::as_str)?;
    if !matches!(
        status,
        "rejected" | "failed" | "cancelled" | "entered-in-error"
    ) {
        return None;
    }
    let said = ["statusReason", "businessStatus"]
        .iter()
        .filter_map(|k| v.get(*k))
        .find_map(|c| {
            c.get("text")
                .and_then(Value::as_str)
                .or_else(|| c.pointer("/coding/0/display").and_then(Value::as_str))
                .map(str::trim)
                .filter(|t| !t.is_empty())
        });
    let words = match said {
        Some(t) => passerelle_domain::validate::truncate_text(
            t,
            passerelle_domain::validate::MAX_PARTNER_TEXT,
        ),
        None => format!("the mutuelle's server did not do the cancel (its Task is {status})"),
    };
    Some(Reason::new(ReasonCode::PartnerRejected, words))
}

/// openIMIS: the first line not yet valuated (16) nor rejected (1),
/// whatever the FHIR outcome says (openIMIS writes `partial` for a claim
/// only checked or processed): while one is, the claim waits.
pub fn not_valuated(parsed: &ParsedClaimResponse, dialect: Dialect) -> Option<&ResponseLine> {
    (dialect == Dialect::Openimis)
        .then(|| {
            parsed
                .lines
                .iter()
                .find(|l| !matches!(l.status, Some(1) | Some(16)))
        })
        .flatten()
}

pub fn outcome_effect(outcome: &str) -> OutcomeEffect {
    match outcome {
        "complete" | "partial" => OutcomeEffect::Final,
        "queued" => OutcomeEffect::Pending,
        "error" => OutcomeEffect::Rejected,
        _ => OutcomeEffect::Refused,
    }
}

impl OutcomeEffect {
    /// In words, for `passerelle translate`.
    pub fn words(self) -> &'static str {
        match self {
            OutcomeEffect::Final => "final: the claim is coordinated with these shares",
            OutcomeEffect::Pending => {
                "pending: the claim waits and the mutuelle is asked again, same key"
            }
            OutcomeEffect::Rejected => "rejected: the claim ends with the payer's disposition",
            OutcomeEffect::Refused => "refused: an outcome FHIR R4 does not define",
        }
    }
}

/// The shares a ClaimResponse gives for the lines asked about, and the
/// partner's reference: its currency must be the claim's and its outcome
/// final; openIMIS lines must be valuated (or rejected) and are capped at the
/// remainder. The answer is checked against the claim afterwards
/// (`check_answer`), as every partner's.
pub fn shares_from_response(
    parsed: ParsedClaimResponse,
    dialect: Dialect,
    lines: &[MappedLine],
    currency: &str,
) -> Result<(Vec<LineShare>, String), AdapterError> {
    if !parsed.currency.is_empty() && parsed.currency != currency {
        return Err(AdapterError::Malformed(format!(
            "ClaimResponse: currency {} where the claim is in {}",
            parsed.currency, currency
        )));
    }
    match outcome_effect(&parsed.outcome) {
        OutcomeEffect::Final => {}
        OutcomeEffect::Pending => {
            let why = parsed.explanation();
            return Err(AdapterError::Pending(if why.is_empty() {
                "the mutuelle queued the claim; asking again later".into()
            } else {
                format!("the mutuelle queued the claim ({why}); asking again later")
            }));
        }
        OutcomeEffect::Rejected => {
            let why = parsed.explanation();
            return Err(AdapterError::Rejected(Reason::new(
                ReasonCode::PartnerRejected,
                if why.is_empty() {
                    "the mutuelle answered outcome=error".to_string()
                } else {
                    format!("the mutuelle answered outcome=error: {why}")
                },
            )));
        }
        OutcomeEffect::Refused => {
            return Err(AdapterError::Malformed(format!(
                "ClaimResponse.outcome: {:?}",
                parsed.outcome
            )));
        }
    }
    if let Some(l) = not_valuated(&parsed, dialect) {
        return Err(AdapterError::Pending(format!(
            "line {} not valuated yet (status {:?}); asking again later",
            l.sequence, l.status
        )));
    }
    let by_seq: HashMap<u32, &MappedLine> = lines.iter().map(|m| (m.sequence, m)).collect();
    let mut shares = Vec::with_capacity(parsed.lines.len());
    for l in &parsed.lines {
        let mut m = l.benefit;
        let mut reasons = l.reasons.clone();
        if dialect == Dialect::Openimis && l.status == Some(1) && reasons.is_empty() {
            // Rejected (status 1) with no reason but "accepted": said so,
            // where the line read as paid nothing for no reason.
            reasons.push(Reason::said(
                ReasonCode::PartnerRule,
                "the mutuelle rejected this line, without saying why",
                DetailKey::PartnerLineRejected,
                [],
            ));
        }
        reasons.extend(
            parsed
                .errors
                .iter()
                .filter(|(line, _)| *line == Some(l.sequence))
                .map(|(_, e)| Reason::new(ReasonCode::PartnerRule, e.clone())),
        );
        if dialect == Dialect::Openimis
            && let Some(line) = by_seq.get(&l.sequence)
            && m > line.line.remainder()
        {
            // openIMIS valued the claimed amount by its own tariff: cap at R.
            m = line.line.remainder();
            reasons.push(Reason::said(
                ReasonCode::PartnerRule,
                "capped at the remainder",
                DetailKey::PartnerCappedAtRemainder,
                [],
            ));
        }
        shares.push(LineShare {
            sequence: l.sequence,
            mutuelle_share: m,
            reasons,
        });
    }
    Ok((shares, parsed.reference))
}

/// The broker's eligibility answer from a parsed CoverageEligibilityResponse:
/// the amounts and counts left become ceilings; lines answered locally
/// (unmapped) are reported when every one of the `planned` lines was.
pub fn eligibility_answer(
    parsed: &ParsedEligibility,
    member: String,
    local: Vec<LineShare>,
    planned: usize,
) -> EligibilityAnswer {
    let mut answer = EligibilityAnswer {
        covered: parsed.covered,
        member_number: member,
        ..Default::default()
    };
    if !parsed.covered {
        answer.reason = Some(Reason::said(
            ReasonCode::PartnerRule,
            "the mutuelle reports no cover in force",
            DetailKey::PartnerNoCover,
            [],
        ));
    }
    let period = |i: usize| parsed.periods.get(i).cloned().unwrap_or_default();
    answer.cost_shares = parsed.cost_shares.clone();
    answer.ceilings = parsed
        .amounts
        .iter()
        .enumerate()
        .map(
            |(i, (name, amount, used, _))| passerelle_domain::engine::CeilingView {
                scope: name.clone(),
                category: None,
                period: period(i),
                limit_amount: Some(*amount),
                used_amount: *used,
                limit_count: None,
                used_count: 0,
                held_amount: 0,
                held_count: 0,
                act_code: String::new(),
                next_allowed: None,
            },
        )
        .chain(
            parsed
                .counts
                .iter()
                .enumerate()
                .map(|(i, (name, n, used))| {
                    passerelle_domain::engine::CeilingView {
                        scope: name.clone(),
                        category: None,
                        period: period(parsed.amounts.len() + i),
                        limit_amount: None,
                        used_amount: 0,
                        // More than a ceiling can count is no limit in practice;
                        // never truncated (4294967296 left is not 0 left).
                        limit_count: Some(u32::try_from(*n).unwrap_or(u32::MAX)),
                        used_count: u32::try_from(*used).unwrap_or(u32::MAX),
                        held_amount: 0,
                        held_count: 0,
                        act_code: String::new(),
                        next_allowed: None,
                    }
                }),
        )
        .collect();
    // FHIR eligibility carries no per-line estimate: lines answered
    // locally (unmapped) are reported; the others have none.
    if !local.is_empty() && local.len() == planned {
        answer.lines = local;
    }
    answer
}
