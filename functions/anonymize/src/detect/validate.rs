//! Checksums and tables: Luhn, the IBAN registry's lengths, mod-97.

/// Whether `number` passes the Luhn check: digits, optionally grouped by
/// spaces or dashes, at least two of them.
pub fn luhn_valid(number: &str) -> bool {
    let mut digits = [0u8; 64];
    let mut n = 0;
    for b in number.bytes() {
        match b {
            b'0'..=b'9' if n < digits.len() => {
                digits[n] = b - b'0';
                n += 1;
            }
            b' ' | b'-' => {}
            _ => return false,
        }
    }
    n >= 2 && luhn(&digits[..n])
}

/// The Luhn check over digit values (0–9).
pub(super) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let d = u32::from(d);
        sum += if i % 2 == 1 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
    }
    sum.is_multiple_of(10)
}

/// The IBAN length of a country (ISO 3166 alpha-2, upper case) in the SWIFT
/// IBAN registry, or `None` where IBANs are not used. Territories that use
/// their parent's format (Åland, the French overseas departments and
/// collectivities, the Crown Dependencies) are included.
pub fn iban_length(country: &str) -> Option<usize> {
    let c = country.as_bytes();
    if c.len() != 2 {
        return None;
    }
    iban_length_of([c[0], c[1]])
}

pub(super) fn iban_length_of(c: [u8; 2]) -> Option<usize> {
    let n = match &c {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BI" => 27,
        b"BR" => 29,
        b"BY" => 28,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DJ" => 27,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" | b"AX" => 18,
        b"FK" => 18,
        b"FO" => 18,
        b"FR" | b"GF" | b"GP" | b"MQ" | b"RE" | b"PF" | b"TF" | b"YT" | b"NC" | b"BL" | b"MF"
        | b"PM" | b"WF" => 27,
        b"GB" | b"IM" | b"JE" | b"GG" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HN" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IQ" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LC" => 32,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"LY" => 25,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MN" => 20,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NI" => 28,
        b"NL" => 18,
        b"NO" => 15,
        b"OM" => 23,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"RU" => 33,
        b"SA" => 24,
        b"SC" => 31,
        b"SD" => 18,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"SO" => 23,
        b"ST" => 25,
        b"SV" => 28,
        b"TL" => 23,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VA" => 22,
        b"VG" => 24,
        b"XK" => 20,
        b"YE" => 30,
        _ => return None,
    };
    Some(n)
}

/// Whether `iban` is a valid IBAN: a registry country, its length, two
/// check digits, an alphanumeric BBAN and mod-97 = 1. Spaces are ignored and
/// letters may be in either case.
pub fn iban_valid(iban: &str) -> bool {
    let mut buf = [0u8; 34];
    let mut n = 0;
    for b in iban.bytes() {
        if b == b' ' {
            continue;
        }
        if n == buf.len() || !b.is_ascii_alphanumeric() {
            return false;
        }
        buf[n] = b.to_ascii_uppercase();
        n += 1;
    }
    let s = &buf[..n];
    n >= 5
        && s[0].is_ascii_uppercase()
        && s[1].is_ascii_uppercase()
        && s[2].is_ascii_digit()
        && s[3].is_ascii_digit()
        && iban_length_of([s[0], s[1]]) == Some(n)
        && mod97(s) == 1
}

/// ISO 7064 MOD 97-10 over an IBAN (upper-case alphanumerics): the first
/// four characters moved to the end, letters as 10–35.
pub(super) fn mod97(iban: &[u8]) -> u32 {
    let mut rem = 0u32;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            _ => (rem * 100 + u32::from(c.to_ascii_uppercase() - b'A') + 10) % 97,
        };
    }
    rem
}
