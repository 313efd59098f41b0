//! `bench-runner COMPONENT [ARGS...]`: runs a `wasm32-wasip2` command
//! component under wasmtime and exits with its status.
//!
//! It exists so that `cargo xtask bench` measures wasm on the same wasmtime
//! (48.0.8, the workspace's pin) that hosts the Spin builds in `wasm-tests`,
//! and reuses that build instead of installing a wasmtime CLI. Cranelift
//! compiles at its default optimization level (`speed`); the guest gets
//! `ARGS` (after an `argv[0]` naming the component) and inherits stdout and
//! stderr, nothing else: no stdin, environment or files.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, OptLevel, Result, Store, bail};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

struct Host {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench-runner: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode> {
    let Some((component, guest_args)) = args.split_first() else {
        bail!("usage: bench-runner COMPONENT.wasm [ARGS...]");
    };
    let mut config = Config::new();
    config.cranelift_opt_level(OptLevel::Speed);
    let engine = Engine::new(&config)?;
    let started = Instant::now();
    let component = Component::from_file(&engine, component)
        .with_context(|| format!("compiling {component}"))?;
    eprintln!(
        "bench-runner: compiled {} in {:.2} s",
        args[0],
        started.elapsed().as_secs_f64()
    );
    let mut linker = Linker::<Host>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    let name = Path::new(&args[0])
        .file_stem()
        .map_or_else(|| args[0].clone(), |s| s.to_string_lossy().into_owned());
    let ctx = WasiCtx::builder()
        .inherit_stdout()
        .inherit_stderr()
        .arg(name)
        .args(guest_args)
        .build();
    let mut store = Store::new(
        &engine,
        Host {
            ctx,
            table: ResourceTable::new(),
        },
    );
    let command = Command::instantiate(&mut store, &component, &linker)?;
    Ok(match command.wasi_cli_run().call_run(&mut store)? {
        Ok(()) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    })
}
