//! kill -9 of the broker between the partner's answer and the commit: after a
//! restart on the same database the claim completes, and the partner saw one
//! adjudication key.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use passerelle_adapters::sim::SimMutuelle;
use passerelle_proto::common::v1::CareCategory as C;
use passerelle_proto::scheme::v1::ClaimState;
use passerelle_proto::scheme::v1::scheme_service_client::SchemeServiceClient;

struct Broker {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    stderr: Option<std::sync::mpsc::Receiver<String>>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `passerelle migrate --config FILE`, as an operator runs it before serve.
pub fn migrate(config: &std::path::Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["migrate", "--config"])
        .arg(config)
        .output()
        .expect("migrate runs");
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("schema at version "));
}

fn spawn(config: &std::path::Path, failpoint: Option<&str>) -> Broker {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    cmd.args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match failpoint {
        Some(f) => cmd.env("PASSERELLE_FAILPOINT", f),
        None => cmd.env_remove("PASSERELLE_FAILPOINT"),
    };
    let mut child = cmd.spawn().expect("broker starts");
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a line")
        .expect("utf-8");
    let addr = line
        .strip_prefix("passerelle listening on ")
        .unwrap_or_else(|| panic!("unexpected {line:?}"))
        .parse()
        .unwrap();
    // Drain stderr on a thread so the broker never blocks on a full pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    Broker {
        child,
        addr,
        stderr: Some(rx),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_partner_answer_and_commit() {
    let sim = SimMutuelle::new(
        "MUT-G",
        members()
            .into_iter()
            .filter(|m| m.mutuelle_id == "MUT-G")
            .collect(),
        vec![product("MUT-G")],
    );
    let (sim_addr, _t) = sim.clone().start().await.unwrap();
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
    let stderr = first.stderr.take().unwrap();
    let reached = tokio::task::spawn_blocking(move || {
        stderr
            .iter()
            .any(|l| l.contains("failpoint after_partner_answer reached"))
    })
    .await
    .unwrap();
    assert!(reached);
    assert_eq!(sim.adjudication_keys().len(), 1);
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
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

async fn load_roster(addr: std::net::SocketAddr) {
    use passerelle_proto::roster::v1 as r;
    let mut roster = r::roster_service_client::RosterServiceClient::new(channel(addr).await);
    for mutuelle in ["MUT-R", "MUT-G"] {
        let members = members()
            .into_iter()
            .filter(|m| m.mutuelle_id == mutuelle)
            .map(|m| r::Member {
                scheme_id: m.scheme_id,
                beneficiary_id: m.beneficiary_id,
                member_number: m.member_number,
                household_id: m.household_id,
                contribution_paid_until: m
                    .paid_until
                    .map(passerelle_domain::date::format)
                    .unwrap_or_default(),
                products: m
                    .products
                    .iter()
                    .map(|p| r::ProductPeriod {
                        product_id: p.product_id.clone(),
                        start_date: passerelle_domain::date::format(p.start),
                        end_date: String::new(),
                    })
                    .collect(),
            })
            .collect();
        roster
            .upsert_members(r::UpsertMembersRequest {
                mutuelle_id: mutuelle.into(),
                members,
            })
            .await
            .unwrap();
    }
}
