//! The anonymizer's throughput and accuracy, the same loops natively and in
//! wasm.
//!
//! One program measures the `anonymize` function on every runtime: built
//! natively it is the native measurement, built for `wasm32-wasip2` it is a
//! WASI command that `bench-runner` runs under wasmtime. The corpus
//! (`functions/anonymize/testdata/corpus.py`) is built into the program
//! ([`corpus::EMBEDDED`]), since the guest gets no files. A run times
//! [`WORKLOADS`] in MB/s and scores the function's findings per entity type
//! ([`score`]) by the rule `presidio_eval.py` scores Presidio with, and
//! prints a [`Report`] as JSON; [`tables`] sets the native and wasm reports
//! beside Presidio's. `cargo xtask bench anonymize` drives all of it.

pub mod corpus;
pub mod score;

use bench_support::thousands;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anonymize::detect::{Detector, DetectorConfig};
use anonymize::entity::Span;
use anonymize::{Anonymize, Anonymizer, BodyKind};
use edge_core::stream::BodyTransform;
use edge_core::{Config, EdgeFunction};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use corpus::{Corpus, Gold};
use score::TypeScore;

/// The measures, in table order: id and what one pass does.
pub const WORKLOADS: [(&str, &str); 3] = [
    (
        "detect",
        "detection only: `Detector::find` (built-in detectors) on every scored string",
    ),
    (
        "text",
        "detect + anonymize: each text document as its own text body (default policy)",
    ),
    (
        "ndjson",
        "the JSON records as one NDJSON body in 64 KiB chunks (default policy, field rules included)",
    ),
];

/// The chunk size an NDJSON body is pushed in.
pub const CHUNK: usize = 64 * 1024;

/// One runtime's measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `native` or `wasm`.
    pub runtime: String,
    /// What the corpus holds.
    pub corpus: CorpusSize,
    /// One entry per workload run.
    pub results: Vec<Measurement>,
    /// The function's precision and recall per entity type
    /// ([`Anonymizer::analyze`] with the default policy).
    pub scores: BTreeMap<String, TypeScore>,
}

/// The corpus's size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CorpusSize {
    /// Text documents.
    pub text_docs: usize,
    /// Their bytes.
    pub text_bytes: usize,
    /// JSON records.
    pub records: usize,
    /// Their string values.
    pub json_strings: usize,
    /// Bytes of every scored string (text documents and JSON string values).
    pub scored_bytes: usize,
    /// Bytes of the records as NDJSON.
    pub ndjson_bytes: usize,
}

/// One workload's timed rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// The workload's id ([`WORKLOADS`]).
    pub id: String,
    /// Input bytes of one pass.
    pub bytes: usize,
    /// Passes per timed round.
    pub passes: u64,
    /// Timed rounds (after one calibrating pass).
    pub rounds: u32,
    /// The median round's rate, 10⁶ bytes per second.
    pub mb_per_s: f64,
    /// The fastest round's.
    pub best_mb_per_s: f64,
    /// The slowest round's.
    pub worst_mb_per_s: f64,
    /// True values (the corpus's spans) still verbatim in the output of one
    /// pass; `None` for detection, which has no output.
    pub leaked: Option<u64>,
    /// True spans the output was checked for.
    pub checked: Option<u64>,
}

/// The function as deployed with its built-in policy, bench secrets set.
pub fn anonymizer() -> Result<Anonymizer, String> {
    let config = Config::new(Anonymize::DEFAULT_POLICY)
        .with_secret("GDPR_ANONYMIZATION_SALT", "bench-salt-0123456789")
        .with_secret("GDPR_ANONYMIZATION_KEY", "bench-key-0123456789abcdef");
    let function = Anonymize::from_config(&config).map_err(|e| e.to_string())?;
    Ok(function.anonymizer().clone())
}

/// The function's findings in `text` as scored spans.
pub fn analyze(anonymizer: &Anonymizer, text: &str) -> Vec<Gold> {
    anonymizer
        .analyze(text)
        .into_iter()
        .map(|(entity, span)| Gold {
            start: span.start,
            end: span.end,
            entity,
        })
        .collect()
}

/// Runs and times the workloads named in `only` (all when `None`) and scores
/// the function: the whole report of one runtime.
pub fn run(
    runtime: &str,
    corpus: &Corpus,
    round: Duration,
    rounds: u32,
    only: Option<&[String]>,
) -> Result<Report, String> {
    let anonymizer = anonymizer()?;
    let detector = Detector::new(&DetectorConfig::default()).map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for (id, _) in WORKLOADS {
        if only.is_some_and(|ids| !ids.iter().any(|o| o == id)) {
            continue;
        }
        let m = match id {
            "detect" => {
                let mut spans: Vec<Span> = Vec::new();
                measure(id, corpus.scored_bytes(), round, rounds, || {
                    let mut found = 0;
                    for s in corpus.scored() {
                        spans.clear();
                        detector.find(&s.text, &mut spans);
                        found += spans.len();
                    }
                    Ok(found)
                })?
            }
            "text" => {
                let mut out = Vec::new();
                let (leaked, checked) = text_leaks(&anonymizer, corpus)?;
                let m = measure(id, corpus.text_bytes(), round, rounds, || {
                    let mut written = 0;
                    for doc in &corpus.texts {
                        out.clear();
                        anonymize_text(&anonymizer, &doc.text, &mut out)?;
                        written += out.len();
                    }
                    Ok(written)
                })?;
                Measurement {
                    leaked: Some(leaked),
                    checked: Some(checked),
                    ..m
                }
            }
            _ => {
                let mut out = Vec::with_capacity(corpus.ndjson.len() * 2);
                let (leaked, checked) = ndjson_leaks(&anonymizer, corpus)?;
                let m = measure(id, corpus.ndjson.len(), round, rounds, || {
                    out.clear();
                    anonymize_ndjson(&anonymizer, &corpus.ndjson, &mut out)?;
                    Ok(out.len())
                })?;
                Measurement {
                    leaked: Some(leaked),
                    checked: Some(checked),
                    ..m
                }
            }
        };
        results.push(m);
    }
    let scores = score::score(corpus, |text| analyze(&anonymizer, text));
    Ok(Report {
        runtime: runtime.to_owned(),
        corpus: CorpusSize {
            text_docs: corpus.texts.len(),
            text_bytes: corpus.text_bytes(),
            records: corpus.records.len(),
            json_strings: corpus.json_strings.len(),
            scored_bytes: corpus.scored_bytes(),
            ndjson_bytes: corpus.ndjson.len(),
        },
        results,
        scores,
    })
}

/// `text` through a text body of its own.
pub fn anonymize_text(
    anonymizer: &Anonymizer,
    text: &str,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut body = anonymizer.body(BodyKind::Text);
    body.push(text.as_bytes(), out).map_err(problem)?;
    body.finish(out).map_err(problem)
}

/// `ndjson` through one NDJSON body, pushed in [`CHUNK`]s.
pub fn anonymize_ndjson(
    anonymizer: &Anonymizer,
    ndjson: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut body = anonymizer.body(BodyKind::Ndjson);
    for chunk in ndjson.chunks(CHUNK) {
        body.push(chunk, out).map_err(problem)?;
    }
    body.finish(out).map_err(problem)
}

fn problem(p: edge_core::Problem) -> String {
    format!("{}: {}", p.kind(), p.detail().unwrap_or_default())
}

/// True values left verbatim in each text document's anonymized output,
/// and how many were looked for.
fn text_leaks(anonymizer: &Anonymizer, corpus: &Corpus) -> Result<(u64, u64), String> {
    let (mut leaked, mut checked) = (0, 0);
    let mut out = Vec::new();
    for doc in &corpus.texts {
        out.clear();
        anonymize_text(anonymizer, &doc.text, &mut out)?;
        let out = String::from_utf8_lossy(&out);
        for g in &doc.gold {
            checked += 1;
            leaked += u64::from(out.contains(&doc.text[g.start..g.end]));
        }
    }
    Ok((leaked, checked))
}

/// True values left verbatim in the anonymized NDJSON (in any string value
/// of the record's output line), and how many were looked for; fails unless
/// the output has one JSON record per input record.
fn ndjson_leaks(anonymizer: &Anonymizer, corpus: &Corpus) -> Result<(u64, u64), String> {
    let mut out = Vec::new();
    anonymize_ndjson(anonymizer, &corpus.ndjson, &mut out)?;
    let text = std::str::from_utf8(&out).map_err(|e| format!("ndjson output: {e}"))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != corpus.records.len() {
        return Err(format!(
            "ndjson output: {} lines for {} records",
            lines.len(),
            corpus.records.len()
        ));
    }
    let (mut leaked, mut checked) = (0, 0);
    for (i, (line, strings)) in lines.iter().zip(&corpus.records).enumerate() {
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("ndjson output line {}: {e}", i + 1))?;
        let mut values = Vec::new();
        collect_strings(&value, &mut values);
        for s in &corpus.json_strings[strings.clone()] {
            for g in &s.gold {
                checked += 1;
                let truth = &s.text[g.start..g.end];
                leaked += u64::from(values.iter().any(|v| v.contains(truth)));
            }
        }
    }
    Ok((leaked, checked))
}

fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(members) => members.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Times `pass` (one pass over `bytes` input bytes, returning something to
/// keep): one calibrating pass sizes the rounds to about `round` each, then
/// `rounds` timed rounds.
pub fn measure(
    id: &str,
    bytes: usize,
    round: Duration,
    rounds: u32,
    mut pass: impl FnMut() -> Result<usize, String>,
) -> Result<Measurement, String> {
    if bytes == 0 {
        return Err(format!("{id}: nothing to measure (empty corpus)"));
    }
    let started = Instant::now();
    std::hint::black_box(pass()?);
    let each = started.elapsed().as_secs_f64().max(1e-9);
    let passes = ((round.as_secs_f64() / each) as u64).max(1);
    let mut rates = Vec::new();
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        for _ in 0..passes {
            std::hint::black_box(pass()?);
        }
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        rates.push((bytes as f64 * passes as f64) / elapsed / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    Ok(Measurement {
        id: id.to_owned(),
        bytes,
        passes,
        rounds: rounds.max(1),
        mb_per_s: rates[rates.len() / 2],
        best_mb_per_s: rates[rates.len() - 1],
        worst_mb_per_s: rates[0],
        leaked: None,
        checked: None,
    })
}

/// What `presidio_eval.py` prints (the members the tables use).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Presidio {
    /// Analyze throughput, 10⁶ bytes per second.
    pub mb_per_s: f64,
    /// Analyze + anonymize throughput.
    pub anonymize_mb_per_s: f64,
    /// Bytes analyzed (the text documents and JSON string values).
    #[serde(default)]
    pub bytes: u64,
    /// Scores per entity type (the corpus's names).
    pub per_type: BTreeMap<String, PresidioType>,
    /// The phone recognizer's regions (`default` or `corpus`).
    #[serde(default)]
    pub phone_regions: String,
    /// presidio-analyzer's version.
    #[serde(default)]
    pub presidio_version: String,
}

/// One entity type in Presidio's report: counts and rates, or
/// `supported: false` for a type it has no recognizer for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PresidioType {
    /// `false` when Presidio cannot find this type.
    #[serde(default)]
    pub supported: Option<bool>,
    /// Exact matches.
    #[serde(default)]
    pub tp: u64,
    /// Other findings of the type.
    #[serde(default)]
    pub fp: u64,
    /// True spans not found.
    #[serde(default, rename = "fn")]
    pub fn_: u64,
    /// True spans of an unsupported type.
    #[serde(default)]
    pub support: u64,
}

impl PresidioType {
    /// The scores, `None` for an unsupported type.
    pub fn score(&self) -> Option<TypeScore> {
        (self.supported != Some(false)).then(|| TypeScore::from_counts(self.tp, self.fp, self.fn_))
    }
}

/// The markdown tables: MB/s per measure natively and in wasm beside
/// Presidio's, then precision/recall/F1 per entity type side by side.
pub fn tables(reports: &[Report], presidio: &Presidio) -> String {
    let rate = |runtime: &str, id: &str| {
        reports
            .iter()
            .filter(|r| r.runtime == runtime)
            .find_map(|r| r.results.iter().find(|m| m.id == id))
            .map(|m| m.mb_per_s)
    };
    let mbs = |v: f64| {
        if v >= 100.0 {
            thousands(v)
        } else if v >= 1.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.4}")
        }
    };
    let cell = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), mbs);
    let ratio = |a: Option<f64>, b: f64| match a {
        Some(a) if b > 0.0 && a / b < 10.0 => format!("{:.1}×", a / b),
        Some(a) if b > 0.0 => format!("{}×", thousands(a / b)),
        _ => "–".to_owned(),
    };
    let leaks = |id: &str| {
        reports
            .iter()
            .find_map(|r| r.results.iter().find(|m| m.id == id))
            .and_then(|m| Some((m.leaked?, m.checked?)))
            .map_or_else(
                || "–".to_owned(),
                |(leaked, checked)| {
                    format!(
                        "{} of {}",
                        thousands(leaked as f64),
                        thousands(checked as f64)
                    )
                },
            )
    };
    let mut out = format!(
        "| measure | native MB/s | wasm MB/s | wasm/native | Presidio {} MB/s | \
         native/Presidio | wasm/Presidio | true values left in the output |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        presidio.presidio_version
    );
    for (id, _) in WORKLOADS {
        let (native, wasm) = (rate("native", id), rate("wasm", id));
        let (presidio_rate, presidio_what) = if id == "detect" {
            (presidio.mb_per_s, "analyze")
        } else {
            (presidio.anonymize_mb_per_s, "analyze + anonymize")
        };
        let name = match id {
            "detect" => "detect",
            "text" => "anonymize text",
            _ => "anonymize NDJSON",
        };
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} ({presidio_what}) | {} | {} | {} |\n",
            cell(native),
            cell(wasm),
            match (native, wasm) {
                (Some(n), Some(w)) if n > 0.0 => format!("{:.2}", w / n),
                _ => "–".to_owned(),
            },
            mbs(presidio_rate),
            ratio(native, presidio_rate),
            ratio(wasm, presidio_rate),
            leaks(id),
        ));
    }
    let ours = reports
        .iter()
        .find(|r| r.runtime == "native")
        .or(reports.first())
        .map(|r| r.scores.clone())
        .unwrap_or_default();
    let theirs: BTreeMap<&String, Option<TypeScore>> = presidio
        .per_type
        .iter()
        .map(|(t, p)| (t, p.score()))
        .collect();
    let mut types: Vec<&String> = ours.keys().chain(presidio.per_type.keys()).collect();
    types.sort();
    types.dedup();
    out.push_str(
        "\n| entity | true spans | anonymize P | anonymize R | anonymize F1 | Presidio P \
         | Presidio R | Presidio F1 | F1 ≥ Presidio |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|:---:|\n",
    );
    let three = |s: Option<&TypeScore>, none: &str| {
        s.map_or_else(
            || [none.to_owned(), "–".to_owned(), "–".to_owned()],
            |s| {
                [
                    format!("{:.3}", s.precision),
                    format!("{:.3}", s.recall),
                    format!("{:.3}", s.f1),
                ]
            },
        )
    };
    let mut row = |name: &str, a: Option<&TypeScore>, p: Option<&TypeScore>, none: &str| {
        let truth = a.or(p).map_or(0, |s| s.tp + s.fn_);
        let [ap, ar, af] = three(a, "–");
        let [pp, pr, pf] = three(p, none);
        let ge = match (a, p) {
            (Some(a), Some(p)) if a.f1 + 1e-12 >= p.f1 => "yes",
            (Some(_), Some(_)) => "**no**",
            (Some(_), None) if none == "no recognizer" => "yes",
            _ => "–",
        };
        out.push_str(&format!(
            "| {name} | {} | {ap} | {ar} | {af} | {pp} | {pr} | {pf} | {ge} |\n",
            thousands(truth as f64)
        ));
    };
    for t in types {
        let p = theirs.get(t).copied().flatten();
        let none = if presidio.per_type.contains_key(t) {
            "no recognizer"
        } else {
            "–"
        };
        row(t, ours.get(t), p.as_ref(), none);
    }
    // Micro averages over the types Presidio has a recognizer for, and
    // ours over every type.
    let compared: BTreeMap<String, TypeScore> = ours
        .iter()
        .filter(|(t, _)| theirs.get(t).is_some_and(Option::is_some))
        .map(|(t, s)| (t.clone(), *s))
        .collect();
    let presidio_all: BTreeMap<String, TypeScore> = theirs
        .iter()
        .filter_map(|(t, s)| s.map(|s| ((*t).clone(), s)))
        .collect();
    row(
        "all Presidio finds (micro)",
        Some(&score::overall(&compared)),
        Some(&score::overall(&presidio_all)),
        "–",
    );
    row("all (micro)", Some(&score::overall(&ours)), None, "–");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = concat!(
        r#"{"kind":"text","text":"Write to jane.doe@example.com or call +44 20 7946 0958.","#,
        r#""spans":[{"start":9,"end":29,"entity":"email"},{"start":38,"end":54,"entity":"phone"}]}"#,
        "\n",
        r#"{"kind":"json","json":{"user":{"email":"x.y@example.org"},"events":[{"ip":"203.0.113.9"}],"#,
        r#""notes":"from 198.51.100.7"},"spans":[{"path":"$.user.email","start":0,"end":15,"entity":"email"},"#,
        r#"{"path":"$.events[0].ip","start":0,"end":11,"entity":"ipv4"},"#,
        r#"{"path":"$.notes","start":5,"end":17,"entity":"ipv4"}]}"#,
        "\n",
    );

    #[test]
    fn a_run_measures_scores_and_checks_the_output() {
        let corpus = Corpus::parse(SAMPLE.as_bytes()).unwrap();
        let report = run("native", &corpus, Duration::from_millis(1), 1, None).unwrap();
        assert_eq!(report.results.len(), WORKLOADS.len());
        assert!(report.results.iter().all(|m| m.mb_per_s > 0.0));
        let ndjson = &report.results[2];
        assert_eq!(ndjson.checked, Some(3));
        assert_eq!(ndjson.leaked, Some(0), "{report:?}");
        assert!(report.scores["email"].tp >= 1, "{report:?}");
        let presidio: Presidio = serde_json::from_str(
            r#"{"mb_per_s": 0.02, "anonymize_mb_per_s": 0.019, "bytes": 200,
                "per_type": {"email": {"tp": 1, "fp": 0, "fn": 1, "precision": 1.0,
                "recall": 0.5, "f1": 0.6667}, "jwt": {"supported": false, "support": 0}},
                "presidio_version": "2.2.366"}"#,
        )
        .unwrap();
        let t = tables(
            &[
                report.clone(),
                Report {
                    runtime: "wasm".into(),
                    ..report
                },
            ],
            &presidio,
        );
        assert!(t.contains("| anonymize NDJSON |"), "{t}");
        assert!(t.contains("| email |"), "{t}");
        assert!(t.contains("no recognizer"), "{t}");
    }
}
