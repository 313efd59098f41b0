//! A bench worker: JWT signature checks on workerd, pure Rust (auth-check's
//! `Key::verify`, compiled to wasm) against the runtime's WebCrypto
//! (`edge_workers::webcrypto`), on the fixed tokens of `bench/auth`.
//!
//! It exists because workerd's clock does not advance while a request
//! computes, so the speed of either backend can only be seen from outside:
//! `cargo xtask bench auth-check` serves this worker under `wrangler dev`
//! and times `GET /verify?backend=B&alg=A&n=N` (N checks of the same
//! signature, one after the other) for N and for 0.
//!
//! Backends: `rust`, `webcrypto` (keys imported once per isolate) and
//! `webcrypto-import` (the key imported again before every check).
//! Natively the crate is empty.

#[cfg(target_arch = "wasm32")]
mod worker_bench;
