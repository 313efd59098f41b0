//! Integration tests of the built functions, one module per topic. The
//! conformance suite has its own binary (`tests/conformance.rs`).
#![allow(clippy::unwrap_used)] // a panic here is a failed test

mod anomaly;
mod anonymize;
mod auth_check;
mod demo;
mod exactness;
mod gateway;
mod hostile;
mod metrics;
mod npm_package;
mod outbound;
mod policy_store;
mod queue;
mod rate_limit;
mod redis_api_keys;
mod redis_store;
mod registry;
mod slow_client;
mod spatial_query;
mod store_failure;

use wasm_tests::host::{App, AppConfig, GuestLogs, KvStore};

/// The counter's Spin build in the wasmtime host, on `/counter`, with
/// `admin_token` as its secret, this store and its guest logs captured.
fn counter_app(admin_token: &str, kv: KvStore, logs: GuestLogs) -> App {
    App::load(
        &wasm_tests::spin_component("counter"),
        AppConfig {
            variables: [("counter_admin_token".to_owned(), admin_token.to_owned())].into(),
            kv,
            route: "/counter".into(),
            guest_stderr: Some(logs),
        },
    )
    .expect("the Spin build of counter (run `cargo xtask build`)")
}
