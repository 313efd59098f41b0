//! Cloudflare Workers glue: everything `worker`-specific the functions need,
//! kept here so the functions stay portable.
//!
//! - [`serve`]: converts a `worker::Request` into the core model, runs the
//!   function (built once per isolate from `env` variables and secrets),
//!   converts the response back.
//! - [`DurableObjectStore`]: the atomic store, one Durable Object per key
//!   (the `EdgeStore` class each worker declares with [`durable_store!`],
//!   strongly consistent: its input gate makes each read-modify-write and
//!   each transaction atomic).
//! - [`KvCache`]: the eventually consistent cache on Workers KV.
//! - [`serve_streaming`]: the same for a [`StreamingFunction`](edge_core::stream::StreamingFunction),
//!   whose bodies beyond the buffered limit are rewritten as a stream.
//! - [`webcrypto`]: signature checks on the runtime's `crypto.subtle`.
//!
//! Bindings expected in `wrangler.toml`: the Durable Object namespace
//! [`STORE_BINDING`] (class `EdgeStore`) and the KV namespace
//! [`CACHE_BINDING`]. A missing binding makes store calls fail, which each
//! function answers as documented (e.g. 503), never a crash.

mod convert;
mod object;
mod store;
mod streaming;
pub mod webcrypto;

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use async_trait::async_trait;
use edge_core::function::{Instance, Services, instantiate};
use edge_core::log::{Level, LogSink};
use edge_core::model::Runtime;
use edge_core::platform::{HttpClient, HttpError, OsRandom, url_for_errors};
use edge_core::policy::POLICY_VARIABLE;
use edge_core::{Clock, Config, EdgeFunction, Request, Response, Timestamp};

pub use convert::{from_worker_request, to_worker_response};
pub use object::StoreObject;
pub use store::{CACHE_BINDING, DurableObjectStore, KvCache, STORE_BINDING};
pub use streaming::serve_streaming;

/// Time from `Date.now()` (workerd advances it only across I/O).
#[derive(Debug, Clone, Copy, Default)]
pub struct DateClock;

impl Clock for DateClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(js_sys::Date::now() as u64)
    }
}

/// Log lines to the Workers console (`wrangler tail`, `wrangler dev` output).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleSink;

impl LogSink for ConsoleSink {
    fn write(&self, level: Level, line: &str) {
        match level {
            Level::Error | Level::Warn => worker::console_error!("{line}"),
            _ => worker::console_log!("{line}"),
        }
    }
}

/// Outbound HTTP through the runtime's `fetch`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchClient;

#[async_trait(?Send)]
impl HttpClient for FetchClient {
    async fn send(&self, req: Request) -> Result<Response, HttpError> {
        let url = url_for_errors(req.uri());
        let transport = |e: worker::Error| HttpError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        };
        let request = convert::to_worker_request(req).map_err(transport)?;
        let response = worker::Fetch::Request(request)
            .send()
            .await
            .map_err(transport)?;
        convert::from_worker_response(response)
            .await
            .map_err(transport)
    }
}

/// Reads the function's configuration from the worker's environment:
/// `POLICY` and the function's variables from `[vars]`, its secrets from
/// secrets (`wrangler secret put`, `.dev.vars` locally).
pub fn config_from_env<F: EdgeFunction>(env: &worker::Env) -> Config {
    let mut config = Config::new(F::DEFAULT_POLICY);
    for name in std::iter::once(&POLICY_VARIABLE).chain(F::VARIABLES) {
        if let Ok(value) = env.var(name) {
            config = config.with_var(*name, value.to_string());
        }
    }
    for name in F::SECRETS {
        if let Ok(value) = env.secret(name) {
            config = config.with_secret(*name, value.to_string());
        }
    }
    config
}

thread_local! {
    /// One built function per type per isolate.
    static INSTANCES: RefCell<Vec<Rc<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

fn instance<F: EdgeFunction + 'static>(env: &worker::Env) -> Rc<Instance<F>> {
    INSTANCES.with(|cell| {
        let mut instances = cell.borrow_mut();
        if let Some(found) = instances
            .iter()
            .find_map(|i| Rc::clone(i).downcast::<Instance<F>>().ok())
        {
            return found;
        }
        let built = Rc::new(instantiate::<F>(&config_from_env::<F>(env)));
        instances.push(built.clone());
        built
    })
}

/// Serves one request with function `F`: the body of a `#[event(fetch)]`.
pub async fn serve<F: EdgeFunction + 'static>(
    req: worker::Request,
    env: &worker::Env,
) -> worker::Result<worker::Response> {
    let instance = instance::<F>(env);
    let request = match from_worker_request(req).await {
        Ok(request) => request,
        Err(problem) => return to_worker_response(problem.into_response(None)),
    };
    serve_request(&instance, request, env).await
}

/// Serves a request already converted to the core model.
async fn serve_request<F: EdgeFunction + 'static>(
    instance: &Instance<F>,
    request: Request,
    env: &worker::Env,
) -> worker::Result<worker::Response> {
    let store = DurableObjectStore::from_env(env);
    let cache = KvCache::from_env(env);
    let services = Services {
        runtime: Runtime::Workers,
        clock: &DateClock,
        store: &store,
        cache: &cache,
        random: &OsRandom,
        http: &FetchClient,
        log_sink: &ConsoleSink,
    };
    let response = edge_core::serve(instance, request, &services).await;
    to_worker_response(response)
}
