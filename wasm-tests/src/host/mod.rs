//! A minimal Spin-compatible host for running edge components in tests.
//!
//! The real `spin up` is not available in the test environment, so this module
//! embeds wasmtime directly and provides what our spin-sdk 7 components need:
//!
//! * the `wasi:http/handler@0.3.0` export (WASI 0.3, component-model async),
//!   driven through `wasmtime-wasi-http`'s `p3` support, with Spin's routing
//!   headers (`spin-path-info`, `spin-component-route`, ...);
//! * WASI 0.2 and 0.3 CLI/clocks/random/etc. from `wasmtime-wasi`;
//! * an in-memory `wasi:keyvalue` store with fault injection ([`KvStore`]);
//! * `spin:variables` backed by a fixed map ([`AppConfig::variables`]);
//! * outbound `wasi:http` requests to the hosts a component's
//!   `allowed_outbound_hosts` lists ([`AllowedHosts`],
//!   [`App::with_allowed_outbound_hosts`]), others denied with
//!   `HttpRequestDenied` as Spin does.
//!
//! Each [`App`] is compiled and pre-instantiated once; like Spin, every request
//! gets a fresh `Store` and instance. [`serve`] exposes several apps on one
//! listener, routed by longest matching route prefix.

mod app;
mod bindings;
mod kv;
pub mod manifest;
mod outbound;
mod server;
mod state;
mod variables;

use std::sync::OnceLock;

pub use app::{App, AppConfig, GuestLogs};
pub use kv::{KvStore, UNAVAILABLE as KV_UNAVAILABLE};
pub use outbound::{AllowedHosts, BETWEEN_BYTES_TIMEOUT, CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT};
pub use server::{MAX_HOST_BODY_BYTES, REQUEST_DEADLINE, serve};

/// The process-wide wasmtime engine, configured for component-model async
/// (needed by `wasi:http/handler@0.3.0`).
///
/// # Panics
///
/// Panics if wasmtime rejects the configuration, which would be a build
/// configuration bug (e.g. the `component-model-async` feature missing).
pub fn engine() -> &'static wasmtime::Engine {
    static ENGINE: OnceLock<wasmtime::Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model_async(true);
        wasmtime::Engine::new(&config).expect("wasmtime config with component-model-async")
    })
}
