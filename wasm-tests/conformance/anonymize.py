"""Writes anonymize.json, the anonymizer's conformance suite. Every expected
pseudonym and reversible token is computed here, independently of the Rust
code: HMAC-SHA-256 with the standard library, AES-SIV (RFC 5297) and HKDF
with `cryptography`. So the cases show that the keyed forms are the same on
every runtime and equal to a second implementation.

    target/pyenv/bin/python wasm-tests/conformance/anonymize.py
(`cargo xtask test` creates target/pyenv with cryptography.)
"""

import base64
import hashlib
import hmac
import json
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HERE = os.path.dirname(os.path.abspath(__file__))
SALT = "conformance-anonymization-salt"
KEY = "conformance-anonymization-key-0123456789"
ADMIN = "conformance-admin-token"

POLICY = """
[anonymize]
unknown_content = "refuse"

[anonymize.entities]
email = "hash"
ipv4 = "truncate"
ipv6 = "truncate"
phone = "mask(2)"
card = "mask(4)"
iban = "encrypt"
jwt = "redact"
api_key = "tag"

[anonymize.fields]
"$.user.email" = "hash"
"$.user.password" = "restricted"
"$.user.birthdate" = "generalize_date"
"$.user.age" = "range(10)"
"$.user.id" = "keep"
"$.events[*].ip" = "truncate(16,32)"
"$.events[*].at" = "generalize_date"
"$..location.lat" = "grid(0.01)"
"$..location.lon" = "grid(0.01)"
"$.payment.card" = "mask(4)"
"$.payment.iban" = "encrypt"

[[anonymize.patterns]]
name = "employee_id"
regex = "\\\\bEMP-[0-9]{6}\\\\b"

[[anonymize.dictionaries]]
name = "project"
words = ["Blue Falcon"]
case_insensitive = true
operator = "redact"

[anonymize.k_anonymity]
quasi_identifiers = ["zip", "age:range(10)"]
threshold = 2
"""


def pseudonym(normalized: str) -> str:
    return hmac.new(SALT.encode(), normalized.encode(), hashlib.sha256).hexdigest()[:32]


def sealed_b64(value: str) -> str:
    key = HKDF(
        algorithm=hashes.SHA256(), length=64, salt=None, info=b"edge-anonymize aes-256-siv v1"
    ).derive(KEY.encode())
    sealed = AESSIV(key).encrypt(value.encode(), None)
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()


def token(value: str) -> str:
    """A reversible token: "ENC2_", the base64url, and "~", which ends it
    whatever follows."""
    return "ENC2_" + sealed_b64(value) + "~"


def legacy_token(value: str) -> str:
    """A token of the first format (no end mark), still reversed."""
    return "ENC1_" + sealed_b64(value)


def post(path: str, body: str, content_type: str, headers=None) -> dict:
    h = {"content-type": content_type}
    h.update(headers or {})
    return {"method": "POST", "path": path, "headers": h, "body": body}


TEXT = (
    "Hi, I am Ann (Ann.Lee@Example.COM), call +49 30 12345678 or visit from "
    "203.0.113.77 / 2001:db8:85a3:8d3:1319:8a2e:370:7348. Card 5555 5555 5555 4444, "
    "IBAN GB82 WEST 1234 5698 7654 32, key ghp_" + "a1B2" * 9 + ", badge EMP-004211, "
    "project blue falcon. Order 2024-03-15 at 12:30:45, total 1234.50 EUR."
)
TEXT_OUT = (
    "Hi, I am Ann (" + pseudonym("ann.lee@example.com") + "), call +** ** ******78 or visit from "
    "203.0.113.0 / 2001:db8:85a3::. Card **** **** **** 4444, "
    "IBAN " + token("GB82 WEST 1234 5698 7654 32") + ", key <API_KEY>, badge <EMPLOYEE_ID>, "
    "project . Order 2024-03-15 at 12:30:45, total 1234.50 EUR."
)

RECORD = {
    "user": {
        "id": "u-17",
        "email": "Ann.Lee@Example.COM",
        "password": "hunter2",
        "birthdate": "1990-04-17",
        "age": 37,
        "bio": "reach me at ann@example.org",
    },
    "events": [
        {"ip": "198.51.100.23", "at": "2026-11-22T08:15:00Z", "location": {"lat": 52.51638, "lon": -13.37777}},
        {"ip": "2001:db8:85a3:8d3::7348", "at": "2026-10-01"},
    ],
    "payment": {"card": "4111111111111111", "iban": "DE89370400440532013000"},
    "count": 3,
    "ok": True,
}
RECORD_OUT = {
    "user": {
        "id": "u-17",
        "email": pseudonym("ann.lee@example.com"),
        "password": None,
        "birthdate": "1990-04",
        # JSON numbers stay numbers where the operator's output is one
        # (issue 16): the range's lower bound, the snapped coordinates.
        "age": 30,
        "bio": "reach me at " + pseudonym("ann@example.org"),
    },
    "events": [
        {"ip": "198.51.0.0", "at": "2026-11", "location": {"lat": 52.51, "lon": -13.38}},
        {"ip": "2001:db8::", "at": "2026-10"},
    ],
    "payment": {"card": "************1111", "iban": token("DE89370400440532013000")},
    "count": 3,
    "ok": True,
}

NDJSON = "\n".join(
    json.dumps(r, separators=(",", ":"))
    for r in [
        {"msg": "login from 192.0.2.44", "user": {"email": "bob@example.net"}},
        {"msg": "no personal data here", "n": 1},
        {"msg": "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX2hlcmVfaXNfZmFrZQ here"},
    ]
) + "\n"
NDJSON_OUT = "\n".join(
    json.dumps(r, separators=(",", ":"))
    for r in [
        {"msg": "login from 192.0.2.0", "user": {"email": pseudonym("bob@example.net")}},
        {"msg": "no personal data here", "n": 1},
        {"msg": "jwt  here"},
    ]
) + "\n"

BAD_JSON = '{"user": {"email": "leak@example.com",}}'
ENCRYPTED = json.dumps({"note": "IBAN " + token("GB82 WEST 1234 5698 7654 32"), "iban": token("DE89370400440532013000")})

cases = [
    {
        "name": "health passes",
        "request": {"method": "GET", "path": "/health"},
        "expect": {"status": 200, "json": {"status": "pass", "function": "anonymize"}},
    },
    {
        "name": "free text: every entity gets its operator, distractors stay",
        "request": post("/", TEXT, "text/plain; charset=utf-8"),
        "expect": {
            "status": 200,
            "body": TEXT_OUT,
            "headers": {"content-type": "text/plain; charset=utf-8"},
            "body_excludes": ["Ann.Lee", "203.0.113.77", "5555 5555 5555 4444", "GB82", "EMP-004211"],
        },
    },
    {
        "name": "JSON: field rules on whole values, the detectors on the rest",
        "request": post("/", json.dumps(RECORD), "application/json"),
        "expect": {"status": 200, "json": RECORD_OUT, "body_excludes": ["hunter2", "4111111111111111"]},
    },
    {
        "name": "NDJSON: each line anonymized",
        "request": post("/", NDJSON, "application/x-ndjson"),
        "expect": {"status": 200, "body": NDJSON_OUT},
    },
    {
        "name": "de-anonymize restores the reversible tokens for the admin",
        "request": post("/_anonymize/deanonymize", ENCRYPTED, "application/json", {"authorization": "Bearer " + ADMIN}),
        "expect": {
            "status": 200,
            "json": {"note": "IBAN GB82 WEST 1234 5698 7654 32", "iban": "DE89370400440532013000"},
            "headers": {"x-deanonymized": "2", "x-deanonymize-failed": "0"},
        },
    },
    {
        "name": "de-anonymize finds tokens glued to letters, digits, - and _ and to each other, and first-format ones",
        "request": post(
            "/_anonymize/deanonymize",
            "ip-" + token("13.51.100.23") + token("ann@example.com") + "_x " + legacy_token("bob@example.org") + ".",
            "text/plain",
            {"authorization": "Bearer " + ADMIN},
        ),
        "expect": {
            "status": 200,
            "body": "ip-13.51.100.23ann@example.com_x bob@example.org.",
            "headers": {"x-deanonymized": "3", "x-deanonymize-failed": "0"},
        },
    },
    {
        "name": "de-anonymize without the admin token is 401",
        "request": post("/_anonymize/deanonymize", ENCRYPTED, "application/json"),
        "expect": {"status": 401, "json": {"status": 401}, "body_excludes": ["DE89"]},
    },
    {
        "name": "a tampered token is left as it is and counted",
        "request": post(
            "/_anonymize/deanonymize",
            token("x")[:-3] + "AA~",
            "text/plain",
            {"authorization": "Bearer " + ADMIN},
        ),
        "expect": {"status": 200, "headers": {"x-deanonymized": "0", "x-deanonymize-failed": "1"}},
    },
    {
        "name": "invalid JSON is a 400 naming the offset and path, not the content",
        "request": post("/", BAD_JSON, "application/json"),
        "expect": {
            "status": 400,
            "json": {
                "type": "urn:edge-functions:problem:invalid-json",
                "status": 400,
                "offset": BAD_JSON.index(",}"),
                "path": "$.user",
            },
            "body_excludes": ["leak@example.com"],
        },
    },
    {
        "name": "an invalid NDJSON line is a 400 naming the line",
        "request": post("/", '{"a":1}\n{"b":\n', "application/x-ndjson"),
        "expect": {"status": 400, "json": {"line": 2}},
    },
    {
        "name": "an unknown content type is refused",
        "request": post("/", "a@example.com", "application/pdf"),
        "expect": {"status": 415, "json": {"type": "urn:edge-functions:problem:unsupported-media-type"}},
    },
    {
        "name": "a compressed body is refused (it cannot be read)",
        "request": post("/", "{}", "application/json", {"content-encoding": "gzip"}),
        "expect": {"status": 415},
    },
    {
        "name": "a GET without an origin has nothing to anonymize",
        "request": {"method": "GET", "path": "/"},
        "expect": {"status": 405, "headers_present": ["allow"]},
    },
    {
        "name": "k-anonymity: the smallest class after generalizing, no values",
        "request": post(
            "/_anonymize/k-anonymity",
            "\n".join(
                json.dumps(r)
                for r in [
                    {"zip": "10115", "age": 31},
                    {"zip": "10115", "age": 38},
                    {"zip": "10115", "age": 45},
                    {"zip": "80331", "age": 45},
                    {"zip": "80331", "age": 41},
                ]
            ),
            "application/x-ndjson",
        ),
        "expect": {
            "status": 200,
            "json": {"records": 5, "classes": 3, "smallest_class": 1, "threshold": 2, "satisfied": False},
            "body_excludes": ["10115", "80331"],
        },
    },
    {
        "name": "analyze: kinds and offsets, never the values",
        "request": post("/_anonymize/analyze", "mail a@example.com from 10.1.2.3", "text/plain"),
        "expect": {
            "status": 200,
            "json": {"findings": [{"entity": "email", "start": 5, "end": 18}, {"entity": "ipv4", "start": 24, "end": 32}]},
            "body_excludes": ["a@example.com"],
        },
    },
]

suite = {
    "function": "anonymize",
    "browser_class": "AnonymizeFunction",
    "mount": "/anonymize",
    "vars": {"POLICY": POLICY},
    "secrets": {
        "GDPR_ANONYMIZATION_SALT": SALT,
        "GDPR_ANONYMIZATION_KEY": KEY,
        "ANONYMIZE_ADMIN_TOKEN": ADMIN,
    },
    "cases": cases,
}
with open(os.path.join(HERE, "anonymize.json"), "w") as f:
    json.dump(suite, f, indent=1)
    f.write("\n")
print(f"wrote {len(cases)} cases")
