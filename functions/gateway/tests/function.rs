//! The whole gateway on in-memory services, in front of a canned origin
//! that records what it receives: each stage's refusal, the verified
//! caller reaching the origin (never a spoofed one) and keying the rate
//! limiter, bodies pseudonymized both ways, mounted functions, its own
//! metrics, and policy errors named by field.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edge_core::function::{Context, Instance, flush_metrics, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::stream::StreamingFunction;
use edge_core::{Config, EdgeFunction, Request, Response, Timestamp};
use futures::executor::block_on;
use gateway::Gateway;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const ISSUER: &str = "https://idp.test";
const HS_SECRET: &str = "gateway-test-hs256-secret-0123456789";
const ORIGIN: &str = "https://origin.test";
const T0: u64 = 1_800_000_000;

fn token(sub: &str, roles: &[&str]) -> String {
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": "hs" });
    let claims = json!({ "iss": ISSUER, "sub": sub, "aud": "api", "iat": T0, "exp": T0 + 900,
                         "scope": "read", "roles": roles });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(HS_SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn policy() -> String {
    format!(
        r#"
[gateway]
origin = "{ORIGIN}"

[[gateway.routes]]
route = "/_metrics/**"
mount = "metrics"
strip_prefix = false

[[gateway.routes]]
route = "/counter/**"
rate_limit = true
mount = "counter"

[[gateway.routes]]
route = "POST /auth/login"
rate_limit = true

[[gateway.routes]]
route = "/admin/**"
auth = true

[[gateway.routes]]
route = "/api/**"
auth = true
rate_limit = true
anonymize = "request"

[[gateway.routes]]
route = "/profile"
anonymize = "response"

[[gateway.routes]]
route = "/plain/**"

[auth]
default = "authenticated"
[[auth.rules]]
route = "/admin/**"
roles = ["admin"]
[[auth.providers]]
issuer = "{ISSUER}"
audiences = ["api"]
algorithms = ["HS256"]
keys = [{{ kid = "hs", hmac_secret = "AUTH_HS256_SECRET" }}]

[rate_limit]
hash_key_secret = "RATE_LIMIT_HASH_KEY"
[[rate_limit.scopes]]
name = "AUTH_LOGIN"
algorithm = "sliding_window"
limit = 5
period = "15m"
key = ["ip"]
methods = ["POST"]
paths = ["/auth/login"]
[[rate_limit.scopes]]
name = "API_USER"
algorithm = "fixed_window"
limit = 3
period = "1m"
key = ["sub"]
fallback_key = ["ip"]
paths = ["/api/*"]

[anonymize]
unknown_content = "pass"
[anonymize.entities]
email = "hash"
ipv4 = "hash"
"#
    )
}

fn config(policy: &str) -> Config {
    Config::new(Gateway::DEFAULT_POLICY)
        .with_var("POLICY", policy)
        .with_secret("AUTH_HS256_SECRET", HS_SECRET)
        .with_secret("RATE_LIMIT_HASH_KEY", "test-hash-key")
        .with_secret("GDPR_ANONYMIZATION_SALT", "test-anonymization-salt")
        .with_secret("METRICS_INGEST_TOKEN", "test-ingest")
        .with_secret("COUNTER_ADMIN_TOKEN", "test-admin")
}

struct Setup {
    platform: TestPlatform,
    gateway: Instance<Gateway>,
}

fn setup() -> Setup {
    let platform = TestPlatform::at(Timestamp::from_millis(T0 * 1000));
    platform.http.route(
        &format!("{ORIGIN}/api/items"),
        json_response(json!({ "ok": true })),
    );
    platform.http.route(
        &format!("{ORIGIN}/auth/login"),
        json_response(json!({ "session": "s" })),
    );
    platform.http.route(
        &format!("{ORIGIN}/plain/x"),
        json_response(json!({ "plain": true })),
    );
    platform.http.route(
        &format!("{ORIGIN}/profile"),
        json_response(json!({ "email": "ann@example.com", "ip": "203.0.113.9", "name": "Ann" })),
    );
    let gateway = instantiate::<Gateway>(&config(&policy()));
    assert!(gateway.is_ok(), "{:?}", gateway.as_ref().err());
    Setup { platform, gateway }
}

fn json_response(body: Value) -> Response {
    let mut response = Response::new(body.to_string().into());
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request {
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut req = builder.body(body.to_owned().into()).unwrap();
    req.extensions_mut()
        .insert(edge_core::ClientAddr("198.51.100.7".parse().unwrap()));
    req
}

impl Setup {
    fn serve(&self, req: Request) -> Response {
        block_on(self.platform.serve(&self.gateway, req))
    }
    fn problem(response: &Response) -> Value {
        serde_json::from_slice(response.body()).unwrap()
    }
    fn origin_saw(&self, path: &str) -> Request {
        self.platform
            .http
            .last_request(&format!("{ORIGIN}{path}"))
            .unwrap()
    }
}

#[test]
fn each_stage_answers_for_itself() {
    let s = setup();
    let none = s.serve(request("GET", "/api/items", &[], ""));
    assert_eq!(none.status(), 401);
    assert!(
        none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    let bearer = format!("Bearer {}", token("bob", &["reader"]));
    let forbidden = s.serve(request(
        "GET",
        "/admin/users",
        &[("authorization", &bearer)],
        "",
    ));
    assert_eq!(forbidden.status(), 403);
    assert_eq!(
        Setup::problem(&forbidden)["type"],
        "urn:edge-functions:problem:insufficient-scope"
    );

    let statuses: Vec<u16> = (0..6)
        .map(|_| {
            s.serve(request("POST", "/auth/login", &[], ""))
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    let refused = s.serve(request("POST", "/auth/login", &[], ""));
    assert!(refused.headers().contains_key("retry-after"));
    assert!(
        refused.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"AUTH_LOGIN\";r=0")
    );
    assert_eq!(s.platform.http.calls(&format!("{ORIGIN}/auth/login")), 5);

    let nowhere = s.serve(request("GET", "/nowhere", &[], ""));
    assert_eq!(nowhere.status(), 404);
    assert!(
        Setup::problem(&nowhere)["detail"]
            .as_str()
            .unwrap()
            .contains("no gateway route")
    );
}

#[test]
fn the_origin_sees_the_verified_caller_and_pseudonymized_bodies() {
    let s = setup();
    let bearer = format!("Bearer {}", token("alice", &["reader"]));
    let body = r#"{"user":{"email":"ann@example.com"},"note":"seen at 203.0.113.9"}"#;
    let response = s.serve(request(
        "POST",
        "/api/items",
        &[
            ("authorization", &bearer),
            ("x-auth-sub", "mallory"),
            ("content-type", "application/json"),
        ],
        body,
    ));
    assert_eq!(response.status(), 200, "{:?}", response.body());
    assert!(
        response.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .contains("\"API_USER\";r=2")
    );
    let seen = s.origin_saw("/api/items");
    assert_eq!(seen.headers()["x-auth-sub"], "alice");
    assert!(!seen.headers().contains_key("authorization"));
    let forwarded = std::str::from_utf8(seen.body()).unwrap();
    assert!(!forwarded.contains("ann@example.com"), "{forwarded}");
    assert!(!forwarded.contains("203.0.113.9"), "{forwarded}");
    let forwarded: Value = serde_json::from_str(forwarded).unwrap();
    assert!(forwarded["user"]["email"].is_string());
}

#[test]
fn the_rate_limiter_keys_on_the_verified_subject_not_a_header() {
    let s = setup();
    let get = |sub: &str, spoof: &str| {
        let bearer = format!("Bearer {}", token(sub, &[]));
        s.serve(request(
            "GET",
            "/api/items",
            &[("authorization", &bearer), ("x-auth-sub", spoof)],
            "",
        ))
        .status()
        .as_u16()
    };
    // Alice's three, whatever she claims in the header; then Bob still has his.
    let alice: Vec<u16> = (0..4).map(|i| get("alice", &format!("spoof{i}"))).collect();
    assert_eq!(alice, [200, 200, 200, 429]);
    assert_eq!(get("bob", "alice"), 200);
}

#[test]
fn answers_are_anonymized_on_the_way_back_when_the_route_says_so() {
    let s = setup();
    let response = s.serve(request(
        "GET",
        "/profile",
        &[("accept-encoding", "gzip")],
        "",
    ));
    assert_eq!(response.status(), 200);
    let text = std::str::from_utf8(response.body()).unwrap();
    assert!(
        !text.contains("ann@example.com") && !text.contains("203.0.113.9"),
        "{text}"
    );
    assert!(text.contains("Ann"), "{text}");
    assert!(
        !s.origin_saw("/profile")
            .headers()
            .contains_key("accept-encoding")
    );
    // An encoded answer cannot be read, so it is not passed.
    let mut gzipped = json_response(json!({ "email": "ann@example.com" }));
    gzipped
        .headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    s.platform.http.route(&format!("{ORIGIN}/profile"), gzipped);
    let refused = s.serve(request("GET", "/profile", &[], ""));
    assert_eq!(refused.status(), 502);
    assert!(
        !std::str::from_utf8(refused.body())
            .unwrap()
            .contains("ann@")
    );
}

#[test]
fn mounted_functions_see_the_path_under_their_mount_and_metrics_count_every_outcome() {
    let s = setup();
    let added = s.serve(request("POST", "/counter/counters/demo?by=5", &[], ""));
    assert_eq!(added.status(), 200);
    assert_eq!(Setup::problem(&added)["value"], 5);
    assert_eq!(s.serve(request("GET", "/api/items", &[], "")).status(), 401);
    for _ in 0..6 {
        s.serve(request("POST", "/auth/login", &[], ""));
    }
    block_on(flush_metrics(
        &s.gateway,
        &s.platform.services(),
        None,
        1,
        true,
    ));
    let snapshot = s.serve(request("GET", "/_metrics/snapshot", &[], ""));
    assert_eq!(snapshot.status(), 200, "{:?}", snapshot.body());
    let snapshot: Value = serde_json::from_slice(snapshot.body()).unwrap();
    let text = snapshot.to_string();
    for route in ["/counter/counters/{key}", "/api/**", "/auth/login"] {
        assert!(text.contains(route), "{route} in {text}");
    }
    let login = snapshot["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "/auth/login")
        .unwrap();
    assert_eq!(login["requests"], 6, "{login}");
    assert_eq!(login["rate_limited"], 1, "{login}");
}

#[test]
fn policy_errors_name_the_field() {
    let bad = policy().replace("limit = 3", "limit = 0");
    let error = instantiate::<Gateway>(&config(&bad))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("rate_limit.scopes[1].limit"), "{error}");
    let bad = policy().replace("mount = \"counter\"", "mount = \"countr\"");
    let error = instantiate::<Gateway>(&config(&bad))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("gateway.routes[1].mount: \"countr\" must name one of"),
        "{error}"
    );
    let missing = Config::new(Gateway::DEFAULT_POLICY).with_var("POLICY", policy());
    let error = instantiate::<Gateway>(&missing).err().unwrap().to_string();
    assert!(
        error.contains("RATE_LIMIT_HASH_KEY") || error.contains("secret"),
        "{error}"
    );
}

#[test]
fn a_failing_origin_opens_its_breaker_and_a_good_probe_closes_it() {
    use edge_core::memory::Outcome;
    use std::time::Duration;
    let s = setup();
    let url = format!("{ORIGIN}/plain/x");
    // The breaker judges the last 10 requests: 5 good, then 5 failures.
    // POSTs are tried once: each failure is one call and one 502.
    for _ in 0..5 {
        assert_eq!(s.serve(request("POST", "/plain/x", &[], "")).status(), 200);
    }
    s.platform.http.script(&url, vec![Outcome::Fail; 5]);
    for _ in 0..5 {
        let down = s.serve(request("POST", "/plain/x", &[], ""));
        assert_eq!(down.status(), 502);
        assert_eq!(
            Setup::problem(&down)["type"],
            "urn:edge-functions:problem:origin-unavailable"
        );
    }
    assert_eq!(s.platform.http.calls(&url), 10);
    // Open: answered without trying the origin.
    let open = s.serve(request("POST", "/plain/x", &[], ""));
    assert_eq!(open.status(), 503);
    assert_eq!(
        Setup::problem(&open)["type"],
        "urn:edge-functions:problem:origin-circuit-open"
    );
    assert!(open.headers().contains_key("retry-after"));
    assert_eq!(s.platform.http.calls(&url), 10);
    let health = s.serve(request("GET", "/health", &[], ""));
    let health: Value = serde_json::from_slice(health.body()).unwrap();
    assert_eq!(health["status"], "warn", "{health}");
    assert_eq!(
        health["checks"][format!("origin {ORIGIN}")]["state"],
        "open"
    );
    // After 30 s one probe goes through; it succeeds, the breaker closes.
    s.platform.clock.advance(Duration::from_secs(31));
    let probe = s.serve(request("POST", "/plain/x", &[], ""));
    assert_eq!(probe.status(), 200);
    assert_eq!(s.platform.http.calls(&url), 11);
    let health = s.serve(request("GET", "/health", &[], ""));
    let health: Value = serde_json::from_slice(health.body()).unwrap();
    assert_eq!(health["status"], "pass", "{health}");
    assert_eq!(
        health["checks"][format!("origin {ORIGIN}")]["state"],
        "closed"
    );
}

#[test]
fn a_slow_origin_is_a_504_after_the_routes_timeout() {
    use edge_core::memory::Outcome;
    use std::time::Duration;
    let policy = policy().replace(
        "route = \"POST /auth/login\"\nrate_limit = true",
        "route = \"POST /auth/login\"\nrate_limit = true\ntimeout = \"2s\"",
    );
    let s = setup();
    let gateway = instantiate::<Gateway>(&config(&policy));
    let url = format!("{ORIGIN}/auth/login");
    s.platform
        .http
        .script(&url, [Outcome::Delay(Duration::from_secs(5))]);
    let slow = block_on(
        s.platform
            .serve(&gateway, request("POST", "/auth/login", &[], "")),
    );
    assert_eq!(slow.status(), 504);
    assert_eq!(
        Setup::problem(&slow)["type"],
        "urn:edge-functions:problem:origin-timeout"
    );
}

/// Bodies past the buffered limit stream: the head phase decides before
/// the body is read (refusals carry the stages' headers), the anonymizer
/// rewrites the body chunk by chunk, the origin's answer gets the
/// `RateLimit` fields. Routes that read bodies whole say so (413).
#[test]
fn a_streamed_body_passes_the_same_stages_as_a_buffered_one() {
    let s = setup();
    let gateway = s.gateway.as_ref().unwrap();
    let services = s.platform.services();
    let ctx = Context::named(&services, "gateway", "stream-test");
    let ndjson = [("content-type", "application/x-ndjson")];
    let plan = |path: &str, headers: &[(&str, &str)]| {
        let mut head = request("POST", path, headers, "").into_parts().0;
        let plan = block_on(gateway.stream_plan(&mut head, &ctx));
        (plan, head)
    };

    let (refused, _) = plan("/api/items", &ndjson);
    let refused = refused.err().unwrap().into_response(None);
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));

    let bearer = format!("Bearer {}", token("alice", &[]));
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-auth-sub", "mallory"),
        ("content-type", "application/x-ndjson"),
    ];
    let (streamed, head) = plan("/api/items", &headers);
    let mut streamed = streamed.unwrap().expect("a route to an origin streams");
    assert_eq!(streamed.origin.as_deref(), Some(ORIGIN));
    assert_eq!(head.headers["x-auth-sub"], "alice");
    let line = json!({ "email": "ann@example.com", "note": "from 203.0.113.9" }).to_string();
    let body: String = (0..50).map(|_| format!("{line}\n")).collect();
    let mut out = Vec::new();
    for chunk in body.as_bytes().chunks(7) {
        streamed.transform.push(chunk, &mut out).unwrap();
    }
    streamed.transform.finish(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.lines().count(), 50);
    assert!(
        !out.contains("ann@example.com") && !out.contains("203.0.113.9"),
        "{out}"
    );
    let mut answer = http::HeaderMap::new();
    (streamed.answer_headers.take().unwrap())(http::StatusCode::OK, &mut answer, &ctx);
    assert!(
        answer["ratelimit"]
            .to_str()
            .unwrap()
            .contains("\"API_USER\";r=2"),
        "{answer:?}"
    );

    // Alice's limit holds across streamed requests.
    for _ in 0..2 {
        assert!(plan("/api/items", &headers).0.is_ok());
    }
    let limited = plan("/api/items", &headers).0.err().unwrap();
    let limited = limited.into_response(None);
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("ratelimit"));

    assert!(
        plan("/profile", &ndjson).0.unwrap().is_none(),
        "answers anonymized"
    );
    assert!(plan("/counter/x", &ndjson).0.unwrap().is_none(), "mounted");
    let nowhere = plan("/nowhere", &ndjson).0.err().unwrap();
    assert_eq!(nowhere.status(), 404);
}
