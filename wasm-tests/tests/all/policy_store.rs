//! Policies changed while traffic flows (`edge_core::live`), on the real
//! stores: the rate limiter's Spin build in the wasmtime host (two hosts
//! sharing one key-value store) and its Workers build under `wrangler dev`
//! (the Durable Object). A `PUT /_policy` with a new limit decides the
//! very next request — measured from the `PUT` to that request's answer —
//! a bad document is refused naming the field while the old version keeps
//! serving, a restore brings an earlier version back, and `/health` names
//! the version in effect. The gateway's Spin build does the same with the
//! limiter it composes (its `[rate_limit]` section).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasm_tests::conformance::{Actual, CaseRequest};
use wasm_tests::host::{App, AppConfig, GuestLogs, KvStore};
use wasm_tests::workerd::{WranglerDev, agent, send};

const POLICY_TOKEN: &str = "policy-admin-token-for-tests";

/// One fixed window of `limit` per hour on one global key.
fn policy(limit: u64) -> String {
    format!(
        "[rate_limit]\nhash_key_secret = \"RATE_LIMIT_HASH_KEY\"\n\
         [[rate_limit.scopes]]\nname = \"tenant\"\nalgorithm = \"fixed_window\"\n\
         limit = {limit}\nperiod = \"1h\"\nkey = [\"global\"]\n"
    )
}

fn secrets() -> BTreeMap<String, String> {
    [
        ("RATE_LIMIT_HASH_KEY".to_owned(), "k".to_owned()),
        ("POLICY_ADMIN_TOKEN".to_owned(), POLICY_TOKEN.to_owned()),
    ]
    .into()
}

/// A request: method, path, body and whether it carries the policy token.
struct Call<'a> {
    method: &'a str,
    path: &'a str,
    body: &'a str,
    admin: bool,
}

fn call<'a>(method: &'a str, path: &'a str, body: &'a str, admin: bool) -> Call<'a> {
    Call {
        method,
        path,
        body,
        admin,
    }
}

fn get(path: &str) -> Call<'_> {
    call("GET", path, "", false)
}

/// The quota `RateLimit-Policy` reports (`"tenant";q=N;w=3600`).
fn quota(actual: &Actual) -> Option<u64> {
    let field = actual.headers.get("ratelimit-policy")?;
    let q = field.split(';').find_map(|p| p.trim().strip_prefix("q="))?;
    q.parse().ok()
}

fn json(actual: &Actual) -> Value {
    serde_json::from_str(&actual.body).unwrap_or(Value::Null)
}

/// What one runtime measured.
struct Figures {
    /// From sending the `PUT` to the answer of the first request decided
    /// by the new version (the next one).
    put_to_decided: Duration,
    /// The `PUT` itself.
    put: Duration,
}

/// The scenario every runtime runs: `send` is one runtime (or, for
/// `reader`, a second host on the same store).
fn scenario(
    policy: &dyn Fn(u64) -> String,
    path: &str,
    send: &dyn Fn(&Call<'_>) -> Actual,
    reader: &dyn Fn(&Call<'_>) -> Actual,
    logs: &dyn Fn() -> String,
) -> Figures {
    let health = json(&send(&get("/health")));
    assert_eq!(health["policy"]["version"], 0, "{health}");
    assert_eq!(health["policy"]["source"], "deployed", "{health}");

    // The deployed limit: 2.
    let first: Vec<Actual> = (0..3).map(|_| send(&get(path))).collect();
    let statuses: Vec<u16> = first.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 429], "{}", logs());
    assert_eq!(quota(&first[0]), Some(2));

    // Without the token: refused, nothing changes.
    let anonymous = send(&call("PUT", "/_policy", &policy(50), false));
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);

    // A new limit decides the very next request.
    let started = Instant::now();
    let put = send(&call("PUT", "/_policy", &policy(5), true));
    let put_took = started.elapsed();
    assert_eq!(put.status, 200, "{}\n{}", put.body, logs());
    assert_eq!(json(&put)["version"], 1, "{}", put.body);
    let next = send(&get(path));
    let put_to_decided = started.elapsed();
    assert_eq!((next.status, quota(&next)), (200, Some(5)), "{}", logs());
    // Another host on the same store: its next request too.
    let elsewhere = reader(&get(path));
    assert_eq!(quota(&elsewhere), Some(5), "{}", logs());

    // A bad document: 422 naming the field; version 1 keeps serving.
    let bad = send(&call("PUT", "/_policy", &policy(0), true));
    assert_eq!(bad.status, 422, "{}", bad.body);
    let problem = json(&bad);
    assert_eq!(problem["type"], "urn:edge-functions:problem:invalid-policy");
    assert_eq!(
        problem["errors"][0]["field"], "rate_limit.scopes[0].limit",
        "{problem}"
    );
    let garbled = send(&call("PUT", "/_policy", "[rate_limit\nlimit = ", true));
    assert_eq!(garbled.status, 422, "{}", garbled.body);
    assert_eq!(quota(&send(&get(path))), Some(5));

    // Version 2, then version 1 restored (as version 3).
    let second = send(&call("PUT", "/_policy", &policy(9), true));
    assert_eq!(json(&second)["version"], 2, "{}", second.body);
    assert_eq!(quota(&send(&get(path))), Some(9));
    let restored = send(&call("POST", "/_policy/restore?version=1", "", true));
    assert_eq!(restored.status, 200, "{}", restored.body);
    let body = json(&restored);
    assert_eq!(
        (body["version"].as_u64(), body["restored_from"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(quota(&send(&get(path))), Some(5));
    assert_eq!(quota(&reader(&get(path))), Some(5));

    let shown = json(&send(&call("GET", "/_policy", "", true)));
    assert_eq!(shown["stored_version"], 3, "{shown}");
    assert_eq!(
        shown["versions"].as_array().map(Vec::len),
        Some(3),
        "{shown}"
    );
    let health = json(&send(&get("/health")));
    assert_eq!(
        (
            health["policy"]["version"].as_u64(),
            health["policy"]["source"].as_str()
        ),
        (Some(3), Some("store")),
        "{health}"
    );
    // Back to the deployed policy.
    let deployed = send(&call("DELETE", "/_policy", "", true));
    assert_eq!(json(&deployed)["version"], 4, "{}", deployed.body);
    assert_eq!(quota(&send(&get(path))), Some(2));
    assert!(
        !logs().contains(POLICY_TOKEN),
        "the policy token reached the logs"
    );
    Figures {
        put_to_decided,
        put: put_took,
    }
}

/// The gateway's policy: counters mounted behind the limiter of `policy`.
fn gateway_policy(limit: u64) -> String {
    format!(
        "[gateway]\n[[gateway.routes]]\nroute = \"/counters/**\"\nrate_limit = true\n\
         mount = \"counter\"\nstrip_prefix = false\n{}",
        policy(limit)
    )
}

/// `function`'s Spin build on `/{function}`, deployed with `policy` and
/// the dev secrets plus the policy token.
fn spin_app(function: &str, policy: &str, kv: KvStore, logs: GuestLogs) -> App {
    let registry = edge_registry::Registry::load().unwrap();
    let mut variables: BTreeMap<String, String> = registry
        .dev
        .secrets
        .into_iter()
        .chain(secrets())
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    variables.insert("policy".into(), policy.into());
    App::load(
        &wasm_tests::spin_component(function),
        AppConfig {
            variables: variables.into_iter().collect(),
            kv,
            route: format!("/{function}"),
            guest_stderr: Some(logs),
        },
    )
    .expect("the Spin build (run `cargo xtask build`)")
}

fn spin_send(runtime: &tokio::runtime::Runtime, app: &App, call: &Call<'_>) -> Actual {
    let mut builder = http::Request::builder().method(call.method).uri(format!(
        "http://127.0.0.1{}{}",
        app.route(),
        call.path
    ));
    if call.admin {
        builder = builder.header("authorization", format!("Bearer {POLICY_TOKEN}"));
    }
    let request = builder
        .body(bytes::Bytes::from(call.body.to_owned()))
        .unwrap();
    let client: SocketAddr = ([127, 0, 0, 1], 40007).into();
    let response = runtime.block_on(app.handle(request, client)).unwrap();
    let (parts, body) = response.into_parts();
    Actual::new(parts.status, &parts.headers, &body)
}

#[test]
fn spin_build_takes_a_policy_put_on_the_next_request_on_every_host() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let kv = KvStore::new();
    let logs = GuestLogs::new(1 << 20);
    let host = spin_app("rate-limit", &policy(2), kv.clone(), logs.clone());
    let other_host = spin_app("rate-limit", &policy(2), kv, logs.clone());
    let figures = scenario(
        &policy,
        "/",
        &|call| spin_send(&runtime, &host, call),
        &|call| spin_send(&runtime, &other_host, call),
        &|| String::from_utf8_lossy(&logs.contents()).into_owned(),
    );
    eprintln!(
        "policy store (spin): PUT {:.1} ms; PUT to the first request decided by it {:.1} ms",
        figures.put.as_secs_f64() * 1e3,
        figures.put_to_decided.as_secs_f64() * 1e3
    );
}

fn workers_send(dev: &WranglerDev, call: &Call<'_>) -> Actual {
    let mut case = serde_json::json!({
        "method": call.method, "path": call.path, "body": call.body,
    });
    if call.admin {
        case["headers"] = serde_json::json!({ "authorization": format!("Bearer {POLICY_TOKEN}") });
    }
    let case: CaseRequest = serde_json::from_value(case).unwrap();
    send(&agent(Duration::from_secs(30)), &dev.url(), &case).unwrap()
}

#[test]
fn workers_build_takes_a_policy_put_on_the_next_request() {
    let vars: BTreeMap<String, String> = [("POLICY".to_owned(), policy(2))].into();
    let mut dev = WranglerDev::start("rate-limit", &vars, &secrets()).expect("wrangler dev");
    // wrangler dev runs one isolate: the reader is the same worker.
    let figures = scenario(
        &policy,
        "/",
        &|call| workers_send(&dev, call),
        &|call| workers_send(&dev, call),
        &|| dev.log_tail(),
    );
    eprintln!(
        "policy store (workers): PUT {:.1} ms; PUT to the first request decided by it {:.1} ms",
        figures.put.as_secs_f64() * 1e3,
        figures.put_to_decided.as_secs_f64() * 1e3
    );
    // A stored version outlives the isolate: a fresh one (a restart on the
    // same Durable Objects) starts on it, not on the deployed POLICY.
    let put = workers_send(&dev, &call("PUT", "/_policy", &policy(7), true));
    assert_eq!(json(&put)["version"], 5, "{}", put.body);
    dev.restart("rate-limit", &vars, &secrets())
        .expect("wrangler dev restarted");
    let first = workers_send(&dev, &get("/"));
    assert_eq!(quota(&first), Some(7), "{}", dev.log_tail());
    let health = json(&workers_send(&dev, &get("/health")));
    assert_eq!(health["policy"]["version"], 5, "{health}");
}

#[test]
fn gateway_spin_build_takes_a_policy_put_for_the_limiter_it_composes() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let logs = GuestLogs::new(1 << 20);
    let gateway = spin_app("gateway", &gateway_policy(2), KvStore::new(), logs.clone());
    scenario(
        &gateway_policy,
        "/counters/demo",
        &|call| spin_send(&runtime, &gateway, call),
        &|call| spin_send(&runtime, &gateway, call),
        &|| String::from_utf8_lossy(&logs.contents()).into_owned(),
    );
}
