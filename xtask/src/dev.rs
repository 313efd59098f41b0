//! `cargo xtask dev`: builds every function in `functions.toml` and serves
//! each runtime on 127.0.0.1 as soon as its own builds are ready — the
//! Spin builds under the wasmtime host first (built beside them in
//! `target/host`), each Workers build under `wrangler dev` as it finishes,
//! the browser builds' demo page once they are all done — and says when
//! each one answers. Beside the browser builds it serves the npm package
//! (`/edge-functions/`, assembled from them) and the local-first demo that
//! imports it (`packages/demo` at `/demo/`).
//!
//! On an unchanged tree that is cargo finding each build fresh, nothing
//! more: the host takes the compiled components from wasmtime's cache
//! (`target/wasmtime-cache`), each wrangler's own build command takes the
//! note that the build was just checked ([`build::JUST_BUILT`]), and the
//! gzip sizes are remembered.
//!
//! Before the builds it starts what lets JWTs be tried locally: the
//! project's OIDC provider (`wasm-tests/oidc/provider.mjs`, the tests' own)
//! and an echo origin (`xtask/dev-origin.mjs`). Every function whose
//! built-in policy names an identity provider or an origin (auth-check, the
//! gateway) is served with that policy pointed at them instead, unless
//! `--policy NAME=PATH` gives its policy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edge_registry::{Function, Registry};
use serde_json::{Value, json};

use crate::build::{self, Ready, artifacts};
use crate::util::{cmd, http_status, root, run, target_dir};

/// Where the local OIDC provider listens; its issuer is `http://127.0.0.1:8900`.
const OIDC_PORT: u16 = 8900;
/// Where the echo origin listens.
const ORIGIN_PORT: u16 = 8901;
/// The audience of the provider's tokens (its default resource).
const AUDIENCE: &str = "https://api.test";
/// The local provider's issuer.
fn issuer() -> String {
    local(OIDC_PORT)
}

/// spin.toml's variables naming the hosts a component may call (its
/// `allowed_outbound_hosts`), and the local server each is pointed at.
const SPIN_HOSTS: [(&str, u16); 2] = [
    ("auth_check_idp_host", OIDC_PORT),
    ("gateway_origin_host", ORIGIN_PORT),
];

const USAGE: &str = "usage: cargo xtask dev [--policy NAME=PATH]...";

/// `cargo xtask dev`'s options.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// `--policy NAME=PATH`: the policy function NAME is served with.
    policies: BTreeMap<String, PathBuf>,
}

impl Options {
    /// Reads `--policy NAME=PATH` (or `--policy=NAME=PATH`), repeatable.
    pub(crate) fn parse(registry: &Registry, args: &[String]) -> Result<Options> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let value = match arg.strip_prefix("--policy=") {
                Some(value) => value,
                None if arg == "--policy" => args
                    .next()
                    .with_context(|| format!("--policy needs NAME=PATH\n{USAGE}"))?,
                None => bail!("unknown argument {arg:?}\n{USAGE}"),
            };
            let (name, path) = value
                .split_once('=')
                .with_context(|| format!("--policy expects NAME=PATH, got {value:?}"))?;
            registry.get(name).context("--policy")?;
            if options
                .policies
                .insert(name.to_owned(), PathBuf::from(path))
                .is_some()
            {
                bail!("--policy {name}=… is given twice");
            }
        }
        Ok(options)
    }
}

/// The policy a function is served with (its `POLICY`).
#[derive(Debug)]
struct Policy {
    text: String,
    /// Where it comes from, for the banner.
    source: String,
    /// Where [`serve`] writes it for the user to read (a dev policy).
    served: Option<PathBuf>,
}

/// The policies passed to the functions: `--policy`'s files, else the
/// dev policy of those whose built-in one names an identity provider or
/// an origin; the others keep their built-in policy.
fn policies(registry: &Registry, options: &Options) -> Result<BTreeMap<String, Policy>> {
    let mut policies = BTreeMap::new();
    for name in registry.names() {
        let policy = match options.policies.get(name) {
            Some(path) => Policy {
                text: std::fs::read_to_string(path)
                    .with_context(|| format!("--policy {name}={}", path.display()))?,
                source: format!("{} (--policy)", path.display()),
                served: None,
            },
            None => {
                let builtin = format!("functions/{name}/policy.toml");
                let Ok(text) = std::fs::read_to_string(root().join(&builtin)) else {
                    continue;
                };
                let Some((policy, changes)) =
                    dev_policy(&text).with_context(|| format!("reading {builtin}"))?
                else {
                    continue;
                };
                let served = target_dir().join(format!("dev/{name}.policy.json"));
                Policy {
                    text: policy,
                    source: format!(
                        "{builtin} with {} (as served: {})",
                        changes.join(", "),
                        served.strip_prefix(root()).unwrap_or(&served).display()
                    ),
                    served: Some(served),
                }
            }
        };
        policies.insert(name.to_owned(), policy);
    }
    Ok(policies)
}

/// A built-in policy (TOML) pointed at the local servers, as JSON (which
/// every function reads as well as TOML): `[[auth.providers]]` becomes the
/// local provider (the first one's other settings kept), `gateway.origin`
/// the echo origin. `None` when it names neither; else what changed.
fn dev_policy(builtin: &str) -> Result<Option<(String, Vec<String>)>> {
    let mut policy: Value = toml::from_str(builtin)?;
    let mut changes = Vec::new();
    if let Some(providers) = policy
        .pointer_mut("/auth/providers")
        .and_then(Value::as_array_mut)
        .filter(|p| !p.is_empty())
    {
        let mut provider = providers[0].clone();
        let fields = provider
            .as_object_mut()
            .context("auth.providers[0] is not a table")?;
        fields.remove("jwks_uri");
        fields.insert("issuer".into(), issuer().into());
        fields.insert("audiences".into(), json!([AUDIENCE]));
        fields.insert("algorithms".into(), json!(["RS256"]));
        fields.insert("discovery".into(), true.into());
        *providers = vec![provider];
        changes.push(format!("[[auth.providers]] → {}", issuer()));
    }
    if let Some(origin) = policy.pointer_mut("/gateway/origin") {
        *origin = local(ORIGIN_PORT).into();
        changes.push(format!("gateway.origin → {}", local(ORIGIN_PORT)));
    }
    if changes.is_empty() {
        return Ok(None);
    }
    Ok(Some((serde_json::to_string(&policy)?, changes)))
}

/// The Spin variable holding function `name`'s policy (`auth_check_policy`).
fn spin_policy_variable(name: &str) -> String {
    format!("{}_policy", name.replace('-', "_"))
}

/// Serves every build on 127.0.0.1 until interrupted.
pub(crate) fn serve(registry: &Registry, options: &Options) -> Result<()> {
    let policies = policies(registry, options)?;
    for policy in policies.values() {
        if let Some(file) = &policy.served {
            std::fs::create_dir_all(target_dir().join("dev"))?;
            let pretty =
                serde_json::to_string_pretty(&serde_json::from_str::<Value>(&policy.text)?)?;
            std::fs::write(file, pretty + "\n")
                .with_context(|| format!("writing {}", file.display()))?;
        }
    }
    for port in [OIDC_PORT, ORIGIN_PORT] {
        std::net::TcpListener::bind(("127.0.0.1", port)).with_context(|| {
            format!("127.0.0.1:{port} is taken (another `cargo xtask dev`?): it serves the local OIDC provider and echo origin")
        })?;
    }
    // Notes a killed `cargo xtask dev` left for wranglers that never ran.
    let _ = std::fs::remove_dir_all(just_built());
    let (host_built, host) = std::sync::mpsc::channel();
    let servers = Servers {
        registry,
        policies,
        children: Mutex::new(Children(Vec::new())),
        stop: AtomicBool::new(false),
        spin_built: AtomicBool::new(false),
    };
    let mut runtimes = runtimes(registry);
    servers.locals()?;
    std::thread::scope(|scope| {
        // The host builds beside the other builds (its own target
        // directory, so its own cargo lock); `watch` starts it once it and
        // the Spin builds are done.
        scope.spawn(move || host_built.send(build_host()));
        let builds = scope.spawn(|| -> Result<()> {
            build::all(registry, &servers)?;
            build::sizes(registry)
        });
        let result = watch(registry, &servers, &mut runtimes, builds, &host);
        // Stop the next build, and the servers now.
        servers.stop.store(true, Ordering::SeqCst);
        if let Ok(mut children) = servers.children.lock() {
            children.stop();
        }
        result
    })
}

/// The cargo target directory of the Spin host, `target/host`.
///
/// Not `target/debug`, where the tests build the same crates: the function
/// crates are `cdylib` + `rlib`, which cargo names without a hash
/// (`libspatial_query.rlib`), so a build resolving other features of their
/// dependencies overwrites them. `cargo build -p wasm-tests` and `cargo test
/// --workspace` (`cargo xtask test`, the benches and every dev-dependency
/// too) do (`time`, `hmac`, `ed25519-dalek`): each found the function crates
/// built by the other, compiled them and `wasm-tests` again and relinked
/// `edge-host`, ~11 s on every `cargo xtask dev` after tests. Here only this
/// build writes them.
pub(crate) fn host_target() -> PathBuf {
    target_dir().join("host")
}

/// Builds the Spin host, `target/host/debug/edge-host`.
pub(crate) fn build_host() -> Result<()> {
    run(cmd("cargo")
        .args(["build", "-p", "wasm-tests", "--bin", "edge-host"])
        .arg("--target-dir")
        .arg(host_target()))
}

/// Until something fails: starts the Spin host once it and the Spin builds
/// are built (`host` hears about the first), announces each runtime when it
/// answers and the banner when the builds are done.
fn watch(
    registry: &Registry,
    servers: &Servers<'_>,
    runtimes: &mut [Runtime],
    builds: std::thread::ScopedJoinHandle<'_, Result<()>>,
    host: &std::sync::mpsc::Receiver<Result<()>>,
) -> Result<()> {
    let mut builds = Some(builds);
    let mut host_built = false;
    let mut all_ready = false;
    loop {
        if let Some(name) = servers.exited()? {
            if builds.is_some() {
                eprintln!("xtask: stopping once the build in progress ends");
            }
            bail!("{name}; stopping the others");
        }
        if !host_built {
            match host.try_recv() {
                Ok(built) => {
                    built?;
                    host_built = true;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    bail!("the edge-host build thread panicked")
                }
            }
        }
        if host_built && servers.spin_built.load(Ordering::SeqCst) && !servers.started(SPIN_HOST) {
            servers.start_spin()?;
        }
        if let Some(handle) = builds.take_if(|b| b.is_finished()) {
            handle
                .join()
                .unwrap_or_else(|_| bail!("the build thread panicked"))?;
            println!("{}", banner(registry, &servers.policies, runtimes));
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
        std::thread::sleep(Duration::from_millis(250));
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
/// Where the local-first demo (`packages/demo`) is served, beside the npm
/// package it imports (`/edge-functions/`).
const DEMO_PATH: &str = "/demo/";
const OIDC_PROVIDER: &str = "OIDC provider";
const ECHO_ORIGIN: &str = "echo origin";

/// Where the OIDC provider's or the echo origin's output goes.
fn local_log(label: &str) -> PathBuf {
    target_dir().join(format!(
        "dev/{}.log",
        label.replace(' ', "-").to_ascii_lowercase()
    ))
}

/// Where [`Servers::worker`] leaves the notes its wranglers' build commands
/// take ([`build::JUST_BUILT`]).
fn just_built() -> PathBuf {
    target_dir().join("dev/just-built")
}

fn wrangler_process(name: &str) -> String {
    format!("wrangler dev {name}")
}

fn local(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The runtimes `cargo xtask dev` serves, from the registry.
fn runtimes(registry: &Registry) -> Vec<Runtime> {
    let dev = &registry.dev;
    let mut runtimes = vec![
        Runtime {
            process: OIDC_PROVIDER.to_owned(),
            describe: format!(
                "OIDC provider (wasm-tests/oidc/provider.mjs) on {}/, the issuer of the dev policies",
                issuer()
            ),
            probes: vec![(OIDC_PORT, "/.well-known/openid-configuration".to_owned())],
            ready: false,
        },
        Runtime {
            process: ECHO_ORIGIN.to_owned(),
            describe: format!(
                "echo origin (xtask/dev-origin.mjs) on {}/, the gateway's origin",
                local(ORIGIN_PORT)
            ),
            probes: vec![(ORIGIN_PORT, "/".to_owned())],
            ready: false,
        },
    ];
    runtimes.push(Runtime {
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
    });
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
        describe: format!(
            "browser builds (demo page) on {0}/, the local-first demo on {0}{DEMO_PATH}",
            local(dev.browser_port)
        ),
        probes: registry
            .names()
            .map(|name| (dev.browser_port, format!("/{name}/{name}.js")))
            .chain([(dev.browser_port, DEMO_PATH.to_owned())])
            .collect(),
        ready: false,
    });
    runtimes
}

/// What `cargo xtask dev` prints once its builds are done: where each
/// runtime is, which policies differ from the built-in ones and what to
/// try, the examples from the registry.
fn banner(
    registry: &Registry,
    policies: &BTreeMap<String, Policy>,
    runtimes: &[Runtime],
) -> String {
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
         \x20 Browser builds (demo page):    {}/\n\
         \x20 Local-first demo (npm package, nothing sent): {}{DEMO_PATH}\n\
         \x20 OIDC provider (RS256 tokens for {AUDIENCE}): {}/\n\
         \x20 Echo origin (answers with what it received): {}/\n",
        routes.join("  "),
        workers.join("  "),
        local(dev.browser_port),
        local(dev.browser_port),
        issuer(),
        local(ORIGIN_PORT),
    );
    if !policies.is_empty() {
        text.push_str("Policies (POLICY, on Workers and Spin; the others are built in):\n");
        for (name, policy) in policies {
            text.push_str(&format!("  {name}: {}\n", policy.source));
        }
    }
    if waiting > 0 {
        text.push_str(&format!(
            "{waiting} of {} not answering yet: each is announced by an \"xtask: ready: …\" line \
             when it answers (wrangler dev builds on its first start, then takes ~10 s).\n",
            runtimes.len()
        ));
    }
    text.push_str(&format!(
        "\nTry (first a token from the local provider, for the examples with $TOKEN; it lasts 15 minutes):\n  {}\n",
        token_command()
    ));
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

/// A shell line that sets `TOKEN` to an access token from the local
/// provider: sub `alice`, role `admin`, scope `api:read`.
fn token_command() -> String {
    format!(
        "TOKEN=$(curl -s -X POST '{}/__test/token?format=jwt' \
         -d '{{\"sub\":\"alice\",\"roles\":[\"admin\"],\"scope\":\"api:read\"}}')",
        issuer()
    )
}

/// The servers started so far, started as their builds finish.
struct Servers<'a> {
    registry: &'a Registry,
    policies: BTreeMap<String, Policy>,
    children: Mutex<Children>,
    stop: AtomicBool,
    /// Every Spin build is in `target/edge/spin/` ([`Ready::spin`]).
    spin_built: AtomicBool,
}

impl Servers<'_> {
    fn spawn(&self, label: &str, command: &mut Command) -> Result<()> {
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {label}"))?;
        self.lock()?.0.push((label.to_owned(), child));
        Ok(())
    }

    /// Starts the OIDC provider and the echo origin. Each exits when its
    /// stdin closes (`--exit-with-stdin`), so even a killed `cargo xtask dev`
    /// leaves neither behind.
    fn locals(&self) -> Result<()> {
        if !root().join("node_modules/oidc-provider").exists() {
            bail!("node_modules/oidc-provider is missing: run `cargo xtask install`");
        }
        // Their output (a "ready" JSON line, oidc-provider's warning about
        // its in-memory adapter) goes to a log: `watch` says when they answer.
        std::fs::create_dir_all(target_dir().join("dev"))?;
        for (label, script, port) in [
            (OIDC_PROVIDER, "wasm-tests/oidc/provider.mjs", OIDC_PORT),
            (ECHO_ORIGIN, "xtask/dev-origin.mjs", ORIGIN_PORT),
        ] {
            let log = local_log(label);
            let file = std::fs::File::create(&log)
                .with_context(|| format!("creating {}", log.display()))?;
            self.spawn(
                label,
                node_cmd("node")
                    .arg(script)
                    .args(["--port", &port.to_string(), "--exit-with-stdin"])
                    .stdin(Stdio::piped())
                    .stdout(file.try_clone()?)
                    .stderr(file),
            )?;
        }
        Ok(())
    }

    /// Starts the Spin host on every Spin build (`spin.toml`).
    fn start_spin(&self) -> Result<()> {
        let mut host = cmd(&host_target().join("debug/edge-host").to_string_lossy());
        host.args([
            "--listen",
            &format!("127.0.0.1:{}", self.registry.dev.spin_port),
        ])
        .args(["--manifest", "spin.toml"]);
        for (name, value) in &self.registry.dev.secrets {
            host.arg("--var")
                .arg(format!("{}={value}", name.to_ascii_lowercase()));
        }
        for (name, policy) in &self.policies {
            host.arg("--var")
                .arg(format!("{}={}", spin_policy_variable(name), policy.text));
        }
        // A host set in the environment (SPIN_VARIABLE_GATEWAY_ORIGIN_HOST,
        // for a --policy naming another origin) is left to it: --var wins.
        for (variable, port) in SPIN_HOSTS {
            let env = format!("SPIN_VARIABLE_{}", variable.to_ascii_uppercase());
            if std::env::var_os(env).is_none() {
                host.arg("--var").arg(format!("{variable}={}", local(port)));
            }
        }
        self.spawn(SPIN_HOST, &mut host)
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
                let mut text = format!("{label} exited ({status})");
                if [OIDC_PROVIDER, ECHO_ORIGIN].contains(&label.as_str()) {
                    let log = local_log(label);
                    let output = std::fs::read_to_string(&log).unwrap_or_default();
                    text.push_str(&format!(", {}:\n{}", log.display(), output.trim_end()));
                }
                return Ok(Some(text));
            }
        }
        Ok(None)
    }
}

impl Ready for Servers<'_> {
    /// [`watch`] starts the host, once it is built too.
    fn spin(&self) -> Result<()> {
        self.spin_built.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn worker(&self, name: &str) -> Result<()> {
        let function = self.registry.get(name)?;
        let mut wrangler = wrangler_dev(function);
        // Its build command need not check again what was just built.
        let notes = just_built();
        std::fs::create_dir_all(&notes)?;
        std::fs::write(notes.join(name), "")?;
        wrangler.env(build::JUST_BUILT, &notes);
        for (secret, value) in &self.registry.dev.secrets {
            wrangler.arg("--var").arg(format!("{secret}:{value}"));
        }
        if let Some(policy) = self.policies.get(name) {
            wrangler.arg("--var").arg(format!("POLICY:{}", policy.text));
        }
        self.spawn(&wrangler_process(name), &mut wrangler)
    }

    fn browser(&self) -> Result<()> {
        // The demo imports the npm package, made from these builds.
        crate::npm::package(self.registry)?;
        let package = artifacts().join("npm/edge-functions");
        self.spawn(
            DEMO_PAGE,
            node_cmd("node")
                .args(["wasm-tests/chromium/serve.mjs", "--port"])
                .arg(self.registry.dev.browser_port.to_string())
                .arg("--root")
                .arg(artifacts().join("browser"))
                .arg("--mount")
                .arg(format!("/demo={}", root().join("packages/demo").display()))
                .arg("--mount")
                .arg(format!("/edge-functions={}", package.display())),
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
            if matches!(child.try_wait(), Ok(Some(_))) {
                continue;
            }
            // TERM first: wrangler stops its workerd on TERM, not on KILL.
            let _ = Command::new("kill")
                .args(["-s", "TERM", &child.id().to_string()])
                .stderr(Stdio::null())
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

/// `node` and the npm tools (wrangler) as [`cmd`] starts them, with Node's
/// compile cache (`NODE_COMPILE_CACHE`, Node 22) in `target/dev/node-cache`
/// unless the environment names one: a wrangler starts in ~2.5 s of CPU,
/// ~20 % less with its 10 MB of JavaScript compiled once, and seven start at
/// once on two cores.
fn node_cmd(program: &str) -> Command {
    let mut command = cmd(program);
    if std::env::var_os("NODE_COMPILE_CACHE").is_none() {
        command.env("NODE_COMPILE_CACHE", target_dir().join("dev/node-cache"));
    }
    command
}

/// `wrangler dev` for one function's worker (its environment, or the top
/// level), offline and quiet (its log level is `warn`, so it prints no
/// "Ready" line: [`watch`] says when it answers).
fn wrangler_dev(function: &Function) -> Command {
    let port = function.port;
    let mut command = node_cmd("wrangler");
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

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_banner_comes_from_the_registry() {
        let registry = Registry::load().unwrap();
        let policies = policies(&registry, &Options::default()).unwrap();
        let mut runtimes = runtimes(&registry);
        assert_eq!(runtimes.len(), registry.functions.len() + 4);
        let text = banner(&registry, &policies, &runtimes);
        assert!(text.contains("http://127.0.0.1:3000/counter/...  /rate-limit/..."));
        assert!(text.contains("counter http://127.0.0.1:8787/  rate-limit :8788"));
        assert!(text.contains("curl -s http://127.0.0.1:3000/counter/health\n"));
        assert!(text.contains("-X POST http://127.0.0.1:8788/auth/login"));
        assert!(
            text.contains(
                "OIDC provider (RS256 tokens for https://api.test): http://127.0.0.1:8900/"
            )
        );
        assert!(
            text.contains("Echo origin (answers with what it received): http://127.0.0.1:8901/")
        );
        assert!(text.contains(
            "Local-first demo (npm package, nothing sent): http://127.0.0.1:8080/demo/\n"
        ));
        assert!(text.contains(&format!("\n  {}\n", token_command())));
        assert!(text.contains(&format!("  gateway: {}\n", policies["gateway"].source)));
        let all = registry.functions.len() + 4;
        assert!(text.contains(&format!("{all} of {all} not answering yet")));
        assert!(!text.contains("{workers}") && !text.contains("{spin}"));
        for runtime in &mut runtimes {
            runtime.ready = true;
        }
        assert!(!banner(&registry, &policies, &runtimes).contains("not answering"));
    }

    #[test]
    fn the_dev_policies_point_at_the_local_provider_and_origin() {
        let registry = Registry::load().unwrap();
        let policies = policies(&registry, &Options::default()).unwrap();
        assert_eq!(
            policies.keys().collect::<Vec<_>>(),
            ["auth-check", "gateway"],
            "the functions whose built-in policy names a provider or an origin"
        );
        for name in ["auth-check", "gateway"] {
            let policy: Value = serde_json::from_str(&policies[name].text).unwrap();
            let providers = policy["auth"]["providers"].as_array().unwrap();
            assert_eq!(providers.len(), 1, "{name}");
            let provider = &providers[0];
            assert_eq!(provider["issuer"], "http://127.0.0.1:8900", "{name}");
            assert_eq!(provider["audiences"], json!(["https://api.test"]), "{name}");
            assert_eq!(provider["algorithms"], json!(["RS256"]), "{name}");
            assert_eq!(provider["discovery"], true, "{name}");
            // The rest is the built-in policy's.
            assert_eq!(provider["max_age"], "15m", "{name}");
            let rules = policy["auth"]["rules"].as_array().unwrap();
            assert!(
                rules.iter().any(|r| r["roles"] == json!(["admin"])),
                "{name}"
            );
            assert_eq!(policy["auth"]["api_keys"]["header"], "x-api-key", "{name}");
        }
        let gateway: Value = serde_json::from_str(&policies["gateway"].text).unwrap();
        assert_eq!(gateway["gateway"]["origin"], "http://127.0.0.1:8901");
        assert_eq!(gateway["anonymize"]["entities"]["email"], "hash");
        assert!(policies["gateway"].source.starts_with(
            "functions/gateway/policy.toml with [[auth.providers]] → http://127.0.0.1:8900, \
             gateway.origin → http://127.0.0.1:8901 (as served: "
        ));
        assert!(dev_policy("[counter]\nstep = 1\n").unwrap().is_none());
    }

    #[test]
    fn a_policy_file_replaces_the_dev_policy() {
        let registry = Registry::load().unwrap();
        let file = std::env::temp_dir().join(format!("xtask-policy-{}.toml", std::process::id()));
        std::fs::write(&file, "[auth]\nrealm = \"mine\"\n").unwrap();
        let given = format!("auth-check={}", file.display());
        let options = Options::parse(&registry, &args(&["--policy", &given])).unwrap();
        let policies = policies(&registry, &options).unwrap();
        assert_eq!(policies["auth-check"].text, "[auth]\nrealm = \"mine\"\n");
        assert!(policies["auth-check"].source.ends_with(" (--policy)"));
        assert!(policies["gateway"].text.contains("127.0.0.1:8901"));
        std::fs::remove_file(&file).unwrap();

        let options = Options::parse(&registry, &args(&["--policy=gateway=g.toml"])).unwrap();
        assert_eq!(options.policies["gateway"], PathBuf::from("g.toml"));
        let error =
            |list: &[&str]| format!("{:#}", Options::parse(&registry, &args(list)).unwrap_err());
        assert!(error(&["--policy", "nope=x.toml"]).contains("unknown function \"nope\""));
        assert!(error(&["--policy", "gateway"]).contains("NAME=PATH"));
        assert!(error(&["--policy"]).contains("NAME=PATH"));
        assert!(error(&["--policy", "gateway=a", "--policy", "gateway=b"]).contains("twice"));
        assert!(error(&["--port", "1"]).contains("unknown argument"));
        assert_eq!(spin_policy_variable("auth-check"), "auth_check_policy");
    }
}
