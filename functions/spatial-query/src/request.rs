//! Reading queries and geometries from requests: the query string of the
//! GET endpoints and the JSON body of `POST /assets/query` take the same
//! fields, checked here into a [`Query`] or a 400 naming the field.

use edge_core::Problem;
use geo::{MultiPolygon, Polygon};
use serde_json::{Map, Value};

use crate::geodesy::MAX_DISTANCE_M;
use crate::model::{TimestampError, parse_timestamp};
use crate::policy::Section;
use crate::query::{Boundary, Cursor, Filters, Query, Shape};

/// The query types.
const TYPES: &str = "radius, bbox, polygon, nearest";

fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    Problem::bad_request("invalid-query", detail).with_extension("field", field.to_owned())
}

/// Query-string pairs as JSON strings (percent-decoded).
pub fn query_fields(query: Option<&str>) -> Map<String, Value> {
    let mut map = Map::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(percent_decode(k), Value::String(percent_decode(v)));
    }
    map
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn number(&self, name: &str) -> Result<Option<f64>, Problem> {
        let v = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(_) => None,
        };
        match v {
            Some(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(invalid(name, format!("{name} must be a finite number"))),
        }
    }

    fn required(&self, name: &str) -> Result<f64, Problem> {
        self.number(name)?
            .ok_or_else(|| invalid(name, format!("{name} is required")))
    }

    fn text(&self, name: &str) -> Result<Option<&str>, Problem> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(name, format!("{name} must be a string"))),
        }
    }

    fn count(&self, name: &str, max: usize) -> Result<Option<usize>, Problem> {
        match self.number(name)? {
            None => Ok(None),
            Some(v) if v.fract() == 0.0 && v >= 1.0 && v <= max as f64 => Ok(Some(v as usize)),
            Some(_) => Err(invalid(
                name,
                format!("{name} must be an integer in 1..={max}"),
            )),
        }
    }

    fn point(&self) -> Result<(f64, f64), Problem> {
        let lon = self.required("lon")?;
        let lat = self.required("lat")?;
        if !(-180.0..=180.0).contains(&lon) {
            return Err(invalid("lon", format!("lon {lon} is out of [-180, 180]")));
        }
        if !(-90.0..=90.0).contains(&lat) {
            return Err(invalid("lat", format!("lat {lat} is out of [-90, 90]")));
        }
        Ok((lon, lat))
    }

    fn distance(&self, name: &str, default: f64) -> Result<f64, Problem> {
        match self.number(name)? {
            None => Ok(default),
            Some(d) if (0.0..=MAX_DISTANCE_M).contains(&d) => Ok(d),
            Some(d) => Err(invalid(
                name,
                format!("{name} {d} must be in [0, {MAX_DISTANCE_M}] metres"),
            )),
        }
    }
}

/// Reads `lon` and `lat` (a geofence probe); any other field is refused.
pub fn parse_point(fields: &Map<String, Value>) -> Result<(f64, f64), Problem> {
    only_known(fields, &["lon", "lat"], "a geofence probe")?;
    Fields(fields).point()
}

/// A 400 naming the first query parameter of a request that takes none.
pub fn no_parameters(query: Option<&str>) -> Result<(), Problem> {
    only_known(&query_fields(query), &[], "this endpoint")
}

/// Filters and paging, which every query takes.
const COMMON: [&str; 6] = [
    "min_confidence",
    "min_magnitude",
    "from",
    "to",
    "limit",
    "cursor",
];

/// A 400 naming the first field not in `known` (a typo such as `radius=`
/// must not fall back to a default silently).
fn only_known(fields: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), Problem> {
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(name) => {
            let shown: String = name.chars().take(40).collect();
            Err(invalid(
                &shown,
                if known.is_empty() {
                    format!("unknown parameter {shown:?}: {what} takes no query parameters")
                } else {
                    format!(
                        "unknown parameter {shown:?} for {what}: expected {}",
                        known.join(", ")
                    )
                },
            ))
        }
    }
}

/// The fields a query of `kind` takes; `from_body`: the JSON form, which
/// names its type and carries the geometry.
fn known_fields(kind: &str, from_body: bool) -> Vec<&'static str> {
    let mut known: Vec<&str> = match kind {
        "radius" => vec!["lon", "lat", "radius_m"],
        "bbox" => vec!["bbox"],
        "polygon" | "within" => vec!["boundary"],
        "nearest" | "knn" => vec!["lon", "lat", "k", "max_distance_m"],
        _ => Vec::new(),
    };
    known.extend_from_slice(&COMMON);
    if from_body {
        // `id`: the caller's label for the query (as in the oracle's and
        // the benchmark's query files), never read.
        known.extend_from_slice(&["type", "id"]);
        if matches!(kind, "polygon" | "within") {
            known.push("geometry");
        }
    }
    known
}

/// Reads a query; `kind` comes from the path when the body does not say.
pub fn parse_query(
    fields: &Map<String, Value>,
    kind: Option<&str>,
    geometry: Option<&Value>,
    policy: &Section,
) -> Result<Query, Problem> {
    let f = Fields(fields);
    let from_body = kind.is_none();
    let kind = match kind {
        Some(k) => k.to_owned(),
        None => f
            .text("type")?
            .ok_or_else(|| invalid("type", format!("type is required: one of {TYPES}")))?
            .to_owned(),
    };
    if matches!(
        kind.as_str(),
        "radius" | "bbox" | "polygon" | "within" | "nearest" | "knn"
    ) {
        only_known(
            fields,
            &known_fields(&kind, from_body),
            &format!("a {kind} query"),
        )?;
    }
    let shape = match kind.as_str() {
        "radius" => {
            let (lon, lat) = f.point()?;
            let radius_m = f.distance("radius_m", policy.fusion_max_distance_m)?;
            Shape::Radius { lon, lat, radius_m }
        }
        "bbox" => Shape::BBox(parse_bbox(fields.get("bbox"))?),
        "polygon" | "within" => {
            let boundary = match f.text("boundary")? {
                None | Some("include") => Boundary::Include,
                Some("exclude") => Boundary::Exclude,
                Some(_) => return Err(invalid("boundary", "boundary must be include or exclude")),
            };
            let geometry = geometry.or_else(|| fields.get("geometry")).ok_or_else(|| {
                invalid("geometry", "a GeoJSON Polygon or MultiPolygon is required")
            })?;
            let area = parse_area(geometry, policy.max_polygon_vertices)
                .map_err(|d| invalid("geometry", d))?;
            Shape::Polygon { area, boundary }
        }
        "nearest" | "knn" => {
            let (lon, lat) = f.point()?;
            let k = f.count("k", policy.max_k)?.unwrap_or(1);
            let max_distance_m = f.distance("max_distance_m", policy.fusion_max_distance_m)?;
            Shape::Nearest {
                lon,
                lat,
                k,
                max_distance_m,
            }
        }
        other => {
            let shown: String = other.chars().take(40).collect();
            return Err(invalid(
                "type",
                format!("unknown query type {shown:?}: one of {TYPES}"),
            ));
        }
    };
    let min_confidence = match f.number("min_confidence")? {
        None => policy.fusion_min_confidence,
        Some(c) if (0.0..=1.0).contains(&c) => c,
        Some(c) => {
            return Err(invalid(
                "min_confidence",
                format!("min_confidence {c} is out of [0, 1]"),
            ));
        }
    };
    let time = |name: &str| -> Result<Option<i64>, Problem> {
        match f.text(name)? {
            None => Ok(None),
            Some(t) => parse_timestamp(t).map(Some).map_err(|e| match e {
                TimestampError::Invalid => {
                    invalid(name, format!("{name} must be an RFC 3339 timestamp"))
                }
                TimestampError::FinerThanMillisecond => invalid(name, format!("{name}: {e}")),
            }),
        }
    };
    let filters = Filters {
        min_confidence: (min_confidence > 0.0).then_some(min_confidence),
        min_magnitude: match f.number("min_magnitude")? {
            Some(m) if m < 0.0 => {
                return Err(invalid("min_magnitude", "min_magnitude must be >= 0"));
            }
            m => m,
        },
        from_ms: time("from")?,
        to_ms: time("to")?,
    };
    if let (Some(from), Some(to)) = (filters.from_ms, filters.to_ms)
        && from > to
    {
        return Err(invalid(
            "from",
            "from is after to: the interval [from, to) would be empty",
        ));
    }
    let limit = match &shape {
        // The k results, in pages of `limit` (all of them by default).
        Shape::Nearest { k, .. } => f.count("limit", policy.max_limit)?.unwrap_or(*k),
        _ => f
            .count("limit", policy.max_limit)?
            .unwrap_or(policy.default_limit),
    };
    let after = match f.text("cursor")? {
        None => None,
        Some(c) => Some(
            Cursor::decode(c)
                .ok_or_else(|| invalid("cursor", "cursor is not one this function gave"))?,
        ),
    };
    Ok(Query {
        shape,
        filters,
        limit,
        after,
    })
}

fn parse_bbox(value: Option<&Value>) -> Result<[f64; 4], Problem> {
    let numbers: Option<Vec<f64>> = match value {
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().parse::<f64>().ok()).collect(),
        Some(Value::Array(a)) => a.iter().map(Value::as_f64).collect(),
        None | Some(Value::Null) => {
            return Err(invalid("bbox", "bbox is required: west,south,east,north"));
        }
        Some(_) => None,
    };
    let b: [f64; 4] = numbers
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| invalid("bbox", "bbox must be four numbers: west,south,east,north"))?;
    let lon_ok = |x: f64| (-180.0..=180.0).contains(&x);
    let lat_ok = |y: f64| (-90.0..=90.0).contains(&y);
    if !(lon_ok(b[0]) && lon_ok(b[2]) && lat_ok(b[1]) && lat_ok(b[3])) {
        return Err(invalid(
            "bbox",
            "bbox longitudes must be in [-180, 180] and latitudes in [-90, 90]",
        ));
    }
    if b[1] > b[3] {
        return Err(invalid("bbox", "bbox south must not be above north"));
    }
    Ok(b)
}

/// A GeoJSON Polygon or MultiPolygon (or a Feature holding one) as an
/// area: closed rings of at least four positions, coordinates in range,
/// at most `max_vertices` in all. The error says what is wrong.
pub fn parse_area(value: &Value, max_vertices: usize) -> Result<MultiPolygon<f64>, String> {
    let geometry = match value.get("type").and_then(Value::as_str) {
        Some("Feature") => value.get("geometry").ok_or("the Feature has no geometry")?,
        _ => value,
    };
    let parsed = serde_json::from_value::<geojson::Geometry>(geometry.clone())
        .map_err(|e| format!("not a GeoJSON geometry: {e}"))?;
    if !matches!(
        parsed.value,
        geojson::GeometryValue::Polygon { .. } | geojson::GeometryValue::MultiPolygon { .. }
    ) {
        return Err("the geometry must be a Polygon or MultiPolygon".into());
    }
    // Positions are checked before the conversion, which indexes them
    // unchecked (a position of one coordinate panicked inside `geojson`).
    check_rings(geometry, max_vertices)?;
    let area: MultiPolygon<f64> = match geo::Geometry::<f64>::try_from(parsed) {
        Ok(geo::Geometry::Polygon(p)) => MultiPolygon(vec![p]),
        Ok(geo::Geometry::MultiPolygon(m)) => m,
        Ok(_) => return Err("the geometry must be a Polygon or MultiPolygon".into()),
        Err(e) => return Err(format!("not a usable geometry: {e}")),
    };
    if area.0.is_empty() {
        return Err("the MultiPolygon has no polygons".into());
    }
    Ok(area)
}

/// geo-types closes rings silently; GeoJSON requires them closed, so the
/// positions are checked as written.
fn check_rings(geometry: &Value, max_vertices: usize) -> Result<(), String> {
    let polygons: Vec<&Value> = match geometry.get("type").and_then(Value::as_str) {
        Some("Polygon") => geometry.get("coordinates").into_iter().collect(),
        Some("MultiPolygon") => geometry
            .get("coordinates")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut vertices = 0usize;
    for polygon in polygons {
        let rings = polygon
            .as_array()
            .ok_or("a polygon must be an array of rings")?;
        if rings.is_empty() {
            return Err("a polygon needs an outer ring".into());
        }
        for ring in rings {
            let positions = ring
                .as_array()
                .ok_or("a ring must be an array of positions")?;
            if positions.len() < 4 {
                return Err("a ring needs at least four positions".into());
            }
            if positions.first() != positions.last() {
                return Err("a ring must be closed (first position = last)".into());
            }
            for p in positions {
                let lon = p
                    .get(0)
                    .and_then(Value::as_f64)
                    .ok_or("a position needs numbers")?;
                let lat = p
                    .get(1)
                    .and_then(Value::as_f64)
                    .ok_or("a position needs numbers")?;
                if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
                    return Err(format!("position [{lon}, {lat}] is out of range"));
                }
            }
            vertices += positions.len();
            if vertices > max_vertices {
                return Err(format!("more than {max_vertices} vertices"));
            }
        }
    }
    Ok(())
}

/// A polygon list's vertex count (for limits on stored zones).
pub fn vertex_count(area: &MultiPolygon<f64>) -> usize {
    area.0
        .iter()
        .map(|p: &Polygon<f64>| {
            p.exterior().0.len() + p.interiors().iter().map(|r| r.0.len()).sum::<usize>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `fuzz/` (spatial_query): a position of one coordinate
    /// panicked inside `geojson`'s conversion (index out of bounds), so a
    /// bad polygon body crashed the function instead of getting a 400.
    #[test]
    fn short_positions_are_refused_not_a_panic() {
        for geometry in [
            r#"{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1], [0, 0]]]}"#,
            r#"{"type": "MultiPolygon", "coordinates": [[[[0, 0], [1], [1, 1], [0, 0]]]]}"#,
            r#"{"type": "Point", "coordinates": [1]}"#,
            r#"{"type": "LineString", "coordinates": [[1], [2]]}"#,
        ] {
            let value: Value = serde_json::from_str(geometry).expect("JSON");
            assert!(parse_area(&value, 100).is_err(), "{geometry}");
        }
    }
}
