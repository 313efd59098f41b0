//! The browser entry point (feature `browser`): the `MetricsFunction`
//! class, and `LatencySketch`, the mergeable latency sketch every function
//! records into ([`edge_core::metrics::LatencySketch`], quantiles within
//! 1 %), in the page: record, merge, quantiles, and the wire forms — the
//! sketch's own JSON and a whole batch as `POST /_metrics/ingest` takes it.

use edge_browser::js_sys;
use edge_core::Timestamp;
use edge_core::metrics::{LatencySketch as Core, MetricsBatch, SeriesKey, Window, window_start};
use wasm_bindgen::prelude::*;

edge_browser::export_function!(MetricsFunction, crate::Metrics);

#[wasm_bindgen(typescript_custom_section)]
const SKETCH_TS: &'static str = r#"
/** Which series a batch counts the sketch under. */
export interface SeriesLabels {
  /** The isolate or client that recorded it (the batch's `source`). */
  source: string;
  /** The function label (default: `source`). */
  function?: string;
  /** A route template, e.g. `/api/items/{id}`. */
  route: string;
  /** Default `GET`. */
  method?: string;
  /** Default 200. */
  status?: number;
  /** When it was recorded, ms since the epoch (default now): picks the minute window. */
  at?: number;
}
"#;

fn invalid_sketch(e: impl std::fmt::Display) -> JsValue {
    edge_browser::bad_request(
        "invalid-batch",
        format!("the body is not a metrics batch: {e}"),
    )
}

/// A mergeable latency sketch: exact count, sum, min and max, quantiles
/// within 1 %. Values are seconds.
#[wasm_bindgen]
#[derive(Default)]
pub struct LatencySketch(Core);

#[wasm_bindgen]
impl LatencySketch {
    /// An empty sketch.
    #[wasm_bindgen(constructor)]
    pub fn new() -> LatencySketch {
        LatencySketch(Core::new())
    }

    /// Records one latency in seconds (negative and NaN count as 0).
    pub fn record(&mut self, seconds: f64) {
        self.0.record(seconds);
    }

    /// Records every value of `seconds`.
    #[wasm_bindgen(js_name = recordAll)]
    pub fn record_all(&mut self, seconds: &[f64]) {
        for &s in seconds {
            self.0.record(s);
        }
    }

    /// Adds `other`'s values to this sketch (exact counts; quantiles stay within 1 %).
    pub fn merge(&mut self, other: &LatencySketch) {
        self.0.merge(&other.0);
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) in seconds; `undefined` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile(q)
    }

    /// Values recorded.
    #[wasm_bindgen(getter)]
    pub fn count(&self) -> f64 {
        self.0.count() as f64
    }

    /// Their sum, seconds.
    #[wasm_bindgen(getter)]
    pub fn sum(&self) -> f64 {
        self.0.sum()
    }

    /// The smallest value; `undefined` when empty.
    #[wasm_bindgen(getter)]
    pub fn min(&self) -> Option<f64> {
        self.0.min()
    }

    /// The largest value; `undefined` when empty.
    #[wasm_bindgen(getter)]
    pub fn max(&self) -> Option<f64> {
        self.0.max()
    }

    /// The sketch's wire form (`{ n, sum, min, max, offset, counts }`), as
    /// a metrics batch carries it; `JSON.stringify` uses it.
    #[wasm_bindgen(js_name = toJSON, unchecked_return_type = "Record<string, unknown>")]
    pub fn to_json(&self) -> JsValue {
        edge_browser::json_to_js(&serde_json::to_value(&self.0).unwrap_or_default())
    }

    /// The sketch from its wire form (an object or JSON text), checked as
    /// the metrics function checks what it ingests: throws an
    /// `invalid-batch` `ProblemError` naming what is wrong.
    #[wasm_bindgen(js_name = fromJSON)]
    pub fn from_json(
        #[wasm_bindgen(unchecked_param_type = "string | Record<string, unknown>")] wire: JsValue,
    ) -> Result<LatencySketch, JsValue> {
        let sketch = match wire.as_string() {
            Some(text) => serde_json::from_str(&text).map_err(invalid_sketch)?,
            None => {
                let value = edge_browser::js_to_json(&wire).map_err(invalid_sketch)?;
                serde_json::from_value(value).map_err(invalid_sketch)?
            }
        };
        Ok(LatencySketch(sketch))
    }

    /// This sketch as one series of a metrics batch, the JSON body
    /// `POST /_metrics/ingest` takes (with the bearer ingest token).
    #[wasm_bindgen(js_name = toBatch)]
    pub fn to_batch(
        &self,
        #[wasm_bindgen(unchecked_param_type = "SeriesLabels")] labels: JsValue,
    ) -> Result<String, JsValue> {
        let labels = edge_browser::js_to_json(&labels)
            .map_err(|e| edge_browser::bad_request("invalid-parameter", e))?;
        let text = |name: &str| labels.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let source = text("source").filter(|s| !s.is_empty()).ok_or_else(|| {
            edge_browser::bad_request("invalid-parameter", "labels.source is required")
        })?;
        let route = text("route").ok_or_else(|| {
            edge_browser::bad_request("invalid-parameter", "labels.route is required")
        })?;
        let status = match labels.get("status") {
            None | Some(serde_json::Value::Null) => 200,
            Some(v) => v
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| {
                    edge_browser::bad_request(
                        "invalid-parameter",
                        format!("labels.status {v} must be an HTTP status"),
                    )
                })?,
        };
        let at = labels
            .get("at")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(js_sys::Date::now);
        let mut window = Window::new(window_start(Timestamp::from_millis(at.max(0.0) as u64)));
        let key = SeriesKey {
            function: text("function").unwrap_or_else(|| source.clone()),
            route,
            method: text("method").unwrap_or_else(|| "GET".to_owned()),
            status,
        };
        window.series.insert(key, self.0.clone());
        // Through the wire form, as the function reads it: labels bounded
        // and checked the same way.
        let batch = MetricsBatch {
            source,
            id: String::new(),
            windows: vec![window],
        };
        serde_json::to_string(&batch).map_err(invalid_sketch)
    }
}
