//! Conformance of `OpeningStore`: an opening balance is part of its
//! ceiling's use; a correction, up or down, changes it by the difference,
//! also once a claim has used the ceiling; a dry run writes nothing.

#[allow(unused_imports)]
use super::*;
use crate::store::opening::OpeningRow;

fn row(amount: i64) -> OpeningRow {
    OpeningRow {
        key: year_key("M-1").storage_key(),
        label: "member M-1 (beneficiary-year 2026)".into(),
        amount,
        count: 0,
    }
}

async fn used(store: &Arc<dyn Store>) -> i64 {
    store
        .usage("MUT-A", &[year_key("M-1")])
        .await
        .unwrap()
        .get(&year_key("M-1"))
        .amount
}

pub async fn opening_balances_start_ceilings_and_are_corrected_by_the_difference(
    store: Arc<dyn Store>,
) {
    // A dry run says what would change and writes nothing.
    assert_eq!(
        store
            .set_opening_balances("MUT-A", &[row(40_000)], true, 1_000)
            .await
            .unwrap(),
        (1, 0)
    );
    assert_eq!(used(&store).await, 0);
    store
        .set_opening_balances("MUT-A", &[row(40_000)], false, 1_000)
        .await
        .unwrap();
    assert_eq!(used(&store).await, 40_000);
    // The same again: unchanged. Corrected down before any claim: fine.
    assert_eq!(
        store
            .set_opening_balances("MUT-A", &[row(40_000)], false, 1_000)
            .await
            .unwrap(),
        (0, 1)
    );
    store
        .set_opening_balances("MUT-A", &[row(30_000)], false, 1_000)
        .await
        .unwrap();
    assert_eq!(used(&store).await, 30_000);
    // A claim uses the ceiling (limit 50,000: 20,000 left).
    begin(&store, sample_claim("CNSS", "O1", "IO1")).await;
    let over = store
        .complete_stored(
            "CNSS",
            "O1",
            coordinated(
                &[1500, 4000],
                vec![CeilingUse {
                    key: year_key("M-1"),
                    amount: 25_000,
                    count: 0,
                    limit_amount: Some(50_000),
                    limit_count: None,
                }],
            ),
            2_000,
        )
        .await
        .unwrap_err();
    assert!(matches!(over, StoreError::CeilingConflict(_)), "{over:?}");
    store
        .complete_stored(
            "CNSS",
            "O1",
            coordinated(
                &[1500, 4000],
                vec![CeilingUse {
                    key: year_key("M-1"),
                    amount: 5_500,
                    count: 0,
                    limit_amount: Some(50_000),
                    limit_count: None,
                }],
            ),
            2_000,
        )
        .await
        .unwrap();
    assert_eq!(used(&store).await, 35_500);
    // Raised: by the difference. Lowered (a balance typed too high, found
    // once claims used the ceiling): by the difference too, the claim's
    // use kept.
    store
        .set_opening_balances("MUT-A", &[row(32_000)], false, 3_000)
        .await
        .unwrap();
    assert_eq!(used(&store).await, 37_500);
    store
        .set_opening_balances("MUT-A", &[row(10_000)], false, 3_000)
        .await
        .unwrap();
    assert_eq!(used(&store).await, 15_500);
    store
        .set_opening_balances("MUT-A", &[row(0)], false, 3_000)
        .await
        .unwrap();
    assert_eq!(used(&store).await, 5_500, "the claim's use alone");
    // The claim is on no statement line as an opening balance: the claim's
    // own shares only.
    let c = store.get_claim("CNSS", "O1").await.unwrap().unwrap();
    assert_eq!(
        c.shares
            .unwrap()
            .iter()
            .map(|s| s.mutuelle_share)
            .sum::<i64>(),
        5_500
    );
}

pub async fn an_opening_balance_is_not_raised_under_a_hold(store: Arc<dyn Store>) {
    store
        .set_opening_balances("MUT-A", &[row(10_000)], false, 1_000)
        .await
        .unwrap();
    // A prior authorization holds part of the ceiling: its commitment was
    // made on what was left, so the balance is not raised under it.
    store
        .grant_authorization(&authorization("OP-A", 2_000, 50_000), u32::MAX)
        .await
        .unwrap();
    let err = store
        .set_opening_balances("MUT-A", &[row(45_000)], false, 2_000)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Refused(m) if m.contains("prior authorizations hold")),
        "{err:?}"
    );
    // A dry run says the same, and lowering is still possible.
    assert!(
        store
            .set_opening_balances("MUT-A", &[row(45_000)], true, 2_000)
            .await
            .is_err()
    );
    store
        .set_opening_balances("MUT-A", &[row(5_000)], false, 2_000)
        .await
        .unwrap();
    assert_eq!(used(&store).await - 2_000, 5_000, "used besides the hold");
}
