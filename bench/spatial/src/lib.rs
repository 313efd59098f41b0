//! The spatial-query function's latency, tile load time and ingest rate,
//! the same loops natively and in wasm.
//!
//! One program measures the `spatial-query` crate on every runtime: built
//! natively it is the native measurement, built for `wasm32-wasip2` it is a
//! WASI command that `bench-runner` runs under wasmtime with the tile
//! directory preopened read-only. The tiles are the files `spatial-tiles
//! build` wrote; [`store::FileStore`] serves them as the platform store, so
//! queries go through the function's own [`DatasetCache`] (head, manifest,
//! tile LRU within the policy's budget) exactly as in an isolate.
//!
//! - [`queries`]: every query of a `queries.py` file through
//!   [`parse_query`](spatial_query::request::parse_query) and
//!   [`query::run`](spatial_query::query::run): cold (a fresh cache per
//!   query) and warm (one cache for the whole run, a warm-up then timed
//!   rounds per query), p50/p99 per query type; then tile loads (a store
//!   read and [`Tile::decode`](spatial_query::tile::Tile::decode)) and
//!   decodes alone.
//! - [`ingest`]: the function's ingest path on a prefix of the assets:
//!   [`read_all`](spatial_query::ingest::read_all),
//!   [`partition`](spatial_query::partition::partition) and
//!   [`Tile::encode`](spatial_query::tile::Tile::encode), in assets/s.
//! - [`table`]: the native and wasm reports beside PostGIS's
//!   (`postgis.py bench`) and the tile builder's summary, as markdown.
//!
//! `cargo xtask bench spatial-query` drives all of it.
//!
//! [`DatasetCache`]: spatial_query::dataset::DatasetCache

pub mod ingest;
pub mod queries;
pub mod store;
pub mod table;

use std::future::Future;
use std::task::{Context, Poll, Waker};

use serde::{Deserialize, Serialize};

/// Latencies of one kind, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Measurements.
    pub count: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    /// The summary of `values` (µs), percentiles interpolated linearly
    /// between order statistics, as `postgis.py` computes PostGIS's.
    pub fn of(values: &[f64]) -> Latency {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Latency {
            count: v.len(),
            p50_us: percentile(&v, 50.0),
            p99_us: percentile(&v, 99.0),
            mean_us: if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            },
        }
    }
}

/// The `p`th percentile of sorted values (0 for none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = (sorted.len() - 1) as f64 * p / 100.0;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Runs a future to completion on this thread. The store here is files,
/// so the futures never wait; one that did would be polled again at once.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// What `bench-runner --stats` wrote about one wasm run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunnerStats {
    /// The largest size a linear memory of the guest reached, bytes.
    pub peak_linear_memory_bytes: u64,
    /// Linear memories the component created.
    #[serde(default)]
    pub memories: u64,
    /// Compiling the component, seconds.
    #[serde(default)]
    pub compile_s: f64,
    /// Instantiating and running it, seconds.
    #[serde(default)]
    pub run_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
        let l = Latency::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((l.count, l.p50_us, l.mean_us), (4, 2.5, 2.5));
        assert!((l.p99_us - 3.97).abs() < 1e-9);
    }

    #[test]
    fn ready_futures_complete() {
        assert_eq!(block_on(async { 7 }), 7);
    }
}
