//! Forwarding to an origin: what a function in front of an origin (rate
//! limit, auth check, anonymize, the gateway's last step) does with a
//! request it lets through — and how it survives an origin that is slow,
//! down or flapping, instead of holding every client until it gives up.
//!
//! - [`Origin`]: the origin's URL from a policy (scheme, authority,
//!   optional path prefix), validated once with a field-named error.
//! - [`OriginSettings`]: per origin (or route) `timeout` (default 30 s, the
//!   deadline of the whole exchange, retries included) and `retries`
//!   (default 2, idempotent methods only, jittered exponential backoff).
//! - [`OriginClient`]: an origin with its settings and circuit breaker
//!   ([`BreakerState`]); [`OriginClient::forward`] sends a request there,
//!   [`OriginClient::breaker_state`] reads the breaker, which `/health` shows
//!   for every origin a function lists in `EdgeFunction::origins`.
//! - [`forward_streamed`]: the same for a body too large to buffer, sent
//!   as a stream by the platform's own client.
//! - [`request_headers`] / [`response_headers`]: hop-by-hop and platform
//!   headers stay here; `Forwarded`, `X-Forwarded-*`, `traceparent` and
//!   the correlation id go along.
//! - [`AllowedHosts`]: Spin's `allowed_outbound_hosts`, which a function
//!   checks its origins against at start (see [`allowed`]).
//!
//! Failures are RFC 9457 problems whose details never name the origin's
//! URL (it may hold secrets): 502 `origin-unavailable` (no connection, a
//! transport error), 504 `origin-timeout`, 503 `origin-circuit-open` with
//! `Retry-After` (the breaker refused without trying). The origin's own
//! answers, errors included, pass through.
//!
//! Where function instances persist ([`Runtime::keeps_instances`]: an
//! isolate on Workers, a browser page, native), the breaker lives in the
//! [`OriginClient`], in memory, per isolate: no store round trip. Spin
//! builds an instance per request, so there the breaker's state is a
//! small JSON record per origin in the platform's atomic store
//! ([`BREAKER_KEY_PREFIX`]`<origin>`), which every instance reads before a
//! request and updates with compare-and-swap after it, so that concurrent
//! requests on many instances count every outcome. What that costs a
//! request, in store operations:
//!
//! | request | operations |
//! |---|---|
//! | healthy origin, window already all successes | 1 read (an outcome that changes nothing writes nothing) |
//! | any other outcome while closed | 1 read + 1 compare-and-swap per attempt (+1 per race lost to another instance, at most [`BREAKER_MAX_ATTEMPTS`]) |
//! | refused while open (503) | 1 read |
//! | the half-open probe | 1 read + 1 compare-and-swap for its lease + 1 for its outcome |
//! | `/health` | 1 read per origin |
//!
//! A store that fails leaves the breaker closed (with a warning), never a
//! request failed.
//!
//! [`Runtime::keeps_instances`]: crate::model::Runtime::keeps_instances

pub mod allowed;
mod breaker;
mod headers;
mod shared;
mod streamed;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode};
use serde_json::json;

use crate::function::Context;
use crate::model::{Request, Response};
use crate::platform::{HttpError, SendOptions, Timestamp};
use crate::policy::{FieldError, PolicyDuration, Validator};
use crate::problem::Problem;

pub use allowed::{AllowedHosts, AllowedHostsError};
pub use breaker::{BreakerSnapshot, BreakerState, FAILURES_TO_OPEN, OPEN_FOR, WINDOW};
pub use headers::{
    CLIENT_ADDRESS_HEADERS, HOP_BY_HOP, PLATFORM_PREFIXES, TraceParent, request_headers,
    response_headers,
};
pub use shared::{KEY_PREFIX as BREAKER_KEY_PREFIX, MAX_ATTEMPTS as BREAKER_MAX_ATTEMPTS};
pub use streamed::{StreamedAnswer, StreamedBody, forward_streamed};

/// Why a text is not an origin URL. Its message shows the value (with any
/// credentials redacted) and the rule, as a policy error does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// Not an absolute `http`/`https` URL with a host, or it has a query
    /// or a fragment (an origin is where paths are appended).
    #[error("{value} must be an http(s) URL with a host and no query or fragment")]
    NotAnOrigin {
        /// The value, JSON-quoted.
        value: String,
    },
    /// It carries `user:password@`: credentials belong in secrets.
    #[error("{value} must not carry credentials (user:password@); keep them in secrets")]
    Credentials {
        /// The value, JSON-quoted, with the credentials redacted.
        value: String,
    },
}

impl OriginError {
    /// The error as a policy's [`FieldError`] at `path`.
    pub fn at(&self, path: impl Into<String>) -> FieldError {
        let (value, rule) = match self {
            OriginError::NotAnOrigin { value } => (
                value,
                "must be an http(s) URL with a host and no query or fragment",
            ),
            OriginError::Credentials { value } => (
                value,
                "must not carry credentials (user:password@); keep them in secrets",
            ),
        };
        FieldError {
            path: path.into(),
            value: value.clone(),
            rule: rule.to_owned(),
        }
    }
}

/// An origin: `http` or `https`, a host (and port), and an optional path
/// prefix that forwarded paths are appended to. `https://api.test/v1/`
/// sends `/items?x=1` to `https://api.test/v1/items?x=1`.
///
/// Deserializes from a string, so a policy field of this type is checked
/// while the policy loads, with its path:
/// `gateway.routes[2].origin: "ftp://x" must be an http(s) URL with a host and no query or fragment`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// Empty, or `/`-led without a trailing `/`.
    prefix: String,
}

impl Origin {
    /// Parses and validates an origin URL.
    pub fn parse(text: &str) -> Result<Origin, OriginError> {
        let quoted = || serde_json::to_string(text).unwrap_or_else(|_| "?".into());
        let not_an_origin = || OriginError::NotAnOrigin { value: quoted() };
        // The authority is what lies between `://` and the next `/`.
        if let Some((scheme, rest)) = text.split_once("://") {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            if let Some((_, host)) = rest[..end].rsplit_once('@') {
                let redacted = format!("{scheme}://[REDACTED]@{host}{}", &rest[end..]);
                return Err(OriginError::Credentials {
                    value: serde_json::to_string(&redacted).unwrap_or_else(|_| "?".into()),
                });
            }
        }
        if text.contains(['?', '#']) {
            return Err(not_an_origin());
        }
        let uri: http::Uri = text.parse().map_err(|_| not_an_origin())?;
        let scheme = match uri.scheme() {
            Some(s) if *s == http::uri::Scheme::HTTP => http::uri::Scheme::HTTP,
            Some(s) if *s == http::uri::Scheme::HTTPS => http::uri::Scheme::HTTPS,
            _ => return Err(not_an_origin()),
        };
        let authority = uri.authority().cloned().ok_or_else(not_an_origin)?;
        // The `http` crate lets any text after the host's `:` through.
        let port = authority.as_str().get(authority.host().len()..);
        let port_ok = match port {
            Some("") => true,
            Some(port) => port
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok()),
            None => false,
        };
        if authority.host().is_empty() || !port_ok {
            return Err(not_an_origin());
        }
        Ok(Origin {
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// Checks the policy field `name` (a string) as an origin, recording a
    /// broken rule in `v`; for policies that keep the origin as a string.
    pub fn check_field(v: &mut Validator, name: &str, value: &str) -> Option<Origin> {
        match Origin::parse(value) {
            Ok(origin) => Some(origin),
            Err(e) => {
                let FieldError { value, rule, .. } = e.at(name);
                v.field(name, |v| v.push(value, &rule));
                None
            }
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.scheme.as_str()
    }

    /// The host and port, as written.
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// The path prefix: empty, or `/`-led without a trailing `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URL a request for `path_and_query` (`/`-led) goes to.
    pub fn url_for(&self, path_and_query: &str) -> String {
        let sep = if path_and_query.starts_with('/') {
            ""
        } else {
            "/"
        };
        format!(
            "{}://{}{}{sep}{path_and_query}",
            self.scheme, self.authority, self.prefix
        )
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.prefix)
    }
}

impl FromStr for Origin {
    type Err = OriginError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Origin::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Origin::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The default [`OriginSettings::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default [`OriginSettings::retries`].
pub const DEFAULT_RETRIES: u32 = 2;
/// The largest timeout a policy may set.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// The most retries a policy may set.
pub const MAX_RETRIES: u32 = 10;
/// The first backoff; each later one doubles, up to [`BACKOFF_MAX`]. Each
/// wait is half its step plus a random part of the other half.
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The longest backoff step.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A half-open breaker's probe holds its lease for the request's timeout
/// plus this (time to record its outcome); a probe that never reports
/// lets another one go after that.
pub const PROBE_LEASE_SLACK: Duration = Duration::from_secs(1);

/// How to talk to one origin, as a policy writes it (every field optional):
/// `timeout = "10s"`, `retries = 1`. Meant to sit in a route beside its
/// `origin` (`#[serde(flatten)]`, hence no `deny_unknown_fields` here) or
/// in a table of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct OriginSettings {
    /// The deadline of one forwarded request: every attempt, and the
    /// backoff between them, end by then. 504 `origin-timeout` after it.
    pub timeout: PolicyDuration,
    /// How many times an idempotent request (GET, HEAD, OPTIONS, PUT,
    /// DELETE, TRACE) is tried again after a transport error, a timeout or
    /// a 502/503/504 answer. POST and PATCH are tried once.
    pub retries: u32,
}

impl Default for OriginSettings {
    fn default() -> Self {
        OriginSettings {
            timeout: PolicyDuration(DEFAULT_TIMEOUT),
            retries: DEFAULT_RETRIES,
        }
    }
}

impl OriginSettings {
    /// Records broken rules on `timeout` and `retries` at the current path.
    pub fn validate(&self, v: &mut Validator) {
        let timeout = self.timeout.0;
        v.check(
            !timeout.is_zero() && timeout <= MAX_TIMEOUT,
            "timeout",
            self.timeout,
            "must be > 0 and at most 5m",
        );
        v.check(
            self.retries <= MAX_RETRIES,
            "retries",
            self.retries,
            "must be at most 10",
        );
    }
}

/// An origin with its settings and circuit breaker: what a function keeps
/// (per isolate) for each origin it forwards to.
#[derive(Debug)]
pub struct OriginClient {
    origin: Origin,
    settings: OriginSettings,
    /// The breaker where instances persist.
    breaker: breaker::Breaker,
    /// The store key of the breaker where they do not.
    key: String,
}

/// Leave from the breaker to send to the origin.
enum Permit<'a> {
    Local(breaker::Permit<'a>),
    Shared(shared::Permit<'a>),
}

impl Permit<'_> {
    fn is_probe(&self) -> bool {
        match self {
            Permit::Local(permit) => permit.is_probe(),
            Permit::Shared(permit) => permit.is_probe(),
        }
    }

    /// Records one attempt's outcome; answers the transition, if any, and
    /// whether the breaker is (still) closed.
    async fn record(
        &mut self,
        now: Timestamp,
        failed: bool,
        ctx: &Context<'_>,
    ) -> (Option<breaker::Transition>, bool) {
        match self {
            Permit::Local(permit) => permit.record(now, failed),
            Permit::Shared(permit) => permit.record(now, failed, ctx).await,
        }
    }

    /// Ends a request that has no outcome to count (a probe's lease is
    /// given back; in memory, dropping does that too).
    async fn release(&mut self, ctx: &Context<'_>) {
        if let Permit::Shared(permit) = self {
            permit.release(ctx).await;
        }
    }
}

/// How one attempt went, when it did not go well.
enum Failure {
    /// The origin answered 502, 503 or 504: it is there but not serving.
    Status(Response),
    Timeout(HttpError),
    Transport(HttpError),
}

impl OriginClient {
    /// A client for `origin` with a closed breaker.
    pub fn new(origin: Origin, settings: OriginSettings) -> Self {
        OriginClient {
            key: shared::key_for(&origin),
            origin,
            settings,
            breaker: breaker::Breaker::default(),
        }
    }

    /// A client for `origin` with the default settings.
    pub fn with_defaults(origin: Origin) -> Self {
        Self::new(origin, OriginSettings::default())
    }

    /// The origin.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The settings.
    pub fn settings(&self) -> &OriginSettings {
        &self.settings
    }

    /// The in-memory breaker's state at `now` (where instances persist;
    /// [`OriginClient::breaker_state`] reads the one that counts anywhere).
    pub fn breaker(&self, now: Timestamp) -> BreakerSnapshot {
        self.breaker.snapshot(now)
    }

    /// The breaker's state as requests on `ctx`'s runtime see it: the
    /// isolate's own where instances persist, the stored record (one
    /// store read) where they do not.
    pub async fn breaker_state(&self, ctx: &Context<'_>) -> BreakerSnapshot {
        let now = ctx.clock().now();
        if ctx.runtime().keeps_instances() {
            self.breaker(now)
        } else {
            shared::snapshot(ctx.store(), &self.key, now, ctx).await
        }
    }

    /// Leave from the breaker to send at `now`, or 503
    /// `origin-circuit-open`.
    async fn admit<'a>(&'a self, now: Timestamp, ctx: &Context<'a>) -> Result<Permit<'a>, Problem> {
        let lease = self.settings.timeout.0 + PROBE_LEASE_SLACK;
        let permit = if ctx.runtime().keeps_instances() {
            self.breaker.admit(now, lease).map(Permit::Local)
        } else {
            shared::admit(ctx.store(), &self.key, now, lease, ctx)
                .await
                .map(Permit::Shared)
        };
        permit.map_err(circuit_open_problem)
    }

    /// The origin's URL for a request with head `parts`.
    fn target(&self, parts: &http::request::Parts) -> Result<http::Uri, Problem> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        self.origin.url_for(path).parse().map_err(|e| {
            Problem::bad_request("invalid-path", format!("cannot forward this path: {e}"))
        })
    }

    /// Sends `req` to the origin with the same method, path (after the
    /// origin's prefix), query and body, and the headers of
    /// [`request_headers`]; answers the origin's response without
    /// hop-by-hop headers, or a problem (see the module docs).
    pub async fn forward(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let clock = ctx.clock();
        let started = clock.now();
        let (parts, body) = req.into_parts();
        let uri = self.target(&parts)?;
        let headers = request_headers(&parts, ctx.correlation_id(), ctx.random());
        let mut permit = self.admit(started, ctx).await?;
        let attempts = if is_idempotent(&parts.method) && !permit.is_probe() {
            1 + self.settings.retries
        } else {
            1
        };
        let timeout = self.settings.timeout.0;
        let deadline = started.0 + timeout;
        let mut attempt = 0;
        let failure = loop {
            attempt += 1;
            let left = deadline.saturating_sub(clock.now().0);
            let mut outbound = http::Request::new(body.clone());
            *outbound.method_mut() = parts.method.clone();
            *outbound.uri_mut() = uri.clone();
            *outbound.headers_mut() = headers.clone();
            let result = ctx
                .http()
                .send_with(outbound, &SendOptions::timeout(left))
                .await;
            let failure = match result {
                Ok(response) if is_unavailable(response.status()) => Failure::Status(response),
                Ok(mut response) => {
                    let (transition, _) = permit.record(clock.now(), false, ctx).await;
                    self.note(transition, ctx);
                    response_headers(response.headers_mut());
                    return Ok(response);
                }
                Err(e @ HttpError::Timeout { .. }) => Failure::Timeout(e),
                Err(HttpError::Unsupported) => {
                    // Not the origin's fault: nothing to count.
                    permit.release(ctx).await;
                    return Err(unsupported_problem());
                }
                Err(e) => Failure::Transport(e),
            };
            let error = match &failure {
                Failure::Status(response) => format!("answered {}", response.status()),
                Failure::Timeout(e) | Failure::Transport(e) => e.to_string(),
            };
            let timed_out = matches!(failure, Failure::Timeout(_));
            warn_failure(&error, timed_out, attempt, ctx);
            let (transition, closed) = permit.record(clock.now(), true, ctx).await;
            self.note(transition, ctx);
            if attempt >= attempts || !closed {
                break failure;
            }
            let wait = backoff(attempt, ctx);
            if clock.now().0 + wait >= deadline {
                break failure;
            }
            ctx.http().sleep(wait).await;
            if clock.now().0 >= deadline {
                break failure;
            }
        };
        match failure {
            Failure::Status(mut response) => {
                response_headers(response.headers_mut());
                Ok(response)
            }
            Failure::Timeout(_) => {
                Err(timeout_problem(timeout).with_extension("attempts", attempt))
            }
            Failure::Transport(_) => Err(unavailable_problem().with_extension("attempts", attempt)),
        }
    }

    /// Logs a breaker transition.
    fn note(&self, transition: Option<breaker::Transition>, ctx: &Context<'_>) {
        let fields = json!({ "origin": self.origin.authority() });
        match transition {
            Some(breaker::Transition::Opened) => ctx.log().warn("origin circuit opened", fields),
            Some(breaker::Transition::Closed) => ctx.log().info("origin circuit closed", fields),
            None => {}
        }
    }
}

/// Logs one failed attempt at the origin.
fn warn_failure(error: &str, timed_out: bool, attempt: u32, ctx: &Context<'_>) {
    let message = if timed_out {
        "origin timed out"
    } else {
        "origin unreachable"
    };
    ctx.log()
        .warn(message, json!({ "error": error, "attempt": attempt }));
}

/// Methods a retry cannot make worse (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ]
    .contains(method)
}

/// Answers that say the origin is not serving (rather than that the
/// request was wrong): counted as failures, retried when idempotent.
fn is_unavailable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The wait before retry `attempt` (1-based): step `BACKOFF_BASE · 2^(attempt-1)`
/// capped at `BACKOFF_MAX`; half the step plus a random part of the other
/// half ("equal jitter"), so that retries of many clients spread out.
fn backoff(attempt: u32, ctx: &Context<'_>) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    let step = BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_MAX);
    let half = step / 2;
    let mut bytes = [0u8; 8];
    let jitter = match ctx.random().fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes) as f64 / u64::MAX as f64,
        Err(_) => 1.0,
    };
    half + half.mul_f64(jitter)
}

/// 502 `origin-unavailable`: the origin could not be reached.
pub fn unavailable_problem() -> Problem {
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "origin-unavailable",
        "Origin unavailable",
    )
    .with_detail("the origin could not be reached")
}

/// 502 `origin-unavailable` on a platform without outbound HTTP.
fn unsupported_problem() -> Problem {
    unavailable_problem().with_detail("this platform cannot send outbound requests")
}

/// 504 `origin-timeout`: no answer within `timeout`.
pub fn timeout_problem(timeout: Duration) -> Problem {
    Problem::new(
        StatusCode::GATEWAY_TIMEOUT,
        "origin-timeout",
        "Origin timeout",
    )
    .with_detail(format!(
        "the origin did not answer within {}",
        humantime::format_duration(timeout)
    ))
}

/// 503 `origin-circuit-open`: the breaker refused without trying; the
/// origin may be tried again after `wait` (`Retry-After`, whole seconds).
pub fn circuit_open_problem(wait: Duration) -> Problem {
    let secs = breaker::whole_seconds(wait);
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "origin-circuit-open",
        "Origin circuit open",
    )
    .with_detail("the origin failed too many recent requests; none is sent to it until it recovers")
    .with_header(http::header::RETRY_AFTER, HeaderValue::from(secs))
}

/// Sends `req` to `origin` (scheme, host, optional path prefix) as
/// [`OriginClient::forward`] does with default settings: timeout and
/// retries, but no breaker where instances persist (nothing keeps one
/// between calls; where they do not, the stored one counts). An `origin`
/// that is not one answers 500 `misconfigured`, with the reason in the
/// logs.
pub async fn forward(origin: &str, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
    let origin = Origin::parse(origin).map_err(|e| {
        ctx.log()
            .error("invalid origin", json!({ "error": e.to_string() }));
        Problem::misconfigured()
    })?;
    OriginClient::new(origin, OriginSettings::default())
        .forward(req, ctx)
        .await
}
