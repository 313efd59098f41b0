//! The npm package as a user gets it: the tarball `cargo xtask build`
//! packs (`target/edge/npm/edge-functions-*.tgz`) installed into a scratch
//! project and imported with no bundler by `wasm-tests/npm/smoke.mjs`, under
//! the system Node (20) and the npm Node 22 (`node_modules/.bin/node`),
//! under Deno (npm `deno`; its `deno serve` entry is the conformance
//! suite's `deno` runtime), and from a page in headless Chromium
//! (`wasm-tests/npm/chromium.mjs`). The
//! answers are checked here: against the native functions where the server
//! side has an answer (problem types and details, an ingested sketch
//! batch), against a haversine oracle for the spatial queries; in Chromium,
//! also that the page asked nothing of any other origin and that each
//! import fetched its own `.wasm` once. The declarations are held to
//! `tsc --strict` (npm `typescript`) by a typed use of every export,
//! `wasm-tests/npm/typed.ts`.

use std::path::{Path, PathBuf};
use std::process::Command;

use edge_core::{Config, EdgeFunction};
use serde_json::Value;
use wasm_tests::native::NativeFunction;
use wasm_tests::workspace_root;

const PREFIX: &str = "urn:edge-functions:problem:";

/// A scratch project with the tarball installed and the smoke script
/// beside it.
fn scratch_project(label: &str) -> PathBuf {
    let dir = wasm_tests::npm::scratch_project(label).unwrap();
    for script in ["smoke.mjs", "fixtures.mjs"] {
        std::fs::copy(
            workspace_root().join("wasm-tests/npm").join(script),
            dir.join(script),
        )
        .unwrap();
    }
    dir
}

/// The Nodes to run under: the system one and the npm Node 22, each once.
fn nodes() -> Vec<PathBuf> {
    // Every `node` on PATH (under `cargo xtask test` the npm one comes
    // first, the system's after it), then the npm one, each file once.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = std::env::split_paths(&path)
        .map(|dir| dir.join("node"))
        .chain([workspace_root().join("node_modules/.bin/node")]);
    let mut nodes: Vec<PathBuf> = Vec::new();
    let mut seen = Vec::new();
    for node in candidates {
        if let Ok(real) = node.canonicalize()
            && real.is_file()
            && !seen.contains(&real)
        {
            seen.push(real);
            nodes.push(node);
        }
    }
    nodes
}

fn run_smoke(node: &Path, project: &Path) -> Value {
    run_smoke_with(node, &[], project)
}

/// `program ARGS… smoke.mjs` in `project`: its answers.
fn run_smoke_with(node: &Path, args: &[&str], project: &Path) -> Value {
    let sample = workspace_root().join("functions/spatial-query/testdata/sample.geojson");
    let answers = project.join("answers.json");
    let _ = std::fs::remove_file(&answers);
    let output = Command::new(node)
        .current_dir(project)
        .args(args)
        .arg("smoke.mjs")
        .arg("--geojson")
        .arg(&sample)
        .arg("--out")
        .arg(&answers)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", node.display()));
    assert!(
        output.status.success(),
        "{} smoke.mjs failed ({}): {}",
        node.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&answers).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "smoke.mjs wrote no JSON ({e}): {text}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn the_packed_package_imports_and_answers_under_node() {
    let project = scratch_project("node");
    let mut versions = Vec::new();
    for node in nodes() {
        let out = run_smoke(&node, &project);
        let version = out["node"].as_str().unwrap_or("?").to_owned();
        if versions.contains(&version) {
            continue;
        }
        eprintln!("npm package under Node {version}");
        check_smoke(&out);
        versions.push(version);
    }
    assert!(
        versions.iter().any(|v| v.starts_with("v20.")),
        "Node 20 ran: {versions:?}"
    );
    let _ = std::fs::remove_dir_all(&project);
}

/// The package's TypeScript declarations, as installed, checked by
/// `tsc --strict` (npm `typescript`, a root devDependency) together with
/// `wasm-tests/npm/typed.ts`, which uses every export and refuses misuses
/// with `@ts-expect-error` (so a declaration that turned into `any`, lost
/// a member or changed a type fails here); `skipLibCheck` off, so the
/// package's own `.d.ts` files are checked as well.
#[test]
fn the_declarations_check_with_tsc_strict() {
    let project = scratch_project("tsc");
    for file in ["typed.ts", "tsconfig.json"] {
        std::fs::copy(
            workspace_root().join("wasm-tests/npm").join(file),
            project.join(file),
        )
        .unwrap();
    }
    let tsc = workspace_root().join("node_modules/typescript/bin/tsc");
    assert!(
        tsc.exists(),
        "{} is missing: run `cargo xtask install`",
        tsc.display()
    );
    let output = Command::new(workspace_root().join("node_modules/.bin/node"))
        .current_dir(&project)
        .arg(&tsc)
        .args(["--project", ".", "--strict", "--pretty", "false"])
        .output()
        .expect("running tsc");
    assert!(
        output.status.success(),
        "tsc --strict over the package's declarations and typed.ts failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&project);
}

/// The same script and checks under Deno (npm `deno`), which imports the
/// package from `node_modules` with no bundler; the permissions say what it
/// touches: its files, the environment and a JWKS server of its own on
/// 127.0.0.1 (`JwtVerifier.fromUrl`, asked for).
#[test]
fn the_packed_package_imports_and_answers_under_deno() {
    let deno = wasm_tests::deno::deno_binary().unwrap();
    let project = scratch_project("deno");
    let out = run_smoke_with(
        &deno,
        &[
            "run",
            "--allow-read",
            "--allow-write=.",
            "--allow-env",
            "--allow-net=127.0.0.1",
        ],
        &project,
    );
    let version = out["deno"].as_str().unwrap_or_default();
    assert!(!version.is_empty(), "not Deno: {}", out["node"]);
    eprintln!("npm package under Deno {version}");
    check_smoke(&out);
    let _ = std::fs::remove_dir_all(&project);
}

/// The package's `deno serve` entry with a policy the function refuses:
/// it serves, and answers `/health` with the problem the native function
/// answers (500 `misconfigured`, the reason in the log, not the body).
#[test]
fn the_deno_entry_refuses_a_bad_configuration_as_the_server_does() {
    let policy = "[rate_limit\nnot toml";
    let vars = [("POLICY".to_owned(), policy.to_owned())].into();
    let serve =
        wasm_tests::deno::DenoServe::start("rate-limit", &vars, &Default::default()).unwrap();
    let response = wasm_tests::workerd::agent(std::time::Duration::from_secs(10))
        .get(&format!("{}/health", serve.url()))
        .call()
        .unwrap();
    let status = response.status().as_u16();
    let body: Value =
        serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap();
    let get = http::Request::builder()
        .uri("http://localhost/health")
        .body(bytes::Bytes::new())
        .unwrap();
    let server = native::<rate_limit::RateLimit>(Config::new(policy), get);
    assert_eq!(status, server.0, "{body}");
    for member in ["type", "title", "status", "detail", "instance"] {
        assert_eq!(
            body[member], server.1[member],
            "{member}: {body} vs {server:?}"
        );
    }
    let log = serve.log_tail();
    assert!(log.contains("policy"), "the log names the field: {log}");
}

/// Every answer smoke.mjs wrote, checked.
fn check_smoke(out: &Value) {
    root(out);
    anonymize(&out["anonymize"]);
    spatial(&out["spatial"]);
    auth(&out["auth"]);
    rate_limit(&out["rateLimit"]);
    metrics(&out["metrics"]);
    fetch(&out["fetch"], &out["anonymize"]);
}

/// `{ ok }` of an attempt, failing with its error.
fn ok<'a>(attempt: &'a Value, what: &str) -> &'a Value {
    attempt
        .get("ok")
        .unwrap_or_else(|| panic!("{what} threw: {}", attempt["error"]))
}

/// `{ error }` of an attempt: a JS `Error` named `ProblemError`.
fn error<'a>(attempt: &'a Value, what: &str) -> &'a Value {
    let error = attempt
        .get("error")
        .unwrap_or_else(|| panic!("{what} did not throw: {}", attempt["ok"]));
    assert_eq!(error["isError"], true, "{what}: not an Error: {error}");
    assert_eq!(error["name"], "ProblemError", "{what}: {error}");
    error
}

fn assert_problem(attempt: &Value, what: &str, kind: &str, status: u16) -> Value {
    let e = error(attempt, what);
    assert_eq!(e["type"], format!("{PREFIX}{kind}"), "{what}: {e}");
    assert_eq!(e["status"], status, "{what}: {e}");
    assert_eq!(e["message"], e["detail"], "{what}: {e}");
    e.clone()
}

/// The native function's answer to `req`, as its problem body.
fn native<F: EdgeFunction>(config: Config, req: http::Request<bytes::Bytes>) -> (u16, Value) {
    let function = NativeFunction::<F>::new(&config);
    let response = futures::executor::block_on(function.serve(req));
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(response.body()).unwrap_or(Value::Null),
    )
}

fn post(path: &str, content_type: &str, body: &str) -> http::Request<bytes::Bytes> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", content_type)
        .body(bytes::Bytes::from(body.to_owned()))
        .unwrap()
}

/// The same problem as the server side: type, status and detail.
fn same_as_server(e: &Value, server: &(u16, Value), what: &str) {
    assert_eq!(e["status"], server.0, "{what}: {e} vs {server:?}");
    assert_eq!(e["type"], server.1["type"], "{what}: {e} vs {server:?}");
    assert_eq!(e["detail"], server.1["detail"], "{what}: {e} vs {server:?}");
}

fn root(out: &Value) {
    assert_eq!(out["root"]["prefix"], PREFIX);
    let registry = edge_registry::Registry::load().unwrap();
    let names: Vec<&str> = registry.names().collect();
    let mut caps: Vec<&str> = out["root"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    caps.sort_unstable();
    let mut want = names.clone();
    want.sort_unstable();
    assert_eq!(caps, want, "the root lists every function");
    for name in names {
        assert!(out["fetch"].get(name).is_some(), "smoke.mjs fetched {name}");
    }
}

fn anonymize(a: &Value) {
    let text = ok(&a["text"], "text").as_str().unwrap();
    for raw in ["ann@example.com", "4111 1111 1111 1111", "203.0.113.7"] {
        assert!(!text.contains(raw), "anonymized text has {raw:?}: {text}");
    }
    assert!(text.contains("203.0.113.0"), "IP truncated to /24: {text}");
    let json: Value = serde_json::from_str(ok(&a["json"], "json").as_str().unwrap()).unwrap();
    let json_text = json.to_string();
    assert!(
        !json_text.contains("ann@example.com") && !json_text.contains("hunter2"),
        "{json}"
    );
    let ndjson = ok(&a["ndjson"], "ndjson").as_str().unwrap();
    assert_eq!(ndjson.lines().count(), 2, "{ndjson}");
    assert!(
        !ndjson.contains("ann@example.com") && !ndjson.contains("203.0.113.7"),
        "{ndjson}"
    );
    let found: Vec<&str> = ok(&a["analyze"], "analyze")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["entity"].as_str())
        .collect();
    for entity in ["email", "ipv4", "card", "phone"] {
        assert!(found.contains(&entity), "analyze found {found:?}");
    }

    // Invalid JSON: the function's own problem.
    let e = error(&a["badJson"], "invalid JSON");
    let config = Config::new(anonymize::Anonymize::DEFAULT_POLICY)
        .with_secret("GDPR_ANONYMIZATION_SALT", "test-anonymization-salt");
    let server = native::<anonymize::Anonymize>(
        config,
        post("/", "application/json", r#"{"user": {"email": "#),
    );
    same_as_server(e, &server, "invalid JSON");
    let e = assert_problem(&a["badPolicy"], "bad policy", "misconfigured", 500);
    assert!(
        e["detail"].as_str().unwrap().contains("explode"),
        "the detail names the bad value: {e}"
    );
    assert_problem(
        &a["noKey"],
        "deanonymize without a key",
        "no-encryption-key",
        409,
    );

    // Every operator.
    let ops = &a["operators"];
    let json: Value = serde_json::from_str(ok(&ops["json"], "every operator").as_str().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {ops}"));
    assert_eq!(json["public"], "ann@example.com", "keep: {json}");
    assert_eq!(json["birthdate"], "1990-04", "generalize_date: {json}");
    assert_eq!(json["age"], 30, "range(10): the range's start: {json}");
    let lat = json["lat"].as_f64().unwrap_or(f64::NAN);
    assert!((lat - 52.52).abs() < 1e-9, "grid(0.01): {json}");
    for (field, raw) in [
        ("email", "ann@example.com"),
        ("name", "Ann Example"),
        ("iban", "DE89 3704 0044 0532 0130 00"),
    ] {
        assert!(
            json[field].as_str().is_some_and(|v| v != raw),
            "{field}: {json}"
        );
    }
    assert_eq!(
        ok(&ops["deanonymized"], "deanonymize"),
        "ann@example.com",
        "encrypt is reversible with the key"
    );
    let text = ok(&ops["text"], "every operator, text").as_str().unwrap();
    assert!(
        !text.contains("4111") && !text.contains("ann@example.com"),
        "{text}"
    );
}

/// Great-circle distance in metres (the spherical model, radius 6371008.8 m).
fn haversine(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lat2) = (a.1.to_radians(), b.1.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.0 - a.0).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().asin()
}

/// One asset of the sample, as the oracle sees it.
struct Asset {
    id: String,
    at: (f64, f64),
    confidence: f64,
    magnitude: f64,
    processed_at: String,
}

fn spatial(s: &Value) {
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(
            workspace_root().join("functions/spatial-query/testdata/sample.geojson"),
        )
        .unwrap(),
    )
    .unwrap();
    let assets: Vec<Asset> = sample["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let c = &f["geometry"]["coordinates"];
            let p = &f["properties"];
            let d: Vec<f64> = p["deformation"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            Asset {
                id: f["id"].as_str().unwrap().to_owned(),
                at: (c[0].as_f64().unwrap(), c[1].as_f64().unwrap()),
                confidence: p["fusion_confidence"].as_f64().unwrap(),
                magnitude: d.iter().map(|x| x * x).sum::<f64>().sqrt(),
                processed_at: p["processed_at"].as_str().unwrap().to_owned(),
            }
        })
        .collect();
    assert_eq!(s["report"]["accepted"], assets.len(), "{}", s["report"]);
    let sorted = |v: &Value, what: &str| -> Vec<String> {
        let mut ids: Vec<String> = ok(v, what)
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let oracle = |keep: &dyn Fn(&Asset) -> bool| -> Vec<String> {
        let mut ids: Vec<String> = assets
            .iter()
            .filter(|a| keep(a))
            .map(|a| a.id.clone())
            .collect();
        ids.sort();
        ids
    };
    let expected = [
        (
            "radius",
            oracle(&|a| haversine(a.at, (13.405, 52.52)) <= 5000.0),
        ),
        (
            "bbox",
            oracle(&|a| (13.3..=13.5).contains(&a.at.0) && (52.4..=52.6).contains(&a.at.1)),
        ),
        (
            "polygon",
            oracle(&|a| (13.39..=13.47).contains(&a.at.0) && (52.5..=52.53).contains(&a.at.1)),
        ),
        ("confident", oracle(&|a| a.confidence >= 0.9)),
        ("deforming", oracle(&|a| a.magnitude >= 3.0)),
        (
            "window",
            // The same ISO 8601 form throughout: text order is time order.
            oracle(&|a| {
                a.processed_at.as_str() >= "2026-10-01T12:00:00Z"
                    && a.processed_at.as_str() < "2026-10-03T12:00:00Z"
            }),
        ),
    ];
    for (name, want) in expected {
        assert!(!want.is_empty(), "{name}: the oracle expects something");
        let answers = &s["answers"][name];
        assert_eq!(sorted(&answers["geojson"], name), want, "{name}: {answers}");
        assert_eq!(
            sorted(&answers["ndjson"], name),
            want,
            "{name} (NDJSON): {answers}"
        );
    }
    // Nearest: in order of distance.
    let mut by_distance: Vec<(f64, String)> = assets
        .iter()
        .map(|a| (haversine(a.at, (2.3, 48.86)), a.id.clone()))
        .filter(|(d, _)| *d <= 1_000_000.0)
        .collect();
    by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
    let want: Vec<Value> = by_distance
        .into_iter()
        .take(2)
        .map(|(_, id)| Value::from(id))
        .collect();
    assert_eq!(
        ok(&s["answers"]["nearest"]["geojson"], "nearest"),
        &Value::from(want),
        "nearest"
    );

    let e = error(&s["badQuery"], "a latitude out of range");
    let server = native::<spatial_query::SpatialQuery>(
        Config::new(spatial_query::SpatialQuery::DEFAULT_POLICY)
            .with_secret("SPATIAL_ADMIN_TOKEN", "test-admin-token"),
        post(
            "/assets/query",
            "application/json",
            r#"{"type":"radius","lon":13.4,"lat":95,"radius_m":10}"#,
        ),
    );
    same_as_server(e, &server, "a latitude out of range");
    assert_problem(&s["badFormat"], "format csv", "invalid-parameter", 400);
}

fn auth(a: &Value) {
    use auth_check::token::TokenError;
    for alg in ["RS256", "ES256", "EdDSA"] {
        let claims = ok(&a[alg]["valid"], alg);
        assert_eq!(claims["sub"], "alice", "{alg}: {claims}");
        for case in ["tampered", "forged"] {
            let e = assert_problem(&a[alg][case], case, "bad-signature", 401);
            assert_eq!(e["detail"], TokenError::BadSignature.description(), "{e}");
            assert_eq!(e["title"], "Unauthorized");
        }
    }
    let e = assert_problem(&a["expired"], "expired", "token-expired", 401);
    assert_eq!(e["detail"], TokenError::Expired.description());
    assert_problem(&a["wrongAudience"], "audience", "wrong-audience", 401);
    assert_problem(&a["none"], "alg none", "unsupported-alg", 401);
    assert_problem(&a["badOptions"], "alg none allowed", "misconfigured", 500);
    assert_eq!(a["keyCount"], 3);
    assert_eq!(ok(&a["fromUrl"], "fromUrl")["sub"], "alice");
    assert_problem(&a["fromDeadUrl"], "a dead URL", "keys-unavailable", 503);
}

fn rate_limit(r: &Value) {
    for algorithm in ["fixed_window", "sliding_window", "token_bucket", "gcra"] {
        let a = &r["algorithms"][algorithm];
        assert_eq!(a["allowed"], 3, "{algorithm}: {a}");
        assert_eq!(a["last"]["allowed"], false, "{algorithm}: {a}");
        assert!(
            a["last"]["retryAfterMs"].as_u64().unwrap() > 0,
            "{algorithm}: {a}"
        );
        assert_eq!(a["other"], true, "{algorithm}: keys apart: {a}");
    }
    let parsed = &r["parsed"];
    assert_eq!(parsed[0]["name"], "API_GENERAL", "{parsed}");
    assert_eq!(
        (
            &parsed[0]["remaining"],
            &parsed[0]["reset"],
            &parsed[0]["quota"],
            &parsed[0]["window"]
        ),
        (
            &Value::from(0),
            &Value::from(30),
            &Value::from(100),
            &Value::from(60)
        ),
        "{parsed}"
    );
    assert_eq!(parsed[1]["quota"], 1000, "{parsed}");
    assert_problem(
        &r["badField"],
        "RateLimit r=lots",
        "invalid-ratelimit-field",
        400,
    );
    assert_problem(&r["badOptions"], "algorithm leaky", "misconfigured", 500);
    let e = assert_problem(
        &r["missingSecret"],
        "RateLimitFunction without secrets",
        "misconfigured",
        500,
    );
    assert!(
        e["detail"].as_str().unwrap().contains("is not set"),
        "the detail names the missing secret: {e}"
    );

    // The function's own 429 and fields, honoured by a client throttle.
    let server = &r["server"];
    let statuses: Vec<u64> = server["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert_eq!(statuses.last(), Some(&429), "{server}");
    assert!(!statuses[..5].contains(&429), "{server}");
    assert_eq!(server["fields"][0]["name"], "AUTH_LOGIN", "{server}");
    assert_eq!(server["fields"][0]["remaining"], 0, "{server}");
    assert_eq!(server["before"]["allowed"], true, "{server}");
    assert_eq!(server["after"]["allowed"], false, "{server}");
    assert_eq!(server["after"]["server"], true, "{server}");
    assert!(
        server["after"]["retryAfterMs"].as_u64().unwrap() > 0,
        "{server}"
    );
}

fn metrics(m: &Value) {
    assert_eq!(m["count"], 2000);
    assert!((m["sum"].as_f64().unwrap() - 2001.0).abs() < 1e-6, "{m}");
    assert_eq!(m["min"], 0.001);
    assert_eq!(m["max"], 2.0);
    // 1 % of the exact quantiles (0.001 .. 2.000 in steps of 0.001).
    let quantiles = m["quantiles"].as_array().unwrap();
    for (q, exact) in quantiles.iter().zip([1.0, 1.9, 1.98]) {
        let q = q.as_f64().unwrap();
        assert!(
            (q - exact).abs() <= 0.0101 * exact,
            "{q} vs {exact}: {quantiles:?}"
        );
    }
    let round = &m["roundTrip"];
    assert_eq!(round["count"], 2000);
    assert_eq!(round["quantiles"], m["quantiles"]);
    assert_eq!(round["sameWire"], true);
    assert_eq!(m["empty"]["quantile"], Value::Null);

    // The batch is what the metrics function ingests.
    let batch_text = m["batch"].as_str().unwrap();
    let batch: edge_core::metrics::MetricsBatch = serde_json::from_str(batch_text).unwrap();
    assert_eq!(batch.requests(), 2000);
    let config = Config::new(metrics::Metrics::DEFAULT_POLICY)
        .with_secret("METRICS_INGEST_TOKEN", "test-ingest-token")
        .with_secret("METRICS_ADMIN_TOKEN", "test-admin-token");
    let function = NativeFunction::<metrics::Metrics>::new(&config);
    let mut req = post("/_metrics/ingest", "application/json", batch_text);
    req.headers_mut().insert(
        "authorization",
        http::HeaderValue::from_static("Bearer test-ingest-token"),
    );
    let response = futures::executor::block_on(function.serve(req));
    assert!(
        response.status().is_success(),
        "the metrics function refused the batch: {} {}",
        response.status(),
        String::from_utf8_lossy(response.body())
    );
    let e = assert_problem(
        &m["badWire"],
        "a sketch whose counts disagree",
        "invalid-batch",
        400,
    );
    assert!(
        e["detail"].as_str().unwrap().contains("sketch count"),
        "{e}"
    );
}

fn fetch(f: &Value, anonymize: &Value) {
    let registry = edge_registry::Registry::load().unwrap();
    for name in registry.names() {
        let answer = ok(&f[name], name);
        assert_eq!(answer["status"], 200, "{name} /health: {answer}");
    }
    // The class and the function's fetch refuse bad JSON alike.
    let post = ok(&f["anonymizePost"], "AnonymizeFunction.fetch");
    let class = error(&anonymize["badJson"], "Anonymizer.json");
    assert_eq!(post["status"], 400, "{post}");
    assert_eq!(post["body"]["type"], class["type"]);
    assert_eq!(post["body"]["detail"], class["detail"]);
}

#[test]
fn the_packed_package_imports_in_chromium_from_its_own_origin() {
    let project = scratch_project("chromium");
    let answers = project.join("chromium.json");
    let root = workspace_root();
    let output = Command::new(root.join("node_modules/.bin/node"))
        .current_dir(&root)
        .env("PATH", wasm_tests::path_with_node_bin().unwrap())
        .arg(root.join("wasm-tests/npm/chromium.mjs"))
        .arg("--package")
        .arg(project.join("node_modules"))
        .arg("--geojson")
        .arg(root.join("functions/spatial-query/testdata/sample.geojson"))
        .arg("--out")
        .arg(&answers)
        .output()
        .expect("running node for Chromium");
    assert!(
        output.status.success(),
        "chromium.mjs failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&answers).unwrap()).unwrap();
    assert_eq!(report["errors"], serde_json::json!([]), "page errors");
    let origin = report["origin"].as_str().unwrap();
    let requests: Vec<&str> = report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for request in &requests {
        assert!(
            request.starts_with(&format!("{origin}/")),
            "the page asked another origin: {request}"
        );
    }
    let registry = edge_registry::Registry::load().unwrap();
    for name in registry.names() {
        let wasm = format!("{origin}/edge-functions/wasm/{name}_bg.wasm");
        assert_eq!(
            requests.iter().filter(|r| **r == wasm).count(),
            1,
            "{name}'s .wasm fetched once: {requests:?}"
        );
    }
    // The first module's import fetched its own .wasm, no other.
    let wasm: Vec<&&str> = requests.iter().filter(|r| r.ends_with(".wasm")).collect();
    assert!(wasm[0].ends_with("/anonymize_bg.wasm"), "{requests:?}");

    let a = &report["answers"];
    let text = ok(&a["anonymized"], "anonymize").as_str().unwrap();
    assert!(
        !text.contains("ann@example.com") && !text.contains("203.0.113.7"),
        "{text}"
    );
    assert_problem(&a["badJson"], "invalid JSON", "invalid-json", 400);
    let mut ids: Vec<&str> = ok(&a["radius"], "radius")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "6f1c2a9e-0b4d-4c1e-9a7b-1d2e3f405a01",
            "6f1c2a9e-0b4d-4c1e-9a7b-1d2e3f405a02",
            "6f1c2a9e-0b4d-4c1e-9a7b-1d2e3f405a03"
        ],
        "the Berlin assets within 5 km (as under Node, by the haversine oracle)"
    );
    assert_eq!(ok(&a["verified"], "ES256 from WebCrypto")["sub"], "alice");
    assert_problem(&a["tampered"], "tampered ES256", "bad-signature", 401);
    assert_eq!(
        a["throttled"],
        serde_json::json!([true, true, true, false, false])
    );
    assert_eq!(a["parsed"][0]["remaining"], 0);
    assert_eq!(a["sketch"]["count"], 100);
    assert_eq!(a["sketch"]["same"], true);
    for name in registry.names() {
        assert_eq!(ok(&a["health"][name], name), 200, "{name} /health");
    }
    let _ = std::fs::remove_dir_all(&project);
}
