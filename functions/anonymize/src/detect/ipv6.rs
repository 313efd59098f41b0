//! IPv6 addresses: every textual form `std::net::Ipv6Addr` parses
//! (compressed, full, with an embedded IPv4 address), found from a colon.

use std::net::Ipv6Addr;

use super::bytes::next_byte;
use super::{word_after, word_before};
use crate::entity::{Entity, Span};

/// The longest text form: eight groups of four and seven colons, or six
/// groups, six colons and a dotted quad (45).
const MAX_LEN: usize = 45;

fn v6_byte(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':' || c == b'.'
}

pub(super) fn find(text: &str, out: &mut Vec<Span>) {
    let b = text.as_bytes();
    let mut resume = 0;
    let mut from = 0;
    while let Some(colon) = next_byte(b, b':', from) {
        from = colon + 1;
        if colon < resume {
            continue;
        }
        let mut start = colon;
        while start > 0 && v6_byte(b[start - 1]) {
            start -= 1;
        }
        let mut end = colon + 1;
        while end < b.len() && v6_byte(b[end]) {
            end += 1;
        }
        resume = end;
        // A sentence's full stop is not part of the address; nor is a
        // leading dot.
        while end > start && b[end - 1] == b'.' {
            end -= 1;
        }
        while start < end && b[start] == b'.' {
            start += 1;
        }
        // A label's colon before the address ("IP:2001:db8::1").
        if end - start > 2 && b[start] == b':' && b[start + 1] != b':' {
            start += 1;
        }
        // A single trailing colon ("fe80::1:" in "fe80::1: unreachable").
        if end - start > 2 && b[end - 1] == b':' && b[end - 2] != b':' {
            end -= 1;
        }
        if end - start < 3 || end - start > MAX_LEN {
            continue;
        }
        if word_before(text, start) || word_after(text, end) {
            continue;
        }
        let candidate = &text[start..end];
        if candidate == "::" || !candidate.bytes().any(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        // Without `::` an address has eight groups (seven colons), or six
        // and a dotted quad: times and ratios ("12:30") need no parse.
        let colons = candidate.bytes().filter(|&c| c == b':').count();
        let full = colons == 7 || colons == 6 && candidate.contains('.');
        if !full && !candidate.contains("::") {
            continue;
        }
        if candidate.parse::<Ipv6Addr>().is_ok() {
            out.push(Span {
                start,
                end,
                entity: Entity::Ipv6,
            });
        }
    }
}
