//! Operators: what replaces a finding or a field. (Stub: being written.)

/// How a value is anonymized.
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    /// Left as it is.
    Keep,
    /// Removed (empty text; a JSON field becomes `null`).
    Redact,
    /// Replaced by the entity's tag, `<EMAIL>`.
    Tag,
    /// Letters and digits masked with `*` except the last `keep_last`.
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
    /// A number replaced by the range it falls in (`30-39` for width 10).
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

/// The keys operators use.
#[derive(Clone)]
pub struct Keys {
    _salt: Vec<u8>,
}

impl Keys {
    /// Keys from the pseudonym salt and, for `Encrypt`, the encryption secret.
    pub fn new(salt: &[u8], _encryption_secret: Option<&[u8]>) -> Keys {
        Keys {
            _salt: salt.to_vec(),
        }
    }
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
}

/// Writes the anonymized form of `value` (an `entity` named `entity_name`)
/// to `out`.
pub fn apply(
    _operator: &Operator,
    _entity_name: &str,
    value: &str,
    _keys: &Keys,
    out: &mut String,
) -> Result<(), OperatorError> {
    out.push_str(value);
    Ok(())
}
