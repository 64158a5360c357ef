//! `passerelle.admin.v1.AdminService`: operators (and schemes, for
//! ListPartners).

use std::sync::Arc;

use passerelle_proto::admin::v1 as pb;
use pb::admin_service_server::AdminService;
use tonic::{Request, Response, Status};

use super::call::serve;
use super::parse::Violations;
use crate::service::Broker;
use passerelle_domain::date;

/// Most coverage conflicts in one answer.
const MAX_CONFLICTS: u32 = 1000;

pub struct AdminApi {
    broker: Arc<Broker>,
}

impl AdminApi {
    pub fn new(broker: Arc<Broker>) -> Self {
        AdminApi { broker }
    }
}

// Operators, and schemes (read-only: their claims wait on these partners;
// who paused one is an operator's business, left out).
call!(pb::ListPartnersRequest, "ListPartners", "party",
    |m| claimed: "-",
    scope(auth, dir) -> bool: match auth {
        crate::identity::Auth::Caller(c) if c.role == crate::identity::Role::Scheme => Ok(false),
        _ => super::auth::operator_only(auth).map(|()| true),
    },
    subject: "partners".into());
/// A pause or resume: operators only; the scope is the operator's identity
/// (who paused, stored with the pause).
macro_rules! pause_call {
    ($t:ty, $method:literal) => {
        call!($t, $method, "operator", |m| claimed: "-",
            scope(auth, dir) -> String: {
                super::auth::operator_only(auth)?;
                Ok(match auth {
                    crate::identity::Auth::Caller(c) => c.display(),
                    _ => "operator:plaintext".to_string(),
                })
            },
            subject: format!("partner/{}", m.mutuelle_id));
    };
}
pause_call!(pb::PausePartnerRequest, "PausePartner");
pause_call!(pb::ResumePartnerRequest, "ResumePartner");

/// A partner's state as the contract carries it.
fn partner_status(v: crate::service::admin::PartnerView<'_>) -> pb::PartnerStatus {
    let (p, a, c) = (v.partner, v.activity, v.control);
    pb::PartnerStatus {
        mutuelle_id: p.id.clone(),
        name: p.name.clone(),
        adapter: p.kind.as_str().to_string(),
        last_success_ms: a.last_success_ms,
        last_error_ms: a.last_error_ms,
        last_error: a.last_error,
        pending: a.pending,
        deadline_ms: p.deadline.as_millis() as u32,
        oldest_pending_ms: a.oldest_waiting_ms,
        circuit: v.circuit.to_string(),
        circuit_open_until_ms: c.breaker_open_until_ms,
        paused_ms: c.paused_ms,
        paused_by: c.paused_by,
    }
}

operator_call!(pb::RetryClaimRequest, "RetryClaim", |m| format!(
    "{}/{}",
    m.scheme_id, m.claim_id
));
operator_call!(pb::GetClaimAuditRequest, "GetClaimAudit", |m| format!(
    "{}/{}",
    m.scheme_id, m.claim_id
));
operator_call!(
    pb::ListCoverageConflictsRequest,
    "ListCoverageConflicts",
    |m| format!("{}/coverage", m.scheme_id)
);
operator_call!(
    pb::ResolveCoverageConflictRequest,
    "ResolveCoverageConflict",
    |m| format!("{}/coverage", m.scheme_id)
);

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_partners(
        &self,
        request: Request<pb::ListPartnersRequest>,
    ) -> Result<Response<pb::ListPartnersResponse>, Status> {
        serve(&self.broker, request, |_, operator: bool| async move {
            let statuses = self.broker.partner_statuses().await?;
            let mut partners: Vec<_> = statuses.into_iter().map(partner_status).collect();
            if !operator {
                // Who paused a partner, and its last error (which may
                // name another scheme's claim), are the operators'.
                for p in &mut partners {
                    p.paused_by.clear();
                    p.last_error.clear();
                }
            }
            Ok(pb::ListPartnersResponse { partners })
        })
        .await
    }

    async fn retry_claim(
        &self,
        request: Request<pb::RetryClaimRequest>,
    ) -> Result<Response<pb::RetryClaimResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = Violations::new();
            v.id("scheme_id", &msg.scheme_id);
            v.id("claim_id", &msg.claim_id);
            v.finish(())?;
            let rec = self.broker.retry_now(&msg.scheme_id, &msg.claim_id).await?;
            Ok(pb::RetryClaimResponse {
                state: rec.state.as_str().to_string(),
                last_error: rec.last_error,
            })
        })
        .await
    }

    async fn pause_partner(
        &self,
        request: Request<pb::PausePartnerRequest>,
    ) -> Result<Response<pb::PartnerStatus>, Status> {
        serve(&self.broker, request, |msg, by: String| async move {
            let mut v = Violations::new();
            v.id("mutuelle_id", &msg.mutuelle_id);
            v.finish(())?;
            self.broker
                .pause_partner(&msg.mutuelle_id, Some(&by))
                .await?;
            Ok(partner_status(
                self.broker.partner_status(&msg.mutuelle_id).await?,
            ))
        })
        .await
    }

    async fn resume_partner(
        &self,
        request: Request<pb::ResumePartnerRequest>,
    ) -> Result<Response<pb::PartnerStatus>, Status> {
        serve(&self.broker, request, |msg, _: String| async move {
            let mut v = Violations::new();
            v.id("mutuelle_id", &msg.mutuelle_id);
            v.finish(())?;
            self.broker.pause_partner(&msg.mutuelle_id, None).await?;
            Ok(partner_status(
                self.broker.partner_status(&msg.mutuelle_id).await?,
            ))
        })
        .await
    }

    async fn get_claim_audit(
        &self,
        request: Request<pb::GetClaimAuditRequest>,
    ) -> Result<Response<pb::GetClaimAuditResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = Violations::new();
            v.id("scheme_id", &msg.scheme_id);
            v.id("claim_id", &msg.claim_id);
            v.finish(())?;
            let trail = self
                .broker
                .claim_audit(&msg.scheme_id, &msg.claim_id)
                .await?;
            Ok(pb::GetClaimAuditResponse {
                omitted: trail.omitted,
                records: trail
                    .rows
                    .into_iter()
                    .map(|e| pb::AuditRecord {
                        at_ms: e.at_ms,
                        direction: e.direction.as_str().to_string(),
                        party: e.party,
                        method: e.method,
                        request_hash: e.request_hash,
                        outcome: e.outcome,
                        trace_id: e.trace_id,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn list_coverage_conflicts(
        &self,
        request: Request<pb::ListCoverageConflictsRequest>,
    ) -> Result<Response<pb::ListCoverageConflictsResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = Violations::new();
            if !msg.scheme_id.is_empty() {
                v.id("scheme_id", &msg.scheme_id);
            }
            if msg.limit > MAX_CONFLICTS {
                v.add("limit", format!("must be at most {MAX_CONFLICTS}"));
            }
            v.finish(())?;
            let limit = if msg.limit == 0 {
                MAX_CONFLICTS
            } else {
                msg.limit
            };
            let scheme = (!msg.scheme_id.is_empty()).then_some(msg.scheme_id.as_str());
            let rows = self.broker.coverage_conflicts(scheme, limit).await?;
            Ok(pb::ListCoverageConflictsResponse {
                conflicts: rows
                    .into_iter()
                    .map(|c| pb::CoverageConflict {
                        scheme_id: c.scheme_id,
                        beneficiary_id: c.beneficiary_id,
                        first_mutuelle_id: c.first.0,
                        first_member_number: c.first.1,
                        second_mutuelle_id: c.second.0,
                        second_member_number: c.second.1,
                        from_date: date::format(c.from),
                        to_date: c.to.map(date::format).unwrap_or_default(),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn resolve_coverage_conflict(
        &self,
        request: Request<pb::ResolveCoverageConflictRequest>,
    ) -> Result<Response<pb::ResolveCoverageConflictResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = Violations::new();
            v.id("scheme_id", &msg.scheme_id);
            v.id("beneficiary_id", &msg.beneficiary_id);
            v.id("keep_mutuelle_id", &msg.keep_mutuelle_id);
            let from = if msg.from_date.is_empty() {
                None
            } else {
                v.date("from_date", &msg.from_date)
            };
            v.finish(())?;
            let changed = self
                .broker
                .resolve_coverage(
                    &msg.scheme_id,
                    &msg.beneficiary_id,
                    &msg.keep_mutuelle_id,
                    from,
                )
                .await?;
            Ok(pb::ResolveCoverageConflictResponse {
                changed: changed
                    .into_iter()
                    .map(|m| pb::ChangedMembership {
                        mutuelle_id: m.mutuelle_id,
                        member_number: m.member_number,
                    })
                    .collect(),
            })
        })
        .await
    }
}
