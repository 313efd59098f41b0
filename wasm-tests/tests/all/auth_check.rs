//! The auth check against a real OIDC provider (npm `oidc-provider` on
//! 127.0.0.1): discovery and JWKS fetched for real, tokens issued by the
//! provider's client-credentials grant for every asymmetric algorithm, a
//! key rotation picked up by one refetch on the unknown `kid`, and a flood
//! of made-up `kid`s held back by the cooldown — on the Spin build in the
//! wasmtime host (a fresh instance per request: the cooldown lives in the
//! key-value store) and on the Workers build under `wrangler dev` (KV).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use wasm_tests::conformance::CaseRequest;
use wasm_tests::host::{AllowedHosts, App, AppConfig, GuestLogs, KvStore};
use wasm_tests::oidc::{OidcProvider, ProviderOptions, TokenRequest};
use wasm_tests::workerd::{WranglerDev, agent, send};

/// Seconds between two JWKS fetches the policy allows.
const COOLDOWN_SECS: u64 = 3;

fn policy(issuer: &str) -> String {
    format!(
        r#"[auth]
realm = "it"

[[auth.rules]]
route = "/admin/**"
roles = ["admin"]

[[auth.providers]]
issuer = "{issuer}"
audiences = ["https://api.test"]
algorithms = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
discovery = true
jwks_refetch_cooldown = "{COOLDOWN_SECS}s"
jwks_min_ttl = "1s"
"#
    )
}

fn secrets() -> BTreeMap<String, String> {
    [
        ("AUTH_API_KEY_HASH_KEY".to_owned(), "k".to_owned()),
        ("AUTH_ADMIN_TOKEN".to_owned(), "t".to_owned()),
    ]
    .into()
}

/// An answer: status, `x-auth-sub`, and the `WWW-Authenticate` challenge.
type Answer = (u16, Option<String>, Option<String>);

fn provider() -> OidcProvider {
    OidcProvider::start_with(&ProviderOptions {
        jwks_max_age: Some(300),
        audience: None,
    })
    .expect("the OIDC provider (run `cargo xtask test`, which installs oidc-provider)")
}

fn token(idp: &OidcProvider, alg: &str, roles: &[&str]) -> String {
    idp.issue(&TokenRequest {
        alg: Some(alg.into()),
        scope: Some("api:read".into()),
        roles: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
        sub: Some("alice".into()),
        ..TokenRequest::default()
    })
    .unwrap()
    .access_token
}

/// The whole story, against one deployment reached through `call(path, token)`.
fn rotation_and_cooldown(idp: &OidcProvider, call: &dyn Fn(&str, &str) -> Answer) {
    let jwks = || idp.stats().unwrap().jwks_fetches;
    idp.reset_stats().unwrap();

    // Every asymmetric algorithm the provider signs with verifies; the keys
    // are fetched once (discovery, then the JWKS) and then come from cache.
    let rs256 = token(idp, "RS256", &["reader"]);
    let (status, sub, challenge) = call("/api/items", &rs256);
    assert_eq!(
        (status, sub.as_deref()),
        (200, Some("alice")),
        "{challenge:?}"
    );
    for alg in ["PS256", "ES256", "ES384", "EdDSA"] {
        let (status, _, challenge) = call("/api/items", &token(idp, alg, &["reader"]));
        assert_eq!(status, 200, "{alg}: {challenge:?}");
    }
    let stats = idp.stats().unwrap();
    assert_eq!((stats.discovery_fetches, stats.jwks_fetches), (1, 1));

    // RBAC and the claim checks on real tokens.
    assert_eq!(call("/admin/users", &rs256).0, 403);
    assert_eq!(
        call("/admin/users", &token(idp, "RS256", &["admin"])).0,
        200
    );
    let foreign = idp
        .issue(&TokenRequest {
            audience: Some("https://other.test".into()),
            ..TokenRequest::default()
        })
        .unwrap()
        .access_token;
    let (status, _, challenge) = call("/api/items", &foreign);
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("error=\"invalid_token\""));
    let expired = idp
        .sign(
            "RS256",
            json!({}),
            json!({ "iss": idp.issuer(), "sub": "alice", "aud": "https://api.test",
                    "iat": 1_600_000_000, "exp": 1_600_000_900 }),
            None,
        )
        .unwrap();
    assert_eq!(call("/api/items", &expired).0, 401);
    assert_eq!(jwks(), 1);

    // The provider rotates (after the cooldown since the first fetch has
    // passed): the first token with the new kid refetches once.
    std::thread::sleep(Duration::from_millis(COOLDOWN_SECS * 1000 + 500));
    let rotation = idp.rotate().unwrap();
    let fresh = token(idp, "RS256", &["reader"]);
    let (status, _, challenge) = call("/api/items", &fresh);
    assert_eq!(status, 200, "after rotation to {rotation:?}: {challenge:?}");
    assert_eq!(jwks(), 2);
    assert_eq!(
        call("/api/items", &rs256).0,
        200,
        "the old key is still published"
    );

    // Made-up kids inside the cooldown: 401, and the provider is left alone.
    let payload = json!({ "iss": idp.issuer(), "sub": "mallory", "aud": "https://api.test",
                          "exp": 4_102_444_800u64 });
    for i in 0..20 {
        let bogus = idp
            .sign(
                "RS256",
                json!({ "kid": format!("bogus-{i}") }),
                payload.clone(),
                None,
            )
            .unwrap();
        let (status, _, challenge) = call("/api/items", &bogus);
        assert_eq!(status, 401);
        assert!(challenge.unwrap().contains("invalid_token"));
    }
    assert_eq!(jwks(), 2, "no fetch inside the cooldown");

    // After the cooldown, an unknown kid may refetch once more.
    std::thread::sleep(Duration::from_millis(COOLDOWN_SECS * 1000 + 500));
    for _ in 0..3 {
        let bogus = idp
            .sign(
                "RS256",
                json!({ "kid": "bogus-late" }),
                payload.clone(),
                None,
            )
            .unwrap();
        assert_eq!(call("/api/items", &bogus).0, 401);
    }
    assert_eq!(jwks(), 3, "one fetch after the cooldown");
    assert_eq!(call("/api/items", &fresh).0, 200);
}

fn answer_of(status: u16, headers: &http::HeaderMap) -> Answer {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    (status, text("x-auth-sub"), text("www-authenticate"))
}

#[test]
fn spin_build_follows_a_real_provider_through_rotation_with_a_cooldown() {
    let idp = provider();
    let mut variables: BTreeMap<String, String> = secrets()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    variables.insert("policy".into(), policy(idp.issuer()));
    let logs = GuestLogs::new(1 << 20);
    let app = App::load(
        &wasm_tests::spin_component("auth-check"),
        AppConfig {
            variables: variables.into_iter().collect(),
            kv: KvStore::new(),
            route: "/auth-check".into(),
            guest_stderr: Some(logs.clone()),
        },
    )
    .expect("the Spin build of auth-check (run `cargo xtask build`)")
    .with_allowed_outbound_hosts(AllowedHosts::parse(&[idp.allowed_host()]).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client: SocketAddr = ([127, 0, 0, 1], 40100).into();
    let call = |path: &str, token: &str| -> Answer {
        let req = http::Request::builder()
            .uri(format!("http://127.0.0.1/auth-check{path}"))
            .header("authorization", format!("Bearer {token}"))
            .body(bytes::Bytes::new())
            .unwrap();
        let response = runtime.block_on(app.handle(req, client)).unwrap();
        answer_of(response.status().as_u16(), response.headers())
    };
    rotation_and_cooldown(&idp, &call);
    let logs = String::from_utf8_lossy(&logs.contents()).to_string();
    assert!(logs.contains("jwks fetched"), "{logs}");
}

#[test]
fn workers_build_follows_a_real_provider_through_rotation_with_a_cooldown() {
    let idp = provider();
    let vars: BTreeMap<String, String> = [("POLICY".to_owned(), policy(idp.issuer()))].into();
    let dev = WranglerDev::start("auth-check", &vars, &secrets()).expect("wrangler dev");
    let agent = agent(Duration::from_secs(30));
    let call = |path: &str, token: &str| -> Answer {
        let case: CaseRequest = serde_json::from_value::<CaseRequest>(json!({
            "method": "GET",
            "path": path,
            "headers": { "authorization": format!("Bearer {token}") },
        }))
        .unwrap();
        let actual = send(&agent, &dev.url(), &case).unwrap();
        let headers: http::HeaderMap = actual
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.parse().ok()?)))
            .collect();
        answer_of(actual.status, &headers)
    };
    rotation_and_cooldown(&idp, &call);
    // Signatures went through the runtime's WebCrypto, never the fallback.
    let log = std::fs::read_to_string(dev.log_path()).unwrap_or_default();
    assert!(log.contains("jwks fetched"), "{}", dev.log_tail());
    assert!(!log.contains("webcrypto failed"), "{}", dev.log_tail());
}
