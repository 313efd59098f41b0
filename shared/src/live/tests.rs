//! The live policy on the in-memory platform: versions, refusals,
//! restores, other isolates and a store that is down.
#![allow(clippy::unwrap_used)]
use super::*;
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::memory::TestPlatform;
use crate::model::json_response;
use crate::policy::ConfigError;
use crate::policy::{Policy, Validator};
use futures::executor::block_on;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GreetPolicy {
    greeting: String,
    #[serde(default)]
    signed_with: Option<String>,
}
impl Policy for GreetPolicy {
    fn validate(&self, v: &mut Validator) {
        v.check(
            !self.greeting.is_empty(),
            "greeting",
            &self.greeting,
            "must not be empty",
        );
    }
}

/// Answers its greeting; a policy naming `signed_with` needs that secret.
struct Greet(String);

#[async_trait(?Send)]
impl EdgeFunction for Greet {
    const NAME: &'static str = "greet";
    const VERSION: &'static str = "1.0.0";
    const DEFAULT_POLICY: &'static str = "greeting = \"hello\"";
    const SECRETS: &'static [&'static str] = &["SIGNING_KEY"];

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        let policy = config.policy::<GreetPolicy>()?;
        if let Some(name) = &policy.signed_with {
            config.require_secret("signed_with", name)?;
        }
        Ok(Greet(policy.greeting))
    }

    async fn handle(&self, _req: Request, _ctx: &Context<'_>) -> Result<Response, Problem> {
        Ok(json_response(
            StatusCode::OK,
            &json!({ "greeting": self.0 }),
        ))
    }
}

const TOKEN: &str = "policy-admin-token";

fn base() -> Config {
    Config::new(Greet::DEFAULT_POLICY)
        .with_secret(ADMIN_SECRET, TOKEN)
        .with_secret("SIGNING_KEY", "signing-key-value")
}

fn request(method: &str, path: &str, body: &str, token: Option<&str>) -> Request {
    let mut builder = http::Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(body.as_bytes().to_vec().into()).unwrap()
}

fn admin(method: &str, path: &str, body: &str) -> Request {
    request(method, path, body, Some(TOKEN))
}

fn json_of(response: &Response) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

fn greeting(live: &LivePolicy<Greet>, f: &TestPlatform) -> String {
    let response = block_on(live.serve(request("GET", "/", "", None), &f.services()));
    json_of(&response)["greeting"].as_str().unwrap().to_owned()
}

fn platform() -> TestPlatform {
    TestPlatform::at(Timestamp::from_millis(1_800_000_000_000))
}

#[test]
fn a_put_decides_the_very_next_request_and_health_names_the_version() {
    let f = platform();
    let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
    assert_eq!(greeting(&live, &f), "hello");
    let put = block_on(live.serve(
        admin("PUT", "/_policy", "greeting = \"howdy\""),
        &f.services(),
    ));
    assert_eq!(put.status(), StatusCode::OK, "{:?}", json_of(&put));
    assert_eq!(put.headers()["etag"], "\"1\"");
    assert_eq!(json_of(&put)["version"], 1);
    assert_eq!(greeting(&live, &f), "howdy");
    let health = block_on(live.serve(request("GET", "/health", "", None), &f.services()));
    let policy = &json_of(&health)["policy"];
    assert_eq!(policy["version"], 1);
    assert_eq!(policy["source"], "store");
    assert_eq!(policy["digest"], digest("greeting = \"howdy\""));
}

#[test]
fn a_bad_policy_is_refused_whole_naming_the_field_and_nothing_changes() {
    let f = platform();
    let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
    for (doc, field) in [
        ("greeting = \"\"", "greeting"),
        ("greeting = \"x\"\nsigned_with = \"NOT_SET\"", "signed_with"),
        ("{\"greeting\": 5}", "greeting"),
        ("greeting = \"x\"\nextra = 1", "extra"),
    ] {
        let response = block_on(live.serve(admin("PUT", "/_policy", doc), &f.services()));
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{doc}");
        let body = json_of(&response);
        assert_eq!(body["type"], "urn:edge-functions:problem:invalid-policy");
        assert!(
            body["detail"].as_str().unwrap().contains(field),
            "{doc}: {body}"
        );
    }
    let shown = block_on(live.serve(admin("GET", "/_policy", ""), &f.services()));
    assert_eq!(json_of(&shown)["stored_version"], 0);
    assert_eq!(greeting(&live, &f), "hello");
    assert!(f.store.inner().is_empty(), "nothing stored");
}

#[test]
fn restore_and_delete_are_new_versions() {
    let f = platform();
    let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
    for text in ["greeting = \"one\"", "greeting = \"two\""] {
        let r = block_on(live.serve(admin("PUT", "/_policy", text), &f.services()));
        assert_eq!(r.status(), StatusCode::OK);
    }
    let restored = block_on(live.serve(
        admin("POST", "/_policy/restore?version=1", ""),
        &f.services(),
    ));
    let body = json_of(&restored);
    assert_eq!(
        (body["version"].as_u64(), body["restored_from"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(greeting(&live, &f), "one");
    let text = block_on(live.serve(admin("GET", "/_policy/versions/2", ""), &f.services()));
    assert_eq!(text.body().as_ref(), b"greeting = \"two\"");
    let deleted = block_on(live.serve(admin("DELETE", "/_policy", ""), &f.services()));
    assert_eq!(json_of(&deleted)["version"], 4);
    assert_eq!(greeting(&live, &f), "hello");
    let unknown = block_on(live.serve(
        admin("POST", "/_policy/restore?version=9", ""),
        &f.services(),
    ));
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[test]
fn another_isolate_picks_a_version_up_within_its_refresh_interval() {
    let f = platform();
    let writer = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
    let reader = LivePolicy::<Greet>::new(base(), Duration::from_millis(500));
    assert_eq!(greeting(&reader, &f), "hello");
    block_on(writer.serve(
        admin("PUT", "/_policy", "greeting = \"new\""),
        &f.services(),
    ));
    f.clock.advance(Duration::from_millis(499));
    assert_eq!(greeting(&reader, &f), "hello", "checked 499 ms ago");
    f.clock.advance(Duration::from_millis(1));
    assert_eq!(greeting(&reader, &f), "new");
}

#[test]
fn a_version_that_does_not_build_here_is_shown_and_the_old_one_serves() {
    let f = platform();
    let writer = LivePolicy::<Greet>::new(base(), Duration::ZERO);
    let without_key = Config::new(Greet::DEFAULT_POLICY).with_secret(ADMIN_SECRET, TOKEN);
    let reader = LivePolicy::<Greet>::new(without_key, Duration::ZERO);
    let doc = "greeting = \"signed\"\nsigned_with = \"SIGNING_KEY\"";
    let put = block_on(writer.serve(admin("PUT", "/_policy", doc), &f.services()));
    assert_eq!(put.status(), StatusCode::OK);
    assert_eq!(greeting(&reader, &f), "hello");
    let health = block_on(reader.serve(request("GET", "/health", "", None), &f.services()));
    let policy = &json_of(&health)["policy"];
    assert_eq!(
        (
            policy["version"].as_u64(),
            policy["rejected"]["version"].as_u64()
        ),
        (Some(0), Some(1))
    );
    let logs = f.logs.lines().join("\n");
    assert!(logs.contains("does not build here"), "{logs}");
}

#[test]
fn the_endpoints_need_the_token_and_never_take_a_secret_value() {
    let f = platform();
    let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
    let anonymous = block_on(live.serve(
        request("PUT", "/_policy", "greeting = \"x\"", None),
        &f.services(),
    ));
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = block_on(live.serve(request("GET", "/_policy", "", Some("nope")), &f.services()));
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let off = LivePolicy::<Greet>::new(Config::new(Greet::DEFAULT_POLICY), DEFAULT_REFRESH);
    let disabled = block_on(off.serve(admin("GET", "/_policy", ""), &f.services()));
    assert_eq!(disabled.status(), StatusCode::FORBIDDEN);
    let leak = "greeting = \"signing-key-value\"";
    let refused = block_on(live.serve(admin("PUT", "/_policy", leak), &f.services()));
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = String::from_utf8_lossy(refused.body()).into_owned();
    assert!(body.contains("secret-in-policy") && !body.contains("signing-key-value"));
    assert!(!f.logs.lines().join("\n").contains("signing-key-value"));
    assert!(f.store.inner().is_empty());
}

#[test]
fn if_match_refuses_a_change_based_on_an_old_version() {
    let f = platform();
    let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
    block_on(live.serve(admin("PUT", "/_policy", "greeting = \"a\""), &f.services()));
    let mut stale = admin("PUT", "/_policy", "greeting = \"b\"");
    stale
        .headers_mut()
        .insert(http::header::IF_MATCH, HeaderValue::from_static("\"0\""));
    let response = block_on(live.serve(stale, &f.services()));
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    let mut fresh = admin("PUT", "/_policy", "greeting = \"b\"");
    fresh
        .headers_mut()
        .insert(http::header::IF_MATCH, HeaderValue::from_static("\"1\""));
    assert_eq!(
        block_on(live.serve(fresh, &f.services())).status(),
        StatusCode::OK
    );
    assert_eq!(greeting(&live, &f), "b");
}

#[test]
fn old_versions_are_forgotten_with_their_texts() {
    let f = platform();
    let live = LivePolicy::<Greet>::new(base(), DEFAULT_REFRESH);
    for n in 1..=KEPT_VERSIONS + 5 {
        let doc = format!("greeting = \"v{n}\"");
        let r = block_on(live.serve(admin("PUT", "/_policy", &doc), &f.services()));
        assert_eq!(r.status(), StatusCode::OK);
    }
    // The head and one text per kept version.
    assert_eq!(f.store.inner().len(), 1 + KEPT_VERSIONS);
    let gone = block_on(live.serve(admin("GET", "/_policy/versions/5", ""), &f.services()));
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let kept = block_on(live.serve(admin("GET", "/_policy/versions/6", ""), &f.services()));
    assert_eq!(kept.body().as_ref(), b"greeting = \"v6\"");
}

#[test]
fn a_store_that_is_down_keeps_the_version_in_effect() {
    let f = platform();
    let live = LivePolicy::<Greet>::new(base(), Duration::ZERO);
    block_on(live.serve(
        admin("PUT", "/_policy", "greeting = \"kept\""),
        &f.services(),
    ));
    f.store.set_available(false);
    assert_eq!(greeting(&live, &f), "kept");
    let put = block_on(live.serve(admin("PUT", "/_policy", "greeting = \"x\""), &f.services()));
    assert_eq!(put.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(greeting(&live, &f), "kept");
}

#[test]
fn a_misconfigured_deployment_can_be_fixed_by_a_put() {
    let f = platform();
    let broken = base().with_var(POLICY_VARIABLE, "greeting = \"\"");
    let live = LivePolicy::<Greet>::new(broken, DEFAULT_REFRESH);
    let before = block_on(live.serve(request("GET", "/", "", None), &f.services()));
    assert_eq!(before.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let put = block_on(live.serve(
        admin("PUT", "/_policy", "greeting = \"fixed\""),
        &f.services(),
    ));
    assert_eq!(put.status(), StatusCode::OK);
    assert_eq!(greeting(&live, &f), "fixed");
}

#[test]
fn refresh_intervals_from_the_variable() {
    let of = |v| LivePolicy::<Greet>::refresh_from(v);
    assert_eq!(of(None), (DEFAULT_REFRESH, None));
    assert_eq!(of(Some("0")), (Duration::ZERO, None));
    assert_eq!(of(Some("250ms")), (Duration::from_millis(250), None));
    assert!(of(Some("soon")).1.unwrap().contains(REFRESH_VARIABLE));
}
