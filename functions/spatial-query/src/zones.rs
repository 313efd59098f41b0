//! Geofences: named (multi)polygons stored as one record in the strongly
//! consistent store, indexed per isolate with an R*-tree of their boxes
//! (`rstar`), so "which zones contain this point" tests only the zones
//! whose box holds it.

use geo::{BoundingRect, CoordinatePosition, MultiPolygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::request::parse_area;

/// A zone as stored and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    /// Its id.
    pub id: String,
    /// Its GeoJSON geometry (Polygon or MultiPolygon).
    pub geometry: Value,
    /// Free properties.
    #[serde(default)]
    pub properties: Value,
}

impl Zone {
    /// As a GeoJSON Feature.
    pub fn to_feature(&self) -> Value {
        serde_json::json!({
            "type": "Feature",
            "id": self.id,
            "geometry": self.geometry,
            "properties": self.properties,
        })
    }
}

/// Whether a zone id is acceptable: 1..=128 of `[A-Za-z0-9_.-]`.
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// The stored zones, parsed and indexed.
pub struct ZoneIndex {
    zones: Vec<(Zone, MultiPolygon<f64>)>,
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
}

impl ZoneIndex {
    /// Reads the stored record (a JSON array of zones); zones that no
    /// longer parse are skipped.
    pub fn from_stored(bytes: Option<&[u8]>, max_vertices: usize) -> ZoneIndex {
        let zones: Vec<Zone> = bytes
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let zones: Vec<(Zone, MultiPolygon<f64>)> = zones
            .into_iter()
            .filter_map(|z| {
                let area = parse_area(&z.geometry, max_vertices).ok()?;
                Some((z, area))
            })
            .collect();
        let boxes = zones
            .iter()
            .enumerate()
            .filter_map(|(i, (_, area))| {
                let r = area.bounding_rect()?;
                Some(GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    i,
                ))
            })
            .collect();
        ZoneIndex {
            zones,
            tree: RTree::bulk_load(boxes),
        }
    }

    /// The zones holding a point (their boundary included), by id.
    pub fn containing(&self, lon: f64, lat: f64) -> Vec<&Zone> {
        let point = AABB::from_point([lon, lat]);
        let mut found: Vec<&Zone> = self
            .tree
            .locate_in_envelope_intersecting(&point)
            .filter_map(|g| self.zones.get(g.data))
            .filter(|(_, area)| {
                area.coordinate_position(&geo::coord! { x: lon, y: lat })
                    != geo::coordinate_position::CoordPos::Outside
            })
            .map(|(z, _)| z)
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }

    /// Every zone, by id.
    pub fn all(&self) -> Vec<&Zone> {
        let mut all: Vec<&Zone> = self.zones.iter().map(|(z, _)| z).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

/// The stored record with `zone` put (replacing one of the same id) or,
/// with `None`, `id` removed; `Err` when it would hold more than `max`.
pub fn updated(
    current: Option<&[u8]>,
    id: &str,
    zone: Option<Zone>,
    max: usize,
) -> Result<Vec<u8>, String> {
    let mut zones: Vec<Zone> = current
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    zones.retain(|z| z.id != id);
    if let Some(z) = zone {
        if zones.len() >= max {
            return Err(format!("at most {max} zones may be stored"));
        }
        zones.push(z);
    }
    serde_json::to_vec(&zones).map_err(|e| e.to_string())
}
