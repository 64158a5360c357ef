//! Settlement: claim listings, periods per scheme × mutuelle (close, mark
//! settled) and their statements. See "Settlement" in docs/ARCHITECTURE.md.

use super::{Broker, ServiceError};
use crate::store::{ClaimFilter, ClaimPage, PeriodRecord, StatementData, StatementPage};

/// The most lines a statement answers in one piece (GetStatement without a
/// page size); a larger one is read by pages.
pub const MAX_UNPAGED_LINES: u32 = 50_000;

/// The most lines of one page of a statement.
pub const MAX_PAGE_LINES: u32 = 10_000;

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
            return Err(ServiceError::Refused(format!(
                "the statement of period {} has more than {max_unpaged} lines: read it by pages (page_size and page_token; passerelle statement export does)",
                d.period.number
            )));
        }
        Ok(d)
    }
}
