crate::store_conformance_suite!(crate::store::testing::postgres_store);

/// A conflict written before the coverage rule is listed and resolved.
#[tokio::test]
async fn legacy_coverage_conflicts() {
    let cfg = crate::store::testing::postgres_config();
    // Fails under CI=true when PostgreSQL cannot be reached; says it skips
    // otherwise.
    let Some(s) = crate::store::testing::migrated_postgres(&cfg).await else {
        return;
    };
    let c = s.client().await.unwrap();
    super::upsert(&c, &crate::store::conformance::legacy_conflict_members(), 1)
        .await
        .unwrap();
    drop(c);
    crate::store::conformance::legacy_conflicts_listed_and_resolved(std::sync::Arc::new(s)).await;
}

#[tokio::test]
async fn unknown_stored_values_are_corruption() {
    let cfg = crate::store::testing::postgres_config();
    // Fails under CI=true when PostgreSQL cannot be reached; says it skips
    // otherwise.
    let Some(s) = crate::store::testing::migrated_postgres(&cfg).await else {
        return;
    };
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

/// Schema 20 moves the counts of act limits per stay to their own scope
/// (`conformance::stay_act_counts_move_to_their_scope`): the store is
/// aged, its version set back to 19, and migrated again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_20_moves_stay_act_counts() {
    let Some((s, store)) = fresh().await else {
        return;
    };
    crate::store::conformance::stay_act_counts_move_to_their_scope(
        store,
        Box::new(move |store| {
            Box::pin(async move {
                run_sql(&s, crate::store::conformance::STAY_ACT_KEYS_AS_BEFORE).await;
                // Schema 20's move and every migration after it run again.
                let moved = super::migrations::MIGRATIONS
                    .iter()
                    .position(|m| m.contains("'stay-act|'"))
                    .expect("the stay-act move")
                    + 1;
                run_sql(
                    &s,
                    &format!("DELETE FROM schema_version WHERE version >= {moved}"),
                )
                .await;
                assert_eq!(s.migrate().await.unwrap(), super::SCHEMA_VERSION);
                store
            })
        }),
    )
    .await;
}

#[tokio::test]
async fn migrate_twice_at_once_is_safe_and_serve_checks_the_version() {
    let cfg = crate::store::testing::postgres_config();
    let a = match super::PgStore::new(&cfg, std::path::Path::new(".")) {
        Ok(s) => s,
        // Fails under CI=true; says it skips otherwise.
        Err(e) => {
            crate::store::testing::unreachable(e);
            return;
        }
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

/// A database that cannot be had is said in PostgreSQL's own words (a
/// missing database read "db error" alone), and a closed store refuses at
/// once.
#[tokio::test]
async fn an_unavailable_database_is_said_with_its_cause_and_a_closed_store_refuses() {
    let mut cfg = crate::store::testing::postgres_config();
    let Some(_reachable) = fresh_with(cfg.clone()).await else {
        return;
    };
    let Some((base, _)) = cfg.url.rsplit_once('/') else {
        panic!("{}", cfg.url)
    };
    cfg.url = format!("{base}/passerelle_no_such_database");
    let s = super::PgStore::new(&cfg, std::path::Path::new(".")).unwrap();
    match s.schema_status().await {
        Err(StoreError::Backend(m)) => assert!(
            m.contains("database \"passerelle_no_such_database\" does not exist"),
            "{m}"
        ),
        r => panic!("{r:?}"),
    }
    let (open, _) = fresh().await.unwrap();
    open.close();
    match open.schema_status().await {
        Err(StoreError::Backend(m)) => assert!(m.contains("closed"), "{m}"),
        r => panic!("{r:?}"),
    }
}

/// A migrated store on a fresh schema, as itself and as a `Store`.
async fn fresh() -> Option<(Arc<super::PgStore>, Arc<dyn Store>)> {
    fresh_with(crate::store::testing::postgres_config()).await
}

/// [`fresh`] with a pool of one connection: what PostgreSQL counts for
/// the connection a test reads afterwards (`s.client()`) is what the
/// store's calls did.
async fn fresh_on_one_connection() -> Option<(Arc<super::PgStore>, Arc<dyn Store>)> {
    let mut cfg = crate::store::testing::postgres_config();
    cfg.pool_size = 1;
    fresh_with(cfg).await
}

async fn fresh_with(
    cfg: crate::config::PostgresConfig,
) -> Option<(Arc<super::PgStore>, Arc<dyn Store>)> {
    let s = Arc::new(crate::store::testing::migrated_postgres(&cfg).await?);
    Some((s.clone(), s))
}

/// Until `sql` (one boolean, one text parameter: `param`) says a session
/// waits, or `done`: polled on a connection of its own, query after query
/// (no sleep), for at most 20 s, else fails saying `what`.
async fn until_waiting(
    s: &super::PgStore,
    sql: &str,
    param: &str,
    done: impl Fn() -> bool,
    what: &str,
) {
    let watcher = s.client().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        let waiting: bool = watcher.query_one(sql, &[&param]).await.unwrap().get(0);
        if waiting {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::task::yield_now().await;
    }
}

/// Runs `sql` (one or more statements, no result) on a pooled connection.
async fn run_sql(s: &super::PgStore, sql: &str) {
    s.client().await.unwrap().batch_execute(sql).await.unwrap();
}

use crate::store::conformance::{begin, sample_claim};
use crate::store::{Begin, ClaimStore, PayeesFrom, Store, StoreError};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_and_a_reader_see_every_change_once() {
    let cfg = crate::store::testing::postgres_config();
    let Some(a) = crate::store::testing::migrated_postgres(&cfg).await else {
        return;
    };
    let b = crate::store::testing::migrated_postgres(&cfg)
        .await
        .expect("second replica");
    crate::store::conformance::changes_are_seen_once_across_writers(Arc::new(a), Arc::new(b)).await;
}

/// A change whose transaction is still open holds the cursor back: a later
/// change that committed first is not listed until the earlier one commits,
/// then both come, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_late_is_never_passed_over() {
    let Some((s, store)) = fresh().await else {
        return;
    };
    begin(&store, sample_claim("CNSS", "C1", "I1")).await;
    let first = store.list_changed("CNSS", 0, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    let c0 = first[0].change_seq;
    // A writer changes C1 the way the store does (mark, row lock, new
    // number) and does not commit yet.
    let mut raw = s.client().await.unwrap();
    let tx = raw.transaction().await.unwrap();
    super::load(&tx, "CNSS", "C1", s.for_change())
        .await
        .unwrap()
        .unwrap();
    tx.execute(
        &format!(
            "UPDATE claims SET change_seq = {}, updated_ms = 5 WHERE scheme_id = 'CNSS' AND claim_id = 'C1'",
            super::changes::CHANGE_SEQ
        ),
        &[],
    )
    .await
    .unwrap();
    // C2 commits after it, with a higher number.
    let Begin::Created(c2) = begin(&store, sample_claim("CNSS", "C2", "I2")).await else {
        panic!("C2 is new")
    };
    assert!(
        store.list_changed("CNSS", c0, 10).await.unwrap().is_empty(),
        "C2 is held back behind the open change of C1"
    );
    tx.commit().await.unwrap();
    let page = store.list_changed("CNSS", c0, 10).await.unwrap();
    let ids: Vec<_> = page.iter().map(|r| r.claim.claim_id.as_str()).collect();
    assert_eq!(ids, ["C1", "C2"], "the late change first, then C2");
    assert_eq!(page[1].change_seq, c2.change_seq);
    assert_eq!(page[0].updated_ms, 5);
}

/// Only writers of claim changes hold the cursor: a long read (an export's
/// snapshot) and a long write that is no claim change (retention pruning,
/// left open) do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_reads_and_pruning_do_not_hold_the_cursor_back() {
    let Some((s, store)) = fresh().await else {
        return;
    };
    begin(&store, sample_claim("CNSS", "C1", "I1")).await;
    let c0 = store.list_changed("CNSS", 0, 10).await.unwrap()[0].change_seq;
    let mut reader = s.client().await.unwrap();
    let read = reader
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .unwrap();
    let n: i64 = read
        .query_one("SELECT COUNT(*) FROM claims", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let mut pruner = s.client().await.unwrap();
    let prune = pruner.transaction().await.unwrap();
    prune
        .execute(
            &crate::store::core::prune_audit_sql("strpos", "$1", "$2", "$3"),
            &[&i64::MAX, &i64::MIN, &crate::store::core::PRUNE_BATCH],
        )
        .await
        .unwrap();
    // It holds a transaction id, as a real pruning run does.
    prune
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await
        .unwrap();
    begin(&store, sample_claim("CNSS", "C2", "I2")).await;
    let page = store.list_changed("CNSS", c0, 10).await.unwrap();
    let ids: Vec<_> = page.iter().map(|r| r.claim.claim_id.as_str()).collect();
    assert_eq!(ids, ["C2"], "the open read and pruning do not hold C2 back");
    prune.rollback().await.unwrap();
    read.rollback().await.unwrap();
}

/// A database restored into another cluster may find transaction ids lower
/// than the change numbers it holds: start-up raises the base, so new
/// changes still come after every stored one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_into_another_cluster_keeps_change_numbers_rising() {
    let Some((s, store)) = fresh().await else {
        return;
    };
    begin(&store, sample_claim("CNSS", "C1", "I1")).await;
    // As restored from a cluster far ahead in transaction ids.
    let ahead: i64 = 1 << 50;
    s.client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "UPDATE claims SET change_seq = {ahead}; UPDATE change_base SET system_identifier = 1"
        ))
        .await
        .unwrap();
    // A broker serving without migrating checks it too.
    s.check_restored().await.unwrap();
    let Begin::Created(c2) = begin(&store, sample_claim("CNSS", "C2", "I2")).await else {
        panic!("C2 is new")
    };
    assert!(c2.change_seq > ahead as u64, "{} > {ahead}", c2.change_seq);
    let page = store.list_changed("CNSS", ahead as u64, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].claim.claim_id, "C2");
}

/// The change number of a new claim's insert takes the writer mark with
/// the transaction's id: while such a statement's transaction is open, the
/// changes committed after it wait behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_claims_change_number_takes_the_writer_mark() {
    let Some((s, store)) = fresh().await else {
        return;
    };
    let mut raw = s.client().await.unwrap();
    let tx = raw.transaction().await.unwrap();
    let held: i64 = tx
        .query_one(
            &format!("SELECT {}", super::changes::marked_change_seq(s.mark)),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let Begin::Created(c1) = begin(&store, sample_claim("CNSS", "C1", "I1")).await else {
        panic!("C1 is new")
    };
    assert!(c1.change_seq as i64 > held);
    assert!(
        store.list_changed("CNSS", 0, 10).await.unwrap().is_empty(),
        "C1 waits behind the open transaction's number"
    );
    tx.rollback().await.unwrap();
    assert_eq!(store.list_changed("CNSS", 0, 10).await.unwrap().len(), 1);
}

/// With every pooled connection busy, a call waits `wait_timeout_ms` and
/// then fails as the store being unavailable (UNAVAILABLE at the edge),
/// instead of queueing without bound; the pool serves again once one is
/// free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_unavailable_after_its_wait() {
    let mut cfg = crate::store::testing::postgres_config();
    cfg.pool_size = 1;
    cfg.wait_timeout_ms = 300;
    let Some(s) = crate::store::testing::migrated_postgres(&cfg).await else {
        return;
    };
    let held = s.client().await.unwrap();
    let t0 = std::time::Instant::now();
    let e = s.get_claim("CNSS", "X").await.unwrap_err();
    let waited = t0.elapsed();
    assert!(
        matches!(&e, crate::store::StoreError::Backend(m) if m.contains("unavailable")),
        "{e}"
    );
    assert!(
        waited >= std::time::Duration::from_millis(300)
            && waited < std::time::Duration::from_secs(3),
        "waited {waited:?}"
    );
    let status = tonic::Status::from(crate::service::ServiceError::Store(e));
    assert_eq!(status.code(), tonic::Code::Unavailable);
    drop(held);
    assert!(s.get_claim("CNSS", "X").await.unwrap().is_none());
}

/// A claim's and an eligibility check's statements settle on a generic
/// plan, so that a call does not pay for planning. PostgreSQL builds a
/// prepared statement's first five plans from its parameters, then keeps
/// its generic plan only if its estimated cost is below the custom plans'
/// average, which includes a charge for planning;
/// the ceiling read, with `= ANY($2)`, never did and was planned again on
/// every call (49 µs of planning for a 23 µs read, docs/PERFORMANCE.md,
/// fifteenth part). Read from the one pooled connection's
/// `pg_prepared_statements` (PostgreSQL 14 and later): a statement that
/// settled has at most five custom plans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_paths_statements_settle_on_a_generic_plan() {
    use crate::store::conformance::{coordinated, new_claim, sample_member};
    use passerelle_domain::{CeilingKey, CeilingScope};
    let Some((s, store)) = fresh_on_one_connection().await else {
        return;
    };
    store
        .upsert_members(&[sample_member("MUT-A", "M-1", "TG-1")], 1)
        .await
        .unwrap();
    // Ceilings in use, with their statistics (on a table the planner knows
    // nothing of, a generic plan of `= ANY($2)` did not look dearer); the
    // reads are of MUT-7, one of the 50 mutuelles the statistics count,
    // and of MUT-NEW, which they do not hold (a mutuelle joined since the
    // last ANALYZE: with `mutuelle_id = $1` it was planned on every call,
    // docs/PERFORMANCE.md, sixteenth part).
    run_sql(
        &s,
        "INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) \
         SELECT 'MUT-' || (g % 50), 'beneficiary-year|-|M-' || g || '|2026', 100, 1 \
         FROM generate_series(1, 20000) g",
    )
    .await;
    // VACUUM alone in its call: it cannot run in the implicit transaction
    // of several statements.
    run_sql(&s, "VACUUM ANALYZE ceiling_usage").await;
    // Two keys, and three (read with a fourth slot, the last key again).
    let keys: Vec<CeilingKey> = ["2026", "2027", "2028"]
        .into_iter()
        .map(|period| CeilingKey {
            scope: CeilingScope::BeneficiaryYear,
            subject: "M-1".into(),
            period: period.into(),
            act: String::new(),
        })
        .collect();
    // Five keys for MUT-NEW (read with eight slots): a statement of its own.
    let new_keys: Vec<CeilingKey> = (0..5)
        .map(|i| CeilingKey {
            scope: CeilingScope::BeneficiaryYear,
            subject: format!("N-{i}"),
            period: "2026".into(),
            act: String::new(),
        })
        .collect();
    const RUNS: i64 = 8;
    for i in 0..RUNS {
        assert_eq!(store.find_members("CNSS", "TG-1").await.unwrap().len(), 1);
        store.usage("MUT-7", &keys[..2]).await.unwrap();
        store.usage("MUT-7", &keys).await.unwrap();
        store.usage("MUT-NEW", &new_keys).await.unwrap();
        let new = new_claim(sample_claim("CNSS", &format!("G{i}"), &format!("IG{i}")));
        let done = store
            .begin_coordinated(&new, coordinated(&[100, 0], vec![]))
            .await
            .unwrap();
        assert!(done.is_some());
    }
    let rows = s
        .client()
        .await
        .unwrap()
        .query(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements \
             WHERE generic_plans + custom_plans >= $1",
            &[&RUNS],
        )
        .await
        .unwrap();
    let ran: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let replanned: Vec<(String, i64)> = rows
        .iter()
        .filter(|r| r.get::<_, i64>(2) > 5)
        .map(|r| (r.get(0), r.get(2)))
        .collect();
    assert!(
        replanned.is_empty(),
        "more than five custom plans (planned again on every run): {replanned:?}"
    );
    assert_eq!(
        ran.iter()
            .filter(|q| q.contains("FROM ceiling_usage"))
            .count(),
        3,
        "the ceiling reads of two, three and five keys ran {RUNS} times each: {ran:?}"
    );
}

/// At scale, the hot and listing paths read through indexes: on a store
/// seeded with 60,000 claims and their lines, 20,000 members and ceilings
/// and 100,000 audit rows, no store call on those paths reads a large table
/// sequentially. The counters are PostgreSQL's own (`pg_stat_user_tables`),
/// read from the one pooled connection that made the calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_and_listing_paths_use_indexes_on_a_seeded_store() {
    use crate::store::conformance::{coordinate, sample_member};
    let Some((s, store)) = fresh_on_one_connection().await else {
        return;
    };
    coordinate(&store, sample_claim("CNSS", "C0", "I0"), &[100, 0]).await;
    store
        .upsert_members(&[sample_member("MUT-A", "M-0", "TG-0")], 1)
        .await
        .unwrap();
    s.client()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO claims (scheme_id, claim_id, request_hash, body, provider_id, invoice_number, \
               mutuelle_id, member_number, state, adjudication_key, change_seq, created_ms, updated_ms, \
               date_of_care, currency, payee_type, billed_total, scheme_total, mutuelle_total) \
             SELECT 'CNSS', 'S' || g, request_hash, body, 'P' || (g % 50), 'IS' || g, 'MUT-' || (g % 200), \
               'M-' || (g % 20000), CASE WHEN g % 10 = 0 THEN 'pending_partner' ELSE 'coordinated' END, \
               'k' || g, change_seq + g, 1, 1, '2026-03-10', 'XOF', 'provider', 17000, 11500, 100 \
             FROM claims, generate_series(1, 60000) g WHERE claim_id = 'C0'; \
             INSERT INTO claims (scheme_id, claim_id, request_hash, body, provider_id, invoice_number, \
               mutuelle_id, member_number, state, adjudication_key, change_seq, created_ms, updated_ms, \
               date_of_care, currency, payee_type, billed_total, scheme_total, mutuelle_total) \
             SELECT 'CNSS', 'PY' || g, request_hash, body, 'PP' || (g % 400), 'IPY' || g, 'MUT-PAY', \
               'M-' || (g % 20000), 'coordinated', 'kpy' || g, change_seq + 60000 + g, 1, 1, '2026-03-10', \
               'XOF', 'provider', 17000, 11500, 100 \
             FROM claims, generate_series(1, 20000) g WHERE claim_id = 'C0'; \
             UPDATE change_base SET base = base + 80001; \
             UPDATE claims SET next_attempt_ms = 1000000 + id WHERE state = 'pending_partner'; \
             INSERT INTO claim_lines SELECT c.id, l.sequence, l.act_code, l.care_category, l.quantity, l.billed, \
               l.tariff_base, l.scheme_share, l.mutuelle_share, l.patient_share, l.reasons \
             FROM claims c, claim_lines l WHERE c.claim_id LIKE 'S%' AND l.claim_pk = (SELECT id FROM claims WHERE claim_id = 'C0'); \
             INSERT INTO members SELECT 'MUT-' || (g % 200), 'M-' || g, 'CNSS', 'TG-' || g, body, 1 \
             FROM members, generate_series(1, 20000) g WHERE member_number = 'M-0'; \
             INSERT INTO ceiling_usage (mutuelle_id, ceiling_key, used_amount, used_count) SELECT 'MUT-' || (g % 200), 'beneficiary-year|-|M-' || g || '|2026', 100, 1 \
             FROM generate_series(1, 20000) g; \
             INSERT INTO audit_log (at_ms, direction, party, method, subject, request_hash, outcome) \
             SELECT g, 'in', 'scheme:CNSS', 'CoordinateClaim', 'CNSS/S' || (g % 60000), 'h', 'ok' \
             FROM generate_series(1, 100000) g; \
             INSERT INTO audit_kept (at_ms, direction, party, method, subject, request_hash, outcome) \
             SELECT g, 'in', 'scheme:CNSS', 'CoordinateClaim', 'CNSS/S' || (g % 60000), 'h', 'ok' \
             FROM generate_series(1, 50000) g; \
             ANALYZE claims, claim_lines, members, ceiling_usage, claim_consumption, audit_log, audit_kept",
        )
        .await
        .unwrap();
    let big = [
        "claims",
        "claim_lines",
        "members",
        "ceiling_usage",
        "claim_consumption",
        // The rows seeded above are older than every month made: the
        // default partition's (migration 18); and as many written before
        // the months.
        "audit_log_default",
        "audit_kept",
    ];
    let scans = || {
        let s = s.clone();
        async move {
            let c = s.client().await.unwrap();
            // The calls' counters are flushed when the connection is idle.
            c.batch_execute("SELECT pg_stat_force_next_flush()")
                .await
                .unwrap();
            let rows = c
                .query(
                    "SELECT relname::text, seq_scan, COALESCE(idx_tup_fetch, 0) \
                     FROM pg_stat_user_tables WHERE schemaname = current_schema()",
                    &[],
                )
                .await
                .unwrap();
            rows.iter()
                .map(|r| {
                    (
                        r.get::<_, String>(0),
                        (r.get::<_, i64>(1), r.get::<_, i64>(2)),
                    )
                })
                .collect::<std::collections::HashMap<_, _>>()
        }
    };
    for what in crate::store::conformance::HOT_CALLS {
        let before = scans().await;
        crate::store::conformance::hot_call(&store, what).await;
        let after = scans().await;
        for t in big {
            assert_eq!(
                after.get(t).map(|s| s.0),
                before.get(t).map(|s| s.0),
                "{what}: a sequential scan of {t}"
            );
        }
        // A page of five lines in the middle of a closed month of 270
        // claims reads about its own claims: a range of the statement's
        // index in its order, not every claim of the period sorted for each
        // page, and the period's totals stored when it closed.
        if what == "statement page" {
            let read = after["claims"].1 - before["claims"].1;
            assert!(read <= 20, "a page of 5 lines read {read} claims");
        }
    }
    // Retention's test of each audit row, on the rows kept past their
    // month and the default partition, probes the claims' key
    // (`claims_key`) for each row; a month's move reads the claims that
    // may hold rows of it by their own indexes.
    let c = s.client().await.unwrap();
    c.batch_execute("VACUUM ANALYZE claims, audit_log_default")
        .await
        .unwrap();
    // A statement's plan, one line of text per node.
    let explain =
        |sql: String, params: &'static [&'static (dyn tokio_postgres::types::ToSql + Sync)]| {
            let c = &c;
            async move {
                let rows = c
                    .query(&format!("EXPLAIN (COSTS OFF) {sql}"), params)
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };
    let plan = explain(
        format!(
            "SELECT COUNT(*) FROM audit_log_default a WHERE {}",
            crate::store::core::audit_row_held("strpos")
        ),
        &[],
    )
    .await;
    assert!(plan.contains("using claims_key on claims c"), "{plan}");
    assert!(plan.contains("hashed SubPlan"), "periods read once: {plan}");
    // A month's move reads the claims waiting on their partner by their
    // index.
    let plan = explain(
        super::audit::move_waiting_sql("audit_log_default"),
        &[&i64::MAX],
    )
    .await;
    assert!(plan.contains("on claims_waiting"), "{plan}");
    // (The periods not settled, a small table, are read once into a hash.)
    assert!(!plan.contains("Seq Scan on claims"), "{plan}");
    assert!(!plan.contains("Seq Scan on audit_log_default"), "{plan}");
    // Then the claims coordinated in no closed period by their index, a
    // batch of its entries at a time, never the table: whatever the
    // cutoff, here past every seeded claim (nine in ten of them open). With the
    // cutoff in the index's range, PostgreSQL estimated the range from the
    // whole table and read every claim once the cutoff was months into
    // them (docs/PERFORMANCE.md, twenty-first part).
    for cutoff in [1i64, i64::MAX] {
        let plan = explain(
            super::audit::move_open_sql("audit_log_default"),
            if cutoff == 1 {
                &[&1i64, &i64::MIN, &i64::MIN, &super::audit::MOVE_CLAIMS]
            } else {
                &[&i64::MAX, &i64::MIN, &i64::MIN, &super::audit::MOVE_CLAIMS]
            },
        )
        .await;
        assert!(plan.contains("using claims_open on claims"), "{plan}");
        assert!(!plan.contains("Seq Scan on claims"), "{plan}");
    }
    let plan = explain(
        super::audit::move_open_sql("audit_log_default"),
        &[&i64::MAX, &i64::MIN, &i64::MIN, &super::audit::MOVE_CLAIMS],
    )
    .await;
    // The rows moved are found from each claim by the month's subject
    // index, then deleted by address: a join PostgreSQL planned from its
    // estimates read the rest of the month.
    let delete = plan.split("Delete on").nth(1).unwrap_or_default();
    assert!(delete.contains("Tid Scan on audit_log_default"), "{plan}");
    assert!(
        delete
            .lines()
            .any(|l| l.contains("Index Cond: (subject = h.subject)")),
        "{plan}"
    );
    assert!(!plan.contains("Seq Scan"), "{plan}");
    // A period left unsettled: its claims by the statement's index.
    let plan = explain(
        super::audit::move_period_sql("audit_log_default"),
        &[&i64::MAX, &"CNSS", &"MUT-0", &1i64],
    )
    .await;
    assert!(
        plan.contains("using claims_statement on claims c"),
        "{plan}"
    );
    assert!(!plan.contains("Seq Scan on claims"), "{plan}");
    // A page of a statement's payees, in a mutuelle of 400 payees and
    // 20,000 claims: the index's range in its order, grouped as it comes,
    // neither sorted nor hashed, so that the page stops at its last payee.
    let order = crate::store::core::statement_claim_order(super::settlement::BYTES);
    let plan = explain(
        crate::store::core::statement_payees(
            "$1",
            "$2",
            "$3",
            Some((["$5", "$6"], ">")),
            "$4::BIGINT",
            &order,
            super::settlement::BYTES,
        ),
        &[&"CNSS", &"MUT-PAY", &0i64, &6i64, &"provider", &"PP200"],
    )
    .await;
    assert!(
        plan.contains("using claims_statement on claims c"),
        "{plan}"
    );
    assert!(plan.contains("GroupAggregate"), "{plan}");
    assert!(
        !plan.contains("Sort") && !plan.contains("HashAggregate"),
        "{plan}"
    );
    drop(c);
    // One payee alone (what a payee with recoveries is owed): its claims
    // only, whatever follows it, and none for a payee with no claim.
    let before = scans().await;
    let one = ("provider".to_string(), "PP200".to_string());
    let page = store
        .statement_payees("CNSS", "MUT-PAY", 0, PayeesFrom::Only(&one), 1)
        .await
        .unwrap();
    assert_eq!(page.len(), 1, "{page:?}");
    assert_eq!((page[0].payee_id.as_str(), page[0].claims), ("PP200", 50));
    let none = ("provider".to_string(), "PP200-".to_string());
    let page = store
        .statement_payees("CNSS", "MUT-PAY", 0, PayeesFrom::Only(&none), 1)
        .await
        .unwrap();
    assert!(page.is_empty(), "{page:?}");
    let read = scans().await["claims"].1 - before["claims"].1;
    assert!(
        (50..=52).contains(&read),
        "one payee of 50 claims, and none, read {read} claims"
    );
    let before = scans().await;
    let after = ("provider".to_string(), "PP200".to_string());
    let page = store
        .statement_payees("CNSS", "MUT-PAY", 0, PayeesFrom::After(&after), 5)
        .await
        .unwrap();
    let ids: Vec<&str> = page.iter().map(|p| p.payee_id.as_str()).collect();
    assert_eq!(ids, ["PP201", "PP202", "PP203", "PP204", "PP205"]);
    assert!(
        page.iter().all(|p| p.claims == 50 && p.mutuelle == 5_000),
        "{page:?}"
    );
    let read = scans().await["claims"].1 - before["claims"].1;
    assert!(
        (250..=260).contains(&read),
        "five payees of 50 claims read {read} claims"
    );
}

/// Two replicas (two stores, each its own pool, on one schema) granting
/// prior authorizations on one ceiling at once: holds never pass it, and
/// an authorization raced by a claim on one replica and a cancel on the
/// other ends once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_holds_without_passing_a_ceiling() {
    use crate::store::Store;
    use crate::store::authorizations::{AuthorizationState, Grant};
    use crate::store::conformance::authorization;
    use std::sync::Arc;
    let cfg = crate::store::testing::postgres_config();
    let Some(a) = crate::store::testing::migrated_postgres(&cfg).await else {
        return;
    };
    let Some(b) = crate::store::testing::migrated_postgres(&cfg).await else {
        return;
    };
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a), Arc::new(b));
    // Eight holds of 600 on a ceiling of 2,000, alternating replicas.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.grant_authorization(&authorization(&format!("R{i}"), 600, 2_000), u32::MAX)
                .await
        }));
    }
    let mut granted = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(Grant::Created(r)) => granted.push(r),
            Err(crate::store::StoreError::CeilingConflict(_)) => {}
            other => panic!("R{i}: {other:?}"),
        }
    }
    assert_eq!(granted.len(), 3, "three fit under 2,000");
    let key = passerelle_domain::CeilingKey {
        scope: passerelle_domain::CeilingScope::BeneficiaryYear,
        subject: "M-1".into(),
        period: "2026".into(),
        act: String::new(),
    };
    for s in [&a, &b] {
        let u = s.usage("MUT-A", std::slice::from_ref(&key)).await.unwrap();
        assert_eq!(
            u.get(&key).held_amount,
            1_800,
            "both replicas read the holds"
        );
    }
    // One of them cancelled on replica A and expired on replica B at once:
    // one wins, the hold released once.
    let id = granted[0].authorization_id.clone();
    let (x, y) = tokio::join!(
        a.end_authorization("CNSS", &id, AuthorizationState::Cancelled, 9_000),
        b.end_authorization("CNSS", &id, AuthorizationState::Expired, 9_000),
    );
    assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|w| **w).count(), 1);
    let u = b.usage("MUT-A", std::slice::from_ref(&key)).await.unwrap();
    assert_eq!(u.get(&key).held_amount, 1_200);
}

/// Periods closed before schema 16 have no stored totals.
#[tokio::test]
async fn period_totals_stored_at_close_agree_with_their_claims() {
    let cfg = crate::store::testing::postgres_config();
    let Some(s) = crate::store::testing::migrated_postgres(&cfg).await else {
        return;
    };
    let s = Arc::new(s);
    let raw = s.clone();
    crate::store::conformance::period_totals_stored_at_close_agree_with_their_claims(
        s,
        || async move {
            let n = raw
                .client()
                .await
                .unwrap()
                .execute(
                    "UPDATE periods SET claim_count = NULL, billed_total = NULL, scheme_total = NULL, \
                     mutuelle_total = NULL, recoveries_total = NULL",
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(n, 1);
        },
    )
    .await;
}

/// A concurrent index's state on `s`'s schema, as `sql` reads it: whether
/// it is valid (`None`: missing), and whether what it replaces is there.
async fn index_and_replaced(s: &super::PgStore, sql: &str) -> (Option<bool>, bool) {
    let r = s.client().await.unwrap().query_one(sql, &[]).await.unwrap();
    (r.get(0), r.get(1))
}

/// A migrated store whose concurrent index, as `state` reads it
/// ([`index_and_replaced`]), is valid and has replaced what it replaces;
/// then `undo` run on it (a build interrupted, a store migrated before the
/// index). `None` without PostgreSQL.
async fn concurrent_index_undone(state: &str, undo: &str) -> Option<super::PgStore> {
    let cfg = crate::store::testing::postgres_config();
    let s = crate::store::testing::migrated_postgres(&cfg).await?;
    assert_eq!(index_and_replaced(&s, state).await, (Some(true), false));
    s.client().await.unwrap().batch_execute(undo).await.unwrap();
    Some(s)
}

/// Migration 12's checks on the holds are added without reading the
/// ceiling rows and validated after the migrations commit
/// (`DEFERRED_CHECKS`): a migrated store has them valid, as a column's
/// check would be, and enforced; one left unvalidated, as an interrupted
/// migrate leaves it, is validated by the next migrate.
/// The definitions of the deferred checks (`DEFERRED_CHECKS`) on `s`'s
/// schema, as PostgreSQL prints them (`None`: missing).
async fn deferred_checks(s: &super::PgStore) -> Vec<Option<String>> {
    let c = s.client().await.unwrap();
    let mut out = Vec::new();
    for (table, check) in super::migrations::DEFERRED_CHECKS {
        let row = c
            .query_opt(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $2 \
                 AND conrelid = to_regclass(format('%I.%I', current_schema(), $1::TEXT))",
                &[table, check],
            )
            .await
            .unwrap();
        out.push(row.map(|r| r.get(0)));
    }
    out
}

/// [`deferred_checks`] once validated: as an inline check reads.
fn valid_deferred_checks() -> Vec<Option<String>> {
    vec![
        Some("CHECK ((held_amount >= 0))".to_string()),
        Some("CHECK ((held_count >= 0))".to_string()),
    ]
}

/// A stored ceiling row, and the deferred checks made unvalidated over
/// it, as a migrate interrupted after its commit leaves them.
const CHECKS_LEFT_UNVALIDATED: &str = "INSERT INTO ceiling_usage \
     (mutuelle_id, ceiling_key, used_amount, used_count) \
     VALUES ('MUT-A', 'beneficiary-year|-|M-1|2026', 100, 1); \
     UPDATE pg_constraint SET convalidated = false WHERE conname LIKE 'ceiling_usage_held_%' \
     AND connamespace = current_schema()::regnamespace";

#[tokio::test]
async fn deferred_checks_are_validated_after_the_migrations_commit() {
    let Some((s, _)) = fresh().await else {
        return;
    };
    assert_eq!(deferred_checks(&s).await, valid_deferred_checks());
    // A row stored before the checks were validated.
    run_sql(&s, CHECKS_LEFT_UNVALIDATED).await;
    assert_eq!(
        deferred_checks(&s).await,
        vec![
            Some("CHECK ((held_amount >= 0)) NOT VALID".to_string()),
            Some("CHECK ((held_count >= 0)) NOT VALID".to_string()),
        ]
    );
    assert_eq!(s.migrate().await.unwrap(), super::SCHEMA_VERSION);
    assert_eq!(deferred_checks(&s).await, valid_deferred_checks());
    let e = s
        .client()
        .await
        .unwrap()
        .batch_execute("UPDATE ceiling_usage SET held_count = -1")
        .await
        .unwrap_err();
    assert_eq!(
        e.as_db_error().and_then(|d| d.constraint()),
        Some("ceiling_usage_held_count_check"),
        "{e}"
    );
}

/// Validating a deferred check and live calls do not wait for each
/// other: a claim's transaction that has read and written a ceiling row,
/// still open, does not hold the validation up (a validation taking the
/// table's strongest lock would wait for it, past the bound here, and
/// would hold every later reader and writer the same way); the checks are
/// valid once `migrate` returns, and the writer then commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validating_a_deferred_check_holds_no_writer() {
    let Some((s, _)) = fresh().await else {
        return;
    };
    run_sql(&s, CHECKS_LEFT_UNVALIDATED).await;
    let mut writer = s.client().await.unwrap();
    let writer = writer.transaction().await.unwrap();
    writer
        .batch_execute(
            "SELECT used_count FROM ceiling_usage; \
             UPDATE ceiling_usage SET used_count = used_count + 1, held_count = 1",
        )
        .await
        .unwrap();
    let migrated = tokio::time::timeout(std::time::Duration::from_secs(10), s.migrate())
        .await
        .expect("the validation waited for an open writer");
    assert_eq!(migrated.unwrap(), super::SCHEMA_VERSION);
    assert_eq!(deferred_checks(&s).await, valid_deferred_checks());
    writer.commit().await.unwrap();
}

/// The statement's index is built after the migrations commit, beside
/// writers (`CONCURRENT_INDEXES`); one left invalid, as an interrupted
/// build leaves it, is built again by the next migrate, and the index it
/// replaces is gone once it is valid.
#[tokio::test]
async fn an_interrupted_concurrent_index_is_built_again() {
    const STATE: &str = "SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = \
           to_regclass(format('%I.%I', current_schema(), 'claims_statement'))), \
         to_regclass(format('%I.%I', current_schema(), 'claims_settlement')) IS NOT NULL";
    async fn state(s: &super::PgStore) -> (Option<bool>, bool) {
        index_and_replaced(s, STATE).await
    }
    let Some(s) = concurrent_index_undone(
        STATE,
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = \
         to_regclass(format('%I.%I', current_schema(), 'claims_statement'))",
    )
    .await
    else {
        return;
    };
    assert_eq!(state(&s).await, (Some(false), false));
    assert_eq!(s.migrate().await.unwrap(), super::SCHEMA_VERSION);
    assert_eq!(state(&s).await, (Some(true), false));
}

/// The claims' key with their state and period (`claims_key`) replaces
/// the key's constraint; a table busy past the lock's wait keeps the
/// constraint (uniqueness holds with both) until the next migrate, which
/// does not fail for it.
#[tokio::test]
async fn the_claims_key_replaces_its_constraint_when_the_table_is_free() {
    const STATE: &str = "SELECT (SELECT indisvalid AND indisunique AND indnkeyatts = 2 \
           AND indnatts = 4 FROM pg_index WHERE indexrelid = \
           to_regclass(format('%I.%I', current_schema(), 'claims_key'))), \
         EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'claims_scheme_id_claim_id_key' \
           AND conrelid = to_regclass(format('%I.claims', current_schema())))";
    async fn state(s: &super::PgStore) -> (Option<bool>, bool) {
        index_and_replaced(s, STATE).await
    }
    // As a store migrated before the index was.
    let Some(s) = concurrent_index_undone(
        STATE,
        "ALTER TABLE claims ADD CONSTRAINT claims_scheme_id_claim_id_key \
         UNIQUE (scheme_id, claim_id)",
    )
    .await
    else {
        return;
    };
    assert_eq!(state(&s).await, (Some(true), true));
    // A long reader of the claims: the constraint waits for it.
    let mut reader = s.client().await.unwrap();
    let read = reader.transaction().await.unwrap();
    read.query_one("SELECT COUNT(*) FROM claims", &[])
        .await
        .unwrap();
    assert_eq!(s.migrate().await.unwrap(), super::SCHEMA_VERSION);
    assert_eq!(state(&s).await, (Some(true), true), "kept while read");
    read.commit().await.unwrap();
    assert_eq!(s.migrate().await.unwrap(), super::SCHEMA_VERSION);
    assert_eq!(state(&s).await, (Some(true), false));
    // The index alone keeps a claim's key unique.
    let s = Arc::new(s);
    let store: Arc<dyn Store> = s.clone();
    assert!(matches!(
        begin(&store, sample_claim("CNSS", "K1", "I1")).await,
        Begin::Created(_)
    ));
    let e = s
        .client()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO claims (scheme_id, claim_id, request_hash, body, provider_id, \
               invoice_number, mutuelle_id, member_number, state, adjudication_key, change_seq, \
               created_ms, updated_ms, date_of_care, currency, payee_type, billed_total, scheme_total) \
             SELECT scheme_id, claim_id, request_hash, body, provider_id, 'other', mutuelle_id, \
               member_number, state, 'k2', change_seq + 1, 1, 1, date_of_care, currency, payee_type, \
               billed_total, scheme_total FROM claims WHERE claim_id = 'K1'",
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
        "{e}"
    );
}

/// A product is served from memory until a member read sees the products'
/// generation move (migration 17): a version another replica replaced or
/// added is then read afresh; marking a version used moves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_another_replica_changes_is_read_afresh() {
    use crate::store::conformance::{d, sample_member, sample_product};
    use crate::store::{ProductStore, RosterStore};
    let cfg = crate::store::testing::postgres_config();
    let Some(a) = crate::store::testing::migrated_postgres(&cfg).await else {
        return;
    };
    let b = crate::store::testing::migrated_postgres(&cfg)
        .await
        .expect("second replica");
    async fn generation(s: &super::PgStore) -> i64 {
        let c = s.client().await.unwrap();
        let r = c
            .query_one("SELECT n FROM product_generation", &[])
            .await
            .unwrap();
        r.get::<_, i64>(0)
    }
    let v1 = sample_product("MUT-A", 1, "2025-01-01");
    b.put_products(std::slice::from_ref(&v1), None)
        .await
        .unwrap();
    b.upsert_members(&[sample_member("MUT-A", "M-1", "TG-1")], 1)
        .await
        .unwrap();
    let day = d("2026-03-10");
    let name = |p: Option<passerelle_domain::Product>| p.map(|p| p.name);
    a.find_members("CNSS", "TG-1").await.unwrap();
    assert_eq!(
        name(a.product_on("MUT-A", "ESS", day).await.unwrap()).as_deref(),
        Some("Essentiel")
    );
    // Replica B replaces the version (not yet used): A, before any member
    // read, still answers from memory (what it read at its last one)...
    let before = generation(&a).await;
    let mut renamed = v1.clone();
    renamed.name = "Essentiel plus".into();
    b.put_products(std::slice::from_ref(&renamed), None)
        .await
        .unwrap();
    assert_eq!(generation(&a).await, before + 1);
    assert_eq!(
        name(a.product_on("MUT-A", "ESS", day).await.unwrap()).as_deref(),
        Some("Essentiel")
    );
    // ...and after its next member read, the version B wrote.
    a.get_member("MUT-A", "M-1").await.unwrap();
    assert_eq!(
        name(a.product_on("MUT-A", "ESS", day).await.unwrap()).as_deref(),
        Some("Essentiel plus")
    );
    // A version added from a later date, through members_for this time:
    // until then version 1 was in force on that date (kept in memory too).
    let later = d("2026-08-01");
    let version = |p: Option<passerelle_domain::Product>| p.map(|p| p.version);
    assert_eq!(
        version(a.product_on("MUT-A", "ESS", later).await.unwrap()),
        Some(1)
    );
    let v2 = sample_product("MUT-A", 2, "2026-07-01");
    let moved = generation(&a).await;
    b.put_products(std::slice::from_ref(&v2), None)
        .await
        .unwrap();
    assert_eq!(generation(&a).await, moved + 1, "an insert moves it");
    assert_eq!(
        version(a.product_on("MUT-A", "ESS", later).await.unwrap()),
        Some(1)
    );
    a.members_for("CNSS", "TG-1", None, Some("K-1"))
        .await
        .unwrap();
    let p = a.product_on("MUT-A", "ESS", later).await.unwrap().unwrap();
    assert_eq!(p.version, 2);
    // And through find_members: B replaces version 2 (not yet used).
    let mut v2b = v2.clone();
    v2b.name = "Essentiel 2".into();
    b.put_products(std::slice::from_ref(&v2b), None)
        .await
        .unwrap();
    assert_eq!(
        name(a.product_on("MUT-A", "ESS", later).await.unwrap()).as_deref(),
        Some("Essentiel")
    );
    a.find_members("CNSS", "TG-1").await.unwrap();
    assert_eq!(
        name(a.product_on("MUT-A", "ESS", later).await.unwrap()).as_deref(),
        Some("Essentiel 2")
    );
    // A claim marking a version used (what begin_coordinated does) and a
    // product put again unchanged move nothing.
    let now = generation(&a).await;
    a.client()
        .await
        .unwrap()
        .execute("UPDATE products SET used = TRUE WHERE version = 2", &[])
        .await
        .unwrap();
    b.put_products(std::slice::from_ref(&v2b), None)
        .await
        .unwrap();
    assert_eq!(generation(&a).await, now);
    // A writer whose session names another schema (an operator's psql)
    // moves this schema's generation all the same.
    let mut c = a.client().await.unwrap();
    let tx = c.transaction().await.unwrap();
    tx.batch_execute(&format!(
        "SET LOCAL search_path TO public; UPDATE \"{}\".products SET valid_to = valid_to WHERE version = 1",
        a.schema
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();
    drop(c);
    assert_eq!(generation(&a).await, now + 1);
    // The replica that writes reads its own write at once.
    let mut again = renamed.clone();
    again.name = "Essentiel 2026".into();
    a.put_products(std::slice::from_ref(&again), None)
        .await
        .unwrap();
    assert_eq!(
        name(a.product_on("MUT-A", "ESS", day).await.unwrap()).as_deref(),
        Some("Essentiel 2026")
    );
}

fn audit_row(at_ms: i64, subject: &str) -> crate::store::AuditEntry {
    crate::store::AuditEntry {
        at_ms,
        direction: crate::store::Direction::In,
        party: "scheme:CNSS".into(),
        method: "CoordinateClaim".into(),
        subject: subject.into(),
        request_hash: "h".into(),
        outcome: "ok".into(),
        trace_id: String::new(),
    }
}

/// (id, subject, at_ms) of every audit row, in the export's order.
async fn audit_rows(store: &Arc<dyn Store>) -> Vec<(i64, String, i64)> {
    store
        .read_audit(0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, e)| (id, e.subject, e.at_ms))
        .collect()
}

async fn table_exists(s: &super::PgStore, table: &str) -> bool {
    s.client()
        .await
        .unwrap()
        .query_one(
            "SELECT to_regclass(format('%I.%I', current_schema(), $1::TEXT)) IS NOT NULL",
            &[&table],
        )
        .await
        .unwrap()
        .get(0)
}

/// The relations of the current schema whose name starts with `prefix`
/// (a month's table and its indexes).
async fn relations_named(s: &super::PgStore, prefix: &str) -> Vec<String> {
    s.client()
        .await
        .unwrap()
        .query(
            "SELECT relname::TEXT FROM pg_class WHERE relnamespace = to_regnamespace(current_schema()) \
             AND starts_with(relname::TEXT, $1) ORDER BY relname",
            &[&prefix],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// What a pass does to January before it frees its files: detached and
/// renamed, in one transaction.
const DETACH_JANUARY: &str = "ALTER TABLE audit_log DETACH PARTITION audit_log_m2025_01; \
    ALTER TABLE audit_log_m2025_01 RENAME TO audit_detached_m2025_01";
const DETACH_FEBRUARY: &str = "ALTER TABLE audit_log DETACH PARTITION audit_log_m2025_02; \
    ALTER TABLE audit_log_m2025_02 RENAME TO audit_detached_m2025_02";

/// A detached month's table and indexes: (table, indexes) left.
async fn detached_left(s: &super::PgStore) -> (usize, usize) {
    (
        relations_named(s, "audit_detached_m2025_01").await.len(),
        relations_named(s, "audit_log_m2025_01").await.len(),
    )
}

/// A pass stopped between a month's detach and the freeing of its files
/// leaves its table (renamed `audit_detached_m…`) and indexes: the next
/// pass frees them, whatever its cutoff, and leaves the months still in
/// the log and a month an operator detached (under its own name, to
/// archive it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_detached_and_not_freed_is_freed_by_the_next_pass() {
    let Some((s, store)) = fresh().await else {
        return;
    };
    s.make_audit_months(JAN_2025, MAR_2025).await.unwrap();
    store
        .append_audit(&[
            audit_row(JAN_2025 + 1, "CNSS/eligibility"),
            audit_row(FEB_2025 + 1, "CNSS/eligibility"),
            audit_row(MAR_2025 + 1, "CNSS/eligibility"),
        ])
        .await
        .unwrap();
    run_sql(&s, DETACH_JANUARY).await;
    run_sql(
        &s,
        "ALTER TABLE audit_log DETACH PARTITION audit_log_m2025_02",
    )
    .await;
    assert_eq!(detached_left(&s).await, (1, 3), "the table and its indexes");
    assert_eq!(
        audit_rows(&store).await.len(),
        1,
        "their rows left with them"
    );
    // A cutoff before every month: none is dropped, the leftover is freed.
    assert_eq!(store.prune_audit(JAN_2025).await.unwrap(), Some(0));
    assert_eq!(detached_left(&s).await, (0, 0));
    assert!(
        table_exists(&s, "audit_log_m2025_02").await,
        "the operator's"
    );
    assert_eq!(relations_named(&s, "audit_log_m2025_02").await.len(), 4);
    assert!(table_exists(&s, "audit_log_m2025_03").await);
    assert_eq!(audit_rows(&store).await.len(), 1);
}

/// A detached month is left to a later pass while another replica holds
/// retention's lock, or while another session holds its table (each drop
/// waits at most the log's lock timeout); the connection that tried lets
/// go of the lock and closes, and the pool is left usable: on a pool of
/// one connection, the next read works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_month_held_by_a_reader_is_freed_by_a_later_pass() {
    let mut cfg = crate::store::testing::postgres_config();
    cfg.pool_size = 1;
    let Some(one) = crate::store::testing::migrated_postgres(&cfg).await else {
        return;
    };
    let one = Arc::new(one);
    let store: Arc<dyn Store> = one.clone();
    cfg.pool_size = 2;
    let other = crate::store::testing::migrated_postgres(&cfg)
        .await
        .expect("a second store on the same schema");
    one.make_audit_months(JAN_2025, FEB_2025).await.unwrap();
    store
        .append_audit(&[
            audit_row(JAN_2025 + 1, "CNSS/eligibility"),
            audit_row(FEB_2025 + 1, "CNSS/eligibility"),
        ])
        .await
        .unwrap();
    run_sql(&one, DETACH_JANUARY).await;
    // Another replica in a month's pass: retention's lock held.
    let mut replica = other.client().await.unwrap();
    let pass = replica.transaction().await.unwrap();
    pass.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
        &[&super::RETENTION_LOCK],
    )
    .await
    .unwrap();
    assert_eq!(store.prune_audit(JAN_2025).await.unwrap(), None, "busy");
    assert_eq!(
        detached_left(&one).await,
        (1, 3),
        "left to the replica in its pass"
    );
    pass.rollback().await.unwrap();
    drop(replica);
    // A reader of the detached table.
    let mut reader = other.client().await.unwrap();
    let read = reader.transaction().await.unwrap();
    read.batch_execute("LOCK TABLE audit_detached_m2025_01 IN ACCESS SHARE MODE")
        .await
        .unwrap();
    assert_eq!(store.prune_audit(JAN_2025).await.unwrap(), Some(0));
    assert_eq!(detached_left(&one).await, (1, 3), "left whole while held");
    assert_eq!(
        audit_rows(&store).await.len(),
        1,
        "the pool's connection works"
    );
    read.rollback().await.unwrap();
    assert_eq!(store.prune_audit(JAN_2025).await.unwrap(), Some(0));
    assert_eq!(detached_left(&one).await, (0, 0));
}

/// While a replica rests between two freeings of a month, retention's
/// lock stays held, by a connection out of the pool: another replica's pass
/// frees none of the month meanwhile (two replicas space the freeings as
/// one does), nor does a pass on the replica's own pool; after the rest
/// the freeing goes on, and lets go of the lock at its end. A hold cut
/// short never goes back to the pool, and the server lets go of its lock
/// once its connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_replica_frees_a_month_while_another_rests_between_its_freeings() {
    let cfg = crate::store::testing::postgres_config();
    let Some(one) = crate::store::testing::migrated_postgres(&cfg).await else {
        return;
    };
    let one = Arc::new(one);
    let store: Arc<dyn Store> = one.clone();
    let other_pg = Arc::new(
        crate::store::testing::migrated_postgres(&cfg)
            .await
            .expect("a second store on the same schema"),
    );
    let other: Arc<dyn Store> = other_pg.clone();
    one.make_audit_months(JAN_2025, FEB_2025).await.unwrap();
    store
        .append_audit(&[audit_row(JAN_2025 + 1, "CNSS/eligibility")])
        .await
        .unwrap();
    run_sql(&one, DETACH_JANUARY).await;
    // `one` frees January; each rest says so and waits to be let go on.
    let (resting_tx, mut resting) = tokio::sync::mpsc::unbounded_channel();
    let go = Arc::new(tokio::sync::Semaphore::new(0));
    let rest = {
        let go = go.clone();
        move |took: std::time::Duration| {
            let (tx, go) = (resting_tx.clone(), go.clone());
            async move {
                let _ = tx.send(took);
                go.acquire().await.expect("never closed").forget();
            }
        }
    };
    let freeing = tokio::spawn({
        let one = one.clone();
        async move {
            one.free_detached_month_resting("audit_detached_m2025_01", rest)
                .await
        }
    });
    resting
        .recv()
        .await
        .expect("a first freeing, then its rest");
    assert_eq!(detached_left(&one).await, (1, 2), "one index freed");
    for (replica, who) in [(&other, "the other replica"), (&store, "its own pool")] {
        assert_eq!(
            replica.prune_audit(JAN_2025).await.unwrap(),
            None,
            "{who}: busy"
        );
        assert_eq!(
            detached_left(&one).await,
            (1, 2),
            "{who} freed nothing during the rest"
        );
    }
    go.add_permits(4);
    freeing.await.unwrap();
    assert_eq!(detached_left(&one).await, (0, 0), "freed after the rest");
    let mut rests = 1;
    while resting.recv().await.is_some() {
        rests += 1;
    }
    assert_eq!(rests, 4, "a rest after each index and the table");
    assert_eq!(
        other.prune_audit(JAN_2025).await.unwrap(),
        Some(0),
        "let go of at the freeing's end"
    );
    // A hold cut short: its connection is the pool's no more.
    let pooled = one.pool.status().size;
    assert!(pooled >= 1, "the passes above left connections in the pool");
    let cut = one
        .retention_held()
        .await
        .unwrap()
        .expect("let go of above");
    assert_eq!(one.pool.status().size, pooled - 1, "taken out of the pool");
    drop(cut);
    assert_eq!(
        one.pool.status().size,
        pooled - 1,
        "not given back to the pool, holding the lock"
    );
    // The server lets go of it as the connection closes: waited for by
    // the lock itself (at most 10 s), from the other replica.
    let mut c = other_pg.client().await.unwrap();
    let tx = c.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL lock_timeout = '10s'")
        .await
        .unwrap();
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
        &[&super::RETENTION_LOCK],
    )
    .await
    .expect("let go of once the connection closed");
    tx.rollback().await.unwrap();
}

const JAN_2025: i64 = 1_735_689_600_000;
const FEB_2025: i64 = 1_738_368_000_000;
const MAR_2025: i64 = 1_740_787_200_000;

/// Retention drops a month of the audit log whole once all of it is past
/// the cutoff (migration 18), after moving the rows of claims not final to
/// `audit_kept` under their ids; a month the cutoff falls in stays whole;
/// rows kept go row by row once their claim is final; new rows land in a
/// month made ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_audit_goes_whole_and_open_claims_keep_their_rows() {
    use crate::store::conformance::coordinate;
    let Some((s, store)) = fresh().await else {
        return;
    };
    for m in ["audit_log_m2025_01", "audit_log_m2025_02"] {
        assert!(
            !table_exists(&s, m).await,
            "{m} is not made before it is asked for"
        );
    }
    s.make_audit_months(JAN_2025, MAR_2025 - 1).await.unwrap();
    coordinate(&store, sample_claim("CNSS", "OPEN", "I1"), &[100, 0]).await;
    let now = crate::audit::now_ms();
    store
        .append_audit(&[
            audit_row(JAN_2025 + 1_000, "CNSS/OPEN"),
            audit_row(JAN_2025 + 2_000, "CNSS/eligibility"),
            audit_row(FEB_2025 - 1, "CNSS/GONE"),
            audit_row(FEB_2025 + 1, "CNSS/eligibility"),
            audit_row(FEB_2025 + 5, "CNSS/OPEN"),
            audit_row(now, "partners"),
        ])
        .await
        .unwrap();
    let before = audit_rows(&store).await;
    assert_eq!(before.len(), 6);
    let where_now: String = s
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT tableoid::regclass::TEXT FROM audit_log WHERE at_ms = $1",
            &[&now],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        where_now.starts_with("audit_log_m"),
        "a new row is in its month, made ahead: {where_now}"
    );

    // A cutoff ten days into February: January goes whole (two rows), the
    // open claim's row moved first; February, where the cutoff falls,
    // stays whole.
    let pruned = store.prune_audit(FEB_2025 + 10 * 86_400_000).await.unwrap();
    assert_eq!(pruned, Some(2));
    assert!(!table_exists(&s, "audit_log_m2025_01").await);
    assert_eq!(
        relations_named(&s, "audit_log_m2025_01").await,
        Vec::<String>::new(),
        "the month's indexes freed with it"
    );
    assert_eq!(
        relations_named(&s, "audit_detached_m").await,
        Vec::<String>::new(),
        "its table freed"
    );
    assert!(table_exists(&s, "audit_log_m2025_02").await);
    let after = audit_rows(&store).await;
    let expected: Vec<_> = before
        .iter()
        .filter(|(_, subject, at)| !(*at < FEB_2025 && subject != "CNSS/OPEN"))
        .cloned()
        .collect();
    assert_eq!(after, expected, "the same ids, the kept row in its place");
    let trail: Vec<i64> = store
        .audit_of("CNSS/OPEN")
        .await
        .unwrap()
        .rows
        .iter()
        .map(|e| e.at_ms)
        .collect();
    assert_eq!(trail, vec![JAN_2025 + 1_000, FEB_2025 + 5]);

    // February past the cutoff: it goes too, its open row kept.
    assert_eq!(store.prune_audit(MAR_2025).await.unwrap(), Some(1));
    assert!(!table_exists(&s, "audit_log_m2025_02").await);
    assert_eq!(store.audit_of("CNSS/OPEN").await.unwrap().rows.len(), 2);
    // Append-only, the months and the rows kept alike.
    let c = s.client().await.unwrap();
    for t in ["audit_log", "audit_kept"] {
        let e = c
            .batch_execute(&format!("UPDATE {t} SET outcome = 'x'"))
            .await
            .expect_err("append-only");
        assert!(format!("{e:?}").contains("append-only"), "{t}: {e:?}");
    }
    drop(c);
    // Once the claim is final, its kept rows go row by row.
    store
        .begin_cancel("CNSS", "OPEN", "c", "", 4_000, 4_000)
        .await
        .unwrap();
    store
        .complete_cancel("CNSS", "OPEN", "", 4_000)
        .await
        .unwrap();
    assert_eq!(store.prune_audit(MAR_2025).await.unwrap(), Some(2));
    assert!(store.audit_of("CNSS/OPEN").await.unwrap().rows.is_empty());
    let left = audit_rows(&store).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].1, "partners");
}

/// Dropping a month waits for the audit log's readers at most
/// `LOG_LOCK_TIMEOUT` (0.5 s): the month is left whole to the next pass,
/// and the rows of the rest are still pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_held_by_a_long_reader_waits_for_the_next_pass() {
    let Some((s, store)) = fresh().await else {
        return;
    };
    s.make_audit_months(JAN_2025, JAN_2025).await.unwrap();
    store
        .append_audit(&[
            audit_row(JAN_2025 + 1, "CNSS/eligibility"),
            // Before every month: the default partition's, row by row.
            audit_row(1_000, "CNSS/eligibility"),
        ])
        .await
        .unwrap();
    let mut reader = s.client().await.unwrap();
    let read = reader.transaction().await.unwrap();
    let n: i64 = read
        .query_one("SELECT COUNT(*) FROM audit_all", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let t0 = std::time::Instant::now();
    assert_eq!(store.prune_audit(FEB_2025).await.unwrap(), Some(1));
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    assert!(table_exists(&s, "audit_log_m2025_01").await, "left whole");
    read.rollback().await.unwrap();
    assert_eq!(store.prune_audit(FEB_2025).await.unwrap(), Some(1));
    assert!(!table_exists(&s, "audit_log_m2025_01").await);
    assert!(audit_rows(&store).await.is_empty());
}

/// Migration 18 on a store written before it: the rows written so far are
/// read back under their ids (from `audit_kept`, moved by a rename, not a
/// copy), new rows come after them, and retention prunes them row by row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_written_before_its_months_is_kept_as_it_was() {
    let cfg = crate::store::testing::postgres_config();
    let s = match super::PgStore::new(&cfg, std::path::Path::new(".")) {
        Ok(s) => s,
        Err(e) => {
            crate::store::testing::unreachable(e);
            return;
        }
    };
    let schema = cfg.schema.clone().unwrap();
    {
        let c = match s.client().await {
            Ok(c) => c,
            Err(e) => {
                crate::store::testing::unreachable(e);
                return;
            }
        };
        c.batch_execute(&format!(
            "CREATE SCHEMA \"{schema}\"; CREATE TABLE schema_version (version BIGINT NOT NULL)"
        ))
        .await
        .unwrap();
        for (i, sql) in super::migrations::MIGRATIONS[..17].iter().enumerate() {
            c.batch_execute(sql).await.unwrap();
            c.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&(i as i64 + 1)],
            )
            .await
            .unwrap();
        }
    }
    let s = Arc::new(s);
    let store: Arc<dyn Store> = s.clone();
    store
        .append_audit(&[
            audit_row(1_000, "CNSS/eligibility"),
            audit_row(9_000, "partners"),
        ])
        .await
        .unwrap();
    assert_eq!(s.migrate().await.unwrap(), super::SCHEMA_VERSION);
    let old = audit_rows(&store).await;
    assert_eq!(
        old.iter().map(|r| (r.1.as_str(), r.2)).collect::<Vec<_>>(),
        vec![("CNSS/eligibility", 1_000), ("partners", 9_000)]
    );
    store
        .append_audit(&[audit_row(crate::audit::now_ms(), "partners")])
        .await
        .unwrap();
    let all = audit_rows(&store).await;
    assert_eq!(all.len(), 3);
    assert!(all[2].0 > old[1].0, "the ids go on: {all:?}");
    assert_eq!(store.audit_of("partners").await.unwrap().rows.len(), 2);
    assert_eq!(store.prune_audit(5_000).await.unwrap(), Some(1));
    assert_eq!(audit_rows(&store).await.len(), 2);
}

/// A month whose rows already sit in the default partition is not made
/// (they would have to move first): no error, the next month is made, and
/// those rows are pruned row by row. A month listed but dropped or
/// detached since (by another replica) counts as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_the_default_partition_holds_is_left_to_it() {
    use super::audit::{AuditMonth, Dropped};
    let Some((s, store)) = fresh().await else {
        return;
    };
    store
        .append_audit(&[audit_row(JAN_2025 + 5, "CNSS/eligibility")])
        .await
        .unwrap();
    s.make_audit_months(JAN_2025, FEB_2025).await.unwrap();
    assert!(!table_exists(&s, "audit_log_m2025_01").await);
    assert!(table_exists(&s, "audit_log_m2025_02").await);
    assert_eq!(
        s.drop_audit_month(AuditMonth::of(JAN_2025), super::audit::MOVE_CLAIMS, 7)
            .await
            .unwrap(),
        Dropped::Rows(0)
    );
    // Detached since by another replica, its files not freed yet.
    s.client()
        .await
        .unwrap()
        .batch_execute(DETACH_FEBRUARY)
        .await
        .unwrap();
    assert_eq!(
        s.drop_audit_month(AuditMonth::of(FEB_2025), super::audit::MOVE_CLAIMS, 7)
            .await
            .unwrap(),
        Dropped::Rows(0)
    );
    assert_eq!(audit_rows(&store).await.len(), 1);
    assert_eq!(store.prune_audit(FEB_2025).await.unwrap(), Some(1));
    assert!(audit_rows(&store).await.is_empty());
}

/// A month's move finds the rows it keeps from the claims' side, by
/// batches of claims: the rows of a claim waiting on its partner, of
/// claims coordinated in no closed period (over three batches of two, the
/// last one short), of a closed period not settled
/// (its oldest claim not known, as for a period closed before schema 19),
/// and of a claim created within a day after the month's end, are kept
/// with their ids; the rows of a settled claim (whose cancel is asked:
/// waiting, and final), of a rejected one, of a
/// subject of no claim, of a claim created two days after the month, and
/// of the last claim from more than a day before its creation, go with
/// the month.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_moves_in_batches_and_keeps_every_open_row() {
    use crate::store::conformance::{CompleteStored, coordinate, coordinated, new_claim};
    use crate::store::{CloseUpTo, Outcome};
    use passerelle_domain::{Reason, ReasonCode};
    let Some((s, store)) = fresh().await else {
        return;
    };
    s.make_audit_months(JAN_2025, JAN_2025).await.unwrap();
    const DAY: i64 = 86_400_000;
    // P in a closed period left unsettled, S in a settled one.
    coordinate(&store, sample_claim("CNSS", "P", "IP"), &[100, 0]).await;
    store
        .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 3_000, None)
        .await
        .unwrap();
    coordinate(&store, sample_claim("CNSS", "S", "IS"), &[100, 0]).await;
    store
        .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 3_000, None)
        .await
        .unwrap();
    store
        .settle_period("CNSS", "MUT-A", 2, "VIR", 3_000, None)
        .await
        .unwrap();
    // S's cancel asked after its period was settled: waiting, and final.
    store
        .begin_cancel("CNSS", "S", "c", "", 4_000, 4_000)
        .await
        .unwrap();
    let c = s.client().await.unwrap();
    let firsts: Vec<Option<i64>> = c
        .query("SELECT first_created_ms FROM periods ORDER BY number", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        firsts,
        [Some(1_000), Some(1_000)],
        "the close keeps its oldest claim"
    );
    c.batch_execute("UPDATE periods SET first_created_ms = NULL WHERE number = 1")
        .await
        .unwrap();
    // Open: A, C, D, G (created at 1,000), EDGE (12 hours after the
    // month's end); LATE two days after it; R rejected.
    let open = ["A", "C", "D", "G"];
    for (i, id) in open.iter().enumerate() {
        let invoice = format!("I{i}");
        coordinate(&store, sample_claim("CNSS", id, &invoice), &[100, 0]).await;
    }
    for (id, at) in [("EDGE", FEB_2025 + DAY / 2), ("LATE", FEB_2025 + 2 * DAY)] {
        let mut n = new_claim(sample_claim("CNSS", id, &format!("I-{id}")));
        n.now_ms = at;
        n.lease_until_ms = at + 10_000;
        store.begin_claim(n).await.unwrap();
        store
            .complete_stored("CNSS", id, coordinated(&[100, 0], vec![]), at)
            .await
            .unwrap();
    }
    store
        .begin_claim(new_claim(sample_claim("CNSS", "W", "IW")))
        .await
        .unwrap();
    store
        .begin_claim(new_claim(sample_claim("CNSS", "R", "IR")))
        .await
        .unwrap();
    store
        .complete_stored(
            "CNSS",
            "R",
            Outcome::Rejected(Reason::new(ReasonCode::PartnerRejected, "no")),
            2_000,
        )
        .await
        .unwrap();
    let rows_of = |id: &str| match id {
        "B" => 1_000,
        "C" => 20,
        _ => 3,
    };
    let mut rows = Vec::new();
    for (i, id) in ["A", "B", "C", "D", "G", "P", "W", "S", "R", "LATE"]
        .iter()
        .enumerate()
    {
        // Interleaved in time (so in ids) with the others' rows.
        for k in 0..rows_of(id) {
            rows.push(audit_row(
                JAN_2025 + k * 10 + i as i64,
                &format!("CNSS/{id}"),
            ));
        }
    }
    // EDGE: a row in the month's first hour (more than a day before it was
    // created) and one in its last hour (less).
    rows.push(audit_row(JAN_2025 + 3_600_000, "CNSS/EDGE"));
    rows.push(audit_row(FEB_2025 - 3_600_000, "CNSS/EDGE"));
    rows.sort_by_key(|r| r.at_ms);
    store.append_audit(&rows).await.unwrap();
    let ids_of = |rows: &[(i64, String, i64)], id: &str| -> Vec<(i64, i64)> {
        let subject = format!("CNSS/{id}");
        rows.iter()
            .filter(|r| r.1 == subject)
            .map(|r| (r.0, r.2))
            .collect()
    };
    let all_rows = || async {
        s.client()
            .await
            .unwrap()
            .query("SELECT id, subject, at_ms FROM audit_all ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect::<Vec<(i64, String, i64)>>()
    };
    let before = all_rows().await;
    assert_eq!(before.len(), rows.len());
    let kept = 3 + 20 + 3 + 3 + 3 + 3 + 1;
    assert_eq!(
        s.drop_audit_month(super::audit::AuditMonth::of(JAN_2025), 2, 7)
            .await
            .unwrap(),
        super::audit::Dropped::Rows((rows.len() - kept) as u64)
    );
    assert!(!table_exists(&s, "audit_log_m2025_01").await);
    let after = all_rows().await;
    assert_eq!(after.len(), kept, "{after:?}");
    for id in open.iter().chain(&["P", "W"]) {
        let rows = ids_of(&before, id);
        assert_eq!(rows.len() as i64, rows_of(id), "{id}");
        assert_eq!(ids_of(&after, id), rows, "{id} kept under its ids");
    }
    assert_eq!(
        ids_of(&after, "EDGE"),
        ids_of(&before, "EDGE")[1..],
        "EDGE keeps its row of the last hour only"
    );
    for gone in ["B", "S", "R", "LATE"] {
        assert!(
            ids_of(&after, gone).is_empty(),
            "{gone} went with the month"
        );
    }
}

/// Which collations compare keys as bytes (`Store::slow_collation`).
#[test]
fn byte_order_collations_are_told_from_a_languages() {
    use super::slow_collation as slow;
    for (collate, provider, locale) in [
        ("C", Some("c"), None),
        ("POSIX", Some("c"), None),
        ("C.UTF-8", Some("c"), None),
        ("C.utf8", None, None),
        ("C", Some("b"), Some("C.UTF-8")),
        ("en_US.UTF-8", Some("b"), Some("PG_UNICODE_FAST")),
    ] {
        assert_eq!(
            slow(collate, provider, locale),
            None,
            "{collate} {provider:?}"
        );
    }
    assert_eq!(
        slow("fr_FR.UTF-8", Some("c"), None).as_deref(),
        Some("fr_FR.UTF-8")
    );
    assert_eq!(
        slow("en_US.utf8", None, None).as_deref(),
        Some("en_US.utf8")
    );
    // An ICU database keeps a libc collation in datcollate; its keys are
    // compared by ICU's.
    assert_eq!(
        slow("C.UTF-8", Some("i"), Some("fr")).as_deref(),
        Some("fr (ICU)")
    );
    assert_eq!(slow("Cymraeg", Some("c"), None).as_deref(), Some("Cymraeg"));
}

/// An import reads its mutuelle's members under the coverage locks: a
/// membership ended, and another mutuelle's taking the beneficiary over,
/// committed while the import waited, are what it reads. Before, it read
/// first and waited at the coverage check, then wrote the members it
/// end-dates from that older read: the ended membership ran on, and two
/// mutuelles covered one beneficiary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_reads_its_members_under_the_coverage_locks() {
    use crate::store::RosterImport;
    use crate::store::conformance::{d, sample_member};
    let cfg = crate::store::testing::postgres_config();
    // Advisory locks are the database's: a scheme of this test's own.
    let scheme = format!("RACE-{}", cfg.schema.clone().unwrap_or_default());
    let Some((s, store)) = fresh_with(cfg).await else {
        return;
    };
    let of = |mutuelle: &str, number: &str, beneficiary: &str| {
        let mut m = sample_member(mutuelle, number, beneficiary);
        m.scheme_id = scheme.clone();
        m
    };
    let y = of("MUT-A", "A-Y", "B-1");
    store
        .upsert_members(std::slice::from_ref(&y), 1)
        .await
        .unwrap();
    // Another writer holds the scheme's coverage lock.
    let key = format!("coverage\u{1f}{scheme}");
    let mut held = s.client().await.unwrap();
    let tx = held.transaction().await.unwrap();
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&key],
    )
    .await
    .unwrap();
    // MUT-A's snapshot leaves Y out: Y is end-dated the day before as_of.
    let import = RosterImport {
        mutuelle_id: "MUT-A".into(),
        members: vec![of("MUT-A", "A-W", "B-2")],
        as_of: d("2026-03-01"),
        keep: vec![],
        end_missing: true,
        dry_run: false,
    };
    let importing = {
        let store = store.clone();
        tokio::spawn(async move { store.import_roster(import, 3).await })
    };
    // Until the import waits on that lock.
    until_waiting(
        &s,
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
         AND NOT granted AND ((classid::BIGINT << 32) | objid::BIGINT) = hashtextextended($1, 0))",
        &key,
        || false,
        "the import never waited on the coverage lock",
    )
    .await;
    // Meanwhile Y ends in June 2025 and MUT-C covers B-1 from July.
    let mut y_ended = y.clone();
    y_ended.products[0].end = Some(d("2025-06-30"));
    let mut z = of("MUT-C", "C-Z", "B-1");
    z.products[0].start = d("2025-07-01");
    super::upsert(&tx, &[y_ended.clone(), z], 2).await.unwrap();
    tx.commit().await.unwrap();
    let diff = importing.await.unwrap().unwrap();
    assert_eq!(diff.added, vec!["A-W".to_string()]);
    assert!(diff.end_dated.is_empty(), "Y had ended already: {diff:?}");
    assert_eq!(
        store.get_member("MUT-A", "A-Y").await.unwrap(),
        Some(y_ended)
    );
    assert_eq!(
        store.coverage_conflicts(Some(&scheme), 10).await.unwrap(),
        vec![],
        "one mutuelle per beneficiary and date"
    );
}

/// A sign-in's session is written under a lock on the account's row: a
/// password reset in flight (its row updated, its sessions deleted, not
/// yet committed) is waited for, and the account read again then no
/// longer holds the password the sign-in checked: no session. Read from
/// the statement's snapshot, the old row matched and the session was
/// written after the reset's delete, for the old password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_waits_for_a_reset_in_flight_and_opens_no_session() {
    use crate::store::users::{Session, User, UserRole};
    let Some((s, store)) = fresh().await else {
        return;
    };
    let ama = User {
        login: "ama".into(),
        display_name: "Ama".into(),
        role: UserRole::Manager,
        scope: vec!["MUT-A".into()],
        password_hash: "$argon2id$old".into(),
        totp_secret: String::new(),
        lang: "fr".into(),
        disabled_ms: 0,
        created_ms: 1,
        updated_ms: 1,
        must_change: false,
        password_set_ms: 1,
    };
    assert!(store.add_user(&ama).await.unwrap());
    // The reset, its row updated and the sessions deleted, not committed.
    let mut held = s.client().await.unwrap();
    let reset = held.transaction().await.unwrap();
    reset
        .batch_execute(
            "UPDATE users SET password_hash = '$argon2id$new' WHERE login = 'ama'; \
             DELETE FROM sessions WHERE login = 'ama'",
        )
        .await
        .unwrap();
    let xid: String = reset
        .query_one("SELECT pg_current_xact_id()::TEXT", &[])
        .await
        .unwrap()
        .get(0);
    let session = Session {
        id_hash: "late".into(),
        login: "ama".into(),
        csrf_secret: "c".into(),
        mutuelle_id: "MUT-A".into(),
        created_ms: 5,
        seen_ms: 5,
        address: "127.0.0.1".into(),
    };
    let signing_in = {
        let (store, ama) = (store.clone(), ama.clone());
        tokio::spawn(async move { store.create_session(&session, &ama, 10).await })
    };
    // Until the sign-in waits on the reset's transaction (or, without the
    // lock, has finished).
    until_waiting(
        &s,
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted \
         AND locktype = 'transactionid' AND transactionid::TEXT = $1)",
        &xid,
        || signing_in.is_finished(),
        "the sign-in neither waited nor finished",
    )
    .await;
    reset.commit().await.unwrap();
    assert_eq!(
        signing_in.await.unwrap().unwrap(),
        None,
        "a session for a password reset meanwhile"
    );
    assert_eq!(store.session("late").await.unwrap(), None);
}

/// A NUL in an audited text (a caller's refused claim id, a partner's
/// error text) is written as U+FFFD: PostgreSQL refuses a NUL in any
/// text, and the audit writer retried such a batch for ever, the queue
/// filling and every call of the broker waiting on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audited_nul_never_jams_the_audit_writer() {
    let Some((_s, store)) = fresh().await else {
        return;
    };
    let (sink, _task) = crate::audit::AuditSink::start(store.clone());
    sink.record(crate::store::AuditEntry {
        at_ms: 1,
        direction: crate::store::Direction::In,
        party: "scheme:CNSS".into(),
        method: "CoordinateClaim".into(),
        subject: "CNSS/X\0".into(),
        request_hash: String::new(),
        outcome: "InvalidArgument: claim_id\0".into(),
        trace_id: String::new(),
    })
    .await;
    tokio::time::timeout(std::time::Duration::from_secs(10), sink.flush())
        .await
        .expect("the row is written, not retried for ever");
    let trail = store.audit_of("CNSS/X\u{FFFD}").await.unwrap();
    assert_eq!(trail.rows.len(), 1);
    assert_eq!(trail.rows[0].outcome, "InvalidArgument: claim_id\u{FFFD}");
}
