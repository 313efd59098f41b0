#!/usr/bin/env python3
"""Writes a labelled corpus for the anonymize detectors (JSON lines).

Usage: corpus.py [--seed N] [--docs N] [--out FILE.jsonl]

Deterministic for a seed. Two kinds of line:

  {"kind": "text", "locale": ..., "text": ...,
   "spans": [{"start": b, "end": b, "entity": "email"}, ...]}
  {"kind": "json", "locale": ..., "json": {...a record...},
   "spans": [{"path": "$.user.email", "start": b, "end": b, "entity": ...}, ...]}

Offsets are UTF-8 byte offsets into the text, or into the JSON string value
at `path` (`$.key.key[index]...`). Entity names: email, ipv4, ipv6, phone,
card, iban, jwt, api_key.

Every entity is generated first and the text built around it, so the ground
truth is exact. Around the entities: Faker prose, names and addresses in the
document's locale, and distractors that must NOT be detected (dates, ISO
timestamps, times, epoch seconds and milliseconds, prices, order numbers,
version strings, UUIDs, coordinates, Luhn-invalid card-like numbers, IBANs
with a wrong check digit, postal codes, percentages, counts, MAC addresses,
hashes).

Phones are Faker's, in each locale's formats, with one exception: national
templates whose area code may start with a 0 (de_DE "0##########", nl_NL
"(0###)") sometimes yield "00…", which is the international call prefix,
not a national number; those are drawn again.
Faker's bare-digit formats (en_US "2025550143", Italian mobiles
"3471234567") are kept: without a phone word before them they are
legitimately ambiguous, and the detector's recall shows it.

Only the standard library and Faker are used.
"""

import argparse
import base64
import datetime
import ipaddress
import json
import pathlib
import random
import string
import sys
import uuid

from faker import Faker

LOCALES = [
    "en_US",
    "en_GB",
    "de_DE",
    "fr_FR",
    "es_ES",
    "it_IT",
    "nl_NL",
    "de_CH",
    "nl_BE",
    "cs_CZ",
    "pt_BR",
    "es_MX",
    "pl_PL",
    "sv_SE",
    "ja_JP",
    "en_IN",
    "pt_PT",
    "da_DK",
    "en_AU",
    "en_CA",
    "fi_FI",
    "no_NO",
    "de_AT",
]
# The region of each locale: its numbers in phones_libphonenumber.tsv.
REGION = {loc: loc.split("_")[1] for loc in LOCALES}
LANG = {loc: loc.split("_")[0] for loc in LOCALES}

# One example per country of the SWIFT IBAN registry (the registry's own
# examples): the structure (which positions are letters) of generated BBANs.
IBAN_EXAMPLES = """
AD1200012030200359100100 AE070331234567890123456 AL47212110090000000235698741
AT611904300234573201 AZ21NABZ00000000137010001944 BA391290079401028494
BE68539007547034 BG80BNBG96611020345678 BH67BMAG00001299123456
BI4210000100010000332045181 BR1800360305000010009795493C1
BY13NBRB3600900000002Z00AB00 CH9300762011623852957 CR05015202001026284066
CY17002001280000001200527600 CZ6508000000192000145399 DE89370400440532013000
DJ2100010000000154000100186 DK5000400440116243 DO28BAGR00000001212453611324
EE382200221020145685 EG380019000500000000263180002 ES9121000418450200051332
FI2112345600000785 FK88SC123456789012 FO6264600001631634
FR1420041010050500013M02606 GB29NWBK60161331926819 GE29NB0000000101904917
GI75NWBK000000007099453 GL8964710001000206 GR1601101250000000012300695
GT82TRAJ01020000001210029690 HN88CABF00000000000250005469
HR1210010051863000160 HU42117730161111101800000000 IE29AIBK93115212345678
IL620108000000099999999 IQ98NBIQ850123456789012 IS140159260076545510730339
IT60X0542811101000000123456 JO94CBJO0010000000000131000302
KW81CBKU0000000000001234560101 KZ86125KZT5004100100
LB62099900000001001901229114 LC55HEMM000100010012001200023015
LI21088100002324013AA LT121000011101001000 LU280019400644750000
LV80BANK0000435195001 LY83002048000020100120361 MC5811222000010123456789030
MD24AG000225100013104168 ME25505000012345678951 MK07250120000058984
MN121234123456789123 MR1300020001010000123456753
MT84MALT011000012345MTLCAST001S MU17BOMM0101101030300200000MUR
NI45BAPR00000013000003558124 NL91ABNA0417164300 NO9386011117947
OM810180000001299123456 PK36SCBL0000001123456702
PL61109010140000071219812874 PS92PALS000000000400123456702
PT50000201231234567890154 QA58DOHB00001234567890ABCDEFG
RO49AAAA1B31007593840000 RS35260005601001611379
RU0304452522540817810538091310419 SA0380000000608010167519
SC18SSCB11010000000000001497USD SD2129010501234001 SE4550000000058398257466
SI56263300012039086 SK3112000000198742637541 SM86U0322509800000000270100
SO211000001001000100141 ST23000100010051845310146
SV62CENR00000000000000700025 TL380080012345678910157
TN5910006035183598478831 TR330006100519786457841326
UA213223130000026007233566001 VA59001123000012345678
VG96VPVG0000012345678901 XK051212012345678906 YE15CBYE0001018861234567891234
""".split()

ENTITIES = ["email", "ipv4", "ipv6", "phone", "card", "iban", "jwt", "api_key"]

B62 = string.ascii_letters + string.digits
B64URL = B62 + "-_"


class Doc:
    """Text with labelled spans, built left to right."""

    def __init__(self):
        self.parts = []
        self.size = 0
        self.spans = []

    def add(self, text, entity=None):
        if entity is not None:
            self.spans.append(
                {"start": self.size, "end": self.size + len(text.encode()), "entity": entity}
            )
        self.parts.append(text)
        self.size += len(text.encode())

    def text(self):
        return "".join(self.parts)


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.card_fakers = {}
        for i, loc in enumerate(self.FAKER_CARDS):
            f = Faker(loc)
            f.seed_instance(seed * 1000 + 500 + i)
            self.card_fakers[loc] = f
        self.phones = load_phones()
        self.fakers = {}
        for i, loc in enumerate(LOCALES):
            f = Faker(loc)
            f.seed_instance(seed * 1000 + i)
            self.fakers[loc] = f

    # ------------------------------------------------------------ helpers
    def chars(self, alphabet, n):
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def mixed(self, alphabet, n):
        """A random string with a digit, an upper- and a lower-case letter."""
        while True:
            s = self.chars(alphabet, n)
            if (
                any(c.isdigit() for c in s)
                and any(c.isupper() for c in s)
                and any(c.islower() for c in s)
            ):
                return s

    def b64url(self, data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    # ----------------------------------------------------------- entities
    def email(self, f):
        r = self.rng.random()
        if r < 0.45:
            return f.email()
        if r < 0.6:
            return f.free_email()
        if r < 0.7:
            return f.company_email()
        first = "".join(c for c in f.first_name().lower() if c.isalnum())
        last = "".join(c for c in f.last_name().lower() if c.isalnum())
        if r < 0.8:
            sep = self.rng.choice([".", "_", "-", ""])
            tag = self.rng.choice(["", "", "+news", "+" + str(self.rng.randrange(100))])
            host = self.rng.choice(
                ["mail.example.com", "example.co.uk", "corp.example.org", "example.io"]
            )
            local = first + sep + last + tag
            return (local if self.rng.random() < 0.8 else local.capitalize()) + "@" + host
        if r < 0.9:
            # Unicode local parts and IDN domains.
            host = self.rng.choice(
                ["beispiel.de", "münchen.de", "société.fr", "correo.es", "bücher.example", "例子.广告"]
            )
            return f"{first}.{last}@{host}"
        return f"{first}{self.rng.randrange(1, 999)}@{f.domain_name(2)}"

    def ipv4(self, f):
        r = self.rng.random()
        if r < 0.4:
            return f.ipv4_public()
        if r < 0.8:
            return f.ipv4_private()
        return f.ipv4()

    def ipv6(self, f):
        r = self.rng.random()
        if r < 0.1:
            v4 = f.ipv4_public()
            return self.rng.choice(["::ffff:", "64:ff9b::", "::ffff:0:"]) + v4
        if r < 0.2:
            return "fe80::" + ":".join(
                format(self.rng.randrange(65536), "x") for _ in range(self.rng.randrange(1, 5))
            )
        if r < 0.25:
            return self.rng.choice(["::1", "2001:db8::1", "::2"])
        # Runs of zero groups so that the compressed forms vary.
        groups = [self.rng.randrange(65536) for _ in range(8)]
        if self.rng.random() < 0.6:
            start = self.rng.randrange(8)
            for k in range(start, min(8, start + self.rng.randrange(1, 6))):
                groups[k] = 0
        addr = ipaddress.IPv6Address(":".join(format(g, "x") for g in groups))
        r = self.rng.random()
        if r < 0.6:
            return addr.compressed
        if r < 0.75:
            return addr.exploded
        if r < 0.9:
            return addr.compressed.upper()
        return ":".join(format(g, "x") for g in groups)

    def faker_phone(self, loc, f):
        """One of Faker's numbers for the locale, drawn again when it is not
        a phone number of the locale's country by any reading: "00…" in a
        national template (the international call prefix), a random country
        code (es_MX "+##(#)…"), a local number without its area code (en_AU
        "#### ####"), digits no national number of the country starts with
        (es_MX and en_IN random runs starting 0 or 1, en_IN 2–5 without a
        trunk prefix)."""
        while True:
            p = f.phone_number()
            digits = "".join(c for c in p if c.isdigit())
            if loc not in ("en_US", "cs_CZ") and p.lstrip("(").startswith("00"):
                continue
            if loc == "es_MX" and (p.startswith("+") or p.startswith("0") or p.lstrip("1-(")[:1] in "01"):
                continue
            if loc == "en_IN" and not p.startswith("+") and not p.startswith("0") and digits[0] not in "6789":
                continue
            if loc == "en_AU" and not p.startswith("+") and (not p.startswith(("0", "(0")) or len(digits) < 10):
                continue
            national = p
            for prefix in ("+1 ", "1-", "1 "):
                if loc in ("es_MX", "en_CA") and national.startswith(prefix):
                    national = national[len(prefix):]
            nd = "".join(c for c in national if c.isdigit())
            if loc in ("es_MX", "en_CA") and (nd[0] in "01" or nd[3] in "01"):
                continue
            if loc in ("da_DK", "no_NO") and nd[2 if p.startswith("+") else 0] in "01":
                continue
            if loc in ("da_DK", "no_NO") and p.isdigit():
                # Random digits, a quarter of them no Danish or Norwegian
                # number: bare runs come from libphonenumber's numbers.
                continue
            if loc == "pt_BR" and not p.startswith("+") and nd[2] in "01":
                continue
            return p

    def phone(self, loc, f):
        if self.rng.random() < 0.4 and self.phones.get(REGION[loc]):
            # The second source: libphonenumber's own formats (in Denmark
            # and Norway, national numbers also without spaces, as they are
            # often written).
            p = self.rng.choice(self.phones[REGION[loc]])
            if loc in ("da_DK", "no_NO") and not p.startswith("+") and self.rng.random() < 0.5:
                p = p.replace(" ", "")
            return p
        p = self.faker_phone(loc, f)
        if loc not in ("en_US",) and "x" not in p and self.rng.random() < 0.05:
            p += self.rng.choice([" ext. ", " x", " ext "]) + str(self.rng.randrange(1, 9999))
        return p

    # Every scheme and length of the IIN tables (the detector's
    # src/detect/iin.rs says where they come from).
    ISSUERS = [
        (["4"], [13, 16, 16, 16, 19]),  # Visa
        (["51", "52", "53", "54", "55"], [16]),  # Mastercard
        ([str(x) for x in range(2221, 2721)], [16]),  # Mastercard 2-series
        (["34", "37"], [15]),  # Amex
        (["6011", "644", "645", "646", "647", "648", "649", "65"], [16, 16, 17, 18, 19]),  # Discover
        (["36", "38", "39", "300", "301", "302", "303", "304", "305", "3095"], [14, 14, 15, 16, 17, 18, 19]),  # Diners
        ([str(x) for x in range(3528, 3590)], [16, 16, 17, 18, 19]),  # JCB
        (["1800", "2131"], [15]),  # JCB 15 digits
        (["2014", "2149"], [15]),  # Diners enRoute
        (["62", "81"], [16, 16, 17, 18, 19]),  # UnionPay
        (["2200", "2201", "2202", "2203", "2204"], [16, 17, 18, 19]),  # Mir
        (["5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763", "676770", "676774",
          "56", "57", "58", "0604", "6390"], [12, 12, 13, 14, 15, 16, 17, 18, 19]),  # Maestro
        (["1"], [15]),  # UATP
        (["31"], [19]),  # China T-Union
        (["636", "637", "638", "639"], [16]),  # InterPayment, InstaPayment
        (["8600", "9860", "9704", "9792", "9804"], [16]),  # UzCard, Humo, Napas, Troy, PROSTIR
        (["506099", "507865", "650002"], [16, 18, 19]),  # Verve
    ]
    # Faker's own card providers, across the locales that have them.
    FAKER_CARDS = ["en_US", "ru_RU", "uk_UA", "fa_IR", "pt_PT", "zh_CN"]

    def card_digits(self):
        if self.rng.random() < 0.35:
            f = self.card_fakers[self.rng.choice(self.FAKER_CARDS)]
            provider = f.provider("faker.providers.credit_card")
            kind = self.rng.choice(sorted(provider.credit_card_types))
            return f.credit_card_number(card_type=kind)
        prefixes, lengths = self.rng.choice(self.ISSUERS)
        prefix = self.rng.choice(prefixes)
        n = self.rng.choice(lengths)
        body = prefix + self.chars(string.digits, n - len(prefix) - 1)
        for check in string.digits:
            if luhn_ok(body + check):
                return body + check
        raise AssertionError("unreachable")

    def card_print(self, digits, force_grouped=False):
        n = len(digits)
        r = self.rng.random()
        if r < 0.35 and not force_grouped:
            return digits
        sep = " " if self.rng.random() < 0.7 else "-"
        if n == 15 and (digits[:2] in ("34", "37") or self.rng.random() < 0.3):
            sizes = [4, 6, 5]
        elif n == 14 and self.rng.random() < 0.5:
            sizes = [4, 6, 4]
        else:
            sizes = [4] * (n // 4) + ([n % 4] if n % 4 else [])
        out, i = [], 0
        for s in sizes:
            out.append(digits[i : i + s])
            i += s
        return sep.join(out)

    def card(self):
        return self.card_print(self.card_digits())

    def iban_compact(self, f):
        if self.rng.random() < 0.3:
            iban = f.iban()
            # (Faker's generic bank provider writes GB IBANs one character
            # short: those are drawn from the registry's examples instead.)
            if any(e[:2] == iban[:2] and len(e) == len(iban) for e in IBAN_EXAMPLES):
                return iban
        example = self.rng.choice(IBAN_EXAMPLES)
        cc = example[:2]
        bban = "".join(
            self.rng.choice(string.digits)
            if c.isdigit()
            else self.rng.choice(string.ascii_uppercase)
            for c in example[4:]
        )
        check = 98 - mod97(bban + cc + "00")
        return f"{cc}{check:02d}{bban}"

    def iban_print(self, compact):
        r = self.rng.random()
        if r < 0.55:
            s = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
        else:
            s = compact
        if self.rng.random() < 0.03:
            s = s.lower()
        return s

    def iban(self, f):
        return self.iban_print(self.iban_compact(f))

    def jwt(self, f):
        now = 1_700_000_000 + self.rng.randrange(50_000_000)
        r = self.rng.random()
        if r < 0.08:
            header = {"alg": "none", "typ": "JWT"}
            payload = {"sub": str(self.rng.randrange(10**6)), "iat": now}
            return (
                self.b64url(json.dumps(header, separators=(",", ":")).encode())
                + "."
                + self.b64url(json.dumps(payload, separators=(",", ":")).encode())
                + "."
            )
        if r < 0.14:
            header = {"alg": "dir", "enc": self.rng.choice(["A128GCM", "A256GCM"])}
            parts = [
                self.b64url(json.dumps(header).encode()),
                "",
                self.b64url(self.rng.randbytes(12)),
                self.b64url(self.rng.randbytes(self.rng.randrange(20, 200))),
                self.b64url(self.rng.randbytes(16)),
            ]
            return ".".join(parts)
        alg = self.rng.choice(["HS256", "RS256", "ES256", "PS384", "EdDSA", "HS512"])
        header = {"alg": alg, "typ": "JWT"}
        if self.rng.random() < 0.5:
            header["kid"] = self.chars(B62, 12)
        payload = {
            "sub": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "name": f.name(),
            "iat": now,
            "exp": now + 3600,
        }
        if self.rng.random() < 0.5:
            payload["scope"] = self.rng.choice(["read", "read write", "admin"])
        if self.rng.random() < 0.3:
            payload["email"] = f.email()
        sig_len = {"HS256": 32, "HS512": 64, "RS256": 256, "PS384": 384, "ES256": 64, "EdDSA": 64}
        return ".".join(
            [
                self.b64url(json.dumps(header).encode()),
                self.b64url(json.dumps(payload, ensure_ascii=False).encode()),
                self.b64url(self.rng.randbytes(sig_len[alg])),
            ]
        )

    def api_key(self):
        """(prefix text, key) — the prefix (e.g. "Bearer ") is not part of the span."""
        kind = self.rng.randrange(15)
        rng = self.rng
        if kind == 0:
            return "", rng.choice(["AKIA", "ASIA"]) + self.chars(string.ascii_uppercase + "234567", 16)
        if kind == 1:
            return "", rng.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + self.mixed(B62, 36)
        if kind == 2:
            return "", "github_pat_" + self.mixed(B62, 22) + "_" + self.mixed(B62, 59)
        if kind == 3:
            return "", "glpat-" + self.mixed(B64URL, 20)
        if kind == 4:
            return "", (
                rng.choice(["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"])
                + self.chars(string.digits, rng.choice([10, 12, 13]))
                + "-"
                + self.chars(string.digits, 13)
                + "-"
                + self.mixed(B62, 24)
            )
        if kind == 5:
            return "", (
                rng.choice(["sk_live_", "sk_test_", "rk_live_", "pk_live_", "pk_test_"])
                + self.mixed(B62, rng.choice([24, 34, 99]))
            )
        if kind == 6:
            return "", "AIza" + self.mixed(B64URL, 35)
        if kind == 7:
            return "", rng.choice(["sk-", "sk-proj-"]) + self.mixed(B64URL, rng.choice([48, 64, 120]))
        if kind == 8:
            return "", "npm_" + self.mixed(B62, 36)
        if kind in (9, 10):
            env = rng.choice(["dev", "staging", "prod"])
            ident = self.chars(string.ascii_lowercase + string.digits + "-", rng.randrange(1, 20)).strip("-") or "k"
            return "", f"ak_{env}_{ident}_{self.b64url(rng.randbytes(32))}"
        if kind == 11:
            label = rng.choice(["RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"])
            body = base64.b64encode(rng.randbytes(rng.randrange(100, 900))).decode()
            lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
            return "", f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----"
        # Opaque bearer tokens: the span is the token.
        # (RFC 6750 allows "." and "~" inside; they would be ambiguous with
        # punctuation at the end.)
        n = rng.choice([24, 32, 40, 64])
        return rng.choice(["Bearer ", "bearer "]), self.mixed(B64URL + ".~", n - 1) + rng.choice(B62)

    # -------------------------------------------------------- distractors
    def distractor(self, f):
        rng = self.rng
        d = datetime.date(2015, 1, 1) + datetime.timedelta(days=rng.randrange(4000))
        t = datetime.time(rng.randrange(24), rng.randrange(60), rng.randrange(60))
        k = rng.randrange(32)
        if k == 0:
            return "Meeting on " + rng.choice(
                [d.isoformat(), d.strftime("%d.%m.%Y"), d.strftime("%m/%d/%Y"), d.strftime("%d/%m/%Y"), d.strftime("%B %d, %Y")]
            ) + "."
        if k == 1:
            dt = datetime.datetime.combine(d, t)
            return "Created " + rng.choice(
                [dt.isoformat() + "Z", dt.isoformat(sep=" "), dt.isoformat(timespec="milliseconds") + "+01:00", f.iso8601()]
            ) + "."
        if k == 2:
            return "Starts at " + rng.choice([t.strftime("%H:%M"), t.strftime("%H:%M:%S"), t.strftime("%I:%M %p")]) + "."
        if k == 3:
            epoch = 1_500_000_000 + rng.randrange(300_000_000)
            return rng.choice([f"ts={epoch}", f"timestamp {epoch * 1000}", f"epoch: {epoch}"]) + "."
        if k == 4:
            return "Total " + rng.choice(
                [f"${rng.randrange(1, 99999):,}.{rng.randrange(100):02d}", f"{rng.randrange(1, 9999)},{rng.randrange(100):02d} €",
                 f"€ {rng.randrange(1, 999)}.{rng.randrange(100):02d}", f"CHF 1'{rng.randrange(100, 999)}.00"]
            ) + "."
        if k == 5:
            return "Order " + rng.choice(
                [f"ORD-{d.year}-{rng.randrange(10**6):06d}", f"#{rng.randrange(10**4, 10**8)}", f"INV-{rng.randrange(10**5)}", f"{d.year}/{rng.randrange(1, 9999):04d}"]
            ) + " shipped."
        if k == 6:
            v = ".".join(str(rng.randrange(20)) for _ in range(rng.choice([3, 3, 5, 6])))
            return rng.choice([f"Updated to version {v}.", f"Running v{v}.", f"release {v}"])
        if k == 7:
            return f"Request id {uuid.UUID(int=rng.getrandbits(128), version=4)}"
        if k == 8:
            return "Location: " + rng.choice(
                [f"{rng.uniform(-90, 90):.4f}, {rng.uniform(-180, 180):.4f}", f"lat {rng.uniform(-90, 90):.6f} lon {rng.uniform(-180, 180):.6f}"]
            )
        if k == 9:
            digits = self.card_digits()
            bad = digits[:-1] + str((int(digits[-1]) + rng.randrange(1, 10)) % 10)
            return f"Reference number {self.card_print(bad)} (not a card)."
        if k == 10:
            compact = self.iban_compact(f)
            cd = int(compact[2:4])
            bad = compact[:2] + f"{rng.choice([x for x in range(2, 99) if x != cd]):02d}" + compact[4:]
            return f"The IBAN {self.iban_print(bad)} was rejected (wrong check digits)."
        if k == 11:
            return f"Postcode {f.postcode()}."
        if k == 12:
            return f"Growth of {rng.randrange(100)}.{rng.randrange(10)}% this year, {rng.randrange(100)} % next."
        if k == 13:
            return rng.choice([f"We had {rng.randrange(1000, 99999):,} visitors", f"Insgesamt {rng.randrange(1, 999)} {rng.randrange(100, 999)} Besucher", f"There are {rng.randrange(2, 500)} items in stock"]) + "."
        if k == 14:
            return f"MAC {f.mac_address()}"
        if k == 15:
            return f"commit {f.sha1()}"
        if k == 16:
            return f"Listening on port {rng.randrange(1024, 65536)}."
        if k == 17:
            return f"Invoice {rng.randrange(10**9, 10**10)} is due."
        if k == 18:
            return f"Agent: {f.user_agent()}"
        if k == 19:
            return f"Object {'.'.join(str(rng.randrange(1, 40)) for _ in range(rng.randrange(5, 9)))} registered."
        if k == 20:
            return f"Duration {rng.randrange(1, 99)}:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
        if k == 21:
            return f"Build {d.strftime('%Y%m%d')}.{rng.randrange(100)}"
        if k == 22:
            return f"Serial {self.chars(string.ascii_uppercase, 3)}{self.chars(string.digits, 9)}"
        if k == 23:
            return f"Range {rng.randrange(1990, 2030)} - {rng.randrange(1990, 2030)}."
        if k == 24:
            return f"Ratio {rng.randrange(1, 20)}:{rng.randrange(1, 20)}."
        if k == 25:
            return rng.choice([f"ISBN 978-{rng.randrange(10)}-{rng.randrange(10, 99)}-{rng.randrange(100000, 999999)}-{rng.randrange(10)}",
                               f"ISBN {rng.randrange(10)}-{rng.randrange(100, 999)}-{rng.randrange(10000, 99999)}-{rng.randrange(10)}"])
        if k == 26:
            return f"SSN {rng.randrange(100, 899)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)} on file."
        if k == 27:
            return f"Patched CVE-{d.year}-{rng.randrange(1000, 99999)}."
        if k == 28:
            return f"Open {rng.randrange(6, 11):02d}:00-{rng.randrange(16, 21)}:30, {rng.choice(['Mon', 'Tue', 'Sat'])}."
        if k == 29:
            return f"Steuer-ID {rng.randrange(10, 99)} {rng.randrange(100, 999)} {rng.randrange(100, 999)} {rng.randrange(100, 999)}."
        if k == 30:
            return f"Change {rng.choice('+-')}{rng.randrange(10)}.{rng.randrange(10)}% since {d.year}."
        return f"Account {rng.randrange(1, 9)}{self.chars(string.digits, rng.randrange(6, 9))}"

    # -------------------------------------------------------- sentences
    TEMPLATES = {
        "email": {
            "en": ["Contact {name} at {x}.", "Email: {x}", "Send the report to <{x}> by Friday.", "Reply-To: {x}", "mailto:{x}", "{name} <{x}>", "Her address is {x}, not the old one."],
            "de": ["Bitte schreiben Sie an {x}.", "E-Mail: {x}"],
            "fr": ["Écrivez-nous à {x}.", "Courriel : {x}"],
            "es": ["Escríbenos a {x}.", "Correo: {x}"],
            "it": ["Scrivete a {x} per informazioni."],
            "nl": ["Mail naar {x}."],
            "cs": ["Napište na {x}."],
        },
        "ipv4": {
            "en": ["Login from {x} failed.", "client_ip={x}", "Server {x}:{port} is down.", "GET /index.html from {x}", "Blocked {x}/24.", "Peer {x} connected", "IP: {x}"],
        },
        "ipv6": {
            "en": ["Connection from {x} accepted.", "addr=[{x}]:{port}", "listening on [{x}]:443", "IPv6: {x}", "route via {x}%eth0", "Peer {x} connected"],
        },
        "phone": {
            "en": ["Call {name} at {x}.", "Tel.: {x}", "Phone: {x}", "Mobile {x}", "Reach me on {x} after 5pm.", "My number is {x}", "{name}, {x}", "({x})", "Fax {x}"],
            "de": ["Telefon: {x}", "Rufen Sie uns an: {x}", "Tel. {x} (Zentrale)", "Handy: {x}"],
            "fr": ["Tél. : {x}", "Appelez le {x}.", "Portable : {x}"],
            "es": ["Llámenos al {x}.", "Teléfono: {x}", "Móvil {x}"],
            "it": ["Chiamare il numero {x}", "Tel. {x}", "Cellulare: {x}"],
            "nl": ["Bel ons op {x}.", "Telefoon: {x}", "Mobiel {x}"],
            "cs": ["Telefon: {x}", "Volejte {x}."],
            "pt": ["Ligue para {x}.", "Telefone: {x}", "Celular {x}", "Obrigado pelo pedido. {x} é o meu número."],
            "pl": ["Telefon: {x}", "Zadzwoń pod {x}.", "Tel. kom. {x}"],
            "sv": ["Ring oss på {x}.", "Telefon: {x}", "Mobil: {x}"],
            "ja": ["電話番号: {x}", "お問い合わせは {x} まで。", "携帯 {x}"],
            "da": ["Ring til {x}.", "Telefon: {x}", "Mobil {x}"],
            "fi": ["Soita numeroon {x}.", "Puhelin: {x}", "Matkapuhelin {x}"],
            "no": ["Ring oss på {x}.", "Telefon: {x}", "Mobil {x}"],
        },
        # A word for some other number ends the sentence before a phone
        # number (the keyword window must stop at the full stop).
        "phone_after_other": {
            "en": ["Thanks for your order. {x} is my direct line.", "See the invoice. {x} for questions."],
            "fr": ["Merci pour votre commande. {x} est mon numéro."],
            "de": ["Danke für Ihre Bestellung. {x} ist meine Durchwahl."],
            "es": ["Gracias por su pedido. {x} es mi número."],
            "it": ["Grazie per l'ordine. {x} è il mio numero."],
        },
        "card": {
            "en": ["Card number: {x}", "Paid with {x} (exp {exp}).", "cc={x}", "card {x} declined", "Please charge {x}."],
            "de": ["Kartennummer {x}"],
            "fr": ["Carte bancaire : {x}"],
            "es": ["Tarjeta: {x}"],
            "pt": ["Cartão: {x}"],
            "pl": ["Numer karty: {x}"],
            "sv": ["Kortnummer: {x}"],
            "ja": ["カード番号: {x}"],
            "it": ["Carta di credito: {x}"],
        },
        "iban": {
            "en": ["IBAN: {x}", "Please transfer to {x}.", "iban={x}", "Account {x} (BIC {bic})"],
            "de": ["Kontoverbindung: IBAN {x}, BIC {bic}", "Bitte überweisen Sie auf {x}."],
            "fr": ["RIB : {x}"],
            "nl": ["Rekeningnummer {x}"],
        },
        "jwt": {
            "en": ["Authorization: Bearer {x}", "token={x}", "The session token {x} expired", "Cookie: session={x}; Path=/", "id_token: \"{x}\""],
        },
        "api_key": {
            "en": ["api_key: {x}", "Use key {x} for staging.", "\"apiKey\": \"{x}\"", "export TOKEN={x}", "secret={x}", "key:\n{x}\n"],
        },
    }

    def sentence(self, doc, entity, value, loc, f, prefix=""):
        lang = LANG[loc]
        templates = self.TEMPLATES[entity]
        pool = templates["en"] + templates.get(lang, []) * 2
        if entity == "phone":
            other = self.TEMPLATES["phone_after_other"]
            pool += other["en"] + other.get(lang, [])
        tpl = self.rng.choice(pool)
        if entity == "api_key" and prefix:
            tpl = self.rng.choice(["Authorization: {x}", "header {x}", "curl -H 'Authorization: {x}'"])
        if entity == "jwt" and value.endswith("."):
            # An unsecured JWT ends with its dot: no full stop right after.
            tpl = self.rng.choice(["token={x} (unsigned)", "Authorization: Bearer {x}\n", "jwt {x} end"])
        before, after = tpl.split("{x}")
        fill = {
            "name": f.name(),
            "port": str(self.rng.randrange(1, 65536)),
            "exp": f"{self.rng.randrange(1, 13):02d}/{self.rng.randrange(25, 35)}",
            "bic": self.chars(string.ascii_uppercase, 6) + self.chars(string.ascii_uppercase + string.digits, 2),
        }
        doc.add(before.format(**fill) + prefix)
        doc.add(value, entity)
        doc.add(after.format(**fill))

    def entity_value(self, entity, loc, f):
        """(prefix, value) for an entity kind."""
        if entity == "api_key":
            return self.api_key()
        value = {
            "email": lambda: self.email(f),
            "ipv4": lambda: self.ipv4(f),
            "ipv6": lambda: self.ipv6(f),
            "phone": lambda: self.phone(loc, f),
            "card": self.card,
            "iban": lambda: self.iban(f),
            "jwt": lambda: self.jwt(f),
        }[entity]()
        return "", value

    def filler(self, f):
        r = self.rng.random()
        if r < 0.5:
            return f.sentence(nb_words=self.rng.randrange(5, 14))
        if r < 0.65:
            return f.name() + ", " + f.address().replace("\n", ", ") + "."
        if r < 0.8:
            return f.company() + " — " + f.catch_phrase() + "."
        return f.paragraph(nb_sentences=2)

    def text_doc(self, loc):
        f = self.fakers[loc]
        doc = Doc()
        n = self.rng.randrange(8, 18)
        weights = {"email": 1, "ipv4": 1, "ipv6": 1, "phone": 1.6, "card": 1, "iban": 1, "jwt": 0.8, "api_key": 1}
        kinds = list(weights)
        for k in range(n):
            if k:
                doc.add(self.rng.choice([" ", " ", " ", "\n", "\n\n"]))
            r = self.rng.random()
            if r < 0.45:
                entity = self.rng.choices(kinds, [weights[x] for x in kinds])[0]
                prefix, value = self.entity_value(entity, loc, f)
                self.sentence(doc, entity, value, loc, f, prefix)
            elif r < 0.75:
                doc.add(self.distractor(f))
            else:
                doc.add(self.filler(f))
        return {"kind": "text", "locale": loc, "text": doc.text(), "spans": doc.spans}

    def json_doc(self, loc):
        f = self.fakers[loc]
        rng = self.rng
        spans = []

        def whole(path, text, entity):
            spans.append({"path": path, "start": 0, "end": len(text.encode()), "entity": entity})
            return text

        def labelled(path, prefix, text, entity):
            start = len(prefix.encode())
            spans.append({"path": path, "start": start, "end": start + len(text.encode()), "entity": entity})
            return prefix + text

        d = datetime.datetime(2023, 1, 1) + datetime.timedelta(seconds=rng.randrange(80_000_000))
        rec = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "created_at": d.isoformat() + "Z",
            "user": {
                "name": f.name(),
                "email": whole("$.user.email", self.email(f), "email"),
                "phone": whole("$.user.phone", self.phone(loc, f), "phone"),
                "address": {
                    "street": f.street_address(),
                    "city": f.city(),
                    "postcode": f.postcode(),
                    "country": f.current_country_code(),
                },
                "birthdate": f.date_of_birth().isoformat(),
            },
        }
        if rng.random() < 0.4:
            rec["user"]["phones"] = [
                whole(f"$.user.phones[{i}]", self.phone(loc, f), "phone") for i in range(rng.randrange(1, 3))
            ]
        card = self.card_digits()
        rec["payment"] = {
            "method": "card",
            "card": {
                "number": whole("$.payment.card.number", self.card_print(card), "card"),
                "expiry": f"{rng.randrange(1, 13):02d}/{rng.randrange(25, 35)}",
                "last4": card[-4:],
            },
            "iban": whole("$.payment.iban", self.iban(f), "iban"),
            "amount": round(rng.uniform(1, 5000), 2),
            "currency": rng.choice(["EUR", "USD", "GBP", "CHF", "CZK"]),
            "reference": f"ORD-{d.year}-{rng.randrange(10**6):06d}",
        }
        events = []
        for i in range(rng.randrange(1, 4)):
            ev = {"ts": (d + datetime.timedelta(seconds=rng.randrange(86400))).isoformat() + "Z"}
            if rng.random() < 0.55:
                ev["ip"] = whole(f"$.events[{i}].ip", self.ipv4(f), "ipv4")
            else:
                ev["ip"] = whole(f"$.events[{i}].ip", self.ipv6(f), "ipv6")
            ev["user_agent"] = f.user_agent()
            ev["path"] = "/" + f.uri_path()
            ev["status"] = rng.choice([200, 201, 302, 404, 500])
            if rng.random() < 0.3:
                ev["forwarded_for"] = labelled(f"$.events[{i}].forwarded_for", "for=", self.ipv4(f), "ipv4")
            events.append(ev)
        rec["events"] = events
        auth = {}
        if rng.random() < 0.8:
            if rng.random() < 0.5:
                auth["token"] = whole("$.auth.token", self.jwt(f), "jwt")
            else:
                auth["authorization"] = labelled("$.auth.authorization", "Bearer ", self.jwt(f), "jwt")
        if rng.random() < 0.8:
            prefix, key = self.api_key()
            if prefix:
                auth["authorization_header"] = labelled("$.auth.authorization_header", prefix, key, "api_key")
            else:
                auth["api_key"] = whole("$.auth.api_key", key, "api_key")
        if auth:
            rec["auth"] = auth
        rec["meta"] = {
            "version": ".".join(str(rng.randrange(20)) for _ in range(3)),
            "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "lat": f"{rng.uniform(-90, 90):.4f}",
            "lon": f"{rng.uniform(-180, 180):.4f}",
            "sent_at_ms": str(int(d.timestamp() * 1000)),
        }
        # Free-text notes with a few entities and distractors.
        doc = Doc()
        for k in range(rng.randrange(2, 6)):
            if k:
                doc.add(" ")
            r = rng.random()
            if r < 0.4:
                entity = rng.choice(ENTITIES)
                prefix, v = self.entity_value(entity, loc, f)
                self.sentence(doc, entity, v, loc, f, prefix)
            elif r < 0.75:
                doc.add(self.distractor(f))
            else:
                doc.add(self.filler(f))
        rec["notes"] = doc.text()
        for s in doc.spans:
            spans.append({"path": "$.notes", **s})
        return {"kind": "json", "locale": loc, "json": rec, "spans": spans}


def load_phones():
    """The checked-in libphonenumber numbers by region (phones_libphonenumber.py
    wrote them)."""
    phones = {}
    path = pathlib.Path(__file__).with_name("phones_libphonenumber.tsv")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            region, _kind, _fmt, number = line.split("\t")
            phones.setdefault(region, []).append(number)
    return phones


def luhn_ok(digits):
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mod97(s):
    """The remainder of an alphanumeric string read as digits (A=10 … Z=35)."""
    rem = 0
    for c in s:
        v = int(c, 36)
        rem = (rem * (100 if v > 9 else 10) + v) % 97
    return rem


def main(gen_class=None, doc=__doc__, seed=7):
    """The command line of this generator, or of another built on its Gen
    (phone_context.py)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--out", default="-")
    args = ap.parse_args()
    gen = (gen_class or Gen)(args.seed)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    with out:
        for i in range(args.docs):
            loc = gen.rng.choice(LOCALES)
            doc = gen.text_doc(loc) if i % 2 == 0 else gen.json_doc(loc)
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
