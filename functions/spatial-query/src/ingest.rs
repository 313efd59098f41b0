//! Ingest: GeoJSON FeatureCollections and NDJSON read feature by feature;
//! bad features are rejected with a reason, the rest kept.
//!
//! [`FeatureReader`] is push-based: it takes the input in chunks split at any
//! byte and hands each feature, as soon as it is complete, to a callback as
//! `Ok(Asset)` or `Err(Rejection)`. It buffers at most one feature
//! ([`IngestLimits::max_feature_bytes`]); a larger feature is scanned
//! through without being buffered and rejected.
//!
//! - NDJSON: every non-blank line is one Feature. A line that is not JSON
//!   is a rejection, never an error of the whole input.
//! - GeoJSON: the document is a FeatureCollection (its members in any
//!   order; members other than `type` and `features` are skipped by bracket
//!   balance, not validated) or a single Feature. Each element of
//!   `features` is parsed on its own, so one bad element is rejected alone:
//!   in one pass when it is a well-formed object lying whole in the chunk,
//!   else after a small scanner (which counts depth, never recurses) has
//!   found its end, buffering it when it spans chunks. Errors in the
//!   document's own structure are an [`IngestError`]; the features emitted
//!   before it should then be discarded.
//!
//! A feature's bytes are deserialized with serde into borrowed, lenient
//! shapes (every field accepts any JSON value and remembers what was wrong
//! with it), then validated field by field ([`parse_feature`]).
//!
//! Bare `NaN`, `Infinity` and `-Infinity` (which Python's `json.dumps`
//! writes) are not JSON: a feature containing them is re-read with those
//! tokens marked, so that the field holding one is rejected as "not a
//! finite number". Such a token in a property that is not read (such as
//! `deformation_magnitude`) does not reject the feature.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use uuid::Uuid;

use crate::model::{self, Asset, MAX_ALGORITHM_VERSION_BYTES};

/// The default [`IngestLimits::max_feature_bytes`]: 64 KiB.
pub const DEFAULT_MAX_FEATURE_BYTES: usize = 64 * 1024;

/// The default [`IngestLimits::max_reported`].
pub const DEFAULT_MAX_REPORTED: usize = 100;

/// The longest id, in bytes, that a [`Rejection`] repeats.
const MAX_REPORTED_ID_BYTES: usize = 64;

/// The format of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// A GeoJSON FeatureCollection, or a single Feature.
    GeoJson,
    /// Newline-delimited JSON: one Feature per line (also JSON Lines and
    /// GeoJSON text sequences).
    NdJson,
}

impl InputFormat {
    /// The format a `Content-Type` names, ignoring case and parameters
    /// (`; charset=utf-8`); `None` for any other type.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split_once(';')
            .map_or(content_type, |(essence, _)| essence)
            .trim();
        const GEOJSON: [&str; 2] = ["application/geo+json", "application/json"];
        const NDJSON: [&str; 6] = [
            "application/x-ndjson",
            "application/ndjson",
            "application/geo+json-seq",
            "application/jsonl",
            "application/json-lines",
            "application/x-jsonlines",
        ];
        if GEOJSON.iter().any(|t| t.eq_ignore_ascii_case(essence)) {
            Some(Self::GeoJson)
        } else if NDJSON.iter().any(|t| t.eq_ignore_ascii_case(essence)) {
            Some(Self::NdJson)
        } else {
            None
        }
    }
}

/// Limits of one ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// The largest feature buffered, in bytes (for NDJSON, the line without
    /// its `\n`); a larger one is rejected.
    pub max_feature_bytes: usize,
    /// How many rejections an [`IngestReport`] keeps (it counts them all).
    pub max_reported: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_feature_bytes: DEFAULT_MAX_FEATURE_BYTES,
            max_reported: DEFAULT_MAX_REPORTED,
        }
    }
}

/// One feature rejected, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The feature's 0-based index in the input (every feature counts,
    /// accepted or not; blank NDJSON lines do not).
    pub index: u64,
    /// The 1-based line of the feature (NDJSON only).
    pub line: Option<u64>,
    /// The feature's id, when it could be read and is a string of at most
    /// 64 bytes (it need not be a valid UUID).
    pub id: Option<String>,
    /// The first field found wrong, such as `geometry.coordinates[1]` or
    /// `properties.fusion_confidence`; empty for the whole feature.
    pub field: String,
    /// Why, briefly. It never repeats the input but for small numbers.
    pub reason: String,
}

/// The outcome of an ingest: counts and the first rejections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReport {
    /// Features accepted.
    pub accepted: u64,
    /// Features rejected.
    pub rejected: u64,
    /// The first [`IngestLimits::max_reported`] rejections.
    pub rejections: Vec<Rejection>,
    #[serde(skip)]
    max_reported: usize,
}

impl IngestReport {
    /// An empty report keeping at most `limits.max_reported` rejections.
    pub fn new(limits: &IngestLimits) -> Self {
        Self {
            accepted: 0,
            rejected: 0,
            rejections: Vec::new(),
            max_reported: limits.max_reported,
        }
    }

    /// Counts one result of a [`FeatureReader`], keeping the rejection if
    /// there is room.
    pub fn record<T>(&mut self, result: &Result<T, Rejection>) {
        match result {
            Ok(_) => self.accepted += 1,
            Err(rejection) => {
                self.rejected += 1;
                if self.rejections.len() < self.max_reported {
                    self.rejections.push(rejection.clone());
                }
            }
        }
    }

    /// Whether rejections were counted but not kept.
    pub fn truncated(&self) -> bool {
        self.rejected > self.rejections.len() as u64
    }
}

impl Default for IngestReport {
    fn default() -> Self {
        Self::new(&IngestLimits::default())
    }
}

/// An error of the whole input (its structure); a bad feature is a
/// [`Rejection`] instead. NDJSON input never has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The input was empty (or only whitespace).
    #[error("empty input")]
    Empty,
    /// The document is not well-formed JSON at byte `offset`.
    #[error("invalid JSON at byte {offset}: {message}")]
    Syntax {
        /// The 0-based offset of the offending byte (the input's length
        /// when it ended too soon).
        offset: u64,
        /// What was wrong.
        message: String,
    },
    /// The document is JSON but not a GeoJSON FeatureCollection or Feature.
    #[error("not a GeoJSON FeatureCollection or Feature (at byte {offset}): {message}")]
    NotFeatureCollection {
        /// The 0-based offset where that became clear.
        offset: u64,
        /// What was wrong.
        message: String,
    },
}

fn syntax(offset: u64, message: &str) -> IngestError {
    IngestError::Syntax {
        offset,
        message: message.to_owned(),
    }
}

fn not_fc(offset: u64, message: impl Into<String>) -> IngestError {
    IngestError::NotFeatureCollection {
        offset,
        message: message.into(),
    }
}

/// Reads features from input pushed in chunks.
///
/// ```
/// use spatial_query::ingest::{FeatureReader, IngestLimits, IngestReport, InputFormat};
/// let limits = IngestLimits::default();
/// let mut reader = FeatureReader::new(InputFormat::NdJson, limits);
/// let mut report = IngestReport::new(&limits);
/// let mut assets = Vec::new();
/// let mut out = |r: Result<_, _>| {
///     report.record(&r);
///     assets.extend(r.ok());
/// };
/// reader.push(b"{\"type\":\"Feature\"}\n", &mut out).unwrap();
/// reader.finish(&mut out).unwrap();
/// assert_eq!((report.accepted, report.rejected), (0, 1));
/// ```
pub struct FeatureReader {
    core: Core,
    kind: Kind,
    failed: Option<IngestError>,
}

impl FeatureReader {
    /// A reader of `format` input within `limits`.
    pub fn new(format: InputFormat, limits: IngestLimits) -> Self {
        let kind = match format {
            InputFormat::NdJson => Kind::Nd(NdState {
                line: 1,
                pending: false,
            }),
            InputFormat::GeoJson => Kind::Geo(GeoState::new()),
        };
        Self {
            core: Core {
                limits,
                buf: Vec::new(),
                oversize: false,
                index: 0,
                offset: 0,
            },
            kind,
            failed: None,
        }
    }

    /// Reads the next chunk, passing each feature it completes to `out`.
    /// After an error every further call returns it again.
    pub fn push(
        &mut self,
        chunk: &[u8],
        out: &mut dyn FnMut(Result<Asset, Rejection>),
    ) -> Result<(), IngestError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = match &mut self.kind {
            Kind::Nd(nd) => {
                nd.push(&mut self.core, chunk, out);
                Ok(())
            }
            Kind::Geo(geo) => geo.push(&mut self.core, chunk, out),
        };
        self.core.offset += chunk.len() as u64;
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// Ends the input, passing the last feature (an NDJSON line without a
    /// final newline) to `out`, and checks that the document was complete.
    pub fn finish(
        mut self,
        out: &mut dyn FnMut(Result<Asset, Rejection>),
    ) -> Result<(), IngestError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        match &mut self.kind {
            Kind::Nd(nd) => {
                if nd.pending {
                    nd.end_line(&mut self.core, None, out);
                }
                Ok(())
            }
            Kind::Geo(geo) => match geo.state {
                Geo::Start => Err(IngestError::Empty),
                Geo::Done => Ok(()),
                _ => Err(syntax(self.core.offset, "unexpected end of input")),
            },
        }
    }

    /// How many features have been read so far (accepted or rejected).
    pub fn features_read(&self) -> u64 {
        self.core.index
    }

    /// The capacity of the feature buffer, in bytes: never more than
    /// [`IngestLimits::max_feature_bytes`].
    pub fn buffer_capacity(&self) -> usize {
        self.core.buf.capacity()
    }
}

impl fmt::Debug for FeatureReader {
    // Not the buffered bytes: they are input.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeatureReader")
            .field(
                "format",
                &match self.kind {
                    Kind::Nd(_) => InputFormat::NdJson,
                    Kind::Geo(_) => InputFormat::GeoJson,
                },
            )
            .field("limits", &self.core.limits)
            .field("features_read", &self.core.index)
            .field("bytes_read", &self.core.offset)
            .field("buffered", &self.core.buf.len())
            .field("failed", &self.failed)
            .finish()
    }
}

/// Reads a whole input at once: the assets accepted and the report.
pub fn read_all(
    format: InputFormat,
    limits: IngestLimits,
    input: &[u8],
) -> Result<(Vec<Asset>, IngestReport), IngestError> {
    let mut reader = FeatureReader::new(format, limits);
    let mut report = IngestReport::new(&limits);
    let mut assets = Vec::new();
    let mut out = |r: Result<Asset, Rejection>| {
        report.record(&r);
        if let Ok(asset) = r {
            assets.push(asset);
        }
    };
    reader.push(input, &mut out)?;
    reader.finish(&mut out)?;
    Ok((assets, report))
}

/// Parses and validates one feature's bytes (a GeoJSON Feature object):
/// the asset, or the first field found wrong (empty for the whole feature)
/// and why.
pub fn parse_feature(bytes: &[u8]) -> Result<Asset, (String, String)> {
    check(bytes).map_err(|f| (f.field.to_owned(), f.reason.into_owned()))
}

// ---------------------------------------------------------------------------
// The reader's state.

struct Core {
    limits: IngestLimits,
    /// The current feature's bytes (or, for GeoJSON, the top-level object's
    /// while it may be a single Feature).
    buf: Vec<u8>,
    /// The current feature outgrew the limit; `buf` is empty.
    oversize: bool,
    /// Features read so far.
    index: u64,
    /// Bytes pushed before the current chunk.
    offset: u64,
}

impl Core {
    /// Adds bytes to the current feature, within the limit.
    fn append(&mut self, bytes: &[u8]) {
        if self.oversize || bytes.is_empty() {
            return;
        }
        let limit = self.limits.max_feature_bytes;
        let need = self.buf.len().saturating_add(bytes.len());
        if need > limit {
            self.oversize = true;
            self.buf.clear();
            return;
        }
        if need > self.buf.capacity() {
            // Grow by doubling, but never past the limit.
            let target = need.max(self.buf.capacity().saturating_mul(2)).min(limit);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.oversize = false;
    }

    fn oversize_fail(&self) -> Fail {
        Fail {
            field: "",
            reason: Cow::Owned(format!(
                "feature larger than {} bytes",
                self.limits.max_feature_bytes
            )),
            id: None,
        }
    }

    /// Judges the buffered feature, passes it on and starts the next one.
    fn emit_buffered(&mut self, out: &mut dyn FnMut(Result<Asset, Rejection>)) {
        let result = if self.oversize {
            Err(self.oversize_fail())
        } else {
            check(&self.buf)
        };
        self.emit(result, None, out);
    }

    fn emit(
        &mut self,
        result: Result<Asset, Fail>,
        line: Option<u64>,
        out: &mut dyn FnMut(Result<Asset, Rejection>),
    ) {
        let index = self.index;
        self.index += 1;
        self.reset();
        out(result.map_err(|f| Rejection {
            index,
            line,
            id: f.id,
            field: f.field.to_owned(),
            reason: f.reason.into_owned(),
        }));
    }
}

enum Kind {
    Nd(NdState),
    Geo(GeoState),
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

const BOM: &[u8] = b"\xEF\xBB\xBF";
/// The record separator that starts each GeoJSON text sequence record.
const RS: u8 = 0x1E;

struct NdState {
    /// The 1-based number of the line being read.
    line: u64,
    /// Bytes of the current line have been seen.
    pending: bool,
}

impl NdState {
    fn push(
        &mut self,
        core: &mut Core,
        chunk: &[u8],
        out: &mut dyn FnMut(Result<Asset, Rejection>),
    ) {
        let mut rest = chunk;
        while let Some(p) = memchr::memchr(b'\n', rest) {
            if self.pending {
                core.append(&rest[..p]);
                self.end_line(core, None, out);
            } else {
                // The whole line is in this chunk: read it in place.
                self.end_line(core, Some(&rest[..p]), out);
            }
            rest = &rest[p + 1..];
        }
        if !rest.is_empty() {
            core.append(rest);
            self.pending = true;
        }
    }

    /// Ends a line: `whole` when it is all in hand, else it is in `core`.
    fn end_line(
        &mut self,
        core: &mut Core,
        whole: Option<&[u8]>,
        out: &mut dyn FnMut(Result<Asset, Rejection>),
    ) {
        let line = self.line;
        self.line += 1;
        self.pending = false;
        let result = match whole {
            Some(text) if text.len() > core.limits.max_feature_bytes => {
                Some(Err(core.oversize_fail()))
            }
            Some(text) => check_line(text, line),
            None if core.oversize => Some(Err(core.oversize_fail())),
            None => check_line(&core.buf, line),
        };
        match result {
            Some(result) => core.emit(result, Some(line), out),
            None => core.reset(),
        }
    }
}

/// Checks one NDJSON line; `None` when it is blank.
fn check_line(text: &[u8], line: u64) -> Option<Result<Asset, Fail>> {
    let mut text = text;
    if line == 1 {
        text = text.strip_prefix(BOM).unwrap_or(text);
    }
    while let [rest @ .., b'\r'] = text {
        text = rest;
    }
    while let [RS, rest @ ..] = text {
        text = rest;
    }
    if text.iter().all(|&b| is_ws(b) || b == RS) {
        return None;
    }
    Some(check(text))
}

/// Where the GeoJSON document scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Geo {
    /// Before the top-level value.
    Start,
    /// Inside a byte order mark, this many bytes matched.
    Bom(u8),
    /// In the top-level object, before a member (or its `}` when first).
    Member { first: bool },
    /// Inside a member name.
    Key { escape: bool },
    /// After a member name.
    Colon,
    /// Before a member's value.
    Value,
    /// Inside the value of `type`.
    TypeStr { escape: bool },
    /// Skipping a member's value.
    Skip(Scan),
    /// After a member's value.
    AfterMember,
    /// In `features`, before an element (or its `]` when first).
    Elem { first: bool },
    /// Inside an element.
    InElem(Scan),
    /// After an element.
    AfterElem,
    /// After the top-level object.
    Done,
}

/// What the top-level object has turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unknown,
    Collection,
    Single,
}

/// The top-level member being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Type,
    Features,
    Other,
}

const MAX_KEY_BYTES: usize = 32;
const MAX_TYPE_BYTES: usize = 64;

struct GeoState {
    state: Geo,
    mode: Mode,
    member: Member,
    seen_type: bool,
    seen_features: bool,
    /// Whether the top-level object is being buffered (it may be a Feature).
    capturing: bool,
    /// A member name or the `type` value, raw, at most `MAX_TYPE_BYTES`.
    small: Vec<u8>,
    /// `small` was cut short.
    small_over: bool,
    /// Where the `type` value started.
    type_at: u64,
}

impl GeoState {
    fn new() -> Self {
        Self {
            state: Geo::Start,
            mode: Mode::Unknown,
            member: Member::Other,
            seen_type: false,
            seen_features: false,
            capturing: false,
            small: Vec::new(),
            small_over: false,
            type_at: 0,
        }
    }

    /// Scans a string's raw bytes up to its closing quote, keeping at most
    /// `max` of them in `small`; the bytes used and whether it closed.
    fn scan_small(&mut self, s: &[u8], escape: &mut bool, max: usize) -> (usize, bool) {
        let mut j = 0;
        let mut closed = false;
        while j < s.len() {
            let c = s[j];
            if *escape {
                *escape = false;
            } else if c == b'\\' {
                *escape = true;
            } else if c == b'"' {
                closed = true;
                break;
            }
            j += 1;
        }
        let room = max.saturating_sub(self.small.len());
        if j > room {
            self.small_over = true;
        }
        self.small.extend_from_slice(&s[..j.min(room)]);
        (if closed { j + 1 } else { j }, closed)
    }

    /// The text of `small` (a string's raw contents), unescaped.
    fn small_text(&self) -> Option<Cow<'_, str>> {
        if self.small_over {
            return None;
        }
        if !self.small.contains(&b'\\') {
            return std::str::from_utf8(&self.small).ok().map(Cow::Borrowed);
        }
        let mut quoted = Vec::with_capacity(self.small.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(&self.small);
        quoted.push(b'"');
        serde_json::from_slice::<String>(&quoted)
            .ok()
            .map(Cow::Owned)
    }

    /// Stops buffering the top-level object: it is a FeatureCollection.
    fn become_collection(&mut self, core: &mut Core, cap: &mut Option<usize>) {
        self.mode = Mode::Collection;
        self.capturing = false;
        *cap = None;
        core.reset();
    }

    /// The top-level object ended (its `}` at `at`).
    fn close(
        &mut self,
        core: &mut Core,
        at: u64,
        out: &mut dyn FnMut(Result<Asset, Rejection>),
    ) -> Result<(), IngestError> {
        self.state = Geo::Done;
        match self.mode {
            Mode::Collection if !self.seen_type => Err(not_fc(at, "no \"type\" member")),
            Mode::Collection if !self.seen_features => Err(not_fc(at, "no \"features\" member")),
            Mode::Collection => Ok(()),
            Mode::Single => {
                core.emit_buffered(out);
                Ok(())
            }
            Mode::Unknown => Err(not_fc(at, "no \"type\" member")),
        }
    }

    fn push(
        &mut self,
        core: &mut Core,
        chunk: &[u8],
        out: &mut dyn FnMut(Result<Asset, Rejection>),
    ) -> Result<(), IngestError> {
        let n = chunk.len();
        let mut i = 0;
        // Where the part of this chunk to add to the buffered top-level
        // object starts.
        let mut cap = if self.capturing { Some(0) } else { None };
        // This chunk from some point on, as far as it is UTF-8.
        let mut utf8: Option<(usize, &str)> = None;
        while i < n {
            let b = chunk[i];
            let at = core.offset + i as u64;
            match self.state {
                Geo::Start => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == BOM[0] && at == 0 {
                        self.state = Geo::Bom(1);
                        i += 1;
                    } else if b == b'{' {
                        self.state = Geo::Member { first: true };
                        self.capturing = true;
                        core.reset();
                        cap = Some(i);
                        i += 1;
                    } else if matches!(b, b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') {
                        return Err(not_fc(at, "the top-level value is not an object"));
                    } else {
                        return Err(syntax(at, "expected `{`"));
                    }
                }
                Geo::Bom(k) => {
                    if BOM.get(usize::from(k)) != Some(&b) {
                        return Err(syntax(at, "invalid byte order mark"));
                    }
                    i += 1;
                    self.state = if usize::from(k) + 1 == BOM.len() {
                        Geo::Start
                    } else {
                        Geo::Bom(k + 1)
                    };
                }
                Geo::Member { first } => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == b'"' {
                        self.small.clear();
                        self.small_over = false;
                        self.state = Geo::Key { escape: false };
                        i += 1;
                    } else if b == b'}' && first {
                        i += 1;
                        if let Some(s) = cap.take() {
                            core.append(&chunk[s..i]);
                        }
                        self.capturing = false;
                        self.close(core, at, out)?;
                    } else {
                        return Err(syntax(at, "expected a member name"));
                    }
                }
                Geo::Key { mut escape } => {
                    let (used, closed) = self.scan_small(&chunk[i..], &mut escape, MAX_KEY_BYTES);
                    i += used;
                    if closed {
                        self.member = match self.small_text().as_deref() {
                            Some("type") => Member::Type,
                            Some("features") => Member::Features,
                            _ => Member::Other,
                        };
                        self.state = Geo::Colon;
                    } else {
                        self.state = Geo::Key { escape };
                    }
                }
                Geo::Colon => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == b':' {
                        self.state = Geo::Value;
                        i += 1;
                    } else {
                        return Err(syntax(at, "expected `:`"));
                    }
                }
                Geo::Value => {
                    if is_ws(b) {
                        i += 1;
                        continue;
                    }
                    if matches!(b, b',' | b'}' | b']' | b':') {
                        return Err(syntax(at, "expected a value"));
                    }
                    match (self.member, self.mode) {
                        (Member::Type, _) => {
                            if self.seen_type {
                                return Err(not_fc(at, "more than one \"type\" member"));
                            }
                            if b != b'"' {
                                return Err(not_fc(at, "\"type\" is not a string"));
                            }
                            self.seen_type = true;
                            self.type_at = at;
                            self.small.clear();
                            self.small_over = false;
                            self.state = Geo::TypeStr { escape: false };
                            i += 1;
                        }
                        (Member::Features, Mode::Unknown | Mode::Collection) => {
                            if self.seen_features {
                                return Err(not_fc(at, "more than one \"features\" member"));
                            }
                            if b != b'[' {
                                return Err(not_fc(at, "\"features\" is not an array"));
                            }
                            self.seen_features = true;
                            self.become_collection(core, &mut cap);
                            self.state = Geo::Elem { first: true };
                            i += 1;
                        }
                        _ => self.state = Geo::Skip(Scan::new()),
                    }
                }
                Geo::TypeStr { mut escape } => {
                    let (used, closed) = self.scan_small(&chunk[i..], &mut escape, MAX_TYPE_BYTES);
                    i += used;
                    if !closed {
                        self.state = Geo::TypeStr { escape };
                        continue;
                    }
                    self.state = Geo::AfterMember;
                    let type_at = self.type_at;
                    match self.small_text().as_deref() {
                        Some("FeatureCollection") => {
                            if self.mode == Mode::Unknown {
                                self.become_collection(core, &mut cap);
                            }
                        }
                        Some("Feature") => {
                            if self.mode == Mode::Collection {
                                return Err(not_fc(
                                    type_at,
                                    "a Feature with a \"features\" member",
                                ));
                            }
                            self.mode = Mode::Single;
                        }
                        Some(other) => {
                            return Err(not_fc(type_at, format!("\"type\" is {other:?}")));
                        }
                        None => {
                            return Err(not_fc(
                                type_at,
                                "\"type\" is neither FeatureCollection nor Feature",
                            ));
                        }
                    }
                }
                Geo::Skip(mut scan) => {
                    let (used, done) = scan.feed(&chunk[i..]);
                    i += used;
                    self.state = if done {
                        Geo::AfterMember
                    } else {
                        Geo::Skip(scan)
                    };
                }
                Geo::AfterMember => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == b',' {
                        self.state = Geo::Member { first: false };
                        i += 1;
                    } else if b == b'}' {
                        i += 1;
                        if let Some(s) = cap.take() {
                            core.append(&chunk[s..i]);
                        }
                        self.capturing = false;
                        self.close(core, at, out)?;
                    } else {
                        return Err(syntax(at, "expected `,` or `}`"));
                    }
                }
                Geo::Elem { first } => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == b']' && first {
                        self.state = Geo::AfterMember;
                        i += 1;
                    } else if matches!(b, b',' | b']' | b'}' | b':') {
                        return Err(syntax(at, "expected a feature"));
                    } else {
                        core.reset();
                        // The quick way: an object wholly in this chunk
                        // (and within the limit) and well-formed is read in
                        // place, in one pass. Anything else is scanned for
                        // its end first, then read.
                        if b == b'{'
                            && let Some((result, used)) = parse_prefix(utf8_window(
                                chunk,
                                i,
                                &mut utf8,
                                core.limits.max_feature_bytes,
                            ))
                        {
                            core.emit(result, None, out);
                            self.state = Geo::AfterElem;
                            i += used;
                            continue;
                        }
                        let mut scan = Scan::new();
                        let (used, done) = scan.feed(&chunk[i..]);
                        if done {
                            let element = &chunk[i..i + used];
                            let result = if element.len() > core.limits.max_feature_bytes {
                                Err(core.oversize_fail())
                            } else {
                                check(element)
                            };
                            core.emit(result, None, out);
                            self.state = Geo::AfterElem;
                        } else {
                            core.append(&chunk[i..i + used]);
                            self.state = Geo::InElem(scan);
                        }
                        i += used;
                    }
                }
                Geo::InElem(mut scan) => {
                    let (used, done) = scan.feed(&chunk[i..]);
                    core.append(&chunk[i..i + used]);
                    i += used;
                    if done {
                        core.emit_buffered(out);
                        self.state = Geo::AfterElem;
                    } else {
                        self.state = Geo::InElem(scan);
                    }
                }
                Geo::AfterElem => {
                    if is_ws(b) {
                        i += 1;
                    } else if b == b',' {
                        self.state = Geo::Elem { first: false };
                        i += 1;
                    } else if b == b']' {
                        self.state = Geo::AfterMember;
                        i += 1;
                    } else {
                        return Err(syntax(at, "expected `,` or `]` after a feature"));
                    }
                }
                Geo::Done => {
                    if is_ws(b) {
                        i += 1;
                    } else {
                        return Err(syntax(at, "unexpected data after the document"));
                    }
                }
            }
        }
        if let Some(s) = cap {
            core.append(&chunk[s..]);
        }
        Ok(())
    }
}

/// The text of `chunk` from `at` (an ASCII byte) for at most `limit` bytes,
/// as far as it is UTF-8; `cache` keeps the chunk's text checked so far, so
/// that each byte is checked about once.
fn utf8_window<'c>(
    chunk: &'c [u8],
    at: usize,
    cache: &mut Option<(usize, &'c str)>,
    limit: usize,
) -> &'c str {
    let (base, text) = match *cache {
        Some((base, text)) if at >= base && at - base < text.len() => (base, text),
        _ => {
            let rest = chunk.get(at..).unwrap_or_default();
            let text = match std::str::from_utf8(rest) {
                Ok(text) => text,
                Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
            };
            *cache = Some((at, text));
            (at, text)
        }
    };
    let start = at - base;
    let mut end = text.len().min(start.saturating_add(limit));
    while end > start && !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(start..end).unwrap_or_default()
}

/// A feature as a whole JSON value.
struct FeatureDoc<'a>(RawFeature<'a>);

impl<'de> de::Deserialize<'de> for FeatureDoc<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut raw = RawFeature::default();
        raw.this = Fill(&mut raw).deserialize(d)?;
        Ok(FeatureDoc(raw))
    }
}

/// Reads the JSON value at the start of `text` when it is well-formed and
/// complete there: the feature and the value's length in bytes. (A
/// well-formed object ends where [`Scan`] would say it does.)
fn parse_prefix(text: &str) -> Option<(Result<Asset, Fail>, usize)> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<FeatureDoc<'_>>();
    match stream.next() {
        Some(Ok(doc)) => Some((validate(&doc.0), stream.byte_offset())),
        _ => None,
    }
}

/// Finds where one JSON value ends, fed in pieces: counts depth and tracks
/// strings, never recurses, validates nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    kind: ScanKind,
    depth: u64,
    in_str: bool,
    escape: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanKind {
    Fresh,
    Container,
    Str,
    Scalar,
}

/// Bytes that end a scalar (a number, `true`, or anything not JSON).
fn ends_scalar(b: u8) -> bool {
    is_ws(b) || matches!(b, b',' | b']' | b'}' | b'[' | b'{' | b'"' | b':')
}

impl Scan {
    fn new() -> Self {
        Self {
            kind: ScanKind::Fresh,
            depth: 0,
            in_str: false,
            escape: false,
        }
    }

    /// Reads the value's next bytes: how many belong to it and whether it
    /// ended (a scalar ends before the byte that ends it).
    fn feed(&mut self, s: &[u8]) -> (usize, bool) {
        let mut i = 0;
        if self.kind == ScanKind::Fresh {
            let Some(&b) = s.first() else {
                return (0, false);
            };
            match b {
                b'{' | b'[' => {
                    self.kind = ScanKind::Container;
                    self.depth = 1;
                    i = 1;
                }
                b'"' => {
                    self.kind = ScanKind::Str;
                    self.in_str = true;
                    i = 1;
                }
                _ => self.kind = ScanKind::Scalar,
            }
        }
        if self.kind == ScanKind::Scalar {
            return match s[i..].iter().position(|&b| ends_scalar(b)) {
                Some(p) => (i + p, true),
                None => (s.len(), false),
            };
        }
        while i < s.len() {
            if self.in_str {
                if self.escape {
                    self.escape = false;
                    i += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &s[i..]) {
                    None => return (s.len(), false),
                    Some(p) => {
                        i += p;
                        if s[i] == b'\\' {
                            self.escape = true;
                        } else {
                            self.in_str = false;
                            if self.kind == ScanKind::Str {
                                return (i + 1, true);
                            }
                        }
                        i += 1;
                    }
                }
            } else {
                match s[i] {
                    b'"' => self.in_str = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            return (i + 1, true);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        (i, false)
    }
}

// ---------------------------------------------------------------------------
// One feature: lenient deserialization, then validation.

const NOT_FINITE: &str = "not a finite number";
/// What a bare `NaN`/`Infinity` becomes when a feature is re-read, and the
/// string value that marks it.
const NON_FINITE_JSON: &[u8] = br#""\u0000non-finite""#;
const NON_FINITE_MARK: &str = "\u{0}non-finite";

/// Why a feature was rejected.
#[derive(Debug)]
struct Fail {
    field: &'static str,
    reason: Cow<'static, str>,
    id: Option<String>,
}

/// A field as read: absent (or null where that means absent), of the wrong
/// kind (why), or its value.
#[derive(Debug, Default)]
enum Val<T> {
    #[default]
    Missing,
    Bad(&'static str),
    Ok(T),
}

/// A JSON number as serde_json reports it.
#[derive(Debug, Clone, Copy)]
enum Num {
    U(u64),
    I(i64),
    F(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::U(u) => u as f64,
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

/// A string as serde_json reports it: borrowed from the input, or
/// unescaped into a scratch buffer.
enum StrIn<'de, 'a> {
    Borrowed(&'de str),
    Transient(&'a str),
}

impl<'de> StrIn<'de, '_> {
    fn into_cow(self) -> Cow<'de, str> {
        match self {
            StrIn::Borrowed(s) => Cow::Borrowed(s),
            StrIn::Transient(s) => Cow::Owned(s.to_owned()),
        }
    }
}

/// What a field accepts; anything else becomes `Val::Bad(EXPECTED)`.
trait Shape<'de>: Sized {
    type Out;
    const EXPECTED: &'static str;

    fn number(_n: Num) -> Val<Self::Out> {
        Val::Bad(Self::EXPECTED)
    }
    fn string(_s: StrIn<'de, '_>) -> Val<Self::Out> {
        Val::Bad(Self::EXPECTED)
    }
    fn null() -> Val<Self::Out> {
        Val::Bad(Self::EXPECTED)
    }
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Val<Self::Out>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Bad(Self::EXPECTED))
    }
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Val<Self::Out>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Bad(Self::EXPECTED))
    }
}

struct ShapeVisitor<S>(PhantomData<S>);

impl<'de, S: Shape<'de>> Visitor<'de> for ShapeVisitor<S> {
    type Value = Val<S::Out>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(S::EXPECTED)
    }
    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<Self::Value, E> {
        Ok(Val::Bad(S::EXPECTED))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(S::number(Num::I(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(S::number(Num::U(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(S::number(Num::F(v)))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(S::string(StrIn::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        // The mark has an escape, so it never comes borrowed.
        if v == NON_FINITE_MARK {
            return Ok(Val::Bad(NOT_FINITE));
        }
        Ok(S::string(StrIn::Transient(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(S::null())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(S::null())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        S::seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        S::map(map)
    }
}

struct Seed<S>(PhantomData<S>);

fn seed<S>() -> Seed<S> {
    Seed(PhantomData)
}

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = Val<S::Out>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ShapeVisitor::<S>(PhantomData))
    }
}

/// Member names of an object, those of interest and `Other`.
macro_rules! keys {
    ($name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        #[derive(Clone, Copy)]
        enum $name {
            $($variant,)*
            Other,
        }

        impl<'de> de::Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct KeyVisitor;
                impl Visitor<'_> for KeyVisitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a member name")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok(match v {
                            $($text => $name::$variant,)*
                            _ => $name::Other,
                        })
                    }
                }
                d.deserialize_identifier(KeyVisitor)
            }
        }
    };
}

keys!(FeatureKey {
    Type = "type",
    Id = "id",
    Geometry = "geometry",
    Properties = "properties",
});

keys!(GeometryKey {
    Type = "type",
    Coordinates = "coordinates",
});

keys!(PropKey {
    Id = "id",
    Deformation = "deformation",
    RegistrationQuality = "registration_quality",
    FusionConfidence = "fusion_confidence",
    ProcessingDurationMs = "processing_duration_ms",
    AlgorithmVersion = "algorithm_version",
    ProcessedAt = "processed_at",
});

struct NumS;
impl Shape<'_> for NumS {
    type Out = f64;
    const EXPECTED: &'static str = "expected a number";
    fn number(n: Num) -> Val<f64> {
        Val::Ok(n.as_f64())
    }
}

struct DurationS;
impl Shape<'_> for DurationS {
    type Out = u32;
    const EXPECTED: &'static str = "expected a non-negative integer";
    fn number(n: Num) -> Val<u32> {
        const TOO_LARGE: &str = "larger than 4294967295";
        match n {
            Num::U(u) => u32::try_from(u).map_or(Val::Bad(TOO_LARGE), Val::Ok),
            Num::I(i) => u32::try_from(i).map_or(Val::Bad(Self::EXPECTED), Val::Ok),
            Num::F(f) if f.fract() == 0.0 && f >= 0.0 => {
                if f <= f64::from(u32::MAX) {
                    Val::Ok(f as u32)
                } else {
                    Val::Bad(TOO_LARGE)
                }
            }
            Num::F(_) => Val::Bad(Self::EXPECTED),
        }
    }
}

struct StrS;
impl<'de> Shape<'de> for StrS {
    type Out = Cow<'de, str>;
    const EXPECTED: &'static str = "expected a string";
    fn string(s: StrIn<'de, '_>) -> Val<Self::Out> {
        Val::Ok(s.into_cow())
    }
}

/// An id: a string; null is as good as absent.
struct IdS;
impl<'de> Shape<'de> for IdS {
    type Out = Cow<'de, str>;
    const EXPECTED: &'static str = "expected a UUID string";
    fn string(s: StrIn<'de, '_>) -> Val<Self::Out> {
        Val::Ok(s.into_cow())
    }
    fn null() -> Val<Self::Out> {
        Val::Missing
    }
}

/// What a composite field (object or array) turned out to be; its contents
/// are read into place, not moved about.
type Status = Val<()>;

/// A composite read into place: what it accepts, anything else is
/// `Val::Bad(EXPECTED)` (null is `Val::Missing`).
trait Target<'de> {
    const EXPECTED: &'static str;

    fn map<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<Status, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Bad(Self::EXPECTED))
    }
    fn seq<A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<Status, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Bad(Self::EXPECTED))
    }
}

/// Reads a composite into `.0`.
struct Fill<'r, T>(&'r mut T);

impl<'de, T: Target<'de>> DeserializeSeed<'de> for Fill<'_, T> {
    type Value = Status;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Status, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Target<'de>> Visitor<'de> for Fill<'_, T> {
    type Value = Status;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }
    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<Status, E> {
        Ok(Val::Bad(T::EXPECTED))
    }
    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<Status, E> {
        Ok(Val::Bad(T::EXPECTED))
    }
    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<Status, E> {
        Ok(Val::Bad(T::EXPECTED))
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Status, E> {
        Ok(Val::Bad(T::EXPECTED))
    }
    fn visit_borrowed_str<E: de::Error>(self, _v: &'de str) -> Result<Status, E> {
        Ok(Val::Bad(T::EXPECTED))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Status, E> {
        Ok(Val::Bad(if v == NON_FINITE_MARK {
            NOT_FINITE
        } else {
            T::EXPECTED
        }))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Status, E> {
        Ok(Val::Missing)
    }
    fn visit_none<E: de::Error>(self) -> Result<Status, E> {
        Ok(Val::Missing)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Status, A::Error> {
        self.0.seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Status, A::Error> {
        self.0.map(map)
    }
}

/// Up to three numbers, and how many there were.
#[derive(Debug, Default)]
struct Nums {
    values: [Val<f64>; 3],
    len: usize,
}

impl<'de> Target<'de> for Nums {
    const EXPECTED: &'static str = "expected an array of numbers";

    fn seq<A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<Status, A::Error> {
        *self = Nums::default();
        loop {
            if let Some(slot) = self.values.get_mut(self.len) {
                match seq.next_element_seed(seed::<NumS>())? {
                    Some(v) => *slot = v,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            self.len += 1;
        }
        Ok(Val::Ok(()))
    }
}

#[derive(Debug, Default)]
struct RawGeometry<'a> {
    kind: Val<Cow<'a, str>>,
    coordinates: Status,
    numbers: Nums,
}

impl<'de> Target<'de> for RawGeometry<'de> {
    const EXPECTED: &'static str = "expected a Point geometry";

    fn map<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<Status, A::Error> {
        while let Some(key) = map.next_key::<GeometryKey>()? {
            match key {
                GeometryKey::Type => self.kind = map.next_value_seed(seed::<StrS>())?,
                GeometryKey::Coordinates => {
                    self.coordinates = map.next_value_seed(Fill(&mut self.numbers))?;
                }
                GeometryKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Val::Ok(()))
    }
}

#[derive(Debug, Default)]
struct RawProperties<'a> {
    id: Val<Cow<'a, str>>,
    deformation: Status,
    deformation_numbers: Nums,
    registration_quality: Val<f64>,
    fusion_confidence: Val<f64>,
    processing_duration_ms: Val<u32>,
    algorithm_version: Val<Cow<'a, str>>,
    processed_at: Val<Cow<'a, str>>,
}

impl<'de> Target<'de> for RawProperties<'de> {
    const EXPECTED: &'static str = "expected an object";

    fn map<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<Status, A::Error> {
        while let Some(key) = map.next_key::<PropKey>()? {
            match key {
                PropKey::Id => self.id = map.next_value_seed(seed::<IdS>())?,
                PropKey::Deformation => {
                    self.deformation = map.next_value_seed(Fill(&mut self.deformation_numbers))?;
                }
                PropKey::RegistrationQuality => {
                    self.registration_quality = map.next_value_seed(seed::<NumS>())?;
                }
                PropKey::FusionConfidence => {
                    self.fusion_confidence = map.next_value_seed(seed::<NumS>())?;
                }
                PropKey::ProcessingDurationMs => {
                    self.processing_duration_ms = map.next_value_seed(seed::<DurationS>())?;
                }
                PropKey::AlgorithmVersion => {
                    self.algorithm_version = map.next_value_seed(seed::<StrS>())?;
                }
                PropKey::ProcessedAt => {
                    self.processed_at = map.next_value_seed(seed::<StrS>())?;
                }
                PropKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Val::Ok(()))
    }
}

#[derive(Debug, Default)]
struct RawFeature<'a> {
    /// The feature itself: an object or not.
    this: Status,
    kind: Val<Cow<'a, str>>,
    id: Val<Cow<'a, str>>,
    geometry: Status,
    geometry_members: RawGeometry<'a>,
    properties: Status,
    property_members: RawProperties<'a>,
}

impl<'de> Target<'de> for RawFeature<'de> {
    const EXPECTED: &'static str = "expected a Feature object";

    fn map<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<Status, A::Error> {
        while let Some(key) = map.next_key::<FeatureKey>()? {
            match key {
                FeatureKey::Type => self.kind = map.next_value_seed(seed::<StrS>())?,
                FeatureKey::Id => self.id = map.next_value_seed(seed::<IdS>())?,
                FeatureKey::Geometry => {
                    self.geometry = map.next_value_seed(Fill(&mut self.geometry_members))?;
                }
                FeatureKey::Properties => {
                    self.properties = map.next_value_seed(Fill(&mut self.property_members))?;
                }
                FeatureKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Val::Ok(()))
    }
}

/// Reads one feature's JSON (the whole of `bytes`) into `raw`.
fn parse_raw<'a>(bytes: &'a [u8], raw: &mut RawFeature<'a>) -> Result<(), serde_json::Error> {
    // Checking UTF-8 once is quicker than string by string.
    if let Ok(text) = std::str::from_utf8(bytes) {
        let mut de = serde_json::Deserializer::from_str(text);
        raw.this = Fill(&mut *raw).deserialize(&mut de)?;
        return de.end();
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    raw.this = Fill(&mut *raw).deserialize(&mut de)?;
    de.end()
}

/// Parses and validates one feature.
fn check(bytes: &[u8]) -> Result<Asset, Fail> {
    let mut raw = RawFeature::default();
    match parse_raw(bytes, &mut raw) {
        Ok(()) => validate(&raw),
        Err(e) => {
            if let Some(patched) = mark_non_finite(bytes) {
                let mut raw = RawFeature::default();
                if parse_raw(&patched, &mut raw).is_ok() {
                    return validate(&raw);
                }
            }
            Err(Fail {
                field: "",
                reason: Cow::Owned(json_reason(&e)),
                id: None,
            })
        }
    }
}

/// Why serde_json refused a feature, without repeating it.
fn json_reason(e: &serde_json::Error) -> String {
    let message = e.to_string();
    if message.starts_with("number out of range") {
        return NOT_FINITE.to_owned();
    }
    if message.starts_with("recursion limit exceeded") {
        return "nested too deeply".to_owned();
    }
    let what = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of JSON",
        _ => "invalid JSON",
    };
    if e.line() <= 1 {
        format!("{what} at column {}", e.column())
    } else {
        format!("{what} at line {}, column {}", e.line(), e.column())
    }
}

/// The feature with each bare `NaN`, `Infinity` and `-Infinity` outside
/// strings replaced by the non-finite mark; `None` when it has none.
fn mark_non_finite(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut patched: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    let mut in_str = false;
    let mut escape = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_str {
            if escape {
                escape = false;
            } else if b == b'\\' {
                escape = true;
            } else if b == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        let rest = &bytes[i..];
        let token = if b == b'"' {
            in_str = true;
            0
        } else if rest.starts_with(b"NaN") {
            3
        } else if rest.starts_with(b"Infinity") {
            8
        } else if rest.starts_with(b"-Infinity") {
            9
        } else {
            0
        };
        if token == 0 {
            i += 1;
            continue;
        }
        let out = patched.get_or_insert_with(|| Vec::with_capacity(bytes.len() + 32));
        out.extend_from_slice(&bytes[copied..i]);
        out.extend_from_slice(NON_FINITE_JSON);
        i += token;
        copied = i;
    }
    let mut out = patched?;
    out.extend_from_slice(&bytes[copied..]);
    Some(out)
}

const COORDINATE_FIELDS: [&str; 3] = [
    "geometry.coordinates[0]",
    "geometry.coordinates[1]",
    "geometry.coordinates[2]",
];
const DEFORMATION_FIELDS: [&str; 3] = [
    "properties.deformation[0]",
    "properties.deformation[1]",
    "properties.deformation[2]",
];

/// Checks the fields of a feature as read, in order, and builds the asset.
fn validate(f: &RawFeature<'_>) -> Result<Asset, Fail> {
    match f.this {
        Val::Ok(()) => {}
        Val::Bad(reason) => return Err(fail("", reason, None)),
        Val::Missing => return Err(fail("", <RawFeature<'_> as Target<'_>>::EXPECTED, None)),
    }
    let (id_field, id) = match (&f.id, &f.properties) {
        (Val::Missing, Val::Ok(())) if !matches!(f.property_members.id, Val::Missing) => {
            ("properties.id", &f.property_members.id)
        }
        _ => ("id", &f.id),
    };
    let id_text = match id {
        Val::Ok(s) if s.len() <= MAX_REPORTED_ID_BYTES => Some(s.as_ref()),
        _ => None,
    };
    let err = |field: &'static str, reason: Cow<'static, str>| Fail {
        field,
        reason,
        id: id_text.map(str::to_owned),
    };
    let bad = |field: &'static str, reason: &'static str| err(field, Cow::Borrowed(reason));

    match &f.kind {
        Val::Ok(t) if t == "Feature" => {}
        Val::Missing => return Err(bad("type", "missing")),
        _ => return Err(bad("type", "expected \"Feature\"")),
    }

    let id = match id {
        // Hyphenated or simple, in any case; not braced nor a URN.
        Val::Ok(s) if matches!(s.len(), 32 | 36) => {
            Uuid::try_parse(s).map_err(|_| bad(id_field, "not a UUID"))?
        }
        Val::Ok(_) => return Err(bad(id_field, "not a UUID")),
        Val::Missing => return Err(bad("id", "missing")),
        Val::Bad(reason) => return Err(bad(id_field, reason)),
    };

    match f.geometry {
        Val::Ok(()) => {}
        Val::Missing => return Err(bad("geometry", "missing")),
        Val::Bad(reason) => return Err(bad("geometry", reason)),
    }
    let geometry = &f.geometry_members;
    match &geometry.kind {
        Val::Ok(t) if t == "Point" => {}
        Val::Missing => return Err(bad("geometry.type", "missing")),
        _ => return Err(bad("geometry.type", "expected \"Point\"")),
    }
    let coordinates = &geometry.numbers;
    match geometry.coordinates {
        Val::Ok(()) if (2..=3).contains(&coordinates.len) => {}
        Val::Ok(_) => return Err(bad("geometry.coordinates", "expected 2 or 3 numbers")),
        Val::Missing => return Err(bad("geometry.coordinates", "missing")),
        Val::Bad(_) => {
            return Err(bad(
                "geometry.coordinates",
                "expected an array of 2 or 3 numbers",
            ));
        }
    };
    let mut lon_lat_z = [0.0; 3];
    for (i, (slot, value)) in lon_lat_z
        .iter_mut()
        .zip(&coordinates.values)
        .take(coordinates.len)
        .enumerate()
    {
        *slot = finite(value).map_err(|reason| bad(COORDINATE_FIELDS[i], reason))?;
    }
    let [lon, lat, z] = lon_lat_z;
    if !(-180.0..=180.0).contains(&lon) {
        return Err(err(
            COORDINATE_FIELDS[0],
            Cow::Owned(format!("longitude {lon} out of [-180, 180]")),
        ));
    }
    if !(-90.0..=90.0).contains(&lat) {
        return Err(err(
            COORDINATE_FIELDS[1],
            Cow::Owned(format!("latitude {lat} out of [-90, 90]")),
        ));
    }

    match f.properties {
        Val::Ok(()) => {}
        Val::Missing => return Err(bad("properties", "missing")),
        Val::Bad(reason) => return Err(bad("properties", reason)),
    }
    let p = &f.property_members;
    let deformation = &p.deformation_numbers;
    match p.deformation {
        Val::Ok(()) if deformation.len == 3 => {}
        Val::Ok(_) => return Err(bad("properties.deformation", "expected 3 numbers")),
        Val::Missing => return Err(bad("properties.deformation", "missing")),
        Val::Bad(_) => {
            return Err(bad(
                "properties.deformation",
                "expected an array of 3 numbers",
            ));
        }
    };
    let mut d = [0.0; 3];
    for (i, (slot, value)) in d.iter_mut().zip(&deformation.values).enumerate() {
        *slot = finite(value).map_err(|reason| bad(DEFORMATION_FIELDS[i], reason))?;
    }
    let unit = |field: &'static str, value: &Val<f64>| -> Result<f64, Fail> {
        let x = finite(value).map_err(|reason| bad(field, reason))?;
        if (0.0..=1.0).contains(&x) {
            Ok(x)
        } else {
            Err(err(field, Cow::Owned(format!("{x} out of [0, 1]"))))
        }
    };
    let registration_quality = unit("properties.registration_quality", &p.registration_quality)?;
    let fusion_confidence = unit("properties.fusion_confidence", &p.fusion_confidence)?;
    let processing_duration_ms = match p.processing_duration_ms {
        Val::Ok(ms) => ms,
        Val::Missing => return Err(bad("properties.processing_duration_ms", "missing")),
        Val::Bad(reason) => return Err(bad("properties.processing_duration_ms", reason)),
    };
    let algorithm_version = match &p.algorithm_version {
        Val::Ok(v) if v.is_empty() => {
            return Err(bad("properties.algorithm_version", "empty"));
        }
        Val::Ok(v) if v.len() > MAX_ALGORITHM_VERSION_BYTES => {
            return Err(err(
                "properties.algorithm_version",
                Cow::Owned(format!("longer than {MAX_ALGORITHM_VERSION_BYTES} bytes")),
            ));
        }
        Val::Ok(v) => v,
        Val::Missing => return Err(bad("properties.algorithm_version", "missing")),
        Val::Bad(reason) => return Err(bad("properties.algorithm_version", reason)),
    };
    let processed_at_ms = match &p.processed_at {
        Val::Ok(t) => model::parse_timestamp(t).map_err(|e| match e {
            model::TimestampError::Invalid => {
                bad("properties.processed_at", "not an RFC 3339 timestamp")
            }
            model::TimestampError::FinerThanMillisecond => bad(
                "properties.processed_at",
                "finer than a millisecond: timestamps are kept to the millisecond, so digits below it are refused, not cut off",
            ),
        })?,
        Val::Missing => return Err(bad("properties.processed_at", "missing")),
        Val::Bad(_) => {
            return Err(bad(
                "properties.processed_at",
                "expected an RFC 3339 timestamp string",
            ));
        }
    };

    Ok(Asset {
        id,
        lon,
        lat,
        z,
        deformation: d,
        registration_quality,
        fusion_confidence,
        processing_duration_ms,
        algorithm_version: algorithm_version.as_ref().to_owned(),
        processed_at_ms,
    })
}

fn fail(field: &'static str, reason: &'static str, id: Option<String>) -> Fail {
    Fail {
        field,
        reason: Cow::Borrowed(reason),
        id,
    }
}

/// A number that is present and finite.
fn finite(value: &Val<f64>) -> Result<f64, &'static str> {
    match value {
        Val::Ok(x) if x.is_finite() => Ok(*x),
        Val::Ok(_) => Err(NOT_FINITE),
        Val::Missing => Err("missing"),
        Val::Bad(reason) => Err(reason),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Feeds `input` to a fresh scanner in pieces of `step` bytes: where it
    /// ended.
    fn scan_end(input: &[u8], step: usize) -> Option<usize> {
        let mut scan = Scan::new();
        let mut at = 0;
        while at < input.len() {
            let piece = &input[at..(at + step).min(input.len())];
            let (used, done) = scan.feed(piece);
            if done {
                return Some(at + used);
            }
            assert_eq!(used, piece.len());
            at += piece.len();
        }
        None
    }

    #[test]
    fn scan_finds_value_ends_in_any_pieces() {
        let cases: &[(&[u8], Option<usize>)] = &[
            (br#"{"a":"x\"}]","b":[1,{"c":"\\"}]} ,"#, Some(32)),
            (br#""st\\\"r" x"#, Some(9)),
            (b"12.5e3]", Some(6)),
            (b"true", None),
            (b"NaN,", Some(3)),
            (b"[[[[", None),
            (r#"["é\u00e9]"]"#.as_bytes(), Some(13)),
        ];
        for &(input, end) in cases {
            for step in 1..=input.len() {
                assert_eq!(scan_end(input, step), end, "{input:?} in {step}s");
            }
        }
    }

    #[test]
    fn scan_keeps_depth_without_recursion() {
        let deep = vec![b'['; 1_000_000];
        let mut scan = Scan::new();
        assert_eq!(scan.feed(&deep), (deep.len(), false));
        assert_eq!(scan.depth, 1_000_000);
        let close = vec![b']'; 1_000_000];
        assert_eq!(scan.feed(&close), (close.len(), true));
    }

    #[test]
    fn non_finite_tokens_are_marked_outside_strings_only() {
        assert_eq!(mark_non_finite(br#"{"a":"NaN","b":1}"#), None);
        let marked = mark_non_finite(br#"[NaN,-Infinity,"Infinity\"NaN",Infinity]"#).unwrap();
        assert_eq!(
            String::from_utf8(marked).unwrap(),
            r#"["\u0000non-finite","\u0000non-finite","Infinity\"NaN","\u0000non-finite"]"#
        );
    }

    #[test]
    fn content_types() {
        use InputFormat::*;
        for (ct, format) in [
            ("application/geo+json", Some(GeoJson)),
            ("Application/JSON; charset=utf-8", Some(GeoJson)),
            ("application/x-ndjson", Some(NdJson)),
            ("application/ndjson;charset=UTF-8", Some(NdJson)),
            ("application/geo+json-seq", Some(NdJson)),
            ("application/jsonl", Some(NdJson)),
            ("application/json-lines", Some(NdJson)),
            (" application/x-ndjson ", Some(NdJson)),
            ("text/plain", None),
            ("", None),
        ] {
            assert_eq!(InputFormat::from_content_type(ct), format, "{ct}");
        }
    }

    #[test]
    fn escaped_member_names_are_understood() {
        let doc = br#"{"typ\u0065":"Feature\u0043ollection","f\u0065atures":[]}"#;
        let (assets, report) =
            read_all(InputFormat::GeoJson, IngestLimits::default(), doc).unwrap();
        assert!(assets.is_empty());
        assert_eq!(report.accepted + report.rejected, 0);
    }

    #[test]
    fn buffer_never_grows_past_the_limit() {
        let limits = IngestLimits {
            max_feature_bytes: 1000,
            max_reported: 10,
        };
        let mut core = Core {
            limits,
            buf: Vec::new(),
            oversize: false,
            index: 0,
            offset: 0,
        };
        for _ in 0..999 {
            core.append(b"x");
            assert!(core.buf.capacity() <= 1000);
        }
        core.append(b"x");
        assert_eq!(core.buf.len(), 1000);
        assert!(!core.oversize);
        core.append(b"x");
        assert!(core.oversize);
        assert!(core.buf.is_empty() && core.buf.capacity() <= 1000);
    }

    #[test]
    fn duration_accepts_integral_numbers_only() {
        assert!(matches!(DurationS::number(Num::U(5)), Val::Ok(5)));
        assert!(matches!(DurationS::number(Num::F(5.0)), Val::Ok(5)));
        assert!(matches!(DurationS::number(Num::F(5.5)), Val::Bad(_)));
        assert!(matches!(DurationS::number(Num::I(-1)), Val::Bad(_)));
        assert!(matches!(DurationS::number(Num::U(1 << 32)), Val::Bad(_)));
        assert!(matches!(DurationS::number(Num::F(1e10)), Val::Bad(_)));
    }
}
