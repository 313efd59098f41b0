"""Writes auth-check.json, the auth-check conformance suite: fresh keys for
every algorithm, a policy naming their public halves, and tokens minted by
PyJWT (valid ones, and each way a token must be refused).

Run it again to renew the keys (the tokens expire in 2100):
    target/pyenv/bin/python wasm-tests/conformance/auth_check.py
(`cargo xtask test` creates target/pyenv with PyJWT and cryptography.)
"""

import base64
import hashlib
import hmac
import json
import os

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

HERE = os.path.dirname(os.path.abspath(__file__))
ISSUER = "https://idp.conformance.test"
HS_ISSUER = "https://hs.conformance.test"
AUDIENCE = "https://api.conformance.test"
FUTURE = 4102444800  # 2100-01-01
PAST = 1577836800  # 2020-01-01
HS_SECRET = "conformance-hs256-secret-of-at-least-32-bytes!"
# RFC 7518 §3.2: a key at least as long as the hash (48 and 64 bytes). The
# function declares one secret (AUTH_HS256_SECRET), so these two are oct JWKs
# in the policy.
HS384_ISSUER = "https://hs384.conformance.test"
HS384_SECRET = "conformance-hs384-secret-of-exactly-48-bytes!!!!"
HS512_ISSUER = "https://hs512.conformance.test"
HS512_SECRET = "conformance-hs512-secret-of-exactly-64-bytes, as RFC 7518 says!!"
assert len(HS384_SECRET.encode()) == 48 and len(HS512_SECRET.encode()) == 64
HASH_KEY = "conformance-api-key-hash-key"
API_KEY = "ak_prod_static1_" + "c" * 43


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        .decode()
    )


def toml_table(doc: dict) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in doc.items()) + " }"


def jwk_of(key, alg: str, kid: str) -> dict:
    doc = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    doc.update({"kid": kid, "alg": alg, "use": "sig"})
    return doc


def oct_jwk(secret: str, alg: str, kid: str) -> dict:
    return {"kty": "oct", "k": b64(secret.encode()), "kid": kid, "alg": alg, "use": "sig"}


rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
p256_key = ec.generate_private_key(ec.SECP256R1())
p384_key = ec.generate_private_key(ec.SECP384R1())
p521_key = ec.generate_private_key(ec.SECP521R1())
ed_key = ed25519.Ed25519PrivateKey.generate()
rsa_pem = public_pem(rsa_key)

signers = {
    "RS256": (rsa_key, "rs"),
    "PS256": (rsa_key, "rs"),
    "ES256": (p256_key, "es256"),
    "ES384": (p384_key, "es384"),
    "EdDSA": (ed_key, "ed"),
    # The SHA-384/512 variants (RSA PKCS#1 and PSS on the same RSA key,
    # ECDSA on P-521).
    "RS384": (rsa_key, "rs"),
    "RS512": (rsa_key, "rs"),
    "PS384": (rsa_key, "rs"),
    "PS512": (rsa_key, "rs"),
    "ES512": (p521_key, "es512"),
}
# HS384 and HS512: each its own provider (issuer) and secret of the length
# RFC 7518 asks for.
hs_signers = {
    "HS384": (HS384_ISSUER, HS384_SECRET, "hs384"),
    "HS512": (HS512_ISSUER, HS512_SECRET, "hs512"),
}


def claims(**over) -> dict:
    doc = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "iat": 1767225600,  # 2026-01-01
        "exp": FUTURE,
        "scope": "api:read",
        "roles": ["reader"],
        "email": "alice@example.com",
    }
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def mint(alg="RS256", headers=None, **over) -> str:
    key, kid = signers[alg]
    hdr = {"kid": kid}
    hdr.update(headers or {})
    return jwt.encode(claims(**over), key, algorithm=alg, headers=hdr)


def hs(**over) -> str:
    return jwt.encode(
        claims(iss=HS_ISSUER, **over), HS_SECRET, algorithm="HS256", headers={"kid": "hs"}
    )


def hs_alg(alg, **over) -> str:
    issuer, secret, kid = hs_signers[alg]
    return jwt.encode(claims(iss=issuer, **over), secret, algorithm=alg, headers={"kid": kid})


def flip_signature(token: str) -> str:
    """The token with one bit of its signature flipped (a middle byte: an
    RSA signature stays below the modulus, ECDSA's r and s in range)."""
    header, payload, signature = token.split(".")
    sig = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    sig[len(sig) // 2 + 3] ^= 0x01
    return ".".join([header, payload, b64(bytes(sig))])


def forge(header: dict, payload: dict, signature: bytes = b"") -> str:
    part = lambda d: b64(json.dumps(d, separators=(",", ":")).encode())
    return f"{part(header)}.{part(payload)}.{b64(signature)}"


def tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    doc["roles"] = ["admin"]
    return ".".join([header, b64(json.dumps(doc).encode()), signature])


def confusion() -> str:
    """HS256 keyed with the RSA public key's PEM: a verifier that lets the
    token pick the algorithm would accept it."""
    header = {"alg": "HS256", "typ": "JWT", "kid": "rs"}
    payload = claims(roles=["admin"])
    enc = lambda d: b64(json.dumps(d, separators=(",", ":")).encode())
    signing_input = f"{enc(header)}.{enc(payload)}".encode()
    sig = hmac.new(rsa_pem.encode(), signing_input, hashlib.sha256).digest()
    return signing_input.decode() + "." + b64(sig)


POLICY = f"""[auth]
realm = "conformance"
default = "authenticated"

[[auth.rules]]
route = "GET /public/**"
access = "public"

[[auth.rules]]
route = "/closed/**"
access = "deny"

[[auth.rules]]
route = "/admin/**"
roles = ["admin"]

[[auth.rules]]
route = "POST /api/write"
scopes = ["api:write"]

[[auth.rules]]
route = "/keys-only/**"
credentials = ["api_key"]

[[auth.providers]]
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256", "PS256", "ES256", "ES384", "EdDSA", "RS384", "RS512", "PS384", "PS512", "ES512"]
required_claims = ["sub"]

[[auth.providers.keys]]
kid = "rs"
pem = '''
{rsa_pem}'''

[[auth.providers.keys]]
kid = "es256"
jwk = {toml_table(jwk_of(p256_key, "ES256", "es256"))}

[[auth.providers.keys]]
kid = "es384"
jwk = {toml_table(jwk_of(p384_key, "ES384", "es384"))}

[[auth.providers.keys]]
kid = "ed"
jwk = {toml_table(jwk_of(ed_key, "EdDSA", "ed"))}

[[auth.providers.keys]]
kid = "es512"
jwk = {toml_table(jwk_of(p521_key, "ES512", "es512"))}

[[auth.providers]]
issuer = "{HS_ISSUER}"
algorithms = ["HS256"]
keys = [{{ kid = "hs", hmac_secret = "AUTH_HS256_SECRET" }}]

[[auth.providers]]
issuer = "{HS384_ISSUER}"
algorithms = ["HS384"]
keys = [{{ kid = "hs384", jwk = {toml_table(oct_jwk(HS384_SECRET, "HS384", "hs384"))} }}]

[[auth.providers]]
issuer = "{HS512_ISSUER}"
algorithms = ["HS512"]
keys = [{{ kid = "hs512", jwk = {toml_table(oct_jwk(HS512_SECRET, "HS512", "hs512"))} }}]

[auth.forward]
claims = {{ email = "x-auth-email" }}

[auth.api_keys]
environment = "prod"
hash_key_secret = "AUTH_API_KEY_HASH_KEY"
admin_token_secret = "AUTH_ADMIN_TOKEN"

[[auth.api_keys.keys]]
id = "static1"
hash = "{hmac.new(HASH_KEY.encode(), API_KEY.encode(), hashlib.sha256).hexdigest()}"
environment = "prod"
scopes = ["api:read", "api:write"]
"""


def req(path, token=None, method="GET", headers=None):
    h = dict(headers or {})
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    r = {"method": method, "path": path}
    if h:
        r["headers"] = h
    return r


def refused(name, token, code, path="/api/items"):
    return {
        "name": name,
        "request": req(path, token),
        "expect": {
            "status": 401,
            "headers": {"content-type": "application/problem+json"},
            "headers_match": {
                "www-authenticate": r'^Bearer realm="conformance", error="invalid_token", error_description="[^"\\]+"$'
            },
            "json": {"status": 401, "type": f"urn:edge-functions:problem:{code}"},
            "body_excludes": [token[-20:]] if token else [],
        },
    }


def passes(name, token, sub="alice", extra=None):
    expect = {
        "status": 200,
        "headers": {"x-auth-sub": sub, "x-auth-credential": "jwt"},
        "json": {"authenticated": True, "sub": sub},
    }
    expect["headers"].update(extra or {})
    return {"name": name, "request": req("/api/items", token), "expect": expect}


cases = [
    {
        "name": "health passes",
        "request": {"method": "GET", "path": "/health"},
        "expect": {"status": 200, "json": {"status": "pass", "function": "auth-check"}},
    },
    {
        "name": "no credential is 401 with a bare challenge",
        "request": req("/api/items"),
        "expect": {
            "status": 401,
            "headers": {
                "content-type": "application/problem+json",
                "www-authenticate": 'Bearer realm="conformance"',
            },
            "json": {"status": 401},
        },
    },
]
for alg in signers:
    cases.append(
        passes(
            f"{alg} token passes, claims forwarded",
            mint(alg),
            extra={
                "x-auth-scopes": "api:read",
                "x-auth-roles": "reader",
                "x-auth-issuer": ISSUER,
                "x-auth-email": "alice@example.com",
            },
        )
    )
for alg in hs_signers:
    cases.append(
        passes(
            f"{alg} token of its own provider passes, claims forwarded",
            hs_alg(alg, sub="bob"),
            sub="bob",
            extra={"x-auth-issuer": hs_signers[alg][0], "x-auth-scopes": "api:read"},
        )
    )
for alg in ["RS384", "RS512", "PS384", "PS512", "ES512"]:
    cases.append(refused(f"{alg} token with a flipped signature bit", flip_signature(mint(alg)), "bad-signature"))
for alg in hs_signers:
    cases.append(
        refused(f"{alg} token with a flipped signature bit", flip_signature(hs_alg(alg)), "bad-signature")
    )
cases += [
    passes("HS256 token of the second provider passes", hs(sub="bob"), sub="bob"),
    refused("expired token", mint(exp=PAST), "token-expired"),
    refused("token not yet valid", mint(nbf=FUTURE - 10), "token-not-yet-valid"),
    refused("wrong audience", mint(aud="https://other.test"), "wrong-audience"),
    refused("unknown issuer", mint(iss="https://evil.test"), "wrong-issuer"),
    refused("tampered payload", tamper(mint()), "bad-signature"),
    refused("alg none", forge({"alg": "none", "typ": "JWT"}, claims()), "unsupported-alg"),
    refused("RS/HS confusion (HS256 keyed with the RSA public key)", confusion(), "alg-not-allowed"),
    refused(
        "embedded jwk header",
        mint(headers={"jwk": jwk_of(rsa_key, "RS256", "rs")}),
        "forbidden-header",
    ),
    refused("jku header", mint(headers={"jku": "https://evil.test/jwks"}), "forbidden-header"),
    refused("unknown crit", mint(headers={"crit": ["exp-ext"], "exp-ext": 1}), "unknown-crit"),
    refused("unknown kid", mint(headers={"kid": "nope"}), "unknown-key"),
    refused("missing sub", mint(sub=None), "missing-claim"),
    refused("oversized token", mint(pad="x" * 9000), "token-too-large"),
    refused("not a JWT", "not-a-jwt", "malformed-token"),
    {
        "name": "Basic credentials are an invalid request",
        "request": {"method": "GET", "path": "/api/items", "headers": {"authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}},
        "expect": {
            "status": 400,
            "headers_match": {"www-authenticate": '.*error="invalid_request".*'},
            "json": {"status": 400},
        },
    },
    {
        "name": "admin route without the admin role is 403 insufficient_scope",
        "request": req("/admin/users", mint()),
        "expect": {
            "status": 403,
            "headers_match": {"www-authenticate": '.*error="insufficient_scope".*'},
            "json": {"status": 403, "type": "urn:edge-functions:problem:insufficient-scope"},
        },
    },
    {
        "name": "admin route with the admin role passes",
        "request": req("/admin/users", mint(roles=["reader", "admin"])),
        "expect": {"status": 200, "headers": {"x-auth-roles": "reader,admin"}},
    },
    {
        "name": "write scope missing is 403 naming the scope",
        "request": req("/api/write", mint(), method="POST"),
        "expect": {
            "status": 403,
            "headers_match": {"www-authenticate": '.*error="insufficient_scope".*, scope="api:write"'},
        },
    },
    {
        "name": "write scope given as an array passes",
        "request": req("/api/write", mint(scope=["api:read", "api:write"]), method="POST"),
        "expect": {"status": 200, "headers": {"x-auth-scopes": "api:read api:write"}},
    },
    {
        "name": "public route passes without a credential, spoofed identity stripped",
        "request": req("/public/page", headers={"x-auth-sub": "mallory", "x-auth-roles": "admin"}),
        "expect": {
            "status": 200,
            "json": {"authenticated": False},
            "headers_absent": ["x-auth-sub", "x-auth-roles"],
        },
    },
    {
        "name": "spoofed identity headers never survive a valid token",
        "request": req("/api/items", mint(), headers={"x-auth-sub": "mallory", "x-auth-roles": "admin"}),
        "expect": {"status": 200, "headers": {"x-auth-sub": "alice", "x-auth-roles": "reader"}},
    },
    {
        "name": "closed route is 403",
        "request": req("/closed/x", mint(roles=["admin"])),
        "expect": {"status": 403, "json": {"status": 403}},
    },
    {
        "name": "static API key passes with its id and scopes",
        "request": req("/keys-only/report", headers={"x-api-key": API_KEY}),
        "expect": {
            "status": 200,
            "headers": {"x-api-key-id": "static1", "x-auth-credential": "api_key", "x-auth-scopes": "api:read api:write"},
        },
    },
    {
        "name": "wrong API key is 401 and not echoed",
        "request": req("/keys-only/report", headers={"x-api-key": API_KEY[:-4] + "dddd"}),
        "expect": {"status": 401, "json": {"status": 401}, "body_excludes": [API_KEY[-20:-4]]},
    },
    {
        "name": "bearer token on an API-key-only route is an invalid request",
        "request": req("/keys-only/report", mint()),
        "expect": {"status": 400},
    },
    {
        "name": "admin endpoints need the admin token",
        "request": {"method": "GET", "path": "/_auth/keys"},
        "expect": {"status": 401, "json": {"status": 401}},
    },
]

suite = {
    "function": "auth-check",
    "browser_class": "AuthCheckFunction",
    "mount": "/auth-check",
    "vars": {"POLICY": POLICY},
    "secrets": {
        "AUTH_API_KEY_HASH_KEY": HASH_KEY,
        "AUTH_ADMIN_TOKEN": "conformance-admin-token",
        "AUTH_HS256_SECRET": HS_SECRET,
    },
    "cases": cases,
}
with open(os.path.join(HERE, "auth-check.json"), "w") as f:
    json.dump(suite, f, indent=1)
    f.write("\n")
print(f"wrote {len(cases)} cases")
