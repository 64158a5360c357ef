//! Periods, settlement and statements.

use super::*;
use crate::store::approvals::{Approved, outcome};

#[async_trait]
impl SettlementStore for PgStore {
    async fn list_periods(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
    ) -> Result<Vec<PeriodRecord>, StoreError> {
        let mut c = self.client().await?;
        let c = snapshot(&mut c).await?;
        let open = open_period(&c, scheme_id, mutuelle_id).await?;
        let mut out = vec![open.clone()];
        for n in (1..open.number).rev() {
            if let Some((_, p)) = load_period(&c, scheme_id, mutuelle_id, n).await? {
                out.push(p);
            }
        }
        c.commit().await?;
        Ok(out)
    }

    async fn closing_content(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        until_ms: i64,
    ) -> Result<crate::store::PeriodContent, StoreError> {
        let c = self.client().await?;
        // `close_period`'s conditions, counted and summed (sums as text,
        // read in i128 as `period_totals` reads them).
        let r = q1(
            &c,
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(c.billed_total), 0)::TEXT, \
                 COALESCE(SUM(c.scheme_total), 0)::TEXT, COALESCE(SUM(c.mutuelle_total), 0)::TEXT, \
                 (SELECT COALESCE(SUM(amount), 0)::TEXT FROM recoveries WHERE scheme_id = $1 \
                  AND mutuelle_id = $2 AND period_id IS NULL AND created_ms <= $3) \
                 FROM claims c WHERE c.scheme_id = $1 AND c.mutuelle_id = $2 AND {} \
                 AND c.updated_ms <= $3",
                core::period_claims("0")
            ),
            &[&scheme_id, &mutuelle_id, &until_ms],
        )
        .await?
        .ok_or_else(|| backend("no row"))?;
        Ok(crate::store::PeriodContent {
            claim_count: r.get::<_, i64>(0) as u32,
            billed: sum_at(&r, 1)?,
            scheme: sum_at(&r, 2)?,
            mutuelle: sum_at(&r, 3)?,
            recoveries: sum_at(&r, 4)?,
        })
    }

    async fn close_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        upto: &CloseUpTo,
        now_ms: i64,
        approved: Option<&Approved>,
    ) -> Result<PeriodRecord, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // A month of a large mutuelle is hundreds of thousands of claims,
        // each written: not a live call's statement (CLOSE_TIMEOUT_MS).
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            CLOSE_TIMEOUT_MS.max(self.statement_timeout_ms)
        ))
        .await?;
        advisory_lock(&tx, &format!("period\u{1f}{scheme_id}\u{1f}{mutuelle_id}")).await?;
        let number = open_number(&tx, scheme_id, mutuelle_id).await?;
        let id: i64 = q1(
            &tx,
            "INSERT INTO periods (scheme_id, mutuelle_id, number, state, closed_ms) VALUES ($1, $2, $3, 'closed', $4) RETURNING id",
            &[&scheme_id, &mutuelle_id, &(number as i64), &now_ms],
        )
        .await?
        .ok_or_else(|| backend("no row"))?
        .get(0);
        // With the oldest claim's creation time, kept on the period for
        // retention (migration 19, `audit::STALE_PERIODS`).
        let closed = q1(
            &tx,
            &format!(
                "WITH u AS (UPDATE claims c SET period_id = $3 WHERE c.scheme_id = $1 \
                 AND c.mutuelle_id = $2 AND {} AND c.updated_ms <= $4 RETURNING c.created_ms) \
                 SELECT COUNT(*), MIN(created_ms) FROM u",
                core::period_claims("0")
            ),
            &[&scheme_id, &mutuelle_id, &id, &upto.until_ms],
        )
        .await?
        .ok_or_else(|| backend("no row"))?;
        let (claims, first_created_ms): (i64, Option<i64>) = (closed.get(0), closed.get(1));
        let claims = claims as u64;
        let recoveries = x(
            &tx,
            "UPDATE recoveries SET period_id = $3 WHERE scheme_id = $1 AND mutuelle_id = $2 AND period_id IS NULL AND created_ms <= $4",
            &[&scheme_id, &mutuelle_id, &id, &upto.until_ms],
        )
        .await?;
        if claims + recoveries == 0 {
            return Err(core::nothing_to_close(scheme_id, mutuelle_id, upto));
        }
        let (_, p) = load_period(&tx, scheme_id, mutuelle_id, number)
            .await?
            .ok_or_else(|| backend("period vanished"))?;
        core::check_close(&p, upto)?;
        x(
            &tx,
            &core::store_period_totals(["$1", "$2", "$3", "$4", "$5", "$6"]),
            &[
                &i64::from(p.claim_count),
                &p.totals.billed,
                &p.totals.scheme,
                &p.totals.mutuelle,
                &p.recoveries,
                &id,
            ],
        )
        .await?;
        x(
            &tx,
            "UPDATE periods SET first_created_ms = $1 WHERE id = $2",
            &[&first_created_ms, &id],
        )
        .await?;
        approvals::mark_applied(&tx, approved, &outcome::closed(p.number)).await?;
        tx.commit().await?;
        Ok(p)
    }

    async fn settle_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        reference: &str,
        now_ms: i64,
        approved: Option<&Approved>,
    ) -> Result<PeriodRecord, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        advisory_lock(&tx, &format!("period\u{1f}{scheme_id}\u{1f}{mutuelle_id}")).await?;
        let Some((_, p)) = load_period(&tx, scheme_id, mutuelle_id, number).await? else {
            let open = open_period(&tx, scheme_id, mutuelle_id).await?.number;
            return Err(core::no_period_to_settle(
                scheme_id,
                mutuelle_id,
                number,
                open,
            ));
        };
        if !core::settle_applies(&p, reference)? {
            // Settled already with this reference: a proposal of it is
            // applied all the same.
            if approved.is_some() {
                approvals::mark_applied(&tx, approved, &outcome::settled(number)).await?;
                tx.commit().await?;
            }
            return Ok(p);
        }
        x(
            &tx,
            "UPDATE periods SET state = 'settled', settled_ms = $4, settlement_reference = $5 \
             WHERE scheme_id = $1 AND mutuelle_id = $2 AND number = $3",
            &[
                &scheme_id,
                &mutuelle_id,
                &(number as i64),
                &now_ms,
                &reference,
            ],
        )
        .await?;
        let (_, p) = load_period(&tx, scheme_id, mutuelle_id, number)
            .await?
            .ok_or_else(|| backend("period vanished"))?;
        approvals::mark_applied(&tx, approved, &outcome::settled(number)).await?;
        tx.commit().await?;
        Ok(p)
    }

    async fn claim_periods(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<Option<ClaimPeriods>, StoreError> {
        let c = self.client().await?;
        q1(&c, &core::claim_periods_sql('$'), &[&scheme_id, &claim_id])
            .await?
            .map(|r| core::claim_periods(&r))
            .transpose()
    }

    async fn statement_page(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        page: Option<&StatementPage>,
    ) -> Result<StatementData, StoreError> {
        let mut c = self.client().await?;
        let c = snapshot(&mut c).await?;
        let open = open_number(&c, scheme_id, mutuelle_id).await?;
        let (period, id) = if core::statement_of_open(number, open) {
            (open_period(&c, scheme_id, mutuelle_id).await?, None)
        } else {
            let (id, p) = load_period(&c, scheme_id, mutuelle_id, number)
                .await?
                .ok_or_else(|| core::no_such_period(scheme_id, mutuelle_id, number))?;
            (p, Some(id))
        };
        let rec_cond = match id {
            None => "r.period_id IS NULL AND $3::BIGINT = 0",
            Some(_) => "r.period_id = $3",
        };
        let id = id.unwrap_or(0);
        let after = page.and_then(|p| p.after.as_ref());
        let limit = core::statement_limit(page);
        let order = core::statement_claim_order(BYTES);
        let rows = match after {
            None => {
                let sql =
                    core::statement_lines("$1", "$2", "$3", None, "$4::BIGINT", &order, BYTES);
                q(&c, &sql, &[&scheme_id, &mutuelle_id, &id, &limit]).await?
            }
            Some(k) => {
                let sequence = i64::from(k.sequence);
                let key = ["$5", "$6", "$7", "$8"];
                let sql =
                    core::statement_lines("$1", "$2", "$3", Some(key), "$4::BIGINT", &order, BYTES);
                q(
                    &c,
                    &sql,
                    &[
                        &scheme_id,
                        &mutuelle_id,
                        &id,
                        &limit,
                        &k.payee_type,
                        &k.payee_id,
                        &k.claim_id,
                        &sequence,
                    ],
                )
                .await?
            }
        };
        let (lines, next, cut) = core::statement_split(decode(&rows, core::statement_line)?, page);
        // Recoveries come with the first page.
        let recoveries = if after.is_some() {
            Vec::new()
        } else {
            let rows = q(
                &c,
                &format!(
                    "SELECT {} FROM recoveries r JOIN claims c ON c.id = r.claim_pk \
                     WHERE r.scheme_id = $1 AND r.mutuelle_id = $2 AND {rec_cond} ORDER BY r.id",
                    core::recovery_cols()
                ),
                &[&scheme_id, &mutuelle_id, &id],
            )
            .await?;
            decode(&rows, core::recovery)?
        };
        c.commit().await?;
        Ok(StatementData {
            period,
            lines,
            recoveries,
            next,
            cut,
        })
    }

    async fn statement_payees(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        from: PayeesFrom<'_>,
        limit: u32,
    ) -> Result<Vec<PayeeTotal>, StoreError> {
        let mut c = self.client().await?;
        let c = snapshot(&mut c).await?;
        let open = open_number(&c, scheme_id, mutuelle_id).await?;
        // The period's id alone: its totals, added up for a period closed
        // before they were stored, are not needed here.
        let id: i64 = if core::statement_of_open(number, open) {
            0
        } else {
            let number = i64::from(number);
            q1(
                &c,
                &core::period_id_sql('$'),
                &[&scheme_id, &mutuelle_id, &number],
            )
            .await?
            .ok_or_else(|| core::no_such_period(scheme_id, mutuelle_id, number as u32))?
            .get(0)
        };
        let order = core::statement_claim_order(BYTES);
        let limit = i64::from(limit);
        let rows = match from.bound() {
            None => {
                let sql =
                    core::statement_payees("$1", "$2", "$3", None, "$4::BIGINT", &order, BYTES);
                q(&c, &sql, &[&scheme_id, &mutuelle_id, &id, &limit]).await?
            }
            Some(((payee_type, payee_id), op)) => {
                let sql = core::statement_payees(
                    "$1",
                    "$2",
                    "$3",
                    Some((["$5", "$6"], op)),
                    "$4::BIGINT",
                    &order,
                    BYTES,
                );
                q(
                    &c,
                    &sql,
                    &[&scheme_id, &mutuelle_id, &id, &limit, payee_type, payee_id],
                )
                .await?
            }
        };
        let out = decode(&rows, core::payee_total)?;
        c.commit().await?;
        Ok(out)
    }
}

/// One snapshot for a read of several statements (a period and its lines,
/// its recoveries; the open period and the closed ones), read only: a close
/// committed between them is seen by all of them or by none, never a
/// period said open whose claims its close took away.
async fn snapshot(
    c: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    Ok(c.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// The longest statement of a period's close, in ms: 15 minutes (the
/// statement timeout, if longer). Closing writes every claim of the
/// period: 500,000 claims took more than 30 s on the benchmark's machine
/// (docs/PERFORMANCE.md, "A large statement by pages, and a month's
/// close"), past a live call's timeout.
const CLOSE_TIMEOUT_MS: u64 = 15 * 60 * 1000;

/// Text compared byte by byte in a statement's order (`core::statement_lines`).
pub(super) const BYTES: &str = " COLLATE \"C\"";
