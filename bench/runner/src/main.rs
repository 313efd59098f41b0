//! `bench-runner [--dir HOST::GUEST]... [--stats FILE] COMPONENT [ARGS...]`:
//! runs a `wasm32-wasip2` command component under wasmtime and exits with
//! its status.
//!
//! It exists so that `cargo xtask bench` measures wasm on the same wasmtime
//! (48.0.8, the workspace's pin) that hosts the Spin builds in `wasm-tests`,
//! and reuses that build instead of installing a wasmtime CLI. Cranelift
//! compiles at its default optimization level (`speed`); the guest gets
//! `ARGS` (after an `argv[0]` naming the component) and inherits stdout and
//! stderr, nothing else: no stdin, no environment, and no files unless
//! `--dir` preopens a host directory, read-only, at a guest path.
//!
//! The runner watches the guest's linear memories (a
//! [`wasmtime::ResourceLimiter`] that allows every request and records the
//! largest size one was created with or grown to): the peak is printed on
//! stderr after the run and, with `--stats FILE`, written to FILE as JSON
//! (`peak_linear_memory_bytes`, `memories`, `compile_s`, `run_s`), where
//! the guest cannot see it.
//!
//! With `--perfmap` wasmtime writes `/tmp/perf-PID.map` naming the guest's
//! compiled functions, so `perf record` / `perf report` on the runner show
//! where the guest's time goes.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, OptLevel, ProfilingStrategy, ResourceLimiter, Result, Store, bail};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

const USAGE: &str = "usage: bench-runner [--dir HOST_PATH::GUEST_PATH]... [--stats FILE] \
                     [--perfmap] COMPONENT.wasm [ARGS...]";

struct Host {
    ctx: WasiCtx,
    table: ResourceTable,
    memory: MemoryWatch,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// Records the guest's linear memory sizes; limits nothing.
#[derive(Debug, Default)]
struct MemoryWatch {
    /// The largest size, in bytes, any memory was created with or grown to.
    peak: usize,
    /// Memories created.
    memories: usize,
}

impl ResourceLimiter for MemoryWatch {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        if current == 0 {
            self.memories += 1;
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        Ok(true)
    }
}

/// The runner's options and the guest's command line.
struct Options<'a> {
    dirs: Vec<(&'a str, &'a str)>,
    stats: Option<&'a str>,
    /// Write a perf map of the guest's functions (`--perfmap`).
    perfmap: bool,
    component: &'a str,
    guest_args: &'a [String],
}

impl<'a> Options<'a> {
    fn parse(args: &'a [String]) -> Result<Options<'a>> {
        let mut dirs = Vec::new();
        let mut stats = None;
        let mut perfmap = false;
        let mut rest = args;
        loop {
            match rest {
                [flag, value, tail @ ..] if flag == "--dir" => {
                    let Some(pair) = value.split_once("::") else {
                        bail!("--dir {value:?}: expected HOST_PATH::GUEST_PATH\n{USAGE}");
                    };
                    dirs.push(pair);
                    rest = tail;
                }
                [flag, value, tail @ ..] if flag == "--stats" => {
                    stats = Some(value.as_str());
                    rest = tail;
                }
                [flag, tail @ ..] if flag == "--perfmap" => {
                    perfmap = true;
                    rest = tail;
                }
                [flag, ..] if flag == "--dir" || flag == "--stats" => {
                    bail!("{flag} needs a value\n{USAGE}")
                }
                [component, guest_args @ ..] => {
                    return Ok(Options {
                        dirs,
                        stats,
                        perfmap,
                        component,
                        guest_args,
                    });
                }
                [] => bail!(USAGE),
            }
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
    let options = Options::parse(args)?;
    let mut config = Config::new();
    config.cranelift_opt_level(OptLevel::Speed);
    if options.perfmap {
        config.profiler(ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config)?;
    let started = Instant::now();
    let component = Component::from_file(&engine, options.component)
        .with_context(|| format!("compiling {}", options.component))?;
    let compile_s = started.elapsed().as_secs_f64();
    eprintln!(
        "bench-runner: compiled {} in {compile_s:.2} s",
        options.component
    );
    let mut linker = Linker::<Host>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    let name = Path::new(options.component).file_stem().map_or_else(
        || options.component.to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    let mut builder = WasiCtx::builder();
    builder
        .inherit_stdout()
        .inherit_stderr()
        .arg(name)
        .args(options.guest_args);
    for (host, guest) in &options.dirs {
        builder
            .preopened_dir(host, guest, FsPerms::ReadOnly)
            .with_context(|| format!("preopening {host} as {guest}"))?;
    }
    let ctx = builder.build();
    let mut store = Store::new(
        &engine,
        Host {
            ctx,
            table: ResourceTable::new(),
            memory: MemoryWatch::default(),
        },
    );
    store.limiter(|host| &mut host.memory);
    let started = Instant::now();
    let command = Command::instantiate(&mut store, &component, &linker)?;
    let outcome = command.wasi_cli_run().call_run(&mut store);
    let run_s = started.elapsed().as_secs_f64();
    let watch = &store.data().memory;
    eprintln!(
        "bench-runner: peak linear memory {} bytes ({:.1} MiB, {} memories), ran {run_s:.2} s",
        watch.peak,
        watch.peak as f64 / f64::from(1u32 << 20),
        watch.memories
    );
    if let Some(path) = options.stats {
        let json = format!(
            "{{\"peak_linear_memory_bytes\": {}, \"memories\": {}, \"compile_s\": {compile_s:.3}, \
             \"run_s\": {run_s:.3}}}\n",
            watch.peak, watch.memories
        );
        std::fs::write(path, json).with_context(|| format!("writing {path}"))?;
    }
    Ok(match outcome? {
        Ok(()) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    })
}
