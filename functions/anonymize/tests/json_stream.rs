//! The streaming JSON / NDJSON rewriter: byte-for-byte pass-through under
//! any chunking, replacements, strict validation with offsets, NDJSON
//! lines, bounded memory.

#![allow(clippy::unwrap_used)]

use anonymize::json::{
    JsonError, JsonErrorKind, JsonRewriter, Limits, NdjsonRewriter, Path, PathPattern, PathRules,
    Scalar, Segment, VisitError, Visitor, write_json_string,
};
use proptest::prelude::*;
use serde_json::Value;

/// Keeps everything; records what it saw.
#[derive(Default)]
struct Record {
    seen: Vec<(String, Option<usize>, String)>,
}

impl Visitor for Record {
    fn scalar(
        &mut self,
        path: &Path<'_>,
        value: Scalar<'_>,
        _: &mut Vec<u8>,
    ) -> Result<bool, VisitError> {
        self.seen
            .push((path.to_string(), path.rule(), format!("{value:?}")));
        Ok(false)
    }
}

/// Keeps everything.
struct Keep;

impl Visitor for Keep {
    fn scalar(&mut self, _: &Path<'_>, _: Scalar<'_>, _: &mut Vec<u8>) -> Result<bool, VisitError> {
        Ok(false)
    }
}

/// The replacement of every string in these tests.
fn transform(s: &str) -> String {
    format!("<{}|{}>", s.len(), s.chars().rev().collect::<String>())
}

/// Replaces every string by `transform`.
struct ReplaceStrings;

impl Visitor for ReplaceStrings {
    fn scalar(
        &mut self,
        _: &Path<'_>,
        value: Scalar<'_>,
        out: &mut Vec<u8>,
    ) -> Result<bool, VisitError> {
        match value {
            Scalar::String(s) => {
                write_json_string(&transform(s), out);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

fn transform_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(transform(s)),
        Value::Array(a) => Value::Array(a.iter().map(transform_value).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), transform_value(v)))
                .collect(),
        ),
        v => v.clone(),
    }
}

/// Chunk sizes, cycled; empty: the whole input at once.
fn chunks<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![input];
    }
    let mut out = Vec::new();
    let mut rest = input;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(size.clamp(1, rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

fn rewrite_with(
    rw: &mut JsonRewriter,
    input: &[u8],
    sizes: &[usize],
    v: &mut impl Visitor,
) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    for chunk in chunks(input, sizes) {
        rw.push(chunk, v, &mut out)?;
    }
    rw.finish(v, &mut out)?;
    Ok(out)
}

fn rewrite(input: &[u8], sizes: &[usize], v: &mut impl Visitor) -> Result<Vec<u8>, JsonError> {
    rewrite_with(&mut JsonRewriter::default(), input, sizes, v)
}

fn rewrite_ndjson(
    input: &[u8],
    sizes: &[usize],
    v: &mut impl Visitor,
) -> Result<Vec<u8>, JsonError> {
    let mut rw = NdjsonRewriter::default();
    let mut out = Vec::new();
    for chunk in chunks(input, sizes) {
        rw.push(chunk, v, &mut out)?;
    }
    rw.finish(v, &mut out)?;
    Ok(out)
}

/// The variant's name.
fn kind_name(kind: &JsonErrorKind) -> String {
    format!("{kind:?}")
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

const CHUNKINGS: &[&[usize]] = &[&[], &[1], &[2], &[3], &[5], &[7, 1, 13], &[64]];

fn valid_documents() -> Vec<Vec<u8>> {
    let mut docs: Vec<Vec<u8>> = [
        "{}",
        "[]",
        " \t\r\n{ } \n",
        "\"\"",
        "\"top level\"",
        "0",
        "-0.0",
        "1e400",
        "-1.5E-7",
        "123456789012345678901234567890",
        "true",
        " false ",
        "null",
        r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
        "{\n  \"a\" : [ 1 , 2.5e+3 , -0 ] ,\n\t\"b\":\r\n\"x\"\n}\n",
        r#"{"unicode":"héllo wörld — 日本語 😀","key é":"ü"}"#,
        r#"{"esc":"\"\\\/\b\f\n\r\t\u0000\u001f\u00e9\u20ac\uD83D\uDE00\ud83d\ude00","\u0041key":"\u0041"}"#,
        r#"[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]"#,
        r#"[{},[],{"":""},[[]],{"a":{}}]"#,
        r#"{"dup":1,"dup":2}"#,
        r#"[1e400,-0.0,0.0,-1,1E+2,1e-2,0.1234567890123456789]"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // The deepest nesting the default limit allows.
    let depth = Limits::default().max_depth;
    docs.push(format!("{}1{}", "[".repeat(depth), "]".repeat(depth)).into_bytes());
    docs.push(format!("{}\"x\"{}", "{\"k\":".repeat(depth), "}".repeat(depth)).into_bytes());
    // Long strings crossing many chunks.
    docs.push(format!("[\"{}\",\"{}\"]", "a".repeat(5000), "é\\n😀".repeat(700)).into_bytes());
    docs
}

#[test]
fn keep_all_is_byte_identical_whatever_the_chunking() {
    for doc in valid_documents() {
        let mut reference = Record::default();
        let out = rewrite(&doc, &[], &mut reference)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&doc)));
        assert_eq!(out, doc);
        for sizes in CHUNKINGS {
            let mut record = Record::default();
            let out = rewrite(&doc, sizes, &mut record).unwrap();
            assert_eq!(out, doc, "chunks {sizes:?}");
            assert_eq!(record.seen, reference.seen, "chunks {sizes:?}");
        }
    }
}

#[test]
fn visitor_sees_decoded_values_and_paths() {
    let doc =
        r#"{"esc":"a\"\u00e9\uD83D\uDE00\n","n":[-0.0,1e400],"odd key":{"x.y":true},"z":null}"#;
    let mut record = Record::default();
    rewrite(doc.as_bytes(), &[1], &mut record).unwrap();
    let seen: Vec<_> = record
        .seen
        .iter()
        .map(|(p, _, v)| (p.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("$.esc", "String(\"a\\\"é😀\\n\")"),
            ("$.n[0]", "Number(\"-0.0\")"),
            ("$.n[1]", "Number(\"1e400\")"),
            ("$['odd key']['x.y']", "Bool(true)"),
            ("$.z", "Null"),
        ]
    );
}

#[test]
fn replaces_values_in_place() {
    let doc = br#"{"a": "x", "b": [1, "y\n", {"c": "\u00e9"}], "d": 2}"#;
    for sizes in CHUNKINGS {
        let out = rewrite(doc, sizes, &mut ReplaceStrings).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a": "<1|x>", "b": [1, "<2|\ny>", {"c": "<2|é>"}], "d": 2}"#
        );
    }
    // Numbers and literals, including a number cut by the end of input.
    let mut bump = |_: &Path<'_>, v: Scalar<'_>, out: &mut Vec<u8>| -> Result<bool, VisitError> {
        match v {
            Scalar::Number(n) => out.extend_from_slice(format!("\"n{n}\"").as_bytes()),
            Scalar::Bool(b) => out.extend_from_slice(if b { b"1" } else { b"0" }),
            Scalar::Null => out.extend_from_slice(b"\"nil\""),
            Scalar::String(_) => return Ok(false),
        }
        Ok(true)
    };
    for sizes in CHUNKINGS {
        let out = rewrite(b"[12, true, null, false, -3.5e2]", sizes, &mut bump).unwrap();
        assert_eq!(out, br#"["n12", 1, "nil", 0, "n-3.5e2"]"#);
        let out = rewrite(b" 42", sizes, &mut bump).unwrap();
        assert_eq!(out, br#" "n42""#);
    }
}

#[test]
fn path_rules_reach_the_visitor() {
    let rules: PathRules<&str> = [
        ("$.user.email", "email"),
        ("$.events[*].ip", "ip"),
        ("$['odd key'].x", "odd"),
        ("$..secret", "secret"),
        ("$.items[1]", "second"),
    ]
    .into_iter()
    .map(|(p, v)| (p.parse::<PathPattern>().unwrap(), v))
    .collect();
    let doc = br#"{"user":{"email":"a@b","name":"n","secret":{"k":[1,2]}},
        "events":[{"ip":"1.2.3.4","port":80},{"ip":"::1"}],
        "odd key":{"x":1,"y":2},"items":[{"a":1},{"a":2}],"secret":3}"#;
    let mut rw = JsonRewriter::with_rules(&rules, Limits::default());
    let mut record = Record::default();
    let out = rewrite_with(&mut rw, doc, &[4], &mut record).unwrap();
    assert_eq!(out, doc);
    let seen: Vec<_> = record
        .seen
        .iter()
        .map(|(p, r, _)| (p.as_str(), r.map(|r| rules[r])))
        .collect();
    assert_eq!(
        seen,
        [
            ("$.user.email", Some("email")),
            ("$.user.name", None),
            ("$.user.secret.k[0]", Some("secret")),
            ("$.user.secret.k[1]", Some("secret")),
            ("$.events[0].ip", Some("ip")),
            ("$.events[0].port", None),
            ("$.events[1].ip", Some("ip")),
            ("$['odd key'].x", Some("odd")),
            ("$['odd key'].y", None),
            ("$.items[0].a", None),
            ("$.items[1].a", Some("second")),
            ("$.secret", Some("secret")),
        ]
    );
}

/// (document, error kind, offset)
const INVALID: &[(&[u8], &str, u64)] = &[
    (b"", "Empty", 0),
    (b"  \n ", "Empty", 4),
    (b"{", "UnexpectedEnd", 1),
    (b"[1,2", "UnexpectedEnd", 4),
    (b"{\"a\":1", "UnexpectedEnd", 6),
    (b"{\"a\"", "UnexpectedEnd", 4),
    (b"{\"a\":", "UnexpectedEnd", 5),
    (b"\"abc", "UnexpectedEnd", 4),
    (b"\"abc\\", "UnexpectedEnd", 5),
    (b"tru", "UnexpectedEnd", 3),
    (b"[1,]", "TrailingComma", 2),
    (b"{\"a\":1,}", "TrailingComma", 6),
    (b"[1 2]", "Unexpected", 3),
    (b"{\"a\" 1}", "Unexpected", 5),
    (b"{1:2}", "Unexpected", 1),
    (b"{\"a\":}", "Unexpected", 5),
    (b"[}", "Unexpected", 1),
    (b"{]", "Unexpected", 1),
    (b"[.5]", "Unexpected", 1),
    (b"+1", "Unexpected", 0),
    (b"NaN", "Unexpected", 0),
    (b"True", "Unexpected", 0),
    (b"'a'", "Unexpected", 0),
    (b"// c\n1", "Unexpected", 0),
    (b"[1 /* c */]", "Unexpected", 3),
    (b"\xef\xbb\xbf{}", "Unexpected", 0),
    (b"[1]x", "TrailingData", 3),
    (b"[1] [2]", "TrailingData", 4),
    (b"1 2", "TrailingData", 2),
    (b"[1,2]]", "TrailingData", 5),
    (b"{\"a\":1}}", "TrailingData", 7),
    (b"nulx", "InvalidLiteral", 0),
    (b"[tRue]", "InvalidLiteral", 1),
    (b"01", "InvalidNumber", 0),
    (b"[-]", "InvalidNumber", 1),
    (b"-", "InvalidNumber", 0),
    (b"1.", "InvalidNumber", 0),
    (b"1.e5", "InvalidNumber", 0),
    (b"[1e]", "InvalidNumber", 1),
    (b"1e+", "InvalidNumber", 0),
    (b"-x", "InvalidNumber", 0),
    (b"\"a\\qb\"", "InvalidEscape", 2),
    (b"\"\\x41\"", "InvalidEscape", 1),
    (b"\"\\u12x4\"", "InvalidUnicodeEscape", 1),
    (b"\"\\u\"", "InvalidUnicodeEscape", 1),
    (b"\"\\uD800\"", "LoneSurrogate", 1),
    (b"\"\\uDC00\"", "LoneSurrogate", 1),
    (b"\"ab\\uD800\\n\"", "LoneSurrogate", 3),
    (b"\"\\uD800\\uD800\"", "LoneSurrogate", 1),
    (b"\"\\uD800\\u0041\"", "LoneSurrogate", 1),
    (b"{\"\\uDFFF\":1}", "LoneSurrogate", 2),
    (b"\"a\xffb\"", "InvalidUtf8", 2),
    (b"\"a\xe2\x82\"", "InvalidUtf8", 2),
    (b"\"a\xe2\x82\\n\"", "InvalidUtf8", 2),
    (b"\"\xed\xa0\x80\"", "InvalidUtf8", 1),
    (b"\"\xc0\xaf\"", "InvalidUtf8", 1),
    (b"{\"k\xff\":1}", "InvalidUtf8", 3),
    (b"\"a\x01b\"", "ControlCharacter", 2),
    (b"\"a\nb\"", "ControlCharacter", 2),
    (b"{\"a\tb\":1}", "ControlCharacter", 3),
    (b"\"\xe2\x0a\"", "InvalidUtf8", 1),
];

#[test]
fn invalid_documents_fail_at_the_right_byte_whatever_the_chunking() {
    for (doc, kind, offset) in INVALID {
        for sizes in CHUNKINGS {
            let error = rewrite(doc, sizes, &mut Keep)
                .expect_err(&format!("{:?}", String::from_utf8_lossy(doc)));
            assert_eq!(
                (kind_name(error.kind()).as_str(), error.offset()),
                (*kind, *offset),
                "{:?} in chunks {sizes:?}: {error}",
                String::from_utf8_lossy(doc)
            );
            assert_eq!(error.line(), None);
        }
    }
    // Two valid values around the invalid ones still pass.
    assert!(rewrite(b"\"ab\\uD83D\\uDE00\"", &[1], &mut Keep).is_ok());
}

#[test]
fn errors_name_the_path_and_quote_no_values() {
    let doc = br#"{"events":[{"ip":"1.2.3.4"},{"ip":"SECRET\q"}]}"#;
    let error = rewrite(doc, &[], &mut Keep).unwrap_err();
    assert_eq!(error.path(), "$.events[1].ip");
    assert_eq!(
        error.to_string(),
        r#"invalid escape sequence (valid: \" \\ \/ \b \f \n \r \t \uXXXX) at byte 41 ($.events[1].ip)"#
    );
    for (doc, path) in [
        (&br#"{"a":[1,2,}"#[..], "$.a[2]"),
        (br#"{"a":{"b" 1}}"#, "$.a.b"),
        (br#"{"a":{"b":1,"c" "#, "$.a.c"),
        (br#"{"a":{"b":1, 2"#, "$.a"),
        (br#"{"a":{"b":1"#, "$.a.b"),
        (br#"[{"x":"SECRET"} "SECRET"]"#, "$[0]"),
        (br#""SECRET"#, "$"),
    ] {
        let error = rewrite(doc, &[2], &mut Keep).unwrap_err();
        assert_eq!(error.path(), path, "{error}");
        assert!(!error.to_string().contains("SECRET"), "{error}");
    }
    for (doc, _, _) in INVALID {
        let message = rewrite(doc, &[], &mut Keep).unwrap_err().to_string();
        assert!(message.is_ascii() || message.contains('…'), "{message}");
    }
}

#[test]
fn limits_are_enforced_and_named() {
    let depth = Limits::default().max_depth;
    let too_deep = format!("{}{}", "[".repeat(depth + 1), "]".repeat(depth + 1));
    let error = rewrite(too_deep.as_bytes(), &[7], &mut Keep).unwrap_err();
    assert!(matches!(
        error.kind(),
        JsonErrorKind::TooDeep { limit: 128 }
    ));
    assert_eq!(error.offset(), depth as u64);
    assert!(
        error
            .to_string()
            .starts_with("nesting deeper than max_depth (128) at byte 128 ($"),
        "{error}"
    );

    let limits = Limits {
        max_depth: 3,
        max_string_bytes: 8,
    };
    let cases: &[(&str, Option<(&str, u64)>)] = &[
        ("\"12345678\"", None),
        ("\"123456789\"", Some(("string", 0))),
        ("[1, \"é1234567\"]", Some(("string", 4))),
        ("[1, \"é123456\"]", None),
        ("\"\\n\\n\\n\\n\"", None),
        ("\"\\n\\n\\n\\n\\n\"", Some(("string", 0))),
        ("\"\\u00e9\\u00e9\"", Some(("string", 0))),
        ("{\"12345678\":1}", None),
        ("{\"123456789\":1}", Some(("key", 1))),
        ("12345678", None),
        ("123456789", Some(("number", 0))),
        ("[-1.5e+10]", None),
        ("[-1.5e+100]", Some(("number", 1))),
        ("[[[1]]]", None),
    ];
    for (doc, expected) in cases {
        for sizes in CHUNKINGS {
            let mut rw = JsonRewriter::new(limits);
            let result = rewrite_with(&mut rw, doc.as_bytes(), sizes, &mut Keep);
            match (expected, result) {
                (None, Ok(out)) => assert_eq!(out, doc.as_bytes()),
                (Some((what, offset)), Err(e)) => {
                    assert!(
                        matches!(e.kind(), JsonErrorKind::TooLong { what: w, limit: 8 } if w == what),
                        "{doc}: {e}"
                    );
                    assert_eq!(e.offset(), *offset, "{doc}: {e}");
                    assert!(
                        e.to_string()
                            .contains("longer than max_string_bytes (8 bytes)"),
                        "{e}"
                    );
                }
                (expected, result) => {
                    panic!("{doc} in {sizes:?}: expected {expected:?}, got {result:?}")
                }
            }
        }
    }
    // A UTF-8 sequence cut at the limit: the closing quote is not content,
    // a backslash is.
    for (doc, kind, offset) in [
        (&b"\"123456\xe2\x82\""[..], "InvalidUtf8", 7),
        (b"\"123456\xe2\x82\\n\"", "TooLong", 0),
        (b"\"1234567\xe2a\"", "TooLong", 0),
        (b"\"123456\xe2a\"", "InvalidUtf8", 7),
    ] {
        for sizes in CHUNKINGS {
            let error =
                rewrite_with(&mut JsonRewriter::new(limits), doc, sizes, &mut Keep).unwrap_err();
            assert_eq!(
                (kind_name(error.kind()).as_str(), error.offset()),
                (kind, offset),
                "{sizes:?}: {error}"
            );
        }
    }
    let error =
        rewrite_with(&mut JsonRewriter::new(limits), b"[[[[1]]]]", &[], &mut Keep).unwrap_err();
    assert!(
        matches!(error.kind(), JsonErrorKind::TooDeep { limit: 3 }),
        "{error}"
    );
    assert_eq!((error.offset(), error.path()), (3, "$[0][0][0]"));
}

#[test]
fn visitor_errors_stop_the_stream() {
    let mut failing =
        |path: &Path<'_>, _: Scalar<'_>, _: &mut Vec<u8>| -> Result<bool, VisitError> {
            if path.last() == Some(Segment::Key("bad")) {
                Err(VisitError::new("no key for this operator"))
            } else {
                Ok(false)
            }
        };
    let mut rw = JsonRewriter::default();
    let mut out = Vec::new();
    rw.push(br#"{"ok": 1, "bad": "x"#, &mut failing, &mut out)
        .unwrap();
    let error = rw
        .push(br#"yz", "more": 2}"#, &mut failing, &mut out)
        .unwrap_err();
    assert!(matches!(error.kind(), JsonErrorKind::Visitor(_)));
    assert_eq!(
        error.to_string(),
        "no key for this operator at byte 17 ($.bad)"
    );
    let again = rw.push(b"}", &mut failing, &mut out).unwrap_err();
    assert!(matches!(again.kind(), JsonErrorKind::Failed));
    assert!(matches!(
        rw.finish(&mut failing, &mut out).unwrap_err().kind(),
        JsonErrorKind::Failed
    ));
    // `reset` starts over; `finish` does too, so one rewriter serves many bodies.
    rw.reset();
    out.clear();
    rw.push(b"[1]", &mut failing, &mut out).unwrap();
    rw.finish(&mut failing, &mut out).unwrap();
    rw.push(b"[2]", &mut failing, &mut out).unwrap();
    rw.finish(&mut failing, &mut out).unwrap();
    assert_eq!(out, b"[1][2]");
}

#[test]
fn ndjson_lines() {
    let input = b"{\"a\":1}\n\n{\"a\":\"x\"}\r\n  \r\n[3, \"y\"]\n\t\n42";
    for sizes in CHUNKINGS {
        let mut record = Record::default();
        let out = rewrite_ndjson(input, sizes, &mut record).unwrap();
        assert_eq!(out, input);
        let seen: Vec<_> = record
            .seen
            .iter()
            .map(|(p, _, v)| (p.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("$.a", "Number(\"1\")"),
                ("$.a", "String(\"x\")"),
                ("$[0]", "Number(\"3\")"),
                ("$[1]", "String(\"y\")"),
                ("$", "Number(\"42\")"),
            ]
        );
        let out = rewrite_ndjson(input, sizes, &mut ReplaceStrings).unwrap();
        assert_eq!(
            out,
            b"{\"a\":1}\n\n{\"a\":\"<1|x>\"}\r\n  \r\n[3, \"<1|y>\"]\n\t\n42"
        );
    }
    let mut rw = NdjsonRewriter::default();
    let mut out = Vec::new();
    rw.push(b"1\n2\n\n{}\n", &mut Keep, &mut out).unwrap();
    assert_eq!((rw.records(), rw.line()), (3, 5));
    rw.finish(&mut Keep, &mut out).unwrap();
    for empty in [&b""[..], b"\n", b"\r\n \n\t"] {
        assert_eq!(rewrite_ndjson(empty, &[], &mut Keep).unwrap(), empty);
    }
}

#[test]
fn ndjson_errors_name_the_line() {
    let cases: &[(&[u8], &str, u64, u64)] = &[
        (b"{\"a\":1}\n{\"a\":}\n{}", "Unexpected", 2, 13),
        (b"{}\n\n\r\n[1,]\n", "TrailingComma", 4, 8),
        (b"{\"a\":\n1}", "NewlineInValue", 1, 5),
        (b"[1,\r\n2]", "NewlineInValue", 1, 4),
        (b"1 2\n", "TrailingData", 1, 2),
        (b"{} {}\n", "TrailingData", 1, 3),
        (b"{\"a\":1}\n{\"b\"", "UnexpectedEnd", 2, 12),
        (b"1\n\"open\n\"", "ControlCharacter", 2, 7),
        (b"1\n2\n3\n-", "InvalidNumber", 4, 6),
    ];
    for (input, kind, line, offset) in cases {
        for sizes in CHUNKINGS {
            let error = rewrite_ndjson(input, sizes, &mut Keep).unwrap_err();
            assert_eq!(
                (
                    kind_name(error.kind()).as_str(),
                    error.line(),
                    error.offset()
                ),
                (*kind, Some(*line), *offset),
                "{:?}: {error}",
                String::from_utf8_lossy(input)
            );
            assert!(
                error.to_string().starts_with(&format!("line {line}: ")),
                "{error}"
            );
        }
    }
}

#[test]
fn memory_does_not_grow_with_the_document() {
    let record = br#"{"id":1,"name":"Alice \"A\" Smith","tags":["x","y\u00e9"],"nested":{"deep":[[{"k":"v"}]]},"n":-1.5e3}"#;
    let mut doc = b"[".to_vec();
    for i in 0..50_000 {
        if i > 0 {
            doc.push(b',');
        }
        doc.extend_from_slice(record);
    }
    doc.push(b']');
    let mut rw = JsonRewriter::default();
    let mut out = Vec::new();
    let mut max = 0;
    for chunk in doc.chunks(4093) {
        rw.push(chunk, &mut ReplaceStrings, &mut out).unwrap();
        max = max.max(rw.memory_usage());
        out.clear();
    }
    rw.finish(&mut ReplaceStrings, &mut out).unwrap();
    assert!(max < 4096, "{max} bytes for a {} byte document", doc.len());
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z \"\\\\/\u{0}-\u{1f}é€😀\u{2028}]{0,12}",
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(arb_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![]),
        Just(vec![1]),
        prop::collection::vec(1usize..40, 1..20),
    ]
}

/// Bytes that look like JSON, to reach deep into the tokenizer.
const JSONISH: &[u8] = b"{}[],:\"\"\"\\\\u0aD8dE9f1-+.eE0 \n\r\ttrufalsn\xc3\xa9\xed\xa0\x80\xf0\x9f\x98\x80\xff\x01xy";

/// What a run gave, comparable across chunkings.
fn outcome(
    result: &Result<Vec<u8>, JsonError>,
) -> Result<Vec<u8>, (String, u64, Option<u64>, String)> {
    match result {
        Ok(out) => Ok(out.clone()),
        Err(e) => Err((
            kind_name(e.kind()),
            e.offset(),
            e.line(),
            e.path().to_owned(),
        )),
    }
}

/// Runs `input` with small limits, checking the memory after each chunk.
fn run_bounded(input: &[u8], sizes: &[usize], ndjson: bool) -> Result<Vec<u8>, JsonError> {
    let limits = Limits {
        max_depth: 16,
        max_string_bytes: 32,
    };
    let mut json = JsonRewriter::new(limits);
    let mut lines = NdjsonRewriter::new(limits);
    let mut out = Vec::new();
    let mut visitor = ReplaceStrings;
    for chunk in chunks(input, sizes) {
        if ndjson {
            lines.push(chunk, &mut visitor, &mut out)?;
        } else {
            json.push(chunk, &mut visitor, &mut out)?;
        }
        let used = if ndjson {
            lines.memory_usage()
        } else {
            json.memory_usage()
        };
        // Frames and keys for 16 levels, two 32-byte strings, the replacement.
        assert!(used <= 4096, "{used} bytes held");
    }
    if ndjson {
        lines.finish(&mut visitor, &mut out)?;
    } else {
        json.finish(&mut visitor, &mut out)?;
    }
    Ok(out)
}

proptest! {
    #[test]
    fn any_value_any_chunking_keep_and_replace(value in arb_json(), sizes in arb_sizes(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_vec_pretty(&value).unwrap() } else { serde_json::to_vec(&value).unwrap() };
        let out = rewrite(&text, &sizes, &mut Keep).unwrap();
        prop_assert_eq!(&out, &text);
        let replaced = rewrite(&text, &sizes, &mut ReplaceStrings).unwrap();
        let parsed: Value = serde_json::from_slice(&replaced).unwrap();
        // Parse the input too, so both sides read numbers the same way.
        let expected = transform_value(&serde_json::from_slice::<Value>(&text).unwrap());
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn rules_agree_with_pattern_matching(value in arb_json(), sizes in arb_sizes()) {
        let patterns = ["$..a", "$[*][0]", "$.*.b", "$..['é']..*", "$[1]", "$['']"];
        let rules: PathRules<&str> = patterns.iter().map(|p| (p.parse().unwrap(), *p)).collect();
        let text = serde_json::to_vec(&value).unwrap();
        let mut checked = |path: &Path<'_>, _: Scalar<'_>, _: &mut Vec<u8>| -> Result<bool, VisitError> {
            let segments: Vec<Segment<'_>> = path.segments().collect();
            let expected = patterns.iter().position(|p| p.parse::<PathPattern>().unwrap().matches(&segments));
            assert_eq!(path.rule(), expected, "{path}");
            assert_eq!(rules.find(&segments), expected, "{path}");
            Ok(false)
        };
        let mut rw = JsonRewriter::with_rules(&rules, Limits::default());
        rewrite_with(&mut rw, &text, &sizes, &mut checked).unwrap();
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_fail_alike(
        input in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(prop::sample::select(JSONISH.to_vec()), 0..300),
        ],
        sizes in arb_sizes(),
        ndjson in any::<bool>(),
    ) {
        let whole = run_bounded(&input, &[], ndjson);
        let chunked = run_bounded(&input, &sizes, ndjson);
        prop_assert_eq!(outcome(&whole), outcome(&chunked));
        if let Err(e) = &whole {
            prop_assert!(e.offset() <= input.len() as u64);
        }
    }

    #[test]
    fn mutated_documents_never_panic_and_fail_alike(
        value in arb_json(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(JSONISH.to_vec())), 1..4),
        sizes in arb_sizes(),
        ndjson in any::<bool>(),
    ) {
        let mut input = serde_json::to_vec(&value).unwrap();
        for (at, op, byte) in edits {
            let i = at.index(input.len() + 1);
            match op {
                0 => input.insert(i, byte),
                1 if i < input.len() => { input.remove(i); }
                _ if i < input.len() => input[i] = byte,
                _ => input.push(byte),
            }
        }
        let whole = run_bounded(&input, &[], ndjson);
        let chunked = run_bounded(&input, &sizes, ndjson);
        prop_assert_eq!(outcome(&whole), outcome(&chunked));
        // What passes is what serde_json accepts (its `Value` rejects lone
        // surrogates too), short of our limits and its number range.
        if !ndjson {
            let ours_limited = whole.as_ref().is_err_and(|e| matches!(e.kind(), JsonErrorKind::TooLong { .. } | JsonErrorKind::TooDeep { .. }));
            let theirs = serde_json::from_slice::<Value>(&input);
            let theirs_limited = theirs.as_ref().is_err_and(|e| e.to_string().contains("out of range"));
            if !ours_limited && !theirs_limited {
                prop_assert_eq!(whole.is_ok(), theirs.is_ok(), "{:?}: {:?}", String::from_utf8_lossy(&input), theirs.err());
            }
        }
    }
}

/// Throughput on ~50 MB of API-like records (wall clock: run it on a quiet
/// machine). Run with
/// `cargo test --profile bench -p anonymize --test json_stream -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    use std::time::Instant;
    let mut records = Vec::new();
    let mut size = 0;
    while size < 50 << 20 {
        let i = records.len();
        let record = format!(
            r#"{{"id":{i},"name":"User Number {i}","email":"user{i}@example.com","ip":"10.{}.{}.{}","created":"2024-03-{:02}T12:34:56Z","active":{},"score":{}.5,"tags":["alpha","beta","gamma"],"address":{{"street":"{} Main Street","city":"Springfield","zip":"{:05}","geo":{{"lat":48.8566,"lon":2.3522}}}},"note":"line one\nline \"two\" caf\u00e9"}}"#,
            i % 256,
            (i / 256) % 256,
            i % 253,
            i % 28 + 1,
            i % 3 == 0,
            i % 100,
            i % 999,
            i % 99999
        );
        size += record.len() + 2;
        records.push(record);
    }
    let json = format!("[{}]", records.join(",\n")).into_bytes();
    let ndjson = (records.join("\n") + "\n").into_bytes();
    let mb = json.len() as f64 / 1e6;
    let rules: PathRules<()> = [
        "$[*].email",
        "$..ip",
        "$[*].address.street",
        "$..geo",
        "$[*].name",
    ]
    .iter()
    .map(|p| (p.parse().unwrap(), ()))
    .collect();
    let mut out = Vec::with_capacity(1 << 20);
    let mut best = |run: &mut dyn FnMut(&mut Vec<u8>)| {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let start = Instant::now();
            run(&mut out);
            best = best.min(start.elapsed().as_secs_f64());
        }
        mb / best
    };
    let mut json_run = |name: &str, rw: &mut JsonRewriter, v: &mut dyn Visitor| {
        let speed = best(&mut |out| {
            for chunk in json.chunks(64 << 10) {
                rw.push(chunk, v, out).unwrap();
                out.clear();
            }
            rw.finish(v, out).unwrap();
        });
        println!("JSON, {name}: {speed:.0} MB/s");
    };
    let mut fixed = |_: &Path<'_>, v: Scalar<'_>, out: &mut Vec<u8>| -> Result<bool, VisitError> {
        if let Scalar::String(_) = v {
            out.extend_from_slice(b"\"<REDACTED>\"");
            return Ok(true);
        }
        Ok(false)
    };
    let mut reencode =
        |_: &Path<'_>, v: Scalar<'_>, out: &mut Vec<u8>| -> Result<bool, VisitError> {
            if let Scalar::String(s) = v {
                write_json_string(s, out);
                return Ok(true);
            }
            Ok(false)
        };
    let mut by_rule =
        |path: &Path<'_>, _: Scalar<'_>, out: &mut Vec<u8>| -> Result<bool, VisitError> {
            if path.rule().is_some() {
                out.extend_from_slice(b"null");
                return Ok(true);
            }
            Ok(false)
        };
    println!("{mb:.0} MB, {} records, 64 KiB chunks", records.len());
    json_run("keep all", &mut JsonRewriter::default(), &mut Keep);
    json_run(
        "every string replaced by a constant",
        &mut JsonRewriter::default(),
        &mut fixed,
    );
    json_run(
        "every string decoded and re-encoded",
        &mut JsonRewriter::default(),
        &mut reencode,
    );
    let limits = Limits::default();
    json_run(
        "5 rules, keep all",
        &mut JsonRewriter::with_rules(&rules, limits),
        &mut Keep,
    );
    json_run(
        "5 rules, matches replaced",
        &mut JsonRewriter::with_rules(&rules, limits),
        &mut by_rule,
    );
    let mut rw = NdjsonRewriter::default();
    let speed = best(&mut |out| {
        for chunk in ndjson.chunks(64 << 10) {
            rw.push(chunk, &mut Keep, out).unwrap();
            out.clear();
        }
        rw.finish(&mut Keep, out).unwrap();
    });
    println!("NDJSON, keep all: {speed:.0} MB/s");
    let start = Instant::now();
    let value: Value = serde_json::from_slice(&json).unwrap();
    let len = serde_json::to_vec(&value).unwrap().len();
    let speed = mb / start.elapsed().as_secs_f64();
    println!("(serde_json to Value and back, for comparison: {speed:.0} MB/s, {len} bytes)");
}

#[test]
fn rewriters_and_errors_can_cross_threads() {
    fn send<T: Send + 'static>() {}
    send::<JsonRewriter>();
    send::<NdjsonRewriter>();
    send::<JsonError>();
    send::<PathRules<String>>();
}
