//! Conformance of `SettlementStore`.

#[allow(unused_imports)]
use super::*;

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
    store
        .complete_cancel("CNSS", "S1", "", 9_500)
        .await
        .unwrap();
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
    store
        .complete_cancel("CNSS", "S4", "", 11_500)
        .await
        .unwrap();
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
