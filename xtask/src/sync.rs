//! `cargo xtask sync`: writes what follows from `functions.toml`, so that a
//! new function is its folder and one registry entry. First the function
//! lists of `wasm-tests` (its dependencies and the native runner's
//! `functions!`), then — through wasm-tests' `sync-manifests`, which links
//! every function crate and so knows their variables and secrets — a
//! first `wrangler.toml` environment and `spin.toml` component for any
//! function the manifests lack. wasm-tests' registry test fails, naming
//! this command, while any of it is out of date.

use std::path::Path;

use anyhow::{Context as _, Result};
use edge_registry::{Registry, scaffold};

use crate::util;

pub(crate) fn run(registry: &Registry) -> Result<()> {
    let root = util::root();
    rewrite(
        &root.join("wasm-tests/Cargo.toml"),
        "#",
        &scaffold::cargo_dependencies(registry),
    )?;
    rewrite(
        &root.join("wasm-tests/src/native.rs"),
        "//",
        &scaffold::native_functions(registry),
    )?;
    util::run(util::cmd("cargo").args(["run", "-q", "-p", "wasm-tests", "--bin", "sync-manifests"]))
}

/// Replaces the generated list in `path`, saying whether it changed.
fn rewrite(path: &Path, comment: &str, body: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let new = scaffold::replace_generated(&text, comment, body)
        .with_context(|| format!("{}", path.display()))?;
    if new == text {
        eprintln!("xtask: {} is up to date", path.display());
    } else {
        std::fs::write(path, new).with_context(|| format!("{}", path.display()))?;
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(())
}
