//! What operators ask (AdminService): the partners' state, a claim's audit
//! trail. Retry and coverage conflicts are in [`super::claims`] and
//! [`super::roster`].

use super::{Broker, Partner, ServiceError};
use crate::store::{AuditTrail, PartnerActivity, PartnerControl};

/// A partner as `admin partners` shows it.
pub struct PartnerView<'a> {
    pub partner: &'a Partner,
    pub activity: PartnerActivity,
    /// Its stored pause and circuit (defaults: neither).
    pub control: PartnerControl,
    /// "closed", "open" or "half_open", from the stored circuit.
    pub circuit: &'static str,
}

impl Broker {
    /// Every partner (by id) with its last calls, the claims waiting on it,
    /// its pause and its circuit. Last success and error come from the
    /// audit trail (what is queued is written first, so the answer is up to
    /// date) and from this broker's probes, which write no audit row;
    /// pauses and circuits come from the store (every broker's).
    pub async fn partner_statuses(&self) -> Result<Vec<PartnerView<'_>>, ServiceError> {
        self.audit.flush().await;
        let controls = self.store.partner_controls().await?;
        let mut partners: Vec<&Partner> = self.partners.all().collect();
        partners.sort_by(|a, b| a.id.cmp(&b.id));
        let mut out = Vec::with_capacity(partners.len());
        for p in partners {
            out.push(self.partner_view(p, &controls).await?);
        }
        Ok(out)
    }

    /// One partner's [`PartnerView`].
    pub async fn partner_status(&self, id: &str) -> Result<PartnerView<'_>, ServiceError> {
        let p = self
            .partner(id)
            .map_err(|_| ServiceError::NotFound(format!("mutuelle {id} (not configured)")))?;
        let controls = self.store.partner_controls().await?;
        self.partner_view(p, &controls).await
    }

    async fn partner_view<'a>(
        &self,
        p: &'a Partner,
        controls: &[PartnerControl],
    ) -> Result<PartnerView<'a>, ServiceError> {
        let mut activity = self.store.partner_activity(&p.id).await?;
        // A probe's outcome, newer than any call's, is what is known of
        // the partner now (a mutuelle that fails only its probes, before
        // any claim waits on it).
        let probe = self.partners.probe_seen(&p.id);
        if probe.error_ms > activity.last_error_ms {
            activity.last_error_ms = probe.error_ms;
            activity.last_error = format!("probe: {}", probe.error);
        }
        activity.last_success_ms = activity.last_success_ms.max(probe.ok_ms);
        let control = controls
            .iter()
            .find(|c| c.partner_id == p.id)
            .cloned()
            .unwrap_or_else(|| PartnerControl {
                partner_id: p.id.clone(),
                ..Default::default()
            });
        let circuit =
            super::partner::circuit_label(control.breaker_open_until_ms, self.clock.now_ms());
        Ok(PartnerView {
            partner: p,
            activity,
            control,
            circuit,
        })
    }

    /// The audit rows of a claim (inbound and outbound), oldest first, at
    /// most `AuditTrail::MAX_ROWS` (the oldest and the newest of a longer
    /// one, saying how many were left out):
    /// every call whose subject is `scheme/id`, which a prior
    /// authorization's calls share (its id in the claim's place, refused
    /// commitments and their releases included). NOT_FOUND unless a claim
    /// or an authorization of the scheme has that id: no other subject
    /// (`CNSS/eligibility`, a person's, a proposal's) is read through it.
    pub async fn claim_audit(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<AuditTrail, ServiceError> {
        if self
            .store
            .authorization(scheme_id, claim_id)
            .await?
            .is_none()
        {
            self.get(scheme_id, claim_id).await?;
        }
        // Rows queued by calls still in flight are written first.
        self.audit.flush().await;
        Ok(self
            .store
            .audit_of(&format!("{scheme_id}/{claim_id}"))
            .await?)
    }
}

/// Partners whose counts a scrape reads at once (each read holds one store
/// connection).
pub const SCRAPE_READS: usize = 2;

/// How long a scrape waits for the store, per question; past it the store
/// counts as down for that scrape (`passerelle_store_up` 0).
pub const SCRAPE_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Broker {
    /// Whether the store answers and its schema is this binary's: what
    /// `/readyz` asks. The error says why not.
    pub async fn store_ready(&self) -> Result<(), String> {
        match tokio::time::timeout(SCRAPE_STORE_TIMEOUT, self.store.schema_status()).await {
            Err(_) => Err(format!(
                "store: no answer within {} ms",
                SCRAPE_STORE_TIMEOUT.as_millis()
            )),
            Ok(Err(e)) => Err(format!("store: {e}")),
            Ok(Ok((found, want))) if found != want => Err(format!(
                "store: schema version {found}, this binary needs {want} (run passerelle migrate)"
            )),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Reads the state the metrics describe (claims waiting per partner,
    /// partner health, the store and its pool, the audit queue) into the
    /// gauges, before a scrape. A store that does not answer within
    /// [`SCRAPE_STORE_TIMEOUT`] leaves the partners' gauges as they were and
    /// counts a scrape error.
    pub async fn observe(&self) {
        let m = &self.metrics;
        let up = self.store_ready().await.is_ok();
        m.store_state(up, self.store.pool_use());
        m.audit_queue(self.audit.queued(), crate::audit::QUEUE);
        let now = self.clock.now_ms();
        for p in self.partners.all() {
            let circuit = self.partners.circuit_state(&p.id);
            // Down too while its circuit is open or half-open (until a
            // trial answers): the circuit is stored, so a broker restarted
            // (or another replica) says so before its own first call
            // fails, and `PasserellePartnerDown`'s 5 minutes do not start
            // again at every restart.
            m.partner_health(&p.id, !self.partners.is_down(&p.id) && circuit == "closed");
            m.partner_control(&p.id, circuit, self.partners.is_paused(&p.id));
        }
        if up {
            // The partners' counts, SCRAPE_READS at a time (never more of
            // the pool, which claims need), under one deadline: a scrape
            // takes at most twice SCRAPE_STORE_TIMEOUT whatever the number
            // of partners.
            use futures::StreamExt;
            let ids: Vec<String> = self.partners.all().map(|p| p.id.clone()).collect();
            let reads = futures::stream::iter(ids)
                .map(|id| {
                    let store = self.store.clone();
                    async move {
                        let a = store.partner_activity(&id).await;
                        (id, a)
                    }
                })
                .buffer_unordered(SCRAPE_READS)
                .collect::<Vec<_>>();
            match tokio::time::timeout(SCRAPE_STORE_TIMEOUT, reads).await {
                Ok(all) => {
                    for (id, a) in all {
                        match a {
                            Ok(a) => {
                                let age_s = if a.oldest_waiting_ms > 0 {
                                    (now - a.oldest_waiting_ms).max(0) / 1000
                                } else {
                                    0
                                };
                                m.partner_waiting(&id, a.pending, age_s);
                            }
                            Err(_) => m.scrape_error(),
                        }
                    }
                }
                Err(_) => m.scrape_error(),
            }
        }
        if !up {
            m.scrape_error();
        }
    }
}

impl Broker {
    /// The dates of the partners' TLS files (their CAs, client
    /// certificates, CRLs): (partner, kind, file, Unix time); see
    /// [`crate::tls::file_dates`].
    pub fn partner_dates(&self) -> Vec<(String, &'static str, String, i64)> {
        let mut out = Vec::new();
        for p in self.partners.all() {
            for f in p.adapter.files() {
                for (kind, t) in crate::tls::file_dates(&f) {
                    let kind = if kind == "certificate" {
                        "partner_certificate"
                    } else {
                        "partner_crl_next_update"
                    };
                    out.push((p.id.clone(), kind, f.display().to_string(), t));
                }
            }
        }
        out
    }
}
