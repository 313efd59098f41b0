//! Runs the built functions on every runtime and compares them.
//!
//! - [`host`]: a wasmtime host for the Spin builds (wasi:http 0.3 plus the
//!   key-value and variables interfaces Spin provides), also served by the
//!   `edge-host` binary;
//! - [`native`], [`workerd`], [`chromium`], [`deno`]: the other runtimes;
//! - [`npm`]: the npm package installed as a user gets it;
//! - [`conformance`]: the request/response cases every runtime must pass.
//! - [`redis_server`]: a throwaway `redis-server` for the host's Redis-backed
//!   key-value store.
//!
//! The builds come from `cargo xtask build` (`<repo>/target/edge`, or
//! `EDGE_ARTIFACTS`); tests fail, not skip, when they are missing.

pub mod chromium;
pub mod conformance;
pub mod deno;
pub mod host;
pub mod native;
pub mod npm;
pub mod oidc;
pub mod origin;
pub mod redis_server;
pub mod workerd;

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// PATH with the project's npm tools (`node_modules/.bin`: wrangler and
/// the Node 22 it needs) first.
pub fn path_with_node_bin() -> anyhow::Result<std::ffi::OsString> {
    let mut path = vec![workspace_root().join("node_modules/.bin")];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    Ok(std::env::join_paths(path)?)
}

/// Where `cargo xtask build` put the builds: `<repo>/target/edge` (whatever
/// `CARGO_TARGET_DIR` says, since `spin.toml` names them there), or `EDGE_ARTIFACTS`.
pub fn artifacts_dir() -> PathBuf {
    match std::env::var_os("EDGE_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target/edge"),
    }
}

/// The Spin build of `function`.
pub fn spin_component(function: &str) -> PathBuf {
    artifacts_dir().join(format!("spin/{function}.wasm"))
}
