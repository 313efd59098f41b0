//! Queries over a tiled dataset: which tiles to read (the manifest's
//! R-tree, pruned by the filters' summaries), which assets in them (each
//! tile's R-tree, then the exact test), in what order, one page at a time.
//!
//! Memory is bounded by the page: tiles are read one at a time (through a
//! [`TileSource`], which may cache them) and only the best `limit` hits
//! are kept; the rest are counted. Work is bounded by `max_tiles`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;

use async_trait::async_trait;
use geo::coordinate_position::CoordPos;
use geo::{BoundingRect, CoordinatePosition, MultiPolygon};
use uuid::Uuid;

use crate::geodesy::{self, BoxSet, Verdict};
use crate::manifest::{Manifest, TileEntry};
use crate::model::Asset;
use crate::tile::Tile;

/// Where tiles come from (the platform store, through a cache).
#[async_trait(?Send)]
pub trait TileSource {
    /// The tile `entry` names.
    async fn tile(&self, entry: &TileEntry) -> Result<Rc<Tile>, String>;
}

/// Attribute and time filters, ANDed with the shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Fusion confidence at least this.
    pub min_confidence: Option<f64>,
    /// Deformation magnitude (mm/year) at least this.
    pub min_magnitude: Option<f64>,
    /// Processed at or after this (ms since the epoch).
    pub from_ms: Option<i64>,
    /// Processed before this (ms since the epoch).
    pub to_ms: Option<i64>,
}

impl Filters {
    fn admits_tile(&self, e: &TileEntry) -> bool {
        self.min_confidence.is_none_or(|c| e.max_confidence >= c)
            && self.min_magnitude.is_none_or(|m| e.max_magnitude >= m)
            && self.from_ms.is_none_or(|f| e.time.1 >= f)
            && self.to_ms.is_none_or(|t| e.time.0 < t)
    }

    fn admits(&self, t: &Tile, i: usize) -> bool {
        self.min_confidence.is_none_or(|c| t.confidence(i) >= c)
            && self.min_magnitude.is_none_or(|m| t.magnitude(i) >= m)
            && self.from_ms.is_none_or(|f| t.processed_at_ms(i) >= f)
            && self.to_ms.is_none_or(|to| t.processed_at_ms(i) < to)
    }
}

/// Whether points on a polygon's boundary are in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Boundary {
    /// They are (PostGIS `ST_Covers`, `ST_Intersects`).
    #[default]
    Include,
    /// They are not (PostGIS `ST_Contains`).
    Exclude,
}

/// What a query selects.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Within a geodesic distance (WGS84) of a point, nearest first.
    Radius {
        /// Longitude, degrees.
        lon: f64,
        /// Latitude, degrees.
        lat: f64,
        /// Metres.
        radius_m: f64,
    },
    /// In a box `[west, south, east, north]` (west > east crosses the
    /// antimeridian), boundary included; by id.
    BBox([f64; 4]),
    /// In a (multi)polygon, planar in longitude/latitude, holes honoured; by id.
    Polygon {
        /// The area.
        area: MultiPolygon<f64>,
        /// Whether its boundary counts.
        boundary: Boundary,
    },
    /// The `k` nearest (geodesic), within `max_distance_m`.
    Nearest {
        /// Longitude, degrees.
        lon: f64,
        /// Latitude, degrees.
        lat: f64,
        /// How many.
        k: usize,
        /// Farthest considered, metres.
        max_distance_m: f64,
    },
}

/// A position in a result order: distance (0 for id order), then id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    /// Distance in metres (0 for queries ordered by id).
    pub distance_m: f64,
    /// The asset id.
    pub id: Uuid,
}

impl Cursor {
    fn cmp(&self, other: &Cursor) -> Ordering {
        self.distance_m
            .total_cmp(&other.distance_m)
            .then(self.id.cmp(&other.id))
    }

    /// The opaque text form (`next` in a page).
    pub fn encode(&self) -> String {
        format!("{:016x}{}", self.distance_m.to_bits(), self.id.simple())
    }

    /// Reads the text form.
    pub fn decode(text: &str) -> Option<Cursor> {
        let bits = u64::from_str_radix(text.get(..16)?, 16).ok()?;
        let id = Uuid::try_parse(text.get(16..)?).ok()?;
        let distance_m = f64::from_bits(bits);
        (distance_m.is_finite() && distance_m >= 0.0).then_some(Cursor { distance_m, id })
    }
}

/// A query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// What it selects.
    pub shape: Shape,
    /// Filters.
    pub filters: Filters,
    /// Page size.
    pub limit: usize,
    /// Start after this position.
    pub after: Option<Cursor>,
}

/// One asset found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The asset.
    pub asset: Asset,
    /// Its distance from the query point (radius and nearest queries).
    pub distance_m: Option<f64>,
}

/// One page of answers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// The hits, in order.
    pub hits: Vec<Hit>,
    /// How many assets match in all (every page).
    pub matched: u64,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
    /// Tiles read.
    pub tiles_read: usize,
}

/// Bounds on one query's work.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Tiles one query may read.
    pub max_tiles: usize,
}

/// A query that could not be answered.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    /// It would read more tiles than allowed.
    #[error(
        "the query touches {tiles} tiles, more than the {limit} allowed: narrow it or add filters"
    )]
    TooBroad {
        /// Tiles it touches.
        tiles: usize,
        /// The limit.
        limit: usize,
    },
    /// A tile could not be read.
    #[error("tile store: {0}")]
    Store(String),
}

struct Ranked {
    key: Cursor,
    hit: Hit,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.key.cmp(&other.key) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// The best `limit` matches after the cursor, and counts.
struct TopK {
    limit: usize,
    after: Option<Cursor>,
    heap: BinaryHeap<Ranked>,
    matched: u64,
    after_cursor: u64,
}

impl TopK {
    fn new(limit: usize, after: Option<Cursor>) -> Self {
        TopK {
            limit,
            after,
            heap: BinaryHeap::with_capacity(limit.min(4096) + 1),
            matched: 0,
            after_cursor: 0,
        }
    }

    fn offer(&mut self, key: Cursor, make: impl FnOnce() -> Asset) {
        self.matched += 1;
        if self.after.is_some_and(|a| key.cmp(&a) != Ordering::Greater) {
            return;
        }
        self.after_cursor += 1;
        if self.limit == 0 {
            return;
        }
        if self.heap.len() >= self.limit {
            match self.heap.peek() {
                Some(top) if key.cmp(&top.key) == Ordering::Less => {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        self.heap.push(Ranked {
            key,
            hit: Hit {
                asset: make(),
                distance_m: None,
            },
        });
    }

    /// Whether a hit whose key is at least `distance_m` could enter the
    /// page (so its exact key is worth computing).
    fn may_take(&self, distance_m: f64) -> bool {
        if self.after.is_some_and(|a| distance_m <= a.distance_m) {
            // It may fall before the cursor or after it: find out.
            return true;
        }
        self.heap.len() < self.limit
            || self
                .heap
                .peek()
                .is_some_and(|top| distance_m <= top.key.distance_m)
    }

    /// A match that cannot enter the page (so not before the cursor either).
    fn count_only(&mut self) {
        self.matched += 1;
        self.after_cursor += 1;
    }

    fn page(self, with_distance: bool, tiles_read: usize) -> Page {
        let more = self.after_cursor > self.heap.len() as u64;
        let ranked = self.heap.into_sorted_vec();
        let next = if more {
            ranked.last().map(|r| r.key)
        } else {
            None
        };
        let hits = ranked
            .into_iter()
            .map(|r| Hit {
                distance_m: with_distance.then_some(r.key.distance_m),
                asset: r.hit.asset,
            })
            .collect();
        Page {
            hits,
            matched: self.matched,
            next,
            tiles_read,
        }
    }
}

/// Answers a query.
pub async fn run(
    manifest: &Manifest,
    source: &dyn TileSource,
    query: &Query,
    limits: Limits,
) -> Result<Page, QueryError> {
    match &query.shape {
        Shape::Nearest {
            lon,
            lat,
            k,
            max_distance_m,
        } => {
            nearest(
                manifest,
                source,
                query,
                (*lon, *lat),
                *k,
                *max_distance_m,
                limits,
            )
            .await
        }
        _ => scan(manifest, source, query, limits).await,
    }
}

/// Radius, box and polygon queries: every touched tile once.
async fn scan(
    manifest: &Manifest,
    source: &dyn TileSource,
    query: &Query,
    limits: Limits,
) -> Result<Page, QueryError> {
    let boxes = match &query.shape {
        Shape::Radius { lon, lat, radius_m } => geodesy::circle_boxes(*lon, *lat, *radius_m),
        Shape::BBox(b) => BoxSet::from_bbox(*b),
        Shape::Polygon { area, .. } => match area.bounding_rect() {
            Some(r) => BoxSet(vec![[r.min().x, r.min().y, r.max().x, r.max().y]]),
            None => BoxSet(Vec::new()),
        },
        Shape::Nearest { .. } => BoxSet(Vec::new()),
    };
    let entries: Vec<&TileEntry> = manifest
        .touching(&boxes)
        .into_iter()
        .filter(|e| query.filters.admits_tile(e))
        .collect();
    if entries.len() > limits.max_tiles {
        return Err(QueryError::TooBroad {
            tiles: entries.len(),
            limit: limits.max_tiles,
        });
    }
    let mut top = TopK::new(query.limit, query.after);
    let radius = match &query.shape {
        Shape::Radius { lon, lat, radius_m } => {
            Some((geodesy::RadiusTest::new(*lon, *lat, *radius_m), *radius_m))
        }
        _ => None,
    };
    for entry in &entries {
        let tile = source.tile(entry).await.map_err(QueryError::Store)?;
        let mut candidates: Vec<u32> = boxes.0.iter().flat_map(|b| tile.search(b)).collect();
        if boxes.0.len() > 1 {
            candidates.sort_unstable();
            candidates.dedup();
        }
        for i in candidates {
            let i = i as usize;
            // A replaced or deleted version of an id is not an asset.
            if !query.filters.admits(&tile, i) || !manifest.live(tile.id(i).as_u128(), entry.run) {
                continue;
            }
            let (lon, lat) = (tile.lon(i), tile.lat(i));
            match &query.shape {
                Shape::Radius { .. } => {
                    let Some((test, radius_m)) = &radius else {
                        continue;
                    };
                    // The geodesic only where the sphere cannot decide, or
                    // where the hit may enter the page.
                    let exact = match test.verdict(lon, lat) {
                        Verdict::Outside => continue,
                        Verdict::Unsure => {
                            let d = test.distance_m(lon, lat);
                            if d > *radius_m {
                                continue;
                            }
                            Some(d)
                        }
                        Verdict::Inside => None,
                    };
                    if exact.is_none() && !top.may_take(test.lower_bound_m(lon, lat)) {
                        top.count_only();
                        continue;
                    }
                    let d = exact.unwrap_or_else(|| test.distance_m(lon, lat));
                    top.offer(
                        Cursor {
                            distance_m: d,
                            id: tile.id(i),
                        },
                        || tile.asset(i),
                    );
                }
                Shape::BBox(_) => {
                    top.offer(
                        Cursor {
                            distance_m: 0.0,
                            id: tile.id(i),
                        },
                        || tile.asset(i),
                    );
                }
                Shape::Polygon { area, boundary } => {
                    match (
                        area.coordinate_position(&geo::coord! { x: lon, y: lat }),
                        boundary,
                    ) {
                        (CoordPos::Inside, _) | (CoordPos::OnBoundary, Boundary::Include) => {
                            top.offer(
                                Cursor {
                                    distance_m: 0.0,
                                    id: tile.id(i),
                                },
                                || tile.asset(i),
                            );
                        }
                        _ => {}
                    }
                }
                Shape::Nearest { .. } => {}
            }
        }
    }
    let with_distance = matches!(query.shape, Shape::Radius { .. });
    Ok(top.page(with_distance, entries.len()))
}

/// The `k` nearest: radius queries of a growing radius, the first guessed
/// from the density of the tile under the point, until one holds `k`
/// matches (then its `k` closest are the `k` nearest) or reaches
/// `max_distance_m`.
async fn nearest(
    manifest: &Manifest,
    source: &dyn TileSource,
    query: &Query,
    (lon, lat): (f64, f64),
    k: usize,
    max_distance_m: f64,
    limits: Limits,
) -> Result<Page, QueryError> {
    let max_distance_m = max_distance_m.min(geodesy::MAX_DISTANCE_M);
    let density = manifest
        .touching(&BoxSet(vec![[lon, lat, lon, lat]]))
        .iter()
        .map(|e| f64::from(e.count) / geodesy::box_area_m2(&e.bbox).max(1.0))
        .fold(0.0, f64::max);
    let mut radius = if density > 0.0 {
        (k as f64 / (std::f64::consts::PI * density)).sqrt() * 1.5
    } else {
        1_000.0
    }
    .clamp(1.0, max_distance_m.max(1.0));
    let mut tiles_read = 0;
    loop {
        let pass = Query {
            shape: Shape::Radius {
                lon,
                lat,
                radius_m: radius.min(max_distance_m),
            },
            filters: query.filters.clone(),
            limit: k,
            after: None,
        };
        let mut page = scan(manifest, source, &pass, limits).await?;
        tiles_read += page.tiles_read;
        if page.matched >= k as u64 || radius >= max_distance_m {
            page.matched = page.matched.min(k as u64);
            page.tiles_read = tiles_read;
            // The k results, paged: those after the cursor, `limit` of them.
            let key = |h: &Hit| Cursor {
                distance_m: h.distance_m.unwrap_or(0.0),
                id: h.asset.id,
            };
            let mut rest: Vec<Hit> = page
                .hits
                .into_iter()
                .filter(|h| {
                    query
                        .after
                        .is_none_or(|a| key(h).cmp(&a) == Ordering::Greater)
                })
                .collect();
            let more = rest.len() > query.limit;
            rest.truncate(query.limit);
            page.next = if more { rest.last().map(key) } else { None };
            page.hits = rest;
            return Ok(page);
        }
        let grow = if page.matched == 0 {
            4.0
        } else {
            ((k as f64 / page.matched as f64).sqrt() * 1.3).clamp(1.5, 4.0)
        };
        radius *= grow;
    }
}
