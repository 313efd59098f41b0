//! Prints a `shop` function's last 46 minutes as the batches its isolates
//! would flush (NDJSON, one `POST /_metrics/ingest` body a line, at most
//! five minute-windows each), to watch an anomaly rule fire by hand: 200
//! requests a minute on `/checkout` with lognormal latencies around 40 ms
//! (p95 ≈ 107 ms), 100 on `/steady` around 25 ms, and the last eight
//! minutes of `/checkout` four times slower (`--shift 4`, the default).
//!
//! ```console
//! $ cargo run -q -p metrics --example anomaly_batches > batches.ndjson
//! $ while read -r b; do curl -s -X POST -H "authorization: Bearer $METRICS_INGEST_TOKEN" \
//!     -d "$b" http://127.0.0.1:8792/_metrics/ingest; echo; done < batches.ndjson
//! $ curl -s http://127.0.0.1:8792/__scheduled     # the cron: baselines, rules
//! $ curl -s http://127.0.0.1:8792/_metrics/alerts
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a demo's output

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edge_core::Timestamp;
use edge_core::metrics::{Recorder, WINDOW_SECONDS, window_start};

/// Minutes printed, the current one last.
const MINUTES: u64 = 46;
/// The last minutes of `/checkout` slowed down.
const SHIFTED: u64 = 8;

/// A seeded lognormal stream (median `median` s, σ 0.6).
fn latencies(n: usize, seed: u64, median: f64) -> Vec<f64> {
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let shift: f64 = match args.iter().position(|a| a == "--shift") {
        Some(i) => args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(4.0),
        None => 4.0,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let current = window_start(Timestamp(now));
    let mut recorder = Recorder::new();
    for m in 0..MINUTES {
        let start = current - (MINUTES - 1 - m) * WINDOW_SECONDS;
        let at = Timestamp(Duration::from_secs(start + 1));
        let factor = if m >= MINUTES - SHIFTED { shift } else { 1.0 };
        for v in latencies(200, m, 0.040 * factor) {
            recorder.record("shop", "/checkout", "POST", 200, v, at);
        }
        for v in latencies(100, 1000 + m, 0.025) {
            recorder.record("shop", "/steady", "GET", 200, v, at);
        }
        // A recorder keeps five windows at most: a batch every five.
        if m % 5 == 4 || m == MINUTES - 1 {
            let mut batch = recorder.take("shop-isolate").unwrap();
            batch.id = format!("anomaly-demo-{current}-{m}");
            println!("{}", serde_json::to_string(&batch).unwrap());
            recorder = Recorder::new();
        }
    }
}
