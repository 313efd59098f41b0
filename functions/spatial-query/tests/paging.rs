//! Paging is exact (issue 16): paging through any query returns exactly
//! `numberMatched` features, each once, in order, the same set for every
//! page size, and that set is what a brute-force scan of the assets finds.
//! Over random data with tight clusters, duplicate coordinates, points at
//! the poles (any longitude) and on the antimeridian (180 and -180), and
//! queries whose centres, box edges and polygon vertices sit exactly on
//! assets — including the same point written differently.
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use std::collections::BTreeSet;

use futures::executor::block_on;
use geo::coordinate_position::CoordPos;
use geo::{CoordinatePosition, LineString, MultiPolygon, Polygon};
use proptest::prelude::*;
use spatial_query::dataset::MemoryDataset;
use spatial_query::geodesy::{self, BoxSet};
use spatial_query::model::Asset;
use spatial_query::query::{self, Boundary, Filters, Limits, Query, Shape};
use uuid::Uuid;

fn asset(n: usize, lon: f64, lat: f64) -> Asset {
    Asset {
        id: Uuid::from_u128(
            0x5a00_0000_0000_4000_8000_0000_0000_0000 | (n as u128 * 7919 % 100_003),
        ),
        lon,
        lat,
        z: 1.0,
        deformation: [1.0, 2.0, 2.0],
        registration_quality: 0.5,
        fusion_confidence: (n % 10) as f64 / 10.0,
        processing_duration_ms: 100,
        algorithm_version: "fusion-2.3.1".into(),
        processed_at_ms: 1_700_000_000_000 + n as i64,
    }
}

/// Every page of `shape` at `limit`: the hits (id, distance) in order and
/// each page's `matched`.
fn pages(dataset: &MemoryDataset, shape: &Shape, limit: usize) -> (Vec<(Uuid, f64)>, Vec<u64>) {
    let mut after = None;
    let mut hits = Vec::new();
    let mut matched = Vec::new();
    for _ in 0..10_000 {
        let q = Query {
            shape: shape.clone(),
            filters: Filters::default(),
            limit,
            after,
        };
        let limits = Limits {
            max_tiles: usize::MAX,
        };
        let page = block_on(query::run(&dataset.manifest, dataset, &q, limits)).unwrap();
        matched.push(page.matched);
        assert!(page.hits.len() <= limit);
        hits.extend(
            page.hits
                .iter()
                .map(|h| (h.asset.id, h.distance_m.unwrap_or(0.0))),
        );
        match page.next {
            Some(c) => after = Some(c),
            None => return (hits, matched),
        }
    }
    panic!("paging did not end");
}

/// What a scan of every asset finds.
fn brute(assets: &[Asset], shape: &Shape) -> BTreeSet<Uuid> {
    assets
        .iter()
        .filter(|a| match shape {
            Shape::Radius { lon, lat, radius_m } => {
                geodesy::distance_m(*lon, *lat, a.lon, a.lat) <= *radius_m
            }
            Shape::BBox(b) => BoxSet::from_bbox(*b).contains(a.lon, a.lat),
            Shape::Polygon { area, boundary } => {
                match area.coordinate_position(&geo::coord! { x: a.lon, y: a.lat }) {
                    CoordPos::Inside => true,
                    CoordPos::OnBoundary => *boundary == Boundary::Include,
                    CoordPos::Outside => false,
                }
            }
            Shape::Nearest { .. } => false,
        })
        .map(|a| a.id)
        .chain(nearest(assets, shape))
        .collect()
}

/// The k nearest by a scan: (distance, id) order, the first k within reach.
fn nearest(assets: &[Asset], shape: &Shape) -> Vec<Uuid> {
    let Shape::Nearest {
        lon,
        lat,
        k,
        max_distance_m,
    } = shape
    else {
        return Vec::new();
    };
    let mut ranked: Vec<(f64, Uuid)> = assets
        .iter()
        .map(|a| (geodesy::distance_m(*lon, *lat, a.lon, a.lat), a.id))
        .filter(|(d, _)| d <= max_distance_m)
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    ranked.into_iter().take(*k).map(|(_, id)| id).collect()
}

fn check(assets: &[Asset], capacity: usize, shape: &Shape, sizes: &[usize]) {
    let dataset = MemoryDataset::new(assets.to_vec(), capacity);
    let expected = brute(assets, shape);
    let mut first: Option<Vec<Uuid>> = None;
    for &limit in sizes {
        let (hits, matched) = pages(&dataset, shape, limit);
        let ids: Vec<Uuid> = hits.iter().map(|h| h.0).collect();
        let set: BTreeSet<Uuid> = ids.iter().copied().collect();
        assert_eq!(
            set.len(),
            ids.len(),
            "an id twice at limit {limit}: {shape:?}"
        );
        for m in &matched {
            assert_eq!(
                *m as usize,
                ids.len(),
                "numberMatched {m}, paged {} at limit {limit}: {shape:?}",
                ids.len()
            );
        }
        assert_eq!(set, expected, "limit {limit}: {shape:?}");
        // In (distance, id) order across pages.
        for w in hits.windows(2) {
            assert!(
                w[0].1 < w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0),
                "out of order at limit {limit}: {w:?}"
            );
        }
        match &first {
            None => first = Some(ids),
            Some(f) => assert_eq!(f, &ids, "limit {limit} orders differently"),
        }
    }
}

/// Issue 16: 20 assets at (±180, 52.25), some written 180 and some -180,
/// a radius query at (-180, 52.25) paged one at a time.
#[test]
fn antimeridian_spellings_page_in_full() {
    let assets: Vec<Asset> = (0..20)
        .map(|i| asset(i, if i % 2 == 0 { 180.0 } else { -180.0 }, 52.25))
        .collect();
    for radius_m in [0.0, 1.0, 1000.0] {
        let shape = Shape::Radius {
            lon: -180.0,
            lat: 52.25,
            radius_m,
        };
        check(&assets, 4, &shape, &[1, 2, 3, 7, 20, 100]);
    }
}

/// Issue 16: assets at the north pole under every longitude, a radius
/// query at (0, 90): the whole set on every page size; radius 0 finds every
/// spelling of the pole.
#[test]
fn pole_spellings_page_in_full() {
    let mut assets: Vec<Asset> = (0..300)
        .map(|i| asset(i, -180.0 + (i as f64) * 1.2, 90.0))
        .collect();
    assets.extend((300..400).map(|i| asset(i, (i as f64) * 0.7 - 180.0, 89.9999)));
    for radius_m in [0.0, 5.0, 50.0] {
        let shape = Shape::Radius {
            lon: 0.0,
            lat: 90.0,
            radius_m,
        };
        check(&assets, 16, &shape, &[1, 7, 64, 1000]);
    }
    let at_pole = brute(
        &assets,
        &Shape::Radius {
            lon: 0.0,
            lat: 90.0,
            radius_m: 0.0,
        },
    );
    assert_eq!(at_pole.len(), 300);
}

/// A point from the awkward places.
fn point() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        // Uniform.
        (-180.0f64..=180.0, -90.0f64..=90.0),
        // Tight clusters around a few centres.
        (0usize..4, -1.0f64..1.0, -1.0f64..1.0).prop_map(|(c, dx, dy)| {
            let centres = [(13.4, 52.5), (-179.999, -16.5), (0.0, 0.0), (100.0, 89.99)];
            let (x, y) = centres[c];
            let x = x + dx * 1e-3;
            let x = if x < -180.0 { x + 360.0 } else { x };
            (x, (y + dy * 1e-3).clamp(-90.0, 90.0))
        }),
        // The poles, any longitude.
        (-180.0f64..=180.0, prop::bool::ANY).prop_map(|(x, n)| (x, if n { 90.0 } else { -90.0 })),
        // The antimeridian, both spellings.
        (-90.0f64..=90.0, prop::bool::ANY).prop_map(|(y, e)| (if e { 180.0 } else { -180.0 }, y)),
    ]
}

/// Assets, a fifth of them on the position of an earlier one (ties), the
/// pole and antimeridian ones sometimes respelled.
fn assets() -> impl Strategy<Value = Vec<Asset>> {
    prop::collection::vec((point(), 0u8..10, any::<prop::sample::Index>()), 1..160).prop_map(|v| {
        let mut out: Vec<Asset> = Vec::with_capacity(v.len());
        for (i, ((lon, lat), kind, pick)) in v.into_iter().enumerate() {
            let (lon, lat) = if kind < 2 && !out.is_empty() {
                let a = &out[pick.index(out.len())];
                match (a.lon, a.lat) {
                    (x, y) if y.abs() == 90.0 && kind == 1 => (-x, y),
                    (x, y) if x.abs() == 180.0 && kind == 1 => (-x, y),
                    p => p,
                }
            } else {
                (lon, lat)
            };
            out.push(asset(i, lon, lat));
        }
        out
    })
}

/// A query built on the assets: centres on them (respelled at a pole or
/// the antimeridian), box edges and polygon vertices on their coordinates.
fn shape(assets: &[Asset], kind: u8, pick: usize, scale: f64, other: usize) -> Shape {
    let a = &assets[pick % assets.len()];
    let b = &assets[other % assets.len()];
    if kind >= 8 {
        // Nearest, centred as the radius queries are.
        let (lon, lat) = match (a.lon, a.lat) {
            (_, y) if y.abs() == 90.0 => (0.0, y),
            (x, y) if x.abs() == 180.0 => (-x, y),
            p => p,
        };
        return Shape::Nearest {
            lon,
            lat,
            k: 1 + other % 40,
            max_distance_m: geodesy::MAX_DISTANCE_M,
        };
    }
    match kind % 4 {
        0 | 1 => {
            let (lon, lat) = match (a.lon, a.lat) {
                (_, y) if y.abs() == 90.0 => (0.0, y),
                (x, y) if x.abs() == 180.0 => (-x, y),
                p => p,
            };
            let radius_m = if kind.is_multiple_of(4) {
                0.0
            } else {
                scale * 500_000.0
            };
            Shape::Radius { lon, lat, radius_m }
        }
        2 => {
            let (lo, hi) = (a.lon.min(b.lon), a.lon.max(b.lon));
            // Half of them across the antimeridian (west > east), edges on
            // assets either way.
            let (w, e) = if kind >= 4 { (hi, lo) } else { (lo, hi) };
            Shape::BBox([w, a.lat.min(b.lat), e, a.lat.max(b.lat)])
        }
        _ => {
            // A triangle with vertices on a and b, an axis-parallel edge
            // through a, around a's neighbourhood.
            let d = 0.5 + scale * 10.0;
            let (x0, y0) = (a.lon, a.lat);
            let ring: Vec<(f64, f64)> =
                vec![(x0 - d, y0), (x0 + d, y0), (b.lon, b.lat), (x0 - d, y0)];
            let inside = ring
                .iter()
                .all(|&(x, y)| (-180.0..=180.0).contains(&x) && (-90.0..=90.0).contains(&y));
            let ring = if inside {
                ring
            } else {
                vec![(x0, y0), (x0, y0), (x0, y0), (x0, y0)]
            };
            Shape::Polygon {
                area: MultiPolygon(vec![Polygon::new(LineString::from(ring), vec![])]),
                boundary: if kind >= 4 {
                    Boundary::Exclude
                } else {
                    Boundary::Include
                },
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn paging_returns_exactly_the_matches_for_every_page_size(
        assets in assets(),
        capacity in 1usize..24,
        queries in prop::collection::vec((0u8..10, any::<usize>(), 0.0f64..1.0, any::<usize>()), 1..6),
        sizes in prop::collection::vec(1usize..9, 1..3),
    ) {
        let mut sizes = sizes;
        sizes.push(1000);
        for (kind, pick, scale, other) in queries {
            let s = shape(&assets, kind, pick, scale, other);
            check(&assets, capacity, &s, &sizes);
        }
    }
}
