//! A broker for the service's and the edge's unit tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use passerelle_adapters::{
    Adapter, AdapterError, AdapterKind, AdjudicationRequest, CancelRequest, EligibilityAnswer,
    EligibilityQuery, PartnerAdjudication,
};
use passerelle_domain::LineShare;

use super::{Broker, BrokerParts, Clock, Partner, Scheme};
use crate::admission::PartnerSlots;
use crate::audit::AuditSink;
use crate::config::{LimitsConfig, RetryConfig};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// 2026-03-10T00:00:00Z.
pub(crate) const T0: i64 = 1_773_100_800_000;
pub(crate) const BACK_OFF: Duration = Duration::from_secs(60);

/// A mutuelle whose first call hangs past its deadline; later calls pay
/// every line's remainder.
pub(crate) struct HangsOnce(AtomicU32);

#[async_trait::async_trait]
impl Adapter for HangsOnce {
    async fn eligibility(&self, _q: &EligibilityQuery) -> Result<EligibilityAnswer, AdapterError> {
        Err(AdapterError::Unavailable("not asked in these tests".into()))
    }

    async fn adjudicate(
        &self,
        req: AdjudicationRequest<'_>,
    ) -> Result<PartnerAdjudication, AdapterError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        let lines = req.claim.lines.iter().enumerate();
        Ok(PartnerAdjudication {
            lines: lines
                .map(|(i, l)| LineShare {
                    sequence: i as u32 + 1,
                    mutuelle_share: l.remainder(),
                    reasons: vec![],
                })
                .collect(),
            partner_reference: "R-1".into(),
            ..Default::default()
        })
    }

    async fn cancel(&self, _req: CancelRequest<'_>) -> Result<(), AdapterError> {
        Ok(())
    }
}

/// A mutuelle that pays every line's remainder and cannot cancel at all
/// (as openIMIS over FHIR).
pub(crate) struct CannotCancel;

#[async_trait::async_trait]
impl Adapter for CannotCancel {
    async fn eligibility(&self, _q: &EligibilityQuery) -> Result<EligibilityAnswer, AdapterError> {
        Err(AdapterError::Unavailable("not asked in these tests".into()))
    }

    async fn adjudicate(
        &self,
        req: AdjudicationRequest<'_>,
    ) -> Result<PartnerAdjudication, AdapterError> {
        HangsOnce(AtomicU32::new(1)).adjudicate(req).await
    }

    async fn cancel(&self, _req: CancelRequest<'_>) -> Result<(), AdapterError> {
        Err(AdapterError::Unsupported(
            "reject claim PS0001 in the partner's system by hand".into(),
        ))
    }
}

/// [`broker`] whose mutuelle (MUT-X) is `adapter`.
pub(crate) fn broker_with_adapter(dir: &std::path::Path, adapter: Arc<dyn Adapter>) -> Arc<Broker> {
    build_with(dir, LimitsConfig::default(), adapter)
}

/// [`broker`] whose mutuelle is [`CannotCancel`].
pub(crate) fn broker_that_cannot_cancel(dir: &std::path::Path) -> Arc<Broker> {
    build_with(dir, LimitsConfig::default(), Arc::new(CannotCancel))
}

/// A broker on a fresh SQLite store in `dir`, with one scheme (CNSS, XOF)
/// and one remote mutuelle (MUT-X, [`HangsOnce`], a 2 s deadline), on a
/// clock that follows tokio's from [`T0`].
pub(crate) fn broker(dir: &std::path::Path) -> Arc<Broker> {
    build(dir, LimitsConfig::default(), 0)
}

/// [`broker`] whose mutuelle answers its first call too.
pub(crate) fn answering_broker(dir: &std::path::Path) -> Arc<Broker> {
    build(dir, LimitsConfig::default(), 1)
}

/// [`broker`] with other limits.
pub(crate) fn broker_with(dir: &std::path::Path, limits: LimitsConfig) -> Arc<Broker> {
    build(dir, limits, 0)
}

/// A broker whose one partner (MUT-X, a grpc partner that is never
/// called) is built from `adapter`'s settings, as `serve` builds them.
pub(crate) fn broker_with_partner(
    dir: &std::path::Path,
    adapter: &passerelle_adapters::AdapterConfig,
) -> Arc<Broker> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("t.db")).unwrap());
    let (audit, _task) = AuditSink::start(store.clone());
    let data: Arc<dyn passerelle_adapters::RulesData> =
        Arc::new(crate::store::RulesDataStore(store.clone()));
    Arc::new(Broker::new(BrokerParts {
        store,
        schemes: vec![],
        partners: vec![Partner {
            id: "MUT-X".into(),
            name: "MUT-X".into(),
            kind: adapter.kind(),
            adapter: adapter.live("MUT-X", dir, data).unwrap(),
            deadline: Duration::from_secs(2),
            slots: PartnerSlots::new(Some(4)),
            probe: None,
        }],
        operators: vec![],
        retry: RetryConfig::default(),
        limits: LimitsConfig::default(),
        breaker: Default::default(),
        spans: Arc::new(crate::otel::Spans::off()),
        audit,
        clock: Clock::following_tokio(T0),
    }))
}

fn build(dir: &std::path::Path, limits: LimitsConfig, calls_before: u32) -> Arc<Broker> {
    build_with(
        dir,
        limits,
        Arc::new(HangsOnce(AtomicU32::new(calls_before))),
    )
}

fn build_with(
    dir: &std::path::Path,
    limits: LimitsConfig,
    adapter: Arc<dyn Adapter>,
) -> Arc<Broker> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("t.db")).unwrap());
    let (audit, _task) = AuditSink::start(store.clone());
    Arc::new(Broker::new(BrokerParts {
        store,
        schemes: vec![Scheme {
            id: "CNSS".into(),
            name: "CNSS".into(),
            currency: "XOF".into(),
            parent: None,
        }],
        partners: vec![Partner {
            id: "MUT-X".into(),
            name: "MUT-X".into(),
            kind: AdapterKind::Grpc,
            adapter: adapter.into(),
            deadline: Duration::from_secs(2),
            slots: PartnerSlots::new(Some(4)),
            probe: None,
        }],
        operators: vec![],
        retry: RetryConfig {
            base_ms: BACK_OFF.as_millis() as u64,
            max_ms: 10 * BACK_OFF.as_millis() as u64,
            max_per_second: 0,
            ..Default::default()
        },
        limits,
        breaker: Default::default(),
        spans: Arc::new(crate::otel::Spans::off()),
        audit,
        clock: Clock::following_tokio(T0),
    }))
}
