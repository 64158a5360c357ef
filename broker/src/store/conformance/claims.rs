//! Conformance of `ClaimStore`.

#[allow(unused_imports)]
use super::*;

pub async fn begin_claim_is_idempotent_on_scheme_and_claim_id(store: Arc<dyn Store>) {
    let c = sample_claim("CNSS", "CLM-1", "INV-1");
    let Begin::Created(rec) = begin(&store, c.clone()).await else {
        panic!("first insert creates")
    };
    assert_eq!(rec.state, ClaimState::Received);
    assert_eq!(rec.claim, c);
    assert_eq!(rec.next_attempt_ms, Some(10_000));
    let Begin::Existing(again) = begin(&store, c.clone()).await else {
        panic!("resend is existing")
    };
    assert_eq!(again, rec);
    let mut modified = c.clone();
    modified.lines[0].billed += 1;
    assert!(matches!(begin(&store, modified).await, Begin::Modified(_)));
    // The same claim id under another scheme is another claim.
    let other = sample_claim("INAM", "CLM-1", "INV-9");
    assert!(matches!(begin(&store, other).await, Begin::Created(_)));
    // Nothing changed by the modified resend.
    let stored = store.get_claim("CNSS", "CLM-1").await.unwrap().unwrap();
    assert_eq!(stored.claim, c);
}

pub async fn concurrent_duplicates_insert_once(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.begin_claim(new_claim(sample_claim("CNSS", "CLM-RACE", "INV-R")))
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Begin::Created(_) => created += 1,
            Begin::Existing(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
}

pub async fn duplicate_invoice_is_flagged_until_cancelled(store: Arc<dyn Store>) {
    assert!(matches!(
        begin(&store, sample_claim("CNSS", "A", "INV-7")).await,
        Begin::Created(_)
    ));
    let Begin::DuplicateInvoice(rec) = begin(&store, sample_claim("CNSS", "B", "INV-7")).await
    else {
        panic!("same invoice under another id is a duplicate")
    };
    assert_eq!(rec.state, ClaimState::Rejected);
    let why = rec.rejection.unwrap();
    assert_eq!(why.code, ReasonCode::DuplicateInvoice);
    assert!(why.message.contains("A"), "{}", why.message);
    // Its detail, said again from the stored row on each read.
    let detail = why.detail.expect("a duplicate's detail");
    assert_eq!(detail.key, "duplicate-invoice");
    assert_eq!(
        (
            detail.args["invoice"].as_str(),
            detail.args["claim"].as_str()
        ),
        ("INV-7", "A")
    );
    let read = store.get_claim("CNSS", "B").await.unwrap().unwrap();
    assert_eq!(read.rejection.and_then(|r| r.detail), Some(detail));
    // Cancel A: the invoice is free again.
    store
        .begin_cancel("CNSS", "A", "cxl-A", "wrong member", 20_000, 2_000)
        .await
        .unwrap();
    store.complete_cancel("CNSS", "A", "", 3_000).await.unwrap();
    assert!(matches!(
        begin(&store, sample_claim("CNSS", "C", "INV-7")).await,
        Begin::Created(_)
    ));
    // The scheme cancels B, rejected, while C holds the invoice: B's
    // cancel goes through (on PostgreSQL it broke the invoice's key, and
    // failed at every resend) and B never holds the invoice again, so a
    // third claim with it is C's duplicate, whatever B's cancel does.
    let t = store
        .begin_cancel("CNSS", "B", "cxl-B", "sent twice", 20_000, 4_000)
        .await
        .unwrap();
    let Transition::Applied(b) = t else {
        panic!("B's cancel begins: {t:?}")
    };
    assert_eq!(b.state, ClaimState::CancelPending);
    let Begin::DuplicateInvoice(d) = begin(&store, sample_claim("CNSS", "D", "INV-7")).await else {
        panic!("C holds the invoice")
    };
    assert!(d.rejection.unwrap().message.contains("claim C"));
    store.complete_cancel("CNSS", "B", "", 5_000).await.unwrap();
    let Begin::DuplicateInvoice(e) = begin(&store, sample_claim("CNSS", "E", "INV-7")).await else {
        panic!("C holds the invoice still")
    };
    assert!(e.rejection.unwrap().message.contains("claim C"));
}

pub async fn completion_is_conditional_and_stores_shares(store: Arc<dyn Store>) {
    begin(&store, sample_claim("CNSS", "CLM-2", "INV-2")).await;
    let t = store
        .complete_stored("CNSS", "CLM-2", coordinated(&[1500, 3000], vec![]), 2_000)
        .await
        .unwrap();
    let Transition::Applied(rec) = t else {
        panic!("applied")
    };
    assert_eq!(rec.state, ClaimState::Coordinated);
    assert_eq!(
        rec.shares
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.mutuelle_share)
            .collect::<Vec<_>>(),
        vec![1500, 3000]
    );
    assert_eq!(rec.next_attempt_ms, None);
    // A second completion (another worker) changes nothing.
    let t = store
        .complete_stored(
            "CNSS",
            "CLM-2",
            Outcome::Rejected(Reason::new(ReasonCode::PartnerRejected, "late")),
            3_000,
        )
        .await
        .unwrap();
    let Transition::Stale(rec2) = t else {
        panic!("stale")
    };
    assert_eq!(rec2, rec);
}

/// A new claim and its outcome in one commit (a rules mutuelle's): stored
/// coordinated with its shares, its ceilings and a change number; nothing
/// at all when a ceiling has no room, or when the key or the invoice is
/// already held (the two-commit path then tells those apart).
pub async fn a_claim_and_its_outcome_commit_together(store: Arc<dyn Store>) {
    let use_of = |amount| CeilingUse {
        key: year_key("M-1"),
        amount,
        count: 1,
        limit_amount: Some(2_000),
        limit_count: None,
    };
    let new = new_claim(sample_claim("CNSS", "ONE-1", "INV-ONE-1"));
    let rec = store
        .begin_coordinated(&new, coordinated(&[1500, 0], vec![use_of(1500)]))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(rec.state, ClaimState::Coordinated);
    assert_eq!(rec.next_attempt_ms, None);
    assert_eq!(rec.request_hash, new.request_hash);
    assert_eq!(rec.adjudication_key, new.adjudication_key);
    assert_eq!(rec.mutuelle_id, "MUT-A");
    assert_eq!(rec.partner_reference, "ref");
    let stored = store.get_claim("CNSS", "ONE-1").await.unwrap().unwrap();
    assert_eq!(stored, rec, "what is answered is what is stored");
    let ms: Vec<i64> = stored
        .shares
        .as_ref()
        .expect("shares")
        .iter()
        .map(|s| s.mutuelle_share)
        .collect();
    assert_eq!(ms, vec![1500, 0]);
    let used = |store: Arc<dyn Store>| async move {
        let u = store.usage("MUT-A", &[year_key("M-1")]).await.unwrap();
        let g = u.get(&year_key("M-1"));
        (g.amount, g.count)
    };
    assert_eq!(used(store.clone()).await, (1500, 1));
    let changed = store.list_changed("CNSS", 0, 10).await.unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].change_seq, rec.change_seq);
    assert_eq!(changed[0].state, ClaimState::Coordinated);

    // The same key again (a resend, or a modified request): nothing.
    let again = store
        .begin_coordinated(&new, coordinated(&[100, 0], vec![use_of(100)]))
        .await
        .unwrap();
    assert_eq!(again, None);
    // Another claim on the same invoice: nothing either.
    let dup = new_claim(sample_claim("CNSS", "ONE-2", "INV-ONE-1"));
    let again = store
        .begin_coordinated(&dup, coordinated(&[100, 0], vec![use_of(100)]))
        .await
        .unwrap();
    assert_eq!(again, None);
    assert_eq!(store.get_claim("CNSS", "ONE-2").await.unwrap(), None);
    // A ceiling without room: refused by name, and no claim stored.
    let full = new_claim(sample_claim("CNSS", "ONE-3", "INV-ONE-3"));
    let err = store
        .begin_coordinated(&full, coordinated(&[600, 0], vec![use_of(600)]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::CeilingConflict(k) if *k == year_key("M-1").storage_key()),
        "{err:?}"
    );
    assert_eq!(store.get_claim("CNSS", "ONE-3").await.unwrap(), None);
    assert_eq!(used(store.clone()).await, (1500, 1), "nothing consumed");
    assert_eq!(store.list_changed("CNSS", 0, 10).await.unwrap().len(), 1);
    // Computed again within the room left, it is stored.
    let rec = store
        .begin_coordinated(&full, coordinated(&[500, 0], vec![use_of(500)]))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(rec.state, ClaimState::Coordinated);
    assert_eq!(used(store.clone()).await, (2000, 2));
    // The resend of a stored claim is answered by the two-commit path.
    assert!(matches!(
        begin(&store, sample_claim("CNSS", "ONE-3", "INV-ONE-3")).await,
        Begin::Existing(r) if r == rec
    ));
    // An outcome this path does not store stores nothing.
    let other = new_claim(sample_claim("CNSS", "ONE-4", "INV-ONE-4"));
    let rejected = Outcome::Rejected(Reason::new(ReasonCode::PartnerRejected, "no"));
    assert_eq!(
        store.begin_coordinated(&other, rejected).await.unwrap(),
        None
    );
    assert_eq!(store.get_claim("CNSS", "ONE-4").await.unwrap(), None);
}

pub async fn ceilings_are_enforced_by_the_store(store: Arc<dyn Store>) {
    let limit = Some(2_000);
    let use_of = |amount| CeilingUse {
        key: year_key("M-1"),
        amount,
        count: 0,
        limit_amount: limit,
        limit_count: None,
    };
    begin(&store, sample_claim("CNSS", "X1", "I1")).await;
    begin(&store, sample_claim("CNSS", "X2", "I2")).await;
    // Both computed on an empty snapshot: 1500 each; only one fits under 2000.
    store
        .complete_stored(
            "CNSS",
            "X1",
            coordinated(&[1500, 0], vec![use_of(1500)]),
            2_000,
        )
        .await
        .unwrap();
    let err = store
        .complete_stored(
            "CNSS",
            "X2",
            coordinated(&[1500, 0], vec![use_of(1500)]),
            2_000,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CeilingConflict(_)), "{err:?}");
    // Nothing of X2 was stored: still awaiting its partner, no shares.
    let x2 = store.get_claim("CNSS", "X2").await.unwrap().unwrap();
    assert_eq!(x2.state, ClaimState::Received);
    assert!(x2.shares.is_none());
    let u = store.usage("MUT-A", &[year_key("M-1")]).await.unwrap();
    assert_eq!(u.get(&year_key("M-1")).amount, 1500);
    // Recomputed on a fresh snapshot: 500 left.
    store
        .complete_stored(
            "CNSS",
            "X2",
            coordinated(&[500, 0], vec![use_of(500)]),
            2_000,
        )
        .await
        .unwrap();
    let u = store.usage("MUT-A", &[year_key("M-1")]).await.unwrap();
    assert_eq!(u.get(&year_key("M-1")).amount, 2000);
    // Several ceilings are all or nothing, whichever comes first in key
    // order, whether the row without room exists or not; the refusal
    // names the ceiling. M-0 and M-9 have room, M-1 has none.
    let room = |subject: &str, amount, count| CeilingUse {
        key: year_key(subject),
        amount,
        count,
        limit_amount: Some(10_000),
        limit_count: Some(3),
    };
    for (i, uses) in [
        vec![room("M-0", 100, 1), use_of(1)],
        vec![use_of(1), room("M-9", 100, 1)],
        vec![room("M-0", 100, 1), room("M-8", 20_000, 1)],
        vec![room("M-0", 100, 1), room("M-7", 100, 4)],
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("X3-{i}");
        begin(&store, sample_claim("CNSS", &id, &format!("I3-{i}"))).await;
        let err = store
            .complete_stored("CNSS", &id, coordinated(&[100, 0], uses.clone()), 2_000)
            .await
            .unwrap_err();
        let refused = uses
            .iter()
            .find(|u| u.key.subject != "M-0" && u.key.subject != "M-9")
            .unwrap()
            .key
            .storage_key();
        assert!(
            matches!(&err, StoreError::CeilingConflict(k) if *k == refused),
            "{i}: {err:?}"
        );
        let keys: Vec<CeilingKey> = ["M-0", "M-1", "M-7", "M-8", "M-9"]
            .into_iter()
            .map(year_key)
            .collect();
        let u = store.usage("MUT-A", &keys).await.unwrap();
        let used: Vec<(i64, u32)> = keys
            .iter()
            .map(|k| (u.get(k).amount, u.get(k).count))
            .collect();
        assert_eq!(used, [(0, 0), (2000, 0), (0, 0), (0, 0), (0, 0)], "{i}");
        let rec = store.get_claim("CNSS", &id).await.unwrap().unwrap();
        assert_eq!(rec.state, ClaimState::Received, "{i}");
        assert!(rec.shares.is_none(), "{i}");
    }
}

/// Usage reads any number of keys alike, from none to more than a
/// product's ceilings could ask for: each key's own figure, zero for a key
/// never used.
pub async fn usage_reads_any_number_of_keys(store: Arc<dyn Store>) {
    let used = ["M-3", "M-17"];
    for (i, subject) in used.iter().enumerate() {
        let id = format!("U{i}");
        begin(&store, sample_claim("CNSS", &id, &format!("IU{i}"))).await;
        let c = CeilingUse {
            key: year_key(subject),
            amount: 100 * (i as i64 + 1),
            count: 1,
            limit_amount: Some(50_000),
            limit_count: None,
        };
        store
            .complete_stored("CNSS", &id, coordinated(&[c.amount, 0], vec![c]), 2_000)
            .await
            .unwrap();
    }
    assert!(store.usage("MUT-A", &[]).await.unwrap().0.is_empty());
    for n in [1, 2, 3, 4, 17, 20, 40, 1025] {
        let keys: Vec<CeilingKey> = (0..n).map(|k| year_key(&format!("M-{k}"))).collect();
        let u = store.usage("MUT-A", &keys).await.unwrap();
        for k in &keys {
            let want = match k.subject.as_str() {
                "M-3" => (100, 1),
                "M-17" => (200, 1),
                _ => (0, 0),
            };
            let got = u.get(k);
            assert_eq!((got.amount, got.count), want, "{n} keys, {}", k.subject);
        }
    }
}

pub async fn cancel_restores_what_the_claim_consumed(store: Arc<dyn Store>) {
    let k = year_key("M-1");
    let c = |amount, count| CeilingUse {
        key: k.clone(),
        amount,
        count,
        limit_amount: Some(50_000),
        limit_count: Some(10),
    };
    begin(&store, sample_claim("CNSS", "K1", "I1")).await;
    begin(&store, sample_claim("CNSS", "K2", "I2")).await;
    store
        .complete_stored(
            "CNSS",
            "K1",
            coordinated(&[1000, 0], vec![c(1000, 1)]),
            2_000,
        )
        .await
        .unwrap();
    store
        .complete_stored("CNSS", "K2", coordinated(&[700, 0], vec![c(700, 2)]), 2_000)
        .await
        .unwrap();
    let before = store
        .usage("MUT-A", std::slice::from_ref(&k))
        .await
        .unwrap()
        .get(&k);
    assert_eq!((before.amount, before.count), (1700, 3));
    let t = store
        .begin_cancel("CNSS", "K1", "cxl-K1", "duplicate", 30_000, 3_000)
        .await
        .unwrap();
    assert_eq!(t.record().state, ClaimState::CancelPending);
    assert_eq!(t.record().cancel_key.as_deref(), Some("cxl-K1"));
    // Asking again changes nothing.
    assert!(matches!(
        store
            .begin_cancel("CNSS", "K1", "cxl-other", "again", 30_000, 3_000)
            .await
            .unwrap(),
        Transition::Stale(_)
    ));
    let t = store
        .complete_cancel(
            "CNSS",
            "K1",
            "reject it in the partner's system by hand",
            4_000,
        )
        .await
        .unwrap();
    assert_eq!(t.record().state, ClaimState::Cancelled);
    // What a person must still do stays on the claim.
    assert_eq!(
        t.record().last_error,
        "reject it in the partner's system by hand"
    );
    let after = store
        .usage("MUT-A", std::slice::from_ref(&k))
        .await
        .unwrap()
        .get(&k);
    assert_eq!((after.amount, after.count), (700, 2));
    // A second completion restores nothing more.
    assert!(matches!(
        store
            .complete_cancel("CNSS", "K1", "", 5_000)
            .await
            .unwrap(),
        Transition::Stale(_)
    ));
    let again = store
        .usage("MUT-A", std::slice::from_ref(&k))
        .await
        .unwrap()
        .get(&k);
    assert_eq!(again, after);
}

pub async fn lease_due_hands_a_claim_to_one_worker(store: Arc<dyn Store>) {
    begin(&store, sample_claim("CNSS", "L1", "I1")).await; // lease until 10_000
    assert!(store.lease_due(9_999, 5_000, 10).await.unwrap().is_empty());
    let (a, b) = tokio::join!(
        store.lease_due(10_000, 5_000, 10),
        store.lease_due(10_000, 5_000, 10)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 1, "one worker gets it");
    let rec = a.into_iter().chain(b).next().unwrap();
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.next_attempt_ms, Some(15_000));
    // Completed claims are never due.
    store
        .complete_stored("CNSS", "L1", coordinated(&[0, 0], vec![]), 11_000)
        .await
        .unwrap();
    assert!(store.lease_due(99_000, 5_000, 10).await.unwrap().is_empty());
}

pub async fn expedite_makes_a_partners_backlog_due(store: Arc<dyn Store>) {
    for (id, next) in [("X1", 500_000), ("X2", 12_500)] {
        begin(&store, sample_claim("CNSS", id, id)).await;
        store
            .defer("CNSS", id, ClaimState::Received, next, "down", 2_000)
            .await
            .unwrap();
    }
    // A claim still asking the partner (RECEIVED, leased) is left alone.
    begin(&store, sample_claim("CNSS", "X3", "X3")).await;
    assert_eq!(store.expedite("MUT-OTHER", 10_000, 5_000).await.unwrap(), 0);
    // X2 is due within the lease: it may be leased right now, it stays.
    assert_eq!(store.expedite("MUT-A", 10_000, 5_000).await.unwrap(), 1);
    let due = store.lease_due(10_000, 5_000, 10).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|r| r.claim.claim_id.as_str()).collect();
    // X3's own lease ends at 10_000: due as before; X1 moved from 500_000.
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"X1") && ids.contains(&"X3"), "{ids:?}");
    assert_eq!(
        store
            .get_claim("CNSS", "X2")
            .await
            .unwrap()
            .unwrap()
            .next_attempt_ms,
        Some(12_500)
    );
    // Leased just now (next attempt = 15_000): not moved again.
    assert_eq!(store.expedite("MUT-A", 10_000, 5_000).await.unwrap(), 0);
}

/// Writes arriving together (SQLite commits them as one group): a refused
/// one undoes only its own changes, the others are all stored.
pub async fn concurrent_writes_fail_alone(store: Arc<dyn Store>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.spawn(async move {
            let id = format!("G{i}");
            begin(&store, sample_claim("CNSS", &id, &id)).await;
            // Odd claims ask for more than the ceiling allows.
            let amount = if i % 2 == 0 { 100 } else { 2_000_000 };
            let used = CeilingUse {
                key: year_key("M-1"),
                amount,
                count: 1,
                limit_amount: Some(1_000_000),
                limit_count: None,
            };
            let r = store
                .complete_stored("CNSS", &id, coordinated(&[0, 100], vec![used]), 5_000)
                .await;
            (i, r)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (i, r) = done.unwrap();
        if i % 2 == 0 {
            assert!(matches!(r, Ok(Transition::Applied(_))), "G{i}: {r:?}");
        } else {
            assert!(
                matches!(r, Err(StoreError::CeilingConflict(_))),
                "G{i}: {r:?}"
            );
        }
    }
    for i in 0..40 {
        let rec = store
            .get_claim("CNSS", &format!("G{i}"))
            .await
            .unwrap()
            .unwrap();
        let want = if i % 2 == 0 {
            ClaimState::Coordinated
        } else {
            ClaimState::Received
        };
        assert_eq!(rec.state, want, "G{i}");
        assert_eq!(
            rec.shares.is_some(),
            i % 2 == 0,
            "G{i}: lines of a refused write"
        );
    }
    let usage = store.usage("MUT-A", &[year_key("M-1")]).await.unwrap();
    assert_eq!(usage.get(&year_key("M-1")).amount, 20 * 100);
    assert_eq!(usage.get(&year_key("M-1")).count, 20);
}

pub async fn defer_moves_to_pending_and_schedules(store: Arc<dyn Store>) {
    let Begin::Created(rec) = begin(&store, sample_claim("CNSS", "P1", "I1")).await else {
        panic!()
    };
    let t = store
        .defer(
            "CNSS",
            "P1",
            ClaimState::Received,
            50_000,
            "partner missed its deadline",
            2_000,
        )
        .await
        .unwrap();
    let pending = t.into_record();
    assert_eq!(pending.state, ClaimState::PendingPartner);
    assert_eq!(pending.next_attempt_ms, Some(50_000));
    assert_eq!(pending.last_error, "partner missed its deadline");
    assert!(pending.change_seq > rec.change_seq, "a visible change");
    assert!(store.lease_due(49_999, 1_000, 10).await.unwrap().is_empty());
    assert_eq!(store.lease_due(50_000, 1_000, 10).await.unwrap().len(), 1);

    // A scheme's cancel begins while an adjudication waits on the
    // mutuelle; that adjudication, put off afterwards, leaves the cancel's
    // lease (its next attempt) and its words as they are.
    begin(&store, sample_claim("CNSS", "P2", "I2")).await;
    store
        .begin_cancel("CNSS", "P2", "cxl-P2", "", 9_000, 3_000)
        .await
        .unwrap();
    let late = store
        .defer("CNSS", "P2", ClaimState::Received, 4_000, "deadline", 3_500)
        .await
        .unwrap();
    assert!(matches!(late, Transition::Stale(_)), "{late:?}");
    let cancelling = store.get_claim("CNSS", "P2").await.unwrap().unwrap();
    assert_eq!(
        (cancelling.state, cancelling.next_attempt_ms),
        (ClaimState::CancelPending, Some(9_000))
    );
    // The cancel's own deferral applies.
    let put_off = store
        .defer(
            "CNSS",
            "P2",
            ClaimState::CancelPending,
            20_000,
            "down",
            9_500,
        )
        .await
        .unwrap()
        .into_record();
    assert_eq!(
        (
            put_off.state,
            put_off.next_attempt_ms,
            put_off.last_error.as_str()
        ),
        (ClaimState::CancelPending, Some(20_000), "down")
    );
}

pub async fn list_changed_pages_in_change_order(store: Arc<dyn Store>) {
    for i in 0..5 {
        begin(
            &store,
            sample_claim("CNSS", &format!("C{i}"), &format!("I{i}")),
        )
        .await;
    }
    begin(&store, sample_claim("INAM", "OTHER", "IX")).await;
    store
        .complete_stored("CNSS", "C0", coordinated(&[0, 0], vec![]), 2_000)
        .await
        .unwrap();
    let page1 = store.list_changed("CNSS", 0, 3).await.unwrap();
    let ids: Vec<_> = page1.iter().map(|r| r.claim.claim_id.as_str()).collect();
    assert_eq!(ids, vec!["C1", "C2", "C3"]);
    let page2 = store
        .list_changed("CNSS", page1[2].change_seq, 10)
        .await
        .unwrap();
    let ids: Vec<_> = page2.iter().map(|r| r.claim.claim_id.as_str()).collect();
    assert_eq!(ids, vec!["C4", "C0"], "C0 moved to the end when it changed");
    assert_eq!(page2[1].state, ClaimState::Coordinated);
    assert!(
        store
            .list_changed("CNSS", page2[1].change_seq, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Two writers (two replicas' stores on one database) create and complete
/// claims while a reader pages through the changes: the reader sees change
/// numbers only rising, and every claim's last change exactly once; a
/// change that commits late is never passed over.
pub async fn changes_are_seen_once_across_writers(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    const PER_WRITER: usize = 120;
    let writer = |store: Arc<dyn Store>, tag: &'static str| {
        tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let claim = sample_claim("CNSS", &format!("{tag}{i}"), &format!("INV-{tag}{i}"));
                // Every other claim in one commit, as a rules mutuelle's.
                if i % 2 == 0 {
                    coordinate(&store, claim, &[0, 0]).await;
                } else {
                    let stored = store
                        .begin_coordinated(&new_claim(claim), coordinated(&[0, 0], vec![]))
                        .await
                        .expect("begin_coordinated");
                    assert!(stored.is_some(), "{tag}{i} stored");
                }
            }
        })
    };
    let writers = [writer(a.clone(), "A"), writer(b.clone(), "B")];
    let mut seen: Vec<(String, u64, ClaimState)> = Vec::new();
    let mut cursor = 0;
    let mut done = false;
    loop {
        let page = a
            .list_changed("CNSS", cursor, 7)
            .await
            .expect("list_changed");
        for r in &page {
            assert!(r.change_seq > cursor, "change numbers only rise");
            cursor = r.change_seq;
            seen.push((r.claim.claim_id.clone(), r.change_seq, r.state));
        }
        if done && page.is_empty() {
            break;
        }
        // One more pass after both writers are done: their last commits.
        done = writers.iter().all(|w| w.is_finished());
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.expect("writer");
    }
    for tag in ["A", "B"] {
        for i in 0..PER_WRITER {
            let id = format!("{tag}{i}");
            let stored = a.get_claim("CNSS", &id).await.unwrap().unwrap();
            let last: Vec<_> = seen
                .iter()
                .filter(|(c, seq, _)| *c == id && *seq == stored.change_seq)
                .collect();
            assert_eq!(last.len(), 1, "{id}: its last change seen once");
            assert_eq!(last[0].2, ClaimState::Coordinated, "{id}");
        }
    }
}

pub async fn list_claims_filters_pages_and_totals(store: Arc<dyn Store>) {
    // sample_claim: B = 5000 + 12000, S = 3500 + 8000.
    for i in 0..5 {
        coordinate(
            &store,
            sample_claim("CNSS", &format!("L{i}"), &format!("I{i}")),
            &[1500, 3000],
        )
        .await;
    }
    begin(&store, sample_claim("CNSS", "L-PENDING", "IP")).await;
    let mut other = sample_claim("CNSS", "L-OLD", "IO");
    other.date_of_care = d("2025-06-01");
    begin(&store, other).await;
    begin(&store, sample_claim("INAM", "L-INAM", "IN")).await;

    let all = ClaimFilter {
        scheme_id: Some("CNSS".into()),
        ..Default::default()
    };
    let page = store.list_claims(&all, 0, 3).await.unwrap();
    assert_eq!(page.total_count, 7);
    assert_eq!(page.rows.len(), 3);
    assert_eq!(page.totals.billed, 7 * 17_000);
    assert_eq!(page.totals.scheme, 7 * 11_500);
    assert_eq!(page.totals.mutuelle, 5 * 4_500);
    assert_eq!(
        page.totals.patient(),
        page.totals.billed - page.totals.scheme - page.totals.mutuelle
    );
    let next = store.list_claims(&all, page.rows[2].pk, 10).await.unwrap();
    let ids: Vec<_> = page
        .rows
        .iter()
        .chain(&next.rows)
        .map(|r| r.claim_id.as_str())
        .collect();
    assert_eq!(
        ids,
        vec!["L0", "L1", "L2", "L3", "L4", "L-PENDING", "L-OLD"]
    );

    let coordinated_only = ClaimFilter {
        state: Some(ClaimState::Coordinated),
        ..all.clone()
    };
    assert_eq!(
        store
            .list_claims(&coordinated_only, 0, 100)
            .await
            .unwrap()
            .total_count,
        5
    );
    // A cancelled claim is listed and counted, but its amounts no longer
    // stand: the totals leave them out, unless cancelled claims are asked.
    store
        .begin_cancel("CNSS", "L4", "cxl-L4", "", 9_000, 9_000)
        .await
        .unwrap();
    store
        .complete_cancel("CNSS", "L4", "", 9_500)
        .await
        .unwrap();
    let page = store.list_claims(&all, 0, 100).await.unwrap();
    assert_eq!(page.total_count, 7);
    assert_eq!(
        (page.totals.billed, page.totals.scheme, page.totals.mutuelle),
        (6 * 17_000, 6 * 11_500, 4 * 4_500)
    );
    let cancelled = ClaimFilter {
        state: Some(ClaimState::Cancelled),
        ..all.clone()
    };
    let page = store.list_claims(&cancelled, 0, 100).await.unwrap();
    assert_eq!(
        (page.total_count, page.totals.billed, page.totals.mutuelle),
        (1, 17_000, 4_500)
    );
    let in_2025 = ClaimFilter {
        care_from: Some(d("2025-01-01")),
        care_to: Some(d("2025-12-31")),
        ..all.clone()
    };
    let p = store.list_claims(&in_2025, 0, 100).await.unwrap();
    assert_eq!(
        p.rows
            .iter()
            .map(|r| r.claim_id.as_str())
            .collect::<Vec<_>>(),
        vec!["L-OLD"]
    );
    let by_mutuelle = ClaimFilter {
        mutuelle_id: Some("MUT-A".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_claims(&by_mutuelle, 0, 100)
            .await
            .unwrap()
            .total_count,
        8
    );
    // By member number and by provider.
    let mut elsewhere = sample_claim("CNSS", "L-CMS", "IC");
    elsewhere.provider_id = "CMS-BE".into();
    begin(&store, elsewhere).await;
    let count = |member: Option<&str>, provider: Option<&str>| {
        let f = ClaimFilter {
            mutuelle_id: Some("MUT-A".into()),
            member_number: member.map(str::to_string),
            provider_id: provider.map(str::to_string),
            ..Default::default()
        };
        let store = store.clone();
        async move { store.list_claims(&f, 0, 100).await.unwrap() }
    };
    let cms = count(None, Some("CMS-BE")).await;
    assert_eq!(
        cms.rows
            .iter()
            .map(|r| r.claim_id.as_str())
            .collect::<Vec<_>>(),
        vec!["L-CMS"]
    );
    assert_eq!(count(Some("M-1"), None).await.total_count, 9);
    assert_eq!(count(Some("M-2"), None).await.total_count, 0);
    assert_eq!(count(Some("M-1"), Some("CMS-BE")).await.total_count, 1);
}

/// A stored row at the edge of i64 (written before the input bounds, or by
/// any path that missed them) never makes a listing, a statement or a
/// period close fail: sums are made in i128 and clamped.
pub async fn extreme_amounts_never_break_a_listing(store: Arc<dyn Store>) {
    coordinate(&store, sample_claim("CNSS", "N1", "I1"), &[1500, 3000]).await;
    let mut huge = sample_claim("CNSS", "H1", "I2");
    huge.lines.truncate(1);
    huge.lines[0].billed = i64::MAX;
    huge.lines[0].tariff_base = i64::MAX;
    huge.lines[0].scheme_share = i64::MAX - 10;
    coordinate(&store, huge, &[10]).await;
    let all = ClaimFilter {
        scheme_id: Some("CNSS".into()),
        ..Default::default()
    };
    let check = |page: crate::store::ClaimPage| {
        assert_eq!(page.total_count, 2);
        assert_eq!(page.totals.billed, i64::MAX, "clamped, not wrapped");
    };
    check(store.list_claims(&all, 0, 10).await.unwrap());
    let periods = store.list_periods("CNSS", "MUT-A").await.unwrap();
    assert_eq!(periods[0].claim_count, 2);
    assert_eq!(periods[0].totals.mutuelle, 4510);
    store.statement("CNSS", "MUT-A", 0).await.unwrap();
    let closed = store
        .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 3_000, None)
        .await
        .unwrap();
    assert_eq!(closed.totals.mutuelle, 4510);
    store
        .statement("CNSS", "MUT-A", closed.number)
        .await
        .unwrap();
    // Cancelled after the close: a recovery is raised; nothing fails.
    store
        .begin_cancel("CNSS", "H1", "cxl-H1", "error", 30_000, 4_000)
        .await
        .unwrap();
    store
        .complete_cancel("CNSS", "H1", "", 5_000)
        .await
        .unwrap();
    // Cancelled, its amounts are left out of the listing's totals, and
    // still clamped when cancelled claims are listed.
    let page = store.list_claims(&all, 0, 10).await.unwrap();
    assert_eq!((page.total_count, page.totals.billed), (2, 17_000));
    let cancelled = ClaimFilter {
        state: Some(ClaimState::Cancelled),
        ..all.clone()
    };
    let page = store.list_claims(&cancelled, 0, 10).await.unwrap();
    assert_eq!((page.total_count, page.totals.billed), (1, i64::MAX));
    store.list_periods("CNSS", "MUT-A").await.unwrap();
    store.statement("CNSS", "MUT-A", 0).await.unwrap();
    store
        .statement("CNSS", "MUT-A", closed.number)
        .await
        .unwrap();
}

pub async fn lease_now_takes_only_waiting_claims(store: Arc<dyn Store>) {
    // W1's first request holds it until 10,000 (it is asking the
    // mutuelle): not taken before then, taken after (the request died).
    begin(&store, sample_claim("CNSS", "W1", "I1")).await;
    assert!(
        store
            .lease_now("CNSS", "W1", 9_999, 1_000)
            .await
            .unwrap()
            .is_none()
    );
    let r = store
        .lease_now("CNSS", "W1", 10_000, 1_000)
        .await
        .unwrap()
        .expect("waiting");
    assert_eq!((r.attempts, r.next_attempt_ms), (1, Some(11_000)));
    // Deferred (its time a back-off), it is taken at once.
    store
        .defer("CNSS", "W1", ClaimState::Received, 50_000, "down", 10_500)
        .await
        .unwrap();
    let r = store
        .lease_now("CNSS", "W1", 10_600, 1_000)
        .await
        .unwrap()
        .expect("deferred");
    assert_eq!(
        (r.state, r.next_attempt_ms),
        (ClaimState::PendingPartner, Some(11_600))
    );
    store
        .complete_stored("CNSS", "W1", coordinated(&[0, 0], vec![]), 10_700)
        .await
        .unwrap();
    assert!(
        store
            .lease_now("CNSS", "W1", 7_000, 1_000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .lease_now("CNSS", "NOPE", 7_000, 1_000)
            .await
            .unwrap()
            .is_none()
    );
}

/// A claim rejected because the broker refused its partner's answer owes
/// the partner a cancel of that adjudication: the worker takes it (due at
/// once, its attempts counted anew; put off; taken now) until it is sent;
/// the scheme's view (state, change number, time of change) never moves,
/// a deferral meant for a claim waiting does not apply to it, and a
/// scheme's cancel of the claim still goes through. Any other rejection
/// owes nothing.
pub async fn a_refused_answer_owes_its_partner_a_cancel(store: Arc<dyn Store>) {
    let refused = || {
        Outcome::Rejected(Reason::new(
            ReasonCode::PartnerAnswerInvalid,
            "mutuelle share above the remainder",
        ))
    };
    for id in ["R1", "R2"] {
        begin(&store, sample_claim("CNSS", id, id)).await;
    }
    // R1 waited on its partner before its answer came.
    store.lease_due(10_000, 500, 10).await.unwrap();
    let complete = |id: &'static str, outcome: Outcome, withdrawal: Option<&'static str>| {
        let store = store.clone();
        async move {
            let rec = store.get_claim("CNSS", id).await.unwrap().unwrap();
            store
                .complete_claim(&rec.claim, outcome, withdrawal, 11_000)
                .await
                .unwrap()
                .into_record()
        }
    };
    let r1 = complete("R1", refused(), Some("cxl-R1")).await;
    // R2, still waiting, and R1's cancel owed wait on the partner (its
    // count and oldest, for the metrics and the partners' pages).
    let waiting = store.partner_activity("MUT-A").await.unwrap();
    assert_eq!(waiting.pending, 2);
    assert_eq!(r1.state, ClaimState::Rejected);
    assert_eq!(r1.cancel_key.as_deref(), Some("cxl-R1"));
    assert_eq!(r1.next_attempt_ms, Some(11_000), "due at once");
    assert_eq!(r1.attempts, 0, "its attempts counted anew");
    // A partner's own refusal owes nothing.
    let r2 = complete(
        "R2",
        Outcome::Rejected(Reason::new(ReasonCode::PartnerRejected, "not a member")),
        None,
    )
    .await;
    assert_eq!((r2.cancel_key, r2.next_attempt_ms), (None, None));
    // Leased, put off: still REJECTED, same change number and time.
    let due = store.lease_due(11_000, 5_000, 10).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|r| r.claim.claim_id.as_str()).collect();
    assert_eq!(ids, ["R1"]);
    assert_eq!(due[0].attempts, 1);
    let later = store
        .withdrawal_tried("CNSS", "R1", Some(900_000), "partner down")
        .await
        .unwrap();
    let Transition::Applied(later) = later else {
        panic!("{later:?}")
    };
    assert_eq!(later.state, ClaimState::Rejected);
    assert_eq!(
        (later.change_seq, later.updated_ms),
        (r1.change_seq, r1.updated_ms),
        "the scheme sees no change"
    );
    assert_eq!(later.next_attempt_ms, Some(900_000));
    assert_eq!(later.last_error, "partner down");
    // A deferral of an adjudication (one that lost a race) leaves it.
    assert!(matches!(
        store
            .defer("CNSS", "R1", ClaimState::Received, 30_000, "x", 12_000)
            .await
            .unwrap(),
        Transition::Stale(_)
    ));
    // Not brought forward with the partner's backlog (that reads the
    // claims waiting only); taken by `retry now`.
    assert_eq!(store.expedite("MUT-A", 20_000, 5_000).await.unwrap(), 0);
    assert!(
        store
            .lease_now("CNSS", "R1", 20_000, 1_000)
            .await
            .unwrap()
            .is_some()
    );
    // Sent: nothing more to do, and nothing the scheme reads changes.
    let done = store
        .withdrawal_tried("CNSS", "R1", None, "")
        .await
        .unwrap();
    let Transition::Applied(done) = done else {
        panic!("{done:?}")
    };
    assert_eq!(done.state, ClaimState::Rejected);
    assert_eq!(done.next_attempt_ms, None);
    let after = store.partner_activity("MUT-A").await.unwrap();
    assert_eq!(
        (after.pending, after.oldest_waiting_ms),
        (0, 0),
        "the cancel sent, nothing waits: R2 rejected by its partner owes nothing"
    );
    assert_eq!(done.last_error, "");
    assert_eq!(
        (done.change_seq, done.updated_ms),
        (r1.change_seq, r1.updated_ms)
    );
    assert!(
        store
            .lease_due(99_000_000, 5_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .lease_now("CNSS", "R1", 22_000, 1_000)
            .await
            .unwrap()
            .is_none(),
        "not waiting any more"
    );
    for id in ["R1", "R2"] {
        assert!(matches!(
            store
                .withdrawal_tried("CNSS", id, Some(30_000), "x")
                .await
                .unwrap(),
            Transition::Stale(_)
        ));
    }
    // A scheme's cancel of a claim still owing its cancel takes it over.
    begin(&store, sample_claim("CNSS", "R3", "R3")).await;
    complete("R3", refused(), Some("cxl-R3")).await;
    let t = store
        .begin_cancel("CNSS", "R3", "cxl-R3", "billed in error", 40_000, 23_000)
        .await
        .unwrap();
    assert_eq!(t.record().state, ClaimState::CancelPending);
    assert!(matches!(
        store
            .withdrawal_tried("CNSS", "R3", None, "")
            .await
            .unwrap(),
        Transition::Stale(_)
    ));
}
