//! What operators ask (AdminService): the partners' state, a claim's audit
//! trail. Retry and coverage conflicts are in [`super::claims`] and
//! [`super::roster`].

use super::{Broker, Partner, ServiceError};
use crate::store::{AuditEntry, PartnerActivity};

impl Broker {
    /// Every partner (by id) with its last calls and the claims waiting on
    /// it. Last success and error come from the audit trail: what is queued
    /// is written first, so the answer is up to date.
    pub async fn partner_statuses(&self) -> Result<Vec<(&Partner, PartnerActivity)>, ServiceError> {
        self.audit.flush().await;
        let mut partners: Vec<&Partner> = self.partners.all().collect();
        partners.sort_by(|a, b| a.id.cmp(&b.id));
        let mut out = Vec::with_capacity(partners.len());
        for p in partners {
            let a = self.store.partner_activity(&p.id).await?;
            out.push((p, a));
        }
        Ok(out)
    }

    /// The audit rows of a claim (inbound and outbound), oldest first.
    pub async fn claim_audit(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        self.get(scheme_id, claim_id).await?;
        // Rows queued by calls still in flight are written first.
        self.audit.flush().await;
        Ok(self
            .store
            .audit_of(&format!("{scheme_id}/{claim_id}"))
            .await?)
    }
}
