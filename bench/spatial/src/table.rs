//! The markdown table: the native and wasm reports beside PostGIS's
//! (`postgis.py bench`), the tile builder's summary (`spatial-tiles build
//! --json-summary`) and the runner's memory figures, with the goals.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bench_support::thousands;
use serde::{Deserialize, Serialize};

use crate::RunnerStats;
use crate::ingest::IngestReport;
use crate::queries::{KINDS, QueryReport, TypeResult};

/// The speed-up over PostGIS the wasm build should reach at p50.
pub const SPEEDUP_GOAL: f64 = 10.0;
/// The ingest rate to reach, assets per second.
pub const INGEST_GOAL: f64 = 100_000.0;
/// The memory one isolate may use, bytes (64 MiB).
pub const MEMORY_GOAL: u64 = 64 << 20;

/// What `postgis.py bench` wrote (the fields used).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PostGis {
    /// `server_version`.
    #[serde(default)]
    pub postgresql_version: String,
    /// `postgis_lib_version()`.
    #[serde(default)]
    pub postgis_version: String,
    /// Rows loaded.
    #[serde(default)]
    pub rows: u64,
    /// Runs measured per query.
    #[serde(default)]
    pub repeat: u32,
    /// COPY, seconds.
    #[serde(default)]
    pub load_s: f64,
    /// Primary key and GiST indexes, seconds.
    #[serde(default)]
    pub index_s: f64,
    /// EXPLAIN ANALYZE execution time per type (`radius`, `bbox`,
    /// `polygon`, `knn`, `all`).
    pub server_execution_ms: BTreeMap<String, PgLatency>,
    /// Client wall time (execute and fetch) per type.
    #[serde(default)]
    pub client_round_trip_ms: BTreeMap<String, PgLatency>,
}

/// One of PostGIS's summaries, milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PgLatency {
    /// Measured runs.
    pub count: usize,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Mean.
    pub mean_ms: Option<f64>,
}

/// What `spatial-tiles build --json-summary` wrote (the fields used).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildSummary {
    /// Assets written.
    pub assets: u64,
    /// Features rejected.
    #[serde(default)]
    pub rejected: u64,
    /// Tiles written.
    pub tiles: u64,
    /// Their bytes.
    pub tile_bytes: u64,
    /// The manifest's bytes.
    #[serde(default)]
    pub manifest_bytes: u64,
    /// The whole build, seconds.
    pub elapsed_s: f64,
    /// Assets per second over the whole build.
    pub assets_per_s: f64,
}

/// The wasm run on a larger dataset.
#[derive(Debug, Clone)]
pub struct Large {
    /// Its query report.
    pub wasm: QueryReport,
    /// Its memory.
    pub memory: RunnerStats,
    /// Its tile build.
    pub build: BuildSummary,
}

/// Everything the table shows.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Queries per type in the file.
    pub per_type: usize,
    /// Queries, native.
    pub native: QueryReport,
    /// Queries, wasm.
    pub wasm: QueryReport,
    /// The wasm query run's memory.
    pub wasm_memory: RunnerStats,
    /// Ingest, native.
    pub native_ingest: IngestReport,
    /// Ingest, wasm.
    pub wasm_ingest: IngestReport,
    /// The wasm ingest run's memory.
    pub wasm_ingest_memory: RunnerStats,
    /// PostGIS on the same assets and queries.
    pub postgis: PostGis,
    /// The tile build of the dataset.
    pub build: BuildSummary,
    /// The wasm run on a larger dataset, if any.
    pub large: Option<Large>,
}

/// Microseconds as a short number.
fn us(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        thousands(v)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "not met" }
}

fn of<'a>(report: &'a QueryReport, kind: &str) -> Option<&'a TypeResult> {
    report.types.iter().find(|t| t.kind == kind)
}

fn pair(t: Option<&TypeResult>, cold: bool) -> String {
    match t {
        Some(t) if cold && t.cold.count > 0 => {
            format!("{} / {}", us(t.cold.p50_us), us(t.cold.p99_us))
        }
        Some(t) if !cold && t.warm.count > 0 => {
            format!("{} / {}", us(t.warm.p50_us), us(t.warm.p99_us))
        }
        _ => "–".to_owned(),
    }
}

/// PostGIS's p50 and p99 for a type, µs.
fn pg(map: &BTreeMap<String, PgLatency>, name: &str) -> Option<(f64, f64)> {
    let l = map.get(name)?;
    Some((l.p50_ms? * 1e3, l.p99_ms? * 1e3))
}

/// The speed-up of the wasm p50 over PostGIS's, per type: warm or cold.
fn speedups(i: &Inputs, cold: bool) -> Vec<(&'static str, Option<f64>)> {
    KINDS
        .iter()
        .map(|(kind, pg_name)| {
            let ours = of(&i.wasm, kind).filter(|t| t.warm.count > 0);
            let theirs = pg(&i.postgis.server_execution_ms, pg_name);
            let ratio = match (ours, theirs) {
                (Some(o), Some((p50, _))) => {
                    let ours = if cold { o.cold.p50_us } else { o.warm.p50_us };
                    Some(p50 / ours.max(1e-9))
                }
                _ => None,
            };
            (*kind, ratio)
        })
        .collect()
}

fn times(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{}×", thousands(r)),
        Some(r) => format!("{r:.1}×"),
        None => "–".to_owned(),
    }
}

/// The table and its lines, markdown.
pub fn render(i: &Inputs) -> String {
    let mut out = String::new();
    let assets = i.wasm.dataset.assets;
    let _ = writeln!(
        out,
        "## Spatial queries: {} assets, {} queries per type (latency in µs)\n",
        thousands(assets as f64),
        i.per_type
    );
    out.push_str(
        "| query | ours native p50 / p99 | ours wasm p50 / p99 | ours wasm cold p50 / p99 | \
         PostGIS p50 / p99 (server exec) | speed-up wasm vs PostGIS, p50: warm (cold) | \
         PostGIS client round trip p50 | results per query: page (matched) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let ratios = speedups(i, false);
    let cold_ratios = speedups(i, true);
    for (((kind, pg_name), (_, ratio)), (_, cold_ratio)) in
        KINDS.iter().zip(&ratios).zip(&cold_ratios)
    {
        let wasm = of(&i.wasm, kind);
        let theirs = pg(&i.postgis.server_execution_ms, pg_name)
            .map_or("–".to_owned(), |(p50, p99)| {
                format!("{} / {}", us(p50), us(p99))
            });
        let round_trip = pg(&i.postgis.client_round_trip_ms, pg_name)
            .map_or("–".to_owned(), |(p50, _)| us(p50));
        let results = wasm.map_or("–".to_owned(), |t| {
            format!("{:.1} ({})", t.mean_returned, thousands(t.mean_matched))
        });
        let _ = writeln!(
            out,
            "| {kind} | {} | {} | {} | {theirs} | {} ({}) | {round_trip} | {results} |",
            pair(of(&i.native, kind), false),
            pair(wasm, false),
            pair(wasm, true),
            times(*ratio),
            times(*cold_ratio),
        );
    }
    out.push('\n');

    // Tile loads.
    let load = |r: &QueryReport| {
        let t = &r.tile_load;
        format!(
            "read + decode p50 {} µs, p99 {} µs; decode alone p50 {} µs, p99 {} µs",
            us(t.read_decode.p50_us),
            us(t.read_decode.p99_us),
            us(t.decode.p50_us),
            us(t.decode.p99_us)
        )
    };
    let _ = writeln!(
        out,
        "- **Tile load time** (per tile; {} tiles sampled, mean {:.0} KB, {} assets): wasm {}; native {}.",
        i.wasm.tile_load.tiles,
        i.wasm.tile_load.mean_bytes / 1e3,
        thousands(i.wasm.tile_load.mean_assets),
        load(&i.wasm),
        load(&i.native)
    );

    // Memory.
    let per_million = |bytes: u64, assets: u64| bytes as f64 * 1e6 / (assets.max(1) as f64);
    let _ = writeln!(
        out,
        "- **Memory per million assets**: tiles in the store {} per 1M assets ({:.0} bytes/asset, \
         {} tiles for {} assets); wasm peak linear memory {} after all the queries \
         (tile cache budget {}, manifest {} KiB in memory), {} in the separate ingest run \
         ({} assets held at once).",
        mb(per_million(i.build.tile_bytes, i.build.assets)),
        i.build.tile_bytes as f64 / i.build.assets.max(1) as f64,
        thousands(i.build.tiles as f64),
        thousands(i.build.assets as f64),
        mib(i.wasm_memory.peak_linear_memory_bytes),
        mib(i.wasm.settings.tile_cache_bytes as u64),
        i.wasm.dataset.manifest_memory_bytes / 1024,
        mib(i.wasm_ingest_memory.peak_linear_memory_bytes),
        thousands(i.wasm_ingest.assets as f64),
    );

    // Ingest.
    let _ = writeln!(
        out,
        "- **Ingest rate**: native CLI (`spatial-tiles build`: parse + validate + sort + tile + \
         write, {} assets) {} assets/s; native engine (`read_all` + `partition` + \
         `Tile::encode`, {} assets in memory) {} assets/s; wasm engine (the same) {} assets/s.",
        thousands(i.build.assets as f64),
        thousands(i.build.assets_per_s),
        thousands(i.native_ingest.assets as f64),
        thousands(i.native_ingest.assets_per_s),
        thousands(i.wasm_ingest.assets_per_s),
    );

    // Goals.
    let shown: Vec<String> = ratios
        .iter()
        .map(|(k, r)| format!("{k} {}", times(*r)))
        .collect();
    let all_fast = ratios
        .iter()
        .all(|(_, r)| r.is_some_and(|r| r >= SPEEDUP_GOAL));
    let _ = writeln!(
        out,
        "- **Goals**: ≥ {SPEEDUP_GOAL}× PostGIS p50 in wasm: {} ({}); ≥ {} assets/s ingest: \
         native CLI {}, native engine {}, wasm engine {}; ≤ {} per isolate (wasm peak linear \
         memory, queries): {} ({}; the ingest run: {}, {}).",
        met(all_fast),
        shown.join(", "),
        thousands(INGEST_GOAL),
        met(i.build.assets_per_s >= INGEST_GOAL),
        met(i.native_ingest.assets_per_s >= INGEST_GOAL),
        met(i.wasm_ingest.assets_per_s >= INGEST_GOAL),
        mib(MEMORY_GOAL),
        met(i.wasm_memory.peak_linear_memory_bytes <= MEMORY_GOAL),
        mib(i.wasm_memory.peak_linear_memory_bytes),
        mib(i.wasm_ingest_memory.peak_linear_memory_bytes),
        met(i.wasm_ingest_memory.peak_linear_memory_bytes <= MEMORY_GOAL),
    );

    if let Some(large) = &i.large {
        out.push('\n');
        out.push_str(&large_table(i, large));
    }

    out.push('\n');
    out.push_str(&notes(i));
    out
}

fn large_table(i: &Inputs, large: &Large) -> String {
    let mut out = String::from(
        "| dataset (wasm) | tiles | tile bytes in the store | wasm peak linear memory | \
         radius p50 | bbox p50 | polygon p50 | nearest p50 | cold p50 (radius / bbox / polygon / nearest) | \
         refused as too broad | CLI ingest |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (report, memory, build) in [
        (&i.wasm, &i.wasm_memory, &i.build),
        (&large.wasm, &large.memory, &large.build),
    ] {
        let p50 = |kind: &str, cold: bool| {
            of(report, kind)
                .filter(|t| t.warm.count > 0)
                .map_or("–".to_owned(), |t| {
                    us(if cold { t.cold.p50_us } else { t.warm.p50_us })
                })
        };
        let cold: Vec<String> = KINDS.iter().map(|(k, _)| p50(k, true)).collect();
        let refused: usize = report.types.iter().map(|t| t.refused).sum();
        let _ = writeln!(
            out,
            "| {} assets | {} | {} | {} | {} | {} | {} | {} | {} | {refused} | {} assets/s |",
            thousands(report.dataset.assets as f64),
            thousands(report.dataset.tiles as f64),
            mb(report.dataset.tile_bytes as f64),
            mib(memory.peak_linear_memory_bytes),
            p50("radius", false),
            p50("bbox", false),
            p50("polygon", false),
            p50("nearest", false),
            cold.join(" / "),
            thousands(build.assets_per_s),
        );
    }
    let _ = writeln!(
        out,
        "\nThe same {} queries on both datasets (placed from the smaller one, whose assets the larger \
         one holds as a prefix); latency in µs, warm unless marked cold. Refused: queries touching \
         more than {} tiles (HTTP 422 `query-too-broad`), left out of that row's figures{}.",
        i.wasm.types.iter().map(|t| t.queries).sum::<usize>(),
        large.wasm.settings.max_tiles,
        {
            let by_type: Vec<String> = large
                .wasm
                .types
                .iter()
                .filter(|t| t.refused > 0)
                .map(|t| format!("{} {}", t.kind, t.refused))
                .collect();
            if by_type.is_empty() {
                String::new()
            } else {
                format!(" (larger dataset: {})", by_type.join(", "))
            }
        }
    );
    out
}

fn notes(i: &Inputs) -> String {
    let w = &i.wasm;
    let refused: Vec<String> = w
        .types
        .iter()
        .filter(|t| t.refused > 0)
        .map(|t| format!("{} {}", t.kind, t.refused))
        .collect();
    let reads: Vec<String> = w
        .types
        .iter()
        .map(|t| format!("{} {:.2}", t.kind, t.warm_tile_loads))
        .collect();
    let tiles: Vec<String> = w
        .types
        .iter()
        .map(|t| format!("{} {:.1}", t.kind, t.mean_tiles))
        .collect();
    let differ = i
        .native
        .digests
        .iter()
        .filter(|(id, d)| w.digests.get(*id) != Some(d))
        .count();
    let mut out = String::new();
    let _ = write!(
        out,
        "Ours: `request::parse_query` with the default policy but for `max_limit`/`max_k` raised \
         and no default minimum confidence; radius, bbox and polygon queries ask for one page of \
         `limit` {} (as a client would; every match is still visited and counted: \"matched\"), \
         nearest for its `k` (1, 5, 10 or 50) with `max_distance_m` the whole Earth (the \
         policy's default reach is 1 km; PostGIS's KNN has none). Then what `SpatialQuery::run` does: head and \
         manifest through `DatasetCache`, `query::run` reading tiles through its LRU \
         ({} budget, the policy's), at most {} tiles per query. The store is the directory \
         `spatial-tiles build` wrote (local files, in the page cache: a platform KV read costs \
         more). Warm: one cache for the whole run, each query once untimed, then {} timed runs in \
         a row; store reads per warm run (tiles the cache had evicted): {}. Cold: each query's \
         first run on an empty cache (head and manifest loaded before the clock), every tile read \
         from the store and decoded; tiles per query: {}. ",
        w.settings.page_limit,
        mib(w.settings.tile_cache_bytes as u64),
        w.settings.max_tiles,
        w.settings.rounds,
        reads.join(", "),
        tiles.join(", "),
    );
    if refused.is_empty() {
        let _ = write!(out, "No query was refused as too broad. ");
    } else {
        let _ = write!(
            out,
            "Refused as too broad (more than {} tiles; HTTP 422, in no latency figure here, \
             answered by PostGIS): {}. ",
            w.settings.max_tiles,
            refused.join(", ")
        );
    }
    let _ = write!(
        out,
        "Native and wasm answers (matched count and page ids): {}. std::time::Instant inside the \
         program; wasm32-wasip2 under wasmtime 48.0.8 (Cranelift, opt-level speed; bench-runner \
         itself built at opt-level 3, as tiles come in through WASI file reads), the program \
         bench-o3 (opt-level 3, LTO) on both; peak linear memory: the largest size bench-runner's \
         ResourceLimiter saw the guest's memory reach (it never shrinks).\n\n",
        if differ == 0 {
            format!("identical for all {} queries", i.native.digests.len())
        } else {
            format!("differ for {differ} queries")
        }
    );
    let _ = writeln!(
        out,
        "PostGIS {} (PostgreSQL {}), `postgis.py bench --repeat {}` on the same {} rows (load {:.0} s, \
         indexes {:.0} s): per query one warm-up, then {} runs timed by EXPLAIN (ANALYZE, TIMING \
         OFF) \"Execution Time\" (server side, no planning, no transfer) and {} by the client's \
         wall time over the unix socket (the round-trip column). Not the same result size: \
         postgis.py's radius, bbox and polygon queries have no LIMIT and no ORDER BY, so PostGIS \
         returns every match (the \"matched\" mean) where ours returns a page of at most {} \
         (radius nearest first, others by id) and counts the rest; nearest is `ORDER BY geog <-> q \
         LIMIT k` there (sphere distance order) against the spheroid k nearest here. Speed-up: \
         PostGIS p50 ÷ ours wasm warm p50.",
        i.postgis.postgis_version,
        i.postgis.postgresql_version,
        i.postgis.repeat,
        thousands(i.postgis.rows as f64),
        i.postgis.load_s,
        i.postgis.index_s,
        i.postgis.repeat,
        i.postgis.repeat,
        w.settings.page_limit,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Latency;
    use crate::queries::{DatasetInfo, Settings, TileLoad};

    fn report(runtime: &str, p50_us: f64) -> QueryReport {
        let latency = Latency {
            count: 10,
            p50_us,
            p99_us: p50_us * 10.0,
            mean_us: p50_us * 2.0,
        };
        QueryReport {
            runtime: runtime.to_owned(),
            dataset: DatasetInfo {
                assets: 1_000_000,
                tiles: 900,
                tile_bytes: 130_000_000,
                manifest_memory_bytes: 100_000,
            },
            settings: Settings {
                rounds: 5,
                page_limit: 100,
                tile_cache_bytes: 32 << 20,
                max_tiles: 256,
                policy_max_tiles: 256,
            },
            types: KINDS
                .iter()
                .map(|(kind, _)| TypeResult {
                    kind: (*kind).to_owned(),
                    queries: 2,
                    cold: latency.clone(),
                    warm: latency.clone(),
                    ..TypeResult::default()
                })
                .collect(),
            tile_load: TileLoad::default(),
            digests: [("r0".to_owned(), 1)].into(),
            elapsed_s: 1.0,
        }
    }

    #[test]
    fn renders_goals() {
        let pg = |ms: f64| PgLatency {
            count: 6,
            p50_ms: Some(ms),
            p99_ms: Some(ms * 3.0),
            mean_ms: Some(ms),
        };
        let postgis = PostGis {
            server_execution_ms: KINDS
                .iter()
                .map(|(_, n)| ((*n).to_owned(), pg(1.0)))
                .collect(),
            ..PostGis::default()
        };
        let build = BuildSummary {
            assets: 1_000_000,
            tiles: 900,
            tile_bytes: 130_000_000,
            assets_per_s: 250_000.0,
            ..BuildSummary::default()
        };
        let inputs = Inputs {
            per_type: 2,
            native: report("native", 20.0),
            wasm: report("wasm", 50.0),
            wasm_memory: RunnerStats {
                peak_linear_memory_bytes: 40 << 20,
                ..RunnerStats::default()
            },
            native_ingest: IngestReport::default(),
            wasm_ingest: IngestReport::default(),
            wasm_ingest_memory: RunnerStats::default(),
            postgis,
            build: build.clone(),
            large: Some(Large {
                wasm: report("wasm", 60.0),
                memory: RunnerStats::default(),
                build,
            }),
        };
        let text = render(&inputs);
        assert!(text.contains(
            "| radius | 20.0 / 200 | 50.0 / 500 | 50.0 / 500 | 1,000 / 3,000 | 20.0× (20.0×) |"
        ));
        assert!(text.contains("PostGIS p50 in wasm: met"));
        assert!(text.contains("native CLI met, native engine not met"));
        assert!(text.contains("queries): met (40.0 MiB"));
        assert!(text.contains("| 1,000,000 assets | 900 |"));
        assert!(text.contains("identical for all 1 queries"));
    }
}
