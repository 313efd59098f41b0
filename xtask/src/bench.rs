//! `cargo xtask bench rate-limit`: how many rate-limit decisions per second
//! each algorithm makes natively and in wasm under wasmtime, next to
//! governor (an in-process GCRA), in one markdown table.
//! `cargo xtask bench auth-check`: JWT verifications per second the same
//! way (`bench/auth`), then on workerd, pure Rust against WebCrypto
//! (`bench/webcrypto`); see `auth_check` below.
//! `cargo xtask bench anonymize [--docs N]`: the anonymizer's MB/s
//! natively and in wasm (detection, text, NDJSON) beside Presidio's on the
//! same generated corpus, and both tools' precision/recall per entity type
//! (`bench/anonymize`); see `anonymize` below.
//! `cargo xtask bench spatial-query [--assets N] [--per-type N] [--large N]`:
//! spatial-query latency per query type natively and in wasm beside
//! PostGIS's on the same generated assets and queries, tile load time,
//! ingest rate and the wasm peak linear memory (`bench/spatial`); see
//! `spatial_query` below.
//! `cargo xtask bench metrics`: latency-sketch records per second natively
//! and in wasm beside prometheus-client histograms and hdrhistogram in the
//! same run, each one's quantile error, and the merge cost
//! (`bench/metrics`); see `metrics` below.
//! `cargo xtask bench gateway [--no-wrangler]`: the gateway's pipeline
//! (auth check → rate limit → anonymize) against pass-through, requests/s
//! and latency through `wrangler dev`, µs per request in-process natively
//! and in wasm (`bench/gateway`); see `gateway` below.
//! `cargo xtask bench npm [--no-build] [--rounds N]`: the npm package's
//! timings (anonymize 1 MiB of NDJSON, index 100,000 assets, radius
//! queries) in Node 22, Deno and headless Chromium beside native, and each
//! module's size (`bench/npm`, `xtask/src/npm_bench.rs`).
//!
//! It exists so that the native/wasm comparison is one command that builds
//! what it measures: the `rate-limit-bench` program (`bench/decisions`)
//! natively and for `wasm32-wasip2`, and `bench-runner` (`bench/runner`),
//! which runs the wasm build on the workspace's wasmtime. The program times
//! its loops itself and prints JSON (kept in `target/bench-results/`); it
//! also sets the reports side by side, checking that every runtime admitted
//! exactly the same decisions.
//!
//! Builds: native and wasm in the `bench-o3` profile (release settings at
//! opt-level 3, so the comparison is at equal optimization), the wasm once
//! more in `release` (opt-level z, what the functions ship with), and the
//! runner optimized ([`wasm_runner`]), as the hosts that run the functions
//! are: a guest's `memory.copy` and `memory.fill` are calls into wasmtime,
//! which an unoptimized wasmtime with its debug assertions made several
//! percent of a guest's time.
//!
//! Arguments after `rate-limit` go to `rate-limit-bench run` on every
//! runtime, e.g. `--rounds 3 --scale 0.2 --only gcra,governor_direct`.
//! For statistics per algorithm there is also `cargo bench -p rate-limit`
//! (criterion, native only, the same loops).

use bench_support::thousands;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::util::{cmd, run as run_command, target_dir};

const USAGE: &str = "usage: cargo xtask bench rate-limit [rate-limit-bench run options: \
                     --rounds N --scale F --only ID,ID]\n       \
                     cargo xtask bench auth-check [--no-workerd] [auth-check-bench run options: \
                     --rounds N --seconds F --only ID,ID]\n       \
                     cargo xtask bench anonymize [--docs N] [anonymize-bench run options: \
                     --rounds N --seconds F --only detect,text,ndjson]\n       \
                     cargo xtask bench spatial-query [--assets N (1,000,000)] \
                     [--per-type N (200)] [--large N]\n       \
                     cargo xtask bench metrics [metrics-bench run options: \
                     --rounds N --seconds F --only ID,ID]\n       \
                     cargo xtask bench gateway [--no-wrangler] [--clients N (16)] \
                     [--turn-seconds F (3)] [--turns N (5)] [gateway-bench run options: \
                     --rounds N --seconds F --only ID,ID]\n       \
                     cargo xtask bench npm [--no-build] [--rounds N (15)] \
                     [--only native,node,deno,chromium]";

/// The bench program's package, binary and wasm name.
const PROGRAM: &str = "rate-limit-bench";
/// The optimized profile of the side-by-side comparison.
const PROFILE: &str = "bench-o3";

/// Runs `cargo xtask bench ARGS`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("rate-limit") => rate_limit(&args[1..]),
        Some("auth-check") => auth_check(&args[1..]),
        Some("anonymize") => anonymize(&args[1..]),
        Some("spatial-query") => spatial_query(&args[1..]),
        Some("metrics") => metrics(&args[1..]),
        Some("gateway") => gateway(&args[1..]),
        Some("npm") => crate::npm_bench::run(&args[1..]),
        _ => bail!(USAGE),
    }
}

/// One runtime to measure: its label in the table, a short name for the
/// ratio column, and how to start the program on it.
struct Runtime {
    file: &'static str,
    label: &'static str,
    short: &'static str,
    command: Command,
}

fn rate_limit(options: &[String]) -> Result<()> {
    build()?;
    let targets = target_dir();
    let native = targets.join(format!("{PROFILE}/{PROGRAM}"));
    let native = || cmd(&native.to_string_lossy());
    let runner = wasm_runner()?;
    let wasm_run = |profile: &str| {
        let mut command = cmd(&runner.to_string_lossy());
        command.arg(targets.join(format!("wasm32-wasip2/{profile}/{PROGRAM}.wasm")));
        command
    };
    let runtimes = [
        Runtime {
            file: "native",
            label: "native",
            short: "native",
            command: native(),
        },
        Runtime {
            file: "wasm",
            label: "wasm (wasmtime)",
            short: "wasm",
            command: wasm_run(PROFILE),
        },
        Runtime {
            file: "wasm-opt-z",
            label: "wasm opt-level z (wasmtime)",
            short: "wasm z",
            command: wasm_run("release"),
        },
    ];
    let results = targets.join("bench-results/rate-limit");
    std::fs::create_dir_all(&results)?;
    let mut reports = Vec::new();
    for mut runtime in runtimes {
        let report = results.join(format!("{}.json", runtime.file));
        runtime
            .command
            .args(["run", "--label", runtime.label, "--short", runtime.short])
            .args(options);
        capture(&mut runtime.command, &report)?;
        reports.push(report);
    }
    let table = stdout_of(native().arg("table").args(&reports))?;
    println!("\n## Rate-limit decisions per second\n");
    print!("{table}");
    println!(
        "\nA decision: decode the key's stored bytes, decide, encode (gcra in memory: decide \
         only). 100 permits/min, burst 100, one permit per decision, each key's clock 540 ms \
         on per decision. governor 0.10 on its FakeRelativeClock, advanced as much. Median of \
         the timed rounds; std::time::Instant inside the program on every runtime; wasmtime \
         48.0.8, Cranelift opt-level speed. Reports: {}",
        results.display()
    );
    if let Some(table) = wrangler_dev_table()? {
        println!("\n## Requests per second through wrangler dev\n");
        print!("{table}");
    }
    Ok(())
}

/// Builds the program natively and for wasm (both `bench-o3`; the wasm
/// also `release`).
fn build() -> Result<()> {
    run_command(cmd("cargo").args(["build", "-p", PROGRAM, "--profile", PROFILE]))?;
    for profile in [PROFILE, "release"] {
        run_command(cmd("cargo").args([
            "build",
            "-p",
            PROGRAM,
            "--target",
            "wasm32-wasip2",
            "--profile",
            profile,
        ]))?;
    }
    Ok(())
}

/// The second table: requests/s through `wrangler dev` with limiting off
/// (pass-through), strict and leased, from `wasm-tests`' `edge-load`.
fn wrangler_dev_table() -> Result<Option<String>> {
    run_command(cmd("cargo").args(["build", "-p", "wasm-tests", "--bin", "edge-load"]))?;
    let load = target_dir().join("debug/edge-load");
    Ok(Some(stdout_of(
        cmd(&load.to_string_lossy()).arg("rate-limit"),
    )?))
}

/// Runs `command` (its stderr shown) and writes its stdout to `to`.
pub(crate) fn capture(command: &mut Command, to: &Path) -> Result<()> {
    let stdout = stdout_of(command)?;
    std::fs::write(to, stdout).with_context(|| format!("writing {}", to.display()))
}

/// Runs `command` (its stderr shown) and returns its stdout.
pub(crate) fn stdout_of(command: &mut Command) -> Result<String> {
    let program = PathBuf::from(command.get_program());
    let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy()).collect();
    eprintln!("xtask: $ {} {}", program.display(), args.join(" "));
    let out = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {}", program.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", program.display(), out.status);
    }
    String::from_utf8(out.stdout)
        .with_context(|| format!("{} printed non-UTF-8", program.display()))
}

// ---------------------------------------------------------------------------
// `cargo xtask bench auth-check`
//
// The `auth-check-bench` program (`bench/auth`) is built five times, all in
// `bench-o3`: natively and for `wasm32-wasip2`, each with auth-check (whose
// `rsa` uses num-bigint-dig's 64-bit digits natively, 32-bit ones in wasm)
// and without it (the other digit size, only the direct RSA rows); the wasm
// one without auth-check once more with crypto-bigint on 32-bit limbs
// (`--cfg cpubits="32"`; by default it uses 64-bit limbs on wasm32 too).
// Each build is copied aside before the next overwrites it, then all five
// run and their reports make the first two tables. The third comes from the bench worker
// (`bench/webcrypto`, worker-build `--release`, i.e. opt-level z as the
// functions ship) under `wrangler dev`, timed from outside: workerd's clock
// does not advance while a request computes.

/// The auth bench program's package and binary.
const AUTH_PROGRAM: &str = "auth-check-bench";
/// The bench worker's directory (its crate, `wrangler.toml` and build).
const AUTH_WORKER: &str = "bench/webcrypto";

fn auth_check(options: &[String]) -> Result<()> {
    let workerd = !options.iter().any(|o| o == "--no-workerd");
    let options: Vec<&String> = options.iter().filter(|o| *o != "--no-workerd").collect();
    let targets = target_dir();
    let results = targets.join("bench-results/auth-check");
    let bin = results.join("bin");
    std::fs::create_dir_all(&bin)?;
    let runner = wasm_runner()?;
    // (file, runtime, without auth-check, crypto-bigint on 32-bit limbs)
    let builds = [
        ("native", "native", false, false),
        ("wasm", "wasm", false, false),
        ("native-u32", "native", true, false),
        ("wasm-u64", "wasm", true, false),
        ("wasm-limbs32", "wasm", true, true),
    ];
    for (file, runtime, bare, limbs32) in builds {
        let mut build = cmd("cargo");
        build.args(["build", "-p", AUTH_PROGRAM, "--profile", PROFILE]);
        if runtime == "wasm" {
            build.args(["--target", "wasm32-wasip2"]);
        }
        if bare {
            build.arg("--no-default-features");
        }
        if file == "wasm-u64" {
            build.args(["--features", "u64-digits"]);
        }
        // RUSTFLAGS change every crate's build: a target directory of its own.
        let built_in = if limbs32 {
            let dir = targets.join("bench-cpubits32");
            build
                .env("RUSTFLAGS", "--cfg cpubits=\"32\"")
                .env("CARGO_TARGET_DIR", &dir);
            dir
        } else {
            targets.clone()
        };
        run_command(&mut build)?;
        let built = if runtime == "wasm" {
            built_in.join(format!("wasm32-wasip2/{PROFILE}/{AUTH_PROGRAM}.wasm"))
        } else {
            built_in.join(format!("{PROFILE}/{AUTH_PROGRAM}"))
        };
        std::fs::copy(&built, bin.join(file))
            .with_context(|| format!("copying {}", built.display()))?;
    }
    let mut reports = Vec::new();
    for (file, runtime, _, _) in builds {
        let program = bin.join(file);
        let mut command = if runtime == "wasm" {
            let mut c = cmd(&runner.to_string_lossy());
            c.arg(&program);
            c
        } else {
            cmd(&program.to_string_lossy())
        };
        command.args(["run", "--runtime", runtime]).args(&options);
        let report = results.join(format!("{file}.json"));
        capture(&mut command, &report)?;
        reports.push(report);
    }
    let tables = stdout_of(
        cmd(&bin.join("native").to_string_lossy())
            .arg("table")
            .args(&reports),
    )?;
    let (verifications, alternatives) = tables.split_once("\n\n").unwrap_or((&tables, ""));
    println!("\n## JWT verifications per second\n");
    println!("{verifications}");
    println!(
        "\nauth-check: decode (8 KiB limit), signature, claims (iss, aud, exp, nbf) of a \
         ~330-byte token; signature only: `Key::verify` on the parsed key. RSA 2048-bit, \
         e = 65537. jsonwebtoken 9.3 (ring) decodes and checks the same claims. Median of \
         the timed rounds; std::time::Instant inside the program; wasm: wasm32-wasip2 under \
         wasmtime 48.0.8 (Cranelift, opt-level speed); both bench-o3 (opt-level 3, LTO)."
    );
    println!("\n## RS256/PS256 signature checks per second by RSA crate\n");
    print!("{alternatives}");
    println!(
        "\nThe same signatures through each crate directly. rsa 0.9's digit size is a \
         cargo feature of num-bigint-dig (`u64_digit`, which auth-check turns on natively \
         only): the other digit size comes from a build without auth-check. crypto-bigint (rsa 0.10) uses 64-bit \
         limbs on wasm32 unless built with `--cfg cpubits=\"32\"`. wasm32 has no \
         64×64→128 multiply. Reports: {}",
        results.display()
    );
    if workerd {
        println!("\n## Signature checks per second on workerd (wrangler dev)\n");
        print!("{}", workerd_table()?);
    }
    Ok(())
}

/// Algorithms timed on workerd (HS256 has no WebCrypto row: it is cheap
/// either way).
const WORKERD_ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];
/// The bench worker's backends, in column order.
const WORKERD_BACKENDS: [&str; 3] = ["rust", "webcrypto", "webcrypto-import"];
/// Timed rounds per cell (each: one request of N checks, one of none).
const WORKERD_ROUNDS: usize = 5;
/// About how long a request of N checks should compute.
const WORKERD_TARGET: std::time::Duration = std::time::Duration::from_millis(700);

/// Builds and serves the bench worker, times each backend and algorithm,
/// and returns the markdown table.
fn workerd_table() -> Result<String> {
    let bin = crate::util::root().join("node_modules/.bin");
    run_command(
        cmd("worker-build")
            .args(["--release", AUTH_WORKER])
            .env("WASM_BINDGEN_BIN", "wasm-bindgen")
            .env("WASM_OPT_BIN", bin.join("wasm-opt"))
            .env("ESBUILD_BIN", bin.join("esbuild")),
    )?;
    let dev = WorkerDev::start()?;
    // n per cell: probed with 10, 100, … checks until a request computes
    // for 100 ms, then sized so that each takes about WORKERD_TARGET.
    let mut cells = Vec::new();
    for alg in WORKERD_ALGS {
        for backend in WORKERD_BACKENDS {
            let mut probe = 10u32;
            let each = loop {
                let spent = dev.time(backend, alg, probe)? - dev.time(backend, alg, 0)?;
                if spent > 0.1 || probe >= 10_000 {
                    break spent.max(1e-6) / f64::from(probe);
                }
                probe *= 10;
            };
            let n = ((WORKERD_TARGET.as_secs_f64() / each) as u32).clamp(20, 50_000);
            cells.push((alg, backend, n, Vec::new()));
        }
    }
    // Rounds in turns over every cell, so drift hits all alike.
    for _ in 0..WORKERD_ROUNDS {
        for (alg, backend, n, rates) in &mut cells {
            let with = dev.time(backend, alg, *n)?;
            let without = dev.time(backend, alg, 0)?;
            rates.push(f64::from(*n) / (with - without).max(1e-6));
        }
    }
    for (_, _, _, rates) in &mut cells {
        rates.sort_by(f64::total_cmp);
    }
    let median = |alg: &str, backend: &str| {
        cells
            .iter()
            .find(|c| c.0 == alg && c.1 == backend)
            .and_then(|(_, _, _, rates)| rates.get(rates.len() / 2).copied())
            .unwrap_or(0.0)
    };
    let mut out = String::from(
        "| algorithm | pure Rust (auth-check, wasm) | WebCrypto, key cached | \
         WebCrypto, key imported per check | WebCrypto cached/Rust |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for alg in WORKERD_ALGS {
        let rust = median(alg, "rust");
        let cached = median(alg, "webcrypto");
        let import = median(alg, "webcrypto-import");
        out.push_str(&format!(
            "| {alg} | {} | {} | {} | {:.1}× |\n",
            thousands(rust),
            thousands(cached),
            thousands(import),
            cached / rust.max(1e-9)
        ));
    }
    let ns: Vec<String> = cells
        .iter()
        .map(|(alg, backend, n, _)| format!("{alg}/{backend} {n}"))
        .collect();
    out.push_str(&format!(
        "\nChecks per second of the fixture signatures inside one request, from outside: \
         (latency of a request making N checks − latency of one making none), median of \
         {WORKERD_ROUNDS} rounds taken in turns. The worker is built by worker-build \
         --release (opt-level z, as the functions ship); WebCrypto calls are awaited one \
         after the other. N: {}.\n",
        ns.join(", ")
    ));
    Ok(out)
}

/// The bench worker under `wrangler dev` on a free port, its process group
/// stopped when dropped.
struct WorkerDev {
    child: std::process::Child,
    port: u16,
    scratch: PathBuf,
}

impl WorkerDev {
    /// Starts `wrangler dev --config bench/webcrypto/wrangler.toml` (the
    /// worker is already built) and waits for `/health`.
    fn start() -> Result<WorkerDev> {
        use std::os::unix::process::CommandExt as _;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let scratch = std::env::temp_dir().join(format!(
            "edge-webcrypto-bench-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&scratch)?;
        let config = format!("{AUTH_WORKER}/wrangler.toml");
        let child = cmd("wrangler")
            .args(["dev", "--config", &config, "--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--show-interactive-dev-session=false", "--persist-to"])
            .arg(scratch.join("state"))
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_LOG_PATH", &scratch)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(scratch.join("wrangler.log"))?)
            .stderr(std::fs::File::create(scratch.join("wrangler.err"))?)
            .process_group(0)
            .spawn()
            .context("starting wrangler dev")?;
        let mut dev = WorkerDev {
            child,
            port,
            scratch,
        };
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = dev.child.try_wait()? {
                bail!("wrangler dev exited ({status}):\n{}", dev.log_tail());
            }
            if started.elapsed() > std::time::Duration::from_secs(120) {
                bail!("wrangler dev not ready after 120 s:\n{}", dev.log_tail());
            }
            if dev.get("/health").is_ok_and(|(status, _)| status == 200) {
                return Ok(dev);
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }

    /// Seconds one `/verify` of `n` checks takes, failing unless it
    /// answers 200.
    fn time(&self, backend: &str, alg: &str, n: u32) -> Result<f64> {
        let path = format!("/verify?backend={backend}&alg={alg}&n={n}");
        let started = std::time::Instant::now();
        let (status, body) = self.get(&path)?;
        let elapsed = started.elapsed().as_secs_f64();
        if status != 200 {
            bail!("GET {path}: {status} {body}\n{}", self.log_tail());
        }
        Ok(elapsed)
    }

    /// A plain HTTP/1.1 GET on a fresh connection: status and body.
    fn get(&self, path: &str) -> Result<(u16, String)> {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(120)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("GET {path}: not HTTP: {answer:.80}"))?;
        let body = answer
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        Ok((status, body))
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        for name in ["wrangler.log", "wrangler.err"] {
            text.push_str(&std::fs::read_to_string(self.scratch.join(name)).unwrap_or_default());
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for WorkerDev {
    fn drop(&mut self) {
        // TERM first: wrangler stops its workerd on TERM, not on KILL.
        let group = format!("-{}", self.child.id());
        for signal in ["TERM", "KILL"] {
            let _ = Command::new("kill")
                .args(["-s", signal, "--", &group])
                .stderr(Stdio::null())
                .status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

// ---------------------------------------------------------------------------
// `cargo xtask bench anonymize`
//
// The corpus comes from `functions/anonymize/testdata/corpus.py` (Faker, in
// the tests' venv `target/pyenv`) with a fixed seed, written to
// `target/bench-results/anonymize/corpus.jsonl` only when it changed (the
// bench program embeds it: the wasm guest gets no files, and a rewrite would
// rebuild both). `anonymize-bench` (`bench/anonymize`) is built natively and
// for `wasm32-wasip2` in `bench-o3` with `ANONYMIZE_BENCH_CORPUS` naming the
// file, and run on both; Presidio, from `bench/anonymize/requirements-presidio.txt`
// in a venv of its own (`target/presidio-venv`), is timed and scored on the
// same file by `functions/anonymize/testdata/presidio_eval.py`. The native
// program then sets the three reports side by side.

/// The anonymize bench program's package and binary.
const ANONYMIZE_PROGRAM: &str = "anonymize-bench";
/// The corpus generator's seed.
const ANONYMIZE_SEED: u32 = 7;
/// Documents in the corpus unless `--docs` says otherwise (half text, half
/// JSON records).
const ANONYMIZE_DOCS: u32 = 2000;

fn anonymize(options: &[String]) -> Result<()> {
    let mut docs = ANONYMIZE_DOCS;
    let mut passed = Vec::new();
    let mut options = options.iter();
    while let Some(option) = options.next() {
        if option == "--docs" {
            let value = options.next().context("--docs needs a value")?;
            docs = value.parse().with_context(|| format!("--docs {value:?}"))?;
        } else {
            passed.push(option.clone());
        }
    }
    let root = crate::util::root();
    let targets = target_dir();
    let results = targets.join("bench-results/anonymize");
    std::fs::create_dir_all(&results)?;

    // The corpus, rewritten only when it changed.
    crate::install::python()?;
    let testdata = root.join("functions/anonymize/testdata");
    let corpus = results.join("corpus.jsonl");
    let fresh = results.join("corpus.jsonl.new");
    run_command(
        cmd(&crate::install::pyenv().join("bin/python").to_string_lossy())
            .arg(testdata.join("corpus.py"))
            .args([
                "--seed",
                &ANONYMIZE_SEED.to_string(),
                "--docs",
                &docs.to_string(),
            ])
            .arg("--out")
            .arg(&fresh),
    )?;
    if std::fs::read(&corpus).ok() == Some(std::fs::read(&fresh)?) {
        std::fs::remove_file(&fresh)?;
    } else {
        std::fs::rename(&fresh, &corpus)?;
    }

    // The program, natively and in wasm, with the corpus built in.
    for wasm in [false, true] {
        let mut build = cmd("cargo");
        build.args(["build", "-p", ANONYMIZE_PROGRAM, "--profile", PROFILE]);
        if wasm {
            build.args(["--target", "wasm32-wasip2"]);
        }
        run_command(build.env("ANONYMIZE_BENCH_CORPUS", &corpus))?;
    }
    let native = targets.join(format!("{PROFILE}/{ANONYMIZE_PROGRAM}"));
    let native = || cmd(&native.to_string_lossy());
    let mut wasm = cmd(&wasm_runner()?.to_string_lossy());
    wasm.arg(targets.join(format!("wasm32-wasip2/{PROFILE}/{ANONYMIZE_PROGRAM}.wasm")));
    let mut reports = Vec::new();
    for (runtime, mut command) in [("native", native()), ("wasm", wasm)] {
        let report = results.join(format!("{runtime}.json"));
        command.args(["run", "--runtime", runtime]).args(&passed);
        capture(&mut command, &report)?;
        reports.push(report);
    }

    // Presidio on the same corpus.
    let venv = targets.join("presidio-venv");
    crate::install::venv(
        &venv,
        &root.join("bench/anonymize/requirements-presidio.txt"),
    )?;
    let presidio = results.join("presidio.json");
    capture(
        cmd(&venv.join("bin/python").to_string_lossy())
            .arg(testdata.join("presidio_eval.py"))
            .arg(&corpus)
            .args(["--regions", "corpus"]),
        &presidio,
    )?;

    let tables = stdout_of(native().arg("table").arg(&presidio).args(&reports))?;
    let (speed, accuracy) = tables.split_once("\n\n").unwrap_or((&tables, ""));
    println!("\n## Anonymizer throughput (MB/s)\n");
    println!("{speed}");
    println!(
        "\nCorpus: corpus.py --seed {ANONYMIZE_SEED} --docs {docs} (half text documents, half \
         JSON records; Faker, 10 locales, distractors around the entities). detect: \
         `Detector::find` (built-in detectors) on the text documents and every JSON string \
         value, the strings Presidio analyzes; anonymize text: each text document through a \
         text body of its own; anonymize NDJSON: the records as one NDJSON body in 64 KiB \
         chunks (field rules included); both with the default policy. Presidio: \
         AnalyzerEngine.analyze (no_op NLP engine, predefined pattern recognizers, asked for \
         EMAIL_ADDRESS, IP_ADDRESS, PHONE_NUMBER with the corpus's 10 countries as regions, \
         CREDIT_CARD, IBAN_CODE), and analyze + AnonymizerEngine.anonymize (replace), on the \
         same strings, one pass. True values left: corpus spans whose exact text is still in \
         the anonymized document or record (the detectors' misses). MB = 10⁶ bytes. Ours: median of the timed rounds, \
         std::time::Instant inside the program; wasm32-wasip2 under wasmtime 48.0.8 \
         (Cranelift, opt-level speed; bench-runner optimized, as the hosts are); both \
         bench-o3 (opt-level 3, LTO)."
    );
    println!("\n## Precision and recall per entity type\n");
    print!("{accuracy}");
    println!(
        "\nOne rule for both tools (presidio_eval.py's): a finding counts when its (start, \
         end, entity) equals a true span of the same string (a text document or a JSON \
         string value) exactly, UTF-8 byte offsets; precision is 1 without findings. Ours: \
         `Anonymizer::analyze` with the default policy, natively (the wasm build found the \
         same spans). Presidio has no recognizer for jwt and api_key. Reports: {}",
        results.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// `cargo xtask bench spatial-query`
//
// Assets (`functions/spatial-query/testdata/assets.py`, seed 7) and queries
// (`queries.py`, seed 23, placed from those assets) are written to
// `target/bench-results/spatial-query/` once per count (the file names
// carry the counts). Every run then builds the tiles afresh with the release
// `spatial-tiles build` (its `--json-summary` is the native CLI's ingest
// rate and the tile bytes), runs `spatial-bench` (`bench/spatial`, bench-o3)
// natively and for `wasm32-wasip2` under the optimized `bench-runner` with the results
// directory preopened read-only at `/data` (`--stats` gives the guest's
// peak linear memory, which it cannot see): the queries in one invocation,
// the ingest of the first 200,000 assets in another, so each has its own
// peak. `postgis.py bench --repeat 3` times PostGIS on the same assets and
// queries. With `--large N` the wasm query run is repeated on N assets
// (a superset: assets.py writes a smaller count as a prefix of a larger
// one) with the same queries. The native program sets it all in one table,
// also saved as `table.md`.

/// The spatial bench program's package and binary.
const SPATIAL_PROGRAM: &str = "spatial-bench";
/// The asset generator's seed.
const SPATIAL_ASSET_SEED: u32 = 7;
/// The query generator's seed.
const SPATIAL_QUERY_SEED: u32 = 23;
/// Assets unless `--assets` says otherwise.
const SPATIAL_ASSETS: u64 = 1_000_000;
/// Queries per type unless `--per-type` says otherwise.
const SPATIAL_PER_TYPE: u64 = 200;
/// Assets the ingest measurement reads (at most the dataset's).
const SPATIAL_INGEST: u64 = 200_000;
/// The dataset name the tiles are built under (the policy's).
const SPATIAL_DATASET: &str = "assets";

fn spatial_query(options: &[String]) -> Result<()> {
    let started = std::time::Instant::now();
    let (mut assets, mut per_type, mut large) = (SPATIAL_ASSETS, SPATIAL_PER_TYPE, None);
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let mut value = || -> Result<u64> {
            let v = options
                .next()
                .with_context(|| format!("{option} needs a value\n{USAGE}"))?;
            v.replace([',', '_'], "")
                .parse()
                .with_context(|| format!("{option} {v:?}"))
        };
        match option.as_str() {
            "--assets" => assets = value()?,
            "--per-type" => per_type = value()?,
            "--large" => large = Some(value()?),
            _ => bail!("unknown option {option}\n{USAGE}"),
        }
    }
    if assets == 0 || per_type == 0 || large == Some(0) {
        bail!("counts must be positive\n{USAGE}");
    }
    let root = crate::util::root();
    let targets = target_dir();
    let results = targets.join("bench-results/spatial-query");
    std::fs::create_dir_all(&results)?;
    let testdata = root.join("functions/spatial-query/testdata");
    crate::install::python()?;
    let python = crate::install::pyenv().join("bin/python");
    let python = || cmd(&python.to_string_lossy());

    // Inputs, generated once per count.
    let asset_file = |n: u64| results.join(format!("assets-{n}.ndjson"));
    let generate = |file: &Path, args: &[String]| -> Result<()> {
        if file.exists() {
            eprintln!("xtask: reusing {}", file.display());
            return Ok(());
        }
        let partial = file.with_extension("partial");
        let mut command = python();
        command.args(args).arg("--out").arg(&partial);
        run_command(&mut command)?;
        std::fs::rename(&partial, file)?;
        Ok(())
    };
    let make_assets = |n: u64| {
        generate(
            &asset_file(n),
            &[
                testdata.join("assets.py").to_string_lossy().into_owned(),
                "--seed".into(),
                SPATIAL_ASSET_SEED.to_string(),
                "--count".into(),
                n.to_string(),
            ],
        )
    };
    make_assets(assets)?;
    let queries = results.join(format!("queries-{assets}-{per_type}.jsonl"));
    generate(
        &queries,
        &[
            testdata.join("queries.py").to_string_lossy().into_owned(),
            "--seed".into(),
            SPATIAL_QUERY_SEED.to_string(),
            "--assets".into(),
            asset_file(assets).to_string_lossy().into_owned(),
            "--per-type".into(),
            per_type.to_string(),
        ],
    )?;
    if let Some(n) = large {
        make_assets(n)?;
    }

    // The tile builder, the program natively and in wasm, the runner.
    run_command(cmd("cargo").args([
        "build",
        "--release",
        "-p",
        "spatial-query",
        "--bin",
        "spatial-tiles",
    ]))?;
    for wasm in [false, true] {
        let mut build = cmd("cargo");
        build.args(["build", "-p", SPATIAL_PROGRAM, "--profile", PROFILE]);
        if wasm {
            build.args(["--target", "wasm32-wasip2"]);
        }
        run_command(&mut build)?;
    }
    // (The runner optimized matters most here: the guest reads every tile
    // through WASI, and a debug wasmtime copies a `list<u8>` into the guest
    // byte by byte, some 10 ns a byte, which would be most of a cold query.)
    let runner = wasm_runner()?;
    let tiles_cli = targets.join("release/spatial-tiles");
    let native = targets.join(format!("{PROFILE}/{SPATIAL_PROGRAM}"));
    let native = || cmd(&native.to_string_lossy());
    let wasm_program = targets.join(format!("wasm32-wasip2/{PROFILE}/{SPATIAL_PROGRAM}.wasm"));
    // The wasm program with the results directory at /data, its memory
    // figures written to `stats`.
    let wasm = |stats: &Path| {
        let mut command = cmd(&runner.to_string_lossy());
        command
            .arg("--dir")
            .arg(format!("{}::/data", results.display()))
            .arg("--stats")
            .arg(stats)
            .arg(&wasm_program);
        command
    };
    let guest = |file: &Path| {
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        format!("/data/{name}")
    };

    // Tiles, built afresh: the build is the CLI's ingest measurement.
    let build_tiles = |n: u64| -> Result<(PathBuf, PathBuf)> {
        let dir = results.join(format!("tiles-{n}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let summary = results.join(format!("build-{n}.json"));
        run_command(
            cmd(&tiles_cli.to_string_lossy())
                .arg("build")
                .arg("--input")
                .arg(asset_file(n))
                .arg("--out")
                .arg(&dir)
                .args([
                    "--dataset",
                    SPATIAL_DATASET,
                    "--run",
                    "1",
                    "--capacity",
                    "4096",
                ])
                .arg("--json-summary")
                .arg(&summary),
        )?;
        Ok((dir, summary))
    };
    let (tiles, build_summary) = build_tiles(assets)?;

    // Queries, then ingest, natively and in wasm.
    let report = |name: &str| results.join(format!("{name}.json"));
    let query_args = |store: &str, queries: &str, runtime: &str| -> Vec<String> {
        [
            "queries",
            "--store",
            store,
            "--queries",
            queries,
            "--runtime",
            runtime,
        ]
        .map(String::from)
        .into()
    };
    capture(
        native().args(query_args(
            &tiles.to_string_lossy(),
            &queries.to_string_lossy(),
            "native",
        )),
        &report("native"),
    )?;
    capture(
        wasm(&report("wasm-stats")).args(query_args(&guest(&tiles), &guest(&queries), "wasm")),
        &report("wasm"),
    )?;
    let ingest_count = SPATIAL_INGEST.min(assets).to_string();
    let ingest_args = |input: &str, runtime: &str| -> Vec<String> {
        [
            "ingest",
            "--input",
            input,
            "--count",
            ingest_count.as_str(),
            "--runtime",
            runtime,
        ]
        .map(String::from)
        .into()
    };
    capture(
        native().args(ingest_args(&asset_file(assets).to_string_lossy(), "native")),
        &report("native-ingest"),
    )?;
    capture(
        wasm(&report("wasm-ingest-stats")).args(ingest_args(&guest(&asset_file(assets)), "wasm")),
        &report("wasm-ingest"),
    )?;

    // PostGIS on the same assets and queries.
    run_command(
        python()
            .arg(testdata.join("postgis.py"))
            .arg("bench")
            .arg("--assets")
            .arg(asset_file(assets))
            .arg("--queries")
            .arg(&queries)
            .arg("--out")
            .arg(report("postgis"))
            .args(["--repeat", "3"]),
    )?;

    // The wasm query run on the larger dataset, the same queries.
    let mut large_args: Vec<PathBuf> = Vec::new();
    if let Some(n) = large {
        let (large_tiles, large_summary) = build_tiles(n)?;
        let stats = report(&format!("wasm-{n}-stats"));
        capture(
            wasm(&stats).args(query_args(&guest(&large_tiles), &guest(&queries), "wasm")),
            &report(&format!("wasm-{n}")),
        )?;
        large_args = vec![report(&format!("wasm-{n}")), stats, large_summary];
    }

    let mut table = native();
    table
        .args(["table", "--per-type", &per_type.to_string()])
        .arg("--native")
        .arg(report("native"))
        .arg("--wasm")
        .arg(report("wasm"))
        .arg("--wasm-stats")
        .arg(report("wasm-stats"))
        .arg("--native-ingest")
        .arg(report("native-ingest"))
        .arg("--wasm-ingest")
        .arg(report("wasm-ingest"))
        .arg("--wasm-ingest-stats")
        .arg(report("wasm-ingest-stats"))
        .arg("--postgis")
        .arg(report("postgis"))
        .arg("--build")
        .arg(&build_summary);
    if let [wasm_large, stats, summary] = large_args.as_slice() {
        table
            .arg("--large-wasm")
            .arg(wasm_large)
            .arg("--large-stats")
            .arg(stats)
            .arg("--large-build")
            .arg(summary);
    }
    let mut text = stdout_of(&mut table)?;
    text.push_str(&format!(
        "\nAssets: assets.py --seed {SPATIAL_ASSET_SEED} --count {assets}{}; queries: queries.py \
         --seed {SPATIAL_QUERY_SEED} --per-type {per_type} on the {assets} assets. Reports: {}\n",
        large.map_or(String::new(), |n| format!(" (and --count {n})")),
        results.display()
    ));
    println!();
    print!("{text}");
    std::fs::write(results.join("table.md"), &text)?;
    eprintln!(
        "xtask: bench spatial-query took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// `cargo xtask bench metrics`
//
// `metrics-bench` (`bench/metrics`) is built natively and for
// `wasm32-wasip2` in `bench-o3` and run on both, the wasm under the
// optimized `bench-runner` ([`wasm_runner`]).
// Each run prints a JSON report, kept in `target/bench-results/metrics/`;
// the native program then sets them side by side (also saved as
// `table.md`). Arguments after `metrics` go to `metrics-bench run` on both.

/// The metrics bench program's package and binary.
const METRICS_PROGRAM: &str = "metrics-bench";

fn metrics(options: &[String]) -> Result<()> {
    let targets = target_dir();
    let results = targets.join("bench-results/metrics");
    std::fs::create_dir_all(&results)?;
    let (native, wasm) = native_and_wasm(METRICS_PROGRAM)?;
    let native = || cmd(&native.to_string_lossy());
    let wasm = under_runner(&wasm, &[])?;
    let mut reports = Vec::new();
    for (runtime, mut command) in [("native", native()), ("wasm", wasm)] {
        let report = results.join(format!("{runtime}.json"));
        command.args(["run", "--runtime", runtime]).args(options);
        capture(&mut command, &report)?;
        reports.push(report);
    }
    let mut text = stdout_of(native().arg("table").args(&reports))?;
    text.push_str(&format!(
        "\nThe fastest of the timed rounds (5 by default, about 0.25 s each, after a warm-up, \
         taken in turns over all rows so that other load on the machine hits them alike; \
         medians in the reports); std::time::Instant inside the program, one thread; wasm: \
         wasm32-wasip2 under \
         wasmtime 48.0.8 (Cranelift, opt-level speed); both bench-o3 (opt-level 3, LTO). \
         Reports: {}\n",
        results.display()
    ));
    println!();
    print!("{text}");
    std::fs::write(results.join("table.md"), &text)?;
    Ok(())
}

/// Builds bench program `program` natively and for `wasm32-wasip2` (both
/// `bench-o3`): the paths of the native and the wasm build.
fn native_and_wasm(program: &str) -> Result<(PathBuf, PathBuf)> {
    for wasm in [false, true] {
        let mut build = cmd("cargo");
        build.args(["build", "-p", program, "--profile", PROFILE]);
        if wasm {
            build.args(["--target", "wasm32-wasip2"]);
        }
        run_command(&mut build)?;
    }
    let targets = target_dir();
    Ok((
        targets.join(format!("{PROFILE}/{program}")),
        targets.join(format!("wasm32-wasip2/{PROFILE}/{program}.wasm")),
    ))
}

/// A command running `wasm` under [`wasm_runner`] with the runner's own
/// `options` (`--dir`, `--stats`) before it.
fn under_runner(wasm: &Path, options: &[&str]) -> Result<Command> {
    let mut command = cmd(&wasm_runner()?.to_string_lossy());
    command.args(options).arg(wasm);
    Ok(command)
}

/// Builds `bench-runner` optimized, once per run of the xtask, and returns
/// its path: opt-level 3 without LTO, in a target directory of its own
/// (other profile settings than the workspace's `bench-o3`, and the
/// dev-profile wasmtime of `wasm-tests` stays as it is). The hosts that run
/// the functions (wasmtime, Spin) are release builds; under a debug
/// wasmtime every `memory.copy` a guest makes runs unoptimized host code
/// with its debug assertions.
fn wasm_runner() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(runner) = BUILT.get() {
        return Ok(runner.clone());
    }
    let dir = target_dir().join("bench-runner-o3");
    run_command(
        cmd("cargo")
            .args(["build", "-p", "bench-runner", "--profile", PROFILE])
            .env("CARGO_TARGET_DIR", &dir)
            .env("CARGO_PROFILE_BENCH_O3_LTO", "false")
            .env("CARGO_PROFILE_BENCH_O3_CODEGEN_UNITS", "16"),
    )?;
    Ok(BUILT
        .get_or_init(|| dir.join(format!("{PROFILE}/bench-runner")))
        .clone())
}

// ---------------------------------------------------------------------------
// `cargo xtask bench gateway`
//
// `gateway-bench` (`bench/gateway`) is built natively and for
// `wasm32-wasip2` in `bench-o3`. `run` times the pipeline in-process on
// both (the wasm under the optimized `bench-runner`).
// Then the gateway's Workers build is brought up to date (what
// `cargo xtask build-worker gateway` does; wrangler's build command then
// finds it fresh) and the native `live` starts a local origin and
// `wrangler dev` (no `--env`: wrangler.toml's top-level worker) from the
// workspace root and loads it. Reports go to
// `target/bench-results/gateway/`; the native program prints the tables
// (also saved as `table.md`).

/// The gateway bench program's package and binary.
const GATEWAY_PROGRAM: &str = "gateway-bench";

fn gateway(options: &[String]) -> Result<()> {
    let started = std::time::Instant::now();
    let mut wrangler = true;
    let (mut live, mut run) = (Vec::new(), Vec::new());
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let mut value = || {
            options
                .next()
                .cloned()
                .with_context(|| format!("{option} needs a value\n{USAGE}"))
        };
        match option.as_str() {
            "--no-wrangler" => wrangler = false,
            "--clients" => live.extend(["--clients".to_owned(), value()?]),
            "--turn-seconds" => live.extend(["--seconds".to_owned(), value()?]),
            "--turns" => live.extend(["--rounds".to_owned(), value()?]),
            _ => run.push(option.clone()),
        }
    }
    let results = target_dir().join("bench-results/gateway");
    std::fs::create_dir_all(&results)?;
    let (native, wasm) = native_and_wasm(GATEWAY_PROGRAM)?;
    let native = || cmd(&native.to_string_lossy());
    let report = |name: &str| results.join(format!("{name}.json"));
    // The guest reads its thread's CPU time from the runner's /proc entry
    // (the runner calls it on the thread that opened it).
    let wasm = under_runner(&wasm, &["--dir", "/proc/thread-self::/thread"])?;
    for (runtime, mut command) in [("native", native()), ("wasm", wasm)] {
        command.args(["run", "--runtime", runtime]).args(&run);
        capture(&mut command, &report(runtime))?;
    }
    let mut table = native();
    table
        .arg("table")
        .arg("--native")
        .arg(report("native"))
        .arg("--wasm")
        .arg(report("wasm"));
    if wrangler {
        let registry = edge_registry::Registry::load()?;
        crate::build::worker_unless_fresh(&registry, "gateway")?;
        capture(
            native()
                .arg("live")
                .arg("--wrangler")
                .arg(crate::util::root().join("node_modules/.bin/wrangler"))
                .args(&live),
            &report("live"),
        )?;
        table.arg("--live").arg(report("live"));
    }
    let mut text = stdout_of(&mut table)?;
    text.push_str(&format!("\nReports: {}\n", results.display()));
    println!();
    print!("{text}");
    std::fs::write(results.join("table.md"), &text)?;
    eprintln!(
        "xtask: bench gateway took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
