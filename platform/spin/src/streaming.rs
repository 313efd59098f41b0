//! Request bodies too large to buffer, for functions that implement
//! [`StreamingFunction`]: the body goes through the function's transform as
//! a `wasi:http` stream, to the origin or back as the answer, never held
//! whole. Bodies that end within the buffered limit take the ordinary path,
//! so their errors are still 4xx answers.
//!
//! To the origin, [`forward_streamed`] applies the buffered path's rules
//! (headers, the breaker — in the key-value store here — and the timeout,
//! 502/503/504 problems); this side only makes the `wasi:http` request.

use std::pin::Pin;

use bytes::{Buf, Bytes};
use edge_core::function::{CORRELATION_HEADER, Context, correlation_id, record_streamed};
use edge_core::live::is_policy_path;
use edge_core::metrics::Recorder;
use edge_core::model::MAX_BODY_BYTES;
use edge_core::origin::{StreamedAnswer, StreamedBody, forward_streamed};
use edge_core::platform::{Clock as _, HttpError, SystemClock, url_for_errors};
use edge_core::stream::{StreamError, StreamPlan, StreamingFunction, started, transform_stream};
use edge_core::{Body, Problem};
use futures::{StreamExt, TryStreamExt};
use http_body::{Body as HttpBody, Frame};
use http_body_util::{BodyExt, StreamBody};

use crate::{SpinStore, load, merge_metrics, request_head, serve, serve_request, services};

/// A body error, boxed.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body, buffered or streamed (neither `Send` nor `Sync`: a
/// component is single-threaded).
pub type LocalBody = Pin<Box<dyn HttpBody<Data = Bytes, Error = BoxError>>>;

/// The response of [`serve_streaming`].
pub type StreamingResponse = http::Response<LocalBody>;

fn local<B>(body: B) -> LocalBody
where
    B: HttpBody<Data = Bytes> + 'static,
    B::Error: Into<BoxError>,
{
    Box::pin(body.map_err(Into::into))
}

fn boxed<B>(response: http::Response<B>) -> StreamingResponse
where
    B: HttpBody<Data = Bytes> + 'static,
    B::Error: Into<BoxError>,
{
    response.map(local)
}

fn problem_response(problem: Problem, path: Option<&str>) -> StreamingResponse {
    boxed(crate::to_spin_response(problem.into_response(path)))
}

/// Serves one request with `F`, streaming a body larger than
/// [`MAX_BODY_BYTES`] (or of undeclared length that turns out larger)
/// through the function's [`StreamPlan`].
pub async fn serve_streaming<F: StreamingFunction>(
    req: spin_sdk::http::Request,
) -> StreamingResponse {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let bodiless = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
    let policy_path = is_policy_path(req.uri().path());
    if bodiless || policy_path || declared.is_some_and(|n| n <= MAX_BODY_BYTES) {
        return boxed(serve::<F>(req).await);
    }
    let (store, recorder) = (SpinStore::open_default(), Recorder::new());
    let services = services(&store, &recorder);
    let live = load::<F>(&services).await;
    let active = live.active();
    let instance = &active.instance;
    let (parts, mut body) = req.into_parts();
    let head = request_head(&parts);
    let mut prefix = Vec::new();
    let mut ended = false;
    while prefix.len() <= MAX_BODY_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    prefix.extend_from_slice(&data.copy_to_bytes(data.remaining()));
                }
            }
            Some(Err(e)) => {
                return problem_response(Problem::bad_request("invalid-body", e.to_string()), None);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    let function = match (instance, ended) {
        (Ok(function), false) => function,
        _ => {
            return match head.body(Body::from(prefix)) {
                Ok(request) => boxed(serve_request(&live, request, &services, &store).await),
                Err(e) => {
                    problem_response(Problem::bad_request("invalid-request", e.to_string()), None)
                }
            };
        }
    };
    let mut head = match head.body(()) {
        Ok(request) => request.into_parts().0,
        Err(e) => {
            return problem_response(Problem::bad_request("invalid-request", e.to_string()), None);
        }
    };
    let input = Box::pin(futures::stream::unfold(body, |mut body| async move {
        loop {
            match body.frame().await? {
                Ok(frame) => {
                    if let Ok(mut data) = frame.into_data() {
                        return Some((Ok(data.copy_to_bytes(data.remaining()).to_vec()), body));
                    }
                }
                Err(e) => return Some((Err(e.to_string()), body)),
            }
        }
    }));
    let (method, uri) = (head.method.clone(), head.uri.clone());
    let started = SystemClock.now();
    let correlation_id = correlation_id(&head.headers, services.random);
    let ctx = Context::named(&services, F::NAME, &correlation_id);
    let response = match function.stream_plan(&mut head, &ctx).await {
        Ok(Some(plan)) => stream(function, head, prefix, input, plan, &ctx).await,
        Ok(None) => local_problem(Problem::payload_too_large(MAX_BODY_BYTES), &head, &ctx),
        Err(problem) => local_problem(problem, &head, &ctx),
    };
    drop(ctx);
    let status = response.status().as_u16();
    record_streamed(
        function,
        &recorder,
        (&method, &uri),
        status,
        started,
        SystemClock.now(),
    );
    merge_metrics(instance, &services, &store).await;
    response
}

/// This side's answer instead of a stream: the problem with the
/// request's correlation id.
fn local_problem(
    problem: Problem,
    head: &http::request::Parts,
    ctx: &Context<'_>,
) -> StreamingResponse {
    let mut response = problem
        .with_extension("correlation_id", ctx.correlation_id())
        .into_response(Some(head.uri.path()));
    if let Ok(id) = http::HeaderValue::from_str(ctx.correlation_id()) {
        response.headers_mut().insert(CORRELATION_HEADER, id);
    }
    boxed(crate::to_spin_response(response))
}

async fn stream<F: StreamingFunction>(
    function: &F,
    head: http::request::Parts,
    prefix: Vec<u8>,
    input: impl futures::Stream<Item = Result<Vec<u8>, String>> + Unpin + 'static,
    plan: StreamPlan,
    ctx: &Context<'_>,
) -> StreamingResponse {
    let failed_id = ctx.correlation_id().to_owned();
    let output = transform_stream(prefix, input, plan.transform).inspect_err(move |e| {
        // The detail names what was wrong and where, never the content.
        eprintln!(
            "{{\"level\":\"error\",\"message\":\"stream aborted\",\"correlation_id\":{:?},\"error\":{:?}}}",
            failed_id,
            e.to_string()
        );
    });
    let Some(origin) = plan.origin else {
        let output = match started(Box::pin(output)).await {
            Ok(output) => output,
            Err(problem) => return local_problem(problem, &head, ctx),
        };
        let mut response = http::Response::new(local(StreamBody::new(output.map(frame))));
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, plan.content_type);
        if let Ok(id) = http::HeaderValue::from_str(ctx.correlation_id()) {
            headers.insert(CORRELATION_HEADER, id);
        }
        return response;
    };
    let mut answer = forward_streamed(
        &origin,
        function.origins(),
        &head,
        plan.content_type,
        output,
        ctx,
        send,
    )
    .await;
    if let Some(add) = plan.answer_headers {
        let (status, headers) = answer.head_mut();
        add(status, headers, ctx);
    }
    match answer {
        StreamedAnswer::Origin(response) => response,
        StreamedAnswer::Local(response) => boxed(crate::to_spin_response(response)),
    }
}

/// A chunk of the body as an `http-body` frame.
fn frame(chunk: Result<Vec<u8>, StreamError>) -> Result<Frame<Bytes>, BoxError> {
    chunk
        .map(|bytes| Frame::data(Bytes::from(bytes)))
        .map_err(|e| BoxError::from(e.to_string()))
}

/// Sends a streamed request through `wasi:http`; the response keeps its
/// body as a stream.
async fn send(req: http::Request<StreamedBody>) -> Result<StreamingResponse, HttpError> {
    let url = url_for_errors(req.uri());
    let req = req.map(|body| local(StreamBody::new(body.map(frame))));
    let response = spin_sdk::http::send(req)
        .await
        .map_err(|code| crate::error_for(&url, &code, None))?;
    Ok(response.map(|body| {
        local(
            body.map_frame(|frame| frame.map_data(|mut d| d.copy_to_bytes(d.remaining())))
                .map_err(|e| BoxError::from(format!("{e:?}"))),
        )
    }))
}
