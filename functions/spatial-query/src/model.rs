//! The asset: one fused observation of a point on the ground, as the origin
//! schema has it (a POINTZ in EPSG:4326 with its deformation vector and the
//! quality of the fusion that produced it), and its GeoJSON form.
//!
//! Kept small and `Copy` but for the algorithm version, which tiles store
//! once per distinct value.

use serde_json::{Map, Value, json};
use uuid::Uuid;

/// The longest algorithm version accepted, in bytes.
pub const MAX_ALGORITHM_VERSION_BYTES: usize = 64;

/// One asset.
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    /// The asset's UUID.
    pub id: Uuid,
    /// Longitude in degrees, [-180, 180].
    pub lon: f64,
    /// Latitude in degrees, [-90, 90].
    pub lat: f64,
    /// Height in metres (the Z of the POINTZ; 0 when the input was 2-D).
    pub z: f64,
    /// Deformation velocity `[dx, dy, dz]` in mm/year.
    pub deformation: [f64; 3],
    /// Registration quality in [0, 1].
    pub registration_quality: f64,
    /// Fusion confidence in [0, 1].
    pub fusion_confidence: f64,
    /// How long the processing took, in milliseconds.
    pub processing_duration_ms: u32,
    /// The version of the fusion algorithm (at most
    /// [`MAX_ALGORITHM_VERSION_BYTES`]).
    pub algorithm_version: String,
    /// When it was processed, milliseconds since the Unix epoch (UTC).
    pub processed_at_ms: i64,
}

impl Asset {
    /// The deformation magnitude in mm/year, `|[dx, dy, dz]|`.
    pub fn magnitude(&self) -> f64 {
        magnitude(self.deformation)
    }

    /// The asset as a GeoJSON Feature; `extra` adds properties (such as a
    /// query's `distance_m`).
    pub fn to_feature(&self, extra: Option<(&str, Value)>) -> Value {
        let mut properties = Map::new();
        properties.insert("deformation".into(), json!(self.deformation));
        properties.insert("deformation_magnitude".into(), json!(self.magnitude()));
        properties.insert(
            "registration_quality".into(),
            json!(self.registration_quality),
        );
        properties.insert("fusion_confidence".into(), json!(self.fusion_confidence));
        properties.insert(
            "processing_duration_ms".into(),
            json!(self.processing_duration_ms),
        );
        properties.insert("algorithm_version".into(), json!(self.algorithm_version));
        properties.insert(
            "processed_at".into(),
            json!(format_timestamp(self.processed_at_ms)),
        );
        if let Some((name, value)) = extra {
            properties.insert(name.into(), value);
        }
        json!({
            "type": "Feature",
            "id": self.id.hyphenated().to_string(),
            "geometry": {"type": "Point", "coordinates": [self.lon, self.lat, self.z]},
            "properties": properties,
        })
    }
}

/// The assets with each id once: where an id repeats, its last write
/// wins (an id is a key), in the order of those last writes.
pub fn last_of_each_id(assets: Vec<Asset>) -> Vec<Asset> {
    let mut seen = std::collections::HashSet::with_capacity(assets.len());
    let mut out: Vec<Asset> = assets
        .into_iter()
        .rev()
        .filter(|a| seen.insert(a.id))
        .collect();
    out.reverse();
    out
}

/// `|v|`.
pub fn magnitude(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-03-01T12:00:00Z`,
/// with milliseconds only when there are some).
pub fn format_timestamp(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| ms.to_string()),
        Err(_) => ms.to_string(),
    }
}

/// Why a timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not RFC 3339, or out of range.
    #[error("not an RFC 3339 timestamp")]
    Invalid,
    /// It has digits below the millisecond, which the index does not keep;
    /// they are refused rather than cut off.
    #[error(
        "finer than a millisecond: timestamps are kept to the millisecond, so digits below it are refused, not cut off"
    )]
    FinerThanMillisecond,
}

/// An RFC 3339 timestamp as milliseconds since the epoch (exact, before
/// 1970 too). A timestamp with non-zero digits below the millisecond is
/// refused, never truncated.
pub fn parse_timestamp(text: &str) -> Result<i64, TimestampError> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| TimestampError::Invalid)?;
    let nanos = t.unix_timestamp_nanos();
    if nanos.rem_euclid(1_000_000) != 0 {
        return Err(TimestampError::FinerThanMillisecond);
    }
    i64::try_from(nanos.div_euclid(1_000_000)).map_err(|_| TimestampError::Invalid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let ms = parse_timestamp("2026-03-01T12:00:00.250Z").unwrap();
        assert_eq!(format_timestamp(ms), "2026-03-01T12:00:00.25Z");
        assert_eq!(parse_timestamp(&format_timestamp(ms)), Ok(ms));
        assert_eq!(
            parse_timestamp("2026-03-01T14:00:00+02:00"),
            parse_timestamp("2026-03-01T12:00:00Z")
        );
        assert!(parse_timestamp("yesterday").is_err());
    }

    /// Issue 16: digits below the millisecond were cut off (towards the
    /// future before 1970); they are refused, and whole milliseconds are
    /// exact on both sides of the epoch.
    #[test]
    fn sub_millisecond_digits_are_refused_and_pre_1970_is_exact() {
        for t in [
            "2026-03-01T12:00:00.0005Z",
            "2026-03-01T12:00:00.123456Z",
            "1969-12-31T23:59:59.9992Z",
            "1960-01-01T00:00:00.000000001Z",
        ] {
            assert_eq!(
                parse_timestamp(t),
                Err(TimestampError::FinerThanMillisecond),
                "{t}"
            );
        }
        assert_eq!(parse_timestamp("1969-12-31T23:59:59.999Z"), Ok(-1));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59.999000Z"), Ok(-1));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), Ok(-1000));
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            parse_timestamp(&format_timestamp(-86_400_001)),
            Ok(-86_400_001)
        );
    }
}
