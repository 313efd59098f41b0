//! The browser runtime: a function's wasm-bindgen build in headless
//! Chromium, driven by `chromium/run.mjs` (playwright-core). The page runs
//! the suite's requests through the exported class and returns the
//! responses; they are compared in Rust like every other runtime's.
//! [`chart_screenshot`] loads the metrics function's chart page and saves
//! a screenshot of it.

use std::collections::BTreeMap;
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

/// What the metrics chart page drew in Chromium ([`chart_screenshot`]).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ChartPage {
    /// `document.body.dataset.ready`: `"true"` once drawn, `"error"` when
    /// the series could not be loaded.
    pub ready: String,
    /// The page's status line.
    pub status: String,
    /// One per (function, route) drawn.
    pub panels: Vec<ChartPanel>,
    /// Page errors and console errors.
    pub errors: Vec<String>,
}

/// One panel of the chart page.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ChartPanel {
    /// `"FUNCTION ROUTE"` (the panel's `data-route`).
    pub route: String,
    /// The panel's heading.
    pub heading: String,
    /// `svg polyline` elements per quantile class (`p50`, `p95`, `p99`).
    pub polylines: BTreeMap<String, usize>,
    /// Points drawn per quantile class.
    pub points: BTreeMap<String, usize>,
}

/// Loads the chart page at `url` in headless Chromium
/// (`chromium/chart_screenshot.mjs`), waits until it has drawn, saves a PNG
/// screenshot of the whole page to `out` and reports what it drew.
pub fn chart_screenshot(url: &str, out: &Path) -> Result<ChartPage> {
    let root = workspace_root();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let output = Command::new("node")
        .current_dir(&root)
        .env("PATH", path_with_node_bin()?)
        .arg(root.join("wasm-tests/chromium/chart_screenshot.mjs"))
        .arg("--url")
        .arg(url)
        .arg("--out")
        .arg(out)
        .output()
        .context("starting node for the chart screenshot")?;
    if !output.status.success() {
        bail!(
            "chart screenshot failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "reading the chart page's report: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
