//! The claim lifecycle and eligibility, independent of gRPC: the API layer
//! converts requests to domain values and calls [`Broker`].
//!
//! A claim's life:
//! 1. `begin_claim` commits the claim (RECEIVED) with a lease, before any
//!    partner call. A resend finds it there; a modified resend is refused.
//! 2. The partner is asked with the claim's adjudication key, within the
//!    partner's deadline. No transaction is open meanwhile.
//! 3. The answer is checked (every line once, M >= 0, M <= R, M = 0 on a
//!    refused line) and `complete_claim` stores it with the ceiling
//!    consumption, conditionally. A ceiling conflict recomputes.
//! 4. A missed deadline or a transient failure defers the claim
//!    (PENDING_PARTNER, back-off); the caller gets PENDING. The retry worker
//!    leases due claims from the store and resumes them, after a restart too,
//!    always with the same key.
//!
//! Cancels follow the same pattern with the claim's cancel key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use passerelle_adapters::{
    Adapter, AdapterError, AdapterKind, AdjudicationRequest, CancelRequest, EligibilityAnswer,
    EligibilityQuery,
};
use passerelle_domain::validate::{
    FieldViolation, MAX_ID_LEN, MAX_PARTNER_TEXT, MAX_TEXT_LEN, check_answer, truncate_text,
};
use passerelle_domain::{Claim, ClaimState, Date, Member, Reason, ReasonCode};
use tokio::sync::watch;

use crate::admission::{Admission, PartnerSlots, Permit, Pool};
use crate::audit::{AuditSink, hash, now_ms};
use crate::config::RetryConfig;
use crate::store::{
    AuditEntry, Begin, ClaimRecord, CoverageConflict, Direction, NewClaim, Outcome, RosterDiff,
    RosterImport, Store, StoreError,
};

/// Extra time a caller holds a claim beyond twice its partner's deadline,
/// before the retry worker may take it over.
const LEASE_GRACE_MS: i64 = 1000;
/// How often a broker waiting on a claim looks at the store for a change
/// another broker made (changes in this process wake it at once).
const CROSS_REPLICA_POLL: Duration = Duration::from_millis(50);
/// How many times a claim is recomputed when a ceiling moved under it.
const MAX_CEILING_RETRIES: usize = 8;

/// A scheme (or delegate) allowed to call.
#[derive(Clone, Debug)]
pub struct Scheme {
    pub id: String,
    pub name: String,
    pub currency: String,
    pub parent: Option<String>,
}

/// A mutuelle and how to reach it.
pub struct Partner {
    pub id: String,
    pub name: String,
    pub kind: AdapterKind,
    pub adapter: Arc<dyn Adapter>,
    pub deadline: Duration,
    /// Its places for calls waiting on it (see [`crate::admission`]).
    pub slots: PartnerSlots,
}

/// Why a call failed; mapped to a gRPC status in `api::status`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    #[error("claim {0} was already received with different content")]
    ModifiedRequest(String),
    #[error("{0}")]
    UnknownMember(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    PartnerUnavailable(String),
    #[error("{0}")]
    PartnerAnswerInvalid(String),
    /// The request is valid but the state refuses it (FAILED_PRECONDITION).
    #[error("{0}")]
    Refused(String),
    /// The caller may not do this (PERMISSION_DENIED).
    #[error("{0}")]
    PermissionDenied(String),
    /// Too many calls at once (RESOURCE_EXHAUSTED).
    #[error("{0}")]
    Overloaded(String),
    /// Two mutuelles declare the beneficiary on the date (FAILED_PRECONDITION,
    /// reason COVERAGE_CONFLICT).
    #[error("{0}")]
    CoverageConflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        ServiceError::Invalid(vec![FieldViolation::new(field, description)])
    }
}

/// An eligibility question in domain form (parsed by `passerelle_proto::parse`).
pub use passerelle_domain::EligibilityInput;

/// Test and operations hooks, set from the PASSERELLE_FAILPOINT variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failpoint {
    /// Stop for ever after a partner's answer, before storing it (to test a
    /// kill -9 at the worst moment). Prints "failpoint after_partner_answer
    /// reached" on stderr.
    AfterPartnerAnswer,
}

impl Failpoint {
    pub fn from_env() -> Option<Failpoint> {
        match std::env::var("PASSERELLE_FAILPOINT").ok()?.as_str() {
            "after_partner_answer" => Some(Failpoint::AfterPartnerAnswer),
            _ => None,
        }
    }
}

pub struct Broker {
    store: Arc<dyn Store>,
    directory: Arc<crate::identity::Directory>,
    admission: Admission,
    /// The server's own limit on a call (`request_timeout_ms`).
    request_timeout: Duration,
    schemes: HashMap<String, Scheme>,
    partners: HashMap<String, Partner>,
    retry: RetryConfig,
    changes: watch::Sender<u64>,
    audit: AuditSink,
    failpoint: Option<Failpoint>,
    worker_lease_ms: i64,
    /// Partners whose last call failed transiently. The first answer after
    /// that makes their waiting claims due at once (see [`Broker::answered`]).
    down: HashMap<String, std::sync::atomic::AtomicBool>,
}

/// Runs a partner call under its deadline; a missed deadline is a transient
/// `Timeout`, like the partner's own DEADLINE_EXCEEDED.
async fn with_deadline<T>(
    deadline: Duration,
    call: impl std::future::Future<Output = Result<T, AdapterError>>,
) -> Result<T, AdapterError> {
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or(Err(AdapterError::Timeout(deadline.as_millis() as u64)))
}

/// Why a call did not reach a mutuelle whose places are all taken.
fn busy(mutuelle: &str) -> String {
    format!("mutuelle {mutuelle} is busy: too many calls are waiting on it, retry shortly")
}

/// Most characters of reason texts kept for one claim's answer, all lines
/// together (past it, texts are cut to "…").
pub const MAX_REASON_TEXT_PER_CLAIM: usize = 16_000;

/// Most reasons kept per line of a partner's answer.
pub const MAX_REASONS_PER_LINE: usize = 8;

/// A partner's text as it is stored: cut to `MAX_PARTNER_TEXT` characters
/// on a character boundary (a 100 KB error body is not kept whole).
fn partner_text(s: &str) -> String {
    truncate_text(s, MAX_PARTNER_TEXT)
}

fn bounded_reason(r: Reason) -> Reason {
    Reason {
        code: r.code,
        message: partner_text(&r.message),
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
                            let n = r.message.chars().count();
                            if n > budget {
                                r.message = truncate_text(&r.message, budget.max(1));
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
                    id: truncate_text(&p.id, MAX_ID_LEN),
                    version: p.version,
                    name: truncate_text(&p.name, MAX_TEXT_LEN),
                }),
                partner_reference: truncate_text(&partner_reference, MAX_ID_LEN),
                consumption,
            }
        }
        Outcome::Rejected(r) => Outcome::Rejected(bounded_reason(r)),
    }
}

fn key_digest(parts: &[&str]) -> String {
    let joined = parts.join("\u{1f}");
    hash(joined.as_bytes())[..32].to_string()
}

/// The partner idempotency key of a claim's adjudication: derived from
/// (scheme, claim id), so it is the same for every resend and retry.
pub fn adjudication_key(scheme_id: &str, claim_id: &str) -> String {
    format!("adj-{}", key_digest(&[scheme_id, claim_id]))
}

/// The partner idempotency key of a claim's cancel.
pub fn cancel_key(scheme_id: &str, claim_id: &str) -> String {
    format!("cxl-{}", key_digest(&[scheme_id, claim_id]))
}

impl Broker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        schemes: Vec<Scheme>,
        partners: Vec<Partner>,
        operators: Vec<String>,
        retry: RetryConfig,
        limits: &crate::config::LimitsConfig,
        audit: AuditSink,
        failpoint: Option<Failpoint>,
    ) -> Self {
        let directory = crate::identity::Directory {
            schemes: schemes.iter().map(|s| s.id.clone()).collect(),
            parents: schemes
                .iter()
                .filter_map(|s| s.parent.clone().map(|p| (s.id.clone(), p)))
                .collect(),
            mutuelles: partners.iter().map(|p| p.id.clone()).collect(),
            operators: operators.into_iter().collect(),
        };
        let max_deadline = partners
            .iter()
            .map(|p| p.deadline.as_millis() as i64)
            .max()
            .unwrap_or(2000);
        Broker {
            store,
            directory: Arc::new(directory),
            admission: Admission::new(limits),
            request_timeout: Duration::from_millis(limits.request_timeout_ms),
            schemes: schemes.into_iter().map(|s| (s.id.clone(), s)).collect(),
            down: partners
                .iter()
                .map(|p| (p.id.clone(), Default::default()))
                .collect(),
            partners: partners.into_iter().map(|p| (p.id.clone(), p)).collect(),
            retry,
            changes: watch::channel(0).0,
            audit,
            failpoint,
            worker_lease_ms: 2 * max_deadline + LEASE_GRACE_MS,
        }
    }

    /// Hands a claim (or a cancel) to the retry worker: due after the
    /// back-off of its attempts, with why it waits.
    async fn defer_after(
        &self,
        scheme_id: &str,
        claim_id: &str,
        attempts: u32,
        why: &str,
    ) -> Result<ClaimRecord, ServiceError> {
        let now = now_ms();
        let t = self
            .store
            .defer(
                scheme_id,
                claim_id,
                now + self.backoff_ms(attempts),
                why,
                now,
            )
            .await?;
        self.notify();
        Ok(t.into_record())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Who may call.
    pub fn directory(&self) -> &Arc<crate::identity::Directory> {
        &self.directory
    }

    /// A place for a call of `caller` (its identity) in `pool`, or
    /// RESOURCE_EXHAUSTED now: excess load is shed, never queued without
    /// bound (see [`crate::admission`]).
    pub fn admit(&self, caller: &str, pool: Pool) -> Result<Permit, ServiceError> {
        self.admission.admit(caller, pool)
    }

    /// The server's limit on one call (`[limits] request_timeout_ms`).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    pub fn partners(&self) -> impl Iterator<Item = &Partner> {
        self.partners.values()
    }

    pub fn scheme(&self, id: &str) -> Result<&Scheme, ServiceError> {
        self.schemes
            .get(id)
            .ok_or_else(|| ServiceError::invalid("scheme_id", format!("unknown scheme {id:?}")))
    }

    fn check_currency(&self, scheme: &Scheme, currency: &str) -> Result<(), ServiceError> {
        if currency != scheme.currency {
            return Err(ServiceError::invalid(
                "currency",
                format!("must be {} for scheme {}", scheme.currency, scheme.id),
            ));
        }
        Ok(())
    }

    fn notify(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn backoff_ms(&self, attempts: u32) -> i64 {
        let exp = 1u64 << attempts.min(20);
        self.retry
            .base_ms
            .saturating_mul(exp)
            .min(self.retry.max_ms) as i64
    }

    async fn audit_out(
        &self,
        partner: &str,
        method: &str,
        subject: &str,
        key: &str,
        outcome: &str,
    ) {
        self.audit
            .record(AuditEntry {
                at_ms: now_ms(),
                direction: Direction::Out,
                party: format!("mutuelle:{partner}"),
                method: method.to_string(),
                subject: subject.to_string(),
                request_hash: hash(key.as_bytes()),
                outcome: outcome.to_string(),
            })
            .await;
    }

    /// A partner's call failed transiently: it is (or may be) down.
    fn failed(&self, partner: &str) {
        if let Some(d) = self.down.get(partner) {
            d.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A partner answered. If it was down, the claims and cancels waiting
    /// for it are made due now rather than at the end of their back-off
    /// (up to `retry.max_ms`): a mutuelle back after days offline gets its
    /// backlog at once, and the retry worker drains it.
    async fn answered(&self, partner: &str) {
        let Some(d) = self.down.get(partner) else {
            return;
        };
        if !d.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        match self
            .store
            .expedite(partner, now_ms(), self.worker_lease_ms)
            .await
        {
            Ok(n) => {
                tracing::info!(
                    partner,
                    claims = n,
                    "mutuelle answers again; its waiting claims are due now"
                );
                self.notify();
            }
            Err(e) => {
                // Not lost: the claims stay due at the end of their back-off.
                d.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(partner, error = %e, "cannot expedite the backlog");
            }
        }
    }

    /// Which mutuelle covers the beneficiary, and the member number there.
    /// `None`: no mutuelle known to passerelle covers them.
    async fn route(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        date: Date,
        mutuelle_id: Option<&str>,
        member_number: Option<&str>,
    ) -> Result<Option<(String, String)>, ServiceError> {
        if let Some(mid) = mutuelle_id {
            let Some(partner) = self.partners.get(mid) else {
                return Err(ServiceError::invalid(
                    "mutuelle_id",
                    format!("unknown mutuelle {mid:?}"),
                ));
            };
            let member = match member_number {
                Some(n) => self
                    .store
                    .get_member(mid, n)
                    .await?
                    .filter(|m| m.scheme_id == scheme_id && m.beneficiary_id == beneficiary_id),
                None => self
                    .store
                    .find_members(scheme_id, beneficiary_id)
                    .await?
                    .into_iter()
                    .find(|m| m.mutuelle_id == mid),
            };
            return Ok(match (member, partner.kind) {
                (Some(m), _) => Some((mid.to_string(), m.member_number)),
                // The broker adjudicates for rules partners: it must know the member.
                (None, AdapterKind::Rules) => None,
                // A remote partner knows its own members.
                (None, _) => Some((
                    mid.to_string(),
                    member_number.unwrap_or_default().to_string(),
                )),
            });
        }
        let members = self.store.find_members(scheme_id, beneficiary_id).await?;
        let known: Vec<&Member> = members
            .iter()
            .filter(|m| self.partners.contains_key(&m.mutuelle_id))
            .collect();
        Ok(choose_member(&known, date)?.map(|m| (m.mutuelle_id.clone(), m.member_number.clone())))
    }

    /// Every product a member names must be declared, for a mutuelle the
    /// broker adjudicates for (adapter `rules`): a typo would otherwise be
    /// stored and eligibility answer NO_PRODUCT. A mutuelle with its own
    /// system owns its product ids, passed through as they are.
    async fn check_products(
        &self,
        mutuelle_id: &str,
        members: &[Member],
    ) -> Result<(), ServiceError> {
        if self.partners.get(mutuelle_id).map(|p| p.kind) != Some(AdapterKind::Rules) {
            return Ok(());
        }
        let declared: std::collections::HashSet<String> = self
            .store
            .list_products(mutuelle_id)
            .await?
            .into_iter()
            .map(|(p, _)| p.id)
            .collect();
        let mut v = Vec::new();
        for (i, m) in members.iter().enumerate() {
            for (j, p) in m.products.iter().enumerate() {
                if !declared.contains(&p.product_id) {
                    v.push(FieldViolation::new(
                        format!("members[{i}].products[{j}].product_id"),
                        format!(
                            "unknown product {:?} for mutuelle {mutuelle_id}",
                            p.product_id
                        ),
                    ));
                }
            }
        }
        if v.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Invalid(v))
        }
    }

    /// Creates or replaces members of one mutuelle (UpsertMembers): products
    /// checked, then the coverage rule in the store (see
    /// [`crate::store::coverage_overlaps`]).
    pub async fn upsert_members(
        &self,
        mutuelle_id: &str,
        members: Vec<Member>,
    ) -> Result<usize, ServiceError> {
        self.check_products(mutuelle_id, &members).await?;
        self.store.upsert_members(&members, now_ms()).await?;
        Ok(members.len())
    }

    /// Applies (or, dry, computes) a roster snapshot (ImportRoster), with the
    /// same checks as [`Broker::upsert_members`].
    pub async fn import_roster(&self, import: RosterImport) -> Result<RosterDiff, ServiceError> {
        self.check_products(&import.mutuelle_id, &import.members)
            .await?;
        Ok(self.store.import_roster(import, now_ms()).await?)
    }

    /// Beneficiaries declared by two mutuelles on the same dates.
    pub async fn coverage_conflicts(
        &self,
        scheme_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CoverageConflict>, ServiceError> {
        if let Some(s) = scheme_id {
            self.scheme(s)?;
        }
        Ok(self.store.coverage_conflicts(scheme_id, limit).await?)
    }

    /// Resolves a beneficiary's coverage conflict in favour of `keep`: the
    /// other mutuelles' overlapping periods are ended or removed.
    pub async fn resolve_coverage(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        keep: &str,
        from: Option<Date>,
    ) -> Result<Vec<Member>, ServiceError> {
        self.scheme(scheme_id)?;
        if !self.partners.contains_key(keep) {
            return Err(ServiceError::invalid(
                "keep_mutuelle_id",
                format!("unknown mutuelle {keep:?}"),
            ));
        }
        let changed = self
            .store
            .resolve_coverage(scheme_id, beneficiary_id, keep, from, now_ms())
            .await?;
        for m in &changed {
            tracing::info!(
                scheme = scheme_id,
                beneficiary = %mask(beneficiary_id),
                kept = keep,
                mutuelle = %m.mutuelle_id,
                member = %m.member_number,
                "coverage conflict resolved: membership end-dated"
            );
        }
        Ok(changed)
    }

    fn partner(&self, id: &str) -> Result<&Partner, ServiceError> {
        self.partners.get(id).ok_or_else(|| {
            ServiceError::PartnerUnavailable(format!("mutuelle {id} is not configured"))
        })
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
        let Some((mid, member_number)) = route else {
            return Ok((
                String::new(),
                EligibilityAnswer::not_covered(Reason::new(
                    ReasonCode::UnknownMember,
                    "no mutuelle known to passerelle covers this beneficiary",
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
                    &now_ms().to_string(),
                    &next_nonce()
                ])
            ),
            scheme_id: q.scheme_id,
            beneficiary_id: q.beneficiary_id,
            member_number: Some(member_number).filter(|n| !n.is_empty()),
            date_of_care: q.date_of_care,
            currency: q.currency,
            lines: q.lines,
            diagnoses: q.diagnoses,
        };
        let Some(_slot) = partner.slots.try_take() else {
            return Err(ServiceError::PartnerUnavailable(busy(&mid)));
        };
        let res = with_deadline(partner.deadline, partner.adapter.eligibility(&query)).await;
        // The outbound row records a message to a partner's system; a rules
        // partner is adjudicated in this process and no message leaves (the
        // inbound row already records the call).
        if partner.kind != AdapterKind::Rules {
            let subject = format!("{}/eligibility", query.scheme_id);
            let outcome = match &res {
                Ok(_) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            self.audit_out(
                &mid,
                "CheckComplementaryEligibility",
                &subject,
                &query.idempotency_key,
                &outcome,
            )
            .await;
        }
        match &res {
            Err(e) if e.is_transient() => self.failed(&mid),
            _ => self.answered(&mid).await,
        }
        let mut answer = match res {
            Ok(a) => a,
            Err(e) if e.is_transient() => {
                return Err(ServiceError::PartnerUnavailable(format!(
                    "mutuelle {mid}: {e}"
                )));
            }
            Err(AdapterError::Rejected(r)) => EligibilityAnswer::not_covered(r),
            Err(e) => {
                return Err(ServiceError::PartnerAnswerInvalid(format!(
                    "mutuelle {mid}: {e}"
                )));
            }
        };
        if !query.lines.is_empty() && !answer.lines.is_empty() {
            answer.lines = check_answer(&query.lines, std::mem::take(&mut answer.lines))
                .map_err(|m| ServiceError::PartnerAnswerInvalid(format!("mutuelle {mid}: {m}")))?;
        }
        Ok((mid, answer))
    }

    /// Coordinates a claim: see the module documentation.
    pub async fn coordinate(&self, claim: Claim) -> Result<ClaimRecord, ServiceError> {
        let scheme = self.scheme(&claim.scheme_id)?;
        self.check_currency(scheme, &claim.currency)?;
        let request_hash = claim.canonical_hash();
        let route = self
            .route(
                &claim.scheme_id,
                &claim.beneficiary_id,
                claim.date_of_care,
                claim.mutuelle_id.as_deref(),
                claim.member_number.as_deref(),
            )
            .await?;
        let Some((mid, member_number)) = route else {
            // A resend of a claim stored before the roster changed still gets
            // its stored answer.
            if let Some(rec) = self
                .store
                .get_claim(&claim.scheme_id, &claim.claim_id)
                .await?
            {
                return self.resend(rec, &request_hash).await;
            }
            return Err(ServiceError::UnknownMember(format!(
                "beneficiary {} is not a member of any mutuelle known to passerelle",
                mask(&claim.beneficiary_id)
            )));
        };
        let deadline = self.partner(&mid)?.deadline;
        let now = now_ms();
        let new = NewClaim {
            adjudication_key: adjudication_key(&claim.scheme_id, &claim.claim_id),
            claim,
            request_hash: request_hash.clone(),
            mutuelle_id: mid,
            member_number,
            lease_until_ms: now + 2 * deadline.as_millis() as i64 + LEASE_GRACE_MS,
            now_ms: now,
        };
        match self.store.begin_claim(new).await? {
            Begin::Created(rec) => {
                self.notify();
                self.process(rec).await
            }
            Begin::DuplicateInvoice(rec) => {
                self.notify();
                Ok(rec)
            }
            Begin::Existing(rec) => self.await_settled(rec, deadline).await,
            Begin::Modified(rec) => Err(ServiceError::ModifiedRequest(rec.claim.claim_id)),
        }
    }

    async fn resend(
        &self,
        rec: ClaimRecord,
        request_hash: &str,
    ) -> Result<ClaimRecord, ServiceError> {
        if rec.request_hash != request_hash {
            return Err(ServiceError::ModifiedRequest(rec.claim.claim_id));
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
    async fn process(&self, rec: ClaimRecord) -> Result<ClaimRecord, ServiceError> {
        let (scheme_id, claim_id) = (rec.claim.scheme_id.clone(), rec.claim.claim_id.clone());
        let subject = format!("{scheme_id}/{claim_id}");
        let Some(partner) = self.partners.get(&rec.mutuelle_id) else {
            return self
                .defer_after(
                    &scheme_id,
                    &claim_id,
                    rec.attempts,
                    "mutuelle not configured",
                )
                .await;
        };
        // A place among the calls waiting on this mutuelle; when all are
        // taken (it hangs, or is flooded) the claim stays stored and the
        // retry worker takes it later, without holding a place meanwhile.
        let Some(_slot) = partner.slots.try_take() else {
            return self
                .defer_after(&scheme_id, &claim_id, rec.attempts, &busy(&partner.id))
                .await;
        };
        for _ in 0..MAX_CEILING_RETRIES {
            let req = AdjudicationRequest {
                idempotency_key: &rec.adjudication_key,
                claim: &rec.claim,
                member_number: &rec.member_number,
            };
            let res = with_deadline(partner.deadline, partner.adapter.adjudicate(req)).await;
            let outcome_text = match &res {
                Ok(_) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            self.audit_out(
                &partner.id,
                "AdjudicateRemainder",
                &subject,
                &rec.adjudication_key,
                &outcome_text,
            )
            .await;
            match &res {
                Err(e) if e.is_transient() => self.failed(&partner.id),
                _ => self.answered(&partner.id).await,
            }
            let outcome = match res {
                Ok(answer) => {
                    if self.failpoint == Some(Failpoint::AfterPartnerAnswer) {
                        eprintln!("failpoint after_partner_answer reached");
                        std::future::pending::<()>().await;
                    }
                    match check_answer(&rec.claim.lines, answer.lines) {
                        Ok(shares) => Outcome::Coordinated {
                            shares,
                            product: answer.product,
                            partner_reference: answer.partner_reference,
                            consumption: answer.consumption,
                        },
                        Err(msg) => {
                            // The detail (with amounts) is in the claim's rejection
                            // reason, not in the logs.
                            tracing::warn!(partner = %partner.id, claim = %subject, "partner answer refused");
                            tracing::debug!(partner = %partner.id, claim = %subject, %msg, "partner answer refused");
                            Outcome::Rejected(Reason::new(ReasonCode::PartnerAnswerInvalid, msg))
                        }
                    }
                }
                Err(e) if e.is_transient() => {
                    return self
                        .defer_after(
                            &scheme_id,
                            &claim_id,
                            rec.attempts,
                            &partner_text(&e.to_string()),
                        )
                        .await;
                }
                Err(e) => Outcome::Rejected(e.final_reason()),
            };
            match self
                .store
                .complete_claim(&scheme_id, &claim_id, bounded_outcome(outcome), now_ms())
                .await
            {
                Ok(t) => {
                    self.notify();
                    return Ok(t.into_record());
                }
                Err(StoreError::CeilingConflict(k)) => {
                    tracing::debug!(claim = %subject, ceiling = %k, "ceiling moved; recomputing");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.defer_after(&scheme_id, &claim_id, 0, "ceiling contention")
            .await
    }

    pub async fn get(&self, scheme_id: &str, claim_id: &str) -> Result<ClaimRecord, ServiceError> {
        self.scheme(scheme_id)?;
        self.store
            .get_claim(scheme_id, claim_id)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!("claim {claim_id} of scheme {scheme_id}"))
            })
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
        let now = now_ms();
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
        self.notify();
        let rec = t.into_record();
        if rec.state == ClaimState::CancelPending {
            return self.process_cancel(rec).await;
        }
        Ok(rec)
    }

    async fn process_cancel(&self, rec: ClaimRecord) -> Result<ClaimRecord, ServiceError> {
        let (scheme_id, claim_id) = (rec.claim.scheme_id.as_str(), rec.claim.claim_id.as_str());
        let key = rec
            .cancel_key
            .clone()
            .unwrap_or_else(|| cancel_key(scheme_id, claim_id));
        let slot = self
            .partners
            .get(&rec.mutuelle_id)
            .map(|p| p.slots.try_take());
        if let Some(None) = slot {
            return self
                .defer_after(scheme_id, claim_id, rec.attempts, &busy(&rec.mutuelle_id))
                .await;
        }
        let res = match self.partners.get(&rec.mutuelle_id) {
            None => Err(AdapterError::Unavailable("mutuelle not configured".into())),
            Some(p) => {
                let req = CancelRequest {
                    idempotency_key: &key,
                    adjudication_key: &rec.adjudication_key,
                    scheme_id,
                    claim_id,
                    reason: &rec.cancel_reason,
                };
                with_deadline(p.deadline, p.adapter.cancel(req)).await
            }
        };
        let outcome = match &res {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        self.audit_out(
            &rec.mutuelle_id,
            "CancelAdjudication",
            &format!("{scheme_id}/{claim_id}"),
            &key,
            &outcome,
        )
        .await;
        match &res {
            Err(e) if e.is_transient() => self.failed(&rec.mutuelle_id),
            _ => self.answered(&rec.mutuelle_id).await,
        }
        match res {
            Ok(()) => {
                let t = self
                    .store
                    .complete_cancel(scheme_id, claim_id, now_ms())
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
        self.get(scheme_id, claim_id).await?;
        let Some(rec) = self
            .store
            .lease_now(scheme_id, claim_id, now_ms(), self.worker_lease_ms)
            .await?
        else {
            return Err(ServiceError::Refused(format!(
                "claim {claim_id} is not waiting on its mutuelle"
            )));
        };
        match rec.state {
            ClaimState::CancelPending => self.process_cancel(rec).await,
            _ => self.process(rec).await,
        }
    }

    /// The configured currency of a scheme.
    pub fn currency_of(&self, scheme_id: &str) -> String {
        self.schemes
            .get(scheme_id)
            .map(|s| s.currency.clone())
            .unwrap_or_default()
    }

    /// One pass of the retry worker: leases due claims and resumes them.
    /// Returns how many it took.
    ///
    /// With `[retry] max_per_second`, the claims of a pass start one every
    /// `1 / max_per_second`, not all at once: a backlog's batch started
    /// together took both cores for its length, and eligibility checks
    /// arriving meanwhile waited behind it (p99 several times its idle value
    /// whatever the pace). When `stop` turns true the claims not started yet
    /// are left leased: they are resumed once their lease ends (after a
    /// restart, or by another replica); those started are finished.
    pub async fn retry_due(
        self: &Arc<Self>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<usize, StoreError> {
        #[allow(clippy::disallowed_types, reason = "a pacing interval, not money")]
        let spacing = (self.retry.max_per_second > 0)
            .then(|| Duration::from_secs_f64(1.0 / f64::from(self.retry.max_per_second)));
        // The lease covers each claim's wait for its turn as well as its
        // processing, so that no other worker takes it meanwhile.
        let spread = spacing.map_or(0, |s| {
            (s * self.retry.batch.saturating_sub(1)).as_millis() as i64 + 1
        });
        let due = self
            .store
            .lease_due(now_ms(), self.worker_lease_ms + spread, self.retry.batch)
            .await?;
        let n = due.len();
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for (i, rec) in due.into_iter().enumerate() {
            if let Some(spacing) = spacing
                && i > 0
            {
                tokio::select! {
                    _ = tokio::time::sleep_until(start + spacing * i as u32) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                let subject = format!("{}/{}", rec.claim.scheme_id, rec.claim.claim_id);
                let r = match rec.state {
                    ClaimState::CancelPending => me.process_cancel(rec).await,
                    s if s.awaiting_partner() => me.process(rec).await,
                    _ => return,
                };
                if let Err(e) = r {
                    tracing::warn!(claim = %subject, error = %e, "retry failed");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(n)
    }

    /// The retention job: prunes the audit log every `interval_s`; with
    /// several brokers, whichever takes the store's lock does it.
    pub async fn run_retention(
        self: Arc<Self>,
        cfg: crate::config::RetentionConfig,
        mut shutdown: watch::Receiver<bool>,
    ) {
        if cfg.audit_days == 0 {
            return;
        }
        let every = Duration::from_secs(cfg.interval_s);
        loop {
            let cutoff = now_ms() - cfg.audit_days as i64 * 86_400_000;
            match self.store.prune_audit(cutoff).await {
                Ok(Some(n)) if n > 0 => tracing::info!(rows = n, "audit log pruned"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "audit pruning failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// The retry worker: runs until `shutdown` turns true.
    pub async fn run_worker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.retry.poll_ms);
        loop {
            let round = tokio::time::Instant::now();
            match self.retry_due(shutdown.clone()).await {
                Ok(n) if n > 0 => {
                    // Pace a backlog: n claims take at least n / max_per_second.
                    if self.retry.max_per_second > 0 {
                        #[allow(clippy::disallowed_types, reason = "a pacing interval, not money")]
                        let pace = Duration::from_secs_f64(
                            n as f64 / f64::from(self.retry.max_per_second),
                        );
                        tokio::select! {
                            _ = tokio::time::sleep_until(round + pace) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retry worker cannot read the store"),
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// Routing without a card, from the roster: the one mutuelle whose
/// membership is in force on the date; else, when every record is of one
/// mutuelle, that one (it answers why it does not cover: ended, not yet
/// started). Never the order of ids: two mutuelles in force on one date (a
/// conflict stored before the coverage rule) is refused until an operator
/// resolves it; records of several mutuelles none in force route nowhere.
fn choose_member<'a>(known: &[&'a Member], date: Date) -> Result<Option<&'a Member>, ServiceError> {
    let in_force: Vec<&Member> = known
        .iter()
        .copied()
        .filter(|m| m.product_on(date).is_some())
        .collect();
    let mut mutuelles: Vec<&str> = in_force.iter().map(|m| m.mutuelle_id.as_str()).collect();
    mutuelles.sort_unstable();
    mutuelles.dedup();
    match mutuelles.len() {
        0 => {}
        1 => {
            // One mutuelle: if it holds two records in force (renumbered), the
            // latest enrolment.
            return Ok(in_force
                .into_iter()
                .max_by_key(|m| (m.product_on(date).map(|p| p.start), m.member_number.clone())));
        }
        _ => {
            return Err(ServiceError::CoverageConflict(format!(
                "more than one mutuelle declares this beneficiary on {}: an operator must resolve it (passerelle admin coverage-conflicts)",
                passerelle_domain::date::format(date)
            )));
        }
    }
    let mut all: Vec<&str> = known.iter().map(|m| m.mutuelle_id.as_str()).collect();
    all.sort_unstable();
    all.dedup();
    Ok(match all.len() {
        1 => known.iter().copied().max_by_key(|m| {
            (
                m.products.iter().map(|p| p.start).max(),
                m.member_number.clone(),
            )
        }),
        _ => None,
    })
}

fn next_nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

/// Masks an identifier for logs: keeps the last 3 characters.
pub fn mask(id: &str) -> String {
    let n = id.chars().count();
    if n <= 3 {
        return "***".into();
    }
    let tail: String = id.chars().skip(n - 3).collect();
    format!("***{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{d, sample_member};

    /// Routing without a card never depends on the order of ids.
    #[test]
    fn routing_is_the_one_mutuelle_in_force() {
        let mut a = sample_member("MUT-A", "A-1", "TG-1");
        a.products[0].end = Some(d("2025-12-31"));
        let mut b = sample_member("MUT-B", "B-1", "TG-1");
        b.products[0].start = d("2026-01-01");
        let on = |ms: &[&Member], day: &str| {
            choose_member(ms, d(day)).map(|m| m.map(|m| m.mutuelle_id.clone()))
        };
        // Whatever the order the store lists them in.
        for ms in [[&a, &b], [&b, &a]] {
            assert_eq!(on(&ms, "2025-06-01").unwrap().as_deref(), Some("MUT-A"));
            assert_eq!(on(&ms, "2026-06-01").unwrap().as_deref(), Some("MUT-B"));
            // Before either: records of two mutuelles, none in force.
            assert_eq!(on(&ms, "2024-06-01").unwrap(), None);
        }
        // One mutuelle's records, none in force: it answers why.
        assert_eq!(on(&[&a], "2026-06-01").unwrap().as_deref(), Some("MUT-A"));
        // Two in force on one date (stored before the coverage rule): refused.
        let mut c = sample_member("MUT-C", "C-1", "TG-1");
        c.products[0].start = d("2025-06-01");
        assert!(matches!(
            on(&[&a, &c], "2025-07-01"),
            Err(ServiceError::CoverageConflict(_))
        ));
        assert!(matches!(
            on(&[&c, &a], "2025-07-01"),
            Err(ServiceError::CoverageConflict(_))
        ));
    }
}
