//! The one way a partner is called: [`PartnerClient::call`] runs the call
//! under the partner's deadline, writes its outbound audit row and keeps the
//! partner's up/down state; [`Broker::call_partner`] adds what the store
//! does when a partner answers again (its backlog is due now). Eligibility,
//! adjudication and cancel all go through it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use passerelle_adapters::registry::LiveAdapter;
use passerelle_adapters::{AdapterError, AdapterKind};

use super::{Broker, Clock, ServiceError};
use crate::admission::PartnerSlots;
use crate::audit::{AuditSink, hash};
use crate::store::{AuditEntry, Direction};

/// A mutuelle and how to reach it.
pub struct Partner {
    pub id: String,
    pub name: String,
    pub kind: AdapterKind,
    /// Its adapter, rebuilt when its TLS material or secrets change.
    pub adapter: LiveAdapter,
    pub deadline: Duration,
    /// Its places for calls waiting on it (see [`crate::admission`]).
    pub slots: PartnerSlots,
    /// Its active probe, if configured.
    pub probe: Option<crate::config::ProbeConfig>,
}

/// What the outbound audit row, the trace span and `last_error` say of a
/// malformed answer: its detail may hold amounts (a share above the
/// remainder), which the audit log never holds (docs/security.md); the
/// claim's reason, or the caller's error, carries it.
pub(crate) const MALFORMED_SAID: &str =
    "malformed partner answer: the detail is in the claim's reason";

/// A partner call's error as the audit row and the span say it. A cancel's
/// answer holds no amount (it only says whether the partner took the
/// cancel): why it could not be read is said, where an operator watching
/// a cancel retried read only that the detail was in the claim's reason,
/// which holds the first refusal.
fn said(method: &str, e: &AdapterError) -> String {
    match e {
        AdapterError::Malformed(_)
            if method != "CancelAdjudication" && method != "CancelPreAuthorization" =>
        {
            MALFORMED_SAID.to_string()
        }
        e => e.to_string(),
    }
}

/// The method name of a partner's probe (its metrics and [`ProbeSeen`]).
pub(super) const PROBE: &str = "Probe";

/// A partner's circuit and pause, as this broker holds them (the store
/// holds them for every broker: [`crate::store::PartnerStore`]).
#[derive(Debug, Default)]
struct Circuit {
    /// Transient failures in a row.
    failures: u32,
    /// Open until then (ms); 0: closed.
    open_until_ms: i64,
    /// When this broker opened it (ms), to tell its own recent opening from
    /// a close another broker stored.
    opened_ms: i64,
    /// A trial call (half-open) is in flight.
    trial: bool,
    paused: bool,
    /// The stored open-until last adopted: a stored value is adopted once,
    /// when it changes, so that the cap below holds.
    seen_stored: i64,
    /// This broker's last probe that reached the partner: when it
    /// answered, when it failed and why. Probes write no audit row (one
    /// every `interval_ms` for ever), so `admin partners` and the console
    /// read them here ([`PartnerClient::probe_seen`]).
    probe: ProbeSeen,
}

/// A partner's last probes as this broker saw them (ms; 0: never).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeSeen {
    pub ok_ms: i64,
    pub error_ms: i64,
    pub error: String,
}

/// Whether a call may go to a partner.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Gate {
    /// Yes; `trial`: the one call of a half-open circuit.
    Go { trial: bool },
    /// No: an operator paused it.
    Paused,
    /// No: its circuit is open (or half-open with its trial in flight).
    Open,
}

/// Frees a half-open circuit's trial when its call is dropped unfinished.
struct TrialGuard<'a> {
    client: &'a PartnerClient,
    id: &'a str,
    armed: bool,
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Some(mut c) = self.client.circuit(self.id)
        {
            c.trial = false;
        }
    }
}

/// What a call's outcome did to the circuit, for the store to hold.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CircuitChange {
    Opened(i64),
    Closed,
}

/// The state label of a circuit (metrics, `admin partners`).
pub fn circuit_label(open_until_ms: i64, now_ms: i64) -> &'static str {
    match open_until_ms {
        0 => "closed",
        t if now_ms < t => "open",
        _ => "half_open",
    }
}

/// What [`Broker::reload_partners`] did.
#[derive(Debug, Default)]
pub struct PartnerReload {
    pub rebuilt: Vec<String>,
    /// Partners whose files could not be read or used, with why.
    pub failed: Vec<(String, String)>,
}

/// One call to a partner, as its outbound audit row names it.
pub(super) struct Outbound<'a> {
    /// The partner contract's method.
    pub method: &'static str,
    pub subject: String,
    /// The call's idempotency key (the row holds its hash).
    pub key: &'a str,
    /// False when no message leaves this process (a rules partner's
    /// eligibility: the inbound row already records the call).
    pub audited: bool,
}

/// What a call says of its partner.
#[derive(Debug, PartialEq, Eq)]
enum Health {
    /// Nothing new.
    Same,
    /// It was down and answered: its waiting claims may go now.
    BackUp,
}

/// The configured partners and the one way to call them.
pub struct PartnerClient {
    partners: HashMap<String, Partner>,
    /// Partners whose last call failed transiently. The first answer after
    /// that makes their waiting claims due at once (see
    /// [`Broker::call_partner`]).
    down: HashMap<String, AtomicBool>,
    /// Partners whose waiting claims could not be made due when they
    /// answered again (the store failed): the next answer does it. Not
    /// "down": the partner answered.
    owed: HashMap<String, AtomicBool>,
    /// Each partner's circuit and pause.
    circuits: HashMap<String, Mutex<Circuit>>,
    breaker: crate::config::BreakerConfig,
    spans: std::sync::Arc<crate::otel::Spans>,
    audit: AuditSink,
    clock: Clock,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// Why a call did not reach a mutuelle whose places are all taken.
pub(super) fn busy(mutuelle: &str) -> String {
    format!("mutuelle {mutuelle} is busy: too many calls are waiting on it, retry shortly")
}

impl PartnerClient {
    pub(super) fn new(
        partners: Vec<Partner>,
        audit: AuditSink,
        clock: Clock,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        breaker: crate::config::BreakerConfig,
        spans: std::sync::Arc<crate::otel::Spans>,
    ) -> Self {
        PartnerClient {
            down: partners
                .iter()
                .map(|p| (p.id.clone(), AtomicBool::default()))
                .collect(),
            owed: partners
                .iter()
                .map(|p| (p.id.clone(), AtomicBool::default()))
                .collect(),
            circuits: partners
                .iter()
                .map(|p| (p.id.clone(), Mutex::default()))
                .collect(),
            breaker,
            spans,
            partners: partners.into_iter().map(|p| (p.id.clone(), p)).collect(),
            audit,
            clock,
            metrics,
        }
    }

    fn circuit(&self, id: &str) -> Option<std::sync::MutexGuard<'_, Circuit>> {
        self.circuits
            .get(id)
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The partner's last probes, as this broker saw them.
    pub(super) fn probe_seen(&self, id: &str) -> ProbeSeen {
        self.circuit(id)
            .map(|c| c.probe.clone())
            .unwrap_or_default()
    }

    /// Whether a call may go to the partner now; a half-open circuit lets
    /// one trial through at a time.
    pub(super) fn gate(&self, id: &str, now_ms: i64) -> Gate {
        let Some(mut c) = self.circuit(id) else {
            return Gate::Go { trial: false };
        };
        if c.paused {
            Gate::Paused
        } else if c.open_until_ms == 0 {
            Gate::Go { trial: false }
        } else if now_ms < c.open_until_ms || c.trial {
            Gate::Open
        } else {
            c.trial = true;
            Gate::Go { trial: true }
        }
    }

    /// Counts a call's outcome: `failed` a transient failure. Returns the
    /// circuit's change, if any, for the store.
    pub(super) fn settle(
        &self,
        id: &str,
        trial: bool,
        failed: bool,
        now_ms: i64,
    ) -> Option<CircuitChange> {
        let mut c = self.circuit(id)?;
        if trial {
            c.trial = false;
        }
        if failed {
            c.failures = c.failures.saturating_add(1);
            let threshold = self.breaker.failures;
            let opens = trial || (threshold > 0 && c.failures >= threshold && c.open_until_ms == 0);
            if opens {
                c.open_until_ms = now_ms + self.breaker.open_ms as i64;
                c.opened_ms = now_ms;
                c.seen_stored = c.open_until_ms;
                return Some(CircuitChange::Opened(c.open_until_ms));
            }
            None
        } else {
            c.failures = 0;
            if c.open_until_ms != 0 {
                c.open_until_ms = 0;
                c.seen_stored = 0;
                return Some(CircuitChange::Closed);
            }
            None
        }
    }

    /// Takes the store's controls (every broker's pauses and circuits),
    /// read from `read_at_ms` on. A circuit this broker opened since then is
    /// kept: its row may have been read before it was written.
    pub(super) fn adopt(&self, rows: &[crate::store::PartnerControl], read_at_ms: i64) {
        for (id, circuit) in &self.circuits {
            let row = rows.iter().find(|r| &r.partner_id == id);
            let mut c = circuit.lock().unwrap_or_else(|p| p.into_inner());
            c.paused = row.is_some_and(|r| r.paused_ms > 0);
            let stored = row.map_or(0, |r| r.breaker_open_until_ms);
            if c.trial || (c.open_until_ms != 0 && c.opened_ms >= read_at_ms) {
                continue;
            }
            // What another broker stored, once (what this broker opened or
            // closed since stays): never open longer than this broker's own
            // open period from now, whatever the other's clock says.
            if stored != c.seen_stored {
                c.seen_stored = stored;
                c.open_until_ms = stored.min(read_at_ms + self.breaker.open_ms as i64);
                if stored == 0 {
                    c.failures = 0;
                }
            }
        }
    }

    /// Pauses or resumes a partner in this broker (the store holds it for
    /// the others). A resume also closes its circuit: the operator says it
    /// is back.
    pub(super) fn set_paused(&self, id: &str, paused: bool) {
        if let Some(mut c) = self.circuit(id) {
            c.paused = paused;
            if !paused {
                c.open_until_ms = 0;
                c.seen_stored = 0;
                c.failures = 0;
            }
        }
    }

    /// Whether an operator paused the partner.
    pub fn is_paused(&self, id: &str) -> bool {
        self.circuit(id).is_some_and(|c| c.paused)
    }

    /// The partner's circuit: "closed", "open" or "half_open".
    pub fn circuit_state(&self, id: &str) -> &'static str {
        let open_until = self.circuit(id).map_or(0, |c| c.open_until_ms);
        circuit_label(open_until, self.clock.now_ms())
    }

    /// Whether the partner's last call failed transiently.
    pub(super) fn is_down(&self, id: &str) -> bool {
        self.down.get(id).is_some_and(|d| d.load(Ordering::Relaxed))
    }

    pub(super) fn get(&self, id: &str) -> Option<&Partner> {
        self.partners.get(id)
    }

    pub(super) fn all(&self) -> impl Iterator<Item = &Partner> {
        self.partners.values()
    }

    /// Runs `call` to partner `mutuelle_id` under its deadline (a missed
    /// deadline is a transient `Timeout`, like the partner's own
    /// DEADLINE_EXCEEDED), writes the outbound audit row, and marks the
    /// partner down (a transient failure) or up (anything else).
    async fn call<T>(
        &self,
        mutuelle_id: &str,
        out: Outbound<'_>,
        call: impl Future<Output = Result<T, AdapterError>>,
    ) -> (Result<T, AdapterError>, Health) {
        let started = std::time::Instant::now();
        let bounded = async {
            match self.partners.get(mutuelle_id) {
                Some(p) => tokio::time::timeout(p.deadline, call)
                    .await
                    .unwrap_or(Err(AdapterError::Timeout(p.deadline.as_millis() as u64))),
                None => call.await,
            }
        };
        // A client span under the running call's (a probe runs in none).
        let res = match passerelle_adapters::trace::current() {
            Some(parent) => {
                let (span, t) = self.spans.client(out.method, &parent);
                let res = passerelle_adapters::trace::scope(t, bounded).await;
                span.end(res.as_ref().err().map(|e| said(out.method, e)));
                res
            }
            None => bounded.await,
        };
        {
            self.metrics.partner_call(
                mutuelle_id,
                out.method,
                crate::metrics::partner_outcome(&res.as_ref().map(|_| ())),
                started.elapsed(),
            );
        }
        if out.audited {
            self.audit
                .record(AuditEntry {
                    at_ms: self.clock.now_ms(),
                    direction: Direction::Out,
                    party: format!("mutuelle:{mutuelle_id}"),
                    method: out.method.to_string(),
                    subject: out.subject,
                    request_hash: hash(out.key.as_bytes()),
                    outcome: match &res {
                        Ok(_) => "ok".to_string(),
                        Err(e) => said(out.method, e),
                    },
                    trace_id: passerelle_adapters::trace::current()
                        .map(|t| t.trace_id())
                        .unwrap_or_default(),
                })
                .await;
        }
        if out.method == PROBE
            && let Some(mut c) = self.circuit(mutuelle_id)
        {
            let now = self.clock.now_ms();
            // One line when the probe starts failing and one when it
            // answers again, the first sign of an outage in the log (the
            // circuit opens only after `failures` of them).
            let was_failing = c.probe.error_ms > c.probe.ok_ms;
            match &res {
                Ok(_) => {
                    c.probe.ok_ms = now;
                    if was_failing {
                        tracing::info!(partner = mutuelle_id, "probe answers again");
                    }
                }
                Err(e) => {
                    c.probe.error_ms = now;
                    c.probe.error = said(out.method, e);
                    if !was_failing {
                        tracing::warn!(
                            partner = mutuelle_id,
                            error = %c.probe.error,
                            "probe failed: the mutuelle does not answer its probe"
                        );
                    }
                }
            }
        }
        let health = match &res {
            Err(e) if e.is_failure() => {
                self.mark_down(mutuelle_id);
                Health::Same
            }
            _ => {
                let swap = |m: &HashMap<String, AtomicBool>| {
                    m.get(mutuelle_id)
                        .is_some_and(|d| d.swap(false, Ordering::Relaxed))
                };
                // Both flags cleared: an answer after a failure owes no
                // second expedite.
                let (was_down, owed) = (swap(&self.down), swap(&self.owed));
                if was_down || owed {
                    Health::BackUp
                } else {
                    Health::Same
                }
            }
        };
        (res, health)
    }

    /// A partner answered again but its waiting claims could not be made
    /// due: the next answer tries again.
    fn owe_expedite(&self, mutuelle_id: &str) {
        if let Some(d) = self.owed.get(mutuelle_id) {
            d.store(true, Ordering::Relaxed);
        }
    }

    /// A partner's call failed transiently: it is (or may be) down.
    fn mark_down(&self, mutuelle_id: &str) {
        if let Some(d) = self.down.get(mutuelle_id) {
            d.store(true, Ordering::Relaxed);
        }
    }
}

impl Broker {
    /// Rebuilds the adapter of each partner whose TLS material or secrets
    /// changed on disk (every partner that names files, with `force`); see
    /// [`LiveAdapter`]. Returns the partners rebuilt and, for each that
    /// could not be, the error (its adapter stays in force).
    pub fn reload_partners(&self, force: bool) -> PartnerReload {
        let mut out = PartnerReload::default();
        for p in self.partners() {
            match p.adapter.reload(force) {
                Ok(true) => {
                    tracing::info!(partner = %p.id, "partner adapter rebuilt with its new files; old connections close");
                    out.rebuilt.push(p.id.clone());
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(partner = %p.id, error = %e, "partner reload failed; keeping its previous settings");
                    out.failed.push((p.id.clone(), e));
                }
            }
        }
        out
    }

    /// Calls a partner through [`PartnerClient`]. A partner that answers
    /// after being down gets the claims and cancels waiting for it made due
    /// now rather than at the end of their back-off (up to `retry.max_ms`):
    /// a mutuelle back after days offline gets its backlog at once, and the
    /// retry worker drains it.
    ///
    /// A paused partner, or one whose circuit is open, is not called: the
    /// answer is a transient `Unavailable` at once (the claim waits,
    /// PENDING), counted in the metrics, with no outbound audit row (no
    /// message left). A circuit that opens or closes is written to the
    /// store, for the other brokers and the retry worker; one that closes
    /// makes the partner's backlog due now.
    pub(super) async fn call_partner<T>(
        &self,
        mutuelle_id: &str,
        out: Outbound<'_>,
        call: impl Future<Output = Result<T, AdapterError>>,
    ) -> Result<T, AdapterError> {
        let trial = match self.partners.gate(mutuelle_id, self.clock.now_ms()) {
            Gate::Go { trial } => trial,
            held => {
                let (outcome, why) = if held == Gate::Paused {
                    (
                        "paused",
                        format!("mutuelle {mutuelle_id} is paused by an operator"),
                    )
                } else {
                    (
                        "breaker_open",
                        format!(
                            "mutuelle {mutuelle_id} is failing: its circuit is open, calls wait until it answers again"
                        ),
                    )
                };
                self.metrics.partner_held(mutuelle_id, out.method, outcome);
                return Err(AdapterError::Unavailable(why));
            }
        };
        // A trial whose caller goes away before its outcome frees the
        // half-open circuit for the next call.
        let mut pending_trial = TrialGuard {
            client: &self.partners,
            id: mutuelle_id,
            armed: trial,
        };
        let (res, health) = self.partners.call(mutuelle_id, out, call).await;
        pending_trial.armed = false;
        // An answer "not decided yet" is an answer: no failure.
        let failed = matches!(&res, Err(e) if e.is_failure());
        let change = self
            .partners
            .settle(mutuelle_id, trial, failed, self.clock.now_ms());
        match change {
            Some(CircuitChange::Opened(until)) => {
                // A half-open circuit's trial that failed opens it again:
                // said as the same outage going on, not a new one.
                if trial {
                    tracing::warn!(
                        partner = mutuelle_id,
                        open_ms = until - self.clock.now_ms(),
                        "circuit still open: its trial call failed"
                    );
                } else {
                    tracing::warn!(
                        partner = mutuelle_id,
                        open_ms = until - self.clock.now_ms(),
                        "circuit opened: calls to this mutuelle wait until it answers again"
                    );
                }
                self.store_circuit(mutuelle_id, until).await;
            }
            Some(CircuitChange::Closed) => {
                tracing::info!(
                    partner = mutuelle_id,
                    "circuit closed: the mutuelle answers again"
                );
                self.store_circuit(mutuelle_id, 0).await;
            }
            None => {}
        }
        if health == Health::BackUp || change == Some(CircuitChange::Closed) {
            self.expedite(mutuelle_id, "mutuelle answers again").await;
        }
        res
    }

    /// Writes a circuit's change to the store. A store out of reach leaves
    /// it in this broker only (logged): the others open their own on their
    /// own failures.
    async fn store_circuit(&self, partner: &str, open_until_ms: i64) {
        if let Err(e) = self.store.set_breaker(partner, open_until_ms).await {
            tracing::warn!(partner, error = %e, "cannot store the circuit's state");
        }
    }

    /// Reads every broker's pauses and circuits from the store (the retry
    /// worker does, each pass).
    pub async fn refresh_controls(&self) -> Result<(), crate::store::StoreError> {
        let _one_at_a_time = self.controls.lock().await;
        let at = self.clock.now_ms();
        let rows = self.store.partner_controls().await?;
        self.partners.adopt(&rows, at);
        Ok(())
    }

    /// Pauses a partner (`by`: the operator) or resumes it (`None`): stored
    /// for every broker, in force here at once. While paused, claims are
    /// accepted and wait (PENDING), no call and no retry goes to it; on
    /// resume, its backlog is due now.
    pub async fn pause_partner(
        &self,
        partner: &str,
        by: Option<&str>,
    ) -> Result<crate::store::PartnerControl, ServiceError> {
        self.partner(partner).map_err(|_| {
            ServiceError::invalid(
                "mutuelle_id",
                format!("{partner:?} is not a configured mutuelle"),
            )
        })?;
        let one_at_a_time = self.controls.lock().await;
        let row = self
            .store
            .set_paused(partner, by, self.clock.now_ms())
            .await?;
        self.partners.set_paused(partner, by.is_some());
        match by {
            Some(who) => tracing::warn!(partner, by = who, "partner paused by an operator"),
            None => {
                tracing::info!(partner, "partner resumed by an operator");
                // The circuit's close stored under the lock too: a refresh
                // in between would open it again from the old value.
                self.store_circuit(partner, 0).await;
                // Not the backlog's update, which may take long.
                drop(one_at_a_time);
                self.expedite(partner, "partner resumed").await;
            }
        }
        Ok(row)
    }

    /// A partner not reached, as a caller is told: paused by an operator
    /// ([`ServiceError::PartnerPaused`]), or unavailable.
    pub(super) fn unavailable(&self, mutuelle_id: &str, message: String) -> ServiceError {
        if self.partners.is_paused(mutuelle_id) {
            ServiceError::PartnerPaused(message)
        } else {
            ServiceError::PartnerUnavailable(message)
        }
    }

    /// Makes the partner's waiting claims due now; `why` heads the log line.
    async fn expedite(&self, partner: &str, why: &str) {
        match self
            .store
            .expedite(partner, self.clock.now_ms(), self.pass_lease_ms())
            .await
        {
            Ok(n) => {
                // `n` counts the claims brought forward from their
                // back-off; those due already (or within a lease) are not.
                tracing::info!(
                    partner,
                    brought_forward = n,
                    "{why}; its waiting claims are due now"
                );
                self.notify();
            }
            Err(e) => {
                // Not lost: the claims stay due at the end of their
                // back-off, and the partner's next answer tries again. The
                // store failed, not the partner: it is not said down.
                self.partners.owe_expedite(partner);
                tracing::warn!(partner, error = %e, "cannot expedite the backlog");
            }
        }
    }

    /// A configured partner, or PartnerUnavailable.
    pub(super) fn partner(&self, id: &str) -> Result<&Partner, ServiceError> {
        self.partners.get(id).ok_or_else(|| {
            ServiceError::PartnerUnavailable(format!("mutuelle {id} is not configured"))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{CircuitChange, Gate};
    use crate::store::PartnerControl;
    use passerelle_adapters::AdapterError;

    /// The circuit of one partner (defaults: 5 failures, 30 s open): it
    /// opens after 5 transient failures in a row (an answer in between
    /// starts the count again), refuses calls while open, lets exactly one
    /// trial through once the time is up (a dropped trial frees the place),
    /// closes on the trial's answer and opens again on its failure. A
    /// pause holds every call, whatever the circuit. What the store says
    /// (another broker's circuit, a pause) is adopted, except a circuit
    /// this broker opened after the store was read.
    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_tries_once_and_closes() {
        let dir = tempfile::tempdir().unwrap();
        let b = super::super::testing::broker(dir.path());
        let p = &b.partners;
        let go = Gate::Go { trial: false };
        for _ in 0..4 {
            assert_eq!(p.gate("MUT-X", 0), go);
            assert_eq!(p.settle("MUT-X", false, true, 0), None);
        }
        // An answer resets the count.
        assert_eq!(p.settle("MUT-X", false, false, 0), None);
        for _ in 0..4 {
            assert_eq!(p.settle("MUT-X", false, true, 0), None);
        }
        assert_eq!(
            p.settle("MUT-X", false, true, 1_000),
            Some(CircuitChange::Opened(31_000))
        );
        assert_eq!(p.gate("MUT-X", 30_999), Gate::Open);
        assert_eq!(p.gate("MUT-X", 31_000), Gate::Go { trial: true });
        assert_eq!(p.gate("MUT-X", 31_001), Gate::Open, "one trial at a time");
        // The trial fails: open again for 30 s.
        assert_eq!(
            p.settle("MUT-X", true, true, 31_500),
            Some(CircuitChange::Opened(61_500))
        );
        // A trial dropped before its outcome frees the half-open circuit.
        assert_eq!(p.gate("MUT-X", 61_500), Gate::Go { trial: true });
        drop(super::TrialGuard {
            client: p,
            id: "MUT-X",
            armed: true,
        });
        assert_eq!(p.gate("MUT-X", 61_501), Gate::Go { trial: true });
        assert_eq!(
            p.settle("MUT-X", true, false, 61_600),
            Some(CircuitChange::Closed)
        );
        assert_eq!(p.gate("MUT-X", 61_601), go);

        // Paused: nothing goes, whatever the circuit.
        p.set_paused("MUT-X", true);
        assert_eq!(p.gate("MUT-X", 70_000), Gate::Paused);
        p.set_paused("MUT-X", false);

        // Another broker opened it (stored): adopted.
        let row = |until| PartnerControl {
            partner_id: "MUT-X".into(),
            breaker_open_until_ms: until,
            ..Default::default()
        };
        p.adopt(&[row(100_000)], 80_000);
        assert_eq!(p.gate("MUT-X", 90_000), Gate::Open);
        // ... and closed: adopted too.
        p.adopt(&[], 95_000);
        assert_eq!(p.gate("MUT-X", 96_000), go);
        // A circuit opened here after the store was read stays open.
        for _ in 0..5 {
            p.settle("MUT-X", false, true, 97_000);
        }
        p.adopt(&[], 96_500);
        assert_eq!(p.gate("MUT-X", 97_001), Gate::Open);
        // A pause stored by another broker is adopted.
        p.adopt(
            &[PartnerControl {
                partner_id: "MUT-X".into(),
                paused_ms: 1,
                ..row(127_000)
            }],
            98_000,
        );
        assert_eq!(p.gate("MUT-X", 200_000), Gate::Paused);
        assert!(p.is_paused("MUT-X"));

        // A far-future time stored by a broker whose clock runs ahead: open
        // for this broker's own period at most, however often it is read.
        p.set_paused("MUT-X", false);
        let far = row(10_000_000);
        p.adopt(std::slice::from_ref(&far), 300_000);
        assert_eq!(p.gate("MUT-X", 329_999), Gate::Open);
        p.adopt(std::slice::from_ref(&far), 320_000);
        assert_eq!(p.gate("MUT-X", 330_000), Gate::Go { trial: true });
    }

    /// A partner is said down by its own failed calls only: when the store
    /// fails to make its waiting claims due as it answers again, the next
    /// answer tries again (it owes that), and the partner is not said
    /// down meanwhile (it answered); one answer clears both.
    #[tokio::test(start_paused = true)]
    async fn a_store_failure_on_its_return_does_not_say_the_partner_down() {
        use crate::service::partner::{Health, Outbound};
        let dir = tempfile::tempdir().unwrap();
        let b = super::super::testing::broker(dir.path());
        let p = &b.partners;
        let call = |ok: bool| {
            let out = Outbound {
                method: "Probe",
                subject: "partners".into(),
                key: "k",
                audited: false,
            };
            p.call("MUT-X", out, async move {
                if ok {
                    Ok(())
                } else {
                    Err(AdapterError::Unavailable("down".into()))
                }
            })
        };
        assert_eq!(call(false).await.1, Health::Same);
        assert!(p.is_down("MUT-X"));
        assert_eq!(call(true).await.1, Health::BackUp);
        assert!(!p.is_down("MUT-X"));
        // The expedite failed: owed, not down.
        p.owe_expedite("MUT-X");
        assert!(!p.is_down("MUT-X"));
        assert_eq!(call(true).await.1, Health::BackUp, "owed: tried again");
        assert_eq!(call(true).await.1, Health::Same, "once");
    }

    /// A broker that adopts a stored open circuit (restarted, or another
    /// replica's) says the partner down before any call of its own fails,
    /// so that the alert's five minutes do not start again at a restart.
    #[tokio::test(start_paused = true)]
    async fn a_stored_open_circuit_says_the_partner_down() {
        let dir = tempfile::tempdir().unwrap();
        let b = super::super::testing::broker(dir.path());
        let up = |b: &super::Broker| {
            b.metrics()
                .encode()
                .lines()
                .find(|l| l.starts_with("passerelle_partner_up{") && l.contains("\"MUT-X\""))
                .map(|l| l.ends_with(" 1"))
        };
        b.observe().await;
        assert_eq!(up(&b), Some(true));
        let now = b.clock().now_ms();
        b.partners.adopt(
            &[PartnerControl {
                partner_id: "MUT-X".into(),
                breaker_open_until_ms: now + 30_000,
                ..Default::default()
            }],
            now,
        );
        assert!(!b.partners.is_down("MUT-X"), "no call of its own failed");
        b.observe().await;
        assert_eq!(up(&b), Some(false));
        // Half-open, no trial answered yet: still down (no flapping that
        // would start the alert's five minutes again).
        tokio::time::advance(std::time::Duration::from_secs(31)).await;
        assert_eq!(b.partners.circuit_state("MUT-X"), "half_open");
        b.observe().await;
        assert_eq!(up(&b), Some(false));
    }

    /// A mutuelle that takes every claim and decides later (an openIMIS
    /// whose staff valuate claims).
    struct Queues;

    #[async_trait::async_trait]
    impl passerelle_adapters::Adapter for Queues {
        async fn eligibility(
            &self,
            _q: &passerelle_adapters::EligibilityQuery,
        ) -> Result<passerelle_adapters::EligibilityAnswer, AdapterError> {
            Err(AdapterError::Unavailable("not asked".into()))
        }

        async fn adjudicate(
            &self,
            _req: passerelle_adapters::AdjudicationRequest<'_>,
        ) -> Result<passerelle_adapters::PartnerAdjudication, AdapterError> {
            Err(AdapterError::Pending(
                "the mutuelle queued the claim; asking again later".into(),
            ))
        }

        async fn cancel(
            &self,
            _req: passerelle_adapters::CancelRequest<'_>,
        ) -> Result<(), AdapterError> {
            Ok(())
        }
    }

    /// A mutuelle that answers "not decided yet" answered: each claim
    /// waits and is asked again, but however many times, the partner is
    /// up, its circuit closed, its calls counted as `pending`, not as
    /// failures, and its retries never as exhausted (an openIMIS queuing
    /// every claim opened the circuit after five and said the mutuelle
    /// down, and the RetriesExhausted alert would have fired).
    #[tokio::test(start_paused = true)]
    async fn a_partner_that_queues_claims_is_up() {
        let dir = tempfile::tempdir().unwrap();
        let b = super::super::testing::broker_with_adapter(dir.path(), Arc::new(Queues));
        // Four: the test partner's places (a claim past them waits as busy).
        for i in 0..4 {
            let mut claim = crate::store::conformance::sample_claim(
                "CNSS",
                &format!("Q-{i}"),
                &format!("INV-{i}"),
            );
            claim.mutuelle_id = Some("MUT-X".into());
            let rec = b.coordinate(claim).await.unwrap();
            assert_eq!(rec.state, passerelle_domain::ClaimState::PendingPartner);
            assert!(rec.next_attempt_ms.is_some(), "asked again later");
            assert!(
                rec.last_error.contains("not decided yet"),
                "{}",
                rec.last_error
            );
        }
        // Asked again and again, past the longest back-off: retried, but
        // never counted as retries exhausted (the alert would tell an
        // operator to pause a mutuelle that answers).
        assert!(
            AdapterError::Pending("x".into())
                .to_string()
                .starts_with(passerelle_adapters::PENDING_SAID)
        );
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        for _ in 0..8 {
            tokio::time::advance(std::time::Duration::from_secs(3_600)).await;
            assert_eq!(b.retry_due(stop.clone()).await.unwrap(), 4);
        }
        assert_eq!(b.partners.circuit_state("MUT-X"), "closed");
        assert!(!b.partners.is_down("MUT-X"));
        b.observe().await;
        let metrics = b.metrics().encode();
        let count = |name: &str| {
            metrics
                .lines()
                .find(|l| l.starts_with(name) && l.contains("\"MUT-X\""))
                .and_then(|l| l.rsplit(' ').next())
                .map(|n| n.to_string())
        };
        assert_eq!(
            count("passerelle_partner_retries_total{").as_deref(),
            Some("32"),
            "{metrics}"
        );
        assert_eq!(
            count("passerelle_partner_retries_at_max_backoff_total{").as_deref(),
            Some("0"),
            "{metrics}"
        );
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("passerelle_partner_up{")
                    && l.contains("\"MUT-X\"")
                    && l.ends_with(" 1")),
            "{metrics}"
        );
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("passerelle_partner_calls_total{")
                    && l.contains("outcome=\"pending\"")
                    && l.ends_with(" 36")),
            "{metrics}"
        );
    }

    /// What SIGHUP and the file watcher do: a partner whose secret changed
    /// on disk gets its adapter rebuilt (and the old one, with its
    /// connections, dropped once its calls end); nothing changed, nothing
    /// rebuilt unless forced; a file gone keeps the adapter in force and
    /// says which partner failed.
    #[tokio::test(start_paused = true)]
    async fn partners_are_rebuilt_when_their_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "first").unwrap();
        let entry: toml::Table = toml::from_str(&format!(
            "adapter = \"grpc\"\n[grpc]\nendpoint = \"http://127.0.0.1:1\"\ntoken_file = {:?}\n",
            token.display().to_string()
        ))
        .unwrap();
        let cfg = passerelle_adapters::AdapterConfig::from_entry(entry).unwrap();
        let broker = super::super::testing::broker_with_partner(dir.path(), &cfg);
        let first = broker.partners().next().unwrap().adapter.get();
        let r = broker.reload_partners(false);
        assert!(r.rebuilt.is_empty() && r.failed.is_empty(), "{r:?}");
        std::fs::write(&token, "second").unwrap();
        let r = broker.reload_partners(false);
        assert_eq!(r.rebuilt, vec!["MUT-X".to_string()]);
        let second = broker.partners().next().unwrap().adapter.get();
        assert!(!Arc::ptr_eq(&first, &second), "a new adapter");
        assert_eq!(
            broker.reload_partners(true).rebuilt,
            vec!["MUT-X".to_string()]
        );
        // An empty token file (one being rewritten) is refused too.
        std::fs::write(&token, "  \n").unwrap();
        let r = broker.reload_partners(false);
        assert!(
            r.failed.len() == 1 && r.failed[0].1.contains("empty"),
            "{r:?}"
        );
        std::fs::remove_file(&token).unwrap();
        let r = broker.reload_partners(false);
        assert_eq!(r.failed.len(), 1, "{r:?}");
        assert!(r.failed[0].1.contains("token"), "{r:?}");
        let kept = broker.partners().next().unwrap().adapter.get();
        let third = broker.partners().next().unwrap().adapter.get();
        assert!(Arc::ptr_eq(&kept, &third), "the adapter in force stays");
    }
}
