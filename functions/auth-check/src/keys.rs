//! Verification keys and signatures: JWKs (RFC 7517/7518, RFC 8037 for
//! Ed25519), SPKI PEM public keys and HMAC secrets, each bound to the one
//! JWS algorithm family its type allows, so that a token can never choose
//! how its own signature is checked (no `alg=none`, no RS/HS confusion).
//!
//! Keys only ever come from configuration or a configured JWKS; nothing in
//! a token is used to find or build one. Errors name members and limits,
//! never key material.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac as _};
use rsa::pkcs1::der::Decode as _;
use rsa::pkcs8::ObjectIdentifier;
use rsa::pkcs8::spki::SubjectPublicKeyInfoRef;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, RsaPublicKey};
use serde_json::Value;
use sha2::{Sha256, Sha384, Sha512};

/// A JWS algorithm this function verifies (RFC 7518, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256 (32-byte salt).
    Ps256,
    /// RSASSA-PSS with SHA-384 and MGF1-SHA-384 (48-byte salt).
    Ps384,
    /// RSASSA-PSS with SHA-512 and MGF1-SHA-512 (64-byte salt).
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
    /// Ed25519.
    EdDsa,
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
}

impl Algorithm {
    /// Every algorithm, in the order above.
    pub const ALL: [Algorithm; 13] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Es512,
        Algorithm::EdDsa,
        Algorithm::Hs256,
        Algorithm::Hs384,
        Algorithm::Hs512,
    ];

    /// The JWS `alg` name (`RS256`, …, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Es512 => "ES512",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
        }
    }

    /// The algorithm named `alg` (exact, case-sensitive), if supported.
    pub fn from_name(alg: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == alg)
    }

    /// Whether this is an HMAC (shared-secret) algorithm.
    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512)
    }

    /// The names of every algorithm, comma-separated (for messages).
    pub fn names() -> String {
        Algorithm::ALL.map(Algorithm::as_str).join(", ")
    }

    /// The shortest HMAC secret an `HSxxx` algorithm takes: its hash size
    /// (RFC 7518 §3.2); `None` for the others.
    pub fn min_hmac_secret(self) -> Option<usize> {
        match self {
            Algorithm::Hs256 => Some(32),
            Algorithm::Hs384 => Some(48),
            Algorithm::Hs512 => Some(64),
            _ => None,
        }
    }

    /// This algorithm's bit in an [`AlgSet`].
    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits: bounds the verification cost.
pub const MAX_RSA_BITS: usize = 8192;
/// The shortest HMAC secret accepted: the hash size of HS256 (RFC 7518
/// §3.2). HS384 takes 48 bytes or more, HS512 64.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;
/// The most keys [`parse_jwks`] reads from one set.
pub const MAX_JWKS_KEYS: usize = 100;
/// The longest PEM text [`Key::from_pem`] reads.
const MAX_PEM_BYTES: usize = 64 * 1024;

/// Why a key could not be built or used. Messages name members, sizes and
/// algorithms, never key material; strings taken from the input are
/// shortened and reduced to printable ASCII.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The JWK is not a JSON object.
    #[error("a JWK must be a JSON object")]
    NotAnObject,
    /// A required member is missing.
    #[error("JWK member {0} is missing")]
    MissingMember(&'static str),
    /// A member has the wrong type or an unusable value.
    #[error("JWK member {member} is invalid: {reason}")]
    InvalidMember {
        /// The member's name.
        member: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `kty` names a key type this function does not verify with.
    #[error("unsupported key type {0}")]
    UnsupportedKeyType(String),
    /// `crv` names a curve this function does not verify with.
    #[error("unsupported curve {0}")]
    UnsupportedCurve(String),
    /// `alg` names an algorithm this function does not verify.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The algorithm does not belong to the key's type.
    #[error("algorithm {alg} cannot be used with a key of type {kty}")]
    AlgorithmMismatch {
        /// The algorithm asked for.
        alg: Algorithm,
        /// The key's type (`RSA`, `EC`, `OKP`, `oct`).
        kty: &'static str,
    },
    /// `use` is not `sig`.
    #[error("the key is not for signatures (use {0})")]
    NotForSignatures(String),
    /// `key_ops` does not include `verify`.
    #[error("the key's key_ops do not include verify")]
    NoVerifyOperation,
    /// The RSA modulus is too small or too large.
    #[error("an RSA modulus of {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted")]
    RsaModulusSize {
        /// The modulus' size.
        bits: usize,
    },
    /// The RSA key has the ROCA fingerprint (CVE-2017-15361): it was made
    /// by Infineon's RSALib and its private key can be computed from the
    /// public key.
    #[error(
        "the RSA key has the ROCA fingerprint (CVE-2017-15361, Infineon RSALib): its private key can be computed from the public key; replace it"
    )]
    RocaFingerprint,
    /// The RSA public exponent is even, 1, or too large.
    #[error("the RSA public exponent must be odd, greater than 1 and below 2^33")]
    RsaExponent,
    /// The EC point or Ed25519 key is not a valid (or is a weak) public key.
    #[error("the public key is not a valid point of its curve")]
    InvalidPoint,
    /// The HMAC secret is shorter than the hash of the algorithm
    /// (RFC 7518 §3.2).
    #[error("an HMAC secret of {len} bytes; {alg} needs at least {min}", min = alg.min_hmac_secret().unwrap_or(MIN_HMAC_SECRET_BYTES))]
    HmacSecretTooShort {
        /// The secret's length in bytes.
        len: usize,
        /// The algorithm it is too short for.
        alg: Algorithm,
    },
    /// A published JWKS must never hand out HMAC secrets.
    #[error("a JWK set must not publish symmetric (oct) keys")]
    SymmetricInJwks,
    /// The PEM text is not a supported public key.
    #[error("not a PEM public key: {0}")]
    Pem(&'static str),
    /// The document is not a JWK set.
    #[error("not a JWK set: {0}")]
    NotAJwkSet(&'static str),
    /// Two different keys of one set share a `kid`: which one the issuer
    /// meant cannot be known. Holds the `kid` (shortened, printable).
    #[error("two different keys have kid {0:?}; a kid must name one key")]
    DuplicateKid(String),
    /// The JWK set has more keys than [`MAX_JWKS_KEYS`].
    #[error("a JWK set of more than {limit} keys")]
    TooManyKeys {
        /// The limit.
        limit: usize,
    },
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The key does not allow this algorithm.
    #[error("the key does not allow {alg}")]
    AlgorithmNotAllowed {
        /// The algorithm asked for.
        alg: Algorithm,
    },
    /// The signature does not verify (including a malformed signature).
    #[error("invalid signature")]
    Invalid,
}

/// A set of algorithms, one bit each.
#[derive(Clone, Copy, PartialEq, Eq)]
struct AlgSet(u16);

impl AlgSet {
    fn of(algs: &[Algorithm]) -> AlgSet {
        AlgSet(algs.iter().fold(0, |set, a| set | a.bit()))
    }

    fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }
}

/// The public key (or HMAC state) itself.
#[derive(Clone)]
enum Material {
    Rsa(RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Hmac(Box<HmacKey>),
}

/// The keyed HMAC states of a shared secret, one per hash (the secret
/// itself is not kept), and the secret's length, which decides which of
/// them may be used (RFC 7518 §3.2: at least the hash size).
#[derive(Clone)]
struct HmacKey {
    len: usize,
    sha256: Hmac<Sha256>,
    sha384: Hmac<Sha384>,
    sha512: Hmac<Sha512>,
}

impl Material {
    /// The JWK `kty` of this material.
    fn kty(&self) -> &'static str {
        match self {
            Material::Rsa(_) => "RSA",
            Material::P256(_) | Material::P384(_) | Material::P521(_) => "EC",
            Material::Ed25519(_) => "OKP",
            Material::Hmac(_) => "oct",
        }
    }

    /// Every algorithm this type of key can verify.
    fn family(&self) -> AlgSet {
        match self {
            Material::Rsa(_) => AlgSet::of(&[
                Algorithm::Rs256,
                Algorithm::Rs384,
                Algorithm::Rs512,
                Algorithm::Ps256,
                Algorithm::Ps384,
                Algorithm::Ps512,
            ]),
            Material::P256(_) => AlgSet::of(&[Algorithm::Es256]),
            Material::P384(_) => AlgSet::of(&[Algorithm::Es384]),
            Material::P521(_) => AlgSet::of(&[Algorithm::Es512]),
            Material::Ed25519(_) => AlgSet::of(&[Algorithm::EdDsa]),
            Material::Hmac(key) => {
                let usable: Vec<Algorithm> = [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512]
                    .into_iter()
                    .filter(|a| a.min_hmac_secret().is_some_and(|min| key.len >= min))
                    .collect();
                AlgSet::of(&usable)
            }
        }
    }
}

/// A verification key: its material, an optional key id, and the
/// algorithms it may verify (always a subset of what its type allows).
#[derive(Clone)]
pub struct Key {
    material: Material,
    kid: Option<String>,
    allowed: AlgSet,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Key");
        d.field("kty", &self.material.kty());
        match &self.material {
            Material::Rsa(k) => d.field("bits", &k.n().bits()),
            Material::P256(_) => d.field("crv", &"P-256"),
            Material::P384(_) => d.field("crv", &"P-384"),
            Material::P521(_) => d.field("crv", &"P-521"),
            Material::Ed25519(_) => d.field("crv", &"Ed25519"),
            Material::Hmac(_) => d.field("secret", &"<redacted>"),
        };
        d.field("kid", &self.kid)
            .field("algorithms", &self.algorithms())
            .finish()
    }
}

impl Key {
    fn new(material: Material) -> Key {
        let allowed = material.family();
        Key {
            material,
            kid: None,
            allowed,
        }
    }

    /// A key from a JWK (RFC 7517): `kty` RSA, EC (P-256, P-384, P-521), OKP
    /// (Ed25519) or oct. An `alg` member restricts the key to it; `use`
    /// must be `sig` and `key_ops` must include `verify` when present.
    /// Private members (`d`, `p`, …) are ignored and never stored.
    pub fn from_jwk(jwk: &Value) -> Result<Key, KeyError> {
        let obj = jwk.as_object().ok_or(KeyError::NotAnObject)?;
        let kty = str_member(obj, "kty")?.ok_or(KeyError::MissingMember("kty"))?;
        if let Some(usage) = str_member(obj, "use")?
            && usage != "sig"
        {
            return Err(KeyError::NotForSignatures(printable(usage, 16)));
        }
        if let Some(ops) = obj.get("key_ops") {
            let ops = ops.as_array().ok_or(KeyError::InvalidMember {
                member: "key_ops",
                reason: "not an array",
            })?;
            if !ops.iter().any(|op| op.as_str() == Some("verify")) {
                return Err(KeyError::NoVerifyOperation);
            }
        }
        let alg = match str_member(obj, "alg")? {
            None => None,
            Some(name) => Some(
                Algorithm::from_name(name)
                    .ok_or_else(|| KeyError::UnsupportedAlgorithm(printable(name, 16)))?,
            ),
        };
        let kid = str_member(obj, "kid")?.map(str::to_owned);

        let material = match kty {
            "RSA" => {
                let n = b64_member(obj, "n")?;
                let e = b64_member(obj, "e")?;
                Material::Rsa(rsa_key(&n, &e)?)
            }
            "EC" => {
                let crv = str_member(obj, "crv")?.ok_or(KeyError::MissingMember("crv"))?;
                let x = b64_member(obj, "x")?;
                let y = b64_member(obj, "y")?;
                let size = match crv {
                    "P-256" => 32,
                    "P-384" => 48,
                    "P-521" => 66,
                    other => return Err(KeyError::UnsupportedCurve(printable(other, 16))),
                };
                // RFC 7518 §6.2.1.2: coordinates are full-length.
                if x.len() != size || y.len() != size {
                    return Err(KeyError::InvalidMember {
                        member: if x.len() != size { "x" } else { "y" },
                        reason: "wrong length for the curve",
                    });
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                ec_key(size, &point)?
            }
            "OKP" => {
                let crv = str_member(obj, "crv")?.ok_or(KeyError::MissingMember("crv"))?;
                if crv != "Ed25519" {
                    return Err(KeyError::UnsupportedCurve(printable(crv, 16)));
                }
                ed25519_key(&b64_member(obj, "x")?)?
            }
            "oct" => Key::hmac(&b64_member(obj, "k")?)?.material,
            other => return Err(KeyError::UnsupportedKeyType(printable(other, 16))),
        };
        let key = Key::new(material);
        let key = match kid {
            Some(kid) => key.with_kid(kid),
            None => key,
        };
        match alg {
            Some(alg) => key.restrict_to(alg),
            None => Ok(key),
        }
    }

    /// A key from a PEM public key: SPKI `BEGIN PUBLIC KEY` (RSA, EC P-256,
    /// P-384 or P-521, Ed25519) or PKCS#1 `BEGIN RSA PUBLIC KEY`.
    pub fn from_pem(pem: &str) -> Result<Key, KeyError> {
        if pem.len() > MAX_PEM_BYTES {
            return Err(KeyError::Pem("too long"));
        }
        let (label, der) = pem_decode(pem)?;
        let material = match label {
            "PUBLIC KEY" => spki_key(&der)?,
            "RSA PUBLIC KEY" => {
                let key = rsa::pkcs1::RsaPublicKey::from_der(&der)
                    .map_err(|_| KeyError::Pem("not a PKCS#1 RSA public key"))?;
                Material::Rsa(rsa_key(
                    key.modulus.as_bytes(),
                    key.public_exponent.as_bytes(),
                )?)
            }
            l if l.contains("PRIVATE") => {
                return Err(KeyError::Pem("a private key; configure the public key"));
            }
            "CERTIFICATE" => return Err(KeyError::Pem("a certificate; configure its public key")),
            _ => return Err(KeyError::Pem("expected BEGIN PUBLIC KEY")),
        };
        Ok(Key::new(material))
    }

    /// An HMAC key from a shared secret of at least 32 bytes: HS256, and
    /// HS384 from 48 bytes, HS512 from 64 (the hash sizes, RFC 7518 §3.2).
    pub fn hmac(secret: &[u8]) -> Result<Key, KeyError> {
        let len = secret.len();
        let short = |alg| KeyError::HmacSecretTooShort { len, alg };
        if len < MIN_HMAC_SECRET_BYTES {
            return Err(short(Algorithm::Hs256));
        }
        Ok(Key::new(Material::Hmac(Box::new(HmacKey {
            len,
            sha256: Hmac::new_from_slice(secret).map_err(|_| short(Algorithm::Hs256))?,
            sha384: Hmac::new_from_slice(secret).map_err(|_| short(Algorithm::Hs384))?,
            sha512: Hmac::new_from_slice(secret).map_err(|_| short(Algorithm::Hs512))?,
        }))))
    }

    /// This key with the key id `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Key {
        self.kid = Some(kid.into());
        self
    }

    /// This key allowed only `alg`, which its type must allow (and, for
    /// an HMAC secret, its length).
    pub fn restrict_to(mut self, alg: Algorithm) -> Result<Key, KeyError> {
        if let Material::Hmac(key) = &self.material
            && alg.is_hmac()
            && !self.material.family().contains(alg)
        {
            return Err(KeyError::HmacSecretTooShort { len: key.len, alg });
        }
        if !self.material.family().contains(alg) {
            return Err(KeyError::AlgorithmMismatch {
                alg,
                kty: self.material.kty(),
            });
        }
        self.allowed = AlgSet::of(&[alg]);
        Ok(self)
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key may verify `alg`.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.allowed.contains(alg)
    }

    /// The algorithms this key may verify.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(|a| self.allows(*a))
            .collect()
    }

    /// The length of an HMAC secret, in bytes (`None` for a public key).
    pub fn hmac_secret_len(&self) -> Option<usize> {
        match &self.material {
            Material::Hmac(key) => Some(key.len),
            _ => None,
        }
    }

    /// Whether this is a shared (HMAC) secret rather than a public key.
    pub fn is_symmetric(&self) -> bool {
        matches!(self.material, Material::Hmac(_))
    }

    /// The JWK key type: `RSA`, `EC`, `OKP` or `oct`.
    pub fn kty(&self) -> &'static str {
        self.material.kty()
    }

    /// Checks `signature` over `signing_input` with `alg`, which this key
    /// must allow. ECDSA signatures are JWS `r || s` (64, 96 or 132
    /// bytes); HMACs are compared in constant time; PSS uses a salt of the
    /// hash's size (RFC 7518 §3.5).
    pub fn verify(
        &self,
        alg: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        if !self.allows(alg) {
            return Err(SignatureError::AlgorithmNotAllowed { alg });
        }
        let (input, sig) = (signing_input, signature);
        let ok = match (&self.material, alg) {
            (Material::Rsa(key), Algorithm::Rs256) => rsa_pkcs1::<Sha256>(key, input, sig),
            (Material::Rsa(key), Algorithm::Rs384) => rsa_pkcs1::<Sha384>(key, input, sig),
            (Material::Rsa(key), Algorithm::Rs512) => rsa_pkcs1::<Sha512>(key, input, sig),
            (Material::Rsa(key), Algorithm::Ps256) => rsa_pss::<Sha256>(key, input, sig),
            (Material::Rsa(key), Algorithm::Ps384) => rsa_pss::<Sha384>(key, input, sig),
            (Material::Rsa(key), Algorithm::Ps512) => rsa_pss::<Sha512>(key, input, sig),
            (Material::P256(key), Algorithm::Es256) => {
                ecdsa_ok::<p256::ecdsa::Signature, _>(key, input, sig)?
            }
            (Material::P384(key), Algorithm::Es384) => {
                ecdsa_ok::<p384::ecdsa::Signature, _>(key, input, sig)?
            }
            // P-521 signatures are exactly 132 bytes (2 × 66).
            (Material::P521(key), Algorithm::Es512) => {
                ecdsa_ok::<p521::ecdsa::Signature, _>(key, input, sig)?
            }
            (Material::Ed25519(key), Algorithm::EdDsa) => {
                let sig = ed25519_dalek::Signature::from_slice(sig)
                    .map_err(|_| SignatureError::Invalid)?;
                key.verify_strict(input, &sig).is_ok()
            }
            // `verify_slice` compares in constant time and requires the
            // full tag (32, 48 or 64 bytes).
            (Material::Hmac(key), Algorithm::Hs256) => hmac_ok(key.sha256.clone(), input, sig),
            (Material::Hmac(key), Algorithm::Hs384) => hmac_ok(key.sha384.clone(), input, sig),
            (Material::Hmac(key), Algorithm::Hs512) => hmac_ok(key.sha512.clone(), input, sig),
            _ => return Err(SignatureError::AlgorithmNotAllowed { alg }),
        };
        if ok {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }

    /// The big-endian modulus and public exponent of an RSA key.
    pub fn rsa_components(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        match &self.material {
            Material::Rsa(key) => Some((key.n().to_bytes_be(), key.e().to_bytes_be())),
            _ => None,
        }
    }

    /// The key's public numbers, for a verifier outside Rust (the Workers
    /// build checks signatures with the runtime's WebCrypto).
    pub fn public_parts(&self) -> PublicParts {
        let coordinates = |point: &[u8], len: usize| {
            // Uncompressed SEC1: 0x04 || x || y.
            let (x, y) = point.get(1..)?.split_at_checked(len)?;
            Some((x.to_vec(), y.to_vec()))
        };
        match &self.material {
            Material::Rsa(key) => PublicParts::Rsa {
                n: key.n().to_bytes_be(),
                e: key.e().to_bytes_be(),
            },
            Material::P256(key) => coordinates(key.to_encoded_point(false).as_bytes(), 32)
                .map_or(PublicParts::Secret, |(x, y)| PublicParts::P256 { x, y }),
            Material::P384(key) => coordinates(key.to_encoded_point(false).as_bytes(), 48)
                .map_or(PublicParts::Secret, |(x, y)| PublicParts::P384 { x, y }),
            Material::P521(key) => coordinates(key.to_encoded_point(false).as_bytes(), 66)
                .map_or(PublicParts::Secret, |(x, y)| PublicParts::P521 { x, y }),
            Material::Ed25519(key) => PublicParts::Ed25519(key.to_bytes()),
            Material::Hmac(_) => PublicParts::Secret,
        }
    }
}

/// A key's public numbers (big-endian), see [`Key::public_parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicParts {
    /// RSA modulus and exponent.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
    /// A P-256 point.
    P256 {
        /// The x coordinate.
        x: Vec<u8>,
        /// The y coordinate.
        y: Vec<u8>,
    },
    /// A P-384 point.
    P384 {
        /// The x coordinate.
        x: Vec<u8>,
        /// The y coordinate.
        y: Vec<u8>,
    },
    /// A P-521 point (66-byte coordinates).
    P521 {
        /// The x coordinate.
        x: Vec<u8>,
        /// The y coordinate.
        y: Vec<u8>,
    },
    /// An Ed25519 public key.
    Ed25519([u8; 32]),
    /// A symmetric key: nothing public.
    Secret,
}

/// An RSA signature is exactly as long as the modulus (RFC 8017 §8.2.2).
fn rsa_signature_len_ok(key: &RsaPublicKey, signature: &[u8]) -> bool {
    signature.len() == key.size()
}

/// RSASSA-PKCS1-v1_5 with the hash `D`.
fn rsa_pkcs1<D>(key: &RsaPublicKey, signing_input: &[u8], signature: &[u8]) -> bool
where
    D: sha2::Digest + rsa::pkcs8::AssociatedOid,
{
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else {
        return false;
    };
    rsa_signature_len_ok(key, signature)
        && rsa::pkcs1v15::VerifyingKey::<D>::new(key.clone())
            .verify(signing_input, &sig)
            .is_ok()
}

/// RSASSA-PSS with the hash `D` for the message and MGF1, and a salt of
/// the hash's size (`new` takes it), as RFC 7518 §3.5 requires.
fn rsa_pss<D>(key: &RsaPublicKey, signing_input: &[u8], signature: &[u8]) -> bool
where
    D: sha2::Digest + sha2::digest::FixedOutputReset,
{
    let Ok(sig) = rsa::pss::Signature::try_from(signature) else {
        return false;
    };
    rsa_signature_len_ok(key, signature)
        && rsa::pss::VerifyingKey::<D>::new(key.clone())
            .verify(signing_input, &sig)
            .is_ok()
}

/// ECDSA with the signature type `S` (JWS `r || s`, of the curve's exact
/// length): a signature of another length is an error, not a mismatch.
fn ecdsa_ok<S, K>(key: &K, input: &[u8], signature: &[u8]) -> Result<bool, SignatureError>
where
    S: for<'a> TryFrom<&'a [u8]>,
    K: rsa::signature::Verifier<S>,
{
    let sig = S::try_from(signature).map_err(|_| SignatureError::Invalid)?;
    Ok(key.verify(input, &sig).is_ok())
}

/// Whether `tag` is the HMAC of `input` under the keyed state `mac`
/// (constant-time, full length only).
fn hmac_ok<M: hmac::Mac>(mut mac: M, input: &[u8], tag: &[u8]) -> bool {
    mac.update(input);
    mac.verify_slice(tag).is_ok()
}

/// The keys of a JWK set, and the ones that were left out, with why.
#[derive(Debug, Clone)]
pub struct JwkSet {
    /// The usable keys, in the set's order.
    pub keys: Vec<Key>,
    /// The keys left out: their `kid` (if any) and the reason.
    pub skipped: Vec<(Option<String>, KeyError)>,
}

/// Parses a JWK set (`{"keys": [...]}`, RFC 7517 §5). A key that cannot be
/// used here (`use` other than `sig`, an unknown type or curve, a bad
/// value, a weak key such as one with the ROCA fingerprint, and any
/// symmetric `oct` key, since a published set must never hand out
/// secrets) is skipped with its reason; a body that is not a JWK set, one
/// of more than [`MAX_JWKS_KEYS`] keys, or one where two different usable
/// keys share a `kid` ([`KeyError::DuplicateKid`]: the whole set is
/// refused) is an error. The same key listed twice under one `kid` is
/// kept once.
pub fn parse_jwks(body: &[u8]) -> Result<JwkSet, KeyError> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| KeyError::NotAJwkSet("not JSON"))?;
    parse_jwks_value(&doc)
}

/// [`parse_jwks`] of a JSON document already parsed.
pub fn parse_jwks_value(doc: &Value) -> Result<JwkSet, KeyError> {
    let keys = doc
        .as_object()
        .ok_or(KeyError::NotAJwkSet("not a JSON object"))?
        .get("keys")
        .ok_or(KeyError::NotAJwkSet("no keys member"))?
        .as_array()
        .ok_or(KeyError::NotAJwkSet("keys is not an array"))?;
    if keys.len() > MAX_JWKS_KEYS {
        return Err(KeyError::TooManyKeys {
            limit: MAX_JWKS_KEYS,
        });
    }
    let mut set = JwkSet {
        keys: Vec::with_capacity(keys.len()),
        skipped: Vec::new(),
    };
    for jwk in keys {
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        let parsed = if jwk.get("kty").and_then(Value::as_str) == Some("oct") {
            Err(KeyError::SymmetricInJwks)
        } else {
            Key::from_jwk(jwk)
        };
        match parsed {
            Ok(key) => {
                let twin = set
                    .keys
                    .iter()
                    .find(|k| k.kid().is_some() && k.kid() == key.kid());
                match twin {
                    None => set.keys.push(key),
                    Some(twin) if twin.public_parts() == key.public_parts() => {
                        if twin.allowed != key.allowed {
                            set.keys.push(key);
                        }
                    }
                    Some(_) => {
                        return Err(KeyError::DuplicateKid(printable(
                            key.kid().unwrap_or_default(),
                            64,
                        )));
                    }
                }
            }
            Err(e) => set.skipped.push((kid, e)),
        }
    }
    Ok(set)
}

/// `s` shortened to `max` characters and reduced to printable ASCII
/// without `"` or `\` (so it fits an RFC 6750 `error_description`).
pub(crate) fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| {
            if (' '..='~').contains(&c) && c != '"' && c != '\\' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push_str("...");
    }
    out
}

/// Strict base64url without padding (RFC 7515 §2), as JWS and JWK use.
pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// An optional string member; present but not a string is an error.
fn str_member<'a>(
    obj: &'a serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, KeyError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KeyError::InvalidMember {
            member: name,
            reason: "not a string",
        }),
    }
}

/// A required base64url member.
fn b64_member(
    obj: &serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<Vec<u8>, KeyError> {
    let s = str_member(obj, name)?.ok_or(KeyError::MissingMember(name))?;
    b64url_decode(s).ok_or(KeyError::InvalidMember {
        member: name,
        reason: "not base64url without padding",
    })
}

/// An RSA public key from big-endian `n` and `e`, within the size limits
/// and without the ROCA fingerprint (every RSA key goes through here: JWK,
/// JWKS, PEM, static keys).
fn rsa_key(n: &[u8], e: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    let bits = match n.first() {
        None => 0,
        Some(top) => n.len() * 8 - top.leading_zeros() as usize,
    };
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(KeyError::RsaModulusSize { bits });
    }
    if n.last().is_some_and(|low| low & 1 == 0) {
        return Err(KeyError::InvalidMember {
            member: "n",
            reason: "an RSA modulus is odd",
        });
    }
    if e.len() > 8 {
        return Err(KeyError::RsaExponent);
    }
    let e = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if e <= 1 || e % 2 == 0 || e >= 1 << 33 {
        return Err(KeyError::RsaExponent);
    }
    if crate::roca::has_fingerprint(n) {
        return Err(KeyError::RocaFingerprint);
    }
    RsaPublicKey::new_with_max_size(BigUint::from_bytes_be(n), BigUint::from(e), MAX_RSA_BITS)
        .map_err(|_| KeyError::RsaExponent)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// An ECDSA key from an uncompressed SEC1 point on the curve whose field
/// is `size` bytes; the point is checked to be on the curve.
fn ec_key(size: usize, point: &[u8]) -> Result<Material, KeyError> {
    // Only uncompressed points, as JWKs carry; SPKI keys are the same.
    if point.len() != 1 + 2 * size || point.first() != Some(&0x04) {
        return Err(KeyError::InvalidPoint);
    }
    match size {
        32 => p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .map(Material::P256)
            .map_err(|_| KeyError::InvalidPoint),
        48 => p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .map(Material::P384)
            .map_err(|_| KeyError::InvalidPoint),
        66 => p521::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .map(Material::P521)
            .map_err(|_| KeyError::InvalidPoint),
        _ => Err(KeyError::InvalidPoint),
    }
}

/// An Ed25519 key from its 32 bytes; small-order (weak) keys are refused.
fn ed25519_key(x: &[u8]) -> Result<Material, KeyError> {
    let bytes: &[u8; 32] = x.try_into().map_err(|_| KeyError::InvalidMember {
        member: "x",
        reason: "an Ed25519 key is 32 bytes",
    })?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
    if key.is_weak() {
        return Err(KeyError::InvalidPoint);
    }
    Ok(Material::Ed25519(key))
}

const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A key from a DER SubjectPublicKeyInfo (RFC 5280 §4.1).
fn spki_key(der: &[u8]) -> Result<Material, KeyError> {
    let spki = SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|_| KeyError::Pem("not a SubjectPublicKeyInfo"))?;
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or(KeyError::Pem("not a SubjectPublicKeyInfo"))?;
    let oid = spki.algorithm.oid;
    if oid == OID_RSA_ENCRYPTION {
        let key = rsa::pkcs1::RsaPublicKey::from_der(bits)
            .map_err(|_| KeyError::Pem("not an RSA public key"))?;
        Ok(Material::Rsa(rsa_key(
            key.modulus.as_bytes(),
            key.public_exponent.as_bytes(),
        )?))
    } else if oid == OID_EC_PUBLIC_KEY {
        let curve: ObjectIdentifier = spki
            .algorithm
            .parameters
            .ok_or(KeyError::Pem("an EC key without a named curve"))?
            .decode_as()
            .map_err(|_| KeyError::Pem("an EC key without a named curve"))?;
        if curve == OID_P256 {
            ec_key(32, bits)
        } else if curve == OID_P384 {
            ec_key(48, bits)
        } else if curve == OID_P521 {
            ec_key(66, bits)
        } else {
            Err(KeyError::UnsupportedCurve(curve.to_string()))
        }
    } else if oid == OID_ED25519 {
        ed25519_key(bits)
    } else {
        Err(KeyError::UnsupportedKeyType(oid.to_string()))
    }
}

/// The label and DER bytes of the one PEM block in `pem` (RFC 7468).
fn pem_decode(pem: &str) -> Result<(&str, Vec<u8>), KeyError> {
    let rest = pem
        .trim()
        .strip_prefix("-----BEGIN ")
        .ok_or(KeyError::Pem("no BEGIN line"))?;
    let (label, rest) = rest
        .split_once("-----")
        .ok_or(KeyError::Pem("no BEGIN line"))?;
    let end = format!("-----END {label}-----");
    let (body, after) = rest.split_once(&end).ok_or(KeyError::Pem("no END line"))?;
    if !after.trim().is_empty() {
        return Err(KeyError::Pem("text after the END line"));
    }
    let body: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(body)
        .map_err(|_| KeyError::Pem("the body is not base64"))?;
    Ok((label, der))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7515 Appendix A.2's RSA public key, as its JWK prints it.
    pub(crate) const RFC7515_RSA_N: &str =
        include_str!("../testdata/rfc7515-a2-n.txt").trim_ascii();

    pub(crate) const RSA_ALGORITHMS: [Algorithm; 6] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
    ];

    pub(crate) fn rsa_jwk() -> Value {
        json!({"kty": "RSA", "n": RFC7515_RSA_N, "e": "AQAB"})
    }

    pub(crate) fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A P-256 signing key from a fixed scalar, and its public JWK.
    pub(crate) fn p256_pair(seed: u8) -> (p256::ecdsa::SigningKey, Value) {
        let sk = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
        });
        (sk, jwk)
    }

    /// A P-384 signing key from a fixed scalar, and its public JWK.
    pub(crate) fn p384_pair(seed: u8) -> (p384::ecdsa::SigningKey, Value) {
        let sk = p384::ecdsa::SigningKey::from_slice(&[seed; 48]).unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        let jwk = json!({
            "kty": "EC", "crv": "P-384",
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
        });
        (sk, jwk)
    }

    /// An Ed25519 signing key from a fixed seed, and its public JWK.
    pub(crate) fn ed25519_pair(seed: u8) -> (ed25519_dalek::SigningKey, Value) {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(sk.verifying_key().as_bytes())});
        (sk, jwk)
    }

    /// `der` as a PEM block with `label`.
    pub(crate) fn pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The SPKI DER of an RSA key (built by hand: `rsa` has no encoder
    /// without its `pem`/`std` features, and this checks the parser).
    pub(crate) fn rsa_spki_der(n: &[u8], e: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            let len = body.len();
            if len < 0x80 {
                out.push(len as u8);
            } else if len < 0x100 {
                out.extend([0x81, len as u8]);
            } else {
                out.extend([0x82, (len >> 8) as u8, len as u8]);
            }
            out.extend_from_slice(body);
            out
        }
        fn uint(b: &[u8]) -> Vec<u8> {
            let mut v = Vec::new();
            if b[0] & 0x80 != 0 {
                v.push(0);
            }
            v.extend_from_slice(b);
            tlv(0x02, &v)
        }
        let rsa_pub = tlv(0x30, &[uint(n), uint(e)].concat());
        let alg = hex("300d06092a864886f70d0101010500");
        let bits = tlv(0x03, &[&[0u8][..], &rsa_pub].concat());
        tlv(0x30, &[alg, bits].concat())
    }

    #[test]
    fn rsa_jwk_allows_the_rsa_algorithms_only() {
        let key = Key::from_jwk(&rsa_jwk()).unwrap();
        assert_eq!(key.algorithms(), RSA_ALGORITHMS);
        assert!(!key.is_symmetric());
        assert_eq!(key.kty(), "RSA");
        let (n, e) = key.rsa_components().unwrap();
        assert_eq!(b64(&n), RFC7515_RSA_N);
        assert_eq!(e, vec![1, 0, 1]);
        assert_eq!(
            key.verify(Algorithm::Hs256, b"x", &[0; 32]),
            Err(SignatureError::AlgorithmNotAllowed {
                alg: Algorithm::Hs256
            })
        );
    }

    #[test]
    fn alg_member_restricts_and_must_fit_the_type() {
        let mut jwk = rsa_jwk();
        jwk["alg"] = json!("PS256");
        jwk["kid"] = json!("k1");
        let key = Key::from_jwk(&jwk).unwrap();
        assert_eq!(key.algorithms(), vec![Algorithm::Ps256]);
        assert_eq!(key.kid(), Some("k1"));

        jwk["alg"] = json!("ES256");
        assert_eq!(
            Key::from_jwk(&jwk).unwrap_err(),
            KeyError::AlgorithmMismatch {
                alg: Algorithm::Es256,
                kty: "RSA"
            }
        );
        jwk["alg"] = json!("RS512");
        assert_eq!(
            Key::from_jwk(&jwk).unwrap().algorithms(),
            [Algorithm::Rs512]
        );
        jwk["alg"] = json!("RS1");
        assert_eq!(
            Key::from_jwk(&jwk).unwrap_err(),
            KeyError::UnsupportedAlgorithm("RS1".into())
        );
        jwk["alg"] = json!("none");
        assert!(matches!(
            Key::from_jwk(&jwk),
            Err(KeyError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn use_and_key_ops_are_enforced() {
        let mut jwk = rsa_jwk();
        jwk["use"] = json!("enc");
        assert_eq!(
            Key::from_jwk(&jwk).unwrap_err(),
            KeyError::NotForSignatures("enc".into())
        );
        jwk["use"] = json!("sig");
        jwk["key_ops"] = json!(["encrypt"]);
        assert_eq!(
            Key::from_jwk(&jwk).unwrap_err(),
            KeyError::NoVerifyOperation
        );
        jwk["key_ops"] = json!(["sign", "verify"]);
        assert!(Key::from_jwk(&jwk).is_ok());
    }

    #[test]
    fn rsa_limits() {
        // 1024 bits: too small.
        let small = json!({"kty": "RSA", "n": b64(&[0xc1; 128]), "e": "AQAB"});
        assert_eq!(
            Key::from_jwk(&small).unwrap_err(),
            KeyError::RsaModulusSize { bits: 1024 }
        );
        let huge = json!({"kty": "RSA", "n": b64(&[0xc1; 1025]), "e": "AQAB"});
        assert_eq!(
            Key::from_jwk(&huge).unwrap_err(),
            KeyError::RsaModulusSize { bits: 8200 }
        );
        for e in [&[1u8][..], &[2], &[1, 0, 0], &[0xff; 9], &[2, 0, 0, 0, 1]] {
            let mut jwk = rsa_jwk();
            jwk["e"] = json!(b64(e));
            assert_eq!(
                Key::from_jwk(&jwk).unwrap_err(),
                KeyError::RsaExponent,
                "{e:?}"
            );
        }
        let mut even = rsa_jwk();
        let mut n = b64url_decode(RFC7515_RSA_N).unwrap();
        *n.last_mut().unwrap() &= 0xfe;
        even["n"] = json!(b64(&n));
        assert!(matches!(
            Key::from_jwk(&even),
            Err(KeyError::InvalidMember { member: "n", .. })
        ));
        // A leading zero byte (as some providers publish) is accepted.
        let mut padded = rsa_jwk();
        padded["n"] = json!(b64(
            &[&[0u8][..], &b64url_decode(RFC7515_RSA_N).unwrap()].concat()
        ));
        assert!(Key::from_jwk(&padded).is_ok());
    }

    #[test]
    fn bad_members() {
        assert_eq!(
            Key::from_jwk(&json!([])).unwrap_err(),
            KeyError::NotAnObject
        );
        assert_eq!(
            Key::from_jwk(&json!({"n": "AQAB"})).unwrap_err(),
            KeyError::MissingMember("kty")
        );
        assert_eq!(
            Key::from_jwk(&json!({"kty": "RSA", "e": "AQAB"})).unwrap_err(),
            KeyError::MissingMember("n")
        );
        let mut padded = rsa_jwk();
        padded["e"] = json!("AQAB==");
        assert!(matches!(
            Key::from_jwk(&padded),
            Err(KeyError::InvalidMember { member: "e", .. })
        ));
        let mut std_alphabet = rsa_jwk();
        std_alphabet["n"] = json!(RFC7515_RSA_N.replace('-', "+").replace('_', "/"));
        assert!(matches!(
            Key::from_jwk(&std_alphabet),
            Err(KeyError::InvalidMember { member: "n", .. })
        ));
        assert_eq!(
            Key::from_jwk(&json!({"kty": "RSA", "kid": 7, "n": RFC7515_RSA_N, "e": "AQAB"}))
                .unwrap_err(),
            KeyError::InvalidMember {
                member: "kid",
                reason: "not a string"
            }
        );
        assert_eq!(
            Key::from_jwk(&json!({"kty": "DSA\"\n"})).unwrap_err(),
            KeyError::UnsupportedKeyType("DSA??".into())
        );
    }

    #[test]
    fn ec_keys_are_checked_on_the_curve() {
        let (_, jwk) = p256_pair(7);
        let key = Key::from_jwk(&jwk).unwrap();
        assert_eq!(key.algorithms(), vec![Algorithm::Es256]);
        let (_, jwk384) = p384_pair(7);
        assert_eq!(
            Key::from_jwk(&jwk384).unwrap().algorithms(),
            vec![Algorithm::Es384]
        );

        let mut off_curve = jwk.clone();
        let mut y = b64url_decode(jwk["y"].as_str().unwrap()).unwrap();
        y[31] ^= 1;
        off_curve["y"] = json!(b64(&y));
        assert_eq!(
            Key::from_jwk(&off_curve).unwrap_err(),
            KeyError::InvalidPoint
        );

        let mut short = jwk.clone();
        short["x"] = json!(b64(&[1; 31]));
        assert!(matches!(
            Key::from_jwk(&short),
            Err(KeyError::InvalidMember { member: "x", .. })
        ));
        let mut wrong_curve = jwk.clone();
        wrong_curve["crv"] = json!("secp256k1");
        assert_eq!(
            Key::from_jwk(&wrong_curve).unwrap_err(),
            KeyError::UnsupportedCurve("secp256k1".into())
        );
        // The P-256 coordinates claimed to be P-384: wrong length.
        let mut mixed = jwk;
        mixed["crv"] = json!("P-384");
        assert!(Key::from_jwk(&mixed).is_err());
    }

    #[test]
    fn ed25519_keys() {
        let (_, jwk) = ed25519_pair(3);
        assert_eq!(
            Key::from_jwk(&jwk).unwrap().algorithms(),
            vec![Algorithm::EdDsa]
        );
        // The identity point is a small-order (weak) key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&identity)});
        assert_eq!(Key::from_jwk(&weak).unwrap_err(), KeyError::InvalidPoint);
        let x448 = json!({"kty": "OKP", "crv": "X25519", "x": b64(&[9; 32])});
        assert_eq!(
            Key::from_jwk(&x448).unwrap_err(),
            KeyError::UnsupportedCurve("X25519".into())
        );
    }

    #[test]
    fn private_members_are_ignored() {
        let (sk, mut jwk) = p256_pair(9);
        jwk["d"] = json!(b64(&sk.to_bytes()));
        let key = Key::from_jwk(&jwk).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(jwk["d"].as_str().unwrap()), "{shown}");
    }

    #[test]
    fn hmac_secrets() {
        assert_eq!(
            Key::hmac(&[1; 31]).unwrap_err(),
            KeyError::HmacSecretTooShort {
                len: 31,
                alg: Algorithm::Hs256
            }
        );
        let secret = b"0123456789abcdef0123456789abcdef";
        let key = Key::hmac(secret).unwrap();
        assert!(key.is_symmetric());
        assert_eq!(key.algorithms(), vec![Algorithm::Hs256]);
        assert_eq!(key.hmac_secret_len(), Some(32));
        let shown = format!("{key:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("0123"),
            "{shown}"
        );

        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(b"input");
        let tag = mac.finalize().into_bytes();
        assert_eq!(key.verify(Algorithm::Hs256, b"input", &tag), Ok(()));
        assert_eq!(
            key.verify(Algorithm::Hs256, b"inpuT", &tag),
            Err(SignatureError::Invalid)
        );
        // A truncated tag is not accepted.
        assert_eq!(
            key.verify(Algorithm::Hs256, b"input", &tag[..16]),
            Err(SignatureError::Invalid)
        );
        let jwk = json!({"kty": "oct", "k": b64(secret)});
        assert!(Key::from_jwk(&jwk).unwrap().is_symmetric());
        let jwk = json!({"kty": "oct", "k": b64(b"short")});
        assert_eq!(
            Key::from_jwk(&jwk).unwrap_err(),
            KeyError::HmacSecretTooShort {
                len: 5,
                alg: Algorithm::Hs256
            }
        );
        let message = KeyError::HmacSecretTooShort {
            len: 5,
            alg: Algorithm::Hs256,
        }
        .to_string();
        assert!(!message.contains("short"), "{message}");
    }

    #[test]
    fn ecdsa_signatures_must_be_raw_r_s() {
        use p256::ecdsa::signature::Signer as _;
        let (sk, jwk) = p256_pair(11);
        let key = Key::from_jwk(&jwk).unwrap();
        let sig: p256::ecdsa::Signature = sk.sign(b"payload");
        assert_eq!(
            key.verify(Algorithm::Es256, b"payload", &sig.to_bytes()),
            Ok(())
        );
        assert_eq!(
            key.verify(Algorithm::Es256, b"payloaD", &sig.to_bytes()),
            Err(SignatureError::Invalid)
        );
        let der = sig.to_der();
        assert_eq!(
            key.verify(Algorithm::Es256, b"payload", der.as_bytes()),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            key.verify(Algorithm::Es256, b"payload", &sig.to_bytes()[..63]),
            Err(SignatureError::Invalid)
        );
        // The high-S twin (r, n - s) verifies too, as in jose and OpenSSL.
        let (r, s) = sig.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        assert_eq!(
            key.verify(Algorithm::Es256, b"payload", &high.to_bytes()),
            Ok(())
        );
    }

    #[test]
    fn es384_and_eddsa_signatures() {
        use ed25519_dalek::Signer as _;
        let (sk, jwk) = p384_pair(5);
        let key = Key::from_jwk(&jwk).unwrap();
        let sig: p384::ecdsa::Signature = sk.sign(b"m");
        assert_eq!(key.verify(Algorithm::Es384, b"m", &sig.to_bytes()), Ok(()));
        assert_eq!(
            key.verify(Algorithm::Es256, b"m", &sig.to_bytes()),
            Err(SignatureError::AlgorithmNotAllowed {
                alg: Algorithm::Es256
            })
        );
        let (sk, jwk) = ed25519_pair(5);
        let key = Key::from_jwk(&jwk).unwrap();
        let sig = sk.sign(b"m").to_bytes();
        assert_eq!(key.verify(Algorithm::EdDsa, b"m", &sig), Ok(()));
        assert_eq!(
            key.verify(Algorithm::EdDsa, b"n", &sig),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            key.verify(Algorithm::EdDsa, b"m", &sig[..63]),
            Err(SignatureError::Invalid)
        );
    }

    /// A deterministic stand-in for an RNG (P-521 signing wants one;
    /// these tests sign, they are not about randomness).
    struct CountingRng(u64);

    impl p521::elliptic_curve::rand_core::RngCore for CountingRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let word = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
        }
        fn try_fill_bytes(
            &mut self,
            dest: &mut [u8],
        ) -> Result<(), p521::elliptic_curve::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl p521::elliptic_curve::rand_core::CryptoRng for CountingRng {}

    /// A P-521 signing key from a fixed scalar, and its public JWK.
    pub(crate) fn p521_pair(seed: u8) -> (p521::ecdsa::SigningKey, Value) {
        let mut scalar = [seed; 66];
        scalar[0] = 1;
        let sk = p521::ecdsa::SigningKey::from_slice(&scalar).unwrap();
        let point = p521::ecdsa::VerifyingKey::from(&sk).to_encoded_point(false);
        let jwk = json!({
            "kty": "EC", "crv": "P-521",
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
        });
        (sk, jwk)
    }

    #[test]
    fn es512_on_p521() {
        use p521::ecdsa::signature::RandomizedSigner as _;
        let (sk, jwk) = p521_pair(7);
        let key = Key::from_jwk(&jwk).unwrap();
        assert_eq!(key.algorithms(), vec![Algorithm::Es512]);
        let sig: p521::ecdsa::Signature = sk.sign_with_rng(&mut CountingRng(1), b"m");
        let raw = sig.to_bytes();
        assert_eq!(raw.len(), 132);
        assert_eq!(key.verify(Algorithm::Es512, b"m", &raw), Ok(()));
        assert_eq!(
            key.verify(Algorithm::Es512, b"n", &raw),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            key.verify(Algorithm::Es512, b"m", &raw[..131]),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            key.verify(Algorithm::Es512, b"m", sig.to_der().as_bytes()),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            key.verify(Algorithm::Es384, b"m", &raw),
            Err(SignatureError::AlgorithmNotAllowed {
                alg: Algorithm::Es384
            })
        );
        // The point's numbers come back for WebCrypto.
        let PublicParts::P521 { x, y } = key.public_parts() else {
            panic!("not a P-521 point");
        };
        assert_eq!(b64(&x), jwk["x"].as_str().unwrap());
        assert_eq!(y.len(), 66);
        // Short coordinates, a point off the curve, P-384 numbers.
        let mut short = jwk.clone();
        short["x"] = json!(b64(&x[1..]));
        assert!(matches!(
            Key::from_jwk(&short),
            Err(KeyError::InvalidMember { member: "x", .. })
        ));
        let mut off = jwk.clone();
        let mut bad_y = y.clone();
        bad_y[65] ^= 1;
        off["y"] = json!(b64(&bad_y));
        assert_eq!(Key::from_jwk(&off).unwrap_err(), KeyError::InvalidPoint);
        // The same key from an SPKI PEM (OID secp521r1).
        let der = [
            hex("30819b301006072a8648ce3d020106052b8104002303818600"),
            vec![4],
            x,
            y,
        ]
        .concat();
        let key = Key::from_pem(&pem("PUBLIC KEY", &der)).unwrap();
        assert_eq!(key.algorithms(), vec![Algorithm::Es512]);
        assert_eq!(key.verify(Algorithm::Es512, b"m", &raw), Ok(()));
    }

    #[test]
    fn hmac_algorithms_follow_the_secret_length() {
        fn tag<M: hmac::Mac + hmac::digest::KeyInit>(secret: &[u8], input: &[u8]) -> Vec<u8> {
            let mut mac = <M as hmac::Mac>::new_from_slice(secret).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }
        let secret = [7u8; 64];
        for (len, algs) in [
            (32, &[Algorithm::Hs256][..]),
            (47, &[Algorithm::Hs256]),
            (48, &[Algorithm::Hs256, Algorithm::Hs384]),
            (63, &[Algorithm::Hs256, Algorithm::Hs384]),
            (64, &[Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512]),
        ] {
            assert_eq!(
                Key::hmac(&secret[..len]).unwrap().algorithms(),
                algs,
                "{len}"
            );
        }
        let key = Key::hmac(&secret).unwrap();
        let t256 = tag::<Hmac<Sha256>>(&secret, b"input");
        let t384 = tag::<Hmac<Sha384>>(&secret, b"input");
        let t512 = tag::<Hmac<Sha512>>(&secret, b"input");
        assert_eq!(key.verify(Algorithm::Hs256, b"input", &t256), Ok(()));
        assert_eq!(key.verify(Algorithm::Hs384, b"input", &t384), Ok(()));
        assert_eq!(key.verify(Algorithm::Hs512, b"input", &t512), Ok(()));
        for (alg, tag) in [
            (Algorithm::Hs384, &t256),
            (Algorithm::Hs512, &t384),
            (Algorithm::Hs256, &t512),
        ] {
            assert_eq!(
                key.verify(alg, b"input", tag),
                Err(SignatureError::Invalid),
                "{alg}"
            );
        }
        // A truncated tag (the HS256 length of an HS512 tag) is refused.
        assert_eq!(
            key.verify(Algorithm::Hs512, b"input", &t512[..32]),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            key.verify(Algorithm::Hs512, b"inpuT", &t512),
            Err(SignatureError::Invalid)
        );
        // Too short for the algorithm asked for: named, with the length.
        let short = Key::hmac(&secret[..48]).unwrap();
        let error = short.restrict_to(Algorithm::Hs512).unwrap_err();
        assert_eq!(
            error,
            KeyError::HmacSecretTooShort {
                len: 48,
                alg: Algorithm::Hs512
            }
        );
        assert_eq!(
            error.to_string(),
            "an HMAC secret of 48 bytes; HS512 needs at least 64"
        );
        let jwk = json!({"kty": "oct", "alg": "HS384", "k": b64(&secret[..40])});
        assert_eq!(
            Key::from_jwk(&jwk).unwrap_err(),
            KeyError::HmacSecretTooShort {
                len: 40,
                alg: Algorithm::Hs384
            }
        );
        let jwk = json!({"kty": "oct", "alg": "HS384", "k": b64(&secret[..48])});
        assert_eq!(
            Key::from_jwk(&jwk).unwrap().algorithms(),
            vec![Algorithm::Hs384]
        );
    }

    #[test]
    fn rsa_sha384_and_sha512_need_their_own_hash() {
        // RFC 7515 A.2's RS256 signature does not pass as RS384/RS512 or
        // PS*; every RSA algorithm is allowed on the key.
        let key = Key::from_jwk(&rsa_jwk()).unwrap();
        let input = b"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UifQ";
        for alg in RSA_ALGORITHMS {
            assert!(key.allows(alg), "{alg}");
            assert_eq!(
                key.verify(alg, input, &[0u8; 256]),
                Err(SignatureError::Invalid),
                "{alg}"
            );
            assert_eq!(
                key.verify(alg, input, &[1u8; 255]),
                Err(SignatureError::Invalid),
                "{alg}"
            );
        }
    }

    /// A key with the ROCA fingerprint is refused, with the reason, from
    /// a JWK, a PEM and a JWKS (where it is skipped and the others kept);
    /// ordinary keys pass.
    #[test]
    fn roca_keys_are_refused_wherever_they_come_from() {
        let generated: Value =
            serde_json::from_str(include_str!("../testdata/roca-generated.json")).unwrap();
        let public: Value =
            serde_json::from_str(include_str!("../testdata/roca-public.json")).unwrap();
        for entry in generated["fingerprinted"].as_array().unwrap() {
            assert_eq!(
                Key::from_jwk(&entry["jwk"]).unwrap_err(),
                KeyError::RocaFingerprint,
                "{}",
                entry["bits"]
            );
        }
        let mod03 = hex(public["fingerprinted"]["mod03_n_hex"].as_str().unwrap());
        let jwk = json!({"kty": "RSA", "n": b64(&mod03), "e": "AQAB"});
        assert_eq!(Key::from_jwk(&jwk).unwrap_err(), KeyError::RocaFingerprint);
        let pem = public["fingerprinted"]["pubkey03_pem"].as_str().unwrap();
        assert_eq!(Key::from_pem(pem).unwrap_err(), KeyError::RocaFingerprint);
        assert!(
            KeyError::RocaFingerprint
                .to_string()
                .contains("ROCA fingerprint (CVE-2017-15361")
        );
        for n in generated["ordinary_n"].as_array().unwrap() {
            let jwk = json!({"kty": "RSA", "n": n, "e": "AQAB"});
            assert!(Key::from_jwk(&jwk).is_ok(), "{n}");
        }

        let roca = generated["fingerprinted"][0]["jwk"].clone();
        let mut ordinary = rsa_jwk();
        ordinary["kid"] = json!("ordinary");
        let body = json!({"keys": [roca, ordinary]});
        let set = parse_jwks(body.to_string().as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].kid(), Some("ordinary"));
        assert_eq!(
            set.skipped,
            vec![(Some("roca-2048".into()), KeyError::RocaFingerprint)]
        );
    }

    #[test]
    fn restrict_to_stays_within_the_type() {
        let key = Key::from_jwk(&rsa_jwk()).unwrap();
        assert_eq!(
            key.clone().restrict_to(Algorithm::Hs256).unwrap_err(),
            KeyError::AlgorithmMismatch {
                alg: Algorithm::Hs256,
                kty: "RSA"
            }
        );
        let rs = key.restrict_to(Algorithm::Rs256).unwrap();
        assert!(rs.allows(Algorithm::Rs256) && !rs.allows(Algorithm::Ps256));
        let hs = Key::hmac(&[7; 32]).unwrap().with_kid("h");
        assert_eq!(hs.kid(), Some("h"));
        assert!(hs.restrict_to(Algorithm::Rs256).is_err());
    }

    #[test]
    fn pem_public_keys() {
        let n = b64url_decode(RFC7515_RSA_N).unwrap();
        let spki = rsa_spki_der(&n, &[1, 0, 1]);
        let key = Key::from_pem(&pem("PUBLIC KEY", &spki)).unwrap();
        assert_eq!(key.rsa_components().unwrap().0, n);
        assert_eq!(key.algorithms(), RSA_ALGORITHMS);
        // PKCS#1: the inner RSAPublicKey of the SPKI above. Its BIT STRING
        // holds a 0 (unused bits) then the 270-byte RSAPublicKey.
        let pkcs1 = &spki[spki.len() - 270..];
        let key = Key::from_pem(&pem("RSA PUBLIC KEY", pkcs1)).unwrap();
        assert_eq!(key.rsa_components().unwrap().0, n);

        // An EC SPKI: its header (algorithm and curve), then the point.
        for (jwk, header, alg) in [
            (
                p256_pair(2).1,
                "3059301306072a8648ce3d020106082a8648ce3d030107034200",
                Algorithm::Es256,
            ),
            (
                p384_pair(2).1,
                "3076301006072a8648ce3d020106052b81040022036200",
                Algorithm::Es384,
            ),
        ] {
            let x = b64url_decode(jwk["x"].as_str().unwrap()).unwrap();
            let y = b64url_decode(jwk["y"].as_str().unwrap()).unwrap();
            let der = [hex(header), vec![4], x, y].concat();
            let key = Key::from_pem(&pem("PUBLIC KEY", &der)).unwrap();
            assert_eq!(key.algorithms(), vec![alg]);
        }

        let (sk, _) = ed25519_pair(2);
        let der = [
            hex("302a300506032b6570032100"),
            sk.verifying_key().to_bytes().to_vec(),
        ]
        .concat();
        let key = Key::from_pem(&pem("PUBLIC KEY", &der)).unwrap();
        assert_eq!(key.algorithms(), vec![Algorithm::EdDsa]);

        assert_eq!(
            Key::from_pem(&pem("PRIVATE KEY", &der)).unwrap_err(),
            KeyError::Pem("a private key; configure the public key")
        );
        assert_eq!(
            Key::from_pem("MIIB...").unwrap_err(),
            KeyError::Pem("no BEGIN line")
        );
        assert!(Key::from_pem(&pem("PUBLIC KEY", &der[..20])).is_err());
        let truncated = pem("PUBLIC KEY", &der).replace("-----END PUBLIC KEY-----", "");
        assert_eq!(
            Key::from_pem(&truncated).unwrap_err(),
            KeyError::Pem("no END line")
        );
    }

    #[test]
    fn jwks_skips_unusable_keys() {
        let (_, ec) = p256_pair(1);
        let mut ec = ec;
        ec["kid"] = json!("ec-1");
        let mut rsa = rsa_jwk();
        rsa["kid"] = json!("rsa-1");
        let mut enc = rsa_jwk();
        enc["kid"] = json!("rsa-enc");
        enc["use"] = json!("enc");
        let body = json!({"keys": [
            rsa,
            enc,
            {"kty": "oct", "kid": "secret", "k": b64(&[1; 32])},
            {"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AA", "y": "AA"},
            {"kty": "foo"},
            ec,
        ]});
        let set = parse_jwks(body.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = set.keys.iter().map(|k| k.kid().unwrap()).collect();
        assert_eq!(kids, vec!["rsa-1", "ec-1"]);
        assert_eq!(
            set.skipped,
            vec![
                (
                    Some("rsa-enc".into()),
                    KeyError::NotForSignatures("enc".into())
                ),
                (Some("secret".into()), KeyError::SymmetricInJwks),
                (
                    Some("k1".into()),
                    KeyError::UnsupportedCurve("secp256k1".into())
                ),
                (None, KeyError::UnsupportedKeyType("foo".into())),
            ]
        );
    }

    #[test]
    fn jwks_with_two_keys_under_one_kid_is_refused() {
        let (_, mut a) = p256_pair(1);
        a["kid"] = json!("k");
        let (_, mut b) = p256_pair(2);
        b["kid"] = json!("k");
        let body = json!({"keys": [a.clone(), b]});
        assert_eq!(
            parse_jwks(body.to_string().as_bytes()).unwrap_err(),
            KeyError::DuplicateKid("k".into())
        );
        // Other types under one kid too.
        let mut rsa = rsa_jwk();
        rsa["kid"] = json!("k");
        let body = json!({"keys": [rsa, a.clone()]});
        assert_eq!(
            parse_jwks(body.to_string().as_bytes()).unwrap_err(),
            KeyError::DuplicateKid("k".into())
        );
        // The same key twice under its kid is kept once.
        let body = json!({"keys": [a.clone(), a.clone()]});
        assert_eq!(
            parse_jwks(body.to_string().as_bytes()).unwrap().keys.len(),
            1
        );
        // A key skipped for its use shares its kid with no usable key.
        let (_, mut enc) = p256_pair(2);
        enc["kid"] = json!("k");
        enc["use"] = json!("enc");
        let body = json!({"keys": [a.clone(), enc]});
        let set = parse_jwks(body.to_string().as_bytes()).unwrap();
        assert_eq!((set.keys.len(), set.skipped.len()), (1, 1));
        // Keys without a kid are not ambiguous by kid.
        let (_, c) = p256_pair(3);
        let (_, d) = p256_pair(4);
        let body = json!({"keys": [c, d]});
        assert_eq!(
            parse_jwks(body.to_string().as_bytes()).unwrap().keys.len(),
            2
        );
        // The kid in the message is shortened and printable.
        let mut e = a.clone();
        e["kid"] = json!("x\"y".repeat(40));
        let mut f = e.clone();
        f["x"] = p256_pair(5).1["x"].clone();
        f["y"] = p256_pair(5).1["y"].clone();
        let KeyError::DuplicateKid(kid) =
            parse_jwks(json!({"keys": [e, f]}).to_string().as_bytes()).unwrap_err()
        else {
            panic!("not a duplicate kid");
        };
        assert!(kid.starts_with("x?yx?y") && kid.ends_with("..."), "{kid}");
    }

    #[test]
    fn jwks_that_is_not_a_set() {
        assert_eq!(
            parse_jwks(b"<html>").unwrap_err(),
            KeyError::NotAJwkSet("not JSON")
        );
        assert_eq!(
            parse_jwks(b"[]").unwrap_err(),
            KeyError::NotAJwkSet("not a JSON object")
        );
        assert_eq!(
            parse_jwks(br#"{"kty":"RSA"}"#).unwrap_err(),
            KeyError::NotAJwkSet("no keys member")
        );
        assert_eq!(
            parse_jwks(br#"{"keys":{}}"#).unwrap_err(),
            KeyError::NotAJwkSet("keys is not an array")
        );
        let many = json!({"keys": vec![json!({"kty": "foo"}); MAX_JWKS_KEYS + 1]});
        assert_eq!(
            parse_jwks(many.to_string().as_bytes()).unwrap_err(),
            KeyError::TooManyKeys {
                limit: MAX_JWKS_KEYS
            }
        );
        let empty = parse_jwks(br#"{"keys":[]}"#).unwrap();
        assert!(empty.keys.is_empty() && empty.skipped.is_empty());
    }

    #[test]
    fn printable_strips_and_shortens() {
        assert_eq!(printable("RS256", 16), "RS256");
        assert_eq!(printable("a\"b\\c\u{e9}\n", 16), "a?b?c??");
        assert_eq!(printable("abcdefgh", 4), "abcd...");
    }

    #[test]
    fn public_parts_give_back_the_jwk_numbers() {
        let (_, jwk) = p256_pair(7);
        let key = Key::from_jwk(&jwk).unwrap();
        let PublicParts::P256 { x, y } = key.public_parts() else {
            panic!("not a P-256 point");
        };
        assert_eq!(
            (b64(&x), b64(&y)),
            (
                jwk["x"].as_str().unwrap().to_owned(),
                jwk["y"].as_str().unwrap().to_owned()
            )
        );
        let (_, jwk) = p384_pair(7);
        assert!(
            matches!(Key::from_jwk(&jwk).unwrap().public_parts(), PublicParts::P384 { x, y } if x.len() == 48 && y.len() == 48)
        );
        let (_, jwk) = ed25519_pair(7);
        let PublicParts::Ed25519(public) = Key::from_jwk(&jwk).unwrap().public_parts() else {
            panic!("not Ed25519");
        };
        assert_eq!(b64(&public), jwk["x"].as_str().unwrap());
        assert_eq!(
            Key::hmac(&[1; 32]).unwrap().public_parts(),
            PublicParts::Secret
        );
    }
}
