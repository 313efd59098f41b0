//! Tokens from two independent JWT libraries, `jose` (npm) and PyJWT with
//! `cryptography` (Python), minted at test time with fresh keys for every
//! algorithm (testdata/mint.mjs, testdata/mint.py): each valid token must
//! verify and pass the claim rules, and each variant and attack must be
//! refused for the right reason. The tools come from `cargo xtask test`
//! (npm `jose` in node_modules, PyJWT in target/pyenv); when they are
//! missing this test fails and says so rather than skipping.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use auth_check::claims::{self, ClaimRules};
use auth_check::keys::{Algorithm, Key, parse_jwks};
use auth_check::token::{DEFAULT_MAX_TOKEN_BYTES, TokenError, UnverifiedToken};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edge_core::Timestamp;
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "api://edge";
const HOW_TO_INSTALL: &str =
    "run `cargo xtask test` (it installs npm jose and target/pyenv with PyJWT)";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// Runs a mint script and parses its JSON, failing with the tool's output.
fn mint(program: &Path, script: &Path) -> Value {
    let out = Command::new(program)
        .arg(script)
        .args([ISSUER, AUDIENCE])
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {HOW_TO_INSTALL}", program.display()));
    assert!(
        out.status.success(),
        "{} {} failed ({}): {}\n{HOW_TO_INSTALL}",
        program.display(),
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn jose_tokens() -> Value {
    let repo = repo();
    assert!(
        repo.join("node_modules/jose/package.json").is_file(),
        "npm jose is not installed in {}: {HOW_TO_INSTALL}",
        repo.display()
    );
    let bundled = repo.join("node_modules/node/bin/node");
    let node = if bundled.is_file() {
        bundled
    } else {
        PathBuf::from("node")
    };
    mint(&node, &testdata("mint.mjs"))
}

fn pyjwt_tokens() -> Value {
    let python = std::env::var_os("EDGE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/pyenv/bin/python"));
    assert!(
        python.is_file(),
        "no Python with PyJWT at {}: {HOW_TO_INSTALL}, or set EDGE_PYTHON",
        python.display()
    );
    mint(&python, &testdata("mint.py"))
}

fn rules() -> ClaimRules {
    ClaimRules {
        issuer: Some(ISSUER.into()),
        audiences: vec![AUDIENCE.into()],
        ..ClaimRules::default()
    }
}

/// The key each algorithm's tokens are checked with: its public JWK, or
/// for HS256/384/512 the secret (as is and restricted to the algorithm);
/// and for public keys the same key from its PEM.
fn keys_for(alg: Algorithm, entry: &Value) -> Vec<Key> {
    if alg.is_hmac() {
        let secret = URL_SAFE_NO_PAD
            .decode(entry["secret"].as_str().unwrap())
            .unwrap();
        let key = Key::hmac(&secret).unwrap();
        assert!(key.allows(alg), "{alg}: {key:?}");
        return vec![key.clone(), key.restrict_to(alg).unwrap()];
    }
    let from_jwk = Key::from_jwk(&entry["jwk"]).unwrap();
    assert_eq!(from_jwk.kid(), entry["jwk"]["kid"].as_str());
    assert!(from_jwk.allows(alg), "{alg}: {from_jwk:?}");
    let from_pem = Key::from_pem(entry["pem"].as_str().unwrap()).unwrap();
    assert!(from_pem.allows(alg), "{alg}: {from_pem:?}");
    assert_eq!(from_jwk.rsa_components(), from_pem.rsa_components());
    vec![from_jwk, from_pem]
}

/// Verifies `token` with `key` and checks its claims at the minting time.
fn accept(token: &str, key: &Key, now: Timestamp) -> Result<claims::Claims, TokenError> {
    let claims = UnverifiedToken::decode(token, DEFAULT_MAX_TOKEN_BYTES)?.verify(key)?;
    claims::check(&claims, &rules(), now)?;
    Ok(claims)
}

fn cross_check(doc: &Value) {
    let library = doc["library"].as_str().unwrap();
    let now = Timestamp::from_millis(doc["now"].as_u64().unwrap() * 1000);
    let algorithms = doc["algorithms"].as_object().unwrap();
    assert_eq!(algorithms.len(), Algorithm::ALL.len(), "{library}");

    for (name, entry) in algorithms {
        let alg = Algorithm::from_name(name).unwrap();
        let tokens = &entry["tokens"];
        let token = |variant: &str| tokens[variant].as_str().unwrap().to_owned();
        for key in keys_for(alg, entry) {
            let what = format!("{library} {name} ({key:?})");
            let claims = accept(&token("valid"), &key, now)
                .unwrap_or_else(|e| panic!("{what}: the valid token was refused: {e}"));
            assert_eq!(claims.sub(), Some("user-1"), "{what}");
            assert_eq!(claims.scopes(), vec!["read", "write"], "{what}");
            assert_eq!(claims.roles(), vec!["admin"], "{what}");

            let header = UnverifiedToken::decode(&token("valid"), DEFAULT_MAX_TOKEN_BYTES)
                .unwrap()
                .header;
            assert_eq!(header.alg, alg, "{what}");
            assert_eq!(header.typ.as_deref(), Some("JWT"), "{what}");

            for (variant, expected) in [
                ("tampered", TokenError::BadSignature),
                ("expired", TokenError::Expired),
                ("wrong_audience", TokenError::WrongAudience),
                ("wrong_issuer", TokenError::WrongIssuer),
                ("not_yet_valid", TokenError::NotYetValid),
            ] {
                assert_eq!(
                    accept(&token(variant), &key, now).map(|_| ()),
                    Err(expected),
                    "{what}: {variant}"
                );
            }
        }
    }

    // Every public key in one JWK set; each token finds its key by kid.
    let jwks = json!({"keys": algorithms
        .values()
        .filter_map(|e| e.get("jwk").cloned())
        .collect::<Vec<_>>()});
    let set = parse_jwks(jwks.to_string().as_bytes()).unwrap();
    assert!(set.skipped.is_empty(), "{library}: {:?}", set.skipped);
    let asymmetric: Vec<Algorithm> = Algorithm::ALL
        .into_iter()
        .filter(|a| !a.is_hmac())
        .collect();
    assert_eq!(set.keys.len(), asymmetric.len(), "{library}");
    for (name, entry) in algorithms {
        let token = entry["tokens"]["valid"].as_str().unwrap();
        let verified = UnverifiedToken::decode(token, DEFAULT_MAX_TOKEN_BYTES)
            .unwrap()
            .verify_with(&set.keys, &asymmetric);
        let alg = Algorithm::from_name(name).unwrap();
        if alg.is_hmac() {
            assert_eq!(
                verified,
                Err(TokenError::AlgorithmNotAllowed(alg)),
                "{library}"
            );
        } else {
            assert!(verified.is_ok(), "{library} {name}: {verified:?}");
        }
    }

    // The attacks.
    let attacks = &doc["attacks"];
    let none = attacks["alg_none"].as_str().unwrap();
    assert_eq!(
        UnverifiedToken::decode(none, DEFAULT_MAX_TOKEN_BYTES).map(|_| ()),
        Err(TokenError::UnsupportedAlgorithm("none".into())),
        "{library}"
    );
    let confusion = attacks["hs256_with_rsa_public_key"].as_str().unwrap();
    let rsa_pem = algorithms["RS256"]["pem"].as_str().unwrap();
    for keys in [
        set.keys.clone(),
        vec![Key::from_pem(rsa_pem).unwrap()],
        vec![Key::from_jwk(&algorithms["RS256"]["jwk"]).unwrap()],
    ] {
        for allowed in [&[Algorithm::Rs256][..], &Algorithm::ALL] {
            assert_eq!(
                UnverifiedToken::decode(confusion, DEFAULT_MAX_TOKEN_BYTES)
                    .unwrap()
                    .verify_with(&keys, allowed),
                Err(TokenError::AlgorithmNotAllowed(Algorithm::Hs256)),
                "{library}: RS/HS confusion with {allowed:?}"
            );
        }
    }
    // It is a genuine HMAC with the PEM text: only an HMAC key built
    // from that text accepts it, which configuration must never do.
    let pem_as_secret = Key::hmac(rsa_pem.as_bytes()).unwrap();
    assert!(
        UnverifiedToken::decode(confusion, DEFAULT_MAX_TOKEN_BYTES)
            .unwrap()
            .verify(&pem_as_secret)
            .is_ok(),
        "{library}: the confusion token is not what it claims"
    );
}

#[test]
fn jose_tokens_cross_check() {
    cross_check(&jose_tokens());
}

#[test]
fn pyjwt_tokens_cross_check() {
    cross_check(&pyjwt_tokens());
}
