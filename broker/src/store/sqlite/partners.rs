//! Partners' pauses and circuit breakers.

use super::*;
use crate::store::{PartnerControl, PartnerStore};

#[async_trait]
impl PartnerStore for SqliteStore {
    async fn partner_controls(&self) -> Result<Vec<PartnerControl>, StoreError> {
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM partner_controls ORDER BY partner_id",
                core::CONTROL_COLS
            ))?;
            rows_of(&mut st, [], core::partner_control)
        })
        .await
    }

    async fn set_paused(
        &self,
        partner_id: &str,
        by: Option<&str>,
        now_ms: i64,
    ) -> Result<PartnerControl, StoreError> {
        let (id, by) = (partner_id.to_string(), by.map(str::to_string));
        self.with(move |c| {
            let paused_ms = if by.is_some() { now_ms.max(1) } else { 0 };
            let mut st = c.prepare_cached(&core::set_paused_sql('?'))?;
            let mut rows = rows_of(
                &mut st,
                params![id, paused_ms, by.unwrap_or_default()],
                core::partner_control,
            )?;
            rows.pop()
                .ok_or_else(|| StoreError::Backend("set_paused returned no row".into()))
        })
        .await
    }

    async fn set_breaker(&self, partner_id: &str, open_until_ms: i64) -> Result<(), StoreError> {
        let id = partner_id.to_string();
        self.with(move |c| {
            c.prepare_cached(&core::set_breaker_sql('?'))?
                .execute(params![id, open_until_ms])?;
            Ok(())
        })
        .await
    }
}
