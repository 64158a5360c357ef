//! The HTTP partners (fhir-r4 and xml-http) against two limits measured in
//! the same run:
//!
//! - the native gRPC partner: the same broker path (edge, routing, audit,
//!   partner call) with the partner's own protocol; each HTTP partner should
//!   reach 0.8 of its rate, and its p99 at one fixed load (half the gRPC
//!   partner's saturation) should stay within twice the gRPC partner's;
//! - a bare keep-alive HTTP/1.1 echo server on loopback driven through the
//!   adapters' own client ([`passerelle_adapters::http::HttpClient`], its
//!   default pool): what the HTTP path alone can do here, which our gRPC
//!   path is not.

use std::sync::Arc;
use std::time::Duration;

use passerelle_adapters::http::{self, HttpClient, PoolSettings};

use crate::load::{Latency, Until, open_loop};
use crate::{Args, Row};

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

/// One HTTP partner beside its limits.
pub struct Compared {
    pub name: &'static str,
    pub rps: f64,
    pub to_grpc: f64,
    pub to_echo: f64,
    pub p99_us: u64,
    pub p99_to_grpc: f64,
}

/// The HTTP partners compared with the gRPC partner and the echo.
pub struct Comparison {
    /// The fixed load of the p99 comparison: half the gRPC partner's
    /// saturation.
    pub load_rps: f64,
    pub grpc_p99_us: u64,
    pub echo_rps: f64,
    pub partners: Vec<Compared>,
    pub errors: u64,
}

/// Runs the fixed-load comparison. `calls`: the gRPC partner first, then
/// each HTTP partner, with their rows.
pub async fn compare<F, Fut>(args: &Args, echo: &Row, calls: Vec<(&Row, F)>) -> Option<Comparison>
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let (grpc, _) = calls.first()?;
    let load = grpc.saturation_rps * 0.5;
    let secs = args.secs();
    let mut lat: Vec<Latency> = Vec::new();
    for (_, call) in &calls {
        let n = ((load * secs) as u64).max(1);
        lat.push(open_loop(load, Until::Calls(n), 3_000_000_000, call.clone()).await);
    }
    let grpc_p99 = lat[0].p99_us.max(1);
    Some(Comparison {
        load_rps: load,
        grpc_p99_us: lat[0].p99_us,
        echo_rps: echo.saturation_rps,
        errors: lat.iter().map(|l| l.errors).sum(),
        partners: calls
            .iter()
            .zip(&lat)
            .skip(1)
            .map(|((row, _), l)| Compared {
                name: row.name,
                rps: row.saturation_rps,
                to_grpc: row.saturation_rps / grpc.saturation_rps.max(1.0),
                to_echo: row.saturation_rps / echo.saturation_rps.max(1.0),
                p99_us: l.p99_us,
                p99_to_grpc: l.p99_us as f64 / grpc_p99 as f64,
            })
            .collect(),
    })
}

impl Comparison {
    pub fn json(&self) -> serde_json::Value {
        let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
        serde_json::json!({
            "fixed_load_rps": self.load_rps.round(),
            "grpc_partner_p99_us": self.grpc_p99_us,
            "echo_rps": self.echo_rps.round(),
            "partners": self.partners.iter().map(|p| serde_json::json!({
                "name": p.name,
                "saturation_rps": p.rps.round(),
                "ratio_to_grpc_partner": r3(p.to_grpc),
                "ratio_to_http_echo": r3(p.to_echo),
                "p99_us_at_fixed_load": p.p99_us,
                "p99_ratio_to_grpc_partner": r3(p.p99_to_grpc),
            })).collect::<Vec<_>>(),
        })
    }

    pub fn print(&self) {
        println!(
            "HTTP partners (targets: >= 0.8 of the gRPC partner's rate; p99 at {:.0} rps <= 2x the \
             gRPC partner's {} us); the HTTP path's limit, a keep-alive HTTP/1.1 echo through the \
             same client: {:.0} rps",
            self.load_rps, self.grpc_p99_us, self.echo_rps
        );
        for p in &self.partners {
            println!(
                "  {}: {:.0} rps = {:.3} x gRPC partner, {:.3} x HTTP echo; p99 {} us = {:.2} x \
                 gRPC partner's",
                p.name, p.rps, p.to_grpc, p.to_echo, p.p99_us, p.p99_to_grpc
            );
        }
    }
}
