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

mod admin;
mod stored;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::admin::AdminGuard;
use crate::function::{Context, EdgeFunction, Instance, Services, instantiate};
use crate::model::{Request, Response};
use crate::platform::Timestamp;
use crate::policy::{Config, POLICY_VARIABLE};
use crate::problem::Problem;

use stored::{Head, read_head};
pub use stored::{VersionInfo, head_key};

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
