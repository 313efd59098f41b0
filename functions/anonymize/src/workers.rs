//! The Cloudflare Workers entry point (feature `workers`, built by
//! `worker-build`): bodies beyond the buffered limit are anonymized as a
//! stream (`edge_workers::serve_streaming`).

use worker::{Context, Env, Request, Response, Result, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    edge_workers::serve_streaming::<crate::Anonymize>(req, &env).await
}

edge_workers::durable_store!(crate::Anonymize);
