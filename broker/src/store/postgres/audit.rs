//! The audit log and partner activity.
//!
//! The log is partitioned by UTC month of `at_ms` (migration 18):
//! `audit_log_mYYYY_MM`, made [`MONTHS_AHEAD_MS`] ahead by `migrate` (in
//! migration 18's transaction, so that no row written meanwhile lands in
//! the default), at start-up and by the retention worker's every pass
//! (`prepare_audit`, whether it prunes or not), plus `audit_log_default` for a row
//! no month takes (a clock far off, a month not made). Retention drops a
//! month once all of it is older than the cutoff, after moving the rows
//! of claims not final yet to `audit_kept` (found from the claims not
//! final old enough to hold some, not by reading the month), which also
//! holds what was
//! written before the months; those two tables and the default partition
//! are pruned row by row, as before (`core::prune_audit_rows_sql`). So a
//! row is kept at least the retention's days and at most a month more
//! (docs/operations.md, "Retention"). A month leaves the log by a detach,
//! and its files are freed after, one relation a transaction
//! ([`PgStore::free_detached_month`]).

use super::*;

/// How far ahead the months are made: the current one and the next two.
pub(super) const MONTHS_AHEAD_MS: i64 = 62 * 86_400_000;

/// How long making or dropping a month waits for the audit log's readers
/// and writers (either locks the whole log: new audit rows wait behind it,
/// in the audit writer's queue of 8,192): past it, the month is left to
/// the next pass.
const LOG_LOCK_TIMEOUT: &str = "500ms";

/// The most rows `audit_log_default` may hold for a month to be made:
/// making one scans the default partition under the log's lock (tens of
/// milliseconds at this bound). The default stays nearly empty while the
/// months are made ahead; past the bound, months are no longer made (a
/// warning each pass) and new rows are pruned row by row, as before
/// schema 18 (docs/operations.md, "Retention on a large database").
const DEFAULT_ROWS_MAX: i64 = 100_000;

/// The longest one statement of a month's move may take (the rows of
/// [`MOVE_CLAIMS`] claims, those of one period left unsettled, or the count
/// of the month's rows: well under a second at a year of a country,
/// docs/PERFORMANCE.md), in place of the live calls' statement timeout.
const MONTH_TIMEOUT: &str = "10min";

/// Index entries per statement of a month's count (its id index, read
/// by one backend): a few milliseconds each, followed by a rest as long.
pub(super) const COUNT_ROWS: i64 = 100_000;

/// Claims per statement of a month's move: each statement reads at most
/// this many entries of `claims_open` (the claims coordinated in no closed
/// period, by creation time), and moves the month's rows of those created
/// before the month's end and a day (on a store of a year, those of
/// statements left open a year; the batch that crosses the cutoff reads
/// up to this many of the oldest entries past it, and ends the move). Each statement is followed by a rest as long as it took.
pub(super) const MOVE_CLAIMS: i64 = 5_000;

/// A detached month's relation whose freeing took this long or more is
/// followed by a rest [`FREE_REST_FACTOR`] times as long (at most
/// [`FREE_REST_MAX`]); a shorter one by a rest as long as it took.
const FREE_SLOW: std::time::Duration = std::time::Duration::from_millis(10);
/// Where a file system discards freed blocks as it frees them (ext4's
/// `discard`), the commit that frees a relation holds every live commit
/// for its time: 55 to 63 ms for a month's table at 10 million claims
/// (measured 5 December, docs/PERFORMANCE.md, twenty-first part). The
/// stall is the file system's and cannot be made shorter from SQL; what
/// retention chooses is how much of the live calls it holds: the calls
/// arriving during a stall `d` followed by a rest `k × d` are `1/(k + 1)`
/// of those the pass overlaps (the pass being mostly its rests, as it is
/// at 10 million claims; whatever the replicas of this version, as
/// retention's lock is held through the rests:
/// [`PgStore::retention_held`]). At `k = 100`
/// that is 1 %, exactly a p99's share; at 300 it is a third of it, for
/// stalls of 10 to 100 ms (a longer one rests [`FREE_REST_MAX`], a
/// larger share: 1 % at 300 ms).
/// A month's files are then freed over about a minute at 10 million
/// claims (a monthly job). Measured at 10 million claims
/// (docs/PERFORMANCE.md, twenty-second and twenty-third parts): retention
/// met its limit in five runs of five, on two hosts, and in alternating
/// runs on one host its ratio was lower than with a hundred in both pairs
/// (1.02 and 1.07 × against 1.30 and 1.35 ×). Timed from the drop to its
/// commit.
const FREE_REST_FACTOR: u32 = 300;
/// The longest rest after freeing one relation.
const FREE_REST_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// The rest after freeing one relation that took `took` ([`FREE_SLOW`]).
async fn rest_after_free(took: std::time::Duration) {
    let rest = if took >= FREE_SLOW {
        (took * FREE_REST_FACTOR).min(FREE_REST_MAX)
    } else {
        took
    };
    tokio::time::sleep(rest).await;
}

/// Frees `table`'s relations on `held`, one a transaction: its indexes,
/// then the table, each followed by `rest` of the time it took
/// ([`rest_after_free`]; [`PgStore::free_detached_month`]).
async fn free_relations<R: std::future::Future<Output = ()>>(
    held: &mut SessionLock,
    table: &str,
    mut rest: impl FnMut(std::time::Duration) -> R,
) -> Result<(), StoreError> {
    let indexes: Vec<String> = held
        .query(
            "SELECT quote_ident(i.relname) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = to_regclass(format('%I.%I', current_schema(), $1::TEXT)) \
             ORDER BY i.relname",
            &[&table],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let drops = indexes
        .iter()
        .map(|i| format!("DROP INDEX IF EXISTS {i}"))
        .chain([format!("DROP TABLE IF EXISTS {table}")]);
    for drop in drops {
        // A transaction of the client's, not `BEGIN` in the text: a
        // statement that fails in a text would leave the connection inside
        // an aborted transaction; this one rolls back when dropped.
        let tx = held.transaction().await?;
        // The freeing's own time: the drop (its wait for the table's lock
        // included) and its commit, where the file system discards.
        let began = tokio::time::Instant::now();
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{LOG_LOCK_TIMEOUT}'; {drop}"
        ))
        .await?;
        tx.commit().await?;
        rest(began.elapsed()).await;
    }
    Ok(())
}

/// The claims coordinated and in no closed period (a cancel asked of one
/// keeps it there, under the same key): the predicate of the
/// `claims_open` index (migrations' `CONCURRENT_INDEXES`), as its queries
/// must write it for PostgreSQL to use it. A claim writes an entry when it
/// is coordinated, and when a cancel is asked of it in no closed period:
/// those still waiting on their partner are found by the index of the
/// waiting claims ([`move_waiting_sql`]), those in a closed period by the
/// statement's.
pub(super) const OPEN_CLAIM: &str =
    "period_id IS NULL AND state IN ('coordinated', 'cancel_pending')";

/// A UTC month, the unit of the audit log's partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditMonth {
    year: i32,
    month: u8,
}

impl AuditMonth {
    /// The month `ms` (Unix milliseconds) falls in.
    pub fn of(ms: i64) -> AuditMonth {
        let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        AuditMonth {
            year: t.year(),
            month: t.month() as u8,
        }
    }

    pub fn next(self) -> AuditMonth {
        if self.month == 12 {
            AuditMonth {
                year: self.year + 1,
                month: 1,
            }
        } else {
            AuditMonth {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Its first millisecond.
    pub fn start_ms(self) -> i64 {
        let m = time::Month::try_from(self.month).unwrap_or(time::Month::January);
        time::Date::from_calendar_date(self.year, m, 1)
            .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
            .unwrap_or(0)
    }

    /// Its partition's name.
    pub fn table(self) -> String {
        format!("audit_log_m{:04}_{:02}", self.year, self.month)
    }

    /// The name its table takes when retention detaches it, until its
    /// files are freed: only tables so named are ever freed
    /// ([`PgStore::free_detached_months`]), never a month an operator
    /// detached (to archive it) or a restore has not attached yet.
    pub fn detached_table(self) -> String {
        format!("audit_detached_m{:04}_{:02}", self.year, self.month)
    }

    /// The month of a partition's name, `None` for any other table.
    pub fn parse(table: &str) -> Option<AuditMonth> {
        Self::parse_after(table, "audit_log_m")
    }

    /// The month of a name [`Self::detached_table`] gives, exactly.
    pub fn parse_detached(table: &str) -> Option<AuditMonth> {
        Self::parse_after(table, "audit_detached_m").filter(|m| m.detached_table() == table)
    }

    fn parse_after(table: &str, prefix: &str) -> Option<AuditMonth> {
        let rest = table.strip_prefix(prefix)?;
        let (y, m) = rest.split_once('_')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        (1..=12)
            .contains(&month)
            .then_some(AuditMonth { year, month })
    }
}

/// A lock on the log not had within [`LOG_LOCK_TIMEOUT`] leaves the month
/// to the next pass (its transaction, and the move in it, rolled back);
/// any other error is one.
fn held_or(e: tokio_postgres::Error, table: &str) -> Result<Dropped, StoreError> {
    if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
        tracing::info!(month = %table, "audit log: month not detached, the log was busy; next pass");
        Ok(Dropped::Held)
    } else {
        Err(e.into())
    }
}

/// One statement of a month's move ([`PgStore::drop_audit_month`]): the
/// rows of `table` whose claim is one of `claims` (a query of the claims
/// not final that may hold some, giving `created_ms, id, subject`) are
/// moved to `audit_kept` under their ids: those of its subject written at
/// most [`core::ROWS_BEFORE_CLAIM_MS`] before the claim's creation, as
/// [`core::audit_row_held`] keeps them. The claims are read once, first
/// (`MATERIALIZED`), and each claim's rows found by the month's subject
/// index (`LATERAL`, kept a subquery of each by `OFFSET 0`), then deleted
/// by row address (the month is locked against writers): joined plainly,
/// PostgreSQL may plan the delete as a scan of the month. Returns the rows
/// moved, the claims read, and the last claim read (creation time, id),
/// `NULL` when none was.
fn move_sql(table: &str, claims: &str) -> String {
    let cols = "id, at_ms, direction, party, method, subject, request_hash, outcome, trace_id";
    format!(
        "WITH claim AS MATERIALIZED ({claims}), \
         last AS (SELECT created_ms, id FROM claim ORDER BY created_ms DESC, id DESC LIMIT 1), \
         moved AS (DELETE FROM {table} WHERE ctid = ANY (ARRAY(SELECT r.ctid FROM claim h \
           CROSS JOIN LATERAL (SELECT ctid FROM {table} WHERE subject = h.subject \
             AND at_ms > h.created_ms - {before} OFFSET 0) r)) \
           RETURNING {cols}), \
         kept AS (INSERT INTO audit_kept ({cols}) SELECT {cols} FROM moved RETURNING 1) \
         SELECT (SELECT COUNT(*) FROM kept), (SELECT COUNT(*) FROM claim), \
         (SELECT created_ms FROM last), (SELECT id FROM last)",
        before = core::ROWS_BEFORE_CLAIM_MS,
    )
}

/// What a month's move reads of the claims `condition` selects in `from`
/// (`claims`, or `claims c` with `alias` `c.`), then `tail` (an order and
/// a limit), for [`move_sql`]: each claim's creation time, its id and its
/// subject, the scheme, `/` and its number, which [`core::audit_row_held`]
/// splits at its first `/`. A scheme whose id held a `/` (none does) would
/// name no claim there, so none here either.
fn claims_read(from: &str, alias: &str, condition: &str, tail: &str) -> String {
    format!(
        "SELECT {alias}created_ms, {alias}id, {alias}scheme_id || '/' || {alias}claim_id AS subject \
         FROM {from} WHERE {condition} AND strpos({alias}scheme_id, '/') = 0 {tail}"
    )
}

/// A month's move of the claims waiting on their partner ([`move_sql`])
/// created before `$1` (the month's end and a day), read by the index of
/// the waiting claims (`claims_waiting`, whose predicate this is), in one
/// statement: at most the claims waiting (the backlog a partner's outage
/// leaves, which the worker drains). A cancel asked of a claim in a
/// settled period is waiting too, and final: not moved, as
/// [`core::audit_row_held`] would not keep its rows.
pub(super) fn move_waiting_sql(table: &str) -> String {
    move_sql(
        table,
        &claims_read(
            "claims",
            "",
            &format!(
                "state IN {} AND created_ms < $1 AND {}",
                core::SQL_WAITING,
                core::in_no_settled_period("")
            ),
            "",
        ),
    )
}

/// A month's move of the claims coordinated in no closed period
/// ([`move_sql`]): the next `$4` entries of the `claims_open` index after
/// the claim `($2, $3)` (creation time, id), in its order, and of those the
/// claims created before `$1` (the month's end and a day). The cutoff is
/// applied after the batch is read, never to the index's range: PostgreSQL
/// estimates a range of creation times from the whole table, where open
/// claims are the newest, so with a cutoff months into the claims it
/// planned a scan of every claim for each batch (measured 5 December at 2
/// million claims with five months settled: 198,000 pages read, 0.56 s,
/// for 3,964 claims; docs/PERFORMANCE.md, twenty-first part). Read so, a
/// batch is at most `$4` entries of the index, then each claim's subject
/// by its primary key (a subquery of each: joined, PostgreSQL may hash the
/// whole table for a batch).
/// A batch that crosses the cutoff holds fewer than `$4` claims: the last.
/// A claim of a scheme whose id holds a `/` (none does) is read with no
/// subject, so that it ends no batch early and moves no row.
pub(super) fn move_open_sql(table: &str) -> String {
    move_sql(
        table,
        &format!(
            "SELECT o.created_ms, o.id, (SELECT CASE WHEN strpos(c.scheme_id, '/') = 0 \
               THEN c.scheme_id || '/' || c.claim_id END FROM claims c WHERE c.id = o.id) AS subject \
             FROM (SELECT created_ms, id FROM claims WHERE {OPEN_CLAIM} AND (created_ms, id) > ($2, $3) \
               ORDER BY created_ms, id LIMIT $4) o \
             WHERE o.created_ms < $1"
        ),
    )
}

/// A month's move of the claims of one closed period not settled
/// (`$2`, `$3`, `$4`: scheme, mutuelle, period's row id) created before
/// `$1`, read by the statement's index (`claims_statement`, its range of
/// the period), in one statement: only periods that may hold such a claim
/// are looked into ([`STALE_PERIODS`]), a period left unsettled for the
/// retention's days, so it reads at most that period's claims.
pub(super) fn move_period_sql(table: &str) -> String {
    move_sql(
        table,
        &claims_read(
            "claims c",
            "c.",
            &format!(
                "c.scheme_id = $2 AND c.mutuelle_id = $3 AND {} \
                 AND c.state NOT IN ('cancelled', 'rejected') AND c.created_ms < $1",
                core::period_claims("$4")
            ),
            "",
        ),
    )
}

/// The closed periods not settled that may hold a claim created before
/// `$1`: their oldest claim is older (set by the close, migration 19), or
/// not known (closed before it).
pub(super) const STALE_PERIODS: &str = "SELECT id, scheme_id, mutuelle_id FROM periods \
    WHERE state <> 'settled' AND (first_created_ms IS NULL OR first_created_ms < $1) ORDER BY id";

/// Retention's lock for the rest of `tx`, if no other replica holds it
/// (then it prunes, and this one skips its turn).
async fn retention_lock(tx: &tokio_postgres::Transaction<'_>) -> Result<bool, StoreError> {
    Ok(tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema()))",
            &[&RETENTION_LOCK],
        )
        .await?
        .get(0))
}

/// What became of a month retention meant to drop.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Dropped {
    /// Pruned (detached, its files freed after), with this many rows
    /// (those of claims not final moved to `audit_kept` first).
    Rows(u64),
    /// Another replica holds retention's lock: it prunes.
    Busy,
    /// Readers or writers held the log past [`LOG_LOCK_TIMEOUT`]: left
    /// to the next pass.
    Held,
}

/// What [`make_month`] did.
pub(super) enum Making {
    Made,
    /// `audit_log_default` holds rows of the month.
    DefaultHoldsIt,
    /// `audit_log_default` holds more than [`DEFAULT_ROWS_MAX`] rows.
    DefaultTooLarge,
}

impl Making {
    fn reason(&self) -> &'static str {
        match self {
            Making::Made => "made",
            Making::DefaultHoldsIt => "audit_log_default holds rows of it",
            Making::DefaultTooLarge => "audit_log_default holds too many rows to scan",
        }
    }
}

/// Makes `month`'s partition on `c` (in its transaction), unless the
/// default partition holds rows of it or too many rows (checked by its
/// index by time first: the creation would fail, or scan them all under
/// the log's lock).
pub(super) async fn make_month<C: GenericClient + Sync>(
    c: &C,
    month: AuditMonth,
) -> Result<Making, StoreError> {
    let (from, to) = (month.start_ms(), month.next().start_ms());
    let row = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM audit_log_default WHERE at_ms >= $1 AND at_ms < $2), \
             (SELECT COUNT(*) FROM (SELECT 1 FROM audit_log_default LIMIT $3) d)",
            &[&from, &to, &(DEFAULT_ROWS_MAX + 1)],
        )
        .await?;
    if row.get::<_, bool>(0) {
        return Ok(Making::DefaultHoldsIt);
    }
    if row.get::<_, i64>(1) > DEFAULT_ROWS_MAX {
        return Ok(Making::DefaultTooLarge);
    }
    c.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF audit_log FOR VALUES FROM ({from}) TO ({to})",
        month.table()
    ))
    .await?;
    Ok(Making::Made)
}

impl PgStore {
    /// Makes the partition of every month from `from_ms`'s to `to_ms`'s
    /// that is not made yet, each in a transaction of its own under a
    /// lock (replicas take turns). A month is not made while
    /// `audit_log_default` holds rows of it (they would have to move) or
    /// more than [`DEFAULT_ROWS_MAX`] rows: logged, and its rows stay where
    /// they are (pruned row by row).
    pub async fn make_audit_months(&self, from_ms: i64, to_ms: i64) -> Result<(), StoreError> {
        let made = self.audit_months().await?;
        let (mut m, last) = (AuditMonth::of(from_ms), AuditMonth::of(to_ms));
        while m <= last {
            if !made.contains(&m) {
                let mut c = self.client().await?;
                let tx = c.transaction().await?;
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
                    &[&PARTITION_LOCK],
                )
                .await?;
                tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOG_LOCK_TIMEOUT}'"))
                    .await?;
                match make_month(&tx, m).await {
                    Ok(Making::Made) => tx.commit().await?,
                    Ok(why) => tracing::warn!(
                        month = %m.table(),
                        "audit log: month not made, {}: its rows go to audit_log_default",
                        why.reason()
                    ),
                    Err(e) => tracing::warn!(
                        month = %m.table(),
                        error = %e,
                        "audit log: month not made (next pass): its rows go to audit_log_default"
                    ),
                }
            }
            m = m.next();
        }
        Ok(())
    }

    /// The months made, oldest first.
    async fn audit_months(&self) -> Result<Vec<AuditMonth>, StoreError> {
        let c = self.client().await?;
        let rows = q(
            &c,
            "SELECT c.relname::TEXT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = to_regclass(format('%I.audit_log', current_schema()))",
            &[],
        )
        .await?;
        let mut months: Vec<AuditMonth> = rows
            .iter()
            .filter_map(|r| AuditMonth::parse(r.get::<_, &str>(0)))
            .collect();
        months.sort();
        Ok(months)
    }

    /// Prunes `month`'s partition in one transaction: its rows of claims
    /// not final are moved to `audit_kept` (same ids), the rest go with
    /// the partition. The rows kept are found from the claims' side: only
    /// a claim created before the month's end and a day may hold them
    /// ([`core::ROWS_BEFORE_CLAIM_MS`]), and on a store of a year the claims
    /// not final that old are few: those waiting on their partner
    /// ([`move_waiting_sql`]), those coordinated in no closed period
    /// ([`move_open_sql`], `batch` at a time), then those of the closed
    /// periods not settled that may hold such a claim
    /// ([`move_period_sql`]). In the order a claim goes through them
    /// (waiting, coordinated, in a period; a cancel asked of a coordinated
    /// claim keeps it where it is): a claim that moves on during the move
    /// is found by a later step. One change goes back: a cancel asked of a
    /// rejected claim (final) makes it waiting again; asked while this
    /// pass is past it, its rows of the month go with the month, as they
    /// would have with the test of each row by the row batches. The
    /// month's rows are then counted from its id index, a batch at a time,
    /// and the partition detached; none of them is read otherwise. Its
    /// files are freed after the commit ([`Self::free_detached_month`]).
    pub(super) async fn drop_audit_month(
        &self,
        month: AuditMonth,
        batch: i64,
        count_rows: i64,
    ) -> Result<Dropped, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        if !retention_lock(&tx).await? {
            return Ok(Dropped::Busy);
        }
        let table = month.table();
        // Listed before the lock: another replica may have detached it
        // since (a table of that name may be left, no longer a partition).
        let exists: bool = tx
            .query_one(
                "SELECT COALESCE((SELECT relispartition FROM pg_class \
                 WHERE oid = to_regclass(format('%I.%I', current_schema(), $1::TEXT))), false)",
                &[&table],
            )
            .await?
            .get(0);
        if !exists {
            return Ok(Dropped::Rows(0));
        }
        // No row may come into the month between the move and the detach
        // (only a clock days behind would write one): its writers wait.
        // Readers do not. No JIT: the move is statements of index probes,
        // which PostgreSQL would compile for their estimated cost. No
        // parallel workers: a month's count would take every core of the
        // server from live claims for its time (measured with pgbench's P0
        // beside it: a p99 5.2 x idle while a parallel count of 1.7 million
        // rows ran, 2.1 x with one backend, which also took half the time;
        // docs/PERFORMANCE.md, seventeenth part).
        let lock = format!(
            "SET LOCAL lock_timeout = '{LOG_LOCK_TIMEOUT}'; LOCK TABLE {table} IN EXCLUSIVE MODE; \
             SET LOCAL statement_timeout = '{MONTH_TIMEOUT}'; SET LOCAL jit = off; \
             SET LOCAL max_parallel_workers_per_gather = 0"
        );
        if let Err(e) = tx.batch_execute(&lock).await {
            return held_or(e, &table);
        }
        let before = month.next().start_ms() + core::ROWS_BEFORE_CLAIM_MS;
        let began_pass = tokio::time::Instant::now();
        // Each statement followed by a rest as long as it took (the month
        // is locked against writers, not readers, meanwhile).
        let began = tokio::time::Instant::now();
        let mut kept: i64 = tx
            .query_one(&move_waiting_sql(&table), &[&before])
            .await?
            .get(0);
        core::rest_after_batch(began).await;
        let open_sql = move_open_sql(&table);
        let (mut after_ms, mut after_id) = (i64::MIN, i64::MIN);
        loop {
            let began = tokio::time::Instant::now();
            let r = tx
                .query_one(&open_sql, &[&before, &after_ms, &after_id, &batch])
                .await?;
            let read: i64 = r.get(1);
            kept += r.get::<_, i64>(0);
            match (r.get::<_, Option<i64>>(2), r.get::<_, Option<i64>>(3)) {
                (Some(ms), Some(id)) if read == batch => (after_ms, after_id) = (ms, id),
                _ => break,
            }
            core::rest_after_batch(began).await;
        }
        let period_sql = move_period_sql(&table);
        for p in tx.query(STALE_PERIODS, &[&before]).await? {
            let (id, scheme, mutuelle): (i64, String, String) = (p.get(0), p.get(1), p.get(2));
            let began = tokio::time::Instant::now();
            kept += tx
                .query_one(&period_sql, &[&before, &scheme, &mutuelle, &id])
                .await?
                .get::<_, i64>(0);
            core::rest_after_batch(began).await;
        }
        let moved_ms = began_pass.elapsed().as_millis() as u64;
        let began_count = tokio::time::Instant::now();
        // Counted by the month's id index, a batch at a time, each followed
        // by a rest as long as it took.
        let count_sql = format!(
            "SELECT COUNT(*), MAX(id) FROM (SELECT id FROM {table} WHERE id > $1 ORDER BY id LIMIT $2) s"
        );
        let (mut dropped, mut after_id) = (0i64, i64::MIN);
        loop {
            let began = tokio::time::Instant::now();
            let r = tx.query_one(&count_sql, &[&after_id, &count_rows]).await?;
            let n: i64 = r.get(0);
            dropped += n;
            match r.get::<_, Option<i64>>(1) {
                Some(last) if n == count_rows => after_id = last,
                _ => break,
            }
            core::rest_after_batch(began).await;
        }
        let counted_ms = began_count.elapsed().as_millis() as u64;
        // Detached, not dropped: a DROP frees the month's files (hundreds of
        // megabytes at a year of a country) in its commit, all at once, and
        // every live commit's WAL flush waited behind it (measured with
        // pgbench's P0 beside it: a p99 3.5 to 6 x idle for the commit's
        // 110 to 260 ms, 11 x with the month not cached, on a file system
        // that discards freed blocks as it frees them). The detach commits
        // at once; the files are freed after, one relation a transaction.
        // Renamed as it is detached: the name says retention may free it.
        let detached = month.detached_table();
        let detach = format!(
            "ALTER TABLE audit_log DETACH PARTITION {table}; ALTER TABLE {table} RENAME TO {detached}"
        );
        if let Err(e) = tx.batch_execute(&detach).await {
            return held_or(e, &table);
        }
        tx.commit().await?;
        drop(c);
        tracing::info!(
            month = %table,
            dropped,
            kept,
            moved_ms,
            counted_ms,
            "audit log: month detached, the rows of claims not final kept in audit_kept"
        );
        self.free_detached_month(&detached).await;
        Ok(Dropped::Rows(dropped.max(0) as u64))
    }

    /// Frees the files of a month retention detached (`table`, named by
    /// [`AuditMonth::detached_table`]), one relation a transaction: each of
    /// its indexes, then the table, each followed by a rest
    /// ([`rest_after_free`]: three hundred times as long as a slow freeing
    /// took), so that live commits never wait behind the whole month's
    /// files at once, and the few a freeing holds stay few among the calls
    /// of the pass. Its rows left the log with the detach. Retention's lock
    /// is held from the first drop to the last rest
    /// ([`Self::retention_held`]), so that one drop runs at a time, none
    /// while a replica (of any version) is in a month's pass, and no
    /// replica frees during another's rest: with several replicas of this
    /// version the freeings stay as far apart as with one (an older
    /// replica's rests do not hold the lock). Its name is only ever given
    /// by a detach, so it is no partition. A lock not had (retention's, or
    /// the table's within [`LOG_LOCK_TIMEOUT`]), or any error, leaves the
    /// rest to a later pass ([`Self::free_detached_months`]): logged, not
    /// returned, as the month is already pruned.
    pub(super) async fn free_detached_month(&self, table: &str) {
        self.free_detached_month_resting(table, rest_after_free)
            .await
    }

    /// [`Self::free_detached_month`], with `rest` after each freeing.
    pub(super) async fn free_detached_month_resting<R: std::future::Future<Output = ()>>(
        &self,
        table: &str,
        rest: impl FnMut(std::time::Duration) -> R,
    ) {
        let freed = async {
            let Some(mut held) = self.retention_held().await? else {
                return Ok(false);
            };
            let freed = free_relations(&mut held, table, rest).await;
            // Let go of on error too (a drop's rollback goes first on the
            // connection): dropped, the connection would let go of it only
            // once the server saw it close.
            let released = held.release().await;
            freed.and(released).map(|()| true)
        };
        match freed.await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(month = %table, "audit log: a detached month's files left to the pass that holds retention's lock");
            }
            Err(e) => {
                tracing::warn!(month = %table, error = %e, "audit log: a detached month's files not freed yet; next pass");
            }
        }
    }

    /// Retention's lock held by a connection of its own, out of the pool
    /// ([`PgStore::session_lock`]), until [`SessionLock::release`] or the
    /// connection's end: `None` if another replica holds it. No other
    /// replica's transaction gets retention's lock meanwhile, whichever
    /// version runs it; the pool may open another connection meanwhile
    /// (the bound: the pool's size and one), so live calls never wait for
    /// a freeing's rests. A replica that finds the lock held closes and
    /// opens a connection again, only while a detached month waits to be
    /// freed.
    pub(super) async fn retention_held(&self) -> Result<Option<SessionLock>, StoreError> {
        self.session_lock(RETENTION_LOCK).await
    }

    /// Frees the files of every month retention detached and did not free
    /// (a pass stopped between the two): the tables named by
    /// [`AuditMonth::detached_table`], and no other.
    pub(super) async fn free_detached_months(&self) -> Result<(), StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT relname::TEXT FROM pg_class WHERE relnamespace = to_regnamespace(current_schema()) \
                 AND relkind = 'r' AND NOT relispartition AND relname LIKE 'audit\\_detached\\_m%'",
                &[],
            )
            .await?;
        for r in rows {
            let name: &str = r.get(0);
            if AuditMonth::parse_detached(name).is_some() {
                tracing::info!(month = %name, "audit log: freeing a month an earlier pass detached");
                self.free_detached_month(name).await;
            }
        }
        Ok(())
    }

    /// Retention row by row on one table (the rows kept, the default
    /// partition): one batch per transaction, each under the retention
    /// lock; `None` when another replica holds it.
    async fn prune_audit_rows(
        &self,
        table: &str,
        before_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        let sql = core::prune_audit_rows_sql(table, "strpos", "$1", "$2", "$3");
        let (mut total, mut from) = (0, i64::MIN);
        // The replica that holds the lock prunes, the others skip their
        // turn. A pooled connection per batch, given back before the rest.
        loop {
            let began = tokio::time::Instant::now();
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let got = retention_lock(&tx).await?;
            if !got {
                return Ok((total > 0).then_some(total));
            }
            let deleted: Vec<i64> = q(&tx, &sql, &[&before_ms, &from, &core::PRUNE_BATCH])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.commit().await?;
            from = core::prune_from(from, &deleted);
            let n = deleted.len() as u64;
            total += n;
            if n < core::PRUNE_BATCH as u64 {
                return Ok(Some(total));
            }
            drop(c);
            core::rest_after_batch(began).await;
        }
    }
}

#[async_trait]
impl AuditStore for PgStore {
    async fn audit_of(&self, subject: &str) -> Result<AuditTrail, StoreError> {
        let mut c = self.client().await?;
        // One snapshot for the newest rows, the oldest and the count, so
        // that rows written meanwhile are counted nowhere.
        let c = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let rows = q(&c, &core::audit_newest_sql("audit_all", "$1"), &[&subject]).await?;
        let newest = decode(&rows, core::audit)?;
        let head = if core::audit_trail_is_whole(&newest) {
            None
        } else {
            let (head, count) = core::audit_head_sql("audit_all", "$1");
            let rows = decode(&q(&c, &head, &[&subject]).await?, core::audit)?;
            let n: i64 = q(&c, &count, &[&subject])
                .await?
                .first()
                .map(|r| r.get(0))
                .unwrap_or(0);
            Some((rows, n))
        };
        c.commit().await?;
        Ok(core::audit_trail(newest, head))
    }

    async fn prepare_audit(&self, now_ms: i64) -> Result<(), StoreError> {
        self.make_audit_months(now_ms, now_ms + MONTHS_AHEAD_MS)
            .await
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<Option<u64>, StoreError> {
        let mut total = 0;
        self.free_detached_months().await?;
        // Whole months first, oldest first: each a move, a count and a
        // detach, then its files freed.
        for month in self.audit_months().await? {
            if month.next().start_ms() > before_ms {
                break;
            }
            match self
                .drop_audit_month(month, MOVE_CLAIMS, COUNT_ROWS)
                .await?
            {
                Dropped::Rows(n) => total += n,
                Dropped::Busy => return Ok((total > 0).then_some(total)),
                Dropped::Held => break,
            }
        }
        // Then, row by row: what was written before the months (and rows of
        // claims that were not final when their month went), and what no
        // month took.
        for table in ["audit_kept", "audit_log_default"] {
            match self.prune_audit_rows(table, before_ms).await? {
                Some(n) => total += n,
                None => return Ok((total > 0).then_some(total)),
            }
        }
        Ok(Some(total))
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let c = self.client().await?;
        // One statement for the whole batch, prepared once: the columns as
        // arrays (a VALUES list would be a new statement to parse and plan
        // for every batch size).
        let col =
            |f: &dyn Fn(&AuditEntry) -> &str| -> Vec<&str> { entries.iter().map(f).collect() };
        let at: Vec<i64> = entries.iter().map(|e| e.at_ms).collect();
        x(
            &c,
            "INSERT INTO audit_log (at_ms, direction, party, method, subject, request_hash, outcome, trace_id) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[])",
            &[
                &at,
                &col(&|e| e.direction.as_str()),
                &col(&|e| e.party.as_str()),
                &col(&|e| e.method.as_str()),
                &col(&|e| e.subject.as_str()),
                &col(&|e| e.request_hash.as_str()),
                &col(&|e| e.outcome.as_str()),
                &col(&|e| e.trace_id.as_str()),
            ],
        )
        .await?;
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
                "SELECT {}, id FROM audit_all WHERE id > $1 ORDER BY id LIMIT $2",
                core::AUDIT_COLS
            ),
            &[&after_id, &(limit as i64)],
        )
        .await?;
        decode(&rows, |r| Ok((r.int(8)?, core::audit(r)?)))
    }

    async fn partner_activity(&self, mutuelle_id: &str) -> Result<PartnerActivity, StoreError> {
        let c = self.client().await?;
        let party = format!("mutuelle:{mutuelle_id}");
        let ok = q1(
            &c,
            "SELECT at_ms FROM audit_all WHERE party = $1 AND outcome = 'ok' ORDER BY id DESC LIMIT 1",
            &[&party],
        )
        .await?;
        let err = q1(
            &c,
            "SELECT at_ms, outcome FROM audit_all WHERE party = $1 AND outcome <> 'ok' ORDER BY id DESC LIMIT 1",
            &[&party],
        )
        .await?;
        let mut parts = Vec::new();
        for sql in core::partner_waiting_sql('$') {
            parts.push(
                q1(&c, &sql, &[&mutuelle_id])
                    .await?
                    .map(|r| (r.get::<_, i64>(0), r.get::<_, Option<i64>>(1)))
                    .unwrap_or((0, None)),
            );
        }
        let (pending, oldest) = core::partner_waiting(parts);
        Ok(PartnerActivity {
            last_success_ms: ok.map(|r| r.get(0)).unwrap_or(0),
            last_error_ms: err.as_ref().map(|r| r.get(0)).unwrap_or(0),
            last_error: err.map(|r| r.get(1)).unwrap_or_default(),
            pending,
            oldest_waiting_ms: oldest,
        })
    }
}

#[cfg(test)]
mod unit {
    use super::AuditMonth;

    /// A slow freeing (a file system stalling commits while it discards)
    /// is followed by a rest three hundred times as long, at most 30 s
    /// (reached at 100 ms); a quick one by a rest as long (a test's tiny
    /// months wait for nothing).
    #[tokio::test(start_paused = true)]
    async fn a_slow_freeing_is_followed_by_a_long_rest() {
        use std::time::Duration;
        for (took, rest) in [
            (Duration::from_millis(60), Duration::from_secs(18)),
            (Duration::from_millis(10), Duration::from_secs(3)),
            (Duration::from_millis(9), Duration::from_millis(9)),
            (Duration::from_millis(100), Duration::from_secs(30)),
            (Duration::from_millis(150), Duration::from_secs(30)),
            (Duration::from_secs(2), Duration::from_secs(30)),
        ] {
            let began = tokio::time::Instant::now();
            super::rest_after_free(took).await;
            assert_eq!(began.elapsed(), rest, "after {took:?}");
        }
    }

    #[test]
    fn months_are_utc_calendar_months() {
        const FEB_2025: i64 = 1_738_368_000_000;
        let jan = AuditMonth::of(FEB_2025 - 1);
        assert_eq!(jan.table(), "audit_log_m2025_01");
        assert_eq!(jan.next().start_ms(), FEB_2025);
        assert_eq!(AuditMonth::of(FEB_2025).table(), "audit_log_m2025_02");
        let dec = AuditMonth::parse("audit_log_m2024_12").unwrap();
        assert_eq!(dec.next(), jan);
        assert_eq!(jan.start_ms(), 1_735_689_600_000);
        assert_eq!(AuditMonth::parse(&jan.table()), Some(jan));
        for other in [
            "audit_log_default",
            "audit_kept",
            "audit_log_m2025_13",
            "audit_log_m25_01",
        ] {
            assert_eq!(AuditMonth::parse(other), None, "{other}");
        }
        // Before 1970: the month of the clock's start, never a panic.
        assert_eq!(AuditMonth::of(-1).table(), "audit_log_m1969_12");
    }
}
