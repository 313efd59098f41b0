//! Spin on several hosts sharing one Redis: four `edge-host` processes
//! (each its own engine, linker and connection pool, as four Spin nodes
//! would have) running the Spin builds of the rate limiter, the counter and
//! the spatial query with `--redis` on one throwaway `redis-server`.
//!
//! - 64 clients spread over the four hosts against one limit admit exactly
//!   the limit, for every algorithm the rate limiter offers; 64 counter
//!   increments hand out each value once; the metrics each host merged
//!   into the same Redis add up, at a metrics component reading it, to
//!   exactly the requests sent, per route and status.
//! - Redis killed mid-run (SIGKILL between two rounds of traffic, the hosts
//!   left running on their dead connections): a `fail_open` scope admits
//!   without charging, a `fail_closed` one and the counter answer 503 with
//!   `Retry-After`; restarted on its append-only file, the limit and the
//!   counter go on from what was stored before the kill (nothing lost,
//!   nothing counted twice), and the metrics hold every request answered
//!   while Redis was up, once.
//! - Redis killed under load, requests in flight: never over-admission, at
//!   most one permit charged without an answer per client, no failure once
//!   Redis answers again.
//! - One host swaps the spatial head batch after batch while three others
//!   query: every answer holds whole batches, never fewer than before.
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
/// What every host serves.
const COMPONENTS: [&str; 3] = ["rate-limit", "counter", "spatial-query"];
const CLIENTS: usize = 64;

/// One `edge-host` process; killed on drop.
struct EdgeHost {
    /// The rate limiter's base URL.
    url: String,
    /// The counter's base URL.
    counter: String,
    /// The spatial query's base URL.
    spatial: String,
    _child: TiedChild,
    /// Dropped after the child: its manifest and log.
    _scratch: Scratch,
}

/// A directory removed on drop, even when starting the host fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl EdgeHost {
    /// Starts `edge-host` with the rate limiter's Spin build on
    /// `/rate-limit` with `policy`, the counter's on `/counter` and the
    /// spatial query's on `/spatial-query`, their store on `redis`.
    fn start(redis: &str, policy: &str) -> EdgeHost {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("edge-host-redis-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let scratch = Scratch(dir.clone());
        let [wasm, counter, spatial] = COMPONENTS.map(|name| {
            let wasm = wasm_tests::spin_component(name);
            assert!(
                wasm.exists(),
                "{} is missing: run `cargo xtask build-spin {name}`",
                wasm.display()
            );
            wasm
        });
        // A manifest of the three, so that each has its own variables.
        let manifest = format!(
            r#"spin_manifest_version = 2
[application]
name = "redis-store-test"
[variables]
rate_limit_policy = {{ required = true }}
[[trigger.http]]
route = "/rate-limit/..."
component = "rate-limit"
[[trigger.http]]
route = "/counter/..."
component = "counter"
[component.rate-limit]
source = "{}"
key_value_stores = ["default"]
[component.rate-limit.variables]
policy = "{{{{ rate_limit_policy }}}}"
rate_limit_hash_key = "k"
rate_limit_admin_token = "t"
[component.counter]
source = "{}"
key_value_stores = ["default"]
[component.counter.variables]
counter_admin_token = "c"
[[trigger.http]]
route = "/spatial-query/..."
component = "spatial-query"
[component.spatial-query]
source = "{}"
key_value_stores = ["default"]
[component.spatial-query.variables]
spatial_admin_token = "s"
"#,
            wasm.display(),
            counter.display(),
            spatial.display()
        );
        std::fs::write(dir.join("spin.toml"), manifest).unwrap();
        let args: Vec<String> = [
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--manifest".to_owned(),
            dir.join("spin.toml").display().to_string(),
            "--var".to_owned(),
            format!("rate_limit_policy={policy}"),
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
            counter: format!("{url}/counter"),
            spatial: format!("{url}/spatial-query"),
            url: format!("{url}/rate-limit"),
            _child: child,
            _scratch: scratch,
        }
    }
}

/// The hosts, started at once, each taking the components from the
/// compilation cache.
fn start_hosts(redis: &str, policy: &str) -> Vec<EdgeHost> {
    // Compiled here once first (a thread per component): twelve hosts
    // compiling the same two components at once take a minute on two cores.
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        std::thread::scope(|scope| {
            for name in COMPONENTS {
                scope.spawn(move || {
                    App::load(&wasm_tests::spin_component(name), AppConfig::default())
                        .map(drop)
                        .unwrap_or_else(|e| panic!("the Spin build of {name}: {e:#}"));
                });
            }
        });
    });
    std::thread::scope(|scope| {
        let starts: Vec<_> = (0..HOSTS)
            .map(|_| scope.spawn(move || EdgeHost::start(redis, policy)))
            .collect();
        starts.into_iter().map(|s| s.join().unwrap()).collect()
    })
}

fn get(path: &str) -> CaseRequest {
    serde_json::from_value(serde_json::json!({ "method": "GET", "path": path })).unwrap()
}

/// `clients` clients at once, client `i` on host `i % HOSTS`, each
/// sending `per_client` requests to the rate limiter's `path`; every answer.
fn traffic(hosts: &[EdgeHost], path: &str, clients: usize, per_client: usize) -> Vec<Actual> {
    traffic_to(hosts, |h| &h.url, &get(path), clients, per_client)
}

/// `clients` clients, each adding one to the counter `hot`: the values
/// they were answered, or the status and `Retry-After` of an answer other
/// than 200.
fn increments(hosts: &[EdgeHost], clients: usize) -> Vec<Result<i64, (u16, String)>> {
    let case: CaseRequest =
        serde_json::from_value(serde_json::json!({ "method": "POST", "path": "/counters/hot" }))
            .unwrap();
    traffic_to(hosts, |h| &h.counter, &case, clients, 1)
        .iter()
        .map(|a| {
            if a.status != 200 {
                let retry = a.headers.get("retry-after").cloned().unwrap_or_default();
                return Err((a.status, retry));
            }
            let body: Value = serde_json::from_str(&a.body).unwrap();
            Ok(body["value"].as_i64().unwrap())
        })
        .collect()
}

/// Sorted.
fn sorted(mut values: Vec<i64>) -> Vec<i64> {
    values.sort_unstable();
    values
}

/// `clients` clients at once, client `i` on host `i % HOSTS`, each
/// sending `per_client` times `case` to the app `app` gives the URL of.
fn traffic_to(
    hosts: &[EdgeHost],
    app: fn(&EdgeHost) -> &str,
    case: &CaseRequest,
    clients: usize,
    per_client: usize,
) -> Vec<Actual> {
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..clients)
            .map(|i| {
                let base = app(&hosts[i % hosts.len()]).to_owned();
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

/// What a metrics component on the same Redis reports: `(function,
/// route)` → requests per status.
fn merged_metrics(redis: &str) -> BTreeMap<(String, String), BTreeMap<u16, u64>> {
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
        .map(|r| {
            let statuses = r["statuses"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(s, n)| (s.parse().unwrap(), n.as_u64().unwrap()))
                .collect();
            let function = r["function"].as_str().unwrap().to_owned();
            (
                (function, r["route"].as_str().unwrap().to_owned()),
                statuses,
            )
        })
        .collect()
}

/// The metrics key of the rate limiter's `route`.
fn rl(route: &str) -> (String, String) {
    ("rate-limit".to_owned(), route.to_owned())
}

/// The metrics key of the counter's increments.
fn counter_route() -> (String, String) {
    ("counter".to_owned(), "/counters/{key}".to_owned())
}

/// A durable Redis and the hosts on it, with two scopes of `limit`:
/// `/OPEN` (fixed window) fails open, `/CLOSED` (`closed_algorithm`) fails
/// closed.
fn fail_open_and_closed(limit: u64, closed_algorithm: &str) -> (RedisServer, Vec<EdgeHost>) {
    let redis = RedisServer::start_durable().unwrap();
    let scopes = [
        ("OPEN", "fixed_window", "on_store_failure = \"fail_open\"\n"),
        (
            "CLOSED",
            closed_algorithm,
            "on_store_failure = \"fail_closed\"\n",
        ),
    ];
    let hosts = start_hosts(&redis.url(), &policy(limit as usize, &scopes));
    (redis, hosts)
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
        sent.insert(rl(&format!("/{scope}")), counts);
    }
    // The counter's increments (INCRBY) from the four hosts: each value
    // handed out once.
    let t = Instant::now();
    let values: Vec<i64> = increments(&hosts, CLIENTS).into_iter().flatten().collect();
    assert_eq!(sorted(values), (1..=CLIENTS as i64).collect::<Vec<_>>());
    eprintln!(
        "redis store: counter: {CLIENTS} increments over {HOSTS} hosts, values 1..={CLIENTS} each once, in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    sent.insert(counter_route(), BTreeMap::from([(200, CLIENTS as u64)]));

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
    let (mut redis, hosts) = fail_open_and_closed(LIMIT, "sliding_window");
    let paths = ["/OPEN", "/CLOSED"];
    let mut up: BTreeMap<(String, String), BTreeMap<u16, u64>> = BTreeMap::new();

    // Redis up: one request per client, 64 of each scope's 100 permits.
    for path in paths {
        let counts = tally(&traffic(&hosts, path, CLIENTS, 1));
        assert_eq!(counts, BTreeMap::from([(200, CLIENTS as u64)]), "{path}");
        up.insert(rl(path), counts);
    }
    let before: Vec<i64> = increments(&hosts, CLIENTS).into_iter().flatten().collect();
    assert_eq!(sorted(before), (1..=CLIENTS as i64).collect::<Vec<_>>());

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
    assert_eq!(
        increments(&hosts, DOWN),
        vec![Err((503, "5".to_owned())); DOWN],
        "the counter fails closed"
    );
    eprintln!(
        "redis store: Redis down: {DOWN} fail_open answers 200, {DOWN} fail_closed answers 503, \
         {DOWN} counter increments 503"
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
        add(up.get_mut(&rl(path)).unwrap(), &counts);
    }
    // The counter goes on from 64: nothing lost, nothing added twice.
    let after: Vec<i64> = increments(&hosts, CLIENTS).into_iter().flatten().collect();
    assert_eq!(
        sorted(after),
        (CLIENTS as i64 + 1..=2 * CLIENTS as i64).collect::<Vec<_>>()
    );
    up.insert(counter_route(), BTreeMap::from([(200, 2 * CLIENTS as u64)]));

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

/// `GET /_ratelimit/state?scope=NAME` on `host`: the permits left.
fn remaining(host: &EdgeHost, scope: &str) -> u64 {
    let case: CaseRequest = serde_json::from_value(serde_json::json!({
        "method": "GET",
        "path": format!("/_ratelimit/state?scope={scope}"),
        "headers": { "authorization": "Bearer t" },
    }))
    .unwrap();
    let answer = send(&agent(Duration::from_secs(30)), &host.url, &case).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let state: Value = serde_json::from_str(&answer.body).unwrap();
    state["remaining"].as_u64().unwrap()
}

#[test]
fn redis_killed_under_load_never_over_admits_and_charges_at_most_the_requests_in_flight() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const LIMIT: u64 = 1000;
    const LOAD_CLIENTS: usize = 16;
    const PHASE: Duration = Duration::from_millis(500);
    let began = Instant::now();
    let (mut redis, hosts) = fail_open_and_closed(LIMIT, "fixed_window");
    let stop = AtomicBool::new(false);
    let mut back = None;
    // Each client alternates the two paths until stopped, through the kill
    // and the restart: (path, status, whether RateLimit was answered, when
    // the request was sent).
    let answers: Vec<(&str, u16, bool, Instant)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..LOAD_CLIENTS)
            .map(|i| {
                let base = hosts[i % HOSTS].url.clone();
                let stop = &stop;
                scope.spawn(move || {
                    let agent = agent(Duration::from_secs(60));
                    let mut seen = Vec::new();
                    for path in ["/OPEN", "/CLOSED"].iter().cycle() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let sent = Instant::now();
                        let a = send(&agent, &base, &get(path)).unwrap();
                        seen.push((*path, a.status, a.headers.contains_key("ratelimit"), sent));
                    }
                    seen
                })
            })
            .collect();
        std::thread::sleep(PHASE);
        redis.kill();
        std::thread::sleep(PHASE);
        redis.restart().unwrap();
        back = Some(Instant::now());
        std::thread::sleep(PHASE);
        stop.store(true, Ordering::Relaxed);
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    // Redis answering again, no request failed: the hosts' pooled
    // connections that died with it were not used.
    let back = back.unwrap();
    let failed_after: Vec<_> = answers
        .iter()
        .filter(|a| a.3 > back && !(a.1 == 200 && a.2))
        .collect();
    assert!(
        failed_after.is_empty(),
        "after the restart: {failed_after:?}"
    );
    let merged = merged_metrics(&redis.url());
    for (path, down_status) in [("/OPEN", 200), ("/CLOSED", 503)] {
        let mine: Vec<_> = answers.iter().filter(|a| a.0 == path).collect();
        let counted = mine.iter().filter(|a| a.1 == 200 && a.2).count() as u64;
        let down = mine.iter().filter(|a| a.1 == down_status && !a.2).count() as u64;
        assert_eq!(
            counted + down,
            mine.len() as u64,
            "{path}: only admissions and the scope's failure mode: {mine:?}"
        );
        assert!(down > 0, "{path}: no answer saw Redis down");
        let charged = LIMIT - remaining(&hosts[0], &path[1..]);
        // A request whose write Redis made durable just before the kill,
        // without answering, is charged but refused (or admitted uncharged
        // for fail_open): never over-admission, and at most one per client.
        assert!(
            counted <= charged && charged <= counted + LOAD_CLIENTS as u64,
            "{path}: {counted} admitted and counted, {charged} charged"
        );
        // A record merged after Redis came back is the request's own; the
        // ones answered while it was down were not merged.
        let in_metrics: u64 = merged.get(&rl(path)).map_or(0, |s| s.values().sum());
        assert!(
            counted.saturating_sub(LOAD_CLIENTS as u64) <= in_metrics
                && in_metrics <= mine.len() as u64,
            "{path}: {in_metrics} in the metrics, {counted} admitted and counted"
        );
        eprintln!(
            "redis store: under load, {path}: {} answers, {counted} counted, {down} with Redis \
             down ({}), {charged} charged, {in_metrics} in the metrics (per status {:?})",
            mine.len(),
            if down_status == 200 {
                "admitted uncharged"
            } else {
                "503"
            },
            merged.get(&rl(path)).cloned().unwrap_or_default(),
        );
    }
    eprintln!(
        "redis store: kill under load over {HOSTS} hosts in {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

/// A batch of `PER_BATCH` assets, the `batch`-th: ids and places of its own.
fn assets(batch: usize, per_batch: usize) -> String {
    let features: Vec<Value> = (0..per_batch)
        .map(|i| {
            let n = batch * per_batch + i;
            serde_json::json!({
                "type": "Feature",
                "id": format!("00000000-0000-4000-8000-{n:012x}"),
                "geometry": { "type": "Point", "coordinates": [10.0 + n as f64 * 0.01, 50.0, 30.0] },
                "properties": {
                    "deformation": [1.0, -0.5, -2.0],
                    "registration_quality": 0.9,
                    "fusion_confidence": 0.8,
                    "processing_duration_ms": 1000,
                    "algorithm_version": "fusion-2.3.1",
                    "processed_at": "2026-10-01T06:00:00Z"
                }
            })
        })
        .collect();
    serde_json::json!({ "type": "FeatureCollection", "features": features }).to_string()
}

#[test]
fn one_writer_swaps_the_spatial_head_while_three_hosts_read() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const BATCHES: usize = 8;
    const PER_BATCH: usize = 10;
    const READERS: usize = 6;
    let began = Instant::now();
    let redis = RedisServer::start().unwrap();
    let hosts = start_hosts(&redis.url(), &policy(1, &SCOPES[..1]));
    let done = AtomicBool::new(false);
    let bbox = get("/assets/bbox?bbox=-180,-90,180,90");
    let (reads, writes) = std::thread::scope(|scope| {
        // Readers on hosts 1..4: what each bbox query answered, in order.
        let readers: Vec<_> = (0..READERS)
            .map(|i| {
                let base = hosts[1 + i % (HOSTS - 1)].spatial.clone();
                let (done, bbox) = (&done, &bbox);
                scope.spawn(move || {
                    let agent = agent(Duration::from_secs(60));
                    let mut seen = Vec::new();
                    loop {
                        let finished = done.load(Ordering::Relaxed);
                        let a = send(&agent, &base, bbox).unwrap();
                        assert_eq!(a.status, 200, "a read during the swaps: {}", a.body);
                        let body: Value = serde_json::from_str(&a.body).unwrap();
                        let ids: Vec<String> = body["features"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|f| f["id"].as_str().unwrap().to_owned())
                            .collect();
                        seen.push(ids);
                        if finished {
                            return seen;
                        }
                    }
                })
            })
            .collect();
        // The writer on host 0: one batch (a run and a head swap) at a time.
        let agent = agent(Duration::from_secs(60));
        let writes: Vec<u64> = (0..BATCHES)
            .map(|batch| {
                let case: CaseRequest = serde_json::from_value(serde_json::json!({
                    "method": "POST",
                    "path": "/assets",
                    "headers": {
                        "authorization": "Bearer s",
                        "content-type": "application/geo+json"
                    },
                    "body": assets(batch, PER_BATCH),
                }))
                .unwrap();
                let a = send(&agent, &hosts[0].spatial, &case).unwrap();
                assert!(a.status == 200 || a.status == 201, "{}", a.body);
                let body: Value = serde_json::from_str(&a.body).unwrap();
                assert_eq!(body["report"]["accepted"], PER_BATCH, "{body}");
                body["dataset"]["assets"].as_u64().unwrap()
            })
            .collect();
        done.store(true, Ordering::Relaxed);
        let reads: Vec<Vec<Vec<String>>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        (reads, writes)
    });
    assert_eq!(
        writes,
        (1..=BATCHES as u64)
            .map(|b| b * PER_BATCH as u64)
            .collect::<Vec<_>>(),
        "the head after each batch"
    );
    // Every read saw whole batches, in order: the first k batches for
    // some k that never went back; the last saw all of them.
    let whole = |k: usize| -> Vec<String> {
        let mut ids: Vec<String> = (0..k * PER_BATCH)
            .map(|n| format!("00000000-0000-4000-8000-{n:012x}"))
            .collect();
        ids.sort();
        ids
    };
    let mut total = 0;
    let mut states = std::collections::BTreeSet::new();
    for (reader, seen) in reads.iter().enumerate() {
        let mut last = 0;
        for ids in seen {
            let mut sorted_ids = ids.clone();
            sorted_ids.sort();
            let k = ids.len() / PER_BATCH;
            assert_eq!(sorted_ids, whole(k), "reader {reader}: not whole batches");
            assert!(
                k >= last,
                "reader {reader}: went back from {last} to {k} batches"
            );
            last = k;
            states.insert(k);
        }
        assert_eq!(last, BATCHES, "reader {reader}'s last read");
        total += seen.len();
    }
    assert!(
        states.len() >= 2,
        "no read overlapped the swaps: {states:?}"
    );
    eprintln!(
        "redis store: spatial head swapped {BATCHES} times by one host while {READERS} readers \
         on {} hosts made {total} bbox queries, each seeing whole batches ({} of the {} states), never older \
         ones, in {:.1} s",
        HOSTS - 1,
        states.len(),
        BATCHES + 1,
        began.elapsed().as_secs_f64()
    );
}
