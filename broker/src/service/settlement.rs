//! Settlement: claim listings, periods per scheme × mutuelle (close, mark
//! settled) and their statements. See "Settlement" in docs/ARCHITECTURE.md.

use super::{Broker, ServiceError};
use crate::store::{ClaimFilter, ClaimPage, PeriodRecord, StatementData};

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

    /// Closes the open period now.
    pub async fn close_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
    ) -> Result<PeriodRecord, ServiceError> {
        let now = self.clock.now_ms();
        Ok(self.store.close_period(scheme_id, mutuelle_id, now).await?)
    }

    /// Marks a closed period settled, with the payment's reference.
    pub async fn settle_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        reference: &str,
    ) -> Result<PeriodRecord, ServiceError> {
        let now = self.clock.now_ms();
        Ok(self
            .store
            .settle_period(scheme_id, mutuelle_id, number, reference, now)
            .await?)
    }

    /// A period's statement (its lines by payee, and recoveries).
    pub async fn statement(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
    ) -> Result<StatementData, ServiceError> {
        Ok(self.store.statement(scheme_id, mutuelle_id, number).await?)
    }
}
