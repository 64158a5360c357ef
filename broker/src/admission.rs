//! Bulkheads: how many calls the broker takes at once, in all and per
//! caller, and how many of them may wait on one mutuelle.
//!
//! Every call takes a place before it runs, or is refused at once with
//! RESOURCE_EXHAUSTED: excess load is shed, never queued without bound.
//! - ordinary calls: at most `max_in_flight` in all, and at most
//!   `max_in_flight_per_caller` of one identity, so that one scheme's burst
//!   (or a hung partner's calls, below) leaves room for every other caller;
//! - long polls (ListChangedClaims with a wait): a pool of their own,
//!   `max_long_polls` in all and `max_long_polls_per_caller`, so that back
//!   offices waiting for changes never take the places of live calls;
//! - calls to one mutuelle (eligibility, claims, cancels, retries) hold one
//!   of its `max_calls_per_partner` places while they wait on it: a hung
//!   partner ties up at most that many, and the calls past it fail fast
//!   (eligibility: UNAVAILABLE; a claim is stored and handed to the retry
//!   worker). A `rules` mutuelle is adjudicated in this process and has no
//!   such limit.
//!
//! The per-caller maps are bounded: identities come from the configured
//! directory; on a plaintext development listener, claimed names past
//! `MAX_TRACKED_CALLERS` share one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LimitsConfig;
use crate::service::ServiceError;

/// Distinct callers tracked at once; past it, new names share one bucket.
pub const MAX_TRACKED_CALLERS: usize = 4096;

/// Which pool a call takes its place in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Calls,
    LongPoll,
}

struct Bulkhead {
    all: Arc<Semaphore>,
    per_caller: usize,
    callers: Mutex<HashMap<String, Arc<Semaphore>>>,
    what: &'static str,
}

impl Bulkhead {
    fn new(all: usize, per_caller: usize, what: &'static str) -> Self {
        Bulkhead {
            all: Arc::new(Semaphore::new(all.max(1))),
            per_caller: per_caller.max(1),
            callers: Mutex::new(HashMap::new()),
            what,
        }
    }

    fn caller(&self, key: &str) -> Arc<Semaphore> {
        let mut map = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(key) {
            return s.clone();
        }
        let key = if map.len() >= MAX_TRACKED_CALLERS {
            "(other callers)"
        } else {
            key
        };
        map.entry(key.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_caller)))
            .clone()
    }

    fn admit(&self, key: &str) -> Result<Permit, ServiceError> {
        let mine = self.caller(key).try_acquire_owned().map_err(|_| {
            ServiceError::Overloaded(format!(
                "too many {} of this caller at once, retry shortly",
                self.what
            ))
        })?;
        let all = self.all.clone().try_acquire_owned().map_err(|_| {
            ServiceError::Overloaded(format!("too many {} at once, retry shortly", self.what))
        })?;
        Ok(Permit {
            _mine: mine,
            _all: all,
        })
    }
}

/// A place taken; released when dropped.
pub struct Permit {
    _mine: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

/// The broker's bulkheads for incoming calls.
pub struct Admission {
    calls: Bulkhead,
    long_polls: Bulkhead,
}

impl Admission {
    pub fn new(limits: &LimitsConfig) -> Self {
        Admission {
            calls: Bulkhead::new(
                limits.max_in_flight,
                limits.max_in_flight_per_caller,
                "calls",
            ),
            long_polls: Bulkhead::new(
                limits.max_long_polls,
                limits.max_long_polls_per_caller,
                "long polls",
            ),
        }
    }

    /// A place for a call of `caller` (its identity, `role:id`) in `pool`.
    pub fn admit(&self, caller: &str, pool: Pool) -> Result<Permit, ServiceError> {
        match pool {
            Pool::Calls => self.calls.admit(caller),
            Pool::LongPoll => self.long_polls.admit(caller),
        }
    }
}

/// The places of one mutuelle; `None`: no limit (a `rules` mutuelle).
#[derive(Clone)]
pub struct PartnerSlots(Option<Arc<Semaphore>>);

impl PartnerSlots {
    pub fn new(limit: Option<usize>) -> Self {
        PartnerSlots(limit.map(|n| Arc::new(Semaphore::new(n.max(1)))))
    }

    /// A place for one call to the mutuelle, or `None` when all are taken.
    pub fn try_take(&self) -> Option<Option<OwnedSemaphorePermit>> {
        match &self.0 {
            None => Some(None),
            Some(s) => s.clone().try_acquire_owned().ok().map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            max_in_flight: 4,
            max_in_flight_per_caller: 2,
            max_long_polls: 3,
            max_long_polls_per_caller: 1,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn one_caller_cannot_take_every_place() {
        let a = Admission::new(&limits());
        let a1 = a.admit("scheme:CNSS", Pool::Calls).unwrap();
        let _a2 = a.admit("scheme:CNSS", Pool::Calls).unwrap();
        assert!(matches!(
            a.admit("scheme:CNSS", Pool::Calls),
            Err(ServiceError::Overloaded(_))
        ));
        let _b1 = a.admit("scheme:INAM", Pool::Calls).unwrap();
        let _b2 = a.admit("scheme:INAM", Pool::Calls).unwrap();
        // Four in all: a third caller waits for a free place.
        assert!(a.admit("mutuelle:MUT-X", Pool::Calls).is_err());
        drop(a1);
        a.admit("mutuelle:MUT-X", Pool::Calls).unwrap();
    }

    #[test]
    fn long_polls_have_their_own_pool() {
        let a = Admission::new(&limits());
        let _p = a.admit("scheme:CNSS", Pool::LongPoll).unwrap();
        assert!(a.admit("scheme:CNSS", Pool::LongPoll).is_err());
        // The caller's long poll takes none of its ordinary places.
        let _c1 = a.admit("scheme:CNSS", Pool::Calls).unwrap();
        let _c2 = a.admit("scheme:CNSS", Pool::Calls).unwrap();
    }

    #[test]
    fn tracked_callers_are_bounded() {
        let a = Admission::new(&limits());
        for i in 0..MAX_TRACKED_CALLERS + 10 {
            drop(a.admit(&format!("plaintext:mutuelle:M{i}"), Pool::Calls));
        }
        let n = a.calls.callers.lock().unwrap().len();
        assert!(n <= MAX_TRACKED_CALLERS + 1, "{n}");
    }

    #[test]
    fn a_partner_has_a_bounded_number_of_places() {
        let s = PartnerSlots::new(Some(2));
        let p1 = s.try_take().unwrap();
        let _p2 = s.try_take().unwrap();
        assert!(s.try_take().is_none());
        drop(p1);
        assert!(s.try_take().is_some());
        let unlimited = PartnerSlots::new(None);
        let _held: Vec<_> = (0..1000).map(|_| unlimited.try_take().unwrap()).collect();
    }
}
