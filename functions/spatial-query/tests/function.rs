//! The function served natively on the in-memory platform: ingest with a
//! report, every query type through HTTP, paging, filters, the tile upload
//! and publish path, zones and geofences, and the 4xx answers.
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use edge_core::function::{Instance, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::{Config, EdgeFunction, Request, Response, Timestamp};
use futures::executor::block_on;
use serde_json::{Value, json};
use spatial_query::SpatialQuery;

const ADMIN: &str = "spatial-admin-token-for-tests";

fn instance(policy: &str) -> Instance<SpatialQuery> {
    instantiate::<SpatialQuery>(
        &Config::new(SpatialQuery::DEFAULT_POLICY)
            .with_var("POLICY", policy)
            .with_secret("SPATIAL_ADMIN_TOKEN", ADMIN),
    )
}

fn request(method: &str, uri: &str, content_type: &str, body: &str, admin: bool) -> Request {
    let mut b = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type);
    if admin {
        b = b.header("authorization", format!("Bearer {ADMIN}"));
    }
    b.body(body.to_owned().into()).unwrap()
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(r.body()).unwrap()
}

fn feature(i: usize, lon: f64, lat: f64, confidence: f64) -> String {
    json!({
        "type": "Feature",
        "id": format!("00000000-0000-4000-8000-{i:012}"),
        "geometry": {"type": "Point", "coordinates": [lon, lat, 12.5]},
        "properties": {
            "deformation": [3.0, 4.0, (i % 5) as f64],
            "registration_quality": 0.9,
            "fusion_confidence": confidence,
            "processing_duration_ms": 1200,
            "algorithm_version": "fusion-2.3.1",
            "processed_at": format!("2026-0{}-01T00:00:00Z", 1 + i % 9),
        }
    })
    .to_string()
}

/// A 40 × 25 grid, 0.01° apart, around (10, 50), plus three near the
/// antimeridian; one line of each kind of bad feature.
fn batch() -> String {
    let mut lines = Vec::new();
    for i in 0..1000 {
        let (x, y) = ((i % 40) as f64, (i / 40) as f64);
        lines.push(feature(
            i,
            10.0 + x * 0.01,
            50.0 + y * 0.01,
            (i % 10) as f64 / 10.0,
        ));
    }
    lines.push(feature(1000, 179.9, 0.0, 0.9));
    lines.push(feature(1001, -179.9, 0.0, 0.9));
    lines.push(feature(1002, -179.0, 0.0, 0.9));
    lines.push(feature(2000, 181.0, 0.0, 0.5));
    lines.push(feature(2001, 10.0, 50.0, 1.5));
    lines.push(
        r#"{"type":"Feature","id":"x","geometry":{"type":"Point","coordinates":[NaN,1]}}"#.into(),
    );
    lines.join("\n")
}

fn loaded(policy: &str) -> (TestPlatform, Instance<SpatialQuery>) {
    let p = TestPlatform::at(Timestamp::from_millis(1_795_305_600_000));
    let f = instance(policy);
    let r = block_on(p.serve(
        &f,
        request("POST", "/assets", "application/x-ndjson", &batch(), true),
    ));
    assert_eq!(r.status(), 201, "{}", String::from_utf8_lossy(r.body()));
    let body = json_of(&r);
    assert_eq!(body["report"]["accepted"], 1003);
    assert_eq!(body["report"]["rejected"], 3);
    let fields: Vec<&str> = body["report"]["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"geometry.coordinates[0]"), "{fields:?}");
    assert!(
        fields.contains(&"properties.fusion_confidence"),
        "{fields:?}"
    );
    (p, f)
}

fn get(p: &TestPlatform, f: &Instance<SpatialQuery>, uri: &str) -> Value {
    let r = block_on(p.serve(f, request("GET", uri, "application/json", "", false)));
    assert_eq!(
        r.status(),
        200,
        "{uri}: {}",
        String::from_utf8_lossy(r.body())
    );
    json_of(&r)
}

fn ids(v: &Value) -> Vec<String> {
    v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_query_type_answers_over_http() {
    let (p, f) = loaded(
        "[spatial]\ndataset = \"t\"\ntile_capacity = 64\nfusion_max_distance_m = 1000.0\nfusion_min_confidence = 0.0\ndefault_limit = 100\nmax_limit = 1000\nmax_k = 1000\nmax_tiles_per_query = 256\ntile_cache_bytes = 1048576\nhead_ttl = \"5s\"\nmax_polygon_vertices = 10000\nmax_zones = 10\nadmin_token_secret = \"SPATIAL_ADMIN_TOKEN\"\n",
    );
    // Radius: 1.2 km around a grid point holds it and its neighbours, nearest first.
    let v = get(&p, &f, "/assets/radius?lon=10.1&lat=50.1&radius_m=1200");
    let d: Vec<f64> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["distance_m"].as_f64().unwrap())
        .collect();
    assert!(
        d.len() >= 5 && d[0] < 1e-6 && d.windows(2).all(|w| w[0] <= w[1]),
        "{d:?}"
    );
    assert!(d.iter().all(|&x| x <= 1200.0));
    // Box across the antimeridian: the two sides, not the one at -179.
    let v = get(&p, &f, "/assets/bbox?bbox=179.5,-1,-179.5,1");
    assert_eq!(v["numberMatched"], 2);
    // Nearest.
    let v = get(
        &p,
        &f,
        "/assets/nearest?lon=10.0&lat=50.0&k=3&max_distance_m=5000",
    );
    assert_eq!(v["numberReturned"], 3);
    assert_eq!(ids(&v)[0], "00000000-0000-4000-8000-000000000000");
    // Polygon with a hole, boundary included or not.
    let square = |w: f64, s: f64, e: f64, n: f64| json!([[w, s], [e, s], [e, n], [w, n], [w, s]]);
    let polygon = json!({"type": "Polygon", "coordinates": [square(10.0, 50.0, 10.05, 50.05), square(10.015, 50.015, 10.035, 50.035)]});
    let within = |boundary: &str| {
        let r = block_on(p.serve(
            &f,
            request(
                "POST",
                &format!("/assets/within?boundary={boundary}&limit=1000"),
                "application/geo+json",
                &polygon.to_string(),
                false,
            ),
        ));
        assert_eq!(r.status(), 200);
        json_of(&r)["numberMatched"].as_u64().unwrap()
    };
    // 6 × 6 grid points in the square, minus the 1 × 1 (10.02..10.03 → 2 × 2) hole interior.
    assert_eq!(within("include"), 36 - 4);
    // Excluding the boundary drops the outer ring's 20 points and the hole's ring has none on it.
    assert_eq!(within("exclude"), 16 - 4);
    // Filters and paging: confidence ≥ 0.9 in the whole grid, pages of 30.
    let mut cursor = String::new();
    let mut seen = Vec::new();
    loop {
        let v = get(
            &p,
            &f,
            &format!("/assets/bbox?bbox=9,49,11,51&min_confidence=0.9&limit=30{cursor}"),
        );
        assert_eq!(v["numberMatched"], 100);
        seen.extend(ids(&v));
        match v["next"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((seen.len(), sorted), (100, seen.clone()));
    // Time window: processed in March (i % 9 == 2).
    let v = get(
        &p,
        &f,
        "/assets/bbox?bbox=9,49,11,51&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z&limit=1000",
    );
    assert_eq!(v["numberMatched"], (0..1000).filter(|i| i % 9 == 2).count());
    // The JSON form.
    let r = block_on(p.serve(
        &f,
        request(
            "POST",
            "/assets/query",
            "application/json",
            r#"{"type":"nearest","lon":10,"lat":50,"k":1}"#,
            false,
        ),
    ));
    assert_eq!(json_of(&r)["numberReturned"], 1);
}

#[test]
fn bad_queries_get_problems_naming_the_field() {
    let (p, f) = loaded("");
    for (uri, field) in [
        ("/assets/radius?lon=200&lat=0", "lon"),
        ("/assets/radius?lon=0&lat=0&radius_m=-1", "radius_m"),
        ("/assets/radius?lon=0&lat=abc", "lat"),
        ("/assets/bbox?bbox=1,2,3", "bbox"),
        ("/assets/bbox?bbox=0,10,1,5", "bbox"),
        ("/assets/nearest?lon=0&lat=0&k=0", "k"),
        ("/assets/nearest?lon=0&lat=0&k=100000", "k"),
        ("/assets/bbox?bbox=0,0,1,1&cursor=zzz", "cursor"),
        ("/assets/bbox?bbox=0,0,1,1&from=yesterday", "from"),
        (
            "/assets/bbox?bbox=0,0,1,1&min_confidence=2",
            "min_confidence",
        ),
    ] {
        let r = block_on(p.serve(&f, request("GET", uri, "", "", false)));
        assert_eq!(r.status(), 400, "{uri}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(json_of(&r)["field"], field, "{uri}");
    }
    let open_ring = r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}"#;
    let r = block_on(p.serve(
        &f,
        request(
            "POST",
            "/assets/within",
            "application/json",
            open_ring,
            false,
        ),
    ));
    assert_eq!(
        (r.status().as_u16(), json_of(&r)["field"].as_str()),
        (400, Some("geometry"))
    );
    // Writes need the admin token.
    let r = block_on(p.serve(
        &f,
        request("POST", "/assets", "application/x-ndjson", &batch(), false),
    ));
    assert_eq!(r.status(), 401);
    // A structurally broken FeatureCollection is one 400.
    let r = block_on(p.serve(
        &f,
        request(
            "POST",
            "/assets",
            "application/geo+json",
            r#"{"type":"FeatureCollection","features":[{"#,
            true,
        ),
    ));
    assert_eq!(r.status(), 400);
}

#[test]
fn broad_queries_are_refused_not_run() {
    let policy = SpatialQuery::DEFAULT_POLICY
        .replace("tile_capacity = 4096", "tile_capacity = 16")
        .replace("max_tiles_per_query = 256", "max_tiles_per_query = 4");
    let (p, f) = loaded(&policy);
    let r = block_on(p.serve(
        &f,
        request("GET", "/assets/bbox?bbox=-180,-90,180,90", "", "", false),
    ));
    assert_eq!(r.status(), 422);
    assert_eq!(
        json_of(&r)["type"].as_str().unwrap().rsplit(':').next(),
        Some("query-too-broad")
    );
}

#[test]
fn zones_and_geofences() {
    let (p, f) = loaded("");
    let zone = json!({"type": "Feature", "properties": {"name": "yard"}, "geometry": {"type": "Polygon", "coordinates": [[[10, 50], [11, 50], [11, 51], [10, 51], [10, 50]]]}});
    let r = block_on(p.serve(
        &f,
        request(
            "PUT",
            "/zones/yard-1",
            "application/geo+json",
            &zone.to_string(),
            true,
        ),
    ));
    assert_eq!(r.status(), 204);
    let r = block_on(p.serve(
        &f,
        request(
            "PUT",
            "/zones/yard-2",
            "application/geo+json",
            &zone.to_string(),
            false,
        ),
    ));
    assert_eq!(r.status(), 401);
    let inside = get(&p, &f, "/geofence?lon=10.5&lat=50.5");
    assert_eq!(ids(&inside), vec!["yard-1"]);
    let edge = get(&p, &f, "/geofence?lon=10&lat=50.5");
    assert_eq!(
        ids(&edge),
        vec!["yard-1"],
        "boundary points are in the zone"
    );
    assert!(ids(&get(&p, &f, "/geofence?lon=12&lat=50.5")).is_empty());
    assert_eq!(get(&p, &f, "/zones/yard-1")["properties"]["name"], "yard");
    let r = block_on(p.serve(&f, request("DELETE", "/zones/yard-1", "", "", true)));
    assert_eq!(r.status(), 204);
    assert!(ids(&get(&p, &f, "/geofence?lon=10.5&lat=50.5")).is_empty());
}

#[test]
fn uploaded_tiles_are_published_and_served() {
    use spatial_query::manifest::{Head, Manifest, TileEntry, manifest_key};
    use spatial_query::tile::Tile;
    let p = TestPlatform::at(Timestamp::from_millis(1_795_305_600_000));
    let f = instance("");
    let assets: Vec<_> = batch()
        .lines()
        .filter_map(|l| spatial_query::ingest::parse_feature(l.as_bytes()).ok())
        .collect();
    let mut entries = Vec::new();
    let put = |key: &str, bytes: Vec<u8>| {
        let mut req = request(
            "PUT",
            &format!("/_spatial/blobs/{key}"),
            "application/octet-stream",
            "",
            true,
        );
        *req.body_mut() = bytes.into();
        block_on(p.serve(&f, req)).status()
    };
    for (cell, tile) in spatial_query::partition::partition(assets, 100) {
        let e = TileEntry::describe(cell, 7, &tile);
        assert_eq!(put(&e.key("assets"), Tile::encode(&tile)), 204);
        entries.push(e);
    }
    let tiles = entries.len() as u64;
    assert_eq!(
        put(&manifest_key("assets", 7), Manifest::new(entries).encode()),
        204
    );
    assert_eq!(put("sq/other/t/1/x", vec![1]), 400);
    let head = Head {
        run: 7,
        assets: 1003,
        tiles,
        tile_bytes: 0,
        updated_at: "2026-11-22T00:00:00Z".into(),
    };
    let publish = |expected: Value| {
        block_on(p.serve(
            &f,
            request(
                "POST",
                "/_spatial/publish",
                "application/json",
                &json!({"head": head, "expected_run": expected}).to_string(),
                true,
            ),
        ))
    };
    assert_eq!(publish(json!(3)).status(), 409);
    assert_eq!(publish(Value::Null).status(), 200);
    assert_eq!(get(&p, &f, "/dataset")["head"]["assets"], 1003);
    assert_eq!(
        get(&p, &f, "/assets/bbox?bbox=9,49,11,51")["numberMatched"],
        1000
    );
}
