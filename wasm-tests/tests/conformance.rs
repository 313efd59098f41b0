//! The conformance suite on every runtime: native, wasmtime (the Spin
//! build), workerd (the Workers build under `wrangler dev`), chromium
//! (the browser build) and deno (the npm package's `deno serve` entry,
//! which serves the same browser build). Prints one line per runtime with
//! its pass count and fails if any case fails anywhere.
//!
//! `CONFORMANCE_RUNTIMES=native,wasmtime` limits the runtimes (default: all).
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use wasm_tests::conformance::{Actual, Report, Suite, load_suites};
use wasm_tests::host::{App, AppConfig, GuestLogs, KvStore};
use wasm_tests::{chromium, deno, native, spin_component, workerd};

const RUNTIMES: [&str; 5] = ["native", "wasmtime", "workerd", "chromium", "deno"];

fn main() -> ExitCode {
    let wanted: Vec<String> = match std::env::var("CONFORMANCE_RUNTIMES") {
        Ok(list) if !list.trim().is_empty() => {
            list.split(',').map(|s| s.trim().to_owned()).collect()
        }
        _ => RUNTIMES.iter().map(|s| (*s).to_owned()).collect(),
    };
    let suites = match load_suites() {
        Ok(suites) => suites,
        Err(e) => {
            eprintln!("conformance: cannot load suites: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for runtime in RUNTIMES.iter().filter(|r| wanted.iter().any(|w| w == *r)) {
        let started = Instant::now();
        let (mut passed, mut failures) = (0, 0);
        // workerd spends most of a suite starting `wrangler dev`: two
        // suites start side by side.
        let parallel = if *runtime == "workerd" { 2 } else { 1 };
        let mut all_answers = Vec::new();
        for chunk in suites.chunks(parallel) {
            std::thread::scope(|scope| {
                let jobs: Vec<_> = chunk
                    .iter()
                    .map(|(path, suite)| scope.spawn(move || runtime_answers(runtime, path, suite)))
                    .collect();
                for ((_, suite), job) in chunk.iter().zip(jobs) {
                    let answers = match job.join() {
                        Ok(Ok(answers)) => answers,
                        Ok(Err(e)) => {
                            eprintln!(
                                "conformance {runtime}: {}: cannot run: {e:#}",
                                suite.function
                            );
                            vec![]
                        }
                        Err(_) => {
                            eprintln!("conformance {runtime}: {}: panicked", suite.function);
                            vec![]
                        }
                    };
                    all_answers.push(answers);
                }
            });
        }
        for ((_, suite), answers) in suites.iter().zip(&all_answers) {
            let report = Report::new(runtime, suite, answers);
            for (name, result) in &report.results {
                if let Err(why) = result {
                    eprintln!(
                        "conformance {runtime}: {} / {name}: FAILED: {why}",
                        suite.function
                    );
                }
            }
            passed += report.passed();
            failures += report.failed();
        }
        failed |= failures > 0;
        println!(
            "conformance {runtime}: {passed} passed, {failures} failed ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn runtime_answers(runtime: &str, path: &std::path::Path, suite: &Suite) -> Result<Vec<Actual>> {
    match runtime {
        "native" => futures::executor::block_on(native::answers(suite)),
        "wasmtime" => wasmtime_answers(suite),
        "workerd" => {
            let dev = workerd::WranglerDev::start(&suite.function, &suite.vars, &suite.secrets)?;
            workerd::answers(&dev, suite)
        }
        "chromium" => chromium::answers(path, suite),
        "deno" => deno::answers(suite),
        other => anyhow::bail!("unknown runtime {other}"),
    }
}

fn wasmtime_answers(suite: &Suite) -> Result<Vec<Actual>> {
    let variables = suite
        .vars
        .iter()
        .chain(&suite.secrets)
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let app = App::load(
        &spin_component(&suite.function),
        AppConfig {
            variables,
            kv: KvStore::new(),
            route: suite.mount.clone(),
            guest_stderr: Some(GuestLogs::new(1 << 20)),
        },
    )?;
    let runtime = tokio::runtime::Runtime::new()?;
    let client: SocketAddr = ([127, 0, 0, 1], 40000).into();
    let mut answers = Vec::new();
    for case in &suite.cases {
        let base = format!("http://127.0.0.1{}", suite.mount);
        let request = native::to_request(&case.request, &base)?;
        let response = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), app.handle(request, client)).await
        })??;
        answers.push(Actual::from_response(&response));
    }
    Ok(answers)
}
