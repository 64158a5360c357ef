//! Catch-up: a mutuelle is down while claims for it arrive (they wait,
//! PENDING_PARTNER), then comes back. Measures how fast the broker delivers
//! the backlog, and the eligibility latency of another partner (the rules
//! mutuelle) meanwhile, against its latency when the broker is idle.

use std::path::Path;
use std::time::{Duration, Instant};

use passerelle_adapters::sim::Mode;
use passerelle_proto::admin::v1::ListPartnersRequest;
use passerelle_proto::admin::v1::admin_service_client::AdminServiceClient;
use passerelle_proto::scheme::v1 as pb;
use pb::scheme_service_client::SchemeServiceClient;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::child::{ChildBroker, ChildStore};
use crate::load::{Latency, Until, open_loop, peak_rss_kib, reset_peak_rss, run_n};
use crate::{channels, claim_for, eligibility, pick};

pub struct CatchUp {
    pub claims: u64,
    pub arrival_secs: f64,
    pub drain_secs: f64,
    /// Claims that did not come back PENDING_PARTNER while the partner was
    /// down, or calls that failed.
    pub errors: u64,
    pub idle: Latency,
    pub draining: Latency,
    /// Peak RSS of the broker's process, from before the outage to the end
    /// of the drain, KiB.
    pub broker_rss_kib: u64,
    /// Peak RSS of the benchmark's process meanwhile (load generator and
    /// simulated partners), KiB.
    pub bench_rss_kib: u64,
}

impl CatchUp {
    pub fn delivery_rps(&self) -> f64 {
        self.claims as f64 / self.drain_secs.max(1e-9)
    }
}

/// Claims still waiting for MUT-ENSEIGNANTS, as the broker's operators see
/// them (AdminService.ListPartners).
async fn pending(admin: &mut AdminServiceClient<Channel>) -> u32 {
    admin
        .list_partners(ListPartnersRequest {})
        .await
        .expect("ListPartners")
        .into_inner()
        .partners
        .into_iter()
        .find(|p| p.mutuelle_id == "MUT-ENSEIGNANTS")
        .expect("MUT-ENSEIGNANTS is a partner")
        .pending
}

/// On a fresh dev broker (SQLite, plaintext) in a process of its own, data
/// in `dir`; the simulated partners run here. The backlog goes to
/// MUT-ENSEIGNANTS (INAM, the simulated gRPC mutuelle); the live traffic is
/// eligibility of CNSS members of MUT-SOLIDARITE.
pub async fn run(
    dir: &Path,
    claims: u64,
    concurrency: usize,
    connections: usize,
    live_rps: f64,
    secs: f64,
    retry_per_second: Option<u32>,
) -> CatchUp {
    let sims = passerelle_broker::dev::start_sims(&dir.join("secrets"))
        .await
        .expect("simulated partners");
    let broker =
        ChildBroker::start(dir, sims.addrs, retry_per_second, ChildStore::Sqlite, false).await;
    let ch = channels(&format!("http://{}", broker.addr), None, connections).await;
    let mut admin = AdminServiceClient::new(ch[0].clone());
    let live = {
        let ch = ch.clone();
        let req = eligibility("CNSS", "TG-1001");
        move |n: u64| {
            let mut c = SchemeServiceClient::new(pick(&ch, n));
            let req = req.clone();
            async move { c.check_eligibility(req).await.is_ok() }
        }
    };
    // A fresh process: its first calls fill caches and connections. Warmed
    // up first, not recorded, so that the idle reference is not a cold one.
    open_loop(live_rps, Until::Calls(live_rps as u64), 0, live.clone()).await;
    let idle = open_loop(
        live_rps,
        Until::Calls((live_rps * secs) as u64),
        500_000_000,
        live.clone(),
    )
    .await;

    // The outage: every claim is stored and answered PENDING_PARTNER.
    reset_peak_rss(Some(broker.pid));
    reset_peak_rss(None);
    sims.grpc.set_mode(Mode::Unavailable);
    let arrival = Instant::now();
    let mut errors = run_n(claims, concurrency, {
        let ch = ch.clone();
        move |n| {
            let mut c = SchemeServiceClient::new(pick(&ch, n));
            async move {
                match c.coordinate_claim(catchup_claim(n)).await {
                    Ok(r) => r.into_inner().state == pb::ClaimState::PendingPartner as i32,
                    Err(_) => false,
                }
            }
        }
    })
    .await;
    let arrival_secs = arrival.elapsed().as_secs_f64();

    // Back: the broker notices at its next call to the partner (a retry due
    // within a second, the claims that arrived last) and drains.
    let mut seen = sims.grpc.seen();
    let before = seen.borrow().adjudications;
    let (stop, stopped) = watch::channel(false);
    let back = Instant::now();
    sims.grpc.set_mode(Mode::Normal);
    let during = tokio::spawn(open_loop(
        live_rps,
        Until::Signal(stopped),
        1_000_000_000,
        live,
    ));
    while seen.borrow_and_update().adjudications < before + claims {
        seen.changed().await.expect("simulated partner");
    }
    // Every answer is given; the broker stores the last ones. It is in
    // another process: asked every 5 ms (a few ms on a drain of seconds).
    while pending(&mut admin).await > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_secs = back.elapsed().as_secs_f64();
    stop.send(true).expect("live load");
    let draining = during.await.expect("live load");
    let broker_rss_kib = peak_rss_kib(Some(broker.pid));
    let bench_rss_kib = peak_rss_kib(None);
    errors += idle.errors + draining.errors;
    broker.stop().await;
    CatchUp {
        claims,
        arrival_secs,
        drain_secs,
        errors,
        idle,
        draining,
        broker_rss_kib,
        bench_rss_kib,
    }
}

/// A claim of INAM's member of MUT-ENSEIGNANTS.
fn catchup_claim(n: u64) -> pb::CoordinateClaimRequest {
    let mut c = claim_for(n, "BN-0");
    c.scheme_id = "INAM".into();
    c.claim_id = format!("CATCHUP-{n}");
    c.invoice_number = format!("INV-CATCHUP-{n}");
    c.beneficiary_id = "TG-2001".into();
    c
}
