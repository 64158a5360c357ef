//! The shared core of the store backends. SQLite and PostgreSQL differ in
//! their SQL and their transactions; everything else lives here once:
//! - the column lists and the decoding of rows, over [`Row`] (each backend
//!   implements it for its own row type);
//! - the codecs of the enum strings stored in rows, strict: a value this
//!   version does not know is a [`StoreError::Corrupt`] naming it, never a
//!   default (a newer replica may have written it: docs/operations.md,
//!   "Upgrading replicas");
//! - pure plans of the decisions a write makes (what a new claim row holds,
//!   whether a transition applies, what a settlement does), so that both
//!   backends decide the same way by construction.

use passerelle_domain::{
    CeilingUse, Claim, ClaimState, DetailKey, LineShare, Payee, Product, ProductRef, Reason,
    ReasonCode, date,
};

use super::{
    AuditEntry, AuditTrail, Begin, ClaimFilter, ClaimPeriods, ClaimRecord, ClaimSummary, CloseUpTo,
    Direction, NewClaim, PeriodContent, PeriodRecord, PeriodState, PutProduct, RecoveryLine,
    StatementLine, StoreError, Totals,
};

/// Column access by position, the little the decoders need. A NULL read
/// where a value is required, or a value of another type, is an error.
pub(super) trait Row {
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
}

// ---------------------------------------------------------------------------
// Codecs of stored strings.

/// The error of a stored value this version cannot read.
pub(super) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "{what} {value:?} is unknown to passerelle {}: it may have been written by a newer \
         version (see docs/operations.md, \"Upgrading replicas\")",
        env!("CARGO_PKG_VERSION")
    ))
}

/// A JSON column (a claim, a member, a product, a line's reasons).
pub(super) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain values always serialize")
}

/// Reads a JSON column; a body this version cannot read is corrupt, never
/// skipped. The error names the column and where in the body it failed,
/// never the body's content (claim and member bodies hold beneficiary ids,
/// and the message reaches the caller and the audit log); an unknown enum
/// name in it (a reason code, a care category) is named, since a newer
/// version may have written it and it holds nothing personal.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        let variant = text
            .strip_prefix("unknown variant `")
            .and_then(|r| r.split_once('`'))
            .map(|(v, _)| v)
            .filter(|v| v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        let at = format!("line {} column {}", e.line(), e.column());
        match variant {
            Some(v) => corrupt(what, &format!("{v} ({at})")),
            None => corrupt(what, &format!("{:?} error at {at}", e.classify())),
        }
    })
}

/// A unit enum variant by its serde name (`ReasonCode::DuplicateInvoice` is
/// "DUPLICATE_INVOICE", `Payee::Member` is "member").
fn variant_str<T: serde::Serialize>(v: T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => unreachable!("not a unit variant: {other:?}"),
    }
}

fn variant_parse<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    use serde::de::IntoDeserializer;
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> = s.into_deserializer();
    T::deserialize(de).map_err(|_| corrupt(what, s))
}

pub(super) fn code_str(c: ReasonCode) -> String {
    variant_str(c)
}

pub(super) fn code_parse(s: &str) -> Result<ReasonCode, StoreError> {
    variant_parse("reason code", s)
}

pub(super) fn payee_str(p: Payee) -> String {
    variant_str(p)
}

pub(super) fn state_parse(s: &str) -> Result<ClaimState, StoreError> {
    ClaimState::parse(s).ok_or_else(|| corrupt("claim state", s))
}

/// A stored period is closed or settled; the open period is never a row.
pub(super) fn period_state_parse(s: &str) -> Result<PeriodState, StoreError> {
    match s {
        "closed" => Ok(PeriodState::Closed),
        "settled" => Ok(PeriodState::Settled),
        _ => Err(corrupt("period state", s)),
    }
}

pub(super) fn direction_parse(s: &str) -> Result<Direction, StoreError> {
    match s {
        "in" => Ok(Direction::In),
        "out" => Ok(Direction::Out),
        _ => Err(corrupt("audit direction", s)),
    }
}

/// The states in SQL, for the conditions that both backends write the same
/// way (the test below ties each list to the domain's own predicate).
pub(super) const SQL_WAITING: &str = "('received', 'pending_partner', 'cancel_pending')";
/// States a completion applies to ([`may_complete`]).
pub(super) const SQL_AWAITING_PARTNER: &str = "('received', 'pending_partner')";
/// States in which a claim may hold a provider's invoice ([`SQL_HOLDS_INVOICE`]),
/// tied to the domain's predicate by a test.
#[cfg(test)]
pub(super) const SQL_HOLDS_INVOICE_STATES: &str =
    "('received', 'pending_partner', 'coordinated', 'cancel_pending')";
/// The claims that hold a provider's invoice (a second claim with the same
/// invoice is a duplicate while one holds it): those live, never rejected.
/// A REJECTED claim gave its invoice up for good, so that a corrected
/// claim may bill it: a scheme's cancel of the rejected claim afterwards
/// (CANCEL_PENDING until the mutuelle is told) does not take it back.
pub(super) const SQL_HOLDS_INVOICE: &str = "state IN ('received', 'pending_partner', 'coordinated', 'cancel_pending') \
     AND rejection_code IS NULL";

/// A claim waits on its partner (or on a cancel): the retry worker takes it.
fn is_waiting(s: ClaimState) -> bool {
    s.awaiting_partner() || s == ClaimState::CancelPending
}

/// The claims the retry worker takes (`lease_due`, `lease_now`): those
/// waiting ([`SQL_WAITING`]), and a claim REJECTED because the broker
/// refused its partner's answer while the partner's cancel of that
/// adjudication is still to be sent ([`owes_withdrawal`]). Such a claim's
/// `cancel_key` and `next_attempt_ms` are set by `complete_claim`, and the
/// attempt time cleared by `withdrawal_tried` once the cancel is sent; no
/// other REJECTED claim has both (a scheme's cancel moves the claim to
/// CANCEL_PENDING, then CANCELLED). `expedite` does not bring such a
/// cancel forward: it waits out its back-off (at most `retry.max_ms`), and
/// `expedite` keeps reading the small index of the claims waiting.
pub(super) const SQL_TAKEN_BY_WORKER: &str = "(state IN ('received', 'pending_partner', 'cancel_pending') \
     OR (state = 'rejected' AND cancel_key IS NOT NULL AND next_attempt_ms IS NOT NULL))";

/// What an operator's retry (`lease_now`) takes at `now` (placeholder
/// `now`): what the worker takes, but a RECEIVED claim whose first
/// request still holds it (its lease, until `next_attempt_ms`: the
/// request is asking the mutuelle). Taken then, the mutuelle was asked a
/// second time under the same key while the first call waited. (A
/// deferred claim is PENDING_PARTNER: its time is a back-off, which a
/// retry now is meant to cut short.)
pub(super) fn sql_taken_now(now: &str) -> String {
    format!(
        "({SQL_TAKEN_BY_WORKER} AND NOT (state = 'received' AND COALESCE(next_attempt_ms, 0) > {now}))"
    )
}

/// What waits on a partner, read from each of its partial indexes apart
/// (the claims waiting, `claims_waiting`; the cancels owed, `claims_owing`):
/// each query gives a count and the oldest creation time (parameter: the
/// mutuelle; placeholder `ph`). [`partner_waiting`] adds them up.
pub(super) fn partner_waiting_sql(ph: char) -> [String; 2] {
    [
        format!("state IN {SQL_WAITING}"),
        SQL_OWES_WITHDRAWAL.to_string(),
    ]
    .map(|cond| {
        format!("SELECT COUNT(*), MIN(created_ms) FROM claims WHERE mutuelle_id = {ph}1 AND {cond}")
    })
}

/// The rows of [`partner_waiting_sql`] as one count and the oldest.
pub(super) fn partner_waiting(parts: impl IntoIterator<Item = (i64, Option<i64>)>) -> (u32, i64) {
    let (mut count, mut oldest) = (0i64, None);
    for (n, at) in parts {
        count = count.saturating_add(n);
        oldest = oldest.into_iter().chain(at).min();
    }
    (
        u32::try_from(count).unwrap_or(u32::MAX),
        oldest.unwrap_or(0),
    )
}

/// [`owes_withdrawal`] in SQL: the predicate of the partial index
/// `claims_owing` (both backends), which a partner's count of what waits on
/// it reads (`partner_activity`).
pub(super) const SQL_OWES_WITHDRAWAL: &str =
    "state = 'rejected' AND cancel_key IS NOT NULL AND next_attempt_ms IS NOT NULL";

/// A claim REJECTED because the broker refused its partner's answer
/// (`PARTNER_ANSWER_INVALID`), whose partner has not yet been told to
/// cancel that adjudication. The partner may have booked what it answered
/// (a FHIR server its ClaimResponse, a mutuelle its share): without the
/// cancel its books and the broker's would differ.
pub(super) fn owes_withdrawal(r: &ClaimRecord) -> bool {
    r.state == ClaimState::Rejected && r.cancel_key.is_some() && r.next_attempt_ms.is_some()
}

#[cfg(test)]
fn holds_invoice(s: ClaimState) -> bool {
    !matches!(s, ClaimState::Rejected | ClaimState::Cancelled)
}

// ---------------------------------------------------------------------------
// Decoding rows.

/// The columns of a claim row, in the order [`claim`] reads them.
pub(super) const CLAIM_COLS: &str = "id, body, request_hash, state, mutuelle_id, member_number, \
    adjudication_key, cancel_key, cancel_reason, product_id, product_version, product_name, \
    partner_reference, rejection_code, rejection_message, attempts, next_attempt_ms, \
    last_error, change_seq, created_ms, updated_ms, duplicate_of";

fn u32_at(r: &dyn Row, i: usize, what: &str) -> Result<u32, StoreError> {
    let v = r.int(i)?;
    u32::try_from(v).map_err(|_| corrupt(what, &v.to_string()))
}

/// A claim row of [`CLAIM_COLS`] (without its lines), with its key.
pub(super) fn claim(r: &dyn Row) -> Result<(i64, ClaimRecord), StoreError> {
    let claim: Claim = from_json("claim body", r.text(1)?.as_bytes())?;
    let product = match r.opt_text(9)? {
        None => None,
        Some(id) => Some(ProductRef {
            id,
            version: match r.opt_int(10)? {
                None => 0,
                Some(v) => {
                    u32::try_from(v).map_err(|_| corrupt("product version", &v.to_string()))?
                }
            },
            name: r.opt_text(11)?.unwrap_or_default(),
        }),
    };
    let duplicate_of = r.opt_text(21)?;
    let rejection = match r.opt_text(13)? {
        None => None,
        Some(code) => {
            let code = code_parse(&code)?;
            // A rejection is stored as its code and words; a duplicate's
            // detail is said again from the claim and the column naming
            // the other claim (no stored value for it), an authorization
            // billed elsewhere's from its words.
            let message = r.opt_text(14)?.unwrap_or_default();
            let detail = match (code, &duplicate_of) {
                (ReasonCode::DuplicateInvoice, Some(other)) => {
                    duplicate_invoice(&claim, other).detail
                }
                (ReasonCode::PriorAuthorizationNotActive, _) => {
                    super::authorizations::billed_elsewhere_again(&message)
                }
                _ => None,
            };
            Some(Reason {
                code,
                message,
                detail,
            })
        }
    };
    let seq = r.int(18)?;
    Ok((
        r.int(0)?,
        ClaimRecord {
            claim,
            request_hash: r.text(2)?,
            state: state_parse(&r.text(3)?)?,
            mutuelle_id: r.text(4)?,
            member_number: r.text(5)?,
            adjudication_key: r.text(6)?,
            cancel_key: r.opt_text(7)?,
            cancel_reason: r.text(8)?,
            shares: None,
            product,
            partner_reference: r.text(12)?,
            rejection,
            attempts: u32_at(r, 15, "attempt count")?,
            next_attempt_ms: r.opt_int(16)?,
            last_error: r.text(17)?,
            change_seq: u64::try_from(seq)
                .map_err(|_| corrupt("change number", &seq.to_string()))?,
            created_ms: r.int(19)?,
            updated_ms: r.int(20)?,
            duplicate_of,
        },
    ))
}

/// `sequence, mutuelle_share, reasons` of a claim line.
pub(super) const LINE_SHARE_COLS: &str = "sequence, mutuelle_share, reasons";

pub(super) fn line_share(r: &dyn Row) -> Result<LineShare, StoreError> {
    Ok(LineShare {
        sequence: u32_at(r, 0, "line sequence")?,
        mutuelle_share: r.int(1)?,
        reasons: from_json("line reasons", r.text(2)?.as_bytes())?,
    })
}

/// The columns of a claim listing row (`c`: claims, `p`: its period).
pub(super) const SUMMARY_COLS: &str = "c.id, c.scheme_id, c.claim_id, c.mutuelle_id, c.state, \
    c.provider_id, c.invoice_number, c.date_of_care, c.currency, c.billed_total, c.scheme_total, \
    c.mutuelle_total, COALESCE(p.number, 0), c.updated_ms";

pub(super) fn summary(r: &dyn Row) -> Result<ClaimSummary, StoreError> {
    Ok(ClaimSummary {
        pk: r.int(0)?,
        scheme_id: r.text(1)?,
        claim_id: r.text(2)?,
        mutuelle_id: r.text(3)?,
        state: state_parse(&r.text(4)?)?,
        provider_id: r.text(5)?,
        invoice_number: r.text(6)?,
        date_of_care: r.text(7)?,
        currency: r.text(8)?,
        totals: Totals {
            billed: r.int(9)?,
            scheme: r.int(10)?,
            mutuelle: r.int(11)?,
        },
        period: u32_at(r, 12, "period number")?,
        updated_ms: r.int(13)?,
    })
}

/// Who a statement line pays: the provider, or the member when the member
/// paid the provider (`c`: claims). Two columns.
macro_rules! payee_type {
    () => {
        "CASE c.payee_type WHEN 'member' THEN 'member' ELSE 'provider' END"
    };
}
macro_rules! payee_id {
    () => {
        "CASE c.payee_type WHEN 'member' THEN c.member_number ELSE c.provider_id END"
    };
}
pub(super) const PAYEE_COLS: &str = concat!(payee_type!(), ", ", payee_id!());

/// The columns of a statement line (`c`: claims, `l`: claim_lines).
pub(super) fn statement_line_cols() -> String {
    format!(
        "{PAYEE_COLS}, c.claim_id, c.invoice_number, c.date_of_care, c.member_number, \
         l.sequence, l.act_code, l.billed, l.scheme_share, l.mutuelle_share, c.state"
    )
}

pub(super) fn statement_line(r: &dyn Row) -> Result<StatementLine, StoreError> {
    Ok(StatementLine {
        payee_type: r.text(0)?,
        payee_id: r.text(1)?,
        claim_id: r.text(2)?,
        invoice_number: r.text(3)?,
        date_of_care: r.text(4)?,
        member_number: r.text(5)?,
        sequence: u32_at(r, 6, "line sequence")?,
        act_code: r.text(7)?,
        billed: r.int(8)?,
        scheme: r.int(9)?,
        mutuelle: r.int(10)?,
        cancelled: state_parse(&r.text(11)?)? == ClaimState::Cancelled,
    })
}

/// The columns of a recovery line (`r`: recoveries, `c`: its claim).
pub(super) fn recovery_cols() -> String {
    format!(
        "c.claim_id, c.invoice_number, r.from_period, r.amount, {PAYEE_COLS}, \
         c.member_number, c.date_of_care"
    )
}

pub(super) fn recovery(r: &dyn Row) -> Result<RecoveryLine, StoreError> {
    Ok(RecoveryLine {
        claim_id: r.text(0)?,
        invoice_number: r.text(1)?,
        from_period: u32_at(r, 2, "period number")?,
        amount: r.int(3)?,
        payee_type: r.text(4)?,
        payee_id: r.text(5)?,
        member_number: r.text(6)?,
        date_of_care: r.text(7)?,
    })
}

/// Where a claim stands in its periods (placeholders `ph`1 and 2: scheme,
/// claim): its recovery's columns ([`recovery_cols`]; amount and period
/// null when it has none), the number of its closed period (0: none), and
/// the number of the period its recovery was closed into (0: none yet).
pub(super) fn claim_periods_sql(ph: char) -> String {
    format!(
        "SELECT {}, COALESCE(p.number, 0), COALESCE(rp.number, 0) \
         FROM claims c LEFT JOIN periods p ON p.id = c.period_id \
         LEFT JOIN recoveries r ON r.claim_pk = c.id \
         LEFT JOIN periods rp ON rp.id = r.period_id \
         WHERE c.scheme_id = {ph}1 AND c.claim_id = {ph}2",
        recovery_cols()
    )
}

/// A row of [`claim_periods_sql`].
pub(super) fn claim_periods(r: &dyn Row) -> Result<ClaimPeriods, StoreError> {
    let recovery = match r.opt_int(3)? {
        None => None,
        Some(_) => Some((recovery(r)?, u32_at(r, 9, "period number")?)),
    };
    Ok(ClaimPeriods {
        period: u32_at(r, 8, "period number")?,
        recovery,
    })
}

/// A subject's audit rows, newest first, one more than a trail holds
/// (`tbl`: the table or view; `ph`: the subject's placeholder): when they
/// all fit, they are the trail ([`audit_trail`]).
pub(super) fn audit_newest_sql(tbl: &str, ph: &str) -> String {
    format!(
        "SELECT {AUDIT_COLS} FROM {tbl} WHERE subject = {ph} ORDER BY id DESC LIMIT {}",
        AuditTrail::MAX_ROWS + 1
    )
}

/// A long trail's oldest rows, and its count.
pub(super) fn audit_head_sql(tbl: &str, ph: &str) -> (String, String) {
    (
        format!(
            "SELECT {AUDIT_COLS} FROM {tbl} WHERE subject = {ph} ORDER BY id LIMIT {}",
            AuditTrail::HEAD
        ),
        format!("SELECT count(*) FROM {tbl} WHERE subject = {ph}"),
    )
}

/// Whether a trail's newest rows ([`audit_newest_sql`]) are all of it;
/// if not, its oldest and its count are read ([`audit_head_sql`]).
pub(super) fn audit_trail_is_whole(newest: &[AuditEntry]) -> bool {
    newest.len() <= AuditTrail::MAX_ROWS
}

/// The trail from its newest rows, and from its oldest and its count when
/// they did not all fit ([`audit_trail_is_whole`]).
pub(super) fn audit_trail(
    mut newest: Vec<AuditEntry>,
    head: Option<(Vec<AuditEntry>, i64)>,
) -> AuditTrail {
    let Some((mut rows, count)) = head else {
        newest.truncate(AuditTrail::MAX_ROWS);
        newest.reverse();
        return AuditTrail {
            rows: newest,
            omitted: 0,
        };
    };
    rows.truncate(AuditTrail::HEAD);
    newest.truncate(AuditTrail::MAX_ROWS - rows.len());
    newest.reverse();
    rows.extend(newest);
    AuditTrail {
        // The reads are of one snapshot (one transaction): never below
        // zero all the same.
        omitted: u64::try_from(count)
            .unwrap_or(0)
            .saturating_sub(rows.len() as u64),
        rows,
    }
}

/// The columns of an audit row, in the order [`audit`] reads them.
pub(super) const AUDIT_COLS: &str =
    "at_ms, direction, party, method, subject, request_hash, outcome, trace_id";

pub(super) fn audit(r: &dyn Row) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        at_ms: r.int(0)?,
        direction: direction_parse(&r.text(1)?)?,
        party: r.text(2)?,
        method: r.text(3)?,
        subject: r.text(4)?,
        request_hash: r.text(5)?,
        outcome: r.text(6)?,
        trace_id: r.text(7)?,
    })
}

/// The columns of a period row, in the order [`period`] reads them.
pub(super) const PERIOD_COLS: &str = "id, state, closed_ms, settled_ms, settlement_reference, \
    claim_count, billed_total, scheme_total, mutuelle_total, recoveries_total";

/// Stores a closed period's totals on its row (placeholders: claim count,
/// billed, scheme, mutuelle, recoveries, then the row's id), computed
/// once when it closes: they never change after (a closed period keeps
/// the claims it closed with), and a statement page or a listing reads
/// them instead of adding up every claim of the period again. Periods
/// closed before schema 16 (PostgreSQL and SQLite alike) have none: their
/// totals are computed when read, as they always were.
pub(super) fn store_period_totals(p: [&str; 6]) -> String {
    format!(
        "UPDATE periods SET claim_count = {}, billed_total = {}, scheme_total = {}, \
         mutuelle_total = {}, recoveries_total = {} WHERE id = {}",
        p[0], p[1], p[2], p[3], p[4], p[5]
    )
}

/// A closed or settled period's row: (row id, its record, whether its
/// totals are stored; if not, the caller fills them in, see
/// [`store_period_totals`]).
pub(super) fn period(
    r: &dyn Row,
    scheme: &str,
    mutuelle: &str,
    number: u32,
) -> Result<(i64, PeriodRecord, bool), StoreError> {
    let stored = [
        r.opt_int(5)?,
        r.opt_int(6)?,
        r.opt_int(7)?,
        r.opt_int(8)?,
        r.opt_int(9)?,
    ];
    let totals_stored = stored.iter().all(Option::is_some);
    let [count, billed, scheme_total, mutuelle_total, recoveries] =
        stored.map(Option::unwrap_or_default);
    Ok((
        r.int(0)?,
        PeriodRecord {
            scheme_id: scheme.to_string(),
            mutuelle_id: mutuelle.to_string(),
            number,
            state: period_state_parse(&r.text(1)?)?,
            claim_count: u32::try_from(count)
                .map_err(|_| corrupt("period claim count", &count.to_string()))?,
            totals: Totals {
                billed,
                scheme: scheme_total,
                mutuelle: mutuelle_total,
            },
            recoveries,
            closed_ms: r.int(2)?,
            settled_ms: r.int(3)?,
            reference: r.text(4)?,
        },
        totals_stored,
    ))
}

/// The open period (never a row): the claims and recoveries not in a
/// closed one.
pub(super) fn open_period(
    scheme: &str,
    mutuelle: &str,
    number: u32,
    claim_count: u32,
    totals: Totals,
    recoveries: i64,
) -> PeriodRecord {
    PeriodRecord {
        scheme_id: scheme.to_string(),
        mutuelle_id: mutuelle.to_string(),
        number,
        state: PeriodState::Open,
        claim_count,
        totals,
        recoveries,
        closed_ms: 0,
        settled_ms: 0,
        reference: String::new(),
    }
}

// ---------------------------------------------------------------------------
// Plans: the decisions of a write, pure.

/// What the row of a new claim holds besides the request itself.
#[derive(Debug)]
pub(super) struct NewClaimRow {
    pub state: ClaimState,
    pub next_attempt_ms: Option<i64>,
    pub rejection_code: Option<String>,
    pub rejection_message: Option<String>,
    pub body: String,
    pub date_of_care: String,
    pub payee: String,
    pub billed_total: i64,
    pub scheme_total: i64,
    pub duplicate_of: Option<String>,
}

/// The rejection of a claim whose provider invoice `other`, a live claim,
/// holds: its words (stored) and its detail (said again on each read).
fn duplicate_invoice(cl: &Claim, other: &str) -> Reason {
    Reason::said(
        ReasonCode::DuplicateInvoice,
        format!(
            "invoice {} of provider {} is already on claim {other}",
            cl.invoice_number, cl.provider_id
        ),
        DetailKey::DuplicateInvoice,
        [
            ("invoice", cl.invoice_number.clone()),
            ("provider", cl.provider_id.clone()),
            ("claim", other.to_string()),
        ],
    )
}

/// A new claim: RECEIVED and leased to the caller, or REJECTED at once when
/// `duplicate_of` (a live claim holding the same provider invoice).
pub(super) fn new_claim_row(new: &NewClaim, duplicate_of: Option<String>) -> NewClaimRow {
    let cl = &new.claim;
    let (state, next, code, message) = match &duplicate_of {
        None => (ClaimState::Received, Some(new.lease_until_ms), None, None),
        Some(other) => (
            ClaimState::Rejected,
            None,
            Some(code_str(ReasonCode::DuplicateInvoice)),
            Some(duplicate_invoice(cl, other).message),
        ),
    };
    NewClaimRow {
        state,
        next_attempt_ms: next,
        rejection_code: code,
        rejection_message: message,
        body: json(cl),
        date_of_care: date::format(cl.date_of_care),
        payee: payee_str(cl.payee),
        billed_total: super::sum_amounts(cl.lines.iter().map(|l| l.billed)),
        scheme_total: super::sum_amounts(cl.lines.iter().map(|l| l.scheme_share)),
        duplicate_of,
    }
}

/// The answer for a new claim once its row is stored.
pub(super) fn created(rec: ClaimRecord) -> Begin {
    if rec.duplicate_of.is_some() && rec.state == ClaimState::Rejected {
        Begin::DuplicateInvoice(rec)
    } else {
        Begin::Created(rec)
    }
}

/// The answer when the key already holds a claim: the same request again,
/// or another request under the same key.
pub(super) fn existing(rec: ClaimRecord, request_hash: &str) -> Begin {
    if rec.request_hash == request_hash {
        Begin::Existing(rec)
    } else {
        Begin::Modified(rec)
    }
}

/// A completion applies only to a claim still awaiting its partner.
pub(super) fn may_complete(s: ClaimState) -> bool {
    s.awaiting_partner()
}

/// The state a deferral leaves the claim in, `None` when it does not apply:
/// an adjudication's deferral (`from` RECEIVED or PENDING_PARTNER) moves a
/// claim still awaiting its partner, a cancel's (`from` CANCEL_PENDING) a
/// claim still cancelling. An adjudication put off after a cancel began
/// leaves the cancel's lease alone: were its next attempt made sooner,
/// another worker would send the cancel again while the first is still
/// waiting on the mutuelle. (The cancel a REJECTED claim owes is put off
/// by `withdrawal_tried`, so that a deferral of an adjudication that lost
/// a race never moves it.)
pub(super) fn deferred_state(stored: ClaimState, from: ClaimState) -> Option<ClaimState> {
    match stored {
        ClaimState::Received | ClaimState::PendingPartner if from.awaiting_partner() => {
            Some(ClaimState::PendingPartner)
        }
        ClaimState::CancelPending if from == ClaimState::CancelPending => {
            Some(ClaimState::CancelPending)
        }
        _ => None,
    }
}

/// A cancel starts from any state but a cancel already begun or done.
pub(super) fn may_begin_cancel(s: ClaimState) -> bool {
    !matches!(s, ClaimState::CancelPending | ClaimState::Cancelled)
}

/// A cancel completes only from CANCEL_PENDING.
pub(super) fn may_complete_cancel(s: ClaimState) -> bool {
    s == ClaimState::CancelPending
}

/// One row of `claim_lines`: the claim's line and the mutuelle's share, P
/// the rest (S + M + P = B).
#[derive(Debug)]
pub(super) struct LineRow<'a> {
    pub sequence: u32,
    pub act_code: &'a str,
    pub category: &'static str,
    pub quantity: u32,
    pub billed: i64,
    pub tariff_base: i64,
    pub scheme_share: i64,
    pub mutuelle_share: i64,
    pub patient_share: i64,
    pub reasons: String,
}

pub(super) fn line_rows<'a>(
    claim: &'a Claim,
    shares: &'a [LineShare],
) -> impl Iterator<Item = LineRow<'a>> + 'a {
    claim.lines.iter().zip(shares).map(|(line, share)| LineRow {
        sequence: share.sequence,
        act_code: &line.act_code,
        category: line.category.as_str(),
        quantity: line.quantity,
        billed: line.billed,
        tariff_base: line.tariff_base,
        scheme_share: line.scheme_share,
        mutuelle_share: share.mutuelle_share,
        patient_share: line.billed - line.scheme_share - share.mutuelle_share,
        reasons: json(&share.reasons),
    })
}

/// A claim's amount column (`billed_total`, ...) as a listing's totals
/// add it up (`c`: claims): a cancelled claim's amounts no longer stand
/// (nothing is owed on it, and what was paid comes back as a recovery), so
/// they count only when the filter asks for cancelled claims.
pub(super) fn standing_total(f: &ClaimFilter, col: &str) -> String {
    if f.state == Some(ClaimState::Cancelled) {
        format!("c.{col}")
    } else {
        format!("CASE WHEN c.state = 'cancelled' THEN 0 ELSE c.{col} END")
    }
}

/// The WHERE of a claims listing (`c`: claims) for the filters given, with
/// parameters 1 to 7 bound to scheme, mutuelle, state, care from, care to,
/// member number, provider (`ph`: `$` or `?`). A filter not given is a constant test of its
/// (null) parameter, not an `OR` on the column, which would keep the
/// planner from any index on the others.
pub(super) fn claim_filter_sql(f: &ClaimFilter, ph: char) -> String {
    let given = [
        f.scheme_id.is_some(),
        f.mutuelle_id.is_some(),
        f.state.is_some(),
        f.care_from.is_some(),
        f.care_to.is_some(),
        f.member_number.is_some(),
        f.provider_id.is_some(),
    ];
    let tests = [
        "c.scheme_id =",
        "c.mutuelle_id =",
        "c.state =",
        "c.date_of_care >=",
        "c.date_of_care <=",
        "c.member_number =",
        "c.provider_id =",
    ];
    given
        .iter()
        .zip(tests)
        .enumerate()
        .map(|(i, (given, test))| {
            if *given {
                format!("{test} {ph}{}", i + 1)
            } else {
                format!("CAST({ph}{} AS TEXT) IS NULL", i + 1)
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ")
        + &every_scheme_waiting(f)
}

/// An operator's listing of every scheme's claims in one waiting state
/// (neither scheme nor mutuelle given): the waiting states' test written out,
/// so that both backends read the small partial index `claims_waiting`
/// instead of every claim (its condition, not the bound state, is what
/// the planners match).
fn every_scheme_waiting(f: &ClaimFilter) -> String {
    match (&f.scheme_id, &f.mutuelle_id, f.state) {
        (None, None, Some(s)) if is_waiting(s) => {
            format!(" AND c.state IN {SQL_WAITING}")
        }
        _ => String::new(),
    }
}

/// Audit rows pruned per transaction: retention never holds the audit
/// table (or, on SQLite, the writer) for more than one batch.
pub(super) const PRUNE_BATCH: i64 = 1_000;

/// Between two batches, retention rests as long as the batch took: it takes
/// at most half of the database's time from live calls, however large the
/// backlog (measured: `bench`, "retention ... live claims meanwhile";
/// docs/PERFORMANCE.md).
pub(super) async fn rest_after_batch(began: tokio::time::Instant) {
    tokio::time::sleep(began.elapsed()).await;
}

/// One batch of retention pruning: audit rows older than the cutoff, oldest
/// first, except those of claims not final yet (a claim is final once
/// cancelled, rejected, or in a settled period). A subject `SCHEME/CLAIM`
/// is split at its first `/` so that the claim is found by its key, not by
/// reading every claim (a subject without `/` splits to an empty scheme:
/// PostgreSQL refuses a negative `substr` length, and may compute the key
/// before it checks the `/`). `pos` is the backend's "position of a substring"
/// function (`strpos`, `instr`); `cutoff`, `from` and `limit` its
/// parameters. It returns the time of each row deleted.
///
/// `from`: where the pass stands. A batch starts at the latest time the
/// batch before it deleted, not at the oldest row: every row older than
/// that was deleted or kept (a claim not final) by an earlier batch, and a
/// kept row is not read again by each later batch. (Without it, a month
/// whose claims are half not final read those rows again in every batch:
/// 35 s and live p99 32 × idle at a million claims, docs/PERFORMANCE.md.)
/// A row kept now is looked at again by the next pass.
pub(super) fn prune_audit_sql(pos: &str, cutoff: &str, from: &str, limit: &str) -> String {
    prune_audit_rows_sql("audit_log", pos, cutoff, from, limit)
}

/// [`prune_audit_sql`] on one table of the audit log: on PostgreSQL, the
/// rows kept past their month (`audit_kept`) and those no month's
/// partition took (`audit_log_default`).
pub(super) fn prune_audit_rows_sql(
    table: &str,
    pos: &str,
    cutoff: &str,
    from: &str,
    limit: &str,
) -> String {
    format!(
        "DELETE FROM {table} WHERE id IN (SELECT a.id FROM {table} a WHERE a.at_ms < {cutoff} \
         AND a.at_ms >= {from} AND NOT {held} \
         ORDER BY a.at_ms LIMIT {limit}) RETURNING at_ms",
        held = audit_row_held(pos)
    )
}

/// Whether the audit row `a` belongs to a claim not final yet (not
/// cancelled, not rejected, not in a settled period) and was written at
/// most [`ROWS_BEFORE_CLAIM_MS`] before the claim was created: retention
/// keeps it, whatever its age. The one definition of what retention keeps,
/// for the row batches here and for a month's partition before it is
/// dropped (PostgreSQL's `audit::move_sql`, which finds the same rows from
/// the claims' side).
///
/// Always one probe of the claims' key per row: `OFFSET 0` (after the
/// `LIMIT` SQLite needs before it) keeps PostgreSQL from turning the test
/// into a join, which over a month's rows it planned as a hash join
/// reading every claim of the store (2 million claims: 1.4 GB read while
/// live claims ran, p99 2.5 x idle).
/// The claim's period is tested against the periods not settled, read
/// once per statement into a hash (`IN` an uncorrelated subquery, on both
/// backends): a probe of the period's key per row was planned by
/// PostgreSQL as a scan of the small periods table for each row, 60 % of
/// the test's time (docs/PERFORMANCE.md). On PostgreSQL the claim's key
/// index carries its state and period (`claims_key`, migrations'
/// `CONCURRENT_INDEXES`); its creation time is read from the claim's row
/// (there these batches run on the small tables: rows kept past their
/// month and the default partition).
pub(super) fn audit_row_held(pos: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM claims c \
         WHERE {pos}(a.subject, '/') > 0 \
         AND c.scheme_id = substr(a.subject, 1, CASE WHEN {pos}(a.subject, '/') > 0 \
           THEN {pos}(a.subject, '/') - 1 ELSE 0 END) \
         AND c.claim_id = substr(a.subject, {pos}(a.subject, '/') + 1) \
         AND c.state NOT IN ('cancelled', 'rejected') AND {unsettled} \
         AND c.created_ms < a.at_ms + {ROWS_BEFORE_CLAIM_MS} \
         LIMIT 1 OFFSET 0)",
        unsettled = in_no_settled_period("c.")
    )
}

/// A claim (`alias`, with its dot, or empty) in no period, or in one not
/// settled yet: with a state not final, what keeps its audit rows
/// ([`audit_row_held`], and the month's moves on PostgreSQL).
pub(super) fn in_no_settled_period(alias: &str) -> String {
    format!(
        "({alias}period_id IS NULL \
           OR {alias}period_id IN (SELECT p.id FROM periods p WHERE p.state <> 'settled'))"
    )
}

/// How long before a claim's creation an audit row of its subject still
/// belongs to it (and is kept with it while it is not final): a day, which
/// covers the clocks of replicas apart and a call refused just before the
/// claim was stored. Rows older than that (a claim number refused months
/// before it was sent again) are pruned with their month, as rows of no
/// claim. The bound lets a month's drop look only at the claims created
/// before the month's end and a day, not at every row of the month
/// (docs/PERFORMANCE.md, "Retention by the claims still open").
pub(super) const ROWS_BEFORE_CLAIM_MS: i64 = 86_400_000;

/// Where the next batch of a retention pass starts: the latest time this
/// batch deleted (rows of that very millisecond may remain), else where it
/// stood.
pub(super) fn prune_from(from: i64, deleted: &[i64]) -> i64 {
    deleted.iter().copied().max().unwrap_or(from).max(from)
}

/// The shares a claim's stored lines read back as (what [`line_rows`]
/// writes, in sequence order), `None` when it has no line.
pub(super) fn stored_shares(claim: &Claim, shares: &[LineShare]) -> Option<Vec<LineShare>> {
    let mut out: Vec<LineShare> = shares.iter().take(claim.lines.len()).cloned().collect();
    out.sort_by_key(|s| s.sequence);
    (!out.is_empty()).then_some(out)
}

/// Only a claim that was coordinated has lines stored: the others are read
/// without looking for them.
pub(super) fn may_have_lines(s: ClaimState) -> bool {
    matches!(
        s,
        ClaimState::Coordinated | ClaimState::CancelPending | ClaimState::Cancelled
    )
}

/// The ceiling uses a claim applies (those that move nothing are skipped),
/// with the ceiling's storage key.
pub(super) fn consumed(
    consumption: &[CeilingUse],
) -> impl Iterator<Item = (String, &CeilingUse)> + '_ {
    consumption
        .iter()
        .filter(|u| u.amount != 0 || u.count != 0)
        .map(|u| (u.key.storage_key(), u))
}

/// The columns a new claim row is inserted with, in the order both
/// backends bind them (created_ms and updated_ms take the same value).
pub(super) const CLAIM_INSERT_COLS: &str = "scheme_id, claim_id, request_hash, body, provider_id, \
    invoice_number, mutuelle_id, member_number, state, adjudication_key, rejection_code, \
    rejection_message, next_attempt_ms, change_seq, created_ms, updated_ms, date_of_care, \
    currency, payee_type, billed_total, scheme_total, duplicate_of";

/// M of a claim, for its row.
pub(super) fn mutuelle_total(shares: &[LineShare]) -> i64 {
    super::sum_amounts(shares.iter().map(|s| s.mutuelle_share))
}

/// Storing a product version over what the key holds (`existing`: its
/// stored body and whether a claim used it): `Unchanged` writes nothing,
/// `Replaced` updates the row, `Inserted` inserts it; a used version that
/// would change is refused.
pub(super) fn put_product_plan(
    p: &Product,
    body: &str,
    existing: Option<(String, bool)>,
) -> Result<PutProduct, StoreError> {
    match existing {
        Some((b, _)) if b == body => Ok(PutProduct::Unchanged),
        Some((_, true)) => Err(StoreError::ProductInUse(format!(
            "{}/{} version {}",
            p.mutuelle_id, p.id, p.version
        ))),
        Some((_, false)) => Ok(PutProduct::Replaced),
        None => Ok(PutProduct::Inserted),
    }
}

/// A close whose content is not the one it expects (see [`super::CloseUpTo`]).
pub(super) fn check_close(
    p: &super::PeriodRecord,
    upto: &super::CloseUpTo,
) -> Result<(), StoreError> {
    match &upto.expect {
        Some(e) if *e != super::PeriodContent::of(p) => Err(StoreError::PeriodChanged {
            scheme_id: p.scheme_id.clone(),
            mutuelle_id: p.mutuelle_id.clone(),
            then: e.claim_count,
            now: p.claim_count,
        }),
        _ => Ok(()),
    }
}

/// Closing a period that holds nothing is refused; a close proposed with
/// something in it that finds nothing left (its claims cancelled since)
/// is told that the period changed, as any other.
pub(super) fn nothing_to_close(scheme: &str, mutuelle: &str, upto: &CloseUpTo) -> StoreError {
    match &upto.expect {
        Some(e) if *e != PeriodContent::default() => StoreError::PeriodChanged {
            scheme_id: scheme.to_string(),
            mutuelle_id: mutuelle.to_string(),
            then: e.claim_count,
            now: 0,
        },
        _ => StoreError::Refused(format!(
            "nothing to close: the open period of {scheme} x {mutuelle} has no claim and no recovery"
        )),
    }
}

/// Settling a period that is not stored: still open, or unknown.
pub(super) fn no_period_to_settle(
    scheme: &str,
    mutuelle: &str,
    number: u32,
    open: u32,
) -> StoreError {
    if number == open {
        StoreError::Refused(format!("period {number} is still open: close it first"))
    } else {
        StoreError::NotFound(format!("period {number} of {scheme} x {mutuelle}"))
    }
}

pub(super) fn no_such_period(scheme: &str, mutuelle: &str, number: u32) -> StoreError {
    StoreError::NotFound(format!("period {number} of {scheme} x {mutuelle}"))
}

/// Settling a stored period: `Ok(true)` to write it settled, `Ok(false)`
/// when it is settled already with this reference (a resend).
pub(super) fn settle_applies(p: &PeriodRecord, reference: &str) -> Result<bool, StoreError> {
    match p.state {
        PeriodState::Settled if p.reference == reference => Ok(false),
        PeriodState::Settled => Err(StoreError::Refused(format!(
            "period {} is already settled with reference {:?}",
            p.number, p.reference
        ))),
        _ => Ok(true),
    }
}

/// The claims of a period, for its statement and its totals (`c`: claims;
/// `period`: the backend's placeholder for the closed period's id, 0 for
/// the open period).
///
/// A claim's statement period is one value: the id of the closed period
/// it is in (it stays there, whatever happens to it since; ids start at
/// 1), else 0 when it is coordinated (the open period's statement), else
/// -1 (waiting, rejected, cancelled: in no statement). Compared by
/// equality, it lets the `claims_statement` index (migrations, both
/// backends), whose third column it is, serve a statement's order, and
/// the open period's totals read only its coordinated claims. (After
/// `period_id IS NULL` PostgreSQL would not use the index's order and
/// would sort the whole statement for every page.)
pub(super) fn period_claims(period: &str) -> String {
    format!(
        "(CASE WHEN c.period_id IS NOT NULL THEN c.period_id \
         WHEN c.state = 'coordinated' THEN 0 ELSE -1 END) = {period}"
    )
}

/// The order of a statement's lines (`c`: claims, `l`: claim_lines):
/// payee type, payee, claim id, then line, text compared byte by byte
/// (`collate`: the backend's byte collation, `COLLATE "C"` on PostgreSQL,
/// empty on SQLite where it is the default), as [`crate::store::LineKey`]
/// orders them, whatever the database's locale. The `claims_statement`
/// index holds the claims in the order of the first three: on PostgreSQL
/// as these expressions; SQLite, which seeks a row comparison only on
/// columns, has them in generated columns (its `STATEMENT_ORDER`).
pub(super) fn statement_claim_order(collate: &str) -> [String; 3] {
    [
        format!("({}){collate}", payee_type!()),
        format!("({}){collate}", payee_id!()),
        format!("c.claim_id{collate}"),
    ]
}

/// A statement's lines, in their order, from the start or after a line key
/// (`after`: the backend's four placeholders for it, payee type, payee,
/// claim id, line), at most `limit` of them (a placeholder, at most
/// `i64::MAX - 1`).
///
/// `scheme`, `mutuelle`, `period`: the placeholders of the claims'
/// scheme, mutuelle and period ([`period_claims`]). `order`: how the
/// backend names the claims' order, [`statement_claim_order`] or columns
/// holding it (SQLite: see its migration 16), as its index does.
///
/// The claims come first, as a range of the `claims_statement` index in
/// the statement's order, `limit` + 1 of them at most: the claim of the key
/// (whose lines may all be before it), then one for each line, as every
/// stored claim has at least one (domain validation). Only their lines are
/// sorted. A page thus reads about its own rows, wherever it is in the
/// statement; a join sorted whole, which PostgreSQL chose, read and sorted
/// the whole statement for every page (2.3 s a page for 550,000 lines).
pub(super) fn statement_lines(
    scheme: &str,
    mutuelle: &str,
    period: &str,
    after: Option<[&str; 4]>,
    limit: &str,
    order: &[String; 3],
    collate: &str,
) -> String {
    let [pt, pid, claim] = order;
    let (claims_after, lines_after) = match after {
        None => (String::new(), String::new()),
        Some(p) => (
            format!(
                " AND ({pt}, {pid}, {claim}) >= ({}{collate}, {}{collate}, {}{collate})",
                p[0], p[1], p[2]
            ),
            format!(
                " WHERE ({pt}, {pid}, {claim}, l.sequence) > ({}{collate}, {}{collate}, {}{collate}, {})",
                p[0], p[1], p[2], p[3]
            ),
        ),
    };
    format!(
        "SELECT {cols} FROM (SELECT c.* FROM claims c \
         WHERE c.scheme_id = {scheme} AND c.mutuelle_id = {mutuelle} AND {claims}{claims_after} \
         ORDER BY {pt}, {pid}, {claim} LIMIT {limit} + 1) c \
         JOIN claim_lines l ON l.claim_pk = c.id{lines_after} \
         ORDER BY {pt}, {pid}, {claim}, l.sequence LIMIT {limit}",
        cols = statement_line_cols(),
        claims = period_claims(period),
    )
}

/// A closed period's id, without reading its totals (parameters: scheme,
/// mutuelle, number); placeholders `$n` or `?n` after `ph`.
pub(super) fn period_id_sql(ph: char) -> String {
    format!(
        "SELECT id FROM periods WHERE scheme_id = {ph}1 AND mutuelle_id = {ph}2 AND number = {ph}3"
    )
}

/// The payees of a statement, in its order, after a payee (`after`: the
/// backend's two placeholders for it, payee type and payee, and `>`; or
/// `=`, that payee alone: [`crate::store::PayeesFrom::bound`]), at most
/// `limit` of them (a placeholder): each with its claims' count and the
/// mutuelle's amount on them (`claims.mutuelle_total`, its lines' M). The
/// claims are read as a range of the `claims_statement` index in the
/// statement's order and grouped as they come, so a page of payees reads
/// only those payees' claims, wherever it is in the statement (placeholders
/// and `order` as [`statement_lines`]'s).
pub(super) fn statement_payees(
    scheme: &str,
    mutuelle: &str,
    period: &str,
    after: Option<([&str; 2], &str)>,
    limit: &str,
    order: &[String; 3],
    collate: &str,
) -> String {
    let [pt, pid, _] = order;
    let after = after.map_or(String::new(), |(p, op)| {
        format!(
            " AND ({pt}, {pid}) {op} ({}{collate}, {}{collate})",
            p[0], p[1]
        )
    });
    format!(
        "SELECT {pt}, {pid}, COUNT(*), CAST(SUM(c.mutuelle_total) AS BIGINT) FROM claims c \
         WHERE c.scheme_id = {scheme} AND c.mutuelle_id = {mutuelle} AND {claims}{after} \
         GROUP BY {pt}, {pid} ORDER BY {pt}, {pid} LIMIT {limit}",
        claims = period_claims(period),
    )
}

/// A row of [`statement_payees`].
pub(super) fn payee_total(r: &dyn Row) -> Result<crate::store::PayeeTotal, StoreError> {
    let claims = r.int(2)?;
    Ok(crate::store::PayeeTotal {
        payee_type: r.text(0)?,
        payee_id: r.text(1)?,
        claims: u64::try_from(claims).map_err(|_| corrupt("claim count", &claims.to_string()))?,
        mutuelle: r.int(3)?,
    })
}

/// How many rows a statement read asks for: a page's size and one more
/// (whether more follow), or all of them (`i64::MAX - 1`: see
/// [`statement_lines`]).
pub(super) fn statement_limit(page: Option<&crate::store::StatementPage>) -> i64 {
    page.map_or(i64::MAX - 1, |p| i64::from(p.size) + 1)
}

/// A page's rows, read with [`statement_limit`], as the page, where the
/// next one starts, and which payees it cuts (the row read beyond the
/// page says whether the last payee goes on).
pub(super) fn statement_split(
    mut lines: Vec<StatementLine>,
    page: Option<&crate::store::StatementPage>,
) -> (
    Vec<StatementLine>,
    Option<crate::store::LineKey>,
    crate::store::PayeeCut,
) {
    let same = |a: &StatementLine, b: &StatementLine| {
        a.payee_type == b.payee_type && a.payee_id == b.payee_id
    };
    let mut cut = crate::store::PayeeCut {
        first_continued: page
            .and_then(|p| p.after.as_ref())
            .zip(lines.first())
            .is_some_and(|(k, l)| k.payee_type == l.payee_type && k.payee_id == l.payee_id),
        last_continues: false,
    };
    match page {
        Some(p) if lines.len() > p.size as usize => {
            let size = p.size as usize;
            cut.last_continues = size > 0 && same(&lines[size - 1], &lines[size]);
            lines.truncate(size);
            let next = lines.last().map(crate::store::LineKey::of);
            (lines, next, cut)
        }
        _ => (lines, None, cut),
    }
}

/// A statement is of the open period for 0 or the open period's number.
pub(super) fn statement_of_open(number: u32, open: u32) -> bool {
    number == 0 || number == open
}

/// Migrating refuses a database a newer binary migrated (downgrade by
/// restoring a backup, docs/operations.md).
pub(super) fn migrations_to_apply(found: i64, want: i64) -> Result<(), StoreError> {
    if found > want {
        return Err(StoreError::SchemaTooNew { found, want });
    }
    Ok(())
}

/// What a migration does, logged as it goes on either backend (`passerelle
/// migrate` shows the logs): on the benchmark's 10 million claims an
/// upgrade took about a minute (docs/PERFORMANCE.md), and what it alters is
/// held until its commit.
pub(super) struct MigrationLog {
    found: i64,
    want: i64,
    started: std::time::Instant,
    step: std::time::Instant,
}

impl MigrationLog {
    /// Before the first migration from version `found` to `want`; `held`
    /// says who waits for the commit.
    pub(super) fn start(found: i64, want: i64, held: &str) -> MigrationLog {
        if found < want {
            tracing::info!(
                from = found,
                to = want,
                "applying migrations in one transaction; {held} wait for its commit"
            );
        }
        let now = std::time::Instant::now();
        MigrationLog {
            found,
            want,
            started: now,
            step: now,
        }
    }

    /// Migration `version` has run (since the last one, or the start).
    pub(super) fn ran(&mut self, version: i64) {
        tracing::info!(
            version,
            ms = self.step.elapsed().as_millis() as u64,
            "migration run"
        );
        self.step = std::time::Instant::now();
    }

    /// The transaction has committed.
    pub(super) fn committed(&self) {
        if self.found < self.want {
            tracing::info!(
                version = self.want,
                ms = self.started.elapsed().as_millis() as u64,
                "migrations committed"
            );
        }
    }
}

pub(super) fn not_found_claim(scheme: &str, claim_id: &str) -> StoreError {
    StoreError::NotFound(format!("claim {scheme}/{claim_id}"))
}

/// The partners whose claims the retry worker leaves alone at `now` (the
/// statement's parameter `now`): paused, or breaker open.
pub(super) fn sql_held_partners(now: &str) -> String {
    format!(
        "mutuelle_id NOT IN (SELECT partner_id FROM partner_controls \
         WHERE paused_ms > 0 OR breaker_open_until_ms > {now})"
    )
}

/// The columns of a partner control row, in [`partner_control`]'s order.
pub(super) const CONTROL_COLS: &str = "partner_id, paused_ms, paused_by, breaker_open_until_ms";

/// A partner control row.
pub(super) fn partner_control(r: &dyn Row) -> Result<super::PartnerControl, StoreError> {
    Ok(super::PartnerControl {
        partner_id: r.text(0)?,
        paused_ms: r.int(1)?,
        paused_by: r.text(2)?,
        breaker_open_until_ms: r.int(3)?,
    })
}

/// Pauses or resumes a partner (parameters: partner, paused_ms, paused_by),
/// returning its row; placeholders `$n` or `?n` after `ph`.
pub(super) fn set_paused_sql(ph: char) -> String {
    format!(
        "INSERT INTO partner_controls (partner_id, paused_ms, paused_by, breaker_open_until_ms) \
         VALUES ({ph}1, {ph}2, {ph}3, 0) ON CONFLICT (partner_id) DO UPDATE \
         SET paused_ms = excluded.paused_ms, paused_by = excluded.paused_by \
         RETURNING {CONTROL_COLS}"
    )
}

/// Opens or closes a partner's breaker (parameters: partner, open until).
pub(super) fn set_breaker_sql(ph: char) -> String {
    format!(
        "INSERT INTO partner_controls (partner_id, paused_ms, paused_by, breaker_open_until_ms) \
         VALUES ({ph}1, 0, '', {ph}2) ON CONFLICT (partner_id) DO UPDATE \
         SET breaker_open_until_ms = excluded.breaker_open_until_ms"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ClaimState; 6] = ClaimState::ALL;

    fn sql_list(states: impl Iterator<Item = ClaimState>) -> String {
        let names: Vec<String> = states.map(|s| format!("'{}'", s.as_str())).collect();
        format!("({})", names.join(", "))
    }

    /// The claims owing a cancel are those the worker takes besides the
    /// waiting ones, and the partial index of both backends says the same.
    #[test]
    fn the_owing_predicate_is_the_workers_and_the_indexes() {
        assert!(SQL_TAKEN_BY_WORKER.contains(&format!("({SQL_OWES_WITHDRAWAL})")));
        // The indexes: each backend's migrations' tests.
    }

    #[test]
    fn the_sql_state_lists_are_the_domain_predicates() {
        assert_eq!(
            SQL_WAITING,
            sql_list(ALL.into_iter().filter(|s| is_waiting(*s)))
        );
        assert_eq!(
            SQL_HOLDS_INVOICE_STATES,
            sql_list(ALL.into_iter().filter(|s| holds_invoice(*s)))
        );
        assert_eq!(
            SQL_HOLDS_INVOICE,
            format!("state IN {SQL_HOLDS_INVOICE_STATES} AND rejection_code IS NULL")
        );
        assert_eq!(
            SQL_AWAITING_PARTNER,
            sql_list(ALL.into_iter().filter(|s| may_complete(*s)))
        );
    }

    #[test]
    fn codecs_round_trip_and_refuse_what_they_do_not_know() {
        for s in ALL {
            assert_eq!(state_parse(s.as_str()).unwrap(), s);
        }
        assert_eq!(code_str(ReasonCode::DuplicateInvoice), "DUPLICATE_INVOICE");
        assert_eq!(
            code_parse("DUPLICATE_INVOICE").unwrap(),
            ReasonCode::DuplicateInvoice
        );
        assert_eq!(payee_str(Payee::Member), "member");
        for (what, err) in [
            ("claim state", state_parse("on_hold").unwrap_err()),
            ("reason code", code_parse("HOLD_EXPIRED").unwrap_err()),
            ("period state", period_state_parse("reopened").unwrap_err()),
            ("period state", period_state_parse("").unwrap_err()),
            ("audit direction", direction_parse("both").unwrap_err()),
        ] {
            let StoreError::Corrupt(m) = &err else {
                panic!("{err:?}")
            };
            assert!(m.starts_with(what), "{m}");
            assert!(m.contains("newer version"), "{m}");
        }
        let err =
            from_json::<Vec<Reason>>("line reasons", br#"[{"code":"NEW_CODE","message":""}]"#)
                .unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt(ref m) if m.contains("NEW_CODE")),
            "{err:?}"
        );
        assert!(from_json::<Vec<Reason>>("line reasons", b"").is_err());
    }

    #[test]
    fn transitions_apply_from_the_states_they_leave() {
        for s in ALL {
            assert_eq!(may_complete(s), s.awaiting_partner());
            // A deferral applies to a waiting claim, from the attempt of
            // its own kind only.
            assert_eq!(deferred_state(s, s).is_some(), is_waiting(s));
            for from in ALL {
                let applies = deferred_state(s, from).is_some();
                let same_kind = (s.awaiting_partner() && from.awaiting_partner())
                    || (s == ClaimState::CancelPending && from == ClaimState::CancelPending);
                assert_eq!(applies, same_kind, "{s:?} deferred from {from:?}");
            }
            assert_eq!(
                may_begin_cancel(s),
                !matches!(s, ClaimState::CancelPending | ClaimState::Cancelled)
            );
        }
    }
}
