//! The npm package as a user gets it: the tarball `cargo xtask build`
//! packs, installed into a scratch project.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::artifacts_dir;

/// The packed tarball, `target/edge/npm/edge-functions-*.tgz`.
pub fn tarball() -> Result<PathBuf> {
    let dir = artifacts_dir().join("npm");
    std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("edge-functions-") && n.ends_with(".tgz"))
        })
        .with_context(|| {
            format!(
                "no edge-functions-*.tgz in {}: run `cargo xtask build`",
                dir.display()
            )
        })
}

/// A scratch project (`edge-npm-LABEL-PID` in the temporary directory,
/// made anew) with the tarball installed: `npm install`, offline, since
/// the package has no dependencies.
pub fn scratch_project(label: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("edge-npm-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"scratch","private":true,"type":"module"}"#,
    )?;
    let output = Command::new("npm")
        .current_dir(&dir)
        .args([
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--no-package-lock",
        ])
        .arg(tarball()?)
        .output()
        .context("running npm")?;
    if !output.status.success() {
        bail!(
            "npm install of the tarball failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(dir)
}
