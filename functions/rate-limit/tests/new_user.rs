//! What trying the rate limiter as a new user found (issue 16): requests
//! that escaped the limiter, a cost that could never pass answered 429
//! with a retry time, and leased scopes whose `RateLimit: r=` rose between
//! consecutive requests. Each test failed before its fix.
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use std::time::Duration;

use edge_core::function::{Instance, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::model::Runtime;
use edge_core::{ClientAddr, Config, EdgeFunction, Request, Response, Timestamp};
use futures::executor::block_on;
use rate_limit::RateLimit;
use serde_json::Value;

const T0: u64 = 1_795_305_600_000; // a minute boundary

fn platform() -> TestPlatform {
    TestPlatform::at(Timestamp::from_millis(T0))
}

fn config(policy: &str) -> Config {
    Config::new(RateLimit::DEFAULT_POLICY)
        .with_var("POLICY", policy)
        .with_secret("RATE_LIMIT_HASH_KEY", "k")
        .with_secret("RATE_LIMIT_ADMIN_TOKEN", "t")
}

fn instance(policy: &str) -> Instance<RateLimit> {
    instantiate::<RateLimit>(&config(policy))
}

fn policy(section: &str, scope: &str) -> String {
    format!(
        "[rate_limit]\nhash_key_secret = \"RATE_LIMIT_HASH_KEY\"\n{section}\n\
         [[rate_limit.scopes]]\nname = \"S\"\n{scope}"
    )
}

fn request(path: &str, addr: Option<&str>, headers: &[(&str, &str)]) -> Request {
    let mut builder = http::Request::builder().method("GET").uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut req = builder.body(Default::default()).unwrap();
    if let Some(ip) = addr {
        req.extensions_mut().insert(ClientAddr(ip.parse().unwrap()));
    }
    req
}

fn serve(p: &TestPlatform, rl: &Instance<RateLimit>, req: Request) -> Response {
    block_on(p.serve(rl, req))
}

fn serve_on(
    runtime: Runtime,
    p: &TestPlatform,
    rl: &Instance<RateLimit>,
    req: Request,
) -> Response {
    let mut services = p.services();
    services.runtime = runtime;
    block_on(edge_core::serve(rl, req, &services))
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

fn body(r: &Response) -> Value {
    serde_json::from_slice(r.body()).unwrap()
}

/// `r=` of scope `name` in a `RateLimit` field.
fn remaining(r: &Response, name: &str) -> u64 {
    let field = header(r, "ratelimit");
    let item = field
        .split(", ")
        .find(|i| i.starts_with(&format!("\"{name}\"")))
        .unwrap_or_else(|| panic!("no {name} in {field:?}"));
    item.split(';')
        .find_map(|p| p.strip_prefix("r="))
        .unwrap()
        .parse()
        .unwrap()
}

const BY_IP: &str = "algorithm = \"fixed_window\"\nlimit = 2\nperiod = \"1m\"\nkey = [\"ip\"]";

#[test]
fn a_missing_client_ip_header_falls_back_to_the_platform_address() {
    // Before: with client_ip_header set and the header absent, no scope
    // applied and every request passed unlimited.
    let f = platform();
    let rl = instance(&policy("client_ip_header = \"x-forwarded-for\"", BY_IP));
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            serve(&f, &rl, request("/", Some("198.51.100.1"), &[]))
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(statuses, [200, 200, 429, 429]);
    // An empty header is an absent one.
    let r = serve(
        &f,
        &rl,
        request("/", Some("198.51.100.1"), &[("x-forwarded-for", "")]),
    );
    assert_eq!(r.status(), 429);
    // With the header, the address it names is the key, as before.
    let with = |ip: &str| {
        serve(
            &f,
            &rl,
            request("/", Some("198.51.100.1"), &[("x-forwarded-for", ip)]),
        )
        .status()
    };
    assert_eq!(
        [
            with("203.0.113.5"),
            with("203.0.113.5"),
            with("203.0.113.5")
        ],
        [200, 200, 429]
    );
}

#[test]
fn no_client_address_at_all_is_refused_unless_a_fallback_key_says_how_to_limit() {
    let f = platform();
    for section in ["", "client_ip_header = \"x-forwarded-for\""] {
        let rl = instance(&policy(section, BY_IP));
        let r = serve(&f, &rl, request("/", None, &[]));
        assert_eq!(r.status(), 400, "{section}");
        let b = body(&r);
        assert_eq!(b["type"], "urn:edge-functions:problem:unidentified-client");
        assert_eq!(b["scope"], "S");
        let detail = b["detail"].as_str().unwrap();
        assert!(detail.contains("no client address"), "{detail}");
        if !section.is_empty() {
            assert!(detail.contains("x-forwarded-for"), "{detail}");
        }
    }
    let logs = f.logs.lines().join("\n");
    assert!(
        logs.contains("no client address"),
        "the operator is told: {logs}"
    );
    // The policy decides: unidentified callers share one global key.
    let rl = instance(&policy(
        "client_ip_header = \"x-forwarded-for\"",
        &format!("{BY_IP}\nfallback_key = [\"global\"]"),
    ));
    let statuses: Vec<u16> = (0..3)
        .map(|_| serve(&f, &rl, request("/", None, &[])).status().as_u16())
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
    // A scope keyed by a part the caller may lack (sub) still does not
    // apply without it: the policy's way to limit only callers with one.
    let rl = instance(&policy(
        "",
        "algorithm = \"fixed_window\"\nlimit = 1\nperiod = \"1m\"\nkey = [\"sub\"]",
    ));
    for _ in 0..3 {
        assert_eq!(serve(&f, &rl, request("/", None, &[])).status(), 200);
    }
}

#[test]
fn the_browser_build_with_the_built_in_policy_limits_the_page() {
    // Before: every built-in scope is keyed by ip, a page has none, and
    // nothing was limited.
    let f = platform();
    let rl = instantiate::<RateLimit>(
        &Config::new(RateLimit::DEFAULT_POLICY)
            .with_secret("RATE_LIMIT_HASH_KEY", "k")
            .with_secret("RATE_LIMIT_ADMIN_TOKEN", "t"),
    );
    let login = || {
        let req = http::Request::builder()
            .method("POST")
            .uri("/auth/login")
            .body(Default::default())
            .unwrap();
        serve_on(Runtime::Browser, &f, &rl, req)
    };
    let statuses: Vec<u16> = (0..6).map(|_| login().status().as_u16()).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    let r = serve_on(Runtime::Browser, &f, &rl, request("/x", None, &[]));
    assert_eq!(r.status(), 200);
    assert!(header(&r, "ratelimit").contains("\"GLOBAL_DDOS\""), "{r:?}");
}

#[test]
fn a_cost_above_the_limit_is_refused_as_impossible_without_a_retry_time() {
    // Before: cost 1001 against 1000 was a 429 "retry after 31 s".
    let f = platform();
    let rl = instance(&policy(
        "cost_header = \"x-cost\"",
        "algorithm = \"fixed_window\"\nlimit = 1000\nperiod = \"1m\"\nkey = [\"ip\"]",
    ));
    let with_cost = |cost: &str| {
        serve(
            &f,
            &rl,
            request("/", Some("192.0.2.1"), &[("x-cost", cost)]),
        )
    };
    f.clock.advance(Duration::from_secs(29));
    let r = with_cost("1001");
    assert_eq!(r.status(), 422);
    assert_eq!(header(&r, "retry-after"), "");
    assert_eq!(header(&r, "content-type"), "application/problem+json");
    let b = body(&r);
    assert_eq!(b["type"], "urn:edge-functions:problem:cost-exceeds-limit");
    assert_eq!(
        (b["scope"].as_str(), b["cost"].as_u64(), b["limit"].as_u64()),
        (Some("S"), Some(1001), Some(1000))
    );
    assert!(b.get("retry_after").is_none(), "{b}");
    assert!(b["detail"].as_str().unwrap().contains("never"), "{b}");
    // Nothing was charged: the whole quota is still there.
    let r = with_cost("1000");
    assert_eq!(r.status(), 200);
    assert_eq!(remaining(&r, "S"), 0);
    // Over the remaining but within the limit: a real 429 with a time.
    let r = with_cost("1");
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), "31");

    // A bucket's ceiling is its burst.
    let rl = instance(&policy(
        "cost_header = \"x-cost\"",
        "algorithm = \"token_bucket\"\nlimit = 10\nburst = 20\nperiod = \"1m\"\nkey = [\"ip\"]",
    ));
    let cost = |c: &str| serve(&f, &rl, request("/", Some("192.0.2.2"), &[("x-cost", c)])).status();
    assert_eq!([cost("21"), cost("20"), cost("1")], [422, 200, 429]);
}

#[test]
fn leased_scope_reports_never_rise_inside_a_window() {
    // Before: the first request reported what the store had left after the
    // lease (980), the next ones that plus the lease's unspent permits
    // (998, 997, ...), and leases coming back raised it again.
    let f = platform();
    let scope = "algorithm = \"fixed_window\"\nlimit = 1000\nperiod = \"1m\"\nkey = [\"ip\"]\n\
                 lease = 20\nlease_ttl = \"1s\"";
    let rl = instance(&policy("", scope));
    let mut last = u64::MAX;
    let mut seen = Vec::new();
    for i in 0..150u64 {
        // Bursts of a few requests, then a pause past the lease's end, so
        // leases come back with permits unspent.
        if i % 7 == 6 {
            f.clock.advance(Duration::from_millis(1_100));
        }
        let r = serve(&f, &rl, request("/", Some("192.0.2.9"), &[]));
        assert_eq!(r.status(), 200, "request {i}");
        let now = remaining(&r, "S");
        assert!(
            now <= last,
            "r rose from {last} to {now} at request {i}: {seen:?}"
        );
        seen.push(now);
        last = now;
    }
    // Another isolate's lease coming back does not raise this one's report.
    let other = instance(&policy("", scope));
    serve(&f, &other, request("/", Some("192.0.2.9"), &[]));
    f.clock.advance(Duration::from_millis(1_100));
    let r = serve(&f, &other, request("/", Some("192.0.2.9"), &[]));
    let theirs = remaining(&r, "S");
    assert!(theirs <= last, "{theirs} > {last}");
    // ... nor the next answer of the first isolate, whose lease also ended.
    let r = serve(&f, &rl, request("/", Some("192.0.2.9"), &[]));
    assert!(
        remaining(&r, "S") <= theirs,
        "{} > {theirs}",
        remaining(&r, "S")
    );
    // The window moves: whole again.
    f.clock.advance(Duration::from_secs(60));
    let r = serve(&f, &rl, request("/", Some("192.0.2.9"), &[]));
    assert_eq!(remaining(&r, "S"), 980);
}
