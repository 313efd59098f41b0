//! JWTs and API keys, found from their prefixes (`eyJ`, `AKIA`, `ghp_`,
//! `Bearer `, `-----BEGIN `, …).
//!
//! Every secret is, or ends in, a run of token bytes (base64, base64url,
//! RFC 6750 b64token: [`RUN`]) that starts at its prefix or right after
//! `Bearer `, of 15 bytes or more — or, for a PEM block, whose header holds
//! spaces, is the run `-----BEGIN` (10 bytes) before its first space.
//! Such runs are found without looking at most bytes: a run of
//! [`PROBE`] bytes or more covers every `PROBE`-th position, so only those
//! are probed, and words of prose fail the probe or end within a few
//! bytes. The prefixes are matched only where a secret can start in a run:
//! at its start and after a `-`, `.`, `~`, `+`, `/` or `=` (`token=eyJ…`).
//! (An Aho-Corasick automaton over every byte did the same job at several
//! times the cost in WebAssembly, where it has no SIMD prefilter.)

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::word_after;
use crate::entity::{Entity, Span};

/// What a prefix announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `eyJ…`: a JWS or JWE in compact serialization.
    Jwt,
    /// `AKIA`/`ASIA` + 16 upper-case alphanumerics.
    Aws,
    /// `ghp_` etc. + 36 or more alphanumerics.
    GitHub,
    /// `github_pat_` + alphanumerics and underscores.
    GitHubPat,
    /// `glpat-` + 20 or more of `[A-Za-z0-9_.-]`.
    GitLab,
    /// `xox?-` + 10 or more of `[A-Za-z0-9-]`.
    Slack,
    /// `sk_live_` etc. + 16 or more alphanumerics.
    Stripe,
    /// `AIza` + 35 of `[A-Za-z0-9_-]`.
    Google,
    /// `sk-` (OpenAI, Anthropic, …) + 32 or more of `[A-Za-z0-9_-]`.
    SkDash,
    /// `npm_` + 36 alphanumerics.
    Npm,
    /// This project's keys: `ak_<env>_<id>_<secret>`.
    Own,
    /// `-----BEGIN … PRIVATE KEY-----` … `-----END … PRIVATE KEY-----`.
    Pem,
    /// `Bearer <token>`: the token.
    Bearer,
}

/// The prefixes of the run-shaped secrets; at one position the first that
/// matches counts.
const PREFIXES: &[(&[u8], Kind)] = &[
    (b"eyJ", Kind::Jwt),
    (b"AKIA", Kind::Aws),
    (b"ASIA", Kind::Aws),
    (b"AIza", Kind::Google),
    (b"ghp_", Kind::GitHub),
    (b"gho_", Kind::GitHub),
    (b"ghu_", Kind::GitHub),
    (b"ghs_", Kind::GitHub),
    (b"ghr_", Kind::GitHub),
    (b"github_pat_", Kind::GitHubPat),
    (b"glpat-", Kind::GitLab),
    (b"xoxa-", Kind::Slack),
    (b"xoxb-", Kind::Slack),
    (b"xoxp-", Kind::Slack),
    (b"xoxr-", Kind::Slack),
    (b"xoxs-", Kind::Slack),
    (b"sk_live_", Kind::Stripe),
    (b"sk_test_", Kind::Stripe),
    (b"sk-", Kind::SkDash),
    (b"rk_live_", Kind::Stripe),
    (b"rk_test_", Kind::Stripe),
    (b"pk_live_", Kind::Stripe),
    (b"pk_test_", Kind::Stripe),
    (b"npm_", Kind::Npm),
    (b"ak_dev_", Kind::Own),
    (b"ak_staging_", Kind::Own),
    (b"ak_prod_", Kind::Own),
];

/// The [`PREFIXES`] starting with each byte, as a range of indices: they
/// are grouped by first byte (the build fails if they are not), and none is
/// a prefix of another, so their order within a group does not matter.
const BY_FIRST: [(u8, u8); 256] = {
    let mut ranges = [(0u8, 0u8); 256];
    let mut i = 0;
    while i < PREFIXES.len() {
        let c = PREFIXES[i].0[0] as usize;
        let (start, end) = ranges[c];
        assert!(
            start == end || end as usize == i,
            "PREFIXES must be grouped by first byte"
        );
        ranges[c] = if start == end {
            (i as u8, i as u8 + 1)
        } else {
            (start, end + 1)
        };
        i += 1;
    }
    ranges
};

/// The words before a bearer token (a space or more follows).
const BEARER: &[&[u8]] = &[b"Bearer", b"bearer", b"BEARER"];

/// A PEM block's header up to its first space.
const PEM: &[u8] = b"-----BEGIN";

/// The shortest secret found (a Slack token: `xoxb-` and ten characters);
/// shorter texts are not searched.
pub(super) const MIN_LEN: usize = 15;
/// The shortest run of [`RUN`] bytes a secret holds (a PEM header's
/// `-----BEGIN`): runs are probed every `PROBE` bytes.
const PROBE: usize = PEM.len();
/// The longest PEM body taken.
const MAX_PEM: usize = 64 * 1024;
/// The longest JWT taken (a generous bound for headers with certificate
/// chains).
const MAX_JWT: usize = 64 * 1024;

/// A byte of a secret's run: an ASCII letter or digit or one of
/// `- _ . ~ + / =` (in [`CLASS`]).
const RUN: u8 = 1;
/// A run byte after which a secret may start: `- . ~ + / =`.
const SEP: u8 = 2;
/// The first byte of one of [`PREFIXES`].
const FIRST: u8 = 4;
/// A base64url byte: an ASCII letter or digit, `-` or `_`.
const B64URL: u8 = 8;

/// [`RUN`], [`SEP`], [`FIRST`] and [`B64URL`] of every byte.
const CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'_' {
            class[c] = RUN | B64URL;
        } else if b == b'-' {
            class[c] = RUN | SEP | B64URL;
        } else if matches!(b, b'.' | b'~' | b'+' | b'/' | b'=') {
            class[c] = RUN | SEP;
        }
        c += 1;
    }
    let mut i = 0;
    while i < PREFIXES.len() {
        class[PREFIXES[i].0[0] as usize] |= FIRST;
        i += 1;
    }
    class
};

fn class(c: u8) -> u8 {
    CLASS[usize::from(c)]
}

/// Whether a byte before a prefix glues it to a word (then it is no
/// secret's start).
fn glues(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The prefix at `p`, if any: its kind and where the body after it starts.
fn prefix_at(b: &[u8], p: usize) -> Option<(Kind, usize)> {
    let rest = &b[p..];
    let (start, end) = BY_FIRST[usize::from(*rest.first()?)];
    PREFIXES[usize::from(start)..usize::from(end)]
        .iter()
        .find(|(prefix, _)| rest.starts_with(prefix))
        .map(|&(prefix, kind)| (kind, p + prefix.len()))
}

#[derive(Debug, Clone, Default)]
pub(super) struct Secrets;

impl Secrets {
    pub(super) fn find(&self, text: &str, jwt: bool, api_key: bool, out: &mut Vec<Span>) {
        let b = text.as_bytes();
        let mut found = Found {
            text,
            jwt,
            api_key,
            resume: 0,
            out,
        };
        // Runs starting before `i` are done, and `b[i - 1]` is no run byte.
        let mut i = 0;
        while i + PROBE <= b.len() {
            let probe = i + PROBE - 1;
            if class(b[probe]) & RUN == 0 {
                i = probe + 1;
                continue;
            }
            let mut start = probe;
            while start > i && class(b[start - 1]) & RUN != 0 {
                start -= 1;
            }
            // `Bearer` and spaces before the run.
            let mut word_end = start;
            while word_end > 0 && b[word_end - 1] == b' ' {
                word_end -= 1;
            }
            if word_end < start
                && let Some(word_start) = word_end.checked_sub(6)
                && matches!(b[word_start], b'B' | b'b')
                && BEARER.contains(&&b[word_start..word_end])
            {
                found.at(word_start, Kind::Bearer, word_end + 1);
            }
            // The run, its candidates taken on the way (a prefix in a run
            // too short for its secret fails its check), a secret found
            // skipped.
            let mut p = start;
            let mut candidate = true;
            loop {
                if candidate
                    && p < b.len()
                    && class(b[p]) & FIRST != 0
                    && let Some((kind, body)) = prefix_at(b, p)
                {
                    found.at(p, kind, body);
                    if found.resume > p {
                        p = found.resume;
                        candidate = !glues(b[p - 1]);
                        continue;
                    }
                }
                // To the next separator (a candidate follows it) or the end.
                while p < b.len() && class(b[p]) & (RUN | SEP) == RUN {
                    p += 1;
                }
                if p < b.len() && class(b[p]) & SEP != 0 {
                    p += 1;
                    candidate = true;
                } else {
                    break;
                }
            }
            // A PEM header ends its run.
            if b.get(p) == Some(&b' ')
                && let Some(pem) = p.checked_sub(PEM.len())
                && b[p - 1] == b'N'
                && &b[pem..p] == PEM
            {
                found.at(pem, Kind::Pem, p + 1);
            }
            i = p + 1;
        }
    }
}

/// The secrets found so far in one text.
struct Found<'t, 'o> {
    text: &'t str,
    jwt: bool,
    api_key: bool,
    /// Where the last secret ended: candidates before it are inside it.
    resume: usize,
    out: &'o mut Vec<Span>,
}

impl Found<'_, '_> {
    /// The secret whose prefix of `kind` starts at `start`, its body at
    /// `body`, if it is one.
    fn at(&mut self, start: usize, kind: Kind, body: usize) {
        if start < self.resume {
            return;
        }
        let (text, b) = (self.text, self.text.as_bytes());
        let prev = start.checked_sub(1).map(|i| b[i]);
        let glued = prev.is_some_and(glues);
        let found = match kind {
            Kind::Jwt if self.jwt && !glued && !matches!(prev, Some(b'-' | b'.')) => {
                jwt_at(b, start).map(|end| (start, end, Entity::Jwt))
            }
            Kind::Jwt => None,
            _ if !self.api_key || glued => None,
            Kind::Pem if prev == Some(b'-') => None,
            Kind::Pem => pem_at(text, start).map(|end| (start, end, Entity::ApiKey)),
            Kind::Bearer => bearer_at(b, body).map(|(s, e)| (s, e, Entity::ApiKey)),
            Kind::Own => own_at(b, body).map(|end| (start, end, Entity::ApiKey)),
            _ => key_at(b, kind, body).map(|end| (start, end, Entity::ApiKey)),
        };
        if let Some((s, e, entity)) = found
            && !word_after(text, e)
        {
            self.out.push(Span {
                start: s,
                end: e,
                entity,
            });
            self.resume = e;
        }
    }
}

fn b64url(c: u8) -> bool {
    class(c) & B64URL != 0
}

fn run(b: &[u8], from: usize, allowed: impl Fn(u8) -> bool) -> usize {
    let mut i = from;
    while i < b.len() && allowed(b[i]) {
        i += 1;
    }
    i
}

/// Whether a secret body mixes digits, upper and lower case, as random
/// keys do and words do not.
fn mixed(body: &[u8]) -> bool {
    body.iter().any(u8::is_ascii_digit)
        && body.iter().any(u8::is_ascii_uppercase)
        && body.iter().any(u8::is_ascii_lowercase)
}

/// The end of a key of a fixed-prefix shape whose body starts at `body`.
fn key_at(b: &[u8], kind: Kind, body: usize) -> Option<usize> {
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    let (end, ok) = match kind {
        Kind::Aws => {
            let end = run(b, body, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
            (end, end - body == 16)
        }
        Kind::GitHub => {
            let end = run(b, body, alnum);
            (end, (36..=251).contains(&(end - body)))
        }
        Kind::GitHubPat => {
            let end = run(b, body, |c| alnum(c) || c == b'_');
            (end, (40..=255).contains(&(end - body)))
        }
        Kind::GitLab => {
            let mut end = run(b, body, |c| b64url(c) || c == b'.');
            while end > body && b[end - 1] == b'.' {
                end -= 1;
            }
            (end, end - body >= 20)
        }
        Kind::Slack => {
            let end = run(b, body, |c| alnum(c) || c == b'-');
            (
                end,
                end - body >= 10 && b[body..end].iter().any(u8::is_ascii_digit),
            )
        }
        Kind::Stripe => {
            let end = run(b, body, alnum);
            (end, end - body >= 16)
        }
        Kind::Google => {
            let end = run(b, body, b64url);
            (end, end - body == 35)
        }
        Kind::SkDash => {
            let end = run(b, body, b64url);
            (end, end - body >= 32 && mixed(&b[body..end]))
        }
        Kind::Npm => {
            let end = run(b, body, alnum);
            (end, end - body == 36)
        }
        Kind::Jwt | Kind::Own | Kind::Pem | Kind::Bearer => (body, false),
    };
    ok.then_some(end)
}

/// This project's API key after `ak_<env>_`: an id of 1–64 `[a-z0-9-]`,
/// `_`, and a secret of 16 or more base64url characters.
fn own_at(b: &[u8], body: usize) -> Option<usize> {
    let id_end = run(b, body, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'
    });
    if !(1..=64).contains(&(id_end - body)) || b.get(id_end) != Some(&b'_') {
        return None;
    }
    let end = run(b, id_end + 1, b64url);
    (end - id_end > 16).then_some(end)
}

/// A JWT at `start` (on `eyJ`): a JWS (header.payload.signature; the
/// signature empty only when the header says `"alg":"none"`) or a JWE (five
/// segments).
fn jwt_at(b: &[u8], start: usize) -> Option<usize> {
    let mut seg = [(0usize, 0usize); 5];
    let mut n = 0;
    let mut i = start;
    loop {
        let end = run(b, i, b64url);
        seg[n] = (i, end);
        n += 1;
        if n == seg.len() || b.get(end) != Some(&b'.') || end - start > MAX_JWT {
            break;
        }
        i = end + 1;
    }
    let len = |k: usize| seg[k].1 - seg[k].0;
    if len(0) < 16 {
        return None;
    }
    // A JWE: header, encrypted key (empty for "dir"), IV, ciphertext, tag.
    if n == 5 && len(2) >= 8 && len(3) >= 1 && len(4) >= 8 {
        return Some(seg[4].1);
    }
    if n < 3 || len(1) < 2 {
        return None;
    }
    if len(2) >= 16 {
        return Some(seg[2].1);
    }
    // An unsecured JWT ends with its dot; a sentence's full stop does not
    // make one.
    (len(2) == 0 && alg_none(&b[seg[0].0..seg[0].1])).then_some(seg[2].1)
}

fn alg_none(header: &[u8]) -> bool {
    let mut buf = [0u8; 512];
    match URL_SAFE_NO_PAD.decode_slice(header, &mut buf) {
        Ok(len) => {
            let h = &buf[..len];
            h.windows(6).any(|w| w == b"\"none\"") && h.windows(5).any(|w| w == b"\"alg\"")
        }
        Err(_) => false,
    }
}

/// A PEM private key block starting at `start` (on `-----BEGIN `): the
/// whole block up to its `-----END … PRIVATE KEY-----` line, or, without
/// one, the header and the body that follows. The body (base64, and the
/// `Proc-Type:`/`DEK-Info:` headers of legacy encrypted keys) is scanned
/// once, so that the end line is only looked for where the body stops.
fn pem_at(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let label_start = start + "-----BEGIN ".len();
    let label_len = b
        .get(label_start..)?
        .iter()
        .take(48)
        .position(|&c| c == b'-')?;
    let label = &b[label_start..label_start + label_len];
    if !label.ends_with(b"PRIVATE KEY")
        || !label.iter().all(|&c| c.is_ascii_uppercase() || c == b' ')
        || b.get(label_start + label_len..label_start + label_len + 5) != Some(b"-----")
    {
        return None;
    }
    let body = label_start + label_len + 5;
    let mut end = body;
    while end < b.len() && end - body < MAX_PEM {
        let c = b[end];
        let ok = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'+' | b'/' | b'=' | b':' | b',' | b'\n' | b'\r' | b' ' | b'\t'
            )
            || c == b'-' && !b[end..].starts_with(b"-----");
        if !ok {
            break;
        }
        end += 1;
    }
    let end_line = end + "-----END ".len();
    if b[end..].starts_with(b"-----END ")
        && b.get(end_line..end_line + label_len) == Some(label)
        && b.get(end_line + label_len..end_line + label_len + 5) == Some(b"-----")
    {
        return Some(end_line + label_len + 5);
    }
    while end > body && b[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    (end - body >= 64).then_some(end)
}

/// The token of `Bearer <token>` (RFC 6750 b64token) whose text follows
/// `body`: 16 or more characters with letters and digits; not a JWT (found
/// as one).
fn bearer_at(b: &[u8], body: usize) -> Option<(usize, usize)> {
    let start = run(b, body, |c| c == b' ');
    let token =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
    let mut end = run(b, start, token);
    end = run(b, end, |c| c == b'=');
    while end > start && matches!(b[end - 1], b'.' | b'/') {
        end -= 1;
    }
    let t = &b[start..end];
    let ok = t.len() >= 16
        && !t.starts_with(b"eyJ")
        && t.iter().any(u8::is_ascii_digit)
        && t.iter().any(u8::is_ascii_alphabetic);
    ok.then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_prefix_starts_another() {
        for (i, (a, _)) in PREFIXES.iter().enumerate() {
            for (b, _) in &PREFIXES[i + 1..] {
                assert!(!a.starts_with(b) && !b.starts_with(a), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn a_pem_block_is_found_from_its_header() {
        let block = "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----";
        assert_eq!(pem_at(block, 0), Some(block.len()));
        let mut out = Vec::new();
        Secrets.find(block, true, true, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].start, out[0].end), (0, block.len()));
    }
}
