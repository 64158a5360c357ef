use super::*;

crate::store_conformance_suite!(|| async {
    Some(std::sync::Arc::new(SqliteStore::open_in_memory().unwrap()) as std::sync::Arc<dyn Store>)
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

/// A write whose caller is gone after the write ran, while its group
/// commits (an HTTP client cut during the fsync), is committed; and the
/// cached answers it made stale are invalidated all the same, before the
/// group's other callers hear back. Invalidated after the await, they were
/// skipped with the dropped future: a scheme integrator's trial saw
/// eligibility show a ceiling's usage without the claim such a cut call
/// had stored. Here the roster's cache (every kind of write moves its
/// cache the same way, `SqliteStore::write`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_committed_after_its_caller_left_moves_its_cache() {
    use futures::FutureExt as _;
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(SqliteStore::open(&dir.path().join("p.db")).unwrap());
    let member = crate::store::conformance::sample_member("MUT-A", "CUT-1", "TG-CUT");
    s.upsert_members(std::slice::from_ref(&member), 1)
        .await
        .unwrap();
    // Read, and so cached.
    let paid = |m: Option<Member>| m.and_then(|m| m.paid_until).map(date::format);
    let before = paid(s.get_member("MUT-A", "CUT-1").await.unwrap());
    assert_eq!(before.as_deref(), Some("2026-12-31"));
    // The writer held in a first group, so that the write under test and a
    // second job that holds its group open are queued together.
    let block = || {
        let (started, wait_started) = std::sync::mpsc::channel();
        let (go, wait_go) = std::sync::mpsc::channel::<()>();
        let s = s.clone();
        let job = async move {
            s.with(move |_| {
                let _ = started.send(());
                let _ = wait_go.recv();
                Ok(())
            })
            .await
        };
        (job, wait_started, go)
    };
    let (first, first_started, first_go) = block();
    let first = tokio::spawn(first);
    tokio::task::spawn_blocking(move || first_started.recv().unwrap())
        .await
        .unwrap();
    let changed = Member {
        paid_until: Some(date::parse("2027-06-30").unwrap()),
        ..member
    };
    let mut cut = Box::pin(s.upsert_members(std::slice::from_ref(&changed), 2));
    assert!(
        (&mut cut).now_or_never().is_none(),
        "queued behind the first"
    );
    let (second, second_started, second_go) = block();
    let mut second = Box::pin(second);
    assert!(
        (&mut second).now_or_never().is_none(),
        "queued behind the write"
    );
    first_go.send(()).unwrap();
    first.await.unwrap().unwrap();
    // The write has run in the group; the second job holds its commit.
    tokio::task::spawn_blocking(move || second_started.recv().unwrap())
        .await
        .unwrap();
    drop(cut);
    second_go.send(()).unwrap();
    (&mut second).await.unwrap();
    assert_eq!(
        paid(s.get_member("MUT-A", "CUT-1").await.unwrap()).as_deref(),
        Some("2027-06-30"),
        "the committed write is read, not the cached answer"
    );
}

/// Periods closed before schema 16 have no stored totals.
#[tokio::test]
async fn period_totals_stored_at_close_agree_with_their_claims() {
    let s = std::sync::Arc::new(SqliteStore::open_in_memory().unwrap());
    let raw = s.clone();
    crate::store::conformance::period_totals_stored_at_close_agree_with_their_claims(
        s,
        || async move {
            raw.with(|c| {
                let n = c.execute("UPDATE periods SET claim_count = NULL, billed_total = NULL, scheme_total = NULL, mutuelle_total = NULL, recoveries_total = NULL", [])?;
                assert_eq!(n, 1);
                Ok(())
            })
            .await
            .unwrap();
        },
    )
    .await;
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
    let sites: usize = [
        include_str!("mod.rs"),
        include_str!("claims.rs"),
        include_str!("roster.rs"),
        include_str!("products.rs"),
        include_str!("settlement.rs"),
        include_str!("audit.rs"),
    ]
    .iter()
    .map(|src| src.matches(".prepare_cached(").count())
    .sum();
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
        trace_id: String::new(),
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

/// Schema 17 moves the counts of act limits per stay to their own scope
/// (`conformance::stay_act_counts_move_to_their_scope`): the store is
/// closed, aged, and opened again, which migrates it.
#[tokio::test]
async fn migration_17_moves_stay_act_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
    let reopen = path.clone();
    crate::store::conformance::stay_act_counts_move_to_their_scope(
        store,
        Box::new(move |store| {
            Box::pin(async move {
                drop(store);
                let c = Connection::open(&reopen).unwrap();
                c.execute_batch(crate::store::conformance::STAY_ACT_KEYS_AS_BEFORE)
                    .unwrap();
                // Schema 17's move and every migration after it run again.
                let moved = migrations::MIGRATIONS
                    .iter()
                    .position(|m| m.contains("'stay-act|'"))
                    .expect("the stay-act move") as i64
                    + 1;
                c.execute("DELETE FROM schema_version WHERE version >= ?1", [moved])
                    .unwrap();
                // SQLite adds a column with no IF NOT EXISTS: the columns
                // later migrations add go first (schema 19's and 20's).
                c.execute_batch(
                    "ALTER TABLE users DROP COLUMN must_change; \
                     ALTER TABLE users DROP COLUMN password_set_ms;",
                )
                .unwrap();
                drop(c);
                std::sync::Arc::new(SqliteStore::open(&reopen).unwrap())
                    as std::sync::Arc<dyn Store>
            })
        }),
    )
    .await;
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

/// At scale, the hot and listing paths read through indexes: every
/// statement the store runs for them (traced with its values) is planned
/// by SQLite (`EXPLAIN QUERY PLAN`) on a store seeded with 20,000 claims
/// and their lines, 5,000 members and ceilings and 40,000 audit rows, and
/// none scans a large table without an index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_and_listing_paths_use_indexes_on_a_seeded_store() {
    use crate::store::conformance::{coordinate, sample_claim, sample_member};
    use std::sync::Mutex;
    static TRACED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    fn traced(sql: &str) {
        TRACED.lock().unwrap().push(sql.to_string());
    }
    // The in-memory store has no read pool: every statement runs on the
    // writer's connection, the one traced.
    let s = std::sync::Arc::new(SqliteStore::open_in_memory().unwrap());
    let store: std::sync::Arc<dyn Store> = s.clone();
    coordinate(&store, sample_claim("CNSS", "C0", "I0"), &[100, 0]).await;
    store
        .upsert_members(&[sample_member("MUT-A", "M-0", "TG-0")], 1)
        .await
        .unwrap();
    s.with(|c| {
        c.execute_batch(
            "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 40000) \
             INSERT INTO audit_log (at_ms, direction, party, method, subject, request_hash, outcome) \
             SELECT x, 'in', 'scheme:CNSS', 'CoordinateClaim', 'CNSS/S' || (x % 20000), 'h', 'ok' FROM g; \
             WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 20000) \
             INSERT INTO claims (scheme_id, claim_id, request_hash, body, provider_id, invoice_number, \
               mutuelle_id, member_number, state, adjudication_key, change_seq, created_ms, updated_ms, \
               date_of_care, currency, payee_type, billed_total, scheme_total, mutuelle_total) \
             SELECT 'CNSS', 'S' || x, request_hash, body, 'P' || (x % 50), 'IS' || x, 'MUT-' || (x % 200), \
               'M-' || (x % 5000), CASE WHEN x % 10 = 0 THEN 'pending_partner' ELSE 'coordinated' END, \
               'k' || x, change_seq + x, 1, 1, '2026-03-10', 'XOF', 'provider', 17000, 11500, 100 \
             FROM claims, g WHERE claim_id = 'C0'; \
             UPDATE claims SET next_attempt_ms = 1000000 + id WHERE state = 'pending_partner'; \
             INSERT INTO claim_lines SELECT c.id, l.sequence, l.act_code, l.care_category, l.quantity, l.billed, \
               l.tariff_base, l.scheme_share, l.mutuelle_share, l.patient_share, l.reasons \
             FROM claims c, claim_lines l WHERE c.claim_id LIKE 'S%' \
               AND l.claim_pk = (SELECT id FROM claims WHERE claim_id = 'C0'); \
             WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 5000) \
             INSERT INTO members SELECT 'MUT-' || (x % 200), 'M-' || x, 'CNSS', 'TG-' || x, body, 1 \
             FROM members, g WHERE member_number = 'M-0'; \
             WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 5000) \
             INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) SELECT 'MUT-' || (x % 200), 'beneficiary-year|-|M-' || x || '|2026', 100, 1 FROM g; \
             ANALYZE;",
        )?;
        // The legacy trace hands each statement with its values in place,
        // as EXPLAIN QUERY PLAN needs it.
        #[allow(deprecated)]
        c.trace(Some(traced));
        Ok(())
    })
    .await
    .unwrap();
    for what in crate::store::conformance::HOT_CALLS {
        crate::store::conformance::hot_call(&store, what).await;
    }
    let statements: Vec<String> = std::mem::take(&mut *TRACED.lock().unwrap());
    let plans = s
        .with(move |c| {
            #[allow(deprecated)]
            c.trace(None);
            let mut out = Vec::new();
            for sql in statements {
                let head = sql.trim_start().to_ascii_uppercase();
                if !["SELECT", "UPDATE", "DELETE", "INSERT", "WITH"]
                    .iter()
                    .any(|k| head.starts_with(k))
                {
                    continue;
                }
                let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let details: Vec<String> = st
                    .query_map([], |r| r.get::<_, String>(3))?
                    .collect::<Result<_, _>>()?;
                out.push((sql, details));
            }
            Ok(out)
        })
        .await
        .unwrap();
    assert!(plans.len() > 20, "{} statements traced", plans.len());
    // Large tables and the aliases the store's statements give them.
    let big = [
        "claims",
        "claim_lines",
        "members",
        "audit_log",
        "ceiling_usage",
        "claim_consumption",
        "c",
        "l",
        "a",
    ];
    let (mut statement_reads, mut pages_after, mut payee_pages) = (0, 0, 0);
    for (sql, details) in &plans {
        // A statement's claims are a range of its index in its order: only
        // the lines they read are sorted (one sort, not one for the claims).
        if sql.contains("ORDER BY c.statement_payee_type") {
            statement_reads += 1;
            assert!(
                details
                    .iter()
                    .any(|d| d.starts_with("SEARCH c USING INDEX claims_statement")),
                "{details:?} in: {sql}"
            );
            // A page after a key starts there: a range of the index.
            if sql.contains(") >= (") {
                pages_after += 1;
                assert!(
                    details
                        .iter()
                        .any(|d| d.contains("(statement_payee_type,statement_payee_id,claim_id)>")),
                    "{details:?} in: {sql}"
                );
            }
            assert!(
                details
                    .iter()
                    .filter(|d| d.starts_with("USE TEMP B-TREE"))
                    .count()
                    <= 1,
                "{details:?} in: {sql}"
            );
            // A page of its payees: grouped as the index gives them, after
            // the payee it starts from, nothing sorted.
            if sql.contains("GROUP BY c.statement_payee_type") {
                payee_pages += 1;
                assert!(
                    !details.iter().any(|d| d.starts_with("USE TEMP B-TREE")),
                    "{details:?} in: {sql}"
                );
                assert!(
                    details
                        .iter()
                        .any(|d| d.contains("(statement_payee_type,statement_payee_id)>")),
                    "{details:?} in: {sql}"
                );
            }
        }
        for d in details {
            let Some(table) = d.strip_prefix("SCAN ") else {
                continue;
            };
            let name = table.split_whitespace().next().unwrap_or("");
            // A subquery's rows, read as they come.
            if details.contains(&format!("CO-ROUTINE {name}")) {
                continue;
            }
            assert!(
                !big.contains(&name) || d.contains(" USING "),
                "{d} in: {sql}"
            );
        }
    }
    assert!(
        statement_reads >= 2 && pages_after >= 1 && payee_pages == 1,
        "{statement_reads} {pages_after} {payee_pages}"
    );
}
