//! Email addresses: a practical RFC 5322 addr-spec found from its `@`.
//!
//! The local part is a dot-atom of `[A-Za-z0-9_%+-]` and letters or digits
//! of any script (the rarer RFC atext characters such as `'`, `/`, `=` or
//! `{` are left out: in prose and logs they delimit far more often than
//! they belong to an address); the domain is two or more labels of letters,
//! digits (any script, for IDNs) and inner hyphens, ending in a top-level
//! domain of at least two letters or an `xn--` label. A trailing dot is
//! not part of the address.

use super::bytes::next_byte;
use crate::entity::{Entity, Span};

const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;
const MAX_LABEL: usize = 63;

pub(super) fn find(text: &str, out: &mut Vec<Span>) {
    let b = text.as_bytes();
    let mut resume = 0;
    let mut from = 0;
    while let Some(at) = next_byte(b, b'@', from) {
        from = at + 1;
        if at < resume {
            continue;
        }
        if let Some((start, end)) = at_sign(text, at) {
            out.push(Span {
                start,
                end,
                entity: Entity::Email,
            });
            resume = end;
        }
    }
}

/// The address around the `@` at `at`, if there is one.
fn at_sign(text: &str, at: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    // Local part, backwards.
    let mut start = at;
    while start > 0 && at - start <= MAX_LOCAL {
        let c = b[start - 1];
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-') {
                start -= 1;
            } else {
                break;
            }
        } else {
            let ch = text[..start].chars().next_back()?;
            if ch.is_alphanumeric() {
                start -= ch.len_utf8();
            } else {
                break;
            }
        }
    }
    if at - start > MAX_LOCAL {
        return None;
    }
    if start > 0 && b[start - 1] == b'@' {
        return None;
    }
    while start < at && b[start] == b'.' {
        start += 1;
    }
    let local = &b[start..at];
    if local.is_empty() || local[local.len() - 1] == b'.' || local.windows(2).any(|w| w == b"..") {
        return None;
    }

    // Domain, forwards.
    let mut end = at + 1;
    while end < b.len() && end - at <= MAX_DOMAIN + 1 {
        let c = b[end];
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() || c == b'.' || c == b'-' {
                end += 1;
            } else {
                break;
            }
        } else {
            let ch = text[end..].chars().next()?;
            if ch.is_alphanumeric() {
                end += ch.len_utf8();
            } else {
                break;
            }
        }
    }
    while end > at + 1 && b[end - 1] == b'.' {
        end -= 1;
    }
    let domain = &text[at + 1..end];
    if domain.is_empty() || domain.len() > MAX_DOMAIN || b.get(end) == Some(&b'@') {
        return None;
    }
    let mut labels = 0;
    let mut tld = "";
    for label in domain.split('.') {
        let lb = label.as_bytes();
        if lb.is_empty() || lb.len() > MAX_LABEL || lb[0] == b'-' || lb[lb.len() - 1] == b'-' {
            return None;
        }
        labels += 1;
        tld = label;
    }
    let tld_ok = tld.starts_with("xn--") && tld.len() > 4
        || tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic);
    (labels >= 2 && tld_ok).then_some((start, end))
}
