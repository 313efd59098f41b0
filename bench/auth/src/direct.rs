//! Signature checks straight through the crypto crates, without
//! auth-check: the RSA alternatives the function could be built on (rsa 0.9
//! with either digit size, rsa 0.10 on crypto-bigint) measured on the same
//! signatures, so their native and wasm speeds can be compared.

use rsa::signature::Verifier as _;
use sha2::Sha256;

/// The digit size num-bigint-dig was built with in this program: 64 when
/// any crate of the build turns on rsa's `u64_digit` (auth-check does natively),
/// else 32. Features unify, so this is read from the build, not assumed.
#[allow(
    clippy::useless_conversion,
    reason = "a limb is u64 in one digit size, u32 in the other"
)]
pub fn rsa09_digit_bits() -> u32 {
    let limb: u64 = rsa::BigUint::from_bytes_be(&[0xff; 8]).get_limb(0).into();
    if limb == u64::MAX { 64 } else { 32 }
}

/// crypto-bigint's limb size in this build: 64 by default, on wasm32 too
/// (its `cpubits` promotes wasm32 to 64-bit limbs, whose 64×64→128
/// products wasm32 emulates); 32 with `RUSTFLAGS='--cfg cpubits="32"'`.
pub fn rsa010_limb_bits() -> u32 {
    let limbs = rsa_next::BoxedUint::from_be_slice_vartime(&[0xff; 8])
        .as_limbs()
        .len();
    if limbs == 1 { 64 } else { 32 }
}

/// An RSA verifier of one padding on one crate.
pub enum Rsa {
    /// rsa 0.9, PKCS#1 v1.5.
    Pkcs1(rsa::pkcs1v15::VerifyingKey<Sha256>),
    /// rsa 0.9, PSS.
    Pss(rsa::pss::VerifyingKey<Sha256>),
    /// rsa 0.10 (crypto-bigint), PKCS#1 v1.5.
    NextPkcs1(rsa_next::pkcs1v15::VerifyingKey<rsa_next::sha2::Sha256>),
    /// rsa 0.10 (crypto-bigint), PSS.
    NextPss(rsa_next::pss::VerifyingKey<rsa_next::sha2::Sha256>),
}

impl Rsa {
    /// rsa 0.9 with modulus `n` and exponent `e` (big-endian).
    pub fn v09(pss: bool, n: &[u8], e: &[u8]) -> Result<Rsa, String> {
        let key = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(n),
            rsa::BigUint::from_bytes_be(e),
        )
        .map_err(|e| e.to_string())?;
        Ok(if pss {
            Rsa::Pss(rsa::pss::VerifyingKey::new(key))
        } else {
            Rsa::Pkcs1(rsa::pkcs1v15::VerifyingKey::new(key))
        })
    }

    /// rsa 0.10 with modulus `n` and exponent `e` (big-endian).
    pub fn v010(pss: bool, n: &[u8], e: &[u8]) -> Result<Rsa, String> {
        let uint = |bytes: &[u8]| rsa_next::BoxedUint::from_be_slice_vartime(bytes);
        let key = rsa_next::RsaPublicKey::new(uint(n), uint(e)).map_err(|e| e.to_string())?;
        Ok(if pss {
            Rsa::NextPss(rsa_next::pss::VerifyingKey::new(key))
        } else {
            Rsa::NextPkcs1(rsa_next::pkcs1v15::VerifyingKey::new(key))
        })
    }

    /// Whether `signature` signs `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use rsa_next::signature::Verifier as _;
        match self {
            Rsa::Pkcs1(key) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|s| key.verify(message, &s).is_ok()),
            Rsa::Pss(key) => rsa::pss::Signature::try_from(signature)
                .is_ok_and(|s| key.verify(message, &s).is_ok()),
            Rsa::NextPkcs1(key) => rsa_next::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|s| key.verify(message, &s).is_ok()),
            Rsa::NextPss(key) => rsa_next::pss::Signature::try_from(signature)
                .is_ok_and(|s| key.verify(message, &s).is_ok()),
        }
    }
}
