//! The gateway end to end, on the Workers build under `wrangler dev` and
//! on the Spin build in the wasmtime host, in front of a real origin that
//! records what it receives and a real OIDC provider (RS256 tokens by
//! discovery): each stage's refusal, the verified caller reaching the
//! origin (never a spoofed one), bodies pseudonymized on the way, every
//! outcome in the gateway's own metrics, and the origin stopped and back
//! (502, the breaker answering without trying, half-open, closed).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;
use wasm_tests::conformance::{Actual, CaseRequest, Repeat};
use wasm_tests::host::{AllowedHosts, App, AppConfig, GuestLogs, KvStore};
use wasm_tests::oidc::{OidcProvider, TokenRequest};
use wasm_tests::origin::RecordingOrigin;
use wasm_tests::{native, spin_component, workerd};

/// The audience the provider's tokens carry by default.
const AUDIENCE: &str = "https://api.test";

fn policy(origin: &str, issuer: &str) -> String {
    format!(
        r#"
[gateway]
origin = "{origin}"
timeout = "5s"

[[gateway.routes]]
route = "/_metrics/**"
mount = "metrics"
strip_prefix = false

[[gateway.routes]]
route = "POST /auth/login"
rate_limit = true

[[gateway.routes]]
route = "/admin/**"
auth = true
rate_limit = true

[[gateway.routes]]
route = "/api/**"
auth = true
rate_limit = true
anonymize = "request"

[[gateway.routes]]
route = "/plain/**"

[auth]
default = "authenticated"
[[auth.rules]]
route = "/admin/**"
roles = ["admin"]
[[auth.providers]]
issuer = "{issuer}"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256"]
discovery = true
required_claims = ["sub"]

[anonymize]
unknown_content = "pass"
[anonymize.entities]
email = "hash"
ipv4 = "hash"
ipv6 = "hash"
"#
    )
}

fn secrets() -> BTreeMap<String, String> {
    [
        ("RATE_LIMIT_HASH_KEY", "e2e-hash-key"),
        ("RATE_LIMIT_ADMIN_TOKEN", "e2e-admin"),
        ("GDPR_ANONYMIZATION_SALT", "e2e-anonymization-salt"),
        ("METRICS_INGEST_TOKEN", "e2e-ingest"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> CaseRequest {
    CaseRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.map(str::to_owned),
        body_repeat: None,
    }
}

fn json(actual: &Actual) -> Value {
    serde_json::from_str(&actual.body).unwrap_or(Value::Null)
}

/// One runtime serving the gateway.
trait Gateway {
    fn send(&self, req: &CaseRequest) -> Result<Actual>;
    /// Makes recorded metrics visible (the cron's flush on Workers).
    fn flush(&self) -> Result<()>;
    fn name(&self) -> &'static str;
}

fn token(provider: &OidcProvider, sub: &str, roles: &[&str]) -> String {
    provider
        .issue(&TokenRequest {
            sub: Some(sub.to_owned()),
            roles: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
            scope: Some("api:read".to_owned()),
            ..TokenRequest::default()
        })
        .unwrap()
        .access_token
}

/// The scenario the issue names, on one runtime.
fn scenario(gateway: &dyn Gateway, origin: &mut RecordingOrigin, provider: &OidcProvider) {
    let name = gateway.name();
    let send = |req: CaseRequest| gateway.send(&req).unwrap();

    // No token → 401 with the challenge.
    let none = send(request("GET", "/api/items", &[], None));
    assert_eq!(none.status, 401, "{name}: {}", none.body);
    assert!(
        none.headers["www-authenticate"].starts_with("Bearer"),
        "{name}"
    );

    // A token without the role → 403.
    let reader = format!("Bearer {}", token(provider, "bob", &["reader"]));
    let forbidden = send(request(
        "GET",
        "/admin/users",
        &[("authorization", &reader)],
        None,
    ));
    assert_eq!(forbidden.status, 403, "{name}: {}", forbidden.body);
    assert_eq!(
        json(&forbidden)["type"],
        "urn:edge-functions:problem:insufficient-scope"
    );
    let admin = format!("Bearer {}", token(provider, "root", &["admin"]));
    let allowed = send(request(
        "GET",
        "/admin/users",
        &[("authorization", &admin)],
        None,
    ));
    assert_eq!(allowed.status, 200, "{name}: {}", allowed.body);

    // The sixth login inside 15 minutes → 429 with the fields.
    let logins: Vec<Actual> = (0..6)
        .map(|_| send(request("POST", "/auth/login", &[], Some("{}"))))
        .collect();
    let statuses: Vec<u16> = logins.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429], "{name}");
    let refused = &logins[5];
    assert!(refused.headers.contains_key("retry-after"), "{name}");
    assert!(
        refused.headers["ratelimit"].contains("\"AUTH_LOGIN\";r=0"),
        "{name}: {:?}",
        refused.headers
    );
    assert!(
        logins[0].headers["ratelimit-policy"].contains("\"AUTH_LOGIN\";q=5;w=900"),
        "{name}"
    );

    // A JSON body with emails and IPs reaches the origin pseudonymized, with
    // the verified subject and never the spoofed one.
    let alice = format!("Bearer {}", token(provider, "alice", &["reader"]));
    let before = origin.received().len();
    let body = r#"{"user":{"email":"ann@example.com","ip":"203.0.113.9"},"note":"mail bo@example.org from 198.51.100.23"}"#;
    let posted = send(request(
        "POST",
        "/api/items?x=1",
        &[
            ("authorization", &alice),
            ("content-type", "application/json"),
            ("x-auth-sub", "mallory"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ],
        Some(body),
    ));
    assert_eq!(posted.status, 200, "{name}: {}", posted.body);
    assert_eq!(posted.headers["x-origin"], "recording", "{name}");
    let received = origin.received();
    assert_eq!(received.len(), before + 1, "{name}");
    let seen = received.last().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.uri.as_str()),
        ("POST", "/api/items?x=1"),
        "{name}"
    );
    assert_eq!(seen.headers["x-auth-sub"], "alice", "{name}");
    assert!(!seen.headers.contains_key("authorization"), "{name}");
    for raw in [
        "ann@example.com",
        "203.0.113.9",
        "bo@example.org",
        "198.51.100.23",
    ] {
        assert!(
            !seen.body.contains(raw),
            "{name}: {raw} reached the origin: {}",
            seen.body
        );
    }
    let forwarded: Value = serde_json::from_str(&seen.body).unwrap();
    assert!(
        forwarded["user"]["email"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{name}"
    );
    let traceparent = &seen.headers["traceparent"];
    assert!(
        traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{name}: {traceparent}"
    );
    assert!(seen.headers.contains_key("x-correlation-id"), "{name}");
    assert!(
        seen.headers["x-forwarded-for"].contains("127.0.0.1"),
        "{name}: {:?}",
        seen.headers
    );
    // Workers' own fetch adds `cf-worker` (the zone) to every subrequest;
    // no other platform header may come from the client's request.
    assert!(
        !seen
            .headers
            .keys()
            .any(|h| h.starts_with("spin-") || (h.starts_with("cf-") && h != "cf-worker")),
        "{name}: platform headers reached the origin: {:?}",
        seen.headers.keys().collect::<Vec<_>>()
    );

    // Every one of those requests in the gateway's metrics, with quantiles.
    gateway.flush().unwrap();
    let snapshot = send(request("GET", "/_metrics/snapshot", &[], None));
    assert_eq!(snapshot.status, 200, "{name}: {}", snapshot.body);
    let snapshot = json(&snapshot);
    let route = |route: &str| {
        snapshot["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["function"] == "gateway" && r["route"] == route)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: no {route} in {snapshot}"))
    };
    let login = route("/auth/login");
    assert_eq!(login["requests"], 6, "{name}: {login}");
    assert_eq!(login["rate_limited"], 1, "{name}: {login}");
    let api = route("/api/**");
    assert_eq!(api["statuses"]["401"], 1, "{name}: {api}");
    assert_eq!(api["statuses"]["200"], 1, "{name}: {api}");
    assert_eq!(route("/admin/**")["statuses"]["403"], 1, "{name}");
    for quantile in ["p50", "p95", "p99"] {
        assert!(login["latency_ms"][quantile].is_number(), "{name}: {login}");
    }

    // A body past the buffered limit (1 MiB) streams through the same
    // stages: refused by the auth check before it is read, else
    // pseudonymized on its way to the origin, every line of it; both
    // outcomes in the metrics.
    let line = "{\"email\":\"ann@example.com\",\"note\":\"from 203.0.113.9\"}\n";
    let lines = 40_000; // 2.2 MB
    let large = |headers: &[(&str, &str)]| {
        let mut req = request("POST", "/api/bulk", headers, None);
        req.body_repeat = Some(Repeat {
            text: line.to_owned(),
            times: lines,
        });
        req
    };
    let ndjson = ("content-type", "application/x-ndjson");
    let refused = send(large(&[ndjson]));
    assert_eq!(refused.status, 401, "{name}: {}", refused.body);
    assert!(refused.headers.contains_key("www-authenticate"), "{name}");
    let before = origin.received().len();
    let streamed = send(large(&[("authorization", &alice), ndjson]));
    assert_eq!(streamed.status, 200, "{name}: {}", streamed.body);
    assert!(
        streamed.headers["ratelimit"].contains("API_"),
        "{name}: {:?}",
        streamed.headers
    );
    let received = origin.received();
    assert_eq!(received.len(), before + 1, "{name}");
    let seen = received.last().unwrap();
    assert_eq!(seen.headers["x-auth-sub"], "alice", "{name}");
    assert_eq!(seen.body.lines().count(), lines, "{name}");
    assert!(
        !seen.body.contains("ann@example.com") && !seen.body.contains("203.0.113.9"),
        "{name}: raw values reached the origin in a streamed body"
    );
    gateway.flush().unwrap();
    let snapshot = json(&send(request("GET", "/_metrics/snapshot", &[], None)));
    let api = snapshot["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["function"] == "gateway" && r["route"] == "/api/**")
        .cloned()
        .unwrap_or_default();
    assert_eq!(api["statuses"]["401"], 2, "{name}: {api}");
    assert_eq!(api["statuses"]["200"], 2, "{name}: {api}");

    // The origin stopped: 502s until the breaker opens (≥ 5 failures in
    // the last 10), then 503 at once.
    origin.stop();
    let mut failures = 0;
    let open = loop {
        let answer = send(request("POST", "/plain/x", &[], Some("{}")));
        match answer.status {
            502 => {
                assert_eq!(
                    json(&answer)["type"],
                    "urn:edge-functions:problem:origin-unavailable"
                );
                failures += 1;
                assert!(failures <= 10, "{name}: the breaker never opened");
            }
            503 => break answer,
            other => panic!("{name}: {other} {}", answer.body),
        }
    };
    assert!(failures >= 1, "{name}");
    assert_eq!(
        json(&open)["type"],
        "urn:edge-functions:problem:origin-circuit-open",
        "{name}"
    );
    let opened = Instant::now();
    let health = json(&send(request("GET", "/health", &[], None)));
    assert_eq!(
        health["checks"][format!("origin {}", origin.url())]["state"],
        "open",
        "{name}: {health}"
    );

    // Back: still open (nothing is sent to it) until the 30 s pass, then
    // one probe goes through and closes the breaker.
    origin.restart().unwrap();
    let before = origin.received().len();
    assert_eq!(
        send(request("POST", "/plain/x", &[], Some("{}"))).status,
        503,
        "{name}"
    );
    assert_eq!(
        origin.received().len(),
        before,
        "{name}: the open breaker sent a request"
    );
    std::thread::sleep(Duration::from_secs(31).saturating_sub(opened.elapsed()));
    let probe = send(request("POST", "/plain/x", &[], Some("{}")));
    assert_eq!(probe.status, 200, "{name}: {}", probe.body);
    assert_eq!(origin.received().len(), before + 1, "{name}");
    let health = json(&send(request("GET", "/health", &[], None)));
    assert_eq!(
        health["checks"][format!("origin {}", origin.url())]["state"],
        "closed",
        "{name}: {health}"
    );
}

struct Workers(workerd::WranglerDev, ureq::Agent);

impl Gateway for Workers {
    fn send(&self, req: &CaseRequest) -> Result<Actual> {
        workerd::send(&self.1, &self.0.url(), req)
    }
    fn flush(&self) -> Result<()> {
        self.0.scheduled()
    }
    fn name(&self) -> &'static str {
        "workers"
    }
}

struct Spin {
    app: App,
    runtime: tokio::runtime::Runtime,
    logs: GuestLogs,
}

impl Gateway for Spin {
    fn send(&self, req: &CaseRequest) -> Result<Actual> {
        let client: SocketAddr = ([127, 0, 0, 1], 40300).into();
        let request = native::to_request(req, "http://127.0.0.1/gateway")?;
        let response = self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), self.app.handle(request, client)).await
        })??;
        Ok(Actual::from_response(&response))
    }
    fn flush(&self) -> Result<()> {
        // Every Spin request merges its record into the shared store.
        Ok(())
    }
    fn name(&self) -> &'static str {
        "spin"
    }
}

#[test]
fn the_pipeline_end_to_end_on_workers() {
    let provider = OidcProvider::start().unwrap();
    let mut origin = RecordingOrigin::start().unwrap();
    let vars = [(
        "POLICY".to_owned(),
        policy(&origin.url(), provider.issuer()),
    )]
    .into();
    let dev = workerd::WranglerDev::start("gateway", &vars, &secrets()).unwrap();
    let gateway = Workers(dev, workerd::agent(Duration::from_secs(30)));
    scenario(&gateway, &mut origin, &provider);
}

#[test]
fn the_pipeline_end_to_end_on_spin() {
    let provider = OidcProvider::start().unwrap();
    let mut origin = RecordingOrigin::start().unwrap();
    let mut variables: std::collections::HashMap<String, String> = secrets()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    variables.insert("policy".into(), policy(&origin.url(), provider.issuer()));
    let logs = GuestLogs::new(1 << 20);
    let app = App::load(
        &spin_component("gateway"),
        AppConfig {
            variables,
            kv: KvStore::new(),
            route: "/gateway".into(),
            guest_stderr: Some(logs.clone()),
        },
    )
    .expect("the Spin build of the gateway (run `cargo xtask build`)")
    .with_allowed_outbound_hosts(
        AllowedHosts::parse(&[origin.url().as_str(), provider.allowed_host().as_str()]).unwrap(),
    );
    let gateway = Spin {
        app,
        runtime: tokio::runtime::Runtime::new().unwrap(),
        logs,
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scenario(&gateway, &mut origin, &provider);
    }));
    if let Err(panic) = outcome {
        eprintln!("{}", String::from_utf8_lossy(&gateway.logs.contents()));
        std::panic::resume_unwind(panic);
    }
}
