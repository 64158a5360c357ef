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
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::net::{Accepted, Listener, PeerPermit, Reason, Refusals};

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

/// The blocks of a PEM file, read strictly: outside blocks only blank lines
/// and `#` comments; every block ends, decodes, and has one of `labels`.
/// Anything else is an error naming the file and the line, so that a
/// damaged security input refuses instead of being half read.
fn pem_blocks(
    path: &Path,
    bytes: &[u8],
    labels: &[&str],
) -> Result<Vec<(String, Vec<u8>)>, TlsError> {
    use base64::Engine;
    let at = |line: usize, what: String| err(format!("{}: line {line}: {what}", path.display()));
    let text = std::str::from_utf8(bytes)
        .map_err(|_| err(format!("{}: not a pem file (not text)", path.display())))?;
    let mut out = Vec::new();
    let mut open: Option<(String, String, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let l = line.trim();
        let marker = |prefix: &str| {
            l.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix("-----"))
                .map(str::to_string)
        };
        match open.take() {
            None => {
                if let Some(label) = marker("-----BEGIN ") {
                    open = Some((label, String::new(), n));
                } else if !(l.is_empty() || l.starts_with('#')) {
                    return Err(at(n, "unexpected text outside a pem block".into()));
                }
            }
            Some((label, mut body, start)) => {
                if let Some(end) = marker("-----END ") {
                    if end != label {
                        return Err(at(n, format!("{label} block ends as {end}")));
                    }
                    if !labels.contains(&label.as_str()) {
                        return Err(at(
                            start,
                            format!("found a {label} block, expected {}", labels.join(" or ")),
                        ));
                    }
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(&body)
                        .map_err(|e| at(start, format!("{label} block: {e}")))?;
                    if der.is_empty() {
                        return Err(at(start, format!("{label} block is empty")));
                    }
                    out.push((label, der));
                } else if l.starts_with("-----") || l.contains(':') {
                    return Err(at(n, format!("unexpected line in a {label} block")));
                } else {
                    body.push_str(l);
                    open = Some((label, body, start));
                }
            }
        }
    }
    if let Some((label, _, start)) = open {
        return Err(at(start, format!("{label} block has no end (truncated)")));
    }
    Ok(out)
}

/// The certificates of a PEM file: at least one, each a parseable X.509
/// certificate, nothing else in the file.
/// The certificates of a PEM file, read strictly: at least one, each a
/// valid X.509 certificate, nothing else but blank lines and comments. Also
/// the PostgreSQL store's CA file (fail closed: never an empty trust store).
pub(crate) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use x509_cert::der::Decode;
    let blocks = pem_blocks(path, &read(path)?, &["CERTIFICATE"])?;
    if blocks.is_empty() {
        return Err(err(format!("{}: no certificate", path.display())));
    }
    blocks
        .into_iter()
        .enumerate()
        .map(|(i, (_, der))| {
            x509_cert::Certificate::from_der(&der)
                .map_err(|e| err(format!("{}: certificate {}: {e}", path.display(), i + 1)))?;
            Ok(CertificateDer::from(der))
        })
        .collect()
}

/// The private key of a PEM file: exactly one, nothing else in the file.
fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::{PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
    let mut blocks = pem_blocks(
        path,
        &read(path)?,
        &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
    )?;
    if blocks.len() != 1 {
        return Err(err(format!(
            "{}: {} private keys, expected one",
            path.display(),
            blocks.len()
        )));
    }
    let (label, der) = blocks.remove(0);
    Ok(match label.as_str() {
        "RSA PRIVATE KEY" => PrivatePkcs1KeyDer::from(der).into(),
        "EC PRIVATE KEY" => PrivateSec1KeyDer::from(der).into(),
        _ => PrivatePkcs8KeyDer::from(der).into(),
    })
}

/// The CRLs of one file, PEM (one or more `X509 CRL` blocks) or DER (one
/// CRL). A file that yields no CRL is an error, never "no revocation".
fn crl_file(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let Some(start) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(err(format!("{}: empty, no crl", path.display())));
    };
    let crls: Vec<_> = if bytes[start..].starts_with(b"-----BEGIN ") || bytes[start] == b'#' {
        pem_blocks(path, &bytes, &["X509 CRL"])?
            .into_iter()
            .map(|(_, der)| CertificateRevocationListDer::from(der))
            .collect()
    } else if bytes[start] == 0x30 {
        // A DER SEQUENCE: one CRL, parsed with the others below.
        vec![CertificateRevocationListDer::from(bytes)]
    } else {
        return Err(err(format!(
            "{}: not a crl (neither pem nor der)",
            path.display()
        )));
    };
    if crls.is_empty() {
        return Err(err(format!("{}: no crl", path.display())));
    }
    Ok(crls)
}

/// Every configured CRL file's CRLs; each file must yield at least one CRL
/// that parses (checked here, file by file, so that the error names it).
fn crls(
    paths: &[PathBuf],
    roots: &Arc<RootCertStore>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for p in paths {
        let file = crl_file(p)?;
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .with_crls(file.clone())
            .build()
            .map_err(|e| err(format!("{}: {e}", p.display())))?;
        out.extend(file);
    }
    Ok(out)
}

struct Loaded {
    acceptor: TlsAcceptor,
    /// The console's: the same certificate and key, no client certificate
    /// (people sign in with a password), TLS 1.2 too (older phones).
    web: TlsAcceptor,
    verifier: Arc<dyn ClientCertVerifier>,
    dates: Vec<(&'static str, String, i64)>,
}

fn load(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certs(&files.client_ca)? {
        roots
            .add(ca)
            .map_err(|e| err(format!("{}: {e}", files.client_ca.display())))?;
    }
    let roots = Arc::new(roots);
    let crls = crls(&files.crls, &roots, &provider)?;
    // Every configured file yielded a CRL (`crls` refuses otherwise): with
    // CRLs configured, revocation is never silently off.
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if !files.crls.is_empty() {
        builder = builder.with_crls(crls);
    }
    let verifier = builder.build().map_err(err)?;
    let mut cfg = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(err)?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(|e| {
            err(format!(
                "{} with {}: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    // HTTP/1.1 as well as h2: the JSON door (curl, PHP) and the operations
    // listener (Prometheus) speak it; gRPC clients choose h2.
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut web = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(err)?;
    web.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded {
        acceptor: TlsAcceptor::from(Arc::new(cfg)),
        web: TlsAcceptor::from(Arc::new(web)),
        verifier,
        dates: dates(files),
    })
}

/// When each certificate stops being valid and when each CRL is due to be
/// replaced, as Unix times, for the metrics
/// (`passerelle_certificate_expiry_timestamp_seconds`): (kind, file, time).
/// Read from files that [`load`] has just accepted.
fn dates(files: &TlsFiles) -> Vec<(&'static str, String, i64)> {
    let mut out = Vec::new();
    for (kind, path) in [("server", &files.cert), ("client_ca", &files.client_ca)] {
        for (_, t) in file_dates(path) {
            out.push((kind, path.display().to_string(), t));
        }
    }
    for path in &files.crls {
        for (kind, t) in file_dates(path) {
            out.push((kind, path.display().to_string(), t));
        }
    }
    out
}

/// The dates of one file: each certificate's end of validity
/// (`certificate`), or each CRL's next update (`crl_next_update`); nothing
/// for a file that holds neither (a token).
pub fn file_dates(path: &Path) -> Vec<(&'static str, i64)> {
    use x509_cert::der::Decode;
    if let Ok(certs) = certs(path) {
        return certs
            .iter()
            .filter_map(|c| x509_cert::Certificate::from_der(c.as_ref()).ok())
            .map(|c| {
                let t = c.tbs_certificate.validity.not_after.to_unix_duration();
                ("certificate", t.as_secs() as i64)
            })
            .collect();
    }
    crl_file(path)
        .unwrap_or_default()
        .iter()
        .filter_map(|crl| x509_cert::crl::CertificateList::from_der(crl.as_ref()).ok())
        .filter_map(|l| l.tbs_cert_list.next_update)
        .map(|t| ("crl_next_update", t.to_unix_duration().as_secs() as i64))
        .collect()
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

    /// The material's dates in force: see [`dates`].
    pub fn dates(&self) -> Vec<(&'static str, String, i64)> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .dates
            .clone()
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

    /// Accepts TCP connections (through the shared accept loop: back-off,
    /// per-peer cap) and yields the TLS streams that complete a handshake
    /// within `handshake_timeout`. At most `max_handshakes` run at once;
    /// past it a connection is closed at once. Refusals are counted in
    /// `refusals` (audited and logged in aggregate).
    pub fn incoming(
        self: Arc<Self>,
        listener: Listener,
        refusals: Arc<Refusals>,
        handshake_timeout: Duration,
        max_handshakes: usize,
    ) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsStream<Killable>>> {
        self.accept(listener, refusals, handshake_timeout, max_handshakes, false)
    }

    /// [`incoming`](Self::incoming) for the console: the same certificate,
    /// no client certificate asked.
    pub fn incoming_web(
        self: Arc<Self>,
        listener: Listener,
        refusals: Arc<Refusals>,
        handshake_timeout: Duration,
        max_handshakes: usize,
    ) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsStream<Killable>>> {
        self.accept(listener, refusals, handshake_timeout, max_handshakes, true)
    }

    fn accept(
        self: Arc<Self>,
        mut listener: Listener,
        refusals: Arc<Refusals>,
        handshake_timeout: Duration,
        max_handshakes: usize,
        web: bool,
    ) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsStream<Killable>>> {
        let (tx, rx) = mpsc::channel(64);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(max_handshakes));
        tokio::spawn(async move {
            loop {
                let Accepted { tcp, peer, permit } = listener.accept().await;
                if tx.is_closed() {
                    return;
                }
                let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
                    drop(tcp);
                    refusals.record(Some(peer), Reason::TooManyHandshakes, "");
                    continue;
                };
                let me = self.clone();
                let tx = tx.clone();
                let refusals = refusals.clone();
                tokio::spawn(async move {
                    let acceptor = {
                        let current = me.current.read().unwrap_or_else(|p| p.into_inner());
                        if web {
                            current.web.clone()
                        } else {
                            current.acceptor.clone()
                        }
                    };
                    let kill = CancellationToken::new();
                    let io = Killable::new(tcp, kill.clone(), permit);
                    let result = tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await;
                    drop(handshake);
                    let mut stream = match result {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            return refusals.record(
                                Some(peer),
                                Reason::of_tls_error(&e),
                                &e.to_string(),
                            );
                        }
                        Err(_) => {
                            return refusals.record(Some(peer), Reason::HandshakeTimeout, "");
                        }
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
    /// The connection's place under its peer's cap, handshake included.
    _permit: PeerPermit,
}

impl Killable {
    fn new(inner: TcpStream, token: CancellationToken, permit: PeerPermit) -> Killable {
        Killable {
            inner,
            killed: Box::pin(token.cancelled_owned()),
            guard: None,
            _permit: permit,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;
    use crate::pki::Pki;

    /// A development PKI and the files of a broker serving with it.
    fn material(dir: &Path) -> TlsFiles {
        let pki = Pki::new(dir);
        pki.init_ca().unwrap();
        pki.issue_server(&["localhost".into()], &[]).unwrap();
        pki.issue_client(Role::Scheme, "CNSS", 30).unwrap();
        TlsFiles {
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            client_ca: pki.ca_cert(),
            crls: vec![pki.crl()],
        }
    }

    fn refused(files: &TlsFiles, file: &Path) -> String {
        let e = match load(files) {
            Ok(_) => panic!("{} accepted", file.display()),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(&file.display().to_string()), "{e}");
        e
    }

    #[test]
    fn good_material_loads() {
        let dir = tempfile::tempdir().unwrap();
        load(&material(dir.path())).unwrap();
    }

    #[test]
    fn a_ca_file_with_garbage_beside_its_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = material(dir.path());
        let good = std::fs::read_to_string(&files.client_ca).unwrap();
        for bad in [
            format!("{good}garbage after the certificate\n"),
            format!("garbage before\n{good}"),
            String::new(),
            "   \n".to_string(),
            good[..good.len() / 2].to_string(),
            good.replace("CERTIFICATE", "X509 CRL"),
        ] {
            std::fs::write(&files.client_ca, &bad).unwrap();
            refused(&files, &files.client_ca);
        }
        // `#` comments and blank lines around blocks are fine.
        std::fs::write(&files.client_ca, format!("# our CA\n\n{good}\n")).unwrap();
        load(&files).unwrap();
    }

    #[test]
    fn key_and_certificate_files_are_read_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let files = material(dir.path());
        let key = std::fs::read_to_string(&files.key).unwrap();
        let cert = std::fs::read_to_string(&files.cert).unwrap();
        for bad in [
            String::new(),
            "not a key".to_string(),
            format!("{key}{key}"),
            format!("{key}trailing garbage\n"),
            key[..key.len() - 40].to_string(),
            cert.clone(),
        ] {
            std::fs::write(&files.key, &bad).unwrap();
            let e = refused(&files, &files.key);
            assert!(!e.is_empty());
        }
        std::fs::write(&files.key, &key).unwrap();
        for bad in [String::new(), format!("{cert}\x00\x01"), key.clone()] {
            std::fs::write(&files.cert, &bad).unwrap();
            refused(&files, &files.cert);
        }
        // Another key than the certificate's.
        let other = tempfile::tempdir().unwrap();
        let other = material(other.path());
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::copy(&other.key, &files.key).unwrap();
        refused(&files, &files.key);
    }

    #[test]
    fn each_crl_file_must_yield_a_crl() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = material(dir.path());
        let second = dir.path().join("second.pem");
        std::fs::write(&second, "").unwrap();
        files.crls.push(second.clone());
        // One good file does not excuse an empty one.
        refused(&files, &second);
    }
}
