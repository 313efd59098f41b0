//! The conformance suite: request/response cases kept as data
//! (`wasm-tests/conformance/*.json`), run against every runtime with the
//! same expectations. A runtime only has to turn a [`CaseRequest`] into an
//! [`Actual`]; the comparison is here, once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// One function's suite.
#[derive(Debug, Clone, Deserialize)]
pub struct Suite {
    /// The function crate's name.
    pub function: String,
    /// The class its browser build exports.
    pub browser_class: String,
    /// Where the Spin build is mounted (its route).
    pub mount: String,
    /// Variables every runtime gets.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Secrets every runtime gets.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// The cases, run in order against one fresh instance.
    pub cases: Vec<Case>,
}

/// One request and what must come back.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// What the case shows.
    pub name: String,
    /// The request.
    pub request: CaseRequest,
    /// The expected answer.
    pub expect: Expect,
}

/// A request, relative to the function's mount.
#[derive(Debug, Clone, Deserialize)]
pub struct CaseRequest {
    /// The method.
    pub method: String,
    /// Path and query, e.g. `/counters/a?by=2`.
    pub path: String,
    /// Headers to send.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A text body.
    #[serde(default)]
    pub body: Option<String>,
    /// A generated body: `text` repeated `times`.
    #[serde(default)]
    pub body_repeat: Option<Repeat>,
}

/// A generated body.
#[derive(Debug, Clone, Deserialize)]
pub struct Repeat {
    /// The unit.
    pub text: String,
    /// How many times.
    pub times: usize,
}

impl CaseRequest {
    /// The body bytes to send.
    pub fn body_bytes(&self) -> Vec<u8> {
        match (&self.body_repeat, &self.body) {
            (Some(r), _) => r.text.repeat(r.times).into_bytes(),
            (None, Some(b)) => b.clone().into_bytes(),
            (None, None) => Vec::new(),
        }
    }
}

/// What the answer must satisfy. Every part is optional.
#[derive(Debug, Clone, Deserialize)]
pub struct Expect {
    /// The status.
    pub status: u16,
    /// Headers that must have exactly these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers that must not have these values.
    #[serde(default)]
    pub headers_not: BTreeMap<String, String>,
    /// Headers that must be present.
    #[serde(default)]
    pub headers_present: Vec<String>,
    /// Headers that must be absent.
    #[serde(default)]
    pub headers_absent: Vec<String>,
    /// Headers whose value must match these regular expressions (whole value).
    #[serde(default)]
    pub headers_match: BTreeMap<String, String>,
    /// A JSON body containing at least these members (recursively).
    #[serde(default)]
    pub json: Option<Value>,
    /// The exact body text.
    #[serde(default)]
    pub body: Option<String>,
    /// Strings the body must not contain.
    #[serde(default)]
    pub body_excludes: Vec<String>,
}

/// An answer from a runtime: header names lower-case, repeated headers
/// joined with `, `.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Actual {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: BTreeMap<String, String>,
    /// The body as text.
    pub body: String,
}

impl Actual {
    /// From a status, headers (repeated ones joined with `, `) and a body.
    pub fn new(status: http::StatusCode, headers: &http::HeaderMap, body: &[u8]) -> Self {
        let mut joined: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            joined
                .entry(name.as_str().to_owned())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        Actual {
            status: status.as_u16(),
            headers: joined,
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    /// From a core response.
    pub fn from_response(response: &http::Response<bytes::Bytes>) -> Self {
        Actual::new(response.status(), response.headers(), response.body())
    }
}

/// Why an answer does not meet the expectation, or `Ok`.
pub fn check(expect: &Expect, actual: &Actual) -> Result<(), String> {
    let mut problems = Vec::new();
    if actual.status != expect.status {
        problems.push(format!("status {} (want {})", actual.status, expect.status));
    }
    for (name, want) in &expect.headers {
        match actual.headers.get(name) {
            Some(got) if got == want => {}
            got => problems.push(format!("header {name}: {got:?} (want {want:?})")),
        }
    }
    for (name, not) in &expect.headers_not {
        if actual.headers.get(name) == Some(not) {
            problems.push(format!("header {name} must not be {not:?}"));
        }
    }
    for name in &expect.headers_present {
        if !actual.headers.contains_key(name) {
            problems.push(format!("header {name} missing"));
        }
    }
    for name in &expect.headers_absent {
        if let Some(got) = actual.headers.get(name) {
            problems.push(format!("header {name} must be absent, is {got:?}"));
        }
    }
    for (name, pattern) in &expect.headers_match {
        let re = match regex::Regex::new(&format!("^(?:{pattern})$")) {
            Ok(re) => re,
            Err(e) => {
                problems.push(format!("header {name}: bad pattern {pattern:?}: {e}"));
                continue;
            }
        };
        match actual.headers.get(name) {
            Some(got) if re.is_match(got) => {}
            got => problems.push(format!("header {name}: {got:?} (want /{pattern}/)")),
        }
    }
    if let Some(want) = &expect.json {
        match serde_json::from_str::<Value>(&actual.body) {
            Ok(got) => {
                if let Err(at) = contains(&got, want, "$") {
                    problems.push(format!("json {at}; body {}", actual.body));
                }
            }
            Err(e) => problems.push(format!("body is not JSON ({e}): {:?}", actual.body)),
        }
    }
    if let Some(want) = &expect.body
        && &actual.body != want
    {
        problems.push(format!("body {:?} (want {want:?})", actual.body));
    }
    for secret in &expect.body_excludes {
        if actual.body.contains(secret.as_str()) {
            problems.push(format!("body contains {secret:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Whether `got` contains every member of `want` (objects recursively,
/// everything else equal).
fn contains(got: &Value, want: &Value, at: &str) -> Result<(), String> {
    match (got, want) {
        (Value::Object(got), Value::Object(want)) => {
            for (k, w) in want {
                let path = format!("{at}.{k}");
                match got.get(k) {
                    Some(g) => contains(g, w, &path)?,
                    None => return Err(format!("{path} missing (want {w})")),
                }
            }
            Ok(())
        }
        _ if got == want => Ok(()),
        _ => Err(format!("{at} is {got} (want {want})")),
    }
}

/// Per-case results of one runtime.
#[derive(Debug)]
pub struct Report {
    /// The runtime's name.
    pub runtime: String,
    /// `(case name, Ok or why not)`.
    pub results: Vec<(String, Result<(), String>)>,
}

impl Report {
    /// Compares a runtime's answers with a suite's expectations.
    pub fn new(runtime: &str, suite: &Suite, answers: &[Actual]) -> Report {
        let results = suite
            .cases
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let result = match answers.get(i) {
                    Some(actual) => check(&case.expect, actual),
                    None => Err("no answer".into()),
                };
                (case.name.clone(), result)
            })
            .collect();
        Report {
            runtime: runtime.to_owned(),
            results,
        }
    }

    /// Cases passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|(_, r)| r.is_ok()).count()
    }

    /// Cases failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// The suites directory.
pub fn suites_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// Loads every suite, in file-name order.
pub fn load_suites() -> Result<Vec<(PathBuf, Suite)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(suites_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)?;
            let suite = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            Ok((path, suite))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(json: Value) -> Expect {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn json_subset_and_headers_are_checked() {
        let actual = Actual {
            status: 200,
            headers: [("content-type".into(), "application/json".into())].into(),
            body: r#"{"a":1,"b":{"c":2,"d":3}}"#.into(),
        };
        let ok = expect(
            serde_json::json!({"status":200,"headers":{"content-type":"application/json"},"json":{"b":{"c":2}}}),
        );
        assert_eq!(check(&ok, &actual), Ok(()));
        let bad =
            expect(serde_json::json!({"status":201,"json":{"b":{"c":3}},"headers_present":["x"]}));
        let err = check(&bad, &actual).unwrap_err();
        assert!(err.contains("status 200 (want 201)"), "{err}");
        assert!(err.contains("$.b.c is 2 (want 3)"), "{err}");
        assert!(err.contains("header x missing"), "{err}");
    }

    #[test]
    fn every_suite_parses() {
        let suites = load_suites().unwrap();
        assert!(!suites.is_empty());
        for (_, suite) in suites {
            assert!(!suite.cases.is_empty());
        }
    }
}
