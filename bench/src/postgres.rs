//! Claims on PostgreSQL, and the limit P: the same database work run by
//! pgbench (bench/pgbench/claim.sql) on the same server, in the same run.

use std::path::Path;
use std::sync::Arc;

use passerelle_broker::config::PostgresConfig;
use passerelle_broker::store::Store;
use passerelle_broker::store::postgres::PgStore;

/// The pgbench script of P (the broker's own database work), written next
/// to the run's data.
const SCRIPT: &str = include_str!("../pgbench/claim.sql");
/// P0: the least database work a claim needs (bench/pgbench/p0.sql), and
/// its tables.
const P0_SCRIPT: &str = include_str!("../pgbench/p0.sql");
const P0_SCHEMA: &str = include_str!("../pgbench/p0-schema.sql");
/// P0 in one commit (bench/pgbench/p0-one.sql): the same rows, as a claim
/// of a mutuelle whose rules the broker applies itself is written.
const P0_ONE_SCRIPT: &str = include_str!("../pgbench/p0-one.sql");

/// A migrated store in a fresh schema of its own.
pub struct BenchDb {
    pub store: Arc<dyn Store>,
    pub url: String,
    pub schema: String,
    pub pool_size: usize,
}

/// `None` when PostgreSQL cannot be reached (outside CI only: under
/// CI=true that is an error, never a skip).
pub async fn open(url: &str, pool_size: usize) -> Option<BenchDb> {
    let schema = format!(
        "bench_{}_{}",
        std::process::id(),
        passerelle_broker::audit::now_ms() % 1_000_000
    );
    let cfg = config(url, &schema, pool_size);
    let migrated = match PgStore::new(&cfg, Path::new(".")) {
        Ok(s) => s.migrate().await.map(|_| s),
        Err(e) => Err(e),
    };
    match migrated {
        Ok(store) => {
            let db = BenchDb {
                store: Arc::new(store),
                url: url.to_string(),
                schema,
                pool_size: cfg.pool_size,
            };
            // P0's tables, beside the broker's.
            admin(
                &db,
                &[format!(
                    "SET search_path TO \"{}\";\n{P0_SCHEMA}",
                    db.schema
                )],
            )
            .await;
            Some(db)
        }
        Err(e) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "PostgreSQL is required under CI=true: {e} ({url})"
            );
            eprintln!("PostgreSQL scenarios skipped: {url} not reachable: {e}");
            None
        }
    }
}

/// Another replica's store: a pool of its own on the run's schema.
pub async fn replica(db: &BenchDb, pool_size: usize) -> Arc<dyn Store> {
    let cfg = config(&db.url, &db.schema, pool_size);
    let store = PgStore::new(&cfg, Path::new(".")).expect("a store on the run's schema");
    store.migrate().await.expect("a replica's store");
    Arc::new(store)
}

/// A store on the run's schema with a pool of its own, not migrated.
pub fn pg_store(db: &BenchDb) -> PgStore {
    let cfg = config(&db.url, &db.schema, db.pool_size);
    PgStore::new(&cfg, Path::new(".")).expect("a store on the run's schema")
}

/// A store on `schema` (migrated by the parent) for a broker in a process
/// of its own (`child::ChildStore::Postgres`).
pub fn pg_store_on(url: &str, schema: &str, pool_size: usize) -> PgStore {
    let cfg = config(url, schema, pool_size);
    PgStore::new(&cfg, Path::new(".")).expect("a store on the run's schema")
}

/// The store settings of the benchmark's brokers.
fn config(url: &str, schema: &str, pool_size: usize) -> PostgresConfig {
    PostgresConfig {
        url: url.to_string(),
        schema: Some(schema.to_string()),
        pool_size,
        connect_timeout_ms: 2_000,
        wait_timeout_ms: 10_000,
        statement_timeout_ms: 30_000,
        tls: None,
    }
}

/// pgbench's figure: transactions (one claim each) per second.
pub struct Limit {
    pub tps: f64,
    pub clients: usize,
    pub failed: Option<String>,
    /// The two runs `tps` is the mean of (before, after).
    pub runs: [f64; 2],
    /// The database's CPU per transaction, µs ([`crate::cpu`]).
    pub db_cpu_us: Option<f64>,
}

impl Limit {
    pub fn mean(a: Limit, b: Limit) -> Limit {
        Limit {
            tps: (a.tps + b.tps) / 2.0,
            clients: a.clients,
            runs: [a.tps, b.tps],
            db_cpu_us: match (a.db_cpu_us, b.db_cpu_us) {
                (Some(x), Some(y)) => Some((x + y) / 2.0),
                (x, y) => x.or(y),
            },
            failed: a.failed.or(b.failed),
        }
    }
}

/// Claims on PostgreSQL and P0 in alternating runs (`p0_rounds` in
/// main.rs): `p0_tps` has one more run than `claims_rps`, the one before
/// the first round.
pub struct P0Rounds {
    pub name: &'static str,
    pub p0_tps: Vec<f64>,
    pub claims_rps: Vec<f64>,
    pub errors: u64,
    pub failed: Option<String>,
}

impl P0Rounds {
    pub fn push_p0(&mut self, l: Limit) {
        self.failed = self.failed.take().or(l.failed);
        self.p0_tps.push(l.tps);
    }

    /// Each round's claims rate over the mean of the P0 runs either side
    /// (none for a round beside a P0 run that failed: `failed` says why).
    pub fn ratios(&self) -> Vec<f64> {
        self.claims_rps
            .iter()
            .zip(self.p0_tps.windows(2))
            .filter(|(_, p)| p[0] > 0.0 && p[1] > 0.0)
            .map(|(c, p)| c / ((p[0] + p[1]) / 2.0))
            .collect()
    }

    pub fn median(&self) -> f64 {
        crate::load::median(&self.ratios())
    }
}

/// P: the broker's own claim transactions replayed by pgbench.
pub async fn pgbench(db: &BenchDb, dir: &Path, pgbench: &str, secs: f64, smoke: bool) -> Limit {
    run_script(db, dir, "claim.sql", SCRIPT, pgbench, secs, smoke, &[]).await
}

/// P0: the least database work a claim needs, on tables of its own in the
/// run's schema (made by [`open`]).
pub async fn p0(db: &BenchDb, dir: &Path, pgbench: &str, secs: f64, smoke: bool) -> Limit {
    run_script(db, dir, "p0.sql", P0_SCRIPT, pgbench, secs, smoke, &[]).await
}

/// P0's rows in one commit: the least work of a claim no partner system
/// is asked for between its two writes. Printed beside the ratio to P0,
/// so that the part the one commit buys is seen.
pub async fn p0_one(db: &BenchDb, dir: &Path, pgbench: &str, secs: f64, smoke: bool) -> Limit {
    run_script(
        db,
        dir,
        "p0-one.sql",
        P0_ONE_SCRIPT,
        pgbench,
        secs,
        smoke,
        &[],
    )
    .await
}

/// Eligibility's database work (the member read, the ceiling read, its
/// audit row) for a different seeded member each call
/// (bench/pgbench/eligibility-random.sql) and for the one dev member,
/// whose pages stay in shared buffers (eligibility-one.sql).
pub(crate) const ELIGIBILITY_RANDOM: &str = include_str!("../pgbench/eligibility-random.sql");
pub(crate) const ELIGIBILITY_ONE: &str = include_str!("../pgbench/eligibility-one.sql");

/// The engine's own figures for eligibility on the seeded store: what the
/// broker's "seeded against nearly empty" ratios can be held against.
#[derive(Default)]
pub struct EngineEligibility {
    /// Saturation, transactions/s: a different member each time, and the one.
    pub random_tps: f64,
    pub one_tps: f64,
    /// At the broker's open-loop rates, half and low
    /// (`scale::OpenLoops`).
    pub half: EngineLatency,
    pub low: EngineLatency,
    pub failed: Option<String>,
}

/// The engine's p99 at one offered rate.
#[derive(Default)]
pub struct EngineLatency {
    pub rate: f64,
    /// Each p99 (µs, from the scheduled start, as the bench's open loop
    /// measures): a different member each time, and the one.
    pub random_p99_us: u64,
    pub one_p99_us: u64,
}

impl EngineLatency {
    /// The one member's p99 over the different members' (below 1 when the
    /// seeded store's members answer later), as the broker's ratio.
    pub fn p99_ratio(&self) -> f64 {
        self.one_p99_us as f64 / self.random_p99_us.max(1) as f64
    }
}

/// Runs both eligibility scripts on the seeded store of `members` members:
/// saturated for `secs` each, then at the rate of each of the broker's open
/// loops (half, low), as many transactions as the broker's window at half
/// (`secs` at half, longer at a lower rate), as the broker's own windows.
pub async fn engine_eligibility(
    db: &BenchDb,
    dir: &Path,
    pgbench: &str,
    secs: f64,
    smoke: bool,
    members: u64,
    loops: [&crate::scale::OpenLoops; 2],
) -> EngineEligibility {
    let define = format!("members={}", members.max(1));
    let run = |name: &'static str, text: &'static str, extra: Vec<String>, secs: f64| {
        let define = define.clone();
        async move {
            let mut args = vec!["-D".to_string(), define];
            args.extend(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_script(db, dir, name, text, pgbench, secs, smoke, &args).await
        }
    };
    let random = run("eligibility-random.sql", ELIGIBILITY_RANDOM, vec![], secs).await;
    let one = run("eligibility-one.sql", ELIGIBILITY_ONE, vec![], secs).await;
    let mut failed = random.failed.or(one.failed);
    let mut at: [EngineLatency; 2] = Default::default();
    for (k, l) in loops.into_iter().enumerate() {
        let rate = l.rate;
        let window = secs * crate::scale::HALF / l.fraction.max(1e-9);
        let mut p99 = Vec::new();
        for (name, text) in [
            ("eligibility-random.sql", ELIGIBILITY_RANDOM),
            ("eligibility-one.sql", ELIGIBILITY_ONE),
        ] {
            // pgbench writes one log per thread: <prefix>.<pid>[.<thread>];
            // each rate's logs under a prefix of their own.
            let prefix = dir.join(format!("{name}.latency{k}"));
            let at_rate = vec![
                "-R".to_string(),
                format!("{:.0}", rate.max(1.0)),
                "-l".to_string(),
                format!("--log-prefix={}", prefix.display()),
            ];
            let l = run(name, text, at_rate, window).await;
            failed = failed.or(l.failed);
            match logged_p99_us(dir, &format!("{name}.latency{k}.")) {
                Ok(us) => p99.push(us),
                Err(e) => {
                    failed = failed.or(Some(format!("pgbench {name} at {rate:.0}/s: {e}")));
                    p99.push(0);
                }
            }
        }
        at[k] = EngineLatency {
            rate,
            random_p99_us: p99[0],
            one_p99_us: p99[1],
        };
    }
    let [half, low] = at;
    EngineEligibility {
        random_tps: random.tps,
        one_tps: one.tps,
        half,
        low,
        failed,
    }
}

/// The 99th percentile of the latencies pgbench logged (`-l`) in the files
/// of `dir` named `<prefix>...`: the third field of each line, in µs, in
/// the histogram the bench's own latencies use (`load::histogram`).
fn logged_p99_us(dir: &Path, prefix: &str) -> Result<u64, String> {
    let mut all = crate::load::histogram();
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).map_err(|e| e.to_string())?;
        for line in text.lines() {
            let us = line
                .split_whitespace()
                .nth(2)
                .and_then(|t| t.parse::<u64>().ok());
            all.saturating_record(us.ok_or_else(|| format!("unreadable log line {line:?}"))?);
        }
    }
    if all.is_empty() {
        return Err("no transaction logged".into());
    }
    Ok(all.value_at_quantile(0.99))
}

/// Runs a pgbench script with as many clients as the broker has pooled
/// connections, for `secs` (or a few transactions per client in smoke
/// runs), with `extra` arguments.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site per script, each spelled out"
)]
async fn run_script(
    db: &BenchDb,
    dir: &Path,
    name: &str,
    text: &str,
    pgbench: &str,
    secs: f64,
    smoke: bool,
    extra: &[&str],
) -> Limit {
    let script = dir.join(name);
    std::fs::write(&script, text).expect("write pgbench script");
    let clients = db.pool_size;
    let mut cmd = tokio::process::Command::new(pgbench);
    cmd.env("PGOPTIONS", format!("-c search_path={}", db.schema))
        .args(["-n", "-M", "prepared", "-j", "2", "-c"])
        .arg(clients.to_string())
        .args(extra)
        .arg("-f")
        .arg(&script);
    if smoke {
        cmd.args(["-t", "10"]);
    } else {
        cmd.arg("-T").arg((secs.ceil() as u64).max(1).to_string());
    }
    cmd.arg(&db.url);
    let cpu_before = crate::cpu::Sample::now();
    let out = cmd.output().await;
    let cpu_after = crate::cpu::Sample::now();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return Limit {
                tps: 0.0,
                clients,
                failed: Some(format!("{pgbench}: {e}")),
                runs: [0.0; 2],
                db_cpu_us: None,
            };
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tps = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next()?.parse().ok());
    // "number of transactions actually processed: 12345" (or "12345/12345"
    // with -t).
    let transactions: Option<f64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split('/').next()?.trim().parse().ok());
    match (out.status.success(), tps) {
        (true, Some(tps)) => Limit {
            tps,
            clients,
            failed: None,
            runs: [tps; 2],
            db_cpu_us: transactions
                .and_then(|n| crate::cpu::per_transaction_us(cpu_before, cpu_after, n))
                .map(|(database, _)| database),
        },
        _ => Limit {
            tps: 0.0,
            clients,
            db_cpu_us: None,
            runs: [0.0; 2],
            failed: Some(format!(
                "pgbench failed ({}): {}{}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        },
    }
}

/// Drops the run's schema.
pub async fn drop(db: &BenchDb) {
    admin(
        db,
        &[format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", db.schema)],
    )
    .await;
}

/// Vacuums the run's tables (dead rows of earlier measurements).
pub async fn vacuum(db: &BenchDb) {
    let tables = [
        "p0_claims",
        "p0_ceiling_usage",
        "claims",
        "claim_lines",
        "ceiling_usage",
        "claim_consumption",
        "audit_log",
        "audit_kept",
        "members",
    ];
    // One statement each: VACUUM cannot run inside a transaction block.
    let sql: Vec<String> = tables
        .iter()
        .map(|t| format!("VACUUM ANALYZE \"{}\".{t}", db.schema))
        .collect();
    admin(db, &sql).await;
}

/// Asks PostgreSQL for a checkpoint and waits for it: what earlier work
/// left dirty (seeding, a vacuum, the claims of earlier windows) is
/// written and synced now rather than in the next measured window. A
/// checkpoint requested past `max_wal_size` wrote 0.6 to 1.4 GB within a
/// second or two on this machine, most likely stalling whichever window
/// it fell in (docs/PERFORMANCE.md, thirteenth part). Needs a superuser or
/// `pg_checkpoint`; without, the error is printed and returned, and the
/// windows' checkpoint counts say whether one fell in them.
pub async fn checkpoint(db: &BenchDb) -> Vec<String> {
    admin(db, &["CHECKPOINT".to_string()]).await
}

/// What [`warm`] read.
pub struct Warmed {
    pub mib: f64,
    pub secs: f64,
    /// Into shared buffers (pg_prewarm's `buffer` mode), where they hold
    /// the relations twice over ([`fits_in_shared_buffers`]); into the
    /// page cache only (`read`) otherwise.
    pub into_shared_buffers: bool,
    /// The server's `shared_buffers`, in MiB.
    pub shared_buffers_mib: f64,
    /// The database's collation where it is a language's, as the broker
    /// tells it (`Store::slow_collation`); `None`: keys compared as bytes.
    /// Eligibility's reads ran at about three quarters of their rate under
    /// libc's French (docs/PERFORMANCE.md, twenty-eighth part), so the
    /// figures of such a run are not comparable with a byte-order one's.
    /// Unread, the error (the warming itself still counts).
    pub slow_collation: Result<Option<String>, String>,
}

/// Whether relations of `relation_blocks` pages are warmed into shared
/// buffers of `shared_blocks` pages: when they take at most half of them,
/// the other half left to the rest of the work (the audit rows, the claims,
/// the nearly empty store). docs/operations.md sizes `shared_buffers` to
/// hold the members and the ceiling usage; a server so sized, answering
/// eligibility all day, keeps those pages there. At PostgreSQL's default
/// 128 MB they cannot fit, and a different member each call misses them.
pub(crate) fn fits_in_shared_buffers(relation_blocks: i64, shared_blocks: i64) -> bool {
    relation_blocks > 0 && relation_blocks <= shared_blocks / 2
}

/// Reads the relations an eligibility call reads (the members and the
/// ceiling usage, with every index of both) before eligibility's windows:
/// into shared buffers where they fit there twice over
/// ([`fits_in_shared_buffers`], pg_prewarm's `buffer` mode), otherwise
/// into the operating system's page cache only (`read` mode: a different
/// member each call still misses shared buffers, as it would with a
/// country's members on PostgreSQL's default 128 MB). Seeding writes some
/// 20 GB at 10 million claims and their WAL on a machine of 24 GB; in a
/// run without this, the seeded store's first watched window read 197 MiB
/// from the device (docs/PERFORMANCE.md, twenty-fifth part), which a
/// server answering eligibility all day does not: its members' pages are
/// read again and again and stay cached (docs/operations.md sizes its
/// memory for them).
/// Creates the extension where it is missing, which needs a superuser;
/// uses it in whichever schema holds it. `Err` says why it could not.
pub async fn warm(db: &BenchDb) -> Result<Warmed, String> {
    let s = &db.schema;
    let t = std::time::Instant::now();
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("pg_prewarm: PostgreSQL: {e}"))?;
    tokio::spawn(conn);
    let said = |e: tokio_postgres::Error| {
        let detail = e.as_db_error().map(|d| d.message().to_string());
        format!("pg_prewarm: {}", detail.unwrap_or_else(|| e.to_string()))
    };
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        .await
        .map_err(said)?;
    let at: String = client
        .query_one(
            "SELECT quote_ident(n.nspname) FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_prewarm'",
            &[],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(said)?;
    let relations = format!(
        "FROM pg_class c \
         WHERE c.oid IN ('\"{s}\".members'::regclass, '\"{s}\".ceiling_usage'::regclass) \
         OR c.oid IN (SELECT indexrelid FROM pg_index \
                      WHERE indrelid IN ('\"{s}\".members'::regclass, '\"{s}\".ceiling_usage'::regclass))"
    );
    // Both in pages of the server's block size (shared_buffers' unit).
    let sizes = format!(
        "SELECT (SELECT coalesce(sum(pg_relation_size(c.oid)), 0)::BIGINT {relations}) \
                / current_setting('block_size')::BIGINT, \
                (SELECT setting::BIGINT FROM pg_settings WHERE name = 'shared_buffers'), \
                current_setting('block_size')::BIGINT"
    );
    let row = client.query_one(&sizes, &[]).await.map_err(said)?;
    let (relation_blocks, shared_blocks, block_size): (i64, i64, i64) = (
        row.try_get(0).map_err(said)?,
        row.try_get(1).map_err(said)?,
        row.try_get(2).map_err(said)?,
    );
    let into_shared_buffers = fits_in_shared_buffers(relation_blocks, shared_blocks);
    let mode = if into_shared_buffers {
        "buffer"
    } else {
        "read"
    };
    let sql =
        format!("SELECT coalesce(sum({at}.pg_prewarm(c.oid, '{mode}')), 0)::BIGINT {relations}");
    let blocks: i64 = client
        .query_one(&sql, &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(said)?;
    let mib = |blocks: i64| blocks as f64 * block_size as f64 / (1024.0 * 1024.0);
    let secs = t.elapsed().as_secs_f64();
    let slow_collation = pg_store(db)
        .slow_collation()
        .await
        .map_err(|e| e.to_string());
    Ok(Warmed {
        mib: mib(blocks),
        secs,
        into_shared_buffers,
        shared_buffers_mib: mib(shared_blocks),
        slow_collation,
    })
}

/// Runs each statement on a connection of its own; the errors, each
/// printed.
pub(crate) async fn admin(db: &BenchDb, statements: &[String]) -> Vec<String> {
    let mut errors = Vec::new();
    match tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            for sql in statements {
                if let Err(e) = client.batch_execute(sql).await {
                    let detail = e.as_db_error().map(|d| d.message().to_string());
                    let detail = detail.unwrap_or_else(|| e.to_string());
                    eprintln!("{sql}: {detail}");
                    errors.push(detail);
                }
            }
        }
        Err(e) => {
            eprintln!("PostgreSQL: {e}");
            errors.push(e.to_string());
        }
    }
    errors
}

/// The database of the PostgreSQL scenarios: PASSERELLE_TEST_POSTGRES (as
/// the tests), else the local default. The bench does not take the broker's
/// test support (`test-util`), so that a `--workspace` release build keeps
/// it out of the broker.
pub fn default_url() -> String {
    std::env::var("PASSERELLE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}
