//! The labelled corpus of `functions/anonymize/testdata/corpus.py`: text
//! documents and JSON records, each with its true entity spans (UTF-8 byte
//! offsets into the text, or into the JSON string value at a path).

use serde::Deserialize;
use serde_json::Value;

/// The corpus built into this program (see `build.rs`); empty when it was
/// built without `ANONYMIZE_BENCH_CORPUS`.
pub const EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/corpus.jsonl"));

/// One true finding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gold {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// The entity name (`email`, `ipv4`, …).
    pub entity: String,
}

/// A string the detectors are scored on: a text document, or one string
/// value of a JSON record, with its true spans.
#[derive(Debug, Clone)]
pub struct Scored {
    /// `text` for a text document, else the value's path (`$.user.email`).
    pub path: String,
    /// The string.
    pub text: String,
    /// Its true spans, sorted.
    pub gold: Vec<Gold>,
}

/// The parsed corpus.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// The text documents.
    pub texts: Vec<Scored>,
    /// The JSON records' string values, record after record.
    pub json_strings: Vec<Scored>,
    /// The JSON records serialized compactly, one per line (an NDJSON body).
    pub ndjson: Vec<u8>,
    /// Each JSON record's string values: a range of `json_strings`.
    pub records: Vec<std::ops::Range<usize>>,
}

#[derive(Deserialize)]
struct Line {
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    json: Option<Value>,
    spans: Vec<Span>,
}

#[derive(Deserialize)]
struct Span {
    #[serde(default)]
    path: Option<String>,
    start: usize,
    end: usize,
    entity: String,
}

impl Corpus {
    /// Parses JSON lines; every span must lie inside its string, on char
    /// boundaries, and every JSON span's path must name a string value.
    pub fn parse(bytes: &[u8]) -> Result<Corpus, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("corpus: {e}"))?;
        let mut corpus = Corpus::default();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let at = |e: String| format!("corpus line {}: {e}", n + 1);
            let line: Line = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
            match (line.kind.as_str(), line.text, line.json) {
                ("text", Some(text), _) => {
                    let gold = line
                        .spans
                        .into_iter()
                        .map(|s| Gold {
                            start: s.start,
                            end: s.end,
                            entity: s.entity,
                        })
                        .collect();
                    corpus.texts.push(checked("text", text, gold).map_err(at)?);
                }
                ("json", _, Some(record)) => {
                    let mut strings = Vec::new();
                    string_values(&record, &mut String::from("$"), &mut strings);
                    let mut spans = line.spans;
                    let first = corpus.json_strings.len();
                    for (path, text) in strings {
                        let gold = spans
                            .iter()
                            .filter(|s| s.path.as_deref() == Some(path.as_str()))
                            .map(|s| Gold {
                                start: s.start,
                                end: s.end,
                                entity: s.entity.clone(),
                            })
                            .collect();
                        spans.retain(|s| s.path.as_deref() != Some(path.as_str()));
                        corpus
                            .json_strings
                            .push(checked(&path, text, gold).map_err(at)?);
                    }
                    if let Some(stray) = spans.first() {
                        return Err(at(format!(
                            "span at {:?}, which is not a string value",
                            stray.path
                        )));
                    }
                    let compact = serde_json::to_vec(&record).map_err(|e| at(e.to_string()))?;
                    corpus.ndjson.extend_from_slice(&compact);
                    corpus.ndjson.push(b'\n');
                    corpus.records.push(first..corpus.json_strings.len());
                }
                (kind, _, _) => return Err(at(format!("a {kind:?} line without its content"))),
            }
        }
        Ok(corpus)
    }

    /// Every scored string: the text documents, then the JSON string values.
    pub fn scored(&self) -> impl Iterator<Item = &Scored> {
        self.texts.iter().chain(&self.json_strings)
    }

    /// Bytes of the text documents.
    pub fn text_bytes(&self) -> usize {
        self.texts.iter().map(|s| s.text.len()).sum()
    }

    /// Bytes of every scored string (text documents and JSON string values).
    pub fn scored_bytes(&self) -> usize {
        self.scored().map(|s| s.text.len()).sum()
    }
}

fn checked(path: &str, text: String, mut gold: Vec<Gold>) -> Result<Scored, String> {
    for g in &gold {
        if g.start >= g.end || !text.is_char_boundary(g.start) || !text.is_char_boundary(g.end) {
            return Err(format!(
                "{path}: span {}..{} ({}) is not inside the string",
                g.start, g.end, g.entity
            ));
        }
    }
    gold.sort();
    Ok(Scored {
        path: path.to_owned(),
        text,
        gold,
    })
}

/// The string values under `value` with their paths (`$.a.b[0]`, the
/// corpus's notation).
fn string_values(value: &Value, path: &mut String, out: &mut Vec<(String, String)>) {
    let len = path.len();
    match value {
        Value::String(s) => out.push((path.clone(), s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push_str(&format!("[{i}]"));
                string_values(item, path, out);
                path.truncate(len);
            }
        }
        Value::Object(members) => {
            for (key, item) in members {
                path.push('.');
                path.push_str(key);
                string_values(item, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = concat!(
        r#"{"kind":"text","text":"mail é a@b.io","spans":[{"start":8,"end":14,"entity":"email"}]}"#,
        "\n",
        r#"{"kind":"json","json":{"user":{"email":"x@y.org","n":3},"ips":["for=1.2.3.4"]},"#,
        r#""spans":[{"path":"$.user.email","start":0,"end":7,"entity":"email"},"#,
        r#"{"path":"$.ips[0]","start":4,"end":11,"entity":"ipv4"}]}"#,
        "\n",
    );

    #[test]
    fn parses_texts_and_json_string_values() {
        let corpus = Corpus::parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(corpus.texts.len(), 1);
        assert_eq!(&corpus.texts[0].text[8..14], "a@b.io");
        let paths: Vec<_> = corpus
            .json_strings
            .iter()
            .map(|s| s.path.as_str())
            .collect();
        // serde_json's maps keep keys sorted.
        assert_eq!(paths, ["$.ips[0]", "$.user.email"]);
        assert_eq!(corpus.json_strings[0].gold[0].entity, "ipv4");
        assert_eq!(corpus.records.len(), 1);
        assert_eq!(corpus.records[0], 0..2);
        assert_eq!(corpus.ndjson.iter().filter(|b| **b == b'\n').count(), 1);
    }

    #[test]
    fn a_span_outside_any_string_is_refused() {
        let bad = r#"{"kind":"json","json":{"n":3},"spans":[{"path":"$.n","start":0,"end":1,"entity":"phone"}]}"#;
        assert!(Corpus::parse(bad.as_bytes()).is_err());
        let bad = r#"{"kind":"text","text":"é","spans":[{"start":1,"end":2,"entity":"phone"}]}"#;
        assert!(Corpus::parse(bad.as_bytes()).is_err());
    }
}
