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
    AuditEntry, AuditStore, AuditTrail, Begin, ClaimFilter, ClaimPage, ClaimPeriods, ClaimRecord,
    ClaimStore, CloseUpTo, CoverageConflict, NewClaim, Outcome, PartnerActivity, PayeeTotal,
    PayeesFrom, PeriodRecord, ProductStore, PutProduct, RosterDiff, RosterImport, RosterStore,
    SettlementStore, StatementData, StatementPage, Store, StoreError, Totals, Transition,
};

mod approvals;
/// The schema version this binary writes.
mod audit;
mod authorizations;
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

use migrations::MIGRATIONS;

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
    by_beneficiary: Arc<GenCache<(String, String), Vec<Member>>>,
    /// `get_member` answers, by (mutuelle, member number).
    by_number: Arc<GenCache<(String, String), Option<Member>>>,
    /// `product_on` answers, by (mutuelle, product, day).
    product_days: Arc<GenCache<(String, String, Date), Option<Product>>>,
    /// `usage` answers, by (mutuelle, keys): moved by every completion and
    /// cancel. Serving one a moment stale is safe for money: consumption is
    /// applied conditionally on the stored usage, never on this; but
    /// eligibility shows it, so a write moves it once committed whatever
    /// became of its caller ([`SqliteStore::write`]).
    usages: Arc<GenCache<(String, Vec<CeilingKey>), Usage>>,
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
            Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::InUse(db.display().to_string())),
            Err(e) => Err(backend(format!("{}: cannot lock: {e}", path.display()))),
        }
    }
}

/// The caches a write makes stale ([`SqliteStore::write`]).
#[derive(Clone, Copy, Debug)]
enum Moves {
    /// Member lookups.
    Roster,
    /// Products by day.
    Products,
    /// Ceiling usage.
    Usage,
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

impl<K: std::hash::Hash + Eq, V: Clone> Default for GenCache<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

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
    /// Connections taken and not yet put back (for the metrics).
    in_use: std::sync::atomic::AtomicUsize,
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
        let c = match idle {
            Some(c) => c,
            None => Self::open(&self.path)?,
        };
        self.in_use
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(c)
    }

    /// Drops a connection taken from the pool (one that failed).
    fn discard(&self, c: Connection) {
        self.in_use
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        drop(c);
    }

    fn put(&self, c: Connection) {
        self.in_use
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
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
        // No file: nothing is created (a mistyped path left an empty
        // database behind), and the path is named.
        if !path.exists() {
            return Err(StoreError::NoDatabase(path.display().to_string()));
        }
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
            in_use: Default::default(),
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
            by_beneficiary: Default::default(),
            by_number: Default::default(),
            product_days: Default::default(),
            usages: Default::default(),
            _lock: None,
        })
    }

    /// After a write of the roster: cached member lookups are stale.
    #[cfg(test)]
    fn roster_changed(&self) {
        self.moved(Moves::Roster)();
    }

    /// What invalidates the caches a write of this kind makes stale.
    fn moved(&self, what: Moves) -> Box<dyn FnOnce() + Send> {
        match what {
            Moves::Roster => {
                let (a, b) = (self.by_beneficiary.clone(), self.by_number.clone());
                Box::new(move || {
                    a.invalidate();
                    b.invalidate();
                })
            }
            Moves::Products => {
                let p = self.product_days.clone();
                Box::new(move || p.invalidate())
            }
            Moves::Usage => {
                let u = self.usages.clone();
                Box::new(move || u.invalidate())
            }
        }
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
            if let Err(e) = c.execute_batch("BEGIN") {
                pool.discard(c);
                return Err(e.into());
            }
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
        self.run_then(f, Box::new(|| {})).await
    }

    /// [`with`](Self::with) for a write that makes cached answers stale:
    /// they are invalidated on the writer thread once its group is
    /// committed (or rolled back), before the caller hears back, and
    /// whether or not the caller still waits. Invalidated after the await
    /// instead, a call cut while its group committed (an HTTP client gone
    /// during the fsync) skipped it with its dropped future, and its
    /// committed write stayed unseen: eligibility showed a ceiling's usage
    /// without the claim, until another write (a scheme integrator's
    /// trial).
    async fn write<T, F>(&self, what: Moves, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.run_then(f, self.moved(what)).await
    }

    async fn run_then<T, F>(&self, f: F, moved: Box<dyn FnOnce() + Send>) -> Result<T, StoreError>
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
                moved();
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
    core::migrations_to_apply(found, SCHEMA_VERSION)?;
    let mut log = core::MigrationLog::start(found, SCHEMA_VERSION, "writers");
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.prepare_cached("INSERT INTO schema_version (version) VALUES (?1)")?
            .execute([i as i64 + 1])?;
        log.ran(i as i64 + 1);
    }
    tx.commit()?;
    log.committed();
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
            .map(|b| core::from_json("member body", b.as_bytes()))
            .collect::<Result<_, _>>()?
    };
    let incoming = std::mem::take(&mut import.members);
    let (diff, writes, checked) = super::roster_diff_checked(&existing, incoming, import)?;
    let checked: Vec<(usize, &Member)> = checked.iter().map(|(i, m)| (*i, m)).collect();
    check_coverage(c, &checked)?;
    Ok((diff, writes))
}

/// The roster's rules ([`super::coverage_rule`]) against what is stored.
fn check_coverage(c: &Connection, incoming: &[(usize, &Member)]) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::new();
    let mut others = Vec::new();
    for (_, m) in incoming {
        if seen.insert((m.scheme_id.as_str(), m.beneficiary_id.as_str())) {
            others.extend(beneficiary_members(c, &m.scheme_id, &m.beneficiary_id)?);
        }
    }
    super::coverage_rule(incoming, &others)
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

/// One claim transition, in a savepoint: loads the claim, `apply` writes
/// the change and says whether it applied (`false`: the claim is not in a
/// state it leaves, `Stale`, nothing written), then the claim is read back
/// and committed. An error rolls everything back.
fn transition(
    c: &mut Connection,
    scheme_id: &str,
    claim_id: &str,
    apply: impl FnOnce(&Connection, i64, &ClaimRecord) -> Result<bool, StoreError>,
) -> Result<Transition, StoreError> {
    let tx = c.savepoint()?;
    let (pk, rec) = load_existing(&tx, scheme_id, claim_id)?;
    if !apply(&tx, pk, &rec)? {
        return Ok(Transition::Stale(rec));
    }
    let (_, rec) = load_existing(&tx, scheme_id, claim_id)?;
    tx.commit()?;
    Ok(Transition::Applied(rec))
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
    let Some((id, mut p, stored)) = row_of(&mut st, params![scheme, mutuelle, number], |r| {
        core::period(r, scheme, mutuelle, number)
    })?
    else {
        return Ok(None);
    };
    if !stored {
        (p.claim_count, p.totals) = period_totals(c, false, params![scheme, mutuelle, id])?;
        p.recoveries = super::clamp_total(c.prepare_cached(&format!("SELECT {} FROM recoveries WHERE scheme_id = ?1 AND mutuelle_id = ?2 AND period_id = ?3", split_sum("amount")))?.query_row(params![scheme, mutuelle, id],
            |r| joined(r, 0),
        )?);
    }
    Ok(Some((id, p)))
}

/// A period's claims and their totals (`p`: scheme, mutuelle, and the
/// closed period's id, which the open period has not).
fn period_totals(
    c: &Connection,
    open: bool,
    p: impl rusqlite::Params,
) -> Result<(u32, Totals), StoreError> {
    Ok(c.query_row(
        &format!(
            "SELECT COUNT(*), {}, {}, {} FROM claims c WHERE c.scheme_id = ?1 AND c.mutuelle_id = ?2 AND {}",
            split_sum("c.billed_total"), split_sum("c.scheme_total"), split_sum("c.mutuelle_total"),
            core::period_claims(if open { "0" } else { "?3" })
        ),
        p,
        |r| Ok((r.get(0)?, totals_at(r, 1)?)),
    )?)
}

/// The open period's number, without its totals.
fn open_number(c: &Connection, scheme: &str, mutuelle: &str) -> Result<u32, StoreError> {
    Ok(c.prepare_cached("SELECT COALESCE(MAX(number), 0) + 1 FROM periods WHERE scheme_id = ?1 AND mutuelle_id = ?2")?.query_row(params![scheme, mutuelle],
        |r| r.get(0),
    )?)
}

/// The open period: claims coordinated and recoveries raised since the last close.
fn open_period(c: &Connection, scheme: &str, mutuelle: &str) -> Result<PeriodRecord, StoreError> {
    let number = open_number(c, scheme, mutuelle)?;
    let (count, totals) = period_totals(c, true, params![scheme, mutuelle])?;
    let recoveries = super::clamp_total(c.prepare_cached(&format!("SELECT {} FROM recoveries WHERE scheme_id = ?1 AND mutuelle_id = ?2 AND period_id IS NULL", split_sum("amount")))?.query_row(params![scheme, mutuelle],
        |r| joined(r, 0),
    )?);
    Ok(core::open_period(
        scheme, mutuelle, number, count, totals, recoveries,
    ))
}

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
impl Store for SqliteStore {
    async fn schema_status(&self) -> Result<(i64, i64), StoreError> {
        self.scan(|c| Ok((schema_version(c)?, SCHEMA_VERSION)))
            .await
    }

    /// The read connections (a reader that finds none idle opens one: no
    /// caller waits) and the one writer.
    fn pool_use(&self) -> Option<super::PoolUse> {
        let r = self.readers.as_ref()?;
        let idle = r.idle.lock().unwrap_or_else(|p| p.into_inner()).len();
        let in_use = r.in_use.load(std::sync::atomic::Ordering::Relaxed);
        Some(super::PoolUse {
            size: idle + in_use + 1,
            available: idle,
            waiting: 0,
        })
    }
}
