//! The latency sketch's promise, measured: for generated latency streams
//! (uniform, lognormal, bimodal, heavy tail), every reported quantile is
//! within 1 % relative error of the exact value of the same rank, in one
//! sketch and after the stream is split over several isolates whose
//! sketches travel as JSON and are merged.

#![allow(clippy::unwrap_used)]

use edge_core::metrics::LatencySketch;
use edge_core::metrics::sketch::{MAX_VALUE, RELATIVE_ACCURACY};

/// SplitMix64: a seeded generator, so every run sees the same streams.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.unit()).cos()
    }
}

const N: usize = 200_000;

fn stream(name: &str, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed);
    (0..N)
        .map(|_| match name {
            // 1 ms .. 1 s.
            "uniform" => 0.001 + rng.unit() * 0.999,
            // Median 20 ms, σ = 1 (p99 ≈ 200 ms).
            "lognormal" => (0.020f64.ln() + rng.normal()).exp(),
            // Cache hits around 5 ms, misses around 300 ms.
            "bimodal" => {
                if rng.unit() < 0.9 {
                    (0.005 + 0.001 * rng.normal()).max(1e-5)
                } else {
                    (0.300 + 0.050 * rng.normal()).max(1e-5)
                }
            }
            // Pareto, x_m = 1 ms, shape 1.1: the tail reaches hours.
            "heavy_tail" => (0.001 / rng.unit().powf(1.0 / 1.1)).min(MAX_VALUE),
            other => panic!("unknown stream {other}"),
        })
        .collect()
}

const STREAMS: [&str; 4] = ["uniform", "lognormal", "bimodal", "heavy_tail"];
const QUANTILES: [f64; 12] = [
    0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0,
];

/// Checks every quantile of `sketch` against the sorted `values`.
fn check(label: &str, sketch: &LatencySketch, sorted: &[f64]) {
    assert_eq!(sketch.count(), sorted.len() as u64, "{label}: count");
    let exact_sum: f64 = sorted.iter().sum();
    assert!(
        (sketch.sum() - exact_sum).abs() <= 1e-9 * exact_sum,
        "{label}: sum"
    );
    for q in QUANTILES {
        let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
        let exact = sorted[rank];
        let got = sketch.quantile(q).unwrap();
        let error = (got - exact).abs() / exact;
        assert!(
            error <= RELATIVE_ACCURACY + 1e-12,
            "{label}: q={q} exact {exact} sketch {got} error {error}"
        );
    }
}

#[test]
fn every_quantile_is_within_alpha_in_one_sketch() {
    for (i, name) in STREAMS.iter().enumerate() {
        let values = stream(name, 1 + i as u64);
        let mut sketch = LatencySketch::new();
        for &v in &values {
            sketch.record(v);
        }
        let mut sorted = values;
        sorted.sort_by(f64::total_cmp);
        check(name, &sketch, &sorted);
    }
}

#[test]
fn every_quantile_is_within_alpha_after_merging_isolates() {
    for (i, name) in STREAMS.iter().enumerate() {
        let values = stream(name, 100 + i as u64);
        // Eight isolates, each taking an uneven share in random order.
        let mut pick = Rng(7 + i as u64);
        let mut isolates = vec![LatencySketch::new(); 8];
        for &v in &values {
            let isolate = (pick.next_u64() % 8).min(pick.next_u64() % 8) as usize;
            isolates[isolate].record(v);
        }
        // As they travel: JSON out of each isolate, merged at the aggregator,
        // then the aggregate merged again with a second aggregate.
        let mut left = LatencySketch::new();
        let mut right = LatencySketch::new();
        for (n, isolate) in isolates.iter().enumerate() {
            let wire = serde_json::to_string(isolate).unwrap();
            let back: LatencySketch = serde_json::from_str(&wire).unwrap();
            if n % 2 == 0 { &mut left } else { &mut right }.merge(&back);
        }
        left.merge(&right);
        let mut sorted = values;
        sorted.sort_by(f64::total_cmp);
        check(&format!("{name} merged"), &left, &sorted);
    }
}

#[test]
fn memory_stays_bounded_on_any_input() {
    let mut sketch = LatencySketch::new();
    let mut rng = Rng(3);
    for _ in 0..100_000 {
        // Anything from zero to far beyond the range, and bad values.
        let v = match rng.next_u64() % 5 {
            0 => 0.0,
            1 => f64::NAN,
            2 => -1.0,
            3 => f64::INFINITY,
            _ => (rng.unit() * 80.0 - 40.0).exp2(),
        };
        sketch.record(v);
    }
    assert_eq!(sketch.count(), 100_000);
    assert!(sketch.buckets() <= edge_core::metrics::sketch::MAX_BUCKETS);
    assert_eq!(sketch.max(), Some(MAX_VALUE));
}
