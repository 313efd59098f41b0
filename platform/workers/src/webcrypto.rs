//! Signature checks through the Workers runtime's WebCrypto
//! (`crypto.subtle`), for the algorithms workerd implements natively: RSA
//! (PKCS#1 v1.5 and PSS with SHA-256, SHA-384 and SHA-512), ECDSA
//! P-256/SHA-256, P-384/SHA-384 and P-521/SHA-512, and Ed25519.
//!
//! It exists because on Workers the runtime's native code is much faster
//! than pure-Rust big-number arithmetic compiled to wasm32 (which has no
//! 64×64→128 multiply): `cargo xtask bench auth-check` measures both on
//! `wrangler dev`. The portable verification (auth-check's `Key::verify`)
//! stays the reference and what every other runtime uses.
//!
//! Imported `CryptoKey`s are kept per isolate, keyed by algorithm and key
//! material, so a key is imported once, not per request ([`clear_key_cache`]
//! empties the cache).
//!
//! Formats are JWS's: RSA moduli and exponents big-endian, ECDSA signatures
//! `r || s` (which is also WebCrypto's), Ed25519 keys the 32 raw bytes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast as _, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

/// RSA signature schemes and their hashes (PSS: MGF1 with the same hash,
/// a salt of the hash's size, as JWS has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RsaAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (JWS `RS256`).
    Pkcs1Sha256,
    /// RSASSA-PSS, MGF1-SHA-256, 32-byte salt (JWS `PS256`).
    PssSha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (JWS `RS384`).
    Pkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512 (JWS `RS512`).
    Pkcs1Sha512,
    /// RSASSA-PSS, MGF1-SHA-384, 48-byte salt (JWS `PS384`).
    PssSha384,
    /// RSASSA-PSS, MGF1-SHA-512, 64-byte salt (JWS `PS512`).
    PssSha512,
}

impl RsaAlg {
    /// The WebCrypto algorithm name, the hash, and the PSS salt length
    /// (`None` for PKCS#1 v1.5).
    fn params(self) -> (&'static str, &'static str, Option<u32>) {
        match self {
            RsaAlg::Pkcs1Sha256 => ("RSASSA-PKCS1-v1_5", "SHA-256", None),
            RsaAlg::Pkcs1Sha384 => ("RSASSA-PKCS1-v1_5", "SHA-384", None),
            RsaAlg::Pkcs1Sha512 => ("RSASSA-PKCS1-v1_5", "SHA-512", None),
            RsaAlg::PssSha256 => ("RSA-PSS", "SHA-256", Some(32)),
            RsaAlg::PssSha384 => ("RSA-PSS", "SHA-384", Some(48)),
            RsaAlg::PssSha512 => ("RSA-PSS", "SHA-512", Some(64)),
        }
    }
}

/// ECDSA curves, each with its JWS hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// P-256 with SHA-256 (JWS `ES256`).
    P256,
    /// P-384 with SHA-384 (JWS `ES384`).
    P384,
    /// P-521 with SHA-512 (JWS `ES512`).
    P521,
}

/// Why WebCrypto could not give an answer (a wrong signature is `Ok(false)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebCryptoError {
    /// The global `crypto.subtle` is missing.
    Unavailable,
    /// The runtime refused the key.
    Import(String),
    /// The runtime could not check the signature.
    Verify(String),
}

impl fmt::Display for WebCryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebCryptoError::Unavailable => f.write_str("crypto.subtle is not available"),
            WebCryptoError::Import(e) => write!(f, "WebCrypto refused the key: {e}"),
            WebCryptoError::Verify(e) => write!(f, "WebCrypto verify failed: {e}"),
        }
    }
}

impl std::error::Error for WebCryptoError {}

/// Checks an RSA signature over `signing_input` with the public key
/// (`n`, `e`), both big-endian.
pub async fn verify_rsa(
    alg: RsaAlg,
    n: &[u8],
    e: &[u8],
    signing_input: &[u8],
    signature: &[u8],
) -> Result<bool, WebCryptoError> {
    let (name, hash, salt) = alg.params();
    let material = [n, &[0], e].concat();
    let key = cached_key(Tag::Rsa(alg), material, || {
        let jwk = object(&[
            ("kty", "RSA".into()),
            ("n", b64(n)),
            ("e", b64(e)),
            ("ext", true.into()),
        ])?;
        let algorithm = object(&[("name", name.into()), ("hash", hash.into())])?;
        Ok(("jwk", jwk, algorithm))
    })
    .await?;
    let params = match salt {
        None => object(&[("name", name.into())])?,
        Some(salt) => object(&[("name", name.into()), ("saltLength", salt.into())])?,
    };
    verify(&params, &key, signing_input, signature).await
}

/// Checks an ECDSA signature (`r || s`) over `signing_input` with the
/// public point (`x`, `y`), big-endian coordinates.
pub async fn verify_ecdsa(
    curve: EcCurve,
    x: &[u8],
    y: &[u8],
    signing_input: &[u8],
    signature: &[u8],
) -> Result<bool, WebCryptoError> {
    let (crv, hash) = match curve {
        EcCurve::P256 => ("P-256", "SHA-256"),
        EcCurve::P384 => ("P-384", "SHA-384"),
        EcCurve::P521 => ("P-521", "SHA-512"),
    };
    let key = cached_key(Tag::Ec(curve), [x, y].concat(), || {
        let jwk = object(&[
            ("kty", "EC".into()),
            ("crv", crv.into()),
            ("x", b64(x)),
            ("y", b64(y)),
            ("ext", true.into()),
        ])?;
        let algorithm = object(&[("name", "ECDSA".into()), ("namedCurve", crv.into())])?;
        Ok(("jwk", jwk, algorithm))
    })
    .await?;
    let params = object(&[("name", "ECDSA".into()), ("hash", hash.into())])?;
    verify(&params, &key, signing_input, signature).await
}

/// Checks an Ed25519 signature over `signing_input` with the 32-byte
/// public key.
pub async fn verify_ed25519(
    public_key: &[u8],
    signing_input: &[u8],
    signature: &[u8],
) -> Result<bool, WebCryptoError> {
    let key = cached_key(Tag::Ed25519, public_key.to_vec(), || {
        let raw: Object = Uint8Array::from(public_key).into();
        Ok(("raw", raw, object(&[("name", "Ed25519".into())])?))
    })
    .await?;
    let params = object(&[("name", "Ed25519".into())])?;
    verify(&params, &key, signing_input, signature).await
}

/// Forgets every imported key of this isolate.
pub fn clear_key_cache() {
    KEYS.with(|keys| keys.borrow_mut().clear());
}

/// What a key was imported for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tag {
    Rsa(RsaAlg),
    Ec(EcCurve),
    Ed25519,
}

/// Keys kept per isolate; past this many the cache starts afresh (a JWKS
/// has a handful of keys; this bounds what rotating keys can pile up).
const MAX_CACHED_KEYS: usize = 64;

thread_local! {
    static KEYS: RefCell<HashMap<(Tag, Vec<u8>), CryptoKey>> = RefCell::new(HashMap::new());
}

/// The imported key for `(tag, material)`, importing it with what
/// `describe` returns (format, key data, algorithm) the first time.
async fn cached_key(
    tag: Tag,
    material: Vec<u8>,
    describe: impl FnOnce() -> Result<(&'static str, Object, Object), WebCryptoError>,
) -> Result<CryptoKey, WebCryptoError> {
    let id = (tag, material);
    if let Some(key) = KEYS.with(|keys| keys.borrow().get(&id).cloned()) {
        return Ok(key);
    }
    let (format, data, algorithm) = describe()?;
    let usages = Array::of1(&"verify".into());
    let promise = subtle()?
        .import_key_with_object(format, &data, &algorithm, false, &usages)
        .map_err(|e| WebCryptoError::Import(describe_js(&e)))?;
    let key: CryptoKey = JsFuture::from(promise)
        .await
        .map_err(|e| WebCryptoError::Import(describe_js(&e)))?
        .unchecked_into();
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(id, key.clone());
    });
    Ok(key)
}

async fn verify(
    params: &Object,
    key: &CryptoKey,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<bool, WebCryptoError> {
    // WebCrypto copies both buffers before `verify` returns, so views into
    // wasm memory are safe to pass.
    let promise = subtle()?
        .verify_with_object_and_u8_array_and_u8_array(params, key, signature, signing_input)
        .map_err(|e| WebCryptoError::Verify(describe_js(&e)))?;
    let verdict = JsFuture::from(promise)
        .await
        .map_err(|e| WebCryptoError::Verify(describe_js(&e)))?;
    Ok(verdict.as_bool() == Some(true))
}

/// The global `crypto.subtle` (workerd has no `window`).
fn subtle() -> Result<SubtleCrypto, WebCryptoError> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into())
        .map_err(|_| WebCryptoError::Unavailable)?;
    let subtle =
        Reflect::get(&crypto, &"subtle".into()).map_err(|_| WebCryptoError::Unavailable)?;
    if subtle.is_undefined() || subtle.is_null() {
        return Err(WebCryptoError::Unavailable);
    }
    Ok(subtle.unchecked_into())
}

fn object(members: &[(&str, JsValue)]) -> Result<Object, WebCryptoError> {
    let out = Object::new();
    for (name, value) in members {
        Reflect::set(&out, &(*name).into(), value)
            .map_err(|e| WebCryptoError::Import(describe_js(&e)))?;
    }
    Ok(out)
}

fn b64(bytes: &[u8]) -> JsValue {
    URL_SAFE_NO_PAD.encode(bytes).into()
}

/// A JS exception as text (`name: message` for `Error`s).
fn describe_js(value: &JsValue) -> String {
    match value.dyn_ref::<js_sys::Error>() {
        Some(e) => format!("{}: {}", String::from(e.name()), String::from(e.message())),
        None => format!("{value:?}"),
    }
}
