//! Opening balances: what the members of a mutuelle joining during a year
//! had already consumed of their ceilings. A balance is part of the
//! ceiling's use (`ceiling_usage.used_*`) and kept apart
//! (`opening_balances`), so that a correction changes the use by the
//! difference, and so that lowering one is refused once a claim has used
//! the ceiling (the use beyond the opening balance). Never a claim, so
//! never on a statement.

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
    /// Refused (naming the row's label) when a lower balance would be set
    /// on a ceiling a claim has used. Returns (set, unchanged); with
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
    /// differences to add. Refused when it lowers a balance on a ceiling
    /// claims used, or raises one on a ceiling prior authorizations hold
    /// (their commitment was made on what was left).
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
        let lowers = amount < before.0 || count < before.1;
        let claimed = used.0 > before.0 || used.1 > before.1;
        if lowers && claimed {
            return Err(StoreError::Refused(format!(
                "{}: claims already used this ceiling; its opening balance can be raised, no longer lowered",
                row.label
            )));
        }
        let raises = amount > before.0 || count > before.1;
        if raises && (held.0 > 0 || held.1 > 0) {
            return Err(StoreError::Refused(format!(
                "{}: prior authorizations hold part of this ceiling; raise its opening balance once they are billed, cancelled or expired",
                row.label
            )));
        }
        Ok(Some((amount - before.0, count - before.1)))
    }
}
