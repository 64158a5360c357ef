//! Two real broker processes on one PostgreSQL database: correctness across
//! replicas. Each test has its own schema.

use crate::common::process::{Broker, load_roster, spawn, wait_stderr};
use crate::common::*;
use passerelle_proto::common::v1::CareCategory as C;
use passerelle_proto::scheme::v1 as pb;
use pb::scheme_service_client::SchemeServiceClient;

struct Pair {
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    a: Broker,
    b: Broker,
    sim: passerelle_adapters::sim::SimMutuelle,
}

async fn pair(deadline_ms: u64, failpoint_a: Option<&str>) -> Option<Pair> {
    let pg = fresh_postgres().await?;
    let (sim, sim_addr) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, config_text_pg(sim_addr, deadline_ms, 100, &pg)).unwrap();
    let a = spawn(&config, failpoint_a);
    let b = spawn(&config, None);
    load_roster(b.addr).await;
    Some(Pair {
        _dir: dir,
        config,
        a,
        b,
        sim,
    })
}

async fn client(b: &Broker) -> SchemeServiceClient<tonic::transport::Channel> {
    SchemeServiceClient::new(channel(b.addr).await)
}

fn remaining(e: &pb::CheckEligibilityResponse) -> i64 {
    e.ceilings
        .iter()
        .find(|c| c.scope == "beneficiary-year")
        .map(|c| c.remaining)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_together_both_come_up() {
    let Some(pg) = fresh_postgres().await else {
        return;
    };
    let (_sim, sim_addr) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, config_text_pg(sim_addr, 2000, 100, &pg)).unwrap();
    // Both load the config's products into the fresh schema at the same time.
    let (c1, c2) = (config.clone(), config.clone());
    let a = std::thread::spawn(move || spawn(&c1, None));
    let b = std::thread::spawn(move || spawn(&c2, None));
    let (a, b) = (
        a.join().expect("first replica starts"),
        b.join().expect("second replica starts"),
    );
    load_roster(a.addr).await;
    for broker in [&a, &b] {
        let r = client(broker)
            .await
            .coordinate_claim(claim(
                &format!("up-{}", broker.addr.port()),
                "R-OK",
                &[covered(C::Consultation, 5000, 5000, 3500)],
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(shares(&r), vec![1500]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_claim_sent_to_both_executes_once_with_one_answer() {
    let Some(p) = pair(2000, None).await else {
        return;
    };
    let (mut ca, mut cb) = (client(&p.a).await, client(&p.b).await);
    let req = claim(
        "both-1",
        "G-OK",
        &[
            covered(C::Consultation, 5000, 5000, 3500),
            covered(C::Lab, 2000, 2000, 1600),
        ],
    );
    let (ra, rb) = tokio::join!(
        ca.coordinate_claim(req.clone()),
        cb.coordinate_claim(req.clone())
    );
    let (ra, rb) = (ra.unwrap().into_inner(), rb.unwrap().into_inner());
    eprintln!(
        "A: {:?} seq {} / B: {:?} seq {}",
        state(&ra),
        ra.change_seq,
        state(&rb),
        rb.change_seq
    );
    assert_eq!(state(&ra), pb::ClaimState::Coordinated);
    assert_eq!(ra, rb, "both callers get the same answer");
    assert_eq!(p.sim.adjudication_keys().len(), 1);
    assert_eq!(
        p.sim.seen().borrow().adjudicate_calls,
        1,
        "the mutuelle was asked once"
    );
    // Same for a rules mutuelle, whose ceiling the brokers keep.
    let req = claim(
        "both-2",
        "R-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    let (ra, rb) = tokio::join!(ca.coordinate_claim(req.clone()), cb.coordinate_claim(req));
    assert_eq!(ra.unwrap().into_inner(), rb.unwrap().into_inner());
    let e = ca
        .check_eligibility(elig("R-OK"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(remaining(&e), 10_000 - 1500, "consumed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_from_both_never_exceed_a_ceiling() {
    let Some(p) = pair(2000, None).await else {
        return;
    };
    let (ca, cb) = (client(&p.a).await, client(&p.b).await);
    // Eight claims of R = 3000 on a 10000 yearly ceiling, half on each broker.
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let mut c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
            let req = claim(
                &format!("race-{i}"),
                "R-RACE",
                &[covered(C::Consultation, 20000, 20000, 17000)],
            );
            tokio::spawn(async move { c.coordinate_claim(req).await.map(|r| r.into_inner()) })
        })
        .collect();
    let mut total = 0;
    for c in calls {
        let r = c.await.unwrap().unwrap();
        assert_eq!(state(&r), pb::ClaimState::Coordinated);
        assert_balanced(&r);
        let m = r.lines[0].mutuelle_share;
        assert!([0, 1000, 3000].contains(&m), "{m}");
        total += m;
    }
    assert_eq!(total, 10_000, "the ceiling, exactly, never more");
    let e = client(&p.a)
        .await
        .check_eligibility(elig("R-RACE"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(remaining(&e), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_is_seen_by_the_other() {
    let Some(p) = pair(2000, None).await else {
        return;
    };
    let (mut ca, mut cb) = (client(&p.a).await, client(&p.b).await);
    let r = ca
        .coordinate_claim(claim(
            "cx-1",
            "R-OK",
            &[covered(C::Consultation, 20000, 20000, 14000)],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shares(&r), vec![6000]);
    let c = cb
        .cancel_claim(pb::CancelClaimRequest {
            scheme_id: "CNSS".into(),
            claim_id: "cx-1".into(),
            reason: "error".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&c), pb::ClaimState::Cancelled);
    let seen = ca
        .get_claim(pb::GetClaimRequest {
            scheme_id: "CNSS".into(),
            claim_id: "cx-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&seen), pb::ClaimState::Cancelled);
    assert_eq!(
        remaining(
            &ca.check_eligibility(elig("R-OK"))
                .await
                .unwrap()
                .into_inner()
        ),
        10_000
    );
    // The change feed of either broker shows it.
    let done = wait_state(&mut ca, "CNSS", "cx-1", pb::ClaimState::Cancelled).await;
    assert_eq!(done.claim_id, "cx-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_pending_by_a_killed_replica_is_finished_by_the_other() {
    let Some(mut p) = pair(500, Some("after_partner_answer")).await else {
        return;
    };
    let ca = client(&p.a).await;
    let req = claim(
        "orphan-1",
        "G-OK",
        &[covered(C::Consultation, 5000, 5000, 3500)],
    );
    let call = tokio::spawn({
        let mut c = ca.clone();
        async move { c.coordinate_claim(req).await }
    });
    assert!(wait_stderr(&mut p.a, "failpoint after_partner_answer reached").await);
    p.a.kill();
    assert!(call.await.unwrap().is_err());
    let mut cb = client(&p.b).await;
    let done = wait_state(&mut cb, "CNSS", "orphan-1", pb::ClaimState::Coordinated).await;
    assert_eq!(shares(&done), vec![1500]);
    assert_balanced(&done);
    assert_eq!(
        p.sim.adjudication_keys().len(),
        1,
        "one adjudication key at the partner"
    );
    let _ = &p.config;
}

/// The capture race across replicas: MUT-R declares new beneficiaries
/// through one broker while MUT-G declares the same ones through the other,
/// at the same moment. For each beneficiary exactly one mutuelle wins, and
/// eligibility through either broker names the winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mutuelles_racing_for_one_beneficiary_on_two_replicas() {
    use passerelle_proto::roster::v1 as roster;
    use roster::roster_service_client::RosterServiceClient;
    let Some(p) = pair(2000, None).await else {
        return;
    };
    let upsert = |addr: std::net::SocketAddr, mutuelle: &'static str, ben: String| async move {
        let member = roster::Member {
            scheme_id: "CNSS".into(),
            beneficiary_id: ben.clone(),
            member_number: format!("{mutuelle}-{ben}"),
            products: vec![roster::ProductPeriod {
                product_id: "BASE".into(),
                start_date: "2026-01-01".into(),
                end_date: String::new(),
            }],
            ..Default::default()
        };
        RosterServiceClient::new(channel(addr).await)
            .upsert_members(roster::UpsertMembersRequest {
                mutuelle_id: mutuelle.into(),
                members: vec![member],
            })
            .await
    };
    for i in 0..10 {
        let ben = format!("RACE-{i}");
        let (r, g) = tokio::join!(
            upsert(p.a.addr, "MUT-R", ben.clone()),
            upsert(p.b.addr, "MUT-G", ben.clone())
        );
        assert!(r.is_ok() != g.is_ok(), "{ben}: {r:?} / {g:?}");
        let loser = r.as_ref().err().or(g.as_ref().err()).unwrap();
        assert_eq!(loser.code(), tonic::Code::FailedPrecondition, "{loser:?}");
        let winner = if r.is_ok() { "MUT-R" } else { "MUT-G" };
        for b in [&p.a, &p.b] {
            let e = client(b)
                .await
                .check_eligibility(elig(&ben))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(e.mutuelle_id, winner, "{ben}");
        }
    }
}
