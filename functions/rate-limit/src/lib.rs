//! Rate limit: exact limits shared by every isolate, with the IETF
//! `RateLimit` headers and a failure mode chosen per scope.
//!
//! Each request is matched against the policy's scopes; every matching
//! scope takes `cost` permits from its key (client IP, JWT subject, API key
//! id, a header, the route, or one global key) and the strictest decides.
//! A scope's `overrides` hold some clients to another limit (the first
//! whose `match` names the caller), on the same key.
//! The state lives in the platform's atomic store: on Workers a Durable
//! Object per key runs the [`algorithm`] next to the value (one round trip,
//! serialized by the object, so no over-admission); on Spin the same code
//! runs in a compare-and-swap loop on `wasi:keyvalue`; in a browser, in
//! memory. Admitted requests go to the policy's `origin`, or, without one,
//! get a `200` with the decision.
//!
//! | request | answer |
//! |---|---|
//! | any request, admitted | the origin's answer (or `200` decision), with `RateLimit-Policy` and `RateLimit` |
//! | any request, over a limit | `429` problem+json with `Retry-After` and the same fields |
//! | a cost above what a scope can ever grant | `422` problem+json `cost-exceeds-limit`, no `Retry-After` |
//! | a scope keyed by `ip` and no client address | `400` problem+json `unidentified-client` (unless `fallback_key` identifies it) |
//! | a denied identifier | `403` problem+json |
//! | store down, scope `fail_closed` | `503` problem+json with `Retry-After` |
//! | `GET {admin_path}/state?scope=S&ip=…` | the key's state (admin bearer token) |
//! | `DELETE {admin_path}/state?scope=S&ip=…` | resets the key, `204` |

pub mod algorithm;
pub mod client;
pub mod headers;
pub mod identity;
pub mod local;
pub mod policy;

#[cfg(feature = "browser")]
mod browser;
#[cfg(feature = "spin")]
mod spin;
#[cfg(feature = "workers")]
mod workers;

use std::cell::RefCell;

use async_trait::async_trait;
use edge_core::admin::AdminGuard;
use edge_core::memory::MemoryStore;
use edge_core::model::{Runtime, empty_response, json_response};
use edge_core::origin::OriginClient;
use edge_core::pipeline::{self, Endpoint, Filter};
use edge_core::platform::{Applied, AtomicStore, Transaction};
use edge_core::{
    Config, ConfigError, Context, EdgeFunction, Problem, Request, Response, Secret, StoreError,
    Timestamp,
};
use http::{HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::algorithm::{Acquire, Limit, Outcome, Release, State, decide};
use crate::headers::ScopeReport;
use crate::identity::{
    BROWSER_CLIENT, BadIdentifier, Identity, ListEntry, OverrideMatch, keyed_hash,
};
use crate::local::{Lease, LocalState};
use crate::policy::{FailureMode, KeyPart, RateLimitPolicy, Scope, Section, period_ms};

/// The variable switching limiting on or off.
pub const ENABLED_VARIABLE: &str = "RATE_LIMIT_ENABLED";
/// The variable choosing fail-open (true) or fail-closed (false) for scopes
/// that name no failure mode.
pub const FAIL_OPEN_VARIABLE: &str = "RATE_LIMIT_FAIL_OPEN";
/// The store transaction's name.
pub const TRANSACTION: &str = "rate-limit";
/// Compare-and-swap attempts per decision on stores without transactions:
/// enough for every one of 64 concurrent writers to win once.
pub const MAX_CAS_ATTEMPTS: u32 = 128;

/// The input of the [`TRANSACTION`]: everything the algorithm needs, so the
/// store side needs no configuration.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TransactionInput {
    /// The scope's limit.
    pub limit: Limit,
    /// Permits to give back first.
    pub release: Option<Release>,
    /// Permits to take (none: only report).
    pub acquire: Option<Acquire>,
}

/// Runs the [`TRANSACTION`] on one key's state (what the Durable Object and
/// the compare-and-swap loop both call).
pub fn run_transaction(
    name: &str,
    input: &[u8],
    current: Option<&[u8]>,
    now: Timestamp,
) -> Result<Applied, String> {
    if name != TRANSACTION {
        return Err(format!("unknown transaction {name:?}"));
    }
    let input: TransactionInput =
        serde_json::from_slice(input).map_err(|e| format!("bad rate-limit input: {e}"))?;
    let state = match current {
        Some(bytes) => State::decode(&input.limit, bytes).map_err(|e| e.to_string())?,
        None => None,
    };
    let now = now.as_millis();
    let (state, outcome, expires) = decide(&input.limit, state, now, input.release, input.acquire);
    let changes = input.release.is_some() || input.acquire.is_some();
    Ok(Applied {
        value: changes.then(|| state.encode()),
        expires_at: Some(Timestamp::from_millis(expires)),
        output: serde_json::to_vec(&outcome).map_err(|e| e.to_string())?,
    })
}

/// A scope ready to use.
#[derive(Debug)]
struct CompiledScope {
    scope: Scope,
    key: Vec<KeyPart>,
    fallback_key: Option<Vec<KeyPart>>,
    failure: FailureMode,
    /// The scope's own terms.
    terms: Terms,
    /// The overrides' terms and whom each names, in policy order.
    overrides: Vec<(Vec<OverrideMatch>, Terms)>,
}

/// What a scope holds one client to: its own limit or an override's.
#[derive(Debug, Clone)]
struct Terms {
    limit: Limit,
    local_limit: Limit,
    cost: u64,
    lease: Option<u64>,
    /// The override's index; none: the scope's own.
    index: Option<usize>,
}

impl Terms {
    /// The key of this isolate's memory (leases, blocked keys) for the
    /// key `hash`: apart per override, so a key blocked or leased under
    /// one limit is never answered locally under another.
    fn local_key(&self, hash: &str) -> String {
        match self.index {
            None => hash.to_owned(),
            Some(i) => format!("{hash}~{i}"),
        }
    }
}

impl CompiledScope {
    fn compile(scope: &Scope, failure: FailureMode) -> CompiledScope {
        let parts = |key: &[String]| key.iter().filter_map(|p| KeyPart::parse(p)).collect();
        let terms = |limit: Limit, local: Option<u64>, cost: u64, index| Terms {
            limit,
            local_limit: Limit {
                quota: local.unwrap_or(limit.quota),
                burst: local.unwrap_or(limit.burst),
                ..limit
            },
            cost,
            // A lease is never larger than the limit; one permit is no lease.
            lease: scope.lease.map(|l| l.min(limit.quota)).filter(|l| *l >= 2),
            index,
        };
        CompiledScope {
            key: parts(&scope.key),
            fallback_key: scope.fallback_key.as_deref().map(parts),
            failure,
            terms: terms(scope.limit(), scope.local_limit, scope.cost, None),
            overrides: scope
                .overrides
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let matches = o
                        .matches
                        .iter()
                        .filter_map(|m| OverrideMatch::parse(m))
                        .collect();
                    let limit = scope.override_limit(o);
                    let cost = o.cost.unwrap_or(scope.cost);
                    (matches, terms(limit, o.local_limit, cost, Some(i)))
                })
                .collect(),
            scope: scope.clone(),
        }
    }

    /// The terms for the caller `who` of `head`: the first override naming
    /// it, else the scope's own.
    fn terms_for(&self, who: &Identity, head: &http::request::Parts) -> &Terms {
        self.overrides
            .iter()
            .find(|(matches, _)| matches.iter().any(|m| m.matches(who, head)))
            .map_or(&self.terms, |(_, terms)| terms)
    }
}

/// The rate-limit function.
#[derive(Debug)]
pub struct RateLimit {
    policy: Section,
    enabled: bool,
    scopes: Vec<CompiledScope>,
    hash_key: Secret,
    admin: AdminGuard,
    allow: Vec<ListEntry>,
    deny: Vec<ListEntry>,
    local: RefCell<LocalState>,
    fallback: RefCell<MemoryStore>,
    origin: Option<OriginClient>,
}

/// How one scope decided.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// Decided, from where.
    Decided(Outcome, Source),
    /// The store failed and the scope fails open.
    Open,
    /// The store failed and the scope fails closed.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// One store call (with the lease it opened, if any).
    Store { leased: bool },
    /// A local lease.
    Lease,
    /// The local memory of a blocked key.
    Blocked,
    /// The local fallback store.
    Fallback,
}

#[async_trait(?Send)]
impl EdgeFunction for RateLimit {
    const NAME: &'static str = "rate-limit";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DEFAULT_POLICY: &'static str = include_str!("../policy.toml");
    const VARIABLES: &'static [&'static str] = &[ENABLED_VARIABLE, FAIL_OPEN_VARIABLE];
    const SECRETS: &'static [&'static str] = &["RATE_LIMIT_HASH_KEY", "RATE_LIMIT_ADMIN_TOKEN"];

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        let policy = config.policy::<RateLimitPolicy>()?;
        config.check_outbound(policy.outbound())?;
        let policy = policy.rate_limit;
        let enabled = config.var_bool(ENABLED_VARIABLE, policy.enabled)?;
        let default_failure = match config.var(FAIL_OPEN_VARIABLE) {
            Some(v) if !v.trim().is_empty() => {
                if config.var_bool(FAIL_OPEN_VARIABLE, false)? {
                    FailureMode::FailOpen
                } else {
                    FailureMode::FailClosed
                }
            }
            _ => policy.on_store_failure,
        };
        let hash_key = config
            .require_secret("rate_limit.hash_key_secret", &policy.hash_key_secret)?
            .clone();
        if let Some(name) = &policy.admin_token_secret {
            config.require_secret("rate_limit.admin_token_secret", name)?;
        }
        let admin = AdminGuard::new(config, "rate-limit", policy.admin_token_secret.as_deref());
        let scopes = policy
            .scopes
            .iter()
            .map(|scope| {
                CompiledScope::compile(scope, scope.on_store_failure.unwrap_or(default_failure))
            })
            .collect();
        let list =
            |entries: &[String]| entries.iter().filter_map(|e| ListEntry::parse(e)).collect();
        Ok(RateLimit {
            enabled,
            scopes,
            hash_key,
            admin,
            allow: list(&policy.allow),
            deny: list(&policy.deny),
            local: RefCell::new(LocalState::new(policy.max_tracked_keys)),
            fallback: RefCell::new(MemoryStore::new()),
            origin: policy.origin.clone().map(OriginClient::with_defaults),
            policy,
        })
    }

    fn transaction(
        name: &str,
        input: &[u8],
        current: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Applied, String> {
        run_transaction(name, input, current, now)
    }

    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let under_admin = req
            .uri()
            .path()
            .strip_prefix(self.policy.admin_path.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if under_admin {
            return self.admin(&req, ctx).await;
        }
        let (mut head, body) = req.into_parts();
        if self.enabled {
            identity::principal_from_headers(&mut head, &self.policy).map_err(bad_identifier)?;
        }
        let req = Request::from_parts(head, body);
        match &self.origin {
            Some(origin) => pipeline::run(&[self], req, origin, ctx).await,
            None => pipeline::run(&[self], req, &DecisionAnswer, ctx).await,
        }
    }

    fn origins(&self) -> Vec<&OriginClient> {
        self.origin.iter().collect()
    }
}

/// What the limiter decided for an admitted request, left in its
/// extensions: the report of every scope that applied (the `RateLimit`
/// fields, most constrained first when written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// One report per applicable scope.
    pub reports: Vec<ScopeReport>,
}

/// The standalone function's answer without an origin: `200` with the decision.
struct DecisionAnswer;

#[async_trait(?Send)]
impl Endpoint for DecisionAnswer {
    async fn call(&self, req: Request, _ctx: &Context<'_>) -> Result<Response, Problem> {
        let reports = req
            .extensions()
            .get::<RateLimitDecision>()
            .map_or(&[][..], |d| &d.reports);
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "allowed": true,
                "scopes": reports.iter().map(ScopeReport::to_json).collect::<Vec<_>>(),
            }),
        ))
    }
}

/// The limiter as a stage of a chain: decides on the request head, and
/// writes the `RateLimit` fields on the way back.
#[async_trait(?Send)]
impl Filter for RateLimit {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn on_request(
        &self,
        head: &mut http::request::Parts,
        ctx: &Context<'_>,
    ) -> Result<(), Problem> {
        if !self.enabled {
            return Ok(());
        }
        let mut who = Identity::of(head, &self.policy).map_err(bad_identifier)?;
        if who.ip.is_none() && ctx.runtime() == Runtime::Browser {
            // In a page the client is the page's own device: one key.
            who.ip = Some(BROWSER_CLIENT);
        }
        if self.deny.iter().any(|e| e.matches(&who)) {
            ctx.log().info("denied by the deny list", json!({}));
            return Err(Problem::new(StatusCode::FORBIDDEN, "denied", "Forbidden")
                .with_detail("this client is on the deny list"));
        }
        if self.allow.iter().any(|e| e.matches(&who)) {
            return Ok(());
        }
        let cost = self.cost_override(head)?;
        let mut applicable = Vec::new();
        for scope in &self.scopes {
            if !scope.scope.matches(&head.method, head.uri.path()) {
                continue;
            }
            let mut identifier = who.identifier(head, &scope.key).map_err(bad_identifier)?;
            let mut tried = &scope.key;
            if identifier.is_none()
                && let Some(fallback) = &scope.fallback_key
            {
                identifier = who.identifier(head, fallback).map_err(bad_identifier)?;
                tried = fallback;
            }
            match identifier {
                Some(identifier) => {
                    let hash = keyed_hash(&self.hash_key, &scope.scope.name, &identifier);
                    let terms = scope.terms_for(&who, head);
                    applicable.push((scope, terms, hash, cost.unwrap_or(terms.cost)));
                }
                // A missing sub, API key id or header means the scope does
                // not apply (the policy's way to say "only for callers who
                // have one"); a missing address never does: every client
                // has one, and skipping would let it through unlimited.
                None if who.ip.is_none() && tried.contains(&KeyPart::Ip) => {
                    // A deployment fault more than the client's: say so.
                    ctx.log().warn(
                        "refused: no client address for a scope keyed by it",
                        json!({ "scope": scope.scope.name,
                                "client_ip_header": self.policy.client_ip_header }),
                    );
                    return Err(self.unidentified(&scope.scope));
                }
                None => {}
            }
        }
        // A cost no scope state can ever grant is refused before any
        // permit is taken: waiting would not help, so no 429.
        for (scope, terms, _, cost) in &applicable {
            if *cost > terms.limit.capacity() {
                return Err(cost_exceeds_limit(scope, terms, *cost));
            }
        }
        let verdicts = futures::future::join_all(
            applicable
                .iter()
                .map(|(scope, terms, hash, cost)| self.decide(scope, terms, hash, *cost, ctx)),
        )
        .await;
        // The refusal that lasts longest is the one to report.
        let refused = applicable
            .iter()
            .zip(&verdicts)
            .filter_map(|((scope, terms, _, _), v)| match v {
                Verdict::Decided(o, _) if !o.allowed => Some((*scope, *terms, o.retry_after_ms)),
                _ => None,
            })
            .max_by_key(|(_, _, wait)| *wait);
        let closed = verdicts.iter().any(|v| matches!(v, Verdict::Closed));
        let now = ctx.clock().now().as_millis();
        let reports: Vec<ScopeReport> = applicable
            .iter()
            .zip(&verdicts)
            .filter_map(|((scope, terms, _, _), v)| match v {
                Verdict::Decided(o, _) => {
                    Some(ScopeReport::new(&scope.scope.name, &terms.limit, o))
                }
                _ => None,
            })
            .collect();
        for ((scope, terms, hash, cost), verdict) in applicable.iter().zip(&verdicts) {
            if let Verdict::Decided(o, source) = verdict
                && !o.allowed
            {
                ctx.log().info(
                    "rate limited",
                    json!({ "scope": scope.scope.name, "key_hash": hash, "cost": cost,
                            "limit": terms.limit.quota, "override": terms.index,
                            "retry_after_ms": o.retry_after_ms, "source": source.as_str() }),
                );
            }
        }
        if refused.is_some() || closed {
            for ((scope, terms, hash, cost), verdict) in applicable.iter().zip(&verdicts) {
                if let Verdict::Decided(o, source) = verdict
                    && o.allowed
                {
                    self.give_back(scope, terms, hash, *cost, o, *source, now, ctx)
                        .await;
                }
            }
        }
        if let Some((scope, terms, wait_ms)) = refused {
            return Err(too_many(&scope.scope, terms, wait_ms, &reports));
        }
        if closed {
            let secs = self.policy.store_retry_after.0.as_secs();
            return Err(headers::with_fields(
                Problem::store_unavailable(secs),
                &reports,
            ));
        }
        head.extensions.insert(RateLimitDecision { reports });
        Ok(())
    }

    fn on_response(
        &self,
        request: &http::Extensions,
        _status: StatusCode,
        headers: &mut http::HeaderMap,
        _ctx: &Context<'_>,
    ) {
        if let Some(decision) = request.get::<RateLimitDecision>() {
            headers::insert_fields(headers, &decision.reports);
        }
    }
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Store { .. } => "store",
            Source::Lease => "lease",
            Source::Blocked => "blocked",
            Source::Fallback => "fallback",
        }
    }
}

fn bad_identifier(e: BadIdentifier) -> Problem {
    Problem::bad_request(
        "invalid-header",
        format!("header {} {}", e.header, e.reason),
    )
    .with_extension("header", e.header)
}

impl RateLimit {
    /// The refusal of a request a scope must key by client address when
    /// there is none (no `client_ip_header` value and no platform address).
    fn unidentified(&self, scope: &Scope) -> Problem {
        let source = match &self.policy.client_ip_header {
            Some(h) => format!("no {h} header and no client address from the platform"),
            None => "no client address from the platform".to_owned(),
        };
        Problem::bad_request(
            "unidentified-client",
            format!(
                "scope {} is keyed by the client address and this request has none ({source}); \
                 a fallback_key on the scope decides how to limit such requests",
                scope.name
            ),
        )
        .with_extension("scope", scope.name.as_str())
    }

    fn cost_override(&self, head: &http::request::Parts) -> Result<Option<u64>, Problem> {
        let Some(name) = &self.policy.cost_header else {
            return Ok(None);
        };
        let Some(value) = head.headers.get(name) else {
            return Ok(None);
        };
        match value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(n) if (1..=1_000_000_000).contains(&n) => Ok(Some(n)),
            _ => Err(Problem::bad_request(
                "invalid-header",
                format!("header {name} must be an integer in 1..=1000000000"),
            )
            .with_extension("header", name.as_str())),
        }
    }

    async fn decide(
        &self,
        scope: &CompiledScope,
        terms: &Terms,
        hash: &str,
        cost: u64,
        ctx: &Context<'_>,
    ) -> Verdict {
        let now = ctx.clock().now().as_millis();
        // Leases and blocked keys only help where the instance lives on.
        let persists = ctx.runtime().keeps_instances();
        let lease = terms.lease.filter(|_| persists);
        let key = &terms.local_key(hash);
        if lease.is_some()
            && let Some(l) = self.local.borrow_mut().spend(key, cost, now)
        {
            return Verdict::Decided(lease_outcome(&l, now), Source::Lease);
        }
        // Known blocked: answer without the store (after the leases, which
        // may still hold permits the store no longer has).
        if persists && let Some(until) = self.local.borrow().blocked_until(key, cost, now) {
            let wait = until - now;
            return Verdict::Decided(
                Outcome {
                    allowed: false,
                    granted: 0,
                    remaining: 0,
                    reset_ms: wait,
                    retry_after_ms: wait,
                    hold_until_ms: now,
                    at_ms: now,
                },
                Source::Blocked,
            );
        }
        let release = lease.and_then(|_| self.local.borrow_mut().take_release(key, cost, now));
        let input = TransactionInput {
            limit: terms.limit,
            release,
            acquire: Some(Acquire {
                cost,
                max: lease.unwrap_or(cost).max(cost),
                hold_ms: lease.map_or(0, |_| period_ms(&scope.scope.lease_ttl)),
            }),
        };
        let store_key = store_key(&scope.scope.name, hash);
        match transact(ctx.store(), &store_key, &input, ctx).await {
            Ok(outcome) => {
                if persists {
                    let mut local = self.local.borrow_mut();
                    if outcome.granted > cost {
                        local.credit(key, Lease::of(&outcome, now, outcome.granted - cost), now);
                    }
                    if !outcome.allowed {
                        local.block(key, cost, now.saturating_add(outcome.retry_after_ms), now);
                    }
                }
                Verdict::Decided(
                    outcome,
                    Source::Store {
                        leased: lease.is_some(),
                    },
                )
            }
            Err(error) => {
                ctx.log().warn(
                    "rate-limit store unavailable",
                    json!({ "scope": scope.scope.name, "key_hash": hash,
                            "mode": format!("{:?}", scope.failure), "error": error.to_string() }),
                );
                match scope.failure {
                    FailureMode::FailOpen => Verdict::Open,
                    FailureMode::FailClosed => Verdict::Closed,
                    FailureMode::Local => self.decide_locally(terms, &store_key, cost, ctx).await,
                }
            }
        }
    }

    async fn decide_locally(
        &self,
        terms: &Terms,
        store_key: &str,
        cost: u64,
        ctx: &Context<'_>,
    ) -> Verdict {
        let store = {
            let mut fallback = self.fallback.borrow_mut();
            if fallback.len() >= self.policy.max_tracked_keys {
                *fallback = MemoryStore::new();
            }
            fallback.clone()
        };
        let input = TransactionInput {
            limit: terms.local_limit,
            release: None,
            acquire: Some(Acquire {
                cost,
                max: cost,
                hold_ms: 0,
            }),
        };
        match transact(&store, store_key, &input, ctx).await {
            Ok(outcome) => Verdict::Decided(outcome, Source::Fallback),
            // Memory does not fail; if it did, refusing is the safe answer.
            Err(_) => Verdict::Closed,
        }
    }

    /// Returns the permits an admitted scope took for a request another
    /// scope refused, so the refusal costs the client nothing.
    #[allow(clippy::too_many_arguments)]
    async fn give_back(
        &self,
        scope: &CompiledScope,
        terms: &Terms,
        hash: &str,
        cost: u64,
        outcome: &Outcome,
        source: Source,
        now: u64,
        ctx: &Context<'_>,
    ) {
        let release = Release {
            at_ms: outcome.at_ms,
            until_ms: outcome.hold_until_ms,
            permits: cost,
        };
        let store_key = store_key(&scope.scope.name, hash);
        let input = TransactionInput {
            limit: terms.limit,
            release: Some(release),
            acquire: None,
        };
        match source {
            Source::Lease | Source::Store { leased: true } => {
                // Merges into the lease it came from; if that is gone, the
                // permits wait (expired) for the next release.
                let lease = Lease {
                    deadline: now.saturating_sub(1),
                    ..Lease::of(outcome, now, cost)
                };
                self.local
                    .borrow_mut()
                    .credit(&terms.local_key(hash), lease, now);
            }
            Source::Store { leased: false } => {
                if let Err(e) = transact(ctx.store(), &store_key, &input, ctx).await {
                    ctx.log().warn(
                        "could not give permits back",
                        json!({ "scope": scope.scope.name, "key_hash": hash, "error": e.to_string() }),
                    );
                }
            }
            Source::Fallback => {
                let store = self.fallback.borrow().clone();
                let input = TransactionInput {
                    limit: terms.local_limit,
                    ..input
                };
                // Memory does not fail.
                let _ = transact(&store, &store_key, &input, ctx).await;
            }
            Source::Blocked => {}
        }
    }

    async fn admin(&self, req: &Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        self.authorize_admin(req)?;
        if req.uri().path() != format!("{}/state", self.policy.admin_path) {
            return Err(Problem::not_found(req.uri().path()));
        }
        if *req.method() != Method::GET && *req.method() != Method::DELETE {
            return Err(Problem::method_not_allowed(
                req.method(),
                &[Method::GET, Method::DELETE],
            ));
        }
        let query: Vec<(String, String)> =
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let name = param("scope").ok_or_else(|| {
            Problem::bad_request("invalid-parameter", "the query needs scope=<name>")
                .with_extension("field", "scope")
        })?;
        let scope = self
            .scopes
            .iter()
            .find(|s| s.scope.name == name)
            .ok_or_else(|| {
                Problem::bad_request(
                    "invalid-parameter",
                    format!(
                        "no scope is named {:?}",
                        name.chars().take(64).collect::<String>()
                    ),
                )
                .with_extension("field", "scope")
            })?;
        let identifier = [Some(&scope.key), scope.fallback_key.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|parts| admin_identifier(parts, &param, self.policy.ipv6_prefix))
            .ok_or_else(|| {
                let names: Vec<String> = scope.key.iter().map(KeyPart::name).collect();
                Problem::bad_request(
                    "invalid-parameter",
                    format!(
                        "scope {name} is keyed by {}; give each as a query parameter",
                        names.join(", ")
                    ),
                )
            })?;
        let hash = keyed_hash(&self.hash_key, &scope.scope.name, &identifier);
        let store_key = store_key(&scope.scope.name, &hash);
        let down = |e: StoreError| {
            ctx.log().warn(
                "rate-limit store unavailable",
                json!({ "error": e.to_string() }),
            );
            Problem::store_unavailable(self.policy.store_retry_after.0.as_secs())
        };
        if *req.method() == Method::DELETE {
            ctx.store().delete(&store_key).await.map_err(down)?;
            let mut local = self.local.borrow_mut();
            for terms in std::iter::once(&scope.terms).chain(scope.overrides.iter().map(|o| &o.1)) {
                local.forget(&terms.local_key(&hash));
            }
            drop(local);
            ctx.log().info(
                "rate-limit key reset",
                json!({ "scope": scope.scope.name, "key_hash": hash }),
            );
            return Ok(empty_response(StatusCode::NO_CONTENT));
        }
        let terms = admin_terms(scope, &query, self.policy.ipv6_prefix);
        let input = TransactionInput {
            limit: terms.limit,
            release: None,
            acquire: None,
        };
        let outcome = transact(ctx.store(), &store_key, &input, ctx)
            .await
            .map_err(down)?;
        let s = &scope.scope;
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "scope": s.name,
                "key_hash": hash,
                "algorithm": s.algorithm.as_str(),
                "limit": terms.limit.quota,
                "override": terms.index,
                "period_seconds": terms.limit.period_ms.div_ceil(1000),
                "remaining": outcome.remaining,
                "reset_seconds": outcome.reset_ms.div_ceil(1000),
            }),
        ))
    }

    fn authorize_admin(&self, req: &Request) -> Result<(), Problem> {
        self.admin.check(req, "the rate-limit admin endpoints")
    }
}

/// The 429 for a refusal by `scope` (under `terms`) lasting `wait_ms`.
fn too_many(scope: &Scope, terms: &Terms, wait_ms: u64, reports: &[ScopeReport]) -> Problem {
    let secs = wait_ms.div_ceil(1000).max(1);
    let problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
    )
    .with_detail(format!(
        "scope {} allows {} requests per {}; retry after {secs} s",
        scope.name,
        terms.limit.quota,
        humantime::format_duration(std::time::Duration::from_millis(terms.limit.period_ms))
    ))
    .with_extension("scope", scope.name.as_str())
    .with_extension("retry_after", secs)
    .with_header(http::header::RETRY_AFTER, HeaderValue::from(secs));
    headers::with_fields(problem, reports)
}

/// The refusal of a request costing more than `scope` can ever grant (its
/// quota, or its burst for a bucket): `422`, since the request is well
/// formed but can never be admitted as asked — no `Retry-After`, because no
/// wait helps (a `429` would invite retries that all fail).
fn cost_exceeds_limit(scope: &CompiledScope, terms: &Terms, cost: u64) -> Problem {
    let capacity = terms.limit.capacity();
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "cost-exceeds-limit",
        "Cost exceeds the limit",
    )
    .with_detail(format!(
        "this request costs {cost} permits and scope {} grants at most {capacity} at once; \
         it can never be admitted, retrying will not help",
        scope.scope.name
    ))
    .with_extension("scope", scope.scope.name.as_str())
    .with_extension("cost", cost)
    .with_extension("limit", capacity)
}

/// The identifier an admin names with query parameters, in `parts` order.
fn admin_identifier<'q>(
    parts: &[KeyPart],
    param: &impl Fn(&str) -> Option<&'q str>,
    ipv6_prefix: u8,
) -> Option<String> {
    let value_of = |part: &KeyPart| -> Result<Option<String>, std::convert::Infallible> {
        Ok(match part {
            KeyPart::Global => Some(String::new()),
            KeyPart::Ip => param("ip")
                .and_then(|ip| ip.parse().ok())
                .map(|ip| identity::mask(ip, ipv6_prefix).to_string()),
            other => param(&other.name()).map(str::to_owned),
        })
    };
    identity::compose(parts, value_of).ok().flatten()
}

/// The terms the key an admin names is held to: the override matching the
/// query's `ip`, `sub`, `api_key_id` and `header:<name>` parameters, else
/// the scope's own.
fn admin_terms<'s>(
    scope: &'s CompiledScope,
    query: &[(String, String)],
    ipv6_prefix: u8,
) -> &'s Terms {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let who = Identity {
        ip: param("ip")
            .and_then(|ip| ip.parse().ok())
            .map(|ip| identity::mask(ip, ipv6_prefix)),
        sub: param("sub").map(str::to_owned),
        api_key_id: param("api_key_id").map(str::to_owned),
    };
    let mut head = http::Request::new(()).into_parts().0;
    for (name, value) in query {
        if let Some(name) = name.strip_prefix("header:")
            && let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            )
        {
            head.headers.insert(name, value);
        }
    }
    scope.terms_for(&who, &head)
}

fn store_key(scope: &str, hash: &str) -> String {
    format!("rl:{scope}:{hash}")
}

/// What a lease's holder reports without asking the store: what the store
/// held for the key when it granted the lease (the whole lease counted as
/// taken), so the figure does not rise while the lease is spent.
fn lease_outcome(lease: &Lease, now: u64) -> Outcome {
    Outcome {
        allowed: true,
        granted: 0,
        remaining: lease.store_remaining,
        reset_ms: lease.reset_at.saturating_sub(now),
        retry_after_ms: 0,
        hold_until_ms: lease.until,
        at_ms: lease.at,
    }
}

async fn transact(
    store: &dyn AtomicStore,
    key: &str,
    input: &TransactionInput,
    ctx: &Context<'_>,
) -> Result<Outcome, StoreError> {
    let bytes = serde_json::to_vec(input).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let output = store
        .transact(
            key,
            &Transaction {
                name: TRANSACTION,
                input: &bytes,
                run: run_transaction,
                clock: ctx.clock(),
                max_attempts: MAX_CAS_ATTEMPTS,
            },
        )
        .await?;
    serde_json::from_slice(&output).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}
