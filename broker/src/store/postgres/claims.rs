//! Claims: their lifecycle, leases and listings.

use super::*;

#[async_trait]
impl ClaimStore for PgStore {
    async fn begin_claim(&self, new: NewClaim) -> Result<Begin, StoreError> {
        let cl = &new.claim;
        let mut c = self.client().await?;
        // A racing insert of the same key fails once with a unique
        // violation; the second attempt reads the winner's row.
        for _ in 0..2 {
            let tx = c.transaction().await?;
            if let Some((_, rec)) = load(&tx, &cl.scheme_id, &cl.claim_id, false).await? {
                return Ok(core::existing(rec, &new.request_hash));
            }
            let invoice_key = format!(
                "{}\u{1f}{}\u{1f}{}",
                cl.scheme_id, cl.provider_id, cl.invoice_number
            );
            advisory_lock(&tx, &invoice_key).await?;
            let dup: Option<String> = q1(
                &tx,
                &format!(
                    "SELECT claim_id FROM claims WHERE scheme_id = $1 AND provider_id = $2 \
                     AND invoice_number = $3 AND state IN {} LIMIT 1",
                    core::SQL_HOLDS_INVOICE
                ),
                &[&cl.scheme_id, &cl.provider_id, &cl.invoice_number],
            )
            .await?
            .map(|r| r.get(0));
            let row = core::new_claim_row(&new, dup);
            // The change number in the insert itself: the counter's row lock
            // is held from here to the commit, one round trip.
            let insert = tx
                .prepare_cached(&format!(
                    "WITH s AS (UPDATE change_counter SET v = v + 1 WHERE id = 1 RETURNING v) \
                     INSERT INTO claims ({}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, (SELECT v FROM s), $14, $14, $15, $16, $17, $18, $19, $20)",
                    core::CLAIM_INSERT_COLS
                ))
                .await?;
            let inserted = tx
                .execute(
                    &insert,
                    &[
                        &cl.scheme_id,
                        &cl.claim_id,
                        &new.request_hash,
                        &row.body,
                        &cl.provider_id,
                        &cl.invoice_number,
                        &new.mutuelle_id,
                        &new.member_number,
                        &row.state.as_str(),
                        &new.adjudication_key,
                        &row.rejection_code,
                        &row.rejection_message,
                        &row.next_attempt_ms,
                        &new.now_ms,
                        &row.date_of_care,
                        &cl.currency,
                        &row.payee,
                        &row.billed_total,
                        &row.scheme_total,
                        &row.duplicate_of,
                    ],
                )
                .await;
            match inserted {
                Ok(_) => {}
                // Another broker inserted the same key first: read it back.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
            match tx.commit().await {
                Ok(()) => {}
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
            let (_, rec) = load_existing(&c, &cl.scheme_id, &cl.claim_id, false).await?;
            return Ok(core::created(rec));
        }
        let (_, rec) = load_existing(&c, &cl.scheme_id, &cl.claim_id, false).await?;
        Ok(core::existing(rec, &new.request_hash))
    }

    async fn get_claim(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        let c = self.client().await?;
        Ok(load(&c, scheme_id, claim_id, false).await?.map(|(_, r)| r))
    }

    async fn complete_claim(
        &self,
        scheme_id: &str,
        claim_id: &str,
        outcome: Outcome,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, true).await?;
        if !core::may_complete(rec.state) {
            return Ok(Transition::Stale(rec));
        }
        match outcome {
            Outcome::Coordinated {
                shares,
                product,
                partner_reference,
                consumption,
            } => {
                for (key, u) in core::consumed(&consumption) {
                    x(
                        &tx,
                        "INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) \
                         VALUES ($1, $2, 0, 0) ON CONFLICT DO NOTHING",
                        &[&rec.mutuelle_id, &key],
                    )
                    .await?;
                    let (amount, count) = (u.amount, u.count as i64);
                    let (la, lc) = (u.limit_amount, u.limit_count.map(|v| v as i64));
                    let n = x(
                        &tx,
                        "UPDATE ceiling_usage SET used_amount = used_amount + $3, used_count = used_count + $4 \
                         WHERE mutuelle_id = $1 AND ceiling_key = $2 \
                         AND ($5::BIGINT IS NULL OR used_amount + $3 <= $5) \
                         AND ($6::BIGINT IS NULL OR used_count + $4 <= $6)",
                        &[&rec.mutuelle_id, &key, &amount, &count, &la, &lc],
                    )
                    .await?;
                    if n == 0 {
                        return Err(StoreError::CeilingConflict(key));
                    }
                    x(
                        &tx,
                        "INSERT INTO claim_consumption (claim_pk, ceiling_key, amount, count) VALUES ($1, $2, $3, $4)",
                        &[&pk, &key, &amount, &count],
                    )
                    .await?;
                }
                let st = tx
                    .prepare_cached(
                        "INSERT INTO claim_lines (claim_pk, sequence, act_code, care_category, quantity, billed, \
                         tariff_base, scheme_share, mutuelle_share, patient_share, reasons) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .await?;
                for l in core::line_rows(&rec.claim, &shares) {
                    tx.execute(
                        &st,
                        &[
                            &pk,
                            &i64::from(l.sequence),
                            &l.act_code,
                            &l.category,
                            &i64::from(l.quantity),
                            &l.billed,
                            &l.tariff_base,
                            &l.scheme_share,
                            &l.mutuelle_share,
                            &l.patient_share,
                            &l.reasons,
                        ],
                    )
                    .await?;
                }
                if let Some(p) = &product {
                    x(
                        &tx,
                        "UPDATE products SET used = TRUE WHERE mutuelle_id = $1 AND product_id = $2 AND version = $3 AND NOT used",
                        &[&rec.mutuelle_id, &p.id, &(p.version as i64)],
                    )
                    .await?;
                }
                let total = core::mutuelle_total(&shares);
                // The change number in the same statement, last before the
                // commit: the counter's row lock is held one round trip.
                x(
                    &tx,
                    "WITH s AS (UPDATE change_counter SET v = v + 1 WHERE id = 1 RETURNING v) \
                     UPDATE claims SET state = 'coordinated', product_id = $2, product_version = $3, \
                     product_name = $4, partner_reference = $5, next_attempt_ms = NULL, last_error = '', \
                     change_seq = (SELECT v FROM s), updated_ms = $6, mutuelle_total = $7 WHERE id = $1",
                    &[
                        &pk,
                        &product.as_ref().map(|p| p.id.clone()),
                        &product.as_ref().map(|p| p.version as i64),
                        &product.as_ref().map(|p| p.name.clone()),
                        &partner_reference,
                        &now_ms,
                        &total,
                    ],
                )
                .await?;
            }
            Outcome::Rejected(reason) => {
                x(
                    &tx,
                    "WITH s AS (UPDATE change_counter SET v = v + 1 WHERE id = 1 RETURNING v) \
                     UPDATE claims SET state = 'rejected', rejection_code = $2, rejection_message = $3, \
                     next_attempt_ms = NULL, change_seq = (SELECT v FROM s), updated_ms = $4 WHERE id = $1",
                    &[&pk, &core::code_str(reason.code), &reason.message, &now_ms],
                )
                .await?;
            }
        }
        tx.commit().await?;
        // Read back after the commit, not under the counter's lock.
        let (_, rec) = load_existing(&c, scheme_id, claim_id, false).await?;
        Ok(Transition::Applied(rec))
    }

    async fn defer(
        &self,
        scheme_id: &str,
        claim_id: &str,
        next_attempt_ms: i64,
        last_error: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, true).await?;
        let Some(new_state) = core::deferred_state(rec.state) else {
            return Ok(Transition::Stale(rec));
        };
        let seq = if new_state != rec.state {
            next_seq(&tx).await?
        } else {
            rec.change_seq as i64
        };
        x(
            &tx,
            "UPDATE claims SET state = $2, next_attempt_ms = $3, last_error = $4, change_seq = $5, updated_ms = $6 \
             WHERE id = $1",
            &[&pk, &new_state.as_str(), &next_attempt_ms, &last_error, &seq, &now_ms],
        )
        .await?;
        let (_, rec) = load_existing(&tx, scheme_id, claim_id, false).await?;
        tx.commit().await?;
        Ok(Transition::Applied(rec))
    }

    async fn lease_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let rows = q(
            &tx,
            &format!(
                "UPDATE claims SET next_attempt_ms = $2, attempts = attempts + 1 WHERE id IN ( \
                 SELECT id FROM claims WHERE next_attempt_ms IS NOT NULL AND next_attempt_ms <= $1 \
                 AND state IN {} ORDER BY next_attempt_ms LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING scheme_id, claim_id",
                core::SQL_WAITING
            ),
            &[&now_ms, &(now_ms + lease_ms), &(limit as i64)],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let (s, cid): (String, String) = (r.get(0), r.get(1));
            out.push(load_existing(&tx, &s, &cid, false).await?.1);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn expedite(
        &self,
        mutuelle_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<u64, StoreError> {
        let c = self.client().await?;
        x(
            &c,
            "UPDATE claims SET next_attempt_ms = $2 WHERE mutuelle_id = $1 \
             AND state IN ('pending_partner', 'cancel_pending') AND next_attempt_ms > $2::BIGINT + $3::BIGINT",
            &[&mutuelle_id, &now_ms, &lease_ms],
        )
        .await
    }

    async fn begin_cancel(
        &self,
        scheme_id: &str,
        claim_id: &str,
        cancel_key: &str,
        reason: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, true).await?;
        if !core::may_begin_cancel(rec.state) {
            return Ok(Transition::Stale(rec));
        }
        let seq = next_seq(&tx).await?;
        x(
            &tx,
            "UPDATE claims SET state = 'cancel_pending', cancel_key = $2, cancel_reason = $3, \
             next_attempt_ms = $4, attempts = 0, change_seq = $5, updated_ms = $6 WHERE id = $1",
            &[&pk, &cancel_key, &reason, &lease_until_ms, &seq, &now_ms],
        )
        .await?;
        let (_, rec) = load_existing(&tx, scheme_id, claim_id, false).await?;
        tx.commit().await?;
        Ok(Transition::Applied(rec))
    }

    async fn complete_cancel(
        &self,
        scheme_id: &str,
        claim_id: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, true).await?;
        if !core::may_complete_cancel(rec.state) {
            return Ok(Transition::Stale(rec));
        }
        x(
            &tx,
            "UPDATE ceiling_usage u SET used_amount = u.used_amount - c.amount, used_count = u.used_count - c.count \
             FROM claim_consumption c WHERE c.claim_pk = $1 AND u.mutuelle_id = $2 AND u.ceiling_key = c.ceiling_key",
            &[&pk, &rec.mutuelle_id],
        )
        .await?;
        x(
            &tx,
            "DELETE FROM claim_consumption WHERE claim_pk = $1",
            &[&pk],
        )
        .await?;
        x(
            &tx,
            "INSERT INTO recoveries (claim_pk, scheme_id, mutuelle_id, from_period, amount, created_ms) \
             SELECT c.id, c.scheme_id, c.mutuelle_id, p.number, c.mutuelle_total, $2 \
             FROM claims c JOIN periods p ON p.id = c.period_id WHERE c.id = $1 AND c.mutuelle_total > 0",
            &[&pk, &now_ms],
        )
        .await?;
        let seq = next_seq(&tx).await?;
        x(
            &tx,
            "UPDATE claims SET state = 'cancelled', next_attempt_ms = NULL, last_error = $4, change_seq = $2, \
             updated_ms = $3 WHERE id = $1",
            &[&pk, &seq, &now_ms, &note],
        )
        .await?;
        let (_, rec) = load_existing(&tx, scheme_id, claim_id, false).await?;
        tx.commit().await?;
        Ok(Transition::Applied(rec))
    }

    async fn list_changed(
        &self,
        scheme_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        let c = self.client().await?;
        let rows = q(
            &c,
            &format!(
                "SELECT {} FROM claims WHERE scheme_id = $1 AND change_seq > $2 ORDER BY change_seq LIMIT $3",
                core::CLAIM_COLS
            ),
            &[&scheme_id, &(after_seq as i64), &(limit as i64)],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let (pk, mut rec) = core::claim(r)?;
            rec.shares = lines_of(&c, pk).await?;
            out.push(rec);
        }
        Ok(out)
    }

    async fn list_claims(
        &self,
        f: &ClaimFilter,
        after: i64,
        limit: u32,
    ) -> Result<ClaimPage, StoreError> {
        let c = self.client().await?;
        let state = f.state.map(|s| s.as_str().to_string());
        let from = f.care_from.map(date::format);
        let to = f.care_to.map(date::format);
        let rows = q(
            &c,
            &format!(
                "SELECT {} FROM claims c LEFT JOIN periods p ON p.id = c.period_id \
                 WHERE {FILTER_PG} AND c.id > $6 ORDER BY c.id LIMIT $7",
                core::SUMMARY_COLS
            ),
            &[
                &f.scheme_id,
                &f.mutuelle_id,
                &state,
                &from,
                &to,
                &after,
                &(limit as i64),
            ],
        )
        .await?;
        let out = decode(&rows, core::summary)?;
        let t = q1(
            &c,
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(c.billed_total), 0)::TEXT, COALESCE(SUM(c.scheme_total), 0)::TEXT, \
                 COALESCE(SUM(c.mutuelle_total), 0)::TEXT FROM claims c WHERE {FILTER_PG}"
            ),
            &[&f.scheme_id, &f.mutuelle_id, &state, &from, &to],
        )
        .await?
        .ok_or_else(|| backend("no row"))?;
        Ok(ClaimPage {
            rows: out,
            totals: Totals {
                billed: sum_at(&t, 1)?,
                scheme: sum_at(&t, 2)?,
                mutuelle: sum_at(&t, 3)?,
            },
            total_count: t.get::<_, i64>(0) as u64,
        })
    }

    async fn lease_now(
        &self,
        scheme_id: &str,
        claim_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = x(
            &tx,
            &format!(
                "UPDATE claims SET next_attempt_ms = $3, attempts = attempts + 1 \
                 WHERE scheme_id = $1 AND claim_id = $2 AND state IN {}",
                core::SQL_WAITING
            ),
            &[&scheme_id, &claim_id, &(now_ms + lease_ms)],
        )
        .await?;
        let rec = if n == 1 {
            Some(load_existing(&tx, scheme_id, claim_id, false).await?.1)
        } else {
            None
        };
        tx.commit().await?;
        Ok(rec)
    }
}
