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
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

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

/// A component's `allowed_outbound_hosts`, parsed: edge_core's matcher
/// ([`edge_core::origin::AllowedHosts`], the one the guests check their
/// policies with), so that host and guest agree. The default allows
/// nothing, as a component without the key gets in Spin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(edge_core::origin::AllowedHosts);

impl AllowedHosts {
    /// Parses entries in Spin's syntax: `"http://127.0.0.1:8080"`,
    /// `"https://*.example.com"`, `"http://127.0.0.1:*"`, `"*://*:*"`,
    /// `"http://10.0.0.0/8:80"`, `"http://localhost:3000..3010"`. Fails on
    /// what Spin rejects: no scheme, a path, a wildcard inside a name, no
    /// port for a scheme without a well-known one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> anyhow::Result<Self> {
        Ok(Self(edge_core::origin::AllowedHosts::parse(entries)?))
    }

    /// Whether a request to `uri` may go out. URIs without a host (Spin's
    /// self-requests) are never allowed here.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        match (uri.scheme_str(), uri.host()) {
            (Some(scheme), Some(host)) => self.0.allows(scheme, host, uri.port_u16()),
            _ => false,
        }
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The entries as a list: `["http://127.0.0.1:*", "https://*.example.com"]`.
impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<&str> = self.0.entries().collect();
        write!(f, "{entries:?}")
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

    // The matching itself is edge_core's, tested there
    // (`edge_core::origin::allowed`); these are the host's own parts.
    #[test]
    fn the_host_matches_request_uris_with_edge_cores_matcher() {
        let hosts = AllowedHosts::parse(&["http://127.0.0.1:8080", "https://*.example.com"])
            .unwrap_or_else(|e| panic!("{e:#}"));
        let allows = |uri: &str| hosts.allows(&uri.parse().expect("a valid URI"));
        assert!(allows("http://127.0.0.1:8080/jwks"));
        assert!(allows("HTTPS://Api.Example.com/"));
        assert!(!allows("http://127.0.0.1:8081/jwks"));
        assert!(!allows("https://example.com/"));
        assert!(!allows("/relative"));
        assert_eq!(
            hosts.to_string(),
            r#"["http://127.0.0.1:8080", "https://*.example.com"]"#
        );
        assert!(AllowedHosts::default().is_empty());
        assert!(!AllowedHosts::default().allows(&"http://127.0.0.1/".parse().unwrap()));
        let err = AllowedHosts::parse(&["127.0.0.1:8080"]).unwrap_err();
        assert!(format!("{err:#}").contains("no scheme"), "{err:#}");
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
