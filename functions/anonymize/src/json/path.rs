//! Locations in a JSON document ([`Path`], [`Segment`]), the patterns a
//! policy writes to select them ([`PathPattern`]) and a compiled set of
//! patterns ([`PathRules`]) the rewriter matches incrementally.

use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::sync::Arc;

/// One step from a container to a child: an object member or an array
/// element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment<'a> {
    /// An object member, by its decoded key.
    Key(&'a str),
    /// An array element, by its zero-based index.
    Index(usize),
}

/// An open container on the rewriter's stack, and where in it we are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    /// An object (else an array).
    pub(crate) object: bool,
    /// The current element's index (arrays).
    pub(crate) index: usize,
    /// The current member's decoded key, `keys[key_start..key_end]` (objects).
    pub(crate) key_start: usize,
    pub(crate) key_end: usize,
    /// Whether the current member's key is complete (objects).
    pub(crate) has_key: bool,
}

impl Frame {
    pub(crate) fn new(object: bool, keys_len: usize) -> Frame {
        Frame {
            object,
            index: 0,
            key_start: keys_len,
            key_end: keys_len,
            has_key: false,
        }
    }

    #[inline]
    fn segment<'a>(&self, keys: &'a str) -> Segment<'a> {
        if self.object {
            Segment::Key(keys.get(self.key_start..self.key_end).unwrap_or(""))
        } else {
            Segment::Index(self.index)
        }
    }
}

/// Where a value is: the segments from the document root (`$`) to it, and
/// the rule (if any) of the rewriter's [`PathRules`] that selects it.
///
/// Displays as a JSONPath, e.g. `$.events[3].ip` or `$['odd key'][0]`.
#[derive(Clone, Copy)]
pub struct Path<'a> {
    frames: &'a [Frame],
    keys: &'a str,
    rule: Option<usize>,
}

impl<'a> Path<'a> {
    pub(crate) fn new(frames: &'a [Frame], keys: &'a str, rule: Option<usize>) -> Path<'a> {
        Path { frames, keys, rule }
    }

    /// How many segments (0 for the root).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether this is the root `$`.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The `i`-th segment from the root.
    pub fn get(&self, i: usize) -> Option<Segment<'a>> {
        self.frames.get(i).map(|f| f.segment(self.keys))
    }

    /// The last segment: the value's own key or index (`None` at the root).
    pub fn last(&self) -> Option<Segment<'a>> {
        self.frames.last().map(|f| f.segment(self.keys))
    }

    /// The segments from the root.
    pub fn segments(&self) -> Segments<'a> {
        Segments {
            frames: self.frames.iter(),
            keys: self.keys,
        }
    }

    /// The index in the rewriter's [`PathRules`] of the rule that selects
    /// this value: the first declared rule whose pattern matches the path
    /// or one of its ancestors. `None` when no rule does (or the rewriter
    /// has no rules).
    pub fn rule(&self) -> Option<usize> {
        self.rule
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('$')?;
        for segment in self.segments() {
            write_segment(f, segment, usize::MAX)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Path")
            .field("path", &format_args!("{self}"))
            .field("rule", &self.rule)
            .finish()
    }
}

/// The segments of a [`Path`], from the root.
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    frames: std::slice::Iter<'a, Frame>,
    keys: &'a str,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        self.frames.next().map(|f| f.segment(self.keys))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.frames.size_hint()
    }
}

impl DoubleEndedIterator for Segments<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.frames.next_back().map(|f| f.segment(self.keys))
    }
}

impl ExactSizeIterator for Segments<'_> {}

/// The path of an error: the open containers and, where known, the current
/// member or element. Long keys are cut (they may be personal data).
pub(crate) fn error_path(frames: &[Frame], keys: &str) -> String {
    /// Characters of a key shown in an error.
    const KEY_CHARS: usize = 32;
    let mut s = String::from("$");
    for f in frames {
        if f.object && !f.has_key {
            break;
        }
        // Writing to a String cannot fail.
        let _ = write_segment(&mut s, f.segment(keys), KEY_CHARS);
    }
    s
}

/// Whether `key` can be written `.key` (else `['key']`).
fn is_shorthand(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c == '-' || c.is_alphanumeric())
}

/// Writes `.key`, `['key']` or `[index]`; keys cut after `max_chars`.
fn write_segment(f: &mut impl fmt::Write, segment: Segment<'_>, max_chars: usize) -> fmt::Result {
    match segment {
        Segment::Index(i) => write!(f, "[{i}]"),
        Segment::Key(k) => {
            let cut = k.char_indices().nth(max_chars).map(|(i, _)| i);
            let shown = cut.map_or(k, |i| &k[..i]);
            let ellipsis = if cut.is_some() { "…" } else { "" };
            if is_shorthand(k) {
                write!(f, ".{shown}{ellipsis}")
            } else {
                f.write_str("['")?;
                write_quoted(f, shown)?;
                write!(f, "{ellipsis}']")
            }
        }
    }
}

/// Writes the inside of a single-quoted key.
fn write_quoted(f: &mut impl fmt::Write, key: &str) -> fmt::Result {
    for c in key.chars() {
        match c {
            '\'' => f.write_str("\\'")?,
            '\\' => f.write_str("\\\\")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 || c == '\u{7f}' => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    Ok(())
}

/// What one pattern segment selects among a node's children.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// The object member with this key (`.name`, `['name']`).
    Key(String),
    /// The array element at this index (`[0]`).
    Index(usize),
    /// Every child, of objects and arrays alike (`.*`, `[*]`).
    Wildcard,
}

impl Selector {
    #[inline]
    fn matches(&self, segment: Segment<'_>) -> bool {
        match (self, segment) {
            (Selector::Wildcard, _) => true,
            (Selector::Key(k), Segment::Key(s)) => k == s,
            (Selector::Index(i), Segment::Index(j)) => *i == j,
            _ => false,
        }
    }
}

/// One segment of a [`PathPattern`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatternSegment {
    /// `..`: the selector applies at any depth below (descendants), not
    /// only to children.
    pub descendant: bool,
    /// What it selects.
    pub selector: Selector,
}

/// A JSONPath-like selector as a policy writes it.
///
/// The subset of RFC 9535 that a stream can decide value by value:
///
/// | Syntax | Selects |
/// |---|---|
/// | `$` | the root |
/// | `.name`, `['any key']`, `["any key"]` | the member with that key |
/// | `[3]` | the element at index 3 |
/// | `.*`, `[*]` | every member or element |
/// | `..name`, `..['k']`, `..[3]`, `..*` | the same at any depth below |
///
/// Shorthand names are letters, digits, `_` and `-` and do not start
/// with a digit or `-`; anything else is quoted, with JSON-style escapes
/// (`\'`, `\"`, `\\`, `\n`, `\u00e9`, …). Blank space is allowed inside
/// brackets. Negative indexes, slices, unions and filters are rejected.
///
/// A pattern that selects an object or array selects every value inside
/// it: `$.user` covers `$.user.email` and `$.user.tags[0]`.
///
/// [`Display`](fmt::Display) gives the canonical text: shorthand keys where
/// possible, else single quotes; `[*]` for a child wildcard, `..*` for a
/// descendant one (`$.*.id` displays as `$[*].id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    segments: Vec<PatternSegment>,
}

/// Why a path pattern does not parse: what was expected, and the byte
/// position in the pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at {position}")]
pub struct PathError {
    message: &'static str,
    position: usize,
}

impl PathError {
    /// What is wrong.
    pub fn message(&self) -> &'static str {
        self.message
    }

    /// The byte offset in the pattern where it is wrong.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl PathPattern {
    /// Parses a pattern such as `$.events[*].ip` or `$..email`.
    pub fn parse(text: &str) -> Result<PathPattern, PathError> {
        let mut p = Parser { text, pos: 0 };
        if p.peek() != Some(b'$') {
            return Err(p.err("a path starts with '$'"));
        }
        p.pos = 1;
        let mut segments = Vec::new();
        while let Some(b) = p.peek() {
            let segment = match b {
                b'.' => {
                    p.pos += 1;
                    if p.peek() == Some(b'.') {
                        p.pos += 1;
                        const EXPECTED: &str = "expected a key, '*' or '[' after '..'";
                        let selector = match p.peek() {
                            Some(b'*') => {
                                p.pos += 1;
                                Selector::Wildcard
                            }
                            Some(b'[') => p.bracket()?,
                            _ => Selector::Key(p.name(EXPECTED)?),
                        };
                        PatternSegment {
                            descendant: true,
                            selector,
                        }
                    } else {
                        let selector = match p.peek() {
                            Some(b'*') => {
                                p.pos += 1;
                                Selector::Wildcard
                            }
                            Some(b'[') => {
                                return Err(
                                    p.err("expected a key after '.' (write [..] without the '.')")
                                );
                            }
                            _ => Selector::Key(p.name("expected a key after '.'")?),
                        };
                        PatternSegment {
                            descendant: false,
                            selector,
                        }
                    }
                }
                b'[' => PatternSegment {
                    descendant: false,
                    selector: p.bracket()?,
                },
                _ => return Err(p.err("expected '.' or '['")),
            };
            segments.push(segment);
        }
        Ok(PathPattern { segments })
    }

    /// The segments after `$`.
    pub fn segments(&self) -> &[PatternSegment] {
        &self.segments
    }

    /// Whether the pattern selects the value at `path`: matches the path
    /// itself or one of its ancestors (a selected container selects all
    /// its contents).
    pub fn matches(&self, path: &[Segment<'_>]) -> bool {
        fn go(steps: &[PatternSegment], path: &[Segment<'_>]) -> bool {
            let Some((step, rest)) = steps.split_first() else {
                return true;
            };
            if step.descendant {
                (0..path.len()).any(|k| step.selector.matches(path[k]) && go(rest, &path[k + 1..]))
            } else {
                path.split_first()
                    .is_some_and(|(first, tail)| step.selector.matches(*first) && go(rest, tail))
            }
        }
        go(&self.segments, path)
    }
}

impl FromStr for PathPattern {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PathPattern::parse(s)
    }
}

impl TryFrom<&str> for PathPattern {
    type Error = PathError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        PathPattern::parse(s)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('$')?;
        for s in &self.segments {
            match (&s.selector, s.descendant) {
                (Selector::Key(k), false) => write_segment(f, Segment::Key(k), usize::MAX)?,
                (Selector::Index(i), false) => write!(f, "[{i}]")?,
                (Selector::Wildcard, false) => f.write_str("[*]")?,
                (Selector::Key(k), true) if is_shorthand(k) => write!(f, "..{k}")?,
                (Selector::Key(k), true) => {
                    f.write_str("..['")?;
                    write_quoted(f, k)?;
                    f.write_str("']")?;
                }
                (Selector::Index(i), true) => write!(f, "..[{i}]")?,
                (Selector::Wildcard, true) => f.write_str("..*")?,
            }
        }
        Ok(())
    }
}

impl serde::Serialize for PathPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PathPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        PathPattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn err(&self, message: &'static str) -> PathError {
        PathError {
            message,
            position: self.pos,
        }
    }

    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// A shorthand name.
    fn name(&mut self, expected: &'static str) -> Result<String, PathError> {
        let rest = &self.text[self.pos..];
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            let ok = if i == 0 {
                c == '_' || c.is_alphabetic()
            } else {
                c == '_' || c == '-' || c.is_alphanumeric()
            };
            if !ok {
                break;
            }
            end = i + c.len_utf8();
        }
        if end == 0 {
            return Err(match rest.chars().next() {
                Some(c) if c.is_ascii_digit() => self.err(
                    "a key after '.' cannot start with a digit (write [0] for an index, ['0'] for such a key)",
                ),
                _ => self.err(expected),
            });
        }
        self.pos += end;
        Ok(rest[..end].to_owned())
    }

    /// `[*]`, `[3]`, `['key']` or `["key"]`, at the `[`.
    fn bracket(&mut self) -> Result<Selector, PathError> {
        self.pos += 1;
        self.skip_blank();
        let selector = match self.peek() {
            Some(b'*') => {
                self.pos += 1;
                Selector::Wildcard
            }
            Some(q @ (b'\'' | b'"')) => Selector::Key(self.quoted(q)?),
            Some(b'0'..=b'9') => Selector::Index(self.index()?),
            Some(b'-') => return Err(self.err("negative indexes are not supported")),
            Some(b'?') => return Err(self.err("filter expressions are not supported")),
            Some(b':') => return Err(self.err("slices are not supported")),
            None => return Err(self.err("unclosed '['")),
            _ => return Err(self.err("expected '*', an index or a quoted key after '['")),
        };
        self.skip_blank();
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(selector)
            }
            Some(b',') => Err(self.err("unions are not supported (write one rule per path)")),
            Some(b':') => Err(self.err("slices are not supported")),
            None => Err(self.err("unclosed '['")),
            _ => Err(self.err("expected ']'")),
        }
    }

    fn index(&mut self) -> Result<usize, PathError> {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        let digits = &self.text[start..self.pos];
        let error = |message| PathError {
            message,
            position: start,
        };
        if digits.len() > 1 && digits.starts_with('0') {
            return Err(error("an index has no leading zeros"));
        }
        digits.parse().map_err(|_| error("index too large"))
    }

    /// A quoted key, at the opening quote `q`.
    fn quoted(&mut self, q: u8) -> Result<String, PathError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.text[self.pos..].chars().next() else {
                return Err(PathError {
                    message: "unterminated quoted key",
                    position: start,
                });
            };
            let at = self.pos;
            self.pos += c.len_utf8();
            match c {
                c if c == char::from(q) => return Ok(out),
                '\\' => {
                    let escaped = match self.peek() {
                        Some(b'\'') => '\'',
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let unit = self.hex4(at)?;
                            let code = match unit {
                                0xD800..=0xDBFF => {
                                    if !self.text[self.pos..].starts_with("\\u") {
                                        return Err(PathError {
                                            message: "unpaired surrogate in a \\u escape",
                                            position: at,
                                        });
                                    }
                                    self.pos += 2;
                                    let low = self.hex4(at)?;
                                    if !(0xDC00..=0xDFFF).contains(&low) {
                                        return Err(PathError {
                                            message: "unpaired surrogate in a \\u escape",
                                            position: at,
                                        });
                                    }
                                    0x10000 + ((unit - 0xD800) << 10 | (low - 0xDC00))
                                }
                                0xDC00..=0xDFFF => {
                                    return Err(PathError {
                                        message: "unpaired surrogate in a \\u escape",
                                        position: at,
                                    });
                                }
                                _ => unit,
                            };
                            out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                            continue;
                        }
                        _ => {
                            return Err(PathError {
                                message: "invalid escape in a quoted key",
                                position: at,
                            });
                        }
                    };
                    self.pos += 1;
                    out.push(escaped);
                }
                c if u32::from(c) < 0x20 => {
                    return Err(PathError {
                        message: "control character in a quoted key (escape it)",
                        position: at,
                    });
                }
                c => out.push(c),
            }
        }
    }

    /// Four hex digits of a `\u` escape starting at `at`.
    fn hex4(&mut self, at: usize) -> Result<u32, PathError> {
        let digits = self.text.as_bytes().get(self.pos..self.pos + 4);
        let value = digits.and_then(|d| {
            d.iter()
                .try_fold(0u32, |acc, &b| Some(acc << 4 | char::from(b).to_digit(16)?))
        });
        match value {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => Err(PathError {
                message: "expected four hex digits after \\u",
                position: at,
            }),
        }
    }
}

/// "No rule": the highest rule index.
const NONE: u32 = u32::MAX;

/// The compiled patterns: one automaton whose states are positions in the
/// patterns. A state is live at a path when the pattern's segments before it
/// matched the path's; a pattern that reaches its end (an `Accept` node)
/// selects the path and all below it.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    nodes: Vec<Node>,
    /// The first node of each non-empty pattern.
    starts: Vec<u32>,
    /// The lowest rule whose pattern is `$`.
    root: u32,
}

#[derive(Debug, Clone)]
enum Node {
    Step(PatternSegment),
    Accept(u32),
}

impl Program {
    fn new() -> Program {
        Program {
            nodes: Vec::new(),
            starts: Vec::new(),
            root: NONE,
        }
    }

    /// Whether `states` are all `..` steps right before an `Accept`: then
    /// no segment changes them.
    fn stationary(&self, states: &[u32]) -> bool {
        states.iter().all(|&s| {
            matches!(self.nodes.get(s as usize), Some(Node::Step(step)) if step.descendant)
                && matches!(self.nodes.get(s as usize + 1), Some(Node::Accept(_)))
        })
    }

    fn add(&mut self, pattern: &PathPattern, rule: u32) {
        if pattern.segments.is_empty() {
            self.root = self.root.min(rule);
            return;
        }
        self.starts.push(self.nodes.len() as u32);
        self.nodes
            .extend(pattern.segments.iter().cloned().map(Node::Step));
        self.nodes.push(Node::Accept(rule));
    }
}

/// The live automaton states per depth of the current path; recomputed for
/// one depth each time the rewriter moves to a sibling, so matching costs a
/// few comparisons per value and allocates nothing once the buffers have
/// grown to the document's depth.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matcher {
    program: Option<Arc<Program>>,
    /// The live states of all levels, level after level.
    states: Vec<u32>,
    /// Per depth: its range in `states` and the rule selecting it.
    levels: Vec<Level>,
}

#[derive(Debug, Clone, Copy)]
struct Level {
    start: u32,
    end: u32,
    rule: u32,
    /// All its states are `..` steps right before their pattern's end, so
    /// every level below has the same states (and shares the range).
    stationary: bool,
}

impl Matcher {
    pub(crate) fn new(program: Option<Arc<Program>>) -> Matcher {
        let mut m = Matcher {
            program,
            states: Vec::new(),
            levels: Vec::new(),
        };
        m.reset();
        m
    }

    /// Back to the root (level 0).
    pub(crate) fn reset(&mut self) {
        self.states.clear();
        self.levels.clear();
        if let Some(p) = &self.program {
            self.states.extend_from_slice(&p.starts);
            self.levels.push(Level {
                start: 0,
                end: self.states.len() as u32,
                rule: p.root,
                stationary: p.stationary(&self.states),
            });
        }
    }

    /// The rule selecting the current child of the innermost frame (the
    /// root if there is none), a scalar: nothing below it to prepare for.
    #[inline]
    pub(crate) fn rule(&self, frames: &[Frame], keys: &str) -> Option<usize> {
        let program = self.program.as_deref()?;
        let rule = match frames.last() {
            None => self.levels.first().map_or(NONE, |l| l.rule),
            Some(f) => {
                let parent = self.levels.get(frames.len() - 1)?;
                let segment = f.segment(keys);
                let mut rule = parent.rule;
                for &state in &self.states[parent.start as usize..parent.end as usize] {
                    let matched = matches!(program.nodes.get(state as usize),
                        Some(Node::Step(step)) if step.selector.matches(segment));
                    if let (true, Some(Node::Accept(r))) =
                        (matched, program.nodes.get(state as usize + 1))
                    {
                        rule = rule.min(*r);
                    }
                }
                rule
            }
        };
        (rule != NONE).then_some(rule as usize)
    }

    /// Enters the current child of the innermost frame, a container: its
    /// level becomes that of `frames.len()`.
    #[inline]
    pub(crate) fn enter(&mut self, frames: &[Frame], keys: &str) {
        if let (Some(_), Some(f)) = (&self.program, frames.last()) {
            self.descend(frames.len(), f.segment(keys));
        }
    }

    /// Computes level `depth` (≥ 1) from level `depth - 1` and the segment
    /// between them; returns its rule.
    fn descend(&mut self, depth: usize, segment: Segment<'_>) -> u32 {
        let Matcher {
            program,
            states,
            levels,
        } = self;
        let (Some(program), Some(&parent)) = (program.as_deref(), levels.get(depth - 1)) else {
            return NONE;
        };
        levels.truncate(depth);
        let mut rule = parent.rule;
        if parent.stationary {
            for &state in &states[parent.start as usize..parent.end as usize] {
                let matched = matches!(program.nodes.get(state as usize),
                    Some(Node::Step(step)) if step.selector.matches(segment));
                if let (true, Some(Node::Accept(r))) =
                    (matched, program.nodes.get(state as usize + 1))
                {
                    rule = rule.min(*r);
                }
            }
            levels.push(Level { rule, ..parent });
            return rule;
        }
        states.truncate(parent.end as usize);
        let start = states.len();
        for i in parent.start as usize..parent.end as usize {
            let state = states[i];
            let Some(Node::Step(step)) = program.nodes.get(state as usize) else {
                continue;
            };
            if step.descendant && !states[start..].contains(&state) {
                states.push(state);
            }
            if step.selector.matches(segment) {
                match program.nodes.get(state as usize + 1) {
                    Some(Node::Accept(r)) => rule = rule.min(*r),
                    Some(Node::Step(_)) if !states[start..].contains(&(state + 1)) => {
                        states.push(state + 1);
                    }
                    _ => {}
                }
            }
        }
        levels.push(Level {
            start: start as u32,
            end: states.len() as u32,
            rule,
            stationary: program.stationary(&states[start..]),
        });
        rule
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.states.capacity() * size_of::<u32>() + self.levels.capacity() * size_of::<Level>()
    }
}

/// Path patterns mapped to values of the caller's (say, an operator), in
/// declaration order. When several patterns select a value, the first
/// declared wins; a pattern selecting a container selects everything in it.
///
/// Give it to [`JsonRewriter::with_rules`](super::JsonRewriter::with_rules)
/// and the visitor finds the winning rule's index in [`Path::rule`]; look
/// its value up with [`PathRules::get`] or indexing.
#[derive(Debug, Clone)]
pub struct PathRules<T> {
    rules: Vec<(PathPattern, T)>,
    program: Arc<Program>,
}

impl<T> PathRules<T> {
    /// No rules.
    pub fn new() -> PathRules<T> {
        PathRules {
            rules: Vec::new(),
            program: Arc::new(Program::new()),
        }
    }

    /// Adds a rule after the others; returns its index.
    pub fn push(&mut self, pattern: PathPattern, value: T) -> usize {
        let index = self.rules.len();
        Arc::make_mut(&mut self.program).add(&pattern, index as u32);
        self.rules.push((pattern, value));
        index
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The value of rule `index`.
    pub fn get(&self, index: usize) -> Option<&T> {
        self.rules.get(index).map(|(_, v)| v)
    }

    /// The pattern of rule `index`.
    pub fn pattern(&self, index: usize) -> Option<&PathPattern> {
        self.rules.get(index).map(|(p, _)| p)
    }

    /// The rules in declaration order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&PathPattern, &T)> {
        self.rules.iter().map(|(p, v)| (p, v))
    }

    /// The index of the rule selecting the value at `path` (as the rewriter
    /// would give it in [`Path::rule`]).
    pub fn find(&self, path: &[Segment<'_>]) -> Option<usize> {
        let mut m = Matcher::new(Some(self.program.clone()));
        let mut rule = self.program.root;
        for (depth, segment) in path.iter().enumerate() {
            rule = m.descend(depth + 1, *segment);
        }
        (rule != NONE).then_some(rule as usize)
    }

    /// The compiled patterns, for a rewriter (`None` without rules).
    pub(crate) fn program(&self) -> Option<Arc<Program>> {
        (!self.rules.is_empty()).then(|| self.program.clone())
    }
}

impl<T> Default for PathRules<T> {
    fn default() -> Self {
        PathRules::new()
    }
}

impl<T> FromIterator<(PathPattern, T)> for PathRules<T> {
    fn from_iter<I: IntoIterator<Item = (PathPattern, T)>>(iter: I) -> Self {
        let mut rules = PathRules::new();
        for (p, v) in iter {
            rules.push(p, v);
        }
        rules
    }
}

impl<T> std::ops::Index<usize> for PathRules<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        &self.rules[index].1
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap()
    }

    fn err(s: &str) -> String {
        PathPattern::parse(s).unwrap_err().to_string()
    }

    use Segment::{Index as I, Key as K};

    #[test]
    fn parses_and_displays_canonically() {
        for (text, canonical) in [
            ("$", "$"),
            ("$.user.email", "$.user.email"),
            ("$.events[*].ip", "$.events[*].ip"),
            ("$.items[0].name", "$.items[0].name"),
            ("$['odd key'].x", "$['odd key'].x"),
            ("$[\"a.b\"]", "$['a.b']"),
            ("$..email", "$..email"),
            ("$.*.id", "$[*].id"),
            ("$..*", "$..*"),
            ("$..[*]", "$..*"),
            ("$..[2]", "$..[2]"),
            ("$..['a b']", "$..['a b']"),
            ("$[ 'x' ][ 10 ][ * ]", "$.x[10][*]"),
            ("$['it\\'s']", "$['it\\'s']"),
            (
                "$[\"q\\\"\\\\\\n\\u00e9\\ud83d\\ude00\"]",
                "$['q\"\\\\\\né😀']",
            ),
            (
                "$.snake_case.kebab-case.ünïcode.x2",
                "$.snake_case.kebab-case.ünïcode.x2",
            ),
            ("$['0']['-a']['']", "$['0']['-a']['']"),
        ] {
            let pattern = p(text);
            assert_eq!(pattern.to_string(), canonical, "{text}");
            assert_eq!(p(canonical), pattern, "{canonical} round trip");
        }
        assert_eq!(
            p("$.a[1]..b").segments(),
            &[
                PatternSegment {
                    descendant: false,
                    selector: Selector::Key("a".into())
                },
                PatternSegment {
                    descendant: false,
                    selector: Selector::Index(1)
                },
                PatternSegment {
                    descendant: true,
                    selector: Selector::Key("b".into())
                },
            ]
        );
    }

    #[test]
    fn rejects_invalid_patterns_with_position() {
        for (text, message) in [
            ("", "a path starts with '$' at 0"),
            ("user.email", "a path starts with '$' at 0"),
            ("$.user.", "expected a key after '.' at 7"),
            ("$.", "expected a key after '.' at 2"),
            ("$.a b", "expected '.' or '[' at 3"),
            ("$...a", "expected a key, '*' or '[' after '..' at 3"),
            ("$..", "expected a key, '*' or '[' after '..' at 3"),
            (
                "$.0",
                "a key after '.' cannot start with a digit (write [0] for an index, ['0'] for such a key) at 2",
            ),
            (
                "$.[0]",
                "expected a key after '.' (write [..] without the '.') at 2",
            ),
            ("$[", "unclosed '[' at 2"),
            ("$[0", "unclosed '[' at 3"),
            ("$[-1]", "negative indexes are not supported at 2"),
            ("$[0:2]", "slices are not supported at 3"),
            (
                "$[0,1]",
                "unions are not supported (write one rule per path) at 3",
            ),
            ("$[?(@.a)]", "filter expressions are not supported at 2"),
            ("$[01]", "an index has no leading zeros at 2"),
            ("$[99999999999999999999999]", "index too large at 2"),
            (
                "$[abc]",
                "expected '*', an index or a quoted key after '[' at 2",
            ),
            ("$['abc", "unterminated quoted key at 2"),
            ("$['a\\qb']", "invalid escape in a quoted key at 4"),
            ("$['\\ud800']", "unpaired surrogate in a \\u escape at 3"),
            ("$['\\u12']", "expected four hex digits after \\u at 3"),
            (
                "$['a\nb']",
                "control character in a quoted key (escape it) at 4",
            ),
            ("$['a'x]", "expected ']' at 5"),
            ("$x", "expected '.' or '[' at 1"),
        ] {
            assert_eq!(err(text), message, "{text:?}");
        }
    }

    #[test]
    fn matches_segments() {
        let cases: &[(&str, &[Segment<'_>], bool)] = &[
            ("$", &[], true),
            ("$", &[K("a")], true),
            ("$.a", &[], false),
            ("$.a", &[K("a")], true),
            ("$.a", &[K("b")], false),
            ("$.a", &[I(0)], false),
            ("$.a", &[K("a"), K("b"), I(3)], true),
            ("$.a.b", &[K("a")], false),
            ("$.events[*].ip", &[K("events"), I(7), K("ip")], true),
            ("$.events[*].ip", &[K("events"), K("x"), K("ip")], true),
            ("$.events[*].ip", &[K("events"), I(7), K("port")], false),
            ("$.items[0].name", &[K("items"), I(0), K("name")], true),
            ("$.items[0].name", &[K("items"), I(1), K("name")], false),
            ("$['odd key'].x", &[K("odd key"), K("x")], true),
            ("$[\"a.b\"]", &[K("a.b")], true),
            ("$[\"a.b\"]", &[K("a"), K("b")], false),
            ("$..email", &[K("email")], true),
            ("$..email", &[K("a"), I(2), K("b"), K("email")], true),
            ("$..email", &[K("a"), I(2), K("emails")], false),
            ("$.*.id", &[K("x"), K("id")], true),
            ("$.*.id", &[I(4), K("id")], true),
            ("$.*.id", &[K("id")], false),
            ("$..a.b", &[K("x"), K("a"), K("c"), K("a"), K("b")], true),
            ("$..a.b", &[K("a"), K("c"), K("b")], false),
            ("$..[1]", &[K("x"), I(1)], true),
            ("$..*", &[], false),
            ("$..*", &[I(0)], true),
            ("$.a..b..c", &[K("a"), K("b"), K("b"), K("x"), K("c")], true),
            ("$.a..b..c", &[K("a"), K("c"), K("b")], false),
        ];
        for (pattern, path, expected) in cases {
            let pattern = p(pattern);
            assert_eq!(pattern.matches(path), *expected, "{pattern} on {path:?}");
            let rules: PathRules<()> = [(pattern.clone(), ())].into_iter().collect();
            let found = rules.find(path);
            assert_eq!(
                found.is_some(),
                *expected,
                "{pattern} on {path:?} (compiled)"
            );
        }
    }

    #[test]
    fn first_declared_rule_wins() {
        let rules: PathRules<&str> = [
            (p("$.user.email"), "email"),
            (p("$..ip"), "ip"),
            (p("$.user"), "user"),
            (p("$..*"), "anything"),
        ]
        .into_iter()
        .collect();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules.find(&[K("user"), K("email")]), Some(0));
        assert_eq!(rules.find(&[K("user"), K("ip")]), Some(1));
        assert_eq!(rules.find(&[K("user"), K("name")]), Some(2));
        assert_eq!(rules.find(&[K("user")]), Some(2));
        assert_eq!(rules.find(&[K("x"), I(0), K("ip")]), Some(1));
        assert_eq!(rules.find(&[K("x")]), Some(3));
        assert_eq!(rules.find(&[]), None);
        assert_eq!(rules[2], "user");
        assert_eq!(rules.get(9), None);
        assert_eq!(
            rules.pattern(1).map(ToString::to_string).as_deref(),
            Some("$..ip")
        );
        let root: PathRules<u8> = [(p("$.a"), 0), (p("$"), 1)].into_iter().collect();
        assert_eq!(root.find(&[]), Some(1));
        assert_eq!(root.find(&[K("a")]), Some(0));
        assert_eq!(root.find(&[K("b")]), Some(1));
    }

    #[test]
    fn compiled_matcher_agrees_with_backtracking() {
        // Every pattern over a small alphabet against every short path.
        let patterns = [
            "$.a",
            "$..a",
            "$[*]",
            "$..*",
            "$[0]",
            "$..[1]",
            "$.a..a",
            "$..a..a",
            "$..a.b",
            "$.*..b",
            "$..a[*].b",
            "$.a.b..*",
            "$..b..[0]..a",
        ];
        let alphabet = [K("a"), K("b"), I(0), I(1)];
        let mut paths: Vec<Vec<Segment<'_>>> = vec![vec![]];
        for len in 1..=4 {
            let mut next = Vec::new();
            for path in paths.iter().filter(|p| p.len() == len - 1) {
                for s in alphabet {
                    let mut q = path.clone();
                    q.push(s);
                    next.push(q);
                }
            }
            paths.extend(next);
        }
        for text in patterns {
            let pattern = p(text);
            let rules: PathRules<()> = [(pattern.clone(), ())].into_iter().collect();
            for path in &paths {
                assert_eq!(
                    rules.find(path).is_some(),
                    pattern.matches(path),
                    "{text} on {path:?}"
                );
            }
        }
        // And as a set: the first matching pattern wins.
        let rules: PathRules<usize> = patterns
            .iter()
            .enumerate()
            .map(|(i, t)| (p(t), i))
            .collect();
        for path in &paths {
            let expected = patterns.iter().position(|t| p(t).matches(path));
            assert_eq!(rules.find(path), expected, "{path:?}");
        }
    }

    #[test]
    fn path_display_quotes_and_cuts() {
        let mut keys = String::new();
        let mut frames = Vec::new();
        for (object, key, index) in [
            (true, "user", 0),
            (false, "", 3),
            (true, "odd key's", 0),
            (true, "é", 0),
        ] {
            let mut f = Frame::new(object, keys.len());
            keys.push_str(key);
            f.key_end = keys.len();
            f.has_key = true;
            f.index = index;
            frames.push(f);
        }
        let path = Path::new(&frames, &keys, Some(2));
        assert_eq!(path.to_string(), "$.user[3]['odd key\\'s'].é");
        assert_eq!(path.len(), 4);
        assert_eq!(path.last(), Some(K("é")));
        assert_eq!(path.get(1), Some(I(3)));
        assert_eq!(path.segments().rev().nth(1), Some(K("odd key's")));
        assert_eq!(path.rule(), Some(2));
        let long = "x".repeat(40);
        let mut f = Frame::new(true, 0);
        f.key_end = long.len();
        f.has_key = true;
        let g = Frame::new(true, long.len());
        assert_eq!(error_path(&[f, g], &long), format!("$.{}…", "x".repeat(32)));
    }

    #[test]
    fn serde_round_trip() {
        let pattern: PathPattern = serde_json::from_str("\"$.a['b c'][*]\"").unwrap();
        assert_eq!(
            serde_json::to_string(&pattern).unwrap(),
            "\"$.a['b c'][*]\""
        );
        let error = serde_json::from_str::<PathPattern>("\"$.\"").unwrap_err();
        assert!(
            error.to_string().contains("expected a key after '.' at 2"),
            "{error}"
        );
    }
}
