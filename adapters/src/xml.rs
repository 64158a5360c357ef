//! The xml-http adapter: a legacy system that takes and returns XML over HTTP
//! with element names and codes of its own, described entirely by a
//! declarative mapping in the config: request templates, paths to read the
//! answer, number and date formats, SOAP 1.1, authentication. A new XML
//! partner needs no Rust.
//!
//! Safety: the answer is capped in size before it is parsed (by roxmltree),
//! nesting depth is capped, a DOCTYPE is refused (no entity expansion), and
//! a bad document is reported with the path of the offending element
//! (`Reponse/Lignes/Ligne[2]/Part`). Request templates escape values with
//! quick-xml.

mod answer;
pub mod translate;

pub use answer::*;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hyper::Method;
use passerelle_domain::money::minor_unit_digits;
use passerelle_domain::{DetailKey, LineShare, Reason, ReasonCode, date};
use serde::Deserialize;

use crate::codes::CodeMaps;
use crate::decimal::format_minor;
use crate::grpc::PartnerTls;
use crate::http::HttpClient;
use crate::registry::{PartnerContext, PartnerSettings};
use crate::{
    Adapter, AdapterError, AdjudicationRequest, CancelPreAuthorization, CancelRequest, Commitment,
    EligibilityAnswer, EligibilityQuery, PartnerAdjudication, PreAuthorizationRequest,
};

// ---------------------------------------------------------------- config

/// How the partner writes numbers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberFormat {
    /// "," as the decimal separator ("12500,00"). Default ".".
    #[serde(default)]
    pub decimal_comma: bool,
    /// Spaces group thousands ("12 500"). Default: no grouping.
    #[serde(default)]
    pub group_spaces: bool,
    /// Decimals written in requests (e.g. 2 for "12500,00"); default: the
    /// currency's.
    #[serde(default)]
    pub write_decimals: Option<u32>,
}

/// HTTP authentication.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum XmlAuth {
    /// HTTP basic: the password is read from a file.
    Basic {
        username: String,
        password_file: PathBuf,
    },
    /// A header whose value (a token) is read from a file.
    Header { name: String, value_file: PathBuf },
}

/// One operation: where to POST, the request template, how to read the answer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// Path appended to the partner's URL. Default "".
    #[serde(default)]
    pub path: String,
    /// SOAPAction for SOAP 1.1; when set, the request is wrapped in a SOAP
    /// envelope and the answer read from its Body.
    #[serde(default)]
    pub soap_action: Option<String>,
    /// The request body, with {{variables}} and {{#lines}}...{{/lines}}
    /// sections (see docs/adapters.md for the variables).
    pub template: String,
    /// Paths to read the answer.
    #[serde(default)]
    pub answer: AnswerPaths,
}

/// Paths into the answer. The first segment is the root element (inside the
/// SOAP Body); "@name" reads an attribute; names match local names
/// (namespace prefixes are ignored).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerPaths {
    /// The repeated line elements (adjudicate).
    #[serde(default)]
    pub lines: Option<String>,
    /// Relative to a line: its sequence (e.g. "@no").
    #[serde(default)]
    pub sequence: Option<String>,
    /// Relative to a line: the mutuelle share.
    #[serde(default)]
    pub share: Option<String>,
    /// Relative to a line: the mutuelle's reason, when M < R.
    #[serde(default)]
    pub reason: Option<String>,
    /// The partner's reference of the adjudication.
    #[serde(default)]
    pub reference: Option<String>,
    /// Where the answer repeats the key of the request it answers (the
    /// template's `{{key}}`; an element, or ending in `/@name` an
    /// attribute). When set, an answer without it or with another value
    /// is refused as malformed, never booked on this claim.
    #[serde(default)]
    pub key: Option<String>,
    /// An element whose presence means the request was refused; its text is
    /// the reason.
    #[serde(default)]
    pub error: Option<String>,
    /// An element (or, ending in `/@name`, an attribute) saying the partner
    /// cannot answer now (its database down, a batch running): the call is
    /// tried again later with the same key, as after an HTTP 503 ...
    #[serde(default)]
    pub busy: Option<String>,
    /// ... when its value is one of these (letter case aside); empty:
    /// whenever the element is present (required for an attribute).
    #[serde(default)]
    pub busy_values: Vec<String>,
    /// Eligibility: the element saying whether the member is covered ...
    #[serde(default)]
    pub covered: Option<String>,
    /// ... and the values that mean yes (default "true", "1", "yes", "oui").
    #[serde(default)]
    pub covered_values: Vec<String>,
    /// Prior authorization: the last date of care it covers, written in
    /// `date_format`.
    #[serde(default)]
    pub valid_until: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XmlConfig {
    /// The partner's URL, http:// or https://.
    pub url: String,
    #[serde(default = "crate::http::default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "crate::http::default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// The pool of kept-alive connections to this partner.
    #[serde(default)]
    pub pool: crate::http::PoolSettings,
    #[serde(default)]
    pub tls: Option<PartnerTls>,
    #[serde(default)]
    pub auth: Option<XmlAuth>,
    /// Date format, with %Y %m %d (e.g. "%d/%m/%Y"). Default "%Y-%m-%d".
    #[serde(default = "default_date")]
    pub date_format: String,
    #[serde(default)]
    pub numbers: NumberFormat,
    /// Largest answer parsed, bytes. Default 1 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Deepest nesting accepted. Default 32.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    pub adjudicate: Operation,
    /// Optional: without it, eligibility answers from the roster only.
    #[serde(default)]
    pub eligibility: Option<Operation>,
    pub cancel: Operation,
    /// Optional: a prior authorization (the lines and share paths of
    /// `adjudicate`'s answer, plus `reference` and `valid_until`); without
    /// it, the partner gives none.
    #[serde(default)]
    pub preauthorize: Option<Operation>,
    /// Optional: the release of a prior authorization not billed
    /// (`{{prior_reference}}` names it). Required with `preauthorize`.
    #[serde(default)]
    pub release: Option<Operation>,
    #[serde(default)]
    pub codes: CodeMaps,
}

fn default_date() -> String {
    "%Y-%m-%d".into()
}
fn default_max_bytes() -> usize {
    1024 * 1024
}
fn default_max_depth() -> usize {
    32
}

impl PartnerSettings for XmlConfig {
    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }

    fn timeout_ms(&self) -> Option<u64> {
        Some(self.timeout_ms)
    }

    fn files(&mut self) -> Vec<&mut PathBuf> {
        let mut files: Vec<&mut PathBuf> =
            self.tls.iter_mut().flat_map(PartnerTls::files).collect();
        match &mut self.auth {
            Some(XmlAuth::Basic { password_file, .. }) => files.push(password_file),
            Some(XmlAuth::Header { value_file, .. }) => files.push(value_file),
            None => {}
        }
        files
    }

    fn build(&self, _: &PartnerContext) -> Result<Arc<dyn Adapter>, String> {
        Ok(Arc::new(XmlAdapter::new(self)?))
    }
}

// ---------------------------------------------------------------- dates

/// Formats a date with %Y %m %d.
pub fn format_date(d: date::Date, fmt: &str) -> String {
    fmt.replace("%Y", &format!("{:04}", d.year()))
        .replace("%m", &format!("{:02}", d.month() as u8))
        .replace("%d", &format!("{:02}", d.day()))
}

/// Parses a date with %Y %m %d.
pub fn parse_date(s: &str, fmt: &str) -> Option<date::Date> {
    let (mut y, mut m, mut d) = (None, None, None);
    let (mut si, mut fi) = (s.trim(), fmt);
    while !fi.is_empty() {
        if let Some(rest) = fi.strip_prefix("%Y") {
            y = si.get(..4)?.parse::<i32>().ok();
            si = si.get(4..)?;
            fi = rest;
        } else if let Some(rest) = fi.strip_prefix("%m") {
            m = si.get(..2)?.parse::<u8>().ok();
            si = si.get(2..)?;
            fi = rest;
        } else if let Some(rest) = fi.strip_prefix("%d") {
            d = si.get(..2)?.parse::<u8>().ok();
            si = si.get(2..)?;
            fi = rest;
        } else {
            let c = fi.chars().next()?;
            si = si.strip_prefix(c)?;
            fi = &fi[c.len_utf8()..];
        }
    }
    if !si.is_empty() {
        return None;
    }
    date::parse(&format!("{:04}-{:02}-{:02}", y?, m?, d?))
}

// ---------------------------------------------------------------- templates

/// A template value: text, or a list of records for a section.
#[derive(Clone, Debug)]
pub enum Val {
    Text(String),
    List(Vec<HashMap<String, Val>>),
}

pub type Ctx = HashMap<String, Val>;

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// Renders {{name}} (XML-escaped) and {{#list}}...{{/list}} sections.
pub fn render(template: &str, ctx: &Ctx) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("template: unclosed {{")?;
        let tag = after[..end].trim();
        rest = &after[end + 2..];
        if let Some(name) = tag.strip_prefix('#') {
            let close = format!("{{{{/{name}}}}}");
            let body_end = rest
                .find(&close)
                .ok_or_else(|| format!("template: {{{{#{name}}}}} is never closed"))?;
            let body = &rest[..body_end];
            rest = &rest[body_end + close.len()..];
            match ctx.get(name) {
                Some(Val::List(items)) => {
                    for item in items {
                        let mut inner = ctx.clone();
                        inner.extend(item.clone());
                        out.push_str(&render(body, &inner)?);
                    }
                }
                _ => return Err(format!("template: {name} is not a list")),
            }
        } else {
            match ctx.get(tag) {
                Some(Val::Text(t)) => out.push_str(&escape(t)),
                Some(Val::List(_)) => {
                    return Err(format!("template: {tag} is a list, use {{{{#{tag}}}}}"));
                }
                None => return Err(format!("template: unknown variable {tag}")),
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A request body in a SOAP 1.1 envelope.
fn soap(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

// ---------------------------------------------------------------- adapter

pub struct XmlAdapter {
    cfg: XmlConfig,
    http: HttpClient,
    auth_header: Option<(String, String)>,
    timeout: Duration,
}

/// The most decimals `numbers.write_decimals` may ask for: ISO 4217's
/// most minor-unit digits (4). Amounts are scaled by a power of ten of
/// the difference with the currency's own, within i64 for any amount a
/// claim may hold.
pub const MAX_WRITE_DECIMALS: u32 = 4;

/// The rules of a mapping the broker checks at start, and `passerelle
/// translate` before it reads an answer with them: the decimals written
/// are at most [`MAX_WRITE_DECIMALS`], every template's variables are
/// known, and a `busy` attribute lists the values that mean "try again
/// later" (an attribute is on every answer, a success's code too: without
/// them, every answer would be put off for ever).
pub(crate) fn check_operations(cfg: &XmlConfig) -> Result<(), String> {
    if let Some(d) = cfg.numbers.write_decimals
        && d > MAX_WRITE_DECIMALS
    {
        return Err(format!(
            "numbers.write_decimals = {d}: at most {MAX_WRITE_DECIMALS} (the most decimals a currency of ISO 4217 has)"
        ));
    }
    for (what, t) in [
        ("adjudicate", Some(&cfg.adjudicate)),
        ("eligibility", cfg.eligibility.as_ref()),
        ("cancel", Some(&cfg.cancel)),
        ("preauthorize", cfg.preauthorize.as_ref()),
        ("release", cfg.release.as_ref()),
    ] {
        let Some(op) = t else { continue };
        check_template(&op.template).map_err(|e| format!("{what}.template: {e}"))?;
        if op.answer.busy.as_deref().is_some_and(|b| b.contains("/@"))
            && op.answer.busy_values.is_empty()
        {
            return Err(format!(
                "{what}.answer.busy names an attribute: busy_values must list the values that mean \"try again later\""
            ));
        }
    }
    Ok(())
}

impl XmlAdapter {
    pub fn new(cfg: &XmlConfig) -> Result<XmlAdapter, String> {
        let http = HttpClient::new(
            &cfg.url,
            cfg.tls.as_ref(),
            Duration::from_millis(cfg.connect_timeout_ms),
            &cfg.pool,
        )?;
        let auth_header = match &cfg.auth {
            None => None,
            Some(XmlAuth::Basic {
                username,
                password_file,
            }) => {
                let pass = crate::grpc::read_secret(password_file)?;
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{pass}"));
                Some(("authorization".to_string(), format!("Basic {token}")))
            }
            Some(XmlAuth::Header { name, value_file }) => {
                let v = crate::grpc::read_secret(value_file)?;
                Some((name.to_ascii_lowercase(), v))
            }
        };
        check_operations(cfg)?;
        if cfg.adjudicate.answer.lines.is_none()
            || cfg.adjudicate.answer.share.is_none()
            || cfg.adjudicate.answer.sequence.is_none()
        {
            return Err("adjudicate.answer: lines, sequence and share are required".into());
        }
        if let Some(p) = &cfg.preauthorize {
            if p.answer.lines.is_none() || p.answer.share.is_none() || p.answer.sequence.is_none() {
                return Err("preauthorize.answer: lines, sequence and share are required".into());
            }
            if cfg.release.is_none() {
                return Err(
                    "preauthorize needs a [release] operation: an authorization not billed must be released".into(),
                );
            }
        }
        Ok(XmlAdapter {
            http,
            auth_header,
            timeout: Duration::from_millis(cfg.timeout_ms),
            cfg: cfg.clone(),
        })
    }

    fn number(&self, v: i64, currency: &str) -> String {
        let digits = self
            .cfg
            .numbers
            .write_decimals
            .unwrap_or_else(|| minor_unit_digits(currency).unwrap_or(0));
        let cur_digits = minor_unit_digits(currency).unwrap_or(0);
        // Scale minor units to the written decimals.
        let scaled = if digits >= cur_digits {
            v * 10i64.pow(digits - cur_digits)
        } else {
            v / 10i64.pow(cur_digits - digits)
        };
        let mut s = format_minor(scaled, digits);
        if self.cfg.numbers.decimal_comma {
            s = s.replace('.', ",");
        }
        if self.cfg.numbers.group_spaces {
            let (int, frac) = match s.find([',', '.']) {
                Some(i) => (s[..i].to_string(), s[i..].to_string()),
                None => (s.clone(), String::new()),
            };
            let neg = int.starts_with('-');
            let digits_only = int.trim_start_matches('-');
            let mut g = String::new();
            for (i, ch) in digits_only.chars().enumerate() {
                if i > 0 && (digits_only.len() - i).is_multiple_of(3) {
                    g.push(' ');
                }
                g.push(ch);
            }
            s = format!("{}{g}{frac}", if neg { "-" } else { "" });
        }
        s
    }

    async fn call(&self, op: &Operation, body: String) -> Result<Node, AdapterError> {
        let fut = async {
            let (payload, mut headers) = match &op.soap_action {
                Some(action) => (
                    soap(&body),
                    vec![
                        ("content-type", "text/xml; charset=utf-8".to_string()),
                        ("soapaction", format!("\"{action}\"")),
                    ],
                ),
                None => (
                    body,
                    vec![("content-type", "application/xml; charset=utf-8".to_string())],
                ),
            };
            if let Some((k, v)) = &self.auth_header {
                headers.push((k.as_str(), v.clone()));
            }
            let a = self
                .http
                .send(Method::POST, &op.path, &headers, payload.into_bytes())
                .await?;
            answer_root(a.status, &a.body, self.cfg.max_bytes, self.cfg.max_depth)
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or(Err(AdapterError::Timeout(self.timeout.as_millis() as u64)))
    }
}

impl XmlAdapter {
    /// The template variables of a claim (or of planned care): the claim's
    /// own, its mapped lines and diagnoses, and `prior_reference`.
    fn claim_ctx(
        &self,
        key: &str,
        c: &passerelle_domain::Claim,
        mapped: &crate::codes::MappedClaim,
        prior_reference: Option<&str>,
    ) -> Ctx {
        let cur = c.currency.as_str();
        let lines: Vec<HashMap<String, Val>> = mapped
            .lines
            .iter()
            .map(|m| {
                let l = &m.line;
                HashMap::from([
                    ("sequence".to_string(), t(m.sequence.to_string())),
                    ("act".to_string(), t(&m.act)),
                    ("category".to_string(), t(&m.category)),
                    ("quantity".to_string(), t(l.quantity.to_string())),
                    ("billed".to_string(), t(self.number(l.billed, cur))),
                    (
                        "tariff_base".to_string(),
                        t(self.number(l.tariff_base, cur)),
                    ),
                    (
                        "scheme_share".to_string(),
                        t(self.number(l.scheme_share, cur)),
                    ),
                    (
                        "ticket_moderateur".to_string(),
                        t(self.number(l.ticket_moderateur(), cur)),
                    ),
                    ("overrun".to_string(), t(self.number(l.overrun(), cur))),
                    ("remainder".to_string(), t(self.number(l.remainder(), cur))),
                    ("outcome".to_string(), t(l.outcome.as_str())),
                ])
            })
            .collect();
        let mut ctx: Ctx = CLAIM_VARS.iter().map(|k| (k.to_string(), t(""))).collect();
        for (k, v) in [
            ("key", key.to_string()),
            ("scheme_id", c.scheme_id.clone()),
            ("claim_id", c.claim_id.clone()),
            ("member", mapped.member.clone()),
            ("beneficiary_id", c.beneficiary_id.clone()),
            ("facility", mapped.facility.clone()),
            ("invoice_number", c.invoice_number.clone()),
            (
                "date_of_care",
                format_date(c.date_of_care, &self.cfg.date_format),
            ),
            ("currency", c.currency.clone()),
            (
                "total_billed",
                self.number(mapped.lines.iter().map(|m| m.line.billed).sum(), cur),
            ),
            (
                "total_remainder",
                self.number(mapped.lines.iter().map(|m| m.line.remainder()).sum(), cur),
            ),
            ("prior_reference", prior_reference.unwrap_or("").to_string()),
        ] {
            ctx.insert(k.into(), t(v));
        }
        ctx.insert("lines".into(), Val::List(lines));
        ctx.insert(
            "diagnoses".into(),
            Val::List(
                mapped
                    .diagnoses
                    .iter()
                    .map(|d| HashMap::from([("code".to_string(), t(d))]))
                    .collect(),
            ),
        );
        ctx
    }

    /// Sends an operation with lines and reads its answer: the shares, the
    /// reference, and `valid_until` when the answer has one.
    async fn exchange(
        &self,
        op: &Operation,
        ctx: &Ctx,
        currency: &str,
    ) -> Result<(Vec<LineShare>, String, Option<date::Date>), AdapterError> {
        let body = render(&op.template, ctx).map_err(AdapterError::Malformed)?;
        let root = self.call(op, body).await?;
        let answer = read_answer(&op.answer, &root, &self.cfg.numbers, currency)?;
        // After a refusal or "try again later", which need not repeat it.
        answers_the_key(&op.answer, &root, ctx_text(ctx, "key"))?;
        let valid_until = match op.answer.valid_until.as_deref() {
            None => None,
            Some(path) => {
                let text = root
                    .select(path)
                    .into_iter()
                    .next()
                    .map(|(_, n)| n.text.trim().to_string())
                    .ok_or_else(|| AdapterError::Malformed(format!("{path}: missing")))?;
                Some(parse_date(&text, &self.cfg.date_format).ok_or_else(|| {
                    AdapterError::Malformed(format!(
                        "{path}: {text:?} is not a date in {}",
                        self.cfg.date_format
                    ))
                })?)
            }
        };
        let shares = answer
            .lines
            .into_iter()
            .map(|l| LineShare {
                sequence: l.sequence,
                mutuelle_share: l.share,
                reasons: l
                    .reason
                    .filter(|s| !s.is_empty())
                    .map(|s| vec![Reason::new(ReasonCode::PartnerRule, s)])
                    .unwrap_or_default(),
            })
            .collect();
        Ok((shares, answer.reference, valid_until))
    }
}

fn t(s: impl Into<String>) -> Val {
    Val::Text(s.into())
}

/// A text value of a template's context ("" when absent or a list).
fn ctx_text<'a>(ctx: &'a Ctx, name: &str) -> &'a str {
    match ctx.get(name) {
        Some(Val::Text(s)) => s,
        _ => "",
    }
}

fn check_template(template: &str) -> Result<(), String> {
    // Renders with every variable present, to catch typos at start-up.
    let line: HashMap<String, Val> = LINE_VARS.iter().map(|k| (k.to_string(), t("0"))).collect();
    let mut ctx: Ctx = CLAIM_VARS.iter().map(|k| (k.to_string(), t("0"))).collect();
    ctx.insert("lines".into(), Val::List(vec![line]));
    ctx.insert(
        "diagnoses".into(),
        Val::List(vec![HashMap::from([("code".to_string(), t("A00"))])]),
    );
    render(template, &ctx).map(|_| ())
}

/// Variables of every template (those an operation lacks render empty).
pub const CLAIM_VARS: &[&str] = &[
    "key",
    "adjudication_key",
    "scheme_id",
    "claim_id",
    "member",
    "beneficiary_id",
    "facility",
    "invoice_number",
    "date_of_care",
    "currency",
    "total_billed",
    "total_remainder",
    "reason",
    "prior_reference",
];
/// Variables inside {{#lines}}.
pub const LINE_VARS: &[&str] = &[
    "sequence",
    "act",
    "category",
    "quantity",
    "billed",
    "tariff_base",
    "scheme_share",
    "ticket_moderateur",
    "overrun",
    "remainder",
    "outcome",
];

#[async_trait]
impl Adapter for XmlAdapter {
    /// A mapping has no field for the member's dues.
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
        let Some(op) = &self.cfg.eligibility else {
            // No eligibility call at this partner: the roster answers.
            return Ok(EligibilityAnswer {
                covered: true,
                member_number: crate::codes::CodeMaps::shown_member(
                    q.member_number.as_deref(),
                    member,
                ),
                ..Default::default()
            });
        };
        let mut ctx: Ctx = CLAIM_VARS.iter().map(|k| (k.to_string(), t(""))).collect();
        ctx.insert("key".into(), t(&q.idempotency_key));
        ctx.insert("scheme_id".into(), t(&q.scheme_id));
        ctx.insert("member".into(), t(&member));
        ctx.insert("beneficiary_id".into(), t(&q.beneficiary_id));
        ctx.insert(
            "date_of_care".into(),
            t(format_date(q.date_of_care, &self.cfg.date_format)),
        );
        ctx.insert("currency".into(), t(&q.currency));
        ctx.insert("lines".into(), Val::List(vec![]));
        ctx.insert("diagnoses".into(), Val::List(vec![]));
        let body = render(&op.template, &ctx).map_err(AdapterError::Malformed)?;
        let root = self.call(op, body).await?;
        if let Some(e) = refusal(&op.answer, &root) {
            return Err(e);
        }
        answers_the_key(&op.answer, &root, &q.idempotency_key)?;
        let covered = read_covered(&op.answer, &root)?;
        Ok(EligibilityAnswer {
            covered,
            reason: (!covered).then(|| {
                Reason::said(
                    ReasonCode::PartnerRule,
                    "the mutuelle reports no cover in force",
                    DetailKey::PartnerNoCover,
                    [],
                )
            }),
            member_number: crate::codes::CodeMaps::shown_member(q.member_number.as_deref(), member),
            ..Default::default()
        })
    }

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
        let prior = req.prior.map(|p| p.partner_reference.as_str());
        let ctx = self.claim_ctx(req.idempotency_key, c, &mapped, prior);
        let op = &self.cfg.adjudicate;
        let (shares, reference, _) = self.exchange(op, &ctx, &c.currency).await?;
        Ok(PartnerAdjudication {
            lines: crate::codes::merge(shares, mapped.unmapped),
            partner_reference: reference,
            product: None,
            consumption: Vec::new(),
        })
    }

    async fn preauthorize(
        &self,
        req: PreAuthorizationRequest<'_>,
    ) -> Result<Commitment, AdapterError> {
        let Some(op) = &self.cfg.preauthorize else {
            return Err(AdapterError::Unsupported(
                "this mutuelle's XML mapping has no [preauthorize] operation".into(),
            ));
        };
        let c = req.planned;
        let mapped = self
            .cfg
            .codes
            .claim(c, req.member_number)
            .map_err(AdapterError::Rejected)?;
        let extends = req.replaces.map(|p| p.partner_reference.as_str());
        let ctx = self.claim_ctx(req.idempotency_key, c, &mapped, extends);
        let (shares, reference, valid_until) = self.exchange(op, &ctx, &c.currency).await?;
        Ok(Commitment {
            lines: crate::codes::merge(shares, mapped.unmapped),
            partner_reference: reference,
            valid_until,
            tolerance_bp: None,
            product: None,
            hold: Vec::new(),
        })
    }

    async fn cancel_preauthorization(
        &self,
        req: CancelPreAuthorization<'_>,
    ) -> Result<(), AdapterError> {
        let Some(op) = &self.cfg.release else {
            return Err(AdapterError::Unsupported(
                "this mutuelle's XML mapping has no [release] operation".into(),
            ));
        };
        let ctx = ending_ctx(
            req.idempotency_key,
            req.scheme_id,
            req.authorization_id,
            req.reason,
            ("prior_reference", req.partner_reference),
        );
        self.end(op, &ctx).await
    }

    async fn cancel(&self, req: CancelRequest<'_>) -> Result<(), AdapterError> {
        let ctx = ending_ctx(
            req.idempotency_key,
            req.scheme_id,
            req.claim_id,
            req.reason,
            ("adjudication_key", req.adjudication_key),
        );
        self.end(&self.cfg.cancel, &ctx).await
    }
}

impl XmlAdapter {
    /// Sends a cancel or a release: the answer says only whether the
    /// mutuelle refused it.
    async fn end(&self, op: &Operation, ctx: &Ctx) -> Result<(), AdapterError> {
        let body = render(&op.template, ctx).map_err(AdapterError::Malformed)?;
        let root = self.call(op, body).await?;
        match refusal(&op.answer, &root) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The variables of a cancel or a release: its key, scheme, id and reason,
/// the key it ends (`ends`: name and value), no lines, every other claim
/// variable empty.
fn ending_ctx(key: &str, scheme_id: &str, id: &str, reason: &str, ends: (&str, &str)) -> Ctx {
    let mut ctx: Ctx = CLAIM_VARS.iter().map(|k| (k.to_string(), t(""))).collect();
    ctx.insert("key".into(), t(key));
    ctx.insert(ends.0.into(), t(ends.1));
    ctx.insert("scheme_id".into(), t(scheme_id));
    ctx.insert("claim_id".into(), t(id));
    ctx.insert("reason".into(), t(reason));
    ctx.insert("lines".into(), Val::List(vec![]));
    ctx.insert("diagnoses".into(), Val::List(vec![]));
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_capped_and_paths_reported() {
        assert!(
            parse_xml(b"<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>", 1000, 10)
                .unwrap_err()
                .contains("DOCTYPE")
        );
        let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        assert!(
            parse_xml(deep.as_bytes(), 10_000, 32)
                .unwrap_err()
                .contains("deeper")
        );
        assert!(
            parse_xml(&vec![b' '; 2000], 1000, 10)
                .unwrap_err()
                .contains("more than")
        );
        let doc = parse_xml(
            br#"<r:Reponse xmlns:r="urn:x"><r:Lignes><r:Ligne no="1"><r:Part>1 500</r:Part></r:Ligne><r:Ligne no="2"><r:Part>&#49;2 &amp; 3</r:Part></r:Ligne></r:Lignes></r:Reponse>"#,
            10_000,
            10,
        )
        .unwrap();
        let lines = doc.select("Reponse/Lignes/Ligne");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].0, "Reponse/Lignes[1]/Ligne[2]");
        assert_eq!(lines[0].1.value("@no").as_deref(), Some("1"));
        assert_eq!(lines[1].1.value("Part").as_deref(), Some("12 & 3"));
        assert!(parse_xml(b"<a><b></a>", 100, 10).is_err());
    }

    /// An older Windows system's answer in ISO-8859-1 or Windows-1252 is
    /// read as its declaration says; UTF-8 bytes under such a declaration
    /// (a common slip) are read as UTF-8, as before; bytes that are not
    /// UTF-8 under an encoding not read are refused, naming it.
    #[test]
    fn a_single_byte_encoding_is_read_as_declared() {
        let mut latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r><m>Adh".to_vec();
        latin1.extend([0xe9]); // é
        latin1.extend(b"rent \x80 r\xe9sili\xe9</m></r>");
        let doc = parse_xml(&latin1, 1000, 10).unwrap();
        assert_eq!(doc.value("m").as_deref(), Some("Adhérent € résilié"));
        let cp = b"<?xml version='1.0' encoding='windows-1252' standalone='yes'?><r>\xe0</r>";
        assert_eq!(
            parse_xml(cp, 1000, 10).unwrap().value(".").as_deref(),
            Some("à")
        );
        let utf8 = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><r>é</r>";
        assert_eq!(
            parse_xml(utf8.as_bytes(), 1000, 10)
                .unwrap()
                .value(".")
                .as_deref(),
            Some("é")
        );
        // Declared Latin-1, written in UTF-8 (with a no-break space in an
        // amount, and a byte order mark): read as UTF-8.
        let slip = "\u{feff}<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r><m>Adhérent</m><p>12\u{a0}500</p></r>";
        let doc = parse_xml(slip.as_bytes(), 1000, 10).unwrap();
        assert_eq!(doc.value("m").as_deref(), Some("Adhérent"));
        assert_eq!(doc.value("p").as_deref(), Some("12\u{a0}500"));
        // Undeclared: UTF-8, as before.
        let e = parse_xml(b"<r>\xe9</r>", 1000, 10).unwrap_err();
        assert!(e.starts_with("not UTF-8"), "{e}");
        let e = parse_xml(
            b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><r>\xe9</r>",
            1000,
            10,
        )
        .unwrap_err();
        assert!(e.contains("\"UTF-16\" is not read"), "{e}");
    }

    /// The refusal at `answer.error` says the mutuelle's words alone; an
    /// empty or zero error element, as many systems write in a success,
    /// refuses nothing; a code alone is said.
    #[test]
    fn an_error_element_refuses_only_when_it_says_something() {
        let paths = AnswerPaths {
            error: Some("reponse/erreur".into()),
            ..Default::default()
        };
        let said = |doc: &str| {
            let root = parse_xml(doc.as_bytes(), 10_000, 10).unwrap();
            refusal(&paths, &root).map(|e| match e {
                AdapterError::Rejected(r) => r.message,
                e => panic!("{e:?}"),
            })
        };
        assert_eq!(said("<reponse><ok/></reponse>"), None);
        assert_eq!(said("<reponse><erreur/></reponse>"), None);
        assert_eq!(
            said("<reponse><erreur code=\"0\"></erreur></reponse>"),
            None
        );
        assert_eq!(
            said("<reponse><erreur code=\"00\"> 0 </erreur></reponse>"),
            None
        );
        assert_eq!(
            said("<reponse><erreur code=\"12\">Adhérent AGRI-0004 inconnu</erreur></reponse>")
                .as_deref(),
            Some("Adhérent AGRI-0004 inconnu")
        );
        assert_eq!(
            said("<reponse><erreur><code>12</code><libelle>Adhérent inconnu</libelle></erreur></reponse>")
                .as_deref(),
            Some("12 Adhérent inconnu")
        );
        assert_eq!(
            said("<reponse><erreur code=\"12\"/></reponse>").as_deref(),
            Some("erreur code=12")
        );
    }

    /// An answer that both refuses (its `error` element) and pays lines
    /// cannot be read one way: refused as an answer (malformed, so that
    /// the partner is sent the cancel of what it may have booked), where
    /// the refusal alone left its booking standing. A refusal alone is a
    /// refusal.
    #[tokio::test]
    async fn an_answer_that_refuses_and_pays_is_refused_as_an_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let serving = body.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut buf).await;
                let b = serving.lock().unwrap().clone();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                    b.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "kit-pass").unwrap();
        let cfg: XmlConfig = toml::from_str(
            &include_str!("../kit/xml-a.toml")
                .replace("{URL}", &format!("http://{addr}"))
                .replace("{SECRET}", &secret.display().to_string()),
        )
        .unwrap();
        let claim = crate::kit::claim("C-BOTH");
        // The claim asked of a partner read with `cfg`.
        async fn asked(
            cfg: &XmlConfig,
            claim: &passerelle_domain::Claim,
        ) -> Result<crate::PartnerAdjudication, AdapterError> {
            XmlAdapter::new(cfg)
                .unwrap()
                .adjudicate(crate::AdjudicationRequest {
                    idempotency_key: "k-both",
                    claim,
                    member_number: "K-1",
                    member: None,
                    prior: None,
                    unread_ceilings: false,
                })
                .await
        }
        let ask = || asked(&cfg, &claim);
        *body.lock().unwrap() = "<Reponse><Erreur>code 12</Erreur><Reference>R-1</Reference>\
             <Ligne no=\"1\"><Part>1 500</Part></Ligne><Ligne no=\"2\"><Part>400</Part></Ligne></Reponse>"
            .into();
        match ask().await {
            Err(AdapterError::Malformed(m)) => {
                assert!(
                    m.contains("both refuses (code 12) and answers 2 line(s)"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        *body.lock().unwrap() = "<Reponse><Erreur>Adhérent inconnu</Erreur></Reponse>".into();
        match ask().await {
            Err(AdapterError::Rejected(r)) => assert_eq!(r.message, "Adhérent inconnu"),
            other => panic!("{other:?}"),
        }
        // A partner that echoes the request's key (`answer.key`): an
        // answer for another request, or one that does not say, is
        // refused as malformed, never booked on this claim; its own is
        // read; a refusal need not repeat it.
        let mut keyed = cfg.clone();
        keyed.adjudicate.answer.key = Some("Reponse/@cle".into());
        let ask = || asked(&keyed, &claim);
        let paying = |cle: &str| {
            format!(
                "<Reponse{cle}><Reference>R-1</Reference><Ligne no=\"1\"><Part>1 500</Part></Ligne><Ligne no=\"2\"><Part>400</Part></Ligne></Reponse>"
            )
        };
        for (cle, said) in [(" cle=\"k-other\"", "\"k-other\""), ("", "missing")] {
            *body.lock().unwrap() = paying(cle);
            match ask().await {
                Err(AdapterError::Malformed(m)) => {
                    assert!(m.starts_with("Reponse/@cle") && m.contains(said), "{m}")
                }
                other => panic!("{cle}: {other:?}"),
            }
        }
        *body.lock().unwrap() = paying(" cle=\"k-both\"");
        let a = ask().await.unwrap();
        assert_eq!(a.partner_reference, "R-1");
        *body.lock().unwrap() = "<Reponse><Erreur>Adhérent inconnu</Erreur></Reponse>".into();
        assert!(matches!(ask().await, Err(AdapterError::Rejected(_))));
    }

    /// A plain XML answer that says "try again later" at `busy` (an
    /// element or an attribute, one of `busy_values`) is a transient
    /// failure, said with its words; another value reads on as usual.
    #[test]
    fn an_answer_that_says_try_again_later_is_transient() {
        let paths = AnswerPaths {
            error: Some("reponse/erreur".into()),
            busy: Some("reponse/statut/@code".into()),
            busy_values: vec!["99".into()],
            ..Default::default()
        };
        let read = |doc: &str| {
            let root = parse_xml(doc.as_bytes(), 10_000, 10).unwrap();
            refusal(&paths, &root)
        };
        match read(
            "<reponse><statut code=\"99\">Base de données indisponible, réessayez plus tard</statut></reponse>",
        ) {
            Some(e @ AdapterError::Unavailable(_)) => {
                assert!(e.is_transient());
                assert!(
                    e.to_string().contains("Base de données indisponible"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(read("<reponse><statut code=\"00\">ACCEPTE</statut></reponse>").is_none());
        let element = AnswerPaths {
            busy: Some("reponse/indisponible".into()),
            ..Default::default()
        };
        let root = parse_xml(b"<reponse><indisponible/></reponse>", 1000, 10).unwrap();
        assert!(matches!(
            refusal(&element, &root),
            Some(AdapterError::Unavailable(m)) if m == "the mutuelle asks to try again later"
        ));
        // An attribute without its values is refused at start.
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "kit-pass").unwrap();
        let text = include_str!("../kit/xml-a.toml")
            .replace("{URL}", "http://127.0.0.1:9")
            .replace("{SECRET}", &secret.display().to_string())
            .replace(
                "error = \"Reponse/Erreur\"\n\n[eligibility]",
                "error = \"Reponse/Erreur\"\nbusy = \"Reponse/@statut\"\n\n[eligibility]",
            );
        assert!(text.contains("busy = "), "the kit's table changed");
        let cfg: XmlConfig = toml::from_str(&text).unwrap();
        let e = XmlAdapter::new(&cfg).err().expect("refused");
        assert!(
            e.contains("adjudicate.answer.busy names an attribute"),
            "{e}"
        );
    }

    /// `write_decimals` past any currency's is refused at start (and by
    /// `translate`): from 19 its power of ten overflowed, and every amount
    /// sent was wrong, or the adapter panicked.
    #[test]
    fn write_decimals_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "kit-pass").unwrap();
        let text = include_str!("../kit/xml-a.toml")
            .replace("{URL}", "http://127.0.0.1:9")
            .replace("{SECRET}", &secret.display().to_string());
        let mut cfg: XmlConfig = toml::from_str(&text).unwrap();
        cfg.numbers.write_decimals = Some(MAX_WRITE_DECIMALS);
        cfg.numbers.group_spaces = false;
        let a = XmlAdapter::new(&cfg).expect("four decimals are taken");
        assert_eq!(a.number(1_000_000_000_000, "XOF"), "1000000000000.0000");
        cfg.numbers.write_decimals = Some(MAX_WRITE_DECIMALS + 1);
        let e = XmlAdapter::new(&cfg).err().expect("refused");
        assert!(e.contains("numbers.write_decimals = 5: at most 4"), "{e}");
        cfg.numbers.write_decimals = Some(64);
        assert!(check_operations(&cfg).is_err());
    }

    #[test]
    fn the_deepest_document_the_size_cap_allows_is_refused_without_overflow() {
        let levels = (1 << 20) / 7;
        let deep = format!("{}{}", "<a>".repeat(levels), "</a>".repeat(levels));
        assert!(deep.len() <= 1 << 20);
        let e = parse_xml(deep.as_bytes(), 1 << 20, 32).unwrap_err();
        assert!(e.contains("deeper") || e.contains("depth"), "{e}");
    }

    #[test]
    fn text_joins_cdata_and_references_and_attributes_are_normalized() {
        let doc = parse_xml(
            b"<r a=\"x&#10;y\">1<![CDATA[2<]]>&amp;3<!-- c --><?pi x?>4<c/></r>",
            1000,
            10,
        )
        .unwrap();
        assert_eq!(doc.value(".").as_deref(), Some("12<&34"));
        assert_eq!(doc.value("@a").as_deref(), Some("x\ny"));
        assert!(parse_xml(b"<a>&nope;</a>", 100, 10).is_err());
        assert!(parse_xml(b"<a/><b/>", 100, 10).is_err());
    }

    #[test]
    fn templates_and_dates() {
        let mut ctx: Ctx = HashMap::from([("key".to_string(), t("k<1>"))]);
        ctx.insert(
            "lines".into(),
            Val::List(vec![
                HashMap::from([("n".to_string(), t("1"))]),
                HashMap::from([("n".to_string(), t("2"))]),
            ]),
        );
        assert_eq!(
            render(
                "<K>{{key}}</K>{{#lines}}<L>{{n}}{{key}}</L>{{/lines}}",
                &ctx
            )
            .unwrap(),
            "<K>k&lt;1&gt;</K><L>1k&lt;1&gt;</L><L>2k&lt;1&gt;</L>"
        );
        assert!(
            render("{{nope}}", &ctx)
                .unwrap_err()
                .contains("unknown variable")
        );
        let d = date::parse("2026-11-20").unwrap();
        assert_eq!(format_date(d, "%d/%m/%Y"), "20/11/2026");
        assert_eq!(format_date(d, "%Y%m%d"), "20261120");
        assert_eq!(parse_date("20/11/2026", "%d/%m/%Y"), Some(d));
        assert_eq!(parse_date("20261120", "%Y%m%d"), Some(d));
        assert_eq!(parse_date("2026-11-20x", "%Y-%m-%d"), None);
    }
}
