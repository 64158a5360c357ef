//! Assembles a running broker: store, adapters, the retry worker, the audit
//! writer, and the tonic server with health and reflection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use passerelle_proto::admin::v1::admin_service_server::AdminServiceServer;
use passerelle_proto::product::v1::product_service_server::ProductServiceServer;
use passerelle_proto::roster::v1::roster_service_server::RosterServiceServer;
use passerelle_proto::scheme::v1::scheme_service_server::SchemeServiceServer;
use passerelle_proto::settlement::v1::settlement_service_server::SettlementServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::admin::AdminApi;
use crate::api::auth::Authenticate;
use crate::api::product::ProductApi;
use crate::api::roster::RosterApi;
use crate::api::scheme::SchemeApi;
use crate::api::settlement::SettlementApi;
use crate::audit::AuditSink;
use crate::config::Config;
use crate::net::{ConnLimits, Listener, Refusals};
use crate::service::{Broker, BrokerParts, Clock, Partner, Scheme};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{PutProduct, RulesDataStore, Store, StoreError};
use crate::tls::TlsServer;
use tonic::service::interceptor::InterceptedService;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    /// The store's own words (a backend failure starts with "store:").
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
}

/// How often partners' TLS material and secrets are checked for changes
/// when the broker has no `[tls]` table (with one, its
/// `reload_interval_s`).
pub const PARTNER_FILES_CHECK: Duration = Duration::from_secs(10);

/// A broker serving on a socket.
pub struct Running {
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    /// The TLS listener, to reload; `None` on a plaintext listener.
    pub tls: Option<Arc<TlsServer>>,
    /// Refusals of unauthenticated callers, aggregated per interval.
    pub refusals: Arc<Refusals>,
    /// Open connections per peer address.
    pub connections: Arc<ConnLimits>,
    /// The operations listener's address (`[metrics]`), if any.
    pub ops_addr: Option<SocketAddr>,
    /// Whether it speaks HTTPS (off loopback, or `[metrics] tls = true`).
    pub ops_tls: bool,
    /// The console's address (`[console]`), if any.
    pub console_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    /// Stops the operations listener, once calls have drained (until then
    /// `/readyz` answers 503 "stopping").
    ops_shutdown: watch::Sender<bool>,
    /// The operations listener's task: it ends once it has closed.
    ops_task: Option<JoinHandle<()>>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    worker: JoinHandle<()>,
}

impl Running {
    /// Reloads the TLS material now (what SIGHUP does): the listener's
    /// certificate, key, CAs and CRLs, then every partner's TLS material and
    /// secrets (each adapter rebuilt, so that no pooled connection made with
    /// the old material serves another call). Returns how many inbound
    /// connections were closed because their certificate no longer verifies,
    /// and the partners whose files could not be used (each logged; its
    /// adapter in force stays). An error is the listener's: its old
    /// material stays in force, and partners are left untouched.
    pub fn reload_tls(&self) -> Result<(usize, Vec<(String, String)>), String> {
        let closed = match &self.tls {
            None => 0,
            Some(t) => t.reload().map_err(|e| e.to_string())?,
        };
        Ok((closed, self.broker.reload_partners(true).failed))
    }

    /// Stops accepting calls, lets calls in flight finish, stops the worker
    /// and flushes the audit log.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.worker.await;
        self.refusals.flush();
        self.broker.audit().flush().await;
        self.broker.spans().shutdown();
        let _ = self.ops_shutdown.send(true);
        if let Some(task) = self.ops_task {
            let _ = task.await;
        }
    }
}

/// Loads the config's products into the store, all or none; a used product
/// that changed is an error naming it.
pub async fn load_products(cfg: &Config, store: &dyn Store) -> Result<(), StartError> {
    if cfg.products.is_empty() {
        return Ok(());
    }
    match store.put_products(&cfg.products, None).await {
        Ok(results) => {
            for (p, r) in cfg.products.iter().zip(results) {
                match r {
                    PutProduct::Inserted => {
                        tracing::info!(product = %p.id, version = p.version, "product loaded")
                    }
                    PutProduct::Replaced => {
                        tracing::info!(product = %p.id, version = p.version, "product updated (unused)")
                    }
                    PutProduct::Unchanged => {}
                }
            }
            Ok(())
        }
        Err(StoreError::ProductInUse(m)) => Err(StartError::Config(format!(
            "products: product {m} is used by claims and cannot change: declare a new version with a later valid_from"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Where the broker's spans go (`[traces]`).
fn spans(cfg: &Config) -> Result<crate::otel::Spans, StartError> {
    match &cfg.traces {
        None => Ok(crate::otel::Spans::off()),
        #[cfg(feature = "otlp")]
        Some(t) => crate::otel::Spans::otlp(&t.otlp_endpoint).map_err(StartError::Config),
        #[cfg(not(feature = "otlp"))]
        Some(_) => Err(StartError::Config(
            "traces.otlp_endpoint: this passerelle was built without OTLP export".into(),
        )),
    }
}

/// Builds the broker on a store; `base_dir` resolves relative paths.
pub async fn build_broker(
    cfg: &Config,
    base_dir: &Path,
    store: Arc<dyn Store>,
) -> Result<Arc<Broker>, StartError> {
    load_products(cfg, store.as_ref()).await?;
    let data: Arc<dyn passerelle_adapters::RulesData> = Arc::new(RulesDataStore(store.clone()));
    let mut partners = Vec::with_capacity(cfg.partners.len());
    for (i, p) in cfg.partners.iter().enumerate() {
        let adapter = p
            .adapter
            .live(&p.id, base_dir, data.clone())
            .map_err(|e| StartError::Config(format!("partners[{i}]: {e}")))?;
        let kind = p.adapter.kind();
        // A rules mutuelle is answered in this process: no bulkhead.
        let slots = (kind != passerelle_adapters::AdapterKind::Rules)
            .then_some(cfg.limits.max_calls_per_partner);
        partners.push(Partner {
            id: p.id.clone(),
            name: p.name.clone(),
            kind,
            adapter,
            deadline: Duration::from_millis(p.deadline_ms()),
            slots: crate::admission::PartnerSlots::new(slots),
            probe: p.probe.clone(),
        });
    }
    let schemes = cfg
        .schemes
        .iter()
        .map(|s| Scheme {
            id: s.id.clone(),
            name: s.name.clone(),
            currency: s.currency.clone(),
            parent: s.parent.clone(),
        })
        .collect();
    let (audit, _task) = AuditSink::start(store.clone());
    Ok(Arc::new(Broker::new(BrokerParts {
        store,
        schemes,
        partners,
        operators: cfg.operators.iter().map(|o| o.id.clone()).collect(),
        retry: cfg.retry.clone(),
        limits: cfg.limits.clone(),
        breaker: cfg.breaker.clone(),
        spans: Arc::new(spans(cfg)?),
        audit,
        clock: cfg
            .clock_start_ms
            .map_or_else(Clock::system, Clock::following_tokio),
    })))
}

/// Opens the configured store (PostgreSQL when `[store.postgres]` is set,
/// else SQLite). With `migrate`, applies pending migrations first; without,
/// refuses a schema older than this binary, saying to run `passerelle migrate`.
pub async fn open_store(
    cfg: &Config,
    base_dir: &Path,
    migrate: bool,
) -> Result<Arc<dyn Store>, StartError> {
    let store: Arc<dyn Store> = match &cfg.store.postgres {
        Some(pg) => {
            let s = PgStore::new(pg, base_dir)?;
            if migrate {
                s.migrate().await?;
            } else {
                s.check_restored().await?;
            }
            Arc::new(s)
        }
        None => {
            let path = cfg.sqlite_path(base_dir);
            if migrate {
                Arc::new(SqliteStore::open(&path)?)
            } else {
                Arc::new(SqliteStore::open_existing(&path)?)
            }
        }
    };
    let (found, want) = store.schema_status().await?;
    if found < want {
        return Err(StoreError::SchemaTooOld { found, want }.into());
    }
    if found > want {
        return Err(StoreError::SchemaTooNew { found, want }.into());
    }
    Ok(store)
}

/// The retry worker, on a thread of its own at niceness `nice` (a current-
/// thread runtime): the kernel gives a core to the runtime serving live
/// calls first, so that a backlog's delivery does not hold up eligibility
/// checks at the counter (on the benchmark's two cores, live p99 while
/// draining 1.4-2.2 ms before, 1.1-1.3 ms after, against about 0.7 ms idle).
/// Returns once the thread runs at that priority; the returned handle ends
/// when the worker does.
async fn spawn_worker(
    broker: Arc<Broker>,
    nice: i32,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<()>> {
    let (done, ended) = tokio::sync::oneshot::channel::<()>();
    let (set, ready) = tokio::sync::oneshot::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("retry-worker".into())
        .spawn(move || {
            if nice != 0
                && let Err(e) =
                    rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice)
            {
                tracing::warn!(error = %e, nice, "cannot lower the retry worker's priority");
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = set.send(Err(e));
                    return;
                }
            };
            let _ = set.send(Ok(()));
            runtime.block_on(broker.run_worker(shutdown));
            let _ = done.send(());
        })?;
    ready
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the retry worker's thread ended")))?;
    Ok(tokio::spawn(async move {
        let _ = ended.await;
    }))
}

/// Serves a broker built on `store` on `listener`.
/// `base_dir` resolves relative paths of the config (TLS files).
pub async fn start_with_store(
    cfg: &Config,
    base_dir: &Path,
    store: Arc<dyn Store>,
    listener: TcpListener,
) -> Result<Running, StartError> {
    crate::net::check_open_files(crate::net::files_needed(cfg));
    // The TLS material first: a bad file refuses before anything starts.
    let tls = match &cfg.tls {
        None => None,
        Some(t) => {
            Some(TlsServer::new(t.files(base_dir)).map_err(|e| StartError::Config(e.to_string()))?)
        }
    };
    // The operations listener's address next: a port taken refuses start-up
    // before anything runs.
    let ops_listener = match &cfg.metrics {
        None => None,
        Some(m) => Some(
            TcpListener::bind(m.listen)
                .await
                .map_err(|e| StartError::Config(format!("metrics.listen {}: {e}", m.listen)))?,
        ),
    };
    // The console's too.
    let console_listener = match &cfg.console {
        None => None,
        Some(c) => Some(
            TcpListener::bind(c.listen)
                .await
                .map_err(|e| StartError::Config(format!("console.listen {}: {e}", c.listen)))?,
        ),
    };
    let broker = build_broker(cfg, base_dir, store).await?;
    let addr = listener.local_addr()?;
    let (shutdown, rx) = watch::channel(false);
    let (ops_shutdown, ops_rx) = watch::channel(false);
    let limits = &cfg.limits;
    let refusals = {
        let audit = broker.audit().clone();
        Refusals::new(
            Box::new(move |row| audit.try_record(row)),
            Duration::from_secs(limits.refusal_interval_s),
            limits.refusal_peers,
            if cfg.tls.is_some() { "tls" } else { "tcp" },
            broker.metrics().refused(),
        )
    };
    tokio::spawn(refusals.clone().run(rx.clone()));
    let connections = ConnLimits::new(limits.max_connections_per_peer);
    let listener = Listener::new(
        listener,
        connections.clone(),
        refusals.clone(),
        Duration::from_secs(limits.accept_warn_interval_s),
    );

    let worker = spawn_worker(broker.clone(), cfg.retry.nice, rx.clone()).await?;
    tokio::spawn(
        broker
            .clone()
            .run_retention(cfg.retention.clone(), rx.clone()),
    );
    // Pauses and open circuits stored by an earlier run or another broker
    // are in force before the first call.
    if let Err(e) = broker.refresh_controls().await {
        tracing::warn!(error = %e, "cannot read the partners' controls; the retry worker tries again");
    }
    tokio::spawn(broker.clone().run_probes(rx.clone()));

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<SchemeServiceServer<SchemeApi>>()
        .await;
    health_reporter
        .set_serving::<RosterServiceServer<RosterApi>>()
        .await;
    health_reporter
        .set_serving::<SettlementServiceServer<SettlementApi>>()
        .await;
    health_reporter
        .set_serving::<ProductServiceServer<ProductApi>>()
        .await;
    health_reporter
        .set_serving::<AdminServiceServer<AdminApi>>()
        .await;
    // Both reflection versions: grpcurl and older tools still ask v1alpha.
    let reflection_builder = || {
        let mut b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(passerelle_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc's error details: grpcurl decodes an error's
            // ErrorInfo and BadRequest through reflection.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET);
        // List what this server serves, not every contract it knows
        // (MutuellePartner is implemented by mutuelles, not the broker).
        for name in passerelle_proto::json::BROKER_SERVICES {
            b = b.with_service_name(name);
        }
        b.with_service_name("grpc.health.v1.Health")
    };
    let reflection = reflection_builder()
        .build_v1()
        .map_err(|e| StartError::Config(format!("reflection: {e}")))?;
    let reflection_alpha = reflection_builder()
        .build_v1alpha()
        .map_err(|e| StartError::Config(format!("reflection: {e}")))?;

    let max = cfg.limits.max_message_bytes;
    let authenticate = Authenticate {
        directory: broker.directory().clone(),
        plaintext: cfg.tls.is_none(),
        refusals: refusals.clone(),
    };
    let scheme = InterceptedService::new(
        SchemeServiceServer::new(SchemeApi::new(broker.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(4 * max),
        authenticate.clone(),
    );
    // An import's answer lists every member that changes (500,000 at most).
    let roster = InterceptedService::new(
        RosterServiceServer::new(RosterApi::new(broker.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(16 * max),
        authenticate.clone(),
    );
    let settlement = InterceptedService::new(
        SettlementServiceServer::new(SettlementApi::new(broker.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(16 * max),
        authenticate.clone(),
    );
    let product = InterceptedService::new(
        ProductServiceServer::new(ProductApi::new(broker.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(4 * max),
        authenticate.clone(),
    );
    let admin = InterceptedService::new(
        AdminServiceServer::new(AdminApi::new(broker.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(4 * max),
        authenticate.clone(),
    );

    let edge = crate::api::edge::RefusedLayer {
        audit: broker.audit().clone(),
        directory: broker.directory().clone(),
        plaintext: cfg.tls.is_none(),
        clock: *broker.clock(),
        metrics: broker.metrics().clone(),
    };
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(limits.max_concurrent_streams))
        .http2_max_header_list_size(Some(limits.max_header_bytes))
        // HTTP/1.1 for the JSON door (curl, PHP); gRPC needs HTTP/2.
        .accept_http1(true)
        // The JSON door (Connect protocol) turns its calls into gRPC calls
        // of this same router; it also owns every call's deadline
        // (request_timeout_ms, or the client's shorter one).
        .layer(crate::api::connect::ConnectLayer {
            max_message_bytes: max,
            request_timeout: Duration::from_millis(limits.request_timeout_ms),
            edge: edge.clone(),
            authenticate: authenticate.clone(),
        })
        // Calls refused before their handler (undecodable or oversized
        // bodies) are answered INVALID_ARGUMENT / OUT_OF_RANGE and audited.
        .layer(edge)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(scheme)
        .add_service(roster)
        .add_service(settlement)
        .add_service(product)
        .add_service(admin);
    let mut stop = rx.clone();
    let until_stopped = async move {
        let _ = stop.wait_for(|v| *v).await;
    };
    // Without a [tls] table, partners' files are still watched, every
    // PARTNER_FILES_CHECK.
    let every = match &cfg.tls {
        Some(t) => Duration::from_secs(t.reload_interval_s),
        None => PARTNER_FILES_CHECK,
    };
    if !every.is_zero() {
        tokio::spawn(watch_tls_files(
            tls.clone(),
            broker.clone(),
            every,
            rx.clone(),
        ));
    }
    let server = match (&cfg.tls, &tls) {
        (Some(t), Some(tls)) => {
            let incoming = tls.clone().incoming(
                listener,
                refusals.clone(),
                Duration::from_millis(t.handshake_timeout_ms),
                limits.max_handshakes,
            );
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, until_stopped))
        }
        _ => {
            let incoming = listener.plaintext();
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, until_stopped))
        }
    };
    let mut ops_tls = false;
    let (ops_addr, ops_task) = match (&cfg.metrics, ops_listener) {
        (Some(m), Some(l)) => {
            // Plain HTTP on loopback only (checked with the config).
            let accept = match &cfg.tls {
                Some(t) if m.over_tls() => crate::ops::Accept::Tls(
                    Duration::from_millis(t.handshake_timeout_ms),
                    limits.max_handshakes,
                ),
                _ => crate::ops::Accept::Plain,
            };
            ops_tls = matches!(accept, crate::ops::Accept::Tls(..));
            let (a, task) = crate::ops::start(
                l,
                broker.clone(),
                tls.clone(),
                accept,
                refusals.clone(),
                rx.clone(),
                ops_rx,
            )?;
            (Some(a), Some(task))
        }
        _ => (None, None),
    };
    // HTTPS only (checked with the config: `[console]` needs `[tls]`); it
    // stops with the gRPC listener.
    let console_addr = match (console_listener, &cfg.tls, &tls) {
        (Some(l), Some(t), Some(server)) => {
            let (a, _task) = crate::console::start(
                l,
                broker.clone(),
                server.clone(),
                Duration::from_millis(t.handshake_timeout_ms),
                limits.max_handshakes,
                refusals.clone(),
                rx.clone(),
            )?;
            Some(a)
        }
        _ => None,
    };
    Ok(Running {
        addr,
        broker,
        tls,
        refusals,
        connections,
        ops_addr,
        ops_tls,
        console_addr,
        ops_shutdown,
        ops_task,
        shutdown,
        server,
        worker,
    })
}

/// Serves the configured broker on a socket bound to `cfg.listen`.
pub async fn start(cfg: &Config, base_dir: &Path) -> Result<Running, StartError> {
    let store = open_store(cfg, base_dir, false).await?;
    match store.slow_collation().await {
        Ok(None) => {}
        // Log lines are English.
        Ok(Some(collation)) => tracing::warn!(
            "{}",
            crate::console::i18n::Lang::En
                .t_args("store-slow-collation", &[("collation", &collation)])
        ),
        Err(e) => tracing::warn!(error = %e, "the database's collation could not be read"),
    }
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| StartError::Config(format!("listen {}: {e}", cfg.listen)))?;
    start_with_store(cfg, base_dir, store, listener).await
}

/// Reloads the TLS files when they change on disk: the listener's, then
/// the partners' (all of them when the listener's changed, so that no
/// partner connection outlives a reload of the broker's material).
async fn watch_tls_files(
    tls: Option<Arc<TlsServer>>,
    broker: Arc<Broker>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let listener = match tls.as_ref().map(|t| t.reload_if_changed()) {
            None | Some(Ok(None)) => false,
            Some(Ok(Some(closed))) => {
                tracing::info!(closed, "tls material reloaded");
                true
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "tls reload failed; keeping the previous material");
                false
            }
        };
        // Logged by reload_partners, partner by partner.
        let _ = broker.reload_partners(listener);
    }
}
