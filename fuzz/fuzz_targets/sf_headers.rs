//! Header fields: the IETF `RateLimit` / `RateLimit-Policy` structured
//! fields (rate-limit `headers`) for any reports a valid policy can give
//! parse as RFC 9651 lists (the `sfv` parser) with every number read back
//! and the most constrained scope first; `Cache-Control` freshness
//! (auth-check `max_age`, JWKS caching) and the content types anonymize
//! and spatial-query accept never panic and keep their documented rules.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use rate_limit::headers::{ScopeReport, field_values, insert_fields};

const NAME_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

fn u64_of(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
    u64::from_le_bytes(w)
}

/// Reports within what a valid policy allows: names of 1..=64
/// `[A-Za-z0-9_-]`, quota 1..=10^9, window 1 s..=366 d, remaining ≤ quota.
fn reports(data: &[u8]) -> Vec<ScopeReport> {
    data.chunks(20)
        .take(8)
        .enumerate()
        .map(|(i, c)| {
            let name_len = 1 + usize::from(c[0] % 64);
            let name: String = (0..name_len)
                .map(|k| {
                    let b = c.get(1 + k % 3).copied().unwrap_or(0);
                    NAME_CHARS[(usize::from(b) + k * 7 + i) % NAME_CHARS.len()] as char
                })
                .collect();
            let quota = 1 + u64_of(c.get(4..12).unwrap_or(&[])) % 1_000_000_000;
            let window = 1 + u64_of(c.get(12..16).unwrap_or(&[])) % (366 * 86_400);
            let remaining = u64_of(c.get(16..20).unwrap_or(&[])) % (quota + 1);
            let reset = u64_of(c.get(2..6).unwrap_or(&[])) % (window + 1);
            ScopeReport {
                name,
                quota,
                window,
                remaining,
                reset,
            }
        })
        .collect()
}

/// The list with its numbers as `u64` (every one here is >= 0).
fn sf_list(value: &str) -> Vec<(String, Vec<(String, u64)>)> {
    edge_fuzz::sf_list(value)
        .into_iter()
        .map(|(name, params)| {
            let params = params
                .into_iter()
                .map(|(k, v)| (k, u64::try_from(v).expect(">= 0")))
                .collect();
            (name, params)
        })
        .collect()
}

fn check_ratelimit(data: &[u8]) {
    let reports = reports(data);
    let Some((policy, state)) = field_values(&reports) else {
        assert!(reports.is_empty());
        return;
    };
    let mut headers = HeaderMap::new();
    insert_fields(&mut headers, &reports);
    assert_eq!(headers.len(), 2, "valid reports must give both fields");
    let (policy, state) = (sf_list(&policy), sf_list(&state));
    assert_eq!(policy.len(), reports.len());
    let mut previous: Option<(u64, u64)> = None;
    for ((name, p), (name2, s)) in policy.iter().zip(&state) {
        assert_eq!(name, name2);
        let report = reports
            .iter()
            .find(|r| {
                &r.name == name
                    && p == &[("q".to_owned(), r.quota), ("w".to_owned(), r.window)]
                    && s == &[("r".to_owned(), r.remaining), ("t".to_owned(), r.reset)]
            })
            .unwrap_or_else(|| panic!("{name} {p:?} {s:?} is no report's"));
        // Tightest first: fewest remaining, then the longest reset.
        if let Some((r, t)) = previous {
            assert!(r < report.remaining || (r == report.remaining && t >= report.reset));
        }
        previous = Some((report.remaining, report.reset));
    }
}

fn check_cache_control(text: &str) {
    let Some(age) = auth_check::max_age(text) else {
        // A lone well-formed directive with a number is never missed
        // (repeated ones may be taken as stale, RFC 9111 §4.2.1).
        let ages: Vec<Option<u64>> = text
            .split(',')
            .map(|d| d.trim().split_once('=').unwrap_or((d, "")))
            .filter(|(name, _)| {
                matches!(
                    name.trim().to_ascii_lowercase().as_str(),
                    "max-age" | "s-maxage"
                )
            })
            .map(|(_, value)| value.parse::<u64>().ok())
            .collect();
        assert!(!matches!(ages[..], [Some(_)]), "{text:?}: max-age missed");
        return;
    };
    let lower = text.to_ascii_lowercase();
    if lower.contains("no-store") || lower.contains("no-cache") {
        // A directive merely containing the words may not count; only
        // check the zero when one is a whole directive.
        if lower
            .split(',')
            .any(|d| matches!(d.trim(), "no-store" | "no-cache"))
        {
            assert_eq!(age, std::time::Duration::ZERO, "{text:?}");
        }
    }
    assert!(lower.contains("max-age") || lower.contains("s-maxage") || age.is_zero());
}

fn check_content_type(text: &str) {
    let Ok(value) = HeaderValue::from_str(text) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, value);
    let _ = anonymize::BodyKind::of(&headers);
    let _ = spatial_query::ingest::InputFormat::from_content_type(text);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_ratelimit(rest),
        1 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                check_cache_control(text);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                check_content_type(text);
            }
        }
    }
});
