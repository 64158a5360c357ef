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
use crate::console::i18n::Lang;
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
                    must_change: false,
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

/// The second-factor secret of the demo operator `ops`, for the banner.
pub async fn demo_operator_secret(running: &Running) -> Option<String> {
    let u = running.broker.store().user("ops").await.ok()??;
    Some(u.totp_secret)
}

/// Where a dev broker serves, as its banner names it.
#[derive(Clone, Copy, Debug)]
pub struct Served {
    pub grpc: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub console: Option<SocketAddr>,
}

impl Served {
    pub fn of(running: &Running) -> Served {
        Served {
            grpc: running.addr,
            metrics: running.ops_addr,
            console: running.console_addr,
        }
    }
}

/// What `dev` prints once it serves, in `lang`. Its first line ends, in
/// both languages, with the gRPC address after the last space (scripts
/// and tests read it there).
pub fn banner(
    lang: Lang,
    served: Served,
    data_dir: &Path,
    plaintext: bool,
    ops_secret: Option<&str>,
) -> String {
    let addr = served.grpc.to_string();
    let t = |key: &str, args: &[(&str, &str)]| lang.t_args(key, args) + "\n";
    // A line that goes on the one before.
    let more = |key: &str, args: &[(&str, &str)]| format!("  {}", t(key, args));
    let certs = data_dir.join("certs");
    let c = certs.display().to_string();
    let mut out = t("dev-listening", &[("addr", &addr)]);
    let db = data_dir.join("passerelle.db").display().to_string();
    out += &t(
        if plaintext {
            "dev-data-plaintext"
        } else {
            "dev-data-tls"
        },
        &[("path", &db)],
    );
    if !plaintext {
        out += &t("dev-certificates", &[("dir", &c)]);
        out += &t("dev-certificates-pick", &[]);
    }
    if let Some(a) = served.metrics {
        out += &t("dev-metrics", &[("addr", &a.to_string())]);
    }
    if let Some(a) = served.console {
        let ca = certs.join("ca.crt").display().to_string();
        out += &t("dev-console", &[("addr", &a.to_string()), ("ca", &ca)]);
        out += &more("dev-accounts", &[("password", DEMO_PASSWORD)]);
        out += &more("dev-accounts-more", &[]);
        let secret = ops_secret.unwrap_or("-");
        out += &more("dev-accounts-operator", &[("secret", secret)]);
    }
    out += &t("dev-schemes", &[]);
    out += &t("dev-mutuelles", &[]);
    out += &more("dev-mutuelles-more", &[]);
    out += &t("dev-members", &[]);
    out += &more("dev-members-more", &[]);
    let (scheme, certs_flag, grpcurl, curl) = if plaintext {
        (
            "http",
            String::new(),
            "grpcurl -plaintext".to_string(),
            "curl".to_string(),
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
        )
    };
    let lang_flag = match lang {
        Lang::Fr => " --lang fr",
        Lang::En => "",
    };
    out += "\n";
    out += &t("dev-try", &[]);
    out += &format!(
        r#"  passerelle --broker {scheme}://{addr}{certs_flag}{lang_flag} eligibility --scheme CNSS --beneficiary TG-1001 --date 2026-11-20
  {grpcurl} {addr} list
  {curl} -H 'Content-Type: application/json' \
    -d '{{"schemeId":"CNSS","beneficiaryId":"TG-1001","dateOfCare":"2026-11-20"}}' \
    {scheme}://{addr}/passerelle.scheme.v1.SchemeService/CheckEligibility
"#
    );
    out += "\n";
    out += &lang.t("dev-stop");
    out
}

/// The warning printed when serving without TLS, in `lang` (`serve` logs it
/// in English, as every log line).
pub fn plaintext_warning(lang: Lang) -> String {
    lang.t("dev-plaintext-warning")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> Served {
        Served {
            grpc: "127.0.0.1:50051".parse().unwrap(),
            metrics: Some("127.0.0.1:9464".parse().unwrap()),
            console: Some("127.0.0.1:8443".parse().unwrap()),
        }
    }

    /// Every line of the banner is read from the catalogue in both
    /// languages (a missing key would show as itself), ends its first line
    /// with the address, and names what a newcomer needs: the accounts,
    /// the operator's secret, the certificates and a command to try.
    #[test]
    fn the_banner_speaks_french_and_english() {
        let dir = Path::new("/srv/p");
        for (lang, first, words) in [
            (
                Lang::En,
                "passerelle dev broker listening on 127.0.0.1:50051",
                [
                    "data: ",
                    "mutual TLS",
                    "demo accounts",
                    "try:",
                    "Ctrl-C stops.",
                ],
            ),
            (
                Lang::Fr,
                "broker passerelle de développement à l'écoute sur 127.0.0.1:50051",
                [
                    "données : ",
                    "TLS mutuel",
                    "comptes de démonstration",
                    "essayez :",
                    "Ctrl-C pour arrêter.",
                ],
            ),
        ] {
            let b = banner(lang, served(), dir, false, Some("JBSWY3DP"));
            let lines: Vec<&str> = b.lines().collect();
            assert_eq!(lines[0], first);
            assert_eq!(lines[0].rsplit(' ').next(), Some("127.0.0.1:50051"));
            for w in words {
                assert!(b.contains(w), "{lang:?} lacks {w:?}:\n{b}");
            }
            for l in &lines {
                assert!(
                    !l.trim_start().starts_with("dev-") && !l.contains("{$"),
                    "{lang:?}: {l}"
                );
            }
            for w in [
                DEMO_PASSWORD,
                "JBSWY3DP",
                "/srv/p/certs/ca.crt",
                "/srv/p/passerelle.db",
                "http://127.0.0.1:9464/metrics",
                "https://127.0.0.1:8443/",
                "--certs /srv/p/certs",
                "CheckEligibility",
            ] {
                assert!(b.contains(w), "{lang:?} lacks {w:?}:\n{b}");
            }
            let plain = banner(
                lang,
                Served {
                    metrics: None,
                    console: None,
                    ..served()
                },
                dir,
                true,
                None,
            );
            assert!(plain.contains("http://127.0.0.1:50051/"), "{plain}");
            assert!(
                !plain.contains("/srv/p/certs") && !plain.contains(DEMO_PASSWORD),
                "{plain}"
            );
        }
        let fr = banner(Lang::Fr, served(), dir, true, None);
        assert!(
            fr.contains("EN CLAIR") && fr.contains(" --lang fr "),
            "{fr}"
        );
        assert!(plaintext_warning(Lang::Fr).starts_with("ATTENTION : "));
        assert!(plaintext_warning(Lang::En).starts_with("WARNING: serving PLAINTEXT"));
    }
}
