//! Proposals waiting for a second person (maker-checker).

use super::*;
use crate::store::approvals::{ApprovalStore, Approved, Proposal, ProposalState, sql};

/// In the transaction of an approved proposal's change (none: a change
/// without one), marks the proposal applied with `outcome`; refused, so
/// that the caller's transaction rolls back, when it is no longer approved
/// (another replica finished it: its row lock makes this one wait, then
/// see it).
pub(super) async fn mark_applied<C: GenericClient + Sync>(
    tx: &C,
    approved: Option<&Approved>,
    outcome: &str,
) -> Result<(), StoreError> {
    let Some(a) = approved else {
        return Ok(());
    };
    let n = x(
        tx,
        &sql::mark_applied('$'),
        &[&a.id, &a.by, &a.now_ms, &outcome],
    )
    .await?;
    if n == 1 {
        Ok(())
    } else {
        Err(sql::not_approved(a.id))
    }
}

#[async_trait]
impl ApprovalStore for PgStore {
    async fn add_proposal(&self, p: &Proposal, max_pending: u32) -> Result<Proposal, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Two replicas counting at once would both see room: one at a time
        // per mutuelle.
        advisory_lock(&tx, &format!("proposals\u{1f}{}", p.mutuelle_id)).await?;
        let pending: i64 = q1(&tx, &sql::count_pending('$'), &[&p.mutuelle_id])
            .await?
            .ok_or_else(|| backend("no row"))?
            .get(0);
        if pending >= i64::from(max_pending) {
            return Err(sql::refused_too_many(&p.mutuelle_id, max_pending));
        }
        let row = q1(
            &tx,
            &sql::add('$'),
            &[
                &p.mutuelle_id,
                &p.scheme_id,
                &p.kind,
                &p.body,
                &p.hash,
                &p.proposed_by,
                &p.proposed_ms,
            ],
        )
        .await?
        .ok_or_else(|| backend("no row"))?;
        let out = sql::proposal(&row)?;
        tx.commit().await?;
        Ok(out)
    }

    async fn proposal(&self, id: i64) -> Result<Option<Proposal>, StoreError> {
        let c = self.client().await?;
        q1(&c, &sql::one('$'), &[&id])
            .await?
            .map(|r| sql::proposal(&r))
            .transpose()
    }

    async fn expire_proposals(
        &self,
        mutuelle_id: &str,
        before_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let c = self.client().await?;
        x(&c, &sql::expire('$'), &[&mutuelle_id, &before_ms, &now_ms]).await
    }

    async fn proposals(
        &self,
        mutuelle_id: &str,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<Proposal>, StoreError> {
        let c = self.client().await?;
        decode(
            &q(
                &c,
                &sql::list('$'),
                &[&mutuelle_id, &pending_only, &i64::from(limit)],
            )
            .await?,
            sql::proposal,
        )
    }

    async fn decide_proposal(
        &self,
        id: i64,
        from: ProposalState,
        to: ProposalState,
        by: &str,
        now_ms: i64,
        outcome: &str,
    ) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = x(
            &c,
            &sql::decide('$'),
            &[&id, &from.as_str(), &to.as_str(), &by, &now_ms, &outcome],
        )
        .await?;
        Ok(n == 1)
    }

    async fn approved_before(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<Proposal>, StoreError> {
        let c = self.client().await?;
        decode(
            &q(
                &c,
                &sql::approved_before('$'),
                &[&before_ms, &i64::from(limit)],
            )
            .await?,
            sql::proposal,
        )
    }
}
