//! The metrics policy: retention, secrets, webhook, alert rules and
//! anomaly rules, with the rule expressions parsed and checked at start.

use std::time::Duration;

use edge_core::metrics::WINDOW_SECONDS;
use edge_core::policy::{Policy, PolicyDuration, Validator};
use serde::{Deserialize, Serialize};

/// The policy document (`policy.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsPolicy {
    /// The `[metrics]` table.
    pub metrics: MetricsSection,
}

impl MetricsPolicy {
    /// The URLs the function calls, each with its field path, for
    /// `Config::check_outbound`: its webhook.
    pub fn outbound(&self) -> Vec<(String, String)> {
        self.metrics
            .webhook
            .iter()
            .map(|url| ("metrics.webhook".to_owned(), url.clone()))
            .collect()
    }
}

/// The `[metrics]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// How long windows are kept.
    pub retention: PolicyDuration,
    /// The span of the exposition's quantiles and the default snapshot.
    pub summary_window: PolicyDuration,
    /// The secret isolates flush with.
    pub ingest_token_secret: String,
    /// The secret authorizing an evaluation on demand.
    pub admin_token_secret: String,
    /// The secret read endpoints require, when it is set.
    #[serde(default)]
    pub read_token_secret: Option<String>,
    /// Where alert transitions are POSTed.
    #[serde(default)]
    pub webhook: Option<String>,
    /// The alert rules.
    #[serde(default)]
    pub alerts: Vec<AlertRule>,
    /// The anomaly rules: departures from a learned baseline.
    #[serde(default)]
    pub anomalies: Vec<AnomalyRule>,
}

/// What an anomaly rule follows per (function, route) and minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyMeasure {
    /// The minute's p95 latency (seconds).
    P95Latency,
    /// The minute's 5xx answers over its requests.
    ErrorRate,
    /// The minute's requests per second.
    RequestRate,
}

impl AnomalyMeasure {
    /// Its name in the policy and in alert labels.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyMeasure::P95Latency => "p95_latency",
            AnomalyMeasure::ErrorRate => "error_rate",
            AnomalyMeasure::RequestRate => "request_rate",
        }
    }
}

/// Which departures from the baseline count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Above `factor` × baseline.
    Up,
    /// Below baseline / `factor` (request rate only).
    Down,
    /// Either.
    Both,
}

/// One anomaly rule (`[[metrics.anomalies]]`): each (function, route) it
/// selects keeps an EWMA baseline of `measure` over closed minutes, and
/// the rule fires when the minutes depart from it by `factor` for `for`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyRule {
    /// The alert's name (`alertname`).
    pub name: String,
    /// What is followed.
    pub measure: AnomalyMeasure,
    /// How far from the baseline a minute departs: above `factor` ×
    /// baseline, or (down) below baseline / `factor`.
    #[serde(default = "two")]
    pub factor: f64,
    /// Up (default), or for the request rate down or both.
    #[serde(default = "up")]
    pub direction: Direction,
    /// How long consecutive minutes depart before the alert fires.
    #[serde(default = "five_minutes", rename = "for")]
    pub for_: PolicyDuration,
    /// The baseline's half-life: a minute's weight halves after this long.
    #[serde(default = "one_hour")]
    pub half_life: PolicyDuration,
    /// Minutes folded into the baseline before the rule may fire.
    #[serde(default = "twenty")]
    pub min_samples: u32,
    /// A minute with fewer requests is no sample (latency, error rate) or
    /// no departure (request rate: a spike needs this many, a drop a
    /// baseline of this many a minute).
    #[serde(default = "twenty_requests")]
    pub min_requests: u64,
    /// The least value that departs upwards, in the measure's unit
    /// (`50ms`, `1%`, requests per second): a baseline near zero times
    /// `factor` is no bound.
    #[serde(default)]
    pub floor: Option<String>,
    /// The function matched (`*`: each).
    #[serde(default = "any")]
    pub function: String,
    /// The route matched (`*`: each).
    #[serde(default = "any")]
    pub route: String,
    /// A label passed on to receivers.
    #[serde(default = "warning")]
    pub severity: String,
}

impl AnomalyRule {
    /// The EWMA weight of one minute, from the half-life.
    pub fn alpha(&self) -> f64 {
        let minutes = self.half_life.0.as_secs_f64() / WINDOW_SECONDS as f64;
        1.0 - 0.5f64.powf(1.0 / minutes.max(1.0))
    }

    /// The floor in the measure's unit (0 without one or when invalid,
    /// which validation refuses).
    pub fn floor_value(&self) -> f64 {
        self.floor
            .as_deref()
            .and_then(|f| parse_floor(self.measure, f).ok())
            .unwrap_or(0.0)
    }
}

/// Parses a floor: `50ms`/`0.2s` for latency, `1%`/`0.01` for the error
/// rate, requests per second for the request rate.
pub fn parse_floor(measure: AnomalyMeasure, text: &str) -> Result<f64, String> {
    let (number, scale, unit) = split_unit(text);
    let value = number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| "is not a non-negative number".to_owned())?
        * scale;
    let fits = match (measure, unit) {
        (AnomalyMeasure::P95Latency, "time") => true,
        (AnomalyMeasure::ErrorRate, "rate" | "number") => value <= 1.0,
        (AnomalyMeasure::RequestRate, "number") => true,
        _ => false,
    };
    if fits {
        Ok(value)
    } else {
        Err(format!(
            "does not suit {} (latency takes ms or s, the error rate % or a fraction ≤ 1, the request rate requests per second)",
            measure.name()
        ))
    }
}

fn split_unit(value: &str) -> (&str, f64, &'static str) {
    if let Some(n) = value.strip_suffix("ms") {
        (n, 1e-3, "time")
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1.0, "time")
    } else if let Some(n) = value.strip_suffix('%') {
        (n, 1e-2, "rate")
    } else {
        (value, 1.0, "number")
    }
}

/// One alert rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// The alert's name (`alertname`).
    pub name: String,
    /// `METRIC OP VALUE`.
    pub expr: String,
    /// The span measured.
    #[serde(default = "default_window")]
    pub window: PolicyDuration,
    /// How long the condition holds before the alert fires.
    #[serde(default = "zero", rename = "for")]
    pub for_: PolicyDuration,
    /// The function matched (`*`: each).
    #[serde(default = "any")]
    pub function: String,
    /// The route matched (`*`: each).
    #[serde(default = "any")]
    pub route: String,
    /// Fewer requests in the window than this leave the condition false
    /// (rates of a handful of requests say little).
    #[serde(default = "one")]
    pub min_requests: u64,
    /// A label passed on to receivers.
    #[serde(default = "warning")]
    pub severity: String,
}

fn default_window() -> PolicyDuration {
    PolicyDuration(Duration::from_secs(300))
}
fn zero() -> PolicyDuration {
    PolicyDuration(Duration::ZERO)
}
fn any() -> String {
    "*".to_owned()
}
fn one() -> u64 {
    1
}
fn warning() -> String {
    "warning".to_owned()
}
fn two() -> f64 {
    2.0
}
fn up() -> Direction {
    Direction::Up
}
fn five_minutes() -> PolicyDuration {
    PolicyDuration(Duration::from_secs(300))
}
fn one_hour() -> PolicyDuration {
    PolicyDuration(Duration::from_secs(3600))
}
fn twenty() -> u32 {
    20
}
fn twenty_requests() -> u64 {
    20
}

/// What a rule measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// A latency quantile (seconds).
    Quantile(f64),
    /// 5xx answers over requests.
    ErrorRate,
    /// 429 answers over requests.
    RateLimitedRate,
    /// Requests in the window.
    Requests,
}

/// A parsed `expr`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// What is measured.
    pub measure: Measure,
    /// `true` for `>`, `false` for `<`.
    pub above: bool,
    /// The threshold, in seconds for quantiles and as a fraction for rates.
    pub threshold: f64,
}

impl Condition {
    /// Whether `value` meets the condition.
    pub fn holds(&self, value: f64) -> bool {
        if self.above {
            value > self.threshold
        } else {
            value < self.threshold
        }
    }
}

/// Parses `METRIC OP VALUE`, e.g. `p95 > 250ms` or `error_rate > 1%`.
pub fn parse_condition(expr: &str) -> Result<Condition, String> {
    let parts: Vec<&str> = expr.split_whitespace().collect();
    let [metric, op, value] = parts.as_slice() else {
        return Err("must be `METRIC OP VALUE`, e.g. \"p95 > 250ms\"".to_owned());
    };
    let measure = match *metric {
        "p50" => Measure::Quantile(0.5),
        "p90" => Measure::Quantile(0.9),
        "p95" => Measure::Quantile(0.95),
        "p99" => Measure::Quantile(0.99),
        "p999" => Measure::Quantile(0.999),
        "error_rate" => Measure::ErrorRate,
        "rate_limited_rate" => Measure::RateLimitedRate,
        "requests" => Measure::Requests,
        other => {
            return Err(format!(
                "unknown metric {other:?} (p50, p90, p95, p99, p999, error_rate, rate_limited_rate, requests)"
            ));
        }
    };
    let above = match *op {
        ">" => true,
        "<" => false,
        other => return Err(format!("unknown operator {other:?} (> or <)")),
    };
    let (number, scale, unit) = split_unit(value);
    let threshold = number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("{value:?} is not a non-negative number"))?
        * scale;
    let fits = match (measure, unit) {
        (Measure::Quantile(_), "time") => true,
        (Measure::ErrorRate | Measure::RateLimitedRate, "rate" | "number") => threshold <= 1.0,
        (Measure::Requests, "number") => true,
        _ => false,
    };
    if !fits {
        return Err(format!(
            "{value:?} does not suit {metric} (latencies take ms or s, rates % or a fraction ≤ 1, requests a count)"
        ));
    }
    Ok(Condition {
        measure,
        above,
        threshold,
    })
}

impl Policy for MetricsPolicy {
    fn validate(&self, v: &mut Validator) {
        let m = &self.metrics;
        v.field("metrics", |v| {
            let minute = Duration::from_secs(WINDOW_SECONDS);
            v.check(
                m.retention.0 >= minute && m.retention.0 <= Duration::from_secs(7 * 24 * 3600),
                "retention",
                m.retention,
                "must be in 1m..=7d",
            );
            v.check(
                m.summary_window.0 >= minute && m.summary_window.0 <= m.retention.0,
                "summary_window",
                m.summary_window,
                "must be at least 1m and at most the retention",
            );
            if let Some(url) = &m.webhook {
                let ok = url.parse::<http::Uri>().ok().is_some_and(|u| {
                    matches!(u.scheme_str(), Some("https" | "http")) && u.host().is_some()
                });
                v.check(ok, "webhook", url, "must be an http(s) URL");
            }
            v.check(
                m.alerts.len() <= 64,
                "alerts",
                m.alerts.len(),
                "at most 64 rules",
            );
            v.field("alerts", |v| {
                for (i, rule) in m.alerts.iter().enumerate() {
                    v.index(i, |v| {
                        check_name(v, &rule.name);
                        if let Err(reason) = parse_condition(&rule.expr) {
                            v.check(false, "expr", &rule.expr, &reason);
                        }
                        v.check(
                            rule.window.0 >= minute && rule.window.0 <= m.retention.0,
                            "window",
                            rule.window,
                            "must be at least 1m and at most the retention",
                        );
                        v.check(
                            rule.for_.0 <= m.retention.0,
                            "for",
                            rule.for_,
                            "must be at most the retention",
                        );
                    });
                }
            });
            validate_anomalies(v, m);
        });
    }
}

/// Rule names are labels (`alertname`): 1-64 characters of `[A-Za-z0-9_]`.
fn check_name(v: &mut Validator, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    v.check(ok, "name", name, "must be 1-64 characters of [A-Za-z0-9_]");
}

fn validate_anomalies(v: &mut Validator, m: &MetricsSection) {
    let minute = Duration::from_secs(WINDOW_SECONDS);
    v.check(
        m.anomalies.len() <= 64,
        "anomalies",
        m.anomalies.len(),
        "at most 64 rules",
    );
    v.field("anomalies", |v| {
        for (i, rule) in m.anomalies.iter().enumerate() {
            v.index(i, |v| {
                check_name(v, &rule.name);
                let taken = m.alerts.iter().any(|a| a.name == rule.name)
                    || m.anomalies[..i].iter().any(|a| a.name == rule.name);
                v.check(
                    !taken,
                    "name",
                    &rule.name,
                    "is already the name of another alert or anomaly rule",
                );
                v.check(
                    rule.factor.is_finite() && rule.factor > 1.0 && rule.factor <= 1000.0,
                    "factor",
                    serde_json::Number::from_f64(rule.factor).map_or_else(
                        || serde_json::Value::String(rule.factor.to_string()),
                        serde_json::Value::Number,
                    ),
                    "must be > 1 and <= 1000",
                );
                v.check(
                    rule.direction == Direction::Up || rule.measure == AnomalyMeasure::RequestRate,
                    "direction",
                    rule.direction,
                    "must be up for latency and error rate (a drop is no incident)",
                );
                v.check(
                    rule.for_.0 <= m.retention.0,
                    "for",
                    rule.for_,
                    "must be at most the retention",
                );
                v.check(
                    rule.half_life.0 >= minute
                        && rule.half_life.0 <= Duration::from_secs(7 * 24 * 3600),
                    "half_life",
                    rule.half_life,
                    "must be in 1m..=7d",
                );
                v.check(
                    (1..=10_080).contains(&rule.min_samples),
                    "min_samples",
                    rule.min_samples,
                    "must be in 1..=10080 (minutes)",
                );
                if let Some(floor) = &rule.floor
                    && let Err(reason) = parse_floor(rule.measure, floor)
                {
                    v.check(false, "floor", floor, &reason);
                }
            });
        }
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_with_units() {
        let c = parse_condition("p95 > 250ms").unwrap();
        assert_eq!(c.measure, Measure::Quantile(0.95));
        assert!((c.threshold - 0.25).abs() < 1e-12);
        assert!(c.holds(0.3) && !c.holds(0.25));
        let e = parse_condition("error_rate > 1%").unwrap();
        assert!((e.threshold - 0.01).abs() < 1e-12);
        assert!(parse_condition("requests < 5").unwrap().holds(4.0));
        for bad in [
            "p95 > 250",
            "p95 >= 1s",
            "p42 > 1s",
            "error_rate > 150%",
            "p95 > -1ms",
            "p95",
        ] {
            assert!(parse_condition(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_webhook_outside_the_allowed_hosts_fails_at_start_by_field() {
        use edge_core::{Config, EdgeFunction};
        let policy = include_str!("../policy.toml").replacen(
            "[metrics]\n",
            "[metrics]\nwebhook = \"https://hooks.example:8443/alerts\"\n",
            1,
        );
        let config = |hosts: &str| {
            Config::new(crate::Metrics::DEFAULT_POLICY)
                .with_var("POLICY", policy.as_str())
                .with_allowed_outbound_hosts(hosts)
        };
        let error = crate::Metrics::from_config(&config("https://alerts.example.com"))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            error,
            "metrics.webhook: https://hooks.example:8443 is not in this component's \
             allowed_outbound_hosts (https://alerts.example.com); add it to spin.toml"
        );
        assert!(crate::Metrics::from_config(&config("https://hooks.example:8443")).is_ok());
        // Without a webhook nothing is called.
        let none = Config::new(crate::Metrics::DEFAULT_POLICY).with_allowed_outbound_hosts("");
        assert!(crate::Metrics::from_config(&none).is_ok());
    }

    #[test]
    fn the_built_in_policy_is_valid_and_errors_name_the_field() {
        let p: MetricsPolicy =
            edge_core::policy::parse_policy(include_str!("../policy.toml")).unwrap();
        assert_eq!(p.metrics.alerts.len(), 2);
        assert_eq!(p.metrics.anomalies.len(), 3);
        assert_eq!(p.metrics.anomalies[2].direction, Direction::Both);
        assert!((p.metrics.anomalies[0].floor_value() - 0.05).abs() < 1e-12);
        let bad = include_str!("../policy.toml").replace("p95 > 250ms", "p95 > fast");
        let err = edge_core::policy::parse_policy::<MetricsPolicy>(&bad).unwrap_err();
        assert!(err.to_string().contains("metrics.alerts[0].expr"), "{err}");
    }

    #[test]
    fn anomaly_rules_take_defaults_and_bad_ones_are_refused_by_field() {
        let base = "[metrics]\nretention = \"1h\"\nsummary_window = \"5m\"\n\
            ingest_token_secret = \"I\"\nadmin_token_secret = \"A\"\n\
            [[metrics.alerts]]\nname = \"Slow\"\nexpr = \"p95 > 1s\"\n\
            [[metrics.anomalies]]\nname = \"Odd\"\n";
        let parse = |extra: &str| {
            edge_core::policy::parse_policy::<MetricsPolicy>(&format!("{base}{extra}"))
        };
        let p = parse("measure = \"p95_latency\"\n").unwrap();
        let rule = &p.metrics.anomalies[0];
        assert_eq!(
            (rule.factor, rule.direction, rule.min_samples),
            (2.0, Direction::Up, 20)
        );
        assert_eq!(rule.for_.0, Duration::from_secs(300));
        // 1 h half-life: each minute weighs 1 - 2^(-1/60).
        assert!((rule.alpha() - 0.011_486).abs() < 1e-6, "{}", rule.alpha());
        for (extra, field) in [
            (
                "measure = \"p90_latency\"\n",
                "metrics.anomalies[0].measure",
            ),
            (
                "measure = \"p95_latency\"\nfactor = 1.0\n",
                "metrics.anomalies[0].factor",
            ),
            (
                "measure = \"p95_latency\"\nfactor = inf\n",
                "metrics.anomalies[0].factor",
            ),
            (
                "measure = \"error_rate\"\ndirection = \"down\"\n",
                "metrics.anomalies[0].direction",
            ),
            (
                "measure = \"request_rate\"\ndirection = \"sideways\"\n",
                "metrics.anomalies[0].direction",
            ),
            (
                "measure = \"p95_latency\"\nfloor = \"5%\"\n",
                "metrics.anomalies[0].floor",
            ),
            (
                "measure = \"error_rate\"\nfloor = \"150%\"\n",
                "metrics.anomalies[0].floor",
            ),
            (
                "measure = \"request_rate\"\nfloor = \"10ms\"\n",
                "metrics.anomalies[0].floor",
            ),
            (
                "measure = \"p95_latency\"\nhalf_life = \"10s\"\n",
                "metrics.anomalies[0].half_life",
            ),
            (
                "measure = \"p95_latency\"\nmin_samples = 0\n",
                "metrics.anomalies[0].min_samples",
            ),
            (
                "measure = \"p95_latency\"\nfor = \"2h\"\n",
                "metrics.anomalies[0].for",
            ),
            (
                "measure = \"p95_latency\"\nwindow = \"5m\"\n",
                "metrics.anomalies[0]",
            ),
            (
                "measure = \"p95_latency\"\n[[metrics.anomalies]]\nname = \"Slow\"\nmeasure = \"error_rate\"\n",
                "metrics.anomalies[1].name",
            ),
        ] {
            let err = parse(extra)
                .err()
                .unwrap_or_else(|| panic!("{extra} was accepted"))
                .to_string();
            assert!(err.contains(field), "{extra}: {err}");
        }
        assert!(
            parse("measure = \"request_rate\"\ndirection = \"both\"\nfloor = \"2.5\"\n").is_ok()
        );
    }
}
