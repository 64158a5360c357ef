//! The operations listener (`[metrics]` in the config): `/metrics` (the
//! Prometheus exposition of [`crate::metrics`]), `/healthz` (the process
//! serves) and `/readyz` (the store answers, its schema is current, and the
//! broker is not stopping). Its own address, apart from the gRPC listener:
//! plain HTTP on loopback; on any other address HTTPS through the broker's
//! own TLS acceptor (same certificate, client CA and CRLs; a client
//! certificate is required), never a second TLS stack. Connections go
//! through the shared accept loop (`net::Listener`: per-peer cap, back-off).
//! docs/operations.md, "Metrics and probes", says what each path answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::net::{ConnLimits, Listener, Refusals};
use crate::service::Broker;
use crate::tls::TlsServer;

/// The exposition's content type (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Connections from one address at once on the operations listener
/// (Prometheus keeps one; a probe opens one per check).
pub const MAX_CONNECTIONS_PER_PEER: usize = 8;

/// How long a connection may stay open: a scrape or a probe is one
/// request; past this a connection is closed whatever it does.
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Ops {
    broker: Arc<Broker>,
    tls: Option<Arc<TlsServer>>,
    stopping: watch::Receiver<bool>,
}

fn router(state: Ops) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// When each certificate the broker holds stops being valid, and when each
/// CRL is due to be replaced: its own TLS files and its partners', one date
/// per kind and file, the earliest (a chain file's leaf or intermediate,
/// whichever ends first); a partner's files are named `partner:file`. What
/// `/metrics` exports and the console's certificates page shows.
pub fn certificate_dates(
    tls: Option<&TlsServer>,
    broker: &Broker,
) -> std::collections::BTreeMap<(&'static str, String), i64> {
    let mut dates: std::collections::BTreeMap<(&'static str, String), i64> = Default::default();
    let own = tls.map(|t| t.dates()).unwrap_or_default();
    let partners = broker.partner_dates();
    for (kind, file, at) in own.into_iter().chain(
        partners
            .into_iter()
            .map(|(p, k, f, at)| (k, format!("{p}:{f}"), at)),
    ) {
        let d = dates.entry((kind, file)).or_insert(at);
        *d = (*d).min(at);
    }
    dates
}

async fn metrics(State(s): State<Ops>) -> impl IntoResponse {
    s.broker.observe().await;
    for ((kind, file), at) in certificate_dates(s.tls.as_deref(), &s.broker) {
        s.broker.metrics().expiry(kind, &file, at);
    }
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        s.broker.metrics().encode(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<Ops>) -> (StatusCode, String) {
    if *s.stopping.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".into());
    }
    match s.broker.store_ready().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
}

/// How the operations listener accepts connections.
pub enum Accept {
    /// Plain HTTP (a loopback address).
    Plain,
    /// Through the broker's TLS acceptor, with its handshake timeout and
    /// bound on handshakes in progress.
    Tls(Duration, usize),
}

/// Serves the operations listener on `listener` until `shutdown` turns true;
/// from when `stopping` turns true (SIGTERM: calls drain), `/readyz`
/// answers 503 "stopping". `tls`: the broker's TLS material (its dates are
/// exported), which [`Accept::Tls`] also serves with.
pub fn start(
    listener: TcpListener,
    broker: Arc<Broker>,
    tls: Option<Arc<TlsServer>>,
    accept: Accept,
    refusals: Arc<Refusals>,
    stopping: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let state = Ops {
        broker,
        tls: tls.clone(),
        stopping,
    };
    let app = router(state);
    let listener = Listener::new(
        listener,
        ConnLimits::new(MAX_CONNECTIONS_PER_PEER),
        refusals.clone(),
        Duration::from_secs(60),
    );
    let task = match (accept, tls) {
        (Accept::Tls(handshake, max), Some(server)) => tokio::spawn(serve(
            server.incoming(listener, refusals, handshake, max),
            move |_| app.clone(),
            CONNECTION_LIMIT,
            shutdown,
        )),
        (Accept::Tls(..), None) => {
            return Err(std::io::Error::other(
                "metrics.listen: TLS needs the broker's [tls] material",
            ));
        }
        (Accept::Plain, _) => tokio::spawn(serve(
            Box::pin(listener.plaintext()),
            move |_| app.clone(),
            CONNECTION_LIMIT,
            shutdown,
        )),
    };
    Ok((addr, task))
}

/// Serves HTTP (1.1 or h2) on each connection of `incoming` with the
/// router `app_for` gives for it, each connection closed after `limit`,
/// until `shutdown` turns true: the operations listener's and the
/// console's.
pub(crate) async fn serve<S, IO>(
    mut incoming: S,
    app_for: impl Fn(&IO) -> axum::Router,
    limit: Duration,
    mut shutdown: watch::Receiver<bool>,
) where
    S: futures::Stream<Item = std::io::Result<IO>> + Unpin,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let io = tokio::select! {
            next = incoming.next() => match next {
                Some(Ok(io)) => io,
                Some(Err(_)) => continue,
                None => return,
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let service = TowerToHyperService::new(app_for(&io));
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(io), service);
            tokio::select! {
                _ = conn => {}
                _ = tokio::time::sleep(limit) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}
