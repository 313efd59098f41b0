//! Rate-limit identity and cost headers (`X-Forwarded-For`, the trusted
//! subject and API-key-id headers, a key header, the cost header), through
//! the whole function on the in-memory platform. Input: lines of method,
//! path, then the five header values. Any request gets a decision or a 4xx
//! problem (never a 5xx with the store up); a refused cost is one that is
//! not an integer in 1..=10^9; admitted requests carry `RateLimit` and
//! `RateLimit-Policy` fields that parse as structured-field lists whose
//! numbers agree with the decision; the identity read from
//! `X-Forwarded-For` is its right-most entry.
#![no_main]

use std::sync::OnceLock;

use edge_core::function::{Instance, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::{ClientAddr, Request, Timestamp};
use edge_fuzz::{T0, assert_not_server_error, config, sf_list};
use libfuzzer_sys::fuzz_target;
use rate_limit::RateLimit;
use rate_limit::identity::Identity;
use rate_limit::policy::RateLimitPolicy;

const POLICY: &str = r#"
[rate_limit]
hash_key_secret = "RATE_LIMIT_HASH_KEY"
admin_token_secret = "RATE_LIMIT_ADMIN_TOKEN"
client_ip_header = "x-forwarded-for"
cost_header = "x-cost"
deny = ["sub:mallory"]

[[rate_limit.scopes]]
name = "IP"
algorithm = "token_bucket"
limit = 5
period = "1m"
key = ["ip"]

[[rate_limit.scopes]]
name = "SUB"
algorithm = "fixed_window"
limit = 3
period = "1h"
key = ["sub"]
fallback_key = ["api_key_id"]

[[rate_limit.scopes]]
name = "HDR"
algorithm = "gcra"
limit = 2
period = "1h"
key = ["header:x-client", "route"]

[[rate_limit.scopes]]
name = "SW"
algorithm = "sliding_window"
limit = 4
period = "15m"
key = ["ip", "sub"]
fallback_key = ["global"]
"#;

const HEADERS: [&str; 5] = [
    "x-forwarded-for",
    "x-cost",
    "x-auth-sub",
    "x-auth-api-key-id",
    "x-client",
];

thread_local! {
    // Functions hold `RefCell`s (not `Sync`); libFuzzer runs on one thread.
    static INSTANCE: &'static Instance<RateLimit> = {
        let i = instantiate::<RateLimit>(&config::<RateLimit>(Some(POLICY)));
        assert!(i.is_ok(), "the fuzz policy: {:?}", i.as_ref().err());
        Box::leak(Box::new(i))
    };
}

fn instance() -> &'static Instance<RateLimit> {
    INSTANCE.with(|i| *i)
}

fn section() -> &'static rate_limit::policy::Section {
    static S: OnceLock<RateLimitPolicy> = OnceLock::new();
    &S.get_or_init(|| edge_core::policy::parse_policy(POLICY).expect("the fuzz policy"))
        .rate_limit
}

fn request(lines: &[&[u8]]) -> Option<Request> {
    let method = std::str::from_utf8(lines.first()?).ok()?;
    let path = std::str::from_utf8(lines.get(1)?).ok()?;
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in HEADERS.iter().zip(lines.iter().skip(2)) {
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            builder = builder.header(*name, value);
        }
    }
    let mut req = builder.body(bytes::Bytes::new()).ok()?;
    req.extensions_mut()
        .insert(ClientAddr("192.0.2.1".parse().expect("an address")));
    Some(req)
}

fn cost_ok(value: &http::HeaderValue) -> bool {
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| (1..=1_000_000_000).contains(&n))
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let Some(req) = request(&lines) else { return };

    // The identity, read directly.
    let (head, _) = req.clone().into_parts();
    if let Ok(identity) = Identity::of(&head, section())
        && let Some(xff) = head.headers.get("x-forwarded-for")
        && let Ok(text) = xff.to_str()
        && !text.trim().is_empty()
    {
        let last = text.trim().rsplit(',').next().unwrap_or("").trim();
        let ip: std::net::IpAddr = last.parse().expect("identity from a non-address");
        assert_eq!(
            identity.ip,
            Some(rate_limit::identity::mask(ip, section().ipv6_prefix))
        );
    }

    let platform = TestPlatform::at(Timestamp::from_millis(T0));
    for _ in 0..2 {
        let response = futures::executor::block_on(platform.serve(instance(), req.clone()));
        assert_not_server_error(&response, "rate limit");
        let status = response.status();
        if status == 400
            && String::from_utf8_lossy(response.body()).contains("\"header\":\"x-cost\"")
        {
            let cost = req.headers().get("x-cost").expect("the refused header");
            assert!(!cost_ok(cost), "a valid cost {cost:?} refused");
        }
        let fields = (
            response.headers().get("ratelimit-policy"),
            response.headers().get("ratelimit"),
        );
        if let (Some(policy), Some(state)) = fields {
            let policy = sf_list(policy.to_str().expect("ASCII"));
            let state = sf_list(state.to_str().expect("ASCII"));
            assert_eq!(policy.len(), state.len());
            for ((name, p), (name2, s)) in policy.iter().zip(&state) {
                assert_eq!(name, name2, "the two fields list scopes in one order");
                let get = |params: &[(String, i64)], k: &str| {
                    params.iter().find(|(n, _)| n == k).map(|(_, v)| *v)
                };
                let (q, r) = (get(p, "q").expect("q"), get(s, "r").expect("r"));
                assert!(get(p, "w").expect("w") > 0 && get(s, "t").expect("t") >= 0);
                assert!(0 <= r && r <= q, "remaining {r} of quota {q}");
            }
        } else if status == 200 || status == 429 {
            // A decision on a matching scope always carries both fields.
            assert!(
                fields.0.is_none() && fields.1.is_none(),
                "one field without the other"
            );
        }
    }
});
