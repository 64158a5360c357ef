//! Changes that need two people (maker-checker): publishing product
//! versions, closing a period, settling one. Whoever asks for such a change
//! (over gRPC, JSON, the CLI or the console: they all come here) records a
//! proposal; another person of the mutuelle approves it by its id and the
//! hash of its exact content, and only then is it applied. The approver is
//! a mutuelle identity in the proposal's scope, not a clerk, not the
//! proposer, and never an operator or a scheme. See "Approvals" in
//! docs/ARCHITECTURE.md.

use passerelle_domain::Product;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::{Broker, ServiceError};
use crate::identity::{Auth, Role};
use crate::store::approvals::{APPLY_BOUND_MS, Approved, Proposal, ProposalState};
use crate::store::{CloseUpTo, PeriodContent, PeriodRecord, PeriodState, PutProduct, Store};

/// Most proposals of one mutuelle waiting at once: past it, a new one is
/// refused until some are decided.
pub const MAX_PENDING: u32 = 20;

/// A proposal not decided within this time expires.
pub const PROPOSAL_TTL_MS: i64 = 7 * 24 * 3_600 * 1_000;

/// Most proposals listed in one answer.
pub const MAX_LISTED: u32 = 100;

/// The ErrorInfo reason of a decision on a proposal already decided
/// (applied, failed, rejected, withdrawn), by this call's caller or another.
pub const PROPOSAL_DECIDED: &str = "PROPOSAL_DECIDED";

/// The ErrorInfo reason of a decision on a proposal not decided within
/// [`PROPOSAL_TTL_MS`] (it is marked expired).
pub const PROPOSAL_EXPIRED: &str = "PROPOSAL_EXPIRED";

/// What a proposal changes: exactly what its approver approves (its JSON is
/// the proposal's body, whose SHA-256 is the proposal's hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// Close the open period: what it held when proposed (claims
    /// coordinated up to `until_ms`), and only if it still holds that.
    ClosePeriod {
        scheme_id: String,
        mutuelle_id: String,
        until_ms: i64,
        content: PeriodContent,
        /// The scheme's currency, for whoever reads the amounts.
        #[serde(default)]
        currency: String,
    },
    /// Record that a closed period was paid.
    SettlePeriod {
        scheme_id: String,
        mutuelle_id: String,
        number: u32,
        reference: String,
        content: PeriodContent,
        #[serde(default)]
        currency: String,
        /// What the period's payees whose recoveries outweigh their claims
        /// owe together, when it was proposed (0 in proposals made before
        /// it was recorded): with the net due, what the transfer pays, so
        /// that the approver sees both.
        #[serde(default)]
        owed: i64,
    },
    /// Store these product versions (all or none).
    PublishProducts {
        mutuelle_id: String,
        products: Vec<Product>,
    },
}

impl Change {
    pub fn kind(&self) -> &'static str {
        match self {
            Change::ClosePeriod { .. } => "close_period",
            Change::SettlePeriod { .. } => "settle_period",
            Change::PublishProducts { .. } => "publish_products",
        }
    }

    pub fn mutuelle_id(&self) -> &str {
        match self {
            Change::ClosePeriod { mutuelle_id, .. }
            | Change::SettlePeriod { mutuelle_id, .. }
            | Change::PublishProducts { mutuelle_id, .. } => mutuelle_id,
        }
    }

    pub fn scheme_id(&self) -> &str {
        match self {
            Change::ClosePeriod { scheme_id, .. } | Change::SettlePeriod { scheme_id, .. } => {
                scheme_id
            }
            Change::PublishProducts { .. } => "",
        }
    }

    /// The change a stored proposal holds.
    pub fn of(p: &Proposal) -> Result<Change, ServiceError> {
        serde_json::from_str(&p.body).map_err(|e| {
            crate::store::StoreError::Corrupt(format!("proposal {}: {e}", p.id)).into()
        })
    }
}

/// What asking for a change did: nothing was left to do (the same
/// settlement again, products identical to the stored ones), or a proposal
/// now waits for a second person.
#[derive(Debug)]
pub enum Proposed<T> {
    Done(T),
    Waiting(Box<Proposal>),
}

/// The SHA-256 (hex) of a proposal's body.
pub fn hash_of(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// Who proposes: any authenticated identity the caller's handler already
/// scoped to the mutuelle (its system, its manager, the scheme of the
/// period, an operator acting for it), except a clerk.
fn proposer(by: &Auth) -> Result<String, ServiceError> {
    match by {
        Auth::Caller(c) if c.clerk => Err(ServiceError::PermissionDenied(format!(
            "{} is a clerk: a manager proposes this change",
            c.display()
        ))),
        Auth::Caller(c) => Ok(c.display()),
        Auth::Plaintext => Ok("plaintext".into()),
        Auth::Missing => Err(ServiceError::PermissionDenied(
            "the call was not authenticated".into(),
        )),
    }
}

/// Who decides: a mutuelle identity of the proposal's mutuelle that is not
/// a clerk. Approving also needs someone other than the proposer. The
/// plaintext development listener (loopback only) authenticates no one, so
/// it cannot tell two people apart: there, the two steps are still needed,
/// but both are "plaintext".
fn decider(by: &Auth, p: &Proposal) -> Result<String, ServiceError> {
    let denied = |m: String| Err(ServiceError::PermissionDenied(m));
    match by {
        Auth::Caller(c) if c.role == Role::Mutuelle && c.id == p.mutuelle_id && !c.clerk => {
            Ok(c.display())
        }
        Auth::Caller(c) if c.role == Role::Mutuelle && c.id == p.mutuelle_id => denied(format!(
            "{} is a clerk: a manager of {} decides",
            c.display(),
            p.mutuelle_id
        )),
        Auth::Caller(c) => denied(format!(
            "{} may not decide proposal {}: only a person of {} does",
            c.display(),
            p.id,
            p.mutuelle_id
        )),
        Auth::Plaintext => Ok("plaintext".into()),
        Auth::Missing => denied("the call was not authenticated".into()),
    }
}

impl Broker {
    /// Marks a mutuelle's proposals older than [`PROPOSAL_TTL_MS`] expired.
    async fn expire_stale(&self, mutuelle_id: &str) -> Result<(), ServiceError> {
        let now = self.clock.now_ms();
        self.store
            .expire_proposals(mutuelle_id, now.saturating_sub(PROPOSAL_TTL_MS), now)
            .await?;
        Ok(())
    }

    /// Records a proposal, unless the same one is already waiting (a
    /// resend, or a close of the same period proposed twice): then that
    /// one.
    async fn propose(&self, by: &Auth, change: Change) -> Result<Proposal, ServiceError> {
        let who = proposer(by)?;
        let body = serde_json::to_string(&change)
            .map_err(|e| crate::store::StoreError::Backend(format!("proposal body: {e}")))?;
        self.expire_stale(change.mutuelle_id()).await?;
        let waiting = self
            .store
            .proposals(change.mutuelle_id(), true, MAX_PENDING)
            .await?;
        let hash = hash_of(&body);
        let same = |p: &&Proposal| {
            p.hash == hash
                || (matches!(change, Change::ClosePeriod { .. })
                    && p.kind == change.kind()
                    && p.scheme_id == change.scheme_id())
        };
        if let Some(p) = waiting.iter().find(same) {
            return Ok(p.clone());
        }
        let p = Proposal {
            id: 0,
            mutuelle_id: change.mutuelle_id().to_string(),
            scheme_id: change.scheme_id().to_string(),
            kind: change.kind().to_string(),
            hash,
            body,
            proposed_by: who,
            proposed_ms: self.clock.now_ms(),
            state: ProposalState::Pending,
            decided_by: String::new(),
            decided_ms: 0,
            outcome: String::new(),
        };
        Ok(self.store.add_proposal(&p, MAX_PENDING).await?)
    }

    /// Proposes closing the open period with what it holds now.
    pub async fn propose_close(
        &self,
        by: &Auth,
        scheme_id: &str,
        mutuelle_id: &str,
    ) -> Result<Proposal, ServiceError> {
        // What the close will take, read with its own rule: a claim
        // coordinated after `until_ms` (a moment later, or on a replica
        // whose clock runs ahead) stays in the open period, as the close
        // leaves it, rather than making the approval fail. (One stamped
        // before `until_ms` but committed after this read, a write slower
        // than the proposal, still makes it fail PERIOD_CHANGED: it is
        // proposed again.)
        let until_ms = self.clock.now_ms();
        let content = Some(
            self.store
                .closing_content(scheme_id, mutuelle_id, until_ms)
                .await?,
        )
        .filter(|c| c.claim_count > 0 || c.recoveries != 0)
        .ok_or_else(|| {
                ServiceError::Refused(format!(
                    "nothing to close: the open period of {scheme_id} x {mutuelle_id} has no claim and no recovery"
                ))
            })?;
        self.propose(
            by,
            Change::ClosePeriod {
                scheme_id: scheme_id.into(),
                mutuelle_id: mutuelle_id.into(),
                until_ms,
                content,
                currency: self.currency_of(scheme_id),
            },
        )
        .await
    }

    /// Proposes recording the payment of a closed period. The same
    /// settlement again is done already; another reference for a settled
    /// period, or a period that is open or unknown, is refused.
    pub async fn propose_settle(
        &self,
        by: &Auth,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        reference: &str,
    ) -> Result<Proposed<PeriodRecord>, ServiceError> {
        let periods = self.store.list_periods(scheme_id, mutuelle_id).await?;
        let Some(p) = periods.iter().find(|p| p.number == number) else {
            return Err(ServiceError::Refused(format!(
                "{scheme_id} x {mutuelle_id} has no closed period {number}"
            )));
        };
        match p.state {
            PeriodState::Open => Err(ServiceError::Refused(format!(
                "period {number} of {scheme_id} x {mutuelle_id} is still open: close it first"
            ))),
            PeriodState::Settled if p.reference == reference => Ok(Proposed::Done(p.clone())),
            PeriodState::Settled => Err(ServiceError::Refused(format!(
                "period {number} of {scheme_id} x {mutuelle_id} was settled already, with reference {}",
                p.reference
            ))),
            PeriodState::Closed => {
                let owed = self.owed_in_closed(scheme_id, mutuelle_id, number).await?;
                Ok(Proposed::Waiting(Box::new(
                    self.propose(
                        by,
                        Change::SettlePeriod {
                            scheme_id: scheme_id.into(),
                            mutuelle_id: mutuelle_id.into(),
                            number,
                            reference: reference.into(),
                            content: PeriodContent::of(p),
                            currency: self.currency_of(scheme_id),
                            owed,
                        },
                    )
                    .await?,
                )))
            }
        }
    }

    /// Proposes publishing product versions of one mutuelle. Versions all
    /// identical to the stored ones are done already (nothing to approve).
    pub async fn propose_products(
        &self,
        by: &Auth,
        products: Vec<Product>,
    ) -> Result<Proposed<Vec<PutProduct>>, ServiceError> {
        let Some(mutuelle_id) = products.first().map(|p| p.mutuelle_id.clone()) else {
            return Err(ServiceError::invalid(
                "products",
                "give at least one product",
            ));
        };
        if let Some(i) = products.iter().position(|p| p.mutuelle_id != mutuelle_id) {
            return Err(ServiceError::invalid(
                &format!("products[{i}].mutuelle_id"),
                "one mutuelle per call: each mutuelle approves its own products",
            ));
        }
        let stored = self.store.list_products(&mutuelle_id).await?;
        if products.iter().all(|p| stored.iter().any(|(s, _)| s == p)) {
            return Ok(Proposed::Done(vec![PutProduct::Unchanged; products.len()]));
        }
        let stored_products: Vec<Product> = stored.iter().map(|(p, _)| p.clone()).collect();
        let mut bad = crate::store::versions_out_of_order(&products, &stored_products);
        bad.extend(crate::store::versions_starting_in_the_past(
            &products,
            &stored_products,
            self.clock.today(),
        ));
        if !bad.is_empty() {
            return Err(ServiceError::Invalid(bad));
        }
        // One proposal per version at a time: approving a second would
        // silently replace what the first published.
        self.expire_stale(&mutuelle_id).await?;
        for other in self
            .store
            .proposals(&mutuelle_id, true, MAX_PENDING)
            .await?
        {
            if let Ok(Change::PublishProducts {
                products: theirs, ..
            }) = Change::of(&other)
            {
                for (i, p) in products.iter().enumerate() {
                    let same_version = theirs
                        .iter()
                        .any(|t| t.id == p.id && t.version == p.version);
                    if same_version && !theirs.contains(p) {
                        return Err(ServiceError::invalid(
                            &format!("products[{i}].version"),
                            format!(
                                "version {} of {} is already proposed, differently (proposal {}): approve or reject that one first",
                                p.version, p.id, other.id
                            ),
                        ));
                    }
                }
            }
        }
        Ok(Proposed::Waiting(Box::new(
            self.propose(
                by,
                Change::PublishProducts {
                    mutuelle_id,
                    products,
                },
            )
            .await?,
        )))
    }

    /// A proposal, for a caller of its mutuelle (or an operator).
    pub async fn proposal(&self, by: &Auth, id: i64) -> Result<Proposal, ServiceError> {
        let p = self
            .store
            .proposal(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("proposal {id}")))?;
        let reads = match by {
            Auth::Caller(c) => match c.role {
                Role::Mutuelle => c.id == p.mutuelle_id,
                Role::Scheme => {
                    !p.scheme_id.is_empty() && self.directory().scheme_covers(&c.id, &p.scheme_id)
                }
                Role::Operator => true,
            },
            Auth::Plaintext => true,
            Auth::Missing => false,
        };
        // Out of scope reads as absent: ids cannot be probed. Why, in the
        // audit row only.
        if !reads {
            let who = match by {
                Auth::Caller(c) => c.display(),
                _ => "an unauthenticated caller".into(),
            };
            return Err(ServiceError::OutOfScope {
                what: format!("proposal {id}"),
                why: format!("{who} may not read a proposal of {}", p.mutuelle_id),
            });
        }
        Ok(p)
    }

    /// The proposals of these mutuelles, newest first, at most
    /// [`MAX_LISTED`].
    pub async fn proposals(
        &self,
        mutuelle_ids: &[String],
        pending_only: bool,
    ) -> Result<Vec<Proposal>, ServiceError> {
        let mut all = Vec::new();
        for m in mutuelle_ids {
            self.expire_stale(m).await?;
            all.extend(self.store.proposals(m, pending_only, MAX_LISTED).await?);
        }
        all.sort_by_key(|p| std::cmp::Reverse(p.id));
        all.truncate(MAX_LISTED as usize);
        Ok(all)
    }

    /// The names of the people who proposed or decided `list`, by login
    /// (console accounts, which are few; read once): what a listing shows
    /// beside each identity. A certificate's identity, or an account since
    /// removed, has none.
    pub async fn people_of(
        &self,
        list: &[Proposal],
    ) -> Result<std::collections::HashMap<String, String>, ServiceError> {
        let logins: std::collections::HashSet<&str> = list
            .iter()
            .flat_map(|p| [p.proposed_by.as_str(), p.decided_by.as_str()])
            .filter_map(crate::identity::person_login)
            .collect();
        if logins.is_empty() {
            return Ok(Default::default());
        }
        Ok(self
            .store
            .users()
            .await?
            .into_iter()
            .filter(|u| logins.contains(u.login.as_str()))
            .map(|u| (u.login, u.display_name))
            .collect())
    }

    /// Approves a proposal, given the hash of the content the approver saw,
    /// and applies it. Returns the proposal as it ends (applied); when the
    /// store refuses the change (the period changed meanwhile, a product
    /// version is used by claims), the proposal ends failed and the refusal
    /// is the answer.
    pub async fn approve(&self, by: &Auth, id: i64, hash: &str) -> Result<Proposal, ServiceError> {
        let p = self.proposal(by, id).await?;
        let who = decider(by, &p)?;
        // A decided one says so, whoever asks.
        self.still_pending(&p).await?;
        if who == p.proposed_by && *by != Auth::Plaintext {
            return Err(ServiceError::PermissionDenied(format!(
                "{who} proposed {id}: another person of {} approves it",
                p.mutuelle_id
            )));
        }
        if !hash.eq_ignore_ascii_case(&p.hash) {
            return Err(ServiceError::invalid(
                "hash",
                format!("is not the hash of proposal {id} as stored: read the proposal again"),
            ));
        }
        // Read before it is claimed: an unreadable body is refused pending.
        let change = Change::of(&p)?;
        let now = self.clock.now_ms();
        // Its approval, then the change with the proposal's end in one
        // transaction, run in a task of their own: a call cut short (its
        // deadline, `request_timeout_ms`, a client gone) does not stop
        // them half way. A large month's close takes longer than a call
        // may (docs/operations.md, "Closing a large month"); the proposal
        // then ends applied or failed all the same. A broker stopped
        // between the two leaves it approved: `apply_left_approved` applies
        // it again.
        let store = self.store.clone();
        let task = tokio::spawn(async move {
            let claimed = store
                .decide_proposal(
                    id,
                    ProposalState::Pending,
                    ProposalState::Approved,
                    &who,
                    now,
                    "",
                )
                .await?;
            if !claimed {
                return Err(ServiceError::Precondition {
                    reason: PROPOSAL_DECIDED,
                    message: format!("proposal {id} was decided by someone else meanwhile"),
                });
            }
            let approved = Approved {
                id,
                by: who,
                now_ms: now,
            };
            match finish(&store, &approved, &change).await? {
                Ended::Applied | Ended::ByAnother => Ok(()),
                Ended::Failed(e) => Err(e),
            }
        });
        task.await.map_err(|e| {
            ServiceError::Store(crate::store::StoreError::Backend(format!(
                "applying proposal {id}: {e}"
            )))
        })??;
        self.proposal(by, id).await
    }

    /// Applies again the proposals left approved longer than
    /// [`APPLY_BOUND_MS`] after their approval (a broker stopped between
    /// an approval and its change), through the same path as an approval
    /// (`finish`), by their approver; each ends applied or failed. Two
    /// brokers doing it at once apply each once: the change's transaction
    /// marks the proposal applied only while it is approved. Run at start
    /// and at each retention pass (`run_retention`). Returns how many
    /// proposals it took.
    pub async fn apply_left_approved(&self) -> Result<usize, ServiceError> {
        let now = self.clock.now_ms();
        let left = self
            .store
            .approved_before(now.saturating_sub(APPLY_BOUND_MS), MAX_LISTED)
            .await?;
        let mut ended = 0;
        for p in &left {
            let approved = Approved {
                id: p.id,
                by: p.decided_by.clone(),
                now_ms: now,
            };
            let change = match Change::of(p) {
                Ok(c) => c,
                // Unreadable, it can never be applied: ended failed rather
                // than taken up again at every pass.
                Err(e) => {
                    if end_failed(&self.store, &approved, &e.to_string()).await? {
                        ended += 1;
                    }
                    continue;
                }
            };
            // A publication applied late would replace a version published
            // otherwise since (another proposal of the same version,
            // approved meanwhile: `PutProduct::Replaced`): it ends failed.
            if let Change::PublishProducts {
                mutuelle_id,
                products,
            } = &change
            {
                let stored = self.store.list_products(mutuelle_id).await?;
                let since = products.iter().find(|p| {
                    stored
                        .iter()
                        .any(|(s, _)| s.id == p.id && s.version == p.version && s != *p)
                });
                if let Some(v) = since {
                    let why = format!(
                        "version {} of {} was published otherwise since this proposal was approved: nothing written; propose it again if it still applies",
                        v.version, v.id
                    );
                    if end_failed(&self.store, &approved, &why).await? {
                        ended += 1;
                    }
                    continue;
                }
            }
            match finish(&self.store, &approved, &change).await {
                Ok(Ended::Applied) => {
                    ended += 1;
                    tracing::info!(proposal = p.id, "proposal left approved applied")
                }
                Ok(Ended::Failed(e)) => {
                    ended += 1;
                    tracing::warn!(proposal = p.id, error = %e, "proposal left approved failed")
                }
                Ok(Ended::ByAnother) => {}
                Err(e) => {
                    tracing::warn!(proposal = p.id, error = %e, "proposal left approved not applied: taken up again at the next pass")
                }
            }
        }
        Ok(ended)
    }

    /// Rejects a proposal (or its author withdraws it), with a reason.
    pub async fn reject(&self, by: &Auth, id: i64, reason: &str) -> Result<Proposal, ServiceError> {
        let p = self.proposal(by, id).await?;
        let who = match by {
            Auth::Caller(c) if c.display() == p.proposed_by => c.display(),
            _ => decider(by, &p)?,
        };
        self.still_pending(&p).await?;
        // A rejection says why, for the one who proposed; a withdrawal by
        // its author needs no reason.
        if who != p.proposed_by && reason.trim().is_empty() {
            return Err(ServiceError::invalid(
                "reason",
                "say why the proposal is rejected: its author reads it",
            ));
        }
        let now = self.clock.now_ms();
        if !self
            .store
            .decide_proposal(
                id,
                ProposalState::Pending,
                ProposalState::Rejected,
                &who,
                now,
                reason,
            )
            .await?
        {
            return Err(ServiceError::Refused(format!(
                "proposal {id} was decided by someone else meanwhile"
            )));
        }
        self.proposal(by, id).await
    }

    /// Refuses a proposal that is decided, or expired (marking it so).
    async fn still_pending(&self, p: &Proposal) -> Result<(), ServiceError> {
        if p.state != ProposalState::Pending {
            return Err(ServiceError::Precondition {
                reason: if p.state == ProposalState::Expired {
                    PROPOSAL_EXPIRED
                } else {
                    PROPOSAL_DECIDED
                },
                message: format!("proposal {} is {} already", p.id, p.state.as_str()),
            });
        }
        let now = self.clock.now_ms();
        if now.saturating_sub(p.proposed_ms) > PROPOSAL_TTL_MS {
            self.store
                .decide_proposal(
                    p.id,
                    ProposalState::Pending,
                    ProposalState::Expired,
                    "",
                    now,
                    "",
                )
                .await?;
            return Err(ServiceError::Precondition {
                reason: PROPOSAL_EXPIRED,
                message: format!(
                    "proposal {} expired: it was not decided within 7 days; propose it again",
                    p.id
                ),
            });
        }
        Ok(())
    }
}

/// How an approved proposal's change ended, for the call that tried it.
enum Ended {
    /// Applied by this call, in its change's transaction.
    Applied,
    /// Refused by the store (the period changed meanwhile, a product
    /// version out of order): ended failed by this call, with the refusal.
    Failed(ServiceError),
    /// Another broker ended it first: nothing written here.
    ByAnother,
}

/// Applies an approved proposal's change and ends the proposal, the one
/// path of both an approval and the recovery of one left approved: the
/// change and the proposal's mark as applied are one store transaction
/// (`store::approvals::Approved`); a change the store refuses ends it
/// failed, by a conditional write from approved. A change the store could
/// not write (the database cut, a timeout: `Err`) leaves it approved, for
/// the recovery to apply again: a failed mark there could make a change
/// still committing on another broker find its proposal no longer
/// approved, and roll it back.
async fn finish(
    store: &Arc<dyn Store>,
    approved: &Approved,
    change: &Change,
) -> Result<Ended, ServiceError> {
    match apply(store, approved, change).await {
        Ok(()) => Ok(Ended::Applied),
        Err(e) if !refused(&e) => Err(e),
        Err(e) => Ok(if end_failed(store, approved, &e.to_string()).await? {
            Ended::Failed(e)
        } else {
            Ended::ByAnother
        }),
    }
}

/// Whether the store refused a change (its state says no), rather than
/// failed to write it.
fn refused(e: &ServiceError) -> bool {
    use crate::store::StoreError as S;
    !matches!(
        e,
        ServiceError::Store(
            S::Backend(_)
                | S::InUse(_)
                | S::SchemaTooOld { .. }
                | S::SchemaTooNew { .. }
                | S::NoDatabase(_)
                | S::Corrupt(_)
        )
    )
}

/// Ends an approved proposal failed with `why`; false when it was no
/// longer approved (another broker ended it).
async fn end_failed(
    store: &Arc<dyn Store>,
    approved: &Approved,
    why: &str,
) -> Result<bool, ServiceError> {
    Ok(store
        .decide_proposal(
            approved.id,
            ProposalState::Approved,
            ProposalState::Failed,
            &approved.by,
            approved.now_ms,
            why,
        )
        .await?)
}

/// Applies an approved change at `approved.now_ms`, marking its proposal
/// applied in the same transaction.
async fn apply(
    store: &Arc<dyn Store>,
    approved: &Approved,
    change: &Change,
) -> Result<(), ServiceError> {
    let (now, mark) = (approved.now_ms, Some(approved));
    match change {
        Change::ClosePeriod {
            scheme_id,
            mutuelle_id,
            until_ms,
            content,
            ..
        } => {
            let upto = CloseUpTo {
                until_ms: *until_ms,
                expect: Some(*content),
            };
            store
                .close_period(scheme_id, mutuelle_id, &upto, now, mark)
                .await?;
        }
        Change::SettlePeriod {
            scheme_id,
            mutuelle_id,
            number,
            reference,
            ..
        } => {
            store
                .settle_period(scheme_id, mutuelle_id, *number, reference, now, mark)
                .await?;
        }
        Change::PublishProducts {
            products,
            mutuelle_id,
        } => {
            // Approved days after it was proposed, a version may now start
            // in the past: refused, the proposal ended failed, saying so.
            let stored: Vec<Product> = store
                .list_products(mutuelle_id)
                .await?
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            let today = passerelle_domain::date::of_ms(now);
            let past = crate::store::versions_starting_in_the_past(products, &stored, today);
            if !past.is_empty() {
                let why: Vec<String> = past.into_iter().map(|v| v.description).collect();
                return Err(ServiceError::Refused(format!(
                    "{}: {}",
                    crate::store::STARTS_IN_THE_PAST,
                    why.join("; ")
                )));
            }
            // The store checks the versions' order again, against what is
            // stored when it writes (`store::versions_out_of_order`):
            // another proposal may have published a version since.
            store.put_products(products, mark).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::sample_product;

    fn caller(role: Role, id: &str, user: Option<&str>, clerk: bool) -> Auth {
        Auth::Caller(crate::identity::Caller {
            role,
            id: id.into(),
            user: user.map(str::to_string),
            clerk,
        })
    }

    fn denied<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> bool {
        matches!(r, Err(ServiceError::PermissionDenied(_)))
    }

    /// Someone else than the proposer rejects with a reason (its author
    /// reads it); only the proposer withdraws without one. A manager could
    /// reject a colleague's proposal with none by sending the form of a
    /// withdrawal: the service took an empty reason from anyone.
    #[tokio::test(start_paused = true)]
    async fn a_rejection_by_another_says_why_a_withdrawal_need_not() {
        let dir = tempfile::tempdir().unwrap();
        let b = crate::service::testing::broker(dir.path());
        let awa = caller(Role::Mutuelle, "MUT-X", Some("awa"), false);
        let kofi = caller(Role::Mutuelle, "MUT-X", Some("kofi"), false);
        let propose = |version: u32| {
            let (b, awa) = (b.clone(), awa.clone());
            async move {
                let v = sample_product("MUT-X", version, "2026-01-01");
                match b.propose_products(&awa, vec![v]).await.unwrap() {
                    Proposed::Waiting(p) => p,
                    Proposed::Done(_) => panic!("waits for a second person"),
                }
            }
        };
        let p = propose(1).await;
        for reason in ["", "  \n\t"] {
            assert!(
                matches!(
                    b.reject(&kofi, p.id, reason).await,
                    Err(ServiceError::Invalid(v)) if v.len() == 1 && v[0].field == "reason"
                ),
                "{reason:?}"
            );
        }
        assert_eq!(
            b.proposal(&awa, p.id).await.unwrap().state,
            ProposalState::Pending,
            "nothing decided"
        );
        let r = b.reject(&kofi, p.id, "date erronée").await.unwrap();
        assert_eq!(
            (r.state, r.decided_by.as_str(), r.outcome.as_str()),
            (
                ProposalState::Rejected,
                "mutuelle:MUT-X/user:kofi",
                "date erronée"
            )
        );
        // Its author withdraws one with no reason.
        let w = propose(2).await;
        let r = b.reject(&awa, w.id, "").await.unwrap();
        assert_eq!(
            (r.state, r.decided_by.as_str()),
            (ProposalState::Rejected, "mutuelle:MUT-X/user:awa")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_is_applied_only_once_another_person_of_the_mutuelle_approves_it() {
        let dir = tempfile::tempdir().unwrap();
        let b = crate::service::testing::broker(dir.path());
        let system = caller(Role::Mutuelle, "MUT-X", None, false);
        let awa = caller(Role::Mutuelle, "MUT-X", Some("awa"), false);
        let kofi_clerk = caller(Role::Mutuelle, "MUT-X", Some("kofi"), true);
        let other = caller(Role::Mutuelle, "MUT-Y", Some("yao"), false);
        let ops = caller(Role::Operator, "ops", Some("ops"), false);
        let scheme = caller(Role::Scheme, "CNSS", None, false);
        let v1 = sample_product("MUT-X", 1, "2026-01-01");

        // A clerk does not propose.
        assert!(denied(
            b.propose_products(&kofi_clerk, vec![v1.clone()]).await
        ));
        let Proposed::Waiting(p) = b.propose_products(&system, vec![v1.clone()]).await.unwrap()
        else {
            panic!("a new version waits for approval")
        };
        assert_eq!(
            (p.state, p.proposed_by.as_str()),
            (ProposalState::Pending, "mutuelle:MUT-X")
        );
        assert_eq!(p.hash, hash_of(&p.body));
        assert!(
            b.list_products("MUT-X").await.unwrap().is_empty(),
            "nothing stored yet"
        );

        // Not its author, not a clerk, not an operator or a scheme, not
        // another mutuelle.
        for who in [&system, &kofi_clerk, &ops] {
            assert!(denied(b.approve(who, p.id, &p.hash).await), "{who:?}");
        }
        // Out of its scope, a proposal reads as absent (ids cannot be
        // probed).
        for who in [&scheme, &other] {
            assert!(
                matches!(
                    b.approve(who, p.id, &p.hash).await,
                    Err(ServiceError::OutOfScope { what, .. }) if what == format!("proposal {}", p.id)
                ),
                "{who:?}"
            );
        }
        // The exact content: another hash approves nothing.
        assert!(matches!(
            b.approve(&awa, p.id, &"0".repeat(64)).await,
            Err(ServiceError::Invalid(v)) if v[0].field == "hash"
        ));
        let done = b
            .approve(&awa, p.id, &p.hash.to_ascii_uppercase())
            .await
            .unwrap();
        assert_eq!(
            (done.state, done.decided_by.as_str(), done.outcome.as_str()),
            (
                ProposalState::Applied,
                "mutuelle:MUT-X/user:awa",
                "1 product version(s) published"
            )
        );
        assert_eq!(b.list_products("MUT-X").await.unwrap()[0].0, v1);
        // A listing names the people behind the identities: awa, who
        // decided, by her account's name; the system that proposed, none.
        assert!(b.people_of(&[(*p).clone()]).await.unwrap().is_empty());
        b.add_user(
            crate::service::users::NewUser {
                login: "awa".into(),
                display_name: "Awa Mensah".into(),
                role: crate::store::users::UserRole::Manager,
                scope: vec!["MUT-X".into()],
                password: "un mot de passe assez long".into(),
                lang: "fr".into(),
                must_change: false,
            },
            "test",
        )
        .await
        .unwrap();
        let people = b.people_of(std::slice::from_ref(&done)).await.unwrap();
        assert_eq!(
            people.into_iter().collect::<Vec<_>>(),
            [("awa".to_string(), "Awa Mensah".to_string())]
        );
        // Once only.
        assert!(matches!(
            b.approve(&awa, p.id, &p.hash).await,
            Err(ServiceError::Precondition {
                reason: PROPOSAL_DECIDED,
                ..
            })
        ));
        // The same version again: nothing to approve.
        assert!(matches!(
            b.propose_products(&system, vec![v1.clone()]).await.unwrap(),
            Proposed::Done(r) if r == vec![PutProduct::Unchanged]
        ));

        // Not decided within 7 days: expired, never applied.
        let v2 = sample_product("MUT-X", 2, "2027-01-01");
        let Proposed::Waiting(late) = b.propose_products(&awa, vec![v2.clone()]).await.unwrap()
        else {
            panic!("waits")
        };
        // The same again is the same proposal, not a second one.
        let Proposed::Waiting(again) = b.propose_products(&system, vec![v2.clone()]).await.unwrap()
        else {
            panic!("waits")
        };
        assert_eq!(again.id, late.id);
        // Another version 2 while this one waits: refused, it would replace
        // it silently once both are approved.
        let mut other_v2 = v2.clone();
        other_v2.name = "Autre".into();
        assert!(matches!(
            b.propose_products(&system, vec![other_v2]).await,
            Err(ServiceError::Invalid(v)) if v[0].field == "products[0].version"
        ));
        // A version starts after the versions below it.
        let past = sample_product("MUT-X", 3, "2025-06-01");
        assert!(matches!(
            b.propose_products(&system, vec![past]).await,
            Err(ServiceError::Invalid(v)) if v[0].field == "products[0].valid_from"
        ));
        tokio::time::advance(std::time::Duration::from_millis(PROPOSAL_TTL_MS as u64 + 1)).await;
        // Expired, it no longer shows as waiting (nor takes a place).
        assert!(
            b.proposals(&["MUT-X".into()], true)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            b.approve(&system, late.id, &late.hash).await,
            Err(ServiceError::Precondition {
                reason: PROPOSAL_EXPIRED,
                ..
            })
        ));
        assert_eq!(
            b.proposal(&awa, late.id).await.unwrap().state,
            ProposalState::Expired
        );
        assert_eq!(b.list_products("MUT-X").await.unwrap().len(), 1);

        // Its author withdraws one; a clerk may not reject.
        let Proposed::Waiting(w) = b.propose_products(&awa, vec![v2]).await.unwrap() else {
            panic!("waits")
        };
        assert!(denied(b.reject(&kofi_clerk, w.id, "non").await));
        let r = b.reject(&awa, w.id, "erreur de date").await.unwrap();
        assert_eq!(
            (r.state, r.outcome.as_str()),
            (ProposalState::Rejected, "erreur de date")
        );
        assert_eq!(b.proposals(&["MUT-X".into()], true).await.unwrap().len(), 0);
        assert_eq!(
            b.proposals(&["MUT-X".into()], false).await.unwrap().len(),
            3
        );
        // One mutuelle per proposal.
        assert!(matches!(
            b.propose_products(&ops, vec![sample_product("MUT-X", 3, "2028-01-01"), sample_product("MUT-Y", 1, "2028-01-01")]).await,
            Err(ServiceError::Invalid(v)) if v[0].field == "products[1].mutuelle_id"
        ));

        // Two versions proposed while neither is stored, each in order
        // with what is stored (v1 from 2026-01-01): version 2 from
        // 2026-09-01, version 3 from 2026-06-01. Once version 2 is
        // published, version 3 would start before it: its approval fails,
        // nothing stored, where both were published and from September the
        // older version 2 was in force again.
        let Proposed::Waiting(june) = b
            .propose_products(&system, vec![sample_product("MUT-X", 2, "2026-09-01")])
            .await
            .unwrap()
        else {
            panic!("waits")
        };
        let Proposed::Waiting(march) = b
            .propose_products(&system, vec![sample_product("MUT-X", 3, "2026-06-01")])
            .await
            .unwrap()
        else {
            panic!("waits")
        };
        b.approve(&awa, june.id, &june.hash).await.unwrap();
        match b.approve(&awa, march.id, &march.hash).await {
            Err(ServiceError::Store(crate::store::StoreError::Refused(m))) => {
                assert!(m.contains("must start after"), "{m}")
            }
            r => panic!("{r:?}"),
        }
        let failed = b.proposal(&awa, march.id).await.unwrap();
        assert_eq!(failed.state, ProposalState::Failed);
        assert!(
            failed.outcome.starts_with(crate::store::OUT_OF_ORDER),
            "{}",
            failed.outcome
        );
        let said = crate::console::i18n::Lang::Fr.proposal_outcome(&failed.outcome);
        assert!(said.starts_with("une autre version du produit"), "{said}");
        let versions: Vec<u32> = b
            .list_products("MUT-X")
            .await
            .unwrap()
            .iter()
            .map(|(p, _)| p.version)
            .collect();
        assert!(!versions.contains(&3), "{versions:?}");
    }

    /// `products` proposed by `by`, then left approved by `approver` at
    /// the clock's now, as a broker stopped after the approval's first
    /// write leaves it.
    async fn left_approved(
        b: &Broker,
        by: &Auth,
        products: Vec<Product>,
        approver: &str,
    ) -> Proposal {
        let Proposed::Waiting(p) = b.propose_products(by, products).await.unwrap() else {
            panic!("a new version waits for approval")
        };
        assert!(
            b.store()
                .decide_proposal(
                    p.id,
                    ProposalState::Pending,
                    ProposalState::Approved,
                    approver,
                    b.clock.now_ms(),
                    "",
                )
                .await
                .unwrap()
        );
        *p
    }

    /// A broker stopped between an approval's first write and its change
    /// leaves the proposal approved: the recovery pass applies it, once,
    /// by its approver, but not before [`APPLY_BOUND_MS`] past its
    /// approval (a change may still be under way until then).
    #[tokio::test]
    async fn a_proposal_left_approved_is_applied_after_the_bound_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let b = crate::service::testing::broker(dir.path());
        let system = caller(Role::Mutuelle, "MUT-X", None, false);
        let v1 = sample_product("MUT-X", 1, "2026-01-01");
        // What the crash leaves: the approval's first write alone.
        let approved_ms = b.clock.now_ms();
        let p = left_approved(&b, &system, vec![v1.clone()], "mutuelle:MUT-X/user:awa").await;
        // A decision on it says it is decided; nothing applies it yet.
        let awa = caller(Role::Mutuelle, "MUT-X", Some("awa"), false);
        assert!(matches!(
            b.approve(&awa, p.id, &p.hash).await,
            Err(ServiceError::Precondition {
                reason: PROPOSAL_DECIDED,
                ..
            })
        ));
        assert_eq!(b.apply_left_approved().await.unwrap(), 0);
        // A minute before the bound: still left alone.
        b.clock.move_ahead(APPLY_BOUND_MS - 60_000);
        assert_eq!(b.apply_left_approved().await.unwrap(), 0);
        assert_eq!(
            b.proposal(&awa, p.id).await.unwrap().state,
            ProposalState::Approved
        );
        assert!(b.list_products("MUT-X").await.unwrap().is_empty());

        // Past it: applied, by two brokers' passes at once, once.
        b.clock.move_ahead(60_001);
        let (one, two) = tokio::join!(b.apply_left_approved(), b.apply_left_approved());
        assert_eq!(one.unwrap() + two.unwrap(), 1, "applied once");
        let done = b.proposal(&awa, p.id).await.unwrap();
        assert_eq!(
            (done.state, done.decided_by.as_str(), done.outcome.as_str()),
            (
                ProposalState::Applied,
                "mutuelle:MUT-X/user:awa",
                "1 product version(s) published"
            )
        );
        assert!(done.decided_ms >= approved_ms + APPLY_BOUND_MS);
        assert_eq!(b.list_products("MUT-X").await.unwrap()[0].0, v1);
        assert_eq!(b.apply_left_approved().await.unwrap(), 0);

        // One the store refuses by then (a version out of order with one
        // published since) ends failed, nothing stored.
        let late = left_approved(
            &b,
            &system,
            vec![sample_product("MUT-X", 2, "2026-09-01")],
            "awa",
        )
        .await;
        let first = left_approved(
            &b,
            &system,
            vec![sample_product("MUT-X", 3, "2026-06-01")],
            "awa",
        )
        .await;
        b.clock.move_ahead(APPLY_BOUND_MS + 1);
        assert_eq!(b.apply_left_approved().await.unwrap(), 2);
        assert_eq!(
            b.proposal(&awa, late.id).await.unwrap().state,
            ProposalState::Applied
        );
        let failed = b.proposal(&awa, first.id).await.unwrap();
        assert_eq!(failed.state, ProposalState::Failed);
        assert!(
            failed.outcome.starts_with(crate::store::OUT_OF_ORDER),
            "{}",
            failed.outcome
        );
        assert_eq!(b.list_products("MUT-X").await.unwrap().len(), 2);

        // A publication left approved while another of the same version
        // was approved and applied since ends failed: applied late, it
        // replaced the version published since (no claim had used it).
        let mut v4 = sample_product("MUT-X", 4, "2026-12-01");
        let stale = left_approved(&b, &system, vec![v4.clone()], "awa").await;
        v4.name = "Version 4 corrigée".into();
        let Proposed::Waiting(fresh) = b.propose_products(&system, vec![v4.clone()]).await.unwrap()
        else {
            panic!("waits")
        };
        b.approve(&awa, fresh.id, &fresh.hash).await.unwrap();
        b.clock.move_ahead(APPLY_BOUND_MS + 1);
        assert_eq!(b.apply_left_approved().await.unwrap(), 1);
        let failed = b.proposal(&awa, stale.id).await.unwrap();
        assert_eq!(failed.state, ProposalState::Failed);
        assert!(
            failed.outcome.contains("published otherwise"),
            "{}",
            failed.outcome
        );
        let stored = b.list_products("MUT-X").await.unwrap();
        assert!(
            stored.iter().any(|(p, _)| *p == v4),
            "the version published since stays"
        );
    }

    /// A new version of a product that has one starts after today: care
    /// already given stays priced by the version that priced it. Checked
    /// when proposed and again when approved, days later; a product's
    /// first version may start in the past.
    #[tokio::test(start_paused = true)]
    async fn a_new_version_never_starts_in_the_past() {
        let dir = tempfile::tempdir().unwrap();
        let b = crate::service::testing::broker(dir.path());
        let system = caller(Role::Mutuelle, "MUT-X", None, false);
        let awa = caller(Role::Mutuelle, "MUT-X", Some("awa"), false);
        // Today is 2026-03-10: a first version from January is published.
        let v1 = sample_product("MUT-X", 1, "2026-01-01");
        let Proposed::Waiting(p) = b.propose_products(&system, vec![v1]).await.unwrap() else {
            panic!("waits")
        };
        b.approve(&awa, p.id, &p.hash).await.unwrap();
        // Version 2 from today, or from March 1st: refused, named.
        for from in ["2026-03-10", "2026-03-01"] {
            match b
                .propose_products(&system, vec![sample_product("MUT-X", 2, from)])
                .await
            {
                Err(ServiceError::Invalid(v)) => {
                    assert_eq!(v[0].field, "products[0].valid_from");
                    assert!(
                        v[0].description.contains("priced by version 1"),
                        "{}",
                        v[0].description
                    );
                }
                r => panic!("{from}: {r:?}"),
            }
        }
        // From tomorrow: proposed; approved two days later, it would start
        // in the past: it ends failed, nothing published, said in French.
        let Proposed::Waiting(p) = b
            .propose_products(&system, vec![sample_product("MUT-X", 2, "2026-03-11")])
            .await
            .unwrap()
        else {
            panic!("waits")
        };
        b.clock.move_ahead(2 * 86_400_000);
        assert!(matches!(
            b.approve(&awa, p.id, &p.hash).await,
            Err(ServiceError::Refused(m)) if m.starts_with(crate::store::STARTS_IN_THE_PAST)
        ));
        let failed = b.proposal(&awa, p.id).await.unwrap();
        assert_eq!(failed.state, ProposalState::Failed);
        let said = crate::console::i18n::Lang::Fr.proposal_outcome(&failed.outcome);
        assert!(said.contains("à partir de demain"), "{said}");
        assert_eq!(b.list_products("MUT-X").await.unwrap().len(), 1);

        // A mutuelle that comes with its history publishes its past
        // versions together; one not used yet is corrected with its start
        // kept, never moved into the days another version prices.
        let system_y = caller(Role::Mutuelle, "MUT-Y", None, false);
        let ama_y = caller(Role::Mutuelle, "MUT-Y", Some("ama"), false);
        let (y1, y2) = (
            sample_product("MUT-Y", 1, "2025-01-01"),
            sample_product("MUT-Y", 2, "2026-01-01"),
        );
        let Proposed::Waiting(p) = b
            .propose_products(&system_y, vec![y1, y2.clone()])
            .await
            .unwrap()
        else {
            panic!("waits")
        };
        b.approve(&ama_y, p.id, &p.hash).await.unwrap();
        let mut corrected = y2.clone();
        corrected.name = "Essentiel (corrigé)".into();
        assert!(matches!(
            b.propose_products(&system_y, vec![corrected.clone()]).await,
            Ok(Proposed::Waiting(_))
        ));
        corrected.valid_from = passerelle_domain::date::parse("2025-06-01").unwrap();
        assert!(matches!(
            b.propose_products(&system_y, vec![corrected]).await,
            Err(ServiceError::Invalid(v)) if v[0].description.contains("priced by version 1")
        ));
    }
}
