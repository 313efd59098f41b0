//! `spatial-bench`: times the spatial-query function's queries over a tile
//! directory and its ingest path, printing JSON, or sets such reports
//! beside PostGIS's as a markdown table.
//!
//! The same program is the native measurement and, built for
//! `wasm32-wasip2`, the wasm one (run by `bench-runner` with the data
//! directory preopened read-only), so both time identical loops with
//! `std::time::Instant` inside the program.
//!
//! ```text
//! spatial-bench queries --store DIR --queries FILE [--runtime R] [--rounds N]
//!                       [--max-tiles N] [--tile-sample N]
//! spatial-bench ingest --input FILE [--count N] [--rounds N] [--runtime R]
//! spatial-bench table --per-type N --native Q.json --wasm Q.json --wasm-stats S.json
//!                     --native-ingest I.json --wasm-ingest I.json --wasm-ingest-stats S.json
//!                     --postgis P.json --build B.json
//!                     [--large-wasm Q.json --large-stats S.json --large-build B.json]
//! ```

use std::collections::BTreeMap;

use bench_support::{option_pairs, parse};
use serde::de::DeserializeOwned;
use spatial_bench::table::{Inputs, Large};
use spatial_bench::{ingest, queries};

const USAGE: &str = "usage: spatial-bench queries --store DIR --queries FILE [--runtime native|wasm] \
                     [--rounds N] [--max-tiles N] [--tile-sample N]\n       \
                     spatial-bench ingest --input FILE [--count N] [--rounds N] [--runtime native|wasm]\n       \
                     spatial-bench table --per-type N --native Q.json --wasm Q.json --wasm-stats S.json \
                     --native-ingest I.json --wasm-ingest I.json --wasm-ingest-stats S.json \
                     --postgis P.json --build B.json [--large-wasm Q.json --large-stats S.json \
                     --large-build B.json]";

fn main() -> std::process::ExitCode {
    bench_support::main("spatial-bench", dispatch)
}

fn dispatch(args: &[String]) -> Result<(), String> {
    let command = args.first().map(String::as_str);
    let options: BTreeMap<&str, &str> = option_pairs(args.get(1..).unwrap_or(&[]), USAGE)?
        .into_iter()
        .collect();
    let known = |names: &[&str]| -> Result<(), String> {
        match options.keys().find(|k| !names.contains(k)) {
            Some(k) => Err(format!("unknown option {k}\n{USAGE}")),
            None => Ok(()),
        }
    };
    let required = |name: &str| -> Result<&str, String> {
        options
            .get(name)
            .copied()
            .ok_or_else(|| format!("{name} is required\n{USAGE}"))
    };
    let runtime = options.get("--runtime").copied().unwrap_or("native");
    match command {
        Some("queries") => {
            known(&[
                "--store",
                "--queries",
                "--runtime",
                "--rounds",
                "--max-tiles",
                "--tile-sample",
            ])?;
            let file = required("--queries")?;
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            let run_options = queries::QueryOptions {
                runtime: runtime.to_owned(),
                rounds: number(&options, "--rounds", 5)?,
                max_tiles: options
                    .get("--max-tiles")
                    .map(|v| parse("--max-tiles", v))
                    .transpose()?,
                tile_sample: number(&options, "--tile-sample", 200)?,
            };
            let report = queries::run(required("--store")?, &text, &run_options)?;
            for t in &report.types {
                eprintln!(
                    "spatial-bench [{runtime}] {:<8} warm p50 {:>9.1} µs p99 {:>9.1} µs; cold p50 {:>9.1} µs \
                     p99 {:>9.1} µs; {:.1} hits ({:.0} matched), {:.1} tiles, {} refused",
                    t.kind,
                    t.warm.p50_us,
                    t.warm.p99_us,
                    t.cold.p50_us,
                    t.cold.p99_us,
                    t.mean_returned,
                    t.mean_matched,
                    t.mean_tiles,
                    t.refused
                );
            }
            eprintln!(
                "spatial-bench [{runtime}] tile read+decode p50 {:.1} µs, decode p50 {:.1} µs; {:.1} s",
                report.tile_load.read_decode.p50_us,
                report.tile_load.decode.p50_us,
                report.elapsed_s
            );
            print_json(&report)
        }
        Some("ingest") => {
            known(&["--input", "--count", "--rounds", "--runtime"])?;
            let count: usize = number(&options, "--count", 200_000)?;
            let (input, features) = ingest::read_prefix(required("--input")?, count)?;
            let report = ingest::run(runtime, &input, features, number(&options, "--rounds", 3)?)?;
            drop(input);
            eprintln!(
                "spatial-bench [{runtime}] ingest {} assets: {:.0} assets/s (read {:.2} s, partition {:.2} s, \
                 encode {:.2} s)",
                report.assets,
                report.assets_per_s,
                report.read_s,
                report.partition_s,
                report.encode_s
            );
            print_json(&report)
        }
        Some("table") => {
            known(&[
                "--per-type",
                "--native",
                "--wasm",
                "--wasm-stats",
                "--native-ingest",
                "--wasm-ingest",
                "--wasm-ingest-stats",
                "--postgis",
                "--build",
                "--large-wasm",
                "--large-stats",
                "--large-build",
            ])?;
            let large = match options.get("--large-wasm") {
                Some(file) => Some(Large {
                    wasm: read(file)?,
                    memory: read(required("--large-stats")?)?,
                    build: read(required("--large-build")?)?,
                }),
                None => None,
            };
            let inputs = Inputs {
                per_type: parse("--per-type", required("--per-type")?)?,
                native: read(required("--native")?)?,
                wasm: read(required("--wasm")?)?,
                wasm_memory: read(required("--wasm-stats")?)?,
                native_ingest: read(required("--native-ingest")?)?,
                wasm_ingest: read(required("--wasm-ingest")?)?,
                wasm_ingest_memory: read(required("--wasm-ingest-stats")?)?,
                postgis: read(required("--postgis")?)?,
                build: read(required("--build")?)?,
                large,
            };
            print!("{}", spatial_bench::table::render(&inputs));
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    }
}

fn number<T: std::str::FromStr>(
    options: &BTreeMap<&str, &str>,
    name: &str,
    default: T,
) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    options.get(name).map_or(Ok(default), |v| parse(name, v))
}

fn read<T: DeserializeOwned>(file: &str) -> Result<T, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))
}

fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    let json = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}
