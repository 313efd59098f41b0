//! Distances on the WGS84 ellipsoid and the boxes that bound them.
//!
//! Radius queries are answered as `ST_DWithin` on geography does: the
//! geodesic distance on WGS84 (Karney's algorithm, through `geo`), compared
//! with the radius. The index is searched with longitude/latitude boxes, so
//! a radius needs a box that provably holds every point within it; the
//! bounds here are conservative, the exact test is always the geodesic.

use geo::{Distance, Geodesic, Point};

/// WGS84 semi-major axis, metres.
const A: f64 = 6_378_137.0;
/// WGS84 flattening.
const F: f64 = 1.0 / 298.257_223_563;
/// The smallest meridional radius of curvature on WGS84 (at the equator),
/// `a (1 - e²)`: no path gains a degree of latitude in less than this many
/// metres per radian.
const MERIDIONAL_MIN: f64 = A * (1.0 - F * (2.0 - F));
/// Half the Earth's meridian: no two points are farther apart (metres, rounded up).
pub const MAX_DISTANCE_M: f64 = 20_004_000.0;

/// A box in degrees: `[west, south, east, north]`, `west <= east` (never
/// crossing the antimeridian; [`BoxSet`] splits those).
pub type LonLatBox = [f64; 4];

/// One or two boxes (two when the area crosses the antimeridian).
#[derive(Debug, Clone, PartialEq)]
pub struct BoxSet(pub Vec<LonLatBox>);

impl BoxSet {
    /// The boxes of `[west, south, east, north]` where `west > east` means
    /// crossing the antimeridian.
    pub fn from_bbox(bbox: [f64; 4]) -> BoxSet {
        let [w, s, e, n] = bbox;
        if w <= e {
            BoxSet(vec![[w, s, e, n]])
        } else {
            BoxSet(vec![[w, s, 180.0, n], [-180.0, s, e, n]])
        }
    }

    /// Whether a point is in one of the boxes (boundaries included).
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        self.0
            .iter()
            .any(|b| lon >= b[0] && lon <= b[2] && lat >= b[1] && lat <= b[3])
    }

    /// Whether a box intersects one of them.
    pub fn intersects(&self, other: &LonLatBox) -> bool {
        self.0
            .iter()
            .any(|b| other[0] <= b[2] && other[2] >= b[0] && other[1] <= b[3] && other[3] >= b[1])
    }
}

/// The geodesic distance in metres between two points given as (lon, lat).
pub fn distance_m(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    Geodesic.distance(Point::new(lon1, lat1), Point::new(lon2, lat2))
}

/// Boxes holding every point within `radius_m` (geodesic) of (lon, lat).
///
/// Latitude: a path gains at most `r / M_min` radians of latitude.
/// Longitude: along a path whose latitude stays within that band, a radian
/// of longitude costs at least `a cos φ_far` metres (the prime vertical
/// radius is never below `a`). When the band reaches a pole every longitude
/// is possible.
pub fn circle_boxes(lon: f64, lat: f64, radius_m: f64) -> BoxSet {
    const EPS: f64 = 1e-9;
    let r = radius_m.max(0.0);
    let dlat = (r / MERIDIONAL_MIN).to_degrees() + EPS;
    let south = (lat - dlat).max(-90.0);
    let north = (lat + dlat).min(90.0);
    if south <= -90.0 || north >= 90.0 {
        return BoxSet(vec![[-180.0, south, 180.0, north]]);
    }
    let far = south.abs().max(north.abs()).to_radians();
    let dlon = (r / (A * far.cos())).to_degrees() + EPS;
    if dlon >= 180.0 {
        return BoxSet(vec![[-180.0, south, 180.0, north]]);
    }
    let (west, east) = (lon - dlon, lon + dlon);
    if west < -180.0 {
        BoxSet(vec![
            [west + 360.0, south, 180.0, north],
            [-180.0, south, east, north],
        ])
    } else if east > 180.0 {
        BoxSet(vec![
            [west, south, 180.0, north],
            [-180.0, south, east - 360.0, north],
        ])
    } else {
        BoxSet(vec![[west, south, east, north]])
    }
}

/// Where a point stands against a radius, decided cheaply where possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Certainly within the radius.
    Inside,
    /// Certainly beyond it.
    Outside,
    /// Too close to the circle to tell without the geodesic.
    Unsure,
}

/// A radius around a point, tested first on the sphere.
///
/// In geodetic coordinates the WGS84 metric is `M² dφ² + N² cos²φ dλ²` and
/// the sphere's `R² dφ² + R² cos²φ dλ²`; with `R` the mean radius, `M/R`
/// and `N/R` stay within [0.9944, 1.0045], so every path, and so the
/// geodesic distance, is within that factor of the great-circle distance.
/// Points clearly inside or outside (1% margins) skip Karney's algorithm.
#[derive(Debug, Clone, Copy)]
pub struct RadiusTest {
    lon: f64,
    lat: f64,
    cos_lat: f64,
    /// Haversine `a` below which a point is certainly inside.
    a_inside: f64,
    /// Haversine `a` above which a point is certainly outside.
    a_outside: f64,
}

/// The sphere's radius for [`RadiusTest`]: the mean Earth radius.
const R_MEAN: f64 = 6_371_008.8;
/// Bounds on geodesic / great-circle distance, widened to 1%.
const RATIO_LOW: f64 = 0.99;
const RATIO_HIGH: f64 = 1.01;
/// Absolute slack on every sphere-side bound, metres. The ratios cover the
/// ellipsoid; this covers rounding, which is absolute where the distance is
/// near 0: at a pole `cos(90°)` is 6e-17, not 0, so two spellings of the
/// pole (any two longitudes) are ~8e-10 m apart on the computed sphere
/// while the geodesic says 0, and Karney's algorithm is itself good to
/// ~15 nm. Without it a bound could exceed the exact distance it bounds.
const SLACK_M: f64 = 1e-6;

impl RadiusTest {
    /// The test for `radius_m` around (lon, lat).
    pub fn new(lon: f64, lat: f64, radius_m: f64) -> Self {
        let a_of = |d: f64| {
            let half = (d / R_MEAN / 2.0).min(std::f64::consts::FRAC_PI_2);
            half.sin().powi(2)
        };
        RadiusTest {
            lon,
            lat,
            cos_lat: lat.to_radians().cos(),
            // Never "inside" below the slack (a negative radius is none).
            a_inside: if radius_m / RATIO_HIGH > SLACK_M {
                a_of(radius_m / RATIO_HIGH - SLACK_M)
            } else {
                -1.0
            },
            a_outside: if radius_m / RATIO_LOW + SLACK_M >= std::f64::consts::PI * R_MEAN {
                f64::INFINITY
            } else {
                a_of(radius_m.max(0.0) / RATIO_LOW + SLACK_M)
            },
        }
    }

    fn haversine_a(&self, lon: f64, lat: f64) -> f64 {
        let dlat = (lat - self.lat).to_radians();
        let dlon = (lon - self.lon).to_radians();
        let s1 = (dlat / 2.0).sin();
        let s2 = (dlon / 2.0).sin();
        s1 * s1 + self.cos_lat * lat.to_radians().cos() * s2 * s2
    }

    /// Where (lon, lat) stands.
    pub fn verdict(&self, lon: f64, lat: f64) -> Verdict {
        let a = self.haversine_a(lon, lat);
        if a < self.a_inside {
            Verdict::Inside
        } else if a > self.a_outside {
            Verdict::Outside
        } else {
            Verdict::Unsure
        }
    }

    /// A lower bound of the geodesic distance to (lon, lat) as
    /// [`RadiusTest::distance_m`] computes it, metres (0 where rounding
    /// could put the sphere's figure above it).
    pub fn lower_bound_m(&self, lon: f64, lat: f64) -> f64 {
        let a = self.haversine_a(lon, lat).clamp(0.0, 1.0);
        (2.0 * R_MEAN * a.sqrt().asin() * RATIO_LOW - SLACK_M).max(0.0)
    }

    /// The exact geodesic distance to (lon, lat), metres.
    pub fn distance_m(&self, lon: f64, lat: f64) -> f64 {
        distance_m(self.lon, self.lat, lon, lat)
    }
}

/// The area of a box in square metres on a sphere of the mean radius
/// (for density estimates only).
pub fn box_area_m2(b: &LonLatBox) -> f64 {
    const R: f64 = 6_371_008.8;
    let dlon = (b[2] - b[0]).to_radians().max(0.0);
    R * R * dlon * (b[3].to_radians().sin() - b[1].to_radians().sin()).abs()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use geo::Destination;
    use proptest::prelude::*;

    #[test]
    fn known_distances() {
        // Karney's test: JFK to LHR, metres.
        let d = distance_m(-73.7781, 40.6413, -0.4543, 51.4700);
        assert!((d - 5_554_539.0).abs() < 2_000.0, "{d}");
        assert_eq!(distance_m(10.0, 20.0, 10.0, 20.0), 0.0);
        assert!(distance_m(0.0, 90.0, 0.0, -90.0) < MAX_DISTANCE_M);
    }

    #[test]
    fn antimeridian_circle_splits() {
        let boxes = circle_boxes(179.99, 0.0, 10_000.0);
        assert_eq!(boxes.0.len(), 2);
        assert!(boxes.contains(-179.99, 0.0));
        assert_eq!(circle_boxes(0.0, 89.99, 5_000.0).0[0][0], -180.0);
    }

    /// Issue 16: the same point written differently (any longitude at a
    /// pole, 180 and -180) is at geodesic distance 0; the sphere's bound
    /// must not come out above it, and a radius of 0 must hold it.
    #[test]
    fn spellings_of_one_point_are_at_distance_zero() {
        for (a, b) in [
            ((0.0, 90.0), (137.5, 90.0)),
            ((-180.0, -90.0), (42.0, -90.0)),
            ((-180.0, 52.25), (180.0, 52.25)),
            ((180.0, 0.0), (-180.0, 0.0)),
        ] {
            let test = RadiusTest::new(a.0, a.1, 0.0);
            assert_eq!(test.distance_m(b.0, b.1), 0.0, "{a:?} {b:?}");
            assert_eq!(test.lower_bound_m(b.0, b.1), 0.0, "{a:?} {b:?}");
            assert_ne!(test.verdict(b.0, b.1), Verdict::Outside, "{a:?} {b:?}");
            assert!(
                circle_boxes(a.0, a.1, 0.0).contains(b.0, b.1),
                "{a:?} {b:?}"
            );
        }
    }

    proptest! {
        /// The sphere's verdicts never contradict the geodesic, and the
        /// lower bound is one.
        #[test]
        fn radius_test_agrees_with_the_geodesic(
            lon in -180.0f64..180.0, lat in -90.0f64..=90.0,
            lon2 in -180.0f64..180.0, lat2 in -90.0f64..=90.0,
            r in 0.0f64..20_000_000.0, near in proptest::bool::ANY,
        ) {
            // Half the cases close by, where the margins matter.
            let (lon2, lat2) = if near {
                (lon + (lon2 / 1800.0), (lat + lat2 / 900.0).clamp(-90.0, 90.0))
            } else {
                (lon2, lat2)
            };
            let r = if near { r / 1000.0 } else { r };
            let test = RadiusTest::new(lon, lat, r);
            let d = distance_m(lon, lat, lon2, lat2);
            match test.verdict(lon2, lat2) {
                Verdict::Inside => prop_assert!(d <= r, "{d} > {r}"),
                Verdict::Outside => prop_assert!(d > r, "{d} <= {r}"),
                Verdict::Unsure => {}
            }
            prop_assert!(test.lower_bound_m(lon2, lat2) <= d, "bound above {d}");
        }

        /// Every point at a geodesic distance below the radius, in any
        /// direction, lies in the boxes.
        #[test]
        fn circle_boxes_hold_the_circle(
            lon in -180.0f64..180.0, lat in -89.9f64..89.9,
            r in 1.0f64..2_000_000.0, bearing in 0.0f64..360.0, frac in 0.0f64..1.0,
        ) {
            let p = Geodesic.destination(Point::new(lon, lat), bearing, r * frac);
            prop_assert!(circle_boxes(lon, lat, r).contains(p.x(), p.y()), "{:?}", p);
        }
    }
}
