//! The Spin entry point (feature `spin`, target `wasm32-wasip2`): bodies
//! beyond the buffered limit stream through the route's stages to its
//! origin (`edge_spin::serve_streaming`).

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    edge_spin::serve_streaming::<crate::Gateway>(req).await
}
