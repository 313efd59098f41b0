//! The rate limiter on the real stores: 64 concurrent clients against one
//! key admit exactly the limit — on the Spin build (wasmtime host,
//! compare-and-swap on `wasi:keyvalue` across concurrent instances) and on
//! the Workers build (one Durable Object per key under `wrangler dev`,
//! strict and leased) — and each failure mode holds on the Spin build with
//! its key-value store switched off. A per-key override holds under the
//! same concurrency: a tenant is admitted exactly its higher limit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use wasm_tests::conformance::CaseRequest;
use wasm_tests::host::{App, AppConfig, GuestLogs, KvStore};
use wasm_tests::workerd::{WranglerDev, agent, send};

const CLIENTS: usize = 64;
const PER_CLIENT: usize = 3;
const LIMIT: usize = 100;

/// One scope per algorithm, each `LIMIT` per day on one global key (so no
/// refill during the test), plus a leased fixed window.
fn policy() -> String {
    let mut p = String::from(
        "[rate_limit]\nhash_key_secret = \"RATE_LIMIT_HASH_KEY\"\n\
         admin_token_secret = \"RATE_LIMIT_ADMIN_TOKEN\"\n",
    );
    for (name, algorithm, extra) in [
        ("FIXED", "fixed_window", ""),
        ("SLIDING", "sliding_window", ""),
        ("BUCKET", "token_bucket", ""),
        ("GCRA", "gcra", ""),
        ("LEASED", "fixed_window", "lease = 10\n"),
    ] {
        p.push_str(&format!(
            "[[rate_limit.scopes]]\nname = \"{name}\"\nalgorithm = \"{algorithm}\"\n\
             limit = {LIMIT}\nperiod = \"1d\"\nkey = [\"global\"]\npaths = [\"/{name}\"]\n{extra}"
        ));
    }
    p
}

fn secrets() -> BTreeMap<String, String> {
    [
        ("RATE_LIMIT_HASH_KEY".to_owned(), "k".to_owned()),
        ("RATE_LIMIT_ADMIN_TOKEN".to_owned(), "t".to_owned()),
    ]
    .into()
}

fn spin_app(policy: &str, extra: &[(&str, &str)], kv: KvStore) -> App {
    let mut variables: BTreeMap<String, String> = secrets()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    variables.insert("policy".into(), policy.into());
    for (k, v) in extra {
        variables.insert((*k).into(), (*v).into());
    }
    App::load(
        &wasm_tests::spin_component("rate-limit"),
        AppConfig {
            variables: variables.into_iter().collect(),
            kv,
            route: "/rate-limit".into(),
            guest_stderr: Some(GuestLogs::new(1 << 20)),
        },
    )
    .expect("the Spin build of rate-limit (run `cargo xtask build`)")
}

fn get(path: &str) -> http::Request<bytes::Bytes> {
    get_as(path, None)
}

/// A request by the verified subject `sub` (the header the gateway sets).
fn get_as(path: &str, sub: Option<&str>) -> http::Request<bytes::Bytes> {
    let mut req = http::Request::builder().uri(format!("http://127.0.0.1/rate-limit{path}"));
    if let Some(sub) = sub {
        req = req.header("x-auth-sub", sub);
    }
    req.body(bytes::Bytes::new()).unwrap()
}

/// Statuses of `CLIENTS` concurrent clients each sending `PER_CLIENT` requests.
fn spin_statuses(app: &Arc<App>, path: &str) -> Vec<u16> {
    spin_statuses_as(app, path, None)
}

/// The same, each request by the subject `sub`.
fn spin_statuses_as(app: &Arc<App>, path: &str, sub: Option<&str>) -> Vec<u16> {
    spin_statuses_on(app, path, sub, 2)
}

/// The same on `threads` worker threads (a slow store blocks one per call).
fn spin_statuses_on(app: &Arc<App>, path: &str, sub: Option<&str>, threads: usize) -> Vec<u16> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let client: SocketAddr = ([127, 0, 0, 1], 40003).into();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let app = Arc::clone(app);
                let path = path.to_owned();
                let sub = sub.map(str::to_owned);
                tokio::spawn(async move {
                    let mut statuses = Vec::new();
                    for _ in 0..PER_CLIENT {
                        let request = get_as(&path, sub.as_deref());
                        let response = app.handle(request, client).await.unwrap();
                        statuses.push(response.status().as_u16());
                    }
                    statuses
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    })
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[test]
fn spin_build_admits_exactly_the_limit_under_64_concurrent_clients() {
    let app = Arc::new(spin_app(&policy(), &[], KvStore::new()));
    for scope in ["FIXED", "SLIDING", "BUCKET", "GCRA", "LEASED"] {
        let statuses = spin_statuses(&app, &format!("/{scope}"));
        assert_eq!(
            (count(&statuses, 200), count(&statuses, 429)),
            (LIMIT, CLIENTS * PER_CLIENT - LIMIT),
            "{scope}: {statuses:?}"
        );
    }
}

/// A slow store (every key-value call 5 ms, the calling thread held, as a
/// distant store would): 16 requests in flight at once against one key
/// make compare-and-swap conflicts the rule, and still exactly the limit is
/// admitted, every other request refused with 429, none failing.
#[test]
fn spin_build_admits_exactly_the_limit_on_a_slow_store() {
    let kv = KvStore::new();
    kv.set_delay(Duration::from_millis(5));
    let app = Arc::new(spin_app(&policy(), &[], kv));
    for scope in ["FIXED", "SLIDING", "BUCKET", "GCRA", "LEASED"] {
        let started = std::time::Instant::now();
        let statuses = spin_statuses_on(&app, &format!("/{scope}"), None, 16);
        assert_eq!(
            (count(&statuses, 200), count(&statuses, 429)),
            (LIMIT, CLIENTS * PER_CLIENT - LIMIT),
            "{scope}: {statuses:?}"
        );
        eprintln!(
            "rate limit, slow store (5 ms a call): {scope} {} requests in {:.1} s",
            statuses.len(),
            started.elapsed().as_secs_f64()
        );
    }
}

/// A tenant's higher limit on each algorithm, each subject its own key.
const TENANT_LIMIT: usize = 150;

/// One scope per algorithm keyed by `sub`, `LIMIT` a day, and tenant-a's
/// override of `TENANT_LIMIT`.
fn tenant_policy() -> String {
    let mut policy = String::from(
        "[rate_limit]\nhash_key_secret = \"RATE_LIMIT_HASH_KEY\"\n\
         admin_token_secret = \"RATE_LIMIT_ADMIN_TOKEN\"\n",
    );
    for (name, algorithm) in [
        ("FIXED", "fixed_window"),
        ("SLIDING", "sliding_window"),
        ("BUCKET", "token_bucket"),
        ("GCRA", "gcra"),
    ] {
        policy.push_str(&format!(
            "[[rate_limit.scopes]]\nname = \"{name}\"\nalgorithm = \"{algorithm}\"\n\
             limit = {LIMIT}\nperiod = \"1d\"\nkey = [\"sub\"]\npaths = [\"/{name}\"]\n\
             [[rate_limit.scopes.overrides]]\nmatch = [\"sub:tenant-a\"]\nlimit = {TENANT_LIMIT}\n"
        ));
    }
    policy
}

#[test]
fn spin_build_admits_a_tenant_exactly_its_override_under_64_concurrent_clients() {
    let app = Arc::new(spin_app(&tenant_policy(), &[], KvStore::new()));
    for scope in ["FIXED", "SLIDING", "BUCKET", "GCRA"] {
        let path = format!("/{scope}");
        let tenant = spin_statuses_as(&app, &path, Some("tenant-a"));
        assert_eq!(
            (count(&tenant, 200), count(&tenant, 429)),
            (TENANT_LIMIT, CLIENTS * PER_CLIENT - TENANT_LIMIT),
            "{scope} tenant-a: {tenant:?}"
        );
        let other = spin_statuses_as(&app, &path, Some("bob"));
        assert_eq!(
            (count(&other, 200), count(&other, 429)),
            (LIMIT, CLIENTS * PER_CLIENT - LIMIT),
            "{scope} bob: {other:?}"
        );
        // The fields name the limit applied.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client: SocketAddr = ([127, 0, 0, 1], 40005).into();
        let answer = runtime
            .block_on(app.handle(get_as(&path, Some("tenant-a")), client))
            .unwrap();
        assert_eq!(answer.status(), 429);
        assert_eq!(
            answer.headers()["ratelimit-policy"],
            format!("\"{scope}\";q={TENANT_LIMIT};w=86400").as_str()
        );
    }
}

#[test]
fn workers_build_admits_exactly_the_limit_under_64_concurrent_clients() {
    let vars: BTreeMap<String, String> = [("POLICY".to_owned(), policy())].into();
    let dev = WranglerDev::start("rate-limit", &vars, &secrets()).expect("wrangler dev");
    for scope in ["FIXED", "SLIDING", "BUCKET", "GCRA", "LEASED"] {
        let statuses = workers_statuses(&dev, &format!("/{scope}"), None);
        assert_eq!(
            (count(&statuses, 200), count(&statuses, 429)),
            (LIMIT, CLIENTS * PER_CLIENT - LIMIT),
            "{scope}: {statuses:?}\n{}",
            dev.log_tail()
        );
    }
}

/// Statuses of `CLIENTS` concurrent clients of `dev` each sending
/// `PER_CLIENT` requests, as the subject `sub` when given.
fn workers_statuses(dev: &WranglerDev, path: &str, sub: Option<&str>) -> Vec<u16> {
    let mut request = serde_json::json!({ "method": "GET", "path": path });
    if let Some(sub) = sub {
        request["headers"] = serde_json::json!({ "x-auth-sub": sub });
    }
    let case: CaseRequest = serde_json::from_value(request).unwrap();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let base = dev.url();
            let case = case.clone();
            std::thread::spawn(move || {
                let agent = agent(Duration::from_secs(60));
                (0..PER_CLIENT)
                    .map(|_| send(&agent, &base, &case).unwrap().status)
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

#[test]
fn workers_build_admits_a_tenant_exactly_its_override_under_64_concurrent_clients() {
    let vars: BTreeMap<String, String> = [("POLICY".to_owned(), tenant_policy())].into();
    let dev = WranglerDev::start("rate-limit", &vars, &secrets()).expect("wrangler dev");
    for scope in ["FIXED", "SLIDING", "BUCKET", "GCRA"] {
        let path = format!("/{scope}");
        for (sub, limit) in [("tenant-a", TENANT_LIMIT), ("bob", LIMIT)] {
            let statuses = workers_statuses(&dev, &path, Some(sub));
            assert_eq!(
                (count(&statuses, 200), count(&statuses, 429)),
                (limit, CLIENTS * PER_CLIENT - limit),
                "{scope} {sub}: {statuses:?}\n{}",
                dev.log_tail()
            );
        }
    }
}

fn failing(mode: &str) -> String {
    format!(
        "[rate_limit]\nhash_key_secret = \"RATE_LIMIT_HASH_KEY\"\n\
         [[rate_limit.scopes]]\nname = \"S\"\nalgorithm = \"fixed_window\"\nlimit = 3\n\
         period = \"1h\"\nkey = [\"global\"]\non_store_failure = \"{mode}\"\nlocal_limit = 2\n"
    )
}

#[test]
fn spin_build_fails_as_each_scope_says_when_the_store_is_down() {
    let kv = KvStore::new();
    kv.set_available(false);
    let client: SocketAddr = ([127, 0, 0, 1], 40004).into();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let statuses = |app: &App, n: usize| -> Vec<http::Response<bytes::Bytes>> {
        (0..n)
            .map(|_| runtime.block_on(app.handle(get("/x"), client)).unwrap())
            .collect()
    };

    let open = spin_app(&failing("fail_open"), &[], kv.clone());
    let answers = statuses(&open, 5);
    assert!(answers.iter().all(|r| r.status() == 200));
    assert!(answers[0].headers().get("ratelimit").is_none());

    let closed = spin_app(&failing("fail_closed"), &[], kv.clone());
    let answer = &statuses(&closed, 1)[0];
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "5");
    assert_eq!(answer.headers()["content-type"], "application/problem+json");

    // Spin starts each request afresh, so `local` limits each request alone:
    // it admits (local_limit >= cost) and never reaches the store.
    let local = spin_app(&failing("local"), &[], kv.clone());
    assert!(statuses(&local, 3).iter().all(|r| r.status() == 200));

    // RATE_LIMIT_FAIL_OPEN=true turns a scope without a mode to fail-open.
    let no_mode = failing("fail_closed").replace("on_store_failure = \"fail_closed\"\n", "");
    let env_open = spin_app(&no_mode, &[("rate_limit_fail_open", "true")], kv.clone());
    assert_eq!(statuses(&env_open, 1)[0].status(), 200);
    let env_closed = spin_app(&no_mode, &[("rate_limit_fail_open", "false")], kv.clone());
    assert_eq!(statuses(&env_closed, 1)[0].status(), 503);

    // Back up: the store counts again (3 admitted, then 429).
    kv.set_available(true);
    let codes: Vec<u16> = statuses(&closed, 4)
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(codes, [200, 200, 200, 429]);
}
