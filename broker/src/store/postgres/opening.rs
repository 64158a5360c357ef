//! Opening balances. Each ceiling's row is locked (FOR UPDATE) before it
//! is read, so that a claim of another replica cannot use it between the
//! check and the change.

use super::*;
use crate::store::authorizations::sql as holds;
use crate::store::opening::{OpeningRow, OpeningStore, sql};

#[async_trait]
impl OpeningStore for PgStore {
    async fn set_opening_balances(
        &self,
        mutuelle_id: &str,
        rows: &[OpeningRow],
        dry_run: bool,
        now_ms: i64,
    ) -> Result<(u32, u32), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Ceiling rows in key order, as every writer takes them.
        let mut order: Vec<&OpeningRow> = rows.iter().collect();
        order.sort_by(|a, b| a.key.cmp(&b.key));
        let (mut set, mut unchanged) = (0u32, 0u32);
        // A dry run reads without locking (claims go on meanwhile).
        let usage = if dry_run {
            sql::usage('$')
        } else {
            format!("{} FOR UPDATE", sql::usage('$'))
        };
        for row in order {
            if !dry_run {
                x(&tx, &holds::ensure_row('$'), &[&mutuelle_id, &row.key]).await?;
            }
            let (used, held) = q1(&tx, &usage, &[&mutuelle_id, &row.key])
                .await?
                .map(|r| {
                    (
                        (r.get::<_, i64>(0), r.get::<_, i64>(1)),
                        (r.get::<_, i64>(2), r.get::<_, i64>(3)),
                    )
                })
                .unwrap_or(((0, 0), (0, 0)));
            let before = q1(&tx, &sql::previous('$'), &[&mutuelle_id, &row.key])
                .await?
                .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
                .unwrap_or((0, 0));
            let Some((da, dc)) = sql::plan(row, before, used, held)? else {
                unchanged += 1;
                continue;
            };
            if dry_run {
                set += 1;
                continue;
            }
            x(&tx, &sql::shift('$'), &[&mutuelle_id, &row.key, &da, &dc]).await?;
            let count = i64::from(row.count);
            x(
                &tx,
                &sql::upsert('$'),
                &[&mutuelle_id, &row.key, &row.amount, &count, &now_ms],
            )
            .await?;
            set += 1;
        }
        if !dry_run {
            tx.commit().await?;
        }
        Ok((set, unchanged))
    }
}
