//! Spatial query: geodesic radius, bounding-box, polygon, k-nearest, time
//! and attribute queries over fusion assets, and geofences, answered at the
//! edge from an index tiled in the platform store: a query reads only the
//! tiles it touches, so the dataset may be far larger than an isolate.
//!
//! | request | answer |
//! |---|---|
//! | `GET /assets/radius?lon&lat&radius_m` | within a geodesic radius (WGS84, as `ST_DWithin` on geography), nearest first |
//! | `GET /assets/bbox?bbox=w,s,e,n` | in a box (`w > e` crosses the antimeridian), boundary included, by id |
//! | `POST /assets/within?boundary=include\|exclude` | in a GeoJSON (Multi)Polygon, holes honoured (`ST_Covers` / `ST_Contains`), by id |
//! | `GET /assets/nearest?lon&lat&k&max_distance_m` | the `k` nearest with distances |
//! | `POST /assets/query` | any of them as JSON (`{"type": "radius", …}`) |
//! | every query | `min_confidence`, `min_magnitude`, `from`, `to` filters; `limit` and `cursor` paging; a GeoJSON FeatureCollection |
//! | `POST /assets` (admin) | a GeoJSON FeatureCollection or NDJSON batch written; an id is a key (a later write replaces it); bad features rejected with a report |
//! | `DELETE /assets/{id}` (admin) | the asset removed |
//! | `PUT /_spatial/blobs/{key}`, `POST /_spatial/publish` (admin) | tiles built by `spatial-tiles`, uploaded and made current |
//! | `GET /dataset` | the current head: assets, tiles, bytes |
//! | `GET /zones`, `GET/PUT/DELETE /zones/{id}` (writes admin) | geofence zones |
//! | `GET /geofence?lon&lat` | the zones containing a point |

pub mod dataset;
pub mod geodesy;
pub mod ingest;
pub mod manifest;
pub mod model;
mod packed;
pub mod partition;
pub mod policy;
pub mod query;
pub mod request;
pub mod tile;
pub mod zones;

#[cfg(all(feature = "browser", target_arch = "wasm32"))]
mod browser;
#[cfg(all(feature = "spin", target_arch = "wasm32"))]
mod spin;
#[cfg(all(feature = "workers", target_arch = "wasm32"))]
mod workers;

use std::cell::RefCell;
use std::rc::Rc;

use async_trait::async_trait;
use edge_core::admin::AdminGuard;
use edge_core::model::{empty_response, json_response, path_segments};
use edge_core::{Config, ConfigError, Context, EdgeFunction, Problem, Request, Response};
use http::{Method, StatusCode, header};
use serde_json::{Value, json};

pub use model::Asset;

use crate::dataset::{DatasetCache, DatasetError};
use crate::ingest::{IngestLimits, InputFormat};
use crate::manifest::Head;
use crate::policy::Section;
use crate::query::{Limits, Page, Query, QueryError};
use crate::zones::{Zone, ZoneIndex};

/// Attempts at a zone update before giving up on contention.
const ZONE_UPDATE_ATTEMPTS: u32 = 8;

/// The spatial-query function.
pub struct SpatialQuery {
    policy: Section,
    admin: AdminGuard,
    dataset: DatasetCache,
    zones: RefCell<Option<(Rc<ZoneIndex>, u64)>>,
}

#[async_trait(?Send)]
impl EdgeFunction for SpatialQuery {
    const NAME: &'static str = "spatial-query";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DEFAULT_POLICY: &'static str = include_str!("../policy.toml");
    const VARIABLES: &'static [&'static str] =
        &[policy::MAX_DISTANCE_VAR, policy::MIN_CONFIDENCE_VAR];
    const SECRETS: &'static [&'static str] = &["SPATIAL_ADMIN_TOKEN"];

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        let policy = Section::from_config(config)?;
        let admin = AdminGuard::new(config, "spatial-query", Some(&policy.admin_token_secret));
        let dataset = DatasetCache::new(
            &policy.dataset,
            policy.head_ttl.0.as_millis() as u64,
            policy.tile_cache_bytes,
        );
        Ok(SpatialQuery {
            policy,
            admin,
            dataset,
            zones: RefCell::new(None),
        })
    }

    fn route(&self, req: &Request) -> String {
        match path_segments(req).as_slice() {
            [
                "assets",
                kind @ ("radius" | "bbox" | "nearest" | "within" | "query"),
            ] => {
                format!("/assets/{kind}")
            }
            ["assets", _] => "/assets/{id}".to_owned(),
            ["zones", _] => "/zones/{name}".to_owned(),
            ["_spatial", "blobs", ..] => "/_spatial/blobs/{key}".to_owned(),
            _ => edge_core::function::default_route(req.uri().path()),
        }
    }

    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let segments: Vec<String> = path_segments(&req).into_iter().map(str::to_owned).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = req.method().clone();
        // Only the query endpoints and the geofence probe take query
        // parameters; elsewhere one is a mistake to report, not ignore.
        let takes_parameters = matches!(
            segments.as_slice(),
            ["assets", "radius" | "bbox" | "nearest" | "within"] | ["geofence"]
        );
        if !takes_parameters {
            request::no_parameters(req.uri().query())?;
        }
        match (segments.as_slice(), &method) {
            (["assets", kind @ ("radius" | "bbox" | "nearest")], &Method::GET) => {
                let fields = request::query_fields(req.uri().query());
                let query = request::parse_query(&fields, Some(kind), None, &self.policy)?;
                self.answer(&query, ctx).await
            }
            (["assets", "within"], &Method::POST) => {
                let fields = request::query_fields(req.uri().query());
                let body = json_body(&req)?;
                let query =
                    request::parse_query(&fields, Some("polygon"), Some(&body), &self.policy)?;
                self.answer(&query, ctx).await
            }
            (["assets", "query"], &Method::POST) => {
                let body = json_body(&req)?;
                let fields = body.as_object().ok_or_else(|| {
                    Problem::bad_request("invalid-query", "the body must be a JSON object")
                })?;
                let query = request::parse_query(fields, None, None, &self.policy)?;
                self.answer(&query, ctx).await
            }
            (["assets", "radius" | "bbox" | "nearest"], m) => {
                Err(Problem::method_not_allowed(m, &[Method::GET]))
            }
            (["assets", "within" | "query"], m) => {
                Err(Problem::method_not_allowed(m, &[Method::POST]))
            }
            (["assets"], &Method::POST) => {
                self.authorize(&req)?;
                self.ingest(&req, ctx).await
            }
            (["assets"], m) => Err(Problem::method_not_allowed(m, &[Method::POST])),
            (["assets", id], &Method::DELETE) => {
                self.authorize(&req)?;
                self.delete(id, ctx).await
            }
            (["assets", _], m) => Err(Problem::method_not_allowed(m, &[Method::DELETE])),
            (["dataset"], &Method::GET) => self.describe(ctx).await,
            (["_spatial", "blobs", key @ ..], &Method::PUT) => {
                self.authorize(&req)?;
                self.put_blob(&key.join("/"), req.body(), ctx).await
            }
            (["_spatial", "publish"], &Method::POST) => {
                self.authorize(&req)?;
                self.publish(&req, ctx).await
            }
            (["zones"], &Method::GET) => {
                let zones = self.zones(ctx).await?;
                Ok(feature_collection(
                    zones.all().iter().map(|z| z.to_feature()).collect(),
                ))
            }
            (["zones", id], m) => self.zone(id, m, &req, ctx).await,
            (["geofence"], &Method::GET) => {
                let fields = request::query_fields(req.uri().query());
                let (lon, lat) = request::parse_point(&fields)?;
                let zones = self.zones(ctx).await?;
                let found: Vec<Value> = zones
                    .containing(lon, lat)
                    .iter()
                    .map(|z| z.to_feature())
                    .collect();
                Ok(feature_collection(found))
            }
            _ => Err(Problem::not_found(req.uri().path())),
        }
    }
}

impl SpatialQuery {
    /// The policy in force.
    pub fn policy(&self) -> &Section {
        &self.policy
    }

    /// Answers a query from the dataset in the store.
    pub async fn run(&self, query: &Query, ctx: &Context<'_>) -> Result<Page, Problem> {
        let now = ctx.clock().now().as_millis();
        let current = self
            .dataset
            .current(ctx.store(), ctx.cache(), now)
            .await
            .map_err(|e| dataset_problem(ctx, &e))?;
        let Some((_, manifest)) = current else {
            return Ok(Page::default());
        };
        let limits = Limits {
            max_tiles: self.policy.max_tiles_per_query,
        };
        query::run(&manifest, &self.dataset.source(ctx.cache()), query, limits)
            .await
            .map_err(|e| match e {
                QueryError::TooBroad { tiles, limit } => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "query-too-broad",
                    "Query too broad",
                )
                .with_detail(e.to_string())
                .with_extension("tiles", tiles)
                .with_extension("limit", limit),
                QueryError::Store(reason) => {
                    ctx.log()
                        .error("tile read failed", json!({ "reason": reason }));
                    Problem::store_unavailable(5)
                }
            })
    }

    async fn answer(&self, query: &Query, ctx: &Context<'_>) -> Result<Response, Problem> {
        let page = self.run(query, ctx).await?;
        ctx.gauge("tile_cache_bytes", self.dataset.cached_bytes() as f64);
        Ok(json_response(StatusCode::OK, &page_json(&page)))
    }

    fn authorize(&self, req: &Request) -> Result<(), Problem> {
        self.admin.check(req, "writing the dataset or zones")
    }

    async fn ingest(&self, req: &Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let format = InputFormat::from_content_type(content_type).ok_or_else(|| {
            unsupported_media_type(
                "send application/geo+json (a FeatureCollection) or application/x-ndjson",
            )
        })?;
        let (assets, report) = ingest::read_all(format, IngestLimits::default(), req.body())
            .map_err(|e| Problem::bad_request("invalid-geojson", e.to_string()))?;
        let report_json = serde_json::to_value(&report).unwrap_or(Value::Null);
        if assets.is_empty() {
            if report.rejected > 0 {
                // Nothing to add: a problem, with the report saying why.
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "no-valid-features",
                    "No valid features",
                )
                .with_detail(format!(
                    "every feature ({}) was rejected; nothing was added: see report.rejections",
                    report.rejected
                ))
                .with_extension("report", report_json));
            }
            return Ok(json_response(
                StatusCode::OK,
                &json!({ "report": report_json }),
            ));
        }
        let now = ctx.clock().now().to_rfc3339();
        let head = self
            .dataset
            .ingest(
                assets,
                self.policy.tile_capacity,
                ctx.store(),
                ctx.cache(),
                &now,
            )
            .await
            .map_err(|e| dataset_problem(ctx, &e))?;
        ctx.log().info(
            "assets ingested",
            json!({ "accepted": report.accepted, "rejected": report.rejected, "run": head.run }),
        );
        Ok(json_response(
            StatusCode::CREATED,
            &json!({ "report": report_json, "dataset": head }),
        ))
    }

    async fn delete(&self, id: &str, ctx: &Context<'_>) -> Result<Response, Problem> {
        let uuid = uuid::Uuid::try_parse(id).map_err(|_| {
            Problem::bad_request("invalid-id", "an asset id is a UUID")
                .with_extension("field", "id")
        })?;
        let now = ctx.clock().now().to_rfc3339();
        let head = self
            .dataset
            .delete(uuid, ctx.store(), ctx.cache(), &now)
            .await
            .map_err(|e| dataset_problem(ctx, &e))?;
        match head {
            Some(head) => {
                ctx.log().info(
                    "asset deleted",
                    json!({ "id": uuid.hyphenated().to_string(), "run": head.run }),
                );
                Ok(empty_response(StatusCode::NO_CONTENT))
            }
            None => Err(
                Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found")
                    .with_detail(format!("no asset {}", uuid.hyphenated()))
                    .with_extension("field", "id"),
            ),
        }
    }

    async fn describe(&self, ctx: &Context<'_>) -> Result<Response, Problem> {
        let now = ctx.clock().now().as_millis();
        let current = self
            .dataset
            .current(ctx.store(), ctx.cache(), now)
            .await
            .map_err(|e| dataset_problem(ctx, &e))?;
        let head = current.map(|(h, _)| h);
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "dataset": self.dataset.name(),
                "head": head,
                "cached_tile_bytes": self.dataset.cached_bytes(),
                "wasm_memory_bytes": wasm_memory_bytes(),
            }),
        ))
    }

    async fn put_blob(
        &self,
        key: &str,
        body: &[u8],
        ctx: &Context<'_>,
    ) -> Result<Response, Problem> {
        let prefix = format!("sq/{}/", self.dataset.name());
        let allowed = key
            .strip_prefix(&prefix)
            .is_some_and(|rest| rest.starts_with("t/") || rest.starts_with("m/"))
            && !key.contains("..");
        if !allowed {
            return Err(Problem::bad_request(
                "invalid-key",
                format!("blob keys must start with {prefix}t/ or {prefix}m/"),
            ));
        }
        ctx.cache()
            .set(key, body)
            .await
            .map_err(|e| dataset_problem(ctx, &DatasetError::Store(e)))?;
        Ok(empty_response(StatusCode::NO_CONTENT))
    }

    async fn publish(&self, req: &Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let body = json_body(req)?;
        if let Some(fields) = body.as_object()
            && let Some(name) = fields
                .keys()
                .find(|k| !["head", "expected_run"].contains(&k.as_str()))
        {
            let shown: String = name.chars().take(40).collect();
            return Err(Problem::bad_request(
                "invalid-head",
                format!("unknown member {shown:?}: a publish takes head and expected_run"),
            )
            .with_extension("field", shown));
        }
        let head: Head = serde_json::from_value(body.get("head").cloned().unwrap_or(Value::Null))
            .map_err(|e| Problem::bad_request("invalid-head", format!("head: {e}")))?;
        let expected =
            match body.get("expected_run") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(
                    || Problem::bad_request("invalid-head", "expected_run must be a run number"),
                )?),
            };
        let head = self
            .dataset
            .publish(head, expected, ctx.store(), ctx.cache())
            .await
            .map_err(|e| match e {
                DatasetError::Moved { .. } => {
                    Problem::new(StatusCode::CONFLICT, "head-moved", "Conflict")
                        .with_detail(e.to_string())
                }
                DatasetError::Damaged(reason) => Problem::bad_request("invalid-upload", reason),
                other => dataset_problem(ctx, &other),
            })?;
        ctx.log().info(
            "dataset published",
            json!({ "run": head.run, "assets": head.assets }),
        );
        Ok(json_response(StatusCode::OK, &json!({ "dataset": head })))
    }

    async fn zones(&self, ctx: &Context<'_>) -> Result<Rc<ZoneIndex>, Problem> {
        let now = ctx.clock().now().as_millis();
        let ttl = self.policy.head_ttl.0.as_millis() as u64;
        if let Some((index, at)) = self.zones.borrow().as_ref()
            && now.saturating_sub(*at) < ttl
        {
            return Ok(index.clone());
        }
        let stored = ctx
            .store()
            .get(&zones_key(self.dataset.name()))
            .await
            .map_err(|e| dataset_problem(ctx, &DatasetError::Store(e)))?;
        let index = Rc::new(ZoneIndex::from_stored(
            stored.as_deref(),
            self.policy.max_polygon_vertices,
        ));
        *self.zones.borrow_mut() = Some((index.clone(), now));
        Ok(index)
    }

    async fn zone(
        &self,
        id: &str,
        method: &Method,
        req: &Request,
        ctx: &Context<'_>,
    ) -> Result<Response, Problem> {
        if !zones::valid_id(id) {
            return Err(Problem::bad_request(
                "invalid-zone",
                "zone ids are 1..=128 of [A-Za-z0-9_.-]",
            )
            .with_extension("field", "id"));
        }
        let change = match *method {
            Method::GET => {
                let zones = self.zones(ctx).await?;
                return match zones.all().into_iter().find(|z| z.id == id) {
                    Some(z) => Ok(json_response(StatusCode::OK, &z.to_feature())),
                    None => Err(Problem::not_found(req.uri().path())),
                };
            }
            Method::PUT => {
                self.authorize(req)?;
                let body = json_body(req)?;
                let geometry = match body.get("type").and_then(Value::as_str) {
                    Some("Feature") => body.get("geometry").cloned().unwrap_or(Value::Null),
                    _ => body.clone(),
                };
                request::parse_area(&geometry, self.policy.max_polygon_vertices).map_err(|d| {
                    Problem::bad_request("invalid-zone", d).with_extension("field", "geometry")
                })?;
                let properties = body.get("properties").cloned().unwrap_or(Value::Null);
                Some(Zone {
                    id: id.to_owned(),
                    geometry,
                    properties,
                })
            }
            Method::DELETE => {
                self.authorize(req)?;
                None
            }
            ref other => {
                return Err(Problem::method_not_allowed(
                    other,
                    &[Method::GET, Method::PUT, Method::DELETE],
                ));
            }
        };
        let max = self.policy.max_zones;
        let result = edge_core::platform::update(
            ctx.store(),
            &zones_key(self.dataset.name()),
            ZONE_UPDATE_ATTEMPTS,
            |current| match zones::updated(current, id, change.clone(), max) {
                Ok(new) => (new, Ok(())),
                Err(e) => (
                    current
                        .map(<[u8]>::to_vec)
                        .unwrap_or_else(|| b"[]".to_vec()),
                    Err(e),
                ),
            },
        )
        .await
        .map_err(|e| dataset_problem(ctx, &DatasetError::Store(e)))?;
        result.map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too-many-zones",
                "Too many zones",
            )
            .with_detail(e)
        })?;
        *self.zones.borrow_mut() = None;
        Ok(empty_response(StatusCode::NO_CONTENT))
    }
}

/// The size of this instance's linear memory (what the isolate holds for
/// it), or `None` natively.
fn wasm_memory_bytes() -> Option<usize> {
    #[cfg(target_arch = "wasm32")]
    {
        Some(core::arch::wasm32::memory_size::<0>() * 65_536)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        None
    }
}

fn zones_key(dataset: &str) -> String {
    format!("sq/{dataset}/zones")
}

/// A 415 for a body whose declared media type is not JSON.
fn unsupported_media_type(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
    )
    .with_detail(detail)
}

/// Whether a declared media type is JSON: `application/json` or any
/// `…+json` (`application/geo+json`), parameters ignored; no declaration
/// is taken as JSON.
fn is_json_media_type(content_type: Option<&str>) -> bool {
    let Some(value) = content_type else {
        return true;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.is_empty()
        || essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body as JSON: a 415 when the request says it is something else, a
/// 400 when it is not JSON.
fn json_body(req: &Request) -> Result<Value, Problem> {
    let content_type = req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str());
    let declared = match content_type {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => Some("?"),
    };
    if !is_json_media_type(declared) {
        let shown: String = declared.unwrap_or("").chars().take(60).collect();
        return Err(unsupported_media_type(format!(
            "the body is {shown:?}: send application/json or application/geo+json"
        )));
    }
    serde_json::from_slice(req.body()).map_err(|e| {
        Problem::bad_request(
            "invalid-json",
            format!(
                "the body is not JSON: line {}, column {}",
                e.line(),
                e.column()
            ),
        )
    })
}

fn dataset_problem(ctx: &Context<'_>, e: &DatasetError) -> Problem {
    ctx.log()
        .error("dataset unavailable", json!({ "reason": e.to_string() }));
    match e {
        DatasetError::Damaged(_) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "dataset-damaged",
            "Dataset damaged",
        )
        .with_detail("the stored index could not be read; see the logs"),
        _ => Problem::store_unavailable(5),
    }
}

fn feature_collection(features: Vec<Value>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({ "type": "FeatureCollection", "features": features }),
    )
}

/// A page as a GeoJSON FeatureCollection with OGC API-style counts.
pub fn page_json(page: &Page) -> Value {
    let features: Vec<Value> = page
        .hits
        .iter()
        .map(|h| {
            // Millimetres: what a distance means here, and the same on
            // every runtime (their libm may differ in the last bits).
            let rounded = h
                .distance_m
                .map(|d| ("distance_m", json!((d * 1000.0).round() / 1000.0)));
            h.asset.to_feature(rounded)
        })
        .collect();
    json!({
        "type": "FeatureCollection",
        "numberMatched": page.matched,
        "numberReturned": features.len(),
        "next": page.next.map(|c| c.encode()),
        "tilesRead": page.tiles_read,
        "features": features,
    })
}
