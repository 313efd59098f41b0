//! The Cloudflare Workers entry point (feature `workers`, built by
//! `worker-build`): bodies beyond the buffered limit are anonymized as a
//! stream (`edge_workers::serve_streaming`); queue batches are anonymized
//! and delivered by the batch path ([`crate::batch`]) through
//! `edge_workers::queue`, and `POST {admin_path}/enqueue` (admin token)
//! produces messages onto the queue bound as [`QUEUE_BINDING`].

use async_trait::async_trait;
use edge_core::function::Context;
use edge_workers::queue::{Body, QueueConsumer, QueueMessage, Verdict};
use worker::{
    Context as WorkerContext, Env, MessageBatch, Request, Response, Result, ScheduleContext,
    ScheduledEvent, event,
};

use crate::Anonymize;
use crate::batch::{DeadLetter, Message};

/// The producer binding `{admin_path}/enqueue` sends to.
const QUEUE_BINDING: &str = "ANONYMIZE_QUEUE";
/// The producer endpoint, under the admin path.
const ENQUEUE: &str = "/enqueue";

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: WorkerContext) -> Result<Response> {
    if req.path().ends_with(ENQUEUE) {
        let active = edge_workers::queue::function::<Anonymize>(&env).await;
        if let Ok(function) = active.instance.as_ref()
            && req.path() == format!("{}{ENQUEUE}", function.section.admin_path)
        {
            return edge_workers::queue::produce(req, &env, QUEUE_BINDING, |r| {
                function.admin.check(r, "enqueueing")
            })
            .await;
        }
    }
    edge_workers::serve_streaming::<crate::Anonymize>(req, &env, &ctx).await
}

/// The cron trigger: flushes the isolate's metrics to the metrics worker.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    edge_workers::scheduled::<crate::Anonymize>(&env).await;
}

/// The queue consumer: records anonymized and delivered, or retried; the
/// dead-letter queue's messages reported.
#[event(queue)]
async fn queue(
    batch: MessageBatch<serde_json::Value>,
    env: Env,
    _ctx: WorkerContext,
) -> Result<()> {
    edge_workers::queue::consume::<Anonymize, _>(batch, &env).await
}

fn message(m: &QueueMessage) -> Message<'_> {
    match &m.body {
        Body::Json(b) => Message::Json(b),
        Body::Text(b) => Message::Ndjson(b),
        Body::Unreadable(what) => Message::Unreadable(what),
    }
}

#[async_trait(?Send)]
impl QueueConsumer for Anonymize {
    async fn consume(
        &self,
        _queue: &str,
        messages: &[QueueMessage],
        ctx: &Context<'_>,
    ) -> Vec<Verdict> {
        let bodies: Vec<Message<'_>> = messages.iter().map(message).collect();
        self.consume_batch(&bodies, ctx)
            .await
            .into_iter()
            .map(|result| match result {
                Ok(_) => Verdict::Ack,
                Err(failure) => Verdict::Retry {
                    permanent: failure.is_permanent(),
                    reason: failure.to_string(),
                },
            })
            .collect()
    }

    async fn dead_letters(
        &self,
        queue: &str,
        messages: &[QueueMessage],
        ctx: &Context<'_>,
    ) -> Vec<Verdict> {
        let letters: Vec<DeadLetter<'_>> = messages
            .iter()
            .map(|m| DeadLetter {
                queue,
                id: &m.id,
                timestamp_ms: m.timestamp_ms,
                message: message(m),
            })
            .collect();
        self.report_dead_letters(&letters, ctx)
            .await
            .into_iter()
            .map(|result| match result {
                Ok(()) => Verdict::Ack,
                Err(reason) => Verdict::Retry {
                    reason,
                    permanent: false,
                },
            })
            .collect()
    }
}

edge_workers::durable_store!(crate::Anonymize);
