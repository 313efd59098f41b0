//! The auth-check policy: identity providers (issuers, audiences, keys),
//! route rules (RBAC), what is forwarded to the origin, and API keys; and
//! its validation, so that a bad policy stops the function at start with
//! the field and the value named.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use edge_core::origin::Origin;
use edge_core::policy::{Policy, PolicyDuration, Validator};
use http::HeaderName;
use serde::Deserialize;

use crate::apikeys::ApiKeysSection;
use crate::keys::Algorithm;

/// The platform secret holding a static HMAC key (HS256; HS384 and HS512
/// when it is long enough: 48 and 64 bytes).
pub const HMAC_SECRET: &str = "AUTH_HS256_SECRET";

/// The largest token the function reads, whatever the policy says.
pub const MAX_TOKEN_BYTES_LIMIT: usize = 64 * 1024;

/// The policy document (`policy.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthPolicy {
    /// The `[auth]` table.
    pub auth: Section,
}

impl AuthPolicy {
    /// The URLs the function calls, each with its field path, for
    /// `Config::check_outbound`: its origin, each provider's issuer when
    /// it discovers its keys there (`{issuer}/.well-known/…`) and its
    /// `jwks_url`. (A `jwks_uri` discovery returns is known only then.)
    pub fn outbound(&self) -> Vec<(String, String)> {
        let section = &self.auth;
        let mut urls: Vec<(String, String)> = section
            .origin
            .iter()
            .map(|origin| ("auth.origin".to_owned(), origin.to_string()))
            .collect();
        for (i, provider) in section.providers.iter().enumerate() {
            if provider.discovery {
                urls.push((
                    format!("auth.providers[{i}].issuer"),
                    provider.issuer.clone(),
                ));
            }
            if let Some(url) = &provider.jwks_url {
                urls.push((format!("auth.providers[{i}].jwks_url"), url.clone()));
            }
        }
        urls
    }
}

/// The `[auth]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Where authenticated requests go; none: the function answers `200`
    /// with the verified identity (a check service for a gateway).
    #[serde(default)]
    pub origin: Option<Origin>,
    /// The realm named in `WWW-Authenticate` challenges.
    #[serde(default = "realm")]
    pub realm: String,
    /// Tokens longer than this are refused before any decoding.
    #[serde(default = "max_token_bytes")]
    pub max_token_bytes: usize,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    #[serde(default = "leeway")]
    pub leeway: PolicyDuration,
    /// What a request matching no rule needs.
    #[serde(default)]
    pub default: Access,
    /// Route rules, first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Identity providers (one per issuer).
    #[serde(default)]
    pub providers: Vec<Provider>,
    /// Headers carrying verified claims to the origin.
    #[serde(default)]
    pub forward: Forward,
    /// API keys (`[auth.api_keys]`); none: API keys are not accepted.
    #[serde(default)]
    pub api_keys: Option<ApiKeysSection>,
    /// Where the admin endpoints (API-key management) live.
    #[serde(default = "admin_path")]
    pub admin_path: String,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone; credentials are not checked (but claim headers are still
    /// stripped).
    Public,
    /// A valid token or API key.
    #[default]
    Authenticated,
    /// Nobody (403).
    Deny,
}

/// A route rule: which requests, and what they need.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `"[METHOD ]/path"`: an optional method (or `*`), then a path where
    /// a `*` segment matches one segment and a trailing `/**` any rest.
    pub route: String,
    /// Who may pass.
    #[serde(default)]
    pub access: Access,
    /// Roles of which the caller needs at least one (JWT `roles`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Scopes the caller needs, all of them (JWT `scope`/`scp`, API-key scopes).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Which credentials the route takes (default: both).
    #[serde(default = "both_kinds")]
    pub credentials: Vec<CredentialKind>,
}

/// A kind of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `Authorization: Bearer <JWT>`.
    Jwt,
    /// An API key in the API-key header.
    ApiKey,
}

/// One identity provider: an issuer and where its keys come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// The exact `iss` of its tokens; picks the provider for a token.
    pub issuer: String,
    /// Accepted `aud` values (a token needs one of them); empty: any.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The algorithms its tokens may use.
    #[serde(default = "rs256")]
    pub algorithms: Vec<String>,
    /// Keys from `{issuer}/.well-known/openid-configuration` → `jwks_uri`.
    #[serde(default)]
    pub discovery: bool,
    /// Keys from this JWKS URL.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Keys written into the policy.
    #[serde(default)]
    pub keys: Vec<StaticKey>,
    /// Claims every token must carry.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Tokens issued (`iat`) longer ago than this are refused.
    #[serde(default)]
    pub max_age: Option<PolicyDuration>,
    /// How long fetched keys are kept when the response has no
    /// `Cache-Control: max-age`.
    #[serde(default = "jwks_ttl")]
    pub jwks_cache_ttl: PolicyDuration,
    /// Bounds on the time fetched keys are kept, whatever the provider says.
    #[serde(default = "jwks_min_ttl")]
    pub jwks_min_ttl: PolicyDuration,
    /// See `jwks_min_ttl`.
    #[serde(default = "jwks_max_ttl")]
    pub jwks_max_ttl: PolicyDuration,
    /// The least time between two fetches of the keys, so that a flood of
    /// unknown `kid`s cannot hammer the provider.
    #[serde(default = "jwks_cooldown")]
    pub jwks_refetch_cooldown: PolicyDuration,
}

/// A key written into the policy: exactly one of `jwk`, `pem`,
/// `hmac_secret`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticKey {
    /// The key id tokens name in `kid`.
    #[serde(default)]
    pub kid: Option<String>,
    /// A public JWK.
    #[serde(default)]
    pub jwk: Option<serde_json::Value>,
    /// An SPKI public key (`-----BEGIN PUBLIC KEY-----`).
    #[serde(default)]
    pub pem: Option<String>,
    /// The name of the secret holding an HMAC key (HS256/384/512).
    #[serde(default)]
    pub hmac_secret: Option<String>,
}

impl StaticKey {
    /// The `kid` tokens name this key by: `kid`, else the JWK's own.
    pub fn effective_kid(&self) -> Option<&str> {
        self.kid
            .as_deref()
            .or_else(|| self.jwk.as_ref()?.get("kid")?.as_str())
    }

    /// Whether this is a shared secret: `hmac_secret`, or a JWK of `kty`
    /// `oct`.
    pub fn is_symmetric(&self) -> bool {
        self.hmac_secret.is_some()
            || self
                .jwk
                .as_ref()
                .and_then(|jwk| jwk.get("kty"))
                .and_then(|kty| kty.as_str())
                == Some("oct")
    }
}

/// The headers verified identity travels in; an empty name forwards
/// nothing for that field. Every configured name is stripped from
/// incoming requests, always.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Forward {
    /// The token's `sub`.
    pub sub: String,
    /// The token's issuer.
    pub issuer: String,
    /// Scopes, space-separated.
    pub scopes: String,
    /// Roles, comma-separated.
    pub roles: String,
    /// The API key's id.
    pub api_key_id: String,
    /// `jwt` or `api_key`.
    pub credential: String,
    /// More claims: claim name → header name.
    pub claims: BTreeMap<String, String>,
    /// Pass the credential itself (`Authorization`, the API-key header) on
    /// to the origin.
    pub credentials: bool,
}

impl Default for Forward {
    fn default() -> Self {
        Forward {
            sub: "x-auth-sub".into(),
            issuer: "x-auth-issuer".into(),
            scopes: "x-auth-scopes".into(),
            roles: "x-auth-roles".into(),
            api_key_id: "x-api-key-id".into(),
            credential: "x-auth-credential".into(),
            claims: BTreeMap::new(),
            credentials: false,
        }
    }
}

impl Forward {
    /// Every header name this configuration sets (and so strips).
    pub fn header_names(&self) -> Vec<HeaderName> {
        [
            &self.sub,
            &self.issuer,
            &self.scopes,
            &self.roles,
            &self.api_key_id,
            &self.credential,
        ]
        .into_iter()
        .chain(self.claims.values())
        .filter(|n| !n.is_empty())
        .filter_map(|n| HeaderName::try_from(n.as_str()).ok())
        .collect()
    }
}

fn realm() -> String {
    "api".into()
}
fn max_token_bytes() -> usize {
    crate::token::DEFAULT_MAX_TOKEN_BYTES
}
fn leeway() -> PolicyDuration {
    PolicyDuration(Duration::from_secs(60))
}
fn admin_path() -> String {
    "/_auth".into()
}
fn both_kinds() -> Vec<CredentialKind> {
    vec![CredentialKind::Jwt, CredentialKind::ApiKey]
}
fn rs256() -> Vec<String> {
    vec!["RS256".into()]
}
fn jwks_ttl() -> PolicyDuration {
    PolicyDuration(Duration::from_secs(600))
}
fn jwks_min_ttl() -> PolicyDuration {
    PolicyDuration(Duration::from_secs(30))
}
fn jwks_max_ttl() -> PolicyDuration {
    PolicyDuration(Duration::from_secs(86_400))
}
fn jwks_cooldown() -> PolicyDuration {
    PolicyDuration(Duration::from_secs(30))
}

pub use edge_core::route::RoutePattern;

impl Provider {
    /// The provider's allowed algorithms (validated names only).
    pub fn allowed_algorithms(&self) -> Vec<Algorithm> {
        self.algorithms
            .iter()
            .filter_map(|a| Algorithm::from_name(a))
            .collect()
    }

    /// Where its keys are fetched from, if they are fetched.
    pub fn fetches_keys(&self) -> bool {
        self.discovery || self.jwks_url.is_some()
    }
}

impl Policy for AuthPolicy {
    fn validate(&self, v: &mut Validator) {
        v.field("auth", |v| self.auth.validate(v));
    }
}

fn is_http_url(s: &str) -> bool {
    s.parse::<http::Uri>()
        .ok()
        .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
}

impl Section {
    fn validate(&self, v: &mut Validator) {
        v.check(
            (256..=MAX_TOKEN_BYTES_LIMIT).contains(&self.max_token_bytes),
            "max_token_bytes",
            self.max_token_bytes,
            &format!("must be in 256..={MAX_TOKEN_BYTES_LIMIT}"),
        );
        v.check(
            self.leeway.0 <= Duration::from_secs(600),
            "leeway",
            self.leeway,
            "must be at most 10m",
        );
        v.check(
            self.admin_path.starts_with('/') && self.admin_path.len() > 1,
            "admin_path",
            &self.admin_path,
            "must be a path like /_auth",
        );
        v.check(
            self.realm
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'),
            "realm",
            &self.realm,
            "must be printable ASCII without quotes or backslashes",
        );
        v.field("rules", |v| {
            for (i, rule) in self.rules.iter().enumerate() {
                v.index(i, |v| rule.validate(v));
            }
        });
        let mut issuers = HashSet::new();
        v.field("providers", |v| {
            for (i, provider) in self.providers.iter().enumerate() {
                v.index(i, |v| {
                    v.check(
                        issuers.insert(provider.issuer.as_str()),
                        "issuer",
                        &provider.issuer,
                        "appears twice (one provider per issuer)",
                    );
                    provider.validate(v);
                });
            }
        });
        v.field("forward", |v| self.forward.validate(v));
        if let Some(api_keys) = &self.api_keys {
            v.field("api_keys", |v| api_keys.validate(v));
        }
        let accepts_jwt = !self.providers.is_empty();
        let accepts_keys = self.api_keys.is_some();
        let needs_credentials = self.default == Access::Authenticated
            || self.rules.iter().any(|r| r.access == Access::Authenticated);
        v.check(
            !needs_credentials || accepts_jwt || accepts_keys,
            "providers",
            self.providers.len(),
            "must name at least one provider (or configure api_keys) when a route needs authentication",
        );
    }
}

impl Rule {
    fn validate(&self, v: &mut Validator) {
        if let Err(rule) = RoutePattern::parse(&self.route) {
            v.check(false, "route", &self.route, rule);
        }
        v.check(
            !self.credentials.is_empty(),
            "credentials",
            self.credentials.len(),
            "must name jwt, api_key or both",
        );
        v.check(
            self.access == Access::Authenticated
                || (self.roles.is_empty() && self.scopes.is_empty()),
            "access",
            format!("{:?}", self.access).to_lowercase(),
            "cannot be combined with roles or scopes (they need an authenticated caller)",
        );
        for (name, list) in [("roles", &self.roles), ("scopes", &self.scopes)] {
            v.check(
                list.iter().all(|s| is_token(s)),
                name,
                list,
                "must be non-empty names without spaces, quotes or backslashes",
            );
        }
    }
}

/// A scope or role name: printable ASCII, no space, quote or backslash
/// (RFC 6749 scope-token), so it can appear in a challenge.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b > 0x20 && b < 0x7f && b != b'"' && b != b'\\')
}

impl Provider {
    fn validate(&self, v: &mut Validator) {
        v.check(
            !self.issuer.is_empty(),
            "issuer",
            &self.issuer,
            "must not be empty",
        );
        if self.discovery {
            v.check(
                is_http_url(&self.issuer),
                "issuer",
                &self.issuer,
                "must be an http(s) URL to use discovery",
            );
        }
        if let Some(url) = &self.jwks_url {
            v.check(is_http_url(url), "jwks_url", url, "must be an http(s) URL");
        }
        let sources = usize::from(self.discovery)
            + usize::from(self.jwks_url.is_some())
            + usize::from(!self.keys.is_empty());
        v.check(
            sources == 1,
            "keys",
            sources,
            "exactly one key source is needed: discovery = true, jwks_url or keys",
        );
        v.check(
            !self.algorithms.is_empty(),
            "algorithms",
            &self.algorithms,
            "must name at least one algorithm",
        );
        for alg in &self.algorithms {
            v.check(
                Algorithm::from_name(alg).is_some(),
                "algorithms",
                alg,
                &format!("is not one of {}", Algorithm::names()),
            );
        }
        let allowed = self.allowed_algorithms();
        v.check(
            allowed.iter().all(|a| a.is_hmac()) || allowed.iter().all(|a| !a.is_hmac()),
            "algorithms",
            &self.algorithms,
            "mixes HMAC (HS256/384/512) with public-key algorithms: one provider verifies \
             with a shared secret or with public keys, never both",
        );
        v.check(
            !(self.fetches_keys() && allowed.iter().any(|a| a.is_hmac())),
            "algorithms",
            &self.algorithms,
            "cannot include HS256, HS384 or HS512 with fetched keys (a JWKS never carries HMAC secrets)",
        );
        let (min, max) = (self.jwks_min_ttl.0, self.jwks_max_ttl.0);
        v.check(
            min <= max,
            "jwks_min_ttl",
            self.jwks_min_ttl,
            "must not exceed jwks_max_ttl",
        );
        v.check(
            !self.jwks_refetch_cooldown.0.is_zero(),
            "jwks_refetch_cooldown",
            self.jwks_refetch_cooldown,
            "must be > 0",
        );
        // One kind of key per provider: an HMAC secret (hmac_secret, or a
        // jwk of kty oct) never sits beside public keys.
        let symmetric: Vec<usize> = (0..self.keys.len())
            .filter(|i| self.keys[*i].is_symmetric())
            .collect();
        if let (Some(secret), Some(public)) = (
            symmetric.first(),
            (0..self.keys.len()).find(|i| !symmetric.contains(i)),
        ) {
            v.check(
                false,
                "keys",
                format!("keys[{secret}] and keys[{public}]"),
                "hold an HMAC secret beside a public key: one provider verifies with a \
                 shared secret or with public keys, never both",
            );
        }
        let mut kids: HashMap<&str, usize> = HashMap::new();
        v.field("keys", |v| {
            for (i, key) in self.keys.iter().enumerate() {
                v.index(i, |v| {
                    if let Some(kid) = key.effective_kid() {
                        match kids.get(kid) {
                            Some(first) => v.check(
                                false,
                                "kid",
                                kid,
                                &format!(
                                    "is also the kid of keys[{first}]: a kid must name one key"
                                ),
                            ),
                            None => {
                                kids.insert(kid, i);
                            }
                        }
                    }
                    let given = usize::from(key.jwk.is_some())
                        + usize::from(key.pem.is_some())
                        + usize::from(key.hmac_secret.is_some());
                    v.check(
                        given == 1,
                        "jwk",
                        given,
                        "exactly one of jwk, pem, hmac_secret is needed",
                    );
                    if let Some(name) = &key.hmac_secret {
                        v.check(
                            name == HMAC_SECRET,
                            "hmac_secret",
                            name,
                            &format!("must be {HMAC_SECRET}, the secret the function reads"),
                        );
                    }
                });
            }
        });
    }
}

impl Forward {
    fn validate(&self, v: &mut Validator) {
        let mut seen = HashSet::new();
        let named = [
            ("sub", &self.sub),
            ("issuer", &self.issuer),
            ("scopes", &self.scopes),
            ("roles", &self.roles),
            ("api_key_id", &self.api_key_id),
            ("credential", &self.credential),
        ];
        for (field, name) in named
            .into_iter()
            .chain(self.claims.values().map(|h| ("claims", h)))
        {
            if name.is_empty() {
                continue;
            }
            let valid = HeaderName::try_from(name.as_str()).is_ok();
            v.check(valid, field, name, "must be a valid header name");
            v.check(
                !valid || seen.insert(name.to_ascii_lowercase()),
                field,
                name,
                "is used twice",
            );
            v.check(
                !matches!(
                    name.to_ascii_lowercase().as_str(),
                    "authorization" | "host" | "cookie" | "content-length" | "content-type"
                ),
                field,
                name,
                "must not be a header the request needs",
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use edge_core::{Config, EdgeFunction};

    use crate::AuthCheck;

    const POLICY: &str = r#"
        [auth]
        origin = "https://api.example.com"
        [[auth.providers]]
        issuer = "https://login.example.com/tenant"
        discovery = true
        [[auth.providers]]
        issuer = "https://other.example"
        jwks_url = "https://keys.example:8443/jwks.json?v=1"
        [[auth.providers]]
        issuer = "static"
        algorithms = ["HS256"]
        keys = [{ kid = "hs", hmac_secret = "AUTH_HS256_SECRET" }]
    "#;

    fn config(hosts: &str) -> Config {
        Config::new(AuthCheck::DEFAULT_POLICY)
            .with_var("POLICY", POLICY)
            .with_secret("AUTH_HS256_SECRET", "auth-check-test-hs256-secret-0123")
            .with_allowed_outbound_hosts(hosts)
    }

    #[test]
    fn urls_outside_the_allowed_hosts_fail_at_start_by_field() {
        let error = AuthCheck::from_config(&config("https://api.example.com"))
            .err()
            .unwrap()
            .to_string();
        let rule = "is not in this component's allowed_outbound_hosts \
                    (https://api.example.com); add it to spin.toml";
        assert_eq!(
            error,
            format!(
                "auth.providers[0].issuer: https://login.example.com {rule}; \
                 auth.providers[1].jwks_url: https://keys.example:8443 {rule}"
            )
        );
        let error = AuthCheck::from_config(&config(
            "https://login.example.com,https://keys.example:8443",
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.starts_with("auth.origin: https://api.example.com is not"),
            "{error}"
        );
        // The issuer of a provider with keys in the policy ("static") is
        // never fetched, so it needs no entry.
        let allowed =
            config("https://api.example.com,https://login.example.com,https://*.example:*");
        assert!(AuthCheck::from_config(&allowed).is_ok());
        // The built-in policy passes spin.toml's default auth_check_idp_host.
        let default = Config::new(AuthCheck::DEFAULT_POLICY)
            .with_secret("AUTH_API_KEY_HASH_KEY", "auth-check-test-hash-key-0123456")
            .with_secret("AUTH_ADMIN_TOKEN", "auth-check-test-admin-token")
            .with_allowed_outbound_hosts("https://auth.example.com");
        assert!(
            AuthCheck::from_config(&default).is_ok(),
            "{:?}",
            AuthCheck::from_config(&default).err()
        );
    }
}
