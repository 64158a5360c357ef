//! The report of a run: the table a person reads, or the JSON a script
//! reads (`--json`), every figure beside its limit.

use crate::load::Latency;
use crate::{Args, MtlsCost, Row, catchup, http_partners, postgres};

fn lat_json(l: &Latency) -> serde_json::Value {
    if l.over_capacity {
        return serde_json::json!({
            "offered_rps": l.offered_rps.round(),
            "over_capacity": true,
        });
    }
    serde_json::json!({
        "offered_rps": l.offered_rps.round(),
        "p50_us": l.p50_us,
        "p99_us": l.p99_us,
        "p999_us": l.p999_us,
        "send_late_p99_us": l.send_late_p99_us,
        "shed": l.shed,
    })
}

/// The report's sections that only some runs have.
pub(crate) struct Sections<'a> {
    /// P0's rows in one commit (bench/pgbench/p0-one.sql).
    pub p0_one: Option<&'a postgres::Limit>,
    /// Claims and P0 in alternating runs.
    pub p0_rounds: &'a [postgres::P0Rounds],
    pub catch_up: Option<&'a catchup::CatchUp>,
    pub http: Option<&'a http_partners::Comparison>,
    /// The scale figures (bench/src/scale.rs), as JSON.
    pub scale: Option<serde_json::Value>,
}

pub(crate) fn report(
    args: &Args,
    rows: &[Row],
    mtls: &[MtlsCost],
    limit: Option<&postgres::Limit>,
    limit0: Option<&postgres::Limit>,
    sections: Sections<'_>,
) {
    let Sections {
        p0_one: limit0_one,
        p0_rounds,
        catch_up,
        http,
        scale,
    } = sections;
    let b = rows[0].saturation_rps.max(1.0);
    let p = limit.map(|l| l.tps).filter(|t| *t > 0.0);
    let p0 = limit0.map(|l| l.tps).filter(|t| *t > 0.0);
    let p0_one = limit0_one.map(|l| l.tps).filter(|t| *t > 0.0);
    // The database's CPU per claim of P0 (µs), and of P.
    let p0_cpu = limit0.and_then(|l| l.db_cpu_us).filter(|us| *us > 0.0);
    let p_cpu = limit.and_then(|l| l.db_cpu_us).filter(|us| *us > 0.0);
    let mib = |kib: u64| (kib as f64 / 102.4).round() / 10.0;
    let json = serde_json::json!({
        "smoke": args.smoke,
        "seconds": args.secs(),
        "concurrency": args.concurrency,
        "connections": args.connections,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "b_rps": b.round(),
        "b_end_rps": rows[0].b_end_rps.map(f64::round),
        "p_tps": p.map(f64::round),
        "p_runs_tps": limit.map(|l| l.runs.map(f64::round)),
        "p0_tps": p0.map(f64::round),
        "p0_runs_tps": limit0.map(|l| l.runs.map(f64::round)),
        "p0_one_commit_tps": p0_one.map(f64::round),
        "p0_one_commit_runs_tps": limit0_one.map(|l| l.runs.map(f64::round)),
        "p0_db_cpu_us_per_claim": p0_cpu.map(f64::round),
        "p0_rounds": p0_rounds.iter().map(|r| serde_json::json!({
            "name": r.name,
            "median_ratio_to_p0": (r.median() * 1000.0).round() / 1000.0,
            "ratios": r.ratios().iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
            "p0_tps": r.p0_tps.iter().map(|x| x.round()).collect::<Vec<_>>(),
            "claims_rps": r.claims_rps.iter().map(|x| x.round()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "p_db_cpu_us_per_claim": p_cpu.map(f64::round),
        "pgbench_clients": limit.map(|l| l.clients),
        "scenarios": rows.iter().map(|r| serde_json::json!({
            "name": r.name,
            "saturation_rps": r.saturation_rps.round(),
            "ratio_to_b": (r.saturation_rps / b * 1000.0).round() / 1000.0,
            "ratio_to_p": p.filter(|_| r.name.contains("PostgreSQL"))
                .map(|p| (r.saturation_rps / p * 1000.0).round() / 1000.0),
            "ratio_to_p0": p0.filter(|_| r.name.contains("PostgreSQL"))
                .map(|p0| (r.saturation_rps / p0 * 1000.0).round() / 1000.0),
            "ratio_to_p0_one_commit": p0_one.filter(|_| r.name.contains("PostgreSQL"))
                .map(|p| (r.saturation_rps / p * 1000.0).round() / 1000.0),
            "db_cpu_us_per_claim": r.db_cpu_us.map(f64::round),
            "own_cpu_us_per_claim": r.own_cpu_us.map(f64::round),
            "db_cpu_ratio_to_p0": r.db_cpu_us.zip(p0_cpu)
                .map(|(us, p0)| (p0 / us * 1000.0).round() / 1000.0),
            "at_quarter_b": lat_json(&r.quarter_b),
            "at_half_own_saturation": lat_json(&r.sustained),
            "peak_rss_mib": mib(r.peak_rss_kib),
            "errors": r.errors,
            "refused_by_bounds": r.refused,
        })).collect::<Vec<_>>(),
        "mtls_cost": mtls.iter().map(|m| serde_json::json!({
            "path": m.name,
            "median": (m.median() * 1000.0).round() / 1000.0,
            "rounds": m.rounds.iter().map(|r| (r * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
            "rounds_rps": m.rounds_rps.iter().map(|r| r.map(f64::round)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "http_partners": http.map(http_partners::Comparison::json),
        "http_partners_refused_by_bounds": http.map(|h| h.refused),
        "scale": scale,
        "catch_up": catch_up.map(|c| serde_json::json!({
            "claims": c.claims,
            "arrival_secs": (c.arrival_secs * 100.0).round() / 100.0,
            "drain_secs": (c.drain_secs * 100.0).round() / 100.0,
            "delivery_rps": c.delivery_rps().round(),
            "live_eligibility_idle": lat_json(&c.idle),
            "live_eligibility_draining": lat_json(&c.draining),
            "p99_ratio": (c.draining.p99_us as f64 / c.idle.p99_us.max(1) as f64 * 100.0).round() / 100.0,
            "broker_peak_rss_mib": mib(c.broker_rss_kib),
            "bench_process_peak_rss_mib": mib(c.bench_rss_kib),
            "errors": c.errors,
        })),
    });
    if !args.json {
        println!(
            "{:<30} {:>8} {:>6} | {:>7} {:>7} {:>8} {:>5} {:>5} | {:>7} {:>7} {:>8} | {:>5}",
            "scenario",
            "sat. rps",
            "x B",
            "0.25 B",
            "p50 us",
            "p99 us",
            "late",
            "shed",
            "0.5 own",
            "p50 us",
            "p99 us",
            "MiB"
        );
        for r in rows {
            let (q, s) = (&r.quarter_b, &r.sustained);
            let (p50, p99, late, shed) = if q.over_capacity {
                (
                    "over".to_string(),
                    "capacity".to_string(),
                    "-".to_string(),
                    "-".to_string(),
                )
            } else {
                (
                    q.p50_us.to_string(),
                    q.p99_us.to_string(),
                    q.send_late_p99_us.to_string(),
                    q.shed.to_string(),
                )
            };
            println!(
                "{:<30} {:>8.0} {:>6.3} | {:>7.0} {:>7} {:>8} {:>5} {:>5} | {:>7.0} {:>7} {:>8} | {:>5.0}",
                r.name,
                r.saturation_rps,
                r.saturation_rps / b,
                q.offered_rps,
                p50,
                p99,
                late,
                shed,
                s.offered_rps,
                s.p50_us,
                s.p99_us,
                mib(r.peak_rss_kib)
            );
        }
        for r in rows.iter().filter(|r| r.refused > 0) {
            println!(
                "{}: {} calls refused by the broker's bounds (partner busy, in-flight limits) \
                 during the open loops, not counted as answers",
                r.name, r.refused
            );
        }
        for m in mtls {
            let (lo, hi) = m
                .rounds
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
            println!(
                "mTLS cost, {}: {:.1}% (1 - mTLS/plaintext calls/s; median of {} alternating \
                 rounds, {:.1}% to {:.1}%)",
                m.name,
                m.median() * 100.0,
                m.rounds.len(),
                lo * 100.0,
                hi * 100.0
            );
        }
        if let Some(h) = http {
            h.print();
        }
        if let Some(end) = rows[0].b_end_rps {
            println!("B measured again at the end: {end:.0} rps; ratios use the higher, {b:.0}");
        }
        if let (Some(l), Some(p0)) = (limit0, p0) {
            println!(
                "P0 (pgbench, {} clients, bench/pgbench/p0.sql: the least database work a claim \
                 needs): {p0:.0} claims/s (mean of {:.0} before and {:.0} after the broker's runs)",
                l.clients, l.runs[0], l.runs[1]
            );
            for r in rows.iter().filter(|r| r.name.contains("PostgreSQL")) {
                println!("  {}: {:.3} P0", r.name, r.saturation_rps / p0);
            }
            for r in p0_rounds {
                let list = |v: &[f64], d: usize| {
                    v.iter()
                        .map(|x| format!("{x:.d$}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!(
                    "  {}, alternating with P0 ({} rounds, P0 run before and after each): \
                     {:.3} P0 median (rounds {}; claims/s {}; P0 {})",
                    r.name,
                    r.claims_rps.len(),
                    r.median(),
                    list(&r.ratios(), 3),
                    list(&r.claims_rps, 0),
                    list(&r.p0_tps, 0)
                );
            }
            if let (Some(l), Some(one)) = (limit0_one, p0_one) {
                // The bench's claims are of a rules mutuelle, which the
                // broker stores in one commit: against the same rows in one
                // commit, the ratio the broker's own work leaves.
                println!(
                    "P0 in one commit (bench/pgbench/p0-one.sql: P0's rows as a rules mutuelle's \
                     claim is written): {one:.0} claims/s (mean of {:.0} and {:.0}) = {:.2} P0",
                    l.runs[0],
                    l.runs[1],
                    one / p0
                );
                for r in rows.iter().filter(|r| r.name.contains("PostgreSQL")) {
                    println!(
                        "  {}: {:.3} P0 in one commit",
                        r.name,
                        r.saturation_rps / one
                    );
                }
            }
            if let Some(p0_cpu) = p0_cpu {
                println!(
                    "database CPU per claim (the machine's busy time outside the bench's process \
                     and pgbench; what counts when PostgreSQL has cores of its own): P0 {p0_cpu:.0} us{}",
                    p_cpu.map(|p| format!(", P {p:.0} us")).unwrap_or_default()
                );
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                for r in rows.iter().filter(|r| r.name.contains("PostgreSQL")) {
                    if let Some(us) = r.db_cpu_us {
                        println!(
                            "  {}: {us:.0} us = {:.3} P0 (P0's us / its us)",
                            r.name,
                            p0_cpu / us
                        );
                    }
                    // With the database's work cut to P0's, the cores this
                    // machine shares would still carry the bench's own
                    // work: the most claims/s it allows, as a ratio to P0.
                    if let Some(own) = r.own_cpu_us {
                        println!(
                            "    this process {own:.0} us per claim (broker, load generator, partners): \
                             with P0's database work the {cores:.0} shared cores allow at most {:.3} P0",
                            cores * 1e6 / (p0_cpu + own) / p0
                        );
                    }
                }
            }
        }
        match (limit, p) {
            (Some(l), Some(p)) => {
                println!(
                    "P (pgbench, {} clients, bench/pgbench/claim.sql): {p:.0} claims/s \
                     (mean of {:.0} before and {:.0} after the broker's runs)",
                    l.clients, l.runs[0], l.runs[1]
                );
                for r in rows.iter().filter(|r| r.name.contains("PostgreSQL")) {
                    println!("  {}: {:.3} P", r.name, r.saturation_rps / p);
                }
            }
            (Some(l), None) => println!("P: {}", l.failed.as_deref().unwrap_or("no figure")),
            (None, _) => {}
        }
        if let Some(c) = catch_up {
            println!(
                "catch-up: {} claims arrived in {:.1} s while MUT-ENSEIGNANTS was down; \
                 delivered {:.1} s after it came back: {:.0} claims/s",
                c.claims,
                c.arrival_secs,
                c.drain_secs,
                c.delivery_rps(),
            );
            println!(
                "  peak RSS: broker {:.0} MiB (its own process); load generator and simulated \
                 partners {:.0} MiB",
                mib(c.broker_rss_kib),
                mib(c.bench_rss_kib)
            );
            println!(
                "  eligibility (rules) at {:.0} rps: p99 {} us idle, {} us while draining ({:.2}x)",
                c.idle.offered_rps,
                c.idle.p99_us,
                c.draining.p99_us,
                c.draining.p99_us as f64 / c.idle.p99_us.max(1) as f64
            );
        }
    }
    println!("{json}");
}
