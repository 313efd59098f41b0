//! The rate limiter served natively on the in-memory platform with a fake
//! clock: decisions, headers, failure modes, leases, lists, admin, origin.
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use std::time::Duration;

use edge_core::function::{Instance, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::{ClientAddr, Config, EdgeFunction, Request, Response, Timestamp};
use futures::executor::block_on;
use rate_limit::RateLimit;
use serde_json::Value;

const HASH_KEY: &str = "test-hash-key";
const ADMIN: &str = "test-admin-token";
const T0: u64 = 1_795_305_600_000; // 2026-11-22T00:00:00Z, a minute boundary

/// The in-memory platform, its clock at `T0`.
fn platform() -> TestPlatform {
    TestPlatform::at(Timestamp::from_millis(T0))
}

fn serve(p: &TestPlatform, instance: &Instance<RateLimit>, req: Request) -> Response {
    block_on(p.serve(instance, req))
}

fn config(policy: &str) -> Config {
    Config::new(RateLimit::DEFAULT_POLICY)
        .with_var("POLICY", policy)
        .with_secret("RATE_LIMIT_HASH_KEY", HASH_KEY)
        .with_secret("RATE_LIMIT_ADMIN_TOKEN", ADMIN)
}

fn instance(policy: &str) -> Instance<RateLimit> {
    instantiate::<RateLimit>(&config(policy))
}

/// A policy with the default section and the given scopes.
fn with_scopes(extra_section: &str, scopes: &str) -> String {
    format!(
        "[rate_limit]\nhash_key_secret = \"RATE_LIMIT_HASH_KEY\"\n\
         admin_token_secret = \"RATE_LIMIT_ADMIN_TOKEN\"\n{extra_section}\n{scopes}"
    )
}

fn request(method: &str, path: &str, ip: &str) -> Request {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .body(Default::default())
        .unwrap();
    req.extensions_mut().insert(ClientAddr(ip.parse().unwrap()));
    req
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

fn body(r: &Response) -> Value {
    serde_json::from_slice(r.body()).unwrap()
}

const LOGIN: &str = r#"
[[rate_limit.scopes]]
name = "AUTH_LOGIN"
algorithm = "sliding_window"
limit = 5
period = "15m"
key = ["ip"]
methods = ["POST"]
paths = ["/auth/login"]
"#;

#[test]
fn the_built_in_policy_is_valid_and_names_its_secrets() {
    assert!(RateLimit::from_config(&config("")).is_ok());
    let err = RateLimit::from_config(&Config::new(RateLimit::DEFAULT_POLICY)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rate_limit.hash_key_secret: secret \"RATE_LIMIT_HASH_KEY\" is not set"
    );
}

#[test]
fn invalid_policies_name_the_field_and_value() {
    let cases = [
        (
            "algorithm = \"token_bucket\"\nlimit = 10\nperiod = \"1m\"\nkey = [\"ip\"]\nlease = 5",
            "rate_limit.scopes[0].lease: 5 needs fixed_window or sliding_window",
        ),
        (
            "algorithm = \"sliding_window\"\nlimit = 5000\nperiod = \"1m\"\nkey = [\"ip\"]",
            "rate_limit.scopes[0].limit: 5000 must be <= 1000 for sliding_window",
        ),
        (
            "algorithm = \"gcra\"\nlimit = 10\nperiod = \"0s\"\nkey = [\"ip\"]",
            "rate_limit.scopes[0].period: \"0s\" must be in 1s..=366d",
        ),
        (
            "algorithm = \"fixed_window\"\nlimit = 10\nperiod = \"1m\"\nkey = [\"cookie\"]",
            "rate_limit.scopes[0].key[0]: \"cookie\" must be ip, sub",
        ),
        (
            "algorithm = \"fixed_window\"\nlimit = 10\nperiod = \"1m\"\nkey = [\"ip\"]\ncost = 11",
            "rate_limit.scopes[0].cost: 11 must be in 1..=10",
        ),
    ];
    for (scope, want) in cases {
        let policy = with_scopes("", &format!("[[rate_limit.scopes]]\nname = \"S\"\n{scope}"));
        let err = RateLimit::from_config(&config(&policy)).unwrap_err();
        assert!(err.to_string().contains(want), "{err}\n  wanted: {want}");
    }
    let policy = with_scopes("deny = [\"ip:not-an-ip\"]", LOGIN);
    let err = RateLimit::from_config(&config(&policy)).unwrap_err();
    assert!(
        err.to_string()
            .contains("rate_limit.deny[0]: \"ip:not-an-ip\""),
        "{err}"
    );
    let policy = with_scopes("", LOGIN);
    let err = RateLimit::from_config(&config(&policy).with_var("RATE_LIMIT_FAIL_OPEN", "maybe"))
        .unwrap_err();
    assert!(err.to_string().contains("RATE_LIMIT_FAIL_OPEN"), "{err}");
}

#[test]
fn a_sixth_login_within_fifteen_minutes_is_refused_with_headers_and_problem() {
    let f = platform();
    let rl = instance(&with_scopes("", LOGIN));
    for i in 0..5u64 {
        let r = serve(&f, &rl, request("POST", "/auth/login", "203.0.113.9"));
        assert_eq!(r.status(), 200, "attempt {i}");
        assert_eq!(header(&r, "ratelimit-policy"), "\"AUTH_LOGIN\";q=5;w=900");
        assert_eq!(
            header(&r, "ratelimit"),
            format!("\"AUTH_LOGIN\";r={};t=900", 4 - i)
        );
        f.clock.advance(Duration::from_secs(60));
    }
    let r = serve(&f, &rl, request("POST", "/auth/login", "203.0.113.9"));
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "content-type"), "application/problem+json");
    // The first attempt leaves the window 15 min after it: 900 - 300 s.
    assert_eq!(header(&r, "retry-after"), "600");
    assert_eq!(header(&r, "ratelimit"), "\"AUTH_LOGIN\";r=0;t=600");
    let b = body(&r);
    assert_eq!(b["type"], "urn:edge-functions:problem:rate-limited");
    assert_eq!(b["scope"], "AUTH_LOGIN");
    assert_eq!(b["retry_after"], 600);
    // Another client, another method and another path are not limited by it.
    assert_eq!(
        serve(&f, &rl, request("POST", "/auth/login", "203.0.113.10")).status(),
        200
    );
    let other = serve(&f, &rl, request("GET", "/auth/login", "203.0.113.9"));
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "ratelimit"), "");
    // The logs carry the keyed hash, never the address.
    let logs = f.logs.lines().join("\n");
    assert!(logs.contains("\"key_hash\":\""), "{logs}");
    assert!(!logs.contains("203.0.113.9"), "{logs}");
    // After the first attempt leaves the window, one more passes.
    f.clock.advance(Duration::from_secs(600));
    assert_eq!(
        serve(&f, &rl, request("POST", "/auth/login", "203.0.113.9")).status(),
        200
    );
}

#[test]
fn the_strictest_scope_decides_and_the_others_are_not_charged() {
    let f = platform();
    let scopes = format!(
        "{LOGIN}\n[[rate_limit.scopes]]\nname = \"GLOBAL\"\nalgorithm = \"fixed_window\"\n\
         limit = 8\nperiod = \"1m\"\nkey = [\"ip\"]"
    );
    let rl = instance(&with_scopes("", &scopes));
    for _ in 0..5 {
        assert_eq!(
            serve(&f, &rl, request("POST", "/auth/login", "198.51.100.1")).status(),
            200
        );
    }
    for _ in 0..3 {
        let r = serve(&f, &rl, request("POST", "/auth/login", "198.51.100.1"));
        assert_eq!(r.status(), 429);
        assert_eq!(
            header(&r, "ratelimit-policy"),
            "\"AUTH_LOGIN\";q=5;w=900, \"GLOBAL\";q=8;w=60"
        );
    }
    // The refused logins did not spend GLOBAL permits: 3 are left.
    for i in 0..3 {
        let r = serve(&f, &rl, request("GET", "/x", "198.51.100.1"));
        assert_eq!(r.status(), 200, "request {i}");
    }
    assert_eq!(
        serve(&f, &rl, request("GET", "/x", "198.51.100.1")).status(),
        429
    );
}

fn count_allowed(f: &TestPlatform, rl: &Instance<RateLimit>, n: usize, ip: &str) -> usize {
    (0..n)
        .filter(|_| serve(f, rl, request("GET", "/x", ip)).status() == 200)
        .count()
}

#[test]
fn leases_keep_the_limit_exact_across_isolates_with_fewer_store_calls() {
    let scope = "[[rate_limit.scopes]]\nname = \"G\"\nalgorithm = \"fixed_window\"\n\
                 limit = 100\nperiod = \"1m\"\nkey = [\"global\"]";
    let strict = platform();
    let rl = instance(&with_scopes("", scope));
    assert_eq!(count_allowed(&strict, &rl, 150, "192.0.2.1"), 100);
    let strict_calls = strict.store.calls();

    // Three isolates share one store, each leasing 10 permits at a time.
    let leased = platform();
    let policy = with_scopes("", &format!("{scope}\nlease = 10"));
    let isolates = [instance(&policy), instance(&policy), instance(&policy)];
    let mut admitted = 0;
    for round in 0..60 {
        for isolate in &isolates {
            admitted += count_allowed(&leased, isolate, 1, &format!("192.0.2.{round}"));
        }
    }
    // 180 asked: never more than the limit, and here none stranded.
    assert_eq!(admitted, 100);
    assert!(
        leased.store.calls() * 4 < strict_calls,
        "leased {} vs strict {strict_calls} store calls",
        leased.store.calls()
    );
    // Next window: the same again.
    leased.clock.advance(Duration::from_secs(60));
    let again: usize = isolates
        .iter()
        .map(|i| count_allowed(&leased, i, 50, "192.0.2.1"))
        .sum();
    assert_eq!(again, 100);
}

#[test]
fn a_known_blocked_key_is_answered_without_the_store() {
    let f = platform();
    let scope = "[[rate_limit.scopes]]\nname = \"G\"\nalgorithm = \"fixed_window\"\n\
                 limit = 2\nperiod = \"1m\"\nkey = [\"ip\"]";
    let rl = instance(&with_scopes("", scope));
    assert_eq!(count_allowed(&f, &rl, 3, "192.0.2.7"), 2);
    let calls = f.store.calls();
    assert_eq!(count_allowed(&f, &rl, 10, "192.0.2.7"), 0);
    assert_eq!(f.store.calls(), calls, "no store call while blocked");
    f.clock.advance(Duration::from_secs(60));
    assert_eq!(count_allowed(&f, &rl, 1, "192.0.2.7"), 1);
}

fn failing_scope(mode: &str) -> String {
    with_scopes(
        "",
        &format!(
            "[[rate_limit.scopes]]\nname = \"S\"\nalgorithm = \"gcra\"\nlimit = 3\n\
             period = \"1m\"\nkey = [\"ip\"]\non_store_failure = \"{mode}\"\nlocal_limit = 2"
        ),
    )
}

#[test]
fn each_failure_mode_behaves_as_configured_when_the_store_fails() {
    let f = platform();
    f.store.set_available(false);

    let open = instance(&failing_scope("fail_open"));
    let r = serve(&f, &open, request("GET", "/x", "192.0.2.9"));
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "ratelimit"), "", "no state to report");
    assert_eq!(count_allowed(&f, &open, 20, "192.0.2.9"), 20);

    let closed = instance(&failing_scope("fail_closed"));
    let r = serve(&f, &closed, request("GET", "/x", "192.0.2.9"));
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "retry-after"), "5");
    assert_eq!(
        body(&r)["type"],
        "urn:edge-functions:problem:store-unavailable"
    );

    let local = instance(&failing_scope("local"));
    assert_eq!(count_allowed(&f, &local, 10, "192.0.2.9"), 2, "local_limit");
    let r = serve(&f, &local, request("GET", "/x", "192.0.2.9"));
    assert_eq!(r.status(), 429);

    // Back up: the store's own count applies again.
    f.store.set_available(true);
    assert_eq!(count_allowed(&f, &closed, 10, "192.0.2.9"), 3);
    let logs = f.logs.lines().join("\n");
    assert!(logs.contains("rate-limit store unavailable"), "{logs}");
}

#[test]
fn the_variables_override_enabled_and_the_default_failure_mode() {
    let f = platform();
    f.store.set_available(false);
    let policy = with_scopes(
        "",
        "[[rate_limit.scopes]]\nname = \"S\"\nalgorithm = \"fixed_window\"\nlimit = 1\n\
         period = \"1m\"\nkey = [\"ip\"]",
    );
    let default = instantiate::<RateLimit>(&config(&policy));
    assert_eq!(
        serve(&f, &default, request("GET", "/", "192.0.2.1")).status(),
        503
    );
    let open = instantiate::<RateLimit>(&config(&policy).with_var("RATE_LIMIT_FAIL_OPEN", "true"));
    assert_eq!(
        serve(&f, &open, request("GET", "/", "192.0.2.1")).status(),
        200
    );

    f.store.set_available(true);
    let before = f.store.calls();
    let off = instantiate::<RateLimit>(&config(&policy).with_var("RATE_LIMIT_ENABLED", "false"));
    assert_eq!(count_allowed(&f, &off, 5, "192.0.2.1"), 5);
    let r = serve(&f, &off, request("GET", "/", "192.0.2.1"));
    assert_eq!(header(&r, "ratelimit-policy"), "");
    assert_eq!(f.store.calls(), before, "disabled: no store calls");
}

#[test]
fn allow_and_deny_lists_apply_before_any_limit() {
    let f = platform();
    let policy = with_scopes(
        "allow = [\"ip:10.0.0.0/8\"]\ndeny = [\"ip:192.0.2.66\", \"sub:mallory\"]",
        "[[rate_limit.scopes]]\nname = \"S\"\nalgorithm = \"fixed_window\"\nlimit = 1\n\
         period = \"1m\"\nkey = [\"ip\"]",
    );
    let rl = instance(&policy);
    assert_eq!(count_allowed(&f, &rl, 5, "10.9.8.7"), 5);
    let r = serve(&f, &rl, request("GET", "/", "192.0.2.66"));
    assert_eq!(r.status(), 403);
    assert_eq!(body(&r)["type"], "urn:edge-functions:problem:denied");
    let mut req = request("GET", "/", "192.0.2.1");
    req.headers_mut()
        .insert("x-auth-sub", "mallory".parse().unwrap());
    assert_eq!(serve(&f, &rl, req).status(), 403);
}

#[test]
fn keys_combine_parts_and_fall_back_when_one_is_missing() {
    let f = platform();
    let policy = with_scopes(
        "",
        "[[rate_limit.scopes]]\nname = \"U\"\nalgorithm = \"token_bucket\"\nlimit = 2\n\
         period = \"1h\"\nkey = [\"sub\", \"route\"]\nfallback_key = [\"ip\"]",
    );
    let rl = instance(&policy);
    let as_user = |sub: &str, path: &str| {
        let mut req = request("GET", path, "192.0.2.1");
        req.headers_mut().insert("x-auth-sub", sub.parse().unwrap());
        serve(&f, &rl, req).status()
    };
    assert_eq!(
        [
            as_user("alice", "/a"),
            as_user("alice", "/a"),
            as_user("alice", "/a")
        ],
        [200, 200, 429]
    );
    assert_eq!(as_user("alice", "/b"), 200, "another route, another key");
    assert_eq!(as_user("bob", "/a"), 200, "another user, another key");
    assert_eq!(
        count_allowed(&f, &rl, 3, "192.0.2.1"),
        2,
        "anonymous: by address"
    );
    // A header too long to be an identifier is refused, not truncated.
    let mut req = request("GET", "/a", "192.0.2.1");
    req.headers_mut()
        .insert("x-auth-sub", "x".repeat(300).parse().unwrap());
    let r = serve(&f, &rl, req);
    assert_eq!(r.status(), 400);
    assert_eq!(body(&r)["header"], "x-auth-sub");
}

#[test]
fn a_trusted_cost_header_charges_more_and_bad_values_are_refused() {
    let f = platform();
    let policy = with_scopes(
        "cost_header = \"x-ratelimit-cost\"",
        "[[rate_limit.scopes]]\nname = \"S\"\nalgorithm = \"fixed_window\"\nlimit = 10\n\
         period = \"1m\"\nkey = [\"ip\"]",
    );
    let rl = instance(&policy);
    let with_cost = |cost: &str| {
        let mut req = request("GET", "/", "192.0.2.1");
        req.headers_mut()
            .insert("x-ratelimit-cost", cost.parse().unwrap());
        serve(&f, &rl, req)
    };
    assert_eq!(header(&with_cost("7"), "ratelimit"), "\"S\";r=3;t=60");
    assert_eq!(with_cost("4").status(), 429);
    assert_eq!(with_cost("3").status(), 200);
    let bad = with_cost("-1");
    assert_eq!(bad.status(), 400);
    assert_eq!(body(&bad)["header"], "x-ratelimit-cost");
}

#[test]
fn admins_read_and_reset_one_identifier() {
    let f = platform();
    let rl = instance(&with_scopes("", LOGIN));
    for _ in 0..6 {
        serve(&f, &rl, request("POST", "/auth/login", "203.0.113.9"));
    }
    let admin = |method: &str, query: &str, token: Option<&str>| {
        let mut req = request(method, &format!("/_ratelimit/state?{query}"), "192.0.2.1");
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        serve(&f, &rl, req)
    };
    let r = admin("GET", "scope=AUTH_LOGIN&ip=203.0.113.9", None);
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").contains("invalid_request"));
    assert_eq!(
        admin("GET", "scope=AUTH_LOGIN&ip=203.0.113.9", Some("wrong")).status(),
        401
    );
    let state = admin("GET", "scope=AUTH_LOGIN&ip=203.0.113.9", Some(ADMIN));
    assert_eq!(state.status(), 200);
    let b = body(&state);
    assert_eq!(
        (b["remaining"].as_u64(), b["limit"].as_u64()),
        (Some(0), Some(5))
    );
    assert_eq!(b["algorithm"], "sliding_window");
    assert_eq!(b["key_hash"].as_str().unwrap().len(), 32);
    assert_eq!(
        admin("GET", "scope=NOPE&ip=1.2.3.4", Some(ADMIN)).status(),
        400
    );
    assert_eq!(admin("GET", "scope=AUTH_LOGIN", Some(ADMIN)).status(), 400);
    assert_eq!(
        admin("DELETE", "scope=AUTH_LOGIN&ip=203.0.113.9", Some(ADMIN)).status(),
        204
    );
    assert_eq!(
        serve(&f, &rl, request("POST", "/auth/login", "203.0.113.9")).status(),
        200
    );
    let logs = f.logs.lines().join("\n");
    assert!(!logs.contains(ADMIN), "the token never reaches the logs");
}

#[test]
fn admitted_requests_go_to_the_origin_with_the_fields() {
    let f = platform();
    let mut origin_answer = http::Response::new(bytes::Bytes::from_static(b"hello"));
    origin_answer
        .headers_mut()
        .insert("x-origin", "yes".parse().unwrap());
    f.http.route("https://origin.test/api/items", origin_answer);
    let policy = with_scopes(
        "origin = \"https://origin.test\"",
        "[[rate_limit.scopes]]\nname = \"S\"\nalgorithm = \"fixed_window\"\nlimit = 1\n\
         period = \"1m\"\nkey = [\"ip\"]",
    );
    let rl = instance(&policy);
    let r = serve(&f, &rl, request("GET", "/api/items?page=2", "192.0.2.1"));
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_ref(), b"hello");
    assert_eq!(header(&r, "x-origin"), "yes");
    assert_eq!(header(&r, "ratelimit"), "\"S\";r=0;t=60");
    assert_eq!(
        serve(&f, &rl, request("GET", "/api/items", "192.0.2.1")).status(),
        429
    );
    assert_eq!(
        f.http.calls("https://origin.test/api/items"),
        1,
        "refused: not forwarded"
    );
    let down = serve(&f, &rl, request("GET", "/other", "192.0.2.2"));
    assert_eq!(down.status(), 502);
}

#[test]
fn an_origin_outside_the_allowed_hosts_fails_at_start_by_field() {
    let policy = with_scopes(
        "origin = \"http://127.0.0.1:9001/v1\"",
        "[[rate_limit.scopes]]\nname = \"S\"\nalgorithm = \"fixed_window\"\nlimit = 1\n\
         period = \"1m\"\nkey = [\"ip\"]",
    );
    let refused = RateLimit::from_config(
        &config(&policy).with_allowed_outbound_hosts("https://api.example.com"),
    );
    assert_eq!(
        refused.err().unwrap().to_string(),
        "rate_limit.origin: http://127.0.0.1:9001 is not in this component's \
         allowed_outbound_hosts (https://api.example.com); add it to spin.toml"
    );
    let allowed = config(&policy).with_allowed_outbound_hosts("http://127.0.0.1:9001");
    assert!(RateLimit::from_config(&allowed).is_ok());
    // No allow-list (Workers, browsers): any origin.
    assert!(RateLimit::from_config(&config(&policy)).is_ok());
}

// Per-key overrides.

/// A request from `ip` by the verified subject `sub` (none: anonymous).
fn request_as(path: &str, ip: &str, sub: Option<&str>) -> Request {
    let mut req = request("GET", path, ip);
    if let Some(sub) = sub {
        req.headers_mut().insert("x-auth-sub", sub.parse().unwrap());
    }
    req
}

fn admitted_as(
    f: &TestPlatform,
    rl: &Instance<RateLimit>,
    n: usize,
    ip: &str,
    sub: Option<&str>,
) -> usize {
    (0..n)
        .filter(|_| serve(f, rl, request_as("/x", ip, sub)).status() == 200)
        .count()
}

/// Scope `S` keyed by `sub` (by address when anonymous) with `tail` after
/// its fields (overrides, lease…).
fn tenant_scope(algorithm: &str, limit: u64, tail: &str) -> String {
    with_scopes(
        "",
        &format!(
            "[[rate_limit.scopes]]\nname = \"S\"\nalgorithm = \"{algorithm}\"\nlimit = {limit}\n\
             period = \"1h\"\nkey = [\"sub\"]\nfallback_key = [\"ip\"]\n{tail}"
        ),
    )
}

const TENANT_A: &str =
    "[[rate_limit.scopes.overrides]]\nmatch = [\"sub:tenant-a\", \"api_key_id:k1\"]\nlimit = 20\n";

#[test]
fn an_override_admits_exactly_its_limit_while_others_get_the_default() {
    for algorithm in ["fixed_window", "sliding_window", "token_bucket", "gcra"] {
        let f = platform();
        let rl = instance(&tenant_scope(algorithm, 5, TENANT_A));
        assert_eq!(
            admitted_as(&f, &rl, 30, "192.0.2.1", Some("tenant-a")),
            20,
            "{algorithm}"
        );
        assert_eq!(
            admitted_as(&f, &rl, 10, "192.0.2.1", Some("bob")),
            5,
            "{algorithm}"
        );
        assert_eq!(
            admitted_as(&f, &rl, 10, "192.0.2.1", None),
            5,
            "{algorithm}"
        );
        // The fields and the problem give the limit applied.
        let r = serve(&f, &rl, request_as("/x", "192.0.2.1", Some("tenant-a")));
        assert_eq!(r.status(), 429);
        assert_eq!(header(&r, "ratelimit-policy"), "\"S\";q=20;w=3600");
        assert!(
            body(&r)["detail"]
                .as_str()
                .unwrap()
                .starts_with("scope S allows 20 requests per 1h"),
            "{}",
            body(&r)
        );
        let fresh = serve(&f, &rl, request_as("/x", "192.0.2.1", Some("carol")));
        assert_eq!(header(&fresh, "ratelimit-policy"), "\"S\";q=5;w=3600");
        // A bucket is whole again after one permit's refill (12 min).
        let reset = if algorithm.ends_with("window") {
            3600
        } else {
            720
        };
        assert_eq!(header(&fresh, "ratelimit"), format!("\"S\";r=4;t={reset}"));
    }
}

#[test]
fn the_first_matching_override_applies() {
    let f = platform();
    let overrides = "[[rate_limit.scopes.overrides]]\nmatch = [\"ip:10.0.0.0/8\"]\nlimit = 3\n\
                     [[rate_limit.scopes.overrides]]\n\
                     match = [\"sub:tenant-a\", \"header:x-tenant=acme\"]\nlimit = 10\nburst = 12\n";
    let rl = instance(&tenant_scope("token_bucket", 5, overrides));
    // Both name tenant-a from 10.1.2.3: the first wins.
    assert_eq!(admitted_as(&f, &rl, 20, "10.1.2.3", Some("tenant-a")), 3);
    // From elsewhere the second applies, to the same key (tenant-a's):
    // the 3 taken stay taken, 9 of its burst of 12 are left.
    assert_eq!(admitted_as(&f, &rl, 20, "192.0.2.1", Some("tenant-a")), 9);
    let other = instance(&tenant_scope("token_bucket", 5, overrides));
    let f2 = platform();
    assert_eq!(
        admitted_as(&f2, &other, 20, "192.0.2.1", Some("tenant-a")),
        12
    );
    // A header set by the gateway: any user of tenant acme, each on its key.
    let by_header = |sub: &str| {
        (0..20)
            .filter(|_| {
                let mut req = request_as("/x", "192.0.2.9", Some(sub));
                req.headers_mut()
                    .insert("x-tenant", "acme".parse().unwrap());
                serve(&f2, &other, req).status() == 200
            })
            .count()
    };
    assert_eq!((by_header("u1"), by_header("u2")), (12, 12));
    assert_eq!(admitted_as(&f2, &other, 20, "192.0.2.9", Some("u3")), 5);
}

#[test]
fn bad_overrides_are_refused_naming_the_field() {
    let second = |algorithm: &str, tail: &str| {
        with_scopes(
            "",
            &format!(
                "{LOGIN}\n[[rate_limit.scopes]]\nname = \"API\"\nalgorithm = \"{algorithm}\"\n\
                 limit = 100\nperiod = \"1m\"\nkey = [\"sub\"]\ncost = 2\n{tail}"
            ),
        )
    };
    let o = "[[rate_limit.scopes.overrides]]\n";
    let cases = [
        (
            second("gcra", &format!("{o}match = [\"sub:a\"]\nlimit = 0")),
            "rate_limit.scopes[1].overrides[0].limit: 0 must be in 1..=1000000000",
        ),
        (
            second(
                "gcra",
                &format!("{o}match = [\"sub:a\"]\nlimit = 9\n{o}match = [\"cookie:x\"]\nlimit = 9"),
            ),
            "rate_limit.scopes[1].overrides[1].match[0]: \"cookie:x\" must be ip:<address or CIDR>",
        ),
        (
            second("gcra", &format!("{o}match = []\nlimit = 9")),
            "rate_limit.scopes[1].overrides[0].match: [] must name at least one client",
        ),
        (
            second(
                "fixed_window",
                &format!("{o}match = [\"sub:a\"]\nlimit = 9\nburst = 20"),
            ),
            "rate_limit.scopes[1].overrides[0].burst: 20 applies to token_bucket and gcra only",
        ),
        (
            second(
                "sliding_window",
                &format!("{o}match = [\"sub:a\"]\nlimit = 5000"),
            ),
            "rate_limit.scopes[1].overrides[0].limit: 5000 must be <= 1000 for sliding_window",
        ),
        (
            second("gcra", &format!("{o}match = [\"sub:a\"]\nlimit = 1")),
            "rate_limit.scopes[1].overrides[0].limit: 1 must be >= the scope's cost (2)",
        ),
        (
            second(
                "gcra",
                &format!("{o}match = [\"sub:a\"]\nlimit = 9\ncost = 10"),
            ),
            "rate_limit.scopes[1].overrides[0].cost: 10 must be in 1..=9",
        ),
        (
            second(
                "gcra",
                &format!("{o}match = [\"sub:a\"]\nlimit = 9\nperiod = \"0s\""),
            ),
            "rate_limit.scopes[1].overrides[0].period: \"0s\" must be in 1s..=366d",
        ),
        (
            second(
                "gcra",
                &format!("{o}match = [\"header:x-tenant\"]\nlimit = 9"),
            ),
            "rate_limit.scopes[1].overrides[0].match[0]: \"header:x-tenant\"",
        ),
        (
            second("gcra", &format!("{o}match = [\"sub:a\"]\nlimits = 9")),
            "unknown field `limits`",
        ),
    ];
    for (policy, want) in cases {
        let err = RateLimit::from_config(&config(&policy)).unwrap_err();
        assert!(err.to_string().contains(want), "{err}\n  wanted: {want}");
    }
    // In JSON too, and a valid one starts.
    let json = r#"{"rate_limit": {"hash_key_secret": "RATE_LIMIT_HASH_KEY", "scopes": [
        {"name": "S", "algorithm": "gcra", "limit": 10, "period": "1m", "key": ["sub"],
         "overrides": [{"match": ["sub:a"], "limit": 100, "burst": 150, "period": "2m",
                        "cost": 3, "local_limit": 50}]}]}}"#;
    assert!(RateLimit::from_config(&config(json)).is_ok());
}

/// Serves `n` requests of tenant-a under each policy version in turn, one
/// store: what each version admits.
fn versions(f: &TestPlatform, steps: &[(&str, usize)]) -> Vec<usize> {
    steps
        .iter()
        .map(|(policy, n)| admitted_as(f, &instance(policy), *n, "192.0.2.1", Some("tenant-a")))
        .collect()
}

#[test]
fn a_limit_changed_mid_window_keeps_what_was_taken() {
    let tenant = |algorithm: &str, limit: u64| {
        tenant_scope(
            algorithm,
            5,
            &format!(
                "[[rate_limit.scopes.overrides]]\nmatch = [\"sub:tenant-a\"]\nlimit = {limit}\n"
            ),
        )
    };
    for algorithm in ["fixed_window", "sliding_window", "token_bucket", "gcra"] {
        let f = platform();
        // Default 5: 4 taken. An override of 20 arrives: 16 more, not 20.
        // Lowered to 10: the 20 taken exceed it, nothing more this window
        // (a bucket is empty, never below: it refills at the new rate).
        let got = versions(
            &f,
            &[
                (&tenant_scope(algorithm, 5, ""), 4),
                (&tenant(algorithm, 20), 30),
                (&tenant(algorithm, 10), 5),
            ],
        );
        assert_eq!(got, [4, 16, 0], "{algorithm}");
        // 10 per hour refills one per 6 min; a window waits for its end.
        f.clock.advance(Duration::from_secs(6 * 60));
        let bucket = matches!(algorithm, "token_bucket" | "gcra");
        assert_eq!(
            versions(&f, &[(&tenant(algorithm, 10), 5)]),
            [usize::from(bucket)],
            "{algorithm}"
        );
        f.clock.advance(Duration::from_secs(3600));
        assert_eq!(
            versions(&f, &[(&tenant(algorithm, 10), 20)]),
            [10],
            "{algorithm}"
        );
    }
}

#[test]
fn leases_and_the_local_failure_mode_hold_the_override() {
    // Three isolates leasing 5 at a time: each key admitted exactly its limit.
    let leased = platform();
    let policy = with_scopes(
        "",
        "[[rate_limit.scopes]]\nname = \"G\"\nalgorithm = \"fixed_window\"\nlimit = 10\n\
         period = \"1m\"\nkey = [\"ip\"]\nlease = 5\n\
         [[rate_limit.scopes.overrides]]\nmatch = [\"ip:10.0.0.0/8\"]\nlimit = 40\n",
    );
    let isolates = [instance(&policy), instance(&policy), instance(&policy)];
    let mut tenant = 0;
    let mut other = 0;
    for _ in 0..30 {
        for isolate in &isolates {
            tenant += admitted_as(&leased, isolate, 1, "10.0.0.7", None);
            other += admitted_as(&leased, isolate, 1, "192.0.2.7", None);
        }
    }
    assert_eq!((tenant, other), (40, 10));

    // The store down, scope in local mode: the override's local_limit.
    let f = platform();
    f.store.set_available(false);
    let policy = tenant_scope(
        "gcra",
        3,
        "on_store_failure = \"local\"\nlocal_limit = 2\n\
         [[rate_limit.scopes.overrides]]\nmatch = [\"sub:tenant-a\"]\nlimit = 30\nlocal_limit = 4\n",
    );
    let rl = instance(&policy);
    assert_eq!(admitted_as(&f, &rl, 10, "192.0.2.1", Some("tenant-a")), 4);
    assert_eq!(admitted_as(&f, &rl, 10, "192.0.2.1", Some("bob")), 2);
}

#[test]
fn admins_see_the_limit_an_identifier_is_held_to() {
    let f = platform();
    let rl = instance(&tenant_scope("fixed_window", 5, TENANT_A));
    admitted_as(&f, &rl, 3, "192.0.2.1", Some("tenant-a"));
    let state = |query: &str| {
        let mut req = request(
            "GET",
            &format!("/_ratelimit/state?scope=S&{query}"),
            "192.0.2.1",
        );
        req.headers_mut()
            .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
        body(&serve(&f, &rl, req))
    };
    let b = state("sub=tenant-a");
    assert_eq!(
        (
            b["limit"].as_u64(),
            b["override"].as_u64(),
            b["remaining"].as_u64()
        ),
        (Some(20), Some(0), Some(17))
    );
    let b = state("sub=bob");
    assert_eq!(
        (b["limit"].as_u64(), b["override"].is_null()),
        (Some(5), true)
    );
}
