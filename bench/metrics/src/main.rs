//! `metrics-bench`: times the latency sketch, the request recorder,
//! prometheus-client histograms and hdrhistogram on a generated latency
//! stream, and the merge cost, printing JSON; or sets the native and wasm
//! reports side by side as markdown tables.
//!
//! The same program is the native measurement and, built for
//! `wasm32-wasip2`, the wasm one (run by `bench-runner` under wasmtime), so
//! both time identical loops with `std::time::Instant` inside the program.
//!
//! ```text
//! metrics-bench run [--runtime native|wasm] [--rounds N] [--seconds F] [--only ID,ID]
//! metrics-bench table REPORT.json...
//! ```

use std::process::ExitCode;
use std::time::Duration;

use metrics_bench::{MERGES, RECORDS, Report, STREAM_LEN, Stream, run as run_rows, tables};

const USAGE: &str = "usage: metrics-bench run [--runtime native|wasm] [--rounds N] [--seconds F] \
                     [--only ID,ID]\n       \
                     metrics-bench table REPORT.json...";

fn main() -> ExitCode {
    bench_support::main("metrics-bench", dispatch)
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
    } = bench_support::RunOptions::parse(args, USAGE, 0.25)?;
    if let Some(ids) = &only
        && let Some(unknown) = ids
            .iter()
            .find(|id| !RECORDS.iter().chain(&MERGES).any(|(known, _)| known == id))
    {
        return Err(format!("--only: no row {unknown:?}\n{USAGE}"));
    }
    let stream = Stream::generate(STREAM_LEN, metrics_bench::SEED);
    let round = Duration::from_secs_f64(seconds.max(0.001));
    let report = run_rows(&runtime, &stream, round, rounds, only.as_deref())?;
    for m in report.records.iter().chain(&report.merges) {
        eprintln!(
            "metrics-bench [{runtime}] {:<16} {:>14.0}/s (best {:.0}, worst {:.0}; {} × {} per round)",
            m.id, m.median_per_s, m.best_per_s, m.worst_per_s, m.per_pass, m.passes
        );
    }
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

fn print_tables(files: &[String]) -> Result<(), String> {
    if files.is_empty() {
        return Err(USAGE.to_owned());
    }
    let reports = files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            serde_json::from_str::<Report>(&text).map_err(|e| format!("{file}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    print!("{}", tables(&reports)?);
    Ok(())
}
