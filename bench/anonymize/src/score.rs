//! Precision and recall per entity type, by the rule `presidio_eval.py`
//! scores Presidio with: a finding counts only when its `(start, end,
//! entity)` equals a true span of the same string exactly; every other
//! finding is a false positive of its type, every unmatched true span a
//! false negative of its type. Scored strings: the text documents and every
//! JSON string value (those without true spans too).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::corpus::{Corpus, Gold};

/// One entity type's counts and rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeScore {
    /// Exact matches.
    pub tp: u64,
    /// Findings that match no true span.
    pub fp: u64,
    /// True spans no finding matched.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// tp / (tp + fp), 1 without findings (as `presidio_eval.py`).
    pub precision: f64,
    /// tp / (tp + fn), 1 without true spans (as `presidio_eval.py`).
    pub recall: f64,
    /// The harmonic mean of both, 0 when both are 0.
    pub f1: f64,
}

impl TypeScore {
    /// The rates of these counts.
    pub fn from_counts(tp: u64, fp: u64, fn_: u64) -> TypeScore {
        let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        TypeScore {
            tp,
            fp,
            fn_,
            precision,
            recall,
            f1,
        }
    }
}

/// Scores `find` (one string's findings as `(start, end, entity)`) on every
/// scored string of `corpus`; keyed by entity name.
pub fn score(
    corpus: &Corpus,
    mut find: impl FnMut(&str) -> Vec<Gold>,
) -> BTreeMap<String, TypeScore> {
    let mut counts: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for scored in corpus.scored() {
        let found: BTreeSet<Gold> = find(&scored.text).into_iter().collect();
        let gold: BTreeSet<&Gold> = scored.gold.iter().collect();
        for f in &found {
            let c = counts.entry(f.entity.clone()).or_default();
            if gold.contains(f) {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
        for g in gold.iter().filter(|g| !found.contains(**g)) {
            counts.entry(g.entity.clone()).or_default().2 += 1;
        }
    }
    counts
        .into_iter()
        .map(|(entity, (tp, fp, fn_))| (entity, TypeScore::from_counts(tp, fp, fn_)))
        .collect()
}

/// The counts of all types together (micro average).
pub fn overall(scores: &BTreeMap<String, TypeScore>) -> TypeScore {
    let (tp, fp, fn_) = scores.values().fold((0, 0, 0), |(tp, fp, fn_), s| {
        (tp + s.tp, fp + s.fp, fn_ + s.fn_)
    });
    TypeScore::from_counts(tp, fp, fn_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(start: usize, end: usize, entity: &str) -> Gold {
        Gold {
            start,
            end,
            entity: entity.to_owned(),
        }
    }

    #[test]
    fn only_exact_matches_count() {
        let line = r#"{"kind":"text","text":"a@b.io and 10.0.0.1","spans":[{"start":0,"end":6,"entity":"email"},{"start":11,"end":19,"entity":"ipv4"}]}"#;
        let corpus = Corpus::parse(line.as_bytes()).unwrap();
        // The email exactly; the IP one byte short; a phone that is none.
        let scores = score(&corpus, |_| {
            vec![g(0, 6, "email"), g(11, 18, "ipv4"), g(7, 10, "phone")]
        });
        assert_eq!(scores["email"], TypeScore::from_counts(1, 0, 0));
        assert_eq!(
            (scores["ipv4"].tp, scores["ipv4"].fp, scores["ipv4"].fn_),
            (0, 1, 1)
        );
        let phone = scores["phone"];
        assert_eq!(
            (phone.fp, phone.precision, phone.recall, phone.f1),
            (1, 0.0, 1.0, 0.0)
        );
        let all = overall(&scores);
        assert_eq!((all.tp, all.fp, all.fn_), (1, 2, 1));
        assert!((all.f1 - 2.0 * (1.0 / 3.0) * 0.5 / (1.0 / 3.0 + 0.5)).abs() < 1e-12);
    }
}
