//! Spin's `allowed_outbound_hosts`, seen from the guest.
//!
//! A Spin component may reach only the hosts its manifest lists; anything
//! else fails per request with `HttpRequestDenied`, which a function can
//! only answer with a bare 502. A component cannot read that list, so
//! spin.toml mirrors it in a component variable ([`VARIABLE`], the entries
//! joined by commas) that the Spin glue reads into the
//! [`Config`](crate::Config) ([`Config::with_allowed_outbound_hosts`]);
//! each function then checks the URLs its policy names at start
//! ([`Config::check_outbound`]) and fails with the field named instead.
//! Workers and browsers have no such list: there the config has none and
//! every URL passes.
//!
//! [`AllowedHosts`] parses and matches Spin's syntax the way the project's
//! wasmtime host does (`wasm-tests/src/host/outbound.rs`), so that guest
//! and host agree: `scheme://host[:port]`, where
//!
//! - the scheme is a name (`http`, `https` …) or `*` (any; a port is then
//!   needed);
//! - the host is a name (exact, case-insensitive), `*.domain` (any
//!   subdomain, not the domain itself), `*` (any), an address or a network
//!   (`127.0.0.1`, `[::1]`, `10.0.0.0/8`), or `self` (the app itself,
//!   which absolute URLs never are);
//! - the port is a number, `start..end` (end excluded), `*` (any), or left
//!   out: the scheme's well-known one (80 for `http`, 443 for `https`), and
//!   a URL without a port has its scheme's;
//! - there is no path (a trailing `/` is tolerated).
//!
//! [`Config::with_allowed_outbound_hosts`]: crate::Config::with_allowed_outbound_hosts
//! [`Config::check_outbound`]: crate::Config::check_outbound

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The Spin component variable mirroring the component's
/// `allowed_outbound_hosts`: its entries (templates and all) joined by
/// commas, e.g. `"{{ gateway_origin_host }},{{ auth_check_idp_host }}"`.
pub const VARIABLE: &str = "allowed_outbound_hosts";

/// Why an `allowed_outbound_hosts` entry is not one Spin takes. The
/// message names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AllowedHostsError(String);

/// A component's `allowed_outbound_hosts`, parsed. The default allows
/// nothing, as a Spin component without the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    rules: Vec<AllowedHost>,
}

impl AllowedHosts {
    /// Parses entries in Spin's syntax: `"https://api.example.com"`,
    /// `"https://*.example.com"`, `"http://127.0.0.1:*"`, `"*://*:*"`,
    /// `"http://10.0.0.0/8:80"`, `"http://localhost:3000..3010"`. Fails on
    /// what Spin rejects: no scheme, a path, a wildcard inside a name, no
    /// port for a scheme without a well-known one, an empty entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowedHostsError> {
        if let [only] = entries
            && only.as_ref().trim() == "insecure:allow-all"
        {
            return Err(AllowedHostsError(
                "'insecure:allow-all' is not allowed: use '*://*:*' to allow everything".into(),
            ));
        }
        let rules = entries
            .iter()
            .map(|entry| AllowedHost::parse(entry.as_ref()).map_err(AllowedHostsError))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Parses the [`VARIABLE`]'s form: entries separated by commas (blank
    /// around them ignored); an empty text is the empty list.
    pub fn parse_list(text: &str) -> Result<Self, AllowedHostsError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let entries: Vec<&str> = text.split(',').map(str::trim).collect();
        Self::parse(&entries)
    }

    /// Whether a request to `scheme://host[:port]` may go out; `port`
    /// `None` is the scheme's well-known one. Scheme and host are compared
    /// case-insensitively.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme = scheme.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        let port = port.or_else(|| well_known_port(&scheme));
        self.rules
            .iter()
            .any(|rule| rule.allows(&scheme, &host, port))
    }

    /// Whether a request to the absolute URL `url` may go out. A URL
    /// without a scheme or a host (Spin's self-requests) is not.
    pub fn allows_url(&self, url: &str) -> bool {
        let Ok(uri) = url.parse::<http::Uri>() else {
            return false;
        };
        match (uri.scheme_str(), uri.host()) {
            (Some(scheme), Some(host)) => self.allows(scheme, host, uri.port_u16()),
            _ => false,
        }
    }

    /// The entries, as written.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.original.as_str())
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl FromStr for AllowedHosts {
    type Err = AllowedHostsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_list(s)
    }
}

/// The entries joined by `, `, or `none`.
impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rules.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&self.entries().collect::<Vec<_>>().join(", "))
    }
}

/// `scheme://host[:port]` of an absolute URL, without credentials, path or
/// query: what an allow-list judges, and what an error may show. `None`
/// when `url` is not absolute.
pub fn url_authority(url: &str) -> Option<String> {
    let uri = url.parse::<http::Uri>().ok()?;
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?.as_str();
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    Some(format!("{}://{authority}", scheme.to_ascii_lowercase()))
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    original: String,
    /// `None` for `*`.
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`, kept as `.example.com`.
    Subdomain(String),
    Name(String),
    /// An address or a network: `127.0.0.1`, `10.0.0.0/8`, `[::1]`.
    Network(IpAddr, u8),
    /// Spin's `self`: relative URLs to the app itself; no absolute URL.
    ToSelf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// One port, or Spin's `start..end` (end excluded).
    Range(u16, u16),
}

impl AllowedHost {
    fn parse(entry: &str) -> Result<Self, String> {
        let url = entry.trim();
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!(
                "allowed outbound host {url:?} has no scheme: use <scheme>://<host>[:<port>] \
                 ('*' allowed in each, '*://*:*' allows everything)"
            )
        })?;
        let (host, port) = split_host_port(rest);
        let port = match port.split_once('/') {
            Some((_, path)) if !path.is_empty() => {
                return Err(format!(
                    "allowed outbound host {url:?} has a path, which is not allowed"
                ));
            }
            Some((port, _)) => port,
            None => port,
        };
        let host = host.strip_suffix('/').unwrap_or(host);
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(s.to_ascii_lowercase())
            }
            s => {
                return Err(format!(
                    "allowed outbound host {url:?}: scheme {s:?} is not alphabetic"
                ));
            }
        };
        let port = match port {
            "" => {
                let known = scheme.as_deref().and_then(well_known_port).ok_or_else(|| {
                    format!(
                        "allowed outbound host {url:?} has no port and its scheme has no \
                         well-known one"
                    )
                })?;
                PortPattern::Range(known, known.saturating_add(1))
            }
            "*" => PortPattern::Any,
            range => {
                parse_ports(range).map_err(|e| format!("allowed outbound host {url:?}: {e}"))?
            }
        };
        let host =
            HostPattern::parse(host).map_err(|e| format!("allowed outbound host {url:?}: {e}"))?;
        Ok(Self {
            original: url.to_owned(),
            scheme,
            host,
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.host.allows(host)
            && match (&self.port, port) {
                (PortPattern::Any, _) => true,
                (PortPattern::Range(start, end), Some(port)) => (*start..*end).contains(&port),
                (PortPattern::Range(..), None) => false,
            }
    }
}

/// `host:port` → (`host`, `port`), keeping `[v6]` and `a.b.c.d/n` whole.
fn split_host_port(rest: &str) -> (&str, &str) {
    let host_end = if rest.starts_with('[') {
        rest.find(']').map_or(0, |end| end + 1)
    } else {
        0
    };
    match rest[host_end..].rfind(':') {
        Some(colon) => (&rest[..host_end + colon], &rest[host_end + colon + 1..]),
        None => (rest, ""),
    }
}

fn parse_ports(ports: &str) -> Result<PortPattern, String> {
    let number = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("port {ports:?} is not a number or a range start..end"))
    };
    match ports.split_once("..") {
        Some((start, end)) => Ok(PortPattern::Range(number(start)?, number(end)?)),
        None => {
            let port = number(ports)?;
            Ok(PortPattern::Range(port, port.saturating_add(1)))
        }
    }
}

impl HostPattern {
    fn parse(host: &str) -> Result<Self, String> {
        let host = host.trim().to_ascii_lowercase();
        if host == "*" {
            return Ok(Self::Any);
        }
        if host == "self" || host == "self.alt" {
            return Ok(Self::ToSelf);
        }
        if host.starts_with('{') {
            return Err("host lists are not supported (nor are they by Spin)".into());
        }
        if let Some(network) = parse_network(&host)? {
            return Ok(network);
        }
        let wildcard = "wildcards are allowed only as a prefix (*.example.com)";
        if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                return Err(wildcard.into());
            }
            return Ok(Self::Subdomain(format!(".{domain}")));
        }
        if host.contains('*') {
            return Err(wildcard.into());
        }
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        Ok(Self::Name(host))
    }

    fn allows(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Subdomain(suffix) => host.ends_with(suffix.as_str()),
            Self::Name(name) => host == name,
            Self::Network(network, prefix) => {
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                bare.parse::<IpAddr>()
                    .is_ok_and(|ip| in_network(ip, *network, *prefix))
            }
            Self::ToSelf => false,
        }
    }
}

/// `127.0.0.1`, `10.0.0.0/8`, `[::1]`, `fd00::/8` → a network; a name → `None`.
fn parse_network(host: &str) -> Result<Option<HostPattern>, String> {
    let (addr, prefix) = match host.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (host, None),
    };
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = addr.parse::<IpAddr>() else {
        if prefix.is_some() {
            return Err("hosts must not contain paths".into());
        }
        return Ok(None);
    };
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(|| format!("network prefix {p:?} is not in 0..={bits}"))?,
        None => bits,
    };
    Ok(Some(HostPattern::Network(ip, prefix)))
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    let (ip, network, bits) = match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(a.to_bits()), u128::from(b.to_bits()), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits(), 128),
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u128::from(a.to_bits()), u128::from(b.to_bits()), 32),
            None => return false,
        },
        (IpAddr::V4(_), IpAddr::V6(_)) => return false,
    };
    let shift = bits - u32::from(prefix);
    shift >= bits || (ip >> shift) == (network >> shift)
}

/// The port a scheme's URLs use when they name none (Spin's list).
fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], url: &str) -> bool {
        AllowedHosts::parse(entries).unwrap().allows_url(url)
    }

    #[test]
    fn exact_hosts_need_scheme_host_and_port_to_match() {
        let entry = ["http://127.0.0.1:8080"];
        assert!(allows(&entry, "http://127.0.0.1:8080/jwks"));
        assert!(!allows(&entry, "http://127.0.0.1:8081/jwks"));
        assert!(!allows(&entry, "https://127.0.0.1:8080/jwks"));
        assert!(!allows(&entry, "http://127.0.0.2:8080/"));
        assert!(!allows(&entry, "http://localhost:8080/"));
        let api = ["https://api.example.com"];
        assert!(allows(&api, "https://api.example.com/v1"));
        assert!(!allows(&api, "https://x.example.com/"));
        assert!(!allows(&api, "https://api.example.com.evil.test/"));
    }

    #[test]
    fn case_does_not_matter_in_scheme_or_host() {
        assert!(allows(
            &["http://LocalHost:3000"],
            "http://localhost:3000/x"
        ));
        assert!(allows(
            &["HTTPS://API.example.com"],
            "https://api.EXAMPLE.com/"
        ));
        assert!(allows(
            &["https://api.example.com"],
            "HTTPS://Api.Example.Com/"
        ));
        assert!(allows(&["https://*.Example.com"], "https://a.example.COM/"));
        assert!(
            AllowedHosts::parse(&["https://api.example.com"])
                .unwrap()
                .allows("HTTPS", "API.example.com", None)
        );
    }

    #[test]
    fn a_missing_port_means_the_schemes_default() {
        let https = ["https://example.com"];
        assert!(allows(&https, "https://example.com/a"));
        assert!(allows(&https, "https://example.com:443/a"));
        assert!(!allows(&https, "https://example.com:8443/a"));
        assert!(!allows(&https, "http://example.com/a"));
        let http = ["http://example.com/"];
        assert!(allows(&http, "http://example.com/"));
        assert!(allows(&http, "http://example.com:80/"));
        assert!(!allows(&http, "http://example.com:8080/"));
        // An explicit default port is the same as none.
        assert!(allows(&["https://example.com:443"], "https://example.com/"));
        assert!(allows(&["http://example.com:80"], "http://example.com/"));
        // A port other than the default needs naming.
        assert!(allows(
            &["https://x.example:8443"],
            "https://x.example:8443/"
        ));
        assert!(!allows(&["https://x.example:8443"], "https://x.example/"));
        // A wildcard scheme has no default port; an unknown scheme neither.
        assert!(AllowedHosts::parse(&["*://example.com"]).is_err());
        assert!(AllowedHosts::parse(&["foo://example.com"]).is_err());
        assert!(AllowedHosts::parse(&["foo://example.com:9"]).is_ok());
    }

    #[test]
    fn wildcards_cover_scheme_host_port_and_subdomains() {
        assert!(allows(&["http://127.0.0.1:*"], "http://127.0.0.1:39123/"));
        assert!(allows(&["http://127.0.0.1:*"], "http://127.0.0.1/"));
        assert!(!allows(&["http://127.0.0.1:*"], "https://127.0.0.1:39123/"));
        assert!(allows(&["*://*:*"], "https://anything.example:1/"));
        assert!(allows(&["*://*:*"], "http://[::1]:8080/"));
        assert!(allows(&["https://*"], "https://anything.example/"));
        assert!(!allows(&["https://*"], "https://anything.example:8443/"));
        let sub = ["https://*.example.com"];
        assert!(allows(&sub, "https://api.example.com/"));
        assert!(allows(&sub, "https://a.b.example.com/"));
        assert!(!allows(&sub, "https://example.com/"));
        assert!(!allows(&sub, "https://badexample.com/"));
        assert!(allows(&["*://example.com:80"], "http://example.com/"));
        assert!(allows(&["*://example.com:80"], "https://example.com:80/"));
        assert!(!allows(&["*://example.com:80"], "https://example.com/"));
    }

    #[test]
    fn networks_and_port_ranges() {
        let net = ["http://10.0.0.0/8:80"];
        assert!(allows(&net, "http://10.1.2.3/"));
        assert!(!allows(&net, "http://11.1.2.3/"));
        assert!(!allows(&net, "http://ten.example/"));
        assert!(allows(&["http://[::1]:8080"], "http://[::1]:8080/"));
        assert!(allows(&["http://[fd00::]/8:*"], "http://[fd12::1]:9/"));
        let range = ["http://127.0.0.1:3000..3002"];
        assert!(allows(&range, "http://127.0.0.1:3000/"));
        assert!(allows(&range, "http://127.0.0.1:3001/"));
        assert!(!allows(&range, "http://127.0.0.1:3002/"));
    }

    #[test]
    fn nothing_is_allowed_by_default_nor_self_or_relative_urls() {
        assert!(!AllowedHosts::default().allows_url("http://127.0.0.1/"));
        assert!(!allows(&["http://self"], "http://self/"));
        assert!(!allows(&["*://*:*"], "/relative"));
        assert!(!allows(&["*://*:*"], "not a url"));
    }

    #[test]
    fn what_spin_rejects_is_rejected() {
        for bad in [
            "127.0.0.1:8080",
            "*",
            "",
            "insecure:allow-all",
            "http://example.com/path",
            "http://ex*ample.com",
            "http://*.*.example.com",
            "http://example.com:port",
            "http://example.com:1..x",
            "http://10.0.0.0/33:80",
            "ht-tp://example.com",
        ] {
            assert!(AllowedHosts::parse(&[bad]).is_err(), "{bad:?} was accepted");
        }
        let err = AllowedHosts::parse(&["https://x.example/v1"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"https://x.example/v1\"") && err.contains("path"),
            "{err}"
        );
    }

    #[test]
    fn the_variables_list_form() {
        let hosts = AllowedHosts::parse_list(
            "https://api.example.com, http://127.0.0.1:8900,https://alerts.example.com",
        )
        .unwrap();
        assert_eq!(
            hosts.entries().collect::<Vec<_>>(),
            [
                "https://api.example.com",
                "http://127.0.0.1:8900",
                "https://alerts.example.com"
            ]
        );
        assert!(hosts.allows_url("http://127.0.0.1:8900/.well-known/openid-configuration"));
        assert!(!hosts.allows_url("http://127.0.0.1:8901/"));
        assert_eq!(
            hosts.to_string(),
            "https://api.example.com, http://127.0.0.1:8900, https://alerts.example.com"
        );
        let empty: AllowedHosts = "  ".parse().unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.to_string(), "none");
        // An empty entry (an application variable left empty) is refused,
        // as Spin refuses it.
        assert!(AllowedHosts::parse_list("https://a.example,,https://b.example").is_err());
        assert!(AllowedHosts::parse_list("https://a.example,").is_err());
    }

    #[test]
    fn url_authorities_drop_credentials_paths_and_queries() {
        assert_eq!(
            url_authority("https://u:p@x.example:8443/a?token=1").as_deref(),
            Some("https://x.example:8443")
        );
        assert_eq!(
            url_authority("HTTP://api.example.com").as_deref(),
            Some("http://api.example.com")
        );
        assert_eq!(url_authority("/relative"), None);
    }
}
