//! Policies changed while traffic flows, without a redeploy.
//!
//! A function's policy may live in its platform's atomic store (the
//! Durable Object on Workers, Spin's key-value store) under
//! `policy:{NAME}`, replacing the deployed `POLICY` variable. An admin
//! (bearer token [`ADMIN_SECRET`], a platform secret) changes it at
//! [`ADMIN_PATH`]:
//!
//! | request | effect |
//! |---|---|
//! | `GET /_policy` | the version in effect, its text and the versions kept |
//! | `PUT /_policy` (the document) | validated as the function would build it, then stored as the next version; refused whole (`422`, the field named) when invalid |
//! | `POST /_policy/restore?version=N` | version N again, as the next version |
//! | `DELETE /_policy` | back to the deployed policy, as the next version |
//! | `GET /_policy/versions/N` | version N's text |
//!
//! Versions only grow, so an isolate knows a change by its number: a
//! [`LivePolicy`] checks the store when its last check is older than its
//! refresh interval (Spin builds an instance per request, so it checks on
//! every request) and rebuilds the function from the new text. The isolate
//! that took a `PUT` installs it at once. A stored version this isolate
//! cannot build (a secret it names is missing here) is logged, shown on
//! `/health`, and the version before it keeps serving.
//!
//! The store holds policy documents only: secrets stay platform secrets,
//! and a document containing a secret's value is refused.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::admin::AdminGuard;
use crate::function::{Context, EdgeFunction, Instance, Services, instantiate};
use crate::model::{Request, Response, json_response};
use crate::platform::{AtomicStore, CasOutcome, StoreError, Timestamp};
use crate::policy::{Config, ConfigError, POLICY_VARIABLE};
use crate::problem::Problem;

/// Where the policy endpoints live, beside `/health`.
pub const ADMIN_PATH: &str = "/_policy";
/// The platform secret authorizing policy changes (every function reads it).
pub const ADMIN_SECRET: &str = "POLICY_ADMIN_TOKEN";
/// The platform variable setting how often an isolate checks the store
/// for a new version (a duration: `1s`, `250ms`; `0` checks on every request).
pub const REFRESH_VARIABLE: &str = "POLICY_REFRESH";
/// The refresh interval when [`REFRESH_VARIABLE`] is unset.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(1);
/// The largest policy document stored.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// How many versions are kept for restoring.
pub const KEPT_VERSIONS: usize = 20;
/// Compare-and-swap attempts of one change before it answers 409.
const MAX_ATTEMPTS: u32 = 8;

/// The store key of function `name`'s current version.
pub fn head_key(name: &str) -> String {
    format!("policy:{name}")
}

fn text_key(name: &str, digest: &str) -> String {
    format!("policy:{name}:text:{digest}")
}

/// One version, as the history lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Its number (1, 2, …; 0 is the deployed policy before any change).
    pub version: u64,
    /// `sha256:` of its text; none: the deployed policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// When it was stored (ms since the epoch).
    pub updated_at_ms: u64,
    /// The version it restored, if it was a restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<u64>,
}

/// The stored head: the current version with its text (one read per
/// check) and the versions kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Head {
    current: Option<VersionInfo>,
    /// The current version's text; none: the deployed policy.
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    history: Vec<VersionInfo>,
}

impl Head {
    fn version(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.version)
    }
}

/// Which policy a built function runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The stored version; 0: the deployed policy (`POLICY` or built in).
    pub version: u64,
    /// `sha256:` of the text in force.
    pub digest: String,
    /// Whether the text came from the store.
    pub stored: bool,
}

/// A built function and the policy it was built from.
pub struct Active<F> {
    /// The function, or why its policy did not build.
    pub instance: Instance<F>,
    /// Its policy.
    pub source: Source,
}

/// A stored version this isolate could not build.
#[derive(Debug, Clone)]
struct Rejected {
    version: u64,
    error: String,
}

struct State<F> {
    active: Rc<Active<F>>,
    checked_at: Option<Timestamp>,
    rejected: Option<Rejected>,
}

/// Function `F` as an isolate keeps it when its policy may change: the
/// deployed configuration (variables and secrets), the function built from
/// the version in effect, and when the store was last checked.
pub struct LivePolicy<F> {
    base: Config,
    refresh: Duration,
    admin: AdminGuard,
    state: RefCell<State<F>>,
}

/// `sha256:` and the hex digest of `text`.
pub fn digest(text: &str) -> String {
    format!(
        "sha256:{}",
        base16ct::lower::encode_string(&Sha256::digest(text.as_bytes()))
    )
}

impl<F: EdgeFunction> LivePolicy<F> {
    /// `F` built from its deployed configuration, checking the store at
    /// most every `refresh` (zero: on every request).
    pub fn new(base: Config, refresh: Duration) -> Self {
        let source = Source {
            version: 0,
            digest: digest(base.policy_text()),
            stored: false,
        };
        let active = Active {
            instance: instantiate::<F>(&base),
            source,
        };
        Self::with_active(base, refresh, active, None)
    }

    /// `F` built from the version the store holds (one read, one build:
    /// what a platform that builds an instance per request, Spin, does),
    /// else from its deployed configuration.
    pub async fn load(base: Config, refresh: Duration, services: &Services<'_>) -> Self {
        let now = services.clock.now();
        let ctx = Context::named(services, F::NAME, "policy-load");
        let head = match read_head(services.store, F::NAME).await {
            Ok(head) => Some(head),
            Err(e) => {
                ctx.log().warn(
                    "policy check failed; the deployed policy serves",
                    json!({ "reason": e.to_string() }),
                );
                None
            }
        };
        let stored = head.filter(|h| h.version() > 0);
        if let Some(head) = &stored {
            let config = match &head.policy {
                Some(text) => base.clone().with_var(POLICY_VARIABLE, text),
                None => base.clone(),
            };
            if let Ok(function) = F::from_config(&config) {
                let source = Source {
                    version: head.version(),
                    digest: digest(config.policy_text()),
                    stored: head.policy.is_some(),
                };
                let active = Active {
                    instance: Ok(function),
                    source,
                };
                return Self::with_active(base, refresh, active, Some(now));
            }
        }
        let live = Self::new(base, refresh);
        live.state.borrow_mut().checked_at = Some(now);
        if let Some(head) = &stored {
            live.install(head, &ctx);
        }
        live
    }

    fn with_active(
        base: Config,
        refresh: Duration,
        active: Active<F>,
        checked_at: Option<Timestamp>,
    ) -> Self {
        LivePolicy {
            admin: AdminGuard::new(&base, F::NAME, Some(ADMIN_SECRET)),
            refresh,
            base,
            state: RefCell::new(State {
                active: Rc::new(active),
                checked_at,
                rejected: None,
            }),
        }
    }

    /// The refresh interval a platform variable gives (`None` when unset:
    /// [`DEFAULT_REFRESH`]); a bad value is [`DEFAULT_REFRESH`] too, and
    /// said so in the returned warning.
    pub fn refresh_from(value: Option<&str>) -> (Duration, Option<String>) {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => (DEFAULT_REFRESH, None),
            Some("0") => (Duration::ZERO, None),
            Some(v) => match humantime::parse_duration(v) {
                Ok(d) if d <= Duration::from_secs(3600) => (d, None),
                _ => (
                    DEFAULT_REFRESH,
                    Some(format!(
                        "variable {REFRESH_VARIABLE}: {v:?} is not a duration of at most 1h; using 1s"
                    )),
                ),
            },
        }
    }

    /// The function built from the version in effect, after checking the
    /// store when the last check is older than the refresh interval. A
    /// store that cannot be read keeps the version in effect (logged).
    pub async fn current(&self, services: &Services<'_>) -> Rc<Active<F>> {
        let now = services.clock.now();
        let due = {
            let state = self.state.borrow();
            state.checked_at.is_none_or(|at| {
                self.refresh.is_zero() || now.0.saturating_sub(at.0) >= self.refresh
            })
        };
        if due {
            self.state.borrow_mut().checked_at = Some(now);
            let ctx = Context::named(services, F::NAME, "policy-refresh");
            match read_head(services.store, F::NAME).await {
                Ok(head) => self.install(&head, &ctx),
                Err(e) => ctx.log().warn(
                    "policy check failed; the version in effect stays",
                    json!({ "reason": e.to_string() }),
                ),
            }
        }
        Rc::clone(&self.state.borrow().active)
    }

    /// The function built from the version in effect, without a check.
    pub fn active(&self) -> Rc<Active<F>> {
        Rc::clone(&self.state.borrow().active)
    }

    /// Builds and installs the head's version unless it is in effect
    /// already (or was rejected here before).
    fn install(&self, head: &Head, ctx: &Context<'_>) {
        let version = head.version();
        {
            let state = self.state.borrow();
            let in_effect = state.active.source.version;
            let rejected = state.rejected.as_ref().map(|r| r.version);
            if version == in_effect || Some(version) == rejected {
                return;
            }
        }
        let config = self.config_for(head.policy.as_deref());
        let instance = instantiate::<F>(&config);
        let source = Source {
            version,
            digest: digest(config.policy_text()),
            stored: head.policy.is_some(),
        };
        let mut state = self.state.borrow_mut();
        match &instance {
            Err(error) => {
                let error = error.to_string();
                ctx.log().error(
                    "stored policy does not build here; the version in effect stays",
                    json!({ "version": version, "in_effect": state.active.source.version, "error": error }),
                );
                state.rejected = Some(Rejected { version, error });
            }
            Ok(_) => {
                ctx.log().info(
                    "policy version installed",
                    json!({ "version": version, "digest": source.digest }),
                );
                state.active = Rc::new(Active { instance, source });
                state.rejected = None;
            }
        }
    }

    /// The deployed configuration with `policy` in place of `POLICY`
    /// (none: the deployed one).
    fn config_for(&self, policy: Option<&str>) -> Config {
        match policy {
            Some(text) => self.base.clone().with_var(POLICY_VARIABLE, text),
            None => self.base.clone(),
        }
    }

    /// Serves one request: the policy endpoints, else the function built
    /// from the version in effect (see [`crate::function::serve`]).
    pub async fn serve(&self, req: Request, services: &Services<'_>) -> Response {
        let active = self.current(services).await;
        let endpoint = Endpoint {
            live: self,
            active: &active,
        };
        crate::function::serve_with_policy(&active.instance, Some(&endpoint), req, services).await
    }

    /// What `/health` shows of the policy in effect.
    fn status(&self, active: &Active<F>) -> Value {
        let mut status = json!({
            "version": active.source.version,
            "source": if active.source.stored { "store" } else { "deployed" },
            "digest": active.source.digest,
        });
        if let Some(rejected) = &self.state.borrow().rejected {
            status["rejected"] = json!({ "version": rejected.version, "error": rejected.error });
        }
        status
    }

    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let path = req.uri().path().to_owned();
        let rest = path.strip_prefix(ADMIN_PATH).unwrap_or_default();
        let method = req.method().clone();
        self.admin.check(&req, "changing the policy")?;
        let store = ctx.store();
        match (rest, &method) {
            ("" | "/", &Method::GET | &Method::HEAD) => {
                let head = read_head(store, F::NAME).await.map_err(store_problem)?;
                self.install(&head, ctx);
                Ok(self.describe(&head))
            }
            ("" | "/", &Method::PUT) => {
                let text = policy_text(&req)?;
                self.refuse_secrets(&text)?;
                self.validate(&text)?;
                let expected = if_match(&req)?;
                let head = self
                    .store_version(store, ctx, Some(text), None, expected)
                    .await?;
                self.install(&head, ctx);
                Ok(self.changed(&head, StatusCode::OK))
            }
            ("" | "/", &Method::DELETE) => {
                let expected = if_match(&req)?;
                let head = self.store_version(store, ctx, None, None, expected).await?;
                self.install(&head, ctx);
                Ok(self.changed(&head, StatusCode::OK))
            }
            ("/restore", &Method::POST) => {
                let version = query_version(&req)?;
                let head = read_head(store, F::NAME).await.map_err(store_problem)?;
                let text = version_text(store, F::NAME, &head, version).await?;
                if let Some(text) = &text {
                    self.validate(text)?;
                }
                let expected = if_match(&req)?;
                let head = self
                    .store_version(store, ctx, text, Some(version), expected)
                    .await?;
                self.install(&head, ctx);
                Ok(self.changed(&head, StatusCode::OK))
            }
            (rest, &Method::GET | &Method::HEAD) if rest.starts_with("/versions/") => {
                let number = &rest["/versions/".len()..];
                let version = number.parse::<u64>().map_err(|_| {
                    Problem::bad_request(
                        "invalid-version",
                        format!("version {number:?} is not a version number"),
                    )
                })?;
                let head = read_head(store, F::NAME).await.map_err(store_problem)?;
                let text = version_text(store, F::NAME, &head, version).await?;
                let text = text.unwrap_or_else(|| self.base.policy_text().to_owned());
                let mut response = Response::new(text.into_bytes().into());
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                Ok(response)
            }
            ("" | "/", _) => Err(Problem::method_not_allowed(
                &method,
                &[Method::GET, Method::PUT, Method::DELETE],
            )),
            ("/restore", _) => Err(Problem::method_not_allowed(&method, &[Method::POST])),
            _ => Err(Problem::not_found(&path)),
        }
    }

    /// Refuses a document that builds no function, naming each field.
    fn validate(&self, text: &str) -> Result<(), Problem> {
        match instantiate::<F>(&self.config_for(Some(text))) {
            Ok(_) => Ok(()),
            Err(error) => Err(invalid_policy(&error)),
        }
    }

    /// Refuses a document holding the value of one of the function's
    /// secrets (named, never shown): the store is no place for secrets.
    fn refuse_secrets(&self, text: &str) -> Result<(), Problem> {
        if self.base.redact(text) == text {
            return Ok(());
        }
        Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "secret-in-policy",
            "Policy holds a secret",
        )
        .with_detail(
            "the document contains the value of one of the function's secrets; \
             name the secret in the policy and keep its value a platform secret",
        ))
    }

    /// Stores the next version (`text`, none: back to the deployed policy)
    /// with compare-and-swap; `expected`: the version the caller last saw
    /// (`If-Match`), refused with 412 when another change came first.
    async fn store_version(
        &self,
        store: &dyn AtomicStore,
        ctx: &Context<'_>,
        text: Option<String>,
        restored_from: Option<u64>,
        expected: Option<u64>,
    ) -> Result<Head, Problem> {
        let name = F::NAME;
        let digest = text.as_deref().map(digest);
        if let (Some(text), Some(digest)) = (&text, &digest) {
            store
                .set(&text_key(name, digest), text.as_bytes())
                .await
                .map_err(store_problem)?;
        }
        let key = head_key(name);
        let mut current = store.get(&key).await.map_err(store_problem)?;
        for _ in 0..MAX_ATTEMPTS {
            let head = decode_head(&key, current.as_deref()).map_err(store_problem)?;
            if let Some(expected) = expected.filter(|e| *e != head.version()) {
                return Err(Problem::new(
                    StatusCode::PRECONDITION_FAILED,
                    "policy-changed",
                    "Policy changed meanwhile",
                )
                .with_detail(format!(
                    "If-Match names version {expected}, but version {} is in effect",
                    head.version()
                ))
                .with_extension("version", head.version()));
            }
            let info = VersionInfo {
                version: head.version() + 1,
                digest: digest.clone(),
                updated_at_ms: ctx.clock().now().as_millis(),
                restored_from,
            };
            let mut next = Head {
                current: Some(info.clone()),
                policy: text.clone(),
                history: head.history.clone(),
            };
            next.history.push(info);
            let dropped: Vec<VersionInfo> = if next.history.len() > KEPT_VERSIONS {
                let excess = next.history.len() - KEPT_VERSIONS;
                next.history.drain(..excess).collect()
            } else {
                Vec::new()
            };
            let bytes = serde_json::to_vec(&next).map_err(|e| store_problem(corrupt(&key, e)))?;
            match store
                .compare_and_swap(&key, current.as_deref(), &bytes)
                .await
                .map_err(store_problem)?
            {
                CasOutcome::Swapped => {
                    self.forget_texts(store, &next, &dropped, ctx).await;
                    ctx.log().info(
                        "policy version stored",
                        json!({ "version": next.version(), "digest": digest, "restored_from": restored_from }),
                    );
                    return Ok(next);
                }
                CasOutcome::Conflict { current: now } => current = now,
            }
        }
        Err(Problem::new(
            StatusCode::CONFLICT,
            "policy-contended",
            "Policy changed concurrently",
        )
        .with_detail("other changes kept winning; send the change again"))
    }

    /// Deletes the texts of versions no longer kept (unless a kept one has
    /// the same text). A failure only leaves a text behind.
    async fn forget_texts(
        &self,
        store: &dyn AtomicStore,
        head: &Head,
        dropped: &[VersionInfo],
        ctx: &Context<'_>,
    ) {
        for digest in dropped.iter().filter_map(|v| v.digest.as_deref()) {
            if head
                .history
                .iter()
                .any(|v| v.digest.as_deref() == Some(digest))
            {
                continue;
            }
            if let Err(e) = store.delete(&text_key(F::NAME, digest)).await {
                ctx.log().warn(
                    "an old policy text was not deleted",
                    json!({ "digest": digest, "reason": e.to_string() }),
                );
            }
        }
    }

    fn describe(&self, head: &Head) -> Response {
        let active = Rc::clone(&self.state.borrow().active);
        let text = head
            .policy
            .clone()
            .unwrap_or_else(|| self.base.policy_text().to_owned());
        let mut body = json!({
            "function": F::NAME,
            "stored_version": head.version(),
            "in_effect": self.status(&active),
            "policy": text,
            "versions": head.history,
        });
        if let Some(current) = &head.current {
            body["updated_at"] = json!(Timestamp::from_millis(current.updated_at_ms).to_rfc3339());
        }
        let mut response = json_response(StatusCode::OK, &body);
        set_etag(&mut response, head.version());
        response
    }

    fn changed(&self, head: &Head, status: StatusCode) -> Response {
        let active = Rc::clone(&self.state.borrow().active);
        let mut response = json_response(
            status,
            &json!({
                "function": F::NAME,
                "version": head.version(),
                "digest": head.current.as_ref().and_then(|c| c.digest.clone()),
                "restored_from": head.current.as_ref().and_then(|c| c.restored_from),
                "in_effect": self.status(&active),
            }),
        );
        set_etag(&mut response, head.version());
        response
    }
}

fn set_etag(response: &mut Response, version: u64) {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(http::header::ETAG, value);
    }
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
}

/// What [`crate::function::serve_with_policy`] asks of a live policy.
#[async_trait(?Send)]
pub trait PolicyEndpoint {
    /// The policy in effect, for `/health`.
    fn status(&self) -> Value;
    /// A request under [`ADMIN_PATH`].
    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem>;
}

struct Endpoint<'a, F> {
    live: &'a LivePolicy<F>,
    active: &'a Active<F>,
}

#[async_trait(?Send)]
impl<F: EdgeFunction> PolicyEndpoint for Endpoint<'_, F> {
    fn status(&self) -> Value {
        self.live.status(self.active)
    }
    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        self.live.handle(req, ctx).await
    }
}

/// Whether `path` is one of the policy endpoints.
pub fn is_policy_path(path: &str) -> bool {
    path.strip_prefix(ADMIN_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

async fn read_head(store: &dyn AtomicStore, name: &str) -> Result<Head, StoreError> {
    let key = head_key(name);
    let bytes = store.get(&key).await?;
    decode_head(&key, bytes.as_deref())
}

fn decode_head(key: &str, bytes: Option<&[u8]>) -> Result<Head, StoreError> {
    match bytes {
        None => Ok(Head::default()),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| corrupt(key, e)),
    }
}

fn corrupt(key: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

/// Version `version`'s text (none: the deployed policy), 404 when it is
/// not kept.
async fn version_text(
    store: &dyn AtomicStore,
    name: &str,
    head: &Head,
    version: u64,
) -> Result<Option<String>, Problem> {
    let not_kept = || {
        let kept: Vec<u64> = head.history.iter().map(|v| v.version).collect();
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-version",
            "No such policy version",
        )
        .with_detail(format!("version {version} is not kept (kept: {kept:?})"))
    };
    if version == 0 {
        return Ok(None);
    }
    let info = head
        .history
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(not_kept)?;
    let Some(digest) = &info.digest else {
        return Ok(None);
    };
    let key = text_key(name, digest);
    let bytes = store.get(&key).await.map_err(store_problem)?;
    let bytes = bytes.ok_or_else(not_kept)?;
    String::from_utf8(bytes).map(Some).map_err(|_| {
        store_problem(StoreError::Corrupt {
            key,
            reason: "not UTF-8".into(),
        })
    })
}

/// The document in a `PUT` body: UTF-8, not empty, at most [`MAX_POLICY_BYTES`].
fn policy_text(req: &Request) -> Result<String, Problem> {
    let body = req.body();
    if body.len() > MAX_POLICY_BYTES {
        return Err(Problem::payload_too_large(MAX_POLICY_BYTES));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        Problem::bad_request(
            "invalid-policy",
            format!(
                "the policy document is not UTF-8 (byte {})",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(Problem::bad_request(
            "invalid-policy",
            "the body is empty; send the policy document (TOML or JSON), or DELETE to return to the deployed one",
        ));
    }
    Ok(text.to_owned())
}

/// `If-Match: "N"` (or `*`, no precondition).
fn if_match(req: &Request) -> Result<Option<u64>, Problem> {
    let Some(value) = req.headers().get(http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| {
            Problem::bad_request(
                "invalid-if-match",
                format!("If-Match {text:?} is not a policy version's ETag (\"N\")"),
            )
        })
}

/// `?version=N`.
fn query_version(req: &Request) -> Result<u64, Problem> {
    let query = req.uri().query().unwrap_or_default();
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("version="))
        .ok_or_else(|| {
            Problem::bad_request(
                "invalid-version",
                "restore needs ?version=N (see GET /_policy for the versions kept)",
            )
        })?;
    value.parse().map_err(|_| {
        Problem::bad_request(
            "invalid-version",
            format!("version {value:?} is not a version number"),
        )
    })
}

/// 422 naming every field the document breaks.
fn invalid_policy(error: &ConfigError) -> Problem {
    let problem = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-policy",
        "Invalid policy",
    )
    .with_detail(format!("{error}; the version in effect stays"));
    match error {
        ConfigError::Invalid(errors) | ConfigError::NotAllowed(errors) => problem.with_extension(
            "errors",
            errors
                .iter()
                .map(|e| json!({ "field": e.path, "value": e.value, "rule": e.rule }))
                .collect::<Vec<_>>(),
        ),
        _ => problem,
    }
}

fn store_problem(error: StoreError) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        "Policy store unavailable",
    )
    .with_detail(format!(
        "the policy store could not be used ({error}); the version in effect stays"
    ))
    .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::memory::TestPlatform;
    use crate::policy::{Policy, Validator};
    use futures::executor::block_on;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct GreetPolicy {
        greeting: String,
        #[serde(default)]
        signed_with: Option<String>,
    }
    impl Policy for GreetPolicy {
        fn validate(&self, v: &mut Validator) {
            v.check(
                !self.greeting.is_empty(),
                "greeting",
                &self.greeting,
                "must not be empty",
            );
        }
    }

    /// Answers its greeting; a policy naming `signed_with` needs that secret.
    struct Greet(String);

    #[async_trait(?Send)]
    impl EdgeFunction for Greet {
        const NAME: &'static str = "greet";
        const VERSION: &'static str = "1.0.0";
        const DEFAULT_POLICY: &'static str = "greeting = \"hello\"";
        const SECRETS: &'static [&'static str] = &["SIGNING_KEY"];

        fn from_config(config: &Config) -> Result<Self, ConfigError> {
            let policy = config.policy::<GreetPolicy>()?;
            if let Some(name) = &policy.signed_with {
                config.require_secret("signed_with", name)?;
            }
            Ok(Greet(policy.greeting))
        }

        async fn handle(&self, _req: Request, _ctx: &Context<'_>) -> Result<Response, Problem> {
            Ok(json_response(
                StatusCode::OK,
                &json!({ "greeting": self.0 }),
            ))
        }
    }

    const TOKEN: &str = "policy-admin-token";

    fn base() -> Config {
        Config::new(Greet::DEFAULT_POLICY)
            .with_secret(ADMIN_SECRET, TOKEN)
            .with_secret("SIGNING_KEY", "signing-key-value")
    }

    fn request(method: &str, path: &str, body: &str, token: Option<&str>) -> Request {
        let mut builder = http::Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder.body(body.as_bytes().to_vec().into()).unwrap()
    }

    fn admin(method: &str, path: &str, body: &str) -> Request {
        request(method, path, body, Some(TOKEN))
    }

    fn json_of(response: &Response) -> Value {
        serde_json::from_slice(response.body()).unwrap()
    }

    fn greeting(live: &LivePolicy<Greet>, f: &TestPlatform) -> String {
        let response = block_on(live.serve(request("GET", "/", "", None), &f.services()));
        json_of(&response)["greeting"].as_str().unwrap().to_owned()
    }

    fn platform() -> TestPlatform {
        TestPlatform::at(Timestamp::from_millis(1_800_000_000_000))
    }

    #[test]
    fn a_put_decides_the_very_next_request_and_health_names_the_version() {
        let f = platform();
        let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
        assert_eq!(greeting(&live, &f), "hello");
        let put = block_on(live.serve(
            admin("PUT", "/_policy", "greeting = \"howdy\""),
            &f.services(),
        ));
        assert_eq!(put.status(), StatusCode::OK, "{:?}", json_of(&put));
        assert_eq!(put.headers()["etag"], "\"1\"");
        assert_eq!(json_of(&put)["version"], 1);
        assert_eq!(greeting(&live, &f), "howdy");
        let health = block_on(live.serve(request("GET", "/health", "", None), &f.services()));
        let policy = &json_of(&health)["policy"];
        assert_eq!(policy["version"], 1);
        assert_eq!(policy["source"], "store");
        assert_eq!(policy["digest"], digest("greeting = \"howdy\""));
    }

    #[test]
    fn a_bad_policy_is_refused_whole_naming_the_field_and_nothing_changes() {
        let f = platform();
        let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
        for (doc, field) in [
            ("greeting = \"\"", "greeting"),
            ("greeting = \"x\"\nsigned_with = \"NOT_SET\"", "signed_with"),
            ("{\"greeting\": 5}", "greeting"),
            ("greeting = \"x\"\nextra = 1", "extra"),
        ] {
            let response = block_on(live.serve(admin("PUT", "/_policy", doc), &f.services()));
            assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{doc}");
            let body = json_of(&response);
            assert_eq!(body["type"], "urn:edge-functions:problem:invalid-policy");
            assert!(
                body["detail"].as_str().unwrap().contains(field),
                "{doc}: {body}"
            );
        }
        let shown = block_on(live.serve(admin("GET", "/_policy", ""), &f.services()));
        assert_eq!(json_of(&shown)["stored_version"], 0);
        assert_eq!(greeting(&live, &f), "hello");
        assert!(f.store.inner().is_empty(), "nothing stored");
    }

    #[test]
    fn restore_and_delete_are_new_versions() {
        let f = platform();
        let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
        for text in ["greeting = \"one\"", "greeting = \"two\""] {
            let r = block_on(live.serve(admin("PUT", "/_policy", text), &f.services()));
            assert_eq!(r.status(), StatusCode::OK);
        }
        let restored = block_on(live.serve(
            admin("POST", "/_policy/restore?version=1", ""),
            &f.services(),
        ));
        let body = json_of(&restored);
        assert_eq!(
            (body["version"].as_u64(), body["restored_from"].as_u64()),
            (Some(3), Some(1))
        );
        assert_eq!(greeting(&live, &f), "one");
        let text = block_on(live.serve(admin("GET", "/_policy/versions/2", ""), &f.services()));
        assert_eq!(text.body().as_ref(), b"greeting = \"two\"");
        let deleted = block_on(live.serve(admin("DELETE", "/_policy", ""), &f.services()));
        assert_eq!(json_of(&deleted)["version"], 4);
        assert_eq!(greeting(&live, &f), "hello");
        let unknown = block_on(live.serve(
            admin("POST", "/_policy/restore?version=9", ""),
            &f.services(),
        ));
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn another_isolate_picks_a_version_up_within_its_refresh_interval() {
        let f = platform();
        let writer = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
        let reader = LivePolicy::<Greet>::new(base(), Duration::from_millis(500));
        assert_eq!(greeting(&reader, &f), "hello");
        block_on(writer.serve(
            admin("PUT", "/_policy", "greeting = \"new\""),
            &f.services(),
        ));
        f.clock.advance(Duration::from_millis(499));
        assert_eq!(greeting(&reader, &f), "hello", "checked 499 ms ago");
        f.clock.advance(Duration::from_millis(1));
        assert_eq!(greeting(&reader, &f), "new");
    }

    #[test]
    fn a_version_that_does_not_build_here_is_shown_and_the_old_one_serves() {
        let f = platform();
        let writer = LivePolicy::<Greet>::new(base(), Duration::ZERO);
        let without_key = Config::new(Greet::DEFAULT_POLICY).with_secret(ADMIN_SECRET, TOKEN);
        let reader = LivePolicy::<Greet>::new(without_key, Duration::ZERO);
        let doc = "greeting = \"signed\"\nsigned_with = \"SIGNING_KEY\"";
        let put = block_on(writer.serve(admin("PUT", "/_policy", doc), &f.services()));
        assert_eq!(put.status(), StatusCode::OK);
        assert_eq!(greeting(&reader, &f), "hello");
        let health = block_on(reader.serve(request("GET", "/health", "", None), &f.services()));
        let policy = &json_of(&health)["policy"];
        assert_eq!(
            (
                policy["version"].as_u64(),
                policy["rejected"]["version"].as_u64()
            ),
            (Some(0), Some(1))
        );
        let logs = f.logs.lines().join("\n");
        assert!(logs.contains("does not build here"), "{logs}");
    }

    #[test]
    fn the_endpoints_need_the_token_and_never_take_a_secret_value() {
        let f = platform();
        let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
        let anonymous = block_on(live.serve(
            request("PUT", "/_policy", "greeting = \"x\"", None),
            &f.services(),
        ));
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        let wrong =
            block_on(live.serve(request("GET", "/_policy", "", Some("nope")), &f.services()));
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let off = LivePolicy::<Greet>::new(Config::new(Greet::DEFAULT_POLICY), DEFAULT_REFRESH);
        let disabled = block_on(off.serve(admin("GET", "/_policy", ""), &f.services()));
        assert_eq!(disabled.status(), StatusCode::FORBIDDEN);
        let leak = "greeting = \"signing-key-value\"";
        let refused = block_on(live.serve(admin("PUT", "/_policy", leak), &f.services()));
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = String::from_utf8_lossy(refused.body()).into_owned();
        assert!(body.contains("secret-in-policy") && !body.contains("signing-key-value"));
        assert!(!f.logs.lines().join("\n").contains("signing-key-value"));
        assert!(f.store.inner().is_empty());
    }

    #[test]
    fn if_match_refuses_a_change_based_on_an_old_version() {
        let f = platform();
        let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
        block_on(live.serve(admin("PUT", "/_policy", "greeting = \"a\""), &f.services()));
        let mut stale = admin("PUT", "/_policy", "greeting = \"b\"");
        stale
            .headers_mut()
            .insert(http::header::IF_MATCH, HeaderValue::from_static("\"0\""));
        let response = block_on(live.serve(stale, &f.services()));
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
        let mut fresh = admin("PUT", "/_policy", "greeting = \"b\"");
        fresh
            .headers_mut()
            .insert(http::header::IF_MATCH, HeaderValue::from_static("\"1\""));
        assert_eq!(
            block_on(live.serve(fresh, &f.services())).status(),
            StatusCode::OK
        );
        assert_eq!(greeting(&live, &f), "b");
    }

    #[test]
    fn old_versions_are_forgotten_with_their_texts() {
        let f = platform();
        let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
        for n in 1..=KEPT_VERSIONS + 5 {
            let doc = format!("greeting = \"v{n}\"");
            let r = block_on(live.serve(admin("PUT", "/_policy", &doc), &f.services()));
            assert_eq!(r.status(), StatusCode::OK);
        }
        // The head and one text per kept version.
        assert_eq!(f.store.inner().len(), 1 + KEPT_VERSIONS);
        let gone = block_on(live.serve(admin("GET", "/_policy/versions/5", ""), &f.services()));
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        let kept = block_on(live.serve(admin("GET", "/_policy/versions/6", ""), &f.services()));
        assert_eq!(kept.body().as_ref(), b"greeting = \"v6\"");
    }

    #[test]
    fn a_store_that_is_down_keeps_the_version_in_effect() {
        let f = platform();
        let live = LivePolicy::<Greet>::new(base(), Duration::ZERO);
        block_on(live.serve(
            admin("PUT", "/_policy", "greeting = \"kept\""),
            &f.services(),
        ));
        f.store.set_available(false);
        assert_eq!(greeting(&live, &f), "kept");
        let put = block_on(live.serve(admin("PUT", "/_policy", "greeting = \"x\""), &f.services()));
        assert_eq!(put.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(greeting(&live, &f), "kept");
    }

    #[test]
    fn a_misconfigured_deployment_can_be_fixed_by_a_put() {
        let f = platform();
        let broken = base().with_var(POLICY_VARIABLE, "greeting = \"\"");
        let live = LivePolicy::<Greet>::new(broken, DEFAULT_REFRESH);
        let before = block_on(live.serve(request("GET", "/", "", None), &f.services()));
        assert_eq!(before.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let put = block_on(live.serve(
            admin("PUT", "/_policy", "greeting = \"fixed\""),
            &f.services(),
        ));
        assert_eq!(put.status(), StatusCode::OK);
        assert_eq!(greeting(&live, &f), "fixed");
    }

    #[test]
    fn refresh_intervals_from_the_variable() {
        let of = |v| LivePolicy::<Greet>::refresh_from(v);
        assert_eq!(of(None), (DEFAULT_REFRESH, None));
        assert_eq!(of(Some("0")), (Duration::ZERO, None));
        assert_eq!(of(Some("250ms")), (Duration::from_millis(250), None));
        assert!(of(Some("soon")).1.unwrap().contains(REFRESH_VARIABLE));
    }
}
