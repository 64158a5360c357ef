//! Conformance of `ApprovalStore`, and of a close that takes exactly what
//! was proposed (maker-checker).

#[allow(unused_imports)]
use super::*;
use crate::store::PeriodContent;
use crate::store::approvals::{Approved, Proposal, ProposalState};

fn proposal(mutuelle: &str, by: &str, at: i64) -> Proposal {
    Proposal {
        id: 0,
        mutuelle_id: mutuelle.into(),
        scheme_id: "CNSS".into(),
        kind: "close_period".into(),
        body: format!("{{\"at\":{at}}}"),
        hash: format!("h{at}"),
        proposed_by: by.into(),
        proposed_ms: at,
        state: ProposalState::Pending,
        decided_by: String::new(),
        decided_ms: 0,
        outcome: String::new(),
    }
}

pub async fn proposals_are_decided_once(store: Arc<dyn Store>) {
    let a = store
        .add_proposal(&proposal("MUT-A", "mutuelle:MUT-A/user:awa", 10), 2)
        .await
        .unwrap();
    let b = store
        .add_proposal(&proposal("MUT-A", "mutuelle:MUT-A", 20), 2)
        .await
        .unwrap();
    assert!(b.id > a.id);
    assert_eq!(
        store.proposal(a.id).await.unwrap().unwrap(),
        Proposal {
            id: a.id,
            ..proposal("MUT-A", "mutuelle:MUT-A/user:awa", 10)
        }
    );
    // A third pending one for the same mutuelle is past the bound; another
    // mutuelle has its own.
    assert!(matches!(
        store
            .add_proposal(&proposal("MUT-A", "x", 30), 2)
            .await
            .unwrap_err(),
        StoreError::Refused(_)
    ));
    store
        .add_proposal(&proposal("MUT-B", "x", 30), 2)
        .await
        .unwrap();
    let listed = store.proposals("MUT-A", true, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![b.id, a.id]
    );

    // Two approvers at once: one wins.
    let mut tasks = Vec::new();
    for who in ["kofi", "ama"] {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.decide_proposal(
                a.id,
                ProposalState::Pending,
                ProposalState::Approved,
                who,
                40,
                "",
            )
            .await
            .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    // Rejecting what is approved does nothing.
    assert!(
        !store
            .decide_proposal(
                a.id,
                ProposalState::Pending,
                ProposalState::Rejected,
                "z",
                41,
                "no"
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .decide_proposal(
                a.id,
                ProposalState::Approved,
                ProposalState::Applied,
                "kofi",
                42,
                "period 1"
            )
            .await
            .unwrap()
    );
    let done = store.proposal(a.id).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.decided_ms, done.outcome.as_str()),
        (ProposalState::Applied, 42, "period 1")
    );
    assert!(["kofi", "ama"].contains(&done.decided_by.as_str()));
    // Pending only: the other one; all: both, newest first.
    assert_eq!(store.proposals("MUT-A", true, 10).await.unwrap().len(), 1);
    assert_eq!(store.proposals("MUT-A", false, 10).await.unwrap().len(), 2);
    assert_eq!(
        store.proposals("MUT-A", false, 1).await.unwrap()[0].id,
        b.id
    );
    assert!(store.proposal(9_999_999).await.unwrap().is_none());
}

/// A close proposed with one claim, approved once that claim was
/// cancelled: nothing is left to close, and what the approver is told is
/// that the period changed (not that it was empty from the start).
pub async fn a_close_finding_its_claims_cancelled_says_the_period_changed(store: Arc<dyn Store>) {
    coordinate(&store, sample_claim("CNSS", "S1", "I1"), &[1500, 3000]).await;
    let open = store.list_periods("CNSS", "MUT-A").await.unwrap()[0].clone();
    let proposed = PeriodContent::of(&open);
    store
        .begin_cancel("CNSS", "S1", "cxl-S1", "", 3_000, 3_000)
        .await
        .unwrap();
    store
        .complete_cancel("CNSS", "S1", "", 3_500)
        .await
        .unwrap();
    let upto = CloseUpTo {
        until_ms: 4_000,
        expect: Some(proposed),
    };
    assert!(matches!(
        store
            .close_period("CNSS", "MUT-A", &upto, 5_000, None)
            .await
            .unwrap_err(),
        StoreError::PeriodChanged {
            then: 1,
            now: 0,
            ..
        }
    ));
    // Without a proposal's content, an empty period is refused as empty.
    assert!(matches!(
        store
            .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 5_000, None)
            .await
            .unwrap_err(),
        StoreError::Refused(_)
    ));
    assert_eq!(store.list_periods("CNSS", "MUT-A").await.unwrap().len(), 1);
}

pub async fn a_close_takes_what_was_proposed(store: Arc<dyn Store>) {
    // S1 coordinated at 2,000; the close is proposed at 3,000.
    coordinate(&store, sample_claim("CNSS", "S1", "I1"), &[1500, 3000]).await;
    let open = store.list_periods("CNSS", "MUT-A").await.unwrap()[0].clone();
    let proposed = PeriodContent::of(&open);
    assert_eq!(proposed.claim_count, 1);
    // S2 is coordinated after the proposal: it stays in the open period.
    let s2 = sample_claim("CNSS", "S2", "I2");
    begin(&store, s2).await;
    store
        .complete_stored("CNSS", "S2", coordinated(&[100, 200], vec![]), 4_000)
        .await
        .unwrap();
    // What a close up to 3,000 takes, read once S2 is stored (a claim
    // coordinated a moment after the proposal's time, or on a replica
    // whose clock runs ahead): S1 alone, as the close takes it.
    assert_eq!(
        store.closing_content("CNSS", "MUT-A", 3_000).await.unwrap(),
        proposed
    );
    let both = store.closing_content("CNSS", "MUT-A", 4_000).await.unwrap();
    assert_eq!(
        (both.claim_count, both.mutuelle),
        (2, proposed.mutuelle + 300)
    );
    assert_eq!(
        store.closing_content("CNSS", "MUT-A", 1_999).await.unwrap(),
        PeriodContent::default()
    );
    // Expecting something else (a claim cancelled since, say): refused,
    // nothing written.
    let wrong = CloseUpTo {
        until_ms: 3_000,
        expect: Some(PeriodContent {
            claim_count: 2,
            ..proposed
        }),
    };
    assert!(matches!(
        store
            .close_period("CNSS", "MUT-A", &wrong, 5_000, None)
            .await
            .unwrap_err(),
        StoreError::PeriodChanged {
            then: 2,
            now: 1,
            ..
        }
    ));
    assert_eq!(
        store.list_periods("CNSS", "MUT-A").await.unwrap()[0].claim_count,
        2
    );
    let upto = CloseUpTo {
        until_ms: 3_000,
        expect: Some(proposed),
    };
    let p = store
        .close_period("CNSS", "MUT-A", &upto, 5_000, None)
        .await
        .unwrap();
    assert_eq!((p.number, p.claim_count), (1, 1));
    assert_eq!(PeriodContent::of(&p), proposed);
    let periods = store.list_periods("CNSS", "MUT-A").await.unwrap();
    let open = periods
        .iter()
        .find(|p| p.state == PeriodState::Open)
        .unwrap();
    assert_eq!((open.number, open.claim_count), (2, 1));
    // S1, in the closed period, is cancelled at 6,000: its recovery is
    // taken by a close up to then, not by one up to a moment before.
    store
        .begin_cancel("CNSS", "S1", "cxl-S1", "", 6_000, 6_000)
        .await
        .unwrap();
    store
        .complete_cancel("CNSS", "S1", "", 6_000)
        .await
        .unwrap();
    let before = store.closing_content("CNSS", "MUT-A", 5_999).await.unwrap();
    assert_eq!((before.claim_count, before.recoveries), (1, 0));
    let after = store.closing_content("CNSS", "MUT-A", 6_000).await.unwrap();
    assert_eq!(
        (after.claim_count, after.recoveries),
        (1, proposed.mutuelle)
    );
}

/// A proposal approved (`Pending → Approved`, as an approval's first write
/// leaves it), `by` its approver.
async fn approved(store: &Arc<dyn Store>, kind: &str, at: i64) -> Approved {
    let p = store
        .add_proposal(
            &Proposal {
                kind: kind.into(),
                ..proposal("MUT-A", "mutuelle:MUT-A", at)
            },
            20,
        )
        .await
        .unwrap();
    assert!(
        store
            .decide_proposal(
                p.id,
                ProposalState::Pending,
                ProposalState::Approved,
                "ama",
                at,
                ""
            )
            .await
            .unwrap()
    );
    Approved {
        id: p.id,
        by: "ama".into(),
        now_ms: at + 1_000,
    }
}

/// A change applied for an approved proposal marks it applied in its own
/// transaction: once. Applied again (another broker's recovery, a second
/// pass), or for a proposal not approved, it writes nothing at all.
pub async fn a_change_ends_its_proposal_in_its_own_transaction(store: Arc<dyn Store>) {
    coordinate(&store, sample_claim("CNSS", "S1", "I1"), &[1500, 3000]).await;
    let everything = CloseUpTo::everything();
    let close = approved(&store, "close_period", 10_000).await;
    // Approved long enough ago, it is listed for the recovery; not before.
    assert!(store.approved_before(10_000, 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .approved_before(10_001, 10)
            .await
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>(),
        vec![close.id]
    );
    let p = store
        .close_period("CNSS", "MUT-A", &everything, 11_000, Some(&close))
        .await
        .unwrap();
    assert_eq!((p.number, p.claim_count), (1, 1));
    let done = store.proposal(close.id).await.unwrap().unwrap();
    assert_eq!(
        (
            done.state,
            done.decided_by.as_str(),
            done.decided_ms,
            done.outcome.as_str()
        ),
        (ProposalState::Applied, "ama", 11_000, "period 1 closed")
    );
    assert!(
        store
            .approved_before(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A claim coordinated since: the same proposal's close again would
    // take it. It is refused, and nothing is written.
    coordinate(&store, sample_claim("CNSS", "S2", "I2"), &[100, 200]).await;
    assert!(matches!(
        store
            .close_period("CNSS", "MUT-A", &everything, 12_000, Some(&close))
            .await
            .unwrap_err(),
        StoreError::Refused(m) if m.contains("no longer approved")
    ));
    let periods = store.list_periods("CNSS", "MUT-A").await.unwrap();
    assert_eq!(periods.len(), 2, "{periods:?}");
    assert_eq!((periods[0].number, periods[0].claim_count), (2, 1));
    assert_eq!(store.proposal(close.id).await.unwrap().unwrap(), done);

    // A proposal still pending (never approved), or rejected, is not
    // applied.
    let pending = store
        .add_proposal(&proposal("MUT-A", "mutuelle:MUT-A", 13_000), 20)
        .await
        .unwrap();
    let not_approved = Approved {
        id: pending.id,
        by: "ama".into(),
        now_ms: 13_000,
    };
    assert!(matches!(
        store
            .close_period("CNSS", "MUT-A", &everything, 13_000, Some(&not_approved))
            .await
            .unwrap_err(),
        StoreError::Refused(_)
    ));
    assert!(matches!(
        store
            .put_products(
                &[sample_product("MUT-A", 1, "2026-01-01")],
                Some(&not_approved)
            )
            .await
            .unwrap_err(),
        StoreError::Refused(_)
    ));
    assert!(store.list_products("MUT-A").await.unwrap().is_empty());
    assert_eq!(store.list_periods("CNSS", "MUT-A").await.unwrap().len(), 2);
    assert_eq!(
        store.proposal(pending.id).await.unwrap().unwrap().state,
        ProposalState::Pending
    );

    // A settlement, and products: the same, once.
    let settle = approved(&store, "settle_period", 14_000).await;
    let s = store
        .settle_period("CNSS", "MUT-A", 1, "VIR-1", 15_000, Some(&settle))
        .await
        .unwrap();
    assert_eq!(s.state, PeriodState::Settled);
    let settled = store.proposal(settle.id).await.unwrap().unwrap();
    assert_eq!(
        (settled.state, settled.outcome.as_str()),
        (ProposalState::Applied, "period 1 settled")
    );
    assert!(
        store
            .settle_period("CNSS", "MUT-A", 1, "VIR-1", 16_000, Some(&settle))
            .await
            .is_err()
    );
    assert_eq!(store.proposal(settle.id).await.unwrap().unwrap(), settled);
    let publish = approved(&store, "publish_products", 17_000).await;
    let v1 = sample_product("MUT-A", 1, "2026-01-01");
    store
        .put_products(std::slice::from_ref(&v1), Some(&publish))
        .await
        .unwrap();
    assert_eq!(
        store.proposal(publish.id).await.unwrap().unwrap().outcome,
        "1 product version(s) published"
    );
    let mut v2 = sample_product("MUT-A", 2, "2027-01-01");
    v2.name = "Again".into();
    assert!(
        store
            .put_products(std::slice::from_ref(&v2), Some(&publish))
            .await
            .is_err()
    );
    assert_eq!(store.list_products("MUT-A").await.unwrap().len(), 1);
}
