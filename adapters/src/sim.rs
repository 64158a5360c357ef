//! A simulated mutuelle implementing `passerelle.partner.v1.MutuellePartner`,
//! for `passerelle dev` and the tests. It keeps its own members, products and
//! ceilings in memory and adjudicates with the same engine as the rules
//! adapter; it honours idempotency keys as the contract asks; and a test can
//! switch it to misbehave (hang, fail, overpay).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use passerelle_domain::engine::{self, Context};
use passerelle_domain::{
    CareCategory, CeilingUse, Claim, ClaimLine, Member, Payee, Product, ProductRef, Usage, date,
};
use passerelle_proto::convert;
use passerelle_proto::partner::v1 as pb;
use pb::mutuelle_partner_server::{MutuellePartner, MutuellePartnerServer};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

/// How the simulated partner behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Answers by its rules.
    #[default]
    Normal,
    /// Never answers (a future that never resolves).
    Hang,
    /// Answers UNAVAILABLE.
    Unavailable,
    /// Answers one more than the remainder on line 1 (an invalid answer).
    Overpay,
    /// Answers, but leaves the last line out.
    DropLine,
    /// Answers something that is not a valid answer (garbage for HTTP
    /// partners; an unknown line for gRPC).
    Garbage,
}

#[derive(Default)]
struct State {
    members: Vec<Member>,
    products: Vec<Product>,
    usage: Usage,
    answers: HashMap<String, pb::AdjudicateRemainderResponse>,
    consumed: HashMap<String, Vec<CeilingUse>>,
    cancelled: HashSet<String>,
    adjudication_keys: Vec<String>,
    cancel_keys: Vec<String>,
}

/// Counts of what the partner has seen, for tests to wait on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub adjudicate_calls: u64,
    pub adjudications: u64,
    pub cancel_calls: u64,
}

#[derive(Clone)]
pub struct SimMutuelle {
    id: String,
    token: Arc<Mutex<Option<String>>>,
    state: Arc<Mutex<State>>,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<watch::Sender<Seen>>,
}

impl SimMutuelle {
    pub fn new(id: impl Into<String>, members: Vec<Member>, products: Vec<Product>) -> Self {
        SimMutuelle {
            id: id.into(),
            token: Arc::new(Mutex::new(None)),
            state: Arc::new(Mutex::new(State {
                members,
                products,
                ..Default::default()
            })),
            mode: Arc::new(Mutex::new(Mode::Normal)),
            seen: Arc::new(watch::channel(Seen::default()).0),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    pub fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    /// Distinct adjudication keys adjudicated so far.
    pub fn adjudication_keys(&self) -> Vec<String> {
        self.state.lock().unwrap().adjudication_keys.clone()
    }

    /// Cancel keys received so far.
    pub fn cancel_keys(&self) -> Vec<String> {
        self.state.lock().unwrap().cancel_keys.clone()
    }

    /// Watch what the partner has seen (for tests: wait, never sleep).
    pub fn seen(&self) -> watch::Receiver<Seen> {
        self.seen.subscribe()
    }

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

    /// Requires "authorization: Bearer <token>" on every call (None: not).
    pub fn require_token(&self, token: Option<&str>) {
        *self.token.lock().unwrap() = token.map(String::from);
    }

    fn check_token<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let want = self.token.lock().unwrap().clone();
        match want {
            None => Ok(()),
            Some(t) => {
                let got = req
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                if got == Some(format!("Bearer {t}").as_str()) {
                    Ok(())
                } else {
                    Err(Status::unauthenticated("bad or missing bearer token"))
                }
            }
        }
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

    fn find_member<'a>(st: &'a State, number: &str, beneficiary: &str) -> Option<&'a Member> {
        st.members.iter().find(|m| {
            (!number.is_empty() && m.member_number == number) || m.beneficiary_id == beneficiary
        })
    }

    fn product_for<'a>(st: &'a State, m: &Member, d: date::Date) -> Option<&'a Product> {
        let period = m.product_on(d)?;
        st.products
            .iter()
            .filter(|p| p.id == period.product_id && p.in_force_on(d))
            .max_by_key(|p| p.valid_from)
    }
}

fn lines_from_pb(lines: &[pb::RemainderLine]) -> Result<Vec<ClaimLine>, Status> {
    lines
        .iter()
        .map(|l| {
            Ok(ClaimLine {
                act_code: l.act_code.clone(),
                category: convert::care_category(l.care_category).unwrap_or(CareCategory::Other),
                quantity: l.quantity.max(1),
                billed: l.billed,
                tariff_base: l.tariff_base,
                scheme_share: l.scheme_share,
                outcome: convert::scheme_outcome(l.scheme_outcome)
                    .ok_or_else(|| Status::invalid_argument("lines.scheme_outcome"))?,
                scheme_reason: l.scheme_reason.clone(),
            })
        })
        .collect()
}

fn parse_date(s: &str) -> Result<date::Date, Status> {
    date::parse(s).ok_or_else(|| Status::invalid_argument("date_of_care"))
}

#[tonic::async_trait]
impl MutuellePartner for SimMutuelle {
    async fn check_complementary_eligibility(
        &self,
        request: Request<pb::ComplementaryEligibilityRequest>,
    ) -> Result<Response<pb::ComplementaryEligibilityResponse>, Status> {
        self.check_token(&request)?;
        match self.mode() {
            Mode::Hang => std::future::pending::<()>().await,
            Mode::Unavailable => return Err(Status::unavailable("simulated outage")),
            _ => {}
        }
        let q = request.into_inner();
        let d = parse_date(&q.date_of_care)?;
        let lines = lines_from_pb(&q.lines)?;
        let st = self.state.lock().unwrap();
        let Some(member) = Self::find_member(&st, &q.member_number, &q.beneficiary_id) else {
            return Ok(Response::new(pb::ComplementaryEligibilityResponse {
                covered: false,
                reason: Some(convert::reason_to_pb(&passerelle_domain::Reason::new(
                    passerelle_domain::ReasonCode::UnknownMember,
                    "not a member of this mutuelle",
                ))),
                ..Default::default()
            }));
        };
        let product = Self::product_for(&st, member, d);
        let ctx = Context {
            member,
            product,
            date_of_care: d,
            diagnoses: &q.diagnoses,
            stay_id: None,
            usage: &st.usage,
        };
        let a = crate::rules::evaluate_eligibility(&ctx, &lines);
        Ok(Response::new(pb::ComplementaryEligibilityResponse {
            covered: a.covered,
            reason: a.reason.as_ref().map(convert::reason_to_pb),
            member_number: a.member_number,
            household_id: a.household_id,
            product: a.product.as_ref().map(convert::product_ref_to_pb),
            contribution: Some(passerelle_proto::common::v1::ContributionStatus {
                paid_until: a.paid_until.map(date::format).unwrap_or_default(),
                up_to_date: a.paid_until.is_some_and(|p| p >= d),
            }),
            ceilings: a.ceilings.iter().map(convert::ceiling_to_pb).collect(),
            lines: a
                .lines
                .iter()
                .map(convert::line_share_to_partner_pb)
                .collect(),
        }))
    }

    async fn adjudicate_remainder(
        &self,
        request: Request<pb::AdjudicateRemainderRequest>,
    ) -> Result<Response<pb::AdjudicateRemainderResponse>, Status> {
        self.seen.send_modify(|s| s.adjudicate_calls += 1);
        self.check_token(&request)?;
        let mode = self.mode();
        match mode {
            Mode::Hang => std::future::pending::<()>().await,
            Mode::Unavailable => return Err(Status::unavailable("simulated outage")),
            _ => {}
        }
        let q = request.into_inner();
        if q.idempotency_key.is_empty() {
            return Err(Status::invalid_argument("idempotency_key"));
        }
        let d = parse_date(&q.date_of_care)?;
        let lines = lines_from_pb(&q.lines)?;
        let mut answer = {
            let mut guard = self.state.lock().unwrap();
            let st = &mut *guard;
            if let Some(a) = st.answers.get(&q.idempotency_key) {
                a.clone()
            } else {
                let Some(member) =
                    Self::find_member(st, &q.member_number, &q.beneficiary_id).cloned()
                else {
                    return Err(Status::failed_precondition("not a member of this mutuelle"));
                };
                let product = Self::product_for(st, &member, d).cloned();
                let claim = Claim {
                    scheme_id: q.scheme_id.clone(),
                    claim_id: q.claim_id.clone(),
                    provider_id: q.provider_id.clone(),
                    invoice_number: q.invoice_number.clone(),
                    payee: Payee::Provider,
                    beneficiary_id: q.beneficiary_id.clone(),
                    beneficiary_category: String::new(),
                    mutuelle_id: None,
                    member_number: None,
                    date_of_care: d,
                    stay: None,
                    diagnoses: q.diagnoses.clone(),
                    currency: q.currency.clone(),
                    lines,
                };
                let stay_id = q
                    .stay
                    .as_ref()
                    .map(|s| s.stay_id.as_str())
                    .filter(|s| !s.is_empty());
                let ctx = Context {
                    member: &member,
                    product: product.as_ref(),
                    date_of_care: d,
                    diagnoses: &claim.diagnoses,
                    stay_id,
                    usage: &st.usage,
                };
                let a = engine::adjudicate(&ctx, &claim.lines);
                st.usage.apply(&a.consumption);
                st.consumed.insert(q.idempotency_key.clone(), a.consumption);
                st.adjudication_keys.push(q.idempotency_key.clone());
                let resp = pb::AdjudicateRemainderResponse {
                    lines: a
                        .lines
                        .iter()
                        .map(convert::line_share_to_partner_pb)
                        .collect(),
                    partner_reference: format!("{}-{}", self.id, st.adjudication_keys.len()),
                    product: product
                        .as_ref()
                        .map(|p| convert::product_ref_to_pb(&ProductRef::from(p))),
                };
                st.answers.insert(q.idempotency_key.clone(), resp.clone());
                self.seen.send_modify(|s| s.adjudications += 1);
                resp
            }
        };
        match mode {
            Mode::Overpay => {
                if let (Some(l), Some(src)) = (answer.lines.first_mut(), q.lines.first()) {
                    l.mutuelle_share = src.remainder + 1;
                }
            }
            Mode::DropLine => {
                answer.lines.pop();
            }
            Mode::Garbage => {
                answer.lines.push(pb::LineShare {
                    sequence: 999,
                    mutuelle_share: 0,
                    reasons: vec![],
                });
            }
            _ => {}
        }
        Ok(Response::new(answer))
    }

    async fn cancel_adjudication(
        &self,
        request: Request<pb::CancelAdjudicationRequest>,
    ) -> Result<Response<pb::CancelAdjudicationResponse>, Status> {
        match self.mode() {
            Mode::Hang => std::future::pending::<()>().await,
            Mode::Unavailable => return Err(Status::unavailable("simulated outage")),
            _ => {}
        }
        let q = request.into_inner();
        {
            let mut guard = self.state.lock().unwrap();
            let st = &mut *guard;
            st.cancel_keys.push(q.idempotency_key.clone());
            if st.cancelled.insert(q.adjudication_key.clone())
                && let Some(c) = st.consumed.remove(&q.adjudication_key)
            {
                st.usage.revert(&c);
            }
        }
        self.seen.send_modify(|s| s.cancel_calls += 1);
        Ok(Response::new(pb::CancelAdjudicationResponse {}))
    }
}
