//! The ROCA fingerprint (CVE-2017-15361): RSA keys made by Infineon's
//! RSALib (TPMs, smart cards, YubiKey 4 and others, 2012–2017) have primes
//! of the form `p = k·M + (65537^a mod M)`, M a primorial, and can be
//! factored from the public key alone (Nemec, Sýs, Švenda, Klinec, Matyáš:
//! "The Return of Coppersmith's Attack", ACM CCS 2017).
//!
//! The structure survives in the modulus: `n mod M` lies in the subgroup
//! that 65537 generates in (ℤ/Mℤ)* for M = 2·3·5·…·167, which a random
//! modulus does with probability about 2^-154. This is the paper's
//! discrete-log test, done prime by prime: for each small prime `r`,
//! `n mod r` must be a power `65537^x_r` (a discrete log in a group of at
//! most 166 elements), and the logs must fit together — one `x` with
//! `x ≡ x_r (mod ord_r)` for every `r`, which exists exactly when every
//! two of them agree modulo the gcd of their orders (the Chinese remainder
//! theorem for moduli that are not coprime). Residues alone, without the
//! last step, flag moduli that are not fingerprinted.

/// The odd primes up to 167 (2 tells nothing: `n` is odd and 65537 ≡ 1).
const PRIMES: [u32; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

/// The generator RSALib's primes are built from.
const GENERATOR: u32 = 65537;

/// Whether the RSA modulus `n` (big-endian) has the ROCA fingerprint.
pub(crate) fn has_fingerprint(n: &[u8]) -> bool {
    // (log of n mod r to the base 65537 mod r, order of 65537 mod r)
    let mut logs = [(0u32, 0u32); PRIMES.len()];
    for (slot, &r) in logs.iter_mut().zip(PRIMES.iter()) {
        let residue = n
            .iter()
            .fold(0u32, |acc, byte| (acc * 256 + u32::from(*byte)) % r);
        match discrete_log(residue, GENERATOR % r, r) {
            Some(found) => *slot = found,
            None => return false,
        }
    }
    logs.iter().enumerate().all(|(i, &(xi, oi))| {
        logs[i + 1..]
            .iter()
            .all(|&(xj, oj)| xi % gcd(oi, oj) == xj % gcd(oi, oj))
    })
}

/// `(x, order of g)` with `g^x ≡ h (mod r)`, `0 <= x < order`, if `h` is a
/// power of `g` (r is a small prime, `g` a unit).
fn discrete_log(h: u32, g: u32, r: u32) -> Option<(u32, u32)> {
    let mut power = 1 % r;
    let mut log = None;
    for x in 0..r {
        if power == h && log.is_none() {
            log = Some(x);
        }
        power = power * g % r;
        if power == 1 % r {
            // The order of g is x + 1: every power has been seen.
            return log.map(|log| (log, x + 1));
        }
    }
    None
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn discrete_logs_in_small_groups() {
        // 65537 ≡ 10 (mod 11), of order 2: {1, 10}.
        assert_eq!(discrete_log(1, 10, 11), Some((0, 2)));
        assert_eq!(discrete_log(10, 10, 11), Some((1, 2)));
        assert_eq!(discrete_log(3, 10, 11), None);
        assert_eq!(discrete_log(0, 10, 11), None);
        // 65537 ≡ 2 (mod 3), a generator.
        assert_eq!(discrete_log(2, 2, 3), Some((1, 2)));
        // Every prime's table: the log found gives back the residue.
        for r in PRIMES {
            let g = GENERATOR % r;
            for h in 1..r {
                if let Some((x, order)) = discrete_log(h, g, r) {
                    assert!(x < order && (r - 1) % order == 0, "{r} {h}");
                    let back = (0..x).fold(1, |acc, _| acc * g % r);
                    assert_eq!(back, h, "{r}");
                }
            }
        }
    }

    #[test]
    fn gcds() {
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(7, 0), 7);
        assert_eq!(gcd(1, 166), 1);
    }

    #[test]
    fn powers_of_the_generator_are_fingerprinted_and_neighbours_are_not() {
        // 65537^k itself (any size) has the structure; 65537^k + 2 almost
        // never does.
        let mut n = vec![1u8];
        for k in 1..200 {
            n = mul_small(&n, GENERATOR);
            assert!(has_fingerprint(&n), "65537^{k}");
            let mut off = n.clone();
            add_small(&mut off, 2);
            assert!(!has_fingerprint(&off), "65537^{k} + 2");
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        let s = if s.len() % 2 == 1 {
            format!("0{s}")
        } else {
            s.to_owned()
        };
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn b64(s: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap()
    }

    /// The public vectors of the paper's authors (testdata/roca-public.json
    /// names them): a fingerprinted 2048-bit modulus, and moduli whose
    /// residues are all powers of 65537 but whose logs disagree, which a
    /// residue-only test would flag.
    #[test]
    fn public_vectors() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/roca-public.json")).unwrap();
        let n = hex(doc["fingerprinted"]["mod03_n_hex"].as_str().unwrap());
        assert_eq!(n.len(), 256);
        assert!(has_fingerprint(&n));
        let fakes = doc["fake_moduli_hex"].as_array().unwrap();
        assert_eq!(fakes.len(), 10);
        for fake in fakes {
            let n = hex(fake.as_str().unwrap());
            assert!(!has_fingerprint(&n), "{fake}");
            // Each residue alone passes: only the joint test tells.
            for r in PRIMES {
                let residue = n
                    .iter()
                    .fold(0u32, |acc, b| (acc * 256 + u32::from(*b)) % r);
                assert!(discrete_log(residue, GENERATOR % r, r).is_some(), "{r}");
            }
        }
    }

    /// Keys of RSALib's form and ordinary OpenSSL keys from
    /// testdata/roca.py, whose own implementation of the test (modulo the
    /// primorial, Pohlig-Hellman) gave the same verdicts.
    #[test]
    fn generated_vectors() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/roca-generated.json")).unwrap();
        let fingerprinted = doc["fingerprinted"].as_array().unwrap();
        assert_eq!(fingerprinted.len(), 3);
        for entry in fingerprinted {
            let n = b64(entry["jwk"]["n"].as_str().unwrap());
            assert_eq!(n.len() * 8, entry["bits"].as_u64().unwrap() as usize);
            assert!(has_fingerprint(&n), "{}", entry["bits"]);
        }
        let ordinary = doc["ordinary_n"].as_array().unwrap();
        assert!(ordinary.len() >= 20);
        for n in ordinary {
            assert!(!has_fingerprint(&b64(n.as_str().unwrap())), "{n}");
        }
    }

    /// Random odd numbers of RSA sizes are not flagged (the chance is
    /// about 2^-154 each).
    #[test]
    fn random_moduli_are_not_flagged() {
        let mut state = 0x5eed_u64;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u8
        };
        for i in 0..2000 {
            let len = [256, 384, 512][i % 3];
            let mut n: Vec<u8> = (0..len).map(|_| next()).collect();
            n[0] |= 0x80;
            n[len - 1] |= 1;
            assert!(!has_fingerprint(&n), "{i}");
        }
    }

    fn mul_small(n: &[u8], m: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(n.len() + 4);
        let mut carry = 0u64;
        for byte in n.iter().rev() {
            let v = u64::from(*byte) * u64::from(m) + carry;
            out.push((v & 0xff) as u8);
            carry = v >> 8;
        }
        while carry > 0 {
            out.push((carry & 0xff) as u8);
            carry >>= 8;
        }
        out.reverse();
        out
    }

    fn add_small(n: &mut [u8], a: u8) {
        let mut carry = u16::from(a);
        for byte in n.iter_mut().rev() {
            let v = u16::from(*byte) + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
            if carry == 0 {
                break;
            }
        }
    }
}
