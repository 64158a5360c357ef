//! Catch-up: a mutuelle is down while claims for it arrive (they wait,
//! PENDING_PARTNER), then comes back. Measures how fast the broker delivers
//! the backlog, and the eligibility latency of another partner (the rules
//! mutuelle) meanwhile, against its latency when the broker is idle.

use std::time::Instant;

use passerelle_adapters::sim::Mode;
use passerelle_broker::dev::Sims;
use passerelle_broker::server::Running;
use passerelle_proto::scheme::v1 as pb;
use pb::scheme_service_client::SchemeServiceClient;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::load::{Latency, Until, open_loop, run_n};
use crate::{claim_for, eligibility, pick};

pub struct CatchUp {
    pub claims: u64,
    pub arrival_secs: f64,
    pub drain_secs: f64,
    /// Claims that did not come back PENDING_PARTNER while the partner was
    /// down, or calls that failed.
    pub errors: u64,
    pub idle: Latency,
    pub draining: Latency,
}

impl CatchUp {
    pub fn delivery_rps(&self) -> f64 {
        self.claims as f64 / self.drain_secs.max(1e-9)
    }
}

/// The backlog goes to MUT-ENSEIGNANTS (INAM, the simulated gRPC mutuelle);
/// the live traffic is eligibility of CNSS members of MUT-SOLIDARITE.
pub async fn run(
    broker: &Running,
    sims: &Sims,
    ch: &[Channel],
    claims: u64,
    concurrency: usize,
    live_rps: f64,
    secs: f64,
) -> CatchUp {
    let live = {
        let ch = ch.to_vec();
        let req = eligibility("CNSS", "TG-1001");
        move |n: u64| {
            let mut c = SchemeServiceClient::new(pick(&ch, n));
            let req = req.clone();
            async move { c.check_eligibility(req).await.is_ok() }
        }
    };
    let idle = open_loop(
        live_rps,
        Until::Calls((live_rps * secs) as u64),
        0,
        live.clone(),
    )
    .await;

    // The outage: every claim is stored and answered PENDING_PARTNER.
    sims.grpc.set_mode(Mode::Unavailable);
    let arrival = Instant::now();
    let mut errors = run_n(claims, concurrency, {
        let ch = ch.to_vec();
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
    let mut changes = broker.broker.subscribe();
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
    // Its answers are asked for; wait until the broker has stored them all.
    loop {
        let left = broker
            .broker
            .store()
            .partner_activity("MUT-ENSEIGNANTS")
            .await
            .expect("store")
            .pending;
        if left == 0 {
            break;
        }
        changes.changed().await.expect("broker");
    }
    let drain_secs = back.elapsed().as_secs_f64();
    stop.send(true).expect("live load");
    let draining = during.await.expect("live load");
    errors += idle.errors + draining.errors;
    CatchUp {
        claims,
        arrival_secs,
        drain_secs,
        errors,
        idle,
        draining,
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
