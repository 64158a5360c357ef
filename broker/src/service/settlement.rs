//! Settlement: claim listings, periods per scheme × mutuelle (close, mark
//! settled) and their statements. See "Settlement" in docs/ARCHITECTURE.md.

use super::{Broker, ServiceError};
use crate::store::{
    ClaimFilter, ClaimPage, ClaimPeriods, LineKey, PayeesFrom, PeriodRecord, PeriodState,
    RecoveryLine, StatementData, StatementPage,
};

/// The most lines a statement answers in one piece (GetStatement without a
/// page size); a larger one is read by pages.
pub const MAX_UNPAGED_LINES: u32 = 50_000;

/// The most lines of one page of a statement.
pub const MAX_PAGE_LINES: u32 = 10_000;

/// The most lines of one payee's part of a period ([`Broker::remittance`]).
pub const MAX_PAYEE_LINES: u32 = MAX_UNPAGED_LINES;

/// The most payees of one page of a period's payees ([`Broker::remittance_payees`]).
pub const MAX_PAYEES_PAGE: u32 = 1_000;

/// The ErrorInfo reason of an answer refused for holding more lines than
/// one answer may (FAILED_PRECONDITION): the same lines are read by pages.
pub const TOO_MANY_LINES: &str = "TOO_MANY_LINES";

fn too_many_lines(message: String) -> ServiceError {
    ServiceError::Precondition {
        reason: TOO_MANY_LINES,
        message,
    }
}

/// The largest page a payee's part is read by (it starts at 250 lines and
/// doubles, so that a small payee reads few lines past its own).
const PAYEE_READ_PAGE: u32 = 8_000;

/// A payee's totals in a period: its claims, and what the period's transfer
/// pays it (its lines' M less its recoveries; negative when it owes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayeeAmount {
    /// "provider" or "member".
    pub payee_type: String,
    pub payee_id: String,
    pub claims: u64,
    pub amount: i64,
}

/// A page of a period's payees ([`Broker::remittance_payees`]).
#[derive(Clone, Debug)]
pub struct PayeePage {
    pub period: PeriodRecord,
    pub payees: Vec<PayeeAmount>,
    /// The last payee of the page (type, id) when more follow.
    pub next: Option<(String, String)>,
    /// What the period's payees who owe owe together, whatever the page
    /// (`owed_in`).
    pub owed: i64,
}

impl Broker {
    /// A page of claims after the row `after`, with the totals of the filter.
    pub async fn list_claims(
        &self,
        filter: &ClaimFilter,
        after: i64,
        limit: u32,
    ) -> Result<ClaimPage, ServiceError> {
        Ok(self.store.list_claims(filter, after, limit).await?)
    }

    /// Where a claim stands in its mutuelle's periods: its closed period,
    /// and the recovery its cancel raised after that period closed.
    pub async fn claim_periods(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<ClaimPeriods, ServiceError> {
        self.store
            .claim_periods(scheme_id, claim_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(super::claims::claim_words(scheme_id, claim_id)))
    }

    /// The periods of a scheme × mutuelle, the open one included.
    pub async fn list_periods(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
    ) -> Result<Vec<PeriodRecord>, ServiceError> {
        Ok(self.store.list_periods(scheme_id, mutuelle_id).await?)
    }

    // Closing and settling a period need two people: see
    // `service::approvals` (propose_close, propose_settle, approve).

    /// A period's statement (its lines by payee, and recoveries): a page of
    /// it, or the whole of it up to [`MAX_UNPAGED_LINES`] lines (a larger
    /// one is refused, so that no answer holds an unbounded statement in
    /// memory: it is read by pages).
    pub async fn statement(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        page: Option<StatementPage>,
    ) -> Result<StatementData, ServiceError> {
        self.statement_within(scheme_id, mutuelle_id, number, page, MAX_UNPAGED_LINES)
            .await
    }

    /// [`Broker::statement`] with the most lines of a whole statement given.
    pub async fn statement_within(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        page: Option<StatementPage>,
        max_unpaged: u32,
    ) -> Result<StatementData, ServiceError> {
        if let Some(p) = &page {
            return Ok(self
                .store
                .statement_page(scheme_id, mutuelle_id, number, Some(p))
                .await?);
        }
        let whole = StatementPage {
            after: None,
            size: max_unpaged,
        };
        let d = self
            .store
            .statement_page(scheme_id, mutuelle_id, number, Some(&whole))
            .await?;
        if d.next.is_some() {
            return Err(too_many_lines(format!(
                "the statement of period {} has more than {max_unpaged} lines: read it by pages (page_size and page_token; passerelle statement export does)",
                d.period.number
            )));
        }
        Ok(d)
    }

    /// A period with its recoveries: its statement's first page of one
    /// line (the period's totals come with it).
    async fn first_page(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
    ) -> Result<StatementData, ServiceError> {
        let first = StatementPage {
            after: None,
            size: 1,
        };
        Ok(self
            .store
            .statement_page(scheme_id, mutuelle_id, number, Some(&first))
            .await?)
    }

    /// A settled period, with its recoveries (its statement's first page of
    /// one line); a period not settled is refused, before any line is read.
    async fn settled_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
    ) -> Result<StatementData, ServiceError> {
        let d = self.first_page(scheme_id, mutuelle_id, number).await?;
        if d.period.state != PeriodState::Settled {
            return Err(ServiceError::Precondition {
                reason: "PERIOD_NOT_SETTLED",
                message: format!(
                    "period {} of {scheme_id} x {mutuelle_id} is not settled: its transfer is not known yet",
                    d.period.number
                ),
            });
        }
        Ok(d)
    }

    /// A settled period's remittance advice as statement data: one payee's
    /// part ([`Broker::remittance_payee`]), or every payee's, the whole
    /// statement, up to [`MAX_UNPAGED_LINES`] lines (a larger one is
    /// refused: one payee, or the payees' totals by pages, are then the
    /// way); with what the payees who owe owe together, the whole
    /// period's (`owed_in`). A period not settled is
    /// refused.
    pub async fn remittance(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        payee: Option<(&str, &str)>,
    ) -> Result<(StatementData, i64), ServiceError> {
        if let Some(payee) = payee {
            // The period read once: its recoveries give what is owed, then
            // the payee's part.
            let d = self.settled_period(scheme_id, mutuelle_id, number).await?;
            let owed = self
                .owed_in(scheme_id, mutuelle_id, d.period.number, &d.recoveries)
                .await?;
            let part = self
                .payee_part(d, scheme_id, mutuelle_id, payee, MAX_PAYEE_LINES, 250)
                .await?;
            return Ok((part, owed));
        }
        self.settled_period(scheme_id, mutuelle_id, number).await?;
        let d = match self.statement(scheme_id, mutuelle_id, number, None).await {
            Err(ServiceError::Precondition {
                reason: TOO_MANY_LINES,
                ..
            }) => {
                return Err(too_many_lines(format!(
                    "period {number} has more than {MAX_UNPAGED_LINES} lines: its remittance advice is served one payee at a time (payee_type and payee_id; the command line's --payee-type and --payee), or as the payees' totals by pages (totals_only; --totals)"
                )));
            }
            other => other?,
        };
        let owed = self
            .owed_in(scheme_id, mutuelle_id, d.period.number, &d.recoveries)
            .await?;
        Ok((d, owed))
    }

    /// One payee's part of a settled period's statement, its lines and its
    /// recoveries, however large the period: the statement's order keeps a
    /// payee's lines together, so they are read by pages from where the
    /// payee starts to where it ends, the first of `first_read` lines and
    /// each next twice as large, up to 8,000 (a small payee reads few lines
    /// past its own). More than `max_lines` ([`MAX_PAYEE_LINES`] for
    /// [`Broker::remittance`]) is refused, so that no answer holds an
    /// unbounded part in memory. A period not settled is refused first.
    pub async fn remittance_payee(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        (payee_type, payee_id): (&str, &str),
        max_lines: u32,
        first_read: u32,
    ) -> Result<StatementData, ServiceError> {
        let d = self.settled_period(scheme_id, mutuelle_id, number).await?;
        self.payee_part(
            d,
            scheme_id,
            mutuelle_id,
            (payee_type, payee_id),
            max_lines,
            first_read,
        )
        .await
    }

    /// [`Broker::remittance_payee`] of a settled period already read (`d`,
    /// its first page).
    async fn payee_part(
        &self,
        mut d: StatementData,
        scheme_id: &str,
        mutuelle_id: &str,
        (payee_type, payee_id): (&str, &str),
        max_lines: u32,
        first_read: u32,
    ) -> Result<StatementData, ServiceError> {
        let number = d.period.number;
        d.lines.clear();
        d.recoveries
            .retain(|r| r.payee_type == payee_type && r.payee_id == payee_id);
        d.next = None;
        // The payee's whole part: no page cuts it.
        d.cut = Default::default();
        let mut after = LineKey {
            payee_type: payee_type.to_string(),
            payee_id: payee_id.to_string(),
            claim_id: String::new(),
            sequence: 0,
        };
        let mut size = first_read.clamp(1, PAYEE_READ_PAGE);
        loop {
            let page = StatementPage {
                after: Some(after),
                size,
            };
            let p = self
                .store
                .statement_page(scheme_id, mutuelle_id, number, Some(&page))
                .await?;
            let (read, before) = (p.lines.len(), d.lines.len());
            d.lines.extend(
                p.lines
                    .into_iter()
                    .take_while(|l| l.payee_type == payee_type && l.payee_id == payee_id),
            );
            if d.lines.len() > max_lines as usize {
                return Err(too_many_lines(format!(
                    "{payee_type} {payee_id} has more than {max_lines} lines in period {number}: read them by pages of the statement (GetStatement with page_size, or passerelle statement export)"
                )));
            }
            // A line of another payee was read: this payee's part ended.
            let ended = d.lines.len() - before < read;
            match p.next {
                Some(k) if !ended => {
                    after = k;
                    size = (size * 2).min(PAYEE_READ_PAGE);
                }
                _ => break,
            }
        }
        if d.lines.is_empty() && d.recoveries.is_empty() {
            // Said as "… not found" by the API.
            return Err(ServiceError::NotFound(format!(
                "claims or recoveries of {payee_type} {payee_id} in period {number}"
            )));
        }
        Ok(d)
    }

    /// One payee's claims in a period's statement (any period, the open one
    /// as 0) and the mutuelle's share of them: the whole statement's, for
    /// a page that cuts the payee (the console). `None`: no claim of that
    /// payee in the period. Reads that payee's claims only.
    pub async fn statement_payee_total(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        payee_type: &str,
        payee_id: &str,
    ) -> Result<Option<crate::store::PayeeTotal>, ServiceError> {
        let k = (payee_type.to_string(), payee_id.to_string());
        Ok(self
            .store
            .statement_payees(scheme_id, mutuelle_id, number, PayeesFrom::Only(&k), 1)
            .await?
            .into_iter()
            .next())
    }

    /// A page of a settled period's payees in the statement's order (type,
    /// then id, byte by byte), after the payee `after`, at most `limit` of
    /// them ([`MAX_PAYEES_PAGE`]), each with its claims and what the
    /// transfer pays it: its claims' M less its recoveries. A payee with
    /// recoveries and no claim in the period is added to the page whose
    /// range holds it. A page reads only its payees' claims (and the
    /// period's recoveries, which only claims cancelled after their period
    /// was settled make). A period not settled is refused.
    pub async fn remittance_payees(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<PayeePage, ServiceError> {
        let d = self.settled_period(scheme_id, mutuelle_id, number).await?;
        let limit = limit.clamp(1, MAX_PAYEES_PAGE);
        let mut totals = self
            .store
            .statement_payees(
                scheme_id,
                mutuelle_id,
                d.period.number,
                after.as_ref().map_or(PayeesFrom::First, PayeesFrom::After),
                limit + 1,
            )
            .await?;
        let next = if totals.len() > limit as usize {
            totals.truncate(limit as usize);
            totals
                .last()
                .map(|t| (t.payee_type.clone(), t.payee_id.clone()))
        } else {
            None
        };
        // The page's range of payees: after `after`, up to `next` when more
        // follow (the statement's order: bytes, as `String`'s).
        let in_range = |k: &(String, String)| {
            after.as_ref().is_none_or(|a| k > a) && next.as_ref().is_none_or(|n| k <= n)
        };
        let mut recovered = by_payee(&d.recoveries);
        recovered.retain(|k, _| in_range(k));
        let mut payees: Vec<PayeeAmount> = totals
            .into_iter()
            .map(|t| {
                let back = recovered
                    .remove(&(t.payee_type.clone(), t.payee_id.clone()))
                    .unwrap_or(0);
                PayeeAmount {
                    payee_type: t.payee_type,
                    payee_id: t.payee_id,
                    claims: t.claims,
                    amount: t.mutuelle.saturating_sub(back),
                }
            })
            .collect();
        payees.extend(
            recovered
                .into_iter()
                .map(|((payee_type, payee_id), back)| PayeeAmount {
                    payee_type,
                    payee_id,
                    claims: 0,
                    amount: back.saturating_neg(),
                }),
        );
        payees.sort_by(|a, b| (&a.payee_type, &a.payee_id).cmp(&(&b.payee_type, &b.payee_id)));
        let owed = self
            .owed_in(scheme_id, mutuelle_id, d.period.number, &d.recoveries)
            .await?;
        Ok(PayeePage {
            period: d.period,
            payees,
            next,
            owed,
        })
    }

    /// What a closed period's payees whose recoveries outweigh their
    /// claims owe together ([`Broker::owed_in`] of its recoveries).
    pub(super) async fn owed_in_closed(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
    ) -> Result<i64, ServiceError> {
        let d = self.first_page(scheme_id, mutuelle_id, number).await?;
        self.owed_in(scheme_id, mutuelle_id, number, &d.recoveries)
            .await
    }

    /// What the payees whose recoveries outweigh their claims in a closed
    /// or settled period owe together (0 when none does), from the period's
    /// recoveries: the transfer pays its net due plus this. Each payee
    /// with recoveries has its own claims' M in the period read
    /// ([`PayeesFrom::Only`]); a period without recoveries, which only
    /// claims cancelled after their period closed make, reads nothing.
    async fn owed_in(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        recoveries: &[RecoveryLine],
    ) -> Result<i64, ServiceError> {
        let mut owed = 0i64;
        for (k, back) in by_payee(recoveries) {
            let claims = self
                .store
                .statement_payees(scheme_id, mutuelle_id, number, PayeesFrom::Only(&k), 1)
                .await?;
            let paid = claims.first().map_or(0, |t| t.mutuelle);
            owed = owed.saturating_add(back.saturating_sub(paid).max(0));
        }
        Ok(owed)
    }
}

/// What a period's recoveries take back from each payee (type, id), in
/// the statement's order.
fn by_payee(recoveries: &[RecoveryLine]) -> std::collections::BTreeMap<(String, String), i64> {
    let mut back = std::collections::BTreeMap::new();
    for r in recoveries {
        let e: &mut i64 = back
            .entry((r.payee_type.clone(), r.payee_id.clone()))
            .or_insert(0);
        *e = e.saturating_add(r.amount);
    }
    back
}
