//! The metrics policy: retention, secrets, webhook and alert rules, with
//! the rule expressions parsed and checked at start.

use std::time::Duration;

use edge_core::metrics::WINDOW_SECONDS;
use edge_core::policy::{Policy, PolicyDuration, Validator};
use serde::Deserialize;

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
    let (number, scale, unit) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1e-3, "time")
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1.0, "time")
    } else if let Some(n) = value.strip_suffix('%') {
        (n, 1e-2, "rate")
    } else {
        (*value, 1.0, "number")
    };
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
                        v.check(
                            !rule.name.is_empty()
                                && rule.name.len() <= 64
                                && rule
                                    .name
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                            "name",
                            &rule.name,
                            "must be 1-64 characters of [A-Za-z0-9_]",
                        );
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
        });
    }
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
        let bad = include_str!("../policy.toml").replace("p95 > 250ms", "p95 > fast");
        let err = edge_core::policy::parse_policy::<MetricsPolicy>(&bad).unwrap_err();
        assert!(err.to_string().contains("metrics.alerts[0].expr"), "{err}");
    }
}
