//! Helpers shared by the fuzz targets: the conformance suites' policies and
//! secrets (the same documents every runtime is tested with), a function
//! instantiated from them, and fuzzer-chosen chunk boundaries.

use std::sync::OnceLock;

use edge_core::function::{Instance, instantiate};
use edge_core::{Config, EdgeFunction, Response};
use serde_json::Value;

/// 2026-11-22T00:00:00Z, a minute boundary: the clock of every platform here.
pub const T0: u64 = 1_795_305_600_000;

const SUITES: [(&str, &str); 6] = [
    (
        "rate-limit",
        include_str!("../../wasm-tests/conformance/rate-limit.json"),
    ),
    (
        "auth-check",
        include_str!("../../wasm-tests/conformance/auth-check.json"),
    ),
    (
        "anonymize",
        include_str!("../../wasm-tests/conformance/anonymize.json"),
    ),
    (
        "spatial-query",
        include_str!("../../wasm-tests/conformance/spatial-query.json"),
    ),
    (
        "metrics",
        include_str!("../../wasm-tests/conformance/metrics.json"),
    ),
    (
        "gateway",
        include_str!("../../wasm-tests/conformance/gateway.json"),
    ),
];

/// A conformance suite: `wasm-tests/conformance/NAME.json`, parsed.
pub fn suite(name: &str) -> &'static Value {
    static PARSED: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        SUITES
            .iter()
            .map(|(n, text)| (*n, serde_json::from_str(text).expect("conformance JSON")))
            .collect()
    });
    &parsed
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no conformance suite {name}"))
        .1
}

/// The policy document a suite runs its function with (`None`: the
/// function's built-in one).
pub fn suite_policy(name: &str) -> Option<&'static str> {
    suite(name)["vars"]["POLICY"].as_str()
}

/// A configuration: `policy` (or the built-in one) with every secret the
/// conformance suites set, so that any secret a policy names is there.
pub fn config<F: EdgeFunction>(policy: Option<&str>) -> Config {
    let mut config = Config::new(F::DEFAULT_POLICY);
    if let Some(policy) = policy {
        config = config.with_var("POLICY", policy);
    }
    for (name, value) in secrets() {
        config = config.with_secret(name.clone(), value.clone());
    }
    config
}

/// Every secret of every suite (name, value).
pub fn secrets() -> &'static [(String, String)] {
    static ALL: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<(String, String)> = Vec::new();
        for (name, _) in SUITES {
            if let Some(map) = suite(name)["secrets"].as_object() {
                for (k, v) in map {
                    if let Some(v) = v.as_str()
                        && !all.iter().any(|(n, _)| n == k)
                    {
                        all.push((k.clone(), v.to_owned()));
                    }
                }
            }
        }
        all
    })
}

/// The function a suite runs, configured as the suite configures it.
pub fn suite_instance<F: EdgeFunction>(name: &str) -> Instance<F> {
    instantiate::<F>(&config::<F>(suite_policy(name)))
}

/// Splits fuzzer input into chunk lengths and a body: the first byte says
/// how many cut points follow (at most 15), each one byte, a chunk length.
/// The rest is the body; whatever is left after the cuts is one last chunk.
pub fn chunked(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, body) = rest.split_at(n);
    (cuts.iter().map(|&c| usize::from(c)).collect(), body)
}

/// `body` cut into pieces of the given lengths (an empty piece included),
/// then the remainder.
pub fn pieces<'a>(body: &'a [u8], lengths: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    for &len in lengths {
        let (piece, tail) = rest.split_at(len.min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out.push(rest);
    out
}

/// Whether a response is a client error answered as RFC 9457 problem+json
/// or a success: never a 5xx for input.
pub fn assert_not_server_error(response: &Response, what: &str) {
    let status = response.status();
    assert!(
        !status.is_server_error(),
        "{what}: {status} {}",
        String::from_utf8_lossy(response.body())
    );
    if status.is_client_error() {
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            content_type.starts_with("application/problem+json"),
            "{what}: {status} with content type {content_type:?}"
        );
    }
}

/// A structured-field list (RFC 9651, read by the `sfv` crate) of string
/// items with integer parameters, as the `RateLimit` fields are: each
/// item's string and its parameters. Panics on anything else.
pub fn sf_list(value: &str) -> Vec<(String, Vec<(String, i64)>)> {
    let list = sfv::Parser::new(value)
        .parse::<sfv::List>()
        .unwrap_or_else(|e| panic!("{value:?} is not a structured-field list: {e}"));
    list.into_iter()
        .map(|entry| {
            let sfv::ListEntry::Item(item) = entry else {
                panic!("{value:?}: an inner list")
            };
            let name = item
                .bare_item
                .as_string()
                .unwrap_or_else(|| panic!("{value:?}: not a string item"))
                .as_str()
                .to_owned();
            let params = item
                .params
                .iter()
                .map(|(k, v)| {
                    let n = v
                        .as_integer()
                        .unwrap_or_else(|| panic!("{value:?}: parameter {k:?} is {v:?}"));
                    (k.as_str().to_owned(), i64::from(n))
                })
                .collect();
            (name, params)
        })
        .collect()
}
