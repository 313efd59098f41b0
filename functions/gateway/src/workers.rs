//! The Cloudflare Workers entry point (feature `workers`, built by
//! `worker-build`): the default worker of `wrangler.toml`, streaming bodies
//! beyond the buffered limit (`edge_workers::serve_streaming`). One Durable
//! Object class serves the transactions of every layer it composes.

use worker::{Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    edge_workers::serve_streaming::<crate::Gateway>(req, &env, &ctx).await
}

/// The cron trigger: flushes the isolate's metrics and runs the mounted
/// functions' scheduled work (the metrics function's alert rules).
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    edge_workers::scheduled::<crate::Gateway>(&env).await;
}

edge_workers::durable_store!(crate::Gateway);
