//! The function's ingest path, in assets per second: NDJSON read and
//! validated feature by feature ([`read_all`]), sorted and cut into tiles
//! ([`partition`]), each tile encoded ([`Tile::encode`]), on the first
//! `count` features of an `assets.py` file held in memory. Writing the
//! tiles to a store is not timed (the store here is files; the tile
//! builder's own rate, from `spatial-tiles build`, includes writing).

use std::io::{BufRead, BufReader};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use spatial_query::ingest::{IngestLimits, InputFormat, read_all};
use spatial_query::partition::partition;
use spatial_query::tile::Tile;

/// Assets per tile, as the policy's `tile_capacity` and `spatial-tiles`.
pub const CAPACITY: usize = 4096;

/// One runtime's ingest measurements.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IngestReport {
    /// `native` or `wasm`.
    pub runtime: String,
    /// Features in the input.
    pub features: u64,
    /// Assets accepted.
    pub assets: u64,
    /// Features rejected.
    pub rejected: u64,
    /// Input bytes.
    pub input_bytes: u64,
    /// Tiles made.
    pub tiles: u64,
    /// Their encoded bytes.
    pub tile_bytes: u64,
    /// Timed rounds.
    pub rounds: u32,
    /// The median round's rate, assets per second.
    pub assets_per_s: f64,
    /// The fastest round's.
    pub best_assets_per_s: f64,
    /// The median round's split, seconds: read and validate, partition,
    /// encode.
    pub read_s: f64,
    /// See `read_s`.
    pub partition_s: f64,
    /// See `read_s`.
    pub encode_s: f64,
}

/// The first `count` non-blank lines of `path`, each ending in `\n`, and
/// how many there are. The buffer is sized in a first pass, so that it
/// holds no slack: in wasm the peak linear memory counts it.
pub fn read_prefix(path: &str, count: usize) -> Result<(Vec<u8>, u64), String> {
    let pass = |out: Option<&mut Vec<u8>>| -> Result<(usize, u64), String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let (mut bytes, mut lines) = (0usize, 0u64);
        let mut line = Vec::new();
        let mut out = out;
        while (lines as usize) < count {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("{path}: {e}"))?;
            if n == 0 {
                break;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            bytes += line.len();
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&line);
            }
            lines += 1;
        }
        Ok((bytes, lines))
    };
    let (bytes, _) = pass(None)?;
    let mut out = Vec::with_capacity(bytes);
    let (_, lines) = pass(Some(&mut out))?;
    Ok((out, lines))
}

/// Times `rounds` ingests of `input` (NDJSON with `features` lines).
pub fn run(
    runtime: &str,
    input: &[u8],
    features: u64,
    rounds: u32,
) -> Result<IngestReport, String> {
    let mut report = IngestReport {
        runtime: runtime.to_owned(),
        features,
        input_bytes: input.len() as u64,
        rounds: rounds.max(1),
        ..IngestReport::default()
    };
    // (total, read, partition, encode) seconds per round.
    let mut splits: Vec<(f64, f64, f64, f64)> = Vec::new();
    for _ in 0..report.rounds {
        let started = Instant::now();
        let (assets, outcome) = read_all(InputFormat::NdJson, IngestLimits::default(), input)
            .map_err(|e| e.to_string())?;
        let read = started.elapsed().as_secs_f64();
        report.assets = assets.len() as u64;
        report.rejected = outcome.rejected;
        let tiles = partition(assets, CAPACITY);
        let partitioned = started.elapsed().as_secs_f64();
        let mut bytes = 0u64;
        for (_, tile) in &tiles {
            bytes += std::hint::black_box(Tile::encode(tile)).len() as u64;
        }
        let total = started.elapsed().as_secs_f64();
        report.tiles = tiles.len() as u64;
        report.tile_bytes = bytes;
        drop(tiles);
        splits.push((total, read, partitioned - read, total - partitioned));
    }
    splits.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (total, read, partition_s, encode) = splits[splits.len() / 2];
    report.assets_per_s = report.assets as f64 / total.max(1e-9);
    report.best_assets_per_s = report.assets as f64 / splits[0].0.max(1e-9);
    report.read_s = read;
    report.partition_s = partition_s;
    report.encode_s = encode;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingests_ndjson() {
        let feature = |i: u32| {
            format!(
                "{{\"type\":\"Feature\",\"id\":\"00000000-0000-4000-8000-{i:012}\",\"geometry\":\
                 {{\"type\":\"Point\",\"coordinates\":[{}.5,10.25,3.0]}},\"properties\":{{\
                 \"deformation\":[1.0,2.0,3.0],\"registration_quality\":0.5,\
                 \"fusion_confidence\":0.75,\"processing_duration_ms\":10,\
                 \"algorithm_version\":\"fusion-2.3.1\",\"processed_at\":\"2026-03-01T12:00:00Z\"}}}}\n",
                i % 90
            )
        };
        let input: String = (0..50).map(feature).collect();
        let report = run("native", input.as_bytes(), 50, 2).expect("ingest");
        assert_eq!((report.assets, report.rejected, report.tiles), (50, 0, 1));
        assert!(report.tile_bytes > 0 && report.assets_per_s > 0.0);
    }
}
