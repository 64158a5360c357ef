//! A broker in a process of its own: this binary again, started with the
//! hidden `--serve-broker` option. The catch-up and the scale run's
//! statement exports (by pages through gRPC, and from the console over
//! HTTPS) run on one so that the broker's peak RSS is its own,
//! not that of the simulated partner (which keeps an answer per claim for
//! its idempotency), of the load generator and of the other brokers
//! besides, which stay in the benchmark's process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use passerelle_broker::dev::{self, SimAddrs};
use passerelle_broker::store::Store;
use passerelle_broker::store::sqlite::SqliteStore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// Where a child broker keeps its data.
pub enum ChildStore {
    /// SQLite in its folder.
    Sqlite,
    /// A PostgreSQL schema the parent migrated, with a pool of
    /// `pool_size`. Its retention job keeps every audit row, as the
    /// parent's brokers' (`pg_broker` in main.rs).
    Postgres {
        url: String,
        schema: String,
        pool_size: u16,
    },
}

/// The child's side: serves the dev broker (plaintext, its store as
/// `store` says) with the simulated partners at `sims` (their secrets in
/// `dir/secrets`) and, if given, `[retry] max_per_second`; with `console`,
/// over mutual TLS (the dev certificates in `dir/certs`) and with the
/// console. Prints its address on one line (then the console's), and
/// stops when its stdin closes (so it never outlives the benchmark).
pub async fn serve(
    dir: &Path,
    sims: SimAddrs,
    retry_per_second: Option<u32>,
    store: ChildStore,
    console: bool,
) {
    let any = "127.0.0.1:0".parse().expect("addr");
    let mut cfg = dev::config(any, sims, &dir.join("secrets"));
    if console {
        cfg.console = Some(passerelle_broker::config::ConsoleConfig { listen: any });
    }
    let store: Arc<dyn Store> = match store {
        ChildStore::Sqlite => {
            Arc::new(SqliteStore::open(&dir.join("passerelle.db")).expect("SQLite store"))
        }
        ChildStore::Postgres {
            url,
            schema,
            pool_size,
        } => {
            cfg.retention.audit_days = 0;
            Arc::new(crate::postgres::pg_store_on(
                &url,
                &schema,
                usize::from(pool_size),
            ))
        }
    };
    if let Some(pace) = retry_per_second {
        cfg.retry.max_per_second = pace;
    }
    // The outage's end is noticed within a second, as the first retries'
    // back-off did before the circuit breaker: the catch-up figures stay
    // comparable (the dev config keeps a failing partner's circuit open
    // 10 s, production 30 s by default).
    cfg.breaker.open_ms = 1000;
    let running = dev::start_with_config(dir, cfg, !console, store)
        .await
        .expect("broker");
    match running.console_addr {
        Some(web) => println!("{} {web}", running.addr),
        None => println!("{}", running.addr),
    }
    let _ =
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
            .await;
    running.shutdown().await;
}

/// The benchmark's side of a child broker.
pub struct ChildBroker {
    pub addr: std::net::SocketAddr,
    /// The console's address, when it serves one.
    pub console: Option<std::net::SocketAddr>,
    pub pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl ChildBroker {
    /// Starts the child (with `console`, over TLS and with the console:
    /// [`serve`]) and waits for its address.
    pub async fn start(
        dir: &Path,
        sims: SimAddrs,
        retry_per_second: Option<u32>,
        store: ChildStore,
        console: bool,
    ) -> ChildBroker {
        let exe: PathBuf = std::env::current_exe().expect("own executable");
        let mut cmd = Command::new(exe);
        cmd.arg("--serve-broker")
            .arg(dir)
            .arg("--sims")
            .arg(format!("{},{},{}", sims.grpc, sims.fhir, sims.xml));
        if let Some(pace) = retry_per_second {
            cmd.arg("--catchup-pace").arg(pace.to_string());
        }
        if console {
            cmd.arg("--serve-console");
        }
        if let ChildStore::Postgres {
            url,
            schema,
            pool_size,
        } = store
        {
            cmd.arg("--postgres")
                .arg(url)
                .arg("--serve-schema")
                .arg(schema)
                .arg("--pg-pool")
                .arg(pool_size.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the child broker");
        let pid = child.id().expect("child pid");
        let stdout = child.stdout.take().expect("child stdout");
        let line = BufReader::new(stdout)
            .lines()
            .next_line()
            .await
            .expect("child stdout")
            .expect("the child broker exited before serving");
        let mut addrs = line.split_whitespace();
        let addr = addrs
            .next()
            .and_then(|a| a.parse().ok())
            .expect("child broker address");
        let console = addrs
            .next()
            .map(|a| a.parse().expect("child console address"));
        let stdin = child.stdin.take();
        ChildBroker {
            addr,
            console,
            pid,
            child,
            stdin,
        }
    }

    /// Closes its stdin and waits for it to shut down.
    pub async fn stop(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().await.expect("child broker");
        assert!(status.success(), "child broker: {status}");
    }
}

/// `--sims GRPC,FHIR,XML` as the parent passes it.
pub fn parse_sims(s: &str) -> SimAddrs {
    let a: Vec<std::net::SocketAddr> = s
        .split(',')
        .map(|a| a.parse().expect("--sims: three addresses"))
        .collect();
    assert_eq!(a.len(), 3, "--sims: three addresses");
    SimAddrs {
        grpc: a[0],
        fhir: a[1],
        xml: a[2],
    }
}
