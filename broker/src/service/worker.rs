//! The background loops: the retry worker (`run_worker`, `retry_due`:
//! claims and cancels waiting on their partner, leased from the store) and
//! the retention job (`run_retention`). Both read the time from the
//! service's clock and wait on tokio's, so that tests drive them under a
//! paused clock.

use std::sync::Arc;
use std::time::Duration;

use passerelle_domain::ClaimState;
use tokio::sync::watch;

use super::Broker;
use crate::config::RetryConfig;
use crate::store::StoreError;

/// The start spacing of a pass's claims, when `[retry] max_per_second`
/// paces them.
fn spacing(retry: &RetryConfig) -> Option<Duration> {
    #[allow(clippy::disallowed_types, reason = "a pacing interval, not money")]
    (retry.max_per_second > 0)
        .then(|| Duration::from_secs_f64(1.0 / f64::from(retry.max_per_second)))
}

/// How long a pass leases its claims: each claim's processing, and, when
/// the pass is paced, its wait for its turn (the last starts `batch - 1`
/// spacings after the first), so that nothing takes it meanwhile: neither
/// another replica's pass nor a backlog's catch-up (`expedite`), which
/// used to count the processing alone and made a paced batch's claims
/// not yet started due again, to be sent twice at once.
fn pass_lease_ms(retry: &RetryConfig, worker_lease_ms: i64) -> i64 {
    let spread = spacing(retry).map_or(0, |s| {
        (s * retry.batch.saturating_sub(1)).as_millis() as i64 + 1
    });
    worker_lease_ms + spread
}

impl Broker {
    /// This broker's [`pass_lease_ms`].
    pub(super) fn pass_lease_ms(&self) -> i64 {
        pass_lease_ms(&self.retry, self.worker_lease_ms)
    }

    /// One pass of the retry worker: leases due claims and resumes them.
    /// Returns how many it took.
    ///
    /// With `[retry] max_per_second`, the claims of a pass start one every
    /// `1 / max_per_second`, not all at once: a backlog's batch started
    /// together took both cores for its length, and eligibility checks
    /// arriving meanwhile waited behind it (p99 several times its idle value
    /// whatever the pace). When `stop` turns true the claims not started yet
    /// are left leased: they are resumed once their lease ends (after a
    /// restart, or by another replica); those started are finished.
    pub async fn retry_due(
        self: &Arc<Self>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<usize, StoreError> {
        let spacing = spacing(&self.retry);
        let due = self
            .timed(
                "lease_due",
                self.store
                    .lease_due(self.clock.now_ms(), self.pass_lease_ms(), self.retry.batch),
            )
            .await?;
        let n = due.len();
        // The controls as of this lease at least: a resume stored by another
        // broker since this pass began is in force here before its claims go.
        if n > 0
            && let Err(e) = self.refresh_controls().await
        {
            tracing::warn!(error = %e, "cannot read the partners' controls");
        }
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for (i, rec) in due.into_iter().enumerate() {
            if let Some(spacing) = spacing
                && i > 0
            {
                tokio::select! {
                    _ = tokio::time::sleep_until(start + spacing * i as u32) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            // At the longest back-off: failing for long, unless the
            // partner last answered "not decided yet" (an openIMIS whose
            // staff valuate claims days later is not failing).
            self.metrics.partner_retry(
                &rec.mutuelle_id,
                self.backoff_ms(rec.attempts) >= self.retry.max_ms as i64
                    && !rec
                        .last_error
                        .starts_with(passerelle_adapters::PENDING_SAID),
            );
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                let subject = format!("{}/{}", rec.claim.scheme_id, rec.claim.claim_id);
                // A retry is a trace of its own (the claim's audit rows and
                // log lines tie it to the first attempt).
                let (span, trace) = me.spans().server("Retry", None);
                let r = match rec.state {
                    // A scheme's cancel, or the cancel a partner is owed
                    // after its answer was refused (the claim REJECTED).
                    ClaimState::CancelPending | ClaimState::Rejected => {
                        passerelle_adapters::trace::scope(trace, me.process_cancel(rec)).await
                    }
                    s if s.awaiting_partner() => {
                        passerelle_adapters::trace::scope(trace, me.process(rec, None)).await
                    }
                    _ => return span.end(None),
                };
                span.end(r.as_ref().err().map(|e| e.to_string()));
                if let Err(e) = r {
                    tracing::warn!(claim = %subject, error = %e, "retry failed");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(n)
    }

    /// The retention job: prunes the audit log every `interval_s`; with
    /// several brokers, whichever takes the store's lock does it. Each
    /// pass, the first at start, also applies the proposals left approved
    /// past `store::approvals::APPLY_BOUND_MS`.
    pub async fn run_retention(
        self: Arc<Self>,
        cfg: crate::config::RetentionConfig,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let every = Duration::from_secs(cfg.interval_s);
        let every_s = i64::try_from(cfg.interval_s).unwrap_or(i64::MAX);
        // Its series exist from the start (a scrape before the first pass
        // ends sees the broker's start).
        self.metrics
            .worker_pass("retention", self.clock.now_ms() / 1000, every_s);
        loop {
            // The audit log's months ahead, whether retention prunes or not.
            if let Err(e) = self.store.prepare_audit(self.clock.now_ms()).await {
                tracing::warn!(error = %e, "audit log not prepared");
            }
            if cfg.audit_days > 0 {
                match self.prune_audit_once(cfg.audit_days).await {
                    Ok(Some(n)) if n > 0 => tracing::info!(rows = n, "audit log pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "audit pruning failed"),
                }
            }
            // Expired console sessions and forgotten sign-in throttle rows.
            if let Err(e) = self.prune_console().await {
                tracing::warn!(error = %e, "console sessions not pruned");
            }
            // Proposals left approved by a broker stopped while applying
            // them (`Broker::apply_left_approved`).
            if let Err(e) = self.apply_left_approved().await {
                tracing::warn!(error = %e, "proposals left approved not read");
            }
            self.metrics
                .worker_pass("retention", self.clock.now_ms() / 1000, every_s);
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// The retry worker: runs until `shutdown` turns true.
    pub async fn run_worker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.retry.poll_ms);
        // At least a second: the gauge counts whole seconds.
        let poll_s = i64::try_from(self.retry.poll_ms.div_ceil(1000).max(1)).unwrap_or(i64::MAX);
        self.metrics
            .worker_pass("retry", self.clock.now_ms() / 1000, poll_s);
        loop {
            let round = tokio::time::Instant::now();
            // Other brokers' pauses and circuits, before leasing.
            if let Err(e) = self.refresh_controls().await {
                tracing::warn!(error = %e, "cannot read the partners' controls");
            }
            // Prior authorizations past their date release their holds.
            match self.expire_authorizations().await {
                Ok(n) if n > 0 => tracing::info!(count = n, "prior authorizations expired"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot expire prior authorizations"),
            }
            let due = self.retry_due(shutdown.clone()).await;
            self.metrics
                .worker_pass("retry", self.clock.now_ms() / 1000, poll_s);
            match due {
                Ok(n) if n > 0 => {
                    // Pace a backlog: n claims take at least n / max_per_second.
                    if self.retry.max_per_second > 0 {
                        #[allow(clippy::disallowed_types, reason = "a pacing interval, not money")]
                        let pace = Duration::from_secs_f64(
                            n as f64 / f64::from(self.retry.max_per_second),
                        );
                        tokio::select! {
                            _ = tokio::time::sleep_until(round + pace) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retry worker cannot read the store"),
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// The partners' active probes (`[partners.probe]`), one task each,
    /// until `shutdown`: an eligibility question about the test member
    /// every `interval_s`, through [`Broker::call_partner`] like any call
    /// (the circuit and the metrics see it; it is the trial call of a
    /// half-open circuit). Not audited: it carries no one's data and would
    /// fill the log.
    pub async fn run_probes(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let mut tasks = Vec::new();
        for p in self.partners() {
            let Some(probe) = p.probe.clone() else {
                continue;
            };
            let (me, id, mut stop) = (self.clone(), p.id.clone(), shutdown.clone());
            tasks.push(tokio::spawn(async move {
                let every = Duration::from_secs(probe.interval_s);
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    me.probe_once(&id, &probe).await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// One probe of partner `id`.
    pub async fn probe_once(&self, id: &str, probe: &crate::config::ProbeConfig) {
        let Ok(partner) = self.partner(id) else {
            return;
        };
        let today = self.clock.today();
        // Without a number configured, the roster's: a partner reads its
        // own member numbers (openIMIS its CHFID), not the scheme's
        // beneficiary id, and a probe asking by that one fails for ever.
        let member_number = match &probe.member_number {
            Some(n) => Some(n.clone()),
            None => self
                .route(&probe.scheme, &probe.beneficiary, today, Some(id), None)
                .await
                .ok()
                .flatten()
                .map(|r| r.member_number)
                .filter(|n| !n.is_empty()),
        };
        let q = passerelle_adapters::EligibilityQuery {
            // Unique across restarts too (the counter starts again at 0):
            // a partner keeping keys never sees one again.
            idempotency_key: format!("probe-{}-{}", self.clock.now_ms(), super::next_nonce()),
            scheme_id: probe.scheme.clone(),
            beneficiary_id: probe.beneficiary.clone(),
            member_number,
            member: None,
            date_of_care: today,
            currency: self.currency_of(&probe.scheme),
            lines: vec![],
            diagnoses: vec![],
        };
        let out = super::partner::Outbound {
            method: super::partner::PROBE,
            subject: "probe".into(),
            key: &q.idempotency_key,
            audited: false,
        };
        let adapter = partner.adapter.get();
        if let Err(e) = self.call_partner(id, out, adapter.eligibility(&q)).await {
            tracing::debug!(partner = id, error = %e, "probe failed");
        }
    }

    /// One pass of the retention job: removes the audit rows older than
    /// `audit_days`. `None`: another broker holds the store's lock and does it.
    pub async fn prune_audit_once(&self, audit_days: u32) -> Result<Option<u64>, StoreError> {
        let cutoff = self.clock.now_ms() - audit_days as i64 * 86_400_000;
        self.store.prune_audit(cutoff).await
    }
}

/// The lifecycle under tokio's paused clock: deadlines, back-off and
/// retention run in virtual time, and the tests assert on the stored state.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::adjudication_key;
    use crate::service::testing::{BACK_OFF, answering_broker, broker};
    use crate::store::AuditEntry;
    use crate::store::Direction;
    use crate::store::NewClaim;
    use crate::store::conformance::sample_claim;

    /// A paced pass leases its claims for their wait as well as their
    /// processing, and a backlog's catch-up (`expedite`) counts the same
    /// lease: a claim of the batch not started yet is not made due again.
    #[tokio::test]
    async fn a_paced_pass_keeps_its_claims_from_the_catch_up() {
        let retry = RetryConfig {
            max_per_second: 2,
            batch: 32,
            ..Default::default()
        };
        assert_eq!(pass_lease_ms(&retry, 5_000), 5_000 + 31 * 500 + 1);
        let unpaced = RetryConfig {
            max_per_second: 0,
            ..retry.clone()
        };
        assert_eq!(pass_lease_ms(&unpaced, 5_000), 5_000);
        // The store's side: a claim leased by such a pass is not brought
        // forward by a catch-up that counts the same lease, and was by one
        // that counted the processing alone.
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("t.db")).unwrap();
        use crate::store::ClaimStore;
        let mut claim = sample_claim("CNSS", "PACED", "PACED");
        claim.mutuelle_id = Some("MUT-X".into());
        let new = NewClaim {
            request_hash: "h".into(),
            adjudication_key: adjudication_key("CNSS", "PACED"),
            mutuelle_id: "MUT-X".into(),
            member_number: "M".into(),
            claim,
            now_ms: 0,
            lease_until_ms: 0,
        };
        store.begin_claim(new).await.unwrap();
        store
            .defer("CNSS", "PACED", ClaimState::Received, 1_000, "down", 500)
            .await
            .unwrap();
        let lease = pass_lease_ms(&retry, 5_000);
        assert_eq!(store.lease_due(2_000, lease, 32).await.unwrap().len(), 1);
        assert_eq!(store.expedite("MUT-X", 2_000, lease).await.unwrap(), 0);
        assert_eq!(store.expedite("MUT-X", 2_000, 5_000).await.unwrap(), 1);
    }

    async fn coordinate(b: &Broker, claim_id: &str) -> crate::store::ClaimRecord {
        let mut claim = sample_claim("CNSS", claim_id, claim_id);
        claim.mutuelle_id = Some("MUT-X".into());
        b.coordinate(claim).await.unwrap()
    }

    /// A partner that misses its deadline leaves the claim PENDING_PARTNER
    /// with a back-off; the worker leaves it alone until the back-off has
    /// passed, then completes it with the same key.
    #[tokio::test(start_paused = true)]
    async fn a_claim_past_its_deadline_is_retried_after_its_back_off() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let (_stop_tx, stop) = watch::channel(false);

        let rec = coordinate(&b, "C-1").await;
        assert_eq!(rec.state, ClaimState::PendingPartner);
        assert!(rec.last_error.contains("deadline"), "{}", rec.last_error);
        let due = rec.next_attempt_ms.expect("a next attempt");
        let now = b.clock().now_ms();
        assert!(
            due - now > BACK_OFF.as_millis() as i64 - 1000,
            "{due} {now}"
        );

        // Not due yet.
        assert_eq!(b.retry_due(stop.clone()).await.unwrap(), 0);
        tokio::time::advance(BACK_OFF - Duration::from_secs(5)).await;
        assert_eq!(b.retry_due(stop.clone()).await.unwrap(), 0);
        assert_eq!(
            b.get("CNSS", "C-1").await.unwrap().state,
            ClaimState::PendingPartner
        );

        // Due: resumed and completed.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.retry_due(stop).await.unwrap(), 1);
        let done = b.get("CNSS", "C-1").await.unwrap();
        assert_eq!(done.state, ClaimState::Coordinated);
        let shares: Vec<i64> = done
            .shares
            .unwrap()
            .iter()
            .map(|s| s.mutuelle_share)
            .collect();
        assert_eq!(shares, vec![1500, 4000]);
        assert!(done.updated_ms >= due);
    }

    /// A mutuelle with a system of its own is asked only once the claim is
    /// stored (RECEIVED, under its adjudication key); one whose answer the
    /// broker computes from its own store is asked first, and the claim is
    /// stored with its outcome in one commit. Either way a resend gets the
    /// stored answer, and a modified resend is refused.
    #[tokio::test(start_paused = true)]
    async fn a_partner_system_is_asked_after_the_claim_is_stored_and_the_store_before() {
        use passerelle_adapters::{
            Adapter, AdapterError, AdjudicationRequest, CancelRequest, EligibilityAnswer,
            EligibilityQuery, PartnerAdjudication,
        };
        use std::sync::{Mutex, OnceLock};
        struct Asked {
            from_store: bool,
            store: OnceLock<Arc<dyn crate::store::Store>>,
            stored_when_asked: Mutex<Vec<Option<ClaimState>>>,
        }
        #[async_trait::async_trait]
        impl Adapter for Asked {
            fn adjudicates_from_store(&self) -> bool {
                self.from_store
            }
            async fn eligibility(
                &self,
                _q: &EligibilityQuery,
            ) -> Result<EligibilityAnswer, AdapterError> {
                Err(AdapterError::Unavailable("not asked".into()))
            }
            async fn adjudicate(
                &self,
                req: AdjudicationRequest<'_>,
            ) -> Result<PartnerAdjudication, AdapterError> {
                let store = self.store.get().expect("store");
                let stored = store
                    .get_claim(&req.claim.scheme_id, &req.claim.claim_id)
                    .await
                    .unwrap()
                    .map(|r| r.state);
                self.stored_when_asked.lock().unwrap().push(stored);
                // An answer that takes its time (within the deadline): the
                // paused clock moved on, nothing waited for.
                tokio::time::advance(std::time::Duration::from_millis(500)).await;
                if req.claim.claim_id == "C-T" {
                    return Err(AdapterError::Unavailable("down".into()));
                }
                if req.claim.claim_id == "C-R" {
                    return Err(AdapterError::Rejected(passerelle_domain::Reason::new(
                        passerelle_domain::ReasonCode::PartnerRule,
                        "not covered",
                    )));
                }
                let answering = crate::service::testing::HangsOnce(1.into());
                answering.adjudicate(req).await
            }
            async fn cancel(&self, _req: CancelRequest<'_>) -> Result<(), AdapterError> {
                Ok(())
            }
        }
        for from_store in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let asked = Arc::new(Asked {
                from_store,
                store: OnceLock::new(),
                stored_when_asked: Mutex::new(vec![]),
            });
            let b = super::super::testing::broker_with_adapter(dir.path(), asked.clone());
            asked.store.set(b.store().clone()).ok();
            let before = b.clock().now_ms();
            let rec = coordinate(&b, "C-9").await;
            assert_eq!(rec.state, ClaimState::Coordinated, "{from_store}");
            // Stamped when stored: after the answer when it is one commit.
            let stored_at = if from_store { before + 500 } else { before };
            assert_eq!(rec.created_ms, stored_at, "{from_store}");
            assert_eq!(rec.updated_ms, before + 500, "{from_store}");
            let shares: Vec<i64> = rec
                .shares
                .as_ref()
                .unwrap()
                .iter()
                .map(|s| s.mutuelle_share)
                .collect();
            assert_eq!(shares, vec![1500, 4000]);
            let first = if from_store {
                None
            } else {
                Some(ClaimState::Received)
            };
            assert_eq!(
                *asked.stored_when_asked.lock().unwrap(),
                vec![first],
                "{from_store}"
            );
            assert_eq!(b.get("CNSS", "C-9").await.unwrap(), rec);
            // A resend: the stored answer, the adapter not asked again.
            assert_eq!(coordinate(&b, "C-9").await, rec);
            assert_eq!(
                asked.stored_when_asked.lock().unwrap().len(),
                1,
                "{from_store}"
            );
            // A modified resend: refused, nothing changed.
            let mut modified = sample_claim("CNSS", "C-9", "C-9");
            modified.mutuelle_id = Some("MUT-X".into());
            modified.lines.pop();
            let err = b.coordinate(modified).await.unwrap_err();
            assert!(
                matches!(err, crate::service::ServiceError::ModifiedRequest(_)),
                "{err:?}"
            );
            assert_eq!(b.get("CNSS", "C-9").await.unwrap(), rec);
            // A rejection is asked once and stored as answered (the rules
            // adapter's answer is not computed again for the second commit).
            asked.stored_when_asked.lock().unwrap().clear();
            let rejected = coordinate(&b, "C-R").await;
            assert_eq!(rejected.state, ClaimState::Rejected, "{from_store}");
            assert_eq!(rejected.rejection.as_ref().unwrap().message, "not covered");
            assert_eq!(
                *asked.stored_when_asked.lock().unwrap(),
                vec![first],
                "{from_store}"
            );
            // A transient failure is asked once, then deferred, its lease
            // from when it was stored.
            asked.stored_when_asked.lock().unwrap().clear();
            let deferred = coordinate(&b, "C-T").await;
            assert_eq!(deferred.state, ClaimState::PendingPartner, "{from_store}");
            assert!(deferred.last_error.contains("down"), "{deferred:?}");
            assert_eq!(
                *asked.stored_when_asked.lock().unwrap(),
                vec![first],
                "{from_store}"
            );
        }
    }

    /// Retention removes audit rows older than its period, but keeps those
    /// of a claim still open.
    #[tokio::test(start_paused = true)]
    async fn retention_prunes_rows_older_than_its_period() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        b.audit()
            .record(AuditEntry {
                at_ms: b.clock().now_ms(),
                direction: Direction::In,
                party: "operator:ops".into(),
                method: "ListPartners".into(),
                subject: "partners".into(),
                request_hash: crate::audit::hash(b"x"),
                outcome: "ok".into(),
                trace_id: String::new(),
            })
            .await;
        // An open claim: its rows stay whatever their age.
        let (_stop_tx, stop) = watch::channel(false);
        coordinate(&b, "C-2").await;
        tokio::time::advance(BACK_OFF * 2).await;
        assert_eq!(b.retry_due(stop).await.unwrap(), 1);
        b.audit().flush().await;
        let subjects = |rows: Vec<(i64, AuditEntry)>| -> Vec<String> {
            rows.into_iter().map(|(_, e)| e.subject).collect()
        };

        assert_eq!(b.prune_audit_once(30).await.unwrap(), Some(0));
        tokio::time::advance(Duration::from_secs(29 * 86_400)).await;
        assert_eq!(b.prune_audit_once(30).await.unwrap(), Some(0));
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert_eq!(b.prune_audit_once(30).await.unwrap(), Some(1));
        let left = subjects(b.store().read_audit(0, 100).await.unwrap());
        assert_eq!(left, vec!["CNSS/C-2", "CNSS/C-2"]);
    }

    /// A cancel the partner cannot carry (openIMIS over FHIR) stands in the
    /// broker at once, never retried in a loop, and the claim keeps what a
    /// person must still do.
    #[tokio::test(start_paused = true)]
    async fn a_cancel_the_partner_cannot_carry_stands_and_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let b = crate::service::testing::broker_that_cannot_cancel(dir.path());
        let (_stop_tx, stop) = watch::channel(false);
        let mut claim = sample_claim("CNSS", "C-4", "C-4");
        claim.mutuelle_id = Some("MUT-X".into());
        let now = b.clock().now_ms();
        b.store()
            .begin_claim(NewClaim {
                adjudication_key: adjudication_key("CNSS", "C-4"),
                request_hash: claim.canonical_hash(),
                mutuelle_id: "MUT-X".into(),
                member_number: String::new(),
                claim,
                lease_until_ms: now,
                now_ms: now,
            })
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.retry_due(stop.clone()).await.unwrap(), 1);
        assert_eq!(
            b.get("CNSS", "C-4").await.unwrap().state,
            ClaimState::Coordinated
        );
        let rec = b.cancel("CNSS", "C-4", "sent twice").await.unwrap();
        assert_eq!(rec.state, ClaimState::Cancelled);
        assert!(
            rec.last_error.contains("by hand") && rec.last_error.contains("PS0001"),
            "{}",
            rec.last_error
        );
        // Nothing left for the worker to retry.
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(b.retry_due(stop).await.unwrap(), 0);
    }

    /// A mutuelle whose answers overpay (M > R, refused by the broker), and
    /// whose cancels answer as scripted, each key it was sent kept.
    struct Overpays {
        cancels: std::sync::Mutex<Vec<Result<(), passerelle_adapters::AdapterError>>>,
        sent: std::sync::Mutex<Vec<(String, String, String)>>,
    }

    #[async_trait::async_trait]
    impl passerelle_adapters::Adapter for Overpays {
        async fn eligibility(
            &self,
            _q: &passerelle_adapters::EligibilityQuery,
        ) -> Result<passerelle_adapters::EligibilityAnswer, passerelle_adapters::AdapterError>
        {
            Err(passerelle_adapters::AdapterError::Unavailable(
                "not asked".into(),
            ))
        }

        async fn adjudicate(
            &self,
            req: passerelle_adapters::AdjudicationRequest<'_>,
        ) -> Result<passerelle_adapters::PartnerAdjudication, passerelle_adapters::AdapterError>
        {
            let lines = req.claim.lines.iter().enumerate();
            Ok(passerelle_adapters::PartnerAdjudication {
                lines: lines
                    .map(|(i, l)| passerelle_domain::LineShare {
                        sequence: i as u32 + 1,
                        mutuelle_share: l.remainder() + 1,
                        reasons: vec![],
                    })
                    .collect(),
                ..Default::default()
            })
        }

        async fn cancel(
            &self,
            req: passerelle_adapters::CancelRequest<'_>,
        ) -> Result<(), passerelle_adapters::AdapterError> {
            self.sent.lock().unwrap().push((
                req.idempotency_key.to_string(),
                req.adjudication_key.to_string(),
                req.reason.to_string(),
            ));
            self.cancels.lock().unwrap().remove(0)
        }
    }

    /// A scheme's cancel of a claim REJECTED before its mutuelle was ever
    /// asked about it (a duplicate invoice) is CANCELLED at once: nothing
    /// is booked there to undo, and a mutuelle that refuses a cancel of
    /// what it never saw (or is paused) left it CANCEL_PENDING, or a
    /// person told to undo what does not exist.
    #[tokio::test(start_paused = true)]
    async fn a_rejected_claim_never_asked_about_is_cancelled_at_once() {
        let dir = tempfile::tempdir().unwrap();
        // Its mutuelle keeps the first claim waiting: it holds its invoice.
        let b = crate::service::testing::broker(dir.path());
        let first = coordinate(&b, "C-D1").await;
        assert_eq!(first.state, ClaimState::PendingPartner);
        let mut twice = sample_claim("CNSS", "C-D2", "C-D1");
        twice.mutuelle_id = Some("MUT-X".into());
        let dup = b.coordinate(twice).await.unwrap();
        assert_eq!(
            dup.rejection.as_ref().map(|r| r.code),
            Some(passerelle_domain::ReasonCode::DuplicateInvoice)
        );
        let c = b.cancel("CNSS", "C-D2", "sent twice").await.unwrap();
        assert_eq!(c.state, ClaimState::Cancelled, "{c:?}");
        assert_eq!(c.last_error, "", "nothing for a person to do");
        let sent: Vec<String> = b
            .claim_audit("CNSS", "C-D2")
            .await
            .unwrap()
            .rows
            .into_iter()
            .filter(|r| r.direction == Direction::Out)
            .map(|r| r.method)
            .collect();
        assert!(
            sent.is_empty(),
            "the mutuelle, never asked about it, is sent nothing: {sent:?}"
        );
        // The mutuelle was asked about the first: its cancel goes to it.
        b.cancel("CNSS", "C-D1", "wrong member").await.unwrap();
        let trail = b.claim_audit("CNSS", "C-D1").await.unwrap().rows;
        assert!(
            trail
                .iter()
                .any(|r| r.direction == Direction::Out && r.method == "CancelAdjudication"),
            "{trail:?}"
        );
    }

    /// An answer the broker refuses is cancelled at the mutuelle by the
    /// worker, under the claim's cancel key: put off while the mutuelle is
    /// unreachable, or answers what cannot be read (a cut or garbled
    /// document says nothing of the cancel), the scheme's view unchanged;
    /// then sent; a cancel refused for good is left to a person with a
    /// note, never retried in a loop.
    #[tokio::test(start_paused = true)]
    async fn a_refused_answer_is_cancelled_at_the_mutuelle_until_sent() {
        use passerelle_adapters::AdapterError as E;
        use passerelle_domain::{Reason, ReasonCode};
        for (id, first, last, note) in [
            ("C-W1", E::Unavailable("down".into()), Ok(()), ""),
            (
                "C-W2",
                E::Unavailable("down".into()),
                Err(E::Rejected(Reason::new(
                    ReasonCode::PartnerRejected,
                    "no such claim",
                ))),
                "cancel not delivered",
            ),
            (
                "C-W3",
                E::Malformed("down: expected 'montant' tag".into()),
                Ok(()),
                "",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let adapter = Arc::new(Overpays {
                cancels: std::sync::Mutex::new(vec![Err(first), last]),
                sent: Default::default(),
            });
            let b = crate::service::testing::broker_with_adapter(dir.path(), adapter.clone());
            let (_stop_tx, stop) = watch::channel(false);
            let rec = coordinate(&b, id).await;
            assert_eq!(rec.state, ClaimState::Rejected);
            let why = rec.rejection.clone().unwrap();
            assert_eq!(why.code, ReasonCode::PartnerAnswerInvalid);
            assert!(adapter.sent.lock().unwrap().is_empty(), "not in the call");
            // Sent by the worker; the mutuelle is down: put off.
            assert_eq!(b.retry_due(stop.clone()).await.unwrap(), 1);
            let later = b.get("CNSS", id).await.unwrap();
            assert_eq!(later.state, ClaimState::Rejected);
            assert_eq!(
                (later.change_seq, later.updated_ms),
                (rec.change_seq, rec.updated_ms)
            );
            assert!(later.last_error.contains("down"), "{}", later.last_error);
            // The cancel's outbound audit row says why it failed, a cancel
            // answer that cannot be read included (it holds no amount).
            let rows = b.claim_audit("CNSS", id).await.unwrap().rows;
            let cancel = rows
                .iter()
                .rfind(|r| r.method == "CancelAdjudication")
                .expect("the cancel's audit row");
            assert!(cancel.outcome.contains("down"), "{id}: {}", cancel.outcome);
            let due = later.next_attempt_ms.expect("put off");
            // The back-off of its first attempt (the clock moved a few
            // milliseconds since).
            let wait = due - b.clock().now_ms();
            let back_off = 2 * BACK_OFF.as_millis() as i64;
            assert!(wait > back_off - 1_000 && wait <= back_off, "{wait}");
            assert_eq!(b.retry_due(stop.clone()).await.unwrap(), 0);
            tokio::time::advance(2 * BACK_OFF).await;
            assert_eq!(b.retry_due(stop.clone()).await.unwrap(), 1);
            let done = b.get("CNSS", id).await.unwrap();
            assert_eq!(done.state, ClaimState::Rejected);
            assert_eq!(done.next_attempt_ms, None, "{id}");
            assert!(
                done.last_error.starts_with(note),
                "{id}: {}",
                done.last_error
            );
            assert_eq!(done.change_seq, rec.change_seq);
            // Nothing more, whatever the time.
            tokio::time::advance(100 * BACK_OFF).await;
            assert_eq!(b.retry_due(stop.clone()).await.unwrap(), 0);
            let sent = adapter.sent.lock().unwrap().clone();
            assert_eq!(sent.len(), 2, "{sent:?}");
            for (key, adjudication, reason) in &sent {
                assert_eq!(key, &crate::service::cancel_key("CNSS", id));
                assert_eq!(adjudication, &adjudication_key("CNSS", id));
                assert!(reason.starts_with("passerelle refused"), "{reason}");
            }
            if note.is_empty() {
                continue;
            }
            // The scheme cancels the claim: the partner refuses that cancel
            // for good too; the claim, which consumed nothing, is
            // cancelled with the note, never resent in a loop.
            adapter
                .cancels
                .lock()
                .unwrap()
                .push(Err(E::Rejected(Reason::new(
                    ReasonCode::PartnerRejected,
                    "no such claim",
                ))));
            let c = b.cancel("CNSS", id, "sent twice").await.unwrap();
            assert_eq!(c.state, ClaimState::Cancelled, "{c:?}");
            assert!(
                c.last_error.starts_with("cancel not delivered"),
                "{}",
                c.last_error
            );
            tokio::time::advance(100 * BACK_OFF).await;
            assert_eq!(b.retry_due(stop).await.unwrap(), 0);
            assert_eq!(adapter.sent.lock().unwrap().len(), 3);
        }
    }

    /// A claim whose caller died holding its lease (RECEIVED, partner not
    /// asked yet) is left alone until the lease ends, then resumed.
    #[tokio::test(start_paused = true)]
    async fn a_claim_held_by_a_dead_caller_is_resumed_when_its_lease_ends() {
        let dir = tempfile::tempdir().unwrap();
        let b = answering_broker(dir.path());
        let (_stop_tx, stop) = watch::channel(false);
        let mut claim = sample_claim("CNSS", "C-3", "C-3");
        claim.mutuelle_id = Some("MUT-X".into());
        let now = b.clock().now_ms();
        b.store()
            .begin_claim(NewClaim {
                adjudication_key: adjudication_key("CNSS", "C-3"),
                request_hash: claim.canonical_hash(),
                mutuelle_id: "MUT-X".into(),
                member_number: String::new(),
                claim,
                lease_until_ms: now + 5_000,
                now_ms: now,
            })
            .await
            .unwrap();

        assert_eq!(b.retry_due(stop.clone()).await.unwrap(), 0);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(b.retry_due(stop.clone()).await.unwrap(), 0);
        assert_eq!(
            b.get("CNSS", "C-3").await.unwrap().state,
            ClaimState::Received
        );

        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(b.retry_due(stop).await.unwrap(), 1);
        assert_eq!(
            b.get("CNSS", "C-3").await.unwrap().state,
            ClaimState::Coordinated
        );
    }

    /// A probe without a member number configured asks by the roster's
    /// number for its beneficiary at that mutuelle (a partner reads its own
    /// numbers: an openIMIS CHFID); one configured is sent as it is; a
    /// beneficiary the roster does not hold is asked without.
    #[tokio::test(start_paused = true)]
    async fn a_probe_asks_by_the_rosters_member_number() {
        use passerelle_adapters::{
            Adapter, AdapterError, AdjudicationRequest, CancelRequest, EligibilityAnswer,
            EligibilityQuery, PartnerAdjudication,
        };
        #[derive(Default)]
        struct Asked(std::sync::Mutex<Vec<Option<String>>>);
        #[async_trait::async_trait]
        impl Adapter for Asked {
            async fn eligibility(
                &self,
                q: &EligibilityQuery,
            ) -> Result<EligibilityAnswer, AdapterError> {
                self.0.lock().unwrap().push(q.member_number.clone());
                Ok(EligibilityAnswer::default())
            }
            async fn adjudicate(
                &self,
                _req: AdjudicationRequest<'_>,
            ) -> Result<PartnerAdjudication, AdapterError> {
                Err(AdapterError::Unavailable("down".into()))
            }
            async fn cancel(&self, _req: CancelRequest<'_>) -> Result<(), AdapterError> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let asked = Arc::new(Asked::default());
        let b = super::super::testing::broker_with_adapter(dir.path(), asked.clone());
        b.store()
            .upsert_members(&[super::super::testing::member_of("X")], 0)
            .await
            .unwrap();
        let probe = |beneficiary: &str, member_number: Option<&str>| crate::config::ProbeConfig {
            scheme: "CNSS".into(),
            beneficiary: beneficiary.into(),
            member_number: member_number.map(String::from),
            interval_s: 30,
        };
        b.probe_once("MUT-X", &probe("X-OK", None)).await;
        b.probe_once("MUT-X", &probe("X-OK", Some("CFG-1"))).await;
        b.probe_once("MUT-X", &probe("NOBODY", None)).await;
        assert_eq!(
            *asked.0.lock().unwrap(),
            [Some("X-1".to_string()), Some("CFG-1".to_string()), None]
        );
    }

    /// A probe sees a dead partner: after `[breaker] failures` (5) failed
    /// probes its circuit opens (stored for every broker); a probe while it
    /// is open calls nothing; once `open_ms` (30 s) has passed, the next
    /// probe is the trial call, and its answer closes the circuit.
    #[tokio::test(start_paused = true)]
    async fn a_probe_opens_a_dead_partners_circuit_and_its_trial_closes_it() {
        use passerelle_adapters::{
            Adapter, AdapterError, AdjudicationRequest, CancelRequest, EligibilityAnswer,
            EligibilityQuery, PartnerAdjudication,
        };
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        struct Toggle {
            up: AtomicBool,
            asked: AtomicU32,
        }
        #[async_trait::async_trait]
        impl Adapter for Toggle {
            async fn eligibility(
                &self,
                _q: &EligibilityQuery,
            ) -> Result<EligibilityAnswer, AdapterError> {
                self.asked.fetch_add(1, Ordering::SeqCst);
                if self.up.load(Ordering::SeqCst) {
                    Ok(EligibilityAnswer::default())
                } else {
                    Err(AdapterError::Unavailable("connection refused".into()))
                }
            }
            async fn adjudicate(
                &self,
                _req: AdjudicationRequest<'_>,
            ) -> Result<PartnerAdjudication, AdapterError> {
                Err(AdapterError::Unavailable("down".into()))
            }
            async fn cancel(&self, _req: CancelRequest<'_>) -> Result<(), AdapterError> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let toggle = Arc::new(Toggle {
            up: AtomicBool::new(false),
            asked: AtomicU32::new(0),
        });
        let b = super::super::testing::broker_with_adapter(dir.path(), toggle.clone());
        let probe = crate::config::ProbeConfig {
            scheme: "CNSS".into(),
            beneficiary: "TG-1".into(),
            member_number: None,
            interval_s: 30,
        };
        b.probe_once("MUT-X", &probe).await;
        // Seen by operators before any claim waits on it, with why,
        // though a probe writes no audit row.
        let seen = b.partner_status("MUT-X").await.unwrap().activity;
        assert!(seen.last_error_ms > 0, "{seen:?}");
        assert_eq!(
            seen.last_error,
            "probe: partner unavailable: connection refused"
        );
        assert_eq!(seen.last_success_ms, 0);
        for _ in 1..5 {
            b.probe_once("MUT-X", &probe).await;
        }
        assert_eq!(b.partners.circuit_state("MUT-X"), "open");
        assert!(b.partners.is_down("MUT-X"));
        let stored = b.store().partner_controls().await.unwrap();
        assert!(stored[0].breaker_open_until_ms > 0, "{stored:?}");
        toggle.up.store(true, Ordering::SeqCst);
        b.probe_once("MUT-X", &probe).await;
        assert_eq!(toggle.asked.load(Ordering::SeqCst), 5, "no call while open");
        assert_eq!(b.partners.circuit_state("MUT-X"), "open");
        tokio::time::advance(Duration::from_secs(30)).await;
        b.probe_once("MUT-X", &probe).await;
        assert_eq!(toggle.asked.load(Ordering::SeqCst), 6, "the trial call");
        assert_eq!(b.partners.circuit_state("MUT-X"), "closed");
        assert!(!b.partners.is_down("MUT-X"));
        let stored = b.store().partner_controls().await.unwrap();
        assert_eq!(stored[0].breaker_open_until_ms, 0);
        let seen = b.partner_status("MUT-X").await.unwrap().activity;
        assert!(seen.last_success_ms > seen.last_error_ms, "{seen:?}");
    }
}
