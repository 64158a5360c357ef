//! The broker's clock: every time the service stores (leases, back-offs,
//! deadlines of a claim, audit rows, retention) is read here, never from the
//! system directly, so that lifecycle tests run under tokio's paused clock
//! (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`) instead of
//! waiting for real.

use std::sync::atomic::{AtomicI64, Ordering};

use passerelle_domain::Date;

/// Where the broker reads the time of day.
#[derive(Clone, Copy, Debug)]
pub struct Clock(Source);

#[derive(Clone, Copy, Debug)]
enum Source {
    /// The system's clock (a running broker).
    System,
    /// A fixed start plus the time tokio's clock has moved since (tests),
    /// plus what a test moved it ahead by hand ([`Clock::move_ahead`]).
    Tokio {
        base_ms: i64,
        start: tokio::time::Instant,
        ahead_ms: &'static AtomicI64,
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
            // One counter a clock, for the life of the process (a test's
            // broker, or the dev broker's one clock): what keeps the clock
            // a plain copyable value.
            ahead_ms: Box::leak(Box::new(AtomicI64::new(0))),
        })
    }

    /// Moves a test's clock ahead by `ms`, for a test whose runtime's
    /// clock runs (its store's writer is a thread, so tokio's paused clock
    /// would jump to the next deadline while it waits), where
    /// `tokio::time::advance` cannot be used. Every copy of the clock
    /// moves. The system's clock is never moved.
    #[cfg(test)]
    pub fn move_ahead(&self, ms: i64) {
        match self.0 {
            Source::System => panic!("the system's clock is not moved"),
            Source::Tokio { ahead_ms, .. } => {
                ahead_ms.fetch_add(ms, Ordering::SeqCst);
            }
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self.0 {
            Source::System => crate::audit::now_ms(),
            Source::Tokio {
                base_ms,
                start,
                ahead_ms,
            } => base_ms + start.elapsed().as_millis() as i64 + ahead_ms.load(Ordering::SeqCst),
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
            Source::Tokio { .. } => passerelle_domain::date::of_ms(self.now_ms()),
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
        // Moved by hand, every copy moves with it.
        let copy = clock;
        clock.move_ahead(86_400_000);
        assert_eq!(passerelle_domain::date::format(copy.today()), "2026-03-12");
        assert_eq!(copy.now_ms(), 1_773_187_200_000 + 86_400_000);
    }
}
