//! A synthetic shop's traffic, as the batches its isolates would flush to
//! `POST /_metrics/ingest`: one scenario shared by the README's anomaly
//! transcript (`examples/anomaly_batches.rs`) and the end-to-end anomaly
//! tests, so both replay the same minutes.
//!
//! `shop` serves 200 requests a minute on `/checkout` (lognormal latencies,
//! median 40 ms) and 100 on `/steady` (25 ms) for [`MINUTES`] minutes up to
//! the current one; the last [`SHIFTED`] minutes of `/checkout` run at a
//! median the caller picks.

use std::time::Duration;

use edge_core::Timestamp;
use edge_core::metrics::{MetricsBatch, Recorder, WINDOW_SECONDS};

/// Minutes of traffic, the current one last.
pub const MINUTES: u64 = 46;
/// The last minutes whose `/checkout` latency departs.
pub const SHIFTED: u64 = 8;
/// `/checkout`'s median latency before the shift, in seconds.
pub const CHECKOUT_MEDIAN: f64 = 0.040;

/// A seeded lognormal latency stream (median `median` s, σ 0.6).
pub fn latencies(n: usize, seed: u64, median: f64) -> Vec<f64> {
    let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            median * (0.6 * normal).exp()
        })
        .collect()
}

/// The shop's minutes up to `current` (a minute start), `/checkout` at
/// `shifted_median` seconds in the last [`SHIFTED`], as batches of five
/// minute-windows (a recorder keeps no more), the last one shorter; each
/// batch's id is `{id_prefix}-{minute index}`.
pub fn shop_batches(current: u64, shifted_median: f64, id_prefix: &str) -> Vec<MetricsBatch> {
    let mut batches = Vec::new();
    let mut recorder = Recorder::new();
    for m in 0..MINUTES {
        let start = current - (MINUTES - 1 - m) * WINDOW_SECONDS;
        let at = Timestamp(Duration::from_secs(start + 1));
        let median = if m >= MINUTES - SHIFTED {
            shifted_median
        } else {
            CHECKOUT_MEDIAN
        };
        for v in latencies(200, m, median) {
            recorder.record("shop", "/checkout", "POST", 200, v, at);
        }
        for v in latencies(100, 1000 + m, 0.025) {
            recorder.record("shop", "/steady", "GET", 200, v, at);
        }
        if m % 5 == 4 || m == MINUTES - 1 {
            if let Some(mut batch) = recorder.take("shop-isolate") {
                batch.id = format!("{id_prefix}-{m}");
                batches.push(batch);
            }
            recorder = Recorder::new();
        }
    }
    batches
}
