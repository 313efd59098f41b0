//! API keys: stored only as keyed hashes, compared in constant time, bound
//! to one environment, with expiry, revocation and rotation with an overlap
//! window; managed through admin endpoints that never show a secret.
//!
//! This module exists because API keys are long-lived shared secrets: a
//! store holding them in plain text (Kong's `key-auth` does) hands every
//! key to whoever reads the store or its backups. Here only
//! HMAC-SHA-256(hash key, presented key) is kept, and the hash key is a
//! platform secret that never enters the store.
//!
//! # Keys
//!
//! A key reads `ak_<env>_<id>_<secret>`: `env` is `dev`, `staging` or
//! `prod`, `id` is 1–64 of `[a-z0-9-]` (no `_`, so the parts split without
//! ambiguity) and the secret is 32 random bytes in unpadded base64url (at
//! least 16 base64url characters for keys written by hand). The id makes
//! the lookup one read; the environment lets a deployment refuse keys of
//! another environment before any lookup (a `dev` key never passes in
//! `prod`). Malformed keys, unknown ids and wrong secrets get the same
//! answer, [`ApiKeyError::Invalid`]; expiry, revocation and a record of
//! another environment are only reported once the secret has matched.
//!
//! Keys live in the atomic store under `apikey:<id>` (JSON: the hashes,
//! environment, scopes, times in milliseconds since the epoch), written
//! with compare-and-swap so concurrent admin writes never lose a hash, and
//! listed by one index record (`apikey-index`, at most [`MAX_KEYS_LIMIT`]
//! ids, so that it stays under a Durable Object value's 128 KiB). Keys can
//! also be declared in the policy (`[[auth.api_keys.keys]]` with `hash =
//! "<hex>"`, from `printf %s "$KEY" | openssl dgst -sha256 -hmac
//! "$HASH_KEY"`), for deployments without admin; those need no store read.
//!
//! # Rotation
//!
//! - Now (`POST {admin}/keys/{id}/rotate`, `{"overlap": "1h"}`): a new
//!   secret is current at once; the old one stays valid until now +
//!   overlap (default `rotation_overlap`, at most `max_rotation_overlap`;
//!   `"0s"` ends it at once, for a leaked key).
//! - Scheduled (`{"at": <unix seconds | RFC 3339>, "overlap": …}`): the new
//!   key is issued now (and shown this once) but passes only from `at`;
//!   the old key passes until `at` + overlap. Clients can be handed the new
//!   key ahead of a maintenance window. `DELETE {admin}/keys/{id}/rotate`
//!   cancels it; a new rotation replaces a scheduled one.
//! - A rotation's overlap bounds every earlier key of the id, not only the
//!   one it replaces: none passes after the new key's start + overlap, and
//!   a key whose own window ends sooner keeps that end (at most four are
//!   kept, the soonest-ending dropped first). So `"0s"` ends every earlier
//!   key at once — what an operator does after a leak, whichever key
//!   leaked — and a rotation never lengthens an earlier key's window.
//!
//! The promotion of a scheduled key is computed from the record and the
//! clock on every read (`KeyRecord::settled`), so nothing has to run at
//! `at`. Every decision uses `ctx.clock()`.
//!
//! # Admin endpoints (under the function's admin path, bearer admin token)
//!
//! | request | answer |
//! |---|---|
//! | `GET /keys?limit=N&after=ID` | `200 {"keys": [status…], "next": ID or null}` (N ≤ 100) |
//! | `POST /keys` `{id?, environment?, scopes?, description?, expires_in? \| expires_at?}` | `201` status + `"key"` (shown once) |
//! | `GET /keys/{id}` | `200` status |
//! | `DELETE /keys/{id}` | `200` status, revoked; `?purge=true`: removed, `204` |
//! | `POST /keys/{id}/rotate` `{overlap?, at?, expires_in? \| expires_at?}` | `200` status + `"key"`, `"valid_from"` |
//! | `DELETE /keys/{id}/rotate` | `200` status, the scheduled rotation cancelled |
//!
//! A status is `{id, environment, scopes, description, source, state,
//! created, expires_at, rotated_at, revoked_at, previous_valid_until,
//! next_activates_at}` with RFC 3339 times; `state` is `active`,
//! `rotating` (an old key is in its overlap), `scheduled`, `expired` or
//! `revoked`. No status, problem or log line holds a key, a hash or the
//! hash key; the plaintext key appears only in the answer that creates it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edge_core::Timestamp;
use edge_core::admin::AdminGuard;
use edge_core::model::{empty_response, json_response, query_param};
use edge_core::platform::CasOutcome;
use edge_core::policy::{FieldError, PolicyDuration, Validator};
use edge_core::{Config, ConfigError, Context, Problem, Request, Response, StoreError};
use hmac::{Hmac, Mac};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// The most keys one deployment's store holds (the index must fit one
/// Durable Object value).
pub const MAX_KEYS_LIMIT: usize = 1_000;
/// The store key of the id index.
pub const INDEX_KEY: &str = "apikey-index";
/// The prefix of a key record's store key (`apikey:<id>`).
pub const RECORD_PREFIX: &str = "apikey:";

const KEY_PREFIX: &str = "ak_";
const MAX_ID_LEN: usize = 64;
const SECRET_BYTES: usize = 32;
const MIN_SECRET_CHARS: usize = 16;
const MAX_PRESENTED_LEN: usize = 256;
const MAX_ADMIN_BODY: usize = 16 * 1024;
const MAX_SCOPES: usize = 64;
const MAX_SCOPE_LEN: usize = 128;
const MAX_DESCRIPTION: usize = 256;
const MAX_PREVIOUS: usize = 4;
const CAS_ATTEMPTS: u32 = 16;
const LIST_DEFAULT: usize = 50;
const LIST_MAX: usize = 100;
const DAY: Duration = Duration::from_secs(86_400);
/// How far ahead a rotation may be scheduled.
const MAX_SCHEDULE_AHEAD: Duration = Duration::from_secs(366 * 86_400);
/// The longest lifetime a key may be given.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 366 * 86_400);

type HmacSha256 = Hmac<Sha256>;

/// A deployment environment; a key belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Development.
    Dev,
    /// Staging.
    Staging,
    /// Production.
    Prod,
}

impl Environment {
    /// `dev`, `staging` or `prod`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Dev => "dev",
            Environment::Staging => "staging",
            Environment::Prod => "prod",
        }
    }

    /// The environment named `name` (exact, lower case).
    pub fn parse(name: &str) -> Option<Environment> {
        [Environment::Dev, Environment::Staging, Environment::Prod]
            .into_iter()
            .find(|e| e.as_str() == name)
    }
}

/// The `[auth.api_keys]` policy section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeysSection {
    /// The header carrying the key.
    pub header: String,
    /// Also accepted: `Authorization: <scheme> <key>`; empty: not accepted.
    pub authorization_scheme: String,
    /// The secret keying the stored hashes.
    pub hash_key_secret: String,
    /// The secret (bearer token) authorizing the admin endpoints; none or
    /// empty disables them.
    pub admin_token_secret: Option<String>,
    /// This deployment's environment: keys of another are refused.
    pub environment: Environment,
    /// How long an old key keeps passing after a rotation, by default.
    pub rotation_overlap: PolicyDuration,
    /// The longest overlap a rotation may ask for.
    pub max_rotation_overlap: PolicyDuration,
    /// The most keys the store may hold (1..=[`MAX_KEYS_LIMIT`]).
    pub max_keys: usize,
    /// `Retry-After` of the 503 answered when the store is down.
    pub store_retry_after: PolicyDuration,
    /// Keys declared in the policy (hash only).
    pub keys: Vec<StaticApiKey>,
}

impl Default for ApiKeysSection {
    fn default() -> Self {
        ApiKeysSection {
            header: "x-api-key".into(),
            authorization_scheme: "ApiKey".into(),
            hash_key_secret: "AUTH_API_KEY_HASH_KEY".into(),
            admin_token_secret: Some("AUTH_ADMIN_TOKEN".into()),
            environment: Environment::Prod,
            rotation_overlap: PolicyDuration(DAY),
            max_rotation_overlap: PolicyDuration(30 * DAY),
            max_keys: MAX_KEYS_LIMIT,
            store_retry_after: PolicyDuration(Duration::from_secs(1)),
            keys: Vec::new(),
        }
    }
}

/// A key declared in the policy: its id and the hex HMAC of the key, never
/// the key.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticApiKey {
    /// The id (`[a-z0-9-]{1,64}`), as in the key.
    pub id: String,
    /// The key's environment; default the section's.
    #[serde(default)]
    pub environment: Option<Environment>,
    /// The scopes it grants.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// HMAC-SHA-256(hash key, key), 64 hex digits.
    pub hash: String,
    /// When it stops passing (RFC 3339, UTC).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The hash of the key it replaces, passing until `previous_valid_until`.
    #[serde(default)]
    pub previous_hash: Option<String>,
    /// The end of the previous key's overlap (RFC 3339, UTC).
    #[serde(default)]
    pub previous_valid_until: Option<String>,
    /// What the key is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Refused from now on (kept to say so).
    #[serde(default)]
    pub revoked: bool,
}

impl fmt::Debug for StaticApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticApiKey")
            .field("id", &self.id)
            .field("environment", &self.environment)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

impl ApiKeysSection {
    /// Records every rule the section breaks, with paths relative to it
    /// (call it inside `v.field("api_keys", …)`).
    pub fn validate(&self, v: &mut Validator) {
        v.check(
            HeaderName::from_bytes(self.header.as_bytes()).is_ok()
                && !self.header.eq_ignore_ascii_case("authorization"),
            "header",
            &self.header,
            "must be a header name other than authorization",
        );
        v.check(
            self.authorization_scheme.len() <= 32
                && self
                    .authorization_scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !self.authorization_scheme.eq_ignore_ascii_case("bearer"),
            "authorization_scheme",
            &self.authorization_scheme,
            "must be empty or an auth scheme of [A-Za-z0-9-] other than Bearer",
        );
        v.check(
            !self.hash_key_secret.is_empty(),
            "hash_key_secret",
            &self.hash_key_secret,
            "must name a secret",
        );
        v.check(
            self.max_rotation_overlap.0 <= MAX_SCHEDULE_AHEAD,
            "max_rotation_overlap",
            self.max_rotation_overlap,
            "must be at most 366 days",
        );
        v.check(
            self.rotation_overlap <= self.max_rotation_overlap,
            "rotation_overlap",
            self.rotation_overlap,
            "must be at most max_rotation_overlap",
        );
        v.check(
            (1..=MAX_KEYS_LIMIT).contains(&self.max_keys),
            "max_keys",
            self.max_keys,
            &format!("must be in 1..={MAX_KEYS_LIMIT}"),
        );
        v.check(
            (1..=3600).contains(&self.store_retry_after.0.as_secs()),
            "store_retry_after",
            self.store_retry_after,
            "must be in 1s..=1h",
        );
        let mut seen = HashSet::new();
        v.field("keys", |v| {
            for (i, key) in self.keys.iter().enumerate() {
                v.index(i, |v| {
                    key.validate(v);
                    v.check(
                        seen.insert(key.id.as_str()),
                        "id",
                        &key.id,
                        "is declared twice",
                    );
                });
            }
        });
    }
}

impl StaticApiKey {
    fn validate(&self, v: &mut Validator) {
        v.check(valid_id(&self.id), "id", &self.id, ID_RULE);
        check_scopes(v, &self.scopes);
        // Never echo a hash field: a plaintext key pasted there by mistake
        // would land in the logs.
        v.check(
            parse_hex(&self.hash).is_some(),
            "hash",
            redacted(&self.hash),
            "must be 64 hex digits (HMAC-SHA-256 of the key)",
        );
        if let Some(at) = &self.expires_at {
            v.check(parse_rfc3339(at).is_some(), "expires_at", at, RFC3339_RULE);
        }
        match (&self.previous_hash, &self.previous_valid_until) {
            (Some(hash), Some(until)) => {
                v.check(
                    parse_hex(hash).is_some(),
                    "previous_hash",
                    redacted(hash),
                    "must be 64 hex digits (HMAC-SHA-256 of the key)",
                );
                v.check(
                    parse_rfc3339(until).is_some(),
                    "previous_valid_until",
                    until,
                    RFC3339_RULE,
                );
            }
            (None, None) => {}
            (Some(hash), None) => v.check(
                false,
                "previous_valid_until",
                redacted(hash),
                "must be set with previous_hash",
            ),
            (None, Some(until)) => v.check(
                false,
                "previous_hash",
                until,
                "must be set with previous_valid_until",
            ),
        }
        if let Some(d) = &self.description {
            v.check(
                d.chars().count() <= MAX_DESCRIPTION,
                "description",
                format!("({} characters)", d.chars().count()),
                "must be at most 256 characters",
            );
        }
    }
}

const ID_RULE: &str = "must be 1-64 characters of a-z, 0-9 and -";
const RFC3339_RULE: &str = "must be an RFC 3339 time in UTC, e.g. 2026-01-31T00:00:00Z";

fn redacted(value: &str) -> String {
    format!("[REDACTED] ({} characters)", value.chars().count())
}

fn check_scopes(v: &mut Validator, scopes: &[String]) {
    v.check(
        scopes.len() <= MAX_SCOPES,
        "scopes",
        scopes.len(),
        "must hold at most 64 scopes",
    );
    v.field("scopes", |v| {
        for (i, scope) in scopes.iter().enumerate() {
            v.index(i, |v| {
                if !valid_scope(scope) {
                    v.push(json!(scope).to_string(), SCOPE_RULE);
                }
            });
        }
    });
}

const SCOPE_RULE: &str = "must be 1-128 visible ASCII characters without spaces, \" or \\";

fn valid_scope(scope: &str) -> bool {
    (1..=MAX_SCOPE_LEN).contains(&scope.len())
        && scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// Whether `id` is a key id: 1–64 of `[a-z0-9-]`.
pub fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A caller authenticated by an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyIdentity {
    /// The key's id.
    pub id: String,
    /// The key's environment (`dev`, `staging`, `prod`).
    pub environment: String,
    /// The scopes the key grants.
    pub scopes: Vec<String>,
    /// When the key expires, if it does.
    pub expires_at: Option<Timestamp>,
    /// Set when the presented key was superseded by a rotation and passes
    /// only until then (the client should switch to the new key).
    pub superseded_until: Option<Timestamp>,
}

/// Why a presented key was refused. Only `Store` is not the caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// Malformed, unknown id or wrong secret: deliberately indistinguishable.
    #[error("the API key is not valid")]
    Invalid,
    /// The key has expired.
    #[error("the API key has expired")]
    Expired,
    /// The key has been revoked.
    #[error("the API key has been revoked")]
    Revoked,
    /// The key belongs to another environment.
    #[error("the API key belongs to another environment")]
    WrongEnvironment,
    /// The key store could not be read (answer 503, fail closed).
    #[error("the API key store is unavailable: {0}")]
    Store(StoreError),
}

impl ApiKeyError {
    /// A description safe to show the client (e.g. in `WWW-Authenticate`
    /// `error_description`): never a key, a hash or a store detail.
    pub fn description(&self) -> &'static str {
        match self {
            ApiKeyError::Invalid => "the API key is not valid",
            ApiKeyError::Expired => "the API key has expired",
            ApiKeyError::Revoked => "the API key has been revoked",
            ApiKeyError::WrongEnvironment => "the API key belongs to another environment",
            ApiKeyError::Store(_) => "the API key store is unavailable; retry later",
        }
    }

    /// A short code for logs and problem bodies.
    pub fn code(&self) -> &'static str {
        match self {
            ApiKeyError::Invalid => "invalid",
            ApiKeyError::Expired => "expired",
            ApiKeyError::Revoked => "revoked",
            ApiKeyError::WrongEnvironment => "wrong_environment",
            ApiKeyError::Store(_) => "store_unavailable",
        }
    }

    /// The status to answer: 401, or 503 for `Store`.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiKeyError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// An HMAC-SHA-256 of a key. It never prints; it serializes as hex, only
/// into the store.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeyHash([u8; 32]);

impl KeyHash {
    fn matches(&self, mac: &[u8; 32]) -> Choice {
        self.0[..].ct_eq(&mac[..])
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash([REDACTED])")
    }
}

impl Serialize for KeyHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_hex(&text)
            .map(KeyHash)
            .ok_or_else(|| serde::de::Error::custom("a key hash must be 64 hex digits"))
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = digit(*pair.first()?)? << 4 | digit(*pair.get(1)?)?;
    }
    Some(out)
}

/// A key superseded by a rotation, passing until `valid_until_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Superseded {
    hash: KeyHash,
    valid_until_ms: u64,
}

/// A scheduled rotation: `hash` becomes current at `activates_at_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    hash: KeyHash,
    activates_at_ms: u64,
    overlap_ms: u64,
}

/// One key as stored (`apikey:<id>`) or declared in the policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    id: String,
    environment: Environment,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
    current: KeyHash,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    previous: Vec<Superseded>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Pending>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotated_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_ms: Option<u64>,
}

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Policy,
    Store,
}

impl KeyRecord {
    /// The record as it stands at `now`: a due scheduled key promoted, and
    /// superseded keys whose window ended dropped.
    fn settled(mut self, now: u64) -> KeyRecord {
        if let Some(pending) = self.pending.take_if(|p| p.activates_at_ms <= now) {
            self.supersede(pending.activates_at_ms.saturating_add(pending.overlap_ms));
            self.current = pending.hash;
            self.rotated_ms = Some(pending.activates_at_ms);
        }
        self.previous.retain(|p| p.valid_until_ms > now);
        self
    }

    /// Moves the current hash to the superseded ones, passing until `until`
    /// (a time not after it: never), and ends every earlier superseded key
    /// by `until` too: a rotation's overlap bounds all the keys it follows.
    fn supersede(&mut self, until: u64) {
        for earlier in &mut self.previous {
            earlier.valid_until_ms = earlier.valid_until_ms.min(until);
        }
        self.previous.push(Superseded {
            hash: self.current,
            valid_until_ms: until,
        });
        if self.previous.len() > MAX_PREVIOUS {
            self.previous
                .sort_by_key(|p| std::cmp::Reverse(p.valid_until_ms));
            self.previous.truncate(MAX_PREVIOUS);
        }
    }

    /// Whether `mac` is the current hash or a superseded one (of a settled
    /// record), and in the latter case until when. Every candidate is
    /// compared, in constant time.
    fn verify(&self, mac: &[u8; 32]) -> Option<Option<u64>> {
        let current = self.current.matches(mac);
        let mut superseded = Choice::from(0);
        let mut until = 0;
        for p in &self.previous {
            let hit = p.hash.matches(mac);
            superseded |= hit;
            until = u64::conditional_select(&until, &p.valid_until_ms, hit);
        }
        if bool::from(current) {
            Some(None)
        } else if bool::from(superseded) {
            Some(Some(until))
        } else {
            None
        }
    }

    fn state(&self, now: u64) -> &'static str {
        if self.revoked_ms.is_some() {
            "revoked"
        } else if self.expires_at_ms.is_some_and(|t| t <= now) {
            "expired"
        } else if self.pending.is_some() {
            "scheduled"
        } else if !self.previous.is_empty() {
            "rotating"
        } else {
            "active"
        }
    }

    /// What the admin sees of a (settled) record: no hash, no secret.
    fn status(&self, now: u64, source: Source) -> Value {
        let time = |ms: Option<u64>| ms.map(|ms| Timestamp::from_millis(ms).to_rfc3339());
        json!({
            "id": self.id,
            "environment": self.environment.as_str(),
            "scopes": self.scopes,
            "description": self.description,
            "source": match source { Source::Policy => "policy", Source::Store => "admin" },
            "state": self.state(now),
            "created": time(self.created_ms),
            "expires_at": time(self.expires_at_ms),
            "rotated_at": time(self.rotated_ms),
            "revoked_at": time(self.revoked_ms.filter(|t| *t > 0)),
            "previous_valid_until": time(self.previous.iter().map(|p| p.valid_until_ms).max()),
            "next_activates_at": time(self.pending.as_ref().map(|p| p.activates_at_ms)),
        })
    }
}

/// The id index record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Index {
    ids: BTreeSet<String>,
}

/// API keys, built once per instance from the policy section.
pub struct ApiKeys {
    header: HeaderName,
    scheme: Option<String>,
    mac: HmacSha256,
    admin: AdminGuard,
    environment: Environment,
    rotation_overlap: Duration,
    max_rotation_overlap: Duration,
    max_keys: usize,
    retry_after_secs: u64,
    statics: BTreeMap<String, KeyRecord>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("header", &self.header)
            .field("environment", &self.environment)
            .field("static_keys", &self.statics.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// Builds the API keys of `section` (validated again here, with paths
    /// under `auth.api_keys`), reading its secrets from `config`.
    pub fn from_section(section: &ApiKeysSection, config: &Config) -> Result<ApiKeys, ConfigError> {
        let mut v = Validator::default();
        v.field("auth", |v| v.field("api_keys", |v| section.validate(v)));
        let errors = v.into_errors();
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors));
        }
        let hash_key =
            config.require_secret("auth.api_keys.hash_key_secret", &section.hash_key_secret)?;
        let mac = HmacSha256::new_from_slice(hash_key.expose().as_bytes()).map_err(|_| {
            ConfigError::Invalid(vec![FieldError {
                path: "auth.api_keys.hash_key_secret".into(),
                value: json!(section.hash_key_secret).to_string(),
                rule: "must name a usable HMAC key".into(),
            }])
        })?;
        let admin_secret = section
            .admin_token_secret
            .as_deref()
            .filter(|n| !n.is_empty());
        if let Some(name) = admin_secret {
            config.require_secret("auth.api_keys.admin_token_secret", name)?;
        }
        let admin = AdminGuard::new(config, "auth-check", admin_secret);
        let header = HeaderName::from_bytes(section.header.as_bytes())
            .map_err(|_| ConfigError::Parse("auth.api_keys.header: not a header name".into()))?;
        let time = |t: &Option<String>| t.as_deref().and_then(parse_rfc3339);
        let statics = section
            .keys
            .iter()
            .filter_map(|k| {
                let previous = match (&k.previous_hash, time(&k.previous_valid_until)) {
                    (Some(hash), Some(until)) => vec![Superseded {
                        hash: KeyHash(parse_hex(hash)?),
                        valid_until_ms: until,
                    }],
                    _ => Vec::new(),
                };
                let record = KeyRecord {
                    id: k.id.clone(),
                    environment: k.environment.unwrap_or(section.environment),
                    scopes: k.scopes.clone(),
                    description: k.description.clone(),
                    created_ms: None,
                    expires_at_ms: time(&k.expires_at),
                    current: KeyHash(parse_hex(&k.hash)?),
                    previous,
                    pending: None,
                    rotated_ms: None,
                    // Revoked since forever: the policy says so.
                    revoked_ms: k.revoked.then_some(0),
                };
                Some((k.id.clone(), record))
            })
            .collect();
        Ok(ApiKeys {
            header,
            scheme: Some(section.authorization_scheme.clone()).filter(|s| !s.is_empty()),
            mac,
            admin,
            environment: section.environment,
            rotation_overlap: section.rotation_overlap.0,
            max_rotation_overlap: section.max_rotation_overlap.0,
            max_keys: section.max_keys,
            retry_after_secs: section.store_retry_after.0.as_secs().max(1),
            statics,
        })
    }

    /// The header carrying the key.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// This deployment's environment.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The key `req` presents, if any: the key header, else
    /// `Authorization: <scheme> <key>` when the policy accepts it.
    pub fn presented<'r>(&self, headers: &'r http::HeaderMap) -> Option<&'r str> {
        if let Some(value) = headers.get(&self.header) {
            return value.to_str().ok().map(str::trim);
        }
        let scheme = self.scheme.as_deref()?;
        let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (given, key) = value.split_once(' ')?;
        given.eq_ignore_ascii_case(scheme).then_some(key.trim())
    }

    /// The hex HMAC of `key` under the hash key: what a policy's `hash`
    /// holds for it.
    pub fn hash_hex(&self, key: &str) -> String {
        to_hex(&self.hash(key))
    }

    fn hash(&self, key: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Checks a presented key: format, environment, then the record (the
    /// policy's or the store's), then its secret against the current and
    /// superseded hashes in constant time, then revocation and expiry.
    pub async fn authenticate(
        &self,
        presented: &str,
        ctx: &Context<'_>,
    ) -> Result<ApiKeyIdentity, ApiKeyError> {
        let now = ctx.clock().now().as_millis();
        let Some((environment, id)) = parse_key(presented) else {
            return Err(ApiKeyError::Invalid);
        };
        // The caller wrote the environment; saying it is wrong tells them
        // nothing about the keys.
        if environment != self.environment {
            return Err(ApiKeyError::WrongEnvironment);
        }
        let mac = self.hash(presented);
        let record = match self.statics.get(id) {
            Some(record) => Some(record.clone()),
            None => load::<KeyRecord>(ctx, &record_key(id))
                .await
                .map_err(ApiKeyError::Store)?,
        };
        let Some(record) = record else {
            // The same comparison work as for a known id.
            let _ = KeyHash([0; 32]).matches(&mac);
            return Err(ApiKeyError::Invalid);
        };
        let record = record.settled(now);
        let Some(superseded_until) = record.verify(&mac) else {
            return Err(ApiKeyError::Invalid);
        };
        if record.environment != self.environment {
            return Err(ApiKeyError::WrongEnvironment);
        }
        if record.revoked_ms.is_some() {
            return Err(ApiKeyError::Revoked);
        }
        if record.expires_at_ms.is_some_and(|t| t <= now) {
            return Err(ApiKeyError::Expired);
        }
        Ok(ApiKeyIdentity {
            id: record.id,
            environment: record.environment.as_str().to_owned(),
            scopes: record.scopes,
            expires_at: record.expires_at_ms.map(Timestamp::from_millis),
            superseded_until: superseded_until.map(Timestamp::from_millis),
        })
    }

    /// Serves the admin endpoints; `rest` is the path under the admin
    /// prefix, e.g. `/keys/abc/rotate`. Needs the admin bearer token.
    pub async fn handle_admin(
        &self,
        req: Request,
        rest: &str,
        ctx: &Context<'_>,
    ) -> Result<Response, Problem> {
        self.authorize(&req)?;
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let method = req.method().clone();
        let mut response = match segments.as_slice() {
            ["keys"] => match method {
                Method::GET => self.list(&req, ctx).await,
                Method::POST => self.create(&req, ctx).await,
                _ => Err(Problem::method_not_allowed(
                    &method,
                    &[Method::GET, Method::POST],
                )),
            },
            ["keys", id] => {
                let id = path_id(id)?;
                match method {
                    Method::GET => self.show(id, ctx).await,
                    Method::DELETE => self.revoke(&req, id, ctx).await,
                    _ => Err(Problem::method_not_allowed(
                        &method,
                        &[Method::GET, Method::DELETE],
                    )),
                }
            }
            ["keys", id, "rotate"] => {
                let id = path_id(id)?;
                match method {
                    Method::POST => self.rotate(&req, id, ctx).await,
                    Method::DELETE => self.cancel(id, ctx).await,
                    _ => Err(Problem::method_not_allowed(
                        &method,
                        &[Method::POST, Method::DELETE],
                    )),
                }
            }
            _ => Err(Problem::not_found(req.uri().path())),
        }?;
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        Ok(response)
    }

    fn authorize(&self, req: &Request) -> Result<(), Problem> {
        self.admin.check(req, "API-key management")
    }

    fn store_down(&self, ctx: &Context<'_>, error: &StoreError) -> Problem {
        ctx.log().warn(
            "api-key store unavailable",
            json!({ "error": error.to_string() }),
        );
        let problem = Problem::store_unavailable(self.retry_after_secs);
        match error {
            // Reachable, but other writers kept winning: say so.
            StoreError::Contention(_) => problem.with_detail(
                "other changes to the same records kept winning; nothing was changed, retry later",
            ),
            _ => problem,
        }
    }

    async fn list(&self, req: &Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let limit = match query_param(req, "limit") {
            None => LIST_DEFAULT,
            Some(n) => n
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=LIST_MAX).contains(n))
                .ok_or_else(|| {
                    Problem::bad_request(
                        "invalid-parameter",
                        format!("limit must be an integer in 1..={LIST_MAX}"),
                    )
                    .with_extension("field", "limit")
                })?,
        };
        let after = match query_param(req, "after") {
            None => None,
            Some(id) => Some(path_id(id).map_err(|p| p.with_extension("field", "after"))?),
        };
        let index = load::<Index>(ctx, INDEX_KEY)
            .await
            .map_err(|e| self.store_down(ctx, &e))?
            .unwrap_or_default();
        let mut ids: BTreeSet<&str> = index.ids.iter().map(String::as_str).collect();
        ids.extend(self.statics.keys().map(String::as_str));
        let now = ctx.clock().now().as_millis();
        let mut keys = Vec::new();
        let mut next = None;
        for id in ids.into_iter().filter(|id| after.is_none_or(|a| *id > a)) {
            if keys.len() == limit {
                next = keys
                    .last()
                    .and_then(|k: &Value| k["id"].as_str().map(str::to_owned));
                break;
            }
            if let Some((record, source)) = self.find(id, ctx).await? {
                keys.push(record.settled(now).status(now, source));
            }
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({ "keys": keys, "next": next }),
        ))
    }

    /// The record of `id`: the policy's, else the store's.
    async fn find(
        &self,
        id: &str,
        ctx: &Context<'_>,
    ) -> Result<Option<(KeyRecord, Source)>, Problem> {
        if let Some(record) = self.statics.get(id) {
            return Ok(Some((record.clone(), Source::Policy)));
        }
        let record = load::<KeyRecord>(ctx, &record_key(id))
            .await
            .map_err(|e| self.store_down(ctx, &e))?;
        Ok(record.map(|r| (r, Source::Store)))
    }

    async fn show(&self, id: &str, ctx: &Context<'_>) -> Result<Response, Problem> {
        let (record, source) = self.find(id, ctx).await?.ok_or_else(|| key_not_found(id))?;
        let now = ctx.clock().now().as_millis();
        Ok(json_response(
            StatusCode::OK,
            &record.settled(now).status(now, source),
        ))
    }

    /// A fresh key secret: 32 random bytes, base64url.
    fn new_secret(&self, ctx: &Context<'_>) -> Result<String, Problem> {
        let mut bytes = [0u8; SECRET_BYTES];
        ctx.random()
            .fill(&mut bytes)
            .map_err(|_| randomness_down())?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    async fn create(&self, req: &Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let body = admin_body(
            req,
            &[
                "id",
                "environment",
                "scopes",
                "description",
                "expires_in",
                "expires_at",
            ],
        )?;
        let now = ctx.clock().now().as_millis();
        let id = match body.get("id") {
            None | Some(Value::Null) => {
                let mut bytes = [0u8; 8];
                ctx.random()
                    .fill(&mut bytes)
                    .map_err(|_| randomness_down())?;
                to_hex(&bytes)
            }
            Some(Value::String(id)) if valid_id(id) => id.clone(),
            Some(_) => return Err(invalid("id", format!("id {ID_RULE}"))),
        };
        let environment = match body.get("environment") {
            None | Some(Value::Null) => self.environment,
            Some(Value::String(e)) if Environment::parse(e) == Some(self.environment) => {
                self.environment
            }
            Some(_) => {
                return Err(invalid(
                    "environment",
                    format!(
                        "environment must be {:?}: this deployment accepts only its own keys",
                        self.environment.as_str()
                    ),
                ));
            }
        };
        let scopes = scopes_field(&body)?;
        let description = description_field(&body)?;
        let expires_at_ms = expiry(&body, now)?;
        if self.statics.contains_key(&id) {
            return Err(conflict(format!("key {id} is declared in the policy")));
        }
        let key = compose_key(environment, &id, &self.new_secret(ctx)?);
        let record = KeyRecord {
            id: id.clone(),
            environment,
            scopes,
            description,
            created_ms: Some(now),
            expires_at_ms,
            current: KeyHash(self.hash(&key)),
            previous: Vec::new(),
            pending: None,
            rotated_ms: None,
            revoked_ms: None,
        };
        // The index first: a record is never unlisted, and the bound holds.
        self.index_add(ctx, &id).await?;
        let bytes = encode(&record).map_err(|e| self.store_down(ctx, &e))?;
        match ctx
            .store()
            .compare_and_swap(&record_key(&id), None, &bytes)
            .await
            .map_err(|e| self.store_down(ctx, &e))?
        {
            CasOutcome::Swapped => {}
            CasOutcome::Conflict { .. } => {
                return Err(conflict(format!("a key with id {id} exists")));
            }
        }
        ctx.log().info(
            "api key created",
            json!({ "id": id, "environment": environment.as_str() }),
        );
        let mut answer = record.status(now, Source::Store);
        answer["key"] = key.into();
        let mut response = json_response(StatusCode::CREATED, &answer);
        let location = format!("{}/{id}", req.uri().path().trim_end_matches('/'));
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(http::header::LOCATION, value);
        }
        Ok(response)
    }

    async fn index_add(&self, ctx: &Context<'_>, id: &str) -> Result<(), Problem> {
        let max = self.max_keys;
        self.modify::<Index, ()>(ctx, INDEX_KEY, |index| {
            let mut index = index.unwrap_or_default();
            if index.ids.contains(id) {
                return Ok((None, ()));
            }
            if index.ids.len() >= max {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "too-many-keys",
                    "Too many keys",
                )
                .with_detail(format!(
                    "the store holds {max} keys, the most the policy allows; purge revoked ones"
                )));
            }
            index.ids.insert(id.to_owned());
            Ok((Some(index), ()))
        })
        .await
    }

    async fn rotate(
        &self,
        req: &Request,
        id: &str,
        ctx: &Context<'_>,
    ) -> Result<Response, Problem> {
        let body = admin_body(req, &["overlap", "at", "expires_in", "expires_at"])?;
        let now = ctx.clock().now().as_millis();
        let overlap = duration_field(&body, "overlap")?.unwrap_or(self.rotation_overlap);
        if overlap > self.max_rotation_overlap {
            return Err(invalid(
                "overlap",
                format!(
                    "overlap must be at most {} (max_rotation_overlap)",
                    humantime::format_duration(self.max_rotation_overlap)
                ),
            ));
        }
        let overlap_ms = millis(overlap);
        let at = time_field(&body, "at")?;
        if let Some(at) = at
            && (at <= now || at > now.saturating_add(millis(MAX_SCHEDULE_AHEAD)))
        {
            return Err(invalid(
                "at",
                "at must be in the future, at most 366 days ahead",
            ));
        }
        let expires_at_ms = expiry(&body, now)?;
        if self.statics.contains_key(id) {
            return Err(conflict(format!(
                "key {id} is declared in the policy; rotate it there"
            )));
        }
        let secret = self.new_secret(ctx)?;
        let (record, key) = self
            .modify_record(ctx, id, |record| {
                let mut record = record.settled(now);
                if record.revoked_ms.is_some() {
                    return Err(conflict(format!(
                        "key {id} is revoked and cannot be rotated"
                    )));
                }
                let key = compose_key(record.environment, id, &secret);
                let hash = KeyHash(self.hash(&key));
                match at {
                    None => {
                        // A scheduled key never activated is discarded.
                        record.pending = None;
                        // Overlap 0 too: it ends every earlier key now.
                        record.supersede(now.saturating_add(overlap_ms));
                        record.previous.retain(|p| p.valid_until_ms > now);
                        record.current = hash;
                        record.rotated_ms = Some(now);
                    }
                    Some(at) => {
                        record.pending = Some(Pending {
                            hash,
                            activates_at_ms: at,
                            overlap_ms,
                        });
                    }
                }
                if expires_at_ms.is_some() {
                    record.expires_at_ms = expires_at_ms;
                }
                Ok((record.clone(), (record, key)))
            })
            .await?;
        let valid_from = at.unwrap_or(now);
        let old_until = valid_from.saturating_add(overlap_ms);
        ctx.log().info(
            "api key rotated",
            json!({ "id": id, "valid_from": Timestamp::from_millis(valid_from).to_rfc3339(),
                    "old_valid_until": Timestamp::from_millis(old_until).to_rfc3339() }),
        );
        let mut answer = record.status(now, Source::Store);
        answer["key"] = key.into();
        answer["valid_from"] = Timestamp::from_millis(valid_from).to_rfc3339().into();
        Ok(json_response(StatusCode::OK, &answer))
    }

    async fn cancel(&self, id: &str, ctx: &Context<'_>) -> Result<Response, Problem> {
        if self.statics.contains_key(id) {
            return Err(conflict(format!("key {id} is declared in the policy")));
        }
        let now = ctx.clock().now().as_millis();
        let record = self
            .modify_record(ctx, id, |record| {
                let mut record = record.settled(now);
                if record.pending.take().is_none() {
                    return Err(conflict(format!("key {id} has no scheduled rotation")));
                }
                Ok((record.clone(), record))
            })
            .await?;
        ctx.log()
            .info("api key rotation cancelled", json!({ "id": id }));
        Ok(json_response(
            StatusCode::OK,
            &record.status(now, Source::Store),
        ))
    }

    async fn revoke(
        &self,
        req: &Request,
        id: &str,
        ctx: &Context<'_>,
    ) -> Result<Response, Problem> {
        if self.statics.contains_key(id) {
            return Err(conflict(format!(
                "key {id} is declared in the policy; revoke it there"
            )));
        }
        let purge = match query_param(req, "purge") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(Problem::bad_request(
                    "invalid-parameter",
                    "purge must be true or false",
                )
                .with_extension("field", "purge"));
            }
        };
        if purge {
            let key = record_key(id);
            let found = load::<KeyRecord>(ctx, &key)
                .await
                .map_err(|e| self.store_down(ctx, &e))?
                .is_some();
            ctx.store()
                .delete(&key)
                .await
                .map_err(|e| self.store_down(ctx, &e))?;
            let listed = self
                .modify::<Index, bool>(ctx, INDEX_KEY, |index| {
                    let mut index = index.unwrap_or_default();
                    if index.ids.remove(id) {
                        Ok((Some(index), true))
                    } else {
                        Ok((None, false))
                    }
                })
                .await?;
            if !found && !listed {
                return Err(key_not_found(id));
            }
            ctx.log().info("api key purged", json!({ "id": id }));
            return Ok(empty_response(StatusCode::NO_CONTENT));
        }
        let now = ctx.clock().now().as_millis();
        let record = self
            .modify_record(ctx, id, |record| {
                let mut record = record.settled(now);
                if record.revoked_ms.is_none() {
                    record.revoked_ms = Some(now);
                    record.pending = None;
                    record.previous.clear();
                }
                Ok((record.clone(), record))
            })
            .await?;
        ctx.log().info("api key revoked", json!({ "id": id }));
        Ok(json_response(
            StatusCode::OK,
            &record.status(now, Source::Store),
        ))
    }

    /// Read-modify-write of an existing key record (404 if absent).
    async fn modify_record<T>(
        &self,
        ctx: &Context<'_>,
        id: &str,
        mut f: impl FnMut(KeyRecord) -> Result<(KeyRecord, T), Problem>,
    ) -> Result<T, Problem> {
        self.modify(ctx, &record_key(id), |record| {
            let record = record.ok_or_else(|| key_not_found(id))?;
            let (new, out) = f(record)?;
            Ok((Some(new), out))
        })
        .await
    }

    /// A compare-and-swap loop over one JSON value: `f` sees the current
    /// value and returns the new one (`None`: write nothing) and a result.
    /// A concurrent writer makes it start again from their value, so no
    /// write is lost.
    async fn modify<R, T>(
        &self,
        ctx: &Context<'_>,
        key: &str,
        mut f: impl FnMut(Option<R>) -> Result<(Option<R>, T), Problem>,
    ) -> Result<T, Problem>
    where
        R: Serialize + DeserializeOwned,
    {
        let store = ctx.store();
        let down = |e: StoreError| self.store_down(ctx, &e);
        let mut current = store.get(key).await.map_err(down)?;
        for _ in 0..CAS_ATTEMPTS {
            let value = current
                .as_deref()
                .map(|bytes| decode::<R>(key, bytes))
                .transpose()
                .map_err(down)?;
            let (new, out) = f(value)?;
            let Some(new) = new else {
                return Ok(out);
            };
            let bytes = encode(&new).map_err(down)?;
            match store
                .compare_and_swap(key, current.as_deref(), &bytes)
                .await
                .map_err(down)?
            {
                CasOutcome::Swapped => return Ok(out),
                CasOutcome::Conflict { current: now } => current = now,
            }
        }
        Err(down(StoreError::Contention(CAS_ATTEMPTS)))
    }
}

fn record_key(id: &str) -> String {
    format!("{RECORD_PREFIX}{id}")
}

fn compose_key(environment: Environment, id: &str, secret: &str) -> String {
    format!("{KEY_PREFIX}{}_{id}_{secret}", environment.as_str())
}

/// The environment and id of a well-formed key.
fn parse_key(presented: &str) -> Option<(Environment, &str)> {
    if presented.len() > MAX_PRESENTED_LEN {
        return None;
    }
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    let (environment, rest) = rest.split_once('_')?;
    let (id, secret) = rest.split_once('_')?;
    let secret_ok = secret.len() >= MIN_SECRET_CHARS
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (valid_id(id) && secret_ok).then_some((Environment::parse(environment)?, id))
}

async fn load<R: DeserializeOwned>(ctx: &Context<'_>, key: &str) -> Result<Option<R>, StoreError> {
    match ctx.store().get(key).await? {
        Some(bytes) => decode(key, &bytes).map(Some),
        None => Ok(None),
    }
}

fn decode<R: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<R, StoreError> {
    // The position only: serde's messages may quote stored values.
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: format!(
            "not a valid record (line {}, column {})",
            e.line(),
            e.column()
        ),
    })
}

fn encode<R: Serialize>(value: &R) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Unavailable(format!("cannot encode: {e}")))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the epoch of an RFC 3339 time in UTC.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(text).ok()?;
    Some(millis(t.duration_since(UNIX_EPOCH).ok()?))
}

fn path_id(id: &str) -> Result<&str, Problem> {
    if valid_id(id) {
        Ok(id)
    } else {
        // Not echoed: a key pasted into the path would land in the logs.
        Err(
            Problem::bad_request("invalid-parameter", format!("the key id {ID_RULE}"))
                .with_extension("field", "id"),
        )
    }
}

fn key_not_found(id: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "key-not-found", "Key not found")
        .with_detail(format!("no API key has id {id}"))
}

fn conflict(detail: String) -> Problem {
    Problem::new(StatusCode::CONFLICT, "conflict", "Conflict").with_detail(detail)
}

fn randomness_down() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "randomness-unavailable",
        "Randomness unavailable",
    )
    .with_detail("no secure randomness to make a key; retry later")
}

fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    Problem::bad_request("invalid-body", detail).with_extension("field", field)
}

/// The JSON object of an admin request (empty body: `{}`), with only
/// `allowed` members.
fn admin_body(req: &Request, allowed: &[&str]) -> Result<Map<String, Value>, Problem> {
    let bytes = req.body();
    if bytes.len() > MAX_ADMIN_BODY {
        return Err(Problem::payload_too_large(MAX_ADMIN_BODY));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        Problem::bad_request(
            "invalid-body",
            format!("the body must be a JSON object ({e})"),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(Problem::bad_request(
            "invalid-body",
            "the body must be a JSON object",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        let name: String = unknown.chars().take(64).collect();
        return Err(invalid(
            &name,
            format!(
                "unknown member {name:?}; expected one of {}",
                allowed.join(", ")
            ),
        ));
    }
    Ok(map)
}

fn duration_field(body: &Map<String, Value>, name: &str) -> Result<Option<Duration>, Problem> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => humantime::parse_duration(text).map(Some).map_err(|_| {
            invalid(
                name,
                format!("{name} must be a duration such as \"1h\" or \"30m\""),
            )
        }),
        Some(_) => Err(invalid(
            name,
            format!("{name} must be a duration string such as \"1h\""),
        )),
    }
}

/// A time given as Unix seconds or an RFC 3339 string, in milliseconds.
fn time_field(body: &Map<String, Value>, name: &str) -> Result<Option<u64>, Problem> {
    let bad = || {
        invalid(
            name,
            format!("{name} must be Unix seconds or an RFC 3339 time in UTC"),
        )
    };
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|s| s.checked_mul(1000))
            .map(Some)
            .ok_or_else(bad),
        Some(Value::String(text)) => parse_rfc3339(text).map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// `expires_in` or `expires_at` (not both), in the future and within
/// the longest lifetime.
fn expiry(body: &Map<String, Value>, now: u64) -> Result<Option<u64>, Problem> {
    let within = duration_field(body, "expires_in")?;
    let at = time_field(body, "expires_at")?;
    let limit = now.saturating_add(millis(MAX_LIFETIME));
    match (within, at) {
        (Some(_), Some(_)) => Err(invalid(
            "expires_at",
            "give expires_in or expires_at, not both",
        )),
        (Some(d), None) if d.is_zero() || d > MAX_LIFETIME => Err(invalid(
            "expires_in",
            "expires_in must be more than 0s and at most 10 years",
        )),
        (Some(d), None) => Ok(Some(now.saturating_add(millis(d)))),
        (None, Some(t)) if t <= now || t > limit => Err(invalid(
            "expires_at",
            "expires_at must be in the future, at most 10 years ahead",
        )),
        (None, at) => Ok(at),
    }
}

fn scopes_field(body: &Map<String, Value>) -> Result<Vec<String>, Problem> {
    let bad = || {
        invalid(
            "scopes",
            format!("scopes must be a list of at most {MAX_SCOPES} scopes; each {SCOPE_RULE}"),
        )
    };
    match body.get("scopes") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_SCOPES => items
            .iter()
            .map(|item| match item {
                Value::String(s) if valid_scope(s) => Ok(s.clone()),
                _ => Err(bad()),
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

fn description_field(body: &Map<String, Value>) -> Result<Option<String>, Problem> {
    match body.get("description") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_DESCRIPTION => Ok(Some(s.clone())),
        Some(_) => Err(invalid(
            "description",
            "description must be a string of at most 256 characters",
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::future::Future;
    use std::pin::{Pin, pin};
    use std::task::{Context as TaskContext, Poll, Waker};

    use async_trait::async_trait;
    use edge_core::function::{Instance, Services, instantiate};
    use edge_core::memory::{FakeClock, MemoryStore, SeededRandom, StaticHttpClient, TestPlatform};
    use edge_core::model::Runtime;
    use edge_core::policy::Policy;
    use edge_core::{AtomicStore, Clock, EdgeFunction, KeyValueStore};

    use super::*;

    const T0: u64 = 1_795_305_600_000;
    const HASH_KEY: &str = "test-hash-key";
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

    /// A function around `ApiKeys`: `/admin/...` is the admin, anything
    /// else checks the presented key.
    struct Harness(ApiKeys);

    #[async_trait(?Send)]
    impl EdgeFunction for Harness {
        const NAME: &'static str = "apikeys-test";
        const VERSION: &'static str = "0";
        const DEFAULT_POLICY: &'static str = POLICY;

        fn configure(config: &Config) -> Result<Self, ConfigError> {
            let doc = config.policy::<Doc>()?;
            Ok(Harness(ApiKeys::from_section(&doc.auth.api_keys, config)?))
        }

        async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
            if let Some(rest) = req.uri().path().strip_prefix("/admin") {
                let rest = rest.to_owned();
                return self.0.handle_admin(req, &rest, ctx).await;
            }
            let presented = self.0.presented(req.headers()).unwrap_or("");
            match self.0.authenticate(presented, ctx).await {
                Ok(who) => Ok(json_response(
                    StatusCode::OK,
                    &json!({
                        "id": who.id,
                        "environment": who.environment,
                        "scopes": who.scopes,
                        "superseded_until": who.superseded_until.map(|t| t.as_millis()),
                    }),
                )),
                Err(e) => Err(Problem::new(e.status(), "api-key", "Unauthorized")
                    .with_detail(e.description())
                    .with_extension("error", e.code())),
            }
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        let mut cx = TaskContext::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    /// Polls both futures in turn until both are done.
    fn join2<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
        let (mut a, mut b) = (pin!(a), pin!(b));
        let (mut ra, mut rb) = (None, None);
        let mut cx = TaskContext::from_waker(Waker::noop());
        while ra.is_none() || rb.is_none() {
            if ra.is_none()
                && let Poll::Ready(v) = a.as_mut().poll(&mut cx)
            {
                ra = Some(v);
            }
            if rb.is_none()
                && let Poll::Ready(v) = b.as_mut().poll(&mut cx)
            {
                rb = Some(v);
            }
        }
        (ra.unwrap(), rb.unwrap())
    }

    fn config(policy: &str) -> Config {
        Config::new(policy)
            .with_secret("AUTH_API_KEY_HASH_KEY", HASH_KEY)
            .with_secret("AUTH_ADMIN_TOKEN", ADMIN)
    }

    fn instance(policy: &str) -> Instance<Harness> {
        instantiate::<Harness>(&config(policy))
    }

    fn platform() -> TestPlatform {
        TestPlatform::at(Timestamp::from_millis(T0))
    }

    fn request(method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Request {
        let mut builder = http::Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        builder.body(body.into()).unwrap()
    }

    fn admin(method: Method, path: &str, body: Option<Value>) -> Request {
        request(method, &format!("/admin{path}"), Some(ADMIN), body)
    }

    fn answer(response: Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let body = if response.body().is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(response.body()).unwrap()
        };
        (status, body)
    }

    fn call(f: &TestPlatform, inst: &Instance<Harness>, req: Request) -> (u16, Value) {
        answer(block_on(f.serve(inst, req)))
    }

    /// Checks `key` in the `x-api-key` header: the status and the error
    /// code or the id.
    fn check(f: &TestPlatform, inst: &Instance<Harness>, key: &str) -> (u16, String) {
        let req = http::Request::builder()
            .uri("/api")
            .header("x-api-key", key)
            .body(Default::default())
            .unwrap();
        let (status, body) = call(f, inst, req);
        let what = if status == 200 {
            &body["id"]
        } else {
            &body["error"]
        };
        (status, what.as_str().unwrap_or_default().to_owned())
    }

    fn ok(id: &str) -> (u16, String) {
        (200, id.to_owned())
    }

    fn refused(code: &str) -> (u16, String) {
        (401, code.to_owned())
    }

    /// Creates key `id` and returns the plaintext key.
    fn create(f: &TestPlatform, inst: &Instance<Harness>, body: Value) -> String {
        let (status, body) = call(f, inst, admin(Method::POST, "/keys", Some(body)));
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_owned()
    }

    fn rotate(f: &TestPlatform, inst: &Instance<Harness>, id: &str, body: Value) -> (u16, Value) {
        call(
            f,
            inst,
            admin(Method::POST, &format!("/keys/{id}/rotate"), Some(body)),
        )
    }

    fn state(f: &TestPlatform, inst: &Instance<Harness>, id: &str) -> Value {
        let (status, body) = call(f, inst, admin(Method::GET, &format!("/keys/{id}"), None));
        assert_eq!(status, 200, "{body}");
        body
    }

    fn secs(ms: u64) -> u64 {
        ms / 1000
    }

    /// Rotates `id` with `body`, which must succeed: the new key and the
    /// answer.
    fn rotated(
        f: &TestPlatform,
        inst: &Instance<Harness>,
        id: &str,
        body: Value,
    ) -> (String, Value) {
        let (status, body) = rotate(f, inst, id, body);
        assert_eq!(status, 200, "{body}");
        (body["key"].as_str().unwrap().to_owned(), body)
    }

    /// Whether `key` passes now; one that does not is refused as invalid.
    fn passes(f: &TestPlatform, inst: &Instance<Harness>, key: &str) -> bool {
        let (status, what) = check(f, inst, key);
        assert!(status == 200 || what == "invalid", "{status} {what}");
        status == 200
    }

    #[test]
    fn a_created_key_authenticates_with_its_scopes() {
        let (f, inst) = (platform(), instance(POLICY));
        let req = admin(
            Method::POST,
            "/keys",
            Some(json!({"id": "ci", "scopes": ["read", "write:all"], "description": "CI"})),
        );
        let response = block_on(f.serve(&inst, req));
        assert_eq!(response.headers()["location"], "/admin/keys/ci");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let (status, body) = answer(response);
        assert_eq!(status, 201);
        let key = body["key"].as_str().unwrap();
        assert!(key.starts_with("ak_prod_ci_"), "{key}");
        assert_eq!(key.len(), "ak_prod_ci_".len() + 43);
        assert_eq!(body["state"], "active");
        assert_eq!(body["created"], "2026-11-22T00:00:00.000Z");
        assert_eq!(check(&f, &inst, key), ok("ci"));
        let req = http::Request::builder()
            .uri("/api")
            .header("authorization", format!("ApiKey {key}"))
            .body(Default::default())
            .unwrap();
        let (status, body) = call(&f, &inst, req);
        assert_eq!(status, 200);
        assert_eq!(body["scopes"], json!(["read", "write:all"]));
        assert_eq!(body["environment"], "prod");
        // Without an id, one is made up.
        let key = create(&f, &inst, json!({}));
        let id = parse_key(&key).unwrap().1.to_owned();
        assert_eq!(id.len(), 16);
        assert_eq!(check(&f, &inst, &key), ok(&id));
        // The same id twice is a conflict.
        let (status, _) = call(
            &f,
            &inst,
            admin(Method::POST, "/keys", Some(json!({"id": "ci"}))),
        );
        assert_eq!(status, 409);
    }

    #[test]
    fn unknown_ids_wrong_secrets_and_malformed_keys_look_alike() {
        let (f, inst) = (platform(), instance(POLICY));
        let key = create(&f, &inst, json!({"id": "app"}));
        let secret = key.strip_prefix("ak_prod_app_").unwrap();
        let mut wrong = key.clone();
        let last = if wrong.ends_with('A') { "B" } else { "A" };
        wrong.replace_range(wrong.len() - 1.., last);
        let answers: Vec<_> = [
            wrong.as_str(),
            &format!("ak_prod_other_{secret}"),
            "",
            "hello",
            "ak_prod_app",
            "ak_prod_app_short",
            &format!("ak_prod_App_{secret}"),
            &format!("ak_prod_app_{secret}!"),
            &format!("{key}{}", "x".repeat(300)),
        ]
        .iter()
        .map(|k| {
            let req = http::Request::builder()
                .uri("/api")
                .header("x-api-key", *k)
                .body(Default::default())
                .unwrap();
            let (status, mut body) = call(&f, &inst, req);
            body.as_object_mut().unwrap().remove("correlation_id");
            (status, body)
        })
        .collect();
        for a in &answers {
            assert_eq!(a, &answers[0]);
        }
        assert_eq!(answers[0].0, 401);
        assert_eq!(answers[0].1["error"], "invalid");
        let text = answers[0].1.to_string();
        assert!(!text.contains(secret), "{text}");
        assert_eq!(check(&f, &inst, &key), ok("app"));
    }

    #[test]
    fn keys_of_another_environment_are_refused() {
        let f = platform();
        let prod = instance(POLICY);
        let dev = instance(&POLICY.replace("\"prod\"", "\"dev\""));
        // Two deployments sharing a store (and hash key): a dev key
        // never passes in prod, whatever its secret.
        let dev_key = create(&f, &dev, json!({"id": "laptop"}));
        assert!(dev_key.starts_with("ak_dev_laptop_"));
        assert_eq!(check(&f, &dev, &dev_key), ok("laptop"));
        assert_eq!(check(&f, &prod, &dev_key), refused("wrong_environment"));
        // The prod key of the same record does not exist: its hash is the
        // dev key's.
        let prod_form = dev_key.replacen("ak_dev_", "ak_prod_", 1);
        assert_eq!(check(&f, &prod, &prod_form), refused("invalid"));
        // Prod refuses to create keys it would never accept.
        let (status, body) = call(
            &f,
            &prod,
            admin(Method::POST, "/keys", Some(json!({"environment": "dev"}))),
        );
        assert_eq!(status, 400);
        assert_eq!(body["field"], "environment");
        let key = create(&f, &prod, json!({"id": "svc", "environment": "prod"}));
        assert_eq!(check(&f, &prod, &key), ok("svc"));
    }

    #[test]
    fn keys_expire() {
        let (f, inst) = (platform(), instance(POLICY));
        let key = create(&f, &inst, json!({"id": "temp", "expires_in": "1h"}));
        assert_eq!(
            state(&f, &inst, "temp")["expires_at"],
            "2026-11-22T01:00:00.000Z"
        );
        f.clock.advance(59 * MINUTE);
        assert_eq!(check(&f, &inst, &key), ok("temp"));
        f.clock.advance(MINUTE);
        assert_eq!(check(&f, &inst, &key), refused("expired"));
        assert_eq!(state(&f, &inst, "temp")["state"], "expired");
        // A wrong secret on an expired key says nothing about it.
        let mut wrong = key.clone();
        wrong.replace_range(wrong.len() - 2.., "zz");
        assert_eq!(check(&f, &inst, &wrong), refused("invalid"));
        // Expiry in RFC 3339 or Unix seconds, in the future only.
        let now_s = secs(f.clock.now().as_millis());
        let key = create(
            &f,
            &inst,
            json!({"id": "dated", "expires_at": "2027-01-01T00:00:00Z"}),
        );
        assert_eq!(check(&f, &inst, &key), ok("dated"));
        for bad in [json!(now_s - 1), json!("tomorrow"), json!(true)] {
            let (status, body) = call(
                &f,
                &inst,
                admin(Method::POST, "/keys", Some(json!({"expires_at": bad}))),
            );
            assert_eq!(
                (status, &body["field"]),
                (400, &json!("expires_at")),
                "{body}"
            );
        }
    }

    #[test]
    fn revoked_keys_are_refused_and_stay_listed() {
        let (f, inst) = (platform(), instance(POLICY));
        let key = create(&f, &inst, json!({"id": "gone"}));
        let (status, body) = call(&f, &inst, admin(Method::DELETE, "/keys/gone", None));
        assert_eq!((status, &body["state"]), (200, &json!("revoked")));
        assert_eq!(check(&f, &inst, &key), refused("revoked"));
        let mut wrong = key.clone();
        wrong.replace_range(wrong.len() - 2.., "zz");
        assert_eq!(check(&f, &inst, &wrong), refused("invalid"));
        let (status, _) = rotate(&f, &inst, "gone", json!({}));
        assert_eq!(status, 409);
        // Revoking again is fine; purging removes it.
        let (status, _) = call(&f, &inst, admin(Method::DELETE, "/keys/gone", None));
        assert_eq!(status, 200);
        let (status, _) = call(
            &f,
            &inst,
            admin(Method::DELETE, "/keys/gone?purge=true", None),
        );
        assert_eq!(status, 204);
        assert_eq!(check(&f, &inst, &key), refused("invalid"));
        let (status, _) = call(&f, &inst, admin(Method::GET, "/keys/gone", None));
        assert_eq!(status, 404);
        let (status, _) = call(
            &f,
            &inst,
            admin(Method::DELETE, "/keys/gone?purge=true", None),
        );
        assert_eq!(status, 404);
    }

    #[test]
    fn during_the_overlap_old_and_new_keys_both_pass() {
        let (f, inst) = (platform(), instance(POLICY));
        let old = create(&f, &inst, json!({"id": "svc"}));
        f.clock.advance(10 * MINUTE);
        let (status, body) = rotate(&f, &inst, "svc", json!({"overlap": "1h"}));
        assert_eq!(status, 200, "{body}");
        let new = body["key"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert_eq!(body["state"], "rotating");
        assert_eq!(body["valid_from"], "2026-11-22T00:10:00.000Z");
        assert_eq!(body["previous_valid_until"], "2026-11-22T01:10:00.000Z");
        assert_eq!(check(&f, &inst, &old), ok("svc"));
        assert_eq!(check(&f, &inst, &new), ok("svc"));
        // The old key is told when it stops passing.
        let req = http::Request::builder()
            .uri("/api")
            .header("x-api-key", &old)
            .body(Default::default())
            .unwrap();
        let (_, who) = call(&f, &inst, req);
        assert_eq!(who["superseded_until"], T0 + 70 * 60_000);
        f.clock.advance(59 * MINUTE);
        assert_eq!(check(&f, &inst, &old), ok("svc"));
        assert_eq!(check(&f, &inst, &new), ok("svc"));
        f.clock.advance(MINUTE);
        assert_eq!(check(&f, &inst, &old), refused("invalid"));
        assert_eq!(check(&f, &inst, &new), ok("svc"));
        assert_eq!(state(&f, &inst, "svc")["state"], "active");
        // The policy's overlap is the default; "0s" ends the old key at once.
        let (_, body) = rotate(&f, &inst, "svc", json!({}));
        let newer = body["key"].as_str().unwrap().to_owned();
        f.clock.advance(23 * 60 * MINUTE);
        assert_eq!(check(&f, &inst, &new), ok("svc"));
        let (_, body) = rotate(&f, &inst, "svc", json!({"overlap": "0s"}));
        let newest = body["key"].as_str().unwrap().to_owned();
        assert_eq!(check(&f, &inst, &newer), refused("invalid"));
        assert_eq!(check(&f, &inst, &newest), ok("svc"));
        // An overlap-0 rotation ends every earlier key, the one still in
        // its own overlap included (issue 16).
        assert_eq!(check(&f, &inst, &new), refused("invalid"));
    }

    #[test]
    fn a_scheduled_key_passes_from_its_time_and_the_old_until_the_overlap_ends() {
        let (f, inst) = (platform(), instance(POLICY));
        let old = create(&f, &inst, json!({"id": "batch"}));
        let at = secs(T0) + 3600;
        let (status, body) = rotate(&f, &inst, "batch", json!({"at": at, "overlap": "30m"}));
        assert_eq!(status, 200, "{body}");
        let new = body["key"].as_str().unwrap().to_owned();
        assert_eq!(body["state"], "scheduled");
        assert_eq!(body["valid_from"], "2026-11-22T01:00:00.000Z");
        assert_eq!(body["next_activates_at"], "2026-11-22T01:00:00.000Z");
        f.clock.advance(59 * MINUTE);
        assert_eq!(check(&f, &inst, &new), refused("invalid"));
        assert_eq!(check(&f, &inst, &old), ok("batch"));
        f.clock.advance(MINUTE);
        assert_eq!(check(&f, &inst, &new), ok("batch"));
        assert_eq!(check(&f, &inst, &old), ok("batch"));
        let status = state(&f, &inst, "batch");
        assert_eq!(status["state"], "rotating");
        assert_eq!(status["rotated_at"], "2026-11-22T01:00:00.000Z");
        assert_eq!(status["previous_valid_until"], "2026-11-22T01:30:00.000Z");
        f.clock.advance(29 * MINUTE);
        assert_eq!(check(&f, &inst, &old), ok("batch"));
        f.clock.advance(MINUTE);
        assert_eq!(check(&f, &inst, &old), refused("invalid"));
        assert_eq!(check(&f, &inst, &new), ok("batch"));
        assert_eq!(state(&f, &inst, "batch")["state"], "active");
    }

    #[test]
    fn a_scheduled_rotation_can_be_cancelled_and_must_be_ahead() {
        let (f, inst) = (platform(), instance(POLICY));
        let old = create(&f, &inst, json!({"id": "ops"}));
        let (status, body) = rotate(&f, &inst, "ops", json!({"at": "2026-11-23T00:00:00Z"}));
        assert_eq!(status, 200, "{body}");
        let new = body["key"].as_str().unwrap().to_owned();
        let (status, body) = call(&f, &inst, admin(Method::DELETE, "/keys/ops/rotate", None));
        assert_eq!((status, &body["state"]), (200, &json!("active")));
        f.clock.advance(48 * 60 * MINUTE);
        assert_eq!(check(&f, &inst, &new), refused("invalid"));
        assert_eq!(check(&f, &inst, &old), ok("ops"));
        let (status, _) = call(&f, &inst, admin(Method::DELETE, "/keys/ops/rotate", None));
        assert_eq!(status, 409);
        let now_s = secs(f.clock.now().as_millis());
        for at in [json!(now_s), json!(now_s + 400 * 86_400), json!("soon")] {
            let (status, body) = rotate(&f, &inst, "ops", json!({ "at": at }));
            assert_eq!((status, &body["field"]), (400, &json!("at")), "{body}");
        }
        let (status, _) = rotate(&f, &inst, "nobody", json!({}));
        assert_eq!(status, 404);
    }

    // A rotation's overlap bounds every earlier key of the id, so an
    // overlap-0 rotation — the answer to a leak — ends all of them, not only
    // the key it replaces (issue 16).
    #[test]
    fn an_overlap_0_rotation_ends_every_earlier_key_of_the_id() {
        // The report: 10-minute overlap, then seconds later overlap 0 — the
        // oldest key stayed valid while the key issued seconds earlier died.
        let (f, inst) = (platform(), instance(POLICY));
        let passes = |key: &str| passes(&f, &inst, key);
        let first = create(&f, &inst, json!({"id": "svc"}));
        f.clock.advance(MINUTE);
        let (second, _) = rotated(&f, &inst, "svc", json!({ "overlap": "10m" }));
        assert!(passes(&first) && passes(&second));
        f.clock.advance(5 * SECOND);
        let (third, status) = rotated(&f, &inst, "svc", json!({ "overlap": "0s" }));
        assert_eq!(status["state"], "active", "{status}");
        assert_eq!(status["previous_valid_until"], Value::Null, "{status}");
        assert!(
            !passes(&first),
            "the oldest key still passes after an overlap-0 rotation"
        );
        assert!(!passes(&second));
        assert!(passes(&third));
        // Not later either.
        f.clock.advance(MINUTE);
        assert!(!passes(&first) && !passes(&second) && passes(&third));
        assert_eq!(state(&f, &inst, "svc")["state"], "active");
    }

    #[test]
    fn a_rotation_overlap_bounds_every_earlier_key_and_never_lengthens_one() {
        let (f, inst) = (platform(), instance(POLICY));
        let passes = |key: &str| passes(&f, &inst, key);
        let first = create(&f, &inst, json!({"id": "api"}));
        let (second, _) = rotated(&f, &inst, "api", json!({ "overlap": "1h" }));
        f.clock.advance(MINUTE);
        // A shorter overlap now: both earlier keys end with it.
        let (third, status) = rotated(&f, &inst, "api", json!({ "overlap": "10m" }));
        assert_eq!(status["previous_valid_until"], "2026-11-22T00:11:00.000Z");
        f.clock.advance(10 * MINUTE - SECOND);
        assert!(passes(&first) && passes(&second) && passes(&third));
        f.clock.advance(SECOND);
        assert!(!passes(&first), "the first key outlived the overlap");
        assert!(!passes(&second));
        assert!(passes(&third));

        // A longer overlap later keeps an earlier, shorter window as it was.
        let (fourth, _) = rotated(&f, &inst, "api", json!({ "overlap": "5m" }));
        let (fifth, status) = rotated(&f, &inst, "api", json!({ "overlap": "1h" }));
        assert_eq!(status["previous_valid_until"], "2026-11-22T01:11:00.000Z");
        f.clock.advance(5 * MINUTE);
        assert!(!passes(&third), "its 5-minute window was lengthened");
        assert!(passes(&fourth) && passes(&fifth));
        f.clock.advance(55 * MINUTE);
        assert!(!passes(&fourth) && passes(&fifth));
    }

    #[test]
    fn a_scheduled_overlap_0_rotation_ends_every_earlier_key_when_it_activates() {
        let (f, inst) = (platform(), instance(POLICY));
        let passes = |key: &str| passes(&f, &inst, key);
        let first = create(&f, &inst, json!({"id": "batch"}));
        let (second, _) = rotated(&f, &inst, "batch", json!({ "overlap": "1h" }));
        let at = secs(T0) + 30 * 60;
        let (third, status) = rotated(&f, &inst, "batch", json!({ "at": at, "overlap": "0s" }));
        assert_eq!(status["state"], "scheduled");
        f.clock.advance(30 * MINUTE - SECOND);
        assert!(passes(&first) && passes(&second) && !passes(&third));
        f.clock.advance(SECOND);
        assert!(
            !passes(&first),
            "the first key outlived the scheduled overlap-0 rotation"
        );
        assert!(!passes(&second));
        assert!(passes(&third));
        assert_eq!(state(&f, &inst, "batch")["state"], "active");
    }

    #[test]
    fn nothing_shows_a_key_a_secret_or_a_hash() {
        let (f, inst) = (platform(), instance(POLICY));
        let mut keys = vec![
            create(&f, &inst, json!({"id": "a", "scopes": ["read"]})),
            create(&f, &inst, json!({"id": "b"})),
        ];
        let (_, body) = rotate(&f, &inst, "a", json!({"overlap": "1h"}));
        keys.push(body["key"].as_str().unwrap().to_owned());
        let (_, body) = rotate(&f, &inst, "b", json!({"at": secs(T0) + 60}));
        keys.push(body["key"].as_str().unwrap().to_owned());
        let (status, list) = call(&f, &inst, admin(Method::GET, "/keys", None));
        assert_eq!(status, 200);
        let states: Vec<_> = list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["state"].clone())
            .collect();
        assert_eq!(states, [json!("rotating"), json!("scheduled")]);
        let mut shown = list.to_string();
        for id in ["a", "b"] {
            shown.push_str(&state(&f, &inst, id).to_string());
        }
        for key in &keys {
            check(&f, &inst, key);
        }
        shown.push_str(&f.logs.lines().join("\n"));
        let stored: Vec<String> = ["apikey:a", "apikey:b", INDEX_KEY]
            .iter()
            .map(|k| String::from_utf8(block_on(f.store.get(k)).unwrap().unwrap()).unwrap())
            .collect();
        let mut hashes = Vec::new();
        for record in &stored {
            let value: Value = serde_json::from_str(record).unwrap();
            hashes.extend(value["current"].as_str().map(str::to_owned));
            for p in value["previous"].as_array().into_iter().flatten() {
                hashes.push(p["hash"].as_str().unwrap().to_owned());
            }
            if let Some(p) = value["pending"]["hash"].as_str() {
                hashes.push(p.to_owned());
            }
        }
        assert_eq!(hashes.len(), 4);
        for key in &keys {
            let secret = key.rsplit_once('_').unwrap().1;
            assert!(!shown.contains(secret), "a secret is shown");
            for record in &stored {
                assert!(!record.contains(secret), "a secret is stored");
            }
        }
        for hash in &hashes {
            assert!(!shown.contains(hash.as_str()), "a hash is shown");
        }
        assert!(!shown.contains(HASH_KEY) && !shown.contains(ADMIN));
    }

    #[test]
    fn the_list_pages_and_the_store_is_bounded() {
        let policy = format!("{POLICY}max_keys = 3\n");
        let (f, inst) = (platform(), instance(&policy));
        for id in ["k1", "k2", "k3"] {
            create(&f, &inst, json!({ "id": id }));
        }
        let (status, body) = call(
            &f,
            &inst,
            admin(Method::POST, "/keys", Some(json!({"id": "k4"}))),
        );
        assert_eq!(
            (status, &body["type"]),
            (409, &json!("urn:edge-functions:problem:too-many-keys"))
        );
        let (_, page) = call(&f, &inst, admin(Method::GET, "/keys?limit=2", None));
        assert_eq!(page["keys"].as_array().unwrap().len(), 2);
        assert_eq!(page["next"], "k2");
        let (_, page) = call(
            &f,
            &inst,
            admin(Method::GET, "/keys?limit=2&after=k2", None),
        );
        assert_eq!(page["keys"][0]["id"], "k3");
        assert_eq!(page["next"], Value::Null);
        let (status, body) = call(&f, &inst, admin(Method::GET, "/keys?limit=0", None));
        assert_eq!((status, &body["field"]), (400, &json!("limit")));
        let (status, _) = call(
            &f,
            &inst,
            admin(Method::DELETE, "/keys/k1?purge=true", None),
        );
        assert_eq!(status, 204);
        create(&f, &inst, json!({"id": "k4"}));
    }

    #[test]
    fn the_admin_needs_the_admin_token() {
        let (f, inst) = (platform(), instance(POLICY));
        let response = block_on(f.serve(&inst, request(Method::GET, "/admin/keys", None, None)));
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"auth-check\", error=\"invalid_request\""
        );
        let response = block_on(f.serve(
            &inst,
            request(Method::POST, "/admin/keys", Some("guess"), Some(json!({}))),
        ));
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"auth-check\", error=\"invalid_token\""
        );
        // An API key is not an admin credential.
        let key = create(&f, &inst, json!({"id": "user"}));
        let (status, _) = call(
            &f,
            &inst,
            request(Method::GET, "/admin/keys", Some(&key), None),
        );
        assert_eq!(status, 401);
        // Without an admin secret the admin is off.
        let off = instance(&format!("{POLICY}admin_token_secret = \"\"\n"));
        let (status, body) = call(&f, &off, admin(Method::GET, "/keys", None));
        assert_eq!(
            (status, &body["type"]),
            (403, &json!("urn:edge-functions:problem:admin-disabled"))
        );
        // Unknown routes and methods.
        let (status, _) = call(&f, &inst, admin(Method::GET, "/nope", None));
        assert_eq!(status, 404);
        let (status, _) = call(&f, &inst, admin(Method::PUT, "/keys/user", None));
        assert_eq!(status, 405);
    }

    #[test]
    fn policy_keys_pass_by_their_hash() {
        let f = platform();
        let probe = match instance(POLICY) {
            Ok(h) => h.0,
            Err(e) => panic!("{e}"),
        };
        let key = "ak_prod_edge_0123456789abcdefghijKLMNOP-_";
        let old = "ak_prod_edge_oldoldoldoldoldoldold";
        let policy = format!(
            r#"{POLICY}
            [[auth.api_keys.keys]]
            id = "edge"
            scopes = ["read"]
            hash = "{}"
            previous_hash = "{}"
            previous_valid_until = "2026-11-22T01:00:00Z"
            expires_at = "2026-11-23T00:00:00Z"
            [[auth.api_keys.keys]]
            id = "old"
            hash = "{}"
            revoked = true
            "#,
            probe.hash_hex(key),
            probe.hash_hex(old),
            probe.hash_hex("ak_prod_old_0123456789abcdefghij"),
        );
        let inst = instance(&policy);
        assert_eq!(check(&f, &inst, key), ok("edge"));
        assert_eq!(check(&f, &inst, old), ok("edge"));
        assert_eq!(
            check(&f, &inst, "ak_prod_old_0123456789abcdefghij"),
            refused("revoked")
        );
        assert_eq!(
            check(&f, &inst, &key.replace("0123", "9123")),
            refused("invalid")
        );
        // No store needed.
        f.store.set_available(false);
        assert_eq!(check(&f, &inst, key), ok("edge"));
        f.store.set_available(true);
        let (_, list) = call(&f, &inst, admin(Method::GET, "/keys", None));
        assert_eq!(list["keys"][0]["source"], "policy");
        assert_eq!(list["keys"][0]["state"], "rotating");
        assert!(!list.to_string().contains(&probe.hash_hex(key)));
        for req in [
            admin(Method::POST, "/keys", Some(json!({"id": "edge"}))),
            admin(Method::POST, "/keys/edge/rotate", None),
            admin(Method::DELETE, "/keys/edge", None),
        ] {
            assert_eq!(call(&f, &inst, req).0, 409);
        }
        f.clock.advance(60 * MINUTE);
        assert_eq!(check(&f, &inst, old), refused("invalid"));
        f.clock.advance(23 * 60 * MINUTE);
        assert_eq!(check(&f, &inst, key), refused("expired"));
    }

    fn policy_error(policy: &str) -> String {
        match instance(policy) {
            Ok(_) => panic!("accepted: {policy}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn policy_errors_name_the_field_and_never_echo_a_hash() {
        let err = policy_error(&format!(
            "{POLICY}header = \"bad header\"\nmax_keys = 0\nmax_rotation_overlap = \"1h\"\n"
        ));
        assert!(
            err.contains("auth.api_keys.header: \"bad header\""),
            "{err}"
        );
        assert!(
            err.contains("auth.api_keys.max_keys: 0 must be in 1..=1000"),
            "{err}"
        );
        assert!(
            err.contains("auth.api_keys.rotation_overlap: \"1day\" must be at most"),
            "{err}"
        );
        let pasted = "ak_prod_x_0123456789abcdefghijklmnop";
        let err = policy_error(&format!(
            "{POLICY}[[auth.api_keys.keys]]\nid = \"Bad_Id\"\nhash = \"{pasted}\"\nscopes = [\"a b\"]\n\
             expires_at = \"tomorrow\"\n[[auth.api_keys.keys]]\nid = \"Bad_Id\"\nhash = \"{}\"\n",
            "0".repeat(64)
        ));
        assert!(
            err.contains("auth.api_keys.keys[0].id: \"Bad_Id\""),
            "{err}"
        );
        assert!(
            err.contains("auth.api_keys.keys[0].hash: \"[REDACTED] (36 characters)\""),
            "{err}"
        );
        assert!(
            err.contains("auth.api_keys.keys[0].scopes[0]: \"a b\""),
            "{err}"
        );
        assert!(
            err.contains("auth.api_keys.keys[0].expires_at: \"tomorrow\""),
            "{err}"
        );
        assert!(
            err.contains("auth.api_keys.keys[1].id: \"Bad_Id\" is declared twice"),
            "{err}"
        );
        assert!(!err.contains(pasted), "{err}");
        let err = policy_error(&POLICY.replace("\"prod\"", "\"qa\""));
        assert!(err.contains("auth.api_keys.environment"), "{err}");
        let err = policy_error(&format!("{POLICY}colour = \"blue\"\n"));
        assert!(err.contains("colour"), "{err}");
        let err = match instantiate::<Harness>(&Config::new(POLICY)) {
            Ok(_) => panic!("no secret"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            err,
            "auth.api_keys.hash_key_secret: secret \"AUTH_API_KEY_HASH_KEY\" is not set"
        );
    }

    #[test]
    fn admin_input_errors_name_the_field() {
        let (f, inst) = (platform(), instance(POLICY));
        create(&f, &inst, json!({"id": "x"}));
        let cases = [
            ("/keys", json!({"id": "Not_Valid"}), "id"),
            ("/keys", json!({"scopes": "read"}), "scopes"),
            ("/keys", json!({"scopes": ["a b"]}), "scopes"),
            ("/keys", json!({"description": 5}), "description"),
            ("/keys", json!({"expires_in": "0s"}), "expires_in"),
            (
                "/keys",
                json!({"expires_in": "1h", "expires_at": "2027-01-01T00:00:00Z"}),
                "expires_at",
            ),
            ("/keys", json!({"secret": "mine"}), "secret"),
            ("/keys/x/rotate", json!({"overlap": "soon"}), "overlap"),
            ("/keys/x/rotate", json!({"overlap": "31d"}), "overlap"),
            ("/keys/x/rotate", json!({"overlap": 60}), "overlap"),
        ];
        for (path, body, field) in cases {
            let (status, answer) = call(&f, &inst, admin(Method::POST, path, Some(body.clone())));
            assert_eq!(status, 400, "{body} → {answer}");
            assert_eq!(answer["field"], field, "{body} → {answer}");
        }
        let (status, _) = call(&f, &inst, admin(Method::POST, "/keys", None));
        assert_eq!(status, 201, "an empty body is an empty object");
        let req = request(Method::POST, "/admin/keys", Some(ADMIN), None);
        let (parts, _) = req.into_parts();
        let (status, _) = call(&f, &inst, Request::from_parts(parts, "[1]".into()));
        assert_eq!(status, 400);
        let pasted = "ak_prod_x_0123456789abcdefghijklmnop";
        let (status, body) = call(
            &f,
            &inst,
            admin(Method::GET, &format!("/keys/{pasted}"), None),
        );
        assert_eq!((status, &body["field"]), (400, &json!("id")));
        // (The core's `instance` member is the request path, as sent.)
        assert!(!body["detail"].as_str().unwrap().contains("0123456789"));
    }

    #[test]
    fn a_store_outage_fails_closed() {
        let (f, inst) = (platform(), instance(POLICY));
        let key = create(&f, &inst, json!({"id": "s"}));
        f.store.set_available(false);
        assert_eq!(
            check(&f, &inst, &key),
            (503, "store_unavailable".to_owned())
        );
        let response = block_on(f.serve(&inst, admin(Method::POST, "/keys", Some(json!({})))));
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        f.store.set_available(true);
        assert_eq!(check(&f, &inst, &key), ok("s"));
    }

    /// Memory that yields once after every read, so two requests polled in
    /// turn both read before either writes.
    struct Interleaving(MemoryStore);

    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                Poll::Pending
            }
        }
    }

    #[async_trait(?Send)]
    impl KeyValueStore for Interleaving {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            let value = self.0.get(key).await;
            YieldOnce(false).await;
            value
        }
        async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.0.set(key, value).await
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.0.delete(key).await
        }
    }

    #[async_trait(?Send)]
    impl AtomicStore for Interleaving {
        async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
            self.0.increment(key, delta).await
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: Option<&[u8]>,
            new: &[u8],
        ) -> Result<CasOutcome, StoreError> {
            self.0.compare_and_swap(key, expected, new).await
        }
    }

    #[test]
    fn concurrent_rotations_lose_no_key() {
        let store = Interleaving(MemoryStore::new());
        let clock = FakeClock::at(Timestamp::from_millis(T0));
        let random = SeededRandom::new(7);
        let http = StaticHttpClient::new();
        let logs = edge_core::log::MemorySink::default();
        let services = Services {
            runtime: Runtime::Native,
            clock: &clock,
            store: &store,
            cache: &store,
            random: &random,
            http: &http,
            log_sink: &logs,
            metrics: None,
        };
        let inst = instance(POLICY);
        let serve = |req| edge_core::serve(&inst, req, &services);
        let (_, body) = answer(block_on(serve(admin(
            Method::POST,
            "/keys",
            Some(json!({"id": "hot"})),
        ))));
        let original = body["key"].as_str().unwrap().to_owned();
        let (a, b) = join2(
            serve(admin(
                Method::POST,
                "/keys/hot/rotate",
                Some(json!({"overlap": "1h"})),
            )),
            serve(admin(
                Method::POST,
                "/keys/hot/rotate",
                Some(json!({"overlap": "1h"})),
            )),
        );
        let (a, b) = (answer(a), answer(b));
        assert_eq!((a.0, b.0), (200, 200));
        let keys = [
            original,
            a.1["key"].as_str().unwrap().to_owned(),
            b.1["key"].as_str().unwrap().to_owned(),
        ];
        let check = |key: &str| {
            let req = http::Request::builder()
                .uri("/api")
                .header("x-api-key", key)
                .body(Default::default())
                .unwrap();
            answer(block_on(serve(req))).0
        };
        for key in &keys {
            assert_eq!(check(key), 200);
        }
        // The second writer rebuilt on the first's record: one hash is
        // current, two are superseded, each with its own window.
        let record: Value =
            serde_json::from_slice(&block_on(store.0.get("apikey:hot")).unwrap().unwrap()).unwrap();
        assert_eq!(record["previous"].as_array().unwrap().len(), 2);
        clock.advance(61 * MINUTE);
        let passing: Vec<_> = keys.iter().map(|k| check(k)).collect();
        assert_eq!(passing.iter().filter(|s| **s == 200).count(), 1);
    }
}
