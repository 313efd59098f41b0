//! The headers of a forwarded exchange: what leaves this side, what is
//! added for the origin (who the client is, which trace this is), and what
//! is never passed on (hop-by-hop headers, the platform's own headers).

use std::fmt;
use std::net::IpAddr;

use http::header::{CONNECTION, FORWARDED, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::function::CORRELATION_HEADER;
use crate::model::ClientAddr;
use crate::platform::Random;

/// Headers a proxy must not pass on (RFC 9110 §7.6.1) plus `host`, which
/// the outbound client sets from the origin's URL. Headers named in the
/// `Connection` header's value are hop-by-hop too (see [`request_headers`]).
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Name prefixes of the platforms' own request headers, never forwarded:
/// Spin's routing headers (`spin-full-url`, `spin-path-info`,
/// `spin-client-addr`, …) and Cloudflare's (`cf-connecting-ip`, `cf-ray`,
/// `cf-ipcountry`, `cf-visitor`, `cf-worker`, …). They describe this hop;
/// the origin learns the client from `Forwarded` and `X-Forwarded-For`.
pub const PLATFORM_PREFIXES: &[&str] = &["spin-", "cf-"];

/// Single headers with the client's address that a platform or a CDN sets
/// and an origin might trust: dropped, so that the only client address the
/// origin gets is the one this side vouches for (`Forwarded`,
/// `X-Forwarded-For`). A client can send them too, which is the reason.
pub const CLIENT_ADDRESS_HEADERS: &[&str] = &["x-real-ip", "true-client-ip"];

/// The W3C Trace Context headers.
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// Headers this side writes itself: an incoming copy is replaced.
const REWRITTEN: &[&str] = &[
    "forwarded",
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    TRACEPARENT,
    TRACESTATE,
    CORRELATION_HEADER,
];

/// The names listed in `Connection` (lower case): hop-by-hop for this
/// message (RFC 9110 §7.6.1).
fn connection_named(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Whether `name` stays on this side of a forwarded request.
fn never_forwarded(name: &str, named: &[String]) -> bool {
    HOP_BY_HOP.contains(&name)
        || CLIENT_ADDRESS_HEADERS.contains(&name)
        || PLATFORM_PREFIXES.iter().any(|p| name.starts_with(p))
        || named.iter().any(|n| n == name)
}

/// The headers to send to the origin for a request with head `parts`:
///
/// - end-to-end headers as they came, without hop-by-hop headers (also those
///   the `Connection` header names), the platforms' own ([`PLATFORM_PREFIXES`])
///   and [`CLIENT_ADDRESS_HEADERS`];
/// - `Forwarded` (RFC 7239) and `X-Forwarded-For` with the client (the
///   [`ClientAddr`] extension) appended to what came; `X-Forwarded-For` is
///   not appended to when its last entry already names the client
///   (Cloudflare's edge appends it before a worker runs);
/// - `X-Forwarded-Proto` and `X-Forwarded-Host` set to what the client
///   used (dropped when that is unknown: never a client's word);
/// - `traceparent` continued with a new parent id (a valid incoming one) or
///   fresh; `tracestate` passed only with a valid incoming `traceparent`;
/// - `x-correlation-id`: `correlation_id`.
pub fn request_headers(
    parts: &http::request::Parts,
    correlation_id: &str,
    random: &dyn Random,
) -> HeaderMap {
    let named = connection_named(&parts.headers);
    let mut out = HeaderMap::new();
    for (name, value) in &parts.headers {
        let name_str = name.as_str();
        if !never_forwarded(name_str, &named) && !REWRITTEN.contains(&name_str) {
            out.append(name, value.clone());
        }
    }
    let client = parts.extensions.get::<ClientAddr>().map(|c| c.0);
    let (proto, host) = proto_and_host(parts);

    let mut element = format!("for={}", forwarded_node(client));
    if let Some(proto) = &proto {
        element.push_str(";proto=");
        element.push_str(proto);
    }
    if let Some(host) = &host {
        element.push_str(";host=");
        element.push_str(&forwarded_value(host));
    }
    set_list(&mut out, FORWARDED, &parts.headers, Some(element));
    let xff = client.map(|ip| ip.to_string());
    let last = joined(&parts.headers, X_FORWARDED_FOR)
        .and_then(|list| list.rsplit(',').next().map(|s| s.trim().to_owned()));
    let xff = xff.filter(|ip| last.as_deref() != Some(ip.as_str()));
    set_list(
        &mut out,
        HeaderName::from_static(X_FORWARDED_FOR),
        &parts.headers,
        xff,
    );
    set(&mut out, X_FORWARDED_PROTO, proto.as_deref());
    set(&mut out, X_FORWARDED_HOST, host.as_deref());

    let incoming = parts.headers.get_all(TRACEPARENT);
    let mut values = incoming.iter();
    // Two traceparent headers make neither valid (W3C Trace Context §3.2).
    let parent = match (values.next(), values.next()) {
        (Some(one), None) => one.to_str().ok().and_then(TraceParent::parse),
        _ => None,
    };
    let trace = match parent {
        Some(parent) => parent.child(random),
        None => TraceParent::fresh(random),
    };
    if let Some(trace) = trace {
        set(&mut out, TRACEPARENT, Some(&trace.to_string()));
        if parent.is_some() {
            for value in parts.headers.get_all(TRACESTATE) {
                out.append(TRACESTATE, value.clone());
            }
        }
    }
    set(&mut out, CORRELATION_HEADER, Some(correlation_id));
    out
}

/// Removes from an origin's answer what must not reach the client: the
/// hop-by-hop headers and those its `Connection` header names.
pub fn response_headers(headers: &mut HeaderMap) {
    let named = connection_named(headers);
    // One pass over what came (a handful of headers), not a lookup per
    // hop-by-hop name.
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            HOP_BY_HOP.contains(&name.as_str()) || named.iter().any(|n| n == name.as_str())
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Sets `name` to `value`, or removes it when `value` is `None` or not a
/// valid header value.
fn set(out: &mut HeaderMap, name: &'static str, value: Option<&str>) {
    let name = HeaderName::from_static(name);
    match value.and_then(|v| HeaderValue::from_str(v).ok()) {
        Some(value) => {
            out.insert(name, value);
        }
        None => {
            out.remove(name);
        }
    }
}

/// The values of list header `name`, joined with `, `.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Sets list header `name` to the incoming values with `element` appended,
/// as one line.
fn set_list(out: &mut HeaderMap, name: HeaderName, incoming: &HeaderMap, element: Option<String>) {
    let value = match (joined(incoming, name.as_str()), element) {
        (Some(list), Some(element)) => Some(format!("{list}, {element}")),
        (list, element) => list.or(element),
    };
    match value.and_then(|v| HeaderValue::from_str(&v).ok()) {
        Some(value) => {
            out.insert(name, value);
        }
        None => {
            out.remove(name);
        }
    }
}

/// The scheme and host the client used: from the request's URL when it is
/// absolute (Workers, browsers), else the `Host` header, else Spin's
/// `spin-full-url` (Spin's glue passes the path alone).
fn proto_and_host(parts: &http::request::Parts) -> (Option<String>, Option<String>) {
    let spin_url = parts
        .headers
        .get("spin-full-url")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<http::Uri>().ok());
    let proto = parts
        .uri
        .scheme_str()
        .or_else(|| spin_url.as_ref().and_then(http::Uri::scheme_str))
        .map(str::to_ascii_lowercase)
        .filter(|s| s == "http" || s == "https");
    let authority = |uri: &http::Uri| {
        let host = uri.host()?;
        Some(match uri.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        })
    };
    let host = authority(&parts.uri)
        .or_else(|| {
            let host = parts.headers.get(HOST)?.to_str().ok()?.trim();
            (!host.is_empty()).then(|| host.to_owned())
        })
        .or_else(|| spin_url.as_ref().and_then(authority));
    (proto, host)
}

/// The `for=` node of a `Forwarded` element: an IPv4 address as a token,
/// an IPv6 one bracketed and quoted, `unknown` without one (RFC 7239 §6).
fn forwarded_node(client: Option<IpAddr>) -> String {
    match client {
        Some(IpAddr::V4(ip)) => ip.to_string(),
        Some(IpAddr::V6(ip)) => format!("\"[{ip}]\""),
        None => "unknown".to_owned(),
    }
}

/// A `Forwarded` parameter value: a token as it is, anything else (a host
/// with a port) as a quoted string.
fn forwarded_value(value: &str) -> String {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !value.is_empty() && value.bytes().all(tchar) {
        value.to_owned()
    } else {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    }
}

/// A W3C Trace Context `traceparent` (version 00): which trace this is,
/// which span sent it, and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id, never all zero.
    pub trace_id: [u8; 16],
    /// The sender's span id, never all zero.
    pub parent_id: [u8; 8],
    /// The trace flags (bit 0: sampled), passed on as they came.
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value: `00-<32 hex trace-id>-<16 hex
    /// parent-id>-<2 hex flags>`, lower-case hex, neither id all zero. A
    /// later version (not `ff`) is read by its first four fields, as the
    /// specification asks; it is sent on as version 00.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let version = value.get(..2)?;
        let fields = value.get(..55)?;
        let rest = &value[55..];
        let known = match version {
            "00" => rest.is_empty(),
            "ff" => false,
            _ => rest.is_empty() || rest.starts_with('-'),
        };
        let mut parts = fields.split('-');
        let (Some(v), Some(trace), Some(parent), Some(flags), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let trace_id: [u8; 16] = lower_hex(trace)?.try_into().ok()?;
        let parent_id: [u8; 8] = lower_hex(parent)?.try_into().ok()?;
        let [flags] = <[u8; 1]>::try_from(lower_hex(flags)?).ok()?;
        let valid = known && lower_hex(v).is_some() && trace_id != [0; 16] && parent_id != [0; 8];
        valid.then_some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new trace: random ids, flags 00 (this side records no spans).
    /// `None` when randomness fails.
    pub fn fresh(random: &dyn Random) -> Option<Self> {
        let mut trace_id = [0u8; 16];
        random.fill(&mut trace_id).ok()?;
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        Some(TraceParent {
            trace_id,
            parent_id: span_id(random)?,
            flags: 0,
        })
    }

    /// The same trace and flags, sent on by a new span (this hop).
    pub fn child(&self, random: &dyn Random) -> Option<Self> {
        Some(TraceParent {
            parent_id: span_id(random)?,
            ..*self
        })
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut trace = [0u8; 32];
        let mut parent = [0u8; 16];
        let mut flags = [0u8; 2];
        write!(
            f,
            "00-{}-{}-{}",
            encode(&self.trace_id, &mut trace)?,
            encode(&self.parent_id, &mut parent)?,
            encode(&[self.flags], &mut flags)?
        )
    }
}

/// `src` in lower-case hex, in `dst` (twice `src`'s length).
fn encode<'a>(src: &[u8], dst: &'a mut [u8]) -> Result<&'a str, fmt::Error> {
    base16ct::lower::encode_str(src, dst).map_err(|_| fmt::Error)
}

/// A random span id, never all zero.
fn span_id(random: &dyn Random) -> Option<[u8; 8]> {
    let mut id = [0u8; 8];
    random.fill(&mut id).ok()?;
    if id == [0; 8] {
        id[7] = 1;
    }
    Some(id)
}

/// Decodes lower-case hex (an even number of digits, at least two).
fn lower_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() {
        return None;
    }
    base16ct::lower::decode_vec(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing_follows_the_spec() {
        let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let parsed = TraceParent::parse(ok).unwrap();
        assert_eq!(parsed.flags, 1);
        assert_eq!(parsed.to_string(), ok);
        // A later version is read by its first four fields and sent as 00.
        let later = "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-ever";
        assert_eq!(TraceParent::parse(later), Some(parsed));
        for bad in [
            "",
            "00",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            "00-0af7651916cd43dd8448eb211c80319-cb7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-001",
            "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_values_are_quoted_when_not_tokens() {
        assert_eq!(forwarded_value("gw.example"), "gw.example");
        assert_eq!(forwarded_value("gw.example:8443"), "\"gw.example:8443\"");
        assert_eq!(
            forwarded_node(Some("192.0.2.1".parse().unwrap())),
            "192.0.2.1"
        );
        assert_eq!(
            forwarded_node(Some("2001:db8::1".parse().unwrap())),
            "\"[2001:db8::1]\""
        );
        assert_eq!(forwarded_node(None), "unknown");
    }
}
