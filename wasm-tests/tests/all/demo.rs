//! The local-first demo (`packages/demo`, served by `cargo xtask dev` at
//! `/demo/`) driven in headless Chromium by `wasm-tests/chromium/demo.mjs`,
//! served as dev serves it (the npm package beside it at
//! `/edge-functions/`). What the page showed is held to the native code:
//! the anonymized text to the anonymize function's answer with the page's
//! salt, each spatial query's count to the engine's over the same assets,
//! the JWT refusals to the native verifier's, the quantiles to a native
//! `LatencySketch` of the same values. The page must have asked nothing of
//! any other origin, and say so. Screenshots: `target/test-artefacts/demo-*.png`.

use std::process::Command;

use edge_core::metrics::LatencySketch;
use edge_core::{Config, EdgeFunction, Timestamp};
use serde_json::{Value, json};
use spatial_query::dataset::MemoryDataset;
use spatial_query::ingest::{IngestLimits, InputFormat};
use spatial_query::query::{self, Limits};
use wasm_tests::native::NativeFunction;
use wasm_tests::{artifacts_dir, workspace_root};

/// Text with an email, a phone number and an IBAN, typed into the page.
const TEXT: &str =
    "Mail ann.smith@example.com or call +49 30 1234567; IBAN DE89 3704 0044 0532 0130 00.";

/// The anonymize function's answer to `text` with this salt, natively.
fn native_anonymized(text: &str, salt: &str) -> String {
    let config = Config::new(anonymize::Anonymize::DEFAULT_POLICY)
        .with_secret("GDPR_ANONYMIZATION_SALT", salt);
    let function = NativeFunction::<anonymize::Anonymize>::new(&config);
    let request = http::Request::builder()
        .method("POST")
        .uri("http://localhost/")
        .header("content-type", "text/plain")
        .body(bytes::Bytes::from(text.to_owned()))
        .unwrap();
    let response = futures::executor::block_on(function.serve(request));
    assert_eq!(response.status(), 200);
    String::from_utf8(response.body().to_vec()).unwrap()
}

/// The engine's `numberMatched` for `q` over the demo's assets.
fn native_matched(dataset: &MemoryDataset, q: &Value) -> u64 {
    let config = Config::new(spatial_query::SpatialQuery::DEFAULT_POLICY);
    let policy = spatial_query::policy::Section::from_config(&config).unwrap();
    let query =
        spatial_query::request::parse_query(q.as_object().unwrap(), None, None, &policy).unwrap();
    let page = futures::executor::block_on(query::run(
        &dataset.manifest,
        dataset,
        &query,
        Limits {
            max_tiles: policy.max_tiles_per_query,
        },
    ))
    .unwrap();
    spatial_query::page_json(&page)["numberMatched"]
        .as_u64()
        .unwrap()
}

/// The native verifier's refusal of `token` (type, detail).
fn native_refusal(jwks: &str, token: &str, audience: &str, issuer: &str) -> (String, String) {
    let options =
        serde_json::from_value(json!({ "audience": audience, "issuer": issuer })).unwrap();
    let verifier =
        auth_check::verifier::JwksVerifier::new(&serde_json::from_str(jwks).unwrap(), options)
            .unwrap();
    let now = Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    let problem = verifier.verify(token, now).unwrap_err();
    (
        format!("urn:edge-functions:problem:{}", problem.kind()),
        problem.detail().unwrap_or_default().to_owned(),
    )
}

/// An ES256 token and the JWKs of its provider from the auth-check
/// conformance suite (minted by PyJWT, valid until 2100): a pair made
/// elsewhere, pasted in.
fn conformance_pair() -> Value {
    let suite: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("wasm-tests/conformance/auth-check.json"))
            .unwrap(),
    )
    .unwrap();
    let policy: toml::Table = toml::from_str(suite["vars"]["POLICY"].as_str().unwrap()).unwrap();
    let provider = policy["auth"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["issuer"].as_str() == Some("https://idp.conformance.test"))
        .unwrap();
    let keys: Vec<Value> = provider["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.get("jwk"))
        .map(|jwk| serde_json::to_value(jwk).unwrap())
        .collect();
    let case = suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ES256 token passes, claims forwarded")
        .unwrap();
    let token = case["request"]["headers"]["authorization"]
        .as_str()
        .unwrap()
        .trim_start_matches("Bearer ");
    json!({
        "jwks": json!({ "keys": keys }).to_string(),
        "token": token,
        "audience": "https://api.conformance.test",
        "issuer": "https://idp.conformance.test",
    })
}

fn parse_f64(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn the_demo_runs_every_capability_in_the_page_and_sends_nothing() {
    let root = workspace_root();
    let package = artifacts_dir().join("npm/edge-functions");
    assert!(
        package.join("anonymize.js").exists(),
        "{} is missing: run `cargo xtask npm`",
        package.display()
    );
    let demo = root.join("packages/demo");
    let out_dir = root.join("target/test-artefacts");
    std::fs::create_dir_all(&out_dir).unwrap();
    let shots = [
        "page",
        "anonymize",
        "spatial-radius",
        "spatial-bbox",
        "spatial-nearest",
        "spatial-polygon",
        "jwt-valid",
        "jwt-tampered",
        "sketch",
        "final",
    ];
    for shot in shots {
        let _ = std::fs::remove_file(out_dir.join(format!("demo-{shot}.png")));
    }

    let latencies_ms: Vec<f64> = (1..=200)
        .map(|i| {
            // Log-logistic around 20 ms (its quantile function at even
            // steps), every 25th request 400 ms slower.
            let p = (f64::from(i) - 0.5) / 200.0;
            20.0 * (p / (1.0 - p)).powf(0.35) + if i % 25 == 0 { 400.0 } else { 0.0 }
        })
        .collect();
    let queries = json!({
        "radius": {"type": "radius", "lon": 20, "lat": -25, "radius": 2000},
        "bbox": {"type": "bbox", "bbox": "-20,-10,10,10"},
        "nearest": {"type": "nearest", "lon": 93, "lat": -20, "k": 12, "within": 3000},
    });
    let input = json!({
        "text": TEXT,
        "queries": queries,
        "polygonClicks": [[0.3, 0.3], [0.45, 0.25], [0.5, 0.55], [0.32, 0.6]],
        "latenciesMs": latencies_ms,
        "pasted": conformance_pair(),
    });
    let input_path = std::env::temp_dir().join(format!("demo-input-{}.json", std::process::id()));
    std::fs::write(&input_path, input.to_string()).unwrap();

    let output = Command::new("node")
        .current_dir(&root)
        .env("PATH", wasm_tests::path_with_node_bin().unwrap())
        .arg(root.join("wasm-tests/chromium/demo.mjs"))
        .arg("--demo")
        .arg(&demo)
        .arg("--package")
        .arg(&package)
        .arg("--browser")
        .arg(artifacts_dir().join("browser"))
        .arg("--out-dir")
        .arg(&out_dir)
        .arg("--input")
        .arg(&input_path)
        .output()
        .expect("running node for the demo");
    let _ = std::fs::remove_file(&input_path);
    assert!(
        output.status.success(),
        "demo.mjs failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let page: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the demo's report: {e}: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });

    assert_eq!(page["ready"], "true", "{}", page["status"]);
    assert_eq!(page["errors"], json!([]), "page errors");
    assert!(
        page["banner"]
            .as_str()
            .unwrap()
            .contains("Runs entirely in this page — nothing is sent."),
        "{}",
        page["banner"]
    );
    let csp = page["csp"].as_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    // As it opened: the default query answered, a sample token verified,
    // simulated latencies drawn.
    assert!(
        parse_f64(&page["initial"]["matched"]) > 0.0,
        "{}",
        page["initial"]
    );
    assert_eq!(page["initial"]["verdict"], "valid");
    assert!(
        page["initial"]["bars"].as_u64().unwrap() > 20,
        "{}",
        page["initial"]
    );

    // Anonymize: the output is the function's, no raw value left, each
    // finding marked in the input.
    let a = &page["anonymize"];
    let shown = a["output"].as_str().unwrap();
    assert_eq!(a["error"], "");
    for raw in [
        "ann.smith@example.com",
        "+49 30 1234567",
        "DE89 3704 0044 0532 0130 00",
    ] {
        assert!(!shown.contains(raw), "{raw} left in {shown}");
    }
    assert_eq!(
        shown,
        native_anonymized(TEXT, page["salt"].as_str().unwrap()),
        "the page's output is the native function's, same salt"
    );
    let marks: Vec<(&str, &str)> = a["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["entity"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        marks,
        [
            ("email", "ann.smith@example.com"),
            ("phone", "+49 30 1234567"),
            ("iban", "DE89 3704 0044 0532 0130 00")
        ]
    );
    let colours: Vec<&str> = a["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["color"].as_str().unwrap())
        .collect();
    assert!(
        colours[0] != colours[1] && colours[1] != colours[2],
        "each kind highlighted in its colour: {colours:?}"
    );

    // Spatial: every asset drawn, each query's count the engine's, its hits drawn.
    let ndjson = std::fs::read(demo.join("assets.ndjson")).unwrap();
    let (assets, report) =
        spatial_query::ingest::read_all(InputFormat::NdJson, IngestLimits::default(), &ndjson)
            .unwrap();
    assert_eq!(report.rejected, 0);
    let count = assets.len();
    assert_eq!(page["accepted"], count.to_string());
    assert_eq!(page["allPoints"], count, "every asset drawn on the map");
    let dataset = MemoryDataset::new(assets, 4096);
    let s = &page["spatial"];
    let native_query = |name: &str| -> Value {
        let q = &queries[name];
        match name {
            "radius" => json!({"type": "radius", "lon": q["lon"], "lat": q["lat"],
                "radius_m": q["radius"].as_f64().unwrap() * 1000.0, "min_confidence": 0}),
            "bbox" => json!({"type": "bbox", "bbox": q["bbox"], "min_confidence": 0}),
            _ => json!({"type": "nearest", "lon": q["lon"], "lat": q["lat"], "k": q["k"],
                "max_distance_m": q["within"].as_f64().unwrap() * 1000.0, "min_confidence": 0}),
        }
    };
    let mut ring: Vec<Value> = s["polygon"]["ring"].as_array().unwrap().clone();
    assert_eq!(ring.len(), 4, "four clicks, four vertices: {ring:?}");
    ring.push(ring[0].clone());
    let polygon = json!({"type": "polygon", "min_confidence": 0,
        "geometry": {"type": "Polygon", "coordinates": [ring]}});
    for (name, q) in [
        ("radius", native_query("radius")),
        ("bbox", native_query("bbox")),
        ("nearest", native_query("nearest")),
        ("polygon", polygon),
    ] {
        let got = &s[name];
        assert_eq!(got["error"], "", "{name}");
        let want = native_matched(&dataset, &q);
        assert!(want > 0, "{name}: the query finds something: {q}");
        assert_eq!(
            parse_f64(&got["matched"]) as u64,
            want,
            "{name}: the page's count is the engine's: {q}"
        );
        assert_eq!(
            got["hits"].as_u64().unwrap(),
            want.min(1000),
            "{name}: every hit drawn"
        );
        assert_eq!(got["drawn"], got["hits"].as_u64().unwrap().to_string());
        assert!(
            got["shapes"].as_u64().unwrap() >= 1,
            "{name}: the query's shape drawn"
        );
    }
    assert_eq!(s["nearest"]["matched"], "12");

    // JWT: the sample's claims, the tampered and expired tokens refused as
    // the native verifier refuses them, a pasted pair made elsewhere.
    let j = &page["jwt"];
    let claims: Value = serde_json::from_str(j["valid"]["claims"].as_str().unwrap()).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "demo-api");
    for (name, kind) in [("tampered", "bad-signature"), ("expired", "token-expired")] {
        let v = &j[name];
        assert_eq!(v["outcome"], "refused", "{name}");
        assert_eq!(
            v["type"],
            format!("urn:edge-functions:problem:{kind}"),
            "{name}"
        );
        let (kind, detail) = native_refusal(
            v["jwks"].as_str().unwrap(),
            v["token"].as_str().unwrap(),
            v["audience"].as_str().unwrap(),
            v["issuer"].as_str().unwrap(),
        );
        assert_eq!(v["type"], kind, "{name}");
        assert_eq!(v["detail"], detail, "{name}: the exact reason");
        assert!(
            v["text"].as_str().unwrap().contains(&detail),
            "{name}: the reason shown: {}",
            v["text"]
        );
    }
    let pasted = &j["pasted"];
    assert_eq!(pasted["outcome"], "valid", "{}", pasted["text"]);
    let claims: Value = serde_json::from_str(pasted["claims"].as_str().unwrap()).unwrap();
    assert_eq!(claims["iss"], "https://idp.conformance.test");
    assert!(claims["sub"].is_string(), "{claims}");

    // The latency sketch: the page's quantiles are a native sketch's of the
    // same values; the histogram holds every value.
    let k = &page["sketch"];
    let mut native = LatencySketch::new();
    for ms in &latencies_ms {
        native.record(ms / 1000.0);
    }
    assert_eq!(k["stats"]["count"]["value"], latencies_ms.len().to_string());
    for (stat, q) in [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)] {
        let shown = parse_f64(&k["stats"][stat]["value"]);
        let want = native.quantile(q).unwrap();
        assert!(
            (shown - want).abs() <= want * 1e-12,
            "{stat}: page {shown}, native {want}"
        );
    }
    assert_eq!(
        parse_f64(&k["stats"]["min"]["value"]),
        native.min().unwrap()
    );
    assert_eq!(
        parse_f64(&k["stats"]["max"]["value"]),
        native.max().unwrap()
    );
    assert_eq!(k["total"], latencies_ms.len(), "the bars count every value");
    assert_eq!(k["rects"], k["bars"]);
    assert!(k["bars"].as_u64().unwrap() > 50, "{}", k["bars"]);
    assert_eq!(k["quantileLines"], 3);

    // Nothing beyond the page's origin: by Chromium's own request log, and
    // as the page itself counts and shows it.
    let origin = page["origin"].as_str().unwrap();
    let requests: Vec<&str> = page["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let foreign: Vec<&&str> = requests
        .iter()
        .filter(|r| !r.starts_with(&format!("{origin}/")))
        .collect();
    assert!(
        foreign.is_empty(),
        "requests beyond the page's origin: {foreign:?}"
    );
    for wanted in [
        "/demo/assets.ndjson",
        "/edge-functions/wasm/anonymize_bg.wasm",
        "/edge-functions/wasm/spatial-query_bg.wasm",
        "/edge-functions/wasm/auth-check_bg.wasm",
        "/edge-functions/wasm/metrics_bg.wasm",
    ] {
        assert!(
            requests.contains(&format!("{origin}{wanted}").as_str()),
            "{wanted} loaded from the page's origin: {requests:?}"
        );
    }
    assert_eq!(page["network"]["foreign"], "0", "{}", page["network"]);
    assert_eq!(page["network"]["listed"], 0);
    assert!(
        parse_f64(&page["network"]["own"]) >= 10.0,
        "{}",
        page["network"]
    );

    // Another origin imports the modules from the same server, as from a
    // package server: the package's module and its .wasm, a raw browser
    // build and its .wasm, and a request with a preflight.
    let cross = &page["crossOrigin"];
    assert!(cross["error"].is_null(), "cross-origin import: {cross}");
    assert_ne!(cross["origin"].as_str().unwrap(), origin);
    assert_eq!(cross["errors"], json!([]), "{cross}");
    assert_eq!(
        cross["anonymized"],
        native_anonymized(TEXT, page["salt"].as_str().unwrap()),
        "anonymized by the module imported cross-origin"
    );
    assert_eq!(cross["counterHealth"], 200, "{cross}");
    assert_eq!(cross["preflighted"], 200, "{cross}");
    assert_eq!(cross["packageName"], "edge-functions");
    let fetched: Vec<&str> = cross["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for wanted in [
        "/edge-functions/anonymize.js",
        "/edge-functions/wasm/anonymize_bg.wasm",
        "/counter/counter.js",
        "/counter/counter_bg.wasm",
    ] {
        assert!(
            fetched.contains(&format!("{origin}{wanted}").as_str()),
            "{wanted} fetched from {origin} by another origin: {fetched:?}"
        );
    }

    for shot in shots {
        let png = out_dir.join(format!("demo-{shot}.png"));
        let bytes = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 10_000, "{} saved ({bytes} bytes)", png.display());
    }
}
