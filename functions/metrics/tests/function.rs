//! The metrics function on the in-memory platform: batches from several
//! isolates of two functions merged at the aggregator (exact counts,
//! quantiles within 1 %), the exposition's counters staying monotonic
//! across pruning, alerts going pending → firing → resolved with the
//! webhook, the function's own requests absorbed, and the 4xx answers.
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use std::time::Duration;

use edge_core::function::{Instance, flush_metrics, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::metrics::{MetricsBatch, Recorder};
use edge_core::{Config, EdgeFunction, Request, Response, Timestamp};
use futures::executor::block_on;
use metrics::Metrics;
use serde_json::Value;

const INGEST: &str = "ingest-token-for-tests";
const ADMIN: &str = "admin-token-for-tests";
/// 2026-11-22T00:00:00Z.
const T0: u64 = 1_795_305_600;

fn instance(policy: Option<&str>) -> Instance<Metrics> {
    let mut config = Config::new(Metrics::DEFAULT_POLICY)
        .with_secret("METRICS_INGEST_TOKEN", INGEST)
        .with_secret("METRICS_ADMIN_TOKEN", ADMIN);
    if let Some(policy) = policy {
        config = config.with_var("POLICY", policy);
    }
    instantiate::<Metrics>(&config)
}

fn request(method: &str, uri: &str, token: Option<&str>, body: &str) -> Request {
    let mut b = http::Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        b = b.header("authorization", format!("Bearer {token}"));
    }
    b.body(body.to_owned().into()).unwrap()
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(r.body()).unwrap()
}

fn at(seconds: u64) -> Timestamp {
    Timestamp(Duration::from_secs(seconds))
}

/// A seeded lognormal-ish latency stream (seconds).
fn latencies(n: usize, seed: u64, median: f64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u1 = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u2 = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            (median.ln() + 0.8 * normal).exp()
        })
        .collect()
}

fn exact(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

/// One isolate of `function` recording `values` on one route, flushed as
/// the Workers glue does: a batch posted to `/_metrics/ingest`.
fn flush_isolate(
    platform: &TestPlatform,
    metrics: &Instance<Metrics>,
    function: &str,
    values: &[f64],
    status: u16,
    now: u64,
) {
    let isolate = Recorder::new();
    for &v in values {
        isolate.record(function, "/api/*", "GET", status, v, at(now));
    }
    let batch: MetricsBatch = isolate.take(function).unwrap();
    let body = serde_json::to_string(&batch).unwrap();
    let response = block_on(platform.serve(
        metrics,
        request("POST", "/_metrics/ingest", Some(INGEST), &body),
    ));
    assert_eq!(response.status(), 202, "{:?}", json_of(&response));
}

fn route<'a>(snapshot: &'a Value, function: &str, route: &str) -> &'a Value {
    snapshot["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["function"] == function && r["route"] == route)
        .unwrap_or_else(|| panic!("no {function} {route} in {snapshot}"))
}

#[test]
fn isolates_of_two_functions_merge_exactly_with_quantiles_within_one_percent() {
    let platform = TestPlatform::at(at(T0 + 30));
    let metrics = instance(None);
    let a = latencies(3000, 1, 0.020);
    let b = latencies(2000, 2, 0.020);
    let c = latencies(1000, 3, 0.150);
    flush_isolate(&platform, &metrics, "counter", &a, 200, T0 + 10);
    flush_isolate(&platform, &metrics, "counter", &b, 200, T0 + 20);
    flush_isolate(&platform, &metrics, "rate-limit", &c, 429, T0 + 25);

    let snapshot = json_of(&block_on(
        platform.serve(&metrics, request("GET", "/_metrics/snapshot", None, "")),
    ));
    let counter = route(&snapshot, "counter", "/api/*");
    assert_eq!(counter["requests"], 5000);
    let all: Vec<f64> = a.iter().chain(&b).copied().collect();
    for (q, name) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
        let got = counter["latency_ms"][name].as_f64().unwrap() / 1000.0;
        let want = exact(&all, q);
        // Within 1 %, plus the snapshot's rounding to the microsecond.
        assert!(
            (got - want).abs() <= want * 0.01 + 1e-6,
            "{name}: {got} vs {want}"
        );
    }
    let limited = route(&snapshot, "rate-limit", "/api/*");
    assert_eq!(limited["requests"], 1000);
    assert_eq!(limited["rate_limited"], 1000);
    assert_eq!(limited["statuses"]["429"], 1000);

    let text = String::from_utf8(
        block_on(platform.serve(&metrics, request("GET", "/metrics", None, "")))
            .body()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(
            r#"edge_requests_total{function="counter",route="/api/*",method="GET",status="200"} 5000"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"edge_requests_rate_limited_total{function="rate-limit",route="/api/*"} 1000"#
    ));
    assert!(text.contains(
        r#"edge_request_duration_seconds_count{function="counter",route="/api/*"} 5000"#
    ));
}

#[test]
fn counters_stay_monotonic_when_old_windows_are_pruned() {
    let platform = TestPlatform::at(at(T0));
    let policy = Metrics::DEFAULT_POLICY.replace("retention = \"1h\"", "retention = \"10m\"");
    let metrics = instance(Some(&policy));
    flush_isolate(&platform, &metrics, "counter", &[0.01; 7], 200, T0);
    let count = |platform: &TestPlatform| {
        let text = String::from_utf8(
            block_on(platform.serve(&metrics, request("GET", "/metrics", None, "")))
                .body()
                .to_vec(),
        )
        .unwrap();
        text.lines()
            .find(|l| l.starts_with("edge_requests_total{function=\"counter\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
    };
    assert_eq!(count(&platform), Some(7));
    // Twenty minutes later the window is past the retention: still counted
    // before the cron prunes it, and after.
    platform.clock.set(at(T0 + 1200));
    assert_eq!(count(&platform), Some(7));
    let evaluated = block_on(platform.serve(
        &metrics,
        request("POST", "/_metrics/evaluate", Some(ADMIN), ""),
    ));
    assert_eq!(json_of(&evaluated)["pruned_windows"], 1);
    flush_isolate(&platform, &metrics, "counter", &[0.01; 3], 200, T0 + 1200);
    assert_eq!(count(&platform), Some(10));
    // A second prune of nothing new changes nothing.
    block_on(platform.serve(
        &metrics,
        request("POST", "/_metrics/evaluate", Some(ADMIN), ""),
    ));
    assert_eq!(count(&platform), Some(10));
}

#[test]
fn alerts_fire_and_resolve_with_the_webhook() {
    let platform = TestPlatform::at(at(T0 + 5));
    let hook = "https://alerts.example.com/hook";
    platform
        .http
        .route(hook, http::Response::new(Vec::new().into()));
    let policy = r#"
[metrics]
retention = "1h"
summary_window = "5m"
ingest_token_secret = "METRICS_INGEST_TOKEN"
admin_token_secret = "METRICS_ADMIN_TOKEN"
webhook = "https://alerts.example.com/hook"

[[metrics.alerts]]
name = "SlowCounter"
expr = "p95 > 250ms"
function = "counter"
window = "2m"
for = "1m"
"#;
    let metrics = instance(Some(policy));
    let evaluate = |platform: &TestPlatform| {
        json_of(&block_on(platform.serve(
            &metrics,
            request("POST", "/_metrics/evaluate", Some(ADMIN), ""),
        )))
    };
    let alerts = |platform: &TestPlatform| {
        json_of(&block_on(
            platform.serve(&metrics, request("GET", "/_metrics/alerts", None, "")),
        ))
    };
    flush_isolate(&platform, &metrics, "counter", &[0.4; 50], 200, T0);
    flush_isolate(&platform, &metrics, "rate-limit", &[0.9; 50], 200, T0);
    assert!(
        evaluate(&platform)["transitions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let pending = alerts(&platform);
    assert_eq!(pending["active"][0]["status"], "pending");
    assert_eq!(
        pending["active"].as_array().unwrap().len(),
        1,
        "only counter matches"
    );
    assert_eq!(platform.http.calls(hook), 0);

    // A minute later, still slow: it fires and the webhook hears of it.
    platform.clock.set(at(T0 + 65));
    flush_isolate(&platform, &metrics, "counter", &[0.4; 50], 200, T0 + 65);
    let fired = evaluate(&platform);
    assert_eq!(fired["transitions"][0]["status"], "firing");
    assert_eq!(fired["firing"], 1);
    assert_eq!(platform.http.calls(hook), 1);
    let sent: Value =
        serde_json::from_slice(platform.http.last_request(hook).unwrap().body()).unwrap();
    assert_eq!(sent["status"], "firing");
    assert_eq!(sent["alerts"][0]["labels"]["alertname"], "SlowCounter");
    assert_eq!(sent["alerts"][0]["labels"]["function"], "counter");
    let text = String::from_utf8(
        block_on(platform.serve(&metrics, request("GET", "/metrics", None, "")))
            .body()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("edge_alerts_firing 1"), "{text}");

    // Fast again for longer than the rule's window: resolved.
    platform.clock.set(at(T0 + 300));
    flush_isolate(&platform, &metrics, "counter", &[0.01; 50], 200, T0 + 300);
    let resolved = evaluate(&platform);
    assert_eq!(resolved["transitions"][0]["status"], "resolved");
    assert_eq!(platform.http.calls(hook), 2);
    let now = alerts(&platform);
    assert_eq!(now["firing"], 0);
    assert_eq!(now["resolved"][0]["labels"]["alertname"], "SlowCounter");
}

#[test]
fn its_own_requests_are_recorded_and_absorbed() {
    let platform = TestPlatform::at(at(T0));
    let metrics = instance(None);
    for _ in 0..4 {
        block_on(platform.serve(&metrics, request("GET", "/_metrics/alerts", None, "")));
    }
    block_on(platform.serve(&metrics, request("GET", "/nowhere/at/all", None, "")));
    block_on(flush_metrics(&metrics, &platform.services(), None, 1, true));
    let snapshot = json_of(&block_on(
        platform.serve(&metrics, request("GET", "/_metrics/snapshot", None, "")),
    ));
    assert_eq!(
        route(&snapshot, "metrics", "/_metrics/alerts")["requests"],
        4
    );
    assert_eq!(
        route(&snapshot, "metrics", "/nowhere/*")["statuses"]["404"],
        1
    );
}

#[test]
fn the_chart_page_is_self_contained() {
    let platform = TestPlatform::at(at(T0));
    let metrics = instance(None);
    let page = block_on(platform.serve(&metrics, request("GET", "/_metrics/chart", None, "")));
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = String::from_utf8(page.body().to_vec()).unwrap();
    assert!(html.contains("<svg") || html.contains("createElementNS"));
    for external in [
        "<script src",
        "<link",
        "src=\"http",
        "url(",
        "@import",
        "fetch(\"http",
    ] {
        assert!(!html.contains(external), "external asset: {external}");
    }
}

#[test]
fn bad_requests_get_problems_naming_what_was_wrong() {
    let platform = TestPlatform::at(at(T0));
    let metrics = instance(None);
    let serve = |r: Request| block_on(platform.serve(&metrics, r));
    let cases: Vec<(Request, u16, &str)> = vec![
        (
            request("POST", "/_metrics/ingest", None, "{}"),
            401,
            "unauthorized",
        ),
        (
            request("POST", "/_metrics/ingest", Some("wrong"), "{}"),
            401,
            "unauthorized",
        ),
        (
            request("POST", "/_metrics/ingest", Some(INGEST), "{nope"),
            400,
            "invalid-batch",
        ),
        (
            request(
                "POST",
                "/_metrics/ingest",
                Some(INGEST),
                r#"{"source":"x","windows":[{"start":7}]}"#,
            ),
            400,
            "invalid-batch",
        ),
        (
            request(
                "POST",
                "/_metrics/ingest",
                Some(INGEST),
                r#"{"source":"x","windows":[{"start":60,"series":[]}]}"#,
            ),
            400,
            "invalid-batch",
        ),
        (
            request(
                "POST",
                "/_metrics/ingest",
                Some(INGEST),
                &format!(
                    r#"{{"source":"x","windows":[{{"start":{},"series":[{{"function":"x","route":"/","method":"GET","status":200,"latency":{{"n":5,"sum":1,"min":0.1,"max":0.3,"offset":-100,"counts":[1]}}}}]}}]}}"#,
                    T0
                ),
            ),
            400,
            "invalid-batch",
        ),
        (
            request("GET", "/_metrics/snapshot?window=soon", None, ""),
            400,
            "invalid-parameter",
        ),
        (
            request("GET", "/_metrics/snapshot?window=30d", None, ""),
            400,
            "invalid-parameter",
        ),
        (
            request("GET", "/metrics?format=xml", None, ""),
            400,
            "invalid-parameter",
        ),
        (
            request("POST", "/metrics", None, ""),
            405,
            "method-not-allowed",
        ),
        (
            request("GET", "/_metrics/evaluate", None, ""),
            405,
            "method-not-allowed",
        ),
        (
            request("POST", "/_metrics/evaluate", None, ""),
            401,
            "unauthorized",
        ),
        (
            request("GET", "/_metrics/nothing", None, ""),
            404,
            "not-found",
        ),
    ];
    for (req, status, kind) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let response = serve(req);
        assert_eq!(
            response.status(),
            status,
            "{what}: {:?}",
            json_of(&response)
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let body = json_of(&response);
        assert_eq!(
            body["type"],
            format!("urn:edge-functions:problem:{kind}"),
            "{what}: {body}"
        );
        assert!(!body.to_string().contains(INGEST), "{what} leaks the token");
    }
}

#[test]
fn a_policy_without_the_admin_token_disables_evaluate_and_a_read_token_guards_reads() {
    let platform = TestPlatform::at(at(T0));
    let no_admin = instantiate::<Metrics>(&Config::new(Metrics::DEFAULT_POLICY));
    let r = block_on(platform.serve(
        &no_admin,
        request("POST", "/_metrics/evaluate", Some("x"), ""),
    ));
    assert_eq!(r.status(), 403);
    let guarded = instantiate::<Metrics>(
        &Config::new(Metrics::DEFAULT_POLICY).with_secret("METRICS_READ_TOKEN", "reader"),
    );
    let denied = block_on(platform.serve(&guarded, request("GET", "/metrics", None, "")));
    assert_eq!(denied.status(), 401);
    let allowed =
        block_on(platform.serve(&guarded, request("GET", "/metrics", Some("reader"), "")));
    assert_eq!(allowed.status(), 200);
    // Health stays open.
    let health = block_on(platform.serve(&guarded, request("GET", "/health", None, "")));
    assert_eq!(health.status(), 200);
}

#[test]
fn a_store_outage_is_a_503_and_an_invalid_policy_names_the_field() {
    let platform = TestPlatform::at(at(T0));
    let metrics = instance(None);
    platform.store.set_available(false);
    let r = block_on(platform.serve(&metrics, request("GET", "/_metrics/snapshot", None, "")));
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let bad = Metrics::DEFAULT_POLICY.replace("p95 > 250ms", "p95 > quick");
    let config = Config::new(Metrics::DEFAULT_POLICY).with_var("POLICY", bad);
    let err = Metrics::from_config(&config).unwrap_err();
    assert!(err.to_string().contains("metrics.alerts[0].expr"), "{err}");
}

#[test]
fn stored_state_that_does_not_decode_is_reported_and_never_overwritten_blindly() {
    use edge_core::platform::KeyValueStore as _;
    let platform = TestPlatform::at(at(T0));
    let metrics = instance(None);
    flush_isolate(&platform, &metrics, "counter", &[0.01; 4], 200, T0);
    // Totals written by some incompatible version: the scrape still
    // answers from the windows, and the error names the key.
    block_on(
        platform
            .store
            .set("metrics:totals", b"{\"requests\": \"many\""),
    )
    .unwrap();
    let scrape = block_on(platform.serve(&metrics, request("GET", "/metrics", None, "")));
    assert_eq!(scrape.status(), 200);
    let text = String::from_utf8(scrape.body().to_vec()).unwrap();
    assert!(
        text.contains("edge_requests_total{function=\"counter\",route=\"/api/*\",method=\"GET\",status=\"200\"} 4"),
        "{text}"
    );
    let logs = platform.logs.lines().join("\n");
    assert!(
        logs.contains("metrics state unreadable") && logs.contains("metrics:totals"),
        "{logs}"
    );
    // A corrupt index is not replaced by an empty one (that would lose
    // every window key): the ingest fails as a store problem, to be retried.
    let corrupt_index = b"[1, 2".as_slice();
    block_on(platform.store.set("metrics:index", corrupt_index)).unwrap();
    let isolate = Recorder::new();
    isolate.record("counter", "/api/*", "GET", 200, 0.01, at(T0 + 60));
    let body = serde_json::to_string(&isolate.take("counter").unwrap()).unwrap();
    let r = block_on(platform.serve(
        &metrics,
        request("POST", "/_metrics/ingest", Some(INGEST), &body),
    ));
    assert_eq!(r.status(), 503, "{:?}", json_of(&r));
    assert_eq!(
        block_on(platform.store.get("metrics:index"))
            .unwrap()
            .as_deref(),
        Some(corrupt_index)
    );
}

/// A function that only records: its isolate's flushes go to the sink.
struct Shop;

#[async_trait::async_trait(?Send)]
impl EdgeFunction for Shop {
    const NAME: &'static str = "shop";
    const VERSION: &'static str = "0";
    const DEFAULT_POLICY: &'static str = "";
    fn configure(_config: &Config) -> Result<Self, edge_core::ConfigError> {
        Ok(Shop)
    }
    async fn handle(
        &self,
        _req: Request,
        _ctx: &edge_core::function::Context<'_>,
    ) -> Result<Response, edge_core::Problem> {
        Ok(Response::new(Default::default()))
    }
}

/// Posts batches to the metrics function's ingest, as the Workers glue's
/// service binding does; the first `lose` answers are lost on the way back
/// (the batch was ingested, the isolate sees a failure).
struct LossySink<'a> {
    platform: &'a TestPlatform,
    metrics: &'a Instance<Metrics>,
    lose: std::cell::Cell<u32>,
}

#[async_trait::async_trait(?Send)]
impl edge_core::function::MetricsSink for LossySink<'_> {
    async fn send(&self, batch: &MetricsBatch) -> Result<(), String> {
        let body = serde_json::to_string(batch).map_err(|e| e.to_string())?;
        let request = request("POST", "/_metrics/ingest", Some(INGEST), &body);
        let response = self.platform.serve(self.metrics, request).await;
        if response.status() != 202 {
            return Err(format!("ingest answered {}", response.status()));
        }
        if self.lose.get() > 0 {
            self.lose.set(self.lose.get() - 1);
            return Err("the answer was lost".into());
        }
        Ok(())
    }
}

/// Issue 18: a flush retried after its answer was lost counts once; the
/// requests recorded meanwhile go in the next flush, none lost.
#[test]
fn a_flush_retried_after_a_lost_answer_counts_once() {
    let aggregator = TestPlatform::at(at(T0));
    let metrics = instance(None);
    let isolate = TestPlatform::at(at(T0));
    let shop = instantiate::<Shop>(&Config::new(""));
    let sink = LossySink {
        platform: &aggregator,
        metrics: &metrics,
        lose: std::cell::Cell::new(2),
    };
    for _ in 0..10 {
        isolate
            .metrics
            .record("shop", "/cart", "GET", 200, 0.01, at(T0));
    }
    let flush = || {
        block_on(flush_metrics(
            &shop,
            &isolate.services(),
            Some(&sink),
            1,
            true,
        ));
    };
    flush(); // ingested, answer lost: kept
    isolate
        .metrics
        .record("shop", "/cart", "GET", 200, 0.01, at(T0 + 1));
    flush(); // the kept batch again, answer lost again
    flush(); // the kept batch, acknowledged
    flush(); // the request recorded meanwhile
    flush(); // nothing left
    let snapshot = json_of(&block_on(
        aggregator.serve(&metrics, request("GET", "/_metrics/snapshot", None, "")),
    ));
    assert_eq!(
        route(&snapshot, "shop", "/cart")["requests"],
        11,
        "{snapshot}"
    );
}

/// Issue 19: an anomaly rule through the function on the cron, minute by
/// minute — steady traffic on two routes learns their baselines, then one
/// route's latency triples: it fires (webhook, `/_metrics/alerts`) after
/// `for`, the other route stays quiet, and it resolves once latency is
/// back. An evaluation run twice in a minute folds nothing twice.
#[test]
fn an_anomaly_rule_fires_on_a_latency_shift_and_not_on_steady_traffic() {
    let platform = TestPlatform::at(at(T0));
    let hook = "https://alerts.example.com/hook";
    platform
        .http
        .route(hook, http::Response::new(Vec::new().into()));
    let policy = r#"
[metrics]
retention = "1h"
summary_window = "5m"
ingest_token_secret = "METRICS_INGEST_TOKEN"
admin_token_secret = "METRICS_ADMIN_TOKEN"
webhook = "https://alerts.example.com/hook"

[[metrics.anomalies]]
name = "ShopLatency"
measure = "p95_latency"
function = "shop"
factor = 2.0
for = "3m"
half_life = "30m"
min_samples = 10
min_requests = 20
severity = "critical"
"#;
    let metrics = instance(Some(policy));
    let evaluate = |platform: &TestPlatform| {
        json_of(&block_on(platform.serve(
            &metrics,
            request("POST", "/_metrics/evaluate", Some(ADMIN), ""),
        )))
    };
    let mut fired_at = None;
    let mut resolved_at = None;
    for minute in 0..50u64 {
        // Minutes 30-37: /checkout three times slower.
        let median = if (30..38).contains(&minute) {
            0.090
        } else {
            0.030
        };
        let isolate = Recorder::new();
        let start = T0 + minute * 60;
        for v in latencies(200, minute, median) {
            isolate.record("shop", "/checkout", "POST", 200, v, at(start + 1));
        }
        for v in latencies(100, 1000 + minute, 0.020) {
            isolate.record("shop", "/steady", "GET", 200, v, at(start + 1));
        }
        let body = serde_json::to_string(&isolate.take("shop").unwrap()).unwrap();
        platform.clock.set(at(start + 50));
        let r = block_on(platform.serve(
            &metrics,
            request("POST", "/_metrics/ingest", Some(INGEST), &body),
        ));
        assert_eq!(r.status(), 202);
        // The cron, at each minute's second 50: minute - 2 has settled (it
        // ended over a minute ago) and is folded.
        let report = evaluate(&platform);
        if minute >= 2 {
            assert_eq!(report["baselines"]["minutes_folded"], 1, "{report}");
        }
        let again = evaluate(&platform);
        assert_eq!(again["baselines"]["minutes_folded"], 0, "{again}");
        assert_eq!(again["transitions"], serde_json::json!([]), "{again}");
        for t in report["transitions"].as_array().unwrap() {
            assert_eq!(t["labels"]["route"], "/checkout", "{t}");
            match t["status"].as_str().unwrap() {
                "firing" => fired_at = fired_at.or(Some(minute)),
                "resolved" => resolved_at = resolved_at.or(Some(minute)),
                other => panic!("{other}"),
            }
        }
        if fired_at == Some(minute) {
            let alerts = json_of(&block_on(
                platform.serve(&metrics, request("GET", "/_metrics/alerts", None, "")),
            ));
            assert_eq!(alerts["firing"], 1, "{alerts}");
            let a = &alerts["active"][0];
            assert_eq!(a["labels"]["kind"], "anomaly");
            assert_eq!(a["labels"]["measure"], "p95_latency");
            assert_eq!(a["annotations"]["expr"], "p95_latency > 2x baseline");
            let value: f64 = a["annotations"]["value"].as_str().unwrap().parse().unwrap();
            let baseline: f64 = a["annotations"]["baseline"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            eprintln!(
                "anomaly fired at minute {minute}: p95 {value:.4} s vs baseline {baseline:.4} s"
            );
            assert!(value > 2.0 * baseline, "{a}");
        }
    }
    // Departed minutes 30, 31, 32 (for = 3m): the third is folded by the
    // cron of minute 34; minute 38 is calm again, folded at minute 40.
    assert_eq!(fired_at, Some(34));
    assert_eq!(resolved_at, Some(40));
    assert_eq!(platform.http.calls(hook), 2);
    let sent: Value =
        serde_json::from_slice(platform.http.last_request(hook).unwrap().body()).unwrap();
    assert_eq!(sent["status"], "resolved");
    assert_eq!(sent["alerts"][0]["labels"]["alertname"], "ShopLatency");
    assert_eq!(sent["alerts"][0]["labels"]["kind"], "anomaly");
}
