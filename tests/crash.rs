//! kill -9 of the broker between the partner's answer and the commit: after a
//! restart on the same database the claim completes, and the partner saw one
//! adjudication key.

use crate::common::process::{load_roster, migrate, spawn, wait_stderr};
use crate::common::*;
use passerelle_proto::common::v1::CareCategory as C;
use passerelle_proto::scheme::v1::ClaimState;
use passerelle_proto::scheme::v1::scheme_service_client::SchemeServiceClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_partner_answer_and_commit() {
    let (sim, sim_addr) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("passerelle.toml");
    std::fs::write(&config, config_text(sim_addr, 500)).unwrap();

    migrate(&config);
    // The roster is loaded through the API, as a mutuelle would.
    let mut first = spawn(&config, Some("after_partner_answer"));
    load_roster(first.addr).await;
    let mut client = SchemeServiceClient::new(channel(first.addr).await);
    let req = claim(
        "crash-1",
        "G-OK",
        &[
            covered(C::Consultation, 5000, 5000, 3500),
            covered(C::Lab, 2000, 2000, 1600),
        ],
    );
    let call = tokio::spawn({
        let mut c = client.clone();
        let r = req.clone();
        async move { c.coordinate_claim(r).await }
    });
    // Wait for the broker to hold the partner's answer, then kill -9 it.
    assert!(wait_stderr(&mut first, "failpoint after_partner_answer reached").await);
    assert_eq!(sim.adjudication_keys().len(), 1);
    first.kill(); // SIGKILL
    assert!(
        call.await.unwrap().is_err(),
        "the caller never got an answer"
    );

    // Restart on the same database: the retry worker finishes the claim.
    let second = spawn(&config, None);
    client = SchemeServiceClient::new(channel(second.addr).await);
    let done = wait_state(&mut client, "CNSS", "crash-1", ClaimState::Coordinated).await;
    assert_eq!(shares(&done), vec![1500, 400]);
    assert_balanced(&done);
    assert_eq!(
        sim.adjudication_keys().len(),
        1,
        "one adjudication key at the partner"
    );
    assert!(
        sim.seen().borrow().adjudicate_calls >= 2,
        "asked again after the restart"
    );
    // The scheme's resend gets the same answer.
    let again = client.coordinate_claim(req).await.unwrap().into_inner();
    assert_eq!(shares(&again), vec![1500, 400]);
}
