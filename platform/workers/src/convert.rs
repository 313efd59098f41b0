//! Conversions between `worker` requests/responses and the core model.

use edge_core::model::{ClientAddr, MAX_BODY_BYTES};
use edge_core::{Body, Problem, Request, Response};
use futures::StreamExt;

/// Converts an incoming request, reading at most [`MAX_BODY_BYTES`] of body
/// (413 beyond). The client address comes from `CF-Connecting-IP`, which
/// the Workers runtime sets itself.
pub async fn from_worker_request(mut req: worker::Request) -> Result<Request, Problem> {
    let builder = request_head(&req)?;
    if declared_length(&req).is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(Problem::payload_too_large(MAX_BODY_BYTES));
    }
    let mut body = Vec::new();
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Problem::bad_request("invalid-body", e.to_string()))?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Problem::payload_too_large(MAX_BODY_BYTES));
            }
            body.extend_from_slice(&chunk);
        }
    }
    builder
        .body(Body::from(body))
        .map_err(|e| Problem::bad_request("invalid-request", e.to_string()))
}

/// The request's method, URL, headers and client address.
pub(crate) fn request_head(req: &worker::Request) -> Result<http::request::Builder, Problem> {
    let url = req
        .url()
        .map_err(|e| Problem::bad_request("invalid-url", e.to_string()))?;
    let method = http::Method::from_bytes(req.method().as_ref().as_bytes())
        .map_err(|_| Problem::bad_request("invalid-method", "unsupported method"))?;
    let mut builder = http::Request::builder().method(method).uri(url.as_str());
    for (name, value) in req.headers().entries() {
        builder = builder.header(name, value);
    }
    if let Some(ip) = req
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .and_then(|ip| ip.parse().ok())
    {
        builder = builder.extension(ClientAddr(ip));
    }
    Ok(builder)
}

/// The declared `Content-Length`, if any.
pub(crate) fn declared_length(req: &worker::Request) -> Option<usize> {
    req.headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|n| n.parse::<usize>().ok())
}

/// The headers with a text value, as `worker::Headers`.
pub(crate) fn to_worker_headers(headers: &http::HeaderMap) -> worker::Result<worker::Headers> {
    let out = worker::Headers::new();
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            out.append(name.as_str(), value)?;
        }
    }
    Ok(out)
}

/// Converts a core response into a `worker::Response`.
pub fn to_worker_response(response: Response) -> worker::Result<worker::Response> {
    let (parts, body) = response.into_parts();
    let headers = to_worker_headers(&parts.headers)?;
    // Null-body statuses must be built without a body.
    let response = if matches!(parts.status.as_u16(), 101 | 204 | 205 | 304) {
        worker::Response::empty()?
    } else {
        worker::Response::from_bytes(body.to_vec())?
    };
    Ok(response
        .with_status(parts.status.as_u16())
        .with_headers(headers))
}

/// Converts a core request into an outbound `worker::Request`.
pub(crate) fn to_worker_request(req: Request) -> worker::Result<worker::Request> {
    let (parts, body) = req.into_parts();
    let headers = to_worker_headers(&parts.headers)?;
    let method = worker::Method::from(parts.method.as_str().to_owned());
    let mut init = worker::RequestInit::new();
    init.with_method(method).with_headers(headers);
    if !body.is_empty() {
        let array = js_sys::Uint8Array::from(body.as_ref());
        init.with_body(Some(array.into()));
    }
    worker::Request::new_with_init(&parts.uri.to_string(), &init)
}

/// Converts an outbound response back into the core model.
pub(crate) async fn from_worker_response(
    mut response: worker::Response,
) -> worker::Result<Response> {
    let mut builder = http::Response::builder().status(response.status_code());
    for (name, value) in response.headers().entries() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?;
    builder
        .body(Body::from(body))
        .map_err(|e| worker::Error::RustError(e.to_string()))
}
