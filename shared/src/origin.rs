//! Forwarding to an origin: what a function in front of an origin (rate
//! limit, auth check, the gateway) does with a request it lets through.
//! Hop-by-hop headers stay on this side in both directions.

use http::StatusCode;
use serde_json::json;

use crate::function::Context;
use crate::model::{Request, Response};
use crate::problem::Problem;

/// Headers a proxy must not pass on (RFC 9110 §7.6.1) plus `host`.
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

/// Sends `req` to `origin` (scheme, host, optional path prefix) with the
/// same method, path, query, body and end-to-end headers; answers 502
/// `origin-unavailable` when the origin cannot be reached.
pub async fn forward(origin: &str, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
    let (parts, body) = req.into_parts();
    let target = format!(
        "{}{}",
        origin.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut outbound = http::Request::builder()
        .method(parts.method)
        .uri(&target)
        .body(body)
        .map_err(|e| {
            Problem::bad_request("invalid-path", format!("cannot forward this path: {e}"))
        })?;
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outbound.headers_mut().append(name, value.clone());
        }
    }
    let mut response = ctx.http().send(outbound).await.map_err(|e| {
        ctx.log()
            .warn("origin unreachable", json!({ "error": e.to_string() }));
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "origin-unavailable",
            "Origin unavailable",
        )
        .with_detail("the origin could not be reached")
    })?;
    for name in HOP_BY_HOP {
        response.headers_mut().remove(*name);
    }
    Ok(response)
}
