//! The HTTP/1.1 client of the HTTP adapters (fhir-r4, xml-http): hyper-util's
//! pooled client over hyper-rustls (ring provider), with TLS through the same
//! partner settings as the grpc adapter; and a small server for the
//! simulated partners.
//!
//! Connections are kept alive and reused: a partner call pays a TCP and TLS
//! handshake only when no idle connection to that partner is left. Each
//! partner has its own client, so its own pool ([`PoolSettings`]); the
//! connections open at once to one partner are bounded by its bulkhead
//! (`limits.max_calls_per_partner`), one per call in flight. When the
//! partner's TLS material is reloaded, the adapter is rebuilt and the old
//! pool closes with it (see `registry::LiveAdapter`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::Deserialize;

use crate::AdapterError;
use crate::grpc::PartnerTls;

/// Default deadline of one call of an HTTP adapter (`timeout_ms`), ms.
pub fn default_timeout_ms() -> u64 {
    5000
}

/// Default deadline for opening a connection (`connect_timeout_ms`), ms.
pub fn default_connect_timeout_ms() -> u64 {
    2000
}

/// Largest answer read from a partner.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// The connection pool towards one HTTP partner (`[partners.fhir.pool]`,
/// `[partners.xml.pool]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    /// Idle connections kept open for reuse, at most (0..=1024; 0 closes
    /// each connection after its call). Default 128, the default of
    /// `limits.max_calls_per_partner`: every connection a partner's calls
    /// may hold at once is kept for the next ones, so that a burst does not
    /// end in connections closed and opened again.
    #[serde(default = "default_max_idle")]
    pub max_idle: usize,
    /// An idle connection is closed after this long, in milliseconds
    /// (1,000..=600,000). Default 4,000: below the keep-alive timeout of
    /// common servers (Apache httpd and Node.js 5 s, nginx 75 s, IIS
    /// 120 s), so that the broker, not the partner, closes idle connections
    /// and no call is sent on one the partner is closing. Raise it for a
    /// partner known to keep connections longer.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

fn default_max_idle() -> usize {
    128
}
fn default_idle_timeout_ms() -> u64 {
    4_000
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_idle: default_max_idle(),
            idle_timeout_ms: default_idle_timeout_ms(),
        }
    }
}

impl PoolSettings {
    fn check(&self) -> Result<(), String> {
        if self.max_idle > 1024 {
            return Err(format!("pool.max_idle: {} is above 1024", self.max_idle));
        }
        if !(1_000..=600_000).contains(&self.idle_timeout_ms) {
            return Err(format!(
                "pool.idle_timeout_ms: {} is outside 1000..=600000",
                self.idle_timeout_ms
            ));
        }
        Ok(())
    }
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// A client of one partner: its base URL and its connection pool. Clones
/// share the pool.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<Https, Full<Bytes>>,
    /// "http://host:port" or "https://host:port".
    origin: String,
    base_path: String,
    connect_timeout: Duration,
}

/// An answer: status and body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

fn unavailable(e: impl std::fmt::Display) -> AdapterError {
    AdapterError::Unavailable(e.to_string())
}

impl HttpClient {
    /// `base_url` like "https://host:port/fhir"; TLS settings when https.
    pub fn new(
        base_url: &str,
        tls: Option<&PartnerTls>,
        connect_timeout: Duration,
        pool: &PoolSettings,
    ) -> Result<HttpClient, String> {
        pool.check()?;
        let uri: hyper::Uri = base_url
            .parse()
            .map_err(|e| format!("url {base_url:?}: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "url {base_url:?}: must start with http:// or https://"
                ));
            }
        };
        if https != tls.is_some() {
            return Err(format!(
                "url {base_url:?}: use https:// with a [tls] table, http:// without"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("url {base_url:?}: no host"))?;
        let host = authority.host().trim_matches(['[', ']']).to_string();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        let connector = match tls {
            None => hyper_rustls::HttpsConnectorBuilder::new()
                // Never used on http:// (no TLS without a [tls] table), but
                // the builder wants a configuration: an empty trust store.
                .with_tls_config(
                    rustls::ClientConfig::builder_with_provider(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("tls: {e}"))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
                )
                .https_or_http()
                .enable_http1()
                .wrap_connector(tcp),
            Some(t) => {
                // HTTP/1.1 only: hyper-rustls leaves ALPN empty then, and
                // refuses a configuration that already names protocols.
                let cfg = crate::grpc::partner_tls_config(t, &[])?;
                let name = rustls::pki_types::ServerName::try_from(
                    t.server_name.clone().unwrap_or_else(|| host.clone()),
                )
                .map_err(|e| format!("tls server name: {e}"))?;
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(Arc::unwrap_or_clone(cfg))
                    .https_only()
                    .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
                    .enable_http1()
                    .wrap_connector(tcp)
            }
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_max_idle_per_host(pool.max_idle)
            .pool_idle_timeout(Duration::from_millis(pool.idle_timeout_ms))
            .build(connector);
        Ok(HttpClient {
            client,
            origin: format!("{}://{authority}", if https { "https" } else { "http" }),
            base_path: uri.path().trim_end_matches('/').to_string(),
            connect_timeout,
        })
    }

    /// Sends one request to `base_path + path` and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, AdapterError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}{path}", self.origin, self.base_path))
            .header("content-length", body.len());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        // The call's client span (crate::trace).
        if let Some(t) = crate::trace::outgoing() {
            req = req.header("traceparent", t);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AdapterError::Malformed(e.to_string()))?;
        let resp = self.client.request(req).await.map_err(|e| {
            // The error chain says what failed: connect, TLS, or the
            // connection closing under the request.
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            if e.is_connect() && msg.contains("timed out") {
                msg = format!(
                    "connect to {} timed out after {} ms",
                    self.origin,
                    self.connect_timeout.as_millis()
                );
            }
            unavailable(msg)
        })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                // Too large is the partner's answer, and final; a connection
                // that broke while the answer was read is transient (the
                // call is retried with the same key).
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    AdapterError::Malformed(format!("answer body: {e}"))
                } else {
                    unavailable(format!("reading the answer from {}: {e}", self.origin))
                }
            })?
            .to_bytes();
        Ok(Answer { status, body })
    }
}

/// A request as the simulated partners see it.
pub struct Incoming {
    pub method: Method,
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// What a simulated partner answers: status, content type, body.
pub type Outgoing = (u16, &'static str, Vec<u8>);

pub type Handler =
    Arc<dyn Fn(Incoming) -> Pin<Box<dyn Future<Output = Outgoing> + Send>> + Send + Sync>;

/// Serves HTTP/1.1 on `listener` with `handler` until aborted.
pub fn serve(listener: tokio::net::TcpListener, handler: Handler) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = Limited::new(body, MAX_BODY)
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let (status, ctype, out) = handler(Incoming {
                            method: parts.method,
                            path: parts.uri.path().to_string(),
                            headers: parts.headers,
                            body,
                        })
                        .await;
                        hyper::Response::builder()
                            .status(status)
                            .header("content-type", ctype)
                            .body(Full::new(Bytes::from(out)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    })
}

#[cfg(test)]
mod tests {
    //! Over real sockets: a counting proxy (TLS or plain) in front of a
    //! simulated XML mutuelle shows how many connections the client opens,
    //! and when it closes them.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::registry::{AdapterConfig, LiveAdapter};
    use crate::sim_http::{SimXml, XmlShape};
    use crate::{EligibilityQuery, kit};
    use tokio::sync::Notify;

    /// Connections accepted and ended by the proxy.
    #[derive(Default)]
    struct Counts {
        accepted: AtomicUsize,
        ended: AtomicUsize,
        changed: Notify,
    }

    impl Counts {
        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }

        /// Waits (at most 10 s) until `n` connections have ended.
        async fn ended_reaches(&self, n: usize) {
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let wait = self.changed.notified();
                    if self.ended.load(Ordering::SeqCst) >= n {
                        return;
                    }
                    wait.await;
                }
            })
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} connection(s) ended, expected {n}",
                    self.ended.load(Ordering::SeqCst)
                )
            });
        }
    }

    /// A proxy to `upstream`, terminating TLS when given a configuration.
    async fn proxy(
        upstream: std::net::SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> (std::net::SocketAddr, Arc<Counts>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                c.accepted.fetch_add(1, Ordering::SeqCst);
                let (c, tls) = (c.clone(), tls.clone());
                tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        match tls {
                            None => {
                                let mut tcp = tcp;
                                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut up).await;
                            }
                            Some(cfg) => {
                                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                                if let Ok(mut s) = acceptor.accept(tcp).await {
                                    let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
                                }
                            }
                        }
                    }
                    c.ended.fetch_add(1, Ordering::SeqCst);
                    c.changed.notify_waiters();
                });
            }
        });
        (addr, counts)
    }

    /// A simulated XML mutuelle (shape A) and its adapter's settings table,
    /// with `url`.
    async fn xml_partner(dir: &std::path::Path) -> (std::net::SocketAddr, toml::Table) {
        let secret = dir.join("secret");
        std::fs::write(&secret, "kit-pass").unwrap();
        let (addr, _) = SimXml {
            sim: kit::sim(),
            shape: XmlShape::A,
            currency: "XOF".into(),
            credential: {
                use base64::Engine;
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("passerelle:kit-pass")
                )
            },
        }
        .start()
        .await
        .unwrap();
        let table: toml::Table = toml::from_str(
            &include_str!("../kit/xml-a.toml").replace("{SECRET}", &secret.display().to_string()),
        )
        .unwrap();
        (addr, table)
    }

    fn query() -> EligibilityQuery {
        EligibilityQuery {
            idempotency_key: "keep-alive".into(),
            scheme_id: "CNSS".into(),
            beneficiary_id: "TG-KIT-1".into(),
            member_number: Some("K-1".into()),
            member: None,
            date_of_care: passerelle_domain::date::parse("2026-11-20").unwrap(),
            currency: "XOF".into(),
            lines: vec![],
            diagnoses: vec![],
        }
    }

    fn live(dir: &std::path::Path, xml: toml::Table) -> LiveAdapter {
        let mut entry = toml::Table::new();
        entry.insert("adapter".into(), "xml-http".into());
        entry.insert("xml".into(), xml.into());
        AdapterConfig::from_entry(entry)
            .unwrap()
            .live("MUT-KIT", dir, Arc::new(crate::rules::NoStore))
            .unwrap()
    }

    /// A call made inside a trace carries its `traceparent`; outside one,
    /// none.
    #[tokio::test]
    async fn calls_carry_the_trace() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let handler: Handler = {
            let seen = seen.clone();
            Arc::new(move |req: Incoming| {
                let seen = seen.clone();
                Box::pin(async move {
                    seen.lock().unwrap().push(
                        req.headers
                            .get("traceparent")
                            .map(|v| v.to_str().unwrap().to_string()),
                    );
                    (200, "text/plain", b"ok".to_vec())
                })
            })
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _server = serve(l, handler);
        let client = HttpClient::new(
            &format!("http://{addr}/fhir"),
            None,
            Duration::from_secs(2),
            &PoolSettings::default(),
        )
        .unwrap();
        let t = crate::trace::TraceParent::root();
        crate::trace::scope(t, client.send(Method::GET, "/x", &[], vec![]))
            .await
            .unwrap();
        client.send(Method::GET, "/y", &[], vec![]).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[0].as_deref(), Some(t.header().as_str()));
        assert_eq!(seen[1], None);
    }

    #[tokio::test]
    async fn calls_reuse_a_kept_alive_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (sim, mut xml) = xml_partner(dir.path()).await;
        let (addr, counts) = proxy(sim, None).await;
        xml.insert("url".into(), format!("http://{addr}").into());
        let adapter = live(dir.path(), xml.clone()).get();
        for _ in 0..10 {
            assert!(adapter.eligibility(&query()).await.unwrap().covered);
        }
        assert_eq!(counts.accepted(), 1, "ten calls, one connection");
        // Calls at once take a connection each, and are kept for reuse.
        let many = futures_join(adapter.clone(), 4).await;
        assert!(many.iter().all(|c| *c), "{many:?}");
        let opened = counts.accepted();
        assert!((1..=4).contains(&opened), "{opened}");
        futures_join(adapter.clone(), 4).await;
        assert_eq!(counts.accepted(), opened, "the pool kept them");

        // max_idle = 0: nothing is kept, every call opens its own.
        let mut pool = toml::Table::new();
        pool.insert("max_idle".into(), 0.into());
        xml.insert("pool".into(), pool.into());
        let (addr, counts) = proxy(sim, None).await;
        xml.insert("url".into(), format!("http://{addr}").into());
        let adapter = live(dir.path(), xml).get();
        for _ in 0..3 {
            assert!(adapter.eligibility(&query()).await.unwrap().covered);
        }
        assert_eq!(counts.accepted(), 3);
    }

    async fn futures_join(adapter: Arc<dyn crate::Adapter>, n: usize) -> Vec<bool> {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let a = adapter.clone();
            tasks.push(tokio::spawn(async move {
                a.eligibility(&query())
                    .await
                    .map(|e| e.covered)
                    .unwrap_or(false)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[test]
    fn pool_settings_are_bounded() {
        let p = |max_idle, idle_timeout_ms| {
            PoolSettings {
                max_idle,
                idle_timeout_ms,
            }
            .check()
        };
        assert!(p(32, 30_000).is_ok());
        assert!(p(0, 1_000).is_ok());
        assert!(p(1025, 30_000).unwrap_err().contains("pool.max_idle"));
        assert!(p(32, 999).unwrap_err().contains("pool.idle_timeout_ms"));
        assert!(p(32, 600_001).unwrap_err().contains("pool.idle_timeout_ms"));
    }

    /// A CA and a certificate for "localhost" it signed: (CA PEM, server
    /// config).
    fn tls_server() -> (String, Arc<rustls::ServerConfig>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "test partner CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        (ca_cert.pem(), Arc::new(cfg))
    }

    #[tokio::test]
    async fn a_reload_closes_connections_made_with_the_old_tls_material() {
        let dir = tempfile::tempdir().unwrap();
        let (sim, mut xml) = xml_partner(dir.path()).await;
        let (ca, server) = tls_server();
        let (other_ca, _) = tls_server();
        let (addr, counts) = proxy(sim, Some(server)).await;
        let ca_file = dir.path().join("partner-ca.pem");
        std::fs::write(&ca_file, &ca).unwrap();
        xml.insert("url".into(), format!("https://{addr}").into());
        let mut tls = toml::Table::new();
        tls.insert("ca_file".into(), ca_file.display().to_string().into());
        tls.insert("server_name".into(), "localhost".into());
        xml.insert("tls".into(), tls.into());
        let live = live(dir.path(), xml);
        for _ in 0..5 {
            assert!(live.get().eligibility(&query()).await.unwrap().covered);
        }
        assert_eq!(counts.accepted(), 1, "one TLS handshake for five calls");
        assert!(!live.reload(false).unwrap(), "nothing changed");
        assert!(live.get().eligibility(&query()).await.unwrap().covered);
        assert_eq!(counts.accepted(), 1);

        // The partner's CA changes: the pooled connection closes, and the
        // next call is checked against the new CA (which did not sign the
        // partner's certificate: refused).
        std::fs::write(&ca_file, &other_ca).unwrap();
        assert!(live.reload(false).unwrap());
        counts.ended_reaches(1).await;
        let e = live.get().eligibility(&query()).await.unwrap_err();
        assert!(
            matches!(&e, crate::AdapterError::Unavailable(m) if m.contains("certificate")),
            "{e:?}"
        );
        assert_eq!(
            counts.accepted(),
            2,
            "a new handshake, not the old connection"
        );

        // A file that holds no certificate is refused: the adapter in force
        // (the other CA) stays.
        std::fs::write(&ca_file, "not a certificate\n").unwrap();
        let e = live.reload(false).unwrap_err();
        assert!(e.contains("partner-ca.pem"), "{e}");
        assert!(live.get().eligibility(&query()).await.is_err());

        // Back to the right CA; a forced reload (SIGHUP) also rebuilds.
        std::fs::write(&ca_file, &ca).unwrap();
        assert!(live.reload(false).unwrap());
        assert!(live.get().eligibility(&query()).await.unwrap().covered);
        let before = counts.accepted();
        assert!(live.reload(true).unwrap());
        counts.ended_reaches(before).await;
        assert!(live.get().eligibility(&query()).await.unwrap().covered);
        assert_eq!(counts.accepted(), before + 1);
    }
}
