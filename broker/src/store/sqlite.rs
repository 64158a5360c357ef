//! The embedded SQLite store, the default: nothing else to install.
//!
//! WAL journal with `synchronous=FULL`, so that an acknowledged claim survives
//! a power cut. One writer thread owns the write connection (SQLite
//! serialises writers anyway) and commits in groups: the calls waiting when
//! it is free run together in one IMMEDIATE transaction, each in a savepoint
//! of its own (a failed call undoes only its own writes), and one commit (one
//! fsync) makes them all durable before any caller hears back. Under load
//! that turns one fsync per write into one per group; alone, a call commits
//! as soon as it is done. The writer keeps a page cache of its own
//! ([`WRITER_CACHE_KIB`]), large enough for the index pages a claim touches.
//!
//! Point reads on the hot paths (member, product, ceiling usage, one claim)
//! run inline on the calling task, on a pool of read connections: in WAL mode
//! a reader sees the last committed snapshot and never waits for the writer,
//! and an indexed lookup in the page cache takes microseconds, less than the
//! two thread switches a blocking task would cost. Scans (lists, statements,
//! the audit trail) run on blocking threads, on read connections too, each in
//! one read transaction ([`SqliteStore::scan`]): never on the writer thread.
//!
//! The roster and product lookups that every eligibility check makes are
//! also kept in memory ([`GenCache`]): a SQLite file has one broker (replicas
//! need PostgreSQL), every write of the roster or of products goes through
//! this store, and each committed write moves its cache to a new generation.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use passerelle_domain::{CeilingKey, Claim, Date, LineShare, Member, Product, Usage, Used, date};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::core;
use super::{
    AuditEntry, AuditStore, Begin, ClaimFilter, ClaimPage, ClaimRecord, ClaimStore,
    CoverageConflict, NewClaim, Outcome, PartnerActivity, PeriodRecord, ProductStore, PutProduct,
    RosterDiff, RosterImport, RosterStore, SettlementStore, StatementData, Store, StoreError,
    Totals, Transition,
};

/// Schema migrations, applied in order; the schema version is their count.
/// Never edit a migration that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: claims, lines, ceilings, roster, products, audit.
    r#"
CREATE TABLE claims (
    id                INTEGER PRIMARY KEY,
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
    product_version   INTEGER,
    product_name      TEXT,
    partner_reference TEXT NOT NULL DEFAULT '',
    rejection_code    TEXT,
    rejection_message TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms   INTEGER,
    last_error        TEXT NOT NULL DEFAULT '',
    change_seq        INTEGER NOT NULL,
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL,
    UNIQUE (scheme_id, claim_id)
);
CREATE UNIQUE INDEX claims_change_seq ON claims (change_seq);
CREATE INDEX claims_scheme_change ON claims (scheme_id, change_seq);
CREATE INDEX claims_invoice ON claims (scheme_id, provider_id, invoice_number);
CREATE INDEX claims_due ON claims (next_attempt_ms) WHERE next_attempt_ms IS NOT NULL;

-- The accounting of every coordinated line: S + M + P = B.
CREATE TABLE claim_lines (
    claim_pk        INTEGER NOT NULL REFERENCES claims (id),
    sequence        INTEGER NOT NULL,
    act_code        TEXT NOT NULL,
    care_category   TEXT NOT NULL,
    quantity        INTEGER NOT NULL,
    billed          INTEGER NOT NULL,
    tariff_base     INTEGER NOT NULL,
    scheme_share    INTEGER NOT NULL,
    mutuelle_share  INTEGER NOT NULL CHECK (mutuelle_share >= 0),
    patient_share   INTEGER NOT NULL CHECK (patient_share >= 0),
    reasons         TEXT NOT NULL,
    PRIMARY KEY (claim_pk, sequence),
    CHECK (scheme_share + mutuelle_share + patient_share = billed)
);

CREATE TABLE ceiling_usage (
    mutuelle_id  TEXT NOT NULL,
    ceiling_key  TEXT NOT NULL,
    used_amount  INTEGER NOT NULL CHECK (used_amount >= 0),
    used_count   INTEGER NOT NULL CHECK (used_count >= 0),
    PRIMARY KEY (mutuelle_id, ceiling_key)
);

-- What each claim consumed, so that a cancel restores exactly that.
CREATE TABLE claim_consumption (
    claim_pk     INTEGER NOT NULL REFERENCES claims (id),
    ceiling_key  TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (claim_pk, ceiling_key)
);

CREATE TABLE members (
    mutuelle_id     TEXT NOT NULL,
    member_number   TEXT NOT NULL,
    scheme_id       TEXT NOT NULL,
    beneficiary_id  TEXT NOT NULL,
    body            TEXT NOT NULL,
    updated_ms      INTEGER NOT NULL,
    PRIMARY KEY (mutuelle_id, member_number)
);
CREATE INDEX members_beneficiary ON members (scheme_id, beneficiary_id);

CREATE TABLE products (
    mutuelle_id  TEXT NOT NULL,
    product_id   TEXT NOT NULL,
    version      INTEGER NOT NULL,
    valid_from   TEXT NOT NULL,
    valid_to     TEXT,
    body         TEXT NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (mutuelle_id, product_id, version)
);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    at_ms         INTEGER NOT NULL,
    direction     TEXT NOT NULL,
    party         TEXT NOT NULL,
    method        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    outcome       TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"#,
    // 2: settlement periods and recoveries; per-claim totals for listings.
    r#"
CREATE TABLE periods (
    id                    INTEGER PRIMARY KEY,
    scheme_id             TEXT NOT NULL,
    mutuelle_id           TEXT NOT NULL,
    number                INTEGER NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('closed', 'settled')),
    closed_ms             INTEGER NOT NULL,
    settled_ms            INTEGER NOT NULL DEFAULT 0,
    settlement_reference  TEXT NOT NULL DEFAULT '',
    UNIQUE (scheme_id, mutuelle_id, number)
);

ALTER TABLE claims ADD COLUMN date_of_care TEXT NOT NULL DEFAULT '';
ALTER TABLE claims ADD COLUMN currency TEXT NOT NULL DEFAULT '';
ALTER TABLE claims ADD COLUMN payee_type TEXT NOT NULL DEFAULT 'provider';
ALTER TABLE claims ADD COLUMN billed_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE claims ADD COLUMN scheme_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE claims ADD COLUMN mutuelle_total INTEGER NOT NULL DEFAULT 0;
-- The closed period the claim is owed in; NULL while in the open period.
ALTER TABLE claims ADD COLUMN period_id INTEGER REFERENCES periods (id);

UPDATE claims SET
    date_of_care = json_extract(body, '$.date_of_care'),
    currency = json_extract(body, '$.currency'),
    payee_type = json_extract(body, '$.payee'),
    billed_total = (SELECT COALESCE(SUM(json_extract(l.value, '$.billed')), 0) FROM json_each(claims.body, '$.lines') AS l),
    scheme_total = (SELECT COALESCE(SUM(json_extract(l.value, '$.scheme_share')), 0) FROM json_each(claims.body, '$.lines') AS l),
    mutuelle_total = (SELECT COALESCE(SUM(mutuelle_share), 0) FROM claim_lines WHERE claim_pk = claims.id);

CREATE INDEX claims_mutuelle_state ON claims (mutuelle_id, state);
CREATE INDEX claims_settlement ON claims (scheme_id, mutuelle_id, period_id, state);

-- A claim cancelled after its period closed: what the mutuelle recovers.
CREATE TABLE recoveries (
    id           INTEGER PRIMARY KEY,
    claim_pk     INTEGER NOT NULL UNIQUE REFERENCES claims (id),
    scheme_id    TEXT NOT NULL,
    mutuelle_id  TEXT NOT NULL,
    from_period  INTEGER NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount > 0),
    period_id    INTEGER REFERENCES periods (id),
    created_ms   INTEGER NOT NULL
);
CREATE INDEX recoveries_open ON recoveries (scheme_id, mutuelle_id, period_id);

CREATE INDEX audit_subject ON audit_log (subject, id);
CREATE INDEX audit_party ON audit_log (party, outcome, id);
"#,
    // 3: indexes in the order the eligibility lookups read, so that neither
    // sorts (they ran on every eligibility check with a temporary B-tree).
    r#"
CREATE INDEX members_beneficiary_order ON members (scheme_id, beneficiary_id, mutuelle_id, member_number);
DROP INDEX members_beneficiary;
CREATE INDEX products_validity ON products (mutuelle_id, product_id, valid_from, version);
"#,
    // 4: the claim that holds the invoice of a claim rejected as a duplicate,
    // for the scheme to reconcile.
    r#"
ALTER TABLE claims ADD COLUMN duplicate_of TEXT;
"#,
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub struct SqliteStore {
    /// The write connection: the writer thread locks it for each group; an
    /// in-memory database's reads lock it too.
    conn: Arc<Mutex<Connection>>,
    writer: std::sync::mpsc::Sender<Job>,
    /// Read connections of a database file; `None` for an in-memory
    /// database, whose reads use the writer connection.
    readers: Option<Arc<ReadPool>>,
    products: super::ProductCache,
    /// `find_members` answers, by (scheme, beneficiary).
    by_beneficiary: GenCache<(String, String), Vec<Member>>,
    /// `get_member` answers, by (mutuelle, member number).
    by_number: GenCache<(String, String), Option<Member>>,
    /// `product_on` answers, by (mutuelle, product, day).
    product_days: GenCache<(String, String, Date), Option<Product>>,
    /// `usage` answers, by (mutuelle, keys): moved by every completion and
    /// cancel. Serving one a moment stale is safe: consumption is applied
    /// conditionally on the stored usage, never on this.
    usages: GenCache<(String, Vec<CeilingKey>), Usage>,
    /// The exclusive lock on `<database>.lock`, held for the store's
    /// lifetime (`None` in memory): one broker per database file.
    _lock: Option<DbLock>,
}

/// An exclusive, non-blocking `flock` on the file beside the database
/// (`passerelle.db.lock`): a second store on the same file, in this process
/// or another, is refused. The kernel drops it when the file is closed, so
/// a broker killed with -9 leaves no stale lock behind.
struct DbLock(#[allow(dead_code)] std::fs::File);

impl DbLock {
    fn take(db: &Path) -> Result<DbLock, StoreError> {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = std::path::PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| backend(format!("{}: {e}", path.display())))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DbLock(file)),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::Refused(format!(
                "{}: another passerelle is using this database (lock held on {})",
                db.display(),
                path.display()
            ))),
            Err(e) => Err(backend(format!("{}: cannot lock: {e}", path.display()))),
        }
    }
}

/// Answers of point reads, valid until the next committed write of their
/// kind. An entry is tagged with the generation read *before* its query, so
/// an answer that raced a write (read before, stored after) is never served:
/// the write moved the generation once committed.
struct GenCache<K, V> {
    generation: std::sync::atomic::AtomicU64,
    map: Mutex<std::collections::HashMap<K, (u64, V)>>,
}

/// Entries per cache; past it the cache starts again, so that memory stays
/// bounded whatever the roster's size.
const GEN_CACHE_MAX: usize = 20_000;

impl<K: std::hash::Hash + Eq, V: Clone> GenCache<K, V> {
    fn new() -> Self {
        GenCache {
            generation: Default::default(),
            map: Mutex::new(Default::default()),
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn get(&self, k: &K) -> Option<V> {
        let g = self.generation();
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(k).filter(|(t, _)| *t == g).map(|(_, v)| v.clone())
    }

    fn put(&self, k: K, generation: u64, v: V) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= GEN_CACHE_MAX {
            map.clear();
        }
        map.insert(k, (generation, v));
    }

    /// After a write of this kind, committed or not.
    fn invalidate(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The cached answer, or `read`'s, cached.
    fn get_or(&self, k: K, read: impl FnOnce() -> Result<V, StoreError>) -> Result<V, StoreError> {
        if let Some(v) = self.get(&k) {
            return Ok(v);
        }
        let g = self.generation();
        let v = read()?;
        self.put(k, g, v.clone());
        Ok(v)
    }
}

/// Read connections, opened on demand: at most one per thread that reads at
/// once, since an inline read never awaits while it holds one.
struct ReadPool {
    path: std::path::PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn open(path: &Path) -> Result<Connection, StoreError> {
        let c = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
                | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| backend(format!("{}: {e}", path.display())))?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        c.pragma_update(None, "query_only", "ON")?;
        c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(c)
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => Self::open(&self.path),
        }
    }

    fn put(&self, c: Connection) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending
    /// migrations: what `passerelle migrate` and `dev` do.
    /// Refused while another store (in any process) has the file open.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let lock = Self::lock(path)?;
        Self::init(Self::connect(path)?, true)?.with_readers(path, lock)
    }

    /// Opens the database file as it is, without migrating: what `serve`
    /// does before checking the schema version.
    /// Refused while another store has the file open.
    pub fn open_existing(path: &Path) -> Result<Self, StoreError> {
        let lock = Self::lock(path)?;
        Self::init(Self::connect(path)?, false)?.with_readers(path, lock)
    }

    /// Takes the database's lock (creating its folder first), before the
    /// database itself is opened, so that a second broker touches nothing.
    fn lock(path: &Path) -> Result<DbLock, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| backend(format!("{}: {e}", dir.display())))?;
        }
        DbLock::take(path)
    }

    fn with_readers(mut self, path: &Path, lock: DbLock) -> Result<Self, StoreError> {
        self._lock = Some(lock);
        // Open one now so that a bad path fails at start, not on a read.
        let first = ReadPool::open(path)?;
        self.readers = Some(Arc::new(ReadPool {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![first]),
        }));
        Ok(self)
    }

    fn connect(path: &Path) -> Result<Connection, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| backend(format!("{}: {e}", dir.display())))?;
        }
        Connection::open(path).map_err(|e| backend(format!("{}: {e}", path.display())))
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, true)
    }

    fn init(mut conn: Connection, migrate_now: bool) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if migrate_now {
            migrate(&mut conn)?;
        }
        let conn = Arc::new(Mutex::new(conn));
        let (writer, jobs) = std::sync::mpsc::channel();
        let shared = conn.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_groups(&shared, jobs))
            .map_err(backend)?;
        Ok(SqliteStore {
            conn,
            writer,
            readers: None,
            products: Default::default(),
            by_beneficiary: GenCache::new(),
            by_number: GenCache::new(),
            product_days: GenCache::new(),
            usages: GenCache::new(),
            _lock: None,
        })
    }

    /// After a write of the roster: cached member lookups are stale.
    fn roster_changed(&self) {
        self.by_beneficiary.invalidate();
        self.by_number.invalidate();
    }

    /// A point read, inline: see the module documentation.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(pool) = &self.readers else {
            let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            return f(&c);
        };
        let conn = pool.take()?;
        let out = f(&conn);
        pool.put(conn);
        out
    }

    /// A read that scans (lists, statements, the audit trail): on a blocking
    /// thread and a read connection, in one read transaction (one snapshot),
    /// never on the writer thread, where it would hold up every write. An
    /// in-memory database has no read connections: there it runs as a write.
    async fn scan<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let Some(pool) = self.readers.clone() else {
            return self.with(f).await;
        };
        tokio::task::spawn_blocking(move || {
            let mut c = pool.take()?;
            c.execute_batch("BEGIN")?;
            let out = f(&mut c);
            let end = c.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
            pool.put(c);
            end?;
            out
        })
        .await
        .map_err(backend)?
    }

    /// Runs `f` on the writer thread, in the next group; answers once the
    /// group is committed.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |c| {
            // A caller gone before its turn (its call timed out or was
            // cancelled) writes nothing.
            if tx.is_closed() {
                let gone: Done = Box::new(|_| {});
                return (false, gone);
            }
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c)))
                .unwrap_or_else(|_| Err(backend("store call panicked")));
            // Gone meanwhile (a long import past the request timeout): rolled
            // back, so that a call answered CANCELLED wrote nothing, as on
            // PostgreSQL where the dropped transaction rolls back.
            let ok = out.is_ok() && !tx.is_closed();
            let done: Done = Box::new(move |commit| {
                let _ = tx.send(match commit {
                    Some(e) if ok => Err(e.clone()),
                    _ => out,
                });
            });
            (ok, done)
        });
        self.writer
            .send(job)
            .map_err(|_| backend("store writer stopped"))?;
        rx.await.map_err(|_| backend("store writer stopped"))?
    }
}

/// The writer connection's page cache, KiB (SQLite's default is 2 MiB). A
/// claim touches a leaf page of each of a dozen indexes (claims, lines,
/// consumption, ceilings, audit); once the file outgrew 2 MiB of them, the
/// writer re-read pages from the WAL on nearly every insert and the claims
/// rate fell by up to 40%, depending on how big the file had grown (the
/// benchmark's "history" effect). Filled only as pages are touched.
const WRITER_CACHE_KIB: i64 = 32 * 1024;

/// Prepared statements kept per connection (rusqlite's default is 16): every
/// statement of the store is prepared once per connection and reused, not
/// parsed again per call; they number about 60.
const STATEMENT_CACHE: usize = 128;

/// One call for the writer: runs in the group's transaction and says whether
/// it succeeded; `Done` answers the caller with the commit's outcome.
type Job = Box<dyn FnOnce(&mut Connection) -> (bool, Done) + Send>;
type Done = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// Most calls committed together.
const GROUP_MAX: usize = 64;

/// The writer thread: see the module documentation. Ends when the store is
/// dropped.
fn write_groups(conn: &Mutex<Connection>, jobs: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
        // Without the group transaction (the database busy past the
        // timeout), each savepoint below is a transaction of its own.
        let grouped = run(&c, "BEGIN IMMEDIATE").is_ok();
        let mut done = Vec::with_capacity(group.len());
        for job in group {
            if run(&c, "SAVEPOINT call").is_err() {
                // Cannot isolate the call: run it bare rather than drop it.
                done.push(job(&mut c).1);
                continue;
            }
            let (ok, d) = job(&mut c);
            let end = if ok {
                run(&c, "RELEASE call")
            } else {
                c.execute_batch("ROLLBACK TO call; RELEASE call")
            };
            if let Err(e) = end {
                tracing::error!(error = %e, "SQLite savepoint could not be closed");
            }
            done.push(d);
        }
        let failed = if grouped {
            run(&c, "COMMIT").err().map(|e| {
                let _ = c.execute_batch("ROLLBACK");
                StoreError::from(e)
            })
        } else {
            None
        };
        drop(c);
        for d in done {
            d(failed.as_ref());
        }
    }
}

/// One statement without parameters or rows, from the statement cache:
/// parsing it again for every call (as `execute_batch` does) was a tenth of
/// the writer thread's time under a burst of claims.
fn run(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([]).map(drop)
}

/// The schema version of a database, 0 when it has none.
fn schema_version(c: &Connection) -> Result<i64, StoreError> {
    let exists: bool = c.prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')")?.query_row([],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    Ok(
        c.prepare_cached("SELECT COALESCE(MAX(version), 0) FROM schema_version")?
            .query_row([], |r| r.get(0))?,
    )
}

/// Applies pending migrations in one transaction; returns the version.
fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let found: Option<i64> = tx
        .prepare_cached("SELECT MAX(version) FROM schema_version")?
        .query_row([], |r| r.get(0))
        .optional()?
        .flatten();
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(backend(format!(
            "database schema version {found} is newer than this binary's {SCHEMA_VERSION}"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.prepare_cached("INSERT INTO schema_version (version) VALUES (?1)")?
            .execute([i as i64 + 1])?;
    }
    tx.commit()?;
    Ok(SCHEMA_VERSION)
}

impl core::Row for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }
}

/// Every row of a query, each decoded by `f` (a [`core`] decoder).
fn rows_of<T>(
    st: &mut rusqlite::CachedStatement<'_>,
    p: impl rusqlite::Params,
    f: impl Fn(&dyn core::Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = st.query(p)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// The first row of a query, decoded by `f`, if any.
fn row_of<T>(
    st: &mut rusqlite::CachedStatement<'_>,
    p: impl rusqlite::Params,
    f: impl Fn(&dyn core::Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut rows = st.query(p)?;
    rows.next()?.map(|r| f(r)).transpose()
}

/// Parses a JSON body column without copying it out of SQLite first.
fn from_json_ref<T: serde::de::DeserializeOwned>(
    what: &str,
    v: rusqlite::types::ValueRef<'_>,
) -> Result<T, StoreError> {
    core::from_json(what, v.as_bytes().map_err(backend)?)
}

/// `SUM(col)` that never overflows, whatever is stored: SQLite's SUM fails
/// with "integer overflow" past an i64, and one such row made a mutuelle's
/// listings, statements and period close fail for good. The high and low 32
/// bits are summed apart (each sum fits an i64 up to 2^31 rows) and joined
/// in i128 by [`joined`]. Two result columns.
fn split_sum(col: &str) -> String {
    format!("COALESCE(SUM(({col}) >> 32), 0), COALESCE(SUM(({col}) & 4294967295), 0)")
}

/// The two columns of a [`split_sum`] at `i`, joined.
fn joined(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<i128> {
    Ok((i128::from(r.get::<_, i64>(i)?) << 32) + i128::from(r.get::<_, i64>(i + 1)?))
}

/// B, S, M from three [`split_sum`]s starting at column `i`.
fn totals_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Totals> {
    Ok(Totals {
        billed: super::clamp_total(joined(r, i)?),
        scheme: super::clamp_total(joined(r, i + 2)?),
        mutuelle: super::clamp_total(joined(r, i + 4)?),
    })
}

/// Every stored member of one scheme beneficiary, any mutuelle.
fn beneficiary_members(
    c: &Connection,
    scheme: &str,
    beneficiary: &str,
) -> Result<Vec<Member>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT body FROM members WHERE scheme_id = ?1 AND beneficiary_id = ?2 ORDER BY mutuelle_id, member_number",
    )?;
    let mut rows = st.query(params![scheme, beneficiary])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_json_ref("member body", r.get_ref(0)?)?);
    }
    Ok(out)
}

/// What a roster snapshot changes (and the records to write), after the
/// coverage rule: reads only.
fn import_plan(
    c: &Connection,
    import: &mut RosterImport,
) -> Result<(RosterDiff, Vec<Member>), StoreError> {
    let existing: Vec<Member> = {
        let mut st = c.prepare_cached("SELECT body FROM members WHERE mutuelle_id = ?1")?;
        let bodies = st
            .query_map([&import.mutuelle_id], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        bodies
            .iter()
            .map(|b| serde_json::from_str(b).map_err(backend))
            .collect::<Result<_, _>>()?
    };
    let incoming = std::mem::take(&mut import.members);
    let (diff, writes, checked) = super::roster_diff_checked(&existing, incoming, import);
    let checked: Vec<(usize, &Member)> = checked.iter().map(|(i, m)| (*i, m)).collect();
    check_coverage(c, &checked)?;
    Ok((diff, writes))
}

/// The coverage rule ([`super::coverage_overlaps`]) against what is stored.
fn check_coverage(c: &Connection, incoming: &[(usize, &Member)]) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::new();
    let mut others = Vec::new();
    for (_, m) in incoming {
        if seen.insert((m.scheme_id.as_str(), m.beneficiary_id.as_str())) {
            others.extend(beneficiary_members(c, &m.scheme_id, &m.beneficiary_id)?);
        }
    }
    let overlaps = super::coverage_overlaps(incoming, &others);
    if overlaps.is_empty() {
        Ok(())
    } else {
        Err(StoreError::CoverageOverlap(overlaps))
    }
}

fn write_members(c: &Connection, members: &[Member], now_ms: i64) -> Result<(), StoreError> {
    let mut st = c.prepare_cached(
        "INSERT INTO members (mutuelle_id, member_number, scheme_id, beneficiary_id, body, updated_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (mutuelle_id, member_number) DO UPDATE SET \
         scheme_id = excluded.scheme_id, beneficiary_id = excluded.beneficiary_id, \
         body = excluded.body, updated_ms = excluded.updated_ms",
    )?;
    for m in members {
        st.execute(params![
            m.mutuelle_id,
            m.member_number,
            m.scheme_id,
            m.beneficiary_id,
            core::json(m),
            now_ms
        ])?;
    }
    Ok(())
}

fn load_lines(c: &Connection, pk: i64) -> Result<Option<Vec<LineShare>>, StoreError> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {} FROM claim_lines WHERE claim_pk = ?1 ORDER BY sequence",
        core::LINE_SHARE_COLS
    ))?;
    let rows = rows_of(&mut st, [pk], core::line_share)?;
    Ok((!rows.is_empty()).then_some(rows))
}

fn load_by_key(
    c: &Connection,
    scheme_id: &str,
    claim_id: &str,
) -> Result<Option<(i64, ClaimRecord)>, StoreError> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {} FROM claims WHERE scheme_id = ?1 AND claim_id = ?2",
        core::CLAIM_COLS
    ))?;
    let Some((pk, mut rec)) = row_of(&mut st, params![scheme_id, claim_id], core::claim)? else {
        return Ok(None);
    };
    rec.shares = load_lines(c, pk)?;
    Ok(Some((pk, rec)))
}

fn load_existing(
    c: &Connection,
    scheme_id: &str,
    claim_id: &str,
) -> Result<(i64, ClaimRecord), StoreError> {
    load_by_key(c, scheme_id, claim_id)?.ok_or_else(|| core::not_found_claim(scheme_id, claim_id))
}

fn next_seq(tx: &Connection) -> Result<i64, StoreError> {
    Ok(tx
        .prepare_cached("SELECT COALESCE(MAX(change_seq), 0) + 1 FROM claims")?
        .query_row([], |r| r.get(0))?)
}

fn put_one(tx: &Connection, p: &Product) -> Result<PutProduct, StoreError> {
    let body = core::json(p);
    let existing: Option<(String, bool)> = tx
        .prepare_cached("SELECT body, used FROM products WHERE mutuelle_id = ?1 AND product_id = ?2 AND version = ?3")?.query_row(params![p.mutuelle_id, p.id, p.version],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let plan = core::put_product_plan(p, &body, existing)?;
    let (from, to) = (date::format(p.valid_from), p.valid_to.map(date::format));
    let sql = match plan {
        PutProduct::Unchanged => return Ok(plan),
        PutProduct::Replaced => {
            "UPDATE products SET valid_from = ?4, valid_to = ?5, body = ?6 \
             WHERE mutuelle_id = ?1 AND product_id = ?2 AND version = ?3"
        }
        PutProduct::Inserted => {
            "INSERT INTO products (mutuelle_id, product_id, version, valid_from, valid_to, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        }
    };
    tx.prepare_cached(sql)?
        .execute(params![p.mutuelle_id, p.id, p.version, from, to, body])?;
    Ok(plan)
}

/// A closed or settled period with its totals.
fn load_period(
    c: &Connection,
    scheme: &str,
    mutuelle: &str,
    number: u32,
) -> Result<Option<(i64, PeriodRecord)>, StoreError> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {} FROM periods WHERE scheme_id = ?1 AND mutuelle_id = ?2 AND number = ?3",
        core::PERIOD_COLS
    ))?;
    let Some((id, mut p)) = row_of(&mut st, params![scheme, mutuelle, number], |r| {
        core::period(r, scheme, mutuelle, number)
    })?
    else {
        return Ok(None);
    };
    (p.claim_count, p.totals) = period_totals(c, "period_id = ?3", params![scheme, mutuelle, id])?;
    p.recoveries = super::clamp_total(c.prepare_cached(&format!("SELECT {} FROM recoveries WHERE scheme_id = ?1 AND mutuelle_id = ?2 AND period_id = ?3", split_sum("amount")))?.query_row(params![scheme, mutuelle, id],
        |r| joined(r, 0),
    )?);
    Ok(Some((id, p)))
}

fn period_totals(
    c: &Connection,
    cond: &str,
    p: impl rusqlite::Params,
) -> Result<(u32, Totals), StoreError> {
    Ok(c.query_row(
        &format!(
            "SELECT COUNT(*), {}, {}, {} FROM claims WHERE scheme_id = ?1 AND mutuelle_id = ?2 AND {cond}",
            split_sum("billed_total"), split_sum("scheme_total"), split_sum("mutuelle_total")
        ),
        p,
        |r| Ok((r.get(0)?, totals_at(r, 1)?)),
    )?)
}

/// The open period: claims coordinated and recoveries raised since the last close.
fn open_period(c: &Connection, scheme: &str, mutuelle: &str) -> Result<PeriodRecord, StoreError> {
    let number: u32 = c.prepare_cached("SELECT COALESCE(MAX(number), 0) + 1 FROM periods WHERE scheme_id = ?1 AND mutuelle_id = ?2")?.query_row(params![scheme, mutuelle],
        |r| r.get(0),
    )?;
    let (count, totals) = period_totals(
        c,
        "period_id IS NULL AND state = 'coordinated'",
        params![scheme, mutuelle],
    )?;
    let recoveries = super::clamp_total(c.prepare_cached(&format!("SELECT {} FROM recoveries WHERE scheme_id = ?1 AND mutuelle_id = ?2 AND period_id IS NULL", split_sum("amount")))?.query_row(params![scheme, mutuelle],
        |r| joined(r, 0),
    )?);
    Ok(core::open_period(
        scheme, mutuelle, number, count, totals, recoveries,
    ))
}

pub(super) const FILTER_SQLITE: &str = "(?1 IS NULL OR c.scheme_id = ?1) AND (?2 IS NULL OR c.mutuelle_id = ?2) \
    AND (?3 IS NULL OR c.state = ?3) AND (?4 IS NULL OR c.date_of_care >= ?4) \
    AND (?5 IS NULL OR c.date_of_care <= ?5)";

fn write_lines(
    tx: &Connection,
    pk: i64,
    claim: &Claim,
    shares: &[LineShare],
) -> Result<(), StoreError> {
    let mut st = tx.prepare_cached(
        "INSERT INTO claim_lines (claim_pk, sequence, act_code, care_category, quantity, billed, \
         tariff_base, scheme_share, mutuelle_share, patient_share, reasons) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for l in core::line_rows(claim, shares) {
        st.execute(params![
            pk,
            l.sequence,
            l.act_code,
            l.category,
            l.quantity,
            l.billed,
            l.tariff_base,
            l.scheme_share,
            l.mutuelle_share,
            l.patient_share,
            l.reasons,
        ])?;
    }
    Ok(())
}

#[async_trait]
impl ClaimStore for SqliteStore {
    async fn begin_claim(&self, new: NewClaim) -> Result<Begin, StoreError> {
        self.with(move |c| {
            let tx = c.savepoint()?;
            let cl = &new.claim;
            if let Some((_, rec)) = load_by_key(&tx, &cl.scheme_id, &cl.claim_id)? {
                return Ok(core::existing(rec, &new.request_hash));
            }
            let dup: Option<String> = tx
                .prepare_cached(&format!("SELECT claim_id FROM claims WHERE scheme_id = ?1 AND provider_id = ?2 \
                     AND invoice_number = ?3 AND state IN {} LIMIT 1", core::SQL_HOLDS_INVOICE))?
                .query_row(params![cl.scheme_id, cl.provider_id, cl.invoice_number], |r| r.get(0))
                .optional()?;
            let seq = next_seq(&tx)?;
            let row = core::new_claim_row(&new, dup);
            tx.prepare_cached(&format!("INSERT INTO claims ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, \
                 ?16, ?17, ?18, ?19, ?20, ?21)", core::CLAIM_INSERT_COLS))?.execute(params![
                    cl.scheme_id,
                    cl.claim_id,
                    new.request_hash,
                    row.body,
                    cl.provider_id,
                    cl.invoice_number,
                    new.mutuelle_id,
                    new.member_number,
                    row.state.as_str(),
                    new.adjudication_key,
                    row.rejection_code,
                    row.rejection_message,
                    row.next_attempt_ms,
                    seq,
                    new.now_ms,
                    row.date_of_care,
                    cl.currency,
                    row.payee,
                    row.billed_total,
                    row.scheme_total,
                    row.duplicate_of,
                ],
            )?;
            let (_, rec) = load_existing(&tx, &cl.scheme_id, &cl.claim_id)?;
            tx.commit()?;
            Ok(core::created(rec))
        })
        .await
    }

    async fn get_claim(
        &self,
        scheme_id: &str,
        claim_id: &str,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        self.read(|conn| Ok(load_by_key(conn, scheme_id, claim_id)?.map(|(_, r)| r)))
    }

    async fn complete_claim(
        &self,
        scheme_id: &str,
        claim_id: &str,
        outcome: Outcome,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let (s, cid) = (scheme_id.to_string(), claim_id.to_string());
        let out = self.with(move |c| {
            let tx = c.savepoint()?;
            let (pk, rec) = load_existing(&tx, &s, &cid)?;
            if !core::may_complete(rec.state) {
                return Ok(Transition::Stale(rec));
            }
            let seq = next_seq(&tx)?;
            match outcome {
                Outcome::Coordinated {
                    shares,
                    product,
                    partner_reference,
                    consumption,
                } => {
                    for (key, u) in core::consumed(&consumption) {
                        tx.prepare_cached("INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) \
                             VALUES (?1, ?2, 0, 0) ON CONFLICT DO NOTHING")?.execute(params![rec.mutuelle_id, key],
                        )?;
                        let n = tx.prepare_cached("UPDATE ceiling_usage SET used_amount = used_amount + ?3, used_count = used_count + ?4 \
                             WHERE mutuelle_id = ?1 AND ceiling_key = ?2 \
                             AND (?5 IS NULL OR used_amount + ?3 <= ?5) \
                             AND (?6 IS NULL OR used_count + ?4 <= ?6)")?.execute(params![rec.mutuelle_id, key, u.amount, u.count, u.limit_amount, u.limit_count],
                        )?;
                        if n == 0 {
                            // Dropping the transaction rolls everything back.
                            return Err(StoreError::CeilingConflict(key));
                        }
                        tx.prepare_cached("INSERT INTO claim_consumption (claim_pk, ceiling_key, amount, count) VALUES (?1, ?2, ?3, ?4)")?.execute(params![pk, key, u.amount, u.count],
                        )?;
                    }
                    write_lines(&tx, pk, &rec.claim, &shares)?;
                    if let Some(p) = &product {
                        tx.prepare_cached("UPDATE products SET used = 1 WHERE mutuelle_id = ?1 AND product_id = ?2 AND version = ?3")?.execute(params![rec.mutuelle_id, p.id, p.version],
                        )?;
                    }
                    tx.prepare_cached("UPDATE claims SET state = 'coordinated', product_id = ?2, product_version = ?3, \
                         product_name = ?4, partner_reference = ?5, next_attempt_ms = NULL, last_error = '', \
                         change_seq = ?6, updated_ms = ?7, mutuelle_total = ?8 WHERE id = ?1")?.execute(params![
                            pk,
                            product.as_ref().map(|p| p.id.clone()),
                            product.as_ref().map(|p| p.version),
                            product.as_ref().map(|p| p.name.clone()),
                            partner_reference,
                            seq,
                            now_ms,
                            core::mutuelle_total(&shares),
                        ],
                    )?;
                }
                Outcome::Rejected(reason) => {
                    tx.prepare_cached("UPDATE claims SET state = 'rejected', rejection_code = ?2, rejection_message = ?3, \
                         next_attempt_ms = NULL, change_seq = ?4, updated_ms = ?5 WHERE id = ?1")?.execute(params![pk, core::code_str(reason.code), reason.message, seq, now_ms],
                    )?;
                }
            }
            let (_, rec) = load_existing(&tx, &s, &cid)?;
            tx.commit()?;
            Ok(Transition::Applied(rec))
        })
        .await;
        self.usages.invalidate();
        out
    }

    async fn defer(
        &self,
        scheme_id: &str,
        claim_id: &str,
        next_attempt_ms: i64,
        last_error: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let (s, cid, err) = (
            scheme_id.to_string(),
            claim_id.to_string(),
            last_error.to_string(),
        );
        self.with(move |c| {
            let tx = c.savepoint()?;
            let (pk, rec) = load_existing(&tx, &s, &cid)?;
            let Some(new_state) = core::deferred_state(rec.state) else {
                return Ok(Transition::Stale(rec));
            };
            let seq = if new_state != rec.state {
                next_seq(&tx)?
            } else {
                rec.change_seq as i64
            };
            tx.prepare_cached("UPDATE claims SET state = ?2, next_attempt_ms = ?3, last_error = ?4, change_seq = ?5, \
                 updated_ms = ?6 WHERE id = ?1")?.execute(params![pk, new_state.as_str(), next_attempt_ms, err, seq, now_ms],
            )?;
            let (_, rec) = load_existing(&tx, &s, &cid)?;
            tx.commit()?;
            Ok(Transition::Applied(rec))
        })
        .await
    }

    async fn lease_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        self.with(move |c| {
            let tx = c.savepoint()?;
            let due: Vec<(i64, i64, String, String)> = {
                let mut st = tx.prepare_cached(&format!(
                    "SELECT id, next_attempt_ms, scheme_id, claim_id FROM claims \
                     WHERE next_attempt_ms IS NOT NULL AND next_attempt_ms <= ?1 \
                     AND state IN {} ORDER BY next_attempt_ms LIMIT ?2",
                    core::SQL_WAITING
                ))?;
                st.query_map(params![now_ms, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<_, _>>()?
            };
            let mut out = Vec::with_capacity(due.len());
            for (pk, old, s, cid) in due {
                let n = tx
                    .prepare_cached(
                        "UPDATE claims SET next_attempt_ms = ?2, attempts = attempts + 1 \
                     WHERE id = ?1 AND next_attempt_ms = ?3",
                    )?
                    .execute(params![pk, now_ms + lease_ms, old])?;
                if n == 1 {
                    out.push(load_existing(&tx, &s, &cid)?.1);
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn expedite(
        &self,
        mutuelle_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<u64, StoreError> {
        let m = mutuelle_id.to_string();
        self.with(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE claims SET next_attempt_ms = ?2 WHERE mutuelle_id = ?1 \
                 AND state IN ('pending_partner', 'cancel_pending') AND next_attempt_ms > ?2 + ?3",
                )?
                .execute(params![m, now_ms, lease_ms])?;
            Ok(n as u64)
        })
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
        let (s, cid, key, why) = (
            scheme_id.to_string(),
            claim_id.to_string(),
            cancel_key.to_string(),
            reason.to_string(),
        );
        self.with(move |c| {
            let tx = c.savepoint()?;
            let (pk, rec) = load_existing(&tx, &s, &cid)?;
            if !core::may_begin_cancel(rec.state) {
                return Ok(Transition::Stale(rec));
            }
            let seq = next_seq(&tx)?;
            tx.prepare_cached("UPDATE claims SET state = 'cancel_pending', cancel_key = ?2, cancel_reason = ?3, \
                 next_attempt_ms = ?4, attempts = 0, change_seq = ?5, updated_ms = ?6 WHERE id = ?1")?.execute(params![pk, key, why, lease_until_ms, seq, now_ms],
            )?;
            let (_, rec) = load_existing(&tx, &s, &cid)?;
            tx.commit()?;
            Ok(Transition::Applied(rec))
        })
        .await
    }

    async fn complete_cancel(
        &self,
        scheme_id: &str,
        claim_id: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let (s, cid) = (scheme_id.to_string(), claim_id.to_string());
        let out = self.with(move |c| {
            let tx = c.savepoint()?;
            let (pk, rec) = load_existing(&tx, &s, &cid)?;
            if !core::may_complete_cancel(rec.state) {
                return Ok(Transition::Stale(rec));
            }
            tx.prepare_cached("UPDATE ceiling_usage SET \
                   used_amount = used_amount - (SELECT amount FROM claim_consumption c WHERE c.claim_pk = ?1 AND c.ceiling_key = ceiling_usage.ceiling_key), \
                   used_count = used_count - (SELECT count FROM claim_consumption c WHERE c.claim_pk = ?1 AND c.ceiling_key = ceiling_usage.ceiling_key) \
                 WHERE mutuelle_id = ?2 AND ceiling_key IN (SELECT ceiling_key FROM claim_consumption WHERE claim_pk = ?1)")?.execute(params![pk, rec.mutuelle_id],
            )?;
            tx.prepare_cached("DELETE FROM claim_consumption WHERE claim_pk = ?1")?.execute([pk])?;
            // Cancelled after its period closed: the mutuelle recovers what it
            // owed, in the next open period (an indu), instead of the closed
            // statement changing.
            tx.prepare_cached("INSERT INTO recoveries (claim_pk, scheme_id, mutuelle_id, from_period, amount, created_ms) \
                 SELECT c.id, c.scheme_id, c.mutuelle_id, p.number, c.mutuelle_total, ?2 \
                 FROM claims c JOIN periods p ON p.id = c.period_id \
                 WHERE c.id = ?1 AND c.mutuelle_total > 0")?.execute(params![pk, now_ms],
            )?;
            let seq = next_seq(&tx)?;
            tx.prepare_cached("UPDATE claims SET state = 'cancelled', next_attempt_ms = NULL, last_error = '', \
                 change_seq = ?2, updated_ms = ?3 WHERE id = ?1")?.execute(params![pk, seq, now_ms],
            )?;
            let (_, rec) = load_existing(&tx, &s, &cid)?;
            tx.commit()?;
            Ok(Transition::Applied(rec))
        })
        .await;
        self.usages.invalidate();
        out
    }

    async fn list_changed(
        &self,
        scheme_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        let s = scheme_id.to_string();
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM claims WHERE scheme_id = ?1 AND change_seq > ?2 \
                 ORDER BY change_seq LIMIT ?3",
                core::CLAIM_COLS
            ))?;
            let rows = rows_of(&mut st, params![s, after_seq as i64, limit], core::claim)?;
            rows.into_iter()
                .map(|(pk, mut rec)| {
                    rec.shares = load_lines(c, pk)?;
                    Ok(rec)
                })
                .collect()
        })
        .await
    }

    async fn list_claims(
        &self,
        f: &ClaimFilter,
        after: i64,
        limit: u32,
    ) -> Result<ClaimPage, StoreError> {
        let f = f.clone();
        self.scan(move |c| {
            let args = (
                f.scheme_id.clone(),
                f.mutuelle_id.clone(),
                f.state.map(|s| s.as_str()),
                f.care_from.map(date::format),
                f.care_to.map(date::format),
            );
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM claims c LEFT JOIN periods p ON p.id = c.period_id \
                 WHERE {FILTER_SQLITE} AND c.id > ?6 ORDER BY c.id LIMIT ?7",
                core::SUMMARY_COLS
            ))?;
            let rows = rows_of(
                &mut st,
                params![args.0, args.1, args.2, args.3, args.4, after, limit],
                core::summary,
            )?;
            let (count, totals) = c.query_row(
                &format!(
                    "SELECT COUNT(*), {}, {}, {} FROM claims c WHERE {FILTER_SQLITE}",
                    split_sum("c.billed_total"),
                    split_sum("c.scheme_total"),
                    split_sum("c.mutuelle_total")
                ),
                params![args.0, args.1, args.2, args.3, args.4],
                |r| Ok((r.get::<_, i64>(0)?, totals_at(r, 1)?)),
            )?;
            Ok(ClaimPage {
                rows,
                totals,
                total_count: count as u64,
            })
        })
        .await
    }

    async fn lease_now(
        &self,
        scheme_id: &str,
        claim_id: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        let (s, cid) = (scheme_id.to_string(), claim_id.to_string());
        self.with(move |c| {
            let tx = c.savepoint()?;
            let n = tx
                .prepare_cached(&format!(
                    "UPDATE claims SET next_attempt_ms = ?3, attempts = attempts + 1 \
                     WHERE scheme_id = ?1 AND claim_id = ?2 AND state IN {}",
                    core::SQL_WAITING
                ))?
                .execute(params![s, cid, now_ms + lease_ms])?;
            let rec = if n == 1 {
                Some(load_existing(&tx, &s, &cid)?.1)
            } else {
                None
            };
            tx.commit()?;
            Ok(rec)
        })
        .await
    }
}

#[async_trait]
impl RosterStore for SqliteStore {
    async fn upsert_members(&self, members: &[Member], now_ms: i64) -> Result<(), StoreError> {
        let members = members.to_vec();
        let out = self
            .with(move |c| {
                let tx = c.savepoint()?;
                // The writer thread runs one write at a time: the check and the
                // write below cannot interleave with another mutuelle's.
                let incoming: Vec<(usize, &Member)> = members.iter().enumerate().collect();
                check_coverage(&tx, &incoming)?;
                write_members(&tx, &members, now_ms)?;
                tx.commit()?;
                Ok(())
            })
            .await;
        self.roster_changed();
        out
    }

    async fn coverage_conflicts(
        &self,
        scheme_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CoverageConflict>, StoreError> {
        let scheme = scheme_id.map(str::to_string);
        self.scan(move |c| {
            // Beneficiaries held by more than one mutuelle, then their members.
            let mut st = c.prepare_cached(
                "SELECT scheme_id, beneficiary_id FROM members \
                 WHERE ?1 IS NULL OR scheme_id = ?1 \
                 GROUP BY scheme_id, beneficiary_id HAVING COUNT(DISTINCT mutuelle_id) > 1 \
                 ORDER BY scheme_id, beneficiary_id",
            )?;
            let pairs = st
                .query_map(params![scheme], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::new();
            for (s, b) in pairs {
                let members = beneficiary_members(c, &s, &b)?;
                if super::gather_conflicts(&mut out, &members, limit) {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn resolve_coverage(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
        keep: &str,
        from: Option<Date>,
        now_ms: i64,
    ) -> Result<Vec<Member>, StoreError> {
        let (s, b, k) = (
            scheme_id.to_string(),
            beneficiary_id.to_string(),
            keep.to_string(),
        );
        let out = self
            .with(move |c| {
                let tx = c.savepoint()?;
                let members = beneficiary_members(&tx, &s, &b)?;
                let writes = super::resolve_plan(&members, &k, from)?;
                write_members(&tx, &writes, now_ms)?;
                tx.commit()?;
                Ok(writes)
            })
            .await;
        self.roster_changed();
        out
    }

    async fn get_member(
        &self,
        mutuelle_id: &str,
        member_number: &str,
    ) -> Result<Option<Member>, StoreError> {
        let key = (mutuelle_id.to_string(), member_number.to_string());
        self.by_number.get_or(key, || {
            self.read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT body FROM members WHERE mutuelle_id = ?1 AND member_number = ?2",
                )?;
                let mut rows = st.query(params![mutuelle_id, member_number])?;
                match rows.next()? {
                    Some(r) => Ok(Some(from_json_ref("member body", r.get_ref(0)?)?)),
                    None => Ok(None),
                }
            })
        })
    }

    async fn find_members(
        &self,
        scheme_id: &str,
        beneficiary_id: &str,
    ) -> Result<Vec<Member>, StoreError> {
        let key = (scheme_id.to_string(), beneficiary_id.to_string());
        self.by_beneficiary.get_or(key, || {
            self.read(|c| beneficiary_members(c, scheme_id, beneficiary_id))
        })
    }

    async fn import_roster(
        &self,
        mut import: RosterImport,
        now_ms: i64,
    ) -> Result<RosterDiff, StoreError> {
        // A dry run only reads: on a read connection, so that a large one
        // never holds up the writer (claims keep being stored meanwhile).
        if import.dry_run {
            return self.scan(move |c| Ok(import_plan(c, &mut import)?.0)).await;
        }
        let out = self
            .with(move |c| {
                let tx = c.savepoint()?;
                let (diff, writes) = import_plan(&tx, &mut import)?;
                write_members(&tx, &writes, now_ms)?;
                tx.commit()?;
                Ok(diff)
            })
            .await;
        self.roster_changed();
        out
    }
}

#[async_trait]
impl ProductStore for SqliteStore {
    async fn put_products(&self, products: &[Product]) -> Result<Vec<PutProduct>, StoreError> {
        let products = products.to_vec();
        let out = self
            .with(move |c| {
                let tx = c.savepoint()?;
                let results = products
                    .iter()
                    .map(|p| put_one(&tx, p))
                    .collect::<Result<Vec<_>, _>>()?;
                tx.commit()?;
                Ok(results)
            })
            .await;
        self.product_days.invalidate();
        out
    }

    async fn list_products(&self, mutuelle_id: &str) -> Result<Vec<(Product, bool)>, StoreError> {
        let m = mutuelle_id.to_string();
        self.scan(move |c| {
            let mut st = c.prepare_cached(
                "SELECT body, used FROM products WHERE mutuelle_id = ?1 ORDER BY product_id, version",
            )?;
            let rows = st
                .query_map([m], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(b, used)| Ok((serde_json::from_str(&b).map_err(backend)?, used)))
                .collect()
        })
        .await
    }

    async fn product_on(
        &self,
        mutuelle_id: &str,
        product_id: &str,
        d: Date,
    ) -> Result<Option<Product>, StoreError> {
        let key = (mutuelle_id.to_string(), product_id.to_string(), d);
        self.product_days.get_or(key, || {
            let day = date::format(d);
            self.read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT version, body FROM products WHERE mutuelle_id = ?1 AND product_id = ?2 \
                     AND valid_from <= ?3 AND (valid_to IS NULL OR valid_to >= ?3) \
                     ORDER BY valid_from DESC, version DESC LIMIT 1",
                )?;
                let mut rows = st.query(params![mutuelle_id, product_id, day])?;
                let Some(r) = rows.next()? else {
                    return Ok(None);
                };
                let body = r.get_ref(1)?.as_str().map_err(backend)?;
                self.products
                    .get_or_parse(mutuelle_id, product_id, r.get(0)?, body)
                    .map(Some)
            })
        })
    }

    async fn usage(&self, mutuelle_id: &str, keys: &[CeilingKey]) -> Result<Usage, StoreError> {
        let key = (mutuelle_id.to_string(), keys.to_vec());
        self.usages.get_or(key, || {
            self.read(|c| {
            // One snapshot for every key (and one lock taken, not one per key).
            let tx = c.unchecked_transaction()?;
            let mut st = tx.prepare_cached(
                "SELECT used_amount, used_count FROM ceiling_usage WHERE mutuelle_id = ?1 AND ceiling_key = ?2",
            )?;
            let mut usage = Usage::default();
            for k in keys {
                if let Some((amount, count)) = st
                    .query_row(params![mutuelle_id, k.storage_key()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .filter(|(a, n): &(i64, u32)| *a != 0 || *n != 0)
                {
                    usage.0.insert(k.clone(), Used { amount, count });
                }
            }
            Ok(usage)
        })
        })
    }
}

#[async_trait]
impl SettlementStore for SqliteStore {
    async fn list_periods(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
    ) -> Result<Vec<PeriodRecord>, StoreError> {
        let (s, m) = (scheme_id.to_string(), mutuelle_id.to_string());
        self.scan(move |c| {
            let open = open_period(c, &s, &m)?;
            let mut out = vec![open.clone()];
            for n in (1..open.number).rev() {
                if let Some((_, p)) = load_period(c, &s, &m, n)? {
                    out.push(p);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn close_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        now_ms: i64,
    ) -> Result<PeriodRecord, StoreError> {
        let (s, m) = (scheme_id.to_string(), mutuelle_id.to_string());
        self.with(move |c| {
            let tx = c.savepoint()?;
            let number = open_period(&tx, &s, &m)?.number;
            tx.prepare_cached("INSERT INTO periods (scheme_id, mutuelle_id, number, state, closed_ms) VALUES (?1, ?2, ?3, 'closed', ?4)")?.execute(params![s, m, number, now_ms],
            )?;
            let id = tx.last_insert_rowid();
            let claims = tx.prepare_cached("UPDATE claims SET period_id = ?3 WHERE scheme_id = ?1 AND mutuelle_id = ?2 \
                 AND period_id IS NULL AND state = 'coordinated'")?.execute(params![s, m, id],
            )?;
            let recoveries = tx.prepare_cached("UPDATE recoveries SET period_id = ?3 WHERE scheme_id = ?1 AND mutuelle_id = ?2 AND period_id IS NULL")?.execute(params![s, m, id],
            )?;
            if claims + recoveries == 0 {
                return Err(core::nothing_to_close(&s, &m));
            }
            let (_, p) = load_period(&tx, &s, &m, number)?.ok_or_else(|| backend("period vanished"))?;
            tx.commit()?;
            Ok(p)
        })
        .await
    }

    async fn settle_period(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
        reference: &str,
        now_ms: i64,
    ) -> Result<PeriodRecord, StoreError> {
        let (s, m, reference) = (
            scheme_id.to_string(),
            mutuelle_id.to_string(),
            reference.to_string(),
        );
        self.with(move |c| {
            let tx = c.savepoint()?;
            let Some((_, p)) = load_period(&tx, &s, &m, number)? else {
                let open = open_period(&tx, &s, &m)?.number;
                return Err(core::no_period_to_settle(&s, &m, number, open));
            };
            if !core::settle_applies(&p, &reference)? {
                return Ok(p);
            }
            tx.prepare_cached(
                "UPDATE periods SET state = 'settled', settled_ms = ?4, settlement_reference = ?5 \
                 WHERE scheme_id = ?1 AND mutuelle_id = ?2 AND number = ?3",
            )?
            .execute(params![s, m, number, now_ms, reference])?;
            let (_, p) =
                load_period(&tx, &s, &m, number)?.ok_or_else(|| backend("period vanished"))?;
            tx.commit()?;
            Ok(p)
        })
        .await
    }

    async fn statement(
        &self,
        scheme_id: &str,
        mutuelle_id: &str,
        number: u32,
    ) -> Result<StatementData, StoreError> {
        let (s, m) = (scheme_id.to_string(), mutuelle_id.to_string());
        self.scan(move |c| {
            let open = open_period(c, &s, &m)?;
            let (period, id) = if core::statement_of_open(number, open.number) {
                (open, None)
            } else {
                let (id, p) = load_period(c, &s, &m, number)?
                    .ok_or_else(|| core::no_such_period(&s, &m, number))?;
                (p, Some(id))
            };
            let (claim_cond, rec_cond) = match id {
                None => ("c.period_id IS NULL AND c.state = 'coordinated'", "r.period_id IS NULL"),
                Some(_) => ("c.period_id = ?3", "r.period_id = ?3"),
            };
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM claims c JOIN claim_lines l ON l.claim_pk = c.id \
                 WHERE c.scheme_id = ?1 AND c.mutuelle_id = ?2 AND {claim_cond} AND (?3 IS NULL OR ?3 = ?3) \
                 ORDER BY 1, 2, c.id, l.sequence",
                core::statement_line_cols()
            ))?;
            let lines = rows_of(&mut st, params![s, m, id], core::statement_line)?;
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM recoveries r JOIN claims c ON c.id = r.claim_pk \
                 WHERE r.scheme_id = ?1 AND r.mutuelle_id = ?2 AND {rec_cond} AND (?3 IS NULL OR ?3 = ?3) \
                 ORDER BY r.id",
                core::recovery_cols()
            ))?;
            let recoveries = rows_of(&mut st, params![s, m, id], core::recovery)?;
            Ok(StatementData { period, lines, recoveries })
        })
        .await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit_of(&self, subject: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let subject = subject.to_string();
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {} FROM audit_log WHERE subject = ?1 ORDER BY id",
                core::AUDIT_COLS
            ))?;
            rows_of(&mut st, [subject], core::audit)
        })
        .await
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<Option<u64>, StoreError> {
        self.with(move |c| {
            let n = c.prepare_cached("DELETE FROM audit_log WHERE at_ms < ?1 AND NOT EXISTS ( \
                 SELECT 1 FROM claims c LEFT JOIN periods p ON p.id = c.period_id \
                 WHERE c.scheme_id || '/' || c.claim_id = audit_log.subject \
                 AND NOT (c.state IN ('cancelled', 'rejected') OR COALESCE(p.state, '') = 'settled'))")?.execute([before_ms],
            )?;
            Ok(Some(n as u64))
        })
        .await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let entries = entries.to_vec();
        self.with(move |c| {
            let tx = c.savepoint()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO audit_log (at_ms, direction, party, method, subject, request_hash, outcome) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for e in &entries {
                    st.execute(params![e.at_ms, e.direction.as_str(), e.party, e.method, e.subject, e.request_hash, e.outcome])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn read_audit(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AuditEntry)>, StoreError> {
        self.scan(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {}, id FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2",
                core::AUDIT_COLS
            ))?;
            rows_of(&mut st, params![after_id, limit], |r| {
                Ok((r.int(7)?, core::audit(r)?))
            })
        })
        .await
    }

    async fn partner_activity(&self, mutuelle_id: &str) -> Result<PartnerActivity, StoreError> {
        let m = mutuelle_id.to_string();
        self.scan(move |c| {
            let party = format!("mutuelle:{m}");
            let last_success_ms: Option<i64> = c.prepare_cached("SELECT at_ms FROM audit_log WHERE party = ?1 AND outcome = 'ok' ORDER BY id DESC LIMIT 1")?.query_row([&party],
                |r| r.get(0),
            ).optional()?;
            let last_error: Option<(i64, String)> = c.prepare_cached("SELECT at_ms, outcome FROM audit_log WHERE party = ?1 AND outcome <> 'ok' ORDER BY id DESC LIMIT 1")?.query_row([&party],
                |r| Ok((r.get(0)?, r.get(1)?)),
            ).optional()?;
            let pending: u32 = c.prepare_cached(&format!("SELECT COUNT(*) FROM claims WHERE mutuelle_id = ?1 \
                 AND state IN {}", core::SQL_WAITING))?.query_row([&m],
                |r| r.get(0),
            )?;
            let (last_error_ms, last_error) = last_error.unwrap_or_default();
            Ok(PartnerActivity { last_success_ms: last_success_ms.unwrap_or(0), last_error_ms, last_error, pending })
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn schema_status(&self) -> Result<(i64, i64), StoreError> {
        self.scan(|c| Ok((schema_version(c)?, SCHEMA_VERSION)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store_conformance_suite!(|| async {
        Some(std::sync::Arc::new(SqliteStore::open_in_memory().unwrap())
            as std::sync::Arc<dyn Store>)
    });

    /// The default deployment: a database file, point reads on the read
    /// pool, writes in groups.
    mod file_backed {
        use super::*;

        crate::store_conformance_suite!(|| async {
            // Kept for the test's life: the store outlives this closure.
            let dir = tempfile::tempdir().unwrap().keep();
            Some(
                std::sync::Arc::new(SqliteStore::open(&dir.join("passerelle.db")).unwrap())
                    as std::sync::Arc<dyn Store>,
            )
        });
    }

    /// A write whose caller is gone before it ends (a long import past the
    /// request timeout) is rolled back: the call answered CANCELLED and
    /// wrote nothing, as on PostgreSQL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_whose_caller_is_gone_is_rolled_back() {
        let s = std::sync::Arc::new(SqliteStore::open_in_memory().unwrap());
        let (started, wait_started) = std::sync::mpsc::channel();
        let (go, wait_go) = std::sync::mpsc::channel::<()>();
        let member = crate::store::conformance::sample_member("MUT-A", "GONE-1", "TG-GONE");
        let s2 = s.clone();
        let call = tokio::spawn(async move {
            s2.with(move |c| {
                write_members(c, &[member], 1)?;
                let _ = started.send(());
                let _ = wait_go.recv();
                Ok(())
            })
            .await
        });
        tokio::task::spawn_blocking(move || wait_started.recv().unwrap())
            .await
            .unwrap();
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        go.send(()).unwrap();
        // The next write runs after the abandoned one.
        s.with(|_| Ok(())).await.unwrap();
        s.roster_changed();
        assert_eq!(s.get_member("MUT-A", "GONE-1").await.unwrap(), None);
    }

    /// A conflict written before the coverage rule is listed and resolved.
    #[tokio::test]
    async fn legacy_coverage_conflicts() {
        let s = std::sync::Arc::new(SqliteStore::open_in_memory().unwrap());
        let members = crate::store::conformance::legacy_conflict_members();
        s.with(move |c| write_members(c, &members, 1))
            .await
            .unwrap();
        s.roster_changed();
        crate::store::conformance::legacy_conflicts_listed_and_resolved(s).await;
    }

    #[tokio::test]
    async fn unknown_stored_values_are_corruption() {
        let s = std::sync::Arc::new(SqliteStore::open_in_memory().unwrap());
        let raw = s.clone();
        crate::store::conformance::unknown_stored_values_are_corruption(
            s,
            Box::new(move |sql| {
                let s = raw.clone();
                Box::pin(async move {
                    s.with(move |c| Ok(c.execute_batch(sql)?)).await.unwrap();
                })
            }),
            "PRAGMA ignore_check_constraints = ON",
        )
        .await;
    }

    /// The writer keeps its larger page cache, and the bundled SQLite is
    /// built without global memory statistics (.cargo/config.toml): with
    /// them, every allocation of every connection took one process-wide
    /// mutex, contended between the writer thread and the read pool.
    #[tokio::test]
    async fn writer_cache_and_build_options() {
        let s = SqliteStore::open_in_memory().unwrap();
        let (cache, options) = s
            .with(|c| {
                let cache: i64 = c.pragma_query_value(None, "cache_size", |r| r.get(0))?;
                let mut st = c.prepare("PRAGMA compile_options")?;
                let options = st
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((cache, options))
            })
            .await
            .unwrap();
        assert_eq!(cache, -WRITER_CACHE_KIB);
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

    /// Every statement of the store fits in a connection's statement cache
    /// at once: past its capacity the least recently used statement is
    /// dropped and parsed again on its next use, the cost the cache is for.
    #[test]
    fn the_statement_cache_holds_every_statement() {
        let src = include_str!("sqlite.rs");
        let store = &src[..src.find("#[cfg(test)]").unwrap()];
        let sites = store.matches(".prepare_cached(").count();
        assert!(sites > 40, "{sites}");
        assert!(sites < STATEMENT_CACHE, "{sites} statements");
    }

    #[tokio::test]
    async fn audit_log_refuses_updates() {
        let s = SqliteStore::open_in_memory().unwrap();
        s.append_audit(&[AuditEntry {
            at_ms: 1,
            direction: crate::store::Direction::In,
            party: "p".into(),
            method: "m".into(),
            subject: "s".into(),
            request_hash: "h".into(),
            outcome: "ok".into(),
        }])
        .await
        .unwrap();
        let err = s
            .with(|c| Ok(c.execute("UPDATE audit_log SET outcome = 'x'", [])?))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }

    /// A database written by schema version 1 gets the settlement columns
    /// filled from the stored claims.
    #[tokio::test]
    async fn migration_2_backfills_claims_of_version_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                .unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute("INSERT INTO schema_version (version) VALUES (1)", [])
                .unwrap();
            let claim = crate::store::conformance::sample_claim("CNSS", "OLD-1", "INV-OLD");
            c.execute(
                "INSERT INTO claims (scheme_id, claim_id, request_hash, body, provider_id, invoice_number, \
                 mutuelle_id, member_number, state, adjudication_key, change_seq, created_ms, updated_ms) \
                 VALUES ('CNSS', 'OLD-1', 'h', ?1, 'CHU-TOKOIN', 'INV-OLD', 'MUT-A', 'M-1', 'coordinated', 'k', 1, 1, 1)",
                [core::json(&claim)],
            )
            .unwrap();
            for (seq, (b, s, m)) in [(5000, 3500, 1500), (12000, 8000, 2000)]
                .into_iter()
                .enumerate()
            {
                c.execute(
                    "INSERT INTO claim_lines VALUES (1, ?1, 'C1', 'consultation', 1, ?2, ?2, ?3, ?4, ?5, '[]')",
                    params![seq as i64 + 1, b, s, m, b - s - m],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        let page = store
            .list_claims(
                &ClaimFilter {
                    scheme_id: Some("CNSS".into()),
                    ..Default::default()
                },
                0,
                10,
            )
            .await
            .unwrap();
        assert_eq!(page.rows.len(), 1);
        let r = &page.rows[0];
        assert_eq!(
            (r.date_of_care.as_str(), r.currency.as_str()),
            ("2026-03-10", "XOF")
        );
        assert_eq!(
            (r.totals.billed, r.totals.scheme, r.totals.mutuelle),
            (17000, 11500, 3500)
        );
        let open = store.list_periods("CNSS", "MUT-A").await.unwrap();
        assert_eq!(open[0].claim_count, 1);
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.upsert_members(
                &[crate::store::conformance::sample_member("M", "1", "B")],
                1,
            )
            .await
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert!(s.get_member("M", "1").await.unwrap().is_some());
        let v: i64 = s
            .with(|c| Ok(c.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    /// One store per database file: a second open (here in the same
    /// process; another process is refused alike) fails naming the file,
    /// and the file is free again once the first store is dropped.
    #[tokio::test]
    async fn a_second_store_on_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let first = SqliteStore::open(&path).unwrap();
        for second in [SqliteStore::open(&path), SqliteStore::open_existing(&path)] {
            let e = second.err().expect("second store refused").to_string();
            assert!(e.contains("another passerelle is using"), "{e}");
            assert!(e.contains(&path.display().to_string()), "{e}");
        }
        // The first still works.
        first
            .upsert_members(
                &[crate::store::conformance::sample_member("M", "1", "B")],
                1,
            )
            .await
            .unwrap();
        drop(first);
        let again = SqliteStore::open(&path).unwrap();
        assert!(again.get_member("M", "1").await.unwrap().is_some());
    }
}
