//! Cloudflare Queues: the consumer side of a function that takes batches
//! (`#[event(queue)]` calls [`consume`]) and a producer endpoint that
//! enqueues NDJSON lines ([`produce`]). The function decides each message
//! ([`QueueConsumer`]); this glue reads the bodies, acknowledges or retries
//! each message, counts batches, messages, retries and dead letters in the
//! isolate's metrics, and never logs a body.
//!
//! Retries and the dead-letter queue are the platform's (`max_retries`,
//! `dead_letter_queue` of the consumer in `wrangler.toml`): a retried
//! message that runs out of attempts moves to the dead-letter queue. The
//! worker that consumes that queue too, named by the variable
//! [`DEAD_LETTER_QUEUE`], hands its batches to
//! [`QueueConsumer::dead_letters`].
//!
//! The function is the isolate's one, with the policy version the request
//! path serves (`edge_core::live`): a policy `PUT` reaches the consumer too.

use std::cell::RefCell;
use std::rc::Rc;

use async_trait::async_trait;
use edge_core::function::{Context, MetricsSink, flush_metrics};
use edge_core::live::Active;
use edge_core::model::json_response;
use edge_core::{Clock, EdgeFunction, Problem, Request};
use http::StatusCode;
use serde_json::json;
use wasm_bindgen::{JsCast, JsValue};
use worker::{MessageExt, QueueContentType, RawMessage, RawMessageBuilder, SendMessage};

use crate::{
    DateClock, DurableObjectStore, KvCache, RECORDER, flush_every, from_worker_request, live,
    metrics_sink, services, to_worker_response,
};

/// The variable naming the dead-letter queue this worker consumes.
pub const DEAD_LETTER_QUEUE: &str = "DEAD_LETTER_QUEUE";
/// The most messages one `sendBatch` takes (Cloudflare's limit).
const SEND_BATCH_MESSAGES: usize = 100;
/// The most bytes one `sendBatch` takes (Cloudflare's limit is 256 KB).
const SEND_BATCH_BYTES: usize = 200 * 1024;
/// The delay before a message that failed on delivery is tried again.
const DELIVERY_RETRY_SECONDS: u32 = 1;

/// One message's body as the consumer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A `json` message, as JSON text.
    Json(Vec<u8>),
    /// A `text` or `bytes` message.
    Text(Vec<u8>),
    /// A `v8` (structured clone) value without a JSON form; names what it is.
    Unreadable(&'static str),
}

/// One message of a batch.
#[derive(Debug, Clone)]
pub struct QueueMessage {
    /// The platform's message id.
    pub id: String,
    /// When it was first sent (ms since the epoch).
    pub timestamp_ms: u64,
    /// Its body.
    pub body: Body,
}

/// What becomes of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done: acknowledged.
    Ack,
    /// Retried (then dead-lettered once its attempts run out). `reason`
    /// is logged: it must name no content. `permanent`: the message
    /// itself is at fault (retried at once); else its delivery (retried
    /// after a delay).
    Retry {
        /// Why, safe to log.
        reason: String,
        /// Whether the message would fail the same way every time.
        permanent: bool,
    },
}

/// A function that consumes queue batches.
#[async_trait(?Send)]
pub trait QueueConsumer: EdgeFunction {
    /// One verdict per message of a batch from `queue`, in order.
    async fn consume(
        &self,
        queue: &str,
        messages: &[QueueMessage],
        ctx: &Context<'_>,
    ) -> Vec<Verdict>;

    /// One verdict per message of a batch from the dead-letter queue.
    async fn dead_letters(
        &self,
        queue: &str,
        messages: &[QueueMessage],
        ctx: &Context<'_>,
    ) -> Vec<Verdict>;
}

/// What the isolate's consumer has done since it started (its gauges).
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    batches: u64,
    messages: u64,
    acked: u64,
    retried: u64,
    dead_lettered: u64,
}

thread_local! {
    static COUNTS: RefCell<Counts> = RefCell::default();
}

/// The isolate's function `F` as its queue consumer and producer endpoint
/// use it: the one the request path serves, with the policy version in
/// effect (see [`edge_core::live`]).
pub async fn function<F: EdgeFunction + 'static>(env: &worker::Env) -> Rc<Active<F>> {
    let (store, cache) = (DurableObjectStore::from_env(env), KvCache::from_env(env));
    let recorder = RECORDER.with(Rc::clone);
    live::<F>(env)
        .current(&services(&store, &cache, &recorder))
        .await
}

/// Reads a message body: text and bytes as they are, other values by their JSON form.
fn body_of(value: &JsValue) -> Body {
    if let Some(text) = value.as_string() {
        return Body::Text(text.into_bytes());
    }
    if value.is_instance_of::<js_sys::ArrayBuffer>() || value.is_instance_of::<js_sys::Uint8Array>()
    {
        return Body::Text(js_sys::Uint8Array::new(value).to_vec());
    }
    match js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
    {
        Some(json) => Body::Json(json.into_bytes()),
        None => Body::Unreadable("a value without a JSON form"),
    }
}

/// The body of a `#[event(queue)]`: hands the batch to `F` (its dead
/// letters when it comes from [`DEAD_LETTER_QUEUE`]), acknowledges or
/// retries each message as `F` says, records the batch in the isolate's
/// metrics and flushes them when due. A function that failed to start
/// retries the whole batch (its configuration error is logged).
pub async fn consume<F: QueueConsumer + 'static, T>(
    batch: worker::MessageBatch<T>,
    env: &worker::Env,
) -> worker::Result<()> {
    let queue = batch.queue();
    let dead_letter = env
        .var(DEAD_LETTER_QUEUE)
        .is_ok_and(|name| name.to_string() == queue);
    let raw: Vec<RawMessage> = batch.raw_iter().collect();
    let messages: Vec<QueueMessage> = raw
        .iter()
        .map(|m| QueueMessage {
            id: m.id(),
            timestamp_ms: m.timestamp().as_millis(),
            body: body_of(&m.body()),
        })
        .collect();

    let (store, cache) = (DurableObjectStore::from_env(env), KvCache::from_env(env));
    let recorder = RECORDER.with(Rc::clone);
    let services = services(&store, &cache, &recorder);
    let active = live::<F>(env).current(&services).await;
    let instance = &active.instance;
    let correlation = format!("queue-{}", messages.first().map_or("", |m| m.id.as_str()));
    let ctx = Context::named(&services, F::NAME, &correlation);
    let started = DateClock.now();
    let verdicts = match instance.as_ref() {
        Err(error) => {
            ctx.log().error(
                "invalid configuration: the batch is retried",
                json!({ "error": error.to_string(), "queue": queue }),
            );
            batch.retry_all();
            return Ok(());
        }
        Ok(function) if dead_letter => function.dead_letters(&queue, &messages, &ctx).await,
        Ok(function) => function.consume(&queue, &messages, &ctx).await,
    };

    let finished = DateClock.now();
    let seconds = finished.0.saturating_sub(started.0).as_secs_f64();
    let route = format!("queue:{queue}");
    let (mut acked, mut retried) = (0u64, 0u64);
    let mut reasons = serde_json::Map::new();
    for (message, (verdict, meta)) in raw.iter().zip(verdicts.iter().zip(&messages)) {
        let status = match verdict {
            Verdict::Ack => {
                message.ack();
                acked += 1;
                200
            }
            Verdict::Retry { reason, permanent } => {
                if *permanent {
                    message.retry();
                } else {
                    let options = worker::QueueRetryOptionsBuilder::new()
                        .with_delay_seconds(DELIVERY_RETRY_SECONDS)
                        .build();
                    message.retry_with_options(&options);
                }
                retried += 1;
                reasons.insert(meta.id.clone(), json!(reason));
                if *permanent { 422 } else { 503 }
            }
        };
        recorder.record(F::NAME, &route, "QUEUE", status, seconds, finished);
    }
    // A message the function gave no verdict is retried, never dropped.
    for message in raw.iter().skip(verdicts.len()) {
        message.retry();
        retried += 1;
    }

    let counts = COUNTS.with(|c| {
        let mut c = c.borrow_mut();
        c.batches += 1;
        c.messages += raw.len() as u64;
        c.retried += retried;
        if dead_letter {
            c.dead_lettered += acked;
        } else {
            c.acked += acked;
        }
        *c
    });
    for (name, value) in [
        ("queue_batches", counts.batches),
        ("queue_messages", counts.messages),
        ("queue_acked", counts.acked),
        ("queue_retried", counts.retried),
        ("queue_dead_lettered", counts.dead_lettered),
    ] {
        ctx.gauge(name, value as f64);
    }
    ctx.log().info(
        "queue batch",
        json!({
            "queue": queue,
            "dead_letter": dead_letter,
            "messages": raw.len(),
            "acked": acked,
            "retried": retried,
            "retry_reasons": reasons,
            "duration_ms": seconds * 1000.0,
        }),
    );
    drop(ctx);
    let sink = metrics_sink(env);
    let sink = sink.as_ref().map(|s| s as &dyn MetricsSink);
    flush_metrics(instance, &services, sink, flush_every(env), false).await;
    Ok(())
}

/// A producer endpoint: each non-empty line of the request body becomes
/// one message on the queue bound as `binding`, as it was sent (`text`).
/// With `?content=json` a line that parses as JSON goes as a `json`
/// message (a JavaScript value: numbers beyond 2^53 lose digits), any
/// other still as `text`, so a malformed record reaches the consumer as it
/// was sent. `authorize` checks the request first. Answers `202` with the count, a problem otherwise (`503` when
/// the binding is missing, `502` when the queue refuses, naming how many
/// lines went in before).
pub async fn produce(
    req: worker::Request,
    env: &worker::Env,
    binding: &str,
    authorize: impl FnOnce(&Request) -> Result<(), Problem>,
) -> worker::Result<worker::Response> {
    let answer = async {
        let request = from_worker_request(req).await?;
        authorize(&request)?;
        if request.method() != http::Method::POST {
            return Err(Problem::method_not_allowed(
                request.method(),
                &[http::Method::POST],
            ));
        }
        let body = std::str::from_utf8(request.body()).map_err(|e| {
            Problem::bad_request(
                "invalid-utf8",
                format!("the body is not UTF-8 (byte {})", e.valid_up_to()),
            )
        })?;
        let queue = env.queue(binding).map_err(|_| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue-unavailable",
                "Queue unavailable",
            )
            .with_detail(format!("no queue is bound as {binding}"))
        })?;
        let (mut enqueued, mut as_json) = (0usize, 0usize);
        let as_values = match edge_core::model::query_param(&request, "content") {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(Problem::bad_request(
                    "invalid-parameter",
                    format!(
                        "content={:?} must be text or json",
                        other.chars().take(20).collect::<String>()
                    ),
                ));
            }
        };
        let mut pending: Vec<SendMessage<JsValue>> = Vec::new();
        let mut pending_bytes = 0;
        let lines = body.lines().filter(|l| !l.trim().is_empty());
        let mut lines = lines.peekable();
        while let Some(line) = lines.next() {
            let parsed = as_values.then(|| js_sys::JSON::parse(line).ok()).flatten();
            let message = match parsed {
                Some(value) => {
                    as_json += 1;
                    RawMessageBuilder::new(value).build_with_content_type(QueueContentType::Json)
                }
                None => RawMessageBuilder::new(JsValue::from_str(line))
                    .build_with_content_type(QueueContentType::Text),
            };
            pending.push(message);
            pending_bytes += line.len();
            let full = pending.len() == SEND_BATCH_MESSAGES
                || lines
                    .peek()
                    .is_none_or(|next| pending_bytes + next.len() > SEND_BATCH_BYTES);
            if full {
                let count = pending.len();
                queue
                    .send_raw_batch(std::mem::take(&mut pending))
                    .await
                    .map_err(|e| {
                        Problem::new(StatusCode::BAD_GATEWAY, "queue-refused", "Queue refused")
                            .with_detail(format!(
                                "{e}; {enqueued} lines were enqueued before, {} were not",
                                count
                            ))
                    })?;
                enqueued += count;
                pending_bytes = 0;
            }
        }
        if enqueued == 0 {
            return Err(Problem::bad_request(
                "empty-body",
                "send one record per line to enqueue",
            ));
        }
        let mut response = json_response(
            StatusCode::ACCEPTED,
            &json!({ "enqueued": enqueued, "json": as_json, "text": enqueued - as_json }),
        );
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        Ok(response)
    }
    .await;
    match answer {
        Ok(response) => to_worker_response(response),
        Err(problem) => to_worker_response(problem.into_response(None)),
    }
}
