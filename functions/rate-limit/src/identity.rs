//! Who a request is: the identifiers a scope keys on, read only from sources
//! the policy trusts, and the keyed hash that stands for them in the store
//! and in logs (the raw value never leaves the request).

use std::net::IpAddr;

use edge_core::pipeline::Principal;
use edge_core::{ClientAddr, Secret};
use hmac::{Hmac, Mac};
use http::request::Parts;
use ipnet::IpNet;
use sha2::Sha256;

use crate::policy::{KeyPart, Section};

/// The client address of every request in a browser: a page serves one
/// client, its own device, so `ip` parts key all of a page's requests alike
/// (the platform gives a page no address of its own).
pub const BROWSER_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The longest identifier part taken from a header; longer values are
/// refused rather than truncated (truncation would merge clients).
pub const MAX_PART_BYTES: usize = 256;

/// What a request says about its caller, read once per request.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The client address (masked to the IPv6 prefix).
    pub ip: Option<IpAddr>,
    /// The verified JWT subject.
    pub sub: Option<String>,
    /// The verified API key id.
    pub api_key_id: Option<String>,
}

/// Why an identifier could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadIdentifier {
    /// The header at fault.
    pub header: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn header_text<'a>(head: &'a Parts, name: &str) -> Result<Option<&'a str>, BadIdentifier> {
    let Some(value) = head.headers.get(name) else {
        return Ok(None);
    };
    let bad = |reason| BadIdentifier {
        header: name.to_owned(),
        reason,
    };
    let text = value
        .to_str()
        .map_err(|_| bad("is not visible ASCII"))?
        .trim();
    if text.len() > MAX_PART_BYTES {
        return Err(bad("is longer than 256 bytes"));
    }
    Ok((!text.is_empty()).then_some(text))
}

/// The boundary of the standalone function: the verified caller as the
/// auth check in front of it sent it, in the policy's trusted headers
/// (`sub_header`, `api_key_id_header`), made the [`Principal`] the limiter
/// reads. In a gateway the auth check leaves the `Principal` itself and
/// these headers are never read.
pub fn principal_from_headers(head: &mut Parts, policy: &Section) -> Result<(), BadIdentifier> {
    let sub = header_text(head, &policy.sub_header)?.map(str::to_owned);
    let api_key_id = header_text(head, &policy.api_key_id_header)?.map(str::to_owned);
    if sub.is_some() || api_key_id.is_some() {
        head.extensions.insert(Principal {
            credential: if sub.is_some() { "jwt" } else { "api_key" },
            sub,
            api_key_id,
            ..Principal::default()
        });
    }
    Ok(())
}

impl Identity {
    /// Reads the identity of a request as `policy` says to: the client
    /// address, and the verified caller the auth check left. With
    /// `client_ip_header` set and the header absent (or empty), the address
    /// is the platform's — the peer that should have set it — so such
    /// requests are limited together, never let through unlimited.
    pub fn of(head: &Parts, policy: &Section) -> Result<Identity, BadIdentifier> {
        let platform = head.extensions.get::<ClientAddr>().map(|c| c.0);
        let ip = match &policy.client_ip_header {
            Some(name) => match header_text(head, name)? {
                // The right-most entry is the one the trusted proxy appended.
                Some(list) => Some(
                    list.rsplit(',')
                        .next()
                        .unwrap_or(list)
                        .trim()
                        .parse::<IpAddr>()
                        .map_err(|_| BadIdentifier {
                            header: name.clone(),
                            reason: "does not end with an IP address",
                        })?,
                ),
                None => platform,
            },
            None => platform,
        };
        let principal = head.extensions.get::<Principal>();
        Ok(Identity {
            ip: ip.map(|ip| mask(ip, policy.ipv6_prefix)),
            sub: principal.and_then(|p| p.sub.clone()),
            api_key_id: principal.and_then(|p| p.api_key_id.clone()),
        })
    }

    /// The identifier for `parts`, e.g. `ip=203.0.113.9|route=POST /login`,
    /// or `None` when the request lacks one of them.
    pub fn identifier(
        &self,
        head: &Parts,
        parts: &[KeyPart],
    ) -> Result<Option<String>, BadIdentifier> {
        compose(parts, |part| {
            Ok(match part {
                KeyPart::Ip => self.ip.map(|ip| ip.to_string()),
                KeyPart::Sub => self.sub.clone(),
                KeyPart::ApiKeyId => self.api_key_id.clone(),
                KeyPart::Route => Some(format!("{} {}", head.method, head.uri.path())),
                KeyPart::Global => Some(String::new()),
                KeyPart::Header(name) => header_text(head, name.as_str())?.map(str::to_owned),
            })
        })
    }
}

/// Joins each part's value as `name=value|name=value`: the one spelling of
/// an identifier, whether read from a request or named by an admin. `None`
/// when some part has no value.
pub fn compose<E>(
    parts: &[KeyPart],
    mut value_of: impl FnMut(&KeyPart) -> Result<Option<String>, E>,
) -> Result<Option<String>, E> {
    let mut out = String::new();
    for part in parts {
        let Some(value) = value_of(part)? else {
            return Ok(None);
        };
        if !out.is_empty() {
            out.push('|');
        }
        out.push_str(&part.name());
        out.push('=');
        out.push_str(&value);
    }
    Ok(Some(out))
}

/// `ip` with IPv6 addresses cut to their first `prefix` bits.
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpNet::new(IpAddr::V6(v6), prefix.min(128))
            .map(|n| n.network())
            .unwrap_or(ip),
        v4 => v4,
    }
}

/// The keyed hash of `identifier` in `scope`: 128 bits of
/// HMAC-SHA-256, hex. Stable for a given key, useless without it.
pub fn keyed_hash(key: &Secret, scope: &str, identifier: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(scope.as_bytes());
    mac.update(&[0]);
    mac.update(identifier.as_bytes());
    mac.finalize().into_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One entry of the allow or deny list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// An address or network.
    Ip(IpNet),
    /// A JWT subject.
    Sub(String),
    /// An API key id.
    ApiKeyId(String),
}

impl ListEntry {
    /// Parses `ip:<address or CIDR>`, `sub:<value>`, `api_key_id:<value>`.
    pub fn parse(text: &str) -> Option<ListEntry> {
        let (kind, value) = text.split_once(':')?;
        if value.is_empty() {
            return None;
        }
        Some(match kind {
            "ip" => ListEntry::Ip(
                value
                    .parse::<IpNet>()
                    .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
                    .ok()?,
            ),
            "sub" => ListEntry::Sub(value.to_owned()),
            "api_key_id" => ListEntry::ApiKeyId(value.to_owned()),
            _ => return None,
        })
    }

    /// Whether the entry names this caller.
    pub fn matches(&self, who: &Identity) -> bool {
        match self {
            ListEntry::Ip(net) => who.ip.is_some_and(|ip| net.contains(&ip)),
            ListEntry::Sub(s) => who.sub.as_deref() == Some(s),
            ListEntry::ApiKeyId(k) => who.api_key_id.as_deref() == Some(k),
        }
    }
}

/// Who a per-key override names: an entry of the list syntax, or a
/// header's exact value (`header:x-tenant=acme`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideMatch {
    /// An address or network, a subject, an API key id.
    Entry(ListEntry),
    /// A header with this value (trimmed, compared exactly).
    Header(http::HeaderName, String),
}

impl OverrideMatch {
    /// Parses the [`ListEntry`] forms and `header:<name>=<value>`.
    pub fn parse(text: &str) -> Option<OverrideMatch> {
        match text.strip_prefix("header:") {
            Some(rest) => {
                let (name, value) = rest.split_once('=')?;
                let ok = !value.is_empty()
                    && value.len() <= MAX_PART_BYTES
                    && value.trim() == value
                    && http::HeaderValue::from_str(value).is_ok_and(|v| v.to_str().is_ok());
                ok.then_some(())?;
                let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
                Some(OverrideMatch::Header(name, value.to_owned()))
            }
            None => ListEntry::parse(text).map(OverrideMatch::Entry),
        }
    }

    /// Whether this names the caller `who` of the request `head`.
    pub fn matches(&self, who: &Identity, head: &Parts) -> bool {
        match self {
            OverrideMatch::Entry(entry) => entry.matches(who),
            OverrideMatch::Header(name, value) => head
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(mask(a, 64), mask(b, 64));
        assert_ne!(mask(a, 128), mask(b, 128));
        let v4: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(mask(v4, 64), v4);
    }

    #[test]
    fn keyed_hashes_are_stable_and_keyed() {
        let k1 = Secret::new("k1");
        let h = keyed_hash(&k1, "API", "ip=203.0.113.9");
        assert_eq!(h.len(), 32);
        assert_eq!(h, keyed_hash(&k1, "API", "ip=203.0.113.9"));
        assert_ne!(h, keyed_hash(&Secret::new("k2"), "API", "ip=203.0.113.9"));
        assert_ne!(h, keyed_hash(&k1, "OTHER", "ip=203.0.113.9"));
        assert!(!h.contains("203"));
    }

    #[test]
    fn list_entries_parse_and_match() {
        let who = Identity {
            ip: Some("10.1.2.3".parse().unwrap()),
            sub: Some("alice".into()),
            api_key_id: None,
        };
        assert!(ListEntry::parse("ip:10.0.0.0/8").unwrap().matches(&who));
        assert!(ListEntry::parse("ip:10.1.2.3").unwrap().matches(&who));
        assert!(!ListEntry::parse("ip:192.168.0.0/16").unwrap().matches(&who));
        assert!(ListEntry::parse("sub:alice").unwrap().matches(&who));
        assert!(!ListEntry::parse("api_key_id:alice").unwrap().matches(&who));
        assert_eq!(ListEntry::parse("ip:nope"), None);
        assert_eq!(ListEntry::parse("user:x"), None);
        assert_eq!(ListEntry::parse("sub:"), None);
    }

    #[test]
    fn override_matches_add_exact_header_values() {
        let who = Identity {
            sub: Some("alice".into()),
            ..Identity::default()
        };
        let (mut head, ()) = http::Request::new(()).into_parts();
        head.headers.insert("x-tenant", " acme ".parse().unwrap());
        let m = |t: &str| OverrideMatch::parse(t).unwrap().matches(&who, &head);
        assert!(m("header:x-tenant=acme"));
        assert!(
            m("header:X-Tenant=acme"),
            "header names are case-insensitive"
        );
        assert!(!m("header:x-tenant=Acme"), "values are not");
        assert!(!m("header:x-other=acme"));
        assert!(m("sub:alice"));
        for bad in [
            "header:x-tenant",
            "header:x-tenant=",
            "header:bad name=a",
            "header:x= a",
            "cookie:a",
        ] {
            assert_eq!(OverrideMatch::parse(bad), None, "{bad}");
        }
    }
}
