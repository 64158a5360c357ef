//! A small HTTP/1.1 client for the HTTP adapters (fhir-r4, xml-http), on
//! hyper's connection API, with TLS through the same partner settings as the
//! grpc adapter; and a small server for the simulated partners.
//!
//! One connection per call: partner calls are few and bounded by their
//! deadline; a connection pool can come when a partner needs it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

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

#[derive(Clone)]
pub struct HttpClient {
    host: String,
    port: u16,
    base_path: String,
    authority: String,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
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
    ) -> Result<HttpClient, String> {
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
        let host = uri
            .host()
            .ok_or_else(|| format!("url {base_url:?}: no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match tls {
            None => None,
            Some(t) => {
                let cfg = crate::grpc::partner_tls_config(t, &[b"http/1.1"])?;
                let name = rustls::pki_types::ServerName::try_from(
                    t.server_name.clone().unwrap_or_else(|| host.clone()),
                )
                .map_err(|e| format!("tls server name: {e}"))?;
                Some((tokio_rustls::TlsConnector::from(cfg), name))
            }
        };
        Ok(HttpClient {
            authority: uri
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_else(|| host.clone()),
            host,
            port,
            base_path: uri.path().trim_end_matches('/').to_string(),
            tls,
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
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| unavailable(format!("connect to {}:{} timed out", self.host, self.port)))?
        .map_err(|e| unavailable(format!("connect to {}:{}: {e}", self.host, self.port)))?;
        let _ = tcp.set_nodelay(true);
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_path))
            .header("host", &self.authority)
            .header("content-length", body.len());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AdapterError::Malformed(e.to_string()))?;
        let resp = match &self.tls {
            None => send_on(TokioIo::new(tcp), req).await?,
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| unavailable(format!("tls: {e}")))?;
                send_on(TokioIo::new(stream), req).await?
            }
        };
        Ok(resp)
    }
}

async fn send_on<T>(io: T, req: Request<Full<Bytes>>) -> Result<Answer, AdapterError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(unavailable)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(unavailable)?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| AdapterError::Malformed(format!("answer body: {e}")))?
        .to_bytes();
    Ok(Answer { status, body })
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
