//! The soak: sustained traffic through the gateway's whole pipeline (auth
//! check HS256 → leased rate limit → anonymize 1 KB) for minutes, on its
//! Workers build under `wrangler dev` or its Spin build in `edge-host` with
//! the key-value store on a real Redis, in front of this program's origin.
//! Every window it reports requests, rate, p50/p99, answers that were not
//! `200`, and the resident memory of the serving processes; at the end it
//! checks that nothing was lost (every `200` reached the origin, once, and
//! none with the email in clear).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::fixtures::{self, Alg, Signer};
use crate::http1::{Client, request_bytes};
use crate::live::{OriginServer, WranglerDev, free_port, measure};

/// Where the soak runs.
#[derive(Debug, Clone)]
pub enum Target {
    /// The Workers build under `wrangler dev` (this executable).
    Workers {
        /// `wrangler`.
        wrangler: PathBuf,
    },
    /// The Spin build in `edge-host`, its store on a `redis-server` this
    /// program starts.
    Spin {
        /// `edge-host`.
        edge_host: PathBuf,
        /// The gateway's Spin component.
        component: PathBuf,
        /// `redis-server`.
        redis_server: PathBuf,
    },
}

/// How the soak is run.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Where.
    pub target: Target,
    /// Keep-alive clients, one request at a time each.
    pub clients: usize,
    /// How long, in seconds.
    pub seconds: f64,
    /// The reporting window, in seconds.
    pub window: f64,
}

/// One window.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Seconds since the start, at the window's end.
    pub at_s: f64,
    /// `200` answers.
    pub ok: u64,
    /// Other answers and failed exchanges.
    pub errors: u64,
    /// `200`s per second.
    pub rps: f64,
    /// Latency percentiles of the `200`s, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Resident memory of the serving processes (workerd and wrangler, or
    /// edge-host), MiB.
    pub server_mib: f64,
    /// Resident memory of redis-server (Spin only), MiB.
    pub redis_mib: f64,
}

/// The whole soak.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// `workers` or `spin`.
    pub target: String,
    /// Clients.
    pub clients: usize,
    /// The windows, in order.
    pub windows: Vec<Window>,
    /// `200` answers in all.
    pub ok: u64,
    /// Errors in all.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: String,
    /// Requests the origin received on the pipeline route.
    pub origin_received: u64,
    /// Of those, with the email in clear (must be 0).
    pub origin_clear: u64,
    /// p50 / p99 over every `200`, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// What serves the gateway, stopped when dropped.
enum Server {
    Workers(WranglerDev),
    Spin { host: Process, redis: Process },
}

impl Server {
    fn addr(&self) -> SocketAddr {
        match self {
            Server::Workers(dev) => dev.addr(),
            Server::Spin { host, .. } => host.addr,
        }
    }

    /// Where the gateway is mounted.
    fn prefix(&self) -> &'static str {
        match self {
            Server::Workers(_) => "",
            Server::Spin { .. } => "/gateway",
        }
    }

    /// Resident memory (server, redis), MiB.
    fn memory(&self) -> (f64, f64) {
        match self {
            Server::Workers(dev) => (group_rss_mib(dev.group()), 0.0),
            Server::Spin { host, redis } => {
                (group_rss_mib(host.group()), group_rss_mib(redis.group()))
            }
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Server::Workers(dev) => dev.log_tail(),
            Server::Spin { host, redis } => format!("{}\n{}", host.log_tail(), redis.log_tail()),
        }
    }
}

/// A child in a process group of its own, its output in a scratch file,
/// killed with its group when dropped.
struct Process {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Process {
    fn spawn(mut command: Command, addr: SocketAddr, log: PathBuf) -> Result<Process, String> {
        use std::os::unix::process::CommandExt as _;
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|e| format!("starting {command:?}: {e}"))?;
        Ok(Process { child, addr, log })
    }

    fn group(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until `check` passes, the process still running.
    fn wait_for(&mut self, what: &str, check: impl Fn(SocketAddr) -> bool) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(300) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{what} exited ({status}):\n{}", self.log_tail()));
            }
            if check(self.addr) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("{what} not ready:\n{}", self.log_tail()))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// The resident memory of every process in `group`, MiB.
fn group_rss_mib(group: u32) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut kib = 0u64;
    for entry in entries.flatten() {
        let Some((_, pgrp, _)) = crate::live::stat(entry.path().join("stat")) else {
            continue;
        };
        if pgrp != group {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        kib += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    kib as f64 / 1024.0
}

fn start(target: &Target, policy: String, scratch: &Path) -> Result<Server, String> {
    match target {
        Target::Workers { wrangler } => {
            let mut vars = vec![("POLICY".to_owned(), policy)];
            vars.extend(
                fixtures::SECRETS
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            Ok(Server::Workers(WranglerDev::start(wrangler, &vars)?))
        }
        Target::Spin {
            edge_host,
            component,
            redis_server,
        } => {
            let redis_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let mut redis_command = Command::new(redis_server);
            redis_command
                .args(["--bind", "127.0.0.1", "--port"])
                .arg(redis_addr.port().to_string())
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(scratch);
            let mut redis = Process::spawn(redis_command, redis_addr, scratch.join("redis.log"))?;
            redis.wait_for("redis-server", |addr| {
                std::net::TcpStream::connect(addr).is_ok()
            })?;
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let mut host_command = Command::new(edge_host);
            host_command
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--app")
                .arg(format!("/gateway={}", component.display()))
                .args(["--allow-outbound", "http://127.0.0.1:*"])
                .arg("--redis")
                .arg(format!("redis://{redis_addr}"))
                .arg("--var")
                .arg(format!("policy={policy}"))
                .arg("--var")
                .arg("allowed_outbound_hosts=http://127.0.0.1:*");
            for (name, value) in fixtures::SECRETS {
                host_command
                    .arg("--var")
                    .arg(format!("{}={value}", name.to_ascii_lowercase()));
            }
            let mut host = Process::spawn(host_command, addr, scratch.join("edge-host.log"))?;
            let health = request_bytes("GET", "/gateway/health", "127.0.0.1", &[], b"");
            host.wait_for("edge-host", |addr| {
                let mut client = Client::new(addr, Duration::from_secs(5));
                client
                    .exchange(&health)
                    .is_ok_and(|(head, _)| matches!(head.status(), Some(200 | 503)))
            })?;
            Ok(Server::Spin { host, redis })
        }
    }
}

/// Runs the soak.
pub fn run(options: &SoakOptions) -> Result<SoakReport, String> {
    let signer = Signer::new()?;
    let origin = OriginServer::start().map_err(|e| format!("origin server: {e}"))?;
    let policy = fixtures::gateway_policy(&origin.url(), signer.jwk());
    let scratch = std::env::temp_dir().join(format!("edge-soak-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let target = match options.target {
        Target::Workers { .. } => "workers",
        Target::Spin { .. } => "spin",
    };
    eprintln!("gateway-bench soak: starting the gateway on {target}");
    let server = start(&options.target, policy, &scratch)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let body = fixtures::body();
    let host = server.addr().to_string();
    let path = format!("{}{}", server.prefix(), fixtures::PIPELINE_PATH);
    let requests: Vec<Vec<u8>> = (0..options.clients)
        .map(|i| {
            let token = signer.token(Alg::Hs256, &fixtures::subject(i), now - 5, now + 86_400);
            request_bytes(
                "POST",
                &path,
                &host,
                &[
                    ("content-type", "application/json"),
                    ("authorization", &format!("Bearer {token}")),
                    ("user-agent", "gateway-bench-soak"),
                ],
                body.as_bytes(),
            )
        })
        .collect();
    let started = Instant::now();
    let mut windows = Vec::new();
    let (mut ok, mut errors, mut first_error) = (0, 0, String::new());
    let mut all_latencies: Vec<u32> = Vec::new();
    while started.elapsed().as_secs_f64() < options.seconds {
        let left = options.seconds - started.elapsed().as_secs_f64();
        let m = measure(server.addr(), &requests, options.window.min(left).max(1.0))?;
        let (server_mib, redis_mib) = server.memory();
        let mut latencies = m.latencies_us;
        latencies.sort_unstable();
        let window = Window {
            at_s: started.elapsed().as_secs_f64(),
            ok: m.ok,
            errors: m.failed,
            rps: m.ok as f64 / m.seconds,
            p50_ms: percentile(&latencies, 0.5),
            p99_ms: percentile(&latencies, 0.99),
            server_mib,
            redis_mib,
        };
        eprintln!(
            "gateway-bench soak {target}: {:>5.0} s  {:>7} ok  {:>4} errors  {:>6.0}/s  p50 {:.1} ms  p99 {:.1} ms  server {:.0} MiB  redis {:.0} MiB",
            window.at_s,
            window.ok,
            window.errors,
            window.rps,
            window.p50_ms,
            window.p99_ms,
            window.server_mib,
            window.redis_mib
        );
        ok += m.ok;
        errors += m.failed;
        if first_error.is_empty() && !m.first_failure.is_empty() {
            first_error = m.first_failure;
            eprintln!(
                "gateway-bench soak: first error: {first_error}\n{}",
                server.log_tail()
            );
        }
        all_latencies.extend(latencies);
        windows.push(window);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&scratch);
    all_latencies.sort_unstable();
    let saw = origin.saw();
    Ok(SoakReport {
        target: target.to_owned(),
        clients: options.clients,
        windows,
        ok,
        errors,
        first_error,
        origin_received: saw.anonymized,
        origin_clear: saw.anonymized_clear,
        p50_ms: percentile(&all_latencies, 0.5),
        p99_ms: percentile(&all_latencies, 0.99),
    })
}

fn percentile(sorted_us: &[u32], q: f64) -> f64 {
    sorted_us
        .get(((sorted_us.len() as f64 - 1.0) * q).round() as usize)
        .map_or(0.0, |us| f64::from(*us) / 1000.0)
}

/// The report as markdown: one row per window, then the totals and the
/// checks.
pub fn table(report: &SoakReport) -> String {
    let mut out = format!(
        "Soak on {} ({} clients, HS256 pipeline, 1 KB body):\n\n\
         | at | 200s | req/s | p50 ms | p99 ms | errors | server RSS | redis RSS |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
        report.target, report.clients
    );
    for w in &report.windows {
        out.push_str(&format!(
            "| {:.0} s | {} | {:.0} | {:.1} | {:.1} | {} | {:.0} MiB | {} |\n",
            w.at_s,
            w.ok,
            w.rps,
            w.p50_ms,
            w.p99_ms,
            w.errors,
            w.server_mib,
            if w.redis_mib > 0.0 {
                format!("{:.0} MiB", w.redis_mib)
            } else {
                "–".to_owned()
            }
        ));
    }
    let seconds = report.windows.last().map_or(0.0, |w| w.at_s);
    out.push_str(&format!(
        "\n{} answers 200 in {seconds:.0} s ({:.0}/s), p50 {:.1} ms, p99 {:.1} ms, {} errors{}; \
         the origin received {} pipeline requests, {} with the email in clear.\n",
        report.ok,
        report.ok as f64 / seconds.max(1.0),
        report.p50_ms,
        report.p99_ms,
        report.errors,
        if report.first_error.is_empty() {
            String::new()
        } else {
            format!(
                " (first: {})",
                report.first_error.chars().take(200).collect::<String>()
            )
        },
        report.origin_received,
        report.origin_clear,
    ));
    out
}

/// Nothing lost: every `200` reached the origin once (it may have seen a
/// few more, whose answers were lost on the way back and counted as
/// errors), none with the email in clear.
pub fn check(report: &SoakReport) -> Result<(), String> {
    if report.origin_clear > 0 {
        return Err(format!(
            "the origin saw the email in clear {} times",
            report.origin_clear
        ));
    }
    if report.origin_received < report.ok || report.origin_received > report.ok + report.errors {
        return Err(format!(
            "{} answers were 200 and {} errors, but the origin received {}",
            report.ok, report.errors, report.origin_received
        ));
    }
    Ok(())
}
