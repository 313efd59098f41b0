//! Token verification against a JWK set the caller holds: the function's
//! checks (signature, algorithm allowlist, `exp`/`nbf`/`iat`, issuer,
//! audience, required claims) without routes, providers or fetching. Used
//! by the browser and JavaScript package (`JwtVerifier`), where a page or a
//! service worker verifies a token it was given.
//!
//! A refusal is the [`Problem`] the function answers with: status 401, type
//! `urn:edge-functions:problem:{TokenError::code}`, the same detail.
//!
//! # Examples
//!
//! ```
//! use auth_check::verifier::{JwksVerifier, VerifierOptions};
//! use edge_core::Timestamp;
//!
//! let jwks = serde_json::json!({ "keys": [] });
//! let verifier = JwksVerifier::new(&jwks, VerifierOptions::default()).unwrap();
//! let refused = verifier.verify("not.a.token", Timestamp::from_millis(0)).unwrap_err();
//! assert_eq!(refused.kind(), "malformed-token");
//! ```

use std::time::Duration;

use edge_core::{Problem, Timestamp};
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::claims::{self, ClaimRules, Claims};
use crate::keys::{Algorithm, Key, parse_jwks_value};
use crate::token::{DEFAULT_MAX_TOKEN_BYTES, TokenError, UnverifiedToken};

/// What a verifier checks besides the signature. Field names as JavaScript
/// spells them (`maxAge`, …); durations in seconds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifierOptions {
    /// `iss` must equal this.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `aud` must contain this (or one of these).
    #[serde(default)]
    pub audience: Option<OneOrMany>,
    /// The algorithms accepted (default: every asymmetric one; a JWK set
    /// never carries symmetric keys).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Clock skew allowed, seconds (default 60).
    #[serde(default)]
    pub leeway: Option<u64>,
    /// The oldest `iat` accepted, seconds.
    #[serde(default)]
    pub max_age: Option<u64>,
    /// Claims that must be present.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// The longest token accepted, bytes (default 8192).
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// Verifies tokens against the keys of one JWK set.
#[derive(Debug)]
pub struct JwksVerifier {
    keys: Vec<Key>,
    skipped: Vec<(Option<String>, String)>,
    allowed: Vec<Algorithm>,
    rules: ClaimRules,
    max_token_bytes: usize,
}

/// A configuration error naming the field and the bad value.
fn invalid(field: &str, reason: impl std::fmt::Display) -> Problem {
    Problem::misconfigured().with_detail(format!("invalid {field}: {reason}"))
}

impl JwksVerifier {
    /// A verifier of the keys in `jwks` (`{"keys": [...]}`, RFC 7517 §5).
    /// Keys that cannot be used (symmetric, weak, unknown types) are left
    /// out and listed by [`JwksVerifier::skipped`]; a document that is not
    /// a JWK set, or bad options, are a `misconfigured` problem naming why.
    pub fn new(jwks: &Value, options: VerifierOptions) -> Result<JwksVerifier, Problem> {
        let set = parse_jwks_value(jwks).map_err(|e| invalid("jwks", e))?;
        let allowed = match &options.algorithms {
            None => Algorithm::ALL
                .into_iter()
                .filter(|a| !a.is_hmac())
                .collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    Algorithm::from_name(name).ok_or_else(|| {
                        invalid(
                            "algorithms",
                            format!("{name:?} is not one of {}", Algorithm::names()),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if allowed.is_empty() {
            return Err(invalid("algorithms", "the list is empty"));
        }
        let max_token_bytes = options.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
        if max_token_bytes < 256 {
            return Err(invalid(
                "maxTokenBytes",
                format!("{max_token_bytes} is below 256"),
            ));
        }
        let defaults = ClaimRules::default();
        let rules = ClaimRules {
            issuer: options.issuer,
            audiences: match options.audience {
                None => Vec::new(),
                Some(OneOrMany::One(a)) => vec![a],
                Some(OneOrMany::Many(a)) => a,
            },
            leeway: options.leeway.map_or(defaults.leeway, Duration::from_secs),
            required: options.required_claims,
            max_age: options.max_age.map(Duration::from_secs),
            require_exp: defaults.require_exp,
        };
        Ok(JwksVerifier {
            keys: set.keys,
            skipped: set
                .skipped
                .into_iter()
                .map(|(kid, e)| (kid, e.to_string()))
                .collect(),
            allowed,
            rules,
            max_token_bytes,
        })
    }

    /// How many usable keys the set had.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The keys left out of the set: `kid` (if any) and why.
    pub fn skipped(&self) -> &[(Option<String>, String)] {
        &self.skipped
    }

    /// The token's claims if it verifies at `now`; else the function's
    /// refusal (401, type the [`TokenError::code`], the same detail).
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, Problem> {
        let unverified =
            UnverifiedToken::decode(token, self.max_token_bytes).map_err(|e| refusal(&e))?;
        let claims = unverified
            .verify_with(&self.keys, &self.allowed)
            .map_err(|e| refusal(&e))?;
        claims::check(&claims, &self.rules, now).map_err(|e| refusal(&e))?;
        Ok(claims)
    }
}

/// The problem the function answers a refused token with (without its
/// `WWW-Authenticate` challenge).
pub fn refusal(e: &TokenError) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, e.code(), "Unauthorized").with_detail(e.description())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_options_name_the_field() {
        let jwks = serde_json::json!({ "keys": [] });
        let options = VerifierOptions {
            algorithms: Some(vec!["none".into()]),
            ..VerifierOptions::default()
        };
        let e = JwksVerifier::new(&jwks, options).unwrap_err();
        assert!(e.detail().unwrap_or("").contains("algorithms"), "{e:?}");
        let e = JwksVerifier::new(&serde_json::json!([]), VerifierOptions::default()).unwrap_err();
        assert!(e.detail().unwrap_or("").contains("jwks"), "{e:?}");
    }

    #[test]
    fn refusals_are_the_functions_problems() {
        let verifier = JwksVerifier::new(
            &serde_json::json!({ "keys": [] }),
            VerifierOptions::default(),
        )
        .unwrap();
        let e = verifier
            .verify("eyJhbGciOiJub25lIn0.e30.", Timestamp::from_millis(0))
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(e.kind(), "unsupported-alg");
    }
}
