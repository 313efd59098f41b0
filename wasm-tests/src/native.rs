//! The native runtime: the core called directly, with the in-memory store.
//! It is the reference every wasm runtime is compared against.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use edge_core::function::{SHARED_SECRETS, Services};
use edge_core::live::{DEFAULT_REFRESH, LivePolicy};
use edge_core::log::MemorySink;
use edge_core::memory::{FlakyStore, MemoryStore, StaticHttpClient};
use edge_core::model::{MAX_BODY_BYTES, Runtime};
use edge_core::platform::{OsRandom, SystemClock};
use edge_core::{Config, EdgeFunction, Problem, Request, Response};

use crate::conformance::{Actual, CaseRequest, Suite};

/// A function served natively, with a store that tests can take down; its
/// policy follows the store's versions like the platforms' (`/_policy`).
pub struct NativeFunction<F> {
    live: LivePolicy<F>,
    /// The store; `set_available(false)` takes it down.
    pub store: FlakyStore<MemoryStore>,
    /// Every log line written.
    pub logs: MemorySink,
}

impl<F: EdgeFunction> NativeFunction<F> {
    /// Builds the function from a config.
    pub fn new(config: &Config) -> Self {
        NativeFunction {
            live: LivePolicy::new(config.clone(), DEFAULT_REFRESH),
            store: FlakyStore::new(MemoryStore::new()),
            logs: MemorySink::default(),
        }
    }

    /// Serves one request, enforcing the body limit as platform glue does.
    pub async fn serve(&self, req: Request) -> Response {
        if req.body().len() > MAX_BODY_BYTES {
            return Problem::payload_too_large(MAX_BODY_BYTES).into_response(None);
        }
        let http = StaticHttpClient::new();
        let services = Services {
            runtime: Runtime::Native,
            clock: &SystemClock,
            store: &self.store,
            cache: &self.store,
            random: &OsRandom,
            http: &http,
            log_sink: &self.logs,
            metrics: None,
        };
        self.live.serve(req, &services).await
    }
}

/// Builds a core request from a case request.
pub fn to_request(case: &CaseRequest, base: &str) -> Result<Request> {
    let mut builder = http::Request::builder()
        .method(case.method.as_str())
        .uri(format!("{base}{}", case.path));
    for (name, value) in &case.headers {
        builder = builder.header(name, value);
    }
    Ok(builder.body(case.body_bytes().into())?)
}

/// The suite's config: the function's built-in policy plus the suite's
/// variables and secrets.
pub fn suite_config<F: EdgeFunction>(suite: &Suite) -> Config {
    let mut config = Config::new(F::DEFAULT_POLICY);
    for (k, v) in &suite.vars {
        config = config.with_var(k, v);
    }
    for (k, v) in &suite.secrets {
        config = config.with_secret(k, v);
    }
    config
}

/// Runs a suite natively.
pub async fn answers(suite: &Suite) -> Result<Vec<Actual>> {
    let requests = suite
        .cases
        .iter()
        .map(|case| to_request(&case.request, ""))
        .collect::<Result<Vec<_>>>()?;
    let served = serve_requests(suite, requests).await?;
    Ok(served
        .responses
        .iter()
        .map(|(response, _)| Actual::from_response(response))
        .collect())
}

/// What [`serve_requests`] saw.
pub struct Served {
    /// Each response with the time it took.
    pub responses: Vec<(Response, Duration)>,
    /// Every log line the function wrote.
    pub logs: Vec<String>,
}

async fn serve_for<F: EdgeFunction>(suite: &Suite, requests: Vec<Request>) -> Served {
    let function = NativeFunction::<F>::new(&suite_config::<F>(suite));
    let mut responses = Vec::with_capacity(requests.len());
    for request in requests {
        let started = Instant::now();
        let response = function.serve(request).await;
        responses.push((response, started.elapsed()));
    }
    Served {
        responses,
        logs: function.logs.lines(),
    }
}

/// What the registry test (`tests/all/registry.rs`) compares with
/// `functions.toml` and the manifests: a function's name and the platform
/// variables and secrets its glue reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    /// [`EdgeFunction::NAME`].
    pub name: &'static str,
    /// [`EdgeFunction::VARIABLES`] (besides `POLICY`).
    pub variables: &'static [&'static str],
    /// [`EdgeFunction::SECRETS`].
    pub secrets: &'static [&'static str],
}

impl Registration {
    /// Every secret the glue reads for the function: its own, then those
    /// every function reads ([`SHARED_SECRETS`]: the policy admin token).
    pub fn secrets_read(&self) -> Vec<&'static str> {
        self.secrets.iter().chain(SHARED_SECRETS).copied().collect()
    }

    /// Function `F`'s registration.
    pub const fn of<F: EdgeFunction>() -> Self {
        Registration {
            name: F::NAME,
            variables: F::VARIABLES,
            secrets: F::SECRETS,
        }
    }
}

/// The native runner's functions, one type each: [`FUNCTIONS`] and
/// [`serve_requests`] come from this one list.
macro_rules! functions {
    ($($function:ty),* $(,)?) => {
        /// Every function the native runtime serves.
        pub const FUNCTIONS: &[Registration] = &[$(Registration::of::<$function>()),*];

        /// Serves `requests` in order on one native instance of the
        /// suite's function, configured as the suite says.
        pub async fn serve_requests(suite: &Suite, requests: Vec<Request>) -> Result<Served> {
            $(
                if suite.function == <$function as EdgeFunction>::NAME {
                    return Ok(serve_for::<$function>(suite, requests).await);
                }
            )*
            bail!("no native registration for function {:?}", suite.function)
        }
    };
}

// BEGIN generated from functions.toml by `cargo xtask sync`
functions![
    counter::Counter,
    rate_limit::RateLimit,
    auth_check::AuthCheck,
    anonymize::Anonymize,
    spatial_query::SpatialQuery,
    metrics::Metrics,
    gateway::Gateway,
];
// END generated from functions.toml
