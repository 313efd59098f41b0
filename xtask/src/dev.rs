//! `cargo xtask dev`: builds every function in `functions.toml` and serves
//! each runtime on 127.0.0.1 as soon as its own builds are ready — the
//! Spin builds under the wasmtime host first, each Workers build under
//! `wrangler dev` as it finishes, the browser builds' demo page last — and
//! says when each one answers.

use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edge_registry::{Function, Registry};

use crate::build::{self, Ready, artifacts};
use crate::util::{cmd, http_status, run, target_dir};

/// Serves every build on 127.0.0.1 until interrupted.
pub(crate) fn serve(registry: &Registry) -> Result<()> {
    run(cmd("cargo").args(["build", "-p", "wasm-tests", "--bin", "edge-host"]))?;
    let servers = Servers {
        registry,
        children: Mutex::new(Children(Vec::new())),
        stop: AtomicBool::new(false),
    };
    let mut runtimes = runtimes(registry);
    std::thread::scope(|scope| {
        let builds = scope.spawn(|| -> Result<()> {
            build::all(registry, &servers)?;
            build::sizes(registry)
        });
        let result = watch(registry, &servers, &mut runtimes, builds);
        // Stop the next build, and the servers now.
        servers.stop.store(true, Ordering::SeqCst);
        if let Ok(mut children) = servers.children.lock() {
            children.stop();
        }
        result
    })
}

/// Until something fails: announces each runtime when it answers and the
/// banner when the builds are done.
fn watch(
    registry: &Registry,
    servers: &Servers<'_>,
    runtimes: &mut [Runtime],
    builds: std::thread::ScopedJoinHandle<'_, Result<()>>,
) -> Result<()> {
    let mut builds = Some(builds);
    let mut all_ready = false;
    loop {
        if let Some(name) = servers.exited()? {
            if builds.is_some() {
                eprintln!("xtask: stopping once the build in progress ends");
            }
            bail!("{name}; stopping the others");
        }
        if let Some(handle) = builds.take_if(|b| b.is_finished()) {
            handle
                .join()
                .unwrap_or_else(|_| bail!("the build thread panicked"))?;
            println!("{}", banner(registry, runtimes));
        }
        for runtime in runtimes.iter_mut().filter(|r| !r.ready) {
            if servers.started(&runtime.process) && runtime.answers() {
                runtime.ready = true;
                eprintln!("xtask: ready: {}", runtime.describe);
            }
        }
        if !all_ready && builds.is_none() && runtimes.iter().all(|r| r.ready) {
            all_ready = true;
            eprintln!("xtask: everything answers (Ctrl-C stops everything)");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One runtime's server: which process serves it and what answers when it
/// is up.
struct Runtime {
    /// The process's label in [`Children`].
    process: String,
    /// What to say when it answers.
    describe: String,
    /// Requests (`port`, `path`) that must all answer 200 or 503.
    probes: Vec<(u16, String)>,
    ready: bool,
}

impl Runtime {
    fn answers(&self) -> bool {
        self.probes
            .iter()
            .all(|(port, path)| matches!(http_status(*port, path), Some(200 | 503)))
    }
}

const SPIN_HOST: &str = "edge-host";
const DEMO_PAGE: &str = "browser demo";

fn wrangler_process(name: &str) -> String {
    format!("wrangler dev {name}")
}

fn local(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The runtimes `cargo xtask dev` serves, from the registry.
fn runtimes(registry: &Registry) -> Vec<Runtime> {
    let dev = &registry.dev;
    let mut runtimes = vec![Runtime {
        process: SPIN_HOST.to_owned(),
        describe: format!(
            "Spin builds (wasmtime host) on {}/NAME/ for {}",
            local(dev.spin_port),
            registry.names().collect::<Vec<_>>().join(", ")
        ),
        probes: registry
            .names()
            .map(|name| (dev.spin_port, format!("/{name}/health")))
            .collect(),
        ready: false,
    }];
    for function in &registry.functions {
        runtimes.push(Runtime {
            process: wrangler_process(&function.name),
            describe: format!(
                "{}'s Workers build (wrangler dev) on {}/",
                function.name,
                local(function.port)
            ),
            probes: vec![(function.port, "/health".to_owned())],
            ready: false,
        });
    }
    runtimes.push(Runtime {
        process: DEMO_PAGE.to_owned(),
        describe: format!("browser builds (demo page) on {}/", local(dev.browser_port)),
        probes: registry
            .names()
            .map(|name| (dev.browser_port, format!("/{name}/{name}.js")))
            .collect(),
        ready: false,
    });
    runtimes
}

/// What `cargo xtask dev` prints once its builds are done: where each
/// runtime is and what to try, every line from the registry.
fn banner(registry: &Registry, runtimes: &[Runtime]) -> String {
    let dev = &registry.dev;
    let spin = local(dev.spin_port);
    let routes: Vec<String> = registry.names().map(|n| format!("/{n}/...")).collect();
    let workers: Vec<String> = registry
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| match i {
            0 => format!("{} {}/", f.name, local(f.port)),
            _ => format!("{} :{}", f.name, f.port),
        })
        .collect();
    let waiting = runtimes.iter().filter(|r| !r.ready).count();
    let mut text = format!(
        "\nServing on 127.0.0.1 (Ctrl-C stops everything):\n\
         \x20 Spin builds (wasmtime host):   {spin}{}\n\
         \x20 Workers builds (wrangler dev): {}\n\
         \x20 Browser builds (demo page):    {}/\n",
        routes.join("  "),
        workers.join("  "),
        local(dev.browser_port),
    );
    if waiting > 0 {
        text.push_str(&format!(
            "{waiting} of {} not answering yet: each is announced by an \"xtask: ready: …\" line \
             when it answers (wrangler dev builds on its first start, then takes ~10 s).\n",
            runtimes.len()
        ));
    }
    text.push_str("\nTry:\n");
    for function in &registry.functions {
        let workers = local(function.port);
        let spin = format!("{spin}/{}", function.name);
        for example in &function.examples {
            text.push_str(&format!(
                "  {}\n",
                function.example(example, &workers, &spin)
            ));
        }
    }
    text
}

/// The servers started so far, started as their builds finish.
struct Servers<'a> {
    registry: &'a Registry,
    children: Mutex<Children>,
    stop: AtomicBool,
}

impl Servers<'_> {
    fn spawn(&self, label: &str, command: &mut Command) -> Result<()> {
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {label}"))?;
        self.lock()?.0.push((label.to_owned(), child));
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Children>> {
        self.children
            .lock()
            .map_err(|_| anyhow::anyhow!("a build thread panicked"))
    }

    fn started(&self, label: &str) -> bool {
        self.lock()
            .is_ok_and(|children| children.0.iter().any(|(l, _)| l == label))
    }

    /// The first server that has exited, described.
    fn exited(&self) -> Result<Option<String>> {
        for (label, child) in &mut self.lock()?.0 {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(format!("{label} exited ({status})")));
            }
        }
        Ok(None)
    }
}

impl Ready for Servers<'_> {
    fn spin(&self) -> Result<()> {
        let mut host = cmd(&target_dir().join("debug/edge-host").to_string_lossy());
        host.args([
            "--listen",
            &format!("127.0.0.1:{}", self.registry.dev.spin_port),
        ])
        .args(["--manifest", "spin.toml"]);
        for (name, value) in &self.registry.dev.secrets {
            host.arg("--var")
                .arg(format!("{}={value}", name.to_ascii_lowercase()));
        }
        self.spawn(SPIN_HOST, &mut host)
    }

    fn worker(&self, name: &str) -> Result<()> {
        let function = self.registry.get(name)?;
        let mut wrangler = wrangler_dev(function);
        for (secret, value) in &self.registry.dev.secrets {
            wrangler.arg("--var").arg(format!("{secret}:{value}"));
        }
        self.spawn(&wrangler_process(name), &mut wrangler)
    }

    fn browser(&self) -> Result<()> {
        self.spawn(
            DEMO_PAGE,
            cmd("node")
                .args(["wasm-tests/chromium/serve.mjs", "--port"])
                .arg(self.registry.dev.browser_port.to_string())
                .arg("--root")
                .arg(artifacts().join("browser")),
        )
    }

    fn cancelled(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Children stopped when dropped. They stay in the terminal's process
/// group, so Ctrl-C reaches them (and wrangler's workerd) directly too.
struct Children(Vec<(String, Child)>);

impl Children {
    fn stop(&mut self) {
        for (_, child) in &mut self.0 {
            // TERM first: wrangler stops its workerd on TERM, not on KILL.
            let _ = Command::new("kill")
                .args(["-s", "TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, child) in &mut self.0 {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `wrangler dev` for one function's worker (its environment, or the top
/// level), offline and quiet (its log level is `warn`, so it prints no
/// "Ready" line: [`watch`] says when it answers).
fn wrangler_dev(function: &Function) -> Command {
    let port = function.port;
    let mut command = cmd("wrangler");
    command.arg("dev");
    if !function.top_level_worker {
        command.args(["--env", &function.name]);
    }
    command
        .args(["--ip", "127.0.0.1", "--port"])
        .arg(port.to_string())
        // Several start at once; each would take 9229 while it looks free.
        .arg("--inspector-port")
        .arg((u32::from(port) + 1000).to_string())
        .args([
            "--show-interactive-dev-session=false",
            // GET /__scheduled runs the cron trigger.
            "--test-scheduled",
            "--log-level",
            "warn",
        ])
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false");
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_comes_from_the_registry() {
        let registry = Registry::load().unwrap();
        let mut runtimes = runtimes(&registry);
        assert_eq!(runtimes.len(), registry.functions.len() + 2);
        let text = banner(&registry, &runtimes);
        assert!(text.contains("http://127.0.0.1:3000/counter/...  /rate-limit/..."));
        assert!(text.contains("counter http://127.0.0.1:8787/  rate-limit :8788"));
        assert!(text.contains("curl -s http://127.0.0.1:3000/counter/health\n"));
        assert!(text.contains("-X POST http://127.0.0.1:8788/auth/login"));
        let all = registry.functions.len() + 2;
        assert!(text.contains(&format!("{all} of {all} not answering yet")));
        assert!(!text.contains("{workers}") && !text.contains("{spin}"));
        for runtime in &mut runtimes {
            runtime.ready = true;
        }
        assert!(!banner(&registry, &runtimes).contains("not answering"));
    }
}
