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
//! A mutuelle whose rules the broker applies itself has no system to ask
//! under a key: its new claim is adjudicated first and stored with its
//! outcome in one commit (`begin_coordinated`, docs/ARCHITECTURE.md, "A
//! claim's commits"); a rejection or any exception takes the steps above.
//!
//! Cancels follow the same pattern with the claim's cancel key.
//!
//! The service is split by concern, one module each; the gRPC edge
//! (`crate::api`) only converts and maps errors, and every call reaches the
//! store through here:
//! - [`claims`]: eligibility, coordination, cancel, the claim lifecycle;
//! - [`routing`]: which mutuelle covers a beneficiary;
//! - [`partner`]: the one way a partner is called ([`PartnerClient`]);
//! - [`roster`], [`products`], [`settlement`], [`admin`]: what the other
//!   services ask of the store, with the checks that are not the edge's;
//! - [`worker`]: the retry worker and the retention job;
//! - [`clock`]: the time the service reads (paused under tests).

pub mod admin;
pub mod approvals;
pub mod authorizations;
pub mod claims;
pub mod clock;
#[cfg(feature = "failpoints")]
mod failpoint;
pub mod partner;
pub mod products;
pub mod roster;
pub mod routing;
pub mod settlement;
#[cfg(test)]
pub(crate) mod testing;
pub mod users;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use passerelle_domain::validate::FieldViolation;
use tokio::sync::watch;

use crate::admission::{Admission, Permit, Pool};
use crate::audit::{AuditSink, hash};
use crate::config::{LimitsConfig, RetryConfig};
use crate::store::{Store, StoreError};

pub use clock::Clock;
pub use partner::{Partner, PartnerClient};
pub use roster::RosterSnapshot;

/// Extra time a caller holds a claim beyond twice its partner's deadline,
/// before the retry worker may take it over.
const LEASE_GRACE_MS: i64 = 1000;

/// A scheme (or delegate) allowed to call.
#[derive(Clone, Debug)]
pub struct Scheme {
    pub id: String,
    pub name: String,
    pub currency: String,
    pub parent: Option<String>,
}

/// Why a call failed; mapped to a gRPC status in `api::status`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    /// What was received before ("claim C-1", "prior authorization PA-1").
    #[error("{0} was already received with different content")]
    ModifiedRequest(String),
    /// FAILED_PRECONDITION with this ErrorInfo reason (a stable
    /// SCREAMING_SNAKE_CASE word) and message.
    #[error("{message}")]
    Precondition {
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    UnknownMember(String),
    /// UNKNOWN_MEMBER for a call whose card does not hold: `card` says how
    /// (ErrorInfo metadata `card`: `mismatch`, the member number is not the
    /// beneficiary's at the mutuelle named; `not_member`, that mutuelle
    /// does not hold the beneficiary), so that a person is told to check
    /// the card, not that no mutuelle covers the patient.
    #[error("{message}")]
    CardRefused { message: String, card: &'static str },
    #[error("{0} not found")]
    NotFound(String),
    /// A record the caller may not see, found only once it was read (a
    /// claim's parties, a proposal's mutuelle): answered exactly as a
    /// missing one, [`ServiceError::NotFound`] of `what`, so that ids
    /// cannot be probed for who holds them. `why`, the refusal, is
    /// written only to the call's audit row (`api::status::OutOfScope`).
    #[error("{what} not found")]
    OutOfScope { what: String, why: String },
    #[error("{0}")]
    PartnerUnavailable(String),
    /// The mutuelle is paused by an operator ([`Broker::unavailable`]):
    /// UNAVAILABLE as any partner not reached, with its own reason
    /// (`PARTNER_PAUSED`), so that a person is told why rather than to
    /// ask again in a few minutes.
    #[error("{0}")]
    PartnerPaused(String),
    #[error("{0}")]
    PartnerAnswerInvalid(String),
    /// A partner's commitment to a prior authorization refused, as
    /// [`ServiceError::PartnerAnswerInvalid`], with what became of the hold
    /// the partner took for it (ErrorInfo metadata `hold`).
    #[error("{message}")]
    CommitmentRefused { message: String, hold: HoldReleased },
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
    /// The change needs a second person: it was recorded as a proposal
    /// (FAILED_PRECONDITION, reason APPROVAL_REQUIRED, with the proposal's
    /// id and hash in the ErrorInfo's metadata).
    #[error(
        "approval required: proposal {id} was recorded; another person of {mutuelle_id} approves it (ApproveProposal with its id and hash {hash})"
    )]
    ApprovalRequired {
        id: i64,
        hash: String,
        mutuelle_id: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What became of the hold a partner took for a commitment the broker
/// refused ([`ServiceError::CommitmentRefused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldReleased {
    /// Released at the partner.
    Released,
    /// The partner could not be reached: the same request resent releases it.
    NotReleased,
    /// The partner refused the release: a person releases it there.
    Refused,
}

impl HoldReleased {
    /// Its word in the ErrorInfo's metadata (`hold`).
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReleased::Released => "released",
            HoldReleased::NotReleased => "not_released",
            HoldReleased::Refused => "refused",
        }
    }
}

impl ServiceError {
    /// The answer to a change recorded as a proposal.
    pub fn approval_required(p: &crate::store::approvals::Proposal) -> Self {
        ServiceError::ApprovalRequired {
            id: p.id,
            hash: p.hash.clone(),
            mutuelle_id: p.mutuelle_id.clone(),
        }
    }

    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        ServiceError::Invalid(vec![FieldViolation::new(field, description)])
    }
}

/// An eligibility question in domain form (parsed by `passerelle_proto::parse`).
pub use passerelle_domain::EligibilityInput;

/// What a broker is made of (see `server::build_broker`).
pub struct BrokerParts {
    pub store: Arc<dyn Store>,
    pub schemes: Vec<Scheme>,
    pub partners: Vec<Partner>,
    /// The operators' identities.
    pub operators: Vec<String>,
    pub retry: RetryConfig,
    pub limits: LimitsConfig,
    /// The partners' circuit breakers.
    pub breaker: crate::config::BreakerConfig,
    /// Where spans go.
    pub spans: Arc<crate::otel::Spans>,
    pub audit: AuditSink,
    /// Where the service reads the time: [`Clock::system`] but in tests.
    pub clock: Clock,
}

pub struct Broker {
    store: Arc<dyn Store>,
    directory: Arc<crate::identity::Directory>,
    admission: Admission,
    /// The server's own limit on a call (`request_timeout_ms`).
    request_timeout: Duration,
    schemes: HashMap<String, Scheme>,
    /// The partners, and the one way to call them.
    partners: PartnerClient,
    retry: RetryConfig,
    changes: watch::Sender<u64>,
    audit: AuditSink,
    clock: Clock,
    worker_lease_ms: i64,
    metrics: Arc<crate::metrics::Metrics>,
    spans: Arc<crate::otel::Spans>,
    /// Held while the partners' controls (pauses, circuits) are read from
    /// the store and applied here, and while a pause is stored and applied
    /// here: two refreshes at once (the worker's and an operator's call)
    /// could otherwise apply a read taken before a pause after one taken
    /// since, and lift the pause here until the next refresh.
    controls: tokio::sync::Mutex<()>,
    /// The mutuelles whose roster import (or dry run) runs in this broker:
    /// one at a time each ([`roster::ImportRunning`]).
    roster_imports: std::sync::Mutex<std::collections::HashSet<String>>,
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
    pub fn new(parts: BrokerParts) -> Self {
        let BrokerParts {
            store,
            schemes,
            partners,
            operators,
            retry,
            limits,
            breaker,
            spans,
            audit,
            clock,
        } = parts;
        let directory = crate::identity::Directory {
            schemes: schemes.iter().map(|s| s.id.clone()).collect(),
            parents: schemes
                .iter()
                .filter_map(|s| s.parent.clone().map(|p| (s.id.clone(), p)))
                .collect(),
            mutuelles: partners.iter().map(|p| p.id.clone()).collect(),
            operators: operators.into_iter().collect(),
        };
        let ids: Vec<String> = partners.iter().map(|p| p.id.clone()).collect();
        let metrics = Arc::new(crate::metrics::Metrics::new(audit.counters(), &ids));
        metrics.init_store(&claims::TIMED_OPERATIONS);
        let max_deadline = partners
            .iter()
            .map(|p| p.deadline.as_millis() as i64)
            .max()
            .unwrap_or(2000);
        Broker {
            store,
            directory: Arc::new(directory),
            admission: Admission::new(&limits),
            request_timeout: Duration::from_millis(limits.request_timeout_ms),
            schemes: schemes.into_iter().map(|s| (s.id.clone(), s)).collect(),
            partners: PartnerClient::new(
                partners,
                audit.clone(),
                clock,
                metrics.clone(),
                breaker,
                spans.clone(),
            ),
            retry,
            changes: watch::channel(0).0,
            audit,
            clock,
            worker_lease_ms: 2 * max_deadline + LEASE_GRACE_MS,
            metrics,
            spans,
            controls: tokio::sync::Mutex::new(()),
            roster_imports: Default::default(),
        }
    }

    /// Where spans go.
    pub fn spans(&self) -> &Arc<crate::otel::Spans> {
        &self.spans
    }

    /// The broker's metrics (served by [`crate::ops`]).
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The store, for tests, `passerelle dev`'s seeding and the benchmark;
    /// the gRPC edge never reads it (it calls the service's methods).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Where the service reads the time.
    pub fn clock(&self) -> &Clock {
        &self.clock
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
        self.partners.all()
    }

    pub fn scheme(&self, id: &str) -> Result<&Scheme, ServiceError> {
        self.schemes
            .get(id)
            .ok_or_else(|| ServiceError::invalid("scheme_id", format!("unknown scheme {id:?}")))
    }

    /// The configured currency of a scheme.
    pub fn currency_of(&self, scheme_id: &str) -> String {
        self.schemes
            .get(scheme_id)
            .map(|s| s.currency.clone())
            .unwrap_or_default()
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
