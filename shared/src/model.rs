//! The request/response model shared by every platform: the `http` crate's
//! types with a buffered [`Body`], plus the few extensions platforms attach.
//!
//! Platform glue converts its native request into a [`Request`] (enforcing
//! [`MAX_BODY_BYTES`] while reading), and converts the [`Response`] back.

use std::net::IpAddr;

/// A buffered body. Bodies are bounded by [`MAX_BODY_BYTES`] at the platform edge.
pub type Body = bytes::Bytes;
/// A request as every function sees it.
pub type Request = http::Request<Body>;
/// A response as every function produces it.
pub type Response = http::Response<Body>;

/// The largest body the platform glue buffers before answering 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The client's address as the platform knows it (not from a spoofable
/// header): `CF-Connecting-IP` on Workers, `spin-client-addr` on Spin.
/// Stored in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The runtime a request is served on, stored in the request's extensions
/// and reported by the health endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Native Rust (tests, benches, the reference).
    Native,
    /// Cloudflare Workers (workerd).
    Workers,
    /// Fermyon Spin (a wasi:http host).
    Spin,
    /// A browser, through wasm-bindgen.
    Browser,
}

impl Runtime {
    /// Whether a function instance serves many requests here (an isolate
    /// on Workers, a page in a browser), so that what it remembers between
    /// requests is of use. Spin builds a fresh instance per request.
    pub fn keeps_instances(self) -> bool {
        self != Runtime::Spin
    }

    /// The lower-case name used in logs and health output.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Native => "native",
            Runtime::Workers => "workers",
            Runtime::Spin => "spin",
            Runtime::Browser => "browser",
        }
    }
}

/// Builds a response with a JSON body and the given status.
pub fn json_response(status: http::StatusCode, value: &serde_json::Value) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// An answer with `status` and no body (e.g. `204 No Content`).
pub fn empty_response(status: http::StatusCode) -> Response {
    let mut response = Response::new(Body::new());
    *response.status_mut() = status;
    response
}

/// The request path split into segments, without empty ones.
pub fn path_segments(req: &Request) -> Vec<&str> {
    req.uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// The value of one query parameter, percent-decoding not applied (callers
/// validate the raw value).
pub fn query_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}
