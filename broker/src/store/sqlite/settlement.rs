//! Periods, settlement and statements.

use super::*;
use crate::store::approvals::{Approved, outcome};

#[async_trait]
impl SettlementStore for SqliteStore {
    async fn list_periods(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
    ) -> Result<Vec<PeriodRecord>, StoreError> {
        let (s, m) = (scheme_id.to_string(), mutuelle_id.to_string());
        self.scan(move |c| {
            let open = open_period(c, &s, &m)?;
            let mut out = vec![open.clone()];
            for n in (1..open.number).rev() {
                if let Some((_, p)) = load_period(c, &s, &m, n)? {
                    out.push(p);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn closing_content(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        until_ms: i64,
    ) -> Result<crate::store::PeriodContent, StoreError> {
        let (s, m) = (scheme_id.to_string(), mutuelle_id.to_string());
        self.scan(move |c| {
            // `close_period`'s conditions, counted and summed.
            let (claim_count, totals) = c
                .prepare_cached(&format!(
                    "SELECT COUNT(*), {}, {}, {} FROM claims c WHERE c.scheme_id = ?1 AND c.mutuelle_id = ?2 \
                     AND {} AND c.updated_ms <= ?3",
                    split_sum("c.billed_total"),
                    split_sum("c.scheme_total"),
                    split_sum("c.mutuelle_total"),
                    core::period_claims("0")
                ))?
                .query_row(params![s, m, until_ms], |r| {
                    Ok((r.get::<_, u32>(0)?, totals_at(r, 1)?))
                })?;
            let recoveries = crate::store::clamp_total(
                c.prepare_cached(&format!(
                    "SELECT {} FROM recoveries WHERE scheme_id = ?1 AND mutuelle_id = ?2 \
                     AND period_id IS NULL AND created_ms <= ?3",
                    split_sum("amount")
                ))?
                .query_row(params![s, m, until_ms], |r| joined(r, 0))?,
            );
            Ok(crate::store::PeriodContent {
                claim_count,
                billed: totals.billed,
                scheme: totals.scheme,
                mutuelle: totals.mutuelle,
                recoveries,
            })
        })
        .await
    }

    async fn close_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        upto: &CloseUpTo,
        now_ms: i64,
        approved: Option<&Approved>,
    ) -> Result<PeriodRecord, StoreError> {
        let (s, m) = (scheme_id.to_string(), mutuelle_id.to_string());
        let upto = upto.clone();
        let approved = approved.cloned();
        self.with(move |c| {
            let tx = c.savepoint()?;
            let number = open_number(&tx, &s, &m)?;
            tx.prepare_cached("INSERT INTO periods (scheme_id, mutuelle_id, number, state, closed_ms) VALUES (?1, ?2, ?3, 'closed', ?4)")?.execute(params![s, m, number, now_ms],
            )?;
            let id = tx.last_insert_rowid();
            let claims = tx.prepare_cached(&format!("UPDATE claims AS c SET period_id = ?3 WHERE c.scheme_id = ?1 AND c.mutuelle_id = ?2 \
                 AND {} AND c.updated_ms <= ?4", core::period_claims("0")))?.execute(params![s, m, id, upto.until_ms],
            )?;
            let recoveries = tx.prepare_cached("UPDATE recoveries SET period_id = ?3 WHERE scheme_id = ?1 AND mutuelle_id = ?2 AND period_id IS NULL AND created_ms <= ?4")?.execute(params![s, m, id, upto.until_ms],
            )?;
            if claims + recoveries == 0 {
                return Err(core::nothing_to_close(&s, &m, &upto));
            }
            let (_, p) = load_period(&tx, &s, &m, number)?.ok_or_else(|| backend("period vanished"))?;
            core::check_close(&p, &upto)?;
            tx.prepare_cached(&core::store_period_totals(["?1", "?2", "?3", "?4", "?5", "?6"]))?
                .execute(params![p.claim_count, p.totals.billed, p.totals.scheme, p.totals.mutuelle, p.recoveries, id])?;
            approvals::mark_applied(&tx, approved.as_ref(), &outcome::closed(p.number))?;
            tx.commit()?;
            Ok(p)
        })
        .await
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
        let (s, m, reference) = (
            scheme_id.to_string(),
            mutuelle_id.to_string(),
            reference.to_string(),
        );
        let approved = approved.cloned();
        self.with(move |c| {
            let tx = c.savepoint()?;
            let Some((_, p)) = load_period(&tx, &s, &m, number)? else {
                let open = open_period(&tx, &s, &m)?.number;
                return Err(core::no_period_to_settle(&s, &m, number, open));
            };
            if !core::settle_applies(&p, &reference)? {
                // Settled already with this reference: a proposal of it is
                // applied all the same.
                approvals::mark_applied(&tx, approved.as_ref(), &outcome::settled(number))?;
                tx.commit()?;
                return Ok(p);
            }
            tx.prepare_cached(
                "UPDATE periods SET state = 'settled', settled_ms = ?4, settlement_reference = ?5 \
                 WHERE scheme_id = ?1 AND mutuelle_id = ?2 AND number = ?3",
            )?
            .execute(params![s, m, number, now_ms, reference])?;
            let (_, p) =
                load_period(&tx, &s, &m, number)?.ok_or_else(|| backend("period vanished"))?;
            approvals::mark_applied(&tx, approved.as_ref(), &outcome::settled(number))?;
            tx.commit()?;
            Ok(p)
        })
        .await
    }

    async fn claim_periods(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<Option<ClaimPeriods>, StoreError> {
        let (s, k) = (scheme_id.to_string(), claim_id.to_string());
        self.scan(move |c| {
            let mut st = c.prepare_cached(&core::claim_periods_sql('?'))?;
            row_of(&mut st, params![s, k], core::claim_periods)
        })
        .await
    }

    async fn statement_page(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        page: Option<&StatementPage>,
    ) -> Result<StatementData, StoreError> {
        let (s, m) = (scheme_id.to_string(), mutuelle_id.to_string());
        let page = page.cloned();
        self.scan(move |c| {
            let open = open_number(c, &s, &m)?;
            let (period, id) = if core::statement_of_open(number, open) {
                (open_period(c, &s, &m)?, None)
            } else {
                let (id, p) = load_period(c, &s, &m, number)?
                    .ok_or_else(|| core::no_such_period(&s, &m, number))?;
                (p, Some(id))
            };
            let rec_cond = match id {
                None => "r.period_id IS NULL AND ?3 = 0",
                Some(_) => "r.period_id = ?3",
            };
            let id = id.unwrap_or(0);
            let page = page.as_ref();
            let after = page.and_then(|p| p.after.as_ref());
            let limit = core::statement_limit(page);
            // Generated columns (migration 16): SQLite seeks a row
            // comparison on columns, not on an index's expressions.
            let order = STATEMENT_ORDER.map(String::from);
            let rows = match after {
                None => {
                    let sql = core::statement_lines("?1", "?2", "?3", None, "?4", &order, BYTES);
                    rows_of(
                        &mut c.prepare_cached(&sql)?,
                        params![s, m, id, limit],
                        core::statement_line,
                    )?
                }
                Some(k) => {
                    let key = ["?5", "?6", "?7", "?8"];
                    let sql =
                        core::statement_lines("?1", "?2", "?3", Some(key), "?4", &order, BYTES);
                    rows_of(
                        &mut c.prepare_cached(&sql)?,
                        params![
                            s,
                            m,
                            id,
                            limit,
                            k.payee_type,
                            k.payee_id,
                            k.claim_id,
                            k.sequence
                        ],
                        core::statement_line,
                    )?
                }
            };
            let (lines, next, cut) = core::statement_split(rows, page);
            // Recoveries come with the first page.
            let recoveries = if after.is_some() {
                Vec::new()
            } else {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {} FROM recoveries r JOIN claims c ON c.id = r.claim_pk \
                     WHERE r.scheme_id = ?1 AND r.mutuelle_id = ?2 AND {rec_cond} \
                     ORDER BY r.id",
                    core::recovery_cols()
                ))?;
                rows_of(&mut st, params![s, m, id], core::recovery)?
            };
            Ok(StatementData {
                period,
                lines,
                recoveries,
                next,
                cut,
            })
        })
        .await
    }

    async fn statement_payees(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        from: PayeesFrom<'_>,
        limit: u32,
    ) -> Result<Vec<PayeeTotal>, StoreError> {
        let (s, m) = (scheme_id.to_string(), mutuelle_id.to_string());
        let after = from.bound().map(|(k, op)| (k.clone(), op));
        self.scan(move |c| {
            let open = open_number(c, &s, &m)?;
            // The period's id alone: its totals, added up for a period
            // closed before they were stored, are not needed here.
            let id: i64 = if core::statement_of_open(number, open) {
                0
            } else {
                row_of(
                    &mut c.prepare_cached(&core::period_id_sql('?'))?,
                    params![s, m, number],
                    |r| r.int(0),
                )?
                .ok_or_else(|| core::no_such_period(&s, &m, number))?
            };
            let order = STATEMENT_ORDER.map(String::from);
            match &after {
                None => {
                    let sql = core::statement_payees("?1", "?2", "?3", None, "?4", &order, BYTES);
                    rows_of(
                        &mut c.prepare_cached(&sql)?,
                        params![s, m, id, limit],
                        core::payee_total,
                    )
                }
                Some(((payee_type, payee_id), op)) => {
                    let sql = core::statement_payees(
                        "?1",
                        "?2",
                        "?3",
                        Some((["?5", "?6"], op)),
                        "?4",
                        &order,
                        BYTES,
                    );
                    rows_of(
                        &mut c.prepare_cached(&sql)?,
                        params![s, m, id, limit, payee_type, payee_id],
                        core::payee_total,
                    )
                }
            }
        })
        .await
    }
}

/// The claims' order in a statement (`core::statement_claim_order`), as
/// the generated columns of migration 16 hold it.
const STATEMENT_ORDER: [&str; 3] = [
    "c.statement_payee_type",
    "c.statement_payee_id",
    "c.claim_id",
];

/// Text compared byte by byte in a statement's order (`core::statement_lines`).
const BYTES: &str = "";
