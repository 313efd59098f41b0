//! Where a provider's verification keys come from and how long they are
//! kept: static keys from the policy, or a JWKS fetched from a URL or
//! through OIDC discovery, cached in this isolate and in the platform's
//! cache (Workers KV, Spin key-value) for the time the provider's
//! `Cache-Control` allows (within the policy's bounds).
//!
//! An unknown `kid` (the provider rotated its keys) triggers one refetch;
//! a cooldown between fetches, remembered in the shared cache so that it
//! holds across isolates and Spin's per-request instances, keeps a flood
//! of made-up `kid`s from hammering the provider. When the provider cannot
//! be reached, keys past their time are still used (a signature from a
//! known key stays a signature); with no keys at all the answer is 503.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use edge_core::function::Context;
use edge_core::model::Body;
use edge_core::platform::url_for_errors;
use edge_core::{Config, ConfigError, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::keys::{Algorithm, JwkSet, Key, parse_jwks_value};
use crate::policy::{Provider, StaticKey};

/// Why a provider's keys could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the keys of issuer {issuer:?} are unavailable: {reason}")]
pub struct KeysUnavailable {
    /// The provider's issuer.
    pub issuer: String,
    /// What went wrong (URLs without query strings, no key material).
    pub reason: String,
    /// When asking again may help.
    pub retry_after: Duration,
}

/// Keys in use for one provider, with their freshness.
#[derive(Debug, Clone)]
struct Cached {
    keys: Rc<Vec<Key>>,
    expires_at: Timestamp,
}

/// What the shared cache keeps per provider (JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    /// The last JWKS fetched, as served.
    #[serde(default)]
    jwks: Option<serde_json::Value>,
    /// When those keys stop being fresh (ms since the epoch).
    #[serde(default)]
    expires_at: u64,
    /// When a fetch was last tried, successful or not (ms).
    #[serde(default)]
    attempted_at: u64,
    /// The `jwks_uri` discovery gave.
    #[serde(default)]
    jwks_uri: Option<String>,
}

enum Source {
    Static(Rc<Vec<Key>>),
    Discovery { jwks_uri: RefCell<Option<String>> },
    Url(String),
}

/// One provider at run time: its rules and its keys.
pub struct ProviderKeys {
    issuer: String,
    allowed: Vec<Algorithm>,
    source: Source,
    cache_key: String,
    default_ttl: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
    cooldown: Duration,
    memory: RefCell<Option<Cached>>,
    attempted_at: RefCell<Option<Timestamp>>,
}

impl ProviderKeys {
    /// Builds the provider's key source (static keys are parsed here, so a
    /// bad key stops the function at start).
    pub fn new(
        provider: &Provider,
        index: usize,
        config: &Config,
    ) -> Result<ProviderKeys, ConfigError> {
        let allowed = provider.allowed_algorithms();
        let source = if provider.discovery {
            Source::Discovery {
                jwks_uri: RefCell::new(None),
            }
        } else if let Some(url) = &provider.jwks_url {
            Source::Url(url.clone())
        } else {
            let mut keys = Vec::new();
            for (i, key) in provider.keys.iter().enumerate() {
                let field = format!("auth.providers[{index}].keys[{i}]");
                keys.push(static_key(key, &field, &allowed, config)?);
            }
            Source::Static(Rc::new(keys))
        };
        let mut hasher = Sha256::new();
        hasher.update(provider.issuer.as_bytes());
        hasher.update([0]);
        hasher.update(provider.jwks_url.as_deref().unwrap_or("").as_bytes());
        let digest = hasher.finalize();
        let cache_key = format!(
            "auth:jwks:{}",
            digest[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Ok(ProviderKeys {
            issuer: provider.issuer.clone(),
            allowed,
            source,
            cache_key,
            default_ttl: provider.jwks_cache_ttl.0,
            min_ttl: provider.jwks_min_ttl.0,
            max_ttl: provider.jwks_max_ttl.0,
            cooldown: provider.jwks_refetch_cooldown.0,
            memory: RefCell::new(None),
            attempted_at: RefCell::new(None),
        })
    }

    /// The issuer this provider verifies.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The algorithms its tokens may use.
    pub fn allowed(&self) -> &[Algorithm] {
        &self.allowed
    }

    /// The keys to verify a token naming `kid` with: fresh keys from this
    /// isolate or the shared cache, else fetched; when `kid` is not among
    /// them, one refetch unless the cooldown forbids it.
    pub async fn keys(
        &self,
        kid: Option<&str>,
        ctx: &Context<'_>,
    ) -> Result<Rc<Vec<Key>>, KeysUnavailable> {
        if let Source::Static(keys) = &self.source {
            return Ok(keys.clone());
        }
        let now = ctx.clock().now();
        let fresh = self.memory.borrow().clone().filter(|c| c.expires_at > now);
        let mut record = None;
        let current = match fresh {
            Some(cached) => Some(cached),
            None => {
                let loaded = self.load(ctx).await;
                let cached = loaded.as_ref().and_then(|r| self.cached(r));
                if let Some(c) = &cached {
                    *self.memory.borrow_mut() = Some(c.clone());
                }
                record = loaded;
                cached
            }
        };
        let known = |c: &Cached| match kid {
            Some(kid) => c.keys.iter().any(|k| k.kid() == Some(kid)),
            None => true,
        };
        match current {
            Some(c) if c.expires_at > now && known(&c) => return Ok(c.keys),
            _ => {}
        }
        // Stale, missing, or the kid is unknown: fetch unless in cooldown.
        // An isolate that fetched within the cooldown and holds keys needs
        // no cache read to know it (a flood of bad kids costs nothing).
        let cooling_here = self
            .attempted_at
            .borrow()
            .is_some_and(|t| now.0 < t.0 + self.cooldown);
        let record = match record {
            Some(r) => Some(r),
            None if cooling_here && self.memory.borrow().is_some() => None,
            None => self.load(ctx).await,
        };
        let attempted = [
            *self.attempted_at.borrow(),
            record
                .as_ref()
                .map(|r| Timestamp::from_millis(r.attempted_at)),
        ]
        .into_iter()
        .flatten()
        .max();
        let cooling = attempted.is_some_and(|t| now.0 < t.0 + self.cooldown);
        let stale = self
            .memory
            .borrow()
            .clone()
            .or_else(|| record.as_ref().and_then(|r| self.cached(r)));
        if cooling {
            ctx.log().info(
                "jwks refetch skipped (cooldown)",
                json!({ "issuer": self.issuer }),
            );
            return stale.map(|c| c.keys).ok_or_else(|| KeysUnavailable {
                issuer: self.issuer.clone(),
                reason: "no keys yet and the refetch cooldown has not passed".into(),
                retry_after: self.cooldown,
            });
        }
        *self.attempted_at.borrow_mut() = Some(now);
        match self.fetch(record.as_ref(), ctx).await {
            Ok((jwks, set, ttl, jwks_uri)) => {
                let keys = Rc::new(self.keep(set, ctx));
                let expires_at = Timestamp(now.0 + ttl);
                *self.memory.borrow_mut() = Some(Cached {
                    keys: keys.clone(),
                    expires_at,
                });
                self.save(
                    &Record {
                        jwks: Some(jwks),
                        expires_at: expires_at.as_millis(),
                        attempted_at: now.as_millis(),
                        jwks_uri,
                    },
                    ctx,
                )
                .await;
                ctx.log().info(
                    "jwks fetched",
                    json!({ "issuer": self.issuer, "keys": keys.len(), "ttl_s": ttl.as_secs() }),
                );
                Ok(keys)
            }
            Err(reason) => {
                ctx.log().warn(
                    "jwks fetch failed",
                    json!({ "issuer": self.issuer, "error": reason }),
                );
                let mut failed = record.unwrap_or_default();
                failed.attempted_at = now.as_millis();
                self.save(&failed, ctx).await;
                stale.map(|c| c.keys).ok_or(KeysUnavailable {
                    issuer: self.issuer.clone(),
                    reason,
                    retry_after: self.cooldown,
                })
            }
        }
    }

    fn cached(&self, record: &Record) -> Option<Cached> {
        let jwks = record.jwks.as_ref()?;
        let set = parse_jwks_value(jwks).ok()?;
        Some(Cached {
            keys: Rc::new(set.keys),
            expires_at: Timestamp::from_millis(record.expires_at),
        })
    }

    /// The usable keys of a fetched set, the skipped ones logged.
    fn keep(&self, set: JwkSet, ctx: &Context<'_>) -> Vec<Key> {
        for (kid, error) in &set.skipped {
            let fields = json!({ "issuer": self.issuer, "kid": kid, "reason": error.to_string() });
            // A weak key is the provider's emergency, not a format it
            // publishes for others: warn.
            if *error == crate::keys::KeyError::RocaFingerprint {
                ctx.log().warn("jwks key refused (weak key)", fields);
            } else {
                ctx.log().info("jwks key skipped", fields);
            }
        }
        set.keys
    }

    async fn load(&self, ctx: &Context<'_>) -> Option<Record> {
        match ctx.cache().get(&self.cache_key).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(e) => {
                ctx.log().warn(
                    "jwks cache unavailable",
                    json!({ "issuer": self.issuer, "error": e.to_string() }),
                );
                None
            }
        }
    }

    async fn save(&self, record: &Record, ctx: &Context<'_>) {
        let Ok(bytes) = serde_json::to_vec(record) else {
            return;
        };
        if let Err(e) = ctx.cache().set(&self.cache_key, &bytes).await {
            ctx.log().warn(
                "jwks cache unavailable",
                json!({ "issuer": self.issuer, "error": e.to_string() }),
            );
        }
    }

    /// Fetches the JWKS (through discovery when configured): the document,
    /// its keys, how long to keep them, and the `jwks_uri` used. A set that
    /// cannot be used as a whole (two different keys under one `kid`, too
    /// many keys) is a failed fetch: the keys held so far stay in use.
    async fn fetch(
        &self,
        record: Option<&Record>,
        ctx: &Context<'_>,
    ) -> Result<(serde_json::Value, JwkSet, Duration, Option<String>), String> {
        let (url, jwks_uri) = match &self.source {
            Source::Url(url) => (url.clone(), None),
            Source::Discovery { jwks_uri } => {
                let known = jwks_uri
                    .borrow()
                    .clone()
                    .or_else(|| record.and_then(|r| r.jwks_uri.clone()));
                let uri = match known {
                    Some(uri) => uri,
                    None => self.discover(ctx).await?,
                };
                *jwks_uri.borrow_mut() = Some(uri.clone());
                (uri.clone(), Some(uri))
            }
            Source::Static(_) => return Err("static keys are not fetched".into()),
        };
        let (body, cache_control) = get_json(&url, ctx).await?;
        if !body.get("keys").is_some_and(|k| k.is_array()) {
            return Err(format!(
                "{} is not a JWKS (no \"keys\" array)",
                url_for(&url)
            ));
        }
        let set = parse_jwks_value(&body)
            .map_err(|e| format!("the JWK set at {} is refused: {e}", url_for(&url)))?;
        let ttl = cache_control
            .as_deref()
            .and_then(max_age)
            .unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl);
        Ok((body, set, ttl, jwks_uri))
    }

    /// OIDC discovery: `{issuer}/.well-known/openid-configuration`, whose
    /// `issuer` must be the configured one (OIDC Discovery §4.3).
    async fn discover(&self, ctx: &Context<'_>) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let (doc, _) = get_json(&url, ctx).await?;
        if doc.get("issuer").and_then(|v| v.as_str()) != Some(self.issuer.as_str()) {
            return Err(format!(
                "the discovery document at {} names another issuer",
                url_for(&url)
            ));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .filter(|u| {
                u.parse::<http::Uri>()
                    .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")))
            })
            .ok_or_else(|| {
                format!(
                    "the discovery document at {} has no jwks_uri",
                    url_for(&url)
                )
            })?;
        Ok(jwks_uri.to_owned())
    }
}

fn url_for(url: &str) -> String {
    url.parse::<http::Uri>()
        .map(|u| url_for_errors(&u))
        .unwrap_or_else(|_| "(invalid URL)".into())
}

/// GETs `url` as JSON: the body and the `Cache-Control` header.
async fn get_json(
    url: &str,
    ctx: &Context<'_>,
) -> Result<(serde_json::Value, Option<String>), String> {
    let req = http::Request::get(url)
        .header(http::header::ACCEPT, "application/json")
        .body(Body::new())
        .map_err(|_| format!("invalid URL {}", url_for(url)))?;
    let resp = ctx.http().send(req).await.map_err(|e| e.to_string())?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("{} answered {}", url_for(url), resp.status()));
    }
    let cache_control = resp
        .headers()
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = serde_json::from_slice(resp.body())
        .map_err(|e| format!("{} did not answer JSON: {e}", url_for(url)))?;
    Ok((body, cache_control))
}

/// The freshness lifetime a shared cache may use (`s-maxage`, else
/// `max-age`); `no-store`/`no-cache` give zero (the policy's minimum then
/// applies).
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut max_age = None;
    let mut shared = None;
    for directive in cache_control.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let seconds = || value.trim_matches('"').parse::<u64>().ok();
        match name.trim().to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return Some(Duration::ZERO),
            "max-age" => max_age = seconds(),
            "s-maxage" => shared = seconds(),
            _ => {}
        }
    }
    shared.or(max_age).map(Duration::from_secs)
}

fn static_key(
    key: &StaticKey,
    field: &str,
    allowed: &[Algorithm],
    config: &Config,
) -> Result<Key, ConfigError> {
    let invalid = |name: &str, reason: String| {
        ConfigError::Invalid(vec![edge_core::policy::FieldError {
            path: format!("{field}.{name}"),
            value: "(key)".into(),
            rule: reason,
        }])
    };
    let parsed = if let Some(jwk) = &key.jwk {
        Key::from_jwk(jwk).map_err(|e| invalid("jwk", e.to_string()))?
    } else if let Some(pem) = &key.pem {
        Key::from_pem(pem).map_err(|e| invalid("pem", e.to_string()))?
    } else if let Some(name) = &key.hmac_secret {
        let secret = config.require_secret(&format!("{field}.hmac_secret"), name)?;
        Key::hmac(secret.expose().as_bytes()).map_err(|e| invalid("hmac_secret", e.to_string()))?
    } else {
        return Err(invalid(
            "jwk",
            "exactly one of jwk, pem, hmac_secret is needed".into(),
        ));
    };
    let parsed = match &key.kid {
        Some(kid) => parsed.with_kid(kid.clone()),
        None => parsed,
    };
    // An HMAC secret too short for an HSxxx the provider allows would
    // refuse every such token: say so at start.
    if parsed.is_symmetric()
        && let Some(alg) = allowed.iter().find(|a| a.is_hmac() && !parsed.allows(**a))
    {
        let name = if key.jwk.is_some() {
            "jwk"
        } else {
            "hmac_secret"
        };
        let len = parsed.hmac_secret_len().unwrap_or_default();
        return Err(invalid(
            name,
            crate::keys::KeyError::HmacSecretTooShort { len, alg: *alg }.to_string(),
        ));
    }
    if !allowed.iter().any(|a| parsed.allows(*a)) {
        return Err(invalid(
            "kid",
            format!(
                "the key's type allows none of the provider's algorithms ({})",
                allowed
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_lifetimes() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            max_age("max-age=300, s-maxage=60"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
