//! A mergeable latency sketch with a proven relative error: the DDSketch
//! idea (Masson, Rim, Lee, VLDB 2019) with a fast index mapping.
//!
//! Every positive value lands in the bucket `floor(M · L(x))`, where `L`
//! approximates `log2` by the float's exponent plus a cubic in its
//! mantissa (no `ln` call: wasm has no hardware logarithm). `L` is
//! monotone and `dL/d(ln x) ≥ 10/7`, so with `M = 1 / (ln γ · 10/7)` no
//! bucket spans a ratio above `γ = (1 + α) / (1 − α)`. A quantile is
//! answered with the bucket's harmonic midpoint `2·lo·hi / (lo + hi)`,
//! which is within `α` of every value in the bucket. Merging adds bucket
//! counts, so a merged sketch answers within `α` too, and its counts are
//! exact.
//!
//! Values are seconds. Those at or below [`MIN_VALUE`] (a nanosecond)
//! share one bucket and are answered as the smallest value seen; those
//! above [`MAX_VALUE`] are clamped to it. The buckets are a dense array
//! spanning the indexes seen, so a sketch holds at most
//! [`MAX_BUCKETS`] counts whatever it is fed.

use serde::{Deserialize, Serialize};

/// The relative accuracy every quantile is held to.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Values at or below this (seconds) share the lowest bucket.
pub const MIN_VALUE: f64 = 1e-9;
/// Values above this (seconds) are recorded as this.
pub const MAX_VALUE: f64 = 1e9;

// The cubic approximating log2 on the mantissa m in [0, 1): P(0) = 0,
// P(1) = 1, increasing; min over m of (1 + m)·P'(m) is C = 10/7, at m = 0.
const A: f64 = 6.0 / 35.0;
const B: f64 = -3.0 / 5.0;
const C: f64 = 10.0 / 7.0;

/// ln γ for γ = (1 + α) / (1 − α).
#[cfg(test)]
fn ln_gamma() -> f64 {
    ((1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).ln()
}

/// Buckets per unit of `L` (≈ 35 per octave for α = 1%).
const MULTIPLIER: f64 = 34.998_833_302_220_746;

/// The most buckets a sketch holds: the span of indexes from
/// [`MIN_VALUE`] to [`MAX_VALUE`].
pub const MAX_BUCKETS: usize = 2200;
/// The most values a sketch read from the wire may count: 2^40, some
/// 18 billion requests a second in one series of one window. Counts beyond
/// it come only from forged input, and would let sums of counts (merges,
/// totals) overflow.
pub const MAX_COUNT: u64 = 1 << 40;

fn approx_log2(x: f64) -> f64 {
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mantissa = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000) - 1.0;
    exponent as f64 + ((A * mantissa + B) * mantissa + C) * mantissa
}

/// The inverse of [`approx_log2`].
fn approx_exp2(l: f64) -> f64 {
    let exponent = l.floor();
    let p = l - exponent;
    // Solve A m³ + B m² + C m = p on [0, 1]; Newton from m = p converges
    // in a few steps (P is smooth, increasing, close to identity).
    let mut m = p;
    for _ in 0..8 {
        let f = ((A * m + B) * m + C) * m - p;
        let df = (3.0 * A * m + 2.0 * B) * m + C;
        m -= f / df;
    }
    (1.0 + m.clamp(0.0, 1.0)) * exponent.exp2()
}

fn index_of(x: f64) -> i32 {
    (approx_log2(x) * MULTIPLIER).floor() as i32
}

/// The lowest index a value above [`MIN_VALUE`] can take.
fn min_index() -> i32 {
    index_of(MIN_VALUE)
}

/// A latency sketch: exact count, sum, min and max, and quantiles within
/// [`RELATIVE_ACCURACY`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireSketch", into = "WireSketch")]
pub struct LatencySketch {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// Values at or below [`MIN_VALUE`].
    low: u64,
    /// Index of `counts[0]`.
    offset: i32,
    counts: Vec<u64>,
}

impl Default for LatencySketch {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencySketch {
    /// An empty sketch.
    pub const fn new() -> Self {
        LatencySketch {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            low: 0,
            offset: 0,
            counts: Vec::new(),
        }
    }

    /// Records one value in seconds. Negative values and NaN are taken as 0.
    #[inline]
    pub fn record(&mut self, seconds: f64) {
        let x = if seconds > MAX_VALUE {
            MAX_VALUE
        } else if seconds >= 0.0 {
            seconds
        } else {
            0.0
        };
        self.count += 1;
        self.sum += x;
        if x < self.min {
            self.min = x;
        }
        if x > self.max {
            self.max = x;
        }
        if x <= MIN_VALUE {
            self.low += 1;
            return;
        }
        let index = index_of(x);
        let slot = index.wrapping_sub(self.offset) as u32 as usize;
        match self.counts.get_mut(slot) {
            Some(count) => *count += 1,
            None => self.grow_and_add(index, 1),
        }
    }

    #[cold]
    fn grow_and_add(&mut self, index: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(n);
            return;
        }
        if index < self.offset {
            let extra = (self.offset - index) as usize;
            let mut grown = vec![0; extra];
            grown.extend_from_slice(&self.counts);
            self.counts = grown;
            self.offset = index;
        } else {
            let len = (index - self.offset) as usize + 1;
            self.counts.resize(len, 0);
        }
        let slot = (index - self.offset) as usize;
        self.counts[slot] += n;
    }

    /// Adds every value of `other` (exact counts; quantiles stay within α).
    /// Counts saturate at `u64::MAX` rather than overflow (unreachable but
    /// by forged input: a sketch read from the wire counts at most
    /// [`MAX_COUNT`]).
    pub fn merge(&mut self, other: &LatencySketch) {
        if other.count == 0 {
            return;
        }
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.low = self.low.saturating_add(other.low);
        if other.counts.is_empty() {
            return;
        }
        let other_end = other.offset + other.counts.len() as i32 - 1;
        if self.counts.is_empty() {
            self.offset = other.offset;
            self.counts = other.counts.clone();
            return;
        }
        if other.offset < self.offset {
            self.grow_and_add(other.offset, 0);
        }
        if other_end >= self.offset + self.counts.len() as i32 {
            self.grow_and_add(other_end, 0);
        }
        let start = (other.offset - self.offset) as usize;
        for (mine, theirs) in self.counts[start..].iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum of the values (seconds).
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The smallest value, if any.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// The largest value, if any.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// The value of rank `floor(q · (count − 1))` in sorted order, within
    /// [`RELATIVE_ACCURACY`]; `None` when empty or `q` is outside [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        if rank == 0 || rank < self.low {
            return Some(self.min);
        }
        if rank == self.count - 1 {
            return Some(self.max);
        }
        let mut seen = self.low;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen > rank {
                let index = self.offset + i as i32;
                let lo = approx_exp2(f64::from(index) / MULTIPLIER);
                let hi = approx_exp2(f64::from(index + 1) / MULTIPLIER);
                let estimate = 2.0 * lo * hi / (lo + hi);
                return Some(estimate.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// How many buckets the sketch holds (its memory is about 8 bytes each).
    pub fn buckets(&self) -> usize {
        self.counts.len()
    }
}

/// The serialized form, checked on the way in so that a merged sketch's
/// counts stay exact and its size bounded.
#[derive(Serialize, Deserialize)]
struct WireSketch {
    n: u64,
    sum: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<f64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    low: u64,
    #[serde(default)]
    offset: i32,
    #[serde(default)]
    counts: Vec<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<LatencySketch> for WireSketch {
    fn from(s: LatencySketch) -> Self {
        WireSketch {
            n: s.count,
            sum: s.sum,
            min: s.min(),
            max: s.max(),
            low: s.low,
            offset: s.offset,
            counts: s.counts,
        }
    }
}

impl TryFrom<WireSketch> for LatencySketch {
    type Error = String;

    fn try_from(w: WireSketch) -> Result<Self, String> {
        if w.n > MAX_COUNT {
            return Err(format!("sketch count {} is above {MAX_COUNT}", w.n));
        }
        if w.counts.len() > MAX_BUCKETS {
            return Err(format!(
                "sketch has {} buckets, at most {MAX_BUCKETS}",
                w.counts.len()
            ));
        }
        let lowest = min_index();
        let highest = index_of(MAX_VALUE);
        if !w.counts.is_empty()
            && (w.offset < lowest || w.offset + w.counts.len() as i32 - 1 > highest)
        {
            return Err(format!("sketch buckets start at {} out of range", w.offset));
        }
        let total = w
            .counts
            .iter()
            .try_fold(w.low, |acc, &n| acc.checked_add(n))
            .ok_or("sketch counts overflow")?;
        if total != w.n {
            return Err(format!("sketch count {} is not its buckets' {total}", w.n));
        }
        let (min, max) = match (w.n, w.min, w.max) {
            (0, _, _) => (f64::INFINITY, f64::NEG_INFINITY),
            (_, Some(min), Some(max))
                if (0.0..=MAX_VALUE).contains(&min) && (min..=MAX_VALUE).contains(&max) =>
            {
                (min, max)
            }
            _ => return Err("sketch min/max missing or out of range".to_owned()),
        };
        if !w.sum.is_finite() || w.sum < 0.0 {
            return Err("sketch sum is not a finite non-negative number".to_owned());
        }
        Ok(LatencySketch {
            count: w.n,
            sum: w.sum,
            min,
            max,
            low: w.low,
            offset: w.offset,
            counts: w.counts,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Found by `fuzz/` (metrics_sketch): two series of one key in a batch,
    /// each counting 2^63 values, overflowed the merge (a panic in debug
    /// builds; in release a wrapped, wrong count).
    #[test]
    fn forged_counts_are_refused_and_merges_never_overflow() {
        let forged = r#"{"n": 9223372036854775808, "sum": 0, "min": 0, "max": 0, "low": 9223372036854775808}"#;
        let err = serde_json::from_str::<LatencySketch>(forged).unwrap_err();
        assert!(err.to_string().contains("above 1099511627776"), "{err}");
        let most =
            format!(r#"{{"n": {MAX_COUNT}, "sum": 0, "min": 0, "max": 0, "low": {MAX_COUNT}}}"#);
        let mut s: LatencySketch = serde_json::from_str(&most).unwrap();
        for _ in 0..30 {
            let copy = s.clone();
            s.merge(&copy);
        }
        assert_eq!(s.count(), u64::MAX);
    }

    #[test]
    fn multiplier_matches_the_accuracy() {
        let expected = 1.0 / (ln_gamma() * C);
        assert!(
            MULTIPLIER >= expected && MULTIPLIER - expected < 1e-9,
            "{expected}"
        );
        let span = index_of(MAX_VALUE) - min_index() + 1;
        assert!(span as usize <= MAX_BUCKETS, "{span}");
    }

    #[test]
    fn no_bucket_spans_more_than_gamma() {
        let gamma = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
        for index in min_index()..index_of(MAX_VALUE) {
            let lo = approx_exp2(f64::from(index) / MULTIPLIER);
            let hi = approx_exp2(f64::from(index + 1) / MULTIPLIER);
            assert!(
                hi / lo <= gamma * (1.0 + 1e-12),
                "bucket {index}: {}",
                hi / lo
            );
            assert!(hi > lo);
        }
    }

    #[test]
    fn inverse_round_trips() {
        for &x in &[1e-6, 0.001, 0.25, 1.0, 1.5, 3.0, 1234.5] {
            let l = approx_log2(x);
            assert!((approx_exp2(l) / x - 1.0).abs() < 1e-12, "{x}");
        }
    }

    #[test]
    fn exact_count_sum_min_max() {
        let mut s = LatencySketch::new();
        for v in [0.003, 0.001, 0.2, 0.0] {
            s.record(v);
        }
        assert_eq!(s.count(), 4);
        assert!((s.sum() - 0.204).abs() < 1e-12);
        assert_eq!(s.min(), Some(0.0));
        assert_eq!(s.max(), Some(0.2));
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert_eq!(s.quantile(1.0), Some(0.2));
        assert_eq!(LatencySketch::new().quantile(0.5), None);
        assert_eq!(s.quantile(1.5), None);
    }

    #[test]
    fn serde_round_trip_and_checks() {
        let mut s = LatencySketch::new();
        for i in 1..500 {
            s.record(f64::from(i) * 1e-4);
        }
        let json = serde_json::to_string(&s).unwrap();
        let back: LatencySketch = serde_json::from_str(&json).unwrap();
        assert!((back.sum - s.sum).abs() < 1e-12);
        assert_eq!(LatencySketch { sum: s.sum, ..back }, s);
        let bad = json.replace("\"n\":499", "\"n\":500");
        let err = serde_json::from_str::<LatencySketch>(&bad).unwrap_err();
        assert!(err.to_string().contains("not its buckets"), "{err}");
        let huge = format!(
            "{{\"n\":0,\"sum\":0,\"counts\":[{}]}}",
            vec!["0"; MAX_BUCKETS + 1].join(",")
        );
        assert!(serde_json::from_str::<LatencySketch>(&huge).is_err());
    }
}
