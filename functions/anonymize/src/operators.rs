//! Operators: what replaces a finding or a field.
//!
//! Every operator is a pure function of the value, the entity name and the
//! keys, written without floating-point arithmetic, so the output is the same
//! byte for byte natively and on every wasm runtime.
//!
//! # Formats
//!
//! | operator | policy text | output |
//! | --- | --- | --- |
//! | [`Operator::Keep`] | `keep` | the value |
//! | [`Operator::Redact`] | `redact` | nothing |
//! | [`Operator::Tag`] | `tag` | `<EMAIL>`: the entity name, ASCII letters and digits upper-cased, anything else `_` |
//! | [`Operator::Mask`] | `mask`, `mask(2)` | `**** **** **** 1111`: letters and digits (any script) become `*` except the last `keep_last`; everything else is kept. A value with no more than `keep_last` letters and digits is masked completely, so short values are never shown in the clear |
//! | [`Operator::Hash`] | `hash` | 32 lowercase hex digits: the first 16 bytes of HMAC-SHA-256, keyed with the salt bytes, over the UTF-8 of [`normalize`]`(entity, value)` |
//! | [`Operator::TruncateIp`] | `truncate`, `truncate(16,32)` | the network address in canonical text (RFC 5952 for IPv6): `203.0.113.0`, `2001:db8:85a3::`. An IPv4-mapped IPv6 address is cut with the IPv4 prefix and stays mapped: `::ffff:203.0.113.77` → `::ffff:203.0.113.0` |
//! | [`Operator::GeneralizeDate`] | `generalize_date`, `month` | `2024-03` |
//! | [`Operator::GeneralizeNumber`] | `range(10)` | the half-open interval `[30,40)`; see below |
//! | [`Operator::GeneralizeCoordinate`] | `grid(0.01)` | `52.51`, or `52.51,-13.38` for a pair |
//! | [`Operator::Encrypt`] | `encrypt` | `ENC2_` + unpadded base64url of (SIV tag ‖ ciphertext) + `~` |
//!
//! ## Pseudonyms
//!
//! The key is the salt itself (`GDPR_ANONYMIZATION_SALT`'s bytes), used
//! directly as the HMAC-SHA-256 key, so any implementation holding the salt
//! can reproduce a pseudonym: `hmac.new(salt, normalized.encode(),
//! hashlib.sha256).hexdigest()[:32]`. There is deliberately no domain
//! separation by entity: the same text gets the same pseudonym whether it is
//! found in free text or in a JSON field rule (whose entity name may be a
//! rule name such as `"field"`), so records can still be joined. The entity
//! only chooses the [`normalize`]ation, which makes different spellings of
//! one address or number meet.
//!
//! ## Ranges and grids
//!
//! Numbers are read as exact decimals (`-12.5`, `1e3`, `+7`), never as
//! floats. `range(w)` floors the value to a multiple of `w` and writes the
//! half-open interval `[lower,upper)` with as many decimals as `w` has
//! (`w` is read through its shortest decimal text, `0.1` → `"0.1"`): 37 with
//! `range(10)` → `[30,40)`, -3 → `[-10,0)`, 37.25 with `range(0.5)` →
//! `[37.0,37.5)`. `grid(g)` floors a coordinate to a multiple of `g` and
//! writes it with as many decimals as `g` has: 52.51638 with `grid(0.01)` →
//! `52.51`, -13.37777 → `-13.38`. A single coordinate must lie in
//! [-180, 180]; a `lat,lon` pair needs |lat| ≤ 90 and |lon| ≤ 180, and keeps
//! its separator (`52.5, 13.4` → `52.50, 13.40`). Widths and grids may have at
//! most 18 decimals; values whose scaled magnitude exceeds an `i128` are
//! [`OperatorError::NotApplicable`].
//!
//! ## Dates
//!
//! Accepted (month and day validated, leap years included; surrounding
//! whitespace ignored): ISO `2024-03-15`, `2024-03`, ISO timestamps
//! `2024-03-15T12:30:45Z`, `2024-03-15 12:30:45.123+02:00` (the month of the
//! date as written; no time-zone conversion), `2024/03/15`, and the dotted
//! day-first `15.03.2024` / `1.3.2024` (optionally followed by ` 12:30`).
//! Slashed day/month forms (`03/15/2024`, `15/03/2024`) are rejected: whether
//! they are month- or day-first depends on the writer, not the text.
//!
//! ## Reversible tokens
//!
//! AES-256-SIV (RFC 5297, CMAC-based, 64-byte key) with no nonce and no
//! associated data, so it is deterministic: equal values give equal tokens.
//! The 64-byte key is HKDF-SHA-256 (RFC 5869) of the encryption secret, with
//! no salt and the info [`SIV_KEY_INFO`]. Tokens consist of `A-Z a-z 0-9 - _`
//! only, so they survive JSON and text untouched; [`find_tokens`] finds them
//! again and [`decrypt_token`] reverses them. A token reveals the value's
//! length (UTF-8 bytes + 16, base64-encoded) and whether two values are
//! equal, nothing else. The value is encrypted exactly as given (no
//! normalization), so it comes back byte for byte. The cipher is set up once
//! per [`Keys`] (an empty secret counts as no key).
//!
//! ## Errors
//!
//! [`apply`] writes nothing when it fails. IP addresses are parsed by
//! `std::net` (no zone IDs such as `fe80::1%eth0`, no leading-zero octets,
//! no brackets or ports).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::str::FromStr;
use std::sync::{Arc, Mutex, TryLockError};

use aes_siv::KeyInit as _;
use aes_siv::siv::Aes256Siv;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The HKDF info string from which the AES-256-SIV key is derived.
pub const SIV_KEY_INFO: &[u8] = b"edge-anonymize aes-256-siv v1";

/// The prefix of every reversible token.
pub const TOKEN_PREFIX: &str = "ENC2_";
/// The end of every reversible token: a character outside base64url, so a
/// token is found again whatever touches it — a letter, a digit, `-`, `_`
/// or another token.
pub const TOKEN_SUFFIX: char = '~';
/// The prefix of the first token format (`ENC1_` and the base64url, with no
/// end mark), still reversed where it stands apart from other word
/// characters.
pub const LEGACY_TOKEN_PREFIX: &str = "ENC1_";

/// How many letters and digits `mask` leaves visible when the policy says
/// just `mask`.
pub const DEFAULT_MASK_KEEP: usize = 4;

/// The most decimals a range width or grid step may have.
pub const MAX_STEP_DECIMALS: u32 = 18;

/// How a value is anonymized.
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    /// Left as it is.
    Keep,
    /// Removed (empty text; a JSON field becomes `null`).
    Redact,
    /// Replaced by the entity's tag, `<EMAIL>`.
    Tag,
    /// Letters and digits masked with `*` except the last `keep_last`
    /// (all of them when there are no more than `keep_last`).
    Mask {
        /// How many to leave visible at the end.
        keep_last: usize,
    },
    /// A keyed-hash pseudonym (HMAC-SHA-256 under `GDPR_ANONYMIZATION_SALT`).
    Hash,
    /// An IP address cut to its network.
    TruncateIp {
        /// IPv4 prefix length kept (24).
        v4_prefix: u8,
        /// IPv6 prefix length kept (48).
        v6_prefix: u8,
    },
    /// A date or timestamp cut to its month (`2024-03`).
    GeneralizeDate,
    /// A number replaced by the half-open range it falls in (`[30,40)` for
    /// width 10).
    GeneralizeNumber {
        /// The range width.
        width: f64,
    },
    /// A coordinate snapped to a grid of this many degrees.
    GeneralizeCoordinate {
        /// The grid step in degrees.
        grid: f64,
    },
    /// Deterministic, reversible: AES-SIV (RFC 5297) under the encryption key.
    Encrypt,
}

impl Operator {
    /// The operator's name in policies and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Operator::Keep => "keep",
            Operator::Redact => "redact",
            Operator::Tag => "tag",
            Operator::Mask { .. } => "mask",
            Operator::Hash => "hash",
            Operator::TruncateIp { .. } => "truncate",
            Operator::GeneralizeDate => "generalize_date",
            Operator::GeneralizeNumber { .. } => "range",
            Operator::GeneralizeCoordinate { .. } => "grid",
            Operator::Encrypt => "encrypt",
        }
    }

    /// Whether the parameters are usable (prefix lengths in range, widths and
    /// grids positive with at most [`MAX_STEP_DECIMALS`] decimals).
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Operator::TruncateIp {
                v4_prefix,
                v6_prefix,
            } => {
                if v4_prefix > 32 {
                    return Err(format!(
                        "truncate: IPv4 prefix must be 0..=32, got {v4_prefix}"
                    ));
                }
                if v6_prefix > 128 {
                    return Err(format!(
                        "truncate: IPv6 prefix must be 0..=128, got {v6_prefix}"
                    ));
                }
                Ok(())
            }
            Operator::GeneralizeNumber { width } => check_step("range width", width),
            Operator::GeneralizeCoordinate { grid } => check_step("grid", grid),
            _ => Ok(()),
        }
    }

    /// Parses the policy form (`keep`, `mask(2)`, `range(10)`, …); the same
    /// as [`str::parse`].
    pub fn parse(text: &str) -> Result<Operator, String> {
        text.parse()
    }
}

fn check_step(what: &str, step: f64) -> Result<(), String> {
    if !step.is_finite() || step <= 0.0 {
        return Err(format!("{what} must be > 0"));
    }
    if Step::of(step).is_none() {
        return Err(format!(
            "{what} must have at most {MAX_STEP_DECIMALS} decimals and fewer than 38 digits"
        ));
    }
    Ok(())
}

const EXPECTED: &str = "keep, redact, tag, mask, mask(n), hash, truncate, truncate(v4,v6), \
                        generalize_date, month, range(width), grid(step), encrypt";

impl FromStr for Operator {
    type Err = String;

    fn from_str(text: &str) -> Result<Operator, String> {
        let text = text.trim();
        let (name, args) = match text.find('(') {
            Some(open) => {
                let Some(inner) = text[open + 1..].strip_suffix(')') else {
                    return Err(format!("operator `{text}`: missing `)` at the end"));
                };
                let args: Vec<&str> = inner.split(',').map(str::trim).collect();
                (text[..open].trim(), Some(args))
            }
            None => (text, None),
        };
        let lower = name.to_ascii_lowercase();
        let no_args = |op: Operator| match &args {
            None => Ok(op),
            Some(_) => Err(format!("`{lower}` takes no arguments")),
        };
        let op = match lower.as_str() {
            "keep" => no_args(Operator::Keep)?,
            "redact" => no_args(Operator::Redact)?,
            "tag" => no_args(Operator::Tag)?,
            "hash" => no_args(Operator::Hash)?,
            "encrypt" => no_args(Operator::Encrypt)?,
            "generalize_date" | "month" => no_args(Operator::GeneralizeDate)?,
            "mask" => match args.as_deref() {
                None => Operator::Mask {
                    keep_last: DEFAULT_MASK_KEEP,
                },
                Some([n]) => Operator::Mask {
                    keep_last: n.parse().map_err(|_| {
                        format!(
                            "mask: expected how many characters to keep (0, 1, 2, …), got `{n}`"
                        )
                    })?,
                },
                Some(_) => return Err("mask takes one argument: mask(4)".into()),
            },
            "truncate" => match args.as_deref() {
                None => Operator::TruncateIp {
                    v4_prefix: 24,
                    v6_prefix: 48,
                },
                Some([v4, v6]) => Operator::TruncateIp {
                    v4_prefix: v4
                        .parse()
                        .map_err(|_| format!("truncate: IPv4 prefix must be 0..=32, got `{v4}`"))?,
                    v6_prefix: v6.parse().map_err(|_| {
                        format!("truncate: IPv6 prefix must be 0..=128, got `{v6}`")
                    })?,
                },
                Some(_) => {
                    return Err(
                        "truncate takes no arguments or two: truncate(24,48) (IPv4, IPv6 prefix)"
                            .into(),
                    );
                }
            },
            "range" => match args.as_deref() {
                Some([w]) => Operator::GeneralizeNumber {
                    width: parse_step("range width", w)?,
                },
                _ => return Err("range takes one argument, the width: range(10)".into()),
            },
            "grid" => match args.as_deref() {
                Some([g]) => Operator::GeneralizeCoordinate {
                    grid: parse_step("grid", g)?,
                },
                _ => {
                    return Err("grid takes one argument, the step in degrees: grid(0.01)".into());
                }
            },
            _ => {
                return Err(format!(
                    "unknown operator `{name}`; expected one of {EXPECTED}"
                ));
            }
        };
        op.validate()?;
        Ok(op)
    }
}

fn parse_step(what: &str, text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{what} must be a number, got `{text}`"))?;
    check_step(what, value)?;
    Ok(value)
}

impl fmt::Display for Operator {
    /// The policy form, which parses back to the same operator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operator::Mask { keep_last } => write!(f, "mask({keep_last})"),
            Operator::TruncateIp {
                v4_prefix,
                v6_prefix,
            } => write!(f, "truncate({v4_prefix},{v6_prefix})"),
            Operator::GeneralizeNumber { width } => write!(f, "range({width})"),
            Operator::GeneralizeCoordinate { grid } => write!(f, "grid({grid})"),
            other => f.write_str(other.name()),
        }
    }
}

/// The keys operators use: the pseudonym salt and, optionally, the
/// encryption secret. Cheap to clone (shared); `Debug` shows no key material.
#[derive(Clone)]
pub struct Keys {
    inner: Arc<KeysInner>,
}

struct KeysInner {
    /// HMAC-SHA-256 keyed with the salt, cloned per pseudonym.
    hmac: Hmac<Sha256>,
    siv: Option<SivKey>,
}

struct SivKey {
    key: [u8; 64],
    /// The cipher, set up once. `Siv` needs `&mut`; a caller who finds it in
    /// use (another thread) sets up a fresh one rather than waiting.
    cipher: Mutex<Aes256Siv>,
}

impl SivKey {
    fn fresh(&self) -> Aes256Siv {
        siv_cipher(&self.key)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Aes256Siv) -> R) -> R {
        match self.cipher.try_lock() {
            Ok(mut cipher) => f(&mut cipher),
            // Poisoned: its state may be half-way through a message.
            Err(TryLockError::Poisoned(_)) | Err(TryLockError::WouldBlock) => f(&mut self.fresh()),
        }
    }
}

impl Drop for SivKey {
    fn drop(&mut self) {
        self.key.fill(0);
        std::hint::black_box(&self.key);
    }
}

fn siv_cipher(key: &[u8; 64]) -> Aes256Siv {
    Aes256Siv::new_from_slice(key).expect("AES-256-SIV takes a 64-byte key")
}

impl Keys {
    /// Keys from the pseudonym salt and, for `Encrypt`, the encryption secret
    /// (an empty secret counts as none).
    pub fn new(salt: &[u8], encryption_secret: Option<&[u8]>) -> Keys {
        let hmac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(salt)
            .expect("HMAC takes keys of any length");
        let siv = encryption_secret
            .filter(|secret| !secret.is_empty())
            .map(|secret| {
                let key = derive_siv_key(secret);
                SivKey {
                    cipher: Mutex::new(siv_cipher(&key)),
                    key,
                }
            });
        Keys {
            inner: Arc::new(KeysInner { hmac, siv }),
        }
    }

    /// Whether `Encrypt` and [`decrypt_token`] can work.
    pub fn has_encryption_key(&self) -> bool {
        self.inner.siv.is_some()
    }

    fn siv(&self) -> Result<&SivKey, OperatorError> {
        self.inner
            .siv
            .as_ref()
            .ok_or(OperatorError::NoEncryptionKey)
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("salt", &"<redacted>")
            .field(
                "encryption_key",
                &if self.has_encryption_key() {
                    "<redacted>"
                } else {
                    "none"
                },
            )
            .finish()
    }
}

/// The AES-256-SIV key for an encryption secret: HKDF-SHA-256 with no salt
/// and the info [`SIV_KEY_INFO`], 64 bytes (the first half keys S2V/CMAC, the
/// second CTR, as in RFC 5297).
pub fn derive_siv_key(secret: &[u8]) -> [u8; 64] {
    let mut okm = [0u8; 64];
    hkdf::Hkdf::<Sha256>::new(None, secret)
        .expand(SIV_KEY_INFO, &mut okm)
        .expect("64 bytes is a valid HKDF-SHA-256 length");
    okm
}

/// Why an operator could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// The operator does not fit the value (e.g. truncating a non-IP).
    #[error("{operator} does not apply to this value")]
    NotApplicable {
        /// The operator's name.
        operator: &'static str,
    },
    /// `Encrypt` without an encryption key.
    #[error("no encryption key")]
    NoEncryptionKey,
    /// The operator's parameters are out of range (see [`Operator::validate`]).
    #[error("{operator}: invalid parameter")]
    InvalidParameter {
        /// The operator's name.
        operator: &'static str,
    },
    /// Not a token: no `ENC2_` prefix and `~` end (or `ENC1_` prefix), not
    /// base64url, or too short.
    #[error("not an ENC2_ (or ENC1_) token")]
    MalformedToken,
    /// A well-formed token that fails authentication: altered, or made under
    /// another key.
    #[error("token failed authentication (altered, or made under another key)")]
    TokenRejected,
}

/// Writes the anonymized form of `value` (an `entity` named `entity_name`)
/// to `out`. On error nothing is written.
pub fn apply(
    operator: &Operator,
    entity_name: &str,
    value: &str,
    keys: &Keys,
    out: &mut String,
) -> Result<(), OperatorError> {
    let start = out.len();
    let result = apply_inner(operator, entity_name, value, keys, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn apply_inner(
    operator: &Operator,
    entity_name: &str,
    value: &str,
    keys: &Keys,
    out: &mut String,
) -> Result<(), OperatorError> {
    match *operator {
        Operator::Keep => out.push_str(value),
        Operator::Redact => {}
        Operator::Tag => write_tag(entity_name, out),
        Operator::Mask { keep_last } => mask(value, keep_last, out),
        Operator::Hash => write_pseudonym(keys, entity_name, value, out),
        Operator::TruncateIp {
            v4_prefix,
            v6_prefix,
        } => truncate_ip(value, v4_prefix, v6_prefix, out)?,
        Operator::GeneralizeDate => {
            let (year, month) = parse_date(value.trim()).ok_or(OperatorError::NotApplicable {
                operator: "generalize_date",
            })?;
            // Infallible: writing to a String.
            let _ = write!(out, "{year:04}-{month:02}");
        }
        Operator::GeneralizeNumber { width } => generalize_number(value, width, out)?,
        Operator::GeneralizeCoordinate { grid } => generalize_coordinate(value, grid, out)?,
        Operator::Encrypt => encrypt(keys, value, out)?,
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Tag and mask.

fn write_tag(entity_name: &str, out: &mut String) {
    out.push('<');
    out.extend(entity_name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    out.push('>');
}

fn mask(value: &str, keep_last: usize, out: &mut String) {
    if value.is_ascii() {
        mask_ascii(value, keep_last, out);
    } else {
        mask_chars(value, keep_last, out);
    }
}

/// [`mask`] a char at a time: letters and digits of any script.
fn mask_chars(value: &str, keep_last: usize, out: &mut String) {
    let total = value.chars().filter(|c| c.is_alphanumeric()).count();
    let hidden = masked_count(total, keep_last);
    let mut seen = 0;
    out.reserve(value.len());
    for c in value.chars() {
        if c.is_alphanumeric() {
            out.push(if seen < hidden { '*' } else { c });
            seen += 1;
        } else {
            out.push(c);
        }
    }
}

/// How many of `total` letters and digits [`mask`] hides: all but the
/// last `keep_last`, or all of a value that has no more than `keep_last`.
fn masked_count(total: usize, keep_last: usize) -> usize {
    if total > keep_last {
        total - keep_last
    } else {
        total
    }
}

/// [`mask`] of an ASCII value (phone numbers, cards, IBANs), a byte at a
/// time.
fn mask_ascii(value: &str, keep_last: usize, out: &mut String) {
    let total = value.bytes().filter(u8::is_ascii_alphanumeric).count();
    let hidden = masked_count(total, keep_last);
    let mut seen = 0;
    out.reserve(value.len());
    for c in value.bytes() {
        let shown = if c.is_ascii_alphanumeric() {
            seen += 1;
            if seen <= hidden { b'*' } else { c }
        } else {
            c
        };
        out.push(char::from(shown));
    }
}

// ---------------------------------------------------------------------------
// Pseudonyms.

/// The text a pseudonym is computed over, so that one address or number gets
/// one pseudonym however it is written. Typed entities are trimmed of
/// (Unicode) white space first.
///
/// - `email`: the whole address lower-cased (Unicode default case
///   conversion). The local part is case-sensitive by RFC 5321, but no real
///   provider treats it so; nothing else (dots, `+tags`) is changed.
/// - `phone`: a leading `+` (if the number starts with one) and the ASCII
///   digits; `+49 (30) 1234-56` → `+4930123456`. A `00` international prefix
///   is not turned into `+`.
/// - `card`: the ASCII digits.
/// - `iban`: upper-cased, white space removed.
/// - `ipv4`, `ipv6`: the canonical text of the parsed address (RFC 5952,
///   IPv4-mapped addresses as `::ffff:1.2.3.4`); unparsable values as they
///   are (trimmed).
/// - anything else (JWTs, API keys, custom kinds, field rules): as is.
pub fn normalize<'a>(entity_name: &str, value: &'a str) -> Cow<'a, str> {
    match entity_name {
        "email" => {
            let v = value.trim();
            if v.is_ascii() {
                if v.bytes().any(|b| b.is_ascii_uppercase()) {
                    Cow::Owned(v.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(v)
                }
            } else {
                let lower = v.to_lowercase();
                if lower == v {
                    Cow::Borrowed(v)
                } else {
                    Cow::Owned(lower)
                }
            }
        }
        "phone" => {
            let v = value.trim();
            let plus = v.starts_with('+');
            let digits = v.bytes().filter(u8::is_ascii_digit).count();
            if digits + usize::from(plus) == v.len() {
                return Cow::Borrowed(v);
            }
            let mut s = String::with_capacity(digits + 1);
            if plus {
                s.push('+');
            }
            s.extend(v.chars().filter(char::is_ascii_digit));
            Cow::Owned(s)
        }
        "card" => {
            let v = value.trim();
            if v.bytes().all(|b| b.is_ascii_digit()) {
                Cow::Borrowed(v)
            } else {
                Cow::Owned(v.chars().filter(char::is_ascii_digit).collect())
            }
        }
        "iban" => {
            let v = value.trim();
            if v.chars()
                .all(|c| !c.is_whitespace() && !c.is_ascii_lowercase())
            {
                Cow::Borrowed(v)
            } else {
                Cow::Owned(
                    v.chars()
                        .filter(|c| !c.is_whitespace())
                        .map(|c| c.to_ascii_uppercase())
                        .collect(),
                )
            }
        }
        "ipv4" | "ipv6" => {
            let v = value.trim();
            match v.parse::<IpAddr>() {
                Ok(ip) => {
                    let canonical = ip.to_string();
                    if canonical == v {
                        Cow::Borrowed(v)
                    } else {
                        Cow::Owned(canonical)
                    }
                }
                Err(_) => Cow::Borrowed(v),
            }
        }
        _ => Cow::Borrowed(value),
    }
}

/// The pseudonym `Hash` writes: 32 lowercase hex digits, the first 16 bytes
/// of HMAC-SHA-256(salt, [`normalize`]`(entity_name, value)`).
pub fn pseudonym(keys: &Keys, entity_name: &str, value: &str) -> String {
    let mut out = String::with_capacity(32);
    write_pseudonym(keys, entity_name, value, &mut out);
    out
}

fn write_pseudonym(keys: &Keys, entity_name: &str, value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let normalized = normalize(entity_name, value);
    let mut mac = keys.inner.hmac.clone();
    mac.update(normalized.as_bytes());
    let digest = mac.finalize().into_bytes();
    out.reserve(32);
    for &b in &digest[..16] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

// ---------------------------------------------------------------------------
// IP truncation.

fn truncate_ip(
    value: &str,
    v4_prefix: u8,
    v6_prefix: u8,
    out: &mut String,
) -> Result<(), OperatorError> {
    if v4_prefix > 32 || v6_prefix > 128 {
        return Err(OperatorError::InvalidParameter {
            operator: "truncate",
        });
    }
    let value = value.trim();
    // A dotted quad, the common case, without the general parser and
    // formatter.
    if let Some(v4) = dotted_quad(value) {
        write_v4(truncate_v4(v4, v4_prefix), out);
        return Ok(());
    }
    // (An address with a colon is IPv6: parsed as one, not tried as IPv4
    // first.)
    let ip = if value.contains(':') {
        value.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        value.parse::<IpAddr>()
    };
    let ip = ip.map_err(|_| OperatorError::NotApplicable {
        operator: "truncate",
    })?;
    // Infallible: writing to a String.
    let _ = match ip {
        IpAddr::V4(v4) => write!(out, "{}", truncate_v4(v4, v4_prefix)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => write!(out, "{}", truncate_v4(v4, v4_prefix).to_ipv6_mapped()),
            None => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(v6_prefix))
                    .unwrap_or(0);
                write!(out, "{}", Ipv6Addr::from(bits & mask))
            }
        },
    };
    Ok(())
}

/// `text` as an IPv4 address when it is four decimal octets (0–255, no
/// leading zeros: what [`Ipv4Addr`]'s parser takes), else `None`.
fn dotted_quad(text: &str) -> Option<Ipv4Addr> {
    let b = text.as_bytes();
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (k, octet) in octets.iter_mut().enumerate() {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v = 0u16;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
            v = v * 10 + u16::from(b[i] - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || len > 1 && b[start] == b'0' {
            return None;
        }
        *octet = u8::try_from(v).ok()?;
    }
    (i == b.len()).then_some(Ipv4Addr::from(octets))
}

/// Writes `ip` in dotted-quad form (as its `Display` does).
fn write_v4(ip: Ipv4Addr, out: &mut String) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

fn truncate_v4(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(u32::from(ip) & mask)
}

// ---------------------------------------------------------------------------
// Dates.

fn digits_at(b: &[u8], at: usize, len: usize) -> Option<u32> {
    let s = b.get(at..at + len)?;
    s.iter().try_fold(0u32, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn valid_date(year: u32, month: u32, day: u32) -> bool {
    (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)
}

/// `[T ]HH:MM[:SS[.fff]][Z|±HH[:MM]]` after a date (`rest` starts at the
/// separator); `t_allowed` says whether `T` may separate.
fn valid_time_suffix(rest: &[u8], t_allowed: bool) -> bool {
    if rest.is_empty() {
        return true;
    }
    match rest[0] {
        b' ' => {}
        b'T' | b't' if t_allowed => {}
        _ => return false,
    }
    let b = &rest[1..];
    let (Some(hh), Some(mm)) = (digits_at(b, 0, 2), digits_at(b, 3, 2)) else {
        return false;
    };
    if b[2] != b':' || hh > 23 || mm > 59 {
        return false;
    }
    let mut i = 5;
    if b.get(i) == Some(&b':') {
        match digits_at(b, i + 1, 2) {
            Some(ss) if ss <= 60 => i += 3,
            _ => return false,
        }
        if matches!(b.get(i), Some(b'.' | b',')) {
            let n = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
            if n == 0 {
                return false;
            }
            i += 1 + n;
        }
    }
    let zone = &b[i..];
    match zone {
        [] | [b'Z' | b'z'] => true,
        [b'+' | b'-', tail @ ..] => {
            let Some(oh) = digits_at(tail, 0, 2) else {
                return false;
            };
            let om = match &tail[2..] {
                [] => Some(0),
                [b':', m @ ..] if m.len() == 2 => digits_at(m, 0, 2),
                m if m.len() == 2 => digits_at(m, 0, 2),
                _ => None,
            };
            matches!(om, Some(om) if om <= 59) && oh <= 23
        }
        _ => false,
    }
}

/// The (year, month) of an accepted date form (see the module docs).
fn parse_date(s: &str) -> Option<(u32, u32)> {
    let b = s.as_bytes();
    let year = digits_at(b, 0, 4);
    match (year, b.get(4)) {
        (Some(year), Some(b'-')) => {
            let month = digits_at(b, 5, 2)?;
            if b.len() == 7 {
                return (1..=12).contains(&month).then_some((year, month));
            }
            if b.get(7) != Some(&b'-') {
                return None;
            }
            let day = digits_at(b, 8, 2)?;
            (valid_date(year, month, day) && valid_time_suffix(&b[10..], true))
                .then_some((year, month))
        }
        (Some(year), Some(b'/')) => {
            let month = digits_at(b, 5, 2)?;
            let day = digits_at(b, 8, 2)?;
            (b[7] == b'/' && valid_date(year, month, day) && valid_time_suffix(&b[10..], true))
                .then_some((year, month))
        }
        _ => {
            // D.M.YYYY with one- or two-digit day and month.
            let mut parts = [0u32; 2];
            let mut i = 0;
            for part in &mut parts {
                let n = b[i..].iter().take_while(|d| d.is_ascii_digit()).count();
                if !(1..=2).contains(&n) || b.get(i + n) != Some(&b'.') {
                    return None;
                }
                *part = digits_at(b, i, n)?;
                i += n + 1;
            }
            let year = digits_at(b, i, 4)?;
            let [day, month] = parts;
            (valid_date(year, month, day) && valid_time_suffix(&b[i + 4..], false))
                .then_some((year, month))
        }
    }
}

// ---------------------------------------------------------------------------
// Exact decimal arithmetic for ranges and grids.

/// A positive step `m / 10^scale`.
#[derive(Debug, Clone, Copy)]
struct Step {
    m: i128,
    scale: u32,
}

impl Step {
    /// The step as its shortest decimal text says (`0.1` → 1/10); `None` if
    /// not positive and finite or beyond the limits.
    fn of(value: f64) -> Option<Step> {
        if !value.is_finite() || value <= 0.0 {
            return None;
        }
        let mut buf = StackText::<64>::new();
        write!(buf, "{value}").ok()?;
        let text = buf.as_str();
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let scale = u32::try_from(frac.len()).ok()?;
        if scale > MAX_STEP_DECIMALS || int.len() + frac.len() > 38 {
            return None;
        }
        let mut m: i128 = 0;
        for d in int.bytes().chain(frac.bytes()) {
            if !d.is_ascii_digit() {
                return None;
            }
            m = m.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
        }
        (m > 0).then_some(Step { m, scale })
    }
}

/// A fixed-size text buffer, for formatting without allocating.
struct StackText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackText<N> {
    fn new() -> Self {
        StackText {
            buf: [0; N],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > N {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A decimal number's value times `10^scale`, rounded down (toward -∞), and
/// whether that rounding dropped anything. Accepts `[+-]digits[.digits][e[+-]digits]`
/// (digits on at least one side of the point).
fn parse_scaled(text: &str, scale: u32) -> Option<(i128, bool)> {
    let b = text.as_bytes();
    let (negative, mut i) = match b.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int_digits = &b[int_start..i];
    let mut frac_digits: &[u8] = &[];
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        frac_digits = &b[start..i];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    let mut exponent: i64 = 0;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let negative_exp = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let exp_digits = &b[start..i];
        if exp_digits.is_empty() || exp_digits.len() > 6 {
            return None;
        }
        for &d in exp_digits {
            exponent = exponent * 10 + i64::from(d - b'0');
        }
        if negative_exp {
            exponent = -exponent;
        }
    }
    if i != b.len() {
        return None;
    }
    // The digits D (integer then fraction) are worth D * 10^(point - len):
    // scaled, D * 10^shift.
    let len = int_digits.len() + frac_digits.len();
    let len = i64::try_from(len).ok()?;
    let point = i64::try_from(int_digits.len()).ok()? + exponent;
    let shift = point + i64::from(scale) - len;
    let kept = len + shift.min(0); // Digits that stay left of the scaled point.
    let mut magnitude: i128 = 0;
    let mut dropped_nonzero = false;
    for (n, &d) in int_digits.iter().chain(frac_digits).enumerate() {
        let n = i64::try_from(n).ok()?;
        if n < kept {
            if magnitude != 0 || d != b'0' {
                magnitude = magnitude
                    .checked_mul(10)?
                    .checked_add(i128::from(d - b'0'))?;
            }
        } else if d != b'0' {
            dropped_nonzero = true;
        }
    }
    if shift > 0 && magnitude != 0 {
        let factor = 10i128.checked_pow(u32::try_from(shift).ok()?)?;
        magnitude = magnitude.checked_mul(factor)?;
    }
    let value = if negative {
        let v = -magnitude;
        if dropped_nonzero {
            v.checked_sub(1)?
        } else {
            v
        }
    } else {
        magnitude
    };
    Some((value, dropped_nonzero))
}

/// `n / 10^scale` as decimal text with exactly `scale` decimals.
fn write_scaled(out: &mut String, n: i128, scale: u32) {
    if n < 0 {
        out.push('-');
    }
    let magnitude = n.unsigned_abs();
    let unit = 10u128.pow(scale);
    // Infallible: writing to a String.
    let _ = write!(out, "{}", magnitude / unit);
    if scale > 0 {
        let _ = write!(out, ".{:0width$}", magnitude % unit, width = scale as usize);
    }
}

/// The multiple of `step` at or below `value` (both scaled by `10^step.scale`).
fn floor_to(scaled: i128, step: Step) -> Option<i128> {
    scaled.div_euclid(step.m).checked_mul(step.m)
}

fn generalize_number(value: &str, width: f64, out: &mut String) -> Result<(), OperatorError> {
    const OP: &str = "range";
    let step = Step::of(width).ok_or(OperatorError::InvalidParameter { operator: OP })?;
    let not_applicable = OperatorError::NotApplicable { operator: OP };
    let (scaled, _) = parse_scaled(value.trim(), step.scale).ok_or(not_applicable.clone())?;
    let lower = floor_to(scaled, step).ok_or(not_applicable.clone())?;
    let upper = lower.checked_add(step.m).ok_or(not_applicable)?;
    out.push('[');
    write_scaled(out, lower, step.scale);
    out.push(',');
    write_scaled(out, upper, step.scale);
    out.push(')');
    Ok(())
}

/// One coordinate, snapped; `None` if not a number or beyond ±`limit`°.
fn snap_coordinate(text: &str, step: Step, limit: i128) -> Option<i128> {
    let (scaled, inexact) = parse_scaled(text, step.scale)?;
    let bound = limit.checked_mul(10i128.checked_pow(step.scale)?)?;
    let within = scaled >= -bound && (scaled < bound || (scaled == bound && !inexact));
    if !within {
        return None;
    }
    floor_to(scaled, step)
}

fn generalize_coordinate(value: &str, grid: f64, out: &mut String) -> Result<(), OperatorError> {
    const OP: &str = "grid";
    let step = Step::of(grid).ok_or(OperatorError::InvalidParameter { operator: OP })?;
    let not_applicable = OperatorError::NotApplicable { operator: OP };
    let value = value.trim();
    match value.split_once(',') {
        None => {
            let snapped = snap_coordinate(value, step, 180).ok_or(not_applicable)?;
            write_scaled(out, snapped, step.scale);
        }
        Some((lat, lon)) => {
            let lat_text = lat.trim_end();
            let lon_text = lon.trim_start();
            let lat = snap_coordinate(lat_text, step, 90).ok_or(not_applicable.clone())?;
            let lon = snap_coordinate(lon_text, step, 180).ok_or(not_applicable)?;
            let separator = &value[lat_text.len()..value.len() - lon_text.len()];
            write_scaled(out, lat, step.scale);
            out.push_str(separator);
            write_scaled(out, lon, step.scale);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reversible tokens.

const TAG_LEN: usize = 16;
/// Values up to this many bytes are encrypted without allocating.
const STACK_PLAINTEXT: usize = 240;

fn encrypt(keys: &Keys, value: &str, out: &mut String) -> Result<(), OperatorError> {
    let siv = keys.siv()?;
    let plaintext = value.as_bytes();
    let mut stack = [0u8; TAG_LEN + STACK_PLAINTEXT];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if plaintext.len() <= STACK_PLAINTEXT {
        &mut stack[..TAG_LEN + plaintext.len()]
    } else {
        heap.resize(TAG_LEN + plaintext.len(), 0);
        &mut heap
    };
    let (tag_out, body) = buf.split_at_mut(TAG_LEN);
    body.copy_from_slice(plaintext);
    let tag = siv
        .with(|cipher| cipher.encrypt_in_place_detached(std::iter::empty::<&[u8]>(), body))
        // Only fails with more than 126 associated-data items.
        .map_err(|_| OperatorError::InvalidParameter {
            operator: "encrypt",
        })?;
    tag_out.copy_from_slice(&tag);
    out.push_str(TOKEN_PREFIX);
    URL_SAFE_NO_PAD.encode_string(&*buf, out);
    out.push(TOKEN_SUFFIX);
    Ok(())
}

/// The value an `ENC2_…~` token (or an `ENC1_…` one) was made from.
///
/// Errors: [`OperatorError::NoEncryptionKey`] without a key,
/// [`OperatorError::MalformedToken`] for text that is not a token (also
/// non-canonical base64), [`OperatorError::TokenRejected`] for a token that
/// fails authentication (altered, or made under another key).
pub fn decrypt_token(keys: &Keys, token: &str) -> Result<String, OperatorError> {
    let siv = keys.siv()?;
    let payload = match token.strip_prefix(TOKEN_PREFIX) {
        Some(rest) => rest.strip_suffix(TOKEN_SUFFIX),
        None => token.strip_prefix(LEGACY_TOKEN_PREFIX),
    }
    .ok_or(OperatorError::MalformedToken)?;
    let mut bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| OperatorError::MalformedToken)?;
    if bytes.len() < TAG_LEN {
        return Err(OperatorError::MalformedToken);
    }
    let (tag, body) = bytes.split_at_mut(TAG_LEN);
    let tag = aes_siv::Tag::clone_from_slice(tag);
    siv.with(|cipher| cipher.decrypt_in_place_detached(std::iter::empty::<&[u8]>(), body, &tag))
        .map_err(|_| OperatorError::TokenRejected)?;
    bytes.drain(..TAG_LEN);
    String::from_utf8(bytes).map_err(|_| OperatorError::TokenRejected)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether `text` may hold a token of either format (a cheap screen).
pub fn may_hold_tokens(text: &str) -> bool {
    let bytes = text.as_bytes();
    memchr::memmem::find_iter(bytes, b"ENC")
        .any(|i| matches!(bytes.get(i + 3..i + 5), Some(b"2_" | b"1_")))
}

/// The byte ranges of the reversible tokens in `text`, in order.
///
/// A token is `ENC2_`, a run of base64url characters (`A-Z a-z 0-9 - _`)
/// of a length base64 can have, at least 22 (a 16-byte tag), and `~`:
/// found wherever it stands, glued to letters, digits, `-`, `_` or another
/// token (`x-ENC2_…~ENC2_…~y`). The scan resumes after each token, so a
/// token's own characters are never the start of another.
///
/// Tokens of the first format, `ENC1_` and base64url with no end mark, are
/// found where they are unambiguous: not preceded by a base64url
/// character, and taking the whole run of them after the prefix (never
/// matched partially: `ENC1_…` followed directly by more letters, digits,
/// `-` or `_` takes them in too, and then does not decrypt), unless the run
/// holds a new token (`ENC1_ENC2_…~`), which is then taken alone.
pub fn find_tokens(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(found) = memchr::memmem::find(&bytes[at..], b"ENC") {
            let start = at + found;
            let body = start + TOKEN_PREFIX.len();
            at = start + 1;
            let run = |from: usize| {
                bytes.get(from..).map_or(0, |rest| {
                    rest.iter().take_while(|&&b| is_token_byte(b)).count()
                })
            };
            let valid_len = |len: usize| len >= 22 && len % 4 != 1;
            let token = match bytes.get(start + 3..body) {
                Some(b"2_") => {
                    let len = run(body);
                    (valid_len(len) && bytes.get(body + len) == Some(&(TOKEN_SUFFIX as u8)))
                        .then(|| start..body + len + 1)
                }
                Some(b"1_") if start == 0 || !is_token_byte(bytes[start - 1]) => {
                    let len = run(body);
                    // "ENC1_" glued before a new token ("ENC1_ENC2_…~") is
                    // the new token's neighbour, not an old token.
                    let new_inside = bytes.get(body + len) == Some(&(TOKEN_SUFFIX as u8))
                        && memchr::memmem::find(&bytes[body..body + len], TOKEN_PREFIX.as_bytes())
                            .is_some();
                    (valid_len(len) && !new_inside).then(|| start..body + len)
                }
                _ => None,
            };
            if let Some(token) = token {
                at = token.end;
                return Some(token);
            }
        }
        at = bytes.len();
        None
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(op: &Operator, entity: &str, value: &str) -> Result<String, OperatorError> {
        let keys = Keys::new(b"salt", Some(b"secret"));
        let mut out = String::from(">");
        apply(op, entity, value, &keys, &mut out).map(|()| out[1..].to_string())
    }

    proptest::proptest! {
        /// The ASCII mask writes what the general one does.
        #[test]
        fn the_ascii_mask_as_the_general_one(value in "[ -~]{0,24}", keep in 0usize..8) {
            let (mut fast, mut general) = (String::new(), String::new());
            mask_ascii(&value, keep, &mut fast);
            mask_chars(&value, keep, &mut general);
            proptest::prop_assert_eq!(fast, general);
        }

        /// The dotted-quad fast path takes exactly what the standard
        /// parser takes, and writes what `Display` writes.
        #[test]
        fn dotted_quads_as_the_standard_parser(
            text in "[0-9.a]{0,17}|(0|[1-9][0-9]{0,3})(\\.(0|0?[1-9][0-9]{0,2})){3}",
        ) {
            let std = text.parse::<Ipv4Addr>().ok();
            proptest::prop_assert_eq!(dotted_quad(&text), std);
            if let Some(ip) = std {
                let mut out = String::new();
                write_v4(ip, &mut out);
                proptest::prop_assert_eq!(out, ip.to_string());
            }
        }
    }

    #[test]
    fn scaled_parsing_floors_exactly() {
        assert_eq!(parse_scaled("52.51638", 2), Some((5251, true)));
        assert_eq!(parse_scaled("-13.37777", 2), Some((-1338, true)));
        assert_eq!(parse_scaled("-13.37", 2), Some((-1337, false)));
        assert_eq!(parse_scaled("1e3", 0), Some((1000, false)));
        assert_eq!(parse_scaled("1.5e-1", 2), Some((15, false)));
        assert_eq!(parse_scaled("-0", 0), Some((0, false)));
        assert_eq!(parse_scaled(".5", 1), Some((5, false)));
        assert_eq!(parse_scaled("5.", 0), Some((5, false)));
        assert_eq!(parse_scaled("-0.001", 0), Some((-1, true)));
        assert_eq!(parse_scaled("1e99", 0), None);
        for bad in [
            "", "-", ".", "e3", "1e", "1x", " 1", "1.2.3", "--1", "inf", "NaN",
        ] {
            assert_eq!(parse_scaled(bad, 2), None, "{bad}");
        }
    }

    #[test]
    fn steps_come_from_shortest_text() {
        let s = Step::of(0.01).unwrap();
        assert_eq!((s.m, s.scale), (1, 2));
        let s = Step::of(2.5).unwrap();
        assert_eq!((s.m, s.scale), (25, 1));
        let s = Step::of(10.0).unwrap();
        assert_eq!((s.m, s.scale), (10, 0));
        assert!(Step::of(1e-19).is_none());
        assert!(Step::of(0.0).is_none());
        assert!(Step::of(f64::NAN).is_none());
        assert!(Step::of(1e40).is_none());
    }

    #[test]
    fn errors_write_nothing() {
        let op = Operator::TruncateIp {
            v4_prefix: 24,
            v6_prefix: 48,
        };
        let keys = Keys::new(b"salt", None);
        let mut out = String::from("x");
        assert!(apply(&op, "ipv4", "nope", &keys, &mut out).is_err());
        assert!(apply(&Operator::Encrypt, "email", "a@b.c", &keys, &mut out).is_err());
        assert_eq!(out, "x");
    }

    #[test]
    fn dates() {
        let op = Operator::GeneralizeDate;
        for ok in [
            "2024-02-29",
            "2024-02",
            "2024-02-29T23:59:60Z",
            "2024-02-29t00:00",
            "2024-02-29 12:30:45,5-0330",
            "2024-02-29T12:30:45.123456+02",
            "2024/02/29",
            "29.02.2024",
            "29.2.2024 12:30",
        ] {
            assert_eq!(run(&op, "date", ok).unwrap(), "2024-02", "{ok}");
        }
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00",
            "2024-04-31",
            "02/29/2024",
            "29/02/2024",
            "2024-02-29T24:00",
            "2024-02-29T12:60",
            "2024-02-29T12:30+2400",
            "2024-02-29T12:30:",
            "2024-02-29T12:30:00.",
            "2024-02-29X",
            "29.02.24",
            "123.1.2024",
            "20240229",
            "",
        ] {
            assert!(run(&op, "date", bad).is_err(), "{bad}");
        }
    }
}
