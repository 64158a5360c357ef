//! PartnerStore: operators' pauses and circuit breakers, and what they
//! hold back from the retry worker.

use super::*;
use crate::store::PartnerControl;

pub async fn pauses_and_breakers_hold_the_worker(store: Arc<dyn Store>) {
    assert!(store.partner_controls().await.unwrap().is_empty());
    // A claim of MUT-A, due once its lease (10 000) ends.
    begin(&store, sample_claim("CNSS", "P1", "I1")).await;
    let paused = store
        .set_paused("MUT-A", Some("operator:ops"), 5)
        .await
        .unwrap();
    assert_eq!(
        paused,
        PartnerControl {
            partner_id: "MUT-A".into(),
            paused_ms: 5,
            paused_by: "operator:ops".into(),
            breaker_open_until_ms: 0,
        }
    );
    assert_eq!(store.partner_controls().await.unwrap(), vec![paused]);
    assert!(
        store.lease_due(20_000, 1_000, 10).await.unwrap().is_empty(),
        "a paused partner's claims stay where they are"
    );
    let resumed = store.set_paused("MUT-A", None, 6).await.unwrap();
    assert_eq!((resumed.paused_ms, resumed.paused_by.as_str()), (0, ""));
    let due = store.lease_due(20_000, 1_000, 10).await.unwrap();
    assert_eq!(due.len(), 1, "resumed: its claim is due again");
    assert_eq!(due[0].attempts, 1);

    // The breaker: open until 50 000 holds the claim (due at 21 000 after
    // its lease) until then, and no longer.
    store.set_breaker("MUT-A", 50_000).await.unwrap();
    assert!(store.lease_due(30_000, 1_000, 10).await.unwrap().is_empty());
    assert_eq!(store.lease_due(50_001, 1_000, 10).await.unwrap().len(), 1);
    store.set_breaker("MUT-A", 0).await.unwrap();
    // A breaker write leaves the pause alone, and the reverse.
    store
        .set_paused("MUT-A", Some("operator:ops"), 7)
        .await
        .unwrap();
    store.set_breaker("MUT-A", 99).await.unwrap();
    let c = store.partner_controls().await.unwrap();
    assert_eq!((c[0].paused_ms, c[0].breaker_open_until_ms), (7, 99));
    store.set_paused("MUT-A", None, 8).await.unwrap();
    let c = store.partner_controls().await.unwrap();
    assert_eq!((c[0].paused_ms, c[0].breaker_open_until_ms), (0, 99));
    // Another partner's control holds only its own claims.
    store
        .set_paused("MUT-B", Some("operator:ops"), 9)
        .await
        .unwrap();
    store.set_breaker("MUT-A", 0).await.unwrap();
    assert_eq!(store.lease_due(60_000, 1_000, 10).await.unwrap().len(), 1);
}
