//! `passerelle.scheme.v1.SchemeService`.

use std::sync::Arc;
use std::time::Duration;

use passerelle_domain::date;
use passerelle_proto::common::v1 as common;
use passerelle_proto::convert;
use passerelle_proto::scheme::v1 as pb;
use pb::scheme_service_server::SchemeService;
use tonic::{Request, Response, Status};

use super::call::serve;
use super::parse;
use crate::admission::Pool;
use crate::service::{Broker, ServiceError};
use crate::store::ClaimRecord;
use crate::store::authorizations::{AuthorizationRecord, AuthorizationState};

/// Most claims per ListChangedClaims page, and the default.
const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 100;
/// Most bytes of claims in one ListChangedClaims page (the page stops
/// before; at least one claim is always sent).
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Longest ListChangedClaims wait.
const MAX_WAIT_MS: u32 = 30_000;

pub struct SchemeApi {
    broker: Arc<Broker>,
}

impl SchemeApi {
    pub fn new(broker: Arc<Broker>) -> Self {
        SchemeApi { broker }
    }
}

/// Lines with their shares as the scheme contract shows them (B, E, S,
/// TM, D, R, M, P and the reasons; M = 0 where no share is known yet), and
/// their totals: a claim's, or an authorization's planned lines.
fn line_results(
    lines: &[passerelle_domain::ClaimLine],
    shares: Option<&[passerelle_domain::LineShare]>,
) -> (Vec<pb::LineResult>, pb::ClaimTotals) {
    let mut totals = pb::ClaimTotals::default();
    let lines = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let share = shares.and_then(|s| s.get(i));
            let m = share.map(|s| s.mutuelle_share).unwrap_or(0);
            let p = l.billed - l.scheme_share - m;
            totals.billed += l.billed;
            totals.scheme_share += l.scheme_share;
            totals.mutuelle_share += m;
            totals.patient_share += p;
            pb::LineResult {
                sequence: i as u32 + 1,
                act_code: l.act_code.clone(),
                billed: l.billed,
                tariff_base: l.tariff_base,
                scheme_share: l.scheme_share,
                ticket_moderateur: l.ticket_moderateur(),
                overrun: l.overrun(),
                remainder: l.remainder(),
                mutuelle_share: m,
                patient_share: p,
                reasons: share
                    .map(|s| s.reasons.iter().map(convert::reason_to_pb).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    (lines, totals)
}

/// A stored claim as the scheme contract shows it.
pub fn claim_result(rec: &ClaimRecord) -> pb::ClaimResult {
    let c = &rec.claim;
    let (lines, totals) = line_results(&c.lines, rec.shares.as_deref());
    pb::ClaimResult {
        scheme_id: c.scheme_id.clone(),
        claim_id: c.claim_id.clone(),
        state: pb::ClaimState::from(rec.state) as i32,
        mutuelle_id: rec.mutuelle_id.clone(),
        member_number: rec.member_number.clone(),
        currency: c.currency.clone(),
        lines,
        totals: Some(totals),
        rejection: rec.rejection.as_ref().map(convert::reason_to_pb),
        updated_at_ms: rec.updated_ms,
        change_seq: rec.change_seq,
        product: rec.product.as_ref().map(convert::product_ref_to_pb),
        duplicate_of_claim_id: rec.duplicate_of.clone().unwrap_or_default(),
    }
}

/// The claims of a page of changes, stopping before `budget` bytes (the
/// claims after come on the next page; at least one is sent), and the
/// change number the next page starts after.
fn page_within(rows: &[ClaimRecord], after: u64, budget: usize) -> (Vec<pb::ClaimResult>, u64) {
    let mut next = after;
    let mut bytes = 0;
    let mut claims = Vec::with_capacity(rows.len());
    for r in rows {
        let c = claim_result(r);
        // The claim as a field of the response: its bytes, its tag and
        // its length.
        let len = prost::Message::encoded_len(&c);
        let n = 1 + prost::length_delimiter_len(len) + len;
        if !claims.is_empty() && bytes + n > budget {
            break;
        }
        bytes += n;
        next = r.change_seq;
        claims.push(c);
    }
    (claims, next)
}

fn parse_cursor(c: &str) -> Result<u64, ServiceError> {
    if c.is_empty() {
        return Ok(0);
    }
    c.strip_prefix("c")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            ServiceError::invalid("cursor", "not a cursor returned by ListChangedClaims")
        })
}

fn cursor(seq: u64) -> String {
    format!("c{seq}")
}

scheme_call!(
    pb::CheckEligibilityRequest,
    "CheckEligibility",
    |m| format!("{}/eligibility", m.scheme_id)
);
scheme_call!(pb::CoordinateClaimRequest, "CoordinateClaim", |m| format!(
    "{}/{}",
    m.scheme_id, m.claim_id
));
scheme_call!(pb::GetClaimRequest, "GetClaim", |m| format!(
    "{}/{}",
    m.scheme_id, m.claim_id
));
scheme_call!(
    pb::GetPatientNoticeRequest,
    "GetPatientNotice",
    |m| format!("{}/{}", m.scheme_id, m.claim_id)
);
// Long polls have a pool of their own (see crate::admission).
scheme_call!(pb::ListChangedClaimsRequest, "ListChangedClaims",
    |m| format!("{}/changes", m.scheme_id),
    pool: if m.wait_ms > 0 { Pool::LongPoll } else { Pool::Calls });
scheme_call!(pb::CancelClaimRequest, "CancelClaim", |m| format!(
    "{}/{}",
    m.scheme_id, m.claim_id
));

scheme_call!(
    pb::RequestPriorAuthorizationRequest,
    "RequestPriorAuthorization",
    |m| format!("{}/{}", m.scheme_id, m.authorization_id)
);
scheme_call!(
    pb::GetPriorAuthorizationRequest,
    "GetPriorAuthorization",
    |m| format!("{}/{}", m.scheme_id, m.authorization_id)
);
scheme_call!(
    pb::ExtendPriorAuthorizationRequest,
    "ExtendPriorAuthorization",
    |m| format!("{}/{}", m.scheme_id, m.authorization_id)
);
scheme_call!(
    pb::CancelPriorAuthorizationRequest,
    "CancelPriorAuthorization",
    |m| format!("{}/{}", m.scheme_id, m.authorization_id)
);

/// A stored prior authorization as the scheme contract shows it: per
/// planned line, what the mutuelle committed (M) and the patient will owe
/// (P) if billed as planned.
pub fn authorization_result(rec: &AuthorizationRecord) -> pb::PriorAuthorization {
    let t = &rec.terms;
    let (lines, totals) = line_results(&t.planned.lines, Some(&t.shares));
    let state = match rec.state {
        AuthorizationState::Active => pb::PriorAuthorizationState::Active,
        AuthorizationState::Consumed => pb::PriorAuthorizationState::Consumed,
        AuthorizationState::Cancelled => pb::PriorAuthorizationState::Cancelled,
        AuthorizationState::Expired => pb::PriorAuthorizationState::Expired,
    };
    pb::PriorAuthorization {
        scheme_id: rec.scheme_id.clone(),
        authorization_id: rec.authorization_id.clone(),
        reference: rec.reference.clone(),
        state: state as i32,
        mutuelle_id: rec.mutuelle_id.clone(),
        member_number: rec.member_number.clone(),
        currency: t.planned.currency.clone(),
        lines,
        totals: Some(totals),
        valid_until: date::format(rec.valid_until),
        tolerance_bp: t.tolerance_bp,
        stay: t.planned.stay.as_ref().map(convert::stay_to_pb),
        extensions: rec.extensions,
        claim_id: rec.claim_id.clone(),
        product: t.product.as_ref().map(convert::product_ref_to_pb),
        updated_at_ms: rec.updated_ms,
        partner_reference: t.partner_reference.clone(),
        date_of_care: date::format(t.planned.date_of_care),
    }
}

/// The scheme and authorization ids of a request, checked.
fn authorization_ids(scheme_id: &str, authorization_id: &str) -> Result<(), ServiceError> {
    let mut v = parse::Violations::new();
    v.id("scheme_id", scheme_id);
    v.id("authorization_id", authorization_id);
    Ok(v.finish(())?)
}

/// The checks of a cancel (of a claim, of an authorization): its two ids
/// and its reason, a free text that goes to the mutuelle's system (an XML
/// partner's template too).
fn cancel_request(
    scheme_id: &str,
    (id_field, id): (&str, &str),
    reason: &str,
) -> Result<(), ServiceError> {
    let mut v = parse::Violations::new();
    v.id("scheme_id", scheme_id);
    v.id(id_field, id);
    passerelle_domain::validate::check_text(
        "reason",
        reason,
        passerelle_domain::validate::MAX_TEXT_LEN,
        &mut v.0,
    );
    Ok(v.finish(())?)
}

#[tonic::async_trait]
impl SchemeService for SchemeApi {
    async fn request_prior_authorization(
        &self,
        request: Request<pb::RequestPriorAuthorizationRequest>,
    ) -> Result<Response<pb::PriorAuthorization>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let planned = parse::prior_authorization(msg)?;
            let rec = self.broker.request_authorization(planned).await?;
            Ok(authorization_result(&rec))
        })
        .await
    }

    async fn get_prior_authorization(
        &self,
        request: Request<pb::GetPriorAuthorizationRequest>,
    ) -> Result<Response<pb::PriorAuthorization>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            authorization_ids(&msg.scheme_id, &msg.authorization_id)?;
            let rec = self
                .broker
                .get_authorization(&msg.scheme_id, &msg.authorization_id)
                .await?;
            Ok(authorization_result(&rec))
        })
        .await
    }

    async fn extend_prior_authorization(
        &self,
        request: Request<pb::ExtendPriorAuthorizationRequest>,
    ) -> Result<Response<pb::PriorAuthorization>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            authorization_ids(&msg.scheme_id, &msg.authorization_id)?;
            let (scheme_id, id) = (msg.scheme_id.clone(), msg.authorization_id.clone());
            let e = parse::extension(msg)?;
            let rec = self
                .broker
                .extend_authorization(&scheme_id, &id, e.extension, e.stay, e.lines)
                .await?;
            Ok(authorization_result(&rec))
        })
        .await
    }

    async fn cancel_prior_authorization(
        &self,
        request: Request<pb::CancelPriorAuthorizationRequest>,
    ) -> Result<Response<pb::PriorAuthorization>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            cancel_request(
                &msg.scheme_id,
                ("authorization_id", &msg.authorization_id),
                &msg.reason,
            )?;
            let rec = self
                .broker
                .cancel_authorization(&msg.scheme_id, &msg.authorization_id, &msg.reason)
                .await?;
            Ok(authorization_result(&rec))
        })
        .await
    }

    async fn check_eligibility(
        &self,
        request: Request<pb::CheckEligibilityRequest>,
    ) -> Result<Response<pb::CheckEligibilityResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let q = parse::eligibility(msg)?;
            let day = q.date_of_care;
            let lines = q.lines.clone();
            let (mutuelle_id, a) = self.broker.eligibility(q).await?;
            let estimates = a
                .lines
                .iter()
                .zip(&lines)
                .map(|(s, l)| pb::LineEstimate {
                    sequence: s.sequence,
                    remainder: l.remainder(),
                    mutuelle_share: s.mutuelle_share,
                    patient_share: l.billed - l.scheme_share - s.mutuelle_share,
                    reasons: s.reasons.iter().map(convert::reason_to_pb).collect(),
                })
                .collect();
            Ok(pb::CheckEligibilityResponse {
                covered: a.covered,
                reason: a.reason.as_ref().map(convert::reason_to_pb),
                mutuelle_id,
                member_number: a.member_number,
                household_id: a.household_id,
                product: a.product.as_ref().map(convert::product_ref_to_pb),
                contribution: Some(common::ContributionStatus {
                    paid_until: a.paid_until.map(date::format).unwrap_or_default(),
                    up_to_date: a.paid_until.is_some_and(|p| p >= day),
                }),
                ceilings: a.ceilings.iter().map(convert::ceiling_to_pb).collect(),
                line_estimates: estimates,
                cost_shares: a
                    .cost_shares
                    .iter()
                    .map(convert::cost_share_to_pb)
                    .collect(),
            })
        })
        .await
    }

    async fn coordinate_claim(
        &self,
        request: Request<pb::CoordinateClaimRequest>,
    ) -> Result<Response<pb::ClaimResult>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let claim = parse::claim(msg)?;
            let rec = self.broker.coordinate(claim).await?;
            Ok(claim_result(&rec))
        })
        .await
    }

    async fn get_claim(
        &self,
        request: Request<pb::GetClaimRequest>,
    ) -> Result<Response<pb::ClaimResult>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = parse::Violations::new();
            v.id("scheme_id", &msg.scheme_id);
            v.id("claim_id", &msg.claim_id);
            v.finish(())?;
            let rec = self.broker.get(&msg.scheme_id, &msg.claim_id).await?;
            Ok(claim_result(&rec))
        })
        .await
    }

    async fn get_patient_notice(
        &self,
        request: Request<pb::GetPatientNoticeRequest>,
    ) -> Result<Response<pb::GetPatientNoticeResponse>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = parse::Violations::new();
            v.id("scheme_id", &msg.scheme_id);
            v.id("claim_id", &msg.claim_id);
            let lang = parse::language(&mut v, "language", &msg.language);
            v.finish(())?;
            let rec = self.broker.get(&msg.scheme_id, &msg.claim_id).await?;
            if rec.state != passerelle_domain::ClaimState::Coordinated {
                return Err(ServiceError::Refused(format!(
                    "claim {} is {}: a notice is for a coordinated claim",
                    msg.claim_id,
                    rec.state.as_str()
                )));
            }
            let (text, sms) = lang.patient_notice(
                &claim_result(&rec),
                &rec.claim.provider_id,
                rec.claim.date_of_care,
            );
            Ok(pb::GetPatientNoticeResponse {
                text,
                sms,
                language: lang.code().to_string(),
            })
        })
        .await
    }

    async fn list_changed_claims(
        &self,
        request: Request<pb::ListChangedClaimsRequest>,
    ) -> Result<Response<pb::ListChangedClaimsResponse>, Status> {
        let budget = super::call_budget(&request, self.broker.request_timeout());
        serve(&self.broker, request, |msg, ()| async move {
            let mut v = parse::Violations::new();
            v.id("scheme_id", &msg.scheme_id);
            if msg.page_size > MAX_PAGE {
                v.add("page_size", format!("must be at most {MAX_PAGE}"));
            }
            if msg.wait_ms > MAX_WAIT_MS {
                v.add("wait_ms", format!("must be at most {MAX_WAIT_MS}"));
            }
            v.finish(())?;
            let after = parse_cursor(&msg.cursor)?;
            let limit = if msg.page_size == 0 {
                DEFAULT_PAGE
            } else {
                msg.page_size
            };
            // A wait ends before the call's deadline, so that a long poll
            // answers (possibly empty), never CANCELLED.
            let wait = super::wait_within(Duration::from_millis(msg.wait_ms as u64), budget);
            let rows = self
                .broker
                .list_changed(&msg.scheme_id, after, limit, wait)
                .await?;
            let (claims, next) = page_within(&rows, after, MAX_PAGE_BYTES);
            Ok(pb::ListChangedClaimsResponse {
                claims,
                next_cursor: cursor(next),
            })
        })
        .await
    }

    async fn cancel_claim(
        &self,
        request: Request<pb::CancelClaimRequest>,
    ) -> Result<Response<pb::ClaimResult>, Status> {
        serve(&self.broker, request, |msg, ()| async move {
            cancel_request(&msg.scheme_id, ("claim_id", &msg.claim_id), &msg.reason)?;
            let rec = self
                .broker
                .cancel(&msg.scheme_id, &msg.claim_id, &msg.reason)
                .await?;
            Ok(claim_result(&rec))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ClaimRecord;

    fn record(seq: u64) -> ClaimRecord {
        let claim = crate::store::conformance::sample_claim("CNSS", &format!("C-{seq}"), "I");
        ClaimRecord {
            claim,
            request_hash: String::new(),
            state: passerelle_domain::ClaimState::Received,
            mutuelle_id: "MUT-A".into(),
            member_number: "M-1".into(),
            adjudication_key: String::new(),
            cancel_key: None,
            cancel_reason: String::new(),
            shares: None,
            product: None,
            partner_reference: String::new(),
            rejection: None,
            attempts: 0,
            next_attempt_ms: None,
            last_error: String::new(),
            change_seq: seq,
            created_ms: 0,
            updated_ms: 0,
            duplicate_of: None,
        }
    }

    #[test]
    fn a_page_of_changes_stops_before_its_byte_budget() {
        let rows: Vec<ClaimRecord> = (1..=10).map(record).collect();
        let one = prost::Message::encoded_len(&claim_result(&rows[0]));
        let (page, next) = page_within(&rows, 0, one * 3 + one / 2);
        assert_eq!(page.len(), 3);
        assert_eq!(next, 3);
        // The rest follows from the cursor.
        let (rest, next) = page_within(&rows[3..], next, usize::MAX);
        assert_eq!((rest.len(), next), (7, 10));
        // At least one claim, whatever its size.
        let (page, next) = page_within(&rows, 0, 1);
        assert_eq!((page.len(), next), (1, 1));
    }
}
