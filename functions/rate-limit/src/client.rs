//! The client side of rate limiting: a [`Throttle`] that holds back calls
//! before they are sent, with the function's own algorithms (the same
//! [`crate::algorithm::decide`], state in memory), and the reading of the
//! IETF `RateLimit` / `RateLimit-Policy` fields ([`parse_fields`]) so that a
//! client honours what a server reports: once a server says a scope has
//! nothing left, the throttle refuses that key until the server's reset.
//! Used by the browser and JavaScript package (`Throttle`,
//! `parseRateLimit`).
//!
//! # Examples
//!
//! ```
//! use rate_limit::client::{Throttle, ThrottleOptions, parse_fields};
//!
//! let options: ThrottleOptions =
//!     serde_json::from_str(r#"{"algorithm": "fixed_window", "limit": 2, "period": "1m"}"#).unwrap();
//! let mut throttle = Throttle::new(options).unwrap();
//! assert!(throttle.acquire("me", 1, 0).allowed);
//! assert!(throttle.acquire("me", 1, 1).allowed);
//! assert!(!throttle.acquire("me", 1, 2).allowed);
//!
//! let seen = parse_fields(Some(r#""API_GENERAL";r=0;t=18"#), Some(r#""API_GENERAL";q=100;w=60"#)).unwrap();
//! assert_eq!((seen[0].remaining, seen[0].reset, seen[0].quota), (Some(0), Some(18), Some(100)));
//! ```

use std::collections::HashMap;

use edge_core::policy::PolicyDuration;
use serde::{Deserialize, Serialize};

use crate::algorithm::{Acquire, Algorithm, Limit, State, decide};
use crate::policy::{RateLimitPolicy, period_ms};

/// The most keys a throttle remembers; beyond it the oldest decisions are
/// forgotten (a forgotten key starts fresh, as a new client would).
pub const MAX_KEYS: usize = 10_000;

/// A throttle's limit: either a scope of the function's built-in policy by
/// name (`AUTH_LOGIN`, `API_GENERAL`, …) or an algorithm, a limit and a
/// period (`"1m"`, `"15m"`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleOptions {
    /// A scope of the built-in policy; the other fields then stay unset.
    #[serde(default)]
    pub scope: Option<String>,
    /// `fixed_window`, `sliding_window`, `token_bucket` or `gcra`.
    #[serde(default)]
    pub algorithm: Option<Algorithm>,
    /// Permits per period.
    #[serde(default)]
    pub limit: Option<u64>,
    /// The period, e.g. `"1m"`.
    #[serde(default)]
    pub period: Option<PolicyDuration>,
    /// The bucket size (token bucket, GCRA); default `limit`.
    #[serde(default)]
    pub burst: Option<u64>,
}

/// What one [`Throttle::acquire`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Whether the call may go.
    pub allowed: bool,
    /// Permits left after it.
    pub remaining: u64,
    /// Milliseconds until the whole quota is free again.
    pub reset_ms: u64,
    /// When refused: milliseconds until retrying can succeed.
    pub retry_after_ms: u64,
    /// Whether a server's report (not this throttle's own count) refused it.
    pub server: bool,
}

/// Client-side throttling with the function's algorithms.
#[derive(Debug)]
pub struct Throttle {
    name: String,
    limit: Limit,
    states: HashMap<String, State>,
    /// Keys a server reported exhausted, until when (ms).
    blocked: HashMap<String, u64>,
}

impl Throttle {
    /// A throttle of `options`; an error names the bad field.
    pub fn new(options: ThrottleOptions) -> Result<Throttle, String> {
        let (name, limit) = match &options.scope {
            Some(scope) => {
                if options.algorithm.is_some() || options.limit.is_some() {
                    return Err("scope: give a scope or an algorithm and limit, not both".into());
                }
                builtin_scope(scope)?
            }
            None => {
                let algorithm = options.algorithm.ok_or(
                    "algorithm: missing (fixed_window, sliding_window, token_bucket, gcra)",
                )?;
                let quota = options.limit.ok_or("limit: missing")?;
                let period = options.period.ok_or("period: missing (e.g. \"1m\")")?;
                let name = "client".to_owned();
                let limit = Limit {
                    algorithm,
                    quota,
                    period_ms: period_ms(&period),
                    burst: options.burst.unwrap_or(quota),
                };
                (name, limit)
            }
        };
        if limit.quota == 0 {
            return Err("limit: 0 must be at least 1".into());
        }
        if limit.burst == 0 {
            return Err("burst: 0 must be at least 1".into());
        }
        Ok(Throttle {
            name,
            limit,
            states: HashMap::new(),
            blocked: HashMap::new(),
        })
    }

    /// The scope's name (`client` for a throttle not made from a scope).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limit applied.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Takes `cost` permits for `key` at `now` (ms), unless a server's
    /// report still blocks the key or the algorithm refuses.
    pub fn acquire(&mut self, key: &str, cost: u64, now: u64) -> Decision {
        if let Some(&until) = self.blocked.get(key) {
            if until > now {
                return Decision {
                    allowed: false,
                    remaining: 0,
                    reset_ms: until - now,
                    retry_after_ms: until - now,
                    server: true,
                };
            }
            self.blocked.remove(key);
        }
        if self.states.len() >= MAX_KEYS && !self.states.contains_key(key) {
            self.states.clear();
        }
        let state = self.states.remove(key);
        let acquire = Acquire {
            cost,
            max: cost,
            hold_ms: 0,
        };
        let (state, outcome, _) = decide(&self.limit, state, now, None, Some(acquire));
        self.states.insert(key.to_owned(), state);
        Decision {
            allowed: outcome.allowed,
            remaining: outcome.remaining,
            reset_ms: outcome.reset_ms,
            retry_after_ms: outcome.retry_after_ms,
            server: false,
        }
    }

    /// Takes in what a server answered for `key` at `now` (ms): the parsed
    /// `RateLimit` fields and a `Retry-After` in seconds. A scope reported
    /// with nothing left, or a `Retry-After`, blocks the key until then.
    pub fn observe(
        &mut self,
        key: &str,
        reported: &[ReportedLimit],
        retry_after: Option<u64>,
        now: u64,
    ) {
        let exhausted = reported
            .iter()
            .filter(|r| r.remaining == Some(0))
            .filter_map(|r| r.reset)
            .chain(retry_after)
            .max();
        if let Some(seconds) = exhausted {
            let until = now.saturating_add(seconds.saturating_mul(1000));
            if self.blocked.len() >= MAX_KEYS {
                self.blocked.retain(|_, t| *t > now);
            }
            let entry = self.blocked.entry(key.to_owned()).or_insert(0);
            *entry = (*entry).max(until);
        }
    }

    /// Forgets everything about `key`.
    pub fn reset(&mut self, key: &str) {
        self.states.remove(key);
        self.blocked.remove(key);
    }
}

/// The scope `name` of the built-in policy, as a limit.
fn builtin_scope(name: &str) -> Result<(String, Limit), String> {
    let config =
        edge_core::Config::new(<crate::RateLimit as edge_core::EdgeFunction>::DEFAULT_POLICY);
    let policy = config
        .policy::<RateLimitPolicy>()
        .map_err(|e| e.to_string())?;
    let scopes = &policy.rate_limit.scopes;
    scopes
        .iter()
        .find(|s| s.name == name)
        .map(|s| (s.name.clone(), s.limit()))
        .ok_or_else(|| {
            let names: Vec<&str> = scopes.iter().map(|s| s.name.as_str()).collect();
            format!("scope: {name:?} is not one of {}", names.join(", "))
        })
}

/// One scope as a server reported it: its name and what each field said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportedLimit {
    /// The policy's name (empty for an unnamed one).
    pub name: String,
    /// `r`: permits left.
    pub remaining: Option<u64>,
    /// `t`: seconds until the quota is whole again (or until retrying helps).
    pub reset: Option<u64>,
    /// `q`: the quota (from `RateLimit-Policy`).
    pub quota: Option<u64>,
    /// `w`: the window in seconds (from `RateLimit-Policy`).
    pub window: Option<u64>,
}

/// Reads the `RateLimit` and `RateLimit-Policy` field values
/// (draft-ietf-httpapi-ratelimit-headers-09: lists of items named by the
/// policy, with `r`, `t` and `q`, `w` parameters), joined by name, in the
/// `RateLimit` field's order (the most constrained first). Unknown
/// parameters are ignored; a member that is not an item with integer
/// parameters is an error naming it.
pub fn parse_fields(
    ratelimit: Option<&str>,
    policy: Option<&str>,
) -> Result<Vec<ReportedLimit>, String> {
    let mut out: Vec<ReportedLimit> = Vec::new();
    let mut entry = |name: String| -> usize {
        match out.iter().position(|r| r.name == name) {
            Some(i) => i,
            None => {
                out.push(ReportedLimit {
                    name,
                    remaining: None,
                    reset: None,
                    quota: None,
                    window: None,
                });
                out.len() - 1
            }
        }
    };
    let mut indexes = Vec::new();
    for (field, text) in [("RateLimit", ratelimit), ("RateLimit-Policy", policy)] {
        let Some(text) = text else { continue };
        for member in split_members(text) {
            let (name, params) = parse_member(member)
                .map_err(|e| format!("{field}: {e} in {:?}", printable(member)))?;
            indexes.push((field, entry(name), params));
        }
    }
    for (field, i, params) in indexes {
        let r = &mut out[i];
        for (key, value) in params {
            match (field, key.as_str()) {
                ("RateLimit", "r") => r.remaining = Some(value),
                ("RateLimit", "t") => r.reset = Some(value),
                ("RateLimit-Policy", "q") => r.quota = Some(value),
                ("RateLimit-Policy", "w") => r.window = Some(value),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The list's members: split at commas outside quoted strings.
fn split_members(text: &str) -> Vec<&str> {
    let mut members = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                members.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    members.push(&text[start..]);
    members
        .into_iter()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect()
}

/// An item (a quoted string or a token) and its integer parameters.
fn parse_member(member: &str) -> Result<(String, Vec<(String, u64)>), String> {
    let (name, rest) = if let Some(quoted) = member.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => name.extend(chars.next().map(|(_, c)| c)),
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                c => name.push(c),
            }
        }
        let end = end.ok_or("an unterminated string")?;
        (name, &quoted[end..])
    } else {
        let end = member.find(';').unwrap_or(member.len());
        (member[..end].trim().to_owned(), &member[end..])
    };
    let mut params = Vec::new();
    for param in rest.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').ok_or("a parameter without a value")?;
        let value = value
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("parameter {} is not a whole number", key.trim()))?;
        params.push((key.trim().to_owned(), value));
    }
    Ok((name, params))
}

fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::{ScopeReport, field_values};

    #[test]
    fn reads_back_what_the_function_writes() {
        let reports = [
            ScopeReport {
                name: "API_GENERAL".into(),
                quota: 100,
                window: 60,
                remaining: 42,
                reset: 18,
            },
            ScopeReport {
                name: "GLOBAL_DDOS".into(),
                quota: 1000,
                window: 60,
                remaining: 0,
                reset: 7,
            },
        ];
        let (policy, state) = field_values(&reports).unwrap();
        let parsed = parse_fields(Some(&state), Some(&policy)).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].name, "GLOBAL_DDOS");
        assert_eq!(
            (
                parsed[0].remaining,
                parsed[0].reset,
                parsed[0].quota,
                parsed[0].window
            ),
            (Some(0), Some(7), Some(1000), Some(60))
        );
        assert_eq!(parsed[1].remaining, Some(42));
    }

    #[test]
    fn a_bad_member_is_named() {
        let e = parse_fields(Some("\"a\";r=x"), None).unwrap_err();
        assert!(e.contains("RateLimit") && e.contains("r"), "{e}");
    }

    #[test]
    fn a_server_report_blocks_until_its_reset() {
        let mut t = Throttle::new(ThrottleOptions {
            scope: Some("API_GENERAL".into()),
            ..ThrottleOptions::default()
        })
        .unwrap();
        assert!(t.acquire("k", 1, 0).allowed);
        let seen = parse_fields(Some("\"API_GENERAL\";r=0;t=5"), None).unwrap();
        t.observe("k", &seen, None, 1000);
        let d = t.acquire("k", 1, 2000);
        assert!(!d.allowed && d.server);
        assert_eq!(d.retry_after_ms, 4000);
        assert!(t.acquire("k", 1, 6000).allowed);
    }

    #[test]
    fn builtin_scopes_by_name() {
        let e = Throttle::new(ThrottleOptions {
            scope: Some("NOPE".into()),
            ..ThrottleOptions::default()
        })
        .unwrap_err();
        assert!(e.contains("AUTH_LOGIN"), "{e}");
        let t = Throttle::new(ThrottleOptions {
            scope: Some("AUTH_LOGIN".into()),
            ..ThrottleOptions::default()
        })
        .unwrap();
        assert_eq!(t.limit().quota, 5);
        assert_eq!(t.limit().algorithm, Algorithm::SlidingWindow);
    }
}
