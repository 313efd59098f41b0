//! Atomic counting on the real stores: 64 concurrent increments of one key
//! must end at exactly 64 — on the Spin build (wasmtime host, key-value
//! atomics across concurrent instances) and on the Workers build (a Durable
//! Object under `wrangler dev`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use wasm_tests::conformance::CaseRequest;
use wasm_tests::host::{GuestLogs, KvStore};
use wasm_tests::workerd::{WranglerDev, agent, send};

const CLIENTS: usize = 64;

fn case(method: &str, path: &str) -> CaseRequest {
    serde_json::from_value(serde_json::json!({ "method": method, "path": path })).unwrap()
}

#[test]
fn spin_build_counts_concurrent_increments_exactly() {
    let app = Arc::new(crate::counter_app(
        "x-token",
        KvStore::new(),
        GuestLogs::new(1 << 20),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client: SocketAddr = ([127, 0, 0, 1], 40002).into();
    let values: Vec<i64> = runtime.block_on(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let app = Arc::clone(&app);
                tokio::spawn(async move {
                    let req = http::Request::builder()
                        .method("POST")
                        .uri("http://127.0.0.1/counter/counters/hot")
                        .body(bytes::Bytes::new())
                        .unwrap();
                    let response = app.handle(req, client).await.unwrap();
                    assert_eq!(response.status(), 200);
                    let body: Value = serde_json::from_slice(response.body()).unwrap();
                    body["value"].as_i64().unwrap()
                })
            })
            .collect();
        let mut values = Vec::new();
        for task in tasks {
            values.push(task.await.unwrap());
        }
        values
    });
    let mut sorted = values.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=CLIENTS as i64).collect::<Vec<_>>(),
        "each increment saw a distinct value"
    );
}

#[test]
fn workers_build_counts_concurrent_increments_exactly() {
    let secrets: BTreeMap<String, String> =
        [("COUNTER_ADMIN_TOKEN".to_owned(), "x-token".to_owned())].into();
    let dev = WranglerDev::start("counter", &BTreeMap::new(), &secrets).expect("wrangler dev");
    let base = dev.url();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || {
                let agent = agent(Duration::from_secs(60));
                let answer = send(&agent, &base, &case("POST", "/counters/hot")).unwrap();
                assert_eq!(answer.status, 200, "{}", answer.body);
                let body: Value = serde_json::from_str(&answer.body).unwrap();
                body["value"].as_i64().unwrap()
            })
        })
        .collect();
    let mut values: Vec<i64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (1..=CLIENTS as i64).collect::<Vec<_>>(),
        "each increment saw a distinct value"
    );
    let agent = agent(Duration::from_secs(30));
    let read = send(&agent, &base, &case("GET", "/counters/hot")).unwrap();
    let body: Value = serde_json::from_str(&read.body).unwrap();
    assert_eq!(body["value"], CLIENTS as i64, "{}", dev.log_tail());
}
