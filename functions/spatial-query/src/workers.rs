//! The Cloudflare Workers entry point (feature `workers`): tiles and
//! manifests in Workers KV, the head and zones in Durable Objects.

use worker::{Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    edge_workers::serve::<crate::SpatialQuery>(req, &env, &ctx).await
}

/// The cron trigger: flushes the isolate's metrics to the metrics worker.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    edge_workers::scheduled::<crate::SpatialQuery>(&env).await;
}

edge_workers::durable_store!(crate::SpatialQuery);
