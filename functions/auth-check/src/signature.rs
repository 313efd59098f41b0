//! Where a token's signature is checked. On Workers (the `webcrypto`
//! feature: auth-check's own worker and the gateway's) the runtime's
//! WebCrypto (BoringSSL in workerd) does it: `cargo xtask bench auth-check` measured
//! it 31–47× faster than this crate's pure-Rust RSA compiled to wasm, 14–33×
//! for ECDSA and 2× for Ed25519. Everywhere else (Spin, browsers, native)
//! the pure-Rust verification in [`crate::keys`] runs. HS256/384/512 always
//! stay in Rust (the HMAC state is not exportable, and it is fast there).

use edge_core::function::Context;

use crate::keys::{Algorithm, Key};

/// Whether one of `keys` (already filtered to those allowing `alg`)
/// verifies `signature` over `signing_input`.
pub(crate) async fn verify_any(
    keys: &[&Key],
    alg: Algorithm,
    signing_input: &[u8],
    signature: &[u8],
    ctx: &Context<'_>,
) -> bool {
    for key in keys {
        if verify(key, alg, signing_input, signature, ctx).await {
            return true;
        }
    }
    false
}

#[cfg(not(all(feature = "webcrypto", target_arch = "wasm32")))]
async fn verify(
    key: &Key,
    alg: Algorithm,
    signing_input: &[u8],
    signature: &[u8],
    _ctx: &Context<'_>,
) -> bool {
    key.verify(alg, signing_input, signature).is_ok()
}

#[cfg(all(feature = "webcrypto", target_arch = "wasm32"))]
async fn verify(
    key: &Key,
    alg: Algorithm,
    signing_input: &[u8],
    signature: &[u8],
    ctx: &Context<'_>,
) -> bool {
    use crate::keys::PublicParts;
    use edge_workers::webcrypto::{self, EcCurve, RsaAlg};

    if !key.allows(alg) {
        return false;
    }
    let answer = match (alg, key.public_parts()) {
        (
            Algorithm::Rs256
            | Algorithm::Rs384
            | Algorithm::Rs512
            | Algorithm::Ps256
            | Algorithm::Ps384
            | Algorithm::Ps512,
            PublicParts::Rsa { n, e },
        ) => {
            // Same length rule as the Rust path (RFC 8017 §8.2.2).
            if signature.len() != n.iter().skip_while(|b| **b == 0).count() {
                return false;
            }
            let scheme = match alg {
                Algorithm::Rs384 => RsaAlg::Pkcs1Sha384,
                Algorithm::Rs512 => RsaAlg::Pkcs1Sha512,
                Algorithm::Ps256 => RsaAlg::PssSha256,
                Algorithm::Ps384 => RsaAlg::PssSha384,
                Algorithm::Ps512 => RsaAlg::PssSha512,
                _ => RsaAlg::Pkcs1Sha256,
            };
            webcrypto::verify_rsa(scheme, &n, &e, signing_input, signature).await
        }
        (Algorithm::Es256, PublicParts::P256 { x, y }) if signature.len() == 64 => {
            webcrypto::verify_ecdsa(EcCurve::P256, &x, &y, signing_input, signature).await
        }
        (Algorithm::Es384, PublicParts::P384 { x, y }) if signature.len() == 96 => {
            webcrypto::verify_ecdsa(EcCurve::P384, &x, &y, signing_input, signature).await
        }
        (Algorithm::Es512, PublicParts::P521 { x, y }) if signature.len() == 132 => {
            webcrypto::verify_ecdsa(EcCurve::P521, &x, &y, signing_input, signature).await
        }
        (Algorithm::EdDsa, PublicParts::Ed25519(public)) if signature.len() == 64 => {
            webcrypto::verify_ed25519(&public, signing_input, signature).await
        }
        _ => return key.verify(alg, signing_input, signature).is_ok(),
    };
    // WebCrypto unavailable or refusing the key: the Rust path decides.
    answer.unwrap_or_else(|e| {
        ctx.log().warn(
            "webcrypto failed; verifying in Rust",
            serde_json::json!({ "alg": alg.as_str(), "error": e.to_string() }),
        );
        key.verify(alg, signing_input, signature).is_ok()
    })
}
