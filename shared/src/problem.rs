//! RFC 9457 problem details: every error a client sees is an
//! `application/problem+json` body with the right status.
//!
//! A [`Problem`] is a value the functions return; [`Problem::into_response`]
//! renders it. Details must name what was wrong without echoing secrets.

use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value};

use crate::model::{Body, Request, Response};
use crate::policy::Secret;

/// The media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The prefix of every problem `type` URI this project emits.
pub const TYPE_PREFIX: &str = "urn:edge-functions:problem:";

/// An error answer: status, a stable type, a title, a detail naming the bad
/// input, extension members and extra headers (e.g. `Retry-After`).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    status: StatusCode,
    kind: &'static str,
    title: String,
    detail: Option<String>,
    extensions: Map<String, Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem of type `urn:edge-functions:problem:{kind}`.
    pub fn new(status: StatusCode, kind: &'static str, title: impl Into<String>) -> Self {
        Problem {
            status,
            kind,
            title: title.into(),
            detail: None,
            extensions: Map::new(),
            headers: Vec::new(),
        }
    }

    /// Adds the human-readable explanation of this occurrence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds an extension member to the body.
    pub fn with_extension(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(name.to_owned(), value.into());
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The problem with every header of `headers` added.
    pub fn with_headers(mut self, headers: http::HeaderMap) -> Self {
        let mut name = None;
        for (next, value) in headers {
            name = next.or(name);
            if let Some(name) = &name {
                self.headers.push((name.clone(), value));
            }
        }
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The short type name (the part after [`TYPE_PREFIX`]).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The detail, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// 400: the request is malformed; `detail` names what was wrong.
    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, kind, "Bad request").with_detail(detail)
    }

    /// 404 for a path this function does not serve.
    pub fn not_found(path: &str) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found")
            .with_detail(format!("no route for path {path:?}"))
    }

    /// `Ok` when `req` carries `Authorization: Bearer <expected>` (compared
    /// in constant time), else 401 with an RFC 6750 challenge for `realm`:
    /// `invalid_request` when no bearer token came (`missing` says what
    /// needed one), `invalid_token` when it is not `expected`. The presented
    /// token is never echoed.
    pub fn require_bearer(
        req: &Request,
        expected: &Secret,
        realm: &str,
        missing: &str,
    ) -> Result<(), Problem> {
        let presented = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let (error, detail) = match presented {
            None => ("invalid_request", missing),
            Some(token) if expected.matches(token.as_bytes()) => return Ok(()),
            Some(_) => ("invalid_token", "the bearer token is not the admin token"),
        };
        let challenge = format!("Bearer realm=\"{realm}\", error=\"{error}\"");
        Err(
            Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
                .with_detail(detail)
                .with_header(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer")),
                ),
        )
    }

    /// 405 with an `Allow` header listing `allowed`.
    pub fn method_not_allowed(method: &Method, allowed: &[Method]) -> Self {
        let allow = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let problem = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
        )
        .with_detail(format!(
            "method {method} is not allowed here; allowed: {allow}"
        ));
        match HeaderValue::from_str(&allow) {
            Ok(value) => problem.with_header(http::header::ALLOW, value),
            Err(_) => problem,
        }
    }

    /// 413 for a body over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
        )
        .with_detail(format!("the body exceeds the limit of {limit} bytes"))
        .with_extension("limit", limit)
    }

    /// 503 when the store cannot be reached and the function fails closed.
    pub fn store_unavailable(retry_after_secs: u64) -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "Store unavailable",
        )
        .with_detail("the state store cannot be reached; retry later")
        .with_header(
            http::header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs),
        )
    }

    /// 500 for a function whose configuration is invalid (details go to the logs).
    pub fn misconfigured() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "misconfigured",
            "Function misconfigured",
        )
        .with_detail("the function's policy or variables are invalid; see its logs")
    }

    /// The JSON body.
    pub fn to_json(&self, instance: Option<&str>) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), format!("{TYPE_PREFIX}{}", self.kind).into());
        body.insert("title".into(), self.title.clone().into());
        body.insert("status".into(), self.status.as_u16().into());
        if let Some(detail) = &self.detail {
            body.insert("detail".into(), detail.clone().into());
        }
        if let Some(instance) = instance {
            body.insert("instance".into(), instance.into());
        }
        for (k, v) in &self.extensions {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(body)
    }

    /// Renders the problem as an `application/problem+json` response.
    pub fn into_response(self, instance: Option<&str>) -> Response {
        let mut response = Response::new(Body::from(self.to_json(instance).to_string()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_JSON),
        );
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_checked_and_never_echoed() {
        let secret = Secret::new("s3cret");
        let with = |auth: Option<&str>| {
            let mut req = http::Request::builder().body(Body::new()).unwrap();
            if let Some(a) = auth {
                req.headers_mut()
                    .insert(http::header::AUTHORIZATION, a.parse().unwrap());
            }
            Problem::require_bearer(&req, &secret, "fn", "needs a token")
        };
        assert_eq!(with(Some("Bearer s3cret")), Ok(()));
        let missing = with(None).unwrap_err();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(missing.detail(), Some("needs a token"));
        let wrong = with(Some("Bearer guess")).unwrap_err().into_response(None);
        assert_eq!(
            wrong.headers()["www-authenticate"],
            "Bearer realm=\"fn\", error=\"invalid_token\""
        );
        assert!(!String::from_utf8_lossy(wrong.body()).contains("guess"));
    }

    #[test]
    fn renders_rfc9457_members_and_headers() {
        let response = Problem::method_not_allowed(&Method::PUT, &[Method::GET, Method::POST])
            .with_extension("field", "key")
            .into_response(Some("/counters/a"));
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["content-type"], PROBLEM_JSON);
        assert_eq!(response.headers()["allow"], "GET, POST");
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            body["type"],
            "urn:edge-functions:problem:method-not-allowed"
        );
        assert_eq!(body["status"], 405);
        assert_eq!(body["instance"], "/counters/a");
        assert_eq!(body["field"], "key");
        assert!(body["detail"].as_str().unwrap().contains("PUT"));
    }

    #[test]
    fn extensions_cannot_override_standard_members() {
        let body = Problem::bad_request("x", "d")
            .with_extension("status", 200)
            .to_json(None);
        assert_eq!(body["status"], 400);
    }
}
