//! What one isolate remembers between requests: leased permits it may spend
//! without a store round trip, and keys it knows are blocked until a time.
//! Bounded by `max_tracked_keys`; forgetting is always safe (it costs a
//! round trip or strands a lease's permits, never admits too many).

use std::collections::HashMap;

use crate::algorithm::{Outcome, Release};

/// The most leases one isolate holds per key.
const MAX_LEASES_PER_KEY: usize = 16;

/// Permits leased from the store, spent locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The grant's time on the store's clock (identifies it for a release).
    pub at: u64,
    /// The grant's last spending millisecond on the store's clock.
    pub until: u64,
    /// The same deadline on this isolate's clock (never later in real time).
    pub deadline: u64,
    /// Permits not yet spent.
    pub remaining: u64,
    /// What the store had left when it granted the lease.
    pub store_remaining: u64,
    /// When the scope's quota is whole again, on this isolate's clock.
    pub reset_at: u64,
}

impl Lease {
    /// The lease for `granted` permits of `outcome`, decided while this
    /// isolate's clock read `asked_at`.
    pub fn of(outcome: &Outcome, asked_at: u64, granted: u64) -> Lease {
        Lease {
            at: outcome.at_ms,
            until: outcome.hold_until_ms,
            deadline: asked_at.saturating_add(outcome.hold_until_ms.saturating_sub(outcome.at_ms)),
            remaining: granted,
            store_remaining: outcome.remaining,
            reset_at: asked_at.saturating_add(outcome.reset_ms),
        }
    }

    fn usable(&self, cost: u64, now: u64) -> bool {
        self.deadline >= now && self.remaining >= cost
    }
}

#[derive(Debug, Clone, Copy)]
struct Blocked {
    until: u64,
    cost: u64,
}

/// The isolate's memory of leases and blocked keys.
#[derive(Debug)]
pub struct LocalState {
    max_keys: usize,
    leases: HashMap<String, Vec<Lease>>,
    blocked: HashMap<String, Blocked>,
}

impl LocalState {
    /// Empty, remembering at most `max_keys` keys of each kind.
    pub fn new(max_keys: usize) -> Self {
        LocalState {
            max_keys,
            leases: HashMap::new(),
            blocked: HashMap::new(),
        }
    }

    /// Until when `key` is known to refuse `cost` permits, if it is.
    pub fn blocked_until(&self, key: &str, cost: u64, now: u64) -> Option<u64> {
        self.blocked
            .get(key)
            .filter(|b| b.until > now && cost >= b.cost)
            .map(|b| b.until)
    }

    /// Remembers that `key` refuses `cost` permits until `until`.
    pub fn block(&mut self, key: &str, cost: u64, until: u64, now: u64) {
        if self.blocked.len() >= self.max_keys {
            self.blocked.retain(|_, b| b.until > now);
            if self.blocked.len() >= self.max_keys {
                self.blocked.clear();
            }
        }
        self.blocked.insert(key.to_owned(), Blocked { until, cost });
    }

    /// Spends `cost` permits of a lease on `key`, returning the lease after.
    pub fn spend(&mut self, key: &str, cost: u64, now: u64) -> Option<Lease> {
        let lease = self
            .leases
            .get_mut(key)?
            .iter_mut()
            .find(|l| l.usable(cost, now))?;
        lease.remaining -= cost;
        Some(*lease)
    }

    /// Takes one lease of `key` that can no longer serve `cost` but still
    /// holds permits, to give them back with the next store call.
    pub fn take_release(&mut self, key: &str, cost: u64, now: u64) -> Option<Release> {
        let leases = self.leases.get_mut(key)?;
        leases.retain(|l| l.remaining > 0);
        let i = leases.iter().position(|l| !l.usable(cost, now))?;
        let lease = leases.swap_remove(i);
        Some(Release {
            at_ms: lease.at,
            until_ms: lease.until,
            permits: lease.remaining,
        })
    }

    /// Adds permits to `key`'s leases (a new grant, or permits given back).
    pub fn credit(&mut self, key: &str, lease: Lease, now: u64) {
        if lease.remaining == 0 {
            return;
        }
        if !self.leases.contains_key(key) && self.leases.len() >= self.max_keys {
            self.leases
                .retain(|_, ls| ls.iter().any(|l| l.deadline >= now && l.remaining > 0));
            if self.leases.len() >= self.max_keys {
                self.leases.clear();
            }
        }
        let leases = self.leases.entry(key.to_owned()).or_default();
        if let Some(same) = leases
            .iter_mut()
            .find(|l| l.at == lease.at && l.until == lease.until)
        {
            same.remaining += lease.remaining;
        } else if leases.len() < MAX_LEASES_PER_KEY {
            leases.push(lease);
        }
    }

    /// Forgets everything about `key` (an admin reset).
    pub fn forget(&mut self, key: &str) {
        self.leases.remove(key);
        self.blocked.remove(key);
    }

    /// How many keys are remembered (leases, blocked).
    pub fn len(&self) -> (usize, usize) {
        (self.leases.len(), self.blocked.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(at: u64, remaining: u64) -> Lease {
        Lease {
            at,
            until: at + 100,
            deadline: at + 100,
            remaining,
            store_remaining: 0,
            reset_at: at + 1000,
        }
    }

    #[test]
    fn leases_are_spent_until_their_deadline_then_released() {
        let mut s = LocalState::new(16);
        s.credit("k", lease(1000, 3), 1000);
        assert_eq!(s.spend("k", 2, 1050).unwrap().remaining, 1);
        assert!(s.spend("k", 2, 1050).is_none());
        assert_eq!(s.take_release("k", 2, 1050).unwrap().permits, 1);
        s.credit("k", lease(2000, 3), 2000);
        assert!(s.spend("k", 1, 2101).is_none(), "past the deadline");
        assert_eq!(s.take_release("k", 1, 2101).unwrap().at_ms, 2000);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut s = LocalState::new(16);
        for i in 0..1000u64 {
            s.credit(&format!("k{i}"), lease(i, 1), 10_000);
            s.block(&format!("b{i}"), 1, i, 10_000);
        }
        let (leases, blocked) = s.len();
        assert!(leases <= 16 && blocked <= 16, "{leases} {blocked}");
    }

    #[test]
    fn a_block_covers_costs_at_least_as_large_until_it_ends() {
        let mut s = LocalState::new(16);
        s.block("k", 2, 500, 0);
        assert_eq!(s.blocked_until("k", 3, 100), Some(500));
        assert_eq!(s.blocked_until("k", 1, 100), None);
        assert_eq!(s.blocked_until("k", 3, 500), None);
    }
}
