//! Per-request store data and the linker holding every host import.

use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::app::GuestLogs;
use super::kv::{self, KvCtx, KvStore};
use super::outbound::{AllowedHosts, OutboundHooks};
use super::variables::{self, Variables};

/// Records the largest linear memory the guest creates or grows to, so
/// tests can bound a request's memory; it limits nothing.
#[derive(Debug, Default)]
pub(crate) struct MemoryWatch {
    /// The largest size, in bytes, any memory was created with or grown to.
    pub(crate) peak: usize,
}

impl wasmtime::ResourceLimiter for MemoryWatch {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// Data owned by one request's `Store`.
pub(crate) struct HostState {
    pub(crate) memory: MemoryWatch,
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    kv: KvStore,
    variables: Variables,
}

impl HostState {
    pub(crate) fn new(
        kv: KvStore,
        variables: Variables,
        stderr: Option<GuestLogs>,
        allowed_outbound_hosts: Arc<AllowedHosts>,
    ) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout();
        match stderr {
            Some(pipe) => wasi.stderr(pipe),
            None => wasi.inherit_stderr(),
        };
        Self {
            memory: MemoryWatch::default(),
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                allowed: allowed_outbound_hosts,
            },
            kv,
            variables,
        }
    }

    pub(crate) fn hooks(&mut self) -> &mut dyn WasiHttpHooks {
        &mut self.hooks
    }

    fn kv(&mut self) -> KvCtx<'_> {
        KvCtx {
            store: &self.kv,
            table: &mut self.table,
        }
    }

    fn variables(&mut self) -> &Variables {
        &self.variables
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Builds a linker with WASI 0.2 (used by Rust's std on wasm32-wasip2),
/// WASI 0.3, `wasi:http@0.3`, key-value and variables.
pub(crate) fn linker() -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(super::engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    kv::add_to_linker(&mut linker, HostState::kv)?;
    variables::add_to_linker(&mut linker, HostState::variables)?;
    Ok(linker)
}
