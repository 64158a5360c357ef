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

    let p1 = store
        .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 5_000, None)
        .await
        .unwrap();
    assert_eq!(
        (p1.number, p1.state, p1.claim_count, p1.net_due()),
        (1, PeriodState::Closed, 2, 5500)
    );
    let st = store.statement("CNSS", "MUT-A", 1).await.unwrap();
    // Where each claim stands: S1 in period 1, the pending one in none.
    let standing = |id: &'static str| {
        let store = store.clone();
        async move { store.claim_periods("CNSS", id).await.unwrap() }
    };
    assert_eq!(
        standing("S1").await,
        Some(ClaimPeriods {
            period: 1,
            recovery: None
        })
    );
    assert_eq!(standing("S-PENDING").await, Some(ClaimPeriods::default()));
    assert_eq!(standing("NO-SUCH-CLAIM").await, None);
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
            .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 6_000, None)
            .await
            .unwrap_err(),
        StoreError::Refused(_)
    ));
    // The open period cannot be settled; the closed one can, once.
    assert!(matches!(
        store
            .settle_period("CNSS", "MUT-A", 2, "VIR-1", 6_000, None)
            .await
            .unwrap_err(),
        StoreError::Refused(_)
    ));
    let s1 = store
        .settle_period("CNSS", "MUT-A", 1, "VIR-2026-11-001", 7_000, None)
        .await
        .unwrap();
    assert_eq!(
        (s1.state, s1.reference.as_str()),
        (PeriodState::Settled, "VIR-2026-11-001")
    );
    assert_eq!(
        store
            .settle_period("CNSS", "MUT-A", 1, "VIR-2026-11-001", 8_000, None)
            .await
            .unwrap(),
        s1
    );
    assert!(matches!(
        store
            .settle_period("CNSS", "MUT-A", 1, "OTHER", 8_000, None)
            .await
            .unwrap_err(),
        StoreError::Refused(_)
    ));

    // A cancel after settlement creates a recovery in the next period; the
    // settled statement's lines and amounts do not change, and S1's line
    // says its claim was cancelled since.
    assert!(st.lines.iter().all(|l| !l.cancelled), "{:?}", st.lines);
    store
        .begin_cancel("CNSS", "S1", "cxl", "duplicate", 9_000, 9_000)
        .await
        .unwrap();
    store
        .complete_cancel("CNSS", "S1", "", 9_500)
        .await
        .unwrap();
    let after = store.statement("CNSS", "MUT-A", 1).await.unwrap().lines;
    assert_eq!(
        after
            .iter()
            .map(|l| (l.claim_id.as_str(), l.cancelled))
            .collect::<Vec<_>>(),
        st.lines
            .iter()
            .map(|l| (l.claim_id.as_str(), l.claim_id == "S1"))
            .collect::<Vec<_>>()
    );
    let unmarked: Vec<crate::store::StatementLine> = after
        .into_iter()
        .map(|l| crate::store::StatementLine {
            cancelled: false,
            ..l
        })
        .collect();
    assert_eq!(unmarked, st.lines);
    // S1 stays in period 1; its recovery waits in the open period.
    let s1_recovery = RecoveryLine {
        claim_id: "S1".into(),
        invoice_number: "I1".into(),
        from_period: 1,
        amount: 4500,
        payee_type: "provider".into(),
        payee_id: "CHU-TOKOIN".into(),
        // Whose care it was: the claim's member and date of care.
        member_number: "M-1".into(),
        date_of_care: "2026-03-10".into(),
    };
    assert_eq!(
        standing("S1").await,
        Some(ClaimPeriods {
            period: 1,
            recovery: Some((s1_recovery.clone(), 0))
        })
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
    // By pages of one line: the recovery comes with the first page only.
    let page = |after| StatementPage { after, size: 1 };
    let first = store
        .statement_page("CNSS", "MUT-A", 0, Some(&page(None)))
        .await
        .unwrap();
    assert_eq!((first.lines.len(), first.recoveries.len()), (1, 1));
    let second = store
        .statement_page("CNSS", "MUT-A", 0, Some(&page(first.next.clone())))
        .await
        .unwrap();
    assert_eq!((second.lines.len(), second.recoveries.len()), (1, 0));
    assert_eq!(second.next, None, "two lines, two pages");
    assert_eq!(
        [first.lines, second.lines].concat(),
        open.lines,
        "the pages are the statement"
    );
    let p2 = store
        .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 10_000, None)
        .await
        .unwrap();
    assert_eq!(
        (p2.claim_count, p2.recoveries, p2.net_due()),
        (1, 4500, -4000)
    );
    // Closed into period 2, with S3.
    assert_eq!(
        standing("S1").await,
        Some(ClaimPeriods {
            period: 1,
            recovery: Some((s1_recovery, 2))
        })
    );
    assert_eq!(standing("S3").await.map(|p| p.period), Some(2));
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
    assert_eq!(standing("S4").await, Some(ClaimPeriods::default()));
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

/// A statement read by pages is the whole statement, in its order (payee
/// type, payee, claim id, line), each line once, whatever the page size.
pub async fn a_statement_reads_by_pages(store: Arc<dyn Store>) {
    for i in 0..7 {
        let mut c = sample_claim("CNSS", &format!("PG-{i}"), &format!("IPG-{i}"));
        if i % 3 == 0 {
            c.payee = Payee::Member;
        }
        coordinate(&store, c, &[100 + i, 0]).await;
    }
    store
        .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 5_000, None)
        .await
        .unwrap();
    let whole = store.statement("CNSS", "MUT-A", 1).await.unwrap();
    assert_eq!(whole.lines.len(), 14);
    assert_eq!(whole.next, None);
    let keys: Vec<LineKey> = whole.lines.iter().map(LineKey::of).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "in order: {keys:?}");
    for size in [1, 3, 5, 14, 15] {
        let mut lines = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let p = store
                .statement_page(
                    "CNSS",
                    "MUT-A",
                    1,
                    Some(&StatementPage {
                        after: after.clone(),
                        size,
                    }),
                )
                .await
                .unwrap();
            assert!(p.lines.len() <= size as usize);
            assert_eq!(p.period, whole.period);
            // The payees the page cuts: the first if the line before it
            // is the same payee's, the last if the line after it is.
            let same = |a: &crate::store::StatementLine, b: &crate::store::StatementLine| {
                (&a.payee_type, &a.payee_id) == (&b.payee_type, &b.payee_id)
            };
            let (at, n) = (lines.len(), p.lines.len());
            let cut = crate::store::PayeeCut {
                first_continued: at > 0 && n > 0 && same(&whole.lines[at - 1], &whole.lines[at]),
                last_continues: p.next.is_some()
                    && same(&whole.lines[at + n - 1], &whole.lines[at + n]),
            };
            assert_eq!(p.cut, cut, "pages of {size}, from line {at}");
            pages += 1;
            lines.extend(p.lines);
            match p.next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        assert_eq!(lines, whole.lines, "pages of {size}");
        assert_eq!(
            pages,
            14usize.div_ceil(size as usize).max(1),
            "pages of {size}"
        );
    }
    // After the last line: an empty page.
    let last = keys.last().cloned();
    let empty = store
        .statement_page(
            "CNSS",
            "MUT-A",
            1,
            Some(&StatementPage {
                after: last,
                size: 5,
            }),
        )
        .await
        .unwrap();
    assert!(empty.lines.is_empty() && empty.next.is_none());
}

/// A statement's payees, read by pages, are its lines' payees in the
/// statement's order, each once, with the number of its claims and the sum
/// of their lines' M, whatever the page size; the open period's payees are
/// its coordinated claims'.
pub async fn a_statements_payees_read_by_pages(store: Arc<dyn Store>) {
    for i in 0..9 {
        let mut c = sample_claim("CNSS", &format!("PY-{i}"), &format!("IPY-{i}"));
        c.provider_id = format!("CS-{}", i % 4);
        if i % 3 == 0 {
            c.payee = Payee::Member;
        }
        coordinate(&store, c, &[100 + i, 7 * i]).await;
    }
    store
        .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 5_000, None)
        .await
        .unwrap();
    // One more claim, coordinated: in the open period only.
    let mut open = sample_claim("CNSS", "PY-OPEN", "IPY-OPEN");
    open.provider_id = "CS-OPEN".into();
    coordinate(&store, open, &[50, 0]).await;
    for (number, claims) in [(1u32, 9u64), (0, 1), (2, 1)] {
        let whole = store.statement("CNSS", "MUT-A", number).await.unwrap();
        let mut want: Vec<PayeeTotal> = Vec::new();
        let mut claim = "";
        for l in &whole.lines {
            let same = want
                .last()
                .is_some_and(|t| t.payee_type == l.payee_type && t.payee_id == l.payee_id);
            if !same {
                want.push(PayeeTotal {
                    payee_type: l.payee_type.clone(),
                    payee_id: l.payee_id.clone(),
                    ..PayeeTotal::default()
                });
            }
            let t = want.last_mut().unwrap();
            if !same || l.claim_id != claim {
                t.claims += 1;
                claim = &l.claim_id;
            }
            t.mutuelle += l.mutuelle;
        }
        assert_eq!(want.iter().map(|t| t.claims).sum::<u64>(), claims);
        for limit in [1, 2, 3, 100] {
            let mut got = Vec::new();
            let mut after: Option<(String, String)> = None;
            loop {
                let from = after.as_ref().map_or(PayeesFrom::First, PayeesFrom::After);
                let page = store
                    .statement_payees("CNSS", "MUT-A", number, from, limit)
                    .await
                    .unwrap();
                assert!(page.len() <= limit as usize);
                let Some(last) = page.last() else { break };
                after = Some((last.payee_type.clone(), last.payee_id.clone()));
                got.extend(page);
            }
            assert_eq!(got, want, "period {number}, pages of {limit}");
        }
        // Each payee read alone; a payee with no claim in the period (a key
        // between two payees) reads none, not the next one.
        for t in &want {
            let k = (t.payee_type.clone(), t.payee_id.clone());
            let one = store
                .statement_payees("CNSS", "MUT-A", number, PayeesFrom::Only(&k), 10)
                .await
                .unwrap();
            assert_eq!(one, std::slice::from_ref(t), "period {number}");
        }
        let between = (want[0].payee_type.clone(), format!("{}-", want[0].payee_id));
        let none = store
            .statement_payees("CNSS", "MUT-A", number, PayeesFrom::Only(&between), 10)
            .await
            .unwrap();
        assert!(none.is_empty(), "period {number}: {none:?}");
    }
    let err = store
        .statement_payees("CNSS", "MUT-A", 9, PayeesFrom::First, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

/// A closed period's totals are stored when it closes, and read as stored
/// afterwards; a period closed before they were stored (schema 16: `forget`
/// erases them, as such a period has none) has them added up from its
/// claims when read, and the two agree.
pub async fn period_totals_stored_at_close_agree_with_their_claims<F, Fut>(
    store: Arc<dyn Store>,
    forget: F,
) where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    coordinate(&store, sample_claim("CNSS", "T1", "I1"), &[1500, 3000]).await;
    let mut member_paid = sample_claim("CNSS", "T2", "I2");
    member_paid.payee = Payee::Member;
    coordinate(&store, member_paid, &[1000, 0]).await;
    let closed = store
        .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 5_000, None)
        .await
        .unwrap();
    assert_eq!((closed.claim_count, closed.totals.mutuelle), (2, 5500));
    let stored = store.list_periods("CNSS", "MUT-A").await.unwrap();
    assert_eq!(stored[1], closed);
    assert_eq!(
        store.statement("CNSS", "MUT-A", 1).await.unwrap().period,
        closed
    );
    forget().await;
    let added = store.list_periods("CNSS", "MUT-A").await.unwrap();
    assert_eq!(added[1], closed);
    assert_eq!(
        store.statement("CNSS", "MUT-A", 1).await.unwrap().period,
        closed
    );
}
