//! The incremental tokenizer and rewriter behind [`JsonRewriter`] and
//! [`NdjsonRewriter`].

use std::fmt;

use memchr::memchr2;

use super::path::{Frame, Matcher, Path, PathRules, error_path};
use super::{Scalar, VisitError, Visitor};

/// Bounds on the memory a rewriter holds, whatever the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of objects and arrays (default 128).
    pub max_depth: usize,
    /// Longest string, object key or number, in bytes as written between
    /// the quotes (escapes count as written; default 1 MiB).
    pub max_string_bytes: usize,
}

impl Limits {
    /// The default nesting limit.
    pub const DEFAULT_MAX_DEPTH: usize = 128;
    /// The default string, key and number limit: 1 MiB.
    pub const DEFAULT_MAX_STRING_BYTES: usize = 1 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: Limits::DEFAULT_MAX_DEPTH,
            max_string_bytes: Limits::DEFAULT_MAX_STRING_BYTES,
        }
    }
}

/// What is wrong with the input (or the visitor). Messages never quote the
/// input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// Nothing but blank space: a JSON body holds one value.
    #[error("empty body: expected a JSON value")]
    Empty,
    /// The input stops inside a value (truncated).
    #[error("unexpected end of input: expected {expected}")]
    UnexpectedEnd {
        /// What would have been valid.
        expected: &'static str,
    },
    /// A character that cannot come here.
    #[error("unexpected character: expected {expected}")]
    Unexpected {
        /// What would have been valid.
        expected: &'static str,
    },
    /// A `,` just before `}` or `]` (the offset is the comma's).
    #[error("trailing comma")]
    TrailingComma,
    /// More after the value: a second top-level value (or, in NDJSON, a
    /// second value on one line).
    #[error("unexpected data after the end of the value")]
    TrailingData,
    /// NDJSON: a line break inside a value (each value is on one line).
    #[error("line break inside a value (NDJSON has one value per line)")]
    NewlineInValue,
    /// Not `true`, `false` or `null`.
    #[error("invalid literal: expected true, false or null")]
    InvalidLiteral,
    /// A malformed number (the offset is the number's start).
    #[error("invalid number: {reason}")]
    InvalidNumber {
        /// What is wrong.
        reason: &'static str,
    },
    /// A backslash not followed by one of `" \ / b f n r t u` (the offset is
    /// the backslash's).
    #[error("invalid escape sequence (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)")]
    InvalidEscape,
    /// `\u` not followed by four hex digits.
    #[error("invalid \\u escape: expected four hex digits")]
    InvalidUnicodeEscape,
    /// A `\u` escape of a UTF-16 surrogate without its other half (not
    /// Unicode text).
    #[error("unpaired UTF-16 surrogate in a \\u escape")]
    LoneSurrogate,
    /// Bytes that are not UTF-8 (the offset is the sequence's first byte).
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A raw byte below 0x20 in a string (it must be escaped).
    #[error("unescaped control character in a string")]
    ControlCharacter,
    /// [`Limits::max_depth`] exceeded (the offset is the bracket's).
    #[error("nesting deeper than max_depth ({limit})")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// [`Limits::max_string_bytes`] exceeded (the offset is the token's
    /// start).
    #[error("{what} longer than max_string_bytes ({limit} bytes)")]
    TooLong {
        /// `"string"`, `"key"` or `"number"`.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The visitor failed (the offset is the value's start).
    #[error(transparent)]
    Visitor(VisitError),
    /// `push` or `finish` after an error: the stream is abandoned (call
    /// `reset` to start a new one).
    #[error("the stream already failed")]
    Failed,
}

/// A rewriting error: what, where in the stream (byte offset from the
/// start of the body; for NDJSON also the line), and the JSON path of the
/// value being read. Displays as, e.g., `invalid escape sequence (…) at byte
/// 1234 ($.events[3].ip)` or `line 7: trailing comma at byte 811 ($.tags)`.
///
/// The path holds the document's keys (cut to 32 characters each); the
/// message quotes nothing else from the input.
#[derive(Debug)]
pub struct JsonError {
    kind: JsonErrorKind,
    offset: u64,
    line: Option<u64>,
    path: String,
}

impl JsonError {
    /// What went wrong.
    pub fn kind(&self) -> &JsonErrorKind {
        &self.kind
    }

    /// The byte offset in the whole body (see the kinds for which byte).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// NDJSON: the 1-based line.
    pub fn line(&self) -> Option<u64> {
        self.line
    }

    /// Where in the document, as a JSONPath (`$` at the top level).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The kind, owned (e.g. to get the visitor's error back).
    pub fn into_kind(self) -> JsonErrorKind {
        self.kind
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        write!(f, "{} at byte {} ({})", self.kind, self.offset, self.path)
    }
}

impl std::error::Error for JsonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            JsonErrorKind::Visitor(e) => Some(e),
            _ => None,
        }
    }
}

/// A streaming rewriter of one JSON document (RFC 8259).
///
/// Feed the body with [`push`](Self::push) in chunks of any size, split
/// anywhere, then call [`finish`](Self::finish). Output is appended to
/// `out` as soon as it is known: everything but a scalar value cut by the
/// chunk's end, which waits for the next chunk. After an error the output
/// so far is not a valid document and the rewriter refuses more input
/// until [`reset`](Self::reset).
#[derive(Debug)]
pub struct JsonRewriter(Core);

impl JsonRewriter {
    /// A rewriter without path rules ([`Path::rule`] is always `None`).
    pub fn new(limits: Limits) -> JsonRewriter {
        JsonRewriter(Core::new(limits, false, None))
    }

    /// A rewriter that tells the visitor which of `rules` selects each
    /// value (a snapshot: later changes to `rules` are not seen).
    pub fn with_rules<T>(rules: &PathRules<T>, limits: Limits) -> JsonRewriter {
        JsonRewriter(Core::new(limits, false, rules.program()))
    }

    /// Reads the next chunk, calling `visitor` for each complete scalar
    /// value and appending the output to `out`.
    pub fn push<V: Visitor + ?Sized>(
        &mut self,
        chunk: &[u8],
        visitor: &mut V,
        out: &mut Vec<u8>,
    ) -> Result<(), JsonError> {
        self.0.push(chunk, visitor, out)
    }

    /// Ends the document: visits a number cut by the end of the last chunk,
    /// checks that the value is complete, and resets the rewriter for the
    /// next document (keeping its buffers).
    pub fn finish<V: Visitor + ?Sized>(
        &mut self,
        visitor: &mut V,
        out: &mut Vec<u8>,
    ) -> Result<(), JsonError> {
        self.0.finish(visitor, out)
    }

    /// Forgets the current document (and any error).
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.0.offset
    }

    /// The heap bytes the rewriter holds: bounded by the limits (about
    /// `max_depth × max_string_bytes` for keys in the worst case, plus two
    /// strings), whatever the size of the document, plus whatever the
    /// visitor's replacements need.
    pub fn memory_usage(&self) -> usize {
        self.0.memory_usage()
    }
}

impl Default for JsonRewriter {
    fn default() -> Self {
        JsonRewriter::new(Limits::default())
    }
}

/// A streaming rewriter of NDJSON / JSON Lines: one JSON value per line,
/// each with its path starting at `$`.
///
/// Lines end with `\n` or `\r\n`; blank lines are skipped; the last line
/// needs no line break. A line break inside a value is an error (a string's
/// line breaks are escaped). Lines are never buffered whole: the same
/// tokenizer as [`JsonRewriter`] restarts at each line break between
/// values. Errors name the line.
#[derive(Debug)]
pub struct NdjsonRewriter(Core);

impl NdjsonRewriter {
    /// A rewriter without path rules.
    pub fn new(limits: Limits) -> NdjsonRewriter {
        NdjsonRewriter(Core::new(limits, true, None))
    }

    /// A rewriter that tells the visitor which of `rules` selects each
    /// value.
    pub fn with_rules<T>(rules: &PathRules<T>, limits: Limits) -> NdjsonRewriter {
        NdjsonRewriter(Core::new(limits, true, rules.program()))
    }

    /// Reads the next chunk (see [`JsonRewriter::push`]).
    pub fn push<V: Visitor + ?Sized>(
        &mut self,
        chunk: &[u8],
        visitor: &mut V,
        out: &mut Vec<u8>,
    ) -> Result<(), JsonError> {
        self.0.push(chunk, visitor, out)
    }

    /// Ends the stream (an empty one is valid) and resets the rewriter.
    pub fn finish<V: Visitor + ?Sized>(
        &mut self,
        visitor: &mut V,
        out: &mut Vec<u8>,
    ) -> Result<(), JsonError> {
        self.0.finish(visitor, out)
    }

    /// Forgets the current stream (and any error).
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.0.offset
    }

    /// The current 1-based line.
    pub fn line(&self) -> u64 {
        self.0.line
    }

    /// Values completed so far.
    pub fn records(&self) -> u64 {
        self.0.records
    }

    /// The heap bytes the rewriter holds (see [`JsonRewriter::memory_usage`]).
    pub fn memory_usage(&self) -> usize {
        self.0.memory_usage()
    }
}

impl Default for NdjsonRewriter {
    fn default() -> Self {
        NdjsonRewriter::new(Limits::default())
    }
}

/// What the tokenizer expects next, outside tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value: at the top, after `:`, after `,` in an array.
    Value,
    /// After `[`.
    ValueOrClose,
    /// After `{`.
    KeyOrClose,
    /// After `,` in an object.
    Key,
    Colon,
    /// After a value in a container.
    CommaOrClose,
    /// After the top-level value.
    End,
}

/// A token cut by a chunk's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    None,
    /// A string (state in `Core::scan`).
    Str,
    Num(Num),
    /// `true`, `false` or `null`, `pos` bytes matched.
    Lit {
        lit: u8,
        pos: u8,
    },
}

/// Where in a number: the RFC 8259 grammar, state after the last byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

impl Num {
    /// Why the number cannot end here (`None`: it can).
    fn incomplete(self) -> Option<&'static str> {
        match self {
            Num::Minus => Some("expected a digit after '-'"),
            Num::Dot => Some("expected a digit after '.'"),
            Num::Exp | Num::ExpSign => Some("expected a digit in the exponent"),
            Num::Zero | Num::Int | Num::Frac | Num::ExpDigits => None,
        }
    }
}

const LITERALS: [&[u8]; 3] = [b"true", b"false", b"null"];

/// A string being read across chunks.
#[derive(Debug, Clone, Copy)]
struct StrScan {
    key: bool,
    /// Stream offset of the opening quote.
    start: u64,
    /// Bytes read between the quotes.
    raw_len: usize,
    esc: Esc,
    /// Stream offset of the current escape's backslash.
    esc_start: u64,
    /// A high surrogate waiting for its low half, and its escape's offset.
    high: Option<(u32, u64)>,
    /// A UTF-8 sequence cut by the chunk's end.
    utf8: [u8; 4],
    utf8_len: u8,
    utf8_start: u64,
}

impl StrScan {
    fn new(key: bool, start: u64) -> StrScan {
        StrScan {
            key,
            start,
            raw_len: 0,
            esc: Esc::None,
            esc_start: 0,
            high: None,
            utf8: [0; 4],
            utf8_len: 0,
            utf8_start: 0,
        }
    }

    fn what(&self) -> &'static str {
        if self.key { "key" } else { "string" }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// After `\`.
    Backslash,
    /// After `\u` and `n` hex digits.
    Hex {
        n: u8,
        acc: u32,
    },
    /// After a high surrogate: `\` of the low one expected.
    LowBackslash,
    /// `u` of the low one expected.
    LowU,
}

/// A scalar value's contents, for `Core::emit`.
enum Val<'i> {
    /// A string without escapes, borrowed from the chunk.
    Str(&'i str),
    /// A string decoded into `Core::sbuf`.
    Buf,
    Num,
    Lit(u8),
}

const fn blank_table(newline: bool) -> [bool; 256] {
    let mut t = [false; 256];
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\r' as usize] = true;
    t[b'\n' as usize] = newline;
    t
}

static BLANK_JSON: [bool; 256] = blank_table(true);
static BLANK_NDJSON: [bool; 256] = blank_table(false);

type ScanError = (JsonErrorKind, u64);

/// The tokenizer's whole state; see the module documentation for the
/// memory it holds.
#[derive(Debug)]
struct Core {
    limits: Limits,
    ndjson: bool,
    expect: Expect,
    tok: Tok,
    scan: StrScan,
    /// Stream offset of the current token.
    tok_start: u64,
    frames: Vec<Frame>,
    /// The open members' decoded keys, outermost first.
    keys: String,
    /// A string value being decoded (escapes, or cut by a chunk's end).
    sbuf: String,
    /// The raw bytes of a scalar value cut by a chunk's end (`carry`).
    raw: Vec<u8>,
    carry: bool,
    /// The visitor's replacement.
    repl: Vec<u8>,
    matcher: Matcher,
    /// Stream offset of the current chunk.
    offset: u64,
    line: u64,
    records: u64,
    comma_at: u64,
    failed: bool,
}

impl Core {
    fn new(
        limits: Limits,
        ndjson: bool,
        program: Option<std::sync::Arc<super::path::Program>>,
    ) -> Core {
        Core {
            limits,
            ndjson,
            expect: Expect::Value,
            tok: Tok::None,
            scan: StrScan::new(false, 0),
            tok_start: 0,
            frames: Vec::new(),
            keys: String::new(),
            sbuf: String::new(),
            raw: Vec::new(),
            carry: false,
            repl: Vec::new(),
            matcher: Matcher::new(program),
            offset: 0,
            line: 1,
            records: 0,
            comma_at: 0,
            failed: false,
        }
    }

    fn reset(&mut self) {
        self.expect = Expect::Value;
        self.tok = Tok::None;
        self.frames.clear();
        self.keys.clear();
        self.sbuf.clear();
        self.raw.clear();
        self.carry = false;
        self.repl.clear();
        self.matcher.reset();
        self.offset = 0;
        self.line = 1;
        self.records = 0;
        self.failed = false;
    }

    fn memory_usage(&self) -> usize {
        self.frames.capacity() * size_of::<Frame>()
            + self.keys.capacity()
            + self.sbuf.capacity()
            + self.raw.capacity()
            + self.repl.capacity()
            + self.matcher.heap_bytes()
    }

    #[cold]
    fn fail(&mut self, kind: JsonErrorKind, offset: u64) -> JsonError {
        self.failed = true;
        JsonError {
            kind,
            offset,
            line: self.ndjson.then_some(self.line),
            path: error_path(&self.frames, &self.keys),
        }
    }

    /// What may come next, for messages.
    fn expected(&self) -> &'static str {
        let object = self.frames.last().is_some_and(|f| f.object);
        match self.expect {
            Expect::Value => "a value",
            Expect::ValueOrClose => "a value or ']'",
            Expect::KeyOrClose => "a key (a string) or '}'",
            Expect::Key => "a key (a string)",
            Expect::Colon => "':' after the key",
            Expect::CommaOrClose if object => "',' or '}'",
            Expect::CommaOrClose => "',' or ']'",
            Expect::End => "the end",
        }
    }

    fn push<V: Visitor + ?Sized>(
        &mut self,
        input: &[u8],
        v: &mut V,
        out: &mut Vec<u8>,
    ) -> Result<(), JsonError> {
        if self.failed {
            return Err(self.fail(JsonErrorKind::Failed, self.offset));
        }
        self.run(input, v, out)?;
        self.offset += input.len() as u64;
        Ok(())
    }

    fn finish<V: Visitor + ?Sized>(
        &mut self,
        v: &mut V,
        out: &mut Vec<u8>,
    ) -> Result<(), JsonError> {
        if self.failed {
            return Err(self.fail(JsonErrorKind::Failed, self.offset));
        }
        let end = self.offset;
        match self.tok {
            Tok::None => {}
            Tok::Num(state) => {
                if let Some(reason) = state.incomplete() {
                    return Err(self.fail(JsonErrorKind::InvalidNumber { reason }, self.tok_start));
                }
                self.tok = Tok::None;
                let mut copied = 0;
                self.emit(&[], 0, 0, Val::Num, &mut copied, v, out)?;
            }
            Tok::Str => {
                let expected = "the end of the string ('\"')";
                return Err(self.fail(JsonErrorKind::UnexpectedEnd { expected }, end));
            }
            Tok::Lit { .. } => {
                let expected = "the rest of true, false or null";
                return Err(self.fail(JsonErrorKind::UnexpectedEnd { expected }, end));
            }
        }
        match self.expect {
            Expect::End => {}
            Expect::Value if self.frames.is_empty() => {
                if !self.ndjson {
                    return Err(self.fail(JsonErrorKind::Empty, end));
                }
            }
            _ => {
                let expected = self.expected();
                return Err(self.fail(JsonErrorKind::UnexpectedEnd { expected }, end));
            }
        }
        self.reset();
        Ok(())
    }

    /// The state after a complete value.
    #[inline]
    fn after_value(&mut self) {
        if self.frames.is_empty() {
            self.expect = Expect::End;
            self.records += 1;
        } else {
            self.expect = Expect::CommaOrClose;
        }
    }

    /// Hands a complete scalar value (`input[ts..e]`, or `raw` then
    /// `input[..e]` if `carry`) to the visitor and outputs the result.
    /// `copied`: where the chunk's not yet output bytes start.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn emit<V: Visitor + ?Sized>(
        &mut self,
        input: &[u8],
        ts: usize,
        e: usize,
        val: Val<'_>,
        copied: &mut usize,
        v: &mut V,
        out: &mut Vec<u8>,
    ) -> Result<(), JsonError> {
        if self.carry {
            self.raw.extend_from_slice(&input[..e]);
        }
        let rule = self.matcher.rule(&self.frames, &self.keys);
        let raw: &[u8] = if self.carry { &self.raw } else { &input[ts..e] };
        let scalar = match val {
            Val::Str(s) => Scalar::String(s),
            Val::Buf => Scalar::String(&self.sbuf),
            // The grammar admits ASCII only.
            Val::Num => Scalar::Number(std::str::from_utf8(raw).unwrap_or_default()),
            Val::Lit(0) => Scalar::Bool(true),
            Val::Lit(1) => Scalar::Bool(false),
            Val::Lit(_) => Scalar::Null,
        };
        self.repl.clear();
        let path = Path::new(&self.frames, &self.keys, rule);
        match v.scalar(&path, scalar, &mut self.repl) {
            Ok(true) => {
                if !self.carry {
                    out.extend_from_slice(&input[*copied..ts]);
                }
                out.extend_from_slice(&self.repl);
                *copied = e;
            }
            Ok(false) => {
                if self.carry {
                    out.extend_from_slice(&self.raw);
                    *copied = e;
                }
            }
            Err(error) => return Err(self.fail(JsonErrorKind::Visitor(error), self.tok_start)),
        }
        self.carry = false;
        self.raw.clear();
        self.after_value();
        Ok(())
    }

    /// Continues a number from `state` at `*i`; `ts` is where it starts in
    /// this chunk (0 if it was carried in).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn number<V: Visitor + ?Sized>(
        &mut self,
        input: &[u8],
        ts: usize,
        i: &mut usize,
        mut state: Num,
        copied: &mut usize,
        v: &mut V,
        out: &mut Vec<u8>,
    ) -> Result<(), JsonError> {
        let result = scan_number(&mut state, input, i);
        let carried = if self.carry { self.raw.len() } else { 0 };
        if carried + (*i - ts) > self.limits.max_string_bytes {
            let kind = JsonErrorKind::TooLong {
                what: "number",
                limit: self.limits.max_string_bytes,
            };
            return Err(self.fail(kind, self.tok_start));
        }
        match result {
            Ok(true) => {
                self.tok = Tok::None;
                self.emit(input, ts, *i, Val::Num, copied, v, out)
            }
            Ok(false) => {
                self.tok = Tok::Num(state);
                Ok(())
            }
            Err(reason) => Err(self.fail(JsonErrorKind::InvalidNumber { reason }, self.tok_start)),
        }
    }

    /// Pushes a container.
    fn open(&mut self, object: bool, at: u64) -> Result<(), JsonError> {
        if self.frames.len() >= self.limits.max_depth {
            let limit = self.limits.max_depth;
            return Err(self.fail(JsonErrorKind::TooDeep { limit }, at));
        }
        self.matcher.enter(&self.frames, &self.keys);
        self.frames.push(Frame::new(object, self.keys.len()));
        self.expect = if object {
            Expect::KeyOrClose
        } else {
            Expect::ValueOrClose
        };
        Ok(())
    }

    /// Pops a container.
    fn close(&mut self) {
        if let Some(f) = self.frames.pop() {
            self.keys.truncate(f.key_start);
        }
        self.after_value();
    }

    /// The rewriting loop over one chunk.
    fn run<V: Visitor + ?Sized>(
        &mut self,
        input: &[u8],
        v: &mut V,
        out: &mut Vec<u8>,
    ) -> Result<(), JsonError> {
        let n = input.len();
        let base = self.offset;
        let max = self.limits.max_string_bytes;
        let blank = if self.ndjson {
            &BLANK_NDJSON
        } else {
            &BLANK_JSON
        };
        let valid = Valid::of(input);
        let mut i = 0;
        // Bytes before `copied` are output; the rest are copied in bulk
        // when a replacement or the chunk's end comes.
        let mut copied = 0;
        // Start of the current scalar value in this chunk.
        let mut ts = 0;
        // A token cut by the previous chunk's end.
        if self.tok != Tok::None {
            self.resume(input, valid, ts, &mut i, &mut copied, v, out)?;
        }
        while i < n {
            let b = input[i];
            if blank[usize::from(b)] {
                i += 1;
                while i < n && blank[usize::from(input[i])] {
                    i += 1;
                }
                continue;
            }
            if b == b'\n' {
                // NDJSON only: JSON counts it as blank.
                if self.frames.is_empty() && matches!(self.expect, Expect::Value | Expect::End) {
                    self.line += 1;
                    self.expect = Expect::Value;
                    i += 1;
                    continue;
                }
                return Err(self.fail(JsonErrorKind::NewlineInValue, base + i as u64));
            }
            match self.expect {
                Expect::Value | Expect::ValueOrClose => match b {
                    b'"' => {
                        ts = i;
                        self.tok_start = base + i as u64;
                        match fast_string(input, i + 1, max, valid) {
                            Fast::Done(end, text) => {
                                i = end;
                                self.emit(input, ts, i, Val::Str(text), &mut copied, v, out)?;
                            }
                            Fast::Slow => {
                                self.sbuf.clear();
                                self.scan = StrScan::new(false, self.tok_start);
                                self.tok = Tok::Str;
                                i += 1;
                                self.resume(input, valid, ts, &mut i, &mut copied, v, out)?;
                            }
                            Fast::Err(kind, at) => return Err(self.fail(kind, base + at as u64)),
                        }
                    }
                    b'{' | b'[' => {
                        self.open(b == b'{', base + i as u64)?;
                        i += 1;
                    }
                    b'-' | b'0'..=b'9' => {
                        ts = i;
                        self.tok_start = base + i as u64;
                        let state = match b {
                            b'-' => Num::Minus,
                            b'0' => Num::Zero,
                            _ => Num::Int,
                        };
                        i += 1;
                        self.number(input, ts, &mut i, state, &mut copied, v, out)?;
                    }
                    b't' | b'f' | b'n' => {
                        ts = i;
                        self.tok_start = base + i as u64;
                        let lit = match b {
                            b't' => 0,
                            b'f' => 1,
                            _ => 2,
                        };
                        let word = LITERALS[usize::from(lit)];
                        let take = word.len().min(n - i);
                        if input[i..i + take] != word[..take] {
                            return Err(self.fail(JsonErrorKind::InvalidLiteral, self.tok_start));
                        }
                        i += take;
                        if take == word.len() {
                            self.emit(input, ts, i, Val::Lit(lit), &mut copied, v, out)?;
                        } else {
                            self.tok = Tok::Lit {
                                lit,
                                pos: take as u8,
                            };
                        }
                    }
                    b']' if self.expect == Expect::ValueOrClose => {
                        self.close();
                        i += 1;
                    }
                    b']' if self.frames.last().is_some_and(|f| !f.object) => {
                        return Err(self.fail(JsonErrorKind::TrailingComma, self.comma_at));
                    }
                    _ => {
                        let expected = self.expected();
                        return Err(
                            self.fail(JsonErrorKind::Unexpected { expected }, base + i as u64)
                        );
                    }
                },
                Expect::KeyOrClose | Expect::Key => match b {
                    b'"' => {
                        let Some(top) = self.frames.last() else {
                            break;
                        };
                        self.keys.truncate(top.key_start);
                        match fast_string(input, i + 1, max, valid) {
                            Fast::Done(end, text) => {
                                self.keys.push_str(text);
                                self.key_done();
                                i = end;
                            }
                            Fast::Slow => {
                                self.scan = StrScan::new(true, base + i as u64);
                                self.tok = Tok::Str;
                                i += 1;
                                self.resume(input, valid, ts, &mut i, &mut copied, v, out)?;
                            }
                            Fast::Err(kind, at) => return Err(self.fail(kind, base + at as u64)),
                        }
                    }
                    b'}' if self.expect == Expect::KeyOrClose => {
                        self.close();
                        i += 1;
                    }
                    b'}' => return Err(self.fail(JsonErrorKind::TrailingComma, self.comma_at)),
                    _ => {
                        let expected = self.expected();
                        return Err(
                            self.fail(JsonErrorKind::Unexpected { expected }, base + i as u64)
                        );
                    }
                },
                Expect::Colon => {
                    if b != b':' {
                        let expected = self.expected();
                        return Err(
                            self.fail(JsonErrorKind::Unexpected { expected }, base + i as u64)
                        );
                    }
                    self.expect = Expect::Value;
                    i += 1;
                }
                Expect::CommaOrClose => {
                    let object = self.frames.last().is_some_and(|f| f.object);
                    match (b, object) {
                        (b',', _) => {
                            self.comma_at = base + i as u64;
                            if let Some(top) = self.frames.last_mut() {
                                if object {
                                    top.has_key = false;
                                    self.expect = Expect::Key;
                                } else {
                                    top.index += 1;
                                    self.expect = Expect::Value;
                                }
                            }
                            i += 1;
                        }
                        (b'}', true) | (b']', false) => {
                            self.close();
                            i += 1;
                        }
                        _ => {
                            let expected = self.expected();
                            return Err(
                                self.fail(JsonErrorKind::Unexpected { expected }, base + i as u64)
                            );
                        }
                    }
                }
                Expect::End => return Err(self.fail(JsonErrorKind::TrailingData, base + i as u64)),
            }
        }
        // The chunk's end: output all but a scalar value cut short.
        let value_pending = match self.tok {
            Tok::None => false,
            Tok::Str => !self.scan.key,
            Tok::Num(_) | Tok::Lit { .. } => true,
        };
        if !value_pending {
            out.extend_from_slice(&input[copied..]);
        } else if self.carry {
            self.raw.extend_from_slice(input);
        } else {
            out.extend_from_slice(&input[copied..ts]);
            self.raw.clear();
            self.raw.extend_from_slice(&input[ts..]);
            self.carry = true;
        }
        Ok(())
    }

    /// Continues the current token at `*i` until it ends or the chunk does.
    #[allow(clippy::too_many_arguments)]
    fn resume<V: Visitor + ?Sized>(
        &mut self,
        input: &[u8],
        valid: Valid<'_>,
        ts: usize,
        i: &mut usize,
        copied: &mut usize,
        v: &mut V,
        out: &mut Vec<u8>,
    ) -> Result<(), JsonError> {
        match self.tok {
            Tok::None => Ok(()),
            Tok::Str => {
                let key = self.scan.key;
                let target = if key { &mut self.keys } else { &mut self.sbuf };
                let max = self.limits.max_string_bytes;
                match scan_string(&mut self.scan, input, i, self.offset, max, target, valid) {
                    Ok(true) => {
                        self.tok = Tok::None;
                        if key {
                            self.key_done();
                            Ok(())
                        } else {
                            self.emit(input, ts, *i, Val::Buf, copied, v, out)
                        }
                    }
                    Ok(false) => Ok(()),
                    Err((kind, at)) => Err(self.fail(kind, at)),
                }
            }
            Tok::Num(state) => self.number(input, ts, i, state, copied, v, out),
            Tok::Lit { lit, pos } => {
                let word = LITERALS[usize::from(lit)];
                let pos = usize::from(pos);
                let take = (word.len() - pos).min(input.len() - *i);
                if input[*i..*i + take] != word[pos..pos + take] {
                    return Err(self.fail(JsonErrorKind::InvalidLiteral, self.tok_start));
                }
                *i += take;
                if pos + take == word.len() {
                    self.tok = Tok::None;
                    self.emit(input, ts, *i, Val::Lit(lit), copied, v, out)
                } else {
                    self.tok = Tok::Lit {
                        lit,
                        pos: (pos + take) as u8,
                    };
                    Ok(())
                }
            }
        }
    }

    /// The innermost object's current key is complete in `keys`.
    #[inline]
    fn key_done(&mut self) {
        let len = self.keys.len();
        if let Some(top) = self.frames.last_mut() {
            top.key_end = len;
            top.has_key = true;
        }
        self.expect = Expect::Colon;
    }
}

/// A string read in one go.
enum Fast<'i> {
    /// Complete, without escapes: the index after the closing quote and
    /// the contents.
    Done(usize, &'i str),
    /// Has escapes, goes past the chunk or past the limit: scan it.
    Slow,
    /// Invalid at this index of the chunk.
    Err(JsonErrorKind, usize),
}

/// The chunk's longest valid UTF-8 stretch, from its first character
/// boundary. Outside strings JSON is ASCII, so one validation per chunk
/// covers the strings inside the stretch.
#[derive(Clone, Copy)]
struct Valid<'i> {
    start: usize,
    text: &'i str,
}

impl<'i> Valid<'i> {
    fn of(input: &'i [u8]) -> Valid<'i> {
        // Skip the end of a character begun in the previous chunk.
        let start = input
            .iter()
            .take(3)
            .take_while(|&&b| b & 0xC0 == 0x80)
            .count();
        let rest = &input[start..];
        let text = match std::str::from_utf8(rest) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
        };
        Valid { start, text }
    }

    /// `input[a..b]` as text, if inside the stretch and on character
    /// boundaries.
    #[inline]
    fn get(&self, a: usize, b: usize) -> Option<&'i str> {
        if a < self.start {
            return None;
        }
        self.text.get(a - self.start..b - self.start)
    }
}

/// Bytes that end a run of plain string contents.
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Bit 7 of each byte of `w` that is `"`, `\` or below 0x20, exact up to
/// the first such byte (higher ones may be false positives).
#[inline]
fn stop_bits(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (quote | backslash | control) & HIGH
}

/// The index of the first `"`, `\` or control character at or after
/// `from`, or the chunk's length: eight bytes at a time for short strings,
/// memchr for long ones.
#[inline]
fn string_end(input: &[u8], from: usize) -> usize {
    let n = input.len();
    let mut j = from;
    let swar_end = n.min(from + 64);
    while j + 8 <= swar_end {
        let Ok(word) = <[u8; 8]>::try_from(&input[j..j + 8]) else {
            break;
        };
        let bits = stop_bits(u64::from_le_bytes(word));
        if bits != 0 {
            return j + (bits.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    if j + 8 > n {
        while j < n {
            if STOP[usize::from(input[j])] {
                return j;
            }
            j += 1;
        }
        return n;
    }
    let k = memchr2(b'"', b'\\', &input[j..]).map_or(n, |k| j + k);
    match first_control(&input[j..k]) {
        Some(p) => j + p,
        None => k,
    }
}

/// The first `"` or `\`.
#[inline]
fn find_delimiter(s: &[u8]) -> Option<usize> {
    let short = s.len().min(16);
    if let Some(j) = s[..short].iter().position(|&b| b == b'"' || b == b'\\') {
        return Some(j);
    }
    memchr2(b'"', b'\\', &s[short..]).map(|k| k + short)
}

/// Reads a string whose contents start at `from` if it ends in the chunk
/// without escapes, control characters or going over `max`.
#[inline]
fn fast_string<'i>(input: &'i [u8], from: usize, max: usize, valid: Valid<'i>) -> Fast<'i> {
    let end = string_end(input, from);
    if end == input.len() || input[end] != b'"' || end - from > max {
        return Fast::Slow;
    }
    let text = match valid.get(from, end) {
        Some(text) => text,
        None => match std::str::from_utf8(&input[from..end]) {
            Ok(text) => text,
            Err(e) => return Fast::Err(JsonErrorKind::InvalidUtf8, from + e.valid_up_to()),
        },
    };
    Fast::Done(end + 1, text)
}

/// The index of the first byte below 0x20.
#[inline]
fn first_control(run: &[u8]) -> Option<usize> {
    let any = run
        .chunks(32)
        .any(|c| c.iter().fold(false, |found, &b| found | (b < 0x20)));
    if any {
        run.iter().position(|&b| b < 0x20)
    } else {
        None
    }
}

fn hex_digit(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// Continues a string at `*i` (inside the quotes), decoding into `target`.
/// `Ok(true)`: it ended (`*i` after the closing quote); `Ok(false)`: the
/// chunk ended. Errors come in byte order whatever the chunking; a string
/// is too long when byte `max` between the quotes would be read.
fn scan_string(
    s: &mut StrScan,
    input: &[u8],
    i: &mut usize,
    base: u64,
    max: usize,
    target: &mut String,
    valid: Valid<'_>,
) -> Result<bool, ScanError> {
    let n = input.len();
    let too_long = |s: &StrScan| {
        (
            JsonErrorKind::TooLong {
                what: s.what(),
                limit: max,
            },
            s.start,
        )
    };
    while *i < n {
        let at = base + *i as u64;
        let b = input[*i];
        if s.esc == Esc::None && s.utf8_len == 0 {
            // A run up to the next quote or backslash.
            let rest = &input[*i..];
            let k = find_delimiter(rest).unwrap_or(rest.len());
            let room = max - s.raw_len;
            let over = k > room;
            let run = &rest[..k.min(room)];
            let control = first_control(run);
            if let Some(text) = valid.get(*i, *i + run.len()) {
                if let Some(p) = control {
                    return Err((JsonErrorKind::ControlCharacter, at + p as u64));
                }
                target.push_str(text);
            } else {
                match std::str::from_utf8(run) {
                    Ok(text) => {
                        if let Some(p) = control {
                            return Err((JsonErrorKind::ControlCharacter, at + p as u64));
                        }
                        target.push_str(text);
                    }
                    Err(e) => {
                        let good = e.valid_up_to();
                        if let Some(p) = control.filter(|&p| p < good) {
                            return Err((JsonErrorKind::ControlCharacter, at + p as u64));
                        }
                        if e.error_len().is_some() {
                            return Err((JsonErrorKind::InvalidUtf8, at + good as u64));
                        }
                        // Cut by a quote, or by a backslash (content: too long
                        // at index `max`).
                        if !over && k < rest.len() {
                            if k == room && rest[k] == b'\\' {
                                return Err(too_long(s));
                            }
                            return Err((JsonErrorKind::InvalidUtf8, at + good as u64));
                        }
                        if let Ok(text) = std::str::from_utf8(&run[..good]) {
                            target.push_str(text);
                        }
                        if !over {
                            // Cut by the chunk's end: finish it with the next.
                            let tail = &run[good..];
                            s.utf8[..tail.len()].copy_from_slice(tail);
                            s.utf8_len = tail.len() as u8;
                            s.utf8_start = at + good as u64;
                        }
                    }
                }
            }
            if over {
                return Err(too_long(s));
            }
            s.raw_len += k;
            *i += k;
            if *i == n {
                return Ok(false);
            }
            if input[*i] == b'"' {
                *i += 1;
                return Ok(true);
            }
            if s.raw_len >= max {
                return Err(too_long(s));
            }
            s.esc_start = base + *i as u64;
            s.esc = Esc::Backslash;
            s.raw_len += 1;
            *i += 1;
            continue;
        }
        // One byte of an escape or of a cut UTF-8 sequence. The closing
        // quote is not content: it ends a cut sequence whatever the limit.
        if b == b'"' && s.esc == Esc::None {
            return Err((JsonErrorKind::InvalidUtf8, s.utf8_start));
        }
        if s.raw_len >= max {
            return Err(too_long(s));
        }
        match s.esc {
            Esc::None => {
                if b & 0xC0 != 0x80 {
                    return Err((JsonErrorKind::InvalidUtf8, s.utf8_start));
                }
                s.utf8[usize::from(s.utf8_len)] = b;
                s.utf8_len += 1;
                match std::str::from_utf8(&s.utf8[..usize::from(s.utf8_len)]) {
                    Ok(c) => {
                        target.push_str(c);
                        s.utf8_len = 0;
                    }
                    Err(e) if e.error_len().is_some() => {
                        return Err((JsonErrorKind::InvalidUtf8, s.utf8_start));
                    }
                    Err(_) => {}
                }
            }
            Esc::Backslash => {
                let c = match b {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        s.esc = Esc::Hex { n: 0, acc: 0 };
                        s.raw_len += 1;
                        *i += 1;
                        continue;
                    }
                    _ => return Err((JsonErrorKind::InvalidEscape, s.esc_start)),
                };
                target.push(c);
                s.esc = Esc::None;
            }
            Esc::Hex { n, acc } => {
                let Some(d) = hex_digit(b) else {
                    return Err((JsonErrorKind::InvalidUnicodeEscape, s.esc_start));
                };
                let acc = acc << 4 | d;
                if n < 3 {
                    s.esc = Esc::Hex { n: n + 1, acc };
                } else {
                    s.esc = Esc::None;
                    let code = if let Some((high, high_at)) = s.high.take() {
                        if !(0xDC00..=0xDFFF).contains(&acc) {
                            return Err((JsonErrorKind::LoneSurrogate, high_at));
                        }
                        0x10000 + ((high - 0xD800) << 10 | (acc - 0xDC00))
                    } else if (0xD800..=0xDBFF).contains(&acc) {
                        s.high = Some((acc, s.esc_start));
                        s.esc = Esc::LowBackslash;
                        s.raw_len += 1;
                        *i += 1;
                        continue;
                    } else if (0xDC00..=0xDFFF).contains(&acc) {
                        return Err((JsonErrorKind::LoneSurrogate, s.esc_start));
                    } else {
                        acc
                    };
                    match char::from_u32(code) {
                        Some(c) => target.push(c),
                        None => return Err((JsonErrorKind::LoneSurrogate, s.esc_start)),
                    }
                }
            }
            Esc::LowBackslash | Esc::LowU => {
                let (expected, next) = if s.esc == Esc::LowBackslash {
                    (b'\\', Esc::LowU)
                } else {
                    (b'u', Esc::Hex { n: 0, acc: 0 })
                };
                if b != expected {
                    let high_at = s.high.map_or(s.esc_start, |(_, at)| at);
                    return Err((JsonErrorKind::LoneSurrogate, high_at));
                }
                if next == Esc::LowU {
                    s.esc_start = at;
                }
                s.esc = next;
            }
        }
        s.raw_len += 1;
        *i += 1;
    }
    Ok(false)
}

/// Continues a number at `*i`. `Ok(true)`: it ended before `*i` (the byte
/// there is not part of it); `Ok(false)`: the chunk ended; `Err`: the byte
/// at `*i` makes it invalid.
#[inline]
fn scan_number(state: &mut Num, input: &[u8], i: &mut usize) -> Result<bool, &'static str> {
    let n = input.len();
    while *i < n {
        if matches!(state, Num::Int | Num::Frac | Num::ExpDigits) {
            while *i < n && input[*i].is_ascii_digit() {
                *i += 1;
            }
            if *i == n {
                return Ok(false);
            }
        }
        let b = input[*i];
        *state = match (*state, b) {
            (Num::Minus, b'0') => Num::Zero,
            (Num::Minus, b'1'..=b'9') => Num::Int,
            (Num::Zero, b'0'..=b'9') => return Err("leading zero"),
            (Num::Zero | Num::Int, b'.') => Num::Dot,
            (Num::Dot, b'0'..=b'9') => Num::Frac,
            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Num::Exp,
            (Num::Exp, b'+' | b'-') => Num::ExpSign,
            (Num::Exp | Num::ExpSign, b'0'..=b'9') => Num::ExpDigits,
            (s, _) => return s.incomplete().map_or(Ok(true), Err),
        };
        *i += 1;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_end_finds_the_first_stop_byte() {
        let naive = |input: &[u8], from: usize| {
            (from..input.len())
                .find(|&j| STOP[usize::from(input[j])])
                .unwrap_or(input.len())
        };
        // A little xorshift: every length and position, all byte classes.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = [
            b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0x9f, 0xa0, 0xff, 0x5b, 0x5d,
        ];
        for len in 0..200usize {
            for _ in 0..20 {
                let mut input: Vec<u8> = (0..len).map(|_| b'a' + (next() % 26) as u8).collect();
                for _ in 0..(next() % 3) {
                    if len > 0 {
                        let at = (next() as usize) % len;
                        input[at] = alphabet[(next() as usize) % alphabet.len()];
                    }
                }
                let from = if len > 0 { (next() as usize) % len } else { 0 };
                assert_eq!(
                    string_end(&input, from),
                    naive(&input, from),
                    "{input:?} from {from}"
                );
            }
        }
    }
}
