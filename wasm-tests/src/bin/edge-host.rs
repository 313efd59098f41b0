//! `edge-host`: serve Spin HTTP components locally without Spin.
//!
//! ```text
//! edge-host --listen 127.0.0.1:3000 --manifest spin.toml [--var NAME=VALUE ...]
//! edge-host --listen 127.0.0.1:3000 --app /counter=path/to/counter.wasm [--app ...] [--var NAME=VALUE ...] [--allow-outbound HOST ...]
//! edge-host ... --redis redis://127.0.0.1:6379
//! ```
//!
//! The key-value store is in memory, one per process, unless `--redis URL`
//! (or `EDGE_HOST_REDIS`) names a Redis: then every component's
//! `wasi:keyvalue` store lives there, with the semantics of Spin's Redis
//! backend, and several `edge-host` processes given the same URL share it,
//! as Spin nodes sharing a Redis key-value store do.
//!
//! With `--manifest`, routes, sources, component variables and each
//! component's `allowed_outbound_hosts` come from the Spin manifest and
//! `--var` sets application variables (as `spin up --variable` does). With
//! `--app`, `--var` sets the component variables of every app directly and
//! `--allow-outbound` (Spin's syntax, e.g. `http://127.0.0.1:*`) the hosts
//! every app may reach (none by default). All apps share one in-memory
//! key-value store.
//! Prints `listening on http://ADDR` on stdout once every app is loaded and
//! the socket is bound. A component is compiled once per build of it: the
//! next starts take it from the compilation cache (`target/wasmtime-cache`,
//! or `EDGE_HOST_CACHE_DIR`; see `host::compile_cache_dir`). Arguments are
//! parsed by hand (no clap) to keep the dependency list short.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use wasm_tests::host::{self, AllowedHosts, App, AppConfig, KvStore};

const USAGE: &str = "usage: edge-host --listen ADDR (--manifest spin.toml | --app ROUTE=WASM ... [--allow-outbound HOST ...]) [--var NAME=VALUE ...] [--redis URL]";

struct Args {
    listen: String,
    manifest: Option<PathBuf>,
    apps: Vec<(String, PathBuf)>,
    variables: HashMap<String, String>,
    allow_outbound: Vec<String>,
    redis: Option<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut listen = None;
    let mut manifest = None;
    let mut apps = Vec::new();
    let mut variables = HashMap::new();
    let mut allow_outbound = Vec::new();
    let mut redis = std::env::var("EDGE_HOST_REDIS")
        .ok()
        .filter(|url| !url.is_empty());
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value),
            "--manifest" => manifest = Some(PathBuf::from(value)),
            "--app" => {
                let (route, path) = split_pair(&flag, &value)?;
                apps.push((route.to_owned(), PathBuf::from(path)));
            }
            "--allow-outbound" => allow_outbound.push(value),
            "--redis" => redis = Some(value),
            "--var" => {
                let (name, val) = split_pair(&flag, &value)?;
                variables.insert(name.to_owned(), val.to_owned());
            }
            _ => bail!("unknown argument {flag:?}\n{USAGE}"),
        }
    }
    let listen = listen.with_context(|| format!("--listen is required\n{USAGE}"))?;
    if apps.is_empty() == manifest.is_none() {
        bail!("give either --manifest or at least one --app\n{USAGE}");
    }
    if manifest.is_some() && !allow_outbound.is_empty() {
        bail!(
            "--allow-outbound goes with --app; with --manifest, edit allowed_outbound_hosts\n{USAGE}"
        );
    }
    Ok(Args {
        listen,
        manifest,
        apps,
        variables,
        allow_outbound,
        redis,
    })
}

/// What loading took, and what the compilation cache gave: `7 components
/// loaded in 0.4 s (compilation cache target/wasmtime-cache: 7 reused, 0
/// compiled)`.
fn loaded(count: usize, took: std::time::Duration) -> String {
    let cache = match (host::compile_cache_counts(), host::compile_cache_dir()) {
        (Some((reused, compiled)), Some(dir)) => format!(
            "compilation cache {}: {reused} reused, {compiled} compiled",
            dir.display()
        ),
        _ => "no compilation cache".to_owned(),
    };
    format!(
        "{count} components loaded in {:.1} s ({cache})",
        took.as_secs_f64()
    )
}

fn split_pair<'a>(flag: &str, value: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    value
        .split_once('=')
        .with_context(|| format!("{flag} expects A=B, got {value:?}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    let kv = match &args.redis {
        Some(url) => KvStore::redis(url).context("--redis")?,
        None => KvStore::new(),
    };
    eprintln!("edge-host: key-value store: {}", kv.describe());
    type Component = (String, PathBuf, HashMap<String, String>, AllowedHosts);
    let components: Vec<Component> = match &args.manifest {
        Some(manifest) => host::manifest::load(manifest, &args.variables)?
            .into_iter()
            .map(|c| (c.route, c.source, c.variables, c.allowed_outbound_hosts))
            .collect(),
        None => {
            let allowed = AllowedHosts::parse(&args.allow_outbound).context("--allow-outbound")?;
            args.apps
                .into_iter()
                .map(|(route, path)| (route, path, args.variables.clone(), allowed.clone()))
                .collect()
        }
    };
    // Each component on a thread of its own: taking one from the
    // compilation cache (decompressing and checking it) is single-threaded.
    let loading = std::time::Instant::now();
    let apps = std::thread::scope(|scope| {
        let loads: Vec<_> = components
            .into_iter()
            .map(|(route, path, variables, allowed)| {
                let config = AppConfig {
                    variables,
                    kv: kv.clone(),
                    route,
                    guest_stderr: None,
                };
                scope.spawn(move || {
                    anyhow::Ok(App::load(&path, config)?.with_allowed_outbound_hosts(allowed))
                })
            })
            .collect();
        loads
            .into_iter()
            .map(|load| {
                load.join()
                    .unwrap_or_else(|_| bail!("loading a component panicked"))
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    eprintln!("edge-host: {}", loaded(apps.len(), loading.elapsed()));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("failed to bind {}", args.listen))?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    host::serve(listener, apps).await
}
