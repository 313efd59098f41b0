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
    /// the data could not be loaded.
    pub ready: String,
    /// The page's status line.
    pub status: String,
    /// The firing alerts in the banner on top.
    pub alerts: Vec<ChartAlert>,
    /// The banners' classes (`banner firing`, `banner pending`, `banner calm`).
    pub banner: Vec<String>,
    /// The overview table's rows as first drawn (worst first).
    pub rows: Vec<ChartRow>,
    /// The line under the table (how many routes are hidden as noise).
    pub hidden: String,
    /// The rate column's minutes and heading.
    pub rate_column: RateColumn,
    /// The rows' routes once sorted by requests (a click on the heading).
    pub by_requests: Vec<String>,
    /// The rows' routes after two more clicks (back to worst first).
    pub resorted: Vec<String>,
    /// The panels' routes before the route was picked.
    pub panels_before: Vec<String>,
    /// The panels after the route was picked.
    pub panels: Vec<ChartPanel>,
    /// `location.hash` after picking (the picked routes, to share).
    pub address: String,
    /// Page errors and console errors.
    pub errors: Vec<String>,
    /// Requests the page made to any other origin.
    pub foreign_requests: Vec<String>,
}

/// One firing alert in the page's banner.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ChartAlert {
    /// The alert's name.
    pub name: String,
    /// Its line in the banner.
    pub text: String,
}

/// One row of the overview table.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ChartRow {
    /// `"FUNCTION ROUTE"`.
    pub route: String,
    /// Marked as having a firing alert.
    pub alerting: bool,
    /// Its panels are shown.
    pub picked: bool,
    /// 5xx over requests.
    pub error_rate: f64,
    /// The cells' text by column (`requests`, `rate`, `error_rate`, `p99`, …).
    pub cells: BTreeMap<String, String>,
    /// The rate column's value (requests per second over the minutes of
    /// [`ChartPage::rate_column`]); `None` if the cell had none.
    pub rate: Option<f64>,
}

/// The overview's rate column: the minutes it covers and its heading.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RateColumn {
    /// The first minute's start, epoch seconds.
    pub from: f64,
    /// The end of the last minute, epoch seconds.
    pub to: f64,
    /// The heading's text.
    pub heading: String,
    /// The heading's tooltip.
    pub title: String,
}

/// One route's panel: latency, request-rate and error charts.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ChartPanel {
    /// `"FUNCTION ROUTE"` (the panel's `data-route`).
    pub route: String,
    /// The panel's heading.
    pub heading: String,
    /// The charts' titles.
    pub charts: Vec<String>,
    /// The latency chart's line per quantile (`p50`, `p95`, `p99`).
    pub quantiles: BTreeMap<String, ChartLine>,
    /// Bars drawn per class: `req` (requests), `err` (5xx), `lim` (429).
    pub bars: BTreeMap<String, usize>,
}

/// One quantile's line.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ChartLine {
    /// `svg polyline` elements of this quantile.
    pub lines: usize,
    /// Points on the line.
    pub points: usize,
    /// The line's `points` attribute.
    pub coords: String,
    /// Its computed stroke colour.
    pub stroke: String,
    /// Its computed dash pattern.
    pub dash: String,
}

/// Loads the chart page at `url` in headless Chromium
/// (`chromium/chart_screenshot.mjs`), waits until it has drawn, sorts the
/// overview by requests and back, picks the route `pick`
/// (`"FUNCTION ROUTE"`), saves a PNG screenshot of the whole page to `out`
/// and reports what it drew.
pub fn chart_screenshot(url: &str, out: &Path, pick: &str) -> Result<ChartPage> {
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
        .arg("--pick")
        .arg(pick)
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
