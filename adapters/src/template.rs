//! The template adapter: start here to write an adapter for one more kind of
//! partner (docs/adapters.md, "Adding an adapter", walks through it). It
//! speaks a minimal JSON-over-HTTP protocol, is registered like any adapter
//! (`adapter = "template"` with a `[partners.template]` table, in test
//! builds only: it is an example, not a partner), and passes the conformance
//! kit against its own simulated partner ([`SimTemplate`]), built through the
//! registry from such a table. Copy this file, rename, change the three
//! marked parts (the config and its `PartnerSettings`, the translation, the
//! transport), and add its arm to the matches of `registry.rs`.
//!
//! The protocol (an example, not a standard):
//! - POST {url}/adjudicate `{"key", "member", "date", "currency", "lines":
//!   [{"sequence", "act", "remainder"}]}` -> `{"lines": [{"sequence",
//!   "share", "reason"}]}`;
//! - POST {url}/eligibility `{"key", "member", "date"}` -> `{"covered"}`;
//! - POST {url}/cancel `{"key", "adjudication_key"}` -> `{}`.
//!
//! Amounts are integers in minor units (no decimals to parse).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hyper::Method;
use passerelle_domain::{LineShare, Reason, ReasonCode, date};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::codes::CodeMaps;
use crate::http::HttpClient;
use crate::registry::{PartnerContext, PartnerSettings};
use crate::{
    Adapter, AdapterError, AdjudicationRequest, CancelRequest, EligibilityAnswer, EligibilityQuery,
    PartnerAdjudication,
};

// 1. The config: one struct, every field documented, unknown keys refused;
// its PartnerSettings tell the registry its deadline, its files (none here;
// a `tls: Option<PartnerTls>` would list `PartnerTls::files`) and how to
// build the adapter.

/// Settings of a template partner: the `[partners.template]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// The partner's base URL.
    pub url: String,
    /// Deadline of one call, ms. Default 5000.
    #[serde(default = "crate::http::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Code mapping tables.
    #[serde(default)]
    pub codes: CodeMaps,
}

impl PartnerSettings for TemplateConfig {
    fn timeout_ms(&self) -> Option<u64> {
        Some(self.timeout_ms)
    }

    fn build(&self, _: &PartnerContext) -> Result<Arc<dyn Adapter>, String> {
        Ok(Arc::new(TemplateAdapter::new(self)?))
    }
}

pub struct TemplateAdapter {
    cfg: TemplateConfig,
    http: HttpClient,
}

impl TemplateAdapter {
    pub fn new(cfg: &TemplateConfig) -> Result<TemplateAdapter, String> {
        let http = HttpClient::new(&cfg.url, None, Duration::from_millis(cfg.timeout_ms))?;
        Ok(TemplateAdapter {
            cfg: cfg.clone(),
            http,
        })
    }

    // 3. The transport: one POST, a deadline, HTTP errors sorted into
    // transient (retried with the same key) and final.
    async fn post(&self, path: &str, body: Value) -> Result<Value, AdapterError> {
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let call = async {
            let a = self
                .http
                .send(
                    Method::POST,
                    path,
                    &[("content-type", "application/json".into())],
                    body.to_string().into_bytes(),
                )
                .await?;
            if a.status.is_server_error() {
                return Err(AdapterError::Unavailable(format!("HTTP {}", a.status)));
            }
            if !a.status.is_success() {
                return Err(AdapterError::Rejected(Reason::new(
                    ReasonCode::PartnerRejected,
                    format!("HTTP {}", a.status),
                )));
            }
            serde_json::from_slice(&a.body)
                .map_err(|e| AdapterError::Malformed(format!("{path}: {e}")))
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(AdapterError::Timeout(timeout.as_millis() as u64)))
    }
}

#[async_trait]
impl Adapter for TemplateAdapter {
    async fn eligibility(&self, q: &EligibilityQuery) -> Result<EligibilityAnswer, AdapterError> {
        let member = match self
            .cfg
            .codes
            .member(q.member_number.as_deref().unwrap_or(""), &q.beneficiary_id)
        {
            Ok(m) => m,
            Err(r) => return Ok(EligibilityAnswer::not_covered(r)),
        };
        let v = self
            .post("/eligibility", json!({ "key": q.idempotency_key, "member": member, "date": date::format(q.date_of_care) }))
            .await?;
        let covered = v["covered"]
            .as_bool()
            .ok_or_else(|| AdapterError::Malformed("eligibility: no covered".into()))?;
        Ok(EligibilityAnswer {
            covered,
            member_number: member,
            ..Default::default()
        })
    }

    // 2. The translation: the broker's claim (mapped codes) to the partner's
    // request, and its answer back to one share per line.
    async fn adjudicate(
        &self,
        req: AdjudicationRequest<'_>,
    ) -> Result<PartnerAdjudication, AdapterError> {
        let c = req.claim;
        let mapped = self
            .cfg
            .codes
            .claim(c, req.member_number)
            .map_err(AdapterError::Rejected)?;
        if mapped.lines.is_empty() {
            return Ok(PartnerAdjudication {
                lines: mapped.unmapped,
                ..Default::default()
            });
        }
        let body = json!({
            "key": req.idempotency_key,
            "member": mapped.member,
            "date": date::format(c.date_of_care),
            "currency": c.currency,
            "lines": mapped.lines.iter().map(|m| json!({
                "sequence": m.sequence, "act": m.act, "category": m.category, "remainder": m.line.remainder(),
            })).collect::<Vec<_>>(),
        });
        let v = self.post("/adjudicate", body).await?;
        let lines = v["lines"]
            .as_array()
            .ok_or_else(|| AdapterError::Malformed("adjudicate: no lines".into()))?;
        let mut shares = Vec::with_capacity(lines.len());
        for (i, l) in lines.iter().enumerate() {
            let sequence = l["sequence"]
                .as_u64()
                .and_then(|s| u32::try_from(s).ok())
                .ok_or_else(|| AdapterError::Malformed(format!("lines[{i}].sequence")))?;
            let share = l["share"]
                .as_i64()
                .ok_or_else(|| AdapterError::Malformed(format!("lines[{i}].share")))?;
            let reasons = l["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map(|r| vec![Reason::new(ReasonCode::PartnerRule, r)])
                .unwrap_or_default();
            shares.push(LineShare {
                sequence,
                mutuelle_share: share,
                reasons,
            });
        }
        // The broker checks the answer (every line once, 0 <= M <= R): the
        // adapter only translates it.
        Ok(PartnerAdjudication {
            lines: crate::codes::merge(shares, mapped.unmapped),
            ..Default::default()
        })
    }

    async fn cancel(&self, req: CancelRequest<'_>) -> Result<(), AdapterError> {
        self.post(
            "/cancel",
            json!({ "key": req.idempotency_key, "adjudication_key": req.adjudication_key }),
        )
        .await?;
        Ok(())
    }
}

/// The template's simulated partner, in front of a [`crate::sim::SimMutuelle`].
#[derive(Clone)]
pub struct SimTemplate {
    pub sim: crate::sim::SimMutuelle,
}

impl SimTemplate {
    pub async fn start(
        self,
    ) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
        use passerelle_proto::partner::v1 as pb;
        use pb::mutuelle_partner_server::MutuellePartner;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let me = Arc::new(self);
        let task = crate::http::serve(
            listener,
            Arc::new(move |req| {
                let me = me.clone();
                Box::pin(async move {
                    if me.sim.mode() == crate::sim::Mode::Garbage {
                        return (200, "application/json", b"{\"lines\": [".to_vec());
                    }
                    let v: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                    let str_of = |k: &str| v[k].as_str().unwrap_or("").to_string();
                    let r: Result<Value, tonic::Status> = match req.path.as_str() {
                        "/adjudicate" => {
                            let lines = v["lines"]
                                .as_array()
                                .cloned()
                                .unwrap_or_default()
                                .iter()
                                .map(|l| {
                                    let r = l["remainder"].as_i64().unwrap_or(0);
                                    let line = passerelle_domain::ClaimLine {
                                        act_code: l["act"].as_str().unwrap_or("").into(),
                                        category: passerelle_domain::CareCategory::Other,
                                        quantity: 1,
                                        billed: r,
                                        tariff_base: r,
                                        scheme_share: 0,
                                        outcome: passerelle_domain::SchemeOutcome::Covered,
                                        scheme_reason: String::new(),
                                    };
                                    let mut rl = crate::grpc::remainder_line(
                                        l["sequence"].as_u64().unwrap_or(0) as u32,
                                        &line,
                                    );
                                    let cat = l["category"].as_str().unwrap_or("");
                                    rl.care_category = passerelle_domain::CareCategory::ALL
                                        .iter()
                                        .find(|c| c.as_str() == cat)
                                        .map(|c| passerelle_proto::convert::care_category_to_pb(*c))
                                        .unwrap_or(0);
                                    rl
                                })
                                .collect();
                            me.sim
                                .adjudicate_remainder(tonic::Request::new(pb::AdjudicateRemainderRequest {
                                    idempotency_key: str_of("key"),
                                    member_number: str_of("member"),
                                    date_of_care: str_of("date"),
                                    currency: str_of("currency"),
                                    lines,
                                    ..Default::default()
                                }))
                                .await
                                .map(|a| json!({ "lines": a.into_inner().lines.iter().map(|l| json!({
                                    "sequence": l.sequence, "share": l.mutuelle_share,
                                    "reason": l.reasons.first().map(|r| r.message.clone()).unwrap_or_default(),
                                })).collect::<Vec<_>>() }))
                        }
                        "/eligibility" => me
                            .sim
                            .check_complementary_eligibility(tonic::Request::new(
                                pb::ComplementaryEligibilityRequest {
                                    member_number: str_of("member"),
                                    date_of_care: str_of("date"),
                                    ..Default::default()
                                },
                            ))
                            .await
                            .map(|a| json!({ "covered": a.into_inner().covered })),
                        "/cancel" => me
                            .sim
                            .cancel_adjudication(tonic::Request::new(
                                pb::CancelAdjudicationRequest {
                                    idempotency_key: str_of("key"),
                                    adjudication_key: str_of("adjudication_key"),
                                    ..Default::default()
                                },
                            ))
                            .await
                            .map(|_| json!({})),
                        _ => Err(tonic::Status::not_found("no such path")),
                    };
                    match r {
                        Ok(v) => (200, "application/json", v.to_string().into_bytes()),
                        Err(s) if s.code() == tonic::Code::Unavailable => {
                            (503, "text/plain", s.message().as_bytes().to_vec())
                        }
                        Err(s) => (422, "text/plain", s.message().as_bytes().to_vec()),
                    }
                })
            }),
        );
        Ok((addr, task))
    }
}
