//! The policy: the fusion defaults of the origin (`FUSION_MAX_DISTANCE`,
//! `FUSION_MIN_CONFIDENCE`), page and work bounds, tiling and caching.

use edge_core::policy::{Policy, PolicyDuration, Validator};
use edge_core::{Config, ConfigError};
use serde::Deserialize;

/// The variable overriding `spatial.fusion_max_distance_m`.
pub const MAX_DISTANCE_VAR: &str = "FUSION_MAX_DISTANCE";
/// The variable overriding `spatial.fusion_min_confidence`.
pub const MIN_CONFIDENCE_VAR: &str = "FUSION_MIN_CONFIDENCE";

/// The policy document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpatialPolicy {
    /// The `[spatial]` section.
    pub spatial: Section,
}

/// The `[spatial]` section (see `policy.toml` for each field).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The dataset served.
    pub dataset: String,
    /// Default radius and nearest-query reach, metres.
    pub fusion_max_distance_m: f64,
    /// Default minimum fusion confidence.
    pub fusion_min_confidence: f64,
    /// Default page size.
    pub default_limit: usize,
    /// Largest page.
    pub max_limit: usize,
    /// Largest `k`.
    pub max_k: usize,
    /// Tiles one query may read.
    pub max_tiles_per_query: usize,
    /// Assets per written tile.
    pub tile_capacity: usize,
    /// Tile cache per isolate, bytes.
    pub tile_cache_bytes: usize,
    /// How long the head is trusted.
    pub head_ttl: PolicyDuration,
    /// Vertices per polygon.
    pub max_polygon_vertices: usize,
    /// Stored zones.
    pub max_zones: usize,
    /// The secret holding the admin token.
    pub admin_token_secret: String,
}

impl Policy for SpatialPolicy {
    fn validate(&self, v: &mut Validator) {
        let s = &self.spatial;
        v.field("spatial", |v| {
            let name_ok = (1..=64).contains(&s.dataset.len())
                && s.dataset
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
            v.check(
                name_ok,
                "dataset",
                &s.dataset,
                "must be 1..=64 of [A-Za-z0-9_-]",
            );
            check_distance(v, "fusion_max_distance_m", s.fusion_max_distance_m);
            check_confidence(v, "fusion_min_confidence", s.fusion_min_confidence);
            v.check(
                s.max_limit >= 1 && s.max_limit <= 10_000,
                "max_limit",
                s.max_limit,
                "must be in 1..=10000",
            );
            v.check(
                s.default_limit >= 1 && s.default_limit <= s.max_limit,
                "default_limit",
                s.default_limit,
                "must be in 1..=max_limit",
            );
            v.check(
                s.max_k >= 1 && s.max_k <= 10_000,
                "max_k",
                s.max_k,
                "must be in 1..=10000",
            );
            v.check(
                s.max_tiles_per_query >= 1,
                "max_tiles_per_query",
                s.max_tiles_per_query,
                "must be >= 1",
            );
            v.check(
                (2..=65_536).contains(&s.tile_capacity),
                "tile_capacity",
                s.tile_capacity,
                "must be in 2..=65536",
            );
            v.check(
                (1 << 20..=1 << 30).contains(&s.tile_cache_bytes),
                "tile_cache_bytes",
                s.tile_cache_bytes,
                "must be in 1 MiB..=1 GiB",
            );
            v.check(
                s.max_polygon_vertices >= 4,
                "max_polygon_vertices",
                s.max_polygon_vertices,
                "must be >= 4",
            );
            v.check(
                s.max_zones <= 100_000,
                "max_zones",
                s.max_zones,
                "must be <= 100000",
            );
        });
    }
}

fn check_distance(v: &mut Validator, name: &str, value: f64) {
    v.check(
        value.is_finite() && value > 0.0 && value <= crate::geodesy::MAX_DISTANCE_M,
        name,
        value,
        "must be a distance in metres in (0, 20004000]",
    );
}

fn check_confidence(v: &mut Validator, name: &str, value: f64) {
    v.check(
        (0.0..=1.0).contains(&value),
        name,
        value,
        "must be in [0, 1]",
    );
}

impl Section {
    /// The section from the configuration, the fusion variables applied.
    pub fn from_config(config: &Config) -> Result<Section, ConfigError> {
        let mut s = config.policy::<SpatialPolicy>()?.spatial;
        let number = |name: &str,
                      ok: &dyn Fn(f64) -> bool,
                      rule: &str|
         -> Result<Option<f64>, ConfigError> {
            match config.var(name).map(str::trim) {
                None | Some("") => Ok(None),
                Some(text) => match text.parse::<f64>() {
                    Ok(v) if ok(v) => Ok(Some(v)),
                    _ => Err(ConfigError::Variable {
                        name: name.to_owned(),
                        value: text.to_owned(),
                        rule: rule.to_owned(),
                    }),
                },
            }
        };
        if let Some(d) = number(
            MAX_DISTANCE_VAR,
            &|v| v.is_finite() && v > 0.0 && v <= crate::geodesy::MAX_DISTANCE_M,
            "must be a distance in metres in (0, 20004000]",
        )? {
            s.fusion_max_distance_m = d;
        }
        if let Some(c) = number(
            MIN_CONFIDENCE_VAR,
            &|v| (0.0..=1.0).contains(&v),
            "must be in [0, 1]",
        )? {
            s.fusion_min_confidence = c;
        }
        Ok(s)
    }
}
