//! `passerelle dev` as a user runs it: the binary starts, prints its address,
//! serves health and reflection, and answers a claim with S, M and P per line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common;
use passerelle_broker::identity::Role;
use passerelle_proto::common::v1::CareCategory as C;
use passerelle_proto::scheme::v1::scheme_service_client::SchemeServiceClient;
use passerelle_proto::scheme::v1::{self as pb, ClaimState};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// Kills the child when the test ends, pass or fail.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn dev_serves_health_reflection_and_claims() {
    // A relative data folder, as in the README (`./.passerelle`).
    let dir = tempfile::tempdir().unwrap();
    let dev = common::process::dev(dir.path(), std::path::Path::new(".passerelle"));
    let addr = dev.addr;
    assert!(dir.path().join(".passerelle/passerelle.db").exists());

    let certs = dir.path().join(".passerelle/certs");
    let ch = common::tls_channel(addr, &certs, Role::Scheme, "CNSS")
        .await
        .unwrap();
    let health = HealthClient::new(ch.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("list services answer");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "passerelle.scheme.v1.SchemeService",
        "passerelle.roster.v1.RosterService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }

    // The seeded members answer on both mutuelles.
    let client = SchemeServiceClient::new(ch);
    let _ = &client;
    // One claim through each of the four kinds of partner.
    for (scheme, beneficiary, mutuelle) in [
        ("CNSS", "TG-1001", "MUT-SOLIDARITE"),
        ("INAM", "TG-2001", "MUT-ENSEIGNANTS"),
        ("CNSS", "TG-3001", "MUT-IMIS"),
        ("INAM", "TG-4001", "MUT-LEGACY"),
    ] {
        let mut req = common::claim(
            &format!("dev-{beneficiary}"),
            beneficiary,
            &[
                common::covered(C::Consultation, 5000, 5000, 4000),
                common::covered(C::Pharmacy, 3600, 3000, 2400),
            ],
        );
        req.scheme_id = scheme.into();
        let mut client = SchemeServiceClient::new(
            common::tls_channel(addr, &certs, Role::Scheme, scheme)
                .await
                .unwrap(),
        );
        let r = client.coordinate_claim(req).await.unwrap().into_inner();
        assert_eq!(r.state, ClaimState::Coordinated as i32, "{r:?}");
        assert_eq!(r.mutuelle_id, mutuelle);
        common::assert_balanced(&r);
        assert_eq!(r.lines[0].mutuelle_share, 1000);
    }
    let mut client = SchemeServiceClient::new(
        common::tls_channel(addr, &certs, Role::Scheme, "CNSS")
            .await
            .unwrap(),
    );
    let elig = client
        .check_eligibility(pb::CheckEligibilityRequest {
            scheme_id: "CNSS".into(),
            beneficiary_id: "TG-1002".into(),
            date_of_care: "2026-11-20".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!elig.covered, "TG-1002's dues stop in June");
}

#[test]
fn serve_with_a_bad_config_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("broken.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\nplaintext = true\n[[schemes]]\nid = \"CNSS\"\ncurrency = \"XOF\"\ncurency = \"XOF\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["--lang", "en", "serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.toml") && err.contains("curency"),
        "{err}"
    );
}

/// The broker's own commands say what they print in the command line's
/// language: from the locale (LANG) as from `--lang`; the broker's own
/// words after "erreur :" stay as written.
#[test]
fn serve_and_migrate_speak_french_to_a_french_locale() {
    let dir = tempfile::tempdir().unwrap();
    let french = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_passerelle"));
        c.args(args)
            .env("LANG", "fr_FR.UTF-8")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env_remove("LANGUAGE");
        c
    };
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "listen = \"127.0.0.1:0\"\ncurency = \"XOF\"\n").unwrap();
    let out = french(&["serve", "--config"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("erreur : ") && err.contains("broken.toml") && err.contains("curency"),
        "{err}"
    );
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\nplaintext = true\n[[schemes]]\nid = \"CNSS\"\ncurrency = \"XOF\"\n",
    )
    .unwrap();
    let refused = french(&["serve", "--config"]).arg(&cfg).output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.starts_with("erreur : ")
            && err.contains(&format!(
                "aucune base à {} : vérifiez le chemin dans la configuration",
                dir.path().join("passerelle.db").display()
            )),
        "{err}"
    );
    // Refused, it created nothing (an empty database was left behind).
    let db = dir.path().join("passerelle.db");
    assert!(!db.exists());
    let migrated = french(&["migrate", "--config"]).arg(&cfg).output().unwrap();
    assert!(migrated.status.success());
    let said = String::from_utf8_lossy(&migrated.stdout);
    let lines: Vec<&str> = said.lines().collect();
    assert!(
        lines.len() == 2
            && lines[0].starts_with("une base neuve et vide a été créée à ")
            && lines[1].starts_with("schéma en version "),
        "{said}"
    );
    // Once there, it is not said again.
    let again = french(&["migrate", "--config"]).arg(&cfg).output().unwrap();
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.starts_with("schéma en version "), "{said}");
    // `--lang fr` under an English locale.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    serve
        .args(["--lang", "fr", "serve", "--config"])
        .arg(&cfg)
        .env("LANG", "en_GB.UTF-8")
        .env_remove("LC_ALL");
    let (_child, line) = started(serve);
    let addr = line
        .strip_prefix("passerelle à l'écoute sur ")
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        addr.parse::<std::net::SocketAddr>().is_ok(),
        "the address follows the last space: {line}"
    );
}

#[test]
fn serve_refuses_an_old_schema_until_migrated_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\nplaintext = true\n[[schemes]]\nid = \"CNSS\"\ncurrency = \"XOF\"\n",
    )
    .unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["--lang", "en", "serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("run `passerelle migrate`"), "{err}");
    let migrated = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["--lang", "en", "migrate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["--lang", "en", "serve", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(
        line.starts_with("passerelle listening on 127.0.0.1:"),
        "{line}"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        dir.path().join("passerelle.db").exists(),
        "the store is next to the config"
    );
    // Migrated by a newer binary: serve and migrate both refuse, saying
    // to upgrade, or to restore the backup to go back.
    let db = rusqlite::Connection::open(dir.path().join("passerelle.db")).unwrap();
    db.execute(
        "INSERT INTO schema_version (version) SELECT MAX(version) + 1 FROM schema_version",
        [],
    )
    .unwrap();
    drop(db);
    for cmd in ["serve", "migrate"] {
        let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .args(["--lang", "fr", cmd, "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("plus récente que celle de ce programme")
                && err.contains("restaurez la sauvegarde")
                && !err.contains("store: store"),
            "{cmd}: {err}"
        );
    }
}

/// Starts a broker and returns it with the first line it prints.
fn started(cmd: Command) -> (Child, String) {
    let (child, mut lines) = started_lines(cmd, 1);
    (child, lines.remove(0))
}

/// [`started`], with the first `n` lines it prints.
fn started_lines(mut cmd: Command, n: usize) -> (Child, Vec<String>) {
    let mut child = Child(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lines = BufReader::new(child.0.stdout.take().unwrap())
        .lines()
        .take(n)
        .map(|l| l.unwrap())
        .collect();
    (child, lines)
}

/// Runs a command to its end, 60 s at most: a second broker that did start
/// would serve for ever, and the test fails instead of hanging.
async fn output_within(mut cmd: tokio::process::Command) -> std::process::Output {
    cmd.kill_on_drop(true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command ended (a second broker would serve for ever)")
        .unwrap()
}

/// One broker per SQLite file: a second `dev` on the same data folder exits
/// non-zero saying another passerelle uses it, and the first keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_dev_on_the_same_data_dir_refuses_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().to_path_buf();
    let dev = move || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_passerelle"));
        c.current_dir(&at).args([
            "--lang",
            "en",
            "dev",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--data-dir",
            "data",
        ]);
        c
    };
    let (_first, line) = started(dev());
    let addr: std::net::SocketAddr = line
        .strip_prefix("passerelle dev broker listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    let second = output_within(dev().into()).await;
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another passerelle is using this database") && err.contains("passerelle.db"),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&second.stdout).contains("listening"),
        "the second never served"
    );
    let health = HealthClient::new(common::channel(addr).await)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
}

/// Two `serve` on one SQLite file: the second refuses to start, and so
/// does `migrate` while the first runs; after the first stops, the file is
/// free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_broker_on_the_same_database_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\nplaintext = true\n[[schemes]]\nid = \"CNSS\"\ncurrency = \"XOF\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let run = |what: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_passerelle"));
        c.args(["--lang", "en", what, "--config"]).arg(&cfg);
        output_within(c.into())
    };
    assert!(run("migrate").await.status.success());
    let mut serve = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    serve.args(["--lang", "en", "serve", "--config"]).arg(&cfg);
    let (mut first, lines) = started_lines(serve, 2);
    assert!(lines[0].starts_with("passerelle listening on"), "{lines:?}");
    // The operations listener with its scheme (plain HTTP on loopback).
    assert!(
        lines[1].starts_with("metrics on http://127.0.0.1:"),
        "{lines:?}"
    );
    for what in ["serve", "migrate"] {
        let out = run(what).await;
        assert!(!out.status.success(), "{what} ran beside a broker");
        let err = String::from_utf8_lossy(&out.stderr);
        // Both say it with what to do.
        let said = "a running broker (or another passerelle command) holds this database; on SQLite one process at a time opens it: run this command with the broker stopped";
        assert!(err.contains(said), "{what}: {err}");
    }
    // kill -9 leaves no stale lock: the kernel drops it with the process.
    let _ = first.0.kill();
    let _ = first.0.wait();
    assert!(run("migrate").await.status.success());
}

/// The README's tour, command by command, with the files it names: a
/// newcomer's dev broker, a roster imported from CSV, a claim submitted and
/// listed, a period closed and its statement exported, tying out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_tour() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = common::process::dev(dir.path(), dir.path());
    let addr = dev.addr.to_string();
    // The banner names the operations listener.
    let metrics: std::net::SocketAddr = (&mut dev.banner)
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("metrics: http://")
                .and_then(|r| r.split_once("/metrics"))
                .map(|(a, _)| a.parse().unwrap())
        })
        .expect("the banner names the metrics address");
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples");
    let run = |args: Vec<String>| {
        let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .args(&args)
            .env("PASSERELLE_BROKER", format!("https://{addr}"))
            .env("PASSERELLE_CERTS", dir.path().join("certs"))
            .env("LANG", "C")
            .env_remove("LC_ALL")
            .env_remove("LANGUAGE")
            .env_remove("LC_MESSAGES")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let ex = |f: &str| examples.join(f).to_string_lossy().into_owned();
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();

    let dry = run([
        args("roster import"),
        vec![ex("roster.csv")],
        args("--partner MUT-SOLIDARITE --dry-run"),
    ]
    .concat());
    assert!(
        dry.contains("SOL-0005  added") && dry.contains("dry run"),
        "{dry}"
    );
    run([
        args("roster import"),
        vec![ex("roster.csv")],
        args("--partner MUT-SOLIDARITE"),
    ]
    .concat());
    let elig = run(args(
        "eligibility --scheme CNSS --beneficiary TG-1005 --date 2026-11-20",
    ));
    assert!(
        elig.contains("covered: yes") && elig.contains("SOL-0005"),
        "{elig}"
    );
    let claim = run([args("claim submit"), vec![ex("claim.toml")]].concat());
    assert!(claim.contains("coordinated"), "{claim}");
    let list = run(args("--json claim list --scheme CNSS"));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        list["totalCount"], "1",
        "uint64: a string in the proto3 JSON mapping"
    );
    run(args("period close --scheme CNSS --partner MUT-SOLIDARITE"));
    let csv_path = dir.path().join("statement.csv");
    run([
        args("statement export --scheme CNSS --partner MUT-SOLIDARITE 1 -o"),
        vec![csv_path.to_string_lossy().into_owned()],
    ]
    .concat());
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (mut b, mut s, mut m, mut p) = (0i64, 0i64, 0i64, 0i64);
    for r in reader.records() {
        let r = r.unwrap();
        // The last row counts the lines; it holds no amount.
        if &r[col("kind")] == "end" {
            continue;
        }
        let n = |c: &str| r[col(c)].parse::<i64>().unwrap();
        b += n("billed");
        s += n("scheme_share");
        m += n("mutuelle_share");
        p += n("patient_share");
    }
    let t = &list["totals"];
    // int64 amounts are strings in the proto3 JSON mapping.
    let amount = |v: &serde_json::Value| v.as_str().unwrap().parse::<i64>().unwrap();
    assert_eq!(
        (b, s, m, p),
        (
            amount(&t["billed"]),
            amount(&t["schemeShare"]),
            amount(&t["mutuelleShare"]),
            amount(&t["patientShare"])
        )
    );
    assert_eq!((b, s, m, p), (23600, 6400, 1600, 15600));

    // The dev broker exposes what the shipped alert rules and dashboard
    // use (operations::the_shipped_alerts_... checks every name on an mTLS
    // broker; here, the names whose families have samples after the tour).
    let text = crate::operations::scrape(metrics).await;
    for m in [
        "passerelle_grpc_server_handled_total",
        "passerelle_grpc_server_handling_seconds_bucket",
        "passerelle_partner_calls_total",
        "passerelle_partner_pending_claims",
        "passerelle_partner_oldest_pending_age_seconds",
        "passerelle_partner_up",
        "passerelle_partner_breaker_state",
        "passerelle_partner_paused",
        "passerelle_store_up",
        "passerelle_certificate_expiry_timestamp_seconds",
        "passerelle_audit_rows_dropped_total",
    ] {
        assert!(
            text.contains(&format!("\n{m}{{")) || text.contains(&format!("\n{m} ")),
            "{m} missing from the dev broker's /metrics"
        );
    }
}
