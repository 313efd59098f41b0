//! k-anonymity of a batch: how small the smallest group of records is that
//! share the same (generalized) quasi-identifiers.
//!
//! Records (JSON values) are fed one at a time. For each, every
//! quasi-identifier is looked up by its dotted path (`zip`, `user.age`,
//! `address.city`; a numeric segment indexes an array), generalized with its
//! operator if it has one, and the tuple of results is the record's
//! equivalence class. A missing value and JSON `null` are the same value,
//! `null`; strings, numbers, booleans and objects/arrays are told apart by
//! type, and a generalized value is the operator's text output.
//!
//! Operators: `Hash` and `Encrypt` are taken as `Keep` (a pseudonym or token
//! splits records exactly as the value does, up to normalization, so this is
//! never optimistic; and no keys are needed). A value the operator does not
//! apply to (a non-date under `generalize_date`) is kept as it is, which again
//! can only make classes smaller, and is counted in
//! [`Report::generalization_failures`].
//!
//! # Memory
//!
//! Only a 128-bit digest of each class key (SHA-256 of a type-tagged,
//! length-prefixed encoding, truncated) and a 32-bit count are kept: a
//! 20-byte entry plus one control byte in a hash table kept at most 7/8 full
//! with a power-of-two size, so 24–48 bytes per distinct class, and up to
//! 1.5 times that for a moment while the table doubles. The worst case is a
//! batch where every record is its own class: 1M records → 2²¹ slots × 21
//! bytes ≈ 44 MB (≈ 66 MB at the last doubling). Fewer classes take
//! proportionally less; the record count does not matter. No value is kept,
//! and the [`Report`] holds counts only, never a quasi-identifier value.
//! A digest collision (which would merge two classes) has probability below
//! n²/2¹²⁹ for n classes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::operators::{self, Keys, Operator};

/// A class key's digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClassId([u8; 16]);

impl Hash for ClassId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// The digest is already uniform: use its first 8 bytes as the table hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The value kinds in a class key.
mod kind {
    pub(super) const NULL: u8 = 0;
    pub(super) const STRING: u8 = 1;
    pub(super) const NUMBER: u8 = 2;
    pub(super) const BOOL: u8 = 3;
    pub(super) const COMPOUND: u8 = 4;
    pub(super) const GENERALIZED: u8 = 5;
}

struct QuasiIdentifier {
    path: Vec<String>,
    /// The entity name given to the operator (the path's last segment).
    name: String,
    operator: Option<Operator>,
}

/// The k-anonymity of a batch, built up record by record.
pub struct KAnonymity {
    quasi: Vec<QuasiIdentifier>,
    threshold: u64,
    records: u64,
    failures: u64,
    classes: HashMap<ClassId, u32, BuildHasherDefault<IdHasher>>,
    keys: Keys,
    raw: String,
    generalized: String,
}

impl KAnonymity {
    /// A report over these quasi-identifiers (dotted path, optional
    /// generalization applied first), satisfied when every class has at least
    /// `threshold` records. A path with an empty segment matches nothing.
    pub fn new(quasi: Vec<(String, Option<Operator>)>, threshold: u64) -> KAnonymity {
        let quasi = quasi
            .into_iter()
            .map(|(path, operator)| {
                let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
                QuasiIdentifier {
                    name: segments.last().cloned().unwrap_or_default(),
                    path: segments,
                    operator: operator.map(|op| match op {
                        Operator::Hash | Operator::Encrypt => Operator::Keep,
                        other => other,
                    }),
                }
            })
            .collect();
        KAnonymity {
            quasi,
            threshold,
            records: 0,
            failures: 0,
            classes: HashMap::default(),
            keys: Keys::new(b"", None),
            raw: String::new(),
            generalized: String::new(),
        }
    }

    /// Counts one record.
    pub fn add(&mut self, record: &Value) {
        let mut digest = Sha256::new();
        for qi in &self.quasi {
            let value = lookup(record, &qi.path);
            self.raw.clear();
            let kind = match value {
                None | Some(Value::Null) => {
                    digest.update([kind::NULL]);
                    continue;
                }
                Some(Value::String(s)) => {
                    self.raw.push_str(s);
                    kind::STRING
                }
                Some(Value::Number(n)) => {
                    // Infallible: writing to a String.
                    let _ = write!(self.raw, "{n}");
                    kind::NUMBER
                }
                Some(Value::Bool(b)) => {
                    self.raw.push_str(if *b { "true" } else { "false" });
                    kind::BOOL
                }
                Some(compound) => {
                    let _ = write!(self.raw, "{compound}");
                    kind::COMPOUND
                }
            };
            let (kind, text) = match &qi.operator {
                None => (kind, self.raw.as_str()),
                Some(op) => {
                    self.generalized.clear();
                    match operators::apply(
                        op,
                        &qi.name,
                        &self.raw,
                        &self.keys,
                        &mut self.generalized,
                    ) {
                        Ok(()) => (kind::GENERALIZED, self.generalized.as_str()),
                        Err(_) => {
                            self.failures += 1;
                            (kind, self.raw.as_str())
                        }
                    }
                }
            };
            digest.update([kind]);
            digest.update((text.len() as u64).to_le_bytes());
            digest.update(text.as_bytes());
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest.finalize()[..16]);
        let count = self.classes.entry(ClassId(id)).or_insert(0);
        *count = count.saturating_add(1);
        self.records += 1;
    }

    /// The report so far.
    pub fn report(&self) -> Report {
        let mut report = Report {
            records: self.records,
            classes: self.classes.len() as u64,
            smallest_class: 0,
            threshold: self.threshold,
            satisfied: true,
            records_below_threshold: 0,
            classes_below_threshold: 0,
            histogram: Histogram::default(),
            generalization_failures: self.failures,
        };
        let mut smallest = u64::MAX;
        for &count in self.classes.values() {
            let size = u64::from(count);
            smallest = smallest.min(size);
            if size < self.threshold {
                report.classes_below_threshold += 1;
                report.records_below_threshold += size;
            }
            let h = &mut report.histogram;
            *match size {
                0 | 1 => &mut h.size_1,
                2 => &mut h.size_2,
                3 => &mut h.size_3,
                4 => &mut h.size_4,
                5..=9 => &mut h.size_5_to_9,
                _ => &mut h.size_10_plus,
            } += 1;
        }
        if !self.classes.is_empty() {
            report.smallest_class = smallest;
        }
        report.satisfied = report.classes_below_threshold == 0;
        report
    }
}

fn lookup<'a>(record: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(record, |value, segment| match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The k-anonymity of a batch. Counts only: no quasi-identifier value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Records seen.
    pub records: u64,
    /// Distinct equivalence classes.
    pub classes: u64,
    /// The size of the smallest class: the batch's k (0 without records).
    pub smallest_class: u64,
    /// The k required.
    pub threshold: u64,
    /// Whether no class is smaller than the threshold (an empty batch has
    /// none, so it is satisfied).
    pub satisfied: bool,
    /// Records in classes smaller than the threshold.
    pub records_below_threshold: u64,
    /// Classes smaller than the threshold.
    pub classes_below_threshold: u64,
    /// How many classes have each size.
    pub histogram: Histogram,
    /// Quasi-identifier values the operator did not apply to, taken as they
    /// are.
    pub generalization_failures: u64,
}

/// How many classes have 1, 2, 3, 4, 5–9 and 10 or more records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Histogram {
    /// Classes of one record.
    #[serde(rename = "1")]
    pub size_1: u64,
    /// Classes of two records.
    #[serde(rename = "2")]
    pub size_2: u64,
    /// Classes of three records.
    #[serde(rename = "3")]
    pub size_3: u64,
    /// Classes of four records.
    #[serde(rename = "4")]
    pub size_4: u64,
    /// Classes of five to nine records.
    #[serde(rename = "5-9")]
    pub size_5_to_9: u64,
    /// Classes of ten or more records.
    #[serde(rename = "10+")]
    pub size_10_plus: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kanon(quasi: &[(&str, Option<&str>)], k: u64, records: &[Value]) -> Report {
        let quasi = quasi
            .iter()
            .map(|(p, op)| (p.to_string(), op.map(|o| o.parse().unwrap())))
            .collect();
        let mut kanon = KAnonymity::new(quasi, k);
        for r in records {
            kanon.add(r);
        }
        kanon.report()
    }

    #[test]
    fn empty_batch() {
        let r = kanon(&[("zip", None)], 2, &[]);
        assert_eq!(r.records, 0);
        assert_eq!(r.classes, 0);
        assert_eq!(r.smallest_class, 0);
        assert!(r.satisfied);
        assert_eq!(r.histogram, Histogram::default());
    }

    #[test]
    fn hand_computed_classes() {
        // (zip, age): (10115, 34) x2, (10115, 35) x1, (20095, 34) x3.
        let records = [
            json!({"zip": "10115", "age": 34}),
            json!({"zip": "10115", "age": 34, "name": "ignored"}),
            json!({"zip": "10115", "age": 35}),
            json!({"zip": "20095", "age": 34}),
            json!({"zip": "20095", "age": 34}),
            json!({"zip": "20095", "age": 34}),
        ];
        let r = kanon(&[("zip", None), ("age", None)], 2, &records);
        assert_eq!(r.records, 6);
        assert_eq!(r.classes, 3);
        assert_eq!(r.smallest_class, 1);
        assert!(!r.satisfied);
        assert_eq!(r.records_below_threshold, 1);
        assert_eq!(r.classes_below_threshold, 1);
        assert_eq!(
            (r.histogram.size_1, r.histogram.size_2, r.histogram.size_3),
            (1, 1, 1)
        );

        // Ages in decades: (10115, [30,40)) x3, (20095, [30,40)) x3.
        let r = kanon(&[("zip", None), ("age", Some("range(10)"))], 3, &records);
        assert_eq!(r.classes, 2);
        assert_eq!(r.smallest_class, 3);
        assert!(r.satisfied);
        assert_eq!(r.records_below_threshold, 0);
        assert_eq!(r.histogram.size_3, 2);
        assert_eq!(r.generalization_failures, 0);
    }

    #[test]
    fn nested_paths_missing_and_null() {
        let records = [
            json!({"user": {"age": 41, "city": "Berlin"}, "d": "1990-05-02"}),
            json!({"user": {"age": 47, "city": "Berlin"}, "d": "1990-05-30"}),
            json!({"user": {"age": 44}, "d": "1990-05-13"}),
            json!({"user": {"age": 40, "city": null}, "d": "1990-05-01T10:00Z"}),
            json!({"user": "not an object"}),
            json!(["not", "an", "object"]),
        ];
        let quasi = [
            ("user.age", Some("range(10)")),
            ("user.city", None),
            ("d", Some("month")),
        ];
        let r = kanon(&quasi, 2, &records);
        // ([40,50), Berlin, 1990-05) x2; ([40,50), null, 1990-05) x2;
        // (null, null, null) x2.
        assert_eq!(r.records, 6);
        assert_eq!(r.classes, 3);
        assert_eq!(r.smallest_class, 2);
        assert!(r.satisfied);
        assert_eq!(r.histogram.size_2, 3);
    }

    #[test]
    fn types_are_distinct_and_failures_counted() {
        let records = [
            json!({"v": "1"}),
            json!({"v": 1}),
            json!({"v": true}),
            json!({"v": "true"}),
            json!({"v": [1]}),
            json!({"v": "[1]"}),
        ];
        let r = kanon(&[("v", None)], 1, &records);
        assert_eq!(r.classes, 6);
        // Under `month` nothing is a date: six failures, six raw classes.
        let r = kanon(&[("v", Some("month"))], 1, &records);
        assert_eq!(r.classes, 6);
        assert_eq!(r.generalization_failures, 6);
    }

    #[test]
    fn histogram_buckets_and_array_index() {
        let mut records = Vec::new();
        for (value, n) in [("a", 1), ("b", 4), ("c", 5), ("d", 9), ("e", 10), ("f", 30)] {
            for _ in 0..n {
                records.push(json!({"list": [{"x": value}]}));
            }
        }
        let r = kanon(&[("list.0.x", None)], 5, &records);
        assert_eq!(r.records, 59);
        assert_eq!(r.classes, 6);
        assert_eq!(r.smallest_class, 1);
        assert_eq!(r.classes_below_threshold, 2);
        assert_eq!(r.records_below_threshold, 5);
        let h = &r.histogram;
        assert_eq!(
            (
                h.size_1,
                h.size_2,
                h.size_3,
                h.size_4,
                h.size_5_to_9,
                h.size_10_plus
            ),
            (1, 0, 0, 1, 2, 2)
        );
    }

    #[test]
    fn hash_and_encrypt_count_as_keep() {
        let records = [json!({"e": "a@x.org"}), json!({"e": "b@x.org"})];
        for op in ["hash", "encrypt", "keep"] {
            let r = kanon(&[("e", Some(op))], 1, &records);
            assert_eq!(r.classes, 2, "{op}");
            assert_eq!(r.generalization_failures, 0, "{op}");
        }
        let r = kanon(&[("e", Some("tag"))], 1, &records);
        assert_eq!(r.classes, 1);
    }

    #[test]
    fn report_serializes_counts_only() {
        let records = [json!({"zip": "SECRET-ZIP-12345"})];
        let r = kanon(&[("zip", None)], 2, &records);
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("SECRET"));
        assert_eq!(
            text,
            r#"{"records":1,"classes":1,"smallest_class":1,"threshold":2,"satisfied":false,"records_below_threshold":1,"classes_below_threshold":1,"histogram":{"1":1,"2":0,"3":0,"4":0,"5-9":0,"10+":0},"generalization_failures":0}"#
        );
    }
}
