//! Shared harness: a real broker on 127.0.0.1:0 with a SQLite file in a
//! temporary folder, a rules mutuelle (MUT-R), and a simulated native gRPC
//! mutuelle (MUT-G) on its own socket. Both mutuelles declare the same
//! product, so that the money cases can run against either.

#![allow(dead_code)]

pub mod process;
pub mod proxy;
pub mod webdriver;

use std::net::SocketAddr;
use std::time::Duration;

use passerelle_adapters::sim::{Mode, SimMutuelle};
use passerelle_broker::config::Config;
use passerelle_broker::server::{self, Running};
use passerelle_broker::store::sqlite::SqliteStore;
use passerelle_domain::{Member, Product};
use passerelle_proto::common::v1::{CareCategory, Payee, ReasonCode, SchemeLineOutcome};
use passerelle_proto::scheme::v1 as pb;
use pb::scheme_service_client::SchemeServiceClient;
use tonic::transport::Channel;

pub const PRODUCT: &str = r#"
mutuelle_id = "{MUT}"
id = "BASE"
version = 1
name = "Base"
valid_from = "2025-01-01"
currency = "XOF"
beneficiary_year_limit = 10000
excluded_diagnoses = ["Z41"]

[[categories]]
category = "consultation"
tm_rate_bp = 10000

[[categories]]
category = "pharmacy"
tm_rate_bp = 5000

[[categories]]
category = "hospitalisation"
tm_rate_bp = 10000
overrun_rate_bp = 5000

[[categories]]
category = "lab"
tm_rate_bp = 10000

[[categories]]
category = "optical"
tm_rate_bp = 10000
out_of_basket_rate_bp = 6000

[[categories]]
category = "maternity"
tm_rate_bp = 10000
waiting_days = 270
"#;

pub fn product(mutuelle: &str) -> Product {
    toml::from_str(&PRODUCT.replace("{MUT}", mutuelle)).expect("test product")
}

fn member(
    mutuelle: &str,
    number: &str,
    beneficiary: &str,
    enrolled: &str,
    paid_until: &str,
) -> Member {
    toml::from_str(&format!(
        r#"
mutuelle_id = "{mutuelle}"
scheme_id = "CNSS"
beneficiary_id = "{beneficiary}"
member_number = "{number}"
household_id = "H-{number}"
paid_until = "{paid_until}"
products = [{{ product_id = "BASE", start = "{enrolled}" }}]
"#
    ))
    .expect("test member")
}

/// Members of both mutuelles; beneficiary ids say which.
pub fn members() -> Vec<Member> {
    let mut out = Vec::new();
    for (m, p) in [("MUT-R", "R"), ("MUT-G", "G")] {
        out.push(member(
            m,
            &format!("{p}-1"),
            &format!("{p}-OK"),
            "2025-01-01",
            "2026-12-31",
        ));
        out.push(member(
            m,
            &format!("{p}-2"),
            &format!("{p}-NEW"),
            "2026-10-01",
            "2026-12-31",
        ));
        out.push(member(
            m,
            &format!("{p}-3"),
            &format!("{p}-UNPAID"),
            "2025-01-01",
            "2026-06-30",
        ));
        out.push(member(
            m,
            &format!("{p}-4"),
            &format!("{p}-RACE"),
            "2025-01-01",
            "2026-12-31",
        ));
    }
    out
}

pub fn config_text(sim: SocketAddr, deadline_ms: u64) -> String {
    config_text_with_retry(sim, deadline_ms, 100)
}

/// The test config with a given first back-off (the cap is four times it).
pub fn config_text_with_retry(sim: SocketAddr, deadline_ms: u64, base_ms: u64) -> String {
    config_text_paced(sim, deadline_ms, base_ms, 2000)
}

/// [`config_text_with_retry`] with `[retry] max_per_second`.
pub fn config_text_paced(sim: SocketAddr, deadline_ms: u64, base_ms: u64, pace: u32) -> String {
    let max_ms = base_ms * 4;
    let product_r = PRODUCT
        .replace("{MUT}", "MUT-R")
        .replace("[[categories]]", "[[products.categories]]");
    format!(
        r#"
listen = "127.0.0.1:0"
plaintext = true


[store]
sqlite = "passerelle.db"

[retry]
base_ms = {base_ms}
max_ms = {max_ms}
poll_ms = 50
max_per_second = {pace}

# Off in these tests of other features (backlogs of a partner down); the
# circuit's own tests turn it on (operations.rs, BREAKER_OFF).
[breaker]
failures = 0

[[schemes]]
id = "CNSS"
currency = "XOF"

[[schemes]]
id = "INAM"
currency = "XOF"

[[partners]]
id = "MUT-R"
adapter = "rules"

[[partners]]
id = "MUT-G"
adapter = "grpc"
deadline_ms = {deadline_ms}

[partners.grpc]
endpoint = "http://{sim}"
timeout_ms = {deadline_ms}

[[products]]
{product_r}
"#
    )
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub sim: SimMutuelle,
    pub client: SchemeServiceClient<Channel>,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with_deadline(2000).await
    }

    pub async fn start_with_deadline(deadline_ms: u64) -> Harness {
        Self::start_with(deadline_ms, 100).await
    }

    /// A partner deadline and a first retry back-off, in ms.
    pub async fn start_with(deadline_ms: u64, retry_base_ms: u64) -> Harness {
        Self::start_paced(deadline_ms, retry_base_ms, 2000).await
    }

    /// [`Harness::start_with`] with the retry worker's pace, claims/s.
    pub async fn start_paced(deadline_ms: u64, retry_base_ms: u64, pace: u32) -> Harness {
        Self::start_config(|sim| config_text_paced(sim, deadline_ms, retry_base_ms, pace)).await
    }

    /// A harness whose config is `text(simulated MUT-G's address)`.
    pub async fn start_config(text: impl FnOnce(SocketAddr) -> String) -> Harness {
        let sim = SimMutuelle::new(
            "MUT-G",
            members()
                .into_iter()
                .filter(|m| m.mutuelle_id == "MUT-G")
                .collect(),
            vec![product("MUT-G")],
        );
        let (sim_addr, _task) = sim.clone().start().await.expect("sim starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg: Config = toml::from_str(&text(sim_addr)).expect("config");
        cfg.check().expect("config valid");
        let store =
            std::sync::Arc::new(SqliteStore::open(&dir.path().join("p.db")).expect("store"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let running = server::start_with_store(&cfg, dir.path(), store, listener)
            .await
            .expect("broker starts");
        running
            .broker
            .store()
            .upsert_members(&members(), 0)
            .await
            .expect("roster");
        let addr = running.addr;
        let client = SchemeServiceClient::new(channel(addr).await);
        Harness {
            dir,
            running: Some(running),
            addr,
            sim,
            client,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// The audit rows so far (after flushing the writer).
    pub async fn audit(&self) -> Vec<passerelle_broker::store::AuditEntry> {
        audit_rows(&self.running().broker).await
    }

    pub fn set_partner_mode(&self, m: Mode) {
        self.sim.set_mode(m);
    }

    pub async fn coordinate(
        &self,
        req: pb::CoordinateClaimRequest,
    ) -> Result<pb::ClaimResult, tonic::Status> {
        self.client
            .clone()
            .coordinate_claim(req)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn get(&self, claim_id: &str) -> Result<pb::ClaimResult, tonic::Status> {
        self.client
            .clone()
            .get_claim(pb::GetClaimRequest {
                scheme_id: "CNSS".into(),
                claim_id: claim_id.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Waits (long polling, no sleeps) until the claim reaches `state`.
    pub async fn wait_state(&self, claim_id: &str, state: pb::ClaimState) -> pb::ClaimResult {
        wait_state(&mut self.client.clone(), "CNSS", claim_id, state).await
    }
}

/// Long-polls ListChangedClaims until the claim is in `state` (30 s at most).
pub async fn wait_state(
    client: &mut SchemeServiceClient<Channel>,
    scheme: &str,
    claim_id: &str,
    state: pb::ClaimState,
) -> pb::ClaimResult {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut cursor = String::new();
    loop {
        let page = client
            .list_changed_claims(pb::ListChangedClaimsRequest {
                scheme_id: scheme.into(),
                cursor: cursor.clone(),
                page_size: 100,
                wait_ms: 5000,
            })
            .await
            .expect("list changed")
            .into_inner();
        if let Some(c) = page
            .claims
            .iter()
            .rev()
            .find(|c| c.claim_id == claim_id && c.state == state as i32)
        {
            return c.clone();
        }
        cursor = page.next_cursor;
        assert!(
            tokio::time::Instant::now() < deadline,
            "claim {claim_id} never reached {state:?}"
        );
    }
}

#[derive(Clone)]
pub struct L {
    pub category: CareCategory,
    pub b: i64,
    pub e: i64,
    pub s: i64,
    pub outcome: SchemeLineOutcome,
    pub qty: u32,
}

pub fn covered(category: CareCategory, b: i64, e: i64, s: i64) -> L {
    L {
        category,
        b,
        e,
        s,
        outcome: SchemeLineOutcome::Covered,
        qty: 1,
    }
}

pub fn claim(claim_id: &str, beneficiary: &str, lines: &[L]) -> pb::CoordinateClaimRequest {
    pb::CoordinateClaimRequest {
        scheme_id: "CNSS".into(),
        claim_id: claim_id.into(),
        provider_id: "CHU-SO".into(),
        invoice_number: format!("INV-{claim_id}"),
        payee: Payee::Provider as i32,
        beneficiary_id: beneficiary.into(),
        date_of_care: "2026-11-20".into(),
        currency: "XOF".into(),
        lines: lines
            .iter()
            .map(|l| pb::ClaimLine {
                act_code: "ACT".into(),
                care_category: l.category as i32,
                quantity: l.qty,
                billed: l.b,
                tariff_base: l.e,
                scheme_share: l.s,
                scheme_outcome: l.outcome as i32,
                scheme_reason: String::new(),
            })
            .collect(),
        ..Default::default()
    }
}

/// CNSS's eligibility question for a beneficiary on 2026-11-20.
pub fn elig(beneficiary: &str) -> pb::CheckEligibilityRequest {
    pb::CheckEligibilityRequest {
        scheme_id: "CNSS".into(),
        beneficiary_id: beneficiary.into(),
        date_of_care: "2026-11-20".into(),
        ..Default::default()
    }
}

pub fn shares(r: &pb::ClaimResult) -> Vec<i64> {
    r.lines.iter().map(|l| l.mutuelle_share).collect()
}

pub fn codes(r: &pb::ClaimResult, line: usize) -> Vec<ReasonCode> {
    r.lines[line]
        .reasons
        .iter()
        .map(|x| ReasonCode::try_from(x.code).unwrap_or(ReasonCode::Unspecified))
        .collect()
}

/// S + M + P = B on every line and in the totals; every share >= 0; M <= R.
pub fn assert_balanced(r: &pb::ClaimResult) {
    for l in &r.lines {
        assert_eq!(
            l.scheme_share + l.mutuelle_share + l.patient_share,
            l.billed,
            "line {}",
            l.sequence
        );
        assert!(l.mutuelle_share >= 0 && l.patient_share >= 0 && l.scheme_share >= 0);
        assert!(l.mutuelle_share <= l.remainder);
        assert_eq!(l.remainder, l.ticket_moderateur + l.overrun);
    }
    let t = r.totals.as_ref().expect("totals");
    assert_eq!(
        t.scheme_share + t.mutuelle_share + t.patient_share,
        t.billed
    );
    assert_eq!(
        t.mutuelle_share,
        r.lines.iter().map(|l| l.mutuelle_share).sum::<i64>()
    );
}

pub fn state(r: &pb::ClaimResult) -> pb::ClaimState {
    pb::ClaimState::try_from(r.state).unwrap_or(pb::ClaimState::Unspecified)
}

/// A client channel to a broker.
pub async fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

/// The test config on PostgreSQL (a schema of its own), for processes.
pub fn config_text_pg(
    sim: SocketAddr,
    deadline_ms: u64,
    base_ms: u64,
    pg: &passerelle_broker::config::PostgresConfig,
) -> String {
    format!(
        "{}\n[store.postgres]\nurl = \"{}\"\nschema = \"{}\"\npool_size = 8\nwait_timeout_ms = 3000\n",
        config_text_with_retry(sim, deadline_ms, base_ms),
        pg.url,
        pg.schema.clone().unwrap_or_default()
    )
}

/// A fresh, migrated PostgreSQL schema for a test, or `None` (outside CI)
/// when PostgreSQL is not reachable.
pub async fn fresh_postgres() -> Option<passerelle_broker::config::PostgresConfig> {
    let cfg = passerelle_broker::store::testing::postgres_config();
    let store =
        match passerelle_broker::store::postgres::PgStore::new(&cfg, std::path::Path::new(".")) {
            Ok(s) => s,
            Err(e) => {
                passerelle_broker::store::testing::unreachable(e);
                return None;
            }
        };
    match store.migrate().await {
        Ok(_) => Some(cfg),
        Err(e) => {
            passerelle_broker::store::testing::unreachable(e);
            None
        }
    }
}

/// A simulated MUT-G with the test members and product.
pub async fn start_sim() -> (passerelle_adapters::sim::SimMutuelle, SocketAddr) {
    let sim = SimMutuelle::new(
        "MUT-G",
        members()
            .into_iter()
            .filter(|m| m.mutuelle_id == "MUT-G")
            .collect(),
        vec![product("MUT-G")],
    );
    let (addr, _task) = sim.clone().start().await.expect("sim starts");
    (sim, addr)
}

/// A mutual TLS channel to a broker, as the party `role:id`, with the
/// certificates in `certs` (as `passerelle certs` or `dev` name them).
pub async fn tls_channel(
    addr: SocketAddr,
    certs: &std::path::Path,
    role: passerelle_broker::identity::Role,
    id: &str,
) -> Result<Channel, tonic::transport::Error> {
    let (cert, key) = passerelle_broker::pki::Pki::new(certs).client_paths(role, id);
    tls_channel_with(addr, &certs.join("ca.crt"), &cert, &key).await
}

/// [`tls_channel`] from a given local address (another loopback address
/// such as 127.0.0.2 is another peer to the broker).
pub async fn tls_channel_from(
    addr: SocketAddr,
    certs: &std::path::Path,
    role: passerelle_broker::identity::Role,
    id: &str,
    local: std::net::IpAddr,
) -> Result<Channel, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let (cert, key) = passerelle_broker::pki::Pki::new(certs).client_paths(role, id);
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(certs.join("ca.crt")).unwrap(),
        ))
        .identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ));
    let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .local_address(Some(local))
        .tls_config(tls)?;
    bounded_connect(addr, endpoint.connect()).await
}

/// A bound, not a wait, on a TLS test channel's connection: a handshake
/// the broker never finishes fails the test by name instead of holding the
/// run until CI's limit. Calls are not bounded on the channel: a client
/// timeout would end a hung call with an error status, which the tests
/// that expect the broker to cut or refuse a call would take for its
/// answer (`try_call` bounds its call with a panic instead).
const TLS_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

async fn bounded_connect(
    addr: SocketAddr,
    connect: impl std::future::Future<Output = Result<Channel, tonic::transport::Error>>,
) -> Result<Channel, tonic::transport::Error> {
    tokio::time::timeout(TLS_BOUND, connect)
        .await
        .unwrap_or_else(|_| panic!("no TLS connection to {addr} within {TLS_BOUND:?}"))
}

/// A TLS channel with explicit files.
pub async fn tls_channel_with(
    addr: SocketAddr,
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Channel, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
        .identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ));
    let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?;
    bounded_connect(addr, endpoint.connect()).await
}

/// A broker on mutual TLS, with a development PKI in a temporary folder:
/// clients for CNSS, INAM, CANAM and its delegates CMSS and INPS, both
/// mutuelles, and the operator "ops".
pub struct TlsHarness {
    pub dir: tempfile::TempDir,
    pub pki: passerelle_broker::pki::Pki,
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub sim: SimMutuelle,
    /// The broker's configuration.
    pub cfg: Config,
}

impl TlsHarness {
    pub async fn start() -> TlsHarness {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(customize: impl FnOnce(&mut Config)) -> TlsHarness {
        use passerelle_broker::config::{OperatorConfig, SchemeConfig, TlsConfig};
        use passerelle_broker::identity::Role;
        let (sim, sim_addr) = start_sim().await;
        let dir = tempfile::tempdir().unwrap();
        let pki = passerelle_broker::pki::Pki::new(dir.path().join("certs"));
        pki.init_ca().unwrap();
        pki.issue_server(&["localhost".into()], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        for (role, id) in [
            (Role::Scheme, "CNSS"),
            (Role::Scheme, "INAM"),
            (Role::Scheme, "CANAM"),
            (Role::Scheme, "CMSS"),
            (Role::Scheme, "INPS"),
            (Role::Mutuelle, "MUT-R"),
            (Role::Mutuelle, "MUT-G"),
            (Role::Operator, "ops"),
        ] {
            pki.issue_client(role, id, 30).unwrap();
        }
        let mut cfg: Config = toml::from_str(&config_text(sim_addr, 2000)).unwrap();
        cfg.plaintext = false;
        cfg.tls = Some(TlsConfig {
            cert: pki.dir().join("server.crt"),
            key: pki.dir().join("server.key"),
            client_ca: pki.ca_cert(),
            crls: vec![pki.crl()],
            reload_interval_s: 0,
            handshake_timeout_ms: 5000,
        });
        for (id, parent) in [
            ("CANAM", None),
            ("CMSS", Some("CANAM")),
            ("INPS", Some("CANAM")),
        ] {
            cfg.schemes.push(SchemeConfig {
                id: id.into(),
                name: String::new(),
                currency: "XOF".into(),
                parent: parent.map(String::from),
            });
        }
        cfg.operators = vec![OperatorConfig {
            id: "ops".into(),
            name: String::new(),
        }];
        customize(&mut cfg);
        cfg.check().expect("config valid");
        let store: std::sync::Arc<dyn passerelle_broker::store::Store> =
            std::sync::Arc::new(SqliteStore::open(&dir.path().join("p.db")).unwrap());
        let mut roster = members();
        let mut delegate = roster
            .iter()
            .find(|m| m.member_number == "R-1")
            .unwrap()
            .clone();
        delegate.scheme_id = "CMSS".into();
        delegate.beneficiary_id = "ML-CMSS-1".into();
        delegate.member_number = "R-CMSS".into();
        roster.push(delegate);
        store.upsert_members(&roster, 0).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = server::start_with_store(&cfg, dir.path(), store, listener)
            .await
            .expect("broker starts");
        let addr = running.addr;
        TlsHarness {
            dir,
            pki,
            running: Some(running),
            addr,
            sim,
            cfg,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn certs(&self) -> &std::path::Path {
        self.pki.dir()
    }

    /// A channel as `role:id` (its certificate must exist).
    pub async fn as_(&self, role: passerelle_broker::identity::Role, id: &str) -> Channel {
        tls_channel(self.addr, self.certs(), role, id)
            .await
            .expect("tls channel")
    }

    /// The audit rows so far (after flushing the writer).
    pub async fn audit(&self) -> Vec<passerelle_broker::store::AuditEntry> {
        audit_rows(&self.running().broker).await
    }
}

/// A running broker's audit rows so far, after flushing its writer.
pub async fn audit_rows(
    b: &passerelle_broker::service::Broker,
) -> Vec<passerelle_broker::store::AuditEntry> {
    b.audit().flush().await;
    b.store()
        .read_audit(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}
