//! The contract between a function and the platforms: [`EdgeFunction`] is
//! what a capability implements once; [`serve`] is what every platform's
//! glue calls per request. `serve` adds what every function shares: the
//! health endpoint, correlation ids, a log line per request, and turning
//! [`Problem`]s and configuration errors into responses.

use async_trait::async_trait;
use http::{HeaderValue, Method, StatusCode};
use std::cell::RefCell;

use serde_json::{Map, Value, json};

use crate::live::PolicyEndpoint;
use crate::log::{LogSink, Logger};
use crate::metrics::{MetricsBatch, Recorder};
use crate::model::{Request, Response, Runtime, json_response};
use crate::platform::{Applied, AtomicStore, Clock, HttpClient, KeyValueStore, Random, Timestamp};
use crate::policy::{Config, ConfigError};
use crate::problem::Problem;

/// The header carrying the correlation id, in and out.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The platform services one request may use, supplied by the glue.
pub struct Services<'a> {
    /// Which runtime this is.
    pub runtime: Runtime,
    /// Wall-clock time.
    pub clock: &'a dyn Clock,
    /// The strongly consistent store (Durable Object, Spin key-value, memory).
    pub store: &'a dyn AtomicStore,
    /// The eventually consistent cache (Workers KV, Spin key-value, memory).
    pub cache: &'a dyn KeyValueStore,
    /// Secure randomness.
    pub random: &'a dyn Random,
    /// Outbound HTTP.
    pub http: &'a dyn HttpClient,
    /// Where log lines go.
    pub log_sink: &'a dyn LogSink,
    /// The isolate's metrics recorder, when the platform flushes one.
    pub metrics: Option<&'a Recorder>,
}

/// What a function sees of the platform while handling one request.
pub struct Context<'a> {
    services: &'a Services<'a>,
    log: Logger<'a>,
    function: &'static str,
    correlation_id: &'a str,
    /// Fields for this request's one log line (see [`Context::note`]).
    notes: RefCell<Map<String, Value>>,
}

impl<'a> Context<'a> {
    /// The context of function `F` on `services`, logging under `correlation_id`.
    fn of<F: EdgeFunction>(services: &'a Services<'a>, correlation_id: &'a str) -> Self {
        Self::named(services, F::NAME, correlation_id)
    }
    /// The context of the function named `function` on `services`.
    pub fn named(
        services: &'a Services<'a>,
        function: &'static str,
        correlation_id: &'a str,
    ) -> Self {
        Context {
            services,
            log: Logger::new(services.log_sink, services.clock, function, correlation_id),
            function,
            correlation_id,
            notes: RefCell::default(),
        }
    }
    /// This request's correlation id (echoed to the client, passed on to an origin).
    pub fn correlation_id(&self) -> &'a str {
        self.correlation_id
    }
    /// The runtime serving this request.
    pub fn runtime(&self) -> Runtime {
        self.services.runtime
    }
    /// Wall-clock time.
    pub fn clock(&self) -> &'a dyn Clock {
        self.services.clock
    }
    /// The strongly consistent store.
    pub fn store(&self) -> &'a dyn AtomicStore {
        self.services.store
    }
    /// The eventually consistent cache.
    pub fn cache(&self) -> &'a dyn KeyValueStore {
        self.services.cache
    }
    /// Secure randomness.
    pub fn random(&self) -> &'a dyn Random {
        self.services.random
    }
    /// Outbound HTTP.
    pub fn http(&self) -> &'a dyn HttpClient {
        self.services.http
    }
    /// The logger for this request.
    pub fn log(&self) -> &Logger<'a> {
        &self.log
    }
    /// Adds `key: value` to this request's one log line, where [`serve`]
    /// writes it: what a stage decided on a request that went on (who was
    /// authenticated, what was found in the body). A line of its own per
    /// stage would cost every request a formatted record, and a reader
    /// would have to join them. Notes taken on a context that writes no
    /// request line are logged as one line when it ends.
    pub fn note(&self, key: &str, value: Value) {
        self.notes.borrow_mut().insert(key.to_owned(), value);
    }
    /// Takes the notes so far (for the request line).
    fn take_notes(&self) -> Map<String, Value> {
        std::mem::take(&mut *self.notes.borrow_mut())
    }
    /// Sets one of the function's gauges (kept when the platform records metrics).
    pub fn gauge(&self, name: &str, value: f64) {
        if let Some(recorder) = self.services.metrics {
            recorder.set_gauge(self.function, name, value, self.services.clock.now());
        }
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        let notes = self.take_notes();
        if !notes.is_empty() {
            self.log.info("request notes", Value::Object(notes));
        }
    }
}

/// Where an isolate's metrics go when it flushes them (a Durable Object
/// behind a service binding, the shared key-value store).
#[async_trait(?Send)]
pub trait MetricsSink {
    /// Sends one batch; on failure the batch is kept for the next flush.
    async fn send(&self, batch: &MetricsBatch) -> Result<(), String>;
}

/// The outcome of one health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Working.
    Pass,
    /// Not working, with a reason safe to show.
    Fail(String),
}

/// A capability, written once against the core and served by every platform.
#[async_trait(?Send)]
pub trait EdgeFunction: Sized {
    /// The function's name, in logs and health output.
    const NAME: &'static str;
    /// The function's version, in health output.
    const VERSION: &'static str;
    /// The built-in policy document (TOML or JSON), replaced by the `POLICY` variable.
    const DEFAULT_POLICY: &'static str;
    /// Platform variables the glue reads, besides `POLICY`.
    const VARIABLES: &'static [&'static str] = &[];
    /// Platform secrets the glue reads.
    const SECRETS: &'static [&'static str] = &[];

    /// Builds the function from its configuration. Its errors may quote
    /// the document; callers use [`from_config`](Self::from_config), which
    /// takes every secret value out of them.
    fn configure(config: &Config) -> Result<Self, ConfigError>;

    /// Builds the function from its configuration: [`configure`](Self::configure)
    /// with every secret value that an error quotes (a field, a value, a
    /// rule) replaced by `[REDACTED]`, since a document can hold a secret's
    /// value by mistake and errors reach logs and answers.
    fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Self::configure(config).map_err(|e| config.scrub(e))
    }

    /// Handles one request (paths are relative to the function's mount).
    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem>;

    /// Runs one of the function's store transactions (see
    /// [`TransactionFn`](crate::platform::TransactionFn)). A Durable Object
    /// calls this by name next to the value, so it sees no configuration:
    /// everything it needs travels in `input`. The default knows none.
    fn transaction(
        name: &str,
        _input: &[u8],
        _current: Option<&[u8]>,
        _now: Timestamp,
    ) -> Result<Applied, String> {
        Err(format!("unknown transaction {name:?}"))
    }

    /// The route a request counts under in metrics: a template, never the
    /// raw path, so that labels stay few. The default keeps the first path
    /// segment (`/counters/demo` → `/counters/*`).
    fn route(&self, req: &Request) -> String {
        default_route(req.uri().path())
    }

    /// Takes a batch of this isolate's metrics when the function is itself
    /// the aggregator (the metrics function); `None`, the default, lets the
    /// platform send it to the aggregator.
    async fn absorb_metrics(
        &self,
        _batch: &MetricsBatch,
        _ctx: &Context<'_>,
    ) -> Option<Result<(), String>> {
        None
    }

    /// Runs on the platform's schedule (cron trigger), after the isolate
    /// flushed its metrics. The default does nothing.
    async fn scheduled(&self, _ctx: &Context<'_>) -> Result<(), String> {
        Ok(())
    }

    /// The origins the function forwards to: `/health` shows each one's
    /// circuit breaker (`warn` while open). The default has none.
    fn origins(&self) -> Vec<&crate::origin::OriginClient> {
        Vec::new()
    }

    /// Health checks beyond "the function is configured". The default
    /// checks that the atomic store and the cache answer a read.
    async fn health(&self, ctx: &Context<'_>) -> Vec<(&'static str, Check)> {
        let check = |result: Result<Option<Vec<u8>>, crate::StoreError>| match result {
            Ok(_) => Check::Pass,
            Err(e) => Check::Fail(e.to_string()),
        };
        vec![
            ("store", check(ctx.store().get("edge:health").await)),
            ("cache", check(ctx.cache().get("edge:health").await)),
        ]
    }
}

/// A function as a gateway holds it, mounted under a path: the
/// per-request half of [`EdgeFunction`] without its constants and
/// constructor, so that functions of different types share one list.
#[async_trait(?Send)]
pub trait Mounted {
    /// The function's name.
    fn name(&self) -> &'static str;
    /// [`EdgeFunction::handle`].
    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem>;
    /// [`EdgeFunction::route`].
    fn route(&self, req: &Request) -> String;
    /// [`EdgeFunction::absorb_metrics`].
    async fn absorb_metrics(
        &self,
        batch: &MetricsBatch,
        ctx: &Context<'_>,
    ) -> Option<Result<(), String>>;
    /// [`EdgeFunction::scheduled`].
    async fn scheduled(&self, ctx: &Context<'_>) -> Result<(), String>;
}

/// Function `F` as a [`Mounted`] one, shared with whoever else holds it
/// (a gateway uses the rate limiter both as a filter and, under its admin
/// path, as a mounted function).
pub struct Mount<F>(pub std::rc::Rc<F>);

#[async_trait(?Send)]
impl<F: EdgeFunction> Mounted for Mount<F> {
    fn name(&self) -> &'static str {
        F::NAME
    }
    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        self.0.handle(req, ctx).await
    }
    fn route(&self, req: &Request) -> String {
        self.0.route(req)
    }
    async fn absorb_metrics(
        &self,
        batch: &MetricsBatch,
        ctx: &Context<'_>,
    ) -> Option<Result<(), String>> {
        self.0.absorb_metrics(batch, ctx).await
    }
    async fn scheduled(&self, ctx: &Context<'_>) -> Result<(), String> {
        self.0.scheduled(ctx).await
    }
}

/// The configuration of function `F` as every platform reads it: its
/// built-in policy, replaced by the `POLICY` variable; `POLICY` and
/// `F::VARIABLES` through `var`, `F::SECRETS` and [`SHARED_SECRETS`] through `secret`, each
/// looked up by the name `F` declares (the glue maps it to its own
/// spelling: Spin's lower-case variables). The one config builder of
/// every glue crate.
pub fn config<F: EdgeFunction>(
    mut var: impl FnMut(&str) -> Option<String>,
    mut secret: impl FnMut(&str) -> Option<String>,
) -> Config {
    let mut config = Config::new(F::DEFAULT_POLICY);
    for name in config_variables::<F>() {
        if let Some(value) = var(name) {
            config = config.with_var(name, value);
        }
    }
    for name in config_secrets::<F>() {
        if let Some(value) = secret(name) {
            config = config.with_secret(name, value);
        }
    }
    config
}

/// The secrets [`config`] reads for `F`: `F::SECRETS`, then those every
/// function reads ([`SHARED_SECRETS`]).
pub fn config_secrets<F: EdgeFunction>() -> impl Iterator<Item = &'static str> {
    F::SECRETS.iter().chain(SHARED_SECRETS).copied()
}

/// Secrets every function reads besides its own: the policy admin token
/// ([`crate::live::ADMIN_SECRET`]).
pub const SHARED_SECRETS: &[&str] = &[crate::live::ADMIN_SECRET];

/// The variables [`config`] reads for `F`: `POLICY`, then `F::VARIABLES`.
pub fn config_variables<F: EdgeFunction>() -> impl Iterator<Item = &'static str> {
    std::iter::once(crate::policy::POLICY_VARIABLE).chain(F::VARIABLES.iter().copied())
}

/// A function built from its configuration, or the error that stopped it.
/// Platforms build this once per isolate (or instance) and keep it.
pub type Instance<F> = Result<F, ConfigError>;

/// Builds a function from `config`, the platform's variables and secrets.
pub fn instantiate<F: EdgeFunction>(config: &Config) -> Instance<F> {
    F::from_config(config)
}

/// Serves one request: health endpoint, correlation id, problem rendering
/// and one structured log line per request.
pub async fn serve<F: EdgeFunction>(
    instance: &Instance<F>,
    req: Request,
    services: &Services<'_>,
) -> Response {
    serve_with_policy(instance, None, req, services).await
}

/// [`serve`] for a function whose policy may change at runtime: `policy`
/// answers under [`crate::live::ADMIN_PATH`] (even while the function is
/// misconfigured, so a good policy can replace a bad one) and says on
/// `/health` which version is in effect.
pub async fn serve_with_policy<F: EdgeFunction>(
    instance: &Instance<F>,
    policy: Option<&dyn PolicyEndpoint>,
    req: Request,
    services: &Services<'_>,
) -> Response {
    let correlation_id = correlation_id(req.headers(), services.random);
    let ctx = Context::of::<F>(services, &correlation_id);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = services.clock.now();
    let route = match instance {
        Ok(function) if services.metrics.is_some() => function.route(&req),
        _ => default_route(&path),
    };

    let result = match instance {
        _ if policy.is_some() && crate::live::is_policy_path(&path) => match policy {
            Some(policy) => policy.handle(req, &ctx).await,
            None => Err(Problem::not_found(&path)),
        },
        Err(error) => {
            ctx.log.error(
                "invalid configuration",
                json!({ "error": error.to_string() }),
            );
            Err(Problem::misconfigured())
        }
        Ok(function) if path == "/health" => health(function, policy, &method, &ctx).await,
        Ok(function) => function.handle(req, &ctx).await,
    };
    let mut response = match result {
        Ok(response) => response,
        Err(problem) => problem
            .with_extension("correlation_id", correlation_id.as_str())
            .into_response(Some(&path)),
    };
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    let finished = services.clock.now();
    let elapsed = finished.0.saturating_sub(started.0);
    if let Some(recorder) = services.metrics {
        recorder.record(
            F::NAME,
            &route,
            method.as_str(),
            response.status().as_u16(),
            elapsed.as_secs_f64(),
            finished,
        );
    }
    let mut fields = ctx.take_notes();
    fields.insert("runtime".into(), services.runtime.as_str().into());
    fields.insert("method".into(), method.as_str().into());
    fields.insert("path".into(), path.into());
    fields.insert("status".into(), response.status().as_u16().into());
    fields.insert(
        "duration_ms".into(),
        (elapsed.as_secs_f64() * 1000.0).into(),
    );
    ctx.log.info("request", Value::Object(fields));
    response
}

/// Records a request [`serve`] did not see: one whose body was streamed
/// (see [`crate::stream`]), answered with `status` after
/// `started..finished`, the time to its response head.
pub fn record_streamed<F: EdgeFunction>(
    function: &F,
    recorder: &Recorder,
    (method, uri): (&Method, &http::Uri),
    status: u16,
    started: Timestamp,
    finished: Timestamp,
) {
    let route = http::Request::builder()
        .method(method.clone())
        .uri(uri.clone())
        .body(crate::model::Body::new())
        .map_or_else(|_| default_route(uri.path()), |req| function.route(&req));
    recorder.record(
        F::NAME,
        &route,
        method.as_str(),
        status,
        finished.0.saturating_sub(started.0).as_secs_f64(),
        finished,
    );
}

/// The default metrics route: the first path segment when it looks like
/// a name, then `/*` if more follows.
pub fn default_route(path: &str) -> String {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (first, more) = match rest.split_once('/') {
        Some((first, more)) => (first, !more.is_empty()),
        None => (rest, false),
    };
    let named = (1..=32).contains(&first.len())
        && first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    match (named, more) {
        (true, true) => format!("/{first}/*"),
        (true, false) => format!("/{first}"),
        (false, _) if rest.is_empty() => "/".to_owned(),
        (false, _) => "/*".to_owned(),
    }
}

/// Flushes the isolate's metrics when due (or always, with `force`): to
/// the function itself when it is the aggregator, else to `sink`. A failed
/// flush keeps the batch for the next one and is logged.
pub async fn flush_metrics<F: EdgeFunction>(
    instance: &Instance<F>,
    services: &Services<'_>,
    sink: Option<&dyn MetricsSink>,
    flush_every: u64,
    force: bool,
) {
    let Some(recorder) = services.metrics else {
        return;
    };
    let now = services.clock.now();
    if !force && !recorder.due(now, flush_every) {
        return;
    }
    let Some(mut batch) = recorder.take(F::NAME) else {
        return;
    };
    if batch.id.is_empty() {
        let mut bytes = [0u8; 16];
        if services.random.fill(&mut bytes).is_ok() {
            batch.id = base16ct::lower::encode_string(&bytes);
        }
    }
    let ctx = Context::of::<F>(services, "metrics-flush");
    let absorbed = match instance {
        Ok(function) => function.absorb_metrics(&batch, &ctx).await,
        Err(_) => None,
    };
    let result = match (absorbed, sink) {
        (Some(result), _) => result,
        (None, Some(sink)) => sink.send(&batch).await,
        (None, None) => return,
    };
    if let Err(reason) = result {
        ctx.log.warn(
            "metrics flush failed; kept for the next one",
            json!({ "requests": batch.requests(), "batch": batch.id, "reason": reason }),
        );
        recorder.keep(batch);
    }
}

/// Runs the function's scheduled work (cron trigger): flushes the
/// isolate's metrics, then calls [`EdgeFunction::scheduled`].
pub async fn run_scheduled<F: EdgeFunction>(
    instance: &Instance<F>,
    services: &Services<'_>,
    sink: Option<&dyn MetricsSink>,
) -> Result<(), String> {
    flush_metrics(instance, services, sink, 1, true).await;
    let function = instance.as_ref().map_err(|e| e.to_string())?;
    let ctx = Context::of::<F>(services, "scheduled");
    let result = function.scheduled(&ctx).await;
    if let Err(reason) = &result {
        ctx.log
            .error("scheduled run failed", json!({ "reason": reason }));
    }
    result
}

async fn health<F: EdgeFunction>(
    function: &F,
    policy: Option<&dyn PolicyEndpoint>,
    method: &Method,
    ctx: &Context<'_>,
) -> Result<Response, Problem> {
    if method != Method::GET && method != Method::HEAD {
        return Err(Problem::method_not_allowed(
            method,
            &[Method::GET, Method::HEAD],
        ));
    }
    let checks = function.health(ctx).await;
    let pass = checks.iter().all(|(_, c)| *c == Check::Pass);
    let mut checks: serde_json::Map<_, _> = checks
        .into_iter()
        .map(|(name, check)| {
            let value = match check {
                Check::Pass => json!({ "status": "pass" }),
                Check::Fail(output) => json!({ "status": "fail", "output": output }),
            };
            (name.to_owned(), value)
        })
        .collect();
    // An origin whose breaker is open is a warning: the function still
    // answers (503 `origin-circuit-open`) and the breaker probes again.
    let mut warn = false;
    for client in function.origins() {
        let breaker = client.breaker_state(ctx).await;
        let open = breaker.state == crate::origin::BreakerState::Open;
        warn |= open;
        let mut value = json!({ "status": if open { "warn" } else { "pass" } });
        if let (Some(map), Ok(serde_json::Value::Object(more))) =
            (value.as_object_mut(), serde_json::to_value(&breaker))
        {
            map.extend(more);
        }
        checks.insert(format!("origin {}", client.origin()), value);
    }
    let (status, overall) = match (pass, warn) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "fail"),
        (true, true) => (StatusCode::OK, "warn"),
        (true, false) => (StatusCode::OK, "pass"),
    };
    let mut body = json!({
        "status": overall,
        "function": F::NAME,
        "version": F::VERSION,
        "runtime": ctx.runtime().as_str(),
        "checks": checks,
    });
    if let Some(policy) = policy {
        body["policy"] = policy.status();
    }
    let mut response = json_response(status, &body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/health+json"),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// The caller's correlation id when it is well formed (1–128 characters of
/// `[A-Za-z0-9._:-]`, from `x-correlation-id` or `x-request-id` in
/// `headers`), else a new random one. [`serve`] takes it for every request;
/// a platform's streaming path, which serve does not see, takes it here.
pub fn correlation_id(headers: &http::HeaderMap, random: &dyn Random) -> String {
    let incoming = [CORRELATION_HEADER, "x-request-id"]
        .iter()
        .filter_map(|name| headers.get(*name)?.to_str().ok())
        .find(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        });
    if let Some(id) = incoming {
        return id.to_owned();
    }
    let mut bytes = [0u8; 16];
    if random.fill(&mut bytes).is_err() {
        // Randomness failing must not fail the request; ids then only
        // need to be distinct enough to read logs by.
        bytes = [0u8; 16];
    }
    base16ct::lower::encode_string(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::TestPlatform;
    use crate::platform::Timestamp;
    use crate::policy::{FieldError, Policy, Validator};
    use futures::executor::block_on;

    #[derive(serde::Deserialize)]
    struct EchoPolicy {
        greeting: String,
    }
    impl Policy for EchoPolicy {
        fn validate(&self, v: &mut Validator) {
            v.check(
                !self.greeting.is_empty(),
                "greeting",
                &self.greeting,
                "must not be empty",
            );
        }
    }

    struct Echo(String);

    #[async_trait(?Send)]
    impl EdgeFunction for Echo {
        const NAME: &'static str = "echo";
        const VERSION: &'static str = "1.2.3";
        const DEFAULT_POLICY: &'static str = "greeting = \"hi\"";

        fn configure(config: &Config) -> Result<Self, ConfigError> {
            Ok(Echo(config.policy::<EchoPolicy>()?.greeting))
        }

        async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
            ctx.note("greeted", json!({ "with": self.0 }));
            if req.uri().path() == "/fail" {
                return Err(Problem::bad_request("nope", "asked to fail"));
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({ "greeting": self.0 }),
            ))
        }
    }

    fn platform() -> TestPlatform {
        TestPlatform::at(Timestamp::from_millis(1_795_305_600_000))
    }

    /// A function whose own checks quote what the document holds.
    struct Quoting;

    #[async_trait(?Send)]
    impl EdgeFunction for Quoting {
        const NAME: &'static str = "quoting";
        const VERSION: &'static str = "0";
        const DEFAULT_POLICY: &'static str = "";

        fn configure(config: &Config) -> Result<Self, ConfigError> {
            let quoted = config.var("QUOTED").unwrap_or_default().to_owned();
            Err(match config.var("KIND") {
                Some("missing") => ConfigError::MissingSecret {
                    field: format!("a.{quoted}"),
                    name: quoted,
                },
                Some("variable") => ConfigError::Variable {
                    name: quoted.clone(),
                    value: quoted.clone(),
                    rule: quoted,
                },
                _ => ConfigError::Invalid(vec![FieldError {
                    path: format!("fields.{quoted}"),
                    value: quoted.clone(),
                    rule: format!("unknown operator {quoted:?}"),
                }]),
            })
        }

        async fn handle(&self, _: Request, _: &Context<'_>) -> Result<Response, Problem> {
            unreachable!()
        }
    }

    #[test]
    fn from_config_takes_every_secret_value_out_of_the_functions_errors() {
        for kind in ["invalid", "missing", "variable"] {
            let config = Config::new("")
                .with_secret("TOKEN", "s3cr3t-token-value")
                .with_var("KIND", kind)
                .with_var("QUOTED", "x-s3cr3t-token-value-y");
            let raw = Quoting::configure(&config).err().unwrap().to_string();
            assert!(raw.contains("s3cr3t-token-value"), "{raw}");
            let error = Quoting::from_config(&config).err().unwrap();
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("s3cr3t-token-value"), "{kind}: {shown}");
            assert!(shown.contains("x-[REDACTED]-y"), "{kind}: {shown}");
        }
    }

    fn get(path: &str) -> Request {
        http::Request::builder()
            .uri(path)
            .body(Default::default())
            .unwrap()
    }

    fn body(response: &Response) -> serde_json::Value {
        serde_json::from_slice(response.body()).unwrap()
    }

    #[test]
    fn a_streamed_request_is_recorded_under_its_route() {
        let echo = Echo("hi".into());
        let recorder = Recorder::new();
        let uri: http::Uri = "/upload/big?x=1".parse().unwrap();
        let started = Timestamp::from_millis(1_795_305_600_000);
        let finished = Timestamp::from_millis(1_795_305_600_250);
        record_streamed(
            &echo,
            &recorder,
            (&Method::PUT, &uri),
            201,
            started,
            finished,
        );
        let batch = recorder.take("echo").unwrap();
        let (key, sketch) = batch.windows[0].series.iter().next().unwrap();
        assert_eq!(
            (
                key.function.as_str(),
                key.route.as_str(),
                key.method.as_str(),
                key.status
            ),
            ("echo", "/upload/*", "PUT", 201)
        );
        assert_eq!((sketch.count(), sketch.sum()), (1, 0.25));
    }

    #[test]
    fn notes_join_the_one_request_line_on_every_outcome() {
        let f = platform();
        let instance = instantiate::<Echo>(&Config::new(Echo::DEFAULT_POLICY));
        for path in ["/ok", "/fail"] {
            block_on(f.serve(&instance, get(path)));
        }
        let lines: Vec<serde_json::Value> = f
            .logs
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        for (line, (path, status)) in lines.iter().zip([("/ok", 200), ("/fail", 400)]) {
            assert_eq!(line["message"], "request");
            assert_eq!(
                (line["path"].as_str(), line["status"].as_u64()),
                (Some(path), Some(status))
            );
            assert_eq!(line["greeted"]["with"], "hi");
        }
    }

    #[test]
    fn notes_on_a_context_without_a_request_line_are_not_lost() {
        let f = platform();
        let services = f.services();
        let ctx = Context::named(&services, "echo", "cid-1");
        ctx.note("decided", json!("yes"));
        drop(ctx);
        let lines = f.logs.lines();
        assert_eq!(lines.len(), 1);
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            (line["message"].as_str(), line["decided"].as_str()),
            (Some("request notes"), Some("yes"))
        );
        assert_eq!(line["correlation_id"], "cid-1");
    }

    #[test]
    fn health_reports_function_and_store() {
        let f = platform();
        let instance = instantiate::<Echo>(&Config::new(Echo::DEFAULT_POLICY));
        let up = block_on(f.serve(&instance, get("/health")));
        assert_eq!(up.status(), 200);
        assert_eq!(up.headers()["content-type"], "application/health+json");
        assert_eq!(body(&up)["version"], "1.2.3");
        assert_eq!(body(&up)["checks"]["store"]["status"], "pass");
        assert_eq!(body(&up)["checks"]["cache"]["status"], "pass");
        f.store.set_available(false);
        let down = block_on(f.serve(&instance, get("/health")));
        assert_eq!(down.status(), 503);
        assert_eq!(body(&down)["status"], "fail");
    }

    #[test]
    fn correlation_ids_are_echoed_or_generated_and_logged() {
        let f = platform();
        let instance = instantiate::<Echo>(&Config::new(Echo::DEFAULT_POLICY));
        let mut req = get("/fail");
        req.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("req-42"));
        let response = block_on(f.serve(&instance, req));
        assert_eq!(response.headers()[CORRELATION_HEADER], "req-42");
        assert_eq!(body(&response)["correlation_id"], "req-42");
        assert_eq!(body(&response)["instance"], "/fail");
        let generated = block_on(f.serve(&instance, get("/")));
        let id = generated.headers()[CORRELATION_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 32);
        let logs = f.logs.lines();
        let last: serde_json::Value = serde_json::from_str(logs.last().unwrap()).unwrap();
        assert_eq!(last["correlation_id"], id.as_str());
        assert_eq!(last["status"], 200);
        assert_eq!(last["timestamp"], "2026-11-22T00:00:00.000Z");
    }

    #[test]
    fn every_request_is_recorded_under_its_route() {
        let f = platform();
        let instance = instantiate::<Echo>(&Config::new(Echo::DEFAULT_POLICY));
        block_on(f.serve(&instance, get("/greet/ann")));
        block_on(f.serve(&instance, get("/greet/bob")));
        block_on(f.serve(&instance, get("/fail")));
        let batch = f.metrics.take("echo").unwrap();
        let series: Vec<_> = batch.windows[0]
            .series
            .iter()
            .map(|(k, s)| (k.route.as_str(), k.status, s.count()))
            .collect();
        assert_eq!(series, [("/fail", 400, 1), ("/greet/*", 200, 2)]);
    }

    #[test]
    fn default_routes_keep_one_named_segment() {
        for (path, route) in [
            ("/", "/"),
            ("/health", "/health"),
            ("/counters/demo", "/counters/*"),
            ("/api/users/42/", "/api/*"),
            ("/%F0%9F%92%A9/x", "/*"),
            (&format!("/{}", "a".repeat(33)), "/*"),
        ] {
            assert_eq!(default_route(path), route, "{path}");
        }
    }

    #[test]
    fn an_invalid_policy_answers_500_and_logs_the_field() {
        let f = platform();
        let config = Config::new(Echo::DEFAULT_POLICY).with_var("POLICY", "greeting = \"\"");
        let instance = instantiate::<Echo>(&config);
        let response = block_on(f.serve(&instance, get("/")));
        assert_eq!(response.status(), 500);
        assert_eq!(
            body(&response)["type"],
            "urn:edge-functions:problem:misconfigured"
        );
        let logs = f.logs.lines().join("\n");
        assert!(
            logs.contains(r#"greeting: \"\" must not be empty"#),
            "{logs}"
        );
    }
}
