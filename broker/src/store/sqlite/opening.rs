//! Opening balances.

use super::*;
use crate::store::authorizations::sql as holds;
use crate::store::opening::{OpeningRow, OpeningStore, sql};

#[async_trait]
impl OpeningStore for SqliteStore {
    async fn set_opening_balances(
        &self,
        mutuelle_id: &str,
        rows: &[OpeningRow],
        dry_run: bool,
        now_ms: i64,
    ) -> Result<(u32, u32), StoreError> {
        let (m, rows) = (mutuelle_id.to_string(), rows.to_vec());
        self.write(Moves::Usage, move |c| {
            let tx = c.savepoint()?;
            let (mut set, mut unchanged) = (0u32, 0u32);
            for row in &rows {
                let before: (i64, i64) = tx
                    .prepare_cached(&sql::previous('?'))?
                    .query_row(params![m, row.key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .unwrap_or((0, 0));
                let (used, held) = tx
                    .prepare_cached(&sql::usage('?'))?
                    .query_row(params![m, row.key], |r| {
                        Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?)))
                    })
                    .optional()?
                    .unwrap_or(((0, 0), (0, 0)));
                let Some((da, dc)) = sql::plan(row, before, used, held)? else {
                    unchanged += 1;
                    continue;
                };
                tx.prepare_cached(&holds::ensure_row('?'))?
                    .execute(params![m, row.key])?;
                tx.prepare_cached(&sql::shift('?'))?
                    .execute(params![m, row.key, da, dc])?;
                tx.prepare_cached(&sql::upsert('?'))?.execute(params![
                    m,
                    row.key,
                    row.amount,
                    i64::from(row.count),
                    now_ms
                ])?;
                set += 1;
            }
            if !dry_run {
                tx.commit()?;
            }
            Ok((set, unchanged))
        })
        .await
    }
}
