//! Spin on several hosts sharing one Redis: four `edge-host` processes
//! (each its own engine, linker and connection pool, as four Spin nodes
//! would have) running the rate limiter's Spin build with `--redis` on one
//! throwaway `redis-server`.
//!
//! - 64 clients spread over the four hosts against one limit admit exactly
//!   the limit, for every algorithm the rate limiter offers; the metrics
//!   each host merged into the same Redis add up, at a metrics component
//!   reading it, to exactly the requests sent, per route and status.
//! - Redis killed mid-run (SIGKILL between two rounds of traffic, the hosts
//!   left running on their dead connections): a `fail_open` scope admits
//!   without charging, a `fail_closed` one answers 503 with `Retry-After`;
//!   restarted on its append-only file, the limit continues from what was
//!   charged before the kill (nothing lost, nothing counted twice: exactly
//!   the limit admitted over the whole run), and the metrics hold every
//!   request answered while Redis was up, once.
//!
//! The store's own semantics on Redis (every key-value and atomics call,
//! compare-and-swap conflicts, a restart) are the unit tests in
//! `src/host/kv.rs`, run on both backends.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasm_tests::conformance::{Actual, CaseRequest};
use wasm_tests::host::{App, AppConfig, GuestLogs, KvStore};
use wasm_tests::redis_server::{RedisServer, TiedChild};
use wasm_tests::workerd::{agent, send};

const HOSTS: usize = 4;
const CLIENTS: usize = 64;

/// One `edge-host` process; killed on drop.
struct EdgeHost {
    url: String,
    dir: PathBuf,
    _child: TiedChild,
}

impl EdgeHost {
    /// Starts `edge-host` with the rate limiter's Spin build on
    /// `/rate-limit`, `policy`, and its store on `redis`.
    fn start(redis: &str, policy: &str, index: usize) -> EdgeHost {
        let dir = std::env::temp_dir().join(format!(
            "edge-host-redis-{}-{index}-{}",
            std::process::id(),
            policy.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let wasm = wasm_tests::spin_component("rate-limit");
        assert!(
            wasm.exists(),
            "{} is missing: run `cargo xtask build-spin rate-limit`",
            wasm.display()
        );
        let args: Vec<String> = [
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--app".to_owned(),
            format!("/rate-limit={}", wasm.display()),
            "--var".to_owned(),
            format!("policy={policy}"),
            "--var".to_owned(),
            "rate_limit_hash_key=k".to_owned(),
            "--var".to_owned(),
            "rate_limit_admin_token=t".to_owned(),
            "--redis".to_owned(),
            redis.to_owned(),
        ]
        .into();
        let stderr = dir.join("stderr.log");
        let (child, mut stdout) =
            TiedChild::spawn(env!("CARGO_BIN_EXE_edge-host").as_ref(), &args, &stderr).unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "edge-host did not start: {line:?}\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            })
            .to_owned();
        EdgeHost {
            url: format!("{url}/rate-limit"),
            dir,
            _child: child,
        }
    }
}

impl Drop for EdgeHost {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The hosts, started at once (each loads the component from the
/// compilation cache).
fn start_hosts(redis: &str, policy: &str) -> Vec<EdgeHost> {
    std::thread::scope(|scope| {
        let starts: Vec<_> = (0..HOSTS)
            .map(|i| scope.spawn(move || EdgeHost::start(redis, policy, i)))
            .collect();
        starts.into_iter().map(|s| s.join().unwrap()).collect()
    })
}

fn get(path: &str) -> CaseRequest {
    serde_json::from_value(serde_json::json!({ "method": "GET", "path": path })).unwrap()
}

/// `clients` clients at once, client `i` on host `i % HOSTS`, each
/// sending `per_client` requests to `path`; every answer.
fn traffic(hosts: &[EdgeHost], path: &str, clients: usize, per_client: usize) -> Vec<Actual> {
    let case = get(path);
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..clients)
            .map(|i| {
                let base = hosts[i % hosts.len()].url.clone();
                let case = &case;
                scope.spawn(move || {
                    let agent = agent(Duration::from_secs(60));
                    (0..per_client)
                        .map(|_| send(&agent, &base, case).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    })
}

/// Answers per status.
fn tally(answers: &[Actual]) -> BTreeMap<u16, u64> {
    let mut tally = BTreeMap::new();
    for a in answers {
        *tally.entry(a.status).or_default() += 1;
    }
    tally
}

fn add(into: &mut BTreeMap<u16, u64>, more: &BTreeMap<u16, u64>) {
    for (status, n) in more {
        *into.entry(*status).or_default() += n;
    }
}

/// What a metrics component on the same Redis reports for the rate
/// limiter: `route` → requests per status.
fn merged_metrics(redis: &str) -> BTreeMap<String, BTreeMap<u16, u64>> {
    let app = App::load(
        &wasm_tests::spin_component("metrics"),
        AppConfig {
            variables: [
                ("metrics_ingest_token", "ingest"),
                ("metrics_admin_token", "admin"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            kv: KvStore::redis(redis).unwrap(),
            route: "/metrics".into(),
            guest_stderr: Some(GuestLogs::new(1 << 20)),
        },
    )
    .expect("the Spin build of metrics (run `cargo xtask build-spin metrics`)");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = http::Request::builder()
        .uri("http://127.0.0.1/metrics/_metrics/snapshot")
        .body(bytes::Bytes::new())
        .unwrap();
    let client: SocketAddr = ([127, 0, 0, 1], 40020).into();
    let response = runtime.block_on(app.handle(request, client)).unwrap();
    assert_eq!(response.status(), 200);
    let snapshot: Value = serde_json::from_slice(response.body()).unwrap();
    snapshot["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["function"] == "rate-limit")
        .map(|r| {
            let statuses = r["statuses"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(s, n)| (s.parse().unwrap(), n.as_u64().unwrap()))
                .collect();
            (r["route"].as_str().unwrap().to_owned(), statuses)
        })
        .collect()
}

const SCOPES: [(&str, &str, &str); 5] = [
    ("FIXED", "fixed_window", ""),
    ("SLIDING", "sliding_window", ""),
    ("BUCKET", "token_bucket", ""),
    ("GCRA", "gcra", ""),
    ("LEASED", "fixed_window", "lease = 10\n"),
];

/// `scopes`, each `limit` per day on one global key (no refill during the
/// test) on its own path `/NAME`.
fn policy(limit: usize, scopes: &[(&str, &str, &str)]) -> String {
    let mut p = String::from(
        "[rate_limit]\nhash_key_secret = \"RATE_LIMIT_HASH_KEY\"\n\
         admin_token_secret = \"RATE_LIMIT_ADMIN_TOKEN\"\n",
    );
    for (name, algorithm, extra) in scopes {
        p.push_str(&format!(
            "[[rate_limit.scopes]]\nname = \"{name}\"\nalgorithm = \"{algorithm}\"\n\
             limit = {limit}\nperiod = \"1d\"\nkey = [\"global\"]\npaths = [\"/{name}\"]\n{extra}"
        ));
    }
    p
}

#[test]
fn four_hosts_on_one_redis_admit_exactly_the_limit_and_merge_metrics_exactly() {
    const LIMIT: usize = 100;
    const PER_CLIENT: usize = 2;
    let began = Instant::now();
    let redis = RedisServer::start().unwrap();
    let hosts = start_hosts(&redis.url(), &policy(LIMIT, &SCOPES));
    let started = began.elapsed();
    let mut sent = BTreeMap::new();
    for (scope, algorithm, _) in SCOPES {
        let t = Instant::now();
        let answers = traffic(&hosts, &format!("/{scope}"), CLIENTS, PER_CLIENT);
        let counts = tally(&answers);
        let total = (CLIENTS * PER_CLIENT) as u64;
        assert_eq!(
            counts,
            BTreeMap::from([(200, LIMIT as u64), (429, total - LIMIT as u64)]),
            "{scope} ({algorithm}) over {HOSTS} hosts\n{}",
            redis.log_tail()
        );
        eprintln!(
            "redis store: {scope} ({algorithm}): {} of {total} admitted over {HOSTS} hosts in {:.2} s",
            counts[&200],
            t.elapsed().as_secs_f64()
        );
        sent.insert(format!("/{scope}"), counts);
    }
    // Every request was merged into Redis by its host before it answered.
    let merged = merged_metrics(&redis.url());
    assert_eq!(merged, sent, "metrics merged from {HOSTS} hosts");
    eprintln!(
        "redis store: exactness and metrics over {HOSTS} hosts in {:.1} s ({:.1} s to start them)",
        began.elapsed().as_secs_f64(),
        started.as_secs_f64()
    );
}

#[test]
fn redis_killed_mid_run_fails_as_each_scope_says_and_loses_nothing() {
    const LIMIT: u64 = 100;
    const DOWN: usize = 16;
    let began = Instant::now();
    let mut redis = RedisServer::start_durable().unwrap();
    let scopes = [
        ("OPEN", "fixed_window", "on_store_failure = \"fail_open\"\n"),
        (
            "CLOSED",
            "sliding_window",
            "on_store_failure = \"fail_closed\"\n",
        ),
    ];
    let hosts = start_hosts(&redis.url(), &policy(LIMIT as usize, &scopes));
    let paths = ["/OPEN", "/CLOSED"];
    let mut up: BTreeMap<String, BTreeMap<u16, u64>> = BTreeMap::new();

    // Redis up: one request per client, 64 of each scope's 100 permits.
    for path in paths {
        let counts = tally(&traffic(&hosts, path, CLIENTS, 1));
        assert_eq!(counts, BTreeMap::from([(200, CLIENTS as u64)]), "{path}");
        up.insert(path.to_owned(), counts);
    }

    // Killed between two rounds; the hosts keep their dead connections.
    redis.kill();
    let open = traffic(&hosts, "/OPEN", DOWN, 1);
    for answer in &open {
        assert_eq!(answer.status, 200, "fail_open admits: {}", answer.body);
        assert!(
            !answer.headers.contains_key("ratelimit"),
            "nothing was counted, so no RateLimit field: {:?}",
            answer.headers
        );
    }
    let closed = traffic(&hosts, "/CLOSED", DOWN, 1);
    for answer in &closed {
        assert_eq!(answer.status, 503, "fail_closed refuses: {}", answer.body);
        assert_eq!(answer.headers["retry-after"], "5");
        assert_eq!(answer.headers["content-type"], "application/problem+json");
    }
    eprintln!(
        "redis store: Redis down: {DOWN} fail_open answers 200, {DOWN} fail_closed answers 503"
    );

    // Back on its append-only file: each scope has 36 permits left, for
    // all four hosts together.
    redis.restart().unwrap();
    for path in paths {
        let counts = tally(&traffic(&hosts, path, CLIENTS, 1));
        let left = LIMIT - CLIENTS as u64;
        assert_eq!(
            counts,
            BTreeMap::from([(200, left), (429, CLIENTS as u64 - left)]),
            "{path} after the restart: exactly what was left of the limit"
        );
        add(up.get_mut(path).unwrap(), &counts);
    }

    // The metrics hold every request answered while Redis was up, once;
    // the ones answered while it was down could not be merged (a Spin
    // instance lives for one request, so there is nowhere to keep them).
    let merged = merged_metrics(&redis.url());
    assert_eq!(merged, up, "metrics after the restart");
    eprintln!(
        "redis store: kill and restart over {HOSTS} hosts in {:.1} s",
        began.elapsed().as_secs_f64()
    );
}
