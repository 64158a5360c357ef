//! The audit log and partner activity.

use super::*;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_of(&self, subject: &str) -> Result<AuditTrail, StoreError> {
        let subject = subject.to_string();
        self.scan(move |c| {
            let mut st = c.prepare_cached(&core::audit_newest_sql("audit_log", "?1"))?;
            let newest = rows_of(&mut st, [&subject], core::audit)?;
            let head = if core::audit_trail_is_whole(&newest) {
                None
            } else {
                let (head, count) = core::audit_head_sql("audit_log", "?1");
                let rows = rows_of(&mut c.prepare_cached(&head)?, [&subject], core::audit)?;
                let n: i64 = c.query_row(&count, [&subject], |r| r.get(0))?;
                Some((rows, n))
            };
            Ok(core::audit_trail(newest, head))
        })
        .await
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<Option<u64>, StoreError> {
        let mut total = 0;
        // One batch per turn of the writer: claims wait at most one batch.
        let mut from = i64::MIN;
        loop {
            let began = tokio::time::Instant::now();
            let deleted: Vec<i64> = self
                .with(move |c| {
                    let sql = core::prune_audit_sql("instr", "?1", "?2", "?3");
                    let mut st = c.prepare_cached(&sql)?;
                    let rows = st.query_map(params![before_ms, from, core::PRUNE_BATCH], |r| {
                        r.get::<_, i64>(0)
                    })?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await?;
            from = core::prune_from(from, &deleted);
            let n = deleted.len() as u64;
            total += n;
            if n < core::PRUNE_BATCH as u64 {
                return Ok(Some(total));
            }
            core::rest_after_batch(began).await;
        }
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let entries = entries.to_vec();
        self.with(move |c| {
            let tx = c.savepoint()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO audit_log (at_ms, direction, party, method, subject, request_hash, outcome, trace_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for e in &entries {
                    st.execute(params![e.at_ms, e.direction.as_str(), e.party, e.method, e.subject, e.request_hash, e.outcome, e.trace_id])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn read_audit(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEntry)>, StoreError> {
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {}, id FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2",
                core::AUDIT_COLS
            ))?;
            rows_of(&mut st, params![after_id, limit], |r| {
                Ok((r.int(8)?, core::audit(r)?))
            })
        })
        .await
    }

    async fn partner_activity(&self, mutuelle_id: &str) -> Result<PartnerActivity, StoreError> {
        let m = mutuelle_id.to_string();
        self.scan(move |c| {
            let party = format!("mutuelle:{m}");
            let last_success_ms: Option<i64> = c.prepare_cached("SELECT at_ms FROM audit_log WHERE party = ?1 AND outcome = 'ok' ORDER BY id DESC LIMIT 1")?.query_row([&party],
                |r| r.get(0),
            ).optional()?;
            let last_error: Option<(i64, String)> = c.prepare_cached("SELECT at_ms, outcome FROM audit_log WHERE party = ?1 AND outcome <> 'ok' ORDER BY id DESC LIMIT 1")?.query_row([&party],
                |r| Ok((r.get(0)?, r.get(1)?)),
            ).optional()?;
            let mut parts = Vec::new();
            for sql in core::partner_waiting_sql('?') {
                parts.push(c.prepare_cached(&sql)?.query_row([&m], |r| Ok((r.get(0)?, r.get(1)?)))?);
            }
            let (pending, oldest) = core::partner_waiting(parts);
            let (last_error_ms, last_error) = last_error.unwrap_or_default();
            Ok(PartnerActivity { last_success_ms: last_success_ms.unwrap_or(0), last_error_ms, last_error, pending, oldest_waiting_ms: oldest })
        })
        .await
    }
}
