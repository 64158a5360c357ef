//! `passerelle-bench`: how fast the broker is against the limit of its own
//! stack on this machine.
//!
//! B is a bare tonic unary server (the standard health check) built here;
//! every other figure is printed as a ratio to it. Each scenario is run at
//! saturation (closed loop, `--concurrency` callers) and at a fixed offered
//! load of 0.25 B (open loop: latency counts from the intended send time, so
//! a stalled server cannot hide its queue). The broker runs in this process
//! (the `passerelle dev` set-up on SQLite), so "peak RSS" is that of broker
//! and load generator together: an upper bound for the broker.
//!
//! `--smoke` runs every scenario for a fraction of a second: it proves the
//! harness works (CI), its figures mean nothing.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use passerelle_broker::identity::Role;
use passerelle_broker::pki::Pki;
use passerelle_proto::common::v1::{CareCategory, Payee, SchemeLineOutcome};
use passerelle_proto::scheme::v1 as pb;
use pb::scheme_service_client::SchemeServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[derive(Parser, Debug)]
#[command(about = "Benchmark passerelle against a bare tonic server")]
struct Args {
    /// Seconds per measurement at saturation and at fixed load.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Concurrent callers at saturation; they share the connections below
    /// round-robin.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// HTTP/2 connections the callers share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Short run that only proves the harness works (CI).
    #[arg(long)]
    smoke: bool,
    /// Print only the JSON.
    #[arg(long)]
    json: bool,
}

/// One measured scenario.
struct Row {
    name: &'static str,
    saturation_rps: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    offered_rps: f64,
    errors: u64,
}

/// Closed loop: `concurrency` callers, each calling as fast as answers come.
async fn saturate<F, Fut>(concurrency: usize, secs: f64, call: F) -> (f64, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let seq = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (call, seq, errors) = (call.clone(), seq.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < end {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                if !call(n).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("caller");
    }
    let rps = total as f64 / start.elapsed().as_secs_f64();
    (rps, errors.load(Ordering::Relaxed))
}

/// Open loop at `rate` calls per second; latency from the intended start.
async fn fixed_load<F, Fut>(rate: f64, secs: f64, first: u64, call: F) -> (Histogram<u64>, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let call = Arc::new(call);
    let total = (rate * secs).max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = start + interval * i as u32;
        tokio::time::sleep_until(intended).await;
        let fut = call(first + i);
        tasks.push(tokio::spawn(async move {
            let ok = fut.await;
            (intended.elapsed().as_micros() as u64, ok)
        }));
    }
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut errors = 0;
    for t in tasks {
        let (us, ok) = t.await.expect("call");
        h.saturating_record(us.max(1));
        if !ok {
            errors += 1;
        }
    }
    (h, errors)
}

async fn measure<F, Fut>(
    name: &'static str,
    args: &Args,
    rate: Option<f64>,
    first: u64,
    call: F,
) -> Row
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let secs = if args.smoke { 0.3 } else { args.seconds };
    let (rps, mut errors) = saturate(args.concurrency, secs, {
        let call = call.clone();
        move |n| call(first + n)
    })
    .await;
    // Fixed load at 0.25 B (or of this scenario's own saturation for B).
    let offered = rate.unwrap_or(rps * 0.25);
    let (h, e) = fixed_load(offered, secs, first + 1_000_000_000, call).await;
    errors += e;
    Row {
        name,
        saturation_rps: rps,
        p50_us: h.value_at_quantile(0.50),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        offered_rps: offered,
        errors,
    }
}

async fn channels(url: &str, tls: Option<ClientTlsConfig>, n: usize) -> Vec<Channel> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut e = Endpoint::from_shared(url.to_string()).expect("url");
        if let Some(t) = &tls {
            e = e.tls_config(t.clone()).expect("tls");
        }
        out.push(e.connect().await.expect("connect"));
    }
    out
}

/// The dev certificate of `scheme`: each scheme may only act for itself.
fn scheme_tls(certs: &Path, scheme: &str) -> ClientTlsConfig {
    let (crt, key) = Pki::new(certs).client_paths(Role::Scheme, scheme);
    let read = |p: &Path| std::fs::read(p).expect("dev certificate");
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&certs.join("ca.crt"))))
        .identity(Identity::from_pem(read(&crt), read(&key)))
}

fn eligibility(scheme: &str, beneficiary: &str) -> pb::CheckEligibilityRequest {
    pb::CheckEligibilityRequest {
        scheme_id: scheme.into(),
        beneficiary_id: beneficiary.into(),
        date_of_care: "2026-11-20".into(),
        currency: "XOF".into(),
        ..Default::default()
    }
}

/// A one-line consultation of 5,000 XOF, scheme paying 70% of it.
fn claim(n: u64) -> pb::CoordinateClaimRequest {
    pb::CoordinateClaimRequest {
        scheme_id: "CNSS".into(),
        claim_id: format!("BENCH-{n}"),
        provider_id: "CHU-SO".into(),
        invoice_number: format!("INV-BENCH-{n}"),
        payee: Payee::Provider as i32,
        beneficiary_id: "TG-1001".into(),
        date_of_care: "2026-11-20".into(),
        currency: "XOF".into(),
        lines: vec![pb::ClaimLine {
            act_code: "C".into(),
            care_category: CareCategory::Consultation as i32,
            quantity: 1,
            billed: 5000,
            tariff_base: 5000,
            scheme_share: 3500,
            scheme_outcome: SchemeLineOutcome::Covered as i32,
            scheme_reason: String::new(),
        }],
        ..Default::default()
    }
}

fn pick<T: Clone>(v: &[T], n: u64) -> T {
    v[(n as usize) % v.len()].clone()
}

/// Peak resident set of this process (broker and load generator), KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn bare_server() -> std::net::SocketAddr {
    let (_reporter, service) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut rows = Vec::new();

    // B: the limit of the stack.
    let bare = channels(
        &format!("http://{}", bare_server().await),
        None,
        args.connections,
    )
    .await;
    let b = measure("bare tonic (B)", &args, None, 0, move |n| {
        let mut c = HealthClient::new(pick(&bare, n));
        async move { c.check(HealthCheckRequest::default()).await.is_ok() }
    })
    .await;
    let quarter_b = b.saturation_rps * 0.25;
    rows.push(b);

    // The dev broker, once in plaintext and once with mutual TLS.
    let dir = tempfile::tempdir().expect("tempdir");
    let any = "127.0.0.1:0".parse().expect("addr");
    let plain = passerelle_broker::dev::start(&dir.path().join("plain"), any, true)
        .await
        .expect("broker (plaintext)");
    let tls_dir = dir.path().join("tls");
    let tls = passerelle_broker::dev::start(&tls_dir, any, false)
        .await
        .expect("broker (mTLS)");
    let plain_ch = channels(&format!("http://{}", plain.addr), None, args.connections).await;
    let tls_url = format!("https://{}", tls.addr);
    let certs = tls_dir.join("certs");
    let tls_ch = channels(&tls_url, Some(scheme_tls(&certs, "CNSS")), args.connections).await;
    let tls_inam = channels(&tls_url, Some(scheme_tls(&certs, "INAM")), args.connections).await;

    let scenarios: [(&'static str, &Vec<Channel>, &'static str, &'static str); 4] = [
        ("eligibility rules", &plain_ch, "CNSS", "TG-1001"),
        ("eligibility rules mTLS", &tls_ch, "CNSS", "TG-1001"),
        ("eligibility grpc partner", &plain_ch, "INAM", "TG-2001"),
        (
            "eligibility grpc partner mTLS",
            &tls_inam,
            "INAM",
            "TG-2001",
        ),
    ];
    for (name, ch, scheme, who) in scenarios {
        let (ch, req) = (ch.clone(), eligibility(scheme, who));
        rows.push(
            measure(name, &args, Some(quarter_b), 0, move |n| {
                let mut c = SchemeServiceClient::new(pick(&ch, n));
                let req = req.clone();
                async move { c.check_eligibility(req).await.is_ok() }
            })
            .await,
        );
    }

    // Claims: every call a new claim id, then resends of stored ones.
    let mut first = 0;
    for (name, ch) in [
        ("claims SQLite", &plain_ch),
        ("claims SQLite mTLS", &tls_ch),
    ] {
        let ch = ch.clone();
        rows.push(
            measure(name, &args, Some(quarter_b), first, move |n| {
                let mut c = SchemeServiceClient::new(pick(&ch, n));
                async move { c.coordinate_claim(claim(n)).await.is_ok() }
            })
            .await,
        );
        first += 10_000_000_000;
    }
    let ch = plain_ch.clone();
    // Claims 0..100 are stored by the run above: resend them.
    rows.push(
        measure(
            "duplicate resends SQLite",
            &args,
            Some(quarter_b),
            0,
            move |n| {
                let mut c = SchemeServiceClient::new(pick(&ch, n));
                async move { c.coordinate_claim(claim(n % 100)).await.is_ok() }
            },
        )
        .await,
    );

    let rss_kib = peak_rss_kib();
    plain.shutdown().await;
    tls.shutdown().await;
    report(&args, &rows, rss_kib);
    // A figure with failed calls in it is not a figure.
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r.errors > 0)
        .map(|r| r.name)
        .collect();
    if !failed.is_empty() {
        eprintln!("error: calls failed in: {}", failed.join(", "));
        std::process::exit(1);
    }
}

fn report(args: &Args, rows: &[Row], rss_kib: u64) {
    let b = rows[0].saturation_rps.max(1.0);
    let json = serde_json::json!({
        "smoke": args.smoke,
        "seconds": if args.smoke { 0.3 } else { args.seconds },
        "concurrency": args.concurrency,
        "connections": args.connections,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "b_rps": b,
        "peak_rss_kib": rss_kib,
        "scenarios": rows.iter().map(|r| serde_json::json!({
            "name": r.name,
            "saturation_rps": r.saturation_rps.round(),
            "ratio_to_b": (r.saturation_rps / b * 1000.0).round() / 1000.0,
            "offered_rps": r.offered_rps.round(),
            "p50_us": r.p50_us,
            "p99_us": r.p99_us,
            "p999_us": r.p999_us,
            "errors": r.errors,
        })).collect::<Vec<_>>(),
    });
    if !args.json {
        println!(
            "{:<32} {:>10} {:>7} {:>9} {:>8} {:>8} {:>8} {:>6}",
            "scenario", "sat. rps", "x B", "offered", "p50 us", "p99 us", "p99.9 us", "errors"
        );
        for r in rows {
            println!(
                "{:<32} {:>10.0} {:>7.3} {:>9.0} {:>8} {:>8} {:>8} {:>6}",
                r.name,
                r.saturation_rps,
                r.saturation_rps / b,
                r.offered_rps,
                r.p50_us,
                r.p99_us,
                r.p999_us,
                r.errors
            );
        }
        println!(
            "peak RSS (broker + load generator): {:.1} MiB",
            rss_kib as f64 / 1024.0
        );
    }
    println!("{json}");
}
