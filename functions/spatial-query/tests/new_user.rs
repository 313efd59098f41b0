//! What a new user found (issue 16), over HTTP on the in-memory platform:
//! unknown parameters and `from > to` are 400s naming the parameter; a
//! non-JSON body on a JSON endpoint is a 415; an ingest whose every feature
//! is rejected is a problem; an asset id is a key (a later write replaces
//! the earlier one, across runs, and a delete exists); timestamps are never
//! cut silently, and before 1970 they compare exactly.
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use std::collections::BTreeSet;

use edge_core::function::{Instance, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::{Config, EdgeFunction, Request, Response, Timestamp};
use futures::executor::block_on;
use serde_json::{Value, json};
use spatial_query::SpatialQuery;

const ADMIN: &str = "spatial-admin-token-for-tests";

fn setup() -> (TestPlatform, Instance<SpatialQuery>) {
    let f = instantiate::<SpatialQuery>(
        &Config::new(SpatialQuery::DEFAULT_POLICY)
            .with_var("POLICY", "")
            .with_secret("SPATIAL_ADMIN_TOKEN", ADMIN),
    );
    (
        TestPlatform::at(Timestamp::from_millis(1_795_305_600_000)),
        f,
    )
}

fn request(
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: &str,
    admin: bool,
) -> Request {
    let mut b = http::Request::builder().method(method).uri(uri);
    if let Some(t) = content_type {
        b = b.header("content-type", t);
    }
    if admin {
        b = b.header("authorization", format!("Bearer {ADMIN}"));
    }
    b.body(body.to_owned().into()).unwrap()
}

fn serve(p: &TestPlatform, f: &Instance<SpatialQuery>, r: Request) -> (u16, Value, String) {
    let r: Response = block_on(p.serve(f, r));
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = if r.body().is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(r.body()).unwrap()
    };
    (r.status().as_u16(), body, ct)
}

fn get(p: &TestPlatform, f: &Instance<SpatialQuery>, uri: &str) -> (u16, Value) {
    let (s, b, _) = serve(p, f, request("GET", uri, None, "", false));
    (s, b)
}

fn feature(id: u32, lon: f64, lat: f64, processed_at: &str) -> String {
    json!({
        "type": "Feature",
        "id": format!("00000000-0000-4000-8000-{id:012}"),
        "geometry": {"type": "Point", "coordinates": [lon, lat, 1.0]},
        "properties": {
            "deformation": [1.0, 2.0, 2.0],
            "registration_quality": 0.9,
            "fusion_confidence": 0.9,
            "processing_duration_ms": 100,
            "algorithm_version": "fusion-2.3.1",
            "processed_at": processed_at,
        }
    })
    .to_string()
}

fn ingest(p: &TestPlatform, f: &Instance<SpatialQuery>, lines: &[String]) -> (u16, Value, String) {
    serve(
        p,
        f,
        request(
            "POST",
            "/assets",
            Some("application/x-ndjson"),
            &lines.join("\n"),
            true,
        ),
    )
}

fn ids(v: &Value) -> Vec<String> {
    v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

fn loaded() -> (TestPlatform, Instance<SpatialQuery>) {
    let (p, f) = setup();
    let lines: Vec<String> = (0..10)
        .map(|i| feature(i, 10.0 + f64::from(i) * 0.001, 50.0, "2026-03-01T00:00:00Z"))
        .collect();
    assert_eq!(ingest(&p, &f, &lines).0, 201);
    (p, f)
}

#[test]
fn unknown_parameters_are_refused_by_name() {
    let (p, f) = loaded();
    for (uri, field) in [
        ("/assets/radius?lon=10&lat=50&radius=5", "radius"),
        ("/assets/bbox?bbox=9,49,11,51&limt=5", "limt"),
        ("/assets/nearest?lon=10&lat=50&k=2&radius_m=5", "radius_m"),
        ("/assets/radius?lon=10&lat=50&radius_m=10&k=3", "k"),
        ("/geofence?lon=10&lat=50&radius_m=3", "radius_m"),
    ] {
        let (status, body) = get(&p, &f, uri);
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{uri}: {body}"
        );
        assert!(body["detail"].as_str().unwrap().contains(field), "{body}");
    }
    // The JSON form too.
    let (status, body, _) = serve(
        &p,
        &f,
        request(
            "POST",
            "/assets/query",
            Some("application/json"),
            r#"{"type":"radius","lon":10,"lat":50,"radius":5}"#,
            false,
        ),
    );
    assert_eq!((status, body["field"].as_str()), (400, Some("radius")));
    // Endpoints that take no parameters say so.
    for (method, uri) in [
        ("GET", "/dataset?verbose=1"),
        ("POST", "/assets/query?limit=3"),
        ("GET", "/zones?all"),
    ] {
        let (status, body, _) = serve(
            &p,
            &f,
            request(method, uri, Some("application/json"), "{}", false),
        );
        assert_eq!(status, 400, "{uri}: {body}");
        assert!(body["field"].is_string(), "{body}");
    }
    // A publish names only head and expected_run.
    let (status, body, _) = serve(
        &p,
        &f,
        request(
            "POST",
            "/_spatial/publish",
            Some("application/json"),
            r#"{"head":{},"expected":3}"#,
            true,
        ),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("expected")),
        "{body}"
    );
    // Nearest pages its k results.
    let (status, first) = get(&p, &f, "/assets/nearest?lon=10&lat=50&k=5&limit=2");
    assert_eq!(
        (status, first["numberMatched"].as_u64()),
        (200, Some(5)),
        "{first}"
    );
    let mut seen = ids(&first);
    let mut next = first["next"].as_str().map(str::to_owned);
    while let Some(c) = next {
        let (_, page) = get(
            &p,
            &f,
            &format!("/assets/nearest?lon=10&lat=50&k=5&limit=2&cursor={c}"),
        );
        seen.extend(ids(&page));
        next = page["next"].as_str().map(str::to_owned);
    }
    let (_, all) = get(&p, &f, "/assets/nearest?lon=10&lat=50&k=5");
    assert_eq!(seen, ids(&all));
    assert!(all["next"].is_null());
    // The right names are taken.
    let (status, body) = get(&p, &f, "/assets/radius?lon=10&lat=50&radius_m=5000&limit=3");
    assert_eq!((status, body["numberMatched"].as_u64()), (200, Some(10)));
}

#[test]
fn from_after_to_is_refused() {
    let (p, f) = loaded();
    let (status, body) = get(
        &p,
        &f,
        "/assets/bbox?bbox=9,49,11,51&from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z",
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("from")),
        "{body}"
    );
    // An equal pair is an empty interval, not an error.
    let (status, body) = get(
        &p,
        &f,
        "/assets/bbox?bbox=9,49,11,51&from=2026-03-01T00:00:00Z&to=2026-03-01T00:00:00Z",
    );
    assert_eq!((status, body["numberMatched"].as_u64()), (200, Some(0)));
}

#[test]
fn a_body_that_is_not_json_by_its_type_is_415() {
    let (p, f) = loaded();
    let polygon = r#"{"type":"Polygon","coordinates":[[[9,49],[11,49],[11,51],[9,51],[9,49]]]}"#;
    for (uri, ct) in [
        ("/assets/within", "application/pdf"),
        ("/assets/within", "text/plain"),
        ("/assets/query", "application/x-www-form-urlencoded"),
    ] {
        let (status, body, content_type) =
            serve(&p, &f, request("POST", uri, Some(ct), polygon, false));
        assert_eq!(status, 415, "{uri} {ct}: {body}");
        assert_eq!(content_type, "application/problem+json");
        assert!(
            body["type"]
                .as_str()
                .unwrap()
                .ends_with("unsupported-media-type")
        );
    }
    for ct in [
        Some("application/json"),
        Some("application/geo+json; charset=utf-8"),
        None,
    ] {
        let (status, body, _) = serve(
            &p,
            &f,
            request("POST", "/assets/within", ct, polygon, false),
        );
        assert_eq!(
            (status, body["numberMatched"].as_u64()),
            (200, Some(10)),
            "{ct:?}"
        );
    }
}

#[test]
fn an_ingest_with_nothing_valid_is_a_problem() {
    let (p, f) = setup();
    let bad = [
        feature(1, 200.0, 0.0, "2026-03-01T00:00:00Z"),
        feature(2, 0.0, 0.0, "yesterday"),
    ];
    let (status, body, content_type) = ingest(&p, &f, &bad);
    assert_eq!(status, 422, "{body}");
    assert_eq!(content_type, "application/problem+json");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("no-valid-features"),
        "{body}"
    );
    assert_eq!(body["report"]["rejected"], 2);
    assert_eq!(
        body["report"]["rejections"][0]["field"],
        "geometry.coordinates[0]"
    );
}

#[test]
fn sub_millisecond_timestamps_are_refused_not_cut() {
    let (p, f) = setup();
    let (status, body, _) = ingest(
        &p,
        &f,
        &[
            feature(1, 10.0, 50.0, "2026-03-01T00:00:00.0005Z"),
            feature(2, 10.0, 50.0, "2026-03-01T00:00:00.001Z"),
        ],
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["report"]["rejected"], 1);
    let r = &body["report"]["rejections"][0];
    assert_eq!(r["field"], "properties.processed_at");
    assert!(r["reason"].as_str().unwrap().contains("millisecond"), "{r}");
    for name in ["from", "to"] {
        let (status, body) = get(
            &p,
            &f,
            &format!("/assets/bbox?bbox=9,49,11,51&{name}=2026-03-01T00:00:00.000999Z"),
        );
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(name)),
            "{body}"
        );
        assert!(body["detail"].as_str().unwrap().contains("millisecond"));
    }
}

#[test]
fn before_1970_the_filters_are_exact() {
    let (p, f) = setup();
    let lines = [
        feature(1, 10.0, 50.0, "1969-12-31T23:59:59.999Z"),
        feature(2, 10.0, 50.0, "1969-12-31T23:59:59.998Z"),
        feature(3, 10.0, 50.0, "1950-06-01T12:00:00.5Z"),
    ];
    assert_eq!(ingest(&p, &f, &lines).0, 201);
    let matched = |q: &str| {
        let (status, body) = get(&p, &f, &format!("/assets/bbox?bbox=9,49,11,51&{q}"));
        assert_eq!(status, 200, "{body}");
        body["numberMatched"].as_u64().unwrap()
    };
    assert_eq!(matched("from=1969-12-31T23:59:59.999Z"), 1);
    assert_eq!(matched("to=1969-12-31T23:59:59.999Z"), 2);
    assert_eq!(
        matched("from=1950-06-01T12:00:00.500Z&to=1950-06-01T12:00:00.501Z"),
        1
    );
    assert_eq!(
        matched("from=1950-06-01T12:00:00.501Z&to=1969-12-31T23:59:59.999Z"),
        1
    );
    let (_, body) = get(
        &p,
        &f,
        "/assets/bbox?bbox=9,49,11,51&to=1960-01-01T00:00:00Z",
    );
    assert_eq!(
        body["features"][0]["properties"]["processed_at"],
        "1950-06-01T12:00:00.5Z"
    );
}

#[test]
fn an_asset_id_is_a_key_across_runs() {
    let (p, f) = setup();
    let first: Vec<String> = (0..5)
        .map(|i| feature(i, 10.0 + f64::from(i) * 0.001, 50.0, "2026-03-01T00:00:00Z"))
        .collect();
    let (status, body, _) = ingest(&p, &f, &first);
    assert_eq!((status, body["dataset"]["assets"].as_u64()), (201, Some(5)));
    // The same batch again: nothing doubles.
    let (status, body, _) = ingest(&p, &f, &first);
    assert_eq!(
        (status, body["dataset"]["assets"].as_u64()),
        (201, Some(5)),
        "{body}"
    );
    let (_, near) = get(
        &p,
        &f,
        "/assets/nearest?lon=10&lat=50&k=10&max_distance_m=100000",
    );
    let found = ids(&near);
    assert_eq!(found.len(), 5, "{found:?}");
    assert_eq!(found.iter().collect::<BTreeSet<_>>().len(), 5);
    // A later write moves asset 2 and changes its time: only the new one.
    let moved = feature(2, 20.0, 40.0, "2026-04-01T00:00:00Z");
    let (status, body, _) = ingest(&p, &f, std::slice::from_ref(&moved));
    assert_eq!((status, body["dataset"]["assets"].as_u64()), (201, Some(5)));
    let (_, old_place) = get(&p, &f, "/assets/bbox?bbox=9,49,11,51");
    assert_eq!(old_place["numberMatched"], 4);
    let (_, new_place) = get(&p, &f, "/assets/radius?lon=20&lat=40&radius_m=1");
    assert_eq!(
        ids(&new_place),
        vec!["00000000-0000-4000-8000-000000000002"]
    );
    assert_eq!(
        new_place["features"][0]["properties"]["processed_at"],
        "2026-04-01T00:00:00Z"
    );
    // Within one batch the last write wins.
    let twice = [
        feature(7, 30.0, 30.0, "2026-03-01T00:00:00Z"),
        feature(7, 31.0, 31.0, "2026-03-01T00:00:00Z"),
    ];
    let (status, body, _) = ingest(&p, &f, &twice);
    assert_eq!(
        (status, body["dataset"]["assets"].as_u64()),
        (201, Some(6)),
        "{body}"
    );
    let (_, b) = get(&p, &f, "/assets/bbox?bbox=29,29,32,32");
    assert_eq!(b["numberMatched"], 1);
    assert_eq!(b["features"][0]["geometry"]["coordinates"][0], 31.0);

    // A delete: gone from every query, the count drops; a second is a 404.
    let path = "/assets/00000000-0000-4000-8000-000000000002";
    let (status, _, _) = serve(&p, &f, request("DELETE", path, None, "", false));
    assert_eq!(status, 401);
    let (status, body, _) = serve(&p, &f, request("DELETE", path, None, "", true));
    assert_eq!(status, 204, "{body}");
    let (_, gone) = get(&p, &f, "/assets/radius?lon=20&lat=40&radius_m=1");
    assert_eq!(gone["numberMatched"], 0);
    let (_, d) = get(&p, &f, "/dataset");
    assert_eq!(d["head"]["assets"], 5);
    let (status, body, _) = serve(&p, &f, request("DELETE", path, None, "", true));
    assert_eq!(status, 404, "{body}");
    let (status, body, _) = serve(
        &p,
        &f,
        request("DELETE", "/assets/not-a-uuid", None, "", true),
    );
    assert_eq!((status, body["field"].as_str()), (400, Some("id")));
    // Written again after the delete: back, once.
    let (status, body, _) = ingest(&p, &f, &[moved]);
    assert_eq!((status, body["dataset"]["assets"].as_u64()), (201, Some(6)));
    let (_, back) = get(&p, &f, "/assets/radius?lon=20&lat=40&radius_m=1");
    assert_eq!(back["numberMatched"], 1);
}

mod keyed {
    //! Random writes and deletes of a small pool of ids, over HTTP: after
    //! every step the dataset is exactly the last write of each id not
    //! deleted since — every query's pages, `numberMatched` and the head's
    //! count agree with that model.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Write(Vec<(u32, f64, f64)>),
        Delete(u32),
    }

    fn position() -> impl Strategy<Value = (f64, f64)> {
        prop_oneof![
            (-180.0f64..=180.0, -90.0f64..=90.0),
            (-180.0f64..=180.0).prop_map(|x| (x, 90.0)),
            (-90.0f64..=90.0, prop::bool::ANY)
                .prop_map(|(y, e)| (if e { 180.0 } else { -180.0 }, y)),
            Just((13.4, 52.5)),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => prop::collection::vec((0u32..24, position()), 1..12)
                .prop_map(|v| Op::Write(v.into_iter().map(|(i, (x, y))| (i, x, y)).collect())),
            1 => (0u32..24).prop_map(Op::Delete),
        ]
    }

    fn all_pages(
        p: &TestPlatform,
        f: &Instance<SpatialQuery>,
        base: &str,
        limit: usize,
    ) -> (Vec<String>, u64) {
        let mut uri = format!("{base}&limit={limit}&min_confidence=0");
        let mut out = Vec::new();
        loop {
            let (status, body) = get(p, f, &uri);
            assert_eq!(status, 200, "{body}");
            out.extend(ids(&body));
            match body["next"].as_str() {
                Some(c) => uri = format!("{base}&limit={limit}&min_confidence=0&cursor={c}"),
                None => return (out, body["numberMatched"].as_u64().unwrap()),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn the_dataset_is_the_last_write_of_each_id(ops in prop::collection::vec(op(), 1..8), limit in 1usize..6) {
            let (p, f) = setup();
            let mut model: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Write(batch) => {
                        let lines: Vec<String> = batch
                            .iter()
                            .map(|&(i, x, y)| feature(i, x, y, "2026-03-01T00:00:00Z"))
                            .collect();
                        let (status, body, _) = ingest(&p, &f, &lines);
                        prop_assert_eq!(status, 201, "{}", body);
                        for (i, x, y) in batch {
                            model.insert(i, (x, y));
                        }
                    }
                    Op::Delete(i) => {
                        let path = format!("/assets/00000000-0000-4000-8000-{i:012}");
                        let (status, _, _) = serve(&p, &f, request("DELETE", &path, None, "", true));
                        let expected = if model.remove(&i).is_some() { 204 } else { 404 };
                        prop_assert_eq!(status, expected);
                    }
                }
                let want: BTreeSet<String> = model
                    .keys()
                    .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
                    .collect();
                let (got, matched) = all_pages(&p, &f, "/assets/bbox?bbox=-180,-90,180,90", limit);
                prop_assert_eq!(got.len() as u64, matched);
                prop_assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want.clone());
                prop_assert_eq!(got.len(), want.len());
                // Each where its last write put it.
                for (i, (x, y)) in &model {
                    let (_, here) = get(&p, &f, &format!("/assets/radius?lon={x}&lat={y}&radius_m=0&min_confidence=0&limit=1000"));
                    let id = format!("00000000-0000-4000-8000-{i:012}");
                    prop_assert!(ids(&here).contains(&id), "{} not at ({}, {})", id, x, y);
                }
                let (_, d) = get(&p, &f, "/dataset");
                if !model.is_empty() || d["head"].is_object() {
                    prop_assert_eq!(d["head"]["assets"].as_u64(), Some(model.len() as u64));
                }
            }
        }
    }
}

/// A dataset written before ids were keys (the same id in tiles of two
/// runs, no directory): the next write rebuilds the directory from the
/// tiles, keeps each id's latest run and counts it once.
#[test]
fn a_dataset_with_repeated_ids_is_healed_by_the_next_write() {
    use spatial_query::manifest::{Head, Manifest, TileEntry, manifest_key};
    use spatial_query::tile::Tile;
    let (p, f) = setup();
    let parse = |l: String| spatial_query::ingest::parse_feature(l.as_bytes()).unwrap();
    let runs = [
        (
            3,
            vec![
                parse(feature(1, 10.0, 50.0, "2026-03-01T00:00:00Z")),
                parse(feature(2, 10.1, 50.0, "2026-03-01T00:00:00Z")),
            ],
        ),
        (
            4,
            vec![parse(feature(1, 20.0, 40.0, "2026-03-02T00:00:00Z"))],
        ),
    ];
    let mut entries = Vec::new();
    for (run, assets) in runs {
        for (cell, tile) in spatial_query::partition::partition(assets, 100) {
            let e = TileEntry::describe(cell, run, &tile);
            let mut req = request(
                "PUT",
                &format!("/_spatial/blobs/{}", e.key("assets")),
                Some("application/octet-stream"),
                "",
                true,
            );
            *req.body_mut() = Tile::encode(&tile).into();
            assert_eq!(serve(&p, &f, req).0, 204);
            entries.push(e);
        }
    }
    let tiles = entries.len() as u64;
    let mut req = request(
        "PUT",
        &format!("/_spatial/blobs/{}", manifest_key("assets", 4)),
        Some("application/octet-stream"),
        "",
        true,
    );
    *req.body_mut() = Manifest::new(entries).encode().into();
    assert_eq!(serve(&p, &f, req).0, 204);
    let head = Head {
        run: 4,
        assets: 3,
        tiles,
        tile_bytes: 0,
        updated_at: "2026-11-22T00:00:00Z".into(),
    };
    let (status, body, _) = serve(
        &p,
        &f,
        request(
            "POST",
            "/_spatial/publish",
            Some("application/json"),
            &json!({"head": head}).to_string(),
            true,
        ),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = ingest(&p, &f, &[feature(3, 0.0, 0.0, "2026-03-01T00:00:00Z")]);
    assert_eq!(
        (status, body["dataset"]["assets"].as_u64()),
        (201, Some(3)),
        "{body}"
    );
    let (_, all) = get(&p, &f, "/assets/bbox?bbox=-180,-90,180,90");
    assert_eq!(all["numberMatched"], 3);
    let (_, old) = get(&p, &f, "/assets/bbox?bbox=9,49,11,51");
    assert_eq!(ids(&old), vec!["00000000-0000-4000-8000-000000000002"]);
}
