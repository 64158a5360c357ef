//! The grpc adapter: calls a mutuelle that implements
//! `passerelle.partner.v1.MutuellePartner`. The partner keeps its own members,
//! products and ceilings; passerelle only checks its answers.

use std::time::Duration;

use async_trait::async_trait;
use passerelle_domain::{Claim, ClaimLine, Reason, ReasonCode, date};
use passerelle_proto::convert;
use passerelle_proto::partner::v1 as pb;
use pb::mutuelle_partner_client::MutuellePartnerClient;
use serde::Deserialize;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::{
    Adapter, AdapterError, AdapterKind, AdjudicationRequest, CancelRequest, EligibilityAnswer,
    EligibilityQuery, PartnerAdjudication,
};

/// Settings of a native gRPC partner.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Address of the partner's MutuellePartner service, "http://host:port".
    pub endpoint: String,
    /// Deadline of one call, in milliseconds. A partner that misses it leaves
    /// the claim pending; passerelle retries with the same key. Default 2000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Deadline for opening a connection, in milliseconds. Default 1000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    2000
}
fn default_connect_timeout_ms() -> u64 {
    1000
}

pub struct GrpcAdapter {
    client: MutuellePartnerClient<Channel>,
    timeout: Duration,
}

impl GrpcAdapter {
    /// Builds the adapter; the connection opens lazily on the first call.
    pub fn new(cfg: &GrpcConfig) -> Result<Self, String> {
        let endpoint = Endpoint::from_shared(cfg.endpoint.clone())
            .map_err(|e| format!("endpoint {:?}: {e}", cfg.endpoint))?
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .tcp_nodelay(true);
        Ok(GrpcAdapter {
            client: MutuellePartnerClient::new(endpoint.connect_lazy()),
            timeout: Duration::from_millis(cfg.timeout_ms),
        })
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.timeout);
        r
    }

    async fn call<T, F>(&self, fut: F) -> Result<T, AdapterError>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(AdapterError::Timeout(self.timeout.as_millis() as u64)),
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(status_to_error(s, self.timeout)),
        }
    }
}

/// Transient codes are retried with the same key; the others end the claim.
fn status_to_error(s: Status, timeout: Duration) -> AdapterError {
    match s.code() {
        Code::DeadlineExceeded => AdapterError::Timeout(timeout.as_millis() as u64),
        Code::Unavailable
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Internal
        | Code::Unknown
        | Code::Cancelled => AdapterError::Unavailable(format!("{:?}: {}", s.code(), s.message())),
        _ => AdapterError::Rejected(Reason::new(
            ReasonCode::PartnerRejected,
            format!("{:?}: {}", s.code(), s.message()),
        )),
    }
}

/// A claim line as the partner contract carries it.
pub fn remainder_line(sequence: u32, l: &ClaimLine) -> pb::RemainderLine {
    pb::RemainderLine {
        sequence,
        act_code: l.act_code.clone(),
        care_category: convert::care_category_to_pb(l.category),
        quantity: l.quantity,
        billed: l.billed,
        tariff_base: l.tariff_base,
        scheme_share: l.scheme_share,
        scheme_outcome: convert::scheme_outcome_to_pb(l.outcome),
        scheme_reason: l.scheme_reason.clone(),
        ticket_moderateur: l.ticket_moderateur(),
        overrun: l.overrun(),
        remainder: l.remainder(),
    }
}

fn lines_pb(lines: &[ClaimLine]) -> Vec<pb::RemainderLine> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| remainder_line(i as u32 + 1, l))
        .collect()
}

/// The AdjudicateRemainder request for a claim.
pub fn adjudicate_request(
    key: &str,
    c: &Claim,
    member_number: &str,
) -> pb::AdjudicateRemainderRequest {
    pb::AdjudicateRemainderRequest {
        idempotency_key: key.to_string(),
        scheme_id: c.scheme_id.clone(),
        claim_id: c.claim_id.clone(),
        beneficiary_id: c.beneficiary_id.clone(),
        beneficiary_category: c.beneficiary_category.clone(),
        member_number: member_number.to_string(),
        provider_id: c.provider_id.clone(),
        invoice_number: c.invoice_number.clone(),
        payee: convert::payee_to_pb(c.payee),
        date_of_care: date::format(c.date_of_care),
        stay: c.stay.as_ref().map(convert::stay_to_pb),
        diagnoses: c.diagnoses.clone(),
        currency: c.currency.clone(),
        lines: lines_pb(&c.lines),
    }
}

#[async_trait]
impl Adapter for GrpcAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Grpc
    }

    async fn eligibility(&self, q: &EligibilityQuery) -> Result<EligibilityAnswer, AdapterError> {
        let req = pb::ComplementaryEligibilityRequest {
            idempotency_key: q.idempotency_key.clone(),
            scheme_id: q.scheme_id.clone(),
            beneficiary_id: q.beneficiary_id.clone(),
            member_number: q.member_number.clone().unwrap_or_default(),
            date_of_care: date::format(q.date_of_care),
            currency: q.currency.clone(),
            lines: lines_pb(&q.lines),
            diagnoses: q.diagnoses.clone(),
        };
        let mut client = self.client.clone();
        let r = self
            .call(client.check_complementary_eligibility(self.request(req)))
            .await?;
        let paid_until = match r.contribution.as_ref().map(|c| c.paid_until.as_str()) {
            None | Some("") => None,
            Some(s) => Some(date::parse(s).ok_or_else(|| {
                AdapterError::Malformed(format!("contribution.paid_until: invalid date {s:?}"))
            })?),
        };
        Ok(EligibilityAnswer {
            covered: r.covered,
            reason: r.reason.as_ref().map(convert::reason_from_pb),
            member_number: r.member_number,
            household_id: r.household_id,
            product: r.product.as_ref().and_then(convert::product_ref_from_pb),
            paid_until,
            ceilings: r.ceilings.iter().map(convert::ceiling_from_pb).collect(),
            lines: r
                .lines
                .iter()
                .map(convert::line_share_from_partner_pb)
                .collect(),
        })
    }

    async fn adjudicate(
        &self,
        req: AdjudicationRequest<'_>,
    ) -> Result<PartnerAdjudication, AdapterError> {
        let msg = adjudicate_request(req.idempotency_key, req.claim, req.member_number);
        let mut client = self.client.clone();
        let r = self
            .call(client.adjudicate_remainder(self.request(msg)))
            .await?;
        Ok(PartnerAdjudication {
            lines: r
                .lines
                .iter()
                .map(convert::line_share_from_partner_pb)
                .collect(),
            partner_reference: r.partner_reference,
            product: r.product.as_ref().and_then(convert::product_ref_from_pb),
            consumption: Vec::new(),
        })
    }

    async fn cancel(&self, req: CancelRequest<'_>) -> Result<(), AdapterError> {
        let msg = pb::CancelAdjudicationRequest {
            idempotency_key: req.idempotency_key.to_string(),
            adjudication_key: req.adjudication_key.to_string(),
            scheme_id: req.scheme_id.to_string(),
            claim_id: req.claim_id.to_string(),
            reason: req.reason.to_string(),
        };
        let mut client = self.client.clone();
        self.call(client.cancel_adjudication(self.request(msg)))
            .await?;
        Ok(())
    }
}
