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
use std::sync::atomic::{AtomicBool, Ordering};
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
/// request. Past this age it is ended the way its protocol says
/// ([`serve`]), within at most twice this and a few seconds.
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(60);

/// How long a request in flight may finish once its connection is ended.
pub const CLOSING_GRACE: Duration = Duration::from_secs(10);

/// A connection's end as [`serve`] brings it.
#[derive(Default)]
struct Ending {
    /// Past its age: an HTTP/1.1 answer says `Connection: close`.
    closing: AtomicBool,
    /// It carried HTTP/2 (ended by GOAWAY).
    h2: AtomicBool,
}

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
    match audit_ready(s.broker.audit().queued()) {
        Ok(()) => {}
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
    match s.broker.store_ready().await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
}

/// Not ready while the audit queue is three quarters full: its writer
/// cannot store rows (the store refuses or is too slow), and every call
/// soon waits on it (`audit::QUEUE`); this replica is taken out of the
/// load balancer, its calls go to the others.
fn audit_ready(queued: usize) -> Result<(), String> {
    let bound = crate::audit::QUEUE / 4 * 3;
    if queued >= bound {
        return Err(format!(
            "audit: {queued} of {} rows wait to be written: the store does not take them",
            crate::audit::QUEUE
        ));
    }
    Ok(())
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
/// router `app_for` gives for it, until `shutdown` turns true: the
/// operations listener's and the console's.
///
/// A connection older than `limit` is ended the way its protocol says, so
/// that a client reusing it never has a request cut: over HTTP/1.1 its
/// next answer says `Connection: close` and the connection ends after it;
/// over HTTP/2 it gets GOAWAY. One that sends nothing within another
/// `limit` is then closed, a request in flight given [`CLOSING_GRACE`].
/// (It was dropped at `limit` whatever it did: Prometheus, keeping its
/// connection, met the close with its next scrape over TLS, a failed
/// scrape every minute that made the series stale and restarted every
/// alert's `for`.)
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
        let ending = Arc::new(Ending::default());
        let said = ending.clone();
        let app = app_for(&io).layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let said = said.clone();
                async move {
                    let h1 = req.version() < axum::http::Version::HTTP_2;
                    if !h1 {
                        said.h2.store(true, Ordering::Relaxed);
                    }
                    let mut res = next.run(req).await;
                    if h1 && said.closing.load(Ordering::Relaxed) {
                        res.headers_mut().insert(
                            header::CONNECTION,
                            header::HeaderValue::from_static("close"),
                        );
                    }
                    res
                }
            },
        ));
        let service = TowerToHyperService::new(app);
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            // Its age first: a request read in the same wake-up as the age
            // passed is answered as past it.
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(limit) => {}
                _ = conn.as_mut() => return,
            }
            ending.closing.store(true, Ordering::Relaxed);
            if ending.h2.load(Ordering::Relaxed) {
                conn.as_mut().graceful_shutdown();
            }
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(limit) => {}
                _ = conn.as_mut() => return,
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSING_GRACE, conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const GET: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: broker\r\n\r\n";

    /// One HTTP/1.1 answer's head, its body (by Content-Length) read past.
    async fn answer(io: &mut DuplexStream) -> String {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(io.read_u8().await.expect("an answer"));
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0; len];
        io.read_exact(&mut body).await.unwrap();
        head
    }

    /// `serve` on one in-memory connection, with an age limit of 60 s.
    fn one_connection() -> (DuplexStream, watch::Sender<bool>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (stop, shutdown) = watch::channel(false);
        let incoming = futures::stream::iter([Ok::<_, std::io::Error>(server)])
            .chain(futures::stream::pending());
        let app = axum::Router::new().route("/healthz", get(|| async { "ok" }));
        tokio::spawn(serve(
            Box::pin(incoming),
            move |_| app.clone(),
            Duration::from_secs(60),
            shutdown,
        ));
        (client, stop)
    }

    /// A connection kept past its age (Prometheus keeps one) is ended
    /// after an answer that says so, never under a request; one left idle
    /// is closed after twice its age.
    #[tokio::test(start_paused = true)]
    async fn a_kept_connection_past_its_age_ends_after_an_answer() {
        let (mut c, _stop) = one_connection();
        c.write_all(GET).await.unwrap();
        let first = answer(&mut c).await;
        assert!(first.starts_with("http/1.1 200"), "{first}");
        assert!(!first.contains("connection: close"), "{first}");
        tokio::time::advance(Duration::from_secs(61)).await;
        c.write_all(GET).await.unwrap();
        let second = answer(&mut c).await;
        assert!(second.starts_with("http/1.1 200"), "{second}");
        assert!(second.contains("connection: close"), "{second}");
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).await.unwrap(), 0, "ended after it");

        let (mut idle, _stop) = one_connection();
        idle.write_all(GET).await.unwrap();
        answer(&mut idle).await;
        tokio::time::advance(Duration::from_secs(61)).await;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(1), idle.read(&mut byte)).await;
        assert!(read.is_err(), "still open between its age and twice it");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(idle.read(&mut byte).await.unwrap(), 0, "closed when idle");
    }

    /// A replica whose audit writer cannot keep up says not ready before
    /// its calls wait on the queue.
    #[test]
    fn an_audit_queue_three_quarters_full_is_not_ready() {
        assert!(super::audit_ready(0).is_ok());
        assert!(super::audit_ready(crate::audit::QUEUE / 4 * 3 - 1).is_ok());
        let e = super::audit_ready(crate::audit::QUEUE / 4 * 3).unwrap_err();
        assert!(e.contains("6144 of 8192"), "{e}");
    }
}
