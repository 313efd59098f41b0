//! JWTs and API keys, found from their prefixes by one Aho-Corasick
//! automaton.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, BuildError, MatchKind};
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

const PREFIXES: &[(&str, Kind)] = &[
    ("eyJ", Kind::Jwt),
    ("AKIA", Kind::Aws),
    ("ASIA", Kind::Aws),
    ("ghp_", Kind::GitHub),
    ("gho_", Kind::GitHub),
    ("ghu_", Kind::GitHub),
    ("ghs_", Kind::GitHub),
    ("ghr_", Kind::GitHub),
    ("github_pat_", Kind::GitHubPat),
    ("glpat-", Kind::GitLab),
    ("xoxa-", Kind::Slack),
    ("xoxb-", Kind::Slack),
    ("xoxp-", Kind::Slack),
    ("xoxr-", Kind::Slack),
    ("xoxs-", Kind::Slack),
    ("sk_live_", Kind::Stripe),
    ("sk_test_", Kind::Stripe),
    ("rk_live_", Kind::Stripe),
    ("rk_test_", Kind::Stripe),
    ("pk_live_", Kind::Stripe),
    ("pk_test_", Kind::Stripe),
    ("AIza", Kind::Google),
    ("sk-", Kind::SkDash),
    ("npm_", Kind::Npm),
    ("ak_dev_", Kind::Own),
    ("ak_staging_", Kind::Own),
    ("ak_prod_", Kind::Own),
    ("-----BEGIN ", Kind::Pem),
    ("Bearer ", Kind::Bearer),
    ("bearer ", Kind::Bearer),
    ("BEARER ", Kind::Bearer),
];

/// The shortest secret found (a Slack token: `xoxb-` and ten characters);
/// shorter texts are not searched.
pub(super) const MIN_LEN: usize = 15;
/// The longest PEM body taken.
const MAX_PEM: usize = 64 * 1024;
/// The longest JWT taken (a generous bound for headers with certificate
/// chains).
const MAX_JWT: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub(super) struct Secrets {
    prefixes: AhoCorasick,
}

impl Secrets {
    pub(super) fn new() -> Result<Secrets, BuildError> {
        let prefixes = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::DFA))
            // Natively the SIMD prefilter (Teddy) finds candidates several
            // times faster than the DFA; WebAssembly has no SIMD prefilter
            // and its fallback is slower than the DFA alone.
            .prefilter(!cfg!(target_family = "wasm"))
            .build(PREFIXES.iter().map(|(p, _)| p))?;
        Ok(Secrets { prefixes })
    }

    pub(super) fn find(&self, text: &str, jwt: bool, api_key: bool, out: &mut Vec<Span>) {
        let b = text.as_bytes();
        let mut resume = 0;
        for m in self.prefixes.find_iter(text) {
            let start = m.start();
            if start < resume {
                continue;
            }
            let kind = PREFIXES[m.pattern().as_usize()].1;
            let body = m.end();
            let prev = start.checked_sub(1).map(|i| b[i]);
            let glued = prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
            let found = match kind {
                Kind::Jwt if jwt && !glued && !matches!(prev, Some(b'-' | b'.')) => {
                    jwt_at(b, start).map(|end| (start, end, Entity::Jwt))
                }
                Kind::Jwt => None,
                _ if !api_key || glued => None,
                Kind::Pem if prev == Some(b'-') => None,
                Kind::Pem => pem_at(text, start).map(|end| (start, end, Entity::ApiKey)),
                Kind::Bearer => bearer_at(b, body).map(|(s, e)| (s, e, Entity::ApiKey)),
                Kind::Own => own_at(b, body).map(|end| (start, end, Entity::ApiKey)),
                _ => key_at(b, kind, body).map(|end| (start, end, Entity::ApiKey)),
            };
            if let Some((s, e, entity)) = found
                && !word_after(text, e)
            {
                out.push(Span {
                    start: s,
                    end: e,
                    entity,
                });
                resume = e;
            }
        }
    }
}

fn b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
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
