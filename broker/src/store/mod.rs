//! Storage: one trait, [`Store`], and its backends. SQLite ([`sqlite`]) is the
//! embedded default.
//!
//! The store, not the process, enforces the money rules that must hold across
//! concurrent requests and broker replicas:
//! - idempotency: (scheme_id, claim_id) is a unique key; the first insert wins;
//! - ceilings: consumption is applied with a conditional update
//!   (`used + amount <= limit`) in the transaction that stores the claim's
//!   shares; a conflict rolls everything back and the caller recomputes;
//! - state transitions are conditional on the state they leave, so a claim
//!   completes once even if two workers raced for it;
//! - products are immutable once a claim used them.
//!
//! No transaction is ever held across a partner call: the broker stores the
//! claim, calls the partner, then stores the outcome in a second transaction.
//!
//! [`conformance`] holds the suite every backend must pass.

pub mod approvals;
pub mod authorizations;
#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
mod core;
pub mod opening;
pub mod postgres;
mod rules;
pub mod sqlite;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod users;

pub use rules::{
    CoverageConflict, CoverageOverlap, conflicts_among, coverage_overlaps, coverage_rule,
    gather_conflicts, resolve_plan, roster_diff, roster_diff_checked,
};

use async_trait::async_trait;
use passerelle_domain::{
    CeilingKey, CeilingUse, Claim, ClaimState, Date, LineShare, Member, Product, ProductRef,
    Reason, Usage,
};

/// A stored claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRecord {
    pub claim: Claim,
    /// Canonical hash of the request (see [`Claim::canonical_hash`]).
    pub request_hash: String,
    pub state: ClaimState,
    pub mutuelle_id: String,
    pub member_number: String,
    /// Key of the partner adjudication, the same for every resend.
    pub adjudication_key: String,
    /// Key of the partner cancel, once a cancel was asked.
    pub cancel_key: Option<String>,
    pub cancel_reason: String,
    /// Final shares, one per line in line order, in state COORDINATED (and
    /// kept through a cancel).
    pub shares: Option<Vec<LineShare>>,
    pub product: Option<ProductRef>,
    pub partner_reference: String,
    pub rejection: Option<Reason>,
    pub attempts: u32,
    /// When the retry worker may take the claim next (ms since epoch); `None`
    /// once nothing is left to do.
    pub next_attempt_ms: Option<i64>,
    pub last_error: String,
    pub change_seq: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// For a claim rejected as a duplicate invoice: the claim id that held
    /// the invoice then, so that the scheme can reconcile.
    pub duplicate_of: Option<String>,
}

/// A claim to store before its partner is called.
#[derive(Clone, Debug)]
pub struct NewClaim {
    pub claim: Claim,
    pub request_hash: String,
    pub mutuelle_id: String,
    pub member_number: String,
    pub adjudication_key: String,
    /// The caller holds the claim until then; the retry worker takes it after.
    pub lease_until_ms: i64,
    pub now_ms: i64,
}

/// What [`Store::begin_claim`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// Stored now, state RECEIVED: the caller must ask the partner.
    Created(ClaimRecord),
    /// Stored now as REJECTED: the same provider invoice is on another claim
    /// that is not cancelled.
    DuplicateInvoice(ClaimRecord),
    /// Same key and same content: a resend.
    Existing(ClaimRecord),
    /// Same key, different content.
    Modified(ClaimRecord),
}

/// The final outcome of a claim at its partner.
#[derive(Clone, Debug)]
pub enum Outcome {
    Coordinated {
        shares: Vec<LineShare>,
        product: Option<ProductRef>,
        partner_reference: String,
        /// Ceilings the broker keeps for this partner; applied conditionally.
        consumption: Vec<CeilingUse>,
        /// The prior authorization the claim was paid against: consumed in
        /// the same transaction (active → consumed, its hold released
        /// before the consumption is applied), or `CeilingConflict` when it
        /// is no longer active.
        authorization: Option<String>,
    },
    Rejected(Reason),
}

/// The result of a conditional transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Done now.
    Applied(ClaimRecord),
    /// The claim was no longer in a state this transition leaves (another
    /// worker or a cancel got there first): nothing changed.
    Stale(ClaimRecord),
}

impl Transition {
    pub fn record(&self) -> &ClaimRecord {
        match self {
            Transition::Applied(r) | Transition::Stale(r) => r,
        }
    }
    pub fn into_record(self) -> ClaimRecord {
        match self {
            Transition::Applied(r) | Transition::Stale(r) => r,
        }
    }
}

/// Whether a product was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutProduct {
    Inserted,
    Replaced,
    Unchanged,
}

/// Direction of an audited message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A call to the broker.
    In,
    /// A call from the broker to a partner.
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// A subject's audit rows as read: a claim's trail grows with every call
/// about it (a scheme polling a claim that waits for days writes a row a
/// call), so it is read bounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditTrail {
    /// Oldest first: all of them, or the oldest `HEAD` then the newest.
    pub rows: Vec<AuditEntry>,
    /// The rows between the two left out (0: the trail is whole).
    pub omitted: u64,
}

impl AuditTrail {
    /// The most rows read (about 250 bytes each).
    pub const MAX_ROWS: usize = 1_000;
    /// The oldest rows kept when a trail is longer: how the claim began.
    pub const HEAD: usize = 100;
}

/// One row of the append-only audit log. It carries no amounts, diagnoses or
/// beneficiary ids: only who, what, a hash of the request, and the outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub direction: Direction,
    /// Who called (in) or who was called (out).
    pub party: String,
    /// The gRPC method or partner operation.
    pub method: String,
    /// What the call is about, for example "CNSS/CLM-1".
    pub subject: String,
    /// SHA-256 (hex) of the request.
    pub request_hash: String,
    /// "ok", or the status code and a short message.
    pub outcome: String,
    /// The W3C trace id of the call (32 hex digits), "" when none.
    pub trace_id: String,
}

/// A roster snapshot to apply.
#[derive(Clone, Debug)]
pub struct RosterImport {
    pub mutuelle_id: String,
    pub members: Vec<Member>,
    /// Members absent from the snapshot end the day before this date.
    pub as_of: Date,
    /// Never end-date these member numbers (rows the client skipped).
    pub keep: Vec<String>,
    /// End-date absent members (false: leave them as they are).
    pub end_missing: bool,
    pub dry_run: bool,
}

/// What a roster import changes (or would).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RosterDiff {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub end_dated: Vec<String>,
    pub unchanged: u32,
    /// Stored members whose cover was open on the import's date (what
    /// `end_dated` is a share of; `unchanged` also counts members long
    /// gone).
    pub in_force_before: u32,
}

/// Filters of [`Store::list_claims`]; `None` matches any.
#[derive(Clone, Debug, Default)]
pub struct ClaimFilter {
    pub scheme_id: Option<String>,
    pub mutuelle_id: Option<String>,
    pub state: Option<ClaimState>,
    pub care_from: Option<Date>,
    pub care_to: Option<Date>,
    /// The member number at the mutuelle.
    pub member_number: Option<String>,
    pub provider_id: Option<String>,
}

/// B, S, M, P summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub billed: i64,
    pub scheme: i64,
    pub mutuelle: i64,
}

impl Totals {
    pub fn patient(&self) -> i64 {
        self.billed
            .saturating_sub(self.scheme)
            .saturating_sub(self.mutuelle)
    }
}

/// Sums amounts in i128 and clamps (see [`clamp_total`]): never wraps, never
/// panics, whatever a claim holds.
pub fn sum_amounts(amounts: impl Iterator<Item = i64>) -> i64 {
    clamp_total(amounts.map(i128::from).sum())
}

/// The start of a publication's refusal when, approved, a version of it
/// would start on or before that day ([`versions_starting_in_the_past`]):
/// how its proposal's outcome is told in a person's language.
pub const STARTS_IN_THE_PAST: &str = "by its approval a version would start in the past";
/// How a store's refusal of product versions out of order begins (a
/// proposal approved after another published a version: its failed
/// outcome, which the console says in words).
pub const OUT_OF_ORDER: &str = "versions published since it was proposed make it out of order";

/// Versions follow their start dates: a version `products` changes starts
/// after every lower one of its product and before every higher one, as
/// they will stand once it is applied (these, else the `stored` ones),
/// else two versions would be in force at once. Versions left as stored
/// are not judged again. Checked when proposed, and by the store in the
/// transaction that writes them ([`check_version_order`]), against what
/// is stored then: another proposal may have published a version of the
/// product meanwhile.
pub fn versions_out_of_order(
    products: &[Product],
    stored: &[Product],
) -> Vec<passerelle_domain::validate::FieldViolation> {
    let after: Vec<&Product> = products
        .iter()
        .chain(stored.iter().filter(|s| {
            !products
                .iter()
                .any(|p| p.id == s.id && p.version == s.version)
        }))
        .collect();
    let mut bad = Vec::new();
    for (i, p) in products.iter().enumerate() {
        if stored.iter().any(|s| s == p) {
            continue;
        }
        let others = after
            .iter()
            .filter(|o| o.id == p.id && o.version != p.version);
        for o in others {
            let wrong = (o.version < p.version && o.valid_from >= p.valid_from)
                || (o.version > p.version && o.valid_from <= p.valid_from);
            if wrong {
                bad.push(passerelle_domain::validate::FieldViolation::new(
                    format!("products[{i}].valid_from"),
                    format!(
                        "version {} of {} starts on {}: version {} must start {} it",
                        o.version,
                        p.id,
                        passerelle_domain::date::format(o.valid_from),
                        p.version,
                        if o.version < p.version {
                            "after"
                        } else {
                            "before"
                        }
                    ),
                ));
                break;
            }
        }
    }
    bad
}

/// The new or changed versions in `products` that would take, from their
/// start to today, days another stored version of their product prices
/// now: care already given was priced by that version, and the new one
/// would price the same dates again at other rates (a correction, a claim
/// sent late). A version may start in the past where no other prices those
/// days: a product's first versions (a mutuelle that comes to passerelle
/// with its cover running), or a version not used yet corrected with its
/// start kept or moved later. Checked when a publication is proposed and
/// again when it is applied, since its approval may come days later.
pub fn versions_starting_in_the_past(
    products: &[Product],
    stored: &[Product],
    today: passerelle_domain::date::Date,
) -> Vec<passerelle_domain::validate::FieldViolation> {
    let mut bad = Vec::new();
    for (i, p) in products.iter().enumerate() {
        if p.valid_from > today || stored.iter().any(|s| s == p) {
            continue;
        }
        let versions: Vec<&Product> = stored.iter().filter(|s| s.id == p.id).collect();
        let taken = versions.iter().find(|s| {
            s.version != p.version
                && s.in_force_among(versions.iter().copied())
                    .is_some_and(|(from, to)| from <= today && to.is_none_or(|t| t >= p.valid_from))
        });
        if let Some(o) = taken {
            bad.push(passerelle_domain::validate::FieldViolation::new(
                format!("products[{i}].valid_from"),
                format!(
                    "version {} of {} would start on {}, not after today ({}): the care of those days is priced by version {}; a new version starts tomorrow at the earliest",
                    p.version,
                    p.id,
                    passerelle_domain::date::format(p.valid_from),
                    passerelle_domain::date::format(today),
                    o.version,
                ),
            ));
        }
    }
    bad
}

/// [`versions_out_of_order`] as a store refuses it, within its write.
pub(crate) fn check_version_order(
    products: &[Product],
    stored: &[Product],
) -> Result<(), StoreError> {
    let bad = versions_out_of_order(products, stored);
    if bad.is_empty() {
        return Ok(());
    }
    let why: Vec<String> = bad.into_iter().map(|v| v.description).collect();
    Err(StoreError::Refused(format!(
        "{OUT_OF_ORDER}: {}",
        why.join("; ")
    )))
}

/// A total summed in i128 (the backends never sum in i64, so that a stored
/// row can never make a listing fail), as the i64 the contracts carry. With
/// the input bounds (`validate::MAX_CLAIM_AMOUNT`) a total past i64 needs 92
/// million claims at the maximum in one listing; should one happen, it is
/// clamped and logged rather than refused.
pub fn clamp_total(v: i128) -> i64 {
    i64::try_from(v).unwrap_or_else(|_| {
        tracing::error!(total = %v, "a total is past the i64 range; clamped");
        if v < 0 { i64::MIN } else { i64::MAX }
    })
}

/// One claim in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimSummary {
    /// Page token of this row.
    pub pk: i64,
    pub scheme_id: String,
    pub claim_id: String,
    pub mutuelle_id: String,
    pub state: ClaimState,
    pub provider_id: String,
    pub invoice_number: String,
    pub date_of_care: String,
    pub currency: String,
    pub totals: Totals,
    /// Number of the closed period it is in; 0 if none.
    pub period: u32,
    pub updated_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimPage {
    pub rows: Vec<ClaimSummary>,
    pub totals: Totals,
    pub total_count: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeriodState {
    Open,
    Closed,
    Settled,
}

/// What a close takes of the open period: claims that reached COORDINATED
/// and recoveries raised up to `until_ms`. A close proposed by one person
/// and approved by another (maker-checker) closes exactly what was
/// proposed: claims coordinated since stay in the open period, and if what
/// was proposed changed meanwhile (a claim cancelled), the close is refused
/// and nothing is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseUpTo {
    pub until_ms: i64,
    pub expect: Option<PeriodContent>,
}

impl CloseUpTo {
    /// Everything in the open period now, whatever it is.
    pub fn everything() -> CloseUpTo {
        CloseUpTo {
            until_ms: i64::MAX,
            expect: None,
        }
    }
}

/// What a period holds: its claims, their totals, its recoveries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeriodContent {
    pub claim_count: u32,
    pub billed: i64,
    pub scheme: i64,
    pub mutuelle: i64,
    pub recoveries: i64,
}

impl PeriodContent {
    pub fn of(p: &PeriodRecord) -> PeriodContent {
        PeriodContent {
            claim_count: p.claim_count,
            billed: p.totals.billed,
            scheme: p.totals.scheme,
            mutuelle: p.totals.mutuelle,
            recoveries: p.recoveries,
        }
    }
}

/// A settlement period of a scheme x mutuelle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodRecord {
    pub scheme_id: String,
    pub mutuelle_id: String,
    pub number: u32,
    pub state: PeriodState,
    pub claim_count: u32,
    pub totals: Totals,
    /// Recoveries carried into the period (positive).
    pub recoveries: i64,
    pub closed_ms: i64,
    pub settled_ms: i64,
    pub reference: String,
}

impl PeriodRecord {
    /// What the mutuelle pays for the period.
    pub fn net_due(&self) -> i64 {
        self.totals.mutuelle.saturating_sub(self.recoveries)
    }
}

/// One line of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLine {
    /// "provider" or "member".
    pub payee_type: String,
    pub payee_id: String,
    pub claim_id: String,
    pub invoice_number: String,
    pub date_of_care: String,
    pub member_number: String,
    pub sequence: u32,
    pub act_code: String,
    pub billed: i64,
    pub scheme: i64,
    pub mutuelle: i64,
    /// Its claim was cancelled since: a closed statement keeps the line
    /// and its amounts, and what the mutuelle counted for it is recovered
    /// in a later period (a recovery).
    pub cancelled: bool,
}

/// A recovery (indu) on a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryLine {
    pub claim_id: String,
    pub invoice_number: String,
    pub from_period: u32,
    pub amount: i64,
    pub payee_type: String,
    pub payee_id: String,
    /// The cancelled claim's member and date of care, so that a reader
    /// knows whose care it was without opening the claim.
    pub member_number: String,
    pub date_of_care: String,
}

/// Where a claim stands in its mutuelle's periods
/// ([`SettlementStore::claim_periods`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimPeriods {
    /// The closed period the claim is in; 0 while in the open period, or
    /// when it never was in one (not coordinated, or cancelled before a
    /// close).
    pub period: u32,
    /// The recovery (indu) its cancel raised after that period closed, and
    /// the closed period whose statement deducts it (0 while it waits in
    /// the open period).
    pub recovery: Option<(RecoveryLine, u32)>,
}

/// The raw content of a statement, lines ordered by payee, claim, line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementData {
    pub period: PeriodRecord,
    pub lines: Vec<StatementLine>,
    pub recoveries: Vec<RecoveryLine>,
    /// Where the next page starts, when a page was asked and more lines
    /// follow.
    pub next: Option<LineKey>,
    /// Which of a page's payees the page cuts.
    pub cut: PayeeCut,
}

/// Of a page of a statement, the payees whose lines the page cuts: its
/// totals for them are the page's, not the payee's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayeeCut {
    /// The first payee's lines began on an earlier page.
    pub first_continued: bool,
    /// More of the last payee's lines follow on the next page.
    pub last_continues: bool,
}

/// A statement line's place in the statement's order (payee type, payee,
/// claim id, line): a page starts after one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineKey {
    pub payee_type: String,
    pub payee_id: String,
    pub claim_id: String,
    pub sequence: u32,
}

impl LineKey {
    pub fn of(l: &StatementLine) -> LineKey {
        LineKey {
            payee_type: l.payee_type.clone(),
            payee_id: l.payee_id.clone(),
            claim_id: l.claim_id.clone(),
            sequence: l.sequence,
        }
    }
}

/// A page of a statement: the lines after `after` (from the first when
/// `None`), at most `size`. Recoveries come with the first page only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatementPage {
    pub after: Option<LineKey>,
    pub size: u32,
}

/// Which of a period's payees a read of their totals takes, in the
/// statement's order (type, then id, byte by byte).
#[derive(Clone, Copy, Debug)]
pub enum PayeesFrom<'a> {
    /// From the first payee.
    First,
    /// From the payee after this one (type, id): the next page.
    After(&'a (String, String)),
    /// This payee (type, id) alone: none if it has no claim in the period.
    /// Its claims are the only ones read.
    Only(&'a (String, String)),
}

impl<'a> PayeesFrom<'a> {
    /// The payee compared with, and how (`>` or `=`), for the SQL.
    pub(crate) fn bound(self) -> Option<(&'a (String, String), &'static str)> {
        match self {
            PayeesFrom::First => None,
            PayeesFrom::After(k) => Some((k, ">")),
            PayeesFrom::Only(k) => Some((k, "=")),
        }
    }
}

/// A payee's part of a period's statement, without its lines: how many of
/// the period's claims it is paid for and the mutuelle's amount on them
/// (their lines' M; recoveries not deducted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayeeTotal {
    /// "provider" or "member".
    pub payee_type: String,
    pub payee_id: String,
    pub claims: u64,
    pub mutuelle: i64,
}

/// Recent activity of a partner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartnerActivity {
    pub last_success_ms: i64,
    pub last_error_ms: i64,
    pub last_error: String,
    /// Claims waiting on it (received, pending, cancel pending) and cancels
    /// it is owed after the broker refused its answer.
    pub pending: u32,
    /// When the oldest of them was received (0 when none wait).
    pub oldest_waiting_ms: i64,
}

/// A connection pool's use, for the metrics (`passerelle_store_connections`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections open.
    pub size: usize,
    /// Of those, idle.
    pub available: usize,
    /// Calls waiting for a connection.
    pub waiting: usize,
}

/// Storage failure. `Backend`, `NoDatabase`, `SchemaTooOld` and `SchemaTooNew` mean "the store is
/// unreachable or not ready" (UNAVAILABLE, STORE_UNAVAILABLE); `Corrupt`, a
/// stored value this version cannot read (INTERNAL, STORE_CORRUPT); the
/// others are answers about the request (api/status.rs maps each).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A ceiling moved since the snapshot the shares were computed on.
    #[error("ceiling conflict on {0}")]
    CeilingConflict(String),
    /// A product version already used by a claim cannot change.
    #[error("product {0} is used by claims and cannot change: declare a new version")]
    ProductInUse(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A close approved for what the open period held when it was
    /// proposed, which it no longer holds (a claim cancelled or its
    /// amounts changed since): nothing written.
    #[error(
        "the open period of {scheme_id} x {mutuelle_id} changed since its close was proposed ({then} claim(s) then, {now} now, or their amounts): propose the close again"
    )]
    PeriodChanged {
        scheme_id: String,
        mutuelle_id: String,
        then: u32,
        now: u32,
    },
    /// A request the store's state refuses (closing an empty period,
    /// settling the open one...).
    #[error("{0}")]
    Refused(String),
    /// Fields of a request the stored data refuses (a member number that
    /// differs from a stored one only in letter case): nothing written.
    #[error("{}", .0.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<passerelle_domain::validate::FieldViolation>),
    /// The SQLite database (its path) is held by another process: one
    /// process at a time opens it (a running broker, a `migrate`, a
    /// `users` command). The command line says it in its reader's
    /// language (`cli::start_error`).
    #[error("{0}: another passerelle is using this database (on SQLite, one process at a time)")]
    InUse(String),
    /// Memberships that would overlap another mutuelle's coverage of the
    /// same scheme beneficiary (see [`coverage_overlaps`]): nothing written.
    #[error("{} membership period(s) overlap another mutuelle's coverage", .0.len())]
    CoverageOverlap(Vec<CoverageOverlap>),
    #[error("schema version {found} is older than this binary's {want}: run `passerelle migrate`")]
    SchemaTooOld { found: i64, want: i64 },
    /// No database file where the configuration says (SQLite): nothing
    /// is created but by `passerelle migrate`, so that a mistyped path is
    /// said rather than served empty.
    #[error(
        "no database at {0}: check the path in the configuration (to start a new database there, run `passerelle migrate`)"
    )]
    NoDatabase(String),
    /// A database a newer binary migrated: refused by `serve` and
    /// `migrate` alike (docs/operations.md, "Upgrading replicas").
    #[error(
        "database schema version {found} is newer than this binary's {want}: upgrade passerelle (to go back to this version, restore the backup taken before the upgrade)"
    )]
    SchemaTooNew { found: i64, want: i64 },
    #[error("store: {0}")]
    Backend(String),
    /// A stored value this version cannot read (an unknown state, reason
    /// code or period state, an unreadable body): never read as a default.
    /// The message names the value and says a newer version may have
    /// written it (docs/operations.md, "Upgrading replicas").
    #[error("unreadable stored data: {0}")]
    Corrupt(String),
}

/// Claims: their lifecycle, leases and listings.
#[async_trait]
pub trait ClaimStore: Send + Sync + 'static {
    /// Stores a new claim (state RECEIVED) or reports what the key already
    /// holds. Also catches a provider invoice already on another live claim.
    async fn begin_claim(&self, new: NewClaim) -> Result<Begin, StoreError>;

    /// Stores a new claim already COORDINATED, with its outcome, in one
    /// commit (one statement on PostgreSQL): for a mutuelle whose rules
    /// the broker applies itself, where no partner system has to be asked
    /// between the two (`Adapter::adjudicates_from_store`). The consumption
    /// is applied conditionally as in [`ClaimStore::complete_claim`]:
    /// `CeilingConflict` stores nothing. `None`, nothing stored: the key
    /// or the invoice is already held, or the outcome is not a coordinated
    /// one without an authorization; the caller then takes the two
    /// commits of [`ClaimStore::begin_claim`], which tell a resend, a
    /// modified request and a duplicate invoice apart.
    async fn begin_coordinated(
        &self,
        new: &NewClaim,
        outcome: Outcome,
    ) -> Result<Option<ClaimRecord>, StoreError>;

    async fn get_claim(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<Option<ClaimRecord>, StoreError>;

    /// RECEIVED or PENDING_PARTNER -> COORDINATED or REJECTED, applying the
    /// consumption conditionally; `CeilingConflict` rolls everything back.
    /// `claim` is the claim as stored (its request never changes once
    /// stored): its lines are those the outcome's shares are for.
    /// `withdrawal`: for a rejection of a partner's answer the broker
    /// refused, the key of the cancel the partner is owed; the claim keeps
    /// it as its cancel key, due at `now_ms` with its attempts counted
    /// anew, and the retry worker takes it until
    /// [`ClaimStore::withdrawal_tried`] says it is sent
    /// (`core::owes_withdrawal`). Ignored for any other outcome.
    async fn complete_claim(
        &self,
        claim: &Claim,
        outcome: Outcome,
        withdrawal: Option<&str>,
        now_ms: i64,
    ) -> Result<Transition, StoreError>;

    /// A REJECTED claim whose partner is owed a cancel
    /// (`core::owes_withdrawal`), after an attempt to send it: to try again
    /// at `next_attempt_ms`, or, `None`, nothing more to send (delivered,
    /// or to be done by hand, which `last_error` then says). The claim
    /// stays REJECTED with the same change number and time of change:
    /// nothing the scheme reads changes. Stale in any other state, so that
    /// a scheme's cancel begun meanwhile is left alone.
    async fn withdrawal_tried(
        &self,
        scheme_id: &str,
        claim_id: &str,
        next_attempt_ms: Option<i64>,
        last_error: &str,
    ) -> Result<Transition, StoreError>;

    /// RECEIVED or PENDING_PARTNER -> PENDING_PARTNER with the next attempt
    /// time; CANCEL_PENDING stays, with the next attempt time. `from`: the
    /// state the deferred attempt started from; an adjudication's deferral
    /// does not apply to a claim whose cancel began meanwhile, nor a
    /// cancel's to a claim no longer cancelling (`Stale`).
    async fn defer(
        &self,
        scheme_id: &str,
        claim_id: &str,
        from: ClaimState,
        next_attempt_ms: i64,
        last_error: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError>;

    /// Leases up to `limit` claims whose next attempt is due (awaiting the
    /// partner or a cancel, `core::SQL_TAKEN_BY_WORKER`): each gets `attempts + 1` and a next attempt time
    /// of `now + lease_ms`, by compare-and-set, so that two workers never take
    /// the same claim at once.
    async fn lease_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError>;

    /// Makes due at `now_ms` every claim and cancel waiting for `mutuelle_id`
    /// (PENDING_PARTNER, CANCEL_PENDING) whose next attempt is more than
    /// `lease_ms` away: nearer ones may be leased by a worker at this moment
    /// and are due soon anyway. Returns how many it moved.
    async fn expedite(
        &self,
        mutuelle_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Any live state -> CANCEL_PENDING (kept if already there or cancelled).
    async fn begin_cancel(
        &self,
        scheme_id: &str,
        claim_id: &str,
        cancel_key: &str,
        reason: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<Transition, StoreError>;

    /// CANCEL_PENDING -> CANCELLED, restoring exactly what the claim consumed.
    /// `note` stays on the claim as its last error: what a person must
    /// still do (a partner that cannot cancel), or empty.
    async fn complete_cancel(
        &self,
        scheme_id: &str,
        claim_id: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError>;

    /// Claims of a scheme changed after `after_seq`, oldest change first.
    async fn list_changed(
        &self,
        scheme_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError>;

    /// Claims matching a filter, oldest first, after the claim `after` (a
    /// page token), with the totals of everything that matches.
    async fn list_claims(
        &self,
        filter: &ClaimFilter,
        after: i64,
        limit: u32,
    ) -> Result<ClaimPage, StoreError>;

    /// Takes a claim waiting on its partner (or a cancel, or owing one) for
    /// an attempt now: `None` when it is not waiting, or when it is a
    /// RECEIVED claim its first request still holds (asking the mutuelle
    /// until `next_attempt_ms`).
    async fn lease_now(
        &self,
        scheme_id: &str,
        claim_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<ClaimRecord>, StoreError>;
}

/// The roster: members and the coverage rule.
#[async_trait]
pub trait RosterStore: Send + Sync + 'static {
    /// Creates or replaces members, all or none. Refuses (nothing written)
    /// what [`coverage_rule`] refuses: `Invalid` a mutuelle's members past
    /// the bound for one scheme beneficiary, `CoverageOverlap` a membership
    /// that overlaps another mutuelle's coverage of the same beneficiary.
    async fn upsert_members(&self, members: &[Member], now_ms: i64) -> Result<(), StoreError>;

    /// Scheme beneficiaries covered by two mutuelles on the same dates, at
    /// most `limit` (stored before the coverage rule, or by an operator).
    async fn coverage_conflicts(
        &self,
        scheme_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CoverageConflict>, StoreError>;

    /// Resolves a beneficiary's conflicts in favour of the mutuelle `keep`
    /// (see [`resolve_plan`]); returns the member records it changed.
    /// With `from`, `keep` holds the beneficiary from that day on, whether
    /// or not it holds a membership yet; without, `keep` must hold one.
    async fn resolve_coverage(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        keep: &str,
        from: Option<Date>,
        now_ms: i64,
    ) -> Result<Vec<Member>, StoreError>;

    async fn get_member(
        &self,
        mutuelle_id: &str,
        member_number: &str,
    ) -> Result<Option<Member>, StoreError>;

    /// Every member record for a scheme beneficiary, across mutuelles: at
    /// most [`passerelle_domain::validate::MAX_MEMBERS_PER_BENEFICIARY`] of
    /// each mutuelle, as [`coverage_rule`] keeps them (records stored
    /// before that bound aside).
    async fn find_members(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
    ) -> Result<Vec<Member>, StoreError>;

    /// Replaces a mutuelle's roster with a snapshot (see [`RosterImport`]);
    /// the coverage rule as in `upsert_members`, on the members it adds or
    /// changes (a dry run reports the same refusal).
    async fn import_roster(
        &self,
        import: RosterImport,
        now_ms: i64,
    ) -> Result<RosterDiff, StoreError>;
}

/// Products and the ceilings they consume.
#[async_trait]
pub trait ProductStore: Send + Sync + 'static {
    /// Stores product versions, all or none; refuses to change one a claim
    /// used. With `approved`, the proposal that publishes them, marked
    /// applied in the same transaction (see [`approvals::Approved`]).
    async fn put_products(
        &self,
        products: &[Product],
        approved: Option<&approvals::Approved>,
    ) -> Result<Vec<PutProduct>, StoreError>;

    /// Every product version of a mutuelle, with whether a claim used it.
    async fn list_products(&self, mutuelle_id: &str) -> Result<Vec<(Product, bool)>, StoreError>;

    /// The version of a product in force on a date.
    async fn product_on(
        &self,
        mutuelle_id: &str,
        product_id: &str,
        date: Date,
    ) -> Result<Option<Product>, StoreError>;

    /// Current usage of ceilings of a mutuelle.
    async fn usage(&self, mutuelle_id: &str, keys: &[CeilingKey]) -> Result<Usage, StoreError>;
}

/// Periods, their closing, settlement and statements.
#[async_trait]
pub trait SettlementStore: Send + Sync + 'static {
    /// Periods of a scheme x mutuelle, newest first; the open one first.
    async fn list_periods(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
    ) -> Result<Vec<PeriodRecord>, StoreError>;

    /// What [`SettlementStore::close_period`] would take of the open period
    /// up to `until_ms` (claims coordinated and recoveries raised up to
    /// then), as a close proposed at that time expects it: read with the
    /// close's own rule, so that a claim coordinated after `until_ms` yet
    /// read with the open period never makes the close refuse.
    async fn closing_content(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        until_ms: i64,
    ) -> Result<PeriodContent, StoreError>;

    /// Closes the open period: what `upto` takes of it (claims coordinated
    /// and recoveries raised up to its time), and only when that is what
    /// `upto` expects. Refused when it holds nothing. With `approved`, the
    /// proposal of this close, marked applied in the same transaction (see
    /// [`approvals::Approved`]).
    async fn close_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        upto: &CloseUpTo,
        now_ms: i64,
        approved: Option<&approvals::Approved>,
    ) -> Result<PeriodRecord, StoreError>;

    /// Marks a closed period settled, with the payment's reference (the
    /// same reference again changes nothing). With `approved`, the
    /// proposal of this settlement, marked applied in the same transaction
    /// (see [`approvals::Approved`]).
    async fn settle_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        reference: &str,
        now_ms: i64,
        approved: Option<&approvals::Approved>,
    ) -> Result<PeriodRecord, StoreError>;

    /// Where a claim stands in its mutuelle's periods; `None` when no
    /// such claim is stored. One row, read by the claim's key.
    async fn claim_periods(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<Option<ClaimPeriods>, StoreError>;

    /// The lines and recoveries of a period (0: the open period).
    async fn statement(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
    ) -> Result<StatementData, StoreError> {
        self.statement_page(scheme_id, mutuelle_id, number, None)
            .await
    }

    /// A page of a statement (`None`: all of it), in the statement's order
    /// (payee type, payee, claim id, line).
    async fn statement_page(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        page: Option<&StatementPage>,
    ) -> Result<StatementData, StoreError>;

    /// The payees of a period's statement (0: the open period), in the
    /// statement's order, from where `from` says, at most `limit` of
    /// them, each with its totals. A page reads only its payees' claims,
    /// however large the period.
    async fn statement_payees(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        from: PayeesFrom<'_>,
        limit: u32,
    ) -> Result<Vec<PayeeTotal>, StoreError>;
}

/// What operators and the circuit breaker decided about a partner, shared
/// by every broker on the store and kept across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartnerControl {
    pub partner_id: String,
    /// When an operator paused it; 0: not paused.
    pub paused_ms: i64,
    /// Who paused it (the operator's identity).
    pub paused_by: String,
    /// Until when its circuit breaker is open; 0: closed.
    pub breaker_open_until_ms: i64,
}

/// Partners' pauses and circuit breakers. The retry worker's `lease_due`
/// leaves alone the claims of a paused partner and of one whose breaker is
/// open.
#[async_trait]
pub trait PartnerStore: Send + Sync + 'static {
    /// Every partner with a control row, by id.
    async fn partner_controls(&self) -> Result<Vec<PartnerControl>, StoreError>;

    /// Pauses a partner (`by`: the operator) or resumes it (`None`);
    /// returns its row.
    async fn set_paused(
        &self,
        partner_id: &str,
        by: Option<&str>,
        now_ms: i64,
    ) -> Result<PartnerControl, StoreError>;

    /// Opens the partner's breaker until `open_until_ms`, or closes it (0).
    async fn set_breaker(&self, partner_id: &str, open_until_ms: i64) -> Result<(), StoreError>;
}

/// The audit log and what it tells of partners.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Audit rows about one subject (for a claim: "SCHEME/CLAIM"), oldest
    /// first, at most [`AuditTrail::MAX_ROWS`]: past that, the oldest
    /// [`AuditTrail::HEAD`] and the newest rest, and how many were left
    /// out between (`core::audit_trail`).
    async fn audit_of(&self, subject: &str) -> Result<AuditTrail, StoreError>;

    /// Makes ready what the audit log needs from `now_ms` on: on
    /// PostgreSQL, the months ahead of it (`postgres::audit`); nothing on
    /// SQLite. The retention worker calls it every pass, whether it
    /// prunes or not.
    async fn prepare_audit(&self, _now_ms: i64) -> Result<(), StoreError> {
        Ok(())
    }

    /// Deletes audit rows older than `before_ms`, except those of claims not
    /// final yet (final: cancelled, rejected, or in a settled period).
    /// On PostgreSQL a month goes whole, once all of it is older (up to a
    /// month later than `before_ms` says; `postgres::audit`).
    /// `None` when another broker is pruning right now.
    async fn prune_audit(&self, before_ms: i64) -> Result<Option<u64>, StoreError>;

    /// Appends to the audit log.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError>;

    /// Reads the audit log (newest last), for operators and tests.
    async fn read_audit(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEntry)>, StoreError>;

    /// Last partner calls and the claims waiting on a mutuelle.
    async fn partner_activity(&self, mutuelle_id: &str) -> Result<PartnerActivity, StoreError>;
}

/// The storage trait: one per concern above, each with its section of the
/// conformance suite. Every method is one transaction.
#[async_trait]
pub trait Store:
    ClaimStore
    + RosterStore
    + ProductStore
    + SettlementStore
    + AuditStore
    + PartnerStore
    + users::UserStore
    + approvals::ApprovalStore
    + authorizations::AuthorizationStore
    + opening::OpeningStore
    + Send
    + Sync
    + 'static
{
    /// (schema version found, schema version this binary writes).
    async fn schema_status(&self) -> Result<(i64, i64), StoreError>;

    /// Ends the store's connections as the process stops (after the
    /// broker's shutdown); a call after it fails. Nothing to do where the
    /// backend holds no connection to a server.
    fn close(&self) {}

    /// The connection pool's use, where the backend has one to report.
    fn pool_use(&self) -> Option<PoolUse> {
        None
    }

    /// The collation the database compares the stored keys by, where it is
    /// not the bytes' order: a PostgreSQL database created under a
    /// language's locale (`fr_FR.UTF-8`, or ICU's) compares every key of
    /// every index lookup by that language's rules: libc's French left an
    /// eligibility check's reads at about three quarters of their rate
    /// (docs/PERFORMANCE.md, "Where the seeded store's extra CPU goes, and
    /// the database's locale"). `None` where keys compare as bytes: SQLite
    /// always, PostgreSQL under `C`, `POSIX` or `C.UTF-8`. Advice, never a
    /// refusal: a lookup and the index it reads compare by one collation
    /// either way, so only the cost differs.
    async fn slow_collation(&self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    /// What routing reads: the beneficiary's member records (the card's
    /// one, `mutuelle_id` and member number, as [`RosterStore::get_member`]
    /// reads it, else all of them as [`RosterStore::find_members`]), and,
    /// for a claim, the claim already stored under its key (a resend). A
    /// backend whose reads are round trips answers both in one
    /// (PostgreSQL: one statement, then the stored claim read only when
    /// there is one): a new claim then costs no read for the resend check
    /// (measured on PostgreSQL: a read of its own took claims from 0.65 to
    /// 0.59 P0, docs/PERFORMANCE.md).
    async fn members_for(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        card: Option<(&str, &str)>,
        claim_id: Option<&str>,
    ) -> Result<(Vec<Member>, Option<ClaimRecord>), StoreError> {
        let members = members_of(self, scheme_id, beneficiary_id, card).await?;
        let stored = match claim_id {
            Some(id) => self.get_claim(scheme_id, id).await?,
            None => None,
        };
        Ok((members, stored))
    }
}

/// A beneficiary's member records, the card's one or all of them (the
/// members part of [`Store::members_for`]).
pub(crate) async fn members_of<S: RosterStore + ?Sized>(
    store: &S,
    scheme_id: &str,
    beneficiary_id: &str,
    card: Option<(&str, &str)>,
) -> Result<Vec<Member>, StoreError> {
    Ok(match card {
        Some((mid, number)) => store.get_member(mid, number).await?.into_iter().collect(),
        None => store.find_members(scheme_id, beneficiary_id).await?,
    })
}

/// Parsed product bodies. Eligibility through the rules adapter reads the
/// member's product on every call, and parsing its JSON body was the largest
/// part of that call's cost. A product version can still be replaced until
/// a claim uses it, so an entry is only used when the stored body is
/// byte-for-byte the one it was parsed from: a hit costs a string compare
/// and a clone, never a stale product.
#[derive(Default)]
pub(crate) struct ProductCache {
    map: std::sync::Mutex<std::collections::HashMap<ProductKey, (Box<str>, Product)>>,
}

/// (mutuelle, product, version).
type ProductKey = (String, String, i64);

/// Enough for every product of every partner of a deployment; past it the
/// cache starts again rather than grow without bound.
const PRODUCT_CACHE_MAX: usize = 4096;

impl ProductCache {
    pub(crate) fn get_or_parse(
        &self,
        mutuelle_id: &str,
        product_id: &str,
        version: i64,
        body: &str,
    ) -> Result<Product, StoreError> {
        let key = (mutuelle_id.to_string(), product_id.to_string(), version);
        if let Some((b, p)) = self.map.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && **b == *body
        {
            return Ok(p.clone());
        }
        let p: Product = core::from_json("product body", body.as_bytes())?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRODUCT_CACHE_MAX {
            map.clear();
        }
        map.insert(key, (body.into(), p.clone()));
        Ok(p)
    }
}

/// The store seen by the rules adapter.
pub struct RulesDataStore(pub std::sync::Arc<dyn Store>);

#[async_trait]
impl passerelle_adapters::RulesData for RulesDataStore {
    async fn find_member(
        &self,
        mutuelle_id: &str,
        scheme_id: &str,
        beneficiary_id: &str,
        member_number: Option<&str>,
    ) -> Result<Option<Member>, String> {
        if let Some(n) = member_number {
            let m = self
                .0
                .get_member(mutuelle_id, n)
                .await
                .map_err(|e| e.to_string())?;
            // A card's member number must belong to the beneficiary asking.
            return Ok(m.filter(|m| m.scheme_id == scheme_id && m.beneficiary_id == beneficiary_id));
        }
        let all = self
            .0
            .find_members(scheme_id, beneficiary_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(all.into_iter().find(|m| m.mutuelle_id == mutuelle_id))
    }

    async fn product_on(
        &self,
        mutuelle_id: &str,
        product_id: &str,
        date: Date,
    ) -> Result<Option<Product>, String> {
        self.0
            .product_on(mutuelle_id, product_id, date)
            .await
            .map_err(|e| e.to_string())
    }

    async fn usage(&self, mutuelle_id: &str, keys: &[CeilingKey]) -> Result<Usage, String> {
        self.0
            .usage(mutuelle_id, keys)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    /// docs/operations.md's upgrade table says, for this binary's version,
    /// the schema versions it migrates to and every state it writes: an
    /// operator plans an upgrade window from that row.
    #[test]
    fn the_upgrade_table_names_this_binarys_schema() {
        use super::{ClaimState, PeriodState, postgres, sqlite};
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");
        let doc = std::fs::read_to_string(path).expect("docs/operations.md");
        let prefix = format!("| {} ", env!("CARGO_PKG_VERSION"));
        let row = doc
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no row {prefix}| in the upgrade table"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(
            cells[2],
            format!("{} / {}", sqlite::SCHEMA_VERSION, postgres::SCHEMA_VERSION),
            "{row}"
        );
        let claims: Vec<&str> = cells[3].split(", ").collect();
        for s in ClaimState::ALL {
            assert!(
                claims.contains(&s.as_str()),
                "{} missing: {row}",
                s.as_str()
            );
        }
        let periods: Vec<&str> = cells[4].split(", ").collect();
        for (s, name) in [
            (PeriodState::Closed, "closed"),
            (PeriodState::Settled, "settled"),
        ] {
            assert_eq!(super::core::period_state_parse(name).ok(), Some(s));
            assert!(periods.contains(&name), "{name} missing: {row}");
        }
    }

    /// The service and the store work on domain types: protobuf stays at the
    /// edge (api/, the CLI, proto/). Every source file under service/ and
    /// store/ is read, so a new one is covered without a list.
    #[test]
    fn the_service_and_the_store_know_no_protobuf() {
        let mut files = crate::source_guard::production_files("service");
        files.extend(crate::source_guard::production_files("store"));
        assert!(files.len() > 20, "{} files read", files.len());
        for (path, code) in files {
            for needle in ["passerelle_proto", "tonic::", "prost::"] {
                assert!(!code.contains(needle), "{} uses {needle}", path.display());
            }
        }
    }
}
