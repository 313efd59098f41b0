"""Writes metrics.json, the metrics function's conformance suite: the
answers that do not depend on when a runtime runs them (routes, content
types, problems, an empty alert state), so the four runtimes answer alike.
Merged traffic, quantiles and alerts firing are checked per runtime by
wasm-tests/tests/all/metrics.rs and functions/metrics/tests.

    python3 wasm-tests/conformance/metrics.py
"""

import json
import os

from cases import case, problem

HERE = os.path.dirname(os.path.abspath(__file__))
INGEST = "conformance-ingest-token"
ADMIN = "conformance-admin-token"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def batch(start):
    sketch = {"n": 1, "sum": 0.01, "min": 0.01, "max": 0.01, "offset": -233, "counts": [1]}
    return json.dumps({"source": "counter", "windows": [{"start": start, "series": [
        {"function": "counter", "route": "/counters/*", "method": "GET", "status": 200, "latency": sketch}]}]})


def main():
    bearer = lambda t: {"authorization": "Bearer " + t}
    cases = [
        case("health passes", "GET", "/health", 200,
             {"status": "pass", "function": "metrics", "checks": {"store": {"status": "pass"}}}),
        case("the Prometheus exposition", "GET", "/metrics", 200,
             headers={"accept": "text/plain"}),
        case("OpenMetrics when Accept asks for it", "GET", "/metrics", 200,
             headers={"accept": "application/openmetrics-text; version=1.0.0"}),
        case("OpenMetrics by ?format=", "GET", "/metrics?format=openmetrics", 200),
        case("an unknown format", "GET", "/metrics?format=xml", 400, problem("invalid-parameter", "format")),
        case("the exposition refuses POST", "POST", "/metrics", 405, problem("method-not-allowed"),
             headers_present=["allow"]),
        case("a snapshot", "GET", "/_metrics/snapshot", 200, {"alerts_firing": 0}),
        case("a snapshot window that is no duration", "GET", "/_metrics/snapshot?window=soon", 400,
             problem("invalid-parameter", "window")),
        case("a snapshot window beyond the retention", "GET", "/_metrics/snapshot?window=30d", 400,
             problem("invalid-parameter", "window")),
        case("the chart's series", "GET", "/_metrics/series?window=5m", 200, {"step_seconds": 60}),
        case("no alerts yet", "GET", "/_metrics/alerts", 200, {"firing": 0, "active": [], "resolved": []}),
        case("the chart page", "GET", "/_metrics/chart", 200, headers_present=["content-security-policy"]),
        case("ingest needs the token", "POST", "/_metrics/ingest", 401, problem("unauthorized"),
             body=batch(60), headers_present=["www-authenticate"]),
        case("ingest refuses a wrong token", "POST", "/_metrics/ingest", 401, problem("unauthorized"),
             body=batch(60), headers=bearer("not-" + INGEST), body_excludes=[INGEST]),
        case("ingest refuses what is no batch", "POST", "/_metrics/ingest", 400, problem("invalid-batch"),
             body="{nope", headers=bearer(INGEST), body_excludes=[INGEST]),
        case("ingest refuses a window older than the store keeps", "POST", "/_metrics/ingest", 400,
             problem("invalid-batch"), body=batch(60), headers=bearer(INGEST)),
        case("ingest refuses a window start off the minute", "POST", "/_metrics/ingest", 400,
             problem("invalid-batch"), body=batch(61), headers=bearer(INGEST)),
        case("ingest refuses GET", "GET", "/_metrics/ingest", 405, problem("method-not-allowed")),
        case("evaluate needs the admin token", "POST", "/_metrics/evaluate", 401, problem("unauthorized")),
        case("evaluate runs the rules", "POST", "/_metrics/evaluate", 200,
             {"transitions": [], "firing": 0}, headers=bearer(ADMIN)),
        case("an unknown route", "GET", "/_metrics/nothing", 404, problem("not-found")),
    ]
    # Content types are checked exactly.
    for c in cases:
        expect = c["expect"]
        path = c["request"]["path"]
        if expect["status"] >= 400:
            expect.setdefault("headers", {})["content-type"] = "application/problem+json"
        elif path.startswith("/metrics"):
            accept = c["request"].get("headers", {}).get("accept", "")
            om = "openmetrics" in path or "openmetrics" in accept
            expect.setdefault("headers", {})["content-type"] = OPENMETRICS if om else PROMETHEUS
        elif path == "/_metrics/chart":
            expect.setdefault("headers", {})["content-type"] = "text/html; charset=utf-8"
        elif path != "/health":
            expect.setdefault("headers", {})["content-type"] = "application/json"
    suite = {
        "function": "metrics",
        "browser_class": "MetricsFunction",
        "mount": "/metrics",
        "secrets": {"METRICS_INGEST_TOKEN": INGEST, "METRICS_ADMIN_TOKEN": ADMIN},
        "cases": cases,
    }
    with open(os.path.join(HERE, "metrics.json"), "w") as f:
        json.dump(suite, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
