//! `passerelle dev`: the embedded default in one command. A SQLite database in
//! a data folder, one rules mutuelle, one native gRPC mutuelle simulated
//! in-process, seeded schemes, members and products.

use std::net::SocketAddr;
use std::path::Path;

use passerelle_adapters::fhir::Dialect;
use passerelle_adapters::sim::SimMutuelle;
use passerelle_adapters::sim_http::{SimFhir, SimXml, XmlShape};
use passerelle_domain::{Member, Product};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::audit::now_ms;
use crate::config::{Config, OperatorConfig, TlsConfig};
use crate::identity::Role;
use crate::pki::{Pki, PkiError};
use crate::server::{self, Running, StartError};
use crate::store::sqlite::SqliteStore;
use crate::store::users::UserRole;

const CONFIG: &str = include_str!("../dev/config.toml");
const ROSTER: &str = include_str!("../dev/roster.toml");
const SIM_PRODUCTS: &str = include_str!("../dev/sim-products.toml");

#[derive(Deserialize)]
struct Roster {
    members: Vec<Member>,
}

#[derive(Deserialize)]
struct Products {
    products: Vec<Product>,
}

/// Where the simulated partners of the dev set-up listen.
#[derive(Clone, Copy, Debug)]
pub struct SimAddrs {
    pub grpc: SocketAddr,
    pub fhir: SocketAddr,
    pub xml: SocketAddr,
}

/// The simulated partners of a running dev set-up, for a harness that needs
/// to take one down and bring it back (the benchmark's catch-up).
#[derive(Clone)]
pub struct Sims {
    pub addrs: SimAddrs,
    /// MUT-ENSEIGNANTS, the native gRPC mutuelle.
    pub grpc: SimMutuelle,
}

/// The dev configuration with the simulated partners' addresses and the
/// secrets folder filled in, served in plaintext (tests, `--plaintext`);
/// [`start`] switches it to mTLS.
pub fn config(listen: SocketAddr, sims: SimAddrs, secrets: &Path) -> Config {
    let text = CONFIG
        .replace("{SIM_ENDPOINT}", &format!("http://{}", sims.grpc))
        .replace(
            "{FHIR_URL}",
            &format!("http://{}/api/api_fhir_r4", sims.fhir),
        )
        .replace("{XML_URL}", &format!("http://{}", sims.xml))
        .replace("{SECRETS}", &secrets.display().to_string());
    let mut cfg: Config = toml::from_str(&text).expect("dev config parses");
    cfg.listen = listen;
    cfg.plaintext = true;
    cfg.check().expect("dev config is valid");
    cfg
}

/// The operator identity of the dev set-up.
pub const DEV_OPERATOR: &str = "dev";

/// Makes the dev certificates that are missing: a CA, the server's (for
/// localhost and the listen address), one per scheme, one per mutuelle, and
/// the operator's. Returns the TLS settings that use them.
pub fn ensure_certs(dir: &Path, cfg: &Config) -> Result<TlsConfig, PkiError> {
    let pki = Pki::new(dir);
    let fresh = pki.init_ca()?;
    if fresh || !dir.join("server.crt").exists() {
        let mut ips: Vec<std::net::IpAddr> =
            vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        if !cfg.listen.ip().is_unspecified() && !ips.contains(&cfg.listen.ip()) {
            ips.push(cfg.listen.ip());
        }
        pki.issue_server(&["localhost".to_string()], &ips)?;
    }
    let mut wanted: Vec<(Role, String)> = cfg
        .schemes
        .iter()
        .map(|s| (Role::Scheme, s.id.clone()))
        .collect();
    wanted.extend(cfg.partners.iter().map(|p| (Role::Mutuelle, p.id.clone())));
    wanted.push((Role::Operator, DEV_OPERATOR.to_string()));
    for (role, id) in wanted {
        if !pki.client_paths(role, &id).0.exists() {
            pki.issue_client(role, &id, 825)?;
        }
    }
    Ok(TlsConfig {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        client_ca: pki.ca_cert(),
        crls: vec![pki.crl()],
        reload_interval_s: 10,
        handshake_timeout_ms: 10_000,
    })
}

pub fn members() -> Vec<Member> {
    toml::from_str::<Roster>(ROSTER)
        .expect("dev roster parses")
        .members
}

pub fn sim_products() -> Vec<Product> {
    toml::from_str::<Products>(SIM_PRODUCTS)
        .expect("dev products parse")
        .products
}

fn sim_of(id: &str) -> SimMutuelle {
    SimMutuelle::new(
        id,
        members()
            .into_iter()
            .filter(|m| m.mutuelle_id == id)
            .collect(),
        sim_products(),
    )
}

/// The password of the simulated openIMIS and of the legacy XML mutuelle.
const DEV_SECRET: &str = "dev-secret";

/// Starts the simulated partners of the dev set-up: a native gRPC mutuelle,
/// an openIMIS-like FHIR server, and a legacy XML mutuelle; writes their
/// secrets in `secrets`.
pub async fn start_sims(secrets: &Path) -> std::io::Result<Sims> {
    use base64::Engine;
    std::fs::create_dir_all(secrets)?;
    for f in ["imis-password", "legacy-password"] {
        std::fs::write(secrets.join(f), DEV_SECRET)?;
    }
    let grpc_sim = sim_of("MUT-ENSEIGNANTS");
    let (grpc, _) = grpc_sim.clone().start().await?;
    let (fhir, _) = SimFhir {
        sim: sim_of("MUT-IMIS"),
        dialect: Dialect::Openimis,
        currency_text: "$".into(),
        currency: "XOF".into(),
        login: Some(("passerelle".into(), DEV_SECRET.into())),
        answers: Default::default(),
    }
    .start()
    .await?;
    let (xml, _) = SimXml {
        sim: sim_of("MUT-LEGACY"),
        shape: XmlShape::A,
        currency: "XOF".into(),
        credential: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("passerelle:{DEV_SECRET}"))
        ),
    }
    .start()
    .await?;
    Ok(Sims {
        addrs: SimAddrs { grpc, fhir, xml },
        grpc: grpc_sim,
    })
}

/// Starts the dev broker: data in `data_dir`, serving on `listen`, with
/// mutual TLS (certificates in `data_dir/certs`), or in plaintext when asked
/// (loopback only).
pub async fn start(
    data_dir: &Path,
    listen: SocketAddr,
    plaintext: bool,
    metrics: Option<SocketAddr>,
    console: Option<SocketAddr>,
    clock_start_ms: Option<i64>,
) -> Result<Running, StartError> {
    check_listen(listen, plaintext)?;
    if let Some(c) = console
        && !c.ip().is_loopback()
    {
        return Err(StartError::Config(format!(
            "--console-listen: the dev broker serves its console on a loopback address only, not {c}"
        )));
    }
    if let Some(m) = metrics
        && !m.ip().is_loopback()
    {
        return Err(StartError::Config(format!(
            "--metrics-listen: the dev broker serves its metrics on a loopback address only, not {m}"
        )));
    }
    let store = std::sync::Arc::new(SqliteStore::open(&data_dir.join("passerelle.db"))?);
    std::fs::create_dir_all(data_dir)?;
    let secrets = data_dir.join("secrets");
    let sims = start_sims(&secrets).await?;
    let mut cfg = config(listen, sims.addrs, &secrets);
    cfg.metrics = metrics.map(|listen| crate::config::MetricsConfig { listen, tls: None });
    cfg.console = console.map(|listen| crate::config::ConsoleConfig { listen });
    cfg.clock_start_ms = clock_start_ms;
    start_with_config(data_dir, cfg, plaintext, store).await
}

/// The dev broker's accounts for `passerelle users --data-dir`: the dev
/// configuration on the data folder's store, nothing served.
pub async fn broker_for_users(
    data_dir: &Path,
) -> Result<std::sync::Arc<crate::service::Broker>, StartError> {
    let db = data_dir.join("passerelle.db");
    if !db.exists() {
        return Err(StartError::Config(format!(
            "{}: no dev database here (run `passerelle dev --data-dir {}` first, or give --config)",
            db.display(),
            data_dir.display()
        )));
    }
    let store = std::sync::Arc::new(SqliteStore::open(&db)?);
    let unused = SocketAddr::from(([127, 0, 0, 1], 9));
    let cfg = config(
        unused,
        SimAddrs {
            grpc: unused,
            fhir: unused,
            xml: unused,
        },
        &data_dir.join("secrets"),
    );
    server::build_broker(&cfg, Path::new("."), store).await
}

/// The password of every demo account of `dev` (development only).
pub const DEMO_PASSWORD: &str = "demo-passerelle";

/// The demo accounts `dev` creates: (login, name, role, scope).
pub const DEMO_USERS: &[(&str, &str, UserRole, &[&str])] = &[
    (
        "agent",
        "Akosua Mensah",
        UserRole::Clerk,
        &["MUT-SOLIDARITE"],
    ),
    (
        "gestion",
        "Kodjo Agbeko",
        UserRole::Manager,
        &["MUT-SOLIDARITE"],
    ),
    (
        "controle",
        "Afi Lawson",
        UserRole::Manager,
        &["MUT-SOLIDARITE"],
    ),
    (
        "federation",
        "Mariam Traoré",
        UserRole::Manager,
        &["MUT-SOLIDARITE", "MUT-ENSEIGNANTS"],
    ),
    ("cnss", "Yawo Amegah", UserRole::SchemeStaff, &["CNSS"]),
    ("ops", "Opérateur dev", UserRole::Operator, &[]),
];

/// Creates the demo accounts that are missing (dev only: never in `serve`).
pub async fn ensure_demo_users(broker: &crate::service::Broker) -> Result<(), StartError> {
    for (login, name, role, scope) in DEMO_USERS {
        if broker.store().user(login).await?.is_some() {
            continue;
        }
        broker
            .add_user(
                crate::service::users::NewUser {
                    login: login.to_string(),
                    display_name: name.to_string(),
                    role: *role,
                    scope: scope.iter().map(|s| s.to_string()).collect(),
                    password: DEMO_PASSWORD.to_string(),
                    lang: String::new(),
                },
                "dev",
            )
            .await
            .map_err(|e| StartError::Config(format!("demo user {login}: {e}")))?;
    }
    Ok(())
}

/// Plaintext only on loopback; checked before anything is created.
fn check_listen(listen: SocketAddr, plaintext: bool) -> Result<(), StartError> {
    if plaintext && !listen.ip().is_loopback() {
        return Err(StartError::Config(format!(
            "--plaintext is only allowed on a loopback address, not {listen}"
        )));
    }
    Ok(())
}

/// [`start`] on a store of the caller's choosing (migrated), also returning
/// the simulated partners.
pub async fn start_on(
    data_dir: &Path,
    listen: SocketAddr,
    plaintext: bool,
    store: std::sync::Arc<dyn crate::store::Store>,
) -> Result<(Running, Sims), StartError> {
    check_listen(listen, plaintext)?;
    std::fs::create_dir_all(data_dir)?;
    let secrets = data_dir.join("secrets");
    let sims = start_sims(&secrets).await?;
    let cfg = config(listen, sims.addrs, &secrets);
    let running = start_with_config(data_dir, cfg, plaintext, store).await?;
    Ok((running, sims))
}

/// [`start_on`] with a dev configuration of the caller's ([`config`], maybe
/// changed), whose simulated partners may run elsewhere: in another process,
/// the benchmark measures a broker's memory apart from theirs.
pub async fn start_with_config(
    data_dir: &Path,
    mut cfg: Config,
    plaintext: bool,
    store: std::sync::Arc<dyn crate::store::Store>,
) -> Result<Running, StartError> {
    let listen = cfg.listen;
    check_listen(listen, plaintext)?;
    std::fs::create_dir_all(data_dir)?;
    if plaintext {
        // The console is HTTPS only.
        cfg.console = None;
    }
    if !plaintext {
        let tls = ensure_certs(&data_dir.join("certs"), &cfg)
            .map_err(|e| StartError::Config(e.to_string()))?;
        cfg.plaintext = false;
        cfg.tls = Some(tls);
        cfg.operators = vec![OperatorConfig {
            id: DEV_OPERATOR.to_string(),
            name: "dev operator".to_string(),
        }];
    }
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        StartError::Config(format!("listen {listen}: {e} (try --listen 127.0.0.1:0)"))
    })?;
    // The TLS paths above already start with data_dir: resolve them from
    // the current directory, not again under data_dir.
    let running = server::start_with_store(&cfg, Path::new("."), store, listener).await?;
    match running
        .broker
        .store()
        .upsert_members(&members(), now_ms())
        .await
    {
        Ok(()) => {
            ensure_demo_users(&running.broker).await?;
            Ok(running)
        }
        // A data directory written before the one-mutuelle rule may hold a
        // membership that overlaps a seeded member.
        Err(crate::store::StoreError::CoverageOverlap(o)) => Err(StartError::Config(format!(
            "the data directory {} holds memberships that overlap {} seeded member period(s) of another mutuelle: \
             start with a fresh --data-dir, or serve it and resolve with `passerelle admin coverage-conflicts` / `resolve-coverage`",
            data_dir.display(),
            o.len()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// What `dev` prints once it serves.
/// The second-factor secret of the demo operator `ops`, for the banner.
pub async fn demo_operator_secret(running: &Running) -> Option<String> {
    let u = running.broker.store().user("ops").await.ok()??;
    Some(u.totp_secret)
}

pub fn banner(
    running: &Running,
    data_dir: &Path,
    plaintext: bool,
    ops_secret: Option<&str>,
) -> String {
    let addr = running.addr;
    let ops = match running.ops_addr {
        Some(a) => format!("metrics: http://{a}/metrics (probes /healthz, /readyz)\n"),
        None => String::new(),
    };
    let console = match running.console_addr {
        Some(a) => format!(
            "console: https://{a}/ (certificate from {certs}/ca.crt; your browser will ask to trust it)\n\
                 \x20 demo accounts, password {DEMO_PASSWORD}: agent (clerk, MUT-SOLIDARITE), gestion and controle\n\
                 \x20 (managers, MUT-SOLIDARITE), federation (manager of MUT-SOLIDARITE and MUT-ENSEIGNANTS),\n\
                 \x20 cnss (scheme staff), ops (operator, with a 6-digit code from any authenticator app\n\
                 \x20 given the TOTP secret {secret})\n",
            certs = data_dir.join("certs").display(),
            secret = ops_secret.unwrap_or("-"),
        ),
        None => String::new(),
    };
    let certs = data_dir.join("certs");
    let c = certs.display();
    let (scheme, certs_flag, grpcurl, curl, client) = if plaintext {
        (
            "http",
            String::new(),
            "grpcurl -plaintext".to_string(),
            "curl".to_string(),
            String::new(),
        )
    } else {
        (
            "https",
            // The client commands look in ./.passerelle/certs by default.
            format!(" --certs {c}"),
            format!(
                "grpcurl -cacert {c}/ca.crt -cert {c}/scheme-CNSS.crt -key {c}/scheme-CNSS.key"
            ),
            format!(
                "curl --cacert {c}/ca.crt --cert {c}/scheme-CNSS.crt --key {c}/scheme-CNSS.key"
            ),
            format!(
                "certificates: {c} (CA, server, one per scheme, mutuelle and operator \"dev\")\n\
                 client commands pick the dev certificate of the party they act for\n"
            ),
        )
    };
    format!(
        r#"passerelle dev broker listening on {addr}
data: {data}/passerelle.db (SQLite), {tls}
{client}{ops}{console}schemes: CNSS, INAM, CANAM (delegates CMSS, INPS)
mutuelles: MUT-SOLIDARITE (rules, adjudicated by passerelle), MUT-ENSEIGNANTS (grpc),
           MUT-IMIS (fhir-r4, openIMIS dialect), MUT-LEGACY (xml-http): the last three simulated
members: CNSS TG-1001, TG-1002 (MUT-SOLIDARITE) and TG-3001 (MUT-IMIS);
         INAM TG-2001 (MUT-ENSEIGNANTS) and TG-4001 (MUT-LEGACY); CMSS ML-3001 (MUT-ENSEIGNANTS)

try:
  passerelle --broker {scheme}://{addr}{certs_flag} eligibility --scheme CNSS --beneficiary TG-1001 --date 2026-11-20
  {grpcurl} {addr} list
  {curl} -H 'Content-Type: application/json' \
    -d '{{"schemeId":"CNSS","beneficiaryId":"TG-1001","dateOfCare":"2026-11-20"}}' \
    {scheme}://{addr}/passerelle.scheme.v1.SchemeService/CheckEligibility

Ctrl-C stops."#,
        data = data_dir.display(),
        tls = if plaintext {
            "PLAINTEXT (no client identity)"
        } else {
            "mutual TLS"
        },
    )
}

/// The warning printed when serving without TLS.
pub const PLAINTEXT_WARNING: &str = "WARNING: serving PLAINTEXT gRPC: no encryption, no client identity; every request is trusted as the party it names. For development on this machine only.";
