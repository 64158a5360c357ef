//! Claims end to end: a real broker over a real socket, a rules mutuelle
//! (MUT-R, adjudicated and ceilinged by the broker) and a simulated native
//! gRPC mutuelle (MUT-G, keeping its own ceilings), same product on both.

use crate::common::*;
use passerelle_adapters::sim::Mode;
use passerelle_proto::common::v1::{CareCategory as C, ReasonCode as R, SchemeLineOutcome};
use passerelle_proto::scheme::v1 as pb;
use pb::ClaimState as St;
use tonic::Code;
use tonic_types::StatusExt;

/// Runs one case against both mutuelles and checks the same shares.
async fn both(h: &Harness, name: &str, who: &str, lines: &[L], want: &[i64], want_codes: &[&[R]]) {
    for p in ["R", "G"] {
        let id = format!("{name}-{p}");
        let r = h
            .coordinate(claim(&id, &format!("{p}-{who}"), lines))
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(state(&r), St::Coordinated, "{id}");
        assert_eq!(r.mutuelle_id, format!("MUT-{p}"));
        assert_eq!(shares(&r), want, "{id}");
        for (i, c) in want_codes.iter().enumerate() {
            assert_eq!(codes(&r, i), *c, "{id} line {}", i + 1);
        }
        assert_balanced(&r);
    }
}

#[tokio::test]
async fn money_cases_on_both_adapters() {
    let h = Harness::start().await;
    // Full TM cover: B 5000, E 5000, S 3500: R = TM = 1500.
    both(
        &h,
        "full-tm",
        "OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
        &[1500],
        &[&[]],
    )
    .await;
    // Partial percentage: pharmacy at 50% of TM 1001 -> 500 (floored).
    both(
        &h,
        "partial",
        "OK",
        &[covered(C::Pharmacy, 3337, 3337, 2336)],
        &[500],
        &[&[R::PartialRate]],
    )
    .await;
    // Overrun covered at 50% in hospital: TM 2000 + half of D 2000.
    both(
        &h,
        "overrun-covered",
        "OK",
        &[covered(C::Hospitalisation, 12000, 10000, 8000)],
        &[3000],
        &[&[R::OverrunNotCovered]],
    )
    .await;
    // Overrun not covered for consultations: TM only.
    both(
        &h,
        "overrun-not",
        "OK",
        &[covered(C::Consultation, 6000, 5000, 3500)],
        &[1500],
        &[&[R::OverrunNotCovered]],
    )
    .await;
    // Out of basket: optical covered at 60% of B, lab not at all.
    let mut oob = covered(C::Optical, 5000, 0, 0);
    oob.outcome = SchemeLineOutcome::OutOfBasket;
    let mut oob_lab = covered(C::Lab, 2000, 0, 0);
    oob_lab.outcome = SchemeLineOutcome::OutOfBasket;
    both(
        &h,
        "oob",
        "OK",
        &[oob, oob_lab],
        &[3000, 0],
        &[&[R::PartialRate], &[R::OutOfBasketNotCovered]],
    )
    .await;
    // A line the scheme refused gets nothing; the next line is covered.
    let mut refused = covered(C::Lab, 4000, 4000, 0);
    refused.outcome = SchemeLineOutcome::Refused;
    both(
        &h,
        "refused",
        "OK",
        &[refused, covered(C::Lab, 1000, 1000, 800)],
        &[0, 200],
        &[&[R::SchemeRefused], &[]],
    )
    .await;
    // Waiting period: enrolled 2026-10-01, maternity needs 270 days.
    both(
        &h,
        "waiting",
        "NEW",
        &[
            covered(C::Maternity, 3000, 3000, 2400),
            covered(C::Consultation, 1000, 1000, 700),
        ],
        &[0, 300],
        &[&[R::WaitingPeriod], &[]],
    )
    .await;
    // Unpaid dues: paid until 2026-06-30, care on 2026-11-20.
    both(
        &h,
        "unpaid",
        "UNPAID",
        &[covered(C::Consultation, 5000, 5000, 3500)],
        &[0],
        &[&[R::DuesUnpaid]],
    )
    .await;
}

#[tokio::test]
async fn exclusion_by_diagnosis() {
    let h = Harness::start().await;
    for p in ["R", "G"] {
        let mut req = claim(
            &format!("dx-{p}"),
            &format!("{p}-OK"),
            &[covered(C::Consultation, 5000, 5000, 3500)],
        );
        req.diagnoses = vec!["Z41.1".into()];
        let r = h.coordinate(req).await.unwrap();
        assert_eq!(shares(&r), vec![0]);
        assert_eq!(codes(&r, 0), vec![R::ExcludedDiagnosis]);
        assert_balanced(&r);
    }
}

#[tokio::test]
async fn ceiling_runs_out_part_way_in_line_order() {
    let h = Harness::start().await;
    // Year limit 10000: lines of R = 6000 each: 6000, then 4000, then 0.
    let lines = [
        covered(C::Consultation, 20000, 20000, 14000),
        covered(C::Consultation, 20000, 20000, 14000),
        covered(C::Consultation, 20000, 20000, 14000),
    ];
    both(
        &h,
        "ceiling",
        "OK",
        &lines,
        &[6000, 4000, 0],
        &[&[], &[R::CeilingReached], &[R::CeilingReached]],
    )
    .await;
    // The next claim finds nothing left (the broker kept MUT-R's ceiling,
    // MUT-G kept its own).
    both(
        &h,
        "ceiling-after",
        "OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
        &[0],
        &[&[R::CeilingReached]],
    )
    .await;
}

#[tokio::test]
async fn two_concurrent_claims_on_one_ceiling_never_exceed_it() {
    let h = Harness::start().await;
    // Each claim alone would get 8000; the year limit is 10000.
    let a = h.coordinate(claim(
        "race-a",
        "R-RACE",
        &[covered(C::Consultation, 20000, 20000, 12000)],
    ));
    let b = h.coordinate(claim(
        "race-b",
        "R-RACE",
        &[covered(C::Consultation, 20000, 20000, 12000)],
    ));
    let (a, b) = tokio::join!(a, b);
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut got = vec![a.lines[0].mutuelle_share, b.lines[0].mutuelle_share];
    got.sort();
    assert_eq!(
        got,
        vec![2000, 8000],
        "together exactly the ceiling, first come first served"
    );
    assert_balanced(&a);
    assert_balanced(&b);
}

#[tokio::test]
async fn idempotent_resend_and_concurrent_duplicates_execute_once() {
    let h = Harness::start().await;
    let req = claim(
        "dup-1",
        "G-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    // Five copies at once: one adjudication at the partner, one answer.
    let mut calls = Vec::new();
    for _ in 0..5 {
        calls.push(h.coordinate(req.clone()));
    }
    let answers: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for a in &answers {
        assert_eq!(state(a), St::Coordinated);
        assert_eq!(a, &answers[0]);
    }
    // A later resend: the stored answer, without asking the partner again.
    let again = h.coordinate(req).await.unwrap();
    assert_eq!(again, answers[0]);
    assert_eq!(h.sim.adjudication_keys().len(), 1);
    assert_eq!(h.sim.seen().borrow().adjudicate_calls, 1);
}

#[tokio::test]
async fn modified_resend_is_refused_and_changes_nothing() {
    let h = Harness::start().await;
    let req = claim(
        "mod-1",
        "R-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    let first = h.coordinate(req.clone()).await.unwrap();
    let mut changed = req.clone();
    changed.lines[0].billed = 6000;
    changed.lines[0].tariff_base = 6000;
    let err = h.coordinate(changed).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "MODIFIED_REQUEST"
    );
    assert_eq!(h.get("mod-1").await.unwrap(), first);
}

#[tokio::test]
async fn duplicate_invoice_under_another_claim_id_is_flagged() {
    let h = Harness::start().await;
    let a = claim(
        "inv-a",
        "G-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    let mut b = claim(
        "inv-b",
        "G-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    b.invoice_number = a.invoice_number.clone();
    assert_eq!(state(&h.coordinate(a).await.unwrap()), St::Coordinated);
    let r = h.coordinate(b).await.unwrap();
    assert_eq!(state(&r), St::Rejected);
    let why = r.rejection.unwrap();
    assert_eq!(why.code, R::DuplicateInvoice as i32);
    assert!(why.message.contains("inv-a"), "{}", why.message);
    // Said in French from its detail, as the console and the CLI say it.
    assert_eq!(why.detail_key, "duplicate-invoice");
    let fr = passerelle_broker::console::i18n::Lang::Fr.reason_words(&why, "XOF");
    assert!(fr.contains("figure déjà sur la demande inv-a"), "{fr}");
    assert_eq!(shares(&h.get("inv-b").await.unwrap()), vec![0]);
    assert_eq!(
        h.sim.adjudication_keys().len(),
        1,
        "the duplicate never reached the mutuelle"
    );
}

#[tokio::test]
async fn cancel_restores_ceilings_and_tells_the_partner() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let remaining = |r: pb::CheckEligibilityResponse| {
        r.ceilings
            .iter()
            .find(|c| c.scope == "beneficiary-year")
            .map(|c| c.remaining)
            .unwrap()
    };
    for p in ["R", "G"] {
        let elig = pb::CheckEligibilityRequest {
            scheme_id: "CNSS".into(),
            beneficiary_id: format!("{p}-OK"),
            date_of_care: "2026-11-20".into(),
            ..Default::default()
        };
        assert_eq!(
            remaining(
                client
                    .check_eligibility(elig.clone())
                    .await
                    .unwrap()
                    .into_inner()
            ),
            10000
        );
        let id = format!("cancel-{p}");
        let r = h
            .coordinate(claim(
                &id,
                &format!("{p}-OK"),
                &[covered(C::Consultation, 20000, 20000, 14000)],
            ))
            .await
            .unwrap();
        assert_eq!(shares(&r), vec![6000]);
        assert_eq!(
            remaining(
                client
                    .check_eligibility(elig.clone())
                    .await
                    .unwrap()
                    .into_inner()
            ),
            4000
        );
        let c = client
            .cancel_claim(pb::CancelClaimRequest {
                scheme_id: "CNSS".into(),
                claim_id: id.clone(),
                reason: "billed in error".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(state(&c), St::Cancelled);
        assert_eq!(
            remaining(client.check_eligibility(elig).await.unwrap().into_inner()),
            10000,
            "{p}"
        );
        // Cancelling again changes nothing.
        let again = client
            .cancel_claim(pb::CancelClaimRequest {
                scheme_id: "CNSS".into(),
                claim_id: id,
                reason: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, c);
    }
    assert_eq!(
        h.sim.cancel_keys().len(),
        1,
        "the gRPC mutuelle was told once"
    );
}

#[tokio::test]
async fn a_partner_answer_that_breaks_the_invariant_is_not_stored() {
    let h = Harness::start().await;
    let seen = h.sim.seen();
    for (mode, id, needle) in [
        (Mode::Overpay, "bad-over", "above the remainder"),
        (Mode::DropLine, "bad-drop", "not answered"),
    ] {
        h.set_partner_mode(mode);
        let r = h
            .coordinate(claim(
                id,
                "G-OK",
                &[
                    covered(C::Consultation, 5000, 5000, 3500),
                    covered(C::Lab, 1000, 1000, 800),
                ],
            ))
            .await
            .unwrap();
        assert_eq!(state(&r), St::Rejected, "{id}");
        let why = r.rejection.clone().unwrap();
        assert_eq!(why.code, R::PartnerAnswerInvalid as i32);
        assert!(why.message.contains(needle), "{}", why.message);
        assert_eq!(shares(&r), vec![0, 0], "nothing of the bad answer stored");
        assert_balanced(&r);
    }
    // Counted and audited as malformed (they counted `ok`), without the
    // detail's amounts, which only the claim's reason holds.
    let rows: Vec<_> = h
        .audit()
        .await
        .into_iter()
        .filter(|e| e.method == "AdjudicateRemainder")
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert!(
            row.outcome.starts_with("malformed partner answer"),
            "{row:?}"
        );
        assert!(
            !row.outcome.chars().any(|c| c.is_ascii_digit()),
            "no amount: {row:?}"
        );
    }
    let text = h.running().broker.metrics().encode();
    assert!(
        text.lines()
            .any(|l| l.starts_with("passerelle_partner_calls_total{")
                && l.contains("AdjudicateRemainder")
                && l.contains("outcome=\"malformed\"")
                && l.ends_with(" 2")),
        "{text}"
    );
    // The mutuelle may have booked what it answered: it is told to cancel
    // each refused adjudication, once, under the claim's cancel key (the
    // key a scheme's cancel of the claim would use), and the claims stay
    // REJECTED as the scheme was answered.
    let broker = &h.running().broker;
    let mut changes = broker.subscribe();
    let withdrawn = async {
        loop {
            let mut owed = 0;
            for id in ["bad-over", "bad-drop"] {
                let rec = broker.store().get_claim("CNSS", id).await.unwrap().unwrap();
                owed += usize::from(rec.next_attempt_ms.is_some());
            }
            if owed == 0 {
                break;
            }
            changes.changed().await.unwrap();
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), withdrawn)
        .await
        .expect("the mutuelle told to cancel both refused answers");
    assert_eq!(seen.borrow().cancel_calls, 2);
    let mut told = h.sim.cancel_keys();
    told.sort();
    let mut want = vec![
        passerelle_broker::service::cancel_key("CNSS", "bad-over"),
        passerelle_broker::service::cancel_key("CNSS", "bad-drop"),
    ];
    want.sort();
    assert_eq!(told, want);
    for id in ["bad-over", "bad-drop"] {
        let r = h.get(id).await.unwrap();
        assert_eq!(state(&r), St::Rejected, "{id}");
        assert_eq!(
            r.rejection.unwrap().code,
            R::PartnerAnswerInvalid as i32,
            "{id}"
        );
    }
    let cancels = h
        .audit()
        .await
        .into_iter()
        .filter(|e| e.method == "CancelAdjudication")
        .count();
    assert_eq!(cancels, 2, "each cancel sent and audited once");
}

#[tokio::test]
async fn a_partner_that_never_answers_leaves_the_claim_pending_until_it_does() {
    let h = Harness::start_with_deadline(300).await;
    h.set_partner_mode(Mode::Hang);
    let mut seen = h.sim.seen();
    let r = h
        .coordinate(claim(
            "hang-1",
            "G-OK",
            &[covered(C::Consultation, 5000, 5000, 3500)],
        ))
        .await
        .unwrap();
    assert_eq!(state(&r), St::PendingPartner);
    assert_eq!(shares(&r), vec![0]);
    assert_eq!(
        r.lines[0].patient_share, 1500,
        "before the answer, P is the whole remainder"
    );
    // The partner recovers; the retry worker delivers with the same key.
    h.set_partner_mode(Mode::Normal);
    let done = h.wait_state("hang-1", St::Coordinated).await;
    assert_eq!(shares(&done), vec![1500]);
    assert_balanced(&done);
    seen.wait_for(|s| s.adjudications == 1).await.unwrap();
    assert!(
        seen.borrow().adjudicate_calls >= 2,
        "asked again after the missed deadline"
    );
    assert_eq!(
        h.sim.adjudication_keys().len(),
        1,
        "one adjudication key, whatever the retries"
    );
    // A resend now gets the final answer.
    let again = h
        .coordinate(claim(
            "hang-1",
            "G-OK",
            &[covered(C::Consultation, 5000, 5000, 3500)],
        ))
        .await
        .unwrap();
    assert_eq!(shares(&again), vec![1500]);
}

#[tokio::test]
async fn a_partner_back_from_an_outage_gets_its_backlog_at_once() {
    // A first back-off of ten minutes: without the catch-up, the claim below
    // would wait that long after the partner is back (wait_state gives up
    // after 30 s).
    let h = Harness::start_with(2000, 600_000).await;
    h.set_partner_mode(Mode::Unavailable);
    let lines = [covered(C::Consultation, 5000, 5000, 3500)];
    let r = h.coordinate(claim("out-1", "G-OK", &lines)).await.unwrap();
    assert_eq!(state(&r), St::PendingPartner);
    let waiting = h.get("out-1").await.unwrap();
    assert_eq!(state(&waiting), St::PendingPartner, "still waiting");
    // Back: the next call to it succeeds and its backlog becomes due now.
    h.set_partner_mode(Mode::Normal);
    let live = h.coordinate(claim("out-2", "G-OK", &lines)).await.unwrap();
    assert_eq!(state(&live), St::Coordinated);
    let done = h.wait_state("out-1", St::Coordinated).await;
    assert_eq!(shares(&done), vec![1500]);
    assert_balanced(&done);
    assert_eq!(
        h.sim.adjudication_keys().len(),
        2,
        "each claim adjudicated once"
    );
}

/// Claims `ids` of MUT-G stored while it is down, then it comes back and
/// the live claim `live` (answered at once) makes that backlog due. Returns
/// a watch on the partner and its adjudications so far.
async fn backlog_then_back(
    h: &Harness,
    ids: &[String],
    live: &str,
) -> (
    tokio::sync::watch::Receiver<passerelle_adapters::sim::Seen>,
    u64,
) {
    h.set_partner_mode(Mode::Unavailable);
    let lines = [covered(C::Consultation, 5000, 5000, 3500)];
    for id in ids {
        let r = h.coordinate(claim(id, "G-OK", &lines)).await.unwrap();
        assert_eq!(state(&r), St::PendingPartner);
    }
    h.set_partner_mode(Mode::Normal);
    let seen = h.sim.seen();
    // The baseline is the live claim's own adjudication: the backlog is
    // made due once the partner answered it, and its first claim may reach
    // the partner before the live claim's answer is back here (counting
    // after the answer then missed it, and the test waited forever).
    let before = seen.borrow().adjudications;
    let r = h.coordinate(claim(live, "G-OK", &lines)).await.unwrap();
    assert_eq!(state(&r), St::Coordinated);
    (seen, before + 1)
}

/// Niceness of this process's threads named `name`, from /proc.
fn nice_of_threads(name: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is the 3rd
        // field of the line, niceness the 19th.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        out.push(after.split(' ').nth(16).unwrap().parse().unwrap());
    }
    out
}

#[tokio::test]
async fn the_retry_worker_runs_below_live_calls_priority() {
    // The default `[retry] nice = 10`: a backlog's delivery takes the cores
    // live calls leave. Brokers of other tests may run alongside, at the
    // same default; without the worker's own thread there is none at all.
    let _h = Harness::start().await;
    let nice = nice_of_threads("retry-worker");
    assert!(
        nice.contains(&10),
        "retry-worker threads' niceness: {nice:?}"
    );
}

#[tokio::test]
async fn a_backlog_reaches_its_partner_at_the_configured_pace_not_in_one_burst() {
    // Five claims a second: the backlog's claims start 200 ms apart. Started
    // all at once (as a pass of the worker once did), they would reach the
    // partner within milliseconds and hold up live traffic meanwhile.
    let h = Harness::start_paced(2000, 600_000, 5).await;
    let ids: Vec<String> = (1..=3).map(|i| format!("pace-{i}")).collect();
    let (mut seen, mut count) = backlog_then_back(&h, &ids, "pace-live").await;
    let mut at = Vec::new();
    while at.len() < ids.len() {
        seen.changed().await.expect("simulated partner");
        let now = seen.borrow_and_update().adjudications;
        // Two adjudications seen together are recorded at the same instant.
        for _ in count..now {
            at.push(std::time::Instant::now());
        }
        count = now;
    }
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= std::time::Duration::from_millis(100),
            "backlog claims reached the partner {gap:?} apart, not about 200 ms"
        );
    }
    for id in &ids {
        let done = h.wait_state(id, St::Coordinated).await;
        assert_eq!(shares(&done), vec![1500]);
        assert_balanced(&done);
    }
    assert_eq!(
        h.sim.adjudication_keys().len(),
        4,
        "each claim adjudicated once"
    );
}

#[tokio::test]
async fn a_slow_pace_does_not_hold_up_shutdown() {
    // One claim a second: a batch of 30 would take 29 s to start. Stopping
    // after the first leaves the others leased (resumed when the lease ends)
    // rather than waiting for their turn.
    let mut h = Harness::start_paced(2000, 600_000, 1).await;
    let ids: Vec<String> = (0..30).map(|i| format!("slow-{i}")).collect();
    let (mut seen, after_live) = backlog_then_back(&h, &ids, "slow-live").await;
    // The backlog's first claim reaches the partner: the worker is pacing.
    seen.wait_for(|s| s.adjudications > after_live)
        .await
        .expect("simulated partner");
    let running = h.running.take().expect("running");
    tokio::time::timeout(std::time::Duration::from_secs(10), running.shutdown())
        .await
        .expect("shutdown within 10 s, not after the batch's 29 s");
    assert!(
        h.sim.adjudication_keys().len() < 31,
        "the backlog was not all delivered before the stop"
    );
}

#[tokio::test]
async fn unknown_member_is_no_cover_for_eligibility_and_a_failed_precondition_for_claims() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    let e = client
        .check_eligibility(pb::CheckEligibilityRequest {
            scheme_id: "CNSS".into(),
            beneficiary_id: "NOBODY".into(),
            date_of_care: "2026-11-20".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!e.covered);
    assert_eq!(e.reason.unwrap().code, R::UnknownMember as i32);
    let err = h
        .coordinate(claim(
            "nobody-1",
            "NOBODY",
            &[covered(C::Consultation, 5000, 5000, 3500)],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "UNKNOWN_MEMBER"
    );
    assert_eq!(h.get("nobody-1").await.unwrap_err().code(), Code::NotFound);
    // A card whose member number is not this beneficiary's at the mutuelle
    // it names says so, not that no mutuelle covers them.
    let carded = |beneficiary: &str, mutuelle: &str, number: &str| {
        let mut client = client.clone();
        let req = pb::CheckEligibilityRequest {
            scheme_id: "CNSS".into(),
            beneficiary_id: beneficiary.into(),
            date_of_care: "2026-11-20".into(),
            mutuelle_id: mutuelle.into(),
            member_number: number.into(),
            ..Default::default()
        };
        async move { client.check_eligibility(req).await.unwrap().into_inner() }
    };
    let e = carded("R-OK", "MUT-R", "R-9").await;
    let reason = e.reason.unwrap();
    assert!(!e.covered);
    assert_eq!(
        (reason.code, reason.detail_key.as_str()),
        (R::UnknownMember as i32, "card-mismatch")
    );
    assert!(
        reason
            .message
            .contains("member number R-9 at MUT-R is not this beneficiary's"),
        "{reason:?}"
    );
    // At a mutuelle with its own system too: a number the roster here
    // gives to another beneficiary (G-2 is G-NEW's) is never sent on, where
    // the mutuelle answered for that person, their cover and ceilings; nor
    // in lower case (g-2), which such a mutuelle may read as G-2.
    for number in ["G-2", "g-2"] {
        let e = carded("G-OK", "MUT-G", number).await;
        assert_eq!(
            (e.covered, e.reason.map(|r| r.detail_key).as_deref()),
            (false, Some("card-mismatch")),
            "{number}"
        );
    }
    let mut card_claim = claim(
        "card-1",
        "R-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    card_claim.mutuelle_id = "MUT-R".into();
    card_claim.member_number = "R-9".into();
    let err = h.coordinate(card_claim).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = err.get_details_error_info().unwrap();
    assert_eq!(
        (
            info.reason.as_str(),
            info.metadata.get("card").map(String::as_str)
        ),
        ("UNKNOWN_MEMBER", Some("mismatch"))
    );
    // Masked: the refusal is the audit row's outcome, which names no
    // member number.
    assert!(
        err.message()
            .contains("member number *** at MUT-R is not this beneficiary's: check the card")
            && !err.message().contains("R-9"),
        "{err:?}"
    );
}

#[tokio::test]
async fn eligibility_gives_a_non_binding_estimate() {
    let h = Harness::start().await;
    let mut client = h.client.clone();
    for p in ["R", "G"] {
        let req = pb::CheckEligibilityRequest {
            scheme_id: "CNSS".into(),
            beneficiary_id: format!("{p}-OK"),
            date_of_care: "2026-11-20".into(),
            currency: "XOF".into(),
            planned_lines: vec![pb::PlannedLine {
                act_code: "ACT".into(),
                care_category: C::Hospitalisation as i32,
                quantity: 1,
                billed: 12000,
                tariff_base: 10000,
                scheme_share: 8000,
                scheme_outcome: SchemeLineOutcome::Covered as i32,
            }],
            ..Default::default()
        };
        let e = client
            .check_eligibility(req.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(e.covered);
        assert_eq!(e.mutuelle_id, format!("MUT-{p}"));
        assert_eq!(e.product.unwrap().product_id, "BASE");
        assert!(e.contribution.unwrap().up_to_date);
        let est = &e.line_estimates[0];
        assert_eq!(
            (est.remainder, est.mutuelle_share, est.patient_share),
            (4000, 3000, 1000)
        );
        // Nothing consumed: asking twice gives the same.
        let again = client.check_eligibility(req).await.unwrap().into_inner();
        assert_eq!(again.line_estimates, e.line_estimates);
    }
}

/// A hospital claim sent without its stay is its own stay: the product's
/// per-stay cap holds (issue 20: it used to be skipped), and a claim with
/// its stay counts against that stay.
#[tokio::test]
async fn a_hospital_claim_without_a_stay_is_capped_as_its_own_stay() {
    let h = Harness::start_config(|sim| {
        config_text(sim, 2000).replacen(
            "beneficiary_year_limit = 10000\n",
            "beneficiary_year_limit = 10000\nstay_limit = 3000\n",
            1,
        )
    })
    .await;
    // TM 4000 covered at 100 %: capped at the stay's 3000.
    let hosp = [covered(C::Hospitalisation, 20000, 20000, 16000)];
    let r = h
        .coordinate(claim("stay-none", "R-OK", &hosp))
        .await
        .unwrap();
    assert_eq!(shares(&r), vec![3000]);
    assert_eq!(codes(&r, 0), vec![R::CeilingReached]);
    assert_balanced(&r);
    // Another claim without a stay is another stay (3000 more is within
    // the year's 10000); a consultation touches no stay cap.
    let r = h
        .coordinate(claim("stay-none-2", "R-OK", &hosp))
        .await
        .unwrap();
    assert_eq!(shares(&r), vec![3000]);
    let r = h
        .coordinate(claim(
            "no-hosp",
            "R-OK",
            &[covered(C::Consultation, 5000, 5000, 3500)],
        ))
        .await
        .unwrap();
    assert_eq!(shares(&r), vec![1500]);
}

/// The patient's notice of a coordinated claim (issue 20): the amounts
/// each paid and why the patient owes the rest, in French or English, and
/// one SMS; refused for a claim not coordinated, and for another language.
#[tokio::test]
async fn a_coordinated_claim_has_a_notice_for_its_patient() {
    let h = Harness::start().await;
    // Consultation: R 1500 all covered; pharmacy: TM 1000 at 50 %.
    let lines = [
        covered(C::Consultation, 5000, 5000, 3500),
        covered(C::Pharmacy, 3000, 3000, 2000),
    ];
    h.coordinate(claim("notice-1", "R-OK", &lines))
        .await
        .unwrap();
    let mut c = h.client.clone();
    let ask = |language: &str| pb::GetPatientNoticeRequest {
        scheme_id: "CNSS".into(),
        claim_id: "notice-1".into(),
        language: language.into(),
    };
    let fr = c.get_patient_notice(ask("")).await.unwrap().into_inner();
    assert_eq!(fr.language, "fr");
    // Amounts grouped with a no-break space, as French writes them.
    let text = fr.text.replace(['\u{202f}', '\u{a0}'], " ");
    for part in [
        "Demande notice-1 du 20/11/2026 (CHU-SO) : facturé 8 000 XOF.",
        "Payé par le régime CNSS : 5 500 XOF.",
        "Payé par la mutuelle MUT-R : 2 000 XOF.",
        "Reste à votre charge : 500 XOF.",
        // The engine's reason in French, with its rate.
        "ligne 2 (ACT) : 500 XOF, ticket modérateur couvert à 50 %",
    ] {
        assert!(text.contains(part), "{part:?} in {text:?}");
    }
    assert!(
        !text.contains("ligne 1"),
        "a line fully covered is no reason: {}",
        fr.text
    );
    assert!(fr.sms.chars().count() <= 160, "{}", fr.sms);
    assert!(
        fr.sms.contains("notice-1") && fr.sms.contains("500 XOF") && fr.sms.contains("2000 XOF"),
        "{}",
        fr.sms
    );
    let en = c.get_patient_notice(ask("en")).await.unwrap().into_inner();
    assert!(
        en.text
            .replace('\u{a0}', " ")
            .contains("Left for you to pay: 500 XOF."),
        "{}",
        en.text
    );
    let bad = c.get_patient_notice(ask("de")).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("language"), "{}", bad.message());
    // A claim cancelled has no notice.
    c.cancel_claim(pb::CancelClaimRequest {
        scheme_id: "CNSS".into(),
        claim_id: "notice-1".into(),
        reason: "test".into(),
    })
    .await
    .unwrap();
    let gone = c.get_patient_notice(ask("fr")).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::FailedPrecondition);
}

/// Rules that depend on the beneficiary's category (issue 20): an indigent
/// beneficiary, as the scheme declares on the claim, has pharmacy at 100 %
/// where the product gives 50 %; anyone else the product's rate.
#[tokio::test]
async fn a_beneficiary_category_has_its_own_rate() {
    let h = Harness::start_config(|sim| {
        config_text(sim, 2000)
            + "\n[[products.beneficiary_rules]]\nbeneficiary_category = \"indigent\"\ncategory = \"pharmacy\"\ntm_rate_bp = 10000\n"
    })
    .await;
    let lines = [covered(C::Pharmacy, 3000, 3000, 2000)]; // TM 1000
    let r = h
        .coordinate(claim("cat-none", "R-OK", &lines))
        .await
        .unwrap();
    assert_eq!(shares(&r), vec![500]);
    let mut req = claim("cat-indigent", "R-OK", &lines);
    req.beneficiary_category = "indigent".into();
    let r = h.coordinate(req).await.unwrap();
    assert_eq!(shares(&r), vec![1000]);
    assert_balanced(&r);
}
