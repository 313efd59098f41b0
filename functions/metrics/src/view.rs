//! What the endpoints show, computed from merged windows: per-route
//! statistics, the JSON snapshot, the chart's time series and the
//! cumulative counters behind the exposition.

use std::collections::{BTreeMap, BTreeSet};

use edge_core::metrics::{
    GaugeValue, LatencySketch, SeriesKey, WINDOW_SECONDS, Window, merge_gauge,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The quantiles every view reports.
pub const QUANTILES: [(f64, &str); 3] = [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")];

/// One (function, route)'s numbers over some windows.
#[derive(Debug, Clone, Default)]
pub struct RouteStats {
    /// Requests.
    pub requests: u64,
    /// 5xx answers.
    pub errors: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Requests per status.
    pub statuses: BTreeMap<u16, u64>,
    /// Latencies, merged.
    pub latency: LatencySketch,
}

impl RouteStats {
    fn add(&mut self, key: &SeriesKey, sketch: &LatencySketch) {
        let n = sketch.count();
        self.requests += n;
        if key.is_error() {
            self.errors += n;
        }
        if key.is_rate_limited() {
            self.rate_limited += n;
        }
        *self.statuses.entry(key.status).or_default() += n;
        self.latency.merge(sketch);
    }

    /// Errors over requests (0 without requests).
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors, self.requests)
    }

    /// 429s over requests (0 without requests).
    pub fn rate_limited_rate(&self) -> f64 {
        ratio(self.rate_limited, self.requests)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Statistics per (function, route) over `windows`.
pub fn by_route(windows: &[Window]) -> BTreeMap<(String, String), RouteStats> {
    let mut routes: BTreeMap<(String, String), RouteStats> = BTreeMap::new();
    for window in windows {
        for (key, sketch) in &window.series {
            routes
                .entry((key.function.clone(), key.route.clone()))
                .or_default()
                .add(key, sketch);
        }
    }
    routes
}

/// The latest value of every gauge over `windows`.
pub fn latest_gauges(windows: &[Window]) -> BTreeMap<(String, String), GaugeValue> {
    let mut gauges = BTreeMap::new();
    for window in windows {
        for (key, gauge) in &window.gauges {
            merge_gauge(&mut gauges, key.clone(), *gauge);
        }
    }
    gauges
}

fn ms(seconds: Option<f64>) -> Value {
    seconds.map_or(Value::Null, |s| json!((s * 1e6).round() / 1e3))
}

fn latency_json(sketch: &LatencySketch) -> Value {
    let mut latency = serde_json::Map::new();
    for (q, name) in QUANTILES {
        latency.insert(name.to_owned(), ms(sketch.quantile(q)));
    }
    latency.insert("max".to_owned(), ms(sketch.max()));
    let mean = (sketch.count() > 0).then(|| sketch.sum() / sketch.count() as f64);
    latency.insert("mean".to_owned(), ms(mean));
    Value::Object(latency)
}

/// The snapshot over `windows` (the span `from..to`, seconds).
pub fn snapshot(windows: &[Window], from: u64, to: u64, firing: usize) -> Value {
    let span = to.saturating_sub(from).max(1) as f64;
    let routes: Vec<Value> = by_route(windows)
        .into_iter()
        .map(|((function, route), stats)| {
            json!({
                "function": function,
                "route": route,
                "requests": stats.requests,
                "requests_per_second": (stats.requests as f64 / span * 1000.0).round() / 1000.0,
                "errors": stats.errors,
                "rate_limited": stats.rate_limited,
                "error_rate": stats.error_rate(),
                "statuses": stats.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "latency_ms": latency_json(&stats.latency),
            })
        })
        .collect();
    let gauges: Vec<Value> = latest_gauges(windows)
        .into_iter()
        .map(|((function, name), g)| json!({ "function": function, "name": name, "value": g.value, "at_ms": g.at_ms }))
        .collect();
    json!({
        "from": edge_core::Timestamp(std::time::Duration::from_secs(from)).to_rfc3339(),
        "to": edge_core::Timestamp(std::time::Duration::from_secs(to)).to_rfc3339(),
        "window_seconds": to.saturating_sub(from),
        "requests": windows.iter().map(Window::requests).sum::<u64>(),
        "routes": routes,
        "gauges": gauges,
        "alerts_firing": firing,
    })
}

/// The chart's data: per (function, route), one point per window with
/// its requests, 5xx errors, 429s and latency quantiles (ms).
pub fn series(windows: &[Window]) -> Value {
    let mut lines: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for window in windows {
        for ((function, route), stats) in by_route(std::slice::from_ref(window)) {
            let mut point = json!({
                "t": window.start,
                "requests": stats.requests,
                "errors": stats.errors,
                "rate_limited": stats.rate_limited,
            });
            for (q, name) in QUANTILES {
                point[name] = ms(stats.latency.quantile(q));
            }
            lines.entry((function, route)).or_default().push(point);
        }
    }
    json!({
        "step_seconds": WINDOW_SECONDS,
        "routes": lines.into_iter().map(|((function, route), points)| json!({
            "function": function, "route": route, "points": points,
        })).collect::<Vec<_>>(),
    })
}

/// Counts and sums folded in from windows past the retention, so the
/// exposition's counters never go back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Per series: requests and the latency sum (seconds).
    #[serde(with = "series_list")]
    pub series: BTreeMap<SeriesKey, (u64, f64)>,
    /// Windows (starts, seconds) added here whose keys are being deleted:
    /// readers skip them until the prune that folded them finishes.
    #[serde(default)]
    pub folding: BTreeSet<u64>,
}

impl Totals {
    /// Adds a window's counts and sums.
    pub fn add(&mut self, window: &Window) {
        for (key, sketch) in &window.series {
            let entry = self.series.entry(key.clone()).or_default();
            entry.0 += sketch.count();
            entry.1 += sketch.sum();
        }
    }
}

mod series_list {
    use super::*;
    use serde::{Deserializer, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Entry {
        #[serde(flatten)]
        key: SeriesKey,
        count: u64,
        sum: f64,
    }

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<SeriesKey, (u64, f64)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        map.iter()
            .map(|(key, (count, sum))| Entry {
                key: key.clone(),
                count: *count,
                sum: *sum,
            })
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<SeriesKey, (u64, f64)>, D::Error> {
        Ok(Vec::<Entry>::deserialize(d)?
            .into_iter()
            .map(|e| (e.key, (e.count, e.sum)))
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use edge_core::Timestamp;
    use edge_core::metrics::Recorder;
    use std::time::Duration;

    fn at(secs: u64) -> Timestamp {
        Timestamp(Duration::from_secs(secs))
    }

    /// Two minutes of one route: 5xx, 429s and latencies per minute.
    fn windows() -> Vec<Window> {
        let recorder = Recorder::new();
        for i in 0..100 {
            let status = match i % 10 {
                0 => 503,
                1 => 429,
                _ => 200,
            };
            let seconds = f64::from(i + 1) / 1000.0;
            recorder.record("shop", "/checkout/*", "POST", status, seconds, at(60));
        }
        for _ in 0..4 {
            recorder.record("shop", "/checkout/*", "POST", 200, 0.002, at(125));
        }
        recorder.record("shop", "/health", "GET", 200, 0.001, at(125));
        recorder.take("test").unwrap().windows
    }

    #[test]
    fn series_points_carry_requests_errors_429s_and_distinct_quantiles() {
        let series = series(&windows());
        assert_eq!(series["step_seconds"], WINDOW_SECONDS);
        let routes = series["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 2, "{series:#}");
        let checkout = &routes[0];
        assert_eq!(checkout["route"], "/checkout/*");
        let points = checkout["points"].as_array().unwrap();
        assert_eq!(points.len(), 2, "{checkout:#}");
        let first = &points[0];
        assert_eq!(first["t"], 60);
        assert_eq!(first["requests"], 100);
        assert_eq!(first["errors"], 10);
        assert_eq!(first["rate_limited"], 10);
        let q = |k: &str| first[k].as_f64().unwrap();
        // 1..=100 ms: the quantiles within the sketch's 1%.
        for (name, expect) in [("p50", 50.0), ("p95", 95.0), ("p99", 99.0)] {
            assert!((q(name) - expect).abs() <= expect * 0.02, "{name}: {first}");
        }
        assert!(q("p50") < q("p95") && q("p95") < q("p99"), "{first}");
        assert_eq!(points[1]["t"], 120);
        assert_eq!(points[1]["requests"], 4);
        assert_eq!(points[1]["errors"], 0);
        assert_eq!(points[1]["rate_limited"], 0);
    }

    #[test]
    fn the_snapshot_counts_what_the_overview_table_shows() {
        let windows = windows();
        let snapshot = snapshot(&windows, 60, 180, 1);
        let checkout = snapshot["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == "/checkout/*")
            .unwrap();
        assert_eq!(checkout["requests"], 104);
        assert_eq!(checkout["errors"], 10);
        assert_eq!(checkout["rate_limited"], 10);
        assert_eq!(checkout["statuses"]["503"], 10);
        assert!((checkout["error_rate"].as_f64().unwrap() - 10.0 / 104.0).abs() < 1e-9);
        assert!((checkout["requests_per_second"].as_f64().unwrap() - 0.867).abs() < 1e-9);
        assert_eq!(snapshot["alerts_firing"], 1);
        assert_eq!(snapshot["requests"], 105);
    }
}
