//! Bodies: which content types the anonymizer reads, and the chunk-fed
//! transforms that rewrite them (anonymize, de-anonymize, pass through).
//! Memory per body is bounded by the JSON rewriter's limits (nesting depth,
//! longest string) and, for text, by the longest line.

use edge_core::Problem;
use edge_core::stream::BodyTransform;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::engine::{Anonymizer, Engine, Findings};
use crate::entity::Span;
use crate::json::{
    JsonError, JsonErrorKind, JsonRewriter, NdjsonRewriter, Path, Scalar, VisitError, Visitor,
    write_json_string,
};
use crate::operators::{self, Keys};

/// The body formats the anonymizer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`, `application/*+json`.
    Json,
    /// `application/x-ndjson`, `application/jsonl` and kin: one JSON value per line.
    Ndjson,
    /// `text/*`.
    Text,
}

impl BodyKind {
    /// The kind named by the headers: `None` for other types, for a
    /// charset other than UTF-8, or for an encoded (compressed) body.
    pub fn of(headers: &HeaderMap) -> Option<BodyKind> {
        if headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"))
        {
            return None;
        }
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let mut params = value.split(';');
        let essence = params.next()?.trim().to_ascii_lowercase();
        for param in params {
            let (name, value) = param.split_once('=')?;
            if name.trim().eq_ignore_ascii_case("charset") {
                let charset = value.trim().trim_matches('"').to_ascii_lowercase();
                if charset != "utf-8" && charset != "utf8" && charset != "us-ascii" {
                    return None;
                }
            }
        }
        match essence.as_str() {
            "application/json" => Some(BodyKind::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonl"
            | "application/jsonlines"
            | "application/x-jsonlines"
            | "application/json-lines" => Some(BodyKind::Ndjson),
            e if e.starts_with("application/") && e.ends_with("+json") => Some(BodyKind::Json),
            e if e.starts_with("text/") => Some(BodyKind::Text),
            _ => None,
        }
    }

    /// The name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyKind::Json => "json",
            BodyKind::Ndjson => "ndjson",
            BodyKind::Text => "text",
        }
    }

    /// The content type of the rewritten body: the request's own.
    pub fn content_type(self, headers: &HeaderMap) -> HeaderValue {
        headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static(match self {
                BodyKind::Json => "application/json",
                BodyKind::Ndjson => "application/x-ndjson",
                BodyKind::Text => "text/plain; charset=utf-8",
            }))
    }
}

/// Copies the body unchanged (unknown content types under `pass`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl BodyTransform for PassThrough {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Problem> {
        out.extend_from_slice(chunk);
        Ok(())
    }
    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), Problem> {
        Ok(())
    }
}

/// Splits a text stream into pieces that end at a line break (or, for a
/// line longer than the limit, at the last whitespace), so entities are
/// never cut; holds at most `limit` bytes.
pub(crate) struct TextSplitter {
    pending: Vec<u8>,
    limit: usize,
    offset: u64,
}

impl TextSplitter {
    pub(crate) fn new(limit: usize) -> TextSplitter {
        TextSplitter {
            pending: Vec::new(),
            limit,
            offset: 0,
        }
    }

    /// Feeds a chunk; calls `f` with each complete piece.
    pub(crate) fn push(
        &mut self,
        chunk: &[u8],
        mut f: impl FnMut(&str) -> Result<(), Problem>,
    ) -> Result<(), Problem> {
        let mut rest = chunk;
        while !rest.is_empty() {
            // Whole lines straight from the chunk when nothing is pending:
            // the same pieces as through `pending`, without the copy.
            if self.pending.is_empty() {
                let window = &rest[..rest.len().min(self.limit)];
                if let Some(i) = memchr::memrchr(b'\n', window) {
                    let piece = std::str::from_utf8(&rest[..=i])
                        .map_err(|e| invalid_utf8(self.offset + e.valid_up_to() as u64))?;
                    f(piece)?;
                    self.offset += piece.len() as u64;
                    rest = &rest[i + 1..];
                    continue;
                }
            }
            let room = self.limit.saturating_sub(self.pending.len()).max(1);
            let take = rest.len().min(room);
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            let cut = match memchr::memrchr(b'\n', &self.pending) {
                Some(i) => i + 1,
                None if self.pending.len() >= self.limit => {
                    match self.pending.iter().rposition(|b| b.is_ascii_whitespace()) {
                        Some(i) => i + 1,
                        None => {
                            return Err(Problem::new(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "text-too-long",
                                "Text too long",
                            )
                            .with_detail(format!(
                                "a run of {} bytes without whitespace at byte {}",
                                self.limit, self.offset
                            )));
                        }
                    }
                }
                None => continue,
            };
            self.emit(cut, false, &mut f)?;
        }
        Ok(())
    }

    /// Ends the stream.
    pub(crate) fn finish(
        &mut self,
        mut f: impl FnMut(&str) -> Result<(), Problem>,
    ) -> Result<(), Problem> {
        let all = self.pending.len();
        self.emit(all, true, &mut f)
    }

    /// Emits `pending[..cut]`; before the end (`!last`) a character the
    /// cut split is kept for the next piece.
    fn emit(
        &mut self,
        cut: usize,
        last: bool,
        f: &mut impl FnMut(&str) -> Result<(), Problem>,
    ) -> Result<(), Problem> {
        let text = match std::str::from_utf8(&self.pending[..cut]) {
            Ok(text) => text,
            Err(e) if !last && e.error_len().is_none() && cut == self.pending.len() && cut > 0 => {
                // A character split by the limit: emit what is whole.
                let whole = e.valid_up_to();
                let text = std::str::from_utf8(&self.pending[..whole]).unwrap_or_default();
                f(text)?;
                self.offset += whole as u64;
                self.pending.drain(..whole);
                return Ok(());
            }
            Err(e) => return Err(invalid_utf8(self.offset + e.valid_up_to() as u64)),
        };
        f(text)?;
        self.offset += cut as u64;
        self.pending.drain(..cut);
        Ok(())
    }
}

/// The problem for text that is not UTF-8 at byte `offset` of the body.
fn invalid_utf8(offset: u64) -> Problem {
    Problem::bad_request(
        "invalid-utf8",
        format!("the text is not UTF-8 at byte {offset}"),
    )
}

/// The anonymizing transform of one body.
pub struct BodyAnonymizer {
    anonymizer: Anonymizer,
    inner: Inner,
    scratch: Scratch,
}

/// What a body's visitor reuses between values.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) findings: Findings,
    pub(crate) text: String,
    pub(crate) spans: Vec<Span>,
}

enum Inner {
    Text(TextSplitter),
    Json(JsonRewriter),
    Ndjson(NdjsonRewriter),
}

impl Inner {
    /// Feeds a JSON or NDJSON rewriter the next chunk (`None`: the end);
    /// `None` for text, which each transform splits itself.
    fn rewrite_json(
        &mut self,
        chunk: Option<&[u8]>,
        visit: &mut impl Visitor,
        out: &mut Vec<u8>,
    ) -> Option<Result<(), Problem>> {
        let result = match (self, chunk) {
            (Inner::Json(r), Some(c)) => r.push(c, visit, out),
            (Inner::Json(r), None) => r.finish(visit, out),
            (Inner::Ndjson(r), Some(c)) => r.push(c, visit, out),
            (Inner::Ndjson(r), None) => r.finish(visit, out),
            (Inner::Text(_), _) => return None,
        };
        Some(result.map_err(json_problem))
    }
}

impl BodyAnonymizer {
    /// What was found so far.
    pub fn findings(&self) -> &Findings {
        &self.scratch.findings
    }
}

impl Anonymizer {
    /// A transform anonymizing one body of `kind`.
    pub fn body(&self, kind: BodyKind) -> BodyAnonymizer {
        let engine = &self.engine;
        let inner = match kind {
            BodyKind::Text => Inner::Text(TextSplitter::new(engine.section.max_string_bytes)),
            BodyKind::Json => {
                Inner::Json(JsonRewriter::with_rules(&engine.fields, engine.limits()))
            }
            BodyKind::Ndjson => {
                Inner::Ndjson(NdjsonRewriter::with_rules(&engine.fields, engine.limits()))
            }
        };
        BodyAnonymizer {
            anonymizer: self.clone(),
            inner,
            scratch: Scratch::default(),
        }
    }
}

fn json_problem(e: JsonError) -> Problem {
    // Nesting past `max_depth` is a document the function does not take
    // (400, the detail names the limit); a string past `max_string_bytes`
    // is too large (413).
    let status = match e.kind() {
        JsonErrorKind::TooLong { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut problem = Problem::new(status, "invalid-json", "Invalid JSON")
        .with_detail(e.to_string())
        .with_extension("offset", e.offset())
        .with_extension("path", e.path());
    if let Some(line) = e.line() {
        problem = problem.with_extension("line", line);
    }
    problem
}

impl BodyAnonymizer {
    /// Rewrites the next chunk, or (`None`) ends the body.
    fn run(&mut self, chunk: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), Problem> {
        let engine: &Engine = &self.anonymizer.engine;
        let scratch = &mut self.scratch;
        let mut visit =
            |p: &Path<'_>, v: Scalar<'_>, o: &mut Vec<u8>| engine.visit(p, v, o, scratch);
        if let Some(result) = self.inner.rewrite_json(chunk, &mut visit, out) {
            return result;
        }
        match &mut self.inner {
            Inner::Json(_) | Inner::Ndjson(_) => Ok(()),
            Inner::Text(splitter) => {
                let scratch = &mut self.scratch;
                let emit = |piece: &str| {
                    scratch.text.clear();
                    engine.text(
                        piece,
                        &mut scratch.text,
                        &mut scratch.findings,
                        &mut scratch.spans,
                    );
                    out.extend_from_slice(scratch.text.as_bytes());
                    Ok(())
                };
                match chunk {
                    Some(c) => splitter.push(c, emit),
                    None => splitter.finish(emit),
                }
            }
        }
    }
}

/// What one body's anonymization found (`email=2, ipv4=1`), left in the
/// request's extensions after a buffered body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingsSummary(pub String);

impl BodyTransform for BodyAnonymizer {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Problem> {
        self.run(Some(chunk), out)
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Problem> {
        self.run(None, out)
    }

    fn annotate(&self, extensions: &mut http::Extensions) {
        extensions.insert(FindingsSummary(self.findings().summary()));
    }
}

/// The transform reversing the `encrypt` tokens in one body (the de-anonymize
/// endpoint): in JSON, inside string values; in text, anywhere.
pub struct Deanonymizer {
    anonymizer: Anonymizer,
    inner: Inner,
    reversed: u64,
    failed: u64,
    text: String,
}

/// A token inside a candidate that failed: the text's own `ENC2_…` glued
/// before a real token (`ENC2_xENC2_…~`) makes one candidate of both; the
/// real token is the later start that decrypts.
fn inner_token(keys: &Keys, candidate: &str) -> Option<(usize, String)> {
    memchr::memmem::find_iter(candidate.as_bytes(), operators::TOKEN_PREFIX.as_bytes())
        .filter(|&at| at > 0)
        .find_map(|at| Some((at, operators::decrypt_token(keys, &candidate[at..]).ok()?)))
}

impl Deanonymizer {
    /// Tokens reversed, and tokens that would not decrypt (left as they were).
    pub fn counts(&self) -> (u64, u64) {
        (self.reversed, self.failed)
    }
}

impl Anonymizer {
    /// A transform reversing the tokens in one body of `kind`; an error
    /// when there is no encryption key.
    pub fn deanonymizer(&self, kind: BodyKind) -> Result<Deanonymizer, String> {
        if !self.engine.keys.has_encryption_key() {
            return Err(format!(
                "{} is not set: there is nothing to reverse",
                crate::policy::KEY_SECRET
            ));
        }
        let limits = self.engine.limits();
        let inner = match kind {
            BodyKind::Text => Inner::Text(TextSplitter::new(self.engine.section.max_string_bytes)),
            BodyKind::Json => Inner::Json(JsonRewriter::new(limits)),
            BodyKind::Ndjson => Inner::Ndjson(NdjsonRewriter::new(limits)),
        };
        Ok(Deanonymizer {
            anonymizer: self.clone(),
            inner,
            reversed: 0,
            failed: 0,
            text: String::new(),
        })
    }
}

/// Replaces every token in `text`; returns whether any was.
fn reverse_tokens(keys: &Keys, text: &str, out: &mut String, counts: (&mut u64, &mut u64)) -> bool {
    let mut at = 0;
    let mut any = false;
    for range in operators::find_tokens(text) {
        out.push_str(&text[at..range.start]);
        match operators::decrypt_token(keys, &text[range.clone()]) {
            Ok(plain) => {
                out.push_str(&plain);
                *counts.0 += 1;
                any = true;
            }
            Err(_) => match inner_token(keys, &text[range.clone()]) {
                Some((at, plain)) => {
                    out.push_str(&text[range.start..range.start + at]);
                    out.push_str(&plain);
                    *counts.0 += 1;
                    any = true;
                }
                None => {
                    out.push_str(&text[range.clone()]);
                    *counts.1 += 1;
                }
            },
        }
        at = range.end;
    }
    out.push_str(&text[at..]);
    any
}

impl Deanonymizer {
    fn run(&mut self, chunk: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), Problem> {
        let keys = &self.anonymizer.engine.keys;
        let (reversed, failed, text) = (&mut self.reversed, &mut self.failed, &mut self.text);
        let mut visit =
            |_: &Path<'_>, v: Scalar<'_>, o: &mut Vec<u8>| -> Result<bool, VisitError> {
                let Scalar::String(s) = v else {
                    return Ok(false);
                };
                if !operators::may_hold_tokens(s) {
                    return Ok(false);
                }
                text.clear();
                if reverse_tokens(keys, s, text, (&mut *reversed, &mut *failed)) {
                    write_json_string(text, o);
                    return Ok(true);
                }
                Ok(false)
            };
        if let Some(result) = self.inner.rewrite_json(chunk, &mut visit, out) {
            return result;
        }
        match &mut self.inner {
            Inner::Json(_) | Inner::Ndjson(_) => Ok(()),
            Inner::Text(splitter) => {
                let mut piece_out = String::new();
                let mut emit = |piece: &str| {
                    piece_out.clear();
                    reverse_tokens(keys, piece, &mut piece_out, (&mut *reversed, &mut *failed));
                    out.extend_from_slice(piece_out.as_bytes());
                    Ok(())
                };
                match chunk {
                    Some(c) => splitter.push(c, &mut emit),
                    None => splitter.finish(&mut emit),
                }
            }
        }
    }
}

impl BodyTransform for Deanonymizer {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Problem> {
        self.run(Some(chunk), out)
    }
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Problem> {
        self.run(None, out)
    }
}

/// The records of a k-anonymity batch: a JSON array, or NDJSON (one
/// record per line), by content type.
pub fn records<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<Box<dyn Iterator<Item = Result<serde_json::Value, String>> + 'a>, String> {
    if BodyKind::of(headers) == Some(BodyKind::Ndjson) {
        let lines = body
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, l)| !l.trim_ascii().is_empty());
        return Ok(Box::new(lines.map(|(i, line)| {
            serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", i + 1))
        })));
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(items)) => Ok(Box::new(items.into_iter().map(Ok))),
        Ok(_) => Err("expected a JSON array of records (or NDJSON)".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::TextSplitter;
    use proptest::prelude::*;

    /// The pieces a splitter with `limit` gives for `text` pushed in
    /// chunks of `size`, or the error's detail.
    fn pieces(text: &[u8], limit: usize, size: usize) -> Result<Vec<String>, String> {
        let mut splitter = TextSplitter::new(limit);
        let mut pieces = Vec::new();
        let mut emit = |piece: &str| {
            pieces.push(piece.to_owned());
            Ok(())
        };
        let detail = |p: edge_core::Problem| p.detail().unwrap_or_default().to_owned();
        for chunk in text.chunks(size) {
            splitter.push(chunk, &mut emit).map_err(detail)?;
        }
        splitter.finish(&mut emit).map_err(detail)?;
        Ok(pieces)
    }

    /// A body that ends inside a character is not UTF-8: refused, not cut
    /// short (its last bytes were once dropped without a word).
    #[test]
    fn a_character_cut_by_the_end_of_the_body_is_refused() {
        for size in [1, 2, 3, 64] {
            assert_eq!(
                pieces(
                    "caf\u{e9}\ncaf\u{e9}".as_bytes().split_last().unwrap().1,
                    8,
                    size
                ),
                Err("the text is not UTF-8 at byte 9".to_owned()),
                "chunks of {size}"
            );
        }
    }

    /// Pieces end at the last line break the splitter has: pushed a byte
    /// at a time, a text is cut at each line; pushed whole, at the last.
    #[test]
    fn pieces_end_at_the_last_line_break_pushed() {
        let text = "\n\u{e9}\n".as_bytes();
        assert_eq!(
            pieces(text, 4, 1),
            Ok(vec!["\n".into(), "\u{e9}\n".into(), String::new()])
        );
        assert_eq!(
            pieces(text, 4, 4),
            Ok(vec!["\n\u{e9}\n".into(), String::new()])
        );
    }

    proptest! {
        /// Whatever the chunks, the same text (or the same error) in
        /// pieces within the limit, each but the last ending in white
        /// space (a line break, or the last space of an overlong line).
        #[test]
        fn the_text_does_not_depend_on_the_chunks(
            text in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b' '), Just(b'a'), Just(0xC3), Just(0xA9)],
                0..200,
            ),
            limit in 4usize..40,
            size in 1usize..64,
        ) {
            let whole = pieces(&text, limit, text.len().max(1));
            let chunked = pieces(&text, limit, size);
            prop_assert_eq!(
                chunked.as_ref().map(|p| p.concat()),
                whole.as_ref().map(|p| p.concat())
            );
            for pieces in [whole, chunked].into_iter().flatten() {
                let joined = pieces.concat();
                prop_assert_eq!(joined.as_bytes(), &text[..]);
                prop_assert!(pieces.iter().all(|p| p.len() <= limit));
                let (_, cut) = pieces.split_last().unwrap();
                prop_assert!(cut.iter().all(|p| p.ends_with(|c: char| c.is_ascii_whitespace())));
            }
        }
    }
}
