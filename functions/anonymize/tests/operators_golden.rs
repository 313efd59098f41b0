//! Golden outputs for every operator. The pseudonyms and tokens come from an
//! independent Python reference (`testdata/operators_golden.py`, standard
//! `hmac`/`hashlib` and `cryptography`'s HKDF and AESSIV), committed as
//! `testdata/operators_golden.json`; the rest are written out by hand.

#![allow(clippy::unwrap_used)]
// Expected token positions are written as one-range arrays.
#![allow(clippy::single_range_in_vec_init)]

use anonymize::operators::{
    Keys, Operator, OperatorError, apply, decrypt_token, derive_siv_key, find_tokens, normalize,
    pseudonym,
};
use proptest::prelude::*;
use serde_json::Value;

const GOLDEN: &str = include_str!("../testdata/operators_golden.json");

fn golden() -> Value {
    serde_json::from_str(GOLDEN).unwrap()
}

fn golden_keys() -> Keys {
    let g = golden();
    Keys::new(
        g["salt"].as_str().unwrap().as_bytes(),
        Some(g["secret"].as_str().unwrap().as_bytes()),
    )
}

fn keys() -> Keys {
    Keys::new(b"salt", Some(b"secret"))
}

fn op(text: &str) -> Operator {
    text.parse().unwrap()
}

fn run(operator: &Operator, entity: &str, value: &str) -> Result<String, OperatorError> {
    let mut out = String::new();
    apply(operator, entity, value, &keys(), &mut out).map(|()| out)
}

/// Checks `(input, expected)` pairs under one operator.
fn check(operator: &str, entity: &str, cases: &[(&str, &str)]) {
    let operator = op(operator);
    for (input, expected) in cases {
        assert_eq!(
            run(&operator, entity, input).as_deref(),
            Ok(*expected),
            "{operator} on {entity} {input:?}"
        );
    }
}

fn not_applicable(operator: &str, entity: &str, inputs: &[&str]) {
    let operator = op(operator);
    let name = operator.name();
    for input in inputs {
        assert_eq!(
            run(&operator, entity, input),
            Err(OperatorError::NotApplicable { operator: name }),
            "{operator} on {input:?}"
        );
    }
}

// --- Keep, redact, tag, mask -------------------------------------------------

#[test]
fn keep_and_redact() {
    for (entity, value) in [("email", "a@b.org"), ("ipv4", "203.0.113.77"), ("x", "")] {
        assert_eq!(run(&Operator::Keep, entity, value).unwrap(), value);
        assert_eq!(run(&Operator::Redact, entity, value).unwrap(), "");
    }
}

#[test]
fn tag_golden() {
    for (entity, tag) in [
        ("email", "<EMAIL>"),
        ("ipv4", "<IPV4>"),
        ("ipv6", "<IPV6>"),
        ("phone", "<PHONE>"),
        ("card", "<CARD>"),
        ("iban", "<IBAN>"),
        ("jwt", "<JWT>"),
        ("api_key", "<API_KEY>"),
        ("employee-id", "<EMPLOYEE_ID>"),
        ("user.name", "<USER_NAME>"),
        ("Straße", "<STRA_E>"),
    ] {
        assert_eq!(run(&Operator::Tag, entity, "whatever").unwrap(), tag);
    }
}

#[test]
fn mask_golden() {
    check(
        "mask",
        "card",
        &[
            ("4111 1111 1111 1111", "**** **** **** 1111"),
            ("4111-1111-1111-1111", "****-****-****-1111"),
        ],
    );
    check(
        "mask(4)",
        "email",
        &[("john.doe@example.com", "****.***@******e.com")],
    );
    check(
        "mask(2)",
        "phone",
        &[("+49 (30) 123-4567", "+** (**) ***-**67")],
    );
    check(
        "mask(4)",
        "ipv4",
        &[
            ("203.0.113.77", "***.*.*13.77"),
            ("2001:db8::1", "****:db8::1"),
        ],
    );
    check(
        "mask(3)",
        "custom",
        &[
            ("Zoë Ångström", "*** *****röm"),
            ("日本語テキスト", "****キスト"),
        ],
    );
    check(
        "mask(4)",
        "x",
        &[
            // No more letters and digits than would be shown: all masked.
            ("1234", "****"),
            ("12-3", "**-*"),
            ("12345", "*2345"),
            ("", ""),
            ("--/ ", "--/ "),
            ("a_b#c", "*_*#*"),
        ],
    );
    check("mask(0)", "x", &[("abc 12", "*** **")]);
}

// --- Pseudonyms (Python reference) --------------------------------------------

#[test]
fn hash_matches_python_reference() {
    let g = golden();
    let keys = golden_keys();
    let cases = g["hash"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let entity = case["entity"].as_str().unwrap();
        let value = case["value"].as_str().unwrap();
        let expected = case["pseudonym"].as_str().unwrap();
        assert_eq!(
            normalize(entity, value),
            case["normalized"].as_str().unwrap(),
            "normalize {entity} {value:?}"
        );
        assert_eq!(
            pseudonym(&keys, entity, value),
            expected,
            "{entity} {value:?}"
        );
        let mut out = String::from("prefix ");
        apply(&Operator::Hash, entity, value, &keys, &mut out).unwrap();
        assert_eq!(out, format!("prefix {expected}"));
    }
}

#[test]
fn hash_format_and_normalization_merge_spellings() {
    let keys = keys();
    let p = pseudonym(&keys, "email", "Jane@Example.org");
    assert_eq!(p.len(), 32);
    assert!(
        p.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(p, pseudonym(&keys, "email", "jane@example.ORG"));
    // No domain separation: the same text is the same pseudonym anywhere.
    assert_eq!(
        pseudonym(&keys, "email", "jane@example.org"),
        pseudonym(&keys, "field", "jane@example.org")
    );
    assert_ne!(
        p,
        pseudonym(&Keys::new(b"other salt", None), "email", "jane@example.org")
    );
    assert_eq!(
        pseudonym(&keys, "phone", "+49 30 123"),
        pseudonym(&keys, "phone", "+49-30-123")
    );
    assert_eq!(
        pseudonym(&keys, "ipv6", "2001:DB8:0::1"),
        pseudonym(&keys, "ipv6", "2001:db8::1")
    );
    // Works without an encryption key.
    assert_eq!(
        pseudonym(&Keys::new(b"salt", None), "email", "jane@example.org"),
        pseudonym(&keys, "email", "jane@example.org")
    );
}

// --- IP truncation --------------------------------------------------------------

#[test]
fn truncate_golden() {
    check(
        "truncate",
        "ip",
        &[
            ("203.0.113.77", "203.0.113.0"),
            (" 10.1.2.3 ", "10.1.2.0"),
            ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
            ("2001:0DB8:85A3:FFFF::1", "2001:db8:85a3::"),
            ("::1", "::"),
            ("::ffff:203.0.113.77", "::ffff:203.0.113.0"),
            ("::FFFF:cb00:714d", "::ffff:203.0.113.0"),
        ],
    );
    check(
        "truncate(16,32)",
        "ip",
        &[
            ("203.0.113.77", "203.0.0.0"),
            ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8::"),
            ("::ffff:203.0.113.77", "::ffff:203.0.0.0"),
        ],
    );
    check(
        "truncate(20,52)",
        "ip",
        &[
            ("203.0.113.77", "203.0.112.0"),
            ("2001:db8:85a3:f8d3:1319::", "2001:db8:85a3:f000::"),
        ],
    );
    check(
        "truncate(32,128)",
        "ip",
        &[
            ("203.0.113.77", "203.0.113.77"),
            ("2001:0db8::0001", "2001:db8::1"),
        ],
    );
    check(
        "truncate(0,0)",
        "ip",
        &[("203.0.113.77", "0.0.0.0"), ("2001:db8::1", "::")],
    );
    not_applicable(
        "truncate",
        "ipv4",
        &[
            "",
            "not an ip",
            "203.0.113",
            "203.0.113.256",
            "203.000.113.77",
            "[::1]",
            "203.0.113.77:80",
            "fe80::1%eth0",
            "2001:db8::1::2",
        ],
    );
    assert_eq!(
        run(
            &Operator::TruncateIp {
                v4_prefix: 33,
                v6_prefix: 48
            },
            "ipv4",
            "1.2.3.4"
        ),
        Err(OperatorError::InvalidParameter {
            operator: "truncate"
        })
    );
}

// --- Generalization ---------------------------------------------------------------

#[test]
fn date_golden() {
    check(
        "generalize_date",
        "date",
        &[
            ("2024-03-15", "2024-03"),
            ("2024-03-15T12:30:45Z", "2024-03"),
            ("2024-03-15 12:30:45+02:00", "2024-03"),
            ("2024-03-31T23:30:00.250-02:00", "2024-03"),
            ("2024-03", "2024-03"),
            ("2024/03/15", "2024-03"),
            ("15.03.2024", "2024-03"),
            ("5.3.2024", "2024-03"),
            ("15.03.2024 08:00", "2024-03"),
            (" 2024-02-29 ", "2024-02"),
            ("2000-02-29", "2000-02"),
            ("0001-01-01", "0001-01"),
            ("1999-12-31T23:59:60+1400", "1999-12"),
        ],
    );
    not_applicable(
        "month",
        "date",
        &[
            "",
            "2024",
            "2024-3-15",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2023-02-29",
            "1900-02-29",
            "2024-03-00",
            "03/15/2024",
            "15/03/2024",
            "2024-03-15T25:00",
            "2024-03-15T12:30:45+25:00",
            "2024-03-15T12:30:45 UTC",
            "2024-03-15X",
            "32.01.2024",
            "15.03.24",
            "1710505845",
            "March 15, 2024",
        ],
    );
}

#[test]
fn range_golden() {
    check(
        "range(10)",
        "age",
        &[
            ("37", "[30,40)"),
            ("30", "[30,40)"),
            ("39.999", "[30,40)"),
            ("40", "[40,50)"),
            ("0", "[0,10)"),
            ("-0", "[0,10)"),
            ("-3", "[-10,0)"),
            ("-10", "[-10,0)"),
            ("-10.5", "[-20,-10)"),
            (" 42 ", "[40,50)"),
            ("+7", "[0,10)"),
            ("1e3", "[1000,1010)"),
            ("3.7E1", "[30,40)"),
            (
                "123456789012345678901234567890",
                "[123456789012345678901234567890,123456789012345678901234567900)",
            ),
        ],
    );
    check(
        "range(0.5)",
        "x",
        &[
            ("37.25", "[37.0,37.5)"),
            ("37.5", "[37.5,38.0)"),
            ("-0.01", "[-0.5,0.0)"),
        ],
    );
    check(
        "range(2.5)",
        "x",
        &[("7", "[5.0,7.5)"), ("-7", "[-7.5,-5.0)")],
    );
    check(
        "range(0.1)",
        "x",
        &[("0.3", "[0.3,0.4)"), ("-0.01", "[-0.1,0.0)")],
    );
    check("range(1000)", "x", &[("123456.789", "[123000,124000)")]);
    not_applicable(
        "range(10)",
        "age",
        &[
            "", "abc", "1,5", "0x10", "1e", "NaN", "inf", "12 years", "--1", "1e999999",
        ],
    );
}

#[test]
fn grid_golden() {
    check(
        "grid(0.01)",
        "coordinate",
        &[
            ("52.51638", "52.51"),
            ("-13.37777", "-13.38"),
            ("52.51", "52.51"),
            ("0", "0.00"),
            ("-0.001", "-0.01"),
            ("180", "180.00"),
            ("-180", "-180.00"),
            ("52.51638,13.37777", "52.51,13.37"),
            ("52.51638, -13.37777", "52.51, -13.38"),
            ("-90 , 180", "-90.00 , 180.00"),
        ],
    );
    check(
        "grid(0.25)",
        "x",
        &[("52.51638", "52.50"), ("-0.1", "-0.25")],
    );
    check("grid(1)", "x", &[("52.9", "52"), ("-0.5", "-1")]);
    check("grid(5)", "x", &[("13.4", "10"), ("52.5,13.4", "50,10")]);
    check("grid(0.001)", "x", &[("48.8583701", "48.858")]);
    not_applicable(
        "grid(0.01)",
        "coordinate",
        &[
            "",
            "abc",
            "180.001",
            "-180.5",
            "91,0",
            "0,181",
            "1,2,3",
            "52.5;13.4",
            "52.5 13.4",
            "52°30'N",
        ],
    );
}

// --- Encryption ------------------------------------------------------------------

#[test]
fn encrypt_matches_python_reference() {
    let g = golden();
    let keys = golden_keys();
    assert_eq!(
        hex(&derive_siv_key(g["secret"].as_str().unwrap().as_bytes())),
        g["siv_key_hex"].as_str().unwrap()
    );
    let cases = g["encrypt"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let value = case["value"].as_str().unwrap();
        let token = case["token"].as_str().unwrap();
        let mut out = String::new();
        apply(&Operator::Encrypt, "field", value, &keys, &mut out).unwrap();
        assert_eq!(out, token, "{value:?}");
        assert_eq!(decrypt_token(&keys, token).unwrap(), value);
        assert_eq!(find_tokens(token).collect::<Vec<_>>(), vec![0..token.len()]);
    }
    // Tokens of the first format (`ENC1_`, no end mark) still decrypt.
    let legacy = g["legacy_encrypt"].as_array().unwrap();
    assert!(!legacy.is_empty());
    for case in legacy {
        let token = case["token"].as_str().unwrap();
        assert!(token.starts_with("ENC1_"), "{token}");
        assert_eq!(
            decrypt_token(&keys, token).unwrap(),
            case["value"].as_str().unwrap()
        );
        assert_eq!(find_tokens(token).collect::<Vec<_>>(), vec![0..token.len()]);
    }
}

#[test]
fn encrypt_is_deterministic_and_ignores_entity() {
    let keys = keys();
    let a = run(&Operator::Encrypt, "email", "jane@example.org").unwrap();
    let b = run(&Operator::Encrypt, "field", "jane@example.org").unwrap();
    assert_eq!(a, b);
    assert!(a.starts_with("ENC2_") && a.ends_with('~'));
    // 16-byte tag + 16 bytes: 32 bytes, 43 base64url characters.
    assert_eq!(a.len(), 5 + 43 + 1);
    // Not normalized: the exact value comes back.
    assert_ne!(
        a,
        run(&Operator::Encrypt, "email", "Jane@example.org").unwrap()
    );
    assert_eq!(decrypt_token(&keys, &a).unwrap(), "jane@example.org");
}

#[test]
fn encryption_needs_a_key() {
    let keys = Keys::new(b"salt", None);
    assert!(!keys.has_encryption_key());
    assert!(!Keys::new(b"salt", Some(b"")).has_encryption_key());
    let mut out = String::from("kept");
    assert_eq!(
        apply(&Operator::Encrypt, "email", "a@b.org", &keys, &mut out),
        Err(OperatorError::NoEncryptionKey)
    );
    assert_eq!(out, "kept");
    let token = run(&Operator::Encrypt, "email", "a@b.org").unwrap();
    assert_eq!(
        decrypt_token(&keys, &token),
        Err(OperatorError::NoEncryptionKey)
    );
}

#[test]
fn tampered_and_foreign_tokens_are_rejected() {
    let keys = keys();
    let token = run(&Operator::Encrypt, "email", "john.doe@example.com").unwrap();
    // Another secret: well-formed, not authentic.
    let other = Keys::new(b"salt", Some(b"another secret"));
    assert_eq!(
        decrypt_token(&other, &token),
        Err(OperatorError::TokenRejected)
    );
    // Every single-character change of the payload fails.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 5..token.len() - 1 {
        for &replacement in ALPHABET {
            if token.as_bytes()[i] == replacement {
                continue;
            }
            let mut altered = token.clone().into_bytes();
            altered[i] = replacement;
            let altered = String::from_utf8(altered).unwrap();
            let result = decrypt_token(&keys, &altered);
            assert!(
                matches!(
                    result,
                    Err(OperatorError::TokenRejected | OperatorError::MalformedToken)
                ),
                "{altered}: {result:?}"
            );
        }
    }
    // The tag's first byte changed: well-formed, rejected.
    let mut altered = token.clone().into_bytes();
    altered[5] = if altered[5] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        decrypt_token(&keys, std::str::from_utf8(&altered).unwrap()),
        Err(OperatorError::TokenRejected)
    );
    // Shortened by three bytes (four characters): rejected.
    assert_eq!(
        decrypt_token(&keys, &format!("{}~", &token[..token.len() - 5])),
        Err(OperatorError::TokenRejected)
    );
    // Without its end mark, or in the first format's spelling: malformed,
    // or not authentic.
    assert_eq!(
        decrypt_token(&keys, &token[..token.len() - 1]),
        Err(OperatorError::MalformedToken)
    );
    for malformed in [
        "",
        "ENC1_",
        "ENC1_AAAA",
        "ENC2_AAAAAAAAAAAAAAAAAAAAAA",
        "ENC2_AAAAAAAAAAAAAAAAAAAAAA~~",
        "ENC2_AAAAAAAAAAAAAAAAAAAAA~",
        "ENC1_AAAAAAAAAAAAAAAAAAAAAA~",
        "enc1_AAAAAAAAAAAAAAAAAAAAAA",
        "enc2_AAAAAAAAAAAAAAAAAAAAAA~",
        "ENC1_AAAAAAAAAAAAAAAAAAAAAA==",
        "ENC1_AAAAAAAAAAAAAAAAAAAAA",
        "ENC1_AAAAAAAAAAAAAAAAAAAAA+",
        "ENC1_AAAAAAAAAAAAAAAAAAAAAB", // non-zero trailing bits
    ] {
        assert_eq!(
            decrypt_token(&keys, malformed),
            Err(OperatorError::MalformedToken),
            "{malformed}"
        );
    }
    assert_eq!(
        decrypt_token(&keys, &format!(" {token}")),
        Err(OperatorError::MalformedToken)
    );
}

/// The first format's tokens, `ENC1_` and base64url: `body` of a new
/// token as one.
fn legacy(token: &str) -> String {
    format!("ENC1_{}", &token[5..token.len() - 1])
}

#[test]
fn find_tokens_matches_whole_tokens_only() {
    let a = run(&Operator::Encrypt, "x", "alice").unwrap();
    let b = run(&Operator::Encrypt, "x", "bob@example.org").unwrap();
    let ranges = |text: &str| find_tokens(text).collect::<Vec<_>>();
    let text = format!(r#"{{"a":"{a}","b":"{b}"}} and {a}. ({b})"#);
    let found: Vec<&str> = find_tokens(&text).map(|r| &text[r]).collect();
    assert_eq!(found, [&a, &b, &a, &b]);
    // Too short, a length base64 cannot have, or no end mark.
    assert!(ranges("ENC2_AAAAAAAAAAAAAAAAAAAAA~").is_empty());
    assert!(ranges("ENC2_AAAAAAAAAAAAAAAAAAAAAAAAA~").is_empty());
    assert!(ranges("ENC2_AAAAAAAAAAAAAAAAAAAAAA").is_empty());
    assert!(ranges("ENC2_AAAAAAAAAAAAAAAAAAAAAA x~").is_empty());
    assert!(ranges("ENC2_ nothing~").is_empty());
    // Non-ASCII neighbours are fine.
    let text = format!("é{a}ü");
    assert_eq!(ranges(&text), [2..2 + a.len()]);
}

/// Issue 18: a token is found again whatever touches it — a letter, a
/// digit, `-`, `_`, `~`, or another token on either side.
#[test]
fn tokens_are_found_whatever_touches_them() {
    let keys = keys();
    let a = run(&Operator::Encrypt, "x", "13.51.100.23").unwrap();
    let b = run(&Operator::Encrypt, "x", "+47 21 28 96 93").unwrap();
    for (before, after) in [
        ("-", ""),
        ("_", ""),
        ("x", ""),
        ("9", ""),
        ("", "x"),
        ("", "7"),
        ("", "-"),
        ("", "_"),
        ("", "~"),
        ("ENC2", "ENC"),
        ("ENC1_", ""),
        ("a-", "_b"),
    ] {
        let text = format!("{before}{a}{after}");
        let found: Vec<&str> = find_tokens(&text).map(|r| &text[r]).collect();
        assert_eq!(found, [&a], "{text}");
    }
    for text in [format!("{a}{b}"), format!("{a}{b}{a}"), format!("x{a}{b}y")] {
        let found: Vec<String> = find_tokens(&text)
            .map(|r| decrypt_token(&keys, &text[r]).unwrap())
            .collect();
        assert!(found.len() >= 2, "{text}");
        assert!(
            found
                .iter()
                .all(|v| v == "13.51.100.23" || v == "+47 21 28 96 93")
        );
    }
}

/// Tokens of the first format (`ENC1_`, no end mark) are still found and
/// reversed where that is unambiguous: apart from word characters, and
/// beside tokens of the new format.
#[test]
fn first_format_tokens_are_read_where_unambiguous() {
    let keys = keys();
    let a = run(&Operator::Encrypt, "x", "alice").unwrap();
    let b = run(&Operator::Encrypt, "x", "bob").unwrap();
    let old = legacy(&a);
    assert_eq!(decrypt_token(&keys, &old).unwrap(), "alice");
    let ranges = |text: &str| find_tokens(text).collect::<Vec<_>>();
    let text = format!("({old}) {b} {old}.");
    let found: Vec<&str> = find_tokens(&text).map(|r| &text[r]).collect();
    assert_eq!(found, [old.as_str(), &b, &old]);
    // Right after a new token, whose `~` ends it: unambiguous.
    let text = format!("{b}{old}");
    let found: Vec<&str> = find_tokens(&text).map(|r| &text[r]).collect();
    assert_eq!(found, [b.as_str(), &old]);
    // Glued to a preceding word character: not a token.
    assert!(ranges(&format!("x{old}")).is_empty());
    assert!(ranges(&format!("_{old}")).is_empty());
    // Followed by more token characters: taken in whole, and then it fails.
    let glued = format!("{old}xyz");
    assert_eq!(ranges(&glued), [0..glued.len()]);
    assert!(decrypt_token(&keys, &glued).is_err());
    assert!(ranges("ENC1_AAAAAAAAAAAAAAAAAAAAA").is_empty());
    assert!(ranges("ENC1_AAAAAAAAAAAAAAAAAAAAAAAAA").is_empty());
    assert!(ranges("ENC1_ nothing").is_empty());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

proptest! {
    #[test]
    fn encrypt_round_trips(value in any::<String>(), before in "[ .,;:\"'(){}\\[\\]a-zA-Z0-9_~-]{0,3}", after in "[ .,;:\"'(){}\\[\\]a-zA-Z0-9_~-]{0,3}") {
        let keys = keys();
        let mut token = String::new();
        apply(&Operator::Encrypt, "field", &value, &keys, &mut token).unwrap();
        let body = token.strip_prefix("ENC2_").and_then(|t| t.strip_suffix('~')).unwrap();
        prop_assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(decrypt_token(&keys, &token).unwrap(), value.clone());
        let text = format!("{before}{token}{after}");
        let found: Vec<_> = find_tokens(&text).collect();
        prop_assert_eq!(found, vec![before.len()..before.len() + token.len()]);
        // Deterministic.
        let mut again = String::new();
        apply(&Operator::Encrypt, "email", &value, &keys, &mut again).unwrap();
        prop_assert_eq!(again, token);
    }

    #[test]
    fn long_values_round_trip(value in "\\PC{200,600}") {
        let keys = keys();
        let mut token = String::new();
        apply(&Operator::Encrypt, "field", &value, &keys, &mut token).unwrap();
        prop_assert_eq!(decrypt_token(&keys, &token).unwrap(), value);
    }

    #[test]
    fn mask_keeps_length_and_separators(value in "\\PC{0,40}", keep in 0usize..8) {
        let out = run(&Operator::Mask { keep_last: keep }, "x", &value).unwrap();
        prop_assert_eq!(out.chars().count(), value.chars().count());
        for (a, b) in value.chars().zip(out.chars()) {
            if a.is_alphanumeric() {
                prop_assert!(b == '*' || b == a);
            } else {
                prop_assert_eq!(a, b);
            }
        }
        let shown = out.chars().filter(|c| c.is_alphanumeric()).count();
        prop_assert!(shown <= keep);
    }

    #[test]
    fn range_contains_value(n in -1_000_000i64..1_000_000, width in 1i64..1000) {
        let out = run(&Operator::GeneralizeNumber { width: width as f64 }, "x", &n.to_string()).unwrap();
        let inner = out.strip_prefix('[').unwrap().strip_suffix(')').unwrap();
        let (lo, hi) = inner.split_once(',').unwrap();
        let (lo, hi): (i64, i64) = (lo.parse().unwrap(), hi.parse().unwrap());
        prop_assert!(lo <= n && n < hi);
        prop_assert_eq!(hi - lo, width);
        prop_assert_eq!(lo.rem_euclid(width), 0);
    }
}

// --- Policy text ------------------------------------------------------------------

#[test]
fn parse_and_display() {
    let cases = [
        ("keep", Operator::Keep, "keep"),
        ("redact", Operator::Redact, "redact"),
        ("tag", Operator::Tag, "tag"),
        ("mask", Operator::Mask { keep_last: 4 }, "mask(4)"),
        (" mask( 2 ) ", Operator::Mask { keep_last: 2 }, "mask(2)"),
        ("hash", Operator::Hash, "hash"),
        ("HASH", Operator::Hash, "hash"),
        (
            "truncate",
            Operator::TruncateIp {
                v4_prefix: 24,
                v6_prefix: 48,
            },
            "truncate(24,48)",
        ),
        (
            "truncate(16, 32)",
            Operator::TruncateIp {
                v4_prefix: 16,
                v6_prefix: 32,
            },
            "truncate(16,32)",
        ),
        (
            "generalize_date",
            Operator::GeneralizeDate,
            "generalize_date",
        ),
        ("month", Operator::GeneralizeDate, "generalize_date"),
        (
            "range(10)",
            Operator::GeneralizeNumber { width: 10.0 },
            "range(10)",
        ),
        (
            "range(0.5)",
            Operator::GeneralizeNumber { width: 0.5 },
            "range(0.5)",
        ),
        (
            "grid(0.01)",
            Operator::GeneralizeCoordinate { grid: 0.01 },
            "grid(0.01)",
        ),
        ("encrypt", Operator::Encrypt, "encrypt"),
    ];
    for (text, expected, display) in cases {
        let parsed = Operator::parse(text).unwrap();
        assert_eq!(parsed, expected, "{text}");
        assert_eq!(parsed.to_string(), display);
        assert_eq!(display.parse::<Operator>().unwrap(), expected);
    }
}

#[test]
fn parse_errors_say_what_is_wrong() {
    let err = |text: &str| Operator::parse(text).unwrap_err();
    assert_eq!(
        err("hsah"),
        "unknown operator `hsah`; expected one of keep, redact, tag, mask, mask(n), hash, \
         truncate, truncate(v4,v6), generalize_date, month, range(width), grid(step), encrypt"
    );
    assert_eq!(err("range(0)"), "range width must be > 0");
    assert_eq!(err("range(-5)"), "range width must be > 0");
    assert_eq!(err("range(inf)"), "range width must be > 0");
    assert_eq!(err("range(x)"), "range width must be a number, got `x`");
    assert!(err("range").contains("range(10)"));
    assert!(err("range(1e-30)").contains("at most 18 decimals"));
    assert_eq!(err("grid(0)"), "grid must be > 0");
    assert!(err("mask(x)").starts_with("mask: expected"));
    assert!(err("mask(-1)").starts_with("mask: expected"));
    assert_eq!(
        err("truncate(33,48)"),
        "truncate: IPv4 prefix must be 0..=32, got 33"
    );
    assert_eq!(
        err("truncate(24,129)"),
        "truncate: IPv6 prefix must be 0..=128, got 129"
    );
    assert!(err("truncate(24)").contains("truncate(24,48)"));
    assert_eq!(err("hash(1)"), "`hash` takes no arguments");
    assert!(err("mask(2").contains("missing `)`"));
    assert!(err("").starts_with("unknown operator ``"));
}

#[test]
fn keys_debug_shows_no_material() {
    let keys = Keys::new(b"very-secret-salt", Some(b"very-secret-key"));
    let debug = format!("{keys:?}");
    assert!(!debug.contains("very-secret"), "{debug}");
    assert!(debug.contains("redacted"));
    assert!(format!("{:?}", Keys::new(b"s", None)).contains("none"));
}

#[test]
fn keys_shared_across_threads() {
    let keys = keys();
    let token = run(&Operator::Encrypt, "x", "shared").unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..200 {
                    let mut out = String::new();
                    apply(&Operator::Encrypt, "x", "shared", &keys, &mut out).unwrap();
                    assert_eq!(out, token);
                    assert_eq!(decrypt_token(&keys, &token).unwrap(), "shared");
                }
            });
        }
    });
}
