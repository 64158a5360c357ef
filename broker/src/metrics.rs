//! The broker's metrics, in Prometheus' exposition (prometheus-client),
//! served by [`crate::ops`] on the operations listener.
//!
//! One [`Metrics`] per broker. Counters and histograms move where things
//! happen (the handler shape `api/call.rs`, the edge's refusals, the one
//! partner client, the store calls of the claim path, the audit writer, the
//! TLS acceptor's refusals); gauges that describe state (claims waiting per
//! partner, breaker and pause, pool use, certificate expiry) are read at
//! each scrape ([`crate::ops`]). Every label set is bounded: methods,
//! roles, codes, partners and files come from the code or the config, never
//! from a request (no claim, beneficiary or caller id). The names, their
//! labels and what each means are listed in docs/operations.md ("Metrics");
//! the shipped alert rules and dashboard use them (a test checks).

#![allow(
    clippy::disallowed_types,
    reason = "Prometheus samples are floats: seconds and timestamps, never money"
)]

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets, in seconds: 1 ms to 30 s (a partner's deadline is at
/// most 60 s; longer calls land in +Inf).
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// N labels, every name and value a `&'static str` (the code's words, the
/// configured partners, interned once): recording allocates nothing.
type Labels<const N: usize> = [(&'static str, &'static str); N];
type Latency<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;
/// A counter family with N labels.
pub type Counters<const N: usize> = Family<Labels<N>, Counter>;
type Gauges<const N: usize> = Family<Labels<N>, Gauge>;
type FloatGauges = Family<Vec<(&'static str, String)>, Gauge<f64, AtomicU64>>;

/// What a partner call came to, as the `outcome` label says it.
pub fn partner_outcome(res: &Result<(), &passerelle_adapters::AdapterError>) -> &'static str {
    use passerelle_adapters::AdapterError as E;
    match res {
        Ok(()) => "ok",
        Err(E::Timeout(_)) => "timeout",
        Err(E::Unavailable(_)) => "unavailable",
        Err(E::Rejected(_)) => "rejected",
        Err(E::Malformed(_)) => "malformed",
        Err(E::Unsupported(_)) => "unsupported",
        Err(E::Pending(_)) => "pending",
    }
}

/// The broker's metric families.
pub struct Metrics {
    registry: Registry,
    /// The configured partners' ids as label values (interned once: the
    /// config bounds them); any other id is "other".
    partners: std::collections::HashMap<String, &'static str>,
    grpc_handled: Counters<3>,
    grpc_seconds: Latency<2>,
    partner_calls: Counters<3>,
    partner_seconds: Latency<2>,
    partner_retries: Counters<1>,
    partner_retries_at_max: Counters<1>,
    partner_pending: Gauges<1>,
    partner_oldest: Gauges<1>,
    partner_up: Gauges<1>,
    partner_breaker: Gauges<2>,
    partner_paused: Gauges<1>,
    store_seconds: Latency<1>,
    store_errors: Counters<1>,
    store_pool: Gauges<1>,
    store_up: Gauge,
    audit_queue: Gauge,
    audit_capacity: Gauge,
    audit_dropped: Counter,
    audit_failures: Counter,
    refused: Counters<1>,
    expiry: FloatGauges,
    scrape_errors: Counter,
    worker_last_pass: Gauges<1>,
    worker_interval: Gauges<1>,
}

impl Metrics {
    /// The broker's metrics; `audit` are the audit writer's own counters,
    /// `partners` the configured partners' ids.
    pub fn new(audit: crate::audit::AuditCounters, partners: &[String]) -> Metrics {
        let mut r = Registry::default();
        let build: Family<Vec<(&'static str, String)>, Gauge> = Family::default();
        build
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
            .set(1);
        r.register(
            "passerelle_build_info",
            "The running broker's version (always 1)",
            build,
        );
        let m = Metrics {
            partners: partners
                .iter()
                .map(|p| (p.clone(), &*Box::leak(p.clone().into_boxed_str())))
                .collect(),
            grpc_handled: Family::default(),
            grpc_seconds: Family::new_with_constructor(latency),
            partner_calls: Family::default(),
            partner_seconds: Family::new_with_constructor(latency),
            partner_retries: Family::default(),
            partner_retries_at_max: Family::default(),
            partner_pending: Family::default(),
            partner_oldest: Family::default(),
            partner_up: Family::default(),
            partner_breaker: Family::default(),
            partner_paused: Family::default(),
            store_seconds: Family::new_with_constructor(latency),
            store_errors: Family::default(),
            store_pool: Family::default(),
            store_up: Gauge::default(),
            audit_queue: Gauge::default(),
            audit_capacity: Gauge::default(),
            audit_dropped: audit.dropped,
            audit_failures: audit.failures,
            refused: Family::default(),
            expiry: Family::default(),
            scrape_errors: Counter::default(),
            worker_last_pass: Family::default(),
            worker_interval: Family::default(),
            registry: Registry::default(),
        };
        r.register(
            "passerelle_grpc_server_handled",
            "Calls answered, by method, caller role and gRPC status code",
            m.grpc_handled.clone(),
        );
        r.register(
            "passerelle_grpc_server_handling_seconds",
            "Time from a call's arrival to its answer, by method and caller role",
            m.grpc_seconds.clone(),
        );
        r.register(
            "passerelle_partner_calls",
            "Calls to mutuelles' systems, by partner, method and outcome (ok, timeout, unavailable, rejected, malformed, unsupported, pending, breaker_open, paused)",
            m.partner_calls.clone(),
        );
        r.register(
            "passerelle_partner_call_duration_seconds",
            "Time of calls to mutuelles' systems, by partner and method",
            m.partner_seconds.clone(),
        );
        r.register(
            "passerelle_partner_retries",
            "Claims and cancels the retry worker sent again, by partner",
            m.partner_retries.clone(),
        );
        r.register(
            "passerelle_partner_retries_at_max_backoff",
            "Retries made after the back-off reached retry.max_ms: the claim has been failing for long (the broker never gives up on a claim; one the mutuelle last answered 'not decided yet' is not counted)",
            m.partner_retries_at_max.clone(),
        );
        r.register(
            "passerelle_partner_pending_claims",
            "Claims and cancels waiting on a partner (received, pending, cancel pending, and a cancel owed after passerelle refused its answer), read from the store at each scrape",
            m.partner_pending.clone(),
        );
        r.register(
            "passerelle_partner_oldest_pending_age_seconds",
            "Age of the oldest claim waiting on a partner (0 when none)",
            m.partner_oldest.clone(),
        );
        r.register(
            "passerelle_partner_up",
            "1 when this broker's last call to the partner succeeded or none has failed since start, 0 after a transient failure of its own, or while the partner's circuit is not closed (the circuit is stored, seen by every replica; the last call's outcome is this broker's)",
            m.partner_up.clone(),
        );
        r.register(
            "passerelle_partner_breaker_state",
            "The partner's circuit breaker: 1 for its current state (closed, open, half_open), 0 for the others",
            m.partner_breaker.clone(),
        );
        r.register(
            "passerelle_partner_paused",
            "1 when an operator paused the partner (claims stay pending, no calls)",
            m.partner_paused.clone(),
        );
        r.register(
            "passerelle_store_operation_duration_seconds",
            "Time of the store's operations on the claim path, by operation",
            m.store_seconds.clone(),
        );
        r.register(
            "passerelle_store_operation_errors",
            "Store operations that failed, by operation",
            m.store_errors.clone(),
        );
        r.register(
            "passerelle_store_connections",
            "The store's connection pool, by state (size, available, waiting)",
            m.store_pool.clone(),
        );
        r.register(
            "passerelle_store_up",
            "1 when the store answered the last scrape's check and its schema is current",
            m.store_up.clone(),
        );
        r.register(
            "passerelle_audit_queue_rows",
            "Audit rows queued for the audit writer",
            m.audit_queue.clone(),
        );
        r.register(
            "passerelle_audit_queue_capacity_rows",
            "The audit queue's bound",
            m.audit_capacity.clone(),
        );
        r.register(
            "passerelle_audit_rows_dropped",
            "Audit rows not stored because the queue was full (logged instead)",
            m.audit_dropped.clone(),
        );
        r.register(
            "passerelle_audit_append_failures",
            "Failed appends of an audit batch (retried until stored)",
            m.audit_failures.clone(),
        );
        r.register(
            "passerelle_connections_refused",
            "Connections refused before any call, by reason (TLS handshake failures, caps, unknown identities)",
            m.refused.clone(),
        );
        r.register(
            "passerelle_certificate_expiry_timestamp_seconds",
            "When a certificate stops being valid (not after) or a CRL is due for renewal (next update), as a Unix time, by kind and file",
            m.expiry.clone(),
        );
        r.register(
            "passerelle_metrics_scrape_errors",
            "Scrapes that could not read part of the state (the store, a file)",
            m.scrape_errors.clone(),
        );
        r.register(
            "passerelle_worker_last_pass_timestamp_seconds",
            "When each background task of this broker last ended a pass, as a Unix time, by task: retry (claims and cancels waiting on a mutuelle, prior authorizations' expiry) or retention (audit pruning, console sessions, proposals left approved)",
            m.worker_last_pass.clone(),
        );
        r.register(
            "passerelle_worker_interval_seconds",
            "How often each background task runs a pass, as configured (retry.poll_ms, retention.interval_s)",
            m.worker_interval.clone(),
        );
        let m = Metrics { registry: r, ..m };
        for p in partners {
            let l = [("partner", m.partner(p))];
            let _ = m.partner_retries.get_or_create(&l);
            let _ = m.partner_retries_at_max.get_or_create(&l);
        }
        m
    }

    /// A partner's id as a label value.
    fn partner(&self, id: &str) -> &'static str {
        self.partners.get(id).copied().unwrap_or("other")
    }

    /// Makes the store's error counters exist at zero, per operation.
    pub fn init_store(&self, operations: &[&'static str]) {
        for op in operations {
            let _ = self.store_errors.get_or_create(&[("operation", *op)]);
        }
    }

    /// One call answered at the gRPC edge.
    pub fn grpc_call(&self, method: &str, role: &'static str, code: tonic::Code, took: Duration) {
        let method = method_label(method);
        self.grpc_handled
            .get_or_create(&[
                ("grpc_method", method),
                ("role", role),
                ("grpc_code", code_label(code)),
            ])
            .inc();
        self.grpc_seconds
            .get_or_create(&[("grpc_method", method), ("role", role)])
            .observe(took.as_secs_f64());
    }

    /// One call to a partner.
    pub fn partner_call(
        &self,
        partner: &str,
        method: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        let partner = self.partner(partner);
        self.partner_calls
            .get_or_create(&[
                ("partner", partner),
                ("method", method),
                ("outcome", outcome),
            ])
            .inc();
        self.partner_seconds
            .get_or_create(&[("partner", partner), ("method", method)])
            .observe(took.as_secs_f64());
    }

    /// A call not made: the partner is paused or its circuit open
    /// (`outcome`); counted, not timed (it would pull the latency down).
    pub fn partner_held(&self, partner: &str, method: &'static str, outcome: &'static str) {
        self.partner_calls
            .get_or_create(&[
                ("partner", self.partner(partner)),
                ("method", method),
                ("outcome", outcome),
            ])
            .inc();
    }

    /// The retry worker sent a claim or cancel again; `at_max`: its back-off
    /// had reached `retry.max_ms`.
    pub fn partner_retry(&self, partner: &str, at_max: bool) {
        let l = [("partner", self.partner(partner))];
        self.partner_retries.get_or_create(&l).inc();
        if at_max {
            self.partner_retries_at_max.get_or_create(&l).inc();
        }
    }

    /// Claims waiting on a partner, as a scrape reads them.
    pub fn partner_waiting(&self, partner: &str, pending: u32, oldest_age_s: i64) {
        let l = [("partner", self.partner(partner))];
        self.partner_pending
            .get_or_create(&l)
            .set(i64::from(pending));
        self.partner_oldest.get_or_create(&l).set(oldest_age_s);
    }

    /// A partner's circuit ("closed", "open", "half_open") and pause.
    pub fn partner_control(&self, partner: &str, circuit: &str, paused: bool) {
        let partner = self.partner(partner);
        for s in ["closed", "open", "half_open"] {
            self.partner_breaker
                .get_or_create(&[("partner", partner), ("state", s)])
                .set(i64::from(s == circuit));
        }
        self.partner_paused
            .get_or_create(&[("partner", partner)])
            .set(i64::from(paused));
    }

    /// Whether a partner's last call went through.
    pub fn partner_health(&self, partner: &str, up: bool) {
        self.partner_up
            .get_or_create(&[("partner", self.partner(partner))])
            .set(i64::from(up));
    }

    /// One store operation of the claim path.
    pub fn store_call(&self, operation: &'static str, ok: bool, took: Duration) {
        let l = [("operation", operation)];
        self.store_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
        if !ok {
            self.store_errors.get_or_create(&l).inc();
        }
    }

    /// The pool's use and whether the store answered, as a scrape reads them.
    pub fn store_state(&self, up: bool, pool: Option<crate::store::PoolUse>) {
        self.store_up.set(i64::from(up));
        if let Some(p) = pool {
            for (state, v) in [
                ("size", p.size),
                ("available", p.available),
                ("waiting", p.waiting),
            ] {
                self.store_pool
                    .get_or_create(&[("state", state)])
                    .set(v as i64);
            }
        }
    }

    /// The audit writer's queue, as a scrape reads it.
    pub fn audit_queue(&self, queued: usize, capacity: usize) {
        self.audit_queue.set(queued as i64);
        self.audit_capacity.set(capacity as i64);
    }

    /// Counts connections refused by reason (shared with [`crate::net`]).
    pub fn refused(&self) -> Counters<1> {
        self.refused.clone()
    }

    /// A certificate's or CRL's date, as a scrape reads it.
    pub fn expiry(&self, kind: &str, file: &str, unix_s: i64) {
        self.expiry
            .get_or_create(&vec![
                ("kind", kind.to_string()),
                ("file", file.to_string()),
            ])
            .set(unix_s as f64);
    }

    /// A scrape could not read part of the state.
    pub fn scrape_error(&self) {
        self.scrape_errors.inc();
    }

    /// A background task (`task`: "retry" or "retention") ended a pass at
    /// `unix_s`; `every_s`: how often it runs one. A task stuck on a call
    /// that never returns stops moving its time (PasserelleWorkerStalled).
    pub fn worker_pass(&self, task: &'static str, unix_s: i64, every_s: i64) {
        self.worker_last_pass
            .get_or_create(&[("task", task)])
            .set(unix_s);
        self.worker_interval
            .get_or_create(&[("task", task)])
            .set(every_s);
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing to a String cannot fail; keep what was written.
            tracing::error!("metrics encoding failed");
        }
        out
    }
}

/// The role label of a caller.
pub fn role(auth: &crate::identity::Auth) -> &'static str {
    match auth {
        crate::identity::Auth::Caller(c) => c.role.as_str(),
        crate::identity::Auth::Plaintext => "plaintext",
        crate::identity::Auth::Missing => "unauthenticated",
    }
}

/// The role label of an audit party (`scheme:CNSS@10.0.0.5:4242`): one of
/// a fixed set, whatever the party says.
pub fn role_of_party(party: &str) -> &'static str {
    match party.split([':', '@']).next().unwrap_or_default() {
        "scheme" => "scheme",
        "mutuelle" => "mutuelle",
        "operator" => "operator",
        "plaintext" => "plaintext",
        _ => "unauthenticated",
    }
}

/// A method name as a label: one of the contracts' methods (the edge reads
/// it from the request's path, which a caller chooses), else "other", so
/// that no caller can grow the label set.
fn method_label(method: &str) -> &'static str {
    static METHODS: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    let known = METHODS.get_or_init(|| {
        // Interned once: the contracts' method names, a few dozen.
        passerelle_proto::json::pool()
            .services()
            .flat_map(|s| {
                s.methods()
                    .map(|m| m.name().to_string())
                    .collect::<Vec<_>>()
            })
            .map(|n| &*Box::leak(n.into_boxed_str()))
            .collect()
    });
    known.get(method).copied().unwrap_or("other")
}

/// A status code as its label value (tonic's names, as go-grpc-prometheus
/// writes them).
fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "Ok",
        C::Cancelled => "Cancelled",
        C::Unknown => "Unknown",
        C::InvalidArgument => "InvalidArgument",
        C::DeadlineExceeded => "DeadlineExceeded",
        C::NotFound => "NotFound",
        C::AlreadyExists => "AlreadyExists",
        C::PermissionDenied => "PermissionDenied",
        C::ResourceExhausted => "ResourceExhausted",
        C::FailedPrecondition => "FailedPrecondition",
        C::Aborted => "Aborted",
        C::OutOfRange => "OutOfRange",
        C::Unimplemented => "Unimplemented",
        C::Internal => "Internal",
        C::Unavailable => "Unavailable",
        C::DataLoss => "DataLoss",
        C::Unauthenticated => "Unauthenticated",
    }
}
