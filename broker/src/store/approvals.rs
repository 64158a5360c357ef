//! Changes that need two people (maker-checker): a product version to
//! publish, a period to close or settle. One person proposes, another
//! approves; the store keeps each proposal with who did what, and moves it
//! from state to state by conditional updates, so that a proposal is
//! approved (or rejected) once, whatever the replica. The rules (who may
//! propose or approve, what a proposal holds) live in `service::approvals`.

use async_trait::async_trait;

use super::StoreError;

/// Where a proposal is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProposalState {
    /// Waiting for a second person.
    Pending,
    /// Approved; being applied. The change's own transaction ends it
    /// (applied); one left so past [`APPLY_BOUND_MS`] (a broker stopped
    /// while applying it) is applied again by the broker.
    Approved,
    /// Approved and applied.
    Applied,
    /// Approved, but the store refused the change (the outcome says why).
    Failed,
    /// Rejected by a second person, or withdrawn by its author.
    Rejected,
    /// Not decided in time.
    Expired,
}

impl ProposalState {
    pub const ALL: [ProposalState; 6] = [
        ProposalState::Pending,
        ProposalState::Approved,
        ProposalState::Applied,
        ProposalState::Failed,
        ProposalState::Rejected,
        ProposalState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProposalState::Pending => "pending",
            ProposalState::Approved => "approved",
            ProposalState::Applied => "applied",
            ProposalState::Failed => "failed",
            ProposalState::Rejected => "rejected",
            ProposalState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<ProposalState> {
        ProposalState::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Given by the store.
    pub id: i64,
    /// The mutuelle whose people approve it.
    pub mutuelle_id: String,
    /// The scheme of a period's close or settlement; empty for products.
    pub scheme_id: String,
    /// What it changes: "close_period", "settle_period", "publish_products".
    pub kind: String,
    /// The change itself, as JSON (`service::approvals::Change`).
    pub body: String,
    /// SHA-256 (hex) of `body`: what the approver approves.
    pub hash: String,
    /// The identity that proposed it (`Caller::display`).
    pub proposed_by: String,
    pub proposed_ms: i64,
    pub state: ProposalState,
    /// Who approved or rejected it; empty while pending.
    pub decided_by: String,
    pub decided_ms: i64,
    /// What applying it did, or why it failed or was rejected.
    pub outcome: String,
}

/// How long a proposal may stay approved (being applied) before the broker
/// applies it again (`Broker::apply_left_approved`): twice the longest a
/// close's statement may run on PostgreSQL (15 minutes, docs/operations.md
/// "Closing a large month"), so that a change still being applied is never
/// taken for one left behind. Were it taken, the proposal's conditional
/// mark ([`Approved`]) would still let one of the two through.
pub const APPLY_BOUND_MS: i64 = 30 * 60 * 1_000;

/// The approved proposal a store write applies: the write marks it
/// applied (by, at, with its outcome) in its own
/// transaction, only while it is still approved; otherwise (another
/// broker finished it) the write changes nothing and is refused with
/// [`sql::not_approved`]. So a proposal is applied with its change, or
/// not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approved {
    pub id: i64,
    /// Who approved it (`Caller::display`).
    pub by: String,
    /// When it is applied.
    pub now_ms: i64,
}

/// What applying a proposal did, in the words the console reads back
/// (`Lang::proposal_outcome`).
pub mod outcome {
    pub fn closed(number: u32) -> String {
        format!("period {number} closed")
    }

    pub fn settled(number: u32) -> String {
        format!("period {number} settled")
    }

    pub fn published(changed: usize) -> String {
        format!("{changed} product version(s) published")
    }
}

#[async_trait]
pub trait ApprovalStore: Send + Sync + 'static {
    /// Records a pending proposal (its `id` is ignored) and returns it with
    /// its id; refused when its mutuelle has `max_pending` pending already.
    async fn add_proposal(
        &self,
        proposal: &Proposal,
        max_pending: u32,
    ) -> Result<Proposal, StoreError>;

    async fn proposal(&self, id: i64) -> Result<Option<Proposal>, StoreError>;

    /// Marks a mutuelle's proposals still pending but proposed before
    /// `before_ms` expired (at `now_ms`), so that they neither take a place
    /// nor show as waiting; returns how many.
    async fn expire_proposals(
        &self,
        mutuelle_id: &str,
        before_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError>;

    /// A mutuelle's proposals, newest first, at most `limit`; only those
    /// still pending when `pending_only`.
    async fn proposals(
        &self,
        mutuelle_id: &str,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<Proposal>, StoreError>;

    /// Moves a proposal from `from` to `to`, recording who, when and the
    /// outcome: one conditional update, `false` when it was not in `from`
    /// (someone else decided first).
    async fn decide_proposal(
        &self,
        id: i64,
        from: ProposalState,
        to: ProposalState,
        by: &str,
        now_ms: i64,
        outcome: &str,
    ) -> Result<bool, StoreError>;

    /// Proposals of every mutuelle still approved (being applied) that were
    /// approved before `before_ms`, oldest first, at most `limit`.
    async fn approved_before(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<Proposal>, StoreError>;
}

/// SQL shared by both backends (`ph`: the placeholder character).
pub(super) mod sql {
    use super::super::core::Row;
    use super::*;

    pub const COLS: &str = "id, mutuelle_id, scheme_id, kind, body, hash, proposed_by, \
                            proposed_ms, state, decided_by, decided_ms, outcome";

    pub fn proposal(r: &dyn Row) -> Result<Proposal, StoreError> {
        let state = r.text(8)?;
        Ok(Proposal {
            id: r.int(0)?,
            mutuelle_id: r.text(1)?,
            scheme_id: r.text(2)?,
            kind: r.text(3)?,
            body: r.text(4)?,
            hash: r.text(5)?,
            proposed_by: r.text(6)?,
            proposed_ms: r.int(7)?,
            state: ProposalState::parse(&state).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "proposal state {state:?} (written by a newer version?)"
                ))
            })?,
            decided_by: r.text(9)?,
            decided_ms: r.int(10)?,
            outcome: r.text(11)?,
        })
    }

    pub fn count_pending(ph: char) -> String {
        format!("SELECT COUNT(*) FROM proposals WHERE mutuelle_id = {ph}1 AND state = 'pending'")
    }

    /// Parameters: mutuelle, scheme, kind, body, hash, by, when.
    pub fn add(ph: char) -> String {
        format!(
            "INSERT INTO proposals (mutuelle_id, scheme_id, kind, body, hash, proposed_by, \
             proposed_ms, state) VALUES ({ph}1, {ph}2, {ph}3, {ph}4, {ph}5, {ph}6, {ph}7, 'pending') \
             RETURNING {COLS}"
        )
    }

    pub fn one(ph: char) -> String {
        format!("SELECT {COLS} FROM proposals WHERE id = {ph}1")
    }

    /// Parameters: mutuelle, pending only (as 0/1 or bool), limit.
    pub fn list(ph: char) -> String {
        format!(
            "SELECT {COLS} FROM proposals WHERE mutuelle_id = {ph}1 \
             AND (state = 'pending' OR NOT {ph}2) ORDER BY id DESC LIMIT {ph}3"
        )
    }

    /// Parameters: id, from, to, by, when, outcome.
    pub fn decide(ph: char) -> String {
        format!(
            "UPDATE proposals SET state = {ph}3, decided_by = {ph}4, decided_ms = {ph}5, \
             outcome = {ph}6 WHERE id = {ph}1 AND state = {ph}2"
        )
    }

    /// The mark of an [`Approved`] proposal, in its change's transaction.
    /// Parameters: id, by, when, outcome.
    pub fn mark_applied(ph: char) -> String {
        format!(
            "UPDATE proposals SET state = 'applied', decided_by = {ph}2, decided_ms = {ph}3, \
             outcome = {ph}4 WHERE id = {ph}1 AND state = 'approved'"
        )
    }

    /// Why a change for a proposal no longer approved wrote nothing.
    pub fn not_approved(id: i64) -> StoreError {
        StoreError::Refused(format!(
            "proposal {id} is no longer approved (applied or failed already): nothing written"
        ))
    }

    /// Parameters: before, limit.
    pub fn approved_before(ph: char) -> String {
        format!(
            "SELECT {COLS} FROM proposals WHERE state = 'approved' AND decided_ms < {ph}1 \
             ORDER BY id LIMIT {ph}2"
        )
    }

    /// Parameters: mutuelle, before, now.
    pub fn expire(ph: char) -> String {
        format!(
            "UPDATE proposals SET state = 'expired', decided_ms = {ph}3 \
             WHERE mutuelle_id = {ph}1 AND state = 'pending' AND proposed_ms < {ph}2"
        )
    }

    pub fn refused_too_many(mutuelle_id: &str, max: u32) -> StoreError {
        StoreError::Refused(format!(
            "{mutuelle_id} has {max} proposals waiting for approval already: approve or reject some first"
        ))
    }
}
