//! The database's CPU per claim: what the machine's cores spent outside
//! this process (the broker, its load generator and its simulated partners)
//! and outside pgbench (a child of this process, waited for), while claims
//! ran. On this machine that is PostgreSQL and nothing else of note; the
//! idle machine's own background (a few ticks a second) is counted in, for
//! the broker as for P0.
//!
//! Why: the broker, its load generator and PostgreSQL share two cores
//! here, so the broker's claims per second are limited by its own CPU as
//! much as by the database's; P0's client (pgbench) costs little. The
//! database CPU per claim compares the database work alone, which is what
//! counts when PostgreSQL has a machine of its own (as in production).

/// Clock ticks of the kernel's CPU accounting in /proc (`USER_HZ`, which
/// `sysconf(_SC_CLK_TCK)` reports: 100 on x86 and ARM Linux whatever the
/// kernel's own tick; a few old architectures differ, where these figures
/// would be off by that factor). pgbench's start (its connections' backends
/// forked) counts as P0's database CPU: a small excess in runs of seconds,
/// a large one in smoke runs (`-t 10`), whose figures mean nothing.
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Busy ticks of every core (user, nice, system, irq, softirq).
    busy: u64,
    /// Ticks of this process (every thread).
    own: u64,
    /// Ticks of the children this process waited for (pgbench).
    children: u64,
    /// Ticks the hypervisor ran something else while a core of this
    /// machine wanted to run (`steal`): the host's stalls, which no code
    /// of ours causes.
    steal: u64,
}

impl Sample {
    /// `None` where /proc cannot be read (not Linux).
    pub fn now() -> Option<Sample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let busy = [0, 1, 2, 5, 6]
            .iter()
            .map(|i| cpu.get(*i).copied().unwrap_or(0))
            .sum();
        let steal = cpu.get(7).copied().unwrap_or(0);
        let me = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command's closing parenthesis: state is the
        // first (field 3), utime field 14, stime 15, cutime 16, cstime 17.
        let f: Vec<u64> = me
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let at = |n: usize| f.get(n - 3).copied().unwrap_or(0);
        Some(Sample {
            busy,
            own: at(14) + at(15),
            children: at(16) + at(17),
            steal,
        })
    }

    /// CPU seconds spent by everything but this process and its children
    /// since `before`.
    pub fn others_since(&self, before: &Sample) -> f64 {
        let busy = self.busy.saturating_sub(before.busy);
        let ours =
            self.own.saturating_sub(before.own) + self.children.saturating_sub(before.children);
        busy.saturating_sub(ours) as f64 / TICKS_PER_SEC
    }
}

impl Sample {
    /// CPU seconds of this process since `before`.
    pub fn own_since(&self, before: &Sample) -> f64 {
        self.own.saturating_sub(before.own) as f64 / TICKS_PER_SEC
    }

    /// CPU milliseconds the hypervisor took from this machine's cores
    /// since `before` (summed over the cores; at 100 ticks a second, in
    /// steps of 10 ms).
    pub fn steal_ms_since(&self, before: &Sample) -> f64 {
        self.steal.saturating_sub(before.steal) as f64 * 1000.0 / TICKS_PER_SEC
    }
}

/// What the hypervisor took during `window`: its CPU milliseconds stolen,
/// `None` where /proc could not be read.
pub async fn with_steal<T>(window: impl std::future::Future<Output = T>) -> (T, Option<f64>) {
    let before = Sample::now();
    let out = window.await;
    let stolen = before.zip(Sample::now()).map(|(b, a)| a.steal_ms_since(&b));
    (out, stolen)
}

/// Per transaction, from samples around `transactions`, in microseconds:
/// the database's CPU (everything but this process and its children) and
/// this process's own (broker, load generator, simulated partners). `None`
/// without both samples or transactions.
pub fn per_transaction_us(
    before: Option<Sample>,
    after: Option<Sample>,
    transactions: f64,
) -> Option<(f64, f64)> {
    let (b, a) = (before?, after?);
    (transactions > 0.0).then(|| {
        (
            a.others_since(&b) / transactions * 1e6,
            a.own_since(&b) / transactions * 1e6,
        )
    })
}
