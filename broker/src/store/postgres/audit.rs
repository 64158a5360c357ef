//! The audit log and partner activity.

use super::*;

#[async_trait]
impl AuditStore for PgStore {
    async fn audit_of(&self, subject: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let c = self.client().await?;
        let rows = q(
            &c,
            &format!(
                "SELECT {} FROM audit_log WHERE subject = $1 ORDER BY id",
                core::AUDIT_COLS
            ),
            &[&subject],
        )
        .await?;
        decode(&rows, core::audit)
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<Option<u64>, StoreError> {
        let sql = core::prune_audit_sql("strpos", "$1", "$2", "$3");
        let (mut total, mut from) = (0, i64::MIN);
        // One batch per transaction, each under the retention lock: the
        // replica that holds it prunes, the others skip their turn. A pooled
        // connection per batch, given back before the rest.
        loop {
            let began = tokio::time::Instant::now();
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let got: bool = q1(
                &tx,
                "SELECT pg_try_advisory_xact_lock($1)",
                &[&RETENTION_LOCK],
            )
            .await?
            .map(|r| r.get(0))
            .unwrap_or(false);
            if !got {
                return Ok((total > 0).then_some(total));
            }
            let deleted: Vec<i64> = q(&tx, &sql, &[&before_ms, &from, &core::PRUNE_BATCH])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.commit().await?;
            from = core::prune_from(from, &deleted);
            let n = deleted.len() as u64;
            total += n;
            if n < core::PRUNE_BATCH as u64 {
                return Ok(Some(total));
            }
            drop(c);
            core::rest_after_batch(began).await;
        }
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let c = self.client().await?;
        // One statement for the whole batch, prepared once: the columns as
        // arrays (a VALUES list would be a new statement to parse and plan
        // for every batch size).
        let col =
            |f: &dyn Fn(&AuditEntry) -> &str| -> Vec<&str> { entries.iter().map(f).collect() };
        let at: Vec<i64> = entries.iter().map(|e| e.at_ms).collect();
        x(
            &c,
            "INSERT INTO audit_log (at_ms, direction, party, method, subject, request_hash, outcome, trace_id) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[])",
            &[
                &at,
                &col(&|e| e.direction.as_str()),
                &col(&|e| e.party.as_str()),
                &col(&|e| e.method.as_str()),
                &col(&|e| e.subject.as_str()),
                &col(&|e| e.request_hash.as_str()),
                &col(&|e| e.outcome.as_str()),
                &col(&|e| e.trace_id.as_str()),
            ],
        )
        .await?;
        Ok(())
    }

    async fn read_audit(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEntry)>, StoreError> {
        let c = self.client().await?;
        let rows = q(
            &c,
            &format!(
                "SELECT {}, id FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
                core::AUDIT_COLS
            ),
            &[&after_id, &(limit as i64)],
        )
        .await?;
        decode(&rows, |r| Ok((r.int(8)?, core::audit(r)?)))
    }

    async fn partner_activity(&self, mutuelle_id: &str) -> Result<PartnerActivity, StoreError> {
        let c = self.client().await?;
        let party = format!("mutuelle:{mutuelle_id}");
        let ok = q1(
            &c,
            "SELECT at_ms FROM audit_log WHERE party = $1 AND outcome = 'ok' ORDER BY id DESC LIMIT 1",
            &[&party],
        )
        .await?;
        let err = q1(
            &c,
            "SELECT at_ms, outcome FROM audit_log WHERE party = $1 AND outcome <> 'ok' ORDER BY id DESC LIMIT 1",
            &[&party],
        )
        .await?;
        let (pending, oldest) = q1(
            &c,
            &format!(
                "SELECT COUNT(*), MIN(created_ms) FROM claims WHERE mutuelle_id = $1 AND state IN {}",
                core::SQL_WAITING
            ),
            &[&mutuelle_id],
        )
        .await?
        .map(|r| (r.get::<_, i64>(0), r.get::<_, Option<i64>>(1)))
        .unwrap_or((0, None));
        Ok(PartnerActivity {
            last_success_ms: ok.map(|r| r.get(0)).unwrap_or(0),
            last_error_ms: err.as_ref().map(|r| r.get(0)).unwrap_or(0),
            last_error: err.map(|r| r.get(1)).unwrap_or_default(),
            pending: pending as u32,
            oldest_waiting_ms: oldest.unwrap_or(0),
        })
    }
}
