//! What each client command does: one gRPC call (or a stream), then a table
//! or JSON on stdout. Errors go to stderr, with every wrong field. This file
//! holds what they share (the connection, the caller's certificate, error
//! wording); one module per group of commands.

mod approvals;
mod certs;
mod claims;
mod members;
mod operator;
mod periods;
mod products;

use approvals::{approvals, proposed};
pub use certs::certs;
use claims::{claim, eligibility};
use members::{opening_balances, roster_import};
use operator::admin_cmd;
pub use periods::statement_csv;
use periods::{period, statement};
use products::{products, read_products};

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use passerelle_domain::Product;
use passerelle_proto::admin::v1 as admin;
use passerelle_proto::common::v1::ReasonCode;
use passerelle_proto::product::v1 as product;
use passerelle_proto::roster::v1 as roster;
use passerelle_proto::scheme::v1 as scheme;
use passerelle_proto::settlement::v1 as settlement;
use serde_json::Value;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::identity::Role;
use tonic_types::StatusExt;

use crate::cli::output::{Lang, Table, when};
use crate::cli::roster_csv::RosterFile;
use crate::cli::{
    AdminCmd, ApprovalsCmd, ClaimCmd, Client, ClientCmd, PeriodCmd, ProductsCmd, RosterCmd,
    StatementCmd,
};

/// A command's failure, already worded for the user.
pub struct Failure(pub String);

/// A refusal of the broker, in the process's language: what it means (from
/// the catalogue, by its ErrorInfo reason, else its code), the broker's own
/// words, and the code and reason as they are (for scripts and support).
impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        if let Some(status) = not_grpc(&s) {
            return Failure(
                Lang::of_process()
                    .catalogue()
                    .t_args("cli-not-grpc", &[("status", &status)]),
            );
        }
        let mut msg = format!(
            "{} [{:?}",
            Lang::of_process().catalogue().refusal(&s),
            s.code()
        );
        if let Some(info) = s.get_details_error_info() {
            msg.push_str(&format!(", {}", info.reason));
        }
        msg.push(']');
        Failure(msg)
    }
}

/// The HTTP status of an answer given in HTTP but not in gRPC: the
/// console's or the metrics' address given as `--broker` (a page, a 404),
/// or a proxy in front of no broker. Read from tonic's own two messages
/// for it: no `grpc-status`, the HTTP status mapped to a code; or a body
/// that is no gRPC message (an HTML page's `<` read as a compression
/// flag), the response's status named.
fn not_grpc(s: &tonic::Status) -> Option<String> {
    let m = s.message();
    if let Some(status) =
        m.strip_prefix("grpc-status header missing, mapped from HTTP status code ")
    {
        // A proxy in front of a broker that is restarting or overloaded
        // answers these: the broker's address, unavailable for now, said
        // as any unavailable broker is (its code kept for scripts).
        return (!["429", "502", "503", "504"].contains(&status.trim()))
            .then(|| status.trim().to_string());
    }
    if !m.starts_with("protocol error: received message with invalid compression flag") {
        return None;
    }
    m.split_once("while receiving response with status: ")
        .and_then(|(_, status)| status.split_whitespace().next())
        .map(str::to_string)
}

type Out = Result<(), Failure>;

/// Largest answer the client reads (a roster import's list of changes, a
/// payee's remittance advice): what the broker may send for its largest
/// import (the settlement and roster services' 16 × `max_message_bytes`).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

struct Ctx {
    channel: Channel,
    json: bool,
    lang: Lang,
}

impl Ctx {
    /// `--json`: the answer of the call as it is, in the proto3 canonical
    /// JSON mapping (`passerelle_proto::json`): lowerCamelCase names,
    /// 64-bit integers (amounts, times) as strings, enums by name. The same
    /// form as the JSON door; docs/cli.md.
    fn print<M: prost::Message + prost::Name>(&self, m: &M) {
        self.print_value(passerelle_proto::json::to_json(m));
    }

    /// [`Ctx::print`] with one field the command adds to the answer (what
    /// the client itself did, such as the rows it skipped).
    fn print_with<M: prost::Message + prost::Name>(&self, m: &M, key: &str, extra: Value) {
        let mut v = passerelle_proto::json::to_json(m);
        if let Value::Object(o) = &mut v {
            o.insert(key.to_string(), extra);
        }
        self.print_value(v);
    }

    fn print_value(&self, v: Value) {
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
}

/// The party a command acts for, which picks its dev certificate.
fn acting_for(cmd: &ClientCmd) -> Result<(Role, String), Failure> {
    Ok(match cmd {
        ClientCmd::Eligibility { scheme, .. } => (Role::Scheme, scheme.clone()),
        ClientCmd::Claim(ClaimCmd::Submit { file })
        | ClientCmd::Claim(ClaimCmd::Authorize { file }) => {
            let f = crate::cli::claim_file::ClaimFile::read(file).map_err(Failure)?;
            (Role::Scheme, f.scheme_id)
        }
        ClientCmd::Claim(ClaimCmd::Authorization { scheme, .. })
        | ClientCmd::Claim(ClaimCmd::Release { scheme, .. })
        | ClientCmd::Claim(ClaimCmd::Get { scheme, .. })
        | ClientCmd::Claim(ClaimCmd::Notice { scheme, .. })
        | ClientCmd::Claim(ClaimCmd::Cancel { scheme, .. }) => (Role::Scheme, scheme.clone()),
        ClientCmd::Claim(ClaimCmd::List {
            scheme, mutuelle, ..
        }) => match (scheme, mutuelle) {
            (Some(s), _) => (Role::Scheme, s.clone()),
            (None, Some(m)) => (Role::Mutuelle, m.clone()),
            (None, None) => (Role::Operator, crate::dev::DEV_OPERATOR.to_string()),
        },
        ClientCmd::Roster(RosterCmd::Import { partner, .. })
        | ClientCmd::Roster(RosterCmd::Opening { partner, .. }) => {
            (Role::Mutuelle, partner.clone())
        }
        ClientCmd::Products(ProductsCmd::List { partner }) => (Role::Mutuelle, partner.clone()),
        ClientCmd::Products(ProductsCmd::Import { file }) => {
            let first = read_products(file)?
                .into_iter()
                .next()
                .map(|p| p.mutuelle_id)
                .unwrap_or_default();
            (Role::Mutuelle, first)
        }
        ClientCmd::Period(PeriodCmd::List { partner, .. })
        | ClientCmd::Period(PeriodCmd::Close { partner, .. })
        | ClientCmd::Period(PeriodCmd::Settle { partner, .. })
        | ClientCmd::Statement(StatementCmd::Show { partner, .. })
        | ClientCmd::Statement(StatementCmd::Export { partner, .. })
        | ClientCmd::Statement(StatementCmd::Remittance { partner, .. }) => {
            (Role::Mutuelle, partner.clone())
        }
        ClientCmd::Admin(_) => (Role::Operator, crate::dev::DEV_OPERATOR.to_string()),
        ClientCmd::Approvals(
            ApprovalsCmd::List { partner, .. }
            | ApprovalsCmd::Approve { partner, .. }
            | ApprovalsCmd::Reject { partner, .. },
        ) => (Role::Mutuelle, partner.clone()),
    })
}

/// The operator certificate to use from `certs` when the dev operator's is
/// not there: the one `operator-*.crt` the folder holds. Several: an error
/// naming them.
fn only_operator(certs: &std::path::Path, lang: Lang) -> Result<Option<String>, Failure> {
    let Ok(entries) = std::fs::read_dir(certs) else {
        return Ok(None);
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix("operator-")?
                .strip_suffix(".crt")
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.pop()),
        _ => Err(Failure(lang.catalogue().t_args(
            "cli-several-operators",
            &[
                ("folder", &certs.display().to_string()),
                ("ids", &ids.join(", ")),
            ],
        ))),
    }
}

/// TLS material for an https:// broker: --cert/--key, else the certificate
/// of the party the command acts for, from --certs.
fn tls_for(client: &Client, cmd: &ClientCmd, lang: Lang) -> Result<ClientTlsConfig, Failure> {
    let ca_path = client
        .ca
        .clone()
        .unwrap_or_else(|| client.certs.join("ca.crt"));
    let (cert, key) = match (&client.cert, &client.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (Some(_), None) | (None, Some(_)) => {
            return Err(Failure(lang.t("--cert and --key go together").into()));
        }
        (None, None) => {
            let (role, mut id) = acting_for(cmd)?;
            let pki = crate::pki::Pki::new(&client.certs);
            if role == Role::Operator
                && !pki.client_paths(role, &id).0.exists()
                && let Some(other) = only_operator(&client.certs, lang)?
            {
                id = other;
            }
            let (c, k) = pki.client_paths(role, &id);
            if !c.exists() {
                return Err(Failure(lang.catalogue().t_args(
                    "cli-no-certificate",
                    &[
                        ("role", role.as_str()),
                        ("id", &id),
                        ("dir", &client.certs.display().to_string()),
                    ],
                )));
            }
            (c, k)
        }
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| {
            Failure(lang.catalogue().t_args(
                "cli-cannot-read",
                &[
                    ("path", &p.display().to_string()),
                    ("detail", &e.to_string()),
                ],
            ))
        })
    };
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&ca_path)?))
        .identity(Identity::from_pem(read(&cert)?, read(&key)?)))
}

/// Runs one client command.
pub async fn run(client: Client, cmd: ClientCmd) -> ExitCode {
    let lang = Lang::detect(client.lang);
    let tls = if client.broker.starts_with("https://") {
        match tls_for(&client, &cmd, lang) {
            Ok(t) => Some(t),
            Err(Failure(m)) => {
                eprintln!("{} {m}", Lang::of_process().t("error:"));
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let channel = match connect(&client.broker, tls, lang).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{} {e}", Lang::of_process().t("error:"));
            return ExitCode::FAILURE;
        }
    };
    let ctx = Ctx {
        channel,
        json: client.json,
        lang,
    };
    let result = match cmd {
        ClientCmd::Eligibility {
            scheme,
            beneficiary,
            date,
            mutuelle,
            member,
        } => eligibility(&ctx, scheme, beneficiary, date, mutuelle, member).await,
        ClientCmd::Claim(c) => claim(&ctx, c).await,
        ClientCmd::Roster(RosterCmd::Import {
            file,
            partner,
            dry_run,
            as_of,
            skip_bad_rows,
            no_end_dating,
        }) => {
            roster_import(
                &ctx,
                &file,
                partner,
                dry_run,
                as_of,
                skip_bad_rows,
                no_end_dating,
            )
            .await
        }
        ClientCmd::Roster(RosterCmd::Opening {
            file,
            partner,
            dry_run,
        }) => opening_balances(&ctx, &file, partner, dry_run).await,
        ClientCmd::Products(c) => products(&ctx, c).await,
        ClientCmd::Period(c) => period(&ctx, c).await,
        ClientCmd::Statement(c) => statement(&ctx, c).await,
        ClientCmd::Admin(c) => admin_cmd(&ctx, c).await,
        ClientCmd::Approvals(c) => approvals(&ctx, c).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(m)) => {
            eprintln!("{} {m}", Lang::of_process().t("error:"));
            ExitCode::FAILURE
        }
    }
}

/// Whether the server at `url` (http://) answers plaintext HTTP/2: the
/// client preface and an empty SETTINGS frame, answered by the server's
/// SETTINGS. A TLS broker closes (or sends a TLS alert) instead. `None`:
/// no TCP connection at all (the normal error says why).
async fn speaks_plaintext_h2(url: &str) -> Option<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let uri: tonic::transport::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let probe = async {
        let mut s = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        if s.write_all(&hello).await.is_err() {
            return Some(false);
        }
        let mut head = [0u8; 9];
        Some(s.read_exact(&mut head).await.is_ok() && head[3] == 4)
    };
    tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .ok()
        .flatten()
}

async fn connect(url: &str, tls: Option<ClientTlsConfig>, lang: Lang) -> Result<Channel, String> {
    if tls.is_none() && speaks_plaintext_h2(url).await == Some(false) {
        let https = with_scheme(url, "https");
        return Err(lang
            .catalogue()
            .t_args("cli-needs-tls", &[("url", url), ("https", &https)]));
    }
    let mut endpoint = Endpoint::from_shared(url.to_string())
        // The parser's "invalid URI" says less than what to write.
        .map_err(|_| {
            lang.catalogue()
                .t_args("cli-broker-not-an-address", &[("url", url)])
        })?
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| format!("tls: {e}"))?;
    }
    endpoint.connect().await.map_err(|e| {
        // The transport's own words ("transport error") add nothing;
        // the innermost cause says what failed (the system's words:
        // connection refused, no route, a name not found...).
        let mut cause: &dyn std::error::Error = &e;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        let detail = cause.to_string();
        let http = with_scheme(url, "http");
        lang.catalogue().t_args(
            unreachable_key(&e),
            &[("url", url), ("detail", &detail), ("http", &http)],
        )
    })
}

/// The catalogue's sentence for a connection that failed: the two
/// mistakes a person makes with TLS, told apart by rustls's own error
/// anywhere in the chain (a plaintext development broker asked for TLS;
/// a CA that did not sign the broker's certificate), else "cannot reach".
fn unreachable_key(e: &(dyn std::error::Error + 'static)) -> &'static str {
    use rustls::{CertificateError, Error as Tls, InvalidMessage};
    let mut at = Some(e);
    while let Some(c) = at {
        // An io::Error carries rustls's error inside it, not as its source.
        let tls = c.downcast_ref::<Tls>().or_else(|| {
            c.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<Tls>())
        });
        match tls {
            Some(Tls::InvalidMessage(InvalidMessage::InvalidContentType)) => return "cli-not-tls",
            Some(Tls::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                return "cli-unknown-issuer";
            }
            _ => at = c.source(),
        }
    }
    "cli-unreachable"
}

/// `url` with `scheme` instead of its own, or before it when it has none
/// ("127.0.0.1:50051").
fn with_scheme(url: &str, scheme: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    format!("{scheme}://{rest}")
}

/// Every (field, words) a refusal lists: its field violations, then its
/// precondition failures' (subject, words).
fn status_violations(s: &tonic::Status) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    if let Some(br) = s.get_details_bad_request() {
        found.extend(
            br.field_violations
                .into_iter()
                .map(|v| (v.field, v.description)),
        );
    }
    if let Some(pf) = s.get_details_precondition_failure() {
        found.extend(
            pf.violations
                .into_iter()
                .map(|v| (v.subject, v.description)),
        );
    }
    found
}

/// Prints the field violations of an INVALID_ARGUMENT (and the violations
/// of a FAILED_PRECONDITION), mapping "members[i]..." to lines of a file,
/// and a product period's fields to the file's columns, when a map is given.
fn violations(s: &tonic::Status, lines: Option<&[u64]>) -> String {
    let lang = Lang::of_process();
    let mut out = String::new();
    for (f, description) in status_violations(s) {
        // Without a file to map to, a violation the status's message
        // already says (quoted after "the broker says") is not said twice.
        if lines.is_none() && s.message().contains(&format!("{f}: {description}")) {
            continue;
        }
        let mut field = f.clone();
        if let (Some(lines), Some(rest)) = (lines, f.strip_prefix("members["))
            && let Some((i, tail)) = rest.split_once(']')
            && let Ok(i) = i.parse::<usize>()
            && let Some(line) = lines.get(i)
        {
            field = format!(
                "{} {line}{} {}",
                lang.t("line"),
                lang.colon(),
                file_column(tail.trim_start_matches('.'))
            );
        }
        out.push_str(&format!("\n  {field}{} {description}", lang.colon()));
    }
    out
}

/// A member field path as the roster file's column: "products[1].start_date"
/// is column product_start of the member's second product row.
fn file_column(tail: &str) -> String {
    match passerelle_files::roster_csv::column_of(tail) {
        (column, 0) => column.to_string(),
        (column, j) => Lang::of_process().catalogue().t_args(
            "cli-product-row",
            &[("column", column), ("row", &(j + 1).to_string())],
        ),
    }
}

fn status_failure(s: tonic::Status, lines: Option<&[u64]>) -> Failure {
    let details = violations(&s, lines);
    let Failure(m) = Failure::from(s);
    Failure(format!("{m}{details}"))
}

/// A reason as a person reads it, then its code. The broker's own reasons
/// in the person's language with their figures (`Lang::reason_words` of
/// the console, amounts in `currency`); a partner's words as given, in
/// French after the catalogue's words for the code.
fn reason_text(l: Lang, r: &passerelle_proto::common::v1::Reason, currency: &str) -> String {
    let name = reason_name(r.code);
    if let Some(said) = l
        .catalogue()
        .detail(&r.detail_key, &r.detail_args, currency)
    {
        return format!("{said} ({name})");
    }
    let message = &r.message;
    match l {
        Lang::Fr => {
            let key = format!("reason-{name}");
            let words = l.catalogue().t(&key);
            if words == key || message.is_empty() {
                format!("{message} ({name})")
            } else {
                format!("{words} ({name}) : {message}")
            }
        }
        Lang::En => format!("{message} ({name})"),
    }
}

fn reason_name(code: i32) -> String {
    ReasonCode::try_from(code)
        .map(|c| {
            c.as_str_name()
                .trim_start_matches("REASON_CODE_")
                .to_string()
        })
        .unwrap_or_else(|_| code.to_string())
}

/// An enum value's proto name without its prefix, in lower case
/// (`CLAIM_STATE_PENDING_PARTNER` is "pending_partner"): the words the
/// tables translate (`Lang::state`). One source, the contract's own names.
fn enum_word(proto_name: Option<&str>, prefix: &str) -> String {
    proto_name.map_or_else(
        || "unknown".to_string(),
        |n| n.trim_start_matches(prefix).to_lowercase(),
    )
}

fn claim_state_name(s: i32) -> String {
    let name = scheme::ClaimState::try_from(s)
        .ok()
        .filter(|s| *s != scheme::ClaimState::Unspecified);
    enum_word(name.map(|s| s.as_str_name()), "CLAIM_STATE_")
}

#[allow(
    clippy::disallowed_methods,
    reason = "the client's today (a command's default date), not the broker's clock"
)]
fn today() -> String {
    passerelle_domain::date::format(time::OffsetDateTime::now_utc().date())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rustls's error is found where the transport puts it (inside an
    /// io::Error, under the transport's own errors), and only the two
    /// mistakes it names change the sentence.
    #[test]
    fn a_tls_mistake_is_told_apart_from_an_unreachable_broker() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("transport error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let wrapped =
            |e: rustls::Error| Outer(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        let plaintext = wrapped(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(unreachable_key(&plaintext), "cli-not-tls");
        let issuer = wrapped(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert_eq!(unreachable_key(&issuer), "cli-unknown-issuer");
        let expired = wrapped(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        ));
        assert_eq!(unreachable_key(&expired), "cli-unreachable");
        let refused = Outer(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(unreachable_key(&refused), "cli-unreachable");
        // A rustls error met as itself (not inside an io::Error).
        let bare = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert_eq!(unreachable_key(&bare), "cli-unknown-issuer");
    }

    /// An answer in HTTP that is not gRPC is told apart from the broker's
    /// refusals by tonic's two messages for it; a broker's own status is
    /// not.
    #[test]
    fn an_answer_that_is_not_grpc_is_told_apart() {
        let mapped = tonic::Status::unimplemented(
            "grpc-status header missing, mapped from HTTP status code 404",
        );
        assert_eq!(not_grpc(&mapped).as_deref(), Some("404"));
        let page = tonic::Status::internal(
            "protocol error: received message with invalid compression flag: 60 (valid flags are 0 and 1) while receiving response with status: 404 Not Found",
        );
        assert_eq!(not_grpc(&page).as_deref(), Some("404"));
        let said = Failure::from(page).0;
        assert!(said.contains("404)") && !said.contains("cli-"), "{said}");
        for broker in [
            tonic::Status::unavailable(
                "grpc-status header missing, mapped from HTTP status code 503",
            ),
            tonic::Status::unimplemented("unknown method"),
            tonic::Status::internal(
                "Error decompressing: x, while receiving response with status: 200 OK",
            ),
            tonic::Status::not_found("claim CNSS/X not found"),
        ] {
            assert_eq!(not_grpc(&broker), None, "{broker:?}");
        }
    }

    #[test]
    fn a_scheme_is_set_or_replaced() {
        assert_eq!(
            with_scheme("127.0.0.1:50051", "https"),
            "https://127.0.0.1:50051"
        );
        assert_eq!(with_scheme("https://h:1", "http"), "http://h:1");
        assert_eq!(with_scheme("http://h:1", "https"), "https://h:1");
    }
}
