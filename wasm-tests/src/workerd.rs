//! The Workers runtime: a function's worker under `wrangler dev` (workerd
//! from npm) on 127.0.0.1, with local Durable Objects and KV persisted to a
//! throwaway directory. The process is stopped when [`WranglerDev`] drops.
//!
//! Every worker runs with `--test-scheduled`, so `GET /__scheduled` runs its
//! cron handler ([`WranglerDev::scheduled`]). Service bindings between
//! separately started `wrangler dev` processes go through wrangler's dev
//! registry (a directory where each process lists its workers): each
//! [`WranglerDev::start`] gets a registry of its own, so parallel tests never
//! see each other's workers, and workers started with
//! [`WranglerDev::start_in`] on one [`DevRegistry`] reach each other (e.g.
//! `METRICS` → `edge-metrics`).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::conformance::{Actual, CaseRequest, Suite};
use crate::{path_with_node_bin, workspace_root};

/// How long a start (with its worker build) may take.
const START_DEADLINE: Duration = Duration::from_secs(420);

/// A running `wrangler dev`.
pub struct WranglerDev {
    child: Child,
    port: u16,
    log: PathBuf,
    state: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A wrangler dev registry shared by several [`WranglerDev`]s (a throwaway
/// directory, removed on drop): their service bindings resolve to each
/// other's workers, and to no one else's. Drop it after the workers (declare
/// it first).
pub struct DevRegistry {
    path: PathBuf,
}

impl DevRegistry {
    /// A new, empty registry.
    pub fn new() -> Result<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("edge-wrangler-registry-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(DevRegistry { path })
    }

    /// The registry's directory (`WRANGLER_REGISTRY_PATH`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DevRegistry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `--env NAME` for a function's worker, or nothing for the one that is
/// wrangler.toml's top level (the gateway).
fn environment(function: &str) -> Result<Vec<String>> {
    let registry = edge_registry::Registry::load()?;
    Ok(if registry.get(function)?.top_level_worker {
        Vec::new()
    } else {
        vec!["--env".to_owned(), function.to_owned()]
    })
}

/// One lock per environment, held while a worker of it starts: wrangler
/// runs the environment's build command (`cargo xtask build-worker NAME`,
/// which rewrites `functions/NAME/build/`) on every start, and two starts
/// of one environment at once would bundle each other's half-written files.
fn start_lock(function: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<BTreeMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let locks = LOCKS.get_or_init(Mutex::default);
    let mut locks = locks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(locks.entry(function.to_owned()).or_default())
}

impl WranglerDev {
    /// Starts the `function` environment with these variables and secrets
    /// (passed as `--var`), on a dev registry of its own, and waits until
    /// `/health` answers.
    pub fn start(
        function: &str,
        vars: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Self> {
        Self::launch(function, vars, secrets, None)
    }

    /// Like [`WranglerDev::start`], on the dev registry at `registry`
    /// (see [`DevRegistry`]): service bindings connect to the workers other
    /// `wrangler dev` processes on it serve.
    pub fn start_in(
        function: &str,
        vars: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
        registry: &Path,
    ) -> Result<Self> {
        Self::launch(function, vars, secrets, Some(registry))
    }

    /// Stops the worker and starts it again on the same persisted Durable
    /// Objects and KV, as a redeploy would: a fresh isolate.
    pub fn restart(
        &mut self,
        function: &str,
        vars: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.stop();
        let wrangler = workspace_root().join("node_modules/.bin/wrangler");
        let scratch = std::mem::take(&mut self.state);
        let next = Self::launch_once(&wrangler, function, vars, secrets, None, Some(scratch));
        *self = next?;
        Ok(())
    }

    fn launch(
        function: &str,
        vars: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
        registry: Option<&Path>,
    ) -> Result<Self> {
        let wrangler = workspace_root().join("node_modules/.bin/wrangler");
        if !wrangler.exists() {
            bail!("{} is missing: run `cargo xtask test`", wrangler.display());
        }
        let lock = start_lock(function);
        let _building = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Workers starting at the same moment (this process's or another
        // test binary's) may still race for a port; such a start is tried
        // again.
        let mut attempt = 1;
        loop {
            match Self::launch_once(&wrangler, function, vars, secrets, registry, None) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    fn launch_once(
        wrangler: &Path,
        function: &str,
        vars: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
        registry: Option<&Path>,
        reuse: Option<PathBuf>,
    ) -> Result<Self> {
        use std::os::unix::process::CommandExt as _;
        let root = workspace_root();
        let port = free_port()?;
        // The scratch directory (log, state, registry): a restart keeps its own.
        let scratch = reuse.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("edge-wrangler-{}-{port}", std::process::id()))
        });
        std::fs::create_dir_all(&scratch)?;
        let log = scratch.join("wrangler.log");
        let state = scratch.join("state");
        let registry = match registry {
            Some(shared) => shared.to_path_buf(),
            None => scratch.join("registry"),
        };
        std::fs::create_dir_all(&registry)?;
        let mut command = Command::new(wrangler);
        command
            .current_dir(&root)
            .env("PATH", path_with_node_bin()?)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_LOG_PATH", &scratch)
            // wrangler reads WRANGLER_REGISTRY_PATH; Miniflare lets
            // CLOUDFLARE_DEV_REGISTRY_PATH override it, so set both.
            .env("WRANGLER_REGISTRY_PATH", &registry)
            .env("CLOUDFLARE_DEV_REGISTRY_PATH", &registry)
            .arg("dev")
            .args(environment(function)?)
            .args(["--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            // Else every start takes 9229 if it looks free, and starts at
            // the same moment collide on it.
            .arg("--inspector-port")
            .arg(free_port()?.to_string())
            .args([
                "--show-interactive-dev-session=false",
                "--test-scheduled",
                "--persist-to",
            ])
            .arg(&state)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(scratch.join("wrangler.err"))?)
            .process_group(0);
        for (k, v) in vars.iter().chain(secrets) {
            command.arg("--var").arg(format!("{k}:{v}"));
        }
        let child = command.spawn().context("starting wrangler dev")?;
        let mut dev = WranglerDev {
            child,
            port,
            log,
            state: scratch,
        };
        dev.wait_ready()?;
        Ok(dev)
    }

    /// Runs the worker's cron handler now (`GET /__scheduled`, which
    /// `--test-scheduled` adds) and waits for it to finish.
    pub fn scheduled(&self) -> Result<()> {
        let response = agent(Duration::from_secs(60))
            .get(&format!("{}/__scheduled?cron=*+*+*+*+*", self.url()))
            .call()
            .context("GET /__scheduled")?;
        let status = response.status().as_u16();
        let body = response.into_body().read_to_string().unwrap_or_default();
        if status != 200 || !body.contains("Ran scheduled event") {
            bail!(
                "GET /__scheduled answered {status} {body:?}:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<()> {
        let url = self.url();
        let logs = self.logs();
        wait_healthy(
            &mut self.child,
            &url,
            &[200, 503],
            (START_DEADLINE, Duration::from_millis(500)),
            "wrangler dev",
            &logs,
        )
    }

    fn logs(&self) -> [PathBuf; 2] {
        [
            self.state.join("wrangler.log"),
            self.state.join("wrangler.err"),
        ]
    }

    /// The last lines wrangler printed.
    pub fn log_tail(&self) -> String {
        log_tail(&self.logs())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The resident memory of the workerd processes serving this worker
    /// (those named `workerd` in wrangler's process group), in bytes.
    pub fn workerd_rss(&self) -> u64 {
        let group = self.child.id().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        let mut total = 0;
        for entry in entries.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp …; comm may hold spaces.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let comm = head.split_once('(').map_or("", |(_, c)| c);
            let pgrp = rest.split_whitespace().nth(2);
            if comm.starts_with("workerd") && pgrp == Some(group.as_str()) {
                let status =
                    std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
                let kib = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .unwrap_or(0);
                total += kib * 1024;
            }
        }
        total
    }

    /// Where wrangler's stdout goes.
    pub fn log_path(&self) -> &PathBuf {
        &self.log
    }
}

impl WranglerDev {
    /// Stops the process group and waits for it.
    fn stop(&mut self) {
        signal_group(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_group(self.child.id(), "KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WranglerDev {
    fn drop(&mut self) {
        self.stop();
        if !self.state.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

/// Sends `signal` to the process group led by `pid` (wrangler and its workerd).
fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// Polls `GET {url}/health` every `poll` until it answers one of
/// `statuses`; fails when `child` (`what`) exits first or `deadline`
/// passes, with the tail of its `logs`.
pub(crate) fn wait_healthy(
    child: &mut Child,
    url: &str,
    statuses: &[u16],
    (deadline, poll): (Duration, Duration),
    what: &str,
    logs: &[PathBuf],
) -> Result<()> {
    let started = Instant::now();
    let agent = agent(Duration::from_secs(5));
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{what} exited ({status}) before serving:\n{}",
                log_tail(logs)
            );
        }
        if started.elapsed() > deadline {
            bail!("{what} not ready after {deadline:?}:\n{}", log_tail(logs));
        }
        if let Ok(response) = agent.get(&format!("{url}/health")).call()
            && statuses.contains(&response.status().as_u16())
        {
            return Ok(());
        }
        std::thread::sleep(poll);
    }
}

/// The last 40 lines of `logs`, one after the other.
pub(crate) fn log_tail(logs: &[PathBuf]) -> String {
    let mut text = String::new();
    for path in logs {
        if let Ok(mut f) = std::fs::File::open(path) {
            let _ = f.read_to_string(&mut text);
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// An HTTP client that returns 4xx/5xx as responses, not errors.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// Sends one case request to `base`.
pub fn send(agent: &ureq::Agent, base: &str, case: &CaseRequest) -> Result<Actual> {
    let mut builder = http::Request::builder()
        .method(case.method.as_str())
        .uri(format!("{base}{}", case.path));
    for (name, value) in &case.headers {
        builder = builder.header(name, value);
    }
    let response = agent.run(builder.body(case.body_bytes())?)?;
    let (parts, mut body) = response.into_parts();
    let body = body.read_to_vec()?;
    Ok(Actual::new(parts.status, &parts.headers, &body))
}

/// Runs a suite against a running worker.
pub fn answers(dev: &WranglerDev, suite: &Suite) -> Result<Vec<Actual>> {
    let agent = agent(Duration::from_secs(30));
    suite
        .cases
        .iter()
        .map(|case| send(&agent, &dev.url(), &case.request))
        .collect()
}
