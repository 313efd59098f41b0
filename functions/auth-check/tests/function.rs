//! The whole function on in-memory services: JWKS fetching, caching across
//! instances, refetch on an unknown `kid` with its cooldown, stale keys
//! while the provider is down, discovery, forwarding with spoofed headers
//! stripped, and configuration errors. Tokens are EdDSA, signed here.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use auth_check::AuthCheck;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use edge_core::function::{Instance, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::{Config, ConfigError, Request, Response, Timestamp};
use futures::executor::block_on;
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.test";
const JWKS: &str = "https://idp.test/jwks";
const T0: u64 = 1_800_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn jwk(seed: u8, kid: &str) -> Value {
    json!({
        "kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "alg": "EdDSA",
        "x": URL_SAFE_NO_PAD.encode(key(seed).verifying_key().as_bytes()),
    })
}

fn token(seed: u8, kid: &str, claims: Value) -> String {
    let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key(seed).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn claims(sub: &str) -> Value {
    json!({ "iss": ISSUER, "sub": sub, "aud": "api", "iat": T0, "exp": T0 + 900,
            "scope": "read", "roles": ["reader"] })
}

fn policy(provider: &str, extra: &str) -> String {
    let algorithms = if provider.contains("algorithms") {
        ""
    } else {
        "algorithms = [\"EdDSA\"]"
    };
    format!(
        r#"
[auth]
{extra}
[[auth.rules]]
route = "GET /public/**"
access = "public"

[[auth.providers]]
issuer = "{ISSUER}"
audiences = ["api"]
{algorithms}
jwks_refetch_cooldown = "30s"
{provider}
"#
    )
}

fn build(policy: &str) -> Instance<AuthCheck> {
    instantiate::<AuthCheck>(&Config::new("").with_var("POLICY", policy))
}

fn jwks_response(keys: &[Value], cache_control: Option<&str>) -> Response {
    let mut response = Response::new(Bytes::from(json!({ "keys": keys }).to_string()));
    if let Some(cc) = cache_control {
        response
            .headers_mut()
            .insert("cache-control", cc.parse().unwrap());
    }
    response
}

fn get(path: &str, token: Option<&str>) -> Request {
    let mut builder = http::Request::get(path);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Bytes::new()).unwrap()
}

fn at(s: u64) -> Timestamp {
    Timestamp(Duration::from_secs(s))
}

#[test]
fn jwks_is_fetched_once_and_shared_through_the_cache_until_max_age() {
    block_on(async {
        let platform = TestPlatform::at(at(T0 + 10));
        platform
            .http
            .route(JWKS, jwks_response(&[jwk(1, "k1")], Some("max-age=300")));
        let policy = policy(&format!("jwks_url = \"{JWKS}\""), "");
        let (a, b) = (build(&policy), build(&policy));
        let t = token(1, "k1", claims("alice"));
        let answer = platform.serve(&a, get("/api", Some(&t))).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["x-auth-sub"], "alice");
        assert_eq!(platform.http.calls(JWKS), 1);
        // Another isolate finds the keys in the shared cache.
        assert_eq!(
            platform.serve(&b, get("/api", Some(&t))).await.status(),
            200
        );
        assert_eq!(platform.http.calls(JWKS), 1);
        // After max-age (300 s) the keys are fetched again, once.
        platform.clock.advance(Duration::from_secs(301));
        assert_eq!(
            platform.serve(&a, get("/api", Some(&t))).await.status(),
            200
        );
        assert_eq!(
            platform.serve(&b, get("/api", Some(&t))).await.status(),
            200
        );
        assert_eq!(platform.http.calls(JWKS), 2);
    });
}

#[test]
fn unknown_kid_refetches_once_then_the_cooldown_holds() {
    block_on(async {
        let platform = TestPlatform::at(at(T0 + 10));
        platform
            .http
            .route(JWKS, jwks_response(&[jwk(1, "k1")], Some("max-age=3600")));
        let f = build(&policy(&format!("jwks_url = \"{JWKS}\""), ""));
        let old = token(1, "k1", claims("alice"));
        assert_eq!(
            platform.serve(&f, get("/api", Some(&old))).await.status(),
            200
        );
        // The provider rotates: k2 signs, the JWKS has both.
        platform.clock.advance(Duration::from_secs(60));
        platform.http.route(
            JWKS,
            jwks_response(&[jwk(1, "k1"), jwk(2, "k2")], Some("max-age=3600")),
        );
        let new = token(2, "k2", claims("bob"));
        let answer = platform.serve(&f, get("/api", Some(&new))).await;
        assert_eq!(answer.status(), 200, "{:?}", answer.body());
        assert_eq!(platform.http.calls(JWKS), 2);
        // A flood of made-up kids inside the cooldown: no fetch, 401.
        for i in 0..50 {
            let bogus = token(3, &format!("bogus{i}"), claims("mallory"));
            let answer = platform.serve(&f, get("/api", Some(&bogus))).await;
            assert_eq!(answer.status(), 401);
        }
        assert_eq!(platform.http.calls(JWKS), 2);
        // Known keys still pass during the cooldown.
        assert_eq!(
            platform.serve(&f, get("/api", Some(&old))).await.status(),
            200
        );
        // After the cooldown, one more fetch for an unknown kid.
        platform.clock.advance(Duration::from_secs(31));
        let bogus = token(3, "bogus-late", claims("mallory"));
        assert_eq!(
            platform.serve(&f, get("/api", Some(&bogus))).await.status(),
            401
        );
        assert_eq!(
            platform.serve(&f, get("/api", Some(&bogus))).await.status(),
            401
        );
        assert_eq!(platform.http.calls(JWKS), 3);
    });
}

#[test]
fn cooldown_holds_across_instances_through_the_cache() {
    block_on(async {
        let platform = TestPlatform::at(at(T0 + 10));
        platform
            .http
            .route(JWKS, jwks_response(&[jwk(1, "k1")], Some("max-age=3600")));
        let policy = policy(&format!("jwks_url = \"{JWKS}\""), "");
        let first = build(&policy);
        let bogus = token(3, "bogus", claims("mallory"));
        assert_eq!(
            platform
                .serve(&first, get("/api", Some(&bogus)))
                .await
                .status(),
            401
        );
        assert_eq!(platform.http.calls(JWKS), 1);
        // Fresh instances (Spin makes one per request) see the cooldown too.
        for _ in 0..10 {
            let fresh = build(&policy);
            assert_eq!(
                platform
                    .serve(&fresh, get("/api", Some(&bogus)))
                    .await
                    .status(),
                401
            );
        }
        assert_eq!(platform.http.calls(JWKS), 1);
    });
}

#[test]
fn stale_keys_serve_while_the_provider_is_down_and_no_keys_is_503() {
    block_on(async {
        let platform = TestPlatform::at(at(T0 + 10));
        platform
            .http
            .route(JWKS, jwks_response(&[jwk(1, "k1")], Some("max-age=60")));
        let policy = policy(&format!("jwks_url = \"{JWKS}\""), "");
        let f = build(&policy);
        let t = token(1, "k1", claims("alice"));
        assert_eq!(
            platform.serve(&f, get("/api", Some(&t))).await.status(),
            200
        );
        let mut down = Response::new(Bytes::from("oops"));
        *down.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        platform.http.route(JWKS, down.clone());
        platform.clock.advance(Duration::from_secs(120));
        assert_eq!(
            platform.serve(&f, get("/api", Some(&t))).await.status(),
            200
        );
        assert_eq!(platform.http.calls(JWKS), 2);

        let empty = TestPlatform::at(at(T0 + 10));
        empty.http.route(JWKS, down);
        let answer = empty.serve(&build(&policy), get("/api", Some(&t))).await;
        assert_eq!(answer.status(), 503);
        assert!(answer.headers().contains_key("retry-after"));
        let body: Value = serde_json::from_slice(answer.body()).unwrap();
        assert_eq!(body["type"], "urn:edge-functions:problem:keys-unavailable");
    });
}

#[test]
fn discovery_finds_the_jwks_and_checks_the_issuer() {
    block_on(async {
        let platform = TestPlatform::at(at(T0 + 10));
        let discovery = format!("{ISSUER}/.well-known/openid-configuration");
        let doc = json!({ "issuer": ISSUER, "jwks_uri": "https://keys.idp.test/certs" });
        platform
            .http
            .route(&discovery, Response::new(Bytes::from(doc.to_string())));
        platform.http.route(
            "https://keys.idp.test/certs",
            jwks_response(&[jwk(1, "k1")], None),
        );
        let f = build(&policy("discovery = true", ""));
        let t = token(1, "k1", claims("alice"));
        assert_eq!(
            platform.serve(&f, get("/api", Some(&t))).await.status(),
            200
        );
        assert_eq!(platform.http.calls(&discovery), 1);

        let liar = TestPlatform::at(at(T0 + 10));
        let doc =
            json!({ "issuer": "https://evil.test", "jwks_uri": "https://keys.idp.test/certs" });
        liar.http
            .route(&discovery, Response::new(Bytes::from(doc.to_string())));
        liar.http.route(
            "https://keys.idp.test/certs",
            jwks_response(&[jwk(1, "k1")], None),
        );
        let fresh = build(&policy("discovery = true", ""));
        let answer = liar.serve(&fresh, get("/api", Some(&t))).await;
        assert_eq!(answer.status(), 503);
        assert_eq!(liar.http.calls("https://keys.idp.test/certs"), 0);
    });
}

#[test]
fn the_origin_sees_verified_claims_never_spoofed_ones_nor_the_token() {
    block_on(async {
        let platform = TestPlatform::at(at(T0 + 10));
        platform
            .http
            .route(JWKS, jwks_response(&[jwk(1, "k1")], None));
        platform.http.route(
            "https://origin.test/api/items",
            Response::new(Bytes::from("ok")),
        );
        platform.http.route(
            "https://origin.test/public/page",
            Response::new(Bytes::from("ok")),
        );
        let f = build(&policy(
            &format!("jwks_url = \"{JWKS}\""),
            "origin = \"https://origin.test\"",
        ));
        let t = token(1, "k1", claims("alice"));
        let mut req = get("/api/items?x=1", Some(&t));
        for (name, value) in [
            ("x-auth-sub", "mallory"),
            ("x-auth-roles", "admin"),
            ("x-auth-issuer", "https://evil.test"),
            ("x-api-key-id", "root"),
        ] {
            req.headers_mut().append(name, value.parse().unwrap());
        }
        assert_eq!(platform.serve(&f, req).await.status(), 200);
        let seen = platform
            .http
            .last_request("https://origin.test/api/items")
            .unwrap();
        assert_eq!(seen.uri().query(), Some("x=1"));
        assert_eq!(seen.headers()["x-auth-sub"], "alice");
        assert_eq!(seen.headers().get_all("x-auth-roles").iter().count(), 1);
        assert_eq!(seen.headers()["x-auth-roles"], "reader");
        assert_eq!(seen.headers()["x-auth-issuer"], ISSUER);
        assert!(seen.headers().get("x-api-key-id").is_none());
        assert!(seen.headers().get("authorization").is_none());

        let mut public = get("/public/page", None);
        public
            .headers_mut()
            .insert("x-auth-sub", "mallory".parse().unwrap());
        assert_eq!(platform.serve(&f, public).await.status(), 200);
        let seen = platform
            .http
            .last_request("https://origin.test/public/page")
            .unwrap();
        assert!(seen.headers().get("x-auth-sub").is_none());
    });
}

#[test]
fn tokens_never_reach_logs_or_bodies() {
    block_on(async {
        let platform = TestPlatform::at(at(T0 + 10));
        platform
            .http
            .route(JWKS, jwks_response(&[jwk(1, "k1")], None));
        let f = build(&policy(&format!("jwks_url = \"{JWKS}\""), ""));
        let mut expired = claims("alice");
        expired["exp"] = json!(T0 - 3600);
        let t = token(1, "k1", expired);
        let answer = platform.serve(&f, get("/api", Some(&t))).await;
        assert_eq!(answer.status(), 401);
        let challenge = answer.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        let signature = t.rsplit('.').next().unwrap();
        let body = String::from_utf8_lossy(answer.body()).to_string();
        assert!(!body.contains(signature) && !challenge.contains(signature));
        for line in platform.logs.lines() {
            assert!(!line.contains(signature), "{line}");
        }
    });
}

#[test]
fn configuration_errors_name_the_field() {
    let bad = |provider: &str, extra: &str| match build(&policy(provider, extra)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted: {provider} {extra}"),
    };
    let message = bad(
        &format!("jwks_url = \"{JWKS}\"\nalgorithms = [\"HS256\"]"),
        "",
    );
    assert!(
        message.contains("auth.providers[0].algorithms"),
        "{message}"
    );
    let message = bad("", "");
    assert!(message.contains("auth.providers[0].keys"), "{message}");
    let message = bad(
        &format!("jwks_url = \"{JWKS}\""),
        "[[auth.rules]]\nroute = \"admin/**\"\n",
    );
    assert!(message.contains("auth.rules[0].route"), "{message}");
    let message = bad(
        "keys = [{ kid = \"h\", hmac_secret = \"AUTH_HS256_SECRET\" }]\nalgorithms = [\"HS256\"]",
        "",
    );
    assert!(message.contains("AUTH_HS256_SECRET"), "{message}");
    let message = bad(
        "keys = [{ kid = \"h\", hmac_secret = \"OTHER\" }]\nalgorithms = [\"HS256\"]",
        "",
    );
    assert!(
        message.contains("auth.providers[0].keys[0].hmac_secret"),
        "{message}"
    );
    assert!(matches!(
        build(&policy("keys = [{ pem = \"not a key\" }]", "")),
        Err(ConfigError::Invalid(_))
    ));
}

/// A token signed with HMAC-`alg` over `secret`.
fn hmac_token(alg: &str, secret: &[u8], claims: &Value) -> String {
    use hmac::Mac as _;
    let header = json!({ "alg": alg, "typ": "JWT" });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = match alg {
        "HS384" => {
            let mut mac = hmac::Hmac::<sha2::Sha384>::new_from_slice(secret).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        "HS512" => {
            let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(secret).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

#[test]
fn hs384_and_hs512_take_a_secret_of_their_hash_size() {
    let secret = "0123456789abcdef".repeat(4); // 64 bytes
    let provider = "keys = [{ hmac_secret = \"AUTH_HS256_SECRET\" }]\n\
                    algorithms = [\"HS256\", \"HS384\", \"HS512\"]";
    let with_secret = |secret: &str| {
        instantiate::<AuthCheck>(
            &Config::new("")
                .with_var("POLICY", policy(provider, ""))
                .with_secret("AUTH_HS256_SECRET", secret),
        )
    };
    block_on(async {
        let platform = TestPlatform::at(at(T0 + 10));
        let f = with_secret(&secret);
        assert!(f.is_ok(), "{:?}", f.as_ref().err());
        for alg in ["HS256", "HS384", "HS512"] {
            let t = hmac_token(alg, secret.as_bytes(), &claims("alice"));
            let answer = platform.serve(&f, get("/api", Some(&t))).await;
            assert_eq!(answer.status(), 200, "{alg}");
            // Another secret's tag is refused.
            let t = hmac_token(
                alg,
                b"another secret of at least 64 bytes, for the test of the tags!",
                &claims("alice"),
            );
            assert_eq!(
                platform.serve(&f, get("/api", Some(&t))).await.status(),
                401,
                "{alg}"
            );
        }
    });
    // A 48-byte secret is too short for HS512: refused at start, naming
    // the field, the length and the algorithm.
    let message = match with_secret(&secret[..48]) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a 48-byte secret was accepted for HS512"),
    };
    assert!(
        message.contains("auth.providers[0].keys[0].hmac_secret")
            && message.contains("48 bytes; HS512 needs at least 64"),
        "{message}"
    );
}

/// testdata/roca.py: RSA keys of Infineon RSALib's form (CVE-2017-15361).
fn roca_vectors() -> Value {
    serde_json::from_str(include_str!("../testdata/roca-generated.json")).unwrap()
}

#[test]
fn a_roca_key_in_a_jwks_is_refused_with_its_reason() {
    block_on(async {
        let roca = roca_vectors()["fingerprinted"][0].clone();
        let token = roca["rs256_token"].as_str().unwrap().to_owned();
        let platform = TestPlatform::at(at(T0 + 10));
        platform.http.route(
            JWKS,
            jwks_response(&[roca["jwk"].clone(), jwk(1, "k1")], None),
        );
        let f = build(&policy(
            &format!("jwks_url = \"{JWKS}\"\nalgorithms = [\"EdDSA\", \"RS256\"]"),
            "",
        ));
        // The token is genuinely signed by the weak key; before the check
        // it passed the whole path (200, x-auth-sub mallory).
        let answer = platform.serve(&f, get("/api", Some(&token))).await;
        assert_eq!(answer.status(), 401);
        let challenge = answer.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
        // The other key of the set still works.
        let t = token_for(1, "k1");
        assert_eq!(
            platform.serve(&f, get("/api", Some(&t))).await.status(),
            200
        );
        // The reason is logged, as a warning, with the key's kid.
        let logs = platform.logs.lines();
        assert!(
            logs.iter().any(|line| line.contains("\"level\":\"warn\"")
                && line.contains("roca-2048")
                && line.contains("ROCA fingerprint (CVE-2017-15361")),
            "{logs:?}"
        );
    });
}

fn token_for(seed: u8, kid: &str) -> String {
    token(seed, kid, claims("alice"))
}

#[test]
fn a_roca_key_in_the_policy_stops_the_function_at_start() {
    let roca = roca_vectors()["fingerprinted"][1]["jwk"].clone();
    let provider = format!(
        "algorithms = [\"RS256\"]\nkeys = [{{ jwk = {} }}]",
        toml_inline(&roca)
    );
    let message = match build(&policy(&provider, "")) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a ROCA key was accepted from the policy"),
    };
    assert!(
        message.contains("auth.providers[0].keys[0].jwk")
            && message.contains("ROCA fingerprint (CVE-2017-15361"),
        "{message}"
    );
}

/// A flat JSON object of strings as a TOML inline table.
fn toml_inline(object: &Value) -> String {
    let members: Vec<String> = object
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {}", v))
        .collect();
    format!("{{ {} }}", members.join(", "))
}

#[test]
fn a_jwks_with_two_keys_under_one_kid_is_refused_and_the_keys_held_stay() {
    block_on(async {
        let platform = TestPlatform::at(at(T0 + 10));
        // Two different keys both named k1: before, a token signed by
        // either passed (200).
        platform.http.route(
            JWKS,
            jwks_response(&[jwk(1, "k1"), jwk(2, "k1")], Some("max-age=60")),
        );
        let f = build(&policy(&format!("jwks_url = \"{JWKS}\""), ""));
        let t = token(2, "k1", claims("mallory"));
        let answer = platform.serve(&f, get("/api", Some(&t))).await;
        assert_eq!(answer.status(), 503);
        let logs = platform.logs.lines().join("\n");
        assert!(
            logs.contains(
                "the JWK set at https://idp.test/jwks is refused: two different keys have kid"
            ) && logs.contains("k1"),
            "{logs}"
        );

        // With a good set held, a later ambiguous one is refused and the
        // held keys stay in use.
        let platform = TestPlatform::at(at(T0 + 10));
        platform
            .http
            .route(JWKS, jwks_response(&[jwk(1, "k1")], Some("max-age=60")));
        let f = build(&policy(&format!("jwks_url = \"{JWKS}\""), ""));
        let good = token(1, "k1", claims("alice"));
        assert_eq!(
            platform.serve(&f, get("/api", Some(&good))).await.status(),
            200
        );
        platform.http.route(
            JWKS,
            jwks_response(&[jwk(1, "k1"), jwk(2, "k1")], Some("max-age=60")),
        );
        platform.clock.advance(Duration::from_secs(61));
        assert_eq!(
            platform.serve(&f, get("/api", Some(&good))).await.status(),
            200
        );
        assert_eq!(platform.http.calls(JWKS), 2);
        assert_eq!(
            platform.serve(&f, get("/api", Some(&t))).await.status(),
            401
        );
    });
}

#[test]
fn static_keys_one_kid_per_key_and_one_kind_per_provider() {
    let bad = |provider: &str| match build(&policy(provider, "")) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted: {provider}"),
    };
    let ed = |seed: u8, kid: &str| toml_inline(&jwk(seed, kid));
    // Two keys under one kid (the key's own, or the jwk's).
    let message = bad(&format!(
        "keys = [{{ kid = \"a\", jwk = {} }}, {{ kid = \"a\", jwk = {} }}]",
        ed(1, "x"),
        ed(2, "y")
    ));
    assert!(
        message.contains("auth.providers[0].keys[1].kid: \"a\" is also the kid of keys[0]"),
        "{message}"
    );
    let message = bad(&format!(
        "keys = [{{ jwk = {} }}, {{ jwk = {} }}]",
        ed(1, "b"),
        ed(2, "b")
    ));
    assert!(
        message.contains("auth.providers[0].keys[1].kid: \"b\" is also the kid of keys[0]"),
        "{message}"
    );
    // An HMAC secret beside a public key (HS256 and EdDSA allowed: before,
    // both were accepted for one issuer).
    let config = |provider: &str| {
        instantiate::<AuthCheck>(
            &Config::new("")
                .with_var("POLICY", policy(provider, ""))
                .with_secret("AUTH_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
        )
    };
    let mixed = format!(
        "algorithms = [\"EdDSA\", \"HS256\"]\n\
         keys = [{{ jwk = {} }}, {{ kid = \"h\", hmac_secret = \"AUTH_HS256_SECRET\" }}]",
        ed(1, "e")
    );
    let message = config(&mixed).err().unwrap().to_string();
    assert!(
        message.contains("auth.providers[0].keys: \"keys[1] and keys[0]\" hold an HMAC secret beside a public key")
            && message.contains("auth.providers[0].algorithms: [\"EdDSA\",\"HS256\"] mixes HMAC"),
        "{message}"
    );
    // The same with the secret as an oct JWK.
    let oct = format!(
        "algorithms = [\"EdDSA\", \"HS256\"]\n\
         keys = [{{ jwk = {{ kty = \"oct\", k = \"{}\" }} }}, {{ jwk = {} }}]",
        URL_SAFE_NO_PAD.encode([7u8; 32]),
        ed(1, "e")
    );
    let message = bad(&oct);
    assert!(
        message.contains("auth.providers[0].keys: \"keys[0] and keys[1]\" hold an HMAC secret"),
        "{message}"
    );
    // Algorithms alone may not mix either.
    let message = bad(&format!(
        "algorithms = [\"EdDSA\", \"HS512\"]\nkeys = [{{ jwk = {} }}]",
        ed(1, "e")
    ));
    assert!(
        message.contains("auth.providers[0].algorithms") && message.contains("mixes HMAC"),
        "{message}"
    );
    // Distinct kids, one kind: fine.
    assert!(
        build(&policy(
            &format!(
                "keys = [{{ jwk = {} }}, {{ jwk = {} }}]",
                ed(1, "a"),
                ed(2, "b")
            ),
            ""
        ))
        .is_ok()
    );
}
