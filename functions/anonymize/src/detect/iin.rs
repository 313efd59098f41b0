//! Payment card issuer ranges: which leading digits (IIN / BIN) go with which
//! card lengths, for every scheme that these list:
//!
//! - the ISO/IEC 7812-1 registry's major industry identifiers and the
//!   schemes' published IIN ranges (as tabulated in "Payment card number",
//!   Wikipedia, 2025 revision: Amex, BORICA, China T-Union, UnionPay,
//!   Dankort, Diners Club incl. enRoute and International, Discover, GPN,
//!   Humo, Hipercard, InstaPayment, InterPayment, JCB, Laser, LankaPay,
//!   Maestro and Maestro UK, Mastercard incl. the 2-series, Mir, Napas,
//!   NPS Pridnestrovie, RuPay, Solo, Switch, Troy, UATP, UkrCard, UzCard,
//!   Verve, Visa and Visa Electron, Elo, Cabal);
//! - Faker's card providers (40.x: `maestro` 12 digits with 5018, 5020,
//!   5038, 56–58, 6304, 6759, 6761–6763, 0604, 6390; `jcb15` 15 digits with
//!   1800 and 2131; `mir` 2200–2204; `unionpay` 62 and 81; `prostir` 9;
//!   the Iranian Shetab ranges of `fa_IR`, all 16 digits in 50–63);
//! - Stripe's test card numbers (Visa, Mastercard 2- and 5-series, Amex,
//!   Discover, Diners 14 and 16, JCB, UnionPay 16 and 19, Cartes Bancaires
//!   and eftpos co-badged, all inside the ranges below).
//!
//! Where the schemes overlap (RuPay, Troy and Discover in 65; GPN, Verve and
//! Maestro in 50), an entry covers the union of their lengths: the detector
//! needs "is this a card", not "whose".

/// Bit mask of the lengths `from..=to`.
const fn span(from: u32, to: u32) -> u32 {
    let mut m = 0;
    let mut n = from;
    while n <= to {
        m |= 1 << n;
        n += 1;
    }
    m
}

const fn one(n: u32) -> u32 {
    1 << n
}

/// The table: card lengths (bit `n` set: `n` digits) and the leading
/// digits that go with them, each a prefix (`"34"`, `"0604"`) or a range
/// of prefixes of one width, both ends included (`"2221-2720"`). Order
/// does not matter: a number is a card when any entry takes it.
const ISSUERS: &[(u32, &[&str])] = &[
    // UATP (MII 1, airlines); JCB's 15-digit numbers; Diners Club enRoute;
    // American Express.
    (one(15), &["1", "1800", "2131", "2014", "2149", "34", "37"]),
    // BORICA; Mastercard 2-series; Mastercard and Diners Club US & Canada
    // (54–55); UzCard.
    (one(16), &["2205", "2221-2720", "51-55", "8600"]),
    // China T-Union.
    (one(19), &["31"]),
    // Maestro (Faker's "0604"); Maestro (5018, 5020, 5038 and the older 50
    // range), GPN, Verve, Elo, Aura, Shetab; Maestro 56–69 (5893, 6304,
    // 6759, 6761–6763, 676770, 676774, 6390 and Faker's 56–58 among them),
    // Bankcard 5610, Shetab 58.
    (span(12, 19), &["0604", "50", "56-69"]),
    // Diners Club International (300–305, 3095, 36, 38–39); Hipercard 3841
    // is inside 38.
    (span(14, 19), &["300-305", "3095", "36", "38-39"]),
    // Mir; JCB (3528–3589; Faker: all of 35), RuPay's JCB co-brands 353,
    // 356, LankaPay 357111; UnionPay 81, RuPay 81–82.
    (span(16, 19), &["2200-2204", "35", "81-82"]),
    // Visa, Visa Electron, Dankort co-brand, Elo's 4-ranges.
    (one(13) | one(16) | one(19), &["4"]),
    // MII 9, national assignment: PROSTIR (Faker: "9"), Napas 9704 (16,
    // 19), Troy 9792, Humo 9860.
    (one(16) | one(19), &["9"]),
];

/// Whether a card number (digit values, 12–19 of them) has an issuer range
/// for its length.
pub(super) fn issuer_ok(d: &[u8]) -> bool {
    let n = d.len();
    if !(12..=19).contains(&n) {
        return false;
    }
    ISSUERS.iter().any(|(lengths, prefixes)| {
        lengths & (1 << n) != 0 && prefixes.iter().any(|range| starts_in(d, range))
    })
}

/// Whether the digit values `d` start with a prefix in `range` (`"34"` or
/// `"2221-2720"`): of equal width, digit strings compare as their numbers.
fn starts_in(d: &[u8], range: &str) -> bool {
    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
    let Some(head) = d.get(..lo.len()) else {
        return false;
    };
    let head = head.iter().map(|x| x + b'0');
    head.clone().ge(lo.bytes()) && head.le(hi.bytes())
}

#[cfg(test)]
mod tests {
    use super::{ISSUERS, issuer_ok};

    fn digits(s: &str) -> Vec<u8> {
        s.bytes()
            .filter(u8::is_ascii_digit)
            .map(|c| c - b'0')
            .collect()
    }

    #[test]
    fn ranges_and_lengths() {
        for ok in [
            "4111111111111111",
            "4222222222222",
            "4000000000000000006",
            "5555555555554444",
            "2223003122003222",
            "2200000000000004",
            "378282246310005",
            "180000000000002",
            "213100000000001",
            "201400000000009",
            "36227206271667",
            "3056930009020004",
            "3566002020360505",
            "6200000000000005",
            "6205500000000000004",
            "501800000009",
            "630400000000",
            "060400000000",
            "6759649826438453",
            "5022290000000000",
            "8100000000000000",
            "9804000000000000",
            "100000000000009",
        ] {
            assert!(issuer_ok(&digits(ok)), "{ok}");
        }
        for no in [
            "411111111111111",
            "41111111111111",
            "5555555555555",
            "34000000000000",
            "2100000000000000",
            "7000000000000000",
            "100000000000000000",
            "300000000000",
            "0000000000000000",
            "1800000000000000",
        ] {
            assert!(!issuer_ok(&digits(no)), "{no}");
        }
    }

    #[test]
    fn each_range_is_digits_of_one_width_in_order() {
        for (_, prefixes) in ISSUERS {
            for range in *prefixes {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                assert!(
                    lo.len() == hi.len()
                        && lo <= hi
                        && range.bytes().all(|b| b.is_ascii_digit() || b == b'-'),
                    "{range}"
                );
            }
        }
    }
}
