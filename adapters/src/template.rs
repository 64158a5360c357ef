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
use passerelle_domain::{ClaimLine, LineShare, Reason, ReasonCode, SchemeOutcome, date};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::codes::CodeMaps;
use crate::http::HttpClient;
use crate::registry::{PartnerContext, PartnerSettings};
use crate::sim::{Call, Care, Mode, SimError, SimMutuelle, care_category};
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
        let http = HttpClient::new(
            &cfg.url,
            None,
            Duration::from_millis(cfg.timeout_ms),
            &crate::http::PoolSettings::default(),
        )?;
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
            member_number: crate::codes::CodeMaps::shown_member(q.member_number.as_deref(), member),
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

/// The template's simulated partner: a thin translator in front of a
/// [`SimMutuelle`]'s core (JSON to a [`Care`], the domain answer to JSON).
#[derive(Clone)]
pub struct SimTemplate {
    pub sim: SimMutuelle,
}

impl SimTemplate {
    pub async fn start(
        self,
    ) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let me = Arc::new(self);
        let task = crate::http::serve(
            listener,
            Arc::new(move |req| {
                let me = me.clone();
                Box::pin(async move {
                    if me.sim.mode() == Mode::Garbage {
                        return (200, "application/json", b"{\"lines\": [".to_vec());
                    }
                    let v: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                    match me.answer(&req.path, &v).await {
                        Ok(v) => (200, "application/json", v.to_string().into_bytes()),
                        Err(e @ SimError::Unavailable) => {
                            (503, "text/plain", e.to_string().into_bytes())
                        }
                        Err(e) => (422, "text/plain", e.to_string().into_bytes()),
                    }
                })
            }),
        );
        Ok((addr, task))
    }

    async fn answer(&self, path: &str, v: &Value) -> Result<Value, SimError> {
        let str_of = |k: &str| v[k].as_str().unwrap_or("");
        match path {
            "/adjudicate" => {
                let mode = self.sim.open(Call::Adjudicate, None).await?;
                let key = SimError::key(str_of("key"))?;
                let mut care = Care::new(str_of("member"), SimError::date(str_of("date"))?);
                care.lines = v["lines"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|l| {
                        let r = l["remainder"].as_i64().unwrap_or(0);
                        ClaimLine {
                            act_code: l["act"].as_str().unwrap_or("").into(),
                            category: care_category(l["category"].as_str().unwrap_or("")),
                            quantity: 1,
                            billed: r,
                            tariff_base: r,
                            scheme_share: 0,
                            outcome: SchemeOutcome::Covered,
                            scheme_reason: String::new(),
                        }
                    })
                    .collect();
                let a = self.sim.adjudicate(mode, key, &care)?;
                Ok(json!({ "lines": a.lines.iter().map(|l| json!({
                    "sequence": l.sequence, "share": l.mutuelle_share,
                    "reason": l.reasons.first().map(|r| r.message.clone()).unwrap_or_default(),
                })).collect::<Vec<_>>() }))
            }
            "/eligibility" => {
                self.sim.open(Call::Eligibility, None).await?;
                let care = Care::new(str_of("member"), SimError::date(str_of("date"))?);
                Ok(json!({ "covered": self.sim.eligibility(&care).covered }))
            }
            "/cancel" => {
                self.sim.open(Call::Cancel, None).await?;
                self.sim.cancel(str_of("key"), str_of("adjudication_key"));
                Ok(json!({}))
            }
            _ => Err(SimError::NotFound("no such path".into())),
        }
    }
}
