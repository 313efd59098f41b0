//! A circuit breaker per origin: after too many failures in a row of
//! recent requests it stops sending for a while, so a failing origin gets
//! room to recover and clients get a fast answer instead of a slow error.
//!
//! Closed, it keeps the outcomes of the last [`WINDOW`] requests and opens
//! when at least [`FAILURES_TO_OPEN`] of them failed (≥ 50 %, with the
//! window full). Open, it refuses every request for [`OPEN_FOR`]; then it
//! is half-open and lets one probe through: success closes it, failure
//! opens it again. Its state lives in memory (a `RefCell`: the crate is
//! single-threaded), so it is per isolate.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Duration;

use crate::platform::Timestamp;

/// How many recent outcomes a closed breaker weighs.
pub const WINDOW: usize = 10;
/// How many failures among the last [`WINDOW`] outcomes open it.
pub const FAILURES_TO_OPEN: usize = 5;
/// How long an open breaker refuses requests before it lets a probe through.
pub const OPEN_FOR: Duration = Duration::from_secs(30);
/// The `Retry-After` while a half-open breaker's probe is under way.
const PROBE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests go to the origin; outcomes are counted.
    Closed,
    /// Requests are refused without trying the origin.
    Open,
    /// One probe request may go to the origin (or is under way).
    HalfOpen,
}

/// A breaker's state at one moment, for health output and logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BreakerSnapshot {
    /// The state.
    pub state: BreakerState,
    /// Outcomes in the window (closed), at most [`WINDOW`].
    pub requests: usize,
    /// Failures among them.
    pub failures: usize,
    /// Open: whole seconds until it lets a probe through (at least 1).
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Closed,
    Open { until: Timestamp },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Inner {
    /// The last outcomes while closed, `true` for a failure, oldest first.
    outcomes: VecDeque<bool>,
    mode: Mode,
}

/// What a recorded outcome changed, for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// The breaker opened (from closed or after a failed probe).
    Opened,
    /// A probe succeeded; the breaker closed.
    Closed,
}

/// The breaker of one origin.
#[derive(Debug)]
pub(crate) struct Breaker {
    inner: RefCell<Inner>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            inner: RefCell::new(Inner {
                outcomes: VecDeque::with_capacity(WINDOW),
                mode: Mode::Closed,
            }),
        }
    }
}

/// Leave to send to the origin: an ordinary request, or the probe of a
/// half-open breaker. A probe dropped without an outcome (its request was
/// cancelled) lets the next request probe instead.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl Permit<'_> {
    /// Whether this is a half-open breaker's single probe.
    pub(crate) fn is_probe(&self) -> bool {
        self.probe
    }

    /// Records the outcome of one attempt at `now`.
    pub(crate) fn record(&mut self, now: Timestamp, failed: bool) -> Option<Transition> {
        let mut inner = self.breaker.inner.borrow_mut();
        if self.probe {
            if self.settled {
                return None;
            }
            self.settled = true;
            inner.outcomes.clear();
            return Some(if failed {
                inner.mode = Mode::Open {
                    until: Timestamp(now.0 + OPEN_FOR),
                };
                Transition::Opened
            } else {
                inner.mode = Mode::Closed;
                Transition::Closed
            });
        }
        // Outcomes of requests let through before the breaker opened
        // belong to the closed period that ended: dropped.
        if inner.mode != Mode::Closed {
            return None;
        }
        if inner.outcomes.len() == WINDOW {
            inner.outcomes.pop_front();
        }
        inner.outcomes.push_back(failed);
        let failures = inner.outcomes.iter().filter(|f| **f).count();
        if inner.outcomes.len() == WINDOW && failures >= FAILURES_TO_OPEN {
            inner.mode = Mode::Open {
                until: Timestamp(now.0 + OPEN_FOR),
            };
            inner.outcomes.clear();
            return Some(Transition::Opened);
        }
        None
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            let mut inner = self.breaker.inner.borrow_mut();
            if inner.mode == (Mode::HalfOpen { probing: true }) {
                inner.mode = Mode::HalfOpen { probing: false };
            }
        }
    }
}

impl Breaker {
    /// Leave to send at `now`, or how long until the breaker may let one
    /// through.
    pub(crate) fn admit(&self, now: Timestamp) -> Result<Permit<'_>, Duration> {
        let mut inner = self.inner.borrow_mut();
        let probe = match inner.mode {
            Mode::Closed => false,
            Mode::Open { until } if now < until => return Err(until.0 - now.0),
            Mode::Open { .. } | Mode::HalfOpen { probing: false } => {
                inner.mode = Mode::HalfOpen { probing: true };
                true
            }
            Mode::HalfOpen { probing: true } => return Err(PROBE_RETRY_AFTER),
        };
        Ok(Permit {
            breaker: self,
            probe,
            settled: false,
        })
    }

    /// Whether a failed request may be tried again now: only while closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.borrow().mode == Mode::Closed
    }

    /// The state at `now`.
    pub(crate) fn snapshot(&self, now: Timestamp) -> BreakerSnapshot {
        let inner = self.inner.borrow();
        let failures = inner.outcomes.iter().filter(|f| **f).count();
        let (state, retry_after_secs) = match inner.mode {
            Mode::Closed => (BreakerState::Closed, None),
            Mode::Open { until } if now < until => {
                (BreakerState::Open, Some(whole_seconds(until.0 - now.0)))
            }
            Mode::Open { .. } | Mode::HalfOpen { .. } => (BreakerState::HalfOpen, None),
        };
        BreakerSnapshot {
            state,
            requests: inner.outcomes.len(),
            failures,
            retry_after_secs,
        }
    }
}

/// A wait in whole seconds, rounded up and at least 1 (for `Retry-After`).
pub(crate) fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(Duration::from_secs(1_000));

    fn at(secs: u64) -> Timestamp {
        Timestamp(T0.0 + Duration::from_secs(secs))
    }

    fn run(breaker: &Breaker, now: Timestamp, failed: bool) -> Option<Transition> {
        breaker.admit(now).unwrap().record(now, failed)
    }

    #[test]
    fn opens_only_with_a_full_window_of_half_failures() {
        let breaker = Breaker::default();
        for _ in 0..9 {
            assert_eq!(run(&breaker, T0, true), None);
        }
        assert_eq!(breaker.snapshot(T0).failures, 9, "9 seen: not enough");
        assert_eq!(run(&breaker, T0, true), Some(Transition::Opened));
        assert_eq!(breaker.admit(at(1)).unwrap_err(), Duration::from_secs(29));

        // Six successes and four failures stay closed, as does sliding on.
        let breaker = Breaker::default();
        for failed in [
            false, true, false, true, false, true, false, true, false, false,
        ] {
            assert_eq!(run(&breaker, T0, failed), None);
        }
        assert_eq!(run(&breaker, T0, false), None);
        assert_eq!(
            run(&breaker, T0, true),
            None,
            "a failure slid out as one came in"
        );
        assert_eq!(breaker.snapshot(T0).failures, 5 - 1);
        assert_eq!(run(&breaker, T0, true), Some(Transition::Opened));
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let breaker = Breaker::default();
        for _ in 0..10 {
            run(&breaker, T0, true);
        }
        let later = at(30);
        assert_eq!(breaker.snapshot(later).state, BreakerState::HalfOpen);
        let mut probe = breaker.admit(later).unwrap();
        assert!(probe.is_probe());
        assert_eq!(
            breaker.admit(later).unwrap_err(),
            PROBE_RETRY_AFTER,
            "one probe at a time"
        );
        assert_eq!(probe.record(later, true), Some(Transition::Opened));
        drop(probe);
        assert_eq!(breaker.snapshot(later).retry_after_secs, Some(30));

        // A probe dropped without an outcome lets the next request probe.
        let again = at(60);
        drop(breaker.admit(again).unwrap());
        let mut probe = breaker.admit(again).unwrap();
        assert!(probe.is_probe());
        assert_eq!(probe.record(again, false), Some(Transition::Closed));
        assert_eq!(breaker.snapshot(again).state, BreakerState::Closed);
        assert!(!breaker.admit(again).unwrap().is_probe());
    }

    #[test]
    fn late_outcomes_of_an_open_breaker_are_dropped() {
        let breaker = Breaker::default();
        let mut late = breaker.admit(T0).unwrap();
        for _ in 0..10 {
            run(&breaker, T0, true);
        }
        assert_eq!(late.record(T0, false), None);
        assert_eq!(breaker.snapshot(T0).state, BreakerState::Open);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(29_001)), 30);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }
}
