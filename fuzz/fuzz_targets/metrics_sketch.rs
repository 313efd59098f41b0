//! The metrics latency sketch's wire form and the isolates' batches
//! (edge-core `metrics`): a sketch or batch that deserializes serializes
//! back to itself (round trip); merging keeps counts exact and quantiles
//! ordered and within [min, max]; a sketch built from recorded values
//! survives the wire, and two halves merged equal the whole.
//! Input: mode byte, then JSON (modes 0, 1) or little-endian f64s (mode 2).
#![no_main]

use edge_core::metrics::sketch::MAX_COUNT;
use edge_core::metrics::{LatencySketch, MetricsBatch};
use libfuzzer_sys::fuzz_target;

fn wire(s: &LatencySketch) -> LatencySketch {
    let json = serde_json::to_string(s).expect("a sketch serializes");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json} does not read back: {e}"))
}

fn check_quantiles(s: &LatencySketch) {
    let mut last = f64::NEG_INFINITY;
    for q in [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0] {
        let v = s.quantile(q);
        if s.count() == 0 {
            assert_eq!(v, None);
            continue;
        }
        let v = v.expect("a quantile of a non-empty sketch");
        let (min, max) = (s.min().expect("min"), s.max().expect("max"));
        assert!(min <= v && v <= max, "q{q} = {v} outside [{min}, {max}]");
        assert!(v >= last, "quantiles not ordered at q{q}");
        last = v;
    }
}

fn check_sketch(s: &LatencySketch) {
    assert_eq!(&wire(s), s, "sketch round trip");
    check_quantiles(s);
    let mut doubled = s.clone();
    doubled.merge(s);
    assert_eq!(doubled.count(), s.count() * 2, "a merge lost values");
    check_quantiles(&doubled);
    if doubled.count() <= MAX_COUNT {
        assert_eq!(&wire(&doubled), &doubled, "merged sketch round trip");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(s) = serde_json::from_slice::<LatencySketch>(rest) {
                check_sketch(&s);
            }
        }
        1 => {
            let Ok(batch) = serde_json::from_slice::<MetricsBatch>(rest) else {
                return;
            };
            let json = serde_json::to_string(&batch).expect("a batch serializes");
            let back: MetricsBatch = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("{json} does not read back: {e}"));
            assert_eq!(back, batch, "batch round trip");
            let _ = batch.requests();
            let mut merged = edge_core::metrics::Window::new(0);
            for w in &batch.windows {
                merged.merge(w);
                for s in w.series.values() {
                    check_quantiles(s);
                }
            }
            assert_eq!(merged.requests(), batch.requests());
        }
        _ => {
            let values: Vec<f64> = rest
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            let mut whole = LatencySketch::new();
            let (mut a, mut b) = (LatencySketch::new(), LatencySketch::new());
            for (i, &v) in values.iter().enumerate() {
                whole.record(v);
                if i % 2 == 0 { a.record(v) } else { b.record(v) }
            }
            assert_eq!(whole.count(), values.len() as u64);
            check_sketch(&whole);
            a.merge(&b);
            assert_eq!(a.count(), whole.count());
            assert_eq!(a.buckets(), whole.buckets());
            for q in [0.5, 0.95, 0.99] {
                assert_eq!(a.quantile(q), whole.quantile(q), "merged halves at q{q}");
            }
        }
    }
});
