//! The examples of RFC 7515 Appendix A.1 (HS256), A.2 (RS256) and A.3
//! (ES256): published tokens and keys that any JWS implementation must
//! verify, checked at a fixed time before their `exp` (1300819380), and
//! refused once a single bit is changed; and A.4 (ES512, P-521), whose
//! payload is not a JWT, by its signature.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use auth_check::claims::{self, ClaimRules};
use auth_check::keys::{Algorithm, Key};
use auth_check::token::{DEFAULT_MAX_TOKEN_BYTES, TokenError, UnverifiedToken};
use edge_core::Timestamp;
use serde_json::{Value, json};

/// The payload of all three examples, byte for byte (CRLF and a leading
/// space on the second and third lines).
const PAYLOAD: &str =
    "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

/// Base64url of [`PAYLOAD`], as the RFC prints it.
const PAYLOAD_B64: &str = concat!(
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
);

/// A.1: `{"typ":"JWT",\r\n "alg":"HS256"}`.
const A1_TOKEN: &str = concat!(
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
);

fn a1_key() -> Value {
    json!({
        "kty": "oct",
        "k": concat!(
            "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75",
            "aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
        ),
    })
}

/// A.2: `{"alg":"RS256"}`.
const A2_TOKEN: &str = concat!(
    "eyJhbGciOiJSUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7",
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4",
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K",
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv",
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB",
    "p0igcN_IoypGlUPQGe77Rw",
);

/// A.2's key, public members only (the RFC's JWK also has `d`, `p`, …).
fn a2_key() -> Value {
    json!({
        "kty": "RSA",
        "n": include_str!("../testdata/rfc7515-a2-n.txt").trim_ascii(),
        "e": "AQAB",
    })
}

/// A.3: `{"alg":"ES256"}`.
const A3_TOKEN: &str = concat!(
    "eyJhbGciOiJFUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQ",
    "xfKTUJqPP3-Kg6NU1Q",
);

/// A.3's key, with its private `d`, which must be ignored.
fn a3_key() -> Value {
    json!({
        "kty": "EC",
        "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
    })
}

/// One hour before the examples' `exp`.
fn before_exp() -> Timestamp {
    Timestamp::from_millis((1_300_819_380 - 3600) * 1000)
}

fn rules() -> ClaimRules {
    ClaimRules {
        issuer: Some("joe".into()),
        ..ClaimRules::default()
    }
}

fn examples() -> [(&'static str, &'static str, Value, Algorithm); 3] {
    [
        ("A.1", A1_TOKEN, a1_key(), Algorithm::Hs256),
        ("A.2", A2_TOKEN, a2_key(), Algorithm::Rs256),
        ("A.3", A3_TOKEN, a3_key(), Algorithm::Es256),
    ]
}

#[test]
fn the_payload_is_the_rfcs() {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(PAYLOAD);
    assert_eq!(encoded, PAYLOAD_B64);
    for (name, token, _, _) in examples() {
        assert_eq!(token.split('.').nth(1), Some(PAYLOAD_B64), "{name}");
    }
}

#[test]
fn rfc7515_examples_verify() {
    for (name, token, jwk, alg) in examples() {
        let key = Key::from_jwk(&jwk).unwrap();
        let unverified = UnverifiedToken::decode(token, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        assert_eq!(unverified.header.alg, alg, "{name}");
        let claims = unverified.verify(&key).unwrap();
        assert_eq!(claims.iss(), Some("joe"), "{name}");
        assert_eq!(claims.get("http://example.com/is_root"), Some(&json!(true)));
        assert_eq!(
            claims::check(&claims, &rules(), before_exp()),
            Ok(()),
            "{name}"
        );

        // The same through a key set and a provider allowlist.
        let keys = [Key::from_jwk(&jwk).unwrap().with_kid("rfc")];
        let claims = UnverifiedToken::decode(token, DEFAULT_MAX_TOKEN_BYTES)
            .unwrap()
            .verify_with(&keys, &[alg])
            .unwrap();
        assert_eq!(claims.iss(), Some("joe"), "{name}");
    }
}

#[test]
fn rfc7515_examples_expire() {
    let at_exp_plus_leeway = Timestamp::from_millis((1_300_819_380 + 60) * 1000);
    for (name, token, jwk, _) in examples() {
        let key = Key::from_jwk(&jwk).unwrap();
        let claims = UnverifiedToken::decode(token, DEFAULT_MAX_TOKEN_BYTES)
            .unwrap()
            .verify(&key)
            .unwrap();
        let just_before = Timestamp(at_exp_plus_leeway.0 - Duration::from_millis(1));
        assert_eq!(
            claims::check(&claims, &rules(), just_before),
            Ok(()),
            "{name}"
        );
        assert_eq!(
            claims::check(&claims, &rules(), at_exp_plus_leeway),
            Err(TokenError::Expired),
            "{name}"
        );
    }
}

/// `token` with bit `bit` of byte `byte` of its decoded part `part`
/// flipped and re-encoded.
fn flip(token: &str, part: usize, byte: usize, bit: u8) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut bytes = b64.decode(&parts[part]).unwrap();
    bytes[byte] ^= 1 << bit;
    parts[part] = b64.encode(bytes);
    parts.join(".")
}

#[test]
fn one_flipped_bit_fails() {
    for (name, token, jwk, _) in examples() {
        let key = Key::from_jwk(&jwk).unwrap();
        // "joe" -> "jne": still valid JSON, a different payload.
        let payload = flip(token, 1, 9, 0);
        assert!(payload.contains('.'));
        let claims = UnverifiedToken::decode(&payload, DEFAULT_MAX_TOKEN_BYTES)
            .unwrap()
            .unverified_claims()
            .clone();
        assert_eq!(claims["iss"], "jne", "{name}");
        // The first and the last bit of the signature.
        let sig_len = UnverifiedToken::decode(token, DEFAULT_MAX_TOKEN_BYTES)
            .unwrap()
            .signature()
            .len();
        for tampered in [
            payload,
            flip(token, 2, 0, 7),
            flip(token, 2, sig_len - 1, 0),
        ] {
            let result = UnverifiedToken::decode(&tampered, DEFAULT_MAX_TOKEN_BYTES)
                .unwrap()
                .verify(&key);
            assert_eq!(result, Err(TokenError::BadSignature), "{name}: {tampered}");
        }
    }
}

#[test]
fn rfc7515_examples_only_verify_with_their_own_algorithm() {
    // Each example's key refuses the other examples' algorithms.
    for (name, token, _, alg) in examples() {
        for (other, _, jwk, other_alg) in examples() {
            if other_alg == alg {
                continue;
            }
            let key = Key::from_jwk(&jwk).unwrap();
            let result = UnverifiedToken::decode(token, DEFAULT_MAX_TOKEN_BYTES)
                .unwrap()
                .verify(&key);
            assert_eq!(
                result,
                Err(TokenError::AlgorithmNotAllowed(alg)),
                "{name} with {other}'s key"
            );
        }
    }
}

/// A.4: `{"alg":"ES512"}` over the payload `Payload` (not a JWT, so only
/// the signature is checked), P-521: 66-byte coordinates, a 132-byte
/// signature.
const A4_SIGNING_INPUT: &str = "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA";
const A4_SIGNATURE: &str = concat!(
    "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZq",
    "wqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8Kp",
    "EHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn",
);

/// A.4's key, with its private `d`, which must be ignored.
fn a4_key() -> Value {
    json!({
        "kty": "EC",
        "crv": "P-521",
        "x": concat!(
            "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_",
            "NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
        ),
        "y": concat!(
            "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDl",
            "y79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2",
        ),
        "d": concat!(
            "AY5pb7A0UFiB3RELSD64fTLOSV_jazdF7fLYyuTw8lOfRhWg6Y6rUrPA",
            "xerEzgdRhajnu0ferB0d53vM9mE15j2C",
        ),
    })
}

#[test]
fn rfc7515_a4_es512_verifies_and_a_flipped_bit_fails() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let key = Key::from_jwk(&a4_key()).unwrap();
    assert_eq!(key.algorithms(), vec![Algorithm::Es512]);
    let signature = b64.decode(A4_SIGNATURE).unwrap();
    assert_eq!(signature.len(), 132);
    let input = A4_SIGNING_INPUT.as_bytes();
    assert_eq!(key.verify(Algorithm::Es512, input, &signature), Ok(()));
    for (byte, bit) in [(0, 0), (65, 3), (66, 7), (131, 0)] {
        let mut bad = signature.clone();
        bad[byte] ^= 1 << bit;
        assert!(key.verify(Algorithm::Es512, input, &bad).is_err(), "{byte}");
    }
    assert!(
        key.verify(
            Algorithm::Es512,
            b"eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZB",
            &signature
        )
        .is_err()
    );
    // As a token its payload is not a JSON object, so it never gets that
    // far.
    let token = format!("{A4_SIGNING_INPUT}.{A4_SIGNATURE}");
    assert_eq!(
        UnverifiedToken::decode(&token, DEFAULT_MAX_TOKEN_BYTES).map(|_| ()),
        Err(TokenError::Malformed("the payload is not JSON"))
    );
}
