//! Strict decoding, on every read path: what a newer version may have stored.

#[allow(unused_imports)]
use super::*;

/// Raw SQL on a backend's own connection, for the checks that must write
/// what the trait never writes (rows of another version).
pub type RawSql = Box<
    dyn Fn(&'static str) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

fn assert_corrupt<T: std::fmt::Debug>(got: Result<T, StoreError>, what: &str, value: &str) {
    match got {
        Err(StoreError::Corrupt(m)) => {
            assert!(m.contains(what) && m.contains(value), "{m}");
            assert!(m.contains("newer version"), "{m}");
        }
        other => panic!("{what} {value:?}: want a corruption error, got {other:?}"),
    }
}

/// Strict decoding: a state, reason code, line reasons or period state this
/// version does not know (a newer replica may have written it) is an error
/// that names the value, on every read path, never a default; once the row
/// is readable again, so is the claim, unchanged. `raw` runs SQL on the
/// backend (the SQLite and PostgreSQL statements below are the same); the
/// period state's CHECK must be off (`periods_check_off`, per backend).
pub async fn unknown_stored_values_are_corruption(
    store: Arc<dyn Store>,
    raw: RawSql,
    periods_check_off: &'static str,
) {
    coordinate(&store, sample_claim("CNSS", "X1", "I1"), &[1500, 3000]).await;
    let before = store.get_claim("CNSS", "X1").await.unwrap().unwrap();
    let all = ClaimFilter {
        scheme_id: Some("CNSS".into()),
        ..Default::default()
    };

    raw("UPDATE claims SET state = 'on_hold' WHERE claim_id = 'X1'").await;
    assert_corrupt(
        store.get_claim("CNSS", "X1").await,
        "claim state",
        "on_hold",
    );
    assert_corrupt(
        store.list_changed("CNSS", 0, 10).await,
        "claim state",
        "on_hold",
    );
    assert_corrupt(
        store.list_claims(&all, 0, 10).await,
        "claim state",
        "on_hold",
    );
    raw("UPDATE claims SET state = 'coordinated' WHERE claim_id = 'X1'").await;

    raw("UPDATE claims SET rejection_code = 'HOLD_EXPIRED' WHERE claim_id = 'X1'").await;
    assert_corrupt(
        store.get_claim("CNSS", "X1").await,
        "reason code",
        "HOLD_EXPIRED",
    );
    raw("UPDATE claims SET rejection_code = NULL WHERE claim_id = 'X1'").await;

    raw("UPDATE claim_lines SET reasons = '[{\"code\":\"HOLD_EXPIRED\",\"message\":\"\"}]'").await;
    assert_corrupt(
        store.get_claim("CNSS", "X1").await,
        "line reasons",
        "HOLD_EXPIRED",
    );
    raw("UPDATE claim_lines SET reasons = 'not json'").await;
    assert_corrupt(
        store.get_claim("CNSS", "X1").await,
        "line reasons",
        "line 1 column",
    );
    raw("UPDATE claim_lines SET reasons = '[]'").await;
    assert_eq!(
        store.get_claim("CNSS", "X1").await.unwrap().unwrap(),
        before
    );

    // Member and product bodies, on their first read (the SQLite caches
    // have not seen them).
    let member = sample_member("MUT-A", "A-9", "TG-9");
    store.upsert_members(&[member], 1).await.unwrap();
    raw("UPDATE members SET body = '{\"beneficiary_id\": 12}' WHERE member_number = 'A-9'").await;
    assert_corrupt(
        store.get_member("MUT-A", "A-9").await,
        "member body",
        "line 1",
    );
    let product = sample_product("MUT-A", 1, "2025-01-01");
    store.put_products(&[product]).await.unwrap();
    raw("UPDATE products SET body = 'not json' WHERE mutuelle_id = 'MUT-A'").await;
    assert_corrupt(store.list_products("MUT-A").await, "product body", "line 1");

    store
        .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 5_000)
        .await
        .unwrap();
    raw(periods_check_off).await;
    raw("UPDATE periods SET state = 'reopened'").await;
    assert_corrupt(
        store.list_periods("CNSS", "MUT-A").await,
        "period state",
        "reopened",
    );
    assert_corrupt(
        store.statement("CNSS", "MUT-A", 1).await,
        "period state",
        "reopened",
    );
    assert_corrupt(
        store
            .settle_period("CNSS", "MUT-A", 1, "VIR-1", 6_000)
            .await,
        "period state",
        "reopened",
    );
    raw("UPDATE periods SET state = 'closed'").await;
    let periods = store.list_periods("CNSS", "MUT-A").await.unwrap();
    assert_eq!(periods[1].state, PeriodState::Closed, "nothing was changed");
}
