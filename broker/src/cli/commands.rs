//! What each client command does: one gRPC call (or a stream), then a table
//! or JSON on stdout. Errors go to stderr, with every wrong field.

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
use serde_json::{Value, json};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::identity::Role;
use tonic_types::StatusExt;

use super::output::{Lang, Table, when};
use super::roster_csv::RosterFile;
use super::{
    AdminCmd, ClaimCmd, Client, ClientCmd, PeriodCmd, ProductsCmd, RosterCmd, StatementCmd,
};

/// A command's failure, already worded for the user.
pub struct Failure(pub String);

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        let mut msg = format!("{:?}: {}", s.code(), s.message());
        if let Some(info) = s.get_details_error_info() {
            msg.push_str(&format!(" [{}]", info.reason));
        }
        Failure(msg)
    }
}

type Out = Result<(), Failure>;

/// Largest answer the client reads (a roster import's list of changes):
/// what the broker may send for its largest import.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

struct Ctx {
    channel: Channel,
    json: bool,
    lang: Lang,
}

impl Ctx {
    fn print_json(&self, v: Value) {
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
}

/// The party a command acts for, which picks its dev certificate.
fn acting_for(cmd: &ClientCmd) -> Result<(Role, String), Failure> {
    Ok(match cmd {
        ClientCmd::Eligibility { scheme, .. } => (Role::Scheme, scheme.clone()),
        ClientCmd::Claim(ClaimCmd::Submit { file }) => {
            let f = super::claim_file::ClaimFile::read(file).map_err(Failure)?;
            (Role::Scheme, f.scheme_id)
        }
        ClientCmd::Claim(ClaimCmd::Get { scheme, .. })
        | ClientCmd::Claim(ClaimCmd::Cancel { scheme, .. }) => (Role::Scheme, scheme.clone()),
        ClientCmd::Claim(ClaimCmd::List {
            scheme, mutuelle, ..
        }) => match (scheme, mutuelle) {
            (Some(s), _) => (Role::Scheme, s.clone()),
            (None, Some(m)) => (Role::Mutuelle, m.clone()),
            (None, None) => (Role::Operator, crate::dev::DEV_OPERATOR.to_string()),
        },
        ClientCmd::Roster(RosterCmd::Import { partner, .. }) => (Role::Mutuelle, partner.clone()),
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
        | ClientCmd::Statement(StatementCmd::Export { partner, .. }) => {
            (Role::Mutuelle, partner.clone())
        }
        ClientCmd::Admin(_) => (Role::Operator, crate::dev::DEV_OPERATOR.to_string()),
    })
}

/// TLS material for an https:// broker: --cert/--key, else the certificate
/// of the party the command acts for, from --certs.
fn tls_for(client: &Client, cmd: &ClientCmd) -> Result<ClientTlsConfig, Failure> {
    let ca_path = client
        .ca
        .clone()
        .unwrap_or_else(|| client.certs.join("ca.crt"));
    let (cert, key) = match (&client.cert, &client.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (Some(_), None) | (None, Some(_)) => {
            return Err(Failure("--cert and --key go together".into()));
        }
        (None, None) => {
            let (role, id) = acting_for(cmd)?;
            let (c, k) = crate::pki::Pki::new(&client.certs).client_paths(role, &id);
            if !c.exists() {
                return Err(Failure(format!(
                    "no certificate for {}:{id} in {} (pass --cert and --key, or --certs)",
                    role.as_str(),
                    client.certs.display()
                )));
            }
            (c, k)
        }
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| Failure(format!("{}: {e}", p.display())))
    };
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&ca_path)?))
        .identity(Identity::from_pem(read(&cert)?, read(&key)?)))
}

/// Runs one client command.
pub async fn run(client: Client, cmd: ClientCmd) -> ExitCode {
    let lang = Lang::detect(client.lang);
    let tls = if client.broker.starts_with("https://") {
        match tls_for(&client, &cmd) {
            Ok(t) => Some(t),
            Err(Failure(m)) => {
                eprintln!("error: {m}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let channel = match connect(&client.broker, tls).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
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
        ClientCmd::Products(c) => products(&ctx, c).await,
        ClientCmd::Period(c) => period(&ctx, c).await,
        ClientCmd::Statement(c) => statement(&ctx, c).await,
        ClientCmd::Admin(c) => admin_cmd(&ctx, c).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(m)) => {
            eprintln!("error: {m}");
            ExitCode::FAILURE
        }
    }
}

async fn connect(url: &str, tls: Option<ClientTlsConfig>) -> Result<Channel, String> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("--broker {url:?}: {e}"))?
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| format!("tls: {e}"))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot reach the broker at {url}: {e}"))
}

/// Prints the field violations of an INVALID_ARGUMENT (and the violations
/// of a FAILED_PRECONDITION), mapping "members[i]..." to lines of a file,
/// and a product period's fields to the file's columns, when a map is given.
fn violations(s: &tonic::Status, lines: Option<&[u64]>) -> String {
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
    let mut out = String::new();
    for (f, description) in found {
        let mut field = f.clone();
        if let (Some(lines), Some(rest)) = (lines, f.strip_prefix("members["))
            && let Some((i, tail)) = rest.split_once(']')
            && let Ok(i) = i.parse::<usize>()
            && let Some(line) = lines.get(i)
        {
            field = format!("line {line}: {}", file_column(tail.trim_start_matches('.')));
        }
        out.push_str(&format!("\n  {field}: {description}"));
    }
    out
}

/// The members (by index) an error from the broker names: "members[i]..."
/// in its field violations or precondition failures.
fn refused_members(s: &tonic::Status, count: usize) -> std::collections::BTreeSet<usize> {
    let mut fields: Vec<String> = Vec::new();
    if let Some(br) = s.get_details_bad_request() {
        fields.extend(br.field_violations.into_iter().map(|v| v.field));
    }
    if let Some(pf) = s.get_details_precondition_failure() {
        fields.extend(pf.violations.into_iter().map(|v| v.subject));
    }
    fields
        .iter()
        .filter_map(|f| f.strip_prefix("members[")?.split_once(']')?.0.parse().ok())
        .filter(|i| *i < count)
        .collect()
}

/// A member field path as the roster file's column: "products[1].start_date"
/// is column product_start of the member's second product row.
fn file_column(tail: &str) -> String {
    let Some(rest) = tail.strip_prefix("products[") else {
        return tail.to_string();
    };
    let Some((j, field)) = rest.split_once(']') else {
        return tail.to_string();
    };
    let column = match field.trim_start_matches('.') {
        "product_id" => "product_id",
        "" | "start_date" => "product_start",
        "end_date" => "product_end",
        other => other,
    };
    match j.parse::<usize>() {
        Ok(0) | Err(_) => column.to_string(),
        Ok(j) => format!("{column} (product row {} of this member)", j + 1),
    }
}

fn status_failure(s: tonic::Status, lines: Option<&[u64]>) -> Failure {
    let details = violations(&s, lines);
    let Failure(m) = Failure::from(s);
    Failure(format!("{m}{details}"))
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

fn claim_state_name(s: i32) -> &'static str {
    match scheme::ClaimState::try_from(s) {
        Ok(scheme::ClaimState::Received) => "received",
        Ok(scheme::ClaimState::PendingPartner) => "pending_partner",
        Ok(scheme::ClaimState::Coordinated) => "coordinated",
        Ok(scheme::ClaimState::Rejected) => "rejected",
        Ok(scheme::ClaimState::CancelPending) => "cancel_pending",
        Ok(scheme::ClaimState::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the client's today (a command's default date), not the broker's clock"
)]
fn today() -> String {
    passerelle_domain::date::format(time::OffsetDateTime::now_utc().date())
}

async fn eligibility(
    ctx: &Ctx,
    scheme_id: String,
    beneficiary: String,
    date: Option<String>,
    mutuelle: Option<String>,
    member: Option<String>,
) -> Out {
    let mut c = scheme::scheme_service_client::SchemeServiceClient::new(ctx.channel.clone());
    let r = c
        .check_eligibility(scheme::CheckEligibilityRequest {
            scheme_id,
            beneficiary_id: beneficiary,
            date_of_care: date.unwrap_or_else(today),
            mutuelle_id: mutuelle.unwrap_or_default(),
            member_number: member.unwrap_or_default(),
            ..Default::default()
        })
        .await
        .map_err(|s| status_failure(s, None))?
        .into_inner();
    let product = r.product.clone().unwrap_or_default();
    let contribution = r.contribution.clone().unwrap_or_default();
    if ctx.json {
        ctx.print_json(json!({
            "covered": r.covered,
            "reason": r.reason.as_ref().map(|x| json!({"code": reason_name(x.code), "message": x.message})),
            "mutuelle_id": r.mutuelle_id,
            "member_number": r.member_number,
            "household_id": r.household_id,
            "product": {"id": product.product_id, "version": product.version, "name": product.name},
            "paid_until": contribution.paid_until,
            "ceilings": r.ceilings.iter().map(|c| json!({
                "scope": c.scope, "period": c.period, "limit": c.limit, "used": c.used, "remaining": c.remaining,
                "count_limit": c.count_limit, "count_used": c.count_used, "count_remaining": c.count_remaining,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let l = ctx.lang;
    let yes_no = |b: bool| l.t(if b { "yes" } else { "no" }).to_string();
    outln!("{}: {}", l.t("covered"), yes_no(r.covered));
    if let Some(reason) = &r.reason {
        outln!("  {} ({})", reason.message, reason_name(reason.code));
    }
    if !r.mutuelle_id.is_empty() {
        outln!("{}: {}", l.t("mutuelle"), r.mutuelle_id);
        outln!("{}: {}", l.t("member"), r.member_number);
        outln!("{}: {}", l.t("household"), r.household_id);
    }
    if !product.product_id.is_empty() {
        outln!(
            "{}: {} v{} ({})",
            l.t("product"),
            product.product_id,
            product.version,
            product.name
        );
    }
    if !contribution.paid_until.is_empty() {
        outln!("{}: {}", l.t("dues paid until"), contribution.paid_until);
    }
    if !r.ceilings.is_empty() {
        outln!();
        let mut t =
            Table::new(l, &["ceiling", "period", "limit", "used", "remaining"]).right(&[2, 3, 4]);
        for c in &r.ceilings {
            let (limit, used, left) = if c.scope == "count" {
                (
                    c.count_limit.to_string(),
                    c.count_used.to_string(),
                    c.count_remaining.to_string(),
                )
            } else {
                (
                    l.money(c.limit, "XOF"),
                    l.money(c.used, "XOF"),
                    l.money(c.remaining, "XOF"),
                )
            };
            let scope = match passerelle_proto::common::v1::CareCategory::try_from(c.care_category)
            {
                Ok(cat) if c.care_category != 0 => {
                    format!(
                        "{} {}",
                        c.scope,
                        cat.as_str_name()
                            .trim_start_matches("CARE_CATEGORY_")
                            .to_lowercase()
                    )
                }
                _ => c.scope.clone(),
            };
            t.row(vec![scope, c.period.clone(), limit, used, left]);
        }
        out!("{}", t.render());
    }
    Ok(())
}

fn claim_json(r: &scheme::ClaimResult) -> Value {
    let t = r.totals.unwrap_or_default();
    json!({
        "scheme_id": r.scheme_id,
        "claim_id": r.claim_id,
        "state": claim_state_name(r.state),
        "mutuelle_id": r.mutuelle_id,
        "member_number": r.member_number,
        "currency": r.currency,
        "rejection": r.rejection.as_ref().map(|x| json!({"code": reason_name(x.code), "message": x.message})),
        "duplicate_of_claim_id": (!r.duplicate_of_claim_id.is_empty()).then_some(&r.duplicate_of_claim_id),
        "lines": r.lines.iter().map(|l| json!({
            "sequence": l.sequence, "act_code": l.act_code, "billed": l.billed, "tariff_base": l.tariff_base,
            "scheme_share": l.scheme_share, "ticket_moderateur": l.ticket_moderateur, "overrun": l.overrun,
            "remainder": l.remainder, "mutuelle_share": l.mutuelle_share, "patient_share": l.patient_share,
            "reasons": l.reasons.iter().map(|x| json!({"code": reason_name(x.code), "message": x.message})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "totals": {"billed": t.billed, "scheme_share": t.scheme_share, "mutuelle_share": t.mutuelle_share, "patient_share": t.patient_share},
    })
}

fn print_claim(ctx: &Ctx, r: &scheme::ClaimResult) {
    if ctx.json {
        ctx.print_json(claim_json(r));
        return;
    }
    let l = ctx.lang;
    let cur = r.currency.as_str();
    outln!(
        "{} {}/{}: {}",
        l.t("claim"),
        r.scheme_id,
        r.claim_id,
        l.state(claim_state_name(r.state))
    );
    if !r.mutuelle_id.is_empty() {
        outln!(
            "{}: {} ({} {})",
            l.t("mutuelle"),
            r.mutuelle_id,
            l.t("member"),
            r.member_number
        );
    }
    if let Some(x) = &r.rejection {
        outln!("  {} ({})", x.message, reason_name(x.code));
    }
    let mut t = Table::new(
        l,
        &[
            "line",
            "act",
            "billed (B)",
            "scheme (S)",
            "remainder (R)",
            "mutuelle (M)",
            "patient (P)",
            "reasons",
        ],
    )
    .right(&[0, 2, 3, 4, 5, 6]);
    for line in &r.lines {
        let reasons: Vec<String> = line.reasons.iter().map(|x| x.message.clone()).collect();
        t.row(vec![
            line.sequence.to_string(),
            line.act_code.clone(),
            l.money(line.billed, cur),
            l.money(line.scheme_share, cur),
            l.money(line.remainder, cur),
            l.money(line.mutuelle_share, cur),
            l.money(line.patient_share, cur),
            reasons.join("; "),
        ]);
    }
    let tot = r.totals.unwrap_or_default();
    t.row(vec![
        String::new(),
        l.t("total").to_string(),
        l.money(tot.billed, cur),
        l.money(tot.scheme_share, cur),
        l.money(tot.billed - tot.scheme_share, cur),
        l.money(tot.mutuelle_share, cur),
        l.money(tot.patient_share, cur),
        String::new(),
    ]);
    out!("{}", t.render());
}

async fn claim(ctx: &Ctx, cmd: ClaimCmd) -> Out {
    let mut c = scheme::scheme_service_client::SchemeServiceClient::new(ctx.channel.clone());
    match cmd {
        ClaimCmd::Submit { file } => {
            let req = super::claim_file::ClaimFile::read(&file)
                .map_err(Failure)?
                .into_request();
            let r = c
                .coordinate_claim(req)
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            print_claim(ctx, &r);
        }
        ClaimCmd::Get { scheme, claim_id } => {
            let r = c
                .get_claim(scheme::GetClaimRequest {
                    scheme_id: scheme,
                    claim_id,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            print_claim(ctx, &r);
        }
        ClaimCmd::Cancel {
            scheme,
            claim_id,
            reason,
        } => {
            let r = c
                .cancel_claim(scheme::CancelClaimRequest {
                    scheme_id: scheme,
                    claim_id,
                    reason,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            print_claim(ctx, &r);
        }
        ClaimCmd::List {
            scheme,
            mutuelle,
            state,
            from,
            to,
            page_size,
            page,
        } => {
            let mut s = settlement::settlement_service_client::SettlementServiceClient::new(
                ctx.channel.clone(),
            );
            let r = s
                .list_claims(settlement::ListClaimsRequest {
                    scheme_id: scheme.unwrap_or_default(),
                    mutuelle_id: mutuelle.unwrap_or_default(),
                    state: state.unwrap_or_default(),
                    care_from: from.unwrap_or_default(),
                    care_to: to.unwrap_or_default(),
                    page_size,
                    page_token: page.unwrap_or_default(),
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            let totals = r.totals.unwrap_or_default();
            if ctx.json {
                let t = |t: &settlement::Totals| json!({"billed": t.billed, "scheme_share": t.scheme_share, "mutuelle_share": t.mutuelle_share, "patient_share": t.patient_share});
                ctx.print_json(json!({
                    "claims": r.claims.iter().map(|c| json!({
                        "scheme_id": c.scheme_id, "claim_id": c.claim_id, "mutuelle_id": c.mutuelle_id,
                        "state": c.state, "provider_id": c.provider_id, "invoice_number": c.invoice_number,
                        "date_of_care": c.date_of_care, "currency": c.currency,
                        "totals": t(&c.totals.unwrap_or_default()), "period": c.period,
                    })).collect::<Vec<_>>(),
                    "totals": t(&totals),
                    "total_count": r.total_count,
                    "next_page_token": r.next_page_token,
                }));
                return Ok(());
            }
            let l = ctx.lang;
            let cur = r
                .claims
                .first()
                .map(|c| c.currency.clone())
                .unwrap_or_else(|| "XOF".into());
            let mut t = Table::new(
                l,
                &[
                    "claim",
                    "scheme",
                    "mutuelle",
                    "state",
                    "date of care",
                    "billed (B)",
                    "scheme (S)",
                    "mutuelle (M)",
                    "patient (P)",
                    "period",
                ],
            )
            .right(&[5, 6, 7, 8, 9]);
            for c in &r.claims {
                let ct = c.totals.unwrap_or_default();
                t.row(vec![
                    c.claim_id.clone(),
                    c.scheme_id.clone(),
                    c.mutuelle_id.clone(),
                    l.state(&c.state).to_string(),
                    c.date_of_care.clone(),
                    l.money(ct.billed, &c.currency),
                    l.money(ct.scheme_share, &c.currency),
                    l.money(ct.mutuelle_share, &c.currency),
                    l.money(ct.patient_share, &c.currency),
                    if c.period == 0 {
                        String::new()
                    } else {
                        c.period.to_string()
                    },
                ]);
            }
            t.row(vec![
                format!("{} ({})", l.t("total"), r.total_count),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                l.money(totals.billed, &cur),
                l.money(totals.scheme_share, &cur),
                l.money(totals.mutuelle_share, &cur),
                l.money(totals.patient_share, &cur),
                String::new(),
            ]);
            out!("{}", t.render());
            if !r.next_page_token.is_empty() {
                outln!("{}: --page {}", l.t("next page"), r.next_page_token);
            }
        }
    }
    Ok(())
}

async fn roster_import(
    ctx: &Ctx,
    file: &Path,
    partner: String,
    dry_run: bool,
    as_of: Option<String>,
    skip_bad_rows: bool,
    no_end_dating: bool,
) -> Out {
    let f = RosterFile::read(file).map_err(Failure)?;
    for b in &f.bad {
        eprintln!(
            "{}: line {}: {}: {}",
            file.display(),
            b.line,
            b.field,
            b.problem
        );
    }
    if !f.bad.is_empty() && !skip_bad_rows {
        return Err(Failure(format!(
            "{} bad row(s): nothing imported (fix them, or pass --skip-bad-rows to import the good rows)",
            f.bad.len()
        )));
    }
    let mut keep: Vec<String> = f
        .bad
        .iter()
        .filter_map(|b| b.member_number.clone())
        .collect();
    keep.sort();
    keep.dedup();
    let unknown_member = f.bad.iter().any(|b| b.member_number.is_none());
    if unknown_member && !no_end_dating {
        eprintln!(
            "warning: a skipped row has no member number: no member is end-dated by this import"
        );
    }
    let send = |members: Vec<roster::Member>, keep: Vec<String>| {
        let header = roster::ImportRosterRequest {
            part: Some(roster::import_roster_request::Part::Header(
                roster::ImportRosterHeader {
                    mutuelle_id: partner.clone(),
                    as_of: as_of.clone().unwrap_or_default(),
                    dry_run,
                    keep_member_numbers: keep,
                    no_end_dating: no_end_dating || unknown_member,
                },
            )),
        };
        let batches: Vec<_> = members
            .chunks(1000)
            .map(|chunk| roster::ImportRosterRequest {
                part: Some(roster::import_roster_request::Part::Members(
                    roster::MemberBatch {
                        members: chunk.to_vec(),
                    },
                )),
            })
            .collect();
        let stream: Vec<_> = std::iter::once(header).chain(batches).collect();
        // The answer lists every member that changes: 500,000 at most,
        // past the default 4 MiB a message.
        let mut c = roster::roster_service_client::RosterServiceClient::new(ctx.channel.clone())
            .max_decoding_message_size(MAX_ANSWER_BYTES);
        async move { c.import_roster(tokio_stream::iter(stream)).await }
    };
    // Rows the broker refuses (an unknown product, a beneficiary another
    // mutuelle covers) are bad rows too: with --skip-bad-rows they are
    // reported, left as they are (kept, never end-dated), and the others
    // imported. An error lists at most 20 rows: it is sent again without
    // them until it passes or a round removes nothing.
    let mut members = f.members.clone();
    let mut lines = f.first_line.clone();
    let mut skipped_by_broker = 0;
    let r = loop {
        let s = match send(members.clone(), keep.clone()).await {
            Ok(r) => break r.into_inner(),
            Err(s) => s,
        };
        let refused = if skip_bad_rows {
            refused_members(&s, members.len())
        } else {
            Default::default()
        };
        if refused.is_empty() {
            return Err(status_failure(s, Some(&lines)));
        }
        eprintln!(
            "{}: {}",
            file.display(),
            violations(&s, Some(&lines)).trim_start()
        );
        let (mut kept_members, mut kept_lines) = (Vec::new(), Vec::new());
        for (i, (m, line)) in members.into_iter().zip(lines).enumerate() {
            if refused.contains(&i) {
                keep.push(m.member_number);
                skipped_by_broker += 1;
            } else {
                kept_members.push(m);
                kept_lines.push(line);
            }
        }
        members = kept_members;
        lines = kept_lines;
    };
    if ctx.json {
        ctx.print_json(json!({
            "dry_run": r.dry_run, "added": r.added, "updated": r.updated, "end_dated": r.end_dated,
            "unchanged": r.unchanged, "skipped_rows": f.bad.len() + skipped_by_broker,
            "changes": r.changes.iter().map(|c| json!({"member_number": c.member_number, "change": c.change})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let l = ctx.lang;
    if !r.changes.is_empty() {
        let mut t = Table::new(l, &["member", "change"]);
        for ch in &r.changes {
            let change = match ch.change.as_str() {
                "added" => l.t("added"),
                "updated" => l.t("updated"),
                "end_dated" => l.t("end_dated"),
                _ => "?",
            };
            t.row(vec![ch.member_number.clone(), change.to_string()]);
        }
        out!("{}", t.render());
    }
    outln!(
        "{}: {}, {}: {}, {}: {}, {}: {}",
        l.t("added"),
        r.added,
        l.t("updated"),
        r.updated,
        l.t("end_dated"),
        r.end_dated,
        l.t("unchanged"),
        r.unchanged
    );
    if r.dry_run {
        outln!("{}", l.t("dry run: nothing was written"));
    }
    Ok(())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductsFile {
    products: Vec<Product>,
}

fn read_products(file: &std::path::Path) -> Result<Vec<Product>, Failure> {
    let text =
        std::fs::read_to_string(file).map_err(|e| Failure(format!("{}: {e}", file.display())))?;
    let parsed: ProductsFile = match file.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(&text).map_err(|e| e.to_string()),
        Some("toml") => toml::from_str(&text).map_err(|e| e.to_string()),
        _ => Err("the file must end in .toml or .json".into()),
    }
    .map_err(|e| Failure(format!("{}: {}", file.display(), e.trim_end())))?;
    Ok(parsed.products)
}

/// `passerelle certs ...`: development certificates.
pub fn certs(cmd: super::CertsCmd) -> ExitCode {
    use super::CertsCmd;
    use crate::pki::Pki;
    let run = || -> Result<(), String> {
        match cmd {
            CertsCmd::Ca { dir } => {
                let pki = Pki::new(&dir);
                let created = pki.init_ca().map_err(|e| e.to_string())?;
                outln!(
                    "{} {}",
                    if created { "created" } else { "already there:" },
                    pki.ca_cert().display()
                );
            }
            CertsCmd::Server { dir, dns, ip } => {
                let issued = Pki::new(&dir)
                    .issue_server(&dns, &ip)
                    .map_err(|e| e.to_string())?;
                outln!(
                    "{}\n{}\nsha256 {}",
                    issued.cert.display(),
                    issued.key.display(),
                    issued.fingerprint
                );
            }
            CertsCmd::Client {
                dir,
                role,
                id,
                days,
            } => {
                let role =
                    Role::parse(&role).ok_or("--role must be scheme, mutuelle or operator")?;
                let issued = Pki::new(&dir)
                    .issue_client(role, &id, days)
                    .map_err(|e| e.to_string())?;
                outln!(
                    "{}\n{}\nidentity {}\nsha256 {}",
                    issued.cert.display(),
                    issued.key.display(),
                    crate::identity::san_uri(role, &id),
                    issued.fingerprint
                );
            }
            CertsCmd::Revoke { dir, cert } => {
                let crl = Pki::new(&dir).revoke(&cert).map_err(|e| e.to_string())?;
                outln!(
                    "{} revoked; {} rewritten (brokers reload it, or send SIGHUP)",
                    cert.display(),
                    crl.display()
                );
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn products(ctx: &Ctx, cmd: ProductsCmd) -> Out {
    let mut c = product::product_service_client::ProductServiceClient::new(ctx.channel.clone());
    let l = ctx.lang;
    match cmd {
        ProductsCmd::Import { file } => {
            let products: Vec<product::Product> = read_products(&file)?
                .iter()
                .map(|p| passerelle_proto::convert::product_to_pb(p, false))
                .collect();
            let r = c
                .put_products(product::PutProductsRequest {
                    products: products.clone(),
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print_json(json!({"results": products.iter().zip(&r.results).map(|(p, r)| json!({
                    "mutuelle_id": p.mutuelle_id, "product_id": p.product_id, "version": p.version, "result": r,
                })).collect::<Vec<_>>()}));
                return Ok(());
            }
            let mut t = Table::new(l, &["mutuelle", "product", "version", "result"]).right(&[2]);
            for (p, res) in products.iter().zip(&r.results) {
                t.row(vec![
                    p.mutuelle_id.clone(),
                    p.product_id.clone(),
                    p.version.to_string(),
                    res.clone(),
                ]);
            }
            out!("{}", t.render());
        }
        ProductsCmd::List { partner } => {
            let r = c
                .list_products(product::ListProductsRequest {
                    mutuelle_id: partner,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print_json(json!({"products": r.products.iter().map(|p| json!({
                    "mutuelle_id": p.mutuelle_id, "product_id": p.product_id, "version": p.version, "name": p.name,
                    "valid_from": p.valid_from, "valid_to": p.valid_to, "used": p.used,
                })).collect::<Vec<_>>()}));
                return Ok(());
            }
            let mut t = Table::new(
                l,
                &["product", "version", "valid from", "valid to", "in use"],
            )
            .right(&[1]);
            for p in &r.products {
                t.row(vec![
                    format!("{} ({})", p.product_id, p.name),
                    p.version.to_string(),
                    p.valid_from.clone(),
                    p.valid_to.clone(),
                    l.t(if p.used { "yes" } else { "no" }).to_string(),
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}

fn period_state_name(s: i32) -> &'static str {
    match settlement::PeriodState::try_from(s) {
        Ok(settlement::PeriodState::Open) => "open",
        Ok(settlement::PeriodState::Closed) => "closed",
        Ok(settlement::PeriodState::Settled) => "settled",
        _ => "unknown",
    }
}

fn period_json(p: &settlement::Period) -> Value {
    let t = p.totals.unwrap_or_default();
    json!({
        "scheme_id": p.scheme_id, "mutuelle_id": p.mutuelle_id, "number": p.number,
        "state": period_state_name(p.state), "currency": p.currency, "claim_count": p.claim_count,
        "totals": {"billed": t.billed, "scheme_share": t.scheme_share, "mutuelle_share": t.mutuelle_share, "patient_share": t.patient_share},
        "recoveries": p.recoveries, "net_due": p.net_due,
        "closed_at_ms": p.closed_at_ms, "settled_at_ms": p.settled_at_ms, "settlement_reference": p.settlement_reference,
    })
}

fn periods_table(l: Lang, periods: &[settlement::Period]) -> String {
    let mut t = Table::new(
        l,
        &[
            "period",
            "state",
            "claims",
            "billed (B)",
            "scheme (S)",
            "mutuelle (M)",
            "patient (P)",
            "recoveries",
            "net due",
            "reference",
        ],
    )
    .right(&[0, 2, 3, 4, 5, 6, 7, 8]);
    for p in periods {
        let tot = p.totals.unwrap_or_default();
        let c = p.currency.as_str();
        t.row(vec![
            p.number.to_string(),
            l.state(period_state_name(p.state)).to_string(),
            p.claim_count.to_string(),
            l.money(tot.billed, c),
            l.money(tot.scheme_share, c),
            l.money(tot.mutuelle_share, c),
            l.money(tot.patient_share, c),
            l.money(p.recoveries, c),
            l.money(p.net_due, c),
            p.settlement_reference.clone(),
        ]);
    }
    t.render()
}

async fn period(ctx: &Ctx, cmd: PeriodCmd) -> Out {
    let mut c =
        settlement::settlement_service_client::SettlementServiceClient::new(ctx.channel.clone());
    let periods = match cmd {
        PeriodCmd::List { scheme, partner } => {
            c.list_periods(settlement::ListPeriodsRequest {
                scheme_id: scheme,
                mutuelle_id: partner,
            })
            .await
            .map_err(|s| status_failure(s, None))?
            .into_inner()
            .periods
        }
        PeriodCmd::Close { scheme, partner } => vec![
            c.close_period(settlement::ClosePeriodRequest {
                scheme_id: scheme,
                mutuelle_id: partner,
            })
            .await
            .map_err(|s| status_failure(s, None))?
            .into_inner(),
        ],
        PeriodCmd::Settle {
            scheme,
            partner,
            number,
            reference,
        } => vec![
            c.mark_settled(settlement::MarkSettledRequest {
                scheme_id: scheme,
                mutuelle_id: partner,
                number,
                reference,
            })
            .await
            .map_err(|s| status_failure(s, None))?
            .into_inner(),
        ],
    };
    if ctx.json {
        ctx.print_json(json!({"periods": periods.iter().map(period_json).collect::<Vec<_>>()}));
    } else {
        out!("{}", periods_table(ctx.lang, &periods));
    }
    Ok(())
}

/// The statement as CSV: one row per line owed, one per recovery (as a
/// negative mutuelle share), so that the mutuelle_share column sums to the
/// net amount due.
pub fn statement_csv(s: &settlement::Statement) -> String {
    let p = s.period.clone().unwrap_or_default();
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "kind",
        "scheme_id",
        "mutuelle_id",
        "period",
        "payee_type",
        "payee_id",
        "claim_id",
        "invoice_number",
        "date_of_care",
        "member_number",
        "line",
        "act_code",
        "billed",
        "scheme_share",
        "mutuelle_share",
        "patient_share",
        "currency",
    ]);
    let period = p.number.to_string();
    for payee in &s.payees {
        for l in &payee.lines {
            let _ = w.write_record([
                "line",
                &p.scheme_id,
                &p.mutuelle_id,
                &period,
                &payee.payee_type,
                &payee.payee_id,
                &l.claim_id,
                &l.invoice_number,
                &l.date_of_care,
                &l.member_number,
                &l.sequence.to_string(),
                &l.act_code,
                &l.billed.to_string(),
                &l.scheme_share.to_string(),
                &l.mutuelle_share.to_string(),
                &l.patient_share.to_string(),
                &p.currency,
            ]);
        }
    }
    for r in &s.recoveries {
        let _ = w.write_record([
            "recovery",
            &p.scheme_id,
            &p.mutuelle_id,
            &period,
            &r.payee_type,
            &r.payee_id,
            &r.claim_id,
            &r.invoice_number,
            "",
            "",
            "",
            "",
            "0",
            "0",
            &(-r.amount).to_string(),
            "0",
            &p.currency,
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

async fn statement(ctx: &Ctx, cmd: StatementCmd) -> Out {
    let mut c =
        settlement::settlement_service_client::SettlementServiceClient::new(ctx.channel.clone());
    let (scheme, partner, number, output, export) = match cmd {
        StatementCmd::Show {
            scheme,
            partner,
            number,
        } => (scheme, partner, number, None, false),
        StatementCmd::Export {
            scheme,
            partner,
            number,
            output,
        } => (scheme, partner, number, output, true),
    };
    let s = c
        .get_statement(settlement::GetStatementRequest {
            scheme_id: scheme,
            mutuelle_id: partner,
            number: number.unwrap_or(0),
        })
        .await
        .map_err(|s| status_failure(s, None))?
        .into_inner();
    if export {
        let text = statement_csv(&s);
        match output {
            Some(path) => std::fs::write(&path, text)
                .map_err(|e| Failure(format!("{}: {e}", path.display())))?,
            None => out!("{text}"),
        }
        return Ok(());
    }
    let p = s.period.clone().unwrap_or_default();
    if ctx.json {
        ctx.print_json(json!({
            "period": period_json(&p),
            "payees": s.payees.iter().map(|py| json!({
                "payee_type": py.payee_type, "payee_id": py.payee_id,
                "mutuelle_share": py.totals.unwrap_or_default().mutuelle_share,
                "lines": py.lines.iter().map(|l| json!({
                    "claim_id": l.claim_id, "invoice_number": l.invoice_number, "date_of_care": l.date_of_care,
                    "member_number": l.member_number, "line": l.sequence, "act_code": l.act_code,
                    "billed": l.billed, "scheme_share": l.scheme_share, "mutuelle_share": l.mutuelle_share,
                    "patient_share": l.patient_share,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "recoveries": s.recoveries.iter().map(|r| json!({
                "claim_id": r.claim_id, "from_period": r.from_period, "amount": r.amount,
                "payee_type": r.payee_type, "payee_id": r.payee_id,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let l = ctx.lang;
    let cur = p.currency.as_str();
    outln!(
        "{} {} x {}, {} {} ({})",
        l.t("scheme"),
        p.scheme_id,
        p.mutuelle_id,
        l.t("period"),
        p.number,
        l.state(period_state_name(p.state))
    );
    for payee in &s.payees {
        outln!(
            "\n{} {}: {}",
            l.t("payee"),
            l.t(if payee.payee_type == "member" {
                "member"
            } else {
                "provider"
            }),
            payee.payee_id
        );
        let mut t = Table::new(
            l,
            &[
                "claim",
                "invoice",
                "date of care",
                "line",
                "act",
                "billed (B)",
                "scheme (S)",
                "mutuelle (M)",
                "patient (P)",
            ],
        )
        .right(&[3, 5, 6, 7, 8]);
        for line in &payee.lines {
            t.row(vec![
                line.claim_id.clone(),
                line.invoice_number.clone(),
                line.date_of_care.clone(),
                line.sequence.to_string(),
                line.act_code.clone(),
                l.money(line.billed, cur),
                l.money(line.scheme_share, cur),
                l.money(line.mutuelle_share, cur),
                l.money(line.patient_share, cur),
            ]);
        }
        let tot = payee.totals.unwrap_or_default();
        t.row(vec![
            l.t("total").to_string(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            l.money(tot.billed, cur),
            l.money(tot.scheme_share, cur),
            l.money(tot.mutuelle_share, cur),
            l.money(tot.patient_share, cur),
        ]);
        out!("{}", t.render());
    }
    if !s.recoveries.is_empty() {
        outln!("\n{}", l.t("recoveries"));
        let mut t =
            Table::new(l, &["claim", "invoice", "from period", "payee", "amount"]).right(&[2, 4]);
        for r in &s.recoveries {
            t.row(vec![
                r.claim_id.clone(),
                r.invoice_number.clone(),
                r.from_period.to_string(),
                r.payee_id.clone(),
                l.money(r.amount, cur),
            ]);
        }
        out!("{}", t.render());
    }
    let tot = p.totals.unwrap_or_default();
    outln!(
        "\n{} (M): {}   {}: {}   {}: {} {}",
        l.t("total"),
        l.money(tot.mutuelle_share, cur),
        l.t("recoveries"),
        l.money(p.recoveries, cur),
        l.t("net due"),
        l.money(p.net_due, cur),
        cur
    );
    Ok(())
}

async fn admin_cmd(ctx: &Ctx, cmd: AdminCmd) -> Out {
    let mut c = admin::admin_service_client::AdminServiceClient::new(ctx.channel.clone());
    let l = ctx.lang;
    match cmd {
        AdminCmd::Partners => {
            let r = c
                .list_partners(admin::ListPartnersRequest {})
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print_json(json!({"partners": r.partners.iter().map(|p| json!({
                    "mutuelle_id": p.mutuelle_id, "name": p.name, "adapter": p.adapter,
                    "last_success_ms": p.last_success_ms, "last_error_ms": p.last_error_ms,
                    "last_error": p.last_error, "pending": p.pending, "deadline_ms": p.deadline_ms,
                })).collect::<Vec<_>>()}));
                return Ok(());
            }
            let mut t = Table::new(
                l,
                &[
                    "mutuelle",
                    "adapter",
                    "last success",
                    "last error",
                    "pending",
                ],
            )
            .right(&[4]);
            for p in &r.partners {
                let err = if p.last_error_ms > 0 {
                    format!("{} {}", when(l, p.last_error_ms), p.last_error)
                } else {
                    when(l, 0)
                };
                t.row(vec![
                    p.mutuelle_id.clone(),
                    p.adapter.clone(),
                    when(l, p.last_success_ms),
                    err,
                    p.pending.to_string(),
                ]);
            }
            out!("{}", t.render());
        }
        AdminCmd::Retry { scheme, claim_id } => {
            let r = c
                .retry_claim(admin::RetryClaimRequest {
                    scheme_id: scheme,
                    claim_id,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print_json(json!({"state": r.state, "last_error": r.last_error}));
            } else {
                outln!("{}: {}", l.t("state"), l.state(&r.state));
                if !r.last_error.is_empty() {
                    outln!("{}: {}", l.t("last error"), r.last_error);
                }
            }
        }
        AdminCmd::Audit { scheme, claim_id } => {
            let r = c
                .get_claim_audit(admin::GetClaimAuditRequest {
                    scheme_id: scheme,
                    claim_id,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print_json(json!({"records": r.records.iter().map(|a| json!({
                    "at_ms": a.at_ms, "direction": a.direction, "party": a.party, "method": a.method,
                    "request_hash": a.request_hash, "outcome": a.outcome,
                })).collect::<Vec<_>>()}));
                return Ok(());
            }
            let mut t = Table::new(l, &["when", "direction", "party", "method", "outcome"]);
            for a in &r.records {
                t.row(vec![
                    when(l, a.at_ms),
                    a.direction.clone(),
                    a.party.clone(),
                    a.method.clone(),
                    a.outcome.clone(),
                ]);
            }
            out!("{}", t.render());
        }
        AdminCmd::CoverageConflicts { scheme } => {
            let r = c
                .list_coverage_conflicts(admin::ListCoverageConflictsRequest {
                    scheme_id: scheme.unwrap_or_default(),
                    limit: 0,
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print_json(json!({"conflicts": r.conflicts.iter().map(|c| json!({
                    "scheme_id": c.scheme_id, "beneficiary_id": c.beneficiary_id,
                    "first_mutuelle_id": c.first_mutuelle_id, "first_member_number": c.first_member_number,
                    "second_mutuelle_id": c.second_mutuelle_id, "second_member_number": c.second_member_number,
                    "from_date": c.from_date, "to_date": c.to_date,
                })).collect::<Vec<_>>()}));
                return Ok(());
            }
            if r.conflicts.is_empty() {
                outln!("{}", l.t("no coverage conflict"));
                return Ok(());
            }
            let mut t = Table::new(
                l,
                &[
                    "scheme",
                    "beneficiary",
                    "mutuelle",
                    "member",
                    "mutuelle",
                    "member",
                    "from",
                    "to",
                ],
            );
            for c in &r.conflicts {
                t.row(vec![
                    c.scheme_id.clone(),
                    c.beneficiary_id.clone(),
                    c.first_mutuelle_id.clone(),
                    c.first_member_number.clone(),
                    c.second_mutuelle_id.clone(),
                    c.second_member_number.clone(),
                    c.from_date.clone(),
                    if c.to_date.is_empty() {
                        "-".into()
                    } else {
                        c.to_date.clone()
                    },
                ]);
            }
            out!("{}", t.render());
        }
        AdminCmd::ResolveCoverage {
            scheme,
            beneficiary,
            keep,
            from,
        } => {
            let r = c
                .resolve_coverage_conflict(admin::ResolveCoverageConflictRequest {
                    scheme_id: scheme,
                    beneficiary_id: beneficiary,
                    keep_mutuelle_id: keep,
                    from_date: from.unwrap_or_default(),
                })
                .await
                .map_err(|s| status_failure(s, None))?
                .into_inner();
            if ctx.json {
                ctx.print_json(json!({"changed": r.changed.iter().map(|m| json!({
                    "mutuelle_id": m.mutuelle_id, "member_number": m.member_number,
                })).collect::<Vec<_>>()}));
                return Ok(());
            }
            if r.changed.is_empty() {
                outln!("{}", l.t("nothing to change"));
                return Ok(());
            }
            let mut t = Table::new(l, &["mutuelle", "member", "change"]);
            for m in &r.changed {
                t.row(vec![
                    m.mutuelle_id.clone(),
                    m.member_number.clone(),
                    l.t("updated").to_string(),
                ]);
            }
            out!("{}", t.render());
        }
    }
    Ok(())
}
