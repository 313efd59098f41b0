//! RFC 5297 (SIV) Appendix A test vectors through the `aes-siv` API the
//! `Encrypt` operator uses, and the operator's derived-key output against the
//! independent Python reference (`testdata/operators_golden.json`, made with
//! `cryptography`'s HKDF and AESSIV).
//!
//! The vectors are copied as the RFC prints them (groups of 32-bit words);
//! A.1 and A.2 use a 256-bit key, i.e. AES-128 for both S2V and CTR
//! (`Aes128Siv`). The operator uses the same construction with a 512-bit key
//! (`Aes256Siv`).

#![allow(clippy::unwrap_used)]

use aes_siv::KeyInit;
use aes_siv::siv::{Aes128Siv, Aes256Siv};
use anonymize::operators::{
    Keys, Operator, SIV_KEY_INFO, TOKEN_PREFIX, TOKEN_SUFFIX, apply, decrypt_token, derive_siv_key,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Bytes from the RFC's hex layout (white space ignored).
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert_eq!(digits.len() % 2, 0);
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// A.1. Deterministic Authenticated Encryption Example.
#[test]
fn a1_deterministic() {
    let key = hex("fffefdfc fbfaf9f8 f7f6f5f4 f3f2f1f0
                   f0f1f2f3 f4f5f6f7 f8f9fafb fcfdfeff");
    let ad = hex("10111213 14151617 18191a1b 1c1d1e1f
                  20212223 24252627");
    let plaintext = hex("11223344 55667788 99aabbcc ddee");
    // output, IV || C:
    let output = hex("85632d07 c6e8f37f 950acd32 0a2ecc93
                      40c02b96 90c4dc04 daef7f6a fe5c");

    let mut siv = Aes128Siv::new_from_slice(&key).unwrap();
    assert_eq!(siv.encrypt([&ad], &plaintext).unwrap(), output);
    assert_eq!(siv.decrypt([&ad], &output).unwrap(), plaintext);

    // The detached form the operator uses: tag (the S2V result, "CMAC(final)")
    // and ciphertext.
    let mut body = plaintext.clone();
    let tag = siv.encrypt_in_place_detached([&ad], &mut body).unwrap();
    assert_eq!(
        tag.as_slice(),
        &hex("85632d07 c6e8f37f 950acd32 0a2ecc93")[..]
    );
    assert_eq!(body, hex("40c02b96 90c4dc04 daef7f6a fe5c"));

    // Any change is caught.
    let mut altered = output.clone();
    altered[20] ^= 1;
    assert!(siv.decrypt([&ad], &altered).is_err());
    assert!(siv.decrypt([&ad[..23]], &output).is_err());
}

/// A.2. Nonce-Based Authenticated Encryption Example: two associated-data
/// items and a nonce, all given to S2V in order (nonce last).
#[test]
fn a2_nonce_based() {
    let key = hex("7f7e7d7c 7b7a7978 77767574 73727170
                   40414243 44454647 48494a4b 4c4d4e4f");
    let ad1 = hex("00112233 44556677 8899aabb ccddeeff
                   deaddada deaddada ffeeddcc bbaa9988
                   77665544 33221100");
    let ad2 = hex("10203040 50607080 90a0");
    let nonce = hex("09f91102 9d74e35b d84156c5 635688c0");
    let plaintext = hex("74686973 20697320 736f6d65 20706c61
                         696e7465 78742074 6f20656e 63727970
                         74207573 696e6720 5349562d 414553");
    // output, IV || C:
    let output = hex("7bdb6e3b 432667eb 06f4d14b ff2fbd0f
                      cb900f2f ddbe4043 26601965 c889bf17
                      dba77ceb 094fa663 b7a3f748 ba8af829
                      ea64ad54 4a272e9c 485b62a3 fd5c0d");
    assert_eq!(
        plaintext,
        b"this is some plaintext to encrypt using SIV-AES"
    );

    let mut siv = Aes128Siv::new_from_slice(&key).unwrap();
    let headers = [&ad1[..], &ad2[..], &nonce[..]];
    assert_eq!(siv.encrypt(headers, &plaintext).unwrap(), output);
    assert_eq!(siv.decrypt(headers, &output).unwrap(), plaintext);
    // Order matters.
    assert!(
        siv.decrypt([&ad2[..], &ad1[..], &nonce[..]], &output)
            .is_err()
    );

    // The AEAD wrapper of the same crate puts (AD, nonce) in the same places.
    use aes_siv::aead::{Aead, Payload};
    let aead = aes_siv::Aes128SivAead::new_from_slice(&key).unwrap();
    let single_ad = hex("0a0b0c");
    let a = aead
        .encrypt(
            aes_siv::Nonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad: &single_ad,
            },
        )
        .unwrap();
    let b = siv
        .encrypt([&single_ad[..], &nonce[..]], &plaintext)
        .unwrap();
    assert_eq!(a, b);
}

fn golden() -> Value {
    serde_json::from_str(include_str!("../testdata/operators_golden.json")).unwrap()
}

/// The operator's key derivation and token layout, against the Python
/// reference: HKDF-SHA-256(secret, no salt, info) → 64 bytes → AES-256-SIV
/// with no associated data → `ENC2_` + base64url(tag ‖ ciphertext) + `~`.
#[test]
fn derived_key_encrypt_matches_python_reference() {
    let g = golden();
    assert_eq!(g["hkdf_info"].as_str().unwrap().as_bytes(), SIV_KEY_INFO);
    let secret = g["secret"].as_str().unwrap().as_bytes();
    let key = derive_siv_key(secret);
    assert_eq!(key.to_vec(), hex(g["siv_key_hex"].as_str().unwrap()));

    let keys = Keys::new(g["salt"].as_str().unwrap().as_bytes(), Some(secret));
    let mut raw = Aes256Siv::new_from_slice(&key).unwrap();
    for case in g["encrypt"].as_array().unwrap() {
        let value = case["value"].as_str().unwrap();
        let token = case["token"].as_str().unwrap();
        let sealed = URL_SAFE_NO_PAD
            .decode(
                token
                    .strip_prefix(TOKEN_PREFIX)
                    .and_then(|t| t.strip_suffix(TOKEN_SUFFIX))
                    .unwrap(),
            )
            .unwrap();
        // The crate directly, with the reference's key and no headers.
        let no_headers: [&[u8]; 0] = [];
        assert_eq!(raw.encrypt(no_headers, value.as_bytes()).unwrap(), sealed);
        assert_eq!(raw.decrypt(no_headers, &sealed).unwrap(), value.as_bytes());
        // And through the operator.
        let mut out = String::new();
        apply(&Operator::Encrypt, "field", value, &keys, &mut out).unwrap();
        assert_eq!(out, token);
        assert_eq!(decrypt_token(&keys, token).unwrap(), value);
    }
}

/// RFC 5869 A.3 (SHA-256, no salt, no info) through the `hkdf` crate the
/// key derivation uses: a zero-length salt is HashLen zero bytes.
#[test]
fn hkdf_without_salt_is_rfc5869_a3() {
    let ikm = [0x0bu8; 22];
    let mut okm = [0u8; 42];
    hkdf::Hkdf::<sha2::Sha256>::new(None, &ikm)
        .expand(&[], &mut okm)
        .unwrap();
    assert_eq!(
        okm.to_vec(),
        hex(
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d\
             9d201395faa4b61a96c8"
        )
    );
}
