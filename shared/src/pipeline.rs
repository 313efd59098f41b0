//! The composition model: how capabilities run one after another in one
//! process, in front of an origin or a mounted function.
//!
//! A request passes through a chain of [`Filter`]s and ends at an
//! [`Endpoint`]. Each filter either answers (a [`Problem`]: 401, 429,
//! 415 …) or lets the request continue, changed. What a filter learns (the
//! verified [`Principal`], a rate-limit decision, anonymization findings)
//! travels to later filters and to the endpoint as a typed value in the
//! request's extensions, never as a header: headers are written only where
//! the request leaves the process (the origin, a standalone function's
//! answer).
//!
//! The contract is split the way proxy hosts split a filter (Envoy's HTTP
//! filters, proxy-wasm's `on_http_request_headers` / `_body` /
//! `on_http_response_headers`), so that the same chain can run there later:
//!
//! | phase | method | sees | may |
//! |---|---|---|---|
//! | request head | [`Filter::on_request`] | method, URI, headers, extensions | answer, change the head, leave typed values |
//! | request body | [`Filter::request_body`] | the head | return a [`BodyTransform`] fed the body in chunks |
//! | response head | [`Filter::on_response`] | the request's extensions, status, headers | add headers (on answers of every kind, errors included) |
//! | response body | [`Filter::response_body`] | the request's extensions, the response head | return a [`BodyTransform`] |
//!
//! All head decisions run before any body is read (a request refused by
//! the auth check is never anonymized); bodies are transformed in filter
//! order on the way in, response heads and bodies in reverse order on the
//! way out. [`run`] does this on buffered bodies; [`stream_request`] and
//! [`response_headers`] are the same phases around a body the platform
//! streams (the gateway's bodies past the buffered limit).

use async_trait::async_trait;
use bytes::Bytes;
use http::{Extensions, HeaderMap, StatusCode, header, request, response};

use crate::function::Context;
use crate::model::{Request, Response};
use crate::problem::Problem;
use crate::stream::BodyTransform;

/// Who a request was verified to come from: left in the extensions by the
/// auth check, read by later filters (the rate limiter keys on `sub` or
/// the API key id). Only a filter that verified a credential inserts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// The credential that proved it: `jwt` or `api_key`.
    pub credential: &'static str,
    /// The token's subject.
    pub sub: Option<String>,
    /// The token's issuer.
    pub issuer: Option<String>,
    /// The API key's id.
    pub api_key_id: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Granted roles.
    pub roles: Vec<String>,
}

/// One stage of a chain: a capability in front of an endpoint.
#[async_trait(?Send)]
pub trait Filter {
    /// The filter's name, for logs.
    fn name(&self) -> &'static str;

    /// Decides on the request head. `Ok`: the request continues (the head
    /// possibly changed, what was learned in `head.extensions`); `Err`: it
    /// is answered with the problem and goes no further.
    async fn on_request(&self, head: &mut request::Parts, ctx: &Context<'_>)
    -> Result<(), Problem>;

    /// The rewriter of a non-empty request body, when this filter rewrites
    /// bodies of this kind; `Err` answers (e.g. `415`).
    fn request_body(
        &self,
        _head: &request::Parts,
        _ctx: &Context<'_>,
    ) -> Result<Option<Box<dyn BodyTransform>>, Problem> {
        Ok(None)
    }

    /// The rewriter of a non-empty response body, when this filter
    /// rewrites it.
    fn response_body(
        &self,
        _request: &Extensions,
        _head: &response::Parts,
    ) -> Option<Box<dyn BodyTransform>> {
        None
    }

    /// On the way back, for every answer (the endpoint's, a later
    /// filter's refusal, an error): adds what this filter's decision says
    /// (read from `request`, the request's extensions) to the headers.
    fn on_response(
        &self,
        _request: &Extensions,
        _status: StatusCode,
        _headers: &mut HeaderMap,
        _ctx: &Context<'_>,
    ) {
    }
}

/// Where a chain ends: the origin, a mounted function, or a standalone
/// function's own answer.
#[async_trait(?Send)]
pub trait Endpoint {
    /// Answers the request the filters let through.
    async fn call(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem>;
}

/// The origin as a chain's end: forwarding with its timeout, retries
/// and circuit breaker.
#[async_trait(?Send)]
impl Endpoint for crate::origin::OriginClient {
    async fn call(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        self.forward(req, ctx).await
    }
}

/// Runs `req` through `filters` to `end` on a buffered body: every head
/// decision first, then the body transforms in order, the endpoint, and
/// on the way back the response transforms and headers in reverse order.
pub async fn run(
    filters: &[&dyn Filter],
    req: Request,
    end: &dyn Endpoint,
    ctx: &Context<'_>,
) -> Result<Response, Problem> {
    let (mut head, body) = req.into_parts();
    let mut refused = None;
    for filter in filters {
        if let Err(problem) = filter.on_request(&mut head, ctx).await {
            refused = Some(problem);
            break;
        }
    }
    let body = match refused {
        Some(problem) => Err(problem),
        None => request_body(filters, &mut head, body, ctx),
    };
    let extensions = head.extensions.clone();
    let answer = match body {
        Ok(body) => end.call(Request::from_parts(head, body), ctx).await,
        Err(problem) => Err(problem),
    };
    match answer {
        Ok(response) => response_back(filters, &extensions, response, ctx),
        Err(problem) => Err(problem_back(filters, &extensions, problem, ctx)),
    }
}

/// [`run`]'s request phases for a body streamed rather than buffered:
/// every head decision, then each filter's request-body transform, in
/// order, for the platform to feed the body through (chained). A refusal
/// comes back with every filter's response headers, as in [`run`]; the
/// answer's headers are the caller's to add with [`response_headers`].
pub async fn stream_request(
    filters: &[&dyn Filter],
    head: &mut request::Parts,
    ctx: &Context<'_>,
) -> Result<Vec<Box<dyn BodyTransform>>, Problem> {
    for filter in filters {
        if let Err(problem) = filter.on_request(head, ctx).await {
            return Err(problem_back(filters, &head.extensions, problem, ctx));
        }
    }
    let mut transforms = Vec::new();
    for filter in filters {
        match filter.request_body(head, ctx) {
            Ok(Some(transform)) => {
                transforms.push(transform);
                head.headers.remove(header::CONTENT_LENGTH);
            }
            Ok(None) => {}
            Err(problem) => return Err(problem_back(filters, &head.extensions, problem, ctx)),
        }
    }
    Ok(transforms)
}

/// The response-head phase on an answer whose body is not the chain's to
/// read (a streamed origin answer): every filter's headers, in reverse
/// order.
pub fn response_headers<F: AsRef<dyn Filter>>(
    filters: &[F],
    extensions: &Extensions,
    status: StatusCode,
    headers: &mut HeaderMap,
    ctx: &Context<'_>,
) {
    for filter in filters.iter().rev() {
        filter
            .as_ref()
            .on_response(extensions, status, headers, ctx);
    }
}

/// Feeds a non-empty body through each filter's request transform.
fn request_body(
    filters: &[&dyn Filter],
    head: &mut request::Parts,
    mut body: Bytes,
    ctx: &Context<'_>,
) -> Result<Bytes, Problem> {
    if body.is_empty() {
        return Ok(body);
    }
    for filter in filters {
        if let Some(mut transform) = filter.request_body(head, ctx)? {
            body = transform_whole(transform.as_mut(), &body)?;
            transform.annotate(&mut head.extensions);
            head.headers.remove(header::CONTENT_LENGTH);
        }
    }
    Ok(body)
}

/// The response through each filter's response transform and headers, in
/// reverse order. A body the transform refuses is not passed on.
fn response_back(
    filters: &[&dyn Filter],
    extensions: &Extensions,
    response: Response,
    ctx: &Context<'_>,
) -> Result<Response, Problem> {
    let (mut head, mut body) = response.into_parts();
    for filter in filters.iter().rev() {
        if !body.is_empty()
            && let Some(mut transform) = filter.response_body(extensions, &head)
        {
            body = transform_whole(transform.as_mut(), &body).map_err(|problem| {
                let refused = Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "origin-body-refused",
                    "Origin body refused",
                )
                .with_detail(format!(
                    "the origin's answer could not be rewritten: {}",
                    problem.detail().unwrap_or(problem.kind())
                ));
                problem_back(filters, extensions, refused, ctx)
            })?;
            head.headers.remove(header::CONTENT_LENGTH);
        }
        filter.on_response(extensions, head.status, &mut head.headers, ctx);
    }
    Ok(Response::from_parts(head, body))
}

/// A refusal or error with every filter's response headers.
fn problem_back(
    filters: &[&dyn Filter],
    extensions: &Extensions,
    problem: Problem,
    ctx: &Context<'_>,
) -> Problem {
    let mut headers = HeaderMap::new();
    for filter in filters.iter().rev() {
        filter.on_response(extensions, problem.status(), &mut headers, ctx);
    }
    problem.with_headers(headers)
}

/// A whole buffered body through `transform`.
fn transform_whole(transform: &mut dyn BodyTransform, body: &[u8]) -> Result<Bytes, Problem> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 8);
    transform.push(body, &mut out)?;
    transform.finish(&mut out)?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::function::Services;
    use crate::memory::TestPlatform;
    use crate::platform::Timestamp;
    use futures::executor::block_on;
    use http::HeaderValue;
    use std::cell::RefCell;

    /// Refuses requests with `x-refuse`; leaves a `Seen(name)` and adds
    /// `x-seen-by` on the way back.
    struct Gate {
        name: &'static str,
        order: RefCell<Vec<String>>,
    }
    #[derive(Clone)]
    struct Seen(Vec<&'static str>);

    #[async_trait(?Send)]
    impl Filter for Gate {
        fn name(&self) -> &'static str {
            self.name
        }
        async fn on_request(
            &self,
            head: &mut request::Parts,
            _ctx: &Context<'_>,
        ) -> Result<(), Problem> {
            self.order.borrow_mut().push(format!("head {}", self.name));
            if head.headers.get("x-refuse").is_some_and(|v| v == self.name) {
                return Err(Problem::bad_request("refused", self.name));
            }
            let mut seen = head.extensions.remove::<Seen>().unwrap_or(Seen(Vec::new()));
            seen.0.push(self.name);
            head.extensions.insert(seen);
            Ok(())
        }
        fn request_body(
            &self,
            _head: &request::Parts,
            _ctx: &Context<'_>,
        ) -> Result<Option<Box<dyn BodyTransform>>, Problem> {
            self.order.borrow_mut().push(format!("body {}", self.name));
            Ok(Some(Box::new(Append(self.name))))
        }
        fn on_response(
            &self,
            request: &Extensions,
            _status: StatusCode,
            headers: &mut HeaderMap,
            _ctx: &Context<'_>,
        ) {
            if request
                .get::<Seen>()
                .is_some_and(|s| s.0.contains(&self.name))
            {
                headers.append("x-seen-by", HeaderValue::from_static(self.name));
            }
        }
    }

    struct Append(&'static str);
    impl BodyTransform for Append {
        fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Problem> {
            out.extend_from_slice(chunk);
            Ok(())
        }
        fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Problem> {
            out.extend_from_slice(format!("+{}", self.0).as_bytes());
            Ok(())
        }
    }

    /// Echoes the body and the filters seen.
    struct Echo;
    #[async_trait(?Send)]
    impl Endpoint for Echo {
        async fn call(&self, req: Request, _ctx: &Context<'_>) -> Result<Response, Problem> {
            let seen = req.extensions().get::<Seen>().map_or(0, |s| s.0.len());
            let mut response = Response::new(req.into_body());
            response
                .headers_mut()
                .insert("x-filters", HeaderValue::from(seen));
            Ok(response)
        }
    }

    fn gate(name: &'static str) -> Gate {
        Gate {
            name,
            order: RefCell::new(Vec::new()),
        }
    }

    fn post(body: &'static str, refuse: Option<&'static str>) -> Request {
        let mut builder = http::Request::builder().method("POST").uri("/x");
        if let Some(name) = refuse {
            builder = builder.header("x-refuse", name);
        }
        builder.body(Bytes::from(body)).unwrap()
    }

    fn run_chain(filters: &[&dyn Filter], req: Request) -> Result<Response, Problem> {
        let platform = TestPlatform::at(Timestamp::from_millis(0));
        let services: Services<'_> = platform.services();
        let ctx = Context::named(&services, "test", "cid");
        block_on(run(filters, req, &Echo, &ctx))
    }

    #[test]
    fn heads_first_then_bodies_in_order_and_headers_on_the_way_back() {
        let (a, b) = (gate("a"), gate("b"));
        let response = run_chain(&[&a, &b], post("body", None)).unwrap();
        assert_eq!(response.body().as_ref(), b"body+a+b");
        assert_eq!(response.headers()["x-filters"], "2");
        let seen: Vec<_> = response.headers().get_all("x-seen-by").iter().collect();
        assert_eq!(seen, ["b", "a"]);
        assert_eq!(*a.order.borrow(), ["head a", "body a"]);
        assert_eq!(*b.order.borrow(), ["head b", "body b"]);
    }

    #[test]
    fn a_refusal_stops_the_chain_and_earlier_filters_still_add_their_headers() {
        let (a, b) = (gate("a"), gate("b"));
        let problem = run_chain(&[&a, &b], post("body", Some("b"))).unwrap_err();
        assert_eq!(problem.detail(), Some("b"));
        assert_eq!(
            *a.order.borrow(),
            ["head a"],
            "no body read after a refusal"
        );
        let response = problem.into_response(None);
        let seen: Vec<_> = response.headers().get_all("x-seen-by").iter().collect();
        assert_eq!(seen, ["a"]);
    }

    /// The streamed form of the same chain: the same heads, the same
    /// transforms in the same order, the same headers.
    #[test]
    fn streamed_requests_take_the_same_phases_as_buffered_ones() {
        use crate::stream::Chain;
        let platform = TestPlatform::at(Timestamp::from_millis(0));
        let services: Services<'_> = platform.services();
        let ctx = Context::named(&services, "test", "cid");
        let (a, b) = (gate("a"), gate("b"));
        let filters: [&dyn Filter; 2] = [&a, &b];
        let (mut head, _) = post("", None).into_parts();
        let transforms = block_on(stream_request(&filters, &mut head, &ctx)).unwrap();
        let mut chain = Chain(transforms);
        let mut out = Vec::new();
        for chunk in [&b"bo"[..], b"dy"] {
            chain.push(chunk, &mut out).unwrap();
        }
        chain.finish(&mut out).unwrap();
        assert_eq!(out, b"body+a+b");
        let mut headers = HeaderMap::new();
        let owned: [std::rc::Rc<dyn Filter>; 2] =
            [std::rc::Rc::new(gate("a")), std::rc::Rc::new(gate("b"))];
        response_headers(&owned, &head.extensions, StatusCode::OK, &mut headers, &ctx);
        let seen: Vec<_> = headers.get_all("x-seen-by").iter().collect();
        assert_eq!(seen, ["b", "a"]);

        let (c, d) = (gate("c"), gate("d"));
        let (mut head, _) = post("", Some("d")).into_parts();
        let refused = block_on(stream_request(&[&c, &d], &mut head, &ctx))
            .err()
            .unwrap();
        assert_eq!(
            *c.order.borrow(),
            ["head c"],
            "no body transform after a refusal"
        );
        let response = refused.into_response(None);
        let seen: Vec<_> = response.headers().get_all("x-seen-by").iter().collect();
        assert_eq!(seen, ["c"]);
    }

    #[test]
    fn an_empty_body_is_not_transformed() {
        let a = gate("a");
        let response = run_chain(&[&a], post("", None)).unwrap();
        assert!(response.body().is_empty());
        assert_eq!(*a.order.borrow(), ["head a"]);
    }
}
