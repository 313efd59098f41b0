//! `cargo xtask fuzz [TARGET] [--minutes N]` and the fuzz smoke run of
//! `cargo xtask test`.
//!
//! The targets live in `fuzz/` (cargo-fuzz layout, a workspace of its own,
//! built with the nightly toolchain). Their corpora (`fuzz/corpus/TARGET`,
//! not committed) are seeded here from the conformance cases
//! (`wasm-tests/conformance/*.json`): the policies, tokens, headers, query
//! strings and bodies every runtime is tested with, each framed the way
//! its target reads input. Seeding rewrites only the `conformance-*` files,
//! so what libFuzzer added stays.
//!
//! - Smoke (in `cargo xtask test`): every target built in one cargo
//!   invocation with `--sanitizer none` (no AddressSanitizer: the crates
//!   forbid `unsafe`, and an uninstrumented build is about twice as fast
//!   to build and run) and 16 codegen units (cargo-fuzz's default of one
//!   runs faster but builds slower), into `fuzz/target/smoke`, then each
//!   run for [`SMOKE_SECONDS`] seconds on a fresh corpus of the seeds
//!   (`fuzz/target/smoke/corpus`). Debug assertions stay on, so integer
//!   overflow panics.
//! - Long runs: AddressSanitizer (cargo-fuzz's default) into
//!   `fuzz/target`, each target for `--minutes` (default 10), one after
//!   the other (the machine has two cores); crashes go to
//!   `fuzz/artifacts/TARGET`.
//!
//! Both print a table: target, runs, execs/s, corpus size, outcome.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util::{cmd, output, root, run};

/// The fuzz targets, one per parser (`fuzz/fuzz_targets/NAME.rs`).
pub(crate) const TARGETS: [&str; 11] = [
    "jws",
    "jwks",
    "policy",
    "rate_limit_request",
    "anonymize_stream",
    "anonymize_text",
    "spatial_ingest",
    "spatial_query",
    "spatial_store",
    "metrics_sketch",
    "sf_headers",
];

/// Seconds each target runs in the smoke run.
const SMOKE_SECONDS: u64 = 4;

/// The cargo-fuzz version installed when none is.
const CARGO_FUZZ_VERSION: &str = "0.13";

/// `cargo xtask fuzz [TARGET] [--minutes N]`, or `cargo xtask fuzz --smoke`
/// (the smoke run alone).
pub(crate) fn run_command(args: &[String]) -> Result<()> {
    if args == ["--smoke"] {
        return smoke();
    }
    let mut target = None;
    let mut minutes = 10.0_f64;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--minutes" => {
                let n = rest.next().context("--minutes takes a number")?;
                minutes = n
                    .parse()
                    .ok()
                    .filter(|m: &f64| *m > 0.0 && m.is_finite())
                    .with_context(|| format!("--minutes {n:?}: must be a number > 0"))?;
            }
            name if TARGETS.contains(&name) && target.is_none() => target = Some(name),
            other => bail!(
                "usage: cargo xtask fuzz [TARGET] [--minutes N] | cargo xtask fuzz --smoke\n\
                 unknown argument {other:?}; targets: {}",
                TARGETS.join(", ")
            ),
        }
    }
    let targets: Vec<&str> = match target {
        Some(t) => vec![t],
        None => TARGETS.to_vec(),
    };
    install()?;
    let build = Build::Long;
    seed(&build.corpora())?;
    build.compile(target)?;
    let seconds = (minutes * 60.0).round().max(1.0) as u64;
    let results = targets
        .iter()
        .map(|t| build.run(t, seconds))
        .collect::<Result<Vec<_>>>()?;
    report(&results)
}

/// The smoke run of every target, for `cargo xtask test`.
pub(crate) fn smoke() -> Result<()> {
    let started = Instant::now();
    install()?;
    let build = Build::Smoke;
    // A fresh corpus of the seeds each time: a grown one would be replayed
    // whole before the clock starts, and grow with every run.
    let _ = std::fs::remove_dir_all(build.corpora());
    seed(&build.corpora())?;
    build.compile(None)?;
    let built = started.elapsed().as_secs_f64();
    let results = TARGETS
        .iter()
        .map(|t| build.run(t, SMOKE_SECONDS))
        .collect::<Result<Vec<_>>>()?;
    eprintln!(
        "xtask: fuzz smoke: build {built:.0} s, runs {:.0} s",
        started.elapsed().as_secs_f64() - built
    );
    report(&results)
}

/// The nightly toolchain and cargo-fuzz, installed when missing.
fn install() -> Result<()> {
    let toolchains = output(cmd("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        eprintln!("xtask: installing the nightly toolchain (cargo-fuzz needs it)");
        run(cmd("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    let installed = output(cmd("cargo").args(["fuzz", "--version"])).unwrap_or_default();
    if !installed.contains(CARGO_FUZZ_VERSION) {
        eprintln!(
            "xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} (found: {:?})",
            installed.trim()
        );
        run(cmd("cargo").args([
            "install",
            "--locked",
            "cargo-fuzz",
            "--version",
            &format!("^{CARGO_FUZZ_VERSION}"),
        ]))?;
    }
    Ok(())
}

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

/// Which build: the smoke run's or the long runs'.
#[derive(Clone, Copy)]
enum Build {
    Smoke,
    Long,
}

/// One target's run.
struct Outcome {
    target: String,
    runs: u64,
    execs_per_second: u64,
    corpus: usize,
    seconds: f64,
    crash: Option<String>,
}

impl Build {
    fn target_dir(self) -> PathBuf {
        match self {
            Build::Smoke => fuzz_dir().join("target/smoke"),
            Build::Long => fuzz_dir().join("target"),
        }
    }

    /// Where the targets' corpora are: `fuzz/corpus` for long runs (kept),
    /// `fuzz/target/smoke/corpus` for the smoke run (seeds only).
    fn corpora(self) -> PathBuf {
        match self {
            Build::Smoke => self.target_dir().join("corpus"),
            Build::Long => fuzz_dir().join("corpus"),
        }
    }

    fn sanitizer(self) -> &'static str {
        match self {
            Build::Smoke => "none",
            Build::Long => "address",
        }
    }

    /// `cargo fuzz`, run in `fuzz/` with the nightly toolchain and none of
    /// the outer cargo's settings.
    fn cargo_fuzz(self, subcommand: &str) -> std::process::Command {
        let mut c = cmd("cargo");
        c.current_dir(fuzz_dir())
            .args([
                "+nightly",
                "fuzz",
                subcommand,
                "--sanitizer",
                self.sanitizer(),
            ])
            .arg("--target-dir")
            .arg(self.target_dir())
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO_BUILD_TARGET");
        c
    }

    /// Builds `target`, or every target in one cargo invocation.
    fn compile(self, target: Option<&str>) -> Result<()> {
        let mut c = self.cargo_fuzz("build");
        if let Build::Smoke = self {
            // cargo-fuzz builds one codegen unit a crate by default (for
            // inlining under its coverage passes): the fastest fuzzing,
            // the slowest build. A few seconds a target want the build fast.
            c.args(["--codegen-units", "16"]);
        }
        if let Some(t) = target {
            c.arg(t);
        }
        run(&mut c).context("building the fuzz targets")
    }

    fn binary(self, target: &str) -> PathBuf {
        self.target_dir()
            .join("x86_64-unknown-linux-gnu/release")
            .join(target)
    }

    /// Runs one built target for `seconds` on its corpus.
    fn run(self, target: &str, seconds: u64) -> Result<Outcome> {
        let corpus = self.corpora().join(target);
        let artifacts = fuzz_dir().join("artifacts").join(target);
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(&artifacts)?;
        let started = Instant::now();
        let out = std::process::Command::new(self.binary(target))
            .current_dir(fuzz_dir())
            .arg(&corpus)
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(["-max_len=65536", "-rss_limit_mb=2048", "-timeout=10"])
            .args(["-print_final_stats=1", "-seed=1"])
            .output()
            .with_context(|| format!("running fuzz target {target}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let stat = |name: &str| {
            log.lines()
                .filter_map(|l| l.strip_prefix(name))
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .next_back()
                .unwrap_or(0)
        };
        let crash = (!out.status.success()).then(|| {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        });
        Ok(Outcome {
            target: target.to_owned(),
            runs: stat("stat::number_of_executed_units:"),
            execs_per_second: stat("stat::average_exec_per_sec:"),
            corpus: std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0),
            seconds: started.elapsed().as_secs_f64(),
            crash,
        })
    }
}

fn report(results: &[Outcome]) -> Result<()> {
    println!(
        "| target | runs | execs/s | corpus | seconds | result |\n|---|---:|---:|---:|---:|---|"
    );
    for r in results {
        println!(
            "| {} | {} | {} | {} | {:.0} | {} |",
            r.target,
            r.runs,
            r.execs_per_second,
            r.corpus,
            r.seconds,
            if r.crash.is_some() { "CRASH" } else { "ok" }
        );
    }
    let crashed: Vec<&Outcome> = results.iter().filter(|r| r.crash.is_some()).collect();
    for r in &crashed {
        eprintln!(
            "xtask: fuzz target {} failed (input in fuzz/artifacts/{}):\n{}",
            r.target,
            r.target,
            r.crash.as_deref().unwrap_or_default()
        );
    }
    if !crashed.is_empty() {
        bail!(
            "{} fuzz target(s) failed: {}",
            crashed.len(),
            crashed
                .iter()
                .map(|r| r.target.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Seeds from the conformance cases.

/// The order of the functions in the `policy` target's first byte.
const POLICY_FUNCTIONS: [&str; 7] = [
    "rate-limit",
    "auth-check",
    "anonymize",
    "spatial-query",
    "metrics",
    "gateway",
    "counter",
];

/// Writes every target's conformance seeds into its corpus directory under
/// `corpora`.
fn seed(corpora: &Path) -> Result<()> {
    let suites = suites()?;
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, bytes: Vec<u8>| seeds.push((target, bytes));
    let framed = |prefix: &[u8], body: &[u8]| [prefix, body].concat();

    for (function, suite) in &suites {
        // Policies, as written and as JSON.
        if let Some(i) = POLICY_FUNCTIONS.iter().position(|f| f == function) {
            let byte = [i as u8];
            add("policy", byte.to_vec());
            if let Some(policy) = suite["vars"]["POLICY"].as_str() {
                add("policy", framed(&byte, policy.as_bytes()));
                if let Ok(table) = policy.parse::<toml::Table>() {
                    add(
                        "policy",
                        framed(&byte, serde_json::to_string(&table)?.as_bytes()),
                    );
                }
            }
        }
        for case in suite["cases"].as_array().into_iter().flatten() {
            let request = &case["request"];
            let header = |name: &str| request["headers"][name].as_str().unwrap_or("");
            let method = request["method"].as_str().unwrap_or("GET");
            let path = request["path"].as_str().unwrap_or("/");
            let body: Option<Vec<u8>> = match &request["body"] {
                Value::Null => None,
                Value::String(s) => Some(s.as_bytes().to_vec()),
                other => Some(other.to_string().into_bytes()),
            };
            let content_type = header("content-type");
            if !content_type.is_empty() {
                add("sf_headers", framed(&[2], content_type.as_bytes()));
            }
            if let Some(token) = header("authorization").strip_prefix("Bearer ") {
                add("jws", framed(&[0], token.as_bytes()));
                let mut parts = token.split('.').map(b64url);
                if let (Some(Some(h)), Some(Some(p))) = (parts.next(), parts.next()) {
                    add("jws", [&[1][..], &h, b"\n", &p].concat());
                }
            }
            match function.as_str() {
                "rate-limit" => {
                    let lines = [
                        method,
                        path,
                        header("x-forwarded-for"),
                        header("x-cost"),
                        header("x-auth-sub"),
                        header("x-auth-api-key-id"),
                        header("x-client"),
                    ];
                    add("rate_limit_request", lines.join("\n").into_bytes());
                }
                "anonymize" | "gateway" => {
                    if let Some(body) = &body {
                        let kind = if content_type.contains("ndjson") {
                            1
                        } else if content_type.contains("json") {
                            0
                        } else {
                            2
                        };
                        add("anonymize_stream", framed(&[kind, 0], body));
                        add("anonymize_stream", framed(&[kind, 3, 1, 7, 13], body));
                        add("anonymize_text", body.clone());
                    }
                }
                "spatial-query" => {
                    let (route, query) = path.split_once('?').unwrap_or((path, ""));
                    if let Some(body) = &body
                        && route == "/assets"
                    {
                        let kind = u8::from(content_type.contains("nd"));
                        add("spatial_ingest", framed(&[kind, 0], body));
                        add("spatial_ingest", framed(&[kind | 2, 2, 5, 40], body));
                        add("spatial_store", framed(&[2, 0, 0, 0, 0, 0, 0, 0, 0], body));
                        add(
                            "spatial_store",
                            framed(&[2, 9, 1, 30, 128, 0, 0, 0, 0], body),
                        );
                    }
                    let kind = ["radius", "bbox", "within", "nearest", "query"]
                        .iter()
                        .position(|k| route.ends_with(k))
                        .map(|k| k as u8);
                    if let Some(kind) = kind {
                        let mut input = framed(&[kind], query.as_bytes());
                        if let Some(body) = &body {
                            input.push(b'\n');
                            input.extend_from_slice(body);
                        }
                        add("spatial_query", input);
                    }
                }
                "metrics" => {
                    if let Some(body) = &body {
                        add("metrics_sketch", framed(&[1], body));
                        if let Ok(batch) = serde_json::from_slice::<Value>(body) {
                            for window in batch["windows"].as_array().into_iter().flatten() {
                                for series in window["series"].as_array().into_iter().flatten() {
                                    let latency = series["latency"].to_string();
                                    add("metrics_sketch", framed(&[0], latency.as_bytes()));
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // Keys: the auth-check policy's JWKs and PEMs.
    if let Some((_, suite)) = suites.iter().find(|(f, _)| f == "auth-check")
        && let Some(policy) = suite["vars"]["POLICY"].as_str()
    {
        let table: toml::Table = policy.parse().context("auth-check conformance policy")?;
        let doc = serde_json::to_value(&table)?;
        let mut jwks = Vec::new();
        for provider in doc["auth"]["providers"].as_array().into_iter().flatten() {
            for key in provider["keys"].as_array().into_iter().flatten() {
                if let Some(jwk) = key.get("jwk") {
                    add("jwks", framed(&[1], jwk.to_string().as_bytes()));
                    jwks.push(jwk.clone());
                }
                if let Some(pem) = key["pem"].as_str() {
                    add("jwks", framed(&[2], pem.as_bytes()));
                }
            }
        }
        let set = serde_json::json!({ "keys": jwks }).to_string();
        add("jwks", framed(&[0], set.as_bytes()));
    }
    // Values no case carries.
    let latencies: Vec<u8> = [0.0005_f64, 0.01, 0.2, 1.5, 30.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    add("metrics_sketch", framed(&[2], &latencies));
    add("sf_headers", framed(&[0], &[7; 60]));
    // A tile header and a manifest header (plain and keyed) after the magic.
    add("spatial_store", framed(&[3], &[0; 24]));
    add("spatial_store", framed(&[4, 0], &[0; 16]));
    add("spatial_store", framed(&[4, 1], &[0; 32]));
    for cc in [
        "max-age=300, s-maxage=60",
        "no-store",
        "public, max-age=\"86400\"",
    ] {
        add("sf_headers", framed(&[1], cc.as_bytes()));
    }

    for target in TARGETS {
        let dir = corpora.join(target);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if is_seed(&path) {
                std::fs::remove_file(&path)?;
            }
        }
        let mine = seeds.iter().filter(|(t, _)| *t == target);
        for (i, (_, bytes)) in mine.enumerate() {
            std::fs::write(dir.join(format!("conformance-{i:03}")), bytes)?;
        }
    }
    Ok(())
}

fn is_seed(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("conformance-"))
}

/// Every conformance suite, by function name.
fn suites() -> Result<Vec<(String, Value)>> {
    let dir = root().join("wasm-tests/conformance");
    let mut suites = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let suite: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let name = suite["function"].as_str().unwrap_or_default().to_owned();
        suites.push((name, suite));
    }
    Ok(suites)
}

/// Unpadded base64url, as JWS parts are written; `None` if it is not.
fn b64url(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        acc = (acc << 6 | u32::from(value(c)?)) & 0xff_ffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}
