//! Hostile input on every function, natively and in the Spin build under
//! the wasmtime host: each endpoint the conformance suites use, with the
//! case's own credentials, gets bodies nested 10,000 deep, invalid UTF-8,
//! truncated and oversized bodies, out-of-range numbers (`1e999`, 2^64,
//! `NaN`), query values of those kinds and of 8 KB, headers of those kinds
//! and of 1 MB. Every
//! answer must be a client error with a problem+json body (or the answer
//! the endpoint gives anyway, or a forwarding problem for an origin the
//! test has not started), within a time bound, with no secret in it; the
//! guest's linear memory stays bounded. Slow bodies are the HTTP server's
//! to time out, not the function's: `slow_client.rs` drives the host's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use regex::Regex;
use wasm_tests::conformance::{CaseRequest, Suite, load_suites};
use wasm_tests::host::{App, AppConfig, GuestLogs, KvStore};
use wasm_tests::{native, spin_component};

/// How deep the nested JSON bodies go.
const DEPTH: usize = 10_000;
/// An oversized body: past the 1 MiB buffered limit.
const OVERSIZED: usize = 2 << 20;
/// A 1 MB header value.
const HUGE_HEADER: usize = 1 << 20;
/// The longest answer time allowed, natively and in wasm (generous: the
/// machine is shared with builds).
const TIME_BOUND: Duration = Duration::from_secs(5);
/// The most linear memory a guest may reach on any of these requests.
const MEMORY_BOUND: usize = 128 << 20;
/// Endpoints taken from each suite (the first case of each).
const ENDPOINTS: usize = 10;

/// One hostile request.
struct Hostile {
    what: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hostile {
    fn from_case(what: &str, case: &CaseRequest) -> Hostile {
        Hostile {
            what: format!("{} {} {what}", case.method, short(&case.path)),
            method: case.method.clone(),
            path: case.path.clone(),
            headers: case
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body: case.body_bytes(),
        }
    }

    fn with_body(mut self, content_type: &str, body: Vec<u8>) -> Hostile {
        self.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        self.headers
            .push(("content-type".to_owned(), content_type.to_owned()));
        self.body = body;
        self
    }

    fn request(&self, base: &str) -> http::Request<Bytes> {
        let mut builder = http::Request::builder()
            .method(self.method.as_str())
            .uri(format!("{base}{}", self.path));
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder
            .body(Bytes::from(self.body.clone()))
            .unwrap_or_else(|e| panic!("{}: {e}", self.what))
    }
}

fn short(path: &str) -> String {
    path.chars().take(60).collect()
}

/// The first case of each distinct method and path (query aside).
fn endpoints(suite: &Suite) -> Vec<&CaseRequest> {
    let mut seen = BTreeMap::new();
    for case in &suite.cases {
        let path = case.request.path.split('?').next().unwrap_or_default();
        seen.entry((case.request.method.clone(), path.to_owned()))
            .or_insert(&case.request);
    }
    seen.into_values().take(ENDPOINTS).collect()
}

/// Every hostile variant of one endpoint's case.
fn variants(case: &CaseRequest) -> Vec<Hostile> {
    let mut out = Vec::new();
    let takes_body = !matches!(case.method.as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS");
    if takes_body {
        let arrays = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
        let objects = format!("{}1{}", "{\"a\":".repeat(DEPTH), "}".repeat(DEPTH));
        for (what, content_type, body) in [
            (
                "arrays 10,000 deep",
                "application/json",
                arrays.into_bytes(),
            ),
            (
                "objects 10,000 deep",
                "application/json",
                objects.into_bytes(),
            ),
            (
                "invalid UTF-8 in JSON",
                "application/json",
                b"{\"a\":\"\xff\xfe\xfd\"}".to_vec(),
            ),
            (
                "invalid UTF-8 in NDJSON",
                "application/x-ndjson",
                b"{\"a\":1}\n{\"a\":\"\xc3\x28\"}\n".to_vec(),
            ),
            (
                "invalid UTF-8 in text",
                "text/plain",
                b"mail ann@example.com \xff\xfe".to_vec(),
            ),
            (
                "oversized JSON",
                "application/json",
                format!("{{\"a\":\"{}\"}}", "x".repeat(OVERSIZED)).into_bytes(),
            ),
            ("NaN", "application/json", b"{\"a\":NaN}".to_vec()),
        ] {
            out.push(Hostile::from_case(what, case).with_body(content_type, body));
        }
        let body = String::from_utf8_lossy(&case.body_bytes()).into_owned();
        if body.len() > 1 {
            let content_type = case
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map_or("application/json", |(_, v)| v.as_str())
                .to_owned();
            let half = body.len() / 2;
            let cut = (0..=half)
                .rev()
                .find(|&i| body.is_char_boundary(i))
                .unwrap_or(0);
            out.push(
                Hostile::from_case("truncated body", case)
                    .with_body(&content_type, body.as_bytes()[..cut].to_vec()),
            );
            let number = Regex::new(r"-?\b\d+(\.\d+)?\b").unwrap();
            if number.is_match(&body) {
                for replacement in ["1e999", "-1e999", "18446744073709551616", "-1"] {
                    let mutated = number.replace_all(&body, replacement).into_owned();
                    out.push(
                        Hostile::from_case(&format!("numbers → {replacement}"), case)
                            .with_body(&content_type, mutated.into_bytes()),
                    );
                }
            }
        }
    }
    if let Some((path, query)) = case.path.split_once('?') {
        let values = Regex::new(r"=([^&]*)").unwrap();
        let long = "9".repeat(8_000);
        for replacement in ["NaN", "1e999", "18446744073709551616", "-1", "", &long] {
            let query = values.replace_all(query, format!("={replacement}"));
            let mut hostile =
                Hostile::from_case(&format!("query values → {}", short(replacement)), case);
            hostile.path = format!("{path}?{query}");
            out.push(hostile);
        }
    }
    let huge = "a".repeat(HUGE_HEADER);
    let mut extra = Hostile::from_case("a 1 MB header", case);
    extra.headers.push(("x-hostile".to_owned(), huge.clone()));
    out.push(extra);
    for name in case.headers.keys() {
        for (what, value) in [
            ("1 MB", huge.as_str()),
            ("2^64", "18446744073709551616"),
            ("-1", "-1"),
            ("NaN", "NaN"),
        ] {
            let mut hostile = Hostile::from_case(&format!("header {name} → {what}"), case);
            for header in &mut hostile.headers {
                if header.0 == *name {
                    header.1 = value.to_owned();
                }
            }
            out.push(hostile);
        }
    }
    out
}

/// Why an answer is not acceptable, if it is not.
fn judge(
    suite: &Suite,
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    elapsed: Duration,
) -> Option<String> {
    if elapsed > TIME_BOUND {
        return Some(format!("answered after {elapsed:?}"));
    }
    let text = String::from_utf8_lossy(body);
    if let Some(secret) = secrets_in(suite, &text).first() {
        return Some(format!("{status}: the answer carries {secret}"));
    }
    let problem = headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/problem+json"));
    match status {
        200..=399 => None,
        400..=499 if problem => None,
        // Forwarding to an origin the test has not started.
        502..=504 if problem && text.contains("origin") => None,
        _ => Some(format!(
            "{status} {:?}: {}",
            headers.get(http::header::CONTENT_TYPE),
            text.chars().take(300).collect::<String>()
        )),
    }
}

/// What one runtime made of one suite's hostile requests.
#[derive(Default)]
struct Tally {
    requests: usize,
    statuses: BTreeMap<u16, usize>,
    slowest: Duration,
    failures: Vec<String>,
    /// Log lines checked for secrets.
    log_lines: usize,
}

impl Tally {
    fn add(
        &mut self,
        suite: &Suite,
        what: &str,
        response: &http::Response<Bytes>,
        elapsed: Duration,
    ) {
        self.requests += 1;
        *self.statuses.entry(response.status().as_u16()).or_default() += 1;
        self.slowest = self.slowest.max(elapsed);
        if let Some(why) = judge(
            suite,
            response.status().as_u16(),
            response.headers(),
            response.body(),
            elapsed,
        ) {
            self.failures
                .push(format!("{}: {what}: {why}", suite.function));
        }
    }
}

/// The suite's own cases first (every error path the suite drives), then
/// the hostile requests: what is judged.
fn requests(suite: &Suite, hostile: &[Hostile], base: &str) -> Vec<http::Request<Bytes>> {
    suite
        .cases
        .iter()
        .map(|case| native::to_request(&case.request, base).unwrap())
        .chain(hostile.iter().map(|h| h.request(base)))
        .collect()
}

/// The secret values (of the suite's, those long enough to be told from
/// other text) that appear in `text`.
fn secrets_in<'a>(suite: &'a Suite, text: &str) -> Vec<&'a str> {
    suite
        .secrets
        .iter()
        .filter(|(_, v)| v.len() >= 8 && text.contains(v.as_str()))
        .map(|(k, _)| k.as_str())
        .collect()
}

fn native_tally(suite: &Suite, hostile: &[Hostile]) -> Tally {
    let served =
        futures::executor::block_on(native::serve_requests(suite, requests(suite, hostile, "")))
            .unwrap();
    let mut tally = Tally::default();
    let (own, rest) = served.responses.split_at(suite.cases.len());
    for (case, (response, _)) in suite.cases.iter().zip(own) {
        let body = String::from_utf8_lossy(response.body());
        for secret in secrets_in(suite, &body) {
            tally.failures.push(format!(
                "{}: {}: the answer carries {secret}",
                suite.function, case.name
            ));
        }
    }
    for (h, (response, elapsed)) in hostile.iter().zip(rest) {
        tally.add(suite, &h.what, response, *elapsed);
    }
    for secret in secrets_in(suite, &served.logs.join("\n")) {
        tally
            .failures
            .push(format!("{}: its logs carry {secret}", suite.function));
    }
    tally.log_lines = served.logs.len();
    tally
}

fn wasmtime_tally(suite: &Suite, hostile: &[Hostile]) -> (Tally, usize) {
    let variables = suite
        .vars
        .iter()
        .chain(&suite.secrets)
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let logs = GuestLogs::new(64 << 20);
    let app = App::load(
        &spin_component(&suite.function),
        AppConfig {
            variables,
            kv: KvStore::new(),
            route: suite.mount.clone(),
            guest_stderr: Some(logs.clone()),
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client: SocketAddr = ([127, 0, 0, 1], 40400).into();
    let base = format!("http://127.0.0.1{}", suite.mount);
    let mut tally = Tally::default();
    let all = requests(suite, hostile, &base);
    let whats = suite
        .cases
        .iter()
        .map(|c| (c.name.as_str(), false))
        .chain(hostile.iter().map(|h| (h.what.as_str(), true)));
    for (request, (what, judged)) in all.into_iter().zip(whats) {
        let started = Instant::now();
        let answer = runtime.block_on(async {
            tokio::time::timeout(TIME_BOUND * 2, app.handle(request, client)).await
        });
        match answer {
            Ok(Ok(response)) if !judged => {
                let body = String::from_utf8_lossy(response.body());
                for secret in secrets_in(suite, &body) {
                    tally.failures.push(format!(
                        "{}: {what}: the answer carries {secret}",
                        suite.function
                    ));
                }
            }
            Ok(Ok(response)) => tally.add(suite, what, &response, started.elapsed()),
            Ok(Err(e)) => {
                tally.requests += 1;
                tally.failures.push(format!(
                    "{}: {what}: the guest failed: {e:#}",
                    suite.function
                ));
            }
            Err(_) => {
                tally.requests += 1;
                tally.failures.push(format!(
                    "{}: {what}: no answer within {:?}",
                    suite.function,
                    TIME_BOUND * 2
                ));
            }
        }
    }
    let logs = String::from_utf8_lossy(&logs.contents()).into_owned();
    for secret in secrets_in(suite, &logs) {
        tally
            .failures
            .push(format!("{}: its guest logs carry {secret}", suite.function));
    }
    tally.log_lines = logs.lines().count();
    (tally, app.peak_memory())
}

#[test]
fn hostile_input_gets_a_bounded_client_error_on_every_function() {
    let suites = load_suites().unwrap();
    let mut failures = Vec::new();
    let mut table = vec![
        "| function | hostile requests | statuses (wasm) | slowest native | slowest wasm | peak guest memory | log lines checked (native + wasm) |"
            .to_owned(),
        "|---|---:|---|---:|---:|---:|---:|".to_owned(),
    ];
    for (_, suite) in &suites {
        let hostile: Vec<Hostile> = endpoints(suite).into_iter().flat_map(variants).collect();
        let native = native_tally(suite, &hostile);
        let (wasm, peak) = wasmtime_tally(suite, &hostile);
        if peak > MEMORY_BOUND {
            failures.push(format!(
                "{}: the guest reached {peak} bytes of linear memory",
                suite.function
            ));
        }
        table.push(format!(
            "| {} | {} | {:?} | {:.0} ms | {:.0} ms | {:.1} MiB | {} + {} |",
            suite.function,
            native.requests,
            wasm.statuses,
            native.slowest.as_secs_f64() * 1e3,
            wasm.slowest.as_secs_f64() * 1e3,
            peak as f64 / f64::from(1u32 << 20),
            native.log_lines,
            wasm.log_lines,
        ));
        failures.extend(native.failures.into_iter().map(|f| format!("native {f}")));
        failures.extend(wasm.failures.into_iter().map(|f| format!("wasmtime {f}")));
    }
    eprintln!("{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "{} hostile requests were answered badly:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
