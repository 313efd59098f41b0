//! `GET /metrics` held to real validators: `promtool check metrics` (Debian
//! `prometheus`) must pass the Prometheus text with no lint problem, and
//! Python `prometheus_client` must read the OpenMetrics text with its strict
//! parser and the Prometheus text with its text parser, both yielding the
//! numbers recorded.
//!
//! The data goes through the real path: requests served to the metrics
//! function on the in-memory platform (whose recorder `serve` feeds) and
//! records of other functions (`counter`, `rate-limit`, odd routes with
//! quotes, backslashes, control characters and non-ASCII, gauges), flushed
//! into the aggregator's store with `flush_metrics`, then scraped as
//! Prometheus text, as OpenMetrics by `Accept` and by `?format=`. Covered:
//! an empty aggregator, traffic over several windows, after the cron has
//! folded windows past the retention, and with alerts firing. A model of
//! what was recorded says what every sample must read: each series' count,
//! errors and 429s per route, latency sums, every quantile within 1 % of the
//! exact one, the latest gauges, the alerts firing.
//!
//! `promtool` checks only the Prometheus text: `promtool check metrics`
//! (2.42) reads the text format alone, so on OpenMetrics it takes a
//! counter's `edge_requests_total` samples for a family apart from `# TYPE
//! edge_requests counter` and reports `edge_requests_total no help text`.
//! The OpenMetrics text is held to prometheus_client's strict parser, and
//! both parsers must read the same samples from the two texts.
//!
//! Needs `promtool` on PATH (or in `PROMTOOL`) and `prometheus_client` in
//! target/pyenv (or a Python with it in `EDGE_PYTHON`), both installed by
//! `cargo xtask install` / `cargo xtask test`; when either is missing the
//! tests fail and say so rather than skip.
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use edge_core::function::{Instance, flush_metrics, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::{Config, EdgeFunction, Request, Response, Timestamp};
use futures::executor::block_on;
use metrics::Metrics;
use serde_json::Value;

const HOW_TO_INSTALL: &str = "run `cargo xtask install` (it installs Debian's `prometheus` for \
     promtool and target/pyenv with prometheus_client from requirements.txt)";
const ADMIN: &str = "test-admin-token";
/// 2026-11-22T00:00:00Z, a minute boundary.
const T0: u64 = 1_795_305_600_000;
/// The built-in policy's summary window, in seconds.
const SUMMARY_WINDOW: u64 = 300;
/// The built-in policy's retention, in seconds.
const RETENTION: u64 = 3600;
/// A window, in seconds.
const WINDOW: u64 = 60;
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
const FAMILIES: [&str; 6] = [
    "edge_requests",
    "edge_request_errors",
    "edge_requests_rate_limited",
    "edge_request_duration_seconds",
    "edge_function_value",
    "edge_alerts_firing",
];

// ---------------------------------------------------------------------------
// The validators.

fn promtool_path() -> PathBuf {
    std::env::var_os("PROMTOOL").map_or_else(|| PathBuf::from("promtool"), PathBuf::from)
}

/// `promtool check metrics` on `text` (stdin).
fn promtool(text: &str) -> Output {
    let path = promtool_path();
    let mut child = Command::new(&path)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {HOW_TO_INSTALL}", path.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Fails unless promtool exits 0 with nothing to say (1 is a parse error,
/// 3 lint problems).
fn assert_promtool_clean(text: &str, what: &str) {
    let out = promtool(text);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on the {what} exposition: {} (1 = parse error, 3 = lint \
         problems):\n{said}\n--- the exposition ---\n{text}",
        out.status
    );
}

fn python() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("EDGE_PYTHON")
        .map_or_else(|| repo.join("target/pyenv/bin/python"), PathBuf::from);
    assert!(
        python.is_file(),
        "no Python with prometheus_client at {}: {HOW_TO_INSTALL}, or set EDGE_PYTHON",
        python.display()
    );
    python
}

/// One sample as prometheus_client read it.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One family as prometheus_client read it.
#[derive(Debug)]
struct Family {
    name: String,
    kind: String,
    unit: String,
    samples: Vec<Sample>,
}

/// What prometheus_client read.
#[derive(Debug)]
struct Parsed {
    families: Vec<Family>,
}

impl Parsed {
    fn family(&self, name: &str) -> &Family {
        self.families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no family {name}: {:#?}", self.names()))
    }

    fn names(&self) -> Vec<&str> {
        self.families.iter().map(|f| f.name.as_str()).collect()
    }

    fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.iter().flat_map(|f| &f.samples)
    }

    /// The samples named `name`, by their labels.
    fn by_labels(&self, name: &str) -> BTreeMap<Labels, f64> {
        let mut out = BTreeMap::new();
        for s in self.samples().filter(|s| s.name == name) {
            let key: Labels = s.labels.clone().into_iter().collect();
            assert!(
                out.insert(key, s.value).is_none(),
                "{name}{:?} appears twice",
                s.labels
            );
        }
        out
    }
}

/// Parses `text` with `testdata/check_openmetrics.py` (`format` is
/// `openmetrics` or `prometheus`); fails with the parser's complaint.
fn parse(format: &str, text: &str) -> Parsed {
    let python = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/check_openmetrics.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(format)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {HOW_TO_INSTALL}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "prometheus_client is missing from {}: {HOW_TO_INSTALL}\n{stderr}",
        python.display()
    );
    assert!(
        out.status.success(),
        "prometheus_client's {format} parser refused the exposition ({}): {stderr}\n\
         --- the exposition ---\n{text}",
        out.status
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let families: Vec<Family> = json["by_family"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Family {
            name: f["name"].as_str().unwrap().to_owned(),
            kind: f["type"].as_str().unwrap().to_owned(),
            unit: f["unit"].as_str().unwrap().to_owned(),
            samples: f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Sample {
                    name: s["name"].as_str().unwrap().to_owned(),
                    labels: serde_json::from_value(s["labels"].clone()).unwrap(),
                    value: s["value"].as_str().unwrap().parse().unwrap(),
                })
                .collect(),
        })
        .collect();
    let sample_count: usize = families.iter().map(|f| f.samples.len()).sum();
    assert_eq!(json["families"].as_u64(), Some(families.len() as u64));
    assert_eq!(json["samples"].as_u64(), Some(sample_count as u64));
    Parsed { families }
}

// ---------------------------------------------------------------------------
// The platform and the metrics function.

fn platform() -> TestPlatform {
    TestPlatform::at(Timestamp::from_millis(T0))
}

fn instance() -> Instance<Metrics> {
    instantiate::<Metrics>(
        &Config::new(Metrics::DEFAULT_POLICY).with_secret("METRICS_ADMIN_TOKEN", ADMIN),
    )
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Default::default()).unwrap()
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

fn now_ms(p: &TestPlatform) -> u64 {
    use edge_core::Clock as _;
    p.clock.now().as_millis()
}

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// One request as the model expects it in the exposition.
#[derive(Debug, Clone)]
struct Record {
    function: String,
    route: String,
    method: String,
    status: u16,
    seconds: f64,
    at_ms: u64,
}

/// What was recorded, so what the exposition must show: records and
/// gauges are pending until flushed, windows up to `folded_through` have
/// been folded into the totals by the cron.
#[derive(Debug, Default)]
struct Model {
    pending: Vec<Record>,
    flushed: Vec<Record>,
    pending_gauges: Vec<((String, String), f64, u64)>,
    flushed_gauges: Vec<((String, String), f64, u64)>,
    folded_through: Option<u64>,
    firing: usize,
}

type RouteKey = (String, String);
/// A sample's labels, sorted.
type Labels = Vec<(String, String)>;
/// The (route, method, status) the recorder keeps a request under.
type Kept<'a> = (&'a str, &'a str, u16);
type SeriesKey = (String, String, String, u16);

fn window_of(ms: u64) -> u64 {
    let s = ms / 1000;
    s - s % WINDOW
}

impl Model {
    fn folded(&self, at_ms: u64) -> bool {
        self.folded_through.is_some_and(|t| window_of(at_ms) <= t)
    }

    fn series(&self) -> BTreeMap<SeriesKey, Vec<f64>> {
        let mut out: BTreeMap<SeriesKey, Vec<f64>> = BTreeMap::new();
        for r in &self.flushed {
            out.entry((
                r.function.clone(),
                r.route.clone(),
                r.method.clone(),
                r.status,
            ))
            .or_default()
            .push(r.seconds);
        }
        out
    }

    /// Per route: the latencies inside the summary window at `now_ms`.
    fn recent(&self, now_ms: u64) -> BTreeMap<RouteKey, Vec<f64>> {
        let oldest = window_of(now_ms) - (SUMMARY_WINDOW - WINDOW);
        let mut out: BTreeMap<RouteKey, Vec<f64>> = BTreeMap::new();
        for r in &self.flushed {
            if window_of(r.at_ms) >= oldest && !self.folded(r.at_ms) {
                out.entry((r.function.clone(), r.route.clone()))
                    .or_default()
                    .push(r.seconds);
            }
        }
        out
    }

    /// The latest value of every gauge in a window not folded yet.
    fn gauges(&self) -> BTreeMap<RouteKey, f64> {
        let mut latest: BTreeMap<RouteKey, (u64, f64)> = BTreeMap::new();
        for (key, value, at_ms) in &self.flushed_gauges {
            if self.folded(*at_ms) {
                continue;
            }
            let newer = latest.get(key).is_none_or(|(t, _)| at_ms >= t);
            if newer {
                latest.insert(key.clone(), (*at_ms, *value));
            }
        }
        latest.into_iter().map(|(k, (_, v))| (k, v)).collect()
    }
}

/// The platform, the function and the model, driven together.
struct Harness {
    p: TestPlatform,
    metrics: Instance<Metrics>,
    model: Model,
}

impl Harness {
    fn new() -> Self {
        Harness {
            p: platform(),
            metrics: instance(),
            model: Model::default(),
        }
    }

    fn set_time(&self, ms: u64) {
        self.p.clock.set(at(ms));
    }

    /// Serves a request to the metrics function, checks its status and
    /// notes what `serve` recorded (latency 0: the fake clock stands still).
    fn serve(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        status: u16,
        route: &str,
    ) -> Response {
        let response = block_on(self.p.serve(&self.metrics, request(method, uri, headers)));
        assert_eq!(
            response.status().as_u16(),
            status,
            "{method} {uri}: {}",
            String::from_utf8_lossy(response.body())
        );
        self.model.pending.push(Record {
            function: "metrics".into(),
            route: route.into(),
            method: method.into(),
            status,
            seconds: 0.0,
            at_ms: now_ms(&self.p),
        });
        response
    }

    /// Records a request of another function as its glue would; `expected`
    /// is the (route, method, status) the recorder keeps it under.
    fn record_as(
        &mut self,
        function: &str,
        route: &str,
        method: &str,
        status: u16,
        seconds: f64,
        expected: Kept<'_>,
    ) {
        let now = now_ms(&self.p);
        self.p
            .metrics
            .record(function, route, method, status, seconds, at(now));
        self.model.pending.push(Record {
            function: function.into(),
            route: expected.0.into(),
            method: expected.1.into(),
            status: expected.2,
            seconds,
            at_ms: now,
        });
    }

    fn record(&mut self, function: &str, route: &str, method: &str, status: u16, seconds: f64) {
        self.record_as(
            function,
            route,
            method,
            status,
            seconds,
            (route, method, status),
        );
    }

    fn gauge(&mut self, function: &str, name: &str, value: f64) {
        let now = now_ms(&self.p);
        self.p.metrics.set_gauge(function, name, value, at(now));
        self.model
            .pending_gauges
            .push(((function.into(), name.into()), value, now));
    }

    /// Flushes the recorder into the aggregator's store, as the glue does.
    fn flush(&mut self) {
        block_on(flush_metrics::<Metrics>(
            &self.metrics,
            &self.p.services(),
            None,
            1,
            true,
        ));
        assert_eq!(self.p.metrics.pending(), 0, "the flush failed");
        self.model.flushed.append(&mut self.model.pending);
        self.model
            .flushed_gauges
            .append(&mut self.model.pending_gauges);
    }

    /// `POST /_metrics/evaluate` with the admin token: its report.
    fn evaluate(&mut self) -> Value {
        let auth = format!("Bearer {ADMIN}");
        let response = self.serve(
            "POST",
            "/_metrics/evaluate",
            &[("authorization", &auth)],
            200,
            "/_metrics/evaluate",
        );
        serde_json::from_slice(response.body()).unwrap()
    }

    /// Scrapes `/metrics` three ways, checks the content types and that the
    /// two ways of asking for OpenMetrics agree: (Prometheus, OpenMetrics).
    fn scrape(&mut self) -> (String, String) {
        let text = self.serve("GET", "/metrics", &[], 200, "/metrics");
        assert_eq!(header(&text, "content-type"), PROMETHEUS);
        let by_accept = self.serve(
            "GET",
            "/metrics",
            &[(
                "accept",
                "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            )],
            200,
            "/metrics",
        );
        assert_eq!(header(&by_accept, "content-type"), OPENMETRICS);
        let by_query = self.serve("GET", "/metrics?format=openmetrics", &[], 200, "/metrics");
        assert_eq!(header(&by_query, "content-type"), OPENMETRICS);
        let text = String::from_utf8(text.body().to_vec()).unwrap();
        let om = String::from_utf8(by_accept.body().to_vec()).unwrap();
        assert_eq!(
            om,
            String::from_utf8(by_query.body().to_vec()).unwrap(),
            "Accept and ?format=openmetrics give different expositions"
        );
        (text, om)
    }

    /// Scrapes, runs every validator, and checks every sample against the
    /// model; returns what the strict OpenMetrics parser read.
    fn check(&mut self, what: &str) -> Parsed {
        let now = now_ms(&self.p);
        let (text, om) = self.scrape();
        assert_promtool_clean(&text, &format!("{what} Prometheus text"));
        let from_om = parse("openmetrics", &om);
        let from_text = parse("prometheus", &text);

        // Both parsers see the six families with their types (the unit
        // only OpenMetrics carries).
        let units = ["", "", "", "seconds", "", ""];
        let kinds = ["counter", "counter", "counter", "summary", "gauge", "gauge"];
        for (format, parsed, text) in [
            ("OpenMetrics", &from_om, &om),
            ("Prometheus", &from_text, &text),
        ] {
            assert_eq!(
                parsed.names(),
                FAMILIES,
                "{what}, {format}: families\n{text}"
            );
            let read: Vec<&str> = parsed.families.iter().map(|f| f.kind.as_str()).collect();
            assert_eq!(read, kinds, "{what}, {format}: types");
        }
        let read: Vec<&str> = from_om.families.iter().map(|f| f.unit.as_str()).collect();
        assert_eq!(read, units, "{what}: OpenMetrics units");
        // Both read the same samples, and what was recorded.
        let samples = |p: &Parsed| {
            let mut all: Vec<(String, Labels, String)> = p
                .samples()
                .map(|s| {
                    (
                        s.name.clone(),
                        s.labels.clone().into_iter().collect(),
                        format!("{:?}", s.value),
                    )
                })
                .collect();
            all.sort();
            all
        };
        assert_eq!(
            samples(&from_om),
            samples(&from_text),
            "{what}: the OpenMetrics and Prometheus texts disagree"
        );
        check_against_model(&self.model, &from_om, now, &format!("{what}, OpenMetrics"));
        check_against_model(&self.model, &from_text, now, &format!("{what}, Prometheus"));
        from_om
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut out: Labels = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.sort();
    out
}

/// The value of rank `floor(q · (n − 1))`, the rank the sketch answers.
fn exact_quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
    sorted[rank]
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * b.abs().max(a.abs()) + 1e-12
}

fn check_against_model(model: &Model, parsed: &Parsed, now: u64, what: &str) {
    let series = model.series();

    // Every series' count, exactly.
    let expected: BTreeMap<Labels, f64> = series
        .iter()
        .map(|((function, route, method, status), v)| {
            (
                labels(&[
                    ("function", function),
                    ("route", route),
                    ("method", method),
                    ("status", &status.to_string()),
                ]),
                v.len() as f64,
            )
        })
        .collect();
    assert_eq!(
        parsed.by_labels("edge_requests_total"),
        expected,
        "{what}: edge_requests_total"
    );

    // Per route: errors, 429s, sums, counts.
    let mut per_route: BTreeMap<RouteKey, (u64, f64, u64, u64)> = BTreeMap::new();
    for ((function, route, _, status), values) in &series {
        let entry = per_route
            .entry((function.clone(), route.clone()))
            .or_default();
        entry.0 += values.len() as u64;
        entry.1 += values.iter().sum::<f64>();
        if *status >= 500 {
            entry.2 += values.len() as u64;
        }
        if *status == 429 {
            entry.3 += values.len() as u64;
        }
    }
    let route_labels = |(function, route): &RouteKey| {
        labels(&[("function", function.as_str()), ("route", route.as_str())])
    };
    let per = |pick: fn(&(u64, f64, u64, u64)) -> f64| -> BTreeMap<Labels, f64> {
        per_route
            .iter()
            .map(|(k, v)| (route_labels(k), pick(v)))
            .collect()
    };
    assert_eq!(
        parsed.by_labels("edge_request_errors_total"),
        per(|v| v.2 as f64),
        "{what}: edge_request_errors_total"
    );
    assert_eq!(
        parsed.by_labels("edge_requests_rate_limited_total"),
        per(|v| v.3 as f64),
        "{what}: edge_requests_rate_limited_total"
    );
    assert_eq!(
        parsed.by_labels("edge_request_duration_seconds_count"),
        per(|v| v.0 as f64),
        "{what}: edge_request_duration_seconds_count"
    );
    let sums = parsed.by_labels("edge_request_duration_seconds_sum");
    let expected_sums = per(|v| v.1);
    assert_eq!(
        sums.keys().collect::<Vec<_>>(),
        expected_sums.keys().collect::<Vec<_>>(),
        "{what}: edge_request_duration_seconds_sum"
    );
    for (key, sum) in &sums {
        assert!(
            close(*sum, expected_sums[key], 1e-9),
            "{what}: sum {key:?} = {sum}, recorded {}",
            expected_sums[key]
        );
    }

    // Quantiles over the summary window, within 1 % of the exact ones.
    let quantiles = parsed.by_labels("edge_request_duration_seconds");
    let mut expected_keys = BTreeSet::new();
    for ((function, route), values) in model.recent(now) {
        for q in ["0.5", "0.95", "0.99"] {
            let key = labels(&[("function", &function), ("route", &route), ("quantile", q)]);
            let exact = exact_quantile(&values, q.parse().unwrap());
            let got = *quantiles
                .get(&key)
                .unwrap_or_else(|| panic!("{what}: no quantile {key:?}"));
            assert!(
                close(got, exact, 0.01),
                "{what}: {function} {route} q{q} = {got}, exact {exact} ({} values)",
                values.len()
            );
            expected_keys.insert(key);
        }
    }
    assert_eq!(
        quantiles.keys().cloned().collect::<BTreeSet<_>>(),
        expected_keys,
        "{what}: quantile samples"
    );

    // The latest gauges, the alerts firing.
    let gauges: BTreeMap<Labels, f64> = model
        .gauges()
        .into_iter()
        .map(|((function, name), v)| (labels(&[("function", &function), ("name", &name)]), v))
        .collect();
    assert_eq!(
        parsed.by_labels("edge_function_value"),
        gauges,
        "{what}: gauges"
    );
    assert_eq!(
        parsed.by_labels("edge_alerts_firing"),
        BTreeMap::from([(Vec::new(), model.firing as f64)]),
        "{what}: edge_alerts_firing"
    );

    // Family and sample counts, as the strict parser read them.
    let family_samples = |name: &str| parsed.family(name).samples.len();
    assert_eq!(family_samples("edge_requests"), series.len());
    assert_eq!(family_samples("edge_request_errors"), per_route.len());
    assert_eq!(
        family_samples("edge_requests_rate_limited"),
        per_route.len()
    );
    assert_eq!(
        family_samples("edge_request_duration_seconds"),
        2 * per_route.len() + 3 * model.recent(now).len()
    );
    assert_eq!(family_samples("edge_function_value"), model.gauges().len());
    assert_eq!(family_samples("edge_alerts_firing"), 1);
}

/// Latencies (seconds) with a long tail: log-normal around 20 ms from a
/// fixed xorshift generator.
fn latencies(n: usize, seed: u64, median: f64) -> Vec<f64> {
    let mut state = seed.max(1);
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            let gauss = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            median * (0.8 * gauss).exp()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The scenarios.

#[test]
fn promtool_and_prometheus_client_are_installed() {
    let out = promtool("");
    assert!(
        out.status.success(),
        "promtool check metrics on nothing: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = parse("openmetrics", "# EOF\n");
    assert!(parsed.families.is_empty());
}

#[test]
fn empty_aggregator() {
    let mut h = Harness::new();
    let parsed = h.check("empty");
    assert_eq!(parsed.samples().count(), 1, "only edge_alerts_firing 0");
}

#[test]
fn traffic_over_several_windows_then_the_cron() {
    let mut h = Harness::new();
    // Minute 0: the metrics function's own requests, of every outcome.
    h.set_time(T0 + 5_000);
    h.serve("GET", "/health", &[], 200, "/health");
    h.serve("GET", "/_metrics/snapshot", &[], 200, "/_metrics/snapshot");
    h.serve(
        "GET",
        "/_metrics/snapshot?window=1y",
        &[],
        400,
        "/_metrics/snapshot",
    );
    h.serve("GET", "/_metrics/nope", &[], 404, "/_metrics/*");
    h.serve("POST", "/_metrics/evaluate", &[], 401, "/_metrics/evaluate");
    h.serve("DELETE", "/metrics", &[], 405, "/metrics");
    h.serve("GET", "/metrics?format=xml", &[], 400, "/metrics");

    // The counter: one busy route whose quantiles are checked against
    // 2,000 exact latencies, spread over three minutes.
    let counter = latencies(2000, 7, 0.02);
    for (i, chunk) in counter.chunks(700).enumerate() {
        h.set_time(T0 + i as u64 * 60_000 + 10_000);
        for (j, s) in chunk.iter().enumerate() {
            let method = if j % 3 == 0 { "POST" } else { "GET" };
            let status = if j % 50 == 0 { 503 } else { 200 };
            h.record("counter", "/counters/{key}", method, status, *s);
        }
        h.record("counter", "/counters/{key}", "DELETE", 401, 0.0004);
    }
    // Odd routes: quotes, backslashes, non-ASCII, control characters
    // (recorded as `?`), a route cut at 64 bytes on a character boundary,
    // an unknown method (`OTHER`) and status (`0`).
    h.set_time(T0 + 2 * 60_000 + 20_000);
    let long = format!("/{}", "é".repeat(40));
    let cut = format!("/{}", "é".repeat(31));
    let odd: [(&str, &str, u16, Kept); 7] = [
        ("/say \"hi\"", "GET", 200, ("/say \"hi\"", "GET", 200)),
        ("/back\\slash\\", "PUT", 404, ("/back\\slash\\", "PUT", 404)),
        (
            "/ünïcödé/日本語/🚀",
            "GET",
            200,
            ("/ünïcödé/日本語/🚀", "GET", 200),
        ),
        (
            "/line\nbreak\ttab",
            "GET",
            200,
            ("/line?break?tab", "GET", 200),
        ),
        (
            "/q?a={b},c=\"d\"#x",
            "PATCH",
            200,
            ("/q?a={b},c=\"d\"#x", "PATCH", 200),
        ),
        (long.as_str(), "GET", 200, (cut.as_str(), "GET", 200)),
        ("/teapot", "BREW", 999, ("/teapot", "OTHER", 0)),
    ];
    for (route, method, status, expected) in odd {
        for s in latencies(3, u64::from(status) + route.len() as u64, 0.005) {
            h.record_as("counter", route, method, status, s, expected);
        }
    }

    // The rate limiter: 200, 404, 429, 503 on two routes.
    h.set_time(T0 + 60_000 + 30_000);
    let rl = latencies(400, 11, 0.003);
    for (i, s) in rl.iter().enumerate() {
        let status = match i % 10 {
            0..=5 => 200,
            6 => 404,
            7 | 8 => 429,
            _ => 503,
        };
        h.record("rate-limit", "/api/*", "GET", status, *s);
        if i % 4 == 0 {
            h.record(
                "rate-limit",
                "/auth/login",
                "POST",
                if i % 8 == 0 { 429 } else { 200 },
                *s,
            );
        }
    }

    // Gauges: the latest wins; odd names escaped; tiny, large, negative.
    h.set_time(T0 + 30_000);
    h.gauge("rate-limit", "leases_held", 10.0);
    h.gauge("counter", "queue \"depth\"\\n", 3.5);
    h.set_time(T0 + 2 * 60_000 + 40_000);
    h.gauge("rate-limit", "leases_held", 12.0);
    h.gauge("anonymize", "ratio", -0.25);
    h.gauge("spatial-query", "tiles_cached", 1e21);
    h.gauge("spatial-query", "tile_seconds", 1.5e-7);

    h.flush();
    h.set_time(T0 + 2 * 60_000 + 50_000);
    let parsed = h.check("traffic");
    let counter_series = parsed.family("edge_requests").samples.len();
    assert!(counter_series >= 20, "{counter_series} series");

    // Those scrapes flushed too, a minute later, with a gauge overwritten.
    h.set_time(T0 + 3 * 60_000 + 5_000);
    h.gauge("rate-limit", "leases_held", 0.0);
    h.flush();
    h.check("traffic, scrapes flushed");

    // The cron within the retention: nothing to fold, and no alert fires
    // yet: the error-rate ones are pending (the rule wants 5m of holding).
    let report = h.evaluate();
    assert_eq!(report["pruned_windows"], 0, "{report}");
    assert_eq!(report["firing"], 0, "{report}");
    let alerts = h.serve("GET", "/_metrics/alerts", &[], 200, "/_metrics/alerts");
    let alerts: Value = serde_json::from_slice(alerts.body()).unwrap();
    let pending: Vec<&str> = alerts["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert!(
        !pending.is_empty() && pending.iter().all(|s| *s == "pending"),
        "{alerts}"
    );
    h.flush();
    h.check("after the cron");

    // Two hours later the cron folds every window into the totals: the
    // counters hold, quantiles and gauges go with the windows. (Flushed
    // first: a window that reaches the store after it was folded is not
    // counted.)
    h.flush();
    h.set_time(T0 + 2 * 3_600_000);
    let report = h.evaluate();
    assert!(report["pruned_windows"].as_u64().unwrap() >= 4, "{report}");
    h.model.folded_through = Some(window_of(T0 + 2 * 3_600_000) - RETENTION - WINDOW);
    h.check("after the cron folded the windows");
    h.flush();
    h.check("after the fold, new traffic flushed");
}

#[test]
fn alerts_firing() {
    let mut h = Harness::new();
    // A minute of traffic: 20 % of 503s on /api/* (HighErrorRate) and
    // about 400 ms on /slow (HighLatencyP95).
    fn minute(h: &mut Harness, at_ms: u64) {
        h.set_time(at_ms);
        for (i, s) in latencies(50, at_ms, 0.004).into_iter().enumerate() {
            let status = if i % 5 == 0 { 503 } else { 200 };
            h.record("rate-limit", "/api/*", "GET", status, s);
        }
        for s in latencies(30, at_ms + 1, 0.4) {
            h.record("counter", "/slow", "GET", 200, s);
        }
        h.flush();
    }
    minute(&mut h, T0 + 10_000);
    let report = h.evaluate();
    assert_eq!(report["firing"], 0, "pending first: {report}");
    h.check("alerts pending");

    for m in 1..=5 {
        minute(&mut h, T0 + m * 60_000 + 10_000);
    }
    let report = h.evaluate();
    assert_eq!(report["firing"], 2, "{report}");
    h.model.firing = 2;
    h.flush();
    let parsed = h.check("alerts firing");
    assert_eq!(parsed.by_labels("edge_alerts_firing")[&Vec::new()], 2.0);
}
