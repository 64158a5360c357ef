//! The HTTP partners (fhir-r4 and xml-http) against two limits measured in
//! the same run:
//!
//! - the native gRPC partner: the same broker path (edge, routing, audit,
//!   partner call) with the partner's own protocol; each HTTP partner should
//!   reach 0.8 of its rate, and its p99 at one fixed load (half the
//!   saturation of the slowest of the three, a load each sustains) should
//!   stay within twice the gRPC partner's;
//! - a bare keep-alive HTTP/1.1 echo server on loopback driven through the
//!   adapters' own client ([`passerelle_adapters::http::HttpClient`], its
//!   default pool): what the HTTP path alone can do here, which our gRPC
//!   path is not.

use std::sync::Arc;
use std::time::Duration;

use passerelle_adapters::http::{self, HttpClient, PoolSettings};

use crate::Args;
use crate::load::{Until, median, open_loop, saturate};

/// An eligibility request's size (the FHIR one is about this).
const ECHO_BODY: usize = 600;

/// Starts the echo server; returns a call that posts one body through the
/// adapters' client and checks the echo.
pub async fn echo()
-> impl Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync + Clone + 'static
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    http::serve(
        listener,
        Arc::new(|req: http::Incoming| {
            Box::pin(async move { (200, "application/json", req.body.to_vec()) })
        }),
    );
    let client = HttpClient::new(
        &format!("http://{addr}"),
        None,
        Duration::from_secs(2),
        &PoolSettings::default(),
    )
    .expect("client");
    let body = vec![b'x'; ECHO_BODY];
    move |_| {
        let (client, body) = (client.clone(), body.clone());
        Box::pin(async move {
            match client
                .send(hyper::Method::POST, "/echo", &[], body.clone())
                .await
            {
                Ok(a) => a.status == 200 && a.body.len() == body.len(),
                Err(_) => false,
            }
        })
    }
}

/// A scenario's call, boxed so that paths of different types alternate.
pub type Call =
    Arc<dyn Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

pub fn boxed<F, Fut>(f: F) -> Call
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    Arc::new(move |n| Box::pin(f(n)))
}

/// One HTTP partner beside its limits.
pub struct Compared {
    pub name: &'static str,
    /// Its median saturation over the rounds.
    pub rps: f64,
    /// Medians over the rounds of its rate ÷ the other's in the same round.
    pub to_grpc: f64,
    pub to_echo: f64,
    /// Per round: [gRPC partner, this partner, echo] calls/s.
    pub rounds_rps: Vec<[f64; 3]>,
    /// The fixed load of its p99 comparison: half the slower of it and the
    /// gRPC partner (a load both sustain).
    pub load_rps: f64,
    pub p99_us: u64,
    pub grpc_p99_us: u64,
    pub p99_to_grpc: f64,
}

/// The HTTP partners compared with the gRPC partner and the echo.
pub struct Comparison {
    pub partners: Vec<Compared>,
    /// Failed calls (refusals by the broker's bounds apart).
    pub errors: u64,
    pub refused: u64,
}

/// Orders of the three paths in successive rounds: each path first, middle
/// and last in turn, so that a drift of the machine's speed within the run
/// (on two shared cores it exceeds the differences measured) favours none.
const ORDERS: [[usize; 3]; 4] = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1]];

/// Each HTTP partner against the gRPC partner and the echo: short
/// saturations of the three alternate over rounds, and each ratio is the
/// median of the rounds' ratios (as for the cost of mTLS); then the p99 of
/// the gRPC partner and of the HTTP partner at one fixed load, alternated
/// (A B B A).
pub async fn compare(
    args: &Args,
    grpc: Call,
    echo: Call,
    partners: Vec<(&'static str, Call)>,
) -> Comparison {
    let (rounds, secs) = if args.smoke {
        (1, 0.3)
    } else {
        (ORDERS.len(), args.seconds.min(2.0))
    };
    let mut out = Comparison {
        partners: Vec::new(),
        errors: 0,
        refused: 0,
    };
    let refused_before = crate::refused_so_far();
    let mut first = 4_000_000_000u64;
    for (name, partner) in partners {
        let paths = [grpc.clone(), partner.clone(), echo.clone()];
        let mut rounds_rps = Vec::new();
        for order in ORDERS.iter().take(rounds) {
            let mut rps = [0.0; 3];
            for &i in order {
                let call = paths[i].clone();
                let base = first;
                first += 100_000_000;
                let (r, e) = saturate(args.concurrency, secs, move |n| call(base + n)).await;
                rps[i] = r;
                out.errors += e;
            }
            rounds_rps.push(rps);
        }
        let own = median(&rounds_rps.iter().map(|r| r[1]).collect::<Vec<_>>());
        let grpc_rps = median(&rounds_rps.iter().map(|r| r[0]).collect::<Vec<_>>());
        let load = own.min(grpc_rps) * 0.5;
        let mut p99 = [Vec::new(), Vec::new()];
        for i in [0, 1, 1, 0] {
            let n = ((load * secs) as u64).max(1);
            let call = paths[i].clone();
            let l = open_loop(load, Until::Calls(n), first, move |n| call(n)).await;
            first += 100_000_000;
            out.errors += l.errors;
            p99[i].push(l.p99_us as f64);
        }
        let (grpc_p99, own_p99) = (median(&p99[0]), median(&p99[1]));
        out.partners.push(Compared {
            name,
            rps: own,
            to_grpc: median(
                &rounds_rps
                    .iter()
                    .map(|r| r[1] / r[0].max(1.0))
                    .collect::<Vec<_>>(),
            ),
            to_echo: median(
                &rounds_rps
                    .iter()
                    .map(|r| r[1] / r[2].max(1.0))
                    .collect::<Vec<_>>(),
            ),
            rounds_rps,
            load_rps: load,
            p99_us: own_p99 as u64,
            grpc_p99_us: grpc_p99 as u64,
            p99_to_grpc: own_p99 / grpc_p99.max(1.0),
        });
    }
    out.refused = crate::refused_so_far() - refused_before;
    out.errors -= out.refused;
    out
}

impl Comparison {
    pub fn json(&self) -> serde_json::Value {
        let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
        serde_json::json!(self.partners.iter().map(|p| serde_json::json!({
            "name": p.name,
            "saturation_rps": p.rps.round(),
            "ratio_to_grpc_partner": r3(p.to_grpc),
            "ratio_to_http_echo": r3(p.to_echo),
            "rounds_rps": p.rounds_rps.iter().map(|r| r.map(f64::round)).collect::<Vec<_>>(),
            "fixed_load_rps": p.load_rps.round(),
            "p99_us_at_fixed_load": p.p99_us,
            "grpc_partner_p99_us_at_fixed_load": p.grpc_p99_us,
            "p99_ratio_to_grpc_partner": r3(p.p99_to_grpc),
        })).collect::<Vec<_>>())
    }

    pub fn print(&self) {
        println!(
            "HTTP partners (targets: >= 0.8 x the gRPC partner's rate, p99 <= 2 x its p99 at the same \
             load; medians of alternating rounds with the gRPC partner and a keep-alive HTTP/1.1 echo \
             driven through the adapters' client, the HTTP path's limit):"
        );
        if self.refused > 0 {
            println!(
                "  ({} calls refused by the broker's bounds during these rounds, not counted as answers)",
                self.refused
            );
        }
        for p in &self.partners {
            let echo = median(&p.rounds_rps.iter().map(|r| r[2]).collect::<Vec<_>>());
            println!(
                "  {}: {:.0} rps = {:.3} x gRPC partner, {:.3} x HTTP echo ({:.0} rps); at {:.0} rps p99 \
                 {} us = {:.2} x the gRPC partner's {} us",
                p.name,
                p.rps,
                p.to_grpc,
                p.to_echo,
                echo,
                p.load_rps,
                p.p99_us,
                p.p99_to_grpc,
                p.grpc_p99_us
            );
        }
    }
}
