#!/usr/bin/env python3
"""Writes bench/auth/fixtures.json: fixed keys and signed tokens for the
auth-check benchmarks (`cargo xtask bench auth-check`).

Keys are random, so the fixtures are generated once and committed: every
run of the benchmarks (native, wasm, workerd) verifies the same tokens with
the same keys. Rerun only to replace them:

    python3 -m venv /tmp/jwtenv && /tmp/jwtenv/bin/pip install cryptography pyjwt
    /tmp/jwtenv/bin/python bench/auth/gen_keys.py
"""

import base64
import json
import pathlib
import secrets

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

# Far-future expiry (2100-01-01) so the fixtures never expire; issued
# 2026-11-22.
CLAIMS = {
    "iss": "https://issuer.bench.invalid",
    "aud": "edge-bench",
    "sub": "user-42",
    "iat": 1795305600,
    "nbf": 1795305600,
    "exp": 4102444800,
    "scope": "read write",
    "roles": ["admin", "editor"],
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_pem(key) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_jwk(key, kid: str, alg: str) -> dict:
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


def main() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p256_key = ec.generate_private_key(ec.SECP256R1())
    p384_key = ec.generate_private_key(ec.SECP384R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    hmac_secret = secrets.token_bytes(32)

    entries = []
    for alg, kid, key in [
        ("RS256", "rsa-2048", rsa_key),
        ("PS256", "rsa-2048", rsa_key),
        ("ES256", "p-256", p256_key),
        ("ES384", "p-384", p384_key),
        ("EdDSA", "ed25519", ed_key),
    ]:
        token = jwt.encode(CLAIMS, key, algorithm=alg, headers={"kid": kid})
        entries.append(
            {"alg": alg, "kid": kid, "jwk": public_jwk(key, kid, alg), "pem": public_pem(key), "token": token}
        )
    token = jwt.encode(CLAIMS, hmac_secret, algorithm="HS256", headers={"kid": "hmac"})
    entries.append(
        {
            "alg": "HS256",
            "kid": "hmac",
            "jwk": {"kty": "oct", "k": b64url(hmac_secret), "kid": "hmac", "alg": "HS256", "use": "sig"},
            "secret": b64url(hmac_secret),
            "token": token,
        }
    )
    # Check every token before writing.
    for e in entries:
        key = e.get("pem") or base64.urlsafe_b64decode(e["secret"] + "==")
        jwt.decode(e["token"], key, algorithms=[e["alg"]], audience=CLAIMS["aud"], issuer=CLAIMS["iss"])
    out = pathlib.Path(__file__).with_name("fixtures.json")
    out.write_text(json.dumps({"claims": CLAIMS, "keys": entries}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
