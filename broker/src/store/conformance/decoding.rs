//! Strict decoding, on every read path: what a newer version may have stored.

#[allow(unused_imports)]
use super::*;
use crate::store::authorizations::AuthorizationState;

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
    store.put_products(&[product], None).await.unwrap();
    raw("UPDATE products SET body = 'not json' WHERE mutuelle_id = 'MUT-A'").await;
    assert_corrupt(store.list_products("MUT-A").await, "product body", "line 1");

    store
        .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 5_000, None)
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
            .settle_period("CNSS", "MUT-A", 1, "VIR-1", 6_000, None)
            .await,
        "period state",
        "reopened",
    );
    raw("UPDATE periods SET state = 'closed'").await;
    let periods = store.list_periods("CNSS", "MUT-A").await.unwrap();
    assert_eq!(periods[1].state, PeriodState::Closed, "nothing was changed");
}

/// What [`stay_act_counts_move_to_their_scope`] ages the store with: the
/// counts of act limits per stay as a store before that scope kept them
/// (`act|...`), and an authorization's hold as its JSON named them
/// (`act-count`). The statements are the same on both backends.
pub const STAY_ACT_KEYS_AS_BEFORE: &str = "\
    UPDATE ceiling_usage SET ceiling_key = 'act|' || substr(ceiling_key, 10) \
        WHERE ceiling_key LIKE 'stay-act|%'; \
    UPDATE claim_consumption SET ceiling_key = 'act|' || substr(ceiling_key, 10) \
        WHERE ceiling_key LIKE 'stay-act|%'; \
    UPDATE prior_authorizations SET body = replace(body, '\"stay-act-count\"', '\"act-count\"')";

/// A store whose consumption the backend's test has aged, then migrated
/// again by its last migration: given the store, returns it migrated.
pub type Remigrate = Box<
    dyn FnOnce(
            Arc<dyn Store>,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Arc<dyn Store>> + Send>>
        + Send,
>;

/// The migration that gave act limits per stay a scope of their own moves
/// a stay's stored count (and the claim's record of it) to that scope, and
/// leaves the calendar counts: a claim written before is read with its
/// stay's count, and its cancellation gives every count back; an
/// authorization's hold written before is released from where the count
/// moved. A stay named like a year ("2026") shared the year's count
/// before: the migration cannot tell the two apart and leaves it to the
/// year.
/// `remigrate` ages the store with [`STAY_ACT_KEYS_AS_BEFORE`] and runs the
/// backend's last migration again.
pub async fn stay_act_counts_move_to_their_scope(store: Arc<dyn Store>, remigrate: Remigrate) {
    let key = |scope, act: &str, period: &str| CeilingKey {
        scope,
        subject: "M-1".into(),
        period: period.into(),
        act: act.into(),
    };
    let stay = key(CeilingScope::StayActCount, "ECHO", "SEJ-1");
    let implicit = key(CeilingScope::StayActCount, "ECHO", "claim:CNSS/S1");
    let stay_2026 = key(CeilingScope::StayActCount, "ECHO", "2026");
    let year_2026 = key(CeilingScope::ActCount, "ECHO", "2026");
    let day = key(CeilingScope::ActCount, "CONS", "2026-03-10");
    let month = key(CeilingScope::ActCount, "CONS", "2026-03");
    let uses: Vec<CeilingUse> = [&stay, &implicit, &stay_2026, &day, &month]
        .into_iter()
        .map(|k| CeilingUse {
            key: k.clone(),
            amount: 0,
            count: 1,
            limit_amount: None,
            limit_count: Some(3),
        })
        .chain([CeilingUse {
            key: year_key("M-1"),
            amount: 1000,
            count: 0,
            limit_amount: Some(50_000),
            limit_count: None,
        }])
        .collect();
    // An authorization holding one act of another stay.
    let held_stay = key(CeilingScope::StayActCount, "ECHO", "SEJ-2");
    let mut pa = authorization("PA-S", 0, 0);
    pa.terms.hold = vec![CeilingUse {
        key: held_stay.clone(),
        amount: 0,
        count: 1,
        limit_amount: None,
        limit_count: Some(3),
    }];
    assert!(matches!(
        store.grant_authorization(&pa, u32::MAX).await.unwrap(),
        crate::store::authorizations::Grant::Created(_)
    ));
    begin(&store, sample_claim("CNSS", "S1", "I1")).await;
    store
        .complete_stored("CNSS", "S1", coordinated(&[1000, 0], uses), 2_000)
        .await
        .unwrap();
    let all = [&stay, &implicit, &stay_2026, &year_2026, &day, &month]
        .map(|k| (*k).clone())
        .into_iter()
        .chain([year_key("M-1"), held_stay.clone()])
        .collect::<Vec<_>>();
    let counts = |u: passerelle_domain::Usage| {
        all.iter()
            .map(|k| (u.get(k).count, u.get(k).amount))
            .collect::<Vec<_>>()
    };
    let written = counts(store.usage("MUT-A", &all).await.unwrap());
    assert_eq!(
        written,
        [
            (1, 0),
            (1, 0),
            (1, 0),
            (0, 0),
            (1, 0),
            (1, 0),
            (0, 1000),
            (1, 0)
        ],
        "as written now: the stay named 2026 apart from the year"
    );
    let store = remigrate(store).await;
    let moved = counts(store.usage("MUT-A", &all).await.unwrap());
    assert_eq!(
        moved,
        [
            (1, 0),
            (1, 0),
            (0, 0),
            (1, 0),
            (1, 0),
            (1, 0),
            (0, 1000),
            (1, 0)
        ],
        "the stays' counts moved, the one named 2026 left to the year"
    );
    store
        .begin_cancel("CNSS", "S1", "cxl-S1", "error", 30_000, 3_000)
        .await
        .unwrap();
    store
        .complete_cancel("CNSS", "S1", "", 4_000)
        .await
        .unwrap();
    assert!(
        store
            .end_authorization("CNSS", "PA-S", AuthorizationState::Cancelled, 4_000)
            .await
            .unwrap()
    );
    let released = counts(store.usage("MUT-A", &all).await.unwrap());
    assert_eq!(
        released,
        [(0, 0); 8],
        "the cancels give every count and the hold back"
    );
}
