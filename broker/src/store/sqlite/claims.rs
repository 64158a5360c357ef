//! Claims: their lifecycle, leases and listings.

use super::*;

#[async_trait]
impl ClaimStore for SqliteStore {
    async fn begin_claim(&self, new: NewClaim) -> Result<Begin, StoreError> {
        self.with(move |c| {
            let tx = c.savepoint()?;
            let cl = &new.claim;
            if let Some((_, rec)) = load_by_key(&tx, &cl.scheme_id, &cl.claim_id)? {
                return Ok(core::existing(rec, &new.request_hash));
            }
            let dup = invoice_holder(&tx, cl)?;
            insert_claim(&tx, &new, dup)?;
            let (_, rec) = load_existing(&tx, &cl.scheme_id, &cl.claim_id)?;
            tx.commit()?;
            Ok(core::created(rec))
        })
        .await
    }

    async fn begin_coordinated(
        &self,
        new: &NewClaim,
        outcome: Outcome,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        if !matches!(
            outcome,
            Outcome::Coordinated {
                authorization: None,
                ..
            }
        ) {
            return Ok(None);
        }
        let new = new.clone();
        self.write(Moves::Usage, move |c| {
            let tx = c.savepoint()?;
            let cl = &new.claim;
            if load_by_key(&tx, &cl.scheme_id, &cl.claim_id)?.is_some()
                || invoice_holder(&tx, cl)?.is_some()
            {
                return Ok(None);
            }
            // One transaction: the claim's row, then its outcome as
            // `complete_claim` writes it (a ceiling without room drops
            // the transaction, and with it the row).
            insert_claim(&tx, &new, None)?;
            let (pk, rec) = load_existing(&tx, &cl.scheme_id, &cl.claim_id)?;
            apply_outcome(&tx, pk, &rec, outcome, None, new.now_ms)?;
            let (_, rec) = load_existing(&tx, &cl.scheme_id, &cl.claim_id)?;
            tx.commit()?;
            Ok(Some(rec))
        })
        .await
    }

    async fn get_claim(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        self.read(|conn| Ok(load_by_key(conn, scheme_id, claim_id)?.map(|(_, r)| r)))
    }

    async fn complete_claim(
        &self,
        claim: &Claim,
        outcome: Outcome,
        withdrawal: Option<&str>,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let (s, cid) = (claim.scheme_id.clone(), claim.claim_id.clone());
        let withdrawal = withdrawal.map(str::to_string);
        self.write(Moves::Usage, move |c| {
            transition(c, &s, &cid, |tx, pk, rec| {
                if !core::may_complete(rec.state) {
                    return Ok(false);
                }
                apply_outcome(tx, pk, rec, outcome, withdrawal.as_deref(), now_ms)?;
                Ok(true)
            })
        })
        .await
    }

    async fn defer(
        &self,
        scheme_id: &str,
        claim_id: &str,
        from: passerelle_domain::ClaimState,
        next_attempt_ms: i64,
        last_error: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let (s, cid, err) = (
            scheme_id.to_string(),
            claim_id.to_string(),
            last_error.to_string(),
        );
        self.with(move |c| {
            transition(c, &s, &cid, |tx, pk, rec| {
                let Some(new_state) = core::deferred_state(rec.state, from) else {
                    return Ok(false);
                };
                let seq = if new_state != rec.state {
                    next_seq(tx)?
                } else {
                    rec.change_seq as i64
                };
                tx.prepare_cached("UPDATE claims SET state = ?2, next_attempt_ms = ?3, last_error = ?4, change_seq = ?5, \
                     updated_ms = ?6 WHERE id = ?1")?.execute(params![pk, new_state.as_str(), next_attempt_ms, err, seq, now_ms],
                )?;
                Ok(true)
            })
        })
        .await
    }

    async fn lease_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        self.with(move |c| {
            let tx = c.savepoint()?;
            let due: Vec<(i64, i64, String, String)> = {
                let mut st = tx.prepare_cached(&format!(
                    "SELECT id, next_attempt_ms, scheme_id, claim_id FROM claims \
                     WHERE next_attempt_ms IS NOT NULL AND next_attempt_ms <= ?1 \
                     AND {} AND {} ORDER BY next_attempt_ms LIMIT ?2",
                    core::SQL_TAKEN_BY_WORKER,
                    core::sql_held_partners("?1")
                ))?;
                st.query_map(params![now_ms, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<_, _>>()?
            };
            let mut out = Vec::with_capacity(due.len());
            for (pk, old, s, cid) in due {
                let n = tx
                    .prepare_cached(
                        "UPDATE claims SET next_attempt_ms = ?2, attempts = attempts + 1 \
                     WHERE id = ?1 AND next_attempt_ms = ?3",
                    )?
                    .execute(params![pk, now_ms + lease_ms, old])?;
                if n == 1 {
                    out.push(load_existing(&tx, &s, &cid)?.1);
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn expedite(
        &self,
        mutuelle_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<u64, StoreError> {
        let m = mutuelle_id.to_string();
        self.with(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE claims SET next_attempt_ms = ?2 WHERE mutuelle_id = ?1 \
                 AND state IN ('pending_partner', 'cancel_pending') AND next_attempt_ms > ?2 + ?3",
                )?
                .execute(params![m, now_ms, lease_ms])?;
            Ok(n as u64)
        })
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
        let (s, cid, key, why) = (
            scheme_id.to_string(),
            claim_id.to_string(),
            cancel_key.to_string(),
            reason.to_string(),
        );
        self.with(move |c| {
            transition(c, &s, &cid, |tx, pk, rec| {
                if !core::may_begin_cancel(rec.state) {
                    return Ok(false);
                }
                let seq = next_seq(tx)?;
                tx.prepare_cached("UPDATE claims SET state = 'cancel_pending', cancel_key = ?2, cancel_reason = ?3, \
                     next_attempt_ms = ?4, attempts = 0, change_seq = ?5, updated_ms = ?6 WHERE id = ?1")?.execute(params![pk, key, why, lease_until_ms, seq, now_ms],
                )?;
                Ok(true)
            })
        })
        .await
    }

    async fn withdrawal_tried(
        &self,
        scheme_id: &str,
        claim_id: &str,
        next_attempt_ms: Option<i64>,
        last_error: &str,
    ) -> Result<Transition, StoreError> {
        let (s, cid, note) = (
            scheme_id.to_string(),
            claim_id.to_string(),
            last_error.to_string(),
        );
        self.with(move |c| {
            transition(c, &s, &cid, |tx, pk, rec| {
                if !core::owes_withdrawal(rec) {
                    return Ok(false);
                }
                tx.prepare_cached(
                    "UPDATE claims SET next_attempt_ms = ?2, last_error = ?3 WHERE id = ?1",
                )?
                .execute(params![pk, next_attempt_ms, note])?;
                Ok(true)
            })
        })
        .await
    }

    async fn complete_cancel(
        &self,
        scheme_id: &str,
        claim_id: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let (s, cid, note) = (
            scheme_id.to_string(),
            claim_id.to_string(),
            note.to_string(),
        );
        self.write(Moves::Usage, move |c| {
            transition(c, &s, &cid, |tx, pk, rec| {
                if !core::may_complete_cancel(rec.state) {
                    return Ok(false);
                }
                tx.prepare_cached("UPDATE ceiling_usage SET \
                       used_amount = used_amount - (SELECT amount FROM claim_consumption c WHERE c.claim_pk = ?1 AND c.ceiling_key = ceiling_usage.ceiling_key), \
                       used_count = used_count - (SELECT count FROM claim_consumption c WHERE c.claim_pk = ?1 AND c.ceiling_key = ceiling_usage.ceiling_key) \
                     WHERE mutuelle_id = ?2 AND ceiling_key IN (SELECT ceiling_key FROM claim_consumption WHERE claim_pk = ?1)")?.execute(params![pk, rec.mutuelle_id],
                )?;
                tx.prepare_cached("DELETE FROM claim_consumption WHERE claim_pk = ?1")?.execute([pk])?;
                // Cancelled after its period closed: the mutuelle recovers what it
                // owed, in the next open period (an indu), instead of the closed
                // statement changing.
                tx.prepare_cached("INSERT INTO recoveries (claim_pk, scheme_id, mutuelle_id, from_period, amount, created_ms) \
                     SELECT c.id, c.scheme_id, c.mutuelle_id, p.number, c.mutuelle_total, ?2 \
                     FROM claims c JOIN periods p ON p.id = c.period_id \
                     WHERE c.id = ?1 AND c.mutuelle_total > 0")?.execute(params![pk, now_ms],
                )?;
                let seq = next_seq(tx)?;
                tx.prepare_cached("UPDATE claims SET state = 'cancelled', next_attempt_ms = NULL, last_error = ?4, \
                     change_seq = ?2, updated_ms = ?3 WHERE id = ?1")?.execute(params![pk, seq, now_ms, note],
                )?;
                Ok(true)
            })
        })
        .await
    }

    async fn list_changed(
        &self,
        scheme_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        let s = scheme_id.to_string();
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM claims WHERE scheme_id = ?1 AND change_seq > ?2 \
                 ORDER BY change_seq LIMIT ?3",
                core::CLAIM_COLS
            ))?;
            let rows = rows_of(&mut st, params![s, after_seq as i64, limit], core::claim)?;
            rows.into_iter()
                .map(|(pk, mut rec)| {
                    rec.shares = load_lines(c, pk)?;
                    Ok(rec)
                })
                .collect()
        })
        .await
    }

    async fn list_claims(
        &self,
        f: &ClaimFilter,
        after: i64,
        limit: u32,
    ) -> Result<ClaimPage, StoreError> {
        let f = f.clone();
        self.scan(move |c| {
            let filter = core::claim_filter_sql(&f, '?');
            let args = (
                f.scheme_id.clone(),
                f.mutuelle_id.clone(),
                f.state.map(|s| s.as_str()),
                f.care_from.map(date::format),
                f.care_to.map(date::format),
                f.member_number.clone(),
                f.provider_id.clone(),
            );
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM claims c LEFT JOIN periods p ON p.id = c.period_id \
                 WHERE {filter} AND c.id > ?8 ORDER BY c.id LIMIT ?9",
                core::SUMMARY_COLS
            ))?;
            let rows = rows_of(
                &mut st,
                params![
                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, after, limit
                ],
                core::summary,
            )?;
            let (count, totals) = c.query_row(
                &format!(
                    "SELECT COUNT(*), {}, {}, {} FROM claims c WHERE {filter}",
                    split_sum(&core::standing_total(&f, "billed_total")),
                    split_sum(&core::standing_total(&f, "scheme_total")),
                    split_sum(&core::standing_total(&f, "mutuelle_total"))
                ),
                params![args.0, args.1, args.2, args.3, args.4, args.5, args.6],
                |r| Ok((r.get::<_, i64>(0)?, totals_at(r, 1)?)),
            )?;
            Ok(ClaimPage {
                rows,
                totals,
                total_count: count as u64,
            })
        })
        .await
    }

    async fn lease_now(
        &self,
        scheme_id: &str,
        claim_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        let (s, cid) = (scheme_id.to_string(), claim_id.to_string());
        self.with(move |c| {
            let tx = c.savepoint()?;
            let n = tx
                .prepare_cached(&format!(
                    "UPDATE claims SET next_attempt_ms = ?3, attempts = attempts + 1 \
                     WHERE scheme_id = ?1 AND claim_id = ?2 AND {}",
                    core::sql_taken_now("?4")
                ))?
                .execute(params![s, cid, now_ms + lease_ms, now_ms])?;
            let rec = if n == 1 {
                Some(load_existing(&tx, &s, &cid)?.1)
            } else {
                None
            };
            tx.commit()?;
            Ok(rec)
        })
        .await
    }
}

/// The claim at the key the invoice is held by (`core::SQL_HOLDS_INVOICE`),
/// if another live claim holds it.
fn invoice_holder(tx: &Connection, cl: &Claim) -> Result<Option<String>, StoreError> {
    Ok(tx
        .prepare_cached(&format!(
            "SELECT claim_id FROM claims WHERE scheme_id = ?1 AND provider_id = ?2 \
             AND invoice_number = ?3 AND {} LIMIT 1",
            core::SQL_HOLDS_INVOICE
        ))?
        .query_row(
            params![cl.scheme_id, cl.provider_id, cl.invoice_number],
            |r| r.get(0),
        )
        .optional()?)
}

/// A new claim's row (RECEIVED, or REJECTED as the duplicate of
/// `duplicate_of`).
fn insert_claim(tx: &Connection, new: &NewClaim, dup: Option<String>) -> Result<(), StoreError> {
    let cl = &new.claim;
    let seq = next_seq(tx)?;
    let row = core::new_claim_row(new, dup);
    tx.prepare_cached(&format!("INSERT INTO claims ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, \
         ?16, ?17, ?18, ?19, ?20, ?21)", core::CLAIM_INSERT_COLS))?.execute(params![
            cl.scheme_id,
            cl.claim_id,
            new.request_hash,
            row.body,
            cl.provider_id,
            cl.invoice_number,
            new.mutuelle_id,
            new.member_number,
            row.state.as_str(),
            new.adjudication_key,
            row.rejection_code,
            row.rejection_message,
            row.next_attempt_ms,
            seq,
            new.now_ms,
            row.date_of_care,
            cl.currency,
            row.payee,
            row.billed_total,
            row.scheme_total,
            row.duplicate_of,
        ],
    )?;
    Ok(())
}

/// A claim's outcome, on its row `pk` awaiting its partner: see
/// `ClaimStore::complete_claim`.
fn apply_outcome(
    tx: &Connection,
    pk: i64,
    rec: &ClaimRecord,
    outcome: Outcome,
    withdrawal: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let seq = next_seq(tx)?;
    match outcome {
        Outcome::Coordinated {
            shares,
            product,
            partner_reference,
            consumption,
            authorization,
        } => {
            if let Some(reference) = &authorization {
                super::authorizations::consume(tx, reference, &rec.claim.claim_id, now_ms)?;
            }
            for (key, u) in core::consumed(&consumption) {
                tx.prepare_cached(
                    "INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) \
                     VALUES (?1, ?2, 0, 0) ON CONFLICT DO NOTHING",
                )?
                .execute(params![rec.mutuelle_id, key])?;
                let n = tx.prepare_cached("UPDATE ceiling_usage SET used_amount = used_amount + ?3, used_count = used_count + ?4 \
                     WHERE mutuelle_id = ?1 AND ceiling_key = ?2 \
                     AND (?5 IS NULL OR used_amount + held_amount + ?3 <= ?5) \
                     AND (?6 IS NULL OR used_count + held_count + ?4 <= ?6)")?.execute(params![rec.mutuelle_id, key, u.amount, u.count, u.limit_amount, u.limit_count],
                )?;
                if n == 0 {
                    // Dropping the transaction rolls everything back.
                    return Err(StoreError::CeilingConflict(key));
                }
                tx.prepare_cached("INSERT INTO claim_consumption (claim_pk, ceiling_key, amount, count) VALUES (?1, ?2, ?3, ?4)")?.execute(params![pk, key, u.amount, u.count],
                )?;
            }
            write_lines(tx, pk, &rec.claim, &shares)?;
            if let Some(p) = &product {
                tx.prepare_cached("UPDATE products SET used = 1 WHERE mutuelle_id = ?1 AND product_id = ?2 AND version = ?3")?.execute(params![rec.mutuelle_id, p.id, p.version],
                )?;
            }
            tx.prepare_cached("UPDATE claims SET state = 'coordinated', product_id = ?2, product_version = ?3, \
                 product_name = ?4, partner_reference = ?5, next_attempt_ms = NULL, last_error = '', \
                 change_seq = ?6, updated_ms = ?7, mutuelle_total = ?8 WHERE id = ?1")?.execute(params![
                    pk,
                    product.as_ref().map(|p| p.id.clone()),
                    product.as_ref().map(|p| p.version),
                    product.as_ref().map(|p| p.name.clone()),
                    partner_reference,
                    seq,
                    now_ms,
                    core::mutuelle_total(&shares),
                ],
            )?;
        }
        // A cancel owed sets the cancel key and makes it due now
        // (`core::owes_withdrawal`); otherwise nothing is left to do.
        Outcome::Rejected(reason) => {
            tx.prepare_cached("UPDATE claims SET state = 'rejected', rejection_code = ?2, rejection_message = ?3, \
                 cancel_key = COALESCE(?6, cancel_key), next_attempt_ms = CASE WHEN ?6 IS NULL THEN NULL ELSE ?5 END, \
                 attempts = CASE WHEN ?6 IS NULL THEN attempts ELSE 0 END, \
                 change_seq = ?4, updated_ms = ?5 WHERE id = ?1")?.execute(params![pk, core::code_str(reason.code), reason.message, seq, now_ms, withdrawal],
            )?;
        }
    }
    Ok(())
}
