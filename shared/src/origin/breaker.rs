//! A circuit breaker per origin: after too many failures in a row of
//! recent requests it stops sending for a while, so a failing origin gets
//! room to recover and clients get a fast answer instead of a slow error.
//!
//! Closed, it keeps the outcomes of the last [`WINDOW`] requests and opens
//! when at least [`FAILURES_TO_OPEN`] of them failed (≥ 50 %, with the
//! window full). Open, it refuses every request for [`OPEN_FOR`]; then it
//! is half-open and lets one probe through: success closes it, failure
//! opens it again. A probe holds a lease (its request's deadline): a probe
//! that never reports (its instance was torn down) lets another one go
//! after that.
//!
//! [`State`] is the whole state machine, pure. [`Breaker`] keeps it in
//! memory (a `RefCell`: the crate is single-threaded), per isolate; where
//! instances do not persist it lives in the platform's store instead (see
//! `shared.rs`), encoded with [`State::encode`].

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    #[default]
    Closed,
    Open {
        until: Timestamp,
    },
    /// A probe may go; `probe`: one is under way, its lease ending then.
    HalfOpen {
        probe: Option<Timestamp>,
    },
}

/// A breaker's whole state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct State {
    /// The last outcomes while closed, `true` for a failure, oldest first.
    outcomes: VecDeque<bool>,
    mode: Mode,
    /// Counts the transitions (to open, to closed): an outcome only counts
    /// in the period its request was admitted in.
    epoch: u64,
}

/// What an admission granted: an ordinary request of period `epoch`, or
/// the probe of a half-open breaker (with its lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    epoch: u64,
    probe: Option<Timestamp>,
}

impl Ticket {
    /// Whether this is a half-open breaker's single probe.
    pub(crate) fn is_probe(&self) -> bool {
        self.probe.is_some()
    }
}

/// What a recorded outcome changed, for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// The breaker opened (from closed or after a failed probe).
    Opened,
    /// A probe succeeded; the breaker closed.
    Closed,
}

impl State {
    /// Leave to send at `now` (a probe holds it for `lease`), or how long
    /// until the breaker may let one through.
    pub(crate) fn admit(&mut self, now: Timestamp, lease: Duration) -> Result<Ticket, Duration> {
        let probe = match self.mode {
            Mode::Closed => None,
            Mode::Open { until } if now < until => return Err(until.0 - now.0),
            Mode::HalfOpen { probe: Some(until) } if now < until => {
                return Err(PROBE_RETRY_AFTER);
            }
            Mode::Open { .. } | Mode::HalfOpen { .. } => {
                let until = Timestamp(now.0 + lease);
                self.mode = Mode::HalfOpen { probe: Some(until) };
                Some(until)
            }
        };
        Ok(Ticket {
            epoch: self.epoch,
            probe,
        })
    }

    /// Records the outcome of one attempt at `now` made under `ticket`.
    /// Outcomes of another period (requests let through before the breaker
    /// opened, a probe another one already settled) are dropped.
    pub(crate) fn record(
        &mut self,
        ticket: &Ticket,
        now: Timestamp,
        failed: bool,
    ) -> Option<Transition> {
        if ticket.epoch != self.epoch {
            return None;
        }
        let open = |state: &mut State| {
            state.mode = Mode::Open {
                until: Timestamp(now.0 + OPEN_FOR),
            };
            state.outcomes.clear();
            state.epoch += 1;
            Some(Transition::Opened)
        };
        if ticket.is_probe() {
            if !matches!(self.mode, Mode::HalfOpen { .. }) {
                return None;
            }
            if failed {
                return open(self);
            }
            self.mode = Mode::Closed;
            self.outcomes.clear();
            self.epoch += 1;
            return Some(Transition::Closed);
        }
        if self.mode != Mode::Closed {
            return None;
        }
        if self.outcomes.len() == WINDOW {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(failed);
        let failures = self.outcomes.iter().filter(|f| **f).count();
        if self.outcomes.len() == WINDOW && failures >= FAILURES_TO_OPEN {
            return open(self);
        }
        None
    }

    /// Gives back the lease of a probe that ends without an outcome, so
    /// that the next request probes instead.
    pub(crate) fn release(&mut self, ticket: &Ticket) {
        if ticket.probe.is_some()
            && ticket.epoch == self.epoch
            && self.mode
                == (Mode::HalfOpen {
                    probe: ticket.probe,
                })
        {
            self.mode = Mode::HalfOpen { probe: None };
        }
    }

    /// Whether a failed request may be tried again now: only while closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.mode == Mode::Closed
    }

    /// The state at `now`.
    pub(crate) fn snapshot(&self, now: Timestamp) -> BreakerSnapshot {
        let failures = self.outcomes.iter().filter(|f| **f).count();
        let (state, retry_after_secs) = match self.mode {
            Mode::Closed => (BreakerState::Closed, None),
            Mode::Open { until } if now < until => {
                (BreakerState::Open, Some(whole_seconds(until.0 - now.0)))
            }
            Mode::Open { .. } | Mode::HalfOpen { .. } => (BreakerState::HalfOpen, None),
        };
        BreakerSnapshot {
            state,
            requests: self.outcomes.len(),
            failures,
            retry_after_secs,
        }
    }

    /// The state as stored: a small JSON record, e.g.
    /// `{"epoch":3,"window":"ssfsf","mode":"closed"}` or
    /// `{"epoch":4,"window":"","mode":"open","until_ms":1795305630000}`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let window = self
            .outcomes
            .iter()
            .map(|failed| if *failed { 'f' } else { 's' })
            .collect();
        let mode = match self.mode {
            Mode::Closed => RecordMode::Closed,
            Mode::Open { until } => RecordMode::Open {
                until_ms: until.as_millis(),
            },
            Mode::HalfOpen { probe } => RecordMode::HalfOpen {
                probe_until_ms: probe.map(Timestamp::as_millis),
            },
        };
        let record = Record {
            epoch: self.epoch,
            window,
            mode,
        };
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// Reads a stored record (see [`State::encode`]).
    pub(crate) fn decode(bytes: &[u8]) -> Result<State, String> {
        let record: Record = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let outcomes = record
            .window
            .chars()
            .map(|c| match c {
                'f' => Ok(true),
                's' => Ok(false),
                other => Err(format!("window holds {other:?}")),
            })
            .collect::<Result<VecDeque<bool>, String>>()?;
        if outcomes.len() > WINDOW {
            return Err(format!("window holds {} outcomes", outcomes.len()));
        }
        let mode = match record.mode {
            RecordMode::Closed => Mode::Closed,
            RecordMode::Open { until_ms } => Mode::Open {
                until: Timestamp::from_millis(until_ms),
            },
            RecordMode::HalfOpen { probe_until_ms } => Mode::HalfOpen {
                probe: probe_until_ms.map(Timestamp::from_millis),
            },
        };
        Ok(State {
            outcomes,
            mode,
            epoch: record.epoch,
        })
    }
}

/// [`State`] as stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    epoch: u64,
    /// The closed window, oldest first: `f` failed, `s` succeeded.
    window: String,
    #[serde(flatten)]
    mode: RecordMode,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum RecordMode {
    Closed,
    Open {
        until_ms: u64,
    },
    HalfOpen {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        probe_until_ms: Option<u64>,
    },
}

/// The breaker of one origin, in memory.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    state: RefCell<State>,
}

/// Leave to send to the origin from an in-memory [`Breaker`]. A probe
/// dropped without an outcome (its request was cancelled) lets the next
/// request probe at once.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    ticket: Ticket,
}

impl Permit<'_> {
    /// Whether this is a half-open breaker's single probe.
    pub(crate) fn is_probe(&self) -> bool {
        self.ticket.is_probe()
    }

    /// Records the outcome of one attempt at `now`; also says whether the
    /// breaker is still closed.
    pub(crate) fn record(&mut self, now: Timestamp, failed: bool) -> (Option<Transition>, bool) {
        let mut state = self.breaker.state.borrow_mut();
        (state.record(&self.ticket, now, failed), state.is_closed())
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.breaker.state.borrow_mut().release(&self.ticket);
    }
}

impl Breaker {
    /// Leave to send at `now` (a probe holds it for `lease` at most), or
    /// how long until the breaker may let one through.
    pub(crate) fn admit(&self, now: Timestamp, lease: Duration) -> Result<Permit<'_>, Duration> {
        let ticket = self.state.borrow_mut().admit(now, lease)?;
        Ok(Permit {
            breaker: self,
            ticket,
        })
    }

    /// The state at `now`.
    pub(crate) fn snapshot(&self, now: Timestamp) -> BreakerSnapshot {
        self.state.borrow().snapshot(now)
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
    const LEASE: Duration = Duration::from_secs(31);

    fn at(secs: u64) -> Timestamp {
        Timestamp(T0.0 + Duration::from_secs(secs))
    }

    fn run(breaker: &Breaker, now: Timestamp, failed: bool) -> Option<Transition> {
        breaker.admit(now, LEASE).unwrap().record(now, failed).0
    }

    #[test]
    fn opens_only_with_a_full_window_of_half_failures() {
        let breaker = Breaker::default();
        for _ in 0..9 {
            assert_eq!(run(&breaker, T0, true), None);
        }
        assert_eq!(breaker.snapshot(T0).failures, 9, "9 seen: not enough");
        assert_eq!(run(&breaker, T0, true), Some(Transition::Opened));
        assert_eq!(
            breaker.admit(at(1), LEASE).unwrap_err(),
            Duration::from_secs(29)
        );

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
        let mut probe = breaker.admit(later, LEASE).unwrap();
        assert!(probe.is_probe());
        assert_eq!(
            breaker.admit(later, LEASE).unwrap_err(),
            PROBE_RETRY_AFTER,
            "one probe at a time"
        );
        assert_eq!(probe.record(later, true), (Some(Transition::Opened), false));
        drop(probe);
        assert_eq!(breaker.snapshot(later).retry_after_secs, Some(30));

        // A probe dropped without an outcome lets the next request probe.
        let again = at(60);
        drop(breaker.admit(again, LEASE).unwrap());
        let mut probe = breaker.admit(again, LEASE).unwrap();
        assert!(probe.is_probe());
        assert_eq!(probe.record(again, false), (Some(Transition::Closed), true));
        assert_eq!(probe.record(again, true), (None, true), "settled once");
        drop(probe);
        assert_eq!(breaker.snapshot(again).state, BreakerState::Closed);
        assert!(!breaker.admit(again, LEASE).unwrap().is_probe());
    }

    #[test]
    fn a_probe_that_never_reports_loses_its_lease() {
        let mut state = State::default();
        for _ in 0..10 {
            let ticket = state.admit(T0, LEASE).unwrap();
            state.record(&ticket, T0, true);
        }
        // The probe's instance goes away without a word.
        let lost = state.admit(at(30), LEASE).unwrap();
        assert!(lost.is_probe());
        assert_eq!(state.admit(at(60), LEASE), Err(PROBE_RETRY_AFTER));
        let next = state.admit(at(61), LEASE).unwrap();
        assert!(next.is_probe(), "the lease ran out");
        // The lost probe's release does not free the new one's lease.
        state.release(&lost);
        assert_eq!(state.admit(at(62), LEASE), Err(PROBE_RETRY_AFTER));
        // Whichever reports first decides; the other is dropped.
        assert_eq!(state.record(&lost, at(63), false), Some(Transition::Closed));
        assert_eq!(state.record(&next, at(63), true), None);
        assert!(state.is_closed());
    }

    #[test]
    fn late_outcomes_of_an_earlier_period_are_dropped() {
        let breaker = Breaker::default();
        let mut late = breaker.admit(T0, LEASE).unwrap();
        for _ in 0..10 {
            run(&breaker, T0, true);
        }
        assert_eq!(late.record(T0, false), (None, false));
        assert_eq!(breaker.snapshot(T0).state, BreakerState::Open);
        // Closed again by a probe: the late request's failure is not of
        // the new period either.
        let mut probe = breaker.admit(at(30), LEASE).unwrap();
        probe.record(at(30), false);
        assert_eq!(late.record(at(31), true), (None, true));
        assert_eq!(breaker.snapshot(at(31)).requests, 0);
    }

    #[test]
    fn the_stored_record_round_trips_and_bad_ones_are_refused() {
        let mut state = State::default();
        for failed in [false, true, true] {
            let ticket = state.admit(T0, LEASE).unwrap();
            state.record(&ticket, T0, failed);
        }
        let bytes = state.encode();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"epoch":0,"window":"sff","mode":"closed"}"#
        );
        assert_eq!(State::decode(&bytes), Ok(state.clone()));
        for _ in 0..7 {
            let ticket = state.admit(T0, LEASE).unwrap();
            state.record(&ticket, T0, true);
        }
        let ticket = state.admit(at(30), LEASE).unwrap();
        assert!(ticket.is_probe());
        let bytes = state.encode();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"epoch":1,"window":"","mode":"half_open","probe_until_ms":1061000}"#
        );
        assert_eq!(State::decode(&bytes), Ok(state));
        for bad in [
            &b"{"[..],
            br#"{"epoch":0,"window":"sx","mode":"closed"}"#,
            br#"{"epoch":0,"window":"sssssssssss","mode":"closed"}"#,
            br#"{"epoch":0,"window":"","mode":"ajar"}"#,
        ] {
            assert!(
                State::decode(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(29_001)), 30);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }
}
