"""Generates testdata/roca-generated.json for the ROCA (CVE-2017-15361) tests.

- fingerprinted: RSA keys built the way Infineon's RSALib built them (Nemec
  et al., "The Return of Coppersmith's Attack", CCS 2017, section 2): each
  prime is p = k*M + (65537^a mod M), M the primorial the paper gives for
  the key size (up to 701 for 1984-3936-bit keys, up to 1427 above), k and
  a random; 2048, 3072 and 4096 bits. The 2048-bit key also signs an RS256
  token (PyJWT), so a test can show that it would pass the whole path.
- ordinary: keys from `cryptography` (OpenSSL), 2048 to 4096 bits.

Every modulus is checked here with an independent implementation of the
fingerprint (the paper's: n^ord == 1 mod M' and Pohlig-Hellman over the
prime powers of ord, M' the primorial of 167), and so are the public
vectors in roca-public.json; the expected verdicts are written out and
the Rust test must agree with them.

Usage (from the repository root): target/pyenv/bin/python \
    functions/auth-check/testdata/roca.py > functions/auth-check/testdata/roca-generated.json
"""

import json
import math
import os
import random
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATOR = 65537
# The token's claims, for tests/function.rs (issuer, audience, times).
ISSUER, AUDIENCE, T0 = "https://idp.test", "api", 1_800_000_000


def primes_up_to(limit):
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return [i for i, v in enumerate(sieve) if v]


def primorial(limit):
    return math.prod(primes_up_to(limit))


def is_probable_prime(n, rng, rounds=40):
    if n < 2:
        return False
    for p in primes_up_to(1000):
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


# --- The oracle: the fingerprint by arithmetic modulo the primorial. -------


def factor(n):
    out, p = {}, 2
    while p * p <= n:
        while n % p == 0:
            out[p] = out.get(p, 0) + 1
            n //= p
        p += 1
    if n > 1:
        out[n] = out.get(n, 0) + 1
    return out


def multiplicative_order(g, modulus):
    """The order of g in (Z/modulus)*, from the orders modulo each prime."""
    order = 1
    for p in primes_up_to(167):
        if modulus % p:
            continue
        o = 1
        while pow(g, o, p) != 1:
            o += 1
        order = order * o // math.gcd(order, o)
    return order


M167 = primorial(167)
ORDER = multiplicative_order(GENERATOR, M167)


def fingerprinted(n):
    """Whether n mod M167 lies in the subgroup that 65537 generates."""
    h = n % M167
    if math.gcd(h, M167) != 1 or pow(h, ORDER, M167) != 1:
        return False
    for q, k in factor(ORDER).items():
        qk = q**k
        g_part = pow(GENERATOR, ORDER // qk, M167)
        h_part = pow(h, ORDER // qk, M167)
        if all(pow(g_part, i, M167) != h_part for i in range(qk)):
            return False
    return True


# --- Keys. -----------------------------------------------------------------


def roca_prime(bits, modulus, rng):
    """A prime of exactly `bits` bits (top two set) of RSALib's form."""
    low = (3 << (bits - 2)) // modulus + 1
    high = (1 << bits) // modulus - 1
    while True:
        p = rng.randrange(low, high) * modulus + pow(GENERATOR, rng.randrange(1, 1 << 64), modulus)
        if p.bit_length() == bits and p >> (bits - 2) == 3 and is_probable_prime(p, rng):
            return p


def roca_key(bits, rng):
    modulus = primorial(701 if bits < 3968 else 1427)
    while True:
        p, q = roca_prime(bits // 2, modulus, rng), roca_prime(bits // 2, modulus, rng)
        n = p * q
        phi = (p - 1) * (q - 1)
        if p != q and n.bit_length() == bits and math.gcd(GENERATOR, phi) == 1:
            return p, q, n


def b64url_uint(value):
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return jwt.utils.base64url_encode(raw).decode()


def private_key(p, q):
    n, e = p * q, GENERATOR
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p,
        q,
        d,
        rsa.rsa_crt_dmp1(d, p),
        rsa.rsa_crt_dmq1(d, q),
        rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(e, n),
    )
    return numbers.private_key()


def main():
    rng = random.Random(15361)
    fingerprinted_keys = []
    for bits in (2048, 3072, 4096):
        p, q, n = roca_key(bits, rng)
        assert fingerprinted(n), bits
        entry = {
            "bits": bits,
            "jwk": {"kty": "RSA", "kid": f"roca-{bits}", "use": "sig", "n": b64url_uint(n), "e": "AQAB"},
        }
        if bits == 2048:
            claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "iat": T0, "exp": T0 + 900}
            entry["rs256_token"] = jwt.encode(
                claims, private_key(p, q), algorithm="RS256", headers={"kid": entry["jwk"]["kid"]}
            )
        fingerprinted_keys.append(entry)

    ordinary = []
    for bits in [2048] * 16 + [3072] * 4 + [4096] * 2:
        n = rsa.generate_private_key(public_exponent=GENERATOR, key_size=bits).public_key().public_numbers().n
        assert not fingerprinted(n), bits
        ordinary.append(b64url_uint(n))

    # The oracle agrees with the public vectors' published verdicts.
    with open(os.path.join(HERE, "roca-public.json")) as f:
        public = json.load(f)
    assert fingerprinted(int(public["fingerprinted"]["mod03_n_hex"], 16))
    pem = public["fingerprinted"]["pubkey03_pem"].encode()
    assert fingerprinted(serialization.load_pem_public_key(pem).public_numbers().n)
    for fake in public["fake_moduli_hex"]:
        assert not fingerprinted(int(fake, 16)), fake[:16]

    json.dump(
        {
            "generator": "functions/auth-check/testdata/roca.py",
            "fingerprinted": fingerprinted_keys,
            "ordinary_n": ordinary,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
