//! Small process and path helpers.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The cargo target directory (honours `CARGO_TARGET_DIR`).
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// `node_modules/.bin` first on PATH, so wrangler runs on the npm Node 22.
pub(crate) fn path_with_node_bin() -> std::ffi::OsString {
    let mut paths = vec![root().join("node_modules/.bin")];
    // Where `cargo install` puts worker-build and wasm-bindgen.
    match (std::env::var_os("CARGO_HOME"), std::env::var_os("HOME")) {
        (Some(cargo_home), _) => paths.push(Path::new(&cargo_home).join("bin")),
        (None, Some(home)) => paths.push(Path::new(&home).join(".cargo/bin")),
        (None, None) => {}
    }
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// A command run from the workspace root with the project's PATH.
pub(crate) fn cmd(program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(root())
        .env("PATH", path_with_node_bin());
    command
}

/// Runs `command`, failing when it fails.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("cannot start {}", describe(command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(command));
    }
    Ok(())
}

/// Runs `command` and returns its stdout, or `None` when it cannot run or fails.
pub(crate) fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(command: &Command) -> String {
    let mut s = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}
