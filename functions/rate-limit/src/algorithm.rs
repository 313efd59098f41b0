//! The four algorithms as pure state transitions on one key's stored state.
//!
//! They are pure so that the same code runs inside a Durable Object (one
//! round trip, the object's clock), in a compare-and-swap loop against Spin's
//! key-value store, and in memory — and so that property tests can check
//! them against a reference model on a fake clock. All arithmetic is in
//! integers (time in milliseconds, bucket levels scaled by the period), so
//! decisions are exact and identical on every runtime.
//!
//! Each algorithm defines the windows in which it promises at most `quota`
//! permits (`burst` for the buckets):
//!
//! | algorithm | promise |
//! |---|---|
//! | fixed window | in each aligned period `[kP, (k+1)P)`: ≤ quota |
//! | sliding window | in every interval of length P: ≤ quota (an exact log, not the two-window estimate) |
//! | token bucket | in every interval of length d: ≤ burst + quota·d/P |
//! | GCRA | the same envelope as the token bucket, kept in one timestamp |
//!
//! A call may also lease permits to be spent later ([`Acquire::hold_ms`]).
//! The window algorithms stay exact for leases: a fixed window's lease ends
//! with its window, and a sliding window counts a lease over its whole
//! span. The buckets do not lease (their envelope cannot tell a permit spent
//! late from one spent on time); the policy refuses that combination.
//!
//! What a call reports as [`Outcome::remaining`] is what the store holds
//! for the key, and inside one window it never goes up: permits given back
//! by a lease become grantable again at once, but they are not counted as
//! remaining again until the window moves (a fixed window keeps its peak
//! count, a sliding window's entries keep their granted size until they
//! leave). A client never sees `r` rise because another isolate's lease
//! came back.
//!
//! A key's limit can change between calls (a new policy version, or a
//! per-key override that starts or stops applying): the limit comes with
//! each call, and states record what they need of the limit they were
//! written under ([`Scale`]), so a call reads them correctly under another.
//! The rule is the same for all four: **permits taken stay taken**, and the
//! new limit decides how many more there are. A window's count (or log)
//! is compared with the new quota — a raised limit frees the difference at
//! once, a lowered one may refuse until the window moves; a fixed window
//! whose period changed carries its count into the current window of the
//! new period if the old window reaches into it. A bucket carries its debt
//! (permits taken and not yet refilled) into the new size and rate, never
//! below empty, so it is capped at the new burst and refills at the new
//! rate. Inside a window `r` may therefore rise when the limit is raised.

use serde::{Deserialize, Serialize};

/// Which algorithm a scope uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// A counter per aligned period: cheapest, bursts of 2×quota across a boundary.
    FixedWindow,
    /// An exact log of the permits in the last period: precise, state grows with quota.
    SlidingWindow,
    /// Tokens refilled continuously up to `burst`: controlled bursts.
    TokenBucket,
    /// The generic cell rate algorithm: the token bucket's envelope in one value.
    Gcra,
}

impl Limit {
    /// The most permits one call can ever get: the quota of a window, the
    /// burst of a bucket. A cost above it is refused whatever the state.
    pub fn capacity(&self) -> u64 {
        match self.algorithm {
            Algorithm::FixedWindow | Algorithm::SlidingWindow => self.quota,
            Algorithm::TokenBucket | Algorithm::Gcra => self.burst,
        }
    }
}

impl Algorithm {
    /// The name used in policies and state reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::FixedWindow => "fixed_window",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::TokenBucket => "token_bucket",
            Algorithm::Gcra => "gcra",
        }
    }

    /// Whether permits may be leased and spent later without breaking the promise.
    pub fn can_lease(self) -> bool {
        matches!(self, Algorithm::FixedWindow | Algorithm::SlidingWindow)
    }

    fn tag(self) -> u8 {
        match self {
            Algorithm::FixedWindow => 1,
            // 2 was the log of 24-byte entries (SLIDING_V1_TAG).
            Algorithm::SlidingWindow => 5,
            Algorithm::TokenBucket => 3,
            Algorithm::Gcra => 4,
        }
    }
}

/// One scope's limit: `quota` permits per `period_ms`, bursts up to `burst`
/// (buckets only; the windows use `quota`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Permits per period.
    pub quota: u64,
    /// The period in milliseconds (≥ 1).
    pub period_ms: u64,
    /// The bucket size (token bucket, GCRA).
    pub burst: u64,
}

/// Take between `cost` and `max` permits: as many as are free up to `max`,
/// none unless at least `cost` are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acquire {
    /// The fewest permits that make the call succeed.
    pub cost: u64,
    /// The most permits to take (a lease takes more than it needs now).
    pub max: u64,
    /// How long the permits may be held before being spent (0: now).
    pub hold_ms: u64,
}

/// Give back unspent permits of an earlier grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The grant's [`Outcome::at_ms`].
    pub at_ms: u64,
    /// The grant's [`Outcome::hold_until_ms`].
    pub until_ms: u64,
    /// How many of its permits were not spent.
    pub permits: u64,
}

/// What one call decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether the acquisition succeeded (true when nothing was asked).
    pub allowed: bool,
    /// Permits granted (0 when denied).
    pub granted: u64,
    /// Permits still free after this call, as reported to clients: never
    /// more than any earlier report inside the same window (permits given
    /// back in the window are grantable but not reported again).
    pub remaining: u64,
    /// Milliseconds until the full quota is free again.
    pub reset_ms: u64,
    /// When denied: milliseconds until `cost` permits will be free.
    pub retry_after_ms: u64,
    /// The last millisecond in which the granted permits may be spent.
    pub hold_until_ms: u64,
    /// The decision's time on the deciding clock (ms since the epoch).
    pub at_ms: u64,
}

/// The limit a bucket state was written under: its level (token bucket)
/// or theoretical arrival time (GCRA) is scaled by these, so a call under
/// another limit converts it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// Permits per period.
    pub quota: u64,
    /// The period in milliseconds.
    pub period_ms: u64,
    /// The bucket size.
    pub burst: u64,
}

impl Scale {
    /// The scale of `limit`.
    pub fn of(limit: &Limit) -> Scale {
        Scale {
            quota: limit.quota,
            period_ms: limit.period_ms.max(1),
            burst: limit.burst,
        }
    }
}

/// Why a stored state cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored rate-limit state is unreadable: {0}")]
pub struct StateError(pub &'static str);

/// The stored state of one key under one algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Fixed window: the window's start and its count.
    Fixed {
        /// Start of the counted window (ms).
        window_start: u64,
        /// Permits granted in it and not given back.
        count: u64,
        /// The highest `count` reached in the window (what is reported).
        peak: u64,
        /// The period the window was counted under (ms).
        period_ms: u64,
    },
    /// Sliding window: the grants still inside some window.
    Sliding {
        /// Grants, oldest first.
        entries: Vec<Entry>,
    },
    /// Token bucket: the level (tokens × period) at a time.
    Bucket {
        /// Tokens scaled by `period_ms`.
        level: u128,
        /// When the level was computed (ms).
        at: u64,
        /// The limit the level is scaled by.
        scale: Scale,
    },
    /// GCRA: the theoretical arrival time, scaled by `quota`.
    Gcra {
        /// TAT × quota (ms × quota).
        tat: u128,
        /// The limit the TAT is scaled by.
        scale: Scale,
    },
}

/// One sliding-window grant: `permits` spent somewhere in `[at, until]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// When granted (ms).
    pub at: u64,
    /// Until when its permits may be spent (ms).
    pub until: u64,
    /// How many were granted.
    pub permits: u64,
    /// How many of them were given back unspent (free again, but still
    /// counted in what is reported until the entry leaves).
    pub returned: u64,
}

impl Entry {
    /// The permits still taken (granted, not given back).
    fn held(&self) -> u64 {
        self.permits.saturating_sub(self.returned)
    }
}

/// The tag of the sliding-window log written before entries carried
/// `returned` (24-byte entries); still read.
const SLIDING_V1_TAG: u8 = 2;

impl State {
    /// The state of a key never seen, at `now`.
    pub fn fresh(limit: &Limit, now: u64) -> State {
        match limit.algorithm {
            Algorithm::FixedWindow => State::Fixed {
                window_start: window_start(now, limit.period_ms),
                count: 0,
                peak: 0,
                period_ms: limit.period_ms.max(1),
            },
            Algorithm::SlidingWindow => State::Sliding {
                entries: Vec::new(),
            },
            Algorithm::TokenBucket => State::Bucket {
                level: full_level(limit),
                at: now,
                scale: Scale::of(limit),
            },
            Algorithm::Gcra => State::Gcra {
                tat: u128::from(now) * u128::from(limit.quota),
                scale: Scale::of(limit),
            },
        }
    }

    /// The stored form: a tag byte, then little-endian fields. A fixed
    /// window is `window_start, count, peak, period_ms` (states written
    /// without `peak` read with `peak = count`, without `period_ms` as
    /// counted under the caller's period); a sliding window is a log of
    /// 32-byte entries `at, until, permits, returned` under its own tag
    /// (logs of 24-byte entries under the old tag are still read); a token
    /// bucket is `level (u128), at`, a GCRA `tat (u128)`, each followed by
    /// its [`Scale`] `quota, period_ms, burst` (states written without it
    /// read as scaled by the caller's limit). Older code reading a newer
    /// state ignores the trailing fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(33);
        match self {
            State::Fixed {
                window_start,
                count,
                peak,
                period_ms,
            } => {
                out.push(Algorithm::FixedWindow.tag());
                out.extend_from_slice(&window_start.to_le_bytes());
                out.extend_from_slice(&count.to_le_bytes());
                out.extend_from_slice(&peak.to_le_bytes());
                out.extend_from_slice(&period_ms.to_le_bytes());
            }
            State::Sliding { entries } => {
                out.push(Algorithm::SlidingWindow.tag());
                for e in entries {
                    out.extend_from_slice(&e.at.to_le_bytes());
                    out.extend_from_slice(&e.until.to_le_bytes());
                    out.extend_from_slice(&e.permits.to_le_bytes());
                    out.extend_from_slice(&e.returned.to_le_bytes());
                }
            }
            State::Bucket { level, at, scale } => {
                out.push(Algorithm::TokenBucket.tag());
                out.extend_from_slice(&level.to_le_bytes());
                out.extend_from_slice(&at.to_le_bytes());
                scale.encode(&mut out);
            }
            State::Gcra { tat, scale } => {
                out.push(Algorithm::Gcra.tag());
                out.extend_from_slice(&tat.to_le_bytes());
                scale.encode(&mut out);
            }
        }
        out
    }

    /// Reads a stored state written for `limit`'s algorithm. A state of
    /// another algorithm (the policy changed) reads as `None`: start afresh.
    pub fn decode(limit: &Limit, bytes: &[u8]) -> Result<Option<State>, StateError> {
        let Some((&tag, rest)) = bytes.split_first() else {
            return Err(StateError("empty"));
        };
        let sliding_v1 = limit.algorithm == Algorithm::SlidingWindow && tag == SLIDING_V1_TAG;
        if tag != limit.algorithm.tag() && !sliding_v1 {
            return Ok(None);
        }
        let u64_at = |i: usize| -> Result<u64, StateError> {
            rest.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or(StateError("truncated"))
        };
        let u128_at = |i: usize| -> Result<u128, StateError> {
            rest.get(i..i + 16)
                .and_then(|b| b.try_into().ok())
                .map(u128::from_le_bytes)
                .ok_or(StateError("truncated"))
        };
        // The scale a bucket state was written under; the caller's when it
        // was written before states recorded it.
        let scale_at = |i: usize| -> Result<Scale, StateError> {
            if rest.len() < i + 24 {
                return Ok(Scale::of(limit));
            }
            let scale = Scale {
                quota: u64_at(i)?,
                period_ms: u64_at(i + 8)?,
                burst: u64_at(i + 16)?,
            };
            if scale.quota == 0 || scale.period_ms == 0 || scale.burst == 0 {
                return Err(StateError("zero in the stored limit"));
            }
            Ok(scale)
        };
        Ok(Some(match limit.algorithm {
            Algorithm::FixedWindow => {
                let count = u64_at(8)?;
                let peak = if rest.len() >= 24 { u64_at(16)? } else { count };
                let period_ms = if rest.len() >= 32 {
                    u64_at(24)?.max(1)
                } else {
                    limit.period_ms.max(1)
                };
                State::Fixed {
                    window_start: u64_at(0)?,
                    count,
                    peak: peak.max(count),
                    period_ms,
                }
            }
            Algorithm::SlidingWindow => {
                let size = if sliding_v1 { 24 } else { 32 };
                if rest.len() % size != 0 {
                    return Err(StateError("sliding log is not whole entries"));
                }
                let entries = (0..rest.len() / size)
                    .map(|i| {
                        let permits = u64_at(i * size + 16)?;
                        let returned = if sliding_v1 {
                            0
                        } else {
                            u64_at(i * size + 24)?
                        };
                        Ok(Entry {
                            at: u64_at(i * size)?,
                            until: u64_at(i * size + 8)?,
                            permits,
                            returned: returned.min(permits),
                        })
                    })
                    .collect::<Result<_, StateError>>()?;
                State::Sliding { entries }
            }
            Algorithm::TokenBucket => State::Bucket {
                level: u128_at(0)?,
                at: u64_at(16)?,
                scale: scale_at(24)?,
            },
            Algorithm::Gcra => State::Gcra {
                tat: u128_at(0)?,
                scale: scale_at(16)?,
            },
        }))
    }

    /// The state re-expressed under `limit` at `now` when it was written
    /// under another (see the module documentation: permits taken stay
    /// taken; a bucket's debt is carried, at most a whole bucket).
    fn rescale(self, limit: &Limit, now: u64) -> State {
        let p = limit.period_ms.max(1);
        match self {
            State::Fixed {
                window_start: start,
                count,
                peak,
                period_ms,
            } if period_ms != p => {
                let current = window_start(now, p);
                if start.saturating_add(period_ms) > current {
                    // The old window reaches into the current one: what
                    // it counted still counts.
                    State::Fixed {
                        window_start: current,
                        count,
                        peak,
                        period_ms: p,
                    }
                } else {
                    State::fresh(limit, now)
                }
            }
            State::Bucket { level, at, scale } if scale != Scale::of(limit) => {
                // The level now under the old limit, then its debt in the
                // new units (rounded up: never a permit more).
                let old_full = u128::from(scale.burst) * u128::from(scale.period_ms);
                let elapsed = u128::from(now.saturating_sub(at));
                let level = (level + elapsed * u128::from(scale.quota)).min(old_full);
                let debt = (old_full - level) * u128::from(p);
                let debt = debt.div_ceil(u128::from(scale.period_ms));
                let full = full_level(limit);
                State::Bucket {
                    level: full.saturating_sub(debt),
                    at: at.max(now),
                    scale: Scale::of(limit),
                }
            }
            State::Gcra { tat, scale } if scale != Scale::of(limit) => {
                let ahead = tat.saturating_sub(u128::from(now) * u128::from(scale.quota));
                let ahead = (ahead * u128::from(p)).div_ceil(u128::from(scale.period_ms));
                State::Gcra {
                    tat: u128::from(now) * u128::from(limit.quota) + ahead.min(full_level(limit)),
                    scale: Scale::of(limit),
                }
            }
            same => same,
        }
    }
}

impl Scale {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.quota.to_le_bytes());
        out.extend_from_slice(&self.period_ms.to_le_bytes());
        out.extend_from_slice(&self.burst.to_le_bytes());
    }
}

fn window_start(now: u64, period: u64) -> u64 {
    now - now % period.max(1)
}

fn full_level(limit: &Limit) -> u128 {
    u128::from(limit.burst) * u128::from(limit.period_ms)
}

fn ceil_div(a: u128, b: u128) -> u64 {
    u64::try_from(a.div_ceil(b.max(1))).unwrap_or(u64::MAX)
}

fn to_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Runs one call on `state` (absent: a fresh key) at time `now` (ms):
/// first the release, then the acquisition (none: only report). Returns the
/// new state, the outcome, and when the new state equals a fresh one.
pub fn decide(
    limit: &Limit,
    state: Option<State>,
    now: u64,
    release: Option<Release>,
    acquire: Option<Acquire>,
) -> (State, Outcome, u64) {
    let mut state = match state {
        Some(state) => state.rescale(limit, now),
        None => State::fresh(limit, now),
    };
    let p = limit.period_ms.max(1);
    let quota = limit.quota;
    let none = Acquire {
        cost: 0,
        max: 0,
        hold_ms: 0,
    };
    let want = acquire.unwrap_or(none);
    let mut outcome = Outcome {
        allowed: true,
        granted: 0,
        remaining: 0,
        reset_ms: 0,
        retry_after_ms: 0,
        hold_until_ms: now.saturating_add(want.hold_ms),
        at_ms: now,
    };
    let grant = |free: u64, outcome: &mut Outcome| -> u64 {
        if free >= want.cost {
            let granted = want.max.max(want.cost).min(free);
            outcome.granted = granted;
            granted
        } else {
            outcome.allowed = false;
            0
        }
    };
    let expires;
    match &mut state {
        State::Fixed {
            window_start: start,
            count,
            peak,
            ..
        } => {
            let current = window_start(now, p);
            // A clock behind the stored window counts in the stored one.
            if current > *start {
                *start = current;
                *count = 0;
                *peak = 0;
            }
            if let Some(r) = release
                && window_start(r.at_ms, p) == *start
            {
                *count = count.saturating_sub(r.permits);
            }
            let end = start.saturating_add(p);
            let free = quota.saturating_sub(*count);
            *count = count.saturating_add(grant(free, &mut outcome));
            *peak = (*peak).max(*count);
            outcome.remaining = quota.saturating_sub(*peak);
            outcome.reset_ms = end.saturating_sub(now);
            outcome.hold_until_ms = outcome.hold_until_ms.min(end - 1);
            if !outcome.allowed {
                outcome.retry_after_ms = end.saturating_sub(now);
            }
            expires = if *peak == 0 { now } else { end };
        }
        State::Sliding { entries } => {
            // An entry counts in every window of length P that can hold one
            // of its spends, i.e. while `until > now - P`.
            entries.retain(|e| e.until.saturating_add(p) > now);
            if let Some(r) = release
                && let Some(e) = entries
                    .iter_mut()
                    .find(|e| e.at == r.at_ms && e.until == r.until_ms)
            {
                e.returned = e.returned.saturating_add(r.permits).min(e.permits);
            }
            entries.retain(|e| e.permits > 0);
            let used: u64 = entries.iter().map(Entry::held).sum();
            let free = quota.saturating_sub(used);
            let granted = grant(free, &mut outcome);
            if granted > 0 {
                let until = now.saturating_add(want.hold_ms);
                match entries.last_mut() {
                    Some(last) if last.at == now && last.until == until => {
                        last.permits += granted;
                    }
                    _ => entries.push(Entry {
                        at: now,
                        until,
                        permits: granted,
                        returned: 0,
                    }),
                }
            }
            let used = used + granted;
            // Permits given back stay counted in the report until their
            // entry leaves the window.
            let reported: u64 = entries.iter().map(|e| e.permits).sum();
            outcome.remaining = quota.saturating_sub(reported);
            let last_until = entries.iter().map(|e| e.until).max().unwrap_or(now);
            outcome.reset_ms = last_until.saturating_add(p).saturating_sub(now);
            if !outcome.allowed {
                // Wait until enough of the oldest-ending grants leave.
                let mut by_end: Vec<&Entry> = entries.iter().collect();
                by_end.sort_by_key(|e| e.until);
                let mut still = used;
                let mut wait = outcome.reset_ms;
                for e in by_end {
                    still -= e.held();
                    if still + want.cost <= quota {
                        wait = e.until.saturating_add(p).saturating_sub(now);
                        break;
                    }
                }
                outcome.retry_after_ms = wait;
            }
            expires = if entries.is_empty() {
                now
            } else {
                last_until.saturating_add(p)
            };
        }
        State::Bucket { level, at, .. } => {
            let full = full_level(limit);
            let rate = u128::from(quota); // level units per ms
            let elapsed = u128::from(now.saturating_sub(*at));
            *level = (*level + elapsed * rate).min(full);
            *at = (*at).max(now);
            if let Some(r) = release {
                *level = (*level + u128::from(r.permits) * u128::from(p)).min(full);
            }
            let free = to_u64(*level / u128::from(p));
            let granted = grant(free, &mut outcome);
            *level -= u128::from(granted) * u128::from(p);
            outcome.remaining = to_u64(*level / u128::from(p));
            outcome.reset_ms = ceil_div(full - *level, rate);
            if !outcome.allowed {
                let need = u128::from(want.cost) * u128::from(p);
                outcome.retry_after_ms = if need > full {
                    outcome.reset_ms.max(p)
                } else {
                    ceil_div(need - *level, rate)
                };
            }
            expires = now.saturating_add(outcome.reset_ms);
        }
        State::Gcra { tat, .. } => {
            let q = u128::from(quota.max(1));
            let now_s = u128::from(now) * q;
            let span = full_level(limit); // burst × P, in scaled time
            let unit = u128::from(p); // one permit, in scaled time
            if let Some(r) = release {
                *tat = tat.saturating_sub(u128::from(r.permits) * unit).max(now_s);
            }
            let base = (*tat).max(now_s);
            let free = to_u64(span.saturating_sub(base - now_s) / unit);
            let granted = grant(free, &mut outcome);
            *tat = base + u128::from(granted) * unit;
            let ahead = *tat - now_s;
            outcome.remaining = to_u64(span.saturating_sub(ahead) / unit);
            outcome.reset_ms = ceil_div(ahead, q);
            if !outcome.allowed {
                let need = *tat + u128::from(want.cost) * unit;
                outcome.retry_after_ms = if u128::from(want.cost) * unit > span {
                    outcome.reset_ms.max(p)
                } else {
                    ceil_div(need - span - now_s, q)
                };
            }
            expires = now.saturating_add(outcome.reset_ms);
        }
    }
    if outcome.granted == 0 {
        outcome.hold_until_ms = now;
    }
    (state, outcome, expires)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limit(algorithm: Algorithm, quota: u64, period_ms: u64, burst: u64) -> Limit {
        Limit {
            algorithm,
            quota,
            period_ms,
            burst,
        }
    }

    fn take(cost: u64) -> Option<Acquire> {
        Some(Acquire {
            cost,
            max: cost,
            hold_ms: 0,
        })
    }

    /// Runs `calls` (time, cost) through `decide`, round-tripping the stored
    /// bytes each time as the stores do; returns each decision.
    fn run(limit: &Limit, calls: &[(u64, u64)]) -> Vec<Outcome> {
        let mut stored: Option<Vec<u8>> = None;
        calls
            .iter()
            .map(|&(t, cost)| {
                let state = stored
                    .as_deref()
                    .and_then(|b| State::decode(limit, b).unwrap());
                let (state, outcome, _) = decide(limit, state, t, None, take(cost));
                stored = Some(state.encode());
                outcome
            })
            .collect()
    }

    /// The reference model: admit greedily whenever admitting keeps the
    /// algorithm's promise over the admitted history, computed by brute force.
    fn reference(limit: &Limit, calls: &[(u64, u64)]) -> Vec<bool> {
        let (q, p, b) = (limit.quota, limit.period_ms, limit.burst);
        let mut admitted: Vec<(u64, u64)> = Vec::new();
        calls
            .iter()
            .map(|&(t, cost)| {
                let ok = match limit.algorithm {
                    Algorithm::FixedWindow => {
                        let w = t / p;
                        let used: u64 = admitted
                            .iter()
                            .filter(|(s, _)| s / p == w)
                            .map(|(_, c)| c)
                            .sum();
                        used + cost <= q
                    }
                    Algorithm::SlidingWindow => {
                        // Every window (x - P, x] with x >= t that holds t.
                        let used: u64 = admitted
                            .iter()
                            .filter(|(s, _)| *s + p > t)
                            .map(|(_, c)| c)
                            .sum();
                        used + cost <= q
                    }
                    Algorithm::TokenBucket | Algorithm::Gcra => {
                        // For every interval [s, t]: admitted·P <= B·P + Q·(t - s).
                        let fits = |from: u64| {
                            let used: u64 = admitted
                                .iter()
                                .filter(|(s, _)| *s >= from)
                                .map(|(_, c)| c)
                                .sum();
                            u128::from(used + cost) * u128::from(p)
                                <= u128::from(b) * u128::from(p)
                                    + u128::from(q) * u128::from(t - from)
                        };
                        fits(t) && admitted.iter().all(|(s, _)| fits(*s))
                    }
                };
                if ok {
                    admitted.push((t, cost));
                }
                ok
            })
            .collect()
    }

    /// The promise checked directly on what was admitted.
    fn promise_holds(limit: &Limit, admitted: &[(u64, u64)]) -> Result<(), String> {
        let (q, p, b) = (limit.quota, limit.period_ms, limit.burst);
        for (i, &(t, _)) in admitted.iter().enumerate() {
            let used_since = |from: u64| -> u64 {
                admitted[..=i]
                    .iter()
                    .filter(|(s, _)| *s >= from)
                    .map(|(_, c)| c)
                    .sum()
            };
            match limit.algorithm {
                Algorithm::FixedWindow => {
                    let n = used_since(t - t % p);
                    if n > q {
                        return Err(format!("{n} > {q} in the window of {t}"));
                    }
                }
                Algorithm::SlidingWindow => {
                    let n = used_since((t + 1).saturating_sub(p));
                    if n > q {
                        return Err(format!("{n} > {q} in the {p} ms ending at {t}"));
                    }
                }
                Algorithm::TokenBucket | Algorithm::Gcra => {
                    for &(s, _) in &admitted[..=i] {
                        let n = used_since(s);
                        if u128::from(n) * u128::from(p)
                            > u128::from(b) * u128::from(p) + u128::from(q) * u128::from(t - s)
                        {
                            return Err(format!("{n} permits in [{s}, {t}]"));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn any_limit() -> impl Strategy<Value = Limit> {
        (
            prop_oneof![
                Just(Algorithm::FixedWindow),
                Just(Algorithm::SlidingWindow),
                Just(Algorithm::TokenBucket),
                Just(Algorithm::Gcra),
            ],
            1u64..12,
            1u64..2_000,
            0u64..6,
        )
            .prop_map(|(algorithm, quota, period_ms, extra)| {
                limit(algorithm, quota, period_ms, quota + extra)
            })
    }

    fn limit_of(algorithm: Algorithm) -> impl Strategy<Value = Limit> {
        (1u64..12, 1u64..2_000, 0u64..6).prop_map(move |(quota, period_ms, extra)| {
            limit(algorithm, quota, period_ms, quota + extra)
        })
    }

    /// Calls at increasing times (steps of 0..period/2), costs 1..=3.
    fn calls(period_hint: u64) -> impl Strategy<Value = Vec<(u64, u64)>> {
        prop::collection::vec((0..period_hint, 1u64..=3), 1..120).prop_map(|steps| {
            let mut t = 1_795_305_600_000u64;
            steps
                .into_iter()
                .map(|(dt, cost)| {
                    t += dt;
                    (t, cost)
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn every_algorithm_matches_its_reference_and_keeps_its_promise(
            (limit, calls) in any_limit().prop_flat_map(|l| (Just(l), calls(l.period_ms / 2 + 2)))
        ) {
            let got = run(&limit, &calls);
            let want = reference(&limit, &calls);
            for (i, (o, w)) in got.iter().zip(&want).enumerate() {
                prop_assert_eq!(o.allowed, *w, "call {} of {:?}: {:?}", i, calls[i], o);
            }
            let admitted: Vec<(u64, u64)> = calls
                .iter()
                .zip(&got)
                .filter(|(_, o)| o.allowed)
                .map(|(c, _)| *c)
                .collect();
            prop_assert_eq!(promise_holds(&limit, &admitted), Ok(()));
        }

        #[test]
        fn a_denial_says_truly_when_to_retry(
            (limit, calls) in any_limit().prop_flat_map(|l| (Just(l), calls(l.period_ms / 2 + 2)))
        ) {
            // Retrying exactly at retry_after succeeds; one ms earlier fails.
            let got = run(&limit, &calls);
            let Some(i) = got.iter().position(|o| !o.allowed) else { return Ok(()) };
            let cost = calls[i].1;
            prop_assume!(cost <= limit.quota.min(limit.burst));
            let t = calls[i].0 + got[i].retry_after_ms;
            let mut at_retry = calls[..=i].to_vec();
            at_retry.push((t, cost));
            prop_assert!(run(&limit, &at_retry)[i + 1].allowed, "{:?} at {}", got[i], t);
            if got[i].retry_after_ms > 1 {
                let mut early = calls[..=i].to_vec();
                early.push((t - 1, cost));
                prop_assert!(!run(&limit, &early)[i + 1].allowed, "{:?}", got[i]);
            }
        }

        #[test]
        fn leased_permits_spent_late_keep_the_window_promise(
            sliding in any::<bool>(),
            quota in 1u64..20,
            period_ms in 10u64..2_000,
            hold_ms in 0u64..1_000,
            ops in prop::collection::vec((0u64..400, 1u64..6, 0u64..1_000), 1..80),
        ) {
            // A lease holder takes up to `batch`, spends some at random times
            // before the lease ends, and returns the rest on its next call.
            let algorithm = if sliding { Algorithm::SlidingWindow } else { Algorithm::FixedWindow };
            let limit = limit(algorithm, quota, period_ms, quota);
            let mut stored: Option<State> = None;
            let mut spends: Vec<(u64, u64)> = Vec::new();
            let mut pending: Option<Release> = None;
            let mut t = 1_795_305_600_000u64;
            let mut last_report: Option<(u64, u64)> = None;
            for (dt, batch, spend_offset) in ops {
                t += dt;
                let (state, o, _) = decide(&limit, stored.take(), t, pending.take(), Some(Acquire { cost: 1, max: batch, hold_ms }));
                stored = Some(state);
                // Inside one fixed window the report never goes up, leases
                // given back or not.
                if !sliding {
                    let window = t / period_ms;
                    if let Some((w, r)) = last_report && w == window {
                        prop_assert!(o.remaining <= r, "r rose from {} to {} at {}", r, o.remaining, t);
                    }
                    last_report = Some((window, o.remaining));
                }
                if o.granted > 0 {
                    let span = o.hold_until_ms - o.at_ms;
                    let spent = (spend_offset % (o.granted + 1)).max(1);
                    for k in 0..spent {
                        let at = o.at_ms + (spend_offset + k * 37) % (span + 1);
                        spends.push((at, 1));
                    }
                    if spent < o.granted {
                        pending = Some(Release { at_ms: o.at_ms, until_ms: o.hold_until_ms, permits: o.granted - spent });
                    }
                }
            }
            spends.sort_unstable();
            prop_assert_eq!(promise_holds(&limit, &spends), Ok(()));
        }

        #[test]
        fn after_a_limit_change_the_new_limit_keeps_its_promise(
            (old, new, calls, switch) in any_limit()
                .prop_flat_map(|old| (Just(old), limit_of(old.algorithm)))
                .prop_flat_map(|(old, new)| {
                    let hint = old.period_ms.max(new.period_ms) / 2 + 2;
                    (Just(old), Just(new), calls(hint), 0usize..120)
                })
        ) {
            // One key, its limit changed between two calls: what is admitted
            // from the change on keeps the new limit's promise on its own
            // (what was taken before can only make it stricter).
            let mut stored: Option<Vec<u8>> = None;
            let mut after = Vec::new();
            for (i, &(t, cost)) in calls.iter().enumerate() {
                let l = if i < switch { old } else { new };
                let state = stored.as_deref().and_then(|b| State::decode(&l, b).unwrap());
                let (state, o, _) = decide(&l, state, t, None, take(cost));
                stored = Some(state.encode());
                if i >= switch && o.allowed {
                    after.push((t, cost));
                }
                prop_assert!(o.remaining <= l.capacity(), "{:?} under {:?}", o, l);
                if !o.allowed && cost <= l.capacity() {
                    // A refusal never asks for more than the new limit's worst wait.
                    let worst = l.period_ms.saturating_mul(cost.div_ceil(l.quota.min(l.burst)).max(1) + 1)
                        .max(old.period_ms.saturating_mul(2));
                    prop_assert!(o.retry_after_ms <= worst, "{:?} under {:?} after {:?}", o, l, old);
                }
            }
            prop_assert_eq!(promise_holds(&new, &after), Ok(()));
        }

        #[test]
        fn states_round_trip(limit in any_limit(), calls in calls(500)) {
            let mut state = None;
            for (t, cost) in calls {
                let (next, _, _) = decide(&limit, state, t, None, take(cost));
                prop_assert_eq!(State::decode(&limit, &next.encode()), Ok(Some(next.clone())));
                state = Some(next);
            }
        }
    }

    #[test]
    fn permits_given_back_are_grantable_but_never_reported_again_in_the_window() {
        // Issue 16: leased scopes reported `r` rising (971 -> 989) as leases
        // came back. Fixed window: the peak count is what is reported.
        let l = limit(Algorithm::FixedWindow, 100, 60_000, 100);
        let lease = Some(Acquire {
            cost: 1,
            max: 20,
            hold_ms: 1_000,
        });
        let (s, a, _) = decide(&l, None, 0, None, lease);
        assert_eq!((a.granted, a.remaining), (20, 80));
        let (s, b, _) = decide(&l, Some(s), 10, None, lease);
        assert_eq!((b.granted, b.remaining), (20, 60));
        // The first lease comes back with 15 unspent: they can be granted
        // again, but the report does not go back up.
        let back = Release {
            at_ms: a.at_ms,
            until_ms: a.hold_until_ms,
            permits: 15,
        };
        let (s, c, _) = decide(&l, Some(s), 2_000, Some(back), None);
        assert_eq!(c.remaining, 60, "a report only: what the store holds");
        let (s, d, _) = decide(&l, Some(s), 2_001, None, take(75));
        assert!(d.allowed, "the 15 given back are grantable: {d:?}");
        assert_eq!(d.remaining, 0);
        // The next window starts whole.
        let (_, e, _) = decide(&l, Some(s), 60_000, None, take(1));
        assert_eq!(e.remaining, 99);

        // Sliding window: an entry keeps its granted size in the report
        // until it leaves the window.
        let l = limit(Algorithm::SlidingWindow, 100, 60_000, 100);
        let (s, a, _) = decide(&l, None, 0, None, lease);
        assert_eq!(a.remaining, 80);
        let back = Release {
            at_ms: a.at_ms,
            until_ms: a.hold_until_ms,
            permits: 15,
        };
        let (s, c, _) = decide(&l, Some(s), 2_000, Some(back), take(1));
        assert_eq!(c.remaining, 79);
        let (s, d, _) = decide(&l, Some(s), 2_001, None, take(94));
        assert!(d.allowed, "5 held + 1 leaves 94 grantable: {d:?}");
        assert_eq!(d.remaining, 0);
        // Once the lease's span (to 1 s) has left the window, its 20 leave
        // the report too: 100 - 1 - 94.
        let (_, e, _) = decide(&l, Some(s), 61_001, None, None);
        assert_eq!(e.remaining, 5);
    }

    #[test]
    fn a_lowered_gcra_limit_does_not_lock_a_key_out() {
        // Before states recorded their scale, a TAT scaled by a quota of
        // 1000 read under 100 lay ten times later than now: a key lowered
        // from 1000 to 100 a minute was refused for decades.
        let t = 1_795_305_600_000;
        let big = limit(Algorithm::Gcra, 1_000, 60_000, 1_000);
        let small = limit(Algorithm::Gcra, 100, 60_000, 100);
        let (s, _, _) = decide(&big, None, t, None, take(10));
        let s = State::decode(&small, &s.encode()).unwrap();
        let (s, o, _) = decide(&small, s, t, None, take(1));
        assert!(o.allowed, "{o:?}");
        assert_eq!(o.remaining, 89, "the 10 taken stay taken");
        // Raised again: the 11 taken, of 1000.
        let (_, o, _) = decide(&big, Some(s), t, None, take(1));
        assert_eq!(o.remaining, 988);
    }

    #[test]
    fn a_bucket_keeps_its_debt_capped_at_the_new_burst() {
        let t = 1_795_305_600_000;
        let wide = limit(Algorithm::TokenBucket, 100, 60_000, 100);
        let (s, _, _) = decide(&wide, None, t, None, take(30));
        // Same rate over twice the period: 30 taken of 200.
        let slow = limit(Algorithm::TokenBucket, 200, 120_000, 200);
        let (_, o, _) = decide(&slow, Some(s.clone()), t, None, None);
        assert_eq!(o.remaining, 170);
        // A burst of 20 under a debt of 30: empty, not below; one permit
        // refills at the new rate (10 a minute: 6 s).
        let narrow = limit(Algorithm::TokenBucket, 10, 60_000, 20);
        let (s, o, _) = decide(&narrow, Some(s), t, None, take(1));
        assert!(!o.allowed);
        assert_eq!(o.retry_after_ms, 6_000);
        let (_, o, _) = decide(&narrow, Some(s), t + 6_000, None, take(1));
        assert!(o.allowed);
    }

    #[test]
    fn a_fixed_window_carries_its_count_into_the_new_period() {
        let t = 1_795_305_600_000 + 5 * 60_000; // 00:05
        let minute = limit(Algorithm::FixedWindow, 10, 60_000, 10);
        let hour = limit(Algorithm::FixedWindow, 10, 3_600_000, 10);
        let (s, _, _) = decide(&minute, None, t, None, take(4));
        // A minute window inside the current hour: its 4 count there.
        let (s, o, _) = decide(&hour, Some(s), t + 30_000, None, take(1));
        assert_eq!((o.remaining, o.reset_ms), (5, 55 * 60_000 - 30_000));
        // Back to minutes: the hour still reaches into this minute.
        let (_, o, _) = decide(&minute, Some(s.clone()), t + 90_000, None, None);
        assert_eq!(o.remaining, 5);
        // A later minute of the same hour starts afresh under minutes.
        let (s, o, _) = decide(&minute, Some(s), t + 90_000, None, take(1));
        assert_eq!(o.remaining, 4);
        let (_, o, _) = decide(&minute, Some(s), t + 150_000, None, take(1));
        assert_eq!(o.remaining, 9);
    }

    #[test]
    fn states_written_before_the_report_fields_still_read() {
        let fixed = limit(Algorithm::FixedWindow, 10, 1_000, 10);
        let mut old = vec![1];
        old.extend_from_slice(&5_000u64.to_le_bytes());
        old.extend_from_slice(&3u64.to_le_bytes());
        assert_eq!(
            State::decode(&fixed, &old),
            Ok(Some(State::Fixed {
                window_start: 5_000,
                count: 3,
                peak: 3,
                period_ms: 1_000
            }))
        );
        let sliding = limit(Algorithm::SlidingWindow, 10, 1_000, 10);
        let mut old = vec![2];
        for v in [7u64, 9, 4] {
            old.extend_from_slice(&v.to_le_bytes());
        }
        let state = State::decode(&sliding, &old).unwrap().unwrap();
        assert_eq!(
            state,
            State::Sliding {
                entries: vec![Entry {
                    at: 7,
                    until: 9,
                    permits: 4,
                    returned: 0
                }]
            }
        );
        assert_eq!(State::decode(&sliding, &state.encode()), Ok(Some(state)));
    }

    #[test]
    fn fixed_window_counts_and_resets_on_the_boundary() {
        let l = limit(Algorithm::FixedWindow, 3, 1_000, 3);
        let t0 = 10_000;
        let o = run(
            &l,
            &[
                (t0, 1),
                (t0 + 1, 1),
                (t0 + 2, 1),
                (t0 + 3, 1),
                (t0 + 1_000, 1),
            ],
        );
        let allowed: Vec<bool> = o.iter().map(|o| o.allowed).collect();
        assert_eq!(allowed, [true, true, true, false, true]);
        assert_eq!(o[2].remaining, 0);
        assert_eq!(o[3].retry_after_ms, 997);
        assert_eq!(o[4].remaining, 2);
    }

    #[test]
    fn sliding_window_is_exact_across_the_boundary() {
        // 5 per 15 minutes: 5 at 14:59 deny a 6th at 15:01, allow it at 29:59.
        let l = limit(Algorithm::SlidingWindow, 5, 900_000, 5);
        let t = 899_000;
        let mut calls: Vec<(u64, u64)> = (0..5).map(|i| (t + i, 1)).collect();
        calls.push((901_000, 1));
        let o = run(&l, &calls);
        assert!(!o[5].allowed);
        assert_eq!(o[5].retry_after_ms, 899_000 + 900_000 - 901_000);
    }

    #[test]
    fn token_bucket_refills_continuously() {
        // 100 per minute, burst 100: empty it, then one token per 600 ms.
        let l = limit(Algorithm::TokenBucket, 100, 60_000, 100);
        let mut calls = vec![(0, 100), (1, 1)];
        calls.push((600, 1));
        let o = run(&l, &calls);
        assert!(o[0].allowed && !o[1].allowed && o[2].allowed);
        assert_eq!(o[1].retry_after_ms, 599);
    }

    #[test]
    fn gcra_and_token_bucket_agree() {
        let calls: Vec<(u64, u64)> = (0..500)
            .map(|i| (i * 37 % 9_000 + i * 5, 1 + i % 3))
            .collect();
        let mut sorted = calls.clone();
        sorted.sort_unstable();
        let a = run(&limit(Algorithm::TokenBucket, 7, 1_000, 10), &sorted);
        let b = run(&limit(Algorithm::Gcra, 7, 1_000, 10), &sorted);
        let allowed = |o: &[Outcome]| o.iter().map(|o| o.allowed).collect::<Vec<_>>();
        assert_eq!(allowed(&a), allowed(&b));
    }

    #[test]
    fn a_state_of_another_algorithm_starts_afresh_and_garbage_is_an_error() {
        let l = limit(Algorithm::Gcra, 1, 1, 1);
        let fixed = State::fresh(&limit(Algorithm::FixedWindow, 1, 1, 1), 5).encode();
        assert_eq!(State::decode(&l, &fixed), Ok(None));
        assert!(State::decode(&l, &[4, 1, 2]).is_err());
        assert!(State::decode(&l, &[]).is_err());
    }
}
