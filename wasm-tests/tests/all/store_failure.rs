//! With the store down, the counter does what its docs say: counter
//! requests answer 503 problem+json with `Retry-After`, `/health` answers
//! 503 with the store check failing, nothing else breaks, and it recovers
//! when the store comes back. Shown natively and on the Spin build in the
//! wasmtime host, whose key-value store is switched off.

use std::net::SocketAddr;

use counter::{ADMIN_TOKEN_SECRET, Counter};
use edge_core::{Config, EdgeFunction};
use serde_json::Value;
use wasm_tests::host::{GuestLogs, KvStore};
use wasm_tests::native::NativeFunction;

fn request(method: &str, uri: &str) -> edge_core::Request {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(bytes::Bytes::new())
        .unwrap()
}

fn json(response: &edge_core::Response) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

/// The documented store-down behaviour, for any way of sending a request.
fn assert_fails_closed(down_post: &edge_core::Response, down_health: &edge_core::Response) {
    assert_eq!(down_post.status(), 503);
    assert_eq!(
        down_post.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(down_post.headers()["retry-after"], "5");
    let body = json(down_post);
    assert_eq!(body["type"], "urn:edge-functions:problem:store-unavailable");
    assert_eq!(down_health.status(), 503);
    let health = json(down_health);
    assert_eq!(health["status"], "fail");
    assert_eq!(health["checks"]["store"]["status"], "fail");
}

#[test]
fn native_counter_fails_closed_and_recovers() {
    futures::executor::block_on(async {
        let config =
            Config::new(Counter::DEFAULT_POLICY).with_secret(ADMIN_TOKEN_SECRET, "t0k3n-value");
        let function = NativeFunction::<Counter>::new(&config);
        let ok = function.serve(request("POST", "/counters/a")).await;
        assert_eq!(json(&ok)["value"], 1);

        function.store.set_available(false);
        let post = function.serve(request("POST", "/counters/a")).await;
        let health = function.serve(request("GET", "/health")).await;
        assert_fails_closed(&post, &health);
        let not_found = function.serve(request("GET", "/elsewhere")).await;
        assert_eq!(not_found.status(), 404, "routing does not need the store");
        let logs = function.logs.lines().join("\n");
        assert!(logs.contains("store unavailable; failing closed"), "{logs}");
        assert!(!logs.contains("t0k3n-value"), "a secret reached the logs");

        function.store.set_available(true);
        let back = function.serve(request("POST", "/counters/a")).await;
        assert_eq!(json(&back)["value"], 2, "no increment was lost or doubled");
    });
}

#[test]
fn spin_build_fails_closed_and_recovers() {
    let kv = KvStore::new();
    let logs = GuestLogs::new(1 << 20);
    let app = crate::counter_app("t0k3n-value", kv.clone(), logs.clone());
    let client: SocketAddr = ([127, 0, 0, 1], 40001).into();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let send = |method: &str, path: &str| {
        let req = request(method, &format!("http://127.0.0.1/counter{path}"));
        runtime.block_on(app.handle(req, client)).unwrap()
    };
    assert_eq!(json(&send("POST", "/counters/a"))["value"], 1);

    kv.set_available(false);
    assert_fails_closed(&send("POST", "/counters/a"), &send("GET", "/health"));
    assert_eq!(send("GET", "/elsewhere").status(), 404);

    kv.set_available(true);
    assert_eq!(json(&send("POST", "/counters/a"))["value"], 2);

    let logs = String::from_utf8_lossy(&logs.contents()).into_owned();
    assert!(logs.contains("store unavailable; failing closed"), "{logs}");
    assert!(
        !logs.contains("t0k3n-value"),
        "a secret reached the guest's logs"
    );
    for line in logs.lines() {
        let record: Value = serde_json::from_str(line).expect("every guest log line is JSON");
        assert_eq!(record["function"], "counter");
        assert_eq!(record["service"], "edge-functions");
    }
}
