"""Writes gateway.json, the gateway's conformance suite: one pipeline of
auth check → rate limit → anonymize in front of mounted functions, with
answers that need no origin (every runtime answers alike without network):
each stage's refusal, the rate limiter keyed by the verified subject (not a
header a client sends), the RateLimit fields on mounted answers, a mounted
layer and the gateway's own metrics. Tokens are HS256, signed here.

    python3 wasm-tests/conformance/gateway.py
"""

import base64
import hashlib
import hmac
import json
import os

from cases import case, problem

HERE = os.path.dirname(os.path.abspath(__file__))
ISSUER = "https://idp.conformance"
HS_SECRET = "conformance-gateway-hs256-secret-0123456789"
# Far in the future, so the suite's tokens stay valid; iat in the past.
IAT, EXP = 1_700_000_000, 4_102_444_800


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub, roles=()):
    header = {"alg": "HS256", "typ": "JWT", "kid": "hs"}
    claims = {"iss": ISSUER, "sub": sub, "aud": "api", "iat": IAT, "exp": EXP,
              "scope": "read", "roles": list(roles)}
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(HS_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


POLICY = f"""
[gateway]
origin = "https://origin.invalid"

[[gateway.routes]]
route = "/_metrics/**"
mount = "metrics"
strip_prefix = false

[[gateway.routes]]
route = "/counter/**"
auth = true
rate_limit = true
mount = "counter"

[[gateway.routes]]
route = "/anonymize/**"
mount = "anonymize"

[[gateway.routes]]
route = "/admin/**"
auth = true

[[gateway.routes]]
route = "/api/**"
auth = true
rate_limit = true
anonymize = "request"

[auth]
default = "authenticated"
[[auth.rules]]
route = "/admin/**"
roles = ["admin"]
[[auth.providers]]
issuer = "{ISSUER}"
audiences = ["api"]
algorithms = ["HS256"]
keys = [{{ kid = "hs", hmac_secret = "AUTH_HS256_SECRET" }}]

[rate_limit]
hash_key_secret = "RATE_LIMIT_HASH_KEY"
[[rate_limit.scopes]]
name = "PER_USER"
algorithm = "fixed_window"
limit = 2
period = "1h"
key = ["sub"]
paths = ["/counter/*"]

[anonymize]
unknown_content = "refuse"
[anonymize.entities]
email = "hash"
ipv4 = "hash"
"""


def main():
    bearer = lambda sub, roles=(): {"authorization": "Bearer " + token(sub, roles)}
    alice, bob = bearer("alice"), bearer("bob")
    cases = [
        case("health passes, the origin's breaker closed", "GET", "/health", 200,
             {"status": "pass", "function": "gateway",
              "checks": {"store": {"status": "pass"},
                         "origin https://origin.invalid": {"status": "pass", "state": "closed"}}}),
        case("a path no route matches", "GET", "/nowhere", 404, problem("not-found")),
        case("no token on an authenticated route", "GET", "/api/items", 401, problem("unauthorized"),
             headers_present=["www-authenticate"]),
        case("a token signed with another key", "GET", "/api/items", 401, problem("bad-signature"),
             headers={"authorization": "Bearer " + token("alice")[:-4] + "AAAA"}),
        case("a token without the route's role", "GET", "/admin/users", 403,
             problem("insufficient-scope"), headers=bob),
        case("a body the anonymizer cannot read, refused before the origin", "POST", "/api/upload",
             415, problem("unsupported-media-type"),
             headers={**alice, "content-type": "image/png"}, body="PNG..."),
        case("alice's first request to a mounted function", "POST", "/counter/counters/a?by=2", 200,
             {"key": "a", "value": 2}, headers=alice,
             headers_match={"ratelimit": '^"PER_USER";r=1;t=[0-9]+$'}),
        case("alice's second, claiming to be bob in a header", "GET", "/counter/counters/a", 200,
             {"key": "a", "value": 2}, headers={**alice, "x-auth-sub": "bob"},
             headers_match={"ratelimit": '^"PER_USER";r=0;t=[0-9]+$'}),
        case("alice's third is limited", "GET", "/counter/counters/a", 429, problem("rate-limited"),
             headers={**alice, "x-auth-sub": "bob"}, headers_present=["retry-after", "ratelimit-policy"]),
        case("bob still has his own allowance", "GET", "/counter/counters/a", 200,
             {"key": "a", "value": 2}, headers=bob,
             headers_match={"ratelimit": '^"PER_USER";r=1;t=[0-9]+$'}),
        case("a mounted layer answers for itself", "POST", "/anonymize/", 200,
             headers={"content-type": "application/json"},
             body=json.dumps({"user": {"email": "ann@example.com"}, "ip": "203.0.113.9"}),
             body_excludes=["ann@example.com", "203.0.113.9"]),
        case("the gateway's own metrics", "GET", "/_metrics/snapshot", 200, {"alerts_firing": 0}),
    ]
    suite = {
        "function": "gateway",
        "browser_class": "GatewayFunction",
        "mount": "/gateway",
        "vars": {"POLICY": POLICY},
        "secrets": {
            "AUTH_HS256_SECRET": HS_SECRET,
            "RATE_LIMIT_HASH_KEY": "conformance-hash-key",
            "GDPR_ANONYMIZATION_SALT": "conformance-anonymization-salt",
            "COUNTER_ADMIN_TOKEN": "conformance-admin-token",
        },
        "cases": cases,
    }
    with open(os.path.join(HERE, "gateway.json"), "w") as f:
        json.dump(suite, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
