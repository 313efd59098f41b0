//! Query latency per type, cold and warm, and tile load time.
//!
//! Each query of a `queries.py` file (`{"id", "type", ...}`, the JSON
//! `POST /assets/query` takes) is read by
//! [`parse_query`](spatial_query::request::parse_query) with the default
//! policy, but for `max_limit` and `max_k` raised and no default minimum
//! confidence; queries other than nearest get `limit` [`PAGE_LIMIT`] (one
//! page, as a client asks) unless they set one, nearest queries reach the
//! whole Earth unless they set `max_distance_m` (the k nearest anywhere,
//! as PostGIS's KNN finds them). Answering a query is what
//! `SpatialQuery::run` does: the dataset's current head and manifest
//! through a [`DatasetCache`], then [`query::run`] with its tiles read
//! through the same cache (LRU within `tile_cache_bytes`).
//!
//! - Cold: each query once on a fresh cache (its head and manifest loaded
//!   before the clock starts), so every tile it touches is read from the
//!   store and decoded.
//! - Warm: one cache for the whole run, as an isolate keeps it; each query
//!   once untimed, then `rounds` timed runs in a row (as `postgis.py bench`
//!   repeats each query after a warm-up). A query touching more tiles than
//!   the budget holds reads some again every time: counted in
//!   `warm_tile_loads`.
//! - Tile loads: a sample of the manifest's tiles, each read from the store
//!   and decoded, then decoded again alone.

use std::collections::BTreeMap;
use std::time::Instant;

use edge_core::{Config, EdgeFunction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spatial_query::SpatialQuery;
use spatial_query::dataset::DatasetCache;
use spatial_query::geodesy::MAX_DISTANCE_M;
use spatial_query::policy::Section;
use spatial_query::query::{self, Limits, Page, Query, QueryError};
use spatial_query::request::parse_query;
use spatial_query::tile::Tile;

use crate::store::FileStore;
use crate::{Latency, block_on};

/// The page size of queries other than nearest.
pub const PAGE_LIMIT: usize = 100;

/// The query types, in table order: the name here and in `queries.py`.
pub const KINDS: [(&str, &str); 4] = [
    ("radius", "radius"),
    ("bbox", "bbox"),
    ("polygon", "polygon"),
    ("nearest", "knn"),
];

/// One query of the file.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its id in the file.
    pub id: String,
    /// Its type (a name of [`KINDS`]).
    pub kind: &'static str,
    /// The query as the function reads it.
    pub query: Query,
}

/// The policy of the run: the function's built-in one, `max_limit` and
/// `max_k` raised to their largest, no default minimum confidence.
pub fn bench_policy() -> Result<Section, String> {
    let config = Config::new(SpatialQuery::DEFAULT_POLICY);
    let mut policy = Section::from_config(&config).map_err(|e| e.to_string())?;
    policy.max_limit = 10_000;
    policy.max_k = 10_000;
    policy.fusion_min_confidence = 0.0;
    Ok(policy)
}

/// Reads a `queries.py` file (JSON lines).
pub fn parse_cases(text: &str, policy: &Section) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |e: String| format!("queries line {}: {e}", n + 1);
        let value: Value = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        let Value::Object(mut fields) = value else {
            return Err(at("not a JSON object".to_owned()));
        };
        let id = fields
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let given = fields.get("type").and_then(Value::as_str).unwrap_or("");
        let kind = KINDS
            .iter()
            .find(|(ours, file)| given == *ours || given == *file)
            .map(|(ours, _)| *ours)
            .ok_or_else(|| at(format!("unknown query type {given:?}")))?;
        if !fields.contains_key("min_confidence") {
            fields.insert("min_confidence".to_owned(), Value::from(0.0));
        }
        if kind == "nearest" {
            // The k nearest anywhere, as PostGIS's KNN (and the oracle
            // test) answer, not within the policy's default reach.
            if !fields.contains_key("max_distance_m") {
                fields.insert("max_distance_m".to_owned(), Value::from(MAX_DISTANCE_M));
            }
        } else if !fields.contains_key("limit") {
            fields.insert("limit".to_owned(), Value::from(PAGE_LIMIT));
        }
        let query = parse_query(&fields, None, None, policy).map_err(|p| {
            at(format!(
                "{id}: {} {}",
                p.kind(),
                p.detail().unwrap_or_default()
            ))
        })?;
        cases.push(Case { id, kind, query });
    }
    Ok(cases)
}

/// How to run.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// The runtime's label in the report.
    pub runtime: String,
    /// Timed runs of each query, warm.
    pub rounds: u32,
    /// Tiles one query may read (`None`: the policy's).
    pub max_tiles: Option<usize>,
    /// Tiles timed for the tile load figures.
    pub tile_sample: usize,
}

/// One runtime's query measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryReport {
    /// `native` or `wasm`.
    pub runtime: String,
    /// The dataset's head record.
    pub dataset: DatasetInfo,
    /// How it ran.
    pub settings: Settings,
    /// One entry per query type, in [`KINDS`] order.
    pub types: Vec<TypeResult>,
    /// Tile loads.
    pub tile_load: TileLoad,
    /// A digest of each query's answer (matched count and the page's ids),
    /// to compare runtimes.
    pub digests: BTreeMap<String, u64>,
    /// The whole run, seconds.
    pub elapsed_s: f64,
}

/// The dataset measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Assets.
    pub assets: u64,
    /// Tiles.
    pub tiles: u64,
    /// Bytes of tiles in the store.
    pub tile_bytes: u64,
    /// The manifest's size in memory.
    pub manifest_memory_bytes: u64,
}

/// The settings of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Settings {
    /// Timed warm runs per query.
    pub rounds: u32,
    /// Page size of non-nearest queries.
    pub page_limit: usize,
    /// The tile cache's budget, bytes.
    pub tile_cache_bytes: usize,
    /// Tiles one query may read.
    pub max_tiles: usize,
    /// The policy's `max_tiles_per_query`.
    pub policy_max_tiles: usize,
}

/// One query type's measurements.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TypeResult {
    /// The type (a name of [`KINDS`]).
    pub kind: String,
    /// Queries of the type.
    pub queries: usize,
    /// Queries refused as too broad (more than `max_tiles` tiles); they
    /// are in no latency figure.
    pub refused: usize,
    /// First run on an empty cache.
    pub cold: Latency,
    /// Timed runs on the shared cache.
    pub warm: Latency,
    /// Hits per answered query (at most the page size or `k`).
    pub mean_returned: f64,
    /// Matches per answered query (every page).
    pub mean_matched: f64,
    /// Tiles read (from the cache or the store) per answered query.
    pub mean_tiles: f64,
    /// Store reads per cold query.
    pub cold_tile_loads: f64,
    /// Store reads per timed warm run (tiles the cache no longer held).
    pub warm_tile_loads: f64,
}

/// Tile load times.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TileLoad {
    /// Tiles timed.
    pub tiles: usize,
    /// Their mean size, bytes.
    pub mean_bytes: f64,
    /// Their mean asset count.
    pub mean_assets: f64,
    /// Store read + decode, per tile.
    pub read_decode: Latency,
    /// Decode alone, per tile.
    pub decode: Latency,
}

/// What one query run measured.
struct Run {
    us: f64,
    loads: u64,
    answer: Result<Page, QueryError>,
}

/// Answers `query` as `SpatialQuery::run` does, timing it.
fn timed(cache: &DatasetCache, store: &FileStore, query: &Query, limits: Limits) -> Run {
    let reads = store.reads();
    let started = Instant::now();
    let answer = block_on(async {
        let current = cache
            .current(store, store, 0)
            .await
            .map_err(|e| QueryError::Store(e.to_string()))?;
        let Some((_, manifest)) = current else {
            return Ok(Page::default());
        };
        query::run(&manifest, &cache.source(store), query, limits).await
    });
    let us = started.elapsed().as_secs_f64() * 1e6;
    Run {
        us,
        loads: store.reads() - reads,
        answer,
    }
}

/// FNV-1a over a query's answer: matched count and the page's ids in order.
fn digest(page: &Page) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&page.matched.to_le_bytes());
    for hit in &page.hits {
        eat(hit.asset.id.as_bytes());
    }
    h
}

/// Per-type accumulators.
#[derive(Default)]
struct Acc {
    queries: usize,
    refused: usize,
    cold: Vec<f64>,
    warm: Vec<f64>,
    returned: u64,
    matched: u64,
    tiles: u64,
    cold_loads: u64,
    warm_loads: u64,
}

/// Runs every query cold and warm over the tiles in `store_dir`, then
/// times tile loads.
pub fn run(store_dir: &str, queries: &str, options: &QueryOptions) -> Result<QueryReport, String> {
    let started = Instant::now();
    let policy = bench_policy()?;
    let cases = parse_cases(queries, &policy)?;
    let store = FileStore::new(store_dir, &policy.dataset);
    let max_tiles = options.max_tiles.unwrap_or(policy.max_tiles_per_query);
    let limits = Limits { max_tiles };
    let budget = policy.tile_cache_bytes;
    let new_cache = || -> Result<(DatasetCache, DatasetInfo), String> {
        let cache = DatasetCache::new(&policy.dataset, u64::MAX, budget);
        let (head, manifest) = block_on(cache.current(&store, &store, 0))
            .map_err(|e| format!("{store_dir}: {e}"))?
            .ok_or_else(|| format!("{store_dir}: no head.json"))?;
        let info = DatasetInfo {
            assets: head.assets,
            tiles: head.tiles,
            tile_bytes: head.tile_bytes,
            manifest_memory_bytes: manifest.memory_bytes() as u64,
        };
        Ok((cache, info))
    };

    let mut acc: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut digests = BTreeMap::new();
    let mut answered = Vec::with_capacity(cases.len());
    // Cold: a fresh cache for each query.
    for case in &cases {
        let (cache, _) = new_cache()?;
        let run = timed(&cache, &store, &case.query, limits);
        let a = acc.entry(case.kind).or_default();
        a.queries += 1;
        match run.answer {
            Ok(page) => {
                a.cold.push(run.us);
                a.cold_loads += run.loads;
                a.returned += page.hits.len() as u64;
                a.matched += page.matched;
                a.tiles += page.tiles_read as u64;
                digests.insert(case.id.clone(), digest(&page));
                answered.push(case);
            }
            Err(QueryError::TooBroad { .. }) => {
                a.refused += 1;
                digests.insert(case.id.clone(), 0);
            }
            Err(e) => return Err(format!("{}: {e}", case.id)),
        }
    }
    // Warm: one cache, as an isolate keeps it.
    let (cache, dataset) = new_cache()?;
    for case in answered {
        let warm_up = timed(&cache, &store, &case.query, limits);
        let page = warm_up.answer.map_err(|e| format!("{}: {e}", case.id))?;
        if digests.get(&case.id) != Some(&digest(&page)) {
            return Err(format!(
                "{}: the warm answer differs from the cold one",
                case.id
            ));
        }
        let a = acc.entry(case.kind).or_default();
        for _ in 0..options.rounds {
            let run = timed(&cache, &store, &case.query, limits);
            run.answer.map_err(|e| format!("{}: {e}", case.id))?;
            a.warm.push(run.us);
            a.warm_loads += run.loads;
        }
    }
    drop(cache);

    let types = KINDS
        .iter()
        .map(|(kind, _)| {
            let a = acc.remove(kind).unwrap_or_default();
            let answered = (a.queries - a.refused).max(1) as f64;
            TypeResult {
                kind: (*kind).to_owned(),
                queries: a.queries,
                refused: a.refused,
                cold: Latency::of(&a.cold),
                warm: Latency::of(&a.warm),
                mean_returned: a.returned as f64 / answered,
                mean_matched: a.matched as f64 / answered,
                mean_tiles: a.tiles as f64 / answered,
                cold_tile_loads: a.cold_loads as f64 / answered,
                warm_tile_loads: a.warm_loads as f64 / (a.warm.len().max(1) as f64),
            }
        })
        .collect();
    let tile_load = tile_loads(&store, &policy.dataset, options.tile_sample)?;
    Ok(QueryReport {
        runtime: options.runtime.clone(),
        dataset,
        settings: Settings {
            rounds: options.rounds,
            page_limit: PAGE_LIMIT,
            tile_cache_bytes: budget,
            max_tiles,
            policy_max_tiles: policy.max_tiles_per_query,
        },
        types,
        tile_load,
        digests,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// Times reading and decoding `sample` tiles spread over the manifest, and
/// decoding them alone.
fn tile_loads(store: &FileStore, dataset: &str, sample: usize) -> Result<TileLoad, String> {
    let cache = DatasetCache::new(dataset, u64::MAX, 1 << 20);
    let (_, manifest) = block_on(cache.current(store, store, 0))
        .map_err(|e| e.to_string())?
        .ok_or("no head")?;
    let entries = manifest.entries();
    let step = entries.len().div_ceil(sample.max(1)).max(1);
    let (mut read_decode, mut decode) = (Vec::new(), Vec::new());
    let (mut bytes, mut assets) = (0u64, 0u64);
    for entry in entries.iter().step_by(step) {
        let key = entry.key(dataset);
        let started = Instant::now();
        let data = block_on(edge_core::KeyValueStore::get(store, &key))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("tile {key} is missing"))?;
        let tile = Tile::decode(&data).map_err(|e| format!("{key}: {e}"))?;
        read_decode.push(started.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(&tile);
        drop(tile);
        let started = Instant::now();
        let tile = Tile::decode(std::hint::black_box(&data)).map_err(|e| format!("{key}: {e}"))?;
        decode.push(started.elapsed().as_secs_f64() * 1e6);
        bytes += data.len() as u64;
        assets += tile.len() as u64;
    }
    let n = read_decode.len().max(1) as f64;
    Ok(TileLoad {
        tiles: read_decode.len(),
        mean_bytes: bytes as f64 / n,
        mean_assets: assets as f64 / n,
        read_decode: Latency::of(&read_decode),
        decode: Latency::of(&decode),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_get_a_page_limit_and_knn_is_nearest() {
        let policy = bench_policy().expect("policy");
        let text = r#"{"id": "r0", "type": "radius", "lon": 1.5, "lat": 2.5, "radius_m": 300.0}
{"id": "k0", "type": "knn", "lon": 1.5, "lat": 2.5, "k": 50}

{"id": "b0", "type": "bbox", "bbox": [1, 2, 3, 4], "limit": 7}
"#;
        let cases = parse_cases(text, &policy).expect("cases");
        let kinds: Vec<(&str, usize)> = cases.iter().map(|c| (c.kind, c.query.limit)).collect();
        assert_eq!(
            kinds,
            vec![("radius", PAGE_LIMIT), ("nearest", 50), ("bbox", 7)]
        );
        assert_eq!(cases[0].query.filters.min_confidence, None);
        assert!(matches!(
            cases[1].query.shape,
            spatial_query::query::Shape::Nearest { max_distance_m, .. } if max_distance_m >= 20e6
        ));
        assert!(parse_cases(r#"{"id": "x", "type": "ring"}"#, &policy).is_err());
    }
}
