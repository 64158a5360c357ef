//! `passerelle-bench`: how fast the broker is against the limit of its own
//! stack on this machine, in one run.
//!
//! B is a bare tonic unary server (the standard health check) built here;
//! every broker figure is printed as a ratio to it. Each scenario is run at
//! saturation (closed loop, `--concurrency` callers), then open loop at a
//! fixed offered load of 0.25 B and at half the scenario's own saturation
//! (latency counts from the intended send time, so a stalled server cannot
//! hide its queue). Claims on PostgreSQL are also a ratio to P, the same
//! database work run by pgbench (`bench/pgbench/claim.sql`). The catch-up
//! scenario takes a partner down while claims arrive, brings it back, and
//! times the delivery of the backlog under live eligibility traffic.
//!
//! The brokers of the load scenarios run in this process (the `passerelle
//! dev` set-up), so their peak RSS is that of broker, simulated partners and
//! load generator together: an upper bound for the broker. The catch-up's
//! broker runs in a process of its own ([`child`]): 100,000 claims make the
//! simulated partner's memory of its answers large, and the broker's own
//! figure is the one that counts.
//!
//! `--smoke` runs every scenario for a fraction of a second: it proves the
//! harness works (CI), its figures mean nothing.

#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    clippy::print_stdout,
    reason = "a measuring tool: rates and percentiles in floats, a pacing thread that sleeps, a report on stdout"
)]

mod catchup;
mod child;
mod console;
mod cpu;
mod engine;
mod http_partners;
mod load;
mod postgres;
mod report;
mod scale;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use load::{
    Latency, Until, open_loop, open_loop_histogram, open_loop_lanes, peak_rss_kib, reset_peak_rss,
    saturate,
};
use passerelle_broker::identity::Role;
use passerelle_broker::pki::Pki;
use passerelle_broker::server::Running;
use passerelle_domain::date;
use passerelle_domain::{Member, ProductPeriod};
use passerelle_proto::common::v1::{CareCategory, Payee, SchemeLineOutcome};
use passerelle_proto::scheme::v1 as pb;
use pb::scheme_service_client::SchemeServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[derive(Parser, Debug)]
#[command(about = "Benchmark passerelle against a bare tonic server and pgbench")]
struct Args {
    /// Seconds per measurement (saturation, and each fixed load; at scale,
    /// eligibility's open loops at a fifth of the rate run as many calls as
    /// those at half, two and a half times as long).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Concurrent callers at saturation; they share the connections below
    /// round-robin.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// HTTP/2 connections the callers share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Claims that arrive while the partner is down in the catch-up.
    #[arg(long, default_value_t = 100_000)]
    catchup_claims: u64,
    /// Live eligibility checks per second during the catch-up (a busy
    /// national scheme's counters; 0: a quarter of the rules path's
    /// saturation, a stress test).
    #[arg(long, default_value_t = 1000.0)]
    catchup_live_rps: f64,
    /// The catch-up broker's `[retry] max_per_second`, the pace of a
    /// backlog's drain (default: the broker's default).
    #[arg(long)]
    catchup_pace: Option<u32>,
    /// PostgreSQL for the PostgreSQL scenarios (a schema of its own is made
    /// and dropped); default PASSERELLE_TEST_POSTGRES, else the local server.
    #[arg(long)]
    postgres: Option<String>,
    /// The pgbench to run for P.
    #[arg(long, default_value = "pgbench")]
    pgbench: String,
    /// Pooled connections of each PostgreSQL broker (`[store.postgres]
    /// pool_size`), and pgbench's clients for P0 and P: for sizing the pool
    /// (docs/PERFORMANCE.md, "Connection use").
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pg_pool: u16,
    /// Claims seeded on PostgreSQL for "claims PostgreSQL at scale" (a
    /// year of a country, scaled: see bench/src/scale.rs); 20,000 in smoke
    /// runs.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    scale: u64,
    /// Short run that only proves the harness works (CI).
    #[arg(long)]
    smoke: bool,
    /// Print only the JSON.
    #[arg(long)]
    json: bool,
    /// Leave the run's PostgreSQL schemas (the seeded rows, and the nearly
    /// empty store's of eligibility at scale) in place, for EXPLAIN and
    /// experiments on them; their names are printed.
    #[arg(long)]
    keep_schema: bool,
    /// Run only the scenarios whose name contains this text, or one of
    /// several texts separated by commas (B is always measured: every
    /// figure is a ratio to it). For profiling one path.
    #[arg(long)]
    only: Option<String>,
    /// Internal: serve a dev broker with data in this folder (the catch-up's
    /// broker, in a process of its own) until stdin closes.
    #[arg(long, hide = true, requires = "sims")]
    serve_broker: Option<std::path::PathBuf>,
    /// Internal: the simulated partners' addresses for --serve-broker,
    /// GRPC,FHIR,XML.
    #[arg(long, hide = true)]
    sims: Option<String>,
    /// Internal: --serve-broker on this schema of --postgres (migrated by
    /// the parent) instead of SQLite in its folder.
    #[arg(long, hide = true, requires_all = ["postgres", "serve_broker"])]
    serve_schema: Option<String>,
    /// Internal: --serve-broker over mutual TLS, with the console.
    #[arg(long, hide = true, requires = "serve_broker")]
    serve_console: bool,
}

impl Args {
    fn wants(&self, name: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|o| name.contains(o)))
    }

    fn secs(&self) -> f64 {
        if self.smoke { 0.3 } else { self.seconds }
    }
}

/// Calls the broker refused by one of its documented bounds (a partner
/// "busy": `max_calls_per_partner`; RESOURCE_EXHAUSTED: the in-flight
/// limits) rather than failed. On two cores shared by the load generator,
/// the brokers and the simulated partners, a stall of a few milliseconds
/// under an open loop queues past those bounds: such refusals are the
/// broker working as documented. They are counted apart and reported; any
/// other error fails the run.
static REFUSED: AtomicU64 = AtomicU64::new(0);

fn refused_so_far() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// True when the call was answered; a refusal by the broker's bounds is
/// counted in [`REFUSED`] (and is no answer).
fn answered<T>(r: Result<T, tonic::Status>) -> bool {
    match r {
        Ok(_) => true,
        Err(s) => {
            let bound = s.code() == tonic::Code::ResourceExhausted
                || (s.code() == tonic::Code::Unavailable
                    && s.message()
                        .contains(" is busy: too many calls are waiting on it"));
            if bound {
                REFUSED.fetch_add(1, Ordering::Relaxed);
            }
            false
        }
    }
}

/// One measured scenario.
pub(crate) struct Row {
    name: &'static str,
    saturation_rps: f64,
    errors: u64,
    /// At 0.25 B.
    quarter_b: Latency,
    /// At half of this scenario's own saturation: a load it sustains.
    sustained: Latency,
    peak_rss_kib: u64,
    /// For B only: its saturation measured again at the end of the run.
    b_end_rps: Option<f64>,
    /// Calls refused by the broker's bounds (not in `errors`).
    refused: u64,
    /// PostgreSQL rows: the database's CPU per claim during the
    /// saturation, µs ([`cpu`]).
    db_cpu_us: Option<f64>,
    /// PostgreSQL rows: the bench process's own CPU per claim (broker,
    /// load generator, simulated partners), µs.
    own_cpu_us: Option<f64>,
}

/// Saturation, then the two fixed loads (`quarter_b`: None for B itself,
/// which uses a quarter of its own saturation).
async fn measure<F, Fut>(
    name: &'static str,
    args: &Args,
    quarter_b: Option<f64>,
    first: u64,
    call: F,
) -> Row
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let secs = args.secs();
    reset_peak_rss(None);
    let refused_before = refused_so_far();
    let (rps, errors, cpu_us) = saturate_cpu(args.concurrency, secs, {
        let call = call.clone();
        move |n| call(first + n)
    })
    .await;
    let (db_cpu_us, own_cpu_us) = if name.contains("PostgreSQL") {
        cpu_us.unzip()
    } else {
        (None, None)
    };
    let at = |rate: f64, offset: u64| {
        let calls = ((rate * secs) as u64).max(1);
        open_loop(rate, Until::Calls(calls), first + offset, call.clone())
    };
    let mut quarter_rate = quarter_b.unwrap_or(rps * 0.25);
    if args.smoke {
        // Smoke runs only prove the harness: no overload to drain.
        quarter_rate = quarter_rate.min(rps * 0.5);
    }
    // A scenario that saturates below 2 x 0.25 B cannot take it: above half
    // its capacity, on two cores shared by the load generator, the broker
    // and the simulated partners, a stall of a few milliseconds queues
    // hundreds of calls, and the open loop measures that queue and the
    // broker's bounds refusing it (a partner's `max_calls_per_partner`:
    // "busy"), not the service. Reported as over capacity instead of run.
    let quarter_b = if rps < quarter_rate * 2.0 {
        Latency {
            offered_rps: quarter_rate,
            over_capacity: true,
            ..Default::default()
        }
    } else {
        at(quarter_rate, 1_000_000_000).await
    };
    let sustained = at(rps * 0.5, 2_000_000_000).await;
    let refused = refused_so_far() - refused_before;
    Row {
        name,
        saturation_rps: rps,
        errors: errors + quarter_b.errors + sustained.errors - refused,
        quarter_b,
        sustained,
        peak_rss_kib: peak_rss_kib(None),
        b_end_rps: None,
        refused,
        db_cpu_us,
        own_cpu_us,
    }
}

/// What mutual TLS costs on one path, from alternating saturation rounds.
pub(crate) struct MtlsCost {
    name: &'static str,
    /// 1 - mTLS rps / plaintext rps, per round.
    rounds: Vec<f64>,
    /// Calls/s of each round, [plaintext, mTLS]: a cost that moves because
    /// one broker slowed down shows here.
    rounds_rps: Vec<[f64; 2]>,
    errors: u64,
}

impl MtlsCost {
    fn median(&self) -> f64 {
        load::median(&self.rounds)
    }
}

/// Rounds of [`p0_rounds`].
const P0_ROUNDS: usize = 3;

/// Claims on PostgreSQL against P0 in alternating runs: P0, the claims, P0,
/// the claims, ..., P0. P0 measured once before and once after every
/// other PostgreSQL row is minutes away from each of them, and on two
/// shared cores the host's speed drifts by more than the figure sought
/// within those minutes (P0 moved from 1,554 to 2,327/s in one run of
/// 3 December). Here each round's ratio is the claims' rate over the mean
/// of the P0 runs just before and just after it, every run as long as the
/// others and each started on vacuumed tables; the figure is the median
/// of the rounds. Call `n` of round `k` is `first + k * 10^8 + n`.
async fn p0_rounds<F, Fut>(
    name: &'static str,
    db: &postgres::BenchDb,
    dir: &std::path::Path,
    args: &Args,
    first: u64,
    claims: F,
) -> postgres::P0Rounds
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = bool> + Send,
{
    // pgbench runs whole seconds (`-T`): the claims run as long.
    let (rounds, secs) = if args.smoke {
        (1, 0.3)
    } else {
        (P0_ROUNDS, args.secs().ceil().max(1.0))
    };
    let mut out = postgres::P0Rounds {
        name,
        p0_tps: Vec::new(),
        claims_rps: Vec::new(),
        errors: 0,
        failed: None,
    };
    postgres::vacuum(db).await;
    out.push_p0(postgres::p0(db, dir, &args.pgbench, secs, args.smoke).await);
    for k in 0..rounds {
        postgres::vacuum(db).await;
        let c = claims.clone();
        let base = first + k as u64 * 100_000_000;
        let (rps, errors) = saturate(args.concurrency, secs, move |n| c(base + n)).await;
        out.claims_rps.push(rps);
        out.errors += errors;
        postgres::vacuum(db).await;
        out.push_p0(postgres::p0(db, dir, &args.pgbench, secs, args.smoke).await);
    }
    out
}

/// [`saturate`], with what a call cost the two cores: the database's CPU
/// and this process's, in µs ([`cpu::per_transaction_us`]; `None` where
/// /proc cannot be read).
async fn saturate_cpu<F, Fut>(
    concurrency: usize,
    secs: f64,
    call: F,
) -> (f64, u64, Option<(f64, f64)>)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let (before, started) = (cpu::Sample::now(), std::time::Instant::now());
    let (rps, errors) = saturate(concurrency, secs, call).await;
    let calls = rps * started.elapsed().as_secs_f64();
    (
        rps,
        errors,
        cpu::per_transaction_us(before, cpu::Sample::now(), calls),
    )
}

/// Rounds of eligibility on the seeded store against the nearly empty
/// one, as [`p0_rounds`] alternates claims with P0: the empty store's
/// saturation and open loops, then each round the seeded store's and the
/// empty store's again, so that each seeded figure sits between two empty
/// ones (a drift of the host favours neither). The open loops run at two
/// rates, fractions of the empty store's first saturation
/// ([`scale::HALF`], [`scale::LOW`]), each as many calls. The engine's
/// windows are those of the first empty open loop at half and of the first
/// round. Each round ends with both stores in one open loop, call by call,
/// at half in all ([`scale::PairedLoops`]): as many calls to each store as
/// a window at one rate. Returns the figures (the engine's left to fill) and the calls
/// that failed. Calls shed (the open loop 1,024 calls behind) and refused
/// by the broker's bounds are figures, printed with the ratios.
async fn eligibility_rounds<E, S>(
    args: &Args,
    db: &postgres::BenchDb,
    empty_calls: E,
    seeded_calls: S,
    windows: &mut Vec<(&'static str, engine::Window, u64)>,
) -> (scale::EligibilityAtScale, u64)
where
    E: Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>>
        + Send
        + Sync
        + Clone
        + 'static,
    S: Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>>
        + Send
        + Sync
        + Clone
        + 'static,
{
    let secs = args.secs();
    let rounds = if args.smoke { 1 } else { ELIGIBILITY_ROUNDS };
    // Each seeded call another member, across every window, until every
    // member has been called: while members (a fifth of the claims)
    // outnumber the seeded calls, no round asks for a member an earlier
    // one asked for (neighbours still share pages); on a small store later
    // rounds ask again, on warm pages, which favours the seeded store.
    let next = Arc::new(AtomicU64::new(0));
    let seeded_calls = move |_| seeded_calls(next.fetch_add(1, Ordering::Relaxed));
    // Warm: both pools' connections prepare their statements.
    let _ = saturate(args.concurrency, secs.min(1.0), empty_calls.clone()).await;
    let _ = saturate(args.concurrency, secs.min(1.0), seeded_calls.clone()).await;
    let refused_before = refused_so_far();
    let mut checkpoints_at = engine::checkpoints(db).await;
    let (first_rps, mut errors, first_cpu) =
        saturate_cpu(args.concurrency, secs, empty_calls.clone()).await;
    let (half, low) = (
        scale::OpenLoops::new(first_rps, scale::HALF),
        scale::OpenLoops::new(first_rps, scale::LOW),
    );
    // As many calls at either rate: the two p99s are of as many calls.
    let calls = ((half.rate * secs) as u64).max(200);
    let half_rate = half.rate;
    let mut out = scale::EligibilityAtScale {
        empty_rps: vec![first_rps],
        empty_cpu: vec![first_cpu],
        scale_cpu: Vec::new(),
        scale_rps: Vec::new(),
        half,
        low,
        paired: scale::PairedLoops {
            rate: (first_rps * scale::HALF).max(2.0),
            ..Default::default()
        },
        in_turn: scale::InTurnLoops {
            rate: half_rate,
            ..Default::default()
        },
        refused: 0,
        checkpoints: Vec::new(),
        engine: Default::default(),
        warmed: None,
    };
    // One store's open loops at both rates: the first at half watched
    // when `watch` names its window (a watch samples until it is finished).
    async fn both<F>(
        out: &mut scale::EligibilityAtScale,
        seeded: bool,
        calls: u64,
        call: F,
        db: &postgres::BenchDb,
        watch: Option<&'static str>,
        windows: &mut Vec<(&'static str, engine::Window, u64)>,
    ) where
        F: Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>>
            + Send
            + Sync
            + Clone
            + 'static,
    {
        for (i, loops) in [&mut out.half, &mut out.low].into_iter().enumerate() {
            let w = match watch {
                Some(name) if i == 0 => Some((name, engine::watch(db).await)),
                _ => None,
            };
            let (latency, stolen) =
                cpu::with_steal(open_loop(loops.rate, Until::Calls(calls), 0, call.clone())).await;
            if let Some((name, w)) = w {
                windows.push((name, w.finish().await, calls));
            }
            let (l, s) = if seeded {
                (&mut loops.scale, &mut loops.scale_steal_ms)
            } else {
                (&mut loops.empty, &mut loops.empty_steal_ms)
            };
            l.push(latency);
            s.push(stolen);
        }
    }
    both(
        &mut out,
        false,
        calls,
        empty_calls.clone(),
        db,
        Some("eligibility on the nearly empty store, open loop"),
        windows,
    )
    .await;
    for k in 0..rounds {
        // The first round's seeded windows are watched, and only they.
        let w = if k == 0 {
            Some(engine::watch(db).await)
        } else {
            None
        };
        let (rps, e, cpu) = saturate_cpu(args.concurrency, secs, seeded_calls.clone()).await;
        errors += e;
        out.scale_cpu.push(cpu);
        if let Some(w) = w {
            windows.push((
                "eligibility on the seeded store, saturation",
                w.finish().await,
                (rps * secs) as u64,
            ));
        }
        out.scale_rps.push(rps);
        let watch = (k == 0).then_some("eligibility on the seeded store, open loop");
        both(
            &mut out,
            true,
            calls,
            seeded_calls.clone(),
            db,
            watch,
            windows,
        )
        .await;
        let (rps, e, cpu) = saturate_cpu(args.concurrency, secs, empty_calls.clone()).await;
        errors += e;
        out.empty_cpu.push(cpu);
        out.empty_rps.push(rps);
        both(
            &mut out,
            false,
            calls,
            empty_calls.clone(),
            db,
            None,
            windows,
        )
        .await;
        // Both stores in one loop, call by call, at half in all: the
        // same moments of the host in both stores' p99 (`PairedLoops`).
        let (empty, seeded) = (empty_calls.clone(), seeded_calls.clone());
        let (lanes, stolen) = cpu::with_steal(open_loop_lanes(
            out.paired.rate,
            Until::Calls(2 * calls),
            0,
            2,
            move |n| {
                if n % 2 == 0 {
                    empty(n / 2)
                } else {
                    seeded(n / 2)
                }
            },
        ))
        .await;
        if let [e, s] = lanes[..] {
            out.paired.rounds.push(e, s);
        }
        out.paired.steal_ms.push(stolen);
        // Each store alone at half, in short windows taken in turn
        // (`InTurnLoops`): a round's worth of calls to each.
        let (mut empty_calls_in_turn, mut seeded_calls_in_turn) =
            (load::Pooled::default(), load::Pooled::default());
        let (mut empty_stolen, mut seeded_stolen) = (Some(0.0), Some(0.0));
        let short = (calls / scale::IN_TURN_WINDOWS as u64).max(1);
        for seeded in scale::in_turn_order(scale::IN_TURN_WINDOWS, k % 2 == 1) {
            let (empty, scale) = (empty_calls.clone(), seeded_calls.clone());
            let (window, stolen) = cpu::with_steal(open_loop_histogram(
                out.in_turn.rate,
                Until::Calls(short),
                0,
                move |n| if seeded { scale(n) } else { empty(n) },
            ))
            .await;
            let (pooled, sum) = if seeded {
                (&mut seeded_calls_in_turn, &mut seeded_stolen)
            } else {
                (&mut empty_calls_in_turn, &mut empty_stolen)
            };
            pooled.add(&window);
            *sum = sum.zip(stolen).map(|(a, b)| a + b);
        }
        out.in_turn.rounds.push(
            empty_calls_in_turn.latency(),
            seeded_calls_in_turn.latency(),
        );
        out.in_turn.empty_steal_ms.push(empty_stolen);
        out.in_turn.scale_steal_ms.push(seeded_stolen);
        let now = engine::checkpoints(db).await;
        out.checkpoints.push(
            checkpoints_at
                .zip(now)
                .map(|(before, after)| after - before),
        );
        checkpoints_at = now;
    }
    errors += out.half.errors()
        + out.low.errors()
        + out.paired.rounds.errors()
        + out.in_turn.rounds.errors();
    // Refusals by the broker's bounds are answers as documented, counted
    // apart (as every row's).
    out.refused = refused_so_far() - refused_before;
    let errors = errors.saturating_sub(out.refused);
    (out, errors)
}

/// Rounds of [`eligibility_rounds`]: five, so that the median stands
/// while two rounds meet a stall of the host (the eighteenth part's runs
/// had one or two of three).
const ELIGIBILITY_ROUNDS: usize = 5;

/// Rounds of [`mtls_cost`] (each one plaintext and one mTLS measurement).
const MTLS_ROUNDS: u64 = 4;

/// The cost of mutual TLS on one path. On two shared cores the machine's
/// speed drifts within a run by more than that cost, so two rows measured a
/// minute apart cannot show it: short saturations of the same path in
/// plaintext and in mTLS alternate (A B, B A, A B, ...: a drift favours
/// neither), and the cost is the median over the rounds. Call `n` of
/// measurement `k` is `first + k * 10^8 + n` (claims need fresh ids).
async fn mtls_cost<F, Fut, G, Gut>(
    name: &'static str,
    args: &Args,
    first: u64,
    plain: F,
    tls: G,
) -> MtlsCost
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = bool> + Send,
    G: Fn(u64) -> Gut + Send + Sync + Clone + 'static,
    Gut: Future<Output = bool> + Send,
{
    let (rounds, secs) = if args.smoke {
        (1, 0.3)
    } else {
        (MTLS_ROUNDS, args.seconds.min(2.0))
    };
    let mut out = MtlsCost {
        name,
        rounds: Vec::new(),
        rounds_rps: Vec::new(),
        errors: 0,
    };
    let mut k = 0;
    let refused_before = refused_so_far();
    for round in 0..rounds {
        let mut rps = [0.0; 2];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let base = first + k * 100_000_000;
            k += 1;
            let (r, e) = if which == 0 {
                let c = plain.clone();
                saturate(args.concurrency, secs, move |n| c(base + n)).await
            } else {
                let c = tls.clone();
                saturate(args.concurrency, secs, move |n| c(base + n)).await
            };
            rps[which] = r;
            out.errors += e;
        }
        out.rounds.push(1.0 - rps[1] / rps[0].max(1e-9));
        out.rounds_rps.push(rps);
    }
    out.errors -= refused_so_far() - refused_before;
    out
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
    eligibility_on(scheme, beneficiary, "2026-11-20")
}

fn eligibility_on(
    scheme: &str,
    beneficiary: &str,
    date_of_care: &str,
) -> pb::CheckEligibilityRequest {
    pb::CheckEligibilityRequest {
        scheme_id: scheme.into(),
        beneficiary_id: beneficiary.into(),
        date_of_care: date_of_care.into(),
        currency: "XOF".into(),
        ..Default::default()
    }
}

/// Members the claims are spread over, so that no member's ceilings run out
/// during a run (a member with an exhausted ceiling costs the store less).
const BENCH_MEMBERS: u64 = 10_000;

/// CNSS beneficiaries BN-0.. of MUT-SOLIDARITE (the rules mutuelle), each
/// their own household, on its dev product.
fn bench_members() -> Vec<Member> {
    members_of("BN", "BSOL", BENCH_MEMBERS)
}

/// `n` CNSS beneficiaries `{prefix}-0..` of MUT-SOLIDARITE, member numbers
/// `{number}-0..`, each their own household, on its dev product.
fn members_of(prefix: &str, number: &str, n: u64) -> Vec<Member> {
    (0..n)
        .map(|i| Member {
            mutuelle_id: "MUT-SOLIDARITE".into(),
            scheme_id: "CNSS".into(),
            beneficiary_id: format!("{prefix}-{i}"),
            member_number: format!("{number}-{i}"),
            household_id: format!("{number}-H{i}"),
            paid_until: date::parse("2026-12-31"),
            products: vec![ProductPeriod {
                product_id: "SOLIDARITE-ESSENTIEL".into(),
                start: date::parse("2025-01-01").expect("date"),
                end: None,
            }],
        })
        .collect()
}

async fn seed(broker: &Running) {
    broker
        .broker
        .store()
        .upsert_members(&bench_members(), passerelle_broker::audit::now_ms())
        .await
        .expect("seed bench members");
}

/// Claim `n`: one consultation line of 5,000 XOF, the scheme paying 70%,
/// for one of the bench members in turn.
fn claim(n: u64) -> pb::CoordinateClaimRequest {
    claim_for(n, &format!("BN-{}", n % BENCH_MEMBERS))
}

fn claim_for(n: u64, beneficiary: &str) -> pb::CoordinateClaimRequest {
    pb::CoordinateClaimRequest {
        scheme_id: "CNSS".into(),
        claim_id: format!("BENCH-{n}"),
        provider_id: "CHU-SO".into(),
        invoice_number: format!("INV-BENCH-{n}"),
        payee: Payee::Provider as i32,
        beneficiary_id: beneficiary.into(),
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

/// Members BX-0.. whose yearly ceiling is used up, for "claims PostgreSQL,
/// members at a ceiling": stored, then one claim each of 1,000,000 XOF the
/// scheme pays nothing of, which the dev product caps at the member's
/// 300,000 XOF a year. Their next claims are paid nothing (each is
/// checked so for BX-0). Claim ids from `first`.
async fn use_up_ceilings(broker: &Running, ch: &[Channel], n: u64, first: u64) {
    broker
        .broker
        .store()
        .upsert_members(
            &members_of("BX", "BXSOL", n),
            passerelle_broker::audit::now_ms(),
        )
        .await
        .expect("members at a ceiling");
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let mut c = SchemeServiceClient::new(pick(ch, i));
        let mut claim = claim_for(first + i, &format!("BX-{i}"));
        let l = &mut claim.lines[0];
        (l.billed, l.tariff_base, l.scheme_share) = (1_000_000, 1_000_000, 0);
        set.spawn(async move { c.coordinate_claim(claim).await });
        // At most 64 in flight.
        if set.len() >= 64 {
            let done = set.join_next().await.expect("a call in flight");
            done.expect("joined").expect("a claim using up a ceiling");
        }
    }
    while let Some(done) = set.join_next().await {
        done.expect("joined").expect("a claim using up a ceiling");
    }
    let mut c = SchemeServiceClient::new(pick(ch, 0));
    let next = c
        .coordinate_claim(claim_for(first + n, "BX-0"))
        .await
        .expect("a claim at the ceiling")
        .into_inner();
    assert_eq!(
        next.totals.map(|t| t.mutuelle_share),
        Some(0),
        "BX-0's ceiling is used up"
    );
}

/// Eligibility checks of CNSS at scale, about [`scale::ELIGIBILITY_DATE`],
/// for the beneficiary `who(n)` of call `n`.
fn eligibility_calls<W>(
    ch: &[Channel],
    who: W,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync + Clone + 'static
where
    W: Fn(u64) -> String + Send + Sync + Clone + 'static,
{
    let ch = ch.to_vec();
    move |n| {
        let mut c = SchemeServiceClient::new(pick(&ch, n));
        let req = eligibility_on("CNSS", &who(n), scale::ELIGIBILITY_DATE);
        Box::pin(async move { answered(c.check_eligibility(req).await) })
    }
}

fn pick<T: Clone>(v: &[T], n: u64) -> T {
    v[(n as usize) % v.len()].clone()
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
            .serve_with_incoming(
                // As the broker does: answers leave without waiting for an ACK.
                tokio_stream::StreamExt::map(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    |s| {
                        if let Ok(s) = &s {
                            let _ = s.set_nodelay(true);
                        }
                        s
                    },
                ),
            ),
    );
    addr
}

/// A dev broker on the run's PostgreSQL schema, with its simulated
/// partners. Its retention job keeps every audit row: the scale run
/// measures a retention pass of its own, and the job's second pass, an
/// hour after start, would prune the seeded year (older than the default
/// 400 days) in the middle of a long run.
async fn pg_broker(
    dir: &std::path::Path,
    plaintext: bool,
    store: Arc<dyn passerelle_broker::store::Store>,
) -> (Running, passerelle_broker::dev::Sims) {
    use passerelle_broker::dev;
    let secrets = dir.join("secrets");
    let sims = dev::start_sims(&secrets)
        .await
        .expect("simulated partners (PostgreSQL)");
    let mut cfg = dev::config("127.0.0.1:0".parse().expect("addr"), sims.addrs, &secrets);
    cfg.retention.audit_days = 0;
    let running = dev::start_with_config(dir, cfg, plaintext, store)
        .await
        .expect("broker (PostgreSQL)");
    (running, sims)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let (Some(dir), Some(sims)) = (&args.serve_broker, &args.sims) {
        let store = match (&args.postgres, &args.serve_schema) {
            (Some(url), Some(schema)) => child::ChildStore::Postgres {
                url: url.clone(),
                schema: schema.clone(),
                pool_size: args.pg_pool,
            },
            _ => child::ChildStore::Sqlite,
        };
        child::serve(
            dir,
            child::parse_sims(sims),
            args.catchup_pace,
            store,
            args.serve_console,
        )
        .await;
        return;
    }
    let secs = args.secs();
    let mut rows = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    // B: the limit of the stack.
    let bare = channels(
        &format!("http://{}", bare_server().await),
        None,
        args.connections,
    )
    .await;
    let bare_call = move |n| {
        let mut c = HealthClient::new(pick(&bare, n));
        async move { c.check(HealthCheckRequest::default()).await.is_ok() }
    };
    // Warm up (connections, allocator, CPU frequency) before the first
    // figure: B measured cold came out up to a third low, which flatters
    // every ratio.
    saturate(args.concurrency, secs.min(1.0), bare_call.clone()).await;
    let b = measure("bare tonic (B)", &args, None, 0, bare_call.clone()).await;
    let quarter_b = b.saturation_rps * 0.25;
    rows.push(b);

    // The dev broker on SQLite, once in plaintext and once with mutual TLS.
    let dir = tempfile::tempdir().expect("tempdir");
    let any = "127.0.0.1:0".parse().expect("addr");
    let sqlite = |name: &str| {
        passerelle_broker::store::sqlite::SqliteStore::open(
            &dir.path().join(name).join("passerelle.db"),
        )
        .map(|s| Arc::new(s) as Arc<dyn passerelle_broker::store::Store>)
        .expect("SQLite store")
    };
    let (plain, _) =
        passerelle_broker::dev::start_on(&dir.path().join("plain"), any, true, sqlite("plain"))
            .await
            .expect("broker (plaintext)");
    let tls_dir = dir.path().join("tls");
    let (tls, _) = passerelle_broker::dev::start_on(&tls_dir, any, false, sqlite("tls"))
        .await
        .expect("broker (mTLS)");
    seed(&plain).await;
    seed(&tls).await;
    let plain_ch = channels(&format!("http://{}", plain.addr), None, args.connections).await;
    let certs = tls_dir.join("certs");
    let tls_url = format!("https://{}", tls.addr);
    let tls_ch = channels(&tls_url, Some(scheme_tls(&certs, "CNSS")), args.connections).await;
    let tls_inam = channels(&tls_url, Some(scheme_tls(&certs, "INAM")), args.connections).await;

    let elig = |ch: &Vec<Channel>, scheme: &str, who: &str| {
        let (ch, req) = (ch.clone(), eligibility(scheme, who));
        move |n| {
            let mut c = SchemeServiceClient::new(pick(&ch, n));
            let req = req.clone();
            async move { answered(c.check_eligibility(req).await) }
        }
    };
    let scenarios: [(&'static str, &Vec<Channel>, &'static str, &'static str); 7] = [
        // The floor: the gRPC edge, routing (one roster read, no member)
        // and the audit row, without an adapter.
        (
            "eligibility no member (floor)",
            &plain_ch,
            "CNSS",
            "TG-9999",
        ),
        ("eligibility rules", &plain_ch, "CNSS", "TG-1001"),
        ("eligibility rules mTLS", &tls_ch, "CNSS", "TG-1001"),
        ("eligibility grpc partner", &plain_ch, "INAM", "TG-2001"),
        (
            "eligibility grpc partner mTLS",
            &tls_inam,
            "INAM",
            "TG-2001",
        ),
        // The HTTP partners of `dev`: MUT-IMIS (fhir-r4, openIMIS dialect)
        // and MUT-LEGACY (xml-http), simulated on loopback.
        ("eligibility fhir partner", &plain_ch, "CNSS", "TG-3001"),
        ("eligibility xml partner", &plain_ch, "INAM", "TG-4001"),
    ];
    for (name, ch, scheme, who) in scenarios {
        if args.wants(name) {
            rows.push(measure(name, &args, Some(quarter_b), 0, elig(ch, scheme, who)).await);
        }
    }
    // The HTTP path's own limit, then each HTTP partner beside it and beside
    // the gRPC partner, in alternating rounds.
    const ECHO: &str = "HTTP/1.1 echo (keep-alive)";
    let echo = http_partners::echo().await;
    if args.wants(ECHO) {
        rows.push(measure(ECHO, &args, Some(quarter_b), 0, echo.clone()).await);
    }
    let comparison = if args.wants(ECHO) && args.wants("eligibility grpc partner") {
        let partners = [
            ("eligibility fhir partner", "CNSS", "TG-3001"),
            ("eligibility xml partner", "INAM", "TG-4001"),
        ]
        .into_iter()
        .filter(|(name, _, _)| args.wants(name))
        .map(|(name, scheme, who)| (name, http_partners::boxed(elig(&plain_ch, scheme, who))))
        .collect();
        Some(
            http_partners::compare(
                &args,
                http_partners::boxed(elig(&plain_ch, "INAM", "TG-2001")),
                http_partners::boxed(echo),
                partners,
            )
            .await,
        )
    } else {
        None
    };
    if let Some(c) = &comparison
        && c.errors > 0
    {
        failures.push(format!(
            "HTTP partners at a fixed load: {} calls failed",
            c.errors
        ));
    }

    let mut mtls = Vec::new();
    // Claims: every call a new claim id, then resends of stored ones.
    let claims = |ch: &Vec<Channel>| {
        let ch = ch.clone();
        move |n| {
            let mut c = SchemeServiceClient::new(pick(&ch, n));
            async move { answered(c.coordinate_claim(claim(n)).await) }
        }
    };
    for (i, (name, ch)) in [
        ("claims SQLite", &plain_ch),
        ("claims SQLite mTLS", &tls_ch),
    ]
    .into_iter()
    .enumerate()
    {
        if args.wants(name) {
            let first = i as u64 * 10_000_000_000;
            rows.push(measure(name, &args, Some(quarter_b), first, claims(ch)).await);
        }
    }
    // The cost of mTLS on SQLite, on two fresh brokers set up alike: the two
    // above have served different scenarios by now (audit rows, claims,
    // members' ceilings), and that alone moved the claims pair from -39% to
    // +37% depending on what ran before it. Alternation cancels a drift in
    // time, not a difference of state.
    let pairs = [
        ("eligibility rules", "eligibility rules mTLS"),
        ("eligibility grpc partner", "eligibility grpc partner mTLS"),
        ("claims SQLite", "claims SQLite mTLS"),
    ];
    let wanted: Vec<_> = pairs
        .iter()
        .filter(|(p, t)| args.wants(p) && args.wants(t))
        .map(|(p, _)| *p)
        .collect();
    if !wanted.is_empty() {
        let pair = dir.path().join("pair");
        let (a, _) =
            passerelle_broker::dev::start_on(&pair.join("plain"), any, true, sqlite("pair-plain"))
                .await
                .expect("broker (pair, plaintext)");
        let (b, _) =
            passerelle_broker::dev::start_on(&pair.join("tls"), any, false, sqlite("pair-tls"))
                .await
                .expect("broker (pair, mTLS)");
        seed(&a).await;
        seed(&b).await;
        let a_ch = channels(&format!("http://{}", a.addr), None, args.connections).await;
        let tls_for = |scheme| {
            let pair = pair.clone();
            let url = format!("https://{}", b.addr);
            async move {
                let certs = pair.join("tls").join("certs");
                channels(&url, Some(scheme_tls(&certs, scheme)), args.connections).await
            }
        };
        let (b_cnss, b_inam) = (tls_for("CNSS").await, tls_for("INAM").await);
        for name in wanted {
            mtls.push(match name {
                "eligibility rules" => {
                    let (plain, tls) = (
                        elig(&a_ch, "CNSS", "TG-1001"),
                        elig(&b_cnss, "CNSS", "TG-1001"),
                    );
                    mtls_cost(name, &args, 0, plain, tls).await
                }
                "eligibility grpc partner" => {
                    let (plain, tls) = (
                        elig(&a_ch, "INAM", "TG-2001"),
                        elig(&b_inam, "INAM", "TG-2001"),
                    );
                    mtls_cost(name, &args, 0, plain, tls).await
                }
                _ => {
                    let (plain, tls) = (claims(&a_ch), claims(&b_cnss));
                    mtls_cost(name, &args, 0, plain, tls).await
                }
            });
        }
        a.shutdown().await;
        b.shutdown().await;
    }
    // Claims 0..100 are stored by the run above (or by the first calls
    // here, when it was left out): resend them.
    if args.wants("duplicate resends SQLite") {
        let ch = plain_ch.clone();
        rows.push(
            measure(
                "duplicate resends SQLite",
                &args,
                Some(quarter_b),
                0,
                move |n| {
                    let mut c = SchemeServiceClient::new(pick(&ch, n));
                    async move { answered(c.coordinate_claim(claim(n % 100)).await) }
                },
            )
            .await,
        );
    }

    // Claims on PostgreSQL, P0 and P.
    let mut limit = None;
    let mut limit0 = None;
    let mut limit0_one = None;
    // Claims against P0 in alternating runs (`p0_rounds`).
    let mut rounds = Vec::new();
    let pg_rows = ["claims PostgreSQL", "claims PostgreSQL mTLS"];
    let replicas_row = "claims PostgreSQL 2 replicas";
    // Members whose yearly ceiling is used up: each claim is refused once
    // as computed on its ceilings unread, then computed on those read
    // (docs/PERFORMANCE.md, sixteenth part).
    let ceiling_row = "claims PostgreSQL, members at a ceiling";
    let scale_row = "claims PostgreSQL at scale";
    let mut scale_figures = None;
    // What the engine and the disk did in the scale windows (engine.rs).
    let mut engine_windows: Vec<(&str, engine::Window, u64)> = Vec::new();
    if pg_rows.iter().any(|n| args.wants(n))
        || args.wants(replicas_row)
        || args.wants(ceiling_row)
        || args.wants(scale_row)
    {
        let url = args.postgres.clone().unwrap_or_else(postgres::default_url);
        if let Some(db) = postgres::open(&url, usize::from(args.pg_pool)).await {
            // P before and after the broker's runs: the ratio uses their
            // mean, so that the database's own drift (checkpoints, table
            // growth) does not favour either side.
            postgres::vacuum(&db).await;
            // P0, the least work a claim needs (the limit the ratio is to),
            // and P, the broker's own transactions replayed: both before and
            // after the broker's runs.
            let p0_before = postgres::p0(&db, dir.path(), &args.pgbench, secs, args.smoke).await;
            postgres::vacuum(&db).await;
            let one_before =
                postgres::p0_one(&db, dir.path(), &args.pgbench, secs, args.smoke).await;
            postgres::vacuum(&db).await;
            let before = postgres::pgbench(&db, dir.path(), &args.pgbench, secs, args.smoke).await;
            let pg_dir = dir.path().join("pg");
            let (pg_plain, pg_sims) = pg_broker(&pg_dir, true, db.store.clone()).await;
            let pg_tls_dir = dir.path().join("pg-tls");
            let (pg_tls, _) = pg_broker(&pg_tls_dir, false, db.store.clone()).await;
            seed(&pg_plain).await;
            let ch = channels(&format!("http://{}", pg_plain.addr), None, args.connections).await;
            let tls_ch = channels(
                &format!("https://{}", pg_tls.addr),
                Some(scheme_tls(&pg_tls_dir.join("certs"), "CNSS")),
                args.connections,
            )
            .await;
            for (i, (name, ch)) in pg_rows.into_iter().zip([&ch, &tls_ch]).enumerate() {
                if args.wants(name) {
                    // Each PostgreSQL figure starts from the same state: the
                    // dead rows of the last measurement vacuumed, as
                    // autovacuum would.
                    postgres::vacuum(&db).await;
                    let first = i as u64 * 10_000_000_000;
                    rows.push(measure(name, &args, Some(quarter_b), first, claims(ch)).await);
                }
            }
            if args.wants(pg_rows[0]) {
                let r = p0_rounds(
                    pg_rows[0],
                    &db,
                    dir.path(),
                    &args,
                    80_000_000_000,
                    claims(&ch),
                );
                rounds.push(r.await);
            }
            if pg_rows.iter().all(|n| args.wants(n)) {
                postgres::vacuum(&db).await;
                let (plain, tls) = (claims(&ch), claims(&tls_ch));
                mtls.push(mtls_cost("claims PostgreSQL", &args, 30_000_000_000, plain, tls).await);
            }
            if args.wants(replicas_row) {
                // Two replicas on the same schema, each a broker with a pool
                // of its own, sized as docs/operations.md sizes them: the
                // same connections in all as one broker and as P0's pgbench
                // clients (`--pg-pool`), half each. The callers'
                // connections alternate between the two, so claims are
                // spread over both. (Two pools of the whole size put twice
                // the backends on the same cores: 40 % more database CPU
                // per claim at 64 connections than at 16, and a sixth to a
                // fifth more with two pools of 16 than of 8, docs/PERFORMANCE.md.)
                // An odd `--pg-pool` gives each its half rounded down.
                let half = (usize::from(args.pg_pool) / 2).max(1);
                let (first, _) = pg_broker(
                    &dir.path().join("pg-1r"),
                    true,
                    postgres::replica(&db, half).await,
                )
                .await;
                let (second, _) = pg_broker(
                    &dir.path().join("pg-2"),
                    true,
                    postgres::replica(&db, half).await,
                )
                .await;
                let one = channels(&format!("http://{}", first.addr), None, args.connections).await;
                let other =
                    channels(&format!("http://{}", second.addr), None, args.connections).await;
                let both: Vec<Channel> = one
                    .iter()
                    .zip(&other)
                    .flat_map(|(a, b)| [a.clone(), b.clone()])
                    .collect();
                postgres::vacuum(&db).await;
                rows.push(
                    measure(
                        replicas_row,
                        &args,
                        Some(quarter_b),
                        40_000_000_000,
                        claims(&both),
                    )
                    .await,
                );
                let r = p0_rounds(
                    replicas_row,
                    &db,
                    dir.path(),
                    &args,
                    90_000_000_000,
                    claims(&both),
                );
                rounds.push(r.await);
                first.shutdown().await;
                second.shutdown().await;
            }
            if args.wants(ceiling_row) {
                let n = if args.smoke { 200 } else { BENCH_MEMBERS };
                use_up_ceilings(&pg_plain, &ch, n, 110_000_000_000).await;
                postgres::vacuum(&db).await;
                let at_ceiling = {
                    let ch = ch.clone();
                    move |i: u64| {
                        let mut c = SchemeServiceClient::new(pick(&ch, i));
                        let claim = claim_for(i, &format!("BX-{}", i % n));
                        async move { answered(c.coordinate_claim(claim).await) }
                    }
                };
                rows.push(
                    measure(
                        ceiling_row,
                        &args,
                        Some(quarter_b),
                        111_000_000_000,
                        at_ceiling,
                    )
                    .await,
                );
            }
            if args.wants(scale_row) {
                // Last: the seeded rows stay in the schema.
                let n = if args.smoke { 20_000 } else { args.scale };
                // One claim through the broker: its stored body is the seeded
                // claims' body.
                assert!(claims(&ch)(60_000_000_000).await, "a claim to seed from");
                // Vacuumed and checkpointed by the seeding.
                let seeded = scale::seed(&db, n).await;
                failures.extend(seeded.errors.iter().map(|e| format!("seeding: {e}")));
                rows.push(
                    measure(
                        scale_row,
                        &args,
                        Some(quarter_b),
                        50_000_000_000,
                        claims(&ch),
                    )
                    .await,
                );
                // Eligibility on the seeded store: any of its members, each
                // call another one (pages in the page cache, and in shared
                // buffers only where those are sized to hold them:
                // `postgres::warm`), about a day of the
                // seeded year (half the members' usage rows found), against a
                // nearly empty store (a schema of its own with the dev
                // roster, a broker of its own, no usage) calling the one dev
                // member about the same day, in alternating rounds.
                let members = (n / 5).max(1);
                let seeded_calls =
                    eligibility_calls(&ch, move |k| format!("SB-{}", k % members + 1));
                let empty_db = postgres::open(&url, usize::from(args.pg_pool))
                    .await
                    .expect("the nearly empty store's schema");
                let (empty_broker, _) =
                    pg_broker(&dir.path().join("pg-empty"), true, empty_db.store.clone()).await;
                let empty_ch = channels(
                    &format!("http://{}", empty_broker.addr),
                    None,
                    args.connections,
                )
                .await;
                let empty_calls = eligibility_calls(&empty_ch, |_| scale::MEMBER.to_string());
                // Both figures are of a covered member (the rules' whole
                // work), never of a refusal; the seeded member SB-1 (its
                // claims in the large mutuelle) with its and its household's
                // year of usage read, the nearly empty store's member with
                // none.
                for (who, ch, seeded) in [(scale::MEMBER, &empty_ch, false), ("SB-1", &ch, true)] {
                    let answer = SchemeServiceClient::new(ch[0].clone())
                        .check_eligibility(eligibility_on("CNSS", who, scale::ELIGIBILITY_DATE))
                        .await
                        .map(|a| a.into_inner());
                    let answer = match answer {
                        Ok(a) => a,
                        Err(e) => {
                            failures
                                .push(format!("eligibility at scale: {who}'s check failed: {e}"));
                            continue;
                        }
                    };
                    if !answer.covered {
                        failures.push(format!(
                            "eligibility at scale: {who} is not covered, the figure would be a refusal's"
                        ));
                    }
                    for scope in ["beneficiary-year", "household-year"] {
                        let used: i64 = answer
                            .ceilings
                            .iter()
                            .filter(|c| c.scope == scope)
                            .map(|c| c.used)
                            .sum();
                        if (used > 0) != seeded {
                            failures.push(format!(
                                "eligibility at scale: {who}'s {scope} usage read as {used} XOF, expected {}",
                                if seeded { "some" } else { "none" }
                            ));
                        }
                    }
                }
                // Both from the same state: the dead rows of the claims
                // measured on the seeded store vacuumed.
                postgres::vacuum(&db).await;
                postgres::vacuum(&empty_db).await;
                // Then one checkpoint for both (one database): what the
                // seeded claims and the vacuums left dirty is written now,
                // not in a round (which it would stall, favouring the
                // other store). The rounds' own checkpoints are counted.
                postgres::checkpoint(&db).await;
                // The members' and ceilings' pages in the page cache (in
                // shared buffers where they fit), as a server answering
                // eligibility all day keeps them, not read from the device
                // in the windows after seeding evicted them. The nearly
                // empty store's few pages stay in shared buffers.
                let warmed = postgres::warm(&db).await;
                if let Err(e) = &warmed {
                    failures.push(format!("eligibility at scale: {e}"));
                }
                let (mut eligibility_rounds, elig_errors) =
                    eligibility_rounds(&args, &db, empty_calls, seeded_calls, &mut engine_windows)
                        .await;
                eligibility_rounds.warmed = warmed.ok();
                empty_broker.shutdown().await;
                if args.keep_schema {
                    eprintln!("schema kept: {}", empty_db.schema);
                } else {
                    postgres::drop(&empty_db).await;
                }
                // Its pool's connections closed before the next windows.
                drop(empty_db);
                if elig_errors > 0 {
                    failures.push(format!("eligibility at scale: {elig_errors} calls failed"));
                }

                let paged =
                    scale::page_changes(&db.store, seeded.first_cursor, n.min(100_000)).await;
                // Live claims at a quarter of the seeded store's saturation,
                // in rounds, a month pruned each: idle first (after pruning,
                // what it leaves to clean would fall in the idle window),
                // then while retention prunes the next month.
                let live_rate = (rows.last().map_or(0.0, |r| r.saturation_rps) * 0.25).max(20.0);
                let idle_calls = ((live_rate * secs) as u64).max(200);
                // The live window lasts the pass, and at least as long as
                // the idle one: a pass of a few hundred milliseconds (a
                // month's DROP) is not held against seconds idle on a
                // handful of calls.
                let idle_window = std::time::Duration::from_secs_f64(idle_calls as f64 / live_rate);
                let mut pruning_rounds = Vec::new();
                // Smoke runs prove the rounds with two.
                let months = if args.smoke { 2 } else { scale::SETTLED_MONTHS };
                for k in 0..months {
                    // Both windows after a checkpoint, as eligibility's
                    // rounds: what earlier windows left dirty is not
                    // written in one of them (the windows print the
                    // checkpoints they saw).
                    postgres::checkpoint(&db).await;
                    let w = engine::watch(&db).await;
                    let (idle, idle_steal_ms) = cpu::with_steal(open_loop(
                        live_rate,
                        Until::Calls(idle_calls),
                        70_000_000_000 + k as u64 * 2_000_000_000,
                        claims(&ch),
                    ))
                    .await;
                    engine_windows.push(("live claims, idle", w.finish().await, idle_calls));
                    let w = engine::watch(&db).await;
                    let (done, until) = tokio::sync::watch::channel(false);
                    let store = db.store.clone();
                    let t_prune = std::time::Instant::now();
                    let pruning = tokio::spawn(async move {
                        let r = scale::prune_month(&store, k).await;
                        tokio::time::sleep_until((t_prune + idle_window).into()).await;
                        let _ = done.send(true);
                        r
                    });
                    let (during, during_steal_ms) = cpu::with_steal(open_loop(
                        live_rate,
                        Until::Signal(until),
                        71_000_000_000 + k as u64 * 2_000_000_000,
                        claims(&ch),
                    ))
                    .await;
                    let (pruned, prune_secs) = pruning.await.expect("pruning");
                    let sent = ((live_rate * t_prune.elapsed().as_secs_f64()) as u64).max(1);
                    engine_windows.push((
                        "live claims while retention prunes",
                        w.finish().await,
                        sent,
                    ));
                    // A round whose pass pruned nothing (the log busy past
                    // its lock timeout) measured no pruning; a live claim
                    // that failed is not a latency.
                    if pruned == 0 {
                        failures.push(format!(
                            "retention at scale, round {}: no audit row pruned",
                            k + 1
                        ));
                    }
                    if idle.errors + during.errors > 0 {
                        failures.push(format!(
                            "retention at scale, round {}: {} live claims failed",
                            k + 1,
                            idle.errors + during.errors
                        ));
                    }
                    pruning_rounds.push(scale::PruningRound {
                        pruned,
                        secs: prune_secs,
                        calls: sent,
                        idle,
                        during,
                        idle_steal_ms,
                        during_steal_ms,
                    });
                }
                let live = scale::LiveDuringPruning {
                    rate: live_rate,
                    rounds: pruning_rounds,
                };
                // Through a broker in a process of its own on the seeded
                // store: its memory is the broker's alone.
                let on_seeded = async |console: bool| {
                    child::ChildBroker::start(
                        &pg_dir,
                        pg_sims.addrs,
                        None,
                        child::ChildStore::Postgres {
                            url: db.url.clone(),
                            schema: db.schema.clone(),
                            pool_size: args.pg_pool,
                        },
                        console,
                    )
                    .await
                };
                let exporter = on_seeded(false).await;
                let export_ch = channels(&format!("http://{}", exporter.addr), None, 1).await;
                let mut export =
                    scale::export_statement(export_ch[0].clone(), exporter.pid, &db.store).await;
                // The month settled, its remittance advice from the same
                // broker.
                let remittance = scale::remittance_advice(
                    export_ch[0].clone(),
                    exporter.pid,
                    &db.store,
                    export.number,
                )
                .await;
                match &remittance {
                    Err(e) => failures.push(format!("remittance advice at scale: {e}")),
                    Ok(r) if !r.ties_out => failures.push(
                        "remittance advice at scale: the payees' amounts do not add up to the net due".into(),
                    ),
                    Ok(_) => {}
                }
                export.remittance = Some(remittance);
                exporter.stop().await;
                // The same month from the console, as the large mutuelle's
                // manager downloads it (HTTPS, signed in): a broker of its
                // own again, so that the peak is the console's exports'.
                let web = on_seeded(true).await;
                let exports = console::export_statement(
                    web.console.expect("the child broker's console"),
                    &pg_dir.join("certs"),
                    scale::LARGE,
                    export.number,
                    export.lines,
                    web.pid,
                )
                .await;
                web.stop().await;
                if let Err(e) = &exports.csv {
                    failures.push(format!("statement from the console, CSV: {e}"));
                }
                if let Err(e) = &exports.xlsx {
                    failures.push(format!("statement from the console, workbook: {e}"));
                }
                export.console = Some(exports);
                // Last: the schema is taken back and migrated again.
                let migrations = scale::remigrate(&db).await;
                if let Some(e) = &migrations.error {
                    failures.push(format!("migrations at scale: {e}"));
                }
                // The engine's own ratio for eligibility's database work, on
                // the same seeded store: the limit the broker's is held
                // against. Last, so that its audit rows (one a transaction)
                // weigh on no other window; on pages warmed again as before
                // the broker's rounds, in the same mode (the statement and
                // the migrations read gigabytes since).
                if let Err(e) = postgres::warm(&db).await {
                    failures.push(format!("eligibility at scale, the engine's figure: {e}"));
                }
                let engine = postgres::engine_eligibility(
                    &db,
                    dir.path(),
                    &args.pgbench,
                    secs,
                    args.smoke,
                    members,
                    [&eligibility_rounds.half, &eligibility_rounds.low],
                )
                .await;
                if let Some(e) = &engine.failed {
                    failures.push(format!("eligibility at scale, the engine's figure: {e}"));
                }
                let eligibility = scale::EligibilityAtScale {
                    engine,
                    ..eligibility_rounds
                };
                scale_figures = Some((seeded, paged, export, live, eligibility, migrations));
            }
            pg_plain.shutdown().await;
            pg_tls.shutdown().await;
            postgres::vacuum(&db).await;
            let after = postgres::pgbench(&db, dir.path(), &args.pgbench, secs, args.smoke).await;
            postgres::vacuum(&db).await;
            let one_after =
                postgres::p0_one(&db, dir.path(), &args.pgbench, secs, args.smoke).await;
            postgres::vacuum(&db).await;
            let p0_after = postgres::p0(&db, dir.path(), &args.pgbench, secs, args.smoke).await;
            let p = postgres::Limit::mean(before, after);
            let p0 = postgres::Limit::mean(p0_before, p0_after);
            let p0_one = postgres::Limit::mean(one_before, one_after);
            for f in [&p.failed, &p0.failed, &p0_one.failed]
                .into_iter()
                .chain(rounds.iter().map(|r: &postgres::P0Rounds| &r.failed))
                .flatten()
            {
                failures.push(f.clone());
            }
            for r in rounds.iter().filter(|r| r.errors > 0) {
                failures.push(format!(
                    "{}, rounds with P0: {} calls failed",
                    r.name, r.errors
                ));
            }
            if args.keep_schema {
                // The schema only: the address may hold a password.
                eprintln!("schema kept: {}", db.schema);
            } else {
                postgres::drop(&db).await;
            }
            limit = Some(p);
            limit0 = Some(p0);
            limit0_one = Some(p0_one);
        }
    }

    plain.shutdown().await;
    tls.shutdown().await;

    // Catch-up after an outage, on a fresh default (SQLite) broker in a
    // process of its own.
    let mut catch_up = None;
    if args.wants("catch-up") {
        let n = if args.smoke { 300 } else { args.catchup_claims };
        let live = if args.catchup_live_rps > 0.0 {
            args.catchup_live_rps
        } else {
            rows.iter()
                .find(|r| r.name == "eligibility rules")
                .map(|r| r.saturation_rps * 0.25)
                .unwrap_or(1_000.0)
        };
        let dir = dir.path().join("catch-up");
        catch_up = Some(
            catchup::run(
                &dir,
                n,
                args.concurrency,
                args.connections,
                live,
                secs,
                args.catchup_pace,
            )
            .await,
        );
    }
    // B again, after everything: the ratios use the higher of the two, so
    // that a slow moment of the machine during the first never inflates
    // them. (0.25 B above used the first.)
    let (b_end, _) = saturate(args.concurrency, secs, bare_call).await;
    rows[0].b_end_rps = Some(b_end);
    if b_end > rows[0].saturation_rps {
        rows[0].saturation_rps = b_end;
    }
    let scale_json = scale_figures.as_ref().map(
        |(seeded, (read, page_secs), export, live, elig, mig)| {
            let mut figures = serde_json::json!({
                "eligibility_empty_rps": elig.empty_rps.iter().map(|r| r.round()).collect::<Vec<_>>(),
                "eligibility_scale_rps": elig.scale_rps.iter().map(|r| r.round()).collect::<Vec<_>>(),
                "eligibility_rate": elig.half.rate.round(),
                "eligibility_p99_us_empty": elig.half.empty.iter().map(|l| l.p99_us).collect::<Vec<_>>(),
                "eligibility_p99_us_scale": elig.half.scale.iter().map(|l| l.p99_us).collect::<Vec<_>>(),
                "eligibility_rate_ratio": load::median(&elig.rate_ratios()),
                "eligibility_p99_ratio": elig.half.p99_median_ratio(),
                "eligibility_engine_random_tps": elig.engine.random_tps.round(),
                "eligibility_engine_one_tps": elig.engine.one_tps.round(),
                "eligibility_engine_rate": elig.engine.half.rate.round(),
                "eligibility_engine_random_p99_us": elig.engine.half.random_p99_us,
                "eligibility_engine_one_p99_us": elig.engine.half.one_p99_us,
                "live_claims_rps_while_pruning": live.rate.round(),
                "live_calls_while_pruning": live.rounds.iter().map(|r| r.calls).collect::<Vec<_>>(),
                "live_p99_us_idle": live.rounds.iter().map(|r| r.idle.p99_us).collect::<Vec<_>>(),
                "live_p99_us_while_pruning": live.rounds.iter().map(|r| r.during.p99_us).collect::<Vec<_>>(),
                "statement_close_claims": export.closed_claims,
                "statement_close_secs": (export.close_secs * 100.0).round() / 100.0,
                "statement_lines_exported": export.lines,
                "statement_export_secs": (export.secs * 100.0).round() / 100.0,
                "statement_export_broker_peak_rss_mib": export.peak_mib.round(),
                "statement_whole_peak_rss_mib": export.whole_peak_mib.as_ref().ok().map(|m| m.round()),
                "statement_whole_error": export.whole_peak_mib.as_ref().err(),
                "claims_seeded": seeded.claims,
                "seed_secs": (seeded.seed_secs * 10.0).round() / 10.0,
                "database_bytes": seeded.database_bytes,
                "claims_in_database": seeded.claims_in_database,
                "mib_per_million_claims": seeded.mib_per_million().round(),
                "changes_paged": read,
                "paging_secs": (page_secs * 100.0).round() / 100.0,
                "audit_rows_pruned": live.rounds.iter().map(|r| r.pruned).collect::<Vec<_>>(),
                "pruning_secs": live.rounds.iter().map(|r| (r.secs * 100.0).round() / 100.0).collect::<Vec<_>>(),
                "migrations_from": mig.from,
                "migrations_to": mig.to,
                "migrations_secs": (mig.secs * 1000.0).round() / 1000.0,
                "migrations_ceiling_rows": mig.ceiling_rows,
                "migrations_writer_longest_ms": mig.longest_write_ms.round(),
                "migrations_claim_writer_longest_ms": mig.longest_claim_write_ms.round(),
                "migrations_writer_writes": mig.writes,
                "migrations_writer_failed": mig.failed,
                "migrations_key_constraint_kept": mig.key_constraint_kept,
            });
            figures["live_p99_ratio_while_pruning"] = serde_json::json!(live.p99_median_ratio());
            // Past json!'s recursion limit.
            figures["statement_console"] =
                serde_json::json!(export.console.as_ref().map(console::ConsoleExports::json));
            figures["remittance"] = match &export.remittance {
                Some(Ok(r)) => r.json(),
                Some(Err(e)) => serde_json::json!({ "error": e }),
                None => serde_json::Value::Null,
            };
            figures["eligibility_shed_scale_empty"] = serde_json::json!(elig.half.shed());
            figures["eligibility_refused_by_bounds"] = serde_json::json!(elig.refused);
            figures["eligibility_p99_rounds_median"] =
                serde_json::json!(load::median(&elig.half.p99_ratios()));
            figures["eligibility_checkpoints_in_rounds"] = serde_json::json!(elig.checkpoints);
            figures["eligibility_warmed_mib"] =
                serde_json::json!(elig.warmed.as_ref().map(|w| w.mib.round()));
            figures["eligibility_warmed_into_shared_buffers"] =
                serde_json::json!(elig.warmed.as_ref().map(|w| w.into_shared_buffers));
            figures["shared_buffers_mib"] =
                serde_json::json!(elig.warmed.as_ref().map(|w| w.shared_buffers_mib.round()));
            // null in byte order; unread, what was said.
            figures["database_slow_collation"] =
                serde_json::json!(elig.warmed.as_ref().and_then(|w| match &w.slow_collation {
                    Ok(c) => c.clone(),
                    Err(e) => Some(format!("could not be read: {e}")),
                }));
            figures["eligibility_steal_ms_scale"] = serde_json::json!(elig.half.scale_steal_ms);
            figures["eligibility_steal_ms_empty"] = serde_json::json!(elig.half.empty_steal_ms);
            // Both stores in one open loop, at half in all.
            let paired = &elig.paired;
            let mut json = paired.rounds.json();
            json["rate"] = serde_json::json!(paired.rate.round());
            // Its figure: the rounds' median (each round is one window).
            json["p99_ratio"] = serde_json::json!(paired.rounds.p99_rounds_median());
            json["steal_ms"] = serde_json::json!(paired.steal_ms);
            figures["eligibility_paired"] = json;
            // Each store alone at half, in short windows taken in turn.
            let in_turn = &elig.in_turn;
            let mut json = in_turn.rounds.json();
            json["rate"] = serde_json::json!(in_turn.rate.round());
            json["windows_per_store_a_round"] = serde_json::json!(scale::IN_TURN_WINDOWS);
            // Its figure: the target's statistic.
            json["p99_ratio"] = serde_json::json!(in_turn.rounds.p99_medians_ratio());
            json["steal_ms_scale"] = serde_json::json!(in_turn.scale_steal_ms);
            json["steal_ms_empty"] = serde_json::json!(in_turn.empty_steal_ms);
            figures["eligibility_in_turn"] = json;
            // The open loops at the low rate, beside those at half.
            let low = &elig.low;
            figures["eligibility_low"] = serde_json::json!({
                "fraction_of_empty_first_saturation": low.fraction,
                "rate": low.rate.round(),
                "seeded_share": elig.seeded_share(low.rate),
                "p99_us_empty": low.empty.iter().map(|l| l.p99_us).collect::<Vec<_>>(),
                "p99_us_scale": low.scale.iter().map(|l| l.p99_us).collect::<Vec<_>>(),
                "p99_ratio": low.p99_median_ratio(),
                "p99_rounds_median": load::median(&low.p99_ratios()),
                "shed_scale_empty": low.shed(),
                "steal_ms_scale": low.scale_steal_ms,
                "steal_ms_empty": low.empty_steal_ms,
                "engine_random_p99_us": elig.engine.low.random_p99_us,
                "engine_one_p99_us": elig.engine.low.one_p99_us,
            });
            figures["eligibility_half_seeded_share"] =
                serde_json::json!(elig.seeded_share(elig.half.rate));
            let [scale_cpu, empty_cpu] = elig.cpu_us();
            figures["eligibility_db_cpu_us_scale_empty"] =
                serde_json::json!([scale_cpu.map(|c| c.0.round()), empty_cpu.map(|c| c.0.round())]);
            figures["eligibility_own_cpu_us_scale_empty"] =
                serde_json::json!([scale_cpu.map(|c| c.1.round()), empty_cpu.map(|c| c.1.round())]);
            figures
        },
    );
    report::report(
        &args,
        &rows,
        &mtls,
        limit.as_ref(),
        limit0.as_ref(),
        report::Sections {
            p0_one: limit0_one.as_ref(),
            p0_rounds: &rounds,
            catch_up: catch_up.as_ref(),
            http: comparison.as_ref(),
            scale: scale_json,
        },
    );
    if let Some((seeded, (read, page_secs), export, live, elig, mig)) = &scale_figures
        && !args.json
    {
        let rate = |name: &str| {
            rows.iter()
                .find(|r| r.name == name)
                .map(|r| r.saturation_rps)
        };
        println!(
            "scale (bench/src/scale.rs): {} claims seeded in {:.1} s ({:.0}/s); database {:.0} MiB for {} claims = {:.0} MiB per million claims",
            seeded.claims,
            seeded.seed_secs,
            seeded.claims as f64 / seeded.seed_secs.max(1e-9),
            seeded.database_bytes as f64 / (1 << 20) as f64,
            seeded.claims_in_database,
            seeded.mib_per_million()
        );
        if let (Some(at_scale), Some(empty)) = (rate(scale_row), rate("claims PostgreSQL")) {
            println!(
                "  claims on the seeded store: {at_scale:.0}/s = {:.2} x the nearly empty store's {empty:.0}/s (target >= 0.8)",
                at_scale / empty
            );
        }
        let list = |v: &[f64], digits: usize| {
            v.iter()
                .map(|x| format!("{x:.digits$}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Calls some loops shed, (seeded, empty), when there are any;
        // `{max}` in `why` is the bound of waiting calls.
        let shed_line = |place: &str, why: &str, (seeded, empty): (u64, u64)| {
            if seeded + empty > 0 {
                let why = why.replace("{max}", &load::MAX_OUTSTANDING.to_string());
                println!(
                    "      calls shed{place} ({why}): seeded store {seeded}, nearly empty store {empty}"
                );
            }
        };
        let p99s = |v: &[Latency]| {
            v.iter()
                .map(|l| l.p99_us.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rate_ratio = load::median(&elig.rate_ratios());
        let e = &elig.engine;
        let engine_rate = e.random_tps / e.one_tps.max(1e-9);
        println!(
            "  eligibility on the seeded store (a different seeded member each call) against a nearly empty store (the one dev member; a schema and a broker of its own), {} alternating rounds: rate {rate_ratio:.2} x (target >= 0.8; rounds {}; seeded {}/s, empty {}/s); the engine's own (pgbench, bench/pgbench/eligibility-random.sql against eligibility-one.sql, on the seeded store): {:.0}/s for a different member each call against {:.0}/s for the one = {engine_rate:.2}, the broker's over the engine's {:.2}",
            elig.scale_rps.len(),
            list(&elig.rate_ratios(), 2),
            list(&elig.scale_rps, 0),
            list(&elig.empty_rps, 0),
            e.random_tps,
            e.one_tps,
            rate_ratio / engine_rate.max(1e-9),
        );
        match &elig.warmed {
            Some(w) if w.into_shared_buffers => println!(
                "    before the rounds, the seeded store's members and ceiling usage with their indexes read into shared buffers (pg_prewarm's buffer; shared_buffers {:.0} MiB holds them twice over): {:.0} MiB in {:.1} s",
                w.shared_buffers_mib, w.mib, w.secs
            ),
            Some(w) => println!(
                "    before the rounds, the seeded store's members and ceiling usage with their indexes read into the page cache (pg_prewarm's read; shared_buffers {:.0} MiB cannot hold them twice over): {:.0} MiB in {:.1} s",
                w.shared_buffers_mib, w.mib, w.secs
            ),
            None => println!(
                "    the seeded store's members and ceiling usage could not be warmed before the rounds"
            ),
        }
        match elig.warmed.as_ref().map(|w| &w.slow_collation) {
            Some(Ok(Some(c))) => println!(
                "    the database compares keys by the collation {c}, not as bytes: every index lookup costs more, and these figures are not comparable with a byte-order database's (docs/operations.md, section 1)"
            ),
            Some(Err(e)) => println!("    the database's collation could not be read: {e}"),
            _ => {}
        }
        let stolen = |v: &[Option<f64>]| {
            v.iter()
                .map(|c| c.map_or_else(|| "unknown".to_string(), |c| format!("{c:.0}")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (loops, engine) in [(&elig.half, &e.half), (&elig.low, &e.low)] {
            let p99_ratio = loops.p99_median_ratio();
            println!(
                "    at {:.0}/s ({}; the seeded store at {:.0} % of its median saturation): p99 {p99_ratio:.3} (the median of the empty store's p99s over the median of the seeded store's, each window once, target >= 0.8; the rounds' median {:.2}, rounds {}; seeded {} us, empty {} us); the engine's own at that rate: p99 {} us against {} us = {:.2}, the broker's over the engine's {:.2}",
                loops.rate,
                loops.label(),
                elig.seeded_share(loops.rate) * 100.0,
                load::median(&loops.p99_ratios()),
                list(&loops.p99_ratios(), 2),
                p99s(&loops.scale),
                p99s(&loops.empty),
                engine.random_p99_us,
                engine.one_p99_us,
                engine.p99_ratio(),
                p99_ratio / engine.p99_ratio().max(1e-9)
            );
            shed_line(
                "",
                "the open loop {max} calls behind; their time is in no p99, so the ratio flatters the store that shed them",
                loops.shed(),
            );
            println!(
                "      CPU stolen by the hypervisor in each open loop, ms over both cores (the host's, not ours): seeded store {}; nearly empty store {}",
                stolen(&loops.scale_steal_ms),
                stolen(&loops.empty_steal_ms)
            );
        }
        let paired = &elig.paired;
        println!(
            "    both stores in one open loop, calls dealt in turn, at {:.0}/s in all (half the nearly empty store's first saturation; a quarter each): a seeded call answers {:.0} us later at p99 than a nearly empty store's sent beside it (the rounds' median), p99 ratio {:.2}, p50 ratio {:.2} (empty over seeded, each round's of one window: the same moments of the host in both; not the target's figure, since both stores' calls share the queues and the seeded store's extra work delays both; rounds {}; seeded p99 {} us, empty {} us)",
            paired.rate,
            paired.rounds.p99_later_us(),
            paired.rounds.p99_rounds_median(),
            paired.rounds.p50_ratio(),
            list(&paired.rounds.p99_ratios(), 2),
            p99s(&paired.rounds.scale),
            p99s(&paired.rounds.empty),
        );
        shed_line(
            " in that loop",
            "{max} waiting calls shared by both stores, so a store's sheds may be the other's slowness; shed calls are in no p99",
            paired.rounds.shed(),
        );
        println!(
            "      CPU stolen by the hypervisor in each of its windows, ms over both cores: {}",
            stolen(&paired.steal_ms)
        );
        let in_turn = &elig.in_turn;
        println!(
            "    each store alone in short windows taken in turn ({} of each a round, A B B A ..., each of a tenth of the calls above), at {:.0}/s (half the nearly empty store's first saturation): p99 {:.3} (the median of the empty store's p99s over the median of the seeded store's, as the target's figure, each round's calls of a store counted together: the host's drift over more than a short window shared by both stores, target >= 0.8; the rounds' median {:.2}, rounds {}; seeded {} us, empty {} us), p50 ratio {:.2}",
            scale::IN_TURN_WINDOWS,
            in_turn.rate,
            in_turn.rounds.p99_medians_ratio(),
            in_turn.rounds.p99_rounds_median(),
            list(&in_turn.rounds.p99_ratios(), 2),
            p99s(&in_turn.rounds.scale),
            p99s(&in_turn.rounds.empty),
            in_turn.rounds.p50_ratio(),
        );
        shed_line(
            " in those windows",
            "the open loop {max} calls behind; their time is in no p99",
            in_turn.rounds.shed(),
        );
        println!(
            "      CPU stolen by the hypervisor in each round's short windows, ms over both cores (summed over a store's windows of the round): seeded store {}; nearly empty store {}",
            stolen(&in_turn.scale_steal_ms),
            stolen(&in_turn.empty_steal_ms)
        );
        if elig.refused > 0 {
            println!(
                "    refused by the broker's bounds (both stores, every window): {}",
                elig.refused
            );
        }
        println!(
            "    checkpoints begun in each round (after a requested checkpoint; as PostgreSQL reports them, which may lag a little): {}",
            elig.checkpoints
                .iter()
                .map(|c| c.map_or_else(|| "unknown".to_string(), |c| c.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let [Some((scale_db, scale_own)), Some((empty_db, empty_own))] = elig.cpu_us() {
            println!(
                "    CPU per call at saturation (medians of the windows; the database's is the machine's outside this process): seeded store: database {scale_db:.0} us, this process {scale_own:.0} us; nearly empty store: database {empty_db:.0} us, this process {empty_own:.0} us"
            );
        }
        println!(
            "  ListChangedClaims: {read} changes paged (500 a page) in {:.2} s = {:.0} changes/s",
            page_secs,
            *read as f64 / page_secs.max(1e-9)
        );
        let (pruned, prune_secs) = live.pruned();
        println!(
            "  retention: the seeded year's first {} months pruned, one a round (the rows of their claims still open kept, each partition detached, its files freed one relation at a time), {pruned} audit rows in {prune_secs:.2} s; live claims at {:.0}/s through each pass and at least as long as idle: p99 while pruning, median {:.0} us, against {:.0} us idle = {:.2} x (limit 2; the medians of the rounds' windows)",
            live.rounds.len(),
            live.rate,
            load::median(
                &live
                    .rounds
                    .iter()
                    .map(|r| r.during.p99_us as f64)
                    .collect::<Vec<_>>()
            ),
            load::median(
                &live
                    .rounds
                    .iter()
                    .map(|r| r.idle.p99_us as f64)
                    .collect::<Vec<_>>()
            ),
            live.p99_median_ratio()
        );
        let steal = |s: Option<f64>| s.map_or_else(|| "unknown".to_string(), |s| format!("{s:.0}"));
        for (k, r) in live.rounds.iter().enumerate() {
            println!(
                "    round {}: {} rows in {:.2} s; p99 {} us while pruning ({} calls, {} ms stolen) against {} us idle ({} ms stolen) = {:.2} x",
                k + 1,
                r.pruned,
                r.secs,
                r.during.p99_us,
                r.calls,
                steal(r.during_steal_ms),
                r.idle.p99_us,
                steal(r.idle_steal_ms),
                r.during.p99_us as f64 / r.idle.p99_us.max(1) as f64
            );
        }
        for (name, w, calls) in &engine_windows {
            println!("  engine, {name}: {}", w.line(*calls));
        }
        println!(
            "  statement: {}'s month closed ({} claims) in {:.2} s; its {} lines exported by {} pages of 5,000 through the broker in {:.2} s ({:.0} lines/s, {:.3} s a page); the broker (a process of its own) {:.0} MiB before, peak {:.0} MiB = {:.2} x the 100 MiB limit; read whole from the store instead (as before pages, in this process), {}",
            scale::LARGE,
            export.closed_claims,
            export.close_secs,
            export.lines,
            export.pages,
            export.secs,
            export.lines as f64 / export.secs.max(1e-9),
            export.secs / export.pages.max(1) as f64,
            export.rss_before_mib,
            export.peak_mib,
            export.peak_mib / 100.0,
            match &export.whole_peak_mib {
                Ok(mib) => format!("peak {mib:.0} MiB"),
                Err(e) => format!("failed: {e}"),
            }
        );
        if let Some(c) = &export.console {
            println!("  {}", c.line(export.lines));
        }
        match &export.remittance {
            Some(Ok(r)) => println!("  {}", r.line()),
            Some(Err(e)) => println!("  remittance advice of the month: failed: {e}"),
            None => {}
        }
        println!(
            "  migrations {} to {} applied again to the seeded data (one transaction; {} ceiling rows get two columns; after the commit, beside writers, the statement's index, the claims' key and the open claims' index are built over every claim and the two columns' CHECKs validated; the key's constraint {}): {:.3} s; two writers meanwhile, of one ceiling row and of one claim, each every 2 ms on its own connection: {} writes, the longest {:.0} ms on the ceiling row and {:.0} ms on the claim (held by the migrations), {} failed",
            mig.from + 1,
            mig.to,
            mig.ceiling_rows,
            match mig.key_constraint_kept {
                Some(false) => "then dropped",
                Some(true) => "kept, the table busy past 0.5 s",
                None => "unread",
            },
            mig.secs,
            mig.writes,
            mig.longest_write_ms,
            mig.longest_claim_write_ms,
            mig.failed
        );
    }
    // A figure with failed calls in it is not a figure.
    failures.extend(
        rows.iter()
            .filter(|r| r.errors > 0)
            .map(|r| format!("{}: {} calls failed", r.name, r.errors)),
    );
    failures.extend(
        mtls.iter()
            .filter(|m| m.errors > 0)
            .map(|m| format!("mTLS cost of {}: {} calls failed", m.name, m.errors)),
    );
    if let Some(c) = &catch_up
        && c.errors > 0
    {
        failures.push(format!("catch-up: {} calls failed", c.errors));
    }
    if !failures.is_empty() {
        eprintln!("error: {}", failures.join("; "));
        std::process::exit(1);
    }
}
