//! Conformance of `AuthorizationStore`: holds and claims together never
//! pass a ceiling, whatever the interleaving; an authorization leaves
//! `active` once (consumed, cancelled or expired, never two of them).

#[allow(unused_imports)]
use super::*;
use crate::store::authorizations::{
    AuthorizationRecord, AuthorizationState, AuthorizationTerms, Grant,
};

const LIMIT: i64 = 2_000;

fn hold_of(amount: i64, limit: i64) -> Vec<CeilingUse> {
    vec![CeilingUse {
        key: year_key("M-1"),
        amount,
        count: 0,
        limit_amount: Some(limit),
        limit_count: None,
    }]
}

/// An active authorization of MUT-A's member M-1 holding `amount` on its
/// beneficiary-year ceiling (limit `limit`).
pub fn authorization(id: &str, amount: i64, limit: i64) -> AuthorizationRecord {
    let planned = sample_claim("CNSS", id, "planned");
    AuthorizationRecord {
        scheme_id: "CNSS".into(),
        authorization_id: id.into(),
        reference: format!("PA-{id}"),
        mutuelle_id: "MUT-A".into(),
        member_number: "M-1".into(),
        beneficiary_id: planned.beneficiary_id.clone(),
        request_hash: planned.canonical_hash(),
        state: AuthorizationState::Active,
        terms: AuthorizationTerms {
            shares: shares(&[amount.min(1500), 0]),
            planned,
            hold: hold_of(amount, limit),
            tolerance_bp: 1000,
            partner_reference: String::new(),
            product: None,
            extension_hashes: vec![],
        },
        valid_until: d("2026-03-31"),
        expires_ms: 5_000,
        extensions: 0,
        claim_id: String::new(),
        created_ms: 1_000,
        updated_ms: 1_000,
    }
}

fn against(reference: Option<&str>, m: i64) -> Outcome {
    Outcome::Coordinated {
        // Line 1's remainder is 1500, line 2's 4000.
        shares: shares(&[m.min(1500), (m - 1500).max(0)]),
        product: None,
        partner_reference: String::new(),
        consumption: hold_of(m, LIMIT),
        authorization: reference.map(String::from),
    }
}

async fn held(store: &Arc<dyn Store>) -> (i64, i64) {
    let u = store.usage("MUT-A", &[year_key("M-1")]).await.unwrap();
    let used = u.get(&year_key("M-1"));
    (used.amount - used.held_amount, used.held_amount)
}

async fn state(store: &Arc<dyn Store>, id: &str) -> AuthorizationState {
    store
        .authorization("CNSS", id)
        .await
        .unwrap()
        .expect("stored")
        .state
}

pub async fn holds_and_claims_never_pass_a_ceiling(store: Arc<dyn Store>) {
    let a1 = authorization("A1", 1500, LIMIT);
    let Grant::Created(stored) = store.grant_authorization(&a1, u32::MAX).await.unwrap() else {
        panic!("the first authorization is stored")
    };
    assert_eq!(stored, a1);
    assert_eq!(held(&store).await, (0, 1500), "(used, held)");
    // A second hold of 1500 would pass 2000: refused, nothing stored.
    let err = store
        .grant_authorization(&authorization("A2", 1500, LIMIT), u32::MAX)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CeilingConflict(_)), "{err:?}");
    assert!(store.authorization("CNSS", "A2").await.unwrap().is_none());
    // A resend is the stored one; another request under the id is not.
    assert!(matches!(
        store.grant_authorization(&a1, u32::MAX).await.unwrap(),
        Grant::Existing(_)
    ));
    let mut other = a1.clone();
    other.request_hash = "another".into();
    assert!(matches!(
        store.grant_authorization(&other, u32::MAX).await.unwrap(),
        Grant::Modified(_)
    ));
    // A claim not paid against it sees the hold as taken.
    begin(&store, sample_claim("CNSS", "X1", "I1")).await;
    let err = store
        .complete_stored("CNSS", "X1", against(None, 1000), 2_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CeilingConflict(_)), "{err:?}");
    // Paid against it (up to the tolerance, 1600): the hold becomes the
    // claim's use, in one transaction.
    store
        .complete_stored("CNSS", "X1", against(Some("PA-A1"), 1600), 2_000)
        .await
        .unwrap();
    assert_eq!(held(&store).await, (1600, 0));
    let a = store
        .authorization_by_reference("PA-A1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.state, AuthorizationState::Consumed);
    assert_eq!(a.claim_id, "X1");
    // Consumed once: a second claim quoting it is refused, nothing stored;
    // it can no longer be cancelled or expired.
    begin(&store, sample_claim("CNSS", "X2", "I2")).await;
    let err = store
        .complete_stored("CNSS", "X2", against(Some("PA-A1"), 100), 2_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CeilingConflict(_)), "{err:?}");
    assert_eq!(
        store.get_claim("CNSS", "X2").await.unwrap().unwrap().state,
        ClaimState::Received
    );
    for to in [AuthorizationState::Cancelled, AuthorizationState::Expired] {
        assert!(
            !store
                .end_authorization("CNSS", "A1", to, 3_000)
                .await
                .unwrap()
        );
    }
    assert_eq!(held(&store).await, (1600, 0));
    // The claim's cancel gives its use back; nothing is held again.
    store
        .begin_cancel("CNSS", "X1", "cxl-X1", "test", 10_000, 3_000)
        .await
        .unwrap();
    store
        .complete_cancel("CNSS", "X1", "", 3_000)
        .await
        .unwrap();
    assert_eq!(held(&store).await, (0, 0));
    assert_eq!(state(&store, "A1").await, AuthorizationState::Consumed);
    // Its correction is billed against it (X2, stored before and waiting):
    // the use is the correction's, and no hold is released a second time.
    store
        .complete_stored("CNSS", "X2", against(Some("PA-A1"), 1000), 3_500)
        .await
        .unwrap();
    assert_eq!(held(&store).await, (1000, 0));
    let a = store
        .authorization_by_reference("PA-A1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.state, a.claim_id.as_str()),
        (AuthorizationState::Consumed, "X2")
    );
    // One claim at a time: another, while X2 stands, is refused.
    begin(&store, sample_claim("CNSS", "X3", "I3")).await;
    let err = store
        .complete_stored("CNSS", "X3", against(Some("PA-A1"), 100), 3_600)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CeilingConflict(_)), "{err:?}");
    // X2 cancelled in turn, past the authorization's billing grace
    // (expires_ms 5,000): billed no more.
    store
        .begin_cancel("CNSS", "X2", "cxl-X2", "test", 10_000, 4_000)
        .await
        .unwrap();
    store
        .complete_cancel("CNSS", "X2", "", 4_000)
        .await
        .unwrap();
    let err = store
        .complete_stored("CNSS", "X3", against(Some("PA-A1"), 100), 6_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CeilingConflict(_)), "{err:?}");
    assert_eq!(held(&store).await, (0, 0));
}

pub async fn an_authorization_ends_once(store: Arc<dyn Store>) {
    for round in 0..4 {
        let id = format!("E{round}");
        store
            .grant_authorization(&authorization(&id, 1000, LIMIT), u32::MAX)
            .await
            .unwrap();
        let claim = format!("EC{round}");
        begin(&store, sample_claim("CNSS", &claim, &format!("IE{round}"))).await;
        // A cancel, an expiry and a claim race for it: exactly one wins.
        let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
        let (id1, id2, c3, r3) = (id.clone(), id.clone(), claim.clone(), format!("PA-{id}"));
        let (cancelled, expired, consumed) = tokio::join!(
            tokio::spawn(async move {
                s1.end_authorization("CNSS", &id1, AuthorizationState::Cancelled, 4_000)
                    .await
                    .unwrap()
            }),
            tokio::spawn(async move {
                s2.end_authorization("CNSS", &id2, AuthorizationState::Expired, 4_000)
                    .await
                    .unwrap()
            }),
            tokio::spawn(async move {
                s3.complete_stored("CNSS", &c3, against(Some(&r3), 900), 4_000)
                    .await
                    .is_ok()
            }),
        );
        let (cancelled, expired, consumed) =
            (cancelled.unwrap(), expired.unwrap(), consumed.unwrap());
        assert_eq!(
            [cancelled, expired, consumed]
                .iter()
                .filter(|w| **w)
                .count(),
            1,
            "round {round}: {cancelled} {expired} {consumed}"
        );
        let want = if cancelled {
            AuthorizationState::Cancelled
        } else if expired {
            AuthorizationState::Expired
        } else {
            AuthorizationState::Consumed
        };
        assert_eq!(state(&store, &id).await, want);
        // Never held and used at once: the hold is gone either way.
        let (used, held_now) = held(&store).await;
        assert_eq!(held_now, 0, "round {round}");
        assert!(used <= LIMIT);
        if consumed {
            store
                .begin_cancel("CNSS", &claim, &format!("cxl-{claim}"), "t", 10_000, 5_000)
                .await
                .unwrap();
            store
                .complete_cancel("CNSS", &claim, "", 5_000)
                .await
                .unwrap();
        }
    }
    // Due: the active ones past their instant, and only those.
    store
        .grant_authorization(&authorization("D1", 100, LIMIT), u32::MAX)
        .await
        .unwrap();
    let mut later = authorization("D2", 100, LIMIT);
    later.expires_ms = 50_000;
    store.grant_authorization(&later, u32::MAX).await.unwrap();
    let due = store.due_authorizations(10_000, 10).await.unwrap();
    assert_eq!(due, vec![("CNSS".to_string(), "D1".to_string())]);
    assert_eq!(
        store.authorizations_of("MUT-A", 100).await.unwrap().len(),
        6
    );
}

pub async fn concurrent_holds_never_pass_a_ceiling(store: Arc<dyn Store>) {
    // Eight authorizations of 600 on a ceiling of 2000 at once: three fit.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.grant_authorization(&authorization(&format!("C{i}"), 600, LIMIT), u32::MAX)
                .await
        }));
    }
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Grant::Created(_)) => granted += 1,
            Err(StoreError::CeilingConflict(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(granted, 3);
    assert_eq!(held(&store).await, (0, 1800));
}

pub async fn an_extension_adjusts_the_hold(store: Arc<dyn Store>) {
    let a = authorization("S1", 1000, 3_000);
    store.grant_authorization(&a, u32::MAX).await.unwrap();
    let extended = |n: u32, amount: i64| {
        let mut e = a.clone();
        e.extensions = n;
        e.terms.hold = hold_of(amount, 3_000);
        e.terms.extension_hashes = (0..n).map(|i| format!("h{i}")).collect();
        e.valid_until = d("2026-04-30");
        e.updated_ms = 2_000;
        e
    };
    assert!(
        store
            .extend_authorization(&extended(1, 2_500))
            .await
            .unwrap()
    );
    assert_eq!(held(&store).await, (0, 2_500));
    // The same number again (another request came first): refused.
    assert!(
        !store
            .extend_authorization(&extended(1, 2_000))
            .await
            .unwrap()
    );
    // Beyond the ceiling: refused, nothing changed.
    let err = store
        .extend_authorization(&extended(2, 3_100))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CeilingConflict(_)), "{err:?}");
    let now = store.authorization("CNSS", "S1").await.unwrap().unwrap();
    assert_eq!(now.extensions, 1);
    assert_eq!(held(&store).await, (0, 2_500));
    assert!(
        store
            .extend_authorization(&extended(2, 3_000))
            .await
            .unwrap()
    );
    let now = store.authorization("CNSS", "S1").await.unwrap().unwrap();
    assert_eq!((now.extensions, now.valid_until), (2, d("2026-04-30")));
    assert_eq!(now.terms.hold, hold_of(3_000, 3_000));
    assert_eq!(held(&store).await, (0, 3_000));
    // Ended: no extension, the hold released.
    assert!(
        store
            .end_authorization("CNSS", "S1", AuthorizationState::Cancelled, 3_000)
            .await
            .unwrap()
    );
    assert!(!store.extend_authorization(&extended(3, 100)).await.unwrap());
    assert_eq!(held(&store).await, (0, 0));
}

/// A beneficiary's authorizations in force are counted in the grant's own
/// transaction: 20 granted, then two more at once, and never more than 20
/// in force (each refused `AtLimit`, nothing of it written); 19, then two at
/// once: one of them.
pub async fn grants_at_once_never_pass_the_beneficiarys_bound(store: Arc<dyn Store>) {
    const MAX: u32 = 20;
    let in_force = |store: Arc<dyn Store>| async move {
        let beneficiary = authorization("X", 1, LIMIT).beneficiary_id;
        store
            .active_authorizations("CNSS", &beneficiary)
            .await
            .unwrap()
    };
    let at_once = |store: Arc<dyn Store>, ids: [&'static str; 2]| async move {
        let mut tasks = Vec::new();
        for id in ids {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.grant_authorization(&authorization(id, 1, LIMIT), MAX)
                    .await
                    .unwrap()
            }));
        }
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                Grant::Created(_) => created += 1,
                Grant::AtLimit(n) => assert_eq!(n, MAX),
                other => panic!("{other:?}"),
            }
        }
        created
    };
    for i in 0..MAX - 1 {
        let g = store
            .grant_authorization(&authorization(&format!("L{i}"), 1, LIMIT), MAX)
            .await
            .unwrap();
        assert!(matches!(g, Grant::Created(_)), "{g:?}");
    }
    assert_eq!(at_once(store.clone(), ["T1", "T2"]).await, 1);
    assert_eq!(in_force(store.clone()).await, MAX);
    assert_eq!(at_once(store.clone(), ["T3", "T4"]).await, 0);
    assert_eq!(in_force(store.clone()).await, MAX);
    for id in ["T3", "T4"] {
        assert!(store.authorization("CNSS", id).await.unwrap().is_none());
    }
    // Nothing of the refused ones is held.
    assert_eq!(held(&store).await, (0, i64::from(MAX)));
    // A resend of one in force is still answered.
    let resend = store
        .grant_authorization(&authorization("L0", 1, LIMIT), MAX)
        .await
        .unwrap();
    assert!(matches!(resend, Grant::Existing(_)), "{resend:?}");
}
