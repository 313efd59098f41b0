//! A minimal Spin-compatible host for running edge components in tests.
//!
//! The real `spin up` is not available in the test environment, so this module
//! embeds wasmtime directly and provides what our spin-sdk 7 components need:
//!
//! * the `wasi:http/handler@0.3.0` export (WASI 0.3, component-model async),
//!   driven through `wasmtime-wasi-http`'s `p3` support, with Spin's routing
//!   headers (`spin-path-info`, `spin-component-route`, ...);
//! * WASI 0.2 and 0.3 CLI/clocks/random/etc. from `wasmtime-wasi`;
//! * a `wasi:keyvalue` store with fault injection ([`KvStore`]), in memory
//!   or, for several hosts sharing one, on Redis ([`KvStore::redis`]);
//! * `spin:variables` backed by a fixed map ([`AppConfig::variables`]);
//! * outbound `wasi:http` requests to the hosts a component's
//!   `allowed_outbound_hosts` lists ([`AllowedHosts`],
//!   [`App::with_allowed_outbound_hosts`]), others denied with
//!   `HttpRequestDenied` as Spin does.
//!
//! Each [`App`] is compiled and pre-instantiated once; like Spin, every request
//! gets a fresh `Store` and instance. [`serve`] exposes several apps on one
//! listener, routed by longest matching route prefix.
//!
//! Compiled components are kept between processes in wasmtime's compilation
//! cache ([`compile_cache_dir`], `target/wasmtime-cache`), so `edge-host` and
//! the tests compile a component with Cranelift once per build of it, not on
//! every start.

mod app;
mod bindings;
mod kv;
mod kv_redis;
pub mod manifest;
mod outbound;
mod server;
mod state;
mod variables;

use std::path::PathBuf;
use std::sync::OnceLock;

pub use app::{App, AppConfig, GuestLogs};
pub use kv::{KvStore, UNAVAILABLE as KV_UNAVAILABLE};
pub use outbound::{AllowedHosts, BETWEEN_BYTES_TIMEOUT, CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT};
pub use server::{MAX_HOST_BODY_BYTES, REQUEST_DEADLINE, Timeouts, serve, serve_with};

/// The process-wide wasmtime engine, configured for component-model async
/// (needed by `wasi:http/handler@0.3.0`), with the compilation cache in
/// [`compile_cache_dir`] when there is one.
///
/// # Panics
///
/// Panics if wasmtime rejects the configuration, which would be a build
/// configuration bug (e.g. the `component-model-async` feature missing).
pub fn engine() -> &'static wasmtime::Engine {
    static ENGINE: OnceLock<wasmtime::Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        wasmtime::Engine::new(&engine_config(compile_cache().cloned()))
            .expect("wasmtime config with component-model-async")
    })
}

/// [`engine`]'s configuration, with `cache`.
fn engine_config(cache: Option<wasmtime::Cache>) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model_async(true);
    config.cache(cache);
    config
}

/// Where compiled components are cached between processes:
/// `EDGE_HOST_CACHE_DIR` if set (empty: no cache), else `wasmtime-cache` in
/// the cargo target directory (`CARGO_TARGET_DIR`, else `<repo>/target`).
///
/// This is wasmtime's own cache (`wasmtime::Cache`): an entry is keyed by a
/// hash of the component's bytes and of the engine's compilation settings,
/// in a directory named after the wasmtime version, and written to a
/// temporary file then renamed, so processes loading the same component at
/// once (tests, `edge-host`) share it safely. A rebuilt component is a new
/// entry; wasmtime's cleanup removes the oldest past 512 MB.
pub fn compile_cache_dir() -> Option<PathBuf> {
    match std::env::var_os("EDGE_HOST_CACHE_DIR") {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => std::path::absolute(dir).ok(),
        None => {
            let target = match std::env::var_os("CARGO_TARGET_DIR") {
                Some(dir) => crate::workspace_root().join(dir),
                None => crate::workspace_root().join("target"),
            };
            Some(target.join("wasmtime-cache"))
        }
    }
}

/// The compilation cache [`engine`] uses, once created; `None` without a
/// [`compile_cache_dir`] or when it cannot be created (then every process
/// compiles, as without a cache, after a warning).
fn compile_cache() -> Option<&'static wasmtime::Cache> {
    static CACHE: OnceLock<Option<wasmtime::Cache>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            let dir = compile_cache_dir()?;
            let mut config = wasmtime::CacheConfig::new();
            config.with_directory(&dir);
            wasmtime::Cache::new(config)
                .map_err(|e| {
                    eprintln!(
                        "edge-host: compiling without a cache ({}: {e:#})",
                        dir.display()
                    );
                })
                .ok()
        })
        .as_ref()
}

/// How many components this process took from the compilation cache and
/// how many it compiled and stored there (`None` without a cache).
pub fn compile_cache_counts() -> Option<(usize, usize)> {
    compile_cache().map(|cache| (cache.cache_hits(), cache.cache_misses()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &std::path::Path) -> wasmtime::Cache {
        let mut config = wasmtime::CacheConfig::new();
        config.with_directory(dir);
        wasmtime::Cache::new(config).expect("a cache in a temporary directory")
    }

    /// A component compiled by one engine is taken from the cache by the
    /// next one with the same configuration (another process, in use), and
    /// runs.
    #[test]
    fn a_compiled_component_is_reused_from_the_cache() {
        let dir = std::env::temp_dir().join(format!("edge-host-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let component = r#"(component
            (core module $m (func (export "f") (result i32) i32.const 42))
            (core instance $i (instantiate $m))
            (func (export "f") (result u32) (canon lift (core func $i "f"))))"#;
        let mut answers = Vec::new();
        for round in 0..2 {
            let cache = cache(&dir);
            let engine = wasmtime::Engine::new(&engine_config(Some(cache.clone())))
                .expect("the host's configuration");
            let compiled =
                wasmtime::component::Component::new(&engine, component).expect("a valid component");
            assert_eq!(
                (cache.cache_hits(), cache.cache_misses()),
                if round == 0 { (0, 1) } else { (1, 0) },
                "round {round}"
            );
            let mut store = wasmtime::Store::new(&engine, ());
            let instance = wasmtime::component::Linker::new(&engine)
                .instantiate(&mut store, &compiled)
                .expect("instantiates");
            let f = instance
                .get_typed_func::<(), (u32,)>(&mut store, "f")
                .expect("exports f");
            answers.push(f.call(&mut store, ()).expect("runs").0);
        }
        assert_eq!(answers, [42, 42]);
        // The cache's worker thread may still be writing its statistics
        // beside the entries: removal is tried again, and a leftover
        // temporary directory fails nothing.
        for _ in 0..20 {
            if std::fs::remove_dir_all(&dir).is_ok() || !dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    #[test]
    fn the_cache_is_under_the_target_directory_by_default() {
        if std::env::var_os("EDGE_HOST_CACHE_DIR").is_some()
            || std::env::var_os("CARGO_TARGET_DIR").is_some()
        {
            return;
        }
        assert_eq!(
            compile_cache_dir(),
            Some(crate::workspace_root().join("target/wasmtime-cache"))
        );
    }
}
