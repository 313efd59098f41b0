//! Compact JWS (auth-check `token`): any string is decoded without a panic,
//! and a decoded token keeps its parts as sent. Tokens signed here with
//! HMAC over fuzzer-chosen header and payload JSON verify with the key
//! (sign → verify round trip), and the same token with its signature
//! changed never does.
#![no_main]

use auth_check::keys::{Algorithm, Key};
use auth_check::token::{DEFAULT_MAX_TOKEN_BYTES, TokenError, UnverifiedToken};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::Mac;
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8; 64] = b"fuzz-hmac-secret-fuzz-hmac-secret-fuzz-hmac-secret-fuzz-hmac-sec";

fn hs256(input: &str) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn check_decoded(token: &str) {
    let Ok(decoded) = UnverifiedToken::decode(token, DEFAULT_MAX_TOKEN_BYTES) else {
        return;
    };
    let input = decoded.signing_input();
    assert!(
        token.starts_with(input),
        "signing input is not the token's prefix"
    );
    let sig_b64 = &token[input.len()..];
    assert!(sig_b64.starts_with('.'));
    assert_eq!(
        B64.decode(&sig_b64[1..]).ok().as_deref(),
        Some(decoded.signature()),
        "signature is not the third part"
    );
    let key = Key::hmac(SECRET).expect("a 64-byte secret");
    let alg = decoded.header.alg;
    let expected = hs256(input);
    match decoded.clone().verify(&key) {
        Ok(_) => assert!(
            alg == Algorithm::Hs256 && decoded.signature() == expected.as_slice(),
            "{alg:?} token accepted without a valid HS256 signature"
        ),
        Err(TokenError::BadSignature) => assert!(
            alg != Algorithm::Hs256 || decoded.signature() != expected.as_slice(),
            "a valid HS256 signature refused"
        ),
        Err(_) => {}
    }
    let _ = decoded.verify_with(&[key], &[Algorithm::Hs256, Algorithm::Rs256]);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(token) = std::str::from_utf8(rest) {
            check_decoded(token);
        }
        return;
    }
    // Header JSON, newline, payload JSON: signed here with HS256.
    let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b"{}"[..]),
    };
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let mut signature = hs256(&input);
    let token = format!("{input}.{}", B64.encode(&signature));
    check_decoded(&token);
    if let Ok(decoded) = UnverifiedToken::decode(&token, DEFAULT_MAX_TOKEN_BYTES)
        && decoded.header.alg == Algorithm::Hs256
    {
        let key = Key::hmac(SECRET).expect("a 64-byte secret");
        assert!(
            decoded.verify(&key).is_ok(),
            "sign → verify failed: {token}"
        );
        signature[0] ^= 1;
        let forged = format!("{input}.{}", B64.encode(&signature));
        let decoded = UnverifiedToken::decode(&forged, DEFAULT_MAX_TOKEN_BYTES)
            .expect("same header and payload");
        assert_eq!(decoded.verify(&key).err(), Some(TokenError::BadSignature));
    }
});
