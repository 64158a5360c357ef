//! The fhir-r4 adapter: a mutuelle whose system speaks FHIR R4 (JSON over
//! HTTP(S)), in the standard form or in openIMIS's dialect.
//!
//! Standard mapping (HL7 FHIR R4 financial module):
//! - eligibility: POST `CoverageEligibilityRequest`, answer
//!   `CoverageEligibilityResponse` (`insurance[].inforce`, benefits);
//! - the remainder: POST a *secondary* `Claim`: the scheme is the non-focal
//!   `insurance[0]` carrying its adjudication as a contained `ClaimResponse`
//!   (per item: `submitted` = B, `eligible` = E, `eligpercent`, `benefit` = S);
//!   the mutuelle is the focal `insurance[1]`. Its `ClaimResponse` gives the
//!   mutuelle's `benefit` per item = M. The claim's identifier is the
//!   passerelle idempotency key (system `urn:passerelle:adjudication`), and the
//!   POST is a conditional create (`If-None-Exist: identifier=...`);
//! - cancel: POST a `Task` with code `cancel` (R4's financialtaskcode) whose focus
//!   is the claim, by identifier.
//!
//! openIMIS dialect ([`openimis`]): references by typed code (the insuree's
//! CHFID, the facility, the claim administrator, each item's definition),
//! openIMIS's visit type and item kinds, the remainder R as the claimed
//! amount (openIMIS has no secondary payer); its answers are matched back to
//! the claim's lines by kind and code, a line is final when valuated (or
//! rejected), its benefit capped at R; cancel is unsupported. Login: POST
//! `login/` for a JWT bearer token. Currency strings such as "$" are mapped
//! by `currency_symbols`.
//!
//! Decimals are read exactly (serde_json with arbitrary precision) and
//! converted to the currency's minor unit; a value finer than the currency
//! allows is an error.

mod answer;
pub mod openimis;
pub mod translate;

use answer::money;
pub use answer::*;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hyper::Method;
use passerelle_domain::{ClaimLine, ProductRef, Reason, ReasonCode, date};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::codes::{CodeMaps, MappedLine};
use crate::grpc::PartnerTls;
use crate::http::HttpClient;
use crate::registry::{PartnerContext, PartnerSettings};
use crate::{
    Adapter, AdapterError, AdjudicationRequest, CancelPreAuthorization, CancelRequest, Commitment,
    EligibilityAnswer, EligibilityQuery, PartnerAdjudication, PreAuthorizationRequest,
};

/// Which flavour of FHIR the partner speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// HL7 FHIR R4 as published: secondary claims with a contained
    /// adjudication of the earlier payer.
    #[default]
    Standard,
    /// openIMIS's FHIR R4 module (openimis-be-api_fhir_r4_py).
    Openimis,
}

/// Settings of a FHIR partner.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirConfig {
    /// Base URL of the FHIR API, e.g. "https://imis.example/api/api_fhir_r4".
    pub base_url: String,
    /// "standard" (default) or "openimis".
    #[serde(default)]
    pub dialect: Dialect,
    /// Deadline of one call, ms. Default 5000.
    #[serde(default = "crate::http::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Opening a connection, ms. Default 2000.
    #[serde(default = "crate::http::default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// The pool of kept-alive connections to this partner.
    #[serde(default)]
    pub pool: crate::http::PoolSettings,
    /// TLS (with https://), as for grpc partners.
    #[serde(default)]
    pub tls: Option<PartnerTls>,
    /// A file with a bearer token (standard servers).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// openIMIS login: user name; the password is read from `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Currency strings the partner uses that are not ISO 4217 codes, e.g.
    /// `{ "$" = "XOF" }` for openIMIS test servers.
    #[serde(default)]
    pub currency_symbols: HashMap<String, String>,
    /// Code mapping tables.
    #[serde(default)]
    pub codes: CodeMaps,
    /// openIMIS's own settings (`[partners.fhir.openimis]`), required with
    /// `dialect = "openimis"` and refused otherwise.
    #[serde(default)]
    pub openimis: Option<openimis::OpenimisSettings>,
}

impl PartnerSettings for FhirConfig {
    fn url(&self) -> Option<&str> {
        Some(&self.base_url)
    }

    fn timeout_ms(&self) -> Option<u64> {
        Some(self.timeout_ms)
    }

    fn files(&mut self) -> Vec<&mut PathBuf> {
        let mut files: Vec<&mut PathBuf> =
            self.tls.iter_mut().flat_map(PartnerTls::files).collect();
        files.extend(self.token_file.as_mut());
        files.extend(self.password_file.as_mut());
        files
    }

    fn build(&self, partner: &PartnerContext) -> Result<Arc<dyn Adapter>, String> {
        Ok(Arc::new(FhirAdapter::new(&partner.mutuelle_id, self)?))
    }
}

/// The system of passerelle's identifiers in FHIR resources.
pub const KEY_SYSTEM: &str = "urn:passerelle:adjudication";
/// The code system of the scheme's line outcome in the contained adjudication.
pub const OUTCOME_SYSTEM: &str = "urn:passerelle:scheme-outcome";

// ---------------------------------------------------------------- requests

fn line_items(lines: &[MappedLine], currency_code: &str) -> Vec<Value> {
    lines
        .iter()
        .map(|m| {
            let l = &m.line;
            json!({
                "sequence": m.sequence,
                "category": { "coding": [{ "system": "urn:passerelle:care-category", "code": m.category }] },
                "productOrService": { "coding": [{ "system": "urn:passerelle:act", "code": m.act }] },
                "quantity": { "value": l.quantity },
                "net": money(l.billed, currency_code),
            })
        })
        .collect()
}

/// FHIR's adjudication category codes.
const ADJUDICATION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/adjudication";

/// The claim type a claim is sent with (and its contained ClaimResponse).
fn claim_type(c: &passerelle_domain::Claim) -> Value {
    json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                         "code": if c.stay.is_some() { "institutional" } else { "professional" } }] })
}

/// The scheme's adjudication as a contained ClaimResponse (standard
/// dialect), with what FHIR R4 requires of a ClaimResponse (status, type,
/// use, patient, created, insurer, outcome).
fn scheme_adjudication(
    c: &passerelle_domain::Claim,
    lines: &[MappedLine],
    patient: &Value,
) -> Value {
    let cur = c.currency.as_str();
    let items: Vec<Value> = lines
        .iter()
        .map(|m| {
            let l = &m.line;
            let base = l.billed.min(l.tariff_base);
            let pct_bp = if base > 0 {
                (l.scheme_share as i128 * 10_000 / base as i128) as i64
            } else {
                0
            };
            let outcome = l.outcome.as_str();
            let category =
                |code: &str| json!({ "coding": [{ "system": ADJUDICATION_SYSTEM, "code": code }] });
            // FHIR strings may not be empty: no display without a reason.
            let mut reason = json!({ "system": OUTCOME_SYSTEM, "code": outcome });
            if !l.scheme_reason.is_empty() {
                reason["display"] = json!(l.scheme_reason);
            }
            json!({
                "itemSequence": m.sequence,
                "adjudication": [
                    { "category": category("submitted"), "amount": money(l.billed, cur) },
                    { "category": category("eligible"), "amount": money(l.tariff_base, cur) },
                    { "category": category("eligpercent"), "value": decimal(pct_bp, 2) },
                    { "category": category("benefit"),
                      "reason": { "coding": [reason] },
                      "amount": money(l.scheme_share, cur) }
                ]
            })
        })
        .collect();
    json!({
        "resourceType": "ClaimResponse",
        "id": "scheme-adjudication",
        "status": "active",
        "type": claim_type(c),
        "use": "claim",
        "patient": patient,
        "created": date::format(c.date_of_care),
        "outcome": "complete",
        "insurer": { "identifier": { "system": "urn:passerelle:scheme", "value": c.scheme_id } },
        "item": items,
    })
}

/// The FHIR Claim for a remainder adjudication (standard dialect; openIMIS's
/// is [`openimis::claim`]).
pub fn claim_resource(
    key: &str,
    c: &passerelle_domain::Claim,
    mapped: &crate::codes::MappedClaim,
    mutuelle_id: &str,
) -> Value {
    let total: i64 = mapped.lines.iter().map(|m| m.line.billed).sum();
    let patient =
        json!({ "identifier": { "system": "urn:passerelle:member", "value": mapped.member } });
    let mut claim = json!({
        "resourceType": "Claim",
        "identifier": [{ "system": KEY_SYSTEM, "value": key }, { "system": "urn:passerelle:claim", "value": format!("{}/{}", c.scheme_id, c.claim_id) }],
        "status": "active",
        "type": claim_type(c),
        "use": "claim",
        "patient": patient,
        "billablePeriod": { "start": date::format(c.date_of_care), "end": date::format(c.date_of_care) },
        "created": date::format(c.date_of_care),
        "provider": { "identifier": { "system": "urn:passerelle:facility", "value": mapped.facility }, "display": mapped.facility },
        "priority": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal" }] },
        "insurance": [
            { "sequence": 1, "focal": false,
              "coverage": { "display": format!("{} (main scheme)", c.scheme_id) },
              "claimResponse": { "reference": "#scheme-adjudication" } },
            { "sequence": 2, "focal": true,
              "coverage": { "identifier": { "system": "urn:passerelle:mutuelle", "value": mutuelle_id }, "display": mutuelle_id } }
        ],
        "diagnosis": mapped.diagnoses.iter().enumerate().map(|(i, d)| json!({
            "sequence": i + 1,
            "diagnosisCodeableConcept": { "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": d }] }
        })).collect::<Vec<_>>(),
        "item": line_items(&mapped.lines, &c.currency),
        "total": money(total, &c.currency),
    });
    let patient = claim["patient"].clone();
    claim["contained"] = json!([scheme_adjudication(c, &mapped.lines, &patient)]);
    claim
}

/// The FHIR Claim of a prior authorization (`use = preauthorization`):
/// the claim's shape for planned care; an extension names the
/// preAuthRef it replaces in `related` (relationship `prior`).
pub fn preauthorization_resource(
    key: &str,
    planned: &passerelle_domain::Claim,
    mapped: &crate::codes::MappedClaim,
    mutuelle_id: &str,
    extends: Option<&str>,
) -> Value {
    let mut claim = claim_resource(key, planned, mapped, mutuelle_id);
    claim["use"] = json!("preauthorization");
    claim["identifier"][1] = json!({ "system": "urn:passerelle:authorization", "value": format!("{}/{}", planned.scheme_id, planned.claim_id) });
    if let Some(r) = extends {
        claim["related"] = json!([{
            "relationship": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "code": "prior" }] },
            "reference": { "system": PREAUTH_SYSTEM, "value": r }
        }]);
    }
    claim
}

/// The identifier system of a mutuelle's preAuthRef in what passerelle
/// sends (an extension's `related`, a release's Task).
pub const PREAUTH_SYSTEM: &str = "urn:passerelle:preauth-ref";

/// The Task that releases a prior authorization not billed.
pub fn release_resource(r: &CancelPreAuthorization<'_>) -> Value {
    json!({
        "resourceType": "Task",
        "identifier": [{ "system": KEY_SYSTEM, "value": r.idempotency_key }],
        "status": "requested",
        "intent": "order",
        "code": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/financialtaskcode", "code": "cancel" }] },
        "focus": { "type": "Claim", "identifier": { "system": PREAUTH_SYSTEM, "value": r.partner_reference } },
        "reasonCode": { "text": r.reason },
    })
}

/// What a ClaimResponse to a preauthorization says besides its items: the
/// preAuthRef (else the response's own reference) and the last day of
/// preAuthPeriod.
pub fn preauthorization_terms(
    v: &Value,
) -> Result<(Option<String>, Option<passerelle_domain::Date>), AdapterError> {
    let reference = v
        .get("preAuthRef")
        .and_then(Value::as_str)
        .map(String::from);
    let end = match v.pointer("/preAuthPeriod/end").and_then(Value::as_str) {
        None => None,
        Some(s) => Some(s.get(..10).and_then(date::parse).ok_or_else(|| {
            AdapterError::Malformed(format!(
                "ClaimResponse.preAuthPeriod.end: not a date: {s:?}"
            ))
        })?),
    };
    Ok((reference, end))
}

/// The CoverageEligibilityRequest for a question (standard dialect;
/// openIMIS's is [`openimis::eligibility`]).
pub fn eligibility_resource(
    q: &EligibilityQuery,
    member: &str,
    lines: &[MappedLine],
    mutuelle_id: &str,
) -> Value {
    json!({
        "resourceType": "CoverageEligibilityRequest",
        "identifier": [{ "system": KEY_SYSTEM, "value": q.idempotency_key }],
        "status": "active",
        "purpose": ["benefits"],
        "patient": { "identifier": { "system": "urn:passerelle:member", "value": member } },
        "servicedDate": date::format(q.date_of_care),
        "created": date::format(q.date_of_care),
        "insurer": { "identifier": { "system": "urn:passerelle:mutuelle", "value": mutuelle_id } },
        "item": lines.iter().map(|m| {
            let (qty, unit) = remainder_units(&m.line);
            json!({
                "category": { "coding": [{ "system": "urn:passerelle:care-category", "code": m.category }] },
                "productOrService": { "coding": [{ "system": "urn:passerelle:act", "code": m.act }] },
                "quantity": { "value": qty },
                "unitPrice": money(unit, &q.currency),
            })
        }).collect::<Vec<_>>(),
    })
}

/// The Task that cancels an adjudication.
pub fn cancel_resource(r: &CancelRequest<'_>) -> Value {
    json!({
        "resourceType": "Task",
        "identifier": [{ "system": KEY_SYSTEM, "value": r.idempotency_key }],
        "status": "requested",
        "intent": "order",
        "code": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/financialtaskcode", "code": "cancel" }] },
        "focus": { "type": "Claim", "identifier": { "system": KEY_SYSTEM, "value": r.adjudication_key } },
        "reasonCode": { "text": r.reason },
    })
}

// ---------------------------------------------------------------- adapter

pub struct FhirAdapter {
    mutuelle_id: String,
    cfg: FhirConfig,
    http: HttpClient,
    token: Option<String>,
    password: Option<String>,
    jwt: Arc<Mutex<Option<String>>>,
    timeout: Duration,
}

/// An HTTP error from the mutuelle's server. Transient (5xx, 429, 401,
/// 403): for operators, with its HTTP status. Otherwise a refusal: its
/// OperationOutcome's diagnostics alone when it has them, the mutuelle's
/// own words, which reach the scheme and the mutuelle's clerks (the
/// console shows them after its sentence, where "HTTP 422 Unprocessable
/// Entity:" meant nothing to a clerk); without them, the status and the
/// start of the body.
fn status_error(status: hyper::StatusCode, body: &[u8]) -> AdapterError {
    let diagnostics = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| outcome_words(&v));
    let with_status = || match &diagnostics {
        Some(d) => format!("HTTP {status}: {d}"),
        None => {
            let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
            format!("HTTP {status}: {text}")
        }
    };
    if status.is_server_error()
        || status == hyper::StatusCode::TOO_MANY_REQUESTS
        || status == hyper::StatusCode::UNAUTHORIZED
        || status == hyper::StatusCode::FORBIDDEN
    {
        AdapterError::Unavailable(with_status())
    } else {
        let words = diagnostics.clone().unwrap_or_else(with_status);
        AdapterError::Rejected(Reason::new(ReasonCode::PartnerRejected, words))
    }
}

/// What an OperationOutcome says, in the server's words: each issue's
/// `diagnostics`, else its `details.text`, else its first coding's
/// `display` (openIMIS writes only `details.text`), the distinct ones
/// joined by "; "; `None` when no issue says anything.
fn outcome_words(v: &Value) -> Option<String> {
    let mut said: Vec<&str> = Vec::new();
    for issue in v
        .get("issue")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let words = ["/diagnostics", "/details/text", "/details/coding/0/display"]
            .iter()
            .filter_map(|p| issue.pointer(p).and_then(Value::as_str).map(str::trim))
            .find(|w| !w.is_empty());
        if let Some(w) = words
            && !said.contains(&w)
        {
            said.push(w);
        }
    }
    (!said.is_empty()).then(|| said.join("; "))
}

impl FhirAdapter {
    /// A ClaimResponse to a claim or to planned care, read into the
    /// shares of its lines (the lines without a partner code merged back
    /// in, as the broker adjudicated them) and the partner's reference.
    fn lines_of(
        &self,
        v: &Value,
        mapped: crate::codes::MappedClaim,
        currency: &str,
    ) -> Result<(Vec<passerelle_domain::LineShare>, String), AdapterError> {
        let parsed = parse_claim_response(
            v,
            self.cfg.dialect,
            &self.cfg.currency_symbols,
            Some(currency),
        )
        .map_err(malformed)?;
        let (shares, reference) =
            shares_from_response(parsed, self.cfg.dialect, &mapped.lines, currency)?;
        Ok((crate::codes::merge(shares, mapped.unmapped), reference))
    }

    /// Relative paths must be resolved first (the registry does it).
    pub fn new(mutuelle_id: &str, cfg: &FhirConfig) -> Result<FhirAdapter, String> {
        let http = HttpClient::new(
            &cfg.base_url,
            cfg.tls.as_ref(),
            Duration::from_millis(cfg.connect_timeout_ms),
            &cfg.pool,
        )?;
        let read = |p: &Option<std::path::PathBuf>| -> Result<Option<String>, String> {
            p.as_ref().map(|p| crate::grpc::read_secret(p)).transpose()
        };
        if cfg.dialect == Dialect::Openimis && cfg.username.is_some() != cfg.password_file.is_some()
        {
            return Err("username and password_file go together".into());
        }
        match (cfg.dialect, &cfg.openimis) {
            (Dialect::Openimis, Some(o)) => o.check()?,
            (Dialect::Openimis, None) => {
                return Err(
                    "dialect \"openimis\" needs an [openimis] table with claim_admin (the claim administrator's code)"
                        .into(),
                );
            }
            (Dialect::Standard, Some(_)) => {
                return Err("an [openimis] table goes with dialect = \"openimis\"".into());
            }
            (Dialect::Standard, None) => {}
        }
        Ok(FhirAdapter {
            mutuelle_id: mutuelle_id.to_string(),
            http,
            token: read(&cfg.token_file)?,
            password: read(&cfg.password_file)?,
            jwt: Arc::new(Mutex::new(None)),
            timeout: Duration::from_millis(cfg.timeout_ms),
            cfg: cfg.clone(),
        })
    }

    async fn bearer(&self) -> Result<Option<String>, AdapterError> {
        if let Some(t) = &self.token {
            return Ok(Some(t.clone()));
        }
        let (Some(user), Some(pass)) = (&self.cfg.username, &self.password) else {
            return Ok(None);
        };
        let mut jwt = self.jwt.lock().await;
        if let Some(t) = jwt.as_ref() {
            return Ok(Some(t.clone()));
        }
        let body =
            serde_json::to_vec(&json!({ "username": user, "password": pass })).expect("json");
        let a = self
            .http
            .send(
                Method::POST,
                "/login/",
                &[("content-type", "application/json".into())],
                body,
            )
            .await?;
        if !a.status.is_success() {
            return Err(AdapterError::Unavailable(format!(
                "login: HTTP {}",
                a.status
            )));
        }
        let v: Value = serde_json::from_slice(&a.body)
            .map_err(|e| AdapterError::Malformed(format!("login answer: {e}")))?;
        let t = v
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| AdapterError::Malformed("login answer: no token".into()))?;
        *jwt = Some(t.to_string());
        Ok(Some(t.to_string()))
    }

    /// Sends one request (a resource to POST, or none for a GET) and
    /// returns the answer as it came, status and JSON body, within the
    /// partner's deadline.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        resource: Option<&Value>,
        if_none_exist: Option<&str>,
    ) -> Result<(hyper::StatusCode, Value), AdapterError> {
        let call = async {
            let mut headers = vec![("accept", "application/fhir+json".to_string())];
            if resource.is_some() {
                headers.push(("content-type", "application/fhir+json".to_string()));
            }
            if let Some(key) = if_none_exist {
                headers.push(("if-none-exist", format!("identifier={KEY_SYSTEM}|{key}")));
            }
            if let Some(t) = self.bearer().await? {
                headers.push(("authorization", format!("Bearer {t}")));
            }
            let body = resource
                .map(|r| serde_json::to_vec(&without_empty_arrays(r.clone())).expect("json"))
                .unwrap_or_default();
            let a = self.http.send(method, path, &headers, body).await?;
            if a.status == hyper::StatusCode::UNAUTHORIZED {
                // An expired JWT: log in again at the next attempt.
                *self.jwt.lock().await = None;
            }
            if !a.status.is_success() {
                // The HTTP status for operators: a refusal's message is
                // the mutuelle's words alone (a wrong base URL answering
                // 404 with an OperationOutcome shows here).
                tracing::info!(mutuelle = %self.mutuelle_id, path = %path, http = %a.status,
                    "FHIR server answered an error status");
                return Err(status_error(a.status, &a.body));
            }
            if a.body.is_empty() {
                return Ok((a.status, Value::Null));
            }
            serde_json::from_slice(&a.body)
                .map(|v| (a.status, v))
                .map_err(|e| AdapterError::Malformed(format!("{path}: not JSON: {e}")))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(AdapterError::Timeout(self.timeout.as_millis() as u64)))
    }

    async fn post(
        &self,
        path: &str,
        resource: &Value,
        if_none_exist: Option<&str>,
    ) -> Result<Value, AdapterError> {
        self.exchange(Method::POST, path, Some(resource), if_none_exist)
            .await
            .map(|(_, v)| v)
    }

    /// openIMIS: POSTs the claim; when that fails with an answer (a resend
    /// is refused: its code exists), reads the claim's answer back by its
    /// code. A claim openIMIS never stored gives the POST's error.
    async fn post_openimis_claim(&self, claim: &Value, code: &str) -> Result<Value, AdapterError> {
        match self
            .exchange(Method::POST, "/Claim", Some(claim), None)
            .await
        {
            Ok((_, v)) => Ok(v),
            Err(e @ (AdapterError::Unavailable(_) | AdapterError::Rejected(_))) => {
                match self
                    .exchange(Method::GET, &format!("/ClaimResponse/{code}"), None, None)
                    .await
                {
                    Ok((_, v)) if v.get("resourceType") == Some(&json!("ClaimResponse")) => Ok(v),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// A resource as FHIR's JSON form allows it: "arrays SHALL not be empty"
/// (FHIR R4, JSON representation), so an element whose list is empty (a
/// claim without diagnoses, an eligibility question without planned
/// lines) is left out, at any depth.
pub fn without_empty_arrays(mut v: Value) -> Value {
    fn prune(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.values_mut().for_each(prune);
                m.retain(|_, v| !matches!(v, Value::Array(a) if a.is_empty()));
            }
            Value::Array(a) => a.iter_mut().for_each(prune),
            _ => {}
        }
    }
    prune(&mut v);
    v
}

fn malformed(e: PathError) -> AdapterError {
    AdapterError::Malformed(e.to_string())
}

#[async_trait]
impl Adapter for FhirAdapter {
    /// A CoverageEligibilityResponse has no field for the member's dues.
    fn says_dues(&self) -> bool {
        false
    }

    async fn eligibility(&self, q: &EligibilityQuery) -> Result<EligibilityAnswer, AdapterError> {
        let member = match self
            .cfg
            .codes
            .member(q.member_number.as_deref().unwrap_or(""), &q.beneficiary_id)
        {
            Ok(m) => m,
            Err(r) => return Ok(EligibilityAnswer::not_covered(r)),
        };
        let (lines, local) = self.cfg.codes.lines(&q.lines);
        let req = match self.cfg.dialect {
            Dialect::Standard => eligibility_resource(q, &member, &lines, &self.mutuelle_id),
            Dialect::Openimis => openimis::eligibility(q, &member, &lines),
        };
        let v = self.post("/CoverageEligibilityRequest", &req, None).await?;
        // Another member's answer is never shown (their ceilings, their
        // cover): the question's identifier and patient are checked first.
        answers_the_claim_sent(&v, &req["identifier"]).map_err(malformed)?;
        answers_the_patient_sent(&v, &req["patient"]).map_err(malformed)?;
        let parsed = parse_eligibility(&v, &self.cfg.currency_symbols, Some(&q.currency))
            .map_err(malformed)?;
        parsed.effect()?;
        let shown = crate::codes::CodeMaps::shown_member(q.member_number.as_deref(), member);
        Ok(eligibility_answer(&parsed, shown, local, q.lines.len()))
    }

    async fn adjudicate(
        &self,
        req: AdjudicationRequest<'_>,
    ) -> Result<PartnerAdjudication, AdapterError> {
        let c = req.claim;
        let mut mapped = self
            .cfg
            .codes
            .claim(c, req.member_number)
            .map_err(AdapterError::Rejected)?;
        if self.cfg.dialect == Dialect::Openimis {
            openimis::answer_here(&mut mapped);
        }
        if mapped.lines.is_empty() {
            return Ok(PartnerAdjudication {
                lines: mapped.unmapped,
                ..Default::default()
            });
        }
        let v = match (self.cfg.dialect, &self.cfg.openimis) {
            (Dialect::Openimis, Some(o)) => {
                let currency = self.written_currency(&c.currency);
                let claim = openimis::claim(req.idempotency_key, c, &mapped, o, &currency)
                    .map_err(|m| {
                        AdapterError::Rejected(Reason::new(ReasonCode::PartnerRejected, m))
                    })?;
                let code = openimis::claim_code(req.idempotency_key);
                let mut v = self.post_openimis_claim(&claim, &code).await?;
                openimis::answers_the_code(&v, &code).map_err(AdapterError::Malformed)?;
                answers_the_patient_sent(&v, &claim["patient"]).map_err(malformed)?;
                openimis::renumber(&mut v, &mapped.lines).map_err(AdapterError::Malformed)?;
                v
            }
            _ => {
                let mut claim = claim_resource(req.idempotency_key, c, &mapped, &self.mutuelle_id);
                // Paid against a prior authorization: its preAuthRef on the
                // mutuelle's coverage.
                if let Some(p) = req.prior {
                    claim["insurance"][1]["preAuthRef"] = json!([p.partner_reference]);
                }
                let v = self
                    .post("/Claim", &claim, Some(req.idempotency_key))
                    .await?;
                answers_the_claim_sent(&v, &claim["identifier"]).map_err(malformed)?;
                answers_the_patient_sent(&v, &claim["patient"]).map_err(malformed)?;
                v
            }
        };
        let (lines, reference) = self.lines_of(&v, mapped, &c.currency)?;
        Ok(PartnerAdjudication {
            lines,
            partner_reference: reference,
            product: None::<ProductRef>,
            consumption: Vec::new(),
        })
    }

    async fn preauthorize(
        &self,
        req: PreAuthorizationRequest<'_>,
    ) -> Result<Commitment, AdapterError> {
        if self.cfg.dialect == Dialect::Openimis {
            return Err(AdapterError::Unsupported(
                "openIMIS gives no prior authorization over FHIR".into(),
            ));
        }
        let c = req.planned;
        let mapped = self
            .cfg
            .codes
            .claim(c, req.member_number)
            .map_err(AdapterError::Rejected)?;
        let claim = preauthorization_resource(
            req.idempotency_key,
            c,
            &mapped,
            &self.mutuelle_id,
            req.replaces.map(|p| p.partner_reference.as_str()),
        );
        let v = self
            .post("/Claim", &claim, Some(req.idempotency_key))
            .await?;
        answers_the_claim_sent(&v, &claim["identifier"]).map_err(malformed)?;
        answers_the_patient_sent(&v, &claim["patient"]).map_err(malformed)?;
        let (pre_auth_ref, valid_until) = preauthorization_terms(&v)?;
        let (lines, reference) = self.lines_of(&v, mapped, &c.currency)?;
        Ok(Commitment {
            lines,
            partner_reference: pre_auth_ref.unwrap_or(reference),
            valid_until,
            // FHIR carries no billing tolerance: none.
            tolerance_bp: None,
            product: None,
            hold: Vec::new(),
        })
    }

    async fn cancel_preauthorization(
        &self,
        req: CancelPreAuthorization<'_>,
    ) -> Result<(), AdapterError> {
        if self.cfg.dialect == Dialect::Openimis {
            return Err(AdapterError::Unsupported(
                "openIMIS gives no prior authorization over FHIR".into(),
            ));
        }
        let v = self
            .post("/Task", &release_resource(&req), Some(req.idempotency_key))
            .await?;
        task_refusal(&v).map_or(Ok(()), |r| Err(AdapterError::Rejected(r)))
    }

    async fn cancel(&self, req: CancelRequest<'_>) -> Result<(), AdapterError> {
        if self.cfg.dialect == Dialect::Openimis {
            // A claim openIMIS never received (passerelle answered every
            // line itself: `openimis::answer_here`) has nothing to undo
            // there; openIMIS's answer always carries its id, the
            // reference stored, unless passerelle refused that answer
            // (then openIMIS holds the claim, with no reference stored).
            if req.partner_reference.is_empty() && !req.answer_refused {
                return Ok(());
            }
            // openIMIS has no Task, no $cancel, and neither DELETE nor PUT
            // of a Claim over FHIR: nothing can carry a cancellation.
            let (before, after) = crate::OPENIMIS_NO_CANCEL;
            return Err(AdapterError::Unsupported(format!(
                "{before}{}{after}",
                openimis::claim_code(req.adjudication_key)
            )));
        }
        // The Task the server answers says whether it did the cancel.
        let v = self
            .post("/Task", &cancel_resource(&req), Some(req.idempotency_key))
            .await?;
        task_refusal(&v).map_or(Ok(()), |r| Err(AdapterError::Rejected(r)))
    }
}

impl FhirAdapter {
    /// The currency string the partner writes for an ISO code: its own
    /// symbol when `currency_symbols` maps one to it (openIMIS's "$"), else
    /// the code.
    fn written_currency(&self, iso: &str) -> String {
        let mut mine: Vec<&String> = self
            .cfg
            .currency_symbols
            .iter()
            .filter(|(_, v)| v.as_str() == iso)
            .map(|(k, _)| k)
            .collect();
        mine.sort();
        mine.first()
            .map_or_else(|| iso.to_string(), |s| s.to_string())
    }
}

/// A line's remainder R as quantity × price per unit, for both dialects:
/// q and R ÷ q when it divides exactly, else 1 × R (never R per unit, which
/// reads as q times too much).
pub fn remainder_units(l: &ClaimLine) -> (i64, i64) {
    let r = l.remainder();
    let q = i64::from(l.quantity.max(1));
    if r % q == 0 { (q, r / q) } else { (1, r) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eligibility question for the kit's member about claim `c`'s lines.
    fn kit_query(key: &str, c: &passerelle_domain::Claim) -> EligibilityQuery {
        EligibilityQuery {
            idempotency_key: key.into(),
            scheme_id: "CNSS".into(),
            beneficiary_id: "TG-KIT-1".into(),
            member_number: Some("K-1".into()),
            member: None,
            date_of_care: c.date_of_care,
            currency: "XOF".into(),
            lines: c.lines.clone(),
            diagnoses: vec![],
        }
    }

    /// A cancel's Task the server answers rejected, failed, cancelled or
    /// entered in error is a refusal in the mutuelle's words (its status
    /// reason, else its business status, else the status said); any other
    /// answer is the cancel taken. It was taken whatever the Task said:
    /// the claim CANCELLED while the mutuelle kept its booking.
    #[test]
    fn a_task_refused_is_a_cancel_refused() {
        let task = |status: &str, extra: Value| {
            let mut v = json!({"resourceType": "Task", "status": status, "intent": "order"});
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            v
        };
        let said = |v: Value| task_refusal(&v).map(|r| (r.code, r.message));
        assert_eq!(
            said(task(
                "rejected",
                json!({"statusReason": {"text": "demande déjà payée"}})
            )),
            Some((ReasonCode::PartnerRejected, "demande déjà payée".into()))
        );
        assert_eq!(
            said(task(
                "failed",
                json!({"businessStatus": {"coding": [{"display": "hors délai"}]}})
            )),
            Some((ReasonCode::PartnerRejected, "hors délai".into()))
        );
        for status in ["cancelled", "entered-in-error"] {
            let (_, m) = said(task(status, json!({}))).expect(status);
            assert!(m.contains(status), "{m}");
        }
        for taken in [
            task("completed", json!({})),
            task("accepted", json!({})),
            task("requested", json!({})),
            json!({"resourceType": "OperationOutcome", "issue": []}),
            Value::Null,
        ] {
            assert_eq!(said(taken.clone()), None, "{taken}");
        }
    }

    /// A refusal says the mutuelle's own words (its OperationOutcome's
    /// diagnostics), not the HTTP status before them; a server error keeps
    /// the status for operators; a refusal without diagnostics says the
    /// status and the body's start.
    #[test]
    fn a_refusal_says_the_mutuelles_words() {
        let outcome = |d: &str| {
            serde_json::to_vec(&json!({"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "processing", "diagnostics": d}]}))
            .unwrap()
        };
        match status_error(
            hyper::StatusCode::UNPROCESSABLE_ENTITY,
            &outcome("adhérent suspendu"),
        ) {
            AdapterError::Rejected(r) => {
                assert_eq!(r.code, ReasonCode::PartnerRejected);
                assert_eq!(r.message, "adhérent suspendu");
            }
            e => panic!("{e:?}"),
        }
        match status_error(
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            &outcome("maintenance"),
        ) {
            AdapterError::Unavailable(m) => {
                assert_eq!(m, "HTTP 503 Service Unavailable: maintenance")
            }
            e => panic!("{e:?}"),
        }
        // openIMIS writes its words in details.text, never in diagnostics.
        let imis = serde_json::to_vec(&json!({"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "exception",
                "details": {"text": "Le code de l'établissement de santé est inconnu : CONFORMANCE"}},
                {"severity": "error", "code": "exception",
                "details": {"text": "Le code de l'établissement de santé est inconnu : CONFORMANCE"}}]}))
        .unwrap();
        match status_error(hyper::StatusCode::BAD_REQUEST, &imis) {
            AdapterError::Rejected(r) => assert_eq!(
                r.message,
                "Le code de l'établissement de santé est inconnu : CONFORMANCE"
            ),
            e => panic!("{e:?}"),
        }
        for body in [&b"<html>Bad request</html>"[..], &outcome("  ")] {
            match status_error(hyper::StatusCode::BAD_REQUEST, body) {
                AdapterError::Rejected(r) => {
                    assert!(r.message.starts_with("HTTP 400 Bad Request: "), "{r:?}")
                }
                e => panic!("{e:?}"),
            }
        }
    }

    // Regressions found by the fuzz targets' properties (docs/fuzzing.md);
    // the inputs are also in fuzz/regressions/.

    #[test]
    fn item_sequence_beyond_u32_is_refused_not_read_as_line_1() {
        let v = json!({"resourceType": "ClaimResponse", "outcome": "complete", "item": [
            {"itemSequence": 4_294_967_297_u64, "adjudication": [
                {"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 100, "currency": "XOF"}}]}]});
        let e = parse_claim_response(&v, Dialect::Standard, &HashMap::new(), None).unwrap_err();
        assert_eq!(e.path, "ClaimResponse.item[0].itemSequence");
        assert!(e.message.contains("not a line number"), "{e}");
    }

    #[test]
    fn amounts_in_two_currencies_are_refused_not_read_as_the_last() {
        let adj = |code: &str, value: &str, cur: &str| json!({"category": {"coding": [{"code": code}]}, "amount": {"value": value, "currency": cur}});
        let v = json!({"resourceType": "ClaimResponse", "outcome": "complete", "item": [
            {"itemSequence": 1, "adjudication": [adj("benefit", "12.50", "EUR"), adj("submitted", "20000", "XOF")]}]});
        let e = parse_claim_response(&v, Dialect::Standard, &HashMap::new(), None).unwrap_err();
        assert_eq!(
            e.path,
            "ClaimResponse.item[0].adjudication[1].amount.currency"
        );
        let v = json!({"resourceType": "ClaimResponse", "outcome": "complete", "item": [
            {"itemSequence": 1, "adjudication": [adj("16", "100", "$")]},
            {"itemSequence": 2, "adjudication": [adj("16", "100", "XOF")]}]});
        let syms = HashMap::from([("$".to_string(), "XOF".to_string())]);
        let r = parse_claim_response(&v, Dialect::Openimis, &syms, None).unwrap();
        assert_eq!(
            r.currency, "XOF",
            "a symbol mapped to the same code is the same currency"
        );
    }

    /// openIMIS answers one adjudication per status a line reached, each
    /// with rejection reason 0, "ACCEPTED": no reason on the line; a real
    /// reason is said once however many statuses repeat it.
    #[test]
    fn openimis_accepted_is_no_reason_and_a_reason_is_said_once() {
        let adj = |status: &str, code: &str, display: &str| {
            json!({"category": {"coding": [{"code": status}]},
                "reason": {"coding": [{"code": code, "display": display}]},
                "amount": {"value": 300, "currency": "XOF"}, "value": 1})
        };
        let v = json!({"resourceType": "ClaimResponse", "outcome": "complete", "item": [
            {"itemSequence": 1, "adjudication": [adj("2", "0", "ACCEPTED"), adj("4", "0", "ACCEPTED"),
                adj("8", "0", "ACCEPTED"), adj("16", "0", "ACCEPTED")]},
            {"itemSequence": 2, "adjudication": [adj("2", "0", "ACCEPTED"),
                adj("1", "12", "CATEGORY LIMITATION"), adj("1", "12", "CATEGORY LIMITATION")]}]});
        let r = parse_claim_response(&v, Dialect::Openimis, &HashMap::new(), None).unwrap();
        assert!(r.lines[0].reasons.is_empty(), "{:?}", r.lines[0].reasons);
        let said: Vec<&str> = r.lines[1]
            .reasons
            .iter()
            .map(|r| r.message.as_str())
            .collect();
        assert_eq!(said, ["CATEGORY LIMITATION"]);
        assert_eq!(r.lines[1].benefit, 0, "rejected");
    }

    /// openIMIS's valuated amount (status 16) is the line's total, as its
    /// valuation computes it (quantity × unit price, then deductibles and
    /// ceilings) and its converter writes it, `value` the quantity; an
    /// amount left out (its valuation 0, the ceiling used up) is 0. The
    /// asked amount (status 2) is a unit price. Read as amount × value,
    /// three units valuated 1,500 in all were read 4,500.
    #[test]
    fn openimis_valuated_amount_is_the_line_total() {
        let adj = |status: &str, amount: Option<&str>, qty: u32| {
            let mut a = json!({"category": {"coding": [{"code": status}]},
                "reason": {"coding": [{"code": "0", "display": "ACCEPTED"}]}, "value": qty});
            if let Some(v) = amount {
                a["amount"] = json!({"value": v, "currency": "XOF"});
            }
            a
        };
        let v = json!({"resourceType": "ClaimResponse", "outcome": "complete", "item": [
            {"itemSequence": 1, "adjudication": [adj("2", Some("1000"), 3), adj("16", Some("1500"), 3)]},
            {"itemSequence": 2, "adjudication": [adj("2", Some("700"), 2), adj("16", None, 2)]},
            // Later releases write the asked unit price again for a line
            // valued at 0: on two units, 0.
            {"itemSequence": 3, "adjudication": [adj("2", Some("700"), 2), adj("16", Some("700"), 2)]},
            // On one unit it reads as a line valued in full (openIMIS's
            // answer cannot tell the two apart).
            {"itemSequence": 4, "adjudication": [adj("2", Some("900"), 1), adj("16", Some("900"), 1)]},
            // A fractional quantity approved does not refuse the answer.
            {"itemSequence": 5, "adjudication": [adj("2", Some("400"), 2), adj("16", Some("600"), 0)]}]});
        let mut v = v;
        v["item"][4]["adjudication"][1]["value"] = json!(1.5);
        let r = parse_claim_response(&v, Dialect::Openimis, &HashMap::new(), None).unwrap();
        assert_eq!(
            r.lines.iter().map(|l| l.benefit).collect::<Vec<_>>(),
            [1500, 0, 0, 900, 600]
        );
        assert_eq!(r.lines[0].quantity, Some(3));
        assert_eq!(r.lines[0].line_total, Some(1500));
        // A status openIMIS does not define is refused, named, where the
        // line waited for ever on it.
        let v = json!({"resourceType": "ClaimResponse", "outcome": "complete", "item": [
            {"itemSequence": 1, "adjudication": [adj("2", Some("1000"), 1), adj("32", Some("1000"), 1)]}]});
        let e = parse_claim_response(&v, Dialect::Openimis, &HashMap::new(), None).unwrap_err();
        assert_eq!(e.path, "ClaimResponse.item[0].adjudication[1].category");
        assert!(e.message.contains("32"), "{e}");
    }

    /// Issue 15, currencies: every ISO 4217 code is known with its minor
    /// unit, and an amount without a currency (as openIMIS's guide
    /// publishes them) is in the claim's currency, never refused outright.
    #[test]
    fn any_iso_currency_and_an_amount_without_one() {
        let v = json!({"resourceType": "ClaimResponse", "outcome": "complete", "item": [
            {"itemSequence": 1, "adjudication": [
                {"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": "12.50", "currency": "SAR"}}]}]});
        let r = parse_claim_response(&v, Dialect::Standard, &HashMap::new(), None).unwrap();
        assert_eq!((r.currency.as_str(), r.lines[0].benefit), ("SAR", 1250));
        let v = json!({"resourceType": "ClaimResponse", "outcome": "complete", "item": [
            {"itemSequence": 1, "adjudication": [
                {"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": "1.250"}}]}]});
        let e = parse_claim_response(&v, Dialect::Standard, &HashMap::new(), None).unwrap_err();
        assert_eq!(e.path, "ClaimResponse.item[0].adjudication[0].amount");
        let r = parse_claim_response(&v, Dialect::Standard, &HashMap::new(), Some("TND")).unwrap();
        assert_eq!((r.currency.as_str(), r.lines[0].benefit), ("TND", 1250));
    }

    /// Issue 15, item 1: services the payer adds are paid on the claim line
    /// they belong to, and the answer's benefit total must tie out.
    #[test]
    fn added_items_are_read_and_totals_tie_out() {
        let benefit = |v: i64| json!([{"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": v, "currency": "XOF"}}]);
        let answer = |add: Value, total: Option<i64>| {
            let mut v = json!({"resourceType": "ClaimResponse", "outcome": "complete",
                "item": [{"itemSequence": 1, "adjudication": benefit(1000)},
                         {"itemSequence": 2, "adjudication": benefit(0)}],
                "addItem": add});
            if let Some(t) = total {
                v["total"] = json!([{"category": {"coding": [{"code": "benefit"}]},
                                     "amount": {"value": t, "currency": "XOF"}}]);
            }
            v
        };
        let read = |v: &Value| parse_claim_response(v, Dialect::Standard, &HashMap::new(), None);
        // An added service tied to line 2: paid on line 2; the total ties out.
        let r = read(&answer(
            json!([{"itemSequence": [2], "adjudication": benefit(700)}]),
            Some(1700),
        ))
        .unwrap();
        assert_eq!(
            r.lines.iter().map(|l| l.benefit).collect::<Vec<_>>(),
            vec![1000, 700]
        );
        // Dropping it (as before) leaves the total untied: refused, named.
        let e = read(&answer(json!([]), Some(1700))).unwrap_err();
        assert_eq!(e.path, "ClaimResponse.total[0].amount");
        assert!(e.message.contains("does not tie out"), "{e}");
        // An added service tied to no line, or to two, cannot be paid per line.
        for add in [
            json!([{"adjudication": benefit(5)}]),
            json!([{"itemSequence": [1, 2], "adjudication": benefit(5)}]),
        ] {
            let e = read(&answer(add, None)).unwrap_err();
            assert_eq!(e.path, "ClaimResponse.addItem[0].itemSequence", "{e}");
        }
        let e = read(&answer(
            json!([{"itemSequence": [9], "adjudication": benefit(5)}]),
            None,
        ))
        .unwrap_err();
        assert!(e.message.contains("line 9"), "{e}");
        // Two benefits on one item, without a total to catch it: which one
        // is paid cannot be told; refused, named (the last one was paid).
        let two = json!([{"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 300, "currency": "XOF"}},
                         {"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 500, "currency": "XOF"}}]);
        let mut v = answer(json!([]), None);
        v["item"][0]["adjudication"] = two.clone();
        let e = read(&v).unwrap_err();
        assert_eq!(e.path, "ClaimResponse.item[0].adjudication[1]");
        assert!(e.message.contains("second benefit"), "{e}");
        let e = read(&answer(
            json!([{"itemSequence": [2], "adjudication": two}]),
            None,
        ))
        .unwrap_err();
        assert_eq!(e.path, "ClaimResponse.addItem[0].adjudication[1]");
    }

    /// Issue 15, item 4: the payer's disposition, errors and notes are read
    /// and reach the claim's reasons (an error outcome's rejection, the line
    /// an error names), and `translate` shows them.
    #[test]
    fn disposition_errors_and_notes_are_surfaced() {
        let v = json!({"resourceType": "ClaimResponse", "outcome": "error",
            "disposition": "Claim could not be processed",
            "error": [{"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication-error", "code": "a002", "display": "Missing Identifier"}]}}],
            "processNote": [{"text": "Resubmit with the member's card number"}]});
        let r = parse_claim_response(&v, Dialect::Standard, &HashMap::new(), None).unwrap();
        assert_eq!(
            r.notes,
            vec!["Resubmit with the member's card number".to_string()]
        );
        let Err(AdapterError::Rejected(reason)) =
            shares_from_response(r, Dialect::Standard, &[], "XOF")
        else {
            panic!("an error outcome is a rejection")
        };
        assert!(
            reason.message.contains("Claim could not be processed")
                && reason.message.contains("Missing Identifier"),
            "{}",
            reason.message
        );
        let v = json!({"resourceType": "ClaimResponse", "outcome": "partial",
            "item": [{"itemSequence": 1, "adjudication": [{"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 0, "currency": "XOF"}}]}],
            "error": [{"itemSequence": 1, "code": {"text": "service not covered"}}]});
        let r = parse_claim_response(&v, Dialect::Standard, &HashMap::new(), None).unwrap();
        let (shares, _) = shares_from_response(r, Dialect::Standard, &[], "XOF").unwrap();
        assert!(
            shares[0]
                .reasons
                .iter()
                .any(|x| x.message == "service not covered"),
            "{:?}",
            shares[0].reasons
        );
    }

    /// Issue 15, item 2: benefits by their FHIR type. A ceiling's left is
    /// allowed minus used; a 20% copay is a term, not "20 acts left"; an
    /// excluded category is no ceiling; a type with no mapping is refused.
    #[test]
    fn eligibility_benefits_are_read_by_their_type() {
        let bt = |code: &str| json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/benefit-type", "code": code}]});
        let v = json!({"resourceType": "CoverageEligibilityResponse", "outcome": "complete",
            "insurance": [{"inforce": true, "item": [
                {"category": {"coding": [{"code": "medical"}]}, "benefit": [
                    {"type": bt("benefit"), "allowedMoney": {"value": 100000, "currency": "XOF"}, "usedMoney": {"value": 35000, "currency": "XOF"}},
                    {"type": bt("visit"), "allowedUnsignedInt": 10, "usedUnsignedInt": 4},
                    {"type": bt("copay-percent"), "allowedUnsignedInt": 20},
                    {"type": bt("deductible"), "allowedMoney": {"value": 5000, "currency": "XOF"}, "usedMoney": {"value": 2000, "currency": "XOF"}}]},
                {"category": {"coding": [{"code": "dental"}]}, "excluded": true, "benefit": [
                    {"type": bt("benefit"), "allowedMoney": {"value": 1, "currency": "XOF"}}]}]}]});
        let e = parse_eligibility(&v, &HashMap::new(), None).unwrap();
        assert_eq!(
            e.amounts,
            vec![("medical".to_string(), 100000, 35000, "XOF".to_string())]
        );
        assert_eq!(e.counts, vec![("medical".to_string(), 10, 4)]);
        use passerelle_domain::engine::CostShareKind as K;
        let shares: Vec<_> = e
            .cost_shares
            .iter()
            .map(|c| (c.kind, c.applies_to.as_str(), c.amount, c.rate_bp))
            .collect();
        assert_eq!(
            shares,
            vec![
                (K::CopayPercent, "medical", None, Some(2000)),
                (K::Deductible, "medical", Some(5000), None),
                (K::Excluded, "dental", None, None),
            ]
        );
        // A deductible partly met says how much, in its currency.
        let deductible = &e.cost_shares[1];
        assert_eq!(
            (deductible.used_amount, deductible.currency.as_str()),
            (Some(2000), "XOF")
        );
        let a = eligibility_answer(&e, "M-1".into(), Vec::new(), 0);
        // The scheme's answer carries them as such.
        assert_eq!(a.cost_shares, e.cost_shares);
        let money = &a.ceilings[0];
        assert_eq!(
            (money.limit_amount, money.used_amount),
            (Some(100000), 35000)
        );
        assert_eq!(
            (a.ceilings[1].limit_count, a.ceilings[1].used_count),
            (Some(10), 4)
        );
        let mut bad = v.clone();
        bad["insurance"][0]["item"][0]["benefit"][0]["type"] = bt("lodging");
        let err = parse_eligibility(&bad, &HashMap::new(), None).unwrap_err();
        assert!(
            err.path.ends_with("benefit[0].type") && err.message.contains("lodging"),
            "{err}"
        );
    }

    /// No insurance in force: not covered, said by passerelle's own
    /// sentence (its detail), which the console, the notice and the CLI
    /// put in the reader's language.
    #[test]
    fn no_cover_in_force_is_said_with_its_detail() {
        let v = json!({"resourceType": "CoverageEligibilityResponse", "outcome": "complete",
            "insurance": [{"inforce": false}]});
        let e = parse_eligibility(&v, &HashMap::new(), None).unwrap();
        let a = eligibility_answer(&e, "M-1".into(), Vec::new(), 0);
        assert!(!a.covered);
        let detail = a.reason.and_then(|r| r.detail).map(|d| d.key);
        assert_eq!(detail.as_deref(), Some("partner-no-cover"));
    }

    /// Issue 15, item 2: `network`, `unit` and `term` by their FHIR code
    /// systems: a family ceiling and an out-of-network one say so in their
    /// scope, the term is the ceiling's period, and co-payments keep all
    /// three; a code of those systems with no meaning here is refused,
    /// named.
    #[test]
    fn network_unit_and_term_qualify_ceilings_and_cost_shares() {
        let cc = |system: &str, code: &str| json!({"coding": [{"system": format!("http://terminology.hl7.org/CodeSystem/{system}"), "code": code}]});
        let bt = |code: &str| cc("benefit-type", code);
        let v = json!({"resourceType": "CoverageEligibilityResponse", "outcome": "complete",
            "insurance": [{"inforce": true, "item": [
                {"category": {"text": "hospital"}, "network": cc("benefit-network", "in"), "unit": cc("benefit-unit", "family"), "term": cc("benefit-term", "annual"),
                 "benefit": [{"type": bt("benefit"), "allowedMoney": {"value": 500000, "currency": "XOF"}, "usedMoney": {"value": 100000, "currency": "XOF"}}]},
                {"category": {"text": "hospital"}, "network": cc("benefit-network", "out"), "unit": cc("benefit-unit", "individual"), "term": cc("benefit-term", "lifetime"),
                 "benefit": [{"type": bt("visit"), "allowedUnsignedInt": 3},
                             {"type": bt("copay"), "allowedMoney": {"value": 1000, "currency": "XOF"}}]}]}]});
        let e = parse_eligibility(&v, &HashMap::new(), None).unwrap();
        let a = eligibility_answer(&e, "M-1".into(), Vec::new(), 0);
        let ceilings: Vec<_> = a
            .ceilings
            .iter()
            .map(|c| (c.scope.as_str(), c.period.as_str()))
            .collect();
        assert_eq!(
            ceilings,
            vec![
                ("hospital (family)", "annual"),
                ("hospital (out of network)", "lifetime")
            ]
        );
        let copay = &a.cost_shares[0];
        assert_eq!(
            (
                copay.amount,
                copay.network.as_str(),
                copay.unit.as_str(),
                copay.term.as_str()
            ),
            (Some(1000), "out", "individual", "lifetime")
        );
        for (field, system, code) in [
            ("network", "benefit-network", "elsewhere"),
            ("unit", "benefit-unit", "village"),
            ("term", "benefit-term", "weekly"),
        ] {
            let mut bad = v.clone();
            bad["insurance"][0]["item"][0][field] = cc(system, code);
            let err = parse_eligibility(&bad, &HashMap::new(), None).unwrap_err();
            assert!(
                err.path.ends_with(&format!("item[0].{field}")) && err.message.contains(code),
                "{err}"
            );
        }
        // A ceiling in the question's currency is read; one in another is
        // refused, named (500 EUR was shown as 50,000 XOF).
        assert!(parse_eligibility(&v, &HashMap::new(), Some("XOF")).is_ok());
        let mut euros = v.clone();
        euros["insurance"][0]["item"][0]["benefit"][0]["allowedMoney"] =
            json!({"value": "500.00", "currency": "EUR"});
        euros["insurance"][0]["item"][0]["benefit"][0]["usedMoney"] =
            json!({"value": "100.00", "currency": "EUR"});
        let err = parse_eligibility(&euros, &HashMap::new(), Some("XOF")).unwrap_err();
        assert!(
            err.path.ends_with("benefit[0].allowedMoney.currency")
                && err.message == "EUR where the question is in XOF",
            "{err}"
        );
    }

    /// Issue 15, item 9: a partner that knows the member by its own
    /// identifier (openIMIS: the chfid) answers eligibility; the scheme is
    /// shown the broker's member number, as a claim shows it, never the
    /// partner's identifier (an internal mapping).
    #[tokio::test]
    async fn eligibility_shows_the_brokers_member_number() {
        let mut member = crate::kit::member();
        member.member_number = "CHF-K1".into();
        let sim =
            crate::sim::SimMutuelle::new("MUT-KIT", vec![member], vec![crate::kit::product()]);
        let front = crate::sim_http::SimFhir {
            sim,
            dialect: Dialect::Standard,
            currency_text: "XOF".into(),
            currency: "XOF".into(),
            login: None,
            answers: Default::default(),
        };
        let (addr, _task) = front.start().await.unwrap();
        let mut codes = crate::codes::CodeMaps::default();
        codes.members.insert("K-1".into(), "CHF-K1".into());
        let cfg = FhirConfig {
            base_url: format!("http://{addr}/api/api_fhir_r4"),
            dialect: Dialect::Standard,
            timeout_ms: 2000,
            connect_timeout_ms: 2000,
            pool: Default::default(),
            tls: None,
            token_file: None,
            username: None,
            password_file: None,
            currency_symbols: Default::default(),
            codes,
            openimis: None,
        };
        let adapter = FhirAdapter::new("MUT-KIT", &cfg).unwrap();
        let e = adapter
            .eligibility(&crate::EligibilityQuery {
                idempotency_key: "k".into(),
                scheme_id: "CNSS".into(),
                beneficiary_id: "TG-KIT-1".into(),
                member_number: Some("K-1".into()),
                member: None,
                date_of_care: passerelle_domain::date::parse("2026-03-10").unwrap(),
                currency: "XOF".into(),
                lines: vec![],
                diagnoses: vec![],
            })
            .await
            .unwrap();
        assert!(e.covered, "{e:?}");
        assert_eq!(e.member_number, "K-1");
    }

    /// Every string, coding and required element of what the standard
    /// dialect sends (issue 15, item 7; without the full R4 schema check,
    /// which is still to come): no empty string, every coding with its
    /// system, the contained ClaimResponse with created, patient and type,
    /// the R4 task code system, an eligibility price per unit, the mutuelle
    /// as insurer.
    #[test]
    fn what_the_standard_dialect_sends_is_well_formed_fhir() {
        fn walk(v: &Value, path: &str, problems: &mut Vec<String>) {
            match v {
                Value::String(s) if s.is_empty() => problems.push(format!("{path}: empty string")),
                Value::Object(o) => {
                    if path.ends_with(".coding[]") && !o.contains_key("system") {
                        problems.push(format!("{path}: coding without system"));
                    }
                    for (k, x) in o {
                        walk(x, &format!("{path}.{k}"), problems);
                    }
                }
                Value::Array(a) => a
                    .iter()
                    .for_each(|x| walk(x, &format!("{path}[]"), problems)),
                _ => {}
            }
        }
        let mut c = crate::kit::claim("wf-1");
        c.lines[1].quantity = 2;
        let codes = crate::codes::CodeMaps::default();
        let mapped = codes.claim(&c, "K-1").unwrap();
        let claim = claim_resource("key-1", &c, &mapped, "MUT-KIT");
        let (lines, _) = codes.lines(&c.lines);
        let q = kit_query("key-2", &c);
        let elig = eligibility_resource(&q, "K-1", &lines, "MUT-KIT");
        let task = cancel_resource(&CancelRequest {
            idempotency_key: "key-3",
            adjudication_key: "key-1",
            scheme_id: "CNSS",
            claim_id: "wf-1",
            reason: "sent twice",
            partner_reference: "",
            answer_refused: false,
        });
        let mut problems = Vec::new();
        for (name, v) in [
            ("Claim", &claim),
            ("CoverageEligibilityRequest", &elig),
            ("Task", &task),
        ] {
            walk(v, name, &mut problems);
        }
        assert!(problems.is_empty(), "{problems:#?}");
        let contained = &claim["contained"][0];
        for field in ["created", "patient", "type", "insurer", "outcome"] {
            assert!(
                !contained[field].is_null(),
                "contained ClaimResponse lacks {field}"
            );
        }
        assert_eq!(
            task["code"]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/financialtaskcode"
        );
        assert_eq!(elig["insurer"]["identifier"]["value"], "MUT-KIT");
        // Line 2: remainder 400 over quantity 2 is 200 a unit.
        let item = &elig["item"][1];
        assert_eq!(
            (
                item["quantity"]["value"].clone(),
                item["unitPrice"]["value"].clone()
            ),
            (json!(2), json!(200))
        );
    }

    /// What leaves for a FHIR server has no empty list, at any depth.
    #[test]
    fn no_empty_array_is_sent() {
        let v = json!({"resourceType": "Claim", "diagnosis": [], "item": [{"modifier": [], "sequence": 1}],
                       "identifier": [{"value": "k"}], "note": {"text": "", "x": []}});
        assert_eq!(
            without_empty_arrays(v),
            json!({"resourceType": "Claim", "item": [{"sequence": 1}],
                   "identifier": [{"value": "k"}], "note": {"text": ""}})
        );
    }

    /// An answer whose `request` names another claim than the one sent
    /// (a partner's cache, a proxy's mix-up) is refused, never booked;
    /// one that names it by an identifier sent, or that cannot be checked
    /// (another system's identifier, the server's own reference, none),
    /// is read.
    #[test]
    fn an_answer_for_another_claim_is_refused() {
        let sent = json!([{ "system": KEY_SYSTEM, "value": "adj-1" },
                          { "system": "urn:passerelle:claim", "value": "CNSS/C-1" }]);
        let answer = |request: Value| json!({"resourceType": "ClaimResponse", "request": request});
        for request in [
            json!({"identifier": {"system": KEY_SYSTEM, "value": "adj-1"}}),
            json!({"identifier": {"system": "urn:passerelle:claim", "value": "CNSS/C-1"}}),
            json!({"identifier": {"value": "CNSS/C-1"}}),
            json!({"identifier": {"system": "https://mutuelle.example/claims", "value": "778"}}),
            // The server's own number, typed by `type` and not `system`.
            json!({"identifier": {"type": {"text": "claim number"}, "value": "778"}}),
            json!({"reference": "Claim/9"}),
        ] {
            assert!(
                answers_the_claim_sent(&answer(request.clone()), &sent).is_ok(),
                "{request}"
            );
        }
        assert!(answers_the_claim_sent(&json!({"resourceType": "ClaimResponse"}), &sent).is_ok());
        for request in [
            json!({"identifier": {"system": KEY_SYSTEM, "value": "adj-2"}}),
            json!({"identifier": {"system": "urn:passerelle:claim", "value": "CNSS/C-2"}}),
            json!({"identifier": {"value": "adj-someone-else"}}),
            json!({"identifier": {"value": "CNSS/C-9"}}),
        ] {
            let e = answers_the_claim_sent(&answer(request.clone()), &sent).unwrap_err();
            assert_eq!(e.path, "ClaimResponse.request.identifier", "{request}");
            assert!(
                e.message.contains("adj-1 (urn:passerelle:adjudication)"),
                "{e}"
            );
        }
        let eob = json!({"resourceType": "ExplanationOfBenefit", "claim": {"identifier": {"value": "adj-x"}}});
        let e = answers_the_claim_sent(&eob, &sent).unwrap_err();
        assert_eq!(e.path, "ExplanationOfBenefit.claim.identifier");
    }

    /// An answer about another person (a server's cache, a proxy's
    /// mix-up, a member number typed into the wrong field) is refused,
    /// never shown nor booked: the same identifier system (or openIMIS's
    /// identifier type) with another value. A reference is the server's
    /// own id (openIMIS answers its insuree's UUID for the CHFID asked
    /// about) and passes, as does a patient named another way.
    #[test]
    fn an_answer_about_another_patient_is_refused() {
        let by_id = json!({ "identifier": { "system": "urn:passerelle:member", "value": "M-1" } });
        let by_ref = json!({ "reference": "Patient/070707070" });
        let by_code = json!({ "type": "Patient", "identifier": { "type": { "coding": [{ "code": "Code" }] }, "value": "070707070" } });
        let answer = |patient: Value| json!({"resourceType": "CoverageEligibilityResponse", "patient": patient});
        for (sent, patient) in [
            (
                &by_id,
                json!({ "identifier": { "system": "urn:passerelle:member", "value": "M-1" } }),
            ),
            (&by_id, json!({ "reference": "Patient/42" })),
            (
                &by_id,
                json!({ "identifier": { "system": "https://mutuelle.example/members", "value": "9" } }),
            ),
            (&by_ref, json!({ "reference": "Patient/070707070" })),
            // openIMIS: its insuree's UUID, the CHFID in `display`.
            (
                &by_ref,
                json!({ "reference": "Patient/2C6D7F1A-3B4C-4D5E-8F90-112233445566", "display": "070707070" }),
            ),
            (&by_code, json!({ "reference": "Patient/2C6D7F1A-UUID" })),
            (
                &by_code,
                json!({ "identifier": { "type": { "coding": [{ "code": "UUID" }] }, "value": "2C6D7F1A" } }),
            ),
        ] {
            assert!(
                answers_the_patient_sent(&answer(patient.clone()), sent).is_ok(),
                "{patient}"
            );
        }
        assert!(
            answers_the_patient_sent(&json!({"resourceType": "ClaimResponse"}), &by_id).is_ok()
        );
        let chfid = |v: &str| json!({ "type": "Patient", "identifier": { "type": { "coding": [{ "code": "Code" }] }, "value": v } });
        assert!(answers_the_patient_sent(&answer(chfid("070707070")), &by_ref).is_ok());
        // A standard server's own id typed Code, to a question by identifier.
        assert!(answers_the_patient_sent(&answer(chfid("999999999")), &by_id).is_ok());
        for (sent, patient) in [
            (
                &by_id,
                json!({ "identifier": { "system": "urn:passerelle:member", "value": "M-2" } }),
            ),
            (&by_code, chfid("111111111")),
            // openIMIS asked about Patient/<CHFID>, answering another CHFID.
            (&by_ref, chfid("999999999")),
        ] {
            let e = answers_the_patient_sent(&answer(patient.clone()), sent).unwrap_err();
            assert_eq!(
                e.path, "CoverageEligibilityResponse.patient.identifier.value",
                "{patient}"
            );
            assert!(e.message.contains("another person"), "{e}");
            assert!(
                !e.message.contains("999999999") && !e.message.contains("111111111"),
                "{e}"
            );
        }
    }

    /// A CoverageEligibilityResponse's outcome and errors are read as a
    /// ClaimResponse's: `error`, or any `error[]` whatever the outcome, is
    /// the payer's refusal in its words (the broker answers no cover),
    /// even where an insurance says `inforce: true` with its ceilings;
    /// `queued` is asked again; an outcome FHIR does not define is
    /// malformed; `complete` and `partial` without errors are answers.
    #[test]
    fn an_eligibility_error_is_never_read_as_cover() {
        let answer = |outcome: &str, errors: Value| {
            json!({"resourceType": "CoverageEligibilityResponse", "outcome": outcome, "error": errors,
                   "disposition": "assuré inconnu",
                   "insurance": [{"inforce": true, "item": [{"category": {"text": "consultation"},
                     "benefit": [{"type": {"coding": [{"code": "benefit"}]}, "allowedMoney": {"value": 50000, "currency": "XOF"}}]}]}]})
        };
        let effect = |v: &Value| {
            parse_eligibility(v, &HashMap::new(), Some("XOF"))
                .unwrap()
                .effect()
        };
        for outcome in ["complete", "partial"] {
            let v = answer(outcome, json!([]));
            assert!(effect(&v).is_ok(), "{outcome}");
            let e = parse_eligibility(&v, &HashMap::new(), Some("XOF")).unwrap();
            assert!(eligibility_answer(&e, "M-1".into(), Vec::new(), 0).covered);
        }
        let error = json!([{"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication-error", "code": "a001", "display": "Missing Identifier"}]}}]);
        for (outcome, errors) in [
            ("error", json!([])),
            ("error", error.clone()),
            ("complete", error.clone()),
            ("partial", error.clone()),
        ] {
            match effect(&answer(outcome, errors.clone())) {
                Err(AdapterError::Rejected(r)) => {
                    // The payer's words alone, no English around them.
                    assert!(r.message.starts_with("assuré inconnu"), "{r:?}");
                    if errors != json!([]) {
                        assert!(r.message.contains("Missing Identifier"), "{r:?}");
                    }
                }
                other => panic!("{outcome} {errors}: {other:?}"),
            }
        }
        assert!(matches!(
            effect(&answer("queued", json!([]))),
            Err(AdapterError::Pending(_))
        ));
        assert!(
            matches!(effect(&answer("done", json!([]))), Err(AdapterError::Malformed(m)) if m.contains("outcome"))
        );
    }

    /// Issue 15, item 4: FHIR's four outcome codes map to the claim's
    /// lifecycle as docs/adapters.md says, in the adapter and in
    /// `translate` alike (one mapping); `partial` is final, `queued` is not.
    #[test]
    fn outcome_codes_map_to_the_claim_lifecycle() {
        use answer::OutcomeEffect as E;
        for (outcome, effect) in [
            ("complete", E::Final),
            ("partial", E::Final),
            ("queued", E::Pending),
            ("error", E::Rejected),
            ("done", E::Refused),
        ] {
            assert_eq!(outcome_effect(outcome), effect, "{outcome}");
        }
        let answer = |outcome: &str| {
            json!({"resourceType": "ClaimResponse", "outcome": outcome, "disposition": "en cours d'examen",
                   "item": [{"itemSequence": 1, "adjudication": [{"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 100, "currency": "XOF"}}]}]})
        };
        let lines = {
            let c = crate::kit::claim("oc-1");
            crate::codes::CodeMaps::default()
                .claim(&c, "K-1")
                .unwrap()
                .lines
        };
        let shares = |outcome: &str| {
            let parsed =
                parse_claim_response(&answer(outcome), Dialect::Standard, &HashMap::new(), None)
                    .unwrap();
            shares_from_response(parsed, Dialect::Standard, &lines[..1], "XOF")
        };
        assert!(shares("partial").is_ok());
        assert!(
            matches!(shares("queued"), Err(AdapterError::Pending(m)) if m.contains("en cours d'examen"))
        );
        assert!(
            matches!(shares("error"), Err(AdapterError::Rejected(r)) if r.message.contains("en cours d'examen"))
        );
        assert!(matches!(shares("done"), Err(AdapterError::Malformed(_))));
        let shown = translate::translate(
            toml::Table::new(),
            &serde_json::to_vec(&answer("queued")).unwrap(),
            "answer.json",
            "XOF",
        );
        assert!(
            shown.as_ref().is_ok_and(|v| v["claim_lifecycle"]
                .as_str()
                .is_some_and(|w| w.starts_with("pending"))),
            "{shown:?}"
        );
    }

    /// Issue 15, item 7: every resource the adapter sends, in both dialects
    /// and for every request kind, validates against the FHIR R4 (4.0.1)
    /// definitions, checked by `tools/fhir-validate.py` (fhir.resources'
    /// R4 models, from PyPI; .ci/run installs it and sets
    /// PASSERELLE_FHIR_VALIDATOR to its Python). Under CI=true the
    /// validator is required; elsewhere, without it, the test says it
    /// skips.
    #[test]
    fn every_resource_sent_validates_against_fhir_r4() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        let mut write = |name: &str, v: &Value| {
            n += 1;
            std::fs::write(
                dir.path().join(format!("{n:02}-{name}.json")),
                serde_json::to_vec_pretty(v).unwrap(),
            )
            .unwrap();
        };
        let codes = crate::codes::CodeMaps::default();
        // Claims: the kit's (two lines, one partly covered), one with a
        // quantity of 2, a scheme reason, diagnoses and a hospital stay,
        // and one with a pharmacy line (an openIMIS item).
        let mut busy = crate::kit::claim("r4-2");
        busy.lines[1].quantity = 2;
        busy.lines[1].scheme_reason = "plafond de l'acte atteint".into();
        busy.lines[1].outcome = passerelle_domain::SchemeOutcome::OutOfBasket;
        busy.diagnoses = vec!["A09".into(), "B50.9".into()];
        busy.stay = Some(passerelle_domain::Stay {
            stay_id: "SEJ-1".into(),
            admission: busy.date_of_care,
            discharge: None,
        });
        let mut medicine = crate::kit::claim("r4-3");
        medicine.lines[1].category = passerelle_domain::CareCategory::Pharmacy;
        let claims = [crate::kit::claim("r4-1"), busy, medicine];
        let oi = openimis::OpenimisSettings {
            claim_admin: "ADM-1".into(),
            claim_code_type: "Code".into(),
            visit_type: "O".into(),
            default_diagnosis: Some("Z00".into()),
        };
        for (i, c) in claims.iter().enumerate() {
            let mapped = codes.claim(c, "K-1").unwrap();
            let key = format!("key-{i}");
            write(
                "standard-Claim",
                &claim_resource(&key, c, &mapped, "MUT-KIT"),
            );
            // A prior authorization, first and as an extension; a claim
            // paid against one carries its preAuthRef.
            for extends in [None, Some("PA-7")] {
                write(
                    "standard-Claim-preauthorization",
                    &preauthorization_resource(&key, c, &mapped, "MUT-KIT", extends),
                );
            }
            let mut against = claim_resource(&key, c, &mapped, "MUT-KIT");
            against["insurance"][1]["preAuthRef"] = json!(["PA-7"]);
            write("standard-Claim-against-preauthorization", &against);
            write(
                "openimis-Claim",
                &openimis::claim(&key, c, &mapped, &oi, "$").unwrap(),
            );
            write(
                "openimis-Claim-iso",
                &openimis::claim(&key, c, &mapped, &oi, "XOF").unwrap(),
            );
            let (lines, _) = codes.lines(&c.lines);
            for planned in [&lines[..], &[]] {
                let q = kit_query(&format!("elig-{i}"), c);
                write(
                    "standard-CoverageEligibilityRequest",
                    &eligibility_resource(&q, "K-1", planned, "MUT-KIT"),
                );
                write(
                    "openimis-CoverageEligibilityRequest",
                    &openimis::eligibility(&q, "CHF-1", planned),
                );
            }
        }
        write(
            "standard-Task",
            &cancel_resource(&CancelRequest {
                idempotency_key: "cxl-1",
                adjudication_key: "key-0",
                scheme_id: "CNSS",
                claim_id: "r4-1",
                reason: "envoyée deux fois",
                partner_reference: "",
                answer_refused: false,
            }),
        );
        write(
            "standard-Task-release",
            &release_resource(&crate::CancelPreAuthorization {
                idempotency_key: "pax-1",
                partner_reference: "PA-7",
                scheme_id: "CNSS",
                authorization_id: "A-1",
                reason: "séjour annulé",
            }),
        );
        crate::kit::validate_fhir_r4(dir.path(), n);
    }

    /// Issue 15, item 6: an ExplanationOfBenefit (what some payers return
    /// instead of a ClaimResponse) is read the same way, its items by
    /// `sequence`; payment and coverage resources are refused with what
    /// they are.
    #[test]
    fn an_explanation_of_benefit_is_read_like_a_claim_response() {
        let v = json!({"resourceType": "ExplanationOfBenefit", "outcome": "complete",
            "item": [{"sequence": 1, "adjudication": [{"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 1500, "currency": "XOF"}}]}],
            "total": [{"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": 1500, "currency": "XOF"}}]});
        let r = parse_claim_response(&v, Dialect::Standard, &HashMap::new(), None).unwrap();
        assert_eq!((r.lines[0].sequence, r.lines[0].benefit), (1, 1500));
        let mut bad = v.clone();
        bad["total"][0]["amount"]["value"] = json!(2000);
        let e = parse_claim_response(&bad, Dialect::Standard, &HashMap::new(), None).unwrap_err();
        assert_eq!(e.path, "ExplanationOfBenefit.total[0].amount");
        let e = parse_claim_response(
            &json!({"resourceType": "PaymentReconciliation"}),
            Dialect::Standard,
            &HashMap::new(),
            None,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("PaymentReconciliation is no adjudication"),
            "{e}"
        );
    }

    #[test]
    fn claim_sequence_beyond_u32_is_refused_not_read_as_line_1() {
        let v = json!({"resourceType": "Claim", "item": [
            {"sequence": 4_294_967_297_u64, "net": {"value": "10", "currency": "XOF"}}]});
        let e = parse_claim(&v, &HashMap::new()).unwrap_err();
        assert_eq!(e.path, "Claim.item[0].sequence");
        let v = json!({"resourceType": "Claim", "item": [{"net": {"value": "10", "currency": "XOF"}}, {"sequence": 7}]});
        let lines = parse_claim(&v, &HashMap::new()).unwrap();
        assert_eq!(
            lines.iter().map(|l| l.sequence).collect::<Vec<_>>(),
            vec![1, 7]
        );
    }

    #[test]
    fn a_count_left_beyond_u32_is_not_read_as_none_left() {
        let v = json!({"resourceType": "CoverageEligibilityResponse", "outcome": "complete", "insurance": [
            {"inforce": true, "item": [{"category": {"text": "visits"}, "benefit": [
                {"allowedUnsignedInt": 4_294_967_296_u64}, {"allowedUnsignedInt": 23}]}]}]});
        let parsed = parse_eligibility(&v, &HashMap::new(), Some("XOF")).unwrap();
        let a = eligibility_answer(&parsed, "M-1".into(), Vec::new(), 0);
        let counts: Vec<Option<u32>> = a.ceilings.iter().map(|c| c.limit_count).collect();
        assert_eq!(counts, vec![Some(u32::MAX), Some(23)]);
    }
}
