//! Streaming JSON and NDJSON rewriting in bounded memory.
//!
//! [`JsonRewriter`] (one RFC 8259 document) and [`NdjsonRewriter`] (JSON
//! Lines) read a body chunk by chunk — chunks split anywhere, inside
//! strings, escapes and numbers included — and write it back unchanged
//! except for the scalar values a [`Visitor`] replaces. The document is
//! never parsed whole: structure and blank space are copied through in
//! bulk; each string, number, `true`, `false` and `null` is handed to the
//! visitor with its [`Path`] (and the [`PathRules`] rule selecting it);
//! object keys are part of paths, never values.
//!
//! Input is validated strictly: one value (per line for NDJSON), no
//! trailing commas or comments, valid escapes, no unpaired surrogates,
//! valid UTF-8, no raw control characters in strings. A [`JsonError`]
//! gives what is wrong, the byte offset in the body, the line (NDJSON)
//! and the path, and quotes no input beyond the path's keys.
//!
//! # Memory
//!
//! What a rewriter holds depends on the nesting depth, the longest string
//! and the visitor's replacements — never on the size of the document or
//! of a line: per open container a few words plus its current key; one
//! string value being decoded and its raw bytes when it spans chunks (each
//! at most [`Limits::max_string_bytes`]); the replacement of the current
//! value. So the worst case is about `(max_depth + 2) × max_string_bytes`
//! (all open keys at the limit), typically kilobytes. Output is appended to
//! the caller's buffer as each chunk is read: about the chunk's size (plus
//! replacements), and a value cut by the chunk's end held until the next.
//! Exceeding [`Limits`] is an error ([`JsonErrorKind::TooDeep`],
//! [`JsonErrorKind::TooLong`]).
//!
//! # Example
//!
//! ```
//! use anonymize::json::{write_json_string, JsonRewriter, Limits, Path, PathRules, Scalar, VisitError};
//!
//! let rules: PathRules<&str> = [("$.user.email", "<EMAIL>"), ("$..ip", "<IP>")]
//!     .into_iter()
//!     .map(|(p, v)| Ok((p.parse()?, v)))
//!     .collect::<Result<_, anonymize::json::PathError>>()?;
//! let mut rewriter = JsonRewriter::with_rules(&rules, Limits::default());
//! let mut visitor = |path: &Path<'_>, _value: Scalar<'_>, out: &mut Vec<u8>| -> Result<bool, VisitError> {
//!     let Some(rule) = path.rule() else { return Ok(false) }; // keep
//!     write_json_string(rules[rule], out);
//!     Ok(true)
//! };
//! let mut out = Vec::new();
//! for chunk in [&br#"{"user": {"email": "a@b.example", "age": 7}, "ev"#[..], br#"ents": [{"ip": "10.0.0.1"}]}"#] {
//!     rewriter.push(chunk, &mut visitor, &mut out)?;
//! }
//! rewriter.finish(&mut visitor, &mut out)?;
//! assert_eq!(out, br#"{"user": {"email": "<EMAIL>", "age": 7}, "events": [{"ip": "<IP>"}]}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod path;
mod rewriter;

pub use path::{
    Path, PathError, PathPattern, PathRules, PatternSegment, Segment, Segments, Selector,
};
pub use rewriter::{JsonError, JsonErrorKind, JsonRewriter, Limits, NdjsonRewriter};

/// A scalar value as the visitor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'a> {
    /// A string, decoded (escapes resolved; valid Unicode).
    String(&'a str),
    /// A number, as written (`-0.0`, `1e400`: no precision is lost).
    Number(&'a str),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// Decides, for each scalar value, whether to keep it or what replaces it.
///
/// Closures `FnMut(&Path<'_>, Scalar<'_>, &mut Vec<u8>) -> Result<bool,
/// VisitError>` are visitors.
pub trait Visitor {
    /// Called for each scalar value in document order. `path` is where it
    /// is ([`Path::rule`]: the rule selecting it); `out` is empty. Return
    /// `Ok(false)` to keep the value as written (whatever is in `out` is
    /// dropped), or write exactly one JSON value into `out` (see
    /// [`write_json_string`]) and return `Ok(true)`. An error stops the
    /// rewriting.
    fn scalar(
        &mut self,
        path: &Path<'_>,
        value: Scalar<'_>,
        out: &mut Vec<u8>,
    ) -> Result<bool, VisitError>;
}

impl<F> Visitor for F
where
    F: FnMut(&Path<'_>, Scalar<'_>, &mut Vec<u8>) -> Result<bool, VisitError>,
{
    fn scalar(
        &mut self,
        path: &Path<'_>,
        value: Scalar<'_>,
        out: &mut Vec<u8>,
    ) -> Result<bool, VisitError> {
        self(path, value, out)
    }
}

/// Why a visitor failed; ends the rewriting as [`JsonErrorKind::Visitor`].
#[derive(Debug)]
pub struct VisitError {
    message: std::borrow::Cow<'static, str>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl VisitError {
    /// An error with this message (which should not quote the value).
    pub fn new(message: impl Into<std::borrow::Cow<'static, str>>) -> VisitError {
        VisitError {
            message: message.into(),
            source: None,
        }
    }

    /// An error with this message, caused by `source`.
    pub fn with_source(
        message: impl Into<std::borrow::Cow<'static, str>>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> VisitError {
        VisitError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for VisitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VisitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// Per byte: 0, or the letter after `\` in its escape (`u`: `\u00XX`).
static ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `s` as a JSON string: quoted, with `"`, `\` and control
/// characters escaped (RFC 8259), everything else as UTF-8.
pub fn write_json_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPES[usize::from(b)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_json_strings() {
        let mut out = Vec::new();
        write_json_string("a\"b\\c\n\u{1}\u{1f}é😀/\u{7f}", &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "\"a\\\"b\\\\c\\n\\u0001\\u001fé😀/\u{7f}\""
        );
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1}\u{1f}é😀/\u{7f}");
        for c in (0u32..0x80).filter_map(char::from_u32) {
            let s = c.to_string();
            let mut out = Vec::new();
            write_json_string(&s, &mut out);
            assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
        }
    }

    #[test]
    fn visits_with_paths_and_rules() {
        let rules: PathRules<u8> = [("$.a[*]", 0), ("$..z", 1)]
            .into_iter()
            .map(|(p, v)| (p.parse().unwrap(), v))
            .collect();
        let mut seen = Vec::new();
        let mut visitor =
            |path: &Path<'_>, value: Scalar<'_>, _: &mut Vec<u8>| -> Result<bool, VisitError> {
                seen.push((path.to_string(), path.rule(), format!("{value:?}")));
                Ok(false)
            };
        let doc = br#"{"a": [1, {"b": "x\u00e9"}], "k": {"z": [true, null]}, "z": -0.5e3}"#;
        let mut rw = JsonRewriter::with_rules(&rules, Limits::default());
        let mut out = Vec::new();
        for chunk in doc.chunks(3) {
            rw.push(chunk, &mut visitor, &mut out).unwrap();
        }
        rw.finish(&mut visitor, &mut out).unwrap();
        assert_eq!(out, doc);
        let expected = [
            ("$.a[0]", Some(0), "Number(\"1\")"),
            ("$.a[1].b", Some(0), "String(\"xé\")"),
            ("$.k.z[0]", Some(1), "Bool(true)"),
            ("$.k.z[1]", Some(1), "Null"),
            ("$.z", Some(1), "Number(\"-0.5e3\")"),
        ];
        let seen: Vec<_> = seen
            .iter()
            .map(|(p, r, v)| (p.as_str(), *r, v.as_str()))
            .collect();
        assert_eq!(seen, expected);
    }
}
