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
//! - The change cursor: a one-row counter bumped as the last statement of
//!   each transaction, so change numbers are taken in commit order and a
//!   reader of ListChangedClaims never skips a change that commits late.
//! - Work sharing: due claims are leased with `FOR UPDATE SKIP LOCKED`; the
//!   pruning job takes a transaction advisory lock or skips its turn.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use passerelle_domain::{CeilingKey, Date, LineShare, Member, Product, Usage, Used, date};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::core::{self, json};
use super::{
    AuditEntry, AuditStore, Begin, ClaimFilter, ClaimPage, ClaimRecord, ClaimStore,
    CoverageConflict, NewClaim, Outcome, PartnerActivity, PeriodRecord, ProductStore, PutProduct,
    RosterDiff, RosterImport, RosterStore, SettlementStore, StatementData, Store, StoreError,
    Totals, Transition,
};
use crate::config::PostgresConfig;

/// Schema migrations, in order; the schema version is their count. Never
/// edit one that has shipped: append.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE periods (
    id                    BIGSERIAL PRIMARY KEY,
    scheme_id             TEXT NOT NULL,
    mutuelle_id           TEXT NOT NULL,
    number                BIGINT NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('closed', 'settled')),
    closed_ms             BIGINT NOT NULL,
    settled_ms            BIGINT NOT NULL DEFAULT 0,
    settlement_reference  TEXT NOT NULL DEFAULT '',
    UNIQUE (scheme_id, mutuelle_id, number)
);

CREATE TABLE claims (
    id                BIGSERIAL PRIMARY KEY,
    scheme_id         TEXT NOT NULL,
    claim_id          TEXT NOT NULL,
    request_hash      TEXT NOT NULL,
    body              TEXT NOT NULL,
    provider_id       TEXT NOT NULL,
    invoice_number    TEXT NOT NULL,
    mutuelle_id       TEXT NOT NULL,
    member_number     TEXT NOT NULL,
    state             TEXT NOT NULL,
    adjudication_key  TEXT NOT NULL,
    cancel_key        TEXT,
    cancel_reason     TEXT NOT NULL DEFAULT '',
    product_id        TEXT,
    product_version   BIGINT,
    product_name      TEXT,
    partner_reference TEXT NOT NULL DEFAULT '',
    rejection_code    TEXT,
    rejection_message TEXT,
    attempts          BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms   BIGINT,
    last_error        TEXT NOT NULL DEFAULT '',
    change_seq        BIGINT NOT NULL,
    created_ms        BIGINT NOT NULL,
    updated_ms        BIGINT NOT NULL,
    date_of_care      TEXT NOT NULL,
    currency          TEXT NOT NULL,
    payee_type        TEXT NOT NULL,
    billed_total      BIGINT NOT NULL,
    scheme_total      BIGINT NOT NULL,
    mutuelle_total    BIGINT NOT NULL DEFAULT 0,
    period_id         BIGINT REFERENCES periods (id),
    UNIQUE (scheme_id, claim_id)
);
CREATE UNIQUE INDEX claims_change_seq ON claims (change_seq);
CREATE INDEX claims_scheme_change ON claims (scheme_id, change_seq);
CREATE INDEX claims_invoice ON claims (scheme_id, provider_id, invoice_number);
CREATE INDEX claims_due ON claims (next_attempt_ms) WHERE next_attempt_ms IS NOT NULL;
CREATE INDEX claims_mutuelle_state ON claims (mutuelle_id, state);
CREATE INDEX claims_settlement ON claims (scheme_id, mutuelle_id, period_id, state);

CREATE TABLE change_counter (id INT PRIMARY KEY, v BIGINT NOT NULL);
INSERT INTO change_counter VALUES (1, 0);

CREATE TABLE claim_lines (
    claim_pk        BIGINT NOT NULL REFERENCES claims (id),
    sequence        BIGINT NOT NULL,
    act_code        TEXT NOT NULL,
    care_category   TEXT NOT NULL,
    quantity        BIGINT NOT NULL,
    billed          BIGINT NOT NULL,
    tariff_base     BIGINT NOT NULL,
    scheme_share    BIGINT NOT NULL,
    mutuelle_share  BIGINT NOT NULL CHECK (mutuelle_share >= 0),
    patient_share   BIGINT NOT NULL CHECK (patient_share >= 0),
    reasons         TEXT NOT NULL,
    PRIMARY KEY (claim_pk, sequence),
    CHECK (scheme_share + mutuelle_share + patient_share = billed)
);

CREATE TABLE ceiling_usage (
    mutuelle_id  TEXT NOT NULL,
    ceiling_key  TEXT NOT NULL,
    used_amount  BIGINT NOT NULL CHECK (used_amount >= 0),
    used_count   BIGINT NOT NULL CHECK (used_count >= 0),
    PRIMARY KEY (mutuelle_id, ceiling_key)
);

CREATE TABLE claim_consumption (
    claim_pk     BIGINT NOT NULL REFERENCES claims (id),
    ceiling_key  TEXT NOT NULL,
    amount       BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (claim_pk, ceiling_key)
);

CREATE TABLE members (
    mutuelle_id     TEXT NOT NULL,
    member_number   TEXT NOT NULL,
    scheme_id       TEXT NOT NULL,
    beneficiary_id  TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    PRIMARY KEY (mutuelle_id, member_number)
);
CREATE INDEX members_beneficiary ON members (scheme_id, beneficiary_id);

CREATE TABLE products (
    mutuelle_id  TEXT NOT NULL,
    product_id   TEXT NOT NULL,
    version      BIGINT NOT NULL,
    valid_from   TEXT NOT NULL,
    valid_to     TEXT,
    body         TEXT NOT NULL,
    used         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (mutuelle_id, product_id, version)
);

CREATE TABLE recoveries (
    id           BIGSERIAL PRIMARY KEY,
    claim_pk     BIGINT NOT NULL UNIQUE REFERENCES claims (id),
    scheme_id    TEXT NOT NULL,
    mutuelle_id  TEXT NOT NULL,
    from_period  BIGINT NOT NULL,
    amount       BIGINT NOT NULL CHECK (amount > 0),
    period_id    BIGINT REFERENCES periods (id),
    created_ms   BIGINT NOT NULL
);
CREATE INDEX recoveries_open ON recoveries (scheme_id, mutuelle_id, period_id);

CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    at_ms         BIGINT NOT NULL,
    direction     TEXT NOT NULL,
    party         TEXT NOT NULL,
    method        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    outcome       TEXT NOT NULL
);
CREATE INDEX audit_subject ON audit_log (subject, id);
CREATE INDEX audit_party ON audit_log (party, outcome, id);
CREATE INDEX audit_at ON audit_log (at_ms);
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'audit_log is append-only'; END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
"#,
    // 2: indexes in the order the eligibility lookups read (no sort).
    r#"
CREATE INDEX members_beneficiary_order ON members (scheme_id, beneficiary_id, mutuelle_id, member_number);
DROP INDEX members_beneficiary;
CREATE INDEX products_validity ON products (mutuelle_id, product_id, valid_from, version);
"#,
    // 3: the claim that holds the invoice of a claim rejected as a duplicate.
    r#"
ALTER TABLE claims ADD COLUMN duplicate_of TEXT;
"#,
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Advisory lock keys (arbitrary, fixed).
const MIGRATE_LOCK: i64 = 0x7061_7373_6d69_6772; // "passmigr"
const RETENTION_LOCK: i64 = 0x7061_7373_7265_746e; // "passretn"

pub struct PgStore {
    pool: Pool,
    schema: String,
    products: super::ProductCache,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => StoreError::Backend(format!("database: {}", db.message())),
            None => StoreError::Backend(format!("database: {e}")),
        }
    }
}

/// Opens pooled connections and drives each on the runtime `rt`.
struct SpawnOn<T> {
    tls: T,
    rt: tokio::runtime::Handle,
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
        let (pg, tls) = (pg.clone(), self.tls.clone());
        Box::pin(async move {
            let (client, conn) = pg.connect(tls).await?;
            let task = self.rt.spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!(error = %e, "PostgreSQL connection ended");
                }
            });
            Ok((client, task))
        })
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Backend(format!("database unavailable: {e}"))
    }
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
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

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Builds the rustls client config for TLS to the database (ring only).
fn tls_config(ca_file: &std::path::Path) -> Result<rustls::ClientConfig, StoreError> {
    let pem = std::fs::read(ca_file).map_err(|e| backend(format!("{}: {e}", ca_file.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| backend(format!("{}: {e}", ca_file.display())))?;
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
        let mgr = match &cfg.tls {
            None => Manager::from_connect(
                pg,
                SpawnOn {
                    tls: tokio_postgres::NoTls,
                    rt,
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
                Manager::from_connect(pg, SpawnOn { tls, rt }, mgr_cfg)
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
            schema,
            products: Default::default(),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Applies pending migrations; safe when several brokers run it at once
    /// (an advisory lock makes them take turns). Returns the version.
    pub async fn migrate(&self) -> Result<i64, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
            .await?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{}\"; CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
            self.schema
        ))
        .await?;
        let found = Self::version_in(&tx).await?;
        if found > SCHEMA_VERSION {
            return Err(backend(format!(
                "database schema version {found} is newer than this binary's {SCHEMA_VERSION}"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&(i as i64 + 1)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(SCHEMA_VERSION)
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

/// Loads a claim; with `lock`, takes its row lock for the transaction.
async fn load<C: GenericClient + Sync>(
    c: &C,
    scheme: &str,
    claim_id: &str,
    lock: bool,
) -> Result<Option<(i64, ClaimRecord)>, StoreError> {
    let sql = format!(
        "SELECT {} FROM claims WHERE scheme_id = $1 AND claim_id = $2{}",
        core::CLAIM_COLS,
        if lock { " FOR UPDATE" } else { "" }
    );
    let Some(row) = q1(c, &sql, &[&scheme, &claim_id]).await? else {
        return Ok(None);
    };
    let (pk, mut rec) = core::claim(&row)?;
    rec.shares = lines_of(c, pk).await?;
    Ok(Some((pk, rec)))
}

async fn load_existing<C: GenericClient + Sync>(
    c: &C,
    scheme: &str,
    claim_id: &str,
    lock: bool,
) -> Result<(i64, ClaimRecord), StoreError> {
    load(c, scheme, claim_id, lock)
        .await?
        .ok_or_else(|| core::not_found_claim(scheme, claim_id))
}

/// The next change number; hold its row lock to commit (see module doc).
async fn next_seq<C: GenericClient + Sync>(c: &C) -> Result<i64, StoreError> {
    let row = q1(
        c,
        "UPDATE change_counter SET v = v + 1 WHERE id = 1 RETURNING v",
        &[],
    )
    .await?
    .ok_or_else(|| backend("change_counter row missing"))?;
    Ok(row.get(0))
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
    let (claims_sql, rec_sql) = match period_id {
        None => (
            "SELECT COUNT(*), COALESCE(SUM(billed_total), 0)::TEXT, COALESCE(SUM(scheme_total), 0)::TEXT, \
             COALESCE(SUM(mutuelle_total), 0)::TEXT FROM claims \
             WHERE scheme_id = $1 AND mutuelle_id = $2 AND period_id IS NULL AND state = 'coordinated' AND $3::BIGINT IS NULL",
            "SELECT COALESCE(SUM(amount), 0)::TEXT FROM recoveries \
             WHERE scheme_id = $1 AND mutuelle_id = $2 AND period_id IS NULL AND $3::BIGINT IS NULL",
        ),
        Some(_) => (
            "SELECT COUNT(*), COALESCE(SUM(billed_total), 0)::TEXT, COALESCE(SUM(scheme_total), 0)::TEXT, \
             COALESCE(SUM(mutuelle_total), 0)::TEXT FROM claims \
             WHERE scheme_id = $1 AND mutuelle_id = $2 AND period_id = $3",
            "SELECT COALESCE(SUM(amount), 0)::TEXT FROM recoveries \
             WHERE scheme_id = $1 AND mutuelle_id = $2 AND period_id = $3",
        ),
    };
    let r = q1(c, claims_sql, &[&scheme, &mutuelle, &period_id])
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
    let number: i64 = q1(
        c,
        "SELECT COALESCE(MAX(number), 0) + 1 FROM periods WHERE scheme_id = $1 AND mutuelle_id = $2",
        &[&scheme, &mutuelle],
    )
    .await?
    .ok_or_else(|| backend("no row"))?
    .get(0);
    let (claim_count, totals, recoveries) = period_totals(c, scheme, mutuelle, None).await?;
    Ok(core::open_period(
        scheme,
        mutuelle,
        number as u32,
        claim_count,
        totals,
        recoveries,
    ))
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
    let (id, mut p) = core::period(&r, scheme, mutuelle, number)?;
    (p.claim_count, p.totals, p.recoveries) = period_totals(c, scheme, mutuelle, Some(id)).await?;
    Ok(Some((id, p)))
}

const FILTER_PG: &str = "($1::TEXT IS NULL OR c.scheme_id = $1) AND ($2::TEXT IS NULL OR c.mutuelle_id = $2) \
    AND ($3::TEXT IS NULL OR c.state = $3) AND ($4::TEXT IS NULL OR c.date_of_care >= $4) \
    AND ($5::TEXT IS NULL OR c.date_of_care <= $5)";

#[async_trait]
impl ClaimStore for PgStore {
    async fn begin_claim(&self, new: NewClaim) -> Result<Begin, StoreError> {
        let cl = &new.claim;
        let mut c = self.client().await?;
        // A racing insert of the same key fails once with a unique
        // violation; the second attempt reads the winner's row.
        for _ in 0..2 {
            let tx = c.transaction().await?;
            if let Some((_, rec)) = load(&tx, &cl.scheme_id, &cl.claim_id, false).await? {
                return Ok(core::existing(rec, &new.request_hash));
            }
            let invoice_key = format!(
                "{}\u{1f}{}\u{1f}{}",
                cl.scheme_id, cl.provider_id, cl.invoice_number
            );
            x(
                &tx,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&invoice_key],
            )
            .await?;
            let dup: Option<String> = q1(
                &tx,
                &format!(
                    "SELECT claim_id FROM claims WHERE scheme_id = $1 AND provider_id = $2 \
                     AND invoice_number = $3 AND state IN {} LIMIT 1",
                    core::SQL_HOLDS_INVOICE
                ),
                &[&cl.scheme_id, &cl.provider_id, &cl.invoice_number],
            )
            .await?
            .map(|r| r.get(0));
            let row = core::new_claim_row(&new, dup);
            // The change number in the insert itself: the counter's row lock
            // is held from here to the commit, one round trip.
            let insert = tx
                .prepare_cached(&format!(
                    "WITH s AS (UPDATE change_counter SET v = v + 1 WHERE id = 1 RETURNING v) \
                     INSERT INTO claims ({}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, (SELECT v FROM s), $14, $14, $15, $16, $17, $18, $19, $20)",
                    core::CLAIM_INSERT_COLS
                ))
                .await?;
            let inserted = tx
                .execute(
                    &insert,
                    &[
                        &cl.scheme_id,
                        &cl.claim_id,
                        &new.request_hash,
                        &row.body,
                        &cl.provider_id,
                        &cl.invoice_number,
                        &new.mutuelle_id,
                        &new.member_number,
                        &row.state.as_str(),
                        &new.adjudication_key,
                        &row.rejection_code,
                        &row.rejection_message,
                        &row.next_attempt_ms,
                        &new.now_ms,
                        &row.date_of_care,
                        &cl.currency,
                        &row.payee,
                        &row.billed_total,
                        &row.scheme_total,
                        &row.duplicate_of,
                    ],
                )
                .await;
            match inserted {
                Ok(_) => {}
                // Another broker inserted the same key first: read it back.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
            match tx.commit().await {
                Ok(()) => {}
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
            let (_, rec) = load_existing(&c, &cl.scheme_id, &cl.claim_id, false).await?;
            return Ok(core::created(rec));
        }
        let (_, rec) = load_existing(&c, &cl.scheme_id, &cl.claim_id, false).await?;
        Ok(core::existing(rec, &new.request_hash))
    }

    async fn get_claim(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        let c = self.client().await?;
        Ok(load(&c, scheme_id, claim_id, false).await?.map(|(_, r)| r))
    }

    async fn complete_claim(
        &self,
        scheme_id: &str,
        claim_id: &str,
        outcome: Outcome,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, true).await?;
        if !core::may_complete(rec.state) {
            return Ok(Transition::Stale(rec));
        }
        match outcome {
            Outcome::Coordinated {
                shares,
                product,
                partner_reference,
                consumption,
            } => {
                for (key, u) in core::consumed(&consumption) {
                    x(
                        &tx,
                        "INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) \
                         VALUES ($1, $2, 0, 0) ON CONFLICT DO NOTHING",
                        &[&rec.mutuelle_id, &key],
                    )
                    .await?;
                    let (amount, count) = (u.amount, u.count as i64);
                    let (la, lc) = (u.limit_amount, u.limit_count.map(|v| v as i64));
                    let n = x(
                        &tx,
                        "UPDATE ceiling_usage SET used_amount = used_amount + $3, used_count = used_count + $4 \
                         WHERE mutuelle_id = $1 AND ceiling_key = $2 \
                         AND ($5::BIGINT IS NULL OR used_amount + $3 <= $5) \
                         AND ($6::BIGINT IS NULL OR used_count + $4 <= $6)",
                        &[&rec.mutuelle_id, &key, &amount, &count, &la, &lc],
                    )
                    .await?;
                    if n == 0 {
                        return Err(StoreError::CeilingConflict(key));
                    }
                    x(
                        &tx,
                        "INSERT INTO claim_consumption (claim_pk, ceiling_key, amount, count) VALUES ($1, $2, $3, $4)",
                        &[&pk, &key, &amount, &count],
                    )
                    .await?;
                }
                let st = tx
                    .prepare_cached(
                        "INSERT INTO claim_lines (claim_pk, sequence, act_code, care_category, quantity, billed, \
                         tariff_base, scheme_share, mutuelle_share, patient_share, reasons) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .await?;
                for l in core::line_rows(&rec.claim, &shares) {
                    tx.execute(
                        &st,
                        &[
                            &pk,
                            &i64::from(l.sequence),
                            &l.act_code,
                            &l.category,
                            &i64::from(l.quantity),
                            &l.billed,
                            &l.tariff_base,
                            &l.scheme_share,
                            &l.mutuelle_share,
                            &l.patient_share,
                            &l.reasons,
                        ],
                    )
                    .await?;
                }
                if let Some(p) = &product {
                    x(
                        &tx,
                        "UPDATE products SET used = TRUE WHERE mutuelle_id = $1 AND product_id = $2 AND version = $3 AND NOT used",
                        &[&rec.mutuelle_id, &p.id, &(p.version as i64)],
                    )
                    .await?;
                }
                let total = core::mutuelle_total(&shares);
                // The change number in the same statement, last before the
                // commit: the counter's row lock is held one round trip.
                x(
                    &tx,
                    "WITH s AS (UPDATE change_counter SET v = v + 1 WHERE id = 1 RETURNING v) \
                     UPDATE claims SET state = 'coordinated', product_id = $2, product_version = $3, \
                     product_name = $4, partner_reference = $5, next_attempt_ms = NULL, last_error = '', \
                     change_seq = (SELECT v FROM s), updated_ms = $6, mutuelle_total = $7 WHERE id = $1",
                    &[
                        &pk,
                        &product.as_ref().map(|p| p.id.clone()),
                        &product.as_ref().map(|p| p.version as i64),
                        &product.as_ref().map(|p| p.name.clone()),
                        &partner_reference,
                        &now_ms,
                        &total,
                    ],
                )
                .await?;
            }
            Outcome::Rejected(reason) => {
                x(
                    &tx,
                    "WITH s AS (UPDATE change_counter SET v = v + 1 WHERE id = 1 RETURNING v) \
                     UPDATE claims SET state = 'rejected', rejection_code = $2, rejection_message = $3, \
                     next_attempt_ms = NULL, change_seq = (SELECT v FROM s), updated_ms = $4 WHERE id = $1",
                    &[&pk, &core::code_str(reason.code), &reason.message, &now_ms],
                )
                .await?;
            }
        }
        tx.commit().await?;
        // Read back after the commit, not under the counter's lock.
        let (_, rec) = load_existing(&c, scheme_id, claim_id, false).await?;
        Ok(Transition::Applied(rec))
    }

    async fn defer(
        &self,
        scheme_id: &str,
        claim_id: &str,
        next_attempt_ms: i64,
        last_error: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, true).await?;
        let Some(new_state) = core::deferred_state(rec.state) else {
            return Ok(Transition::Stale(rec));
        };
        let seq = if new_state != rec.state {
            next_seq(&tx).await?
        } else {
            rec.change_seq as i64
        };
        x(
            &tx,
            "UPDATE claims SET state = $2, next_attempt_ms = $3, last_error = $4, change_seq = $5, updated_ms = $6 \
             WHERE id = $1",
            &[&pk, &new_state.as_str(), &next_attempt_ms, &last_error, &seq, &now_ms],
        )
        .await?;
        let (_, rec) = load_existing(&tx, scheme_id, claim_id, false).await?;
        tx.commit().await?;
        Ok(Transition::Applied(rec))
    }

    async fn lease_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let rows = q(
            &tx,
            &format!(
                "UPDATE claims SET next_attempt_ms = $2, attempts = attempts + 1 WHERE id IN ( \
                 SELECT id FROM claims WHERE next_attempt_ms IS NOT NULL AND next_attempt_ms <= $1 \
                 AND state IN {} ORDER BY next_attempt_ms LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING scheme_id, claim_id",
                core::SQL_WAITING
            ),
            &[&now_ms, &(now_ms + lease_ms), &(limit as i64)],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let (s, cid): (String, String) = (r.get(0), r.get(1));
            out.push(load_existing(&tx, &s, &cid, false).await?.1);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn expedite(
        &self,
        mutuelle_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<u64, StoreError> {
        let c = self.client().await?;
        x(
            &c,
            "UPDATE claims SET next_attempt_ms = $2 WHERE mutuelle_id = $1 \
             AND state IN ('pending_partner', 'cancel_pending') AND next_attempt_ms > $2::BIGINT + $3::BIGINT",
            &[&mutuelle_id, &now_ms, &lease_ms],
        )
        .await
    }

    async fn begin_cancel(
        &self,
        scheme_id: &str,
        claim_id: &str,
        cancel_key: &str,
        reason: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, true).await?;
        if !core::may_begin_cancel(rec.state) {
            return Ok(Transition::Stale(rec));
        }
        let seq = next_seq(&tx).await?;
        x(
            &tx,
            "UPDATE claims SET state = 'cancel_pending', cancel_key = $2, cancel_reason = $3, \
             next_attempt_ms = $4, attempts = 0, change_seq = $5, updated_ms = $6 WHERE id = $1",
            &[&pk, &cancel_key, &reason, &lease_until_ms, &seq, &now_ms],
        )
        .await?;
        let (_, rec) = load_existing(&tx, scheme_id, claim_id, false).await?;
        tx.commit().await?;
        Ok(Transition::Applied(rec))
    }

    async fn complete_cancel(
        &self,
        scheme_id: &str,
        claim_id: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let (pk, rec) = load_existing(&tx, scheme_id, claim_id, true).await?;
        if !core::may_complete_cancel(rec.state) {
            return Ok(Transition::Stale(rec));
        }
        x(
            &tx,
            "UPDATE ceiling_usage u SET used_amount = u.used_amount - c.amount, used_count = u.used_count - c.count \
             FROM claim_consumption c WHERE c.claim_pk = $1 AND u.mutuelle_id = $2 AND u.ceiling_key = c.ceiling_key",
            &[&pk, &rec.mutuelle_id],
        )
        .await?;
        x(
            &tx,
            "DELETE FROM claim_consumption WHERE claim_pk = $1",
            &[&pk],
        )
        .await?;
        x(
            &tx,
            "INSERT INTO recoveries (claim_pk, scheme_id, mutuelle_id, from_period, amount, created_ms) \
             SELECT c.id, c.scheme_id, c.mutuelle_id, p.number, c.mutuelle_total, $2 \
             FROM claims c JOIN periods p ON p.id = c.period_id WHERE c.id = $1 AND c.mutuelle_total > 0",
            &[&pk, &now_ms],
        )
        .await?;
        let seq = next_seq(&tx).await?;
        x(
            &tx,
            "UPDATE claims SET state = 'cancelled', next_attempt_ms = NULL, last_error = '', change_seq = $2, \
             updated_ms = $3 WHERE id = $1",
            &[&pk, &seq, &now_ms],
        )
        .await?;
        let (_, rec) = load_existing(&tx, scheme_id, claim_id, false).await?;
        tx.commit().await?;
        Ok(Transition::Applied(rec))
    }

    async fn list_changed(
        &self,
        scheme_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        let c = self.client().await?;
        let rows = q(
            &c,
            &format!(
                "SELECT {} FROM claims WHERE scheme_id = $1 AND change_seq > $2 ORDER BY change_seq LIMIT $3",
                core::CLAIM_COLS
            ),
            &[&scheme_id, &(after_seq as i64), &(limit as i64)],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let (pk, mut rec) = core::claim(r)?;
            rec.shares = lines_of(&c, pk).await?;
            out.push(rec);
        }
        Ok(out)
    }

    async fn list_claims(
        &self,
        f: &ClaimFilter,
        after: i64,
        limit: u32,
    ) -> Result<ClaimPage, StoreError> {
        let c = self.client().await?;
        let state = f.state.map(|s| s.as_str().to_string());
        let from = f.care_from.map(date::format);
        let to = f.care_to.map(date::format);
        let rows = q(
            &c,
            &format!(
                "SELECT {} FROM claims c LEFT JOIN periods p ON p.id = c.period_id \
                 WHERE {FILTER_PG} AND c.id > $6 ORDER BY c.id LIMIT $7",
                core::SUMMARY_COLS
            ),
            &[
                &f.scheme_id,
                &f.mutuelle_id,
                &state,
                &from,
                &to,
                &after,
                &(limit as i64),
            ],
        )
        .await?;
        let out = decode(&rows, core::summary)?;
        let t = q1(
            &c,
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(c.billed_total), 0)::TEXT, COALESCE(SUM(c.scheme_total), 0)::TEXT, \
                 COALESCE(SUM(c.mutuelle_total), 0)::TEXT FROM claims c WHERE {FILTER_PG}"
            ),
            &[&f.scheme_id, &f.mutuelle_id, &state, &from, &to],
        )
        .await?
        .ok_or_else(|| backend("no row"))?;
        Ok(ClaimPage {
            rows: out,
            totals: Totals {
                billed: sum_at(&t, 1)?,
                scheme: sum_at(&t, 2)?,
                mutuelle: sum_at(&t, 3)?,
            },
            total_count: t.get::<_, i64>(0) as u64,
        })
    }

    async fn lease_now(
        &self,
        scheme_id: &str,
        claim_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = x(
            &tx,
            &format!(
                "UPDATE claims SET next_attempt_ms = $3, attempts = attempts + 1 \
                 WHERE scheme_id = $1 AND claim_id = $2 AND state IN {}",
                core::SQL_WAITING
            ),
            &[&scheme_id, &claim_id, &(now_ms + lease_ms)],
        )
        .await?;
        let rec = if n == 1 {
            Some(load_existing(&tx, scheme_id, claim_id, false).await?.1)
        } else {
            None
        };
        tx.commit().await?;
        Ok(rec)
    }
}

#[async_trait]
impl RosterStore for PgStore {
    async fn upsert_members(&self, members: &[Member], now_ms: i64) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let incoming: Vec<(usize, &Member)> = members.iter().enumerate().collect();
        check_coverage(&tx, &incoming).await?;
        upsert(&tx, members, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn coverage_conflicts(
        &self,
        scheme_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CoverageConflict>, StoreError> {
        let c = self.client().await?;
        let pairs = q(
            &c,
            "SELECT scheme_id, beneficiary_id FROM members \
             WHERE $1::TEXT IS NULL OR scheme_id = $1 \
             GROUP BY scheme_id, beneficiary_id HAVING COUNT(DISTINCT mutuelle_id) > 1 \
             ORDER BY scheme_id, beneficiary_id",
            &[&scheme_id],
        )
        .await?;
        let mut out = Vec::new();
        for r in pairs {
            let (s, b): (String, String) = (r.get(0), r.get(1));
            let members = beneficiary_members(&c, &s, &b).await?;
            if super::gather_conflicts(&mut out, &members, limit) {
                break;
            }
        }
        Ok(out)
    }

    async fn resolve_coverage(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        keep: &str,
        from: Option<Date>,
        now_ms: i64,
    ) -> Result<Vec<Member>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        lock_coverage(&tx, [scheme_id]).await?;
        let members = beneficiary_members(&tx, scheme_id, beneficiary_id).await?;
        let writes = super::resolve_plan(&members, keep, from)?;
        upsert(&tx, &writes, now_ms).await?;
        tx.commit().await?;
        Ok(writes)
    }

    async fn get_member(
        &self,
        mutuelle_id: &str,
        member_number: &str,
    ) -> Result<Option<Member>, StoreError> {
        let c = self.client().await?;
        let row = q1(
            &c,
            "SELECT body FROM members WHERE mutuelle_id = $1 AND member_number = $2",
            &[&mutuelle_id, &member_number],
        )
        .await?;
        row.map(|r| body(&r, "member body")).transpose()
    }

    async fn find_members(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
    ) -> Result<Vec<Member>, StoreError> {
        let c = self.client().await?;
        beneficiary_members(&c, scheme_id, beneficiary_id).await
    }

    async fn import_roster(
        &self,
        mut import: RosterImport,
        now_ms: i64,
    ) -> Result<RosterDiff, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // One import per mutuelle at a time.
        let lock_key = format!("roster\u{1f}{}", import.mutuelle_id);
        x(
            &tx,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&lock_key],
        )
        .await?;
        let rows = q(
            &tx,
            "SELECT body FROM members WHERE mutuelle_id = $1",
            &[&import.mutuelle_id],
        )
        .await?;
        let existing: Vec<Member> = rows
            .iter()
            .map(|r| body(r, "member body"))
            .collect::<Result<_, _>>()?;
        let incoming = std::mem::take(&mut import.members);
        let (diff, writes, checked) = super::roster_diff_checked(&existing, incoming, &import);
        let checked: Vec<(usize, &Member)> = checked.iter().map(|(i, m)| (*i, m)).collect();
        check_coverage(&tx, &checked).await?;
        if !import.dry_run {
            upsert(&tx, &writes, now_ms).await?;
            tx.commit().await?;
        }
        Ok(diff)
    }
}

#[async_trait]
impl ProductStore for PgStore {
    async fn put_products(&self, products: &[Product]) -> Result<Vec<PutProduct>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Brokers starting together load the same products: one at a time.
        x(
            &tx,
            "SELECT pg_advisory_xact_lock(hashtextextended('passerelle products', 0))",
            &[],
        )
        .await?;
        let mut out = Vec::with_capacity(products.len());
        for p in products {
            out.push(put_one(&tx, p).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn list_products(&self, mutuelle_id: &str) -> Result<Vec<(Product, bool)>, StoreError> {
        let c = self.client().await?;
        let rows = q(
            &c,
            "SELECT body, used FROM products WHERE mutuelle_id = $1 ORDER BY product_id, version",
            &[&mutuelle_id],
        )
        .await?;
        rows.iter()
            .map(|r| Ok((body(r, "product body")?, r.get::<_, bool>(1))))
            .collect()
    }

    async fn product_on(
        &self,
        mutuelle_id: &str,
        product_id: &str,
        d: Date,
    ) -> Result<Option<Product>, StoreError> {
        let c = self.client().await?;
        let day = date::format(d);
        let row = q1(
            &c,
            "SELECT version, body FROM products WHERE mutuelle_id = $1 AND product_id = $2 \
             AND valid_from <= $3 AND (valid_to IS NULL OR valid_to >= $3) \
             ORDER BY valid_from DESC, version DESC LIMIT 1",
            &[&mutuelle_id, &product_id, &day],
        )
        .await?;
        row.map(|r| {
            self.products.get_or_parse(
                mutuelle_id,
                product_id,
                r.get::<_, i64>(0),
                r.get::<_, &str>(1),
            )
        })
        .transpose()
    }

    async fn usage(&self, mutuelle_id: &str, keys: &[CeilingKey]) -> Result<Usage, StoreError> {
        let c = self.client().await?;
        let names: Vec<String> = keys.iter().map(CeilingKey::storage_key).collect();
        let rows = q(
            &c,
            "SELECT ceiling_key, used_amount, used_count FROM ceiling_usage \
             WHERE mutuelle_id = $1 AND ceiling_key = ANY($2)",
            &[&mutuelle_id, &names],
        )
        .await?;
        let mut usage = Usage::default();
        for r in rows {
            let name: String = r.get(0);
            let (amount, count): (i64, i64) = (r.get(1), r.get(2));
            if (amount != 0 || count != 0)
                && let Some(i) = names.iter().position(|n| *n == name)
            {
                usage.0.insert(
                    keys[i].clone(),
                    Used {
                        amount,
                        count: count as u32,
                    },
                );
            }
        }
        Ok(usage)
    }
}

#[async_trait]
impl SettlementStore for PgStore {
    async fn list_periods(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
    ) -> Result<Vec<PeriodRecord>, StoreError> {
        let c = self.client().await?;
        let open = open_period(&c, scheme_id, mutuelle_id).await?;
        let mut out = vec![open.clone()];
        for n in (1..open.number).rev() {
            if let Some((_, p)) = load_period(&c, scheme_id, mutuelle_id, n).await? {
                out.push(p);
            }
        }
        Ok(out)
    }

    async fn close_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        now_ms: i64,
    ) -> Result<PeriodRecord, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let lock_key = format!("period\u{1f}{scheme_id}\u{1f}{mutuelle_id}");
        x(
            &tx,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&lock_key],
        )
        .await?;
        let number = open_period(&tx, scheme_id, mutuelle_id).await?.number;
        let id: i64 = q1(
            &tx,
            "INSERT INTO periods (scheme_id, mutuelle_id, number, state, closed_ms) VALUES ($1, $2, $3, 'closed', $4) RETURNING id",
            &[&scheme_id, &mutuelle_id, &(number as i64), &now_ms],
        )
        .await?
        .ok_or_else(|| backend("no row"))?
        .get(0);
        let claims = x(
            &tx,
            "UPDATE claims SET period_id = $3 WHERE scheme_id = $1 AND mutuelle_id = $2 \
             AND period_id IS NULL AND state = 'coordinated'",
            &[&scheme_id, &mutuelle_id, &id],
        )
        .await?;
        let recoveries = x(
            &tx,
            "UPDATE recoveries SET period_id = $3 WHERE scheme_id = $1 AND mutuelle_id = $2 AND period_id IS NULL",
            &[&scheme_id, &mutuelle_id, &id],
        )
        .await?;
        if claims + recoveries == 0 {
            return Err(core::nothing_to_close(scheme_id, mutuelle_id));
        }
        let (_, p) = load_period(&tx, scheme_id, mutuelle_id, number)
            .await?
            .ok_or_else(|| backend("period vanished"))?;
        tx.commit().await?;
        Ok(p)
    }

    async fn settle_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        reference: &str,
        now_ms: i64,
    ) -> Result<PeriodRecord, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let lock_key = format!("period\u{1f}{scheme_id}\u{1f}{mutuelle_id}");
        x(
            &tx,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&lock_key],
        )
        .await?;
        let Some((_, p)) = load_period(&tx, scheme_id, mutuelle_id, number).await? else {
            let open = open_period(&tx, scheme_id, mutuelle_id).await?.number;
            return Err(core::no_period_to_settle(
                scheme_id,
                mutuelle_id,
                number,
                open,
            ));
        };
        if !core::settle_applies(&p, reference)? {
            return Ok(p);
        }
        x(
            &tx,
            "UPDATE periods SET state = 'settled', settled_ms = $4, settlement_reference = $5 \
             WHERE scheme_id = $1 AND mutuelle_id = $2 AND number = $3",
            &[
                &scheme_id,
                &mutuelle_id,
                &(number as i64),
                &now_ms,
                &reference,
            ],
        )
        .await?;
        let (_, p) = load_period(&tx, scheme_id, mutuelle_id, number)
            .await?
            .ok_or_else(|| backend("period vanished"))?;
        tx.commit().await?;
        Ok(p)
    }

    async fn statement(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
    ) -> Result<StatementData, StoreError> {
        let c = self.client().await?;
        let open = open_period(&c, scheme_id, mutuelle_id).await?;
        let (period, id) = if core::statement_of_open(number, open.number) {
            (open, None)
        } else {
            let (id, p) = load_period(&c, scheme_id, mutuelle_id, number)
                .await?
                .ok_or_else(|| core::no_such_period(scheme_id, mutuelle_id, number))?;
            (p, Some(id))
        };
        let (claim_cond, rec_cond) = match id {
            None => (
                "c.period_id IS NULL AND c.state = 'coordinated' AND $3::BIGINT IS NULL",
                "r.period_id IS NULL AND $3::BIGINT IS NULL",
            ),
            Some(_) => ("c.period_id = $3", "r.period_id = $3"),
        };
        let rows = q(
            &c,
            &format!(
                "SELECT {} FROM claims c JOIN claim_lines l ON l.claim_pk = c.id \
                 WHERE c.scheme_id = $1 AND c.mutuelle_id = $2 AND {claim_cond} \
                 ORDER BY 1, 2, c.id, l.sequence",
                core::statement_line_cols()
            ),
            &[&scheme_id, &mutuelle_id, &id],
        )
        .await?;
        let lines = decode(&rows, core::statement_line)?;
        let rows = q(
            &c,
            &format!(
                "SELECT {} FROM recoveries r JOIN claims c ON c.id = r.claim_pk \
                 WHERE r.scheme_id = $1 AND r.mutuelle_id = $2 AND {rec_cond} ORDER BY r.id",
                core::recovery_cols()
            ),
            &[&scheme_id, &mutuelle_id, &id],
        )
        .await?;
        let recoveries = decode(&rows, core::recovery)?;
        Ok(StatementData {
            period,
            lines,
            recoveries,
        })
    }
}

#[async_trait]
impl AuditStore for PgStore {
    async fn audit_of(&self, subject: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let c = self.client().await?;
        let rows = q(
            &c,
            &format!(
                "SELECT {} FROM audit_log WHERE subject = $1 ORDER BY id",
                core::AUDIT_COLS
            ),
            &[&subject],
        )
        .await?;
        decode(&rows, core::audit)
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<Option<u64>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let got: bool = q1(
            &tx,
            "SELECT pg_try_advisory_xact_lock($1)",
            &[&RETENTION_LOCK],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or(false);
        if !got {
            return Ok(None);
        }
        let n = x(&tx, PRUNE_PG, &[&before_ms]).await?;
        tx.commit().await?;
        Ok(Some(n))
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let c = self.client().await?;
        // One multi-row INSERT: one round trip for the whole batch.
        let mut sql = String::from(
            "INSERT INTO audit_log (at_ms, direction, party, method, subject, request_hash, outcome) VALUES ",
        );
        let mut params: Vec<P<'_>> = Vec::with_capacity(entries.len() * 7);
        let dirs: Vec<&str> = entries.iter().map(|e| e.direction.as_str()).collect();
        for (i, e) in entries.iter().enumerate() {
            let b = i * 7;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            ));
            params.extend_from_slice(&[
                &e.at_ms,
                &dirs[i],
                &e.party,
                &e.method,
                &e.subject,
                &e.request_hash,
                &e.outcome,
            ]);
        }
        c.execute(sql.as_str(), &params).await?;
        Ok(())
    }

    async fn read_audit(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEntry)>, StoreError> {
        let c = self.client().await?;
        let rows = q(
            &c,
            &format!(
                "SELECT {}, id FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
                core::AUDIT_COLS
            ),
            &[&after_id, &(limit as i64)],
        )
        .await?;
        decode(&rows, |r| Ok((r.int(7)?, core::audit(r)?)))
    }

    async fn partner_activity(&self, mutuelle_id: &str) -> Result<PartnerActivity, StoreError> {
        let c = self.client().await?;
        let party = format!("mutuelle:{mutuelle_id}");
        let ok = q1(
            &c,
            "SELECT at_ms FROM audit_log WHERE party = $1 AND outcome = 'ok' ORDER BY id DESC LIMIT 1",
            &[&party],
        )
        .await?;
        let err = q1(
            &c,
            "SELECT at_ms, outcome FROM audit_log WHERE party = $1 AND outcome <> 'ok' ORDER BY id DESC LIMIT 1",
            &[&party],
        )
        .await?;
        let pending = q1(
            &c,
            &format!(
                "SELECT COUNT(*) FROM claims WHERE mutuelle_id = $1 AND state IN {}",
                core::SQL_WAITING
            ),
            &[&mutuelle_id],
        )
        .await?
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or(0);
        Ok(PartnerActivity {
            last_success_ms: ok.map(|r| r.get(0)).unwrap_or(0),
            last_error_ms: err.as_ref().map(|r| r.get(0)).unwrap_or(0),
            last_error: err.map(|r| r.get(1)).unwrap_or_default(),
            pending: pending as u32,
        })
    }
}

#[async_trait]
impl Store for PgStore {
    async fn schema_status(&self) -> Result<(i64, i64), StoreError> {
        Ok((self.schema_version().await?, SCHEMA_VERSION))
    }
}

/// Audit rows older than the cutoff, except those of claims not final yet:
/// a claim is final once cancelled, rejected, or in a settled period.
const PRUNE_PG: &str = "DELETE FROM audit_log a WHERE a.at_ms < $1 AND NOT EXISTS ( \
    SELECT 1 FROM claims c LEFT JOIN periods p ON p.id = c.period_id \
    WHERE c.scheme_id || '/' || c.claim_id = a.subject \
    AND NOT (c.state IN ('cancelled', 'rejected') OR COALESCE(p.state, '') = 'settled'))";

/// Every stored member of one scheme beneficiary, any mutuelle.
async fn beneficiary_members<C: GenericClient + Sync>(
    c: &C,
    scheme: &str,
    beneficiary: &str,
) -> Result<Vec<Member>, StoreError> {
    q(
        c,
        "SELECT body FROM members WHERE scheme_id = $1 AND beneficiary_id = $2 ORDER BY mutuelle_id, member_number",
        &[&scheme, &beneficiary],
    )
    .await?
    .iter()
    .map(|r| body(r, "member body"))
    .collect()
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
        let key = format!("coverage\u{1f}{s}");
        x(
            c,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await?;
    }
    Ok(())
}

/// The coverage rule ([`super::coverage_overlaps`]) against what is stored,
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
    let overlaps = super::coverage_overlaps(incoming, &others);
    if overlaps.is_empty() {
        Ok(())
    } else {
        Err(StoreError::CoverageOverlap(overlaps))
    }
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

#[cfg(test)]
mod tests {
    crate::store_conformance_suite!(crate::store::testing::postgres_store);

    /// A conflict written before the coverage rule is listed and resolved.
    #[tokio::test]
    async fn legacy_coverage_conflicts() {
        let cfg = crate::store::testing::postgres_config();
        let Ok(s) = super::PgStore::new(&cfg, std::path::Path::new(".")) else {
            return;
        };
        if let Err(e) = s.migrate().await {
            crate::store::testing::unreachable(e);
            return;
        }
        let c = s.client().await.unwrap();
        super::upsert(&c, &crate::store::conformance::legacy_conflict_members(), 1)
            .await
            .unwrap();
        drop(c);
        crate::store::conformance::legacy_conflicts_listed_and_resolved(std::sync::Arc::new(s))
            .await;
    }

    #[tokio::test]
    async fn unknown_stored_values_are_corruption() {
        let cfg = crate::store::testing::postgres_config();
        let Ok(s) = super::PgStore::new(&cfg, std::path::Path::new(".")) else {
            return;
        };
        if let Err(e) = s.migrate().await {
            crate::store::testing::unreachable(e);
            return;
        }
        let s = std::sync::Arc::new(s);
        let raw = s.clone();
        crate::store::conformance::unknown_stored_values_are_corruption(
            s,
            Box::new(move |sql| {
                let s = raw.clone();
                Box::pin(async move {
                    s.client().await.unwrap().batch_execute(sql).await.unwrap();
                })
            }),
            "ALTER TABLE periods DROP CONSTRAINT periods_state_check",
        )
        .await;
    }

    #[tokio::test]
    async fn migrate_twice_at_once_is_safe_and_serve_checks_the_version() {
        let cfg = crate::store::testing::postgres_config();
        let Ok(a) = super::PgStore::new(&cfg, std::path::Path::new(".")) else {
            return;
        };
        let b = super::PgStore::new(&cfg, std::path::Path::new(".")).unwrap();
        match a.schema_version().await {
            Ok(v) => assert_eq!(v, 0, "a fresh schema has no version"),
            Err(e) => {
                crate::store::testing::unreachable(e);
                return;
            }
        }
        let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
        assert_eq!(ra.unwrap(), super::SCHEMA_VERSION);
        assert_eq!(rb.unwrap(), super::SCHEMA_VERSION);
        assert_eq!(a.schema_version().await.unwrap(), super::SCHEMA_VERSION);
    }
}
