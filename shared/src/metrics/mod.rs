//! Request metrics every function records, and the shapes they travel in.
//!
//! [`serve`](crate::serve) records each request (function, route, method,
//! status, latency) into the isolate's [`Recorder`]; the platform glue
//! flushes it — when [`Recorder::due`] says enough records are waiting, a
//! window has closed, or the cron trigger fires — to the aggregator, which
//! merges batches from every isolate into per-minute [`Window`]s kept by
//! [`store`]. Counts merge exactly and latencies are
//! [`LatencySketch`]es, whose quantiles stay within 1 % after merging.
//!
//! Labels are bounded: a route is at most [`MAX_ROUTE_LEN`] bytes and a
//! window holds at most [`MAX_SERIES`] series per function; past that,
//! requests count under the route [`OVERFLOW_ROUTE`], so a flood of
//! distinct paths cannot grow memory.

pub mod sketch;
pub mod store;

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::platform::Timestamp;
pub use sketch::LatencySketch;

/// Records are grouped in windows of this many seconds.
pub const WINDOW_SECONDS: u64 = 60;
/// The most series (function, route, method, status) a window holds per function.
pub const MAX_SERIES: usize = 256;
/// The most gauges a window holds per function.
pub const MAX_GAUGES: usize = 32;
/// Longer routes are cut to this many bytes.
pub const MAX_ROUTE_LEN: usize = 64;
/// The route requests count under once a window has [`MAX_SERIES`] series.
pub const OVERFLOW_ROUTE: &str = "(other)";
/// Records an isolate gathers before it flushes, unless told otherwise.
pub const DEFAULT_FLUSH_EVERY: u64 = 1000;
/// The most windows a recorder keeps while its flushes fail.
const MAX_PENDING_WINDOWS: usize = 5;

/// What one series is counted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// The function that served the request.
    pub function: String,
    /// The route (a template such as `/counters/{key}`, not the raw path).
    pub route: String,
    /// The request method (`OTHER` for non-standard ones).
    pub method: String,
    /// The response status.
    pub status: u16,
}

impl SeriesKey {
    /// Whether the status counts as an error (5xx).
    pub fn is_error(&self) -> bool {
        self.status >= 500
    }
    /// Whether the status is a rate-limit refusal (429).
    pub fn is_rate_limited(&self) -> bool {
        self.status == 429
    }
}

/// A gauge's latest value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaugeValue {
    /// The value.
    pub value: f64,
    /// When it was set (ms since the epoch); the latest wins on merge.
    pub at_ms: u64,
}

/// Sets the gauge `key` to `gauge` unless a later value is there already
/// (the latest wins); a function holds at most [`MAX_GAUGES`] gauges.
pub fn merge_gauge(
    gauges: &mut BTreeMap<(String, String), GaugeValue>,
    key: (String, String),
    gauge: GaugeValue,
) {
    if let Some(current) = gauges.get_mut(&key) {
        if gauge.at_ms >= current.at_ms {
            *current = gauge;
        }
        return;
    }
    let of_function = gauges.keys().filter(|k| k.0 == key.0).count();
    if of_function < MAX_GAUGES {
        gauges.insert(key, gauge);
    }
}

/// One window of one or more functions' metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// Start of the window, seconds since the epoch (a multiple of [`WINDOW_SECONDS`]).
    pub start: u64,
    /// Latencies (and so counts) per series.
    pub series: BTreeMap<SeriesKey, LatencySketch>,
    /// Gauges per (function, name).
    pub gauges: BTreeMap<(String, String), GaugeValue>,
}

impl Window {
    /// An empty window starting at `start`.
    pub fn new(start: u64) -> Self {
        Window {
            start,
            ..Window::default()
        }
    }

    /// The sketch for `key`, or for its function's overflow route when the
    /// function already has [`MAX_SERIES`] series.
    fn sketch_mut(&mut self, key: SeriesKey) -> &mut LatencySketch {
        if !self.series.contains_key(&key) {
            let of_function = self
                .series
                .keys()
                .filter(|k| k.function == key.function)
                .count();
            if of_function >= MAX_SERIES {
                let overflow = SeriesKey {
                    route: OVERFLOW_ROUTE.to_owned(),
                    ..key
                };
                return self.series.entry(overflow).or_default();
            }
        }
        self.series.entry(key).or_default()
    }

    /// Adds `other`'s series and gauges (latest gauge wins).
    pub fn merge(&mut self, other: &Window) {
        for (key, sketch) in &other.series {
            self.sketch_mut(key.clone()).merge(sketch);
        }
        for (key, gauge) in &other.gauges {
            merge_gauge(&mut self.gauges, key.clone(), *gauge);
        }
    }

    /// How many requests the window counts.
    pub fn requests(&self) -> u64 {
        self.series
            .values()
            .fold(0, |n: u64, s| n.saturating_add(s.count()))
    }
}

/// The wire form of a [`Window`].
#[derive(Serialize, Deserialize)]
struct WireWindow {
    start: u64,
    #[serde(default)]
    series: Vec<WireSeries>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    gauges: Vec<WireGauge>,
}

#[derive(Serialize, Deserialize)]
struct WireSeries {
    #[serde(flatten)]
    key: SeriesKey,
    latency: LatencySketch,
}

#[derive(Serialize, Deserialize)]
struct WireGauge {
    function: String,
    name: String,
    #[serde(flatten)]
    value: GaugeValue,
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireWindow {
            start: self.start,
            series: self
                .series
                .iter()
                .map(|(key, latency)| WireSeries {
                    key: key.clone(),
                    latency: latency.clone(),
                })
                .collect(),
            gauges: self
                .gauges
                .iter()
                .map(|((function, name), value)| WireGauge {
                    function: function.clone(),
                    name: name.clone(),
                    value: *value,
                })
                .collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireWindow::deserialize(deserializer)?;
        if wire.start % WINDOW_SECONDS != 0 {
            return Err(serde::de::Error::custom(format!(
                "window start {} is not a multiple of {WINDOW_SECONDS}",
                wire.start
            )));
        }
        let mut window = Window::new(wire.start);
        for series in wire.series {
            let key = bounded_key(
                &series.key.function,
                &series.key.route,
                &series.key.method,
                series.key.status,
            );
            window.sketch_mut(key).merge(&series.latency);
        }
        for gauge in wire.gauges {
            if gauge.value.value.is_finite() {
                merge_gauge(
                    &mut window.gauges,
                    (label(&gauge.function), label(&gauge.name)),
                    gauge.value,
                );
            }
        }
        Ok(window)
    }
}

/// A batch one isolate flushes: its windows since the last flush.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsBatch {
    /// The function that recorded it.
    pub source: String,
    /// Which flush this is (random, set when it is first sent): a flush
    /// that failed is sent again as it was, id and all, and the aggregator
    /// merges a batch id into a window once, so a retry after a lost
    /// answer or a half-applied batch counts nothing twice. Empty: merged
    /// every time it arrives.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Its windows, oldest first.
    pub windows: Vec<Window>,
}

impl MetricsBatch {
    /// How many requests the batch counts.
    pub fn requests(&self) -> u64 {
        self.windows
            .iter()
            .fold(0, |n: u64, w| n.saturating_add(w.requests()))
    }
}

/// A label value cut to [`MAX_ROUTE_LEN`] bytes at a character boundary,
/// control characters replaced.
pub fn label(value: &str) -> String {
    let mut end = value.len().min(MAX_ROUTE_LEN);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end]
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn bounded_key(function: &str, route: &str, method: &str, status: u16) -> SeriesKey {
    const METHODS: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    SeriesKey {
        function: label(function),
        route: label(route),
        method: METHODS
            .iter()
            .find(|m| **m == method)
            .map_or("OTHER", |m| m)
            .to_owned(),
        status: if (100..=599).contains(&status) {
            status
        } else {
            0
        },
    }
}

/// The start of the window holding `at`.
pub fn window_start(at: Timestamp) -> u64 {
    let seconds = at.0.as_secs();
    seconds - seconds % WINDOW_SECONDS
}

/// One isolate's metrics since its last flush. Single-threaded (wasm
/// isolates are); bounded by [`MAX_SERIES`] per window and a few windows.
#[derive(Debug, Default)]
pub struct Recorder {
    state: RefCell<RecorderState>,
}

#[derive(Debug, Default)]
struct RecorderState {
    windows: Vec<RecordingWindow>,
    pending: u64,
    /// A batch whose flush failed, to be sent again as it is.
    retry: Option<MetricsBatch>,
}

/// A window being recorded: series in a vector found through a hash of
/// their labels in a small open-addressing table, so the per-request path
/// neither allocates nor walks a tree of strings.
#[derive(Debug, Default)]
struct RecordingWindow {
    start: u64,
    series: Vec<(SeriesKey, LatencySketch)>,
    /// [`SLOTS`] entries: 0 empty, else 1 + an index into `series`, probed
    /// linearly from the label hash; never full (series ≤ MAX_SERIES + a few
    /// overflow ones, far below SLOTS).
    slots: Vec<u16>,
    gauges: BTreeMap<(String, String), GaugeValue>,
}

/// The probe table's size: a power of two well above [`MAX_SERIES`].
const SLOTS: usize = 1024;

/// Up to seven trailing bytes as one little-endian word.
#[inline]
fn tail_word(tail: &[u8]) -> u64 {
    tail.iter()
        .rev()
        .fold(0u64, |word, &b| (word << 8) | u64::from(b))
}

/// String equality eight bytes at a time: wasm has no vectorized
/// `memcmp`, and labels are short.
#[inline]
fn words_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in (&mut x).zip(&mut y) {
        let word = |c: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        };
        if word(p) != word(q) {
            return false;
        }
    }
    tail_word(x.remainder()) == tail_word(y.remainder())
}

/// An FxHash-style mix over the labels, eight bytes at a time.
fn label_hash(function: &str, route: &str, method: &str, status: u16) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(K);
    let mut hash = u64::from(status);
    for part in [function.as_bytes(), route.as_bytes(), method.as_bytes()] {
        let mut chunks = part.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            hash = mix(hash, u64::from_le_bytes(word));
        }
        hash = mix(
            hash,
            tail_word(chunks.remainder()) ^ (part.len() as u64) << 56,
        );
    }
    hash
}

impl RecordingWindow {
    fn new(start: u64) -> Self {
        RecordingWindow {
            start,
            ..RecordingWindow::default()
        }
    }

    fn sketch(
        &mut self,
        function: &str,
        route: &str,
        method: &str,
        status: u16,
    ) -> &mut LatencySketch {
        if self.slots.is_empty() {
            self.slots = vec![0; SLOTS];
        }
        let same = |k: &SeriesKey| {
            k.status == status
                && words_eq(&k.route, route)
                && words_eq(&k.method, method)
                && words_eq(&k.function, function)
        };
        let mut slot = label_hash(function, route, method, status) as usize & (SLOTS - 1);
        while let Some(i) = usize::from(self.slots[slot]).checked_sub(1) {
            if same(&self.series[i].0) {
                return &mut self.series[i].1;
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
        let i = self.insert(bounded_key(function, route, method, status));
        // Labels kept as given are found by their hash from now on; cut or
        // overflowed ones by the search in `insert`.
        if same(&self.series[i].0) {
            self.slots[slot] = u16::try_from(i + 1).unwrap_or(0);
        }
        &mut self.series[i].1
    }

    /// Adds a series (or finds it, when labels were cut or it overflowed).
    fn insert(&mut self, key: SeriesKey) -> usize {
        let key = if self.series.len() >= MAX_SERIES {
            SeriesKey {
                route: OVERFLOW_ROUTE.to_owned(),
                ..key
            }
        } else {
            key
        };
        match self.series.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.series.push((key, LatencySketch::new()));
                self.series.len() - 1
            }
        }
    }

    fn into_window(self) -> Window {
        let mut window = Window::new(self.start);
        for (key, sketch) in self.series {
            window.sketch_mut(key).merge(&sketch);
        }
        window.gauges = self.gauges;
        window
    }
}

impl RecorderState {
    fn window(&mut self, at: Timestamp) -> &mut RecordingWindow {
        let start = window_start(at);
        if let Some(i) = self.windows.iter().rposition(|w| w.start == start) {
            return &mut self.windows[i];
        }
        self.windows.push(RecordingWindow::new(start));
        self.windows.sort_by_key(|w| w.start);
        if self.windows.len() > MAX_PENDING_WINDOWS {
            let dropped = self.windows.remove(0);
            let requests: u64 = dropped.series.iter().map(|(_, s)| s.count()).sum();
            self.pending = self.pending.saturating_sub(requests);
        }
        let i = self
            .windows
            .iter()
            .rposition(|w| w.start == start)
            .unwrap_or(0);
        &mut self.windows[i]
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Recorder::default()
    }

    /// Records one request.
    pub fn record(
        &self,
        function: &str,
        route: &str,
        method: &str,
        status: u16,
        seconds: f64,
        at: Timestamp,
    ) {
        let mut state = self.state.borrow_mut();
        state
            .window(at)
            .sketch(function, route, method, status)
            .record(seconds);
        state.pending += 1;
    }

    /// Sets a gauge of `function`.
    pub fn set_gauge(&self, function: &str, name: &str, value: f64, at: Timestamp) {
        if !value.is_finite() {
            return;
        }
        let mut state = self.state.borrow_mut();
        let gauge = GaugeValue {
            value,
            at_ms: at.as_millis(),
        };
        merge_gauge(
            &mut state.window(at).gauges,
            (label(function), label(name)),
            gauge,
        );
    }

    /// Records waiting to be flushed.
    pub fn pending(&self) -> u64 {
        self.state.borrow().pending
    }

    /// Whether a flush is due: `flush_every` records are waiting, or a
    /// window before the current one holds any.
    pub fn due(&self, now: Timestamp, flush_every: u64) -> bool {
        let state = self.state.borrow();
        state.retry.is_some()
            || state.pending >= flush_every.max(1)
            || state
                .windows
                .first()
                .is_some_and(|w| w.start < window_start(now) && !w.series.is_empty())
    }

    /// Takes the batch a failed flush left ([`Recorder::keep`]), else
    /// everything recorded so far, leaving the recorder empty.
    pub fn take(&self, source: &str) -> Option<MetricsBatch> {
        let mut state = self.state.borrow_mut();
        if let Some(batch) = state.retry.take() {
            return Some(batch);
        }
        state.pending = 0;
        let windows: Vec<Window> = std::mem::take(&mut state.windows)
            .into_iter()
            .map(RecordingWindow::into_window)
            .collect();
        if windows
            .iter()
            .all(|w| w.series.is_empty() && w.gauges.is_empty())
        {
            return None;
        }
        Some(MetricsBatch {
            source: label(source),
            id: String::new(),
            windows,
        })
    }

    /// Keeps a batch whose flush failed, to be taken and sent again as it
    /// is (its id included: the aggregator may have applied part or all of
    /// it). With one already kept, this one's windows go back among the
    /// records instead (the oldest dropped past a few).
    pub fn keep(&self, batch: MetricsBatch) {
        let mut state = self.state.borrow_mut();
        if state.retry.is_none() {
            state.retry = Some(batch);
            return;
        }
        for window in batch.windows {
            let at = Timestamp(std::time::Duration::from_secs(window.start));
            let recording = state.window(at);
            let mut requests = 0;
            for (key, sketch) in &window.series {
                recording
                    .sketch(&key.function, &key.route, &key.method, key.status)
                    .merge(sketch);
                requests += sketch.count();
            }
            for (key, gauge) in window.gauges {
                merge_gauge(&mut recording.gauges, key, gauge);
            }
            state.pending += requests;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: u64) -> Timestamp {
        Timestamp(std::time::Duration::from_secs(s))
    }

    #[test]
    fn records_per_series_and_window() {
        let r = Recorder::new();
        r.record("f", "/a", "GET", 200, 0.01, at(600));
        r.record("f", "/a", "GET", 200, 0.02, at(610));
        r.record("f", "/a", "GET", 500, 0.5, at(620));
        r.record("f", "/a", "GET", 200, 0.03, at(660));
        assert_eq!(r.pending(), 4);
        assert!(r.due(at(661), 1000), "an earlier window is closed");
        assert!(!r.due(at(619), 1000));
        assert!(r.due(at(619), 4));
        let batch = r.take("f").unwrap();
        assert_eq!(batch.windows.len(), 2);
        assert_eq!(batch.windows[0].start, 600);
        assert_eq!(batch.windows[0].series.len(), 2);
        assert_eq!(batch.requests(), 4);
        assert_eq!(r.pending(), 0);
        assert!(r.take("f").is_none());
    }

    #[test]
    fn word_equality_and_hashing_agree_with_bytes() {
        let texts = [
            "",
            "a",
            "GET",
            "/counters/{key}",
            "/api/*",
            "abcdefgh",
            "abcdefghi",
            "abcdefgH",
        ];
        for a in texts {
            for b in texts {
                assert_eq!(words_eq(a, b), a == b, "{a:?} {b:?}");
                if a != b {
                    assert_ne!(
                        label_hash("f", a, "GET", 200),
                        label_hash("f", b, "GET", 200)
                    );
                }
            }
        }
        // The parts are delimited: moving a byte between labels changes the hash.
        assert_ne!(
            label_hash("ab", "c", "GET", 200),
            label_hash("a", "bc", "GET", 200)
        );
    }

    #[test]
    fn labels_are_bounded() {
        let r = Recorder::new();
        for i in 0..10_000 {
            r.record("f", &format!("/p{i}"), "GET", 200, 0.001, at(0));
        }
        r.record("f", &"x".repeat(1000), "BREW", 999, 0.001, at(0));
        let batch = r.take("f").unwrap();
        let window = &batch.windows[0];
        // The overflow route holds a series per method and status.
        assert_eq!(window.series.len(), MAX_SERIES + 2);
        let overflow: u64 = window
            .series
            .iter()
            .filter(|(k, _)| k.route == OVERFLOW_ROUTE)
            .map(|(_, s)| s.count())
            .sum();
        assert_eq!(overflow, 10_000 - MAX_SERIES as u64 + 1);
        assert!(
            window
                .series
                .keys()
                .any(|k| k.method == "OTHER" && k.status == 0)
        );
        assert_eq!(batch.requests(), 10_001);
    }

    #[test]
    fn window_round_trips_and_merges_exactly() {
        let r = Recorder::new();
        r.record("f", "/a", "GET", 200, 0.01, at(0));
        r.set_gauge("f", "queue", 3.0, at(1));
        let mut w = r.take("f").unwrap().windows.remove(0);
        let json = serde_json::to_string(&w).unwrap();
        let back: Window = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        w.merge(&back);
        assert_eq!(w.requests(), 2);
        assert_eq!(w.gauges.len(), 1);
        assert!(serde_json::from_str::<Window>(r#"{"start":7}"#).is_err());
    }

    #[test]
    fn a_failed_flush_is_kept_and_sent_again_as_it_was() {
        let r = Recorder::new();
        r.record("f", "/a", "GET", 200, 0.01, at(0));
        let mut batch = r.take("f").unwrap();
        batch.id = "b1".into();
        r.record("f", "/a", "GET", 200, 0.01, at(70));
        r.keep(batch.clone());
        assert!(r.due(at(70), 1000));
        assert_eq!(r.take("f").unwrap(), batch, "the same batch, id and all");
        let next = r.take("f").unwrap();
        assert!(next.id.is_empty());
        assert_eq!((next.windows.len(), next.windows[0].start), (1, 60));
        // A second failure while one is kept: its records go back.
        r.keep(batch.clone());
        r.keep(next);
        assert_eq!(r.pending(), 1);
        assert_eq!(r.take("f").unwrap(), batch);
        assert_eq!(r.take("f").unwrap().requests(), 1);
    }
}
