//! The rate-limit policy: scopes, keys, per-key overrides, failure modes,
//! lists, and their validation, so that a bad policy stops the function at
//! start (or a policy update is refused) with the field and the value named.

use std::collections::HashSet;
use std::time::Duration;

use edge_core::origin::Origin;
use edge_core::policy::{Policy, PolicyDuration, Validator};
use serde::Deserialize;

use crate::algorithm::{Algorithm, Limit};
use crate::identity::{ListEntry, OverrideMatch};

/// The largest sliding-window quota: its state is a log of grants.
pub const MAX_SLIDING_QUOTA: u64 = 1_000;

/// The policy document (`policy.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicy {
    /// The `[rate_limit]` table.
    pub rate_limit: Section,
}

impl RateLimitPolicy {
    /// The URLs the function calls, each with its field path, for
    /// `Config::check_outbound`: its origin.
    pub fn outbound(&self) -> Vec<(String, String)> {
        self.rate_limit
            .origin
            .iter()
            .map(|origin| ("rate_limit.origin".to_owned(), origin.to_string()))
            .collect()
    }
}

/// What a scope does when its store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Admit (availability first; no `RateLimit` field for the scope).
    FailOpen,
    /// Answer 503 with `Retry-After` (protection first).
    FailClosed,
    /// Limit with this isolate's own memory (each isolate alone).
    Local,
}

/// The `[rate_limit]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Off: every request passes, unlimited and without headers
    /// (`RATE_LIMIT_ENABLED` overrides).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The failure mode of scopes that name none (`RATE_LIMIT_FAIL_OPEN`
    /// overrides: true → `fail_open`, false → `fail_closed`).
    #[serde(default = "closed")]
    pub on_store_failure: FailureMode,
    /// Where admitted requests go (scheme, host, optional path prefix);
    /// none: the function answers `200` with its decision (a check service).
    #[serde(default)]
    pub origin: Option<Origin>,
    /// The secret keying identifier hashes (store keys and logs).
    pub hash_key_secret: String,
    /// The secret authorizing the admin endpoints; none disables them.
    #[serde(default)]
    pub admin_token_secret: Option<String>,
    /// Where the admin endpoints live.
    #[serde(default = "admin_path")]
    pub admin_path: String,
    /// A header set by a trusted proxy carrying the client address (its
    /// right-most entry is used); none: the platform's own client address.
    /// A request without the header (or with it empty) is keyed by the
    /// platform's address, the peer that should have set it: limited with
    /// the others from that peer, never unlimited.
    #[serde(default)]
    pub client_ip_header: Option<String>,
    /// IPv6 clients are keyed by this prefix (a client usually owns a /64).
    #[serde(default = "ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// The header carrying the verified JWT `sub`, set by the gateway's auth
    /// check (which strips client copies).
    #[serde(default = "sub_header")]
    pub sub_header: String,
    /// The header carrying the verified API key id, set by the gateway.
    #[serde(default = "api_key_id_header")]
    pub api_key_id_header: String,
    /// A header set by the gateway giving a request's cost; none: each
    /// scope's `cost`.
    #[serde(default)]
    pub cost_header: Option<String>,
    /// `Retry-After` of the 503 a failing-closed scope answers.
    #[serde(default = "retry_after")]
    pub store_retry_after: PolicyDuration,
    /// The most keys this isolate remembers (leases, blocked keys, local
    /// fallback state); memory stays bounded by it.
    #[serde(default = "max_tracked_keys")]
    pub max_tracked_keys: usize,
    /// Identifiers never limited (`ip:CIDR`, `sub:…`, `api_key_id:…`).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Identifiers always refused with 403.
    #[serde(default)]
    pub deny: Vec<String>,
    /// The scopes; every scope matching a request applies, the strictest decides.
    pub scopes: Vec<Scope>,
}

/// One named limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// The name, in headers, problems and logs (`[A-Za-z0-9_-]`).
    pub name: String,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Permits per period.
    pub limit: u64,
    /// The period.
    pub period: PolicyDuration,
    /// The bucket size (token bucket, GCRA); default `limit`.
    #[serde(default)]
    pub burst: Option<u64>,
    /// What identifies a client: any of `ip`, `sub`, `api_key_id`,
    /// `route`, `global`, `header:<name>`; several are combined.
    pub key: Vec<String>,
    /// Used when a part of `key` is missing from the request (e.g. `["ip"]`
    /// for unauthenticated callers); none: the scope does not apply — unless
    /// the missing part is the client address, which every client has: a
    /// request the scope would key by address and that has none is refused
    /// (`400 unidentified-client`), so nothing escapes the limit for want
    /// of an identity. `["global"]` limits such requests together instead.
    #[serde(default)]
    pub fallback_key: Option<Vec<String>>,
    /// Methods the scope applies to; none: all.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Paths the scope applies to: exact, or a prefix ending in `*`.
    #[serde(default = "all_paths")]
    pub paths: Vec<String>,
    /// Permits one request takes.
    #[serde(default = "one")]
    pub cost: u64,
    /// This scope's failure mode; none: the section's.
    #[serde(default)]
    pub on_store_failure: Option<FailureMode>,
    /// The limit in `local` failure mode; default `limit`.
    #[serde(default)]
    pub local_limit: Option<u64>,
    /// Lease mode: permits leased per store round trip (window algorithms).
    #[serde(default)]
    pub lease: Option<u64>,
    /// How long leased permits may be held (sliding window; a fixed
    /// window's lease also ends with its window).
    #[serde(default = "lease_ttl")]
    pub lease_ttl: PolicyDuration,
    /// Other limits for some clients (a tenant's higher quota), tried in
    /// order: the first whose `match` names the caller applies.
    #[serde(default)]
    pub overrides: Vec<Override>,
}

/// A scope's limit for some of its clients (`[[rate_limit.scopes.overrides]]`).
///
/// It changes the limit a client's key is held to, not the key: the key's
/// usage is the same state under either limit (permits taken stay taken,
/// see [`crate::algorithm`]), so a client moving to or from an override,
/// or an override whose limit changes, keeps what it has used. Fields left
/// out follow the scope's rules: `period` and `cost` are the scope's,
/// `burst` and `local_limit` default to this `limit`, and a leased scope
/// leases at most `limit` permits at once (none when `limit` is 1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// Who it applies to (any entry): `ip:<address or CIDR>`,
    /// `sub:<value>`, `api_key_id:<value>`, `header:<name>=<value>` (a
    /// header only a trusted proxy or the gateway sets: a client that can
    /// set it can claim the limit).
    #[serde(rename = "match")]
    pub matches: Vec<String>,
    /// Permits per period.
    pub limit: u64,
    /// The period; default the scope's.
    #[serde(default)]
    pub period: Option<PolicyDuration>,
    /// The bucket size (token bucket, GCRA); default `limit`.
    #[serde(default)]
    pub burst: Option<u64>,
    /// Permits one request takes; default the scope's `cost`.
    #[serde(default)]
    pub cost: Option<u64>,
    /// The limit in `local` failure mode; default `limit`.
    #[serde(default)]
    pub local_limit: Option<u64>,
}

fn yes() -> bool {
    true
}
fn closed() -> FailureMode {
    FailureMode::FailClosed
}
fn admin_path() -> String {
    "/_ratelimit".into()
}
fn ipv6_prefix() -> u8 {
    64
}
fn sub_header() -> String {
    "x-auth-sub".into()
}
fn api_key_id_header() -> String {
    "x-api-key-id".into()
}
fn retry_after() -> PolicyDuration {
    PolicyDuration(Duration::from_secs(5))
}
fn max_tracked_keys() -> usize {
    10_000
}
fn all_paths() -> Vec<String> {
    vec!["/*".into()]
}
fn one() -> u64 {
    1
}
fn lease_ttl() -> PolicyDuration {
    PolicyDuration(Duration::from_secs(1))
}

/// One part of a scope's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// The client address (IPv6 by prefix).
    Ip,
    /// The verified JWT subject.
    Sub,
    /// The verified API key id.
    ApiKeyId,
    /// Method and path.
    Route,
    /// One key for everyone.
    Global,
    /// A request header's value.
    Header(http::HeaderName),
}

impl KeyPart {
    /// Parses `ip`, `sub`, `api_key_id`, `route`, `global`, `header:<name>`.
    pub fn parse(text: &str) -> Option<KeyPart> {
        Some(match text {
            "ip" => KeyPart::Ip,
            "sub" => KeyPart::Sub,
            "api_key_id" => KeyPart::ApiKeyId,
            "route" => KeyPart::Route,
            "global" => KeyPart::Global,
            other => KeyPart::Header(
                http::HeaderName::from_bytes(other.strip_prefix("header:")?.as_bytes()).ok()?,
            ),
        })
    }

    /// The name used in identifiers and admin queries.
    pub fn name(&self) -> String {
        match self {
            KeyPart::Ip => "ip".into(),
            KeyPart::Sub => "sub".into(),
            KeyPart::ApiKeyId => "api_key_id".into(),
            KeyPart::Route => "route".into(),
            KeyPart::Global => "global".into(),
            KeyPart::Header(name) => format!("header:{name}"),
        }
    }
}

impl Scope {
    /// The algorithm's parameters.
    pub fn limit(&self) -> Limit {
        Limit {
            algorithm: self.algorithm,
            quota: self.limit,
            period_ms: period_ms(&self.period),
            burst: self.burst.unwrap_or(self.limit),
        }
    }

    /// The algorithm's parameters under `o`.
    pub fn override_limit(&self, o: &Override) -> Limit {
        Limit {
            algorithm: self.algorithm,
            quota: o.limit,
            period_ms: period_ms(o.period.as_ref().unwrap_or(&self.period)),
            burst: o.burst.unwrap_or(o.limit),
        }
    }
}

/// A duration in whole milliseconds (at least 1).
pub fn period_ms(d: &PolicyDuration) -> u64 {
    u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_header(name: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

impl Policy for RateLimitPolicy {
    fn validate(&self, v: &mut Validator) {
        let s = &self.rate_limit;
        v.field("rate_limit", |v| {
            v.check(
                s.admin_path.starts_with('/') && s.admin_path.len() > 1 && !s.admin_path.ends_with('/'),
                "admin_path",
                &s.admin_path,
                "must start with / and not end with /",
            );
            if let Some(h) = &s.client_ip_header {
                v.check(valid_header(h), "client_ip_header", h, "must be a header name");
            }
            if let Some(h) = &s.cost_header {
                v.check(valid_header(h), "cost_header", h, "must be a header name");
            }
            v.check(valid_header(&s.sub_header), "sub_header", &s.sub_header, "must be a header name");
            v.check(
                valid_header(&s.api_key_id_header),
                "api_key_id_header",
                &s.api_key_id_header,
                "must be a header name",
            );
            v.check((1..=128).contains(&s.ipv6_prefix), "ipv6_prefix", s.ipv6_prefix, "must be in 1..=128");
            v.check(
                s.store_retry_after.0 >= Duration::from_secs(1),
                "store_retry_after",
                s.store_retry_after,
                "must be >= 1s",
            );
            v.check(
                (16..=1_000_000).contains(&s.max_tracked_keys),
                "max_tracked_keys",
                s.max_tracked_keys,
                "must be in 16..=1000000",
            );
            for (list, name) in [(&s.allow, "allow"), (&s.deny, "deny")] {
                v.field(name, |v| {
                    for (i, entry) in list.iter().enumerate() {
                        v.index(i, |v| {
                            if ListEntry::parse(entry).is_none() {
                                v.push(
                                    format!("{entry:?}"),
                                    "must be ip:<address or CIDR>, sub:<value> or api_key_id:<value>",
                                );
                            }
                        });
                    }
                });
            }
            v.check(!s.scopes.is_empty(), "scopes", s.scopes.len(), "must name at least one scope");
            let mut seen = HashSet::new();
            v.field("scopes", |v| {
                for (i, scope) in s.scopes.iter().enumerate() {
                    v.index(i, |v| validate_scope(scope, &mut seen, v));
                }
            });
        });
    }
}

fn validate_scope(scope: &Scope, seen: &mut HashSet<String>, v: &mut Validator) {
    v.check(
        valid_name(&scope.name),
        "name",
        &scope.name,
        "must be 1..=64 characters of [A-Za-z0-9_-]",
    );
    v.check(
        seen.insert(scope.name.clone()),
        "name",
        &scope.name,
        "must be unique",
    );
    check_terms(
        v,
        scope.algorithm,
        scope.limit,
        Some(&scope.period),
        scope.burst,
        scope.local_limit,
    );
    let check_key = |v: &mut Validator, field: &str, key: &[String]| {
        v.check(!key.is_empty(), field, key, "must name at least one part");
        v.field(field, |v| {
            for (i, part) in key.iter().enumerate() {
                v.index(i, |v| {
                    if KeyPart::parse(part).is_none() {
                        v.push(
                            format!("{part:?}"),
                            "must be ip, sub, api_key_id, route, global or header:<name>",
                        );
                    }
                });
            }
        });
    };
    check_key(v, "key", &scope.key);
    if let Some(fallback) = &scope.fallback_key {
        check_key(v, "fallback_key", fallback);
    }
    if let Some(methods) = &scope.methods {
        v.field("methods", |v| {
            for (i, m) in methods.iter().enumerate() {
                v.index(i, |v| {
                    if http::Method::from_bytes(m.as_bytes()).is_err()
                        || m.to_ascii_uppercase() != *m
                    {
                        v.push(format!("{m:?}"), "must be an upper-case HTTP method");
                    }
                });
            }
        });
    }
    v.check(
        !scope.paths.is_empty(),
        "paths",
        &scope.paths,
        "must name at least one path",
    );
    v.field("paths", |v| {
        for (i, p) in scope.paths.iter().enumerate() {
            v.index(i, |v| {
                if !p.starts_with('/') || p[..p.len() - 1].contains('*') {
                    v.push(
                        format!("{p:?}"),
                        "must start with / and may only end with *",
                    );
                }
            });
        }
    });
    let top = scope.burst.unwrap_or(scope.limit);
    v.check(
        (1..=top.max(1)).contains(&scope.cost),
        "cost",
        scope.cost,
        &format!("must be in 1..={top}"),
    );
    if let Some(lease) = scope.lease {
        v.check(
            scope.algorithm.can_lease(),
            "lease",
            lease,
            "needs fixed_window or sliding_window: a bucket cannot tell a leased permit spent late from one spent on time",
        );
        v.check(
            (2..=scope.limit.max(2)).contains(&lease),
            "lease",
            lease,
            &format!("must be in 2..={}", scope.limit),
        );
        v.check(
            scope.lease_ttl.0 >= Duration::from_millis(1) && scope.lease_ttl.0 <= scope.period.0,
            "lease_ttl",
            scope.lease_ttl,
            "must be in 1ms..=period",
        );
    }
    v.field("overrides", |v| {
        for (i, o) in scope.overrides.iter().enumerate() {
            v.index(i, |v| validate_override(scope, o, v));
        }
    });
}

/// An override is held to the scope's own rules for its fields.
fn validate_override(scope: &Scope, o: &Override, v: &mut Validator) {
    v.check(
        !o.matches.is_empty(),
        "match",
        &o.matches,
        "must name at least one client",
    );
    v.field("match", |v| {
        for (i, entry) in o.matches.iter().enumerate() {
            v.index(i, |v| {
                if OverrideMatch::parse(entry).is_none() {
                    v.push(
                        format!("{entry:?}"),
                        "must be ip:<address or CIDR>, sub:<value>, api_key_id:<value> \
                         or header:<name>=<value>",
                    );
                }
            });
        }
    });
    check_terms(
        v,
        scope.algorithm,
        o.limit,
        o.period.as_ref(),
        o.burst,
        o.local_limit,
    );
    if let Some(period) = &o.period
        && scope.lease.is_some()
    {
        v.check(
            scope.lease_ttl.0 <= period.0,
            "period",
            period,
            &format!(
                "must be >= the scope's lease_ttl ({})",
                humantime::format_duration(scope.lease_ttl.0)
            ),
        );
    }
    let top = o.burst.unwrap_or(o.limit).max(1);
    match o.cost {
        Some(cost) => v.check(
            (1..=top).contains(&cost),
            "cost",
            cost,
            &format!("must be in 1..={top}"),
        ),
        // The scope's cost must fit the override's limit too.
        None => v.check(
            scope.cost <= top,
            "limit",
            o.limit,
            &format!(
                "must be >= the scope's cost ({}) or the override must name its own cost",
                scope.cost
            ),
        ),
    }
}

impl Scope {
    /// Whether the scope applies to `method` on `path`.
    pub fn matches(&self, method: &http::Method, path: &str) -> bool {
        let method_ok = self
            .methods
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m == method.as_str()));
        method_ok
            && self.paths.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == p,
            })
    }
}

/// The fields a scope and its overrides share: `limit`, `period` (when
/// given), `burst` and `local_limit`.
fn check_terms(
    v: &mut Validator,
    algorithm: Algorithm,
    limit: u64,
    period: Option<&PolicyDuration>,
    burst: Option<u64>,
    local_limit: Option<u64>,
) {
    v.check(
        (1..=1_000_000_000).contains(&limit),
        "limit",
        limit,
        "must be in 1..=1000000000",
    );
    if let Some(period) = period {
        v.check(
            period.0 >= Duration::from_secs(1) && period.0 <= Duration::from_secs(366 * 86_400),
            "period",
            period,
            "must be in 1s..=366d",
        );
    }
    if algorithm == Algorithm::SlidingWindow {
        v.check(
            limit <= MAX_SLIDING_QUOTA,
            "limit",
            limit,
            &format!("must be <= {MAX_SLIDING_QUOTA} for sliding_window (its state is a log); use token_bucket or fixed_window"),
        );
    }
    if let Some(burst) = burst {
        v.check(
            matches!(algorithm, Algorithm::TokenBucket | Algorithm::Gcra),
            "burst",
            burst,
            "applies to token_bucket and gcra only",
        );
        v.check(
            (1..=1_000_000_000).contains(&burst),
            "burst",
            burst,
            "must be in 1..=1000000000",
        );
    }
    if let Some(local) = local_limit {
        v.check(
            (1..=1_000_000_000).contains(&local),
            "local_limit",
            local,
            "must be in 1..=1000000000",
        );
    }
}
