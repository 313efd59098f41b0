//! The oracle: the same generated assets and ≥ 1,000 random radius, box,
//! polygon and nearest queries (some filtered, some across the antimeridian,
//! near the poles, with holes, with assets on polygon boundaries, centred
//! on a pole or the antimeridian spelled differently from the assets there,
//! radius 0, time bounds on asset times and before 1970) answered by
//! PostGIS (`testdata/postgis.py` starts a throwaway cluster on 127.0.0.1)
//! and by this crate's engine over its tiles, paged (1 to 3 a page for
//! small answers); the result sets must be identical (nearest: identical up
//! to distance ties). Queries with a time bound finer than a millisecond
//! must be refused, naming the bound.
//!
//! Needs PostgreSQL 15 + PostGIS 3 and psycopg in target/pyenv, which
//! `cargo xtask test` installs. `SPATIAL_ORACLE_ASSETS` and
//! `SPATIAL_ORACLE_PER_TYPE` change the sizes (defaults 60,000 and 260).
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use edge_core::{Config, EdgeFunction};
use futures::executor::block_on;
use serde_json::{Map, Value, json};
use spatial_query::SpatialQuery;
use spatial_query::dataset::MemoryDataset;
use spatial_query::ingest::{IngestLimits, InputFormat, read_all};
use spatial_query::policy::Section;
use spatial_query::query::{self, Limits};

const HOW_TO_INSTALL: &str =
    "run `cargo xtask test` (it installs PostgreSQL 15, PostGIS 3 and target/pyenv with psycopg)";

fn python() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("EDGE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/pyenv/bin/python"));
    assert!(
        python.is_file(),
        "no Python at {}: {HOW_TO_INSTALL}, or set EDGE_PYTHON",
        python.display()
    );
    python
}

fn script(name: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {HOW_TO_INSTALL}", path.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed ({}): {stderr}\n{HOW_TO_INSTALL}",
        out.status,
    );
    // The script's summary (PostGIS's side of the counts).
    if let Some(last) = stderr
        .lines()
        .rev()
        .find(|l| !l.contains("cluster stopped"))
    {
        eprintln!("{last}");
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The policy with bounds wide enough for any oracle query.
fn policy() -> Section {
    let text = SpatialQuery::DEFAULT_POLICY
        .replace("max_limit = 1000", "max_limit = 10000")
        .replace("max_k = 1000", "max_k = 10000");
    Section::from_config(&Config::new(text)).unwrap()
}

/// Whether an RFC 3339 text has non-zero digits below the millisecond.
fn finer_than_ms(text: &str) -> bool {
    text.split_once('.').is_some_and(|(_, rest)| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.chars().skip(3).any(|c| c != '0')
    })
}

/// The field a query must be refused for (a time bound finer than a
/// millisecond), if any.
fn refused_field(q: &Value) -> Option<&'static str> {
    ["from", "to"]
        .into_iter()
        .find(|f| q.get(*f).and_then(Value::as_str).is_some_and(finer_than_ms))
}

/// Our answer: every page of the query, in order, pages of `limit`.
fn ours(
    dataset: &MemoryDataset,
    q: &Value,
    policy: &Section,
    limit: usize,
) -> Vec<(String, Option<f64>)> {
    // `id` stays: the JSON form takes it as the caller's label.
    let mut fields: Map<String, Value> = q.as_object().unwrap().clone();
    if !fields.contains_key("min_confidence") {
        fields.insert("min_confidence".into(), json!(0.0));
    }
    if fields["type"] == "knn" {
        fields.insert(
            "max_distance_m".into(),
            json!(spatial_query::geodesy::MAX_DISTANCE_M),
        );
    } else {
        fields.insert("limit".into(), json!(limit));
    }
    let mut out = Vec::new();
    loop {
        let query = spatial_query::request::parse_query(&fields, None, None, policy)
            .unwrap_or_else(|p| panic!("{q}: {:?}", p.detail()));
        let limits = Limits {
            max_tiles: usize::MAX,
        };
        let page = block_on(query::run(&dataset.manifest, dataset, &query, limits)).unwrap();
        out.extend(
            page.hits
                .iter()
                .map(|h| (h.asset.id.hyphenated().to_string(), h.distance_m)),
        );
        match page.next {
            Some(c) => {
                fields.insert("cursor".into(), json!(c.encode()));
            }
            None => return out,
        }
    }
}

/// Distances closer than this (metres) are ties.
const TIE_M: f64 = 1e-6;

fn compare_nearest(ours: &[(String, Option<f64>)], theirs: &[Value]) -> Result<(), String> {
    if ours.len() != theirs.len() {
        return Err(format!(
            "{} neighbours, PostGIS {}",
            ours.len(),
            theirs.len()
        ));
    }
    let theirs: Vec<(String, f64)> = theirs
        .iter()
        .map(|n| (n[0].as_str().unwrap().to_owned(), n[1].as_f64().unwrap()))
        .collect();
    for (i, ((_, d), (_, e))) in ours.iter().zip(&theirs).enumerate() {
        let d = d.unwrap();
        if (d - e).abs() > TIE_M.max(e * 1e-12) {
            return Err(format!("neighbour {i}: {d} m, PostGIS {e} m"));
        }
    }
    // Ids must agree except among those tied with the farthest.
    let Some(last) = theirs.last().map(|t| t.1) else {
        return Ok(());
    };
    let inner = |v: Vec<(&String, f64)>| -> BTreeSet<String> {
        v.into_iter()
            .filter(|(_, d)| *d < last - TIE_M)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let a = inner(ours.iter().map(|(id, d)| (id, d.unwrap())).collect());
    let b = inner(theirs.iter().map(|(id, d)| (id, *d)).collect());
    if a != b {
        return Err(format!(
            "ids differ: {:?}",
            a.symmetric_difference(&b).take(5).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

#[test]
fn same_answers_as_postgis() {
    let assets_n = env_or("SPATIAL_ORACLE_ASSETS", 60_000);
    let per_type = env_or("SPATIAL_ORACLE_PER_TYPE", 260);
    let dir = std::env::temp_dir().join(format!("spatial-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let assets = dir.join("assets.ndjson");
    let queries = dir.join("queries.jsonl");
    let results = dir.join("results.jsonl");
    let p = |p: &PathBuf| p.to_str().unwrap().to_owned();
    script(
        "assets.py",
        &[
            "--seed",
            "7",
            "--count",
            &assets_n.to_string(),
            "--out",
            &p(&assets),
        ],
    );
    script(
        "queries.py",
        &[
            "--seed",
            "11",
            "--assets",
            &p(&assets),
            "--per-type",
            &per_type.to_string(),
            "--out",
            &p(&queries),
            "--edge-cases",
        ],
    );
    script(
        "postgis.py",
        &[
            "oracle",
            "--assets",
            &p(&assets),
            "--queries",
            &p(&queries),
            "--out",
            &p(&results),
        ],
    );

    let (loaded, report) = read_all(
        InputFormat::NdJson,
        IngestLimits::default(),
        &std::fs::read(&assets).unwrap(),
    )
    .unwrap();
    assert_eq!((report.accepted as usize, report.rejected), (assets_n, 0));
    // Small tiles, so queries cross many of them.
    let dataset = MemoryDataset::new(loaded, 512);
    assert!(dataset.manifest.entries().len() > 100);
    let policy = policy();

    let theirs: HashMap<String, Value> = lines(&results)
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
        .collect();
    let queries = lines(&queries);
    assert!(queries.len() >= 1000, "{} queries", queries.len());
    let mut failures = Vec::new();
    let mut by_type: HashMap<String, (usize, usize, usize)> = HashMap::new();
    let (mut refused, mut pages_of_few, mut respelled, mut radius_zero, mut before_1970) =
        (0, 0, 0, 0, 0);
    for (n, q) in queries.iter().enumerate() {
        let id = q["id"].as_str().unwrap();
        let kind = q["type"].as_str().unwrap().to_owned();
        let expected = theirs
            .get(id)
            .unwrap_or_else(|| panic!("PostGIS has no answer for {id}"));
        // A bound finer than a millisecond is refused, naming it.
        if let Some(field) = refused_field(q) {
            let fields = q.as_object().unwrap().clone();
            match spatial_query::request::parse_query(&fields, None, None, &policy) {
                Err(p) if p.detail().is_some_and(|d| d.contains("millisecond")) => {
                    let named = p.to_json(None)["field"].clone();
                    if named != json!(field) {
                        failures.push(format!("{id}: refused naming {named}, not {field}"));
                    }
                    refused += 1;
                }
                other => failures.push(format!(
                    "{id}: a bound finer than a millisecond was not refused: {:?}",
                    other.map(|_| ()).map_err(|p| p.detail().map(str::to_owned))
                )),
            }
            continue;
        }
        let lon = q.get("lon").and_then(Value::as_f64);
        let lat = q.get("lat").and_then(Value::as_f64);
        if lat.is_some_and(|y| y.abs() == 90.0) || lon.is_some_and(|x| x.abs() == 180.0) {
            respelled += 1;
        }
        if q.get("radius_m").and_then(Value::as_f64) == Some(0.0) {
            radius_zero += 1;
        }
        if ["from", "to"].iter().any(|f| {
            q.get(*f)
                .and_then(Value::as_str)
                .is_some_and(|t| t < "1970-01-02")
        }) {
            before_1970 += 1;
        }
        // Pages of every size: one asset a page for small answers (where
        // lost assets showed), about eight pages for larger ones.
        let size = expected["ids"].as_array().map_or(0, Vec::len);
        let limit = if size <= 24 {
            pages_of_few += 1;
            1 + n % 3
        } else {
            size.div_ceil(8) + n % 5
        };
        let answer = ours(&dataset, q, &policy, limit);
        let outcome = if kind == "knn" {
            compare_nearest(&answer, expected["neighbors"].as_array().unwrap())
        } else {
            let a: BTreeSet<&str> = answer.iter().map(|(id, _)| id.as_str()).collect();
            let b: BTreeSet<&str> = expected["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            if answer.len() != a.len() {
                Err("an id was returned twice".to_owned())
            } else if a == b {
                Ok(())
            } else {
                Err(format!(
                    "{} ids, PostGIS {}; only ours {:?}, only PostGIS {:?}",
                    a.len(),
                    b.len(),
                    a.difference(&b).take(3).collect::<Vec<_>>(),
                    b.difference(&a).take(3).collect::<Vec<_>>()
                ))
            }
        };
        let entry = by_type.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += answer.len();
        if answer.is_empty() {
            entry.2 += 1;
        }
        if let Err(e) = outcome {
            failures.push(format!("{id}: {e}\n  query {q}"));
        }
    }
    eprintln!(
        "refused (a time bound finer than a millisecond): {refused}; paged 1-3 a page: {pages_of_few}; \
         centred on a pole or the antimeridian: {respelled}; radius 0: {radius_zero}; \
         a time bound before 1970: {before_1970}"
    );
    assert!(refused > 0 && respelled > 0 && radius_zero > 0 && before_1970 > 0);
    for (kind, (n, hits, empty)) in &by_type {
        eprintln!("{kind}: {n} queries, {hits} results, {empty} empty");
        // The comparison means something only if most answers are not empty.
        assert!(
            *empty * 2 < *n,
            "{kind}: {empty} of {n} queries have no results"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries differ from PostGIS:\n{}",
        failures.len(),
        queries.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    std::fs::remove_dir_all(&dir).ok();
}
