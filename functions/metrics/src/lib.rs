//! Metrics: every function's requests, merged across isolates, exported.
//!
//! Each function's platform glue records its requests (route, method,
//! status, latency) into the isolate's [`Recorder`](edge_core::metrics::Recorder)
//! and flushes it here — on Workers through a service binding to
//! `POST /_metrics/ingest`, merged into this worker's Durable Objects; on
//! Spin straight into the shared key-value store — every `flush_every`
//! records, when a minute closes, and on the cron trigger. This function
//! reads the merged per-minute windows and serves them. Routes, relative
//! to its mount:
//!
//! | request | answer |
//! |---|---|
//! | `GET /metrics` | Prometheus text, or OpenMetrics when `Accept` asks for `application/openmetrics-text` (or `?format=openmetrics`) |
//! | `GET /_metrics/snapshot?window=5m` | JSON per (function, route): requests, errors, 429s, p50/p95/p99 |
//! | `GET /_metrics/series?window=1h` | JSON per route per minute: requests, errors, 429s, p50/p95/p99 (the chart's panels) |
//! | `GET /_metrics/alerts` | active (pending, firing) and recently resolved alerts |
//! | `GET /_metrics/chart` | an HTML page: firing alerts, a sortable overview of routes (worst first), and latency, rate and error panels for the routes picked (inline SVG, no external assets) |
//! | `POST /_metrics/ingest` | a [`MetricsBatch`] from an isolate; bearer `METRICS_INGEST_TOKEN` |
//! | `POST /_metrics/evaluate` | runs the cron work now (anomaly baselines, alerts, pruning); bearer `METRICS_ADMIN_TOKEN` |
//! | `GET /health` | `200` / `503` `application/health+json` |
//!
//! The cron trigger evaluates the policy's alert rules and anomaly rules
//! (firing/resolved, optional webhook) and folds windows past the
//! retention into totals.

pub mod alerts;
pub mod anomaly;
pub mod exposition;
pub mod policy;
pub mod scenario;
pub mod view;

use std::time::Duration;

use async_trait::async_trait;
use edge_core::admin::AdminGuard;
use edge_core::metrics::{MetricsBatch, WINDOW_SECONDS, Window, store, window_start};
use edge_core::model::{json_response, path_segments, query_param};
use edge_core::platform::{Applied, StoreError, Timestamp, update};
use edge_core::{Config, ConfigError, Context, EdgeFunction, Problem, Request, Response, Secret};
use http::{HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::alerts::{AlertState, STATE_KEY};
use crate::anomaly::{BASELINES_KEY, Baselines};
use crate::exposition::{Exposition, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
use crate::policy::{MetricsPolicy, MetricsSection};
use crate::view::Totals;

#[cfg(feature = "browser")]
mod browser;
#[cfg(feature = "spin")]
mod spin;
#[cfg(feature = "workers")]
mod workers;

/// Where windows past the retention are folded.
pub const TOTALS_KEY: &str = "metrics:totals";
/// The most windows one ingested batch may carry.
const MAX_BATCH_WINDOWS: usize = 10;
/// `Retry-After` when the store is down.
const RETRY_AFTER_SECS: u64 = 5;
/// The webhook's optional bearer token.
pub const WEBHOOK_TOKEN_SECRET: &str = "METRICS_WEBHOOK_TOKEN";

const CHART_HTML: &str = include_str!("chart.html");

/// The function's endpoints, named once for both routing and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Exposition,
    Snapshot,
    Series,
    Alerts,
    Chart,
    Ingest,
    Evaluate,
}

impl Endpoint {
    fn of(req: &Request) -> Option<Endpoint> {
        Some(match path_segments(req).as_slice() {
            ["metrics"] => Endpoint::Exposition,
            ["_metrics", "snapshot"] => Endpoint::Snapshot,
            ["_metrics", "series"] => Endpoint::Series,
            ["_metrics", "alerts"] => Endpoint::Alerts,
            ["_metrics", "chart"] => Endpoint::Chart,
            ["_metrics", "ingest"] => Endpoint::Ingest,
            ["_metrics", "evaluate"] => Endpoint::Evaluate,
            _ => return None,
        })
    }

    /// The route label its requests are recorded under.
    fn template(self) -> &'static str {
        match self {
            Endpoint::Exposition => "/metrics",
            Endpoint::Snapshot => "/_metrics/snapshot",
            Endpoint::Series => "/_metrics/series",
            Endpoint::Alerts => "/_metrics/alerts",
            Endpoint::Chart => "/_metrics/chart",
            Endpoint::Ingest => "/_metrics/ingest",
            Endpoint::Evaluate => "/_metrics/evaluate",
        }
    }
}

/// The metrics function.
#[derive(Debug)]
pub struct Metrics {
    policy: MetricsSection,
    ingest_token: Option<Secret>,
    admin: AdminGuard,
    read_token: Option<Secret>,
    webhook_token: Option<Secret>,
}

#[async_trait(?Send)]
impl EdgeFunction for Metrics {
    const NAME: &'static str = "metrics";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DEFAULT_POLICY: &'static str = include_str!("../policy.toml");
    const SECRETS: &'static [&'static str] = &[
        "METRICS_INGEST_TOKEN",
        "METRICS_ADMIN_TOKEN",
        "METRICS_READ_TOKEN",
        WEBHOOK_TOKEN_SECRET,
    ];

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        let policy = config.policy::<MetricsPolicy>()?;
        config.check_outbound(policy.outbound())?;
        let policy = policy.metrics;
        let secret = |name: &str| {
            config
                .secret(name)
                .filter(|s| !s.expose().is_empty())
                .cloned()
        };
        Ok(Metrics {
            ingest_token: secret(&policy.ingest_token_secret),
            admin: AdminGuard::new(config, "metrics", Some(&policy.admin_token_secret)),
            read_token: policy.read_token_secret.as_deref().and_then(secret),
            webhook_token: secret(WEBHOOK_TOKEN_SECRET),
            policy,
        })
    }

    fn route(&self, req: &Request) -> String {
        Endpoint::of(req).map_or_else(
            || edge_core::function::default_route(req.uri().path()),
            |endpoint| endpoint.template().to_owned(),
        )
    }

    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let Some(endpoint) = Endpoint::of(&req) else {
            return Err(Problem::not_found(req.uri().path()));
        };
        match endpoint {
            Endpoint::Ingest => {
                allow(&req, &[Method::POST])?;
                self.ingest(&req, ctx).await
            }
            Endpoint::Evaluate => {
                allow(&req, &[Method::POST])?;
                self.admin.check(&req, "evaluating the alert rules")?;
                let report = self.run_cron(ctx).await.map_err(store_down)?;
                Ok(json_response(StatusCode::OK, &report))
            }
            Endpoint::Exposition => {
                self.allow_read(&req)?;
                self.exposition(&req, ctx).await
            }
            Endpoint::Snapshot => {
                self.allow_read(&req)?;
                self.snapshot(&req, ctx).await
            }
            Endpoint::Series => {
                self.allow_read(&req)?;
                self.series(&req, ctx).await
            }
            Endpoint::Alerts => {
                self.allow_read(&req)?;
                self.alerts(ctx).await
            }
            Endpoint::Chart => {
                self.allow_read(&req)?;
                Ok(html(CHART_HTML))
            }
        }
    }

    async fn absorb_metrics(
        &self,
        batch: &MetricsBatch,
        ctx: &Context<'_>,
    ) -> Option<Result<(), String>> {
        Some(
            store::write_batch(ctx.store(), ctx.clock(), batch, 0)
                .await
                .map_err(|e| e.to_string()),
        )
    }

    async fn scheduled(&self, ctx: &Context<'_>) -> Result<(), String> {
        self.run_cron(ctx)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn transaction(
        name: &str,
        input: &[u8],
        current: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Applied, String> {
        match name {
            store::MERGE_TRANSACTION => store::merge_transaction(name, input, current, now),
            _ => Err(format!("unknown transaction {name:?}")),
        }
    }
}

fn allow(req: &Request, methods: &[Method]) -> Result<(), Problem> {
    if methods.contains(req.method()) {
        Ok(())
    } else {
        Err(Problem::method_not_allowed(req.method(), methods))
    }
}

fn disabled(secret: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "disabled", "Disabled").with_detail(format!(
        "this endpoint is off: the secret {secret} is not set"
    ))
}

/// The function's own state under `key` (totals, alert state). A value
/// that does not decode (say, one written by an incompatible version) is
/// logged and started afresh rather than refusing every scrape: the next
/// evaluation rebuilds the alert state from the windows (a rule's `for`
/// starts again), and totals starting afresh is a counter reset, which
/// Prometheus' `rate()` allows for.
fn decode_state<T: DeserializeOwned + Default>(
    ctx: &Context<'_>,
    key: &str,
    bytes: Option<&[u8]>,
) -> T {
    let Some(bytes) = bytes else {
        return T::default();
    };
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        ctx.log().error(
            "metrics state unreadable, starting afresh",
            json!({ "key": key, "reason": e.to_string() }),
        );
        T::default()
    })
}

fn store_down(_: StoreError) -> Problem {
    Problem::store_unavailable(RETRY_AFTER_SECS)
}

fn html(body: &str) -> Response {
    let mut response = Response::new(body.as_bytes().to_vec().into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response.headers_mut().insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"),
    );
    response
}

fn text(body: String, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into_bytes().into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    response
}

impl Metrics {
    /// A read is a `GET` or `HEAD`, with the read token when one is set.
    fn allow_read(&self, req: &Request) -> Result<(), Problem> {
        allow(req, &[Method::GET, Method::HEAD])?;
        if let Some(token) = &self.read_token {
            Problem::require_bearer(
                req,
                token,
                "metrics",
                "reading metrics needs the read token",
            )?;
        }
        Ok(())
    }

    fn retention(&self) -> Duration {
        self.policy.retention.0
    }

    /// `?window=` as a duration in 1m..=retention (default `default`).
    fn window_param(&self, req: &Request, default: Duration) -> Result<Duration, Problem> {
        let Some(text) = query_param(req, "window") else {
            return Ok(default);
        };
        let window = humantime::parse_duration(text).map_err(|_| {
            Problem::bad_request(
                "invalid-parameter",
                format!("window={text:?} is not a duration such as 5m"),
            )
            .with_extension("field", "window")
        })?;
        if window < Duration::from_secs(WINDOW_SECONDS) || window > self.retention() {
            return Err(Problem::bad_request(
                "invalid-parameter",
                format!(
                    "window={text:?} must be between 1m and the retention ({})",
                    humantime::format_duration(self.retention())
                ),
            )
            .with_extension("field", "window"));
        }
        Ok(window)
    }

    /// The windows of the last `span` (the current one included).
    async fn recent_windows(
        &self,
        ctx: &Context<'_>,
        span: Duration,
    ) -> Result<(Vec<Window>, u64, u64), StoreError> {
        let now = ctx.clock().now();
        let current = window_start(now);
        let count = span.as_secs().div_ceil(WINDOW_SECONDS).max(1);
        let from = current.saturating_sub((count - 1) * WINDOW_SECONDS);
        let index = store::read_index(ctx.store()).await?;
        let windows = store::read_windows(ctx.store(), &index, from, current).await?;
        Ok((windows, from, now.0.as_secs().max(from + 1)))
    }

    async fn totals(&self, ctx: &Context<'_>) -> Result<Totals, StoreError> {
        let bytes = ctx.store().get(TOTALS_KEY).await?;
        Ok(decode_state(ctx, TOTALS_KEY, bytes.as_deref()))
    }

    async fn alert_state(&self, ctx: &Context<'_>) -> Result<AlertState, StoreError> {
        let bytes = ctx.store().get(STATE_KEY).await?;
        Ok(decode_state(ctx, STATE_KEY, bytes.as_deref()))
    }

    async fn ingest(&self, req: &Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let token = self
            .ingest_token
            .as_ref()
            .ok_or_else(|| disabled("METRICS_INGEST_TOKEN"))?;
        Problem::require_bearer(req, token, "metrics", "ingesting needs the ingest token")?;
        let batch: MetricsBatch = serde_json::from_slice(req.body()).map_err(|e| {
            Problem::bad_request(
                "invalid-batch",
                format!("the body is not a metrics batch: {e}"),
            )
        })?;
        if batch.source.is_empty() || batch.windows.len() > MAX_BATCH_WINDOWS {
            return Err(Problem::bad_request(
                "invalid-batch",
                format!("a batch needs a source and at most {MAX_BATCH_WINDOWS} windows"),
            ));
        }
        let now = ctx.clock().now().0.as_secs();
        // Older than the retention is fine (an idle isolate's last window):
        // the next prune folds it into the totals.
        let oldest = now.saturating_sub(store::MAX_RETENTION.as_secs());
        if let Some(w) = batch
            .windows
            .iter()
            .find(|w| w.start < oldest || w.start > now + WINDOW_SECONDS)
        {
            return Err(Problem::bad_request(
                "invalid-batch",
                format!(
                    "window {} is older than the store keeps or in the future",
                    w.start
                ),
            ));
        }
        store::write_batch(ctx.store(), ctx.clock(), &batch, 0)
            .await
            .map_err(store_down)?;
        Ok(json_response(
            StatusCode::ACCEPTED,
            &json!({ "requests": batch.requests(), "windows": batch.windows.len() }),
        ))
    }

    async fn exposition(&self, req: &Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let openmetrics = match query_param(req, "format") {
            Some("openmetrics") => true,
            Some("prometheus") => false,
            None => req
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text")),
            Some(other) => {
                return Err(Problem::bad_request(
                    "invalid-parameter",
                    format!("format={other:?} must be prometheus or openmetrics"),
                )
                .with_extension("field", "format"));
            }
        };
        let totals = self.totals(ctx).await.map_err(store_down)?;
        // Every indexed window not folded yet (pruning may lag the
        // retention), so the counters never go back.
        let index = store::read_index(ctx.store()).await.map_err(store_down)?;
        let mut all = store::read_windows(ctx.store(), &index, 0, u64::MAX)
            .await
            .map_err(store_down)?;
        all.retain(|w| !totals.folding.contains(&w.start));
        let mut counters = totals.series;
        for window in &all {
            for (key, sketch) in &window.series {
                let entry = counters.entry(key.clone()).or_default();
                entry.0 += sketch.count();
                entry.1 += sketch.sum();
            }
        }
        let oldest_recent = window_start(ctx.clock().now()).saturating_sub(
            self.policy
                .summary_window
                .0
                .as_secs()
                .saturating_sub(WINDOW_SECONDS),
        );
        let recent = &all[all.partition_point(|w| w.start < oldest_recent)..];
        let e = Exposition {
            counters,
            recent: view::by_route(recent),
            gauges: view::latest_gauges(&all),
            firing: self.alert_state(ctx).await.map_err(store_down)?.firing(),
        };
        Ok(if openmetrics {
            text(exposition::openmetrics_text(&e), OPENMETRICS_CONTENT_TYPE)
        } else {
            text(exposition::prometheus_text(&e), PROMETHEUS_CONTENT_TYPE)
        })
    }

    async fn snapshot(&self, req: &Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let span = self.window_param(req, self.policy.summary_window.0)?;
        let (windows, from, to) = self.recent_windows(ctx, span).await.map_err(store_down)?;
        let firing = self.alert_state(ctx).await.map_err(store_down)?.firing();
        Ok(json_response(
            StatusCode::OK,
            &view::snapshot(&windows, from, to, firing),
        ))
    }

    async fn series(&self, req: &Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let span = self.window_param(req, self.retention())?;
        let (windows, _, _) = self.recent_windows(ctx, span).await.map_err(store_down)?;
        Ok(json_response(StatusCode::OK, &view::series(&windows)))
    }

    async fn alerts(&self, ctx: &Context<'_>) -> Result<Response, Problem> {
        let state = self.alert_state(ctx).await.map_err(store_down)?;
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "evaluated_at": state.evaluated_at_ms.map(|ms| Timestamp::from_millis(ms).to_rfc3339()),
                "firing": state.firing(),
                "active": state.active.values().map(alerts::alert_json).collect::<Vec<_>>(),
                "resolved": state.resolved.iter().rev().map(alerts::alert_json).collect::<Vec<_>>(),
            }),
        ))
    }

    /// The cron trigger's work: fold the settled minutes into the anomaly
    /// baselines, evaluate the alert and anomaly rules (webhook on
    /// transitions), then fold windows past the retention into totals.
    async fn run_cron(&self, ctx: &Context<'_>) -> Result<serde_json::Value, StoreError> {
        let now = ctx.clock().now();
        let longest = self
            .policy
            .alerts
            .iter()
            .map(|r| r.window.0)
            .max()
            .unwrap_or(Duration::from_secs(WINDOW_SECONDS));
        let current = window_start(now);
        let count = longest.as_secs().div_ceil(WINDOW_SECONDS).max(1);
        let mut from = current.saturating_sub((count - 1) * WINDOW_SECONDS);
        let anomaly_rules = &self.policy.anomalies;
        let retention = self.retention();
        let mut baselines = Baselines::default();
        let stored = ctx.store().get(BASELINES_KEY).await?;
        if anomaly_rules.is_empty() {
            if stored.is_some() {
                ctx.store().delete(BASELINES_KEY).await?;
            }
        } else {
            let known: Baselines = decode_state(ctx, BASELINES_KEY, stored.as_deref());
            if let Some((first, _)) = anomaly::due(&known, now, retention) {
                from = from.min(first);
            }
        }
        let index = store::read_index(ctx.store()).await?;
        let windows = store::read_windows(ctx.store(), &index, from, current).await?;
        let mut folded = 0;
        if !anomaly_rules.is_empty() {
            // Decided again on the stored value: a concurrent run may have
            // folded some minutes already (the windows read cover the rest).
            baselines = update(ctx.store(), BASELINES_KEY, 16, |current| {
                let mut baselines: Baselines = decode_state(ctx, BASELINES_KEY, current);
                folded = anomaly::due(&baselines, now, retention)
                    .map_or(0, |(first, last)| (last - first) / WINDOW_SECONDS + 1);
                anomaly::fold(anomaly_rules, &windows, &mut baselines, now, retention);
                (
                    serde_json::to_vec(&baselines).unwrap_or_default(),
                    baselines,
                )
            })
            .await?;
        }
        let anomalies = anomaly::holding(anomaly_rules, &baselines);
        let rules = &self.policy.alerts;
        let mut transitions = Vec::new();
        update(ctx.store(), STATE_KEY, 16, |current| {
            let mut state: AlertState = decode_state(ctx, STATE_KEY, current);
            transitions = alerts::evaluate(rules, anomalies.clone(), &windows, &mut state, now);
            (
                serde_json::to_vec(&state).unwrap_or_default(),
                state.firing(),
            )
        })
        .await?;
        for alert in &transitions {
            ctx.log().warn(
                "alert",
                json!({ "alert": alert.name, "state": alerts::alert_json(alert)["status"], "function": alert.function, "route": alert.route, "value": alert.value }),
            );
        }
        if !transitions.is_empty() {
            self.notify(ctx, &transitions).await;
        }
        let pruned = self.prune(ctx, now).await?;
        let state = self.alert_state(ctx).await?;
        Ok(json!({
            "evaluated_at": now.to_rfc3339(),
            "transitions": transitions.iter().map(alerts::alert_json).collect::<Vec<_>>(),
            "firing": state.firing(),
            "pruned_windows": pruned,
            "baselines": {
                "minutes_folded": folded,
                "through": baselines.through.map(|s| Timestamp::from_millis(s * 1000).to_rfc3339()),
                "series": baselines.series.len(),
            },
        }))
    }

    async fn notify(&self, ctx: &Context<'_>, transitions: &[alerts::Alert]) {
        let Some(url) = &self.policy.webhook else {
            return;
        };
        let body = serde_json::to_vec(&alerts::webhook_body(transitions)).unwrap_or_default();
        let mut builder = http::Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.webhook_token {
            builder = builder.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            );
        }
        let Ok(request) = builder.body(body.into()) else {
            return;
        };
        match ctx.http().send(request).await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => ctx.log().warn(
                "alert webhook refused",
                json!({ "status": response.status().as_u16() }),
            ),
            Err(e) => ctx
                .log()
                .warn("alert webhook failed", json!({ "reason": e.to_string() })),
        }
    }

    /// Folds windows older than the retention into [`TOTALS_KEY`] and
    /// deletes them; returns how many. The windows are marked `folding` in
    /// the same write that adds them, so readers never count them twice,
    /// and a prune cut short is finished by the next one. A batch arriving
    /// later for a pruned window makes a new key, counted and folded anew.
    async fn prune(&self, ctx: &Context<'_>, now: Timestamp) -> Result<usize, StoreError> {
        let oldest = window_start(now).saturating_sub(self.retention().as_secs());
        let index = store::read_index(ctx.store()).await?;
        let totals = self.totals(ctx).await?;
        let unfinished: Vec<u64> = totals.folding.iter().copied().collect();
        let old: Vec<u64> = index
            .windows
            .range(..oldest)
            .map(|(start, _)| *start)
            .filter(|start| !totals.folding.contains(start))
            .collect();
        if old.is_empty() && unfinished.is_empty() {
            return Ok(0);
        }
        let windows: Vec<Window> =
            store::read_windows(ctx.store(), &index, 0, oldest.saturating_sub(1))
                .await?
                .into_iter()
                .filter(|w| old.contains(&w.start))
                .collect();
        update(ctx.store(), TOTALS_KEY, 16, |current| {
            let mut totals: Totals = decode_state(ctx, TOTALS_KEY, current);
            let fresh: Vec<&Window> = windows
                .iter()
                .filter(|w| !totals.folding.contains(&w.start))
                .collect();
            for window in fresh {
                totals.add(window);
            }
            totals.folding.extend(&old);
            (serde_json::to_vec(&totals).unwrap_or_default(), ())
        })
        .await?;
        let done: Vec<u64> = unfinished.into_iter().chain(old).collect();
        store::update_index(ctx.store(), |index| {
            for start in &done {
                index.windows.remove(start);
            }
        })
        .await?;
        for start in &done {
            for key in index.keys(*start) {
                ctx.store().delete(&key).await?;
            }
        }
        update(ctx.store(), TOTALS_KEY, 16, |current| {
            let mut totals: Totals = decode_state(ctx, TOTALS_KEY, current);
            for start in &done {
                totals.folding.remove(start);
            }
            (serde_json::to_vec(&totals).unwrap_or_default(), ())
        })
        .await?;
        Ok(done.len())
    }
}
