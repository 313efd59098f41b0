//! Forwarding through a whole function on the test platform: a fake clock
//! that the fake origin's delays and the backoff sleeps move, seeded
//! randomness, scripted origin outcomes.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::executor::block_on;
use serde_json::Value;

use super::*;
use crate::function::{EdgeFunction, Instance};
use crate::memory::{Outcome, TestPlatform};
use crate::model::ClientAddr;
use crate::policy::{Config, ConfigError, Policy, parse_policy};

const BASE: &str = "https://origin.test/base/";
const ITEMS: &str = "https://origin.test/base/items";
/// The origin's check on `/health` (named by the origin, without the
/// trailing `/`).
const HEALTH_CHECK: &str = "origin https://origin.test/base";
const T0: u64 = 1_795_305_600_000;

/// A function that forwards everything to [`BASE`] and reports the
/// breaker on `/health`.
struct Proxy(OriginClient);

#[async_trait(?Send)]
impl EdgeFunction for Proxy {
    const NAME: &'static str = "proxy";
    const VERSION: &'static str = "0.0.0";
    const DEFAULT_POLICY: &'static str = "";

    fn configure(_config: &Config) -> Result<Self, ConfigError> {
        let origin = Origin::parse(BASE).map_err(|e| ConfigError::Invalid(vec![e.at("origin")]))?;
        Ok(Proxy(OriginClient::new(origin, OriginSettings::default())))
    }

    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        self.0.forward(req, ctx).await
    }

    fn origins(&self) -> Vec<&OriginClient> {
        vec![&self.0]
    }
}

/// The same through the old string-taking [`forward`].
struct Legacy;

#[async_trait(?Send)]
impl EdgeFunction for Legacy {
    const NAME: &'static str = "legacy";
    const VERSION: &'static str = "0.0.0";
    const DEFAULT_POLICY: &'static str = "";

    fn configure(_config: &Config) -> Result<Self, ConfigError> {
        Ok(Legacy)
    }

    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        forward(BASE, req, ctx).await
    }
}

fn proxy(settings: OriginSettings) -> Instance<Proxy> {
    let origin = Origin::parse(BASE).unwrap();
    Ok(Proxy(OriginClient::new(origin, settings)))
}

fn platform() -> TestPlatform {
    TestPlatform::at(Timestamp::from_millis(T0))
}

fn request(method: &str, path: &str) -> Request {
    http::Request::builder()
        .method(method)
        .uri(format!("https://gw.example{path}"))
        .body(Bytes::from_static(b"payload"))
        .unwrap()
}

fn ok() -> Response {
    Response::new(Bytes::from_static(b"from origin"))
}

fn body(response: &Response) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

fn kind(response: &Response) -> String {
    body(response)["type"]
        .as_str()
        .unwrap()
        .trim_start_matches(crate::problem::TYPE_PREFIX)
        .to_owned()
}

fn elapsed(p: &TestPlatform) -> Duration {
    use crate::platform::Clock;
    p.clock.now().0 - Duration::from_millis(T0)
}

fn serve<F: EdgeFunction>(p: &TestPlatform, f: &Instance<F>, req: Request) -> Response {
    block_on(p.serve(f, req))
}

#[derive(Debug, serde::Deserialize)]
struct Doc {
    gateway: Gateway,
}
#[derive(Debug, serde::Deserialize)]
struct Gateway {
    routes: Vec<Route>,
}
#[derive(Debug, serde::Deserialize)]
struct Route {
    origin: Origin,
    #[serde(flatten)]
    settings: OriginSettings,
}
impl Policy for Doc {
    fn validate(&self, v: &mut Validator) {
        v.field("gateway", |v| {
            v.field("routes", |v| {
                for (i, route) in self.gateway.routes.iter().enumerate() {
                    v.index(i, |v| route.settings.validate(v));
                }
            })
        });
    }
}

#[test]
fn origins_parse_and_bad_ones_name_the_field() {
    let origin = Origin::parse("HTTPS://api.test:8443/v1/").unwrap();
    assert_eq!(
        (origin.scheme(), origin.authority(), origin.prefix()),
        ("https", "api.test:8443", "/v1")
    );
    assert_eq!(origin.to_string(), "https://api.test:8443/v1");
    assert_eq!(
        origin.url_for("/items?x=1"),
        "https://api.test:8443/v1/items?x=1"
    );
    assert_eq!(
        Origin::parse("http://a.test").unwrap().url_for("/"),
        "http://a.test/"
    );
    for bad in [
        "ftp://x",
        "https://",
        "https:///path",
        "a.test/path",
        "/path",
        "https://a.test/?q=1",
        "https://a.test/#top",
        "https://a.test:port",
        "",
    ] {
        let err = Origin::parse(bad).unwrap_err();
        assert!(
            matches!(err, OriginError::NotAnOrigin { .. }),
            "{bad}: {err}"
        );
    }
    let err = Origin::parse("https://user:hunter2@a.test/x").unwrap_err();
    assert!(matches!(err, OriginError::Credentials { .. }));
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("[REDACTED]@a.test/x"), "{err}");

    let policy = |third: &str| {
        format!(
            "[[gateway.routes]]\norigin = \"https://a.test\"\n\
             [[gateway.routes]]\norigin = \"https://b.test/v2\"\ntimeout = \"5s\"\nretries = 0\n\
             [[gateway.routes]]\norigin = \"{third}\"\n"
        )
    };
    let doc = parse_policy::<Doc>(&policy("http://c.test:8080")).unwrap();
    let routes = &doc.gateway.routes;
    assert_eq!(routes[0].settings, OriginSettings::default());
    assert_eq!(routes[1].settings.timeout.0, Duration::from_secs(5));
    assert_eq!(routes[1].settings.retries, 0);
    assert_eq!(routes[2].origin.authority(), "c.test:8080");
    let rule = "\"ftp://x\" must be an http(s) URL with a host and no query or fragment";
    let err = parse_policy::<Doc>(&policy("ftp://x"))
        .unwrap_err()
        .to_string();
    // TOML errors quote the line between the path and the message.
    assert!(
        err.starts_with("policy: gateway.routes[2].origin: ") && err.ends_with(rule),
        "{err}"
    );
    let json = r#"{"gateway": {"routes": [{"origin": "https://a.test"}, {"origin": "ftp://x"}]}}"#;
    let err = parse_policy::<Doc>(json).unwrap_err().to_string();
    let expected = format!("policy: gateway.routes[1].origin: {rule}");
    assert!(err.starts_with(&expected), "{err}");
    let err = parse_policy::<Doc>(&policy("https://c.test\"\ntimeout = \"0s"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "policy: gateway.routes[2].timeout: \"0s\" must be > 0 and at most 5m"
    );

    // A policy keeping its origin as a string checks it the same way.
    let mut v = Validator::default();
    v.field("rate_limit", |v| {
        assert!(Origin::check_field(v, "origin", "https://a.test?k=1").is_none());
        assert!(Origin::check_field(v, "origin", "https://a.test").is_some());
    });
    let errors = v.into_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "rate_limit.origin: \"https://a.test?k=1\" must be an http(s) URL with a host and \
         no query or fragment"
    );
}

#[test]
fn an_unreachable_origin_is_502_after_bounded_jittered_retries() {
    let p = platform();
    let f = proxy(OriginSettings::default());
    let r = serve(&p, &f, request("GET", "/items?token=s3cret"));
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(kind(&r), "origin-unavailable");
    assert_eq!(body(&r)["attempts"], 3);
    let text = String::from_utf8_lossy(r.body()).into_owned();
    for secret in ["origin.test", "s3cret", "/base"] {
        assert!(!text.contains(secret), "{text}");
    }
    assert_eq!(p.http.calls(ITEMS), 1 + DEFAULT_RETRIES as usize);
    let sleeps = p.http.sleeps();
    assert_eq!(sleeps.len(), 2);
    assert!(
        (Duration::from_millis(50)..=Duration::from_millis(100)).contains(&sleeps[0]),
        "{sleeps:?}"
    );
    assert!(
        (Duration::from_millis(100)..=Duration::from_millis(200)).contains(&sleeps[1]),
        "{sleeps:?}"
    );
    assert_eq!(elapsed(&p), sleeps[0] + sleeps[1], "no other time passed");
    let logs = p.logs.lines().join("\n");
    assert_eq!(logs.matches("origin unreachable").count(), 3, "{logs}");
}

#[test]
fn a_slow_origin_is_504_within_the_deadline() {
    // One attempt taking the whole budget: no time left to retry.
    let p = platform();
    p.http.route(ITEMS, ok());
    p.http
        .script(ITEMS, [Outcome::Delay(Duration::from_secs(31))]);
    let r = serve(
        &p,
        &proxy(OriginSettings::default()),
        request("GET", "/items?token=s3cret"),
    );
    assert_eq!(r.status(), 504);
    assert_eq!(kind(&r), "origin-timeout");
    assert_eq!(body(&r)["detail"], "the origin did not answer within 30s");
    assert!(!String::from_utf8_lossy(r.body()).contains("origin.test"));
    assert_eq!(p.http.calls(ITEMS), 1);
    assert_eq!(elapsed(&p), DEFAULT_TIMEOUT);

    // A slow failure, then a retry that gets only what is left.
    let p = platform();
    let settings = OriginSettings {
        timeout: PolicyDuration(Duration::from_secs(10)),
        ..OriginSettings::default()
    };
    p.http.script(
        ITEMS,
        [
            Outcome::Delay(Duration::from_secs(9)),
            Outcome::Delay(Duration::from_secs(9)),
        ],
    );
    let r = serve(&p, &proxy(settings), request("GET", "/items"));
    assert_eq!(r.status(), 504);
    assert_eq!(body(&r)["detail"], "the origin did not answer within 10s");
    assert_eq!(p.http.calls(ITEMS), 2);
    assert_eq!(elapsed(&p), Duration::from_secs(10), "the deadline holds");

    // Slow but in time: the answer.
    let p = platform();
    p.http.route(ITEMS, ok());
    p.http
        .script(ITEMS, [Outcome::Delay(Duration::from_secs(29))]);
    let r = serve(
        &p,
        &proxy(OriginSettings::default()),
        request("GET", "/items"),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_ref(), b"from origin");
}

#[test]
fn only_idempotent_methods_are_retried() {
    // A fresh breaker each time: these failures add up to open one.
    let fresh = || proxy(OriginSettings::default());
    for method in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"] {
        let (p, f) = (platform(), fresh());
        assert_eq!(serve(&p, &f, request(method, "/items")).status(), 502);
        assert_eq!(p.http.calls(ITEMS), 3, "{method}");
    }
    for method in ["POST", "PATCH"] {
        let (p, f) = (platform(), fresh());
        assert_eq!(serve(&p, &f, request(method, "/items")).status(), 502);
        assert_eq!(p.http.calls(ITEMS), 1, "{method}");
        assert!(p.http.sleeps().is_empty());
    }
    let p = platform();
    let none = proxy(OriginSettings {
        retries: 0,
        ..OriginSettings::default()
    });
    assert_eq!(serve(&p, &none, request("GET", "/items")).status(), 502);
    assert_eq!(p.http.calls(ITEMS), 1);

    // A failure, then "unavailable", then the answer; the body goes every time.
    let (p, f) = (platform(), fresh());
    p.http.route(ITEMS, ok());
    p.http.script(
        ITEMS,
        [
            Outcome::Fail,
            Outcome::Status(StatusCode::SERVICE_UNAVAILABLE),
        ],
    );
    let r = serve(&p, &f, request("PUT", "/items"));
    assert_eq!(r.status(), 200);
    assert_eq!(p.http.calls(ITEMS), 3);
    assert_eq!(
        p.http.last_request(ITEMS).unwrap().body().as_ref(),
        b"payload"
    );

    // Not retried, the origin's own answer passes through.
    let p = platform();
    p.http
        .script(ITEMS, [Outcome::Status(StatusCode::SERVICE_UNAVAILABLE)]);
    let r = serve(&p, &f, request("POST", "/items"));
    assert_eq!(r.status(), 503);
    assert!(r.body().is_empty(), "not a problem of ours");
    // An application error is an answer, not a failure: never retried.
    let p = platform();
    p.http
        .script(ITEMS, [Outcome::Status(StatusCode::INTERNAL_SERVER_ERROR)]);
    assert_eq!(serve(&p, &f, request("GET", "/items")).status(), 500);
    assert_eq!(p.http.calls(ITEMS), 1);
}

#[test]
fn the_breaker_opens_refuses_half_opens_and_closes() {
    let p = platform();
    p.http.route(ITEMS, ok());
    let f = proxy(OriginSettings::default());
    let client = &f.as_ref().unwrap().0;
    let post = || request("POST", "/items");
    let health = |p: &TestPlatform| {
        let r = serve(p, &f, request("GET", "/health"));
        (r.status(), body(&r)["checks"][HEALTH_CHECK].clone())
    };
    let now = |p: &TestPlatform| {
        use crate::platform::Clock;
        p.clock.now()
    };

    // Five answers and four failures: nine seen, closed.
    p.http.script(ITEMS, [Outcome::Canned; 5]);
    p.http.script(ITEMS, [Outcome::Fail; 4]);
    for expected in [200, 200, 200, 200, 200, 502, 502, 502, 502] {
        assert_eq!(serve(&p, &f, post()).status(), expected);
    }
    let snapshot = client.breaker(now(&p));
    assert_eq!(
        (snapshot.state, snapshot.requests, snapshot.failures),
        (BreakerState::Closed, 9, 4)
    );
    assert_eq!(health(&p).0, 200);

    // The fifth failure in ten opens it.
    p.http.script(ITEMS, [Outcome::Fail]);
    assert_eq!(serve(&p, &f, post()).status(), 502);
    assert_eq!(client.breaker(now(&p)).state, BreakerState::Open);
    assert_eq!(p.http.calls(ITEMS), 10);
    assert!(p.logs.lines().join("\n").contains("origin circuit opened"));

    // Open: answered without trying the origin.
    let r = serve(&p, &f, request("GET", "/items"));
    assert_eq!(r.status(), 503);
    assert_eq!(kind(&r), "origin-circuit-open");
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(p.http.calls(ITEMS), 10);
    let (status, check) = health(&p);
    assert_eq!(status, 200);
    assert_eq!(check["status"], "warn");
    assert_eq!(check["state"], "open");
    assert_eq!(check["retry_after_secs"], 30, "{check}");
    p.clock.advance(Duration::from_secs(10));
    let r = serve(&p, &f, post());
    assert_eq!(r.headers()["retry-after"], "20");
    assert_eq!(p.http.calls(ITEMS), 10);

    // Half-open after 30 s: one probe, never retried; failing, it opens again.
    p.clock.advance(Duration::from_secs(20));
    assert_eq!(client.breaker(now(&p)).state, BreakerState::HalfOpen);
    assert_eq!(health(&p).0, 200);
    p.http.script(ITEMS, [Outcome::Fail, Outcome::Canned]);
    assert_eq!(serve(&p, &f, request("GET", "/items")).status(), 502);
    assert_eq!(p.http.calls(ITEMS), 11, "the probe alone");
    let r = serve(&p, &f, post());
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "30");

    // The next probe succeeds: closed, with a fresh window.
    p.clock.advance(Duration::from_secs(30));
    let r = serve(&p, &f, request("GET", "/items"));
    assert_eq!(r.status(), 200);
    assert_eq!(p.http.calls(ITEMS), 12);
    let snapshot = client.breaker(now(&p));
    assert_eq!(
        (snapshot.state, snapshot.requests),
        (BreakerState::Closed, 0)
    );
    assert!(p.logs.lines().join("\n").contains("origin circuit closed"));
    assert_eq!(serve(&p, &f, post()).status(), 200);
}

#[test]
fn retries_stop_when_the_breaker_opens() {
    let p = platform();
    let f = proxy(OriginSettings::default());
    p.http.route(ITEMS, ok());
    p.http.script(ITEMS, [Outcome::Fail; 9]);
    for _ in 0..9 {
        assert_eq!(serve(&p, &f, request("POST", "/items")).status(), 502);
    }
    // The first failure of this GET is the tenth: open, so no retry.
    p.http.script(ITEMS, [Outcome::Fail]);
    assert_eq!(serve(&p, &f, request("GET", "/items")).status(), 502);
    assert_eq!(p.http.calls(ITEMS), 10);
    assert!(p.http.sleeps().is_empty());
}

/// A W3C `traceparent` as the specification draws it.
fn well_formed(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && parts[1] != "0".repeat(32)
        && hex(parts[2], 16)
        && parts[2] != "0".repeat(16)
        && hex(parts[3], 2)
}

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn the_origin_sees_end_to_end_headers_the_client_and_the_trace() {
    let p = platform();
    p.http.route(ITEMS, ok());
    let mut req = request("GET", "/items?x=1");
    for (name, value) in [
        ("connection", "keep-alive, X-Hop-Custom"),
        ("keep-alive", "timeout=5"),
        ("x-hop-custom", "1"),
        ("te", "trailers"),
        ("upgrade", "h2c"),
        ("proxy-authorization", "Basic eDp5"),
        ("host", "gw.example"),
        ("spin-full-url", "https://gw.example/items?x=1"),
        ("spin-path-info", "/items"),
        ("spin-matched-route", "/..."),
        ("spin-client-addr", "[2001:db8::1]:4711"),
        ("cf-connecting-ip", "2001:db8::1"),
        ("cf-ray", "8f00-ZRH"),
        ("cf-ipcountry", "CH"),
        ("cf-visitor", "{\"scheme\":\"https\"}"),
        ("x-real-ip", "203.0.113.7"),
        ("forwarded", "for=192.0.2.9;proto=http"),
        ("x-forwarded-for", "192.0.2.9"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "spoofed.example"),
        ("traceparent", TRACEPARENT),
        ("tracestate", "congo=t61rcWkgMzE"),
        ("x-correlation-id", "corr-1"),
        ("x-keep", "yes"),
        ("accept", "text/plain"),
    ] {
        req.headers_mut()
            .append(name, HeaderValue::from_static(value));
    }
    req.extensions_mut()
        .insert(ClientAddr("2001:db8::1".parse().unwrap()));
    assert_eq!(
        serve(&p, &proxy(OriginSettings::default()), req).status(),
        200
    );
    let seen = p.http.last_request(ITEMS).unwrap();
    assert_eq!(seen.uri().to_string(), "https://origin.test/base/items?x=1");
    let h = seen.headers();
    for gone in [
        "connection",
        "keep-alive",
        "x-hop-custom",
        "te",
        "upgrade",
        "proxy-authorization",
        "host",
        "x-real-ip",
    ] {
        assert!(!h.contains_key(gone), "{gone} forwarded");
    }
    assert!(
        h.keys()
            .all(|n| !n.as_str().starts_with("spin-") && !n.as_str().starts_with("cf-")),
        "{h:?}"
    );
    assert_eq!(h["x-keep"], "yes");
    assert_eq!(h["accept"], "text/plain");
    assert_eq!(
        h["forwarded"],
        "for=192.0.2.9;proto=http, for=\"[2001:db8::1]\";proto=https;host=gw.example"
    );
    assert_eq!(h["x-forwarded-for"], "192.0.2.9, 2001:db8::1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "gw.example");
    assert_eq!(h["x-correlation-id"], "corr-1");
    assert_eq!(h["tracestate"], "congo=t61rcWkgMzE");
    let traceparent = h["traceparent"].to_str().unwrap();
    assert!(well_formed(traceparent), "{traceparent}");
    let (sent, came) = (
        TraceParent::parse(traceparent).unwrap(),
        TraceParent::parse(TRACEPARENT).unwrap(),
    );
    assert_eq!((sent.trace_id, sent.flags), (came.trace_id, came.flags));
    assert_ne!(sent.parent_id, came.parent_id, "a new span id");
}

#[test]
fn a_bad_or_missing_traceparent_is_replaced_and_its_tracestate_dropped() {
    let f = proxy(OriginSettings::default());
    let mut trace_ids = Vec::new();
    for incoming in [
        Some("00-00000000000000000000000000000000-b7ad6b7169203331-01"),
        Some("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"),
        Some("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        Some("garbage"),
        None,
    ] {
        let p = platform();
        p.http.route(ITEMS, ok());
        let mut req = request("GET", "/items");
        if let Some(value) = incoming {
            req.headers_mut()
                .insert("traceparent", HeaderValue::from_static(value));
        }
        req.headers_mut()
            .insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
        let r = serve(&p, &f, req);
        let seen = p.http.last_request(ITEMS).unwrap();
        let traceparent = seen.headers()["traceparent"].to_str().unwrap().to_owned();
        assert!(well_formed(&traceparent), "{incoming:?}: {traceparent}");
        assert!(!traceparent.contains("0af7651916cd43dd8448eb211c80319c"));
        assert!(!traceparent.ends_with("-01"), "a fresh trace: not sampled");
        assert!(seen.headers().get("tracestate").is_none(), "{incoming:?}");
        // The generated correlation id travels too.
        assert_eq!(
            seen.headers()["x-correlation-id"],
            r.headers()["x-correlation-id"]
        );
        trace_ids.push(traceparent[3..35].to_owned());
    }
    // Two traceparent headers make neither valid.
    let p = platform();
    p.http.route(ITEMS, ok());
    let mut req = request("GET", "/items");
    for _ in 0..2 {
        req.headers_mut()
            .append("traceparent", HeaderValue::from_static(TRACEPARENT));
    }
    serve(&p, &f, req);
    let seen = p.http.last_request(ITEMS).unwrap();
    assert!(
        !seen.headers()["traceparent"]
            .to_str()
            .unwrap()
            .contains("0af7651916cd43dd8448eb211c80319c")
    );
    assert_eq!(seen.headers().get_all("traceparent").iter().count(), 1);
}

#[test]
fn on_spin_the_scheme_comes_from_spin_full_url_and_the_host_from_host() {
    let p = platform();
    p.http.route(ITEMS, ok());
    // Spin's glue passes the path alone.
    let mut req = http::Request::builder()
        .uri("/items")
        .header("host", "gw.example:3000")
        .header("spin-full-url", "https://gw.example:3000/rl/items")
        .header("spin-path-info", "/items")
        .header("spin-client-addr", "192.0.2.1:5000")
        .body(Bytes::new())
        .unwrap();
    req.extensions_mut()
        .insert(ClientAddr("192.0.2.1".parse().unwrap()));
    serve(&p, &proxy(OriginSettings::default()), req);
    let seen = p.http.last_request(ITEMS).unwrap();
    let h = seen.headers();
    assert_eq!(
        h["forwarded"],
        "for=192.0.2.1;proto=https;host=\"gw.example:3000\""
    );
    assert_eq!(h["x-forwarded-for"], "192.0.2.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "gw.example:3000");

    // Without an address or a scheme: `for=unknown`, no proto, and a
    // client's own X-Forwarded-Proto is not passed on.
    let p = platform();
    p.http.route(ITEMS, ok());
    let req = http::Request::builder()
        .uri("/items")
        .header("x-forwarded-proto", "https")
        .body(Bytes::new())
        .unwrap();
    serve(&p, &proxy(OriginSettings::default()), req);
    let seen = p.http.last_request(ITEMS).unwrap();
    assert_eq!(seen.headers()["forwarded"], "for=unknown");
    assert!(seen.headers().get("x-forwarded-proto").is_none());
    assert!(seen.headers().get("x-forwarded-for").is_none());
}

#[test]
fn a_client_cloudflare_already_named_is_not_appended_twice() {
    let p = platform();
    p.http.route(ITEMS, ok());
    let mut req = request("GET", "/items");
    req.headers_mut().insert(
        "x-forwarded-for",
        HeaderValue::from_static("198.51.100.1, 192.0.2.1"),
    );
    req.extensions_mut()
        .insert(ClientAddr("192.0.2.1".parse().unwrap()));
    serve(&p, &proxy(OriginSettings::default()), req);
    let seen = p.http.last_request(ITEMS).unwrap();
    assert_eq!(seen.headers()["x-forwarded-for"], "198.51.100.1, 192.0.2.1");
}

#[test]
fn hop_by_hop_headers_of_the_answer_stay_behind() {
    let p = platform();
    let mut answer = ok();
    for (name, value) in [
        ("connection", "x-hop-resp"),
        ("x-hop-resp", "1"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("x-origin", "yes"),
    ] {
        answer
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    p.http.route(ITEMS, answer);
    let r = serve(
        &p,
        &proxy(OriginSettings::default()),
        request("GET", "/items"),
    );
    assert_eq!(r.status(), 200);
    for gone in [
        "connection",
        "x-hop-resp",
        "keep-alive",
        "transfer-encoding",
    ] {
        assert!(!r.headers().contains_key(gone), "{gone}");
    }
    assert_eq!(r.headers()["x-origin"], "yes");
}

#[test]
fn the_string_taking_forward_still_works() {
    let p = platform();
    p.http.route(ITEMS, ok());
    let f: Instance<Legacy> = Ok(Legacy);
    let r = serve(&p, &f, request("POST", "/items?x=1"));
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_ref(), b"from origin");
    let seen = p.http.last_request(ITEMS).unwrap();
    assert_eq!(seen.uri().query(), Some("x=1"));
    assert_eq!(seen.method(), Method::POST);
    assert_eq!(seen.body().as_ref(), b"payload");
    assert!(seen.headers().contains_key("traceparent"));
    // Unreachable: 502 after retries, as any origin client.
    let r = serve(&p, &f, request("GET", "/other"));
    assert_eq!(r.status(), 502);
    assert_eq!(p.http.calls("https://origin.test/base/other"), 3);
}

// ---------------------------------------------------------------------
// Where instances do not persist (Spin): the breaker in the store.

const BREAKER_KEY: &str = "edge:breaker:https://origin.test/base";

/// The services of `p` as Spin's: a fresh instance per request, so the
/// breaker is the store's.
fn on_spin(p: &TestPlatform) -> crate::function::Services<'_> {
    crate::function::Services {
        runtime: crate::model::Runtime::Spin,
        ..p.services()
    }
}

/// Serves `req` as Spin does: a new instance (and so a new
/// [`OriginClient`]) for every request.
fn serve_on_spin(p: &TestPlatform, req: Request) -> Response {
    let fresh = proxy(OriginSettings::default());
    block_on(crate::serve(&fresh, req, &on_spin(p)))
}

/// The stored breaker record.
fn record(p: &TestPlatform) -> Value {
    use crate::platform::KeyValueStore;
    let bytes = block_on(p.store.get(BREAKER_KEY)).unwrap().unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// How many store operations `f` makes.
fn store_ops<T>(p: &TestPlatform, f: impl FnOnce() -> T) -> (T, usize) {
    let before = p.store.calls();
    let result = f();
    (result, p.store.calls() - before)
}

#[test]
fn on_spin_fresh_instances_share_one_breaker_through_the_store() {
    let p = platform();
    p.http.route(ITEMS, ok());
    let post = || request("POST", "/items");

    // Five answers, then four failures: nine seen, closed. Each request
    // reads the record once and writes its outcome once.
    p.http.script(ITEMS, [Outcome::Canned; 5]);
    p.http.script(ITEMS, [Outcome::Fail; 4]);
    for expected in [200, 200, 200, 200, 200, 502, 502, 502, 502] {
        let (r, ops) = store_ops(&p, || serve_on_spin(&p, post()));
        assert_eq!(r.status(), expected);
        assert_eq!(ops, 2, "a get and a compare-and-swap");
    }
    assert_eq!(
        record(&p),
        serde_json::json!({"epoch": 0, "window": "sssssffff", "mode": "closed"})
    );

    // The fifth failure in ten, on yet another instance, opens it.
    p.http.script(ITEMS, [Outcome::Fail]);
    assert_eq!(serve_on_spin(&p, post()).status(), 502);
    assert_eq!(p.http.calls(ITEMS), 10);
    assert_eq!(record(&p)["mode"], "open");
    assert!(p.logs.lines().join("\n").contains("origin circuit opened"));

    // Open: every new instance answers without trying the origin, after
    // one read.
    let (r, ops) = store_ops(&p, || serve_on_spin(&p, request("GET", "/items")));
    assert_eq!(r.status(), 503);
    assert_eq!(kind(&r), "origin-circuit-open");
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(ops, 1);
    assert_eq!(p.http.calls(ITEMS), 10);
    // The health check of a fresh instance reads the same record.
    let health = serve_on_spin(&p, request("GET", "/health"));
    assert_eq!(health.status(), 200);
    let check = &body(&health)["checks"][HEALTH_CHECK];
    assert_eq!(
        (&check["state"], &check["retry_after_secs"]),
        (&"open".into(), &30.into())
    );
    p.clock.advance(Duration::from_secs(10));
    let r = serve_on_spin(&p, post());
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "20");
    assert_eq!(p.http.calls(ITEMS), 10);

    // Half-open after 30 s: one probe (never retried); failing, it opens
    // the breaker again for every instance.
    p.clock.advance(Duration::from_secs(20));
    p.http.script(ITEMS, [Outcome::Fail, Outcome::Canned]);
    let (r, ops) = store_ops(&p, || serve_on_spin(&p, request("GET", "/items")));
    assert_eq!(r.status(), 502);
    assert_eq!(ops, 3, "a read, the probe's lease, its outcome");
    assert_eq!(p.http.calls(ITEMS), 11, "the probe alone");
    let r = serve_on_spin(&p, post());
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "30");

    // The next probe succeeds: closed, with a fresh window.
    p.clock.advance(Duration::from_secs(30));
    assert_eq!(serve_on_spin(&p, request("GET", "/items")).status(), 200);
    assert_eq!(p.http.calls(ITEMS), 12);
    assert_eq!(
        record(&p),
        serde_json::json!({"epoch": 3, "window": "", "mode": "closed"})
    );
    assert!(p.logs.lines().join("\n").contains("origin circuit closed"));

    // A healthy origin costs one read per request once the window is
    // full of successes: an outcome that changes nothing writes nothing.
    for _ in 0..10 {
        assert_eq!(serve_on_spin(&p, post()).status(), 200);
    }
    let (r, ops) = store_ops(&p, || serve_on_spin(&p, post()));
    assert_eq!((r.status().as_u16(), ops), (200, 1));
    assert_eq!(record(&p)["window"], "ssssssssss");
}

#[test]
fn where_instances_persist_the_breaker_never_touches_the_store() {
    let p = platform();
    let f = proxy(OriginSettings::default());
    p.http.script(ITEMS, [Outcome::Fail; 10]);
    let (_, ops) = store_ops(&p, || {
        for _ in 0..11 {
            serve(&p, &f, request("POST", "/items"));
        }
    });
    assert_eq!(ops, 0);
    assert_eq!(p.http.calls(ITEMS), 10, "opened in memory");
}

/// Outbound HTTP that lets every other request run before it answers, as
/// concurrent requests on several instances do.
struct Interleaved<'a>(&'a crate::memory::StaticHttpClient);

#[async_trait(?Send)]
impl crate::platform::HttpClient for Interleaved<'_> {
    async fn send(&self, req: Request) -> Result<Response, HttpError> {
        self.send_with(req, &SendOptions::default()).await
    }
    async fn send_with(&self, req: Request, opts: &SendOptions) -> Result<Response, HttpError> {
        let mut yielded = false;
        futures::future::poll_fn(|cx| {
            if yielded {
                std::task::Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
        self.0.send_with(req, opts).await
    }
}

#[test]
fn on_spin_concurrent_outcomes_are_all_counted() {
    let p = platform();
    let http = Interleaved(&p.http);
    let services = crate::function::Services {
        http: &http,
        ..on_spin(&p)
    };
    // Ten requests on ten instances, all admitted before any fails: every
    // one writes from the same stale read, and none is lost.
    let instances: Vec<_> = (0..10).map(|_| proxy(OriginSettings::default())).collect();
    let (answers, ops) = store_ops(&p, || {
        block_on(futures::future::join_all(
            instances
                .iter()
                .map(|f| crate::serve(f, request("POST", "/items"), &services)),
        ))
    });
    assert!(answers.iter().all(|r| r.status() == 502));
    assert_eq!(p.http.calls(ITEMS), 10);
    assert_eq!(record(&p)["mode"], "open", "{}", record(&p));
    // 10 reads, 10 writes, and one retry for each write that lost a race.
    assert_eq!(ops, 10 + 10 + 9);
    assert_eq!(serve_on_spin(&p, request("POST", "/items")).status(), 503);
    assert_eq!(p.http.calls(ITEMS), 10);
}

#[test]
fn on_spin_a_store_that_fails_leaves_the_breaker_closed() {
    let p = platform();
    p.http.route(ITEMS, ok());
    p.store.set_available(false);
    p.http.script(ITEMS, [Outcome::Fail; 12]);
    for _ in 0..12 {
        assert_eq!(
            serve_on_spin(&p, request("POST", "/items")).status(),
            502,
            "tried, never refused, never a 500"
        );
    }
    assert_eq!(p.http.calls(ITEMS), 12);
    let logs = p.logs.lines().join("\n");
    assert!(
        logs.contains("origin breaker not read or written in the store; taking it as closed"),
        "{logs}"
    );
    assert_eq!(serve_on_spin(&p, request("POST", "/items")).status(), 200);

    // Back up: the breaker counts again. A record that does not decode
    // starts afresh and is replaced.
    p.store.set_available(true);
    block_on(crate::platform::KeyValueStore::set(
        &p.store,
        BREAKER_KEY,
        b"{oops",
    ))
    .unwrap();
    p.http.script(ITEMS, [Outcome::Fail]);
    assert_eq!(serve_on_spin(&p, request("POST", "/items")).status(), 502);
    assert_eq!(record(&p)["window"], "f");
    assert!(
        p.logs
            .lines()
            .join("\n")
            .contains("origin breaker record unreadable")
    );
}

/// Outbound HTTP that never answers.
struct Silent;

#[async_trait(?Send)]
impl crate::platform::HttpClient for Silent {
    async fn send(&self, _req: Request) -> Result<Response, HttpError> {
        futures::future::pending().await
    }
}

#[test]
fn on_spin_a_probe_that_never_reports_holds_its_lease_until_the_deadline() {
    use futures::FutureExt;
    let p = platform();
    p.http.route(ITEMS, ok());
    p.http.script(ITEMS, [Outcome::Fail; 10]);
    for _ in 0..10 {
        serve_on_spin(&p, request("POST", "/items"));
    }
    p.clock.advance(OPEN_FOR);
    // The probe's instance is torn down mid-request.
    let services = crate::function::Services {
        http: &Silent,
        ..on_spin(&p)
    };
    let fresh = proxy(OriginSettings::default());
    assert!(
        crate::serve(&fresh, request("GET", "/items"), &services)
            .now_or_never()
            .is_none()
    );
    assert_eq!(record(&p)["mode"], "half_open");
    let r = serve_on_spin(&p, request("GET", "/items"));
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    // After the probe's deadline (its timeout, plus a second), another
    // request probes, and closes the breaker.
    p.clock.advance(DEFAULT_TIMEOUT + PROBE_LEASE_SLACK);
    assert_eq!(serve_on_spin(&p, request("GET", "/items")).status(), 200);
    assert_eq!(record(&p)["mode"], "closed");
}
