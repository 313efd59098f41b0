//! The fixed keys and tokens every auth benchmark verifies
//! (`fixtures.json`, written once by `gen_keys.py`), built into the program
//! so that the native, wasm and workerd runs check the same signatures.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// `fixtures.json`, verbatim.
pub const JSON: &str = include_str!("../fixtures.json");

/// One algorithm's key and token.
#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    /// The JWS `alg`.
    pub alg: String,
    /// The key id in the token's header.
    pub kid: String,
    /// The public key (or HMAC secret) as a JWK.
    pub jwk: serde_json::Value,
    /// The public key as SPKI PEM (not for HMAC).
    #[serde(default)]
    pub pem: Option<String>,
    /// A token signed with the key, valid until 2100.
    pub token: String,
}

#[derive(Debug, Deserialize)]
struct File {
    claims: serde_json::Value,
    keys: Vec<Fixture>,
}

/// Every fixture, in the order of `fixtures.json` (RS256, PS256, ES256,
/// ES384, EdDSA, HS256).
pub fn all() -> Vec<Fixture> {
    parse().keys
}

/// The claims every token carries.
pub fn claims() -> serde_json::Value {
    parse().claims
}

fn parse() -> File {
    serde_json::from_str(JSON).unwrap_or_else(|e| unreachable!("fixtures.json parses: {e}"))
}

/// The fixture of `alg`.
pub fn get(alg: &str) -> Fixture {
    all()
        .into_iter()
        .find(|f| f.alg == alg)
        .unwrap_or_else(|| unreachable!("fixtures.json has {alg}"))
}

impl Fixture {
    /// A base64url member of the JWK, decoded (`n`, `e`, `x`, `y`, `k`).
    pub fn jwk_bytes(&self, member: &str) -> Vec<u8> {
        let text = self.jwk[member].as_str().unwrap_or_default();
        URL_SAFE_NO_PAD
            .decode(text)
            .unwrap_or_else(|e| unreachable!("{}: jwk {member}: {e}", self.alg))
    }

    /// The signing input (`header.payload`) and the decoded signature.
    pub fn parts(&self) -> (&[u8], Vec<u8>) {
        let (input, signature) = self
            .token
            .rsplit_once('.')
            .unwrap_or_else(|| unreachable!("{}: a compact JWS", self.alg));
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap_or_else(|e| unreachable!("{}: signature: {e}", self.alg));
        (input.as_bytes(), signature)
    }
}
