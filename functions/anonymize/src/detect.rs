//! Detectors: find emails, IPs, phones, cards, IBANs, secrets and the
//! policy's own patterns and dictionaries in text, validated by checksum
//! where one exists.
//!
//! # How
//!
//! No regular expression runs over the text for the built-in kinds. Each
//! kind has a cheap trigger and a hand-written parser that looks only at
//! the bytes around it:
//!
//! - `@` → an email: the local part backwards, the domain forwards;
//! - `:` → an IPv6 address: the run of hex digits, colons and dots
//!   around it, parsed by [`std::net::Ipv6Addr`];
//! - a digit (eight bytes at a time) → the numeric kinds: an IPv4 address, a
//!   card number (issuer range and length from the IIN tables in `iin`,
//!   Luhn), an IBAN when two letters
//!   precede the digits (country length, mod-97), else a phone number;
//! - a run of token bytes (probed every tenth byte) starting with a known
//!   prefix (`eyJ`, `AKIA`, `ghp_`, …), after `Bearer `, or being
//!   `-----BEGIN ` → a JWT or an API key of that shape.
//!
//! User patterns run as `regex` (beyond a few, one [`regex::RegexSet`]
//! decides which of them need a `find_iter`) and dictionaries as
//! Aho-Corasick, only when the policy has any.
//!
//! # Overlaps
//!
//! Candidates that overlap are resolved to one: the more specific kind wins
//! (JWT, then API key, email, IBAN, card, IPv6, IPv4, custom, phone), then
//! the longer span. So a JWT after `Bearer ` is reported as a JWT, an IPv4
//! embedded in an IPv6 address (`::ffff:192.0.2.1`) as part of the IPv6
//! address, and a policy pattern wins over the phone heuristic but not over
//! a checksum-validated kind. Emails with a domain literal
//! (`user@[192.0.2.1]`) are not matched as emails; the address inside is
//! reported as an IPv4 address.
//!
//! # Phones
//!
//! Digits alone are not a phone number: a candidate needs the structure of
//! one — a leading `+` or `00` (or `(+358)`), a trunk `0`, an area code in
//! parentheses, the North American `NXX-NXX-XXXX` grouping, Brazil's
//! `AA NNNN-NNNN` — or the shape of a national number (9–11 digits in a
//! run, 8–14 in two to five groups that do not read as thousands, a year
//! range or a postcode) that the numbering plan of some region in
//! libphonenumber's metadata takes (`plan`, `plans`), or a phone keyword
//! (`tel`, `phone`, `call`, `mobile`, `Telefon`, `tlf`, `ring`, …) just
//! before it in the same sentence or, for a JSON string, in its field's
//! name ([`Detector::find_in_field`]: `"tlf": "21289693"`); and 7 to 15
//! digits. A word or field name for another number (`order`, `invoice`,
//! `"order_id"`) turns a national-format number away. A bare run of a region named in
//! `phone_regions` that its plan takes is one too. Dates, times, version
//! strings, dotted or comma-separated numbers and digits glued to letters
//! are refused, and numbers that are shaped like a card or an IBAN but fail
//! the checksum are skipped whole rather than taken for a phone.

mod bytes;
mod email;
mod iin;
mod ipv6;
mod numeric;
mod plan;
#[rustfmt::skip]
mod plans;
mod screen;
mod secrets;
mod validate;

#[cfg(test)]
mod tests;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::entity::{Entity, Span};

pub use validate::{iban_length, iban_valid, luhn_valid};

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
    /// Regions (ISO 3166 alpha-2) whose national numbers the text is
    /// expected to hold: a run of digits alone (no grouping, no phone word)
    /// that is a valid number of one of them is a phone number — a Danish
    /// "66225448", which without the region is as likely a Brazilian
    /// postcode. Numbers in the shape of a phone number are checked against
    /// every region's plan whether or not any is named here.
    pub phone_regions: Vec<String>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            entities: Entity::BUILTIN.to_vec(),
            patterns: Vec::new(),
            dictionaries: Vec::new(),
            phone_regions: Vec::new(),
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

/// The compiled size one user pattern may reach (the `regex` crate's
/// `size_limit`): a policy cannot make compilation explode.
pub const MAX_PATTERN_SIZE: usize = 1 << 20;
/// The lazy DFA cache of one user pattern.
const PATTERN_DFA_SIZE: usize = 2 << 20;
/// The compiled size of all user patterns together (the set).
const PATTERN_SET_SIZE: usize = 8 << 20;
/// Up to this many user patterns run one by one; more are screened by a
/// [`RegexSet`] first.
const DIRECT_PATTERNS: usize = 4;
/// How deeply a user pattern may nest groups and repetitions.
const PATTERN_NEST_LIMIT: u32 = 64;

/// Which built-in kinds run.
#[derive(Debug, Clone, Copy, Default)]
struct Enabled {
    email: bool,
    ipv4: bool,
    ipv6: bool,
    phone: bool,
    card: bool,
    iban: bool,
    jwt: bool,
    api_key: bool,
}

impl Enabled {
    fn numeric(self) -> bool {
        self.ipv4 || self.phone || self.card || self.iban
    }
}

/// The policy's patterns and dictionaries, compiled.
#[derive(Debug, Clone)]
struct Custom {
    regexes: Vec<Regex>,
    /// Each pattern's screen (`screen`), where its matches start with one
    /// of a few literals: a text without one is passed over.
    screens: Vec<Option<screen::Screen>>,
    set: Option<RegexSet>,
    /// Case-sensitive dictionary words, and the entity of each pattern.
    exact: Option<(AhoCorasick, Vec<u16>)>,
    /// Case-insensitive dictionary words (ASCII folding by the automaton,
    /// plus the lower, upper and title case of non-ASCII words).
    folded: Option<(AhoCorasick, Vec<u16>)>,
}

/// The compiled detectors; build once, use for every request.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
    enabled: Enabled,
    /// The plans of `config.phone_regions`.
    phone_regions: Vec<u16>,
    secrets: Option<secrets::Secrets>,
    custom: Custom,
}

impl Detector {
    /// Compiles the configuration.
    pub fn new(config: &DetectorConfig) -> Result<Detector, DetectorError> {
        let mut enabled = Enabled::default();
        for entity in &config.entities {
            match entity {
                Entity::Email => enabled.email = true,
                Entity::Ipv4 => enabled.ipv4 = true,
                Entity::Ipv6 => enabled.ipv6 = true,
                Entity::Phone => enabled.phone = true,
                Entity::Card => enabled.card = true,
                Entity::Iban => enabled.iban = true,
                Entity::Jwt => enabled.jwt = true,
                Entity::ApiKey => enabled.api_key = true,
                Entity::Custom(_) => {}
            }
        }
        let custom_count = config.patterns.len() + config.dictionaries.len();
        if custom_count > usize::from(u16::MAX) {
            return Err(DetectorError {
                field: "patterns".into(),
                message: format!("at most {} patterns and dictionaries together", u16::MAX),
            });
        }
        let mut phone_regions = Vec::with_capacity(config.phone_regions.len());
        for (i, region) in config.phone_regions.iter().enumerate() {
            phone_regions.push(plan::region_index(region).ok_or_else(|| DetectorError {
                field: format!("phone_regions[{i}]"),
                message: format!(
                    "{region:?} is not a region of libphonenumber's metadata (ISO 3166 alpha-2, e.g. \"DK\")"
                ),
            })?);
        }
        let secrets = (enabled.jwt || enabled.api_key).then_some(secrets::Secrets);
        Ok(Detector {
            config: config.clone(),
            enabled,
            phone_regions,
            secrets,
            custom: compile_custom(config)?,
        })
    }

    /// Appends the findings in `text` to `out`: sorted by start, not
    /// overlapping, on char boundaries.
    pub fn find(&self, text: &str, out: &mut Vec<Span>) {
        self.find_with(text, "", out);
    }

    /// [`find`](Self::find) in the value of a JSON field named `key` (for
    /// an array element, the array's name): a name holding a phone word
    /// (`phone`, `tlf`, `mobileNumber`…) counts as that word written just
    /// before the value, so a bare national number (`"phone": "21289693"`)
    /// is found as it would be after "Tel." in prose.
    pub fn find_in_field(&self, key: &str, text: &str, out: &mut Vec<Span>) {
        self.find_with(text, key, out);
    }

    fn find_with(&self, text: &str, field: &str, out: &mut Vec<Span>) {
        // Candidates go to the tail of `out`, which is then sorted and
        // resolved in place: no allocation beyond `out`'s growth.
        let base = out.len();
        let en = self.enabled;
        if en.email {
            email::find(text, out);
        }
        if let Some(secrets) = &self.secrets
            && text.len() >= secrets::MIN_LEN
        {
            secrets.find(text, en.jwt, en.api_key, out);
        }
        // Numbers inside an email, a JWT or a key would lose to it: the
        // numeric scan skips those spans (base64 is full of digits).
        let claimed = base..out.len();
        out[claimed.clone()].sort_unstable_by_key(|s| s.start);
        if en.numeric() {
            let phones = numeric::Phones {
                regions: &self.phone_regions,
                field,
            };
            numeric::find(text, en, phones, out, claimed);
        }
        if en.ipv6 {
            ipv6::find(text, out);
        }
        self.find_custom(text, out);
        resolve(out, base);
    }

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

    fn find_custom(&self, text: &str, out: &mut Vec<Span>) {
        let custom = &self.custom;
        let mut push_matches = |i: usize, regex: &Regex| {
            let entity = Entity::Custom(custom_index(i));
            for m in regex.find_iter(text) {
                if !m.is_empty() {
                    out.push(Span {
                        start: m.start(),
                        end: m.end(),
                        entity,
                    });
                }
            }
        };
        match &custom.set {
            Some(set) => {
                for i in set.matches(text).iter() {
                    push_matches(i, &custom.regexes[i]);
                }
            }
            // A few patterns run alone: each with its own literal
            // prefilter, where the set (a `\b` makes it a PikeVM over every
            // byte) would be slower.
            None => {
                for (i, (regex, screen)) in custom.regexes.iter().zip(&custom.screens).enumerate() {
                    if screen
                        .as_ref()
                        .is_none_or(|screen| screen.may_match(text.as_bytes()))
                    {
                        push_matches(i, regex);
                    }
                }
            }
        }
        for (ac, ids) in [&custom.exact, &custom.folded].into_iter().flatten() {
            for m in ac.find_overlapping_iter(text) {
                let (start, end) = (m.start(), m.end());
                if whole_word(text, start, end) {
                    out.push(Span {
                        start,
                        end,
                        entity: Entity::Custom(ids[m.pattern().as_usize()]),
                    });
                }
            }
        }
    }
}

/// A custom index that [`Detector::new`] has checked to fit.
fn custom_index(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

fn compile_custom(config: &DetectorConfig) -> Result<Custom, DetectorError> {
    let mut regexes = Vec::with_capacity(config.patterns.len());
    let mut screens = Vec::with_capacity(config.patterns.len());
    for (i, p) in config.patterns.iter().enumerate() {
        let regex = RegexBuilder::new(&p.regex)
            .size_limit(MAX_PATTERN_SIZE)
            .dfa_size_limit(PATTERN_DFA_SIZE)
            .nest_limit(PATTERN_NEST_LIMIT)
            .build()
            .map_err(|e| DetectorError {
                field: format!("patterns[{i}].regex"),
                message: e.to_string(),
            })?;
        regexes.push(regex);
        screens.push(screen::Screen::new(&p.regex, PATTERN_NEST_LIMIT));
    }
    let set = if regexes.len() <= DIRECT_PATTERNS {
        None
    } else {
        Some(
            RegexSetBuilder::new(config.patterns.iter().map(|p| &p.regex))
                .size_limit(PATTERN_SET_SIZE)
                .dfa_size_limit(PATTERN_DFA_SIZE)
                .nest_limit(PATTERN_NEST_LIMIT)
                .build()
                .map_err(|e| DetectorError {
                    field: "patterns".into(),
                    message: format!("the patterns together are too large: {e}"),
                })?,
        )
    };

    let mut exact: (Vec<String>, Vec<u16>) = (Vec::new(), Vec::new());
    let mut folded: (Vec<String>, Vec<u16>) = (Vec::new(), Vec::new());
    for (d, dict) in config.dictionaries.iter().enumerate() {
        let entity = custom_index(config.patterns.len() + d);
        for (w, word) in dict.words.iter().enumerate() {
            if word.trim().is_empty() {
                return Err(DetectorError {
                    field: format!("dictionaries[{d}].words[{w}]"),
                    message: "must not be empty".into(),
                });
            }
            if dict.case_insensitive {
                let mut variants = vec![word.clone()];
                if !word.is_ascii() {
                    variants.push(word.to_lowercase());
                    variants.push(word.to_uppercase());
                    variants.push(title_case(word));
                    variants.sort();
                    variants.dedup();
                }
                for v in variants {
                    folded.0.push(v);
                    folded.1.push(entity);
                }
            } else {
                exact.0.push(word.clone());
                exact.1.push(entity);
            }
        }
    }
    let build = |(words, ids): (Vec<String>, Vec<u16>), fold: bool| {
        if words.is_empty() {
            return Ok(None);
        }
        AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(fold)
            .build(&words)
            .map(|ac| Some((ac, ids)))
            .map_err(|e| DetectorError {
                field: "dictionaries".into(),
                message: e.to_string(),
            })
    };
    Ok(Custom {
        regexes,
        screens,
        set,
        exact: build(exact, false)?,
        folded: build(folded, true)?,
    })
}

/// Each word with its first letter upper-cased and the rest lower-cased.
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if at_start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            at_start = false;
        } else {
            out.push(c);
            at_start = true;
        }
    }
    out
}

/// Whether `text[start..end]` is not glued to a word character on a side
/// where it itself begins or ends with one.
fn whole_word(text: &str, start: usize, end: usize) -> bool {
    let inner = &text[start..end];
    let first_word = inner.chars().next().is_some_and(is_word_char);
    let last_word = inner.chars().next_back().is_some_and(is_word_char);
    !(first_word && word_before(text, start) || last_word && word_after(text, end))
}

/// A letter, digit or underscore, in any script.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether the char before byte `i` is a word char.
fn word_before(text: &str, i: usize) -> bool {
    let b = text.as_bytes();
    match i.checked_sub(1).map(|j| b[j]) {
        None => false,
        Some(c) if c.is_ascii() => c.is_ascii_alphanumeric() || c == b'_',
        Some(_) => text
            .get(..i)
            .and_then(|t| t.chars().next_back())
            .is_some_and(is_word_char),
    }
}

/// Whether the char at byte `i` is a word char.
fn word_after(text: &str, i: usize) -> bool {
    let b = text.as_bytes();
    match b.get(i) {
        None => false,
        Some(&c) if c.is_ascii() => c.is_ascii_alphanumeric() || c == b'_',
        Some(_) => text
            .get(i..)
            .and_then(|t| t.chars().next())
            .is_some_and(is_word_char),
    }
}

/// How specific a kind is: the higher wins an overlap.
fn rank(entity: Entity) -> u8 {
    match entity {
        Entity::Jwt => 9,
        Entity::ApiKey => 8,
        Entity::Email => 7,
        Entity::Iban => 6,
        Entity::Card => 5,
        Entity::Ipv6 => 4,
        Entity::Ipv4 => 3,
        Entity::Custom(_) => 2,
        Entity::Phone => 1,
    }
}

/// Sorts `out[base..]` by start and resolves overlaps in place.
fn resolve(out: &mut Vec<Span>, base: usize) {
    out[base..].sort_unstable_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut w = base;
    for r in base..out.len() {
        let s = out[r];
        if w > base && s.start < out[w - 1].end {
            let kept = out[w - 1];
            let better =
                (rank(s.entity), s.end - s.start) > (rank(kept.entity), kept.end - kept.start);
            if better {
                out[w - 1] = s;
            }
        } else {
            out[w] = s;
            w += 1;
        }
    }
    out.truncate(w);
}
