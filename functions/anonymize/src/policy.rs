//! The anonymizer's policy: which operator each entity, data class, JSON
//! field, user pattern and dictionary gets, what to do with content types it
//! does not read, and the k-anonymity settings. Validated when the function
//! starts, with the failing field named.

use std::fmt;

use edge_core::origin::Origin;
use edge_core::policy::{Policy, Validator};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::entity::Entity;
use crate::json::PathPattern;
use crate::operators::Operator;

/// The secret keying pseudonyms (HMAC-SHA-256).
pub const SALT_SECRET: &str = "GDPR_ANONYMIZATION_SALT";
/// The secret the reversible form's AES-SIV key is derived from.
pub const KEY_SECRET: &str = "GDPR_ANONYMIZATION_KEY";
/// The bearer secret of the de-anonymize endpoint.
pub const ADMIN_SECRET: &str = "ANONYMIZE_ADMIN_TOKEN";

/// The policy document: one `[anonymize]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymizePolicy {
    /// The section.
    pub anonymize: Section,
}

impl AnonymizePolicy {
    /// The URLs the function calls, each with its field path, for
    /// `Config::check_outbound`: its origin and its batches' sinks.
    pub fn outbound(&self) -> Vec<(String, String)> {
        let section = &self.anonymize;
        [
            ("anonymize.origin", &section.origin),
            ("anonymize.queue.sink", &section.queue.sink),
            (
                "anonymize.queue.dead_letter_sink",
                &section.queue.dead_letter_sink,
            ),
        ]
        .into_iter()
        .filter_map(|(path, url)| Some((path.to_owned(), url.as_ref()?.to_string())))
        .collect()
    }
}

/// What a body of a content type the anonymizer does not read gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownContent {
    /// Passed on untouched.
    Pass,
    /// Refused with 415.
    Refuse,
}

/// The four data classes, each with a default operator.
pub const CLASSES: [&str; 4] = ["public", "internal", "confidential", "restricted"];

/// `[anonymize]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Where anonymized requests go; without it the anonymized body is the answer.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// Bodies of other content types: `pass` or `refuse`.
    #[serde(default = "refuse")]
    pub unknown_content: UnknownContent,
    /// The endpoints' prefix (de-anonymize, k-anonymity, analyze).
    #[serde(default = "admin_path")]
    pub admin_path: String,
    /// JSON nesting limit.
    #[serde(default = "max_depth")]
    pub max_depth: usize,
    /// The longest JSON string, number or key, and text line, in bytes.
    #[serde(default = "max_string_bytes")]
    pub max_string_bytes: usize,
    /// Whether JSON numbers without a field rule are scanned too (a card
    /// number sent as a number).
    #[serde(default = "yes")]
    pub scan_numbers: bool,
    /// Built-in entity → operator or data class.
    #[serde(default)]
    pub entities: OrderedMap,
    /// Data class → operator.
    #[serde(default)]
    pub classes: OrderedMap,
    /// JSON path → operator, data class, or `scan` (detectors). A rule
    /// covers its field and everything under it; the first declared rule
    /// that matches wins.
    #[serde(default)]
    pub fields: OrderedMap,
    /// User patterns.
    #[serde(default)]
    pub patterns: Vec<PatternRule>,
    /// User dictionaries.
    #[serde(default)]
    pub dictionaries: Vec<DictionaryRule>,
    /// Regions (ISO 3166 alpha-2) whose national phone numbers the bodies
    /// hold: a bare run of digits that is a valid number of one of them is
    /// a phone number (see `DetectorConfig::phone_regions`).
    #[serde(default)]
    pub phone_regions: Vec<String>,
    /// The k-anonymity report's defaults.
    #[serde(default)]
    pub k_anonymity: KAnonymitySection,
    /// Batches: the queue consumer (Workers) and `{admin_path}/batch`.
    #[serde(default)]
    pub queue: QueueSection,
}

/// `[anonymize.queue]`: where anonymized batches go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSection {
    /// Anonymized records are `POST`ed here as NDJSON, one request per batch.
    #[serde(default)]
    pub sink: Option<Origin>,
    /// Dead-lettered messages are reported here (id, reason, size, and the
    /// body anonymized as text), one JSON object per message.
    #[serde(default)]
    pub dead_letter_sink: Option<Origin>,
    /// The largest message, in bytes (Cloudflare Queues' own limit is 128 KB).
    #[serde(default = "max_message_bytes")]
    pub max_message_bytes: usize,
}

impl Default for QueueSection {
    fn default() -> Self {
        QueueSection {
            sink: None,
            dead_letter_sink: None,
            max_message_bytes: max_message_bytes(),
        }
    }
}

fn max_message_bytes() -> usize {
    128 * 1024
}

/// `[[anonymize.patterns]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternRule {
    /// Name (tag, report).
    pub name: String,
    /// Regular expression.
    pub regex: String,
    /// Operator or data class (`tag` when absent).
    #[serde(default)]
    pub operator: Option<String>,
}

/// `[[anonymize.dictionaries]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DictionaryRule {
    /// Name (tag, report).
    pub name: String,
    /// Words or phrases, matched as whole words.
    pub words: Vec<String>,
    /// Whether case is ignored.
    #[serde(default)]
    pub case_insensitive: bool,
    /// Operator or data class (`tag` when absent).
    #[serde(default)]
    pub operator: Option<String>,
}

/// `[anonymize.k_anonymity]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KAnonymitySection {
    /// Quasi-identifiers: dotted paths, each optionally `path:operator` to
    /// generalize first (`age:range(10)`).
    #[serde(default)]
    pub quasi_identifiers: Vec<String>,
    /// The k a batch must reach.
    #[serde(default = "threshold")]
    pub threshold: usize,
}

impl Default for KAnonymitySection {
    fn default() -> Self {
        KAnonymitySection {
            quasi_identifiers: Vec::new(),
            threshold: threshold(),
        }
    }
}

fn refuse() -> UnknownContent {
    UnknownContent::Refuse
}
fn admin_path() -> String {
    "/_anonymize".into()
}
fn max_depth() -> usize {
    128
}
fn max_string_bytes() -> usize {
    1024 * 1024
}
fn yes() -> bool {
    true
}
fn threshold() -> usize {
    5
}

/// A TOML/JSON table kept in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderedMap(pub Vec<(String, String)>);

impl OrderedMap {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl<'de> Deserialize<'de> for OrderedMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = OrderedMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedMap, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    entries.push(entry);
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

/// The built-in data class of each entity (its default operator comes from
/// the class, unless `[anonymize.entities]` names one).
pub fn default_class(entity: Entity) -> &'static str {
    match entity {
        Entity::Ipv4 | Entity::Ipv6 => "internal",
        Entity::Email | Entity::Phone => "confidential",
        Entity::Card | Entity::Iban | Entity::Jwt | Entity::ApiKey | Entity::Custom(_) => {
            "restricted"
        }
    }
}

/// The built-in operator of a data class.
pub fn default_class_operator(class: &str) -> &'static str {
    match class {
        "public" => "keep",
        "internal" => "truncate",
        "confidential" => "hash",
        _ => "redact",
    }
}

/// What a JSON field rule does.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldAction {
    /// Run the detectors over the value (what fields without a rule get).
    Scan,
    /// Apply this operator to the whole value.
    Apply(Operator),
}

impl Section {
    /// The operator a data class stands for.
    pub fn class_operator(&self, class: &str) -> Result<Operator, String> {
        let text = self
            .classes
            .get(class)
            .unwrap_or_else(|| default_class_operator(class));
        text.parse::<Operator>().map_err(|e| e.to_string())
    }

    /// Resolves an operator or data class name.
    pub fn resolve(&self, text: &str) -> Result<Operator, String> {
        if CLASSES.contains(&text) {
            self.class_operator(text)
        } else {
            text.parse::<Operator>().map_err(|e| e.to_string())
        }
    }

    /// The operator for a built-in entity.
    pub fn entity_operator(&self, entity: Entity) -> Result<Operator, String> {
        let text = self
            .entities
            .get(entity.name())
            .unwrap_or_else(|| default_class(entity));
        self.resolve(text)
    }

    /// The action of a field rule's value.
    pub fn field_action(&self, text: &str) -> Result<FieldAction, String> {
        if text == "scan" {
            Ok(FieldAction::Scan)
        } else {
            self.resolve(text).map(FieldAction::Apply)
        }
    }

    /// Whether any rule uses the reversible form.
    pub fn uses_encryption(&self) -> bool {
        let resolves_to_encrypt = |text: &str| self.resolve(text) == Ok(Operator::Encrypt);
        Entity::BUILTIN
            .iter()
            .any(|e| self.entity_operator(*e) == Ok(Operator::Encrypt))
            || self.fields.0.iter().any(|(_, v)| resolves_to_encrypt(v))
            || self
                .patterns
                .iter()
                .filter_map(|p| p.operator.as_deref())
                .chain(
                    self.dictionaries
                        .iter()
                        .filter_map(|d| d.operator.as_deref()),
                )
                .any(resolves_to_encrypt)
    }
}

impl Policy for AnonymizePolicy {
    fn validate(&self, v: &mut Validator) {
        let s = &self.anonymize;
        v.field("anonymize", |v| {
            v.check(
                s.admin_path.starts_with('/') && s.admin_path.len() > 1,
                "admin_path",
                &s.admin_path,
                "must start with / and name a path",
            );
            v.check(
                (1..=1024).contains(&s.max_depth),
                "max_depth",
                s.max_depth,
                "must be 1..=1024",
            );
            v.check(
                (1024..=64 * 1024 * 1024).contains(&s.max_string_bytes),
                "max_string_bytes",
                s.max_string_bytes,
                "must be 1 KiB..=64 MiB",
            );
            v.field("queue", |v| {
                v.check(
                    (16..=16 * 1024 * 1024).contains(&s.queue.max_message_bytes),
                    "max_message_bytes",
                    s.queue.max_message_bytes,
                    "must be 16..=16 MiB",
                );
            });
            v.field("classes", |v| {
                for (class, op) in &s.classes.0 {
                    if !CLASSES.contains(&class.as_str()) {
                        v.check(
                            false,
                            class,
                            class,
                            "is not a data class (public, internal, confidential, restricted)",
                        );
                    } else if let Err(e) = op.parse::<Operator>() {
                        v.check(false, class, op, &e.to_string());
                    }
                }
            });
            v.field("entities", |v| {
                for (name, op) in &s.entities.0 {
                    if Entity::from_name(name).is_none() {
                        v.check(
                            false,
                            name,
                            name,
                            "is not an entity (email, ipv4, ipv6, phone, card, iban, jwt, api_key)",
                        );
                    } else if let Err(e) = s.resolve(op) {
                        v.check(false, name, op, &e);
                    }
                }
            });
            v.field("fields", |v| {
                for (path, op) in &s.fields.0 {
                    if let Err(e) = path.parse::<PathPattern>() {
                        v.check(false, path, path, &format!("is not a JSON path: {e}"));
                    } else if let Err(e) = s.field_action(op) {
                        v.check(false, path, op, &e);
                    }
                }
            });
            v.field("patterns", |v| {
                for (i, p) in s.patterns.iter().enumerate() {
                    v.index(i, |v| {
                        v.check(!p.name.is_empty(), "name", &p.name, "must not be empty");
                        if let Some(Err(e)) = p.operator.as_deref().map(|o| s.resolve(o)) {
                            v.check(false, "operator", &p.operator, &e);
                        }
                    });
                }
            });
            v.field("dictionaries", |v| {
                for (i, d) in s.dictionaries.iter().enumerate() {
                    v.index(i, |v| {
                        v.check(!d.name.is_empty(), "name", &d.name, "must not be empty");
                        v.check(!d.words.is_empty(), "words", &d.words, "must not be empty");
                        if let Some(Err(e)) = d.operator.as_deref().map(|o| s.resolve(o)) {
                            v.check(false, "operator", &d.operator, &e);
                        }
                    });
                }
            });
            v.field("k_anonymity", |v| {
                v.check(
                    s.k_anonymity.threshold >= 1,
                    "threshold",
                    s.k_anonymity.threshold,
                    "must be ≥ 1",
                );
            });
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use edge_core::{Config, EdgeFunction};

    use crate::Anonymize;

    fn config(origin: Option<&str>) -> Config {
        let policy = match origin {
            Some(origin) => format!("[anonymize]\norigin = \"{origin}\"\n"),
            None => "[anonymize]\n".to_owned(),
        };
        Config::new(Anonymize::DEFAULT_POLICY)
            .with_var("POLICY", policy)
            .with_secret(super::SALT_SECRET, "test-anonymization-salt")
    }

    fn error(config: &Config) -> String {
        Anonymize::from_config(config).err().unwrap().to_string()
    }

    #[test]
    fn an_origin_outside_the_allowed_hosts_fails_at_start_by_field() {
        let refused = config(Some("http://127.0.0.1:9001/v1"))
            .with_allowed_outbound_hosts("https://api.example.com");
        assert_eq!(
            error(&refused),
            "anonymize.origin: http://127.0.0.1:9001 is not in this component's \
             allowed_outbound_hosts (https://api.example.com); add it to spin.toml"
        );
        let allowed = config(Some("http://127.0.0.1:9001/v1"))
            .with_allowed_outbound_hosts("http://127.0.0.1:9001");
        assert!(Anonymize::from_config(&allowed).is_ok());
        // No origin: nothing to call; no allow-list (Workers): anything goes.
        let none = config(None).with_allowed_outbound_hosts("");
        assert!(Anonymize::from_config(&none).is_ok());
        assert!(Anonymize::from_config(&config(Some("https://x.example:8443"))).is_ok());
        // spin.toml's default anonymize_origin_host takes the documented origin.
        let default = config(Some("https://api.example.com"))
            .with_allowed_outbound_hosts("https://api.example.com");
        assert!(Anonymize::from_config(&default).is_ok());
    }
}
