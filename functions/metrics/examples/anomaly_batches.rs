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

use std::time::{SystemTime, UNIX_EPOCH};

use edge_core::Timestamp;
use edge_core::metrics::window_start;
use metrics::scenario::{CHECKOUT_MEDIAN, shop_batches};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let shift: f64 = match args.iter().position(|a| a == "--shift") {
        Some(i) => args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(4.0),
        None => 4.0,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let current = window_start(Timestamp(now));
    let prefix = format!("anomaly-demo-{current}");
    for batch in shop_batches(current, CHECKOUT_MEDIAN * shift, &prefix) {
        println!("{}", serde_json::to_string(&batch).unwrap());
    }
}
