//! The broker's TOML configuration (`passerelle serve --config FILE`).
//!
//! Every table denies unknown keys, so that a typo is an error that names the
//! key and the file instead of a setting silently ignored.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use passerelle_adapters::{AdapterConfig, AdapterKind};
use passerelle_domain::Product;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to serve on. Port 0 picks a free port; the bound address is
    /// printed on stdout. Default "127.0.0.1:50051".
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Not a key of the file: where the broker's clock starts (ms since
    /// the epoch) when a test gives one (`dev --clock-start-ms`); else the
    /// system's clock.
    #[serde(skip)]
    pub clock_start_ms: Option<i64>,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Mutual TLS on the listener; required unless `plaintext = true`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Serve without TLS, for development on a loopback address only: no
    /// client identity, every request trusted as the party it names.
    #[serde(default)]
    pub plaintext: bool,
    /// Operators allowed to call the administration methods, by the id in
    /// their certificate (`urn:passerelle:operator:<id>`).
    #[serde(default)]
    pub operators: Vec<OperatorConfig>,
    /// The schemes (and delegates) allowed to call.
    pub schemes: Vec<SchemeConfig>,
    /// The mutuelles passerelle reaches.
    #[serde(default, deserialize_with = "partners")]
    pub partners: Vec<PartnerConfig>,
    /// Products of rules partners (mutuelles with no system), loaded into the
    /// store at start-up. A version already used by a claim cannot change.
    #[serde(default)]
    pub products: Vec<Product>,
    /// The operations listener: /metrics, /healthz, /readyz. Without this
    /// table there is none.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// The console (docs/console.md): HTTPS with the `[tls]` certificate;
    /// without this table there is none.
    #[serde(default)]
    pub console: Option<ConsoleConfig>,
    /// The broker's log lines.
    #[serde(default)]
    pub log: LogConfig,
    /// The partners' circuit breakers.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Spans exported over OTLP (a build with the `otlp` feature).
    #[serde(default)]
    pub traces: Option<TracesConfig>,
}

/// `[traces]`: where the broker's spans go (docs/operations.md, "Traces").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    /// An OTLP/gRPC collector, for example "http://127.0.0.1:4317".
    pub otlp_endpoint: String,
}

/// `[breaker]`: when a partner's circuit opens, and for how long
/// (docs/operations.md, "Partner health"). While open, calls to the partner
/// are not made: claims answer PENDING at once and wait; the retry worker
/// leaves them alone. When `open_ms` has passed, one call (the partner's
/// probe, or the next claim) is let through: an answer closes the circuit,
/// a failure opens it again.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive transient failures (missed deadlines, unreachable) that
    /// open the circuit; 0 never opens it. Default 5, at most 1000.
    pub failures: u32,
    /// How long the circuit stays open before a trial call, in ms. Default
    /// 30000; 1000 to 3600000.
    pub open_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            open_ms: 30_000,
        }
    }
}

/// A partner's active probe (`[partners.probe]`): an eligibility question
/// about a test member, asked every `interval_s`, so that a partner that
/// goes down is seen before claims wait on it, and an open circuit is
/// tried again without waiting for a claim.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The scheme and beneficiary of a test member the partner knows.
    pub scheme: String,
    pub beneficiary: String,
    /// Its member number at the partner, when the adapter needs one.
    #[serde(default)]
    pub member_number: Option<String>,
    /// Seconds between probes. Default 30; 1 to 3600.
    #[serde(default = "default_probe_interval")]
    pub interval_s: u64,
}

fn default_probe_interval() -> u64 {
    30
}

/// `[console]`: the web console for people (docs/console.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Its address, apart from the gRPC and operations listeners. Always
    /// HTTPS, with the broker's `[tls]` certificate and no client
    /// certificate (people sign in with a password). Port 0 picks a free
    /// port (printed at start).
    pub listen: SocketAddr,
}

/// `[metrics]`: the operations listener (docs/operations.md, "Metrics").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Its address, separate from the gRPC listener's. On a loopback
    /// address it serves plain HTTP; on any other it serves HTTPS with the
    /// broker's `[tls]` certificate and requires a client certificate from
    /// the broker's client CA (CRLs checked), so `[tls]` is then required.
    /// Port 0 picks a free port (printed at start).
    pub listen: SocketAddr,
    /// HTTPS on a loopback address too (`true`); `false` is refused on any
    /// other address. Default: HTTPS exactly when not on loopback.
    #[serde(default)]
    pub tls: Option<bool>,
}

impl MetricsConfig {
    /// Whether the operations listener serves HTTPS.
    pub fn over_tls(&self) -> bool {
        self.tls.unwrap_or(!self.listen.ip().is_loopback())
    }
}

/// `[log]`: how log lines are written (stderr; `RUST_LOG` filters them).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// "text" (default) or "json" (one JSON object per line). The command
    /// line's `--log-format` wins.
    pub format: LogFormat,
}

/// A log format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; colours only on a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:50051".parse().expect("valid address")
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Path of the SQLite database file, relative to the config file's
    /// folder. Default "passerelle.db". Ignored when [store.postgres] is set.
    #[serde(default)]
    pub sqlite: Option<PathBuf>,
    /// PostgreSQL, the production store; several brokers may share it.
    #[serde(default)]
    pub postgres: Option<PostgresConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL, "postgres://user:password@host:5432/database".
    pub url: String,
    /// Schema holding passerelle's tables. Default "public".
    #[serde(default)]
    pub schema: Option<String>,
    /// Connections per broker. Default 16.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Opening a connection, in ms. Default 2000.
    #[serde(default = "default_pg_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Waiting for a free pooled connection, in ms; past it the call fails
    /// with UNAVAILABLE instead of queueing. Default 2000.
    #[serde(default = "default_pg_wait_ms")]
    pub wait_timeout_ms: u64,
    /// Longest statement, in ms (PostgreSQL statement_timeout). Default 10000.
    #[serde(default = "default_pg_statement_ms")]
    pub statement_timeout_ms: u64,
    /// TLS to the database (rustls, ring). Without it, plaintext.
    #[serde(default)]
    pub tls: Option<PostgresTls>,
}

fn default_pool_size() -> usize {
    16
}
fn default_pg_connect_ms() -> u64 {
    2000
}
fn default_pg_wait_ms() -> u64 {
    2000
}
fn default_pg_statement_ms() -> u64 {
    10_000
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTls {
    /// PEM file of the CA(s) that signed the database server's certificate,
    /// relative to the config file's folder.
    pub ca_file: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Audit rows older than this many days are deleted, except those of
    /// claims not final yet (see docs/operations.md). 0 keeps everything.
    /// Default 400.
    pub audit_days: u32,
    /// How often the pruning job runs, in seconds, and with it the pass
    /// that applies proposals left approved (`Broker::apply_left_approved`).
    /// Default 3600.
    pub interval_s: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            audit_days: 400,
            interval_s: 3600,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// First back-off after a partner missed its deadline, in ms. Doubles
    /// at each attempt. Default 1000.
    pub base_ms: u64,
    /// Longest back-off, in ms. Default 300000 (5 minutes).
    pub max_ms: u64,
    /// How often the retry worker looks for due claims, in ms. Default 500.
    pub poll_ms: u64,
    /// Claims the worker takes at once. Default 32.
    pub batch: u32,
    /// Most claims the worker resumes per second (0: no limit). Default
    /// 2000. A backlog after a mutuelle's outage drains at this pace, so
    /// that eligibility checks at the counter keep their latency meanwhile.
    pub max_per_second: u32,
    /// Niceness of the worker's thread (0 to 19; 0: the same priority as
    /// live calls). Default 10: on a busy machine the kernel serves live
    /// calls first and the backlog with what they leave.
    pub nice: i32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            base_ms: 1000,
            max_ms: 300_000,
            poll_ms: 500,
            batch: 32,
            max_per_second: 2000,
            nice: 10,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request message accepted, in bytes; larger ones get
    /// RESOURCE_EXHAUSTED. Default 4 MiB.
    pub max_message_bytes: usize,
    /// Concurrent calls (HTTP/2 streams) on one connection. Default 100.
    pub max_concurrent_streams: u32,
    /// Longest a call may take on the server, in ms; then it is cancelled.
    /// Default 30000.
    pub request_timeout_ms: u64,
    /// Largest request header block, in bytes. Default 16384.
    pub max_header_bytes: u32,
    /// Calls handled at once across all connections; past it a call is
    /// answered RESOURCE_EXHAUSTED at once instead of queueing. Default 1024.
    pub max_in_flight: usize,
    /// Of those, calls of one caller identity at once (a scheme, a mutuelle,
    /// an operator), so that one caller's burst never takes every place.
    /// Default 256, a quarter of `max_in_flight`.
    pub max_in_flight_per_caller: usize,
    /// Long polls (ListChangedClaims with a wait) at once, in a pool of their
    /// own that takes none of `max_in_flight`. Default 256.
    pub max_long_polls: usize,
    /// Long polls of one caller at once. Default 8.
    pub max_long_polls_per_caller: usize,
    /// Calls waiting on one remote mutuelle at once (eligibility, claims,
    /// cancels, retries): a hung partner ties up at most this many; past it,
    /// eligibility answers UNAVAILABLE and a claim is stored for the retry
    /// worker. Not applied to `rules` mutuelles (answered in this process).
    /// Default 128.
    pub max_calls_per_partner: usize,
    /// Open connections from one peer IP address, TLS handshakes in
    /// progress included; past it a new connection is closed at once and
    /// counted among refusals. Schemes and mutuelles may sit behind one NAT
    /// address: a tonic or grpc client keeps one to a few connections, so
    /// 64 leaves room for a dozen partners behind one address while one
    /// address cannot hold the broker's descriptors. Default 64.
    pub max_connections_per_peer: usize,
    /// TLS handshakes in progress at once, across all peers; past it a new
    /// connection is closed at once and counted among refusals. Default 256.
    pub max_handshakes: usize,
    /// Refused handshakes, connections over a cap and unknown identities
    /// are counted per (peer address, reason) over this many seconds: the
    /// first of each is audited and logged at once, the rest as one row and
    /// one line with their count at the end of the interval. Default 60.
    pub refusal_interval_s: u64,
    /// (peer address, reason) pairs counted apart in one interval; refusals
    /// past it share one "other-peers" row per reason, so that churn from
    /// many addresses stays bounded too. Default 256.
    pub refusal_peers: usize,
    /// At most one warning per this many seconds when accepting a
    /// connection fails (out of file descriptors, of memory...), with the
    /// count of the failures left unsaid. Default 10.
    pub accept_warn_interval_s: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 100,
            request_timeout_ms: 30_000,
            max_header_bytes: 16 * 1024,
            max_in_flight: 1024,
            max_in_flight_per_caller: 256,
            max_long_polls: 256,
            max_long_polls_per_caller: 8,
            max_calls_per_partner: 128,
            max_connections_per_peer: 64,
            max_handshakes: 256,
            refusal_interval_s: 60,
            refusal_peers: 256,
            accept_warn_interval_s: 10,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The broker's certificate chain (PEM), relative to the config's folder.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// CA(s) whose client certificates are accepted (PEM).
    pub client_ca: PathBuf,
    /// Certificate revocation lists (PEM) honoured for client certificates.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// How often the files are checked for changes, in seconds; a change
    /// reloads them without a restart (so does SIGHUP). 0: SIGHUP only.
    /// Default 10.
    #[serde(default = "default_reload_s")]
    pub reload_interval_s: u64,
    /// Longest TLS handshake, in ms. Default 10000.
    #[serde(default = "default_handshake_ms")]
    pub handshake_timeout_ms: u64,
}

fn default_reload_s() -> u64 {
    10
}
fn default_handshake_ms() -> u64 {
    10_000
}

impl TlsConfig {
    /// The files, resolved against the config's folder.
    pub fn files(&self, base: &Path) -> crate::tls::TlsFiles {
        let r = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        crate::tls::TlsFiles {
            cert: r(&self.cert),
            key: r(&self.key),
            client_ca: r(&self.client_ca),
            crls: self.crls.iter().map(r).collect(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// The operator's id, as in its certificate.
    pub id: String,
    /// Who it is, for the record.
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemeConfig {
    /// Scheme id as callers send it, for example "CNSS" or "CMSS".
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// ISO 4217 currency of every amount the scheme sends, for example "XOF".
    pub currency: String,
    /// The parent scheme of a delegate (CMSS and INPS under CANAM).
    #[serde(default)]
    pub parent: Option<String>,
}

/// One `[[partners]]` entry. Its keys other than `id`, `name` and
/// `deadline_ms` are the adapter's: `adapter` and that adapter's table
/// (`[partners.grpc]`...), read by the adapters' registry, which refuses any
/// other key.
#[derive(Clone, Debug)]
pub struct PartnerConfig {
    /// Mutuelle id, for example "MUT-SOLIDARITE".
    pub id: String,
    /// Display name.
    pub name: String,
    /// How long the broker waits for this partner before answering PENDING,
    /// in ms. Default: the adapter table's timeout_ms, or 2000.
    pub deadline_ms: Option<u64>,
    /// `adapter = "rules" | "grpc" | "fhir-r4" | "xml-http"` and its table.
    pub adapter: AdapterConfig,
    /// Its active probe, if any.
    pub probe: Option<ProbeConfig>,
}

impl<'de> Deserialize<'de> for PartnerConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        fn field<T: serde::de::DeserializeOwned, E: Error>(
            key: &str,
            v: toml::Value,
        ) -> Result<T, E> {
            v.try_into()
                .map_err(|e: toml::de::Error| E::custom(format!("{key}: {}", e.message())))
        }
        let mut entry = toml::Table::deserialize(d)?;
        let id: String = match entry.remove("id") {
            Some(v) => field("id", v)?,
            None => return Err(D::Error::missing_field("id")),
        };
        let name = match entry.remove("name") {
            Some(v) => field("name", v)?,
            None => String::new(),
        };
        let deadline_ms = match entry.remove("deadline_ms") {
            Some(v) => Some(field("deadline_ms", v)?),
            None => None,
        };
        let allow_plaintext: bool = match entry.remove("allow_plaintext") {
            Some(v) => field("allow_plaintext", v)?,
            None => false,
        };
        let probe: Option<ProbeConfig> = match entry.remove("probe") {
            Some(v) => Some(field("probe", v)?),
            None => None,
        };
        if let Some(p) = &probe
            && !(1..=3600).contains(&p.interval_s)
        {
            return Err(D::Error::custom(format!(
                "probe.interval_s: {} is out of range 1 to 3600",
                p.interval_s
            )));
        }
        let adapter = AdapterConfig::from_entry(entry).map_err(D::Error::custom)?;
        adapter
            .check_transport(allow_plaintext)
            .map_err(|e| D::Error::custom(format!("partner {id}: {e}")))?;
        Ok(PartnerConfig {
            id,
            name,
            deadline_ms,
            adapter,
            probe,
        })
    }
}

impl PartnerConfig {
    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms
            .or(self.adapter.timeout_ms())
            .unwrap_or(2000)
    }
}

/// `[[partners]]`, with an entry's error prefixed by its index
/// (`partners[1].grpc: adapter "grpc" needs a [partners.grpc] table ...`).
fn partners<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PartnerConfig>, D::Error> {
    struct Entries;
    impl<'de> serde::de::Visitor<'de> for Entries {
        type Value = Vec<PartnerConfig>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("[[partners]] entries")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            loop {
                match seq.next_element::<PartnerConfig>() {
                    Ok(Some(p)) => out.push(p),
                    Ok(None) => return Ok(out),
                    Err(e) => {
                        let e = e.to_string();
                        let e = e.trim_end();
                        // "grpc: ..." names a key of the entry; serde's own
                        // messages ("missing field `id`") do not.
                        let key = e.split_once(": ").is_some_and(|(k, _)| {
                            !k.is_empty()
                                && k.chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        });
                        let sep = if key { "." } else { ": " };
                        return Err(serde::de::Error::custom(format!(
                            "partners[{}]{sep}{e}",
                            out.len()
                        )));
                    }
                }
            }
        }
    }
    d.deserialize_seq(Entries)
}

/// A configuration error, naming the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError {
            file: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let cfg: Config =
            toml::from_str(&text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        cfg.check().map_err(err)?;
        Ok(cfg)
    }

    /// The SQLite path, resolved against the config file's folder.
    pub fn sqlite_path(&self, base: &Path) -> PathBuf {
        let p = self
            .store
            .sqlite
            .clone()
            .unwrap_or_else(|| PathBuf::from("passerelle.db"));
        if p.is_absolute() { p } else { base.join(p) }
    }

    /// Cross-field checks; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        match (&self.tls, self.plaintext) {
            (Some(_), true) => return Err("plaintext: cannot be true when [tls] is set".into()),
            (None, false) => {
                return Err("tls: a [tls] table is required (or plaintext = true, on a loopback address only)".into());
            }
            (None, true) if !self.listen.ip().is_loopback() => {
                return Err(format!(
                    "plaintext: only allowed on a loopback address, not {}",
                    self.listen
                ));
            }
            _ => {}
        }
        if self.traces.is_some() && !cfg!(feature = "otlp") {
            return Err("traces.otlp_endpoint: this passerelle was built without OTLP export; install it with `cargo install --path broker --features otlp`".into());
        }
        if self.breaker.failures > 1000 {
            return Err(format!(
                "breaker.failures: {} is out of range 0 to 1000",
                self.breaker.failures
            ));
        }
        if !(1000..=3_600_000).contains(&self.breaker.open_ms) {
            return Err(format!(
                "breaker.open_ms: {} is out of range 1000 to 3600000",
                self.breaker.open_ms
            ));
        }
        for (i, p) in self.partners.iter().enumerate() {
            if let Some(probe) = &p.probe
                && !self.schemes.iter().any(|s| s.id == probe.scheme)
            {
                return Err(format!(
                    "partners[{i}].probe.scheme: {:?} is not a configured scheme",
                    probe.scheme
                ));
            }
        }
        if let Some(m) = &self.metrics {
            if m.listen == self.listen && m.listen.port() != 0 {
                return Err(format!(
                    "metrics.listen: {} is the gRPC listener's address; give the operations listener its own",
                    m.listen
                ));
            }
            if !m.listen.ip().is_loopback() && m.tls == Some(false) {
                return Err(format!(
                    "metrics.tls: false is only allowed on a loopback address, not {}",
                    m.listen
                ));
            }
            if m.over_tls() && self.tls.is_none() {
                return Err(format!(
                    "metrics.listen: {} is served over TLS (not a loopback address, or metrics.tls = true), which needs a [tls] table",
                    m.listen
                ));
            }
        }
        if let Some(c) = &self.console {
            if c.listen == self.listen && c.listen.port() != 0 {
                return Err(format!(
                    "console.listen: {} is the gRPC listener's address; give the console its own",
                    c.listen
                ));
            }
            if self
                .metrics
                .as_ref()
                .is_some_and(|m| m.listen == c.listen && c.listen.port() != 0)
            {
                return Err(format!(
                    "console.listen: {} is the operations listener's address; give the console its own",
                    c.listen
                ));
            }
            if self.tls.is_none() {
                return Err(
                    "console.listen: the console is served over HTTPS only, which needs a [tls] table"
                        .into(),
                );
            }
        }
        let l = &self.limits;
        for (name, v) in [
            ("max_in_flight", l.max_in_flight),
            ("max_concurrent_streams", l.max_concurrent_streams as usize),
            ("max_in_flight_per_caller", l.max_in_flight_per_caller),
            ("max_long_polls", l.max_long_polls),
            ("max_long_polls_per_caller", l.max_long_polls_per_caller),
            ("max_calls_per_partner", l.max_calls_per_partner),
        ] {
            if v == 0 {
                return Err(format!("limits: {name} must be more than 0"));
            }
        }
        let l = &self.limits;
        if l.max_connections_per_peer == 0
            || l.max_handshakes == 0
            || l.refusal_interval_s == 0
            || l.refusal_peers == 0
            || l.accept_warn_interval_s == 0
        {
            return Err("limits: max_connections_per_peer, max_handshakes, refusal_interval_s, refusal_peers and accept_warn_interval_s must be more than 0".into());
        }
        if self.schemes.is_empty() {
            return Err("schemes: at least one [[schemes]] entry is needed".into());
        }
        let mut ids = HashSet::new();
        for (i, s) in self.schemes.iter().enumerate() {
            if s.id.trim().is_empty() {
                return Err(format!("schemes[{i}].id: must not be empty"));
            }
            if !ids.insert(s.id.as_str()) {
                return Err(format!("schemes[{i}].id: {:?} is listed twice", s.id));
            }
            if !passerelle_domain::money::is_currency_code(&s.currency) {
                return Err(format!(
                    "schemes[{i}].currency: {:?} is not an ISO 4217 code",
                    s.currency
                ));
            }
        }
        for (i, s) in self.schemes.iter().enumerate() {
            if let Some(p) = &s.parent
                && (!ids.contains(p.as_str()) || p == &s.id)
            {
                return Err(format!(
                    "schemes[{i}].parent: {p:?} is not another configured scheme"
                ));
            }
        }
        let mut pids = HashSet::new();
        for (i, p) in self.partners.iter().enumerate() {
            if p.id.trim().is_empty() {
                return Err(format!("partners[{i}].id: must not be empty"));
            }
            if !pids.insert(p.id.as_str()) {
                return Err(format!("partners[{i}].id: {:?} is listed twice", p.id));
            }
            if p.deadline_ms() == 0 {
                return Err(format!("partners[{i}].deadline_ms: must be more than 0"));
            }
        }
        for (i, prod) in self.products.iter().enumerate() {
            let Some(partner) = self.partners.iter().find(|p| p.id == prod.mutuelle_id) else {
                return Err(format!(
                    "products[{i}].mutuelle_id: {:?} is not a configured partner",
                    prod.mutuelle_id
                ));
            };
            if partner.adapter.kind() != AdapterKind::Rules {
                return Err(format!(
                    "products[{i}].mutuelle_id: {:?} is a {} partner, which keeps its own products",
                    prod.mutuelle_id,
                    partner.adapter.kind().as_str()
                ));
            }
            if let Some((field, problem)) = prod.check().into_iter().next() {
                return Err(format!("products[{i}].{field}: {problem}"));
            }
        }
        if let Some(pg) = &self.store.postgres {
            if !pg.url.starts_with("postgres://") && !pg.url.starts_with("postgresql://") {
                return Err("store.postgres.url: must start with postgres://".into());
            }
            // Bounds (docs/configuration.md): a pool of 1 to 256 connections
            // per broker (replicas × pool_size stays under the server's
            // max_connections); every wait ends, and 0, which PostgreSQL
            // takes as "no timeout", is refused.
            if !(1..=256).contains(&pg.pool_size) {
                return Err(format!(
                    "store.postgres.pool_size: {} is not from 1 to 256",
                    pg.pool_size
                ));
            }
            for (key, v, max) in [
                ("connect_timeout_ms", pg.connect_timeout_ms, 60_000),
                ("wait_timeout_ms", pg.wait_timeout_ms, 60_000),
                ("statement_timeout_ms", pg.statement_timeout_ms, 3_600_000),
            ] {
                if !(1..=max).contains(&v) {
                    return Err(format!("store.postgres.{key}: {v} is not from 1 to {max}"));
                }
            }
            if let Some(s) = &pg.schema
                && (s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err("store.postgres.schema: letters, digits and _ only".into());
            }
        }
        if self.retention.interval_s == 0 {
            return Err("retention.interval_s: must be more than 0".into());
        }
        if self.retry.base_ms == 0 || self.retry.max_ms < self.retry.base_ms {
            return Err("retry: base_ms must be > 0 and max_ms >= base_ms".into());
        }
        if !(0..=19).contains(&self.retry.nice) {
            return Err(format!(
                "retry.nice: {} is not a niceness from 0 to 19 (a broker may lower its worker's priority, not raise it)",
                self.retry.nice
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(s: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, s).unwrap();
        Config::load(&p)
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let e = load_str("listen = \"127.0.0.1:0\"\nlisten_port = 4\n[[schemes]]\nid=\"CNSS\"\ncurrency=\"XOF\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.toml"), "{e}");
        assert!(e.contains("listen_port"), "{e}");
    }

    #[test]
    fn the_retry_worker_may_only_lower_its_priority() {
        for bad in ["-5", "20"] {
            let e = load_str(&format!(
                "plaintext = true\n[retry]\nnice = {bad}\n[[schemes]]\nid=\"CNSS\"\ncurrency=\"XOF\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains("retry.nice"), "{e}");
        }
        let ok = load_str(
            "plaintext = true\n[retry]\nnice = 0\n[[schemes]]\nid=\"CNSS\"\ncurrency=\"XOF\"\n",
        );
        assert_eq!(ok.unwrap().retry.nice, 0);
    }

    #[test]
    fn a_table_given_in_part_keeps_the_other_defaults() {
        let c = load_str(
            "plaintext = true\n[limits]\nmax_in_flight = 7\n[retry]\nbatch = 3\n[retention]\naudit_days = 0\n[[schemes]]\nid=\"CNSS\"\ncurrency=\"XOF\"\n",
        )
        .unwrap();
        assert_eq!(c.limits.max_in_flight, 7);
        assert_eq!(c.limits.max_message_bytes, 4 * 1024 * 1024);
        assert_eq!(c.limits.refusal_peers, 256);
        assert_eq!(
            (c.retry.batch, c.retry.base_ms, c.retry.nice),
            (3, 1000, 10)
        );
        assert_eq!((c.retention.audit_days, c.retention.interval_s), (0, 3600));
    }

    /// Adapters are registered in one place: outside tests, the broker
    /// names no adapter type (but `rules`, which it adjudicates itself) and
    /// no adapter's settings; it goes through `AdapterConfig`.
    #[test]
    fn the_broker_names_no_adapter_type() {
        let files = crate::source_guard::production_files("");
        assert!(files.len() > 40, "{} files read", files.len());
        for (path, code) in files {
            for needle in [
                "AdapterKind::Grpc",
                "AdapterKind::FhirR4",
                "AdapterKind::XmlHttp",
                "AdapterConfig::Rules",
                "AdapterConfig::Grpc",
                "AdapterConfig::FhirR4",
                "AdapterConfig::XmlHttp",
                "GrpcConfig",
                "FhirConfig",
                "XmlConfig",
                "RulesConfig",
            ] {
                assert!(!code.contains(needle), "{} names {needle}", path.display());
            }
        }
    }

    #[test]
    fn tls_is_required_and_plaintext_only_on_loopback() {
        let e = load_str("[[schemes]]\nid=\"CNSS\"\ncurrency=\"XOF\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls: a [tls] table is required"), "{e}");
        let e = load_str("listen = \"0.0.0.0:50051\"\nplaintext = true\n[[schemes]]\nid=\"CNSS\"\ncurrency=\"XOF\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("plaintext: only allowed on a loopback address"),
            "{e}"
        );
    }

    /// A partner reached over http:// on another machine is refused at
    /// start, naming the fix, unless its entry says the network is private;
    /// this machine's addresses stay allowed, and https:// needs no word.
    #[test]
    fn a_partner_in_plaintext_across_a_network_is_refused_unless_said() {
        let entry = |url: &str, extra: &str| {
            format!(
                "plaintext = true\n[[schemes]]\nid=\"CNSS\"\ncurrency=\"XOF\"\n[[partners]]\nid=\"M\"\nadapter=\"grpc\"\n{extra}[partners.grpc]\nendpoint=\"{url}\"\n"
            )
        };
        for url in [
            "http://10.0.0.5:50061",
            "http://mutuelle.lan",
            "http://[fd00::5]:50061",
        ] {
            let e = load_str(&entry(url, "")).unwrap_err().to_string();
            assert!(
                e.contains("partners[0]: partner M: ") && e.contains("allow_plaintext = true"),
                "{url}: {e}"
            );
            assert!(
                load_str(&entry(url, "allow_plaintext = true\n")).is_ok(),
                "{url}"
            );
        }
        for url in [
            "http://127.0.0.1:50061",
            "http://localhost:50061",
            "http://[::1]:50061",
        ] {
            assert!(load_str(&entry(url, "")).is_ok(), "{url}");
        }
        // The same for a FHIR partner's base_url.
        let fhir = "plaintext = true\n[[schemes]]\nid=\"CNSS\"\ncurrency=\"XOF\"\n[[partners]]\nid=\"F\"\nadapter=\"fhir-r4\"\n[partners.fhir]\nbase_url=\"http://192.168.1.20/api_fhir_r4\"\n";
        let e = load_str(fhir).unwrap_err().to_string();
        assert!(e.contains("allow_plaintext"), "{e}");
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let e = load_str("plaintext = true\n[[schemes]]\nid=\"CNSS\"\ncurrency=\"xof\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("schemes[0].currency"), "{e}");
        let e = load_str(
            "plaintext = true\n[[schemes]]\nid=\"CNSS\"\ncurrency=\"XOF\"\n[[partners]]\nid=\"M\"\nadapter=\"grpc\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("partners[0].grpc"), "{e}");
        let e = load_str(
            "plaintext = true\n[[schemes]]\nid=\"CMSS\"\ncurrency=\"XOF\"\nparent=\"CANAM\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("schemes[0].parent"), "{e}");
    }

    #[test]
    fn postgres_pool_and_timeouts_are_bounded() {
        let base = "plaintext = true\n[[schemes]]\nid=\"CNSS\"\ncurrency=\"XOF\"\n\
                    [store.postgres]\nurl=\"postgres://x@127.0.0.1/db\"\n";
        assert!(load_str(base).is_ok());
        for (line, key) in [
            ("pool_size = 0", "store.postgres.pool_size"),
            ("pool_size = 257", "store.postgres.pool_size"),
            ("wait_timeout_ms = 0", "store.postgres.wait_timeout_ms"),
            (
                "connect_timeout_ms = 60001",
                "store.postgres.connect_timeout_ms",
            ),
            (
                "statement_timeout_ms = 0",
                "store.postgres.statement_timeout_ms",
            ),
        ] {
            let e = load_str(&format!("{base}{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{line}: {e}");
        }
    }
}
