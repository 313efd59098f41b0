//! The breaker in the platform's atomic store, for runtimes that build an
//! instance per request (Spin): every instance reads and updates one small
//! record per origin ([`State::encode`], under `edge:breaker:<origin>`), so
//! that together they see what one long-lived breaker would.
//!
//! - Admission reads the record (one `get`). Only taking a half-open
//!   breaker's probe writes (compare-and-swap), so that one instance
//!   probes.
//! - An outcome is a compare-and-swap from the value admission read, tried
//!   again on the value a conflict returns (at most [`MAX_ATTEMPTS`]
//!   times): concurrent outcomes are all counted, none overwrites another.
//!   An outcome that changes nothing (a success on a window of successes)
//!   writes nothing.
//! - A store that fails is no reason to fail a request: the breaker is
//!   taken as closed for the rest of the request, with a warning.
//!
//! A probe whose instance goes away without an outcome keeps its lease
//! (the request's deadline, plus [`super::PROBE_LEASE_SLACK`]) until it
//! runs out; then another request probes.

use std::time::Duration;

use serde_json::json;

use super::Origin;
use super::breaker::{BreakerSnapshot, State, Ticket, Transition};
use crate::function::Context;
use crate::platform::{AtomicStore, CasOutcome, StoreError, Timestamp};

/// The prefix of the breaker records' keys; the origin's URL follows.
pub const KEY_PREFIX: &str = "edge:breaker:";

/// Compare-and-swap attempts for one update before it is given up.
pub const MAX_ATTEMPTS: u32 = 8;

/// The longest key used: stores limit keys (Spin's key-value to 255 bytes).
const MAX_KEY_BYTES: usize = 250;

/// The store key of `origin`'s breaker: [`KEY_PREFIX`] and the origin's
/// URL, or for a URL too long for a key its beginning and a hash of the
/// whole (FNV-1a).
pub(crate) fn key_for(origin: &Origin) -> String {
    let key = format!("{KEY_PREFIX}{origin}");
    if key.len() <= MAX_KEY_BYTES {
        return key;
    }
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut cut = MAX_KEY_BYTES - 17;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}#{hash:016x}", &key[..cut])
}

/// Leave to send from the shared breaker under `key`.
pub(crate) struct Permit<'a> {
    store: &'a dyn AtomicStore,
    key: &'a str,
    /// `None`: the store failed; nothing more is read or recorded.
    ticket: Option<Ticket>,
    /// The value last read or written.
    seen: Option<Vec<u8>>,
}

/// The stored state (the default when absent, or when the record does not
/// decode: it is replaced on the next write).
fn decode(key: &str, bytes: Option<&[u8]>, ctx: &Context<'_>) -> State {
    match bytes.map(State::decode) {
        None => State::default(),
        Some(Ok(state)) => state,
        Some(Err(reason)) => {
            ctx.log().warn(
                "origin breaker record unreadable; starting afresh",
                json!({ "key": key, "reason": reason }),
            );
            State::default()
        }
    }
}

fn store_failed(key: &str, error: &StoreError, ctx: &Context<'_>) {
    ctx.log().warn(
        "origin breaker not read or written in the store; taking it as closed",
        json!({ "key": key, "error": error.to_string() }),
    );
}

/// Leave to send at `now` (a probe holds it for `lease`), or how long until
/// the breaker under `key` may let one through.
pub(crate) async fn admit<'a>(
    store: &'a dyn AtomicStore,
    key: &'a str,
    now: Timestamp,
    lease: Duration,
    ctx: &Context<'_>,
) -> Result<Permit<'a>, Duration> {
    let mut permit = Permit {
        store,
        key,
        ticket: None,
        seen: None,
    };
    match store.get(key).await {
        Ok(seen) => permit.seen = seen,
        Err(e) => {
            store_failed(key, &e, ctx);
            return Ok(permit);
        }
    }
    let mut admission = Err(Duration::ZERO);
    if !permit
        .change(ctx, |state| admission = state.admit(now, lease))
        .await
    {
        return Ok(permit);
    }
    permit.ticket = Some(admission?);
    Ok(permit)
}

impl Permit<'_> {
    /// Whether this is a half-open breaker's single probe.
    pub(crate) fn is_probe(&self) -> bool {
        self.ticket.is_some_and(|t| t.is_probe())
    }

    /// Records the outcome of one attempt at `now`; also says whether the
    /// breaker is still closed (retries go on only then).
    pub(crate) async fn record(
        &mut self,
        now: Timestamp,
        failed: bool,
        ctx: &Context<'_>,
    ) -> (Option<Transition>, bool) {
        let Some(ticket) = self.ticket else {
            return (None, true);
        };
        let mut outcome = (None, true);
        let stored = self
            .change(ctx, |state| {
                outcome = (state.record(&ticket, now, failed), state.is_closed());
            })
            .await;
        if stored { outcome } else { (None, true) }
    }

    /// Gives back a probe's lease when its request ends without an outcome.
    pub(crate) async fn release(&mut self, ctx: &Context<'_>) {
        if let Some(ticket) = self.ticket.filter(Ticket::is_probe) {
            self.change(ctx, |state| state.release(&ticket)).await;
        }
    }

    /// Applies `step` to the stored state with compare-and-swap, from the
    /// value last seen. A conflict returns the value now stored, and the
    /// step runs again on it (so `step` must only set what it computes).
    /// Writes nothing when the state does not change. On a store failure
    /// or when the attempts run out, the permit stops using the store and
    /// this answers `false`.
    async fn change(&mut self, ctx: &Context<'_>, mut step: impl FnMut(&mut State)) -> bool {
        for _ in 0..MAX_ATTEMPTS {
            let before = decode(self.key, self.seen.as_deref(), ctx);
            let mut after = before.clone();
            step(&mut after);
            if after == before {
                return true;
            }
            let new = after.encode();
            match self
                .store
                .compare_and_swap(self.key, self.seen.as_deref(), &new)
                .await
            {
                Ok(CasOutcome::Swapped) => {
                    self.seen = Some(new);
                    return true;
                }
                Ok(CasOutcome::Conflict { current }) => self.seen = current,
                Err(e) => {
                    store_failed(self.key, &e, ctx);
                    self.ticket = None;
                    return false;
                }
            }
        }
        store_failed(self.key, &StoreError::Contention(MAX_ATTEMPTS), ctx);
        self.ticket = None;
        false
    }
}

/// The state of the breaker under `key` at `now` (closed when the store
/// fails).
pub(crate) async fn snapshot(
    store: &dyn AtomicStore,
    key: &str,
    now: Timestamp,
    ctx: &Context<'_>,
) -> BreakerSnapshot {
    let stored = match store.get(key).await {
        Ok(stored) => stored,
        Err(e) => {
            store_failed(key, &e, ctx);
            None
        }
    };
    decode(key, stored.as_deref(), ctx).snapshot(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_origin_and_stay_short() {
        let origin = Origin::parse("https://api.test:8443/v1/").unwrap();
        assert_eq!(key_for(&origin), "edge:breaker:https://api.test:8443/v1");
        let long = |tail: &str| {
            Origin::parse(&format!("https://api.test/{}{tail}", "p".repeat(300))).unwrap()
        };
        let (a, b) = (key_for(&long("a")), key_for(&long("b")));
        assert_eq!(a.len(), MAX_KEY_BYTES);
        assert!(a.starts_with("edge:breaker:https://api.test/ppp"), "{a}");
        assert_ne!(a, b, "the hash tells them apart");
    }
}
