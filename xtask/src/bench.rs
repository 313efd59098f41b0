//! `cargo xtask bench rate-limit`: how many rate-limit decisions per second
//! each algorithm makes natively and in wasm under wasmtime, next to
//! governor (an in-process GCRA), in one markdown table.
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
//! runner in the dev profile, where it shares the wasmtime that `wasm-tests`
//! built (the guest's speed depends on Cranelift's optimization of the
//! guest, not on how wasmtime itself was compiled).
//!
//! Arguments after `rate-limit` go to `rate-limit-bench run` on every
//! runtime, e.g. `--rounds 3 --scale 0.2 --only gcra,governor_direct`.
//! For statistics per algorithm there is also `cargo bench -p rate-limit`
//! (criterion, native only, the same loops).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::util::{cmd, run as run_command, target_dir};

const USAGE: &str = "usage: cargo xtask bench rate-limit [rate-limit-bench run options: \
                     --rounds N --scale F --only ID,ID]";

/// The bench program's package, binary and wasm name.
const PROGRAM: &str = "rate-limit-bench";
/// The optimized profile of the side-by-side comparison.
const PROFILE: &str = "bench-o3";

/// Runs `cargo xtask bench ARGS`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("rate-limit") => rate_limit(&args[1..]),
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
    let runner = targets.join("debug/bench-runner");
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
/// also `release`), and the runner.
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
    run_command(cmd("cargo").args(["build", "-p", "bench-runner"]))
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
fn capture(command: &mut Command, to: &Path) -> Result<()> {
    let stdout = stdout_of(command)?;
    std::fs::write(to, stdout).with_context(|| format!("writing {}", to.display()))
}

/// Runs `command` (its stderr shown) and returns its stdout.
fn stdout_of(command: &mut Command) -> Result<String> {
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
