//! Streaming bodies: the contract for a function that rewrites request
//! bodies too large to buffer (the anonymizer's 100 MB NDJSON uploads).
//!
//! The buffered path ([`serve`](crate::serve)) stays the rule: bodies up to
//! [`MAX_BODY_BYTES`](crate::model::MAX_BODY_BYTES) are read whole, so a
//! client's mistake is answered with a 4xx. When a body turns out larger, a
//! platform whose function implements [`StreamingFunction`] asks it for a
//! [`StreamPlan`] from the request head and pipes the body through the plan's
//! [`BodyTransform`] chunk by chunk — to the origin or back as the answer —
//! holding only what the transform holds. An error after the first bytes
//! went out can no longer become a 4xx: the stream is aborted instead, so
//! the receiver sees a broken body, never an unprocessed one.

use std::collections::VecDeque;

use async_trait::async_trait;
use futures::{FutureExt, Stream, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::function::{Context, EdgeFunction};
use crate::problem::Problem;

/// A body rewriter fed chunk by chunk.
pub trait BodyTransform {
    /// Rewrites the next chunk, appending output to `out`.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Problem>;
    /// Ends the body (e.g. checks it was complete), appending the rest.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Problem>;
    /// After `finish` on a buffered body: leaves what the transform found
    /// (e.g. counts of findings) for later stages, as typed values.
    fn annotate(&self, _extensions: &mut http::Extensions) {}
}

/// Transforms one after another: each one's output is the next one's
/// input (a pipeline's request-body phase on a streamed body).
pub struct Chain(pub Vec<Box<dyn BodyTransform>>);

impl BodyTransform for Chain {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Problem> {
        let Some((last, first)) = self.0.split_last_mut() else {
            out.extend_from_slice(chunk);
            return Ok(());
        };
        let mut data = chunk.to_vec();
        for transform in first {
            let mut next = Vec::with_capacity(data.len());
            transform.push(&data, &mut next)?;
            data = next;
        }
        last.push(&data, out)
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Problem> {
        // Each one's last output goes through the rest before they finish.
        let mut carry = Vec::new();
        for transform in &mut self.0 {
            let mut next = Vec::new();
            if !carry.is_empty() {
                transform.push(&carry, &mut next)?;
            }
            transform.finish(&mut next)?;
            carry = next;
        }
        out.extend_from_slice(&carry);
        Ok(())
    }
}

/// Adds headers to the answer of a forwarded stream (the origin's, or the
/// problem that stood for it), given its status: e.g. a pipeline's
/// response-head phase, the `RateLimit` fields.
pub type AnswerHeaders = Box<dyn FnOnce(StatusCode, &mut HeaderMap, &Context<'_>)>;

/// How one request's body is streamed.
pub struct StreamPlan {
    /// The rewriter.
    pub transform: Box<dyn BodyTransform>,
    /// `Some(origin)`: the rewritten request goes there (method, path,
    /// query, end-to-end headers; the length is dropped) and its answer is
    /// returned. `None`: the rewritten body is the answer (`200`).
    pub origin: Option<String>,
    /// The rewritten body's content type.
    pub content_type: HeaderValue,
    /// With an origin: what the answer's headers get before it goes back.
    pub answer_headers: Option<AnswerHeaders>,
}

/// A function that can take request bodies as a stream.
#[async_trait(?Send)]
pub trait StreamingFunction: EdgeFunction {
    /// Called with the head of a request whose body exceeds the buffered
    /// limit, before any of the body past the limit is read: the head
    /// phase runs here (it may change the head, which is what is
    /// forwarded). `Ok(None)`: not streamable (the platform answers 413);
    /// `Err`: answered with the problem.
    async fn stream_plan(
        &self,
        head: &mut http::request::Parts,
        ctx: &Context<'_>,
    ) -> Result<Option<StreamPlan>, Problem>;
}

/// Why a streamed body stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamError {
    /// Reading the incoming body failed.
    #[error("reading the body failed: {0}")]
    Input(String),
    /// The transform refused the body (its detail, safe to log).
    #[error("{}", .0.detail().unwrap_or(.0.kind()))]
    Transform(Problem),
}

/// How much output a batch of already-available input chunks may make.
const BATCH_BYTES: usize = 64 * 1024;

/// Pipes `input` (after the already-read `prefix`) through `transform`:
/// each input chunk yields its output chunk (empty outputs are skipped), the
/// transform's `finish` the last one. The first error ends the stream.
pub fn transform_stream<S, E>(
    prefix: Vec<u8>,
    input: S,
    transform: Box<dyn BodyTransform>,
) -> impl Stream<Item = Result<Vec<u8>, StreamError>>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Unpin,
    E: std::fmt::Display,
{
    struct State<S> {
        input: S,
        pending: VecDeque<Vec<u8>>,
        transform: Box<dyn BodyTransform>,
        done: bool,
        /// The input ended while batching.
        ended: bool,
        /// The input failed while batching (reported after the batch).
        failed: Option<String>,
    }
    let state = State {
        input,
        pending: VecDeque::from([prefix]),
        transform,
        done: false,
        ended: false,
        failed: None,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if state.done {
                return None;
            }
            let chunk = if let Some(reason) = state.failed.take() {
                Some(Err(reason))
            } else if state.ended && state.pending.is_empty() {
                None
            } else {
                match state.pending.pop_front() {
                    Some(chunk) => Some(Ok(chunk)),
                    None => state
                        .input
                        .next()
                        .await
                        .map(|r| r.map_err(|e| e.to_string())),
                }
            };
            let mut out = Vec::new();
            let result = match chunk {
                Some(Ok(chunk)) => {
                    // Chunks already waiting are rewritten together: a client
                    // sending many small chunks costs one output chunk (and
                    // one trip through the runtime) per batch, not per chunk.
                    let mut result = state.transform.push(&chunk, &mut out);
                    while result.is_ok() && out.len() < BATCH_BYTES {
                        match state.input.next().now_or_never() {
                            Some(Some(Ok(more))) => result = state.transform.push(&more, &mut out),
                            Some(Some(Err(e))) => {
                                state.failed = Some(e.to_string());
                                break;
                            }
                            Some(None) => {
                                state.ended = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    result
                }
                Some(Err(reason)) => {
                    state.done = true;
                    return Some((Err(StreamError::Input(reason)), state));
                }
                None => {
                    state.done = true;
                    state.transform.finish(&mut out)
                }
            };
            match result {
                Err(problem) => {
                    state.done = true;
                    return Some((Err(StreamError::Transform(problem)), state));
                }
                Ok(()) if out.is_empty() => continue,
                Ok(()) => return Some((Ok(out), state)),
            }
        }
    })
}

/// Waits for a transformed stream's first output before anything is
/// answered: a transform that refuses the body before it produced a byte
/// (a first string past its limit, say) is answered with its problem, a
/// 4xx, rather than with a `200` whose body breaks. Later errors still
/// abort the stream. The output is the same stream, its first chunk put
/// back.
pub async fn started<S>(
    mut output: S,
) -> Result<impl Stream<Item = Result<Vec<u8>, StreamError>>, Problem>
where
    S: Stream<Item = Result<Vec<u8>, StreamError>> + Unpin,
{
    let first = match output.next().await {
        Some(Ok(chunk)) => Some(Ok(chunk)),
        Some(Err(StreamError::Transform(problem))) => return Err(problem),
        Some(Err(StreamError::Input(reason))) => {
            return Err(Problem::bad_request("invalid-body", reason));
        }
        None => None,
    };
    Ok(futures::stream::iter(first).chain(output))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    /// Upper-cases, and refuses a `!`.
    struct Upper;
    impl BodyTransform for Upper {
        fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Problem> {
            if chunk.contains(&b'!') {
                return Err(Problem::bad_request("bang", "no ! here"));
            }
            out.extend(chunk.iter().map(u8::to_ascii_uppercase));
            Ok(())
        }
        fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Problem> {
            out.extend_from_slice(b".");
            Ok(())
        }
    }

    fn run(prefix: &[u8], chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, String>> {
        let input = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, String>(c.to_vec()))
                .collect::<Vec<_>>(),
        );
        let output = transform_stream(prefix.to_vec(), input, Box::new(Upper));
        block_on(output.map(|r| r.map_err(|e| e.to_string())).collect())
    }

    /// Appends its tag at the end.
    struct Tag(&'static [u8]);
    impl BodyTransform for Tag {
        fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Problem> {
            out.extend_from_slice(chunk);
            Ok(())
        }
        fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Problem> {
            out.extend_from_slice(self.0);
            Ok(())
        }
    }

    #[test]
    fn a_chain_is_its_transforms_one_after_another_for_any_split() {
        let whole = |chain: &mut Chain, chunks: &[&[u8]]| {
            let mut out = Vec::new();
            for chunk in chunks {
                chain.push(chunk, &mut out)?;
            }
            chain.finish(&mut out)?;
            Ok::<_, Problem>(out)
        };
        let chain = || {
            Chain(vec![
                Box::new(Tag(b"+a")),
                Box::new(Upper),
                Box::new(Tag(b"+b")),
            ])
        };
        // Upper sees Tag(a)'s ending too; Tag(b) comes after Upper's ".".
        assert_eq!(whole(&mut chain(), &[b"xy"]).unwrap(), b"XY+A.+b");
        assert_eq!(whole(&mut chain(), &[b"x", b"", b"y"]).unwrap(), b"XY+A.+b");
        assert!(whole(&mut chain(), &[b"x!"]).is_err());
        assert_eq!(whole(&mut Chain(Vec::new()), &[b"a", b"b"]).unwrap(), b"ab");
    }

    #[test]
    fn a_refusal_before_the_first_byte_is_a_problem_a_later_one_breaks_the_stream() {
        let stream = |chunks: Vec<Vec<u8>>| {
            let input = futures::stream::iter(chunks.into_iter().map(Ok::<_, String>));
            transform_stream(Vec::new(), input, Box::new(Upper))
        };
        let refused = block_on(started(Box::pin(stream(vec![b"a!".to_vec()]))));
        assert_eq!(refused.err().unwrap().kind(), "bang");
        // A first batch's worth of output went out before the refusal.
        let first = vec![b'a'; BATCH_BYTES];
        let later = block_on(async {
            let output = started(Box::pin(stream(vec![first, b"c!".to_vec()])))
                .await
                .unwrap();
            output.map(|r| r.is_ok()).collect::<Vec<_>>().await
        });
        assert_eq!(later, [true, false]);
    }

    #[test]
    fn prefix_chunks_and_finish_in_order_waiting_chunks_batched() {
        assert_eq!(
            run(b"ab", &[b"c", b"", b"de"]),
            vec![Ok(b"ABCDE".to_vec()), Ok(b".".to_vec())]
        );
    }

    #[test]
    fn an_error_ends_the_stream_after_what_came_before() {
        assert_eq!(
            run(b"", &[b"a", b"b!", b"c"]),
            vec![Err("no ! here".to_owned())]
        );
        let input = futures::stream::iter(vec![Ok(b"a".to_vec()), Err("reset".to_owned())]);
        let output: Vec<_> = block_on(
            transform_stream(Vec::new(), input, Box::new(Upper))
                .map(|r| r.map_err(|e| e.to_string()))
                .collect(),
        );
        assert_eq!(
            output,
            vec![
                Ok(b"A".to_vec()),
                Err("reading the body failed: reset".to_owned())
            ]
        );
    }

    #[test]
    fn a_pending_input_ends_the_batch() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, String>>();
        tx.unbounded_send(Ok(b"x".to_vec())).unwrap();
        let mut output = Box::pin(transform_stream(Vec::new(), rx, Box::new(Upper)));
        assert_eq!(block_on(output.next()).unwrap().unwrap(), b"X");
        tx.unbounded_send(Ok(b"y".to_vec())).unwrap();
        drop(tx);
        assert_eq!(block_on(output.next()).unwrap().unwrap(), b"Y");
        assert_eq!(block_on(output.next()).unwrap().unwrap(), b".");
        assert!(block_on(output.next()).is_none());
    }
}
