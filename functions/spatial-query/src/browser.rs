//! The browser entry point (feature `browser`): `SpatialQueryFunction` is
//! the edge function itself (`fetch(Request)`, over the page's in-memory
//! store); `SpatialIndex` indexes a GeoJSON FeatureCollection or NDJSON in
//! the page and answers the same queries (`query({type: "radius", …})`)
//! with the same engine. Errors are `ProblemError`s with the type and
//! detail the edge function answers with.

use futures::executor::block_on;
use wasm_bindgen::prelude::*;

use crate::dataset::MemoryDataset;
use crate::ingest::{IngestLimits, InputFormat};
use crate::query::Limits;

edge_browser::export_function!(SpatialQueryFunction, crate::SpatialQuery);

/// Assets indexed in the page.
#[wasm_bindgen]
pub struct SpatialIndex {
    dataset: MemoryDataset,
    policy: crate::policy::Section,
    report: String,
}

#[wasm_bindgen]
impl SpatialIndex {
    /// Indexes `input` (`"geojson"` or `"ndjson"`); bad features are left
    /// out and listed in `report`. Throws on a structurally broken input.
    #[wasm_bindgen(constructor)]
    pub fn new(input: &str, format: &str) -> Result<SpatialIndex, JsValue> {
        let format = match format {
            "geojson" => InputFormat::GeoJson,
            "ndjson" => InputFormat::NdJson,
            other => {
                return Err(edge_browser::bad_request(
                    "invalid-parameter",
                    format!("format {other:?} must be \"geojson\" or \"ndjson\""),
                ));
            }
        };
        let (assets, report) =
            crate::ingest::read_all(format, IngestLimits::default(), input.as_bytes())
                .map_err(|e| edge_browser::bad_request("invalid-geojson", e))?;
        let config = edge_core::Config::new(
            <crate::SpatialQuery as edge_core::EdgeFunction>::DEFAULT_POLICY,
        );
        let policy =
            crate::policy::Section::from_config(&config).map_err(edge_browser::config_error)?;
        Ok(SpatialIndex {
            dataset: MemoryDataset::new(assets, policy.tile_capacity),
            report: serde_json::to_string(&report).unwrap_or_default(),
            policy,
        })
    }

    /// The ingest report as JSON: accepted, rejected, rejections.
    #[wasm_bindgen(getter)]
    pub fn report(&self) -> String {
        self.report.clone()
    }

    /// Answers a query given as an object or as JSON text (as `POST
    /// /assets/query` takes it: `{"type": "radius", …}`); returns a GeoJSON FeatureCollection as JSON text, or throws the
    /// problem's detail.
    pub fn query(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | Record<string, unknown>")] query: JsValue,
    ) -> Result<String, JsValue> {
        let query = match query.as_string() {
            Some(text) => text,
            None => edge_browser::js_to_json(&query)
                .map_err(|e| edge_browser::bad_request("invalid-query", e))?
                .to_string(),
        };
        let body: serde_json::Value = serde_json::from_str(&query).map_err(|e| {
            edge_browser::bad_request("invalid-json", format!("the query is not JSON: {e}"))
        })?;
        let fields = body.as_object().ok_or_else(|| {
            edge_browser::bad_request("invalid-query", "the query must be a JSON object")
        })?;
        let query = crate::request::parse_query(fields, None, None, &self.policy)
            .map_err(|p| edge_browser::problem_error(&p))?;
        // Every tile is in memory: nothing waits.
        let limits = Limits {
            max_tiles: usize::MAX,
        };
        let page = block_on(crate::query::run(
            &self.dataset.manifest,
            &self.dataset,
            &query,
            limits,
        ))
        .map_err(|e| {
            edge_browser::problem_error(
                &edge_core::Problem::new(
                    http::StatusCode::UNPROCESSABLE_ENTITY,
                    "query-too-broad",
                    "Query too broad",
                )
                .with_detail(e.to_string()),
            )
        })?;
        Ok(crate::page_json(&page).to_string())
    }
}
