//! The pipeline in one process, on in-memory services: µs per request of
//! each stage alone, of the gateway's chain (auth check → rate limit →
//! anonymize) to a bare endpoint that answers 200 without network, of the
//! signature checks alone, and of the whole gateway through
//! [`edge_core::serve`] with an in-memory origin. The same code runs
//! natively and, built for `wasm32-wasip2`, under wasmtime.

use std::time::{Duration, Instant};

use anonymize::Anonymize;
use async_trait::async_trait;
use auth_check::AuthCheck;
use auth_check::keys::{Algorithm, Key};
use bytes::Bytes;
use edge_core::function::{Context, Instance, Services, instantiate};
use edge_core::log::{Level, LogSink};
use edge_core::memory::{FakeClock, MemoryStore, SeededRandom};
use edge_core::metrics::Recorder;
use edge_core::model::Runtime;
use edge_core::pipeline::{self, Endpoint, Filter, Principal};
use edge_core::platform::{HttpClient, HttpError};
use edge_core::policy::POLICY_VARIABLE;
use edge_core::{ClientAddr, Config, EdgeFunction, Problem, Request, Response, Timestamp};
use futures::executor::block_on;
use gateway::Gateway;
use rate_limit::RateLimit;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::fixtures::{self, Alg, Signer};

/// The fake clock's time (seconds): the tokens are issued then.
pub const T0: u64 = 1_800_000_000;
/// Where the in-memory origin is.
const ORIGIN: &str = "http://origin.bench.invalid";

/// The rows, in table order: id and label.
pub const ROWS: [(&str, &str); 11] = [
    ("bare", "no stages: `pipeline::run` to the bare endpoint"),
    ("auth_hs256", "auth check alone, HS256"),
    (
        "rate_limit",
        "rate limit alone (leased fixed window, in-memory store)",
    ),
    ("anonymize", "anonymize alone (1 KB JSON request body)"),
    ("pipeline_hs256", "**auth → rate limit → anonymize, HS256**"),
    ("pipeline_rs256", "**auth → rate limit → anonymize, RS256**"),
    ("verify_hs256", "HS256 signature alone (`Key::verify`)"),
    ("verify_rs256", "RS256 signature alone (`Key::verify`)"),
    (
        "gateway_pass",
        "whole gateway (`serve`), no-stage route, in-memory origin",
    ),
    (
        "gateway_hs256",
        "whole gateway (`serve`), pipeline route, HS256",
    ),
    (
        "gateway_rs256",
        "whole gateway (`serve`), pipeline route, RS256",
    ),
];

/// One row's timings: wall-clock time, and the thread's CPU time where
/// the kernel's `schedstat` could be read (time on a CPU, so time spent
/// waiting for one on a busy machine is not counted).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The row's id (see [`ROWS`]).
    pub id: String,
    /// The median round's CPU µs per request.
    pub cpu_median_us: Option<f64>,
    /// The fastest round's CPU µs per request.
    pub cpu_best_us: Option<f64>,
    /// The median round's µs per request.
    pub median_us: f64,
    /// The fastest round's.
    pub best_us: f64,
    /// The slowest round's.
    pub worst_us: f64,
    /// Requests per round.
    pub per_round: u64,
}

/// One runtime's measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `native` or `wasm`.
    pub runtime: String,
    /// Timed rounds per row.
    pub rounds: u32,
    /// About how long one round takes, seconds.
    pub seconds: f64,
    /// The request body's bytes.
    pub body_bytes: usize,
    /// How long generating the RSA key took, seconds (not timed in a row).
    pub rsa_keygen_s: f64,
    /// Where the thread's CPU time was read (`None`: wall time only).
    pub schedstat: Option<String>,
    /// The rows, in [`ROWS`] order.
    pub rows: Vec<Row>,
}

impl Report {
    /// The row `id`'s µs per request in its fastest round (on a shared
    /// machine the least disturbed one): CPU time when `cpu`, else wall.
    pub fn best(&self, id: &str, cpu: bool) -> Option<f64> {
        let row = self.rows.iter().find(|r| r.id == id)?;
        if cpu {
            row.cpu_best_us
        } else {
            Some(row.best_us)
        }
    }

    /// Whether every row has CPU times.
    pub fn has_cpu(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.cpu_best_us.is_some())
    }
}

/// Discards log lines (they are still formatted, as on every platform).
struct Discard;

impl LogSink for Discard {
    fn write(&self, _level: Level, _line: &str) {}
}

/// The origin: answers every request `200` with a small JSON body, no
/// network.
struct BareOrigin;

#[async_trait(?Send)]
impl HttpClient for BareOrigin {
    async fn send(&self, _req: Request) -> Result<Response, HttpError> {
        Ok(ok_response())
    }
}

/// The end of the chain: `200` without network.
struct Bare;

#[async_trait(?Send)]
impl Endpoint for Bare {
    async fn call(&self, _req: Request, _ctx: &Context<'_>) -> Result<Response, Problem> {
        Ok(ok_response())
    }
}

fn ok_response() -> Response {
    let mut response = Response::new(Bytes::from_static(b"{\"ok\":true}"));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Everything the rows run on: the platform in memory, the three filters
/// built from the gateway's sections, the whole gateway.
struct World {
    store: MemoryStore,
    clock: FakeClock,
    random: SeededRandom,
    http: BareOrigin,
    log: Discard,
    metrics: Recorder,
    auth: AuthCheck,
    rate_limit: RateLimit,
    anonymize: Anonymize,
    gateway: Instance<Gateway>,
}

impl World {
    fn new(signer: &Signer) -> Result<World, String> {
        let config = |section: &str, value: serde_json::Value| {
            let mut config = Config::new("").with_var(
                POLICY_VARIABLE,
                json!({ section: value }).to_string().as_str(),
            );
            for (name, value) in fixtures::SECRETS {
                config = config.with_secret(name, value);
            }
            config
        };
        let built = |e: edge_core::ConfigError| e.to_string();
        let auth = AuthCheck::from_config(&config("auth", fixtures::auth_section(signer.jwk())))
            .map_err(built)?;
        let rate_limit =
            RateLimit::from_config(&config("rate_limit", fixtures::rate_limit_section()))
                .map_err(built)?;
        let anonymize = Anonymize::from_config(&config("anonymize", fixtures::anonymize_section()))
            .map_err(built)?;
        let mut gateway_config = Config::new(Gateway::DEFAULT_POLICY).with_var(
            POLICY_VARIABLE,
            fixtures::gateway_policy(ORIGIN, signer.jwk()).as_str(),
        );
        for (name, value) in fixtures::SECRETS {
            gateway_config = gateway_config.with_secret(name, value);
        }
        let gateway = instantiate::<Gateway>(&gateway_config);
        if let Err(e) = &gateway {
            return Err(format!("the gateway's policy: {e}"));
        }
        Ok(World {
            store: MemoryStore::new(),
            clock: FakeClock::at(Timestamp::from_millis(T0 * 1000)),
            random: SeededRandom::new(7),
            http: BareOrigin,
            log: Discard,
            metrics: Recorder::new(),
            auth,
            rate_limit,
            anonymize,
            gateway,
        })
    }

    fn services(&self) -> Services<'_> {
        Services {
            runtime: Runtime::Native,
            clock: &self.clock,
            store: &self.store,
            cache: &self.store,
            random: &self.random,
            http: &self.http,
            log_sink: &self.log,
            metrics: Some(&self.metrics),
        }
    }
}

/// The requests a row sends, one per subject, cloned per request.
fn requests(path: &str, token: Option<&dyn Fn(&str) -> String>, principal: bool) -> Vec<Request> {
    let body = Bytes::from(fixtures::body());
    (0..fixtures::SUBJECTS)
        .map(|i| {
            let sub = fixtures::subject(i);
            let mut builder = http::Request::builder()
                .method("POST")
                .uri(path)
                .header("host", "gateway.bench.invalid")
                .header("content-type", "application/json")
                .header("user-agent", "gateway-bench");
            if let Some(token) = token {
                builder = builder.header("authorization", format!("Bearer {}", token(&sub)));
            }
            let Ok(mut req) = builder.body(body.clone()) else {
                unreachable!("a fixed request builds")
            };
            req.extensions_mut()
                .insert(ClientAddr(std::net::IpAddr::from([198, 51, 100, 7])));
            if principal {
                req.extensions_mut().insert(Principal {
                    credential: "jwt",
                    sub: Some(sub),
                    ..Principal::default()
                });
            }
            req
        })
        .collect()
}

/// One request of a row; `Err` when it was not answered `200`.
type Op<'w> = Box<dyn FnMut() -> Result<(), String> + 'w>;

fn expect_ok(answer: Result<Response, Problem>) -> Result<(), String> {
    match answer {
        Ok(response) if response.status() == 200 => Ok(()),
        Ok(response) => Err(format!(
            "answered {}: {}",
            response.status(),
            String::from_utf8_lossy(response.body())
        )),
        Err(problem) => Err(format!(
            "refused: {} {}: {}",
            problem.status(),
            problem.kind(),
            problem.detail().unwrap_or("")
        )),
    }
}

/// The row `id`'s request.
fn op<'w>(id: &str, world: &'w World, signer: &Signer) -> Result<Op<'w>, String> {
    let exp = T0 + 3600;
    let hs = |sub: &str| signer.token(Alg::Hs256, sub, T0, exp);
    let rs = |sub: &str| signer.token(Alg::Rs256, sub, T0, exp);
    let chain = |filters: Vec<&'w dyn Filter>, templates: Vec<Request>| -> Op<'w> {
        let services = world.services();
        let mut n = 0usize;
        Box::new(move || {
            let req = templates[n % templates.len()].clone();
            n += 1;
            let ctx = Context::named(&services, "gateway", "bench-correlation-id");
            expect_ok(block_on(pipeline::run(&filters, req, &Bare, &ctx)))
        })
    };
    let whole = |templates: Vec<Request>| -> Op<'w> {
        let services = world.services();
        let mut n = 0usize;
        Box::new(move || {
            let req = templates[n % templates.len()].clone();
            n += 1;
            let response = block_on(edge_core::serve(&world.gateway, req, &services));
            expect_ok(Ok(response))
        })
    };
    let verify = |alg: Alg| -> Result<Op<'w>, String> {
        let token = signer.token(alg, "user-0", T0, exp);
        let (input, signature) = fixtures::token_parts(&token)?;
        let (key, algorithm) = match alg {
            Alg::Hs256 => (
                Key::hmac(fixtures::HS256_SECRET.as_bytes()),
                Algorithm::Hs256,
            ),
            Alg::Rs256 => (Key::from_jwk(signer.jwk()), Algorithm::Rs256),
        };
        let key = key.map_err(|e| format!("{}: {e}", alg.name()))?;
        Ok(Box::new(move || {
            key.verify(algorithm, &input, &signature)
                .map_err(|e| format!("{} signature refused: {e:?}", algorithm.as_str()))
        }))
    };
    let (auth, limit, anon): (&dyn Filter, &dyn Filter, &dyn Filter) =
        (&world.auth, &world.rate_limit, &world.anonymize);
    let path = fixtures::PIPELINE_PATH;
    Ok(match id {
        "bare" => chain(Vec::new(), requests(path, None, false)),
        "auth_hs256" => chain(vec![auth], requests(path, Some(&hs), false)),
        "rate_limit" => chain(vec![limit], requests(path, None, true)),
        "anonymize" => chain(vec![anon], requests(path, None, false)),
        "pipeline_hs256" => chain(vec![auth, limit, anon], requests(path, Some(&hs), false)),
        "pipeline_rs256" => chain(vec![auth, limit, anon], requests(path, Some(&rs), false)),
        "verify_hs256" => verify(Alg::Hs256)?,
        "verify_rs256" => verify(Alg::Rs256)?,
        "gateway_pass" => whole(requests(fixtures::PASS_PATH, Some(&hs), false)),
        "gateway_hs256" => whole(requests(path, Some(&hs), false)),
        "gateway_rs256" => whole(requests(path, Some(&rs), false)),
        other => return Err(format!("no row {other:?}")),
    })
}

/// The CPU time of the thread whose `schedstat` file is at `path`
/// (`/proc/thread-self/schedstat`, or that directory preopened in a wasm
/// guest), ns.
fn cpu_ns(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Times every row (or those in `only`) on this runtime: each is
/// calibrated to about `round` per round, then `rounds` rounds are taken
/// in turns over all rows, so that drift on the machine hits them alike.
/// With `schedstat` (the path of this thread's `schedstat` file) each
/// round's CPU time is taken too.
pub fn run(
    runtime: &str,
    rounds: u32,
    round: Duration,
    only: Option<&[String]>,
    schedstat: Option<&str>,
) -> Result<Report, String> {
    // Only a file that reads and moves while this thread computes.
    let schedstat = schedstat.filter(|path| {
        let before = cpu_ns(path);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(20) {
            std::hint::black_box(start.elapsed());
        }
        matches!((before, cpu_ns(path)), (Some(a), Some(b)) if b.saturating_sub(a) >= 5_000_000)
    });
    let started = Instant::now();
    let signer = Signer::new()?;
    let rsa_keygen_s = started.elapsed().as_secs_f64();
    let world = World::new(&signer)?;
    let mut rows = Vec::new();
    for (id, _) in ROWS {
        if only.is_some_and(|only| !only.iter().any(|o| o == id)) {
            continue;
        }
        let mut op = op(id, &world, &signer)?;
        // Warm-up, then calibration: each at least 20 ms and 3 requests.
        let mut each = 0.0;
        for _ in 0..2 {
            let start = Instant::now();
            let mut n = 0u64;
            while n < 3 || start.elapsed() < Duration::from_millis(20) {
                op().map_err(|e| format!("{id}: {e}"))?;
                n += 1;
            }
            each = start.elapsed().as_secs_f64() / n as f64;
        }
        let per_round = ((round.as_secs_f64() / each) as u64).max(3);
        rows.push((id, op, per_round, Vec::new(), Vec::new()));
    }
    let cpu = || schedstat.and_then(cpu_ns);
    for _ in 0..rounds.max(1) {
        for (id, op, per_round, times, cpu_times) in &mut rows {
            let (start, cpu_start) = (Instant::now(), cpu());
            for _ in 0..*per_round {
                op().map_err(|e| format!("{id}: {e}"))?;
            }
            times.push(start.elapsed().as_secs_f64() * 1e6 / *per_round as f64);
            if let (Some(a), Some(b)) = (cpu_start, cpu()) {
                cpu_times.push(b.saturating_sub(a) as f64 / 1e3 / *per_round as f64);
            }
        }
    }
    let rows = rows
        .into_iter()
        .map(|(id, _, per_round, mut times, mut cpu_times)| {
            times.sort_by(f64::total_cmp);
            cpu_times.sort_by(f64::total_cmp);
            let complete = cpu_times.len() == times.len();
            Row {
                cpu_median_us: complete.then(|| cpu_times[cpu_times.len() / 2]),
                cpu_best_us: complete.then(|| cpu_times[0]),
                id: id.to_owned(),
                median_us: times[times.len() / 2],
                best_us: times[0],
                worst_us: times[times.len() - 1],
                per_round,
            }
        })
        .collect();
    Ok(Report {
        runtime: runtime.to_owned(),
        rounds,
        seconds: round.as_secs_f64(),
        body_bytes: fixtures::BODY_BYTES,
        rsa_keygen_s,
        schedstat: schedstat.map(str::to_owned),
        rows,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_row_answers_200() {
        let signer = Signer::new().unwrap();
        let world = World::new(&signer).unwrap();
        for (id, _) in ROWS {
            let mut op = op(id, &world, &signer).unwrap();
            for _ in 0..(fixtures::SUBJECTS * 2) {
                op().unwrap_or_else(|e| panic!("{id}: {e}"));
            }
        }
    }

    #[test]
    fn the_chain_hides_the_email_and_leases_permits() {
        let signer = Signer::new().unwrap();
        let world = World::new(&signer).unwrap();
        let services = world.services();
        let ctx = Context::named(&services, "gateway", "t");
        let token = |sub: &str| signer.token(Alg::Hs256, sub, T0, T0 + 60);
        let req = requests(fixtures::PIPELINE_PATH, Some(&token), false).remove(0);
        struct Echo;
        #[async_trait(?Send)]
        impl Endpoint for Echo {
            async fn call(&self, req: Request, _ctx: &Context<'_>) -> Result<Response, Problem> {
                Ok(Response::new(req.into_body()))
            }
        }
        let filters: [&dyn Filter; 3] = [&world.auth, &world.rate_limit, &world.anonymize];
        let response = block_on(pipeline::run(&filters, req, &Echo, &ctx)).unwrap();
        let seen = String::from_utf8_lossy(response.body()).into_owned();
        assert!(!seen.contains(fixtures::EMAIL), "{seen}");
        assert!(
            response.headers()["ratelimit"]
                .to_str()
                .unwrap()
                .starts_with("\"BENCH\"")
        );
    }
}
