//! auth-check's API keys on several hosts sharing one Redis: four hosts
//! (the auth-check Spin build, each with its own connection pool to one
//! throwaway `redis-server`) issue, verify and rotate keys together.
//!
//! - 32 keys created at once, spread over the four hosts on stores slowed
//!   to 2 ms a call (every admin write contends for the one index record):
//!   a writer that keeps losing answers 503 with nothing changed, and sent
//!   again it gets its key; each key created is listed and passes on every
//!   host — compare-and-swap loses none.
//! - A rotation with an overlap while the other hosts keep verifying: not
//!   one request refused, the new key passing everywhere at once; a second
//!   rotation with `"0s"` (a leak) refuses every earlier key on every host
//!   from the next request on.
//! - Redis killed mid-way: issuing and verifying answer 503 (never a
//!   refusal that would look like a bad key, never a pass); restarted on
//!   its append-only file, every key issued before passes again, and a
//!   rotation then completes.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wasm_tests::host::{App, AppConfig, GuestLogs, KvStore};
use wasm_tests::redis_server::RedisServer;

const HOSTS: usize = 4;
const ADMIN: &str = "admin-token-for-api-key-tests";
const KEYS: usize = 32;

/// API keys only: every route needs one.
const POLICY: &str = r#"
[auth]
default = "authenticated"
[[auth.rules]]
route = "/**"
credentials = ["api_key"]
[auth.api_keys]
environment = "prod"
hash_key_secret = "AUTH_API_KEY_HASH_KEY"
admin_token_secret = "AUTH_ADMIN_TOKEN"
rotation_overlap = "1h"
"#;

fn host(redis: &str, logs: &GuestLogs) -> App {
    let variables = [
        ("policy", POLICY),
        ("auth_api_key_hash_key", "api-key-hash-key-for-tests"),
        ("auth_admin_token", ADMIN),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    App::load(
        &wasm_tests::spin_component("auth-check"),
        AppConfig {
            variables: variables.into_iter().collect(),
            kv: KvStore::redis(redis).expect("Redis"),
            route: "/auth-check".into(),
            guest_stderr: Some(logs.clone()),
        },
    )
    .expect("the Spin build of auth-check (run `cargo xtask build-spin auth-check`)")
}

/// One answer: status and JSON body (null when not JSON).
async fn call(
    app: &App,
    method: &str,
    path: &str,
    body: Value,
    header: (&str, &str),
) -> (u16, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1/auth-check{path}"))
        .header(header.0, header.1)
        .header("content-type", "application/json")
        .body(bytes::Bytes::from(if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        }))
        .unwrap();
    let client: SocketAddr = ([127, 0, 0, 1], 40009).into();
    let response = app.handle(request, client).await.unwrap();
    let status = response.status().as_u16();
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (status, body)
}

async fn admin(app: &App, method: &str, path: &str, body: Value) -> (u16, Value) {
    let bearer = format!("Bearer {ADMIN}");
    call(
        app,
        method,
        &format!("/_auth{path}"),
        body,
        ("authorization", &bearer),
    )
    .await
}

async fn verify(app: &App, key: &str) -> u16 {
    call(app, "GET", "/api/report", Value::Null, ("x-api-key", key))
        .await
        .0
}

/// Every key's status on every host.
async fn verify_everywhere(hosts: &[Arc<App>], keys: &[String]) -> Vec<u16> {
    let mut statuses = Vec::new();
    for host in hosts {
        for key in keys {
            statuses.push(verify(host, key).await);
        }
    }
    statuses
}

#[test]
fn api_keys_on_one_redis_are_issued_rotated_and_kept_across_hosts() {
    let mut redis = RedisServer::start_durable().expect("redis-server");
    let url = redis.url();
    let logs = GuestLogs::new(1 << 22);
    let hosts: Vec<Arc<App>> = (0..HOSTS).map(|_| Arc::new(host(&url, &logs))).collect();
    let logs = || String::from_utf8_lossy(&logs.contents()).into_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // 32 keys at once over four hosts, each request a task of its own,
        // on stores slowed to 2 ms a call so that the writes overlap.
        for host in &hosts {
            host.kv().set_delay(Duration::from_millis(2));
        }
        let tasks: Vec<_> = (0..KEYS)
            .map(|i| {
                let host = Arc::clone(&hosts[i % HOSTS]);
                tokio::spawn(async move {
                    // As a client would: a 503 (other writers kept
                    // winning; nothing changed) is sent again.
                    let mut refused = 0;
                    loop {
                        let id = json!({ "id": format!("k{i}") });
                        let answer = admin(&host, "POST", "/keys", id).await;
                        if answer.0 != 503 || refused == 10 {
                            return (answer, refused);
                        }
                        refused += 1;
                    }
                })
            })
            .collect();
        let mut created = Vec::new();
        for task in tasks {
            created.push(task.await.unwrap());
        }
        for host in &hosts {
            host.kv().set_delay(Duration::ZERO);
        }
        let retried: usize = created.iter().map(|(_, refused)| refused).sum();
        eprintln!("api keys on Redis: 32 keys created at once, {retried} answers 503 sent again");
        let mut keys = Vec::new();
        for ((status, body), _) in &created {
            assert_eq!(*status, 201, "{body}\n{}", logs());
            keys.push(body["key"].as_str().unwrap().to_owned());
        }
        let (status, listed) = admin(&hosts[3], "GET", "/keys?limit=100", Value::Null).await;
        assert_eq!(status, 200, "{listed}");
        let ids: BTreeSet<&str> = listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k["id"].as_str())
            .collect();
        let expected: BTreeSet<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
        assert_eq!(
            ids,
            expected.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            "every key created is listed"
        );
        assert_eq!(
            verify_everywhere(&hosts, &keys).await,
            vec![200; HOSTS * KEYS]
        );
        assert_eq!(
            verify(&hosts[0], &format!("{}x", &keys[0][..keys[0].len() - 1])).await,
            401
        );

        // Rotation with an overlap while three hosts keep verifying.
        let old = keys[0].clone();
        let verifying = futures::future::join_all((1..HOSTS).map(|h| {
            let (host, old) = (&hosts[h], old.as_str());
            async move {
                let mut statuses = Vec::new();
                for _ in 0..20 {
                    statuses.push(verify(host, old).await);
                }
                statuses
            }
        }));
        let rotating = admin(
            &hosts[0],
            "POST",
            "/keys/k0/rotate",
            json!({ "overlap": "1h" }),
        );
        let (statuses, (status, rotated)) = futures::future::join(verifying, rotating).await;
        assert_eq!(status, 200, "{rotated}");
        for statuses in statuses {
            assert_eq!(
                statuses,
                vec![200; 20],
                "the old key passes through the rotation"
            );
        }
        let new = rotated["key"].as_str().unwrap().to_owned();
        assert_eq!(
            verify_everywhere(&hosts, &[old.clone(), new.clone()]).await,
            vec![200; HOSTS * 2],
            "both keys pass on every host during the overlap"
        );

        // A leak: "0s" ends every earlier key at once, everywhere.
        let (status, leaked) = admin(
            &hosts[2],
            "POST",
            "/keys/k0/rotate",
            json!({ "overlap": "0s" }),
        )
        .await;
        assert_eq!(status, 200, "{leaked}");
        let newest = leaked["key"].as_str().unwrap().to_owned();
        for host in &hosts {
            assert_eq!(verify(host, &old).await, 401);
            assert_eq!(verify(host, &new).await, 401);
            assert_eq!(verify(host, &newest).await, 200);
        }
        keys[0] = newest;

        // Redis killed: 503 for issuing and verifying, never a pass or a 401.
        redis.kill();
        let (status, body) = admin(&hosts[1], "POST", "/keys", json!({ "id": "while-down" })).await;
        assert_eq!(status, 503, "{body}");
        for host in &hosts {
            assert_eq!(verify(host, &keys[5]).await, 503);
        }
        redis.restart().unwrap();
        assert_eq!(
            verify_everywhere(&hosts, &keys).await,
            vec![200; HOSTS * KEYS],
            "every key issued before the kill passes again"
        );
        let (status, rotated) = admin(&hosts[3], "POST", "/keys/k7/rotate", json!({})).await;
        assert_eq!(status, 200, "{rotated}");
        let k7 = rotated["key"].as_str().unwrap();
        assert_eq!(verify(&hosts[0], k7).await, 200);
        assert_eq!(verify(&hosts[1], &keys[7]).await, 200, "in its overlap");
    });
}
