//! What both listeners (TLS and plaintext) share against callers that never
//! authenticate, and against running out of file descriptors:
//!
//! - [`Listener::accept`], the one accept loop: it backs off on accept
//!   errors (5 ms doubling to 1 s on EMFILE, ENFILE, ENOBUFS, ENOMEM...,
//!   reset by the next success) instead of spinning, warns at most once per
//!   interval with the count of errors left unsaid, and caps open
//!   connections per peer address ([`ConnLimits`]);
//! - [`Refusals`]: refused handshakes, connections over a cap and unknown
//!   identities, counted per (peer address, [`Reason`]) per interval. The
//!   first of a key in an interval is audited and logged at once, with its
//!   detail; the rest become one audit row and one log line at the end of
//!   the interval ("refused: revoked x 411 more in 60 s"). At most
//!   `refusal_peers` addresses are counted apart per interval, the others
//!   share an "other-peers" bucket per reason: whatever the churn, the
//!   audit log and the log grow by at most 2 x (`refusal_peers` + reasons)
//!   rows and lines per interval;
//! - [`check_open_files`], the start-up check of RLIMIT_NOFILE.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::audit::{hash, now_ms};
use crate::config::Config;
use crate::store::{AuditEntry, Direction};

/// Why a connection or a call of a caller that never authenticated was
/// refused: a small closed set, so that refusals aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    NoClientCertificate,
    UnknownCa,
    Revoked,
    Expired,
    BadCertificate,
    HandshakeTimeout,
    ProtocolError,
    /// The peer closed (or reset) the connection during the handshake.
    Closed,
    /// More open connections from this address than `max_connections_per_peer`.
    TooManyFromPeer,
    /// More handshakes in progress than `max_handshakes`.
    TooManyHandshakes,
    /// A valid certificate whose identity is not configured.
    UnknownIdentity,
    Other,
}

impl Reason {
    /// Every reason (the metrics count each from zero).
    pub const ALL: [Reason; 12] = [
        Reason::NoClientCertificate,
        Reason::UnknownCa,
        Reason::Revoked,
        Reason::Expired,
        Reason::BadCertificate,
        Reason::HandshakeTimeout,
        Reason::ProtocolError,
        Reason::Closed,
        Reason::TooManyFromPeer,
        Reason::TooManyHandshakes,
        Reason::UnknownIdentity,
        Reason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoClientCertificate => "no client certificate",
            Reason::UnknownCa => "unknown ca",
            Reason::Revoked => "revoked",
            Reason::Expired => "expired",
            Reason::BadCertificate => "bad certificate",
            Reason::HandshakeTimeout => "handshake timeout",
            Reason::ProtocolError => "protocol error",
            Reason::Closed => "closed during handshake",
            Reason::TooManyFromPeer => "too many connections from peer",
            Reason::TooManyHandshakes => "too many handshakes",
            Reason::UnknownIdentity => "unknown identity",
            Reason::Other => "other",
        }
    }

    /// The metrics' label: the reason in snake case.
    pub fn label(self) -> &'static str {
        match self {
            Reason::NoClientCertificate => "no_client_certificate",
            Reason::UnknownCa => "unknown_ca",
            Reason::Revoked => "revoked",
            Reason::Expired => "expired",
            Reason::BadCertificate => "bad_certificate",
            Reason::HandshakeTimeout => "handshake_timeout",
            Reason::ProtocolError => "protocol_error",
            Reason::Closed => "closed",
            Reason::TooManyFromPeer => "too_many_from_peer",
            Reason::TooManyHandshakes => "too_many_handshakes",
            Reason::UnknownIdentity => "unknown_identity",
            Reason::Other => "other",
        }
    }

    /// The audit row's method.
    fn method(self) -> &'static str {
        match self {
            Reason::TooManyFromPeer | Reason::TooManyHandshakes => "Connect",
            Reason::UnknownIdentity => "Authenticate",
            _ => "TlsHandshake",
        }
    }

    /// The reason of a failed TLS accept.
    pub fn of_tls_error(e: &io::Error) -> Reason {
        use rustls::CertificateError as C;
        if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return match r {
                rustls::Error::NoCertificatesPresented => Reason::NoClientCertificate,
                rustls::Error::InvalidCertificate(c) => match c {
                    C::UnknownIssuer => Reason::UnknownCa,
                    C::Revoked => Reason::Revoked,
                    C::Expired
                    | C::ExpiredContext { .. }
                    | C::NotValidYet
                    | C::NotValidYetContext { .. } => Reason::Expired,
                    _ => Reason::BadCertificate,
                },
                _ => Reason::ProtocolError,
            };
        }
        match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Reason::Closed,
            _ => Reason::Other,
        }
    }
}

type Key = (Option<IpAddr>, Reason);

/// One interval's counts: for each key, the refusals after its first.
#[derive(Debug)]
struct Window {
    counts: HashMap<Key, u64>,
    peers: usize,
    max_peers: usize,
}

impl Window {
    fn new(max_peers: usize) -> Window {
        Window {
            counts: HashMap::new(),
            peers: 0,
            max_peers,
        }
    }

    /// Counts a refusal; returns the key it was counted under when it is
    /// that key's first in the interval (to be written at once).
    fn add(&mut self, ip: Option<IpAddr>, reason: Reason) -> Option<Key> {
        let mut key = (ip, reason);
        if let Some(n) = self.counts.get_mut(&key) {
            *n += 1;
            return None;
        }
        if ip.is_some() {
            if self.peers >= self.max_peers {
                key = (None, reason);
            } else {
                self.peers += 1;
            }
        }
        match self.counts.get_mut(&key) {
            Some(n) => {
                *n += 1;
                None
            }
            None => {
                self.counts.insert(key, 0);
                Some(key)
            }
        }
    }

    /// The keys with refusals beyond their first, and starts a new interval.
    fn drain(&mut self) -> Vec<(Key, u64)> {
        let mut out: Vec<_> = self.counts.drain().filter(|(_, n)| *n > 0).collect();
        out.sort();
        self.peers = 0;
        out
    }
}

/// Where refusal rows go (the audit writer; a test collects them).
pub type RowSink = Box<dyn Fn(AuditEntry) + Send + Sync>;

/// Refusals of unauthenticated callers, aggregated: see the module
/// documentation.
pub struct Refusals {
    window: Mutex<Window>,
    sink: RowSink,
    interval: Duration,
    /// "tls" or "tcp": the party of a refused connection.
    listener: &'static str,
    /// Refusals counted since start.
    total: std::sync::atomic::AtomicU64,
    /// The same, by reason, for the metrics.
    by_reason: crate::metrics::Counters<1>,
}

impl Refusals {
    pub fn new(
        sink: RowSink,
        interval: Duration,
        max_peers: usize,
        listener: &'static str,
        by_reason: crate::metrics::Counters<1>,
    ) -> Arc<Refusals> {
        for r in Reason::ALL {
            let _ = by_reason.get_or_create(&[("reason", r.label())]);
        }
        Arc::new(Refusals {
            window: Mutex::new(Window::new(max_peers)),
            sink,
            interval,
            listener,
            total: Default::default(),
            by_reason,
        })
    }

    fn party(&self, reason: Reason, who: &str) -> String {
        if reason == Reason::UnknownIdentity {
            format!("unknown@{who}")
        } else {
            format!("{}:{who}", self.listener)
        }
    }

    fn row(&self, party: String, reason: Reason, outcome: String) -> AuditEntry {
        AuditEntry {
            at_ms: now_ms(),
            direction: Direction::In,
            request_hash: hash(party.as_bytes()),
            party,
            method: reason.method().into(),
            subject: if reason == Reason::UnknownIdentity {
                "auth".into()
            } else {
                "tls".into()
            },
            outcome,
            trace_id: String::new(),
        }
    }

    /// Counts one refusal; the first of its (address, reason) in this
    /// interval is audited and logged at once, with `detail`.
    pub fn record(&self, peer: Option<SocketAddr>, reason: Reason, detail: &str) {
        self.total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.by_reason
            .get_or_create(&[("reason", reason.label())])
            .inc();
        let ip = peer.map(|p| p.ip().to_canonical());
        let first = self
            .window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(ip, reason);
        let Some((ip, _)) = first else {
            return;
        };
        // The first from an address counted apart names the connection; the
        // first of the overflow bucket says it stands for others.
        let who = match (ip, peer) {
            (Some(_), Some(p)) => p.to_string(),
            _ => "other-peers".to_string(),
        };
        let detail: String = detail.chars().take(200).collect();
        let outcome = match (reason, detail.is_empty()) {
            (Reason::UnknownIdentity, _) => format!("Unauthenticated: {detail}"),
            (_, true) => format!("refused: {}", reason.as_str()),
            (_, false) => format!("refused: {}: {detail}", reason.as_str()),
        };
        tracing::info!(peer = %who, reason = reason.as_str(), %detail, "connection refused");
        (self.sink)(self.row(self.party(reason, &who), reason, outcome));
    }

    /// Refusals counted since start.
    pub fn counted(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes the interval's counts (one row and one log line per key with
    /// refusals beyond its first) and starts a new interval.
    pub fn flush(&self) {
        let drained = self
            .window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain();
        let secs = self.interval.as_secs();
        for ((ip, reason), n) in drained {
            let who = ip.map_or_else(|| "other-peers".to_string(), |ip| ip.to_string());
            tracing::info!(peer = %who, reason = reason.as_str(), count = n, interval_s = secs, "connections refused");
            let outcome = format!("refused: {} x {n} more in {secs} s", reason.as_str());
            (self.sink)(self.row(self.party(reason, &who), reason, outcome));
        }
    }

    /// Flushes at the end of every interval until shutdown (the caller
    /// flushes once more after it).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval_at(Instant::now() + self.interval, self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush(),
                _ = shutdown.wait_for(|v| *v) => return,
            }
        }
    }
}

/// The network a peer counts under for per-peer bounds (open connections
/// here, the console's sign-in throttle): an IPv4 address, or an IPv6 form
/// of one, alone; an IPv6 address by its /64, which one subscriber holds
/// whole (RFC 6177), so that changing address within it escapes nothing.
pub fn peer_network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Open connections per peer network ([`peer_network`]).
pub struct ConnLimits {
    per_peer: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnLimits {
    pub fn new(per_peer: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            per_peer,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A permit for one more connection from `ip`, or `None` at the cap.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PeerPermit> {
        let ip = peer_network(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.per_peer {
            return None;
        }
        *n += 1;
        Some(PeerPermit {
            limits: self.clone(),
            ip,
        })
    }

    /// Open connections from `ip` now.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&peer_network(ip)).copied().unwrap_or(0)
    }
}

/// One open connection counted against its peer's cap, until dropped.
pub struct PeerPermit {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl Drop for PeerPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The accept loop's back-off: 5 ms doubling to 1 s, reset by a success.
#[derive(Debug, Default)]
pub struct Backoff {
    current: Option<Duration>,
}

/// First and longest pause after a failed accept.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(5);
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let d = self
            .current
            .map_or(BACKOFF_FIRST, |d| (d * 2).min(BACKOFF_MAX));
        self.current = Some(d);
        d
    }

    pub fn reset(&mut self) {
        self.current = None;
    }
}

/// At most one line per interval; counts what it kept quiet.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(suppressed since the last line)` when a line may be written now.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Errors of one connection (it went away before it was accepted): accept
/// again at once. Every other error (out of descriptors, of memory...)
/// would come back at once: back off.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// A connection accepted under its peer's cap.
pub struct Accepted {
    pub tcp: TcpStream,
    pub peer: SocketAddr,
    pub permit: PeerPermit,
}

/// The accept loop both listeners use.
pub struct Listener {
    listener: TcpListener,
    limits: Arc<ConnLimits>,
    refusals: Arc<Refusals>,
    backoff: Backoff,
    warn: LogLimiter,
}

impl Listener {
    pub fn new(
        listener: TcpListener,
        limits: Arc<ConnLimits>,
        refusals: Arc<Refusals>,
        warn_every: Duration,
    ) -> Listener {
        Listener {
            listener,
            limits,
            refusals,
            backoff: Backoff::default(),
            warn: LogLimiter::new(warn_every),
        }
    }

    /// The next connection under its peer's cap; connections over it are
    /// closed at once and counted among refusals.
    pub async fn accept(&mut self) -> Accepted {
        loop {
            match self.listener.accept().await {
                Ok((tcp, peer)) => {
                    self.backoff.reset();
                    match self.limits.try_acquire(peer.ip()) {
                        Some(permit) => {
                            let _ = tcp.set_nodelay(true);
                            return Accepted { tcp, peer, permit };
                        }
                        None => {
                            drop(tcp);
                            self.refusals
                                .record(Some(peer), Reason::TooManyFromPeer, "");
                        }
                    }
                }
                Err(e) => {
                    let pause = (!per_connection(&e)).then(|| self.backoff.next_delay());
                    if let Some(suppressed) = self.warn.hit(Instant::now()) {
                        tracing::warn!(error = %e, suppressed, pause_ms = pause.map_or(0, |d| d.as_millis() as u64), "accept failed");
                    }
                    if let Some(d) = pause {
                        tokio::time::sleep(d).await;
                    }
                }
            }
        }
    }

    /// The plaintext listener's connections, as tonic takes them.
    pub fn plaintext(self) -> impl futures::Stream<Item = io::Result<PlainStream>> {
        futures::stream::unfold(self, |mut l| async move {
            let a = l.accept().await;
            Some((
                Ok(PlainStream {
                    inner: a.tcp,
                    _permit: a.permit,
                }),
                l,
            ))
        })
    }
}

/// A plaintext connection holding its place under its peer's cap.
pub struct PlainStream {
    inner: TcpStream,
    _permit: PeerPermit,
}

impl AsyncRead for PlainStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PlainStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connected for PlainStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Descriptors beyond the connections: the runtime, the listener, log and
/// database files, the partners' simulators in `dev`.
pub const FILES_RESERVE: usize = 64;
/// Descriptors of the SQLite store: the database, its WAL and shared
/// memory files per connection (writer and readers) and the lock file.
pub const SQLITE_FILES: usize = 32;
/// Outbound connections per configured partner.
pub const FILES_PER_PARTNER: usize = 4;

/// The open files this configuration may need at once: a connection per
/// call in flight (`max_in_flight`), per long poll (`max_long_polls`, a
/// pool of their own) and per handshake in progress (`max_handshakes`), the
/// store's connections (`pool_size` and the one retention takes out of
/// the pool to hold its lock, or the SQLite files), a few per partner,
/// and a reserve. See docs/operations.md.
pub fn files_needed(cfg: &Config) -> u64 {
    let l = &cfg.limits;
    let store = cfg
        .store
        .postgres
        .as_ref()
        .map_or(SQLITE_FILES, |p| p.pool_size + 1);
    (l.max_in_flight
        + l.max_long_polls
        + l.max_handshakes
        + store
        + FILES_PER_PARTNER * cfg.partners.len()
        + FILES_RESERVE) as u64
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, and warns when the
/// result is below `needed`. Returns the soft limit now in force.
pub fn check_open_files(needed: u64) -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let mut soft = lim.current.unwrap_or(u64::MAX);
    let hard = lim.maximum.unwrap_or(u64::MAX);
    if soft < hard {
        // An unlimited hard limit still has the kernel's ceiling (nr_open).
        let target = hard.min(1 << 20);
        match setrlimit(
            Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(target),
                maximum: lim.maximum,
            },
        ) {
            Ok(()) => soft = target,
            Err(e) => tracing::warn!(error = %e, soft, hard, "cannot raise the open file limit"),
        }
    }
    if soft < needed {
        tracing::warn!(
            limit = soft,
            needed,
            "open file limit below what this configuration may need: raise it (systemd LimitNOFILE=)"
        );
    }
    soft
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collecting(
        interval: Duration,
        max_peers: usize,
    ) -> (Arc<Refusals>, Arc<Mutex<Vec<AuditEntry>>>) {
        let rows = Arc::new(Mutex::new(Vec::new()));
        let sink = rows.clone();
        let r = Refusals::new(
            Box::new(move |e| sink.lock().unwrap().push(e)),
            interval,
            max_peers,
            "tls",
            Default::default(),
        );
        (r, rows)
    }

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    /// 500 refusals from one address: one row at once with the detail, one
    /// row carrying the count at the end of the interval, none before.
    #[tokio::test(start_paused = true)]
    async fn churn_from_one_peer_is_one_row_now_and_one_per_interval() {
        let (r, rows) = collecting(Duration::from_secs(60), 16);
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(r.clone().run(rx));
        for i in 0..500u16 {
            r.record(
                addr(&format!("10.0.0.5:{}", 1000 + i)),
                Reason::Revoked,
                "invalid peer certificate: Revoked",
            );
        }
        {
            let rows = rows.lock().unwrap();
            assert_eq!(rows.len(), 1, "{rows:?}");
            assert_eq!(rows[0].party, "tls:10.0.0.5:1000");
            assert_eq!(
                rows[0].outcome,
                "refused: revoked: invalid peer certificate: Revoked"
            );
        }
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(
            rows.lock().unwrap().len(),
            1,
            "nothing before the interval ends"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        {
            let rows = rows.lock().unwrap();
            assert_eq!(rows.len(), 2, "{rows:?}");
            assert_eq!(rows[1].party, "tls:10.0.0.5");
            assert_eq!(rows[1].outcome, "refused: revoked x 499 more in 60 s");
            assert_eq!(rows[1].method, "TlsHandshake");
        }
        // A quiet interval writes nothing; the next refusal is a first again.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(rows.lock().unwrap().len(), 2);
        r.record(addr("10.0.0.5:9"), Reason::Revoked, "again");
        assert_eq!(rows.lock().unwrap().len(), 3);
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    /// Churn from many addresses: past `max_peers` they share one bucket per
    /// reason, so rows per interval stay bounded.
    #[tokio::test(start_paused = true)]
    async fn distributed_churn_is_bounded_by_the_overflow_bucket() {
        let (r, rows) = collecting(Duration::from_secs(60), 4);
        for i in 0..1000u32 {
            let ip = format!("10.{}.{}.{}:443", i >> 16, (i >> 8) & 255, i & 255);
            r.record(addr(&ip), Reason::UnknownCa, "");
            r.record(addr(&ip), Reason::UnknownCa, "");
        }
        r.flush();
        let rows = rows.lock().unwrap();
        // 4 addresses apart and the bucket: a first row and a count row each.
        assert_eq!(rows.len(), 10, "{rows:?}");
        let bucket: Vec<_> = rows
            .iter()
            .filter(|e| e.party.starts_with("tls:other-peers"))
            .collect();
        assert_eq!(bucket.len(), 2, "{bucket:?}");
        assert_eq!(
            bucket[1].outcome,
            format!("refused: unknown ca x {} more in 60 s", 2 * 996 - 1)
        );
    }

    #[test]
    fn unknown_identities_keep_their_audit_shape() {
        let (r, rows) = collecting(Duration::from_secs(60), 4);
        r.record(
            addr("10.0.0.7:5"),
            Reason::UnknownIdentity,
            "unknown mutuelle MUT-X",
        );
        r.record(
            addr("10.0.0.7:6"),
            Reason::UnknownIdentity,
            "unknown mutuelle MUT-X",
        );
        r.flush();
        let rows = rows.lock().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].party, "unknown@10.0.0.7:5");
        assert_eq!(rows[0].method, "Authenticate");
        assert_eq!(rows[0].outcome, "Unauthenticated: unknown mutuelle MUT-X");
        assert_eq!(
            rows[1].outcome,
            "refused: unknown identity x 1 more in 60 s"
        );
    }

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let seq: Vec<_> = (0..10).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(seq, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), BACKOFF_FIRST);
    }

    #[tokio::test(start_paused = true)]
    async fn the_log_limiter_counts_what_it_kept_quiet() {
        let mut l = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(l.hit(Instant::now()), Some(0));
        for _ in 0..1000 {
            assert_eq!(l.hit(Instant::now()), None);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(l.hit(Instant::now()), Some(1000));
    }

    #[test]
    fn permits_cap_each_peer_and_free_on_drop() {
        let limits = ConnLimits::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let p1 = limits.try_acquire(a).unwrap();
        let _p2 = limits.try_acquire(a).unwrap();
        assert!(limits.try_acquire(a).is_none());
        // The same address written as IPv4-mapped IPv6 is the same peer.
        assert!(
            limits
                .try_acquire("::ffff:127.0.0.1".parse().unwrap())
                .is_none()
        );
        assert!(limits.try_acquire(b).is_some());
        drop(p1);
        assert!(limits.try_acquire(a).is_some());
        // An IPv6 peer counts by its /64: a new address within it is the
        // same peer; another /64 is another.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let _q1 = limits.try_acquire(v6("2001:db8:1:2::1")).unwrap();
        let _q2 = limits.try_acquire(v6("2001:db8:1:2::2")).unwrap();
        assert!(limits.try_acquire(v6("2001:db8:1:2:ffff::9")).is_none());
        assert_eq!(limits.open_from(v6("2001:db8:1:2::77")), 2);
        assert!(limits.try_acquire(v6("2001:db8:1:3::1")).is_some());
    }
}
