//! The grpc adapter: calls a mutuelle that implements
//! `passerelle.partner.v1.MutuellePartner`. The partner keeps its own members,
//! products and ceilings; passerelle only checks its answers.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use passerelle_domain::{Reason, ReasonCode, date};
use passerelle_proto::convert;
use passerelle_proto::partner::v1 as pb;
use pb::mutuelle_partner_client::MutuellePartnerClient;
use serde::Deserialize;
use std::sync::Arc;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::registry::{PartnerContext, PartnerSettings};
use crate::{
    Adapter, AdapterError, AdjudicationRequest, CancelPreAuthorization, CancelRequest, Commitment,
    EligibilityAnswer, EligibilityQuery, PartnerAdjudication, PreAuthorizationRequest,
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
    /// TLS to the partner (endpoint "https://..."). Without it, plaintext.
    #[serde(default)]
    pub tls: Option<PartnerTls>,
    /// A file holding a bearer token, sent as "authorization: Bearer <token>"
    /// on every call, for partners that authenticate callers by token rather
    /// than by certificate. The token itself never goes in the config.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Code mapping tables (empty: the broker's codes as they are).
    #[serde(default)]
    pub codes: crate::codes::CodeMaps,
}

/// TLS settings towards one partner.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerTls {
    /// CA(s) that signed the partner's server certificate (PEM).
    pub ca_file: PathBuf,
    /// The broker's client certificate (PEM), when the partner asks for one.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name to verify in the partner's certificate; default: the
    /// endpoint's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Also accept TLS 1.2, for a partner that cannot do 1.3. Default: 1.3 only.
    #[serde(default)]
    pub allow_tls12: bool,
}

fn default_timeout_ms() -> u64 {
    2000
}
fn default_connect_timeout_ms() -> u64 {
    1000
}

impl PartnerSettings for GrpcConfig {
    fn url(&self) -> Option<&str> {
        Some(&self.endpoint)
    }

    fn timeout_ms(&self) -> Option<u64> {
        Some(self.timeout_ms)
    }

    fn files(&mut self) -> Vec<&mut PathBuf> {
        let mut files: Vec<&mut PathBuf> =
            self.tls.iter_mut().flat_map(PartnerTls::files).collect();
        files.extend(self.token_file.as_mut());
        files
    }

    fn build(&self, _: &PartnerContext) -> Result<Arc<dyn Adapter>, String> {
        Ok(Arc::new(GrpcAdapter::new(self)?))
    }
}

impl PartnerTls {
    /// Its file paths, for [`PartnerSettings::files`].
    pub fn files(&mut self) -> impl Iterator<Item = &mut PathBuf> {
        std::iter::once(&mut self.ca_file)
            .chain(self.cert_file.as_mut())
            .chain(self.key_file.as_mut())
    }
}

pub(crate) fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A secret file (token, password, API key): text, its blanks around
/// trimmed, never empty. An empty file (one being rewritten, say) is
/// refused rather than sent as an empty credential; on a reload the
/// secret in force stays.
pub(crate) fn read_secret(path: &std::path::Path) -> Result<String, String> {
    let text =
        String::from_utf8(read(path)?).map_err(|_| format!("{}: not text", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!(
            "{}: empty: the file must hold the secret",
            path.display()
        ));
    }
    Ok(secret.to_string())
}

/// The certificates of a PEM file: at least one, and nothing unreadable.
fn pem_certs(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let bytes = read(path)?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificate in this file",
            path.display()
        ));
    }
    Ok(certs)
}

/// The rustls client config for a partner: ring only, TLS 1.3 (and 1.2 if
/// allowed), the partner's CA, and the broker's certificate if given.
fn client_config(t: &PartnerTls) -> Result<Arc<rustls::ClientConfig>, String> {
    partner_tls_config(t, &[b"h2"])
}

/// The same, for any protocol (ALPN), shared by the HTTP adapters.
pub(crate) fn partner_tls_config(
    t: &PartnerTls,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    // Fail closed: a CA file that holds no certificate is refused here,
    // rather than accepted as an empty trust store.
    for c in pem_certs(&t.ca_file)? {
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", t.ca_file.display()))?;
    }
    let versions: &[&'static rustls::SupportedProtocolVersion] = if t.allow_tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut cfg = match (&t.cert_file, &t.key_file) {
        (Some(c), Some(k)) => {
            let chain = pem_certs(c)?;
            let key = rustls_pemfile::private_key(&mut read(k)?.as_slice())
                .map_err(|e| format!("{}: {e}", k.display()))?
                .ok_or_else(|| format!("{}: no private key", k.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("tls: cert_file and key_file go together".into()),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// Adds the bearer token, when there is one, and the call's `traceparent`.
#[derive(Clone)]
pub struct Token(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        // The call's client span (crate::trace).
        if let Some(t) = crate::trace::outgoing()
            && let Ok(v) = t.parse()
        {
            req.metadata_mut().insert("traceparent", v);
        }
        Ok(req)
    }
}

type Client =
    MutuellePartnerClient<tonic::service::interceptor::InterceptedService<Channel, Token>>;

pub struct GrpcAdapter {
    client: Client,
    timeout: Duration,
    codes: crate::codes::CodeMaps,
}

impl GrpcAdapter {
    /// Builds the adapter; the connection opens lazily on the first call.
    /// Relative paths must be resolved first (the registry does it).
    pub fn new(cfg: &GrpcConfig) -> Result<Self, String> {
        let uri: tonic::codegen::http::Uri = cfg
            .endpoint
            .parse()
            .map_err(|e| format!("endpoint {:?}: {e}", cfg.endpoint))?;
        let https = uri.scheme_str() == Some("https");
        if https != cfg.tls.is_some() {
            return Err(format!(
                "endpoint {:?}: use https:// with a [tls] table, http:// without",
                cfg.endpoint
            ));
        }
        // tonic speaks HTTP/2 over whatever stream the connector gives it;
        // the connector below does the TLS.
        let plain = cfg.endpoint.replacen("https://", "http://", 1);
        let endpoint = Endpoint::from_shared(plain)
            .map_err(|e| format!("endpoint {:?}: {e}", cfg.endpoint))?
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .tcp_nodelay(true);
        let channel = match &cfg.tls {
            None => endpoint.connect_lazy(),
            Some(t) => {
                let tls = tokio_rustls::TlsConnector::from(client_config(t)?);
                let host = uri
                    .host()
                    .unwrap_or("localhost")
                    .trim_matches(['[', ']'])
                    .to_string();
                let name =
                    rustls::pki_types::ServerName::try_from(t.server_name.clone().unwrap_or(host))
                        .map_err(|e| format!("tls server name: {e}"))?;
                let port = uri.port_u16().unwrap_or(443);
                let addr_host = uri
                    .host()
                    .unwrap_or("localhost")
                    .trim_matches(['[', ']'])
                    .to_string();
                let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| {
                    let (tls, name, host) = (tls.clone(), name.clone(), addr_host.clone());
                    async move {
                        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                        let _ = tcp.set_nodelay(true);
                        let stream = tls.connect(name, tcp).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                });
                endpoint.connect_with_connector_lazy(connector)
            }
        };
        let token = match &cfg.token_file {
            None => None,
            Some(f) => {
                let v = format!("Bearer {}", read_secret(f)?)
                    .parse()
                    .map_err(|_| format!("{}: not a valid header value", f.display()))?;
                Some(v)
            }
        };
        Ok(GrpcAdapter {
            client: MutuellePartnerClient::with_interceptor(channel, Token(token)),
            timeout: Duration::from_millis(cfg.timeout_ms),
            codes: cfg.codes.clone(),
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
        // tonic's own deadline (the call's grpc-timeout on either side, a
        // channel's timeout) ends a call CANCELLED "Timeout expired": a
        // slow partner, counted and audited as one, not as one down.
        Code::Cancelled if s.message() == "Timeout expired" => {
            AdapterError::Timeout(timeout.as_millis() as u64)
        }
        Code::Unavailable
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Internal
                | Code::Unknown
        | Code::Cancelled
        // A credential problem between the broker and the partner is fixed
        // by operators; the claim waits for it rather than being rejected.
        | Code::Unauthenticated
        | Code::PermissionDenied => AdapterError::Unavailable(format!("{:?}: {}", s.code(), s.message())),
        // A method the partner does not offer (PreAuthorize is optional).
        Code::Unimplemented => AdapterError::Unsupported(s.message().to_string()),
        // A refusal reaches the scheme, the mutuelle's people and the
        // patient's notice: the mutuelle's own words, without the gRPC
        // code's name (`FailedPrecondition: ...`), which is for operators:
        // logged here.
        code => {
            tracing::info!(code = ?code, "partner refused the call: {}", s.message());
            let said = s.message().trim();
            AdapterError::Rejected(Reason::new(
                ReasonCode::PartnerRejected,
                if said.is_empty() {
                    format!("the mutuelle refused without saying why ({code:?})")
                } else {
                    said.to_string()
                },
            ))
        }
    }
}

use passerelle_proto::convert::{adjudicate_request, preauthorize_request, remainder_line};

/// The mapped lines as the partner contract carries them, with the
/// partner's act codes.
fn partner_lines(lines: &[crate::codes::MappedLine]) -> Vec<pb::RemainderLine> {
    lines
        .iter()
        .map(|m| {
            let mut l = remainder_line(m.sequence, &m.line);
            l.act_code = m.act.clone();
            l
        })
        .collect()
}

#[async_trait]
impl Adapter for GrpcAdapter {
    async fn eligibility(&self, q: &EligibilityQuery) -> Result<EligibilityAnswer, AdapterError> {
        // Asked in the partner's codes, as a claim is: its member id, its
        // act codes (a line with an unmapped code answered here, M = 0).
        // The scheme beneficiary id travels beside: asked without a member
        // number, none is made up.
        let asked = q.member_number.as_deref().unwrap_or("");
        let member = if asked.is_empty() && !self.codes.maps_members() {
            String::new()
        } else {
            match self.codes.member(asked, &q.beneficiary_id) {
                Ok(m) => m,
                Err(r) => return Ok(EligibilityAnswer::not_covered(r)),
            }
        };
        let (lines, local) = self.codes.lines(&q.lines);
        let req = pb::ComplementaryEligibilityRequest {
            idempotency_key: q.idempotency_key.clone(),
            scheme_id: q.scheme_id.clone(),
            beneficiary_id: q.beneficiary_id.clone(),
            member_number: member,
            date_of_care: date::format(q.date_of_care),
            currency: q.currency.clone(),
            lines: partner_lines(&lines),
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
            // The broker's member number, never the partner's id it was
            // mapped to.
            member_number: crate::codes::CodeMaps::shown_member(
                q.member_number.as_deref(),
                r.member_number,
            ),
            household_id: r.household_id,
            product: r.product.as_ref().and_then(convert::product_ref_from_pb),
            paid_until,
            ceilings: r.ceilings.iter().map(convert::ceiling_from_pb).collect(),
            // The partner contract carries no cost shares (yet).
            cost_shares: Vec::new(),
            lines: crate::codes::merge(
                r.lines
                    .iter()
                    .map(convert::line_share_from_partner_pb)
                    .collect(),
                local,
            ),
        })
    }

    async fn adjudicate(
        &self,
        req: AdjudicationRequest<'_>,
    ) -> Result<PartnerAdjudication, AdapterError> {
        let mapped = self
            .codes
            .claim(req.claim, req.member_number)
            .map_err(AdapterError::Rejected)?;
        if mapped.lines.is_empty() {
            return Ok(PartnerAdjudication {
                lines: mapped.unmapped,
                ..Default::default()
            });
        }
        let mut msg = adjudicate_request(req.idempotency_key, req.claim, &mapped.member);
        msg.prior_authorization_reference = req
            .prior
            .map(|p| p.partner_reference.clone())
            .unwrap_or_default();
        msg.provider_id = mapped.facility.clone();
        msg.diagnoses = mapped.diagnoses.clone();
        msg.lines = partner_lines(&mapped.lines);
        let mut client = self.client.clone();
        let r = self
            .call(client.adjudicate_remainder(self.request(msg)))
            .await?;
        Ok(PartnerAdjudication {
            lines: crate::codes::merge(
                r.lines
                    .iter()
                    .map(convert::line_share_from_partner_pb)
                    .collect(),
                mapped.unmapped,
            ),
            partner_reference: r.partner_reference,
            product: r.product.as_ref().and_then(convert::product_ref_from_pb),
            consumption: Vec::new(),
        })
    }

    async fn preauthorize(
        &self,
        req: PreAuthorizationRequest<'_>,
    ) -> Result<Commitment, AdapterError> {
        let mapped = self
            .codes
            .claim(req.planned, req.member_number)
            .map_err(AdapterError::Rejected)?;
        let extends = req
            .replaces
            .map(|p| p.partner_reference.as_str())
            .unwrap_or_default();
        let mut msg =
            preauthorize_request(req.idempotency_key, req.planned, &mapped.member, extends);
        msg.provider_id = mapped.facility.clone();
        msg.diagnoses = mapped.diagnoses.clone();
        msg.lines = partner_lines(&mapped.lines);
        let mut client = self.client.clone();
        let r = self.call(client.pre_authorize(self.request(msg))).await?;
        let valid_until = match r.valid_until.as_str() {
            "" => None,
            s => Some(date::parse(s).ok_or_else(|| {
                AdapterError::Malformed(format!("valid_until: invalid date {s:?}"))
            })?),
        };
        Ok(Commitment {
            lines: crate::codes::merge(
                r.lines
                    .iter()
                    .map(convert::line_share_from_partner_pb)
                    .collect(),
                mapped.unmapped,
            ),
            partner_reference: r.partner_reference,
            valid_until,
            tolerance_bp: Some(r.tolerance_bp),
            product: r.product.as_ref().and_then(convert::product_ref_from_pb),
            hold: Vec::new(),
        })
    }

    async fn cancel_preauthorization(
        &self,
        req: CancelPreAuthorization<'_>,
    ) -> Result<(), AdapterError> {
        let msg = pb::CancelPreAuthorizationRequest {
            idempotency_key: req.idempotency_key.to_string(),
            partner_reference: req.partner_reference.to_string(),
            scheme_id: req.scheme_id.to_string(),
            authorization_id: req.authorization_id.to_string(),
            reason: req.reason.to_string(),
        };
        let mut client = self.client.clone();
        self.call(client.cancel_pre_authorization(self.request(msg)))
            .await?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Eligibility is asked in the partner's codes, as a claim is: the
    /// member's id as `codes.members` maps it, the act codes as
    /// `codes.acts` maps them (a line with an unmapped code answered here,
    /// M = 0, never asked); the scheme is shown the broker's member
    /// number, not the partner's id. It was asked with the broker's
    /// member number and codes: another person's cover, or none.
    #[tokio::test]
    async fn eligibility_is_asked_in_the_partners_codes() {
        use passerelle_domain::{CareCategory, ClaimLine, SchemeOutcome};
        let sim = crate::kit::sim();
        let (addr, _task) = sim.clone().start().await.expect("sim");
        let mut codes = crate::codes::CodeMaps::default();
        codes.acts.insert("C-CONS".into(), "CONSULT".into());
        codes.members.insert("SOL-0001".into(), "K-1".into());
        let adapter = GrpcAdapter::new(&GrpcConfig {
            endpoint: format!("http://{addr}"),
            timeout_ms: 2000,
            connect_timeout_ms: 2000,
            tls: None,
            token_file: None,
            codes,
        })
        .expect("adapter");
        let line = |act: &str| ClaimLine {
            act_code: act.into(),
            category: CareCategory::Consultation,
            quantity: 1,
            billed: 5000,
            tariff_base: 5000,
            scheme_share: 3500,
            outcome: SchemeOutcome::Covered,
            scheme_reason: String::new(),
        };
        let query = |member: &str| EligibilityQuery {
            idempotency_key: "elig-codes".into(),
            scheme_id: "CNSS".into(),
            // A beneficiary id the partner does not know: the member id
            // alone finds the member.
            beneficiary_id: "TG-UNKNOWN".into(),
            member_number: Some(member.into()),
            member: None,
            date_of_care: date::parse("2026-11-20").expect("date"),
            currency: "XOF".into(),
            lines: vec![line("C-CONS"), line("NO-SUCH-ACT")],
            diagnoses: vec![],
        };
        let e = adapter
            .eligibility(&query("SOL-0001"))
            .await
            .expect("answers");
        assert!(e.covered, "{e:?}");
        assert_eq!(e.member_number, "SOL-0001");
        assert_eq!(
            e.lines.iter().map(|l| l.mutuelle_share).collect::<Vec<_>>(),
            [1500, 0]
        );
        assert_eq!(e.lines[1].reasons[0].code, ReasonCode::UnmappedCode);
        // A member the table does not map is not covered, said here.
        let e = adapter
            .eligibility(&query("SOL-9999"))
            .await
            .expect("answers");
        assert!(!e.covered);
        assert_eq!(e.reason.map(|r| r.code), Some(ReasonCode::UnmappedCode));
    }

    /// A partner past its deadline is slow, however tonic ends the call;
    /// a cancel for another cause is a transient failure.
    #[test]
    fn a_deadline_is_a_timeout_whichever_side_ends_the_call() {
        let t = Duration::from_millis(2000);
        for s in [
            Status::deadline_exceeded("deadline"),
            Status::cancelled("Timeout expired"),
        ] {
            assert!(
                matches!(status_to_error(s.clone(), t), AdapterError::Timeout(2000)),
                "{s:?}"
            );
        }
        assert!(matches!(
            status_to_error(Status::cancelled("client went away"), t),
            AdapterError::Unavailable(_)
        ));
    }

    /// A refusal says the mutuelle's words alone, which reach people (the
    /// scheme, the console, the patient's notice); without any, it says
    /// so, with the code.
    #[test]
    fn a_refusal_says_the_mutuelles_words_without_the_code_name() {
        let t = Duration::from_millis(2000);
        let said = |s: Status| match status_to_error(s, t) {
            AdapterError::Rejected(r) => r.message,
            e => panic!("{e:?}"),
        };
        assert_eq!(
            said(Status::failed_precondition("adhérent suspendu")),
            "adhérent suspendu"
        );
        assert_eq!(
            said(Status::invalid_argument(" ")),
            "the mutuelle refused without saying why (InvalidArgument)"
        );
    }
}
