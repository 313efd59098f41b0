#![allow(clippy::unwrap_used)]

use std::sync::LazyLock;

use proptest::prelude::*;

use super::*;

fn detector() -> &'static Detector {
    static DETECTOR: LazyLock<Detector> =
        LazyLock::new(|| Detector::new(&DetectorConfig::default()).unwrap());
    &DETECTOR
}

/// The findings in `text` as (entity name, matched text).
fn found(text: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    detector().find(text, &mut out);
    out.iter()
        .map(|s| (s.entity.name(), text[s.start..s.end].to_owned()))
        .collect()
}

/// Asserts that `entity` is found exactly as `expected` inside `text`, and
/// nothing else.
#[track_caller]
fn only(text: &str, entity: &str, expected: &str) {
    assert_eq!(
        found(text),
        vec![(
            Entity::from_name(entity).unwrap().name(),
            expected.to_owned()
        )],
        "in {text:?}"
    );
}

/// Asserts that `entity` is found exactly as the whole of `value`, when
/// alone and inside a sentence.
#[track_caller]
fn positive(entity: &str, value: &str) {
    only(value, entity, value);
    only(&format!("Here: {value}, thanks."), entity, value);
    only(&format!("({value})"), entity, value);
}

#[track_caller]
fn nothing(text: &str) {
    assert_eq!(found(text), vec![], "in {text:?}");
}

#[test]
fn emails() {
    for e in [
        "john.doe@example.com",
        "a@b.co",
        "first.last+tag@sub.example.co.uk",
        "x_y-z%1@mail-server.example.org",
        "info@münchen.de",
        "josé.garcía@correo.es",
        "user@xn--mnchen-3ya.de",
        "用户@例子.广告",
    ] {
        positive("email", e);
    }
    only("Mail me at john@example.com.", "email", "john@example.com");
    only("<mailto:jane@example.org>", "email", "jane@example.org");
    only("...jane@example.org", "email", "jane@example.org");
    for text in [
        "john@localhost",
        "john@example.c",
        "john@example.123",
        "@example.com",
        "john.@example.com",
        "jo..hn@example.com",
        "john@-example.com",
        "john@example-.com",
        "john@exa..mple.com",
        "a@b@example.com",
        "email me @ home",
        "user@[192.168.0.1x]",
    ] {
        nothing(text);
    }
    // Domain literals are not emails; the address inside is an IPv4.
    only("user@[192.168.0.1]", "ipv4", "192.168.0.1");
}

#[test]
fn ipv4() {
    for ip in [
        "192.168.0.1",
        "8.8.8.8",
        "255.255.255.255",
        "0.0.0.0",
        "10.0.0.254",
    ] {
        positive("ipv4", ip);
    }
    only("connect to 10.1.2.3:8080 now", "ipv4", "10.1.2.3");
    only("net 10.0.0.0/8.", "ipv4", "10.0.0.0");
    only("IP:172.16.5.4", "ipv4", "172.16.5.4");
    for text in [
        "version 1.2.3.4.5",
        "OID 1.3.6.1.4.1.311",
        "256.1.1.1",
        "1.2.3",
        "v1.2.3.4",
        "app/1.2.3.4",
        "01.02.03.04",
        "rv:1.9.2.20",
        "1.2.3.4a",
        "x.1.2.3.4",
    ] {
        nothing(text);
    }
}

#[test]
fn ipv6() {
    for ip in [
        "2001:db8::1",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:db8:85a3::8a2e:370:7334",
        "fe80::1",
        "::1",
        "::ffff:192.0.2.128",
        "64:ff9b::192.0.2.33",
        "2001:DB8::ABCD",
        "1::",
        "::",
    ]
    .into_iter()
    .filter(|ip| *ip != "::")
    {
        positive("ipv6", ip);
    }
    only("[2001:db8::1]:443", "ipv6", "2001:db8::1");
    only("host fe80::1%eth0 down", "ipv6", "fe80::1");
    only("IP:2001:db8::7.", "ipv6", "2001:db8::7");
    for text in [
        "at 12:30:45 today",
        "2024-03-15T12:30:45Z",
        "12:30",
        "MAC 00:1a:2b:3c:4d:5e",
        "::",
        "std::fs::read",
        "Vec::new()",
        "a:b:c",
        "deadbeef::cafe::1",
        "12:30:45.123",
    ] {
        nothing(text);
    }
}

#[test]
fn phones() {
    for p in [
        "+49 30 1234567",
        "+1-202-555-0143",
        "+44 (0)20 7946 0958",
        "+44(0)20 7946 0958",
        "+33 1 23 45 67 89",
        "+33 (0)1 23 45 67 89",
        "+34 612 34 56 78",
        "+31(0)20-1234567",
        "+4930123456",
        "(202) 555-0143",
        "(202)555-0143",
        "202.555.0143",
        "202-555-0143",
        "202 555 0143",
        "1-800-555-0199",
        "1 (800) 555-0199",
        "020 7946 0958",
        "030 12345678",
        "030/1234567",
        "030 / 1234567",
        "(030) 1234567",
        "(0113) 496 0123",
        "01 23 45 67 89",
        "06 12345678",
        "0612345678",
        "02 1234 5678",
        "001-202-555-0143",
        "0049 30 1234567",
        "08-123 45 67",
        "06/ 834 49 78",
        "202-555-0143x123",
        "202-555-0143 x123",
        "(202) 555-0143 ext. 42",
        "+1-202-555-0143 ext 7",
        "030 1234567 #12",
        "+49\u{a0}30\u{a0}1234567",
    ] {
        positive("phone", p);
    }
    // Bare digits only with a phone word before them.
    only("Call 2025550143 now", "phone", "2025550143");
    only("Tel.: 3471234567", "phone", "3471234567");
    only("Telefon 347 123 4567", "phone", "347 123 4567");
    only("Order hotline: 030 1234567", "phone", "030 1234567");
    only("Order from +49 30 1234567", "phone", "+49 30 1234567");
    // Issue 16: national numbers of a region's numbering plan, without a
    // trunk prefix or a phone word — the NANP's 10-digit runs, Brazil's area
    // code and number, Italian mobiles and 9-digit landlines, Polish and
    // Norwegian grouping. ("(555) 012-3456", not a North American number,
    // is a Mexican one, "202-055-0143" one of Luxembourg.)
    for p in [
        "2025550143",
        "3471234567",
        "347 123 4567",
        "061234567",
        "06 1234567",
        "63 6392-3321",
        "(63) 6392-3321",
        "11 98765-4321",
        "609 141 777",
        "21 28 96 93",
        "(555) 012-3456",
    ] {
        positive("phone", p);
    }
    for text in [
        "on 2024-03-15 at noon",
        "on 15.03.2024",
        "03/15/2024",
        "15.03.2024 12:30",
        "01.02.2024 10 am",
        "12:30:45",
        "2024-03-15T12:30:45Z",
        "epoch 1700000000",
        "millis 1700000000123",
        "4111 1111 1111 1111",
        "4111 1111 1111 1112",
        "DE89 3704 0044 0532 0130 00",
        "550e8400-e29b-41d4-a716-446655440000",
        "version 10.15.7",
        "price $1,234.56",
        "1 234 567 units",
        "123 456 789",
        "order 48213",
        "Order #10023456",
        "INV-2024-000123",
        "52.5200, 13.4050",
        "-33.8688, 151.2093",
        "12.5%",
        "abc0301234567",
        "0301234567abc",
        "+1",
        "3+4=7",
        "+10000000",
        "1 2 3 4 5 6 7 8",
        "192.168.001.001",
        "call 1700000000",
        "102-555-0143",
        "202-555.0143",
        "5 (x",
        "0 (1",
        "1-(",
        "ISSN 0317-8471",
        "Order number 0123456789 shipped",
        "Invoice (030) 1234567",
    ] {
        let hits = found(text);
        assert!(
            hits.iter().all(|(e, _)| *e != "phone"),
            "phone in {text:?}: {hits:?}"
        );
    }
}

#[test]
fn cards() {
    for c in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4222222222222",
        "4012888888881881",
        "5555555555554444",
        "5105 1051 0510 5100",
        "2221000000000009",
        "2720 9999 9999 9996",
        "378282246310005",
        "3782 822463 10005",
        "371449635398431",
        "6011111111111117",
        "6011 0009 9013 9424",
        "6445644564456445",
        "30569309025904",
        "3056 930902 5904",
        "38520000023237",
        "3530111333300000",
        "3566002020360505",
        "6200000000000005",
        "6759 6498 2643 8453",
        "4111 1111 1111 1111 110",
    ] {
        assert!(luhn_valid(c), "{c}");
        positive("card", c);
    }
    only(
        "card 4111 1111 1111 1111 12/27",
        "card",
        "4111 1111 1111 1111",
    );
    for text in [
        "4111111111111112",
        "4111 1111 1111 1112",
        "41111111111111111111",
        "5555555555554",
        "1234567812345670",
        "0000000000000000",
        "4111 1111 1111 111",
        "4111  1111 1111 1111",
        "4111 1111-1111 1111",
        "41111111111111112",
        "a4111111111111111",
        "4111111111111111b",
        "4111111111111111.50",
    ] {
        let hits = found(text);
        assert!(
            hits.iter().all(|(e, _)| *e != "card"),
            "card in {text:?}: {hits:?}"
        );
    }
    only("5000 0000 0009", "card", "5000 0000 0009");
}

/// Issue 16: every scheme and length of the IIN tables, with or without
/// separators — JCB's 15 digits (1800, 2131), Maestro's 12–19 (Faker's
/// "0604" too), Mir, UnionPay 19 and 81, UATP, PROSTIR — and never taken
/// for a phone number.
#[test]
fn cards_of_every_scheme_and_length() {
    let luhn_complete = |body: &str| {
        (0..10)
            .map(|c| format!("{body}{c}"))
            .find(|n| luhn_valid(n))
            .unwrap()
    };
    for body in [
        "18000000000000",     // JCB 15
        "21310123456789",     // JCB 15
        "50180000000",        // Maestro 12
        "56123456789",        // Maestro 12 (Faker's 56##)
        "63041234567",        // Maestro 12
        "06041234567",        // Maestro 12 (Faker's 0604)
        "675912345678",       // Maestro 13
        "6761123456789",      // Maestro 14
        "67631234567890",     // Maestro 15
        "501800000000000000", // Maestro 19
        "220012345678901",    // Mir
        "620550000000000000", // UnionPay 19
        "810012345678901",    // UnionPay 81
        "10000000000000",     // UATP
        "980412345678901",    // PROSTIR
        "860012345678901",    // UzCard
        "3000000000000",      // Diners 14
        "20141234567890",     // enRoute 15
    ] {
        let digits = luhn_complete(body);
        positive("card", &digits);
        let spaced: Vec<&str> = digits
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        positive("card", &spaced.join(" "));
        positive("card", &spaced.join("-"));
        only(&format!("Card number: {digits}"), "card", &digits);
    }
    // JCB 15 also as 4-6-5.
    let jcb = luhn_complete("18001234567890");
    let printed = format!("{} {} {}", &jcb[..4], &jcb[4..10], &jcb[10..]);
    positive("card", &printed);
    // Failing Luhn, or outside every range for the length: not cards, and
    // a 12-digit run outside the ranges may still be a phone number.
    nothing("501800000001");
    nothing("Card 7000 0000 0000 0000");
    only("Tel. 393471234567", "phone", "393471234567");
}

#[test]
fn luhn_and_iban_checks() {
    assert!(luhn_valid("79927398713"));
    assert!(!luhn_valid("79927398710"));
    assert!(luhn_valid("4111-1111 1111-1111"));
    assert!(!luhn_valid(""));
    assert!(!luhn_valid("0"));
    assert!(!luhn_valid("4111x1111"));
    assert!(iban_valid("DE89 3704 0044 0532 0130 00"));
    assert!(iban_valid("de89370400440532013000"));
    assert!(iban_valid("GB29 NWBK 6016 1331 9268 19"));
    assert!(!iban_valid("GB29 NWBK 6016 1331 9268 18"));
    assert!(!iban_valid("DE89 3704 0044 0532 0130 0"));
    assert!(!iban_valid("XX89 3704 0044 0532 0130 00"));
    assert!(!iban_valid("DE8937040044053201300€"));
    assert_eq!(iban_length("NO"), Some(15));
    assert_eq!(iban_length("LC"), Some(32));
    assert_eq!(iban_length("US"), None);
    assert_eq!(iban_length("D"), None);
    assert_eq!(validate::mod97(b"GB82WEST12345698765432"), 1);
}

#[test]
fn ibans() {
    for iban in [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "de89370400440532013000",
        "GB29 NWBK 6016 1331 9268 19",
        "GB29NWBK60161331926819",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91 ABNA 0417 1643 00",
        "NO93 8601 1117 947",
        "MT84 MALT 0110 0001 2345 MTLC AST0 01S",
        "LC55 HEMM 0001 0001 0012 0012 0002 3015",
        "BR18 0036 0305 0000 1000 9795 493C 1",
        "CH93 0076 2011 6238 5295 7",
        "BE68 5390 0754 7034",
    ] {
        assert!(iban_valid(iban), "{iban}");
        positive("iban", iban);
    }
    only(
        "IBAN:DE89370400440532013000.",
        "iban",
        "DE89370400440532013000",
    );
    for text in [
        "DE88 3704 0044 0532 0130 00",
        "DE88370400440532013000",
        "DE89 3704 0044 0532 0130 001",
        "DE8937040044053201300",
        "DE893704004405320130001",
        "XDE89370400440532013000",
        "DE89 37040044 0532 0130 00",
        "US89370400440532013000",
    ] {
        let hits = found(text);
        assert!(
            hits.iter().all(|(e, _)| *e != "iban"),
            "iban in {text:?}: {hits:?}"
        );
    }
    // A wrong check digit makes the whole number nothing (not a phone or
    // a card).
    nothing("IBAN DE88 3704 0044 0532 0130 00 please");
}

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

#[test]
fn jwts() {
    positive("jwt", JWT);
    only(&format!("Authorization: Bearer {JWT}"), "jwt", JWT);
    only(&format!("token={JWT}."), "jwt", JWT);
    // alg none: the empty signature's dot belongs to the token.
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxMjM0In0.";
    only(&format!("t {none} x"), "jwt", none);
    // Without alg none, a trailing dot is a full stop and two segments are
    // not a token.
    nothing("t eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0In0. x");
    // A JWE.
    let jwe = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ";
    positive("jwt", jwe);
    for text in [
        "eyJhbGciOiJIUzI1NiJ9",
        "xeyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV",
        "eyJ.eyJ.abc",
    ] {
        nothing(text);
    }
}

#[test]
fn api_keys() {
    for key in [
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "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",
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789abc_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV0123456789",
        "glpat-xxxxxxxxxxxxxxxxxxxx",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "pk_test_TYooMQauvdEDq54NiTphI7jx",
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "sk-proj-abcDEF1234567890abcdefGHIJKLmnopqrstuv",
        "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL",
        "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        "ak_prod_billing-svc_9f8E7d6C5b4A3z2Y1x0W-_vU",
        "ak_dev_a_0123456789abcdefGHIJ",
    ] {
        positive("api_key", key);
    }
    only(
        "Authorization: Bearer 8f14e45fceea167a5a36dedd4bea2543",
        "api_key",
        "8f14e45fceea167a5a36dedd4bea2543",
    );
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\naFDrBz9vFqU4yQ==\n-----END RSA PRIVATE KEY-----";
    only(&format!("key:\n{pem}\nend"), "api_key", pem);
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----";
    only(pem, "api_key", pem);
    let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,5E22A2E2A7B6B0F4\n\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n-----END RSA PRIVATE KEY-----";
    only(legacy, "api_key", legacy);
    // Without its end line: the header and the body.
    let body = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49AwEHoUQDQgAE";
    only(&format!("{body}\n(truncated)"), "api_key", body);
    // Many headers without end lines take linear time.
    let mut many = String::new();
    for _ in 0..20_000 {
        many.push_str("-----BEGIN RSA PRIVATE KEY-----\n");
    }
    nothing(&many);
    for text in [
        "AKIAIOSFODNN7EXAMPL",
        "AKIAIOSFODNN7EXAMPLEX",
        "xAKIAIOSFODNN7EXAMPLE",
        "ghp_short",
        "task-abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
        "sk-learn is a library",
        "sk-abcdefghijklmnopqrstuvwxyzabcdefghijk",
        "ak_prod__0123456789abcdefGHIJ",
        "ak_prod_Billing_0123456789abcdefGHIJ",
        "ak_test_a_0123456789abcdefGHIJ",
        "Bearer of bad news",
        "the bearer token abcdefghijklmnop",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END PUBLIC KEY-----",
    ] {
        nothing(text);
    }
}

#[test]
fn multibyte_text_around_entities() {
    let text = "Grüße 😀 an jürgen@beispiel.de — Tél. +33 1 23 45 67 89 · IBAN DE89 3704 0044 0532 0130 00 ✓ IP 10.0.0.1 und ::1 — Karte 4111 1111 1111 1111 😀";
    let hits = found(text);
    let names: Vec<_> = hits.iter().map(|(e, _)| *e).collect();
    assert_eq!(
        names,
        ["email", "phone", "iban", "ipv4", "ipv6", "card"],
        "{hits:?}"
    );
}

#[test]
fn overlaps_and_order() {
    let d = detector();
    let mut out = vec![Span {
        start: 0,
        end: 0,
        entity: Entity::Email,
    }];
    let text = "b@example.com 10.0.0.1 a@example.com +1-202-555-0143";
    d.find(text, &mut out);
    assert_eq!(out.len(), 5);
    assert!(out[1..].windows(2).all(|w| w[0].end <= w[1].start));
    // IPv4 inside IPv6 is one IPv6.
    only("::ffff:10.1.2.3", "ipv6", "::ffff:10.1.2.3");
}

#[test]
fn enabled_entities_only() {
    let d = Detector::new(&DetectorConfig {
        entities: vec![Entity::Email],
        ..DetectorConfig::default()
    })
    .unwrap();
    let mut out = Vec::new();
    d.find(
        "a@example.com 10.0.0.1 4111111111111111 +1-202-555-0143",
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].entity, Entity::Email);
    // Cards are still not phones when only phones are wanted.
    let d = Detector::new(&DetectorConfig {
        entities: vec![Entity::Phone],
        ..DetectorConfig::default()
    })
    .unwrap();
    let mut out = Vec::new();
    d.find("4111 1111 1111 1111", &mut out);
    assert!(out.is_empty());
}

#[test]
fn custom_patterns_and_dictionaries() {
    let config = DetectorConfig {
        entities: vec![Entity::Email],
        patterns: vec![
            CustomPattern {
                name: "employee".into(),
                regex: r"\bEMP-\d{6}\b".into(),
            },
            CustomPattern {
                name: "empty".into(),
                regex: r"q*".into(),
            },
        ],
        dictionaries: vec![
            Dictionary {
                name: "projects".into(),
                words: vec!["Project Falcon".into(), "Falcon".into(), "Über".into()],
                case_insensitive: true,
            },
            Dictionary {
                name: "codes".into(),
                words: vec!["ZX".into()],
                case_insensitive: false,
            },
        ],
        phone_regions: Vec::new(),
    };
    let d = Detector::new(&config).unwrap();
    let text = "EMP-123456 works on project falcon and FALCONS, ÜBER zx ZX, mail a@example.com";
    let mut out = Vec::new();
    d.find(text, &mut out);
    let got: Vec<_> = out
        .iter()
        .map(|s| (d.entity_name(s.entity), &text[s.start..s.end]))
        .collect();
    assert_eq!(
        got,
        [
            ("employee", "EMP-123456"),
            ("projects", "project falcon"),
            ("projects", "ÜBER"),
            ("codes", "ZX"),
            ("email", "a@example.com"),
        ]
    );
    assert_eq!(d.entity_name(Entity::Custom(2)), "projects");
    assert_eq!(d.entity_name(Entity::Custom(3)), "codes");
    assert_eq!(d.entity_name(Entity::Custom(9)), "custom");
    assert_eq!(d.entity_name(Entity::Phone), "phone");
}

#[test]
fn bad_configuration() {
    let pattern = |regex: &str| DetectorConfig {
        patterns: vec![
            CustomPattern {
                name: "a".into(),
                regex: "a".into(),
            },
            CustomPattern {
                name: "b".into(),
                regex: "b".into(),
            },
            CustomPattern {
                name: "c".into(),
                regex: regex.into(),
            },
        ],
        ..DetectorConfig::default()
    };
    let err = Detector::new(&pattern("(unclosed")).unwrap_err();
    assert_eq!(err.field, "patterns[2].regex");
    // Compilation cannot explode.
    let err = Detector::new(&pattern(r"\w{1000}{1000}")).unwrap_err();
    assert_eq!(err.field, "patterns[2].regex");
    let err = Detector::new(&DetectorConfig {
        dictionaries: vec![Dictionary {
            name: "d".into(),
            words: vec!["ok".into(), " ".into()],
            case_insensitive: false,
        }],
        ..DetectorConfig::default()
    })
    .unwrap_err();
    assert_eq!(err.field, "dictionaries[0].words[1]");
}

fn check_spans(text: &str, out: &[Span]) {
    for s in out {
        assert!(s.start < s.end && s.end <= text.len());
        assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
    }
    assert!(out.windows(2).all(|w| w[0].end <= w[1].start));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn find_never_panics_and_spans_are_sane(text in "\\PC{0,200}") {
        let mut out = Vec::new();
        detector().find(&text, &mut out);
        check_spans(&text, &out);
    }

    #[test]
    fn find_on_entity_like_text(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("@".to_owned()), Just(":".to_owned()), Just("::".to_owned()),
                Just(".".to_owned()), Just("-".to_owned()), Just(" ".to_owned()),
                Just("+".to_owned()), Just("(".to_owned()), Just(")".to_owned()),
                Just("eyJ".to_owned()), Just("é".to_owned()), Just("😀".to_owned()),
                Just("Bearer ".to_owned()), Just("DE".to_owned()), Just("x".to_owned()),
                "[0-9]{1,5}", "[a-fA-F0-9]{1,4}", "[a-z]{1,6}",
            ],
            0..40,
        )
    ) {
        let text = parts.concat();
        let mut out = Vec::new();
        detector().find(&text, &mut out);
        check_spans(&text, &out);
    }

    /// Phone-shaped text through every path of the phone parser and the
    /// numbering plans, with and without `phone_regions`.
    #[test]
    fn find_on_phone_like_text(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(" ".to_owned()), Just("-".to_owned()), Just(".".to_owned()),
                Just("/".to_owned()), Just(" / ".to_owned()), Just("(".to_owned()),
                Just(")".to_owned()), Just("(+".to_owned()), Just("+".to_owned()),
                Just("00".to_owned()), Just("0".to_owned()), Just(" x".to_owned()),
                Just(" ext. ".to_owned()), Just("\u{a0}".to_owned()), Just("Tel. ".to_owned()),
                Just("order. ".to_owned()), Just("-b5bb".to_owned()),
                "[0-9]{1,12}",
            ],
            0..16,
        )
    ) {
        static REGIONAL: LazyLock<Detector> = LazyLock::new(|| {
            Detector::new(&DetectorConfig {
                phone_regions: vec!["DK".into(), "BR".into(), "US".into()],
                ..DetectorConfig::default()
            })
            .unwrap()
        });
        let text = parts.concat();
        for d in [detector(), &*REGIONAL] {
            let mut out = Vec::new();
            d.find(&text, &mut out);
            check_spans(&text, &out);
        }
    }
}

/// Issue 16: a word that announces some other number ("commande", "order")
/// at the end of a sentence must not suppress a phone number that starts
/// the next one; an abbreviation with its point ("Ref.", "Nr.", "Tel.")
/// still speaks for the number after it.
#[test]
fn keyword_window_ends_at_sentence_boundaries() {
    only(
        "Merci pour votre commande. 06 12 34 56 78 est mon numéro.",
        "phone",
        "06 12 34 56 78",
    );
    only(
        "Thanks for your order. 030 1234567 is my number.",
        "phone",
        "030 1234567",
    );
    only(
        "Wo ist meine Bestellung? 0171 2345678",
        "phone",
        "0171 2345678",
    );
    only("Grazie per l'ordine! 02 1234 5678", "phone", "02 1234 5678");
    // A phone word that ends a sentence does not vouch for the next one.
    nothing("Please call. 123 45 67 was the count.");
    // Abbreviations keep their point.
    only("Tel. 030 1234567", "phone", "030 1234567");
    only("Tél. : 01 23 45 67 89", "phone", "01 23 45 67 89");
    for text in [
        "Ref. 030 1234567",
        "Nr. 0301234567",
        "Order no. 030 1234567",
    ] {
        let hits = found(text);
        assert!(
            hits.iter().all(|(e, _)| *e != "phone"),
            "phone in {text:?}: {hits:?}"
        );
    }
}

/// A bare run of digits is a phone number when it is a valid number of a
/// region the policy names (a Danish "66225448"); without the region it is
/// not (it may as well be a Brazilian postcode). Unknown regions are
/// refused with the field named.
#[test]
fn phone_regions_from_the_policy() {
    nothing("66225448");
    let danish = Detector::new(&DetectorConfig {
        phone_regions: vec!["DK".into(), "no".into()],
        ..DetectorConfig::default()
    })
    .unwrap();
    let mut out = Vec::new();
    danish.find("Ring 66225448, postnr. 2100", &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].start, out[0].end), (5, 13));
    out.clear();
    danish.find("06622544", &mut out);
    assert!(out.is_empty(), "{out:?}");
    let err = Detector::new(&DetectorConfig {
        phone_regions: vec!["DK".into(), "XX".into()],
        ..DetectorConfig::default()
    })
    .unwrap_err();
    assert_eq!(err.field, "phone_regions[1]");
}

/// Beyond a few patterns a set screens them first; the findings are the
/// same either way.
#[test]
fn many_patterns_are_screened_by_a_set() {
    let patterns: Vec<CustomPattern> = (0..7)
        .map(|i| CustomPattern {
            name: format!("p{i}"),
            regex: format!(r"\bK{i}-[0-9]{{3}}\b"),
        })
        .collect();
    for n in [1, 7] {
        let d = Detector::new(&DetectorConfig {
            entities: vec![],
            patterns: patterns[..n].to_vec(),
            ..DetectorConfig::default()
        })
        .unwrap();
        let text = "K0-123 and K6-456, not xK0-123";
        let mut out = Vec::new();
        d.find(text, &mut out);
        let got: Vec<_> = out.iter().map(|s| &text[s.start..s.end]).collect();
        let want = if n == 1 {
            vec!["K0-123"]
        } else {
            vec!["K0-123", "K6-456"]
        };
        assert_eq!(got, want);
    }
}

/// Found by `fuzz/` (anonymize_stream): a date-shaped number with a group
/// of ten digits or more overflowed the group's value (a panic in debug
/// builds, a wrapped and so wrong value in release).
#[test]
fn date_shaped_runs_with_long_groups_do_not_overflow() {
    for text in [
        "1.2.99999999999",
        "99999999999.1.2",
        "99999999999-12-12",
        "call 12/12/99999999999",
    ] {
        let _ = found(text);
    }
}

/// The phones found in `text` as the value of the JSON field `key`.
fn phones_in_field(key: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    detector().find_in_field(key, text, &mut out);
    out.iter()
        .filter(|s| s.entity == Entity::Phone)
        .map(|s| text[s.start..s.end].to_owned())
        .collect()
}

/// Issue 16: a bare Norwegian or Danish number ("21289693") is found with
/// the default policy where a phone word announces it — in the sentence
/// ("Ring oss på", "tlf.", "ph.") or as the name of the JSON field holding
/// it — and not alone, nor after a word for another number.
#[test]
fn bare_national_numbers_by_their_context() {
    for (text, number) in [
        ("Ring oss på 85016753.", "85016753"),
        ("ring 21289693 for avtale", "21289693"),
        ("Tlf: 21230854", "21230854"),
        ("tlf. 21230854", "21230854"),
        ("Tfn 21230854", "21230854"),
        ("ph. 24095161", "24095161"),
        ("Puh. 0401234567", "0401234567"),
        ("\u{96fb}\u{8a71} 0312345678", "0312345678"),
    ] {
        assert_eq!(
            found(text),
            vec![("phone", number.to_owned())],
            "in {text:?}"
        );
    }
    for text in [
        "21289693",
        "(24095161)",
        "Beløp 94413243 kr",
        "Ring oss. 21289693 er ordrenummeret.",
        "Ordre 21289693, tlf. følger",
    ] {
        nothing(text);
    }
    for key in [
        "phone",
        "phones",
        "tlf",
        "telefon",
        "mobile",
        "phoneNumber",
        "contact_phone",
        "TEL",
        "telNo",
        "customer_phone",
    ] {
        assert_eq!(
            phones_in_field(key, "21289693"),
            ["21289693"],
            "field {key:?}"
        );
        assert_eq!(
            phones_in_field(key, "tlf 21289693"),
            ["21289693"],
            "field {key:?}"
        );
    }
    for key in ["", "note", "television", "telemetry", "postcode", "amount"] {
        assert!(phones_in_field(key, "21289693").is_empty(), "field {key:?}");
    }
    // The field's name reaches only the start of the value, as a word would.
    assert!(phones_in_field("phone", "see order 12 then 21289693").is_empty());
    assert!(phones_in_field("phone", "Closed. 21289693").is_empty());
    // A field named for another number is that number, as after the word
    // in prose: a national number there is not a phone.
    assert_eq!(
        found("0612345678"),
        vec![("phone", "0612345678".to_owned())]
    );
    for key in [
        "order_id",
        "orderId",
        "invoice",
        "account",
        "kundenummer",
        "sku",
        "tracking",
    ] {
        assert!(
            phones_in_field(key, "0612345678").is_empty(),
            "field {key:?}"
        );
        assert_eq!(
            phones_in_field(key, "+47 21 28 96 93"),
            ["+47 21 28 96 93"],
            "field {key:?}"
        );
    }
}

proptest! {
    /// A user pattern's literal screen never passes over a match: the
    /// findings are the regex's own (non-empty, non-overlapping) matches.
    #[test]
    fn pattern_screens_never_skip_a_match(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("EMP-".to_owned()), Just("emp-".to_owned()), Just("Secret-".to_owned()),
                Just("foo".to_owned()), Just("BAR".to_owned()), Just(" ".to_owned()),
                Just("é".to_owned()), Just("-".to_owned()), Just("_".to_owned()),
                "[0-9]{1,7}", "[a-zA-Z]{1,4}",
            ],
            0..20,
        )
    ) {
        const PATTERNS: &[&str] = &[
            r"\bEMP-[0-9]{6}\b",
            r"(?i)secret-[a-z]+",
            r"(foo|bar)\d+",
            r"[A-Z]{2}\d{4}",
            r"\d{3}-\d{2}",
            r"(?i:émp)?-\d",
        ];
        // One detector per pattern: each runs alone, behind its screen.
        static CUSTOM: LazyLock<Vec<Detector>> = LazyLock::new(|| {
            PATTERNS
                .iter()
                .map(|p| {
                    let pattern = CustomPattern { name: "p".into(), regex: (*p).to_owned() };
                    let config = DetectorConfig {
                        entities: Vec::new(),
                        patterns: vec![pattern],
                        ..DetectorConfig::default()
                    };
                    Detector::new(&config).unwrap()
                })
                .collect()
        });
        let text = parts.concat();
        for (pattern, detector) in PATTERNS.iter().zip(CUSTOM.iter()) {
            // The default policy's pattern is screened by its literal, the
            // alternation by the prefilter.
            let screen = &detector.custom.screens[0];
            if pattern.contains("EMP") {
                prop_assert!(matches!(screen, Some(screen::Screen::Literal(_))));
            }
            if pattern.contains("foo|bar") {
                prop_assert!(matches!(screen, Some(screen::Screen::Prefilter(_))));
            }
            let mut out = Vec::new();
            detector.find_custom(&text, &mut out);
            let found: Vec<(usize, usize)> = out.iter().map(|s| (s.start, s.end)).collect();
            let expected: Vec<(usize, usize)> = Regex::new(pattern)
                .unwrap()
                .find_iter(&text)
                .filter(|m| !m.is_empty())
                .map(|m| (m.start(), m.end()))
                .collect();
            prop_assert_eq!(found, expected, "{} in {:?}", pattern, text);
        }
    }
}

proptest! {
    /// Every IPv6 address, compressed, in full and zero-padded, is found
    /// whole (the colon count screens only what cannot parse).
    #[test]
    fn every_ipv6_form_is_found(bits in any::<u128>(), zeros in 0usize..8) {
        // Runs of zero groups (the top `zeros`, moved), for `::`.
        let bits = bits.checked_shr(16 * zeros as u32).unwrap_or(0);
        let ip = std::net::Ipv6Addr::from(bits.rotate_left(16 * (zeros as u32 % 3)));
        // (`::` alone is not taken for an address.)
        let ip = if ip.is_unspecified() { std::net::Ipv6Addr::LOCALHOST } else { ip };
        let groups = ip.segments();
        let full = groups.map(|g| format!("{g:x}")).join(":");
        let padded = groups.map(|g| format!("{g:04x}")).join(":");
        for form in [ip.to_string(), full, padded] {
            only(&format!("from {form} today"), "ipv6", &form);
        }
    }
}
