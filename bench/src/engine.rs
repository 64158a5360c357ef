//! What PostgreSQL and the disk did during a measured window: the reads
//! shared buffers missed, checkpoints, the disk's reads and writes, and
//! what the busy sessions waited on (sampled). A figure that moves with
//! the data (eligibility or retention on the seeded store) is explained by
//! these, not guessed. PostgreSQL 15's statistics views; its backends
//! report their counters at most once a second, so a window of a few
//! seconds is approximate by up to a second's worth. Where a view cannot
//! be read (another version, no rights) the window says so.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::postgres::BenchDb;

/// The counters read at each end of a window: PostgreSQL's, `None` where
/// they could not be read; the disks', zero where /proc/diskstats cannot.
#[derive(Clone, Copy, Default)]
struct Counters {
    /// Blocks read outside shared buffers, found in them; checkpoints,
    /// buffers the checkpointer wrote, buffers backends wrote.
    pg: Option<[i64; 5]>,
    /// Sectors read, sectors written, milliseconds busy (summed over the
    /// whole disks).
    disk: [u64; 3],
}

/// A window being watched: counters at its start, and a sampler of
/// pg_stat_activity every 100 ms until [`Watch::finish`].
pub struct Watch {
    client: Option<tokio_postgres::Client>,
    start: Counters,
    began: Instant,
    stop: tokio::sync::watch::Sender<bool>,
    sampler: tokio::task::JoinHandle<(u64, BTreeMap<String, u64>)>,
}

/// What happened in a window.
pub struct Window {
    pub secs: f64,
    /// [`Counters::pg`]'s difference: blocks read from outside shared
    /// buffers (the OS cache or the disk), found in them, checkpoints,
    /// buffers the checkpointer and backends wrote; `None` if either end
    /// could not be read.
    pub pg: Option<[i64; 5]>,
    pub disk_read_mib: f64,
    pub disk_write_mib: f64,
    pub disk_busy_ms: u64,
    pub samples: u64,
    /// Sessions seen per wait (`type:event`, `cpu` when running, and
    /// `autovacuum` for its workers), summed over the samples.
    pub waits: BTreeMap<String, u64>,
}

async fn connect(db: &BenchDb) -> Option<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(client)
}

async fn counters(client: &Option<tokio_postgres::Client>) -> Counters {
    let pg = match client {
        Some(client) => client
            .query_one(
                "SELECT d.blks_read, d.blks_hit, \
                 (b.checkpoints_timed + b.checkpoints_req)::BIGINT, b.buffers_checkpoint, b.buffers_backend \
                 FROM pg_stat_database d, pg_stat_bgwriter b WHERE d.datname = current_database()",
                &[],
            )
            .await
            .ok()
            .and_then(|r| {
                let mut v = [0i64; 5];
                for (i, x) in v.iter_mut().enumerate() {
                    *x = r.try_get(i).ok()?;
                }
                Some(v)
            }),
        None => None,
    };
    Counters { pg, disk: disk() }
}

/// Whole disks' sectors read, sectors written and busy milliseconds.
fn disk() -> [u64; 3] {
    std::fs::read_to_string("/proc/diskstats").map_or([0; 3], |t| disk_of(&t))
}

/// [`disk`] of /proc/diskstats' text: partitions are not added to their
/// disk a second time.
fn disk_of(text: &str) -> [u64; 3] {
    let mut sum = [0u64; 3];
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 13 {
            continue;
        }
        let name = f[2];
        // nvme0n1 is a disk; nvme0n1p1 its partition, nvme0c0n1 a path
        // to it.
        let whole = (name.starts_with("vd") || name.starts_with("sd") || name.starts_with("xvd"))
            && !name.ends_with(|c: char| c.is_ascii_digit())
            || name.starts_with("nvme") && !name[4..].contains(['p', 'c']);
        if !whole {
            continue;
        }
        let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        sum[0] += n(5);
        sum[1] += n(9);
        sum[2] += n(12);
    }
    sum
}

/// Checkpoints PostgreSQL has begun so far, timed and requested (the
/// counter of [`Window::pg`]), `None` where it cannot be read: a span's
/// count is the difference of two reads. The checkpointer reports its
/// counts itself, possibly only once a checkpoint has ended.
pub async fn checkpoints(db: &BenchDb) -> Option<i64> {
    counters(&connect(db).await).await.pg.map(|v| v[2])
}

/// Starts watching.
pub async fn watch(db: &BenchDb) -> Watch {
    let client = connect(db).await;
    let start = counters(&client).await;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let sampler_client = connect(db).await;
    let sampler = tokio::spawn(async move {
        let mut waits = BTreeMap::new();
        let mut samples = 0;
        let Some(c) = sampler_client else {
            return (samples, waits);
        };
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        // A slow sample is not made up for by a burst of them.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => break,
            }
            let rows = c
                .query(
                    "SELECT CASE WHEN backend_type = 'autovacuum worker' THEN 'autovacuum' \
                     WHEN backend_type <> 'client backend' THEN backend_type || ':' || COALESCE(wait_event, 'cpu') \
                     ELSE COALESCE(wait_event_type || ':' || wait_event, 'cpu') END \
                     FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
                     AND (backend_type <> 'client backend' OR state = 'active') \
                     AND backend_type IN ('client backend', 'autovacuum worker', 'checkpointer', 'background writer', 'walwriter') \
                     AND (backend_type IN ('client backend', 'autovacuum worker') OR wait_event IS NULL \
                          OR wait_event NOT IN ('CheckpointerMain', 'BgWriterMain', 'BgWriterHibernate', 'WalWriterMain'))",
                    &[],
                )
                .await;
            if let Ok(rows) = rows {
                samples += 1;
                for r in rows {
                    *waits.entry(r.get::<_, String>(0)).or_insert(0) += 1;
                }
            }
        }
        (samples, waits)
    });
    Watch {
        client,
        start,
        began: Instant::now(),
        stop,
        sampler,
    }
}

impl Watch {
    pub async fn finish(self) -> Window {
        let secs = self.began.elapsed().as_secs_f64();
        let _ = self.stop.send(true);
        let (samples, waits) = self.sampler.await.unwrap_or_default();
        let end = counters(&self.client).await;
        let s = self.start;
        let mib = |sectors: u64| sectors as f64 * 512.0 / (1 << 20) as f64;
        Window {
            secs,
            pg: match (s.pg, end.pg) {
                (Some(a), Some(b)) => Some(std::array::from_fn(|i| b[i] - a[i])),
                _ => None,
            },
            disk_read_mib: mib(end.disk[0].saturating_sub(s.disk[0])),
            disk_write_mib: mib(end.disk[1].saturating_sub(s.disk[1])),
            disk_busy_ms: end.disk[2].saturating_sub(s.disk[2]),
            samples,
            waits,
        }
    }
}

impl Window {
    /// One line: what a reader needs to tell the cache, the disk and the
    /// checkpointer apart.
    pub fn line(&self, calls: u64) -> String {
        let per = |n: i64| n as f64 / calls.max(1) as f64;
        let mut waits: Vec<(&String, &u64)> = self.waits.iter().collect();
        waits.sort_by(|a, b| b.1.cmp(a.1));
        let waits: Vec<String> = waits
            .iter()
            .take(6)
            .map(|(w, n)| format!("{w} {:.2}", **n as f64 / self.samples.max(1) as f64))
            .collect();
        let pg = match self.pg {
            Some([read, hit, checkpoints, by_checkpoint, by_backends]) => format!(
                "shared-buffer misses {read} ({:.1} a call, {:.1}% of reads); checkpoints {checkpoints} ({by_checkpoint} buffers), backends wrote {by_backends} buffers",
                per(read),
                100.0 * read as f64 / (read + hit).max(1) as f64,
            ),
            None => "PostgreSQL's statistics unreadable".to_string(),
        };
        format!(
            "{:.1} s: {pg}; disk read {:.0} MiB, wrote {:.0} MiB, busy {:.0}% (summed over disks); sessions by wait (mean over {} samples): {}",
            self.secs,
            self.disk_read_mib,
            self.disk_write_mib,
            100.0 * self.disk_busy_ms as f64 / (self.secs * 1000.0).max(1.0),
            self.samples,
            if waits.is_empty() {
                "none".to_string()
            } else {
                waits.join(", ")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn disks_are_summed_without_their_partitions() {
        let text = "\
 254       0 vda 100 0 8 0 200 0 16 0 0 30 0 0 0 0 0 0 0
 254       1 vda1 90 0 7 0 190 0 15 0 0 29 0 0 0 0 0 0 0
 259       0 nvme0n1 1 0 2 0 3 0 4 0 0 5 0 0 0 0 0 0 0
 259       1 nvme0n1p1 1 0 2 0 3 0 4 0 0 5 0 0 0 0 0 0 0
   7       0 loop0 9 0 9 0 9 0 9 0 0 9 0 0 0 0 0 0 0";
        assert_eq!(super::disk_of(text), [10, 20, 35]);
    }
}
