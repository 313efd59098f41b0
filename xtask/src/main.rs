//! `cargo xtask`: the project's two commands and the steps behind them.
//!
//! - `cargo xtask dev [--policy NAME=PATH]...`: installs what is missing,
//!   builds every function for every platform and serves them locally
//!   (Workers builds under `wrangler dev`, Spin builds under the project's
//!   wasmtime host), with a local OIDC provider and echo origin.
//! - `cargo xtask test`: installs the same, then lints, builds and runs every
//!   test, the conformance suite on all four runtimes included.
//!
//! Other subcommands are the steps: `install`, `build`, `build-worker NAME`,
//! `build-spin NAME...`, `sizes`, `sync` (what follows from
//! `functions.toml`: wasm-tests' function lists, a new function's manifest
//! entries), and `bench rate-limit|auth-check|anonymize|spatial-query|metrics|gateway|npm`
//! (the benchmark tables).
//!
//! The functions are the ones `functions.toml` lists (crate `edge-registry`).

mod bench;
mod build;
mod dev;
mod fuzz;
mod install;
mod npm;
mod npm_bench;
mod soak;
mod sync;
mod util;

use std::process::ExitCode;

use anyhow::{Result, bail};
use edge_registry::Registry;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let started = std::time::Instant::now();
    let command = args.first().map(String::as_str);
    match command {
        Some("install") => return install::all(install::Needs::Test),
        Some("bench") => return bench::run(&args[1..]),
        Some("fuzz") => return fuzz::run_command(&args[1..]),
        _ => {}
    }
    let registry = Registry::load()?;
    match command {
        Some("build") => {
            install::all(install::Needs::Build)?;
            build::all(&registry, &build::JustBuild)?;
            build::sizes(&registry)?;
            npm::package_and_sizes(&registry)
        }
        Some("npm") => npm::build(&registry, &args[1..]),
        Some("build-worker") => match &args[1..] {
            [name] => build::worker_unless_fresh(&registry, name),
            _ => bail!("usage: cargo xtask build-worker NAME"),
        },
        Some("build-spin") if args.len() > 1 => {
            let names: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            build::spin(&registry, &names)
        }
        Some("build-spin") => bail!("usage: cargo xtask build-spin NAME..."),
        Some("sizes") => build::sizes(&registry),
        Some("sync") => sync::run(&registry),
        Some("soak") => soak::run_soak(&registry, &args[1..]),
        Some("dev") => {
            let options = dev::Options::parse(&registry, &args[1..])?;
            install::all(install::Needs::Build)?;
            dev::serve(&registry, &options)
        }
        Some("test") => {
            install::all(install::Needs::Test)?;
            build::test(&registry, started)
        }
        _ => bail!(
            "usage: cargo xtask <dev [--policy NAME=PATH]...|test|bench NAME|fuzz [TARGET] [--minutes N]|install|build|build-worker NAME|build-spin NAME...|sizes|sync|soak [--minutes N]>\n\
             dev   builds every function for every platform and serves them on 127.0.0.1\n\
             \x20     (--policy: function NAME's policy file, on Workers and Spin)\n\
             test  lints, builds and runs every test (the conformance suite on all runtimes)"
        ),
    }
}
