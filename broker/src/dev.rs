//! `passerelle dev`: the embedded default in one command. A SQLite database in
//! a data folder, one rules mutuelle, one native gRPC mutuelle simulated
//! in-process, seeded schemes, members and products.

use std::net::SocketAddr;
use std::path::Path;

use passerelle_adapters::sim::SimMutuelle;
use passerelle_domain::{Member, Product};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::audit::now_ms;
use crate::config::Config;
use crate::server::{self, Running, StartError};
use crate::store::sqlite::SqliteStore;

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

/// The dev configuration with the simulated partner's endpoint filled in.
pub fn config(listen: SocketAddr, sim: SocketAddr) -> Config {
    let text = CONFIG.replace("{SIM_ENDPOINT}", &format!("http://{sim}"));
    let mut cfg: Config = toml::from_str(&text).expect("dev config parses");
    cfg.listen = listen;
    cfg.check().expect("dev config is valid");
    cfg
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

/// Starts the simulated gRPC mutuelle of the dev setup.
pub async fn start_sim() -> std::io::Result<(SimMutuelle, SocketAddr)> {
    let sim = SimMutuelle::new(
        "MUT-ENSEIGNANTS",
        members()
            .into_iter()
            .filter(|m| m.mutuelle_id == "MUT-ENSEIGNANTS")
            .collect(),
        sim_products(),
    );
    let (addr, _task) = sim.clone().start().await?;
    Ok((sim, addr))
}

/// Starts the dev broker: data in `data_dir`, serving on `listen`.
pub async fn start(data_dir: &Path, listen: SocketAddr) -> Result<Running, StartError> {
    let (_sim, sim_addr) = start_sim().await?;
    let cfg = config(listen, sim_addr);
    std::fs::create_dir_all(data_dir)?;
    let store = std::sync::Arc::new(SqliteStore::open(&data_dir.join("passerelle.db"))?);
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        StartError::Config(format!("listen {listen}: {e} (try --listen 127.0.0.1:0)"))
    })?;
    let running = server::start_with_store(&cfg, store, listener).await?;
    running
        .broker
        .store()
        .upsert_members(&members(), now_ms())
        .await?;
    Ok(running)
}

/// What `dev` prints once it serves.
pub fn banner(addr: SocketAddr, data_dir: &Path) -> String {
    format!(
        r#"passerelle dev broker listening on {addr}
data: {data}/passerelle.db (SQLite)
schemes: CNSS, INAM, CANAM (delegates CMSS, INPS)
mutuelles: MUT-SOLIDARITE (rules, adjudicated by passerelle), MUT-ENSEIGNANTS (grpc, simulated)
members: CNSS TG-1001 and TG-1002 at MUT-SOLIDARITE; INAM TG-2001 and CMSS ML-3001 at MUT-ENSEIGNANTS

try:
  grpcurl -plaintext {addr} list
  grpcurl -plaintext -d '{{"scheme_id":"CNSS","beneficiary_id":"TG-1001","date_of_care":"2026-11-20"}}' \
    {addr} passerelle.scheme.v1.SchemeService/CheckEligibility

Ctrl-C stops."#,
        data = data_dir.display()
    )
}
