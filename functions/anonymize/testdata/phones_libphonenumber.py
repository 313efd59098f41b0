#!/usr/bin/env python3
"""Writes phones_libphonenumber.tsv: real-format phone numbers for the corpus.

Usage: phones_libphonenumber.py [--per-region N] [--seed N] > phones_libphonenumber.tsv

The second, independent source of phone numbers for testdata/corpus.py
(Faker's templates are the first): Google's libphonenumber, through its
Python port `phonenumbers` (pinned below; not in requirements.txt — the
output is checked in, so the tests need only the TSV). For each region of the
corpus's locales, numbers of each type the region's plan has (fixed line,
mobile, toll free, VoIP…) are made from the plan's example number with
random trailing digits until libphonenumber calls them valid, and written in
the national, international and E.164 formats libphonenumber uses, plus the
RFC 3966-less "national without trunk prefix" form for regions whose people
write numbers so (NANP, Brazil without the carrier code, Italy). Each line:

    region <TAB> type <TAB> format <TAB> number

    pip install phonenumbers==9.0.43
"""

import argparse
import random

import phonenumbers as pn
from phonenumbers import PhoneNumberFormat, PhoneNumberType

REGIONS = [
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "CH", "BE", "CZ", "BR", "MX", "PL", "SE",
    "JP", "IN", "PT", "DK", "AU", "CA", "FI", "NO", "AT",
]
TYPES = {
    "fixed": PhoneNumberType.FIXED_LINE,
    "mobile": PhoneNumberType.MOBILE,
    "toll_free": PhoneNumberType.TOLL_FREE,
    "voip": PhoneNumberType.VOIP,
}
FORMATS = {
    "national": PhoneNumberFormat.NATIONAL,
    "international": PhoneNumberFormat.INTERNATIONAL,
    "e164": PhoneNumberFormat.E164,
}


def random_valid(rng, region, ptype):
    example = pn.example_number_for_type(region, ptype)
    if example is None:
        return None
    nsn = str(example.national_number)
    for _ in range(200):
        keep = rng.randrange(1, min(4, len(nsn)) + 1)
        digits = nsn[:keep] + "".join(rng.choice("0123456789") for _ in nsn[keep:])
        num = pn.parse("+" + str(example.country_code) + digits, None)
        if pn.is_valid_number_for_region(num, region) and pn.number_type(num) == ptype:
            return num
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-region", type=int, default=40)
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"# libphonenumber {pn.__version__}: region, type, format, number")
    for region in REGIONS:
        kinds = [k for k, t in TYPES.items() if pn.example_number_for_type(region, t)]
        for i in range(args.per_region):
            kind = kinds[0] if i % 3 == 0 else rng.choice(kinds)
            num = random_valid(rng, region, TYPES[kind])
            if num is None:
                continue
            fmt = rng.choice(list(FORMATS))
            text = pn.format_number(num, FORMATS[fmt])
            if fmt == "national" and region in ("US", "CA", "BR", "IT") and rng.random() < 0.5:
                # Written without parentheses or carrier code, as people do.
                nsn = str(num.national_number) if not num.italian_leading_zero else pn.national_significant_number(num)
                if region in ("US", "CA"):
                    text = rng.choice([f"{nsn[:3]} {nsn[3:6]} {nsn[6:]}", nsn, f"{nsn[:3]}-{nsn[3:6]}-{nsn[6:]}"])
                elif region == "BR":
                    text = f"{nsn[:2]} {nsn[2:-4]}-{nsn[-4:]}"
                else:
                    text = rng.choice([nsn, f"{nsn[:3]} {nsn[3:]}"])
                fmt = "national_plain"
            print(f"{region}\t{kind}\t{fmt}\t{text}")


if __name__ == "__main__":
    main()
