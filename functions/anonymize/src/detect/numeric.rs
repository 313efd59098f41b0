//! The kinds found from a digit: IPv4 addresses, card numbers, IBANs (from
//! the two letters before their check digits) and phone numbers.
//!
//! The text is searched for digits eight bytes at a time, skipping the
//! spans already taken by emails, JWTs and keys. At the first digit of each
//! run the candidates are tried in order — IBAN (when two letters precede
//! it), IPv4, card, phone — and the scan resumes after what was found, or
//! after a card- or IBAN-shaped number that failed its checksum (so that
//! its digits are not taken for a phone), or else after the run (after the
//! whole word when the digits are glued to letters).
//!
//! Phones: a candidate is a `+`, a `(` or a digit, then up to ten groups of
//! digits (or parenthesized groups) joined by one separator each (space,
//! no-break space, `-`, `.`, `/`, ` - `, ` / `), then an optional extension
//! (`x12`, `ext. 12`, `#12`). It is a phone number when it has the
//! structure of one (see `phone::at`) or is a national number of some
//! region's numbering plan (`plan`), or, short of that, a phone word just
//! before it ("Tel.", "call", "Handy", "móvil", "tlf", "Ring oss på"…) or
//! in the name of the JSON field it is in; a national-format number right
//! after "order", "invoice", "account"… (in the same sentence, or as the
//! field's name) is taken for that instead.

use std::ops::Range;

use super::bytes::next_digit;
use super::iin::issuer_ok;
use super::validate::{iban_length_of, luhn, mod97};
use super::{Enabled, word_after, word_before};
use crate::entity::{Entity, Span};

/// Appends the numeric kinds in `text` to `out`, skipping the spans
/// `out[claimed]` (sorted by start) of kinds that would win over them.
pub(super) fn find(
    text: &str,
    en: Enabled,
    phones: Phones<'_>,
    out: &mut Vec<Span>,
    claimed: Range<usize>,
) {
    let b = text.as_bytes();
    let mut i = 0;
    let mut c = claimed.start;
    while let Some(p) = next_digit(b, i) {
        while c < claimed.end && out[c].end <= p {
            c += 1;
        }
        if c < claimed.end && out[c].start <= p {
            i = out[c].end;
            continue;
        }
        let run_end = digits_end(b, p);
        i = if p > 0 && b[p - 1].is_ascii_digit() {
            run_end
        } else {
            candidate(text, p, run_end, en, phones, out).max(run_end)
        };
    }
}

fn digits_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// The end of the ASCII word (`[A-Za-z0-9_]*`) that continues at `i`.
fn token_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    i
}

fn is_digit_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

/// What a parser made of a candidate.
enum Found {
    /// A valid entity ending here.
    Valid(usize),
    /// Shaped like one (length, grouping) but failing the checksum: skip it
    /// whole.
    Shaped(usize),
    /// Not this kind.
    No,
}

/// What the detector knows about phone numbers beyond the text.
#[derive(Clone, Copy, Default)]
pub(super) struct Phones<'a> {
    /// The plans of the policy's `phone_regions`.
    pub(super) regions: &'a [u16],
    /// The name of the JSON field whose value the text is ("" for prose):
    /// a name holding a phone word (`"phone"`, `"tlf"`, `"mobileNumber"`)
    /// counts as that word right before the value's start.
    pub(super) field: &'a str,
}

fn push(out: &mut Vec<Span>, start: usize, end: usize, entity: Entity) {
    out.push(Span { start, end, entity });
}

/// Tries the kinds at the digit run `p..run_end`; returns where to resume.
fn candidate(
    text: &str,
    p: usize,
    run_end: usize,
    en: Enabled,
    phones: Phones<'_>,
    out: &mut Vec<Span>,
) -> usize {
    let b = text.as_bytes();
    // IBAN: two letters right before the check digits.
    if p >= 2 && b[p - 1].is_ascii_alphabetic() && b[p - 2].is_ascii_alphabetic() {
        if en.iban && !word_before(text, p - 2) {
            match iban_at(text, p - 2) {
                Found::Valid(end) => {
                    push(out, p - 2, end, Entity::Iban);
                    return end;
                }
                Found::Shaped(end) => return end,
                Found::No => {}
            }
        }
        return token_end(b, run_end);
    }
    // Digits glued to a word ("x64", "abc123", "123abc", UUID groups,
    // base64) are not numbers of ours, nor are the other digits of that
    // word; a phone extension ("0143x12") is checked later.
    if word_before(text, p) {
        return token_end(b, run_end);
    }
    let extension_x = matches!(b.get(run_end), Some(b'x' | b'X')) && is_digit_at(b, run_end + 1);
    if word_after(text, run_end) && !extension_x {
        return token_end(b, run_end);
    }
    let prev = if p > 0 { b[p - 1] } else { b' ' };
    let prev2 = if p > 1 { b[p - 2] } else { b' ' };
    match prev {
        // The continuation of a token: "ID-2024-0042", "v1.2", "a/12".
        b'.' | b'-' | b'/' if prev2.is_ascii_alphanumeric() || prev2 == b'_' => return run_end,
        // "12:30", "1,234".
        b':' | b',' if prev2.is_ascii_digit() => return run_end,
        b'+' => {
            let glued = word_before(text, p - 1) || prev2 == b'+';
            // "(+358) 9…" from its parenthesis, else from the `+`.
            let starts = [p.checked_sub(2).filter(|_| prev2 == b'('), Some(p - 1)];
            if en.phone && !glued {
                for start in starts.into_iter().flatten() {
                    if let Some(end) = phone::at(text, start, phones) {
                        push(out, start, end, Entity::Phone);
                        return end;
                    }
                }
            }
            return run_end;
        }
        b'(' if en.phone && !word_before(text, p - 1) => {
            if let Some(end) = phone::at(text, p - 1, phones) {
                push(out, p - 1, end, Entity::Phone);
                return end;
            }
        }
        _ => {}
    }
    if en.ipv4
        && run_end - p <= 3
        && b.get(run_end) == Some(&b'.')
        && let Some(end) = ipv4_at(text, p)
    {
        push(out, p, end, Entity::Ipv4);
        return end;
    }
    // A card starts with a group of four or is 12–19 digits long.
    let run = run_end - p;
    if (en.card || en.phone) && (run == 4 || (12..=19).contains(&run)) {
        match card_at(text, p) {
            Found::Valid(end) => {
                if en.card {
                    push(out, p, end, Entity::Card);
                }
                return end;
            }
            Found::Shaped(end) => return end,
            Found::No => {}
        }
    }
    // A group after "<digits> " belongs to a number that was tried from its
    // first group.
    let mid_number = prev == b' ' && prev2.is_ascii_digit();
    if en.phone
        && !mid_number
        && (run >= 7 || phone::continues(b, run_end))
        && let Some(end) = phone::at(text, p, phones)
    {
        push(out, p, end, Entity::Phone);
        return end;
    }
    run_end
}

/// A dotted quad at `p`: four decimal octets 0–255 without leading zeros,
/// not part of a longer dotted sequence (versions, OIDs).
fn ipv4_at(text: &str, p: usize) -> Option<usize> {
    let b = text.as_bytes();
    // The Gecko version in user agents ("rv:1.9.2.20").
    if p >= 3 && b[p - 1] == b':' && b[p - 3..p - 1].eq_ignore_ascii_case(b"rv") {
        return None;
    }
    let mut i = p;
    for k in 0..4 {
        let s = i;
        let mut v = 0u32;
        while i < b.len() && b[i].is_ascii_digit() && i - s < 3 {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        let len = i - s;
        if len == 0 || v > 255 || (len > 1 && b[s] == b'0') || is_digit_at(b, i) {
            return None;
        }
        if k < 3 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    if b.get(i) == Some(&b'.') && is_digit_at(b, i + 1) || word_after(text, i) {
        return None;
    }
    Some(i)
}

/// A card number at `p`: 12–19 digits, contiguous or in groups separated by
/// one kind of single space or dash (4-4-4-4, 4-4-4-4-3, Amex 4-6-5, Diners
/// 4-6-4, …), in an issuer's range for its length (`iin`) and with a valid
/// Luhn digit.
fn card_at(text: &str, p: usize) -> Found {
    let b = text.as_bytes();
    let mut d = [0u8; 24];
    let mut n = 0;
    let mut groups = [0u8; 8];
    let mut ends = [0usize; 8];
    let mut counts = [0usize; 8];
    let mut g = 0;
    let mut sep = 0u8;
    let mut i = p;
    loop {
        let gs = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if n == d.len() {
                return Found::No;
            }
            d[n] = b[i] - b'0';
            n += 1;
            i += 1;
        }
        if g == groups.len() {
            return Found::No;
        }
        groups[g] = u8::try_from(i - gs).unwrap_or(u8::MAX);
        ends[g] = i;
        counts[g] = n;
        g += 1;
        match b.get(i) {
            Some(&c @ (b' ' | b'-')) if (sep == 0 || sep == c) && is_digit_at(b, i + 1) => {
                sep = c;
                i += 1;
            }
            _ => break,
        }
    }
    let boundary_ok = |end: usize| {
        let decimal = matches!(b.get(end), Some(b'.' | b',')) && is_digit_at(b, end + 1);
        !(word_after(text, end) || decimal)
    };
    let valid = |k: usize| {
        let digits = &d[..counts[k - 1]];
        card_shape(&groups[..k]) && issuer_ok(digits) && luhn(digits)
    };
    if boundary_ok(i) {
        if valid(g) {
            return Found::Valid(i);
        }
        // An expiry date after a space-grouped card ("4111 1111 1111 1111
        // 12/27").
        let expiry = b.get(i) == Some(&b'/') && groups[g - 1] <= 2;
        if sep == b' ' && g > 2 && expiry && valid(g - 1) {
            return Found::Valid(ends[g - 2]);
        }
    }
    // Shaped like a card but not one: skipped whole (a 12-digit run only
    // with an issuer's range, the rest may be a phone number).
    if card_shape(&groups[..g]) && d[0] != 0 && (n >= 13 || issuer_ok(&d[..n])) {
        Found::Shaped(i)
    } else {
        Found::No
    }
}

/// Whether digit groups are printed like a card number.
fn card_shape(groups: &[u8]) -> bool {
    let n: usize = groups.iter().map(|&x| usize::from(x)).sum();
    match groups {
        [one] => (12..=19).contains(&usize::from(*one)),
        [4, 6, 5] | [4, 6, 4] => true,
        [4, middle @ .., last] => {
            (12..=19).contains(&n) && middle.iter().all(|&x| x == 4) && (1..=4).contains(last)
        }
        _ => false,
    }
}

/// An IBAN whose country code starts at `s`: the registry length for the
/// country, compact or printed in groups of four separated by single
/// spaces, and mod-97 = 1.
fn iban_at(text: &str, s: usize) -> Found {
    let b = text.as_bytes();
    let cc = [b[s].to_ascii_uppercase(), b[s + 1].to_ascii_uppercase()];
    let Some(len) = iban_length_of(cc) else {
        return Found::No;
    };
    let mut buf = [0u8; 34];
    buf[..2].copy_from_slice(&cc);
    let printed = b.get(s + 4) == Some(&b' ');
    let mut n = 2;
    let mut i = s + 2;
    while n < len {
        if printed && n % 4 == 0 {
            if b.get(i) != Some(&b' ') {
                return Found::No;
            }
            i += 1;
        }
        let Some(&c) = b.get(i) else {
            return Found::No;
        };
        if !c.is_ascii_alphanumeric() || n < 4 && !c.is_ascii_digit() {
            return Found::No;
        }
        buf[n] = c.to_ascii_uppercase();
        n += 1;
        i += 1;
    }
    if word_after(text, i) {
        return Found::No;
    }
    if mod97(&buf[..len]) == 1 {
        Found::Valid(i)
    } else {
        Found::Shaped(i)
    }
}

mod phone {
    //! Phone numbers: see the module docs of `detect` for the rules.

    use super::{Phones, is_digit_at};
    use crate::detect::{plan, word_after};

    const MAX_GROUPS: usize = 10;
    const MAX_DIGITS: usize = 20;

    #[derive(Clone, Copy, Default)]
    struct Group {
        /// First byte (the `(` of a parenthesized group).
        start: usize,
        len: usize,
        paren: bool,
        /// The separator before it: 0 (none), b' ', b'-', b'.', b'/'.
        sep: u8,
    }

    /// Words that announce a phone number (lower case; matched at a word
    /// start in the bytes just before a candidate, and in the name of the
    /// JSON field that holds the text): `(word, whole)`, where a whole word
    /// must not be followed by a letter, ASCII or not ("tel" but not
    /// "television", "bel" but not "beløp").
    ///
    /// The one list of phone context words, in the corpus's languages (no
    /// maintained multilingual list exists: Presidio's phone recognizer
    /// carries English words only). It matters most where a national
    /// number has no structure to tell it from other digits: a bare
    /// Danish or Norwegian "21289693" is taken after one of these words
    /// ("Ring oss på", "tlf.", `"phone": …`), not alone.
    const KEYWORDS: &[(&[u8], bool)] = &[
        (b"tel", true),
        (b"telf", true),
        (b"tlf", false),
        (b"tfn", true),
        (b"puh", false),
        (b"mob", true),
        (b"ph", true),
        (b"cel", true),
        (b"celular", true),
        (b"fone", true),
        (b"ring", true),
        (b"ringe", true),
        // Japanese "denwa" (telephone) and "keitai" (mobile).
        ("\u{96fb}\u{8a71}".as_bytes(), false),
        ("\u{643a}\u{5e2f}".as_bytes(), false),
        (b"telefon", false),
        (b"telephon", false),
        ("t\u{e9}l".as_bytes(), false),
        (b"phone", false),
        (b"mobil", false),
        (b"mobiel", true),
        (b"cell", false),
        (b"fax", true),
        (b"call", false),
        (b"handy", true),
        (b"ruf", true),
        (b"rufen", true),
        (b"anruf", false),
        (b"portable", true),
        (b"appel", false),
        (b"movil", true),
        ("m\u{f3}vil".as_bytes(), true),
        (b"llam", false),
        ("ll\u{e1}m".as_bytes(), false),
        (b"chiam", false),
        (b"bel", true),
        (b"volej", false),
        (b"whatsapp", false),
        (b"sms", true),
        (b"reach", false),
        (b"dial", true),
        (b"hotline", false),
        (b"helpline", false),
    ];
    /// Words that announce some other number (an order, an account, a
    /// reference…): without a phone word, a national-format candidate after
    /// one of them is not taken.
    const OTHER_KEYWORDS: &[(&[u8], bool)] = &[
        (b"order", false),
        (b"invoice", false),
        (b"account", false),
        (b"konto", false),
        (b"ref", false),
        (b"serial", false),
        (b"ticket", false),
        (b"tracking", false),
        (b"customer", false),
        (b"kunde", false),
        (b"rechnung", false),
        (b"bestell", false),
        (b"auftrag", false),
        (b"commande", false),
        (b"facture", false),
        (b"pedido", false),
        (b"factura", false),
        (b"ordine", false),
        (b"fattura", false),
        (b"factuur", false),
        (b"version", false),
        (b"epoch", false),
        (b"timestamp", false),
        (b"ts", true),
        (b"unix", true),
        (b"build", false),
        (b"steuer", false),
        (b"tax", true),
        (b"vat", true),
        (b"isbn", true),
        (b"issn", true),
        (b"iban", true),
        (b"sku", true),
        (b"ssn", true),
        (b"pin", true),
        (b"id", true),
        (b"nr", true),
    ];
    /// How far before a candidate a keyword is looked for.
    const CONTEXT: usize = 24;

    /// Whether a group ending at `i` is followed by more of a phone number
    /// (a separator and a digit or parenthesis, or an extension): a short
    /// group alone is not one.
    pub(super) fn continues(b: &[u8], i: usize) -> bool {
        let (_, next) = separator(b, i);
        matches!(b.get(next), Some(b'0'..=b'9' | b'('))
    }

    /// The separator at `i`: its kind and the index after it.
    fn separator(b: &[u8], i: usize) -> (u8, usize) {
        match b.get(i) {
            Some(b' ') => match b.get(i + 1) {
                Some(&c @ (b'-' | b'/')) if b.get(i + 2) == Some(&b' ') => (c, i + 3),
                _ => (b' ', i + 1),
            },
            Some(b'/') if b.get(i + 1) == Some(&b' ') => (b'/', i + 2),
            Some(&c @ (b'-' | b'.' | b'/')) => (c, i + 1),
            // No-break space, narrow no-break space.
            Some(0xC2) if b.get(i + 1) == Some(&0xA0) => (b' ', i + 2),
            Some(0xE2) if b.get(i + 1) == Some(&0x80) && b.get(i + 2) == Some(&0xAF) => {
                (b' ', i + 3)
            }
            _ => (0, i),
        }
    }

    /// The length of an extension marker at `i` ("x", "ext.", "#", …).
    fn extension_marker(b: &[u8], i: usize) -> Option<usize> {
        let rest = b.get(i..)?;
        [&b"extension"[..], b"ext.", b"ext", b"x", b"#"]
            .into_iter()
            .find(|word| {
                rest.get(..word.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(word))
            })
            .map(<[u8]>::len)
    }

    /// The end of an extension after a number ending at `end`, if any.
    fn extension(text: &str, end: usize) -> Option<usize> {
        let b = text.as_bytes();
        let mut j = end;
        if b.get(j) == Some(&b' ') {
            j += 1;
        }
        j += extension_marker(b, j)?;
        if matches!(b.get(j), Some(b' ' | b':')) {
            j += 1;
        }
        let digits = j;
        while is_digit_at(b, j) && j - digits < 7 {
            j += 1;
        }
        ((1..=6).contains(&(j - digits)) && !word_after(text, j)).then_some(j)
    }

    /// The first bytes of a list's words, as a 256-bit set: most word
    /// starts in a window are dismissed by one lookup.
    const fn first_bytes(keywords: &[(&[u8], bool)]) -> [u64; 4] {
        let mut set = [0u64; 4];
        let mut i = 0;
        while i < keywords.len() {
            let c = keywords[i].0[0] as usize;
            set[c / 64] |= 1 << (c % 64);
            i += 1;
        }
        set
    }

    const KEYWORD_FIRST: [u64; 4] = first_bytes(KEYWORDS);
    const OTHER_KEYWORD_FIRST: [u64; 4] = first_bytes(OTHER_KEYWORDS);

    fn in_set(set: &[u64; 4], c: u8) -> bool {
        set[usize::from(c / 64)] & (1 << (c % 64)) != 0
    }

    /// Whether one of `keywords` starts at `k` of the lower-cased window `w`.
    fn keyword_at(w: &[u8], k: usize, keywords: &[(&[u8], bool)]) -> bool {
        let c = w[k];
        keywords.iter().any(|&(kw, whole)| {
            let e = k + kw.len();
            kw[0] == c
                && w[k..].starts_with(kw)
                && !(whole
                    && w.get(e)
                        .is_some_and(|&c| c.is_ascii_alphabetic() || c >= 0x80))
        })
    }

    /// What the few bytes before `s` say (with no digit between them and
    /// `s`: a number in between was the subject): whether a phone word
    /// ([`KEYWORDS`]) and whether a word for another number
    /// ([`OTHER_KEYWORDS`]) stands there.
    fn said(b: &[u8], s: usize) -> (bool, bool) {
        let mut from = s.saturating_sub(CONTEXT);
        if let Some(last_digit) = b[from..s].iter().rposition(u8::is_ascii_digit) {
            from += last_digit + 1;
        }
        let window = &b[from..s];
        let mut lower = [0u8; CONTEXT];
        let w = &mut lower[..window.len()];
        for (l, c) in w.iter_mut().zip(window) {
            *l = c.to_ascii_lowercase();
        }
        let w = &*w;
        // A keyword counts in the same sentence only: no sentence end
        // between it and the number (a full stop after an abbreviation —
        // "Tel. 030 …", "Order no. 12…" — is not one; after a word it is:
        // "… commande. 06 12 …"). No keyword holds a sentence end, so one
        // that ends after the last sentence end also starts after it.
        let from = (0..w.len())
            .rev()
            .find(|&i| ends_sentence(w, i))
            .map_or(0, |i| i + 1);
        let (mut phone, mut other) = (false, false);
        for k in from..w.len() {
            let c = w[k];
            if k > 0 && w[k - 1].is_ascii_alphabetic() {
                continue;
            }
            phone = phone || in_set(&KEYWORD_FIRST, c) && keyword_at(w, k, KEYWORDS);
            other = other || in_set(&OTHER_KEYWORD_FIRST, c) && keyword_at(w, k, OTHER_KEYWORDS);
            if phone && other {
                break;
            }
        }
        (phone, other)
    }

    /// Whether the name of the field holding the text reaches a candidate
    /// at `s`, as a phone word written just before the value would: within
    /// [`CONTEXT`] of its start, no digit and no sentence end in between.
    fn field_said(b: &[u8], s: usize) -> bool {
        if s > CONTEXT || b[..s].iter().any(u8::is_ascii_digit) {
            return false;
        }
        let mut lower = [0u8; CONTEXT];
        let w = &mut lower[..s];
        for (l, c) in w.iter_mut().zip(b) {
            *l = c.to_ascii_lowercase();
        }
        !(0..s).any(|i| ends_sentence(w, i))
    }

    /// Whether a JSON field name holds one of `keywords` at the start of
    /// one of its words, camelCase and `_`/`-` separated ones included:
    /// `phone`, `phones`, `user_tlf`, `mobileNumber`, `TEL`; `orderId`.
    fn names(key: &str, keywords: &[(&[u8], bool)]) -> bool {
        let k = key.as_bytes();
        (0..k.len()).any(|i| {
            let word_start = i == 0
                || !k[i - 1].is_ascii_alphabetic()
                || k[i - 1].is_ascii_lowercase() && k[i].is_ascii_uppercase();
            word_start
                && keywords.iter().any(|&(kw, whole)| {
                    let e = i + kw.len();
                    k.get(i..e).is_some_and(|w| w.eq_ignore_ascii_case(kw))
                        && !(whole && k.get(e).is_some_and(|&c| continues_word(k[e - 1], c)))
                })
        })
    }

    /// Whether `c` after `prev` continues a word of a field name (a letter,
    /// but not an upper-case one after a lower-case one: `telNumber`).
    fn continues_word(prev: u8, c: u8) -> bool {
        c.is_ascii_lowercase() || c >= 0x80 || c.is_ascii_uppercase() && !prev.is_ascii_lowercase()
    }

    /// Abbreviations that a full stop follows inside a sentence (lower
    /// case).
    const ABBREVIATIONS: &[&[u8]] = &[
        b"tel",
        "t\u{e9}l".as_bytes(),
        b"telf",
        b"tfn",
        b"tlf",
        b"fax",
        b"mob",
        b"cel",
        b"ph",
        b"ref",
        b"nr",
        b"no",
        b"num",
        b"ext",
        b"inv",
        b"acct",
        b"kto",
        b"vs",
        b"ca",
        b"approx",
    ];

    /// Whether byte `i` of the lower-cased window `w` ends a sentence: `!`,
    /// `?`, a line break, or a full stop that does not close an
    /// abbreviation.
    fn ends_sentence(w: &[u8], i: usize) -> bool {
        match w[i] {
            b'!' | b'?' | b'\n' => true,
            b'.' => {
                let word_start = w[..i]
                    .iter()
                    .rposition(|c| !(c.is_ascii_alphabetic() || *c >= 0x80))
                    .map_or(0, |j| j + 1);
                !ABBREVIATIONS.contains(&&w[word_start..i])
            }
            _ => false,
        }
    }

    /// A Brazilian national number as written there: a two-digit area code
    /// (in parentheses or not) and an eight- or nine-digit number split by
    /// a hyphen before its last four digits ("63 6392-3321",
    /// "(11) 98765-4321").
    fn brazil(gs: &[Group], d: &[u8]) -> bool {
        let [area, local, last] = gs else {
            return false;
        };
        area.len == 2
            && d[0] != 0
            && d[1] != 0
            && !local.paren
            && !last.paren
            && (local.sep == b' ' || area.paren && local.sep == 0)
            && (4..=5).contains(&local.len)
            && last.sep == b'-'
            && last.len == 4
    }

    /// A North American number: area code and exchange not starting with
    /// 0 or 1.
    fn nanp(d: &[u8]) -> bool {
        d.len() == 10 && d[0] >= 2 && d[3] >= 2
    }

    /// The group's digits as a number, saturating: a run of ten digits or
    /// more is no day, month or year, and must not overflow.
    fn value(b: &[u8], g: &Group) -> u32 {
        b[g.start..g.start + g.len].iter().fold(0, |a: u32, &c| {
            a.saturating_mul(10).saturating_add(u32::from(c - b'0'))
        })
    }

    /// Whether the first three groups read as a date (d.m.y, m/d/y, y-m-d).
    fn is_date(b: &[u8], gs: &[Group]) -> bool {
        let [a, m, c, ..] = gs else {
            return false;
        };
        if a.paren || m.paren || c.paren || m.sep != c.sep || !matches!(m.sep, b'.' | b'/' | b'-') {
            return false;
        }
        let (x, y, z) = (value(b, a), value(b, m), value(b, c));
        let day_month = |p: u32, q: u32| (1..=31).contains(&p) && (1..=12).contains(&q);
        match (a.len, m.len, c.len) {
            (4, 1..=2, 1..=2) => day_month(z, y),
            (1..=2, 1..=2, 2 | 4) => day_month(x, y) || day_month(y, x),
            _ => false,
        }
    }

    /// A phone number starting at `s` (a `+`, a `(` or a digit); returns
    /// its end (after an extension, if any).
    ///
    /// Refused first: a number glued to a word or continued by `.`, `,`,
    /// `:`, `-` or `/` and a digit, or by `%`; one that reads as a date;
    /// more than one single-digit group. Then it has the structure of a
    /// phone number when, counting its digits without a `(0)` trunk after a
    /// country code, it is
    /// - `+` (or `(+CC)`) and a country code: 8–15 digits (10–15 without
    ///   separators, 7–9 when the plan of the country code takes them);
    /// - `00` and a country code: 10–17 digits;
    /// - a trunk `0` (in the first group of two or more digits, or in
    ///   parentheses): 8–13 digits in groups (eight only in three groups or
    ///   more; not a 5-4 ZIP+4), 10–12 without separators;
    /// - North American: `NXX-NXX-XXXX` with one kind of separator, with or
    ///   without a leading `1`, or `(NXX) NXX-XXXX`, area code and exchange
    ///   not starting with 0 or 1;
    /// - Brazilian: `AA NNNN-NNNN`, `(AA) NNNNN-NNNN`.
    ///
    /// Short of that, a national number of a region's plan (`plan`): 9–11
    /// digits in a run not starting with 1, or 8–12 (14 after a trunk `0`)
    /// in two to five groups — not thousands (`12 345 678`, `123 456 789`),
    /// not dotted but as `202.555.0143`, two groups only with a space and
    /// not two years; with `regions` (the policy's `phone_regions`), also
    /// a run of 8–12 digits that one of them takes.
    ///
    /// Without either a phone word must precede it, and it must have 7–15
    /// digits in groups or 8–12 without separators (not starting with 1
    /// unless it is `1` and a North American number).
    pub(super) fn at(text: &str, s: usize, phones: Phones<'_>) -> Option<usize> {
        let regions = phones.regions;
        let b = text.as_bytes();
        // "(+358) 9…": a country code in parentheses.
        let paren_plus = b[s] == b'(' && b.get(s + 1) == Some(&b'+');
        let plus = b[s] == b'+' || paren_plus;
        let mut i = s + usize::from(plus) + usize::from(paren_plus);
        let mut groups = [Group::default(); MAX_GROUPS];
        let mut g = 0;
        let mut total = 0;
        let mut end = s;
        let mut sep = 0u8;
        loop {
            let start = i;
            let (len, paren) = if b.get(i) == Some(&b'(') {
                let mut j = i + 1;
                while is_digit_at(b, j) && j - i <= 5 {
                    j += 1;
                }
                if j == i + 1 || j - i > 6 || b.get(j) != Some(&b')') {
                    break;
                }
                i = j + 1;
                (j - start - 1, true)
            } else if is_digit_at(b, i) {
                while is_digit_at(b, i) && i - start <= MAX_DIGITS {
                    i += 1;
                }
                (i - start, false)
            } else {
                break;
            };
            let group_start = start + usize::from(paren);
            let paren = if paren_plus && g == 0 {
                if b.get(i) != Some(&b')') || !(1..=3).contains(&len) {
                    return None;
                }
                i += 1;
                true
            } else {
                paren
            };
            total += len;
            if g == MAX_GROUPS || total > MAX_DIGITS {
                return None;
            }
            groups[g] = Group {
                start: group_start,
                len,
                paren,
                sep,
            };
            g += 1;
            end = i;
            let (next_sep, next) = separator(b, i);
            let continues = match b.get(next) {
                Some(c) if c.is_ascii_digit() => next_sep != 0,
                // "+44(0)20", "(0)20": a parenthesized group needs no separator.
                Some(b'(') => true,
                _ => false,
            };
            let after_paren = paren && next_sep == 0 && is_digit_at(b, next);
            if !(continues || after_paren) {
                break;
            }
            sep = next_sep;
            i = next;
        }
        if g == 0 {
            return None;
        }
        let gs = &groups[..g];
        let fin = extension(text, end).unwrap_or(end);
        if word_after(text, fin)
            || matches!(b.get(fin), Some(b'.' | b',' | b':' | b'-' | b'/'))
                && is_digit_at(b, fin + 1)
            // A UUID's first group ("22137873-b5bb-…").
            || b.get(fin) == Some(&b'-') && b.get(fin + 1).is_some_and(u8::is_ascii_alphanumeric)
            || b.get(fin) == Some(&b'%')
        {
            return None;
        }
        if !plus && is_date(b, gs) {
            return None;
        }

        // The digits, without a "(0)" trunk prefix after a country code.
        let mut d = [0u8; MAX_DIGITS];
        let mut n = 0;
        for (k, grp) in gs.iter().enumerate() {
            let trunk_zero = k > 0 && grp.paren && grp.len == 1 && b[grp.start] == b'0';
            if trunk_zero {
                continue;
            }
            for &c in &b[grp.start..grp.start + grp.len] {
                d[n] = c - b'0';
                n += 1;
            }
        }
        let d = &d[..n];
        let first = gs[0];
        let contiguous = g == 1;
        let lens = |want: &[usize]| {
            gs.len() == want.len() && gs.iter().zip(want).all(|(x, &w)| x.len == w && !x.paren)
        };
        let same_seps = |from: usize| gs[from..].windows(2).all(|w| w[0].sep == w[1].sep);

        // Single-digit groups are rare in phone numbers (a country code,
        // the NANP "1", "+33 1 …" aside): a run of them is something else.
        let singles = gs
            .iter()
            .skip(1)
            .filter(|x| x.len == 1 && !(x.paren && b[x.start] == b'0'))
            .count();
        if singles > 1 {
            return None;
        }

        let mut ascii = [0u8; MAX_DIGITS];
        for (a, &x) in ascii.iter_mut().zip(d) {
            *a = x + b'0';
        }
        let ascii = &ascii[..n];
        let structured = if plus {
            d[0] != 0
                && if contiguous {
                    // Short E.164 numbers ("+468123188") by the plan of
                    // the country code.
                    (10..=15).contains(&n) || (7..=9).contains(&n) && plan::international(ascii)
                } else {
                    (8..=15).contains(&n)
                }
        } else if n >= 3 && d[0] == 0 && d[1] == 0 {
            // The international call prefix.
            d[2] != 0 && (10..=17).contains(&n)
        } else if first.paren {
            if d[0] == 0 {
                first.len >= 2 && (8..=12).contains(&n)
            } else {
                first.len == 3
                    && nanp(d)
                    && (gs[1..].iter().map(|x| x.len).eq([3, 4])
                        || gs[1..].iter().map(|x| x.len).eq([7]))
                    || brazil(gs, d)
            }
        } else if brazil(gs, d) {
            true
        } else if d[0] == 0 && first.len > 1 {
            if contiguous {
                (10..=12).contains(&n)
            } else {
                // Eight digits in two groups is a code ("0317-8471"), not
                // a number with an area code, and 5-4 with a hyphen a ZIP+4
                // code ("06127-8418"); up to 13 digits ("06571/33162885",
                // Austria).
                (8..=13).contains(&n) && (n > 8 || g > 2) && !(lens(&[5, 4]) && gs[1].sep == b'-')
            }
        } else {
            // North American numbers without a trunk prefix.
            (lens(&[3, 3, 4]) && same_seps(1) && nanp(d))
                || (lens(&[1, 3, 3, 4]) && same_seps(2) && d[0] == 1 && nanp(&d[1..]))
                || (g >= 3
                    && first.len == 1
                    && d[0] == 1
                    && gs[1].paren
                    && gs[1].len == 3
                    && nanp(&d[1..])
                    && (gs[2..].iter().map(|x| x.len).eq([3, 4])
                        || gs[2..].iter().map(|x| x.len).eq([7])))
        };
        let plausible = if contiguous {
            (8..=12).contains(&n) && (d[0] != 1 || n == 11 && nanp(&d[1..]))
        } else {
            (7..=15).contains(&n)
        };
        let international = plus || n >= 2 && d[0] == 0 && d[1] == 0;
        // Short of that structure, a national number of some region's
        // numbering plan (`plan`) in the shape of a phone number: 9–11
        // digits in a run (not starting with 1: epoch seconds), or 8–12 in
        // two to five groups that do not read as thousands ("12 345 678",
        // "123 456 789").
        let planned = !structured && !international && {
            let thousands = !first.paren
                && first.len <= 3
                && g > 1
                && gs[1..].iter().all(|x| x.len == 3 && !x.paren)
                && same_seps(1)
                && matches!(gs[1].sep, b' ' | b'.')
                && (first.len < 3 || d[0] == 1);
            let year = |x: &Group| x.len == 4 && (1900..=2099).contains(&value(b, x));
            // Two groups: "3533 7406", "(11) 23456789" — not "2020 - 2014",
            // "95567-0909" (a postcode) or "29.935484".
            let pair_ok = match gs {
                [a, b2] => a.paren || b2.sep == b' ' && !(year(a) && year(b2)),
                _ => true,
            };
            // Dots only as in "202.555.0143" (not "38.24.22.11.26").
            let dots_ok =
                !gs[1..].iter().any(|x| x.sep == b'.') || lens(&[3, 3, 4]) && same_seps(1);
            let shaped = if contiguous {
                // (Eight digits alone are as often a postcode — Brazil's
                // CEP — as a Danish or Norwegian number: those need a
                // phone word.)
                (9..=11).contains(&n) && d[0] != 1
                    || (8..=12).contains(&n) && plan::national_in(ascii, regions)
            } else {
                // A trunk prefix and up to 13 digits after it (Austria,
                // Germany).
                let max = if d[0] == 0 { 14 } else { 12 };
                (8..=max).contains(&n) && g <= 5 && !thousands && dots_ok && pair_ok
            };
            shaped && (plan::national(ascii) || plan::national_in(ascii, regions))
        };
        if !(structured || planned || plausible) {
            return None;
        }
        // (Seven digits or more from here.)
        // A national number after "order", "invoice", "account"… is that
        // number; otherwise a phone word just before a number without the
        // structure of one must vouch for it.
        // The field's name is context too: `"phone": "21289693"` as after
        // "Tel.", `"order_id": "0612345678"` as after "order" (unless the
        // name also has a phone word: `customer_phone`).
        // (An international number needs neither: the words are read only
        // when they decide.)
        let words = || {
            let (field_phone, field_other) = if phones.field.is_empty() || !field_said(b, s) {
                (false, false)
            } else {
                let phone = names(phones.field, KEYWORDS);
                (phone, !phone && names(phones.field, OTHER_KEYWORDS))
            };
            let (said_phone, said_other) = said(b, s);
            (field_phone || said_phone, field_other || said_other)
        };
        let ok = if structured || planned {
            international || {
                let (phone_word, other_word) = words();
                !other_word || phone_word
            }
        } else {
            let (phone_word, other_word) = words();
            phone_word && !other_word
        };
        ok.then_some(fin)
    }
}
