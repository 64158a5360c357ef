//! Partners' pauses and circuit breakers.

use super::*;
use crate::store::{PartnerControl, PartnerStore};

#[async_trait]
impl PartnerStore for PgStore {
    async fn partner_controls(&self) -> Result<Vec<PartnerControl>, StoreError> {
        let c = self.client().await?;
        q(
            &c,
            &format!(
                "SELECT {} FROM partner_controls ORDER BY partner_id",
                core::CONTROL_COLS
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| core::partner_control(r))
        .collect()
    }

    async fn set_paused(
        &self,
        partner_id: &str,
        by: Option<&str>,
        now_ms: i64,
    ) -> Result<PartnerControl, StoreError> {
        let c = self.client().await?;
        let paused_ms: i64 = if by.is_some() { now_ms.max(1) } else { 0 };
        let by = by.unwrap_or_default();
        let row = q1(
            &c,
            &core::set_paused_sql('$'),
            &[&partner_id, &paused_ms, &by],
        )
        .await?
        .ok_or_else(|| StoreError::Backend("set_paused returned no row".into()))?;
        core::partner_control(&row)
    }

    async fn set_breaker(&self, partner_id: &str, open_until_ms: i64) -> Result<(), StoreError> {
        let c = self.client().await?;
        x(
            &c,
            &core::set_breaker_sql('$'),
            &[&partner_id, &open_until_ms],
        )
        .await?;
        Ok(())
    }
}
