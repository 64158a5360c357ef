//! The console: a web interface in French and English for mutuelle clerks
//! and managers, scheme staff and operators (docs/console.md).
//!
//! - Its own listener (`[console] listen`), HTTPS through the broker's TLS
//!   acceptor with the same certificate and no client certificate
//!   (`TlsServer::incoming_web`); connections through the shared accept loop.
//! - Server-rendered pages (askama templates, checked at compile time,
//!   under `broker/templates/console`), one stylesheet, no JavaScript:
//!   every page works in any browser, on a phone, over a slow link.
//! - People sign in (`service::users`): a session cookie, `__Host-` prefixed,
//!   Secure, HttpOnly, SameSite=Lax; every form carries a CSRF token masked
//!   anew in each response (`csrf`).
//! - Every page that reads or changes data calls the broker's own gRPC
//!   service implementations in-process ([`Console::call`]) as the person's
//!   identity (`Person::caller`): the same authorization, admission and
//!   audit rows as a call from a scheme's system, no second path to the
//!   store.

mod csrf;
pub mod i18n;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::api::{
    admin::AdminApi, product::ProductApi, roster::RosterApi, settlement::SettlementApi,
};
use crate::identity::Auth;
use crate::net::{ConnLimits, Listener, Refusals};
use crate::service::Broker;
use crate::service::users::Person;
use crate::tls::TlsServer;
use i18n::Lang;

/// Connections from one address at once (a browser opens up to six).
pub const MAX_CONNECTIONS_PER_PEER: usize = 16;
/// A connection's age: past it, its next answer ends it (a browser opens
/// another); one idle for as long again is closed, and a download still
/// running then has `ops::CLOSING_GRACE` to finish (`ops::serve`).
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(300);
/// The largest request body: a form (the roster upload will have its own).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

const SESSION_COOKIE: &str = "__Host-passerelle-session";
const PRE_COOKIE: &str = "__Host-passerelle-pre";
const LANG_COOKIE: &str = "passerelle-lang";

/// What every handler shares.
pub struct Console {
    broker: Arc<Broker>,
    settlement: SettlementApi,
    product: ProductApi,
    roster: RosterApi,
    admin: AdminApi,
    /// The broker's TLS files, for the certificates page.
    tls: Option<Arc<TlsServer>>,
    /// Statement exports under way, and their sizes (`pages::Exports`).
    exports: Arc<pages::Exports>,
}

/// The peer of a connection, put in each of its requests.
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

impl Console {
    pub fn new(broker: Arc<Broker>, tls: Option<Arc<TlsServer>>) -> Arc<Console> {
        Arc::new(Console {
            tls,
            exports: pages::Exports::new(pages::EXPORT_PAGE, pages::XLSX_MAX_LINES),
            settlement: SettlementApi::new(broker.clone()),
            product: ProductApi::new(broker.clone()),
            roster: RosterApi::new(broker.clone()),
            admin: AdminApi::new(broker.clone()),
            broker,
        })
    }

    /// Calls one of the broker's service implementations as `person`, from
    /// `peer`: the call is authorized, admitted and audited exactly as the
    /// same call over gRPC or the JSON door.
    async fn call<M, R, F, Fut>(
        &self,
        person: &Person,
        peer: SocketAddr,
        msg: M,
        f: F,
    ) -> Result<R, tonic::Status>
    where
        F: FnOnce(tonic::Request<M>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let mut req = tonic::Request::new(msg);
        req.extensions_mut().insert(Auth::Caller(person.caller()));
        req.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(peer),
        });
        f(req).await.map(tonic::Response::into_inner)
    }
}

/// The language of a request: the person's explicit choice (the switch in
/// the page's header, a cookie), else their account's, else the browser's.
fn lang_of(headers: &HeaderMap, person: Option<&Person>) -> Lang {
    if let Some(l) = cookie(headers, LANG_COOKIE).and_then(|v| Lang::parse(&v)) {
        return l;
    }
    if let Some(l) = person.and_then(|p| Lang::parse(&p.user.lang)) {
        return l;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Lang::from_accept(accept)
}

/// A cookie's value.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` for a secret (session, pre-session): host-only, HTTPS
/// only, out of scripts' reach, not sent on cross-site subrequests.
fn secret_cookie(name: &str, value: &str, max_age_s: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age_s}"
    ))
    .expect("a cookie of base64url characters")
}

/// Headers on every answer: no framing, no sniffing, nothing loaded from
/// elsewhere, HTTPS only from now on.
fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// Serves the console on `listener` until `shutdown` turns true.
/// The console's pages with what every answer gets: the form bound, the
/// security headers, and gzip for a browser that takes it (a statement's
/// page of 250 lines is some 80 kB of HTML, a few on the wire: clerks work
/// over slow mobile links). Workbooks are zipped already and are sent as
/// they are. Every form's CSRF token is masked anew in each answer, so
/// compression tells nothing of it (BREACH).
fn app(console: Arc<Console>) -> axum::Router {
    use tower_http::compression::{
        CompressionLayer, Predicate,
        predicate::{NotForContentType, SizeAbove},
    };
    let worth = SizeAbove::new(1024)
        .and(NotForContentType::const_new(
            "application/vnd.openxmlformats",
        ))
        .and(NotForContentType::IMAGES);
    pages::router(console)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(async |r: Response| {
            secure(r)
        }))
        .layer(CompressionLayer::new().gzip(true).compress_when(worth))
}

pub fn start(
    listener: TcpListener,
    broker: Arc<Broker>,
    tls: Arc<TlsServer>,
    handshake_timeout: Duration,
    max_handshakes: usize,
    refusals: Arc<Refusals>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let app = app(Console::new(broker, Some(tls.clone())));
    let listener = Listener::new(
        listener,
        ConnLimits::new(MAX_CONNECTIONS_PER_PEER),
        refusals.clone(),
        Duration::from_secs(60),
    );
    let incoming = tls.incoming_web(listener, refusals, handshake_timeout, max_handshakes);
    // Each connection's requests carry its peer (the throttle's address,
    // audit rows).
    let app_for = move |io: &tokio_rustls::server::TlsStream<crate::tls::Killable>| {
        let peer = io
            .get_ref()
            .0
            .connect_info()
            .remote_addr()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        app.clone().layer(axum::Extension(Peer(peer)))
    };
    Ok((
        addr,
        tokio::spawn(crate::ops::serve(
            incoming,
            app_for,
            CONNECTION_LIMIT,
            shutdown,
        )),
    ))
}

/// An answer that is not a page: a redirect, or an error page in the
/// person's language.
pub(crate) enum Reply {
    Redirect(String, Vec<(header::HeaderName, HeaderValue)>),
    Error(StatusCode, String),
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Redirect(to, headers) => {
                let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
                for (k, v) in headers {
                    r.headers_mut().append(k, v);
                }
                r
            }
            Reply::Error(code, html) => (
                code,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{Request, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// What a page weighs on the wire for a browser that takes gzip, and
    /// for one that does not.
    async fn fetched(app: &axum::Router, gzip: bool) -> (Option<String>, usize) {
        let mut req = Request::builder().uri("/static/console.css");
        if gzip {
            req = req.header(header::ACCEPT_ENCODING, "gzip, deflate, br");
        }
        let r = app
            .clone()
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let enc = r
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (enc, body.len())
    }

    /// Over a slow link: a browser that takes gzip gets it, at a fraction
    /// of the size; one that does not gets the page as it is.
    #[tokio::test]
    async fn answers_are_gzipped_for_a_browser_that_takes_it() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _sim, _t) = crate::service::testing::two_mutuelles(dir.path()).await;
        let app = super::app(super::Console::new(b, None));
        let (plain_enc, plain) = fetched(&app, false).await;
        let (gz_enc, gz) = fetched(&app, true).await;
        assert_eq!(plain_enc, None);
        assert_eq!(plain, super::pages::CSS.len());
        assert_eq!(gz_enc.as_deref(), Some("gzip"));
        assert!(gz * 2 < plain, "{gz} of {plain} bytes");
    }
}
