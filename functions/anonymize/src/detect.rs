//! Detectors: find emails, IPs, phones, cards, IBANs, secrets and the
//! policy's own patterns and dictionaries in text, validated by checksum
//! where one exists. (Stub: being written.)

use crate::entity::{Entity, Span};

/// A user pattern from the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomPattern {
    /// Its name (tag and report).
    pub name: String,
    /// A regular expression (Rust `regex` syntax).
    pub regex: String,
}

/// A user dictionary from the policy: any of the words, as whole words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dictionary {
    /// Its name (tag and report).
    pub name: String,
    /// The words or phrases.
    pub words: Vec<String>,
    /// Whether case is ignored.
    pub case_insensitive: bool,
}

/// Which detectors run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Built-in kinds to look for.
    pub entities: Vec<Entity>,
    /// User patterns: `Entity::Custom(i)` for `i < patterns.len()`.
    pub patterns: Vec<CustomPattern>,
    /// User dictionaries: `Entity::Custom(patterns.len() + i)`.
    pub dictionaries: Vec<Dictionary>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            entities: Entity::BUILTIN.to_vec(),
            patterns: Vec::new(),
            dictionaries: Vec::new(),
        }
    }
}

/// A bad pattern or dictionary in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DetectorError {
    /// Which one, e.g. `patterns[2].regex`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The compiled detectors; build once, use for every request.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
}

impl Detector {
    /// Compiles the configuration.
    pub fn new(config: &DetectorConfig) -> Result<Detector, DetectorError> {
        Ok(Detector {
            config: config.clone(),
        })
    }

    /// Appends the findings in `text` to `out`: sorted by start, not
    /// overlapping.
    pub fn find(&self, _text: &str, _out: &mut Vec<Span>) {}

    /// The name of an entity: the built-in name, or the custom pattern's or
    /// dictionary's.
    pub fn entity_name(&self, entity: Entity) -> &str {
        match entity {
            Entity::Custom(i) => {
                let i = usize::from(i);
                let patterns = &self.config.patterns;
                match patterns.get(i) {
                    Some(p) => &p.name,
                    None => self
                        .config
                        .dictionaries
                        .get(i - patterns.len())
                        .map_or("custom", |d| d.name.as_str()),
                }
            }
            builtin => builtin.name(),
        }
    }
}
