//! The coordination-of-benefits engine: pure, deterministic, no I/O.
//!
//! Given a claim's lines (with the scheme's B, E, S), the member, the product
//! version in force and a snapshot of what the member's ceilings have used,
//! [`adjudicate`] computes the mutuelle share M of each line and what the claim
//! consumes of each ceiling. The store applies that consumption with a
//! conditional update (`used + amount <= limit`) in the same transaction that
//! stores the shares; if another claim got there first, the broker takes a
//! fresh snapshot and runs the engine again.
//!
//! Per line, in line order (earlier lines take what is left first):
//! 1. R = B - S. A line the scheme refused gets M = 0.
//! 2. Claim-wide blockers: no product in force, dues unpaid.
//! 3. Excluded act, excluded diagnosis, category not covered, waiting period.
//! 4. Base share. Out-of-basket: `out_of_basket_rate` of R (= B). Otherwise
//!    the ticket moderateur rule (a rate, or a fixed amount per unit capped at
//!    TM) plus, apart, the overrun rule on D.
//! 5. Per-act limit (per unit x quantity).
//! 6. Count limit: only the units left are covered, pro rata.
//! 7. Amount ceilings: category-year, stay, beneficiary-year, household-year.
//! 8. P = B - S - M.
//!
//! Rounding: see [`crate::money`]; every percentage is floored once per rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::claim::{CareCategory, ClaimLine, LineShare, SchemeOutcome};
use crate::date::Date;
use crate::member::Member;
use crate::money::{Amount, apply_rate};
use crate::product::{CategoryRule, Product};
use crate::reason::{DetailKey, Reason, ReasonCode};

/// What a ceiling limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CeilingScope {
    /// Amount per beneficiary per category per calendar year.
    CategoryYear(CareCategory),
    /// Acts per beneficiary per category per calendar year.
    Count(CareCategory),
    /// Amount per hospital stay.
    Stay,
    /// Amount per beneficiary per calendar year.
    BeneficiaryYear,
    /// Amount per household per calendar year.
    HouseholdYear,
    /// Acts of one code per beneficiary per calendar period (the key's
    /// `act`; a day, month or year: its `period`).
    ActCount,
    /// Acts of one code per beneficiary per stay (the key's `act`; the
    /// stay's id: its `period`). A scope of its own, so that a stay named
    /// like a calendar period ("2026") never shares a year's count.
    StayActCount,
}

impl CeilingScope {
    pub fn name(&self) -> &'static str {
        match self {
            CeilingScope::CategoryYear(_) => "category-year",
            CeilingScope::Count(_) => "count",
            CeilingScope::Stay => "stay",
            CeilingScope::BeneficiaryYear => "beneficiary-year",
            CeilingScope::HouseholdYear => "household-year",
            CeilingScope::ActCount => "act",
            CeilingScope::StayActCount => "stay-act",
        }
    }

    pub fn category(&self) -> Option<CareCategory> {
        match self {
            CeilingScope::CategoryYear(c) | CeilingScope::Count(c) => Some(*c),
            _ => None,
        }
    }
}

/// One ceiling of one member (or household) in one period.
///
/// Read through [`StoredCeilingKey`]: an act limit per stay written before
/// [`CeilingScope::StayActCount`] existed (scope `act-count`, a stay's id
/// as its period) reads as the stay's key. Only a prior authorization's
/// hold stores keys so (its terms' JSON); a claim's consumption is stored
/// by storage key (`claim_consumption`), which the migration moved.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "StoredCeilingKey")]
pub struct CeilingKey {
    pub scope: CeilingScope,
    /// Member number, or household id for household ceilings.
    pub subject: String,
    /// A year ("2026"), a month ("2026-03"), a day ("2026-03-10") or a
    /// stay id.
    pub period: String,
    /// The act code of an act limit; empty otherwise (and not written).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub act: String,
}

/// A [`CeilingKey`] as stored (in a prior authorization's hold).
#[derive(Deserialize)]
struct StoredCeilingKey {
    scope: CeilingScope,
    subject: String,
    period: String,
    #[serde(default)]
    act: String,
}

impl From<StoredCeilingKey> for CeilingKey {
    /// An act count whose period does not end as a calendar period was a
    /// stay's, written before stays had a scope of their own. Schema 17 on
    /// SQLite and 20 on PostgreSQL moved the stored counts by the same
    /// rule, read from the end of the storage key: the text after the
    /// period's last `|` (a stay's id may hold one: "A|2026" stays, as a
    /// stay named "2026" does). Since then an act count's period is always
    /// the date's day, month or year.
    fn from(k: StoredCeilingKey) -> Self {
        let tail = k.period.rsplit('|').next().unwrap_or_default();
        let scope = match k.scope {
            CeilingScope::ActCount if !is_calendar_period(tail) => CeilingScope::StayActCount,
            s => s,
        };
        CeilingKey {
            scope,
            subject: k.subject,
            period: k.period,
            act: k.act,
        }
    }
}

/// A period as [`crate::ActPeriod::of`] writes it: "2026", "2026-03" or
/// "2026-03-10" (four digits, then up to two groups of two).
pub fn is_calendar_period(p: &str) -> bool {
    let b = p.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    match b.len() {
        4 => digits(0..4),
        7 => digits(0..4) && b[4] == b'-' && digits(5..7),
        10 => digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10),
        _ => false,
    }
}

impl CeilingKey {
    /// Stable text form, used as the storage key within a mutuelle: scope,
    /// category (or an act limit's act code), subject, period.
    pub fn storage_key(&self) -> String {
        let cat = match self.scope {
            CeilingScope::ActCount | CeilingScope::StayActCount => self.act.as_str(),
            _ => self.scope.category().map(|c| c.as_str()).unwrap_or("-"),
        };
        format!(
            "{}|{}|{}|{}",
            self.scope.name(),
            cat,
            self.subject,
            self.period
        )
    }
}

/// What a ceiling has taken: used by claims plus held by prior
/// authorizations (the engine counts both; `held_*` says how much of it is
/// held, for eligibility answers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Used {
    pub amount: Amount,
    pub count: u32,
    #[serde(default)]
    pub held_amount: Amount,
    #[serde(default)]
    pub held_count: u32,
}

/// A snapshot of ceiling usage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage(pub BTreeMap<CeilingKey, Used>);

impl Usage {
    pub fn get(&self, k: &CeilingKey) -> Used {
        self.0.get(k).copied().unwrap_or_default()
    }

    /// Adds a claim's consumption.
    pub fn apply(&mut self, uses: &[CeilingUse]) {
        for u in uses.iter().filter(|u| u.amount != 0 || u.count != 0) {
            let e = self.0.entry(u.key.clone()).or_default();
            e.amount += u.amount;
            e.count += u.count;
        }
    }

    /// The usage without an authorization's own hold: what a claim paid
    /// against it may take.
    pub fn without_hold(&self, hold: &[CeilingUse]) -> Usage {
        let mut out = self.clone();
        for h in hold {
            if let Some(e) = out.0.get_mut(&h.key) {
                e.amount -= h.amount;
                e.count = e.count.saturating_sub(h.count);
                e.held_amount -= h.amount;
                e.held_count = e.held_count.saturating_sub(h.count);
            }
        }
        out
    }

    /// Holds what an authorization commits: taken, and counted as held.
    pub fn hold(&mut self, uses: &[CeilingUse]) {
        for u in uses.iter().filter(|u| u.amount != 0 || u.count != 0) {
            let e = self.0.entry(u.key.clone()).or_default();
            e.amount += u.amount;
            e.count += u.count;
            e.held_amount += u.amount;
            e.held_count += u.count;
        }
    }

    /// Releases an authorization's hold.
    pub fn release(&mut self, uses: &[CeilingUse]) {
        *self = self.without_hold(uses);
        self.0.retain(|_, u| *u != Used::default());
    }

    /// Whether each ceiling `uses` consumes has room for it on this usage:
    /// what is used and held, plus the use, within its limits. Every store
    /// makes this check as it records a claim's consumption, and refuses
    /// the claim (`CeilingConflict`) otherwise; a use of nothing is not
    /// checked, as the stores write none.
    ///
    /// A claim adjudicated on no usage at all ([`Usage::default`]) that no
    /// limit cut ([`Adjudication::limited`] false) and whose consumption
    /// has room on this usage is adjudicated exactly as on this usage
    /// (`tests/engine.rs`, `computed_on_no_usage_is_the_same_where_there_is_room`).
    /// The broker relies on this to store a rules mutuelle's claim without
    /// reading its ceilings first.
    pub fn has_room_for(&self, uses: &[CeilingUse]) -> bool {
        uses.iter()
            .filter(|u| u.amount != 0 || u.count != 0)
            .all(|u| {
                let taken = self.get(&u.key);
                u.limit_amount
                    .is_none_or(|l| taken.amount.saturating_add(u.amount) <= l)
                    && u.limit_count
                        .is_none_or(|l| taken.count.saturating_add(u.count) <= l)
            })
    }

    /// Takes a claim's consumption back (cancel).
    pub fn revert(&mut self, uses: &[CeilingUse]) {
        for u in uses {
            let e = self.0.entry(u.key.clone()).or_default();
            e.amount -= u.amount;
            e.count -= u.count;
            if *e == Used::default() {
                self.0.remove(&u.key);
            }
        }
    }
}

/// What one claim consumes of one ceiling, with the limit it must stay under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CeilingUse {
    pub key: CeilingKey,
    pub amount: Amount,
    pub count: u32,
    /// Amount limit; the store refuses to go above it.
    pub limit_amount: Option<Amount>,
    /// Count limit; the store refuses to go above it.
    pub limit_count: Option<u32>,
}

/// Everything the engine needs besides the lines.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub member: &'a Member,
    /// The product version in force on the date of care, if any.
    pub product: Option<&'a Product>,
    pub date_of_care: Date,
    pub diagnoses: &'a [String],
    pub stay_id: Option<&'a str>,
    pub usage: &'a Usage,
}

/// What a prior authorization means to the engine.
#[derive(Clone, Copy, Debug, Default)]
pub enum Prior<'a> {
    /// A claim quoting no authorization: an act the product says needs one
    /// gets M = 0 (PRIOR_AUTHORIZATION_REQUIRED).
    #[default]
    Absent,
    /// The authorization itself is being computed: nothing is required.
    Requesting,
    /// A claim paid against a granted authorization.
    Granted(&'a Granted),
    /// A correction paid against an authorization billed before by a claim
    /// since cancelled: as [`Prior::Granted`], but the commitment is no
    /// floor (its hold went with that claim: what the ceilings hold now is
    /// paid).
    Rebilled(&'a Granted),
}

/// The terms of a granted authorization a claim is paid against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    pub lines: Vec<GrantedLine>,
    /// Basis points of each authorized line's B (and M) a claim may go
    /// above it and still be paid as billed.
    pub tolerance_bp: u32,
}

/// One authorized line: its act, what was planned (B) and committed (M).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedLine {
    pub act_code: String,
    pub billed: Amount,
    pub mutuelle_share: Amount,
}

impl Granted {
    /// Which authorized line each claim line is paid against: the first
    /// line not yet taken with the same act code, in order.
    pub fn matches(&self, lines: &[ClaimLine]) -> Vec<Option<usize>> {
        let mut taken = vec![false; self.lines.len()];
        lines
            .iter()
            .map(|l| {
                let i = self
                    .lines
                    .iter()
                    .enumerate()
                    .position(|(i, g)| !taken[i] && g.act_code == l.act_code)?;
                taken[i] = true;
                Some(i)
            })
            .collect()
    }

    /// `amount` plus the tolerance, floored.
    pub fn with_tolerance(&self, amount: Amount) -> Amount {
        amount.saturating_add(apply_rate(amount.max(0), self.tolerance_bp))
    }

    /// What a claim line paid against authorized line `a` gets at least:
    /// the committed M, as far as the remainder goes, on a line the scheme
    /// covered and billed as authorized (from its authorized amount up to
    /// the tolerance above it); the commitment reserved that much on the
    /// ceilings. None for a line billed below it or past the tolerance, or
    /// one the scheme left out of its basket or refused: valued anew.
    pub fn floor(&self, line: &ClaimLine, a: &GrantedLine) -> Option<Amount> {
        (line.outcome == SchemeOutcome::Covered
            && line.billed >= a.billed
            && line.billed <= self.with_tolerance(a.billed))
        .then(|| a.mutuelle_share.min(line.remainder()).max(0))
    }
}

/// The engine's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adjudication {
    pub lines: Vec<LineShare>,
    pub consumption: Vec<CeilingUse>,
    /// A ceiling, a count limit or an act limit cut a line, or a line that
    /// has one pays nothing (so nothing of it is in `consumption`).
    /// Computed on no usage, an adjudication with neither is the one on any
    /// usage that has room for its consumption (`Usage::has_room_for`):
    /// every limit left each line whole, and that room leaves each whole
    /// again. With either, the two may differ, in a line's reasons or by a
    /// rounding of its share, and no store's check of `consumption` would
    /// tell: such a claim is computed on the usage read.
    pub limited: bool,
}

/// What a mutuelle states that the patient bears, or excludes, beside its
/// ceilings (FHIR's benefit types copay, copay-percent, copay-maximum and
/// deductible, and an item it excludes), for eligibility answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostShare {
    pub kind: CostShareKind,
    /// What it applies to, in the mutuelle's words (its benefit category).
    pub applies_to: String,
    /// An amount in minor units (a co-payment, its maximum, a deductible).
    pub amount: Option<Amount>,
    /// A rate in basis points (a co-payment percentage: 2000 = 20%).
    pub rate_bp: Option<u32>,
    /// A number the mutuelle gives without money or rate.
    pub count: Option<u32>,
    /// What the patient has already borne of it (FHIR `usedMoney`, in
    /// minor units; `usedUnsignedInt`), when the mutuelle says.
    pub used_amount: Option<Amount>,
    pub used_count: Option<u32>,
    /// The currency of `amount` and `used_amount`; empty without money.
    pub currency: String,
    /// FHIR's `network` ("in", "out"), `unit` ("individual", "family") and
    /// `term` ("annual", "day", "lifetime"); empty when not stated.
    pub network: String,
    pub unit: String,
    pub term: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CostShareKind {
    /// A fixed amount the patient pays per act.
    Copay,
    /// A share of the cost the patient pays.
    CopayPercent,
    /// The most the patient pays in co-payments over the term.
    CopayMaximum,
    /// What the patient pays before the mutuelle pays.
    Deductible,
    /// Care the mutuelle does not cover.
    Excluded,
}

/// Why a line the scheme refused gets nothing from the mutuelle (M = 0:
/// the complementary cover follows the scheme's), with the scheme's words
/// when it gave them. The rules' answer, and an adapter's for a line its
/// partner cannot be told the scheme refused (openIMIS).
pub fn scheme_refused(line: &ClaimLine) -> Reason {
    if line.scheme_reason.is_empty() {
        Reason::said(
            ReasonCode::SchemeRefused,
            "refused by the scheme",
            DetailKey::SchemeRefused,
            [],
        )
    } else {
        Reason::said(
            ReasonCode::SchemeRefused,
            format!("refused by the scheme: {}", line.scheme_reason),
            DetailKey::SchemeRefusedBecause,
            [("reason", line.scheme_reason.clone())],
        )
    }
}

/// A ceiling's limit and what it has used, for eligibility answers. Remote
/// partners report theirs in the same shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CeilingView {
    /// "beneficiary-year", "household-year", "category-year", "stay", "count".
    pub scope: String,
    pub category: Option<CareCategory>,
    /// A year or a stay id.
    pub period: String,
    /// Amount ceilings: limit and used; `None` for counts.
    pub limit_amount: Option<Amount>,
    pub used_amount: Amount,
    /// Count ceilings: limit and used; `None` for amounts.
    pub limit_count: Option<u32>,
    pub used_count: u32,
    /// Reserved by prior authorizations not yet billed, beside what is
    /// used (never counted in `used_*`).
    #[serde(default)]
    pub held_amount: Amount,
    #[serde(default)]
    pub held_count: u32,
    /// An act limit's act code; empty for the other ceilings.
    #[serde(default)]
    pub act_code: String,
    /// An act limit reached: the first day another act is covered (none
    /// for a stay's).
    #[serde(with = "crate::date::serde_iso::option", default)]
    pub next_allowed: Option<Date>,
}

impl CeilingView {
    fn new(
        key: &CeilingKey,
        used: Used,
        limit_amount: Option<Amount>,
        limit_count: Option<u32>,
    ) -> Self {
        CeilingView {
            scope: key.scope.name().to_string(),
            category: key.scope.category(),
            period: key.period.clone(),
            limit_amount,
            used_amount: used.amount - used.held_amount,
            limit_count,
            used_count: used.count.saturating_sub(used.held_count),
            held_amount: used.held_amount,
            held_count: used.held_count,
            act_code: key.act.clone(),
            next_allowed: None,
        }
    }
}

fn year(d: Date) -> String {
    d.year().to_string()
}

/// The amount ceilings that apply to a line, in the order they are served.
fn amount_ceilings(
    ctx: &Context<'_>,
    product: &Product,
    rule: &CategoryRule,
) -> Vec<(CeilingKey, Amount)> {
    let member = &ctx.member.member_number;
    let y = year(ctx.date_of_care);
    let mut out = Vec::with_capacity(4);
    if let Some(l) = rule.year_limit {
        out.push((
            CeilingKey {
                scope: CeilingScope::CategoryYear(rule.category),
                subject: member.clone(),
                period: y.clone(),
                act: String::new(),
            },
            l,
        ));
    }
    if let (Some(l), Some(stay)) = (product.stay_limit, ctx.stay_id) {
        out.push((
            CeilingKey {
                scope: CeilingScope::Stay,
                subject: member.clone(),
                period: stay.to_string(),
                act: String::new(),
            },
            l,
        ));
    }
    if let Some(l) = product.beneficiary_year_limit {
        out.push((
            CeilingKey {
                scope: CeilingScope::BeneficiaryYear,
                subject: member.clone(),
                period: y.clone(),
                act: String::new(),
            },
            l,
        ));
    }
    if let Some(l) = product.household_year_limit {
        out.push((
            CeilingKey {
                scope: CeilingScope::HouseholdYear,
                subject: ctx.member.household().to_string(),
                period: y,
                act: String::new(),
            },
            l,
        ));
    }
    out
}

fn count_key(ctx: &Context<'_>, c: CareCategory) -> CeilingKey {
    CeilingKey {
        scope: CeilingScope::Count(c),
        subject: ctx.member.member_number.clone(),
        period: year(ctx.date_of_care),
        act: String::new(),
    }
}

/// The key of an act limit for a member on a date (or in a stay); `None`
/// for a stay's limit when no stay is named.
fn act_key(
    member: &Member,
    date: Date,
    stay_id: Option<&str>,
    limit: &crate::product::ActLimit,
) -> Option<CeilingKey> {
    let (scope, period) = match limit.per.of(date) {
        Some(p) => (CeilingScope::ActCount, p),
        None => (CeilingScope::StayActCount, stay_id?.to_string()),
    };
    Some(CeilingKey {
        scope,
        subject: member.member_number.clone(),
        period,
        act: limit.act_code.clone(),
    })
}

/// The act-limit keys a claim with these act codes could touch: what the
/// store must read besides [`keys_for`]'s.
pub fn act_keys<'a>(
    member: &Member,
    product: &Product,
    date: Date,
    stay_id: Option<&str>,
    acts: impl IntoIterator<Item = &'a str>,
) -> Vec<CeilingKey> {
    let acts: Vec<&str> = acts.into_iter().collect();
    let mut keys: Vec<CeilingKey> = product
        .act_limits
        .iter()
        .filter(|a| acts.contains(&a.act_code.as_str()))
        .filter_map(|a| act_key(member, date, stay_id, a))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The day the product's own waiting period ends for this member, when it
/// has not ended on `date` (counted from the start of the member's product
/// period in force on `date`, as adjudication counts it): nothing is
/// covered before. A category's longer wait is the line's business.
pub fn waiting_until(member: &Member, product: &Product, date: Date) -> Option<Date> {
    if product.waiting_days == 0 {
        return None;
    }
    let from =
        enrolled_on(member, date).saturating_add(time::Duration::days(product.waiting_days as i64));
    (date < from).then_some(from)
}

/// Where waiting periods count from: the start of the member's unbroken
/// cover by the product in force on `date` (else `date` itself, when none
/// is). A period of the same product ending the day before another starts
/// continues it: a mutuelle's file that writes each year's renewal as a
/// period of its own does not make its members wait again. A change of
/// product, or a day without cover, starts the new product's wait.
fn enrolled_on(member: &Member, date: Date) -> Date {
    member.continuous_start(date).unwrap_or(date)
}

/// The stay a claim counts against for a product's per-stay cap: the stay
/// the claim names; else, when it has hospital lines, the claim itself
/// (`claim:<key>`, `key` naming the claim), so that a hospital claim sent
/// without its stay is capped like a one-claim stay and never escapes the
/// cap; else none (a claim with no hospital line and no stay touches no
/// stay cap).
pub fn stay_for(named: Option<&str>, key: &str, lines: &[ClaimLine]) -> Option<String> {
    match named.filter(|s| !s.is_empty()) {
        Some(s) => Some(s.to_string()),
        None if lines
            .iter()
            .any(|l| l.category == CareCategory::Hospitalisation) =>
        {
            Some(format!("claim:{key}"))
        }
        None => None,
    }
}

/// Every ceiling key a claim with these lines could touch: what the store must
/// read before calling [`adjudicate`].
pub fn keys_for(
    ctx_member: &Member,
    product: &Product,
    date: Date,
    stay_id: Option<&str>,
    categories: impl IntoIterator<Item = CareCategory>,
) -> Vec<CeilingKey> {
    let usage = Usage::default();
    let ctx = Context {
        member: ctx_member,
        product: Some(product),
        date_of_care: date,
        diagnoses: &[],
        stay_id,
        usage: &usage,
    };
    let mut keys: Vec<CeilingKey> = Vec::new();
    for c in categories {
        if let Some(rule) = product.rule(c) {
            keys.extend(
                amount_ceilings(&ctx, product, rule)
                    .into_iter()
                    .map(|(k, _)| k),
            );
            if rule.year_count_limit.is_some() {
                keys.push(count_key(&ctx, c));
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Every ceiling of the product for this member on this date, with its limit:
/// what an eligibility answer lists.
pub fn ceilings(member: &Member, product: &Product, date: Date, usage: &Usage) -> Vec<CeilingView> {
    let ctx = Context {
        member,
        product: Some(product),
        date_of_care: date,
        diagnoses: &[],
        stay_id: None,
        usage,
    };
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for rule in &product.categories {
        for (key, limit) in amount_ceilings(&ctx, product, rule) {
            if seen.insert(key.clone()) {
                out.push(CeilingView::new(&key, usage.get(&key), Some(limit), None));
            }
        }
        if let Some(n) = rule.year_count_limit {
            let key = count_key(&ctx, rule.category);
            out.push(CeilingView::new(&key, usage.get(&key), None, Some(n)));
        }
    }
    // Act limits of the date's day, month or year (a stay's need its stay):
    // acts left, and when none is, the first day another is covered.
    for a in &product.act_limits {
        if let Some(key) = act_key(member, date, None, a) {
            let used = usage.get(&key);
            let mut v = CeilingView::new(&key, used, None, Some(a.max));
            if used.count >= a.max {
                v.next_allowed = a.per.next_start(date);
            }
            out.push(v);
        }
    }
    out
}

/// Adjudicates the remainder of every line. See the module documentation.
pub fn adjudicate(ctx: &Context<'_>, lines: &[ClaimLine]) -> Adjudication {
    adjudicate_with(ctx, lines, Prior::Absent)
}

/// [`adjudicate`], for a prior authorization being computed or a claim
/// paid against one. Against one, each claim line matched to an authorized
/// line (same act code, in order; [`Granted::matches`]) is paid as the
/// engine computes it up to the committed M plus the tolerance; a line
/// billed above its authorized B plus the tolerance gets the committed M at
/// most (PRIOR_AUTHORIZATION_EXCEEDED). The ceilings apply after, as to any
/// line: the caller gives a usage that no longer counts the authorization's
/// own hold.
pub fn adjudicate_with(ctx: &Context<'_>, lines: &[ClaimLine], prior: Prior<'_>) -> Adjudication {
    let matched = match prior {
        Prior::Granted(g) | Prior::Rebilled(g) => g.matches(lines),
        _ => vec![None; lines.len()],
    };
    let mut tally = Tally {
        running: ctx.usage.clone(),
        consumption: BTreeMap::new(),
        limited: false,
    };
    let mut out = Vec::with_capacity(lines.len());

    // Claim-wide blockers, decided once.
    let blocker = match ctx.product {
        None => Some(Reason::said(
            ReasonCode::NoProduct,
            "no product in force on the date of care",
            DetailKey::NoProduct,
            [],
        )),
        Some(_) if !ctx.member.dues_paid_on(ctx.date_of_care) => {
            Some(match ctx.member.paid_until {
                Some(p) => Reason::said(
                    ReasonCode::DuesUnpaid,
                    format!("dues paid until {} only", crate::date::format(p)),
                    DetailKey::DuesPaidUntil,
                    [("paid_until_date", crate::date::format(p))],
                ),
                None => Reason::said(
                    ReasonCode::DuesUnpaid,
                    "no dues paid",
                    DetailKey::DuesNone,
                    [],
                ),
            })
        }
        Some(_) => None,
    };
    let enrolled = enrolled_on(ctx.member, ctx.date_of_care);

    for (i, line) in lines.iter().enumerate() {
        let sequence = i as u32 + 1;
        let authorized = match prior {
            Prior::Absent => Authorized::Needed,
            Prior::Requesting => Authorized::Requesting,
            Prior::Granted(g) | Prior::Rebilled(g) => match matched[i] {
                Some(j) => Authorized::Line(g, &g.lines[j], matches!(prior, Prior::Granted(_))),
                None => Authorized::Needed,
            },
        };
        let (m, reasons) = line_share(
            ctx,
            line,
            blocker.as_ref(),
            enrolled,
            authorized,
            &mut tally,
        );
        debug_assert!(m >= 0 && m <= line.remainder().max(0));
        out.push(LineShare {
            sequence,
            mutuelle_share: m,
            reasons,
        });
    }
    Adjudication {
        lines: out,
        consumption: tally.consumption.into_values().collect(),
        limited: tally.limited,
    }
}

/// What the lines computed so far have taken: the usage as it now stands,
/// the claim's consumption, and whether a limit cut a line or a line under
/// one pays nothing (`Adjudication::limited`).
struct Tally {
    running: Usage,
    consumption: BTreeMap<CeilingKey, CeilingUse>,
    limited: bool,
}

/// A line's standing against prior authorization.
#[derive(Clone, Copy)]
enum Authorized<'a> {
    /// No authorized line: an act that needs one is not covered.
    Needed,
    /// The authorization is being computed.
    Requesting,
    /// Paid against this authorized line; whether its commitment is a
    /// floor (not for a correction billed again: [`Prior::Rebilled`]).
    Line(&'a Granted, &'a GrantedLine, bool),
}

fn zero(reason: Reason) -> (Amount, Vec<Reason>) {
    (0, vec![reason])
}

fn line_share(
    ctx: &Context<'_>,
    line: &ClaimLine,
    blocker: Option<&Reason>,
    enrolled: Date,
    authorized: Authorized<'_>,
    tally: &mut Tally,
) -> (Amount, Vec<Reason>) {
    let r = line.remainder();
    if line.outcome == SchemeOutcome::Refused {
        return zero(scheme_refused(line));
    }
    if r <= 0 {
        return (0, Vec::new());
    }
    if let Some(b) = blocker {
        return zero(b.clone());
    }
    let Some(product) = ctx.product else {
        return zero(Reason::said(
            ReasonCode::NoProduct,
            "no product",
            DetailKey::NoProduct,
            [],
        ));
    };
    if product.excluded_acts.iter().any(|a| a == &line.act_code) {
        return zero(Reason::said(
            ReasonCode::ExcludedAct,
            format!("act {} excluded by product {}", line.act_code, product.id),
            DetailKey::ActExcluded,
            [
                ("act", line.act_code.clone()),
                ("product", product.id.clone()),
            ],
        ));
    }
    let Some(rule) = product.rule(line.category) else {
        return zero(Reason::said(
            ReasonCode::CategoryNotCovered,
            format!("category {} not covered", line.category.as_str()),
            DetailKey::CategoryNotCovered,
            [("category", line.category.as_str().to_string())],
        ));
    };
    if let Some(d) = ctx.diagnoses.iter().find(|d| {
        Product::diagnosis_excluded(&product.excluded_diagnoses, d)
            || Product::diagnosis_excluded(&rule.excluded_diagnoses, d)
    }) {
        return zero(Reason::said(
            ReasonCode::ExcludedDiagnosis,
            format!("diagnosis {d} excluded"),
            DetailKey::DiagnosisExcluded,
            [("diagnosis", d.to_string())],
        ));
    }
    // The longer of the product's waiting period and the category's.
    let waiting_days = rule.waiting_days.max(product.waiting_days);
    if waiting_days > 0 {
        let covered_from = enrolled.saturating_add(time::Duration::days(waiting_days as i64));
        if ctx.date_of_care < covered_from {
            return zero(Reason::said(
                ReasonCode::WaitingPeriod,
                format!(
                    "waiting period: {} covered from {}",
                    line.category.as_str(),
                    crate::date::format(covered_from)
                ),
                DetailKey::WaitingPeriod,
                [
                    ("category", line.category.as_str().to_string()),
                    ("from_date", crate::date::format(covered_from)),
                ],
            ));
        }
    }

    if matches!(authorized, Authorized::Needed)
        && product
            .prior_authorization
            .as_ref()
            .is_some_and(|pa| pa.requires(&line.act_code, line.category))
    {
        return zero(Reason::said(
            ReasonCode::PriorAuthorizationRequired,
            format!("act {} needs a prior authorization", line.act_code),
            DetailKey::AuthorizationRequired,
            [("act", line.act_code.clone())],
        ));
    }

    let mut reasons = Vec::new();
    let mut m: Amount = if line.outcome == SchemeOutcome::OutOfBasket {
        if rule.out_of_basket_rate_bp == 0 {
            return zero(Reason::said(
                ReasonCode::OutOfBasketNotCovered,
                "out-of-basket act not covered by the product",
                DetailKey::OutOfBasketNotCovered,
                [],
            ));
        }
        let m = apply_rate(r, rule.out_of_basket_rate_bp);
        if m < r {
            reasons.push(Reason::said(
                ReasonCode::PartialRate,
                format!(
                    "out-of-basket act covered at {}",
                    pct(rule.out_of_basket_rate_bp)
                ),
                DetailKey::OutOfBasketRate,
                [("rate_bp", rule.out_of_basket_rate_bp.to_string())],
            ));
        }
        m
    } else {
        let tm = line.ticket_moderateur();
        let d = line.overrun();
        let m_tm = match rule.fixed_per_act {
            Some(f) => {
                let cap = f.saturating_mul(line.quantity as Amount);
                if cap < tm {
                    reasons.push(Reason::said(
                        ReasonCode::FixedAmount,
                        format!("fixed amount of {f} per act"),
                        DetailKey::FixedAmount,
                        [("fixed_amount", f.to_string())],
                    ));
                }
                cap.min(tm)
            }
            None => {
                let m = apply_rate(tm, rule.tm_rate_bp);
                if m < tm {
                    reasons.push(Reason::said(
                        ReasonCode::PartialRate,
                        format!("ticket moderateur covered at {}", pct(rule.tm_rate_bp)),
                        DetailKey::TicketModerateurRate,
                        [("rate_bp", rule.tm_rate_bp.to_string())],
                    ));
                }
                m
            }
        };
        let m_d = if d > 0 {
            let m = apply_rate(d, rule.overrun_rate_bp);
            if m < d {
                reasons.push(if rule.overrun_rate_bp == 0 {
                    Reason::said(
                        ReasonCode::OverrunNotCovered,
                        "overrun above the scheme tariff not covered",
                        DetailKey::OverrunNotCovered,
                        [],
                    )
                } else {
                    Reason::said(
                        ReasonCode::OverrunNotCovered,
                        format!(
                            "overrun covered at {} only, the rest not covered",
                            pct(rule.overrun_rate_bp)
                        ),
                        DetailKey::OverrunRate,
                        [("rate_bp", rule.overrun_rate_bp.to_string())],
                    )
                });
            }
            m
        } else {
            0
        };
        m_tm + m_d
    };

    if let Some(per_act) = rule.per_act_limit {
        let cap = per_act.saturating_mul(line.quantity as Amount);
        if m > cap {
            m = cap;
            reasons.push(Reason::said(
                ReasonCode::PerActLimit,
                format!("limit of {per_act} per act"),
                DetailKey::PerActLimit,
                [("limit_amount", per_act.to_string())],
            ));
        }
    }

    // Count limit: only the units left are covered, pro rata (floored).
    let mut units = 0u32;
    let count = rule.year_count_limit.map(|limit| {
        let key = count_key(ctx, line.category);
        let used = tally.running.get(&key).count;
        (key, limit, limit.saturating_sub(used))
    });
    if let Some((_, limit, left)) = &count {
        units = line.quantity.min(*left);
        if units < line.quantity {
            tally.limited = true;
            m = ((m as i128 * units as i128) / line.quantity.max(1) as i128) as Amount;
            reasons.push(Reason::said(
                ReasonCode::CountLimitReached,
                format!(
                    "count limit of {limit} {} acts a year: {left} left",
                    line.category.as_str()
                ),
                DetailKey::CategoryCountLimit,
                [
                    ("limit", limit.to_string()),
                    ("category", line.category.as_str().to_string()),
                    ("left", left.to_string()),
                ],
            ));
        }
    }

    // Against an authorization: the committed M plus the tolerance at most,
    // and the committed M alone when the line is billed above its tolerance.
    if let Authorized::Line(g, a, floored) = authorized {
        if line.billed > g.with_tolerance(a.billed) {
            if m > a.mutuelle_share {
                m = a.mutuelle_share.max(0);
                reasons.push(Reason::said(
                    ReasonCode::PriorAuthorizationExceeded,
                    format!(
                        "billed {} above the authorized {} and its tolerance: the committed {} is paid",
                        line.billed, a.billed, a.mutuelle_share
                    ),
                    DetailKey::AuthorizedBilledAbove,
                    [
                        ("billed_amount", line.billed.to_string()),
                        ("authorized_amount", a.billed.to_string()),
                        ("committed_amount", a.mutuelle_share.to_string()),
                    ],
                ));
            }
        } else if m > g.with_tolerance(a.mutuelle_share) {
            m = g.with_tolerance(a.mutuelle_share).max(0);
            reasons.push(Reason::said(
                ReasonCode::PriorAuthorizationExceeded,
                format!(
                    "paid up to the committed {} and its tolerance",
                    a.mutuelle_share
                ),
                DetailKey::AuthorizedPaidUpTo,
                [("committed_amount", a.mutuelle_share.to_string())],
            ));
        }
        // And the committed M at least on a line billed as authorized
        // (`Granted::floor`), as a mutuelle with its own system is held to
        // (`validate::check_commitment`): the commitment was computed on
        // the product version then in force, and a version published since
        // (a lower rate) does not take it back. The member's rights on the
        // date of care (dues, the product in force, exclusions, waiting
        // periods) and the category's acts a year apply above as on any
        // claim (a line the count cut is not raised: its acts would go
        // uncounted), the ceilings and act limits below (the
        // authorization's hold keeps that room). A correction billed
        // again has no floor: its hold went with the cancelled claim.
        if let Some(floor) = g.floor(line, a)
            && floored
            && (count.is_none() || units == line.quantity)
            && m < floor
        {
            m = floor;
            // The rate's reasons no longer say what is paid.
            reasons.clear();
            if m < r {
                reasons.push(Reason::said(
                    ReasonCode::PartialRate,
                    format!(
                        "the committed {} of the prior authorization is paid",
                        a.mutuelle_share
                    ),
                    DetailKey::AuthorizedCommitted,
                    [("committed_amount", a.mutuelle_share.to_string())],
                ));
            }
        }
    }

    // Act limits (per day, month, year or stay): only the acts left are
    // covered, pro rata, as for the category's count.
    let mut covered = if count.is_some() {
        units
    } else {
        line.quantity
    };
    let mut acts = Vec::new();
    for a in product
        .act_limits
        .iter()
        .filter(|a| a.act_code == line.act_code)
    {
        let Some(key) = act_key(ctx.member, ctx.date_of_care, ctx.stay_id, a) else {
            continue;
        };
        let left = a.max.saturating_sub(tally.running.get(&key).count);
        if covered > left {
            tally.limited = true;
            m = ((m as i128 * left as i128) / covered.max(1) as i128) as Amount;
            reasons.push(Reason::said(
                ReasonCode::CountLimitReached,
                format!(
                    "limit of {} {} acts per {}: {left} left",
                    a.max,
                    a.act_code,
                    a.per.as_str()
                ),
                DetailKey::ActCountLimit,
                [
                    ("limit", a.max.to_string()),
                    ("act", a.act_code.clone()),
                    ("per", a.per.as_str().to_string()),
                    ("left", left.to_string()),
                ],
            ));
            covered = left;
        }
        // Two limits of the act on one key: each would count the other's
        // use, so a store's check of the one consumption recorded could not
        // stand for both. A product cannot have two (`Product::check`
        // refuses the same act and period twice, and a stay's key has a
        // scope of its own); should one, the usage is read.
        if acts.iter().any(|(k, _)| *k == key) {
            tally.limited = true;
        }
        acts.push((key, a.max));
    }
    if count.is_some() {
        units = covered;
    }

    // Amount ceilings, in order.
    let ceilings = amount_ceilings(ctx, product, rule);
    for (key, limit) in &ceilings {
        let left = (limit - tally.running.get(key).amount).max(0);
        if m > left {
            tally.limited = true;
            m = left;
            let message = format!(
                "ceiling {} {} reached: {left} of {limit} left",
                key.scope.name(),
                key.period
            );
            let (left, limit) = (left.to_string(), limit.to_string());
            reasons.push(match (&key.scope, key.period.starts_with("claim:")) {
                // The category named, which the scope's name does not.
                (CeilingScope::CategoryYear(c), _) => Reason::said(
                    ReasonCode::CeilingReached,
                    message,
                    DetailKey::CategoryCeilingReached,
                    [
                        ("category", c.as_str().to_string()),
                        ("period", key.period.clone()),
                        ("left_amount", left),
                        ("limit_amount", limit),
                    ],
                ),
                // A hospital claim naming no stay counts as one
                // (`stay_for`): its key is the broker's, not a stay's.
                (CeilingScope::Stay, true) => Reason::said(
                    ReasonCode::CeilingReached,
                    message,
                    DetailKey::ClaimStayCeilingReached,
                    [("left_amount", left), ("limit_amount", limit)],
                ),
                _ => Reason::said(
                    ReasonCode::CeilingReached,
                    message,
                    DetailKey::CeilingReached,
                    [
                        ("scope", key.scope.name().to_string()),
                        ("period", key.period.clone()),
                        ("left_amount", left),
                        ("limit_amount", limit),
                    ],
                ),
            });
        }
    }

    if m == 0 && (count.is_some() || !acts.is_empty() || !ceilings.is_empty()) {
        tally.limited = true;
    }
    if m > 0 {
        for (key, limit) in ceilings {
            record(
                &mut tally.running,
                &mut tally.consumption,
                key,
                m,
                0,
                Some(limit),
                None,
            );
        }
        if let Some((key, limit, _)) = count
            && units > 0
        {
            record(
                &mut tally.running,
                &mut tally.consumption,
                key,
                0,
                units,
                None,
                Some(limit),
            );
        }
        for (key, max) in acts {
            if covered > 0 {
                record(
                    &mut tally.running,
                    &mut tally.consumption,
                    key,
                    0,
                    covered,
                    None,
                    Some(max),
                );
            }
        }
    }
    (m, reasons)
}

fn record(
    running: &mut Usage,
    consumption: &mut BTreeMap<CeilingKey, CeilingUse>,
    key: CeilingKey,
    amount: Amount,
    count: u32,
    limit_amount: Option<Amount>,
    limit_count: Option<u32>,
) {
    let u = running.0.entry(key.clone()).or_default();
    u.amount += amount;
    u.count += count;
    let c = consumption.entry(key.clone()).or_insert(CeilingUse {
        key,
        amount: 0,
        count: 0,
        limit_amount,
        limit_count,
    });
    c.amount += amount;
    c.count += count;
}

fn pct(bp: u32) -> String {
    if bp.is_multiple_of(100) {
        format!("{}%", bp / 100)
    } else {
        format!("{}.{:02}%", bp / 100, bp % 100)
    }
}

/// M may never exceed R; P = B - S - M.
pub fn patient_share(line: &ClaimLine, m: Amount) -> Amount {
    line.billed - line.scheme_share - m
}
