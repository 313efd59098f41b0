//! The anonymizer: detectors, operators and field rules put together, for
//! free text, JSON and NDJSON bodies, buffered or as a stream. Built once per
//! isolate from the policy and secrets; cheap to share (an `Arc`), so each
//! streamed body's transform can own a handle.

use std::sync::Arc;

use crate::body::Scratch;
use crate::detect::{CustomPattern, Detector, DetectorConfig, Dictionary};
use crate::entity::{Entity, Span};
use crate::json::{
    Limits, Path, PathPattern, PathRules, Scalar, Segment, VisitError, write_json_string,
};
use crate::operators::{self, Keys, Operator, OperatorError};
use crate::policy::{FieldAction, Section};

/// How many findings of each kind a body had (reported, never the values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    counts: Vec<(String, u64)>,
}

impl Findings {
    pub(crate) fn add(&mut self, name: &str) {
        match self.counts.iter_mut().find(|(n, _)| n == name) {
            Some((_, count)) => *count += 1,
            None => self.counts.push((name.to_owned(), 1)),
        }
    }

    /// `(name, count)` pairs in first-seen order.
    pub fn counts(&self) -> &[(String, u64)] {
        &self.counts
    }

    /// The total.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, c)| c).sum()
    }

    /// `email=2, ipv4=1`, for a response header.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(n, c)| format!("{n}={c}"))
            .collect();
        parts.join(", ")
    }
}

pub(crate) struct Engine {
    pub(crate) detector: Detector,
    /// Operator per built-in entity (index in `Entity::BUILTIN`), then per
    /// custom pattern and dictionary.
    builtin_ops: Vec<Operator>,
    custom_ops: Vec<Operator>,
    pub(crate) keys: Keys,
    pub(crate) section: Section,
    pub(crate) fields: PathRules<FieldAction>,
}

/// The anonymizer, shared by every request of an isolate.
#[derive(Clone)]
pub struct Anonymizer {
    pub(crate) engine: Arc<Engine>,
}

impl std::fmt::Debug for Anonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Anonymizer")
    }
}

impl Anonymizer {
    /// Builds the anonymizer from a validated policy section and the keys.
    pub fn new(section: &Section, keys: Keys) -> Result<Anonymizer, String> {
        let builtin_ops = Entity::BUILTIN
            .iter()
            .map(|e| section.entity_operator(*e))
            .collect::<Result<Vec<_>, _>>()?;
        let entities = Entity::BUILTIN
            .iter()
            .zip(&builtin_ops)
            .filter(|(_, op)| **op != Operator::Keep)
            .map(|(e, _)| *e)
            .collect();
        let resolve = |op: &Option<String>| section.resolve(op.as_deref().unwrap_or("tag"));
        let mut custom_ops = Vec::new();
        for p in &section.patterns {
            custom_ops.push(resolve(&p.operator)?);
        }
        for d in &section.dictionaries {
            custom_ops.push(resolve(&d.operator)?);
        }
        let config = DetectorConfig {
            entities,
            patterns: section
                .patterns
                .iter()
                .map(|p| CustomPattern {
                    name: p.name.clone(),
                    regex: p.regex.clone(),
                })
                .collect(),
            dictionaries: section
                .dictionaries
                .iter()
                .map(|d| Dictionary {
                    name: d.name.clone(),
                    words: d.words.clone(),
                    case_insensitive: d.case_insensitive,
                })
                .collect(),
            phone_regions: section.phone_regions.clone(),
        };
        let detector = Detector::new(&config).map_err(|e| format!("anonymize.{e}"))?;
        let mut fields = PathRules::new();
        for (path, action) in &section.fields.0 {
            let pattern = path
                .parse::<PathPattern>()
                .map_err(|e| format!("anonymize.fields.{path}: {e}"))?;
            fields.push(pattern, section.field_action(action)?);
        }
        Ok(Anonymizer {
            engine: Arc::new(Engine {
                detector,
                builtin_ops,
                custom_ops,
                keys,
                section: section.clone(),
                fields,
            }),
        })
    }

    /// Anonymizes free text into `out`.
    pub fn text(&self, text: &str, out: &mut String, findings: &mut Findings) {
        self.engine.text(text, out, findings, &mut Vec::new());
    }

    /// The findings in `text` (kind and byte range; never the values).
    pub fn analyze(&self, text: &str) -> Vec<(String, Span)> {
        let mut spans = Vec::new();
        self.engine.detector.find(text, &mut spans);
        spans
            .into_iter()
            .map(|s| (self.engine.detector.entity_name(s.entity).to_owned(), s))
            .collect()
    }
}

impl Engine {
    pub(crate) fn operator(&self, entity: Entity) -> &Operator {
        match entity {
            Entity::Custom(i) => &self.custom_ops[usize::from(i)],
            builtin => {
                let index = Entity::BUILTIN
                    .iter()
                    .position(|e| *e == builtin)
                    .unwrap_or(0);
                &self.builtin_ops[index]
            }
        }
    }

    /// Detects and replaces; `spans` is scratch space.
    pub(crate) fn text(
        &self,
        text: &str,
        out: &mut String,
        findings: &mut Findings,
        spans: &mut Vec<Span>,
    ) {
        spans.clear();
        self.detector.find(text, spans);
        out.reserve(text.len());
        self.replace(text, spans, out, findings);
    }

    /// Writes `text` with each span replaced by its operator's output.
    fn replace(&self, text: &str, spans: &[Span], out: &mut String, findings: &mut Findings) {
        let mut at = 0;
        for span in spans {
            out.push_str(&text[at..span.start]);
            let name = self.detector.entity_name(span.entity);
            let value = &text[span.start..span.end];
            let operator = self.operator(span.entity);
            if operators::apply(operator, name, value, &self.keys, out).is_err() {
                // An operator that does not fit the value (truncating a phone
                // number) writes nothing and falls back to the tag: never the
                // value itself.
                let _ = operators::apply(&Operator::Tag, name, value, &self.keys, out);
            }
            findings.add(name);
            at = span.end;
        }
        out.push_str(&text[at..]);
    }

    /// Applies a field rule's operator to a whole value: `Ok(None)` for
    /// `redact` (the field becomes `null`).
    pub(crate) fn field(
        &self,
        operator: &Operator,
        key: &str,
        value: &str,
        out: &mut String,
        spans: &mut Vec<Span>,
    ) -> Result<Option<()>, OperatorError> {
        if *operator == Operator::Redact {
            return Ok(None);
        }
        // A field holding exactly one finding (an email, a phone number) is
        // that entity: normalized as in free text, so a person gets the same
        // pseudonym in a field and in a sentence.
        spans.clear();
        self.detector.find_in_field(key, value, spans);
        let name = match spans.as_slice() {
            [only] if only.start == 0 && only.end == value.len() => {
                self.detector.entity_name(only.entity)
            }
            _ => "field",
        };
        operators::apply(operator, name, value, &self.keys, out).map(Some)
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_depth: self.section.max_depth,
            max_string_bytes: self.section.max_string_bytes,
        }
    }

    /// The JSON visitor: a field rule's operator on the whole value, else
    /// the detectors over strings (and numbers, with `scan_numbers`).
    pub(crate) fn visit(
        &self,
        path: &Path<'_>,
        value: Scalar<'_>,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<bool, VisitError> {
        let action = path.rule().and_then(|i| self.fields.get(i));
        match (action, value) {
            (Some(FieldAction::Apply(Operator::Keep)), _) => Ok(false),
            (Some(FieldAction::Apply(operator)), value) => {
                let text = match value {
                    Scalar::String(s) | Scalar::Number(s) => s,
                    Scalar::Bool(true) => "true",
                    Scalar::Bool(false) => "false",
                    Scalar::Null => return Ok(false),
                };
                scratch.text.clear();
                let number = matches!(value, Scalar::Number(_));
                let key = field_name(path);
                match self.field(operator, key, text, &mut scratch.text, &mut scratch.spans) {
                    Ok(Some(())) if number && numeric_output(operator, &scratch.text, out) => {}
                    Ok(Some(())) => write_json_string(&scratch.text, out),
                    // Redacted, or the operator does not fit the value
                    // (truncating a non-IP): null, never the value.
                    Ok(None) | Err(_) => out.extend_from_slice(b"null"),
                }
                scratch.findings.add("field");
                Ok(true)
            }
            (_, Scalar::String(s)) => self.scan(field_name(path), s, out, scratch),
            (_, Scalar::Number(n)) if self.section.scan_numbers && n.len() >= 7 => {
                self.scan_number(field_name(path), n, out, scratch)
            }
            _ => Ok(false),
        }
    }

    /// The detectors over a JSON number: a number that is one finding (a
    /// card, a phone number) stays a number where its operator's output is
    /// one (see [`numeric_output`]) and becomes `null` when redacted; else
    /// it is scanned as a string.
    fn scan_number(
        &self,
        key: &str,
        n: &str,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<bool, VisitError> {
        scratch.spans.clear();
        self.detector.find_in_field(key, n, &mut scratch.spans);
        let [only] = scratch.spans.as_slice() else {
            return self.scan(key, n, out, scratch);
        };
        if only.start != 0 || only.end != n.len() {
            return self.scan(key, n, out, scratch);
        }
        let name = self.detector.entity_name(only.entity);
        let operator = self.operator(only.entity);
        scratch.text.clear();
        let applied = operators::apply(operator, name, n, &self.keys, &mut scratch.text).is_ok();
        if *operator == Operator::Redact {
            out.extend_from_slice(b"null");
        } else if !(applied && numeric_output(operator, &scratch.text, out)) {
            if !applied {
                // An operator that does not fit the value: its tag, never
                // the value.
                scratch.text.clear();
                let _ = operators::apply(&Operator::Tag, name, n, &self.keys, &mut scratch.text);
            }
            write_json_string(&scratch.text, out);
        }
        scratch.findings.add(name);
        Ok(true)
    }

    /// The detectors over a JSON string in the field named `key`.
    fn scan(
        &self,
        key: &str,
        s: &str,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<bool, VisitError> {
        scratch.spans.clear();
        self.detector.find_in_field(key, s, &mut scratch.spans);
        if scratch.spans.is_empty() {
            return Ok(false);
        }
        let spans = std::mem::take(&mut scratch.spans);
        scratch.text.clear();
        self.replace(s, &spans, &mut scratch.text, &mut scratch.findings);
        scratch.spans = spans;
        write_json_string(&scratch.text, out);
        Ok(true)
    }
}

/// The name of the field a value is in, the detectors' context: its key,
/// or for an array element the key of the nearest member above it (`""`
/// at the root).
fn field_name<'a>(path: &Path<'a>) -> &'a str {
    (0..path.len())
        .rev()
        .find_map(|i| match path.get(i) {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        })
        .unwrap_or("")
}

/// Writes an operator's output for a JSON number as a JSON number, where it
/// is one: `range` → the range's lower bound (`37` → `30`), `grid` → the
/// snapped coordinate, `mask` → the number with its hidden digits zero
/// (`4111111111111111` → `1111`; an exponent is not masked so, and stays a
/// string). Returns false, writing nothing, for every other operator or
/// output: the caller writes a string.
fn numeric_output(operator: &Operator, output: &str, out: &mut Vec<u8>) -> bool {
    let number = match operator {
        Operator::GeneralizeNumber { .. } => output
            .strip_prefix('[')
            .and_then(|r| r.split(',').next())
            .map(str::to_owned),
        Operator::GeneralizeCoordinate { .. } => Some(output.to_owned()),
        Operator::Mask { .. } => numeric_mask(output),
        _ => None,
    };
    match number {
        Some(n) if serde_json::from_str::<serde_json::Number>(&n).is_ok() => {
            out.extend_from_slice(n.as_bytes());
            true
        }
        _ => false,
    }
}

/// A masked number (`-****.*6`) with its masked digits zero and no leading
/// zeros (`-0.06`), or `None` when it is not a plain decimal.
fn numeric_mask(masked: &str) -> Option<String> {
    let (sign, rest) = match masked.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", masked),
    };
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    let digit = |c: char| c.is_ascii_digit() || c == '*';
    if int.is_empty()
        || !int.chars().all(digit)
        || frac.is_some_and(|f| f.is_empty() || !f.chars().all(digit))
    {
        return None;
    }
    let zeroed = |s: &str| s.replace('*', "0");
    let int = zeroed(int);
    let int = match int.trim_start_matches('0') {
        "" => "0",
        t => t,
    };
    Some(match frac {
        Some(f) => format!("{sign}{int}.{}", zeroed(f)),
        None => format!("{sign}{int}"),
    })
}
