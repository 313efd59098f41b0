//! Fermyon Spin glue (spin-sdk 7, `wasm32-wasip2`, `wasi:http` 0.3): the
//! only place that knows Spin.
//!
//! - [`serve`]: converts a Spin request (path from `spin-path-info`, client
//!   address from `spin-client-addr`) into the core model, builds the
//!   function from Spin variables, runs it and converts the response back.
//! - [`serve_streaming`]: the same for a [`StreamingFunction`](edge_core::stream::StreamingFunction),
//!   whose bodies beyond the buffered limit are rewritten as a stream.
//! - [`SpinStore`]: the atomic store on `wasi:keyvalue` (store + atomics:
//!   `increment` and compare-and-swap), which Spin hosts over its
//!   key-value stores.
//!
//! - Metrics: Spin builds an instance per request, so each request's
//!   record is merged straight into the shared key-value store (the
//!   metrics window keys of [`edge_core::metrics::store`], over
//!   [`METRICS_SHARDS`] shards to keep compare-and-swap contention low),
//!   where the metrics component reads it.
//!
//! Spin variable names are lower case, so a function variable `POLICY` is
//! read from the Spin variable `policy`.
//!
//! A component cannot read its own `allowed_outbound_hosts`, so spin.toml
//! mirrors the list in the component variable `allowed_outbound_hosts`
//! ([`edge_core::origin::allowed::VARIABLE`], the entries joined by
//! commas); when it is set, the config carries it as the allow-list every
//! function checks its policy's URLs against at start, so that a URL Spin
//! would deny fails the function with the field named (`/health` and every
//! request answer the misconfigured problem) rather than a 502 per request.

mod store;
mod streaming;

use std::time::Duration;

use async_trait::async_trait;
use edge_core::function::{Instance, MetricsSink, Services, flush_metrics};
use edge_core::live::LivePolicy;
use edge_core::log::StderrSink;
use edge_core::metrics::{MetricsBatch, Recorder};
use edge_core::model::{ClientAddr, MAX_BODY_BYTES, Runtime};
use edge_core::platform::{
    HttpClient, HttpError, OsRandom, Random, SendOptions, SystemClock, url_for_errors,
};
use edge_core::{Body, Config, EdgeFunction, Problem, Request, Response};
use futures::future::Either;
use http_body_util::{BodyExt, Full, Limited};
use spin_sdk::wasip3::http::types::{ErrorCode, RequestOptions};
use spin_sdk::wasip3::http_compat::RequestOptionsExtension;

pub use store::{STORE_LABEL, SpinStore};
pub use streaming::{LocalBody, StreamingResponse, serve_streaming};

/// The response type handed back to Spin.
pub type SpinResponse = http::Response<Full<bytes::Bytes>>;

/// Reads the function's configuration from Spin variables (lower-cased
/// names), with the component's allowed outbound hosts when spin.toml
/// mirrors them.
pub async fn config_from_variables<F: EdgeFunction>() -> Config {
    // Spin's variables are read asynchronously: every one `F` declares
    // first, then the core builds the config from them.
    let mut values = std::collections::HashMap::new();
    let names = edge_core::function::config_variables::<F>()
        .chain(edge_core::function::config_secrets::<F>());
    for name in names {
        if let Ok(value) = spin_sdk::variables::get(name.to_ascii_lowercase()).await {
            values.insert(name, value);
        }
    }
    let config = edge_core::function::config::<F>(
        |name| values.get(name).cloned(),
        |name| values.get(name).cloned(),
    );
    // Undefined (a component without the mirror): no allow-list.
    match spin_sdk::variables::get(edge_core::origin::allowed::VARIABLE).await {
        Ok(hosts) => config.with_allowed_outbound_hosts(&hosts),
        Err(_) => config,
    }
}

/// Serves one request with function `F`: the body of an `#[http_service]`.
pub async fn serve<F: EdgeFunction>(req: spin_sdk::http::Request) -> SpinResponse {
    let request = match from_spin_request(req).await {
        Ok(request) => request,
        Err(problem) => return to_spin_response(problem.into_response(None)),
    };
    let (store, recorder) = (SpinStore::open_default(), Recorder::new());
    let services = services(&store, &recorder);
    let live = load::<F>(&services).await;
    serve_request(&live, request, &services, &store).await
}

/// Function `F` built for one request from the policy version the store
/// holds, else its deployed configuration (see [`edge_core::live`]; Spin
/// builds an instance per request, so every request checks the version).
async fn load<F: EdgeFunction>(services: &Services<'_>) -> LivePolicy<F> {
    let config = config_from_variables::<F>().await;
    LivePolicy::load(config, Duration::ZERO, services).await
}

/// Shards the metrics windows of one function are spread over.
pub const METRICS_SHARDS: u8 = 4;

/// Merges metrics batches into the shared key-value store.
struct KvMetricsSink<'a> {
    store: &'a SpinStore,
}

#[async_trait(?Send)]
impl MetricsSink for KvMetricsSink<'_> {
    async fn send(&self, batch: &MetricsBatch) -> Result<(), String> {
        let mut byte = [0u8; 1];
        let shard = match OsRandom.fill(&mut byte) {
            Ok(()) => u32::from(byte[0] % METRICS_SHARDS),
            Err(_) => 0,
        };
        edge_core::metrics::store::write_batch(self.store, &SystemClock, batch, shard)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The services of one request, recording its metrics into `recorder`.
fn services<'a>(store: &'a SpinStore, recorder: &'a Recorder) -> Services<'a> {
    Services {
        runtime: Runtime::Spin,
        clock: &SystemClock,
        store,
        cache: store,
        random: &OsRandom,
        http: &SpinHttpClient,
        log_sink: &StderrSink,
        metrics: Some(recorder),
    }
}

/// Merges the request's metrics record into the shared store (Spin builds
/// an instance per request, so there is nothing to batch).
async fn merge_metrics<F: EdgeFunction>(
    instance: &Instance<F>,
    services: &Services<'_>,
    store: &SpinStore,
) {
    let sink = KvMetricsSink { store };
    flush_metrics(instance, services, Some(&sink), 1, true).await;
}

/// Serves a request already converted to the core model, then merges its
/// metrics record into the store.
async fn serve_request<F: EdgeFunction>(
    live: &LivePolicy<F>,
    request: Request,
    services: &Services<'_>,
    store: &SpinStore,
) -> SpinResponse {
    let response = live.serve(request, services).await;
    merge_metrics(&live.active().instance, services, store).await;
    to_spin_response(response)
}

/// Converts a Spin request: the path is `spin-path-info` (the part after
/// the component's route) plus the query; the body is read up to
/// [`MAX_BODY_BYTES`] (413 beyond).
pub async fn from_spin_request(req: spin_sdk::http::Request) -> Result<Request, Problem> {
    let (parts, body) = req.into_parts();
    let builder = request_head(&parts);
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(Problem::payload_too_large(MAX_BODY_BYTES));
    }
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Problem::payload_too_large(MAX_BODY_BYTES));
        }
        Err(e) => return Err(Problem::bad_request("invalid-body", e.to_string())),
    };
    builder
        .body(body)
        .map_err(|e| Problem::bad_request("invalid-request", e.to_string()))
}

/// The core request head of a Spin request: method, path (from
/// `spin-path-info`) and query, headers, client address.
fn request_head(parts: &http::request::Parts) -> http::request::Builder {
    let path = parts
        .headers
        .get("spin-path-info")
        .and_then(|v| v.to_str().ok())
        .filter(|p| p.starts_with('/'))
        .unwrap_or_else(|| parts.uri.path());
    let uri = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut builder = http::Request::builder()
        .method(parts.method.clone())
        .uri(uri);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    if let Some(addr) = parts
        .headers
        .get("spin-client-addr")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<std::net::SocketAddr>().ok())
    {
        builder = builder.extension(ClientAddr(addr.ip()));
    }
    builder
}

/// Converts a core response for Spin.
pub fn to_spin_response(response: Response) -> SpinResponse {
    response.map(Full::new)
}

/// Outbound HTTP through `wasi:http` (Spin's `allowed_outbound_hosts`
/// applies). A timeout is passed to the host as the request's connect and
/// first-byte timeouts (`wasi:http` request options, where the host takes
/// them) and also races the whole exchange, body included, against a
/// `wasi:clocks` timer; retries wait on the same timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpinHttpClient;

impl SpinHttpClient {
    /// Sends `req` and reads the whole response; `timeout` is the one
    /// passed to the host in the request's options.
    async fn exchange(req: Request, timeout: Option<Duration>) -> Result<Response, HttpError> {
        let url = url_for_errors(req.uri());
        let response = spin_sdk::http::send(req.map(Full::new))
            .await
            .map_err(|code| error_for(&url, &code, timeout))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| HttpError::Transport {
                url: url.clone(),
                reason: e.to_string(),
            })?
            .to_bytes();
        Ok(http::Response::from_parts(parts, Body::from(body)))
    }
}

/// A `wasi:http` error code as an [`HttpError`]: the host giving up on
/// the `timeout` it was asked to keep is a timeout; the rest are transport
/// errors, with the code's name (e.g. `HttpRequestDenied`) in the reason.
fn error_for(url: &str, code: &ErrorCode, timeout: Option<Duration>) -> HttpError {
    let host_timeout = matches!(
        code,
        ErrorCode::DnsTimeout
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout
    );
    match timeout {
        Some(after) if host_timeout => HttpError::Timeout {
            url: url.to_owned(),
            after,
        },
        _ => HttpError::Transport {
            url: url.to_owned(),
            reason: format!("{code:?}"),
        },
    }
}

/// Request options asking the host to give up connecting, and waiting for
/// the response head, after `timeout`. A host that cannot is left to the
/// timer.
fn timeout_options(timeout: Duration) -> RequestOptionsExtension {
    let options = RequestOptions::new();
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    // Refused means "not supported here": the race below still holds.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    RequestOptionsExtension(options)
}

#[async_trait(?Send)]
impl HttpClient for SpinHttpClient {
    async fn send(&self, req: Request) -> Result<Response, HttpError> {
        Self::exchange(req, None).await
    }

    async fn send_with(&self, mut req: Request, opts: &SendOptions) -> Result<Response, HttpError> {
        let Some(timeout) = opts.timeout else {
            return Self::exchange(req, None).await;
        };
        let url = url_for_errors(req.uri());
        req.extensions_mut().insert(timeout_options(timeout));
        let exchange = std::pin::pin!(Self::exchange(req, Some(timeout)));
        let timer = std::pin::pin!(spin_sdk::time::sleep(timeout));
        match futures::future::select(exchange, timer).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(HttpError::Timeout {
                url,
                after: timeout,
            }),
        }
    }

    async fn sleep(&self, duration: Duration) -> bool {
        spin_sdk::time::sleep(duration).await;
        true
    }
}
