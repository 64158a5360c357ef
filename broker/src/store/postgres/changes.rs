//! The change cursor of ListChangedClaims, without a global row.
//!
//! A claim's change number is the 64-bit id of the transaction that wrote
//! the change (`pg_current_xact_id()`), plus a per-database base
//! (`change_base`). Transaction ids are handed out in increasing order, so
//! writers never wait on one another for a number; but they commit in any
//! order, so a reader must not pass a number some writer may still commit.
//!
//! Every transaction that writes a change number first takes a shared
//! advisory lock, the *writer mark* (one key per schema), before it has a
//! transaction id. The reader's safe horizon is then the smallest of:
//!
//! - the snapshot's `xmax`, taken at the start of the horizon statement:
//!   every id at or above it is assigned later, to a transaction that may
//!   still be running;
//! - the id of every session holding the writer mark at the time of the
//!   statement (a holder without an id yet gets one above `xmax`).
//!
//! A writer below the horizon was not holding the mark while the statement
//! ran, so it had committed or aborted: the next statement's snapshot sees
//! its rows. The reader lists only changes below the horizon, in a second
//! statement. Only writers of change numbers can hold the horizon back: a
//! long read (a statement export) has no transaction id at all, and a long
//! write that is not a claim change (retention pruning, a roster import)
//! does not hold the mark.
//!
//! One transaction writes the change number of one claim at most (each
//! store method changes one claim); the unique index on (scheme,
//! `change_seq`) holds any future code to that.

use super::*;

/// The advisory lock class of the writer mark ("pass"); the second key is
/// the schema's (see [`mark_key`]).
const MARK_CLASS: i64 = 0x7061_7373;

/// The change number of the current transaction's change.
pub(super) const CHANGE_SEQ: &str =
    "(pg_current_xact_id()::text::bigint + (SELECT base FROM change_base))";

/// The change number of a statement that is its own transaction (an
/// insert): the subquery takes the writer mark before it asks for the
/// transaction's id, and both before the row is written. `OFFSET 0` keeps
/// the planner from flattening the mark away.
pub(super) fn marked_change_seq(key: i64) -> String {
    format!(
        "(SELECT pg_current_xact_id()::text::bigint + b.base FROM change_base b, \
         (SELECT pg_advisory_xact_lock_shared({MARK_CLASS}::int4, {key}::int4) OFFSET 0) mark)"
    )
}

/// The second advisory key of the writer mark: a hash of the schema name,
/// so that brokers on other schemas of the database (tests, other
/// countries) never hold each other's cursors back. A collision only makes
/// two schemas wait on each other's writers.
pub(super) fn mark_key(schema: &str) -> i64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(schema.as_bytes());
    i64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & 0x7fff_ffff)
}

/// The writer mark as a FROM item: `(SELECT ...) mark`, for a statement
/// that must take it before its row lock gives the transaction an id.
/// Parameters: none (the keys are numbers of this store, not input).
pub(super) fn mark_from(key: i64) -> String {
    format!("(SELECT pg_advisory_xact_lock_shared({MARK_CLASS}::int4, {key}::int4) OFFSET 0) mark")
}

/// The statement that reads the horizon's parts: the snapshot's xmax, the
/// base, and the (32-bit) transaction ids of the mark's holders.
fn horizon_sql(key: i64) -> String {
    format!(
        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, \
         (SELECT base FROM change_base), \
         ARRAY(SELECT a.backend_xid::text::bigint FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
               WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {MARK_CLASS} \
               AND l.objid = {key} AND l.objsubid = 2 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND a.backend_xid IS NOT NULL)"
    )
}

/// The change numbers below this one are all committed (or never will be).
pub(super) async fn horizon<C: GenericClient + Sync>(c: &C, key: i64) -> Result<i64, StoreError> {
    let row = q1(c, &horizon_sql(key), &[])
        .await?
        .ok_or_else(|| backend("no horizon row"))?;
    let xmax: i64 = row.get(0);
    let base: i64 = row.get(1);
    let holders: Vec<i64> = row.get(2);
    let oldest = holders
        .into_iter()
        .map(|x| widen(xmax, x))
        .fold(xmax, i64::min);
    Ok(oldest.saturating_add(base))
}

/// A 32-bit transaction id of a running transaction as the 64-bit id near
/// `near` (a running id is within 2^31 of any current one).
fn widen(near: i64, xid32: i64) -> i64 {
    const SPAN: i64 = 1 << 32;
    let full = (near & !(SPAN - 1)) | (xid32 & (SPAN - 1));
    if full > near + SPAN / 2 {
        full - SPAN
    } else if full < near - SPAN / 2 {
        full + SPAN
    } else {
        full
    }
}

/// At start-up, under the migration lock: if the database was restored
/// into another cluster (its system identifier changed), transaction ids
/// may have started again from a lower value; the base is raised so that
/// every new change number is above every stored one.
pub(super) async fn rebase_if_restored<C: GenericClient + Sync>(c: &C) -> Result<(), StoreError> {
    x(
        c,
        "UPDATE change_base SET base = GREATEST(base, \
             (SELECT COALESCE(MAX(change_seq), 0) FROM claims) - pg_current_xact_id()::text::bigint + 1), \
         system_identifier = (SELECT system_identifier FROM pg_control_system()) \
         WHERE system_identifier IS DISTINCT FROM (SELECT system_identifier FROM pg_control_system())",
        &[],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::widen;

    #[test]
    fn a_32_bit_id_widens_to_the_epoch_of_a_near_id() {
        let epoch = 5i64 << 32;
        assert_eq!(widen(epoch + 1000, 990), epoch + 990);
        assert_eq!(widen(epoch + 1000, 1010), epoch + 1010);
        // Across an epoch boundary, both ways.
        assert_eq!(widen(epoch + 5, 0xFFFF_FFF0), epoch - 16);
        assert_eq!(widen(epoch - 16, 5), epoch + 5);
    }
}
