//! Batches of records outside a request body: the messages of a queue batch
//! (the Workers queue consumer, `workers.rs`) and the records of a
//! `POST {admin_path}/batch` (every runtime; on Spin, which has no queue
//! trigger, the endpoint a scheduler calls). Each message is anonymized on
//! its own, so one bad message fails alone and the rest go on; a failure
//! says why (kind, byte offset, line, path, limit), never what the message
//! held. Anonymized records go to the policy's sink
//! (`[anonymize.queue] sink`) as NDJSON, one request per batch; messages
//! that end in the dead-letter queue are reported to `dead_letter_sink`,
//! their body anonymized as text.

use std::time::Duration;

use bytes::Bytes;
use edge_core::function::Context;
use edge_core::model::json_response;
use edge_core::origin::Origin;
use edge_core::platform::SendOptions;
use edge_core::stream::BodyTransform;
use edge_core::{Problem, Request, Response};
use http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::{Anonymize, Anonymizer, BodyKind, Findings};

/// How long one delivery to a sink may take.
const SINK_TIMEOUT: Duration = Duration::from_secs(10);
/// The most records one `POST {admin_path}/batch` takes.
pub const MAX_BATCH_RECORDS: usize = 10_000;
/// The longest anonymized body kept in a dead-letter report, in bytes.
const REPORT_BODY_BYTES: usize = 4096;

/// One message's body, as the platform hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// One JSON value (a queue message of content type `json`, a batch record).
    Json(&'a [u8]),
    /// NDJSON, one JSON value per line (a `text` or `bytes` queue message).
    Ndjson(&'a [u8]),
    /// A body without a JSON or text form (a structured-clone value); names what it is.
    Unreadable(&'static str),
}

impl Message<'_> {
    /// The body's bytes (empty when unreadable).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Message::Json(b) | Message::Ndjson(b) => b,
            Message::Unreadable(_) => &[],
        }
    }
}

/// Why a message failed. Safe to log and to send on: it names the kind,
/// where and which limit, never the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `invalid-json`, `too-large`, `empty`, `unreadable`, `no-sink`, `sink-failed`.
    pub kind: &'static str,
    /// What went wrong and where.
    pub detail: String,
}

impl Failure {
    fn new(kind: &'static str, detail: impl Into<String>) -> Self {
        Failure {
            kind,
            detail: detail.into(),
        }
    }

    /// Whether the same message fails the same way every time (as opposed
    /// to a sink that may come back).
    pub fn is_permanent(&self) -> bool {
        !matches!(self.kind, "no-sink" | "sink-failed")
    }

    fn to_json(&self) -> Value {
        json!({ "type": self.kind, "detail": self.detail })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// One message anonymized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anonymized {
    /// NDJSON: one line per record, each ending in `\n`.
    pub ndjson: Vec<u8>,
    /// How many records.
    pub records: usize,
    /// What was found (`email=1, ipv4=2`).
    pub findings: String,
}

impl Anonymizer {
    /// Anonymizes one message of at most `max_bytes`.
    ///
    /// # Examples
    ///
    /// ```
    /// use anonymize::Anonymize;
    /// use anonymize::batch::Message;
    /// use edge_core::{Config, EdgeFunction as _};
    ///
    /// let config = Config::new(Anonymize::DEFAULT_POLICY)
    ///     .with_secret("GDPR_ANONYMIZATION_SALT", "a-salt-of-16-bytes-or-more");
    /// let f = Anonymize::from_config(&config).unwrap();
    /// let out = f.anonymizer().message(Message::Json(br#"{"ip":"203.0.113.7"}"#), 1024).unwrap();
    /// assert_eq!(out.ndjson, b"{\"ip\":\"203.0.113.0\"}\n");
    /// assert_eq!(f.anonymizer().message(Message::Json(b"{\"ip\":"), 1024).unwrap_err().kind, "invalid-json");
    /// ```
    pub fn message(&self, message: Message<'_>, max_bytes: usize) -> Result<Anonymized, Failure> {
        let (kind, bytes) = match message {
            Message::Json(b) => (BodyKind::Json, b),
            Message::Ndjson(b) => (BodyKind::Ndjson, b),
            Message::Unreadable(what) => {
                return Err(Failure::new(
                    "unreadable",
                    format!("the message body is {what}, not JSON or text"),
                ));
            }
        };
        if bytes.len() > max_bytes {
            return Err(Failure::new(
                "too-large",
                format!(
                    "the message is {} bytes, over the {max_bytes}-byte limit \
                     (anonymize.queue.max_message_bytes)",
                    bytes.len()
                ),
            ));
        }
        if bytes.trim_ascii().is_empty() {
            return Err(Failure::new("empty", "the message holds no record"));
        }
        let mut transform = self.body(kind);
        let mut out = Vec::with_capacity(bytes.len() + 64);
        transform
            .push(bytes, &mut out)
            .and_then(|()| transform.finish(&mut out))
            .map_err(|p| Failure::new(p.kind(), p.detail().unwrap_or(p.kind()).to_owned()))?;
        if kind == BodyKind::Json {
            // Raw line breaks in JSON text are whitespace between tokens
            // (inside strings they are escaped): one line per record.
            for b in &mut out {
                if matches!(*b, b'\n' | b'\r') {
                    *b = b' ';
                }
            }
            while out.last() == Some(&b' ') {
                out.pop();
            }
        }
        if out.last() != Some(&b'\n') {
            out.push(b'\n');
        }
        let records = out
            .split(|b| *b == b'\n')
            .filter(|line| !line.trim_ascii().is_empty())
            .count();
        Ok(Anonymized {
            ndjson: out,
            records,
            findings: transform.findings().summary(),
        })
    }

    /// `bytes` anonymized as free text (the detectors only), for a report
    /// on a message that could not be read as JSON; invalid UTF-8 replaced.
    pub fn as_text(&self, bytes: &[u8]) -> String {
        let mut out = String::new();
        self.text(
            &String::from_utf8_lossy(bytes),
            &mut out,
            &mut Findings::default(),
        );
        out
    }
}

/// A message from the dead-letter queue.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// The queue it was read from.
    pub queue: &'a str,
    /// The platform's message id.
    pub id: &'a str,
    /// When it was first sent (ms since the epoch).
    pub timestamp_ms: u64,
    /// Its body.
    pub message: Message<'a>,
}

impl Anonymize {
    /// The batch limits and sinks.
    fn queue(&self) -> &crate::policy::QueueSection {
        &self.section.queue
    }

    /// Anonymizes each message and delivers the anonymized records to the
    /// sink in one request: one result per message, in order, with its
    /// record count. A message that fails fails alone; when the sink
    /// refuses or cannot be reached, every message that was anonymized
    /// fails with `sink-failed` (the caller retries them).
    pub async fn consume_batch(
        &self,
        messages: &[Message<'_>],
        ctx: &Context<'_>,
    ) -> Vec<Result<usize, Failure>> {
        let max = self.queue().max_message_bytes;
        let mut results = Vec::with_capacity(messages.len());
        let mut ndjson = Vec::new();
        for message in messages {
            results.push(self.anonymizer.message(*message, max).map(|done| {
                ndjson.extend_from_slice(&done.ndjson);
                done.records
            }));
        }
        let delivered = results.iter().filter(|r| r.is_ok()).count();
        if delivered == 0 {
            return results;
        }
        let sent = match &self.queue().sink {
            None => Err(Failure::new(
                "no-sink",
                "the policy names no anonymize.queue.sink to deliver to",
            )),
            Some(sink) => post(sink, "application/x-ndjson", ndjson, delivered, ctx)
                .await
                .map_err(|e| Failure::new("sink-failed", e)),
        };
        if let Err(failure) = sent {
            for result in &mut results {
                if result.is_ok() {
                    *result = Err(failure.clone());
                }
            }
        }
        results
    }

    /// Reports dead-lettered messages to the dead-letter sink, one NDJSON
    /// line each: queue, id, timestamp, size, why it fails now (or `null`
    /// when it would pass: it failed on delivery), and its body anonymized
    /// as text (at most 4 KiB). One result per message: `Err` when the
    /// report could not be sent (the caller keeps the messages).
    pub async fn report_dead_letters(
        &self,
        letters: &[DeadLetter<'_>],
        ctx: &Context<'_>,
    ) -> Vec<Result<(), String>> {
        let max = self.queue().max_message_bytes;
        let mut ndjson = Vec::new();
        for letter in letters {
            let failure = self.anonymizer.message(letter.message, max).err();
            let mut body = self.anonymizer.as_text(letter.message.bytes());
            if body.len() > REPORT_BODY_BYTES {
                let mut end = REPORT_BODY_BYTES;
                while !body.is_char_boundary(end) {
                    end -= 1;
                }
                body.truncate(end);
            }
            let report = json!({
                "queue": letter.queue,
                "id": letter.id,
                "timestamp_ms": letter.timestamp_ms,
                "bytes": letter.message.bytes().len(),
                "reason": failure.as_ref().map(Failure::to_json),
                "anonymized_body": body,
            });
            ctx.log().warn(
                "dead-lettered message",
                json!({
                    "queue": letter.queue,
                    "id": letter.id,
                    "bytes": letter.message.bytes().len(),
                    "reason": failure.as_ref().map(|f| f.kind),
                }),
            );
            ndjson.extend_from_slice(report.to_string().as_bytes());
            ndjson.push(b'\n');
        }
        let sent = match &self.queue().dead_letter_sink {
            None => Err("the policy names no anonymize.queue.dead_letter_sink".to_owned()),
            Some(sink) => post(sink, "application/x-ndjson", ndjson, letters.len(), ctx).await,
        };
        letters.iter().map(|_| sent.clone()).collect()
    }

    /// `POST {admin_path}/batch`: NDJSON (one record per line, read as
    /// sent) or a JSON array of records (each written again from its
    /// parsed value: integers beyond 64 bits become floats), each
    /// anonymized on its own; the answer lists each
    /// record's outcome. With a sink in the policy the anonymized records
    /// are delivered there in one request (a failed delivery is a `502`:
    /// send the batch again) and not echoed.
    pub(crate) async fn batch(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        if req.method() != Method::POST {
            return Err(Problem::method_not_allowed(req.method(), &[Method::POST]));
        }
        let kind = BodyKind::of(req.headers())
            .filter(|k| *k != BodyKind::Text)
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported media type",
                )
                .with_detail("send NDJSON (application/x-ndjson) or a JSON array of records")
            })?;
        let body = req.body();
        if body.trim_ascii().is_empty() {
            return Err(Problem::bad_request(
                "empty-body",
                "the body is empty: send records as NDJSON or a JSON array",
            ));
        }
        // (where: "line" or "index", its number, the record's JSON text)
        let owned: Vec<Vec<u8>>;
        let records: Vec<(&str, usize, &[u8])> = match kind {
            BodyKind::Json => {
                let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body) else {
                    return Err(Problem::bad_request(
                        "invalid-json",
                        "expected a JSON array of records (or NDJSON, one record per line)",
                    ));
                };
                owned = items
                    .iter()
                    .map(|item| serde_json::to_vec(item).unwrap_or_default())
                    .collect();
                owned
                    .iter()
                    .enumerate()
                    .map(|(i, r)| ("index", i, r.as_slice()))
                    .collect()
            }
            _ => body
                .split(|b| *b == b'\n')
                .enumerate()
                .filter(|(_, line)| !line.trim_ascii().is_empty())
                .map(|(i, line)| ("line", i + 1, line))
                .collect(),
        };
        if records.len() > MAX_BATCH_RECORDS {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-many-records",
                "Too many records",
            )
            .with_detail(format!(
                "{} records; a batch takes at most {MAX_BATCH_RECORDS}",
                records.len()
            )));
        }
        let max = self.queue().max_message_bytes;
        let mut ndjson = Vec::new();
        let mut anonymized = 0;
        let mut results = Vec::with_capacity(records.len());
        for (at, n, record) in &records {
            let mut result = serde_json::Map::new();
            result.insert((*at).to_owned(), json!(n));
            match self.anonymizer.message(Message::Json(record), max) {
                Ok(done) => {
                    anonymized += 1;
                    result.insert("status".into(), json!("anonymized"));
                    if self.queue().sink.is_none() {
                        let value: Value =
                            serde_json::from_slice(&done.ndjson).unwrap_or(Value::Null);
                        result.insert("record".into(), value);
                    }
                    ndjson.extend_from_slice(&done.ndjson);
                }
                Err(failure) => {
                    result.insert("status".into(), json!("failed"));
                    result.insert("error".into(), failure.to_json());
                }
            }
            results.push(Value::Object(result));
        }
        let delivered = match &self.queue().sink {
            Some(sink) if anonymized > 0 => {
                post(sink, "application/x-ndjson", ndjson, anonymized, ctx)
                    .await
                    .map_err(|e| {
                        Problem::new(StatusCode::BAD_GATEWAY, "sink-failed", "Sink failed")
                            .with_detail(format!(
                                "{e}; nothing was delivered: send the batch again"
                            ))
                    })?;
                anonymized
            }
            _ => 0,
        };
        ctx.note(
            "batch",
            json!({ "records": records.len(), "anonymized": anonymized, "delivered": delivered }),
        );
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "records": records.len(),
                "anonymized": anonymized,
                "failed": records.len() - anonymized,
                "delivered": delivered,
                "results": results,
            }),
        ))
    }
}

/// `POST`s `body` (`count` records) to `sink`; `Err` says why, naming no content.
async fn post(
    sink: &Origin,
    content_type: &'static str,
    body: Vec<u8>,
    count: usize,
    ctx: &Context<'_>,
) -> Result<(), String> {
    let url = sink.to_string();
    let request = http::Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header(header::CONTENT_TYPE, content_type)
        .header("x-records", count)
        .header("x-correlation-id", ctx.correlation_id())
        .body(Bytes::from(body))
        .map_err(|e| format!("{url}: {e}"))?;
    let response = ctx
        .http()
        .send_with(request, &SendOptions::timeout(SINK_TIMEOUT))
        .await
        .map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        status => Err(format!("{url} answered {status}")),
    }
}
