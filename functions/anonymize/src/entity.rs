//! What the detectors find: entity kinds and the spans they cover. Shared by
//! the detectors, the operators (which pick defaults by entity) and the policy.

/// A kind of personal or secret data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    /// An email address.
    Email,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// A phone number (international or national format, optional extension).
    Phone,
    /// A payment card number (Luhn-valid, known issuer prefix and length).
    Card,
    /// An IBAN (mod-97 valid, the country's length).
    Iban,
    /// A JSON Web Token.
    Jwt,
    /// An API key or access token of a known shape.
    ApiKey,
    /// A user pattern or dictionary from the policy, by its index
    /// (patterns first, then dictionaries).
    Custom(u16),
}

impl Entity {
    /// The built-in kinds.
    pub const BUILTIN: [Entity; 8] = [
        Entity::Email,
        Entity::Ipv4,
        Entity::Ipv6,
        Entity::Phone,
        Entity::Card,
        Entity::Iban,
        Entity::Jwt,
        Entity::ApiKey,
    ];

    /// The lower-case name used in policies, tags and reports (`"custom"` for
    /// user kinds, whose names live in the detector).
    pub fn name(self) -> &'static str {
        match self {
            Entity::Email => "email",
            Entity::Ipv4 => "ipv4",
            Entity::Ipv6 => "ipv6",
            Entity::Phone => "phone",
            Entity::Card => "card",
            Entity::Iban => "iban",
            Entity::Jwt => "jwt",
            Entity::ApiKey => "api_key",
            Entity::Custom(_) => "custom",
        }
    }

    /// The built-in kind with this name.
    pub fn from_name(name: &str) -> Option<Entity> {
        Entity::BUILTIN.into_iter().find(|e| e.name() == name)
    }
}

/// One finding: `text[start..end]` is an `entity` (byte offsets, on char
/// boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What it is.
    pub entity: Entity,
}
