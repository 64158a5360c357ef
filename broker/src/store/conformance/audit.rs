//! Conformance of `AuditStore`.

#[allow(unused_imports)]
use super::*;

pub async fn audit_is_appended_and_read_back(store: Arc<dyn Store>) {
    let e = |m: &str| AuditEntry {
        at_ms: 1,
        direction: Direction::In,
        party: "scheme:CNSS".into(),
        method: m.into(),
        subject: "CNSS/CLM-1".into(),
        request_hash: "ab".into(),
        outcome: "ok".into(),
        // Read back as written.
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
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
    assert_eq!(rows[2].1, e("c"), "every field read back");
    let tail = store.read_audit(rows[1].0, 10).await.unwrap();
    assert_eq!(tail.len(), 1);
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
        trace_id: String::new(),
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
    // The oldest claim waiting is the metrics' "oldest pending" age.
    assert_eq!(a.oldest_waiting_ms, 1_000);
    let b = store.partner_activity("MUT-B").await.unwrap();
    assert_eq!((b.pending, b.oldest_waiting_ms), (0, 0), "none waits");
    assert_eq!(a.last_error, "partner missed its deadline");
    let trail = store.audit_of("CNSS/C1").await.unwrap();
    assert_eq!(trail.omitted, 0);
    assert_eq!(
        trail.rows.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
        vec![10, 30]
    );
}

/// A subject's trail is read bounded: past `AuditTrail::MAX_ROWS`, its
/// oldest rows and its newest, and how many were left out between (a
/// scheme polling a claim that waits for days writes a row a call; the
/// whole trail was read into memory, and past about 65,000 rows the
/// operator's answer passed the message limit).
pub async fn a_long_trail_is_read_bounded(store: Arc<dyn Store>) {
    let row = |at: i64| AuditEntry {
        at_ms: at,
        direction: Direction::In,
        party: "scheme:CNSS".into(),
        method: "GetClaim".into(),
        subject: "CNSS/LONG".into(),
        request_hash: "h".into(),
        outcome: "ok".into(),
        trace_id: String::new(),
    };
    let total = AuditTrail::MAX_ROWS as i64 + 5;
    let rows: Vec<AuditEntry> = (1..=total).map(row).collect();
    store.append_audit(&rows).await.unwrap();
    let trail = store.audit_of("CNSS/LONG").await.unwrap();
    assert_eq!(trail.rows.len(), AuditTrail::MAX_ROWS);
    assert_eq!(trail.omitted, 5);
    let at: Vec<i64> = trail.rows.iter().map(|e| e.at_ms).collect();
    let head = AuditTrail::HEAD as i64;
    assert_eq!(at[..AuditTrail::HEAD], (1..=head).collect::<Vec<_>>()[..]);
    assert_eq!(
        at[AuditTrail::HEAD..],
        (head + 6..=total).collect::<Vec<_>>()[..],
        "the newest, oldest first"
    );
    // Exactly full: whole.
    let mut exact = rows[..AuditTrail::MAX_ROWS].to_vec();
    exact
        .iter_mut()
        .for_each(|e| e.subject = "CNSS/FULL".into());
    store.append_audit(&exact).await.unwrap();
    let full = store.audit_of("CNSS/FULL").await.unwrap();
    assert_eq!((full.rows.len(), full.omitted), (AuditTrail::MAX_ROWS, 0));
    assert_eq!(full.rows.last().unwrap().at_ms, AuditTrail::MAX_ROWS as i64);
}

pub async fn retention_prunes_only_final_claims(store: Arc<dyn Store>) {
    let (found, want) = store.schema_status().await.unwrap();
    assert_eq!(found, want, "a fresh store is migrated");
    // Claims: open (coordinated, not settled), cancelled, rejected, settled.
    coordinate(&store, sample_claim("CNSS", "R-OPEN", "I1"), &[100, 0]).await;
    coordinate(&store, sample_claim("CNSS", "R-SETTLED", "I2"), &[100, 0]).await;
    store
        .close_period("CNSS", "MUT-A", &CloseUpTo::everything(), 3_000, None)
        .await
        .unwrap();
    store
        .settle_period("CNSS", "MUT-A", 1, "VIR", 3_000, None)
        .await
        .unwrap();
    coordinate(&store, sample_claim("CNSS", "R-OPEN2", "I3"), &[100, 0]).await;
    coordinate(&store, sample_claim("CNSS", "R-CANCELLED", "I4"), &[100, 0]).await;
    store
        .begin_cancel("CNSS", "R-CANCELLED", "c", "", 4_000, 4_000)
        .await
        .unwrap();
    store
        .complete_cancel("CNSS", "R-CANCELLED", "", 4_000)
        .await
        .unwrap();
    begin(&store, sample_claim("CNSS", "R-REJECTED", "I5")).await;
    store
        .complete_stored(
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
        trace_id: String::new(),
    };
    // R-OPEN was settled with period 1; R-OPEN2 is coordinated, not settled.
    let subjects = [
        "CNSS/R-OPEN2",
        "CNSS/R-SETTLED",
        "CNSS/R-CANCELLED",
        "CNSS/R-REJECTED",
        "CNSS/eligibility",
        "partners",
    ];
    let old: Vec<_> = subjects.iter().map(|s| row(1_000, s)).collect();
    let recent: Vec<_> = subjects.iter().map(|s| row(9_000, s)).collect();
    store.append_audit(&old).await.unwrap();
    store.append_audit(&recent).await.unwrap();
    let deleted = store.prune_audit(5_000).await.unwrap().expect("not busy");
    assert_eq!(deleted, 5, "old rows of final claims and of other subjects");
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
        6,
        "recent rows stay"
    );
    assert_eq!(left.len(), 7);
    assert_eq!(store.prune_audit(5_000).await.unwrap(), Some(0));
    // More than one batch: all of it goes, a batch at a time.
    let many: Vec<_> = (0..super::super::core::PRUNE_BATCH + 7)
        .map(|i| row(2_000 + i % 100, "CNSS/eligibility"))
        .collect();
    store.append_audit(&many).await.unwrap();
    assert_eq!(
        store.prune_audit(5_000).await.unwrap(),
        Some(many.len() as u64)
    );
    assert_eq!(store.read_audit(0, 100).await.unwrap().len(), 7);
    // Over several batches, kept rows (an open claim's) among deletable
    // ones, several rows to a millisecond, batches ending mid-millisecond:
    // each deletable row goes, each kept one stays.
    let mixed: Vec<_> = (0..2 * super::super::core::PRUNE_BATCH + 501)
        .map(|i| {
            let subject = if i % 3 == 0 {
                "CNSS/R-OPEN2"
            } else {
                "CNSS/eligibility"
            };
            row(3_000 + i / 7, subject)
        })
        .collect();
    let kept = mixed.iter().filter(|e| e.subject == "CNSS/R-OPEN2").count();
    store.append_audit(&mixed).await.unwrap();
    assert_eq!(
        store.prune_audit(5_000).await.unwrap(),
        Some((mixed.len() - kept) as u64)
    );
    let left = store.read_audit(0, 10_000).await.unwrap();
    assert_eq!(left.len(), 7 + kept);
    assert!(
        left.iter()
            .all(|(_, e)| e.subject != "CNSS/eligibility" || e.at_ms == 9_000)
    );
}

/// A claim keeps its rows from a day before it was created on
/// (`core::ROWS_BEFORE_CLAIM_MS`): an older row of its subject (its number
/// refused long before it was sent again) is pruned as a row of no claim.
pub async fn retention_keeps_a_claims_rows_from_a_day_before_it(store: Arc<dyn Store>) {
    const DAY: i64 = 86_400_000;
    let mut n = new_claim(sample_claim("CNSS", "AGAIN", "I1"));
    n.now_ms = 3 * DAY;
    n.lease_until_ms = 3 * DAY + 10_000;
    store.begin_claim(n).await.unwrap();
    let row = |at| AuditEntry {
        at_ms: at,
        direction: Direction::In,
        party: "scheme:CNSS".into(),
        method: "CoordinateClaim".into(),
        subject: "CNSS/AGAIN".into(),
        request_hash: "h".into(),
        outcome: "refused".into(),
        trace_id: String::new(),
    };
    // Days before it, then just under a day before it, then just over.
    store
        .append_audit(&[row(1_000), row(2 * DAY + 1), row(2 * DAY - 1)])
        .await
        .unwrap();
    assert_eq!(store.prune_audit(3 * DAY).await.unwrap(), Some(2));
    let left: Vec<i64> = store
        .read_audit(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.at_ms)
        .collect();
    assert_eq!(left, [2 * DAY + 1], "the row of the day before it stays");
}
