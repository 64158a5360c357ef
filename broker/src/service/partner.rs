//! The one way a partner is called: [`PartnerClient::call`] runs the call
//! under the partner's deadline, writes its outbound audit row and keeps the
//! partner's up/down state; [`Broker::call_partner`] adds what the store
//! does when a partner answers again (its backlog is due now). Eligibility,
//! adjudication and cancel all go through it.

use std::collections::HashMap;
use std::future::Future;
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
    audit: AuditSink,
    clock: Clock,
}

/// Why a call did not reach a mutuelle whose places are all taken.
pub(super) fn busy(mutuelle: &str) -> String {
    format!("mutuelle {mutuelle} is busy: too many calls are waiting on it, retry shortly")
}

impl PartnerClient {
    pub(super) fn new(partners: Vec<Partner>, audit: AuditSink, clock: Clock) -> Self {
        PartnerClient {
            down: partners
                .iter()
                .map(|p| (p.id.clone(), AtomicBool::default()))
                .collect(),
            partners: partners.into_iter().map(|p| (p.id.clone(), p)).collect(),
            audit,
            clock,
        }
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
        let res = match self.partners.get(mutuelle_id) {
            Some(p) => tokio::time::timeout(p.deadline, call)
                .await
                .unwrap_or(Err(AdapterError::Timeout(p.deadline.as_millis() as u64))),
            None => call.await,
        };
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
                        Err(e) => e.to_string(),
                    },
                })
                .await;
        }
        let health = match &res {
            Err(e) if e.is_transient() => {
                self.mark_down(mutuelle_id);
                Health::Same
            }
            _ => match self.down.get(mutuelle_id) {
                Some(d) if d.swap(false, Ordering::Relaxed) => Health::BackUp,
                _ => Health::Same,
            },
        };
        (res, health)
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
    pub(super) async fn call_partner<T>(
        &self,
        mutuelle_id: &str,
        out: Outbound<'_>,
        call: impl Future<Output = Result<T, AdapterError>>,
    ) -> Result<T, AdapterError> {
        let (res, health) = self.partners.call(mutuelle_id, out, call).await;
        if health == Health::BackUp {
            self.expedite(mutuelle_id).await;
        }
        res
    }

    async fn expedite(&self, partner: &str) {
        match self
            .store
            .expedite(partner, self.clock.now_ms(), self.worker_lease_ms)
            .await
        {
            Ok(n) => {
                tracing::info!(
                    partner,
                    claims = n,
                    "mutuelle answers again; its waiting claims are due now"
                );
                self.notify();
            }
            Err(e) => {
                // Not lost: the claims stay due at the end of their back-off.
                self.partners.mark_down(partner);
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
