//! The two ways of loading a server: closed loop (how much it can do) and
//! open loop (how long an answer takes at a given offered load).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Most calls the open loop keeps waiting at once. Past it the server is
/// far behind the offered load: a further call is counted as shed rather
/// than queued, so that an overload measures as such instead of filling
/// memory with waiting calls.
pub const MAX_OUTSTANDING: usize = 1024;

/// Closed loop: `concurrency` callers, each calling as fast as answers come.
/// Returns calls per second and failed calls.
pub async fn saturate<F, Fut>(concurrency: usize, secs: f64, call: F) -> (f64, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let seq = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (call, seq, errors) = (call.clone(), seq.clone(), errors.clone());
        tasks.spawn(async move {
            let mut done = 0u64;
            while Instant::now() < end {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                if !call(n).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                done += 1;
            }
            done
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done.expect("caller");
    }
    let rps = total as f64 / start.elapsed().as_secs_f64();
    (rps, errors.load(Ordering::Relaxed))
}

/// Latency at one offered load.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub offered_rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// How late the load generator itself sent its calls (p99): a floor
    /// under every latency above, which the server did not cause.
    pub send_late_p99_us: u64,
    /// Calls not sent because `MAX_OUTSTANDING` were already waiting.
    pub shed: u64,
    pub errors: u64,
    /// Not run: the offered load is above the scenario's saturation.
    pub over_capacity: bool,
}

/// When an open loop stops.
pub enum Until {
    Calls(u64),
    Signal(watch::Receiver<bool>),
}

/// Open loop at `rate` calls per second from call number `first`: each call
/// starts at its intended time whatever the earlier ones are doing, and its
/// latency counts from that intended time (no coordinated omission).
///
/// The calls are paced by a thread of their own sleeping on the kernel's
/// high-resolution timer, not by the runtime's timer: tokio's has a 1 ms
/// granularity, so at thousands of calls per second it sent them in bursts
/// once per millisecond, each up to a millisecond late, and that lateness
/// counted in every figure (the bare server's p50 at 0.25 B was 1.4 ms). How
/// late the pacer itself sends is measured and reported (`send_late_p99_us`).
pub async fn open_loop<F, Fut>(rate: f64, until: Until, first: u64, call: F) -> Latency
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let mut lanes = open_loop_lanes(rate, until, first, 1, call).await;
    lanes.pop().expect("one lane")
}

/// [`open_loop`] at `rate` calls per second in all, its calls dealt in
/// turn to `lanes` lanes (call `n` is lane `n % lanes`'s, so that a caller
/// choosing its target by `n` agrees whatever `first`), each lane's
/// latency, sheds and failures counted apart. The lanes share the loop's
/// [`MAX_OUTSTANDING`] waiting calls: a call is shed in its own lane's
/// count when the lanes together have that many waiting.
/// Two targets called in one loop, call by call, meet the same moments of
/// the host: a stall of the machine lands in both lanes' figures, where two
/// loops run one after the other each meet their own.
pub async fn open_loop_lanes<F, Fut>(
    rate: f64,
    until: Until,
    first: u64,
    lanes: usize,
    call: F,
) -> Vec<Latency>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    lanes_with_histograms(rate, until, first, lanes, call)
        .await
        .into_iter()
        .map(|(latency, _)| latency)
        .collect()
}

/// [`open_loop`] with its calls' histogram, so that several loops' calls
/// can be counted as one ([`Pooled`]).
pub async fn open_loop_histogram<F, Fut>(
    rate: f64,
    until: Until,
    first: u64,
    call: F,
) -> (Latency, Histogram<u64>)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let mut lanes = lanes_with_histograms(rate, until, first, 1, call).await;
    lanes.pop().expect("one lane")
}

/// Several open loops' calls counted as one: the latency of all their
/// calls together (not a mean of their p99s), their sheds and failures
/// summed, the pacer's lateness the worst loop's.
pub struct Pooled {
    hist: Histogram<u64>,
    offered_rps: f64,
    send_late_p99_us: u64,
    shed: u64,
    errors: u64,
}

impl Default for Pooled {
    fn default() -> Self {
        Self {
            hist: histogram(),
            offered_rps: 0.0,
            send_late_p99_us: 0,
            shed: 0,
            errors: 0,
        }
    }
}

impl Pooled {
    /// One more loop's calls, as [`open_loop_histogram`] returns them.
    pub fn add(&mut self, (latency, hist): &(Latency, Histogram<u64>)) {
        self.hist
            .add(hist)
            .expect("both are histogram()'s, of the same bounds");
        self.offered_rps = latency.offered_rps;
        self.send_late_p99_us = self.send_late_p99_us.max(latency.send_late_p99_us);
        self.shed += latency.shed;
        self.errors += latency.errors;
    }

    /// The latency of every call added so far.
    pub fn latency(&self) -> Latency {
        Latency::of(
            &self.hist,
            self.offered_rps,
            self.send_late_p99_us,
            self.shed,
            self.errors,
        )
    }
}

impl Latency {
    fn of(
        h: &Histogram<u64>,
        offered_rps: f64,
        send_late_p99_us: u64,
        shed: u64,
        errors: u64,
    ) -> Self {
        Latency {
            offered_rps,
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            send_late_p99_us,
            shed,
            errors,
            over_capacity: false,
        }
    }
}

/// [`open_loop_lanes`], each lane's histogram beside its latency.
async fn lanes_with_histograms<F, Fut>(
    rate: f64,
    until: Until,
    first: u64,
    lanes: usize,
    call: F,
) -> Vec<(Latency, Histogram<u64>)>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let lanes = lanes.max(1);
    let rate = rate.max(1.0);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let hists: Arc<Vec<Mutex<Histogram<u64>>>> =
        Arc::new((0..lanes).map(|_| Mutex::new(histogram())).collect());
    let errors: Arc<Vec<AtomicU64>> = Arc::new((0..lanes).map(|_| AtomicU64::new(0)).collect());
    // A permit per waiting call: when none is left, the call is shed.
    let permits = Arc::new(Semaphore::new(MAX_OUTSTANDING));
    let runtime = tokio::runtime::Handle::current();
    let (done, pacer) = tokio::sync::oneshot::channel();
    {
        let (hists, errors, permits) = (hists.clone(), errors.clone(), permits.clone());
        // A thread of its own, not the runtime's blocking pool: its timer
        // slack is changed below, which no broker work may inherit later.
        std::thread::spawn(move || {
            timely_pacer();
            let mut late = histogram();
            let mut shed = vec![0u64; lanes];
            let start = Instant::now();
            let mut i: u64 = 0;
            loop {
                match &until {
                    Until::Calls(n) if i >= *n => break,
                    Until::Signal(stop) if *stop.borrow() => break,
                    _ => {}
                }
                let lane = ((first + i) % lanes as u64) as usize;
                let intended = start + interval.mul_f64(i as f64);
                let now = Instant::now();
                if intended > now {
                    std::thread::sleep(intended - now);
                }
                late.saturating_record(intended.elapsed().as_micros() as u64);
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let fut = call(first + i);
                        let (hists, errors) = (hists.clone(), errors.clone());
                        runtime.spawn(async move {
                            let ok = fut.await;
                            let us = intended.elapsed().as_micros() as u64;
                            hists[lane].lock().unwrap().saturating_record(us.max(1));
                            if !ok {
                                errors[lane].fetch_add(1, Ordering::Relaxed);
                            }
                            drop(permit);
                        });
                    }
                    Err(_) => shed[lane] += 1,
                }
                i += 1;
            }
            let _ = done.send((shed, late.value_at_quantile(0.99)));
        });
    }
    let (shed, send_late_p99_us) = pacer.await.expect("pacer");
    // Every permit back: every call sent has been answered.
    let _all = permits
        .acquire_many(MAX_OUTSTANDING as u32)
        .await
        .expect("permits");
    (0..lanes)
        .map(|lane| {
            let h = std::mem::replace(&mut *hists[lane].lock().unwrap(), histogram());
            let latency = Latency::of(
                &h,
                rate / lanes as f64,
                send_late_p99_us,
                shed[lane],
                errors[lane].load(Ordering::Relaxed),
            );
            (latency, h)
        })
        .collect()
}

/// Makes the calling thread (the pacer) wake on time: timer slack 1 ns
/// instead of the default 50 us, by which the kernel may delay a sleeping
/// thread's wake-up to batch it with others. Best effort (it needs the right
/// to write the thread's /proc entry): the lateness is measured either way.
///
/// Tried and left out: real-time scheduling of the pacer (SCHED_FIFO by
/// `chrt`). Its wake-ups then preempt the runtime's workers, once per call:
/// its own lateness fell to about 100 us, but the bare server's p99 at half
/// its saturation rose from about 7 ms to 25-200 ms.
fn timely_pacer() {
    // "/proc/thread-self" links to "<pid>/task/<tid>"; the per-thread
    // setting is "/proc/<tid>/timerslack_ns".
    if let Some(tid) = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|t| t.to_string_lossy().into_owned()))
    {
        let _ = std::fs::write(format!("/proc/{tid}/timerslack_ns"), "1");
    }
}

/// Microseconds, 1 us to 2 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram")
}

/// The median of some figures (0 for none): rounds of a measurement.
pub fn median(v: &[f64]) -> f64 {
    let mut r = v.to_vec();
    r.sort_by(f64::total_cmp);
    match r.len() {
        0 => 0.0,
        n if n % 2 == 1 => r[n / 2],
        n => (r[n / 2 - 1] + r[n / 2]) / 2.0,
    }
}

/// Sends `n` calls with `concurrency` callers; returns the failed ones.
pub async fn run_n<F, Fut>(n: u64, concurrency: usize, call: F) -> u64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (call, next, errors) = (call.clone(), next.clone(), errors.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                if !call(i).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    errors.load(Ordering::Relaxed)
}

/// `/proc` entry of process `pid`, or of this process.
fn proc_of(pid: Option<u32>) -> String {
    pid.map_or_else(|| "/proc/self".to_string(), |p| format!("/proc/{p}"))
}

/// Peak resident set of process `pid` (None: this one) since the last
/// [`reset_peak_rss`], KiB.
pub fn peak_rss_kib(pid: Option<u32>) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// Resident set of process `pid` (None: this one) now, KiB.
pub fn rss_kib(pid: Option<u32>) -> u64 {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: Option<u32>, field: &str) -> u64 {
    std::fs::read_to_string(format!("{}/status", proc_of(pid)))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts a new peak-RSS window for process `pid` (None: this one). Linux:
/// "5" to clear_refs resets VmHWM to the current RSS, so that each scenario
/// gets its own peak.
pub fn reset_peak_rss(pid: Option<u32>) {
    let _ = std::fs::write(format!("{}/clear_refs", proc_of(pid)), "5");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loops pooled count their calls together: the p99 of a fast loop of
    /// 99 calls and a slow one of 99 is the slow one's, not a mean of the
    /// two loops' p99s; sheds and failures add up, the pacer's lateness is
    /// the worst loop's.
    #[test]
    fn pooled_loops_count_every_call_once() {
        let window = |us: u64, calls: u64, late: u64, shed: u64, errors: u64| {
            let mut h = histogram();
            for _ in 0..calls {
                h.record(us).unwrap();
            }
            (Latency::of(&h, 100.0, late, shed, errors), h)
        };
        let mut pooled = Pooled::default();
        pooled.add(&window(1_000, 99, 50, 1, 0));
        pooled.add(&window(9_000, 99, 20, 2, 3));
        let l = pooled.latency();
        // The histogram's values are its buckets' highest (three digits).
        let h = histogram();
        assert!(h.equivalent(l.p50_us, 1_000), "p50 {}", l.p50_us);
        assert!(h.equivalent(l.p99_us, 9_000), "p99 {}", l.p99_us);
        assert_eq!((l.shed, l.errors, l.send_late_p99_us), (3, 3, 50));
        assert_eq!(l.offered_rps, 100.0);
        assert_eq!(Pooled::default().latency().p99_us, 0);
    }

    /// Call `n` is lane `n % lanes`'s, from an odd first call too, and
    /// each lane counts its own failures: lane 1's calls all fail here,
    /// lane 0's none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_loops_lanes_take_their_calls_in_turn() {
        let seen: Arc<Vec<Mutex<Vec<u64>>>> =
            Arc::new((0..2).map(|_| Mutex::new(Vec::new())).collect());
        let s = seen.clone();
        let lanes = open_loop_lanes(5_000.0, Until::Calls(101), 11, 2, move |n| {
            let lane = (n % 2) as usize;
            s[lane].lock().unwrap().push(n);
            async move { lane == 0 }
        })
        .await;
        assert_eq!(lanes.len(), 2);
        let mut even = seen[0].lock().unwrap().clone();
        let mut odd = seen[1].lock().unwrap().clone();
        even.sort_unstable();
        odd.sort_unstable();
        assert_eq!(even, (12..112).step_by(2).collect::<Vec<_>>());
        assert_eq!(odd, (11..112).step_by(2).collect::<Vec<_>>());
        assert_eq!((lanes[0].errors, lanes[1].errors), (0, 51));
        assert_eq!((lanes[0].shed, lanes[1].shed), (0, 0));
        assert_eq!(lanes[0].offered_rps, 2_500.0);
        assert!(lanes[0].p99_us >= 1 && lanes[1].p99_us >= 1);
    }
}
