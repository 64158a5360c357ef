//! The broker's TLS listener: TLS 1.3, client certificates required, CRLs,
//! reload without a restart.
//!
//! tonic's own TLS has no CRL and no reload, so this builds the rustls
//! `ServerConfig` itself (`WebPkiClientVerifier` with CRLs), accepts with
//! tokio-rustls and hands the streams to `serve_with_incoming`; tonic still
//! puts the peer certificates in each request (`Request::peer_certs`).
//!
//! Every accepted connection is registered with its client certificate.
//! [`TlsServer::reload`] re-reads the server certificate, the trusted CAs and
//! the CRLs, and closes at once every open connection whose certificate the
//! new verifier refuses (revoked, or its CA no longer trusted).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::audit::{AuditSink, hash, now_ms};
use crate::store::{AuditEntry, Direction};

/// Where the TLS material is (see `[tls]` in the config).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    pub crls: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("tls: {0}")]
pub struct TlsError(pub String);

fn err(e: impl std::fmt::Display) -> TlsError {
    TlsError(e.to_string())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| err(format!("{}: {e}", path.display())))
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let out: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("{}: {e}", path.display())))?;
    if out.is_empty() {
        return Err(err(format!("{}: no certificate", path.display())));
    }
    Ok(out)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| err(format!("{}: {e}", path.display())))?
        .ok_or_else(|| err(format!("{}: no private key", path.display())))
}

fn crls(paths: &[PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for p in paths {
        let pem = read(p)?;
        for crl in rustls_pemfile::crls(&mut pem.as_slice()) {
            out.push(crl.map_err(|e| err(format!("{}: {e}", p.display())))?);
        }
    }
    Ok(out)
}

struct Loaded {
    acceptor: TlsAcceptor,
    verifier: Arc<dyn ClientCertVerifier>,
}

fn load(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certs(&files.client_ca)? {
        roots
            .add(ca)
            .map_err(|e| err(format!("{}: {e}", files.client_ca.display())))?;
    }
    let crls = crls(&files.crls)?;
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if !crls.is_empty() {
        builder = builder.with_crls(crls);
    }
    let verifier = builder.build().map_err(err)?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(err)?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(err)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        acceptor: TlsAcceptor::from(Arc::new(cfg)),
        verifier,
    })
}

struct LiveConn {
    chain: Vec<CertificateDer<'static>>,
    peer: Option<SocketAddr>,
    kill: CancellationToken,
}

/// The TLS side of a listener; cheap to share.
pub struct TlsServer {
    files: TlsFiles,
    current: RwLock<Arc<Loaded>>,
    conns: Mutex<HashMap<u64, LiveConn>>,
    next: AtomicU64,
    stamp: Mutex<Vec<Option<SystemTime>>>,
}

impl TlsServer {
    pub fn new(files: TlsFiles) -> Result<Arc<TlsServer>, TlsError> {
        let loaded = load(&files)?;
        let stamp = Mutex::new(stamps(&files));
        Ok(Arc::new(TlsServer {
            files,
            current: RwLock::new(Arc::new(loaded)),
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            stamp,
        }))
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Re-reads the certificate, key, trusted CAs and CRLs; closes every open
    /// connection whose client certificate no longer verifies. Returns how
    /// many were closed. On error the old material stays in force.
    pub fn reload(&self) -> Result<usize, TlsError> {
        let loaded = Arc::new(load(&self.files)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded.clone();
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = stamps(&self.files);
        let now = UnixTime::now();
        let mut closed = 0;
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            let Some((ee, rest)) = c.chain.split_first() else {
                continue;
            };
            if let Err(e) = loaded.verifier.verify_client_cert(ee, rest, now) {
                tracing::warn!(peer = ?c.peer, reason = %e, "closing a connection whose certificate no longer verifies");
                c.kill.cancel();
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// Reloads if any of the files changed since the last load.
    pub fn reload_if_changed(&self) -> Result<Option<usize>, TlsError> {
        let now = stamps(&self.files);
        if *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) == now {
            return Ok(None);
        }
        self.reload().map(Some)
    }

    /// Accepts TCP connections and yields the TLS streams that complete a
    /// handshake within `handshake_timeout`. Failed handshakes are logged and
    /// audited with the peer address and the reason.
    pub fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
        audit: AuditSink,
        handshake_timeout: Duration,
    ) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsStream<Killable>>> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let _ = tcp.set_nodelay(true);
                let me = self.clone();
                let tx = tx.clone();
                let audit = audit.clone();
                tokio::spawn(async move {
                    let acceptor = me
                        .current
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .acceptor
                        .clone();
                    let kill = CancellationToken::new();
                    let io = Killable::new(tcp, kill.clone());
                    let result = tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await;
                    let mut stream = match result {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return refuse(&audit, peer, &e.to_string()).await,
                        Err(_) => return refuse(&audit, peer, "handshake timed out").await,
                    };
                    let chain: Vec<CertificateDer<'static>> = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
                        .unwrap_or_default();
                    let id = me.next.fetch_add(1, Ordering::Relaxed);
                    me.conns.lock().unwrap_or_else(|p| p.into_inner()).insert(
                        id,
                        LiveConn {
                            chain,
                            peer: Some(peer),
                            kill,
                        },
                    );
                    stream.get_mut().0.guard = Some(Guard {
                        server: me.clone(),
                        id,
                    });
                    let _ = tx.send(Ok(stream)).await;
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [&files.cert, &files.key, &files.client_ca]
        .into_iter()
        .chain(files.crls.iter())
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

async fn refuse(audit: &AuditSink, peer: SocketAddr, reason: &str) {
    tracing::info!(%peer, %reason, "tls handshake refused");
    audit
        .record(AuditEntry {
            at_ms: now_ms(),
            direction: Direction::In,
            party: format!("tls:{peer}"),
            method: "TlsHandshake".into(),
            subject: "tls".into(),
            request_hash: hash(peer.to_string().as_bytes()),
            outcome: format!("refused: {reason}"),
        })
        .await;
}

/// Removes a connection from the registry when it ends.
pub struct Guard {
    server: Arc<TlsServer>,
    id: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.server
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// A TCP stream that a reload can close at once: once its token is
/// cancelled, reads and writes fail, and hyper drops the connection.
pub struct Killable {
    inner: TcpStream,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    guard: Option<Guard>,
}

impl Killable {
    fn new(inner: TcpStream, token: CancellationToken) -> Killable {
        Killable {
            inner,
            killed: Box::pin(token.cancelled_owned()),
            guard: None,
        }
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.killed.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "certificate no longer valid",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

use std::future::Future;

impl AsyncRead for Killable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Killable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connected for Killable {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
