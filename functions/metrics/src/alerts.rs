//! Alert rules evaluated on the cron trigger: each (rule, function, route)
//! is an alert that goes pending when its condition holds, fires once it
//! has held for the rule's `for`, and resolves when it stops holding.
//! Transitions are what the webhook receives (Alertmanager's format).
//! Anomaly rules' alerts ([`crate::anomaly`]) join the same state with
//! their phase decided by their baselines.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use edge_core::Timestamp;
use edge_core::metrics::{WINDOW_SECONDS, Window};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::policy::{AlertRule, AnomalyMeasure, Measure, parse_condition};
use crate::view::by_route;

/// Where the alert state lives in the store.
pub const STATE_KEY: &str = "metrics:alerts";
/// How many resolved alerts are remembered.
const MAX_RESOLVED: usize = 50;
/// The most alerts active at once (a rule over `*` routes is bounded by the series cap).
const MAX_ACTIVE: usize = 1000;

/// Pending or firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The condition holds, not yet for the rule's `for`.
    Pending,
    /// The condition has held for the rule's `for`.
    Firing,
    /// The condition stopped holding after the alert fired.
    Resolved,
}

/// One alert: a rule applied to one (function, route).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule's name.
    pub name: String,
    /// The function measured.
    pub function: String,
    /// The route measured.
    pub route: String,
    /// The rule's severity.
    pub severity: String,
    /// The rule's expression.
    pub expr: String,
    /// Where it is.
    pub state: Phase,
    /// The value at the last evaluation (seconds for latencies, a fraction for rates).
    pub value: f64,
    /// Since when the condition holds (ms since the epoch).
    pub active_since_ms: u64,
    /// When it fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_at_ms: Option<u64>,
    /// When it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at_ms: Option<u64>,
    /// For an anomaly rule's alert: what departed from which baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<AnomalyNote>,
}

/// What an anomaly alert compares ([`crate::anomaly`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnomalyNote {
    /// The measure followed.
    pub measure: AnomalyMeasure,
    /// The baseline the last minute was compared with.
    pub baseline: f64,
    /// The rule's factor.
    pub factor: f64,
}

impl Alert {
    fn fingerprint(&self) -> String {
        fingerprint(&self.name, &self.function, &self.route)
    }
}

/// An alert's identity: FNV-1a over its labels, stable across runtimes
/// and releases.
pub(crate) fn fingerprint(name: &str, function: &str, route: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [name, function, route] {
        for b in part.bytes().chain([0xff]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Every alert the aggregator knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    /// Pending and firing alerts by fingerprint.
    #[serde(default)]
    pub active: BTreeMap<String, Alert>,
    /// The latest resolved alerts, newest last.
    #[serde(default)]
    pub resolved: VecDeque<Alert>,
    /// When the rules were last evaluated (ms since the epoch).
    #[serde(default)]
    pub evaluated_at_ms: Option<u64>,
}

impl AlertState {
    /// How many alerts are firing.
    pub fn firing(&self) -> usize {
        self.active
            .values()
            .filter(|a| a.state == Phase::Firing)
            .count()
    }
}

/// Whether a rule's `function` or `route` selector picks `value`.
pub(crate) fn matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

/// The windows a rule measures at `now`: the current one and those
/// before it, `window` long in all.
fn span(windows: &[Window], window: Duration, now: Timestamp) -> &[Window] {
    let current = edge_core::metrics::window_start(now);
    let count = window.as_secs().div_ceil(WINDOW_SECONDS).max(1);
    let from = current.saturating_sub((count - 1) * WINDOW_SECONDS);
    let first = windows.partition_point(|w| w.start < from);
    let last = windows.partition_point(|w| w.start <= current);
    &windows[first..last.max(first)]
}

/// Evaluates `rules` over `windows` (sorted, oldest first) at `now`,
/// together with the anomaly alerts holding (their phase decided by
/// [`crate::anomaly`]), updating `state`; returns the alerts that fired or
/// resolved.
pub fn evaluate(
    rules: &[AlertRule],
    anomalies: Vec<Alert>,
    windows: &[Window],
    state: &mut AlertState,
    now: Timestamp,
) -> Vec<Alert> {
    let now_ms = now.as_millis();
    let mut holding: BTreeMap<String, Alert> = BTreeMap::new();
    for rule in rules {
        let Ok(condition) = parse_condition(&rule.expr) else {
            continue;
        };
        for ((function, route), stats) in by_route(span(windows, rule.window.0, now)) {
            if !matches(&rule.function, &function) || !matches(&rule.route, &route) {
                continue;
            }
            let value = match condition.measure {
                Measure::Quantile(q) => stats.latency.quantile(q).unwrap_or(0.0),
                Measure::ErrorRate => stats.error_rate(),
                Measure::RateLimitedRate => stats.rate_limited_rate(),
                Measure::Requests => stats.requests as f64,
            };
            if stats.requests < rule.min_requests || !condition.holds(value) {
                continue;
            }
            let alert = Alert {
                name: rule.name.clone(),
                function,
                route,
                severity: rule.severity.clone(),
                expr: rule.expr.clone(),
                state: Phase::Pending,
                value,
                active_since_ms: now_ms,
                fired_at_ms: None,
                resolved_at_ms: None,
                anomaly: None,
            };
            let fingerprint = alert.fingerprint();
            let mut alert = match state.active.get(&fingerprint) {
                Some(known) => Alert {
                    state: known.state,
                    active_since_ms: known.active_since_ms,
                    fired_at_ms: known.fired_at_ms,
                    ..alert
                },
                None => alert,
            };
            let held = Duration::from_millis(now_ms.saturating_sub(alert.active_since_ms));
            if alert.state == Phase::Pending && held >= rule.for_.0 {
                alert.state = Phase::Firing;
                alert.fired_at_ms = Some(now_ms);
            }
            if holding.len() < MAX_ACTIVE {
                holding.insert(fingerprint, alert);
            }
        }
    }
    for mut alert in anomalies {
        let fingerprint = alert.fingerprint();
        let known = state.active.get(&fingerprint);
        alert.fired_at_ms = match known {
            Some(k) if k.state == Phase::Firing => k.fired_at_ms,
            _ => (alert.state == Phase::Firing).then_some(now_ms),
        };
        if holding.len() < MAX_ACTIVE {
            holding.insert(fingerprint, alert);
        }
    }
    let mut transitions = Vec::new();
    for (fingerprint, before) in &state.active {
        if before.state == Phase::Firing && !holding.contains_key(fingerprint) {
            let resolved = Alert {
                state: Phase::Resolved,
                resolved_at_ms: Some(now_ms),
                ..before.clone()
            };
            state.resolved.push_back(resolved.clone());
            transitions.push(resolved);
        }
    }
    for (fingerprint, alert) in &holding {
        let was_firing = state
            .active
            .get(fingerprint)
            .is_some_and(|a| a.state == Phase::Firing);
        if alert.state == Phase::Firing && !was_firing {
            transitions.push(alert.clone());
        }
    }
    while state.resolved.len() > MAX_RESOLVED {
        state.resolved.pop_front();
    }
    state.active = holding;
    state.evaluated_at_ms = Some(now_ms);
    transitions
}

fn rfc3339(ms: u64) -> String {
    Timestamp::from_millis(ms).to_rfc3339()
}

/// The JSON form of an alert for `/_metrics/alerts` and the webhook.
pub fn alert_json(alert: &Alert) -> Value {
    let status = match alert.state {
        Phase::Resolved => "resolved",
        Phase::Firing => "firing",
        Phase::Pending => "pending",
    };
    let mut labels = json!({
        "alertname": alert.name,
        "function": alert.function,
        "route": alert.route,
        "severity": alert.severity,
    });
    let mut annotations = json!({ "expr": alert.expr, "value": alert.value.to_string() });
    if let Some(note) = &alert.anomaly {
        labels["kind"] = json!("anomaly");
        labels["measure"] = json!(note.measure.name());
        annotations["baseline"] = json!(note.baseline.to_string());
        annotations["factor"] = json!(note.factor.to_string());
    }
    json!({
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(alert.fired_at_ms.unwrap_or(alert.active_since_ms)),
        "endsAt": alert.resolved_at_ms.map_or("0001-01-01T00:00:00Z".to_owned(), rfc3339),
        "activeSince": rfc3339(alert.active_since_ms),
        "fingerprint": alert.fingerprint(),
    })
}

/// The webhook body for `transitions` (Alertmanager webhook, version 4).
pub fn webhook_body(transitions: &[Alert]) -> Value {
    let any_firing = transitions.iter().any(|a| a.state == Phase::Firing);
    json!({
        "version": "4",
        "receiver": "edge-metrics",
        "status": if any_firing { "firing" } else { "resolved" },
        "groupKey": "edge-metrics",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": transitions.iter().map(alert_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use edge_core::metrics::Recorder;
    use edge_core::policy::PolicyDuration;

    fn rule(expr: &str, for_secs: u64) -> AlertRule {
        AlertRule {
            name: "Slow".into(),
            expr: expr.into(),
            window: PolicyDuration(Duration::from_secs(120)),
            for_: PolicyDuration(Duration::from_secs(for_secs)),
            function: "*".into(),
            route: "*".into(),
            min_requests: 1,
            severity: "warning".into(),
        }
    }

    fn windows(latency: f64, at: u64) -> Vec<Window> {
        let r = Recorder::new();
        for _ in 0..10 {
            r.record(
                "f",
                "/a",
                "GET",
                200,
                latency,
                Timestamp::from_millis(at * 1000),
            );
        }
        r.take("f").unwrap().windows
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let rules = [rule("p95 > 250ms", 60)];
        let mut state = AlertState::default();
        let t0 = 6000;
        let fired = evaluate(
            &rules,
            Vec::new(),
            &windows(0.3, t0),
            &mut state,
            Timestamp::from_millis(t0 * 1000),
        );
        assert!(fired.is_empty());
        assert_eq!(state.active.values().next().unwrap().state, Phase::Pending);
        let t1 = t0 + 60;
        let fired = evaluate(
            &rules,
            Vec::new(),
            &windows(0.3, t1),
            &mut state,
            Timestamp::from_millis(t1 * 1000),
        );
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].state, Phase::Firing);
        assert_eq!(state.firing(), 1);
        let body = webhook_body(&fired);
        assert_eq!(body["alerts"][0]["labels"]["alertname"], "Slow");
        assert_eq!(body["status"], "firing");
        // Still firing: no new transition.
        let again = evaluate(
            &rules,
            Vec::new(),
            &windows(0.3, t1),
            &mut state,
            Timestamp::from_millis(t1 * 1000 + 1),
        );
        assert!(again.is_empty());
        let t2 = t1 + 60;
        let resolved = evaluate(
            &rules,
            Vec::new(),
            &windows(0.1, t2),
            &mut state,
            Timestamp::from_millis(t2 * 1000),
        );
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].state, Phase::Resolved);
        assert_eq!(state.firing(), 0);
        assert_eq!(state.resolved.len(), 1);
    }

    #[test]
    fn windows_outside_the_rule_span_do_not_count() {
        let rules = [rule("p95 > 250ms", 0)];
        let mut state = AlertState::default();
        // Data 10 minutes old is outside a 2-minute window.
        let fired = evaluate(
            &rules,
            Vec::new(),
            &windows(0.3, 6000),
            &mut state,
            Timestamp::from_millis(6600 * 1000),
        );
        assert!(fired.is_empty());
        assert!(state.active.is_empty());
    }
}
