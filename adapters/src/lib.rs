//! Per-partner adapters: how passerelle reaches one mutuelle.
//!
//! One trait, [`Adapter`]; one explicit registry, [`registry`]: the tagged
//! enum [`AdapterConfig`] and the match that builds each adapter. Every
//! adapter module has the same inner shape: a config struct
//! (`deny_unknown_fields`, a doc comment per field) with its
//! [`registry::PartnerSettings`] impl, the translation to and from the
//! partner's format, the transport, and its tests.
//!
//! Test support (the conformance kit [`kit`], the template adapter and its
//! simulated partner) is compiled only for tests and with the `test-util`
//! feature. The simulated partners ([`sim`], [`sim_http`]) stay in every
//! build: `passerelle dev` runs them.
//!
//! Adapters do not store anything. The broker stores the claim before it
//! calls an adapter, checks the answer (see
//! [`passerelle_domain::validate::check_answer`]) and stores the result.
//!
//! Adding an adapter: see docs/adapters.md ("Adding an adapter").

pub mod codes;
pub mod decimal;
pub mod fhir;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod grpc;
pub mod http;
#[cfg(any(test, feature = "test-util"))]
pub mod kit;
pub mod registry;
pub mod rules;
pub mod sim;
pub mod sim_http;
#[cfg(any(test, feature = "test-util"))]
pub mod template;
pub mod trace;
pub mod xml;

pub use registry::{AdapterConfig, AdapterKind};

use async_trait::async_trait;
use passerelle_domain::engine::CeilingView;
use passerelle_domain::{
    CeilingKey, CeilingUse, Claim, ClaimLine, Date, LineShare, Member, Product, ProductRef, Reason,
    ReasonCode, Usage,
};

/// A complementary eligibility question, as the broker puts it to a partner.
#[derive(Clone, Debug)]
pub struct EligibilityQuery {
    pub idempotency_key: String,
    pub scheme_id: String,
    pub beneficiary_id: String,
    /// From the roster or the card, when known.
    pub member_number: Option<String>,
    /// The roster record the broker read to route this call, when it
    /// knows the member: a rules partner uses it rather than read it again
    /// (remote partners know their own members).
    pub member: Option<Member>,
    pub date_of_care: Date,
    pub currency: String,
    /// Planned lines, for a non-binding estimate.
    pub lines: Vec<ClaimLine>,
    pub diagnoses: Vec<String>,
}

/// A partner's eligibility answer.
#[derive(Clone, Debug, Default)]
pub struct EligibilityAnswer {
    pub covered: bool,
    pub reason: Option<Reason>,
    pub member_number: String,
    pub household_id: String,
    pub product: Option<ProductRef>,
    pub paid_until: Option<Date>,
    pub ceilings: Vec<CeilingView>,
    /// What the patient bears beside the ceilings, or the mutuelle
    /// excludes (FHIR partners).
    pub cost_shares: Vec<passerelle_domain::engine::CostShare>,
    /// One estimate per planned line.
    pub lines: Vec<LineShare>,
}

impl EligibilityAnswer {
    pub fn not_covered(reason: Reason) -> Self {
        EligibilityAnswer {
            covered: false,
            reason: Some(reason),
            ..Default::default()
        }
    }
}

/// A binding adjudication of a claim's remainder.
#[derive(Clone, Copy, Debug)]
pub struct AdjudicationRequest<'a> {
    /// Issued by the broker; the same for every resend of this claim.
    pub idempotency_key: &'a str,
    pub claim: &'a Claim,
    /// The member number at the partner.
    pub member_number: &'a str,
    /// The roster record the broker read to route this claim, when it has
    /// it at hand (as [`EligibilityQuery::member`]).
    pub member: Option<&'a Member>,
    /// The prior authorization the claim is paid against, when it quotes
    /// one in force.
    pub prior: Option<&'a PriorTerms>,
    /// For a partner whose ceilings the broker keeps
    /// ([`Adapter::adjudicates_from_store`]), a claim quoting no
    /// authorization: compute it as if no ceiling had been used, without
    /// reading them, unless a limit cuts a line or meets a line paid
    /// nothing ([`Adjudication::limited`]: then they are read). The broker
    /// asks so only where the store then checks that each ceiling consumed
    /// has room ([`Usage::has_room_for`]) and refuses the outcome
    /// otherwise; it then asks again without it. The outcome stored is the
    /// one computed on the real usage either way (the property test
    /// `computed_on_no_usage_is_the_same_where_there_is_room`,
    /// domain/tests/engine.rs). Other adapters ignore it.
    ///
    /// [`Usage::has_room_for`]: passerelle_domain::engine::Usage::has_room_for
    /// [`Adjudication::limited`]: passerelle_domain::engine::Adjudication::limited
    pub unread_ceilings: bool,
}

/// A prior authorization as a claim paid against it carries it to the
/// partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorTerms {
    /// The partner's reference (its preAuthRef); the broker's own for a
    /// rules partner.
    pub partner_reference: String,
    /// What was authorized, line by line, and the tolerance.
    pub granted: passerelle_domain::Granted,
    /// What it holds on the ceilings the broker keeps (rules partners):
    /// the claim may take it.
    pub hold: Vec<CeilingUse>,
    /// The stay it opened, which a claim naming none counts against.
    pub stay_id: Option<String>,
    /// Billed again by a correction of a claim paid against it and since
    /// cancelled: its hold went with that claim, and the commitment is no
    /// floor (what the ceilings hold now is paid).
    pub rebilled: bool,
}

/// A prior authorization asked of a partner: planned care, in the shape
/// of a claim (`claim_id` is the scheme's authorization id). Binding:
/// the partner commits to M per line and reserves it.
#[derive(Clone, Copy, Debug)]
pub struct PreAuthorizationRequest<'a> {
    /// Issued by the broker; the same for every resend of this request.
    pub idempotency_key: &'a str,
    pub planned: &'a Claim,
    pub member_number: &'a str,
    /// For an extension: the commitment it replaces (its hold is
    /// released as the new one is taken).
    pub replaces: Option<&'a PriorTerms>,
}

/// What a partner commits to for planned care.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Commitment {
    /// M committed per planned line.
    pub lines: Vec<LineShare>,
    /// The partner's own reference (FHIR preAuthRef); empty for a rules
    /// partner.
    pub partner_reference: String,
    /// The last date of care it covers, when the partner says.
    pub valid_until: Option<Date>,
    /// The billing tolerance in basis points, when the partner says.
    pub tolerance_bp: Option<u32>,
    pub product: Option<ProductRef>,
    /// Ceilings the broker keeps for this partner (rules adapter): what
    /// the store holds, conditionally, with the authorization.
    pub hold: Vec<CeilingUse>,
}

/// A release of a prior authorization not billed.
#[derive(Clone, Copy, Debug)]
pub struct CancelPreAuthorization<'a> {
    pub idempotency_key: &'a str,
    pub partner_reference: &'a str,
    pub scheme_id: &'a str,
    pub authorization_id: &'a str,
    pub reason: &'a str,
}

/// A partner's adjudication, before the broker checks it.
#[derive(Clone, Debug, Default)]
pub struct PartnerAdjudication {
    pub lines: Vec<LineShare>,
    pub partner_reference: String,
    pub product: Option<ProductRef>,
    /// Ceilings the broker keeps for this partner (rules adapter only); the
    /// store applies them conditionally with the claim's result.
    pub consumption: Vec<CeilingUse>,
}

/// A cancel of an earlier adjudication.
#[derive(Clone, Copy, Debug)]
pub struct CancelRequest<'a> {
    pub idempotency_key: &'a str,
    pub adjudication_key: &'a str,
    pub scheme_id: &'a str,
    pub claim_id: &'a str,
    pub reason: &'a str,
    /// The reference the partner's answer gave the adjudication, as
    /// stored; empty when it gave none, or when nothing was sent (an
    /// adapter that answered every line itself, such as openIMIS's for a
    /// claim whose every line the scheme refused).
    pub partner_reference: &'a str,
    /// The partner was asked about this adjudication and its answer was
    /// not kept (refused, `PARTNER_ANSWER_INVALID`, or come after another
    /// claim billed the same prior authorization): it may have booked the
    /// claim, though no reference of it is stored.
    pub answer_refused: bool,
}

/// Why a partner call did not give an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdapterError {
    /// The partner did not answer within its deadline: retry later, same key.
    #[error("partner missed its deadline of {0} ms")]
    Timeout(u64),
    /// The partner is unreachable or failed transiently: retry later, same key.
    #[error("partner unavailable: {0}")]
    Unavailable(String),
    /// The partner refused for good; the claim is rejected with this reason.
    #[error("partner rejected: {}", .0.message)]
    Rejected(Reason),
    /// The partner answered something that cannot be understood.
    #[error("malformed partner answer: {0}")]
    Malformed(String),
    /// The partner answered, but has not decided yet (a FHIR server's
    /// `queued`, an openIMIS claim not valuated yet, which its staff
    /// valuate later): retry later, same key. The partner is up: its
    /// health and circuit count an answer, not a failure.
    #[error("partner has not decided yet: {0}")]
    Pending(String),
    /// The partner cannot do this at all (openIMIS cannot cancel a claim
    /// over FHIR): never retried; the message says what a person must do.
    #[error("not supported by this partner: {0}")]
    Unsupported(String),
}

/// How a [`AdapterError::Pending`] begins as text (its `Display`), as a
/// claim's `last_error` keeps it: what tells a claim the partner has
/// answered "not decided yet" from one it failed to answer.
pub const PENDING_SAID: &str = "partner has not decided yet: ";

/// How openIMIS's refusal of a cancel begins and ends around the claim
/// code a person rejects in openIMIS (its [`AdapterError::Unsupported`]
/// text): what the console and the CLI say in the reader's language.
pub const OPENIMIS_NO_CANCEL: (&str, &str) = (
    "openIMIS offers no cancellation over FHIR: reject claim ",
    " in openIMIS by hand",
);

impl AdapterError {
    /// True when a later retry with the same key may succeed.
    pub fn is_transient(&self) -> bool {
        self.is_failure() || matches!(self, AdapterError::Pending(_))
    }

    /// True when the partner did not answer (unreachable, failing, past
    /// its deadline): what its health and its circuit count. A partner that
    /// answered "not decided yet" did answer.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            AdapterError::Timeout(_) | AdapterError::Unavailable(_)
        )
    }

    /// The reason to store on a claim this error ends.
    pub fn final_reason(&self) -> Reason {
        match self {
            AdapterError::Rejected(r) => r.clone(),
            AdapterError::Malformed(m) => Reason::new(ReasonCode::PartnerAnswerInvalid, m.clone()),
            other => Reason::new(ReasonCode::PartnerRejected, other.to_string()),
        }
    }
}

/// How the broker reaches one mutuelle.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// Complementary eligibility; nothing is consumed.
    async fn eligibility(&self, q: &EligibilityQuery) -> Result<EligibilityAnswer, AdapterError>;

    /// Binding adjudication of the remainder of every line. Must honour
    /// `idempotency_key`: the same key gives the same answer, once.
    async fn adjudicate(
        &self,
        req: AdjudicationRequest<'_>,
    ) -> Result<PartnerAdjudication, AdapterError>;

    /// Cancels an adjudication. Cancelling twice, or an unknown one, succeeds.
    async fn cancel(&self, req: CancelRequest<'_>) -> Result<(), AdapterError>;

    /// Whether the answer is computed by the broker itself from its own
    /// store (the rules adapter), with no system of the mutuelle keeping a
    /// state of its own. Such a claim and its outcome may then be stored
    /// in one commit: nothing outside the broker's database has to be
    /// found again after a crash (docs/ARCHITECTURE.md, "A claim's
    /// commits"). Every adapter that calls a system of the mutuelle leaves
    /// the default.
    fn adjudicates_from_store(&self) -> bool {
        false
    }

    /// Whether this partner's eligibility answer can say the member's dues
    /// (`EligibilityAnswer::paid_until`): a gRPC partner's contract has
    /// them, so its "none" is an answer. A FHIR CoverageEligibilityResponse
    /// or an XML mapping has no such field: the broker then answers the
    /// date the mutuelle's roster declared to it.
    fn says_dues(&self) -> bool {
        true
    }

    /// A prior authorization: the partner's binding commitment for planned
    /// care. Must honour `idempotency_key` as `adjudicate` does. A partner
    /// that offers none answers `Unsupported` (the default).
    async fn preauthorize(
        &self,
        _req: PreAuthorizationRequest<'_>,
    ) -> Result<Commitment, AdapterError> {
        Err(AdapterError::Unsupported(
            "this mutuelle's system offers no prior authorization".into(),
        ))
    }

    /// Releases a prior authorization not billed; an unknown or released
    /// one succeeds.
    async fn cancel_preauthorization(
        &self,
        _req: CancelPreAuthorization<'_>,
    ) -> Result<(), AdapterError> {
        Err(AdapterError::Unsupported(
            "this mutuelle's system offers no prior authorization".into(),
        ))
    }
}

/// What the rules adapter reads from the broker's store. Implemented by the
/// broker's storage; kept here so that adapters never depend on the broker.
#[async_trait]
pub trait RulesData: Send + Sync + 'static {
    /// The member of `mutuelle_id` with this member number, or else with this
    /// scheme beneficiary id.
    async fn find_member(
        &self,
        mutuelle_id: &str,
        scheme_id: &str,
        beneficiary_id: &str,
        member_number: Option<&str>,
    ) -> Result<Option<Member>, String>;

    /// The version of a product in force on a date.
    async fn product_on(
        &self,
        mutuelle_id: &str,
        product_id: &str,
        date: Date,
    ) -> Result<Option<Product>, String>;

    /// Current usage of these ceilings of `mutuelle_id`.
    async fn usage(&self, mutuelle_id: &str, keys: &[CeilingKey]) -> Result<Usage, String>;
}
