"""Writes rate-limit.json, the rate limiter's conformance suite: the same
requests in the same order on every runtime (native, wasmtime, workerd,
chromium), each answered alike. Scopes are keyed by an `x-client` header
so that the runtimes' different client addresses do not matter, except the
PAGE scope, which is keyed by address with a `global` fallback: limited on
every runtime, whether the platform gives an address (Workers, Spin), the
page is the client (browser: 127.0.0.1) or there is none (native: the
fallback key). Exact concurrency is checked per runtime by
wasm-tests/tests/all/rate_limit.rs.

    python3 wasm-tests/conformance/rate_limit.py
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ADMIN = "conformance-admin-token"
PROBLEM = "application/problem+json"
URN = "urn:edge-functions:problem:"

SCOPES = [
    ("LOGIN", "sliding_window", 3, "15m", '["header:x-client"]', '["POST"]', '["/auth/login"]'),
    ("API", "token_bucket", 2, "1h", '["header:x-client"]', None, '["/api/*"]'),
    ("CV", "fixed_window", 2, "1h", '["header:x-client"]', None, '["/cv"]'),
    ("BURST", "gcra", 2, "1h", '["header:x-client"]', None, '["/gcra"]'),
    ("PAGE", "fixed_window", 1, "1h", '["ip"]', None, '["/page"]'),
]


def policy():
    text = (
        "[rate_limit]\n"
        'hash_key_secret = "RATE_LIMIT_HASH_KEY"\n'
        'admin_token_secret = "RATE_LIMIT_ADMIN_TOKEN"\n'
        'deny = ["sub:mallory"]\n'
        'cost_header = "x-cost"\n'
    )
    for name, algorithm, limit, period, key, methods, paths in SCOPES:
        text += (
            f'\n[[rate_limit.scopes]]\nname = "{name}"\nalgorithm = "{algorithm}"\n'
            f'limit = {limit}\nperiod = "{period}"\nkey = {key}\n'
        )
        if name == "PAGE":
            text += 'fallback_key = ["global"]\n'
        if methods:
            text += f"methods = {methods}\n"
        text += f"paths = {paths}\n"
        if name == "CV":
            # Issue 19: a per-key override, by a header the gateway sets.
            text += '[[rate_limit.scopes.overrides]]\nmatch = ["header:x-tier=gold"]\nlimit = 3\n'
    return text


def case(name, method, path, status, sent=None, **expect):
    """One case: the request (with the headers `sent`), then what every
    runtime must answer; `expect` members keep their order in the file."""
    request = {"method": method, "path": path}
    if sent:
        request["headers"] = sent
    return {"name": name, "request": request, "expect": {"status": status, **expect}}


def login(n, remaining):
    return case(
        f"login {n} of 3 passes with the IETF fields", "POST", "/auth/login", 200,
        {"x-client": "alice"},
        headers={"content-type": "application/json", "ratelimit-policy": '"LOGIN";q=3;w=900'},
        headers_match={"ratelimit": f'"LOGIN";r={remaining};t=900'},
        json={"allowed": True, "scopes": [
            {"scope": "LOGIN", "limit": 3, "window": 900, "remaining": remaining, "reset": 900}]},
    )


def take(label, method, path, scope, n, remaining):
    return case(
        f"{label} take {n}", method, path, 200, {"x-client": "alice"},
        headers={"ratelimit-policy": f'"{scope}";q=2;w=3600'},
        headers_match={"ratelimit": f'"{scope}";r={remaining};t=\\d+'},
    )


def main():
    alice = {"x-client": "alice"}
    gold = {"x-client": "erin", "x-tier": "gold"}
    admin = {"authorization": "Bearer " + ADMIN}
    state = "/_ratelimit/state?scope=LOGIN&header%3Ax-client=alice"
    cases = [
        case("health passes", "GET", "/health", 200,
             json={"status": "pass", "function": "rate-limit"}),
        login(1, 2),
        login(2, 1),
        login(3, 0),
        case("a fourth login is refused: 429 problem, Retry-After, fields", "POST", "/auth/login", 429, alice,
             headers={"content-type": PROBLEM, "ratelimit-policy": '"LOGIN";q=3;w=900'},
             headers_match={"retry-after": "(89[0-9]|900)", "ratelimit": '"LOGIN";r=0;t=(89[0-9]|900)'},
             json={"type": URN + "rate-limited", "status": 429, "title": "Too many requests",
                   "scope": "LOGIN", "instance": "/auth/login"}),
        case("another client has its own allowance", "POST", "/auth/login", 200, {"x-client": "bob"},
             headers_match={"ratelimit": '"LOGIN";r=2;t=900'}),
        case("a GET to the login path is not limited", "GET", "/auth/login", 200, alice,
             headers_absent=["ratelimit", "ratelimit-policy"],
             json={"allowed": True, "scopes": []}),
        take("token bucket", "GET", "/api/items", "API", 1, 1),
        take("token bucket", "GET", "/api/items", "API", 2, 0),
        case("token bucket empty: 429 after about one refill interval", "GET", "/api/items", 429, alice,
             headers_match={"retry-after": "(179[0-9]|1800)", "ratelimit": '"API";r=0;t=(179[0-9]|1800)'},
             json={"type": URN + "rate-limited", "scope": "API"}),
        take("fixed window", "POST", "/cv", "CV", 1, 1),
        take("fixed window", "POST", "/cv", "CV", 2, 0),
        case("fixed window full: retry at the window's end", "POST", "/cv", 429, alice,
             headers_match={"retry-after": "\\d+", "ratelimit": '"CV";r=0;t=\\d+'},
             json={"scope": "CV"}),
        take("gcra", "GET", "/gcra", "BURST", 1, 1),
        take("gcra", "GET", "/gcra", "BURST", 2, 0),
        case("gcra full", "GET", "/gcra", 429, alice,
             headers_match={"retry-after": "(179[0-9]|1800)"},
             json={"scope": "BURST"}),
        case("a denied subject gets 403", "GET", "/api/items", 403,
             {"x-auth-sub": "mallory", "x-client": "carol"},
             headers={"content-type": PROBLEM},
             json={"type": URN + "denied", "status": 403}),
        case("an over-long identifier header is refused, naming it", "GET", "/api/items", 400,
             {"x-client": "x" * 300},
             headers={"content-type": PROBLEM},
             json={"type": URN + "invalid-header", "header": "x-client"}),
        case("admin state needs the token", "GET", "/_ratelimit/state?scope=LOGIN&header:x-client=alice", 401,
             headers_match={"www-authenticate": 'Bearer realm="rate-limit", error="invalid_request"'},
             json={"type": URN + "unauthorized"}),
        case("a wrong admin token is refused and not echoed", "GET",
             "/_ratelimit/state?scope=LOGIN&header:x-client=alice", 401,
             {"authorization": "Bearer not-the-token"},
             body_excludes=["not-the-token", ADMIN]),
        case("admin reads a key's state", "GET", state, 200, admin,
             json={"scope": "LOGIN", "algorithm": "sliding_window", "limit": 3,
                   "period_seconds": 900, "remaining": 0},
             body_excludes=["alice"]),
        case("admin names an unknown scope: 400", "GET", "/_ratelimit/state?scope=NOPE&ip=1.2.3.4", 400, admin,
             json={"type": URN + "invalid-parameter", "field": "scope"}),
        case("admin resets the key", "DELETE", state, 204, admin),
        case("after the reset the client passes again", "POST", "/auth/login", 200, alice,
             headers_match={"ratelimit": '"LOGIN";r=2;t=900'}),
        # Issue 16: a cost no state can ever grant is not a 429.
        case("a cost above the scope's limit is 422 without Retry-After", "POST", "/cv", 422,
             {"x-client": "dave", "x-cost": "3"},
             headers={"content-type": PROBLEM},
             headers_absent=["retry-after"],
             json={"type": URN + "cost-exceeds-limit", "status": 422, "scope": "CV",
                   "cost": 3, "limit": 2}),
        case("the refused cost charged nothing", "POST", "/cv", 200,
             {"x-client": "dave", "x-cost": "2"},
             headers_match={"ratelimit": '"CV";r=0;t=\\d+'}),
        # Issue 16: a scope keyed by address limits on every runtime.
        case("a scope keyed by address admits its limit", "GET", "/page", 200,
             headers={"ratelimit-policy": '"PAGE";q=1;w=3600'},
             headers_match={"ratelimit": '"PAGE";r=0;t=\\d+'}),
        case("and refuses the next, whatever address the runtime gives", "GET", "/page", 429,
             headers_match={"retry-after": "\\d+"},
             json={"type": URN + "rate-limited", "scope": "PAGE"}),
        # Issue 19: a per-key override holds its client to its own limit.
        *[case(f"an override admits its higher limit ({n} of 3)", "POST", "/cv", 200, gold,
               headers={"ratelimit-policy": '"CV";q=3;w=3600'},
               headers_match={"ratelimit": f'"CV";r={3 - n};t=\\d+'})
          for n in (1, 2, 3)],
        case("and refuses the next, naming its limit", "POST", "/cv", 429, gold,
             headers={"ratelimit-policy": '"CV";q=3;w=3600'},
             headers_match={"retry-after": "\\d+", "ratelimit": '"CV";r=0;t=\\d+'},
             json={"type": URN + "rate-limited", "scope": "CV"}),
        case("the same key without the override: the default limit, its 3 taken still count", "POST",
             "/cv", 429, {"x-client": "erin"},
             headers={"ratelimit-policy": '"CV";q=2;w=3600'},
             json={"type": URN + "rate-limited", "scope": "CV"}),
    ]
    suite = {
        "function": "rate-limit",
        "browser_class": "RateLimitFunction",
        "mount": "/rate-limit",
        "vars": {"POLICY": policy()},
        "secrets": {"RATE_LIMIT_HASH_KEY": "conformance-hash-key", "RATE_LIMIT_ADMIN_TOKEN": ADMIN},
        "cases": cases,
    }
    with open(os.path.join(HERE, "rate-limit.json"), "w") as f:
        json.dump(suite, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
