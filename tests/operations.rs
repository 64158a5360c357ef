//! Operating a broker (docs/operations.md, issue 17): the operations
//! listener (/metrics, /healthz, /readyz), the partners' circuit breakers
//! and pauses, JSON log lines, and the shipped alert rules and dashboard
//! checked against what a running broker exports.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use passerelle_adapters::sim::Mode;
use passerelle_proto::admin::v1 as admin;
use passerelle_proto::common::v1::CareCategory as C;
use passerelle_proto::scheme::v1 as pb;

use crate::common::*;

/// GET `path` over HTTP/1.1 on a connection of its own: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The exposition of a broker's /metrics.
pub async fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample `name` whose labels include every `labels` pair
/// (an integer sample; `None` when absent).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let (labelset, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| labelset.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
            .then(|| value.split('.').next().unwrap_or(value).parse().ok())
            .flatten()
    })
}

/// The common test config's `[breaker]` table (circuit off).
const BREAKER_OFF: &str = "[breaker]\nfailures = 0\n";

/// A one-line claim of MUT-G's member G-OK (B 5000, S 3500).
fn g_claim(id: &str) -> pb::CoordinateClaimRequest {
    claim(id, "G-OK", &[covered(C::Consultation, 5000, 5000, 3500)])
}

fn with_metrics(base: String) -> String {
    format!("{base}\n[metrics]\nlisten = \"127.0.0.1:0\"\n")
}

/// Metrics move as real calls happen over a socket: gRPC calls by method,
/// role and code with their latency histogram, partner calls by outcome,
/// claims waiting and the age of the oldest, the partner's health; and no
/// label carries a claim or beneficiary id. /healthz and /readyz answer.
#[tokio::test]
async fn metrics_move_as_calls_happen() {
    let h = Harness::start_config(|sim| with_metrics(config_text(sim, 300))).await;
    let ops = h.running().ops_addr.expect("an operations listener");
    assert_eq!(http_get(ops, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(http_get(ops, "/readyz").await, (200, "ready\n".into()));
    assert_eq!(http_get(ops, "/nothing").await.0, 404);

    let before = scrape(ops).await;
    assert!(
        before.contains("passerelle_build_info{version=\""),
        "{before}"
    );
    let handled = |t: &str, method: &str, code: &str| {
        sample(
            t,
            "passerelle_grpc_server_handled_total",
            &[
                ("grpc_method", method),
                ("role", "plaintext"),
                ("grpc_code", code),
            ],
        )
        .unwrap_or(0)
    };
    let seconds = |t: &str, method: &str| {
        sample(
            t,
            "passerelle_grpc_server_handling_seconds_count",
            &[("grpc_method", method), ("role", "plaintext")],
        )
        .unwrap_or(0)
    };
    let r = h.coordinate(g_claim("MET-1")).await.unwrap();
    assert_eq!(state(&r), pb::ClaimState::Coordinated);
    let bad = h
        .coordinate(claim(
            "MET-2",
            "G-OK",
            &[covered(C::Consultation, 5000, 5000, 6000)],
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    let after = scrape(ops).await;
    assert_eq!(
        handled(&after, "CoordinateClaim", "Ok") - handled(&before, "CoordinateClaim", "Ok"),
        1
    );
    assert_eq!(
        handled(&after, "CoordinateClaim", "InvalidArgument")
            - handled(&before, "CoordinateClaim", "InvalidArgument"),
        1
    );
    assert_eq!(
        seconds(&after, "CoordinateClaim") - seconds(&before, "CoordinateClaim"),
        2,
        "both calls are in the latency histogram"
    );
    let ok_calls = |t: &str| {
        sample(
            t,
            "passerelle_partner_calls_total",
            &[
                ("partner", "MUT-G"),
                ("method", "AdjudicateRemainder"),
                ("outcome", "ok"),
            ],
        )
        .unwrap_or(0)
    };
    assert_eq!(ok_calls(&after) - ok_calls(&before), 1);
    assert_eq!(
        sample(
            &after,
            "passerelle_partner_pending_claims",
            &[("partner", "MUT-G")]
        ),
        Some(0)
    );
    assert_eq!(
        sample(&after, "passerelle_partner_up", &[("partner", "MUT-G")]),
        Some(1)
    );
    assert_eq!(sample(&after, "passerelle_store_up", &[]), Some(1));
    assert!(
        sample(
            &after,
            "passerelle_store_operation_duration_seconds_count",
            &[("operation", "begin_claim")]
        )
        .unwrap_or(0)
            >= 1
    );

    // A partner that hangs: the claim waits (PENDING), the partner is down,
    // the timeout is counted, and the claim is counted as waiting.
    h.sim.set_mode(Mode::Hang);
    let r = h.coordinate(g_claim("MET-3")).await.unwrap();
    assert_eq!(state(&r), pb::ClaimState::PendingPartner);
    let hung = scrape(ops).await;
    let failed = |outcome| {
        sample(
            &hung,
            "passerelle_partner_calls_total",
            &[("partner", "MUT-G"), ("outcome", outcome)],
        )
        .unwrap_or(0)
    };
    // The deadline or the channel's own timeout, whichever ends first (the
    // retry worker may have tried again since).
    assert!(failed("timeout") + failed("unavailable") >= 1, "{hung}");
    assert_eq!(
        sample(&hung, "passerelle_partner_up", &[("partner", "MUT-G")]),
        Some(0)
    );
    assert_eq!(
        sample(
            &hung,
            "passerelle_partner_pending_claims",
            &[("partner", "MUT-G")]
        ),
        Some(1)
    );
    assert!(
        sample(
            &hung,
            "passerelle_partner_oldest_pending_age_seconds",
            &[("partner", "MUT-G")]
        )
        .is_some()
    );
    for id in ["MET-1", "MET-2", "MET-3", "G-OK"] {
        assert!(!hung.contains(id), "{id} in the metrics");
    }
}

/// A dead partner opens its circuit after `[breaker] failures` missed
/// deadlines; the next claim for it answers PENDING at once (well under the
/// deadline), while another partner's claims stay fast; the circuit is
/// stored (every broker, the retry worker) and shown in metrics and
/// `ListPartners`.
#[tokio::test]
async fn a_dead_partner_opens_its_circuit_and_others_stay_fast() {
    let deadline = Duration::from_millis(2000);
    let h = Harness::start_config(|sim| {
        with_metrics(
            config_text(sim, deadline.as_millis() as u64)
                .replace(BREAKER_OFF, "[breaker]\nfailures = 2\nopen_ms = 600000\n"),
        )
    })
    .await;
    let ops = h.running().ops_addr.unwrap();
    h.sim.set_mode(Mode::Hang);
    for i in 0..2 {
        let r = h.coordinate(g_claim(&format!("CB-{i}"))).await.unwrap();
        assert_eq!(state(&r), pb::ClaimState::PendingPartner);
    }
    let started = Instant::now();
    let r = h.coordinate(g_claim("CB-OPEN")).await.unwrap();
    let took = started.elapsed();
    assert_eq!(state(&r), pb::ClaimState::PendingPartner);
    assert!(
        took < deadline / 2,
        "PENDING at once, not after the deadline: {took:?}"
    );
    let stored = h
        .running()
        .broker
        .store()
        .get_claim("CNSS", "CB-OPEN")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.last_error.contains("circuit is open"),
        "{}",
        stored.last_error
    );
    // Another partner is unaffected.
    let started = Instant::now();
    let r = h
        .coordinate(claim(
            "CB-R",
            "R-OK",
            &[covered(C::Consultation, 5000, 5000, 3500)],
        ))
        .await
        .unwrap();
    assert_eq!(state(&r), pb::ClaimState::Coordinated);
    assert!(started.elapsed() < deadline / 2, "{:?}", started.elapsed());

    let m = scrape(ops).await;
    let breaker = |s| {
        sample(
            &m,
            "passerelle_partner_breaker_state",
            &[("partner", "MUT-G"), ("state", s)],
        )
    };
    assert_eq!((breaker("open"), breaker("closed")), (Some(1), Some(0)));
    assert_eq!(
        sample(
            &m,
            "passerelle_partner_breaker_state",
            &[("partner", "MUT-R"), ("state", "closed")]
        ),
        Some(1)
    );
    assert_eq!(
        sample(
            &m,
            "passerelle_partner_calls_total",
            &[("partner", "MUT-G"), ("outcome", "breaker_open")]
        ),
        Some(1)
    );
    let stored = h.running().broker.store().partner_controls().await.unwrap();
    assert!(
        stored
            .iter()
            .any(|c| c.partner_id == "MUT-G" && c.breaker_open_until_ms > 0),
        "{stored:?}"
    );
    let mut a = admin::admin_service_client::AdminServiceClient::new(channel(h.addr).await);
    let partners = a
        .list_partners(admin::ListPartnersRequest {})
        .await
        .unwrap()
        .into_inner()
        .partners;
    let g = partners.iter().find(|p| p.mutuelle_id == "MUT-G").unwrap();
    assert_eq!((g.circuit.as_str(), g.pending), ("open", 3));
    assert!(g.oldest_pending_ms > 0);

    // An operator lists the claims waiting across every scheme.
    use passerelle_proto::settlement::v1 as st;
    let mut s = st::settlement_service_client::SettlementServiceClient::new(channel(h.addr).await);
    let page = s
        .list_claims(st::ListClaimsRequest {
            state: "pending_partner".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut ids: Vec<&str> = page.claims.iter().map(|c| c.claim_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, vec!["CB-0", "CB-1", "CB-OPEN"]);
    // By pages: a token only when more follow; a full last page ends it
    // (it gave a token to an empty page).
    let paged = |page_size: u32, page_token: String| {
        let mut s = s.clone();
        async move {
            s.list_claims(st::ListClaimsRequest {
                state: "pending_partner".into(),
                page_size,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    let whole = paged(3, String::new()).await;
    assert_eq!(
        (whole.claims.len(), whole.next_page_token.as_str()),
        (3, "")
    );
    let first = paged(2, String::new()).await;
    assert_eq!(first.claims.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let last = paged(2, first.next_page_token).await;
    assert_eq!((last.claims.len(), last.next_page_token.as_str()), (1, ""));
    // Not every claim of every scheme, though: a waiting state, or a scheme.
    let e = s
        .list_claims(st::ListClaimsRequest {
            state: "coordinated".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("scheme_id") || format!("{e:?}").contains("scheme_id"));
}

/// A pause holds a partner's claims (accepted, PENDING, no call) on every
/// broker of a database and across a restart; a resume sends its backlog.
/// Two brokers on one PostgreSQL schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_across_replicas_and_a_restart() {
    let Some(pg) = fresh_postgres().await else {
        return;
    };
    let (sim, sim_addr) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg: passerelle_broker::config::Config = toml::from_str(&format!(
        "{}\n[store.postgres]\nurl = \"{}\"\nschema = \"{}\"\npool_size = 4\n",
        config_text(sim_addr, 2000),
        pg.url,
        pg.schema.clone().unwrap_or_default()
    ))
    .unwrap();
    let start = || async {
        let store = passerelle_broker::server::open_store(&cfg, dir.path(), false)
            .await
            .unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        passerelle_broker::server::start_with_store(&cfg, dir.path(), store, l)
            .await
            .unwrap()
    };
    let a = start().await;
    let b = start().await;
    a.broker
        .store()
        .upsert_members(&members(), 0)
        .await
        .unwrap();
    let mut admin_a = admin::admin_service_client::AdminServiceClient::new(channel(a.addr).await);
    let paused = admin_a
        .pause_partner(admin::PausePartnerRequest {
            mutuelle_id: "MUT-G".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(paused.paused_ms > 0);
    assert!(paused.paused_by.starts_with("operator:"), "{paused:?}");
    // An unknown mutuelle is refused, naming the field.
    let e = admin_a
        .pause_partner(admin::PausePartnerRequest {
            mutuelle_id: "MUT-NONE".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // Broker B takes the pause at its worker's next pass (here at once).
    b.broker.refresh_controls().await.unwrap();
    let mut scheme_b = pb::scheme_service_client::SchemeServiceClient::new(channel(b.addr).await);
    let before = sim.adjudication_keys().len();
    let r = scheme_b
        .coordinate_claim(g_claim("PAUSE-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&r), pb::ClaimState::PendingPartner);
    let stored = b
        .broker
        .store()
        .get_claim("CNSS", "PAUSE-1")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.last_error.contains("paused"),
        "{}",
        stored.last_error
    );
    assert_eq!(
        sim.adjudication_keys().len(),
        before,
        "no call while paused"
    );

    // A restart of A: the pause is still in force.
    a.shutdown().await;
    let a = start().await;
    let mut scheme_a = pb::scheme_service_client::SchemeServiceClient::new(channel(a.addr).await);
    let r = scheme_a
        .coordinate_claim(g_claim("PAUSE-2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&r), pb::ClaimState::PendingPartner);
    assert_eq!(sim.adjudication_keys().len(), before);
    // The retry worker leaves them alone: none leased while paused.
    assert!(
        a.broker
            .store()
            .lease_due(i64::MAX / 2, 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Resume on B: the backlog goes (the workers deliver both claims).
    let mut admin_b = admin::admin_service_client::AdminServiceClient::new(channel(b.addr).await);
    let resumed = admin_b
        .resume_partner(admin::ResumePartnerRequest {
            mutuelle_id: "MUT-G".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resumed.paused_ms, 0);
    a.broker.refresh_controls().await.unwrap();
    for id in ["PAUSE-1", "PAUSE-2"] {
        let r = wait_state(&mut scheme_b, "CNSS", id, pb::ClaimState::Coordinated).await;
        assert_balanced(&r);
    }
    assert_eq!(sim.adjudication_keys().len(), before + 2);
    a.shutdown().await;
    b.shutdown().await;
}

/// /readyz says not ready while the store is out of reach (PostgreSQL
/// behind a proxy that is cut), and ready again once it is back; /healthz
/// stays up meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_store_is_down() {
    let Some(pg) = fresh_postgres().await else {
        return;
    };
    let upstream: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = crate::common::proxy::Proxy::start(upstream).await;
    let url = pg
        .url
        .replace("127.0.0.1:5432", &proxy.addr.to_string())
        .replace("localhost:5432", &proxy.addr.to_string());
    assert_ne!(
        url, pg.url,
        "the test database is reached through the proxy"
    );
    let (_sim, sim_addr) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg: passerelle_broker::config::Config = toml::from_str(&with_metrics(format!(
        "{}\n[store.postgres]\nurl = \"{url}\"\nschema = \"{}\"\npool_size = 2\nconnect_timeout_ms = 500\nwait_timeout_ms = 500\n",
        config_text(sim_addr, 2000),
        pg.schema.clone().unwrap_or_default()
    )))
    .unwrap();
    let store = passerelle_broker::server::open_store(&cfg, dir.path(), false)
        .await
        .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = passerelle_broker::server::start_with_store(&cfg, dir.path(), store, l)
        .await
        .unwrap();
    let ops = running.ops_addr.unwrap();
    assert_eq!(http_get(ops, "/readyz").await.0, 200);
    proxy.cut();
    let (status, body) = http_get(ops, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("store:"), "{body}");
    assert_eq!(http_get(ops, "/healthz").await.0, 200);
    assert_eq!(
        sample(&scrape(ops).await, "passerelle_store_up", &[]),
        Some(0)
    );
    proxy.restore();
    let (status, body) = http_get(ops, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    running.shutdown().await;
}

/// `serve --log-format json`: every line is one JSON object; a claim's
/// state changes are info lines with scheme, claim id, partner and state,
/// and never the beneficiary.
#[tokio::test]
async fn json_log_lines_parse() {
    let (_sim, sim_addr) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.toml");
    std::fs::write(&path, config_text(sim_addr, 2000)).unwrap();
    crate::common::process::migrate(&path);
    let mut b = crate::common::process::spawn_with(&path, &["--log-format", "json"]);
    crate::common::process::load_roster(b.addr).await;
    let mut client = pb::scheme_service_client::SchemeServiceClient::new(channel(b.addr).await);
    let r = client
        .coordinate_claim(g_claim("LOG-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&r), pb::ClaimState::Coordinated);
    drop(client);
    // SIGTERM drains and ends the process: its stderr is then complete.
    let pid = b.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Waited for off the runtime: the client's connections, driven by this
    // runtime, must see the broker's goodbye for it to finish draining.
    let (status, mut b) = tokio::task::spawn_blocking(move || (b.child.wait(), b))
        .await
        .unwrap();
    let status = status.unwrap();
    assert!(status.success(), "{status:?}");
    // Every line: the reader thread ends with the process's stderr.
    let lines: Vec<String> = b.stderr.take().unwrap().iter().collect();
    assert!(!lines.is_empty());
    let mut states = Vec::new();
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
        assert!(!l.contains("G-OK"), "a beneficiary id in the log: {l}");
        assert!(!l.contains('\u{1b}'), "an ANSI code in the log: {l}");
        if v["fields"]["message"] == "claim state" && v["fields"]["claim"] == "LOG-1" {
            assert_eq!(v["fields"]["scheme"], "CNSS");
            assert_eq!(v["fields"]["partner"], "MUT-G");
            states.push(v["fields"]["state"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(states, vec!["received", "coordinated"], "{lines:#?}");
}

/// Every metric the shipped alert rules and Grafana dashboard name is one
/// a running broker exports (after a few calls, so that each family has
/// samples), and every alert rule's file names them by their full name.
#[tokio::test]
async fn the_shipped_alerts_and_dashboard_use_exported_metrics() {
    // Over mTLS, so that the certificate and CRL dates are exported too.
    let h = TlsHarness::start_with(|cfg| {
        cfg.metrics = Some(passerelle_broker::config::MetricsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: None,
        })
    })
    .await;
    let ops = h.running().ops_addr.unwrap();
    let mut scheme = pb::scheme_service_client::SchemeServiceClient::new(
        h.as_(passerelle_broker::identity::Role::Scheme, "CNSS")
            .await,
    );
    scheme.coordinate_claim(g_claim("DASH-1")).await.unwrap();
    // The samples, and the sample names of every family the broker
    // declares (a family with no sample yet, such as the certificate dates
    // of a plaintext broker, is declared all the same).
    let text = scrape(ops).await;
    // Both background tasks say when they last ended a pass, from the
    // start (PasserelleWorkerStalled reads them).
    for task in ["retry", "retention"] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "passerelle_worker_last_pass_timestamp_seconds{{task=\"{task}\"}}"
                ))
            })
            .unwrap_or_else(|| panic!("{task}: {text}"));
        let at: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(at > 1_700_000_000, "{line}");
    }
    let mut exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    for l in text.lines() {
        let Some(t) = l.strip_prefix("# TYPE ") else {
            continue;
        };
        let Some((name, kind)) = t.split_once(' ') else {
            continue;
        };
        match kind {
            "counter" => {
                exported.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["_bucket", "_sum", "_count"] {
                    exported.insert(format!("{name}{s}"));
                }
            }
            _ => {
                exported.insert(name.to_string());
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    for file in [
        "deploy/prometheus/passerelle-alerts.yml",
        "deploy/grafana/passerelle-dashboard.json",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let named = metric_names(&text);
        assert!(named.len() >= 5, "{file}: {named:?}");
        for m in named {
            assert!(
                exported.contains(&m),
                "{file} uses {m}, which the broker does not export; exported: {exported:#?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 10);
}

/// The metric names a text uses (words starting `passerelle_`).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("passerelle_") {
        let word: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + word.len()..];
        out.insert(word);
    }
    out
}

/// The operator's command line against an mTLS broker: `http://` says the
/// broker requires https instead of an h2 protocol error, and `admin`
/// commands use the one operator certificate of --certs whatever its id
/// (not only the dev broker's `operator-dev`).
#[tokio::test]
async fn operators_reach_an_mtls_broker_with_their_own_certificate() {
    let h = TlsHarness::start().await;
    let addr = h.running().addr;
    let run = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_passerelle"))
                .args(&args)
                .env("LANG", "en")
                .env_remove("LANGUAGE")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let out = run(vec![
        "--broker".into(),
        format!("http://{addr}"),
        "admin".into(),
        "partners".into(),
    ])
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this broker requires https (TLS)"), "{err}");
    assert!(err.contains(&format!("https://{addr}")), "{err}");

    // A folder with the CA and one operator's certificate, "ops".
    let certs = tempfile::tempdir().unwrap();
    for f in ["ca.crt", "operator-ops.crt", "operator-ops.key"] {
        std::fs::copy(h.certs().join(f), certs.path().join(f)).unwrap();
    }
    let out = run(vec![
        "--broker".into(),
        format!("https://{addr}"),
        "--certs".into(),
        certs.path().display().to_string(),
        "admin".into(),
        "partners".into(),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("MUT-G") && text.contains("calls"), "{text}");
    // Two operators' certificates: the command asks which.
    std::fs::copy(
        h.certs().join("operator-ops.crt"),
        certs.path().join("operator-other.crt"),
    )
    .unwrap();
    let out = run(vec![
        "--broker".into(),
        format!("https://{addr}"),
        "--certs".into(),
        certs.path().display().to_string(),
        "admin".into(),
        "partners".into(),
    ])
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("several operator certificates") && err.contains("ops, other"),
        "{err}"
    );
}

/// The console's or the metrics' address given to the command line as
/// `--broker`: said to be no gRPC address, in the reader's language, not
/// "internal error" with tonic's words about a compression flag.
#[tokio::test]
async fn the_consoles_or_the_metrics_address_is_said_to_be_no_grpc_address() {
    use passerelle_broker::config::{ConsoleConfig, MetricsConfig};
    let h = TlsHarness::start_with(|cfg| {
        let listen = "127.0.0.1:0".parse().unwrap();
        cfg.console = Some(ConsoleConfig { listen });
        cfg.metrics = Some(MetricsConfig { listen, tls: None });
    })
    .await;
    let console = h.running().console_addr.expect("a console");
    let ops = h.running().ops_addr.expect("an operations listener");
    let certs = h.certs().display().to_string();
    for (url, lang, said) in [
        (
            format!("https://{console}"),
            "en",
            "answers in HTTP, not in gRPC (HTTP status 404)",
        ),
        (
            format!("http://{ops}"),
            "en",
            "answers in HTTP, not in gRPC (HTTP status 404)",
        ),
        (
            format!("https://{console}"),
            "fr",
            "répond en HTTP, pas en gRPC (statut HTTP 404)",
        ),
        // The wrong scheme as well: neither sentence claims the address is
        // the broker's; each names the console's or the metrics' case.
        (
            format!("http://{console}"),
            "en",
            "if it is its console's, --broker takes the address",
        ),
        (
            format!("https://{ops}"),
            "fr",
            "si c'est l'adresse de ses métriques, --broker prend l'adresse",
        ),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .args([
                "--broker", &url, "--certs", &certs, "--lang", lang, "admin", "partners",
            ])
            .env_remove("LANGUAGE")
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}");
        assert!(err.contains(said), "{url}: {err}");
        assert!(!err.contains("compression flag"), "{url}: {err}");
    }
}
/// A scheme's `traceparent` follows its claim: the mutuelle's system gets a
/// child of it (same trace id, another span), and the claim's audit rows,
/// in and out, name the trace id. A call without one starts a trace.
#[tokio::test]
async fn a_trace_follows_the_claim_to_the_mutuelle_and_the_audit() {
    let h = Harness::start().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = tonic::Request::new(g_claim("TRACE-1"));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").parse().unwrap(),
    );
    let r = h
        .client
        .clone()
        .coordinate_claim(req)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&r), pb::ClaimState::Coordinated);
    let sent = h.sim.traceparents();
    let child = passerelle_adapters::trace::TraceParent::parse(sent.last().unwrap()).unwrap();
    assert_eq!(child.trace_id(), trace);
    assert!(
        !sent.last().unwrap().contains("00f067aa0ba902b7"),
        "a new span id"
    );

    let mut a = admin::admin_service_client::AdminServiceClient::new(channel(h.addr).await);
    let rows = a
        .get_claim_audit(admin::GetClaimAuditRequest {
            scheme_id: "CNSS".into(),
            claim_id: "TRACE-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(rows.len() >= 2, "{rows:?}");
    for row in &rows {
        assert_eq!(row.trace_id, trace, "{row:?}");
    }
    // Without a traceparent: a trace of its own, passed on all the same.
    h.coordinate(g_claim("TRACE-2")).await.unwrap();
    let own = passerelle_adapters::trace::TraceParent::parse(h.sim.traceparents().last().unwrap())
        .unwrap();
    assert_ne!(own.trace_id(), trace);
}

/// The operations listener over HTTPS (`[metrics] tls = true`, as on any
/// non-loopback address): through the broker's own TLS acceptor, HTTP/1.1
/// by ALPN, a client certificate from the broker's CA required; without
/// one the handshake fails and is counted as a refusal.
#[tokio::test]
async fn the_operations_listener_over_tls_requires_a_client_certificate() {
    let h = TlsHarness::start_with(|cfg| {
        cfg.metrics = Some(passerelle_broker::config::MetricsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: Some(true),
        })
    })
    .await;
    let ops = h.running().ops_addr.unwrap();
    let curl = |with_cert: bool| {
        let mut c = std::process::Command::new("curl");
        c.args(["-sS", "--http1.1", "--cacert"])
            .arg(h.certs().join("ca.crt"))
            .arg(format!("https://localhost:{}/readyz", ops.port()))
            .args(["--resolve", &format!("localhost:{}:127.0.0.1", ops.port())]);
        if with_cert {
            c.arg("--cert")
                .arg(h.certs().join("operator-ops.crt"))
                .arg("--key")
                .arg(h.certs().join("operator-ops.key"));
        }
        c
    };
    let (mut with, mut without) = (curl(true), curl(false));
    let (ok, refused) =
        tokio::task::spawn_blocking(move || (with.output().unwrap(), without.output().unwrap()))
            .await
            .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "ready\n");
    assert!(
        !refused.status.success(),
        "no client certificate, no answer"
    );
    // Plain HTTP to it gets nothing either.
    let plain = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(ops).await.unwrap();
        let _ = s
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf
    })
    .await
    .unwrap();
    assert!(!String::from_utf8_lossy(&plain).contains("passerelle_"));
}

/// With the `otlp` feature and `[traces] otlp_endpoint`, the broker exports
/// its spans: a server span under the scheme's span, a client span under it
/// for the call to the mutuelle, whose `traceparent` names that client span.
#[cfg(feature = "otlp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    struct Collector(tokio::sync::mpsc::UnboundedSender<ExportTraceServiceRequest>);
    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            r: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let _ = self.0.send(r.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }))
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = l.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(tx)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
    );
    let mut h = Harness::start_config(|sim| {
        format!(
            "{}\n[traces]\notlp_endpoint = \"http://{collector}\"\n",
            config_text(sim, 2000)
        )
    })
    .await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut req = tonic::Request::new(g_claim("OTLP-1"));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-{caller_span}-01").parse().unwrap(),
    );
    h.client.clone().coordinate_claim(req).await.unwrap();
    // Stopping flushes the spans still queued.
    h.running.take().unwrap().shutdown().await;
    let mut spans = Vec::new();
    while let Ok(r) = rx.try_recv() {
        for rs in r.resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let server = spans
        .iter()
        .find(|s| s.name == "CoordinateClaim")
        .unwrap_or_else(|| panic!("no server span in {spans:?}"));
    assert_eq!(hex(&server.trace_id), trace);
    assert_eq!(hex(&server.parent_span_id), caller_span);
    let client = spans
        .iter()
        .find(|s| s.name == "AdjudicateRemainder")
        .unwrap_or_else(|| panic!("no client span in {spans:?}"));
    assert_eq!(hex(&client.trace_id), trace);
    assert_eq!(client.parent_span_id, server.span_id);
    let sent = h.sim.traceparents();
    assert_eq!(
        sent.last().unwrap(),
        &format!("00-{trace}-{}-01", hex(&client.span_id)),
        "the mutuelle is told the client span"
    );
}

/// While SIGTERM's drain runs (a call still waits on its partner), the
/// operations listener stays up and `/readyz` answers 503 "stopping", so
/// that a load balancer sends nothing more; it closes once the drain ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_stopping_while_calls_drain() {
    let mut h = Harness::start_config(|sim| with_metrics(config_text(sim, 2000))).await;
    let ops = h.running().ops_addr.unwrap();
    h.sim.set_mode(Mode::Hang);
    let mut seen = h.sim.seen();
    let client = h.client.clone();
    let call =
        tokio::spawn(async move { client.clone().coordinate_claim(g_claim("DRAIN-1")).await });
    // The call is with the partner: the drain must wait for it.
    seen.wait_for(|s| s.adjudicate_calls >= 1).await.unwrap();
    let running = h.running.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let stopping = tokio::spawn(async move {
        let stop = running.shutdown();
        let _ = tx.send(());
        stop.await
    });
    rx.await.unwrap();
    let mut answer = None;
    while answer.is_none() && !stopping.is_finished() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(ops).await else {
            break;
        };
        let _ = s
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf).to_string();
        if text.starts_with("HTTP/1.1 503") {
            answer = Some(text);
        }
    }
    let answer = answer.expect("503 while draining");
    assert!(answer.ends_with("stopping\n"), "{answer}");
    stopping.await.unwrap();
    let r = call.await.unwrap().unwrap().into_inner();
    assert_eq!(
        state(&r),
        pb::ClaimState::PendingPartner,
        "the call finished"
    );
    assert!(
        tokio::net::TcpStream::connect(ops).await.is_err(),
        "closed once drained"
    );
}

/// A database created under a language's locale compares every key of
/// every index lookup by that language's rules: `migrate` says so, in the
/// command line's language, and `serve` logs it; a database in byte order
/// (`C.UTF-8`) gets neither. Two databases of the test server, made here
/// and dropped however the test ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_serve_warn_of_a_languages_collation() {
    let url = passerelle_broker::store::testing::postgres_url();
    let admin = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client
        }
        Err(e) => {
            passerelle_broker::store::testing::unreachable(e);
            return;
        }
    };
    let stamp = format!(
        "{}_{}",
        std::process::id(),
        passerelle_broker::audit::now_ms() % 1_000_000
    );
    let (french, bytes) = (format!("t_fr_{stamp}"), format!("t_c_{stamp}"));
    let _dropped = DropDatabases {
        url: url.clone(),
        names: vec![french.clone(), bytes.clone()],
    };
    for (db, locale) in [
        (&french, "LOCALE_PROVIDER icu ICU_LOCALE 'fr'"),
        (&bytes, "LOCALE_PROVIDER libc LOCALE 'C.UTF-8'"),
    ] {
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {db} TEMPLATE template0 ENCODING 'UTF8' {locale}"
            ))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = |db: &str| {
        let path = dir.path().join(format!("{db}.toml"));
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:0\"\nplaintext = true\n[[schemes]]\nid = \"CNSS\"\ncurrency = \"XOF\"\n\
                 [store.postgres]\nurl = \"{}\"\npool_size = 2\n",
                on_database(&url, db)
            ),
        )
        .unwrap();
        path
    };
    let (french_cfg, bytes_cfg) = (config(&french), config(&bytes));
    let (out, err) = migrate_cli("fr", &french_cfg).await;
    assert!(out.starts_with("schéma en version "), "{out}");
    assert!(
        err.contains(
            "attention : cette base compare les clés selon la collation fr (ICU), et non octet par octet ; \
             chaque recherche dans un index en coûte davantage. Recréez la base"
        ),
        "{err}"
    );
    let (_, err) = migrate_cli("en", &bytes_cfg).await;
    assert!(!err.contains("collation"), "{err}");
    // `serve` logs it (its log lines are English) before it listens.
    for (cfg, warned) in [(&french_cfg, true), (&bytes_cfg, false)] {
        let mut serve = crate::common::process::spawn(cfg, None);
        serve.kill();
        let logs: Vec<String> = serve.stderr.take().unwrap().iter().collect();
        let warning = logs
            .iter()
            .find(|l| l.contains("compares keys by the collation"));
        assert_eq!(warning.is_some(), warned, "{logs:?}");
        if let Some(w) = warning {
            assert!(
                w.contains("WARN") && w.contains("collation fr (ICU), not as bytes"),
                "{w}"
            );
        }
    }
}

/// `passerelle migrate` on PostgreSQL says what it does as it goes (its
/// log lines, on stderr, English): the transaction begun, each migration
/// run with its time, the commit, then each index built and each check
/// validated beside writers, in that order: an upgrade (about a minute on
/// the benchmark's store of 10 million claims) is not silent.
#[tokio::test]
async fn migrate_says_each_step_on_postgresql() {
    let pg = passerelle_broker::store::testing::postgres_config();
    if let Err(e) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls).await {
        passerelle_broker::store::testing::unreachable(e);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("passerelle.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nplaintext = true\n[[schemes]]\nid = \"CNSS\"\ncurrency = \"XOF\"\n\
             [store.postgres]\nurl = \"{}\"\nschema = \"{}\"\npool_size = 2\n",
            pg.url,
            pg.schema.as_deref().unwrap()
        ),
    )
    .unwrap();
    let (out, err) = migrate_cli("en", &cfg).await;
    let version = passerelle_broker::store::postgres::SCHEMA_VERSION;
    assert_eq!(out.trim(), format!("schema at version {version}"));
    let at = |what: &str| {
        err.find(what)
            .unwrap_or_else(|| panic!("no {what:?} in:\n{err}"))
    };
    let mut steps = vec![at(&format!(
        "applying migrations in one transaction; readers and writers of the tables they alter \
         wait for its commit from=0 to={version}"
    ))];
    steps.extend((1..=version).map(|v| at(&format!("migration run version={v} ms="))));
    steps.push(at(&format!("migrations committed version={version} ms=")));
    steps.push(at(
        "building an index over every claim, beside writers index=claims_statement",
    ));
    steps.push(at("index built index=claims_statement ms="));
    steps.push(at(
        "check validated check=ceiling_usage_held_amount_check ms=",
    ));
    steps.push(at(
        "check validated check=ceiling_usage_held_count_check ms=",
    ));
    assert!(steps.is_sorted(), "{err}");
    // Nothing left to do: a second migrate runs, builds, drops and
    // validates nothing, and says nothing of it.
    let (_, err) = migrate_cli("en", &cfg).await;
    for said in [
        "applying migrations",
        "migration run",
        "migrations committed",
        "building an index",
        "dropped",
        "validating a check",
        "another migrate",
    ] {
        assert!(!err.contains(said), "{said}: {err}");
    }
}

/// `passerelle migrate` on SQLite says what it does as PostgreSQL's does:
/// the transaction begun, each migration run with its time, the commit;
/// a second migrate says nothing of it.
#[tokio::test]
async fn migrate_says_each_step_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("passerelle.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\nplaintext = true\n[[schemes]]\nid = \"CNSS\"\ncurrency = \"XOF\"\n\
         [store]\nsqlite = \"passerelle.db\"\n",
    )
    .unwrap();
    let (out, err) = migrate_cli("fr", &cfg).await;
    let version = passerelle_broker::store::sqlite::SCHEMA_VERSION;
    let db = dir.path().join("passerelle.db");
    assert_eq!(
        out.trim(),
        format!(
            "une base neuve et vide a été créée à {} (si vos données devaient s'y trouver, vérifiez le chemin dans la configuration).\nschéma en version {version}",
            db.display()
        )
    );
    let at = |what: &str| {
        err.find(what)
            .unwrap_or_else(|| panic!("no {what:?} in:\n{err}"))
    };
    let mut steps = vec![at(&format!(
        "applying migrations in one transaction; writers wait for its commit from=0 to={version}"
    ))];
    steps.extend((1..=version).map(|v| at(&format!("migration run version={v} ms="))));
    steps.push(at(&format!("migrations committed version={version} ms=")));
    assert!(steps.is_sorted(), "{err}");
    let (out, err) = migrate_cli("fr", &cfg).await;
    assert_eq!(out.trim(), format!("schéma en version {version}"));
    for said in [
        "applying migrations",
        "migration run",
        "migrations committed",
    ] {
        assert!(!err.contains(said), "{said}: {err}");
    }
}

/// `passerelle --lang LANG migrate --config CFG`, with logs at the default
/// level, within 60 s and successful: its stdout and stderr.
async fn migrate_cli(lang: &str, cfg: &std::path::Path) -> (String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .args(["--lang", lang, "migrate", "--config"])
            .arg(cfg)
            .env_remove("RUST_LOG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("migrate ended")
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), err)
}

/// Drops test databases when dropped, however the test ended: from a
/// thread of its own (a `Drop` cannot await), on a connection of its own.
struct DropDatabases {
    url: String,
    names: Vec<String>,
}

impl Drop for DropDatabases {
    fn drop(&mut self) {
        let (url, names) = (self.url.clone(), std::mem::take(&mut self.names));
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                for db in names {
                    client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .await
                        .unwrap();
                }
            })
        });
        let _ = done.join();
    }
}

/// `url` (a URL, or `key=value` words) with its database replaced by `db`:
/// a `dbname` given last, which PostgreSQL's clients apply after the
/// URL's path.
fn on_database(url: &str, db: &str) -> String {
    if !url.contains("://") {
        format!("{url} dbname={db}")
    } else if url.contains('?') {
        format!("{url}&dbname={db}")
    } else {
        format!("{url}?dbname={db}")
    }
}
