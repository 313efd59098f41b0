//! `edge-core`: the portable core every edge function shares.
//!
//! Nothing here depends on a platform SDK. Platforms (Cloudflare Workers,
//! Fermyon Spin, browsers, native) supply the traits in [`platform`] and
//! convert their requests to the [`http`]-crate model in [`model`]; the
//! functions are written once against this crate.
//!
//! | module | what it holds |
//! |---|---|
//! | [`model`] | `Request` / `Response` on the `http` crate's types, body limits, client address |
//! | [`policy`] | declarative TOML/JSON policies, validation with field paths, variables and secrets |
//! | [`platform`] | the traits a platform provides: [`Clock`], [`KeyValueStore`], [`AtomicStore`], [`Random`], [`HttpClient`] |
//! | [`memory`] | in-memory implementations of those traits and fakes for tests |
//! | [`admin`] | the one guard of every function's admin endpoints |
//! | [`problem`] | RFC 9457 `application/problem+json` errors |
//! | [`log`] | JSON structured logs |
//! | [`route`] | route patterns (`POST /api/*/items`, `/spatial/**`) and mount paths |
//! | [`pipeline`] | the composition model: [`Filter`](pipeline::Filter)s in front of an [`Endpoint`](pipeline::Endpoint), typed values between them |
//! | [`function`] | the [`EdgeFunction`] trait and [`serve`], which adds health, correlation ids, logs and metrics |
//! | [`live`] | policies changed at runtime: versions in the store, the `/_policy` admin endpoints, reload by version check |
//! | [`metrics`] | the per-isolate request recorder, the mergeable latency sketch, the aggregate store |

pub mod admin;
pub mod function;
pub mod live;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod origin;
pub mod pipeline;
pub mod platform;
pub mod policy;
pub mod problem;
pub mod route;
pub mod stream;

pub use function::{Context, EdgeFunction, serve};
pub use model::{Body, ClientAddr, Request, Response};
pub use platform::{
    Applied, AtomicStore, CasOutcome, Clock, HttpClient, KeyValueStore, Random, StoreError,
    Timestamp, Transaction,
};
pub use policy::{Config, ConfigError, Secret};
pub use problem::Problem;
