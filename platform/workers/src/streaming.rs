//! Request bodies too large to buffer, for functions that implement
//! [`StreamingFunction`]: the body goes through the function's transform
//! as a `ReadableStream`, to the origin (a streaming `fetch`) or back as the
//! answer, never held whole. Bodies that end within the buffered limit take
//! the ordinary path, so their errors are still 4xx answers.

use std::rc::Rc;

use edge_core::function::record_streamed;
use edge_core::model::MAX_BODY_BYTES;
use edge_core::origin::HOP_BY_HOP;
use edge_core::platform::Clock as _;
use edge_core::stream::{StreamPlan, StreamingFunction, transform_stream};
use edge_core::{Body, Problem};
use futures::{StreamExt, TryStreamExt};
use wasm_bindgen::JsValue;

use crate::convert::{declared_length, request_head, to_worker_response};
use crate::{ConsoleSink, DateClock, RECORDER, flush_when_due, instance, serve, serve_request};

/// Serves one request with `F`, streaming a body larger than
/// [`MAX_BODY_BYTES`] (or of undeclared length that turns out larger)
/// through the function's [`StreamPlan`].
pub async fn serve_streaming<F: StreamingFunction + 'static>(
    mut req: worker::Request,
    env: &worker::Env,
    ctx: &worker::Context,
) -> worker::Result<worker::Response> {
    let bodiless = matches!(req.method(), worker::Method::Get | worker::Method::Head);
    if bodiless || declared_length(&req).is_some_and(|n| n <= MAX_BODY_BYTES) {
        return serve::<F>(req, env, ctx).await;
    }
    let instance = instance::<F>(env);
    let Ok(function) = instance.as_ref() else {
        return serve::<F>(req, env, ctx).await;
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
        let response = serve_request(&instance, request, env).await;
        flush_when_due(&instance, env, ctx);
        return response;
    }
    let parts = match head.body(()) {
        Ok(request) => request.into_parts().0,
        Err(e) => {
            let problem = Problem::bad_request("invalid-request", e.to_string());
            return to_worker_response(problem.into_response(None));
        }
    };
    let path = parts.uri.path().to_owned();
    let plan = match function.stream_plan(&parts) {
        Ok(Some(plan)) => plan,
        Ok(None) => {
            let problem = Problem::payload_too_large(MAX_BODY_BYTES);
            return to_worker_response(problem.into_response(Some(&path)));
        }
        Err(problem) => return to_worker_response(problem.into_response(Some(&path))),
    };
    let (method, uri) = (parts.method.clone(), parts.uri.clone());
    let started = DateClock.now();
    let response = stream::<F>(parts, prefix, input, plan).await;
    let status = response.as_ref().map_or(500, worker::Response::status_code);
    RECORDER.with(|recorder| {
        record_streamed(
            function,
            recorder,
            (&method, &uri),
            status,
            started,
            DateClock.now(),
        );
    });
    flush_when_due(&instance, env, ctx);
    response
}

async fn stream<F: StreamingFunction>(
    parts: http::request::Parts,
    prefix: Vec<u8>,
    input: std::pin::Pin<Box<worker::ByteStream>>,
    plan: StreamPlan,
) -> worker::Result<worker::Response> {
    use edge_core::log::{Level, LogSink};
    let name = F::NAME;
    let path = Rc::new(parts.uri.path().to_owned());
    let failed_path = Rc::clone(&path);
    let output = transform_stream(prefix, input, plan.transform).map_err(move |e| {
        // The detail names what was wrong and where, never the content.
        let line = serde_json::json!({
            "level": "error", "service": name, "message": "stream aborted",
            "path": failed_path.as_str(), "error": e.to_string(),
        });
        ConsoleSink.write(Level::Error, &line.to_string());
        worker::Error::RustError(e.to_string())
    });
    let content_type = plan
        .content_type
        .to_str()
        .unwrap_or("application/octet-stream");
    let Some(origin) = plan.origin else {
        let headers = worker::Headers::new();
        headers.set("content-type", content_type)?;
        return Ok(worker::Response::from_stream(output)?.with_headers(headers));
    };
    let target = format!(
        "{}{}",
        origin.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let headers = worker::Headers::new();
    for (name, value) in &parts.headers {
        let skip = HOP_BY_HOP.contains(&name.as_str()) || name == http::header::CONTENT_LENGTH;
        if let (false, Ok(value)) = (skip, value.to_str()) {
            headers.append(name.as_str(), value)?;
        }
    }
    headers.set("content-type", content_type)?;
    let body = wasm_streams::ReadableStream::from_stream(output.map(|chunk| {
        chunk
            .map(|bytes| JsValue::from(js_sys::Uint8Array::from(bytes.as_slice())))
            .map_err(|e| JsValue::from_str(&e.to_string()))
    }))
    .into_raw();
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::from(parts.method.as_str().to_owned()))
        .with_headers(headers)
        .with_body(Some(body.into()));
    let outbound = worker::Request::new_with_init(&target, &init)?;
    match worker::Fetch::Request(outbound).send().await {
        Ok(response) => Ok(response),
        Err(e) => {
            let line = serde_json::json!({
                "level": "warn", "service": name, "message": "origin unreachable",
                "path": path.as_str(), "error": e.to_string(),
            });
            ConsoleSink.write(Level::Warn, &line.to_string());
            let problem = Problem::new(
                http::StatusCode::BAD_GATEWAY,
                "origin-unavailable",
                "Origin unavailable",
            )
            .with_detail("the origin could not be reached");
            to_worker_response(problem.into_response(Some(&path)))
        }
    }
}
