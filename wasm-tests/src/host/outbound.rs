//! Outbound HTTP from guests, allowed the way Spin allows it.
//!
//! Spin lets a component reach only the hosts its manifest lists in
//! `allowed_outbound_hosts` and answers anything else with
//! `ErrorCode::HttpRequestDenied`; functions that fetch (JWKS, an origin)
//! must see the same here. [`AllowedHosts`] parses Spin's syntax
//! (`scheme://host[:port]`, with `*` for any scheme, host or port,
//! `*.example.com` for subdomains, CIDR hosts, `a..b` port ranges and each
//! scheme's well-known port by default) and [`OutboundHooks`] checks every
//! request against it, then sends allowed ones over plain HTTP/1.1 with
//! hyper, under connect, first-byte and between-bytes timeouts.
//!
//! HTTPS is refused (`InternalError`): TLS would need wasmtime-wasi-http's
//! `default-send-request` feature, and the tests' peers all listen on
//! 127.0.0.1 in plain HTTP.

use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use http::uri::Scheme;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// How long connecting may take, unless the guest's request options say.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the response head may take after connecting, unless the guest says.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest pause within a response body, unless the guest says.
pub const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(20);

/// A component's `allowed_outbound_hosts`, parsed. The default allows
/// nothing, as a component without the key gets in Spin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    rules: Vec<AllowedHost>,
}

impl AllowedHosts {
    /// Parses entries in Spin's syntax: `"http://127.0.0.1:8080"`,
    /// `"https://*.example.com"`, `"http://127.0.0.1:*"`, `"*://*:*"`,
    /// `"http://10.0.0.0/8:80"`, `"http://localhost:3000..3010"`. Fails on
    /// what Spin rejects: no scheme, a path, a wildcard inside a name, no
    /// port for a scheme without a well-known one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> anyhow::Result<Self> {
        if let [only] = entries
            && only.as_ref() == "insecure:allow-all"
        {
            bail!("'insecure:allow-all' is not allowed: use '*://*:*' to allow everything");
        }
        let rules = entries
            .iter()
            .map(|entry| AllowedHost::parse(entry.as_ref()))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { rules })
    }

    /// Whether a request to `uri` may go out. URIs without a host (Spin's
    /// self-requests) are never allowed here.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        let scheme = scheme.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        let port = uri.port_u16().or_else(|| well_known_port(&scheme));
        self.rules
            .iter()
            .any(|rule| rule.allows(&scheme, &host, port))
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<&str> = self.rules.iter().map(|r| r.original.as_str()).collect();
        write!(f, "{entries:?}")
    }
}

/// One `allowed_outbound_hosts` entry.
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
    /// Spin's `self`: relative URLs to the app itself, which this host does
    /// not route, so it matches nothing.
    ToSelf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// One port, or Spin's `start..end` (end excluded).
    Range(u16, u16),
}

impl AllowedHost {
    fn parse(entry: &str) -> anyhow::Result<Self> {
        let url = entry.trim();
        let (scheme, rest) = url.split_once("://").with_context(|| {
            format!(
                "allowed outbound host {url:?} has no scheme: use <scheme>://<host>[:<port>] \
                 ('*' allowed in each, '*://*:*' allows everything)"
            )
        })?;
        let (host, port) = split_host_port(rest);
        let port = match port.split_once('/') {
            Some((port, path)) => {
                ensure!(
                    path.is_empty(),
                    "allowed outbound host {url:?} has a path, which is not allowed"
                );
                port
            }
            None => port,
        };
        let host = host.strip_suffix('/').unwrap_or(host);
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(s.to_ascii_lowercase())
            }
            s => bail!("allowed outbound host {url:?}: scheme {s:?} is not alphabetic"),
        };
        let port = match port {
            "" => {
                let known = scheme
                    .as_deref()
                    .and_then(well_known_port)
                    .with_context(|| {
                        format!(
                            "allowed outbound host {url:?} has no port and its scheme has no \
                         well-known one"
                        )
                    })?;
                PortPattern::Range(known, known + 1)
            }
            "*" => PortPattern::Any,
            range => {
                parse_ports(range).with_context(|| format!("allowed outbound host {url:?}"))?
            }
        };
        Ok(Self {
            original: entry.to_owned(),
            scheme,
            host: HostPattern::parse(host)
                .with_context(|| format!("allowed outbound host {url:?}"))?,
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

fn parse_ports(ports: &str) -> anyhow::Result<PortPattern> {
    if let Some((start, end)) = ports.split_once("..") {
        let number = |s: &str| {
            s.parse::<u16>()
                .with_context(|| format!("port range {ports:?} contains a non-number"))
        };
        return Ok(PortPattern::Range(number(start)?, number(end)?));
    }
    let port: u16 = ports
        .parse()
        .with_context(|| format!("port {ports:?} is not a number"))?;
    Ok(PortPattern::Range(port, port.saturating_add(1)))
}

impl HostPattern {
    fn parse(host: &str) -> anyhow::Result<Self> {
        let host = host.trim().to_ascii_lowercase();
        if host == "*" {
            return Ok(Self::Any);
        }
        if host == "self" || host == "self.alt" {
            return Ok(Self::ToSelf);
        }
        if host.starts_with('{') {
            bail!("host lists are not supported (nor are they by Spin)");
        }
        if let Some(network) = parse_network(&host)? {
            return Ok(network);
        }
        if let Some(domain) = host.strip_prefix("*.") {
            ensure!(
                !domain.contains('*'),
                "wildcards are allowed only as a prefix (*.example.com)"
            );
            return Ok(Self::Subdomain(format!(".{domain}")));
        }
        ensure!(
            !host.contains('*'),
            "wildcards are allowed only as a prefix (*.example.com)"
        );
        ensure!(!host.is_empty(), "the host is empty");
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
fn parse_network(host: &str) -> anyhow::Result<Option<HostPattern>> {
    let (addr, prefix) = match host.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (host, None),
    };
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = addr.parse::<IpAddr>() else {
        ensure!(prefix.is_none(), "hosts must not contain paths");
        return Ok(None);
    };
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= bits)
            .with_context(|| format!("network prefix {p:?} is not in 0..={bits}"))?,
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

/// The `wasi:http` hooks of one request's store: the allowed hosts check,
/// then a real send.
pub(crate) struct OutboundHooks {
    pub(crate) allowed: std::sync::Arc<AllowedHosts>,
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        if !self.allowed.allows(request.uri()) {
            let uri = request.uri();
            eprintln!(
                "edge-host: a component tried to make an HTTP request to non-allowed host \
                 '{}://{}'; allowed_outbound_hosts = {}",
                uri.scheme_str().unwrap_or("?"),
                uri.authority().map_or("?", |a| a.as_str()),
                self.allowed
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = send(request, options).await?;
            Ok((response, Box::new(io) as IoFuture))
        })
    }
}

/// Sends one allowed request over a fresh HTTP/1.1 connection. The second
/// value drives the connection until the response body is done.
async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<
    (
        http::Response<WasiBody>,
        impl Future<Output = Result<(), Error>> + Send,
    ),
    Error,
> {
    let options = options.unwrap_or_default();
    let uri = request.uri();
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(Error::InternalError(Some(format!(
            "edge-host sends plain http only, not {}",
            uri.scheme_str().unwrap_or("a relative URL")
        ))));
    }
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let address = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );

    let connect_timeout = options.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&address))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let (mut sender, connection) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake::<_, WasiBody>(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    // On the wire the target is origin-form; the authority is in `Host`.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;

    let first_byte = options.first_byte_timeout.unwrap_or(FIRST_BYTE_TIMEOUT);
    let between_bytes = options
        .between_bytes_timeout
        .unwrap_or(BETWEEN_BYTES_TIMEOUT);
    // The connection has to be driven while the response is awaited; if it
    // ends first (the peer closed), it is not polled again.
    let mut connection = Some(Box::pin(connection));
    let response = tokio::time::timeout(first_byte, async {
        let exchange = sender.send_request(request);
        tokio::pin!(exchange);
        if let Some(driver) = connection.as_mut() {
            tokio::select! {
                biased;
                response = &mut exchange => return response,
                done = driver => done?,
            }
        }
        connection = None;
        exchange.await
    })
    .await
    .map_err(|_| Error::ConnectionReadTimeout)??;
    let response = response.map(|body| {
        TimedBody {
            inner: body,
            idle: between_bytes,
            deadline: Box::pin(tokio::time::sleep(between_bytes)),
        }
        .boxed_unsync()
    });
    let io = async move {
        let Some(driver) = connection else {
            return Ok(());
        };
        driver.await.map_err(|e| {
            if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }
        })
    };
    Ok((response, io))
}

/// A response body that fails when no frame arrives for `idle`.
struct TimedBody {
    inner: Incoming,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], url: &str) -> bool {
        AllowedHosts::parse(entries)
            .unwrap_or_else(|e| panic!("{entries:?}: {e:#}"))
            .allows(&url.parse().expect("a valid URL"))
    }

    #[test]
    fn exact_hosts_need_scheme_host_and_port_to_match() {
        let entry = ["http://127.0.0.1:8080"];
        assert!(allows(&entry, "http://127.0.0.1:8080/jwks"));
        assert!(!allows(&entry, "http://127.0.0.1:8081/jwks"));
        assert!(!allows(&entry, "https://127.0.0.1:8080/jwks"));
        assert!(!allows(&entry, "http://127.0.0.2:8080/"));
        assert!(!allows(&entry, "http://localhost:8080/"));
        assert!(allows(
            &["http://LocalHost:3000"],
            "http://localhost:3000/x"
        ));
    }

    #[test]
    fn a_missing_port_means_the_schemes_well_known_one() {
        assert!(allows(&["https://example.com"], "https://example.com/a"));
        assert!(allows(
            &["https://example.com"],
            "https://example.com:443/a"
        ));
        assert!(!allows(
            &["https://example.com"],
            "https://example.com:8443/a"
        ));
        assert!(allows(&["http://example.com/"], "http://example.com/"));
        assert!(AllowedHosts::parse(&["*://example.com"]).is_err());
        assert!(AllowedHosts::parse(&["foo://example.com"]).is_err());
    }

    #[test]
    fn wildcards_cover_scheme_host_port_and_subdomains() {
        assert!(allows(&["http://127.0.0.1:*"], "http://127.0.0.1:39123/"));
        assert!(!allows(&["http://127.0.0.1:*"], "https://127.0.0.1:39123/"));
        assert!(allows(&["*://*:*"], "https://anything.example:1/"));
        assert!(allows(&["*://*:*"], "http://[::1]:8080/"));
        let sub = ["https://*.example.com"];
        assert!(allows(&sub, "https://api.example.com/"));
        assert!(allows(&sub, "https://a.b.example.com/"));
        assert!(!allows(&sub, "https://example.com/"));
        assert!(!allows(&sub, "https://badexample.com/"));
        assert!(allows(&["*://example.com:80"], "http://example.com/"));
        assert!(allows(&["*://example.com:80"], "https://example.com:80/"));
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
        assert!(!AllowedHosts::default().allows(&"http://127.0.0.1/".parse().unwrap()));
        assert!(!allows(&["http://self"], "http://self/"));
        assert!(!allows(&["*://*:*"], "/relative"));
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
    }

    fn empty() -> WasiBody {
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    #[tokio::test]
    async fn a_silent_peer_times_out_and_https_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = tokio::spawn(async move {
            let (_stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let request = |url: String| http::Request::get(url).body(empty()).unwrap();
        let options = RequestOptions {
            first_byte_timeout: Some(Duration::from_millis(200)),
            ..RequestOptions::default()
        };
        let started = std::time::Instant::now();
        let result = send(request(format!("http://{addr}/")), Some(options)).await;
        assert!(matches!(result, Err(Error::ConnectionReadTimeout)));
        assert!(started.elapsed() < Duration::from_secs(5));
        silent.abort();

        let result = send(request(format!("https://{addr}/")), None).await;
        assert!(matches!(result, Err(Error::InternalError(Some(_)))));
    }
}
