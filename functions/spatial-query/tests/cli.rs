//! The `spatial-tiles` command line: builds from NDJSON and GeoJSON (with
//! and without spilling sorted runs to disk), stats, and an upload to a
//! small local HTTP server standing in for the function.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use spatial_query::ingest::parse_feature;
use spatial_query::manifest::{Manifest, tile_key};
use spatial_query::tile::Tile;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_spatial-tiles");

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "spatial-tiles-{name}-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn uuid(&mut self) -> Uuid {
        let x = u128::from(self.next()) << 64 | u128::from(self.next());
        let x = (x & !(0xf << 76)) | (0x4 << 76);
        Uuid::from_u128((x & !(0x3 << 62)) | (0x2 << 62))
    }
}

fn feature(id: &str, lon: f64, lat: f64, z: f64, confidence: f64, n: u64) -> String {
    format!(
        concat!(
            r#"{{"type":"Feature","id":"{id}","geometry":{{"type":"Point","coordinates":[{lon},{lat},{z}]}},"#,
            r#""properties":{{"deformation":[{dx},-1.25,0.5],"registration_quality":0.75,"#,
            r#""fusion_confidence":{c},"processing_duration_ms":{d},"algorithm_version":"fusion-2.3.{v}","#,
            r#""processed_at":"2026-03-{day:02}T12:00:{s:02}Z"}}}}"#
        ),
        id = id,
        lon = lon,
        lat = lat,
        z = z,
        dx = (n % 17) as f64 * 0.5,
        c = confidence,
        d = 50 + n % 1000,
        v = n % 5,
        day = 1 + n % 28,
        s = n % 60,
    )
}

/// A generated input: the lines (NDJSON), which of them are features the
/// GeoJSON form can also carry, and what should come out.
struct Input {
    lines: Vec<String>,
    /// Lines that are JSON objects (valid features or not).
    json_lines: Vec<String>,
    /// The assets that should be kept: id → (lon, lat).
    kept: BTreeMap<Uuid, (f64, f64)>,
    /// Rejections expected: invalid features and duplicate ids.
    rejected: u64,
    /// Of those, rejections that are not JSON (NDJSON only).
    not_json: u64,
}

fn generate(count: usize, seed: u64) -> Input {
    let mut rng = Rng(seed);
    let mut input = Input {
        lines: Vec::new(),
        json_lines: Vec::new(),
        kept: BTreeMap::new(),
        rejected: 0,
        not_json: 0,
    };
    let centres: Vec<(f64, f64)> = (0..12)
        .map(|_| (rng.range(-170.0, 170.0), rng.range(-70.0, 70.0)))
        .collect();
    let mut valid: Vec<String> = Vec::new();
    for n in 0..count as u64 {
        let id = rng.uuid();
        let (lon, lat) = match n % 10 {
            // Uniform.
            0..=3 => (rng.range(-180.0, 180.0), rng.range(-90.0, 90.0)),
            // 300 at exactly one place: more than a tile in one finest cell.
            4 if n < 3000 => (12.5, 41.875),
            // The edges.
            5 if n % 100 == 5 => (
                [-180.0, 180.0, 0.0][(n / 100 % 3) as usize],
                [90.0, -90.0, 0.0][(n / 300 % 3) as usize],
            ),
            // Clusters, some very tight.
            _ => {
                let (clon, clat) = centres[(rng.next() % 12) as usize];
                let spread = if n % 3 == 0 { 1e-6 } else { 0.05 };
                (
                    (clon + rng.range(-spread, spread)).clamp(-180.0, 180.0),
                    (clat + rng.range(-spread, spread)).clamp(-90.0, 90.0),
                )
            }
        };
        let line = feature(
            &id.to_string(),
            lon,
            lat,
            rng.range(-50.0, 4000.0),
            rng.unit(),
            n,
        );
        // Expected as the library's parser reads the line (serde_json
        // without `float_roundtrip` may be 1 ulp off the written double).
        let parsed = parse_feature(line.as_bytes()).unwrap();
        assert_eq!(parsed.id, id);
        input.kept.insert(id, (parsed.lon, parsed.lat));
        valid.push(line.clone());
        input.lines.push(line.clone());
        input.json_lines.push(line);
        if n % 2500 == 7 {
            // Invalid features (JSON, so GeoJSON can carry them too).
            let bad = [
                feature(&rng.uuid().to_string(), 10.0, 95.0, 0.0, 0.5, n),
                feature(&rng.uuid().to_string(), 10.0, 5.0, 0.0, 1.5, n),
                feature("not-a-uuid", 10.0, 5.0, 0.0, 0.5, n),
                r#"{"type":"Feature","id":"6a3c5ab2-5c5e-4d4e-9d37-0d8a3a0b1b11"}"#.to_owned(),
            ];
            let b = bad[(n / 2500) as usize % bad.len()].clone();
            input.lines.push(b.clone());
            input.json_lines.push(b);
            input.rejected += 1;
            // A line that is not JSON.
            input.lines.push("{not json".to_owned());
            input.rejected += 1;
            input.not_json += 1;
        }
        if n % 4000 == 3999 {
            // An exact copy of an earlier feature: a duplicate id in the
            // same place, rejected.
            let copy = valid[(rng.next() % valid.len() as u64) as usize].clone();
            input.lines.push(copy.clone());
            input.json_lines.push(copy);
            input.rejected += 1;
        }
    }
    input
}

fn write_ndjson(path: &Path, input: &Input) {
    let mut text = input.lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

fn write_geojson(path: &Path, input: &Input) {
    let text = format!(
        "{{\"type\": \"FeatureCollection\", \"name\": \"test\",\n \"features\": [\n{}\n]}}\n",
        input.json_lines.join(",\n")
    );
    std::fs::write(path, text).unwrap();
}

/// `build --input input --out out`, then `more`.
fn build_args<'a>(input: &'a Path, out: &'a Path, more: &[&'a str]) -> Vec<&'a str> {
    let path = |p: &'a Path| p.to_str().unwrap();
    [
        &["build", "--input", path(input), "--out", path(out)][..],
        more,
    ]
    .concat()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn run_ok(args: &[&str]) -> Output {
    let output = run(args);
    assert!(
        output.status.success(),
        "{args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every file under `dir`, by path relative to it, but head.json.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                if rel != "head.json" {
                    out.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn summary(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Checks a built directory against the input.
fn check_built(dir: &Path, input: &Input, capacity: usize, dataset: &str, run: u32) {
    let files = files(dir);
    let manifest_key = format!("sq/{dataset}/m/{run}");
    let manifest = Manifest::decode(&files[&manifest_key]).unwrap();
    let listed: BTreeSet<String> = manifest
        .entries()
        .iter()
        .map(|e| tile_key(dataset, run, e.cell))
        .collect();
    // Beside the tiles: the manifest and the run's id directory.
    let ids_key = format!("sq/{dataset}/m/{run}.ids");
    assert!(files.contains_key(&ids_key), "no id directory");
    let on_disk: BTreeSet<String> = files
        .keys()
        .filter(|k| **k != manifest_key && **k != ids_key)
        .cloned()
        .collect();
    assert!(
        listed == on_disk,
        "the manifest lists exactly the tile files: {} listed, {} on disk",
        listed.len(),
        on_disk.len()
    );
    assert_eq!(listed.len(), manifest.entries().len());

    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    let mut total = 0;
    for e in manifest.entries() {
        let tile = Tile::decode(&files[&tile_key(dataset, run, e.cell)]).unwrap();
        assert!(
            !tile.is_empty() && tile.len() <= capacity,
            "tile of {}",
            tile.len()
        );
        assert_eq!(tile.len(), e.count as usize);
        for a in tile.assets() {
            *seen.entry(a.id).or_default() += 1;
            let (lon, lat) = input.kept[&a.id];
            assert_eq!(
                (a.lon.to_bits(), a.lat.to_bits()),
                (lon.to_bits(), lat.to_bits())
            );
            assert!(a.lon >= e.bbox[0] && a.lon <= e.bbox[2]);
            assert!(a.lat >= e.bbox[1] && a.lat <= e.bbox[3]);
        }
        total += tile.len();
    }
    assert_eq!(total, input.kept.len());
    assert!(seen.values().all(|&n| n == 1), "an asset in two tiles");
    let ids: BTreeSet<Uuid> = seen.keys().copied().collect();
    assert_eq!(ids, input.kept.keys().copied().collect::<BTreeSet<_>>());

    let head: Value =
        serde_json::from_slice(&std::fs::read(dir.join("head.json")).unwrap()).unwrap();
    assert_eq!(head["run"], run);
    assert_eq!(head["assets"], input.kept.len() as u64);
    assert_eq!(head["tiles"], listed.len() as u64);
    let bytes: usize = listed.iter().map(|k| files[k].len()).sum();
    assert_eq!(head["tile_bytes"], bytes as u64);
    assert!(head["updated_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn build_with_and_without_spilling_gives_the_same_tiles() {
    let scratch = Scratch::new("spill");
    let input = generate(20_000, 7);
    let ndjson = scratch.path("assets.ndjson");
    write_ndjson(&ndjson, &input);
    let capacity = 256;
    let cap = capacity.to_string();

    let mut outs = Vec::new();
    // In memory; a few runs of 1 MB; ~300 runs of 10 KB (merged in groups).
    for (name, memory) in [("memory", "512"), ("spilled", "1"), ("many-runs", "0.01")] {
        let out = scratch.path(name);
        let json = scratch.path(&format!("{name}.json"));
        let output = run_ok(&build_args(
            &ndjson,
            &out,
            &[
                "--capacity",
                &cap,
                "--memory-mb",
                memory,
                "--json-summary",
                json.to_str().unwrap(),
            ],
        ));
        let s = summary(&json);
        assert_eq!(s["assets"], input.kept.len() as u64, "{name}");
        assert_eq!(s["rejected"], input.rejected, "{name}");
        assert_eq!(s["duplicates"], 5, "{name}");
        let spilled = s["spilled_runs"].as_u64().unwrap();
        if name == "memory" {
            assert_eq!(spilled, 0);
            assert_eq!(s["sorted_runs"], 1);
        } else {
            assert!(spilled >= 3, "{name}: {s}");
        }
        if name == "many-runs" {
            assert!(spilled > 128, "{s}");
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("rejected: feature"), "{stderr}");
        assert!(stderr.contains("duplicate id"), "{stderr}");
        assert!(stderr.contains("built 20,000 assets"), "{stderr}");
        check_built(&out, &input, capacity, "assets", 1);
        // No spill file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".spill"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        outs.push(files(&out));
    }
    assert!(outs[0].len() > 20_000 / capacity);
    assert!(outs[1] == outs[0], "spilled output differs from in-memory");
    assert!(outs[2] == outs[0], "multi-pass merge output differs");
}

#[test]
fn geojson_input_builds_the_same_tiles() {
    let scratch = Scratch::new("geojson");
    let input = generate(3_000, 11);
    let (ndjson, geojson) = (scratch.path("a.ndjson"), scratch.path("a.geojson"));
    write_ndjson(&ndjson, &input);
    write_geojson(&geojson, &input);
    let mut outs = Vec::new();
    for (name, path, rejected) in [
        ("nd", &ndjson, input.rejected),
        ("geo", &geojson, input.rejected - input.not_json),
    ] {
        let out = scratch.path(name);
        let json = scratch.path(&format!("{name}.json"));
        run_ok(&build_args(
            path,
            &out,
            &[
                "--capacity",
                "100",
                "--dataset",
                "demo",
                "--run",
                "3",
                "--memory-mb",
                "0.2",
                "--json-summary",
                json.to_str().unwrap(),
            ],
        ));
        let s = summary(&json);
        assert_eq!(s["rejected"], rejected, "{name}");
        check_built(&out, &input, 100, "demo", 3);
        outs.push(files(&out));
    }
    assert!(outs[0] == outs[1]);

    // stats reads it back.
    let out = run_ok(&["stats", "--dir", scratch.path("geo").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dataset demo, run 3"), "{text}");
    assert!(text.contains("assets: 3,000"), "{text}");
    assert!(text.contains("max 100"), "{text}");
}

#[test]
fn bad_documents_and_arguments_exit_2() {
    let scratch = Scratch::new("bad");
    let path = scratch.path("broken.geojson");
    std::fs::write(
        &path,
        r#"{"type":"FeatureCollection","features":[{"type":"Feature"} oops"#,
    )
    .unwrap();
    let out = scratch.path("out");
    let output = run(&build_args(&path, &out, &[]));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at byte"), "{stderr}");

    let output = run(&["build", "--input", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let output = run(&["build", "--input", "x.csv", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let output = run(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn empty_ndjson_builds_an_empty_dataset() {
    let scratch = Scratch::new("empty");
    let path = scratch.path("none.ndjson");
    std::fs::write(&path, "\n\n").unwrap();
    let out = scratch.path("out");
    run_ok(&build_args(&path, &out, &[]));
    let manifest = Manifest::decode(&std::fs::read(out.join("sq/assets/m/1")).unwrap()).unwrap();
    assert!(manifest.entries().is_empty());
    let head: Value =
        serde_json::from_slice(&std::fs::read(out.join("head.json")).unwrap()).unwrap();
    assert_eq!(
        (head["assets"].as_u64(), head["tiles"].as_u64()),
        (Some(0), Some(0))
    );
    let stats = run_ok(&["stats", "--dir", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&stats.stdout).contains("tiles: 0"));

    // An empty GeoJSON document is not a FeatureCollection.
    let path = scratch.path("none.geojson");
    std::fs::write(&path, " ").unwrap();
    let output = run(&build_args(&path, &out, &[]));
    assert_eq!(output.status.code(), Some(2));
}

// ---------------------------------------------------------------------------
// Upload, against a small HTTP/1.1 server.

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Serves requests, one per connection, recording them: PUTs answer 204
/// but the first `failures` answer 503; a publish under `/refuse/` answers
/// 409, any other 200.
fn serve(failures: usize) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        let mut puts = 0;
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(req) = read_request(&stream) else {
                continue;
            };
            let (status, body) = if req.method == "PUT" {
                puts += 1;
                if puts <= failures {
                    (503, "busy")
                } else {
                    (204, "")
                }
            } else if req.path.starts_with("/refuse/") {
                (
                    409,
                    r#"{"type":"about:blank","title":"run moved","status":409}"#,
                )
            } else {
                (200, r#"{"published":true}"#)
            };
            record.lock().unwrap().push(req);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

fn read_request(stream: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap_or(0));
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

#[test]
fn upload_puts_every_blob_then_publishes() {
    let scratch = Scratch::new("upload");
    let input = generate(2_000, 3);
    let ndjson = scratch.path("a.ndjson");
    write_ndjson(&ndjson, &input);
    let dir = scratch.path("out");
    let d = dir.to_str().unwrap();
    run_ok(&build_args(&ndjson, &dir, &["--capacity", "64"]));
    let built = files(&dir);

    let token = "s3cr3t-t0ken-never-printed";
    let (url, seen) = serve(2);
    let output = Command::new(BIN)
        .args([
            "upload",
            "--dir",
            d,
            "--url",
            &url,
            "--token-env",
            "TEST_SPATIAL_TOKEN",
        ])
        .args(["--expected-run", "0", "--jobs", "3"])
        .env("TEST_SPATIAL_TOKEN", token)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains(token) && !stderr.contains(token));
    assert!(stdout.contains("publish: 200"), "{stdout}");

    let seen = seen.lock().unwrap().clone();
    let puts: Vec<&Seen> = seen.iter().filter(|s| s.method == "PUT").collect();
    // Every blob once, plus the two refused and retried.
    assert_eq!(puts.len(), built.len() + 2);
    let mut put_bodies: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for p in &puts {
        let key = p.path.strip_prefix("/_spatial/blobs/").unwrap();
        assert_eq!(p.headers["authorization"], format!("Bearer {token}"));
        assert_eq!(p.headers["content-type"], "application/octet-stream");
        put_bodies.insert(key.to_owned(), p.body.clone());
    }
    assert!(put_bodies == built);
    // The manifest after every tile; the publish last.
    let manifest_at = seen.iter().position(|s| s.path.ends_with("/m/1")).unwrap();
    assert_eq!(manifest_at, seen.len() - 2);
    let publish = seen.last().unwrap();
    assert_eq!(
        (publish.method.as_str(), publish.path.as_str()),
        ("POST", "/_spatial/publish")
    );
    assert_eq!(publish.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&publish.body).unwrap();
    let head: Value =
        serde_json::from_slice(&std::fs::read(dir.join("head.json")).unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"head": head, "expected_run": 0}));

    // A refused publish: exit 1 with the problem.
    let (url, _) = serve(0);
    let output = Command::new(BIN)
        .args(["upload", "--dir", d, "--url", &url, "--prefix", "/refuse/"])
        .env("SPATIAL_ADMIN_TOKEN", token)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("409") && stderr.contains("run moved"),
        "{stderr}"
    );
    assert!(!stderr.contains(token));

    // No token: refused before sending anything.
    let output = Command::new(BIN)
        .args([
            "upload",
            "--dir",
            d,
            "--url",
            &url,
            "--token-env",
            "NO_SUCH_TOKEN_VAR_X",
        ])
        .env_remove("NO_SUCH_TOKEN_VAR_X")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// An id is a key: a repeated id, wherever the copies are, keeps its last
/// write (issue 16; before, copies at different positions were all kept).
#[test]
fn a_repeated_id_keeps_its_last_write() {
    let scratch = Scratch::new("repeated");
    let line = |id: u32, lon: f64, lat: f64| {
        format!(
            r#"{{"type":"Feature","id":"00000000-0000-4000-8000-{id:012}","geometry":{{"type":"Point","coordinates":[{lon},{lat},1.0]}},"properties":{{"deformation":[1.0,2.0,2.0],"registration_quality":0.9,"fusion_confidence":0.9,"processing_duration_ms":100,"algorithm_version":"fusion-2.3.1","processed_at":"2026-03-01T00:00:00Z"}}}}"#
        )
    };
    let input = scratch.path("in.ndjson");
    let text = [
        line(1, 10.0, 50.0),
        line(2, 11.0, 50.0),
        line(1, -170.0, -40.0),
    ]
    .join("\n");
    std::fs::write(&input, text).unwrap();
    let out = scratch.path("out");
    let json = scratch.path("summary.json");
    run_ok(&build_args(
        &input,
        &out,
        &["--json-summary", json.to_str().unwrap()],
    ));
    let s = summary(&json);
    assert_eq!(
        (s["assets"].as_u64(), s["duplicates"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    let files = files(&out);
    let manifest = Manifest::decode(&files["sq/assets/m/1"]).unwrap();
    let mut kept = Vec::new();
    for e in manifest.entries() {
        let tile = Tile::decode(&files[&tile_key("assets", 1, e.cell)]).unwrap();
        kept.extend(tile.assets().map(|a| (a.id.as_u128(), a.lon)));
    }
    kept.sort_by_key(|k| k.0);
    assert_eq!(
        kept,
        vec![
            (0x4000_8000_0000_0000_0001, -170.0),
            (0x4000_8000_0000_0000_0002, 11.0)
        ]
    );
}
