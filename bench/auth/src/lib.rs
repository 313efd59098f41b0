//! JWT verifications per second, the same loops natively and in wasm.
//!
//! This crate exists so that one program measures auth-check's token
//! verification on every runtime: built natively it is the native
//! measurement, built for `wasm32-wasip2` it is a WASI command that
//! `bench-runner` runs under wasmtime. Beside auth-check it times
//! `jsonwebtoken` (ring, native only) and the RSA crates the function could
//! be built on, on the same tokens and keys ([`fixtures`]). Each run prints
//! a [`Report`] as JSON; [`tables`] sets reports side by side.
//! `cargo xtask bench auth-check` drives all of it.

pub mod direct;
pub mod fixtures;
pub mod workloads;

use bench_support::thousands;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use workloads::{Path, Workload, all_workloads};

/// One runtime's measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `native` or `wasm`.
    pub runtime: String,
    /// num-bigint-dig's digit size in this build (see [`direct::rsa09_digit_bits`]).
    pub rsa09_digit_bits: u32,
    /// crypto-bigint's limb size in this build (see [`direct::rsa010_limb_bits`]).
    pub rsa010_limb_bits: u32,
    /// One entry per workload run.
    pub results: Vec<Measurement>,
}

/// One workload's timed rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// [`Workload::id`].
    pub id: String,
    /// Verifications per timed round.
    pub verifications: u64,
    /// Timed rounds (after one calibrating warm-up round).
    pub rounds: u32,
    /// The median round's rate.
    pub per_second: f64,
    /// The fastest round's rate.
    pub best_per_second: f64,
    /// The slowest round's rate.
    pub worst_per_second: f64,
}

/// Times `verify` (which must return `true`: every fixture is valid): a
/// warm-up of at least 50 ms sizes the rounds to about `round` each, then
/// `rounds` timed rounds.
pub fn measure(
    id: &str,
    mut verify: impl FnMut() -> bool,
    round: Duration,
    rounds: u32,
) -> Result<Measurement, String> {
    let mut warm = 0u64;
    let started = Instant::now();
    while warm < 3 || started.elapsed() < Duration::from_millis(50) {
        if !std::hint::black_box(verify()) {
            return Err(format!("{id}: a valid token was refused"));
        }
        warm += 1;
    }
    let each = started.elapsed().as_secs_f64() / warm as f64;
    let verifications = ((round.as_secs_f64() / each) as u64).max(3);
    let mut rates = Vec::new();
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        let mut ok = 0u64;
        for _ in 0..verifications {
            ok += u64::from(std::hint::black_box(verify()));
        }
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        if ok != verifications {
            return Err(format!("{id}: a valid token was refused"));
        }
        rates.push(verifications as f64 / elapsed);
    }
    rates.sort_by(f64::total_cmp);
    Ok(Measurement {
        id: id.to_owned(),
        verifications,
        rounds: rounds.max(1),
        per_second: rates[rates.len() / 2],
        best_per_second: rates[rates.len() - 1],
        worst_per_second: rates[0],
    })
}

/// The markdown tables of a run: per algorithm, auth-check natively and in
/// wasm (full token and signature only) beside jsonwebtoken; then the RSA
/// alternatives, signature only, natively and in wasm.
pub fn tables(reports: &[Report]) -> String {
    // The rate of `id` on `runtime` in a build whose RSA digits (rsa 0.9)
    // or limbs (rsa 0.10) are `bits` wide, if given.
    let rate = |runtime: &str, id: &str, bits: Option<u32>| {
        reports
            .iter()
            .filter(|r| r.runtime == runtime)
            .filter(|r| {
                let width = if id.starts_with("rsa-0.10") {
                    r.rsa010_limb_bits
                } else {
                    r.rsa09_digit_bits
                };
                bits.is_none_or(|b| width == b)
            })
            .find_map(|r| r.results.iter().find(|m| m.id == id))
            .map(|m| m.per_second)
    };
    let cell = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), thousands);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".to_owned(),
    };
    let mut out = String::from(
        "| algorithm | auth-check native | auth-check wasm | wasm/native \
         | signature only native | signature only wasm | wasm/native \
         | jsonwebtoken 9 (ring) native | auth-check native/jsonwebtoken |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for alg in workloads::ALGORITHMS {
        let full = Workload::new(Path::Full, alg).id();
        let sig = Workload::new(Path::Signature, alg).id();
        let jwt = Workload::new(Path::Jsonwebtoken, alg).id();
        let (fnat, fwasm) = (rate("native", &full, None), rate("wasm", &full, None));
        let (snat, swasm) = (rate("native", &sig, None), rate("wasm", &sig, None));
        let jnat = rate("native", &jwt, None);
        out.push_str(&format!(
            "| {alg} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(fnat),
            cell(fwasm),
            ratio(fwasm, fnat),
            cell(snat),
            cell(swasm),
            ratio(swasm, snat),
            cell(jnat),
            ratio(fnat, jnat),
        ));
    }
    out.push_str(
        "\n| RSA crate (signature only) | algorithm | native | wasm | wasm/native \
         | wasm / native rsa 0.9 u64 (auth-check native) | wasm/jsonwebtoken native |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for alg in ["RS256", "PS256"] {
        let jnat = rate("native", &Workload::new(Path::Jsonwebtoken, alg).id(), None);
        let today = rate("native", &Workload::new(Path::Rsa09, alg).id(), Some(64));
        let rows = [
            ("rsa 0.9, u64 digits (`u64_digit`)", Path::Rsa09, 64),
            ("rsa 0.9, u32 digits (no `u64_digit`)", Path::Rsa09, 32),
            ("rsa 0.10.0-rc.20, 64-bit limbs (default)", Path::Rsa010, 64),
            (
                "rsa 0.10.0-rc.20, 32-bit limbs (`cpubits=\"32\"`)",
                Path::Rsa010,
                32,
            ),
        ];
        for (name, path, bits) in rows {
            let id = Workload::new(path, alg).id();
            let (nat, wasm) = (
                rate("native", &id, Some(bits)),
                rate("wasm", &id, Some(bits)),
            );
            if nat.is_none() && wasm.is_none() {
                continue;
            }
            out.push_str(&format!(
                "| {name} | {alg} | {} | {} | {} | {} | {} |\n",
                cell(nat),
                cell(wasm),
                ratio(wasm, nat),
                ratio(wasm, today),
                ratio(wasm, jnat),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_verifies_its_token() {
        for workload in all_workloads() {
            let mut verify = workload
                .verifier()
                .unwrap_or_else(|e| panic!("{}: {e}", workload.id()));
            assert!(verify(), "{}", workload.id());
        }
    }

    #[cfg(feature = "auth-check")]
    #[test]
    fn a_tampered_signature_is_refused() {
        for fixture in fixtures::all() {
            let key = workloads::key(&fixture).expect("fixture key");
            let alg = auth_check::keys::Algorithm::from_name(&fixture.alg).expect("alg");
            let (input, mut signature) = fixture.parts();
            assert!(
                key.verify(alg, input, &signature).is_ok(),
                "{}",
                fixture.alg
            );
            signature[3] ^= 1;
            assert!(
                key.verify(alg, input, &signature).is_err(),
                "{}",
                fixture.alg
            );
        }
    }

    #[test]
    fn rsa_alternatives_refuse_a_tampered_signature() {
        for alg in ["RS256", "PS256"] {
            let fixture = fixtures::get(alg);
            let (n, e) = (fixture.jwk_bytes("n"), fixture.jwk_bytes("e"));
            let (input, mut signature) = fixture.parts();
            signature[3] ^= 1;
            let pss = alg == "PS256";
            for key in [
                direct::Rsa::v09(pss, &n, &e),
                direct::Rsa::v010(pss, &n, &e),
            ] {
                assert!(!key.expect("key").verify(input, &signature), "{alg}");
            }
        }
    }
}
