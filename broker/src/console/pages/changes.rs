//! Changes that need two people, in the console: a mutuelle's products read
//! in words and a new version proposed, a period's close or settlement
//! proposed, and the approvals page where another manager approves or
//! rejects. Every action is a call of the service layer (ProductService,
//! SettlementService), which records the proposal and checks the approver:
//! the console only shows and asks.

use passerelle_domain::Product;
use passerelle_proto::product::v1 as product;
use product::product_service_server::ProductService;

use super::*;
use crate::service::approvals::Change;

/// Whether a refusal is "recorded as a proposal" (APPROVAL_REQUIRED).
fn proposal_recorded(s: &tonic::Status) -> bool {
    use tonic_types::StatusExt;
    s.get_details_error_info()
        .is_some_and(|i| i.reason == "APPROVAL_REQUIRED")
}

/// After asking for a change: to the approvals page when it was recorded,
/// else the refusal.
fn after_proposal<T>(ctx: &Ctx, r: Result<T, tonic::Status>) -> Response {
    match r {
        Err(s) if proposal_recorded(&s) => {
            Reply::Redirect("/approvals?done=proposed".into(), Vec::new()).into_response()
        }
        // Nothing to approve: identical versions, the same settlement again.
        Ok(_) => Reply::Redirect("/approvals?done=unchanged".into(), Vec::new()).into_response(),
        Err(s) => ctx.status(s).into_response(),
    }
}

fn manager(ctx: &Ctx) -> bool {
    ctx.person.user.role == UserRole::Manager
}

/// A manager's form: its CSRF token checked (a refusal audited), then the
/// role; the refusal to answer, else nothing.
async fn manager_form(c: &Console, ctx: &Ctx, csrf: &str) -> Result<(), Response> {
    if let Err(r) = check_csrf(c, ctx, csrf).await {
        return Err(r.into_response());
    }
    if !manager(ctx) {
        return Err(ctx.forbidden().into_response());
    }
    Ok(())
}

fn csrf_input(ui: &Ui) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&ui.csrf)
    )
}

// ---- products ----

/// How a category is covered, in words.
fn coverage_words(lang: Lang, r: &passerelle_domain::product::CategoryRule, cur: &str) -> String {
    let mut parts = vec![match r.fixed_per_act {
        Some(a) => lang.t_args("product-fixed", &[("amount", &lang.money(a, cur))]),
        None => lang.t_args("product-rate", &[("rate", &lang.percent(r.tm_rate_bp))]),
    }];
    if r.overrun_rate_bp > 0 {
        parts.push(lang.t_args(
            "product-overrun",
            &[("rate", &lang.percent(r.overrun_rate_bp))],
        ));
    }
    if r.out_of_basket_rate_bp > 0 {
        parts.push(lang.t_args(
            "product-out-of-basket",
            &[("rate", &lang.percent(r.out_of_basket_rate_bp))],
        ));
    }
    parts.join(" ; ")
}

fn limits_words(lang: Lang, r: &passerelle_domain::product::CategoryRule, cur: &str) -> String {
    let mut parts = Vec::new();
    if let Some(a) = r.per_act_limit {
        parts.push(lang.t_args("product-per-act", &[("amount", &lang.money(a, cur))]));
    }
    if let Some(a) = r.year_limit {
        parts.push(lang.t_args("product-per-year", &[("amount", &lang.money(a, cur))]));
    }
    if let Some(n) = r.year_count_limit {
        parts.push(lang.t_args("product-acts-per-year", &[("count", &n.to_string())]));
    }
    if !r.excluded_diagnoses.is_empty() {
        parts.push(lang.t_args(
            "product-exclusions",
            &[("list", &r.excluded_diagnoses.join(", "))],
        ));
    }
    if parts.is_empty() {
        lang.t("product-no-limit")
    } else {
        parts.join(" ; ")
    }
}

async fn list_products(
    c: &Console,
    ctx: &Ctx,
    mutuelle: &str,
) -> Result<Vec<(Product, bool)>, Reply> {
    let msg = product::ListProductsRequest {
        mutuelle_id: mutuelle.to_string(),
    };
    let r = c
        .call(&ctx.person, ctx.peer, msg, |r| c.product.list_products(r))
        .await
        .map_err(|e| ctx.status(e))?;
    let mut out = Vec::new();
    for p in r.products {
        let used = p.used;
        let mut v = passerelle_proto::parse::Violations::new();
        let d = passerelle_proto::parse::product(&mut v, 0, p);
        if v.0.is_empty() {
            out.push((d, used));
        }
    }
    Ok(out)
}

/// One product version in words: its heading and a table of its rules by
/// category (the products page, and a proposal an approver reads).
fn product_table(lang: Lang, p: &Product, used: bool) -> (String, Table) {
    let to = match p.valid_to {
        Some(t) => lang.t_args("product-to", &[("date", &lang.date(t))]),
        None => lang.t("product-open-ended"),
    };
    let mut title = lang.t_args(
        "product-heading",
        &[
            ("id", &p.id),
            ("version", &p.version.to_string()),
            ("name", &p.name),
            ("from", &lang.date(p.valid_from)),
            ("to", &to),
        ],
    );
    if used {
        title.push_str(&format!(" · {}", lang.t("product-used")));
    }
    let mut t = Table::new(
        lang,
        &[
            "product-category",
            "product-coverage",
            "product-limits",
            "product-waiting",
        ],
        &[],
    );
    for r in &p.categories {
        t.row(
            String::new(),
            vec![
                lang.t(&format!("category-{}", r.category.as_str())),
                coverage_words(lang, r, &p.currency),
                limits_words(lang, r, &p.currency),
                if r.waiting_days == 0 {
                    lang.t("product-no-waiting")
                } else {
                    lang.t_args("product-days", &[("days", &r.waiting_days.to_string())])
                },
            ],
        );
    }
    let mut overall = Vec::new();
    if let Some(a) = p.beneficiary_year_limit {
        overall.push(lang.t_args(
            "product-beneficiary-year",
            &[("amount", &lang.money(a, &p.currency))],
        ));
    }
    if let Some(a) = p.household_year_limit {
        overall.push(lang.t_args(
            "product-household-year",
            &[("amount", &lang.money(a, &p.currency))],
        ));
    }
    if let Some(a) = p.stay_limit {
        overall.push(lang.t_args("product-stay", &[("amount", &lang.money(a, &p.currency))]));
    }
    if !p.excluded_diagnoses.is_empty() {
        overall.push(lang.t_args(
            "product-exclusions",
            &[("list", &p.excluded_diagnoses.join(", "))],
        ));
    }
    for b in &p.beneficiary_rules {
        let mut what = Vec::new();
        if let Some(bp) = b.tm_rate_bp {
            what.push(lang.t_args("product-rate", &[("rate", &lang.percent(bp))]));
        }
        if let Some(a) = b.year_limit {
            what.push(lang.t_args(
                "product-per-year",
                &[("amount", &lang.money(a, &p.currency))],
            ));
        }
        overall.push(lang.t_args(
            "product-beneficiary-rule",
            &[
                ("who", &b.beneficiary_category),
                (
                    "category",
                    &lang.t(&format!("category-{}", b.category.as_str())),
                ),
                ("what", &what.join(", ")),
            ],
        ));
    }
    if p.waiting_days > 0 {
        overall.push(lang.t_args(
            "product-waiting-all",
            &[("days", &p.waiting_days.to_string())],
        ));
    }
    if !p.excluded_acts.is_empty() {
        overall.push(lang.t_args(
            "product-excluded-acts",
            &[("list", &p.excluded_acts.join(", "))],
        ));
    }
    for a in &p.act_limits {
        overall.push(lang.t_args(
            &format!("product-act-limit-{}", a.per.as_str()),
            &[("count", &a.max.to_string()), ("act", &a.act_code)],
        ));
    }
    if let Some(pa) = &p.prior_authorization {
        let mut what: Vec<String> = pa
            .categories
            .iter()
            .map(|c| lang.t(&format!("category-{}", c.as_str())))
            .collect();
        what.extend(pa.acts.iter().cloned());
        overall.push(lang.t_args(
            "product-prior-authorization",
            &[
                ("what", &what.join(", ")),
                ("days", &pa.validity_days.to_string()),
                ("rate", &lang.percent(pa.tolerance_bp)),
            ],
        ));
    }
    if !overall.is_empty() {
        t.foot = vec![
            lang.t("product-overall"),
            overall.join(" ; "),
            String::new(),
            String::new(),
        ];
    }
    (title, t)
}

pub(super) async fn products(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Query(done): Query<Done>,
) -> Response {
    let lang = ctx.lang;
    let Some(mutuelle) = ctx.person.mutuelle().map(str::to_string) else {
        return ctx.forbidden().into_response();
    };
    let all = match list_products(&c, &ctx, &mutuelle).await {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    // Versions proposed and waiting for a second person, said above the
    // versions in force (the page showed none of them: a manager saw no
    // sign of the version a colleague had proposed).
    let pending = match waiting_proposals(&c, &ctx, &mutuelle).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut waiting = String::new();
    for x in &pending {
        let Ok(Change::PublishProducts { products, .. }) = serde_json::from_str(&x.body) else {
            continue;
        };
        for v in &products {
            waiting.push_str(&format!(
                "<p class=\"notice\"><a href=\"/approvals\">{}</a></p>",
                esc(&lang.t_args(
                    "products-version-waiting",
                    &[
                        ("version", &v.version.to_string()),
                        ("product", &v.id),
                        ("from", &lang.date(v.valid_from)),
                        (
                            "who",
                            &lang.named_identity(&x.proposed_by, &x.proposed_by_name)
                        ),
                        ("when", &lang.time(x.proposed_at_ms)),
                    ],
                ))
            ));
        }
    }
    let mut ui = ctx.ui(lang.t("products-title"), "products");
    ui.notice = done.notice(lang);
    let mut tables = Vec::new();
    let mut after = String::new();
    for (p, used) in all.iter().rev() {
        tables.push(product_table(lang, p, *used));
    }
    if manager(&ctx) {
        let mut ids: Vec<&str> = all.iter().map(|(p, _)| p.id.as_str()).collect();
        ids.dedup();
        for id in ids {
            after.push_str(&format!(
                "<p><a class=\"button\" href=\"/products/{}/new\">{} {}</a></p>",
                url(id),
                esc(&lang.t("products-new-version")),
                esc(id)
            ));
        }
    }
    page(ListPage {
        ui,
        heading: lang.t("products-title"),
        form: waiting,
        summary: if all.is_empty() {
            lang.t("products-none")
        } else {
            String::new()
        },
        tables,
        empty: String::new(),
        after,
    })
}

/// A mutuelle's proposals waiting for a second person, as the person may
/// read them: what the products and periods pages say is waiting.
pub(super) async fn waiting_proposals(
    c: &Console,
    ctx: &Ctx,
    mutuelle: &str,
) -> Result<Vec<settlement::Proposal>, Response> {
    let msg = settlement::ListProposalsRequest {
        mutuelle_id: mutuelle.to_string(),
        pending_only: true,
    };
    c.call(&ctx.person, ctx.peer, msg, |r| {
        c.settlement.list_proposals(r)
    })
    .await
    .map(|r| r.proposals)
    .map_err(|e| ctx.status(e).into_response())
}

/// The latest version of a product of the person's mutuelle.
async fn latest(c: &Console, ctx: &Ctx, id: &str) -> Result<Product, Reply> {
    let Some(mutuelle) = ctx.person.mutuelle().map(str::to_string) else {
        return Err(ctx.forbidden());
    };
    list_products(c, ctx, &mutuelle)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.id == id)
        .max_by_key(|p| p.version)
        .ok_or_else(|| ctx.error(StatusCode::NOT_FOUND, ctx.t("error-not-found")))
}

/// A labelled input; `numeric`: a phone shows its number pad.
fn field(name: &str, label: &str, value: &str, hint: &str, numeric: bool) -> String {
    format!(
        "<label>{}<input name=\"{}\" value=\"{}\"{}>{}</label>",
        esc(label),
        esc(name),
        esc(value),
        if numeric {
            " inputmode=\"decimal\""
        } else {
            ""
        },
        if hint.is_empty() {
            String::new()
        } else {
            format!("<small>{}</small>", esc(hint))
        }
    )
}

fn amount_text(a: Option<i64>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

fn percent_text(bp: u32) -> String {
    if bp.is_multiple_of(100) {
        (bp / 100).to_string()
    } else {
        format!("{},{:02}", bp / 100, bp % 100)
    }
}

pub(super) async fn new_version_form(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    if !manager(&ctx) {
        return ctx.forbidden().into_response();
    }
    match latest(&c, &ctx, &id).await {
        Ok(p) => version_form(&ctx, &p, &[], None),
        Err(r) => r.into_response(),
    }
}

/// The form of a new version of `p` (the latest one), its fields as typed
/// (`typed`) or else from `p`, with what was wrong in the last try.
fn version_form(
    ctx: &Ctx,
    p: &Product,
    typed: &[(String, String)],
    error: Option<String>,
) -> Response {
    let lang = ctx.lang;
    let value = |name: &str, default: String| {
        typed
            .iter()
            .find(|(n, _)| n == name)
            .map_or(default, |(_, v)| v.clone())
    };
    // The window's title names the product (it read "Proposer une
    // nouvelle version de · passerelle").
    let ui = ctx.ui(
        format!("{} {}", lang.t("products-new-version"), p.id),
        "products",
    );
    // What was wrong: an error above the form, not the green notice a
    // success gets (a clerk's trial read it as done).
    let mut form = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(&e)))
        .unwrap_or_default();
    // The version it was opened on, and its mutuelle: a form posted after
    // another version was published, or from a tab opened on another of a
    // federation's mutuelles, is shown again, never laid over another
    // product by position.
    form.push_str(&format!(
        "<form method=\"post\" action=\"/products/{}/new\" class=\"stack\">{}\
         <input type=\"hidden\" name=\"mutuelle\" value=\"{}\">\
         <input type=\"hidden\" name=\"base\" value=\"{}\">",
        url(&p.id),
        csrf_input(&ui),
        esc(&p.mutuelle_id),
        p.version
    ));
    form.push_str(&format!(
        "<p>{}</p>",
        esc(&lang.t_args(
            "products-new-intro",
            &[
                ("id", &p.id),
                ("version", &(p.version + 1).to_string()),
                ("from", &p.version.to_string())
            ]
        ))
    ));
    form.push_str(&field(
        "name",
        &lang.t("product-name"),
        &value("name", p.name.clone()),
        "",
        false,
    ));
    form.push_str(&field(
        "valid_from",
        &lang.t("product-valid-from"),
        &value("valid_from", String::new()),
        &lang.t("date-hint"),
        true,
    ));
    form.push_str(&field(
        "beneficiary_year_limit",
        &lang.t("product-beneficiary-limit"),
        &value(
            "beneficiary_year_limit",
            amount_text(p.beneficiary_year_limit),
        ),
        &p.currency,
        true,
    ));
    for (i, r) in p.categories.iter().enumerate() {
        form.push_str(&format!(
            "<fieldset><legend>{}</legend>",
            esc(&lang.t(&format!("category-{}", r.category.as_str())))
        ));
        // A category paid by a fixed amount per act has that amount, not a
        // rate (the rate would be ignored, and show nowhere).
        match r.fixed_per_act {
            Some(a) => form.push_str(&field(
                &format!("fixed_{i}"),
                &lang.t("product-fixed-field"),
                &value(&format!("fixed_{i}"), a.to_string()),
                &p.currency,
                true,
            )),
            None => form.push_str(&field(
                &format!("rate_{i}"),
                &lang.t("product-rate-field"),
                &value(&format!("rate_{i}"), percent_text(r.tm_rate_bp)),
                "%",
                true,
            )),
        }
        form.push_str(&field(
            &format!("year_limit_{i}"),
            &lang.t("product-year-limit-field"),
            &value(&format!("year_limit_{i}"), amount_text(r.year_limit)),
            &p.currency,
            true,
        ));
        form.push_str(&field(
            &format!("year_count_{i}"),
            &lang.t("product-year-count-field"),
            &value(
                &format!("year_count_{i}"),
                r.year_count_limit
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            ),
            "",
            true,
        ));
        form.push_str("</fieldset>");
    }
    form.push_str(&format!(
        "<button>{}</button></form>",
        esc(&lang.t("products-propose"))
    ));
    let failed = !ui.notice.is_empty();
    let mut r = page(ListPage {
        ui,
        heading: lang.t_args("products-new-heading", &[("id", &p.id), ("name", &p.name)]),
        form,
        summary: String::new(),
        tables: Vec::new(),
        empty: String::new(),
        after: String::new(),
    });
    if failed {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

/// "80", "80,5", "12.25" (percent) in basis points, at most 100 %.
fn parse_percent(s: &str) -> Option<u32> {
    let s = s.trim().trim_end_matches('%').trim();
    let (whole, frac) = match s.split_once([',', '.']) {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    if whole.is_empty()
        || frac.len() > 2
        || !(whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let w: u32 = whole.parse().ok()?;
    let f: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().ok()?
    };
    let bp = w.checked_mul(100)?.checked_add(f)?;
    (bp <= 10_000).then_some(bp)
}

/// An amount typed with or without grouping ("50 000", "50000"); empty:
/// none. `Err` when it is not digits.
fn parse_amount(s: &str) -> Result<Option<i64>, ()> {
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '.'))
        .collect();
    if digits.is_empty() {
        return Ok(None);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 15 {
        return Err(());
    }
    digits.parse().map(Some).map_err(|_| ())
}

pub(super) async fn new_version(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    if let Err(r) = manager_form(&c, &ctx, get("csrf")).await {
        return r;
    }
    // Opened on another of a federation's mutuelles than the one chosen
    // now: said so, before the product is looked for in this one.
    let opened_on = get("mutuelle");
    if !opened_on.is_empty() && Some(opened_on) != ctx.person.mutuelle() {
        return ctx
            .error(
                StatusCode::CONFLICT,
                ctx.lang
                    .t_args("products-other-mutuelle", &[("mutuelle", opened_on)]),
            )
            .into_response();
    }
    let latest = match latest(&c, &ctx, &id).await {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let lang = ctx.lang;
    if get("mutuelle") != latest.mutuelle_id || get("base") != latest.version.to_string() {
        return version_form(
            &ctx,
            &latest,
            &[],
            Some(lang.t_args(
                "products-changed-meanwhile",
                &[("id", &latest.id), ("version", &latest.version.to_string())],
            )),
        );
    }
    let mut p = latest.clone();
    let mut bad = Vec::new();
    p.version += 1;
    p.valid_to = None;
    p.name = get("name").trim().to_string();
    match parse_date(get("valid_from")) {
        Some(d) => p.valid_from = d,
        None => bad.push(lang.t("product-valid-from")),
    }
    match parse_amount(get("beneficiary_year_limit")) {
        Ok(a) => p.beneficiary_year_limit = a,
        Err(()) => bad.push(lang.t("product-beneficiary-limit")),
    }
    for (i, r) in p.categories.iter_mut().enumerate() {
        let cat = lang.t(&format!("category-{}", r.category.as_str()));
        if r.fixed_per_act.is_some() {
            match parse_amount(get(&format!("fixed_{i}"))) {
                Ok(Some(a)) => r.fixed_per_act = Some(a),
                _ => bad.push(lang.labelled(&cat, &lang.t("product-fixed-field"))),
            }
        } else {
            match parse_percent(get(&format!("rate_{i}"))) {
                Some(bp) => r.tm_rate_bp = bp,
                None => bad.push(lang.labelled(&cat, &lang.t("product-rate-field"))),
            }
        }
        match parse_amount(get(&format!("year_limit_{i}"))) {
            Ok(a) => r.year_limit = a,
            Err(()) => bad.push(lang.labelled(&cat, &lang.t("product-year-limit-field"))),
        }
        match parse_amount(get(&format!("year_count_{i}"))) {
            Ok(n) => match n.map(u32::try_from).transpose() {
                Ok(n) => r.year_count_limit = n,
                Err(_) => bad.push(lang.labelled(&cat, &lang.t("product-year-count-field"))),
            },
            Err(()) => bad.push(lang.labelled(&cat, &lang.t("product-year-count-field"))),
        }
    }
    // What was typed stays in the form, with what is wrong above it.
    if !bad.is_empty() {
        let error = lang.t_args("products-bad-fields", &[("fields", &bad.join(", "))]);
        return version_form(&ctx, &latest, &f, Some(error));
    }
    let msg = product::PutProductsRequest {
        products: vec![passerelle_proto::convert::product_to_pb(&p, false)],
    };
    let r = c
        .call(&ctx.person, ctx.peer, msg, |r| c.product.put_products(r))
        .await;
    match r {
        Err(s) if s.code() == tonic::Code::InvalidArgument => {
            // The two refusals a person meets here, in words; any other as
            // the broker says it.
            use tonic_types::StatusExt;
            let fields: Vec<String> = s
                .get_details_bad_request()
                .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                .unwrap_or_default();
            let error = if fields.iter().any(|f| f.ends_with(".valid_from"))
                && p.valid_from > latest.valid_from
            {
                // In order, and still refused: it starts in the past.
                lang.t_args(
                    "products-starts-in-the-past",
                    &[
                        ("version", &latest.version.to_string()),
                        ("today", &lang.date(c.broker.clock().today())),
                    ],
                )
            } else if fields.iter().any(|f| f.ends_with(".valid_from")) {
                lang.t_args(
                    "products-starts-too-early",
                    &[
                        ("version", &latest.version.to_string()),
                        ("from", &lang.date(latest.valid_from)),
                    ],
                )
            } else if fields.iter().any(|f| f.ends_with(".version")) {
                lang.t_args(
                    "products-version-pending",
                    &[("version", &(latest.version + 1).to_string())],
                )
            } else {
                lang.t_args("products-form-error", &[("fields", &super::detail(&s))])
            };
            version_form(&ctx, &latest, &f, Some(error))
        }
        r => after_proposal(&ctx, r),
    }
}

// ---- periods ----

/// The forms a manager proposes a close or a settlement with, for the
/// periods page; `pending`: the mutuelle's proposals waiting for a second
/// person (a close already proposed is said, with its author and time,
/// where the button offered to propose it again).
pub(super) fn period_forms(
    ctx: &Ctx,
    ui: &Ui,
    scheme: &str,
    mutuelle: &str,
    periods: &[settlement::Period],
    pending: &[settlement::Proposal],
) -> String {
    if !manager(ctx) {
        return String::new();
    }
    let lang = ctx.lang;
    let mut out = String::new();
    let close_waiting = pending
        .iter()
        .find(|x| x.kind == settlement::ProposalKind::ClosePeriod as i32 && x.scheme_id == scheme);
    for p in periods {
        let open = p.state == settlement::PeriodState::Open as i32;
        if open && let Some(x) = close_waiting {
            out.push_str(&format!(
                "<p class=\"notice\"><a href=\"/approvals\">{}</a></p>",
                esc(&lang.t_args(
                    "periods-close-waiting",
                    &[
                        ("pair", &format!("{scheme} – {mutuelle}")),
                        (
                            "who",
                            &lang.named_identity(&x.proposed_by, &x.proposed_by_name)
                        ),
                        ("when", &lang.time(x.proposed_at_ms)),
                    ],
                ))
            ));
        } else if open && (p.claim_count > 0 || p.recoveries != 0) {
            out.push_str(&button_form(
                &format!("/proposals/close/{}/{}", url(scheme), url(mutuelle)),
                &ui.csrf,
                &lang.t_args(
                    "periods-propose-close",
                    &[("pair", &format!("{scheme} – {mutuelle}"))],
                ),
            ));
        } else if p.state == settlement::PeriodState::Closed as i32 {
            out.push_str(&format!(
                "<form method=\"post\" action=\"/proposals/settle/{}/{}/{}\" class=\"inline\">{}<label>{}<input name=\"reference\" required maxlength=\"128\"></label><button>{}</button></form> ",
                url(scheme),
                url(mutuelle),
                p.number,
                csrf_input(ui),
                esc(&lang.t("periods-reference")),
                esc(&lang.t_args("periods-propose-settle", &[("number", &p.number.to_string()), ("pair", &format!("{scheme} – {mutuelle}"))]))
            ));
        }
    }
    out
}

pub(super) async fn propose_close(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((scheme, mutuelle)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = manager_form(&c, &ctx, &f.csrf).await {
        return r;
    }
    let msg = settlement::ClosePeriodRequest {
        scheme_id: scheme,
        mutuelle_id: mutuelle,
    };
    let r = c
        .call(&ctx.person, ctx.peer, msg, |r| c.settlement.close_period(r))
        .await;
    after_proposal(&ctx, r)
}

#[derive(Deserialize)]
pub(super) struct SettleForm {
    // Missing: refused and audited as a wrong token (`check_csrf`), not
    // answered by the form reader in English.
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reference: String,
}

pub(super) async fn propose_settle(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((scheme, mutuelle, number)): Path<(String, String, u32)>,
    Form(f): Form<SettleForm>,
) -> Response {
    if let Err(r) = manager_form(&c, &ctx, &f.csrf).await {
        return r;
    }
    let msg = settlement::MarkSettledRequest {
        scheme_id: scheme,
        mutuelle_id: mutuelle,
        number,
        reference: f.reference.trim().to_string(),
    };
    let r = c
        .call(&ctx.person, ctx.peer, msg, |r| c.settlement.mark_settled(r))
        .await;
    after_proposal(&ctx, r)
}

// ---- approvals ----

/// A proposal's kind and state by the names the service gives them
/// ("close_period", "pending"), from the contract's enums.
fn enum_name(proto_name: Option<&str>, prefix: &str) -> String {
    proto_name
        .map(|n| n.trim_start_matches(prefix).to_ascii_lowercase())
        .unwrap_or_default()
}

fn kind_name(kind: i32) -> String {
    let k = settlement::ProposalKind::try_from(kind).ok();
    enum_name(k.map(|k| k.as_str_name()), "PROPOSAL_KIND_")
}

fn state_name(state: i32) -> String {
    let s = settlement::ProposalState::try_from(state).ok();
    enum_name(s.map(|s| s.as_str_name()), "PROPOSAL_STATE_")
}

/// A table as HTML, every value escaped (what `macros.html` renders), for
/// a table inside a card.
fn table_html(t: &Table) -> String {
    let mut out = String::from("<div class=\"scroll\"><table><thead><tr>");
    for (h, cls) in t.head.iter().zip(&t.cls) {
        out.push_str(&format!(
            "<th scope=\"col\" class=\"{cls}\">{}</th>",
            esc(h)
        ));
    }
    out.push_str("</tr></thead><tbody>");
    for r in &t.rows {
        out.push_str("<tr>");
        for (c, cls) in r.cells.iter().zip(&t.cls) {
            out.push_str(&format!("<td class=\"{cls}\">{}</td>", esc(c)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody>");
    if !t.foot.is_empty() {
        out.push_str("<tfoot><tr>");
        for (c, cls) in t.foot.iter().zip(&t.cls) {
            out.push_str(&format!("<td class=\"{cls}\">{}</td>", esc(c)));
        }
        out.push_str("</tr></tfoot>");
    }
    out.push_str("</table></div>");
    out
}

pub(super) async fn approvals(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Query(done): Query<Done>,
) -> Response {
    let lang = ctx.lang;
    let Some(mutuelle) = ctx.person.mutuelle().map(str::to_string) else {
        return ctx.forbidden().into_response();
    };
    // What waits (at most 20), then the latest decided (at most 100).
    let mut lists = Vec::new();
    for pending_only in [true, false] {
        let msg = settlement::ListProposalsRequest {
            mutuelle_id: mutuelle.clone(),
            pending_only,
        };
        match c
            .call(&ctx.person, ctx.peer, msg, |r| {
                c.settlement.list_proposals(r)
            })
            .await
        {
            Ok(r) => lists.push(r.proposals),
            Err(e) => return ctx.status(e).into_response(),
        }
    }
    let history = lists.pop().unwrap_or_default();
    let waiting = lists.pop().unwrap_or_default();
    let mut ui = ctx.ui(lang.t("approvals-title"), "approvals");
    ui.notice = done.notice(lang);
    let me = ctx.person.caller().display();
    let pending = settlement::ProposalState::Pending as i32;
    // People by the names the listing gives (a certificate is its
    // system).
    let who = |id: &str, name: &str| lang.named_identity(id, name);
    let mut cards = String::new();
    for p in &waiting {
        cards.push_str(&format!(
            "<section class=\"card\"><h2>{} {} · {}</h2><p>{}</p>",
            esc(&lang.t("approvals-number")),
            p.id,
            esc(&lang.proposal_kind(&kind_name(p.kind))),
            esc(&lang.change_words(&p.body)),
        ));
        // A product version is approved as a whole: its every rule is
        // shown, beside the buttons.
        if let Ok(Change::PublishProducts { products, .. }) = serde_json::from_str(&p.body) {
            for v in &products {
                let (title, t) = product_table(lang, v, false);
                cards.push_str(&format!("<h3>{}</h3>{}", esc(&title), table_html(&t)));
            }
        }
        cards.push_str(&format!(
            "<p class=\"meta\">{}</p>",
            esc(&lang.t_args(
                "approvals-proposed",
                &[
                    ("who", &who(&p.proposed_by, &p.proposed_by_name)),
                    ("when", &lang.time(p.proposed_at_ms)),
                    ("hash", p.hash.get(..16).unwrap_or(&p.hash)),
                ],
            )),
        ));
        if !manager(&ctx) {
            cards.push_str(&format!(
                "<p>{}</p>",
                esc(&lang.t("approvals-managers-only"))
            ));
        } else if p.proposed_by == me {
            cards.push_str(&format!("<p>{}</p>", esc(&lang.t("approvals-yours"))));
            cards.push_str(&format!(
                "<form method=\"post\" action=\"/approvals/{}/reject\" class=\"inline\">{}<input type=\"hidden\" name=\"reason\" value=\"\"><input type=\"hidden\" name=\"withdraw\" value=\"1\"><button>{}</button></form>",
                p.id,
                csrf_input(&ui),
                esc(&lang.t("approvals-withdraw"))
            ));
        } else {
            cards.push_str(&format!(
                "<form method=\"post\" action=\"/approvals/{id}/approve\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"hash\" value=\"{hash}\"><button>{approve}</button></form> \
                 <form method=\"post\" action=\"/approvals/{id}/reject\" class=\"inline\">{csrf}<label>{reason}<input name=\"reason\" maxlength=\"500\" required></label><button>{reject}</button></form>",
                id = p.id,
                csrf = csrf_input(&ui),
                hash = esc(&p.hash),
                approve = esc(&lang.t("approvals-approve")),
                reason = esc(&lang.t("approvals-reason")),
                reject = esc(&lang.t("approvals-reject")),
            ));
        }
        cards.push_str("</section>");
    }
    let mut t = Table::new(
        lang,
        &[
            "approvals-number",
            "approvals-change",
            "col-state",
            "approvals-proposed-by",
            "approvals-decided-by",
            "approvals-decided-at",
            "approvals-outcome",
        ],
        &[0],
    );
    for p in history.iter().filter(|p| p.state != pending) {
        t.row(
            String::new(),
            vec![
                p.id.to_string(),
                lang.change_words(&p.body),
                lang.proposal_state(&state_name(p.state), p.decided_by == p.proposed_by),
                who(&p.proposed_by, &p.proposed_by_name),
                who(&p.decided_by, &p.decided_by_name),
                lang.time(p.decided_at_ms),
                lang.proposal_outcome(&p.outcome),
            ],
        );
    }
    page(ListPage {
        ui,
        heading: lang.t_args("approvals-heading", &[("mutuelle", &mutuelle)]),
        form: if cards.is_empty() {
            format!("<p class=\"empty\">{}</p>", esc(&lang.t("approvals-none")))
        } else {
            cards
        },
        summary: String::new(),
        tables: vec![(lang.t("approvals-history"), t)],
        empty: lang.t("approvals-no-history"),
        after: String::new(),
    })
}

#[derive(Deserialize)]
pub(super) struct DecisionForm {
    // Missing: refused and audited as a wrong token (`check_csrf`), not
    // answered by the form reader in English.
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    hash: String,
    #[serde(default)]
    reason: String,
    /// The proposer's own withdrawal (no reason asked).
    #[serde(default)]
    withdraw: String,
}

pub(super) async fn decide(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<DecisionForm>,
) -> Response {
    if let Err(r) = check_csrf(&c, &ctx, &f.csrf).await {
        return r.into_response();
    }
    let r = match action.as_str() {
        "approve" => {
            let msg = settlement::ApproveProposalRequest { id, hash: f.hash };
            c.call(&ctx.person, ctx.peer, msg, |r| {
                c.settlement.approve_proposal(r)
            })
            .await
            .map(|_| "approved")
        }
        "reject" => {
            // A rejection says why, for the one who proposed (it showed
            // "rejetée" with nothing more); a withdrawal needs none. The
            // broker checks it too: a form sent as a withdrawal by someone
            // else than the proposer is refused there.
            if f.withdraw.is_empty() && f.reason.trim().is_empty() {
                return ctx
                    .error(StatusCode::BAD_REQUEST, ctx.t("approvals-reason-required"))
                    .into_response();
            }
            let msg = settlement::RejectProposalRequest {
                id,
                reason: f.reason,
            };
            c.call(&ctx.person, ctx.peer, msg, |r| {
                c.settlement.reject_proposal(r)
            })
            .await
            .map(|p| {
                if p.decided_by == p.proposed_by {
                    "withdrawn"
                } else {
                    "rejected"
                }
            })
        }
        _ => {
            return ctx
                .error(StatusCode::NOT_FOUND, ctx.t("error-not-found"))
                .into_response();
        }
    };
    match r {
        Ok(done) => Reply::Redirect(format!("/approvals?done={done}"), Vec::new()).into_response(),
        Err(s) if s.code() == tonic::Code::PermissionDenied => ctx
            .error(StatusCode::FORBIDDEN, ctx.t("approvals-not-yours"))
            .into_response(),
        // A colleague's proposal rejected without a reason (a form sent
        // as a withdrawal): the broker refuses it, said in their language.
        Err(s) if names_field(&s, "reason") => ctx
            .error(StatusCode::BAD_REQUEST, ctx.t("approvals-reason-required"))
            .into_response(),
        // Decided already: most often this very person's first tap, whose
        // answer a slow link had not shown yet (a double tap). The page
        // of approvals says so above the history that shows how it ended,
        // where an error page quoted the broker's English.
        Err(s) if decided_already(&s) => {
            Reply::Redirect("/approvals?done=already-decided".into(), Vec::new()).into_response()
        }
        Err(s) => ctx.status(s).into_response(),
    }
}

/// Whether the broker refused a request for this field (INVALID_ARGUMENT
/// naming it).
fn names_field(s: &tonic::Status, field: &str) -> bool {
    use tonic_types::StatusExt;
    s.code() == tonic::Code::InvalidArgument
        && s.get_details_bad_request()
            .is_some_and(|b| b.field_violations.iter().any(|v| v.field == field))
}

/// Whether the broker refused a decision because the proposal was decided
/// already (its ErrorInfo reason).
fn decided_already(s: &tonic::Status) -> bool {
    use tonic_types::StatusExt;
    s.get_details_error_info()
        .is_some_and(|i| i.reason == crate::service::approvals::PROPOSAL_DECIDED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_and_amounts_are_read_as_people_type_them() {
        assert_eq!(parse_percent("80"), Some(8_000));
        assert_eq!(parse_percent("80,5"), Some(8_050));
        assert_eq!(parse_percent("12.25 %"), Some(1_225));
        assert_eq!(parse_percent("100"), Some(10_000));
        assert_eq!(parse_percent("100,01"), None);
        assert_eq!(parse_percent("8,005"), None);
        assert_eq!(parse_percent("-5"), None);
        assert_eq!(parse_percent(""), None);
        assert_eq!(parse_amount("50 000"), Ok(Some(50_000)));
        assert_eq!(parse_amount("50\u{202f}000"), Ok(Some(50_000)));
        assert_eq!(parse_amount(""), Ok(None));
        assert_eq!(parse_amount("5e3"), Err(()));
        assert_eq!(parse_amount("9999999999999999"), Err(()));
        assert_eq!(Lang::Fr.percent(8_050), "80,5\u{a0}%");
        assert_eq!(Lang::En.percent(10_000), "100%");
        assert_eq!(percent_text(8_050), "80,50");
        assert_eq!(parse_percent(&percent_text(8_050)), Some(8_050));
        let none = |_: &str| None;
        assert_eq!(Lang::Fr.identity("mutuelle:MUT-A/user:awa", none), "awa");
        assert_eq!(
            Lang::Fr.identity("mutuelle:MUT-A/user:awa", |_| Some("Awa K.".into())),
            "Awa K."
        );
        assert_eq!(
            Lang::Fr.identity("mutuelle:MUT-A", none),
            "le système de MUT-A (certificat)"
        );
        assert_eq!(
            Lang::Fr.proposal_outcome("period 3 closed"),
            "période 3 clôturée"
        );
        assert_eq!(Lang::Fr.proposal_outcome("erreur x"), "erreur x");
        // A close refused because the period changed, as the store says it.
        let changed = crate::store::StoreError::PeriodChanged {
            scheme_id: "CNSS".into(),
            mutuelle_id: "MUT-A".into(),
            then: 2,
            now: 1,
        }
        .to_string();
        assert_eq!(
            Lang::Fr.proposal_outcome(&changed),
            "la période a changé depuis la proposition (2 demandes alors, 1 maintenant, ou leurs montants) : rien n'a été clôturé, proposez de nouveau la clôture"
        );
        assert_eq!(
            Lang::En.proposal_outcome(&changed),
            "the period changed since the proposal (2 claims then, 1 now, or their amounts): nothing was closed; propose the close again"
        );
        // As many claims: their amounts changed. A reason typed by a
        // person that only looks like it is left as it is.
        let amounts = changed.replace("(2 claim(s) then, 1 now", "(2 claim(s) then, 2 now");
        assert_eq!(
            Lang::Fr.proposal_outcome(&amounts),
            "les montants de la période ont changé depuis la proposition : rien n'a été clôturé, proposez de nouveau la clôture"
        );
        let typed = changed.replace("2 claim(s)", "deux claim(s)");
        assert_eq!(Lang::Fr.proposal_outcome(&typed), typed);
    }
}
