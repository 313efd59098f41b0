//! API-key rotation as an operator uses it (issue 16): a rotation's overlap
//! bounds every earlier key of the id, so an overlap-0 rotation — the answer
//! to a leak — ends all of them, not only the key it replaces.
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use std::time::Duration;

use async_trait::async_trait;
use auth_check::apikeys::{ApiKeys, ApiKeysSection};
use edge_core::function::{Instance, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::model::json_response;
use edge_core::policy::{Policy, Validator};
use edge_core::{
    Config, ConfigError, Context, EdgeFunction, Problem, Request, Response, Timestamp,
};
use futures::executor::block_on;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

const T0: u64 = 1_795_305_600_000; // 2026-11-22T00:00:00Z
const ADMIN: &str = "test-admin-token";
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

const POLICY: &str = r#"
    [auth.api_keys]
    environment = "prod"
    rotation_overlap = "24h"
"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    auth: AuthDoc,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthDoc {
    api_keys: ApiKeysSection,
}

impl Policy for Doc {
    fn validate(&self, v: &mut Validator) {
        v.field("auth", |v| {
            v.field("api_keys", |v| self.auth.api_keys.validate(v))
        });
    }
}

/// `ApiKeys` alone: `/admin/...` is the admin, anything else checks the
/// presented key.
struct Keys(ApiKeys);

#[async_trait(?Send)]
impl EdgeFunction for Keys {
    const NAME: &'static str = "rotation-test";
    const VERSION: &'static str = "0";
    const DEFAULT_POLICY: &'static str = POLICY;

    fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let doc = config.policy::<Doc>()?;
        Ok(Keys(ApiKeys::from_section(&doc.auth.api_keys, config)?))
    }

    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        if let Some(rest) = req.uri().path().strip_prefix("/admin") {
            let rest = rest.to_owned();
            return self.0.handle_admin(req, &rest, ctx).await;
        }
        let presented = self.0.presented(req.headers()).unwrap_or("");
        match self.0.authenticate(presented, ctx).await {
            Ok(who) => Ok(json_response(StatusCode::OK, &json!({ "id": who.id }))),
            Err(e) => Err(Problem::new(e.status(), "api-key", "Unauthorized")
                .with_extension("error", e.code())),
        }
    }
}

struct Setup {
    f: TestPlatform,
    keys: Instance<Keys>,
}

impl Setup {
    fn new() -> Self {
        let config = Config::new(POLICY)
            .with_secret("AUTH_API_KEY_HASH_KEY", "test-hash-key")
            .with_secret("AUTH_ADMIN_TOKEN", ADMIN);
        Setup {
            f: TestPlatform::at(Timestamp::from_millis(T0)),
            keys: instantiate::<Keys>(&config),
        }
    }

    fn call(&self, req: Request) -> (u16, Value) {
        let response = block_on(self.f.serve(&self.keys, req));
        let status = response.status().as_u16();
        let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        (status, body)
    }

    fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("/admin{path}"))
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(body.map(|b| b.to_string()).unwrap_or_default().into())
            .unwrap();
        self.call(req)
    }

    fn create(&self, id: &str) -> String {
        let (status, body) = self.admin(Method::POST, "/keys", Some(json!({ "id": id })));
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_owned()
    }

    /// Rotates `id` with `body`, returning the new key and the status.
    fn rotate(&self, id: &str, body: Value) -> (String, Value) {
        let (status, answer) = self.admin(Method::POST, &format!("/keys/{id}/rotate"), Some(body));
        assert_eq!(status, 200, "{answer}");
        (answer["key"].as_str().unwrap().to_owned(), answer)
    }

    fn state(&self, id: &str) -> Value {
        let (status, body) = self.admin(Method::GET, &format!("/keys/{id}"), None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Whether `key` passes now.
    fn passes(&self, key: &str) -> bool {
        let req = http::Request::builder()
            .uri("/api")
            .header("x-api-key", key)
            .body(Default::default())
            .unwrap();
        let (status, body) = self.call(req);
        assert!(
            status == 200 || body["error"] == "invalid",
            "{status} {body}"
        );
        status == 200
    }

    fn advance(&self, by: Duration) {
        self.f.clock.advance(by);
    }
}

#[test]
fn an_overlap_0_rotation_ends_every_earlier_key_of_the_id() {
    // The report: 10-minute overlap, then seconds later overlap 0 — the
    // oldest key stayed valid while the key issued seconds earlier died.
    let s = Setup::new();
    let first = s.create("svc");
    s.advance(MINUTE);
    let (second, _) = s.rotate("svc", json!({ "overlap": "10m" }));
    assert!(s.passes(&first) && s.passes(&second));
    s.advance(5 * SECOND);
    let (third, status) = s.rotate("svc", json!({ "overlap": "0s" }));
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["previous_valid_until"], Value::Null, "{status}");
    assert!(
        !s.passes(&first),
        "the oldest key still passes after an overlap-0 rotation"
    );
    assert!(!s.passes(&second));
    assert!(s.passes(&third));
    // Not later either.
    s.advance(MINUTE);
    assert!(!s.passes(&first) && !s.passes(&second) && s.passes(&third));
    assert_eq!(s.state("svc")["state"], "active");
}

#[test]
fn a_rotation_overlap_bounds_every_earlier_key_and_never_lengthens_one() {
    let s = Setup::new();
    let first = s.create("api");
    let (second, _) = s.rotate("api", json!({ "overlap": "1h" }));
    s.advance(MINUTE);
    // A shorter overlap now: both earlier keys end with it.
    let (third, status) = s.rotate("api", json!({ "overlap": "10m" }));
    assert_eq!(status["previous_valid_until"], "2026-11-22T00:11:00.000Z");
    s.advance(10 * MINUTE - SECOND);
    assert!(s.passes(&first) && s.passes(&second) && s.passes(&third));
    s.advance(SECOND);
    assert!(!s.passes(&first), "the first key outlived the overlap");
    assert!(!s.passes(&second));
    assert!(s.passes(&third));

    // A longer overlap later keeps an earlier, shorter window as it was.
    let (fourth, _) = s.rotate("api", json!({ "overlap": "5m" }));
    let (fifth, status) = s.rotate("api", json!({ "overlap": "1h" }));
    assert_eq!(status["previous_valid_until"], "2026-11-22T01:11:00.000Z");
    s.advance(5 * MINUTE);
    assert!(!s.passes(&third), "its 5-minute window was lengthened");
    assert!(s.passes(&fourth) && s.passes(&fifth));
    s.advance(55 * MINUTE);
    assert!(!s.passes(&fourth) && s.passes(&fifth));
}

#[test]
fn a_scheduled_overlap_0_rotation_ends_every_earlier_key_when_it_activates() {
    let s = Setup::new();
    let first = s.create("batch");
    let (second, _) = s.rotate("batch", json!({ "overlap": "1h" }));
    let at = (T0 / 1000) + 30 * 60;
    let (third, status) = s.rotate("batch", json!({ "at": at, "overlap": "0s" }));
    assert_eq!(status["state"], "scheduled");
    s.advance(30 * MINUTE - SECOND);
    assert!(s.passes(&first) && s.passes(&second) && !s.passes(&third));
    s.advance(SECOND);
    assert!(
        !s.passes(&first),
        "the first key outlived the scheduled overlap-0 rotation"
    );
    assert!(!s.passes(&second));
    assert!(s.passes(&third));
    assert_eq!(s.state("batch")["state"], "active");
}
