//! `npm-bench`: the native side of `cargo xtask bench npm`, and the table.
//!
//! The npm package's two local-first workloads — anonymizing 1 MiB of
//! NDJSON records with personal data, and radius queries over 100,000
//! assets indexed in memory — timed natively through the same Rust code the
//! package's classes wrap (`Anonymizer.ndjson`: one NDJSON body, the whole
//! input pushed at once; `SpatialIndex`: `read_all` into a
//! `MemoryDataset`, a query parsed from JSON text, run, answered as GeoJSON
//! text), so the figures beside Node, Deno and Chromium
//! (`bench/npm/measure.mjs`, which writes the same report) differ only by
//! where the code runs.
//!
//! ```text
//! npm-bench records --corpus CORPUS.jsonl --bytes N --out RECORDS.ndjson
//! npm-bench radius --queries QUERIES.jsonl --out RADIUS.json
//! npm-bench run --records F --assets F --radius F [--runtime native] [--rounds N]
//! npm-bench table REPORT.json...
//! ```
//!
//! `records` takes the JSON records of the anonymize benchmark's corpus
//! (`functions/anonymize/testdata/corpus.py`) as NDJSON lines, as many as
//! fit in N bytes; `radius` keeps the radius queries of `queries.py` (as
//! JSON text, without their ids) for every runtime to run in the same order.

use std::process::ExitCode;
use std::time::Instant;

use anonymize::{Anonymize, BodyKind};
use edge_core::stream::BodyTransform;
use edge_core::{Config, EdgeFunction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spatial_query::dataset::MemoryDataset;
use spatial_query::ingest::{IngestLimits, InputFormat, read_all};
use spatial_query::policy::Section;
use spatial_query::query::Limits;

const USAGE: &str = "usage: npm-bench records --corpus CORPUS.jsonl --bytes N --out RECORDS.ndjson\n       \
                     npm-bench radius --queries QUERIES.jsonl --out RADIUS.json\n       \
                     npm-bench run --records F --assets F --radius F [--runtime native] [--rounds N]\n       \
                     npm-bench table REPORT.json...";

/// The secrets every runtime gives the anonymizer (the same output
/// everywhere, compared by its hash).
const SALT: &str = "bench-salt-0123456789";
const KEY: &str = "bench-key-0123456789abcdef";

fn main() -> ExitCode {
    bench_support::main("npm-bench", dispatch)
}

fn dispatch(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("records") => records(&args[1..]),
        Some("radius") => radius(&args[1..]),
        Some("run") => run(&args[1..]),
        Some("table") => table(&args[1..]),
        _ => Err(USAGE.to_owned()),
    }
}

/// The value of each of `names` in `args` (`--name value`), all required
/// unless listed in `optional`.
fn options<'a>(
    args: &'a [String],
    names: &[&str],
    optional: &[&str],
) -> Result<Vec<Option<&'a str>>, String> {
    let pairs = bench_support::option_pairs(args, USAGE)?;
    if let Some((flag, _)) = pairs
        .iter()
        .find(|(f, _)| !names.contains(f) && !optional.contains(f))
    {
        return Err(format!("unknown option {flag}\n{USAGE}"));
    }
    let value = |name: &str| pairs.iter().find(|(f, _)| *f == name).map(|(_, v)| *v);
    for name in names {
        if value(name).is_none() {
            return Err(format!("{name} is required\n{USAGE}"));
        }
    }
    Ok(names.iter().chain(optional).map(|n| value(n)).collect())
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))
}

fn write(path: &str, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {path}: {e}"))
}

fn records(args: &[String]) -> Result<(), String> {
    let o = options(args, &["--corpus", "--bytes", "--out"], &[])?;
    let (corpus, out) = (o[0].unwrap_or_default(), o[2].unwrap_or_default());
    let bytes: usize = bench_support::parse("--bytes", o[1].unwrap_or_default())?;
    let mut ndjson = String::new();
    let mut count = 0;
    for line in read(corpus)?.lines() {
        let doc: Value = serde_json::from_str(line).map_err(|e| format!("{corpus}: {e}"))?;
        if doc["kind"] != "json" {
            continue;
        }
        let record = serde_json::to_string(&doc["json"]).map_err(|e| e.to_string())?;
        if ndjson.len() + record.len() + 1 > bytes {
            break;
        }
        ndjson.push_str(&record);
        ndjson.push('\n');
        count += 1;
    }
    if count == 0 {
        return Err(format!("{corpus}: no JSON record fits in {bytes} bytes"));
    }
    eprintln!("npm-bench: {count} records, {} bytes", ndjson.len());
    write(out, &ndjson)
}

fn radius(args: &[String]) -> Result<(), String> {
    let o = options(args, &["--queries", "--out"], &[])?;
    let path = o[0].unwrap_or_default();
    let mut queries = Vec::new();
    for line in read(path)?.lines() {
        let mut query: serde_json::Map<String, Value> =
            serde_json::from_str(line).map_err(|e| format!("{path}: {e}"))?;
        if query.get("type").and_then(Value::as_str) == Some("radius") {
            query.remove("id");
            queries.push(Value::String(Value::Object(query).to_string()));
        }
    }
    if queries.is_empty() {
        return Err(format!("{path}: no radius query"));
    }
    write(o[1].unwrap_or_default(), &Value::Array(queries).to_string())
}

/// What one runtime measured; `bench/npm/measure.mjs` writes the same.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    /// `native`, `node`, `deno`, `chromium`.
    runtime: String,
    /// The runtime's version.
    version: String,
    anonymize: Anonymized,
    build: Built,
    radius: Radius,
}

/// `Anonymizer.ndjson` on the records, once per sample.
#[derive(Debug, Serialize, Deserialize)]
struct Anonymized {
    input_bytes: u64,
    output_bytes: u64,
    /// FNV-1a (32 bits) of the output's UTF-8, in hex.
    output_fnv: String,
    /// Milliseconds per call.
    ms: Vec<f64>,
}

/// `new SpatialIndex(assets, "ndjson")`, once per sample.
#[derive(Debug, Serialize, Deserialize)]
struct Built {
    accepted: u64,
    ms: Vec<f64>,
}

/// Every radius query in turn, once per sample.
#[derive(Debug, Serialize, Deserialize)]
struct Radius {
    queries: u64,
    /// Features answered over all the queries (one pass).
    features: u64,
    /// Milliseconds per query: each round's time over the queries.
    per_query_ms: Vec<f64>,
}

/// FNV-1a, 32 bits, as `measure.mjs` computes it.
fn fnv(bytes: &[u8]) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// The spatial index `SpatialIndex` builds, natively.
struct Index {
    dataset: MemoryDataset,
    policy: Section,
}

impl Index {
    fn build(ndjson: &str) -> Result<(Index, u64), String> {
        let (assets, report) = read_all(
            InputFormat::NdJson,
            IngestLimits::default(),
            ndjson.as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        let config = Config::new(<spatial_query::SpatialQuery as EdgeFunction>::DEFAULT_POLICY);
        let policy = Section::from_config(&config).map_err(|e| e.to_string())?;
        let dataset = MemoryDataset::new(assets, policy.tile_capacity);
        Ok((Index { dataset, policy }, report.accepted))
    }

    /// `SpatialIndex.query(text)`: the page as GeoJSON text.
    fn query(&self, text: &str) -> Result<String, String> {
        let body: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let fields = body.as_object().ok_or("the query must be a JSON object")?;
        let query = spatial_query::request::parse_query(fields, None, None, &self.policy)
            .map_err(|p| format!("{}: {}", p.kind(), p.detail().unwrap_or_default()))?;
        let limits = Limits {
            max_tiles: usize::MAX,
        };
        let page = futures::executor::block_on(spatial_query::query::run(
            &self.dataset.manifest,
            &self.dataset,
            &query,
            limits,
        ))
        .map_err(|e| e.to_string())?;
        Ok(spatial_query::page_json(&page).to_string())
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let o = options(
        args,
        &["--records", "--assets", "--radius"],
        &["--runtime", "--rounds"],
    )?;
    let records = read(o[0].unwrap_or_default())?;
    let assets = read(o[1].unwrap_or_default())?;
    let queries: Vec<String> = serde_json::from_str(&read(o[2].unwrap_or_default())?)
        .map_err(|e| format!("--radius: {e}"))?;
    let runtime = o[3].unwrap_or("native").to_owned();
    let rounds: usize = o[4].map_or(Ok(15), |v| bench_support::parse("--rounds", v))?;
    let rounds = rounds.max(1);

    // Anonymize: warm-up, then `rounds` calls.
    let config = Config::new(Anonymize::DEFAULT_POLICY)
        .with_secret("GDPR_ANONYMIZATION_SALT", SALT)
        .with_secret("GDPR_ANONYMIZATION_KEY", KEY);
    let function = Anonymize::from_config(&config).map_err(|e| e.to_string())?;
    let anonymizer = function.anonymizer().clone();
    let ndjson = |input: &str| -> Result<Vec<u8>, String> {
        let mut body = anonymizer.body(BodyKind::Ndjson);
        let mut out = Vec::with_capacity(input.len());
        let problem = |p: edge_core::Problem| format!("{}: {:?}", p.kind(), p.detail());
        body.push(input.as_bytes(), &mut out).map_err(problem)?;
        body.finish(&mut out).map_err(problem)?;
        Ok(out)
    };
    let out = ndjson(&records)?;
    for _ in 0..2 {
        ndjson(&records)?;
    }
    let mut ms = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        std::hint::black_box(ndjson(std::hint::black_box(&records))?);
        ms.push(ms_since(start));
    }
    let anonymize = Anonymized {
        input_bytes: records.len() as u64,
        output_bytes: out.len() as u64,
        output_fnv: fnv(&out),
        ms,
    };
    eprintln!("npm-bench [{runtime}] anonymize done");

    // The index: one warm-up build, then a third of the rounds (at least 3).
    let (mut index, accepted) = Index::build(&assets)?;
    let mut ms = Vec::new();
    for _ in 0..(rounds / 3).max(3) {
        drop(index);
        let start = Instant::now();
        index = Index::build(std::hint::black_box(&assets))?.0;
        ms.push(ms_since(start));
    }
    let build = Built { accepted, ms };
    eprintln!("npm-bench [{runtime}] build done");

    // Radius: one pass counting the features, two warm-up rounds, then
    // `rounds` rounds over every query.
    let mut features = 0;
    for query in &queries {
        let page: Value = serde_json::from_str(&index.query(query)?).map_err(|e| e.to_string())?;
        features += page["features"].as_array().map_or(0, Vec::len) as u64;
    }
    let round = || -> Result<f64, String> {
        let start = Instant::now();
        for query in &queries {
            std::hint::black_box(index.query(std::hint::black_box(query))?);
        }
        Ok(ms_since(start) / queries.len() as f64)
    };
    round()?;
    round()?;
    let per_query_ms = (0..rounds).map(|_| round()).collect::<Result<_, _>>()?;
    let radius = Radius {
        queries: queries.len() as u64,
        features,
        per_query_ms,
    };
    let report = Report {
        runtime,
        version: format!("Rust, {}", std::env::consts::ARCH),
        anonymize,
        build,
        radius,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

/// Median, minimum and maximum.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(samples: &[f64]) -> Spread {
    let mut s: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return Spread {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        };
    }
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Spread {
        median,
        min: s[0],
        max: s[n - 1],
    }
}

/// Milliseconds with three significant digits (µs below 1 ms).
fn time(ms: f64) -> String {
    if !ms.is_finite() {
        "–".to_owned()
    } else if ms < 1.0 {
        let us = ms * 1e3;
        if us < 10.0 {
            format!("{us:.2} µs")
        } else if us < 100.0 {
            format!("{us:.1} µs")
        } else {
            format!("{us:.0} µs")
        }
    } else if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// The median, the range in brackets.
fn cell(s: &Spread) -> String {
    format!("{} ({}–{})", time(s.median), time(s.min), time(s.max))
}

fn table(paths: &[String]) -> Result<(), String> {
    let mut reports = Vec::new();
    for path in paths {
        let report: Report =
            serde_json::from_str(&read(path)?).map_err(|e| format!("{path}: {e}"))?;
        reports.push(report);
    }
    let native = reports
        .iter()
        .find(|r| r.runtime == "native")
        .ok_or("no native report")?;
    let base = (
        spread(&native.anonymize.ms).median,
        spread(&native.build.ms).median,
        spread(&native.radius.per_query_ms).median,
    );
    let first = &reports[0];
    let (bytes, queries) = (first.anonymize.input_bytes, first.radius.queries);
    println!(
        "| runtime | anonymize {:.1} MiB of NDJSON | MB/s | × native | index {} assets | × native | a radius query (mean of {queries}) | × native |",
        bytes as f64 / f64::from(1 << 20),
        bench_support::thousands(first.build.accepted as f64),
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &reports {
        let (a, b, q) = (
            spread(&r.anonymize.ms),
            spread(&r.build.ms),
            spread(&r.radius.per_query_ms),
        );
        let mb_s = r.anonymize.input_bytes as f64 / 1e6 / (a.median / 1e3);
        println!(
            "| {} ({}) | {} | {mb_s:.1} | {:.2} | {} | {:.2} | {} | {:.2} |",
            r.runtime,
            r.version,
            cell(&a),
            a.median / base.0,
            cell(&b),
            b.median / base.1,
            cell(&q),
            q.median / base.2,
        );
    }
    // Every runtime must have computed the same answers.
    let mut same = Vec::new();
    for r in &reports {
        let a = &r.anonymize;
        let mine = (
            a.input_bytes,
            a.output_bytes,
            &a.output_fnv,
            r.build.accepted,
            r.radius.queries,
            r.radius.features,
        );
        let theirs = (
            native.anonymize.input_bytes,
            native.anonymize.output_bytes,
            &native.anonymize.output_fnv,
            native.build.accepted,
            native.radius.queries,
            native.radius.features,
        );
        if mine != theirs {
            return Err(format!(
                "{} answered differently from native: {mine:?} != {theirs:?}",
                r.runtime
            ));
        }
        same.push(r.runtime.as_str());
    }
    println!(
        "\nThe same answers on {}: anonymized output {} bytes (FNV-1a {}), {} assets indexed, \
         {} features over the {queries} radius queries. Each cell: the median, the fastest and \
         slowest sample in brackets; samples: anonymize {}, index {}, radius rounds {}.",
        same.join(", "),
        bench_support::thousands(native.anonymize.output_bytes as f64),
        native.anonymize.output_fnv,
        bench_support::thousands(native.build.accepted as f64),
        bench_support::thousands(native.radius.features as f64),
        native.anonymize.ms.len(),
        native.build.ms.len(),
        native.radius.per_query_ms.len(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_median_and_the_range() {
        let s = spread(&[5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert_eq!((s.median, s.min, s.max), (5.5, 1.0, 10.0));
        let s = spread(&[3.0, f64::NAN, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert!(spread(&[]).median.is_nan());
    }

    #[test]
    fn times_keep_three_significant_digits() {
        let shown: Vec<String> = [0.00512, 0.0512, 0.512, 5.12, 51.2, 512.0]
            .into_iter()
            .map(time)
            .collect();
        assert_eq!(
            shown,
            [
                "5.12 µs", "51.2 µs", "512 µs", "5.12 ms", "51.2 ms", "512 ms"
            ]
        );
    }

    #[test]
    fn fnv_matches_the_reference_values() {
        assert_eq!(fnv(b""), "811c9dc5");
        assert_eq!(fnv(b"a"), "e40c292c");
    }
}
