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
pub(crate) struct HangsOnce(pub(crate) AtomicU32);

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

/// The product both mutuelles of [`two_mutuelles`] declare: hospital care
/// and optics need a prior authorization (valid 30 days, 10 % tolerance);
/// 100,000 a year per beneficiary, 60,000 per stay; one consultation a day.
pub(crate) const AUTHORIZED_PRODUCT: &str = r#"
mutuelle_id = "{MUT}"
id = "BASE"
version = 1
name = "Base"
valid_from = "2025-01-01"
currency = "XOF"
beneficiary_year_limit = 100000
stay_limit = 60000

[[categories]]
category = "consultation"
tm_rate_bp = 10000

[[categories]]
category = "hospitalisation"
tm_rate_bp = 10000
overrun_rate_bp = 5000

[[categories]]
category = "optical"
tm_rate_bp = 10000

[prior_authorization]
categories = ["hospitalisation", "optical"]
validity_days = 30
tolerance_bp = 1000

[[act_limits]]
act_code = "CONS"
max = 1
per = "day"
"#;

/// Member `<p>-1` of MUT-`<p>`, scheme beneficiary `<p>-OK`.
pub(crate) fn member_of(p: &str) -> passerelle_domain::Member {
    toml::from_str(&format!(
        r#"
mutuelle_id = "MUT-{p}"
scheme_id = "CNSS"
beneficiary_id = "{p}-OK"
member_number = "{p}-1"
household_id = "H-{p}-1"
paid_until = "2027-12-31"
products = [{{ product_id = "BASE", start = "2025-01-01" }}]
"#
    ))
    .expect("test member")
}

/// A broker on the paused clock from [`T0`] with a rules mutuelle (MUT-R,
/// its product and ceilings in the broker's store) and a native gRPC one
/// (MUT-G: `sim`, served on 127.0.0.1:0, keeping its own), both declaring
/// [`AUTHORIZED_PRODUCT`], one member each (beneficiaries R-OK, G-OK).
pub(crate) async fn two_mutuelles(
    dir: &std::path::Path,
) -> (
    Arc<Broker>,
    passerelle_adapters::sim::SimMutuelle,
    tokio::task::JoinHandle<()>,
) {
    let product = |m: &str| -> passerelle_domain::Product {
        toml::from_str(&AUTHORIZED_PRODUCT.replace("{MUT}", m)).expect("test product")
    };
    let sim = passerelle_adapters::sim::SimMutuelle::new(
        "MUT-G",
        vec![member_of("G")],
        vec![product("MUT-G")],
    );
    let (addr, task) = sim.clone().start().await.expect("sim starts");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("t.db")).unwrap());
    store
        .upsert_members(&[member_of("R"), member_of("G")], 0)
        .await
        .unwrap();
    store.put_products(&[product("MUT-R")], None).await.unwrap();
    let (audit, _task) = AuditSink::start(store.clone());
    let data: Arc<dyn passerelle_adapters::RulesData> =
        Arc::new(crate::store::RulesDataStore(store.clone()));
    let live = |entry: &str, id: &str| {
        let cfg =
            passerelle_adapters::AdapterConfig::from_entry(toml::from_str(entry).unwrap()).unwrap();
        (cfg.kind(), cfg.live(id, dir, data.clone()).unwrap())
    };
    let (rk, rules) = live(r#"adapter = "rules""#, "MUT-R");
    let (gk, grpc) = live(
        &format!("adapter = \"grpc\"\n[grpc]\nendpoint = \"http://{addr}\"\ntimeout_ms = 2000\n"),
        "MUT-G",
    );
    let partner = |id: &str, kind, adapter| Partner {
        id: id.into(),
        name: id.into(),
        kind,
        adapter,
        deadline: Duration::from_secs(2),
        slots: PartnerSlots::new(Some(8)),
        probe: None,
    };
    let broker = Arc::new(Broker::new(BrokerParts {
        store,
        schemes: vec![Scheme {
            id: "CNSS".into(),
            name: "CNSS".into(),
            currency: "XOF".into(),
            parent: None,
        }],
        partners: vec![partner("MUT-R", rk, rules), partner("MUT-G", gk, grpc)],
        operators: vec![],
        retry: RetryConfig::default(),
        limits: LimitsConfig::default(),
        breaker: Default::default(),
        spans: Arc::new(crate::otel::Spans::off()),
        audit,
        clock: Clock::following_tokio(T0),
    }));
    (broker, sim, task)
}
