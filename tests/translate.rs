//! Adapter tooling from the command line: `passerelle translate` on FHIR and
//! XML payloads (the right amounts, or the error with its path), and
//! `passerelle conformance` against a configured partner.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/fhir")
        .join(name)
}

fn translate(args: &[&str]) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .arg("translate")
        .args(args)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.success(), v)
}

#[test]
fn the_hl7_example_claim_response_reads_exactly() {
    let f = fixture("ClaimResponse-R3500.json");
    let (ok, v) = translate(&["--adapter", "fhir-r4", f.to_str().unwrap()]);
    assert!(ok, "{v}");
    assert_eq!(v["currency"], "USD");
    let l = &v["lines"][0];
    assert_eq!(l["line_total"]["minor"], 13557);
    assert_eq!(l["line_total"]["value"], "135.57");
    assert_eq!(l["mutuelle_share"]["minor"], 9047);
    assert_eq!(l["reasons"][0], "Plan Limit Reached");
}

#[test]
fn openimis_payloads_read_as_openimis_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("imis.toml");
    std::fs::write(
        &cfg,
        "dialect = \"openimis\"\ncurrency_symbols = { \"$\" = \"XOF\" }\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let (ok, v) = translate(&[
        "--adapter",
        "fhir-r4",
        "--config",
        c,
        fixture("openimis-claim.json").to_str().unwrap(),
    ]);
    assert!(ok, "{v}");
    assert_eq!(v["lines"][0]["quantity"], 12);
    assert_eq!(v["lines"][0]["unit_price"]["minor"], 250);
    assert_eq!(v["lines"][0]["line_total"]["minor"], 3000);
    assert_eq!(v["total"]["minor"], 15500);
    assert_eq!(v["lines_add_up"], true);
    let (ok, v) = translate(&[
        "--adapter",
        "fhir-r4",
        "--config",
        c,
        fixture("openimis-claimresponse.json").to_str().unwrap(),
    ]);
    assert!(ok, "{v}");
    // The valuated amount is the line's total (openIMIS's price_valuated),
    // `value` its quantity; a claim's amount is a unit price (above).
    assert_eq!(v["lines"][0]["status"], 16);
    assert_eq!(v["lines"][0]["quantity"], 12);
    assert_eq!(v["lines"][0]["line_total"]["minor"], 200, "valuated total");
    assert_eq!(v["lines"][0]["mutuelle_share"]["minor"], 200);
    assert_eq!(v["lines"][1]["status"], 1);
    assert_eq!(v["lines"][1]["mutuelle_share"]["minor"], 0, "rejected line");
    assert_eq!(v["total_mutuelle_share"]["value"], "200");
    assert!(
        v["claim_lifecycle"].as_str().unwrap().starts_with("final"),
        "{v}"
    );
    // A claim only checked (statuses 2 and 4), which openIMIS answers
    // `partial`, waits, as the broker reads it: translate said final.
    let checked = dir.path().join("checked.json");
    std::fs::write(
        &checked,
        serde_json::json!({"resourceType": "ClaimResponse", "outcome": "partial", "item": [
            {"itemSequence": 1, "adjudication": [
                {"category": {"coding": [{"code": "2"}]}, "amount": {"value": 400, "currency": "$"}, "value": 3},
                {"category": {"coding": [{"code": "4"}]}, "amount": {"value": 400, "currency": "$"}, "value": 3}]}]})
        .to_string(),
    )
    .unwrap();
    let (ok, v) = translate(&[
        "--adapter",
        "fhir-r4",
        "--config",
        c,
        checked.to_str().unwrap(),
    ]);
    assert!(ok, "{v}");
    assert!(
        v["claim_lifecycle"]
            .as_str()
            .unwrap()
            .starts_with("pending"),
        "{v}"
    );
    let (ok, v) = translate(&[
        "--adapter",
        "fhir-r4",
        "--config",
        c,
        fixture("openimis-eligibility-response.json")
            .to_str()
            .unwrap(),
    ]);
    assert!(ok, "{v}");
    assert_eq!(v["covered"], true);
    // allowed, used (none stated) and left, per benefit (issue 15).
    assert_eq!(v["counts"][0]["left"], 23);
    assert_eq!(v["amounts"][0]["left"]["minor"], 45000);
}

#[test]
fn errors_name_their_path() {
    // Without the currency mapping, "$" is refused with its path.
    let (ok, v) = translate(&[
        "--adapter",
        "fhir-r4",
        fixture("openimis-claim.json").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("Claim.item[0].unitPrice.currency"),
        "{v}"
    );
    // A value finer than the currency allows is an error, never rounded.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.json");
    std::fs::write(&f, r#"{"resourceType":"ClaimResponse","outcome":"complete","item":[{"itemSequence":1,"adjudication":[{"category":{"coding":[{"code":"benefit"}]},"amount":{"value":1500.5,"currency":"XOF"}}]}]}"#).unwrap();
    let (ok, v) = translate(&["--adapter", "fhir-r4", f.to_str().unwrap()]);
    assert!(!ok);
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("ClaimResponse.item[0].adjudication[0].amount.value") && e.contains("finer"),
        "{e}"
    );
    // XML: the element at fault, by path.
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/kit/xml-a.toml");
    let x = dir.path().join("a.xml");
    std::fs::write(&x, "<Reponse><Ligne no=\"1\"><Part>1 500</Part></Ligne><Ligne no=\"2\"><Part>12,5x</Part></Ligne></Reponse>").unwrap();
    let (ok, v) = translate(&[
        "--adapter",
        "xml-http",
        "--config",
        cfg.to_str().unwrap(),
        x.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("Reponse/Ligne[2]/Part"),
        "{v}"
    );
    std::fs::write(&x, "<Reponse><Ligne no=\"1\"><Part>1 500</Part></Ligne><Ligne no=\"2\"><Part>12 500</Part></Ligne></Reponse>").unwrap();
    let (ok, v) = translate(&[
        "--adapter",
        "xml-http",
        "--config",
        cfg.to_str().unwrap(),
        x.to_str().unwrap(),
    ]);
    assert!(ok, "{v}");
    assert_eq!(v["lines"][1]["mutuelle_share"]["minor"], 12500);
    std::fs::write(
        &x,
        "<!DOCTYPE x [<!ENTITY e \"boom\">]><Reponse>&e;</Reponse>",
    )
    .unwrap();
    let (ok, v) = translate(&[
        "--adapter",
        "xml-http",
        "--config",
        cfg.to_str().unwrap(),
        x.to_str().unwrap(),
    ]);
    assert!(
        !ok && v["error"].as_str().unwrap().contains("DOCTYPE"),
        "{v}"
    );
}

/// `passerelle conformance` against a configured partner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_runs_the_live_checks_against_a_configured_partner() {
    let sim = passerelle_adapters::kit::sim();
    let (addr, _task) = sim.clone().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nplaintext = true\n[[schemes]]\nid = \"CNSS\"\ncurrency = \"XOF\"\n\
             [[partners]]\nid = \"MUT-KIT\"\nadapter = \"grpc\"\n[partners.grpc]\nendpoint = \"http://{addr}\"\n\
             [partners.grpc.codes.acts]\nC-CONS = \"CONSULT\"\n"
        ),
    )
    .unwrap();
    // The live checks against the simulated partner, in `lang`.
    let conformance = |lang: &'static str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_passerelle"))
            .args(["--lang", lang, "conformance", "--config"])
            .arg(&cfg)
            .args([
                "--partner",
                "MUT-KIT",
                "--scheme",
                "CNSS",
                "--beneficiary",
                "TG-KIT-1",
                "--member",
                "K-1",
                "--act",
                "C-CONS",
            ])
            .output()
    };
    let out = conformance("en").await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for check in [
        "eligibility",
        "golden path",
        "duplicate",
        "cancel",
        "unmapped code",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("pass") && l.contains(check)),
            "{check}: {text}"
        );
    }
    assert!(text.contains("answered UNMAPPED_CODE"), "{text}");
    assert_eq!(
        sim.adjudication_keys().len(),
        1,
        "one adjudication for the golden path and its duplicate"
    );
    assert_eq!(sim.cancel_keys().len(), 1);
    // In French, every word of it: the checks' names and findings.
    let out = conformance("fr").await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for (name, found) in [
        ("éligibilité", "couvert"),
        ("parcours nominal", "M = "),
        ("renvoi", "même clé, même réponse"),
        ("annulation", "acceptée"),
        ("code non traduit", "UNMAPPED_CODE répondu"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("réussi") && l.contains(name) && l.contains(found)),
            "{name}: {text}"
        );
    }
    for english in ["covered", "golden", "same key", "accepted", "answered"] {
        assert!(!text.contains(english), "{english}: {text}");
    }
}

/// `passerelle conformance` against an openIMIS partner: its claims come
/// from the provider given (`--provider`, mapped to the partner's
/// facility; the default `CONFORMANCE` has no mapping), and its cancel,
/// which openIMIS does not offer, is said to be a person's to make, not
/// failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_openimis_takes_a_provider_and_says_the_cancel_is_by_hand() {
    let front = passerelle_adapters::sim_http::SimFhir {
        sim: passerelle_adapters::kit::sim(),
        dialect: passerelle_adapters::fhir::Dialect::Openimis,
        currency_text: "$".into(),
        currency: "XOF".into(),
        login: Some(("passerelle".into(), "kit-secret".into())),
        answers: Default::default(),
    };
    let (addr, _task) = front.start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("imis-password"), "kit-secret\n").unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nplaintext = true\n[[schemes]]\nid = \"CNSS\"\ncurrency = \"XOF\"\n\
             [[partners]]\nid = \"MUT-IMIS\"\nadapter = \"fhir-r4\"\n[partners.fhir]\n\
             base_url = \"http://{addr}/api/api_fhir_r4\"\ndialect = \"openimis\"\n\
             username = \"passerelle\"\npassword_file = \"imis-password\"\ncurrency_symbols = {{ \"$\" = \"XOF\" }}\n\
             [partners.fhir.openimis]\nclaim_admin = \"KIT-ADMIN\"\ndefault_diagnosis = \"Z00\"\n\
             [partners.fhir.codes.acts]\nC-CONS = \"CONSULT\"\n\
             [partners.fhir.codes.facilities]\nCHU-KIT = \"HF-KIT\"\n"
        ),
    )
    .unwrap();
    let conformance = |provider: Option<&'static str>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_passerelle"));
        cmd.args(["--lang", "en", "conformance", "--config"])
            .arg(&cfg)
            .args([
                "--partner",
                "MUT-IMIS",
                "--scheme",
                "CNSS",
                "--beneficiary",
                "TG-KIT-1",
                "--member",
                "K-1",
                "--act",
                "C-CONS",
            ]);
        if let Some(p) = provider {
            cmd.args(["--provider", p]);
        }
        cmd.output()
    };
    let out = conformance(None).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("CONFORMANCE"), "{text}");
    let out = conformance(Some("CHU-KIT")).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cancel = text
        .lines()
        .find(|l| l.contains("cancel"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(cancel.starts_with("pass"), "{text}");
    assert!(
        cancel.contains("a person cancels at the partner"),
        "{cancel}"
    );
}
