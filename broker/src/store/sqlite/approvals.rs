//! Proposals waiting for a second person (maker-checker).

use super::*;
use crate::store::approvals::{ApprovalStore, Approved, Proposal, ProposalState, sql};

/// In the transaction of an approved proposal's change (none: a change
/// without one), marks the proposal applied with `outcome`; refused, so
/// that the caller's transaction writes nothing, when it is no longer
/// approved.
pub(super) fn mark_applied(
    c: &Connection,
    approved: Option<&Approved>,
    outcome: &str,
) -> Result<(), StoreError> {
    let Some(a) = approved else {
        return Ok(());
    };
    let n = c
        .prepare_cached(&sql::mark_applied('?'))?
        .execute(params![a.id, a.by, a.now_ms, outcome])?;
    if n == 1 {
        Ok(())
    } else {
        Err(sql::not_approved(a.id))
    }
}

#[async_trait]
impl ApprovalStore for SqliteStore {
    async fn add_proposal(&self, p: &Proposal, max_pending: u32) -> Result<Proposal, StoreError> {
        let p = p.clone();
        self.with(move |c| {
            let tx = c.savepoint()?;
            let pending: i64 = tx
                .prepare_cached(&sql::count_pending('?'))?
                .query_row([&p.mutuelle_id], |r| r.get(0))?;
            if pending >= i64::from(max_pending) {
                return Err(sql::refused_too_many(&p.mutuelle_id, max_pending));
            }
            let mut st = tx.prepare_cached(&sql::add('?'))?;
            let out = row_of(
                &mut st,
                params![
                    p.mutuelle_id,
                    p.scheme_id,
                    p.kind,
                    p.body,
                    p.hash,
                    p.proposed_by,
                    p.proposed_ms
                ],
                sql::proposal,
            )?
            .ok_or_else(|| backend("no row"))?;
            drop(st);
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn proposal(&self, id: i64) -> Result<Option<Proposal>, StoreError> {
        self.scan(move |c| row_of(&mut c.prepare_cached(&sql::one('?'))?, [id], sql::proposal))
            .await
    }

    async fn expire_proposals(
        &self,
        mutuelle_id: &str,
        before_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let m = mutuelle_id.to_string();
        self.with(move |c| {
            let n = c
                .prepare_cached(&sql::expire('?'))?
                .execute(params![m, before_ms, now_ms])?;
            Ok(n as u64)
        })
        .await
    }

    async fn proposals(
        &self,
        mutuelle_id: &str,
        pending_only: bool,
        limit: u32,
    ) -> Result<Vec<Proposal>, StoreError> {
        let m = mutuelle_id.to_string();
        self.scan(move |c| {
            rows_of(
                &mut c.prepare_cached(&sql::list('?'))?,
                params![m, pending_only, i64::from(limit)],
                sql::proposal,
            )
        })
        .await
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
        let (by, outcome) = (by.to_string(), outcome.to_string());
        self.with(move |c| {
            let n = c.prepare_cached(&sql::decide('?'))?.execute(params![
                id,
                from.as_str(),
                to.as_str(),
                by,
                now_ms,
                outcome
            ])?;
            Ok(n == 1)
        })
        .await
    }

    async fn approved_before(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<Proposal>, StoreError> {
        self.scan(move |c| {
            rows_of(
                &mut c.prepare_cached(&sql::approved_before('?'))?,
                params![before_ms, i64::from(limit)],
                sql::proposal,
            )
        })
        .await
    }
}
