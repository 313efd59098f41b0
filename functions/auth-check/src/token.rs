//! JWS compact tokens (RFC 7515, RFC 7519): bounded, strict decoding of the
//! three parts, the header rules that keep the token from choosing its own
//! key or algorithm (no `none`, no embedded `jwk`/`jku`/`x5u`/`x5c`, no
//! `crit` extension), and signature verification against configured keys.
//!
//! Decoding yields an [`UnverifiedToken`]; only verification turns it into
//! [`Claims`], which [`crate::claims::check`] then holds to the rules.

use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::keys::{Algorithm, Key, SignatureError, b64url_decode, printable};

/// The largest token accepted unless configured otherwise, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;

/// The most keys tried for a token without a `kid`, which bounds the work
/// one token can cause.
pub const MAX_KEY_ATTEMPTS: usize = 8;

/// The longest `kid` accepted, in bytes.
const MAX_KID_BYTES: usize = 256;

/// Why a token was refused. [`TokenError::description`] is safe to send
/// back; [`TokenError::code`] is a stable machine-readable kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is longer than the limit (checked before decoding).
    #[error("the token is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The token is not a well-formed JWS compact serialization.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is not one this function verifies (including `none`). The
    /// name is shortened and reduced to printable ASCII.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The header carries a key or a key location (`jwk`, `jku`, `x5u`,
    /// `x5c`): keys only ever come from configuration.
    #[error("the token header must not carry {0}")]
    ForbiddenHeader(&'static str),
    /// The header has a `crit` extension (none is understood here) or a
    /// malformed `crit`. Holds the extension's name or what is wrong.
    #[error("unsupported critical header: {0}")]
    UnknownCrit(String),
    /// No configured key has the token's `kid` (or, without one, none
    /// allows its algorithm).
    #[error("no key matches the token (kid {kid:?})")]
    NoMatchingKey {
        /// The token's `kid`, as sent.
        kid: Option<String>,
    },
    /// The key's type or the provider's allowlist forbids the algorithm.
    #[error("algorithm {0} is not allowed here")]
    AlgorithmNotAllowed(Algorithm),
    /// The signature does not verify.
    #[error("invalid signature")]
    BadSignature,
    /// `exp` has passed (with the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` has not been reached (with the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `iat` is older than the maximum age.
    #[error("the token is too old")]
    TooOld,
    /// `iss` is not the expected issuer.
    #[error("unexpected issuer")]
    WrongIssuer,
    /// `aud` names none of the expected audiences.
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// A required claim is missing.
    #[error("missing claim {0}")]
    MissingClaim(String),
    /// A claim has the wrong type.
    #[error("invalid claim {0}")]
    InvalidClaim(String),
}

impl TokenError {
    /// A short text safe for an RFC 6750 `error_description`: printable
    /// ASCII without `"` or `\`, never token content (beyond a sanitized
    /// algorithm name) or key material; claim names are included.
    pub fn description(&self) -> String {
        let text = match self {
            TokenError::UnknownCrit(_) => {
                "the token requires an unsupported critical header extension".to_owned()
            }
            TokenError::NoMatchingKey { kid: Some(_) } => {
                "no configured key matches the token's key id".to_owned()
            }
            TokenError::NoMatchingKey { kid: None } => {
                "no configured key can verify the token".to_owned()
            }
            TokenError::ForbiddenHeader(h) => {
                format!("the token header must not carry {h}; keys come only from configuration")
            }
            other => other.to_string(),
        };
        printable(&text, 160)
    }

    /// A stable machine-readable kind, e.g. `token-expired`.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLarge { .. } => "token-too-large",
            TokenError::Malformed(_) => "malformed-token",
            TokenError::UnsupportedAlgorithm(_) => "unsupported-alg",
            TokenError::ForbiddenHeader(_) => "forbidden-header",
            TokenError::UnknownCrit(_) => "unknown-crit",
            TokenError::NoMatchingKey { .. } => "unknown-key",
            TokenError::AlgorithmNotAllowed(_) => "alg-not-allowed",
            TokenError::BadSignature => "bad-signature",
            TokenError::Expired => "token-expired",
            TokenError::NotYetValid => "token-not-yet-valid",
            TokenError::IssuedInFuture => "token-issued-in-future",
            TokenError::TooOld => "token-too-old",
            TokenError::WrongIssuer => "wrong-issuer",
            TokenError::WrongAudience => "wrong-audience",
            TokenError::MissingClaim(_) => "missing-claim",
            TokenError::InvalidClaim(_) => "invalid-claim",
        }
    }
}

/// The JOSE header fields this function uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The signature algorithm.
    pub alg: Algorithm,
    /// The key id, if any.
    pub kid: Option<String>,
    /// The media type, if any: `JWT`, `at+jwt` or `application/at+jwt`.
    pub typ: Option<String>,
}

/// Header parameters that would let the token bring or point at its own
/// key (RFC 7515 §4.1.1-4.1.6 and RFC 8725 §3.10).
const FORBIDDEN_HEADERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

/// Header names registered by RFC 7515/7516, which `crit` must not list.
const REGISTERED_HEADERS: [&str; 14] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc",
    "zip", "epk",
];

/// A decoded token whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct UnverifiedToken<'a> {
    /// The checked header.
    pub header: Header,
    claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl<'a> UnverifiedToken<'a> {
    /// Decodes a compact JWS of at most `max_bytes` (checked before any
    /// decoding): three base64url parts (no padding, no other alphabet), a
    /// header and payload that are JSON objects, and a header this
    /// function accepts.
    pub fn decode(token: &'a str, max_bytes: usize) -> Result<UnverifiedToken<'a>, TokenError> {
        if token.len() > max_bytes {
            return Err(TokenError::TooLarge { limit: max_bytes });
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("a JWT has three dot-separated parts"));
        };
        match parts.count() {
            0 => {}
            2 => {
                return Err(TokenError::Malformed(
                    "an encrypted token (JWE) is not accepted",
                ));
            }
            _ => return Err(TokenError::Malformed("a JWT has three dot-separated parts")),
        }

        let header = json_object(
            header_b64,
            "the header is not base64url",
            "the header is not JSON",
            "the header is not a JSON object",
        )?;
        let header = check_header(&header)?;
        let claims = json_object(
            payload_b64,
            "the payload is not base64url",
            "the payload is not JSON",
            "the payload is not a JSON object",
        )?;
        let signature = b64url_decode(signature_b64)
            .ok_or(TokenError::Malformed("the signature is not base64url"))?;
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        Ok(UnverifiedToken {
            header,
            claims,
            signing_input,
            signature,
        })
    }

    /// The JWS signing input: `header.payload` as sent.
    pub fn signing_input(&self) -> &str {
        self.signing_input
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The claims before verification. Untrusted: only for choosing which
    /// issuer's keys and rules to verify with (by `iss`).
    pub fn unverified_claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Verifies the signature with `key`, which must allow the token's
    /// algorithm.
    pub fn verify(self, key: &Key) -> Result<Claims, TokenError> {
        let alg = self.header.alg;
        if !key.allows(alg) {
            return Err(TokenError::AlgorithmNotAllowed(alg));
        }
        match key.verify(alg, self.signing_input.as_bytes(), &self.signature) {
            Ok(()) => Ok(Claims::from(self.claims)),
            Err(SignatureError::AlgorithmNotAllowed { alg }) => {
                Err(TokenError::AlgorithmNotAllowed(alg))
            }
            Err(SignatureError::Invalid) => Err(TokenError::BadSignature),
        }
    }

    /// Verifies the signature with one of `keys`, for a provider that
    /// allows the algorithms `allowed`. With a `kid`, only the keys with
    /// that `kid` are used (or, if none has it, the keys without a `kid`,
    /// as configured static keys often are); without one, up to
    /// [`MAX_KEY_ATTEMPTS`] keys that allow the algorithm are tried. A key
    /// is never used for an algorithm its type does not allow.
    pub fn verify_with(self, keys: &[Key], allowed: &[Algorithm]) -> Result<Claims, TokenError> {
        let alg = self.header.alg;
        let input = self.signing_input.as_bytes();
        let verified = self
            .candidates(keys, allowed)?
            .iter()
            .any(|k| k.verify(alg, input, &self.signature).is_ok());
        self.accept(verified)
    }

    /// The keys [`UnverifiedToken::verify_with`] would try, in order (at
    /// most [`MAX_KEY_ATTEMPTS`]), for a caller that checks the signature
    /// itself (e.g. with the runtime's WebCrypto) and then calls
    /// [`UnverifiedToken::accept`].
    pub fn candidates<'k>(
        &self,
        keys: &'k [Key],
        allowed: &[Algorithm],
    ) -> Result<Vec<&'k Key>, TokenError> {
        let alg = self.header.alg;
        if !allowed.contains(&alg) {
            return Err(TokenError::AlgorithmNotAllowed(alg));
        }
        let candidates: Vec<&Key> = match &self.header.kid {
            Some(kid) => {
                let with_kid: Vec<&Key> = keys.iter().filter(|k| k.kid() == Some(kid)).collect();
                if with_kid.is_empty() {
                    keys.iter().filter(|k| k.kid().is_none()).collect()
                } else {
                    with_kid
                }
            }
            None => keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(TokenError::NoMatchingKey {
                kid: self.header.kid.clone(),
            });
        }
        let usable: Vec<&Key> = candidates
            .into_iter()
            .filter(|k| k.allows(alg))
            .take(MAX_KEY_ATTEMPTS)
            .collect();
        if usable.is_empty() {
            return Err(TokenError::AlgorithmNotAllowed(alg));
        }
        Ok(usable)
    }

    /// The claims, if one of [`UnverifiedToken::candidates`] verified the
    /// signature; else [`TokenError::BadSignature`].
    pub fn accept(self, verified: bool) -> Result<Claims, TokenError> {
        if verified {
            Ok(Claims::from(self.claims))
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

/// A base64url part that must hold a JSON object.
fn json_object(
    part: &str,
    not_b64: &'static str,
    not_json: &'static str,
    not_object: &'static str,
) -> Result<Map<String, Value>, TokenError> {
    let bytes = b64url_decode(part).ok_or(TokenError::Malformed(not_b64))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TokenError::Malformed(not_object)),
        Err(_) => Err(TokenError::Malformed(not_json)),
    }
}

/// The header rules: a supported `alg`, no key-bearing parameters, no
/// `crit`, an access-token or JWT `typ`, no nested JWT, a string `kid`.
fn check_header(header: &Map<String, Value>) -> Result<Header, TokenError> {
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Algorithm::from_name(name)
            .ok_or_else(|| TokenError::UnsupportedAlgorithm(printable(name, 16)))?,
        Some(_) => return Err(TokenError::Malformed("alg is not a string")),
        None => return Err(TokenError::Malformed("the header has no alg")),
    };
    if let Some(name) = FORBIDDEN_HEADERS.iter().find(|h| header.contains_key(**h)) {
        return Err(TokenError::ForbiddenHeader(name));
    }
    if let Some(crit) = header.get("crit") {
        return Err(TokenError::UnknownCrit(crit_problem(crit)));
    }
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(typ)) => {
            let ok = ["JWT", "at+jwt", "application/at+jwt"]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(typ));
            if !ok {
                return Err(TokenError::Malformed(
                    "typ must be JWT, at+jwt or application/at+jwt",
                ));
            }
            Some(typ.clone())
        }
        Some(_) => return Err(TokenError::Malformed("typ is not a string")),
    };
    // A nested JWT (RFC 7519 §5.2) would need a second verification.
    if header
        .get("cty")
        .and_then(Value::as_str)
        .is_some_and(|c| c.eq_ignore_ascii_case("JWT"))
    {
        return Err(TokenError::Malformed(
            "nested tokens (cty JWT) are not accepted",
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) if kid.len() <= MAX_KID_BYTES => Some(kid.clone()),
        Some(Value::String(_)) => return Err(TokenError::Malformed("kid is too long")),
        Some(_) => return Err(TokenError::Malformed("kid is not a string")),
    };
    Ok(Header { alg, kid, typ })
}

/// What is wrong with a `crit` parameter (RFC 7515 §4.1.11): malformed, or
/// naming an extension this function does not understand (any).
fn crit_problem(crit: &Value) -> String {
    let Some(names) = crit.as_array() else {
        return "crit is not an array".to_owned();
    };
    if names.is_empty() {
        return "crit is empty".to_owned();
    }
    let mut first = None;
    for name in names {
        let Some(name) = name.as_str() else {
            return "crit lists a non-string".to_owned();
        };
        if REGISTERED_HEADERS.contains(&name) {
            return "crit lists a registered header".to_owned();
        }
        first.get_or_insert(name);
    }
    printable(first.unwrap_or_default(), 32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::keys::tests::{b64, ed25519_pair, p256_pair, pem, rsa_jwk, rsa_spki_der};
    use ed25519_dalek::Signer as _;
    use hmac::{Hmac, Mac as _};
    use serde_json::json;
    use sha2::Sha256;

    const SECRET: &[u8] = b"an HMAC secret of at least 32 bytes!";

    fn hs256(secret: &[u8], input: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }

    /// A compact token over `header` and `claims`, signed by `sign`.
    fn token(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = sign(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    fn hs_token(header: &Value) -> String {
        token(header, &json!({"sub": "u"}), |i| hs256(SECRET, i))
    }

    fn decode(t: &str) -> Result<UnverifiedToken<'_>, TokenError> {
        UnverifiedToken::decode(t, DEFAULT_MAX_TOKEN_BYTES)
    }

    #[test]
    fn hs256_round_trip() {
        let t = hs_token(&json!({"alg": "HS256", "typ": "JWT"}));
        let key = Key::hmac(SECRET).unwrap();
        let u = decode(&t).unwrap();
        assert_eq!(u.header.alg, Algorithm::Hs256);
        assert_eq!(u.header.typ.as_deref(), Some("JWT"));
        assert_eq!(u.unverified_claims()["sub"], "u");
        assert_eq!(u.signature().len(), 32);
        assert!(t.starts_with(u.signing_input()));
        let claims = u.verify(&key).unwrap();
        assert_eq!(claims.sub(), Some("u"));
        let other = Key::hmac(b"another secret of at least 32 bytes!").unwrap();
        assert_eq!(
            decode(&t).unwrap().verify(&other),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn es256_and_eddsa_round_trip() {
        let (sk, jwk) = p256_pair(21);
        let t = token(&json!({"alg": "ES256"}), &json!({"a": 1}), |i| {
            let s: p256::ecdsa::Signature = sk.sign(i);
            s.to_bytes().to_vec()
        });
        let key = Key::from_jwk(&jwk).unwrap();
        assert!(decode(&t).unwrap().verify(&key).is_ok());

        let (sk, jwk) = ed25519_pair(21);
        let t = token(&json!({"alg": "EdDSA"}), &json!({"a": 1}), |i| {
            sk.sign(i).to_bytes().to_vec()
        });
        let key = Key::from_jwk(&jwk).unwrap();
        assert!(decode(&t).unwrap().verify(&key).is_ok());
    }

    #[test]
    fn alg_none_and_unknown_algorithms_are_refused() {
        for alg in ["none", "None", "NONE", "nOnE"] {
            let h = b64(json!({"alg": alg}).to_string().as_bytes());
            let p = b64(br#"{"sub":"admin"}"#);
            for t in [format!("{h}.{p}."), format!("{h}.{p}.c2ln")] {
                assert_eq!(
                    decode(&t).unwrap_err(),
                    TokenError::UnsupportedAlgorithm(alg.into())
                );
            }
        }
        for alg in [
            "HS1024", "RS1", "ES256K", "hs256", "es512", "Ed448", "PS512 ",
        ] {
            let t = hs_token(&json!({"alg": alg}));
            assert_eq!(
                decode(&t).unwrap_err(),
                TokenError::UnsupportedAlgorithm(alg.into())
            );
        }
        let t = hs_token(&json!({"alg": "x\"y\\z".repeat(10)}));
        let e = decode(&t).unwrap_err();
        assert_eq!(
            e,
            TokenError::UnsupportedAlgorithm("x?y?zx?y?zx?y?zx...".into())
        );
        assert_eq!(e.code(), "unsupported-alg");
        assert_eq!(
            decode(&hs_token(&json!({"alg": ["HS256"]}))).unwrap_err(),
            TokenError::Malformed("alg is not a string")
        );
        assert_eq!(
            decode(&hs_token(&json!({"typ": "JWT"}))).unwrap_err(),
            TokenError::Malformed("the header has no alg")
        );
    }

    #[test]
    fn rs_hs_confusion_is_refused() {
        let rsa = Key::from_jwk(&rsa_jwk()).unwrap();
        let (n, e) = rsa.rsa_components().unwrap();
        let pem = pem("PUBLIC KEY", &rsa_spki_der(&n, &e));
        assert_eq!(
            Key::from_pem(&pem).unwrap().rsa_components(),
            rsa.rsa_components()
        );
        // The attacker signs HS256 with the public key's PEM or JWK text.
        for secret in [pem.as_bytes().to_vec(), rsa_jwk().to_string().into_bytes()] {
            let t = token(&json!({"alg": "HS256"}), &json!({"sub": "admin"}), |i| {
                hs256(&secret, i)
            });
            assert_eq!(
                decode(&t).unwrap().verify(&rsa),
                Err(TokenError::AlgorithmNotAllowed(Algorithm::Hs256))
            );
            let keys = [rsa.clone()];
            assert_eq!(
                decode(&t).unwrap().verify_with(&keys, &[Algorithm::Rs256]),
                Err(TokenError::AlgorithmNotAllowed(Algorithm::Hs256))
            );
            // Even a provider that (wrongly) allows HS256 never uses an
            // RSA key as an HMAC secret.
            assert_eq!(
                decode(&t)
                    .unwrap()
                    .verify_with(&keys, &[Algorithm::Rs256, Algorithm::Hs256]),
                Err(TokenError::AlgorithmNotAllowed(Algorithm::Hs256))
            );
        }
    }

    #[test]
    fn embedded_keys_are_refused() {
        let (_, jwk) = p256_pair(1);
        for (name, value) in [
            ("jwk", jwk),
            ("jku", json!("https://attacker.example/jwks.json")),
            ("x5u", json!("https://attacker.example/cert.pem")),
            ("x5c", json!(["MIIB"])),
        ] {
            let mut header = json!({"alg": "HS256"});
            header[name] = value;
            let e = decode(&hs_token(&header)).unwrap_err();
            assert_eq!(e, TokenError::ForbiddenHeader(name));
            assert_eq!(e.code(), "forbidden-header");
        }
    }

    #[test]
    fn crit_is_refused() {
        for (crit, shown) in [
            (json!(["exp"]), "exp"),
            (
                json!(["http://example.com/ext", "b"]),
                "http://example.com/ext",
            ),
            (json!(["b64"]), "b64"),
            (json!([]), "crit is empty"),
            (json!("b64"), "crit is not an array"),
            (json!([1]), "crit lists a non-string"),
            (json!(["alg"]), "crit lists a registered header"),
            (json!(["kid", "x"]), "crit lists a registered header"),
        ] {
            let mut header = json!({"alg": "HS256", "b64": true, "exp": 1});
            header["crit"] = crit.clone();
            let e = decode(&hs_token(&header)).unwrap_err();
            assert_eq!(e, TokenError::UnknownCrit(shown.into()), "{crit}");
            assert_eq!(e.code(), "unknown-crit");
            assert!(!e.description().contains(shown));
        }
    }

    #[test]
    fn size_is_checked_first() {
        let t = hs_token(&json!({"alg": "HS256"}));
        assert!(UnverifiedToken::decode(&t, t.len()).is_ok());
        assert_eq!(
            UnverifiedToken::decode(&t, t.len() - 1).unwrap_err(),
            TokenError::TooLarge { limit: t.len() - 1 }
        );
        let garbage = "x".repeat(DEFAULT_MAX_TOKEN_BYTES + 1);
        assert_eq!(
            decode(&garbage).unwrap_err(),
            TokenError::TooLarge {
                limit: DEFAULT_MAX_TOKEN_BYTES
            }
        );
    }

    #[test]
    fn malformed_tokens() {
        let good = hs_token(&json!({"alg": "HS256"}));
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let hdr = |v: &str| b64(v.as_bytes());
        for (t, why) in [
            (format!("{h}.{p}"), "a JWT has three dot-separated parts"),
            (
                format!("{h}.{p}.{s}.x"),
                "a JWT has three dot-separated parts",
            ),
            (
                format!("{h}.{p}.{s}.x.y"),
                "an encrypted token (JWE) is not accepted",
            ),
            (String::new(), "a JWT has three dot-separated parts"),
            (format!("{h}=.{p}.{s}"), "the header is not base64url"),
            (format!("{h}.{p}.{s}="), "the signature is not base64url"),
            (
                format!("{h}.{p}.{}", s.replace('_', "/").replace('-', "+") + "+"),
                "the signature is not base64url",
            ),
            (format!(" {h}.{p}.{s}"), "the header is not base64url"),
            (
                format!("{}.{p}.{s}", hdr("{\"alg\":")),
                "the header is not JSON",
            ),
            (
                format!("{}.{p}.{s}", hdr("[\"HS256\"]")),
                "the header is not a JSON object",
            ),
            (
                format!("{h}.{}.{s}", hdr("[1]")),
                "the payload is not a JSON object",
            ),
            (format!("{h}.{}.{s}", hdr("{")), "the payload is not JSON"),
            (format!("{h}.{p}!.{s}"), "the payload is not base64url"),
        ] {
            assert_eq!(decode(&t).unwrap_err(), TokenError::Malformed(why), "{t}");
        }
    }

    #[test]
    fn typ_cty_and_kid() {
        for typ in ["JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt"] {
            let t = hs_token(&json!({"alg": "HS256", "typ": typ}));
            assert_eq!(decode(&t).unwrap().header.typ.as_deref(), Some(typ));
        }
        for typ in [json!("JWS"), json!("dpop+jwt"), json!(1)] {
            let t = hs_token(&json!({"alg": "HS256", "typ": typ}));
            assert!(matches!(decode(&t), Err(TokenError::Malformed(_))), "{typ}");
        }
        let t = hs_token(&json!({"alg": "HS256", "cty": "JWT"}));
        assert!(matches!(decode(&t), Err(TokenError::Malformed(_))));
        let t = hs_token(&json!({"alg": "HS256", "kid": 3}));
        assert_eq!(
            decode(&t).unwrap_err(),
            TokenError::Malformed("kid is not a string")
        );
        let t = hs_token(&json!({"alg": "HS256", "kid": "k".repeat(300)}));
        assert_eq!(
            decode(&t).unwrap_err(),
            TokenError::Malformed("kid is too long")
        );
    }

    fn es_token(sk: &p256::ecdsa::SigningKey, header: &Value) -> String {
        token(header, &json!({"sub": "u"}), |i| {
            let s: p256::ecdsa::Signature = sk.sign(i);
            s.to_bytes().to_vec()
        })
    }

    #[test]
    fn verify_with_picks_keys_by_kid() {
        let (sk_a, jwk_a) = p256_pair(31);
        let (sk_b, jwk_b) = p256_pair(32);
        let keys = [
            Key::from_jwk(&jwk_a).unwrap().with_kid("a"),
            Key::from_jwk(&jwk_b).unwrap().with_kid("b"),
        ];
        let es = [Algorithm::Es256];
        let t = es_token(&sk_b, &json!({"alg": "ES256", "kid": "b"}));
        assert!(decode(&t).unwrap().verify_with(&keys, &es).is_ok());
        // Signed by b but claiming a's kid: only a is tried.
        let t = es_token(&sk_b, &json!({"alg": "ES256", "kid": "a"}));
        assert_eq!(
            decode(&t).unwrap().verify_with(&keys, &es),
            Err(TokenError::BadSignature)
        );
        let t = es_token(&sk_a, &json!({"alg": "ES256", "kid": "c"}));
        let e = decode(&t).unwrap().verify_with(&keys, &es).unwrap_err();
        assert_eq!(
            e,
            TokenError::NoMatchingKey {
                kid: Some("c".into())
            }
        );
        assert_eq!(e.code(), "unknown-key");
        // Without a kid, every key that allows the algorithm is tried.
        let t = es_token(&sk_b, &json!({"alg": "ES256"}));
        assert!(decode(&t).unwrap().verify_with(&keys, &es).is_ok());
        // A key without a kid serves tokens with any kid.
        let bare = [Key::from_jwk(&jwk_a).unwrap()];
        let t = es_token(&sk_a, &json!({"alg": "ES256", "kid": "whatever"}));
        assert!(decode(&t).unwrap().verify_with(&bare, &es).is_ok());
        // The provider's allowlist comes first.
        let t = es_token(&sk_a, &json!({"alg": "ES256", "kid": "a"}));
        assert_eq!(
            decode(&t).unwrap().verify_with(&keys, &[Algorithm::Rs256]),
            Err(TokenError::AlgorithmNotAllowed(Algorithm::Es256))
        );
        assert_eq!(
            decode(&t).unwrap().verify_with(&[], &es),
            Err(TokenError::NoMatchingKey {
                kid: Some("a".into())
            })
        );
    }

    #[test]
    fn key_attempts_are_bounded() {
        let (sk, jwk) = p256_pair(40);
        let mut keys: Vec<Key> = (41..41 + MAX_KEY_ATTEMPTS as u8)
            .map(|s| Key::from_jwk(&p256_pair(s).1).unwrap())
            .collect();
        keys.push(Key::from_jwk(&jwk).unwrap());
        let t = es_token(&sk, &json!({"alg": "ES256"}));
        assert_eq!(
            decode(&t).unwrap().verify_with(&keys, &[Algorithm::Es256]),
            Err(TokenError::BadSignature)
        );
        keys.rotate_right(1);
        assert!(
            decode(&t)
                .unwrap()
                .verify_with(&keys, &[Algorithm::Es256])
                .is_ok()
        );
    }

    #[test]
    fn descriptions_are_safe() {
        let all = [
            TokenError::TooLarge { limit: 8192 },
            TokenError::Malformed("the header is not JSON"),
            TokenError::UnsupportedAlgorithm("none".into()),
            TokenError::ForbiddenHeader("jku"),
            TokenError::UnknownCrit("secret\"ext".into()),
            TokenError::NoMatchingKey {
                kid: Some("kid\"\\\u{1}".into()),
            },
            TokenError::NoMatchingKey { kid: None },
            TokenError::AlgorithmNotAllowed(Algorithm::Hs256),
            TokenError::BadSignature,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::IssuedInFuture,
            TokenError::TooOld,
            TokenError::WrongIssuer,
            TokenError::WrongAudience,
            TokenError::MissingClaim("ten\"ant\\".into()),
            TokenError::InvalidClaim("exp".into()),
        ];
        let mut codes = std::collections::BTreeSet::new();
        for e in &all {
            let d = e.description();
            assert!(!d.is_empty());
            assert!(
                d.bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
                "{d}"
            );
            assert!(!d.contains("kid") && !d.contains("secret"), "{d}");
            codes.insert(e.code());
        }
        assert_eq!(codes.len(), all.len() - 1, "one code per kind");
        assert_eq!(TokenError::Expired.code(), "token-expired");
        assert_eq!(TokenError::BadSignature.code(), "bad-signature");
        assert_eq!(TokenError::WrongAudience.code(), "wrong-audience");
        assert_eq!(
            TokenError::MissingClaim("tenant".into()).description(),
            "missing claim tenant"
        );
    }
}
