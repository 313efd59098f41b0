//! Anomaly rules end to end (issue 19): the metrics function learns a
//! baseline per route from minutes of traffic and fires on a departure,
//! on the real runtimes, with the real clock.
//!
//! A `shop` function's last 46 minutes are ingested as its isolates would
//! flush them (batches of five minute-windows, 200 requests a
//! minute on `/checkout`, 100 on `/steady`, lognormal latencies): steady
//! until the last eight minutes, when `/checkout`'s latency triples. One
//! evaluation then folds every settled minute into the baselines (a cron
//! catching up decides as one running every minute would) and must fire
//! the latency rule on `/checkout` only: neither `/steady` nor the
//! request-rate rule (the same count every minute, up or down) may fire. A
//! second evaluation in the same minute folds nothing again and changes
//! nothing. On Spin the evaluation is `POST /_metrics/evaluate`; under
//! `wrangler dev` it is the worker's cron handler (`/__scheduled`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edge_core::Timestamp;
use edge_core::metrics::{MetricsBatch, window_start};
use metrics::scenario::{self, MINUTES};
use serde_json::Value;
use wasm_tests::conformance::CaseRequest;
use wasm_tests::host::{App, AppConfig, GuestLogs, KvStore};
use wasm_tests::workerd::{WranglerDev, agent, send};

const INGEST_TOKEN: &str = "anomaly-ingest-token";
const ADMIN_TOKEN: &str = "anomaly-admin-token";

/// One latency rule and one request-rate rule (both directions) on shop.
const POLICY: &str = r#"
[metrics]
retention = "1h"
summary_window = "5m"
ingest_token_secret = "METRICS_INGEST_TOKEN"
admin_token_secret = "METRICS_ADMIN_TOKEN"

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

[[metrics.anomalies]]
name = "ShopTraffic"
measure = "request_rate"
direction = "both"
function = "shop"
factor = 2.0
for = "3m"
half_life = "30m"
min_samples = 10
min_requests = 20
severity = "info"
"#;

/// The shop's minutes up to `current`, `/checkout` tripled at the end.
fn shop_batches(current: u64) -> Vec<MetricsBatch> {
    let batches = scenario::shop_batches(current, 0.120, "anomaly-batch");
    for (i, batch) in batches.iter().enumerate() {
        let windows = (MINUTES - 5 * i as u64).min(5);
        assert_eq!(batch.windows.len() as u64, windows);
    }
    batches
}

fn now_minute() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    window_start(Timestamp(now))
}

/// `(alertname, route, status)` of the active alerts.
fn active(alerts: &Value) -> Vec<(String, String, String)> {
    let mut list: Vec<_> = alerts["active"]
        .as_array()
        .unwrap_or_else(|| panic!("no active list in {alerts}"))
        .iter()
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&a["labels"]["alertname"]),
                s(&a["labels"]["route"]),
                s(&a["status"]),
            )
        })
        .collect();
    list.sort();
    list
}

fn fired_on_checkout() -> Vec<(String, String, String)> {
    vec![("ShopLatency".into(), "/checkout".into(), "firing".into())]
}

/// The firing alert's annotations: the p95 and the baseline it departed from.
fn check_annotations(alerts: &Value) -> (f64, f64) {
    let a = &alerts["active"][0];
    assert_eq!(a["labels"]["kind"], "anomaly", "{a}");
    assert_eq!(a["labels"]["measure"], "p95_latency", "{a}");
    assert_eq!(a["annotations"]["expr"], "p95_latency > 2x baseline", "{a}");
    let number = |k: &str| -> f64 { a["annotations"][k].as_str().unwrap().parse().unwrap() };
    let (value, baseline) = (number("value"), number("baseline"));
    assert!(value > 2.0 * baseline, "{a}");
    // Lognormal σ 0.6 at 40 ms: p95 ≈ 40 ms × e^(0.6 × 1.645) ≈ 107 ms.
    assert!((0.08..0.14).contains(&baseline), "{a}");
    (value, baseline)
}

async fn spin_send(app: &App, method: &str, path: &str, token: &str, body: String) -> (u16, Value) {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1{path}"))
        .header("content-type", "application/json");
    if !token.is_empty() {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(bytes::Bytes::from(body)).unwrap();
    let client: SocketAddr = ([127, 0, 0, 1], 40020).into();
    let response = app
        .handle(request, client)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"));
    let text = String::from_utf8_lossy(response.body()).into_owned();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (response.status().as_u16(), json)
}

#[test]
fn spin_an_anomaly_rule_fires_on_a_latency_shift_and_not_on_steady_traffic() {
    let began = Instant::now();
    let metrics = App::load(
        &wasm_tests::spin_component("metrics"),
        AppConfig {
            variables: [
                ("policy", POLICY),
                ("metrics_ingest_token", INGEST_TOKEN),
                ("metrics_admin_token", ADMIN_TOKEN),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            kv: KvStore::new(),
            route: "/metrics".into(),
            guest_stderr: Some(GuestLogs::new(1 << 20)),
        },
    )
    .expect("the Spin build of metrics (run `cargo xtask build-spin metrics`)");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let batches = shop_batches(now_minute());
        for batch in &batches {
            let body = serde_json::to_string(batch).unwrap();
            let (status, answer) =
                spin_send(&metrics, "POST", "/metrics/_metrics/ingest", INGEST_TOKEN, body).await;
            assert_eq!(status, 202, "{answer}");
        }
        let evaluate = || spin_send(&metrics, "POST", "/metrics/_metrics/evaluate", ADMIN_TOKEN, String::new());
        let (status, report) = evaluate().await;
        assert_eq!(status, 200, "{report}");
        // 59 minutes of the hour's retention have settled; 4 series (two
        // rules, two routes).
        assert_eq!(report["baselines"]["series"], 4, "{report:#}");
        let folded = report["baselines"]["minutes_folded"].as_u64().unwrap();
        assert!((58..=60).contains(&folded), "{report:#}");
        let transitions: Vec<_> = report["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["labels"]["alertname"].clone(), t["labels"]["route"].clone(), t["status"].clone()))
            .collect();
        assert_eq!(
            transitions,
            vec![(Value::from("ShopLatency"), Value::from("/checkout"), Value::from("firing"))],
            "{report:#}"
        );
        let (status, alerts) = spin_send(&metrics, "GET", "/metrics/_metrics/alerts", "", String::new()).await;
        assert_eq!(status, 200, "{alerts}");
        assert_eq!(active(&alerts), fired_on_checkout(), "{alerts:#}");
        let (value, baseline) = check_annotations(&alerts);
        eprintln!(
            "anomaly spin: /checkout p95 {:.1} ms against a baseline of {:.1} ms ({:.2}x) after {folded} minutes folded",
            value * 1e3,
            baseline * 1e3,
            value / baseline
        );

        // The same minute again: nothing folded twice, no transition.
        let (status, again) = evaluate().await;
        assert_eq!(status, 200, "{again}");
        assert!(again["baselines"]["minutes_folded"].as_u64().unwrap() <= 1, "{again:#}");
        assert_eq!(again["transitions"], serde_json::json!([]), "{again:#}");
        assert_eq!(again["firing"], 1, "{again:#}");
        let (_, alerts) = spin_send(&metrics, "GET", "/metrics/_metrics/alerts", "", String::new()).await;
        assert_eq!(active(&alerts), fired_on_checkout(), "{alerts:#}");
    });
    eprintln!("anomaly spin: done in {:?}", began.elapsed());
}

fn worker_call(base: &str, method: &str, path: &str, token: &str, body: String) -> (u16, Value) {
    let mut headers = BTreeMap::from([("content-type", "application/json".to_owned())]);
    if !token.is_empty() {
        headers.insert("authorization", format!("Bearer {token}"));
    }
    let case: CaseRequest = serde_json::from_value(serde_json::json!({
        "method": method,
        "path": path,
        "headers": headers,
        "body": body,
    }))
    .unwrap();
    let answer = send(&agent(Duration::from_secs(60)), base, &case)
        .unwrap_or_else(|e| panic!("{method} {base}{path}: {e:#}"));
    let json = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("{path}: {e}: {}", answer.body));
    (answer.status, json)
}

#[test]
fn workers_an_anomaly_rule_fires_on_the_cron_after_a_latency_shift() {
    let began = Instant::now();
    let vars = BTreeMap::from([("POLICY".to_owned(), POLICY.to_owned())]);
    let secrets = BTreeMap::from([
        ("METRICS_INGEST_TOKEN".to_owned(), INGEST_TOKEN.to_owned()),
        ("METRICS_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
    ]);
    let metrics = WranglerDev::start("metrics", &vars, &secrets)
        .unwrap_or_else(|e| panic!("wrangler dev --env metrics: {e:#}"));
    let base = metrics.url();
    let started = Instant::now();
    for batch in shop_batches(now_minute()) {
        let body = serde_json::to_string(&batch).unwrap();
        let (status, answer) = worker_call(&base, "POST", "/_metrics/ingest", INGEST_TOKEN, body);
        assert_eq!(status, 202, "{answer}");
    }
    // The worker's cron handler evaluates the rules.
    metrics.scheduled().unwrap();
    let (status, alerts) = worker_call(&base, "GET", "/_metrics/alerts", "", String::new());
    assert_eq!(status, 200, "{alerts}");
    assert_eq!(
        active(&alerts),
        fired_on_checkout(),
        "{alerts:#}\n{}",
        metrics.log_tail()
    );
    let (value, baseline) = check_annotations(&alerts);
    eprintln!(
        "anomaly workers: /checkout p95 {:.1} ms against a baseline of {:.1} ms ({:.2}x); ingest and cron in {:?}",
        value * 1e3,
        baseline * 1e3,
        value / baseline,
        started.elapsed()
    );
    // The cron again: nothing new.
    metrics.scheduled().unwrap();
    let (_, again) = worker_call(&base, "GET", "/_metrics/alerts", "", String::new());
    assert_eq!(active(&again), fired_on_checkout(), "{again:#}");
    assert_eq!(
        again["active"][0]["startsAt"],
        alerts["active"][0]["startsAt"]
    );
    eprintln!("anomaly workers: done in {:?}", began.elapsed());
}
