//! Through `wrangler dev`: the gateway's Workers build (wrangler.toml's
//! top-level worker) with [`fixtures::gateway_policy`], in front of a local
//! origin this program serves on 127.0.0.1 (every request answered `200`).
//! The modes are routes of the same worker, measured in turns with the
//! same clients and duration: the route with no stages (the
//! pass-through), each stage alone, and the pipeline with HS256 and with
//! RS256 tokens. Every mode must answer only `200`s, and the origin checks
//! that no body behind the anonymizer still holds the email address in
//! clear. The CPU time of workerd, of wrangler (node) and of this program
//! (clients and origin) is read from `/proc` around every turn.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fixtures::{self, Alg, Signer};
use crate::http1::{Client, Reader, request_bytes};

/// How long `wrangler dev` may take to serve (its build command included).
const START_DEADLINE: Duration = Duration::from_secs(600);

/// How the load is run.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// The `wrangler` executable.
    pub wrangler: PathBuf,
    /// Keep-alive clients, each one request at a time.
    pub clients: usize,
    /// Seconds per measured turn.
    pub seconds: f64,
    /// Measured turns per mode.
    pub rounds: usize,
    /// Seconds of warm-up per mode before the turns.
    pub warmup: f64,
}

/// The modes, in table order: id, label, path, token.
pub const MODES: [(&str, &str, &str, Alg); 6] = [
    (
        "pass",
        "pass-through: the gateway, a route with no stages",
        fixtures::PASS_PATH,
        Alg::Hs256,
    ),
    (
        "auth",
        "auth check alone (HS256)",
        fixtures::AUTH_PATH,
        Alg::Hs256,
    ),
    (
        "limit",
        "rate limit alone (leased, keyed by a header)",
        fixtures::LIMIT_PATH,
        Alg::Hs256,
    ),
    (
        "anonymize",
        "anonymize alone (1 KB JSON)",
        fixtures::ANONYMIZE_PATH,
        Alg::Hs256,
    ),
    (
        "hs256",
        "**pipeline: auth (HS256) → rate limit (leased) → anonymize (1 KB)**",
        fixtures::PIPELINE_PATH,
        Alg::Hs256,
    ),
    (
        "rs256",
        "**pipeline: auth (RS256) → rate limit (leased) → anonymize (1 KB)**",
        fixtures::PIPELINE_PATH,
        Alg::Rs256,
    ),
];

/// Whether mode `id` runs the rate limiter (its answers carry `RateLimit`).
fn limited(id: &str) -> bool {
    matches!(id, "limit" | "hs256" | "rs256")
}

/// One mode's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveMode {
    /// The mode's id (see [`MODES`]).
    pub id: String,
    /// The median turn's requests per second.
    pub rps: f64,
    /// Every turn's requests per second.
    pub rounds_rps: Vec<f64>,
    /// Latency percentiles over every measured request, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Measured requests (all `200`).
    pub requests: u64,
    /// CPU time per request of workerd, ms.
    pub workerd_cpu_ms: f64,
    /// CPU time per request of wrangler's node processes, ms.
    pub wrangler_cpu_ms: f64,
    /// CPU time per request of this program (clients and origin), ms.
    pub bench_cpu_ms: f64,
}

/// What the origin saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OriginSaw {
    /// Requests on the routes that anonymize.
    pub anonymized: u64,
    /// Of those, bodies holding the email in clear (must be 0).
    pub anonymized_clear: u64,
    /// Requests on the other routes.
    pub other: u64,
    /// Of those, bodies holding the email in clear (all of them).
    pub other_clear: u64,
}

/// The whole measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveReport {
    /// Keep-alive clients.
    pub clients: usize,
    /// Seconds per turn.
    pub seconds: f64,
    /// Turns per mode.
    pub rounds: usize,
    /// Warm-up seconds per mode.
    pub warmup: f64,
    /// The modes, in [`MODES`] order.
    pub modes: Vec<LiveMode>,
    /// What the origin saw.
    pub origin: OriginSaw,
    /// `wrangler --version`.
    pub wrangler: String,
}

impl LiveReport {
    /// The mode `id`.
    pub fn mode(&self, id: &str) -> Option<&LiveMode> {
        self.modes.iter().find(|m| m.id == id)
    }
}

/// Starts the origin and the worker, measures every mode, stops both.
pub fn run(options: &LiveOptions) -> Result<LiveReport, String> {
    let signer = Signer::new()?;
    let origin = OriginServer::start().map_err(|e| format!("origin server: {e}"))?;
    let policy = fixtures::gateway_policy(&origin.url(), signer.jwk());
    let mut vars: Vec<(String, String)> = vec![("POLICY".to_owned(), policy)];
    vars.extend(
        fixtures::SECRETS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let wrangler = version(&options.wrangler);
    eprintln!("gateway-bench: starting wrangler dev ({wrangler}) for the gateway");
    let dev = WranglerDev::start(&options.wrangler, &vars)?;
    eprintln!("gateway-bench: wrangler dev serves on {}", dev.addr());

    // Tokens valid from now for an hour (the bench takes minutes).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let body = fixtures::body();
    let host = dev.addr().to_string();
    let requests = |path: &str, alg: Alg| -> Vec<Vec<u8>> {
        (0..options.clients)
            .map(|i| {
                let token = signer.token(alg, &fixtures::subject(i), now - 5, now + 3600);
                request_bytes(
                    "POST",
                    path,
                    &host,
                    &[
                        ("content-type", "application/json"),
                        ("authorization", &format!("Bearer {token}")),
                        (
                            fixtures::CLIENT_HEADER,
                            &format!("client-{}", i % fixtures::SUBJECTS),
                        ),
                        ("user-agent", "gateway-bench"),
                    ],
                    body.as_bytes(),
                )
            })
            .collect()
    };
    // Per mode: its id, each client's request, each turn's rate, latencies,
    // CPU ticks spent.
    type Turns<'a> = (&'a str, Vec<Vec<u8>>, Vec<f64>, Vec<u32>, Cpu);
    let mut modes: Vec<Turns<'_>> = MODES
        .iter()
        .map(|(id, _, path, alg)| {
            let reqs = requests(path, *alg);
            (*id, reqs, Vec::new(), Vec::new(), Cpu::default())
        })
        .collect();

    // Each mode answers 200 (the pipeline with its RateLimit fields).
    for (id, reqs, _, _, _) in &modes {
        let mut client = Client::new(dev.addr(), Duration::from_secs(60));
        let (head, answer) = reqs
            .first()
            .map(|r| client.exchange(r))
            .transpose()
            .map_err(|e| format!("{id}: {e}\n{}", dev.log_tail()))?
            .ok_or("no clients")?;
        let ok = head.status() == Some(200)
            && (!limited(id)
                || head
                    .header("ratelimit")
                    .is_some_and(|v| v.contains("BENCH")));
        if !ok {
            return Err(format!(
                "{id}: {} {:?} {}\n{}",
                head.start,
                head.headers,
                String::from_utf8_lossy(&answer),
                dev.log_tail()
            ));
        }
    }
    // One turn of a mode; any answer but 200 ends the measurement.
    let turn = |id: &str, reqs: &[Vec<u8>], seconds: f64, what: &str| {
        let m = measure(dev.addr(), reqs, seconds)?;
        if m.failed > 0 {
            return Err(format!(
                "{id}: {} answers were not 200 in the {what} ({})\n{}",
                m.failed,
                m.first_failure,
                dev.log_tail()
            ));
        }
        eprintln!(
            "gateway-bench: {what} {id}: {} requests in {:.1} s, {:.0}/s",
            m.ok,
            m.seconds,
            m.ok as f64 / m.seconds
        );
        Ok(m)
    };
    for (id, reqs, _, _, _) in &modes {
        turn(id, reqs, options.warmup, "warm-up")?;
    }
    for round in 0..options.rounds {
        for (id, reqs, rates, latencies, spent) in &mut modes {
            let before = Cpu::now(dev.group());
            let m = turn(id, reqs, options.seconds, &format!("turn {}", round + 1))?;
            spent.add(&Cpu::now(dev.group()).since(&before));
            let rate = m.ok as f64 / m.seconds;
            rates.push(rate);
            latencies.extend(m.latencies_us);
        }
    }
    drop(dev);
    let tick_ms = 1000.0 / clock_ticks();
    let modes = modes
        .into_iter()
        .map(|(id, _, mut rates, mut latencies, spent)| {
            let rounds_rps = rates.clone();
            rates.sort_by(f64::total_cmp);
            latencies.sort_unstable();
            let pct = |q: f64| {
                latencies
                    .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
                    .map_or(0.0, |us| f64::from(*us) / 1000.0)
            };
            let per_request = |ticks: u64| ticks as f64 * tick_ms / (latencies.len().max(1) as f64);
            LiveMode {
                workerd_cpu_ms: per_request(spent.workerd),
                wrangler_cpu_ms: per_request(spent.wrangler),
                bench_cpu_ms: per_request(spent.bench),
                id: id.to_owned(),
                rps: rates.get(rates.len() / 2).copied().unwrap_or(0.0),
                rounds_rps,
                p50_ms: pct(0.5),
                p90_ms: pct(0.9),
                p99_ms: pct(0.99),
                requests: latencies.len() as u64,
            }
        })
        .collect();
    let saw = origin.saw();
    if saw.anonymized_clear > 0 {
        return Err(format!(
            "the origin saw the email in clear behind the anonymizer {} times",
            saw.anonymized_clear
        ));
    }
    Ok(LiveReport {
        clients: options.clients,
        seconds: options.seconds,
        rounds: options.rounds,
        warmup: options.warmup,
        modes,
        origin: saw,
        wrangler,
    })
}

fn version(wrangler: &Path) -> String {
    Command::new(wrangler)
        .arg("--version")
        .env("WRANGLER_SEND_METRICS", "false")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            v.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .map_or_else(|| "wrangler".to_owned(), |v| v.trim().to_owned())
}

/// One turn's outcome.
pub(crate) struct Measured {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) first_failure: String,
    pub(crate) seconds: f64,
    pub(crate) latencies_us: Vec<u32>,
}

/// `requests.len()` clients, each sending its request again and again on
/// one keep-alive connection for `seconds`.
pub(crate) fn measure(
    addr: SocketAddr,
    requests: &[Vec<u8>],
    seconds: f64,
) -> Result<Measured, String> {
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let outcomes = std::thread::scope(|scope| {
        let workers: Vec<_> = requests
            .iter()
            .map(|request| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut client = Client::new(addr, Duration::from_secs(60));
                    let (mut latencies, mut failed, mut first) = (Vec::new(), 0u64, String::new());
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        match client.exchange(request) {
                            Ok((head, _)) if head.status() == Some(200) => {
                                let us = sent.elapsed().as_micros();
                                latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                            }
                            Ok((head, body)) => {
                                failed += 1;
                                if first.is_empty() {
                                    first = format!(
                                        "{} {}",
                                        head.start,
                                        String::from_utf8_lossy(&body)
                                    );
                                }
                            }
                            Err(e) => {
                                failed += 1;
                                if first.is_empty() {
                                    first = e.to_string();
                                }
                            }
                        }
                    }
                    (latencies, failed, first)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join())
            .collect::<Result<Vec<_>, _>>()
    });
    let seconds = started.elapsed().as_secs_f64();
    let outcomes = outcomes.map_err(|_| "a client thread panicked".to_owned())?;
    let mut measured = Measured {
        ok: 0,
        failed: 0,
        first_failure: String::new(),
        seconds,
        latencies_us: Vec::new(),
    };
    for (latencies, failed, first) in outcomes {
        measured.ok += latencies.len() as u64;
        measured.latencies_us.extend(latencies);
        measured.failed += failed;
        if measured.first_failure.is_empty() {
            measured.first_failure = first;
        }
    }
    Ok(measured)
}

/// Counters the origin's connections share.
#[derive(Default)]
struct Counts {
    anonymized: AtomicU64,
    anonymized_clear: AtomicU64,
    other: AtomicU64,
    other_clear: AtomicU64,
}

/// The local origin: a thread per connection, keep-alive, every request
/// answered `200` with a small JSON body.
pub(crate) struct OriginServer {
    addr: SocketAddr,
    counts: Arc<Counts>,
}

impl OriginServer {
    pub(crate) fn start() -> std::io::Result<OriginServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counts = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, &counts);
                });
            }
        });
        Ok(OriginServer { addr, counts })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn saw(&self) -> OriginSaw {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OriginSaw {
            anonymized: load(&self.counts.anonymized),
            anonymized_clear: load(&self.counts.anonymized_clear),
            other: load(&self.counts.other),
            other_clear: load(&self.counts.other_clear),
        }
    }
}

fn serve_connection(stream: TcpStream, counts: &Counts) -> std::io::Result<()> {
    use std::io::Write as _;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = Reader::new(stream);
    let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
    while let Some(head) = reader.head()? {
        let body = reader.body(&head)?;
        let clear = body
            .windows(fixtures::EMAIL.len())
            .any(|w| w == fixtures::EMAIL.as_bytes());
        let anonymized = [fixtures::PIPELINE_PATH, fixtures::ANONYMIZE_PATH]
            .iter()
            .any(|p| head.path().starts_with(p));
        let (seen, in_clear) = if anonymized {
            (&counts.anonymized, &counts.anonymized_clear)
        } else {
            (&counts.other, &counts.other_clear)
        };
        seen.fetch_add(1, Ordering::Relaxed);
        if clear {
            in_clear.fetch_add(1, Ordering::Relaxed);
        }
        writer.write_all(answer)?;
        if head.header("connection") == Some("close") {
            break;
        }
    }
    Ok(())
}

/// The gateway under `wrangler dev` (no `--env`: wrangler.toml's top-level
/// worker), its process group stopped when dropped.
pub(crate) struct WranglerDev {
    child: Child,
    port: u16,
    scratch: PathBuf,
}

pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

impl WranglerDev {
    /// Starts it from the current directory (the workspace root) with
    /// `vars` as `--var`s and waits until `/health` answers.
    pub(crate) fn start(wrangler: &Path, vars: &[(String, String)]) -> Result<WranglerDev, String> {
        use std::os::unix::process::CommandExt as _;
        let port = free_port()?;
        let scratch =
            std::env::temp_dir().join(format!("edge-gateway-bench-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
        let file = |name: &str| {
            std::fs::File::create(scratch.join(name)).map_err(|e| format!("{name}: {e}"))
        };
        let mut command = Command::new(wrangler);
        command
            .args(["dev", "--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--inspector-port")
            .arg(free_port()?.to_string())
            .args(["--show-interactive-dev-session=false", "--persist-to"])
            .arg(scratch.join("state"))
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_LOG_PATH", &scratch)
            .env("WRANGLER_REGISTRY_PATH", scratch.join("registry"))
            .env("CLOUDFLARE_DEV_REGISTRY_PATH", scratch.join("registry"))
            .stdin(Stdio::null())
            .stdout(file("wrangler.log")?)
            .stderr(file("wrangler.err")?)
            .process_group(0);
        for (name, value) in vars {
            command.arg("--var").arg(format!("{name}:{value}"));
        }
        let child = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", wrangler.display()))?;
        let mut dev = WranglerDev {
            child,
            port,
            scratch,
        };
        let started = Instant::now();
        let health = request_bytes("GET", "/health", "127.0.0.1", &[], b"");
        loop {
            if let Ok(Some(status)) = dev.child.try_wait() {
                return Err(format!(
                    "wrangler dev exited ({status}) before serving:\n{}",
                    dev.log_tail()
                ));
            }
            if started.elapsed() > START_DEADLINE {
                return Err(format!(
                    "wrangler dev not ready after {START_DEADLINE:?}:\n{}",
                    dev.log_tail()
                ));
            }
            let mut client = Client::new(dev.addr(), Duration::from_secs(5));
            if let Ok((head, _)) = client.exchange(&health)
                && matches!(head.status(), Some(200 | 503))
            {
                return Ok(dev);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The process group of wrangler and its workerd.
    pub(crate) fn group(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log_tail(&self) -> String {
        let mut text = String::new();
        for name in ["wrangler.log", "wrangler.err"] {
            text.push_str(&std::fs::read_to_string(self.scratch.join(name)).unwrap_or_default());
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for WranglerDev {
    fn drop(&mut self) {
        // TERM first: wrangler stops its workerd on TERM, not on KILL.
        let group = format!("-{}", self.child.id());
        for signal in ["TERM", "KILL"] {
            let _ = Command::new("kill")
                .args(["-s", signal, "--", &group])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// CPU time (user + system) in clock ticks: workerd's and wrangler's
/// (node) processes in wrangler's process group, and this program's.
#[derive(Debug, Clone, Default)]
struct Cpu {
    workerd: u64,
    wrangler: u64,
    bench: u64,
}

impl Cpu {
    /// Now, for the processes in process group `group` and this one.
    fn now(group: u32) -> Cpu {
        let mut cpu = Cpu {
            bench: stat("/proc/self/stat").map_or(0, |(_, _, ticks)| ticks),
            ..Cpu::default()
        };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return cpu;
        };
        for entry in entries.flatten() {
            let Some((comm, pgrp, ticks)) = stat(entry.path().join("stat")) else {
                continue;
            };
            if pgrp != group {
                continue;
            }
            if comm.starts_with("workerd") {
                cpu.workerd += ticks;
            } else {
                cpu.wrangler += ticks;
            }
        }
        cpu
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            workerd: self.workerd.saturating_sub(before.workerd),
            wrangler: self.wrangler.saturating_sub(before.wrangler),
            bench: self.bench.saturating_sub(before.bench),
        }
    }

    fn add(&mut self, other: &Cpu) {
        self.workerd += other.workerd;
        self.wrangler += other.wrangler;
        self.bench += other.bench;
    }
}

/// A process's command name, process group and CPU ticks (utime + stime)
/// from its `stat` file.
pub(crate) fn stat(path: impl AsRef<Path>) -> Option<(String, u32, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    // pid (comm) state ppid pgrp … utime stime (fields 14, 15); comm may
    // hold spaces and parentheses.
    let (head, rest) = text.rsplit_once(')')?;
    let comm = head.split_once('(').map_or("", |(_, c)| c).to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let pgrp = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, pgrp, utime + stime))
}

/// Clock ticks per second (`getconf CLK_TCK`, else 100).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}
