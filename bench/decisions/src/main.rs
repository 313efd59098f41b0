//! `rate-limit-bench`: times the rate-limit decision loops and prints JSON,
//! or sets such reports side by side as a markdown table.
//!
//! The same program is the native measurement and, built for
//! `wasm32-wasip2`, the wasm one (run by `bench-runner` under wasmtime), so
//! both time identical loops with `std::time::Instant` inside the program.
//!
//! ```text
//! rate-limit-bench run [--label L] [--short S] [--rounds N] [--scale F] [--only ID,ID]
//! rate-limit-bench table BASE.json OTHER.json...
//! ```

use std::process::ExitCode;

use rate_limit_bench::workloads::{self, Workload};
use rate_limit_bench::{Report, measure, table};

const USAGE: &str = "usage: rate-limit-bench run [--label L] [--short S] [--rounds N] [--scale F] [--only ID,ID]\n       \
                     rate-limit-bench table BASE.json OTHER.json...";

fn main() -> ExitCode {
    bench_support::main("rate-limit-bench", dispatch)
}

fn dispatch(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("table") => print_table(&args[1..]),
        _ => Err(USAGE.to_owned()),
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let mut label = String::from("native");
    let mut short = String::from("native");
    let mut rounds = 5u32;
    let mut scale = 1.0f64;
    let mut only: Option<Vec<String>> = None;
    for (flag, value) in bench_support::option_pairs(args, USAGE)? {
        match flag {
            "--label" => label = value.to_owned(),
            "--short" => short = value.to_owned(),
            "--rounds" => rounds = bench_support::parse(flag, value)?,
            "--scale" => scale = bench_support::parse(flag, value)?,
            "--only" => only = Some(value.split(',').map(str::to_owned).collect()),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    let chosen: Vec<Workload> = workloads::ALL
        .into_iter()
        .filter(|w| {
            only.as_ref()
                .is_none_or(|ids| ids.iter().any(|id| id == w.id()))
        })
        .collect();
    if chosen.is_empty() {
        return Err(format!("--only matches none of the workloads {:?}", ids()));
    }
    let mut results = Vec::new();
    for workload in chosen {
        let decisions = ((workload.decisions() as f64 * scale) as u64).max(1);
        let m = measure(workload, decisions, rounds);
        eprintln!(
            "rate-limit-bench [{label}] {:<16} {:>14.0} decisions/s (best {:.0}, worst {:.0})",
            m.id, m.decisions_per_second, m.best_per_second, m.worst_per_second
        );
        results.push(m);
    }
    let report = Report {
        label,
        short,
        target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        results,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

fn ids() -> Vec<&'static str> {
    workloads::ALL.iter().map(|w| w.id()).collect()
}

fn print_table(files: &[String]) -> Result<(), String> {
    let reports = files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            serde_json::from_str::<Report>(&text).map_err(|e| format!("{file}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let Some((base, others)) = reports.split_first() else {
        return Err(USAGE.to_owned());
    };
    print!("{}", table(base, others).map_err(|e| e.to_string())?);
    Ok(())
}
