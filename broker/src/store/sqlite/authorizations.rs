//! Prior authorizations and their holds.

use super::*;
use crate::store::authorizations::{
    AuthorizationRecord, AuthorizationState, AuthorizationStore, Grant, sql,
};
use passerelle_domain::CeilingUse;

fn load(
    c: &Connection,
    scheme_id: &str,
    authorization_id: &str,
) -> Result<Option<AuthorizationRecord>, StoreError> {
    row_of(
        &mut c.prepare_cached(&sql::one('?'))?,
        params![scheme_id, authorization_id],
        sql::record,
    )
}

/// Takes a hold on each ceiling; `CeilingConflict` (the savepoint rolled
/// back by its drop) when one would pass its limit.
fn take(c: &Connection, mutuelle_id: &str, hold: &[CeilingUse]) -> Result<(), StoreError> {
    for (key, u) in sql::uses(hold) {
        c.prepare_cached(&sql::ensure_row('?'))?
            .execute(params![mutuelle_id, key])?;
        let n = c.prepare_cached(&sql::take_hold('?'))?.execute(params![
            mutuelle_id,
            key,
            u.amount,
            u.count,
            u.limit_amount,
            u.limit_count
        ])?;
        if n == 0 {
            return Err(sql::hold_conflict(&key));
        }
    }
    Ok(())
}

/// Releases a hold.
pub(super) fn release(
    c: &Connection,
    mutuelle_id: &str,
    hold: &[CeilingUse],
) -> Result<(), StoreError> {
    for (key, u) in sql::uses(hold) {
        c.prepare_cached(&sql::release_hold('?'))?.execute(params![
            mutuelle_id,
            key,
            u.amount,
            u.count
        ])?;
    }
    Ok(())
}

/// Consumes the authorization `reference` for a claim, in the claim's
/// transaction: active → consumed, its hold released. `CeilingConflict`
/// when it is no longer active.
pub(super) fn consume(
    c: &Connection,
    reference: &str,
    claim_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let rec = row_of(
        &mut c.prepare_cached(&sql::by_reference('?'))?,
        params![reference],
        sql::record,
    )?
    .ok_or_else(|| sql::gone(reference))?;
    let n = c
        .prepare_cached(&sql::consume('?'))?
        .execute(params![reference, claim_id, now_ms])?;
    if n == 0 {
        return Err(sql::gone(reference));
    }
    // Billed again after its claim was cancelled: its hold went with the
    // first claim.
    if rec.state != AuthorizationState::Active {
        return Ok(());
    }
    release(c, &rec.mutuelle_id, &rec.terms.hold)
}

#[async_trait]
impl AuthorizationStore for SqliteStore {
    async fn authorization(
        &self,
        scheme_id: &str,
        authorization_id: &str,
    ) -> Result<Option<AuthorizationRecord>, StoreError> {
        self.read(|c| load(c, scheme_id, authorization_id))
    }

    async fn authorization_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<AuthorizationRecord>, StoreError> {
        self.read(|c| {
            row_of(
                &mut c.prepare_cached(&sql::by_reference('?'))?,
                params![reference],
                sql::record,
            )
        })
    }

    async fn grant_authorization(
        &self,
        rec: &AuthorizationRecord,
        max_active: u32,
    ) -> Result<Grant, StoreError> {
        let rec = rec.clone();
        self.write(Moves::Usage, move |c| {
            let tx = c.savepoint()?;
            if let Some(stored) = load(&tx, &rec.scheme_id, &rec.authorization_id)? {
                return Ok(sql::found(stored, &rec.request_hash));
            }
            tx.prepare_cached(&sql::insert('?'))?.execute(params![
                rec.scheme_id,
                rec.authorization_id,
                rec.reference,
                rec.mutuelle_id,
                rec.member_number,
                rec.beneficiary_id,
                rec.request_hash,
                sql::body(&rec),
                sql::valid_until(&rec),
                rec.expires_ms,
                i64::from(rec.extensions),
                rec.created_ms,
            ])?;
            // Counted with this one, by the one writer: nothing written
            // past the bound.
            let active: i64 = tx
                .prepare_cached(&sql::active_of('?'))?
                .query_row(params![rec.scheme_id, rec.beneficiary_id], |r| r.get(0))?;
            if active > i64::from(max_active) {
                return Ok(Grant::AtLimit(max_active));
            }
            take(&tx, &rec.mutuelle_id, &rec.terms.hold)?;
            let stored = load(&tx, &rec.scheme_id, &rec.authorization_id)?
                .ok_or_else(|| backend("no row"))?;
            tx.commit()?;
            Ok(Grant::Created(stored))
        })
        .await
    }

    async fn extend_authorization(&self, rec: &AuthorizationRecord) -> Result<bool, StoreError> {
        let rec = rec.clone();
        self.write(Moves::Usage, move |c| {
            let tx = c.savepoint()?;
            let Some(old) = load(&tx, &rec.scheme_id, &rec.authorization_id)? else {
                return Ok(false);
            };
            let n = tx.prepare_cached(&sql::extend('?'))?.execute(params![
                rec.scheme_id,
                rec.authorization_id,
                sql::body(&rec),
                sql::valid_until(&rec),
                rec.expires_ms,
                i64::from(rec.extensions),
                rec.updated_ms,
            ])?;
            if n == 0 {
                return Ok(false);
            }
            release(&tx, &old.mutuelle_id, &old.terms.hold)?;
            take(&tx, &old.mutuelle_id, &rec.terms.hold)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn end_authorization(
        &self,
        scheme_id: &str,
        authorization_id: &str,
        to: AuthorizationState,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (s, a) = (scheme_id.to_string(), authorization_id.to_string());
        self.write(Moves::Usage, move |c| {
            let tx = c.savepoint()?;
            let Some(rec) = load(&tx, &s, &a)? else {
                return Ok(false);
            };
            let n =
                tx.prepare_cached(&sql::end('?'))?
                    .execute(params![s, a, to.as_str(), now_ms])?;
            if n == 0 {
                return Ok(false);
            }
            release(&tx, &rec.mutuelle_id, &rec.terms.hold)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn due_authorizations(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.scan(move |c| {
            let mut st = c.prepare_cached(&sql::due('?'))?;
            let rows = st.query_map(params![now_ms, i64::from(limit)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn active_authorizations(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
    ) -> Result<u32, StoreError> {
        self.read(|c| {
            let n: i64 = c
                .prepare_cached(&sql::active_of('?'))?
                .query_row(params![scheme_id, beneficiary_id], |r| r.get(0))?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    async fn authorizations_of(
        &self,
        mutuelle_id: &str,
        limit: u32,
    ) -> Result<Vec<AuthorizationRecord>, StoreError> {
        let m = mutuelle_id.to_string();
        self.scan(move |c| {
            rows_of(
                &mut c.prepare_cached(&sql::of_mutuelle('?'))?,
                params![m, i64::from(limit)],
                sql::record,
            )
        })
        .await
    }
}
