//! The simulated mutuelle's gRPC front: `passerelle.partner.v1.MutuellePartner`
//! as a thin translator (protobuf request to [`Care`], the core's call, the
//! domain answer back to protobuf), and its servers (plaintext or TLS).

use std::net::SocketAddr;
use std::sync::Arc;

use passerelle_domain::{ClaimLine, ReasonCode, date};
use passerelle_proto::common::v1::ContributionStatus;
use passerelle_proto::convert;
use passerelle_proto::partner::v1 as pb;
use pb::mutuelle_partner_server::{MutuellePartner, MutuellePartnerServer};
use tonic::{Request, Response, Status};

use super::{Call, Care, SimError, SimMutuelle};
use crate::{EligibilityAnswer, PartnerAdjudication};

impl SimMutuelle {
    /// Serves on a listener until the returned task is aborted.
    pub fn spawn(self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        use tokio_stream::StreamExt;
        // Small answers must leave at once: without TCP_NODELAY each one
        // waits for the peer's delayed ACK (about 40 ms).
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
            if let Ok(s) = &s {
                let _ = s.set_nodelay(true);
            }
            s
        });
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(MutuellePartnerServer::new(self))
                .serve_with_incoming(incoming)
                .await;
        })
    }

    /// Binds 127.0.0.1:0 and serves over TLS with this server config.
    pub async fn start_tls(
        self,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(s) = acceptor.accept(tcp).await {
                        let _ = tx.send(Ok::<_, std::io::Error>(s)).await;
                    }
                });
            }
        });
        let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(MutuellePartnerServer::new(self))
                .serve_with_incoming(incoming)
                .await;
        });
        Ok((addr, task))
    }

    /// Binds 127.0.0.1:0 and serves; returns the address.
    pub async fn start(self) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        Ok((addr, self.spawn(listener)))
    }
}

impl From<SimError> for Status {
    fn from(e: SimError) -> Status {
        let message = e.to_string();
        match e {
            SimError::Unauthenticated(_) => Status::unauthenticated(message),
            SimError::Unavailable => Status::unavailable(message),
            SimError::InvalidArgument(_) => Status::invalid_argument(message),
            SimError::NotMember => Status::failed_precondition(message),
            SimError::NotFound(_) => Status::not_found(message),
        }
    }
}

fn authorization<T>(req: &Request<T>) -> Option<&str> {
    req.metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

/// The request's who, when and lines, in domain form.
fn care(
    member_number: &str,
    beneficiary_id: &str,
    date_of_care: &str,
    lines: &[pb::RemainderLine],
    diagnoses: &[String],
) -> Result<Care, Status> {
    let date_of_care = SimError::date(date_of_care)?;
    let lines = lines
        .iter()
        .map(|l| {
            ClaimLine::try_from(l)
                .map_err(|v| Status::invalid_argument(format!("lines.{}", v.field)))
        })
        .collect::<Result<_, _>>()?;
    Ok(Care {
        member_number: member_number.to_string(),
        beneficiary_id: beneficiary_id.to_string(),
        date_of_care,
        stay_id: None,
        beneficiary_category: String::new(),
        diagnoses: diagnoses.to_vec(),
        lines,
        prior_reference: String::new(),
    })
}

fn eligibility_to_pb(
    a: &EligibilityAnswer,
    date_of_care: date::Date,
) -> pb::ComplementaryEligibilityResponse {
    // An unknown member has no contribution to tell.
    let known = !a
        .reason
        .as_ref()
        .is_some_and(|r| r.code == ReasonCode::UnknownMember);
    pb::ComplementaryEligibilityResponse {
        covered: a.covered,
        reason: a.reason.as_ref().map(convert::reason_to_pb),
        member_number: a.member_number.clone(),
        household_id: a.household_id.clone(),
        product: a.product.as_ref().map(convert::product_ref_to_pb),
        contribution: known.then(|| ContributionStatus {
            paid_until: a.paid_until.map(date::format).unwrap_or_default(),
            up_to_date: a.paid_until.is_some_and(|p| p >= date_of_care),
        }),
        ceilings: a.ceilings.iter().map(convert::ceiling_to_pb).collect(),
        lines: a
            .lines
            .iter()
            .map(convert::line_share_to_partner_pb)
            .collect(),
    }
}

fn adjudication_to_pb(a: &PartnerAdjudication) -> pb::AdjudicateRemainderResponse {
    pb::AdjudicateRemainderResponse {
        lines: a
            .lines
            .iter()
            .map(convert::line_share_to_partner_pb)
            .collect(),
        partner_reference: a.partner_reference.clone(),
        product: a.product.as_ref().map(convert::product_ref_to_pb),
    }
}

#[tonic::async_trait]
impl MutuellePartner for SimMutuelle {
    async fn check_complementary_eligibility(
        &self,
        request: Request<pb::ComplementaryEligibilityRequest>,
    ) -> Result<Response<pb::ComplementaryEligibilityResponse>, Status> {
        self.open(Call::Eligibility, authorization(&request))
            .await?;
        let q = request.into_inner();
        let care = care(
            &q.member_number,
            &q.beneficiary_id,
            &q.date_of_care,
            &q.lines,
            &q.diagnoses,
        )?;
        let a = self.eligibility(&care);
        Ok(Response::new(eligibility_to_pb(&a, care.date_of_care)))
    }

    async fn adjudicate_remainder(
        &self,
        request: Request<pb::AdjudicateRemainderRequest>,
    ) -> Result<Response<pb::AdjudicateRemainderResponse>, Status> {
        self.record_trace(
            request
                .metadata()
                .get("traceparent")
                .and_then(|v| v.to_str().ok()),
        );
        let mode = self.open(Call::Adjudicate, authorization(&request)).await?;
        let q = request.into_inner();
        SimError::key(&q.idempotency_key)?;
        let mut care = care(
            &q.member_number,
            &q.beneficiary_id,
            &q.date_of_care,
            &q.lines,
            &q.diagnoses,
        )?;
        care.stay_id = q.stay.map(|s| s.stay_id);
        care.beneficiary_category = q.beneficiary_category;
        care.prior_reference = q.prior_authorization_reference;
        let a = self.adjudicate(mode, &q.idempotency_key, &care)?;
        Ok(Response::new(adjudication_to_pb(&a)))
    }

    async fn pre_authorize(
        &self,
        request: Request<pb::PreAuthorizeRequest>,
    ) -> Result<Response<pb::PreAuthorizeResponse>, Status> {
        self.open(Call::Adjudicate, authorization(&request)).await?;
        let q = request.into_inner();
        SimError::key(&q.idempotency_key)?;
        let mut care = care(
            &q.member_number,
            &q.beneficiary_id,
            &q.date_of_care,
            &q.lines,
            &q.diagnoses,
        )?;
        care.stay_id = q.stay.map(|s| s.stay_id).filter(|s| !s.is_empty());
        care.beneficiary_category = q.beneficiary_category;
        care.prior_reference = q.extends_reference;
        let c = self.preauthorize(&q.idempotency_key, &care)?;
        Ok(Response::new(pb::PreAuthorizeResponse {
            lines: c
                .lines
                .iter()
                .map(convert::line_share_to_partner_pb)
                .collect(),
            partner_reference: c.partner_reference,
            valid_until: c.valid_until.map(date::format).unwrap_or_default(),
            tolerance_bp: c.tolerance_bp.unwrap_or(0),
            product: c.product.as_ref().map(convert::product_ref_to_pb),
        }))
    }

    async fn cancel_pre_authorization(
        &self,
        request: Request<pb::CancelPreAuthorizationRequest>,
    ) -> Result<Response<pb::CancelPreAuthorizationResponse>, Status> {
        self.open(Call::Cancel, None).await?;
        let q = request.into_inner();
        self.cancel_preauthorization(&q.partner_reference);
        Ok(Response::new(pb::CancelPreAuthorizationResponse {}))
    }

    async fn cancel_adjudication(
        &self,
        request: Request<pb::CancelAdjudicationRequest>,
    ) -> Result<Response<pb::CancelAdjudicationResponse>, Status> {
        self.open(Call::Cancel, None).await?;
        let q = request.into_inner();
        self.cancel(&q.idempotency_key, &q.adjudication_key);
        Ok(Response::new(pb::CancelAdjudicationResponse {}))
    }
}
