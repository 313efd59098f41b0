//! Integration tests of the built functions, one module per topic. The
//! conformance suite has its own binary (`tests/conformance.rs`).

mod exactness;
mod store_failure;
