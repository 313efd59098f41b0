//! Metrics end to end on the real runtimes.
//!
//! - Workers: `metrics`, `counter`, `rate-limit` and `anonymize` each under its own
//!   `wrangler dev`, on one dev registry so the `METRICS` service bindings
//!   reach the metrics worker. Traffic through both functions, their cron
//!   handlers (`/__scheduled`) flush it, the metrics worker's evaluates the
//!   alert rules: the aggregator shows exact counts per route with
//!   p50/p95/p99, the Prometheus counters agree, the alerts the traffic
//!   crossed fire, and headless Chromium draws the chart page, whose
//!   screenshot is saved as `target/test-artefacts/metrics-chart.png`.
//!   For the page, the traffic spans more than 30 routes: 26 more on the
//!   rate limiter, stray 404 paths on the counter (`/.env`, …), the health
//!   checks, and a `shop` function's batch ingested with 5xx answers and
//!   spread latencies, whose error-rate alert fires.
//!   The rate limiter runs with `METRICS_FLUSH_EVERY=5`: its records reach
//!   the aggregator before any cron, on the count alone. An `anonymize`
//!   worker flushing after every request answers a body twice the buffered
//!   limit on its streaming path, which is recorded too.
//! - Spin: the counter and metrics components on one key-value store (the
//!   wasmtime host); every request's record is merged as it ends, and
//!   `POST /_metrics/evaluate` fires the alert. A streamed anonymize
//!   request is merged as well.
//!
//! Health checks (`WranglerDev` polls `/health` until the worker answers)
//! count under the route `/health`, so the assertions pick routes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasm_tests::conformance::{Actual, CaseRequest};
use wasm_tests::host::{App, AppConfig, GuestLogs, KvStore};
use wasm_tests::workerd::{DevRegistry, WranglerDev, agent, send};

const INGEST_TOKEN: &str = "metrics-ingest-token";
const METRICS_ADMIN: &str = "metrics-admin-token";
const COUNTER_ADMIN: &str = "counter-admin-token";
const ANONYMIZE_SALT: &str = "metrics-test-salt-0123456789";
/// How long records may take to show at the aggregator once flushed.
const ARRIVAL: Duration = Duration::from_secs(30);

/// The aggregator's policy: two rules the tests' traffic crosses at once
/// (`for = "0s"`) and one it never does.
const POLICY: &str = r#"
[metrics]
retention = "1h"
summary_window = "5m"
ingest_token_secret = "METRICS_INGEST_TOKEN"
admin_token_secret = "METRICS_ADMIN_TOKEN"

[[metrics.alerts]]
name = "CounterBusy"
expr = "requests > 20"
function = "counter"
route = "/counters/{key}"
window = "5m"
for = "0s"
severity = "info"

[[metrics.alerts]]
name = "LoginThrottled"
expr = "rate_limited_rate > 10%"
function = "rate-limit"
route = "/auth/*"
window = "5m"
for = "0s"
min_requests = 5
severity = "warning"

[[metrics.alerts]]
name = "CheckoutErrors"
expr = "error_rate > 5%"
function = "shop"
route = "/checkout/*"
window = "5m"
for = "0s"
severity = "critical"

[[metrics.alerts]]
name = "NeverFires"
expr = "requests > 1000000"
window = "5m"
for = "0s"
"#;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn metrics_secrets() -> BTreeMap<String, String> {
    map(&[
        ("METRICS_INGEST_TOKEN", INGEST_TOKEN),
        ("METRICS_ADMIN_TOKEN", METRICS_ADMIN),
    ])
}

fn counter_secrets() -> BTreeMap<String, String> {
    map(&[
        ("METRICS_INGEST_TOKEN", INGEST_TOKEN),
        ("COUNTER_ADMIN_TOKEN", COUNTER_ADMIN),
    ])
}

fn rate_limit_secrets() -> BTreeMap<String, String> {
    map(&[
        ("METRICS_INGEST_TOKEN", INGEST_TOKEN),
        ("RATE_LIMIT_HASH_KEY", "metrics-test-hash-key"),
        ("RATE_LIMIT_ADMIN_TOKEN", "rate-limit-admin-token"),
    ])
}

/// One request to a worker; 4xx/5xx come back as answers.
fn call(base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Actual {
    let case: CaseRequest = serde_json::from_value(serde_json::json!({
        "method": method,
        "path": path,
        "headers": map(headers),
    }))
    .unwrap();
    send(&agent(Duration::from_secs(60)), base, &case)
        .unwrap_or_else(|e| panic!("{method} {base}{path}: {e:#}"))
}

fn get_json(base: &str, path: &str) -> Value {
    let answer = call(base, "GET", path, &[]);
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
    serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("GET {path}: {e}: {}", answer.body))
}

/// Polls `check` until it answers, failing with its last complaint at the deadline.
fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// A snapshot's entry for (function, route).
fn route_stats<'a>(snapshot: &'a Value, function: &str, route: &str) -> Option<&'a Value> {
    snapshot["routes"]
        .as_array()?
        .iter()
        .find(|r| r["function"] == function && r["route"] == route)
}

fn requests(snapshot: &Value, function: &str, route: &str) -> u64 {
    route_stats(snapshot, function, route)
        .and_then(|r| r["requests"].as_u64())
        .unwrap_or(0)
}

/// Requests per status, as a snapshot shows them.
fn statuses(tally: &BTreeMap<u16, u64>) -> Value {
    tally
        .iter()
        .map(|(status, n)| (status.to_string(), serde_json::json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The snapshot entry of (function, route) holds exactly `tally` and
/// reports its latency quantiles.
fn check_route(snapshot: &Value, function: &str, route: &str, tally: &BTreeMap<u16, u64>) {
    let stats = route_stats(snapshot, function, route)
        .unwrap_or_else(|| panic!("{function} {route} missing from {snapshot:#}"));
    let total: u64 = tally.values().sum();
    assert_eq!(stats["requests"], total, "{function} {route}: {stats:#}");
    assert_eq!(stats["statuses"], statuses(tally), "{function} {route}");
    assert_eq!(
        stats["rate_limited"],
        tally.get(&429).copied().unwrap_or(0),
        "{function} {route}"
    );
    let latency = &stats["latency_ms"];
    let q: Vec<f64> = ["p50", "p95", "p99", "max"]
        .iter()
        .map(|k| {
            latency[*k]
                .as_f64()
                .unwrap_or_else(|| panic!("{function} {route}: no {k} in {latency}"))
        })
        .collect();
    assert!(
        0.0 <= q[0] && q[0] <= q[1] && q[1] <= q[2] && q[2] <= q[3],
        "{function} {route}: quantiles out of order: {latency}"
    );
}

/// The samples of a Prometheus text exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The sample name of `edge_requests_total` for one series.
fn requests_total(function: &str, route: &str, method: &str, status: u16) -> String {
    format!(
        r#"edge_requests_total{{function="{function}",route="{route}",method="{method}",status="{status}"}}"#
    )
}

fn sample(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from {samples:#?}"))
}

/// The active alerts as `(name, function, route, status)`.
fn active_alerts(alerts: &Value) -> Vec<(String, String, String, String)> {
    let mut active: Vec<_> = alerts["active"]
        .as_array()
        .unwrap_or_else(|| panic!("no active list in {alerts}"))
        .iter()
        .map(|a| {
            let label = |k: &str| a["labels"][k].as_str().unwrap_or_default().to_owned();
            (
                label("alertname"),
                label("function"),
                label("route"),
                a["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    active.sort();
    active
}

fn alert(name: &str, function: &str, route: &str) -> (String, String, String, String) {
    (name.into(), function.into(), route.into(), "firing".into())
}

/// Sends `count` requests and tallies the statuses, which must be `expect(i)`.
fn traffic(
    base: &str,
    count: usize,
    method: &str,
    path: impl Fn(usize) -> String,
    expect: impl Fn(usize) -> u16,
    tally: &mut BTreeMap<u16, u64>,
) {
    for i in 0..count {
        let path = path(i);
        let answer = call(base, method, &path, &[]);
        assert_eq!(answer.status, expect(i), "{method} {path}: {}", answer.body);
        *tally.entry(answer.status).or_default() += 1;
    }
}

fn start(function: &str, vars: &[(&str, &str)], registry: &DevRegistry) -> WranglerDev {
    let secrets = match function {
        "metrics" => metrics_secrets(),
        "counter" => counter_secrets(),
        "anonymize" => map(&[
            ("METRICS_INGEST_TOKEN", INGEST_TOKEN),
            ("GDPR_ANONYMIZATION_SALT", ANONYMIZE_SALT),
        ]),
        _ => rate_limit_secrets(),
    };
    WranglerDev::start_in(function, &map(vars), &secrets, registry.path())
        .unwrap_or_else(|e| panic!("wrangler dev --env {function}: {e:#}"))
}

/// The rate limiter's routes beyond `/auth/*` and `/api/*`, for the chart
/// page: each is `/NAME/*` (no scope of its own, so each answers 200).
const MORE_ROUTES: [&str; 26] = [
    "orders",
    "users",
    "search",
    "catalog",
    "cart",
    "payments",
    "invoices",
    "shipping",
    "reviews",
    "inventory",
    "pricing",
    "accounts",
    "sessions",
    "profile",
    "settings",
    "notifications",
    "messages",
    "reports",
    "exports",
    "uploads",
    "media",
    "webhooks",
    "billing",
    "coupons",
    "partners",
    "status",
];

/// Paths nobody serves, as scanners ask for them: each its own route, all 404.
const STRAY_PATHS: [&str; 5] = [
    "/.env",
    "/wp-login.php",
    "/xmlrpc.php",
    "/favicon.ico",
    "/phpmyadmin/index.php",
];

/// A `shop` function's five minutes up to `now` (since the Unix epoch),
/// as its isolate would flush them: each minute 60 requests to
/// `/checkout/*`, answering 1 in 12 with a 503 (the `CheckoutErrors` alert)
/// with a long latency tail, 30 to `/search` (slow) and 20 to `/cart/*`
/// (fast); [`SHOP_PER_MINUTE`].
fn shop_batch(now: Duration) -> edge_core::metrics::MetricsBatch {
    let recorder = edge_core::metrics::Recorder::new();
    for minute in 0..5u32 {
        let at = edge_core::Timestamp(now - Duration::from_secs(60 * u64::from(4 - minute)));
        for i in 0..60u32 {
            // 20 ms at the median, a tail to ~300 ms, shifting each minute.
            let tail = (f64::from(i) / 60.0).powi(4);
            let seconds = 0.015 + 0.004 * f64::from(minute) + 0.3 * tail;
            let status = if i % 12 == 5 { 503 } else { 200 };
            recorder.record("shop", "/checkout/*", "POST", status, seconds, at);
            if i % 2 == 0 {
                recorder.record("shop", "/search", "GET", 200, 2.0 * seconds, at);
            }
            if i % 3 == 0 {
                recorder.record("shop", "/cart/*", "GET", 200, seconds / 5.0, at);
            }
        }
    }
    recorder.take("shop-isolate").unwrap()
}

/// The PNG signature and a nonzero IHDR size.
fn assert_png(path: &Path) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("the screenshot {}: {e}", path.display()));
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "{} is not a PNG ({} bytes)",
        path.display(),
        bytes.len()
    );
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width > 0 && height > 0, "{width}x{height}");
}

#[test]
fn workers_merge_functions_at_the_aggregator_fire_alerts_and_draw_the_chart() {
    let began = Instant::now();
    // Declared first, dropped last: after the workers listed in it.
    let registry = DevRegistry::new().unwrap();
    let (metrics, counter, limiter, anonymizer) = std::thread::scope(|s| {
        let metrics = s.spawn(|| start("metrics", &[("POLICY", POLICY)], &registry));
        let counter = s.spawn(|| start("counter", &[], &registry));
        // This one flushes every 5 records, the counter every 1000 (the
        // default), the anonymizer after every request.
        let limiter = s.spawn(|| start("rate-limit", &[("METRICS_FLUSH_EVERY", "5")], &registry));
        let anonymizer = s.spawn(|| start("anonymize", &[("METRICS_FLUSH_EVERY", "1")], &registry));
        (
            metrics.join().unwrap(),
            counter.join().unwrap(),
            limiter.join().unwrap(),
            anonymizer.join().unwrap(),
        )
    });
    eprintln!("metrics e2e: four workers up in {:?}", began.elapsed());
    // The registry lists these four and no other test's workers.
    let mut listed: Vec<String> = std::fs::read_dir(registry.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "edge-anonymize",
            "edge-counter",
            "edge-metrics",
            "edge-rate-limit"
        ]
    );
    let (m, c, r) = (metrics.url(), counter.url(), limiter.url());

    // Traffic: the counter's route `/counters/{key}`, the rate limiter's
    // `/auth/*` (5 logins per 15 min per IP, then 429) and `/api/*`.
    let started = Instant::now();
    let mut counters = BTreeMap::new();
    traffic(
        &c,
        30,
        "POST",
        |i| format!("/counters/k{}", i % 3),
        |_| 200,
        &mut counters,
    );
    traffic(
        &c,
        6,
        "GET",
        |i| format!("/counters/k{}", i % 3),
        |_| 200,
        &mut counters,
    );
    traffic(
        &c,
        4,
        "POST",
        |_| "/counters/bad?by=0".into(),
        |_| 400,
        &mut counters,
    );
    let mut logins = BTreeMap::new();
    traffic(
        &r,
        8,
        "POST",
        |_| "/auth/login".into(),
        |i| if i < 5 { 200 } else { 429 },
        &mut logins,
    );
    let mut api = BTreeMap::new();
    traffic(
        &r,
        24,
        "GET",
        |i| format!("/api/items/{i}"),
        |_| 200,
        &mut api,
    );
    // More routes and noise for the chart page.
    let mut more = BTreeMap::new();
    for (i, name) in MORE_ROUTES.iter().enumerate() {
        traffic(
            &r,
            1 + i % 4,
            "GET",
            |j| format!("/{name}/{j}"),
            |_| 200,
            &mut more,
        );
    }
    let mut stray = BTreeMap::new();
    for path in STRAY_PATHS {
        traffic(&c, 2, "GET", |_| path.to_owned(), |_| 404, &mut stray);
    }
    let shop_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let batch = serde_json::to_string(&shop_batch(shop_at)).unwrap();
    let bearer = format!("Bearer {INGEST_TOKEN}");
    let case: CaseRequest = serde_json::from_value(serde_json::json!({
        "method": "POST",
        "path": "/_metrics/ingest",
        "headers": map(&[("authorization", &bearer), ("content-type", "application/json")]),
        "body": batch,
    }))
    .unwrap();
    let answer = send(&agent(Duration::from_secs(60)), &m, &case).unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    eprintln!(
        "metrics e2e: {} requests in {:?}",
        72 + more.values().sum::<u64>() + 10,
        started.elapsed()
    );

    // A body twice the buffered limit takes the anonymizer's streaming
    // path, which records outside the buffered one.
    let line = "{\"email\":\"ann@example.com\",\"note\":\"call +49 30 1234567\"}\n";
    let streamed: CaseRequest = serde_json::from_value(serde_json::json!({
        "method": "POST",
        "path": "/",
        "headers": map(&[("content-type", "application/x-ndjson")]),
        "body_repeat": {
            "text": line,
            "times": 2 * edge_core::model::MAX_BODY_BYTES / line.len() + 1,
        },
    }))
    .unwrap();
    let answer = send(
        &agent(Duration::from_secs(60)),
        &anonymizer.url(),
        &streamed,
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(!answer.body.contains("ann@example.com"));

    // The rate limiter's records reach the aggregator without any cron:
    // every 5th one flushes (health checks count too), so at most 4 wait.
    let flushed = wait_for("count-triggered flushes at the aggregator", ARRIVAL, || {
        let snapshot = get_json(&m, "/_metrics/snapshot");
        let n = requests(&snapshot, "rate-limit", "/auth/*")
            + requests(&snapshot, "rate-limit", "/api/*");
        assert!(n <= 32, "counted twice: {snapshot:#}");
        if n >= 28 {
            Ok(n)
        } else {
            Err(format!("{n} of at least 28\n{}", limiter.log_tail()))
        }
    });
    eprintln!("metrics e2e: {flushed} of the rate limiter's 32 arrived without the cron");

    // The cron handlers flush each isolate's records through METRICS —
    // and the anonymizer's batch again if its count-triggered flush failed
    // (kept as it was; the aggregator merges a batch once).
    counter.scheduled().unwrap();
    limiter.scheduled().unwrap();
    anonymizer.scheduled().unwrap();
    let snapshot = wait_for("every request merged at the aggregator", ARRIVAL, || {
        let snapshot = get_json(&m, "/_metrics/snapshot");
        let seen = [
            requests(&snapshot, "counter", "/counters/{key}"),
            requests(&snapshot, "rate-limit", "/auth/*"),
            requests(&snapshot, "rate-limit", "/api/*"),
            requests(&snapshot, "anonymize", "/"),
        ];
        assert!(
            seen[0] <= 40 && seen[1] <= 8 && seen[2] <= 24 && seen[3] <= 1,
            "counted twice: {snapshot:#}\n{}\n{}",
            counter.log_tail(),
            limiter.log_tail()
        );
        if seen == [40, 8, 24, 1] {
            Ok(snapshot)
        } else {
            Err(format!(
                "{seen:?} of [40, 8, 24, 1]\ncounter:\n{}\nrate-limit:\n{}\nanonymize:\n{}\nmetrics:\n{}",
                counter.log_tail(),
                limiter.log_tail(),
                anonymizer.log_tail(),
                metrics.log_tail()
            ))
        }
    });
    check_route(&snapshot, "counter", "/counters/{key}", &counters);
    check_route(&snapshot, "rate-limit", "/auth/*", &logins);
    check_route(&snapshot, "rate-limit", "/api/*", &api);
    check_route(&snapshot, "anonymize", "/", &BTreeMap::from([(200, 1)]));
    assert_eq!(counters, BTreeMap::from([(200, 36), (400, 4)]));
    assert_eq!(logins, BTreeMap::from([(200, 5), (429, 3)]));
    // The wide traffic arrived with the same cron flushes.
    let snapshot = wait_for("the chart's routes at the aggregator", ARRIVAL, || {
        let snapshot = get_json(&m, "/_metrics/snapshot");
        let missing: Vec<&str> = MORE_ROUTES
            .iter()
            .copied()
            .filter(|name| requests(&snapshot, "rate-limit", &format!("/{name}/*")) == 0)
            .chain(
                STRAY_PATHS
                    .iter()
                    .copied()
                    .filter(|p| requests(&snapshot, "counter", &default_route(p)) != 2),
            )
            .collect();
        if missing.is_empty() {
            Ok(snapshot)
        } else {
            Err(format!("missing {missing:?}"))
        }
    });
    check_route(
        &snapshot,
        "shop",
        "/checkout/*",
        &BTreeMap::from([(200, 275), (503, 25)]),
    );

    // The aggregator's cron evaluates the rules.
    let alerts = get_json(&m, "/_metrics/alerts");
    assert!(
        active_alerts(&alerts).is_empty(),
        "before any evaluation: {alerts}"
    );
    metrics.scheduled().unwrap();
    let alerts = get_json(&m, "/_metrics/alerts");
    assert_eq!(
        active_alerts(&alerts),
        vec![
            alert("CheckoutErrors", "shop", "/checkout/*"),
            alert("CounterBusy", "counter", "/counters/{key}"),
            alert("LoginThrottled", "rate-limit", "/auth/*"),
        ],
        "{alerts:#}\n{}",
        metrics.log_tail()
    );
    assert!(alerts["evaluated_at"].is_string(), "{alerts}");
    assert_eq!(get_json(&m, "/_metrics/snapshot")["alerts_firing"], 3);

    // The Prometheus exposition agrees.
    let exposition = call(&m, "GET", "/metrics", &[]);
    assert_eq!(exposition.status, 200, "{}", exposition.body);
    assert!(
        exposition.headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{:?}",
        exposition.headers
    );
    let s = samples(&exposition.body);
    let total = |f: &str, route: &str, method: &str, status: u16| {
        sample(&s, &requests_total(f, route, method, status))
    };
    assert_eq!(total("counter", "/counters/{key}", "POST", 200), 30.0);
    assert_eq!(total("counter", "/counters/{key}", "GET", 200), 6.0);
    assert_eq!(total("counter", "/counters/{key}", "POST", 400), 4.0);
    assert_eq!(total("rate-limit", "/auth/*", "POST", 200), 5.0);
    assert_eq!(total("rate-limit", "/auth/*", "POST", 429), 3.0);
    assert_eq!(total("rate-limit", "/api/*", "GET", 200), 24.0);
    assert_eq!(
        sample(
            &s,
            r#"edge_requests_rate_limited_total{function="rate-limit",route="/auth/*"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &s,
            r#"edge_request_duration_seconds_count{function="counter",route="/counters/{key}"}"#
        ),
        40.0
    );
    for q in ["0.5", "0.95", "0.99"] {
        for (f, route) in [
            ("counter", "/counters/{key}"),
            ("rate-limit", "/auth/*"),
            ("rate-limit", "/api/*"),
        ] {
            let v = sample(
                &s,
                &format!(
                    r#"edge_request_duration_seconds{{function="{f}",route="{route}",quantile="{q}"}}"#
                ),
            );
            assert!(v.is_finite() && v >= 0.0, "{f} {route} quantile {q}: {v}");
        }
    }
    assert_eq!(sample(&s, "edge_alerts_firing"), 3.0);

    // The chart page in headless Chromium, and its screenshot.
    let snapshot = get_json(&m, "/_metrics/snapshot?window=1h");
    let png = wasm_tests::workspace_root().join("target/test-artefacts/metrics-chart.png");
    let _ = std::fs::remove_file(&png);
    let shot = Instant::now();
    let picked = "rate-limit /api/*";
    let page = wasm_tests::chromium::chart_screenshot(&format!("{m}/_metrics/chart"), &png, picked)
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "metrics e2e: chart screenshot in {:?}: {}",
        shot.elapsed(),
        png.display()
    );
    check_chart_page(&page, &snapshot, picked);
    check_rate_column(&page, shop_at);
    assert_png(&png);
    eprintln!("metrics e2e: screenshot saved to {}", png.display());
    eprintln!("metrics e2e: done in {:?}", began.elapsed());
}

/// Requests a minute of each route of [`shop_batch`].
const SHOP_PER_MINUTE: [(&str, u64); 3] = [
    ("shop /checkout/*", 60),
    ("shop /search", 30),
    ("shop /cart/*", 20),
];

/// The overview's rate column is the current rate: requests per second
/// over the last five complete minutes before the page's now (not the
/// window's average). The shop's batch, ingested at `shop_at` with a known
/// count in each of five minutes, must show exactly the requests of those
/// minutes that fall in the column's over its 300 s; every other route at
/// most its count in the window over 300 s.
fn check_rate_column(page: &wasm_tests::chromium::ChartPage, shop_at: Duration) {
    let column = &page.rate_column;
    assert_eq!(column.heading, "req/s (5 min)", "{column:?}");
    assert!(
        column.title.contains("last 5 complete minutes"),
        "{column:?}"
    );
    assert_eq!(column.to - column.from, 300.0, "{column:?}");
    assert_eq!(column.to % 60.0, 0.0, "{column:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        column.to <= now && column.to > now - 180.0,
        "the column ends at the last complete minute: {column:?}, now {now}"
    );
    // The batch's five minute windows, and those the column covers.
    let minutes = (0..5u64)
        .map(|k| (shop_at.as_secs() - 60 * (4 - k)) / 60 * 60)
        .filter(|start| (column.from..column.to).contains(&(*start as f64)))
        .count() as u64;
    let row = |route: &str| {
        page.rows
            .iter()
            .find(|r| r.route == route)
            .unwrap_or_else(|| panic!("no row {route}: {page:#?}"))
    };
    for (route, per_minute) in SHOP_PER_MINUTE {
        let expected = (per_minute * minutes) as f64 / 300.0;
        let rate = row(route).rate.unwrap_or(f64::NAN);
        assert!(
            (rate - expected).abs() < 1e-9,
            "{route}: {rate} req/s, expected {expected} ({minutes} of its minutes in {column:?})"
        );
    }
    eprintln!(
        "metrics e2e: chart rate column {column:?}: shop /checkout/* {} ({minutes} of its 5 minutes in it)",
        row("shop /checkout/*").cells["rate"]
    );
    // The same page's count over the window (exact below 10,000).
    for r in &page.rows {
        let Ok(count) = r.cells["requests"].parse::<f64>() else {
            continue;
        };
        let rate = r.rate.unwrap_or(f64::NAN);
        assert!(
            rate >= 0.0 && rate * 300.0 <= count + 1e-6,
            "{}: {rate} req/s over 300 s, {count} requests in the window",
            r.route
        );
    }
}

/// The chart page as drawn: the alerts on top, the overview worst first
/// without the noise, sortable, a panel for a picked route, and three
/// quantile lines that can be told apart.
fn check_chart_page(page: &wasm_tests::chromium::ChartPage, snapshot: &Value, picked: &str) {
    assert_eq!(page.ready, "true", "{page:#?}");
    assert!(page.errors.is_empty(), "{page:#?}");
    assert!(
        page.foreign_requests.is_empty(),
        "{:?}",
        page.foreign_requests
    );
    // Firing alerts in the banner.
    let mut firing: Vec<&str> = page.alerts.iter().map(|a| a.name.as_str()).collect();
    firing.sort_unstable();
    assert_eq!(
        firing,
        ["CheckoutErrors", "CounterBusy", "LoginThrottled"],
        "{page:#?}"
    );
    assert_eq!(page.banner, ["banner firing"], "{page:#?}");
    let checkout = page
        .alerts
        .iter()
        .find(|a| a.name == "CheckoutErrors")
        .unwrap();
    assert!(
        checkout.text.contains("shop /checkout/*") && checkout.text.contains("error_rate > 5%"),
        "{checkout:?}"
    );

    // The overview: every route of the snapshot but the noise, worst first.
    let all = snapshot["routes"].as_array().unwrap();
    let noise = |r: &Value| {
        r["route"] == "/health"
            || r["statuses"]
                .as_object()
                .is_some_and(|s| s.keys().all(|k| k == "404"))
    };
    let shown: Vec<String> = all
        .iter()
        .filter(|r| !noise(r))
        .map(|r| {
            format!(
                "{} {}",
                r["function"].as_str().unwrap(),
                r["route"].as_str().unwrap()
            )
        })
        .collect();
    let hidden = all.iter().filter(|r| noise(r)).count();
    assert!(shown.len() >= 30, "{} routes: {shown:?}", shown.len());
    assert!(hidden >= STRAY_PATHS.len() + 3, "{hidden} hidden");
    let rows: Vec<&str> = page.rows.iter().map(|r| r.route.as_str()).collect();
    let mut sorted_rows = rows.clone();
    sorted_rows.sort_unstable();
    let mut expected = shown.clone();
    expected.sort_unstable();
    assert_eq!(sorted_rows, expected, "the table's routes");
    for row in &rows {
        assert!(
            !row.ends_with(" /health") && !STRAY_PATHS.iter().any(|p| row.ends_with(p)),
            "noise in the table: {row}"
        );
    }
    assert!(
        page.hidden
            .contains(&format!("show {hidden} health-check and 404-only routes")),
        "{:?}",
        page.hidden
    );
    // Worst first: the routes with firing alerts (the one with 5xx on
    // top), then the rest by error rate.
    assert_eq!(rows[0], "shop /checkout/*", "{rows:?}");
    let mut alerting: Vec<&str> = rows[..3].to_vec();
    alerting.sort_unstable();
    assert_eq!(
        alerting,
        [
            "counter /counters/{key}",
            "rate-limit /auth/*",
            "shop /checkout/*"
        ]
    );
    assert!(page.rows[..3].iter().all(|r| r.alerting));
    assert!(page.rows[3..].iter().all(|r| !r.alerting));
    assert!(
        page.rows[3..]
            .windows(2)
            .all(|w| w[0].error_rate >= w[1].error_rate),
        "{rows:?}"
    );
    assert!(page.rows[0].error_rate > 0.05, "{:?}", page.rows[0]);
    assert!(
        page.rows[0].cells["error_rate"].ends_with('%'),
        "{:?}",
        page.rows[0]
    );
    // Sortable: by requests, most first; then back to worst first.
    let count = |route: &str| {
        let (function, route) = route.split_once(' ').unwrap();
        requests(snapshot, function, route)
    };
    let by_requests: Vec<u64> = page.by_requests.iter().map(|r| count(r)).collect();
    assert!(
        by_requests.windows(2).all(|w| w[0] >= w[1]),
        "{:?}",
        page.by_requests
    );
    assert_eq!(page.resorted, rows);

    // Panels: the alerting routes at first, then the one picked.
    let mut before = page.panels_before.clone();
    before.sort_unstable();
    assert_eq!(before, alerting, "{page:#?}");
    let panels: Vec<&str> = page.panels.iter().map(|p| p.route.as_str()).collect();
    assert_eq!(panels.len(), 4, "{panels:?}");
    assert!(panels.contains(&picked), "{panels:?}");
    assert!(page.address.contains("%2Fapi%2F*"), "{}", page.address);
    for (route, total) in [
        ("counter /counters/{key}", 40),
        ("rate-limit /auth/*", 8),
        ("rate-limit /api/*", 24),
        ("shop /checkout/*", 300),
    ] {
        let panel = page
            .panels
            .iter()
            .find(|p| p.route == route)
            .unwrap_or_else(|| panic!("no panel for {route}: {page:#?}"));
        assert!(
            panel.heading.contains(&format!("({total} requests)")),
            "{panel:#?}"
        );
        assert_eq!(
            panel.charts,
            ["Latency", "Requests / s", "Errors / min"],
            "{route}"
        );
        assert!(
            panel.bars["req"] >= 1,
            "{route}: no request bars: {panel:#?}"
        );
        for q in ["p50", "p95", "p99"] {
            let line = &panel.quantiles[q];
            assert!(
                line.lines == 1 && line.points >= 1,
                "{route}: {q}: {line:?}"
            );
        }
    }
    // The shop's checkout: five minutes, 5xx bars, and three quantile
    // series apart in value, colour and dash.
    let shop = page
        .panels
        .iter()
        .find(|p| p.route == "shop /checkout/*")
        .unwrap();
    assert!(shop.bars["err"] >= 5, "{shop:#?}");
    let lines: Vec<_> = ["p50", "p95", "p99"]
        .iter()
        .map(|q| &shop.quantiles[*q])
        .collect();
    for line in &lines {
        assert!(line.points >= 5, "{line:?}");
    }
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        assert_ne!(lines[a].coords, lines[b].coords, "quantiles {a} and {b}");
        assert_ne!(lines[a].stroke, lines[b].stroke, "quantiles {a} and {b}");
        assert_ne!(lines[a].dash, lines[b].dash, "quantiles {a} and {b}");
    }
}

/// The route the platform glue records for a path no route template matches.
fn default_route(path: &str) -> String {
    edge_core::function::default_route(path)
}

/// The metrics component's Spin build on `/metrics`, on `kv`.
fn metrics_app(kv: KvStore) -> App {
    App::load(
        &wasm_tests::spin_component("metrics"),
        AppConfig {
            variables: [
                ("policy", POLICY),
                ("metrics_ingest_token", INGEST_TOKEN),
                ("metrics_admin_token", METRICS_ADMIN),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            kv,
            route: "/metrics".into(),
            guest_stderr: Some(GuestLogs::new(1 << 20)),
        },
    )
    .expect("the Spin build of metrics (run `cargo xtask build`)")
}

async fn spin_call(app: &App, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let client: SocketAddr = ([127, 0, 0, 1], 40010).into();
    let response = app
        .handle(builder.body(bytes::Bytes::new()).unwrap(), client)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"));
    (
        response.status().as_u16(),
        String::from_utf8_lossy(response.body()).into_owned(),
    )
}

#[test]
fn spin_components_merge_every_request_into_the_shared_store_and_fire_alerts() {
    let began = Instant::now();
    let kv = KvStore::new();
    let counter = crate::counter_app(COUNTER_ADMIN, kv.clone(), GuestLogs::new(1 << 20));
    let metrics = metrics_app(kv);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut tally: BTreeMap<u16, u64> = BTreeMap::new();
        // Adds, refused amounts, deletes without the admin token.
        let requests: Vec<(&str, String, u16)> = (0..25)
            .map(|i| ("POST", format!("/counter/counters/k{}", i % 2), 200))
            .chain((0..3).map(|_| ("POST", "/counter/counters/k0?by=0".to_owned(), 400)))
            .chain((0..2).map(|_| ("DELETE", "/counter/counters/k1".to_owned(), 401)))
            .collect();
        for (method, path, expect) in &requests {
            let (status, body) = spin_call(&counter, method, path, &[]).await;
            assert_eq!(status, *expect, "{method} {path}: {body}");
            *tally.entry(status).or_default() += 1;
        }

        // No flush: each instance merged its record as it ended.
        let (status, body) = spin_call(&metrics, "GET", "/metrics/_metrics/snapshot", &[]).await;
        assert_eq!(status, 200, "{body}");
        let snapshot: Value = serde_json::from_str(&body).unwrap();
        check_route(&snapshot, "counter", "/counters/{key}", &tally);
        assert_eq!(tally, BTreeMap::from([(200, 25), (400, 3), (401, 2)]));

        // Spin has no cron here: the admin runs the evaluation.
        let (status, body) = spin_call(&metrics, "POST", "/metrics/_metrics/evaluate", &[]).await;
        assert_eq!(status, 401, "{body}");
        let bearer = format!("Bearer {METRICS_ADMIN}");
        let auth = [("authorization", bearer.as_str())];
        let (status, body) = spin_call(&metrics, "POST", "/metrics/_metrics/evaluate", &auth).await;
        assert_eq!(status, 200, "{body}");
        let report: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(report["firing"], 1, "{report:#}");
        let transitions: Vec<_> = report["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["labels"]["alertname"].clone(), a["status"].clone()))
            .collect();
        assert_eq!(
            transitions,
            vec![(Value::from("CounterBusy"), Value::from("firing"))],
            "{report:#}"
        );
        let (status, body) = spin_call(&metrics, "GET", "/metrics/_metrics/alerts", &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            active_alerts(&serde_json::from_str(&body).unwrap()),
            vec![alert("CounterBusy", "counter", "/counters/{key}")]
        );

        let (status, body) = spin_call(&metrics, "GET", "/metrics/metrics", &[]).await;
        assert_eq!(status, 200, "{body}");
        let s = samples(&body);
        for (method, status, n) in [
            ("POST", 200, 25.0),
            ("POST", 400, 3.0),
            ("DELETE", 401, 2.0),
        ] {
            let name = requests_total("counter", "/counters/{key}", method, status);
            assert_eq!(sample(&s, &name), n, "{name}");
        }
        assert_eq!(sample(&s, "edge_alerts_firing"), 1.0);
    });
    eprintln!("metrics spin: done in {:?}", began.elapsed());
}

#[test]
fn spin_records_a_request_whose_body_was_streamed() {
    let kv = KvStore::new();
    let anonymize = App::load(
        &wasm_tests::spin_component("anonymize"),
        AppConfig {
            variables: [(
                "gdpr_anonymization_salt".to_owned(),
                "metrics-test-salt-0123456789".to_owned(),
            )]
            .into(),
            kv: kv.clone(),
            route: "/anonymize".into(),
            guest_stderr: Some(GuestLogs::new(1 << 20)),
        },
    )
    .expect("the Spin build of anonymize (run `cargo xtask build`)");
    let metrics = metrics_app(kv);
    // Twice the buffered limit, so the body takes the streaming path.
    let line = "{\"email\":\"ann@example.com\",\"note\":\"call +49 30 1234567\"}\n";
    let body = line.repeat(2 * edge_core::model::MAX_BODY_BYTES / line.len() + 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let req = http::Request::builder()
            .method("POST")
            .uri("http://127.0.0.1/anonymize/")
            .header("content-type", "application/x-ndjson")
            .header("content-length", body.len())
            .body(bytes::Bytes::from(body))
            .unwrap();
        let response = anonymize
            .handle(req, ([127, 0, 0, 1], 40011).into())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(!String::from_utf8_lossy(response.body()).contains("ann@example.com"));
        let (status, body) = spin_call(&metrics, "GET", "/metrics/_metrics/snapshot", &[]).await;
        assert_eq!(status, 200, "{body}");
        let snapshot: Value = serde_json::from_str(&body).unwrap();
        check_route(&snapshot, "anonymize", "/", &BTreeMap::from([(200, 1)]));
    });
}
