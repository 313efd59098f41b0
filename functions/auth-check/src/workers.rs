//! The Cloudflare Workers entry point (feature `workers`, built by `worker-build`).

use worker::{Context, Env, Request, Response, Result, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    edge_workers::serve::<crate::AuthCheck>(req, &env).await
}

edge_workers::durable_store!(crate::AuthCheck);
