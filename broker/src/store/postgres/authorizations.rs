//! Prior authorizations and their holds. Every writer takes the
//! authorization's row first (FOR UPDATE), then the ceiling rows in key
//! order, so that two replicas never wait on each other in a cycle.

use super::*;
use crate::store::authorizations::{
    AuthorizationRecord, AuthorizationState, AuthorizationStore, Grant, sql,
};
use passerelle_domain::CeilingUse;

async fn load<C: GenericClient + Sync>(
    c: &C,
    scheme_id: &str,
    authorization_id: &str,
    lock: bool,
) -> Result<Option<AuthorizationRecord>, StoreError> {
    let query = if lock {
        sql::one_for_update()
    } else {
        sql::one('$')
    };
    q1(c, &query, &[&scheme_id, &authorization_id])
        .await?
        .map(|r| sql::record(&r))
        .transpose()
}

async fn take<C: GenericClient + Sync>(
    c: &C,
    mutuelle_id: &str,
    hold: &[CeilingUse],
) -> Result<(), StoreError> {
    for (key, u) in sql::uses(hold) {
        x(c, &sql::ensure_row('$'), &[&mutuelle_id, &key]).await?;
        let (count, la, lc) = (
            i64::from(u.count),
            u.limit_amount,
            u.limit_count.map(i64::from),
        );
        let n = x(
            c,
            &sql::take_hold('$'),
            &[&mutuelle_id, &key, &u.amount, &count, &la, &lc],
        )
        .await?;
        if n == 0 {
            return Err(sql::hold_conflict(&key));
        }
    }
    Ok(())
}

/// Locks the ceiling rows of `keys` (created when missing) in key order,
/// before a transaction that both releases and takes on several ceilings
/// (a claim paid against a hold, an extension): its later updates then
/// take no lock out of order, so two writers never wait on each other in
/// a cycle.
async fn lock_keys<C: GenericClient + Sync>(
    c: &C,
    mutuelle_id: &str,
    mut keys: Vec<String>,
) -> Result<(), StoreError> {
    // One key at a time, in the program's (byte) order, as every other
    // writer takes them: the database's collation may sort keys
    // differently, and a row created ahead of an older, lower one would
    // break the order too.
    keys.sort();
    keys.dedup();
    for k in &keys {
        x(c, &sql::ensure_row('$'), &[&mutuelle_id, k]).await?;
        q(
            c,
            "SELECT 1 FROM ceiling_usage WHERE mutuelle_id = $1 AND ceiling_key = $2 FOR UPDATE",
            &[&mutuelle_id, k],
        )
        .await?;
    }
    Ok(())
}

fn keys_of(uses: &[CeilingUse]) -> impl Iterator<Item = String> + '_ {
    sql::uses(uses).into_iter().map(|(k, _)| k)
}

pub(super) async fn release<C: GenericClient + Sync>(
    c: &C,
    mutuelle_id: &str,
    hold: &[CeilingUse],
) -> Result<(), StoreError> {
    for (key, u) in sql::uses(hold) {
        let count = i64::from(u.count);
        x(
            c,
            &sql::release_hold('$'),
            &[&mutuelle_id, &key, &u.amount, &count],
        )
        .await?;
    }
    Ok(())
}

/// Consumes the authorization `reference` for a claim, in the claim's
/// transaction, before its ceilings: active → consumed, its hold released.
/// The hold's and the claim's ceiling rows (`uses`) are locked first, all
/// in key order. `CeilingConflict` when it is no longer active.
pub(super) async fn consume<C: GenericClient + Sync>(
    c: &C,
    reference: &str,
    claim_id: &str,
    uses: &[CeilingUse],
    now_ms: i64,
) -> Result<(), StoreError> {
    let rec = q1(c, &sql::by_reference_for_update(), &[&reference])
        .await?
        .map(|r| sql::record(&r))
        .transpose()?
        .ok_or_else(|| sql::gone(reference))?;
    let n = x(c, &sql::consume('$'), &[&reference, &claim_id, &now_ms]).await?;
    if n == 0 {
        return Err(sql::gone(reference));
    }
    // Billed again after its claim was cancelled: its hold went with the
    // first claim.
    let hold: &[CeilingUse] = if rec.state == AuthorizationState::Active {
        &rec.terms.hold
    } else {
        &[]
    };
    let keys = keys_of(hold).chain(keys_of(uses)).collect();
    lock_keys(c, &rec.mutuelle_id, keys).await?;
    release(c, &rec.mutuelle_id, hold).await
}

#[async_trait]
impl AuthorizationStore for PgStore {
    async fn authorization(
        &self,
        scheme_id: &str,
        authorization_id: &str,
    ) -> Result<Option<AuthorizationRecord>, StoreError> {
        let c = self.client().await?;
        load(&c, scheme_id, authorization_id, false).await
    }

    async fn authorization_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<AuthorizationRecord>, StoreError> {
        let c = self.client().await?;
        q1(&c, &sql::by_reference('$'), &[&reference])
            .await?
            .map(|r| sql::record(&r))
            .transpose()
    }

    async fn grant_authorization(
        &self,
        rec: &AuthorizationRecord,
        max_active: u32,
    ) -> Result<Grant, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Two replicas counting a beneficiary's authorizations at once
        // would both see room: one grant of a beneficiary at a time.
        advisory_lock(
            &tx,
            &format!(
                "authorizations\u{1f}{}\u{1f}{}",
                rec.scheme_id, rec.beneficiary_id
            ),
        )
        .await?;
        let (body, until, ext) = (
            sql::body(rec),
            sql::valid_until(rec),
            i64::from(rec.extensions),
        );
        let n = x(
            &tx,
            &sql::insert('$'),
            &[
                &rec.scheme_id,
                &rec.authorization_id,
                &rec.reference,
                &rec.mutuelle_id,
                &rec.member_number,
                &rec.beneficiary_id,
                &rec.request_hash,
                &body,
                &until,
                &rec.expires_ms,
                &ext,
                &rec.created_ms,
            ],
        )
        .await?;
        if n == 0 {
            // Another request under this id (or this one, from a replica
            // that got there first).
            let stored = load(&tx, &rec.scheme_id, &rec.authorization_id, false)
                .await?
                .ok_or_else(|| backend("no row"))?;
            return Ok(sql::found(stored, &rec.request_hash));
        }
        // Counted with this one: past the bound, the transaction is
        // dropped and nothing is written.
        let active: i64 = q1(
            &tx,
            &sql::active_of('$'),
            &[&rec.scheme_id, &rec.beneficiary_id],
        )
        .await?
        .ok_or_else(|| backend("no row"))?
        .get(0);
        if active > i64::from(max_active) {
            return Ok(Grant::AtLimit(max_active));
        }
        take(&tx, &rec.mutuelle_id, &rec.terms.hold).await?;
        let stored = load(&tx, &rec.scheme_id, &rec.authorization_id, false)
            .await?
            .ok_or_else(|| backend("no row"))?;
        tx.commit().await?;
        Ok(Grant::Created(stored))
    }

    async fn extend_authorization(&self, rec: &AuthorizationRecord) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some(old) = load(&tx, &rec.scheme_id, &rec.authorization_id, true).await? else {
            return Ok(false);
        };
        let (body, until, ext) = (
            sql::body(rec),
            sql::valid_until(rec),
            i64::from(rec.extensions),
        );
        let n = x(
            &tx,
            &sql::extend('$'),
            &[
                &rec.scheme_id,
                &rec.authorization_id,
                &body,
                &until,
                &rec.expires_ms,
                &ext,
                &rec.updated_ms,
            ],
        )
        .await?;
        if n == 0 {
            return Ok(false);
        }
        let keys = keys_of(&old.terms.hold)
            .chain(keys_of(&rec.terms.hold))
            .collect();
        lock_keys(&tx, &old.mutuelle_id, keys).await?;
        release(&tx, &old.mutuelle_id, &old.terms.hold).await?;
        take(&tx, &old.mutuelle_id, &rec.terms.hold).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn end_authorization(
        &self,
        scheme_id: &str,
        authorization_id: &str,
        to: AuthorizationState,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some(rec) = load(&tx, scheme_id, authorization_id, true).await? else {
            return Ok(false);
        };
        let n = x(
            &tx,
            &sql::end('$'),
            &[&scheme_id, &authorization_id, &to.as_str(), &now_ms],
        )
        .await?;
        if n == 0 {
            return Ok(false);
        }
        release(&tx, &rec.mutuelle_id, &rec.terms.hold).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn due_authorizations(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let c = self.client().await?;
        let rows = q(&c, &sql::due('$'), &[&now_ms, &i64::from(limit)]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn active_authorizations(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
    ) -> Result<u32, StoreError> {
        let c = self.client().await?;
        let n: i64 = q1(&c, &sql::active_of('$'), &[&scheme_id, &beneficiary_id])
            .await?
            .ok_or_else(|| backend("no row"))?
            .get(0);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn authorizations_of(
        &self,
        mutuelle_id: &str,
        limit: u32,
    ) -> Result<Vec<AuthorizationRecord>, StoreError> {
        let c = self.client().await?;
        decode(
            &q(
                &c,
                &sql::of_mutuelle('$'),
                &[&mutuelle_id, &i64::from(limit)],
            )
            .await?,
            sql::record,
        )
    }
}
