//! The counter: an exact counter per key on the platform's atomic store.
//!
//! It exists as the foundation's proof that one portable function — policy,
//! store, problems, health, logs — runs the same on every runtime. Routes,
//! relative to the function's mount:
//!
//! | request | answer |
//! |---|---|
//! | `GET /counters/{key}` | `200 {"key", "value"}` (0 when never counted) |
//! | `POST /counters/{key}?by=N` | adds `N` (default `step`, 1..=`max_step`), `200 {"key", "value"}` |
//! | `DELETE /counters/{key}` | resets, `204`; needs `Authorization: Bearer <admin token>` |
//! | `GET /health` | `200` / `503` `application/health+json` |
//!
//! When the store is down every counter request answers `503` problem+json
//! with `Retry-After` (the counter fails closed: it cannot count without
//! its store) and `/health` reports the store as failing.

use async_trait::async_trait;
use edge_core::admin::AdminGuard;
use edge_core::model::{empty_response, json_response, path_segments, query_param};
use edge_core::policy::{Policy, PolicyDuration, Validator};
use edge_core::{Config, ConfigError, Context, EdgeFunction, Problem, Request, Response};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

#[cfg(feature = "browser")]
mod browser;
#[cfg(feature = "spin")]
mod spin;
#[cfg(feature = "workers")]
mod workers;

/// The policy document (`policy.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterPolicy {
    /// The `[counter]` table.
    pub counter: CounterSection,
}

/// The `[counter]` table of the policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterSection {
    /// What one POST adds without `?by=`.
    pub step: i64,
    /// The largest `?by=`.
    pub max_step: i64,
    /// The longest key.
    pub max_key_length: usize,
    /// The secret authorizing resets; none disables them.
    #[serde(default)]
    pub admin_token_secret: Option<String>,
    /// `Retry-After` when the store is down.
    pub retry_after: PolicyDuration,
}

impl Policy for CounterPolicy {
    fn validate(&self, v: &mut Validator) {
        let c = &self.counter;
        v.field("counter", |v| {
            v.check(c.max_step >= 1, "max_step", c.max_step, "must be >= 1");
            v.check(
                (1..=c.max_step.max(1)).contains(&c.step),
                "step",
                c.step,
                &format!("must be in 1..={}", c.max_step),
            );
            v.check(
                (1..=512).contains(&c.max_key_length),
                "max_key_length",
                c.max_key_length,
                "must be in 1..=512",
            );
            v.check(
                c.retry_after.0.as_secs() >= 1,
                "retry_after",
                c.retry_after,
                "must be >= 1s",
            );
        });
    }
}

/// The counter function.
#[derive(Debug)]
pub struct Counter {
    policy: CounterSection,
    admin: AdminGuard,
}

/// The name of the only secret the counter reads.
pub const ADMIN_TOKEN_SECRET: &str = "COUNTER_ADMIN_TOKEN";

#[async_trait(?Send)]
impl EdgeFunction for Counter {
    const NAME: &'static str = "counter";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DEFAULT_POLICY: &'static str = include_str!("../policy.toml");
    const SECRETS: &'static [&'static str] = &[ADMIN_TOKEN_SECRET];

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        let policy = config.policy::<CounterPolicy>()?.counter;
        if let Some(name) = &policy.admin_token_secret {
            config.require_secret("counter.admin_token_secret", name)?;
        }
        let admin = AdminGuard::new(config, "counter", policy.admin_token_secret.as_deref());
        Ok(Counter { policy, admin })
    }

    fn route(&self, req: &Request) -> String {
        match path_segments(req).as_slice() {
            ["counters", _] => "/counters/{key}".to_owned(),
            _ => edge_core::function::default_route(req.uri().path()),
        }
    }

    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let key = match path_segments(&req).as_slice() {
            ["counters", key] => self.valid_key(key)?,
            ["counters"] => {
                return Err(Problem::bad_request(
                    "invalid-key",
                    "the path needs a key: /counters/{key}",
                ));
            }
            _ => return Err(Problem::not_found(req.uri().path())),
        };
        let store_key = format!("counter:{key}");
        let delta = match *req.method() {
            Method::GET => 0,
            Method::POST => self.step(&req)?,
            Method::DELETE => {
                self.authorize_reset(&req)?;
                ctx.store()
                    .delete(&store_key)
                    .await
                    .map_err(|e| self.store_down(ctx, &e))?;
                ctx.log().info("counter reset", json!({ "key": key }));
                return Ok(empty_response(StatusCode::NO_CONTENT));
            }
            ref other => {
                return Err(Problem::method_not_allowed(
                    other,
                    &[Method::GET, Method::POST, Method::DELETE],
                ));
            }
        };
        let value = ctx
            .store()
            .increment(&store_key, delta)
            .await
            .map_err(|e| self.store_down(ctx, &e))?;
        Ok(json_response(
            StatusCode::OK,
            &json!({ "key": key, "value": value }),
        ))
    }
}

impl Counter {
    fn valid_key<'a>(&self, key: &'a str) -> Result<&'a str, Problem> {
        let max = self.policy.max_key_length;
        let ok = (1..=max).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if ok {
            Ok(key)
        } else {
            let shown: String = key.chars().take(80).collect();
            Err(Problem::bad_request(
                "invalid-key",
                format!("key {shown:?} must be 1..={max} characters of [A-Za-z0-9_.-]"),
            )
            .with_extension("field", "key"))
        }
    }

    fn step(&self, req: &Request) -> Result<i64, Problem> {
        let Some(raw) = query_param(req, "by") else {
            return Ok(self.policy.step);
        };
        let max = self.policy.max_step;
        match raw.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => {
                let shown: String = raw.chars().take(40).collect();
                Err(Problem::bad_request(
                    "invalid-parameter",
                    format!("by={shown:?} must be an integer in 1..={max}"),
                )
                .with_extension("field", "by"))
            }
        }
    }

    fn authorize_reset(&self, req: &Request) -> Result<(), Problem> {
        self.admin.check(req, "resetting a counter")
    }

    fn store_down(&self, ctx: &Context<'_>, error: &edge_core::StoreError) -> Problem {
        ctx.log().warn(
            "store unavailable; failing closed",
            json!({ "error": error.to_string() }),
        );
        Problem::store_unavailable(self.policy.retry_after.0.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(policy: &str) -> Config {
        Config::new(Counter::DEFAULT_POLICY)
            .with_var("POLICY", policy)
            .with_secret(ADMIN_TOKEN_SECRET, "s3cret-token")
    }

    #[test]
    fn the_built_in_policy_is_valid() {
        let counter = Counter::from_config(&config("")).unwrap();
        assert_eq!(counter.policy.step, 1);
        assert!(counter.admin.enabled());
    }

    #[test]
    fn invalid_policies_name_field_and_value() {
        let policy = Counter::DEFAULT_POLICY.replace("step = 1\n", "step = 0\n");
        let err = Counter::from_config(&config(&policy)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "policy: counter.step: 0 must be in 1..=1000"
        );
        let policy = Counter::DEFAULT_POLICY.replace("\"5s\"", "\"0s\"");
        let err = Counter::from_config(&config(&policy)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "policy: counter.retry_after: \"0s\" must be >= 1s"
        );
        let err = Counter::from_config(&config("[counter]\nstep = 1\nmistake = 2")).unwrap_err();
        assert!(err.to_string().contains("unknown field `mistake`"), "{err}");
    }

    #[test]
    fn a_missing_admin_secret_is_a_start_error_naming_it() {
        let err = Counter::from_config(&Config::new(Counter::DEFAULT_POLICY)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "counter.admin_token_secret: secret \"COUNTER_ADMIN_TOKEN\" is not set"
        );
    }
}
