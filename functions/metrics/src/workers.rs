//! The Cloudflare Workers entry point (feature `workers`, built by `worker-build`).

use worker::{Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    edge_workers::serve::<crate::Metrics>(req, &env, &ctx).await
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    edge_workers::scheduled::<crate::Metrics>(&env).await;
}

edge_workers::durable_store!(crate::Metrics);
