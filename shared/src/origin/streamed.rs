//! Forwarding a body too large to buffer ([`crate::stream`]): the same
//! origin rules as [`OriginClient::forward`] — the function's breaker and
//! settings, [`request_headers`] and [`response_headers`], 502
//! `origin-unavailable`, 504 `origin-timeout`, 503 `origin-circuit-open` —
//! around a send the platform makes itself, with the body as a stream.
//!
//! A streamed body cannot be sent twice, so there are no retries. The
//! timeout is one of inactivity: the origin times out when, for
//! `timeout`, it neither took a chunk of the body nor answered (after the
//! last chunk, it has `timeout` to answer), so a large upload that keeps
//! moving is never cut off. A body that breaks on this side (the
//! transform refused it) is not the origin's failure: the transform's
//! problem is the answer and the breaker counts nothing.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::{Either, select};
use futures::{Stream, StreamExt};
use http::HeaderValue;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::json;

use super::{
    Origin, OriginClient, OriginSettings, is_unavailable, request_headers, response_headers,
    timeout_problem, unavailable_problem, unsupported_problem, warn_failure,
};
use crate::function::{CORRELATION_HEADER, Context};
use crate::model::Response;
use crate::platform::{HttpError, url_for_errors};
use crate::problem::Problem;
use crate::stream::StreamError;

/// A streamed request body as the platform's send gets it.
pub type StreamedBody = Pin<Box<dyn Stream<Item = Result<Vec<u8>, StreamError>>>>;

/// What [`forward_streamed`] answers the client with.
#[derive(Debug)]
pub enum StreamedAnswer<R> {
    /// The origin's response: status and headers as they go to the
    /// client, the body the platform's own (streamed on as it comes).
    Origin(http::Response<R>),
    /// This side's answer (a problem), buffered.
    Local(Response),
}

impl<R> StreamedAnswer<R> {
    /// The answer's status and its headers, to add to.
    pub fn head_mut(&mut self) -> (http::StatusCode, &mut http::HeaderMap) {
        match self {
            StreamedAnswer::Origin(response) => (response.status(), response.headers_mut()),
            StreamedAnswer::Local(response) => (response.status(), response.headers_mut()),
        }
    }
}

/// Sends a request with head `head` and the streamed `body` (of
/// `content_type`) to `origin` (a [`StreamPlan`](crate::stream::StreamPlan)'s)
/// through `send`, the platform's streaming client, and answers the
/// origin's response (without hop-by-hop headers, with the correlation
/// id) or a problem rendered as [`crate::serve`] renders it.
///
/// The breaker and settings are those of the function's client for that
/// origin among `clients` ([`EdgeFunction::origins`]), or the defaults.
/// `send` gets the absolute URL, the forwarded headers (no
/// `Content-Length`) and the body; its future is dropped when the origin
/// times out (a platform aborts its request then).
///
/// [`EdgeFunction::origins`]: crate::EdgeFunction::origins
pub async fn forward_streamed<R, F, Fut>(
    origin: &str,
    clients: Vec<&OriginClient>,
    head: &http::request::Parts,
    content_type: HeaderValue,
    body: impl Stream<Item = Result<Vec<u8>, StreamError>> + 'static,
    ctx: &Context<'_>,
    send: F,
) -> StreamedAnswer<R>
where
    F: FnOnce(http::Request<StreamedBody>) -> Fut,
    Fut: Future<Output = Result<http::Response<R>, HttpError>>,
{
    let answer = match Origin::parse(origin) {
        Err(e) => {
            ctx.log()
                .error("invalid origin", json!({ "error": e.to_string() }));
            Err(Problem::misconfigured())
        }
        Ok(origin) => {
            let fallback;
            let client = match clients.into_iter().find(|c| *c.origin() == origin) {
                Some(client) => client,
                None => {
                    fallback = OriginClient::new(origin, OriginSettings::default());
                    &fallback
                }
            };
            client
                .forward_stream(head, content_type, body, ctx, send)
                .await
        }
    };
    let mut answer = match answer {
        Ok(response) => StreamedAnswer::Origin(response),
        Err(problem) => StreamedAnswer::Local(
            problem
                .with_extension("correlation_id", ctx.correlation_id())
                .into_response(Some(head.uri.path())),
        ),
    };
    let (_, headers) = answer.head_mut();
    if let Ok(id) = HeaderValue::from_str(ctx.correlation_id()) {
        headers.insert(CORRELATION_HEADER, id);
    }
    answer
}

impl OriginClient {
    /// [`forward_streamed`] with this client.
    async fn forward_stream<R, F, Fut>(
        &self,
        head: &http::request::Parts,
        content_type: HeaderValue,
        body: impl Stream<Item = Result<Vec<u8>, StreamError>> + 'static,
        ctx: &Context<'_>,
        send: F,
    ) -> Result<http::Response<R>, Problem>
    where
        F: FnOnce(http::Request<StreamedBody>) -> Fut,
        Fut: Future<Output = Result<http::Response<R>, HttpError>>,
    {
        let clock = ctx.clock();
        let uri = self.target(head)?;
        let mut headers = request_headers(head, ctx.correlation_id(), ctx.random());
        headers.remove(CONTENT_LENGTH);
        headers.insert(CONTENT_TYPE, content_type);
        let mut permit = self.admit(clock.now(), ctx).await?;

        let (progress, watched) = mpsc::unbounded();
        let broken = Rc::new(RefCell::new(None));
        let mut outbound = http::Request::new(watch(body, progress, Rc::clone(&broken)));
        *outbound.method_mut() = head.method.clone();
        *outbound.uri_mut() = uri.clone();
        *outbound.headers_mut() = headers;
        let timeout = self.settings.timeout.0;
        let exchange = std::pin::pin!(send(outbound));
        let stall = std::pin::pin!(stalled(watched, clock.now(), timeout, ctx));
        let result = match select(exchange, stall).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(HttpError::Timeout {
                url: url_for_errors(&uri),
                after: timeout,
            }),
        };

        let broken = broken.borrow_mut().take();
        if let Some(error) = broken {
            // This side broke the body: nothing to count.
            permit.release(ctx).await;
            return match result {
                Ok(mut response) => {
                    response_headers(response.headers_mut());
                    Ok(response)
                }
                Err(_) => Err(match error {
                    StreamError::Transform(problem) => problem,
                    StreamError::Input(reason) => Problem::bad_request("invalid-body", reason),
                }),
            };
        }
        let error = match result {
            Ok(mut response) => {
                let failed = is_unavailable(response.status());
                if failed {
                    warn_failure(&format!("answered {}", response.status()), false, 1, ctx);
                }
                let (transition, _) = permit.record(clock.now(), failed, ctx).await;
                self.note(transition, ctx);
                response_headers(response.headers_mut());
                return Ok(response);
            }
            Err(HttpError::Unsupported) => {
                permit.release(ctx).await;
                return Err(unsupported_problem());
            }
            Err(error) => error,
        };
        let timed_out = matches!(error, HttpError::Timeout { .. });
        warn_failure(&error.to_string(), timed_out, 1, ctx);
        let (transition, _) = permit.record(clock.now(), true, ctx).await;
        self.note(transition, ctx);
        Err(if timed_out {
            timeout_problem(timeout)
        } else {
            unavailable_problem()
        }
        .with_extension("attempts", 1))
    }
}

/// `body`, telling `progress` of every chunk the origin takes and keeping
/// the error that ends it, if one does, in `broken`.
fn watch(
    body: impl Stream<Item = Result<Vec<u8>, StreamError>> + 'static,
    progress: mpsc::UnboundedSender<()>,
    broken: Rc<RefCell<Option<StreamError>>>,
) -> StreamedBody {
    Box::pin(body.inspect(move |item| {
        // The watcher is gone once the exchange ended: nothing to tell.
        let _ = progress.unbounded_send(());
        if let Err(error) = item {
            *broken.borrow_mut() = Some(error.clone());
        }
    }))
}

/// Resolves once nothing moved for `timeout` since `since`: no chunk of
/// the body taken (`progress`), no answer. One timer at a time: progress
/// moves the deadline on, and the timer, when it fires early, sleeps the
/// rest. A platform without timers never times out here.
async fn stalled(
    mut progress: mpsc::UnboundedReceiver<()>,
    since: crate::platform::Timestamp,
    timeout: Duration,
    ctx: &Context<'_>,
) {
    let clock = ctx.clock();
    let mut last = since;
    let mut watching = true;
    loop {
        let idle = clock.now().0.saturating_sub(last.0);
        if idle >= timeout {
            return;
        }
        let mut timer = ctx.http().sleep(timeout - idle);
        let slept = loop {
            if !watching {
                break timer.await;
            }
            // Progress first: a chunk taken as the timer fires counts.
            match select(progress.next(), timer).await {
                Either::Left((Some(()), rest)) => {
                    last = clock.now();
                    timer = rest;
                }
                Either::Left((None, rest)) => {
                    watching = false;
                    timer = rest;
                }
                Either::Right((slept, _)) => break slept,
            }
        };
        if !slept {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::Cell;
    use std::task::Poll;

    use async_trait::async_trait;
    use bytes::Bytes;
    use futures::executor::block_on;
    use serde_json::Value;

    use super::*;
    use crate::function::Services;
    use crate::memory::{FakeClock, Outcome, StaticHttpClient, TestPlatform};
    use crate::model::{ClientAddr, Request, Runtime};
    use crate::platform::{Clock, HttpClient, KeyValueStore, Timestamp};
    use crate::policy::PolicyDuration;

    const BASE: &str = "https://origin.test/base/";
    const ITEMS: &str = "https://origin.test/base/items";
    const T0: u64 = 1_795_305_600_000;

    type Chunks = Vec<Result<Vec<u8>, StreamError>>;

    fn platform() -> TestPlatform {
        TestPlatform::at(Timestamp::from_millis(T0))
    }

    fn elapsed(p: &TestPlatform) -> Duration {
        p.clock.now().0 - Duration::from_millis(T0)
    }

    fn head(path: &str) -> http::request::Parts {
        let mut req = http::Request::builder()
            .method("POST")
            .uri(format!("https://gw.example{path}"))
            .header("content-length", "5000000")
            .header("content-type", "application/x-ndjson")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(ClientAddr("192.0.2.1".parse().unwrap()));
        req.into_parts().0
    }

    fn chunks(parts: &[&[u8]]) -> Chunks {
        parts.iter().map(|c| Ok(c.to_vec())).collect()
    }

    fn ndjson() -> HeaderValue {
        HeaderValue::from_static("application/x-ndjson")
    }

    /// What a platform's send does, on the fake origin: reads the whole
    /// body (failing when it breaks), then asks `http`.
    async fn through(
        http: &StaticHttpClient,
        req: http::Request<StreamedBody>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let (parts, mut body) = req.into_parts();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            bytes.extend(chunk.map_err(|e| HttpError::Transport {
                url: url_for_errors(&parts.uri),
                reason: e.to_string(),
            })?);
        }
        http.send(Request::from_parts(parts, Bytes::from(bytes)))
            .await
    }

    /// Streams `body` to `origin` on `services` as a platform would.
    fn forward(
        services: &Services<'_>,
        http: &StaticHttpClient,
        clients: Vec<&OriginClient>,
        origin: &str,
        body: Chunks,
    ) -> StreamedAnswer<Bytes> {
        let ctx = Context::named(services, "proxy", "corr-1");
        let head = head("/items?x=1");
        block_on(forward_streamed(
            origin,
            clients,
            &head,
            ndjson(),
            futures::stream::iter(body),
            &ctx,
            |req| through(http, req),
        ))
    }

    fn problem(response: &Response) -> Value {
        serde_json::from_slice(response.body()).unwrap()
    }

    impl<R: std::fmt::Debug> StreamedAnswer<R> {
        fn unwrap(self) -> http::Response<R> {
            match self {
                StreamedAnswer::Origin(response) => response,
                StreamedAnswer::Local(local) => panic!("answered {local:?}"),
            }
        }
        fn unwrap_err(self) -> Response {
            match self {
                StreamedAnswer::Origin(response) => panic!("the origin answered {response:?}"),
                StreamedAnswer::Local(local) => local,
            }
        }
    }

    fn client(settings: OriginSettings) -> OriginClient {
        OriginClient::new(Origin::parse(BASE).unwrap(), settings)
    }

    #[test]
    fn a_streamed_body_goes_with_the_buffered_paths_headers() {
        let p = platform();
        let mut answer = http::Response::new(Bytes::from_static(b"ok"));
        for (name, value) in [
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("x-origin", "yes"),
        ] {
            answer
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        p.http.route(ITEMS, answer);
        let services = p.services();
        let ctx = Context::named(&services, "proxy", "corr-1");
        let mut head = head("/items?x=1");
        for (name, value) in [
            ("connection", "keep-alive"),
            ("spin-full-url", "https://gw.example/items?x=1"),
            ("cf-ray", "8f00-ZRH"),
            ("x-real-ip", "203.0.113.7"),
            ("x-keep", "yes"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ] {
            head.headers.insert(name, HeaderValue::from_static(value));
        }
        let response = block_on(forward_streamed(
            BASE,
            Vec::new(),
            &head,
            HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
            futures::stream::iter(chunks(&[b"{}\n", b"", b"{}\n"])),
            &ctx,
            |req| through(&p.http, req),
        ))
        .unwrap();
        assert_eq!(response.status(), 200);
        let h = response.headers();
        for gone in ["connection", "x-hop", "keep-alive"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h["x-origin"], "yes");
        assert_eq!(h["x-correlation-id"], "corr-1");

        let seen = p.http.last_request(ITEMS).unwrap();
        assert_eq!(seen.uri().to_string(), "https://origin.test/base/items?x=1");
        assert_eq!(seen.method(), http::Method::POST);
        assert_eq!(seen.body().as_ref(), b"{}\n{}\n");
        let h = seen.headers();
        assert!(!h.contains_key("content-length"), "the length changed");
        assert_eq!(h["content-type"], "application/x-ndjson; charset=utf-8");
        for gone in ["connection", "spin-full-url", "cf-ray", "x-real-ip", "host"] {
            assert!(!h.contains_key(gone), "{gone} forwarded");
        }
        assert_eq!(h["x-keep"], "yes");
        assert_eq!(h["forwarded"], "for=192.0.2.1;proto=https;host=gw.example");
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-correlation-id"], "corr-1");
        let traceparent = h["traceparent"].to_str().unwrap();
        assert!(traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
        assert!(!traceparent.contains("b7ad6b7169203331"), "a new span id");
    }

    #[test]
    fn a_failing_origin_is_502_and_counts_on_the_functions_breaker() {
        let p = platform();
        p.http.route(ITEMS, http::Response::new(Bytes::new()));
        let services = p.services();
        let own = client(OriginSettings::default());
        p.http.script(ITEMS, [Outcome::Fail]);
        let r = forward(&services, &p.http, vec![&own], BASE, chunks(&[b"x"])).unwrap_err();
        assert_eq!(r.status(), 502);
        let body = problem(&r);
        assert_eq!(
            body["type"],
            "urn:edge-functions:problem:origin-unavailable"
        );
        assert_eq!(
            (body["attempts"].clone(), body["correlation_id"].clone()),
            (1.into(), "corr-1".into())
        );
        assert_eq!(r.headers()["x-correlation-id"], "corr-1");
        assert!(!String::from_utf8_lossy(r.body()).contains("origin.test"));
        // The origin's own "unavailable" passes through and counts too.
        p.http.script(
            ITEMS,
            [Outcome::Status(http::StatusCode::SERVICE_UNAVAILABLE)],
        );
        let r = forward(&services, &p.http, vec![&own], BASE, chunks(&[b"x"])).unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(
            own.breaker(p.clock.now()).failures,
            2,
            "one each, never retried"
        );
        assert_eq!(p.http.calls(ITEMS), 2);

        // Eight more: open, and refused without sending.
        p.http.script(ITEMS, [Outcome::Fail; 8]);
        for _ in 0..8 {
            forward(&services, &p.http, vec![&own], BASE, chunks(&[b"x"])).unwrap_err();
        }
        let r = forward(&services, &p.http, vec![&own], BASE, chunks(&[b"x"])).unwrap_err();
        assert_eq!(r.status(), 503);
        assert_eq!(
            problem(&r)["type"],
            "urn:edge-functions:problem:origin-circuit-open"
        );
        assert_eq!(r.headers()["retry-after"], "30");
        assert_eq!(p.http.calls(ITEMS), 10);
    }

    #[test]
    fn on_spin_streamed_outcomes_count_in_the_stored_breaker() {
        let p = platform();
        let services = Services {
            runtime: Runtime::Spin,
            ..p.services()
        };
        p.http.script(ITEMS, [Outcome::Fail; 10]);
        for _ in 0..10 {
            // No client of the function's: a fresh one, as on Spin.
            let r = forward(&services, &p.http, Vec::new(), BASE, chunks(&[b"x"])).unwrap_err();
            assert_eq!(r.status(), 502);
        }
        let r = forward(&services, &p.http, Vec::new(), BASE, chunks(&[b"x"])).unwrap_err();
        assert_eq!(r.status(), 503);
        assert_eq!(p.http.calls(ITEMS), 10);
        let stored = block_on(p.store.get("edge:breaker:https://origin.test/base"))
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&stored).contains("\"mode\":\"open\""));
    }

    #[test]
    fn a_silent_origin_is_504_after_the_timeout() {
        let p = platform();
        let services = p.services();
        let ctx = Context::named(&services, "proxy", "corr-1");
        let own = client(OriginSettings {
            timeout: PolicyDuration(Duration::from_secs(10)),
            ..OriginSettings::default()
        });
        let head = head("/items");
        let answer = block_on(forward_streamed(
            BASE,
            vec![&own],
            &head,
            ndjson(),
            futures::stream::iter(chunks(&[b"x"])),
            &ctx,
            |_req| futures::future::pending::<Result<http::Response<Bytes>, HttpError>>(),
        ));
        let r = answer.unwrap_err();
        assert_eq!(r.status(), 504);
        let body = problem(&r);
        assert_eq!(body["type"], "urn:edge-functions:problem:origin-timeout");
        assert_eq!(body["detail"], "the origin did not answer within 10s");
        assert_eq!(elapsed(&p), Duration::from_secs(10));
        assert_eq!(own.breaker(p.clock.now()).failures, 1);
        assert!(p.logs.lines().join("\n").contains("origin timed out"));
    }

    /// Timers on a [`FakeClock`] that only fire once the clock got there
    /// (the test's origin moves it).
    struct Timers(FakeClock);

    #[async_trait(?Send)]
    impl HttpClient for Timers {
        async fn send(&self, _req: Request) -> Result<Response, HttpError> {
            futures::future::pending().await
        }
        async fn sleep(&self, duration: Duration) -> bool {
            let due = self.0.now().0 + duration;
            futures::future::poll_fn(|cx| {
                if self.0.now().0 >= due {
                    Poll::Ready(true)
                } else {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await
        }
    }

    /// Lets the other side of a `select` run once.
    async fn yield_once() {
        let yielded = Cell::new(false);
        futures::future::poll_fn(|cx| {
            if yielded.replace(true) {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }

    /// An origin that takes a chunk after each of `gaps` (in 10 s steps),
    /// then answers 200 after the last gap.
    fn slow_origin(p: &TestPlatform, gaps: &[u32], timeout: Duration) -> StreamedAnswer<Bytes> {
        let timers = Timers(p.clock.clone());
        let services = Services {
            http: &timers,
            ..p.services()
        };
        let ctx = Context::named(&services, "proxy", "corr-1");
        let own = client(OriginSettings {
            timeout: PolicyDuration(timeout),
            ..OriginSettings::default()
        });
        let head = head("/items");
        let clock = p.clock.clone();
        block_on(forward_streamed(
            BASE,
            vec![&own],
            &head,
            ndjson(),
            futures::stream::iter(chunks(&[b"a", b"b", b"c"])),
            &ctx,
            |req| async move {
                let mut body = req.into_body();
                for gap in gaps {
                    for _ in 0..*gap {
                        clock.advance(Duration::from_secs(10));
                        yield_once().await;
                    }
                    body.next().await;
                    yield_once().await;
                }
                Ok(http::Response::new(Bytes::new()))
            },
        ))
    }

    #[test]
    fn the_timeout_is_one_of_inactivity() {
        // 20 s between chunks and before the answer: 80 s in all, never
        // 30 s without progress.
        let p = platform();
        let r = slow_origin(&p, &[2, 2, 2, 2], Duration::from_secs(30)).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(elapsed(&p), Duration::from_secs(80));
        // 40 s without taking a chunk: 504 once 30 s passed.
        let p = platform();
        let r = slow_origin(&p, &[1, 4, 1], Duration::from_secs(30)).unwrap_err();
        assert_eq!(r.status(), 504);
        assert_eq!(elapsed(&p), Duration::from_secs(40), "10 s, then 30 idle");
    }

    #[test]
    fn a_body_broken_on_this_side_answers_its_problem_and_counts_nothing() {
        let p = platform();
        p.http.route(ITEMS, http::Response::new(Bytes::new()));
        let services = p.services();
        let own = client(OriginSettings::default());
        let broken = vec![
            Ok(b"{}\n".to_vec()),
            Err(StreamError::Transform(Problem::bad_request(
                "invalid-ndjson",
                "line 2 is not JSON",
            ))),
        ];
        let r = forward(&services, &p.http, vec![&own], BASE, broken).unwrap_err();
        assert_eq!(r.status(), 400);
        let body = problem(&r);
        assert_eq!(body["type"], "urn:edge-functions:problem:invalid-ndjson");
        assert_eq!(body["correlation_id"], "corr-1");
        assert_eq!(own.breaker(p.clock.now()).requests, 0);
        let input = vec![Err(StreamError::Input("connection reset".into()))];
        let r = forward(&services, &p.http, vec![&own], BASE, input).unwrap_err();
        assert_eq!(
            problem(&r)["type"],
            "urn:edge-functions:problem:invalid-body"
        );
        assert_eq!(own.breaker(p.clock.now()).requests, 0);
    }

    #[test]
    fn an_invalid_origin_is_misconfigured() {
        let p = platform();
        let services = p.services();
        let r = forward(&services, &p.http, Vec::new(), "ftp://x", chunks(&[b"x"])).unwrap_err();
        assert_eq!(r.status(), 500);
        assert_eq!(
            problem(&r)["type"],
            "urn:edge-functions:problem:misconfigured"
        );
        assert!(p.logs.lines().join("\n").contains("invalid origin"));
    }
}
