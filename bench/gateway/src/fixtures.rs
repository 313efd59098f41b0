//! What every measurement shares: the tokens (HS256, and RS256 from a
//! 2048-bit key generated from a fixed seed), the 1 KB JSON body, the
//! gateway's policy and secrets.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng as _;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

/// The HS256 key (the secret `AUTH_HS256_SECRET`).
pub const HS256_SECRET: &str = "gateway-bench-hs256-secret-0123456789abcdef";
/// The issuer of the HS256 tokens (a provider of its own).
pub const HS256_ISSUER: &str = "https://hs256.bench.invalid";
/// The issuer of the RS256 tokens (a provider of its own).
pub const RS256_ISSUER: &str = "https://rs256.bench.invalid";
/// Every token's audience.
pub const AUDIENCE: &str = "edge-bench";
/// Distinct subjects the tokens spread over (the rate limiter's keys).
pub const SUBJECTS: usize = 8;
/// The seed of the RSA key.
pub const RSA_SEED: u64 = 0x6a7e_2026_0015;
/// The RSA modulus size.
pub const RSA_BITS: usize = 2048;
/// The request body's size.
pub const BODY_BYTES: usize = 1024;
/// The email address in the body: the origin must never see it behind
/// the pipeline.
pub const EMAIL: &str = "ann.lee@example.com";
/// Where the pipeline route is: auth → rate limit → anonymize.
pub const PIPELINE_PATH: &str = "/pipeline/items";
/// Where the route with no stages is (the pass-through).
pub const PASS_PATH: &str = "/pass/items";
/// Where a route with the auth check alone is.
pub const AUTH_PATH: &str = "/auth-only/items";
/// Where a route with the rate limiter alone is (keyed by `x-client`).
pub const LIMIT_PATH: &str = "/limit-only/items";
/// Where a route with the anonymizer alone is.
pub const ANONYMIZE_PATH: &str = "/anonymize-only/items";
/// The header the rate limiter keys on without a verified caller.
pub const CLIENT_HEADER: &str = "x-client";
/// The rate limiter's lease: permits one store call takes.
pub const LEASE: u64 = 100;

/// The secrets the gateway reads for this policy, with their values.
pub const SECRETS: [(&str, &str); 3] = [
    ("AUTH_HS256_SECRET", HS256_SECRET),
    ("RATE_LIMIT_HASH_KEY", "gateway-bench-hash-key"),
    (
        "GDPR_ANONYMIZATION_SALT",
        "gateway-bench-anonymization-salt",
    ),
];

/// A token's signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alg {
    /// HMAC-SHA-256.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl Alg {
    /// The JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
        }
    }
}

/// Signs the benchmark's tokens.
pub struct Signer {
    rsa: SigningKey<Sha256>,
    jwk: Value,
}

impl Signer {
    /// Generates the RSA key from [`RSA_SEED`] (the same key on every
    /// runtime).
    pub fn new() -> Result<Signer, String> {
        let mut rng = ChaCha8Rng::seed_from_u64(RSA_SEED);
        let key = rsa::RsaPrivateKey::new(&mut rng, RSA_BITS).map_err(|e| e.to_string())?;
        let jwk = json!({
            "kty": "RSA",
            "kid": "rs",
            "alg": "RS256",
            "use": "sig",
            "n": b64(key.n().to_bytes_be()),
            "e": b64(key.e().to_bytes_be()),
        });
        Ok(Signer {
            rsa: SigningKey::<Sha256>::new(key),
            jwk,
        })
    }

    /// The public key as a JWK (kid `rs`).
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// A token for `sub`, issued at `iat` (seconds) and valid until `exp`.
    pub fn token(&self, alg: Alg, sub: &str, iat: u64, exp: u64) -> String {
        let (kid, issuer) = match alg {
            Alg::Hs256 => ("hs", HS256_ISSUER),
            Alg::Rs256 => ("rs", RS256_ISSUER),
        };
        let header = json!({ "alg": alg.name(), "typ": "JWT", "kid": kid });
        let claims = json!({
            "iss": issuer, "sub": sub, "aud": AUDIENCE, "iat": iat, "nbf": iat, "exp": exp,
            "scope": "orders:read orders:write", "roles": ["customer"],
        });
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = match alg {
            Alg::Hs256 => hs256(input.as_bytes()),
            Alg::Rs256 => self.rsa.sign(input.as_bytes()).to_vec(),
        };
        format!("{input}.{}", b64(signature))
    }
}

/// The HMAC-SHA-256 of `input` under [`HS256_SECRET`].
fn hs256(input: &[u8]) -> Vec<u8> {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(HS256_SECRET.as_bytes()) else {
        unreachable!("HMAC takes a key of any length")
    };
    mac.update(input);
    mac.finalize().into_bytes().to_vec()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The `i`th subject (of [`SUBJECTS`]).
pub fn subject(i: usize) -> String {
    format!("user-{}", i % SUBJECTS)
}

/// A token's signing input and signature bytes.
pub fn token_parts(token: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (input, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| "a token without a signature".to_owned())?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| format!("signature: {e}"))?;
    Ok((input.as_bytes().to_vec(), signature))
}

/// The request body: an order event of exactly [`BODY_BYTES`] bytes with
/// personal data in it (email, phone, IPv4, IPv6, card, IBAN).
pub fn body() -> String {
    let mut doc = json!({
        "event": "order.created",
        "order": "ORD-2026-004711",
        "user": {
            "id": 4711,
            "name": "Ann Lee",
            "email": EMAIL,
            "phone": "+44 20 7946 0958",
            "ip": "203.0.113.9",
        },
        "shipping": {
            "street": "12 Harbour Road",
            "city": "Bristol",
            "zip": "BS1 4RN",
            "country": "GB",
        },
        "payment": { "card": "4111 1111 1111 1111", "iban": "GB82 WEST 1234 5698 7654 32" },
        "items": [
            { "sku": "A-1001", "qty": 2, "price": 19.99, "title": "Trail running socks" },
            { "sku": "B-2002", "qty": 1, "price": 5.5, "title": "Water bottle, 0.75 l" },
            { "sku": "C-3003", "qty": 3, "price": 2.25, "title": "Energy gel, lemon" },
        ],
        "client": {
            "ip6": "2001:db8::8a2e:370:7334",
            "agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        },
        "note": "",
    });
    let filler = "Please leave the parcel with the neighbour at number 14 if nobody \
                  answers; call ahead on weekdays between nine and five. ";
    let bare = doc.to_string().len();
    let pad = BODY_BYTES.saturating_sub(bare);
    let note: String = filler.chars().cycle().take(pad).collect();
    doc["note"] = Value::String(note);
    doc.to_string()
}

/// The `[auth]` section: one provider per algorithm, static keys.
pub fn auth_section(rsa_jwk: &Value) -> Value {
    json!({
        "default": "authenticated",
        "providers": [
            {
                "issuer": HS256_ISSUER,
                "audiences": [AUDIENCE],
                "algorithms": ["HS256"],
                "keys": [{ "kid": "hs", "hmac_secret": "AUTH_HS256_SECRET" }],
                "required_claims": ["sub"],
            },
            {
                "issuer": RS256_ISSUER,
                "audiences": [AUDIENCE],
                "algorithms": ["RS256"],
                "keys": [{ "kid": "rs", "jwk": rsa_jwk }],
                "required_claims": ["sub"],
            },
        ],
    })
}

/// The `[rate_limit]` section: one leased fixed window per subject (per
/// [`CLIENT_HEADER`] without one), its limit out of reach (nothing is
/// refused).
pub fn rate_limit_section() -> Value {
    json!({
        "hash_key_secret": "RATE_LIMIT_HASH_KEY",
        "scopes": [{
            "name": "BENCH",
            "algorithm": "fixed_window",
            "limit": 1_000_000_000u64,
            "period": "1d",
            "key": ["sub"],
            "fallback_key": [format!("header:{CLIENT_HEADER}")],
            "lease": LEASE,
        }],
    })
}

/// The `[anonymize]` section: the gateway's built-in entity operators.
pub fn anonymize_section() -> Value {
    json!({
        "unknown_content": "pass",
        "entities": {
            "email": "hash",
            "ipv4": "hash",
            "ipv6": "hash",
            "phone": "mask(2)",
            "card": "mask(4)",
            "iban": "mask(4)",
            "jwt": "redact",
            "api_key": "redact",
        },
    })
}

/// The gateway's policy (JSON): [`PIPELINE_PATH`] through every stage,
/// [`PASS_PATH`] through none, and a route per stage alone, all to
/// `origin`.
pub fn gateway_policy(origin: &str, rsa_jwk: &Value) -> String {
    json!({
        "gateway": {
            "origin": origin,
            "routes": [
                {
                    "route": "/pipeline/**",
                    "auth": true,
                    "rate_limit": true,
                    "anonymize": "request",
                },
                { "route": "/pass/**" },
                { "route": "/auth-only/**", "auth": true },
                { "route": "/limit-only/**", "rate_limit": true },
                { "route": "/anonymize-only/**", "anonymize": "request" },
            ],
        },
        "auth": auth_section(rsa_jwk),
        "rate_limit": rate_limit_section(),
        "anonymize": anonymize_section(),
    })
    .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_one_kilobyte_of_json_with_personal_data() {
        let body = body();
        assert_eq!(body.len(), BODY_BYTES);
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["user"]["email"], EMAIL);
    }

    #[test]
    fn tokens_have_three_parts() {
        let signer = Signer::new().unwrap();
        for alg in [Alg::Hs256, Alg::Rs256] {
            let token = signer.token(alg, "user-1", 1, 2);
            assert_eq!(token.split('.').count(), 3);
            let (_, signature) = token_parts(&token).unwrap();
            assert_eq!(signature.len(), if alg == Alg::Hs256 { 32 } else { 256 });
        }
    }
}
