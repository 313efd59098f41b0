//! `anonymize-bench`: times the anonymizer on the built-in corpus and
//! scores it, printing JSON, or sets such reports beside Presidio's as
//! markdown tables.
//!
//! The same program is the native measurement and, built for
//! `wasm32-wasip2`, the wasm one (run by `bench-runner` under wasmtime), so
//! both time identical loops with `std::time::Instant` inside the program.
//!
//! ```text
//! anonymize-bench run [--runtime native|wasm] [--rounds N] [--seconds F] [--only ID,ID]
//! anonymize-bench table PRESIDIO.json REPORT.json...
//! ```

use std::process::ExitCode;
use std::time::Duration;

use anonymize_bench::corpus::{Corpus, EMBEDDED};
use anonymize_bench::{Presidio, Report, WORKLOADS, run as run_workloads, tables};

const USAGE: &str = "usage: anonymize-bench run [--runtime native|wasm] [--rounds N] [--seconds F] [--only detect,text,ndjson]\n       \
                     anonymize-bench table PRESIDIO.json REPORT.json...";

fn main() -> ExitCode {
    bench_support::main("anonymize-bench", dispatch)
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
    } = bench_support::RunOptions::parse(args, USAGE, 0.5)?;
    if EMBEDDED.is_empty() {
        return Err(
            "built without a corpus: `cargo xtask bench anonymize` sets \
                    ANONYMIZE_BENCH_CORPUS to one"
                .to_owned(),
        );
    }
    let corpus = Corpus::parse(EMBEDDED)?;
    let round = Duration::from_secs_f64(seconds.max(0.001));
    let report = run_workloads(&runtime, &corpus, round, rounds, only.as_deref())?;
    for m in &report.results {
        let what = WORKLOADS
            .iter()
            .find(|(id, _)| *id == m.id)
            .map_or("", |(_, what)| what);
        eprintln!(
            "anonymize-bench [{runtime}] {:<7} {:>9.2} MB/s (best {:.2}, worst {:.2}; {} bytes × {} passes) — {what}",
            m.id, m.mb_per_s, m.best_mb_per_s, m.worst_mb_per_s, m.bytes, m.passes
        );
    }
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

fn print_tables(files: &[String]) -> Result<(), String> {
    let Some((presidio, reports)) = files.split_first() else {
        return Err(USAGE.to_owned());
    };
    let read = |file: &String| std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"));
    let presidio: Presidio =
        serde_json::from_str(&read(presidio)?).map_err(|e| format!("{presidio}: {e}"))?;
    let reports = reports
        .iter()
        .map(|file| {
            serde_json::from_str::<Report>(&read(file)?).map_err(|e| format!("{file}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if reports.is_empty() {
        return Err(USAGE.to_owned());
    }
    // Every runtime must score the function alike.
    if let Some(odd) = reports.iter().find(|r| r.scores != reports[0].scores) {
        return Err(format!(
            "the {} and {} builds found different spans",
            reports[0].runtime, odd.runtime
        ));
    }
    print!("{}", tables(&reports, &presidio));
    Ok(())
}
