//! The Spin entry point (feature `spin`, target `wasm32-wasip2`).

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    edge_spin::serve::<crate::Gateway>(req).await
}
