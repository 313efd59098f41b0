//! The Cloudflare Workers entry point (feature `workers`): tiles and
//! manifests in Workers KV, the head and zones in Durable Objects.

use worker::{Context, Env, Request, Response, Result, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    edge_workers::serve::<crate::SpatialQuery>(req, &env).await
}

edge_workers::durable_store!(crate::SpatialQuery);
