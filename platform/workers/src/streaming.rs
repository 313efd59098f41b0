//! Request bodies too large to buffer, for functions that implement
//! [`StreamingFunction`]: the body goes through the function's transform
//! as a `ReadableStream`, to the origin (a streaming `fetch`) or back as the
//! answer, never held whole. Bodies that end within the buffered limit take
//! the ordinary path, so their errors are still 4xx answers.
//!
//! To the origin, [`forward_streamed`] applies the buffered path's rules
//! (headers, the function's breaker and timeout, 502/503/504 problems);
//! this side only makes the `fetch`, aborted when the origin times out.

use std::rc::Rc;

use edge_core::function::{CORRELATION_HEADER, Context, correlation_id, record_streamed};
use edge_core::live::is_policy_path;
use edge_core::log::{Level, LogSink};
use edge_core::model::MAX_BODY_BYTES;
use edge_core::origin::{StreamedAnswer, StreamedBody, forward_streamed};
use edge_core::platform::{Clock as _, HttpError, OsRandom, url_for_errors};
use edge_core::stream::{StreamPlan, StreamingFunction, started, transform_stream};
use edge_core::{Body, Problem};
use futures::{StreamExt, TryStreamExt};
use wasm_bindgen::JsValue;

use crate::convert::{declared_length, request_head, to_worker_headers, to_worker_response};
use crate::{
    ConsoleSink, DateClock, DurableObjectStore, KvCache, RECORDER, flush_when_due, live, serve,
    serve_request, services,
};

/// Serves one request with `F`, streaming a body larger than
/// [`MAX_BODY_BYTES`] (or of undeclared length that turns out larger)
/// through the function's [`StreamPlan`].
pub async fn serve_streaming<F: StreamingFunction + 'static>(
    mut req: worker::Request,
    env: &worker::Env,
    worker_ctx: &worker::Context,
) -> worker::Result<worker::Response> {
    let bodiless = matches!(req.method(), worker::Method::Get | worker::Method::Head);
    let policy_path = req.url().is_ok_and(|url| is_policy_path(url.path()));
    if bodiless || policy_path || declared_length(&req).is_some_and(|n| n <= MAX_BODY_BYTES) {
        return serve::<F>(req, env, worker_ctx).await;
    }
    let (store, cache) = (DurableObjectStore::from_env(env), KvCache::from_env(env));
    let recorder = RECORDER.with(Rc::clone);
    let services = services(&store, &cache, &recorder);
    let active = live::<F>(env).current(&services).await;
    let Ok(function) = active.instance.as_ref() else {
        return serve::<F>(req, env, worker_ctx).await;
    };
    let head = match request_head(&req) {
        Ok(head) => head,
        Err(problem) => return to_worker_response(problem.into_response(None)),
    };
    let mut input = Box::pin(req.stream()?);
    let mut prefix = Vec::new();
    let mut ended = false;
    while prefix.len() <= MAX_BODY_BYTES {
        match input.next().await {
            Some(Ok(chunk)) => prefix.extend_from_slice(&chunk),
            Some(Err(e)) => {
                let problem = Problem::bad_request("invalid-body", e.to_string());
                return to_worker_response(problem.into_response(None));
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    if ended {
        let request = match head.body(Body::from(prefix)) {
            Ok(request) => request,
            Err(e) => {
                let problem = Problem::bad_request("invalid-request", e.to_string());
                return to_worker_response(problem.into_response(None));
            }
        };
        return serve_request::<F>(request, env, worker_ctx).await;
    }
    let mut parts = match head.body(()) {
        Ok(request) => request.into_parts().0,
        Err(e) => {
            let problem = Problem::bad_request("invalid-request", e.to_string());
            return to_worker_response(problem.into_response(None));
        }
    };
    let (method, uri) = (parts.method.clone(), parts.uri.clone());
    let started = DateClock.now();
    let correlation_id = correlation_id(&parts.headers, &OsRandom);
    let ctx = Context::named(&services, F::NAME, &correlation_id);
    let response = match function.stream_plan(&mut parts, &ctx).await {
        Ok(Some(plan)) => stream(function, parts, prefix, input, plan, &ctx).await,
        Ok(None) => local_problem(Problem::payload_too_large(MAX_BODY_BYTES), &parts, &ctx),
        Err(problem) => local_problem(problem, &parts, &ctx),
    };
    drop(ctx);
    let status = response.as_ref().map_or(500, worker::Response::status_code);
    record_streamed(
        function,
        &recorder,
        (&method, &uri),
        status,
        started,
        DateClock.now(),
    );
    flush_when_due(&active, env, worker_ctx);
    response
}

/// This side's answer instead of a stream: the problem with the
/// request's correlation id.
fn local_problem(
    problem: Problem,
    parts: &http::request::Parts,
    ctx: &Context<'_>,
) -> worker::Result<worker::Response> {
    let mut response = problem
        .with_extension("correlation_id", ctx.correlation_id())
        .into_response(Some(parts.uri.path()));
    if let Ok(id) = http::HeaderValue::from_str(ctx.correlation_id()) {
        response.headers_mut().insert(CORRELATION_HEADER, id);
    }
    to_worker_response(response)
}

async fn stream<F: StreamingFunction>(
    function: &F,
    parts: http::request::Parts,
    prefix: Vec<u8>,
    input: std::pin::Pin<Box<worker::ByteStream>>,
    plan: StreamPlan,
    ctx: &Context<'_>,
) -> worker::Result<worker::Response> {
    let name = F::NAME;
    let failed_path = Rc::new(parts.uri.path().to_owned());
    let failed_id = ctx.correlation_id().to_owned();
    let output = transform_stream(prefix, input, plan.transform).inspect_err(move |e| {
        // The detail names what was wrong and where, never the content.
        let line = serde_json::json!({
            "level": "error", "service": name, "message": "stream aborted",
            "correlation_id": failed_id, "path": failed_path.as_str(),
            "error": e.to_string(),
        });
        ConsoleSink.write(Level::Error, &line.to_string());
    });
    let Some(origin) = plan.origin else {
        let output = match started(Box::pin(output)).await {
            Ok(output) => output,
            Err(problem) => return local_problem(problem, &parts, ctx),
        };
        let headers = worker::Headers::new();
        let content_type = plan
            .content_type
            .to_str()
            .unwrap_or("application/octet-stream");
        headers.set("content-type", content_type)?;
        headers.set(CORRELATION_HEADER, ctx.correlation_id())?;
        let output = output.map_err(|e| worker::Error::RustError(e.to_string()));
        return Ok(worker::Response::from_stream(output)?.with_headers(headers));
    };
    let mut answer = forward_streamed(
        &origin,
        function.origins(),
        &parts,
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
        StreamedAnswer::Origin(response) => {
            let (head, response) = response.into_parts();
            Ok(response
                .with_status(head.status.as_u16())
                .with_headers(to_worker_headers(&head.headers)?))
        }
        StreamedAnswer::Local(response) => to_worker_response(response),
    }
}

/// Aborts a `fetch` that is dropped before its answer came (the origin
/// timed out), so that the body stops flowing.
struct AbortOnDrop(Option<worker::AbortController>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(controller) = self.0.take() {
            controller.abort();
        }
    }
}

/// Sends a streamed request with `fetch`; the response keeps its body as
/// a stream.
async fn send(
    req: http::Request<StreamedBody>,
) -> Result<http::Response<worker::Response>, HttpError> {
    let (parts, body) = req.into_parts();
    let url = url_for_errors(&parts.uri);
    let transport = |e: worker::Error| HttpError::Transport {
        url: url.clone(),
        reason: e.to_string(),
    };
    let body = wasm_streams::ReadableStream::from_stream(body.map(|chunk| {
        chunk
            .map(|bytes| JsValue::from(js_sys::Uint8Array::from(bytes.as_slice())))
            .map_err(|e| JsValue::from_str(&e.to_string()))
    }))
    .into_raw();
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::from(parts.method.as_str().to_owned()))
        .with_headers(to_worker_headers(&parts.headers).map_err(transport)?)
        .with_body(Some(body.into()));
    let outbound =
        worker::Request::new_with_init(&parts.uri.to_string(), &init).map_err(transport)?;
    let controller = worker::AbortController::default();
    let signal = controller.signal();
    let mut abort = AbortOnDrop(Some(controller));
    let response = worker::Fetch::Request(outbound)
        .send_with_signal(&signal)
        .await
        .map_err(transport)?;
    // Answered: the response body streams on, never aborted.
    abort.0 = None;
    let mut head = http::Response::builder().status(response.status_code());
    for (name, value) in response.headers().entries() {
        head = head.header(name, value);
    }
    head.body(response).map_err(|e| HttpError::Transport {
        url,
        reason: e.to_string(),
    })
}
