//! The Prometheus text format (0.0.4) and OpenMetrics 1.0 exposition.
//!
//! Families: `edge_requests_total` (counter per function, route, method,
//! status), `edge_request_errors_total` (5xx) and
//! `edge_requests_rate_limited_total` (429) per function and route,
//! `edge_request_duration_seconds` (a summary: quantiles 0.5/0.95/0.99 from
//! the merged sketches over the policy's `summary_window`, within 1 %;
//! `_sum` and `_count` cumulative), `edge_function_value` (the gauges the
//! functions set, latest per name; not `edge_function_gauge`, which
//! `promtool check metrics` flags as a type in the name) and
//! `edge_alerts_firing`. Counters are cumulative since the aggregator's
//! first window: windows past the retention are folded into totals, never
//! dropped (but a batch whose window reaches the store after that window
//! was folded is not counted). `functions/metrics/tests/exposition.rs`
//! holds both texts to `promtool check metrics` and Python
//! `prometheus_client`'s parsers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use edge_core::metrics::{GaugeValue, SeriesKey};

use crate::view::{QUANTILES, RouteStats};

/// The Prometheus text format's content type.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The OpenMetrics content type.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the exposition shows.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Cumulative requests and latency sums per series.
    pub counters: BTreeMap<SeriesKey, (u64, f64)>,
    /// Per (function, route) over the summary window.
    pub recent: BTreeMap<(String, String), RouteStats>,
    /// The latest gauges.
    pub gauges: BTreeMap<(String, String), GaugeValue>,
    /// Alerts firing.
    pub firing: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Prometheus,
    OpenMetrics,
}

/// `text/plain; version=0.0.4`.
pub fn prometheus_text(e: &Exposition) -> String {
    render(e, Format::Prometheus)
}

/// `application/openmetrics-text; version=1.0.0`, ending in `# EOF`.
pub fn openmetrics_text(e: &Exposition) -> String {
    render(e, Format::OpenMetrics)
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

/// Writes `# HELP` and `# TYPE` (and `# UNIT`) for a family whose samples
/// are named `name` (+ suffixes).
fn header(
    out: &mut String,
    format: Format,
    name: &str,
    kind: &str,
    unit: Option<&str>,
    help: &str,
) {
    let family = match (format, kind) {
        (Format::OpenMetrics, "counter") => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    let _ = writeln!(out, "# HELP {family} {help}");
    let _ = writeln!(out, "# TYPE {family} {kind}");
    if let (Format::OpenMetrics, Some(unit)) = (format, unit) {
        let _ = writeln!(out, "# UNIT {family} {unit}");
    }
}

fn render(e: &Exposition, format: Format) -> String {
    let mut out = String::new();

    header(
        &mut out,
        format,
        "edge_requests_total",
        "counter",
        None,
        "Requests served, by function, route, method and status.",
    );
    for (key, (count, _)) in &e.counters {
        let status = key.status.to_string();
        let l = labels(&[
            ("function", &key.function),
            ("route", &key.route),
            ("method", &key.method),
            ("status", &status),
        ]);
        let _ = writeln!(out, "edge_requests_total{l} {count}");
    }

    let mut per_route: BTreeMap<(&str, &str), (u64, f64, u64, u64)> = BTreeMap::new();
    for (key, (count, sum)) in &e.counters {
        let entry = per_route
            .entry((key.function.as_str(), key.route.as_str()))
            .or_default();
        entry.0 += count;
        entry.1 += sum;
        if key.is_error() {
            entry.2 += count;
        }
        if key.is_rate_limited() {
            entry.3 += count;
        }
    }

    header(
        &mut out,
        format,
        "edge_request_errors_total",
        "counter",
        None,
        "Requests answered with a 5xx status.",
    );
    for ((function, route), (_, _, errors, _)) in &per_route {
        let l = labels(&[("function", function), ("route", route)]);
        let _ = writeln!(out, "edge_request_errors_total{l} {errors}");
    }
    header(
        &mut out,
        format,
        "edge_requests_rate_limited_total",
        "counter",
        None,
        "Requests refused with 429 Too Many Requests.",
    );
    for ((function, route), (_, _, _, limited)) in &per_route {
        let l = labels(&[("function", function), ("route", route)]);
        let _ = writeln!(out, "edge_requests_rate_limited_total{l} {limited}");
    }

    header(
        &mut out,
        format,
        "edge_request_duration_seconds",
        "summary",
        Some("seconds"),
        "Request latency; quantiles over the summary window, within 1% relative error (merged sketches).",
    );
    for ((function, route), (count, sum, _, _)) in &per_route {
        if let Some(stats) = e.recent.get(&((*function).to_owned(), (*route).to_owned())) {
            for (q, _) in QUANTILES {
                if let Some(value) = stats.latency.quantile(q) {
                    let q = q.to_string();
                    let l = labels(&[("function", function), ("route", route), ("quantile", &q)]);
                    let _ = writeln!(out, "edge_request_duration_seconds{l} {}", float(value));
                }
            }
        }
        let l = labels(&[("function", function), ("route", route)]);
        let _ = writeln!(out, "edge_request_duration_seconds_sum{l} {}", float(*sum));
        let _ = writeln!(out, "edge_request_duration_seconds_count{l} {count}");
    }

    header(
        &mut out,
        format,
        "edge_function_value",
        "gauge",
        None,
        "Values the functions set as gauges, latest per name.",
    );
    for ((function, name), gauge) in &e.gauges {
        let l = labels(&[("function", function), ("name", name)]);
        let _ = writeln!(out, "edge_function_value{l} {}", float(gauge.value));
    }

    header(
        &mut out,
        format,
        "edge_alerts_firing",
        "gauge",
        None,
        "Alerts firing at the last evaluation.",
    );
    let _ = writeln!(out, "edge_alerts_firing {}", e.firing);

    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_core::metrics::LatencySketch;

    fn sample() -> Exposition {
        let mut e = Exposition::default();
        let key = SeriesKey {
            function: "counter".into(),
            route: "/say \"hi\"\\\n".into(),
            method: "GET".into(),
            status: 200,
        };
        e.counters.insert(key, (3, 0.06));
        let mut stats = RouteStats::default();
        let mut sketch = LatencySketch::new();
        sketch.record(0.02);
        stats.latency = sketch;
        e.recent
            .insert(("counter".into(), "/say \"hi\"\\\n".into()), stats);
        e
    }

    #[test]
    fn labels_are_escaped_and_openmetrics_ends_with_eof() {
        let text = prometheus_text(&sample());
        assert!(text.contains(r#"route="/say \"hi\"\\\n""#), "{text}");
        assert!(text.contains("# TYPE edge_requests_total counter"));
        let om = openmetrics_text(&sample());
        assert!(om.contains("# TYPE edge_requests counter"));
        assert!(om.contains("# UNIT edge_request_duration_seconds seconds"));
        assert!(om.ends_with("# EOF\n"));
        assert!(!text.contains("# EOF"));
    }
}
