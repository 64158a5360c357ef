//! The client commands end to end: the real `passerelle` binary against a
//! running broker (rules mutuelle MUT-R, simulated gRPC mutuelle MUT-G).

use crate::common::*;
use passerelle_adapters::sim::Mode;
use passerelle_proto::roster::v1 as roster;
use serde_json::Value;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A number of the CLI's JSON (the proto3 mapping: 64-bit integers such
/// as amounts are strings, 32-bit ones numbers).
fn n(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|e| panic!("{v}: {e}")),
        _ => v.as_i64().unwrap_or_else(|| panic!("{v} is not a number")),
    }
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// `passerelle LEAD... roster import FILE --partner MUT-R FLAGS...`.
async fn import_into_r(h: &Harness, lead: &[&str], file: &str, flags: &[&str]) -> Out {
    let mut args = lead.to_vec();
    args.extend(["roster", "import", file, "--partner", "MUT-R"]);
    args.extend(flags);
    cli(h, &args).await
}

async fn cli(h: &Harness, args: &[&str]) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(args)
        .env("PASSERELLE_BROKER", format!("http://{}", h.addr))
        .env("LANG", "C")
        .env_remove("LC_ALL")
        .env_remove("LANGUAGE")
        .env_remove("LC_MESSAGES")
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("cli runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ok(h: &Harness, args: &[&str]) -> Out {
    let o = cli(h, args).await;
    assert_eq!(
        o.code, 0,
        "{args:?}\nstdout: {}\nstderr: {}",
        o.stdout, o.stderr
    );
    o
}

/// Approves what a command proposed (its `--json` answer) with the
/// mutuelle's identity, and returns the proposal as it ends.
async fn approve(h: &Harness, proposed: &Value) -> Value {
    assert_eq!(proposed["state"], "PROPOSAL_STATE_PENDING", "{proposed}");
    let id = n(&proposed["id"]).to_string();
    let hash = proposed["hash"].as_str().unwrap();
    let mutuelle = proposed["mutuelleId"].as_str().unwrap();
    ok(
        h,
        &[
            "--json",
            "approvals",
            "approve",
            &id,
            "--hash",
            hash,
            "--partner",
            mutuelle,
        ],
    )
    .await
    .json()
}

/// The periods of CNSS x MUT-R, newest first.
async fn periods(h: &Harness) -> Vec<Value> {
    let list = ok(
        h,
        &[
            "--json",
            "period",
            "list",
            "--scheme",
            "CNSS",
            "--partner",
            "MUT-R",
        ],
    )
    .await
    .json();
    list["periods"].as_array().unwrap().clone()
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn claim_toml(id: &str, beneficiary: &str, invoice: &str, payee: &str) -> String {
    format!(
        r#"scheme_id = "CNSS"
claim_id = "{id}"
provider_id = "CHU-SO"
invoice_number = "{invoice}"
payee = "{payee}"
beneficiary_id = "{beneficiary}"
date_of_care = "2026-11-20"
currency = "XOF"

[[lines]]
act_code = "CS-GEN"
care_category = "consultation"
billed = 5000
tariff_base = 5000
scheme_share = 3500

[[lines]]
act_code = "HOSP"
care_category = "hospitalisation"
billed = 12000
tariff_base = 10000
scheme_share = 8000
"#
    )
}

/// Asked for TLS, a plaintext (development) broker is named as such, with
/// the address to use; and a certificate missing from --certs is named by
/// its party, in the reader's language.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mistakes_are_said_with_what_to_do() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let certs = certs.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_passerelle");
    let run = |args: Vec<String>| async move {
        let out = tokio::process::Command::new(bin)
            .args(&args)
            .env_remove("LC_ALL")
            .env_remove("LANGUAGE")
            .env_remove("PASSERELLE_CERT")
            .env_remove("PASSERELLE_KEY")
            .env_remove("PASSERELLE_CA")
            .env("LANG", "C")
            .output()
            .await
            .expect("cli runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // `certs` makes them in --dir, else where the global --certs names
    // (where the client commands look for them).
    for args in [
        vec!["certs", "ca", "--dir", certs],
        vec![
            "--certs", certs, "certs", "client", "--role", "scheme", "--id", "CNSS",
        ],
    ] {
        let (code, err) = run(args.iter().map(|a| a.to_string()).collect()).await;
        assert_eq!(code, Some(0), "{args:?}: {err}");
    }
    assert!(
        std::path::Path::new(certs).join("scheme-CNSS.crt").exists(),
        "issued into --certs"
    );
    let https = format!("https://{}", h.addr);
    let ask = |scheme: &str| {
        [
            "--lang",
            "fr",
            "--broker",
            &https,
            "--certs",
            certs,
            "eligibility",
            "--scheme",
            scheme,
            "--beneficiary",
            "X",
            "--date",
            "2026-11-20",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
    };
    let (code, err) = run(ask("CNSS")).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{https} ne parle pas TLS. Si c'est un broker de développement sans chiffrement, utilisez --broker http://{} ;",
            h.addr
        )),
        "{err}"
    );
    let (code, err) = run(ask("INAM")).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with("erreur : aucun certificat du régime INAM dans "),
        "{err}"
    );
}

/// A broker that does not answer is said in the reader's language, with
/// the system's cause, not the transport's "transport error".
#[tokio::test]
async fn an_unreachable_broker_is_said_in_the_readers_language() {
    // A port bound and held, never listening: connections are refused.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    for (lang, said) in [
        (
            "fr",
            format!("erreur : impossible de joindre le broker {url} : "),
        ),
        ("en", format!("error: cannot reach the broker at {url}: ")),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .args(["--lang", lang, "eligibility", "--scheme", "CNSS"])
            .args(["--beneficiary", "X", "--date", "2026-11-20"])
            .env("PASSERELLE_BROKER", &url)
            .env_remove("LC_ALL")
            .env_remove("LANGUAGE")
            .output()
            .await
            .expect("cli runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.starts_with(&said) && !stderr.contains("transport error"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn a_refused_command_line_is_said_in_the_readers_language() {
    let run = |args: Vec<&'static str>, lang_env: &'static str| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .args(args)
            .env_remove("LC_ALL")
            .env_remove("LANGUAGE")
            .env_remove("LC_MESSAGES")
            .env("LANG", lang_env)
            .output()
            .await
            .expect("cli runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A missing argument, by --lang and by LANG.
    for (args, env) in [
        (&["--lang", "fr", "claim", "get", "C-1"][..], "C"),
        (&["claim", "get", "C-1"][..], "fr_FR.UTF-8"),
    ] {
        let (code, err) = run(args.to_vec(), env).await;
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.starts_with("erreur : il manque --scheme <SCHEME>\n"),
            "{err}"
        );
        assert!(
            err.contains("Utilisation : passerelle claim get --scheme <SCHEME> <CLAIM_ID>")
                && err.ends_with(
                    "Pour en savoir plus, ajoutez --help à la commande (aide en anglais).\n"
                )
                && !err.contains("required"),
            "{err}"
        );
    }
    // A day-first date that is no date: the parser's words in French too.
    let no_date = |lang: &'static str, env: &'static str| {
        run(
            vec![
                "--lang",
                lang,
                "eligibility",
                "--scheme",
                "CNSS",
                "--beneficiary",
                "X",
                "--date",
                "31/02/2026",
            ],
            env,
        )
    };
    let (code, err) = no_date("fr", "C").await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(
            "erreur : --date <DATE> : « 31/02/2026 » n'est pas un jour du calendrier (le jour d'abord, puis le mois : 31/12/2026)\n"
        ),
        "{err}"
    );
    // A mistyped option and a mistyped command, with clap's suggestion.
    let (_, err) = run(vec!["--lang=fr", "claim", "list", "--mutuele", "M"], "C").await;
    assert!(
        err.contains("option inconnue « --mutuele » ; vouliez-vous dire « --mutuelle » ?"),
        "{err}"
    );
    let (_, err) = run(vec!["--lang", "fr", "claim", "lsit"], "C").await;
    assert!(
        err.contains("commande inconnue « lsit » ; vouliez-vous dire « list » ?"),
        "{err}"
    );
    // English keeps clap's words, the date's in English alone.
    let (code, err) = no_date("en", "fr_FR.UTF-8").await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("error: invalid value '31/02/2026' for '--date <DATE>': \"31/02/2026\" is no day of the calendar (day first, then month: 31/12/2026)")
            && !err.contains("n'est pas"),
        "{err}"
    );
    // A broker address that is none: what to write (not "invalid URI").
    let (code, err) = run(
        vec![
            "--lang",
            "fr",
            "--broker",
            "pas une adresse",
            "eligibility",
            "--scheme",
            "CNSS",
            "--beneficiary",
            "X",
        ],
        "C",
    )
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with("erreur : --broker « pas une adresse » n'est pas une adresse : écrivez-la https://hôte:port")
            && !err.contains("invalid URI"),
        "{err}"
    );
    // A certificate's role is one of three, refused by the parser.
    let (code, err) = run(
        vec![
            "--lang", "fr", "certs", "client", "--role", "admin", "--id", "X",
        ],
        "C",
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("valeur « admin » refusée pour « --role <ROLE> » ; valeurs possibles : scheme, mutuelle, operator"),
        "{err}"
    );
    // LC_MESSAGES is read as POSIX orders it (after LC_ALL, before LANG).
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["claim", "get", "C-1"])
        .env_remove("LC_ALL")
        .env_remove("LANGUAGE")
        .env("LC_MESSAGES", "fr_TG.UTF-8")
        .env("LANG", "C.UTF-8")
        .output()
        .await
        .expect("cli runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("erreur : il manque --scheme"), "{err}");
    // A missing subcommand: said, then clap's help.
    let (code, err) = run(vec!["--lang", "fr", "claim"], "C").await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("erreur : il manque la commande ; voici son aide (en anglais) :\n")
            && err.contains("submit"),
        "{err}"
    );
    // Help is clap's, and succeeds.
    let (code, _) = run(vec!["--lang", "fr", "--help"], "C").await;
    assert_eq!(code, Some(0));
}

/// `passerelle users` as docs/console.md gives it: every one of its
/// commands panicked in clap (its own `--lang`, and `add`'s, beside the
/// global one). The account's console language is `--console-lang`.
#[tokio::test]
async fn console_accounts_are_added_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    // A dev broker's store and secrets, as `passerelle dev` leaves them.
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    for f in ["imis-password", "legacy-password"] {
        std::fs::write(dir.path().join("secrets").join(f), "dev").unwrap();
    }
    drop(
        passerelle_broker::store::sqlite::SqliteStore::open(&dir.path().join("passerelle.db"))
            .unwrap(),
    );
    let data_dir = dir.path().to_str().unwrap();
    async fn run(args: &[&str]) -> (Option<i32>, String, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .args(args)
            .env_remove("LC_ALL")
            .env_remove("LANGUAGE")
            .env_remove("LC_MESSAGES")
            .env("LANG", "C")
            .output()
            .await
            .expect("cli runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
    let (code, out, err) = run(&[
        "--lang",
        "fr",
        "users",
        "--data-dir",
        data_dir,
        "add",
        "ama",
        "--name",
        "Ama Koffi",
        "--role",
        "clerk",
        "--scope",
        "MUT-SOLIDARITE",
        "--console-lang",
        "fr",
    ])
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Compte ama créé"), "{out}");
    assert!(out.contains("Mot de passe provisoire"), "{out}");
    let (code, out, err) = run(&["users", "--data-dir", data_dir, "list", "--lang", "en"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("ama") && out.contains("Ama Koffi"), "{out}");
    // The account's language is one the console has.
    let (code, _, err) = run(&[
        "--lang",
        "fr",
        "users",
        "--data-dir",
        data_dir,
        "add",
        "kofi",
        "--name",
        "Kofi",
        "--role",
        "operator",
        "--console-lang",
        "de",
    ])
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("« de »") && err.contains("--console-lang"),
        "{err}"
    );
    // A command naming an account that does not exist refuses it, in the
    // reader's language, and changes nothing.
    for cmd in ["revoke", "disable", "enable", "reset", "code"] {
        let (code, out, err) = run(&[
            "--lang",
            "fr",
            "users",
            "--data-dir",
            data_dir,
            cmd,
            "nobody",
        ])
        .await;
        assert_eq!(code, Some(1), "{cmd}: {out}{err}");
        assert!(
            err.contains("aucun compte ne s'appelle nobody") && out.is_empty(),
            "{cmd}: {out}{err}"
        );
    }
    // With the database held by a running broker (SQLite: one process at a
    // time), the command says so in its reader's language, with what to
    // do, and changes nothing.
    let held =
        passerelle_broker::store::sqlite::SqliteStore::open(&dir.path().join("passerelle.db"))
            .unwrap();
    let (code, out, err) = run(&[
        "--lang",
        "fr",
        "users",
        "--data-dir",
        data_dir,
        "disable",
        "ama",
    ])
    .await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("un broker en marche (ou une autre commande passerelle) tient cette base")
            && err.contains("broker arrêté")
            && err.contains("(page Utilisateurs)")
            && !err.contains("another passerelle"),
        "{err}"
    );
    drop(held);
    let (code, out, err) = run(&["users", "--data-dir", data_dir, "list", "--lang", "en"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("\tenabled\tAma Koffi"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_commands_and_eligibility() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = write(
        dir.path(),
        "c1.toml",
        &claim_toml("CLI-1", "R-OK", "INV-1", "provider"),
    );
    let out = ok(&h, &["claim", "submit", &toml]).await;
    assert!(
        out.stdout.contains("claim CNSS/CLI-1: coordinated"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("overrun covered at 50%"),
        "{}",
        out.stdout
    );
    // JSON file, JSON output.
    let json_claim = r#"{"scheme_id":"CNSS","claim_id":"CLI-2","provider_id":"CHU-SO","invoice_number":"INV-2",
        "beneficiary_id":"G-OK","date_of_care":"2026-11-20","currency":"XOF",
        "lines":[{"act_code":"CS","care_category":"consultation","billed":5000,"tariff_base":5000,"scheme_share":3500}]}"#;
    let jf = write(dir.path(), "c2.json", json_claim);
    let j = ok(&h, &["--json", "claim", "submit", &jf]).await.json();
    assert_eq!(j["state"], "CLAIM_STATE_COORDINATED");
    assert_eq!(j["mutuelleId"], "MUT-G");
    assert_eq!(n(&j["lines"][0]["mutuelleShare"]), 1500);

    let got = ok(&h, &["--json", "claim", "get", "--scheme", "CNSS", "CLI-1"])
        .await
        .json();
    assert_eq!(n(&got["totals"]["mutuelleShare"]), 1500 + 3000);
    assert_eq!(n(&got["totals"]["patientShare"]), 17000 - 11500 - 4500);

    let list = ok(&h, &["--json", "claim", "list", "--scheme", "CNSS"])
        .await
        .json();
    assert_eq!(n(&list["totalCount"]), 2);
    assert_eq!(n(&list["totals"]["mutuelleShare"]), 4500 + 1500);
    assert_eq!(n(&list["totals"]["billed"]), 17000 + 5000);
    let by_mutuelle = ok(
        &h,
        &[
            "--json",
            "claim",
            "list",
            "--mutuelle",
            "MUT-G",
            "--state",
            "coordinated",
        ],
    )
    .await
    .json();
    assert_eq!(n(&by_mutuelle["totalCount"]), 1);
    // Paging: one per page, then the token.
    let p1 = ok(
        &h,
        &[
            "--json",
            "claim",
            "list",
            "--scheme",
            "CNSS",
            "--page-size",
            "1",
        ],
    )
    .await
    .json();
    let token = p1["nextPageToken"].as_str().unwrap().to_string();
    let p2 = ok(
        &h,
        &[
            "--json",
            "claim",
            "list",
            "--scheme",
            "CNSS",
            "--page-size",
            "1",
            "--page",
            &token,
        ],
    )
    .await
    .json();
    assert_eq!(p2["claims"][0]["claimId"], "CLI-2");
    let table = ok(&h, &["claim", "list", "--scheme", "CNSS"]).await.stdout;
    assert!(
        table.lines().any(|l| l.starts_with("total (2) "))
            && table.contains("\ntotal: amounts excluding cancelled claims\n")
            && table.contains("22,000"),
        "{table}"
    );

    let cancelled = ok(
        &h,
        &[
            "--json", "claim", "cancel", "--scheme", "CNSS", "CLI-2", "--reason", "test",
        ],
    )
    .await
    .json();
    assert_eq!(cancelled["state"], "CLAIM_STATE_CANCELLED");
    // Cancelled again, read by a person: in the open period, nothing comes
    // back, and nothing is said of it.
    let said = ok(
        &h,
        &[
            "claim", "cancel", "--scheme", "CNSS", "CLI-2", "--reason", "test",
        ],
    )
    .await
    .stdout;
    assert!(said.contains("CLI-2") && !said.contains("period"), "{said}");
    assert!(said.contains("Why it was cancelled: test"), "{said}");
    // Listed, the cancelled claim is counted but its amounts are not added
    // up, unless cancelled claims are what is listed.
    let listed = ok(&h, &["--json", "claim", "list", "--scheme", "CNSS"])
        .await
        .json();
    assert_eq!(n(&listed["totalCount"]), 2, "{listed}");
    assert_eq!(n(&listed["totals"]["billed"]), 17_000, "{listed}");
    let table = ok(
        &h,
        &["claim", "list", "--scheme", "CNSS", "--state", "cancelled"],
    )
    .await
    .stdout;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("total (1) ") && l.contains("5,000")),
        "{table}"
    );
    // The state as the French table prints it: the same listing, in
    // French; a word that is no state is refused, the states named.
    let fr = ok(
        &h,
        &[
            "--lang", "fr", "claim", "list", "--scheme", "CNSS", "--state", "annulée",
        ],
    )
    .await
    .stdout;
    assert!(
        fr.lines()
            .any(|l| l.contains("CLI-2") && l.contains("annulée"))
            && fr.lines().any(|l| l.starts_with("total (1) ")),
        "{fr}"
    );
    let o = cli(
        &h,
        &[
            "--lang", "fr", "claim", "list", "--scheme", "CNSS", "--state", "payée",
        ],
    )
    .await;
    assert!(
        o.code != 0
            && o.stderr.contains("« payée » n'est pas un état de demande")
            && o.stderr.contains("annulée"),
        "{}",
        o.stderr
    );

    let e = ok(
        &h,
        &[
            "--json",
            "eligibility",
            "--scheme",
            "CNSS",
            "--beneficiary",
            "R-OK",
            "--date",
            "2026-11-20",
        ],
    )
    .await
    .json();
    assert_eq!(e["covered"], true);
    let ceiling = e["ceilings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scope"] == "beneficiary-year")
        .unwrap();
    assert_eq!(n(&ceiling["remaining"]), 10000 - 4500);
    let fr = ok(
        &h,
        &[
            "--lang",
            "fr",
            "eligibility",
            "--scheme",
            "CNSS",
            "--beneficiary",
            "R-UNPAID",
            "--date",
            "2026-11-20",
        ],
    )
    .await;
    // French sets a space before a colon.
    assert!(fr.stdout.contains("couvert : non"), "{}", fr.stdout);
    // A refusal's violation is said once: in the broker's quoted words,
    // not again below them.
    let refused = cli(
        &h,
        &[
            "eligibility",
            "--scheme",
            "CNSS",
            "--beneficiary",
            "R-UNPAID",
            "--date",
            "2026-11-20",
            "--mutuelle",
            "MUT-NOPE",
        ],
    )
    .await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert_eq!(
        refused.stderr.matches("MUT-NOPE").count(),
        1,
        "{}",
        refused.stderr
    );
    // The patient's notice of a coordinated claim, in one SMS.
    let sms = ok(
        &h,
        &[
            "--lang", "fr", "claim", "notice", "--scheme", "CNSS", "CLI-1", "--sms",
        ],
    )
    .await
    .stdout;
    assert!(
        sms.starts_with("Régime ")
            && sms.trim_end().ends_with("Demande CLI-1.")
            && sms.trim_end().chars().count() <= 160,
        "{sms}"
    );
    // The reason in French, the broker's detail from the catalogue, with
    // its code; not the engine's English words.
    assert!(
        fr.stdout
            .contains("cotisations non à jour à la date des soins (DUES_UNPAID)")
            && !fr.stdout.contains("dues not paid"),
        "{}",
        fr.stdout
    );
    // Ceilings by their French names.
    assert!(
        fr.stdout.contains("par an et par bénéficiaire"),
        "{}",
        fr.stdout
    );

    // Errors: the field is named, the exit code is 1.
    let bad = write(
        dir.path(),
        "bad.toml",
        &claim_toml("CLI-3", "R-OK", "INV-3", "provider")
            .replace("scheme_share = 3500", "scheme_share = 6000"),
    );
    let o = cli(&h, &["claim", "submit", &bad]).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("lines[0].scheme_share"), "{}", o.stderr);
    let o = cli(&h, &["claim", "get", "--scheme", "CNSS", "NOPE"]).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("NotFound"), "{}", o.stderr);
    let o = cli(
        &h,
        &["--lang", "fr", "claim", "get", "--scheme", "CNSS", "NOPE"],
    )
    .await;
    assert!(
        o.stderr.starts_with(
            "erreur : Introuvable. (le broker dit : « claim NOPE of scheme CNSS not found »)"
        ) && o.stderr.contains("[NotFound, NOT_FOUND]"),
        "{}",
        o.stderr
    );
}

async fn member(h: &Harness, number: &str) -> Option<roster::Member> {
    let mut r = roster::roster_service_client::RosterServiceClient::new(channel(h.addr).await);
    r.get_member(roster::GetMemberRequest {
        mutuelle_id: "MUT-R".into(),
        member_number: number.into(),
    })
    .await
    .ok()
    .map(|m| m.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_import_dry_run_snapshot_and_bad_rows() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The harness roster of MUT-R: R-1 .. R-4. The file keeps R-1 and R-2
    // (R-2 with new dues), adds R-9, and leaves out R-3 and R-4.
    let good = "scheme_id;beneficiary_id;member_number;household_id;paid_until;product_id;product_start;product_end\n\
                CNSS;R-OK;R-1;H-R-1;31/12/2026;BASE;01/01/2025;\n\
                CNSS;R-NEW;R-2;H-R-2;31/12/2027;BASE;01/10/2026;\n\
                CNSS;R-NINE;R-9;H-R-9;31/12/2026;BASE;01/11/2026;\n";
    let f = write(dir.path(), "roster.csv", good);
    // Today, as the broker reads it (a snapshot that ends its missing
    // members is dated near today), and in the day-first form --date takes.
    let today = passerelle_domain::date::of_ms(process::wall_ms());
    let as_of = passerelle_domain::date::format(today);
    let as_of_typed = format!(
        "{:02}/{:02}/{}",
        today.day(),
        u8::from(today.month()),
        today.year()
    );
    let day_before = passerelle_domain::date::format(today.previous_day().unwrap());
    let dry = ok(
        &h,
        &[
            "--json",
            "roster",
            "import",
            &f,
            "--partner",
            "MUT-R",
            "--dry-run",
            "--as-of",
            &as_of,
        ],
    )
    .await
    .json();
    assert_eq!(
        (
            dry["added"].as_u64(),
            dry["updated"].as_u64(),
            dry["endDated"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    assert!(member(&h, "R-9").await.is_none(), "dry run wrote nothing");
    assert_eq!(member(&h, "R-3").await.unwrap().products[0].end_date, "");

    let table = ok(
        &h,
        &[
            "roster",
            "import",
            &f,
            "--partner",
            "MUT-R",
            "--as-of",
            &as_of,
        ],
    )
    .await
    .stdout;
    // Said in words, the counts grouped by thousands as amounts are.
    assert!(
        table.contains("R-9") && table.contains("ended") && !table.contains("end_dated"),
        "{table}"
    );
    assert_eq!(
        member(&h, "R-9").await.unwrap().contribution_paid_until,
        "2026-12-31"
    );
    assert_eq!(
        member(&h, "R-2").await.unwrap().contribution_paid_until,
        "2027-12-31"
    );
    let ended = member(&h, "R-3").await.expect("end-dated, not deleted");
    assert_eq!(ended.products[0].end_date, day_before);

    // A file with a bad row changes nothing, and says where.
    let bad = format!(
        "{good}CNSS;R-TEN;R-10;H;2026-13-40;BASE;2026-01-01;\nCNSS;R-ELEVEN;R-11;H;;BASE;2026-01-01;\n"
    );
    let bf = write(dir.path(), "bad.csv", &bad);
    let import_bad = |lang: &'static str| {
        let args = [
            "--lang",
            lang,
            "roster",
            "import",
            &bf,
            "--partner",
            "MUT-R",
            "--as-of",
            &as_of,
        ]
        .map(String::from);
        let h = &h;
        async move { cli(h, &args.each_ref().map(String::as_str)).await }
    };
    let o = import_bad("en").await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("line 5: paid_until"), "{}", o.stderr);
    assert!(o.stderr.contains("nothing imported"), "{}", o.stderr);
    assert!(member(&h, "R-11").await.is_none());
    // In French, the bad row and the refusal in French words.
    let o = import_bad("fr").await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("ligne 5 : paid_until : « 2026-13-40 » n'est pas une date")
            && o.stderr
                .contains("erreur : 1 ligne en erreur : rien n'est importé"),
        "{}",
        o.stderr
    );
    assert!(member(&h, "R-11").await.is_none());
    // Asked to, it imports the good rows and leaves the bad member alone.
    let j = ok(
        &h,
        &[
            "--json",
            "roster",
            "import",
            &bf,
            "--partner",
            "MUT-R",
            "--skip-bad-rows",
            // Day first, as --date takes it.
            "--as-of",
            &as_of_typed,
        ],
    )
    .await
    .json();
    assert_eq!(j["added"], 1);
    assert_eq!(j["skippedRows"], 1);
    assert!(member(&h, "R-11").await.is_some());
    assert!(member(&h, "R-10").await.is_none());
    // A row the broker refuses (an unknown scheme) is reported by line.
    let unknown = "scheme_id,beneficiary_id,member_number,product_id,product_start\nCNSS,R-OK,R-1,BASE,2025-01-01\nCNAMGS,X,R-12,BASE,2025-01-01\n";
    let uf = write(dir.path(), "unknown.csv", unknown);
    let o = cli(
        &h,
        &["roster", "import", &uf, "--partner", "MUT-R", "--dry-run"],
    )
    .await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("line 3: scheme_id"), "{}", o.stderr);
}

/// A row naming a product the mutuelle never declared (a typo), or a
/// beneficiary another mutuelle covers on those dates, is a bad row of the
/// dry run and of the import, named by line and column; nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_rows_are_checked_against_products_and_coverage() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let typo = "scheme_id;beneficiary_id;member_number;product_id;product_start\n\
                CNSS;R-OK;R-1;BASE;01/01/2025\n\
                CNSS;R-TYPO;R-20;BASEE;01/11/2026\n";
    let f = write(dir.path(), "typo.csv", typo);
    for dry in [true, false] {
        let mut args = vec!["roster", "import", &f, "--partner", "MUT-R"];
        if dry {
            args.push("--dry-run");
        }
        let o = cli(&h, &args).await;
        assert_eq!(o.code, 1, "{}", o.stdout);
        assert!(
            o.stderr
                .contains("line 3: product_id: unknown product \"BASEE\""),
            "{}",
            o.stderr
        );
    }
    assert!(member(&h, "R-20").await.is_none());
    // G-OK is MUT-G's member since 2025: MUT-R cannot declare it too.
    let capture = "scheme_id;beneficiary_id;member_number;product_id;product_start\n\
                   CNSS;R-OK;R-1;BASE;01/01/2025\n\
                   CNSS;G-OK;R-21;BASE;01/09/2026\n";
    let f = write(dir.path(), "capture.csv", capture);
    let o = cli(
        &h,
        &["roster", "import", &f, "--partner", "MUT-R", "--dry-run"],
    )
    .await;
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stderr.contains(
            "line 3: product_start: another mutuelle covers this beneficiary from 2026-09-01"
        ),
        "{}",
        o.stderr
    );
    assert!(member(&h, "R-21").await.is_none());
    // Asked to, the import skips the rows the broker refuses too, says
    // which, and imports the others.
    let both = "scheme_id;beneficiary_id;member_number;product_id;product_start\n\
                CNSS;R-OK;R-1;BASE;01/01/2025\n\
                CNSS;R-TYPO;R-20;BASEE;01/11/2026\n\
                CNSS;G-OK;R-21;BASE;01/09/2026\n\
                CNSS;R-NEW2;R-22;BASE;01/11/2026\n";
    let f = write(dir.path(), "both.csv", both);
    let o = cli(
        &h,
        &[
            "--json",
            "roster",
            "import",
            &f,
            "--partner",
            "MUT-R",
            "--skip-bad-rows",
            "--no-end-dating",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("line 3: product_id") && o.stderr.contains("line 4: product_start"),
        "{}",
        o.stderr
    );
    assert_eq!(o.json()["skippedRows"], 2);
    assert!(member(&h, "R-22").await.is_some());
    assert!(member(&h, "R-20").await.is_none() && member(&h, "R-21").await.is_none());
    // A placeholder written for members without a scheme id, shared by
    // more members than renumbering explains: each of its rows named,
    // those past the 20 a refusal lists too, and with --skip-bad-rows the
    // others imported (none of the placeholder's).
    let mut crowd = String::from(
        "scheme_id;beneficiary_id;member_number;product_id;product_start\n\
         CNSS;R-REAL;R-30;BASE;01/11/2026\n",
    );
    for n in 0..25 {
        crowd.push_str(&format!("CNSS;NEANT;R-P{n};BASE;01/11/2026\n"));
    }
    let f = write(dir.path(), "crowd.csv", &crowd);
    // Checked in French: every row named, in the console's words, without
    // the broker's English summary before them.
    let o = import_into_r(&h, &["--lang", "fr"], &f, &["--dry-run"]).await;
    assert_eq!(o.code, 1, "{}", o.stdout);
    for line in 3..=27 {
        assert!(
            o.stderr.contains(&format!(
                "ligne {line} : beneficiary_id : 25 adhérents de la mutuelle auraient ce n° d'assuré, plus de 10"
            )),
            "ligne {line} : {}",
            o.stderr
        );
    }
    assert!(
        !o.stderr.contains("shared by") && !o.stderr.contains("le broker dit"),
        "{}",
        o.stderr
    );
    let skip = ["--skip-bad-rows", "--no-end-dating"];
    let o = import_into_r(&h, &["--json"], &f, &skip).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    for line in 3..=27 {
        assert!(
            o.stderr.contains(&format!(
                "line {line}: beneficiary_id: shared by 25 members of MUT-R, more than 10"
            )),
            "line {line}: {}",
            o.stderr
        );
    }
    assert_eq!(o.json()["skippedRows"], 25);
    assert!(member(&h, "R-30").await.is_some());
    // Said in the table's words too.
    let dry_skip = ["--skip-bad-rows", "--no-end-dating", "--dry-run"];
    let o = import_into_r(&h, &["--lang", "fr"], &f, &dry_skip).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .contains("lignes ignorées (adhérents laissés tels quels) : 25"),
        "{}",
        o.stdout
    );
    for n in [0, 19, 20, 24] {
        assert!(member(&h, &format!("R-P{n}")).await.is_none(), "R-P{n}");
    }
    // A dry run lists the file's bad rows and the broker's together (as
    // the console's check does), then fails: it stopped at the file's.
    let both = "scheme_id;beneficiary_id;member_number;product_id;product_start\n\
                CNSS;R-OK;R-1;BASE;31/02/2025\n\
                CNSS;R-TYPO;R-20;BASEE;01/11/2026\n";
    let f = write(dir.path(), "both-dry.csv", both);
    let o = import_into_r(&h, &[], &f, &["--dry-run"]).await;
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stderr.contains("line 2: product_start")
            && o.stderr
                .contains("line 3: product_id: unknown product \"BASEE\""),
        "{}",
        o.stderr
    );
    // A member number differing from a stored one only in letter case,
    // skipped: the stored member is left as it is, never ended (the
    // command line kept the typed number, and the stored member, absent
    // from the file, was ended).
    let slip = "scheme_id;beneficiary_id;member_number;product_id;product_start\n\
                CNSS;R-OK;r-1;BASE;01/01/2025\n";
    let f = write(dir.path(), "slip.csv", slip);
    let o = import_into_r(&h, &[], &f, &["--skip-bad-rows"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r1 = member(&h, "R-1").await.expect("R-1 stays");
    assert!(
        r1.products.iter().any(|p| p.end_date.is_empty()),
        "R-1 still in force: {r1:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_import_versions_and_immutability() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Next year's 1st of January: a new version starts after today.
    let next = passerelle_domain::date::of_ms(process::wall_ms()).year() + 1;
    let v2 = &format!(
        r#"
[[products]]
mutuelle_id = "MUT-R"
id = "BASE"
version = 2
name = "Base {next}"
valid_from = "{next}-01-01"
currency = "XOF"
beneficiary_year_limit = 20000

[[products.categories]]
category = "consultation"
tm_rate_bp = 10000
"#
    );
    let f = write(dir.path(), "p.toml", v2);
    // Nothing waiting yet: said, not a table's headings over nothing.
    let none = ok(
        &h,
        &["--lang", "fr", "approvals", "list", "--partner", "MUT-R"],
    )
    .await
    .stdout;
    assert_eq!(none.trim(), "Aucune proposition n'attend d'approbation.");
    // Publishing needs a second person: the import records a proposal,
    // nothing is stored until it is approved.
    let proposed = ok(&h, &["--json", "products", "import", &f]).await.json();
    let before = ok(&h, &["--json", "products", "list", "--partner", "MUT-R"])
        .await
        .json();
    assert_eq!(before["products"].as_array().unwrap().len(), 1);
    let listed = ok(&h, &["approvals", "list", "--partner", "MUT-R"])
        .await
        .stdout;
    assert!(
        listed.contains("Product publication") && listed.contains("waiting"),
        "{listed}"
    );
    // A wrong hash approves nothing.
    let o = cli(
        &h,
        &[
            "approvals",
            "approve",
            &n(&proposed["id"]).to_string(),
            "--hash",
            &"0".repeat(64),
            "--partner",
            "MUT-R",
        ],
    )
    .await;
    assert!(o.code == 1 && o.stderr.contains("hash"), "{}", o.stderr);
    let done = approve(&h, &proposed).await;
    assert_eq!(done["state"], "PROPOSAL_STATE_APPLIED", "{done}");
    assert_eq!(done["kind"], "PROPOSAL_KIND_PUBLISH_PRODUCTS");
    assert!(
        done["body"]
            .as_str()
            .unwrap()
            .contains(&format!("Base {next}")),
        "{done}"
    );
    // The same versions again: nothing to approve.
    assert_eq!(
        ok(&h, &["--json", "products", "import", &f]).await.json()["results"][0],
        "unchanged"
    );
    let list = ok(&h, &["--json", "products", "list", "--partner", "MUT-R"])
        .await
        .json();
    let versions: Vec<_> = list["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 2]);
    // Version 1 is used once a claim is coordinated with it.
    let c = write(
        dir.path(),
        "c.toml",
        &claim_toml("P-1", "R-OK", "INV-P1", "provider"),
    );
    ok(&h, &["claim", "submit", &c]).await;
    let list = ok(&h, &["--json", "products", "list", "--partner", "MUT-R"])
        .await
        .json();
    assert_eq!(list["products"][0]["used"], true);
    let changed_v1 = write(
        dir.path(),
        "v1.toml",
        &v2.replace("version = 2", "version = 1")
            .replace(&format!("{next}-01-01"), "2025-01-01"),
    );
    // Proposed, then refused when approved: the proposal ends failed.
    let proposed = ok(&h, &["--json", "products", "import", &changed_v1])
        .await
        .json();
    let o = cli(
        &h,
        &[
            "approvals",
            "approve",
            &n(&proposed["id"]).to_string(),
            "--hash",
            proposed["hash"].as_str().unwrap(),
            "--partner",
            "MUT-R",
        ],
    )
    .await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("PRODUCT_IN_USE"), "{}", o.stderr);
    let all = ok(
        &h,
        &["--json", "approvals", "list", "--partner", "MUT-R", "--all"],
    )
    .await
    .json();
    assert_eq!(
        all["proposals"][0]["state"], "PROPOSAL_STATE_FAILED",
        "{all}"
    );
    // A grpc partner keeps its own products.
    let o = cli(
        &h,
        &[
            "products",
            "import",
            &write(dir.path(), "g.toml", &v2.replace("MUT-R", "MUT-G")),
        ],
    )
    .await;
    assert!(
        o.code == 1 && o.stderr.contains("products[0].mutuelle_id"),
        "{}",
        o.stderr
    );
}

fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            headers
                .iter()
                .cloned()
                .zip(rec.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

/// A statement CSV's column summed over its lines and recoveries (a
/// recovery's empty billed, scheme and patient shares count nothing; the
/// `end` row holds no amount).
fn sum(rows: &[std::collections::HashMap<String, String>], col: &str) -> i64 {
    rows.iter()
        .filter(|r| r["kind"] != "end")
        .map(|r| match r[col].as_str() {
            "" if r["kind"] == "recovery" && col != "mutuelle_share" => 0,
            v => v.parse::<i64>().unwrap(),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_ties_out_to_the_claims_and_recovers_after_settlement() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    for (id, who, payee) in [
        ("S-1", "R-OK", "provider"),
        ("S-2", "R-NEW", "member"),
        ("S-3", "R-RACE", "provider"),
    ] {
        let f = write(
            dir.path(),
            &format!("{id}.toml"),
            &claim_toml(id, who, &format!("INV-{id}"), payee),
        );
        ok(&h, &["claim", "submit", &f]).await;
    }
    let claims = ok(
        &h,
        &[
            "--json",
            "claim",
            "list",
            "--mutuelle",
            "MUT-R",
            "--state",
            "coordinated",
        ],
    )
    .await
    .json();
    let open = periods(&h).await;
    assert_eq!(open[0]["state"], "PERIOD_STATE_OPEN");
    assert_eq!(open[0]["claimCount"], 3);

    let proposed = propose_close(&h).await;
    // Still open until another person approves.
    assert_eq!(periods(&h).await[0]["state"], "PERIOD_STATE_OPEN");
    let done = approve(&h, &proposed).await;
    assert_eq!(
        (done["state"].as_str(), done["outcome"].as_str()),
        (Some("PROPOSAL_STATE_APPLIED"), Some("period 1 closed"))
    );
    let all = periods(&h).await;
    let p1 = all.iter().find(|p| p["number"] == 1).unwrap();
    assert_eq!(
        (p1["number"].as_u64(), p1["state"].as_str()),
        (Some(1), Some("PERIOD_STATE_CLOSED"))
    );
    let csv_path = dir.path().join("p1.csv");
    ok(
        &h,
        &[
            "statement",
            "export",
            "--scheme",
            "CNSS",
            "--partner",
            "MUT-R",
            "1",
            "-o",
            csv_path.to_str().unwrap(),
        ],
    )
    .await;
    let rows = csv_rows(&std::fs::read_to_string(&csv_path).unwrap());
    // Read by pages of one line, the export is the same file.
    let paged_path = dir.path().join("p1-paged.csv");
    ok(
        &h,
        &[
            "statement",
            "export",
            "--scheme",
            "CNSS",
            "--partner",
            "MUT-R",
            "1",
            "--page-size",
            "1",
            "-o",
            paged_path.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&paged_path).unwrap(),
        std::fs::read_to_string(&csv_path).unwrap()
    );
    assert!(rows.len() > 2, "several pages: {}", rows.len());
    assert!(
        !dir.path().join("p1-paged.csv.partial").exists(),
        "written beside, then renamed"
    );
    // Its owner's alone: it names members and their care, whatever the
    // umask.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&paged_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    // Whole, a statement is bounded: above the bound it is refused, naming
    // the way (pages).
    let broker = &h.running().broker;
    let lines = rows.iter().filter(|r| r["kind"] == "line").count() as u32;
    // The last row counts the lines: a file without it was cut short.
    let end = rows.last().unwrap();
    assert_eq!(
        (end["kind"].as_str(), end["line"].parse::<u32>().ok()),
        ("end", Some(lines))
    );
    let refused = broker
        .statement_within("CNSS", "MUT-R", 1, None, lines - 1)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("read it by pages") && too_many_lines(&refused),
        "{refused}"
    );
    let whole = broker
        .statement_within("CNSS", "MUT-R", 1, None, lines)
        .await
        .unwrap();
    assert_eq!(whole.lines.len() as u32, lines);
    // The statement's totals tie out to the claims.
    for (col, key) in [
        ("billed", "billed"),
        ("scheme_share", "schemeShare"),
        ("mutuelle_share", "mutuelleShare"),
        ("patient_share", "patientShare"),
    ] {
        assert_eq!(sum(&rows, col), n(&claims["totals"][key]), "{col}");
        assert_eq!(sum(&rows, col), n(&p1["totals"][key]), "{col}");
    }
    assert_eq!(sum(&rows, "mutuelle_share"), n(&p1["netDue"]));
    assert!(
        rows.iter()
            .any(|r| r["payee_type"] == "member" && r["payee_id"] == "R-2"),
        "member paid back"
    );
    for r in rows.iter().filter(|r| r["kind"] == "line") {
        let (b, s, m, p): (i64, i64, i64, i64) = (
            r["billed"].parse().unwrap(),
            r["scheme_share"].parse().unwrap(),
            r["mutuelle_share"].parse().unwrap(),
            r["patient_share"].parse().unwrap(),
        );
        assert_eq!(s + m + p, b, "{r:?}");
    }
    let show = async || {
        ok(
            &h,
            &[
                "statement",
                "show",
                "--scheme",
                "CNSS",
                "--partner",
                "MUT-R",
                "1",
            ],
        )
        .await
        .stdout
    };
    let shown = show().await;
    assert!(
        shown.contains("payee provider CHU-SO:") && shown.contains("net due"),
        "{shown}"
    );
    assert!(!shown.contains("reference"), "not settled yet: {shown}");

    let settle = [
        "--json",
        "period",
        "settle",
        "--scheme",
        "CNSS",
        "--partner",
        "MUT-R",
        "1",
        "--reference",
        "VIR-001",
    ];
    let proposed = ok(&h, &settle).await.json();
    approve(&h, &proposed).await;
    // Settling again with the same reference answers at once.
    let settled = ok(&h, &settle).await.json();
    assert_eq!(settled["periods"][0]["state"], "PERIOD_STATE_SETTLED");
    // Its statement now names its payment.
    let shown = show().await;
    assert!(
        shown.lines().nth(1) == Some("reference: VIR-001"),
        "{shown}"
    );
    // Its remittance advice: each payee's part of the transfer, which add
    // up to the net due; and each as a FHIR PaymentReconciliation.
    let advice = ok(&h, &remittance_of(&["--json"], "1", &[])).await.json();
    assert_eq!(advice["transferReference"], "VIR-001");
    let payees = advice["payees"].as_array().unwrap();
    assert!(payees.len() >= 2, "a provider and a member: {advice}");
    let paid: i64 = payees.iter().map(|p| n(&p["amount"])).sum();
    assert_eq!(paid, n(&p1["netDue"]));
    let fhir = ok(
        &h,
        &remittance_of(
            &[],
            "1",
            &["--payee-type", "member", "--payee", "R-2", "--fhir"],
        ),
    )
    .await
    .stdout;
    let pr: Value = serde_json::from_str(fhir.trim()).unwrap();
    assert_eq!(pr["resourceType"], "PaymentReconciliation");
    assert_eq!(pr["paymentIdentifier"]["value"], "VIR-001");
    // Its texts in the reader's language, which it names.
    for (lang, disposition) in [
        ("fr", "période 1 de CNSS x MUT-R"),
        ("en", "period 1 of CNSS x MUT-R"),
    ] {
        let fhir = ok(
            &h,
            &remittance_of(
                &["--lang", lang],
                "1",
                &["--payee-type", "member", "--payee", "R-2", "--fhir"],
            ),
        )
        .await
        .stdout;
        let pr: Value = serde_json::from_str(fhir.trim()).unwrap();
        assert_eq!(
            (pr["language"].as_str(), pr["disposition"].as_str()),
            (Some(lang), Some(disposition)),
            "{pr}"
        );
    }
    // However large the period, one payee's part is read from where it
    // starts in the statement, by pages of any size, and is that payee's
    // part of the whole advice; a part over the bound is refused.
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    for a in payees {
        let (t, id) = (text(&a["payeeType"]), text(&a["payeeId"]));
        let lines = a["lines"].as_array().map_or(0, Vec::len);
        for first_read in [1, 2, 250] {
            let d = broker
                .remittance_payee("CNSS", "MUT-R", 1, (&t, &id), 50_000, first_read)
                .await
                .unwrap();
            assert_eq!(d.lines.len(), lines, "{t} {id}, reads of {first_read}");
            assert!(
                d.lines
                    .iter()
                    .all(|l| l.payee_type == t && l.payee_id == id),
                "{t} {id}"
            );
        }
        if lines > 1 {
            let refused = broker
                .remittance_payee("CNSS", "MUT-R", 1, (&t, &id), lines as u32 - 1, 1)
                .await
                .unwrap_err();
            assert!(
                refused.to_string().contains("has more than") && too_many_lines(&refused),
                "{refused}"
            );
        }
        let one = ok(
            &h,
            &remittance_of(&["--json"], "1", &["--payee-type", &t, "--payee", &id]),
        )
        .await
        .json();
        assert_eq!(&one["payees"][0], a, "{t} {id}");
    }
    // The payees' totals, by pages: each payee's claims and amount, as in
    // the whole advice, in the statement's order.
    let totals = ok(&h, &remittance_of(&["--json"], "1", &["--totals"]))
        .await
        .json();
    let whole = payee_totals(&advice);
    assert_eq!(payee_totals(&totals), whole);
    assert!(whole.iter().all(|w| w.3 > 0), "{whole:?}");
    for limit in [1, 2] {
        let (got, _) = payee_pages(broker, 1, limit).await;
        assert_eq!(got, whole, "pages of {limit}");
    }
    let shown = ok(&h, &remittance_of(&[], "1", &["--totals"])).await.stdout;
    assert!(
        shown.contains("VIR-001") && shown.contains("provider CHU-SO"),
        "{shown}"
    );

    // A cancel after settlement: a recovery (indu) in the next period.
    let s1_m = n(&claims["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["claimId"] == "S-1")
        .unwrap()["totals"]["mutuelleShare"]);
    assert!(s1_m > 0);
    let said = ok(
        &h,
        &[
            "claim",
            "cancel",
            "--scheme",
            "CNSS",
            "S-1",
            "--reason",
            "billed twice",
        ],
    )
    .await
    .stdout;
    // The command says what follows: the claim's M comes back (an indu).
    assert!(
        said.contains(
            "Claim S-1 was in period 1, already closed: MUT-R recovers from provider CHU-SO the "
        ) && said.contains(
            " it had counted for it (an overpayment, indu), to be deducted in the open period, when it closes."
        ),
        "{said}"
    );
    let f = write(
        dir.path(),
        "S-4.toml",
        &claim_toml("S-4", "R-1X", "INV-S-4", "provider").replace("R-1X", "R-OK"),
    );
    let s4 = ok(&h, &["--json", "claim", "submit", &f]).await.json();
    let s4_m = n(&s4["totals"]["mutuelleShare"]);
    // The settled statement did not change: its lines and amounts are
    // the same; S-1's lines say the claim was cancelled since.
    let before = csv_rows(&std::fs::read_to_string(&csv_path).unwrap());
    let out = ok(
        &h,
        &[
            "statement",
            "export",
            "--scheme",
            "CNSS",
            "--partner",
            "MUT-R",
            "1",
        ],
    )
    .await
    .stdout;
    let after = csv_rows(&out);
    assert_eq!(after.len(), before.len());
    for (mut a, b) in after.into_iter().zip(before) {
        let status = a.insert("status".into(), String::new()).unwrap();
        let cancelled = a["kind"] == "line" && a["claim_id"] == "S-1";
        assert_eq!(
            status,
            if cancelled {
                "cancelled_after_close"
            } else {
                ""
            },
            "{a:?}"
        );
        assert_eq!(a, b);
    }
    let proposed = propose_close(&h).await;
    approve(&h, &proposed).await;
    let all = periods(&h).await;
    let p2 = all.iter().find(|p| p["number"] == 2).unwrap();
    assert_eq!(n(&p2["recoveries"]), s1_m);
    assert_eq!(n(&p2["netDue"]), s4_m - s1_m);
    let rows = csv_rows(
        &ok(
            &h,
            &[
                "statement",
                "export",
                "--scheme",
                "CNSS",
                "--partner",
                "MUT-R",
                "2",
            ],
        )
        .await
        .stdout,
    );
    let recovery: Vec<_> = rows.iter().filter(|r| r["kind"] == "recovery").collect();
    assert_eq!(recovery.len(), 1);
    assert_eq!(recovery[0]["claim_id"], "S-1");
    assert_eq!(recovery[0]["mutuelle_share"].parse::<i64>().unwrap(), -s1_m);
    // Whose care it was: the cancelled claim's member and date of care.
    assert_eq!(
        (
            recovery[0]["member_number"].as_str(),
            recovery[0]["date_of_care"].as_str()
        ),
        ("R-1", "2026-11-20"),
        "R-OK is MUT-R's member R-1"
    );
    assert_eq!(sum(&rows, "mutuelle_share"), n(&p2["netDue"]));
    // statement show names the recovery's payee as the console does.
    let shown = ok(
        &h,
        &[
            "statement",
            "show",
            "--scheme",
            "CNSS",
            "--partner",
            "MUT-R",
            "2",
        ],
    )
    .await
    .stdout;
    // The recovery's M taken back, negative, as the console writes it.
    let taken_back = format!(
        "-{}",
        s1_m.to_string()
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(
        shown.lines().any(|l| l.contains("S-1")
            && l.contains("20/11/2026")
            && l.contains("provider CHU-SO")
            && l.trim_end().ends_with(&taken_back)),
        "{taken_back}: {shown}"
    );
    // The footer's recoveries too, negative beside M and the net due.
    assert!(
        shown.contains(&format!("recoveries: {taken_back}   net due: ")),
        "{shown}"
    );
    // Period 1's statement keeps S-1's line, marked cancelled since.
    let one = show().await;
    assert!(
        one.lines()
            .any(|l| l.starts_with("S-1 (cancelled after the close) ")),
        "{one}"
    );
    // So does period 1's remittance advice to CHU-SO, which paid it.
    let advice = ok(
        &h,
        &remittance_of(&[], "1", &["--payee-type", "provider", "--payee", "CHU-SO"]),
    )
    .await
    .stdout;
    assert!(
        advice
            .lines()
            .any(|l| l.starts_with("S-1 (cancelled after the close) ")),
        "{advice}"
    );
    // And in the periods' table: period 2's row, its recoveries negative.
    let listed = ok(
        &h,
        &["period", "list", "--scheme", "CNSS", "--partner", "MUT-R"],
    )
    .await
    .stdout;
    assert!(
        listed
            .lines()
            .any(|l| l.trim_start().starts_with("2 ") && l.contains(&taken_back)),
        "{taken_back}: {listed}"
    );
    // A period not settled has no remittance advice yet, said in the
    // reader's language.
    let o = cli(&h, &remittance_of(&[], "2", &[])).await;
    assert!(
        o.code == 1 && o.stderr.contains("not settled"),
        "{}",
        o.stderr
    );
    let o = cli(&h, &remittance_of(&["--lang", "fr"], "2", &[])).await;
    assert!(
        o.code == 1
            && o.stderr.contains("Cette période n'est pas encore réglée : son avis de paiement viendra avec l'enregistrement de son règlement.")
            && o.stderr.contains("PERIOD_NOT_SETTLED"),
        "{}",
        o.stderr
    );
    // Nothing left to close.
    let o = cli(
        &h,
        &["period", "close", "--scheme", "CNSS", "--partner", "MUT-R"],
    )
    .await;
    assert!(
        o.code == 1 && o.stderr.contains("nothing to close"),
        "{}",
        o.stderr
    );
    // In French: what the refusal means from the catalogue, the broker's
    // words as a detail, the code and reason as they are.
    let o = cli(
        &h,
        &[
            "--lang",
            "fr",
            "period",
            "close",
            "--scheme",
            "CNSS",
            "--partner",
            "MUT-R",
        ],
    )
    .await;
    assert!(
        o.code == 1
            && o.stderr.starts_with(
                "erreur : Opération refusée en l'état. (le broker dit : « nothing to close"
            )
            && o.stderr.contains("[FailedPrecondition, REFUSED]"),
        "{}",
        o.stderr
    );
    let o = cli(
        &h,
        &[
            "--lang",
            "fr",
            "period",
            "list",
            "--scheme",
            "CNSS",
            "--partner",
            "MUT-R",
        ],
    )
    .await;
    assert!(
        o.stdout.contains("net dû") && o.stdout.contains("réglée"),
        "{}",
        o.stdout
    );
}

/// Each payee of a GetRemittanceAdvice answer (JSON): type, id, amount and
/// claims.
fn payee_totals(answer: &Value) -> Vec<(String, String, i64, u64)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    answer["payees"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            (
                text(&a["payeeType"]),
                text(&a["payeeId"]),
                n(&a["amount"]),
                a["claimCount"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// MUT-R's settled period `number`'s payees read by the broker in pages of
/// `limit` payees with claims (each page checked to hold no more), as
/// [`payee_totals`] lists them, and how many pages.
async fn payee_pages(
    broker: &passerelle_broker::service::Broker,
    number: u32,
    limit: u32,
) -> (Vec<(String, String, i64, u64)>, usize) {
    let (mut got, mut after, mut pages) = (Vec::new(), None, 0);
    loop {
        let p = broker
            .remittance_payees("CNSS", "MUT-R", number, after.clone(), limit)
            .await
            .unwrap();
        pages += 1;
        let with_claims = p.payees.iter().filter(|a| a.claims > 0).count();
        assert!(with_claims <= limit as usize, "{:?}", p.payees);
        got.extend(
            p.payees
                .into_iter()
                .map(|a| (a.payee_type, a.payee_id, a.amount, a.claims)),
        );
        match p.next {
            Some(k) => after = Some(k),
            None => return (got, pages),
        }
    }
}

/// A refusal of more lines than one answer holds, by its own reason, which
/// the console and the command line say in the reader's language.
fn too_many_lines(e: &passerelle_broker::service::ServiceError) -> bool {
    matches!(
        e,
        passerelle_broker::service::ServiceError::Precondition {
            reason: passerelle_broker::service::settlement::TOO_MANY_LINES,
            ..
        }
    )
}

/// Proposes closing CNSS x MUT-R's open period: the proposal, as JSON.
async fn propose_close(h: &Harness) -> Value {
    ok(
        h,
        &[
            "--json",
            "period",
            "close",
            "--scheme",
            "CNSS",
            "--partner",
            "MUT-R",
        ],
    )
    .await
    .json()
}

/// Closes and settles MUT-R's open period with `reference`.
async fn close_and_settle(h: &Harness, number: &str, reference: &str) {
    let proposed = propose_close(h).await;
    approve(h, &proposed).await;
    let proposed = ok(
        h,
        &[
            "--json",
            "period",
            "settle",
            "--scheme",
            "CNSS",
            "--partner",
            "MUT-R",
            number,
            "--reference",
            reference,
        ],
    )
    .await
    .json();
    approve(h, &proposed).await;
}

/// `passerelle <lead> statement remittance` of MUT-R's period `number`
/// with CNSS, then `extra`.
fn remittance_of<'a>(lead: &[&'a str], number: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = lead.to_vec();
    args.extend([
        "statement",
        "remittance",
        "--scheme",
        "CNSS",
        "--partner",
        "MUT-R",
        number,
    ]);
    args.extend_from_slice(extra);
    args
}

/// A settled period's payees' totals by pages: a payee with only a
/// recovery in the period (its claim cancelled after its own period was
/// settled) is listed once, between the others in the statement's order,
/// with no claim and a negative amount, whatever the page size; the totals
/// are the whole advice's; they add up to the net due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remittance_totals_list_a_payee_with_only_a_recovery_once() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let submit = async |id: &str, who: &str, payee: &str| {
        let f = write(
            dir.path(),
            &format!("{id}.toml"),
            &claim_toml(id, who, &format!("INV-{id}"), payee),
        );
        ok(&h, &["--json", "claim", "submit", &f]).await.json()
    };
    let s2 = submit("S-2", "R-NEW", "member").await;
    close_and_settle(&h, "1", "VIR-1").await;
    let cancel_s2 = async |reason: &str| {
        ok(
            &h,
            &[
                "--lang", "fr", "claim", "cancel", "--scheme", "CNSS", "S-2", "--reason", reason,
            ],
        )
        .await
        .stdout
    };
    let said = cancel_s2("billed twice").await;
    assert!(
        said.contains(
            "La demande S-2 était dans la période 1, déjà clôturée : MUT-R récupère les "
        ) && said.contains(" qu'elle y avait comptés, auprès de l'adhérent R-2 ")
            && said.contains(" (un indu), à déduire dans la période en cours, à sa clôture."),
        "{said}"
    );
    assert!(
        said.contains("Motif de l'annulation : billed twice"),
        "{said}"
    );
    // Sent again, the cancel changes nothing: the claim's one recovery is
    // said as it stands.
    assert_eq!(cancel_s2("billed twice").await, said);
    // With another reason, it says the first one stays.
    let other = cancel_s2("autre motif").await;
    assert!(
        other.contains("Motif de l'annulation : billed twice")
            && other.contains("son motif reste celui de la première."),
        "{other}"
    );
    submit("S-3", "R-RACE", "member").await;
    submit("S-4", "R-OK", "provider").await;
    // Period 2: R-2's recovery outweighs its claims. The settlement's
    // proposal says what the transfer pays and what comes back, so that
    // its approver sees more than the net due.
    approve(&h, &propose_close(&h).await).await;
    let settle = ok(
        &h,
        &[
            "--json",
            "period",
            "settle",
            "--scheme",
            "CNSS",
            "--partner",
            "MUT-R",
            "2",
            "--reference",
            "VIR-2",
        ],
    )
    .await
    .json();
    let listed = ok(
        &h,
        &["--lang", "fr", "approvals", "list", "--partner", "MUT-R"],
    )
    .await
    .stdout;
    assert!(
        listed.contains("Le virement verse ")
            && listed.contains(" sont à récupérer auprès de ceux qui doivent."),
        "{listed}"
    );
    approve(&h, &settle).await;
    // Once closed, the recovery is said with the period that deducted it.
    let shown = ok(
        &h,
        &["--lang", "fr", "claim", "get", "--scheme", "CNSS", "S-2"],
    )
    .await
    .stdout;
    assert!(
        shown.contains("La demande S-2 était dans la période 1, déjà clôturée")
            && shown.contains("(un indu), déduits dans la période 2."),
        "{shown}"
    );
    let remittance =
        async |extra: &[&str]| ok(&h, &remittance_of(&["--json"], "2", extra)).await.json();
    let whole = payee_totals(&remittance(&[]).await);
    assert_eq!(payee_totals(&remittance(&["--totals"]).await), whole);
    assert_eq!(
        whole.len(),
        3,
        "two payees with claims, one with a recovery: {whole:?}"
    );
    let m2 = n(&s2["totals"]["mutuelleShare"]);
    let recovered: Vec<_> = whole.iter().filter(|a| a.3 == 0).collect();
    assert_eq!(recovered.len(), 1, "{whole:?}");
    assert_eq!((recovered[0].0.as_str(), recovered[0].2), ("member", -m2));
    let mut sorted = whole.clone();
    sorted.sort();
    assert_eq!(sorted, whole, "in the statement's order");
    let net = periods(&h)
        .await
        .iter()
        .find(|p| p["number"] == 2)
        .map(|p| n(&p["netDue"]));
    assert_eq!(Some(whole.iter().map(|a| a.2).sum::<i64>()), net);
    // By pages of one payee with claims: the payee with only a recovery
    // falls in the range of one page, and in that page only.
    let broker = &h.running().broker;
    assert_eq!(payee_pages(broker, 2, 1).await, (whole.clone(), 2));
    // The payee alone: its recovery, no line, what it owes.
    let id = recovered[0].1.clone();
    let one = remittance(&["--payee-type", "member", "--payee", &id]).await;
    let a = &one["payees"][0];
    assert_eq!(n(&a["amount"]), -m2, "{one}");
    assert!(a["lines"].as_array().is_none_or(Vec::is_empty), "{one}");
    assert_eq!(a["recoveries"][0]["claimId"], "S-2", "{one}");
    // Read by a person, in French: whose period and in what currency,
    // each payee, then a row of the period's net due (the payee who owes
    // counted against it); the recovery's line names the period it comes
    // from.
    let fr = async |extra: &[&str]| {
        ok(&h, &remittance_of(&["--lang", "fr"], "2", extra))
            .await
            .stdout
            .replace('\u{202f}', "")
    };
    let shown = fr(&["--totals"]).await;
    assert!(
        shown.contains("période 2 (régime CNSS, mutuelle MUT-R), XOF")
            && shown.contains("référence : VIR-2"),
        "{shown}"
    );
    let total: Vec<&str> = shown
        .lines()
        .find(|l| l.starts_with("net dû"))
        .unwrap_or_else(|| panic!("a row of the net due: {shown}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        total,
        ["net", "dû", "2", &net.unwrap().to_string(), "XOF"],
        "{shown}"
    );
    assert!(
        shown.contains(&format!("{m2}\u{a0}XOF à récupérer (rien n'est versé)")),
        "the payee who owes: {shown}"
    );
    let lines = fr(&["--payee-type", "member", "--payee", &id]).await;
    assert!(
        lines.starts_with("période 2 (régime CNSS, mutuelle MUT-R), XOF\nréférence : VIR-2")
            && lines.contains("indu (période 1)")
            && lines.contains(&format!(
                "{id} : {m2}\u{a0}XOF à récupérer (rien n'est versé)"
            ))
            && !lines.contains("net dû"),
        "{lines}"
    );
    // Every payee's lines end with the period's net due, then, as a
    // payee owes, what the transfer paid and what is to be recovered (the
    // same in --totals, under its table, and in the JSON).
    let all = fr(&[]).await;
    let net = net.unwrap();
    let split = format!(
        "Le virement verse {}\u{a0}XOF aux bénéficiaires payés ; {m2}\u{a0}XOF sont à récupérer auprès de ceux qui doivent.",
        net + m2
    );
    assert!(
        all.trim_end()
            .ends_with(&format!("net dû : {net}\u{a0}XOF\n{split}")),
        "{all}"
    );
    assert!(shown.trim_end().ends_with(&split), "{shown}");
    // The whole period's, in every form of the answer: totals, every
    // payee, one payee (here the one who owes, and one who is paid).
    let paid_id = whole.iter().find(|a| a.2 > 0).map(|a| a.1.clone()).unwrap();
    let paid_type = whole.iter().find(|a| a.2 > 0).map(|a| a.0.clone()).unwrap();
    for extra in [
        &["--totals"][..],
        &[][..],
        &["--payee-type", "member", "--payee", &id][..],
        &["--payee-type", &paid_type, "--payee", &paid_id][..],
    ] {
        let json = remittance(extra).await;
        assert_eq!(
            (n(&json["transferAmount"]), n(&json["owedAmount"])),
            (net + m2, m2),
            "{extra:?}: {json}"
        );
    }
    // A payee's kind and the period's number are refused by the command
    // line itself, in the reader's language, before the broker is asked.
    for (number, bad, said) in [
        (
            "2",
            &["--payee-type", "hopital", "--payee", "X"][..],
            "valeurs possibles : provider, member",
        ),
        (
            "0",
            &[][..],
            "« 0 » ne nomme aucune période : elles se comptent à partir de 1",
        ),
        ("abc", &[][..], "« abc » n'est pas un nombre entier"),
        ("99999999999", &[][..], "« 99999999999 » est trop grand"),
    ] {
        let args = remittance_of(&["--lang", "fr"], number, bad);
        let o = cli(&h, &args).await;
        assert!(
            o.code == 2 && o.stderr.contains(said),
            "{args:?}: {}",
            o.stderr
        );
    }
    // A payee with nothing in the period is named as not found, not
    // answered with an empty advice.
    let o = cli(
        &h,
        &remittance_of(&[], "2", &["--payee-type", "provider", "--payee", "NOPE"]),
    )
    .await;
    assert!(
        o.code == 1
            && o.stderr
                .contains("claims or recoveries of provider NOPE in period 2 not found"),
        "{}",
        o.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_partners_retry_and_audit() {
    // A back-off of ten minutes: only the operator's retry finishes the claim.
    let h = Harness::start_with(300, 600_000).await;
    let dir = tempfile::tempdir().unwrap();
    h.set_partner_mode(Mode::Unavailable);
    let f = write(
        dir.path(),
        "a.toml",
        &claim_toml("A-1", "G-OK", "INV-A1", "provider"),
    );
    let pending = ok(&h, &["--json", "claim", "submit", &f]).await.json();
    assert_eq!(pending["state"], "CLAIM_STATE_PENDING_PARTNER");
    // Its M = 0 and P = R are said to be no final amounts, in both
    // languages (they read as what the patient owes).
    let said = |lang: &'static str| {
        let h = &h;
        async move {
            ok(
                h,
                &["--lang", lang, "claim", "get", "--scheme", "CNSS", "A-1"],
            )
            .await
            .stdout
        }
    };
    for (lang, words, why) in [
        (
            "fr",
            "Ce ne sont pas les montants définitifs",
            "Dernière erreur rencontrée auprès de la mutuelle : mutuelle indisponible",
        ),
        (
            "en",
            "These are not the final amounts",
            "Last error with the mutuelle: ",
        ),
    ] {
        let o = said(lang).await;
        assert!(o.contains(words) && o.contains(why), "{o}");
    }
    let partners = ok(&h, &["--json", "admin", "partners"]).await.json();
    let g = partners["partners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mutuelleId"] == "MUT-G")
        .unwrap()
        .clone();
    assert_eq!(g["adapter"], "grpc");
    assert_eq!(g["pending"], 1);
    assert!(
        g["lastError"].as_str().unwrap().contains("unavailable"),
        "{g}"
    );
    let r = partners["partners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mutuelleId"] == "MUT-R")
        .unwrap()
        .clone();
    assert_eq!(r["adapter"], "rules");
    // The partner is back: retry now instead of waiting for the back-off.
    h.set_partner_mode(Mode::Normal);
    let retried = ok(&h, &["--json", "admin", "retry", "--scheme", "CNSS", "A-1"])
        .await
        .json();
    assert_eq!(retried["state"], "coordinated");
    let o = said("en").await;
    assert!(
        !o.contains("not the final amounts") && !o.contains("Last error"),
        "answered: {o}"
    );
    let o = cli(&h, &["admin", "retry", "--scheme", "CNSS", "A-1"]).await;
    assert!(
        o.code == 1 && o.stderr.contains("not waiting"),
        "{}",
        o.stderr
    );
    let audit = ok(&h, &["--json", "admin", "audit", "--scheme", "CNSS", "A-1"])
        .await
        .json();
    let rows = audit["records"].as_array().unwrap();
    let methods: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["direction"].as_str().unwrap(),
                r["method"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(methods.contains(&("in", "CoordinateClaim")), "{methods:?}");
    assert!(
        methods
            .iter()
            .filter(|m| **m == ("out", "AdjudicateRemainder"))
            .count()
            >= 2,
        "{methods:?}"
    );
    assert!(methods.contains(&("in", "RetryClaim")), "{methods:?}");
    assert!(
        rows.iter()
            .all(|r| r["requestHash"].as_str().unwrap().len() == 64)
    );
    let table = ok(&h, &["admin", "partners"]).await.stdout;
    assert!(table.contains("MUT-G") && table.contains("grpc"), "{table}");
    // A claim waiting on a mutuelle an operator holds paused: a retry now
    // is refused and says so (it said "retried" and sent nothing). The
    // mutuelle stays paused, so that nothing delivers the claim meanwhile.
    h.set_partner_mode(Mode::Unavailable);
    let f = write(
        dir.path(),
        "b.toml",
        &claim_toml("B-1", "G-OK", "INV-B1", "provider"),
    );
    let pending = ok(&h, &["--json", "claim", "submit", &f]).await.json();
    assert_eq!(pending["state"], "CLAIM_STATE_PENDING_PARTNER");
    ok(&h, &["admin", "pause", "MUT-G"]).await;
    h.set_partner_mode(Mode::Normal);
    let o = cli(
        &h,
        &["--lang", "fr", "admin", "retry", "--scheme", "CNSS", "B-1"],
    )
    .await;
    assert!(
        o.code == 1
            && o.stderr
                .contains("Cette mutuelle a été mise en pause par un opérateur"),
        "{}",
        o.stderr
    );
    let b = ok(&h, &["--json", "claim", "get", "--scheme", "CNSS", "B-1"])
        .await
        .json();
    assert_eq!(b["state"], "CLAIM_STATE_PENDING_PARTNER", "nothing sent");
    // A claim not waiting is said so, paused or not.
    let o = cli(&h, &["admin", "retry", "--scheme", "CNSS", "A-1"]).await;
    assert!(o.stderr.contains("not waiting"), "{}", o.stderr);
}

/// A conflict stored before the one-mutuelle rule (written here with raw
/// SQL, as an older version did): routing refuses the beneficiary, the
/// operator lists the conflict (in French too) and resolves it, and
/// routing names the kept mutuelle again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_and_resolves_coverage_conflicts() {
    let h = Harness::start().await;
    let mut legacy = members()
        .into_iter()
        .find(|m| m.member_number == "G-1")
        .unwrap();
    legacy.member_number = "G-9".into();
    legacy.beneficiary_id = "R-OK".into();
    legacy.products[0].start = passerelle_domain::date::parse("2026-01-01").unwrap();
    {
        let c = rusqlite::Connection::open(h.dir.path().join("p.db")).unwrap();
        c.execute(
            "INSERT INTO members (mutuelle_id, member_number, scheme_id, beneficiary_id, body, updated_ms) \
             VALUES ('MUT-G', 'G-9', 'CNSS', 'R-OK', ?1, 0)",
            [serde_json::to_string(&legacy).unwrap()],
        )
        .unwrap();
    }
    let elig = [
        "eligibility",
        "--scheme",
        "CNSS",
        "--beneficiary",
        "R-OK",
        "--date",
        "2026-11-20",
    ];
    let o = cli(&h, &elig).await;
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stderr.contains("more than one mutuelle"), "{}", o.stderr);
    let j = ok(&h, &["--json", "admin", "coverage-conflicts"])
        .await
        .json();
    let c = &j["conflicts"][0];
    assert_eq!(
        (
            c["firstMutuelleId"].as_str(),
            c["secondMutuelleId"].as_str(),
            c["fromDate"].as_str()
        ),
        (Some("MUT-G"), Some("MUT-R"), Some("2026-01-01"))
    );
    let fr = ok(
        &h,
        &[
            "--lang",
            "fr",
            "admin",
            "coverage-conflicts",
            "--scheme",
            "CNSS",
        ],
    )
    .await;
    assert!(
        fr.stdout.contains("assuré") && fr.stdout.contains("R-OK"),
        "{}",
        fr.stdout
    );
    let r = ok(
        &h,
        &[
            "--json",
            "admin",
            "resolve-coverage",
            "--scheme",
            "CNSS",
            "--beneficiary",
            "R-OK",
            "--keep",
            "MUT-R",
        ],
    )
    .await
    .json();
    assert_eq!(r["changed"][0]["memberNumber"], "G-9");
    let none = ok(&h, &["admin", "coverage-conflicts"]).await;
    assert!(
        none.stdout.contains("no coverage conflict"),
        "{}",
        none.stdout
    );
    let e = ok(
        &h,
        &[
            "--json",
            "eligibility",
            "--scheme",
            "CNSS",
            "--beneficiary",
            "R-OK",
            "--date",
            "2026-11-20",
        ],
    )
    .await
    .json();
    assert_eq!(e["mutuelleId"], "MUT-R", "{e}");
}

/// A close approved after the open period changed (a claim cancelled
/// since it was proposed) is refused with its own reason, said in the
/// reader's language, closes nothing, and the proposal's outcome is listed
/// in the same words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_approved_after_the_period_changed_is_said_in_the_readers_words() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    for id in ["S-1", "S-2"] {
        let f = write(
            dir.path(),
            &format!("{id}.toml"),
            &claim_toml(id, "R-OK", &format!("INV-{id}"), "provider"),
        );
        ok(&h, &["claim", "submit", &f]).await;
    }
    let proposed = propose_close(&h).await;
    ok(&h, &["claim", "cancel", "--scheme", "CNSS", "S-2"]).await;
    let id = n(&proposed["id"]).to_string();
    // Approved, read in French.
    let approve_fr = async || {
        cli(
            &h,
            &[
                "--lang",
                "fr",
                "approvals",
                "approve",
                &id,
                "--hash",
                proposed["hash"].as_str().unwrap(),
                "--partner",
                "MUT-R",
            ],
        )
        .await
    };
    let o = approve_fr().await;
    assert!(
        o.code == 1
            && o.stderr
                .contains("La période ouverte a changé depuis que sa clôture a été proposée")
            && o.stderr.contains("PERIOD_CHANGED"),
        "{}",
        o.stderr
    );
    // Nothing was closed: the open period is the only one.
    assert_eq!(periods(&h).await.len(), 1);
    // Approved again, it is said to be decided already.
    let again = approve_fr().await;
    assert!(
        again.code == 1
            && again.stderr.contains("Cette proposition est déjà décidée")
            && again.stderr.contains("PROPOSAL_DECIDED"),
        "{}",
        again.stderr
    );
    let all = ok(
        &h,
        &[
            "--lang",
            "fr",
            "approvals",
            "list",
            "--partner",
            "MUT-R",
            "--all",
        ],
    )
    .await
    .stdout;
    assert!(
        all.contains("approuvée, non appliquée : voir le résultat")
            && all.contains(
                "la période a changé depuis la proposition (2 demandes alors, 1 maintenant"
            ),
        "{all}"
    );
}
