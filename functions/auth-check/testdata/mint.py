"""Mints JWTs with PyJWT and cryptography for tests/cross_check.rs.

Fresh keys for every algorithm the function verifies, a valid token and one
variant per refusal, plus two attacks (alg=none, HS256 signed with the RSA
public key). Prints one JSON document on stdout.

Usage: python mint.py ISSUER AUDIENCE
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time

import cryptography
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

if len(sys.argv) != 3:
    sys.exit("usage: python mint.py ISSUER AUDIENCE")
ISSUER, AUDIENCE = sys.argv[1], sys.argv[2]
NOW = int(time.time())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides):
    c = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "scope": "read write",
        "roles": ["admin"],
        "iat": NOW,
        "exp": NOW + 900,
    }
    c.update(overrides)
    return c


def tamper(token: str) -> str:
    """The valid token with another payload under the original signature."""
    header, _, signature = token.split(".")
    payload = b64url(json.dumps(claims(sub="admin")).encode())
    return f"{header}.{payload}.{signature}"


def tokens(alg, kid, key):
    def sign(payload):
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})

    valid = sign(claims())
    return {
        "valid": valid,
        "tampered": tamper(valid),
        "expired": sign(claims(iat=NOW - 3600, exp=NOW - 1800)),
        "wrong_audience": sign(claims(aud="someone-else")),
        "wrong_issuer": sign(claims(iss="https://evil.example")),
        "not_yet_valid": sign(claims(nbf=NOW + 3600, exp=NOW + 7200)),
    }


def pem(public_key) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def asymmetric(alg, private_key, to_jwk):
    kid = f"pyjwt-{alg}"
    public_key = private_key.public_key()
    public_jwk = to_jwk(public_key, as_dict=True)
    public_jwk["kid"] = kid
    return {
        "jwk": public_jwk,
        "pem": pem(public_key),
        "tokens": tokens(alg, kid, private_key),
    }


out = {
    "library": f"PyJWT {jwt.__version__} (cryptography {cryptography.__version__})",
    "now": NOW,
    "algorithms": {},
}
algs = out["algorithms"]
# RSA keys of 2048, 3072 and 4096 bits across the six RSA algorithms.
for alg, bits in [
    ("RS256", 2048),
    ("RS384", 3072),
    ("RS512", 4096),
    ("PS256", 2048),
    ("PS384", 3072),
    ("PS512", 2048),
]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    algs[alg] = asymmetric(alg, key, RSAAlgorithm.to_jwk)
for alg, curve in [("ES256", ec.SECP256R1()), ("ES384", ec.SECP384R1()), ("ES512", ec.SECP521R1())]:
    algs[alg] = asymmetric(alg, ec.generate_private_key(curve), ECAlgorithm.to_jwk)
algs["EdDSA"] = asymmetric("EdDSA", ed25519.Ed25519PrivateKey.generate(), OKPAlgorithm.to_jwk)
# HMAC secrets of the hash's size (RFC 7518 §3.2).
for alg, size in [("HS256", 32), ("HS384", 48), ("HS512", 64)]:
    secret = os.urandom(size)
    algs[alg] = {"secret": b64url(secret), "tokens": tokens(alg, f"pyjwt-{alg}", secret)}

# Attacks, built by hand since PyJWT refuses to make them.
rsa_entry = algs["RS256"]
body = b64url(json.dumps(claims(sub="admin")).encode())


def header(h) -> str:
    return b64url(json.dumps(h).encode())


confusion = f"{header({'alg': 'HS256', 'kid': rsa_entry['jwk']['kid'], 'typ': 'JWT'})}.{body}"
mac = hmac.new(rsa_entry["pem"].encode(), confusion.encode(), hashlib.sha256).digest()
out["attacks"] = {
    "alg_none": f"{header({'alg': 'none', 'typ': 'JWT'})}.{body}.",
    "hs256_with_rsa_public_key": f"{confusion}.{b64url(mac)}",
}
print(json.dumps(out))
