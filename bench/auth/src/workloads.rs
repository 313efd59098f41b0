//! What is timed: per algorithm, auth-check's full token verification and
//! its signature check alone, jsonwebtoken's full verification (native
//! only) and, for RSA, the crates the function could be built on.

use crate::direct;
use crate::fixtures::{self, Fixture};

/// Every algorithm, in table order.
pub const ALGORITHMS: [&str; 6] = ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"];

/// The time every claims check runs at: an hour after the tokens were
/// issued (they expire in 2100).
#[cfg(feature = "auth-check")]
const NOW: u64 = 1_795_309_200;

/// How a token is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The whole token through auth-check: decode, signature, claims.
    Full,
    /// auth-check's signature check alone, on a parsed key.
    Signature,
    /// jsonwebtoken 9 (ring): decode, signature, claims. Native only.
    Jsonwebtoken,
    /// rsa 0.9 directly (digit size per build), signature only.
    Rsa09,
    /// rsa 0.10.0-rc.20 directly, signature only.
    Rsa010,
}

impl Path {
    fn id(self) -> &'static str {
        match self {
            Path::Full => "full",
            Path::Signature => "signature",
            Path::Jsonwebtoken => "jsonwebtoken",
            Path::Rsa09 => "rsa-0.9",
            Path::Rsa010 => "rsa-0.10",
        }
    }
}

/// One path on one algorithm's fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// How.
    pub path: Path,
    /// The JWS `alg`.
    pub alg: &'static str,
}

/// A verification to time; `true` when the token was accepted.
pub type Verifier = Box<dyn FnMut() -> bool>;

/// The workloads this build can run: the direct RSA ones always;
/// auth-check's when built in, and then natively jsonwebtoken's (a build
/// without auth-check is only there for the RSA rows).
pub fn all_workloads() -> Vec<Workload> {
    let mut paths = Vec::new();
    if cfg!(feature = "auth-check") {
        paths.extend([Path::Full, Path::Signature]);
        if cfg!(not(target_family = "wasm")) {
            paths.push(Path::Jsonwebtoken);
        }
    }
    let mut out: Vec<Workload> = paths
        .into_iter()
        .flat_map(|path| ALGORITHMS.map(|alg| Workload::new(path, alg)))
        .collect();
    for path in [Path::Rsa09, Path::Rsa010] {
        out.extend(["RS256", "PS256"].map(|alg| Workload::new(path, alg)));
    }
    out
}

impl Workload {
    /// `path` on `alg`.
    pub fn new(path: Path, alg: &'static str) -> Workload {
        Workload { path, alg }
    }

    /// A stable identifier (JSON, `--only`): `full/RS256`.
    pub fn id(self) -> String {
        format!("{}/{}", self.path.id(), self.alg)
    }

    /// The verification, its key parsed once up front.
    pub fn verifier(self) -> Result<Verifier, String> {
        let fixture = fixtures::get(self.alg);
        let (input, signature) = fixture.parts();
        let input = input.to_vec();
        match self.path {
            Path::Full => full(fixture),
            Path::Signature => signature_only(&fixture, input, signature),
            Path::Jsonwebtoken => jsonwebtoken(&fixture),
            Path::Rsa09 | Path::Rsa010 => {
                let (n, e) = (fixture.jwk_bytes("n"), fixture.jwk_bytes("e"));
                let pss = self.alg == "PS256";
                let key = if self.path == Path::Rsa09 {
                    direct::Rsa::v09(pss, &n, &e)?
                } else {
                    direct::Rsa::v010(pss, &n, &e)?
                };
                Ok(Box::new(move || key.verify(&input, &signature)))
            }
        }
    }
}

/// The whole token through auth-check, as the function checks it: decode
/// (the default 8 KiB limit), signature, then the claims against issuer
/// and audience rules.
#[cfg(feature = "auth-check")]
fn full(fixture: Fixture) -> Result<Verifier, String> {
    use auth_check::claims::{ClaimRules, check};
    use auth_check::token::UnverifiedToken;
    let key = key(&fixture)?;
    let claims = fixtures::claims();
    let rules = ClaimRules {
        issuer: claims["iss"].as_str().map(str::to_owned),
        audiences: claims["aud"]
            .as_str()
            .map(str::to_owned)
            .into_iter()
            .collect(),
        ..ClaimRules::default()
    };
    let now = edge_core::Timestamp::from_millis(NOW * 1000);
    let token = fixture.token;
    Ok(Box::new(move || {
        UnverifiedToken::decode(&token, 8192)
            .and_then(|t| t.verify(&key))
            .and_then(|claims| check(&claims, &rules, now))
            .is_ok()
    }))
}

/// auth-check's signature check alone, on the parsed key.
#[cfg(feature = "auth-check")]
fn signature_only(
    fixture: &Fixture,
    input: Vec<u8>,
    signature: Vec<u8>,
) -> Result<Verifier, String> {
    let key = key(fixture)?;
    let alg = auth_check::keys::Algorithm::from_name(&fixture.alg)
        .ok_or_else(|| format!("auth-check has no {}", fixture.alg))?;
    Ok(Box::new(move || {
        key.verify(alg, &input, &signature).is_ok()
    }))
}

/// auth-check's key for `fixture`, from its JWK.
#[cfg(feature = "auth-check")]
pub fn key(fixture: &Fixture) -> Result<auth_check::keys::Key, String> {
    auth_check::keys::Key::from_jwk(&fixture.jwk).map_err(|e| format!("{}: {e}", fixture.alg))
}

#[cfg(not(feature = "auth-check"))]
fn full(fixture: Fixture) -> Result<Verifier, String> {
    Err(format!("{}: built without auth-check", fixture.alg))
}

#[cfg(not(feature = "auth-check"))]
fn signature_only(fixture: &Fixture, _: Vec<u8>, _: Vec<u8>) -> Result<Verifier, String> {
    full(fixture.clone())
}

#[cfg(not(target_family = "wasm"))]
fn jsonwebtoken(fixture: &Fixture) -> Result<Verifier, String> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let text = |member: &str| fixture.jwk[member].as_str().unwrap_or_default().to_owned();
    let bad = |e: jsonwebtoken::errors::Error| e.to_string();
    let (alg, key) = match fixture.alg.as_str() {
        "RS256" | "PS256" => (
            if fixture.alg == "RS256" {
                Algorithm::RS256
            } else {
                Algorithm::PS256
            },
            DecodingKey::from_rsa_components(&text("n"), &text("e")).map_err(bad)?,
        ),
        "ES256" | "ES384" => (
            if fixture.alg == "ES256" {
                Algorithm::ES256
            } else {
                Algorithm::ES384
            },
            DecodingKey::from_ec_components(&text("x"), &text("y")).map_err(bad)?,
        ),
        "EdDSA" => (
            Algorithm::EdDSA,
            DecodingKey::from_ed_components(&text("x")).map_err(bad)?,
        ),
        "HS256" => (
            Algorithm::HS256,
            DecodingKey::from_secret(&fixture.jwk_bytes("k")),
        ),
        other => return Err(format!("jsonwebtoken: no {other}")),
    };
    let claims = fixtures::claims();
    let mut validation = Validation::new(alg);
    validation.set_audience(&[claims["aud"].as_str().unwrap_or_default()]);
    validation.set_issuer(&[claims["iss"].as_str().unwrap_or_default()]);
    validation.validate_nbf = true;
    let token = fixture.token.clone();
    Ok(Box::new(move || {
        jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).is_ok()
    }))
}

#[cfg(target_family = "wasm")]
fn jsonwebtoken(fixture: &Fixture) -> Result<Verifier, String> {
    Err(format!(
        "{}: jsonwebtoken (ring) is native only",
        fixture.alg
    ))
}
