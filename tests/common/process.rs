//! Real broker processes: `passerelle migrate` and `passerelle serve` of the
//! built binary, killed with SIGKILL when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

pub struct Broker {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Lines of the broker's stderr, drained on a thread.
    pub stderr: Option<std::sync::mpsc::Receiver<String>>,
}

impl Broker {
    /// kill -9, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `passerelle migrate --config FILE`.
pub fn migrate(config: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["--lang", "en", "migrate", "--config"])
        .arg(config)
        .output()
        .expect("migrate runs");
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its last line (a first one says when it created the database).
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.lines()
            .last()
            .is_some_and(|l| l.starts_with("schema at version ")),
        "{said}"
    );
}

/// `passerelle serve --config FILE`, optionally with a failpoint; returns
/// once the broker printed its address.
pub fn spawn(config: &Path, failpoint: Option<&str>) -> Broker {
    spawn_under(&[], config, failpoint)
}

/// [`spawn`] with more arguments to `serve` (`--log-format json`).
pub fn spawn_with(config: &Path, args: &[&str]) -> Broker {
    spawn_full(&[], config, None, args)
}

/// [`spawn`] under a wrapper command that execs the broker (for example
/// `prlimit --nofile=256:256 --`): the child's pid is the broker's.
pub fn spawn_under(wrapper: &[&str], config: &Path, failpoint: Option<&str>) -> Broker {
    spawn_full(wrapper, config, failpoint, &[])
}

fn spawn_full(wrapper: &[&str], config: &Path, failpoint: Option<&str>, args: &[&str]) -> Broker {
    let mut cmd = match wrapper.split_first() {
        None => Command::new(env!("CARGO_BIN_EXE_passerelle")),
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(env!("CARGO_BIN_EXE_passerelle"));
            c
        }
    };
    // Log lines at the default level, whatever the tests run under.
    cmd.args(["--lang", "en", "serve", "--config"])
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match failpoint {
        Some(f) => cmd.env("PASSERELLE_FAILPOINT", f),
        None => cmd.env_remove("PASSERELLE_FAILPOINT"),
    };
    let mut child = cmd.spawn().expect("broker starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let line = BufReader::new(stdout).lines().next();
    let line = match line {
        Some(Ok(l)) => l,
        _ => {
            let err: Vec<String> = rx.try_iter().collect();
            panic!("broker did not start: {}", err.join("\n"));
        }
    };
    let addr = line
        .strip_prefix("passerelle listening on ")
        .unwrap_or_else(|| panic!("unexpected {line:?}"))
        .parse()
        .unwrap();
    Broker {
        child,
        addr,
        stderr: Some(rx),
    }
}

/// Waits (on a blocking thread) until the broker's stderr shows `needle`.
pub async fn wait_stderr(b: &mut Broker, needle: &'static str) -> bool {
    let rx = b.stderr.take().expect("stderr not taken yet");
    tokio::task::spawn_blocking(move || rx.iter().any(|l| l.contains(needle)))
        .await
        .unwrap()
}

/// Loads the test roster of both mutuelles through the broker's API.
pub async fn load_roster(addr: SocketAddr) {
    use passerelle_proto::roster::v1 as r;
    let mut roster = r::roster_service_client::RosterServiceClient::new(super::channel(addr).await);
    for mutuelle in ["MUT-R", "MUT-G"] {
        let members = super::members()
            .into_iter()
            .filter(|m| m.mutuelle_id == mutuelle)
            .map(|m| r::Member {
                scheme_id: m.scheme_id,
                beneficiary_id: m.beneficiary_id,
                member_number: m.member_number,
                household_id: m.household_id,
                contribution_paid_until: m
                    .paid_until
                    .map(passerelle_domain::date::format)
                    .unwrap_or_default(),
                products: m
                    .products
                    .iter()
                    .map(|p| r::ProductPeriod {
                        product_id: p.product_id.clone(),
                        start_date: passerelle_domain::date::format(p.start),
                        end_date: String::new(),
                    })
                    .collect(),
            })
            .collect();
        roster
            .upsert_members(r::UpsertMembersRequest {
                mutuelle_id: mutuelle.into(),
                members,
            })
            .await
            .unwrap();
    }
}

/// A `passerelle dev` process (killed when dropped) and what its banner
/// says.
pub struct Dev {
    child: std::process::Child,
    /// Where it listens (the banner's first line).
    pub addr: SocketAddr,
    /// The rest of its banner.
    pub banner: std::io::Lines<BufReader<std::process::ChildStdout>>,
    /// How far its clock is ahead of the wall clock (see [`dev_at`]).
    pub skew_ms: i64,
}

/// The wall clock, in ms since the epoch.
pub fn wall_ms() -> i64 {
    #[allow(
        clippy::disallowed_methods,
        reason = "a test process reads the wall clock to follow a broker's"
    )]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Dev {
    /// The dev broker's time now, as its clock reads it.
    pub fn now_ms(&self) -> i64 {
        wall_ms() + self.skew_ms
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Dev {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The console's address, from the banner (read up to its line).
    pub fn console_url(&mut self) -> String {
        let line = self.banner_line("console: ");
        let rest = line.split("console: ").nth(1).unwrap();
        rest.split(' ')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string()
    }

    /// The banner's next line that holds `text` (those before it are read).
    pub fn banner_line(&mut self, text: &str) -> String {
        for line in self.banner.by_ref() {
            let line = line.unwrap();
            if line.contains(text) {
                return line;
            }
        }
        panic!("the dev banner has no line with {text:?}")
    }
}

/// `passerelle dev` on ephemeral ports (its metrics too), run in `cwd` with
/// its data in `data_dir` (relative to `cwd`, as a newcomer writes it, or
/// absolute); returns once its banner names its address.
pub fn dev(cwd: &Path, data_dir: &Path) -> Dev {
    spawn_dev(cwd, data_dir, None)
}

/// [`dev`] whose clock starts at `start_ms` and runs from there (the
/// hidden `--clock-start-ms`): what a page shows of "the last 14 days"
/// does not depend on the day the test runs.
pub fn dev_at(cwd: &Path, data_dir: &Path, start_ms: i64) -> Dev {
    spawn_dev(cwd, data_dir, Some(start_ms))
}

fn spawn_dev(cwd: &Path, data_dir: &Path, start_ms: Option<i64>) -> Dev {
    let skew_ms = start_ms.map_or(0, |s| s - wall_ms());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_passerelle"));
    if let Some(s) = start_ms {
        cmd.args(["--lang", "en", "dev", "--clock-start-ms", &s.to_string()]);
    } else {
        cmd.args(["--lang", "en", "dev"]);
    }
    let mut child = cmd
        .current_dir(cwd)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--console-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = banner.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("passerelle dev broker listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .unwrap();
    Dev {
        child,
        addr,
        banner,
        skew_ms,
    }
}
