//! The gateway's pipeline (auth check → rate limit → anonymize) against
//! pass-through, measured two ways by one program:
//!
//! - [`inprocess`]: µs per request in one process on in-memory services,
//!   each stage alone, the chain to a bare endpoint, the signature checks
//!   alone and the whole gateway through `serve`. Built natively it is the
//!   native measurement; built for `wasm32-wasip2` it is a WASI command
//!   that `bench-runner` runs under wasmtime. Both time identical loops
//!   with `std::time::Instant` inside the program.
//! - `live` (native only): requests/s and latency through `wrangler dev`
//!   of the gateway's Workers build, the pipeline route against a route
//!   with no stages, in front of a local origin the program serves.
//!
//! - `soak` (native only): the pipeline held under load for minutes on the
//!   Workers build under `wrangler dev` or the Spin build in `edge-host` on
//!   Redis, window by window, memory included (`cargo xtask soak`).
//!
//! [`fixtures`] holds what both share (tokens, body, policy); [`tables`]
//! sets the reports side by side. `cargo xtask bench gateway` drives it all.

pub mod fixtures;
#[cfg(not(target_family = "wasm"))]
pub mod http1;
pub mod inprocess;
#[cfg(not(target_family = "wasm"))]
pub mod live;
#[cfg(not(target_family = "wasm"))]
pub mod soak;
pub mod tables;
