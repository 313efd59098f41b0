//! Outbound HTTP from Spin builds in the wasmtime host, and the OIDC
//! provider the auth-check tests fetch from.
//!
//! The rate limiter forwards admitted requests to its policy's `origin`:
//! with the origin's host in `allowed_outbound_hosts` the request reaches a
//! server the test runs on 127.0.0.1; without it the host denies it
//! (`HttpRequestDenied`, as Spin does) and the function answers 502.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use wasm_tests::host::{AllowedHosts, App, AppConfig, GuestLogs, KvStore};
use wasm_tests::oidc::{OidcProvider, TokenRequest};

/// What the origin saw: method, path, `x-test` header, body.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>, String)>>>;

/// An HTTP origin on 127.0.0.1 answering `hello from origin`; stopped when
/// the returned task is aborted (or its runtime ends).
async fn origin() -> (SocketAddr, Seen, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let record = record.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await?.to_bytes();
                        record.lock().unwrap().push((
                            parts.method.to_string(),
                            parts.uri.to_string(),
                            parts
                                .headers
                                .get("x-test")
                                .map(|v| v.to_str().unwrap().to_owned()),
                            String::from_utf8_lossy(&body).into_owned(),
                        ));
                        let response = http::Response::builder()
                            .header("content-type", "text/plain")
                            .header("x-origin", "yes")
                            .body(Full::new(Bytes::from_static(b"hello from origin")))
                            .unwrap();
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen, task)
}

/// The rate limiter forwarding everything to `origin`, limit 100 an hour.
fn forwarding_app(origin: &str, logs: GuestLogs) -> App {
    let policy = format!(
        "[rate_limit]\nhash_key_secret = \"RATE_LIMIT_HASH_KEY\"\norigin = \"{origin}\"\n\
         [[rate_limit.scopes]]\nname = \"ALL\"\nalgorithm = \"fixed_window\"\nlimit = 100\n\
         period = \"1h\"\nkey = [\"global\"]\n"
    );
    App::load(
        &wasm_tests::spin_component("rate-limit"),
        AppConfig {
            variables: [
                ("policy".to_owned(), policy),
                ("rate_limit_hash_key".to_owned(), "k".to_owned()),
            ]
            .into(),
            kv: KvStore::new(),
            route: "/rate-limit".into(),
            guest_stderr: Some(logs),
        },
    )
    .expect("the Spin build of rate-limit (run `cargo xtask build`)")
}

fn post(path: &str, body: &'static str) -> http::Request<Bytes> {
    http::Request::post(format!("http://127.0.0.1/rate-limit{path}"))
        .header("x-test", "forwarded")
        .body(Bytes::from_static(body.as_bytes()))
        .unwrap()
}

fn logs_text(logs: &GuestLogs) -> String {
    String::from_utf8_lossy(&logs.contents()).into_owned()
}

#[test]
fn an_allowed_host_is_reached_and_others_are_denied() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client: SocketAddr = ([127, 0, 0, 1], 40100).into();
    let (addr, seen, server) = runtime.block_on(origin());
    let origin_url = format!("http://127.0.0.1:{}", addr.port());

    // Allowed by exact host and port: the origin gets the request, body and
    // headers, and its answer comes back.
    let logs = GuestLogs::new(1 << 20);
    let allowed = forwarding_app(&origin_url, logs.clone())
        .with_allowed_outbound_hosts(AllowedHosts::parse(&[origin_url.as_str()]).unwrap());
    let response = runtime
        .block_on(allowed.handle(post("/api/items?x=1", "ping"), client))
        .unwrap();
    assert_eq!(response.status(), 200, "{}", logs_text(&logs));
    assert_eq!(response.body(), "hello from origin");
    assert_eq!(response.headers()["x-origin"], "yes");
    assert!(response.headers().contains_key("ratelimit"));
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [(
            "POST".to_owned(),
            "/api/items?x=1".to_owned(),
            Some("forwarded".to_owned()),
            "ping".to_owned()
        )]
    );

    // Spin's wildcard port form reaches it too.
    let wildcard = forwarding_app(&origin_url, GuestLogs::new(1 << 20))
        .with_allowed_outbound_hosts(AllowedHosts::parse(&["http://127.0.0.1:*"]).unwrap());
    let response = runtime
        .block_on(wildcard.handle(post("/b", "again"), client))
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 2);

    // Not allowed: nothing listed (the default), another port, another
    // scheme. The guest sees HttpRequestDenied; the origin sees nothing.
    for hosts in [
        vec![],
        vec![format!("http://127.0.0.1:{}", addr.port() ^ 1)],
        vec![format!("https://127.0.0.1:{}", addr.port())],
        vec!["http://localhost:*".to_owned()],
    ] {
        let logs = GuestLogs::new(1 << 20);
        let denied = forwarding_app(&origin_url, logs.clone())
            .with_allowed_outbound_hosts(AllowedHosts::parse(&hosts).unwrap());
        let response = runtime
            .block_on(denied.handle(post("/c", "no"), client))
            .unwrap();
        assert_eq!(response.status(), 502, "{hosts:?}");
        let text = logs_text(&logs);
        assert!(text.contains("HttpRequestDenied"), "{hosts:?}: {text}");
    }
    assert_eq!(seen.lock().unwrap().len(), 2);

    // Allowed but nobody listening: a transport error, not a denial.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let logs = GuestLogs::new(1 << 20);
    let refused = forwarding_app(&format!("http://127.0.0.1:{closed}"), logs.clone())
        .with_allowed_outbound_hosts(AllowedHosts::parse(&["http://127.0.0.1:*"]).unwrap());
    let response = runtime
        .block_on(refused.handle(post("/d", "x"), client))
        .unwrap();
    assert_eq!(response.status(), 502);
    let text = logs_text(&logs);
    assert!(
        text.contains("origin unreachable") && !text.contains("HttpRequestDenied"),
        "{text}"
    );

    server.abort();
}

#[test]
fn the_oidc_provider_serves_discovery_tokens_rotation_and_stats() {
    let provider = OidcProvider::start().unwrap();
    let issuer = provider.issuer().to_owned();
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");

    let (status, discovery) = provider.get_json(&provider.discovery_url()).unwrap();
    assert_eq!(status, 200);
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(discovery["jwks_uri"], provider.jwks_uri().as_str());
    let kids = |jwks: &serde_json::Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, jwks) = provider.get_json(&provider.jwks_uri()).unwrap();
    let first_kids = kids(&jwks);
    let key_types: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kty"].as_str().unwrap())
        .collect();
    assert_eq!(key_types, ["RSA", "EC", "EC", "OKP"]);
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("d").is_none()),
        "private parts leaked"
    );

    // A real access token: a JWT with the provider's claims and ours.
    let token = provider.token(&["read", "write"], &["admin"]).unwrap();
    let (header, claims) = decode(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    assert!(first_kids.contains(&header["kid"].as_str().unwrap().to_owned()));
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], "https://api.test");
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900
    );

    for alg in ["PS256", "ES256", "ES384", "EdDSA"] {
        let issued = provider
            .issue(&TokenRequest {
                alg: Some(alg.into()),
                sub: Some("alice".into()),
                ..TokenRequest::default()
            })
            .unwrap();
        let (header, claims) = decode(&issued.access_token);
        assert_eq!(header["alg"], alg);
        assert_eq!(claims["sub"], "alice");
        assert!(first_kids.contains(&issued.kid.unwrap()));
    }

    // Rotation: a new kid signs, and the JWKS has it (and the old ones).
    let rotation = provider.rotate().unwrap();
    let new_kid = rotation.signing_kids["RS256"].clone();
    assert!(!first_kids.contains(&new_kid));
    let (header, _) = decode(&provider.token(&["read"], &[]).unwrap());
    assert_eq!(header["kid"], new_kid.as_str());
    let (_, jwks) = provider.get_json(&provider.jwks_uri()).unwrap();
    let now = kids(&jwks);
    assert!(now.contains(&new_kid) && first_kids.iter().all(|k| now.contains(k)));
    provider.rotate_keeping_old(false).unwrap();
    let (_, jwks) = provider.get_json(&provider.jwks_uri()).unwrap();
    assert_eq!(kids(&jwks).len(), 4);

    // Stats count what was fetched; Cache-Control and outages are settable.
    let stats = provider.stats().unwrap();
    assert_eq!((stats.discovery_fetches, stats.jwks_fetches), (1, 3));
    assert_eq!(stats.generation, 3);
    provider.set_jwks_status(Some(503)).unwrap();
    assert_eq!(provider.get_json(&provider.jwks_uri()).unwrap().0, 503);
    provider.set_jwks_status(None).unwrap();
    provider.reset_stats().unwrap();
    assert_eq!(provider.stats().unwrap().jwks_fetches, 0);

    // Minted tokens (no provider would issue these) use the same keys.
    let expired = provider
        .sign(
            "ES256",
            serde_json::json!({}),
            serde_json::json!({ "sub": "x", "exp": 1 }),
            None,
        )
        .unwrap();
    let (header, claims) = decode(&expired);
    assert_eq!(header["kid"], rotation_kid(&provider, "p256"));
    assert_eq!(claims["exp"], 1);
}

/// The current kid starting with `prefix`.
fn rotation_kid(provider: &OidcProvider, prefix: &str) -> String {
    provider
        .stats()
        .unwrap()
        .kids
        .into_iter()
        .find(|k| k.starts_with(prefix))
        .unwrap()
}

/// A JWT's header and claims, unverified.
fn decode(token: &str) -> (serde_json::Value, serde_json::Value) {
    let part = |i: usize| {
        let segment = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&base64url(segment)).unwrap()
    };
    (part(0), part(1))
}

/// Unpadded base64url (RFC 4648 §5), enough for JWT segments.
fn base64url(text: &str) -> Vec<u8> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => panic!("not base64url: {c:?}"),
    };
    let mut out = Vec::new();
    let (mut bits, mut count) = (0u32, 0);
    for c in text.bytes() {
        bits = (bits << 6) | u32::from(sextet(c));
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}
