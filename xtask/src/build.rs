//! Builds every function for every platform, reports sizes, serves them
//! locally (`dev`) and runs every check and test (`test`).
//!
//! Artifacts land in `target/edge/`: `spin/NAME.wasm` (a wasi:http 0.3
//! component), `browser/NAME/` (ES module, `.d.ts`, `NAME_bg.wasm`); the
//! Workers build stays where wrangler expects it, `functions/NAME/build/`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{cmd, root, run, target_dir};
use crate::{FUNCTIONS, METRICS_INGEST_DEV_SECRET};

/// Debian's Chromium.
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

/// Always `<repo>/target/edge`, whatever `CARGO_TARGET_DIR` says, because
/// `spin.toml` names its sources there.
fn artifacts() -> PathBuf {
    root().join("target/edge")
}

/// Builds every function for Spin, the browser and Workers. The Spin and
/// browser builds each take one cargo invocation for all functions, so
/// two crates build (and link, LTO on one codegen unit) side by side on
/// two cores; worker-build runs per function, two at a time.
pub(crate) fn all() -> Result<()> {
    let spin_dir = artifacts().join("spin");
    std::fs::create_dir_all(&spin_dir)?;
    for (name, built) in release_builds("wasm32-wasip2", "spin")? {
        std::fs::copy(&built, spin_dir.join(format!("{name}.wasm")))
            .with_context(|| format!("copying {}", built.display()))?;
    }
    let browser_builds = release_builds("wasm32-unknown-unknown", "browser")?;
    two_at_a_time(&browser_builds, |(name, built)| browser(name, built))?;
    // worker-build's cargo step waits for the other's to finish (one
    // target dir), but its wasm-bindgen and wasm-opt steps, about half of
    // its time and on one core, overlap with the other's.
    two_at_a_time(FUNCTIONS, |function| worker(function.name))
}

/// Runs `job` on every item, two at a time (the machine's two cores),
/// stopping at the first error.
fn two_at_a_time<T: Sync>(items: &[T], job: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let worker = || -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        while !failed.load(SeqCst) {
            let Some(item) = items.get(next.fetch_add(1, SeqCst)) else {
                return Ok(());
            };
            if let Err(e) = job(item) {
                failed.store(true, SeqCst);
                return Err(e);
            }
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        let jobs = [scope.spawn(worker), scope.spawn(worker)];
        jobs.into_iter().try_for_each(|job| {
            job.join()
                .unwrap_or_else(|_| bail!("a build thread panicked"))
        })
    })
}

/// Builds every function in release for `target` with its platform
/// `feature` in one cargo invocation, returning each one's `.wasm`.
fn release_builds(target: &str, feature: &str) -> Result<Vec<(&'static str, PathBuf)>> {
    let mut build = cmd("cargo");
    build.args(["build", "--release", "--target", target]);
    for function in FUNCTIONS {
        build
            .args(["-p", function.name, "--features"])
            .arg(format!("{}/{feature}", function.name));
    }
    run(&mut build)?;
    Ok(FUNCTIONS
        .iter()
        .map(|f| (f.name, release_wasm(target, f.name)))
        .collect())
}

/// Where cargo puts function `name`'s release `.wasm` for `target`: named
/// after the crate, `-` made `_`.
fn release_wasm(target: &str, name: &str) -> PathBuf {
    let artifact = name.replace('-', "_");
    target_dir().join(format!("{target}/release/{artifact}.wasm"))
}

/// The browser package from its release build: `target/edge/browser/NAME/`
/// (wasm-bindgen `--target web`, then `wasm-opt -Oz`).
fn browser(name: &str, built: &Path) -> Result<()> {
    let out = artifacts().join("browser").join(name);
    std::fs::create_dir_all(&out)?;
    run(cmd("wasm-bindgen")
        .args(["--target", "web", "--out-name", name, "--out-dir"])
        .arg(&out)
        .arg(built))?;
    let wasm = out.join(format!("{name}_bg.wasm"));
    run(cmd("wasm-opt")
        .args([
            "-Oz",
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
        ])
        .arg(&wasm)
        .arg("-o")
        .arg(&wasm))
}

/// The Workers build through worker-build, pointed at the local
/// wasm-bindgen, wasm-opt and esbuild instead of downloads. wrangler runs
/// this as the environment's build command.
pub(crate) fn worker(name: &str) -> Result<()> {
    if !FUNCTIONS.iter().any(|f| f.name == name) {
        bail!("unknown function {name:?}");
    }
    let bin = root().join("node_modules/.bin");
    run(cmd("worker-build")
        .args([
            "--release",
            &format!("functions/{name}"),
            "--features",
            "workers",
        ])
        .env("WASM_BINDGEN_BIN", "wasm-bindgen")
        .env("WASM_OPT_BIN", bin.join("wasm-opt"))
        .env("ESBUILD_BIN", bin.join("esbuild")))
}

/// wrangler's build command, run on every `wrangler dev` start: the cargo
/// build worker-build would run (so it is found fresh), then worker-build
/// only if its output is older than that build. worker-build itself always
/// runs wasm-bindgen and wasm-opt, 30–80 s on one core.
pub(crate) fn worker_unless_fresh(name: &str) -> Result<()> {
    if !FUNCTIONS.iter().any(|f| f.name == name) {
        bail!("unknown function {name:?}");
    }
    let dir = root().join(format!("functions/{name}"));
    run(cmd("cargo")
        .current_dir(&dir)
        .args([
            "build",
            "--lib",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .args(["--features", "workers"])
        // What worker-build sets for wasm-bindgen's macros; cargo does not
        // track it, so a build without it would be reused wrongly.
        .env("WASM_BINDGEN_USE_JS_SYS", "1"))?;
    let built = release_wasm("wasm32-unknown-unknown", name);
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let outputs = ["build/index.js", "build/index_bg.wasm"].map(|file| modified(&dir.join(file)));
    let fresh = match (modified(&built), outputs) {
        (Some(built), [Some(js), Some(wasm)]) => js >= built && wasm >= built,
        _ => false,
    };
    if fresh {
        eprintln!("xtask: functions/{name}/build is up to date");
        return Ok(());
    }
    worker(name)
}

fn worker_wasm(name: &str) -> Option<PathBuf> {
    let dir = root().join(format!("functions/{name}/build"));
    find_wasm(&dir)
}

fn find_wasm(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_wasm(&path) {
                return Some(found);
            }
        } else if path.extension().is_some_and(|e| e == "wasm") {
            return Some(path);
        }
    }
    None
}

fn gzip_len(bytes: &[u8]) -> Result<usize> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len())
}

/// Prints each function's `.wasm` size, raw and gzip, per platform.
pub(crate) fn sizes() -> Result<()> {
    println!("\n| function | platform | .wasm | raw bytes | gzip bytes |");
    println!("|---|---|---|---:|---:|");
    for function in FUNCTIONS {
        let name = function.name;
        let files = [
            ("workers", worker_wasm(name)),
            ("spin", Some(artifacts().join(format!("spin/{name}.wasm")))),
            (
                "browser",
                Some(artifacts().join(format!("browser/{name}/{name}_bg.wasm"))),
            ),
        ];
        for (platform, path) in files {
            let Some(path) = path.filter(|p| p.exists()) else {
                println!("| {name} | {platform} | (not built) | | |");
                continue;
            };
            let bytes = std::fs::read(&path)?;
            let shown = path
                .strip_prefix(root())
                .unwrap_or(&path)
                .display()
                .to_string();
            println!(
                "| {name} | {platform} | {shown} | {} | {} |",
                bytes.len(),
                gzip_len(&bytes)?
            );
        }
    }
    println!();
    Ok(())
}

/// Children stopped when dropped. They stay in the terminal's process
/// group, so Ctrl-C reaches them (and wrangler's workerd) directly too.
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
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
    }
}

fn spawn(name: &str, command: &mut Command) -> Result<(String, Child)> {
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    Ok((name.to_owned(), child))
}

/// Serves every build on 127.0.0.1 until interrupted: the Spin builds on
/// the wasmtime host (:3000), the Workers build under `wrangler dev`
/// (:8787), the browser builds' demo page (:8080).
pub(crate) fn dev() -> Result<()> {
    run(cmd("cargo").args(["build", "-p", "wasm-tests", "--bin", "edge-host"]))?;
    let mut children = Children(Vec::new());
    let mut host = cmd(&target_dir().join("debug/edge-host").to_string_lossy());
    host.args(["--listen", "127.0.0.1:3000", "--manifest", "spin.toml"]);
    let ingest = std::iter::once(&METRICS_INGEST_DEV_SECRET);
    for (name, value) in FUNCTIONS.iter().flat_map(|f| f.dev_secrets).chain(ingest) {
        host.arg("--var")
            .arg(format!("{}={value}", name.to_ascii_lowercase()));
    }
    children.0.push(spawn("edge-host", &mut host)?);
    for (i, function) in FUNCTIONS.iter().enumerate() {
        let port = 8787 + i;
        let mut wrangler = wrangler_dev(function.name, port);
        for (name, value) in function
            .dev_secrets
            .iter()
            .chain(std::iter::once(&METRICS_INGEST_DEV_SECRET))
        {
            wrangler.arg("--var").arg(format!("{name}:{value}"));
        }
        children.0.push(spawn("wrangler", &mut wrangler)?);
    }
    children.0.push(spawn(
        "browser demo",
        cmd("node")
            .args(["wasm-tests/chromium/serve.mjs", "--port", "8080", "--root"])
            .arg(artifacts().join("browser")),
    )?);

    std::thread::sleep(Duration::from_secs(2));
    println!(
        "\nServing on 127.0.0.1 (Ctrl-C stops everything):\n\
         \x20 Spin builds (wasmtime host):   http://127.0.0.1:3000/counter/...  /rate-limit/...  /auth-check/...  /anonymize/...  /spatial-query/...  /metrics/...\n\
         \x20 Workers builds (wrangler dev): counter http://127.0.0.1:8787/  rate-limit :8788  auth-check :8789  anonymize :8790  spatial-query :8791  metrics :8792\n\
         \x20                                (first start builds; wait for 'Ready')\n\
         \x20 Browser builds (demo page):    http://127.0.0.1:8080/\n\n\
         Try:\n\
         \x20 curl -s http://127.0.0.1:3000/counter/health\n\
         \x20 curl -s -X POST 'http://127.0.0.1:3000/counter/counters/demo?by=5'\n\
         \x20 curl -s -X POST http://127.0.0.1:8787/counters/demo\n\
         \x20 curl -s -X DELETE -H 'authorization: Bearer dev-admin-token' http://127.0.0.1:8787/counters/demo -i\n\
         \x20 for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' -X POST http://127.0.0.1:8788/auth/login; done\n\
         \x20 curl -si -X POST http://127.0.0.1:3000/rate-limit/auth/login | grep -i ratelimit\n\
         \x20 curl -s -H 'authorization: Bearer dev-admin-token' 'http://127.0.0.1:8788/_ratelimit/state?scope=AUTH_LOGIN&ip=127.0.0.1'\n\
         \x20 curl -s -X POST -H 'authorization: Bearer dev-admin-token' http://127.0.0.1:8789/_auth/keys -d '{{\"id\":\"ci\",\"scopes\":[\"api:read\"]}}'\n\
         \x20 curl -s -H 'x-api-key: <the key printed above>' http://127.0.0.1:8789/api/items\n\
         \x20 curl -si http://127.0.0.1:3000/auth-check/api/items | grep -i www-authenticate\n\
         \x20 curl -s http://127.0.0.1:8790/ -H 'content-type: application/json' -d '{{\"user\":{{\"email\":\"ann@example.com\"}},\"note\":\"call +49 30 1234567 from 203.0.113.7\"}}'\n\
         \x20 curl -s http://127.0.0.1:3000/anonymize/ -H 'content-type: text/plain' -d 'card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00'\n\
         \x20 curl -s -X POST -H 'authorization: Bearer dev-admin-token' -H 'content-type: application/geo+json' http://127.0.0.1:8791/assets --data-binary @functions/spatial-query/testdata/sample.geojson\n\
         \x20 curl -s 'http://127.0.0.1:8791/assets/nearest?lon=13.4&lat=52.52&k=2&max_distance_m=50000'\n\
         \x20 curl -s http://127.0.0.1:8787/__scheduled  # flush the counter worker's metrics now (the cron trigger)\n\
         \x20 curl -s http://127.0.0.1:8792/_metrics/snapshot\n\
         \x20 curl -s http://127.0.0.1:8792/metrics\n\
         \x20 open http://127.0.0.1:8792/_metrics/chart (or http://127.0.0.1:3000/metrics/_metrics/chart)\n"
    );
    loop {
        for (name, child) in &mut children.0 {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited ({status}); stopping the others");
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `wrangler dev` for one function's environment, offline and quiet.
pub(crate) fn wrangler_dev(name: &str, port: usize) -> Command {
    let mut command = cmd("wrangler");
    command
        .args(["dev", "--env", name, "--ip", "127.0.0.1", "--port"])
        .arg(port.to_string())
        // The six start at once; each would take 9229 while it looks free.
        .arg("--inspector-port")
        .arg((port + 1000).to_string())
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

/// Every check and test: formatting, clippy on the host and on both wasm
/// targets, docs, the builds and their sizes, then the test suites.
pub(crate) fn test(started: Instant) -> Result<()> {
    let step = |name: &str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        let started = Instant::now();
        let result = f();
        eprintln!(
            "xtask: step {name}: {} in {:.0} s",
            if result.is_ok() { "ok" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        result
    };
    step("fmt", &mut || {
        run(cmd("cargo").args(["fmt", "--all", "--", "--check"]))
    })?;
    step("clippy (host)", &mut || {
        run(cmd("cargo").args(["clippy", "--all-targets", "--", "-D", "warnings"]))
    })?;
    step("clippy (wasm targets)", &mut || {
        // Each function with its platform's glue crate, on that platform's target.
        for (target, feature, glue) in [
            ("wasm32-unknown-unknown", "workers", "edge-workers"),
            ("wasm32-unknown-unknown", "browser", "edge-browser"),
            ("wasm32-wasip2", "spin", "edge-spin"),
        ] {
            let mut clippy = cmd("cargo");
            clippy.args(["clippy", "-p", glue, "--target", target]);
            for function in FUNCTIONS {
                clippy
                    .args(["-p", function.name, "--features"])
                    .arg(format!("{}/{feature}", function.name));
            }
            run(clippy.args(["--", "-D", "warnings"]))?;
        }
        Ok(())
    })?;
    step("docs", &mut || {
        run(cmd("cargo")
            .args(["doc", "--no-deps", "-p", "edge-core"])
            .env("RUSTDOCFLAGS", "-D warnings"))
    })?;
    step("build", &mut || {
        all()?;
        sizes()
    })?;
    let mut tally = Tally::default();
    let result = step("cargo test", &mut || {
        tally.run(
            cmd("cargo")
                .args(["test", "--workspace", "--exclude", "edge-workers"])
                .args(["--exclude", "edge-spin", "--exclude", "edge-browser"])
                .env("EDGE_ARTIFACTS", artifacts()),
        )
    });
    eprintln!(
        "xtask: test finished in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // One closing line for everything: cargo's own last line is a doc-test
    // run that may well say "0 passed".
    println!("xtask: {} passed, {} failed", tally.passed, tally.failed);
    result
}

/// Passed and failed counts read from test output: cargo's `test result:`
/// lines and the conformance suite's `conformance RUNTIME: N passed, M failed`.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    /// Runs `command`, echoing its stdout while counting.
    fn run(&mut self, command: &mut Command) -> Result<()> {
        use std::io::BufRead as _;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("cannot start cargo test")?;
        if let Some(stdout) = child.stdout.take() {
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line?;
                println!("{line}");
                self.read(&line);
            }
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("cargo test failed ({status})");
        }
        Ok(())
    }

    fn read(&mut self, line: &str) {
        let counts = if let Some(rest) = line.strip_prefix("test result: ") {
            rest
        } else if line.starts_with("conformance ") {
            line.split_once(": ").map_or("", |(_, rest)| rest)
        } else {
            return;
        };
        let tokens: Vec<&str> = counts
            .split(|c: char| c == ';' || c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        let number_before = |word: &str| {
            tokens
                .windows(2)
                .find_map(|w| (w[1] == word).then(|| w[0].parse::<usize>().ok())?)
                .unwrap_or(0)
        };
        self.passed += number_before("passed");
        self.failed += number_before("failed");
    }
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn tally_reads_cargo_and_conformance_lines() {
        let mut tally = Tally::default();
        for line in [
            "test result: ok. 23 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.30s",
            "test result: FAILED. 3 passed; 2 failed; 0 ignored",
            "conformance workerd: 22 passed, 1 failed (18.8 s)",
            "running 4 tests",
        ] {
            tally.read(line);
        }
        assert_eq!((tally.passed, tally.failed), (48, 3));
    }
}
