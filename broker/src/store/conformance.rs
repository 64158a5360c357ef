//! The storage conformance suite: every backend runs these, through
//! [`store_conformance_suite!`](crate::store_conformance_suite). Each check
//! takes a fresh, empty store.

use std::sync::Arc;

use passerelle_domain::{
    CareCategory, CeilingKey, CeilingScope, CeilingUse, Claim, ClaimLine, ClaimState, LineShare,
    Member, Payee, Product, ProductPeriod, ProductRef, Reason, ReasonCode, SchemeOutcome, date,
};

use super::{
    AuditEntry, Begin, ClaimFilter, Direction, NewClaim, Outcome, PeriodState, PutProduct,
    RosterImport, Store, StoreError, Transition,
};

/// Runs every conformance check against stores made by `$make`: a closure
/// returning a future of `Option<Arc<dyn Store>>`, called once a test, each
/// time a fresh empty store. `None` means the backend is not reachable here
/// (a PostgreSQL test outside CI); under CI=true the maker panics instead.
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:expr) => {
        $crate::store_conformance_suite!(@section claims $make;
            begin_claim_is_idempotent_on_scheme_and_claim_id,
            concurrent_duplicates_insert_once,
            duplicate_invoice_is_flagged_until_cancelled,
            completion_is_conditional_and_stores_shares,
            ceilings_are_enforced_by_the_store,
            cancel_restores_what_the_claim_consumed,
            lease_due_hands_a_claim_to_one_worker,
            expedite_makes_a_partners_backlog_due,
            concurrent_writes_fail_alone,
            defer_moves_to_pending_and_schedules,
            list_changed_pages_in_change_order,
            list_claims_filters_pages_and_totals,
            extreme_amounts_never_break_a_listing,
            lease_now_takes_only_waiting_claims,
        );
        $crate::store_conformance_suite!(@section roster $make;
            roster_upsert_get_find,
            coverage_one_mutuelle_per_beneficiary_and_date,
            coverage_race_between_two_mutuelles_lets_one_win,
            roster_import_is_a_snapshot,
        );
        $crate::store_conformance_suite!(@section products $make;
            products_are_versioned_and_immutable_once_used,
        );
        $crate::store_conformance_suite!(@section settlement $make;
            settlement_ties_out_and_recovers_after_settlement,
        );
        $crate::store_conformance_suite!(@section audit $make;
            audit_is_appended_and_read_back,
            partner_activity_and_claim_audit,
            retention_prunes_only_final_claims,
        );
    };
    // One module per sub-trait of `Store` (ClaimStore, RosterStore, ...).
    (@section $section:ident $make:expr; $($name:ident),* $(,)?) => {
        mod $section {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store: Option<std::sync::Arc<dyn $crate::store::Store>> = ($make)().await;
                    if let Some(store) = store {
                        $crate::store::conformance::$name(store).await;
                    }
                }
            )*
        }
    };
}

pub fn d(s: &str) -> date::Date {
    date::parse(s).expect("valid date")
}

/// A two-line claim for tests.
pub fn sample_claim(scheme: &str, claim_id: &str, invoice: &str) -> Claim {
    let line = |b, e, s| ClaimLine {
        act_code: "C1".into(),
        category: CareCategory::Consultation,
        quantity: 1,
        billed: b,
        tariff_base: e,
        scheme_share: s,
        outcome: SchemeOutcome::Covered,
        scheme_reason: String::new(),
    };
    Claim {
        scheme_id: scheme.into(),
        claim_id: claim_id.into(),
        provider_id: "CHU-TOKOIN".into(),
        invoice_number: invoice.into(),
        payee: Payee::Provider,
        beneficiary_id: "TG-0001".into(),
        beneficiary_category: String::new(),
        mutuelle_id: None,
        member_number: None,
        date_of_care: d("2026-03-10"),
        stay: None,
        diagnoses: vec![],
        currency: "XOF".into(),
        lines: vec![line(5000, 5000, 3500), line(12000, 10000, 8000)],
    }
}

fn new_claim(claim: Claim) -> NewClaim {
    NewClaim {
        request_hash: claim.canonical_hash(),
        adjudication_key: format!("adj-{}", claim.claim_id),
        mutuelle_id: "MUT-A".into(),
        member_number: "M-1".into(),
        claim,
        lease_until_ms: 10_000,
        now_ms: 1_000,
    }
}

fn shares(ms: &[i64]) -> Vec<LineShare> {
    ms.iter()
        .enumerate()
        .map(|(i, m)| LineShare {
            sequence: i as u32 + 1,
            mutuelle_share: *m,
            reasons: vec![],
        })
        .collect()
}

fn year_key(subject: &str) -> CeilingKey {
    CeilingKey {
        scope: CeilingScope::BeneficiaryYear,
        subject: subject.into(),
        period: "2026".into(),
    }
}

fn coordinated(ms: &[i64], consumption: Vec<CeilingUse>) -> Outcome {
    Outcome::Coordinated {
        shares: shares(ms),
        product: None,
        partner_reference: "ref".into(),
        consumption,
    }
}

async fn begin(store: &Arc<dyn Store>, c: Claim) -> Begin {
    store.begin_claim(new_claim(c)).await.expect("begin_claim")
}

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
    // Cancel A: the invoice is free again.
    store
        .begin_cancel("CNSS", "A", "cxl-A", "wrong member", 20_000, 2_000)
        .await
        .unwrap();
    store.complete_cancel("CNSS", "A", 3_000).await.unwrap();
    assert!(matches!(
        begin(&store, sample_claim("CNSS", "C", "INV-7")).await,
        Begin::Created(_)
    ));
}

pub async fn completion_is_conditional_and_stores_shares(store: Arc<dyn Store>) {
    begin(&store, sample_claim("CNSS", "CLM-2", "INV-2")).await;
    let t = store
        .complete_claim("CNSS", "CLM-2", coordinated(&[1500, 3000], vec![]), 2_000)
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
        .complete_claim(
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
        .complete_claim(
            "CNSS",
            "X1",
            coordinated(&[1500, 0], vec![use_of(1500)]),
            2_000,
        )
        .await
        .unwrap();
    let err = store
        .complete_claim(
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
        .complete_claim(
            "CNSS",
            "X2",
            coordinated(&[500, 0], vec![use_of(500)]),
            2_000,
        )
        .await
        .unwrap();
    let u = store.usage("MUT-A", &[year_key("M-1")]).await.unwrap();
    assert_eq!(u.get(&year_key("M-1")).amount, 2000);
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
        .complete_claim(
            "CNSS",
            "K1",
            coordinated(&[1000, 0], vec![c(1000, 1)]),
            2_000,
        )
        .await
        .unwrap();
    store
        .complete_claim("CNSS", "K2", coordinated(&[700, 0], vec![c(700, 2)]), 2_000)
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
    let t = store.complete_cancel("CNSS", "K1", 4_000).await.unwrap();
    assert_eq!(t.record().state, ClaimState::Cancelled);
    let after = store
        .usage("MUT-A", std::slice::from_ref(&k))
        .await
        .unwrap()
        .get(&k);
    assert_eq!((after.amount, after.count), (700, 2));
    // A second completion restores nothing more.
    assert!(matches!(
        store.complete_cancel("CNSS", "K1", 5_000).await.unwrap(),
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
        .complete_claim("CNSS", "L1", coordinated(&[0, 0], vec![]), 11_000)
        .await
        .unwrap();
    assert!(store.lease_due(99_000, 5_000, 10).await.unwrap().is_empty());
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
                .complete_claim("CNSS", &id, coordinated(&[0, 100], vec![used]), 5_000)
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

pub async fn expedite_makes_a_partners_backlog_due(store: Arc<dyn Store>) {
    for (id, next) in [("X1", 500_000), ("X2", 12_500)] {
        begin(&store, sample_claim("CNSS", id, id)).await;
        store.defer("CNSS", id, next, "down", 2_000).await.unwrap();
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

pub async fn defer_moves_to_pending_and_schedules(store: Arc<dyn Store>) {
    let Begin::Created(rec) = begin(&store, sample_claim("CNSS", "P1", "I1")).await else {
        panic!()
    };
    let t = store
        .defer("CNSS", "P1", 50_000, "partner missed its deadline", 2_000)
        .await
        .unwrap();
    let pending = t.into_record();
    assert_eq!(pending.state, ClaimState::PendingPartner);
    assert_eq!(pending.next_attempt_ms, Some(50_000));
    assert_eq!(pending.last_error, "partner missed its deadline");
    assert!(pending.change_seq > rec.change_seq, "a visible change");
    assert!(store.lease_due(49_999, 1_000, 10).await.unwrap().is_empty());
    assert_eq!(store.lease_due(50_000, 1_000, 10).await.unwrap().len(), 1);
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
        .complete_claim("CNSS", "C0", coordinated(&[0, 0], vec![]), 2_000)
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

pub fn sample_member(mutuelle: &str, number: &str, beneficiary: &str) -> Member {
    Member {
        mutuelle_id: mutuelle.into(),
        scheme_id: "CNSS".into(),
        beneficiary_id: beneficiary.into(),
        member_number: number.into(),
        household_id: "H-1".into(),
        paid_until: Some(d("2026-12-31")),
        products: vec![ProductPeriod {
            product_id: "ESS".into(),
            start: d("2025-01-01"),
            end: None,
        }],
    }
}

pub async fn roster_upsert_get_find(store: Arc<dyn Store>) {
    let a = sample_member("MUT-A", "M-1", "TG-1");
    // Another mutuelle covered TG-1 before MUT-A: no overlap.
    let mut b = sample_member("MUT-B", "B-9", "TG-1");
    b.products[0].start = d("2023-01-01");
    b.products[0].end = Some(d("2024-12-31"));
    store
        .upsert_members(&[a.clone(), b.clone()], 1_000)
        .await
        .unwrap();
    assert_eq!(
        store.get_member("MUT-A", "M-1").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.get_member("MUT-A", "B-9").await.unwrap(), None);
    let found = store.find_members("CNSS", "TG-1").await.unwrap();
    assert_eq!(found, vec![a.clone(), b]);
    let mut a2 = a.clone();
    a2.paid_until = Some(d("2027-06-30"));
    store
        .upsert_members(std::slice::from_ref(&a2), 2_000)
        .await
        .unwrap();
    assert_eq!(
        store.get_member("MUT-A", "M-1").await.unwrap(),
        Some(a2.clone())
    );
    // A lookup made before the change never answers with the old member.
    let found = store.find_members("CNSS", "TG-1").await.unwrap();
    assert_eq!(found[0], a2);
    assert!(store.find_members("INAM", "TG-1").await.unwrap().is_empty());
}

/// The reproduction of the capture: MUT-B declares a beneficiary MUT-A
/// covers, from a date within MUT-A's coverage.
pub async fn coverage_one_mutuelle_per_beneficiary_and_date(store: Arc<dyn Store>) {
    let a = sample_member("MUT-A", "A-1", "TG-1002");
    store
        .upsert_members(std::slice::from_ref(&a), 1)
        .await
        .unwrap();
    let mut hijack = sample_member("MUT-B", "B-HIJACK", "TG-1002");
    hijack.products[0].start = d("2025-09-01");
    let other = sample_member("MUT-B", "B-2", "TG-2000");
    match store
        .upsert_members(&[other.clone(), hijack.clone()], 2)
        .await
    {
        Err(StoreError::CoverageOverlap(o)) => assert_eq!(
            o,
            vec![super::CoverageOverlap {
                member: 1,
                period: 0,
                from: d("2025-09-01"),
                to: None
            }]
        ),
        other => panic!("overlap accepted: {other:?}"),
    }
    // Nothing of the refused call was written, and routing data is intact.
    assert_eq!(store.get_member("MUT-B", "B-2").await.unwrap(), None);
    assert_eq!(store.get_member("MUT-B", "B-HIJACK").await.unwrap(), None);
    assert_eq!(
        store.find_members("CNSS", "TG-1002").await.unwrap(),
        vec![a.clone()]
    );
    // A snapshot import is held to the same rule, dry run included.
    let import = |dry_run| RosterImport {
        mutuelle_id: "MUT-B".into(),
        members: vec![other.clone(), hijack.clone()],
        as_of: d("2026-11-01"),
        keep: vec![],
        end_missing: true,
        dry_run,
    };
    for dry in [true, false] {
        assert!(
            matches!(
                store.import_roster(import(dry), 3).await,
                Err(StoreError::CoverageOverlap(ref o)) if o.len() == 1 && o[0].member == 1
            ),
            "import (dry run {dry}) must refuse the overlap"
        );
    }
    assert_eq!(store.get_member("MUT-B", "B-2").await.unwrap(), None);
    // Another scheme's beneficiary with the same id is someone else.
    let mut inam = hijack.clone();
    inam.scheme_id = "INAM".into();
    store.upsert_members(&[inam], 4).await.unwrap();
    // The same mutuelle may renumber its own member.
    let mut renumbered = a.clone();
    renumbered.member_number = "A-1-BIS".into();
    store.upsert_members(&[renumbered], 5).await.unwrap();
    // A transfer: once MUT-A's memberships end, MUT-B may start the day after.
    let mut ended = a.clone();
    ended.products[0].end = Some(d("2025-08-31"));
    let mut ended_bis = ended.clone();
    ended_bis.member_number = "A-1-BIS".into();
    store.upsert_members(&[ended, ended_bis], 6).await.unwrap();
    store.upsert_members(&[hijack.clone()], 7).await.unwrap();
    // ... and MUT-A cannot take it back over MUT-B's coverage.
    let mut back = a.clone();
    back.products[0].start = d("2026-01-01");
    back.products[0].end = None;
    assert!(matches!(
        store.upsert_members(&[back], 8).await,
        Err(StoreError::CoverageOverlap(_))
    ));
    assert!(
        store
            .coverage_conflicts(None, 100)
            .await
            .unwrap()
            .is_empty(),
        "the rule leaves nothing to resolve"
    );
}

/// Members of a conflict stored before the coverage rule (each backend's
/// test writes them with raw SQL, as an older version did).
pub fn legacy_conflict_members() -> Vec<Member> {
    let a = sample_member("MUT-A", "A-1", "TG-1002");
    let mut b = sample_member("MUT-B", "B-1", "TG-1002");
    b.products[0].start = d("2025-09-01");
    vec![a, b]
}

/// The operator's view of such a conflict, and its resolution in favour of
/// the first mutuelle: MUT-B's overlapping period is removed (it started
/// within MUT-A's coverage); after that, nothing is left to list.
pub async fn legacy_conflicts_listed_and_resolved(store: Arc<dyn Store>) {
    let conflicts = store.coverage_conflicts(None, 100).await.unwrap();
    assert_eq!(
        conflicts,
        vec![super::CoverageConflict {
            scheme_id: "CNSS".into(),
            beneficiary_id: "TG-1002".into(),
            first: ("MUT-A".into(), "A-1".into()),
            second: ("MUT-B".into(), "B-1".into()),
            from: d("2025-09-01"),
            to: None,
        }]
    );
    assert!(
        store
            .coverage_conflicts(Some("INAM"), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store
            .resolve_coverage("CNSS", "TG-1002", "MUT-Z", None, 2)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let changed = store
        .resolve_coverage("CNSS", "TG-1002", "MUT-A", None, 2)
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].member_number, "B-1");
    assert!(changed[0].products.is_empty());
    assert_eq!(
        store.get_member("MUT-B", "B-1").await.unwrap(),
        Some(changed[0].clone())
    );
    assert!(
        store
            .coverage_conflicts(None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // A transfer ordered by the operator: MUT-A's coverage ends before
    // 2027-01-01 and MUT-C (no membership yet) may then declare it.
    let moved = store
        .resolve_coverage("CNSS", "TG-1002", "MUT-C", Some(d("2027-01-01")), 3)
        .await
        .unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].products[0].end, Some(d("2026-12-31")));
    let mut c = sample_member("MUT-C", "C-1", "TG-1002");
    c.products[0].start = d("2027-01-01");
    store.upsert_members(&[c], 4).await.unwrap();
    // Resolving again changes nothing.
    assert!(
        store
            .resolve_coverage("CNSS", "TG-1002", "MUT-C", Some(d("2027-01-01")), 5)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Two mutuelles declaring the same beneficiaries at the same moment: for
/// each beneficiary exactly one wins, whatever the interleaving.
pub async fn coverage_race_between_two_mutuelles_lets_one_win(store: Arc<dyn Store>) {
    for round in 0..20 {
        let ben = format!("TG-R{round}");
        let a = sample_member("MUT-A", &format!("A-{round}"), &ben);
        let b = sample_member("MUT-B", &format!("B-{round}"), &ben);
        let (s1, s2) = (store.clone(), store.clone());
        let ta = tokio::spawn(async move { s1.upsert_members(&[a], 1).await });
        let tb = tokio::spawn(async move { s2.upsert_members(&[b], 1).await });
        let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
        assert!(
            ra.is_ok() != rb.is_ok(),
            "round {round}: exactly one must win: {ra:?} / {rb:?}"
        );
        for r in [&ra, &rb] {
            if let Err(e) = r {
                assert!(matches!(e, StoreError::CoverageOverlap(_)), "{e:?}");
            }
        }
        let found = store.find_members("CNSS", &ben).await.unwrap();
        assert_eq!(found.len(), 1, "round {round}: {found:?}");
    }
}

pub fn sample_product(mutuelle: &str, version: u32, from: &str) -> Product {
    Product {
        mutuelle_id: mutuelle.into(),
        id: "ESS".into(),
        version,
        name: "Essentiel".into(),
        valid_from: d(from),
        valid_to: None,
        currency: "XOF".into(),
        categories: vec![passerelle_domain::CategoryRule {
            category: CareCategory::Consultation,
            tm_rate_bp: 10_000,
            fixed_per_act: None,
            overrun_rate_bp: 0,
            out_of_basket_rate_bp: 0,
            per_act_limit: None,
            year_limit: None,
            year_count_limit: None,
            waiting_days: 0,
            excluded_diagnoses: vec![],
        }],
        stay_limit: None,
        beneficiary_year_limit: Some(100_000),
        household_year_limit: None,
        excluded_diagnoses: vec![],
        excluded_acts: vec![],
    }
}

async fn put(store: &Arc<dyn Store>, p: &Product) -> Result<PutProduct, StoreError> {
    store
        .put_products(std::slice::from_ref(p))
        .await
        .map(|r| r[0])
}

pub async fn products_are_versioned_and_immutable_once_used(store: Arc<dyn Store>) {
    let v1 = sample_product("MUT-A", 1, "2025-01-01");
    let v2 = sample_product("MUT-A", 2, "2026-07-01");
    assert_eq!(put(&store, &v1).await.unwrap(), PutProduct::Inserted);
    assert_eq!(put(&store, &v1).await.unwrap(), PutProduct::Unchanged);
    assert_eq!(put(&store, &v2).await.unwrap(), PutProduct::Inserted);
    assert_eq!(
        store
            .product_on("MUT-A", "ESS", d("2026-03-10"))
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        store
            .product_on("MUT-A", "ESS", d("2026-07-01"))
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert!(
        store
            .product_on("MUT-A", "ESS", d("2024-12-31"))
            .await
            .unwrap()
            .is_none()
    );
    // Unused: may be corrected in place.
    let mut v1b = v1.clone();
    v1b.name = "Essentiel (corrigé)".into();
    assert_eq!(put(&store, &v1b).await.unwrap(), PutProduct::Replaced);
    // Used by a claim: immutable.
    begin(&store, sample_claim("CNSS", "U1", "I1")).await;
    let out = Outcome::Coordinated {
        shares: shares(&[0, 0]),
        product: Some(ProductRef {
            id: "ESS".into(),
            version: 1,
            name: "Essentiel".into(),
        }),
        partner_reference: String::new(),
        consumption: vec![],
    };
    store
        .complete_claim("CNSS", "U1", out, 2_000)
        .await
        .unwrap();
    let err = put(&store, &v1).await.unwrap_err();
    assert!(matches!(err, StoreError::ProductInUse(_)), "{err:?}");
    assert_eq!(
        store
            .product_on("MUT-A", "ESS", d("2026-03-10"))
            .await
            .unwrap()
            .unwrap(),
        v1b
    );
}

pub async fn audit_is_appended_and_read_back(store: Arc<dyn Store>) {
    let e = |m: &str| AuditEntry {
        at_ms: 1,
        direction: Direction::In,
        party: "scheme:CNSS".into(),
        method: m.into(),
        subject: "CNSS/CLM-1".into(),
        request_hash: "ab".into(),
        outcome: "ok".into(),
    };
    store.append_audit(&[e("a"), e("b")]).await.unwrap();
    store.append_audit(&[e("c")]).await.unwrap();
    let rows = store.read_audit(0, 10).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|(_, e)| e.method.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "b", "c"]
    );
    let tail = store.read_audit(rows[1].0, 10).await.unwrap();
    assert_eq!(tail.len(), 1);
}

async fn coordinate(store: &Arc<dyn Store>, c: Claim, ms: &[i64]) {
    let id = c.claim_id.clone();
    let scheme = c.scheme_id.clone();
    begin(store, c).await;
    store
        .complete_claim(&scheme, &id, coordinated(ms, vec![]), 2_000)
        .await
        .unwrap();
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
    let check = |page: super::ClaimPage| {
        assert_eq!(page.total_count, 2);
        assert_eq!(page.totals.billed, i64::MAX, "clamped, not wrapped");
    };
    check(store.list_claims(&all, 0, 10).await.unwrap());
    let periods = store.list_periods("CNSS", "MUT-A").await.unwrap();
    assert_eq!(periods[0].claim_count, 2);
    assert_eq!(periods[0].totals.mutuelle, 4510);
    store.statement("CNSS", "MUT-A", 0).await.unwrap();
    let closed = store.close_period("CNSS", "MUT-A", 3_000).await.unwrap();
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
    store.complete_cancel("CNSS", "H1", 5_000).await.unwrap();
    check(store.list_claims(&all, 0, 10).await.unwrap());
    store.list_periods("CNSS", "MUT-A").await.unwrap();
    store.statement("CNSS", "MUT-A", 0).await.unwrap();
    store
        .statement("CNSS", "MUT-A", closed.number)
        .await
        .unwrap();
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
}

pub async fn roster_import_is_a_snapshot(store: Arc<dyn Store>) {
    let a = sample_member("MUT-A", "M-1", "TG-1");
    let b = sample_member("MUT-A", "M-2", "TG-2");
    let c = sample_member("MUT-A", "M-3", "TG-3");
    store
        .upsert_members(&[a.clone(), b.clone(), c.clone()], 1)
        .await
        .unwrap();
    let mut b2 = b.clone();
    b2.paid_until = Some(d("2027-12-31"));
    let new = sample_member("MUT-A", "M-9", "TG-9");
    let import = |dry_run| RosterImport {
        mutuelle_id: "MUT-A".into(),
        members: vec![a.clone(), b2.clone(), new.clone()],
        as_of: d("2026-11-01"),
        keep: vec![],
        end_missing: true,
        dry_run,
    };
    let dry = store.import_roster(import(true), 2).await.unwrap();
    assert_eq!(dry.added, vec!["M-9"]);
    assert_eq!(dry.updated, vec!["M-2"]);
    assert_eq!(dry.end_dated, vec!["M-3"]);
    assert_eq!(dry.unchanged, 1);
    assert!(
        store.get_member("MUT-A", "M-9").await.unwrap().is_none(),
        "a dry run writes nothing"
    );
    assert_eq!(
        store.get_member("MUT-A", "M-3").await.unwrap(),
        Some(c.clone())
    );

    let done = store.import_roster(import(false), 2).await.unwrap();
    assert_eq!(done, dry);
    let ended = store
        .get_member("MUT-A", "M-3")
        .await
        .unwrap()
        .expect("end-dated, never deleted");
    assert_eq!(ended.products[0].end, Some(d("2026-10-31")));
    assert!(ended.product_on(d("2026-11-01")).is_none());
    assert!(ended.product_on(d("2026-10-31")).is_some());
    assert_eq!(
        store.get_member("MUT-A", "M-2").await.unwrap(),
        Some(b2.clone())
    );
    // Importing the same snapshot again changes nothing (M-3 is already ended).
    let again = store.import_roster(import(false), 3).await.unwrap();
    assert!(again.added.is_empty() && again.updated.is_empty() && again.end_dated.is_empty());
    // Kept member numbers are never end-dated.
    let keep = RosterImport {
        members: vec![a.clone()],
        keep: vec!["M-2".into()],
        ..import(false)
    };
    let d2 = store.import_roster(keep, 4).await.unwrap();
    assert_eq!(d2.end_dated, vec!["M-9"]);
    assert!(
        store
            .get_member("MUT-A", "M-2")
            .await
            .unwrap()
            .unwrap()
            .products[0]
            .end
            .is_none()
    );
}

pub async fn settlement_ties_out_and_recovers_after_settlement(store: Arc<dyn Store>) {
    coordinate(&store, sample_claim("CNSS", "S1", "I1"), &[1500, 3000]).await;
    let mut member_paid = sample_claim("CNSS", "S2", "I2");
    member_paid.payee = Payee::Member;
    coordinate(&store, member_paid, &[1000, 0]).await;
    begin(&store, sample_claim("CNSS", "S-PENDING", "IP")).await;

    let periods = store.list_periods("CNSS", "MUT-A").await.unwrap();
    assert_eq!(periods.len(), 1);
    let open = &periods[0];
    assert_eq!(
        (open.number, open.state, open.claim_count),
        (1, PeriodState::Open, 2)
    );
    assert_eq!(open.totals.mutuelle, 5500);

    let p1 = store.close_period("CNSS", "MUT-A", 5_000).await.unwrap();
    assert_eq!(
        (p1.number, p1.state, p1.claim_count, p1.net_due()),
        (1, PeriodState::Closed, 2, 5500)
    );
    let st = store.statement("CNSS", "MUT-A", 1).await.unwrap();
    assert_eq!(
        st.lines.iter().map(|l| l.mutuelle).sum::<i64>(),
        p1.totals.mutuelle
    );
    assert_eq!(
        st.lines.iter().map(|l| l.billed).sum::<i64>(),
        p1.totals.billed
    );
    assert_eq!(
        st.lines.iter().map(|l| l.scheme).sum::<i64>(),
        p1.totals.scheme
    );
    let payees: Vec<_> = st
        .lines
        .iter()
        .map(|l| (l.payee_type.as_str(), l.payee_id.as_str()))
        .collect();
    assert!(
        payees.contains(&("provider", "CHU-TOKOIN")) && payees.contains(&("member", "M-1")),
        "{payees:?}"
    );
    // Nothing new: closing again is refused.
    assert!(matches!(
        store
            .close_period("CNSS", "MUT-A", 6_000)
            .await
            .unwrap_err(),
        StoreError::Refused(_)
    ));
    // The open period cannot be settled; the closed one can, once.
    assert!(matches!(
        store
            .settle_period("CNSS", "MUT-A", 2, "VIR-1", 6_000)
            .await
            .unwrap_err(),
        StoreError::Refused(_)
    ));
    let s1 = store
        .settle_period("CNSS", "MUT-A", 1, "VIR-2026-11-001", 7_000)
        .await
        .unwrap();
    assert_eq!(
        (s1.state, s1.reference.as_str()),
        (PeriodState::Settled, "VIR-2026-11-001")
    );
    assert_eq!(
        store
            .settle_period("CNSS", "MUT-A", 1, "VIR-2026-11-001", 8_000)
            .await
            .unwrap(),
        s1
    );
    assert!(matches!(
        store
            .settle_period("CNSS", "MUT-A", 1, "OTHER", 8_000)
            .await
            .unwrap_err(),
        StoreError::Refused(_)
    ));

    // A cancel after settlement creates a recovery in the next period; the
    // settled statement does not change.
    store
        .begin_cancel("CNSS", "S1", "cxl", "duplicate", 9_000, 9_000)
        .await
        .unwrap();
    store.complete_cancel("CNSS", "S1", 9_500).await.unwrap();
    assert_eq!(
        store.statement("CNSS", "MUT-A", 1).await.unwrap().lines,
        st.lines
    );
    coordinate(&store, sample_claim("CNSS", "S3", "I3"), &[500, 0]).await;
    let open = store.statement("CNSS", "MUT-A", 0).await.unwrap();
    assert_eq!(open.period.number, 2);
    assert_eq!(open.recoveries.len(), 1);
    assert_eq!(
        (
            open.recoveries[0].claim_id.as_str(),
            open.recoveries[0].amount,
            open.recoveries[0].from_period
        ),
        ("S1", 4500, 1)
    );
    assert_eq!(open.period.net_due(), 500 - 4500);
    let p2 = store.close_period("CNSS", "MUT-A", 10_000).await.unwrap();
    assert_eq!(
        (p2.claim_count, p2.recoveries, p2.net_due()),
        (1, 4500, -4000)
    );
    // A cancel of a claim never closed into a period raises no recovery.
    coordinate(&store, sample_claim("CNSS", "S4", "I4"), &[700, 0]).await;
    store
        .begin_cancel("CNSS", "S4", "cxl4", "", 11_000, 11_000)
        .await
        .unwrap();
    store.complete_cancel("CNSS", "S4", 11_500).await.unwrap();
    let open = store.statement("CNSS", "MUT-A", 0).await.unwrap();
    assert!(open.lines.is_empty() && open.recoveries.is_empty());
    let all = store.list_periods("CNSS", "MUT-A").await.unwrap();
    assert_eq!(
        all.iter().map(|p| (p.number, p.state)).collect::<Vec<_>>(),
        vec![
            (3, PeriodState::Open),
            (2, PeriodState::Closed),
            (1, PeriodState::Settled)
        ]
    );
}

pub async fn partner_activity_and_claim_audit(store: Arc<dyn Store>) {
    let e = |at, party: &str, subject: &str, outcome: &str| AuditEntry {
        at_ms: at,
        direction: Direction::Out,
        party: party.into(),
        method: "AdjudicateRemainder".into(),
        subject: subject.into(),
        request_hash: "h".into(),
        outcome: outcome.into(),
    };
    store
        .append_audit(&[
            e(10, "mutuelle:MUT-A", "CNSS/C1", "ok"),
            e(
                20,
                "mutuelle:MUT-A",
                "CNSS/C2",
                "partner missed its deadline",
            ),
            e(30, "mutuelle:MUT-B", "CNSS/C1", "ok"),
        ])
        .await
        .unwrap();
    begin(&store, sample_claim("CNSS", "C2", "I2")).await;
    let a = store.partner_activity("MUT-A").await.unwrap();
    assert_eq!((a.last_success_ms, a.last_error_ms, a.pending), (10, 20, 1));
    assert_eq!(a.last_error, "partner missed its deadline");
    let trail = store.audit_of("CNSS/C1").await.unwrap();
    assert_eq!(
        trail.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
        vec![10, 30]
    );
}

pub async fn lease_now_takes_only_waiting_claims(store: Arc<dyn Store>) {
    begin(&store, sample_claim("CNSS", "W1", "I1")).await;
    let r = store
        .lease_now("CNSS", "W1", 5_000, 1_000)
        .await
        .unwrap()
        .expect("waiting");
    assert_eq!((r.attempts, r.next_attempt_ms), (1, Some(6_000)));
    store
        .complete_claim("CNSS", "W1", coordinated(&[0, 0], vec![]), 5_500)
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

pub async fn retention_prunes_only_final_claims(store: Arc<dyn Store>) {
    let (found, want) = store.schema_status().await.unwrap();
    assert_eq!(found, want, "a fresh store is migrated");
    // Claims: open (coordinated, not settled), cancelled, rejected, settled.
    coordinate(&store, sample_claim("CNSS", "R-OPEN", "I1"), &[100, 0]).await;
    coordinate(&store, sample_claim("CNSS", "R-SETTLED", "I2"), &[100, 0]).await;
    store.close_period("CNSS", "MUT-A", 3_000).await.unwrap();
    store
        .settle_period("CNSS", "MUT-A", 1, "VIR", 3_000)
        .await
        .unwrap();
    coordinate(&store, sample_claim("CNSS", "R-OPEN2", "I3"), &[100, 0]).await;
    coordinate(&store, sample_claim("CNSS", "R-CANCELLED", "I4"), &[100, 0]).await;
    store
        .begin_cancel("CNSS", "R-CANCELLED", "c", "", 4_000, 4_000)
        .await
        .unwrap();
    store
        .complete_cancel("CNSS", "R-CANCELLED", 4_000)
        .await
        .unwrap();
    begin(&store, sample_claim("CNSS", "R-REJECTED", "I5")).await;
    store
        .complete_claim(
            "CNSS",
            "R-REJECTED",
            Outcome::Rejected(Reason::new(ReasonCode::PartnerRejected, "no")),
            4_000,
        )
        .await
        .unwrap();
    let row = |at, subject: &str| AuditEntry {
        at_ms: at,
        direction: Direction::In,
        party: "scheme:CNSS".into(),
        method: "CoordinateClaim".into(),
        subject: subject.into(),
        request_hash: "h".into(),
        outcome: "ok".into(),
    };
    // R-OPEN was settled with period 1; R-OPEN2 is coordinated, not settled.
    let subjects = [
        "CNSS/R-OPEN2",
        "CNSS/R-SETTLED",
        "CNSS/R-CANCELLED",
        "CNSS/R-REJECTED",
        "CNSS/eligibility",
    ];
    let old: Vec<_> = subjects.iter().map(|s| row(1_000, s)).collect();
    let recent: Vec<_> = subjects.iter().map(|s| row(9_000, s)).collect();
    store.append_audit(&old).await.unwrap();
    store.append_audit(&recent).await.unwrap();
    let deleted = store.prune_audit(5_000).await.unwrap().expect("not busy");
    assert_eq!(deleted, 4, "old rows of final claims and of other subjects");
    let left: Vec<(i64, String)> = store
        .read_audit(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| (e.at_ms, e.subject))
        .collect();
    assert!(
        left.contains(&(1_000, "CNSS/R-OPEN2".to_string())),
        "an open claim keeps its rows: {left:?}"
    );
    assert_eq!(
        left.iter().filter(|(at, _)| *at == 9_000).count(),
        5,
        "recent rows stay"
    );
    assert_eq!(left.len(), 6);
    assert_eq!(store.prune_audit(5_000).await.unwrap(), Some(0));
}

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
        "not json",
    );
    raw("UPDATE claim_lines SET reasons = '[]'").await;
    assert_eq!(
        store.get_claim("CNSS", "X1").await.unwrap().unwrap(),
        before
    );

    store.close_period("CNSS", "MUT-A", 5_000).await.unwrap();
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
