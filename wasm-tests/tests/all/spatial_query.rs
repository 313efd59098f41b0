//! The spatial index on the real runtimes: tiles built here are uploaded
//! through the admin endpoints into workerd's local KV (head in a Durable
//! Object) and into the Spin build's key-value store, published, and then
//! random queries of every type must answer exactly as the native engine
//! does over the same tiles; on workerd with a tile cache far smaller than
//! the dataset, whose resident memory is sampled while the queries run.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::executor::block_on;
use serde_json::{Value, json};
use spatial_query::dataset::MemoryDataset;
use spatial_query::manifest::{Head, Manifest, TileEntry, manifest_key};
use spatial_query::model::Asset;
use spatial_query::query::{self, Limits};
use spatial_query::tile::Tile;
use wasm_tests::host::{App, AppConfig, KvStore};
use wasm_tests::workerd::{WranglerDev, agent};

const ADMIN: &str = "spatial-test-admin-token";
const CAPACITY: usize = 4096;
/// The isolate's tile cache: 2 MiB, against ~32 MB of tiles.
const POLICY: &str = "[spatial]\ndataset = \"e2e\"\nfusion_max_distance_m = 2000.0\n\
fusion_min_confidence = 0.0\ndefault_limit = 100\nmax_limit = 1000\nmax_k = 100\n\
max_tiles_per_query = 64\ntile_capacity = 4096\ntile_cache_bytes = 2097152\nhead_ttl = \"60s\"\n\
max_polygon_vertices = 1000\nmax_zones = 10\nadmin_token_secret = \"SPATIAL_ADMIN_TOKEN\"\n";

/// A deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// `n` assets in 50 clusters around the world.
fn assets(n: usize) -> Vec<Asset> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let centres: Vec<(f64, f64)> = (0..50)
        .map(|_| (rng.range(-179.0, 179.0), rng.range(-70.0, 70.0)))
        .collect();
    (0..n)
        .map(|i| {
            let (x, y) = centres[i % centres.len()];
            Asset {
                id: uuid::Uuid::from_u128(0x5a00_0000_0000_4000_8000_0000_0000_0000 | i as u128),
                lon: (x + rng.range(-0.5, 0.5)).clamp(-180.0, 180.0),
                lat: (y + rng.range(-0.5, 0.5)).clamp(-90.0, 90.0),
                z: rng.range(0.0, 100.0),
                deformation: [
                    rng.range(-5.0, 5.0),
                    rng.range(-5.0, 5.0),
                    rng.range(-5.0, 5.0),
                ],
                registration_quality: rng.next(),
                fusion_confidence: rng.next(),
                processing_duration_ms: (rng.next() * 1e5) as u32,
                algorithm_version: format!("fusion-2.{}", i % 3),
                processed_at_ms: 1_704_067_200_000 + (rng.next() * 8e10) as i64,
            }
        })
        .collect()
}

/// Queries of every type near the assets' clusters.
fn queries(sample: &[Asset], n: usize) -> Vec<Value> {
    let mut rng = Rng(42);
    (0..n)
        .map(|i| {
            let a = &sample[(rng.next() * sample.len() as f64) as usize];
            let (x, y) = (a.lon + rng.range(-0.05, 0.05), (a.lat + rng.range(-0.05, 0.05)).clamp(-90.0, 90.0));
            let x = x.clamp(-180.0, 180.0);
            let mut q = match i % 4 {
                0 => json!({"type": "radius", "lon": x, "lat": y, "radius_m": rng.range(100.0, 5000.0)}),
                1 => {
                    let d = rng.range(0.005, 0.1);
                    json!({"type": "bbox", "bbox": [(x - d).max(-180.0), (y - d).max(-90.0), (x + d).min(180.0), (y + d).min(90.0)]})
                }
                2 => {
                    let d = rng.range(0.01, 0.08);
                    let ring = json!([[x - d, y - d], [x + d, y - d], [x + d, y + d], [x, y + 2.0 * d], [x - d, y + d], [x - d, y - d]]);
                    json!({"type": "polygon", "geometry": {"type": "Polygon", "coordinates": [ring]}})
                }
                _ => json!({"type": "nearest", "lon": x, "lat": y, "k": 1 + (rng.next() * 20.0) as usize, "max_distance_m": 20000.0}),
            };
            if i % 5 == 0 {
                q["min_confidence"] = json!(0.5);
            }
            q["limit"] = json!(50);
            q
        })
        .collect()
}

/// The tiles and manifest of `assets`, as the tile builder makes them.
fn build(assets: &[Asset]) -> (Vec<(String, Vec<u8>)>, Head) {
    let mut blobs = Vec::new();
    let mut entries = Vec::new();
    let mut bytes = 0;
    for (cell, tile) in spatial_query::partition::partition(assets.to_vec(), CAPACITY) {
        let entry = TileEntry::describe(cell, 1, &tile);
        let encoded = Tile::encode(&tile);
        bytes += encoded.len() as u64;
        blobs.push((entry.key("e2e"), encoded));
        entries.push(entry);
    }
    let head = Head {
        run: 1,
        assets: assets.len() as u64,
        tiles: entries.len() as u64,
        tile_bytes: bytes,
        updated_at: "2026-11-22T00:00:00Z".into(),
    };
    blobs.push((manifest_key("e2e", 1), Manifest::new(entries).encode()));
    (blobs, head)
}

/// The native engine's answer, as the function writes it.
fn expected(dataset: &MemoryDataset, q: &Value) -> Value {
    let config = edge_core::Config::new(POLICY);
    let policy = spatial_query::policy::Section::from_config(&config).unwrap();
    let query =
        spatial_query::request::parse_query(q.as_object().unwrap(), None, None, &policy).unwrap();
    let page = block_on(query::run(
        &dataset.manifest,
        dataset,
        &query,
        Limits { max_tiles: 64 },
    ))
    .unwrap();
    spatial_query::page_json(&page)
}

fn same(got: &Value, want: &Value, q: &Value) {
    assert_eq!(got["numberMatched"], want["numberMatched"], "{q}");
    assert_eq!(got["features"], want["features"], "{q}");
    // Cursors hold the exact distance, whose last bits may differ between
    // runtimes (their libm); the ids agree and the distances within a
    // micrometre.
    let cursor = |v: &Value| {
        v["next"]
            .as_str()
            .map(|c| spatial_query::query::Cursor::decode(c).unwrap())
    };
    match (cursor(got), cursor(want)) {
        (Some(a), Some(b)) => {
            assert_eq!(a.id, b.id, "{q}");
            assert!((a.distance_m - b.distance_m).abs() < 1e-6, "{q}");
        }
        (a, b) => assert_eq!(a.is_some(), b.is_some(), "{q}"),
    }
}

#[test]
fn workers_answer_like_the_engine_with_a_cache_far_below_the_dataset() {
    let assets = assets(250_000);
    let (blobs, head) = build(&assets);
    let tile_bytes: usize = blobs.iter().map(|(_, b)| b.len()).sum();
    let dataset = MemoryDataset::new(assets.clone(), CAPACITY);
    let vars = BTreeMap::from([("POLICY".to_owned(), POLICY.to_owned())]);
    let secrets = BTreeMap::from([("SPATIAL_ADMIN_TOKEN".to_owned(), ADMIN.to_owned())]);
    let dev = WranglerDev::start("spatial-query", &vars, &secrets).expect("wrangler dev");
    let agent = agent(Duration::from_secs(120));
    for (key, bytes) in &blobs {
        let response = agent
            .put(&format!("{}/_spatial/blobs/{key}", dev.url()))
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/octet-stream")
            .send(&bytes[..])
            .unwrap();
        assert_eq!(response.status(), 204, "{key}\n{}", dev.log_tail());
    }
    let response = agent
        .post(&format!("{}/_spatial/publish", dev.url()))
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .send(json!({"head": head}).to_string())
        .unwrap();
    assert_eq!(response.status(), 200, "{}", dev.log_tail());

    let post = |q: &Value| -> Value {
        let mut response = agent
            .post(&format!("{}/assets/query", dev.url()))
            .header("content-type", "application/json")
            .send(q.to_string())
            .unwrap();
        assert_eq!(response.status(), 200, "{q}");
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    };
    let before = dev.workerd_rss();
    let mut peaks = [before, before];
    let mut results = 0;
    let queries = queries(&assets, 160);
    for (i, q) in queries.iter().enumerate() {
        let got = post(q);
        same(&got, &expected(&dataset, q), q);
        results += got["numberReturned"].as_u64().unwrap();
        let half = usize::from(i >= queries.len() / 2);
        peaks[half] = peaks[half].max(dev.workerd_rss());
    }
    let mut response = agent.get(&format!("{}/dataset", dev.url())).call().unwrap();
    let state: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    let cached = state["cached_tile_bytes"].as_u64().unwrap();
    let linear = state["wasm_memory_bytes"].as_u64().unwrap();
    let mib = |b: u64| b as f64 / 1048576.0;
    eprintln!(
        "workerd: {} tiles, {:.1} MiB of tiles in KV; {} queries, {results} results; tile cache \
         {:.2} MiB; the function's linear memory {:.1} MiB; workerd resident {:.1} MiB before \
         the queries, peak {:.1} MiB in the first half, {:.1} MiB in the second",
        blobs.len() - 1,
        mib(tile_bytes as u64),
        queries.len(),
        mib(cached),
        mib(linear),
        mib(before),
        mib(peaks[0]),
        mib(peaks[1]),
    );
    assert!(results > 1000, "the queries must find things: {results}");
    // The queries read far more tiles than the cache may hold.
    assert!(tile_bytes > 8 * 2 * 1024 * 1024);
    assert!(cached <= 2 * 1024 * 1024, "the cache holds {cached} bytes");
    // What the isolate holds for the function stays within 64 MB.
    assert!(linear <= 64 * 1024 * 1024, "linear memory {linear}");
    // workerd's own memory (V8 and its garbage, the local KV simulation)
    // is not the function's, and moves with its collector; only a gross
    // leak (tiles kept beyond the cache) would show here.
    assert!(
        peaks[1] < before + 128 * 1024 * 1024,
        "resident {before} → {peaks:?}"
    );
}

#[test]
fn spin_answers_like_the_engine() {
    let assets = assets(60_000);
    let (blobs, head) = build(&assets);
    let dataset = MemoryDataset::new(assets.clone(), CAPACITY);
    let app = App::load(
        &wasm_tests::spin_component("spatial-query"),
        AppConfig {
            variables: [
                ("policy".to_owned(), POLICY.to_owned()),
                ("spatial_admin_token".to_owned(), ADMIN.to_owned()),
            ]
            .into(),
            kv: KvStore::new(),
            route: "/spatial-query".into(),
            guest_stderr: None,
        },
    )
    .expect("the Spin build of spatial-query (run `cargo xtask build`)");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let send = |method: &str, path: &str, content_type: &str, body: Vec<u8>| {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("/spatial-query{path}"))
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", content_type)
            .header("content-length", body.len())
            .body(Bytes::from(body))
            .unwrap();
        runtime
            .block_on(app.handle(req, "127.0.0.1:4000".parse().unwrap()))
            .unwrap()
    };
    for (key, bytes) in &blobs {
        let r = send(
            "PUT",
            &format!("/_spatial/blobs/{key}"),
            "application/octet-stream",
            bytes.clone(),
        );
        assert_eq!(r.status(), 204, "{key}");
    }
    let r = send(
        "POST",
        "/_spatial/publish",
        "application/json",
        json!({"head": head}).to_string().into_bytes(),
    );
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    for q in queries(&assets, 60) {
        let r = send(
            "POST",
            "/assets/query",
            "application/json",
            q.to_string().into_bytes(),
        );
        assert_eq!(
            r.status(),
            200,
            "{q}: {}",
            String::from_utf8_lossy(r.body())
        );
        let got: Value = serde_json::from_slice(r.body()).unwrap();
        same(&got, &expected(&dataset, &q), &q);
    }
}

#[test]
fn the_browser_index_answers_like_the_engine() {
    let assets = assets(40_000);
    let dataset = MemoryDataset::new(assets.clone(), CAPACITY);
    let dir = std::env::temp_dir().join(format!("spatial-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input: String = assets
        .iter()
        .map(|a| a.to_feature(None).to_string() + "\n")
        .collect();
    let queries = queries(&assets, 80);
    std::fs::write(dir.join("assets.ndjson"), input).unwrap();
    std::fs::write(
        dir.join("queries.json"),
        serde_json::to_string(&queries).unwrap(),
    )
    .unwrap();
    let root = wasm_tests::workspace_root();
    let output = std::process::Command::new("node")
        .current_dir(&root)
        .env("PATH", wasm_tests::path_with_node_bin().unwrap())
        .arg(root.join("wasm-tests/chromium/spatial_index.mjs"))
        .arg("--root")
        .arg(wasm_tests::artifacts_dir().join("browser"))
        .arg("--input")
        .arg(dir.join("assets.ndjson"))
        .arg("--queries")
        .arg(dir.join("queries.json"))
        .output()
        .expect("node (run `cargo xtask test`)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(got["report"]["accepted"], 40_000);
    for (q, answer) in queries.iter().zip(got["answers"].as_array().unwrap()) {
        let answer: Value = serde_json::from_str(answer.as_str().unwrap()).unwrap();
        same(&answer, &expected(&dataset, q), q);
    }
    std::fs::remove_dir_all(&dir).ok();
}
