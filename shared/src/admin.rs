//! One guard for every function's admin endpoints, so that each answers
//! alike: without its admin secret configured the endpoints are off (`403
//! admin-disabled`, naming the secret); without a bearer token, or with
//! another one, `401` with an RFC 6750 challenge. The token is compared in
//! constant time and never echoed.

use http::StatusCode;

use crate::model::Request;
use crate::policy::{Config, Secret};
use crate::problem::Problem;

/// A function's admin token, or its absence.
#[derive(Debug, Clone)]
pub struct AdminGuard {
    secret: Option<Secret>,
    /// The secret's name, for the `admin-disabled` detail.
    name: String,
    /// The realm of the challenge (the function's name).
    realm: &'static str,
}

impl AdminGuard {
    /// The guard of the secret named `name` (none: the policy names no
    /// admin secret, so the endpoints are off), challenging in `realm`.
    pub fn new(config: &Config, realm: &'static str, name: Option<&str>) -> Self {
        AdminGuard {
            secret: name
                .and_then(|n| config.secret(n))
                .filter(|s| !s.expose().is_empty())
                .cloned(),
            name: name.unwrap_or("(none named)").to_owned(),
            realm,
        }
    }

    /// Whether a token is configured.
    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }

    /// `Ok` when `req` carries the admin bearer token; `what` says what
    /// needed it (`"resetting a counter"`).
    pub fn check(&self, req: &Request, what: &str) -> Result<(), Problem> {
        match &self.secret {
            Some(secret) => Problem::require_bearer(
                req,
                secret,
                self.realm,
                &format!("{what} needs the admin bearer token"),
            ),
            None => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "admin-disabled",
                "Admin endpoints disabled",
            )
            .with_detail(format!(
                "{what} is off: the admin token secret {} is not set",
                self.name
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>) -> Request {
        let mut builder = http::Request::builder().uri("/admin");
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        builder.body(Default::default()).unwrap()
    }

    #[test]
    fn off_without_a_secret_and_a_challenge_without_the_token() {
        let config = Config::new("").with_secret("ADMIN", "s3cret-token");
        let on = AdminGuard::new(&config, "fn", Some("ADMIN"));
        assert!(on.check(&req(Some("Bearer s3cret-token")), "x").is_ok());
        let wrong = on.check(&req(Some("Bearer nope")), "x").unwrap_err();
        assert_eq!(
            (wrong.status().as_u16(), wrong.kind()),
            (401, "unauthorized")
        );
        let missing = on.check(&req(None), "resetting").unwrap_err();
        assert_eq!(
            missing.detail(),
            Some("resetting needs the admin bearer token")
        );
        for off in [
            AdminGuard::new(&config, "fn", Some("OTHER")),
            AdminGuard::new(&config, "fn", None),
        ] {
            let problem = off
                .check(&req(Some("Bearer s3cret-token")), "x")
                .unwrap_err();
            assert_eq!(
                (problem.status().as_u16(), problem.kind()),
                (403, "admin-disabled")
            );
            assert!(!problem.detail().unwrap().contains("s3cret"));
        }
    }
}
