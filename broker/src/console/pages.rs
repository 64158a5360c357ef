//! The console's pages: one handler per page, each the same shape (who is
//! signed in, what they asked, the service calls as them, the page in their
//! language). Templates are under `broker/templates/console`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use passerelle_files::cells;
use passerelle_proto::admin::v1 as admin;
use passerelle_proto::roster::v1 as roster;
use passerelle_proto::settlement::v1 as settlement;
use serde::Deserialize;

use super::i18n::{Lang, parse_date};
use super::{Console, LANG_COOKIE, PRE_COOKIE, Peer, Reply, SESSION_COOKIE, cookie, csrf};
use crate::service::users::{ABSOLUTE_MS, Person, SignInError, random_token};
use crate::store::users::UserRole;
use admin::admin_service_server::AdminService;
use roster::roster_service_server::RosterService;
use settlement::settlement_service_server::SettlementService;

mod authorizations;
mod changes;
mod opening;
mod remittance;

pub(super) const CSS: &str = include_str!("../../console/console.css");

/// The largest roster upload (the file and the form around it).
const MAX_UPLOAD_BYTES: usize = passerelle_files::xlsx::MAX_XLSX_BYTES + 64 * 1024;

/// Lines of a statement shown on one page of the console: about 80 KB of
/// HTML (500 made 160 KB, over the 100 KB a page of the console weighs at
/// most on a slow link; a mutuelle clerk's trial).
const STATEMENT_PAGE: u32 = 250;
/// Lines of a statement an export reads at once (one page of the
/// statement): what an export holds in memory, whatever the statement's
/// size.
pub(super) const EXPORT_PAGE: u32 = 5_000;
/// Statement exports under way at once in one broker process (CSV and
/// workbook): each holds up to three pages of lines (the one read, the one
/// written, one between), a database connection while it reads one, and
/// for a workbook a blocking thread and a temporary file; one more is
/// told to try again in a moment.
pub const MAX_EXPORTS: usize = 8;
/// Of those, one person's at once: a few large downloads a person left
/// stalled (each holds its place until the connection's limit) never take
/// every place.
pub const MAX_EXPORTS_PER_PERSON: usize = 2;
/// The lines a workbook holds: an Excel sheet's 1,048,576 rows less the
/// header and the totals rows (three where something is recovered, and a
/// closed period's count of its claims). A larger statement is exported as
/// CSV.
pub(super) const XLSX_MAX_LINES: u32 = 1_048_576 - 5;

pub fn router(c: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/password", get(password_page).post(password_change))
        .route("/lang/{code}", get(set_lang))
        .route("/mutuelle", post(switch_mutuelle))
        .route("/claims", get(claims))
        .route("/claims/{scheme}/{claim}", get(claim))
        .route("/claims/{scheme}/{claim}/retry", post(claim_retry))
        .route("/members", get(members))
        .route(
            "/roster",
            get(roster_page)
                .post(roster_post)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route(
            "/opening",
            get(opening::page_get)
                .post(opening::page_post)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/periods", get(periods))
        .route("/periods/{scheme}/{mutuelle}/{number}", get(statement))
        .route(
            "/periods/{scheme}/{mutuelle}/{number}/statement.csv",
            get(statement_csv),
        )
        .route(
            "/periods/{scheme}/{mutuelle}/{number}/statement.xlsx",
            get(statement_xlsx),
        )
        .route(
            "/periods/{scheme}/{mutuelle}/{number}/remittance",
            get(remittance::page_of),
        )
        .route(
            "/periods/{scheme}/{mutuelle}/{number}/remittance/{payee_type}/{file}",
            get(remittance::file_of),
        )
        .route("/products", get(changes::products))
        .route(
            "/products/{id}/new",
            get(changes::new_version_form).post(changes::new_version),
        )
        .route("/approvals", get(changes::approvals))
        .route("/authorizations", get(authorizations::list))
        .route("/approvals/{id}/{action}", post(changes::decide))
        .route(
            "/proposals/close/{scheme}/{mutuelle}",
            post(changes::propose_close),
        )
        .route(
            "/proposals/settle/{scheme}/{mutuelle}/{number}",
            post(changes::propose_settle),
        )
        .route("/partners", get(partners))
        .route("/certificates", get(certificates))
        .route("/partners/{id}/{action}", post(partner_action))
        .route("/users", get(users).post(user_add))
        .route("/users/{login}/revoke", post(revoke))
        .route("/users/{login}/{action}", post(user_state))
        .route("/static/console.css", get(css))
        .method_not_allowed_fallback(not_allowed)
        .fallback(not_found)
        .with_state(c)
}

// ---------------------------------------------------------------- the frame

/// What the page frame shows of the person.
pub struct PersonView {
    signed_in_as: String,
    mutuelle: bool,
    operator: bool,
    scheme: bool,
    mutuelles: Vec<String>,
    current: String,
}

/// What every page's frame needs.
pub struct Ui {
    lang: Lang,
    title: String,
    nav: &'static str,
    csrf: String,
    person: Option<PersonView>,
    notice: String,
    css_version: &'static str,
}

impl Ui {
    pub fn t(&self, key: &str) -> String {
        self.lang.t(key)
    }
}

fn css_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| crate::audit::hash(CSS.as_bytes())[..12].to_string())
}

fn role_key(r: UserRole) -> &'static str {
    match r {
        UserRole::Clerk => "role-clerk",
        UserRole::Manager => "role-manager",
        UserRole::SchemeStaff => "role-scheme",
        UserRole::Operator => "role-operator",
    }
}

/// One signed-in request: who, from where, in which language.
#[cfg_attr(test, derive(Clone))]
struct Ctx {
    person: Person,
    peer: SocketAddr,
    lang: Lang,
}

impl Ctx {
    fn ui(&self, title: String, nav: &'static str) -> Ui {
        let p = &self.person;
        let role = self.lang.t(role_key(p.user.role));
        Ui {
            lang: self.lang,
            title,
            nav,
            csrf: csrf::mask(&p.session.csrf_secret),
            person: Some(PersonView {
                signed_in_as: self.lang.t_args(
                    "signed-in-as",
                    &[("name", &p.user.display_name), ("role", &role)],
                ),
                mutuelle: p.user.role.is_mutuelle(),
                operator: p.user.role == UserRole::Operator,
                scheme: p.user.role == UserRole::SchemeStaff,
                mutuelles: if p.user.role.is_mutuelle() {
                    p.user.scope.clone()
                } else {
                    Vec::new()
                },
                current: match p.user.role {
                    UserRole::SchemeStaff => p.user.scope.first().cloned().unwrap_or_default(),
                    _ => p.mutuelle().unwrap_or_default().to_string(),
                },
            }),
            notice: String::new(),
            css_version: css_version(),
        }
    }

    fn t(&self, key: &str) -> String {
        self.lang.t(key)
    }

    /// An error page for a service call's refusal.
    fn status(&self, s: tonic::Status) -> Reply {
        let (code, message) = match s.code() {
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
                (StatusCode::FORBIDDEN, self.t("error-forbidden"))
            }
            tonic::Code::NotFound => (StatusCode::NOT_FOUND, self.t("error-not-found")),
            // A refusal says what it means in the person's language, the
            // broker's own words as a detail.
            tonic::Code::FailedPrecondition => (StatusCode::BAD_REQUEST, self.lang.refusal(&s)),
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => (
                StatusCode::BAD_REQUEST,
                self.lang
                    .t_args("error-invalid", &[("detail", &detail(&s))]),
            ),
            tonic::Code::Unavailable
            | tonic::Code::ResourceExhausted
            | tonic::Code::DeadlineExceeded => (
                StatusCode::SERVICE_UNAVAILABLE,
                self.lang
                    .t_args("error-unavailable", &[("detail", s.message())]),
            ),
            _ => {
                tracing::error!(code = ?s.code(), message = s.message(), "console: a service call failed");
                (StatusCode::INTERNAL_SERVER_ERROR, self.t("error-internal"))
            }
        };
        self.error(code, message)
    }

    fn error(&self, code: StatusCode, message: String) -> Reply {
        error_page(self.ui(self.t("error-title"), ""), code, message)
    }

    fn forbidden(&self) -> Reply {
        self.error(StatusCode::FORBIDDEN, self.t("error-forbidden"))
    }

    /// An error page for the store (or the service) failing under a page:
    /// the detail, in the store's English, goes to the log; the person
    /// reads the catalogue's sentence in their language.
    fn unavailable(&self, doing: &'static str, e: &dyn std::fmt::Display) -> Reply {
        tracing::warn!(error = %e, doing, "console: the store failed");
        self.error(
            StatusCode::SERVICE_UNAVAILABLE,
            self.t("error-store-unavailable"),
        )
    }
}

/// The field violations of an INVALID_ARGUMENT, else its message.
fn detail(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let v: Vec<String> = s
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|f| format!("{}: {}", f.field, f.description))
                .collect()
        })
        .unwrap_or_default();
    if v.is_empty() {
        s.message().to_string()
    } else {
        v.join("; ")
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    ui: Ui,
    code: u16,
    message: String,
}

fn error_page(ui: Ui, code: StatusCode, message: String) -> Reply {
    let html = ErrorPage {
        ui,
        code: code.as_u16(),
        message,
    }
    .render()
    .unwrap_or_else(|e| format!("error {code}: {e}"));
    Reply::Error(code, html)
}

fn page(t: impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: a page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "page error").into_response()
        }
    }
}

fn to_sign_in() -> Reply {
    Reply::Redirect("/sign-in".into(), Vec::new())
}

/// Every signed-in page's first argument: who is signed in, from where, in
/// which language; without a current session, the way to the sign-in page.
impl axum::extract::FromRequestParts<Arc<Console>> for Ctx {
    type Rejection = Reply;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        c: &Arc<Console>,
    ) -> Result<Self, Reply> {
        let peer = parts
            .extensions
            .get::<Peer>()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0);
        let ctx = signed_in(c, &parts.headers, peer).await?;
        // A password someone else gave: its owner chooses their own
        // before anything else (signing out, or the language, aside).
        if ctx.person.user.must_change && !WHILE_MUST_CHANGE.contains(&parts.uri.path()) {
            return Err(Reply::Redirect("/password".into(), Vec::new()));
        }
        Ok(ctx)
    }
}

/// The pages a person whose password must change may reach.
const WHILE_MUST_CHANGE: [&str; 2] = ["/password", "/sign-out"];

/// Back to the sign-in page, saying the session ended, its cookie
/// cleared.
fn session_ended() -> Reply {
    Reply::Redirect(
        "/sign-in?expired=1".into(),
        vec![(
            header::SET_COOKIE,
            super::secret_cookie(SESSION_COOKIE, "", 0),
        )],
    )
}

/// The signed-in person of a request, or the way to the sign-in page. A
/// session the store cannot read refuses (503): never signed in by default.
async fn signed_in(c: &Console, headers: &HeaderMap, peer: SocketAddr) -> Result<Ctx, Reply> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Err(to_sign_in());
    };
    match c.broker.person(&id).await {
        Ok(Some(person)) => {
            let lang = super::lang_of(headers, Some(&person));
            Ok(Ctx { person, peer, lang })
        }
        Ok(None) => Err(session_ended()),
        Err(e) => {
            let lang = super::lang_of(headers, None);
            // The store's words are for the log, not for a visitor.
            tracing::warn!(error = %e, "console: a session could not be read");
            Err(error_page(
                anonymous_ui(lang, String::new()),
                StatusCode::SERVICE_UNAVAILABLE,
                lang.t("signin-unavailable"),
            ))
        }
    }
}

/// A form's CSRF token, checked against the session's secret; a mismatch is
/// refused and audited.
async fn check_csrf(c: &Console, ctx: &Ctx, token: &str) -> Result<(), Reply> {
    if csrf::check(&ctx.person.session.csrf_secret, token) {
        return Ok(());
    }
    c.broker
        .console_audit(
            &ctx.person,
            &ctx.peer.ip().to_string(),
            "ConsoleForm",
            &ctx.person.user.login,
            "refused: CSRF token missing or wrong",
        )
        .await;
    Err(ctx.error(StatusCode::FORBIDDEN, ctx.t("error-csrf")))
}

fn anonymous_ui(lang: Lang, csrf: String) -> Ui {
    Ui {
        lang,
        title: lang.t("signin-title"),
        nav: "",
        csrf,
        person: None,
        notice: String::new(),
        css_version: css_version(),
    }
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            // The page links it with its hash: a new version is a new URL.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        CSS,
    )
}

async fn not_found(
    State(c): State<Arc<Console>>,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
) -> Reply {
    no_page(&c, &headers, peer, StatusCode::NOT_FOUND, "error-not-found").await
}

/// An error page for a request no page answers, in words (`key`); signed
/// in, the page keeps its navigation.
async fn no_page(
    c: &Console,
    headers: &HeaderMap,
    peer: SocketAddr,
    code: StatusCode,
    key: &str,
) -> Reply {
    if let Ok(ctx) = signed_in(c, headers, peer).await {
        return ctx.error(code, ctx.t(key));
    }
    let lang = super::lang_of(headers, None);
    error_page(anonymous_ui(lang, String::new()), code, lang.t(key))
}

/// A form's address opened as a page (a bookmark, a link copied from the
/// address bar): said in words, not axum's empty 405.
async fn not_allowed(
    State(c): State<Arc<Console>>,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
) -> Reply {
    no_page(
        &c,
        &headers,
        peer,
        StatusCode::METHOD_NOT_ALLOWED,
        "error-not-allowed",
    )
    .await
}

/// What an action just did, shown once on the page it returns to
/// (`?done=<key>`): only keys of the catalogue's `done-` family.
#[derive(Deserialize, Default)]
struct Done {
    #[serde(default)]
    done: String,
}

impl Done {
    fn notice(&self, lang: Lang) -> String {
        const KEYS: [&str; 12] = [
            "paused",
            "resumed",
            "revoked",
            "disabled",
            "enabled",
            "retried",
            "proposed",
            "unchanged",
            "approved",
            "rejected",
            "withdrawn",
            "already-decided",
        ];
        if KEYS.contains(&self.done.as_str()) {
            lang.t(&format!("done-{}", self.done))
        } else {
            String::new()
        }
    }
}

async fn set_lang(Path(code): Path<String>, headers: HeaderMap) -> Reply {
    let lang = Lang::parse(&code).unwrap_or(Lang::Fr);
    // Back to the page it was chosen on (same origin only).
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_string()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    Reply::Redirect(
        back,
        vec![(
            header::SET_COOKIE,
            HeaderValue::from_str(&format!(
                "{LANG_COOKIE}={}; Path=/; Secure; SameSite=Lax; Max-Age=31536000",
                lang.code()
            ))
            .expect("a language code"),
        )],
    )
}

// ---------------------------------------------------------------- tables

/// A table as the `table` macro renders it.
#[derive(Default)]
pub struct Table {
    head: Vec<String>,
    /// Per column: "num" (right-aligned figures) or "".
    cls: Vec<&'static str>,
    rows: Vec<TRow>,
    foot: Vec<String>,
}

pub struct TRow {
    /// The first cell links there when not empty.
    href: String,
    /// One cell in a table of several columns spans them all (a sentence
    /// such as "nothing yet", `macros.html`).
    cells: Vec<String>,
}

impl Table {
    /// Columns by catalogue key; those listed in `num` hold figures.
    fn new(lang: Lang, keys: &[&str], num: &[usize]) -> Table {
        Table {
            head: keys.iter().map(|k| lang.t(k)).collect(),
            cls: (0..keys.len())
                .map(|i| if num.contains(&i) { "num" } else { "" })
                .collect(),
            rows: Vec::new(),
            foot: Vec::new(),
        }
    }

    fn row(&mut self, href: String, cells: Vec<String>) {
        self.rows.push(TRow { href, cells });
    }
}

#[derive(Template)]
#[template(path = "console/list.html")]
struct ListPage {
    ui: Ui,
    heading: String,
    /// Trusted HTML built by [`Html`] helpers (every value escaped).
    form: String,
    summary: String,
    tables: Vec<(String, Table)>,
    empty: String,
    after: String,
}

/// Escapes text for HTML.
/// A one-button form that posts to `action` with the page's CSRF token.
fn button_form(action: &str, csrf: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>{}</button></form> ",
        esc(action),
        esc(csrf),
        esc(label)
    )
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a path segment or query value.
fn url(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A definition list of facts (escaped).
fn facts(items: &[(String, String)]) -> String {
    let mut out = String::from("<dl class=\"facts\">");
    for (k, v) in items {
        out.push_str(&format!("<dt>{}</dt><dd>{}</dd>", esc(k), esc(v)));
    }
    out.push_str("</dl>");
    out
}

// ---------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage {
    ui: Ui,
    error: String,
    login: String,
}

#[derive(Deserialize)]
struct SignInQuery {
    #[serde(default)]
    expired: Option<String>,
    /// Back from a change of one's own password.
    #[serde(default)]
    changed: Option<String>,
}

/// The sign-in page. Before sign-in, the form's CSRF token is masked from a
/// pre-session secret in its own cookie.
async fn sign_in_page(
    State(c): State<Arc<Console>>,
    Extension(Peer(peer)): Extension<Peer>,
    Query(q): Query<SignInQuery>,
    headers: HeaderMap,
) -> Response {
    if signed_in(&c, &headers, peer).await.is_ok() {
        return Reply::Redirect("/".into(), Vec::new()).into_response();
    }
    let lang = super::lang_of(&headers, None);
    let error = if q.expired.is_some() {
        lang.t("signin-expired")
    } else {
        String::new()
    };
    let notice = if q.changed.is_some() {
        lang.t("password-changed")
    } else {
        String::new()
    };
    sign_in_form_with(&headers, lang, error, notice, String::new(), StatusCode::OK)
}

fn sign_in_form(
    headers: &HeaderMap,
    lang: Lang,
    error: String,
    login: String,
    code: StatusCode,
) -> Response {
    sign_in_form_with(headers, lang, error, String::new(), login, code)
}

/// The sign-in form with a notice above it (`notice`: what just happened).
fn sign_in_form_with(
    headers: &HeaderMap,
    lang: Lang,
    error: String,
    notice: String,
    login: String,
    code: StatusCode,
) -> Response {
    let (secret, set) = match cookie(headers, PRE_COOKIE).filter(|s| !s.is_empty()) {
        Some(s) => (s, false),
        None => (random_token(), true),
    };
    let mut ui = anonymous_ui(lang, csrf::mask(&secret));
    ui.notice = notice;
    let mut r = page(SignInPage { ui, error, login });
    *r.status_mut() = code;
    if set {
        r.headers_mut().append(
            header::SET_COOKIE,
            super::secret_cookie(PRE_COOKIE, &secret, 3600),
        );
    }
    r
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

async fn sign_in(
    State(c): State<Arc<Console>>,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    let lang = super::lang_of(&headers, None);
    let pre = cookie(&headers, PRE_COOKIE).unwrap_or_default();
    if !csrf::check(&pre, &f.csrf) {
        c.broker
            .anonymous_audit(
                &peer.ip().to_string(),
                "SignIn",
                "refused: CSRF token missing or wrong",
            )
            .await;
        return sign_in_form(
            &headers,
            lang,
            lang.t("error-csrf"),
            f.login,
            StatusCode::FORBIDDEN,
        );
    }
    let address = peer.ip().to_string();
    match c
        .broker
        .sign_in(&f.login, &f.password, &f.code, &address)
        .await
    {
        Ok((id, person)) => {
            let lang_cookie = Lang::parse(&person.user.lang);
            let mut headers = vec![
                (
                    header::SET_COOKIE,
                    super::secret_cookie(SESSION_COOKIE, &id, ABSOLUTE_MS / 1000),
                ),
                (header::SET_COOKIE, super::secret_cookie(PRE_COOKIE, "", 0)),
            ];
            if let Some(l) = lang_cookie {
                headers.push((
                    header::SET_COOKIE,
                    HeaderValue::from_str(&format!(
                        "{LANG_COOKIE}={}; Path=/; Secure; SameSite=Lax; Max-Age=31536000",
                        l.code()
                    ))
                    .expect("a language code"),
                ));
            }
            Reply::Redirect("/".into(), headers).into_response()
        }
        Err(e) => {
            let (msg, code) = match e {
                SignInError::Refused => (lang.t("signin-refused"), StatusCode::UNAUTHORIZED),
                SignInError::TemporaryExpired => (
                    lang.t_args(
                        "signin-temporary-expired",
                        &[(
                            "hours",
                            &(crate::service::users::TEMPORARY_PASSWORD_MS / 3_600_000).to_string(),
                        )],
                    ),
                    StatusCode::UNAUTHORIZED,
                ),
                SignInError::Wait(s) => (
                    lang.t_args("signin-wait", &[("seconds", &s.to_string())]),
                    StatusCode::TOO_MANY_REQUESTS,
                ),
                SignInError::Unavailable(why) => {
                    tracing::warn!(error = %why, "console: sign-in unavailable");
                    (
                        lang.t("signin-unavailable"),
                        StatusCode::SERVICE_UNAVAILABLE,
                    )
                }
            };
            sign_in_form(&headers, lang, msg, f.login, code)
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(State(c): State<Arc<Console>>, ctx: Ctx, Form(f): Form<CsrfForm>) -> Reply {
    if let Err(r) = check_csrf(&c, &ctx, &f.csrf).await {
        return r;
    }
    if let Err(e) = c
        .broker
        .sign_out(&ctx.person, &ctx.peer.ip().to_string())
        .await
    {
        return ctx.unavailable("signing out", &e);
    }
    Reply::Redirect(
        "/sign-in".into(),
        vec![(
            header::SET_COOKIE,
            super::secret_cookie(SESSION_COOKIE, "", 0),
        )],
    )
}

/// A person's own password: the form (`error`: why the last try was
/// refused), saying so when someone else gave the current one.
fn password_form(ctx: &Ctx, error: &str, code: StatusCode) -> Response {
    let lang = ctx.lang;
    let user = &ctx.person.user;
    let ui = ctx.ui(lang.t("password-title"), "password");
    let mut form = String::new();
    if user.must_change {
        form.push_str(&format!(
            "<p class=\"notice\" role=\"status\">{}</p>",
            esc(&lang.t("password-must-change"))
        ));
    }
    if !error.is_empty() {
        form.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            esc(error)
        ));
    }
    let code_field = if user.role == UserRole::Operator || !user.totp_secret.is_empty() {
        format!(
            "<label>{}<input name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{{6}}\" maxlength=\"6\" required></label>",
            esc(&lang.t("signin-code"))
        )
    } else {
        String::new()
    };
    let (min, max) = (
        crate::service::users::MIN_PASSWORD,
        crate::service::users::MAX_PASSWORD,
    );
    form.push_str(&format!(
        "<form method=\"post\" action=\"/password\" class=\"card narrow\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"login\" value=\"{}\" autocomplete=\"username\">\
         <label>{}<input name=\"current\" type=\"password\" autocomplete=\"current-password\" required></label>{code_field}\
         <label>{}<input name=\"new\" type=\"password\" autocomplete=\"new-password\" minlength=\"{min}\" maxlength=\"{max}\" required><small>{}</small></label>\
         <label>{}<input name=\"confirm\" type=\"password\" autocomplete=\"new-password\" minlength=\"{min}\" maxlength=\"{max}\" required></label>\
         <button class=\"primary\">{}</button></form>",
        esc(&ui.csrf),
        esc(&user.login),
        esc(&lang.t("password-current")),
        esc(&lang.t("password-new")),
        esc(&lang.t_args("password-rule", &[("min", &min.to_string())])),
        esc(&lang.t("password-confirm")),
        esc(&lang.t("password-submit")),
    ));
    let heading = lang.t("password-title");
    let mut r = page(ListPage {
        ui,
        heading,
        form,
        summary: String::new(),
        tables: Vec::new(),
        empty: String::new(),
        after: String::new(),
    });
    *r.status_mut() = code;
    r
}

async fn password_page(ctx: Ctx) -> Response {
    password_form(&ctx, "", StatusCode::OK)
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

/// A person changes their own password: then signs in again with it (every
/// session of the account ended, this one too).
async fn password_change(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Form(f): Form<PasswordForm>,
) -> Response {
    if let Err(r) = check_csrf(&c, &ctx, &f.csrf).await {
        return r.into_response();
    }
    let lang = ctx.lang;
    if f.new != f.confirm {
        return password_form(&ctx, &lang.t("password-mismatch"), StatusCode::BAD_REQUEST);
    }
    use crate::service::users::PasswordChangeError as E;
    let address = ctx.peer.ip().to_string();
    match c
        .broker
        .change_own_password(&ctx.person, &f.current, &f.code, &f.new, &address)
        .await
    {
        Ok(None) => Reply::Redirect(
            "/sign-in?changed=1".into(),
            vec![(
                header::SET_COOKIE,
                super::secret_cookie(SESSION_COOKIE, "", 0),
            )],
        )
        .into_response(),
        // A new second factor, of this person's own: shown here once, to
        // them only (the session has ended: they sign in again with it).
        Ok(Some(secret)) => {
            let title = lang.t("password-second-factor-title");
            let mut items = vec![(lang.t("users-totp"), secret.clone())];
            if let Some(url) = crate::service::users::totp_url(&secret, &ctx.person.user.login) {
                items.push((lang.t("password-second-factor-url"), url));
            }
            let mut r = page(ListPage {
                ui: anonymous_ui(lang, String::new()),
                heading: title,
                form: facts(&items),
                summary: lang.t("password-second-factor"),
                tables: Vec::new(),
                empty: String::new(),
                after: format!(
                    "<p><a href=\"/sign-in?changed=1\">{}</a></p>",
                    esc(&lang.t("password-sign-in-again"))
                ),
            });
            r.headers_mut().append(
                header::SET_COOKIE,
                super::secret_cookie(SESSION_COOKIE, "", 0),
            );
            r
        }
        Err(e) => {
            let (msg, code) = match e {
                E::Length => (
                    lang.t_args(
                        "password-length",
                        &[
                            ("min", &crate::service::users::MIN_PASSWORD.to_string()),
                            ("max", &crate::service::users::MAX_PASSWORD.to_string()),
                        ],
                    ),
                    StatusCode::BAD_REQUEST,
                ),
                E::Same => (lang.t("password-same"), StatusCode::BAD_REQUEST),
                E::Weak => (lang.t("password-weak"), StatusCode::BAD_REQUEST),
                E::Changed => (lang.t("password-changed-meanwhile"), StatusCode::CONFLICT),
                E::Credentials(SignInError::Refused | SignInError::TemporaryExpired) => (
                    // A code is asked of an operator, or of an account
                    // that has a second factor, only.
                    lang.t(
                        if ctx.person.user.role == UserRole::Operator
                            || !ctx.person.user.totp_secret.is_empty()
                        {
                            "password-current-wrong"
                        } else {
                            "password-current-wrong-no-code"
                        },
                    ),
                    StatusCode::UNAUTHORIZED,
                ),
                E::Credentials(SignInError::Wait(s)) => (
                    lang.t_args("signin-wait", &[("seconds", &s.to_string())]),
                    StatusCode::TOO_MANY_REQUESTS,
                ),
                E::Credentials(SignInError::Unavailable(why)) => {
                    tracing::warn!(error = %why, "console: a password change failed");
                    (
                        lang.t("signin-unavailable"),
                        StatusCode::SERVICE_UNAVAILABLE,
                    )
                }
            };
            password_form(&ctx, &msg, code)
        }
    }
}

#[derive(Deserialize)]
struct SwitchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    mutuelle: String,
}

/// A federation's manager switches to another of their mutuelles.
async fn switch_mutuelle(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Form(f): Form<SwitchForm>,
) -> Reply {
    if let Err(r) = check_csrf(&c, &ctx, &f.csrf).await {
        return r;
    }
    match c.broker.switch_mutuelle(&ctx.person, &f.mutuelle).await {
        Ok(()) => Reply::Redirect("/".into(), Vec::new()),
        Err(_) => ctx.forbidden(),
    }
}

// ---------------------------------------------------------------- dashboard

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    ui: Ui,
    cards: Vec<(String, String)>,
    /// Inline SVG charts (built with every value escaped) and their
    /// captions.
    charts: Vec<(String, String)>,
    tables: Vec<(String, Table)>,
}

/// Every configured scheme id, sorted.
fn schemes(c: &Console) -> Vec<String> {
    let mut s: Vec<String> = c.broker.directory().schemes.iter().cloned().collect();
    s.sort();
    s
}

async fn dashboard(State(c): State<Arc<Console>>, ctx: Ctx) -> Response {
    let lang = ctx.lang;
    let mut cards = Vec::new();
    let mut tables = Vec::new();
    let mut charts: Vec<(String, String)> = Vec::new();
    match ctx.person.user.role {
        UserRole::Clerk | UserRole::Manager => {
            let mid = ctx.person.mutuelle().unwrap_or_default().to_string();
            let (mut count, mut due, mut currency) = (0u64, 0i64, String::from("XOF"));
            let mut bars: Vec<(String, i64, String)> = Vec::new();
            let mut t = Table::new(
                lang,
                &[
                    "col-scheme",
                    "periods-claims",
                    "col-mutuelle-share",
                    "periods-recoveries",
                    "periods-net",
                ],
                &[1, 2, 3, 4],
            );
            for s in schemes(&c) {
                let msg = settlement::ListPeriodsRequest {
                    scheme_id: s.clone(),
                    mutuelle_id: mid.clone(),
                };
                let r = match c
                    .call(&ctx.person, ctx.peer, msg, |r| c.settlement.list_periods(r))
                    .await
                {
                    Ok(r) => r,
                    Err(e) => return ctx.status(e).into_response(),
                };
                let Some(open) = r
                    .periods
                    .iter()
                    .find(|p| p.state == settlement::PeriodState::Open as i32)
                else {
                    continue;
                };
                if open.claim_count == 0 && open.net_due == 0 {
                    continue;
                }
                count += u64::from(open.claim_count);
                due = due.saturating_add(open.net_due);
                currency = open.currency.clone();
                bars.push((
                    s.clone(),
                    open.net_due,
                    lang.money(open.net_due, &open.currency),
                ));
                let m = open.totals.as_ref().map_or(0, |t| t.mutuelle_share);
                t.row(
                    format!("/periods/{}/{}/0", url(&s), url(&mid)),
                    vec![
                        s.clone(),
                        lang.amount(open.claim_count as i64, ""),
                        lang.money(m, &open.currency),
                        // Negative beside M: M + indus = net due.
                        lang.money(open.recoveries.saturating_neg(), &open.currency),
                        lang.money(open.net_due, &open.currency),
                    ],
                );
            }
            let pending = match count_claims(&c, &ctx, "", &mid, "pending_partner").await {
                Ok(n) => n,
                Err(e) => return ctx.status(e).into_response(),
            };
            cards.push((lang.t("dashboard-claims"), lang.amount(count as i64, "")));
            cards.push((lang.t("dashboard-due"), lang.money(due, &currency)));
            cards.push((lang.t("dashboard-pending"), lang.amount(pending as i64, "")));
            if !bars.is_empty() {
                charts.push((bar_chart(&lang.t("chart-due"), &bars), lang.t("chart-due")));
            }
            match claims_per_day(&c, &ctx, "", &mid).await {
                Ok(Some(ch)) => charts.push(ch),
                Ok(None) => {}
                Err(e) => return ctx.status(e).into_response(),
            }
            // No claim in any open period (the month just closed): said
            // across the table (a row of one cell), rather than headings
            // over nothing.
            if t.rows.is_empty() {
                t.row(String::new(), vec![lang.t("dashboard-nothing-open")]);
            }
            tables.push((lang.t("dashboard-per-scheme"), t));
            // A federation's manager: the open periods of each of their
            // mutuelles, and the total, each read as that mutuelle.
            if ctx.person.user.scope.len() > 1 {
                let mut f = Table::new(
                    lang,
                    &[
                        "col-mutuelle",
                        "periods-claims",
                        "col-mutuelle-share",
                        "periods-net",
                    ],
                    &[1, 2, 3],
                );
                let mut all = [0i64; 3];
                for m in &ctx.person.user.scope {
                    let mut as_m = ctx.person.clone();
                    as_m.session.mutuelle_id = m.clone();
                    let mut sums = [0i64; 3];
                    for s in schemes(&c) {
                        let msg = settlement::ListPeriodsRequest {
                            scheme_id: s,
                            mutuelle_id: m.clone(),
                        };
                        let r = match c
                            .call(&as_m, ctx.peer, msg, |r| c.settlement.list_periods(r))
                            .await
                        {
                            Ok(r) => r,
                            Err(e) => return ctx.status(e).into_response(),
                        };
                        if let Some(open) = r
                            .periods
                            .iter()
                            .find(|p| p.state == settlement::PeriodState::Open as i32)
                        {
                            sums[0] += i64::from(open.claim_count);
                            sums[1] = sums[1].saturating_add(
                                open.totals.as_ref().map_or(0, |t| t.mutuelle_share),
                            );
                            sums[2] = sums[2].saturating_add(open.net_due);
                        }
                    }
                    for (a, v) in all.iter_mut().zip(sums) {
                        *a = a.saturating_add(v);
                    }
                    f.row(
                        String::new(),
                        vec![
                            m.clone(),
                            lang.amount(sums[0], ""),
                            lang.money(sums[1], &currency),
                            lang.money(sums[2], &currency),
                        ],
                    );
                }
                f.foot = vec![
                    lang.t("claims-total"),
                    lang.amount(all[0], ""),
                    lang.money(all[1], &currency),
                    lang.money(all[2], &currency),
                ];
                tables.push((lang.t("dashboard-federation"), f));
            }
        }
        UserRole::SchemeStaff => {
            let sid = ctx.person.user.scope.first().cloned().unwrap_or_default();
            let mut t = Table::new(lang, &["col-mutuelle", "dashboard-pending"], &[1]);
            let mut total = 0;
            let mut mutuelles: Vec<String> =
                c.broker.directory().mutuelles.iter().cloned().collect();
            mutuelles.sort();
            let mut bars = Vec::new();
            for m in mutuelles {
                let n = match count_claims(&c, &ctx, &sid, &m, "pending_partner").await {
                    Ok(n) => n,
                    Err(e) => return ctx.status(e).into_response(),
                };
                total += n;
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                bars.push((m.clone(), n, lang.amount(n, "")));
                t.row(
                    format!("/claims?mutuelle={}&state=pending_partner", url(&m)),
                    vec![m, lang.amount(n, "")],
                );
            }
            cards.push((lang.t("dashboard-pending"), lang.amount(total as i64, "")));
            tables.push((lang.t("dashboard-pending"), t));
            charts.push((
                bar_chart(&lang.t("chart-pending"), &bars),
                lang.t("chart-pending"),
            ));
            match claims_per_day(&c, &ctx, &sid, "").await {
                Ok(Some(chart)) => charts.push(chart),
                Ok(None) => {}
                Err(e) => return ctx.status(e).into_response(),
            }
        }
        UserRole::Operator => {
            let r = match c
                .call(&ctx.person, ctx.peer, admin::ListPartnersRequest {}, |r| {
                    c.admin.list_partners(r)
                })
                .await
            {
                Ok(r) => r,
                Err(e) => return ctx.status(e).into_response(),
            };
            let pending: u64 = r.partners.iter().map(|p| p.pending as u64).sum();
            cards.push((lang.t("dashboard-pending"), lang.amount(pending as i64, "")));
            cards.push((
                lang.t("dashboard-partners"),
                lang.amount(r.partners.len() as i64, ""),
            ));
            tables.push((
                lang.t("dashboard-partners"),
                partners_table(&ctx, &r, false),
            ));
            // Claims waiting per partner, with how long the oldest has.
            let now = c.broker.clock().now_ms();
            let items: Vec<(String, i64, String)> = r
                .partners
                .iter()
                .map(|p| {
                    let age = if p.oldest_pending_ms > 0 {
                        let minutes = (now - p.oldest_pending_ms).max(0) / 60_000;
                        lang.t_args("chart-oldest", &[("minutes", &minutes.to_string())])
                    } else {
                        String::new()
                    };
                    (
                        p.mutuelle_id.clone(),
                        i64::from(p.pending),
                        format!("{} {age}", lang.amount(i64::from(p.pending), "")),
                    )
                })
                .collect();
            charts.push((
                bar_chart(&lang.t("chart-pending"), &items),
                lang.t("chart-pending"),
            ));
        }
    }
    page(DashboardPage {
        ui: ctx.ui(lang.t("dashboard-title"), "dashboard"),
        cards,
        charts,
        tables,
    })
}

/// Days the per-day chart covers, and the most claims it reads for them
/// (pages of 500 of the mutuelle's own ListClaims).
const CHART_DAYS: i64 = 14;
const CHART_MAX_CLAIMS: u64 = 5_000;

/// Claims and the mutuelle's amounts per day of care over the last
/// [`CHART_DAYS`] days, read as the person through ListClaims; `None` when
/// there is none. Past [`CHART_MAX_CLAIMS`] the caption says the chart
/// counts the first ones only.
async fn claims_per_day(
    c: &Console,
    ctx: &Ctx,
    scheme: &str,
    mutuelle: &str,
) -> Result<Option<(String, String)>, tonic::Status> {
    let lang = ctx.lang;
    let today = c.broker.clock().today();
    let from = today - time::Duration::days(CHART_DAYS - 1);
    let mut days: std::collections::BTreeMap<passerelle_domain::Date, (i64, i64)> = (0..CHART_DAYS)
        .map(|i| (from + time::Duration::days(i), (0, 0)))
        .collect();
    let (mut token, mut read, mut currency) = (String::new(), 0u64, String::new());
    let mut total: u64;
    loop {
        let msg = settlement::ListClaimsRequest {
            scheme_id: scheme.to_string(),
            mutuelle_id: mutuelle.to_string(),
            state: "coordinated".into(),
            care_from: passerelle_domain::date::format(from),
            care_to: passerelle_domain::date::format(today),
            page_size: 500,
            page_token: token.clone(),
            member_number: String::new(),
            provider_id: String::new(),
        };
        let page = c
            .call(&ctx.person, ctx.peer, msg, |r| c.settlement.list_claims(r))
            .await?;
        total = page.total_count;
        for s in &page.claims {
            if let Some(d) = passerelle_domain::date::parse_stored(&s.date_of_care)
                && let Some(day) = days.get_mut(&d)
            {
                day.0 += 1;
                day.1 = day
                    .1
                    .saturating_add(s.totals.map_or(0, |t| t.mutuelle_share));
                currency = s.currency.clone();
            }
        }
        read += page.claims.len() as u64;
        if page.next_page_token.is_empty() || read >= CHART_MAX_CLAIMS {
            break;
        }
        token = page.next_page_token;
    }
    if total == 0 {
        return Ok(None);
    }
    let items: Vec<(String, i64, String)> = days
        .iter()
        .map(|(d, (n, m))| {
            (
                lang.date(*d),
                *n,
                format!("{} · {}", lang.amount(*n, ""), lang.money(*m, &currency)),
            )
        })
        .collect();
    let mut caption = lang.t(if scheme.is_empty() {
        "chart-per-day"
    } else {
        "chart-per-day-scheme"
    });
    if read < total {
        caption.push_str(&lang.t_args("chart-partial", &[("count", &read.to_string())]));
    }
    Ok(Some((bar_chart(&caption, &items), caption)))
}

/// A small horizontal bar chart, inline SVG (no script, nothing loaded):
/// one bar per item, its label and value written beside it.
fn bar_chart(title: &str, items: &[(String, i64, String)]) -> String {
    const ROW: i64 = 24;
    const WIDTH: i64 = 320;
    let max = items.iter().map(|(_, v, _)| *v).max().unwrap_or(0).max(1);
    let height = ROW * items.len() as i64 + 8;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {height}\" width=\"{w}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        w = WIDTH + 220,
    );
    for (i, (label, v, text)) in items.iter().enumerate() {
        let y = 4 + ROW * i as i64;
        let w = (WIDTH * (*v).max(0) / max).max(if *v > 0 { 2 } else { 0 });
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>\
             <rect x=\"130\" y=\"{}\" width=\"{w}\" height=\"16\" fill=\"#0b5cad\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 13,
            esc(label),
            y,
            136 + w,
            y + 13,
            esc(text)
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// How many claims match (ListClaims' total, one summary row read).
async fn count_claims(
    c: &Console,
    ctx: &Ctx,
    scheme: &str,
    mutuelle: &str,
    state: &str,
) -> Result<u64, tonic::Status> {
    let msg = settlement::ListClaimsRequest {
        scheme_id: scheme.into(),
        mutuelle_id: mutuelle.into(),
        state: state.into(),
        page_size: 1,
        ..Default::default()
    };
    Ok(
        c.call(&ctx.person, ctx.peer, msg, |r| c.settlement.list_claims(r))
            .await?
            .total_count,
    )
}

// ---------------------------------------------------------------- claims

#[derive(Deserialize, Default)]
struct ClaimsQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    mutuelle: String,
    /// A member number (mutuelles only).
    #[serde(default)]
    member: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    page: String,
}

/// Why a date typed in a filter is not read: a day that does not exist
/// when it is written day first with a month that does ("31/02/2026"),
/// else how to write one (a month first, "11/21/2026", among others).
fn date_problem(lang: Lang, typed: &str) -> String {
    if super::i18n::no_such_day(typed) {
        lang.t_args("date-no-such-day", &[("value", typed.trim())])
    } else {
        lang.t_args("date-invalid", &[("value", typed.trim())])
    }
}

async fn claims(State(c): State<Arc<Console>>, ctx: Ctx, Query(q): Query<ClaimsQuery>) -> Response {
    let lang = ctx.lang;
    // A date the filter cannot read is said above the form, which keeps
    // what was typed, and the list is shown without it (the page gave way
    // to an error with only a link to the dashboard, the filters lost).
    let mut problems = Vec::new();
    let mut dates = [String::new(), String::new()];
    for (i, typed) in [&q.from, &q.to].into_iter().enumerate() {
        if typed.trim().is_empty() {
            continue;
        }
        match parse_date(typed) {
            Some(d) => dates[i] = passerelle_domain::date::format(d),
            None => problems.push(date_problem(lang, typed)),
        }
    }
    if !dates[0].is_empty() && !dates[1].is_empty() && dates[0] > dates[1] {
        problems.push(lang.t("claims-dates-order"));
        dates = [String::new(), String::new()];
    }
    let role = ctx.person.user.role;
    if role == UserRole::Operator
        && q.mutuelle.trim().is_empty()
        && !q.state.is_empty()
        && !["received", "pending_partner", "cancel_pending"].contains(&q.state.as_str())
    {
        return ctx
            .error(StatusCode::BAD_REQUEST, lang.t("claims-operator-mutuelle"))
            .into_response();
    }
    let (scheme, mutuelle) = match role {
        UserRole::Clerk | UserRole::Manager => (
            String::new(),
            ctx.person.mutuelle().unwrap_or_default().to_string(),
        ),
        UserRole::SchemeStaff => (
            ctx.person.user.scope.first().cloned().unwrap_or_default(),
            q.mutuelle.clone(),
        ),
        UserRole::Operator => (String::new(), q.mutuelle.clone()),
    };
    // An operator lists one waiting state across every scheme, or one
    // mutuelle's claims.
    let state = if role == UserRole::Operator && q.mutuelle.is_empty() && q.state.is_empty() {
        "pending_partner".to_string()
    } else {
        q.state.clone()
    };
    let msg = settlement::ListClaimsRequest {
        scheme_id: scheme,
        mutuelle_id: mutuelle,
        state: state.clone(),
        care_from: dates[0].clone(),
        care_to: dates[1].clone(),
        page_size: 50,
        page_token: q.page.clone(),
        member_number: if role.is_mutuelle() {
            q.member.trim().to_string()
        } else {
            String::new()
        },
        provider_id: q.provider.trim().to_string(),
    };
    // A member number or provider typed in small letters: ids are written
    // in capitals, and a phone's keyboard capitalises only the first letter.
    let upper = |s: &str| s.to_uppercase();
    let retry = (msg.member_number != upper(&msg.member_number)
        || msg.provider_id != upper(&msg.provider_id))
    .then(|| settlement::ListClaimsRequest {
        member_number: upper(&msg.member_number),
        provider_id: upper(&msg.provider_id),
        ..msg.clone()
    });
    // What the next page's link asks: the filters that answered.
    let (mut member, mut provider) = (q.member.clone(), q.provider.clone());
    let mut r = match c
        .call(&ctx.person, ctx.peer, msg, |r| c.settlement.list_claims(r))
        .await
    {
        Ok(r) => r,
        Err(e) => return ctx.status(e).into_response(),
    };
    if let Some(msg) = retry.filter(|_| r.claims.is_empty() && q.page.is_empty()) {
        (member, provider) = (msg.member_number.clone(), msg.provider_id.clone());
        r = match c
            .call(&ctx.person, ctx.peer, msg, |r| c.settlement.list_claims(r))
            .await
        {
            Ok(r) => r,
            Err(e) => return ctx.status(e).into_response(),
        };
    }
    let show_mutuelle = !role.is_mutuelle();
    let mut keys = vec!["col-claim", "col-scheme"];
    if show_mutuelle {
        keys.push("col-mutuelle");
    }
    keys.extend([
        "col-state",
        "col-provider",
        "col-invoice",
        "col-date",
        "col-billed",
        "col-scheme-share",
        "col-mutuelle-share",
        "col-patient-share",
    ]);
    let first_num = keys.len() - 4;
    let mut t = Table::new(
        lang,
        &keys,
        &[first_num, first_num + 1, first_num + 2, first_num + 3],
    );
    for s in &r.claims {
        let totals = s.totals.unwrap_or_default();
        let mut cells = vec![s.claim_id.clone(), s.scheme_id.clone()];
        if show_mutuelle {
            cells.push(s.mutuelle_id.clone());
        }
        cells.extend([
            lang.t(&format!("state-{}", s.state)),
            s.provider_id.clone(),
            s.invoice_number.clone(),
            lang.iso_date(&s.date_of_care),
            lang.amount(totals.billed, &s.currency),
            lang.amount(totals.scheme_share, &s.currency),
            lang.amount(totals.mutuelle_share, &s.currency),
            lang.amount(totals.patient_share, &s.currency),
        ]);
        t.row(
            format!("/claims/{}/{}", url(&s.scheme_id), url(&s.claim_id)),
            cells,
        );
    }
    if let Some(tot) = &r.totals
        && !r.claims.is_empty()
    {
        let cur = r.claims[0].currency.clone();
        // Listed, a cancelled claim's amounts are not added up (they no
        // longer stand), unless cancelled claims are what is listed.
        let mut foot = vec![lang.t(if state.is_empty() {
            "claims-total-standing"
        } else {
            "claims-total"
        })];
        foot.resize(first_num, String::new());
        foot.extend([
            lang.amount(tot.billed, &cur),
            lang.amount(tot.scheme_share, &cur),
            lang.amount(tot.mutuelle_share, &cur),
            lang.amount(tot.patient_share, &cur),
        ]);
        t.foot = foot;
    }
    // The filters: a plain GET form, so that a filtered list is a link.
    let mut form = String::from("<form method=\"get\" action=\"/claims\" class=\"filters\">");
    form.push_str(&format!(
        "<label>{}<select name=\"state\"><option value=\"\">{}</option>",
        esc(&lang.t("claims-state")),
        esc(&lang.t("claims-any"))
    ));
    for s in passerelle_domain::ClaimState::ALL.map(|s| s.as_str()) {
        form.push_str(&format!(
            "<option value=\"{s}\"{}>{}</option>",
            if s == state { " selected" } else { "" },
            esc(&lang.t(&format!("state-{s}")))
        ));
    }
    form.push_str("</select></label>");
    form.push_str(&format!(
        "<label>{}<input name=\"from\" value=\"{}\" placeholder=\"{hint}\" inputmode=\"decimal\" size=\"10\"></label>\
         <label>{}<input name=\"to\" value=\"{}\" placeholder=\"{hint}\" inputmode=\"decimal\" size=\"10\"></label>",
        esc(&lang.t("claims-from")),
        esc(&q.from),
        esc(&lang.t("claims-to")),
        esc(&q.to),
        hint = esc(&lang.t("date-hint")),
    ));
    if !role.is_mutuelle() {
        form.push_str(&format!(
            "<label>{}<input name=\"mutuelle\" value=\"{}\" size=\"14\"></label>",
            esc(&lang.t("claims-mutuelle")),
            esc(&q.mutuelle)
        ));
    } else {
        form.push_str(&format!(
            "<label>{}<input name=\"member\" value=\"{}\" size=\"12\" autocapitalize=\"characters\" autocorrect=\"off\" spellcheck=\"false\"></label>",
            esc(&lang.t("claims-member")),
            esc(&q.member)
        ));
    }
    form.push_str(&format!(
        "<label>{}<input name=\"provider\" value=\"{}\" size=\"14\" autocapitalize=\"characters\" autocorrect=\"off\" spellcheck=\"false\"></label>",
        esc(&lang.t("claims-provider")),
        esc(&q.provider)
    ));
    form.push_str(&format!(
        "<button>{}</button></form>",
        esc(&lang.t("claims-filter"))
    ));
    let after = if r.next_page_token.is_empty() {
        String::new()
    } else {
        format!(
            "<p><a href=\"/claims?state={}&amp;from={}&amp;to={}&amp;mutuelle={}&amp;member={}&amp;provider={}&amp;page={}\">{}</a></p>",
            url(&state),
            url(&q.from),
            url(&q.to),
            url(&q.mutuelle),
            url(&member),
            url(&provider),
            url(&r.next_page_token),
            esc(&lang.t("claims-next"))
        )
    };
    if !problems.is_empty() {
        problems.push(lang.t("claims-dates-ignored"));
    }
    let form = problems
        .iter()
        .map(|p| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(p)))
        .collect::<String>()
        + &form;
    page(ListPage {
        ui: ctx.ui(lang.t("claims-title"), "claims"),
        heading: lang.t("claims-title"),
        form,
        // The count selects the plural; it is written grouped.
        summary: lang.t_args(
            "claims-count",
            &[
                ("count", &r.total_count.to_string()),
                (
                    "shown",
                    &lang.amount(i64::try_from(r.total_count).unwrap_or(i64::MAX), ""),
                ),
            ],
        ),
        tables: vec![(String::new(), t)],
        // An operator who named no mutuelle sees the waiting claims only:
        // said, with how to see the rest (the list read "0 demande" with
        // 22 claims stored).
        empty: if role == UserRole::Operator && q.mutuelle.trim().is_empty() {
            lang.t("claims-none-operator")
        } else {
            lang.t("claims-none")
        },
        after,
    })
}

async fn claim(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((scheme, claim_id)): Path<(String, String)>,
    Query(done): Query<Done>,
) -> Response {
    let lang = ctx.lang;
    let msg = settlement::GetClaimRequest {
        scheme_id: scheme,
        claim_id,
    };
    let d = match c
        .call(&ctx.person, ctx.peer, msg, |r| c.settlement.get_claim(r))
        .await
    {
        Ok(d) => d,
        // Another mutuelle's claim reads as a missing one (its audit row
        // says why). A federation's manager works on one mutuelle at a
        // time: the claim may be another's of theirs, said as a
        // possibility, the same whether or not the claim exists.
        Err(e) if e.code() == tonic::Code::NotFound && ctx.person.user.scope.len() > 1 => {
            return ctx
                .error(
                    StatusCode::NOT_FOUND,
                    lang.t_args(
                        "claim-not-found-other-mutuelle",
                        &[("mutuelle", ctx.person.mutuelle().unwrap_or_default())],
                    ),
                )
                .into_response();
        }
        Err(e) => return ctx.status(e).into_response(),
    };
    let r = d.result.clone().unwrap_or_default();
    let cur = r.currency.clone();
    let state = passerelle_proto::scheme::v1::ClaimState::try_from(r.state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("CLAIM_STATE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let mut items = vec![
        (lang.t("col-state"), lang.t(&format!("state-{state}"))),
        (lang.t("col-scheme"), r.scheme_id.clone()),
        (lang.t("col-mutuelle"), r.mutuelle_id.clone()),
        (lang.t("col-member"), r.member_number.clone()),
        (lang.t("col-beneficiary"), d.beneficiary_id.clone()),
        (lang.t("col-provider"), d.provider_id.clone()),
        (lang.t("col-invoice"), d.invoice_number.clone()),
        (lang.t("col-date"), lang.iso_date(&d.date_of_care)),
        (lang.t("claim-updated"), lang.time(r.updated_at_ms)),
    ];
    if let Some(p) = &r.product {
        items.push((
            lang.t("claim-product"),
            format!("{} v{}", p.product_id, p.version),
        ));
    }
    if !r.duplicate_of_claim_id.is_empty() {
        items.push((
            lang.t("claim-duplicate-of"),
            r.duplicate_of_claim_id.clone(),
        ));
    }
    // Paid against a prior authorization: which one (its lines are paid
    // up to what it committed, its reasons say so).
    if !d.prior_authorization_reference.is_empty() {
        items.push((
            lang.t("claim-prior-authorization"),
            d.prior_authorization_reference.clone(),
        ));
    }
    if d.period > 0 {
        items.push((lang.t("col-period"), d.period.to_string()));
    }
    if !d.cancel_reason.is_empty() {
        items.push((lang.t("claim-cancel-reason"), d.cancel_reason.clone()));
    }
    let mut intro = facts(&items);
    // Cancelled after its period closed: what the mutuelle recovers.
    if let Some(said) = lang.claim_after_cancel(&r, &d) {
        intro.push_str(&format!("<p class=\"card\">{}</p>", esc(&said)));
    }
    // What stands with the mutuelle: a cancel to make by hand, or the
    // last error met asking it (its mutuelle and operators only).
    if !d.partner_note.is_empty() {
        let class = if d
            .partner_note
            .starts_with(crate::service::claims::CANCEL_NOT_DELIVERED)
        {
            "error"
        } else {
            "card"
        };
        intro.push_str(&format!(
            "<p class=\"{class}\">{}</p>",
            esc(&lang.claim_note(&d.partner_note))
        ));
    }
    // Before the mutuelle answers, M reads 0 and P the whole remainder:
    // said, so that nobody takes P for what the patient owes.
    if matches!(state.as_str(), "received" | "pending_partner") {
        intro.push_str(&format!(
            "<p class=\"card\">{}</p>",
            esc(&lang.awaiting_mutuelle())
        ));
    }
    if let Some(rej) = &r.rejection {
        intro.push_str(&format!(
            "<p class=\"error\">{}</p>",
            esc(&lang.t_args(
                "claim-rejected",
                &[("reason", &lang.rejection_words(rej, &cur))]
            ))
        ));
    }
    let mut t = Table::new(
        lang,
        &[
            "col-line",
            "col-act",
            "col-billed",
            "col-scheme-share",
            "col-remainder",
            "col-mutuelle-share",
            "col-patient-share",
            "col-reasons",
        ],
        &[2, 3, 4, 5, 6],
    );
    for l in &r.lines {
        let reasons: Vec<String> = l
            .reasons
            .iter()
            .map(|x| lang.reason_words(x, &cur))
            .collect();
        t.row(
            String::new(),
            vec![
                l.sequence.to_string(),
                l.act_code.clone(),
                lang.amount(l.billed, &cur),
                lang.amount(l.scheme_share, &cur),
                lang.amount(l.remainder, &cur),
                lang.amount(l.mutuelle_share, &cur),
                lang.amount(l.patient_share, &cur),
                reasons.join(lang.list_separator()),
            ],
        );
    }
    if let Some(tot) = &r.totals {
        // The claim's totals carry no R: its lines' (R = B - S on each).
        let remainder = r
            .lines
            .iter()
            .fold(0i64, |acc, l| acc.saturating_add(l.remainder));
        t.foot = vec![
            lang.t("claims-total"),
            String::new(),
            lang.amount(tot.billed, &cur),
            lang.amount(tot.scheme_share, &cur),
            lang.amount(remainder, &cur),
            lang.amount(tot.mutuelle_share, &cur),
            lang.amount(tot.patient_share, &cur),
            String::new(),
        ];
    }
    let title = lang.t_args("claim-title", &[("id", &r.claim_id)]);
    let mut ui = ctx.ui(title.clone(), "claims");
    ui.notice = done.notice(lang);
    let mut tables = vec![(String::new(), t)];
    let mut after = String::new();
    // The patient's notice of a coordinated claim, to print or send: the
    // words SchemeService.GetPatientNotice gives the scheme's provider.
    if state == "coordinated"
        && let Some(date) = passerelle_domain::date::parse_stored(&d.date_of_care)
    {
        let (text, sms) = lang.patient_notice(&r, &d.provider_id, date);
        after.push_str(&format!(
            "<section class=\"card notice-print\"><h2>{}</h2><p>{}</p><p class=\"meta\">{} {}</p></section>",
            esc(&lang.t("notice-title")),
            esc(&text).replace('\n', "<br>"),
            esc(&lang.t("notice-sms-label")),
            esc(&sms)
        ));
    }
    // An operator also sees the claim's audit trail, and may retry a claim
    // waiting on its mutuelle.
    if ctx.person.user.role == UserRole::Operator {
        let msg = admin::GetClaimAuditRequest {
            scheme_id: r.scheme_id.clone(),
            claim_id: r.claim_id.clone(),
        };
        let audit = match c
            .call(&ctx.person, ctx.peer, msg, |q| c.admin.get_claim_audit(q))
            .await
        {
            Ok(a) => a,
            Err(e) => return ctx.status(e).into_response(),
        };
        let mut a = Table::new(
            lang,
            &[
                "audit-when",
                "audit-direction",
                "audit-party",
                "audit-method",
                "audit-outcome",
            ],
            &[],
        );
        for rec in &audit.records {
            a.row(
                String::new(),
                vec![
                    lang.time(rec.at_ms),
                    lang.t(&format!("audit-{}", rec.direction)),
                    rec.party.clone(),
                    rec.method.clone(),
                    lang.partner_error(&rec.outcome),
                ],
            );
        }
        let title = if audit.omitted > 0 {
            format!(
                "{} ({})",
                lang.t("audit-title"),
                lang.audit_omitted(audit.omitted)
            )
        } else {
            lang.t("audit-title")
        };
        tables.push((title, a));
        if matches!(
            state.as_str(),
            "received" | "pending_partner" | "cancel_pending"
        ) {
            after.push_str(&format!(
                "<form method=\"post\" action=\"/claims/{}/{}/retry\" class=\"actions\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button class=\"primary\">{}</button></form>",
                url(&r.scheme_id),
                url(&r.claim_id),
                esc(&ui.csrf),
                esc(&lang.t("claim-retry"))
            ));
        }
    }
    page(ListPage {
        ui,
        heading: title,
        form: intro,
        summary: String::new(),
        tables,
        empty: String::new(),
        after,
    })
}

/// An operator retries a waiting claim now (AdminService.RetryClaim).
async fn claim_retry(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((scheme, claim_id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_csrf(&c, &ctx, &f.csrf).await {
        return r.into_response();
    }
    let msg = admin::RetryClaimRequest {
        scheme_id: scheme.clone(),
        claim_id: claim_id.clone(),
    };
    match c
        .call(&ctx.person, ctx.peer, msg, |q| c.admin.retry_claim(q))
        .await
    {
        Ok(_) => Reply::Redirect(
            format!("/claims/{}/{}?done=retried", url(&scheme), url(&claim_id)),
            Vec::new(),
        )
        .into_response(),
        Err(e) => ctx.status(e).into_response(),
    }
}

// ---------------------------------------------------------------- members

#[derive(Deserialize, Default)]
struct MembersQuery {
    #[serde(default)]
    number: String,
}

async fn members(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Query(q): Query<MembersQuery>,
) -> Response {
    let lang = ctx.lang;
    let Some(mid) = ctx.person.mutuelle().map(str::to_string) else {
        return ctx.forbidden().into_response();
    };
    let form = format!(
        "<form method=\"get\" action=\"/members\" class=\"filters\"><label>{}<input name=\"number\" value=\"{}\" required autocapitalize=\"characters\" autocorrect=\"off\" spellcheck=\"false\"></label><button>{}</button></form>",
        esc(&lang.t("members-number")),
        esc(&q.number),
        esc(&lang.t("members-search"))
    );
    let mut intro = format!(
        "{form}<p><a href=\"/roster\">{}</a> · <a href=\"/opening\">{}</a></p>",
        esc(&lang.t("roster-link")),
        esc(&lang.t("opening-link"))
    );
    let mut tables = Vec::new();
    let mut empty = String::new();
    let number = q.number.trim();
    if !number.is_empty() {
        let m_id = mid.clone();
        // The number as typed, then in capitals: member numbers are
        // written in capitals, and a phone's keyboard capitalises only the
        // first letter ("Sol-0001").
        let get = |typed: String| {
            let msg = roster::GetMemberRequest {
                mutuelle_id: mid.clone(),
                member_number: typed,
            };
            c.call(&ctx.person, ctx.peer, msg, |r| c.roster.get_member(r))
        };
        let mut answer = get(number.to_string()).await;
        let upper = number.to_uppercase();
        if upper != number && matches!(&answer, Err(e) if e.code() == tonic::Code::NotFound) {
            answer = get(upper).await;
        }
        match answer {
            Ok(m) => {
                let dues = if m.contribution_paid_until.is_empty() {
                    lang.t("member-dues-never")
                } else {
                    lang.iso_date(&m.contribution_paid_until)
                };
                let mut items = vec![
                    (lang.t("col-member"), m.member_number.clone()),
                    (lang.t("col-scheme"), m.scheme_id.clone()),
                    (lang.t("col-beneficiary"), m.beneficiary_id.clone()),
                    (lang.t("member-household"), m.household_id.clone()),
                    (lang.t("member-dues"), dues),
                ];
                let mut t =
                    Table::new(lang, &["member-product", "member-start", "member-end"], &[]);
                for p in &m.products {
                    t.row(
                        String::new(),
                        vec![
                            p.product_id.clone(),
                            lang.iso_date(&p.start_date),
                            if p.end_date.is_empty() {
                                lang.t("member-running")
                            } else {
                                lang.iso_date(&p.end_date)
                            },
                        ],
                    );
                }
                tables.push((lang.t("member-products"), t));
                let msg = roster::GetMemberCeilingsRequest {
                    mutuelle_id: m_id.clone(),
                    member_number: m.member_number.clone(),
                    date: String::new(),
                };
                // A mutuelle with its own system keeps its ceilings: none
                // shown (FAILED_PRECONDITION), anything else is the page's
                // error.
                // Whether the member is covered today, first: what a clerk
                // answers a provider who calls (the rules' own answer, as a
                // scheme's eligibility gets it: dues, product, waiting
                // periods); a mutuelle with its own system decides there.
                let cur = currency_of_mutuelle(&c, &m.scheme_id);
                let today = lang.date(c.broker.clock().today());
                let covered = lang.t_args("member-covered-today", &[("date", &today)]);
                match c
                    .call(&ctx.person, ctx.peer, msg, |r| {
                        c.roster.get_member_ceilings(r)
                    })
                    .await
                {
                    Ok(r) => {
                        let said = match (&r.reason, &r.product) {
                            (Some(why), _) if !r.covered => lang.t_args(
                                "member-covered-no",
                                &[("why", &lang.reason_words(why, &cur))],
                            ),
                            (_, Some(p)) => {
                                lang.t_args("member-covered-yes", &[("product", &p.product_id)])
                            }
                            _ => lang.t("member-covered-yes-plain"),
                        };
                        items.insert(0, (covered, said));
                        tables.push(ceilings_table(lang, &r, &cur));
                    }
                    Err(e) if e.code() == tonic::Code::FailedPrecondition => {
                        items.insert(0, (covered, lang.t("member-covered-own-system")));
                    }
                    Err(e) => return ctx.status(e).into_response(),
                }
                intro.push_str(&facts(&items));
            }
            Err(e) if e.code() == tonic::Code::NotFound => {
                empty = lang.t("members-not-found");
                tables.push((String::new(), Table::default()));
            }
            Err(e) => return ctx.status(e).into_response(),
        }
    }
    page(ListPage {
        ui: ctx.ui(lang.t("members-title"), "members"),
        heading: lang.t("members-title"),
        form: intro,
        summary: String::new(),
        tables,
        empty,
        after: String::new(),
    })
}

fn currency_of_mutuelle(c: &Console, scheme_id: &str) -> String {
    c.broker.currency_of(scheme_id)
}

/// A member's ceilings: limit, used, left, per ceiling of the product in
/// force today.
fn ceilings_table(
    lang: Lang,
    r: &roster::GetMemberCeilingsResponse,
    currency: &str,
) -> (String, Table) {
    // Held by prior authorizations in force: a column of its own, shown
    // when something is held.
    let holds = r.ceilings.iter().any(|x| x.held != 0 || x.count_held != 0);
    let mut keys = vec![
        "ceiling-name",
        "ceiling-period",
        "ceiling-limit",
        "ceiling-used",
    ];
    if holds {
        keys.push("ceiling-held");
    }
    keys.push("ceiling-left");
    let mut t = Table::new(lang, &keys, if holds { &[2, 3, 4, 5] } else { &[2, 3, 4] });
    for x in &r.ceilings {
        let category = passerelle_proto::common::v1::CareCategory::try_from(x.care_category)
            .ok()
            .map(|c| {
                c.as_str_name()
                    .trim_start_matches("CARE_CATEGORY_")
                    .to_ascii_lowercase()
            })
            .filter(|c| c != "unspecified");
        let mut name = lang.t(&format!("ceiling-{}", x.scope));
        if let Some(c) = category {
            name = format!("{name} · {}", lang.t(&format!("category-{c}")));
        }
        if !x.act_code.is_empty() {
            name = format!("{name} · {}", x.act_code);
        }
        let mut period = x.period.clone();
        if !x.next_allowed.is_empty() {
            period = format!(
                "{period} · {}",
                lang.t_args(
                    "ceiling-next-allowed",
                    &[("date", &lang.iso_date(&x.next_allowed))]
                )
            );
        }
        let figures = if x.scope == "count" || x.scope == "act" {
            [
                lang.amount(i64::from(x.count_limit), ""),
                lang.amount(i64::from(x.count_used), ""),
                lang.amount(i64::from(x.count_held), ""),
                lang.amount(i64::from(x.count_remaining), ""),
            ]
        } else {
            [
                lang.money(x.limit, currency),
                lang.money(x.used, currency),
                lang.money(x.held, currency),
                lang.money(x.remaining, currency),
            ]
        };
        let [limit, used, held, left] = figures;
        let mut cells = vec![name, period, limit, used];
        if holds {
            cells.push(held);
        }
        cells.push(left);
        t.row(String::new(), cells);
    }
    let title = match &r.product {
        Some(p) => lang.t_args(
            "member-ceilings",
            &[
                ("product", &format!("{} v{}", p.product_id, p.version)),
                ("date", &lang.iso_date(&r.date)),
            ],
        ),
        None => lang.t_args("member-no-product", &[("date", &lang.iso_date(&r.date))]),
    };
    (title, t)
}

// ---------------------------------------------------------------- roster

/// The columns of the roster spreadsheet that hold dates (numbers in an
/// XLSX sheet).
const ROSTER_DATES: [&str; 3] = passerelle_files::roster_csv::DATE_COLUMNS;

/// The roster upload: a CSV (UTF-8 or Windows-1252, `;` or `,`) or an XLSX
/// file, read as `passerelle roster import` reads it, checked by a dry run
/// of the broker's own ImportRoster, then applied.
async fn roster_page(ctx: Ctx) -> Response {
    if ctx.person.mutuelle().is_none() {
        return ctx.forbidden().into_response();
    }
    let ui = ctx.ui(ctx.t("roster-title"), "members");
    let form = upload_form(&ui, ctx.lang);
    page(ListPage {
        ui,
        heading: ctx.t("roster-title"),
        form,
        summary: ctx.t("roster-help"),
        tables: Vec::new(),
        empty: String::new(),
        after: String::new(),
    })
}

fn upload_form(ui: &Ui, lang: Lang) -> String {
    format!(
        "<form method=\"post\" action=\"/roster\" enctype=\"multipart/form-data\" class=\"filters\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>{}<input type=\"file\" name=\"file\" accept=\".csv,.xlsx,text/csv\" required></label>\
         <button class=\"primary\" name=\"action\" value=\"check\">{}</button></form>",
        esc(&ui.csrf),
        esc(&lang.t("roster-file")),
        esc(&lang.t("roster-check"))
    )
}

/// Most form fields an upload form may carry besides the file, and the
/// most bytes each: the pages' own are a handful of short values.
const MAX_UPLOAD_FIELDS: usize = 16;
const MAX_UPLOAD_FIELD_BYTES: usize = 1024;

/// The fields of the upload form: CSRF token, action, file name and bytes,
/// (to apply) the hash of the file checked, and the page's other fields
/// (at most [`MAX_UPLOAD_FIELDS`] of [`MAX_UPLOAD_FIELD_BYTES`]).
#[allow(clippy::type_complexity)]
async fn read_upload(
    lang: Lang,
    mut multipart: axum::extract::Multipart,
) -> Result<
    (
        String,
        String,
        String,
        Vec<u8>,
        String,
        std::collections::HashMap<String, String>,
    ),
    String,
> {
    let (mut csrf, mut action, mut name, mut file, mut checked) = (
        String::new(),
        String::new(),
        String::new(),
        Vec::new(),
        String::new(),
    );
    let mut others = std::collections::HashMap::new();
    // What stopped the upload, in the person's words: past the size the
    // console takes, or cut on its way (the library's English is logged).
    let stopped = |e: axum::extract::multipart::MultipartError| {
        tracing::info!(error = %e, "console: an upload stopped");
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            lang.t_args(
                "upload-too-large",
                &[(
                    "mib",
                    &(passerelle_files::xlsx::MAX_XLSX_BYTES / (1024 * 1024)).to_string(),
                )],
            )
        } else {
            lang.t("upload-cut")
        }
    };
    while let Some(field) = multipart.next_field().await.map_err(stopped)? {
        let field_name = field.name().unwrap_or("").to_string();
        if field_name == "file" {
            name = field
                .file_name()
                .unwrap_or("roster")
                .chars()
                .take(200)
                .collect();
        }
        let bytes = field.bytes().await.map_err(stopped)?;
        match field_name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "action" => action = String::from_utf8_lossy(&bytes).into_owned(),
            "file" => file = bytes.to_vec(),
            "checked" => checked = String::from_utf8_lossy(&bytes).into_owned(),
            other => {
                if others.len() >= MAX_UPLOAD_FIELDS || bytes.len() > MAX_UPLOAD_FIELD_BYTES {
                    return Err(lang.t("upload-cut"));
                }
                others.insert(
                    other.to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                );
            }
        }
    }
    Ok((csrf, action, name, file, checked, others))
}

/// A file posted to a page that checks a file, then applies the very file
/// it checked: the members file and the opening balances.
struct Posted {
    pub name: String,
    pub bytes: Vec<u8>,
    /// The apply step: the file is the one kept at the check.
    pub apply: bool,
    /// The form's other fields (what the check showed, a confirmation).
    pub fields: std::collections::HashMap<String, String>,
}

/// The posted form read and its CSRF token checked; to apply, the file
/// kept for this session, only if it was checked for this mutuelle and is
/// the one this page checked (not one checked since in another tab).
async fn posted_file(
    c: &Console,
    ctx: &Ctx,
    multipart: axum::extract::Multipart,
    mid: &str,
) -> Result<Posted, Response> {
    let lang = ctx.lang;
    let (csrf_token, action, name, bytes, checked, fields) = read_upload(lang, multipart)
        .await
        .map_err(|said| ctx.error(StatusCode::BAD_REQUEST, said).into_response())?;
    check_csrf(c, ctx, &csrf_token)
        .await
        .map_err(IntoResponse::into_response)?;
    if action != "apply" {
        return Ok(Posted {
            name,
            bytes,
            apply: false,
            fields,
        });
    }
    match c.broker.store().upload(&ctx.person.session.id_hash).await {
        Ok(Some(u)) if u.mutuelle_id == mid && crate::audit::hash(&u.body) == checked => {
            Ok(Posted {
                name: u.file_name,
                bytes: u.body,
                apply: true,
                fields,
            })
        }
        Ok(_) => Err(ctx
            .error(StatusCode::BAD_REQUEST, lang.t("roster-expired"))
            .into_response()),
        Err(e) => Err(ctx
            .unavailable("reading a checked file", &e)
            .into_response()),
    }
}

/// Keeps a checked file for the apply step (one per session, gone with
/// it) and returns the apply button posting to `action`, with `extra`
/// (trusted HTML: more fields of the form, every value escaped).
#[allow(clippy::too_many_arguments)]
async fn keep_checked(
    c: &Console,
    ctx: &Ctx,
    ui: &Ui,
    mid: &str,
    action: &str,
    name: &str,
    bytes: &[u8],
    extra: &str,
) -> Result<String, Response> {
    let upload = crate::store::users::Upload {
        file_name: name.to_string(),
        mutuelle_id: mid.to_string(),
        body: bytes.to_vec(),
        created_ms: c.broker.clock().now_ms(),
    };
    c.broker
        .store()
        .put_upload(&ctx.person.session.id_hash, &upload)
        .await
        .map_err(|e| {
            ctx.unavailable("keeping a checked file", &e)
                .into_response()
        })?;
    Ok(format!(
        "<form method=\"post\" action=\"{}\" enctype=\"multipart/form-data\" class=\"actions\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"checked\" value=\"{}\">{extra}\
         <button class=\"primary\" name=\"action\" value=\"apply\">{}</button></form>",
        esc(action),
        esc(&ui.csrf),
        crate::audit::hash(bytes),
        esc(&ctx.lang.t_args("roster-apply", &[("file", name)]))
    ))
}

/// An uploaded spreadsheet as CSV text (an `.xlsx` workbook's first sheet,
/// its `dates` columns as dates; else the text, UTF-8 or Windows-1252), or
/// why it cannot be read, in the reader's language (an old `.xls`, a
/// damaged workbook).
pub(super) fn spreadsheet_text(lang: Lang, bytes: &[u8], dates: &[&str]) -> Result<String, String> {
    passerelle_files::spreadsheet_text(bytes, dates).map_err(|e| lang.roster_unreadable(&e))
}

/// Files read at once by the console (a members or opening-balances file
/// of 8 MiB, a workbook unzipping to 64 MiB: seconds of CPU): each on a
/// blocking thread, at most this many at once, another refused at once
/// ("come back in a moment", as exports are), so that the runtime's
/// workers, which serve the schemes' calls too, never wait on a
/// spreadsheet and no upload waits in memory for its turn.
pub(super) const MAX_FILE_READS: usize = 2;

/// `read` of a file's `bytes` (its error in the person's words) on a
/// blocking thread, one of [`MAX_FILE_READS`]; the bytes given back with
/// what was read.
pub(super) async fn read_off_runtime<T: Send + 'static>(
    lang: Lang,
    bytes: Vec<u8>,
    read: impl FnOnce(&[u8]) -> Result<T, String> + Send + 'static,
) -> (Vec<u8>, Result<T, String>) {
    static READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_FILE_READS);
    let Ok(_turn) = READS.try_acquire() else {
        return (bytes, Err(lang.t("upload-busy")));
    };
    let (bytes_back, read) = match tokio::task::spawn_blocking(move || {
        let r = read(&bytes);
        (bytes, r)
    })
    .await
    {
        Ok((b, r)) => (b, r),
        Err(e) => {
            tracing::error!(error = %e, "console: a file's reading failed");
            (Vec::new(), Err(lang.t("error-internal")))
        }
    };
    (bytes_back, read)
}

/// The members of a roster file, or why it cannot be read, in the reader's
/// language.
fn read_roster(
    lang: Lang,
    name: &str,
    bytes: &[u8],
) -> Result<passerelle_files::roster_csv::RosterFile, String> {
    let text = spreadsheet_text(lang, bytes, &ROSTER_DATES)?;
    passerelle_files::roster_csv::RosterFile::parse(&text, name)
        .map_err(|e| lang.roster_unreadable(&e))
}

/// The changes a members file's check lists one by one; the others are
/// counted (every one is in the summary's counts, and applied).
const ROSTER_CHANGES_SHOWN: usize = 200;

/// The heading of a file's wrong rows, with how many there are (past the
/// first 200, the total was said only at the bottom of the list).
pub(super) fn bad_rows_heading(lang: Lang, rows: usize) -> String {
    format!(
        "{} ({})",
        lang.t("roster-bad-rows"),
        lang.amount(i64::try_from(rows).unwrap_or(i64::MAX), "")
    )
}

/// Past the first [`ROSTER_CHANGES_SHOWN`] wrong rows of a file (members
/// or opening balances), how many more, in a last row.
pub(super) fn more_bad_rows(lang: Lang, t: &mut Table, rows: usize) {
    if rows > ROSTER_CHANGES_SHOWN {
        let more = (rows - ROSTER_CHANGES_SHOWN) as u64;
        t.row(
            String::new(),
            vec![lang.counted("roster-bad-more", &[("count", more)])],
        );
    }
}

/// How many times a check asks the broker again without the rows it
/// refused (an error names at most [`crate::api::status::MAX_VIOLATIONS`]
/// of them): at most that many rows named a check, the rest said to be
/// more.
const ROSTER_REFUSAL_ROUNDS: usize = 5;

/// One wrong row of a members file, as the page lists it.
struct RosterRow {
    line: u64,
    column: String,
    problem: String,
    member: String,
}

/// The broker's ImportRoster of `members` as the person, by batches as a
/// gRPC client sends them.
async fn import_members(
    c: &Console,
    ctx: &Ctx,
    header: roster::ImportRosterHeader,
    members: &[roster::Member],
) -> Result<roster::ImportRosterResponse, tonic::Status> {
    let messages: Vec<_> = members
        .chunks(crate::api::roster::MAX_MEMBERS)
        .map(|chunk| {
            Ok(roster::ImportRosterRequest {
                part: Some(roster::import_roster_request::Part::Members(
                    roster::MemberBatch {
                        members: chunk.to_vec(),
                    },
                )),
            })
        })
        .collect();
    let incoming = crate::api::call::Incoming {
        auth: crate::identity::Auth::Caller(ctx.person.caller()),
        peer: Some(ctx.peer),
        msg: header,
        audited: None,
        trace: None,
        // The page says refusals in the person's language itself.
        accept_language: None,
    };
    c.roster
        .import_from(incoming, None, futures::stream::iter(messages))
        .await
        .map(tonic::Response::into_inner)
}

/// What a check of a members file found: its wrong rows (the file's own
/// and those the broker refused, by line), whether more were refused than
/// named, and what the rest would change.
struct RosterCheck {
    rows: Vec<RosterRow>,
    more_refused: bool,
    diff: Option<roster::ImportRosterResponse>,
}

/// Checks a members file with the broker (a dry run). Members whose rows
/// are wrong are kept as they are, not ended, so that the differences
/// shown are those of the file once corrected. Rows the broker refuses (a
/// scheme or a product it does not know, a beneficiary another mutuelle
/// covers) are wrong rows too, named by the file's line in the person's
/// language, beside the file's own: the check is asked again without them
/// (up to [`ROSTER_REFUSAL_ROUNDS`] times). Before, such a refusal replaced
/// the page with the broker's English words and no line (a mutuelle
/// clerk's trial).
/// Another import of the mutuelle is running (a colleague's, or the
/// command line's): the members page says it on its form, to send the
/// file again once that one has ended, rather than on an error page that
/// loses the upload.
fn import_running(e: &tonic::Status) -> bool {
    use tonic_types::StatusExt;
    e.get_details_error_info()
        .is_some_and(|i| i.reason == "ROSTER_IMPORT_RUNNING")
}

async fn check_roster(
    c: &Console,
    ctx: &Ctx,
    mid: &str,
    file: &passerelle_files::roster_csv::RosterFile,
) -> Result<RosterCheck, tonic::Status> {
    let lang = ctx.lang;
    let mut rows: Vec<RosterRow> = file
        .bad
        .iter()
        .map(|b| RosterRow {
            line: b.line,
            column: lang.t(&format!("roster-col-{}", b.field)),
            problem: lang.roster_problem(&b.kind),
            member: b.member_number.clone().unwrap_or_default(),
        })
        .collect();
    let (mut keep, no_end_dating) = file.kept_on_import();
    let mut members = file.members.clone();
    let mut lines = file.first_line.clone();
    let mut check = RosterCheck {
        rows: Vec::new(),
        more_refused: false,
        diff: None,
    };
    for round in 0..=ROSTER_REFUSAL_ROUNDS {
        if members.is_empty() {
            break;
        }
        let header = roster::ImportRosterHeader {
            mutuelle_id: mid.to_string(),
            dry_run: true,
            keep_member_numbers: keep.clone(),
            no_end_dating,
            ..Default::default()
        };
        let e = match import_members(c, ctx, header, &members).await {
            Ok(d) => {
                check.diff = Some(d);
                break;
            }
            Err(e) => e,
        };
        let refused = crate::api::roster::refused_members(&e, &members);
        if refused.is_empty() {
            return Err(e);
        }
        if round == ROSTER_REFUSAL_ROUNDS {
            check.more_refused = true;
            break;
        }
        let mut out = std::collections::BTreeSet::new();
        // What is kept as it is (a slip of letter case keeps the member
        // as stored, so that the rest reads as once the number is
        // corrected): one rule with the command line.
        keep.extend(crate::api::roster::kept_numbers(&refused, &members));
        for r in refused {
            let m = &members[r.index];
            rows.push(RosterRow {
                line: lines[r.index],
                column: lang.roster_field(&r.field),
                problem: lang.roster_refusal(&r.description, &r.kind),
                member: m.member_number.clone(),
            });
            out.insert(r.index);
        }
        let (mut kept, mut kept_lines) = (Vec::new(), Vec::new());
        for (i, (m, line)) in members.into_iter().zip(lines).enumerate() {
            if !out.contains(&i) {
                kept.push(m);
                kept_lines.push(line);
            }
        }
        (members, lines) = (kept, kept_lines);
    }
    rows.sort_by_key(|r| r.line);
    check.rows = rows;
    Ok(check)
}

/// The members a check would end: when they are half or more of those
/// whose cover was open (a partial file, or the wrong one), applying it
/// needs the person to confirm it. Members long gone do not count: with
/// them, a file ending 900 of 1,000 current members next to 3,000 gone
/// asked nothing (the review of the clerk's fixes).
fn ends_most(d: &roster::ImportRosterResponse) -> bool {
    d.end_dated > 0 && u64::from(d.end_dated) * 2 >= u64::from(d.in_force_before)
}

/// What a check showed, carried by the apply form: the apply is made only
/// if the file would still do exactly that: the same counts and the same
/// members changed the same way (counts alone let another set of changes
/// of the same size through).
fn diff_shown(d: &roster::ImportRosterResponse) -> String {
    let mut changes: Vec<String> = d
        .changes
        .iter()
        .map(|c| format!("{}\u{1f}{}", c.member_number, c.change))
        .collect();
    changes.sort_unstable();
    format!(
        "{}/{}/{}/{}/{}",
        d.added,
        d.updated,
        d.end_dated,
        d.unchanged,
        &crate::audit::hash(changes.join("\u{1e}").as_bytes())[..16]
    )
}

/// A roster check or apply: the file read, its bad rows named, and the
/// broker's ImportRoster as the person: a dry run to check; to apply, a
/// dry run again, then the import only if it shows what the check showed
/// (the members may have changed since: the new differences are shown
/// instead, to apply again) and, when the file ends half or more of the
/// members, only once the person confirmed it.
async fn roster_post(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    multipart: axum::extract::Multipart,
) -> Response {
    let lang = ctx.lang;
    let Some(mid) = ctx.person.mutuelle().map(str::to_string) else {
        return ctx.forbidden().into_response();
    };
    let Posted {
        name,
        bytes,
        apply,
        fields,
    } = match posted_file(&c, &ctx, multipart, &mid).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let session = ctx.person.session.id_hash.clone();
    let ui = ctx.ui(lang.t("roster-title"), "members");
    // The upload form again, with what stopped this file above it.
    let refused = |ui, msg: &str| {
        let form = upload_form(&ui, lang);
        page(ListPage {
            ui,
            heading: lang.t("roster-title"),
            form: format!("<p class=\"error\" role=\"alert\">{}</p>{form}", esc(msg)),
            summary: String::new(),
            tables: Vec::new(),
            empty: String::new(),
            after: String::new(),
        })
    };
    let (bytes, reading) = {
        let name = name.clone();
        read_off_runtime(lang, bytes, move |b| read_roster(lang, &name, b)).await
    };
    let file = match reading {
        Ok(f) => f,
        Err(msg) => return refused(ui, &msg),
    };
    let check = match check_roster(&c, &ctx, &mid, &file).await {
        Ok(check) => check,
        Err(e) if import_running(&e) => return refused(ui, &lang.refusal(&e)),
        Err(e) => return ctx.status(e).into_response(),
    };
    let mut tables = Vec::new();
    if !check.rows.is_empty() {
        let mut t = Table::new(
            lang,
            &[
                "roster-line",
                "roster-column",
                "roster-problem",
                "col-member",
            ],
            &[0],
        );
        // The first wrong rows, then how many more (a file with a wrong
        // date on every row listed thousands of them).
        for r in check.rows.iter().take(ROSTER_CHANGES_SHOWN) {
            t.row(
                String::new(),
                vec![
                    r.line.to_string(),
                    r.column.clone(),
                    r.problem.clone(),
                    r.member.clone(),
                ],
            );
        }
        more_bad_rows(lang, &mut t, check.rows.len());
        tables.push((bad_rows_heading(lang, check.rows.len()), t));
    }
    let wrong = !check.rows.is_empty() || check.more_refused;
    // To apply: only what the check showed, and confirmed if it ends most.
    let mut notice = String::new();
    let mut applied = None;
    if apply
        && !wrong
        && let Some(d) = &check.diff
    {
        if fields.get("shown").map(String::as_str) != Some(diff_shown(d).as_str()) {
            notice = lang.t("roster-changed-since");
        } else if ends_most(d) && fields.get("confirm_ended").map(String::as_str) != Some("yes") {
            notice = lang.t("roster-confirm-first");
        } else {
            let (keep, no_end_dating) = file.kept_on_import();
            let header = roster::ImportRosterHeader {
                mutuelle_id: mid.clone(),
                dry_run: false,
                keep_member_numbers: keep,
                no_end_dating,
                ..Default::default()
            };
            match import_members(&c, &ctx, header, &file.members).await {
                Ok(r) => applied = Some(r),
                Err(e) if import_running(&e) => return refused(ui, &lang.refusal(&e)),
                Err(e) => return ctx.status(e).into_response(),
            }
        }
    }
    let shown = applied.as_ref().or(check.diff.as_ref());
    let mut summary = String::new();
    if let Some(d) = shown {
        let counts = [
            ("added", u64::from(d.added)),
            ("updated", u64::from(d.updated)),
            ("ended", u64::from(d.end_dated)),
            ("unchanged", u64::from(d.unchanged)),
        ];
        summary = lang.counted(
            if applied.is_some() {
                "roster-applied"
            } else if wrong {
                "roster-would-once-fixed"
            } else {
                "roster-would"
            },
            &counts,
        );
        // The first changes, member by member; past them, how many more
        // (a file of 5,000 new members listed them all: 312 KB of page
        // before the button that applies it, over a phone's link).
        let mut t = Table::new(lang, &["col-member", "roster-change"], &[]);
        for ch in d.changes.iter().take(ROSTER_CHANGES_SHOWN) {
            t.row(
                String::new(),
                vec![
                    ch.member_number.clone(),
                    lang.t(&format!("roster-change-{}", ch.change)),
                ],
            );
        }
        if d.changes.len() > ROSTER_CHANGES_SHOWN {
            let more = (d.changes.len() - ROSTER_CHANGES_SHOWN) as u64;
            t.row(
                String::new(),
                vec![lang.counted("roster-changes-more", &[("count", more)])],
            );
        }
        if !t.rows.is_empty() {
            tables.push((lang.t("roster-changes"), t));
        }
    }
    let mut after = String::new();
    if !notice.is_empty() {
        after.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            esc(&notice)
        ));
    }
    if check.more_refused {
        after.push_str(&format!(
            "<p class=\"error\">{}</p>",
            esc(&lang.t("roster-more-refused"))
        ));
    }
    if applied.is_some() {
        let _ = c.broker.store().delete_upload(&session).await;
    } else if let Some(d) = check.diff.as_ref().filter(|_| !wrong) {
        // The apply form: what this check showed, and the confirmation
        // when the file ends most of the members.
        let mut extra = format!(
            "<input type=\"hidden\" name=\"shown\" value=\"{}\">",
            esc(&diff_shown(d))
        );
        if d.end_dated > 0 {
            let warn = lang.counted("roster-ending", &[("ended", u64::from(d.end_dated))]);
            after.push_str(&format!("<p class=\"warning\">{}</p>", esc(&warn)));
        }
        if ends_most(d) {
            extra.push_str(&format!(
                "<label class=\"confirm\"><input type=\"checkbox\" name=\"confirm_ended\" value=\"yes\" required> {}</label>",
                esc(&lang.counted("roster-confirm-ended", &[("ended", u64::from(d.end_dated))]))
            ));
        }
        match keep_checked(&c, &ctx, &ui, &mid, "/roster", &name, &bytes, &extra).await {
            Ok(form) => after.push_str(&form),
            Err(r) => return r,
        }
    } else if wrong {
        after.push_str(&format!(
            "<p class=\"error\">{}</p>",
            esc(&lang.t("roster-fix-first"))
        ));
    } else if file.members.is_empty() {
        after.push_str(&format!(
            "<p class=\"error\">{}</p>",
            esc(&lang.t("roster-no-members"))
        ));
    }
    let form = upload_form(&ui, lang);
    page(ListPage {
        ui,
        heading: lang.t("roster-title"),
        form,
        summary,
        tables,
        empty: String::new(),
        after,
    })
}

// ---------------------------------------------------------------- periods

/// The scheme × mutuelle pairs a person's statements are between.
fn pairs(c: &Console, ctx: &Ctx) -> Vec<(String, String)> {
    match ctx.person.user.role {
        UserRole::Clerk | UserRole::Manager => {
            let mid = ctx.person.mutuelle().unwrap_or_default().to_string();
            schemes(c).into_iter().map(|s| (s, mid.clone())).collect()
        }
        UserRole::SchemeStaff => {
            let sid = ctx.person.user.scope.first().cloned().unwrap_or_default();
            let mut ms: Vec<String> = c.broker.directory().mutuelles.iter().cloned().collect();
            ms.sort();
            ms.into_iter().map(|m| (sid.clone(), m)).collect()
        }
        UserRole::Operator => Vec::new(),
    }
}

async fn periods(State(c): State<Arc<Console>>, ctx: Ctx) -> Response {
    let lang = ctx.lang;
    if ctx.person.user.role == UserRole::Operator {
        return ctx.forbidden().into_response();
    }
    let mut tables = Vec::new();
    let ui = ctx.ui(lang.t("periods-title"), "periods");
    let mut forms = String::new();
    for (s, m) in pairs(&c, &ctx) {
        let msg = settlement::ListPeriodsRequest {
            scheme_id: s.clone(),
            mutuelle_id: m.clone(),
        };
        let r = match c
            .call(&ctx.person, ctx.peer, msg, |r| c.settlement.list_periods(r))
            .await
        {
            Ok(r) => r,
            Err(e) => return ctx.status(e).into_response(),
        };
        // A manager's proposals waiting, so that a close proposed already
        // is said rather than offered again.
        let pending = if ctx.person.user.role == UserRole::Manager {
            match changes::waiting_proposals(&c, &ctx, &m).await {
                Ok(p) => p,
                Err(r) => return r,
            }
        } else {
            Vec::new()
        };
        forms.push_str(&changes::period_forms(
            &ctx, &ui, &s, &m, &r.periods, &pending,
        ));
        let mut t = Table::new(
            lang,
            &[
                "periods-number",
                "col-state",
                "periods-claims",
                "col-mutuelle-share",
                "periods-recoveries",
                "periods-net",
                "periods-closed-at",
                "periods-settled-at",
                "periods-reference",
            ],
            &[2, 3, 4, 5],
        );
        for p in &r.periods {
            let open = p.state == settlement::PeriodState::Open as i32;
            // An empty open period is left out while it is the pair's only
            // one (no claim yet); after a close it is shown, so that the
            // period now receiving claims is seen to be open.
            if open && p.claim_count == 0 && p.recoveries == 0 && r.periods.len() == 1 {
                continue;
            }
            let state = if open {
                "open"
            } else if p.state == settlement::PeriodState::Settled as i32 {
                "settled"
            } else {
                "closed"
            };
            let m_share = p.totals.as_ref().map_or(0, |t| t.mutuelle_share);
            t.row(
                format!("/periods/{}/{}/{}", url(&s), url(&m), p.number),
                vec![
                    if open {
                        lang.t("periods-open")
                    } else {
                        p.number.to_string()
                    },
                    lang.t(&format!("state-{state}")),
                    lang.amount(p.claim_count as i64, ""),
                    lang.money(m_share, &p.currency),
                    lang.money(p.recoveries.saturating_neg(), &p.currency),
                    lang.money(p.net_due, &p.currency),
                    lang.time(p.closed_at_ms),
                    lang.time(p.settled_at_ms),
                    if p.settlement_reference.is_empty() {
                        "–".into()
                    } else {
                        p.settlement_reference.clone()
                    },
                ],
            );
        }
        if !t.rows.is_empty() {
            tables.push((format!("{s} – {m}"), t));
        }
    }
    let empty = if tables.is_empty() {
        lang.t("periods-none")
    } else {
        String::new()
    };
    page(ListPage {
        ui,
        heading: lang.t("periods-title"),
        form: String::new(),
        summary: empty,
        tables,
        empty: String::new(),
        after: if forms.is_empty() {
            String::new()
        } else {
            format!("<div class=\"actions\">{forms}</div>")
        },
    })
}

#[derive(Deserialize, Default)]
pub(super) struct PageQuery {
    #[serde(default)]
    pub(super) page: String,
}

async fn statement(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((scheme, mutuelle, number)): Path<(String, String, u32)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let lang = ctx.lang;
    let msg = settlement::GetStatementRequest {
        scheme_id: scheme.clone(),
        mutuelle_id: mutuelle.clone(),
        number,
        page_size: STATEMENT_PAGE,
        page_token: q.page.clone(),
    };
    let s = match c
        .call(&ctx.person, ctx.peer, msg, |r| {
            c.settlement.get_statement(r)
        })
        .await
    {
        Ok(s) => s,
        Err(e) => return ctx.status(e).into_response(),
    };
    let p = s.period.clone().unwrap_or_default();
    let cur = p.currency.clone();
    // The open period's statement is provisional, however it was asked
    // for (0, or its number).
    let open = p.state == settlement::PeriodState::Open as i32;
    let title = if open {
        lang.t_args(
            "statement-open-title",
            &[("scheme", &scheme), ("mutuelle", &mutuelle)],
        )
    } else {
        lang.t_args(
            "statement-title",
            &[
                ("scheme", &scheme),
                ("mutuelle", &mutuelle),
                ("number", &number.to_string()),
            ],
        )
    };
    let mut tables = Vec::new();
    for payee in &s.payees {
        let mut t = Table::new(
            lang,
            &[
                "col-claim",
                "col-invoice",
                "col-date",
                "col-member",
                "col-line",
                "col-act",
                "col-billed",
                "col-scheme-share",
                "col-mutuelle-share",
                "col-patient-share",
            ],
            &[4, 6, 7, 8, 9],
        );
        for l in &payee.lines {
            t.row(
                format!("/claims/{}/{}", url(&scheme), url(&l.claim_id)),
                vec![
                    lang.statement_claim(&l.claim_id, l.cancelled_since),
                    l.invoice_number.clone(),
                    lang.iso_date(&l.date_of_care),
                    l.member_number.clone(),
                    l.sequence.to_string(),
                    l.act_code.clone(),
                    lang.amount(l.billed, &cur),
                    lang.amount(l.scheme_share, &cur),
                    lang.amount(l.mutuelle_share, &cur),
                    lang.amount(l.patient_share, &cur),
                ],
            );
        }
        // A payee the page cuts: its total here is the page's, said so,
        // and its whole statement's is said above the table (a manager
        // paying each payee from the page paid a page's part).
        let cut = payee.continued || payee.continues;
        if let Some(tot) = &payee.totals {
            let mut foot = vec![lang.t(if cut {
                "statement-page-subtotal"
            } else {
                "claims-total"
            })];
            foot.resize(6, String::new());
            foot.extend([
                lang.amount(tot.billed, &cur),
                lang.amount(tot.scheme_share, &cur),
                lang.amount(tot.mutuelle_share, &cur),
                lang.amount(tot.patient_share, &cur),
            ]);
            t.foot = foot;
        }
        let who = lang.payee_words(&payee.payee_type, &payee.payee_id);
        let mut heading = lang.t_args("statement-payee-heading", &[("payee", &who)]);
        if payee.continued {
            heading.push_str(&format!(" {}", lang.t("statement-payee-continued")));
        }
        if cut {
            heading.push_str(&format!(
                " {}",
                lang.t_args(
                    "statement-payee-whole",
                    &[
                        ("claims", &payee.whole_claim_count.to_string()),
                        ("amount", &lang.money(payee.whole_mutuelle_share, &cur)),
                    ],
                )
            ));
        }
        tables.push((heading, t));
    }
    if !s.recoveries.is_empty() {
        let mut t = Table::new(
            lang,
            &[
                "col-claim",
                "col-invoice",
                "col-date",
                "col-member",
                "statement-from-period",
                "statement-payee",
                "col-mutuelle-share",
            ],
            &[4, 6],
        );
        for r in &s.recoveries {
            t.row(
                format!("/claims/{}/{}", url(&scheme), url(&r.claim_id)),
                vec![
                    r.claim_id.clone(),
                    r.invoice_number.clone(),
                    lang.iso_date(&r.date_of_care),
                    r.member_number.clone(),
                    r.from_period.to_string(),
                    lang.payee_words(&r.payee_type, &r.payee_id),
                    lang.amount(r.amount.saturating_neg(), &cur),
                ],
            );
        }
        tables.push((lang.t("periods-recoveries"), t));
    }
    let totals = p.totals.unwrap_or_default();
    let mut items = vec![(
        lang.t("col-state"),
        lang.t(match p.state {
            x if x == settlement::PeriodState::Settled as i32 => "state-settled",
            x if x == settlement::PeriodState::Closed as i32 => "state-closed",
            _ => "state-open",
        }),
    )];
    // A settled period's payment, as the periods' list says it.
    if p.state == settlement::PeriodState::Settled as i32 {
        items.push((lang.t("periods-settled-at"), lang.time(p.settled_at_ms)));
        items.push((lang.t("periods-reference"), p.settlement_reference.clone()));
    }
    items.extend([
        (
            lang.t("periods-claims"),
            lang.amount(p.claim_count as i64, ""),
        ),
        (lang.t("col-billed"), lang.money(totals.billed, &cur)),
        (
            lang.t("col-scheme-share"),
            lang.money(totals.scheme_share, &cur),
        ),
        (
            lang.t("col-mutuelle-share"),
            lang.money(totals.mutuelle_share, &cur),
        ),
        (
            lang.t("col-patient-share"),
            lang.money(totals.patient_share, &cur),
        ),
        (
            lang.t("periods-recoveries"),
            lang.money(p.recoveries.saturating_neg(), &cur),
        ),
        (lang.t("periods-net"), lang.money(p.net_due, &cur)),
    ]);
    let intro = facts(&items)
        + &format!(
            "<p class=\"actions\"><a href=\"/periods/{sch}/{mu}/{number}/statement.xlsx\" download>{}</a> \
         <a href=\"/periods/{sch}/{mu}/{number}/statement.csv\" download>{}</a> <span>{} (Ctrl+P)</span>{}</p>",
            esc(&lang.t("statement-export-xlsx")),
            esc(&lang.t("statement-export-csv")),
            esc(&lang.t("statement-print")),
            // A settled period's transfer, payee by payee.
            if p.state == settlement::PeriodState::Settled as i32 {
                format!(
                    " <a href=\"/periods/{}/{}/{number}/remittance\">{}</a>",
                    url(&scheme),
                    url(&mutuelle),
                    esc(&lang.t("remittance-title"))
                )
            } else {
                String::new()
            },
            sch = url(&scheme),
            mu = url(&mutuelle),
        );
    let mut after = String::new();
    if !s.next_page_token.is_empty() {
        after.push_str(&format!(
            "<p>{} <a href=\"/periods/{}/{}/{}?page={}\">{}</a></p>",
            esc(&lang.t("statement-more")),
            url(&scheme),
            url(&mutuelle),
            number,
            url(&s.next_page_token),
            esc(&lang.t("claims-next"))
        ));
    }
    let paged = !s.next_page_token.is_empty() || !q.page.is_empty();
    if !q.page.is_empty() {
        after.push_str(&format!(
            "<p><a href=\"/periods/{}/{}/{}\">{}</a></p>",
            url(&scheme),
            url(&mutuelle),
            number,
            esc(&lang.t("remittance-first-page"))
        ));
    }
    // The board signs a closed statement, not a provisional one, and the
    // whole of it: a page of a longer one is not for signing (its export
    // holds it whole).
    if paged {
        after.push_str(&format!(
            "<p class=\"summary\">{}</p>",
            esc(&lang.t("statement-paged-sign-export"))
        ));
    } else if !open {
        after.push_str(&format!(
            "<p class=\"signature\">{}</p>",
            esc(&lang.t("statement-signature"))
        ));
    }
    page(ListPage {
        ui: ctx.ui(title.clone(), "periods"),
        heading: title,
        form: intro,
        summary: String::new(),
        tables,
        empty: String::new(),
        after,
    })
}

/// The columns of a statement export, by catalogue key: the last says a
/// line whose claim was cancelled after its period closed.
const EXPORT_COLUMNS: [&str; 15] = [
    "col-scheme",
    "col-mutuelle",
    "col-period",
    "statement-payee",
    "col-claim",
    "col-invoice",
    "col-date",
    "col-member",
    "col-line",
    "col-act",
    "col-billed",
    "col-scheme-share",
    "col-mutuelle-share",
    "col-patient-share",
    "col-state",
];

/// The first of [`EXPORT_COLUMNS`]' amounts (B, S, M, P).
const EXPORT_AMOUNTS: usize = 10;
/// [`EXPORT_COLUMNS`]' state of a line ([`ExportLine::cancelled_since`]).
const EXPORT_STATE: usize = 14;

/// The console's statement exports: their places, and how much each
/// reads and writes.
pub(super) struct Exports {
    slots: Arc<tokio::sync::Semaphore>,
    /// Places taken, by person (login).
    by_person: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// Lines read at once ([`EXPORT_PAGE`]; fewer in tests, so that a
    /// few claims make several pages).
    page: u32,
    /// Lines a workbook holds ([`XLSX_MAX_LINES`]; fewer in tests).
    xlsx_lines: u32,
}

impl Exports {
    pub(super) fn new(page: u32, xlsx_lines: u32) -> Arc<Exports> {
        Arc::new(Exports {
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_EXPORTS)),
            by_person: Default::default(),
            page,
            xlsx_lines,
        })
    }

    /// A place for an export of `login`'s, or none: every place of the
    /// process's ([`MAX_EXPORTS`]) or of the person's
    /// ([`MAX_EXPORTS_PER_PERSON`]) is taken.
    fn take(self: &Arc<Self>, login: &str) -> Option<ExportSlot> {
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        let mut by = self.by_person.lock().unwrap_or_else(|p| p.into_inner());
        let taken = by.entry(login.to_string()).or_insert(0);
        if *taken >= MAX_EXPORTS_PER_PERSON {
            return None;
        }
        *taken += 1;
        Some(ExportSlot {
            exports: self.clone(),
            login: login.to_string(),
            _permit: permit,
        })
    }
}

/// A place among the exports under way, given back when dropped: once
/// the file's last bytes are handed to the connection (a download that
/// stalls holds it while the connection's buffer is full, that is while
/// pages remain to be read), or when the download is dropped.
struct ExportSlot {
    exports: Arc<Exports>,
    login: String,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut by = self
            .exports
            .by_person
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(taken) = by.get_mut(&self.login) {
            *taken -= 1;
            if *taken == 0 {
                by.remove(&self.login);
            }
        }
    }
}

/// One line of a statement export: its text cells, then its figures.
struct ExportLine {
    text: [String; 8],
    date: String,
    /// The claim's line; none for a recovery, which is no line of a claim
    /// (its cell left empty).
    line: Option<u32>,
    figures: Figures,
    /// On a closed period's statement, the claim was cancelled since: the
    /// line stays, its state says so (« Annulée après la clôture »), and
    /// its indu is in a later period. The statement's page says it beside
    /// the claim; a file people pay from says it too.
    cancelled_since: bool,
}

/// The amounts of an export's row.
#[derive(Clone, Copy, Debug)]
enum Figures {
    /// A claim's line: B, S, M and P, S + M + P = B.
    Shares([i64; 4]),
    /// A recovery: the mutuelle's share it takes back (negative), and no
    /// B, S or P, which belong to the cancelled claim's own period: those
    /// cells are left empty, so that no row reads as a line whose shares
    /// do not add up to what was billed.
    Recovery(i64),
}

impl Figures {
    /// The B, S, M and P cells, none where the row has no such amount.
    fn cells(self) -> [Option<i64>; 4] {
        match self {
            Figures::Shares(a) => a.map(Some),
            Figures::Recovery(m) => [None, None, Some(m), None],
        }
    }
}

/// An export's totals, added up from the rows it wrote (not read from the
/// period, which an open period's claims may change during the download):
/// the claims' lines, balanced as each line is, and the recoveries apart;
/// and the lines and claims written, which the end of a closed period's
/// file counts.
#[derive(Clone, Debug, Default)]
struct ExportTotals {
    lines: [i64; 4],
    recovered: i64,
    /// Claims' lines written.
    line_rows: u64,
    /// Claims written: a statement's lines come claim by claim (by payee,
    /// then claim), so each change of claim id is a claim.
    claims: u64,
    last_claim: String,
}

impl ExportTotals {
    fn add(&mut self, l: &ExportLine) {
        match l.figures {
            Figures::Shares(a) => {
                for (sum, v) in self.lines.iter_mut().zip(a) {
                    *sum = sum.saturating_add(v);
                }
                self.line_rows += 1;
                let claim = &l.text[4];
                if self.line_rows == 1 || *claim != self.last_claim {
                    self.claims += 1;
                    self.last_claim.clone_from(claim);
                }
            }
            Figures::Recovery(m) => self.recovered = self.recovered.saturating_add(m),
        }
    }

    /// The last row of a closed period's file (`stored`: the claims the
    /// period holds, as stored at its close), after the totals: the lines
    /// and claims the file holds beside the period's claims, so that a
    /// file cut short, or one missing a claim, is told from a whole one.
    /// None for the open period, whose claims change as it is read.
    fn end_row(&self, lang: Lang, stored: Option<u32>) -> Option<String> {
        let stored = stored?;
        Some(lang.t_args(
            "export-end",
            &[
                ("lines", &self.line_rows.to_string()),
                ("claims", &self.claims.to_string()),
                ("stored", &stored.to_string()),
            ],
        ))
    }

    /// The totals rows after the last line, each a label and its cells:
    /// one row where nothing is recovered; else the claims' total, the
    /// recoveries and the net due in M, as the statement's page says them.
    fn rows(&self, lang: Lang) -> Vec<(String, [Option<i64>; 4])> {
        if self.recovered == 0 {
            return vec![(lang.t("claims-total"), self.lines.map(Some))];
        }
        let m = |v: i64| Figures::Recovery(v).cells();
        vec![
            (lang.t("export-total-claims"), self.lines.map(Some)),
            (lang.t("periods-recoveries"), m(self.recovered)),
            (
                lang.t("periods-net"),
                m(self.lines[2].saturating_add(self.recovered)),
            ),
        ]
    }
}

/// A statement read page by page as the person, for an export: each page
/// ([`EXPORT_PAGE`] lines) is read when the export needs it, so that an
/// export holds one page in memory whatever the statement's size.
/// Why an export's page was not read.
#[derive(Debug)]
enum ExportStop {
    /// The broker refused or failed the read.
    Status(tonic::Status),
    /// The person's session ended since the download began.
    SessionEnded,
    /// The person's session could not be read: refused, never read as
    /// they were.
    SessionUnreadable,
    /// The period was open at the first page and closed at a later one
    /// (`number`): a file of both would mix provisional lines with the
    /// closed statement's, under one name.
    PeriodChanged(u32),
}

impl ExportStop {
    /// The answer instead of the file, in the person's language: a session
    /// that ended goes back to the sign-in page, as any page would.
    fn reply(self, ctx: &Ctx) -> Reply {
        match self {
            ExportStop::Status(s) => ctx.status(s),
            ExportStop::SessionEnded => session_ended(),
            ExportStop::SessionUnreadable => {
                ctx.error(StatusCode::SERVICE_UNAVAILABLE, ctx.t("signin-unavailable"))
            }
            ExportStop::PeriodChanged(number) => {
                ctx.error(StatusCode::CONFLICT, period_changed(ctx.lang, number))
            }
        }
    }

    /// The CSV's last row when the export stops, for a stop the person
    /// is to read (the browser says only that it failed); none for the
    /// others, which the sign-in page or the logs say.
    fn csv_row(&self, lang: Lang) -> Option<String> {
        match self {
            ExportStop::PeriodChanged(number) => {
                let mut row = vec![cells::csv_text(&period_changed(lang, *number))];
                row.resize(EXPORT_COLUMNS.len(), String::new());
                Some(row.join(";") + "\r\n")
            }
            _ => None,
        }
    }
}

/// Why an export of the open period stopped when the period closed during
/// it, and what to do.
fn period_changed(lang: Lang, number: u32) -> String {
    lang.t_args("export-period-changed", &[("number", &number.to_string())])
}

impl std::fmt::Display for ExportStop {
    /// For the body's error (the browser reports the download failed).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportStop::Status(s) => f.write_str(s.message()),
            ExportStop::SessionEnded => f.write_str("the session ended during the download"),
            ExportStop::SessionUnreadable => f.write_str("the session could not be read"),
            ExportStop::PeriodChanged(n) => {
                write!(f, "period {n} was closed during the download")
            }
        }
    }
}

struct ExportPages {
    c: Arc<Console>,
    person: Person,
    peer: SocketAddr,
    lang: Lang,
    /// The next page's request. Its token names the period the first
    /// page read (`api::settlement`, `read_page_token`): a period closed
    /// during the export is still read to its end, and only it; such a
    /// period is refused at its next page ([`ExportStop::PeriodChanged`]).
    request: settlement::GetStatementRequest,
    /// The period's number as the first page named it (0 asks for the
    /// open period), for the file's name.
    number: u32,
    /// The period's claims as the first page said them: at least as many
    /// lines.
    claim_count: u32,
    /// The period's currency, which its amounts are in.
    currency: String,
    /// Whether it is the open period (its statement provisional), as the
    /// first page read it: the file's name says it, and every later page
    /// must read it so.
    open: bool,
    /// The recoveries' rows, read with the first page and written after
    /// the last page's lines (before the totals).
    recoveries: Vec<ExportLine>,
    done: bool,
}

impl ExportPages {
    /// The first page's lines, or the answer to give instead (a refusal,
    /// a period not found): nothing of the file is sent before it.
    async fn open(
        c: &Arc<Console>,
        ctx: &Ctx,
        scheme: &str,
        mutuelle: &str,
        number: u32,
    ) -> Result<(ExportPages, Vec<ExportLine>), Reply> {
        let mut pages = ExportPages {
            c: c.clone(),
            person: ctx.person.clone(),
            peer: ctx.peer,
            lang: ctx.lang,
            request: settlement::GetStatementRequest {
                scheme_id: scheme.to_string(),
                mutuelle_id: mutuelle.to_string(),
                number,
                page_size: c.exports.page,
                page_token: String::new(),
            },
            number,
            claim_count: 0,
            currency: String::new(),
            open: false,
            recoveries: Vec::new(),
            done: false,
        };
        match pages.next().await {
            Some(Ok(lines)) => Ok((pages, lines)),
            Some(Err(e)) => Err(e.reply(ctx)),
            None => Ok((pages, Vec::new())),
        }
    }

    /// The person read again from their session, the mutuelle they chose
    /// when the download began kept (the broker still checks it against
    /// the account's scope); a stop if the session is no longer current or
    /// cannot be read (never read as they were).
    async fn still_signed_in(&mut self) -> Result<(), ExportStop> {
        match self.c.broker.person_again(&self.person).await {
            Ok(Some(mut now)) => {
                now.session.mutuelle_id = std::mem::take(&mut self.person.session.mutuelle_id);
                self.person = now;
                Ok(())
            }
            Ok(None) => {
                tracing::info!(
                    login = %self.person.user.login,
                    "console: a statement's download stopped: the session ended"
                );
                Err(ExportStop::SessionEnded)
            }
            Err(e) => {
                tracing::warn!(error = %e, "console: a statement's download stopped: the session could not be read");
                Err(ExportStop::SessionUnreadable)
            }
        }
    }

    /// The next page's lines, then `None` after the last. What the
    /// mutuelle recovers on claims cancelled after their period closed
    /// comes with the first page; it is written after the last page's
    /// lines, before the totals: a negative M, as in `passerelle statement
    /// export`.
    async fn next(&mut self) -> Option<Result<Vec<ExportLine>, ExportStop>> {
        if self.done {
            return None;
        }
        let first = self.request.page_token.is_empty();
        // A page after the first is read as the person is now: a session
        // revoked or ended, or an account disabled, since the download
        // began stops it at the next page.
        if !self.request.page_token.is_empty()
            && let Err(e) = self.still_signed_in().await
        {
            self.done = true;
            return Some(Err(e));
        }
        let c = &self.c;
        let s = match c
            .call(&self.person, self.peer, self.request.clone(), |r| {
                c.settlement.get_statement(r)
            })
            .await
        {
            Ok(s) => s,
            Err(e) => {
                self.done = true;
                return Some(Err(ExportStop::Status(e)));
            }
        };
        // A token that does not move would read the same page for ever.
        if !s.next_page_token.is_empty() && s.next_page_token == self.request.page_token {
            self.done = true;
            return Some(Err(ExportStop::Status(tonic::Status::internal(
                "the statement's next page token is the page's own",
            ))));
        }
        let p = s.period.clone().unwrap_or_default();
        let open = p.state == settlement::PeriodState::Open as i32;
        if first {
            self.number = p.number;
            self.claim_count = p.claim_count;
            self.currency.clone_from(&p.currency);
            self.open = open;
        } else if open != self.open {
            // Closed since the first page: the lines read so far were
            // the provisional statement's, the rest would be the closed
            // one's. (A closed period settled meanwhile keeps its lines.)
            tracing::info!(
                period = p.number,
                "console: a statement's download stopped: the period was closed during it"
            );
            self.done = true;
            return Some(Err(ExportStop::PeriodChanged(p.number)));
        }
        let lang = self.lang;
        let mut out = Vec::new();
        for payee in &s.payees {
            for l in &payee.lines {
                out.push(ExportLine {
                    text: [
                        p.scheme_id.clone(),
                        p.mutuelle_id.clone(),
                        p.number.to_string(),
                        lang.payee_words(&payee.payee_type, &payee.payee_id),
                        l.claim_id.clone(),
                        l.invoice_number.clone(),
                        l.member_number.clone(),
                        l.act_code.clone(),
                    ],
                    date: l.date_of_care.clone(),
                    line: Some(l.sequence),
                    figures: Figures::Shares([
                        l.billed,
                        l.scheme_share,
                        l.mutuelle_share,
                        l.patient_share,
                    ]),
                    cancelled_since: l.cancelled_since,
                });
            }
        }
        for r in &s.recoveries {
            self.recoveries.push(ExportLine {
                text: [
                    p.scheme_id.clone(),
                    p.mutuelle_id.clone(),
                    p.number.to_string(),
                    lang.payee_words(&r.payee_type, &r.payee_id),
                    r.claim_id.clone(),
                    r.invoice_number.clone(),
                    r.member_number.clone(),
                    lang.t_args(
                        "statement-recovery",
                        &[("period", &r.from_period.to_string())],
                    ),
                ],
                // The cancelled claim's member and date of care: whose
                // care is recovered.
                date: r.date_of_care.clone(),
                line: None,
                figures: Figures::Recovery(r.amount.saturating_neg()),
                cancelled_since: false,
            });
        }
        self.done = s.next_page_token.is_empty();
        if self.done {
            out.append(&mut self.recoveries);
        }
        self.request.page_token = s.next_page_token;
        Some(Ok(out))
    }
}

/// The file name of a statement export: an open period's says it is
/// provisional, so that a draft is not taken for the period's statement.
fn export_name(pages: &ExportPages, scheme: &str, mutuelle: &str, ext: &str) -> String {
    format!(
        "bordereau-{}{}-{}-{}.{ext}",
        if pages.open { "provisoire-" } else { "" },
        file_part(scheme),
        file_part(mutuelle),
        pages.number
    )
}

/// A file to download; `body` may be a stream.
fn attachment(content_type: &'static str, name: String, body: impl Into<Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body.into(),
    )
        .into_response()
}

/// The page that says to come back in a minute: every place of the
/// process's ([`MAX_EXPORTS`]) or of the person's
/// ([`MAX_EXPORTS_PER_PERSON`]) is taken.
fn exports_busy(ctx: &Ctx) -> Response {
    let mut r = ctx
        .error(StatusCode::SERVICE_UNAVAILABLE, ctx.t("error-exports-busy"))
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    r
}

/// The page of an export that failed in this process (logged by the
/// caller).
fn internal_error(ctx: &Ctx) -> Response {
    ctx.error(StatusCode::INTERNAL_SERVER_ERROR, ctx.t("error-internal"))
        .into_response()
}

/// The page of a workbook asked of a statement larger than a sheet.
fn workbook_too_large(ctx: &Ctx, lines: u32) -> Response {
    // A count grouped as the language groups digits.
    let max = ctx.lang.amount(i64::from(lines), "");
    ctx.error(
        StatusCode::BAD_REQUEST,
        ctx.lang
            .t_args("statement-xlsx-too-large", &[("max", &max)]),
    )
    .into_response()
}

/// The statement as a CSV file French Excel opens as it is: UTF-8 with a
/// byte order mark, `;` between cells, CRLF, headers in the person's
/// language (the amounts' naming the currency), amounts in the
/// currency's units without grouping ([`amount_cell`]), and every text cell
/// quoted, a leading `=`, `+`, `-`, `@`, tab or carriage return defused
/// with an apostrophe (formula injection, [`cells::csv_text`]), an
/// identifier Excel would read as a number written as the formula of its
/// text ([`cells::csv_id`]). Sent as it is read, a page of the statement at
/// a time: a statement of any size costs the broker one page's memory. A
/// page that cannot be read after the first cuts the download short (the
/// browser reports it failed), never a file that looks whole; an open
/// period closed during the download cuts it too, after a last row that
/// says so in the person's language.
async fn statement_csv(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((scheme, mutuelle, number)): Path<(String, String, u32)>,
) -> Response {
    let lang = ctx.lang;
    let Some(slot) = c.exports.take(&ctx.person.user.login) else {
        return exports_busy(&ctx);
    };
    let (pages, first) = match ExportPages::open(&c, &ctx, &scheme, &mutuelle, number).await {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let name = export_name(&pages, &scheme, &mutuelle, "csv");
    let currency = pages.currency.clone();
    let mut head = String::from("\u{feff}");
    let headings: Vec<String> = export_headings(lang, &currency)
        .iter()
        .map(|h| cells::csv_text(h))
        .collect();
    head.push_str(&headings.join(";"));
    head.push_str("\r\n");
    let mut totals = ExportTotals::default();
    head.push_str(&csv_rows(lang, &currency, &first, &mut totals));
    // The slot is held until the last page is handed to the connection
    // (or the download is dropped); the totals, until they are written
    // after the last page.
    // Fused: the gzip layer polls a body again after its end.
    let rest = futures::stream::unfold(
        CsvPages::Reading(Box::new(pages), slot, totals),
        move |state| async move {
            let (mut pages, slot, mut totals) = match state {
                CsvPages::Reading(pages, slot, totals) => (pages, slot, totals),
                CsvPages::Done(_slot) => return None,
            };
            match pages.next().await {
                None => {
                    let stored = (!pages.open).then_some(pages.claim_count);
                    let end = csv_totals(lang, &pages.currency, &totals, stored);
                    Some((Ok(axum::body::Bytes::from(end)), CsvPages::Done(Some(slot))))
                }
                Some(Ok(lines)) => {
                    let rows = csv_rows(lang, &pages.currency, &lines, &mut totals);
                    Some((
                        Ok(axum::body::Bytes::from(rows)),
                        CsvPages::Reading(pages, slot, totals),
                    ))
                }
                Some(Err(e)) => {
                    // A session's end is logged where it is seen.
                    if let ExportStop::Status(s) = &e {
                        tracing::warn!(code = ?s.code(), message = s.message(), "console: a statement's CSV download stopped: a page could not be read");
                    }
                    match e.csv_row(lang) {
                        // The file ends there, whole as a body (a browser
                        // drops a download that fails, and the gzip layer
                        // kept the row buffered behind the error): no
                        // totals, no count, its last row saying why.
                        Some(row) => Some((
                            Ok(axum::body::Bytes::from(row)),
                            CsvPages::Done(Some(slot)),
                        )),
                        None => Some((
                            Err(std::io::Error::other(e.to_string())),
                            CsvPages::Done(None),
                        )),
                    }
                }
            }
        },
    )
    .fuse();
    let body =
        futures::stream::once(
            async move { Ok::<_, std::io::Error>(axum::body::Bytes::from(head)) },
        )
        .chain(rest);
    attachment("text/csv; charset=utf-8", name, Body::from_stream(body))
}

/// Where a statement's CSV download is, between its pages.
enum CsvPages {
    /// Pages remain: the export's place is held, and the totals so far.
    Reading(Box<ExportPages>, ExportSlot, ExportTotals),
    /// The last bytes were sent (the place held until they are taken), or
    /// the body ended in an error.
    Done(Option<ExportSlot>),
}

/// An export's amount cells in CSV: an amount the row does not have is
/// an empty cell.
fn csv_amounts(
    lang: Lang,
    currency: &str,
    cells: [Option<i64>; 4],
) -> impl Iterator<Item = String> {
    cells
        .into_iter()
        .map(move |a| a.map_or(String::new(), |a| amount_cell(lang, a, currency)))
}

/// The CSV rows of some lines of a statement, each ending in CRLF, added
/// to the export's totals.
fn csv_rows(lang: Lang, currency: &str, lines: &[ExportLine], totals: &mut ExportTotals) -> String {
    let mut out = String::new();
    for l in lines {
        totals.add(l);
        let [s, m, period, payee, claim, invoice, member, act] = &l.text;
        let mut row = vec![
            cells::csv_id(s),
            cells::csv_id(m),
            period.clone(),
            cells::csv_text(payee),
            cells::csv_id(claim),
            cells::csv_id(invoice),
            cells::csv_text(&lang.iso_date(&l.date)),
            cells::csv_id(member),
            l.line.map_or(String::new(), |n| n.to_string()),
            cells::csv_id(act),
        ];
        row.extend(csv_amounts(lang, currency, l.figures.cells()));
        row.push(if l.cancelled_since {
            cells::csv_text(&lang.t("export-cancelled-since"))
        } else {
            String::new()
        });
        out.push_str(&row.join(";"));
        out.push_str("\r\n");
    }
    out
}

/// The CSV's totals rows after its last line ([`ExportTotals::rows`]):
/// the label in the first column, the amounts in theirs; then a closed
/// period's count of its lines and claims ([`ExportTotals::end_row`],
/// `stored`: the claims the period holds).
fn csv_totals(lang: Lang, currency: &str, totals: &ExportTotals, stored: Option<u32>) -> String {
    let mut out = String::new();
    for (label, amounts) in totals.rows(lang) {
        let mut row = vec![cells::csv_text(&label)];
        row.resize(EXPORT_AMOUNTS, String::new());
        row.extend(csv_amounts(lang, currency, amounts));
        row.resize(EXPORT_COLUMNS.len(), String::new());
        out.push_str(&row.join(";"));
        out.push_str("\r\n");
    }
    if let Some(end) = totals.end_row(lang, stored) {
        let mut row = vec![cells::csv_text(&end)];
        row.resize(EXPORT_COLUMNS.len(), String::new());
        out.push_str(&row.join(";"));
        out.push_str("\r\n");
    }
    out
}

/// Why a workbook was not written.
enum SheetStop {
    /// More lines than a sheet holds ([`Exports::xlsx_lines`]).
    TooManyLines,
    Xlsx(rust_xlsxwriter::XlsxError),
}

impl From<rust_xlsxwriter::XlsxError> for SheetStop {
    fn from(e: rust_xlsxwriter::XlsxError) -> Self {
        SheetStop::Xlsx(e)
    }
}

/// What the workbook's writer sends the answer.
enum Chunk {
    Bytes(axum::body::Bytes),
    /// The file's last byte was sent: without it, the body ends in an
    /// error (a writer that stopped half way, even by a panic, never
    /// leaves a file that looks whole).
    End,
    Failed(std::io::Error),
}

/// The statement as an Excel workbook: the same columns, headers in the
/// person's language, dates as dates (dd/mm/yyyy), amounts as numbers in
/// the currency's units ([`sheet_amount`]; XOF has no decimals), every text written as text (never a
/// formula; inline, as the writer's constant-memory mode stores text), a
/// totals row. Its rows are written as the pages are read, on a blocking
/// thread, to a temporary file (`TMPDIR`, about 650 bytes a line), then
/// zipped into the answer as it is sent: a statement of any size costs
/// the broker a few pages' memory. The answer starts once every row is
/// written, so that a page that cannot be read, or more lines than a
/// sheet holds, is an error page and not a broken file.
async fn statement_xlsx(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((scheme, mutuelle, number)): Path<(String, String, u32)>,
) -> Response {
    let lang = ctx.lang;
    let Some(slot) = c.exports.take(&ctx.person.user.login) else {
        return exports_busy(&ctx);
    };
    let (mut pages, first) = match ExportPages::open(&c, &ctx, &scheme, &mutuelle, number).await {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let max_lines = c.exports.xlsx_lines;
    // Each claim has a line at least: refused before a row is written.
    if pages.claim_count > max_lines {
        return workbook_too_large(&ctx, max_lines);
    }
    // Pages to the writer (`None` after the last; the channel closed
    // without it: the export was given up), its word once every row is
    // written, and the file's bytes to the answer.
    let (lines_tx, lines_rx) = tokio::sync::mpsc::channel::<Option<Vec<ExportLine>>>(1);
    let (rows_tx, rows_rx) = tokio::sync::oneshot::channel();
    let (bytes_tx, bytes_rx) = tokio::sync::mpsc::channel(4);
    let currency = pages.currency.clone();
    // A closed period's claims, which its last row counts; the file's name
    // and that count are the first page's.
    let stored = (!pages.open).then_some(pages.claim_count);
    let name = export_name(&pages, &scheme, &mutuelle, "xlsx");
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let sheet = StatementBook {
            lang,
            currency: &currency,
            max_lines,
            stored,
        };
        write_workbook(sheet, lines_rx, rows_tx, bytes_tx);
    });
    let mut next = Some(first);
    while let Some(lines) = next.take() {
        if lines_tx.send(Some(lines)).await.is_err() {
            // The writer stopped: its word says why.
            break;
        }
        match pages.next().await {
            None => {
                let _ = lines_tx.send(None).await;
            }
            Some(Ok(lines)) => next = Some(lines),
            Some(Err(e)) => return e.reply(&ctx).into_response(),
        }
    }
    match rows_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(SheetStop::TooManyLines)) => return workbook_too_large(&ctx, max_lines),
        Ok(Err(SheetStop::Xlsx(e))) => {
            tracing::error!(error = %e, "console: a workbook was not written");
            return internal_error(&ctx);
        }
        Err(_) => {
            tracing::error!("console: a workbook's writer stopped");
            return internal_error(&ctx);
        }
    }
    // Fused: a body may be polled again after its end (the gzip layer
    // does; a workbook is not gzipped, but nothing depends on it).
    let body = futures::stream::unfold(Some(bytes_rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Chunk::Bytes(b)) => Some((Ok(b), Some(rx))),
            Some(Chunk::End) => None,
            Some(Chunk::Failed(e)) => Some((Err(e), None)),
            None => Some((
                Err(std::io::Error::other(
                    "the workbook's writer stopped before the file's end",
                )),
                None,
            )),
        }
    })
    .fuse();
    attachment(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        name,
        Body::from_stream(body),
    )
}

/// What a statement's workbook is written with.
struct StatementBook<'a> {
    lang: Lang,
    /// The statement's currency, which its amounts are in.
    currency: &'a str,
    /// The lines it may hold ([`XLSX_MAX_LINES`]; fewer in tests).
    max_lines: u32,
    /// A closed period's claims, which its last row counts.
    stored: Option<u32>,
}

/// The workbook's writer, on a blocking thread: the pages' rows as they
/// come, the totals rows, word that every row is written (or why not),
/// then the file's bytes in chunks of [`XLSX_CHUNK`], and its end.
fn write_workbook(
    book: StatementBook<'_>,
    mut lines: tokio::sync::mpsc::Receiver<Option<Vec<ExportLine>>>,
    rows: tokio::sync::oneshot::Sender<Result<(), SheetStop>>,
    bytes: tokio::sync::mpsc::Sender<Chunk>,
) {
    let lang = book.lang;
    let mut sheet = match StatementSheet::new(lang, book.currency, book.max_lines) {
        Ok(s) => s,
        Err(e) => {
            let _ = rows.send(Err(e.into()));
            return;
        }
    };
    loop {
        match lines.blocking_recv() {
            Some(Some(page)) => {
                if let Err(e) = sheet.lines(&page) {
                    let _ = rows.send(Err(e));
                    return;
                }
            }
            Some(None) => break,
            // Given up: the answer was an error page.
            None => return,
        }
    }
    if let Err(e) = sheet.totals(lang, book.stored) {
        let _ = rows.send(Err(e.into()));
        return;
    }
    if rows.send(Ok(())).is_err() {
        return;
    }
    let mut out = ChunkWriter {
        tx: bytes.clone(),
        buf: Vec::with_capacity(XLSX_CHUNK),
    };
    let saved = sheet
        .wb
        .save_to_writer(&mut out)
        .map_err(std::io::Error::other)
        .and_then(|()| std::io::Write::flush(&mut out));
    let last = match saved {
        Ok(()) => Chunk::End,
        Err(e) => {
            tracing::warn!(error = %e, "console: a workbook's download stopped");
            Chunk::Failed(e)
        }
    };
    let _ = bytes.blocking_send(last);
}

/// Bytes of a workbook sent to the answer at once.
const XLSX_CHUNK: usize = 64 * 1024;

/// `Write` into the answer's channel, [`XLSX_CHUNK`] bytes at a time; it
/// waits while the person's connection is behind, and fails once the
/// download is dropped.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= XLSX_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = axum::body::Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(XLSX_CHUNK),
        ));
        self.tx
            .blocking_send(Chunk::Bytes(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// A statement's sheet, written row after row (constant memory).
struct StatementSheet {
    wb: rust_xlsxwriter::Workbook,
    /// Lines written so far (the last one's row: the header is row 0).
    row: u32,
    /// The lines it may hold ([`XLSX_MAX_LINES`]; fewer in tests).
    max_lines: u32,
    totals: ExportTotals,
    bold: rust_xlsxwriter::Format,
    date: rust_xlsxwriter::Format,
    amount: rust_xlsxwriter::Format,
    /// The statement's currency, which its amounts are in.
    currency: String,
    /// The person's language, which its words are in.
    lang: Lang,
}

impl StatementSheet {
    /// The workbook with its header row.
    fn new(
        lang: Lang,
        currency: &str,
        max_lines: u32,
    ) -> Result<StatementSheet, rust_xlsxwriter::XlsxError> {
        use rust_xlsxwriter::{Format, Workbook};
        let bold = Format::new().set_bold();
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet_with_constant_memory()?;
        ws.set_name(lang.t("nav-periods"))?;
        ws.set_freeze_panes(1, 0)?;
        for (col, heading) in export_headings(lang, currency).iter().enumerate() {
            ws.write_string_with_format(0, col as u16, heading, &bold)?;
        }
        Ok(StatementSheet {
            wb,
            row: 0,
            max_lines,
            totals: ExportTotals::default(),
            bold,
            date: Format::new().set_num_format("dd/mm/yyyy"),
            amount: sheet_amount_format(currency),
            currency: currency.to_string(),
            lang,
        })
    }

    /// One page's lines, each a row.
    fn lines(&mut self, lines: &[ExportLine]) -> Result<(), SheetStop> {
        let ws = self.wb.worksheet_from_index(0)?;
        for l in lines {
            if self.row >= self.max_lines {
                return Err(SheetStop::TooManyLines);
            }
            self.row += 1;
            let row = self.row;
            let [s, m, period, payee, claim, invoice, member, act] = &l.text;
            for (col, v) in [
                (0u16, s),
                (1, m),
                (3, payee),
                (4, claim),
                (5, invoice),
                (7, member),
                (9, act),
            ] {
                ws.write_string(row, col, v)?;
            }
            ws.write_number(row, 2, period.parse::<u32>().unwrap_or(0))?;
            sheet_date(ws, row, 6, &l.date, &self.date)?;
            if let Some(n) = l.line {
                ws.write_number(row, 8, n)?;
            }
            if l.cancelled_since {
                ws.write_string(
                    row,
                    EXPORT_STATE as u16,
                    self.lang.t("export-cancelled-since"),
                )?;
            }
            // An amount the row does not have is an empty cell.
            for (k, a) in l.figures.cells().into_iter().enumerate() {
                if let Some(a) = a {
                    ws.write_number_with_format(
                        row,
                        (EXPORT_AMOUNTS + k) as u16,
                        sheet_amount(a, &self.currency),
                        &self.amount,
                    )?;
                }
            }
            self.totals.add(l);
        }
        Ok(())
    }

    /// The totals rows, after the last line ([`ExportTotals::rows`]),
    /// then a closed period's count of its lines and claims
    /// ([`ExportTotals::end_row`], `stored`: the claims the period holds).
    fn totals(
        &mut self,
        lang: Lang,
        stored: Option<u32>,
    ) -> Result<(), rust_xlsxwriter::XlsxError> {
        let total = self.amount.clone().set_bold();
        let (first, rows, bold) = (self.row + 1, self.totals.rows(lang), self.bold.clone());
        let end = self.totals.end_row(lang, stored);
        let end_at = first + rows.len() as u32;
        let ws = self.wb.worksheet_from_index(0)?;
        // Rows in order: a workbook in constant memory drops a cell written
        // to a row before the last one written (the totals went missing
        // under the end row).
        for (row, (label, amounts)) in (first..).zip(rows) {
            ws.write_string_with_format(row, 0, label, &bold)?;
            for (k, v) in amounts.into_iter().enumerate() {
                if let Some(v) = v {
                    ws.write_number_with_format(
                        row,
                        (EXPORT_AMOUNTS + k) as u16,
                        sheet_amount(v, &self.currency),
                        &total,
                    )?;
                }
            }
        }
        if let Some(end) = end {
            ws.write_string(end_at, 0, end)?;
        }
        Ok(())
    }
}

/// A stored date (YYYY-MM-DD) in a workbook's cell as a date, in
/// `format`; a value that is no date as its text, none as no cell.
pub(super) fn sheet_date(
    ws: &mut rust_xlsxwriter::Worksheet,
    row: u32,
    col: u16,
    stored: &str,
    format: &rust_xlsxwriter::Format,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    match passerelle_domain::date::parse_stored(stored) {
        Some(d) => {
            let dt = rust_xlsxwriter::ExcelDateTime::from_ymd(
                d.year() as u16,
                u8::from(d.month()),
                d.day(),
            )?;
            ws.write_datetime_with_format(row, col, &dt, format)?;
        }
        None if stored.is_empty() => {}
        None => {
            ws.write_string(row, col, stored)?;
        }
    }
    Ok(())
}

/// An export's amount column heading, its currency named: "Mutuelle (M)
/// en XOF".
fn amount_heading(lang: Lang, key: &str, currency: &str) -> String {
    lang.t_args(
        "export-amount-heading",
        &[("column", &lang.t(key)), ("currency", currency)],
    )
}

/// An amount in an export's CSV cell, in the currency's units as a
/// spreadsheet reads it: no grouping, the currency's decimals after the
/// language's decimal mark ("12500" XOF; "125,50" EUR in French, "125.50"
/// in English), '-' before a negative one.
fn amount_cell(lang: Lang, minor: i64, currency: &str) -> String {
    let digits = passerelle_domain::money::minor_unit_digits(currency).unwrap_or(0);
    let text = passerelle_adapters::decimal::format_minor(minor, digits);
    match lang {
        Lang::Fr => text.replace('.', ","),
        Lang::En => text,
    }
}

/// An amount as a workbook's number, in the currency's units (a workbook
/// stores every number as a double: the nearest one to the amount, which
/// its number format shows to the currency's last decimal), and the number
/// format that shows its decimals grouped ("#,##0", "#,##0.00").
#[allow(
    clippy::disallowed_types,
    reason = "a workbook stores every number as a double"
)]
fn sheet_amount(minor: i64, currency: &str) -> f64 {
    let digits = passerelle_domain::money::minor_unit_digits(currency).unwrap_or(0);
    minor as f64 / 10f64.powi(digits as i32)
}

fn sheet_amount_format(currency: &str) -> rust_xlsxwriter::Format {
    let digits = passerelle_domain::money::minor_unit_digits(currency).unwrap_or(0);
    let decimals = "0".repeat(digits as usize);
    let format = if digits == 0 {
        "#,##0".to_string()
    } else {
        format!("#,##0.{decimals}")
    };
    rust_xlsxwriter::Format::new().set_num_format(format)
}

/// An export's headings (`columns`, by catalogue key), those from
/// `amounts` on naming the currency.
fn headings(lang: Lang, columns: &[&str], amounts: usize, currency: &str) -> Vec<String> {
    columns
        .iter()
        .enumerate()
        .map(|(i, k)| {
            if i >= amounts {
                amount_heading(lang, k, currency)
            } else {
                lang.t(k)
            }
        })
        .collect()
}

/// The headings of a statement export: its amount columns name the
/// currency (the state after them does not).
fn export_headings(lang: Lang, currency: &str) -> Vec<String> {
    let mut out = headings(
        lang,
        &EXPORT_COLUMNS[..EXPORT_STATE],
        EXPORT_AMOUNTS,
        currency,
    );
    out.extend(EXPORT_COLUMNS[EXPORT_STATE..].iter().map(|k| lang.t(k)));
    out
}

fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

// ---------------------------------------------------------------- operators

fn partners_table(ctx: &Ctx, r: &admin::ListPartnersResponse, actions: bool) -> Table {
    let lang = ctx.lang;
    let mut t = Table::new(
        lang,
        &[
            "col-mutuelle",
            "partners-adapter",
            "partners-pending",
            "partners-oldest",
            "partners-circuit",
            "partners-paused",
            "partners-last-success",
            "partners-last-error",
        ],
        &[2],
    );
    for p in &r.partners {
        t.row(
            if actions {
                String::new()
            } else {
                "/partners".into()
            },
            vec![
                p.mutuelle_id.clone(),
                p.adapter.clone(),
                lang.amount(p.pending as i64, ""),
                lang.time(p.oldest_pending_ms),
                lang.t(&format!("circuit-{}", p.circuit)),
                if p.paused_ms > 0 {
                    format!("{} ({})", lang.t("yes"), p.paused_by)
                } else {
                    lang.t("no")
                },
                // Beside the last error, so that an error older than the
                // last answer is not read as the state now.
                lang.time(p.last_success_ms),
                // A scheme is told when, not what (ListPartners leaves the
                // text to operators).
                match (p.last_error_ms, p.last_error.as_str()) {
                    (ms, "") => lang.time(ms),
                    (ms, e) => format!("{} — {}", lang.time(ms), lang.partner_error(e)),
                },
            ],
        );
    }
    t
}

async fn partners(State(c): State<Arc<Console>>, ctx: Ctx, Query(done): Query<Done>) -> Response {
    let lang = ctx.lang;
    let r = match c
        .call(&ctx.person, ctx.peer, admin::ListPartnersRequest {}, |r| {
            c.admin.list_partners(r)
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return ctx.status(e).into_response(),
    };
    let mut ui = ctx.ui(lang.t("partners-title"), "partners");
    ui.notice = done.notice(lang);
    let mut forms = String::new();
    let operator = ctx.person.user.role == UserRole::Operator;
    for p in r.partners.iter().filter(|_| operator) {
        let (action, key) = if p.paused_ms > 0 {
            ("resume", "partners-resume")
        } else {
            ("pause", "partners-pause")
        };
        forms.push_str(&button_form(
            &format!("/partners/{}/{action}", url(&p.mutuelle_id)),
            &ui.csrf,
            &format!("{} {}", lang.t(key), p.mutuelle_id),
        ));
    }
    page(ListPage {
        ui,
        heading: lang.t("partners-title"),
        form: String::new(),
        summary: String::new(),
        tables: vec![(String::new(), partners_table(&ctx, &r, true))],
        empty: String::new(),
        after: format!("<div class=\"actions\">{forms}</div>"),
    })
}

/// Days left before a date (Unix seconds), rounded down; negative once
/// past.
fn days_left(now_ms: i64, at_s: i64) -> i64 {
    (at_s.saturating_mul(1000) - now_ms).div_euclid(86_400_000)
}

/// When a date is worth an operator's attention: a certificate 30 days
/// before it ends (time to have another issued); a CRL, which its
/// authority replaces routinely, 7 days before its next update.
fn warn_days(kind: &str) -> i64 {
    if kind.contains("crl") { 7 } else { 30 }
}

/// Certificates and CRLs the broker holds, with when they end: operators
/// only. The same dates as the metric
/// `passerelle_certificate_expiry_timestamp_seconds`.
async fn certificates(State(c): State<Arc<Console>>, ctx: Ctx) -> Response {
    if ctx.person.user.role != UserRole::Operator {
        return forbidden_audited(&c, &ctx, "certificates")
            .await
            .into_response();
    }
    let lang = ctx.lang;
    let now = c.broker.clock().now_ms();
    let dates = crate::ops::certificate_dates(c.tls.as_deref(), &c.broker);
    let mut rows: Vec<_> = dates.into_iter().collect();
    rows.sort_by_key(|(_, at)| *at);
    let mut t = Table::new(
        lang,
        &[
            "certs-kind",
            "certs-file",
            "certs-until",
            "certs-days",
            "col-state",
        ],
        &[3],
    );
    for ((kind, file), at) in &rows {
        let days = days_left(now, *at);
        let state = if days < 0 {
            "certs-expired"
        } else if days < warn_days(kind) {
            "certs-soon"
        } else {
            "certs-ok"
        };
        t.row(
            String::new(),
            vec![
                lang.t(&format!("certs-kind-{kind}")),
                file.clone(),
                lang.time(at.saturating_mul(1000)),
                days.to_string(),
                lang.t(state),
            ],
        );
    }
    let soon = rows
        .iter()
        .filter(|((kind, _), at)| days_left(now, *at) < warn_days(kind))
        .count();
    page(ListPage {
        ui: ctx.ui(lang.t("certs-title"), "certificates"),
        heading: lang.t("certs-title"),
        form: String::new(),
        summary: lang.t_args("certs-summary", &[("soon", &soon.to_string())]),
        tables: vec![(String::new(), t)],
        empty: lang.t("certs-none"),
        after: String::new(),
    })
}

async fn partner_action(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_csrf(&c, &ctx, &f.csrf).await {
        return r.into_response();
    }
    let res = match action.as_str() {
        "pause" => c
            .call(
                &ctx.person,
                ctx.peer,
                admin::PausePartnerRequest { mutuelle_id: id },
                |r| c.admin.pause_partner(r),
            )
            .await
            .map(|_| ()),
        "resume" => c
            .call(
                &ctx.person,
                ctx.peer,
                admin::ResumePartnerRequest { mutuelle_id: id },
                |r| c.admin.resume_partner(r),
            )
            .await
            .map(|_| ()),
        _ => {
            return ctx
                .error(StatusCode::NOT_FOUND, ctx.t("error-not-found"))
                .into_response();
        }
    };
    match res {
        Ok(()) => Reply::Redirect(
            format!(
                "/partners?done={}",
                if action == "pause" {
                    "paused"
                } else {
                    "resumed"
                }
            ),
            Vec::new(),
        )
        .into_response(),
        Err(e) => ctx.status(e).into_response(),
    }
}

async fn users(State(c): State<Arc<Console>>, ctx: Ctx, Query(done): Query<Done>) -> Response {
    if ctx.person.user.role != UserRole::Operator {
        return forbidden_audited(&c, &ctx, "users").await.into_response();
    }
    let lang = ctx.lang;
    let all = match c.broker.users().await {
        Ok(u) => u,
        Err(e) => return ctx.unavailable("reading the accounts", &e).into_response(),
    };
    let mut ui = ctx.ui(lang.t("users-title"), "users");
    ui.notice = done.notice(lang);
    let mut t = Table::new(
        lang,
        &[
            "users-login",
            "users-name",
            "users-role",
            "users-scope",
            "users-state",
        ],
        &[],
    );
    let mut forms = String::new();
    for u in &all {
        t.row(
            String::new(),
            vec![
                u.login.clone(),
                u.display_name.clone(),
                lang.t(role_key(u.role)),
                u.scope.join(", "),
                lang.t(if u.disabled_ms == 0 {
                    "users-enabled"
                } else {
                    "users-disabled"
                }),
            ],
        );
        forms.push_str(&button_form(
            &format!("/users/{}/revoke", url(&u.login)),
            &ui.csrf,
            &lang.labelled(&lang.t("users-revoke"), &u.login),
        ));
        let (action, key) = if u.disabled_ms == 0 {
            ("disable", "users-disable")
        } else {
            ("enable", "users-enable")
        };
        forms.push_str(&button_form(
            &format!("/users/{}/{action}", url(&u.login)),
            &ui.csrf,
            &lang.labelled(&lang.t(key), &u.login),
        ));
    }
    // A new account: its temporary password is shown once, on the next page.
    let mut add = format!(
        "<h2>{}</h2><form method=\"post\" action=\"/users\" class=\"filters\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>{}<input name=\"login\" required maxlength=\"64\"></label>\
         <label>{}<input name=\"name\" required maxlength=\"100\"></label>\
         <label>{}<select name=\"role\">",
        esc(&lang.t("users-add")),
        esc(&ui.csrf),
        esc(&lang.t("users-login")),
        esc(&lang.t("users-name")),
        esc(&lang.t("users-role")),
    );
    for r in UserRole::ALL {
        add.push_str(&format!(
            "<option value=\"{}\">{}</option>",
            r.as_str(),
            esc(&lang.t(role_key(r)))
        ));
    }
    add.push_str(&format!(
        "</select></label><label>{}<input name=\"scope\" placeholder=\"MUT-A, MUT-B\"></label>\
         <button class=\"primary\">{}</button></form>",
        esc(&lang.t("users-scope")),
        esc(&lang.t("users-create"))
    ));
    forms.push_str(&add);
    let sessions = c.broker.recent_sessions().await.unwrap_or_default();
    let mut s = Table::new(lang, &["users-login", "users-address", "users-seen"], &[]);
    for x in sessions {
        s.row(
            String::new(),
            vec![x.login, x.address, lang.time(x.seen_ms)],
        );
    }
    page(ListPage {
        ui,
        heading: lang.t("users-title"),
        form: String::new(),
        summary: String::new(),
        tables: vec![(String::new(), t), (lang.t("users-sessions"), s)],
        empty: String::new(),
        after: format!("<div class=\"actions\">{forms}</div>"),
    })
}

#[derive(Deserialize)]
struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    scope: String,
}

/// An operator adds an account: its temporary password (and an operator's
/// TOTP secret) are shown once.
async fn user_add(State(c): State<Arc<Console>>, ctx: Ctx, Form(f): Form<UserForm>) -> Response {
    if let Err(r) = check_csrf(&c, &ctx, &f.csrf).await {
        return r.into_response();
    }
    if ctx.person.user.role != UserRole::Operator {
        return forbidden_audited(&c, &ctx, "users").await.into_response();
    }
    let lang = ctx.lang;
    let Some(role) = UserRole::parse(&f.role) else {
        return ctx
            .error(
                StatusCode::BAD_REQUEST,
                lang.t_args(
                    "error-invalid",
                    &[("detail", &format!("role {:?}", f.role))],
                ),
            )
            .into_response();
    };
    let password = random_token()[..16].to_string();
    let by = format!("{}@{}", ctx.person.caller().display(), ctx.peer.ip());
    let login = f.login.trim().to_lowercase();
    let new = crate::service::users::NewUser {
        login: login.clone(),
        display_name: f.name,
        role,
        scope: f
            .scope
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        password: password.clone(),
        lang: String::new(),
        // Shown to the operator: its owner chooses their own at first.
        must_change: true,
    };
    match c.broker.add_user(new, &by).await {
        Ok(u) => {
            let mut items = vec![
                (lang.t("users-login"), u.login.clone()),
                (lang.t("users-password"), password),
            ];
            if !u.totp_secret.is_empty() {
                items.push((lang.t("users-totp"), u.totp_secret.clone()));
            }
            let title = lang.t("users-created");
            page(ListPage {
                ui: ctx.ui(title.clone(), "users"),
                heading: title,
                form: facts(&items),
                summary: lang.t_args(
                    "users-shown-once",
                    &[(
                        "hours",
                        &(crate::service::users::TEMPORARY_PASSWORD_MS / 3_600_000).to_string(),
                    )],
                ),
                tables: Vec::new(),
                empty: String::new(),
                after: "<p><a href=\"/users\">&larr;</a></p>".into(),
            })
        }
        Err(crate::service::ServiceError::Invalid(v)) => ctx
            .error(
                StatusCode::BAD_REQUEST,
                lang.t_args(
                    "error-invalid",
                    &[(
                        "detail",
                        &v.iter()
                            .map(|f| format!("{}: {}", f.field, f.description))
                            .collect::<Vec<_>>()
                            .join("; "),
                    )],
                ),
            )
            .into_response(),
        // The login taken (`add_user`'s words), as the store keeps it.
        Err(crate::service::ServiceError::Refused(why)) if why.starts_with("the login ") => ctx
            .error(
                StatusCode::BAD_REQUEST,
                lang.t_args("users-login-taken", &[("login", &login)]),
            )
            .into_response(),
        Err(crate::service::ServiceError::Refused(why)) => ctx
            .error(
                StatusCode::BAD_REQUEST,
                lang.t_args("error-invalid", &[("detail", &why)]),
            )
            .into_response(),
        Err(e) => ctx.unavailable("adding an account", &e).into_response(),
    }
}

/// An operator disables or enables an account (disabling ends its
/// sessions).
async fn user_state(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path((login, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_csrf(&c, &ctx, &f.csrf).await {
        return r.into_response();
    }
    if ctx.person.user.role != UserRole::Operator {
        return forbidden_audited(&c, &ctx, "users").await.into_response();
    }
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => {
            return ctx
                .error(StatusCode::NOT_FOUND, ctx.t("error-not-found"))
                .into_response();
        }
    };
    let by = format!("{}@{}", ctx.person.caller().display(), ctx.peer.ip());
    match c
        .broker
        .change_user(&login, None, false, Some(disabled), &by)
        .await
    {
        Ok(_) => Reply::Redirect(
            format!(
                "/users?done={}",
                if disabled { "disabled" } else { "enabled" }
            ),
            Vec::new(),
        )
        .into_response(),
        Err(crate::service::ServiceError::NotFound(_)) => ctx
            .error(StatusCode::NOT_FOUND, ctx.t("error-not-found"))
            .into_response(),
        Err(e) => ctx.unavailable("changing an account", &e).into_response(),
    }
}

/// A page refused by role (no service call behind it to audit the
/// refusal): audited here.
async fn forbidden_audited(c: &Console, ctx: &Ctx, what: &str) -> Reply {
    c.broker
        .console_audit(
            &ctx.person,
            &ctx.peer.ip().to_string(),
            "ConsolePage",
            what,
            "PermissionDenied: not an operator",
        )
        .await;
    ctx.forbidden()
}

async fn revoke(
    State(c): State<Arc<Console>>,
    ctx: Ctx,
    Path(login): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_csrf(&c, &ctx, &f.csrf).await {
        return r.into_response();
    }
    if ctx.person.user.role != UserRole::Operator {
        return forbidden_audited(&c, &ctx, "users").await.into_response();
    }
    let by = format!("{}@{}", ctx.person.caller().display(), ctx.peer.ip());
    match c.broker.revoke_sessions(&login, &by).await {
        Ok(_) => Reply::Redirect("/users?done=revoked".into(), Vec::new()).into_response(),
        Err(e) => ctx
            .unavailable("ending an account's sessions", &e)
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Pool;
    use crate::service::Broker;
    use crate::service::testing::two_mutuelles;
    use crate::store::CloseUpTo;
    use crate::store::users::{Session, User};
    use http_body_util::BodyExt;
    use passerelle_domain::{CareCategory, Claim, ClaimLine, Payee, SchemeOutcome, date};

    /// A date that does not exist is said so however it was typed, with a
    /// phone's commas too (it read as badly written, "écrivez-la
    /// jj/mm/aaaa", which the phone's keypad cannot type).
    #[test]
    fn a_date_that_does_not_exist_is_said_so_with_commas_too() {
        for typed in ["31/02/2026", "31,02,2026", "31.02.2026"] {
            let said = date_problem(Lang::Fr, typed);
            assert!(said.contains("n'existe pas"), "{typed}: {said}");
        }
        let said = date_problem(Lang::Fr, "31,12/2026");
        assert!(said.contains("jj/mm/aaaa"), "{said}");
        let said = date_problem(Lang::Fr, "demain");
        assert!(said.contains("jj,mm,aaaa"), "{said}");
    }

    /// A file's wrong rows are listed up to 200, then counted in a last
    /// row (a file with a wrong date on every row listed thousands).
    #[test]
    fn wrong_rows_past_two_hundred_are_counted() {
        let lang = Lang::Fr;
        for (rows, last) in [
            (ROSTER_CHANGES_SHOWN, None),
            (450, Some("… et 250 autres lignes à corriger.")),
        ] {
            let mut t = Table::new(lang, &["roster-line", "roster-problem"], &[0]);
            for i in 0..rows.min(ROSTER_CHANGES_SHOWN) {
                t.row(String::new(), vec![i.to_string(), "x".into()]);
            }
            more_bad_rows(lang, &mut t, rows);
            let n = rows.min(ROSTER_CHANGES_SHOWN) + usize::from(last.is_some());
            assert_eq!(t.rows.len(), n, "{rows}");
            if let Some(text) = last {
                assert_eq!(t.rows[n - 1].cells, vec![text.to_string()]);
            }
        }
        // Their total heads the list, where it was said only below 200 rows.
        assert_eq!(bad_rows_heading(lang, 450), "Lignes en erreur (450)");
    }

    /// A console over `broker` whose exports read `page` lines at once.
    fn console(broker: Arc<Broker>, page: u32) -> Arc<Console> {
        sized_console(broker, page, XLSX_MAX_LINES)
    }

    /// [`console`] whose workbooks hold `xlsx_lines` lines.
    fn sized_console(broker: Arc<Broker>, page: u32, xlsx_lines: u32) -> Arc<Console> {
        let mut c = Console::new(broker, None);
        Arc::get_mut(&mut c).expect("a new console").exports = Exports::new(page, xlsx_lines);
        c
    }

    /// MUT-R's manager, signed in, reading French.
    fn manager() -> Ctx {
        manager_named("ama")
    }

    fn manager_named(login: &str) -> Ctx {
        Ctx {
            person: Person {
                user: User {
                    login: login.into(),
                    display_name: "Ama".into(),
                    role: UserRole::Manager,
                    scope: vec!["MUT-R".into()],
                    password_hash: String::new(),
                    totp_secret: String::new(),
                    lang: "fr".into(),
                    disabled_ms: 0,
                    created_ms: 0,
                    updated_ms: 0,
                    must_change: false,
                    password_set_ms: 0,
                },
                session: Session {
                    id_hash: String::new(),
                    login: login.into(),
                    csrf_secret: "secret".into(),
                    mutuelle_id: "MUT-R".into(),
                    created_ms: 0,
                    seen_ms: 0,
                    address: "127.0.0.1".into(),
                },
            },
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
            lang: Lang::Fr,
        }
    }

    /// MUT-R's manager `login`, an account in the broker's store signed in
    /// (a session there), reading French: what a download read a page at
    /// a time checks again at each page.
    async fn signed_in_manager(b: &Broker, login: &str) -> Ctx {
        b.add_user(
            crate::service::users::NewUser {
                login: login.into(),
                display_name: "Ama".into(),
                role: UserRole::Manager,
                scope: vec!["MUT-R".into()],
                password: "un mot de passe assez long".into(),
                lang: "fr".into(),
                must_change: false,
            },
            "test",
        )
        .await
        .unwrap();
        let (_, person) = b
            .sign_in(login, "un mot de passe assez long", "", "127.0.0.1")
            .await
            .unwrap();
        Ctx {
            person,
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
            lang: Lang::Fr,
        }
    }

    /// A request of the console's router, as `login`'s session cookie
    /// `id` sends it (`form`: a POST of that urlencoded body).
    async fn routed(c: &Arc<Console>, id: &str, path: &str, form: Option<String>) -> Response {
        use tower::ServiceExt;
        let req = axum::http::Request::builder()
            .method(if form.is_some() { "POST" } else { "GET" })
            .uri(path)
            .header(header::COOKIE, format!("{SESSION_COOKIE}={id}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .extension(Peer(SocketAddr::from(([127, 0, 0, 1], 40000))))
            .body(axum::body::Body::from(form.unwrap_or_default()))
            .unwrap();
        router(c.clone()).oneshot(req).await.unwrap()
    }

    fn location(r: &Response) -> &str {
        r.headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// An approval sent twice (a double tap on a slow link, the first
    /// answer not shown yet): the first applies it, the second lands on
    /// the approvals page saying it was decided already, where it showed
    /// an error page quoting the broker's English.
    #[tokio::test]
    async fn an_approval_sent_twice_lands_on_the_approvals_page() {
        use crate::service::approvals::Proposed;
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 100);
        let ama = signed_in_manager(&b, "ama").await;
        signed_in_manager(&b, "kofi").await;
        let (kofi_id, kofi) = b
            .sign_in("kofi", "un mot de passe assez long", "", "127.0.0.1")
            .await
            .unwrap();
        let v = crate::store::conformance::sample_product("MUT-R", 7, "2026-01-01");
        let Proposed::Waiting(p) = b
            .propose_products(&crate::identity::Auth::Caller(ama.person.caller()), vec![v])
            .await
            .unwrap()
        else {
            panic!("waits for a second person")
        };
        let csrf = csrf::mask(&kofi.session.csrf_secret);
        let form = format!("csrf={}&hash={}", url(&csrf), p.hash);
        let path = format!("/approvals/{}/approve", p.id);
        let first = routed(&c, &kofi_id, &path, Some(form.clone())).await;
        assert_eq!(location(&first), "/approvals?done=approved");
        let second = routed(&c, &kofi_id, &path, Some(form)).await;
        assert_eq!(
            (second.status(), location(&second)),
            (StatusCode::SEE_OTHER, "/approvals?done=already-decided")
        );
        assert!(
            Done {
                done: "already-decided".into()
            }
            .notice(Lang::Fr)
            .starts_with("Cette proposition était déjà décidée")
        );
    }

    /// The store failing under a page is said in the person's language,
    /// its own words left to the log: the pages of accounts, sign-out and
    /// a checked file showed the store's English ("no such table...").
    #[tokio::test]
    async fn a_store_failure_is_said_in_the_persons_words_not_the_stores() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 100);
        let mut ops = manager_named("ops");
        ops.person.user.role = UserRole::Operator;
        ops.person.user.scope.clear();
        ops.person.session.csrf_secret = random_token();
        let form = || {
            Form(CsrfForm {
                csrf: csrf::mask(&ops.person.session.csrf_secret),
            })
        };
        rusqlite::Connection::open(dir.path().join("t.db"))
            .unwrap()
            .execute_batch("DROP TABLE console_uploads; DROP TABLE sessions; DROP TABLE users;")
            .unwrap();
        let ui = ops.ui(String::new(), "");
        let pages = [
            (
                "users",
                users(State(c.clone()), ops.clone(), Query(Done::default())).await,
            ),
            (
                "revoke",
                revoke(State(c.clone()), ops.clone(), Path("ama".into()), form()).await,
            ),
            (
                "disable",
                user_state(
                    State(c.clone()),
                    ops.clone(),
                    Path(("ama".into(), "disable".into())),
                    form(),
                )
                .await,
            ),
            (
                "sign-out",
                sign_out(State(c.clone()), ops.clone(), form())
                    .await
                    .into_response(),
            ),
            (
                "checked file",
                keep_checked(&c, &ops, &ui, "MUT-R", "/members/import", "m.csv", b"x", "")
                    .await
                    .unwrap_err(),
            ),
        ];
        for (what, r) in pages {
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
            let html = html_of(r).await;
            assert!(
                html.contains(
                    "Service momentanément indisponible. Réessayez dans quelques minutes."
                ) && !html.contains("no such table"),
                "{what}: {html}"
            );
        }
    }

    /// A colleague's proposal is not rejected without a reason by a form
    /// sent as a withdrawal (`withdraw=1`, which only its author's page
    /// offers): the broker refuses it, said in the person's language, and
    /// the proposal still waits. Its author withdraws it so.
    #[tokio::test]
    async fn a_colleagues_proposal_is_not_rejected_without_a_reason() {
        use crate::service::approvals::Proposed;
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 100);
        let ama = signed_in_manager(&b, "ama").await;
        signed_in_manager(&b, "kofi").await;
        let (kofi_id, kofi) = b
            .sign_in("kofi", "un mot de passe assez long", "", "127.0.0.1")
            .await
            .unwrap();
        let (ama_id, ama_now) = b
            .sign_in("ama", "un mot de passe assez long", "", "127.0.0.1")
            .await
            .unwrap();
        let v = crate::store::conformance::sample_product("MUT-R", 7, "2026-01-01");
        let as_ama = crate::identity::Auth::Caller(ama.person.caller());
        let Proposed::Waiting(p) = b.propose_products(&as_ama, vec![v]).await.unwrap() else {
            panic!("waits for a second person")
        };
        let path = format!("/approvals/{}/reject", p.id);
        let form = |csrf_secret: &str| {
            format!("csrf={}&reason=&withdraw=1", url(&csrf::mask(csrf_secret)))
        };
        let r = routed(&c, &kofi_id, &path, Some(form(&kofi.session.csrf_secret))).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let html = html_of(r).await;
        assert!(
            html.contains("Donnez le motif du rejet : la personne qui a proposé le lira."),
            "{html}"
        );
        let still = b.proposal(&as_ama, p.id).await.unwrap();
        assert_eq!(still.state, crate::store::approvals::ProposalState::Pending);
        let r = routed(&c, &ama_id, &path, Some(form(&ama_now.session.csrf_secret))).await;
        assert_eq!(location(&r), "/approvals?done=withdrawn");
    }

    /// A password an operator gave: its owner is sent to choose their own
    /// before any page; a wrong current password, two different entries,
    /// the same password again are said in French and change nothing;
    /// once changed, every session of the account ends, the old password
    /// signs no one in, the new one does, and no page sends them back.
    #[tokio::test]
    async fn a_password_given_by_an_operator_is_changed_before_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 100);
        let given = "donne par l'operateur";
        b.add_user(
            crate::service::users::NewUser {
                login: "yao".into(),
                display_name: "Yao".into(),
                role: UserRole::Clerk,
                scope: vec!["MUT-R".into()],
                password: given.into(),
                lang: "fr".into(),
                must_change: true,
            },
            "operator",
        )
        .await
        .unwrap();
        let (id, person) = b.sign_in("yao", given, "", "127.0.0.1").await.unwrap();
        assert!(person.user.must_change);
        // Pages, a download, a form's post: all lead to the password.
        for (path, form) in [
            ("/", None),
            ("/claims", None),
            ("/members", None),
            ("/periods/CNSS/MUT-R/1/statement.csv", None),
            ("/claims/CNSS/C-1/retry", Some(String::from("csrf=x"))),
            ("/mutuelle", Some(String::from("csrf=x&mutuelle=MUT-R"))),
        ] {
            let r = routed(&c, &id, path, form).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
            assert_eq!(location(&r), "/password", "{path}");
        }
        let page = html_of(routed(&c, &id, "/password", None).await).await;
        assert!(page.contains("choisissez le vôtre"), "{page}");
        let csrf = csrf::mask(&person.session.csrf_secret);
        let post = |current: &str, new: &str, confirm: &str| {
            let form = format!(
                "csrf={}&current={}&new={}&confirm={}",
                url(&csrf),
                url(current),
                url(new),
                url(confirm)
            );
            routed(&c, &id, "/password", Some(form))
        };
        let mine = "ma phrase de passe à moi";
        for (current, new, confirm, status, said) in [
            (
                "pas le bon",
                mine,
                mine,
                StatusCode::UNAUTHORIZED,
                "Mot de passe actuel incorrect.",
            ),
            (
                given,
                mine,
                "une autre phrase",
                StatusCode::BAD_REQUEST,
                "diffèrent",
            ),
            (
                given,
                given,
                given,
                StatusCode::BAD_REQUEST,
                "est l&#39;actuel",
            ),
            (
                given,
                "court",
                "court",
                StatusCode::BAD_REQUEST,
                "Trop court ou trop long : de 10 à 256 caractères.",
            ),
            (
                given,
                "aaaaaaaaaaaa",
                "aaaaaaaaaaaa",
                StatusCode::BAD_REQUEST,
                "Trop simple",
            ),
        ] {
            let r = post(current, new, confirm).await;
            assert_eq!(r.status(), status, "{said}");
            let page = html_of(r).await;
            assert!(page.contains(said), "{said}: {page}");
        }
        assert!(
            b.person(&id).await.unwrap().is_some(),
            "nothing changed yet"
        );
        let r = post(given, mine, mine).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/sign-in?changed=1");
        // Every session ended; the old password signs no one in.
        assert!(b.person(&id).await.unwrap().is_none());
        assert_eq!(
            b.sign_in("yao", given, "", "127.0.0.1").await.unwrap_err(),
            SignInError::Refused
        );
        let (id, person) = b.sign_in("yao", mine, "", "127.0.0.1").await.unwrap();
        assert!(!person.user.must_change);
        let r = routed(&c, &id, "/claims", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        // A form's address opened as a page: said in words.
        let r = routed(&c, &id, "/sign-out", None).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        let page = html_of(r).await;
        assert!(
            page.contains("celle d&#39;un bouton de la console"),
            "{page}"
        );
        // The audit says who changed it.
        b.audit().flush().await;
        let trail = b.store().audit_of("user/yao").await.unwrap();
        assert!(
            trail.rows.iter().any(|r| r.method == "ChangePassword"),
            "{:?}",
            trail.rows
        );
    }

    /// A password an operator gave, unused for more than 72 hours, is
    /// refused on the sign-in page saying to ask for a new one, in French
    /// and in English; a wrong one is refused as any.
    #[tokio::test(start_paused = true)]
    async fn an_old_temporary_password_is_told_to_ask_for_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let b = crate::service::testing::broker(dir.path());
        let c = console(b.clone(), 100);
        b.add_user(
            crate::service::users::NewUser {
                login: "yao".into(),
                display_name: "Yao".into(),
                role: UserRole::Clerk,
                scope: vec!["MUT-X".into()],
                password: "donne par l'operateur".into(),
                lang: String::new(),
                must_change: true,
            },
            "operator:ops",
        )
        .await
        .unwrap();
        tokio::time::advance(std::time::Duration::from_secs(72 * 3600 + 60)).await;
        let pre = random_token();
        let post = |language: &'static str, password: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("{PRE_COOKIE}={pre}")).unwrap(),
            );
            headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static(language));
            sign_in(
                State(c.clone()),
                Extension(Peer(SocketAddr::from(([127, 0, 0, 1], 40000)))),
                headers,
                Form(SignInForm {
                    csrf: csrf::mask(&pre),
                    login: "yao".into(),
                    password: password.into(),
                    code: String::new(),
                }),
            )
        };
        for (language, said) in [
            (
                "fr",
                "Ce mot de passe vous a été donné il y a plus de 72 heures et ne permet plus de vous connecter : demandez-en un nouveau à un opérateur.",
            ),
            (
                "en",
                "This password was given to you more than 72 hours ago and no longer signs you in: ask an operator for a new one.",
            ),
        ] {
            let r = post(language, "donne par l'operateur").await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{language}");
            let html = html_of(r).await;
            assert!(html.contains(said), "{language}: {html}");
        }
        let r = post("fr", "pas le bon mot").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let html = html_of(r).await;
        assert!(
            html.contains("Identifiant, mot de passe ou code incorrect.")
                && !html.contains("72 heures"),
            "{html}"
        );
    }

    /// An operator adding an account under a login already taken reads it
    /// in their language, naming the login (it quoted the broker's
    /// English).
    #[tokio::test(start_paused = true)]
    async fn a_login_taken_is_said_in_the_persons_words() {
        use crate::service::users::{NewUser, totp_code};
        let dir = tempfile::tempdir().unwrap();
        let b = crate::service::testing::broker(dir.path());
        let c = console(b.clone(), 100);
        let new = |login: &str| NewUser {
            login: login.into(),
            display_name: login.into(),
            role: UserRole::Operator,
            scope: vec![],
            password: "une phrase de passe".into(),
            lang: "fr".into(),
            must_change: false,
        };
        let nana = b.add_user(new("nana"), "operator:ops").await.unwrap();
        b.add_user(new("kofi"), "operator:ops").await.unwrap();
        let code = totp_code(&nana.totp_secret, b.clock().now_ms()).unwrap();
        let (id, person) = b
            .sign_in("nana", "une phrase de passe", &code, "127.0.0.1")
            .await
            .unwrap();
        let form = format!(
            "csrf={}&login=kofi&name=Kofi&role=operator&scope=",
            url(&csrf::mask(&person.session.csrf_secret)),
        );
        let r = routed(&c, &id, "/users", Some(form)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let html = html_of(r).await.replace("&#39;", "'");
        assert!(
            html.contains(
                "L'identifiant « kofi » est déjà celui d'un compte : choisissez-en un autre."
            ),
            "{html}"
        );
    }

    /// A new operator changes the password they were given: the page
    /// shows them a second factor of their own, once, and ends the
    /// session; the secret shown to the operator who made the account no
    /// longer signs in.
    #[tokio::test(start_paused = true)]
    async fn a_new_operators_password_change_shows_their_own_second_factor() {
        use crate::service::users::totp_code;
        let dir = tempfile::tempdir().unwrap();
        let b = crate::service::testing::broker(dir.path());
        let c = console(b.clone(), 100);
        let given = "donne par l'operateur";
        let made = b
            .add_user(
                crate::service::users::NewUser {
                    login: "nana".into(),
                    display_name: "Nana".into(),
                    role: UserRole::Operator,
                    scope: vec![],
                    password: given.into(),
                    lang: "fr".into(),
                    must_change: true,
                },
                "operator:ops",
            )
            .await
            .unwrap();
        let code = |secret: &str| totp_code(secret, b.clock().now_ms()).unwrap();
        let (id, person) = b
            .sign_in("nana", given, &code(&made.totp_secret), "127.0.0.1")
            .await
            .unwrap();
        tokio::time::advance(std::time::Duration::from_secs(30)).await;
        let mine = "ma phrase de passe à moi";
        let form = format!(
            "csrf={}&current={}&code={}&new={}&confirm={}",
            url(&csrf::mask(&person.session.csrf_secret)),
            url(given),
            code(&made.totp_secret),
            url(mine),
            url(mine)
        );
        let r = routed(&c, &id, "/password", Some(form)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let cleared = r.headers().get_all(header::SET_COOKIE).iter().any(|v| {
            v.to_str()
                .unwrap()
                .starts_with(&format!("{SESSION_COOKIE}=;"))
        });
        assert!(cleared, "{:?}", r.headers());
        let html = html_of(r).await;
        let own = b.store().user("nana").await.unwrap().unwrap().totp_secret;
        assert_ne!(own, made.totp_secret);
        assert!(
            html.contains("Votre propre second facteur")
                && html.contains(&own)
                && !html.contains(&made.totp_secret),
            "{html}"
        );
        assert!(b.person(&id).await.unwrap().is_none(), "the session ended");
        tokio::time::advance(std::time::Duration::from_secs(30)).await;
        assert_eq!(
            b.sign_in("nana", mine, &code(&made.totp_secret), "127.0.0.1")
                .await
                .unwrap_err(),
            SignInError::Refused
        );
        assert!(
            b.sign_in("nana", mine, &code(&own), "127.0.0.1")
                .await
                .is_ok()
        );
    }

    /// A new version's form carries the version and mutuelle it was opened
    /// on: posted once they no longer match (another version published, a
    /// federation's manager switched mutuelle in another tab), it is shown
    /// again saying so, and nothing is proposed.
    #[tokio::test]
    async fn a_product_form_opened_on_another_version_proposes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 100);
        let ama = signed_in_manager(&b, "ama").await;
        let form = html_of(
            changes::new_version_form(State(c.clone()), ama.clone(), Path("BASE".into())).await,
        )
        .await;
        assert!(
            form.contains("name=\"mutuelle\" value=\"MUT-R\"")
                && form.contains("name=\"base\" value=\"1\""),
            "{form}"
        );
        let csrf = csrf::mask(&ama.person.session.csrf_secret);
        let posted = |mutuelle: &str, base: &str| {
            vec![
                ("csrf".to_string(), csrf.clone()),
                ("mutuelle".to_string(), mutuelle.to_string()),
                ("base".to_string(), base.to_string()),
                ("name".to_string(), "Base 2".to_string()),
                ("valid_from".to_string(), "01/01/2027".to_string()),
            ]
        };
        // Opened on another of a federation's mutuelles: said so, before
        // the product is looked for in the one chosen now.
        let r = changes::new_version(
            State(c.clone()),
            ama.clone(),
            Path("BASE".into()),
            Form(posted("MUT-G", "1")),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let page = html_of(r).await;
        assert!(
            page.contains("Ce formulaire a été ouvert pour MUT-G"),
            "{page}"
        );
        for (mutuelle, base) in [("MUT-R", "0"), ("", "")] {
            let r = changes::new_version(
                State(c.clone()),
                ama.clone(),
                Path("BASE".into()),
                Form(posted(mutuelle, base)),
            )
            .await;
            let page = html_of(r).await;
            assert!(
                page.contains("Le produit a changé depuis l&#39;ouverture"),
                "{page}"
            );
        }
        assert!(
            b.proposals(&["MUT-R".into()], true)
                .await
                .unwrap()
                .is_empty(),
            "nothing proposed"
        );
        // The form posted back as a browser does, its start date before
        // version 1's: the broker's refusal in words, with version 1's date.
        let mut fields: Vec<(String, String)> = form
            .split("<input ")
            .skip(1)
            .filter_map(|i| {
                let attr = |a: &str| {
                    let at = i.find(&format!("{a}=\""))? + a.len() + 2;
                    Some(i[at..at + i[at..].find('"')?].to_string())
                };
                Some((attr("name")?, attr("value").unwrap_or_default()))
            })
            .collect();
        for (k, v) in &mut fields {
            if k == "valid_from" {
                *v = "01/01/2020".into();
            }
            if k == "csrf" {
                *v = csrf.clone();
            }
        }
        let r = changes::new_version(
            State(c.clone()),
            ama.clone(),
            Path("BASE".into()),
            Form(fields),
        )
        .await;
        let page = html_of(r).await;
        assert!(
            page.contains("La nouvelle version doit commencer après la version 1, qui s&#39;applique depuis le 01/01/2025"),
            "{page}"
        );
    }

    /// Five claims of MUT-R's member, one consultation a day each (6 to 10
    /// March, the test clock's today), in its open period: five statement
    /// lines.
    async fn five_claims(b: &Broker) {
        for i in 0..5u32 {
            b.coordinate(consultation(i, "CHU", &format!("2026-03-{:02}", 6 + i)))
                .await
                .unwrap();
        }
    }

    /// Claim `C-<i>` of MUT-R's member: one consultation at `provider`,
    /// paid to it.
    fn consultation(i: u32, provider: &str, day: &str) -> Claim {
        Claim {
            scheme_id: "CNSS".into(),
            claim_id: format!("C-{i}"),
            provider_id: provider.into(),
            invoice_number: format!("INV-{i}"),
            payee: Payee::Provider,
            beneficiary_id: "R-OK".into(),
            beneficiary_category: String::new(),
            mutuelle_id: None,
            member_number: None,
            date_of_care: date::parse(day).unwrap(),
            stay: None,
            diagnoses: vec![],
            currency: "XOF".into(),
            lines: vec![ClaimLine {
                act_code: "CONS".into(),
                category: CareCategory::Consultation,
                quantity: 1,
                billed: 5_000,
                tariff_base: 5_000,
                scheme_share: 3_500,
                outcome: SchemeOutcome::Covered,
                scheme_reason: String::new(),
            }],
            prior_authorization: None,
        }
    }

    /// A claim paid against a prior authorization names it on its page,
    /// from GetClaim (nothing said which authorization paid it); a claim
    /// quoting none shows no such line.
    #[tokio::test]
    async fn a_claim_page_names_its_prior_authorization() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 100);
        let ama = signed_in_manager(&b, "ama").await;
        let mut planned = consultation(90, "CHU", "2026-03-10");
        planned.claim_id = "PA-90".into();
        let a = b.request_authorization(planned).await.unwrap();
        let mut paid = consultation(91, "CHU", "2026-03-10");
        paid.prior_authorization = Some(a.reference.clone());
        b.coordinate(paid).await.unwrap();
        b.coordinate(consultation(92, "CHU", "2026-03-10"))
            .await
            .unwrap();
        let page = |id: &str| {
            claim(
                State(c.clone()),
                ama.clone(),
                Path(("CNSS".into(), id.into())),
                Query(Done::default()),
            )
        };
        let with = html_of(page("C-91").await).await;
        assert!(
            with.contains(&format!(
                "<dt>Accord préalable</dt><dd>{}</dd>",
                esc(&a.reference)
            )),
            "{with}"
        );
        let without = html_of(page("C-92").await).await;
        assert!(!without.contains("Accord préalable"), "{without}");
    }

    /// Another mutuelle's claim reads exactly as a missing one, over the
    /// service (NOT_FOUND, the same words and details) and on the claim
    /// page (404, the same sentence): a mutuelle probing a scheme's claim
    /// ids learned which mutuelle covered another patient from a refusal
    /// naming it (403 on the page). Why it was refused is in the audit row.
    #[tokio::test]
    async fn another_mutuelles_claim_reads_as_a_missing_one() {
        use tonic_types::StatusExt;
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 100);
        let ama = signed_in_manager(&b, "ama").await;
        let mut theirs = consultation(93, "CHU", "2026-03-10");
        theirs.beneficiary_id = "G-OK".into();
        assert_eq!(b.coordinate(theirs).await.unwrap().mutuelle_id, "MUT-G");
        let ask = |id: &str| {
            let msg = settlement::GetClaimRequest {
                scheme_id: "CNSS".into(),
                claim_id: id.into(),
            };
            let (c, ama) = (c.clone(), ama.clone());
            async move {
                c.call(&ama.person, ama.peer, msg, |r| c.settlement.get_claim(r))
                    .await
                    .unwrap_err()
            }
        };
        let (other, missing) = (ask("C-93").await, ask("C-94").await);
        assert_eq!(
            (other.code(), other.message()),
            (tonic::Code::NotFound, "claim C-93 of scheme CNSS not found")
        );
        assert_eq!(
            (missing.code(), missing.message()),
            (tonic::Code::NotFound, "claim C-94 of scheme CNSS not found")
        );
        // The same details (an ErrorInfo NOT_FOUND), nothing more.
        let info = other.get_error_details().error_info().cloned().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.metadata.len()),
            ("NOT_FOUND", 0)
        );
        let mut swapped = missing.details().to_vec();
        let at = swapped.windows(4).position(|w| w == b"C-94").unwrap();
        swapped[at..at + 4].copy_from_slice(b"C-93");
        assert_eq!(other.details(), &swapped[..], "byte for byte, but the id");
        let page = |id: &str| {
            claim(
                State(c.clone()),
                ama.clone(),
                Path(("CNSS".into(), id.into())),
                Query(Done::default()),
            )
        };
        for id in ["C-93", "C-94"] {
            let r = page(id).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{id}");
            let html = html_of(r).await;
            assert!(
                html.contains("Page ou demande introuvable.") && !html.contains("MUT-G"),
                "{id}: {html}"
            );
        }
        // A federation's manager working on MUT-R is told the claim may be
        // another of theirs, whether it is or does not exist.
        let mut federation = ama.clone();
        federation.person.user.scope.push("MUT-G".into());
        for id in ["C-93", "C-94"] {
            let r = claim(
                State(c.clone()),
                federation.clone(),
                Path(("CNSS".into(), id.into())),
                Query(Done::default()),
            )
            .await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{id}");
            let html = html_of(r).await;
            assert!(
                html.contains("Aucune demande de MUT-R, la mutuelle sur laquelle vous travaillez"),
                "{id}: {html}"
            );
        }
        let rows = b.claim_audit("CNSS", "C-93").await.unwrap().rows;
        let refused: Vec<&str> = rows
            .iter()
            .filter(|r| r.method == "GetClaim" && r.party.starts_with("mutuelle:MUT-R"))
            .map(|r| r.outcome.as_str())
            .collect();
        assert_eq!(refused.len(), 3, "{rows:?}");
        assert!(
            refused.iter().all(|o| o.starts_with("NotFound: claim C-93")
                && o.contains("out of scope: mutuelle MUT-R may not act for mutuelle MUT-G")),
            "{refused:?}"
        );
    }

    /// Closes MUT-R's open period and marks it settled as `reference`.
    async fn close_and_settle(b: &Broker, reference: &str) -> u32 {
        let now = crate::audit::now_ms();
        let p = b
            .store()
            .close_period("CNSS", "MUT-R", &CloseUpTo::everything(), now, None)
            .await
            .unwrap();
        b.store()
            .settle_period("CNSS", "MUT-R", p.number, reference, now, None)
            .await
            .unwrap();
        p.number
    }

    /// The remittance advice's page of payees, as the manager reads it.
    async fn remittance_page(b: &Arc<Broker>, number: u32, page: &str) -> String {
        let r = remittance::page_of(
            State(console(b.clone(), 5_000)),
            manager(),
            Path(("CNSS".into(), "MUT-R".into(), number)),
            Query(PageQuery { page: page.into() }),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let (body, cut) = frames(r).await;
        assert_eq!(cut, None);
        String::from_utf8(body.concat()).unwrap()
    }

    /// A members file whose rows the broker refuses (a scheme and a product
    /// it does not know, a beneficiary another mutuelle covers) is checked
    /// like one with a bad date: every wrong row named by the file's line
    /// and column in French, beside the file's own, and what the rest
    /// would change once they are corrected. Before, the page gave way to
    /// the broker's English and no line (a mutuelle clerk's trial).
    #[tokio::test]
    async fn a_members_file_check_names_the_rows_the_broker_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 5_000);
        let csv = "scheme_id;beneficiary_id;member_number;product_id;product_start\n\
                   CNSS;R-OK;R-1;BASE;01/01/2025\n\
                   CNSSS;R-N2;R-2;BASE;01/01/2026\n\
                   CNSS;R-N3;R-3;NOPE;01/01/2026\n\
                   CNSS;G-OK;R-4;BASE;01/01/2026\n\
                   CNSS;R-N5;R-5;BASE;32/13/2026\n\
                   CNSS;R-N6;R-6;BASE;01/01/2026\n";
        let file = read_roster(Lang::Fr, "adherents.csv", csv.as_bytes()).unwrap();
        let check = check_roster(&c, &manager(), "MUT-R", &file).await.unwrap();
        let rows: Vec<String> = check
            .rows
            .iter()
            .map(|r| format!("{} | {} | {} | {}", r.line, r.column, r.problem, r.member))
            .collect();
        assert_eq!(
            rows,
            [
                "3 | régime (scheme_id) | régime « CNSSS » inconnu de passerelle | R-2",
                "4 | produit (product_id) | produit « NOPE » non déclaré par la mutuelle (voir la page Produits) | R-3",
                "5 | début du produit (product_start) | une autre mutuelle couvre aussi ce bénéficiaire à partir du 01/01/2026, sans date de fin : l'une des deux adhésions doit finir avant que l'autre commence | R-4",
                "6 | début du produit (product_start) | « 32/13/2026 » n'est pas une date (jj/mm/aaaa) | R-5",
            ]
        );
        assert!(!check.more_refused);
        let d = check.diff.expect("the rest checked");
        assert_eq!(
            (d.added, d.updated, d.end_dated, d.unchanged),
            (1, 1, 0, 0),
            "R-6 added, R-1 updated (the file has no household or dues), the refused kept: {d:?}"
        );
        // A member number that differs from the stored one only in letter
        // case (a renumbering would start its ceilings again): named, and
        // the member as stored kept, not ended, in what the rest would do.
        let csv = "scheme_id;beneficiary_id;member_number;product_id;product_start\n\
                   CNSS;R-OK;r-1;BASE;01/01/2025\n\
                   CNSS;R-N6;R-6;BASE;01/01/2026\n";
        let file = read_roster(Lang::Fr, "adherents.csv", csv.as_bytes()).unwrap();
        let slip = check_roster(&c, &manager(), "MUT-R", &file).await.unwrap();
        assert_eq!(slip.rows.len(), 1);
        assert_eq!(
            (
                slip.rows[0].line,
                slip.rows[0].column.as_str(),
                slip.rows[0].member.as_str()
            ),
            (2, "n° d'adhérent (member_number)", "r-1")
        );
        assert!(
            slip.rows[0]
                .problem
                .starts_with("ne diffère du n° d'adhérent « R-1 » que par les majuscules"),
            "{}",
            slip.rows[0].problem
        );
        let d = slip.diff.expect("the rest checked");
        assert_eq!((d.added, d.end_dated), (1, 0), "R-1 kept: {d:?}");
        // Nothing was written: a check is a dry run.
        assert!(
            b.store()
                .get_member("MUT-R", "R-6")
                .await
                .unwrap()
                .is_none()
        );
        // Another import of the mutuelle running: the check is refused,
        // said in French on the page's form.
        let place = b.roster_import_place("MUT-R").unwrap();
        let e = check_roster(&c, &manager(), "MUT-R", &file)
            .await
            .err()
            .expect("refused while another import runs");
        assert!(import_running(&e), "{e:?}");
        assert!(
            Lang::Fr.refusal(&e).starts_with(
                "Un import ou une vérification du fichier des adhérents de cette mutuelle est déjà en cours"
            ),
            "{}",
            Lang::Fr.refusal(&e)
        );
        drop(place);
        assert!(check_roster(&c, &manager(), "MUT-R", &file).await.is_ok());
    }

    /// The claims' filters: a date that cannot be read is said above the
    /// form, which keeps it, and the list is shown without it (a day that
    /// does not exist said as such); a member number or a provider typed
    /// in small letters finds the claims.
    #[tokio::test]
    async fn the_claims_filters_keep_the_page_and_forgive_small_letters() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        for i in 0..2u32 {
            b.coordinate(consultation(i, "CHU-SO", "2026-03-10"))
                .await
                .unwrap();
        }
        // The claims page as `ctx` reads it.
        let list_as = |ctx: Ctx, q: ClaimsQuery| {
            let b = b.clone();
            async move {
                let r = claims(State(console(b, 5_000)), ctx, Query(q)).await;
                assert_eq!(r.status(), StatusCode::OK);
                let (body, _) = frames(r).await;
                String::from_utf8(body.concat())
                    .unwrap()
                    .replace("&#39;", "'")
            }
        };
        let list = |q: ClaimsQuery| list_as(manager(), q);
        let html = list(ClaimsQuery {
            from: "31/02/2026".into(),
            to: "20112026".into(),
            ..Default::default()
        })
        .await;
        assert!(
            html.contains("la date « 31/02/2026 » n'existe pas")
                && html.contains("date invalide « 20112026 »")
                && !html.contains("Erreur")
                && html.contains("value=\"31/02/2026\"")
                && html.contains(">C-1<"),
            "{html}"
        );
        for (member, provider) in [("r-1", ""), ("", "chu-so"), ("R-1", "Chu-So")] {
            let html = list(ClaimsQuery {
                member: member.into(),
                provider: provider.into(),
                ..Default::default()
            })
            .await;
            assert!(
                html.contains(">C-0<") && html.contains(">C-1<"),
                "{member} {provider}: {html}"
            );
        }
        // An operator who names no mutuelle sees the waiting claims only,
        // and is told so, with how to see the rest; naming one lists them.
        let mut operator = manager();
        operator.person.user.role = UserRole::Operator;
        operator.person.user.scope = Vec::new();
        operator.person.session.mutuelle_id = String::new();
        let as_operator = |q: ClaimsQuery| list_as(operator.clone(), q);
        let html = as_operator(ClaimsQuery::default()).await;
        assert!(
            html.contains("les opérateurs ne voient que les demandes en attente")
                && !html.contains(">C-0<"),
            "{html}"
        );
        let html = as_operator(ClaimsQuery {
            mutuelle: "MUT-R".into(),
            ..Default::default()
        })
        .await;
        assert!(html.contains(">C-0<") && html.contains(">C-1<"), "{html}");
    }

    /// The member page says whether the member is covered today as a
    /// scheme's eligibility would: yes with the product, else why not, a
    /// waiting period included (a verdict read from the roster alone said
    /// yes there; the review of the clerk's fixes).
    #[tokio::test]
    async fn the_member_page_says_whether_the_member_is_covered_today() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let today = b.clock().today();
        let mut waiting = b
            .store()
            .product_on("MUT-R", "BASE", today)
            .await
            .unwrap()
            .expect("BASE");
        waiting.id = "WAIT".into();
        waiting.waiting_days = 90;
        b.store().put_products(&[waiting], None).await.unwrap();
        let mut w = crate::service::testing::member_of("R");
        w.member_number = "R-W".into();
        w.beneficiary_id = "R-WAIT".into();
        w.products = vec![passerelle_domain::ProductPeriod {
            product_id: "WAIT".into(),
            start: today,
            end: None,
        }];
        b.store().upsert_members(&[w], 0).await.unwrap();
        let page = |number: &str| {
            let b = b.clone();
            let number = number.to_string();
            async move {
                let r = members(
                    State(console(b, 5_000)),
                    manager(),
                    Query(MembersQuery { number }),
                )
                .await;
                assert_eq!(r.status(), StatusCode::OK);
                let (body, _) = frames(r).await;
                String::from_utf8(body.concat())
                    .unwrap()
                    .replace("&#39;", "'")
            }
        };
        let day = Lang::Fr.date(today);
        let from = Lang::Fr.date(today.saturating_add(time::Duration::days(90)));
        let html = page("r-1").await;
        assert!(
            html.contains(&format!(
                "<dt>Couvert le {day}</dt><dd>oui (produit BASE)</dd>"
            )),
            "{html}"
        );
        let html = page("R-W").await;
        assert!(
            html.contains(&format!(
                "<dt>Couvert le {day}</dt><dd>non : délai de carence : couvert à partir du {from}</dd>"
            )),
            "{html}"
        );
    }

    /// A workbook that cannot be read is said in words a clerk acts on: an
    /// old `.xls` (read as text, it was refused for a header it seemed to
    /// lack), a damaged or cut `.xlsx` (the ZIP reader's English before).
    #[test]
    fn unreadable_workbooks_say_what_to_do() {
        let old = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0, 0, 0];
        let e = read_roster(Lang::Fr, "adherents.xls", &old).err().unwrap();
        assert!(
            e.contains("ancien format Excel (.xls)") && e.contains(".xlsx"),
            "{e}"
        );
        let cut = b"PK\x03\x04 a workbook cut in its transfer";
        let e = read_roster(Lang::Fr, "adherents.xlsx", cut).err().unwrap();
        assert!(
            e.contains("abîmé ou incomplet") && !e.contains("EOCD"),
            "{e}"
        );
        // A whole ZIP that is no Excel workbook (an .ods): the reader's
        // words for it.
        let e = Lang::Fr.roster_unreadable("not an XLSX workbook: no xl/workbook.xml");
        assert!(
            e.contains("LibreOffice (.ods)") && !e.contains("abîmé"),
            "{e}"
        );
        let e = opening::read(Lang::Fr, "soldes.xls", &old).err().unwrap();
        assert!(e.contains("ancien format Excel (.xls)"), "{e}");
    }

    /// A file that ends half or more of the mutuelle's members needs a
    /// confirmation to apply; a file ending a few does not.
    #[test]
    fn ending_most_members_needs_a_confirmation() {
        let d = |ended, updated, unchanged| roster::ImportRosterResponse {
            end_dated: ended,
            updated,
            unchanged,
            added: 1,
            in_force_before: ended + updated + unchanged,
            ..Default::default()
        };
        assert!(ends_most(&d(4, 0, 0)));
        assert!(ends_most(&d(2, 1, 1)));
        assert!(!ends_most(&d(1, 1, 1)));
        assert!(!ends_most(&d(0, 0, 0)));
        // 900 of 1,000 in force end; 3,000 long gone are unchanged.
        let partial = roster::ImportRosterResponse {
            end_dated: 900,
            updated: 100,
            unchanged: 3_000,
            in_force_before: 1_000,
            ..Default::default()
        };
        assert!(ends_most(&partial));
        assert!(diff_shown(&d(4, 2, 3)).starts_with("1/2/4/3/"));
        // The same counts, other members changed: not what was shown.
        let change = |m: &str| roster::RosterChange {
            member_number: m.into(),
            change: "updated".into(),
        };
        let (mut a, mut b) = (d(0, 1, 5), d(0, 1, 5));
        a.changes = vec![change("M-1")];
        b.changes = vec![change("M-2")];
        assert_ne!(diff_shown(&a), diff_shown(&b));
    }

    /// A statement longer than a page: a payee the page cuts has its
    /// page's subtotal said as such, and its whole statement's claims and
    /// share above its table; a payee whole on the page its total; the next
    /// page says the payee goes on and links back to the first; a page is
    /// not signed (its export is). A manager paying each payee from the
    /// page paid a page's part (a mutuelle clerk's trial).
    #[tokio::test]
    async fn a_statement_page_says_which_payees_it_cuts() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        // CHU-A's 200 claims, then CHU-B's 100: one line each.
        for i in 0..300u32 {
            let provider = if i < 200 { "CHU-A" } else { "CHU-B" };
            b.coordinate(consultation(i, provider, "2026-03-10"))
                .await
                .unwrap();
        }
        let page = |token: String| {
            let b = b.clone();
            async move {
                let r = statement(
                    State(console(b, 5_000)),
                    manager(),
                    Path(("CNSS".into(), "MUT-R".into(), 0)),
                    Query(PageQuery { page: token }),
                )
                .await;
                assert_eq!(r.status(), StatusCode::OK);
                let (body, _) = frames(r).await;
                String::from_utf8(body.concat()).unwrap()
            }
        };
        let first = page(String::new()).await;
        let whole = b
            .statement_payee_total("CNSS", "MUT-R", 0, "provider", "CHU-B")
            .await
            .unwrap()
            .expect("CHU-B's claims");
        assert_eq!(whole.claims, 100);
        assert_eq!(
            first.matches("Sous-total de cette page").count(),
            1,
            "{first}"
        );
        assert_eq!(first.matches(">Total<").count(), 1, "CHU-A whole: {first}");
        let said = lang_money(whole.mutuelle);
        assert!(
            first.contains(&format!(
                "prestataire CHU-B — sur tout le bordereau : 100 demandes, part de la mutuelle {said}"
            )),
            "{first}"
        );
        assert!(
            !first.contains("Visa du conseil") && !first.contains("Revenir à la première page")
        );
        let token = first
            .split("?page=")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap_or_else(|| panic!("a link to the next page: {first}"))
            .to_string();
        let second = page(token).await;
        assert!(
            second.contains("prestataire CHU-B (suite de la page précédente) — sur tout le bordereau : 100 demandes")
                && second.contains("Sous-total de cette page")
                && second.contains("Revenir à la première page")
                && !second.contains("CHU-A"),
            "{second}"
        );
    }

    /// An amount as the French pages write it, XOF.
    fn lang_money(amount: i64) -> String {
        Lang::Fr.money(amount, "XOF")
    }

    /// A settled period's payees, a hundred a page: the page goes on to
    /// the next and back to the first; a payee whose recovery outweighs
    /// its claims is said to owe, not to be paid a negative amount.
    #[tokio::test]
    async fn a_remittance_advice_lists_its_payees_by_pages_and_says_who_owes() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        for i in 0..101u32 {
            let r = b
                .coordinate(consultation(i, &format!("P-{i:03}"), "2026-03-10"))
                .await
                .unwrap();
            assert_eq!(r.state, passerelle_domain::ClaimState::Coordinated, "{r:?}");
        }
        let first = close_and_settle(&b, "VIR-1").await;
        let html = remittance_page(&b, first, "").await;
        assert_eq!(html.matches("prestataire P-").count(), 2 * 100, "{html}");
        assert!(html.contains("prestataire P-099 :") && !html.contains("P-100"));
        assert!(html.contains("Montant net") && html.contains("CSV pour Excel"));
        // The whole period's net due under each page: one consultation a
        // day paid by the product, 1 500 XOF, over 101 claims.
        let foot = "<tfoot><tr><td class=\"\">Net dû de la période (tous les bénéficiaires)</td><td class=\"num\">101</td><td class=\"num\">1\u{202f}500\u{a0}XOF</td></tr></tfoot>";
        assert!(html.contains(foot), "{html}");
        assert!(!html.contains("Revenir à la première page"));
        let token = html
            .split("remittance?page=")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap_or_else(|| panic!("a link to the next page: {html}"));
        let next = remittance_page(&b, first, token).await;
        assert!(
            next.contains("prestataire P-100 :") && next.contains(foot),
            "{next}"
        );
        assert_eq!(next.matches("prestataire P-").count(), 2);
        assert!(next.contains("Revenir à la première page") && !next.contains("?page="));
        // No one owes: the net due is what the transfer paid.
        assert!(!html.contains("Le virement verse"), "{html}");

        // P-000's claim (the member's one consultation a day the product
        // pays) cancelled after its period was settled: the next period
        // holds its recovery, and P-101's consultation of another day.
        b.cancel("CNSS", "C-0", "facturée deux fois").await.unwrap();
        // The settled period's statement keeps its line, marked.
        let r = statement(
            State(console(b.clone(), 5_000)),
            manager(),
            Path(("CNSS".into(), "MUT-R".into(), first)),
            Query(PageQuery::default()),
        )
        .await;
        let (body, _) = frames(r).await;
        let html = String::from_utf8(body.concat()).unwrap();
        assert!(
            html.contains(">C-0 (annulée après la clôture)</a>")
                && html.matches("(annulée après la clôture)").count() == 1,
            "{html}"
        );
        // And so does the file sent to the payee: the transfer paid the
        // line, a later one takes it back.
        let r = remittance::file_of(
            State(console(b.clone(), 5_000)),
            manager(),
            Path((
                "CNSS".to_string(),
                "MUT-R".to_string(),
                first,
                "provider".to_string(),
                "P-000.csv".to_string(),
            )),
        )
        .await;
        let (body, _) = frames(r).await;
        let csv = String::from_utf8(body.concat()).unwrap();
        let line = csv
            .lines()
            .find(|l| l.contains(";\"C-0\";"))
            .unwrap_or_else(|| panic!("{csv}"));
        assert!(
            line.ends_with(";1500;\"Annulée après la clôture\""),
            "{csv}"
        );
        b.coordinate(consultation(101, "P-101", "2026-03-11"))
            .await
            .unwrap();
        let second = close_and_settle(&b, "VIR-2").await;
        let html = remittance_page(&b, second, "").await;
        let said = html.replace("&#39;", "'").replace("&#x27;", "'");
        assert!(
            said.contains("1\u{202f}500\u{a0}XOF à récupérer (rien n'est versé)"),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"num\">0\u{a0}XOF</td></tr></tfoot>"),
            "{html}"
        );
        // The net due (0) is not what the transfer paid: what it paid and
        // what is owed said under it.
        assert!(
            html.contains(
                "<p>Le virement verse 1\u{202f}500\u{a0}XOF aux bénéficiaires payés ; \
                 1\u{202f}500\u{a0}XOF sont à récupérer auprès de ceux qui doivent.</p>"
            ),
            "{html}"
        );
        // The period's statement as CSV: the recovery's row has the
        // cancelled claim's date and member, and no line (it is no line of
        // a claim), where it had line 0.
        let r = statement_csv(
            State(console(b.clone(), 5_000)),
            manager(),
            Path(("CNSS".into(), "MUT-R".into(), second)),
        )
        .await;
        let (body, _) = frames(r).await;
        let csv = String::from_utf8(body.concat()).unwrap();
        let row: Vec<&str> = csv
            .lines()
            .find(|l| l.contains("indu (période 1)"))
            .unwrap_or_else(|| panic!("a recovery's row: {csv}"))
            .split(';')
            .collect();
        // The cancelled claim's date of care and member (whose care is
        // recovered), and no line: it is no line of a claim.
        assert_eq!(
            (row[4], row[6], row[7], row[8]),
            ("\"C-0\"", "\"10/03/2026\"", "\"R-1\"", ""),
            "{row:?}"
        );
        // Only its M, taken back: no B, S or P that would not add up.
        assert_eq!(row[EXPORT_AMOUNTS..], ["", "", "-1500", "", ""], "{row:?}");
        // Then the claims' total, the recoveries and the net due, and the
        // closed period's count.
        let last: Vec<&str> = csv.lines().rev().take(4).collect();
        assert!(last[3].starts_with("\"Total des demandes\";"), "{csv}");
        assert!(
            last[2].starts_with("\"Indus\";") && last[2].ends_with(";;;-1500;;"),
            "{csv}"
        );
        assert!(
            last[1].starts_with("\"Net dû\";") && last[1].ends_with(";;;0;;"),
            "{csv}"
        );
        assert!(
            last[0].starts_with(
                "\"Fin du bordereau : 1 ligne de 1 demande (la période compte 1 demande).\";"
            ),
            "{csv}"
        );
        // The workbook the same, in order: its totals were dropped when
        // the count's row was written before them.
        let (_, rows) = exported(&console(b.clone(), 5_000), &manager(), second).await;
        let first: Vec<String> = rows
            .iter()
            .rev()
            .take(4)
            .map(|r| match &r[0] {
                passerelle_files::xlsx::Cell::Text(t) => t.clone(),
                c => format!("{c:?}"),
            })
            .collect();
        assert_eq!(
            first,
            [
                "Fin du bordereau : 1 ligne de 1 demande (la période compte 1 demande).",
                "Net dû",
                "Indus",
                "Total des demandes"
            ],
            "{rows:?}"
        );
        // Its CSV: the recovery's row, then the totals row, negative and
        // said to be owed. A payee's part takes one of the exports'
        // places: refused while the person holds both of theirs.
        let part = || {
            Path((
                "CNSS".to_string(),
                "MUT-R".to_string(),
                second,
                "provider".to_string(),
                "P-000.csv".to_string(),
            ))
        };
        let c = console(b.clone(), 5_000);
        let held = (c.exports.take("ama"), c.exports.take("ama"));
        let r = remittance::file_of(State(c.clone()), manager(), part()).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        let r = remittance::file_of(State(c.clone()), manager(), part()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(c.exports.by_person.lock().unwrap().is_empty(), "given back");
        let (body, cut) = frames(r).await;
        assert_eq!(cut, None);
        let csv = String::from_utf8(body.concat()).unwrap();
        assert!(
            csv.ends_with(
                ";\"C-0\";\"INV-0\";\"10/03/2026\";;\"indu (période 1)\";-1500;\r\n\"Total à récupérer (rien n'est versé)\";;;;;;;-1500;\r\n"
            ),
            "{csv}"
        );

        // P-101's claim cancelled in turn: the third period holds its
        // recovery alone, a settlement that pays no one, its net due
        // negative.
        b.cancel("CNSS", "C-101", "facturée deux fois")
            .await
            .unwrap();
        let third = close_and_settle(&b, "VIR-3").await;
        // Its statement page: the recoveries negative beside M and the
        // net due, as its exports' rows add up (M + indus = net due).
        let r = statement(
            State(console(b.clone(), 5_000)),
            manager(),
            Path(("CNSS".into(), "MUT-R".into(), third)),
            Query(PageQuery {
                page: String::new(),
            }),
        )
        .await;
        let (body, _) = frames(r).await;
        let html = String::from_utf8(body.concat()).unwrap();
        assert!(
            html.contains("<dt>Indus</dt><dd>-1\u{202f}500\u{a0}XOF</dd><dt>Net dû</dt><dd>-1\u{202f}500\u{a0}XOF</dd>"),
            "{html}"
        );
        // Settled, it is for the board to sign.
        assert!(
            html.contains("<p class=\"signature\">Visa du conseil d&#39;administration</p>"),
            "{html}"
        );
        // Its recovery names whose care it was: C-101's date of care.
        assert!(
            html.contains("<td class=\"\">11/03/2026</td><td class=\"\">R-1</td>"),
            "{html}"
        );
        let html = remittance_page(&b, third, "").await;
        assert!(
            html.contains("<td class=\"num\">-1\u{202f}500\u{a0}XOF</td></tr></tfoot>"),
            "{html}"
        );
        assert!(
            html.contains(
                "<p>Ce règlement ne verse rien : 1\u{202f}500\u{a0}XOF sont à récupérer auprès de ceux qui doivent.</p>"
            ),
            "{html}"
        );
        assert!(!html.contains("Le virement verse"), "{html}");
    }

    fn open_period() -> Path<(String, String, u32)> {
        Path(("CNSS".into(), "MUT-R".into(), 0))
    }

    /// An answer's body as text, whole.
    async fn html_of(r: Response) -> String {
        let (body, cut) = frames(r).await;
        assert_eq!(cut, None);
        String::from_utf8(body.concat()).unwrap()
    }

    /// The frames of an answer's body, or the error that cut it short.
    /// A body that ended is polled once more, as the console's gzip layer
    /// does: it stays ended (a stream that panics when polled past its end
    /// broke every gzipped download).
    async fn frames(r: Response) -> (Vec<axum::body::Bytes>, Option<String>) {
        let mut body = r.into_body();
        let mut out = Vec::new();
        while let Some(f) = body.frame().await {
            match f {
                Ok(f) => out.push(f.into_data().expect("data frames only")),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        assert!(body.frame().await.is_none(), "ended, and stays so");
        (out, None)
    }

    #[tokio::test]
    async fn a_statement_is_exported_a_page_at_a_time_as_csv_and_as_a_workbook() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        five_claims(&b).await;

        // In pages of two lines: the header with the first page, then each
        // page as it is read (each after the first as the person is then).
        let ama = signed_in_manager(&b, "ama").await;
        let r = statement_csv(State(console(b.clone(), 2)), ama.clone(), open_period()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_DISPOSITION],
            "attachment; filename=\"bordereau-provisoire-CNSS-MUT-R-1.csv\"",
            "the open period's statement is provisional"
        );
        let (paged, cut) = frames(r).await;
        assert_eq!(cut, None);
        assert_eq!(
            paged.len(),
            4,
            "five lines in pages of two, then the totals"
        );
        let paged: Vec<u8> = paged.concat();
        // The same file as in one page.
        let r = statement_csv(State(console(b.clone(), 5_000)), manager(), open_period()).await;
        let (whole, _) = frames(r).await;
        assert_eq!(whole.len(), 2, "one page, then the totals");
        assert_eq!(paged, whole.concat());
        let text = String::from_utf8(paged).unwrap();
        let rows: Vec<&str> = text
            .trim_start_matches('\u{feff}')
            .split_terminator("\r\n")
            .collect();
        assert_eq!(rows.len(), 7, "the header, five lines, the totals: {text}");
        assert!(rows[0].starts_with("\"Régime\";"), "{}", rows[0]);
        for i in 0..5 {
            let n = rows
                .iter()
                .filter(|r| r.contains(&format!("\"C-{i}\"")))
                .count();
            assert_eq!(n, 1, "C-{i} once: {text}");
        }
        // The totals row, written after the last page, adds up the lines
        // of every page.
        let amounts = |r: &str| -> Vec<i64> {
            r.split(';')
                .skip(EXPORT_AMOUNTS)
                .take(4)
                .map(|a| a.parse::<i64>().unwrap())
                .collect()
        };
        let mut sums = vec![0; 4];
        for r in &rows[1..6] {
            let a = amounts(r);
            assert_eq!(a[1] + a[2] + a[3], a[0], "S + M + P = B: {r}");
            sums.iter_mut().zip(a).for_each(|(s, v)| *s += v);
        }
        assert!(rows[6].starts_with("\"Total\";"), "{}", rows[6]);
        assert_eq!(amounts(rows[6]), sums, "{text}");
        let m = sums[2];

        // The workbook: the header, the five lines, the totals row.
        let r = statement_xlsx(State(console(b.clone(), 2)), ama, open_period()).await;
        assert_eq!(r.status(), StatusCode::OK);
        let (chunks, cut) = frames(r).await;
        assert_eq!(cut, None);
        let rows = passerelle_files::xlsx::first_sheet(&chunks.concat())
            .unwrap()
            .rows;
        assert_eq!(rows.len(), 7);
        let last = rows.last().unwrap();
        assert!(matches!(&last[0], passerelle_files::xlsx::Cell::Text(t) if t == "Total"));
        assert!(
            matches!(&last[12], passerelle_files::xlsx::Cell::Number(n) if *n == m.to_string()),
            "{last:?} against {m}"
        );
    }

    /// A statement's CSV and workbook, as `ctx` downloads them from `c`.
    async fn exported(
        c: &Arc<Console>,
        ctx: &Ctx,
        number: u32,
    ) -> (String, Vec<Vec<passerelle_files::xlsx::Cell>>) {
        let path = || Path(("CNSS".to_string(), "MUT-R".to_string(), number));
        let csv = html_of(statement_csv(State(c.clone()), ctx.clone(), path()).await).await;
        let r = statement_xlsx(State(c.clone()), ctx.clone(), path()).await;
        assert_eq!(r.status(), StatusCode::OK);
        let (chunks, cut) = frames(r).await;
        assert_eq!(cut, None);
        let rows = passerelle_files::xlsx::first_sheet(&chunks.concat())
            .unwrap()
            .rows;
        (csv, rows)
    }

    /// A CSV export's rows (the byte order mark and the header dropped),
    /// each as its cells.
    fn csv_cells(csv: &str) -> Vec<Vec<String>> {
        csv.trim_start_matches('\u{feff}')
            .split_terminator("\r\n")
            .skip(1)
            .map(|r| r.split(';').map(String::from).collect())
            .collect()
    }

    /// A closed period's line whose claim was cancelled after the close
    /// says so in the exports people pay from, as the statement's page
    /// does, in the person's language: it said nothing there.
    #[tokio::test]
    async fn an_export_says_a_line_cancelled_after_the_close() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        five_claims(&b).await;
        let first = close_and_settle(&b, "VIR-1").await;
        b.cancel("CNSS", "C-0", "facturée deux fois").await.unwrap();
        let c = console(b.clone(), 2);
        let ama = signed_in_manager(&b, "ama").await;
        let (csv, _) = exported(&c, &ama, first).await;
        let heading = csv.trim_start_matches('\u{feff}').lines().next().unwrap();
        assert!(heading.ends_with(";\"État\""), "{heading}");
        let lines: Vec<Vec<String>> = csv_cells(&csv)
            .into_iter()
            .filter(|r| r[4].starts_with("\"C-"))
            .collect();
        assert_eq!(lines.len(), 5, "{csv}");
        for r in &lines {
            let said = if r[4] == "\"C-0\"" {
                "\"Annulée après la clôture\""
            } else {
                ""
            };
            assert_eq!(r[EXPORT_STATE], said, "{r:?}");
        }
        // The workbook, in English for a person reading English.
        let en = Ctx {
            lang: Lang::En,
            ..ama.clone()
        };
        let (_, rows) = exported(&c, &en, first).await;
        use passerelle_files::xlsx::Cell;
        let text = |row: &[Cell], col: usize| match row.get(col) {
            Some(Cell::Text(t)) => t.clone(),
            _ => String::new(),
        };
        assert_eq!(text(&rows[0], EXPORT_STATE), "State");
        let states: Vec<(String, String)> = rows[1..6]
            .iter()
            .map(|r| (text(r, 4), text(r, EXPORT_STATE)))
            .collect();
        assert_eq!(states.len(), 5);
        for (claim, state) in states {
            let said = if claim == "C-0" {
                "Cancelled after the close"
            } else {
                ""
            };
            assert_eq!(state, said, "{claim}");
        }
    }

    /// A closed period's exports end with the lines and claims they hold
    /// beside the claims the period holds, in the person's language, so
    /// that a file cut short is told from a whole one; the open period's,
    /// whose claims change as it is read, do not.
    #[tokio::test]
    async fn a_closed_periods_export_ends_with_its_count_of_claims() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        five_claims(&b).await;
        let c = console(b.clone(), 2);
        let ama = signed_in_manager(&b, "ama").await;
        let (csv, rows) = exported(&c, &ama, 0).await;
        assert!(!csv.contains("Fin du bordereau"), "{csv}");
        assert_eq!(rows.len(), 7, "the header, five lines, the totals");
        let first = close_and_settle(&b, "VIR-1").await;
        let (csv, _) = exported(&c, &ama, first).await;
        let rows = csv_cells(&csv);
        assert_eq!(rows.len(), 7, "five lines, the totals, the count: {csv}");
        assert!(rows[5][0] == "\"Total\"", "{csv}");
        assert_eq!(
            rows[6][0],
            "\"Fin du bordereau : 5 lignes de 5 demandes (la période compte 5 demandes).\""
        );
        assert_eq!(rows[6].len(), EXPORT_COLUMNS.len());
        let en = Ctx {
            lang: Lang::En,
            ..ama.clone()
        };
        let (_, rows) = exported(&c, &en, first).await;
        assert_eq!(
            rows.len(),
            8,
            "the header, five lines, the totals, the count"
        );
        assert!(
            matches!(&rows[7][0], passerelle_files::xlsx::Cell::Text(t)
                if t == "End of the statement: 5 lines of 5 claims (the period holds 5 claims)."),
            "{:?}",
            rows[7]
        );
    }

    /// The recoveries of a statement of several pages are written after
    /// the last page's lines, before the totals, where they came after the
    /// first page's, in the middle of the file.
    #[tokio::test]
    async fn recoveries_come_after_the_last_pages_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        five_claims(&b).await;
        close_and_settle(&b, "VIR-1").await;
        b.cancel("CNSS", "C-0", "facturée deux fois").await.unwrap();
        for i in 5..8u32 {
            b.coordinate(consultation(i, "CHU", &format!("2026-03-0{}", i - 4)))
                .await
                .unwrap();
        }
        // Pages of two lines: three lines are two pages.
        let c = console(b.clone(), 2);
        let ama = signed_in_manager(&b, "ama").await;
        let (csv, rows) = exported(&c, &ama, 0).await;
        let claims: Vec<String> = csv_cells(&csv).iter().map(|r| r[4].clone()).collect();
        assert_eq!(
            claims,
            ["\"C-5\"", "\"C-6\"", "\"C-7\"", "\"C-0\"", "", "", ""],
            "the lines, the recovery, the totals: {csv}"
        );
        assert!(csv.contains("\"indu (période 1)\""), "{csv}");
        use passerelle_files::xlsx::Cell;
        let claims: Vec<String> = rows[1..]
            .iter()
            .map(|r| match r.get(4) {
                Some(Cell::Text(t)) => t.clone(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(claims, ["C-5", "C-6", "C-7", "C-0", "", "", ""]);
    }

    /// An open period closed while its export is read: the file would
    /// have mixed the provisional statement's first page with the closed
    /// statement's next ones (and the workbook been named as the closed
    /// statement). The CSV ends with a row that says so, in the person's
    /// language, then fails; the workbook is an error page; its name stays
    /// the first page's.
    #[tokio::test]
    async fn an_open_period_closed_during_its_export_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        five_claims(&b).await;
        let c = console(b.clone(), 2);
        let ama = signed_in_manager(&b, "ama").await;
        let close = async || {
            b.store()
                .close_period(
                    "CNSS",
                    "MUT-R",
                    &CloseUpTo::everything(),
                    crate::audit::now_ms(),
                    None,
                )
                .await
                .unwrap()
        };

        let r = statement_csv(State(c.clone()), ama.clone(), open_period()).await;
        assert_eq!(
            r.headers()[header::CONTENT_DISPOSITION],
            "attachment; filename=\"bordereau-provisoire-CNSS-MUT-R-1.csv\""
        );
        let mut body = r.into_body();
        let head = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(String::from_utf8_lossy(&head).matches("\"C-").count(), 2);
        assert_eq!(close().await.number, 1);
        let said = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&said),
            format!(
                "\"La période 1 a été clôturée pendant la lecture de son bordereau : ses lignes auraient mêlé \
                 le bordereau provisoire et le bordereau clôturé. Demandez à nouveau le bordereau de la période 1.\"{}\r\n",
                ";".repeat(EXPORT_COLUMNS.len() - 1)
            )
        );
        // Then the file ends, without totals or a count (a browser drops
        // a download that fails, and gzip held the row behind the error).
        assert!(body.frame().await.is_none(), "the body ends there");
        drop(body);

        // The workbook's pages: the period's state read at the first page
        // is the file's, and the next page, closed, is refused.
        for i in 5..8u32 {
            b.coordinate(consultation(i, "CHU", &format!("2026-03-0{}", i - 4)))
                .await
                .unwrap();
        }
        let kofi = signed_in_manager(&b, "kofi").await;
        let (mut pages, first) = ExportPages::open(&c, &kofi, "CNSS", "MUT-R", 0)
            .await
            .map_err(|_| "the first page")
            .unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(close().await.number, 2);
        let next = pages.next().await;
        assert!(
            matches!(next, Some(Err(ExportStop::PeriodChanged(2)))),
            "{:?}",
            next.map(|r| r.map(|lines| lines.len()))
        );
        assert!(pages.next().await.is_none(), "nothing read after");
        assert_eq!(
            export_name(&pages, "CNSS", "MUT-R", "xlsx"),
            "bordereau-provisoire-CNSS-MUT-R-2.xlsx"
        );
        // What the workbook answers instead, in the person's language.
        let en = Ctx {
            lang: Lang::En,
            ..kofi
        };
        let r = ExportStop::PeriodChanged(1).reply(&en).into_response();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let page = html_of(r).await.replace("&#39;", "'");
        assert!(
            page.contains("Period 1 was closed while its statement was being read"),
            "{page}"
        );
    }

    /// The console's CSV writes an identifier made of digits as the
    /// formula of its text (="000451"), which Excel keeps as written, where
    /// it was quoted and Excel dropped its leading zeros (and rounded one
    /// of more than 15 digits).
    #[test]
    fn a_csv_identifier_of_digits_keeps_them_in_excel() {
        let line = ExportLine {
            text: [
                "CNSS",
                "MUT-R",
                "1",
                "prestataire CHU",
                "2026110400012345",
                "000451",
                "00012",
                "=cmd",
            ]
            .map(String::from),
            date: "2026-03-12".into(),
            line: Some(1),
            figures: Figures::Shares([5_000, 3_500, 1_500, 0]),
            cancelled_since: false,
        };
        let csv = csv_rows(Lang::Fr, "XOF", &[line], &mut ExportTotals::default());
        let row: Vec<&str> = csv.trim_end().split(';').collect();
        assert_eq!(
            (row[4], row[5], row[7], row[9]),
            (
                "\"=\"\"2026110400012345\"\"\"",
                "\"=\"\"000451\"\"\"",
                "\"=\"\"00012\"\"\"",
                "\"'=cmd\""
            ),
            "{csv}"
        );
        // The date stays a date Excel reads as one.
        assert_eq!(row[6], "\"12/03/2026\"");
    }

    #[tokio::test]
    async fn a_page_that_cannot_be_read_cuts_the_download_short() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        five_claims(&b).await;
        let ctx = signed_in_manager(&b, "ama").await;
        let key = ctx.person.caller().display();
        let r = statement_csv(State(console(b.clone(), 2)), ctx, open_period()).await;
        assert_eq!(r.status(), StatusCode::OK);
        // Every place of the person's is taken: the next page is refused.
        let mut held = Vec::new();
        while let Ok(p) = b.admit(&key, Pool::Calls) {
            held.push(p);
        }
        assert!(!held.is_empty());
        let (sent, cut) = frames(r).await;
        assert_eq!(sent.len(), 1, "the header and the first page");
        assert!(
            cut.is_some(),
            "the body ends in an error, not as a whole file"
        );

        drop(held);
    }

    /// A claim's page totals each column, R (B - S on each line) too; a
    /// settled period's statement names its payment.
    #[tokio::test]
    async fn a_claims_totals_have_its_remainder_and_a_settled_statement_its_reference() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let r = b
            .coordinate(consultation(0, "P-000", "2026-03-10"))
            .await
            .unwrap();
        let shares = r.shares.clone().unwrap_or_default();
        assert!(!shares.is_empty(), "{r:?}");
        let c = console(b.clone(), 5_000);
        let page = html_of(
            claim(
                State(c.clone()),
                manager(),
                Path(("CNSS".into(), "C-0".into())),
                Query(Done::default()),
            )
            .await,
        )
        .await;
        let foot = page
            .split("<tfoot>")
            .nth(1)
            .and_then(|f| f.split("</tfoot>").next())
            .unwrap_or_else(|| panic!("a totals row: {page}"));
        let cells: Vec<&str> = foot
            .split("<td class=\"num\">")
            .skip(1)
            .map(|c| c.split("</td>").next().unwrap())
            .collect();
        // B, S, R, M, P: R = B - S, and M + P = R.
        let n = |s: &str| {
            s.replace(['\u{202f}', '\u{a0}'], "")
                .parse::<i64>()
                .unwrap()
        };
        assert_eq!(cells.len(), 5, "{foot}");
        let [b_, s_, r_, m_, p_] = [0, 1, 2, 3, 4].map(|i| n(cells[i]));
        assert_eq!((r_, m_ + p_), (b_ - s_, b_ - s_), "{foot}");
        assert!(r_ > 0, "{foot}");

        let number = close_and_settle(&b, "VIR-77").await;
        let page = html_of(
            statement(
                State(c.clone()),
                manager(),
                Path(("CNSS".into(), "MUT-R".into(), number)),
                Query(PageQuery::default()),
            )
            .await,
        )
        .await;
        assert!(
            page.contains("<dt>Référence du règlement</dt><dd>VIR-77</dd>"),
            "{page}"
        );
    }

    /// The dashboard's table of open periods says when none holds a
    /// claim, rather than headings over nothing.
    #[tokio::test]
    async fn the_dashboard_says_when_no_open_period_holds_a_claim() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 5_000);
        let page = async || html_of(dashboard(State(c.clone()), manager()).await).await;
        let none = "Aucune demande dans les périodes en cours.";
        let html = page().await;
        assert!(
            html.contains(&format!("<td class=\"empty\" colspan=\"5\">{none}</td>")),
            "{html}"
        );
        five_claims(&b).await;
        let html = page().await;
        assert!(!html.contains(none), "{html}");
        assert!(
            html.contains("<a href=\"/periods/CNSS/MUT-R/0\">CNSS</a>"),
            "{html}"
        );
        // The month closed: its claims left the open period.
        close_and_settle(&b, "VIR-1").await;
        assert!(page().await.contains(none));
        // A claim of it cancelled: the open period holds its indu alone,
        // negative beside M, as the net due it makes.
        b.cancel("CNSS", "C-0", "facturée deux fois").await.unwrap();
        let html = page().await;
        let cells = number_cells(&html, "/periods/CNSS/MUT-R/0");
        assert_eq!(cells.len(), 4, "{cells:?}");
        assert_eq!(cells[1], "0\u{a0}XOF", "{cells:?}");
        assert!(
            cells[2].starts_with('-') && cells[2] == cells[3],
            "{cells:?}"
        );
        assert!(
            html.contains("<th scope=\"col\" class=\"num\">Indus</th>"),
            "{html}"
        );
    }

    /// A product version proposed and waiting for a second person is said
    /// on the products page, where none showed.
    #[tokio::test]
    async fn a_version_waiting_for_approval_is_said_on_the_products_page() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 100);
        let ama = signed_in_manager(&b, "ama").await;
        let v = crate::store::conformance::sample_product("MUT-R", 3, "2026-06-01");
        b.propose_products(&crate::identity::Auth::Caller(ama.person.caller()), vec![v])
            .await
            .unwrap();
        let html =
            html_of(changes::products(State(c.clone()), ama.clone(), Query(Done::default())).await)
                .await;
        assert!(
            html.contains("Version 3 de ESS (à partir du 01/06/2026) proposée par"),
            "{html}"
        );
    }

    /// A close proposed already is said on the periods page, with who
    /// proposed it, where the button offered to propose it again.
    #[tokio::test]
    async fn a_close_waiting_for_approval_is_said_not_offered_again() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 5_000);
        five_claims(&b).await;
        let page = async || html_of(periods(State(c.clone()), manager()).await).await;
        let button = "Proposer la clôture de la période en cours (CNSS – MUT-R)";
        let html = page().await;
        assert!(html.contains(button), "{html}");
        b.propose_close(
            &crate::identity::Auth::Caller(manager().person.caller()),
            "CNSS",
            "MUT-R",
        )
        .await
        .unwrap();
        let html = page().await;
        assert!(!html.contains(button), "{html}");
        assert!(
            html.contains("Clôture de CNSS – MUT-R proposée par"),
            "{html}"
        );
    }

    #[tokio::test]
    async fn the_periods_page_shows_the_open_period_once_one_has_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b.clone(), 5_000);
        let page = async || html_of(periods(State(c.clone()), manager()).await).await;
        let open_row_of = |n: u32| format!("<a href=\"/periods/CNSS/MUT-R/{n}\">en cours</a>");
        // No claim yet: no row for the pair.
        let html = page().await;
        assert!(!html.contains("/periods/CNSS/MUT-R/"), "{html}");
        five_claims(&b).await;
        let html = page().await;
        assert!(html.contains(&open_row_of(1)), "{html}");
        // Closed and settled: period 1's row, and the open period 2,
        // empty, still shown as the one now receiving claims.
        close_and_settle(&b, "VIR-1").await;
        let html = page().await;
        assert!(html.contains("VIR-1"), "{html}");
        assert!(html.contains(&open_row_of(2)), "{html}");
        // A claim of period 1 cancelled: the open period's indus, negative
        // beside its M (none) and the net due they make.
        b.cancel("CNSS", "C-0", "facturée deux fois").await.unwrap();
        let html = page().await;
        let cells = number_cells(&html, &open_row_of(2));
        let negative: Vec<&str> = cells.into_iter().filter(|c| c.starts_with('-')).collect();
        assert_eq!(negative.len(), 2, "the indus and the net due: {negative:?}");
        assert_eq!(negative[0], negative[1]);
    }

    /// The number cells of the table row of `html` that holds `needle`.
    fn number_cells<'a>(html: &'a str, needle: &str) -> Vec<&'a str> {
        let row = html
            .split("<tr>")
            .find(|r| r.contains(needle))
            .unwrap_or_else(|| panic!("no row with {needle}: {html}"));
        row.split("<td class=\"num\">")
            .skip(1)
            .map(|c| c.split("</td>").next().unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn a_download_stops_at_the_next_page_once_the_session_has_ended() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        five_claims(&b).await;
        let c = console(b.clone(), 2);

        // The CSV: the header and first page sent, then an operator
        // revokes the person's sessions; the next page is not read, and
        // the body ends in an error, not as a whole file.
        let ama = signed_in_manager(&b, "ama").await;
        let r = statement_csv(State(c.clone()), ama.clone(), open_period()).await;
        assert_eq!(r.status(), StatusCode::OK);
        let mut body = r.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(String::from_utf8_lossy(&first).contains("\"C-"));
        assert_eq!(b.revoke_sessions("ama", "operator").await.unwrap(), 1);
        let next = body.frame().await.expect("the body ends in an error");
        assert!(next.is_err(), "no page after the session ended");
        drop(body);
        assert_eq!(c.exports.slots.available_permits(), MAX_EXPORTS);

        // The workbook, whose pages are all read before its answer: a
        // current session gets it; one revoked once the request is in
        // (its first page read as the person was) gets no file but the
        // way back to the sign-in page, and frees its place.
        let kofi = signed_in_manager(&b, "kofi").await;
        let r = statement_xlsx(State(c.clone()), kofi.clone(), open_period()).await;
        assert_eq!(r.status(), StatusCode::OK, "a current session gets it");
        let (chunks, cut) = frames(r).await;
        assert_eq!(cut, None);
        assert!(passerelle_files::xlsx::first_sheet(&chunks.concat()).is_ok());
        assert_eq!(b.revoke_sessions("kofi", "operator").await.unwrap(), 1);
        let r = statement_xlsx(State(c.clone()), kofi, open_period()).await;
        assert!(r.status().is_redirection(), "{}", r.status());
        assert_eq!(r.headers()[header::LOCATION], "/sign-in?expired=1");
        // Its writer gives the place back once it sees the pages end.
        drop(
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                c.exports
                    .slots
                    .clone()
                    .acquire_many_owned(MAX_EXPORTS as u32),
            )
            .await
            .expect("its place given back")
            .unwrap(),
        );
        // An account disabled: at its first page, the person was still
        // signed in; at the second, no longer.
        let yao = signed_in_manager(&b, "yao").await;
        let mut pages = ExportPages::open(&c, &yao, "CNSS", "MUT-R", 0)
            .await
            .map_err(|_| "the first page")
            .unwrap()
            .0;
        b.change_user("yao", None, false, Some(true), "operator")
            .await
            .unwrap();
        let e = pages.next().await;
        assert!(
            matches!(e, Some(Err(ExportStop::SessionEnded))),
            "the second page read after the account was disabled: {:?}",
            e.map(|r| r.map(|lines| lines.len()))
        );
        assert!(pages.next().await.is_none(), "nothing read after");

        // A session still current carries on, as the person is now.
        let afi = signed_in_manager(&b, "afi").await;
        let (mut pages, first) = ExportPages::open(&c, &afi, "CNSS", "MUT-R", 0)
            .await
            .map_err(|_| "the first page")
            .unwrap();
        let mut lines = first.len();
        while let Some(p) = pages.next().await {
            lines += p.unwrap().len();
        }
        assert_eq!(lines, 5);
    }

    #[tokio::test]
    async fn an_export_refused_at_its_first_page_is_an_error_page_and_frees_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        five_claims(&b).await;
        let c = console(b, 2);
        let none = || Path(("CNSS".to_string(), "MUT-R".to_string(), 99));
        let r = statement_csv(State(c.clone()), manager(), none()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = statement_xlsx(State(c.clone()), manager(), none()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let (page, _) = frames(r).await;
        assert!(String::from_utf8(page.concat()).unwrap().contains("<html"));
        assert_eq!(c.exports.slots.available_permits(), MAX_EXPORTS);
        assert!(c.exports.by_person.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn exports_past_the_bounds_are_told_to_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        let c = console(b, 2);
        // One person: two at once.
        let (one, two) = (c.exports.take("ama"), c.exports.take("ama"));
        assert!(one.is_some() && two.is_some());
        let r = statement_csv(State(c.clone()), manager(), open_period()).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "60");
        let (page, _) = frames(r).await;
        let page = String::from_utf8(page.concat()).unwrap();
        assert!(page.contains("Trop d&#39;exports de bordereaux"), "{page}");
        // Another person is not held up by them; given back, they count
        // again.
        assert!(c.exports.take("kofi").is_some());
        drop((one, two));
        assert!(c.exports.take("ama").is_some());
        // The process: MAX_EXPORTS at once, whoever asks.
        let _all = c
            .exports
            .slots
            .clone()
            .acquire_many_owned(MAX_EXPORTS as u32)
            .await
            .unwrap();
        let r = statement_xlsx(State(c.clone()), manager_named("kofi"), open_period()).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(c.exports.by_person.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_dropped_download_gives_its_place_back() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        five_claims(&b).await;
        let ama = signed_in_manager(&b, "ama").await;
        let c = console(b, 2);
        let all = |c: &Arc<Console>| {
            let slots = c.exports.slots.clone();
            async move {
                tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    slots.acquire_many_owned(MAX_EXPORTS as u32),
                )
                .await
                .expect("every place given back")
                .unwrap()
            }
        };
        let r = statement_csv(State(c.clone()), ama.clone(), open_period()).await;
        assert_eq!(r.status(), StatusCode::OK);
        drop(r);
        drop(all(&c).await);
        // The workbook's writer gives it back once it sees the download
        // dropped.
        let r = statement_xlsx(State(c.clone()), ama, open_period()).await;
        assert_eq!(r.status(), StatusCode::OK);
        drop(r);
        drop(all(&c).await);
        assert!(c.exports.by_person.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_workbook_of_more_lines_than_a_sheet_holds_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = two_mutuelles(dir.path()).await;
        five_claims(&b).await;
        let c = sized_console(b, 2, 3);
        let r = statement_xlsx(State(c), manager(), open_period()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let (page, _) = frames(r).await;
        let page = String::from_utf8(page.concat()).unwrap();
        assert!(
            page.contains("plus de 3 lignes") && page.contains("exportez-le en CSV"),
            "{page}"
        );
    }

    /// An export's amounts are in the currency's units, as the person's
    /// spreadsheet reads them, and its headings name the currency: a
    /// currency with decimals is never shown a hundred times too large.
    #[test]
    fn export_amounts_are_in_the_currencys_units() {
        assert_eq!(amount_cell(Lang::Fr, 12_500, "XOF"), "12500");
        assert_eq!(amount_cell(Lang::Fr, -1_600, "XOF"), "-1600");
        assert_eq!(amount_cell(Lang::Fr, 12_550, "EUR"), "125,50");
        assert_eq!(amount_cell(Lang::En, -5, "EUR"), "-0.05");
        assert_eq!(amount_cell(Lang::En, 1_234, "KWD"), "1.234");
        assert_eq!(
            amount_heading(Lang::Fr, "col-mutuelle-share", "XOF"),
            "Mutuelle (M) en XOF"
        );
        assert_eq!(
            amount_heading(Lang::En, "col-billed", "EUR"),
            "Billed (B) in EUR"
        );
        let line = ExportLine {
            text: ["CNSS", "MUT-R", "1", "P", "C", "I", "R-1", "CONS"].map(String::from),
            date: "2026-03-12".into(),
            line: Some(1),
            figures: Figures::Shares([12_550, 10_000, 2_000, 550]),
            cancelled_since: false,
        };
        let mut sheet = StatementSheet::new(Lang::En, "EUR", 2).unwrap();
        assert!(sheet.lines(&[line]).is_ok());
        sheet.totals(Lang::En, None).unwrap();
        let rows = passerelle_files::xlsx::first_sheet(&sheet.wb.save_to_buffer().unwrap())
            .unwrap()
            .rows;
        assert!(
            matches!(&rows[0][EXPORT_AMOUNTS], passerelle_files::xlsx::Cell::Text(t) if t == "Billed (B) in EUR"),
            "{:?}",
            rows[0]
        );
        for row in [1, 2] {
            assert!(
                matches!(&rows[row][EXPORT_AMOUNTS], passerelle_files::xlsx::Cell::Number(n) if n == "125.5"),
                "{:?}",
                rows[row]
            );
        }
    }

    /// A recovery's row has the mutuelle's share it takes back and no B,
    /// S or P (empty cells, not zeros: no row reads as a line whose shares
    /// do not add up); the totals say the claims' total, balanced, then
    /// the recoveries and the net due, in the CSV and the workbook alike.
    #[test]
    fn a_recovery_has_its_share_alone_and_the_totals_say_the_net_due() {
        let lines = [
            ExportLine {
                text: ["S", "M", "2", "P", "C-1", "I", "R", "A"].map(String::from),
                date: "2026-03-12".into(),
                line: Some(1),
                figures: Figures::Shares([12_550, 10_000, 2_000, 550]),
                cancelled_since: false,
            },
            ExportLine {
                text: ["S", "M", "2", "P", "C-0", "I", "", "indu"].map(String::from),
                date: String::new(),
                line: None,
                figures: Figures::Recovery(-4_500),
                cancelled_since: false,
            },
        ];
        let mut totals = ExportTotals::default();
        let csv = csv_rows(Lang::Fr, "EUR", &lines, &mut totals)
            + &csv_totals(Lang::Fr, "EUR", &totals, None);
        let rows: Vec<Vec<&str>> = csv
            .split_terminator("\r\n")
            .map(|r| r.split(';').collect())
            .collect();
        fn amounts<'a>(r: &[&'a str]) -> Vec<&'a str> {
            r[EXPORT_AMOUNTS..EXPORT_AMOUNTS + 4].to_vec()
        }
        assert_eq!(rows.len(), 5, "{csv}");
        assert_eq!(amounts(&rows[0]), ["125,50", "100,00", "20,00", "5,50"]);
        assert_eq!(amounts(&rows[1]), ["", "", "-45,00", ""]);
        assert_eq!(rows[2][0], "\"Total des demandes\"");
        assert_eq!(amounts(&rows[2]), ["125,50", "100,00", "20,00", "5,50"]);
        assert_eq!(
            (rows[3][0], amounts(&rows[3])),
            ("\"Indus\"", vec!["", "", "-45,00", ""])
        );
        assert_eq!(
            (rows[4][0], amounts(&rows[4])),
            ("\"Net dû\"", vec!["", "", "-25,00", ""])
        );
        assert!(
            rows.iter().all(|r| r.len() == EXPORT_COLUMNS.len()),
            "{csv}"
        );
        // Nothing recovered: one totals row.
        let mut one = ExportTotals::default();
        one.add(&lines[0]);
        assert_eq!(
            one.rows(Lang::En),
            [("Total".to_string(), [12_550, 10_000, 2_000, 550].map(Some))]
        );

        let mut sheet = StatementSheet::new(Lang::Fr, "EUR", 5).unwrap();
        assert!(sheet.lines(&lines).is_ok());
        sheet.totals(Lang::Fr, None).unwrap();
        let rows = passerelle_files::xlsx::first_sheet(&sheet.wb.save_to_buffer().unwrap())
            .unwrap()
            .rows;
        use passerelle_files::xlsx::Cell;
        let cell = |row: usize, k: usize| {
            rows[row]
                .get(EXPORT_AMOUNTS + k)
                .cloned()
                .unwrap_or(Cell::Empty)
        };
        let number = |row: usize, k: usize| match cell(row, k) {
            Cell::Number(n) => n,
            other => panic!("row {row}, amount {k}: {other:?}"),
        };
        assert_eq!(rows.len(), 6, "{rows:?}");
        assert!(
            [0, 1, 3].iter().all(|&k| matches!(cell(2, k), Cell::Empty)),
            "{:?}",
            rows[2]
        );
        assert_eq!(number(2, 2), "-45");
        assert!(matches!(&rows[3][0], Cell::Text(t) if t == "Total des demandes"));
        assert_eq!(
            (number(3, 0), number(3, 2)),
            ("125.5".to_string(), "20".to_string())
        );
        assert!(matches!(&rows[4][0], Cell::Text(t) if t == "Indus"));
        assert_eq!(number(4, 2), "-45");
        assert!(matches!(cell(4, 0), Cell::Empty));
        assert!(matches!(&rows[5][0], Cell::Text(t) if t == "Net dû"));
        assert_eq!(number(5, 2), "-25");
        assert!(matches!(cell(5, 0), Cell::Empty));
    }

    #[test]
    fn a_workbook_holds_no_more_lines_than_a_sheet_has_rows() {
        let line = |i: u32| ExportLine {
            text: [
                "CNSS",
                "MUT-R",
                "1",
                "prestataire CHU",
                "C",
                "I",
                "R-1",
                "CONS",
            ]
            .map(String::from),
            date: "2026-03-12".into(),
            line: Some(i),
            figures: Figures::Shares([5_000, 3_500, 1_500, 0]),
            cancelled_since: false,
        };
        // Two lines: four rows with the header and the totals.
        let mut sheet = StatementSheet::new(Lang::Fr, "XOF", 2).unwrap();
        assert!(sheet.lines(&[line(1), line(2)]).is_ok());
        assert!(matches!(
            sheet.lines(&[line(3)]),
            Err(SheetStop::TooManyLines)
        ));
        sheet.totals(Lang::Fr, None).unwrap();
        let rows = passerelle_files::xlsx::first_sheet(&sheet.wb.save_to_buffer().unwrap())
            .unwrap()
            .rows;
        assert_eq!(rows.len(), 4);
        assert!(
            matches!(&rows[3][11], passerelle_files::xlsx::Cell::Number(n) if n == "7000"),
            "{:?}",
            rows[3]
        );
    }

    #[test]
    fn html_and_urls_are_escaped() {
        assert_eq!(
            esc("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(url("MUT A/é"), "MUT%20A%2F%C3%A9");
    }
}
