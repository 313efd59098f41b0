//! JWK sets, single JWKs and PEM public keys (auth-check `keys`): no input
//! panics, a set never holds more than `MAX_JWKS_KEYS` keys nor two keys
//! under one `kid`, and every usable public key round-trips: its public
//! numbers written back as a JWK read to the same key.
#![no_main]

use auth_check::keys::{Algorithm, Key, MAX_JWKS_KEYS, PublicParts, parse_jwks};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn as_jwk(key: &Key) -> Option<Value> {
    let b = |bytes: &[u8]| B64.encode(bytes);
    let mut jwk = match key.public_parts() {
        PublicParts::Rsa { n, e } => json!({ "kty": "RSA", "n": b(&n), "e": b(&e) }),
        PublicParts::P256 { x, y } => {
            json!({ "kty": "EC", "crv": "P-256", "x": b(&x), "y": b(&y) })
        }
        PublicParts::P384 { x, y } => {
            json!({ "kty": "EC", "crv": "P-384", "x": b(&x), "y": b(&y) })
        }
        PublicParts::P521 { x, y } => {
            json!({ "kty": "EC", "crv": "P-521", "x": b(&x), "y": b(&y) })
        }
        PublicParts::Ed25519(x) => json!({ "kty": "OKP", "crv": "Ed25519", "x": b(&x) }),
        PublicParts::Secret => return None,
    };
    if let Some(kid) = key.kid() {
        jwk["kid"] = kid.into();
    }
    Some(jwk)
}

fn round_trip(key: &Key) {
    let Some(jwk) = as_jwk(key) else { return };
    let again = Key::from_jwk(&jwk).unwrap_or_else(|e| panic!("{jwk} no longer reads: {e}"));
    assert_eq!(again.public_parts(), key.public_parts());
    assert_eq!(again.kid(), key.kid());
    assert_eq!(again.kty(), key.kty());
    // Every algorithm the original allows, the unrestricted copy allows.
    for alg in key.algorithms() {
        assert!(again.allows(alg), "{alg:?} lost in the round trip");
    }
    let _: Vec<Algorithm> = again.algorithms();
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Ok(set) = parse_jwks(rest) else { return };
            assert!(set.keys.len() <= MAX_JWKS_KEYS);
            for (i, key) in set.keys.iter().enumerate() {
                assert!(!key.is_symmetric(), "a published set handed out a secret");
                if let Some(kid) = key.kid() {
                    for other in &set.keys[i + 1..] {
                        assert!(
                            other.kid() != Some(kid) || other.public_parts() == key.public_parts(),
                            "two different keys under kid {kid:?}"
                        );
                    }
                }
                round_trip(key);
            }
        }
        1 => {
            let Ok(jwk) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            if let Ok(key) = Key::from_jwk(&jwk) {
                round_trip(&key);
            }
        }
        _ => {
            let Ok(pem) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(key) = Key::from_pem(pem) {
                round_trip(&key);
            }
        }
    }
});
