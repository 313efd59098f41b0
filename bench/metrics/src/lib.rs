//! The latency sketch's records per second and merge cost, the same loops
//! natively and in wasm, beside `prometheus-client` and `hdrhistogram`.
//!
//! One program measures on every runtime: built natively it is the native
//! measurement, built for `wasm32-wasip2` it is a WASI command that
//! `bench-runner` runs under wasmtime. Both time identical loops with
//! `std::time::Instant` inside the program, on the same [`Stream`]: a
//! seeded lognormal latency stream generated before anything is timed
//! with arithmetic that is bit-identical on every target (no libm), so
//! the exact quantiles and every estimate can be compared across runtimes.
//!
//! - [`RECORDS`]: records per second of [`LatencySketch::record`], of
//!   [`Recorder::record`] (the middleware path, over [`SERIES`]), of
//!   `prometheus-client` histograms (classic buckets, with and without a
//!   label family, and native) and of `hdrhistogram` (µs, 3 significant
//!   digits), each one pass over the stream at a time;
//! - [`MERGES`]: the cost of merging one sketch of [`MERGE_RECORDS`]
//!   records into another and of its JSON round trip, and the same for
//!   `hdrhistogram` (`add`, V2 serialization);
//! - [`Accuracy`]: each structure's p50/p99/p99.9 on the stream against the
//!   exact order statistic.
//!
//! [`run`] gives one runtime's [`Report`]; [`tables`] sets the native and
//! wasm reports side by side. `cargo xtask bench metrics` drives it all.

use std::time::{Duration, Instant};

use bench_support::thousands;
use edge_core::Timestamp;
use edge_core::metrics::{DEFAULT_FLUSH_EVERY, LatencySketch, Recorder};
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{
    Histogram, NativeHistogramConfig, exponential_buckets,
};
use serde::{Deserialize, Serialize};

/// The stream generator's seed.
pub const SEED: u64 = 0x5eed_2026_0001;
/// Records in the stream: one timed pass records them all.
pub const STREAM_LEN: usize = 1 << 20;
/// The lognormal's median, seconds.
pub const MEDIAN_S: f64 = 0.020;
/// The lognormal's σ (of ln seconds): p99 ≈ 10 × the median.
pub const SIGMA: f64 = 1.0;
/// Records in each of the two sketches the merge measurements use.
pub const MERGE_RECORDS: usize = 10_000;
/// The function the recorder rows record for.
pub const FUNCTION: &str = "rate-limit";
/// When the recorder rows record (one 60 s window), ms since the epoch.
pub const RECORDED_AT_MS: u64 = 1_795_000_000_000;
/// `prometheus-client` classic buckets: `exponential_buckets(1 ms, 2, 15)`,
/// 1 ms … 16.4 s, then `+Inf`.
pub const PROM_BUCKETS: (f64, f64, u16) = (0.001, 2.0, 15);
/// `hdrhistogram` bounds (µs) and significant digits: 1 µs … 60 s, 3.
pub const HDR: (u64, u64, u8) = (1, 60_000_000, 3);
/// The goal: records per second per core in wasm.
pub const GOAL: f64 = 10_000_000.0;
/// The quantiles scored.
pub const QUANTILES: [f64; 3] = [0.5, 0.99, 0.999];

/// The series the recorder rows spread records over: route, method,
/// status and weight (records in 104).
pub const SERIES: [(&str, &str, u16, u32); 12] = [
    ("/counters/{key}", "GET", 200, 40),
    ("/counters/{key}", "POST", 200, 20),
    ("/counters/{key}", "POST", 400, 2),
    ("/counters/{key}", "DELETE", 204, 1),
    ("/auth/login", "POST", 200, 10),
    ("/auth/login", "POST", 429, 3),
    ("/api/*", "GET", 200, 15),
    ("/api/*", "GET", 404, 2),
    ("/api/*", "POST", 201, 4),
    ("/api/*", "GET", 503, 1),
    ("/health", "GET", 200, 5),
    ("/*", "GET", 404, 1),
];

/// The records-per-second rows, in table order: id and label.
pub const RECORDS: [(&str, &str); 7] = [
    ("sketch", "`LatencySketch::record`"),
    (
        "recorder",
        "`Recorder::record` (12 series, one window; the middleware path)",
    ),
    (
        "recorder_flush",
        "`Recorder::record` + `due()`, `take()` every 1,000 (as flushed)",
    ),
    (
        "prom",
        "prometheus-client `Histogram::observe` (15 exponential buckets)",
    ),
    (
        "prom_family",
        "prometheus-client `Family` (route, method, status) `get_or_create` + `observe`",
    ),
    (
        "prom_native",
        "prometheus-client native `Histogram::observe` (factor 1.1)",
    ),
    (
        "hdr",
        "hdrhistogram `saturating_record` (µs, 1 µs–60 s, 3 digits)",
    ),
];

/// The merge-cost rows, in table order: id and label.
pub const MERGES: [(&str, &str); 6] = [
    ("sketch_merge", "`LatencySketch::merge`"),
    ("sketch_to_json", "`LatencySketch` → JSON (serde_json)"),
    ("sketch_from_json", "`LatencySketch` ← JSON (checked)"),
    ("hdr_add", "hdrhistogram `add`"),
    ("hdr_to_v2", "hdrhistogram → V2 (binary)"),
    ("hdr_from_v2", "hdrhistogram ← V2"),
];

/// The latencies every measurement records, generated before any timing.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Latencies, seconds.
    pub seconds: Vec<f64>,
    /// The same, whole microseconds (hdrhistogram's unit here).
    pub micros: Vec<u64>,
    /// Index into [`SERIES`] of each record.
    pub series: Vec<u8>,
}

impl Stream {
    /// `len` lognormal latencies (median [`MEDIAN_S`], σ [`SIGMA`]) from
    /// `seed`, each with a series drawn by [`SERIES`]' weights.
    pub fn generate(len: usize, seed: u64) -> Stream {
        let mut rng = SplitMix(seed);
        let total: u32 = SERIES.iter().map(|s| s.3).sum();
        let mut seconds = Vec::with_capacity(len);
        let mut series = Vec::with_capacity(len);
        while seconds.len() < len {
            let (a, b) = rng.normal_pair();
            for z in [a, b] {
                if seconds.len() < len {
                    seconds.push(MEDIAN_S * exp(SIGMA * z));
                    let mut pick = (rng.next() % u64::from(total)) as u32;
                    let mut index = 0;
                    while pick >= SERIES[index].3 {
                        pick -= SERIES[index].3;
                        index += 1;
                    }
                    series.push(index as u8);
                }
            }
        }
        let micros = seconds.iter().map(|s| (s * 1e6).round() as u64).collect();
        Stream {
            seconds,
            micros,
            series,
        }
    }

    /// The exact value of rank `floor(q · (n − 1))` among `values` (the
    /// sketch's rank), 0 for none.
    pub fn exact(values: &[f64], q: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return 0.0;
        }
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }
}

/// splitmix64: small, seeded, the same on every target.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (−1, 1).
    fn signed_unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 52) as f64 - 1.0
    }

    /// Two standard normals (Marsaglia's polar method).
    fn normal_pair(&mut self) -> (f64, f64) {
        loop {
            let (u, v) = (self.signed_unit(), self.signed_unit());
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * ln(s) / s).sqrt();
                return (u * f, v * f);
            }
        }
    }
}

/// ln x for a normal positive x, from + − × ÷ alone (libm's differs by an
/// ulp between targets; this does not).
fn ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        exponent += 1;
    }
    // ln m = 2 atanh s, |s| ≤ 0.172.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let (mut term, mut sum) = (s, 0.0);
    for k in 0..24 {
        sum += term / f64::from(2 * k + 1);
        term *= s2;
    }
    2.0 * sum + exponent as f64 * std::f64::consts::LN_2
}

/// eˣ for |x| < 700, from + − × ÷ alone.
fn exp(x: f64) -> f64 {
    let k = (x / std::f64::consts::LN_2).round();
    let r = x - k * std::f64::consts::LN_2;
    let (mut term, mut sum) = (1.0, 1.0);
    for i in 1..28 {
        term *= r / f64::from(i);
        sum += term;
    }
    sum * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// One runtime's measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `native` or `wasm`.
    pub runtime: String,
    /// What was recorded.
    pub stream: StreamSummary,
    /// Records per second, one entry per [`RECORDS`] row run.
    pub records: Vec<Measurement>,
    /// Merges (and serializations) per second, one per [`MERGES`] row run.
    pub merges: Vec<Measurement>,
    /// Quantile estimates against the exact values.
    pub accuracy: Vec<Accuracy>,
    /// Sizes of the merged structures.
    pub sizes: Sizes,
}

/// The stream's parameters and exact quantiles (equal on every runtime).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSummary {
    /// Records in one pass.
    pub records: usize,
    /// The generator's seed.
    pub seed: u64,
    /// The lognormal's median, seconds.
    pub median_s: f64,
    /// The lognormal's σ.
    pub sigma: f64,
    /// The exact value at each of [`QUANTILES`], seconds.
    pub exact: Vec<f64>,
    /// The sum of the latencies, seconds (a checksum).
    pub sum_s: f64,
}

/// One row's timed rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// The row's id ([`RECORDS`] or [`MERGES`]).
    pub id: String,
    /// Operations (records, merges, round trips) in one pass.
    pub per_pass: u64,
    /// Passes per timed round (sized by a calibration).
    pub passes: u64,
    /// Timed rounds.
    pub rounds: u32,
    /// The median round's operations per second.
    pub median_per_s: f64,
    /// The fastest round's.
    pub best_per_s: f64,
    /// The slowest round's.
    pub worst_per_s: f64,
}

/// One structure's quantile estimates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// `sketch`, `prom`, `hdr` (the whole stream once), `sketch_merged`,
    /// `hdr_merged` (two halves of [`MERGE_RECORDS`] each, merged).
    pub id: String,
    /// The estimate at each of [`QUANTILES`], seconds.
    pub estimates: Vec<f64>,
    /// The exact values on the same records.
    pub exact: Vec<f64>,
    /// `(estimate − exact) / exact` for each.
    pub relative_errors: Vec<f64>,
}

/// The sizes of the structures the merge rows use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sizes {
    /// Buckets of one [`MERGE_RECORDS`]-record sketch.
    pub sketch_buckets: usize,
    /// Its bucket array, bytes (8 a bucket).
    pub sketch_bucket_bytes: usize,
    /// Its JSON, bytes.
    pub sketch_json_bytes: usize,
    /// The sketch of the whole stream: buckets.
    pub stream_sketch_buckets: usize,
    /// Counts in an hdrhistogram of [`HDR`]'s bounds (8 bytes each).
    pub hdr_counts: usize,
    /// One [`MERGE_RECORDS`]-record hdrhistogram in V2, bytes.
    pub hdr_v2_bytes: usize,
    /// prometheus-client classic buckets, `+Inf` included.
    pub prom_buckets: usize,
}

/// One timed row: `pass` does `per_pass` operations and returns something
/// to keep (so the work is not optimized away).
pub struct Row<'a> {
    /// The row's id ([`RECORDS`] or [`MERGES`]).
    pub id: &'static str,
    /// Operations in one pass.
    pub per_pass: u64,
    /// One pass.
    pub pass: Box<dyn FnMut() -> u64 + 'a>,
}

impl<'a> Row<'a> {
    /// A row of `per_pass` operations a pass.
    pub fn new(id: &'static str, per_pass: u64, pass: impl FnMut() -> u64 + 'a) -> Row<'a> {
        Row {
            id,
            per_pass,
            pass: Box::new(pass),
        }
    }

    /// Runs `passes` passes: seconds taken.
    fn time(&mut self, passes: u64) -> f64 {
        let started = Instant::now();
        for _ in 0..passes {
            std::hint::black_box((self.pass)());
        }
        started.elapsed().as_secs_f64().max(1e-12)
    }
}

/// Times every row: each is first warmed up and sized (passes doubled until
/// a batch takes an eighth of `round`, then as many as fill `round`), then
/// `rounds` timed rounds are taken in turns over all rows, so that a
/// neighbour's load on a shared machine hits every row alike.
pub fn measure(mut rows: Vec<Row<'_>>, round: Duration, rounds: u32) -> Vec<Measurement> {
    let target = round.as_secs_f64().max(1e-4);
    let passes: Vec<u64> = rows
        .iter_mut()
        .map(|row| {
            let mut batch = 1u64;
            loop {
                let elapsed = row.time(batch);
                if elapsed >= target / 8.0 || batch >= 1 << 40 {
                    break ((target * batch as f64 / elapsed) as u64).max(1);
                }
                batch *= 2;
            }
        })
        .collect();
    let mut rates = vec![Vec::new(); rows.len()];
    for _ in 0..rounds.max(1) {
        for ((row, &n), rates) in rows.iter_mut().zip(&passes).zip(&mut rates) {
            rates.push((row.per_pass * n) as f64 / row.time(n));
        }
    }
    rows.iter()
        .zip(passes)
        .zip(rates)
        .map(|((row, passes), mut rates)| {
            rates.sort_by(f64::total_cmp);
            Measurement {
                id: row.id.to_owned(),
                per_pass: row.per_pass,
                passes,
                rounds: rounds.max(1),
                median_per_s: rates[rates.len() / 2],
                best_per_s: rates[rates.len() - 1],
                worst_per_s: rates[0],
            }
        })
        .collect()
}

fn prom_classic() -> Histogram {
    let (start, factor, length) = PROM_BUCKETS;
    Histogram::new(exponential_buckets(start, factor, length))
}

fn hdr_histogram() -> Result<hdrhistogram::Histogram<u64>, String> {
    let (low, high, digits) = HDR;
    hdrhistogram::Histogram::new_with_bounds(low, high, digits).map_err(|e| format!("hdr: {e}"))
}

/// A label set of the prometheus-client family rows.
type Labels = Vec<(String, String)>;

/// Runs the rows named in `only` (all when `None`) on `stream`, and scores
/// every structure: one runtime's whole report.
pub fn run(
    runtime: &str,
    stream: &Stream,
    round: Duration,
    rounds: u32,
    only: Option<&[String]>,
) -> Result<Report, String> {
    if stream.seconds.len() < 2 * MERGE_RECORDS {
        return Err(format!(
            "the stream needs at least {} records",
            2 * MERGE_RECORDS
        ));
    }
    let wanted = |id: &str| only.is_none_or(|ids| ids.iter().any(|o| o == id));
    let n = stream.seconds.len() as u64;

    // Two sketches (and histograms) of MERGE_RECORDS records each, for the
    // merge rows, and their serialized forms, checked.
    let (first, second) = (
        &stream.seconds[..MERGE_RECORDS],
        &stream.seconds[MERGE_RECORDS..2 * MERGE_RECORDS],
    );
    let sketch_of = |values: &[f64]| {
        let mut s = LatencySketch::new();
        values.iter().for_each(|&v| s.record(v));
        s
    };
    let hdr_of = |values: &[u64]| -> Result<hdrhistogram::Histogram<u64>, String> {
        let mut h = hdr_histogram()?;
        values.iter().for_each(|&v| h.saturating_record(v));
        Ok(h)
    };
    let (a, b) = (sketch_of(first), sketch_of(second));
    let (hdr_a, hdr_b) = (
        hdr_of(&stream.micros[..MERGE_RECORDS])?,
        hdr_of(&stream.micros[MERGE_RECORDS..2 * MERGE_RECORDS])?,
    );
    let json = serde_json::to_string(&b).map_err(|e| format!("sketch to JSON: {e}"))?;
    let back: LatencySketch =
        serde_json::from_str(&json).map_err(|e| format!("sketch from JSON: {e}"))?;
    if QUANTILES.iter().any(|&q| back.quantile(q) != b.quantile(q)) || back.count() != b.count() {
        return Err("the sketch's JSON round trip changed its quantiles".to_owned());
    }
    let mut v2 = Vec::new();
    V2Serializer::new()
        .serialize(&hdr_b, &mut v2)
        .map_err(|e| format!("hdr to V2: {e:?}"))?;
    let hdr_back: hdrhistogram::Histogram<u64> = Deserializer::new()
        .deserialize(&mut v2.as_slice())
        .map_err(|e| format!("hdr from V2: {e:?}"))?;
    if hdr_back != hdr_b {
        return Err("hdrhistogram's V2 round trip changed it".to_owned());
    }

    let mut rows = Vec::new();
    for (id, _) in RECORDS.iter().chain(&MERGES) {
        let id: &'static str = id;
        if !wanted(id) {
            continue;
        }
        rows.push(match id {
            "sketch" => {
                let mut sketch = LatencySketch::new();
                Row::new(id, n, move || {
                    for &v in &stream.seconds {
                        sketch.record(v);
                    }
                    sketch.count()
                })
            }
            "recorder" | "recorder_flush" => {
                let recorder = Recorder::new();
                let at = Timestamp::from_millis(RECORDED_AT_MS);
                let flush = id == "recorder_flush";
                Row::new(id, n, move || {
                    let mut taken = 0;
                    for (&v, &s) in stream.seconds.iter().zip(&stream.series) {
                        let (route, method, status, _) = SERIES[usize::from(s)];
                        recorder.record(FUNCTION, route, method, status, v, at);
                        if flush && recorder.due(at, DEFAULT_FLUSH_EVERY) {
                            taken += std::hint::black_box(recorder.take(FUNCTION))
                                .map_or(0, |b| b.windows.len() as u64);
                        }
                    }
                    recorder.pending() + taken
                })
            }
            "prom" | "prom_native" => {
                let histogram = if id == "prom" {
                    prom_classic()
                } else {
                    Histogram::new_native(NativeHistogramConfig::default())
                };
                Row::new(id, n, move || {
                    for &v in &stream.seconds {
                        histogram.observe(v);
                    }
                    n
                })
            }
            "prom_family" => {
                let family: Family<Labels, Histogram, fn() -> Histogram> =
                    Family::new_with_constructor(prom_classic);
                let labels: Vec<Labels> = SERIES
                    .iter()
                    .map(|(route, method, status, _)| {
                        vec![
                            ("route".to_owned(), (*route).to_owned()),
                            ("method".to_owned(), (*method).to_owned()),
                            ("status".to_owned(), status.to_string()),
                        ]
                    })
                    .collect();
                Row::new(id, n, move || {
                    for (&v, &s) in stream.seconds.iter().zip(&stream.series) {
                        family.get_or_create(&labels[usize::from(s)]).observe(v);
                    }
                    n
                })
            }
            "hdr" => {
                let mut histogram = hdr_histogram()?;
                Row::new(id, n, move || {
                    for &us in &stream.micros {
                        histogram.saturating_record(us);
                    }
                    histogram.len()
                })
            }
            "sketch_merge" => {
                // The aggregator's pattern: batches merged into one window.
                let mut into = a.clone();
                let b = &b;
                Row::new(id, 1, move || {
                    into.merge(b);
                    into.count()
                })
            }
            "sketch_to_json" => {
                let mut out = Vec::with_capacity(json.len() * 2);
                let b = &b;
                Row::new(id, 1, move || {
                    out.clear();
                    serde_json::to_writer(&mut out, b).map_or(0, |()| out.len() as u64)
                })
            }
            "sketch_from_json" => {
                let json = json.as_str();
                Row::new(id, 1, move || {
                    serde_json::from_str::<LatencySketch>(json).map_or(0, |s| s.count())
                })
            }
            "hdr_add" => {
                let mut into = hdr_a.clone();
                let hdr_b = &hdr_b;
                Row::new(id, 1, move || match into.add(hdr_b) {
                    Ok(()) => into.len(),
                    Err(_) => 0,
                })
            }
            "hdr_to_v2" => {
                let mut out = Vec::with_capacity(v2.len() * 2);
                let mut serializer = V2Serializer::new();
                let hdr_b = &hdr_b;
                Row::new(id, 1, move || {
                    out.clear();
                    serializer
                        .serialize(hdr_b, &mut out)
                        .map_or(0, |len| len as u64)
                })
            }
            _ => {
                let mut deserializer = Deserializer::new();
                let v2 = v2.as_slice();
                Row::new(id, 1, move || {
                    deserializer
                        .deserialize::<u64, _>(&mut &v2[..])
                        .map_or(0, |h| h.len())
                })
            }
        });
    }
    let (records, merges): (Vec<Measurement>, Vec<Measurement>) = measure(rows, round, rounds)
        .into_iter()
        .partition(|m| RECORDS.iter().any(|(id, _)| *id == m.id));

    // Accuracy: each structure fed the stream once, untimed.
    let exact: Vec<f64> = {
        let mut sorted = stream.seconds.clone();
        sorted.sort_by(f64::total_cmp);
        QUANTILES
            .iter()
            .map(|q| sorted[(q * (sorted.len() - 1) as f64).floor() as usize])
            .collect()
    };
    let whole = sketch_of(&stream.seconds);
    let prom = prom_classic();
    stream.seconds.iter().for_each(|&v| prom.observe(v));
    let hdr = hdr_of(&stream.micros)?;
    let prom_buckets = prom_bucket_counts(&prom)?;
    let mut merged = a.clone();
    merged.merge(&b);
    let mut hdr_merged = hdr_a.clone();
    hdr_merged
        .add(&hdr_b)
        .map_err(|e| format!("hdr add: {e:?}"))?;
    let merged_exact: Vec<f64> = QUANTILES
        .iter()
        .map(|&q| Stream::exact(&stream.seconds[..2 * MERGE_RECORDS], q))
        .collect();
    let hdr_q = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e6;
    let score = |id: &str, exact: &[f64], estimate: &dyn Fn(f64) -> f64| {
        let estimates: Vec<f64> = QUANTILES.iter().map(|&q| estimate(q)).collect();
        Accuracy {
            id: id.to_owned(),
            relative_errors: estimates
                .iter()
                .zip(exact)
                .map(|(e, x)| (e - x) / x)
                .collect(),
            estimates,
            exact: exact.to_vec(),
        }
    };
    let accuracy = vec![
        score("sketch", &exact, &|q| whole.quantile(q).unwrap_or(f64::NAN)),
        score("prom", &exact, &|q| histogram_quantile(q, &prom_buckets)),
        score("hdr", &exact, &|q| hdr_q(&hdr, q)),
        score("sketch_merged", &merged_exact, &|q| {
            merged.quantile(q).unwrap_or(f64::NAN)
        }),
        score("hdr_merged", &merged_exact, &|q| hdr_q(&hdr_merged, q)),
    ];
    Ok(Report {
        runtime: runtime.to_owned(),
        stream: StreamSummary {
            records: stream.seconds.len(),
            seed: SEED,
            median_s: MEDIAN_S,
            sigma: SIGMA,
            exact,
            sum_s: stream.seconds.iter().sum(),
        },
        records,
        merges,
        accuracy,
        sizes: Sizes {
            sketch_buckets: b.buckets(),
            sketch_bucket_bytes: b.buckets() * 8,
            sketch_json_bytes: json.len(),
            stream_sketch_buckets: whole.buckets(),
            hdr_counts: hdr_b.distinct_values(),
            hdr_v2_bytes: v2.len(),
            prom_buckets: prom_buckets.len(),
        },
    })
}

/// A classic histogram's cumulative buckets `(le, count)`, read from its
/// text exposition (prometheus-client has no other way out).
pub fn prom_bucket_counts(histogram: &Histogram) -> Result<Vec<(f64, u64)>, String> {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register("latency_seconds", "bench", histogram.clone());
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| format!("prometheus text: {e}"))?;
    let mut buckets = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("latency_seconds_bucket{le=\"") else {
            continue;
        };
        let bad = || format!("prometheus text: {line:?}");
        let (le, count) = rest.split_once("\"}").ok_or_else(bad)?;
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().map_err(|_| bad())?
        };
        buckets.push((le, count.trim().parse().map_err(|_| bad())?));
    }
    if buckets.is_empty() {
        return Err(format!("prometheus text has no buckets:\n{text}"));
    }
    Ok(buckets)
}

/// PromQL's `histogram_quantile(q, …)` on cumulative buckets: linear
/// interpolation inside the bucket holding rank `q · count`.
pub fn histogram_quantile(q: f64, buckets: &[(f64, u64)]) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return f64::NAN;
    };
    let rank = q * total as f64;
    let Some(i) = buckets.iter().position(|&(_, c)| c as f64 >= rank) else {
        return f64::NAN;
    };
    let (upper, count) = buckets[i];
    if upper.is_infinite() {
        // The highest finite bound, as PromQL answers.
        return if i > 0 { buckets[i - 1].0 } else { f64::NAN };
    }
    let (lower, below) = if i == 0 {
        (0.0, 0.0)
    } else {
        (buckets[i - 1].0, buckets[i - 1].1 as f64)
    };
    if count as f64 <= below {
        return upper;
    }
    lower + (upper - lower) * (rank - below) / (count as f64 - below)
}

/// `12.3 M` style for rates.
fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1} M", v / 1e6)
    } else {
        thousands(v)
    }
}

/// ns, µs or ms for one operation taking `seconds`.
fn duration(seconds: f64) -> String {
    let ns = seconds * 1e9;
    if ns < 10_000.0 {
        format!("{} ns", thousands(ns))
    } else if ns < 10_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

fn percent(e: f64) -> String {
    if e.is_nan() {
        "–".to_owned()
    } else {
        format!("{:+.2} %", e * 100.0)
    }
}

fn bytes(n: usize) -> String {
    if n >= 10_240 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{} B", thousands(n as f64))
    }
}

/// The markdown tables (records per second, merge cost) and the goal line,
/// from the native and wasm reports (at least one of them).
pub fn tables(reports: &[Report]) -> Result<String, String> {
    let of = |runtime: &str| reports.iter().find(|r| r.runtime == runtime);
    let first = reports.first().ok_or("no reports")?;
    if let Some(odd) = reports.iter().find(|r| r.stream != first.stream) {
        return Err(format!(
            "the {} and {} runs saw different streams",
            first.runtime, odd.runtime
        ));
    }
    let reference = of("native").unwrap_or(first);
    let (native, wasm) = (of("native"), of("wasm"));
    let find = |r: Option<&Report>, id: &str, merge: bool| {
        r.and_then(|r| {
            let list = if merge { &r.merges } else { &r.records };
            list.iter().find(|m| m.id == id).map(|m| m.best_per_s)
        })
    };
    let accuracy = |id: &str| reference.accuracy.iter().find(|a| a.id == id);
    let ratio = |n: Option<f64>, w: Option<f64>| match (n, w) {
        (Some(n), Some(w)) if n > 0.0 => format!("{:.2}", w / n),
        _ => "–".to_owned(),
    };
    let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or_else(|| "–".to_owned(), f);
    let errors = |id: Option<&str>| {
        let a = id.and_then(accuracy);
        (0..QUANTILES.len())
            .map(|i| {
                a.and_then(|a| a.relative_errors.get(i).copied())
                    .map_or_else(|| "–".to_owned(), percent)
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let s = &reference.stream;
    let mut out = String::from(
        "## Latency records per second\n\n\
         | records into | native records/s | wasm records/s | wasm/native | p50 error | p99 \
         error | p99.9 error |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (id, label) in RECORDS {
        let (n, w) = (find(native, id, false), find(wasm, id, false));
        if n.is_none() && w.is_none() {
            continue;
        }
        let scored = match id {
            "sketch" => Some("sketch"),
            "prom" | "prom_family" => Some("prom"),
            "hdr" => Some("hdr"),
            _ => None,
        };
        out.push_str(&format!(
            "| {label} | {} | {} | {} | {} |\n",
            cell(n, &thousands),
            cell(w, &thousands),
            ratio(n, w),
            errors(scored),
        ));
    }
    let exact: Vec<String> = s
        .exact
        .iter()
        .map(|v| format!("{:.2} ms", v * 1e3))
        .collect();
    out.push_str(&format!(
        "\nStream: {} latencies, lognormal (median {} ms, σ {}), seed {:#x}, generated before \
         timing; exact p50/p99/p99.9 {}. Error: (estimate − exact) / exact of the value of rank \
         ⌊q·(n−1)⌋, each structure fed the stream once; prometheus-client by PromQL's \
         histogram_quantile on its buckets (1 ms·2ᵏ, k < 15), hdrhistogram's value_at_quantile \
         (highest equivalent value). The recorder rows fill one \
         LatencySketch per series (the sketch's error); the native histogram's buckets leave \
         prometheus-client only as protobuf (each spans a ratio of 2^⅛ ≈ 1.09).\n",
        thousands(s.records as f64),
        s.median_s * 1e3,
        s.sigma,
        s.seed,
        exact.join(" / "),
    ));

    let z = &reference.sizes;
    out.push_str(
        "\n## Merge cost\n\n| merge (two 10,000-record structures) | size | native | wasm | wasm/native \
         time | p99 error after merge |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for (id, label) in MERGES {
        let (n, w) = (find(native, id, true), find(wasm, id, true));
        if n.is_none() && w.is_none() {
            continue;
        }
        let size = match id {
            "sketch_merge" => format!(
                "{} buckets, {}",
                z.sketch_buckets,
                bytes(z.sketch_bucket_bytes)
            ),
            "sketch_to_json" | "sketch_from_json" => bytes(z.sketch_json_bytes),
            "hdr_add" => format!(
                "{} counts, {}",
                thousands(z.hdr_counts as f64),
                bytes(z.hdr_counts * 8)
            ),
            _ => bytes(z.hdr_v2_bytes),
        };
        let merged = match id {
            "sketch_merge" => accuracy("sketch_merged"),
            "hdr_add" => accuracy("hdr_merged"),
            _ => None,
        }
        .and_then(|a| a.relative_errors.get(1).copied())
        .map_or_else(|| "–".to_owned(), percent);
        let per = |v: f64| duration(1.0 / v);
        out.push_str(&format!(
            "| {label} | {size} | {} | {} | {} | {merged} |\n",
            cell(n, &per),
            cell(w, &per),
            match (n, w) {
                // Time per operation: wasm/native of the durations.
                (Some(n), Some(w)) if w > 0.0 => format!("{:.2}", n / w),
                _ => "–".to_owned(),
            },
        ));
    }
    out.push_str(&format!(
        "\nTime per operation. The sketches hold records 0–9,999 and 10,000–19,999 of the \
         stream; merge: the second added again and again into one that started as the \
         first (the aggregator's pattern); JSON into a reused buffer, from a string; \
         hdrhistogram likewise, V2 without deflate. The whole stream's sketch has {} buckets; \
         prometheus-client's classic histogram {} and cannot merge (Prometheus sums buckets \
         at query time).\n",
        z.stream_sketch_buckets, z.prom_buckets
    ));

    let goal =
        |id: &str, label: &str| match wasm.and_then(|r| r.records.iter().find(|m| m.id == id)) {
            Some(m) => format!(
                "{label} {} records/s in wasm (fastest round; median {}): **{}**",
                rate(m.best_per_s),
                rate(m.median_per_s),
                match (m.best_per_s >= GOAL, m.median_per_s >= GOAL) {
                    (true, true) => "met",
                    (true, false) => "met by the fastest round, not by the median",
                    _ => "not met",
                }
            ),
            None => format!("{label}: not measured in wasm"),
        };
    out.push_str(&format!(
        "\nGoal ≥ {} records/s per core in wasm: {}; {}.\n",
        rate(GOAL),
        goal("sketch", "`LatencySketch::record`"),
        goal("recorder", "`Recorder::record`"),
    ));
    if let (Some(n), Some(w)) = (native, wasm)
        && n.accuracy == w.accuracy
    {
        out.push_str("\nThe wasm run's estimates equal the native run's, bit for bit.\n");
    } else if let (Some(n), Some(w)) = (native, wasm) {
        out.push_str("\nThe native and wasm estimates differ:\n");
        for (a, b) in n.accuracy.iter().zip(&w.accuracy) {
            if a != b {
                out.push_str(&format!(
                    "- {}: native {:?}, wasm {:?}\n",
                    a.id, a.estimates, b.estimates
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_matches_libm() {
        for x in [1e-12, 0.001, 0.5, 0.999, 1.0, 1.5, 2.0, 10.0, 1e6] {
            assert!(
                (ln(x) - x.ln()).abs() <= 1e-14 * x.ln().abs().max(1.0),
                "{x}"
            );
        }
        for x in [-20.0, -3.3, -0.1, 0.0, 0.7, 2.5, 20.0] {
            assert!((exp(x) / x.exp() - 1.0).abs() < 1e-14, "{x}");
        }
    }

    #[test]
    fn the_stream_is_lognormal_and_seeded() {
        let s = Stream::generate(100_001, SEED);
        assert_eq!(s.seconds.len(), 100_001);
        assert_eq!(s.series.len(), 100_001);
        let median = Stream::exact(&s.seconds, 0.5);
        assert!((median / MEDIAN_S - 1.0).abs() < 0.02, "{median}");
        // p99 of a lognormal: median · e^(2.326 σ).
        let p99 = Stream::exact(&s.seconds, 0.99);
        assert!((p99 / (MEDIAN_S * 10.24) - 1.0).abs() < 0.1, "{p99}");
        assert_eq!(Stream::generate(1000, SEED).seconds, s.seconds[..1000]);
        assert!(s.series.iter().all(|&i| usize::from(i) < SERIES.len()));
    }

    #[test]
    fn histogram_quantile_interpolates() {
        let b = [(1.0, 10), (2.0, 30), (f64::INFINITY, 40)];
        assert_eq!(histogram_quantile(0.25, &b), 1.0);
        assert_eq!(histogram_quantile(0.5, &b), 1.5);
        assert_eq!(histogram_quantile(0.9, &b), 2.0);
        assert_eq!(histogram_quantile(0.1, &b), 0.4);
    }

    #[test]
    fn a_run_measures_scores_and_tabulates() {
        let stream = Stream::generate(30_000, SEED);
        let report = run("native", &stream, Duration::from_millis(2), 1, None).unwrap();
        assert_eq!(report.records.len(), RECORDS.len());
        assert_eq!(report.merges.len(), MERGES.len());
        assert!(
            report
                .records
                .iter()
                .all(|m| m.best_per_s >= m.median_per_s)
        );
        assert!(report.merges.iter().all(|m| m.worst_per_s > 0.0));
        let sketch = &report.accuracy[0];
        assert!(
            sketch.relative_errors.iter().all(|e| e.abs() <= 0.01),
            "{sketch:?}"
        );
        let merged = &report.accuracy[3];
        assert!(
            merged.relative_errors.iter().all(|e| e.abs() <= 0.01),
            "{merged:?}"
        );
        assert!(report.sizes.prom_buckets == 16, "{:?}", report.sizes);
        // As `table` reads them: both through JSON.
        let json = serde_json::to_string(&report).unwrap();
        let report: Report = serde_json::from_str(&json).unwrap();
        let wasm = Report {
            runtime: "wasm".into(),
            ..serde_json::from_str(&json).unwrap()
        };
        let t = tables(&[report.clone(), wasm]).unwrap();
        assert!(t.contains("| `LatencySketch::record` |"), "{t}");
        assert!(t.contains("hdrhistogram `add`"), "{t}");
        assert!(t.contains("Goal ≥ 10.0 M records/s"), "{t}");
        assert!(!t.contains("differ"), "{t}");
        assert!(t.contains("bit for bit"), "{t}");
        let mut other = report.clone();
        other.runtime = "wasm".into();
        other.stream.sum_s += 1.0;
        assert!(tables(&[report, other]).is_err());
    }
}
