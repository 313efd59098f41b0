//! The worker's one route, `GET /verify`, and `GET /health`.

use auth_check::keys::{Algorithm, Key};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edge_workers::webcrypto::{self, EcCurve, RsaAlg};
use serde_json::{Value, json};
use worker::{Context, Env, Request, Response, Result, event};

/// The fixtures `bench/auth` verifies too.
const FIXTURES: &str = include_str!("../../auth/fixtures.json");

/// The most checks one request may ask for.
const MAX_N: u32 = 1_000_000;

#[event(fetch)]
async fn fetch(req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    match url.path() {
        "/health" => Response::ok("ok"),
        "/verify" => {
            let query = |name: &str| {
                url.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            };
            let backend = query("backend").unwrap_or_else(|| "rust".to_owned());
            let alg = query("alg").unwrap_or_else(|| "RS256".to_owned());
            let n = query("n")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n <= MAX_N)
                .unwrap_or(1);
            match run(&backend, &alg, n).await {
                Ok(ok) if ok == n => Response::from_json(&json!({
                    "backend": backend, "alg": alg, "n": n, "ok": ok
                })),
                Ok(ok) => Response::error(format!("{backend} {alg}: {ok} of {n} accepted"), 500),
                Err(e) => Response::error(format!("{backend} {alg}: {e}"), 500),
            }
        }
        _ => Response::error("not found", 404),
    }
}

/// Checks `alg`'s fixture signature `n` times with `backend`; how many
/// were accepted.
async fn run(backend: &str, alg: &str, n: u32) -> std::result::Result<u32, String> {
    let fixtures: Value = serde_json::from_str(FIXTURES).map_err(|e| e.to_string())?;
    let fixture = fixtures["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["alg"] == alg))
        .ok_or_else(|| format!("no fixture for {alg}"))?;
    let algorithm = Algorithm::from_name(alg).ok_or_else(|| format!("unknown alg {alg}"))?;
    let token = fixture["token"].as_str().unwrap_or_default();
    let (input, signature) = token.rsplit_once('.').ok_or("not a JWS")?;
    let (input, signature) = (
        input.as_bytes(),
        URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|e| e.to_string())?,
    );
    let jwk = |member: &str| {
        URL_SAFE_NO_PAD
            .decode(fixture["jwk"][member].as_str().unwrap_or_default())
            .map_err(|e| format!("jwk {member}: {e}"))
    };
    let mut ok = 0;
    match backend {
        "rust" => {
            let key = Key::from_jwk(&fixture["jwk"]).map_err(|e| e.to_string())?;
            for _ in 0..n {
                ok += u32::from(key.verify(algorithm, input, &signature).is_ok());
            }
        }
        "webcrypto" | "webcrypto-import" => {
            enum Check {
                Rsa(RsaAlg),
                Ecdsa(EcCurve),
                Ed25519,
            }
            let check = match algorithm {
                Algorithm::Rs256 => Check::Rsa(RsaAlg::Pkcs1Sha256),
                Algorithm::Rs384 => Check::Rsa(RsaAlg::Pkcs1Sha384),
                Algorithm::Rs512 => Check::Rsa(RsaAlg::Pkcs1Sha512),
                Algorithm::Ps256 => Check::Rsa(RsaAlg::PssSha256),
                Algorithm::Ps384 => Check::Rsa(RsaAlg::PssSha384),
                Algorithm::Ps512 => Check::Rsa(RsaAlg::PssSha512),
                Algorithm::Es256 => Check::Ecdsa(EcCurve::P256),
                Algorithm::Es384 => Check::Ecdsa(EcCurve::P384),
                Algorithm::Es512 => Check::Ecdsa(EcCurve::P521),
                Algorithm::EdDsa => Check::Ed25519,
                Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512 => {
                    return Err(format!("no WebCrypto path for {}", algorithm.as_str()));
                }
            };
            let (a, b) = match check {
                Check::Rsa(_) => (jwk("n")?, jwk("e")?),
                Check::Ecdsa(_) => (jwk("x")?, jwk("y")?),
                Check::Ed25519 => (jwk("x")?, Vec::new()),
            };
            for _ in 0..n {
                if backend == "webcrypto-import" {
                    webcrypto::clear_key_cache();
                }
                let verdict = match check {
                    Check::Rsa(scheme) => {
                        webcrypto::verify_rsa(scheme, &a, &b, input, &signature).await
                    }
                    Check::Ecdsa(curve) => {
                        webcrypto::verify_ecdsa(curve, &a, &b, input, &signature).await
                    }
                    Check::Ed25519 => webcrypto::verify_ed25519(&a, input, &signature).await,
                };
                ok += u32::from(verdict.map_err(|e| e.to_string())?);
            }
        }
        other => return Err(format!("unknown backend {other}")),
    }
    Ok(ok)
}
