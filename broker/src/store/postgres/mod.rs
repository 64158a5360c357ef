//! The PostgreSQL store, for production: several broker replicas share one
//! database, and everything that must hold across them is enforced here.
//!
//! - Idempotency: the unique key (scheme_id, claim_id); a racing insert fails
//!   with a unique violation and is read back as the existing claim.
//! - Duplicate invoices: checked under a transaction-scoped advisory lock on
//!   (scheme, provider, invoice), so two replicas cannot both miss each other.
//! - Ceilings: `used + amount <= limit` conditional updates; under READ
//!   COMMITTED a second updater re-checks the row after the first commits.
//! - State transitions: the claim row is locked (`FOR UPDATE`) first.
//! - The change cursor: change numbers from transaction ids, read only
//!   below a horizon that in-flight claim writers hold back, so a reader of
//!   ListChangedClaims never skips a change that commits late and no
//!   writer waits on another for a number ([`changes`]).
//! - Work sharing: due claims are leased with `FOR UPDATE SKIP LOCKED`; the
//!   pruning job takes a transaction advisory lock or skips its turn.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use passerelle_domain::{CeilingKey, Date, LineShare, Member, Product, Usage, Used, date};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::core::{self, json};
use super::{
    AuditEntry, AuditStore, AuditTrail, Begin, ClaimFilter, ClaimPage, ClaimPeriods, ClaimRecord,
    ClaimStore, CloseUpTo, CoverageConflict, NewClaim, Outcome, PartnerActivity, PayeeTotal,
    PayeesFrom, PeriodRecord, ProductStore, PutProduct, RosterDiff, RosterImport, RosterStore,
    SettlementStore, StatementData, StatementPage, Store, StoreError, Totals, Transition,
};
use crate::audit::now_ms;
use crate::config::PostgresConfig;

mod approvals;
/// The schema version this binary writes.
mod audit;
mod authorizations;
mod changes;
mod claims;
mod migrations;
mod opening;
mod partners;
mod products;
mod roster;
mod settlement;
#[cfg(test)]
mod tests;
mod users;

use migrations::{MIGRATIONS, Replaces};

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A session's advisory lock ([`PgStore::session_lock`]) and the
/// connection, out of the pool, that holds it.
pub(super) struct SessionLock {
    client: deadpool_postgres::ClientWrapper,
    first_key: i32,
}

impl SessionLock {
    /// Lets go of the lock; the connection closes as it is dropped.
    pub(super) async fn release(self) -> Result<(), StoreError> {
        self.client
            .execute(
                "SELECT pg_advisory_unlock($1, hashtext(current_schema()))",
                &[&self.first_key],
            )
            .await?;
        Ok(())
    }
}

impl std::ops::Deref for SessionLock {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

impl std::ops::DerefMut for SessionLock {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.client
    }
}

/// Advisory lock keys (arbitrary, fixed).
const MIGRATE_LOCK: i64 = 0x7061_7373_6d69_6772; // "passmigr"
/// The first key of the lock of a schema's concurrent index builds (the
/// second: its name's hash).
const INDEX_LOCK: i32 = 0x7069_6478; // "pidx"
/// The first key of retention's lock (the second: the schema's name's
/// hash, so that the schemas of one database prune side by side).
const RETENTION_LOCK: i32 = 0x7265_746e; // "retn"
/// Making the audit log's months (`audit::AuditMonth`): replicas take
/// turns, per schema as above.
const PARTITION_LOCK: i32 = 0x6d6f_6e74; // "mont"

/// How long dropping a constraint a concurrent index replaces waits for its
/// table (`Replaces::Constraint`): meanwhile the table's readers and
/// writers queue behind it.
const CONSTRAINT_LOCK_TIMEOUT: &str = "500ms";

pub struct PgStore {
    pool: Pool,
    schema: String,
    /// The second key of this schema's writer mark ([`changes`]).
    mark: i64,
    products: super::ProductCache,
    /// The product in force on a date, as last read, with the products'
    /// generation of that read (`product_generation`, migration 17).
    products_on: std::sync::Mutex<ProductsOn>,
    /// The latest products' generation a read of this store has seen:
    /// every member read returns it ([`PgStore::member_rows`]).
    products_seen: std::sync::atomic::AtomicI64,
    /// `statement_timeout_ms` of the config, every connection's.
    statement_timeout_ms: u64,
    /// Set by [`Store::close`]: a connection that ends from then on ends
    /// because the broker stops, not because the database failed.
    closing: Arc<std::sync::atomic::AtomicBool>,
}

/// (mutuelle, product, date) -> (the products' generation read at, the
/// version in force then).
type ProductsOn = HashMap<(String, String, Date), (i64, Option<Product>)>;

/// Products in force on a date kept in memory (`PgStore::product_on`):
/// dates of care vary, so past this bound the memory starts again rather
/// than grow.
const PRODUCTS_ON_MAX: usize = 4096;

/// The SQLSTATE of `passerelle_refuse` (migration 15): a statement that
/// applies several ceilings at once fails with it, naming the ceiling
/// without room, so that none of its writes stays.
const REFUSED: &str = "PA001";

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if db.code().code() == REFUSED => {
                StoreError::CeilingConflict(db.message().to_string())
            }
            Some(db) => StoreError::Backend(format!("database: {}", db.message())),
            None => StoreError::Backend(format!("database: {}", with_causes(&e))),
        }
    }
}

/// Opens pooled connections and drives each on the runtime `rt`.
struct SpawnOn<T> {
    tls: T,
    rt: tokio::runtime::Handle,
    /// [`PgStore::closing`].
    closing: Arc<std::sync::atomic::AtomicBool>,
}

impl<T> deadpool_postgres::Connect for SpawnOn<T>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
{
    fn connect(
        &self,
        pg: &tokio_postgres::Config,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<
                        (tokio_postgres::Client, tokio::task::JoinHandle<()>),
                        tokio_postgres::Error,
                    >,
                > + Send
                + '_,
        >,
    > {
        let (pg, tls, closing) = (pg.clone(), self.tls.clone(), self.closing.clone());
        Box::pin(async move {
            let (client, conn) = pg.connect(tls).await?;
            let task = self.rt.spawn(async move {
                if let Err(e) = conn.await {
                    if closing.load(std::sync::atomic::Ordering::Acquire) {
                        tracing::debug!(error = %e, "PostgreSQL connection ended as the broker stops");
                    } else {
                        tracing::warn!(error = %with_causes(&e), "PostgreSQL connection ended");
                    }
                }
            });
            Ok((client, task))
        })
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Backend(format!("database unavailable: {}", with_causes(&e)))
    }
}

/// An error and its causes, each said once: a connection refused reads
/// "db error" alone, where PostgreSQL's own words (`database "x" does not
/// exist`, `password authentication failed`, the socket's refusal) are
/// what an operator acts on.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !said.is_empty() && !out.contains(&said) {
            out.push_str(": ");
            out.push_str(&said);
        }
        cause = c.source();
    }
    out
}

type P<'a> = &'a (dyn ToSql + Sync);

async fn q<C: GenericClient + Sync>(c: &C, sql: &str, p: &[P<'_>]) -> Result<Vec<Row>, StoreError> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query(&st, p).await?)
}

async fn q1<C: GenericClient + Sync>(
    c: &C,
    sql: &str,
    p: &[P<'_>],
) -> Result<Option<Row>, StoreError> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&st, p).await?)
}

async fn x<C: GenericClient + Sync>(c: &C, sql: &str, p: &[P<'_>]) -> Result<u64, StoreError> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.execute(&st, p).await?)
}

/// Takes the transaction-scoped advisory lock named `key` (held until the
/// transaction ends): the writes it guards run one at a time across
/// replicas.
async fn advisory_lock<C: GenericClient + Sync>(c: &C, key: &str) -> Result<(), StoreError> {
    x(
        c,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&key],
    )
    .await?;
    Ok(())
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Builds the rustls client config for TLS to the database (ring only).
fn tls_config(ca_file: &std::path::Path) -> Result<rustls::ClientConfig, StoreError> {
    // Read as strictly as the listener's CA: an empty or unreadable file is
    // refused at start-up, never taken as an empty trust store.
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::tls::certs(ca_file).map_err(|e| backend(e.to_string()))? {
        roots
            .add(cert)
            .map_err(|e| backend(format!("{}: {e}", ca_file.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(backend)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl PgStore {
    /// Builds the pool; connections open on first use. `base` resolves a
    /// relative TLS CA path.
    pub fn new(cfg: &PostgresConfig, base: &std::path::Path) -> Result<PgStore, StoreError> {
        let mut pg: tokio_postgres::Config = cfg
            .url
            .parse()
            .map_err(|e| backend(format!("store.postgres.url: {e}")))?;
        let schema = cfg.schema.clone().unwrap_or_else(|| "public".to_string());
        pg.connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
        pg.options(format!(
            "-c search_path={schema} -c statement_timeout={}",
            cfg.statement_timeout_ms
        ));
        pg.application_name("passerelle");
        let mgr_cfg = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        // Connections are driven by a task on the runtime that opened the
        // store, whichever task first needs one: the retry worker runs on a
        // thread of lower priority (`server::spawn_worker`), and a pooled
        // connection opened there would have served live calls at that
        // priority.
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| backend("the PostgreSQL store is opened within a tokio runtime"))?;
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mgr = match &cfg.tls {
            None => Manager::from_connect(
                pg,
                SpawnOn {
                    tls: tokio_postgres::NoTls,
                    rt,
                    closing: closing.clone(),
                },
                mgr_cfg,
            ),
            Some(t) => {
                let path = if t.ca_file.is_absolute() {
                    t.ca_file.clone()
                } else {
                    base.join(&t.ca_file)
                };
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(&path)?);
                Manager::from_connect(
                    pg,
                    SpawnOn {
                        tls,
                        rt,
                        closing: closing.clone(),
                    },
                    mgr_cfg,
                )
            }
        };
        let wait = Duration::from_millis(cfg.wait_timeout_ms);
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size)
            .wait_timeout(Some(wait))
            .create_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)))
            .recycle_timeout(Some(wait))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(backend)?;
        Ok(PgStore {
            pool,
            mark: changes::mark_key(&schema),
            schema,
            products: Default::default(),
            products_on: Default::default(),
            products_seen: Default::default(),
            statement_timeout_ms: cfg.statement_timeout_ms,
            closing,
        })
    }

    /// The rows of a member read on a claim's or an eligibility's path
    /// (`get_member`, `find_members`, `members_for`): each a member's body
    /// (none: the stored claim's row of `members_for`), then the products'
    /// generation (migration 17), recorded here. The members, and whether
    /// a row without a body came. A rules adjudication always reads its
    /// member first (routing, or the adapter's own `find_member`), so the
    /// product it then reads (`product_on`) is never older than what the
    /// database held at that member read.
    fn member_rows(&self, rows: &[Row]) -> Result<(Vec<Member>, bool), StoreError> {
        let mut members = Vec::with_capacity(rows.len());
        let mut marker = false;
        for r in rows {
            match r.try_get::<_, Option<&str>>(0)? {
                Some(_) => members.push(body(r, "member body")?),
                None => marker = true,
            }
            self.saw_products(r.try_get(1)?);
        }
        Ok((members, marker))
    }

    /// A products' generation read: a product served from memory must have
    /// been read at it or later.
    fn saw_products(&self, generation: i64) {
        self.products_seen
            .fetch_max(generation, std::sync::atomic::Ordering::AcqRel);
    }

    fn products_on(&self) -> std::sync::MutexGuard<'_, ProductsOn> {
        self.products_on.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Applies pending migrations; safe when several brokers run it at once
    /// (an advisory lock makes them take turns). Returns the version.
    pub async fn migrate(&self) -> Result<i64, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let first: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
            .await?
            .get(0);
        if !first {
            tracing::info!("waiting for another migrate of this database to commit");
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
                .await?;
        }
        // A migration builds indexes over every claim: it is not cut short
        // by the statement timeout meant for live calls.
        tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{}\"; CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
            self.schema
        ))
        .await?;
        let found = Self::version_in(&tx).await?;
        core::migrations_to_apply(found, SCHEMA_VERSION)?;
        let mut log = core::MigrationLog::start(
            found,
            SCHEMA_VERSION,
            "readers and writers of the tables they alter",
        );
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let version = i as i64 + 1;
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&version],
            )
            .await?;
            log.ran(version);
        }
        if found < 18 {
            // The months ahead in the transaction that makes the
            // partitioned log: no row written by a replica meanwhile (old
            // binaries run during an upgrade) lands in the default
            // partition, where it would keep its month from being made.
            let (mut m, last) = (
                audit::AuditMonth::of(now_ms()),
                audit::AuditMonth::of(now_ms() + audit::MONTHS_AHEAD_MS),
            );
            while m <= last {
                audit::make_month(&tx, m).await?;
                m = m.next();
            }
        }
        changes::rebase_if_restored(&tx).await?;
        tx.commit().await?;
        drop(c);
        log.committed();
        self.finish_beside_writers().await?;
        self.make_audit_months(now_ms(), now_ms() + audit::MONTHS_AHEAD_MS)
            .await?;
        Ok(SCHEMA_VERSION)
    }

    /// The advisory lock `(first_key, the schema's name's hash)` at the
    /// session's level, tried (never waited for) on a connection taken out
    /// of the pool: `None` if another session holds it. Out of the pool
    /// before the lock is tried, so that a caller cut short, even while the
    /// answer is on its way, leaves no pooled connection holding it: the
    /// connection closes when the [`SessionLock`] is dropped, and the
    /// server lets go of the lock with it.
    pub(super) async fn session_lock(
        &self,
        first_key: i32,
    ) -> Result<Option<SessionLock>, StoreError> {
        let client = deadpool_postgres::Object::take(self.client().await?);
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))",
                &[&first_key],
            )
            .await?
            .get(0);
        Ok(got.then_some(SessionLock { client, first_key }))
    }

    /// The migrations' work done after they commit, without holding
    /// writers, with no statement timeout: builds the indexes of
    /// [`migrations::CONCURRENT_INDEXES`] that are missing or invalid and
    /// drops what each replaces, then validates the checks of
    /// [`migrations::DEFERRED_CHECKS`] not validated yet. On a connection
    /// taken out of the pool, so that these session settings never serve a
    /// live call.
    ///
    /// One replica at a time per schema, by a lock it only tries: a build
    /// waits for every older transaction of the database, so a replica
    /// waiting for the lock (in a statement, thus a transaction) would wait
    /// for the build that waits for it. A replica that does not get the
    /// lock leaves the work to the one that has it.
    async fn finish_beside_writers(&self) -> Result<(), StoreError> {
        let Some(c) = self.session_lock(INDEX_LOCK).await? else {
            tracing::info!(
                "another migrate holds this schema's index lock: it builds any missing index and \
                 validates any pending check; this one returns without waiting"
            );
            return Ok(());
        };
        c.batch_execute("SET statement_timeout = 0").await?;
        for (name, create, replaces) in migrations::CONCURRENT_INDEXES {
            let valid: Option<bool> = c
                .query_opt(
                    "SELECT i.indisvalid FROM pg_index i \
                     WHERE i.indexrelid = to_regclass(format('%I.%I', current_schema(), $1::TEXT))",
                    &[name],
                )
                .await?
                .map(|r| r.get(0));
            if valid != Some(true) {
                tracing::info!(index = %name, "building an index over every claim, beside writers");
                let t = std::time::Instant::now();
                if valid == Some(false) {
                    // An interrupted build's, dropped first: that waits for
                    // older transactions too.
                    c.batch_execute(&format!("DROP INDEX CONCURRENTLY {name}"))
                        .await?;
                }
                c.batch_execute(create).await?;
                tracing::info!(
                    index = %name,
                    ms = t.elapsed().as_millis() as u64,
                    "index built"
                );
            }
            match replaces {
                Replaces::Nothing => {}
                Replaces::Index(old) => {
                    let there = c
                        .query_one(
                            "SELECT to_regclass(format('%I.%I', current_schema(), $1::TEXT)) IS NOT NULL",
                            &[old],
                        )
                        .await?
                        .get::<_, bool>(0);
                    if there {
                        let t = std::time::Instant::now();
                        c.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {old}"))
                            .await?;
                        tracing::info!(
                            index = %old,
                            by = %name,
                            ms = t.elapsed().as_millis() as u64,
                            "replaced index dropped"
                        );
                    }
                }
                Replaces::Constraint(table, old) => {
                    // Looked for first: dropping takes the table's strongest
                    // lock, which every later migrate would queue claims
                    // behind for nothing.
                    let there = c
                        .query_opt(
                            "SELECT 1 FROM pg_constraint WHERE conname = $2 AND conrelid = \
                             to_regclass(format('%I.%I', current_schema(), $1::TEXT))",
                            &[table, old],
                        )
                        .await?
                        .is_some();
                    if !there {
                        continue;
                    }
                    let drop = format!(
                        "SET lock_timeout = '{CONSTRAINT_LOCK_TIMEOUT}'; \
                         ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {old}; \
                         SET lock_timeout = 0"
                    );
                    let t = std::time::Instant::now();
                    match c.batch_execute(&drop).await {
                        Ok(()) => tracing::info!(
                            constraint = %old,
                            by = %name,
                            ms = t.elapsed().as_millis() as u64,
                            "replaced constraint dropped"
                        ),
                        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                            c.batch_execute("SET lock_timeout = 0").await?;
                            tracing::warn!(
                                index = name,
                                constraint = old,
                                "{table} busy: the constraint {name} replaces is kept \
                                 until the next migrate"
                            );
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        // Last: a validation that fails (a lock wait cut short by a
        // timeout set for the role) leaves the indexes built, and the next
        // migrate tries it again; meanwhile PostgreSQL enforces the check
        // on every write.
        for (table, check) in migrations::DEFERRED_CHECKS {
            let pending = c
                .query_opt(
                    "SELECT 1 FROM pg_constraint WHERE conname = $2 AND NOT convalidated \
                     AND conrelid = to_regclass(format('%I.%I', current_schema(), $1::TEXT))",
                    &[table, check],
                )
                .await?
                .is_some();
            if pending {
                tracing::info!(%check, "validating a check against the stored rows, beside writers");
                let t = std::time::Instant::now();
                c.batch_execute(&format!("ALTER TABLE {table} VALIDATE CONSTRAINT {check}"))
                    .await?;
                tracing::info!(
                    %check,
                    ms = t.elapsed().as_millis() as u64,
                    "check validated"
                );
            }
        }
        // The session's lock ends with the connection, dropped here.
        Ok(())
    }

    /// At start-up without migrating (`serve`): the restore check of
    /// [`changes`], under the migration lock, once the schema is current
    /// (an older or newer schema is refused by the caller).
    pub async fn check_restored(&self) -> Result<(), StoreError> {
        if self.schema_version().await? != SCHEMA_VERSION {
            return Ok(());
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
            .await?;
        changes::rebase_if_restored(&tx).await?;
        tx.commit().await?;
        drop(c);
        self.make_audit_months(now_ms(), now_ms() + audit::MONTHS_AHEAD_MS)
            .await
    }

    async fn version_in<C: GenericClient + Sync>(c: &C) -> Result<i64, StoreError> {
        let row = c
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .await?;
        Ok(row.get::<_, i64>(0))
    }

    /// The schema version found, 0 for an empty database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let c = self.client().await?;
        let exists = c
            .query_one(
                "SELECT to_regclass(current_schema() || '.schema_version') IS NOT NULL",
                &[],
            )
            .await?
            .get::<_, bool>(0);
        if !exists {
            return Ok(0);
        }
        Self::version_in(&c).await
    }
}

impl core::Row for Row {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(i)?)
    }
}

/// The JSON body in the first column of a row.
fn body<T: serde::de::DeserializeOwned>(r: &Row, what: &str) -> Result<T, StoreError> {
    core::from_json(what, r.try_get::<_, &str>(0)?.as_bytes())
}

/// Every row, each decoded by `f` (a [`core`] decoder).
fn decode<T>(
    rows: &[Row],
    f: impl Fn(&dyn core::Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(|r| f(r)).collect()
}

async fn lines_of<C: GenericClient + Sync>(
    c: &C,
    pk: i64,
) -> Result<Option<Vec<LineShare>>, StoreError> {
    let rows = q(
        c,
        &format!(
            "SELECT {} FROM claim_lines WHERE claim_pk = $1 ORDER BY sequence",
            core::LINE_SHARE_COLS
        ),
        &[&pk],
    )
    .await?;
    let out = decode(&rows, core::line_share)?;
    Ok((!out.is_empty()).then_some(out))
}

/// How [`load`] reads a claim.
#[derive(Clone, Copy)]
enum Read {
    Plain,
    /// To change it: the writer mark of the schema `mark` is taken, then
    /// the claim's row lock, both held until the transaction ends.
    ForChange {
        mark: i64,
    },
}

/// Loads a claim, with its lines.
async fn load<C: GenericClient + Sync>(
    c: &C,
    scheme: &str,
    claim_id: &str,
    how: Read,
) -> Result<Option<(i64, ClaimRecord)>, StoreError> {
    let sql = match how {
        Read::Plain => format!(
            "SELECT {} FROM claims WHERE scheme_id = $1 AND claim_id = $2",
            core::CLAIM_COLS
        ),
        // The mark is a FROM item: it is taken before any row is locked,
        // so before the row lock gives the transaction its id.
        Read::ForChange { mark } => format!(
            "SELECT {} FROM claims, {} WHERE scheme_id = $1 AND claim_id = $2 FOR UPDATE OF claims",
            core::CLAIM_COLS,
            changes::mark_from(mark)
        ),
    };
    let Some(row) = q1(c, &sql, &[&scheme, &claim_id]).await? else {
        return Ok(None);
    };
    let (pk, mut rec) = core::claim(&row)?;
    if core::may_have_lines(rec.state) {
        rec.shares = lines_of(c, pk).await?;
    }
    Ok(Some((pk, rec)))
}

async fn load_existing<C: GenericClient + Sync>(
    c: &C,
    scheme: &str,
    claim_id: &str,
    how: Read,
) -> Result<(i64, ClaimRecord), StoreError> {
    load(c, scheme, claim_id, how)
        .await?
        .ok_or_else(|| core::not_found_claim(scheme, claim_id))
}

async fn put_one<C: GenericClient + Sync>(c: &C, p: &Product) -> Result<PutProduct, StoreError> {
    let body = json(p);
    let version = p.version as i64;
    let from = date::format(p.valid_from);
    let to = p.valid_to.map(date::format);
    let existing = q1(
        c,
        "SELECT body, used FROM products WHERE mutuelle_id = $1 AND product_id = $2 AND version = $3 FOR UPDATE",
        &[&p.mutuelle_id, &p.id, &version],
    )
    .await?;
    let existing = existing.map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)));
    let plan = core::put_product_plan(p, &body, existing)?;
    let sql = match plan {
        PutProduct::Unchanged => return Ok(plan),
        PutProduct::Replaced => {
            "UPDATE products SET valid_from = $4, valid_to = $5, body = $6 \
             WHERE mutuelle_id = $1 AND product_id = $2 AND version = $3"
        }
        PutProduct::Inserted => {
            "INSERT INTO products (mutuelle_id, product_id, version, valid_from, valid_to, body) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        }
    };
    x(
        c,
        sql,
        &[&p.mutuelle_id, &p.id, &version, &from, &to, &body],
    )
    .await?;
    Ok(plan)
}

async fn period_totals<C: GenericClient + Sync>(
    c: &C,
    scheme: &str,
    mutuelle: &str,
    period_id: Option<i64>,
) -> Result<(u32, Totals, i64), StoreError> {
    // Sums as text, read in i128 (`sum_at`): SUM(BIGINT) is NUMERIC and
    // never overflows, but a cast back to BIGINT would.
    let claims_sql = format!(
        "SELECT COUNT(*), COALESCE(SUM(c.billed_total), 0)::TEXT, COALESCE(SUM(c.scheme_total), 0)::TEXT, \
         COALESCE(SUM(c.mutuelle_total), 0)::TEXT FROM claims c \
         WHERE c.scheme_id = $1 AND c.mutuelle_id = $2 AND {}",
        core::period_claims("$3")
    );
    let rec_sql = match period_id {
        None => {
            "SELECT COALESCE(SUM(amount), 0)::TEXT FROM recoveries \
             WHERE scheme_id = $1 AND mutuelle_id = $2 AND period_id IS NULL AND $3::BIGINT = 0"
        }
        Some(_) => {
            "SELECT COALESCE(SUM(amount), 0)::TEXT FROM recoveries \
             WHERE scheme_id = $1 AND mutuelle_id = $2 AND period_id = $3"
        }
    };
    let period_id = period_id.unwrap_or(0);
    let r = q1(c, &claims_sql, &[&scheme, &mutuelle, &period_id])
        .await?
        .ok_or_else(|| backend("no row"))?;
    let rec = q1(c, rec_sql, &[&scheme, &mutuelle, &period_id])
        .await?
        .ok_or_else(|| backend("no row"))?;
    Ok((
        r.get::<_, i64>(0) as u32,
        Totals {
            billed: sum_at(&r, 1)?,
            scheme: sum_at(&r, 2)?,
            mutuelle: sum_at(&r, 3)?,
        },
        sum_at(&rec, 0)?,
    ))
}

/// A sum read as text (NUMERIC), in i128, clamped to i64 (see
/// [`super::clamp_total`]).
fn sum_at(r: &Row, i: usize) -> Result<i64, StoreError> {
    let text: String = r.get(i);
    let v: i128 = text
        .parse()
        .map_err(|e| backend(format!("sum {text:?}: {e}")))?;
    Ok(super::clamp_total(v))
}

async fn open_period<C: GenericClient + Sync>(
    c: &C,
    scheme: &str,
    mutuelle: &str,
) -> Result<PeriodRecord, StoreError> {
    let number = open_number(c, scheme, mutuelle).await?;
    let (claim_count, totals, recoveries) = period_totals(c, scheme, mutuelle, None).await?;
    Ok(core::open_period(
        scheme,
        mutuelle,
        number,
        claim_count,
        totals,
        recoveries,
    ))
}

/// The open period's number, without its totals.
async fn open_number<C: GenericClient + Sync>(
    c: &C,
    scheme: &str,
    mutuelle: &str,
) -> Result<u32, StoreError> {
    let number: i64 = q1(
        c,
        "SELECT COALESCE(MAX(number), 0) + 1 FROM periods WHERE scheme_id = $1 AND mutuelle_id = $2",
        &[&scheme, &mutuelle],
    )
    .await?
    .ok_or_else(|| backend("no row"))?
    .get(0);
    Ok(number as u32)
}

async fn load_period<C: GenericClient + Sync>(
    c: &C,
    scheme: &str,
    mutuelle: &str,
    number: u32,
) -> Result<Option<(i64, PeriodRecord)>, StoreError> {
    let Some(r) = q1(
        c,
        &format!(
            "SELECT {} FROM periods WHERE scheme_id = $1 AND mutuelle_id = $2 AND number = $3",
            core::PERIOD_COLS
        ),
        &[&scheme, &mutuelle, &(number as i64)],
    )
    .await?
    else {
        return Ok(None);
    };
    let (id, mut p, stored) = core::period(&r, scheme, mutuelle, number)?;
    if !stored {
        (p.claim_count, p.totals, p.recoveries) =
            period_totals(c, scheme, mutuelle, Some(id)).await?;
    }
    Ok(Some((id, p)))
}

#[async_trait]
impl Store for PgStore {
    async fn schema_status(&self) -> Result<(i64, i64), StoreError> {
        Ok((self.schema_version().await?, SCHEMA_VERSION))
    }

    /// Closes the pool: its idle connections end cleanly (a stop logged no
    /// warning for each), and a call after it is refused at once.
    fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
        self.pool.close();
    }

    async fn slow_collation(&self) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        // Through `to_jsonb`: the provider's columns are PostgreSQL 15's
        // (`datlocprovider`, `daticulocale`) and 17's (`datlocale`); an
        // older server has none, and its databases are libc's.
        let row = q1(
            &c,
            "SELECT datcollate, to_jsonb(d) ->> 'datlocprovider', \
             coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale') \
             FROM pg_database d WHERE datname = current_database()",
            &[],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("pg_database has no row for this database".into()))?;
        Ok(slow_collation(
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
        ))
    }

    /// For a claim, one statement: the member rows, then a row without a
    /// body when the claim is stored (whose record is then read: a
    /// resend's cost only).
    async fn members_for(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        card: Option<(&str, &str)>,
        claim_id: Option<&str>,
    ) -> Result<(Vec<Member>, Option<ClaimRecord>), StoreError> {
        let Some(claim_id) = claim_id else {
            let members = super::members_of(self, scheme_id, beneficiary_id, card).await?;
            return Ok((members, None));
        };
        let c = self.client().await?;
        let rows = match card {
            Some((mid, number)) => q(
                &c,
                "SELECT body, (SELECT n FROM product_generation) FROM (SELECT body FROM members \
                     WHERE mutuelle_id = $3 AND member_number = $4 \
                     UNION ALL SELECT NULL FROM claims WHERE scheme_id = $1 AND claim_id = $2) r",
                &[&scheme_id, &claim_id, &mid, &number],
            )
            .await?,
            None => {
                q(
                    &c,
                    "SELECT body, (SELECT n FROM product_generation) FROM \
                     (SELECT body, mutuelle_id, member_number FROM members \
                     WHERE scheme_id = $1 AND beneficiary_id = $3 \
                     UNION ALL SELECT NULL, NULL, NULL FROM claims \
                     WHERE scheme_id = $1 AND claim_id = $2) r \
                     ORDER BY mutuelle_id, member_number",
                    &[&scheme_id, &claim_id, &beneficiary_id],
                )
                .await?
            }
        };
        let (members, stored) = self.member_rows(&rows)?;
        let stored = match stored {
            true => load(&c, scheme_id, claim_id, Read::Plain)
                .await?
                .map(|(_, r)| r),
            false => None,
        };
        Ok((members, stored))
    }

    fn pool_use(&self) -> Option<super::PoolUse> {
        let s = self.pool.status();
        Some(super::PoolUse {
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        })
    }
}

/// Every stored member of one scheme beneficiary, any mutuelle.
async fn beneficiary_members<C: GenericClient + Sync>(
    c: &C,
    scheme: &str,
    beneficiary: &str,
) -> Result<Vec<Member>, StoreError> {
    beneficiary_rows(c, scheme, beneficiary)
        .await?
        .iter()
        .map(|r| body(r, "member body"))
        .collect()
}

/// A beneficiary's member rows, in `find_members`' order: the body, then
/// the products' generation (`PgStore::member_rows`).
async fn beneficiary_rows<C: GenericClient + Sync>(
    c: &C,
    scheme: &str,
    beneficiary: &str,
) -> Result<Vec<Row>, StoreError> {
    q(
        c,
        "SELECT body, (SELECT n FROM product_generation) FROM members \
         WHERE scheme_id = $1 AND beneficiary_id = $2 ORDER BY mutuelle_id, member_number",
        &[&scheme, &beneficiary],
    )
    .await
}

/// Takes the coverage lock of each scheme, in one order (no deadlock): the
/// roster writes of one scheme run one at a time across replicas, so that
/// the coverage check and the write cannot interleave with another
/// mutuelle's. Roster writes are rare; claims never take this lock.
async fn lock_coverage<'a, C: GenericClient + Sync>(
    c: &C,
    schemes: impl IntoIterator<Item = &'a str>,
) -> Result<(), StoreError> {
    let mut schemes: Vec<&str> = schemes.into_iter().collect();
    schemes.sort_unstable();
    schemes.dedup();
    for s in schemes {
        advisory_lock(c, &format!("coverage\u{1f}{s}")).await?;
    }
    Ok(())
}

/// The roster's rules ([`super::coverage_rule`]) against what is stored,
/// under the schemes' coverage locks (held until the transaction ends).
async fn check_coverage<C: GenericClient + Sync>(
    c: &C,
    incoming: &[(usize, &Member)],
) -> Result<(), StoreError> {
    lock_coverage(c, incoming.iter().map(|(_, m)| m.scheme_id.as_str())).await?;
    let mut schemes: Vec<String> = Vec::new();
    let mut beneficiaries: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (_, m) in incoming {
        if seen.insert((m.scheme_id.as_str(), m.beneficiary_id.as_str())) {
            schemes.push(m.scheme_id.clone());
            beneficiaries.push(m.beneficiary_id.clone());
        }
    }
    if schemes.is_empty() {
        return Ok(());
    }
    // One query for the whole batch (an import may hold 500,000 members).
    let others: Vec<Member> = q(
        c,
        "SELECT m.body FROM members m \
         JOIN UNNEST($1::TEXT[], $2::TEXT[]) AS w (scheme_id, beneficiary_id) \
         ON m.scheme_id = w.scheme_id AND m.beneficiary_id = w.beneficiary_id",
        &[&schemes, &beneficiaries],
    )
    .await?
    .iter()
    .map(|r| body(r, "member body"))
    .collect::<Result<_, _>>()?;
    super::coverage_rule(incoming, &others)
}

async fn upsert<C: GenericClient + Sync>(
    c: &C,
    members: &[Member],
    now_ms: i64,
) -> Result<(), StoreError> {
    let st = c
        .prepare_cached(
            "INSERT INTO members (mutuelle_id, member_number, scheme_id, beneficiary_id, body, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (mutuelle_id, member_number) DO UPDATE SET scheme_id = excluded.scheme_id, \
             beneficiary_id = excluded.beneficiary_id, body = excluded.body, updated_ms = excluded.updated_ms",
        )
        .await?;
    for m in members {
        c.execute(
            &st,
            &[
                &m.mutuelle_id,
                &m.member_number,
                &m.scheme_id,
                &m.beneficiary_id,
                &json(m),
                &now_ms,
            ],
        )
        .await?;
    }
    Ok(())
}

/// [`Store::slow_collation`] from a database's `pg_database` row: its libc
/// collation, its provider (`c` libc, `i` ICU, `b` PostgreSQL 17's
/// built-in; none before PostgreSQL 15) and the ICU or built-in locale.
/// Byte order: libc's `C`, `POSIX` and `C.<encoding>` (glibc's `C.UTF-8`
/// and `C.utf8` compare code points, which is UTF-8's byte order), and the
/// built-in provider's locales (`C`, `C.UTF-8`; `PG_UNICODE_FAST` sorts by
/// code point too, in PostgreSQL 18). ICU always collates by a language's
/// rules.
fn slow_collation(collate: &str, provider: Option<&str>, locale: Option<&str>) -> Option<String> {
    match provider {
        Some("i") => Some(format!("{} (ICU)", locale.unwrap_or(collate))),
        Some("b") => None,
        _ if collate == "C" || collate == "POSIX" || collate.starts_with("C.") => None,
        _ => Some(collate.to_string()),
    }
}
