//! Simulated HTTP partners for `dev` and the tests: a FHIR R4 server (either
//! dialect, openIMIS-like login included) and XML mutuelles of two shapes.
//! Each is a thin translator in front of a [`SimMutuelle`]'s core (requests
//! read into a [`Care`], domain answers written back), so that products,
//! ceilings, idempotency and failure modes are the same as for the simulated
//! gRPC partner.

use std::net::SocketAddr;
use std::sync::Arc;

use passerelle_domain::money::minor_unit_digits;
use passerelle_domain::{ClaimLine, LineShare, SchemeOutcome, date};
// Only for the contract's number of a reason code, which the FHIR answer shows.
use passerelle_proto::convert;
use serde_json::{Value, json};

use crate::decimal::{format_minor, parse_minor, parse_whole};
use crate::fhir::{Dialect, KEY_SYSTEM, OUTCOME_SYSTEM, decimal};
use crate::http::{Incoming, Outgoing, serve};
use crate::sim::{Call, Care, Mode, SimError, SimMutuelle, care_category};
use crate::xml::{Node, format_date, parse_date, parse_xml};

mod openimis;
pub use openimis::Answers as OpenimisAnswers;

/// A FHIR Claim's diagnosis codes (the first coding of each), in order.
fn claim_diagnoses(v: &Value) -> Vec<String> {
    v["diagnosis"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| {
            x.pointer("/diagnosisCodeableConcept/coding/0/code")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect()
}

/// openIMIS's reading of a Claim (for tests): its code, the insuree's CHFID
/// and the number of lines, or why openIMIS would refuse it.
pub fn openimis_read_claim(v: &Value) -> Result<(String, String, usize), String> {
    openimis::read_claim(v, "Code").map(|c| (c.code, c.chfid, c.items.len()))
}

fn outcome(e: SimError) -> Outgoing {
    let code = match e {
        SimError::Unavailable => 503,
        SimError::Unauthenticated(_) => 401,
        SimError::InvalidArgument(_) => 400,
        SimError::NotMember => 422,
        SimError::NotFound(_) => 404,
    };
    let body = json!({ "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": "processing", "diagnostics": e.to_string() }] });
    (
        code,
        "application/fhir+json",
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// A scheme outcome by its name in the simulated formats; anything else
/// reads as covered.
fn scheme_outcome(s: &str) -> SchemeOutcome {
    match s {
        "out_of_basket" => SchemeOutcome::OutOfBasket,
        "refused" => SchemeOutcome::Refused,
        _ => SchemeOutcome::Covered,
    }
}

fn money(v: &Value, digits: u32) -> i64 {
    let text = match v.get("value") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "0".into(),
    };
    parse_minor(&text, digits, false, false).unwrap_or(0)
}

/// A FHIR server in front of a simulated mutuelle.
#[derive(Clone)]
pub struct SimFhir {
    pub sim: SimMutuelle,
    pub dialect: Dialect,
    /// The currency string it writes ("$" like openIMIS test servers, or an
    /// ISO code) and the ISO code it means.
    pub currency_text: String,
    pub currency: String,
    /// openIMIS login: (username, password); None: no login needed.
    pub login: Option<(String, String)>,
    /// openIMIS: the answers given, by claim code (a second claim with the
    /// same code is refused; `GET ClaimResponse/<code>` reads it back).
    pub answers: OpenimisAnswers,
}

impl SimFhir {
    pub async fn start(self) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let me = Arc::new(self);
        let task = serve(
            listener,
            Arc::new(move |req| {
                let me = me.clone();
                Box::pin(async move { me.handle(req).await })
            }),
        );
        Ok((addr, task))
    }

    async fn handle(&self, req: Incoming) -> Outgoing {
        if req.path.ends_with("/login/") {
            let v: Value = serde_json::from_slice(&req.body).unwrap_or_default();
            return match &self.login {
                Some((u, p)) if v["username"] == *u && v["password"] == *p => (
                    200,
                    "application/json",
                    serde_json::to_vec(&json!({ "token": "sim-jwt-token" })).unwrap(),
                ),
                _ => (
                    401,
                    "application/json",
                    b"{\"error\":\"bad credentials\"}".to_vec(),
                ),
            };
        }
        if self.login.is_some() {
            let auth = req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if auth != Some("Bearer sim-jwt-token") {
                return outcome(SimError::Unauthenticated("login first".into()));
            }
        }
        if self.sim.mode() == Mode::Garbage && req.path.ends_with("/Claim") {
            return (
                200,
                "application/fhir+json",
                b"{\"resourceType\": \"ClaimResponse\", \"item\": [{\"itemSequence\": ".to_vec(),
            );
        }
        if self.dialect == Dialect::Openimis && req.method == hyper::Method::GET {
            // GET ClaimResponse/<code>: the answer to an earlier claim.
            let code = req.path.rsplit_once("/ClaimResponse/").map(|(_, c)| c);
            return match code.and_then(|c| self.answers.get(c)) {
                Some(v) => (
                    200,
                    "application/fhir+json",
                    serde_json::to_vec(&v).unwrap_or_default(),
                ),
                None => outcome(SimError::NotFound("no such claim".into())),
            };
        }
        let Ok(v) = serde_json::from_slice::<Value>(&req.body) else {
            return outcome(SimError::InvalidArgument("not JSON".into()));
        };
        let r = if req.path.ends_with("/Claim") && self.dialect == Dialect::Openimis {
            match self.openimis_claim(&v).await {
                Ok(v) => Ok(v),
                Err(refused) => return refused,
            }
        } else if req.path.ends_with("/Claim") {
            self.claim(&v).await
        } else if req.path.ends_with("/CoverageEligibilityRequest") {
            self.eligibility(&v).await
        } else if req.path.ends_with("/Task") && self.dialect == Dialect::Standard {
            self.task(&v).await
        } else {
            Err(SimError::NotFound("no such resource".into()))
        };
        match r {
            Ok(v) => (
                200,
                "application/fhir+json",
                serde_json::to_vec(&v).unwrap_or_default(),
            ),
            Err(s) => outcome(s),
        }
    }

    fn member(&self, v: &Value) -> String {
        v.pointer("/patient/identifier/value")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| {
                v.pointer("/patient/reference")
                    .and_then(Value::as_str)
                    .map(|r| r.trim_start_matches("Patient/").to_string())
            })
            .unwrap_or_default()
    }

    async fn claim(&self, v: &Value) -> Result<Value, SimError> {
        let digits = minor_unit_digits(&self.currency).unwrap_or(0);
        let key = v["identifier"]
            .as_array()
            .and_then(|ids| ids.iter().find(|i| i["system"] == KEY_SYSTEM))
            .and_then(|i| i["value"].as_str())
            .ok_or_else(|| SimError::InvalidArgument("no identifier".into()))?
            .to_string();
        let mode = self.sim.open(Call::Adjudicate, None).await?;
        SimError::key(&key)?;
        let mut care = Care::new(
            self.member(v),
            SimError::date(v["created"].as_str().unwrap_or(""))?,
        );
        care.diagnoses = claim_diagnoses(v);
        // A claim paid against a prior authorization carries its preAuthRef
        // on the mutuelle's coverage; an extension names the one it
        // replaces in `related`.
        let preauthorization = v["use"] == "preauthorization";
        care.prior_reference = if preauthorization {
            v.pointer("/related/0/reference/value")
        } else {
            v.pointer("/insurance/1/preAuthRef/0")
        }
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
        let scheme = v
            .pointer("/contained/0/item")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let items = v["item"].as_array().cloned().unwrap_or_default();
        for item in &items {
            let seq = item["sequence"].as_u64().unwrap_or(0) as u32;
            let qty = item
                .pointer("/quantity/value")
                .map(|q| parse_whole(&q.to_string()).unwrap_or(1))
                .unwrap_or(1);
            let (act, cat) = match self.dialect {
                Dialect::Standard => (
                    item.pointer("/productOrService/coding/0/code")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    item.pointer("/category/coding/0/code")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ),
                Dialect::Openimis => (
                    item.pointer("/productOrService/text")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    item.pointer("/category/text")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ),
            };
            let (billed, tariff, share, outcome) = match self.dialect {
                Dialect::Standard => {
                    let adj = scheme
                        .iter()
                        .find(|s| s["itemSequence"].as_u64() == Some(seq as u64))
                        .and_then(|s| s["adjudication"].as_array().cloned())
                        .unwrap_or_default();
                    let get = |c: &str| {
                        adj.iter().find(|a| {
                            a.pointer("/category/coding/0/code").and_then(Value::as_str) == Some(c)
                        })
                    };
                    let b = get("submitted")
                        .map(|a| money(&a["amount"], digits))
                        .unwrap_or(0);
                    let e = get("eligible")
                        .map(|a| money(&a["amount"], digits))
                        .unwrap_or(0);
                    let benefit = get("benefit");
                    let s = benefit.map(|a| money(&a["amount"], digits)).unwrap_or(0);
                    let o = benefit
                        .and_then(|a| {
                            a.pointer("/reason/coding/0")
                                .filter(|c| c["system"] == OUTCOME_SYSTEM)
                        })
                        .and_then(|c| c["code"].as_str())
                        .unwrap_or("covered");
                    (b, e, s, scheme_outcome(o))
                }
                Dialect::Openimis => {
                    // openIMIS sees only the claimed amount (the remainder).
                    let unit = money(&item["unitPrice"], digits);
                    let total = unit * qty;
                    (total, total, 0, SchemeOutcome::Covered)
                }
            };
            care.lines.push(ClaimLine {
                act_code: act,
                category: care_category(&cat),
                quantity: qty as u32,
                billed,
                tariff_base: tariff,
                scheme_share: share,
                outcome,
                scheme_reason: String::new(),
            });
        }
        if preauthorization && self.dialect == Dialect::Standard {
            return self.preauthorize(&key, &care, digits);
        }
        let answer = self.sim.adjudicate(mode, &key, &care)?;
        let items: Vec<Value> = answer
            .lines
            .iter()
            .map(|s| {
                let reasons: Vec<Value> = s
                    .reasons
                    .iter()
                    .map(|r| json!({ "coding": [{ "system": "urn:sim", "code": convert::reason_to_pb(r).code.to_string(), "display": r.message }] }))
                    .collect();
                match self.dialect {
                    Dialect::Standard => {
                        let mut adj = json!({ "category": { "coding": [{ "code": "benefit" }] },
                            "amount": { "value": decimal(s.mutuelle_share, digits), "currency": self.currency_text } });
                        if let Some(r) = reasons.first() {
                            adj["reason"] = r.clone();
                        }
                        json!({ "itemSequence": s.sequence, "adjudication": [adj] })
                    }
                    Dialect::Openimis => {
                        let mut adj = json!({ "category": { "coding": [{ "code": "16" }], "text": "valuated" },
                            "amount": { "value": decimal(s.mutuelle_share, digits), "currency": self.currency_text },
                            "value": 1 });
                        if let Some(r) = reasons.first() {
                            adj["reason"] = r.clone();
                        }
                        json!({ "itemSequence": s.sequence, "adjudication": [adj] })
                    }
                }
            })
            .collect();
        Ok(json!({
            "resourceType": "ClaimResponse",
            "id": answer.partner_reference,
            "identifier": [{ "value": answer.partner_reference }],
            "status": "active",
            "use": "claim",
            // The claim answered, by the identifier it was sent with.
            "request": { "identifier": { "system": KEY_SYSTEM, "value": key } },
            "outcome": "complete",
            "item": items,
        }))
    }

    /// A claim to the simulated openIMIS: read with openIMIS's rules (what
    /// it cannot convert is answered 400 with an OperationOutcome, as
    /// openIMIS does), a duplicate code refused (500: openIMIS's claim
    /// service raises it), the answer kept by code.
    async fn openimis_claim(&self, v: &Value) -> Result<Value, Outgoing> {
        let claim =
            openimis::read_claim(v, "Code").map_err(|m| outcome(SimError::InvalidArgument(m)))?;
        if self.answers.get(&claim.code).is_some() {
            let (_, ctype, body) = outcome(SimError::InvalidArgument(format!(
                "Claim with code '{}' already exists.",
                claim.code
            )));
            return Err((500, ctype, body));
        }
        let digits = minor_unit_digits(&self.currency).unwrap_or(0);
        let mode = self
            .sim
            .open(Call::Adjudicate, None)
            .await
            .map_err(outcome)?;
        let mut care = Care::new(
            claim.chfid.clone(),
            SimError::date(&claim.created).map_err(outcome)?,
        );
        care.diagnoses = claim.diagnoses.clone();
        for item in &claim.items {
            // openIMIS sees only the claimed amount (the remainder).
            let total = money(&json!({ "value": item.unit["value"] }), digits)
                .saturating_mul(i64::try_from(item.quantity).unwrap_or(i64::MAX));
            care.lines.push(ClaimLine {
                act_code: item.code.clone(),
                category: care_category(&item.category),
                quantity: u32::try_from(item.quantity).unwrap_or(u32::MAX),
                billed: total,
                tariff_base: total,
                scheme_share: 0,
                outcome: SchemeOutcome::Covered,
                scheme_reason: String::new(),
            });
        }
        let answer = self
            .sim
            .adjudicate(mode, &claim.code, &care)
            .map_err(outcome)?;
        let share_of = |seq: u32| answer.lines.iter().find(|s| s.sequence == seq);
        let items: Vec<Value> = openimis::answer_order(&claim.items)
            .into_iter()
            .enumerate()
            .map(|(n, i)| {
                let item = &claim.items[i];
                // The core numbers care lines from 1 in the claim's order.
                let share = share_of(i as u32 + 1);
                let m = share.map_or(0, |s| s.mutuelle_share);
                // As openIMIS writes it: the valuated price is the line's
                // total, `value` the quantity, and no amount when it is 0.
                let mut adj = json!({
                    "category": { "coding": [{ "system": "https://openimis.github.io/openimis_fhir_r4_ig/CodeSystem/claim-status", "code": "16", "display": "valuated" }] },
                    "value": item.quantity });
                if m != 0 {
                    adj["amount"] = json!({ "value": decimal(m, digits), "currency": self.currency_text });
                }
                if let Some(r) = share.and_then(|s| s.reasons.first()) {
                    adj["reason"] = json!({ "coding": [{ "system": "urn:sim", "code": convert::reason_to_pb(r).code.to_string(), "display": r.message }] });
                }
                json!({
                    "extension": openimis::item_reference(item),
                    "itemSequence": n + 1,
                    "adjudication": [adj]
                })
            })
            .collect();
        let response = json!({
            "resourceType": "ClaimResponse",
            "id": answer.partner_reference,
            "identifier": [{ "type": { "coding": [{ "code": "Code" }] }, "value": claim.code }],
            "status": "active",
            "use": "claim",
            "outcome": "complete",
            "item": items,
        });
        self.answers.put(&claim.code, response.clone());
        Ok(response)
    }

    async fn eligibility(&self, v: &Value) -> Result<Value, SimError> {
        self.sim.open(Call::Eligibility, None).await?;
        let care = Care::new(
            self.member(v),
            SimError::date(v["created"].as_str().unwrap_or(""))?,
        );
        let a = self.sim.eligibility(&care);
        let digits = minor_unit_digits(&self.currency).unwrap_or(0);
        let items: Vec<Value> = a
            .ceilings
            .iter()
            .map(|c| {
                let count_limit = c.limit_count.unwrap_or(0);
                let benefit = if count_limit > 0 {
                    json!({ "type": { "coding": [{ "code": "benefit" }] },
                            "allowedUnsignedInt": count_limit.saturating_sub(c.used_count) })
                } else {
                    let remaining = c.limit_amount.map_or(0, |l| (l - c.used_amount).max(0));
                    json!({ "type": { "coding": [{ "code": "benefit" }] },
                            "allowedMoney": { "value": decimal(remaining, digits), "currency": self.currency_text } })
                };
                json!({ "category": { "text": c.scope }, "benefit": [benefit] })
            })
            .collect();
        let insurance = match self.dialect {
            Dialect::Standard => json!([{ "inforce": a.covered, "item": items }]),
            Dialect::Openimis if a.covered => json!([{ "item": items }]),
            Dialect::Openimis => json!([]),
        };
        // The patient asked about, as a server answers it (openIMIS: its
        // insuree's UUID, the CHFID in `display`), and the question
        // answered, by its identifier.
        let patient = match self.dialect {
            Dialect::Standard => v["patient"].clone(),
            Dialect::Openimis => {
                use sha2::Digest;
                let chfid = v
                    .pointer("/patient/reference")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let chfid = chfid.trim_start_matches("Patient/");
                let uuid = hex::encode_upper(&sha2::Sha256::digest(chfid.as_bytes())[..16]);
                json!({ "reference": format!("Patient/{uuid}"), "display": chfid })
            }
        };
        let mut answer = json!({ "resourceType": "CoverageEligibilityResponse", "status": "active", "purpose": ["benefits"],
               "patient": patient, "outcome": "complete", "insurance": insurance });
        if let Some(id) = v.pointer("/identifier/0") {
            answer["request"] = json!({ "identifier": id });
        }
        Ok(answer)
    }

    /// A Claim with `use = preauthorization`: the simulated mutuelle's
    /// commitment as a ClaimResponse with preAuthRef and preAuthPeriod.
    fn preauthorize(&self, key: &str, care: &Care, digits: u32) -> Result<Value, SimError> {
        let c = self.sim.preauthorize(key, care)?;
        let items: Vec<Value> = c
            .lines
            .iter()
            .map(|s| {
                let mut adj = json!({ "category": { "coding": [{ "code": "benefit" }] },
                    "amount": { "value": decimal(s.mutuelle_share, digits), "currency": self.currency_text } });
                if let Some(r) = s.reasons.first() {
                    adj["reason"] = json!({ "coding": [{ "system": "urn:sim", "code": convert::reason_to_pb(r).code.to_string(), "display": r.message }] });
                }
                json!({ "itemSequence": s.sequence, "adjudication": [adj] })
            })
            .collect();
        Ok(json!({
            "resourceType": "ClaimResponse",
            "id": c.partner_reference,
            "identifier": [{ "value": c.partner_reference }],
            "status": "active",
            "use": "preauthorization",
            "outcome": "complete",
            "preAuthRef": c.partner_reference,
            "preAuthPeriod": {
                "start": date::format(care.date_of_care),
                "end": c.valid_until.map(date::format).unwrap_or_default(),
            },
            "item": items,
        }))
    }

    async fn task(&self, v: &Value) -> Result<Value, SimError> {
        self.sim.open(Call::Cancel, None).await?;
        let key = v.pointer("/identifier/0/value").and_then(Value::as_str);
        if v.pointer("/focus/identifier/system")
            .and_then(Value::as_str)
            == Some(crate::fhir::PREAUTH_SYSTEM)
        {
            let reference = v.pointer("/focus/identifier/value").and_then(Value::as_str);
            self.sim.cancel_preauthorization(reference.unwrap_or(""));
            return Ok(json!({ "resourceType": "Task", "status": "completed", "intent": "order" }));
        }
        let adjudication_key = v.pointer("/focus/identifier/value").and_then(Value::as_str);
        self.sim
            .cancel(key.unwrap_or(""), adjudication_key.unwrap_or(""));
        Ok(json!({ "resourceType": "Task", "status": "completed", "intent": "order" }))
    }
}

/// The two XML shapes the simulated legacy mutuelles speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XmlShape {
    /// Plain XML, French names, attributes, "12 500", dd/mm/yyyy, basic auth.
    A,
    /// SOAP 1.1, namespaces, "12500,00", yyyymmdd, a header token.
    B,
}

#[derive(Clone)]
pub struct SimXml {
    pub sim: SimMutuelle,
    pub shape: XmlShape,
    pub currency: String,
    /// Shape A: "Basic ..." value expected; shape B: the X-Api-Key token.
    pub credential: String,
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl SimXml {
    pub async fn start(self) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let me = Arc::new(self);
        let task = serve(
            listener,
            Arc::new(move |req| {
                let me = me.clone();
                Box::pin(async move { me.handle(req).await })
            }),
        );
        Ok((addr, task))
    }

    fn number(&self, v: i64) -> String {
        let digits = minor_unit_digits(&self.currency).unwrap_or(0);
        match self.shape {
            XmlShape::A => {
                let s = format_minor(v, digits);
                let mut g = String::new();
                for (i, ch) in s.chars().enumerate() {
                    if i > 0 && (s.len() - i).is_multiple_of(3) {
                        g.push(' ');
                    }
                    g.push(ch);
                }
                g
            }
            XmlShape::B => format!("{},00", format_minor(v, digits)),
        }
    }

    fn read(&self, s: &str) -> i64 {
        let digits = minor_unit_digits(&self.currency).unwrap_or(0);
        match self.shape {
            XmlShape::A => parse_minor(s, digits, false, true).unwrap_or(0),
            XmlShape::B => parse_minor(s, digits, true, true).unwrap_or(0),
        }
    }

    fn reply(&self, body: String) -> Outgoing {
        match self.shape {
            XmlShape::A => (200, "application/xml", body.into_bytes()),
            XmlShape::B => (
                200,
                "text/xml",
                format!("<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{body}</soap:Body></soap:Envelope>").into_bytes(),
            ),
        }
    }

    fn fault(&self, e: SimError) -> Outgoing {
        match self.shape {
            XmlShape::A => {
                let code = if e == SimError::Unavailable { 503 } else { 200 };
                (
                    code,
                    "application/xml",
                    format!(
                        "<Reponse><Erreur>{}</Erreur></Reponse>",
                        xml_escape(&e.to_string())
                    )
                    .into_bytes(),
                )
            }
            XmlShape::B => {
                let code = if e == SimError::Unavailable {
                    "soap:Server"
                } else {
                    "soap:Client"
                };
                (500, "text/xml", format!(
                    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><soap:Fault><faultcode>{code}</faultcode><faultstring>{}</faultstring></soap:Fault></soap:Body></soap:Envelope>",
                    xml_escape(&e.to_string())
                ).into_bytes())
            }
        }
    }

    async fn handle(&self, req: Incoming) -> Outgoing {
        let cred = match self.shape {
            XmlShape::A => req.headers.get("authorization"),
            XmlShape::B => req.headers.get("x-api-key"),
        };
        if cred.and_then(|v| v.to_str().ok()) != Some(self.credential.as_str()) {
            return (401, "text/plain", b"who are you".to_vec());
        }
        if self.sim.mode() == Mode::Garbage {
            return (
                200,
                "application/xml",
                b"<Reponse><Ligne no=\"1\"><Part>12 500".to_vec(),
            );
        }
        let root = match parse_xml(&req.body, 1 << 20, 32) {
            Ok(r) => r,
            Err(e) => return self.fault(SimError::InvalidArgument(e.to_string())),
        };
        let root = if root.name == "Envelope" {
            match root
                .all("Body")
                .next()
                .and_then(|b| b.children.first())
                .cloned()
            {
                Some(n) => n,
                None => return self.fault(SimError::InvalidArgument("empty body".into())),
            }
        } else {
            root
        };
        let r = match root.name.as_str() {
            "Demande" | "AdjudicationRequest" => self.adjudicate(&root, false).await,
            "Accord" | "PreAuthorizationRequest" => self.adjudicate(&root, true).await,
            "LeveeAccord" | "ReleaseRequest" => self.release(&root).await,
            "Droits" | "EligibilityRequest" => self.eligibility(&root).await,
            "Annulation" | "CancelRequest" => self.cancel(&root).await,
            other => Err(SimError::InvalidArgument(format!(
                "unknown request {other}"
            ))),
        };
        match r {
            Ok(body) => self.reply(body),
            Err(s) => self.fault(s),
        }
    }

    /// The date of care as the shape writes it.
    fn date(&self, s: &str) -> Result<date::Date, SimError> {
        let fmt = if self.shape == XmlShape::A {
            "%d/%m/%Y"
        } else {
            "%Y%m%d"
        };
        SimError::date(&parse_date(s, fmt).map(date::format).unwrap_or_default())
    }

    /// Releases a prior authorization (shape A `<LeveeAccord accord=..>`,
    /// shape B `<ReleaseRequest><PreAuthRef>`).
    async fn release(&self, root: &Node) -> Result<String, SimError> {
        self.sim.open(Call::Cancel, None).await?;
        let reference = match self.shape {
            XmlShape::A => root.value("@accord"),
            XmlShape::B => root.value("PreAuthRef"),
        }
        .unwrap_or_default();
        self.sim.cancel_preauthorization(&reference);
        Ok(match self.shape {
            XmlShape::A => "<Reponse><Leve>oui</Leve></Reponse>".into(),
            XmlShape::B => {
                "<m:ReleaseResponse xmlns:m=\"urn:mutuelle:v2\"><m:Done>true</m:Done></m:ReleaseResponse>"
                    .into()
            }
        })
    }

    /// A claim, or (`preauthorize`) planned care for a prior authorization:
    /// the same lines; a claim names the authorization it is paid against
    /// (shape A `accord`, shape B `PreAuthRef`), an extension the one it
    /// replaces (`remplace`, `Replaces`).
    async fn adjudicate(&self, root: &Node, preauthorize: bool) -> Result<String, SimError> {
        let v = |n: &Node, p: &str| n.value(p).unwrap_or_default();
        let (key, member, day, items): (String, String, String, Vec<&Node>) = match self.shape {
            XmlShape::A => (
                v(root, "@cle"),
                v(root, "Adherent"),
                v(root, "DateSoins"),
                root.all("Ligne").collect(),
            ),
            XmlShape::B => (
                v(root, "Key"),
                v(root, "MemberId"),
                v(root, "ServiceDate"),
                root.all("Items")
                    .next()
                    .map(|i| i.all("Item").collect())
                    .unwrap_or_default(),
            ),
        };
        let mode = self.sim.open(Call::Adjudicate, None).await?;
        SimError::key(&key)?;
        let mut care = Care::new(member, self.date(&day)?);
        care.prior_reference = match (self.shape, preauthorize) {
            (XmlShape::A, false) => v(root, "@accord"),
            (XmlShape::A, true) => v(root, "@remplace"),
            (XmlShape::B, false) => v(root, "PreAuthRef"),
            (XmlShape::B, true) => v(root, "Replaces"),
        };
        for it in items {
            let (act, cat, qty, b, e, s, o) = match self.shape {
                XmlShape::A => (
                    v(it, "@acte"),
                    v(it, "@categorie"),
                    v(it, "@quantite"),
                    v(it, "Facture"),
                    v(it, "Tarif"),
                    v(it, "PartRegime"),
                    v(it, "Issue"),
                ),
                XmlShape::B => (
                    v(it, "Code"),
                    v(it, "Kind"),
                    v(it, "Qty"),
                    v(it, "Billed"),
                    v(it, "Tariff"),
                    v(it, "SchemePaid"),
                    v(it, "SchemeOutcome"),
                ),
            };
            care.lines.push(ClaimLine {
                act_code: act,
                category: care_category(&cat),
                quantity: qty.parse().unwrap_or(1),
                billed: self.read(&b),
                tariff_base: self.read(&e),
                scheme_share: self.read(&s),
                outcome: scheme_outcome(&o),
                scheme_reason: String::new(),
            });
        }
        if preauthorize {
            return self.commitment(&key, &care);
        }
        let a = self.sim.adjudicate(mode, &key, &care)?;
        Ok(self.answer(&a.partner_reference, None, &a.lines))
    }

    /// The simulated mutuelle's commitment, in the shape's words.
    fn commitment(&self, key: &str, care: &Care) -> Result<String, SimError> {
        let c = self.sim.preauthorize(key, care)?;
        let until = c
            .valid_until
            .map(|d| shape_date(self.shape, d))
            .unwrap_or_default();
        Ok(self.answer(&c.partner_reference, Some(&until), &c.lines))
    }

    /// An adjudication's answer, or (`valid_until` given) a commitment's:
    /// the reference, then each line's share and first reason.
    fn answer(&self, reference: &str, valid_until: Option<&str>, lines: &[LineShare]) -> String {
        let (open, until, close) = match (self.shape, valid_until) {
            (XmlShape::A, None) => ("<Reponse>".to_string(), String::new(), "</Reponse>"),
            (XmlShape::A, Some(u)) => (
                "<Reponse>".to_string(),
                format!("<Validite>{u}</Validite>"),
                "</Reponse>",
            ),
            (XmlShape::B, None) => (
                "<m:AdjudicationResponse xmlns:m=\"urn:mutuelle:v2\">".to_string(),
                String::new(),
                "</m:Items></m:AdjudicationResponse>",
            ),
            (XmlShape::B, Some(u)) => (
                "<m:PreAuthorizationResponse xmlns:m=\"urn:mutuelle:v2\">".to_string(),
                format!("<m:ValidUntil>{u}</m:ValidUntil>"),
                "</m:Items></m:PreAuthorizationResponse>",
            ),
        };
        let mut out = open;
        match self.shape {
            XmlShape::A => out.push_str(&format!(
                "<Reference>{}</Reference>{until}",
                xml_escape(reference)
            )),
            XmlShape::B => out.push_str(&format!(
                "<m:Ref>{}</m:Ref>{until}<m:Items>",
                xml_escape(reference)
            )),
        }
        for l in lines {
            let reason = l
                .reasons
                .first()
                .map(|r| xml_escape(&r.message))
                .unwrap_or_default();
            let share = self.number(l.mutuelle_share);
            out.push_str(&match self.shape {
                XmlShape::A => format!(
                    "<Ligne no=\"{}\"><Part>{share}</Part><Motif>{reason}</Motif></Ligne>",
                    l.sequence
                ),
                XmlShape::B => format!(
                    "<m:Item><m:Seq>{}</m:Seq><m:Covered>{share}</m:Covered><m:Note>{reason}</m:Note></m:Item>",
                    l.sequence
                ),
            });
        }
        out.push_str(close);
        out
    }

    async fn eligibility(&self, root: &Node) -> Result<String, SimError> {
        let member = root
            .value(if self.shape == XmlShape::A {
                "Adherent"
            } else {
                "MemberId"
            })
            .unwrap_or_default();
        let day = root
            .value(if self.shape == XmlShape::A {
                "Date"
            } else {
                "ServiceDate"
            })
            .unwrap_or_default();
        self.sim.open(Call::Eligibility, None).await?;
        let a = self.sim.eligibility(&Care::new(member, self.date(&day)?));
        Ok(match self.shape {
            XmlShape::A => format!(
                "<Reponse><Couvert>{}</Couvert></Reponse>",
                if a.covered { "oui" } else { "non" }
            ),
            XmlShape::B => format!(
                "<m:EligibilityResponse xmlns:m=\"urn:mutuelle:v2\"><m:Active>{}</m:Active></m:EligibilityResponse>",
                a.covered
            ),
        })
    }

    async fn cancel(&self, root: &Node) -> Result<String, SimError> {
        let (key, adj) = match self.shape {
            XmlShape::A => (root.value("@cle"), root.value("@demande")),
            XmlShape::B => (root.value("Key"), root.value("AdjudicationKey")),
        };
        self.sim.open(Call::Cancel, None).await?;
        self.sim
            .cancel(&key.unwrap_or_default(), &adj.unwrap_or_default());
        Ok(match self.shape {
            XmlShape::A => "<Reponse><Statut>OK</Statut></Reponse>".to_string(),
            XmlShape::B => "<m:CancelResponse xmlns:m=\"urn:mutuelle:v2\"><m:Status>DONE</m:Status></m:CancelResponse>".to_string(),
        })
    }
}

/// Formats a date as the shape writes it (for configs and tests).
pub fn shape_date(shape: XmlShape, d: passerelle_domain::Date) -> String {
    format_date(
        d,
        if shape == XmlShape::A {
            "%d/%m/%Y"
        } else {
            "%Y%m%d"
        },
    )
}
