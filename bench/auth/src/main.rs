//! `auth-check-bench`: times JWT verifications and prints JSON, or sets
//! such reports side by side as markdown tables.
//!
//! The same program is the native measurement and, built for
//! `wasm32-wasip2`, the wasm one (run by `bench-runner` under wasmtime), so
//! both time identical loops with `std::time::Instant` inside the program.
//!
//! ```text
//! auth-check-bench run [--runtime native|wasm] [--rounds N] [--seconds F] [--only ID,ID]
//! auth-check-bench table REPORT.json...
//! ```

use std::process::ExitCode;
use std::time::Duration;

use auth_check_bench::{Report, all_workloads, direct, measure, tables};

const USAGE: &str = "usage: auth-check-bench run [--runtime native|wasm] [--rounds N] [--seconds F] [--only ID,ID]\n       \
                     auth-check-bench table REPORT.json...";

fn main() -> ExitCode {
    bench_support::main("auth-check-bench", dispatch)
}

fn dispatch(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("table") => print_tables(&args[1..]),
        _ => Err(USAGE.to_owned()),
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let bench_support::RunOptions {
        runtime,
        rounds,
        seconds,
        only,
    } = bench_support::RunOptions::parse(args, USAGE, 0.2)?;
    let chosen: Vec<_> = all_workloads()
        .into_iter()
        .filter(|w| {
            only.as_ref()
                .is_none_or(|ids| ids.iter().any(|id| w.id().starts_with(id.as_str())))
        })
        .collect();
    let round = Duration::from_secs_f64(seconds.max(0.001));
    let bits = direct::rsa09_digit_bits();
    let limbs = direct::rsa010_limb_bits();
    let mut results = Vec::new();
    for workload in chosen {
        let id = workload.id();
        let m = measure(&id, workload.verifier()?, round, rounds)?;
        eprintln!(
            "auth-check-bench [{runtime}, u{bits} digits, {limbs}-bit limbs] {id:<20} {:>12.0}/s (best {:.0}, worst {:.0})",
            m.per_second, m.best_per_second, m.worst_per_second
        );
        results.push(m);
    }
    let report = Report {
        runtime,
        rsa09_digit_bits: bits,
        rsa010_limb_bits: limbs,
        results,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

fn print_tables(files: &[String]) -> Result<(), String> {
    let reports = files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            serde_json::from_str::<Report>(&text).map_err(|e| format!("{file}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if reports.is_empty() {
        return Err(USAGE.to_owned());
    }
    print!("{}", tables(&reports));
    Ok(())
}
