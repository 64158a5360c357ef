//! The audit writer: calls record their audit rows on a bounded channel; one
//! task appends them in batches (one transaction per batch), so that the hot
//! path never waits for an audit fsync of its own. A batch gathers rows for
//! up to `LINGER` after its first one (or until it is full, or someone
//! flushes): under load that is one commit every few milliseconds instead of
//! one per handful of calls, which was the largest store cost of an
//! eligibility check. The channel is bounded: when the store falls behind,
//! callers wait instead of memory growing.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::store::{AuditEntry, Store};

enum Msg {
    Entry(AuditEntry),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
    counters: AuditCounters,
}

/// The audit writer's counters, shared with the metrics
/// (`passerelle_audit_rows_dropped_total`,
/// `passerelle_audit_append_failures_total`).
#[derive(Clone, Debug, Default)]
pub struct AuditCounters {
    pub dropped: prometheus_client::metrics::counter::Counter,
    pub failures: prometheus_client::metrics::counter::Counter,
}

/// Most rows queued for the writer (then [`AuditSink::record`] waits and
/// [`AuditSink::try_record`] drops, counted).
pub const QUEUE: usize = 8192;

const BATCH: usize = 512;
/// How long a batch waits for more rows after its first.
const LINGER: Duration = Duration::from_millis(10);

impl AuditSink {
    /// Starts the writer task.
    pub fn start(store: Arc<dyn Store>) -> (AuditSink, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        let counters = AuditCounters::default();
        let failures = counters.failures.clone();
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut waiters = Vec::new();
            while let Some(first) = rx.recv().await {
                let until = tokio::time::Instant::now() + LINGER;
                let mut next = Some(first);
                while let Some(m) = next.take() {
                    match m {
                        Msg::Entry(e) => batch.push(e),
                        Msg::Flush(w) => waiters.push(w),
                    }
                    if batch.len() < BATCH && waiters.is_empty() {
                        next = match rx.try_recv() {
                            Ok(m) => Some(m),
                            // Nothing queued: wait for more until the linger ends.
                            Err(_) => tokio::time::timeout_at(until, rx.recv())
                                .await
                                .ok()
                                .flatten(),
                        };
                    }
                }
                let mut delay = Duration::from_millis(50);
                while !batch.is_empty() {
                    match store.append_audit(&batch).await {
                        Ok(()) => batch.clear(),
                        Err(e) => {
                            failures.inc();
                            tracing::warn!(error = %e, rows = batch.len(), "audit append failed; retrying");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(5));
                        }
                    }
                }
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        });
        (AuditSink { tx, counters }, task)
    }

    /// The writer's counters, for the metrics.
    pub fn counters(&self) -> AuditCounters {
        self.counters.clone()
    }

    /// Rows queued and not yet taken by the writer.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues one row.
    pub async fn record(&self, e: AuditEntry) {
        if self.tx.send(Msg::Entry(bounded(e))).await.is_err() {
            tracing::error!("audit writer stopped; row lost");
        }
    }

    /// Queues one row without waiting (for synchronous callers such as the
    /// authentication interceptor); when the writer is far behind the row is
    /// logged instead of blocking the call.
    pub fn try_record(&self, e: AuditEntry) {
        if let Err(e) = self.tx.try_send(Msg::Entry(bounded(e))) {
            self.counters.dropped.inc();
            tracing::warn!("audit queue full, row not stored: {e}");
        }
    }

    /// Waits until every row queued before this call is stored.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Most characters of one audit field (party, method, subject, outcome):
/// an outcome may carry a partner's error text, a party a name the caller
/// claimed; neither grows the log past this.
pub const MAX_AUDIT_FIELD: usize = passerelle_domain::validate::MAX_PARTNER_TEXT;

/// An audit row as every store can write it: each text field cut to
/// [`MAX_AUDIT_FIELD`], and a NUL (which a caller's refused request or a
/// partner's error text may carry, and which PostgreSQL refuses in any
/// text) written as U+FFFD. A NUL reached PostgreSQL's audit writer,
/// which retried that batch for ever: the queue filled and every call of
/// the broker waited on it.
fn bounded(mut e: AuditEntry) -> AuditEntry {
    use passerelle_domain::validate::truncate_text;
    for f in [&mut e.party, &mut e.method, &mut e.subject, &mut e.outcome] {
        if f.chars().count() > MAX_AUDIT_FIELD {
            *f = truncate_text(f, MAX_AUDIT_FIELD);
        }
        *f = passerelle_domain::validate::without_nul(std::mem::take(f));
    }
    e
}

/// SHA-256 (hex) of some bytes.
pub fn hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Milliseconds since the Unix epoch.
#[allow(
    clippy::disallowed_methods,
    reason = "the wall clock itself: the broker reads it through service::clock::Clock"
)]
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
