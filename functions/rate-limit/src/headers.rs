//! The IETF rate-limit fields (draft-ietf-httpapi-ratelimit-headers-09):
//! `RateLimit-Policy` lists each applicable scope's quota and window,
//! `RateLimit` its remaining permits and seconds to reset, both as
//! structured-field lists of items named by the scope, e.g.
//! `RateLimit-Policy: "API_GENERAL";q=100;w=60` and
//! `RateLimit: "API_GENERAL";r=42;t=18`. The most constrained scope comes first.
//!
//! `r` is what the store holds for the key (permits leased to an isolate
//! count as taken) and never rises inside a window unless the key's limit
//! is raised: permits given back unspent are grantable again but not
//! reported again until the window moves (see [`crate::algorithm`]). It may
//! understate what is left, never overstate it. `q` and `w` are the limit
//! applied to the client: its scope's, or the override naming it.

use edge_core::Problem;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::algorithm::{Limit, Outcome};

/// `RateLimit-Policy`.
pub const POLICY_FIELD: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub const RATELIMIT_FIELD: HeaderName = HeaderName::from_static("ratelimit");

/// One scope's line in the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeReport {
    /// The scope's name (`[A-Za-z0-9_-]`, so it needs no escaping).
    pub name: String,
    /// Quota per window.
    pub quota: u64,
    /// Window in seconds.
    pub window: u64,
    /// Permits left.
    pub remaining: u64,
    /// Seconds until the quota is whole again (or, when refused, until retrying helps).
    pub reset: u64,
}

impl ScopeReport {
    /// The report of the scope `name` after `outcome` under `limit` (the
    /// scope's own or an override's: the limit actually applied).
    pub fn new(name: &str, limit: &Limit, outcome: &Outcome) -> Self {
        let reset_ms = if outcome.allowed {
            outcome.reset_ms
        } else {
            outcome.retry_after_ms
        };
        ScopeReport {
            name: name.to_owned(),
            quota: limit.quota,
            window: limit.period_ms.div_ceil(1000),
            remaining: outcome.remaining,
            reset: reset_ms.div_ceil(1000),
        }
    }

    /// The decision body's entry.
    pub fn to_json(&self) -> Value {
        json!({ "scope": self.name, "limit": self.quota, "window": self.window,
                "remaining": self.remaining, "reset": self.reset })
    }
}

fn ordered(reports: &[ScopeReport]) -> Vec<&ScopeReport> {
    let mut sorted: Vec<&ScopeReport> = reports.iter().collect();
    sorted.sort_by_key(|r| (r.remaining, std::cmp::Reverse(r.reset)));
    sorted
}

/// The two field values, or `None` when no scope applied.
pub fn field_values(reports: &[ScopeReport]) -> Option<(String, String)> {
    if reports.is_empty() {
        return None;
    }
    let sorted = ordered(reports);
    let policy = sorted
        .iter()
        .map(|r| format!("\"{}\";q={};w={}", r.name, r.quota, r.window))
        .collect::<Vec<_>>()
        .join(", ");
    let state = sorted
        .iter()
        .map(|r| format!("\"{}\";r={};t={}", r.name, r.remaining, r.reset))
        .collect::<Vec<_>>()
        .join(", ");
    Some((policy, state))
}

/// Both fields as headers, or none when no scope applied.
fn fields(reports: &[ScopeReport]) -> Vec<(HeaderName, HeaderValue)> {
    let Some((policy, state)) = field_values(reports) else {
        return Vec::new();
    };
    // Scope names are [A-Za-z0-9_-] and the rest digits: always valid.
    match (
        HeaderValue::from_str(&policy),
        HeaderValue::from_str(&state),
    ) {
        (Ok(policy), Ok(state)) => vec![(POLICY_FIELD, policy), (RATELIMIT_FIELD, state)],
        _ => Vec::new(),
    }
}

/// Sets both fields on `headers`.
pub fn insert_fields(headers: &mut HeaderMap, reports: &[ScopeReport]) {
    for (name, value) in fields(reports) {
        headers.insert(name, value);
    }
}

/// `problem` with both fields.
pub fn with_fields(problem: Problem, reports: &[ScopeReport]) -> Problem {
    fields(reports)
        .into_iter()
        .fold(problem, |problem, (name, value)| {
            problem.with_header(name, value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, remaining: u64, reset: u64) -> ScopeReport {
        ScopeReport {
            name: name.into(),
            quota: 100,
            window: 60,
            remaining,
            reset,
        }
    }

    #[test]
    fn fields_are_structured_lists_with_the_tightest_scope_first() {
        let (policy, state) =
            field_values(&[report("API_GENERAL", 42, 18), report("AUTH_LOGIN", 0, 840)]).unwrap();
        assert_eq!(
            policy,
            "\"AUTH_LOGIN\";q=100;w=60, \"API_GENERAL\";q=100;w=60"
        );
        assert_eq!(state, "\"AUTH_LOGIN\";r=0;t=840, \"API_GENERAL\";r=42;t=18");
        assert_eq!(field_values(&[]), None);
    }
}
