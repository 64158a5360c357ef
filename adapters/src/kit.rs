//! The adapter conformance kit: one suite every adapter passes.
//!
//! Use it on an adapter with [`adapter_conformance!`](crate::adapter_conformance)
//! and a function that builds a [`KitEnv`]: the adapter under test, pointed at
//! a simulated partner ([`SimMutuelle`], or an HTTP front of one), and the same
//! adapter pointed at a closed port. The checks:
//! golden path; partner down; partner slower than its timeout; malformed
//! answer; a share above the remainder (refused by the broker's check); an
//! unmapped code; a duplicate (same key, one adjudication); a cancel.
//! `passerelle conformance --partner ID` runs the checks a live partner
//! allows (see docs/adapters.md).

use std::sync::Arc;

use passerelle_domain::validate::check_answer;
use passerelle_domain::{
    CareCategory, Claim, ClaimLine, Member, Payee, Product, ReasonCode, SchemeOutcome, date,
};

use crate::sim::{Mode, SimMutuelle};
use crate::{Adapter, AdjudicationRequest, CancelRequest, EligibilityQuery};

/// What the kit runs against.
pub struct KitEnv {
    pub adapter: Arc<dyn Adapter>,
    /// The same adapter pointed at a port where nothing listens.
    pub down: Arc<dyn Adapter>,
    pub sim: SimMutuelle,
    /// The adapter caps a share above the remainder at the remainder (the
    /// openIMIS dialect, whose partner values the claimed amount by its own
    /// tariff) instead of passing it on to be refused.
    pub caps_at_remainder: bool,
    /// The partner can cancel an adjudication; when it cannot (openIMIS
    /// over FHIR), a cancel must be refused as unsupported, saying what a
    /// person must do, and never reach the partner.
    pub cancels: bool,
    /// The partner gives prior authorizations; when it does not (openIMIS,
    /// the template), asking must be refused as unsupported and never
    /// reach it.
    pub preauthorizes: bool,
    /// Keeps temporary files and servers alive.
    pub keep: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// The kit's member (at the simulated mutuelle).
pub fn member() -> Member {
    toml::from_str(
        r#"
mutuelle_id = "MUT-KIT"
scheme_id = "CNSS"
beneficiary_id = "TG-KIT-1"
member_number = "K-1"
household_id = "KH-1"
paid_until = "2026-12-31"
products = [{ product_id = "KIT", start = "2025-01-01" }]
"#,
    )
    .expect("kit member")
}

/// The kit's product: consultations 100%, lab 50% of the ticket moderateur.
pub fn product() -> Product {
    toml::from_str(
        r#"
mutuelle_id = "MUT-KIT"
id = "KIT"
version = 1
name = "Kit"
valid_from = "2025-01-01"
currency = "XOF"
beneficiary_year_limit = 100000

[[categories]]
category = "consultation"
tm_rate_bp = 10000

[[categories]]
category = "lab"
tm_rate_bp = 5000
"#,
    )
    .expect("kit product")
}

/// A simulated mutuelle with the kit's member and product.
pub fn sim() -> SimMutuelle {
    SimMutuelle::new("MUT-KIT", vec![member()], vec![product()])
}

fn line(act: &str, category: CareCategory, b: i64, e: i64, s: i64) -> ClaimLine {
    ClaimLine {
        act_code: act.into(),
        category,
        quantity: 1,
        billed: b,
        tariff_base: e,
        scheme_share: s,
        outcome: SchemeOutcome::Covered,
        scheme_reason: String::new(),
    }
}

/// The kit's claim: a consultation (R 1500, all covered) and a lab test
/// (R 400, half covered). Act codes C-CONS and L-LAB; adapters with code
/// tables must map them.
pub fn claim(id: &str) -> Claim {
    Claim {
        scheme_id: "CNSS".into(),
        claim_id: id.into(),
        provider_id: "CHU-KIT".into(),
        invoice_number: format!("INV-{id}"),
        payee: Payee::Provider,
        beneficiary_id: "TG-KIT-1".into(),
        beneficiary_category: String::new(),
        mutuelle_id: Some("MUT-KIT".into()),
        member_number: Some("K-1".into()),
        date_of_care: date::parse("2026-11-20").expect("date"),
        stay: None,
        diagnoses: vec![],
        currency: "XOF".into(),
        lines: vec![
            line("C-CONS", CareCategory::Consultation, 5000, 5000, 3500),
            line("L-LAB", CareCategory::Lab, 2000, 2000, 1600),
        ],
        prior_authorization: None,
    }
}

/// The kit member's adjudication of `c` under `key`.
pub(crate) fn req<'a>(key: &'a str, c: &'a Claim) -> AdjudicationRequest<'a> {
    AdjudicationRequest {
        idempotency_key: key,
        claim: c,
        member_number: "K-1",
        member: None,
        prior: None,
        unread_ceilings: false,
    }
}

pub async fn golden_path(env: &KitEnv) {
    let c = claim("kit-golden");
    let a = env
        .adapter
        .adjudicate(req("kit-golden-key", &c))
        .await
        .expect("golden path answers");
    let shares = check_answer(&c.lines, a.lines).expect("a valid answer");
    assert_eq!(
        shares.iter().map(|s| s.mutuelle_share).collect::<Vec<_>>(),
        vec![1500, 200]
    );
    assert!(
        !shares[1].reasons.is_empty(),
        "a line not fully covered says why"
    );
    let e = env
        .adapter
        .eligibility(&EligibilityQuery {
            idempotency_key: "kit-elig".into(),
            scheme_id: "CNSS".into(),
            beneficiary_id: "TG-KIT-1".into(),
            member_number: Some("K-1".into()),
            member: None,
            date_of_care: c.date_of_care,
            currency: "XOF".into(),
            lines: vec![],
            diagnoses: vec![],
        })
        .await
        .expect("eligibility answers");
    assert!(e.covered, "{e:?}");
}

pub async fn partner_down(env: &KitEnv) {
    let c = claim("kit-down");
    let err = env
        .down
        .adjudicate(req("kit-down-key", &c))
        .await
        .expect_err("nobody answers");
    assert!(
        err.is_transient(),
        "a partner that is down is retried later: {err:?}"
    );
}

pub async fn partner_slower_than_its_timeout(env: &KitEnv) {
    env.sim.set_mode(Mode::Hang);
    let c = claim("kit-slow");
    let err = env
        .adapter
        .adjudicate(req("kit-slow-key", &c))
        .await
        .expect_err("no answer in time");
    env.sim.set_mode(Mode::Normal);
    assert!(
        err.is_transient(),
        "a slow partner is retried later: {err:?}"
    );
}

pub async fn malformed_answer(env: &KitEnv) {
    env.sim.set_mode(Mode::Garbage);
    let c = claim("kit-garbage");
    let r = env.adapter.adjudicate(req("kit-garbage-key", &c)).await;
    env.sim.set_mode(Mode::Normal);
    match r {
        Err(e) => assert!(
            !e.is_transient(),
            "garbage is not retried as if the partner were down: {e:?}"
        ),
        Ok(a) => assert!(
            check_answer(&c.lines, a.lines).is_err(),
            "garbage must not pass the broker's check"
        ),
    }
}

pub async fn share_above_the_remainder_is_refused(env: &KitEnv) {
    env.sim.set_mode(Mode::Overpay);
    let c = claim("kit-overpay");
    let a = env.adapter.adjudicate(req("kit-overpay-key", &c)).await;
    env.sim.set_mode(Mode::Normal);
    let a = a.expect("the partner answered");
    if env.caps_at_remainder {
        let shares = check_answer(&c.lines, a.lines).expect("capped, hence valid");
        assert_eq!(
            shares[0].mutuelle_share,
            c.lines[0].remainder(),
            "capped at R"
        );
        assert!(
            shares[0]
                .reasons
                .iter()
                .any(|r| r.message.contains("capped")),
            "{:?}",
            shares[0].reasons
        );
    } else {
        let err = check_answer(&c.lines, a.lines).expect_err("M above R is refused");
        assert!(err.contains("above the remainder"), "{err}");
    }
}

pub async fn unmapped_code(env: &KitEnv) {
    let mut c = claim("kit-unmapped");
    c.lines.push(line(
        "NO-SUCH-ACT",
        CareCategory::Consultation,
        1000,
        1000,
        700,
    ));
    let a = env
        .adapter
        .adjudicate(req("kit-unmapped-key", &c))
        .await
        .expect("answers the mapped lines");
    let shares = check_answer(&c.lines, a.lines).expect("every line answered");
    assert_eq!(shares[2].mutuelle_share, 0);
    assert_eq!(
        shares[2].reasons[0].code,
        ReasonCode::UnmappedCode,
        "{:?}",
        shares[2].reasons
    );
    assert!(shares[2].reasons[0].message.contains("NO-SUCH-ACT"));
    assert_eq!(
        shares[0].mutuelle_share, 1500,
        "the mapped lines are still answered"
    );
}

pub async fn duplicate_adjudicates_once(env: &KitEnv) {
    let c = claim("kit-dup");
    let before = env.sim.adjudication_keys().len();
    let a = env
        .adapter
        .adjudicate(req("kit-dup-key", &c))
        .await
        .expect("first");
    let b = env
        .adapter
        .adjudicate(req("kit-dup-key", &c))
        .await
        .expect("again");
    assert_eq!(a.lines, b.lines, "the same key gives the same answer");
    assert_eq!(
        env.sim.adjudication_keys().len(),
        before + 1,
        "one adjudication at the partner"
    );
}

pub async fn cancel(env: &KitEnv) {
    let c = claim("kit-cancel");
    let a = env
        .adapter
        .adjudicate(req("kit-cancel-key", &c))
        .await
        .expect("adjudicated");
    let before = env.sim.cancel_keys().len();
    let r = env
        .adapter
        .cancel(CancelRequest {
            idempotency_key: "kit-cancel-cxl",
            adjudication_key: "kit-cancel-key",
            scheme_id: "CNSS",
            claim_id: "kit-cancel",
            reason: "kit",
            // As the broker stores it from the answer.
            partner_reference: &a.partner_reference,
            answer_refused: false,
        })
        .await;
    if !env.cancels {
        match r {
            Err(crate::AdapterError::Unsupported(m)) => {
                assert!(m.contains("by hand"), "{m}")
            }
            other => panic!("an unsupported cancel must say so: {other:?}"),
        }
        assert_eq!(
            env.sim.cancel_keys().len(),
            before,
            "nothing reached the partner"
        );
        return;
    }
    r.expect("cancel accepted");
    assert_eq!(
        env.sim.cancel_keys().len(),
        before + 1,
        "the partner got the cancel"
    );
}

/// A prior authorization of the kit's claim, a resend (the same
/// commitment, held once), a claim paid against it (the hold released),
/// and a second one released unbilled. The commitment comes from the
/// partner's product (consultation 1500, lab 200), never a canned answer.
pub async fn prior_authorization(env: &KitEnv) {
    use crate::{CancelPreAuthorization, PreAuthorizationRequest, PriorTerms};
    let planned = claim("kit-pa");
    let ask = |key: &'static str| PreAuthorizationRequest {
        idempotency_key: key,
        planned: &planned,
        member_number: "K-1",
        replaces: None,
    };
    let r = env.adapter.preauthorize(ask("kit-pa-key")).await;
    if !env.preauthorizes {
        match r {
            Err(crate::AdapterError::Unsupported(_)) => {}
            other => panic!("an unsupported prior authorization must say so: {other:?}"),
        }
        assert_eq!(env.sim.held(), 0, "nothing reached the partner");
        return;
    }
    let c = r.expect("committed");
    let shares = check_answer(&planned.lines, c.lines.clone()).expect("one share per line");
    assert_eq!(
        shares.iter().map(|s| s.mutuelle_share).collect::<Vec<_>>(),
        [1500, 200]
    );
    assert!(!c.partner_reference.is_empty(), "a reference to quote");
    assert_eq!(
        c.valid_until,
        Some(date::parse("2026-12-20").expect("date")),
        "30 days by the partner's product"
    );
    assert_eq!(env.sim.held(), 1700, "held at the partner");
    let again = env
        .adapter
        .preauthorize(ask("kit-pa-key"))
        .await
        .expect("resend");
    assert_eq!(again.partner_reference, c.partner_reference);
    assert_eq!(env.sim.held(), 1700, "held once");
    // The claim paid against it: as committed, the hold released.
    let terms = PriorTerms {
        partner_reference: c.partner_reference.clone(),
        granted: passerelle_domain::Granted {
            lines: planned
                .lines
                .iter()
                .zip(&shares)
                .map(|(l, s)| passerelle_domain::GrantedLine {
                    act_code: l.act_code.clone(),
                    billed: l.billed,
                    mutuelle_share: s.mutuelle_share,
                })
                .collect(),
            tolerance_bp: 0,
        },
        hold: vec![],
        stay_id: None,
        rebilled: false,
    };
    let bill = claim("kit-pa-claim");
    let a = env
        .adapter
        .adjudicate(AdjudicationRequest {
            prior: Some(&terms),
            unread_ceilings: false,
            ..req("kit-pa-claim-key", &bill)
        })
        .await
        .expect("adjudicated");
    let paid = check_answer(&bill.lines, a.lines).expect("valid");
    assert_eq!(
        paid.iter().map(|s| s.mutuelle_share).collect::<Vec<_>>(),
        [1500, 200]
    );
    assert_eq!(env.sim.held(), 0, "the hold became the claim's");
    // Another, released unbilled.
    let other = env
        .adapter
        .preauthorize(ask("kit-pa-key-2"))
        .await
        .expect("committed");
    assert_eq!(env.sim.held(), 1700);
    env.adapter
        .cancel_preauthorization(CancelPreAuthorization {
            idempotency_key: "kit-pa-release",
            partner_reference: &other.partner_reference,
            scheme_id: "CNSS",
            authorization_id: "kit-pa",
            reason: "kit",
        })
        .await
        .expect("released");
    assert_eq!(env.sim.held(), 0, "released at the partner");
}

/// Runs every check of the kit against adapters built by `$make` (an async
/// function returning a [`KitEnv`]), one test each.
#[macro_export]
macro_rules! adapter_conformance {
    ($make:path) => {
        $crate::adapter_conformance!(@each $make;
            golden_path, partner_down, partner_slower_than_its_timeout, malformed_answer,
            share_above_the_remainder_is_refused, unmapped_code, duplicate_adjudicates_once, cancel,
            prior_authorization);
    };
    (@each $make:path; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let env = $make().await;
                $crate::kit::$check(&env).await;
            }
        )*
    };
}

// ---------------------------------------------------------------- envs

fn codes() -> crate::codes::CodeMaps {
    let mut c = crate::codes::CodeMaps::default();
    c.acts.insert("C-CONS".into(), "CONSULT".into());
    c.acts.insert("L-LAB".into(), "LABO".into());
    c
}

/// A local address where nothing listens.
async fn closed_port() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr")
    // The listener is dropped here: the port is closed.
}

/// The grpc adapter against the simulated gRPC mutuelle.
pub async fn grpc_env() -> KitEnv {
    let sim = sim();
    let (addr, task) = sim.clone().start().await.expect("sim");
    let cfg = |a: std::net::SocketAddr| crate::grpc::GrpcConfig {
        endpoint: format!("http://{a}"),
        timeout_ms: 400,
        connect_timeout_ms: 400,
        tls: None,
        token_file: None,
        codes: codes(),
    };
    KitEnv {
        adapter: Arc::new(crate::grpc::GrpcAdapter::new(&cfg(addr)).expect("adapter")),
        down: Arc::new(crate::grpc::GrpcAdapter::new(&cfg(closed_port().await)).expect("adapter")),
        sim,
        caps_at_remainder: false,
        cancels: true,
        preauthorizes: true,
        keep: vec![Box::new(task)],
    }
}

/// The fhir-r4 adapter (either dialect) against the simulated FHIR server.
pub async fn fhir_env(dialect: crate::fhir::Dialect) -> KitEnv {
    use crate::fhir::{Dialect, FhirAdapter, FhirConfig};
    let sim = sim();
    let openimis = dialect == Dialect::Openimis;
    let front = crate::sim_http::SimFhir {
        sim: sim.clone(),
        dialect,
        currency_text: if openimis { "$".into() } else { "XOF".into() },
        currency: "XOF".into(),
        login: openimis.then(|| ("passerelle".to_string(), "kit-secret".to_string())),
        answers: Default::default(),
    };
    let (addr, task) = front.start().await.expect("fhir sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("password");
    std::fs::write(&pw, "kit-secret\n").expect("password file");
    let cfg = |a: std::net::SocketAddr| FhirConfig {
        base_url: format!("http://{a}/api/api_fhir_r4"),
        dialect,
        timeout_ms: 400,
        connect_timeout_ms: 400,
        pool: Default::default(),
        tls: None,
        token_file: None,
        username: openimis.then(|| "passerelle".to_string()),
        password_file: openimis.then(|| pw.clone()),
        currency_symbols: if openimis {
            [("$".to_string(), "XOF".to_string())].into()
        } else {
            Default::default()
        },
        codes: codes(),
        openimis: openimis.then(|| crate::fhir::openimis::OpenimisSettings {
            claim_admin: "KIT-ADMIN".into(),
            claim_code_type: "Code".into(),
            visit_type: "O".into(),
            default_diagnosis: Some("Z00".into()),
        }),
    };
    KitEnv {
        adapter: Arc::new(FhirAdapter::new("MUT-KIT", &cfg(addr)).expect("adapter")),
        down: Arc::new(FhirAdapter::new("MUT-KIT", &cfg(closed_port().await)).expect("adapter")),
        sim,
        caps_at_remainder: openimis,
        cancels: !openimis,
        preauthorizes: !openimis,
        keep: vec![Box::new(task), Box::new(dir)],
    }
}

/// The xml-http adapter configured from `adapters/kit/xml-{a,b}.toml`
/// against the simulated XML mutuelle of that shape.
pub async fn xml_env(shape: crate::sim_http::XmlShape) -> KitEnv {
    use crate::sim_http::{SimXml, XmlShape};
    use crate::xml::{XmlAdapter, XmlConfig};
    let sim = sim();
    let (text, credential, secret) = match shape {
        XmlShape::A => (
            include_str!("../kit/xml-a.toml"),
            format!("Basic {}", base64_basic("passerelle", "kit-pass")),
            "kit-pass",
        ),
        XmlShape::B => (
            include_str!("../kit/xml-b.toml"),
            "kit-api-key".to_string(),
            "kit-api-key",
        ),
    };
    let front = SimXml {
        sim: sim.clone(),
        shape,
        currency: "XOF".into(),
        credential,
    };
    let (addr, task) = front.start().await.expect("xml sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, secret).expect("secret file");
    let cfg = |a: std::net::SocketAddr| -> XmlConfig {
        toml::from_str(
            &text
                .replace("{URL}", &format!("http://{a}"))
                .replace("{SECRET}", &secret_file.display().to_string()),
        )
        .expect("kit xml config")
    };
    KitEnv {
        adapter: Arc::new(XmlAdapter::new(&cfg(addr)).expect("adapter")),
        down: Arc::new(XmlAdapter::new(&cfg(closed_port().await)).expect("adapter")),
        sim,
        caps_at_remainder: false,
        cancels: true,
        preauthorizes: true,
        keep: vec![Box::new(task), Box::new(dir)],
    }
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

/// The template adapter against its simulated partner, built by the registry
/// from a partner entry as a broker config would write it.
pub async fn template_env() -> KitEnv {
    use crate::template::SimTemplate;
    let sim = sim();
    let (addr, task) = SimTemplate { sim: sim.clone() }
        .start()
        .await
        .expect("template sim");
    let build = |a: std::net::SocketAddr| {
        let entry = format!(
            "adapter = \"template\"\n\
             [template]\nurl = \"http://{a}\"\ntimeout_ms = 400\n\
             [template.codes.acts]\nC-CONS = \"CONSULT\"\nL-LAB = \"LABO\"\n"
        );
        crate::AdapterConfig::from_entry(toml::from_str(&entry).expect("toml"))
            .expect("template entry")
            .build(
                "MUT-KIT",
                std::path::Path::new("."),
                Arc::new(crate::rules::NoStore),
            )
            .expect("adapter")
    };
    KitEnv {
        adapter: build(addr),
        down: build(closed_port().await),
        sim,
        caps_at_remainder: false,
        cancels: true,
        preauthorizes: false,
        keep: vec![Box::new(task)],
    }
}

/// Runs `tools/fhir-validate.py` (fhir.resources' FHIR R4 4.0.1 models) on
/// every `.json` resource of `dir` and asserts they are `expected` valid
/// ones. The validator is the Python PASSERELLE_FHIR_VALIDATOR names
/// (.ci/run installs it); under CI=true it is required, elsewhere without
/// it this returns `false` and the caller's test says it skipped.
pub fn validate_fhir_r4(dir: &std::path::Path, expected: usize) -> bool {
    let Some(python) = std::env::var_os("PASSERELLE_FHIR_VALIDATOR") else {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v != "true"),
            "PASSERELLE_FHIR_VALIDATOR must name the Python with fhir.resources under CI=true"
        );
        eprintln!("skipping: PASSERELLE_FHIR_VALIDATOR not set (see .ci/run)");
        return false;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/fhir-validate.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(dir)
        .output()
        .expect("the FHIR validator runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{expected} valid, 0 invalid")),
        "{text}"
    );
    true
}
