//! The decision loops every rate-limit benchmark runs, in one file so that
//! the criterion bench (`functions/rate-limit/benches/decisions.rs`, which
//! includes this file by path) and the `rate-limit-bench` command (native
//! and wasm32-wasip2) measure exactly the same work.
//!
//! A *decision* is what a store does per request: read the key's stored
//! bytes, [`decide`], write the new bytes back. Every workload takes one
//! permit per decision under 100 permits per minute (burst 100), with each
//! key's clock advancing [`STEP_MS`] between its decisions: 90 % of the
//! 600 ms a permit takes to come back, so about one decision in ten is a
//! denial — from the first window on for the windows, once the burst has
//! drained (0.1 permit per decision: ~1,000 decisions a key) for the
//! buckets.
//!
//! governor runs on its [`FakeRelativeClock`], advanced by the same step.
//! The rate-limit algorithms are handed the time as an argument, so with the
//! fake clock neither side reads a real clock inside the loop; governor's
//! default clock (quanta) would add a clock read per decision that ours do
//! not pay.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use rate_limit::algorithm::{Acquire, Algorithm, Limit, State, decide};

/// Permits per period (and the buckets' burst).
pub const QUOTA: u64 = 100;
/// The period: one minute, which is what governor's [`Quota::per_minute`] says.
pub const PERIOD_MS: u64 = 60_000;
/// How far a key's clock moves between two of its decisions.
pub const STEP_MS: u64 = 540;
/// Keys of the keyed workloads, visited round robin.
pub const KEYS: u32 = 100;
const _: () = assert!(KEYS == 100, "Workload::variant names 100 keys");

/// Any fixed time well after the epoch (2026-11-22).
const START_MS: u64 = 1_795_305_600_000;
const TAKE_ONE: Acquire = Acquire {
    cost: 1,
    max: 1,
    hold_ms: 0,
};
const GOVERNOR_QUOTA: NonZeroU32 = NonZeroU32::new(QUOTA as u32).expect("QUOTA is not zero");
const _: () = assert!(PERIOD_MS == 60_000, "governor's quota is per minute");
const STEP: Duration = Duration::from_millis(STEP_MS);

/// One workload: something that makes one decision per call.
pub trait Decider {
    /// Makes the next decision; whether it admitted.
    fn decide(&mut self) -> bool;
}

/// The benchmarked workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// decode → [`decide`] → encode on one key's stored bytes.
    Stored(Algorithm),
    /// GCRA with the state kept decoded in memory: [`decide`] only, the
    /// closest to what governor does.
    GcraInMemory,
    /// GCRA on [`KEYS`] keys' stored bytes in a `HashMap`, round robin.
    GcraKeyed,
    /// governor's direct (one-state) limiter.
    GovernorDirect,
    /// governor's keyed limiter on its `DashMap` store, [`KEYS`] keys round robin.
    GovernorKeyed,
}

/// Every workload, in table order.
pub const ALL: [Workload; 8] = [
    Workload::Stored(Algorithm::FixedWindow),
    Workload::Stored(Algorithm::SlidingWindow),
    Workload::Stored(Algorithm::TokenBucket),
    Workload::Stored(Algorithm::Gcra),
    Workload::GcraInMemory,
    Workload::GcraKeyed,
    Workload::GovernorDirect,
    Workload::GovernorKeyed,
];

/// Something to do with a workload's concrete [`Decider`] (time it, bench
/// it) without a virtual call per decision.
pub trait Visit {
    /// What the visit returns.
    type Output;
    /// Called with a constructor of fresh instances of the workload.
    fn visit<D: Decider, F: Fn() -> D>(self, workload: Workload, make: F) -> Self::Output;
}

impl Workload {
    /// A stable identifier (JSON, `--only`).
    pub fn id(self) -> &'static str {
        match self {
            Workload::Stored(algorithm) => algorithm.as_str(),
            Workload::GcraInMemory => "gcra_in_memory",
            Workload::GcraKeyed => "gcra_keyed",
            Workload::GovernorDirect => "governor_direct",
            Workload::GovernorKeyed => "governor_keyed",
        }
    }

    /// The criterion group: the algorithm, or `governor`.
    pub fn group(self) -> &'static str {
        match self {
            Workload::Stored(algorithm) => algorithm.as_str(),
            Workload::GcraInMemory | Workload::GcraKeyed => Algorithm::Gcra.as_str(),
            Workload::GovernorDirect | Workload::GovernorKeyed => "governor",
        }
    }

    /// The benchmark's name within its group.
    pub fn variant(self) -> &'static str {
        match self {
            Workload::Stored(_) => "decode-decide-encode",
            Workload::GcraInMemory => "decide in memory",
            Workload::GcraKeyed => "decode-decide-encode, 100 keys (HashMap)",
            Workload::GovernorDirect => "direct",
            Workload::GovernorKeyed => "keyed, 100 keys (DashMap)",
        }
    }

    /// How many keys it spreads its decisions over.
    pub fn keys(self) -> u32 {
        match self {
            Workload::GcraKeyed | Workload::GovernorKeyed => KEYS,
            _ => 1,
        }
    }

    /// Decisions per timed round of the `rate-limit-bench` command: a round
    /// takes ~0.2 s natively, and every key sees enough decisions for its
    /// burst to drain.
    pub fn decisions(self) -> u64 {
        match self {
            // The log holds ~100 entries: 2.4 KB to decode and encode.
            Workload::Stored(Algorithm::SlidingWindow) => 100_000,
            Workload::GovernorDirect | Workload::GcraInMemory => 8_000_000,
            _ => 3_000_000,
        }
    }

    /// Hands `visitor` a constructor of this workload's [`Decider`].
    pub fn visit<V: Visit>(self, visitor: V) -> V::Output {
        match self {
            Workload::Stored(algorithm) => visitor.visit(self, move || StoredKey::new(algorithm)),
            Workload::GcraInMemory => visitor.visit(self, GcraInMemory::new),
            Workload::GcraKeyed => visitor.visit(self, GcraKeyed::new),
            Workload::GovernorDirect => visitor.visit(self, GovernorDirect::new),
            Workload::GovernorKeyed => visitor.visit(self, GovernorKeyed::new),
        }
    }
}

/// The limit every workload runs under.
pub fn limit(algorithm: Algorithm) -> Limit {
    Limit {
        algorithm,
        quota: QUOTA,
        period_ms: PERIOD_MS,
        burst: QUOTA,
    }
}

/// One key's stored bytes, decoded and re-encoded on every decision.
#[derive(Debug)]
struct StoredKey {
    limit: Limit,
    stored: Vec<u8>,
    now: u64,
}

impl StoredKey {
    /// A fresh key under `algorithm`.
    fn new(algorithm: Algorithm) -> Self {
        let limit = limit(algorithm);
        StoredKey {
            stored: State::fresh(&limit, START_MS).encode(),
            limit,
            now: START_MS,
        }
    }
}

impl Decider for StoredKey {
    fn decide(&mut self) -> bool {
        self.now += STEP_MS;
        // Unreadable bytes start afresh, as the stores do.
        let state = State::decode(&self.limit, &self.stored).ok().flatten();
        let (state, outcome, _) = decide(&self.limit, state, self.now, None, Some(TAKE_ONE));
        self.stored = state.encode();
        outcome.allowed
    }
}

/// GCRA on a decoded state: the algorithm alone.
#[derive(Debug)]
struct GcraInMemory {
    limit: Limit,
    state: Option<State>,
    now: u64,
}

impl GcraInMemory {
    /// A fresh key.
    fn new() -> Self {
        GcraInMemory {
            limit: limit(Algorithm::Gcra),
            state: None,
            now: START_MS,
        }
    }
}

impl Decider for GcraInMemory {
    fn decide(&mut self) -> bool {
        self.now += STEP_MS;
        let (state, outcome, _) = decide(
            &self.limit,
            self.state.take(),
            self.now,
            None,
            Some(TAKE_ONE),
        );
        self.state = Some(state);
        outcome.allowed
    }
}

/// GCRA on [`KEYS`] keys' stored bytes, like an in-memory store.
#[derive(Debug)]
struct GcraKeyed {
    limit: Limit,
    stored: HashMap<u32, Vec<u8>>,
    key: u32,
    now: u64,
}

impl GcraKeyed {
    /// No keys yet.
    fn new() -> Self {
        GcraKeyed {
            limit: limit(Algorithm::Gcra),
            stored: HashMap::new(),
            key: 0,
            now: START_MS,
        }
    }
}

impl Decider for GcraKeyed {
    fn decide(&mut self) -> bool {
        if self.key == 0 {
            self.now += STEP_MS;
        }
        let slot = self.stored.entry(self.key).or_default();
        self.key = (self.key + 1) % KEYS;
        let state = State::decode(&self.limit, slot).ok().flatten();
        let (state, outcome, _) = decide(&self.limit, state, self.now, None, Some(TAKE_ONE));
        *slot = state.encode();
        outcome.allowed
    }
}

/// governor's direct limiter on the fake clock.
#[derive(Debug)]
struct GovernorDirect {
    limiter: RateLimiter<NotKeyed, InMemoryState, FakeRelativeClock, NoOpMiddleware<Nanos>>,
    clock: FakeRelativeClock,
}

impl GovernorDirect {
    /// A full limiter.
    fn new() -> Self {
        let clock = FakeRelativeClock::default();
        GovernorDirect {
            limiter: RateLimiter::direct_with_clock(
                Quota::per_minute(GOVERNOR_QUOTA),
                clock.clone(),
            ),
            clock,
        }
    }
}

impl Decider for GovernorDirect {
    fn decide(&mut self) -> bool {
        self.clock.advance(STEP);
        self.limiter.check().is_ok()
    }
}

/// governor's keyed limiter (`DashMap`) on the fake clock.
#[derive(Debug)]
struct GovernorKeyed {
    limiter: RateLimiter<u32, DashMapStateStore<u32>, FakeRelativeClock, NoOpMiddleware<Nanos>>,
    clock: FakeRelativeClock,
    key: u32,
}

impl GovernorKeyed {
    /// No keys yet.
    fn new() -> Self {
        let clock = FakeRelativeClock::default();
        GovernorKeyed {
            limiter: RateLimiter::dashmap_with_clock(
                Quota::per_minute(GOVERNOR_QUOTA),
                clock.clone(),
            ),
            clock,
            key: 0,
        }
    }
}

impl Decider for GovernorKeyed {
    fn decide(&mut self) -> bool {
        if self.key == 0 {
            self.clock.advance(STEP);
        }
        let key = self.key;
        self.key = (key + 1) % KEYS;
        self.limiter.check_key(&key).is_ok()
    }
}
