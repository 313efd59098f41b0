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
//! - Metrics: each isolate records its requests in a
//!   [`Recorder`] and flushes it (after the response, `wait_until`) every
//!   `METRICS_FLUSH_EVERY` records (default 1000), when a minute closes and
//!   on the cron trigger ([`scheduled`]) — through the service binding
//!   [`METRICS_BINDING`] to the metrics worker's `POST /_metrics/ingest`,
//!   with the secret `METRICS_INGEST_TOKEN`.
//!
//! Bindings expected in `wrangler.toml`: the Durable Object namespace
//! [`STORE_BINDING`] (class `EdgeStore`) and the KV namespace
//! [`CACHE_BINDING`], and for metrics the service [`METRICS_BINDING`]. A
//! missing binding makes store calls fail, which each function answers as
//! documented (e.g. 503), never a crash; without the metrics binding the
//! isolate keeps only its last few minutes.

mod convert;
mod object;
pub mod queue;
mod store;
mod streaming;
pub mod webcrypto;

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use edge_core::function::{MetricsSink, Services};
use edge_core::live::{Active, LivePolicy, REFRESH_VARIABLE};
use edge_core::log::{Level, LogSink};
use edge_core::metrics::{DEFAULT_FLUSH_EVERY, MetricsBatch, Recorder};
use edge_core::model::Runtime;
use edge_core::platform::{HttpClient, HttpError, OsRandom, SendOptions, url_for_errors};
use edge_core::{Clock, Config, EdgeFunction, Request, Response, Timestamp};
use futures::future::Either;

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

/// Outbound HTTP through the runtime's `fetch`. A timeout races the
/// exchange (response head and body) against a timer (`setTimeout`,
/// `worker::Delay`) and aborts the `fetch` (`AbortController`) when the
/// timer wins; retries wait on the same timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchClient;

impl FetchClient {
    /// Sends `req`, aborted when `signal` fires.
    async fn exchange(
        req: Request,
        signal: Option<&worker::AbortSignal>,
    ) -> Result<Response, HttpError> {
        let url = url_for_errors(req.uri());
        let transport = |e: worker::Error| HttpError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        };
        let request = convert::to_worker_request(req).map_err(transport)?;
        let fetch = worker::Fetch::Request(request);
        let response = match signal {
            Some(signal) => fetch.send_with_signal(signal).await,
            None => fetch.send().await,
        }
        .map_err(transport)?;
        convert::from_worker_response(response)
            .await
            .map_err(transport)
    }
}

#[async_trait(?Send)]
impl HttpClient for FetchClient {
    async fn send(&self, req: Request) -> Result<Response, HttpError> {
        Self::exchange(req, None).await
    }

    async fn send_with(&self, req: Request, opts: &SendOptions) -> Result<Response, HttpError> {
        let Some(timeout) = opts.timeout else {
            return Self::exchange(req, None).await;
        };
        let url = url_for_errors(req.uri());
        let controller = worker::AbortController::default();
        let signal = controller.signal();
        let exchange = std::pin::pin!(Self::exchange(req, Some(&signal)));
        match futures::future::select(exchange, worker::Delay::from(timeout)).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => {
                controller.abort();
                Err(HttpError::Timeout {
                    url,
                    after: timeout,
                })
            }
        }
    }

    async fn sleep(&self, duration: Duration) -> bool {
        worker::Delay::from(duration).await;
        true
    }
}

/// Reads the function's configuration from the worker's environment:
/// `POLICY` and the function's variables from `[vars]`, its secrets from
/// secrets (`wrangler secret put`, `.dev.vars` locally).
pub fn config_from_env<F: EdgeFunction>(env: &worker::Env) -> Config {
    edge_core::function::config::<F>(
        |name| env.var(name).ok().map(|v| v.to_string()),
        |name| env.secret(name).ok().map(|v| v.to_string()),
    )
}

thread_local! {
    /// One live function per type per isolate.
    static INSTANCES: RefCell<Vec<Rc<dyn Any>>> = const { RefCell::new(Vec::new()) };
    /// The isolate's request metrics since its last flush.
    static RECORDER: Rc<Recorder> = Rc::new(Recorder::new());
}

/// The service binding to the metrics worker.
pub const METRICS_BINDING: &str = "METRICS";
/// The secret isolates present to the metrics worker's ingest endpoint.
pub const METRICS_INGEST_TOKEN: &str = "METRICS_INGEST_TOKEN";
/// The variable setting how many records an isolate gathers before it flushes.
pub const METRICS_FLUSH_EVERY: &str = "METRICS_FLUSH_EVERY";

/// Sends metrics batches to the metrics worker through a service binding.
struct ServiceBindingSink {
    fetcher: worker::Fetcher,
    token: String,
}

#[async_trait(?Send)]
impl MetricsSink for ServiceBindingSink {
    async fn send(&self, batch: &MetricsBatch) -> Result<(), String> {
        let body = serde_json::to_string(batch).map_err(|e| e.to_string())?;
        let headers = worker::Headers::new();
        let auth = format!("Bearer {}", self.token);
        for (name, value) in [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ] {
            headers.set(name, value).map_err(|e| e.to_string())?;
        }
        let mut init = worker::RequestInit::new();
        init.with_method(worker::Method::Post)
            .with_headers(headers)
            .with_body(Some(wasm_bindgen::JsValue::from_str(&body)));
        let response = self
            .fetcher
            .fetch("https://metrics/_metrics/ingest", Some(init))
            .await
            .map_err(|e| e.to_string())?;
        match response.status_code() {
            200..=299 => Ok(()),
            status => Err(format!("the metrics worker answered {status}")),
        }
    }
}

fn metrics_sink(env: &worker::Env) -> Option<ServiceBindingSink> {
    Some(ServiceBindingSink {
        fetcher: env.service(METRICS_BINDING).ok()?,
        token: env.secret(METRICS_INGEST_TOKEN).ok()?.to_string(),
    })
}

fn flush_every(env: &worker::Env) -> u64 {
    env.var(METRICS_FLUSH_EVERY)
        .ok()
        .and_then(|v| v.to_string().parse().ok())
        .unwrap_or(DEFAULT_FLUSH_EVERY)
}

fn services<'a>(
    store: &'a DurableObjectStore,
    cache: &'a KvCache,
    recorder: &'a Recorder,
) -> Services<'a> {
    Services {
        runtime: Runtime::Workers,
        clock: &DateClock,
        store,
        cache,
        random: &OsRandom,
        http: &FetchClient,
        log_sink: &ConsoleSink,
        metrics: Some(recorder),
    }
}

/// The body of a `#[event(scheduled)]` (cron trigger): flushes the
/// isolate's metrics, then runs the function's scheduled work.
pub async fn scheduled<F: EdgeFunction + 'static>(env: &worker::Env) {
    let recorder = RECORDER.with(Rc::clone);
    let (store, cache) = (DurableObjectStore::from_env(env), KvCache::from_env(env));
    let sink = metrics_sink(env);
    let sink = sink.as_ref().map(|s| s as &dyn MetricsSink);
    let services = services(&store, &cache, &recorder);
    let active = live::<F>(env).current(&services).await;
    if let Err(reason) = edge_core::function::run_scheduled(&active.instance, &services, sink).await
    {
        worker::console_error!("scheduled run failed: {reason}");
    }
}

/// After a response: flushes the isolate's metrics in the background when due.
fn flush_when_due<F: EdgeFunction + 'static>(
    active: &Rc<Active<F>>,
    env: &worker::Env,
    ctx: &worker::Context,
) {
    let due = RECORDER.with(|r| r.due(DateClock.now(), flush_every(env)));
    if due {
        let active = Rc::clone(active);
        let env = env.clone();
        ctx.wait_until(async move {
            let recorder = RECORDER.with(Rc::clone);
            let (store, cache) = (DurableObjectStore::from_env(&env), KvCache::from_env(&env));
            let sink = metrics_sink(&env);
            let sink = sink.as_ref().map(|s| s as &dyn MetricsSink);
            let services = services(&store, &cache, &recorder);
            let every = flush_every(&env);
            edge_core::function::flush_metrics(&active.instance, &services, sink, every, false)
                .await;
        });
    }
}

/// The isolate's function `F`, built from its deployed configuration on
/// first use; its policy follows the store's versions, checked every
/// [`REFRESH_VARIABLE`] (see [`edge_core::live`]).
fn live<F: EdgeFunction + 'static>(env: &worker::Env) -> Rc<LivePolicy<F>> {
    INSTANCES.with(|cell| {
        let mut instances = cell.borrow_mut();
        if let Some(found) = instances
            .iter()
            .find_map(|i| Rc::clone(i).downcast::<LivePolicy<F>>().ok())
        {
            return found;
        }
        let refresh = env.var(REFRESH_VARIABLE).ok().map(|v| v.to_string());
        let (refresh, warning) = LivePolicy::<F>::refresh_from(refresh.as_deref());
        if let Some(warning) = warning {
            worker::console_error!("{warning}");
        }
        let built = Rc::new(LivePolicy::<F>::new(config_from_env::<F>(env), refresh));
        instances.push(built.clone());
        built
    })
}

/// Serves one request with function `F`: the body of a `#[event(fetch)]`.
pub async fn serve<F: EdgeFunction + 'static>(
    req: worker::Request,
    env: &worker::Env,
    ctx: &worker::Context,
) -> worker::Result<worker::Response> {
    let request = match from_worker_request(req).await {
        Ok(request) => request,
        Err(problem) => return to_worker_response(problem.into_response(None)),
    };
    serve_request::<F>(request, env, ctx).await
}

/// Serves a request already converted to the core model, then flushes the
/// isolate's metrics when due.
async fn serve_request<F: EdgeFunction + 'static>(
    request: Request,
    env: &worker::Env,
    ctx: &worker::Context,
) -> worker::Result<worker::Response> {
    let store = DurableObjectStore::from_env(env);
    let cache = KvCache::from_env(env);
    let recorder = RECORDER.with(Rc::clone);
    let services = services(&store, &cache, &recorder);
    let live = live::<F>(env);
    let response = live.serve(request, &services).await;
    flush_when_due(&live.active(), env, ctx);
    to_worker_response(response)
}
