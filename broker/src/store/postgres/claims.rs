//! Claims: their lifecycle, leases and listings.

use super::*;
use passerelle_domain::{CeilingUse, Claim, ProductRef};

impl PgStore {
    /// How a transaction that changes a claim reads it first.
    pub(super) fn for_change(&self) -> Read {
        Read::ForChange { mark: self.mark }
    }
}

#[async_trait]
impl ClaimStore for PgStore {
    async fn begin_claim(&self, new: NewClaim) -> Result<Begin, StoreError> {
        let cl = &new.claim;
        let c = self.client().await?;
        // The claim holding the invoice, once an insert found one: the next
        // insert stores this claim as its duplicate.
        let mut dup: Option<String> = None;
        // A new claim is one statement, its own transaction. The unique
        // keys decide between racing replicas: (scheme, claim id), and
        // (scheme, provider, invoice) among the claims that hold their
        // invoice (a partial index). Each lost race costs one more turn.
        for _ in 0..4 {
            let row = core::new_claim_row(&new, dup.take());
            let insert = format!(
                "INSERT INTO claims ({}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, {}, $14, $14, $15, $16, $17, $18, $19, $20) \
                 ON CONFLICT DO NOTHING RETURNING {}",
                core::CLAIM_INSERT_COLS,
                changes::marked_change_seq(self.mark),
                core::CLAIM_COLS
            );
            let inserted = q1(
                &c,
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
            .await?;
            if let Some(r) = inserted {
                // A new claim has no lines yet.
                return Ok(core::created(core::claim(&r)?.1));
            }
            if let Some((_, rec)) = load(&c, &cl.scheme_id, &cl.claim_id, Read::Plain).await? {
                return Ok(core::existing(rec, &new.request_hash));
            }
            // Another claim holds the invoice (or did, and was cancelled
            // since: then the next turn inserts this one as new).
            dup = q1(
                &c,
                &format!(
                    "SELECT claim_id FROM claims WHERE scheme_id = $1 AND provider_id = $2 \
                     AND invoice_number = $3 AND {} LIMIT 1",
                    core::SQL_HOLDS_INVOICE
                ),
                &[&cl.scheme_id, &cl.provider_id, &cl.invoice_number],
            )
            .await?
            .map(|r| r.get(0));
        }
        Err(StoreError::Backend(format!(
            "claim {}: its insert kept meeting concurrent changes of the same keys; send it again",
            cl.claim_id
        )))
    }

    async fn begin_coordinated(
        &self,
        new: &NewClaim,
        outcome: Outcome,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        let Outcome::Coordinated {
            shares,
            product,
            partner_reference,
            consumption,
            authorization: None,
        } = outcome
        else {
            return Ok(None);
        };
        let done = Coordinated {
            claim: &new.claim,
            shares: &shares,
            product: product.as_ref(),
            partner_reference: &partner_reference,
            consumption: &consumption,
            now_ms: new.now_ms,
        };
        // One statement, its own transaction: the claim's row inserted
        // coordinated (nothing if its key or its invoice is held), then
        // what follows from it as for an outcome.
        let c = self.client().await?;
        let Some(row) = coordinate(&c, self.mark, &done, Some(new)).await? else {
            return Ok(None);
        };
        let (_, mut rec) = core::claim(&row)?;
        rec.shares = core::stored_shares(&new.claim, &shares);
        Ok(Some(rec))
    }

    async fn get_claim(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        let c = self.client().await?;
        Ok(load(&c, scheme_id, claim_id, Read::Plain)
            .await?
            .map(|(_, r)| r))
    }

    async fn complete_claim(
        &self,
        claim: &Claim,
        outcome: Outcome,
        withdrawal: Option<&str>,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let (scheme_id, claim_id) = (&claim.scheme_id, &claim.claim_id);
        let mut c = self.client().await?;
        let applied = match outcome {
            Outcome::Coordinated {
                shares,
                product,
                partner_reference,
                consumption,
                authorization,
            } => {
                let done = Coordinated {
                    claim,
                    shares: &shares,
                    product: product.as_ref(),
                    partner_reference: &partner_reference,
                    consumption: &consumption,
                    now_ms,
                };
                let row = match &authorization {
                    // The common case: one statement, its own transaction.
                    None => coordinate(&c, self.mark, &done, None).await?,
                    // The authorization first (the claim's row, then the
                    // authorization's, then the ceilings': the order of
                    // every writer): consumed, its hold released; then the
                    // same statement in the same transaction.
                    Some(reference) => {
                        let tx = c.transaction().await?;
                        let (_, rec) =
                            load_existing(&tx, scheme_id, claim_id, self.for_change()).await?;
                        if !core::may_complete(rec.state) {
                            return Ok(Transition::Stale(rec));
                        }
                        super::authorizations::consume(
                            &tx,
                            reference,
                            claim_id,
                            &consumption,
                            now_ms,
                        )
                        .await?;
                        // The row is locked and awaits its partner: the
                        // statement changes it, or nothing commits.
                        let row = coordinate(&tx, self.mark, &done, None).await?.ok_or_else(|| {
                            StoreError::Backend(format!(
                                "claim {claim_id} did not change under its row lock"
                            ))
                        })?;
                        tx.commit().await?;
                        Some(row)
                    }
                };
                row.map(|r| (r, core::stored_shares(claim, &shares)))
            }
            // A cancel owed sets the cancel key and makes it due now
            // (`core::owes_withdrawal`); otherwise nothing is left to do.
            Outcome::Rejected(reason) => q1(
                &c,
                &format!(
                    "UPDATE claims c SET state = 'rejected', rejection_code = $3, rejection_message = $4, \
                     cancel_key = COALESCE($6, c.cancel_key), \
                     next_attempt_ms = CASE WHEN $6::TEXT IS NULL THEN NULL ELSE $5::BIGINT END, \
                     attempts = CASE WHEN $6::TEXT IS NULL THEN c.attempts ELSE 0 END, \
                     change_seq = {}, updated_ms = $5 FROM {} \
                     WHERE c.id = {} AND c.state IN {} RETURNING {}",
                    changes::CHANGE_SEQ,
                    changes::mark_from(self.mark),
                    CLAIM_PK,
                    core::SQL_AWAITING_PARTNER,
                    core::CLAIM_COLS
                ),
                &[
                    scheme_id,
                    claim_id,
                    &core::code_str(reason.code),
                    &reason.message,
                    &now_ms,
                    &withdrawal,
                ],
            )
            .await?
            .map(|r| (r, None)),
        };
        match applied {
            Some((row, shares)) => {
                let (_, mut rec) = core::claim(&row)?;
                rec.shares = shares;
                Ok(Transition::Applied(rec))
            }
            // Nothing changed: the claim no longer awaits its partner
            // (another worker or a cancel got there first), or is unknown.
            None => Ok(Transition::Stale(
                load_existing(&c, scheme_id, claim_id, Read::Plain).await?.1,
            )),
        }
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
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, self.for_change()).await?;
        let Some(new_state) = core::deferred_state(rec.state, from) else {
            return Ok(Transition::Stale(rec));
        };
        // A new change number only when the state changes.
        let seq = if new_state != rec.state {
            changes::CHANGE_SEQ
        } else {
            "change_seq"
        };
        x(
            &tx,
            &format!(
                "UPDATE claims SET state = $2, next_attempt_ms = $3, last_error = $4, change_seq = {seq}, \
                 updated_ms = $5 WHERE id = $1"
            ),
            &[&pk, &new_state.as_str(), &next_attempt_ms, &last_error, &now_ms],
        )
        .await?;
        let (_, rec) = load_existing(&tx, scheme_id, claim_id, Read::Plain).await?;
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
                 AND {} AND {} ORDER BY next_attempt_ms LIMIT $3 FOR UPDATE OF claims SKIP LOCKED) \
                 RETURNING scheme_id, claim_id",
                core::SQL_TAKEN_BY_WORKER,
                core::sql_held_partners("$1")
            ),
            &[&now_ms, &(now_ms + lease_ms), &(limit as i64)],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let (s, cid): (String, String) = (r.get(0), r.get(1));
            out.push(load_existing(&tx, &s, &cid, Read::Plain).await?.1);
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
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, self.for_change()).await?;
        if !core::may_begin_cancel(rec.state) {
            return Ok(Transition::Stale(rec));
        }
        x(
            &tx,
            &format!(
                "UPDATE claims SET state = 'cancel_pending', cancel_key = $2, cancel_reason = $3, \
                 next_attempt_ms = $4, attempts = 0, change_seq = {}, updated_ms = $5 WHERE id = $1",
                changes::CHANGE_SEQ
            ),
            &[&pk, &cancel_key, &reason, &lease_until_ms, &now_ms],
        )
        .await?;
        let (_, rec) = load_existing(&tx, scheme_id, claim_id, Read::Plain).await?;
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
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, self.for_change()).await?;
        if !core::may_complete_cancel(rec.state) {
            return Ok(Transition::Stale(rec));
        }
        // The ceiling rows in byte order of their keys first, as every
        // other writer takes them (the join below has no order of its own).
        q(
            &tx,
            "SELECT 1 FROM ceiling_usage WHERE mutuelle_id = $2 AND ceiling_key IN \
             (SELECT ceiling_key FROM claim_consumption WHERE claim_pk = $1) \
             ORDER BY ceiling_key COLLATE \"C\" FOR UPDATE",
            &[&pk, &rec.mutuelle_id],
        )
        .await?;
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
        x(
            &tx,
            &format!(
                "UPDATE claims SET state = 'cancelled', next_attempt_ms = NULL, last_error = $3, change_seq = {}, \
                 updated_ms = $2 WHERE id = $1",
                changes::CHANGE_SEQ
            ),
            &[&pk, &now_ms, &note],
        )
        .await?;
        let (_, rec) = load_existing(&tx, scheme_id, claim_id, Read::Plain).await?;
        tx.commit().await?;
        Ok(Transition::Applied(rec))
    }

    async fn withdrawal_tried(
        &self,
        scheme_id: &str,
        claim_id: &str,
        next_attempt_ms: Option<i64>,
        last_error: &str,
    ) -> Result<Transition, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, self.for_change()).await?;
        if !core::owes_withdrawal(&rec) {
            return Ok(Transition::Stale(rec));
        }
        x(
            &tx,
            "UPDATE claims SET next_attempt_ms = $2, last_error = $3 WHERE id = $1",
            &[&pk, &next_attempt_ms, &last_error],
        )
        .await?;
        let (_, rec) = load_existing(&tx, scheme_id, claim_id, Read::Plain).await?;
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
        // Two statements: the second's snapshot sees every change below the
        // horizon the first read (changes.rs).
        let horizon = changes::horizon(&c, self.mark).await?;
        let rows = q(
            &c,
            &format!(
                "SELECT {} FROM claims WHERE scheme_id = $1 AND change_seq > $2 AND change_seq < $4 \
                 ORDER BY change_seq LIMIT $3",
                core::CLAIM_COLS
            ),
            &[&scheme_id, &(after_seq as i64), &(limit as i64), &horizon],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut with_lines: Vec<i64> = Vec::new();
        for r in &rows {
            let (pk, rec) = core::claim(r)?;
            if core::may_have_lines(rec.state) {
                with_lines.push(pk);
            }
            out.push((pk, rec));
        }
        // The page's lines in one query (not one per claim).
        let mut lines: std::collections::HashMap<i64, Vec<LineShare>> = Default::default();
        if !with_lines.is_empty() {
            let rows = q(
                &c,
                &format!(
                    "SELECT {}, claim_pk FROM claim_lines WHERE claim_pk = ANY($1) ORDER BY claim_pk, sequence",
                    core::LINE_SHARE_COLS
                ),
                &[&with_lines],
            )
            .await?;
            for r in &rows {
                lines
                    .entry(r.get(3))
                    .or_default()
                    .push(core::line_share(r)?);
            }
        }
        Ok(out
            .into_iter()
            .map(|(pk, mut rec)| {
                rec.shares = lines.remove(&pk);
                rec
            })
            .collect())
    }

    async fn list_claims(
        &self,
        f: &ClaimFilter,
        after: i64,
        limit: u32,
    ) -> Result<ClaimPage, StoreError> {
        let c = self.client().await?;
        let filter = core::claim_filter_sql(f, '$');
        let state = f.state.map(|s| s.as_str().to_string());
        let from = f.care_from.map(date::format);
        let to = f.care_to.map(date::format);
        let rows = q(
            &c,
            &format!(
                "SELECT {} FROM claims c LEFT JOIN periods p ON p.id = c.period_id \
                 WHERE {filter} AND c.id > $8 ORDER BY c.id LIMIT $9",
                core::SUMMARY_COLS
            ),
            &[
                &f.scheme_id,
                &f.mutuelle_id,
                &state,
                &from,
                &to,
                &f.member_number,
                &f.provider_id,
                &after,
                &(limit as i64),
            ],
        )
        .await?;
        let out = decode(&rows, core::summary)?;
        let t = q1(
            &c,
            &format!(
                "SELECT COUNT(*), COALESCE(SUM({}), 0)::TEXT, COALESCE(SUM({}), 0)::TEXT, \
                 COALESCE(SUM({}), 0)::TEXT FROM claims c WHERE {filter}",
                core::standing_total(f, "billed_total"),
                core::standing_total(f, "scheme_total"),
                core::standing_total(f, "mutuelle_total")
            ),
            &[
                &f.scheme_id,
                &f.mutuelle_id,
                &state,
                &from,
                &to,
                &f.member_number,
                &f.provider_id,
            ],
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
                 WHERE id = {CLAIM_PK} AND {}",
                core::sql_taken_now("$4")
            ),
            &[&scheme_id, &claim_id, &(now_ms + lease_ms), &now_ms],
        )
        .await?;
        let rec = if n == 1 {
            Some(
                load_existing(&tx, scheme_id, claim_id, Read::Plain)
                    .await?
                    .1,
            )
        } else {
            None
        };
        tx.commit().await?;
        Ok(rec)
    }
}

/// A claim's coordinated outcome, as [`coordinate`] writes it.
struct Coordinated<'a> {
    claim: &'a Claim,
    shares: &'a [LineShare],
    product: Option<&'a ProductRef>,
    partner_reference: &'a str,
    consumption: &'a [CeilingUse],
    now_ms: i64,
}

/// Writes a coordinated outcome in one statement (one round trip; its own
/// transaction unless `c` is one), in this order:
///
/// 1. the claim's row, only while it awaits its partner: its state, its
///    product, M, and a change number (the writer mark, a FROM item, is
///    taken before the update gives the transaction its id). Another
///    writer of the row waits here, and finds it changed: nothing follows;
/// 2. each ceiling, one conditional upsert per row (used + held + amount
///    within the limit; the first use creates it), in byte order of the
///    keys across writers (no deadlock). Under READ COMMITTED a second
///    writer re-checks the row the first committed;
/// 3. what the claim consumed (so that a cancel gives back exactly that),
///    its lines (S + M + P = B, checked by the table), and its product
///    version marked used.
///
/// A ceiling without room makes the statement fail (`passerelle_refuse`,
/// [`REFUSED`]), which undoes all of it: `CeilingConflict`. `None`: the
/// claim no longer awaits its partner, or is unknown; nothing changed.
async fn coordinate<C: GenericClient + Sync>(
    c: &C,
    mark: i64,
    o: &Coordinated<'_>,
    new: Option<&NewClaim>,
) -> Result<Option<Row>, StoreError> {
    let lines: Vec<_> = core::line_rows(o.claim, o.shares).collect();
    let col = |f: &dyn Fn(&core::LineRow) -> i64| -> Vec<i64> { lines.iter().map(f).collect() };
    let (seqs, quantities) = (
        col(&|l| i64::from(l.sequence)),
        col(&|l| i64::from(l.quantity)),
    );
    let (billed, tariff) = (col(&|l| l.billed), col(&|l| l.tariff_base));
    let (scheme, mutuelle, patient) = (
        col(&|l| l.scheme_share),
        col(&|l| l.mutuelle_share),
        col(&|l| l.patient_share),
    );
    let acts: Vec<&str> = lines.iter().map(|l| l.act_code).collect();
    let categories: Vec<&str> = lines.iter().map(|l| l.category).collect();
    let reasons: Vec<&str> = lines.iter().map(|l| l.reasons.as_str()).collect();
    let used: Vec<_> = core::consumed(o.consumption).collect();
    let keys: Vec<&str> = used.iter().map(|(k, _)| k.as_str()).collect();
    let amounts: Vec<i64> = used.iter().map(|(_, u)| u.amount).collect();
    let counts: Vec<i64> = used.iter().map(|(_, u)| u.count as i64).collect();
    let limit_amounts: Vec<Option<i64>> = used.iter().map(|(_, u)| u.limit_amount).collect();
    let limit_counts: Vec<Option<i64>> = used
        .iter()
        .map(|(_, u)| u.limit_count.map(|v| v as i64))
        .collect();
    let total = core::mutuelle_total(o.shares);
    // The claim's row, named `upd` for the rest: changed while it awaits
    // its partner, or (a new claim, `ClaimStore::begin_coordinated`)
    // inserted already coordinated unless its key or its invoice is held.
    let row = match new {
        None => format!(
            "UPDATE claims c SET state = 'coordinated', product_id = $3, product_version = $4, \
             product_name = $5, partner_reference = $6, next_attempt_ms = NULL, last_error = '', \
             change_seq = {seq}, updated_ms = $7, mutuelle_total = $8 FROM {mark} \
             WHERE c.id = {pk} AND c.state IN {awaiting} RETURNING {cols}",
            seq = changes::CHANGE_SEQ,
            mark = changes::mark_from(mark),
            pk = CLAIM_PK,
            awaiting = core::SQL_AWAITING_PARTNER,
            cols = core::CLAIM_COLS
        ),
        Some(_) => format!(
            "INSERT INTO claims ({insert}, product_id, product_version, product_name, \
             partner_reference, mutuelle_total) \
             VALUES ($1, $2, $24, $25, $26, $27, $28, $29, 'coordinated', $30, NULL, NULL, NULL, {seq}, \
             $7, $7, $31, $32, $33, $34, $35, NULL, $3, $4, $5, $6, $8) \
             ON CONFLICT DO NOTHING RETURNING {cols}",
            insert = core::CLAIM_INSERT_COLS,
            seq = changes::marked_change_seq(mark),
            cols = core::CLAIM_COLS
        ),
    };
    let sql = format!(
        "WITH upd AS ({row}), \
         ceil AS (INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) \
           SELECT upd.mutuelle_id, u.k, u.a, u.n FROM upd, \
             UNNEST($9::TEXT[], $10::BIGINT[], $11::BIGINT[], $12::BIGINT[], $13::BIGINT[]) AS u(k, a, n, la, lc) \
           WHERE (u.la IS NULL OR u.a <= u.la) AND (u.lc IS NULL OR u.n <= u.lc) \
           ORDER BY u.k COLLATE \"C\" \
           ON CONFLICT (mutuelle_id, ceiling_key) DO UPDATE \
           SET used_amount = ceiling_usage.used_amount + excluded.used_amount, \
             used_count = ceiling_usage.used_count + excluded.used_count \
           WHERE NOT EXISTS (SELECT 1 FROM UNNEST($9::TEXT[], $12::BIGINT[], $13::BIGINT[]) AS l(k, la, lc) \
             WHERE l.k = excluded.ceiling_key AND ( \
               (l.la IS NOT NULL AND ceiling_usage.used_amount + ceiling_usage.held_amount + excluded.used_amount > l.la) \
               OR (l.lc IS NOT NULL AND ceiling_usage.used_count + ceiling_usage.held_count + excluded.used_count > l.lc))) \
           RETURNING ceiling_key), \
         used AS (INSERT INTO claim_consumption (claim_pk, ceiling_key, amount, count) \
           SELECT upd.id, u.* FROM upd, UNNEST($9::TEXT[], $10::BIGINT[], $11::BIGINT[]) AS u), \
         lines AS (INSERT INTO claim_lines (claim_pk, sequence, act_code, care_category, quantity, \
           billed, tariff_base, scheme_share, mutuelle_share, patient_share, reasons) \
           SELECT upd.id, l.* FROM upd, UNNEST($14::BIGINT[], $15::TEXT[], $16::TEXT[], $17::BIGINT[], \
           $18::BIGINT[], $19::BIGINT[], $20::BIGINT[], $21::BIGINT[], $22::BIGINT[], $23::TEXT[]) AS l), \
         product AS (UPDATE products p SET used = TRUE FROM upd WHERE p.mutuelle_id = upd.mutuelle_id \
           AND p.product_id = $3 AND p.version = $4 AND NOT p.used) \
         SELECT upd.*, CASE WHEN (SELECT count(*) FROM ceil) < cardinality($9::TEXT[]) \
           THEN passerelle_refuse((SELECT k.i FROM UNNEST($9::TEXT[]) WITH ORDINALITY AS k(k, i) \
             WHERE k.k NOT IN (SELECT ceiling_key FROM ceil) LIMIT 1)::INT) END FROM upd"
    );
    let refused = |e| match e {
        // The ceiling's position: the key is not written to the database's
        // log (it holds a member number).
        StoreError::CeilingConflict(m) => StoreError::CeilingConflict(
            refused_ceiling(&m)
                .and_then(|i| keys.get(i))
                .map_or(m, |k| k.to_string()),
        ),
        e => e,
    };
    let product_id = o.product.map(|p| p.id.clone());
    let product_version = o.product.map(|p| i64::from(p.version));
    let product_name = o.product.map(|p| p.name.clone());
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &o.claim.scheme_id,
        &o.claim.claim_id,
        &product_id,
        &product_version,
        &product_name,
        &o.partner_reference,
        &o.now_ms,
        &total,
        &keys,
        &amounts,
        &counts,
        &limit_amounts,
        &limit_counts,
        &seqs,
        &acts,
        &categories,
        &quantities,
        &billed,
        &tariff,
        &scheme,
        &mutuelle,
        &patient,
        &reasons,
    ];
    let inserted = new.map(|n| (n, core::new_claim_row(n, None)));
    if let Some((n, r)) = &inserted {
        let cl = &n.claim;
        params.extend_from_slice(&[
            &n.request_hash,
            &r.body,
            &cl.provider_id,
            &cl.invoice_number,
            &n.mutuelle_id,
            &n.member_number,
            &n.adjudication_key,
            &r.date_of_care,
            &cl.currency,
            &r.payee,
            &r.billed_total,
            &r.scheme_total,
        ]);
    }
    q1(c, &sql, &params).await.map_err(refused)
}

/// A claim's row by its keys, for a statement that changes it: the unique
/// index on (scheme, claim id) finds it whatever the planner thinks of the
/// partial indexes on its state (which it once preferred, and which hold
/// every claim of a backlog).
const CLAIM_PK: &str = "(SELECT id FROM claims WHERE scheme_id = $1 AND claim_id = $2)";

/// The 0-based position of the ceiling `passerelle_refuse` names
/// (migration 15: "ceiling N has no room", N from 1).
fn refused_ceiling(message: &str) -> Option<usize> {
    message
        .strip_prefix("ceiling ")?
        .split_whitespace()
        .next()?
        .parse::<usize>()
        .ok()?
        .checked_sub(1)
}
