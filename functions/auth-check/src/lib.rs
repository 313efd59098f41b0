//! Auth check: JWT verification (RS256/384/512, PS256/384/512, ES256, ES384, ES512, EdDSA, HS256/384/512)
//! against static keys or JWKS (by URL or OIDC discovery, several issuers),
//! RBAC per route on `scope` and `roles`, verified claims forwarded to the
//! origin as headers (client copies stripped first, always), and API keys
//! stored only as keyed hashes, with rotation.
//!
//! | request | answer |
//! |---|---|
//! | a route whose rule is `public` | passed on (claim headers stripped) |
//! | no credential on an authenticated route | `401`, `WWW-Authenticate: Bearer realm=…` |
//! | a malformed `Authorization` header | `400`, `error="invalid_request"` |
//! | a bad, expired, foreign or tampered token | `401`, `error="invalid_token", error_description=…` |
//! | valid, but lacking the route's role or scope | `403`, `error="insufficient_scope", scope=…` |
//! | the provider's keys cannot be fetched and none are cached | `503` with `Retry-After` |
//! | valid and allowed | the origin's answer (or `200` with the identity), claims in headers |
//! | `{admin_path}/keys…` | API-key management (bearer admin secret) |
//!
//! Every refusal is a problem+json body; none repeats the token, a key or a
//! secret.

pub mod apikeys;
pub mod claims;
mod jwks;
pub mod keys;
pub mod policy;
mod roca;
mod signature;
pub mod token;
pub mod verifier;

#[cfg(all(feature = "browser", target_arch = "wasm32"))]
mod browser;
#[cfg(all(feature = "spin", target_arch = "wasm32"))]
mod spin;
#[cfg(all(feature = "workers", target_arch = "wasm32"))]
mod workers;

use async_trait::async_trait;
use edge_core::function::Context;
use edge_core::model::json_response;
use edge_core::origin::OriginClient;
use edge_core::pipeline::{self, Endpoint, Filter, Principal};
use edge_core::{Config, ConfigError, EdgeFunction, Problem, Request, Response};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::json;

pub use jwks::{KeysUnavailable, ProviderKeys, max_age};

use crate::apikeys::{ApiKeyError, ApiKeys};
use crate::claims::{ClaimRules, Claims};
use crate::policy::{Access, AuthPolicy, CredentialKind, Forward, RoutePattern, Rule, Section};
use crate::token::{TokenError, UnverifiedToken};

/// The auth-check function.
pub struct AuthCheck {
    section: Section,
    rules: Vec<(RoutePattern, Rule)>,
    default_rule: Rule,
    providers: Vec<(ProviderKeys, ClaimRules)>,
    api_keys: Option<ApiKeys>,
    strip: Vec<HeaderName>,
    origin: Option<OriginClient>,
}

/// Who a request was verified to come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The credential that proved it.
    pub kind: CredentialKind,
    /// The token's `sub`.
    pub sub: Option<String>,
    /// The token's issuer.
    pub issuer: Option<String>,
    /// The API key's id.
    pub api_key_id: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Granted roles.
    pub roles: Vec<String>,
    /// Further claims to forward: header → value.
    pub extra: Vec<(HeaderName, String)>,
}

#[async_trait(?Send)]
impl EdgeFunction for AuthCheck {
    const NAME: &'static str = "auth-check";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DEFAULT_POLICY: &'static str = include_str!("../policy.toml");
    const SECRETS: &'static [&'static str] = &[
        "AUTH_API_KEY_HASH_KEY",
        "AUTH_ADMIN_TOKEN",
        policy::HMAC_SECRET,
    ];

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        let policy: AuthPolicy = config.policy()?;
        config.check_outbound(policy.outbound())?;
        let section = policy.auth;
        let rules = section
            .rules
            .iter()
            .filter_map(|r| RoutePattern::parse(&r.route).ok().map(|p| (p, r.clone())))
            .collect();
        let default_rule = Rule {
            route: "/**".into(),
            access: section.default,
            roles: Vec::new(),
            scopes: Vec::new(),
            credentials: vec![CredentialKind::Jwt, CredentialKind::ApiKey],
        };
        let mut providers = Vec::new();
        for (i, provider) in section.providers.iter().enumerate() {
            let rules = ClaimRules {
                issuer: Some(provider.issuer.clone()),
                audiences: provider.audiences.clone(),
                leeway: section.leeway.0,
                required: provider.required_claims.clone(),
                max_age: provider.max_age.map(|d| d.0),
                ..ClaimRules::default()
            };
            providers.push((ProviderKeys::new(provider, i, config)?, rules));
        }
        let api_keys = section
            .api_keys
            .as_ref()
            .map(|s| ApiKeys::from_section(s, config))
            .transpose()?;
        Ok(AuthCheck {
            rules,
            default_rule,
            providers,
            api_keys,
            strip: section.forward.header_names(),
            origin: section.origin.clone().map(OriginClient::with_defaults),
            section,
        })
    }

    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let path = req.uri().path().to_owned();
        if let Some(rest) = path.strip_prefix(self.section.admin_path.as_str())
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return match &self.api_keys {
                Some(keys) => {
                    let rest = rest.to_owned();
                    keys.handle_admin(req, &rest, ctx).await
                }
                None => Err(Problem::not_found(&path)),
            };
        }
        match &self.origin {
            Some(origin) => pipeline::run(&[self], req, origin, ctx).await,
            None => {
                let answer = IdentityAnswer(&self.section.forward);
                pipeline::run(&[self], req, &answer, ctx).await
            }
        }
    }

    fn origins(&self) -> Vec<&OriginClient> {
        self.origin.iter().collect()
    }
}

/// The auth check as a stage of a chain: strips client copies of the
/// claim headers, verifies the credential the route's rule asks for, and
/// leaves the [`Identity`] (and the core's [`Principal`]) in the request's
/// extensions. The claims also go on as headers, for the origin.
#[async_trait(?Send)]
impl Filter for AuthCheck {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn on_request(
        &self,
        head: &mut http::request::Parts,
        ctx: &Context<'_>,
    ) -> Result<(), Problem> {
        for name in &self.strip {
            head.headers.remove(name);
        }
        let rule = self.rule_for(head);
        match rule.access {
            Access::Deny => Err(
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                    .with_detail("this route is closed"),
            ),
            Access::Public => Ok(()),
            Access::Authenticated => {
                let identity = self.authenticate(&head.headers, rule, ctx).await?;
                self.authorize(&identity, rule)?;
                ctx.note(
                    "authenticated",
                    json!({
                        "credential": kind_name(identity.kind),
                        "issuer": identity.issuer,
                        "api_key_id": identity.api_key_id,
                    }),
                );
                identity_headers(&self.section.forward, &identity, &mut head.headers);
                if !self.section.forward.credentials {
                    head.headers.remove(http::header::AUTHORIZATION);
                    if let Some(keys) = &self.api_keys {
                        head.headers.remove(keys.header());
                    }
                }
                head.extensions.insert(identity.principal());
                head.extensions.insert(identity);
                Ok(())
            }
        }
    }
}

/// The standalone function's answer without an origin: `200` with the
/// verified identity, its claims also as headers.
struct IdentityAnswer<'a>(&'a Forward);

#[async_trait(?Send)]
impl Endpoint for IdentityAnswer<'_> {
    async fn call(&self, req: Request, _ctx: &Context<'_>) -> Result<Response, Problem> {
        let identity = req.extensions().get::<Identity>();
        let body = match identity {
            None => json!({ "authenticated": false, "access": "public" }),
            Some(id) => json!({
                "authenticated": true,
                "credential": kind_name(id.kind),
                "sub": id.sub,
                "issuer": id.issuer,
                "api_key_id": id.api_key_id,
                "scopes": id.scopes,
                "roles": id.roles,
            }),
        };
        let mut response = json_response(StatusCode::OK, &body);
        if let Some(identity) = identity {
            identity_headers(self.0, identity, response.headers_mut());
        }
        Ok(response)
    }
}

impl Identity {
    /// What later stages of a chain read of this identity.
    pub fn principal(&self) -> Principal {
        Principal {
            credential: kind_name(self.kind),
            sub: self.sub.clone(),
            issuer: self.issuer.clone(),
            api_key_id: self.api_key_id.clone(),
            scopes: self.scopes.clone(),
            roles: self.roles.clone(),
        }
    }
}

fn kind_name(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::Jwt => "jwt",
        CredentialKind::ApiKey => "api_key",
    }
}

impl AuthCheck {
    /// The first rule matching the request, else the default.
    fn rule_for(&self, head: &http::request::Parts) -> &Rule {
        self.rules
            .iter()
            .find(|(pattern, _)| pattern.matches(&head.method, head.uri.path()))
            .map_or(&self.default_rule, |(_, rule)| rule)
    }

    /// Verifies the request's credential: a bearer JWT, else an API key.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        rule: &Rule,
        ctx: &Context<'_>,
    ) -> Result<Identity, Problem> {
        let takes = |kind| rule.credentials.contains(&kind);
        let authorization = headers.get_all(http::header::AUTHORIZATION);
        if authorization.iter().count() > 1 {
            return Err(self.invalid_request("more than one Authorization header"));
        }
        let bearer = authorization
            .iter()
            .next()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if let Some(token) = bearer {
            if token.is_empty() {
                return Err(self.invalid_request("the bearer token is empty"));
            }
            if !takes(CredentialKind::Jwt) {
                return Err(self.invalid_request("this route takes an API key, not a bearer token"));
            }
            return self.verify_jwt(token, ctx).await;
        }
        if let Some(keys) = &self.api_keys
            && let Some(presented) = keys.presented(headers)
        {
            if !takes(CredentialKind::ApiKey) {
                return Err(self.invalid_request("this route takes a bearer token, not an API key"));
            }
            return match keys.authenticate(presented, ctx).await {
                Ok(key) => Ok(Identity {
                    kind: CredentialKind::ApiKey,
                    sub: None,
                    issuer: None,
                    api_key_id: Some(key.id),
                    scopes: key.scopes,
                    roles: Vec::new(),
                    extra: Vec::new(),
                }),
                Err(ApiKeyError::Store(e)) => {
                    ctx.log().warn(
                        "api key store unavailable",
                        json!({ "error": e.to_string() }),
                    );
                    Err(Problem::store_unavailable(1))
                }
                Err(e) => {
                    ctx.log()
                        .info("api key refused", json!({ "reason": e.code() }));
                    Err(self.challenge(
                        StatusCode::UNAUTHORIZED,
                        "invalid-api-key",
                        "invalid_token",
                        e.description(),
                    ))
                }
            };
        }
        if headers.contains_key(http::header::AUTHORIZATION) {
            return Err(self.invalid_request(
                "the Authorization header must be `Bearer <token>` (or an API key)",
            ));
        }
        let wanted = match (takes(CredentialKind::Jwt), takes(CredentialKind::ApiKey)) {
            (true, true) if self.api_keys.is_some() => "a bearer token or an API key is required",
            (false, true) => "an API key is required",
            _ => "a bearer token is required",
        };
        let challenge = format!("Bearer realm=\"{}\"", self.section.realm);
        Err(
            Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
                .with_detail(wanted)
                .with_header(http::header::WWW_AUTHENTICATE, header_value(&challenge)),
        )
    }

    async fn verify_jwt(&self, token: &str, ctx: &Context<'_>) -> Result<Identity, Problem> {
        let refuse = |e: TokenError| {
            ctx.log()
                .info("token refused", json!({ "reason": e.code() }));
            self.challenge(
                StatusCode::UNAUTHORIZED,
                e.code(),
                "invalid_token",
                &e.description(),
            )
        };
        let unverified =
            UnverifiedToken::decode(token, self.section.max_token_bytes).map_err(refuse)?;
        let issuer = unverified
            .unverified_claims()
            .get("iss")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let Some((provider, rules)) = self.providers.iter().find(|(p, _)| p.issuer() == issuer)
        else {
            return Err(refuse(TokenError::WrongIssuer));
        };
        let keys = provider
            .keys(unverified.header.kid.as_deref(), ctx)
            .await
            .map_err(|e| {
                ctx.log().warn(
                    "provider keys unavailable",
                    json!({ "error": e.to_string() }),
                );
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "keys-unavailable",
                    "Verification keys unavailable",
                )
                .with_detail("the identity provider's keys cannot be fetched right now")
                .with_header(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(e.retry_after.as_secs().max(1)),
                )
            })?;
        let candidates = unverified
            .candidates(&keys, provider.allowed())
            .map_err(refuse)?;
        let verified = signature::verify_any(
            &candidates,
            unverified.header.alg,
            unverified.signing_input().as_bytes(),
            unverified.signature(),
            ctx,
        )
        .await;
        let claims = unverified.accept(verified).map_err(refuse)?;
        claims::check(&claims, rules, ctx.clock().now()).map_err(refuse)?;
        Ok(self.identity(&claims, &issuer))
    }

    fn identity(&self, claims: &Claims, issuer: &str) -> Identity {
        let extra = self
            .section
            .forward
            .claims
            .iter()
            .filter_map(|(claim, header)| {
                let value = claims.get(claim)?;
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                Some((HeaderName::try_from(header.as_str()).ok()?, text))
            })
            .collect();
        Identity {
            kind: CredentialKind::Jwt,
            sub: claims.sub().map(str::to_owned),
            issuer: Some(issuer.to_owned()),
            api_key_id: None,
            scopes: claims.scopes(),
            roles: claims.roles(),
            extra,
        }
    }

    /// RBAC: at least one of the rule's roles, all of its scopes.
    fn authorize(&self, identity: &Identity, rule: &Rule) -> Result<(), Problem> {
        let has_role =
            rule.roles.is_empty() || rule.roles.iter().any(|r| identity.roles.contains(r));
        let missing: Vec<&str> = rule
            .scopes
            .iter()
            .filter(|s| !identity.scopes.contains(s))
            .map(String::as_str)
            .collect();
        if has_role && missing.is_empty() {
            return Ok(());
        }
        let detail = if has_role {
            format!("this route needs the scope(s) {}", missing.join(" "))
        } else {
            format!(
                "this route needs one of the roles {}",
                rule.roles.join(", ")
            )
        };
        let mut challenge = format!(
            "Bearer realm=\"{}\", error=\"insufficient_scope\", error_description=\"{detail}\"",
            self.section.realm
        );
        if !rule.scopes.is_empty() {
            challenge.push_str(&format!(", scope=\"{}\"", rule.scopes.join(" ")));
        }
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "insufficient-scope",
            "Insufficient scope",
        )
        .with_detail(detail)
        .with_header(http::header::WWW_AUTHENTICATE, header_value(&challenge)))
    }

    fn invalid_request(&self, detail: &str) -> Problem {
        self.challenge(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "invalid_request",
            detail,
        )
    }

    /// A refusal with an RFC 6750 challenge (`error_description` is made
    /// of safe text by construction: [`TokenError::description`]).
    fn challenge(
        &self,
        status: StatusCode,
        kind: &'static str,
        error: &str,
        detail: &str,
    ) -> Problem {
        let description: String = detail
            .chars()
            .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
            .collect();
        let challenge = format!(
            "Bearer realm=\"{}\", error=\"{error}\", error_description=\"{description}\"",
            self.section.realm
        );
        let title = match status {
            StatusCode::BAD_REQUEST => "Invalid request",
            _ => "Unauthorized",
        };
        Problem::new(status, kind, title)
            .with_detail(detail)
            .with_header(http::header::WWW_AUTHENTICATE, header_value(&challenge))
    }
}

/// The forwarded headers for `identity` (each value made header-safe).
fn identity_headers(forward: &Forward, identity: &Identity, headers: &mut HeaderMap) {
    let mut set = |name: &str, value: &str| {
        if let (false, Ok(name)) = (name.is_empty(), HeaderName::try_from(name)) {
            headers.insert(name, header_value(value));
        }
    };
    set(&forward.credential, kind_name(identity.kind));
    if let Some(sub) = &identity.sub {
        set(&forward.sub, sub);
    }
    if let Some(issuer) = &identity.issuer {
        set(&forward.issuer, issuer);
    }
    if let Some(id) = &identity.api_key_id {
        set(&forward.api_key_id, id);
    }
    set(&forward.scopes, &identity.scopes.join(" "));
    set(&forward.roles, &identity.roles.join(","));
    for (name, value) in &identity.extra {
        headers.insert(name.clone(), header_value(value));
    }
}

/// A header value from any text: bytes outside visible ASCII and space
/// (controls, non-ASCII) are percent-encoded.
fn header_value(text: &str) -> HeaderValue {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_made_safe() {
        assert_eq!(header_value("alice"), "alice");
        assert_eq!(header_value("a\r\nb"), "a%0D%0Ab");
        assert_eq!(header_value("zoë"), "zo%C3%AB");
    }
}
