//! Opening balances: what the members of a mutuelle joining during a year
//! had already consumed of their ceilings. A balance is part of the
//! ceiling's use (`ceiling_usage.used_*`) and kept apart
//! (`opening_balances`), so that a correction, up or down, changes the
//! use by the difference. Never a claim, so never on a statement.

use async_trait::async_trait;

use super::StoreError;

/// One balance to set: the ceiling's storage key, what it names for a
/// person (the member and ceiling, for refusals), and the use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpeningRow {
    pub key: String,
    pub label: String,
    pub amount: i64,
    pub count: u32,
}

#[async_trait]
pub trait OpeningStore: Send + Sync + 'static {
    /// Sets a mutuelle's opening balances, all or none: each changes its
    /// ceiling's use by the difference with the one declared before.
    /// Refused (naming the row's label) when a higher balance would be set
    /// on a ceiling prior authorizations hold. Returns (set, unchanged); with
    /// `dry_run` nothing is written.
    async fn set_opening_balances(
        &self,
        mutuelle_id: &str,
        rows: &[OpeningRow],
        dry_run: bool,
        now_ms: i64,
    ) -> Result<(u32, u32), StoreError>;
}

/// SQL and decisions shared by both backends.
pub(super) mod sql {
    use super::*;

    /// Parameters: mutuelle, key.
    pub fn previous(ph: char) -> String {
        format!(
            "SELECT amount, count FROM opening_balances WHERE mutuelle_id = {ph}1 AND ceiling_key = {ph}2"
        )
    }

    /// Parameters: mutuelle, key, amount, count, now.
    pub fn upsert(ph: char) -> String {
        format!(
            "INSERT INTO opening_balances (mutuelle_id, ceiling_key, amount, count, updated_ms) \
             VALUES ({ph}1, {ph}2, {ph}3, {ph}4, {ph}5) ON CONFLICT (mutuelle_id, ceiling_key) \
             DO UPDATE SET amount = excluded.amount, count = excluded.count, updated_ms = excluded.updated_ms"
        )
    }

    /// Parameters: mutuelle, key. Used and held, amount and count.
    pub fn usage(ph: char) -> String {
        format!(
            "SELECT used_amount, used_count, held_amount, held_count FROM ceiling_usage \
             WHERE mutuelle_id = {ph}1 AND ceiling_key = {ph}2"
        )
    }

    /// Parameters: mutuelle, key, amount delta, count delta.
    pub fn shift(ph: char) -> String {
        format!(
            "UPDATE ceiling_usage SET used_amount = used_amount + {ph}3, used_count = used_count + {ph}4 \
             WHERE mutuelle_id = {ph}1 AND ceiling_key = {ph}2"
        )
    }

    /// What setting a row does, given the balance declared before and the
    /// ceiling's use and holds now: `None` when unchanged, else the
    /// differences to add. Refused when it raises one on a ceiling prior
    /// authorizations hold (their commitment was made on what was left).
    pub fn plan(
        row: &OpeningRow,
        before: (i64, i64),
        used: (i64, i64),
        held: (i64, i64),
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let (amount, count) = (row.amount, i64::from(row.count));
        if (amount, count) == before {
            return Ok(None);
        }
        // Lowered, the use stays at least what claims consumed (the use
        // holds the balance declared before): a balance typed too high is
        // corrected, also once claims used the ceiling, which were paid on
        // what was left then.
        let raises = amount > before.0 || count > before.1;
        if raises && (held.0 > 0 || held.1 > 0) {
            return Err(StoreError::Refused(format!(
                "{}: prior authorizations hold part of this ceiling; raise its opening balance once they are billed, cancelled or expired",
                row.label
            )));
        }
        let delta = (amount - before.0, count - before.1);
        // Never below zero, whatever the stored use says (a use that holds
        // less than the balance declared before is no use this rule wrote).
        if used.0 + delta.0 < 0 || used.1 + delta.1 < 0 {
            return Err(StoreError::Refused(format!(
                "{}: the ceiling's stored use ({}, {} acts) is less than the opening balance declared before; it is not lowered",
                row.label, used.0, used.1
            )));
        }
        Ok(Some(delta))
    }
}
