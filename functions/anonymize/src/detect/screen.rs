//! A user pattern's screen: the literals every match starts with, looked
//! for before the regex runs.
//!
//! Most strings a pattern is asked about (JSON values especially) hold no
//! match, and for them the regex's own search costs more in setup than in
//! scanning. A pattern whose matches all start with one literal (`EMP-` of
//! `\bEMP-[0-9]{6}\b`) is screened by a search for its first byte (eight
//! bytes at a time in wasm, `detect::bytes`) and a comparison; one with a
//! few literals (`(?i)emp-`) by regex-automata's literal prefilter.

use regex_automata::util::prefilter::Prefilter;
use regex_syntax::hir::literal::Extractor;

use super::bytes::next_byte;

#[derive(Debug, Clone)]
pub(super) enum Screen {
    /// Every match starts with these bytes.
    Literal(Box<[u8]>),
    /// Every match starts where this prefilter finds a candidate.
    Prefilter(Prefilter),
}

impl Screen {
    /// The screen of `pattern`, parsed as [`regex::RegexBuilder`] parses it
    /// (`nest_limit` aside, the defaults), if its matches start with a
    /// finite set of literals.
    pub(super) fn new(pattern: &str, nest_limit: u32) -> Option<Screen> {
        let hir = regex_syntax::ParserBuilder::new()
            .nest_limit(nest_limit)
            .build()
            .parse(pattern)
            .ok()?;
        // (The extractor spells out small classes: `EMP-0` … `EMP-9`, whose
        // common prefix is the literal.)
        let literals = Extractor::new().extract(&hir);
        if let Some(prefix) = literals.longest_common_prefix()
            && prefix.len() >= 2
        {
            return Some(Screen::Literal(prefix.into()));
        }
        Prefilter::from_hir_prefix(regex_automata::MatchKind::LeftmostFirst, &hir)
            .map(Screen::Prefilter)
    }

    /// Whether `text` may hold a match (false: it holds none).
    pub(super) fn may_match(&self, text: &[u8]) -> bool {
        match self {
            Screen::Literal(literal) => {
                let mut from = 0;
                while let Some(i) = next_byte(text, literal[0], from) {
                    if text[i..].starts_with(literal) {
                        return true;
                    }
                    from = i + 1;
                }
                false
            }
            Screen::Prefilter(pre) => pre
                .find(text, regex_automata::Span::from(0..text.len()))
                .is_some(),
        }
    }
}
