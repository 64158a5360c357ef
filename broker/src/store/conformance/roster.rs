//! Conformance of `RosterStore`.

#[allow(unused_imports)]
use super::*;

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

/// What routing reads (`Store::members_for`): the card's record or all of
/// a beneficiary's, in the order `find_members` gives, and for a claim the
/// record stored under its key, with or without members.
pub async fn members_for_routing_and_the_stored_claim(store: Arc<dyn Store>) {
    let a = sample_member("MUT-A", "M-1", "TG-1");
    let mut b = sample_member("MUT-B", "B-9", "TG-1");
    b.products[0].start = d("2023-01-01");
    b.products[0].end = Some(d("2024-12-31"));
    store
        .upsert_members(&[b.clone(), a.clone()], 1_000)
        .await
        .unwrap();
    let claim = sample_claim("CNSS", "K-1", "F-1");
    // With and without a claim to look for (nothing stored yet): the same
    // members.
    for id in [None, Some("K-1")] {
        let (all, stored) = store.members_for("CNSS", "TG-1", None, id).await.unwrap();
        assert_eq!(all, vec![a.clone(), b.clone()], "claim {id:?}");
        assert!(stored.is_none(), "nothing stored yet");
        let card = Some(("MUT-B", "B-9"));
        let (one, _) = store.members_for("CNSS", "TG-1", card, id).await.unwrap();
        assert_eq!(one, vec![b.clone()]);
        let unknown = Some(("MUT-B", "B-0"));
        let (none, _) = store
            .members_for("CNSS", "TG-1", unknown, id)
            .await
            .unwrap();
        assert!(none.is_empty());
    }
    begin(&store, claim.clone()).await;
    let stored_claim = |r: Option<ClaimRecord>| r.map(|r| (r.claim.claim_id, r.state));
    let expected = Some(("K-1".to_string(), ClaimState::Received));
    let (all, stored) = store
        .members_for("CNSS", "TG-1", None, Some("K-1"))
        .await
        .unwrap();
    assert_eq!(all, vec![a.clone(), b.clone()]);
    assert_eq!(stored_claim(stored), expected);
    let card = Some(("MUT-A", "M-1"));
    let (one, stored) = store
        .members_for("CNSS", "TG-1", card, Some("K-1"))
        .await
        .unwrap();
    assert_eq!(one, vec![a.clone()]);
    assert_eq!(stored_claim(stored), expected);
    // A card no record answers to: the stored claim alone.
    let unknown = Some(("MUT-B", "B-0"));
    let (none, stored) = store
        .members_for("CNSS", "TG-1", unknown, Some("K-1"))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(stored_claim(stored), expected);
    // A beneficiary without a record: the stored claim all the same (a
    // resend after the roster changed).
    let (none, stored) = store
        .members_for("CNSS", "TG-9", None, Some("K-1"))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(stored_claim(stored), expected);
    // Another scheme's claim of that id is another claim; without a claim
    // id nothing is looked for.
    let (_, other) = store
        .members_for("INAM", "TG-1", None, Some("K-1"))
        .await
        .unwrap();
    assert!(other.is_none());
    let (_, unasked) = store.members_for("CNSS", "TG-1", None, None).await.unwrap();
    assert!(unasked.is_none());
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
            vec![crate::store::CoverageOverlap {
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

/// A scheme beneficiary id shared by more members of one mutuelle than
/// renumbering explains (a placeholder written for members without a
/// scheme id) is refused, in a call, across calls and in an import, dry
/// run included, each member of the crowd named; nothing is written, and
/// members that leave the crowd pass.
pub async fn a_beneficiary_id_is_not_a_placeholder(store: Arc<dyn Store>) {
    use passerelle_domain::validate::MAX_MEMBERS_PER_BENEFICIARY as MAX;
    let member = |n: usize| sample_member("MUT-A", &format!("P-{n}"), "NEANT");
    let named = |e: &StoreError| -> Vec<String> {
        match e {
            StoreError::Invalid(v) => v.iter().map(|f| f.field.clone()).collect(),
            other => panic!("expected the bound's refusal, got {other:?}"),
        }
    };
    // The bound itself passes (renumberings), and another mutuelle's
    // members of that id (covering other dates), or another scheme's,
    // count apart.
    let at_bound: Vec<Member> = (0..MAX).map(member).collect();
    store.upsert_members(&at_bound, 1).await.unwrap();
    let before_a: Vec<Member> = (0..MAX)
        .map(|n| {
            let mut m = sample_member("MUT-B", &format!("B-{n}"), "NEANT");
            m.products[0].start = d("2020-01-01");
            m.products[0].end = Some(d("2020-12-31"));
            m
        })
        .collect();
    store.upsert_members(&before_a, 1).await.unwrap();
    let other_scheme: Vec<Member> = (0..MAX)
        .map(|n| {
            let mut m = sample_member("MUT-A", &format!("I-{n}"), "NEANT");
            m.scheme_id = "INAM".into();
            m
        })
        .collect();
    store.upsert_members(&other_scheme, 1).await.unwrap();
    // One more in a later call: refused, naming it.
    let e = store.upsert_members(&[member(MAX)], 2).await.unwrap_err();
    assert_eq!(named(&e), vec!["members[0].beneficiary_id".to_string()]);
    assert!(
        e.to_string().contains("shared by 11 members of MUT-A"),
        "{e}"
    );
    assert_eq!(
        store
            .get_member("MUT-A", &format!("P-{MAX}"))
            .await
            .unwrap(),
        None
    );
    // A member already among them may be rewritten.
    let mut changed = member(0);
    changed.paid_until = Some(d("2027-01-31"));
    store.upsert_members(&[changed], 3).await.unwrap();
    // A crowd within one call: every member of it named, the others not.
    let other = sample_member("MUT-A", "Q-1", "TG-77");
    let mut call = vec![other.clone()];
    call.extend((0..=MAX).map(|n| sample_member("MUT-A", &format!("R-{n}"), "0")));
    let e = store.upsert_members(&call, 4).await.unwrap_err();
    let expected: Vec<String> = (1..=MAX + 1)
        .map(|i| format!("members[{i}].beneficiary_id"))
        .collect();
    assert_eq!(named(&e), expected);
    assert_eq!(store.get_member("MUT-A", "Q-1").await.unwrap(), None);
    // An import, dry or not: the same refusal, nothing written.
    let mut snapshot = at_bound.clone();
    snapshot.push(member(MAX));
    for dry_run in [true, false] {
        let import = RosterImport {
            mutuelle_id: "MUT-A".into(),
            members: snapshot.clone(),
            as_of: d("2026-11-01"),
            keep: vec![],
            end_missing: true,
            dry_run,
        };
        let e = store.import_roster(import, 5).await.unwrap_err();
        assert_eq!(
            named(&e),
            vec![format!("members[{MAX}].beneficiary_id")],
            "dry run {dry_run}"
        );
    }
    assert_eq!(
        store.find_members("CNSS", "NEANT").await.unwrap().len(),
        2 * MAX,
        "MUT-A's and MUT-B's"
    );
    // A member given its real id leaves the crowd (the member it replaces
    // no longer counted), and the next may join.
    let mut real = member(1);
    real.beneficiary_id = "TG-4242".into();
    store.upsert_members(&[real, member(MAX)], 6).await.unwrap();
    assert_eq!(
        store.find_members("CNSS", "NEANT").await.unwrap().len(),
        2 * MAX
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
    // A number that differs from a stored one only in letter case, that
    // member absent: refused, naming it, nothing written (a renumbering
    // would start the member's ceilings again); beside the stored number,
    // a member of its own.
    let mut slip = a.clone();
    slip.member_number = "m-1".into();
    let refused = store
        .import_roster(
            RosterImport {
                members: vec![slip.clone(), b2.clone()],
                ..import(false)
            },
            4,
        )
        .await
        .unwrap_err();
    let StoreError::Invalid(v) = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].field, "members[0].member_number");
    assert!(
        v[0].description.contains("\"M-1\" only in letter case"),
        "{v:?}"
    );
    assert!(store.get_member("MUT-A", "m-1").await.unwrap().is_none());
    let both = store
        .import_roster(
            RosterImport {
                members: vec![a.clone(), slip, b2.clone(), new.clone()],
                dry_run: true,
                ..import(false)
            },
            4,
        )
        .await
        .unwrap();
    assert_eq!(both.added, vec!["m-1"]);
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
        vec![crate::store::CoverageConflict {
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
