//! Integration tests of the built functions, one module per topic. The
//! conformance suite has its own binary (`tests/conformance.rs`).
#![allow(clippy::unwrap_used)] // a panic here is a failed test

mod exactness;
mod store_failure;
