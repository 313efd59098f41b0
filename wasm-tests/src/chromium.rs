//! The browser runtime: a function's wasm-bindgen build in headless
//! Chromium, driven by `chromium/run.mjs` (playwright-core). The page runs
//! the suite's requests through the exported class and returns the
//! responses; they are compared in Rust like every other runtime's.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::conformance::{Actual, Suite};
use crate::{artifacts_dir, path_with_node_bin, workspace_root};

/// Runs the suite at `suite_path` in Chromium.
pub fn answers(suite_path: &Path, suite: &Suite) -> Result<Vec<Actual>> {
    let root = workspace_root();
    let module = artifacts_dir().join(format!("browser/{0}/{0}.js", suite.function));
    if !module.exists() {
        bail!("{} is missing: run `cargo xtask build`", module.display());
    }
    let output = Command::new("node")
        .current_dir(&root)
        .env("PATH", path_with_node_bin()?)
        .arg(root.join("wasm-tests/chromium/run.mjs"))
        .arg("--root")
        .arg(artifacts_dir().join("browser"))
        .arg("--suite")
        .arg(suite_path)
        .output()
        .context("starting node for the Chromium runner")?;
    if !output.status.success() {
        bail!(
            "Chromium runner failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("reading the Chromium runner's answers")
}
