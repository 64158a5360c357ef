//! The broker's clock: every time the service stores (leases, back-offs,
//! deadlines of a claim, audit rows, retention) is read here, never from the
//! system directly, so that lifecycle tests run under tokio's paused clock
//! (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`) instead of
//! waiting for real.

use passerelle_domain::Date;

/// Where the broker reads the time of day.
#[derive(Clone, Copy, Debug)]
pub struct Clock(Source);

#[derive(Clone, Copy, Debug)]
enum Source {
    /// The system's clock (a running broker).
    System,
    /// A fixed start plus the time tokio's clock has moved since (tests).
    Tokio {
        base_ms: i64,
        start: tokio::time::Instant,
    },
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock that reads `base_ms` now and then moves with tokio's clock:
    /// under a paused runtime it moves only when the test advances it.
    /// Call it inside a runtime with tokio's `test-util` time control.
    pub fn following_tokio(base_ms: i64) -> Clock {
        Clock(Source::Tokio {
            base_ms,
            start: tokio::time::Instant::now(),
        })
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self.0 {
            Source::System => crate::audit::now_ms(),
            Source::Tokio { base_ms, start } => base_ms + start.elapsed().as_millis() as i64,
        }
    }

    /// Today's date (UTC).
    pub fn today(&self) -> Date {
        match self.0 {
            #[allow(
                clippy::disallowed_methods,
                reason = "the broker's clock: the one place that reads today's date"
            )]
            Source::System => time::OffsetDateTime::now_utc().date(),
            Source::Tokio { .. } => {
                time::OffsetDateTime::from_unix_timestamp_nanos(self.now_ms() as i128 * 1_000_000)
                    .map(|t| t.date())
                    .unwrap_or(time::Date::MIN)
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_test_clock_moves_with_tokio_time_only() {
        // 2026-03-10T23:59:00Z
        let clock = Clock::following_tokio(1_773_187_140_000);
        assert_eq!(clock.now_ms(), 1_773_187_140_000);
        assert_eq!(passerelle_domain::date::format(clock.today()), "2026-03-10");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(clock.now_ms(), 1_773_187_200_000);
        assert_eq!(passerelle_domain::date::format(clock.today()), "2026-03-11");
    }
}
