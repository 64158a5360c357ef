//! Claims: complementary eligibility, coordination, the claim's lifecycle
//! (see the module documentation of [`crate::service`]), cancel and the
//! operator's retry.

use std::time::Duration;

use passerelle_adapters::{
    AdapterError, AdapterKind, AdjudicationRequest, CancelRequest, EligibilityAnswer,
    EligibilityQuery, PartnerAdjudication,
};
use passerelle_domain::validate::{
    MAX_ID_LEN, MAX_PARTNER_TEXT, MAX_TEXT_LEN, check_answer, check_commitment, truncate_text,
    without_nul,
};
use passerelle_domain::{Claim, ClaimLine, ClaimState, Granted, Member, Reason, ReasonCode};

use super::authorizations::Quoted;
use super::partner::{Outbound, busy};
use super::routing::Route;
use super::{
    Broker, EligibilityInput, LEASE_GRACE_MS, ServiceError, adjudication_key, cancel_key,
    key_digest, next_nonce,
};
use crate::store::{Begin, ClaimRecord, NewClaim, Outcome, StoreError, Transition};

/// How many days after today (UTC) a claim's date of care may be: one, for
/// a provider a day ahead of UTC (Togo and Mali are on UTC; a scheme east
/// of it is up to 14 hours ahead). A prior authorization's planned date
/// takes the same day in the other direction.
pub const MAX_DAYS_AFTER_TODAY: i64 = 1;

/// How often a broker waiting on a claim looks at the store for a change
/// another broker made (changes in this process wake it at once).
const CROSS_REPLICA_POLL: Duration = Duration::from_millis(50);
/// How many times a claim is computed again on the ceilings read when one
/// moved under it (`coordinate_at_once` computes it once more before, on
/// its ceilings unread).
const MAX_CEILING_RETRIES: usize = 8;

/// Most characters of reason texts kept for one claim's answer, all lines
/// together (past it, texts are cut to "…").
pub const MAX_REASON_TEXT_PER_CLAIM: usize = 16_000;

/// Most reasons kept per line of a partner's answer.
pub const MAX_REASONS_PER_LINE: usize = 8;

/// A partner's text as it is stored: cut to `MAX_PARTNER_TEXT` characters
/// on a character boundary (a 100 KB error body is not kept whole), a NUL
/// written as U+FFFD ([`without_nul`]: PostgreSQL refused the claim's
/// write, and the claim was asked of its mutuelle again and again).
fn partner_text(s: &str) -> String {
    without_nul(truncate_text(s, MAX_PARTNER_TEXT))
}

fn bounded_reason(r: Reason) -> Reason {
    Reason {
        code: r.code,
        message: partner_text(&r.message),
        // The broker's own detail (its engine's); a partner's reason has
        // none (`reason_from_pb`). A value may quote the scheme's words
        // (`scheme-refused-because`): bounded as the message is.
        detail: r.detail.map(|mut d| {
            for v in d.args.values_mut() {
                *v = partner_text(v);
            }
            d
        }),
    }
}

/// What a partner answered, bounded before it is stored (docs/security.md,
/// "Limits"): reason texts and count, its reference and product label.
fn bounded_outcome(o: Outcome) -> Outcome {
    match o {
        Outcome::Coordinated {
            shares,
            product,
            partner_reference,
            consumption,
            authorization,
        } => {
            // The reasons' texts of a whole claim share one budget, so that a
            // claim's answer stays far below a client's 4 MiB message limit.
            let mut budget = MAX_REASON_TEXT_PER_CLAIM;
            let shares = shares
                .into_iter()
                .map(|mut s| {
                    s.reasons.truncate(MAX_REASONS_PER_LINE);
                    s.reasons = s
                        .reasons
                        .into_iter()
                        .map(|r| {
                            let mut r = bounded_reason(r);
                            // What a reader is shown: the message, or the
                            // detail's values.
                            let values = r.detail.iter().flat_map(|d| d.args.values());
                            let n = r.message.chars().count()
                                + values.map(|v| v.chars().count()).sum::<usize>();
                            if n > budget {
                                r.message = truncate_text(&r.message, budget.max(1));
                                // A figure is never cut: "20…" would
                                // read as an amount. Words are.
                                for v in r.detail.iter_mut().flat_map(|d| d.args.values_mut()) {
                                    if !v.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                                        *v = truncate_text(v, budget.max(1));
                                    }
                                }
                            }
                            budget = budget.saturating_sub(n);
                            r
                        })
                        .collect();
                    s
                })
                .collect();
            Outcome::Coordinated {
                shares,
                product: product.map(|p| passerelle_domain::ProductRef {
                    id: without_nul(truncate_text(&p.id, MAX_ID_LEN)),
                    version: p.version,
                    name: without_nul(truncate_text(&p.name, MAX_TEXT_LEN)),
                }),
                partner_reference: without_nul(truncate_text(&partner_reference, MAX_ID_LEN)),
                consumption,
                authorization,
            }
        }
        Outcome::Rejected(r) => Outcome::Rejected(bounded_reason(r)),
    }
}

/// A partner's adjudication with its shares checked against the claim's
/// lines, as part of the partner call: an answer whose shares do not hold
/// is a malformed answer there, counted so in the metrics
/// (`outcome="malformed"`) and in the outbound audit row, as one the
/// adapter could not read, where it counted as `ok`.
///
/// `granted`: the prior authorization the claim is paid against, for a
/// partner that keeps its own books; its answer gives at least what it
/// committed, on the lines the contract says ([`check_commitment`]). A
/// rules mutuelle's answer is the broker's own engine's, which pays
/// against the authorization by the product's rules (`adjudicate_with`).
async fn checked(
    lines: &[ClaimLine],
    granted: Option<&Granted>,
    answer: impl Future<Output = Result<PartnerAdjudication, AdapterError>>,
) -> Result<PartnerAdjudication, AdapterError> {
    let mut a = answer.await?;
    a.lines = check_answer(lines, std::mem::take(&mut a.lines)).map_err(AdapterError::Malformed)?;
    if let Some(g) = granted {
        check_commitment(lines, &a.lines, g).map_err(AdapterError::Malformed)?;
    }
    Ok(a)
}

/// What a partner's adjudication (already [`checked`]) decides: its shares,
/// or, for an answer that is no adjudication, a rejection saying why.
fn checked_outcome(
    res: Result<PartnerAdjudication, AdapterError>,
    partner: &str,
    subject: &str,
    authorization: Option<String>,
) -> Outcome {
    match res {
        Ok(answer) => Outcome::Coordinated {
            shares: answer.lines,
            product: answer.product,
            partner_reference: answer.partner_reference,
            consumption: answer.consumption,
            authorization,
        },
        Err(e) => {
            if matches!(e, AdapterError::Malformed(_)) {
                // The detail (with amounts) is in the claim's rejection
                // reason, not in the logs.
                tracing::warn!(partner = %partner, claim = %subject,
                    "partner answer refused: it does not hold against this claim (the claim's reason says why: passerelle claim get)");
                tracing::debug!(partner = %partner, claim = %subject, error = %e, "partner answer refused");
            }
            Outcome::Rejected(e.final_reason())
        }
    }
}

/// The cancel a partner is owed with this outcome: when the broker refused
/// its answer (`PARTNER_ANSWER_INVALID`), the partner may have booked what
/// it answered, and is told to cancel that adjudication, under the claim's
/// cancel key, by the retry worker until delivered (`process_cancel`),
/// so that its books and the broker's agree. A scheme's later cancel of
/// the claim sends the same cancel under the same key. `keeps_books`:
/// the partner has a system of its own (a rules mutuelle's answer is the
/// broker's, and nothing outside it was booked).
fn withdrawal(outcome: &Outcome, claim: &Claim, keeps_books: bool) -> Option<String> {
    (keeps_books
        && matches!(outcome, Outcome::Rejected(r) if r.code == ReasonCode::PartnerAnswerInvalid))
    .then(|| cancel_key(&claim.scheme_id, &claim.claim_id))
}

/// How a claim's last error begins when a cancel could not be delivered
/// and a person must make it in the mutuelle's system: what
/// `Lang::claim_note` and the console's claim page look for.
pub const CANCEL_NOT_DELIVERED: &str = "cancel not delivered: ";

/// What `Broker::coordinate_at_once` did with a new claim.
enum AtOnce {
    /// Stored with its outcome in one commit.
    Stored(Box<ClaimRecord>),
    /// Answered with this outcome (a rejection), nothing stored yet.
    Decided(Outcome),
    /// A transient failure, saying why: the claim is to be deferred.
    Deferred(String),
    /// Ceilings moved at every attempt: to be computed again on a fresh
    /// read of everything.
    Contended,
    /// Nothing learnt: the claim takes the two commits and is asked then.
    Ask,
}

/// A new claim's times, when it is stored: now, and the lease that keeps
/// the retry worker off it while its first request asks its partner (two
/// deadlines and a grace).
fn stamp(new: &mut NewClaim, now_ms: i64, deadline: Duration) {
    new.now_ms = now_ms;
    new.lease_until_ms = now_ms + 2 * deadline.as_millis() as i64 + LEASE_GRACE_MS;
}

/// The store operations timed on the claim path (the `operation` label).
pub(super) const TIMED_OPERATIONS: [&str; 6] = [
    "begin_claim",
    "begin_coordinated",
    "complete_claim",
    "defer",
    "find_members",
    "lease_due",
];

/// The info line of a claim's new state.
fn log_state(r: &ClaimRecord) {
    tracing::info!(
        scheme = %r.claim.scheme_id,
        claim = %r.claim.claim_id,
        partner = %r.mutuelle_id,
        state = r.state.as_str(),
        trace_id = %passerelle_adapters::trace::current().map(|t| t.trace_id()).unwrap_or_default(),
        "claim state"
    );
}

/// How a claim is named when it is not found.
pub(crate) fn claim_words(scheme_id: &str, claim_id: &str) -> String {
    format!("claim {claim_id} of scheme {scheme_id}")
}

/// A claim read, then found out of the caller's scope (`refusal`, its
/// parties' check): answered as [`Broker::get`] answers a missing one.
pub fn absent_claim(scheme_id: &str, claim_id: &str, refusal: ServiceError) -> ServiceError {
    ServiceError::OutOfScope {
        what: claim_words(scheme_id, claim_id),
        why: refusal.to_string(),
    }
}

impl Broker {
    /// Hands a claim (or a cancel) to the retry worker: due after the
    /// back-off of its attempts, with why it waits.
    /// `from`: the state the claim was in, so that a claim deferred again
    /// in the same state (every retry of one waiting on its partner) logs
    /// no line: docs/operations.md logs each change of state once.
    async fn defer_after(
        &self,
        scheme_id: &str,
        claim_id: &str,
        attempts: u32,
        from: ClaimState,
        why: &str,
    ) -> Result<ClaimRecord, ServiceError> {
        let now = self.clock.now_ms();
        let t = self
            .timed(
                "defer",
                self.store.defer(
                    scheme_id,
                    claim_id,
                    from,
                    now + self.backoff_ms(attempts),
                    why,
                    now,
                ),
            )
            .await?;
        match &t {
            Transition::Applied(r) if r.state == from => self.notify(),
            t => self.changed(t),
        }
        Ok(t.into_record())
    }

    /// After a claim's transition: one info line when its state changed
    /// (scheme, claim id, partner, state; never the beneficiary), and the
    /// long pollers woken.
    fn changed(&self, t: &Transition) {
        if let Transition::Applied(r) = t {
            log_state(r);
        }
        self.notify();
    }

    /// A store operation of the claim path, timed for the metrics
    /// (`passerelle_store_operation_duration_seconds`).
    pub(super) async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let r = call.await;
        self.metrics
            .store_call(operation, r.is_ok(), started.elapsed());
        r
    }

    pub(super) fn backoff_ms(&self, attempts: u32) -> i64 {
        let exp = 1u64 << attempts.min(20);
        self.retry
            .base_ms
            .saturating_mul(exp)
            .min(self.retry.max_ms) as i64
    }

    /// Complementary eligibility. Nothing is stored but the audit rows.
    pub async fn eligibility(
        &self,
        q: EligibilityInput,
    ) -> Result<(String, EligibilityAnswer), ServiceError> {
        let scheme = self.scheme(&q.scheme_id)?;
        if !q.lines.is_empty() {
            self.check_currency(scheme, &q.currency)?;
        }
        let route = self
            .route(
                &q.scheme_id,
                &q.beneficiary_id,
                q.date_of_care,
                q.mutuelle_id.as_deref(),
                q.member_number.as_deref(),
            )
            .await?;
        let Some(Route {
            mutuelle_id: mid,
            member_number,
            member,
        }) = route
        else {
            return Ok((
                String::new(),
                EligibilityAnswer::not_covered(super::routing::unrouted(
                    q.mutuelle_id.as_deref(),
                    q.member_number.as_deref(),
                )),
            ));
        };
        let partner = self.partner(&mid)?;
        let query = EligibilityQuery {
            idempotency_key: format!(
                "elg-{}",
                key_digest(&[
                    &q.scheme_id,
                    &q.beneficiary_id,
                    &self.clock.now_ms().to_string(),
                    &next_nonce()
                ])
            ),
            scheme_id: q.scheme_id,
            beneficiary_id: q.beneficiary_id,
            member_number: Some(member_number).filter(|n| !n.is_empty()),
            member,
            date_of_care: q.date_of_care,
            // Without planned lines a question may name no currency (the
            // CLI's names none): the partner's amounts are then the
            // scheme's, which a Money without a currency is read in.
            currency: if q.currency.is_empty() {
                scheme.currency.clone()
            } else {
                q.currency
            },
            lines: q.lines,
            diagnoses: q.diagnoses,
        };
        let Some(_slot) = partner.slots.try_take() else {
            return Err(ServiceError::PartnerUnavailable(busy(&mid)));
        };
        let out = Outbound {
            method: "CheckComplementaryEligibility",
            subject: format!("{}/eligibility", query.scheme_id),
            key: &query.idempotency_key,
            // The outbound row records a message to a partner's system; a
            // rules partner is adjudicated in this process and no message
            // leaves (the inbound row already records the call).
            audited: partner.kind != AdapterKind::Rules,
        };
        let res = self
            .call_partner(&mid, out, async {
                // Checked as part of the call, as an adjudication is
                // (`checked`): an estimate that does not hold is malformed.
                let mut a = partner.adapter.get().eligibility(&query).await?;
                if !query.lines.is_empty() && !a.lines.is_empty() {
                    a.lines = check_answer(&query.lines, std::mem::take(&mut a.lines))
                        .map_err(AdapterError::Malformed)?;
                }
                Ok(a)
            })
            .await;
        let mut answer = match res {
            Ok(a) => a,
            Err(e) if e.is_transient() => {
                return Err(self.unavailable(&mid, format!("mutuelle {mid}: {e}")));
            }
            Err(AdapterError::Rejected(r)) => EligibilityAnswer::not_covered(r),
            Err(e) => {
                return Err(ServiceError::PartnerAnswerInvalid(format!(
                    "mutuelle {mid}: {e}"
                )));
            }
        };
        // A partner whose protocol cannot say the member's dues (a FHIR
        // CoverageEligibilityResponse has no such field, nor has an XML
        // mapping): what the mutuelle declared in its roster here, as the
        // console shows it, rather than none, which a scheme reads as
        // unpaid. A gRPC partner's "none paid" is its own answer.
        if answer.paid_until.is_none() && !partner.adapter.get().says_dues() {
            answer.paid_until = query.member.as_ref().and_then(|m| m.paid_until);
        }
        Ok((mid, answer))
    }

    /// A claim bills care already given: its date of care is at most
    /// tomorrow (UTC), [`MAX_DAYS_AFTER_TODAY`]. A later date is a slip (a
    /// year typed wrong) that would consume a ceiling of a year to come, or
    /// planned care, which is asked for by prior authorization.
    fn check_care_given(&self, claim: &Claim) -> Result<(), ServiceError> {
        let latest = self
            .clock
            .today()
            .saturating_add(time::Duration::days(MAX_DAYS_AFTER_TODAY));
        if claim.date_of_care > latest {
            return Err(ServiceError::invalid(
                "date_of_care",
                format!(
                    "must not be after {} (care not yet given is asked for by prior authorization)",
                    passerelle_domain::date::format(latest)
                ),
            ));
        }
        Ok(())
    }

    /// Coordinates a claim: see the module documentation.
    pub async fn coordinate(&self, claim: Claim) -> Result<ClaimRecord, ServiceError> {
        let scheme = self.scheme(&claim.scheme_id)?;
        self.check_currency(scheme, &claim.currency)?;
        let request_hash = claim.canonical_hash();
        let (route, stored) = self.route_claim(&claim).await?;
        // A resend of a stored claim gets its stored answer, whatever became
        // of the roster or of the authorization it quoted since, and is
        // never computed again (resends of a rules mutuelle's claims ran at
        // 1.00 x new claims when computed first, docs/PERFORMANCE.md). The
        // claim was read with the members, in one round trip.
        if let Some(rec) = stored {
            return self.resend(rec, &request_hash).await;
        }
        self.check_care_given(&claim)?;
        let Some(Route {
            mutuelle_id: mid,
            member_number,
            member,
        }) = route
        else {
            return Err(super::routing::unknown_member(
                &claim.beneficiary_id,
                claim.mutuelle_id.as_deref(),
                claim.member_number.as_deref(),
            ));
        };
        let deadline = self.partner(&mid)?.deadline;
        if claim.prior_authorization.is_some() {
            self.quoted_authorization(&claim, &mid).await?;
        }
        let mut new = NewClaim {
            adjudication_key: adjudication_key(&claim.scheme_id, &claim.claim_id),
            claim,
            request_hash: request_hash.clone(),
            mutuelle_id: mid,
            member_number,
            lease_until_ms: 0,
            now_ms: 0,
        };
        let mut next = AtOnce::Ask;
        if new.claim.prior_authorization.is_none() {
            next = self
                .coordinate_at_once(&mut new, deadline, member.as_ref())
                .await?;
            if let AtOnce::Stored(rec) = next {
                return Ok(*rec);
            }
        }
        // Stamped when stored, after any adjudication: the lease then
        // covers a whole call, and a period's close sees the claim's time.
        stamp(&mut new, self.clock.now_ms(), deadline);
        match self
            .timed("begin_claim", self.store.begin_claim(new))
            .await?
        {
            Begin::Created(rec) => {
                log_state(&rec);
                self.notify();
                match next {
                    AtOnce::Decided(outcome) => {
                        self.store_decided(rec, outcome, member.as_ref()).await
                    }
                    AtOnce::Deferred(why) => {
                        let (scheme_id, claim_id) = (&rec.claim.scheme_id, &rec.claim.claim_id);
                        self.defer_after(scheme_id, claim_id, rec.attempts, rec.state, &why)
                            .await
                    }
                    // Computed again on everything read afresh.
                    AtOnce::Contended => self.process(rec, None).await,
                    AtOnce::Ask | AtOnce::Stored(_) => self.process(rec, member.as_ref()).await,
                }
            }
            Begin::DuplicateInvoice(rec) => {
                log_state(&rec);
                self.notify();
                Ok(rec)
            }
            Begin::Existing(rec) => self.await_settled(rec, deadline).await,
            Begin::Modified(rec) => Err(ServiceError::ModifiedRequest(format!(
                "claim {}",
                rec.claim.claim_id
            ))),
        }
    }

    /// A claim of a mutuelle whose rules the broker applies itself
    /// (`Adapter::adjudicates_from_store`): adjudicated first, then stored
    /// with its outcome in one commit (`ClaimStore::begin_coordinated`).
    /// The two commits of the module documentation exist so that a partner
    /// system asked is never asked again under another key; here no system
    /// outside the broker's database holds anything, and one commit stores
    /// the claim, its shares and its ceilings together or not at all.
    ///
    /// Otherwise the caller takes the two commits, told what was learnt:
    /// a rejection (`Decided`) is stored in the second commit without
    /// being computed again (it consumes nothing, so the one commit would
    /// save little); a transient failure (`Deferred`) defers the claim
    /// without asking again at once; ceilings that kept moving
    /// (`Contended`) are computed again on a fresh read. `Ask`, nothing
    /// learnt: another adapter, every place taken, or a key or an invoice
    /// already held (a modified request or a duplicate invoice, or a resend
    /// racing its first request: `begin_claim` tells them apart). The
    /// caller has looked for the claim first, so a resend is answered from
    /// the store without being computed; a duplicate invoice is computed
    /// (and audited, as every adjudication is) before being answered from
    /// the store, and nothing of that computation is stored.
    async fn coordinate_at_once(
        &self,
        new: &mut NewClaim,
        deadline: Duration,
        member: Option<&Member>,
    ) -> Result<AtOnce, ServiceError> {
        let Some(partner) = self.partners.get(&new.mutuelle_id) else {
            return Ok(AtOnce::Ask);
        };
        if !partner.adapter.get().adjudicates_from_store() {
            return Ok(AtOnce::Ask);
        }
        let Some(_slot) = partner.slots.try_take() else {
            return Ok(AtOnce::Ask);
        };
        let subject = format!("{}/{}", new.claim.scheme_id, new.claim.claim_id);
        // The first computation takes the ceilings as unused, without
        // reading them (`AdjudicationRequest::unread_ceilings`, one round
        // trip fewer a claim) unless a limit cuts a line: the store refuses
        // it unless every ceiling it consumes has room, in which case it is
        // the computation on the real usage (`Usage::has_room_for`,
        // `Adjudication::limited`). Refused, the claim is computed on the
        // ceilings read, with routing's member; a ceiling that moved after
        // that, on everything read afresh.
        for attempt in 0..=MAX_CEILING_RETRIES {
            let req = AdjudicationRequest {
                idempotency_key: &new.adjudication_key,
                claim: &new.claim,
                member_number: &new.member_number,
                member: member.filter(|_| attempt <= 1),
                prior: None,
                unread_ceilings: attempt == 0,
            };
            let out = Outbound {
                method: "AdjudicateRemainder",
                subject: subject.clone(),
                key: &new.adjudication_key,
                audited: true,
            };
            let adapter = partner.adapter.get();
            let answer = checked(&new.claim.lines, None, adapter.adjudicate(req));
            let outcome = match self.call_partner(&partner.id, out, answer).await {
                Err(e) if e.is_transient() => {
                    return Ok(AtOnce::Deferred(partner_text(&e.to_string())));
                }
                res => checked_outcome(res, &partner.id, &subject, None),
            };
            if !matches!(outcome, Outcome::Coordinated { .. }) {
                return Ok(AtOnce::Decided(outcome));
            }
            stamp(new, self.clock.now_ms(), deadline);
            match self
                .timed(
                    "begin_coordinated",
                    self.store.begin_coordinated(new, bounded_outcome(outcome)),
                )
                .await
            {
                Ok(Some(rec)) => {
                    log_state(&rec);
                    self.notify();
                    return Ok(AtOnce::Stored(Box::new(rec)));
                }
                Ok(None) => return Ok(AtOnce::Ask),
                Err(StoreError::CeilingConflict(k)) if attempt == 0 => {
                    tracing::debug!(claim = %subject, ceiling = %k, "ceiling without room; computing on the ceilings read");
                    continue;
                }
                Err(StoreError::CeilingConflict(k)) => {
                    tracing::debug!(claim = %subject, ceiling = %k, "ceiling moved; recomputing");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(AtOnce::Contended)
    }

    /// The second commit of a claim whose answer `coordinate_at_once`
    /// already computed (a rejection): stored as `process` would store it,
    /// without asking again. Should the store refuse it as a conflict, the
    /// claim is processed as any other.
    async fn store_decided(
        &self,
        rec: ClaimRecord,
        outcome: Outcome,
        member: Option<&Member>,
    ) -> Result<ClaimRecord, ServiceError> {
        // Only a rules mutuelle's claim is decided at once.
        let owed = withdrawal(&outcome, &rec.claim, false);
        let stored = self
            .timed(
                "complete_claim",
                self.store.complete_claim(
                    &rec.claim,
                    bounded_outcome(outcome),
                    owed.as_deref(),
                    self.clock.now_ms(),
                ),
            )
            .await;
        match stored {
            Ok(t) => {
                self.changed(&t);
                Ok(t.into_record())
            }
            Err(StoreError::CeilingConflict(_)) => self.process(rec, member).await,
            Err(e) => Err(e.into()),
        }
    }

    async fn resend(
        &self,
        rec: ClaimRecord,
        request_hash: &str,
    ) -> Result<ClaimRecord, ServiceError> {
        if rec.request_hash != request_hash {
            return Err(ServiceError::ModifiedRequest(format!(
                "claim {}",
                rec.claim.claim_id
            )));
        }
        let deadline = self
            .partners
            .get(&rec.mutuelle_id)
            .map(|p| p.deadline)
            .unwrap_or(Duration::from_secs(2));
        self.await_settled(rec, deadline).await
    }

    /// A resend while the first request is still asking the partner waits for
    /// its answer (up to the partner's deadline), so that both callers get
    /// the same answer; the partner is never asked twice.
    async fn await_settled(
        &self,
        rec: ClaimRecord,
        deadline: Duration,
    ) -> Result<ClaimRecord, ServiceError> {
        if rec.state != ClaimState::Received {
            return Ok(rec);
        }
        let mut rx = self.subscribe();
        let until =
            tokio::time::Instant::now() + deadline + Duration::from_millis(LEASE_GRACE_MS as u64);
        loop {
            let cur = self
                .store
                .get_claim(&rec.claim.scheme_id, &rec.claim.claim_id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("claim {}", rec.claim.claim_id)))?;
            if cur.state != ClaimState::Received || tokio::time::Instant::now() >= until {
                return Ok(cur);
            }
            // Woken by a change in this process, or after a short poll for a
            // change made by another broker on the same database.
            let step = until.min(tokio::time::Instant::now() + CROSS_REPLICA_POLL);
            let _ = tokio::time::timeout_at(step, rx.changed()).await;
        }
    }

    /// Asks the partner and stores the outcome. Used by the first request and
    /// by the retry worker alike.
    /// `member`: the roster record routing read for this claim, when the
    /// caller has it (a rules partner then does not read it again).
    pub(super) async fn process(
        &self,
        rec: ClaimRecord,
        member: Option<&Member>,
    ) -> Result<ClaimRecord, ServiceError> {
        let (scheme_id, claim_id) = (rec.claim.scheme_id.clone(), rec.claim.claim_id.clone());
        let subject = format!("{scheme_id}/{claim_id}");
        let Some(partner) = self.partners.get(&rec.mutuelle_id) else {
            return self
                .defer_after(
                    &scheme_id,
                    &claim_id,
                    rec.attempts,
                    rec.state,
                    "mutuelle not configured",
                )
                .await;
        };
        // A place among the calls waiting on this mutuelle; when all are
        // taken (it hangs, or is flooded) the claim stays stored and the
        // retry worker takes it later, without holding a place meanwhile.
        let Some(_slot) = partner.slots.try_take() else {
            return self
                .defer_after(
                    &scheme_id,
                    &claim_id,
                    rec.attempts,
                    rec.state,
                    &busy(&partner.id),
                )
                .await;
        };
        for attempt in 0..MAX_CEILING_RETRIES {
            // The authorization the claim quotes, while it is in force
            // (read again at each attempt: it may have expired meanwhile).
            let mut rebilled = false;
            let prior = match self.quoted(&rec.claim).await? {
                Quoted::Terms(reference, terms, again) => {
                    rebilled = again;
                    Some((reference, terms))
                }
                Quoted::Nothing => None,
                Quoted::BilledElsewhere(why) => {
                    // The mutuelle may have booked this claim against the
                    // authorization (asked at this attempt, whose answer
                    // lost the race, or at an earlier one, whose answer
                    // never came): it is told to cancel that, as after an
                    // answer refused. One never asked is told nothing.
                    let adapter = partner.adapter.get();
                    let owed = (!adapter.adjudicates_from_store()
                        && (attempt > 0 || self.asked_before(&subject).await?))
                        .then(|| cancel_key(&scheme_id, &claim_id));
                    tracing::info!(claim = %subject, "{}", why.message);
                    let t = self
                        .timed(
                            "complete_claim",
                            self.store.complete_claim(
                                &rec.claim,
                                Outcome::Rejected(why),
                                owed.as_deref(),
                                self.clock.now_ms(),
                            ),
                        )
                        .await?;
                    self.changed(&t);
                    return Ok(t.into_record());
                }
            };
            let req = AdjudicationRequest {
                idempotency_key: &rec.adjudication_key,
                claim: &rec.claim,
                member_number: &rec.member_number,
                // Routing's read serves the first attempt; a ceiling that
                // moved is computed again on everything read afresh.
                member: member.filter(|_| attempt == 0),
                prior: prior.as_ref().map(|(_, t)| t),
                unread_ceilings: false,
            };
            let out = Outbound {
                method: "AdjudicateRemainder",
                subject: subject.clone(),
                key: &rec.adjudication_key,
                audited: true,
            };
            let adapter = partner.adapter.get();
            // A mutuelle with its own system is held to its commitment,
            // unless the authorization is billed again by a correction: its
            // hold went with the cancelled claim, and the room the cancel
            // gave back may be used since.
            let granted = prior
                .as_ref()
                .filter(|_| !adapter.adjudicates_from_store() && !rebilled)
                .map(|(_, t)| &t.granted);
            let answer = checked(&rec.claim.lines, granted, adapter.adjudicate(req));
            let res = self.call_partner(&partner.id, out, answer).await;
            let outcome = match res {
                Err(e) if e.is_transient() => {
                    return self
                        .defer_after(
                            &scheme_id,
                            &claim_id,
                            rec.attempts,
                            rec.state,
                            &partner_text(&e.to_string()),
                        )
                        .await;
                }
                res => {
                    #[cfg(feature = "failpoints")]
                    if res.is_ok() {
                        super::failpoint::after_partner_answer().await;
                    }
                    checked_outcome(
                        res,
                        &partner.id,
                        &subject,
                        prior.as_ref().map(|(r, _)| r.clone()),
                    )
                }
            };
            let keeps_books = !adapter.adjudicates_from_store();
            let owed = withdrawal(&outcome, &rec.claim, keeps_books);
            match self
                .timed(
                    "complete_claim",
                    self.store.complete_claim(
                        &rec.claim,
                        bounded_outcome(outcome),
                        owed.as_deref(),
                        self.clock.now_ms(),
                    ),
                )
                .await
            {
                Ok(t) => {
                    self.changed(&t);
                    return Ok(t.into_record());
                }
                Err(StoreError::CeilingConflict(k)) => {
                    tracing::debug!(claim = %subject, ceiling = %k, "ceiling moved; recomputing");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.defer_after(&scheme_id, &claim_id, 0, rec.state, "ceiling contention")
            .await
    }

    /// Whether a claim's mutuelle was asked to adjudicate it before: an
    /// outbound `AdjudicateRemainder` row in its audit trail (a call held
    /// by a pause, an open circuit or a full set of places writes none;
    /// the rows queued by calls just made are written first; a claim not
    /// final keeps its rows). A trail too long to be read whole counts as
    /// asked: its first call may be among the rows left out, and a cancel
    /// of what the mutuelle never saw is the lesser harm. Read on the rare
    /// path of a claim refused after it was stored.
    async fn asked_before(&self, subject: &str) -> Result<bool, ServiceError> {
        self.audit.flush().await;
        let trail = self.store.audit_of(subject).await?;
        Ok(trail.omitted > 0
            || trail.rows.iter().any(|r| {
                r.direction == crate::store::Direction::Out && r.method == "AdjudicateRemainder"
            }))
    }

    pub async fn get(&self, scheme_id: &str, claim_id: &str) -> Result<ClaimRecord, ServiceError> {
        self.scheme(scheme_id)?;
        self.store
            .get_claim(scheme_id, claim_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(claim_words(scheme_id, claim_id)))
    }

    /// Changes after a cursor; with `wait`, long-polls for the first change.
    pub async fn list_changed(
        &self,
        scheme_id: &str,
        after_seq: u64,
        limit: u32,
        wait: Duration,
    ) -> Result<Vec<ClaimRecord>, ServiceError> {
        self.scheme(scheme_id)?;
        let mut rx = self.subscribe();
        let until = tokio::time::Instant::now() + wait;
        loop {
            let rows = self.store.list_changed(scheme_id, after_seq, limit).await?;
            if !rows.is_empty() || wait.is_zero() {
                return Ok(rows);
            }
            // Changes made by another replica do not wake this one: look again
            // at least every CROSS_REPLICA_POLL.
            let step = until.min(tokio::time::Instant::now() + CROSS_REPLICA_POLL * 5);
            if tokio::time::timeout_at(step, rx.changed()).await.is_err()
                && tokio::time::Instant::now() >= until
            {
                return Ok(rows);
            }
        }
    }

    /// Cancels a claim; see `CancelClaim` in the scheme contract.
    pub async fn cancel(
        &self,
        scheme_id: &str,
        claim_id: &str,
        reason: &str,
    ) -> Result<ClaimRecord, ServiceError> {
        let rec = self.get(scheme_id, claim_id).await?;
        if matches!(rec.state, ClaimState::Cancelled | ClaimState::CancelPending) {
            return Ok(rec);
        }
        let deadline = self
            .partners
            .get(&rec.mutuelle_id)
            .map(|p| p.deadline)
            .unwrap_or(Duration::from_secs(2));
        let now = self.clock.now_ms();
        let t = self
            .store
            .begin_cancel(
                scheme_id,
                claim_id,
                &cancel_key(scheme_id, claim_id),
                reason,
                now + 2 * deadline.as_millis() as i64 + LEASE_GRACE_MS,
                now,
            )
            .await?;
        self.changed(&t);
        let rec = t.into_record();
        if rec.state == ClaimState::CancelPending {
            return self.process_cancel(rec).await;
        }
        Ok(rec)
    }

    /// Sends a claim's cancel to its partner: a scheme's cancel
    /// (CANCEL_PENDING, then CANCELLED), or the cancel a partner is owed
    /// after the broker refused its answer ([`withdrawal`]: the claim stays
    /// REJECTED, `ClaimStore::withdrawal_tried`). Retried with back-off
    /// until delivered; a scheme's cancel refused for good is retried too,
    /// a withdrawal refused for good is left to a person, as one the
    /// partner cannot make (the claim's last error says so).
    pub(super) async fn process_cancel(
        &self,
        rec: ClaimRecord,
    ) -> Result<ClaimRecord, ServiceError> {
        let (scheme_id, claim_id) = (rec.claim.scheme_id.as_str(), rec.claim.claim_id.as_str());
        let withdrawing = rec.state == ClaimState::Rejected;
        // A scheme's cancel of a REJECTED claim with nothing to undo at its
        // mutuelle: one refused as a duplicate invoice before it was sent
        // (its adjudication key is its own: the mutuelle never saw it), or
        // any of a mutuelle passerelle adjudicates itself (its cancel is
        // the store's alone). Cancelled at once, nothing sent, so that a
        // paused mutuelle does not hold it CANCEL_PENDING, nor one refusing
        // an unknown key have a person undo what does not exist. Any other
        // rejected claim's cancel is sent, as before.
        if !withdrawing
            && rec.rejection.as_ref().is_some_and(|r| {
                r.code == ReasonCode::DuplicateInvoice
                    || self
                        .partners
                        .get(&rec.mutuelle_id)
                        .is_some_and(|p| p.adapter.get().adjudicates_from_store())
            })
        {
            let t = self
                .store
                .complete_cancel(scheme_id, claim_id, "", self.clock.now_ms())
                .await?;
            self.changed(&t);
            return Ok(t.into_record());
        }
        let key = rec
            .cancel_key
            .clone()
            .unwrap_or_else(|| cancel_key(scheme_id, claim_id));
        let partner = self.partners.get(&rec.mutuelle_id);
        // A place among the calls waiting on this mutuelle, held until the
        // call ends.
        let _slot = match partner.map(|p| p.slots.try_take()) {
            Some(None) => {
                return self
                    .defer_after(
                        scheme_id,
                        claim_id,
                        rec.attempts,
                        rec.state,
                        &busy(&rec.mutuelle_id),
                    )
                    .await;
            }
            slot => slot,
        };
        let refused = match (&rec.rejection, withdrawing) {
            (Some(r), true) if r.code == ReasonCode::PartnerAnswerInvalid => format!(
                "passerelle refused this adjudication's answer: {}",
                r.message
            ),
            (Some(r), true) => format!("passerelle rejected this claim: {}", r.message),
            _ => String::new(),
        };
        let req = CancelRequest {
            idempotency_key: &key,
            adjudication_key: &rec.adjudication_key,
            scheme_id,
            claim_id,
            reason: if withdrawing {
                &refused
            } else {
                &rec.cancel_reason
            },
            partner_reference: &rec.partner_reference,
            // Asked, its answer not kept: refused, or lost to the claim
            // that billed the authorization first.
            answer_refused: withdrawing
                || matches!(&rec.rejection, Some(r) if r.code == ReasonCode::PartnerAnswerInvalid),
        };
        let call = async {
            match partner {
                Some(p) => p.adapter.get().cancel(req).await,
                None => Err(AdapterError::Unavailable("mutuelle not configured".into())),
            }
        };
        let out = Outbound {
            method: "CancelAdjudication",
            subject: format!("{scheme_id}/{claim_id}"),
            key: &key,
            audited: true,
        };
        let res = self.call_partner(&rec.mutuelle_id, out, call).await;
        let partner_id = rec.mutuelle_id.as_str();
        let done = |note: String| async move {
            let now = self.clock.now_ms();
            if withdrawing {
                let t = self
                    .store
                    .withdrawal_tried(scheme_id, claim_id, None, &note)
                    .await?;
                if matches!(t, Transition::Applied(_)) && note.is_empty() {
                    tracing::info!(partner = %partner_id, claim = %format!("{scheme_id}/{claim_id}"),
                        "refused answer withdrawn: the partner was told to cancel it");
                }
                self.notify();
                return Ok(t.into_record());
            }
            let t = self
                .store
                .complete_cancel(scheme_id, claim_id, &note, now)
                .await?;
            self.changed(&t);
            Ok(t.into_record())
        };
        match res {
            Ok(()) => done(String::new()).await,
            // The partner cannot cancel at all (openIMIS over FHIR): the
            // cancel stands in the broker's accounts, and a person must
            // cancel the claim in the mutuelle's system. Said at warn level
            // and in the outbound audit row (the partner's last error, in
            // `admin partners`), never retried in a loop.
            Err(e @ AdapterError::Unsupported(_)) => {
                tracing::warn!(
                    partner = %rec.mutuelle_id,
                    claim = %format!("{scheme_id}/{claim_id}"),
                    "cancel not delivered, to do by hand: {e}"
                );
                // With its kind ("not supported by this partner: "), which
                // `Lang::claim_note` says in the reader's language.
                done(partner_text(&format!("{CANCEL_NOT_DELIVERED}{e}"))).await
            }
            // The cancel of an answer refused, refused for good in turn
            // (the partner says it has no such adjudication, or the request
            // cannot be built): nothing the broker resends would change
            // that, and a person looks at it, as above. So too a scheme's
            // cancel of a claim that was REJECTED (it kept its reason):
            // it consumed nothing, and only the partner's books, if any,
            // are left to undo; resending a cancel the partner refuses
            // for good would loop. An answer that cannot be read (XML cut
            // or garbled) says nothing of the cancel: it is tried again
            // below, as a transient failure is.
            Err(e)
                if (withdrawing || rec.rejection.is_some())
                    && !e.is_transient()
                    && !matches!(e, AdapterError::Malformed(_)) =>
            {
                let said = partner_text(&e.to_string());
                tracing::warn!(
                    partner = %rec.mutuelle_id,
                    claim = %format!("{scheme_id}/{claim_id}"),
                    "cancel of a refused answer refused by the partner, to do by hand: {said}"
                );
                done(partner_text(&format!("{CANCEL_NOT_DELIVERED}{said}"))).await
            }
            Err(e) if withdrawing => {
                let next = self.clock.now_ms() + self.backoff_ms(rec.attempts);
                let t = self
                    .store
                    .withdrawal_tried(
                        scheme_id,
                        claim_id,
                        Some(next),
                        &partner_text(&e.to_string()),
                    )
                    .await?;
                self.notify();
                Ok(t.into_record())
            }
            // Final refusals are retried too (with back-off): a cancel must
            // reach the mutuelle; operators see last_error meanwhile.
            Err(e) => {
                self.defer_after(
                    scheme_id,
                    claim_id,
                    rec.attempts,
                    rec.state,
                    &partner_text(&e.to_string()),
                )
                .await
            }
        }
    }

    /// Retries a claim waiting on its partner (or a pending cancel) now.
    pub async fn retry_now(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<ClaimRecord, ServiceError> {
        let stored = self.get(scheme_id, claim_id).await?;
        // A paused mutuelle is asked nothing: a retry now would be put off
        // at once, and "retried" would say what did not happen. The
        // pauses as the store holds them now (another broker's too);
        // should that read fail, as this broker last read them.
        let waiting = stored.state.awaiting_partner()
            || stored.state == ClaimState::CancelPending
            || (stored.state == ClaimState::Rejected && stored.next_attempt_ms.is_some());
        if waiting {
            let _ = self.refresh_controls().await;
        }
        if waiting && self.partners.is_paused(&stored.mutuelle_id) {
            return Err(ServiceError::Precondition {
                reason: "PARTNER_PAUSED",
                message: format!(
                    "mutuelle {} is paused by an operator: nothing is sent to it until it is resumed (passerelle admin resume)",
                    stored.mutuelle_id
                ),
            });
        }
        let Some(rec) = self
            .store
            .lease_now(
                scheme_id,
                claim_id,
                self.clock.now_ms(),
                self.worker_lease_ms,
            )
            .await?
        else {
            // Its first request is asking the mutuelle (or was, until its
            // lease ends): a second call under the same key now would
            // race it.
            if stored.state == ClaimState::Received {
                return Err(ServiceError::Refused(format!(
                    "claim {claim_id} is being asked of its mutuelle by its first request: if the mutuelle does not answer within its deadline, the claim waits and can then be retried"
                )));
            }
            return Err(ServiceError::Refused(format!(
                "claim {claim_id} is not waiting on its mutuelle"
            )));
        };
        match rec.state {
            ClaimState::CancelPending | ClaimState::Rejected => self.process_cancel(rec).await,
            _ => self.process(rec, None).await,
        }
    }
}

#[cfg(test)]
mod bound_tests {
    use passerelle_domain::{DetailKey, LineShare, Reason, ReasonCode};

    use super::*;

    /// What a partner sends is stored without a NUL (PostgreSQL refuses
    /// one in any text): its error texts, its reasons, its reference and
    /// product name, each NUL written as U+FFFD.
    #[test]
    fn a_partners_nul_is_never_stored() {
        assert_eq!(
            partner_text("HTTP 502: \0\0gz"),
            "HTTP 502: \u{FFFD}\u{FFFD}gz"
        );
        let o = bounded_outcome(Outcome::Rejected(Reason::new(
            ReasonCode::PartnerRejected,
            "refus\0",
        )));
        let Outcome::Rejected(r) = o else {
            panic!("{o:?}")
        };
        assert_eq!(r.message, "refus\u{FFFD}");
        let o = bounded_outcome(Outcome::Coordinated {
            shares: vec![],
            product: Some(passerelle_domain::ProductRef {
                id: "P\0".into(),
                version: 1,
                name: "Essentiel\0".into(),
            }),
            partner_reference: "R\0".into(),
            consumption: vec![],
            authorization: None,
        });
        let Outcome::Coordinated {
            product,
            partner_reference,
            ..
        } = o
        else {
            panic!("{o:?}")
        };
        let product = product.expect("the product");
        assert!(
            !format!("{}{}{partner_reference}", product.id, product.name).contains('\0'),
            "{product:?} {partner_reference:?}"
        );
    }

    /// A detail's values are bounded as the message is: each cut at the
    /// partner text's length, and all of a claim's together within the
    /// reason-text budget; a figure is never cut.
    #[test]
    fn a_details_values_count_in_the_claims_reason_budget() {
        let long = "x".repeat(5_000);
        let reason = |words: &str| {
            Reason::said(
                ReasonCode::SchemeRefused,
                format!("refused by the scheme: {words}"),
                DetailKey::SchemeRefusedBecause,
                [("reason", words.to_string())],
            )
        };
        let figure = Reason::said(
            ReasonCode::PerActLimit,
            "limit of 123456789 per act",
            DetailKey::PerActLimit,
            [("limit_amount", "123456789".to_string())],
        );
        let shares = (1..=20)
            .map(|sequence| LineShare {
                sequence,
                mutuelle_share: 0,
                reasons: vec![reason(&long), figure.clone()],
            })
            .collect();
        let out = bounded_outcome(Outcome::Coordinated {
            shares,
            product: None,
            partner_reference: String::new(),
            consumption: Vec::new(),
            authorization: None,
        });
        let Outcome::Coordinated { shares, .. } = out else {
            panic!("coordinated");
        };
        let mut shown = 0;
        for s in &shares {
            let [words, figure] = &s.reasons[..] else {
                panic!("two reasons a line");
            };
            let value = &words.detail.as_ref().unwrap().args["reason"];
            assert!(value.chars().count() <= MAX_PARTNER_TEXT, "{}", value.len());
            assert_eq!(
                figure.detail.as_ref().unwrap().args["limit_amount"],
                "123456789"
            );
            shown += value.chars().count();
        }
        // The budget is spent (the message and the values count alike),
        // then each value is cut to a character.
        assert!(shown < MAX_REASON_TEXT_PER_CLAIM, "{shown}");
        let last = &shares[19].reasons[0].detail.as_ref().unwrap().args["reason"];
        assert!(last.chars().count() <= 1, "{last}");
    }

    /// A mutuelle that answers eligibility with the currency it was asked
    /// in, and errs on none (as a FHIR server's Money without a currency
    /// is read in the question's).
    struct SaysCurrency;

    #[async_trait::async_trait]
    impl passerelle_adapters::Adapter for SaysCurrency {
        async fn eligibility(
            &self,
            q: &EligibilityQuery,
        ) -> Result<EligibilityAnswer, AdapterError> {
            if q.currency.is_empty() {
                return Err(AdapterError::Malformed(
                    "allowedMoney.currency: \"\" is not an ISO 4217 currency in use".into(),
                ));
            }
            Ok(EligibilityAnswer {
                covered: true,
                member_number: q.currency.clone(),
                ..Default::default()
            })
        }

        async fn adjudicate(
            &self,
            _req: AdjudicationRequest<'_>,
        ) -> Result<PartnerAdjudication, AdapterError> {
            Err(AdapterError::Unavailable("not asked".into()))
        }

        async fn cancel(&self, _req: CancelRequest<'_>) -> Result<(), AdapterError> {
            Ok(())
        }
    }

    /// A mutuelle that answers each call once the test lets it, paying
    /// every line's remainder; `entered` says a call is waiting.
    struct Gated {
        entered: tokio::sync::Notify,
        release: tokio::sync::Semaphore,
    }

    #[async_trait::async_trait]
    impl passerelle_adapters::Adapter for Gated {
        async fn eligibility(
            &self,
            _q: &EligibilityQuery,
        ) -> Result<EligibilityAnswer, AdapterError> {
            Err(AdapterError::Unavailable("not asked".into()))
        }

        async fn adjudicate(
            &self,
            req: AdjudicationRequest<'_>,
        ) -> Result<PartnerAdjudication, AdapterError> {
            self.entered.notify_one();
            self.release
                .acquire()
                .await
                .map_err(|e| AdapterError::Unavailable(e.to_string()))?
                .forget();
            crate::service::testing::HangsOnce(1.into())
                .adjudicate(req)
                .await
        }

        async fn cancel(&self, _req: CancelRequest<'_>) -> Result<(), AdapterError> {
            Ok(())
        }
    }

    /// An operator's retry of a claim its first request is still asking
    /// the mutuelle about is refused, saying so: taken, the mutuelle was
    /// asked a second time under the same key while the first call
    /// waited. The first request's answer is stored as it comes.
    #[tokio::test]
    async fn an_operators_retry_leaves_a_first_request_to_its_mutuelle() {
        let dir = tempfile::tempdir().unwrap();
        let gate = std::sync::Arc::new(Gated {
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
        });
        let b = crate::service::testing::broker_with_adapter(dir.path(), gate.clone());
        let mut claim = crate::store::conformance::sample_claim("CNSS", "C-R1", "I-R1");
        claim.mutuelle_id = Some("MUT-X".into());
        let first = {
            let b = b.clone();
            tokio::spawn(async move { b.coordinate(claim).await })
        };
        gate.entered.notified().await;
        // Bounded: taken, the retry would wait on the gate with the first.
        let retried = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            b.retry_now("CNSS", "C-R1"),
        )
        .await
        .expect("the retry answers at once, without asking the mutuelle");
        match retried {
            Err(ServiceError::Refused(m)) => {
                assert!(m.contains("by its first request"), "{m}")
            }
            other => panic!("a second call under the first's key: {other:?}"),
        }
        gate.release.add_permits(1);
        let done = first.await.unwrap().unwrap();
        assert_eq!(done.state, ClaimState::Coordinated);
        assert_eq!(done.attempts, 0, "asked once");
    }

    /// An eligibility question without planned lines may name no currency
    /// (the CLI names none): the partner is asked in the scheme's.
    #[tokio::test]
    async fn an_eligibility_question_without_currency_is_asked_in_the_schemes() {
        let dir = tempfile::tempdir().unwrap();
        let b = crate::service::testing::broker_with_adapter(
            dir.path(),
            std::sync::Arc::new(SaysCurrency),
        );
        b.store()
            .upsert_members(&[crate::service::testing::member_of("X")], 0)
            .await
            .unwrap();
        let (_, answer) = b
            .eligibility(EligibilityInput {
                scheme_id: "CNSS".into(),
                beneficiary_id: "X-OK".into(),
                date_of_care: passerelle_domain::date::parse("2026-03-10").unwrap(),
                mutuelle_id: None,
                member_number: None,
                currency: String::new(),
                lines: vec![],
                diagnoses: vec![],
            })
            .await
            .unwrap();
        assert!(answer.covered);
        assert_eq!(
            answer.member_number, "XOF",
            "asked in the scheme's currency"
        );
    }
}
