//! Installs what a fresh machine lacks: wasm targets, worker-build, the
//! wasm-bindgen CLI matching `Cargo.lock`, the npm tools (`package.json`),
//! and for tests only Chromium, PostgreSQL with PostGIS, `promtool`, `redis-server` and a
//! Python venv (`target/pyenv`, from `requirements.txt`). Each step checks
//! first, so a second run costs seconds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::util::{cmd, output, root, run};

/// The worker-build version `worker` 0.8.7 goes with.
const WORKER_BUILD_VERSION: &str = "0.8.7";

/// What the caller is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Build and serve.
    Build,
    /// Build and test: also a browser.
    Test,
}

/// Installs everything `needs` calls for.
pub(crate) fn all(needs: Needs) -> Result<()> {
    run(cmd("rustup").args(["target", "add", "wasm32-unknown-unknown", "wasm32-wasip2"]))?;
    cargo_tool(
        "worker-build",
        WORKER_BUILD_VERSION,
        &["install", "--locked", "worker-build@0.8.7"],
    )?;
    let bindgen = wasm_bindgen_version()?;
    cargo_tool(
        "wasm-bindgen",
        &bindgen,
        &["install", "wasm-bindgen-cli", "--version", &bindgen],
    )?;
    npm()?;
    if needs == Needs::Test {
        chromium()?;
        postgis()?;
        promtool()?;
        redis_server()?;
        python()?;
    }
    Ok(())
}

/// The exact wasm-bindgen version in `Cargo.lock`.
pub(crate) fn wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(version) = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
        {
            return Ok(version.to_owned());
        }
    }
    bail!("wasm-bindgen is not in Cargo.lock")
}

fn cargo_tool(binary: &str, version: &str, install_args: &[&str]) -> Result<()> {
    let installed = output(cmd(binary).arg("--version")).unwrap_or_default();
    if installed.contains(version) {
        return Ok(());
    }
    eprintln!(
        "xtask: installing {binary} {version} (found: {:?})",
        installed.trim()
    );
    run(cmd("cargo").args(install_args))
}

fn npm() -> Result<()> {
    let bin = root().join("node_modules/.bin");
    let stamp = root().join("node_modules/.package-lock.json");
    let fresh = ["wrangler", "node", "wasm-opt", "esbuild", "deno", "tsc"]
        .iter()
        .all(|b| bin.join(b).exists())
        && ["oidc-provider", "jose"].iter().all(|p| {
            root()
                .join("node_modules")
                .join(p)
                .join("package.json")
                .exists()
        })
        && newer(&stamp, &root().join("package.json"));
    if fresh {
        return Ok(());
    }
    // `npm ci` rejects a lockfile written on another platform; `npm install`
    // with the lockfile installs the same versions.
    run(cmd("npm").args(["install", "--no-audit", "--no-fund"]))
}

fn newer(a: &Path, b: &Path) -> bool {
    crate::util::fresh(&[a.to_path_buf()], b)
}

fn chromium() -> Result<()> {
    if Path::new(crate::build::CHROMIUM).exists() {
        return Ok(());
    }
    apt_install(&["chromium"])
}

/// PostgreSQL 15 with PostGIS 3: the spatial-query oracle test and
/// benchmark start throwaway clusters of it.
fn postgis() -> Result<()> {
    if Path::new(POSTGIS_CONTROL).exists() && Path::new(POSTGRES_BIN).exists() {
        return Ok(());
    }
    apt_install(&["postgresql-15", "postgresql-15-postgis-3"])
}

/// `promtool` (Debian `prometheus`): the metrics tests run `promtool check
/// metrics` on the exposition. Without recommends, which would add
/// `prometheus-node-exporter`, a second daemon. The package ships a
/// `prometheus` service; where an init system runs (not in containers,
/// whose `policy-rc.d` refuses starts) it listens on :9090, a port nothing
/// here uses.
fn promtool() -> Result<()> {
    if Path::new(PROMTOOL).exists() {
        return Ok(());
    }
    apt_install_only(&["prometheus"])
}

/// The binary the metrics tests run.
const PROMTOOL: &str = "/usr/bin/promtool";

/// `redis-server` (Debian `redis-server`): the tests of the Spin host's
/// Redis-backed key-value store start throwaway servers of it on
/// 127.0.0.1 (`wasm-tests/src/redis_server.rs`, which also installs it
/// when run alone). Without recommends; in containers the package's
/// service is not started, elsewhere it listens on :6379, a port the
/// tests do not use.
pub(crate) fn redis_server() -> Result<()> {
    if Path::new(REDIS_SERVER).exists() {
        return Ok(());
    }
    apt_install_only(&["redis-server"])
}

/// The binary the Redis store tests run.
const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Files whose presence says PostgreSQL 15 and PostGIS are installed.
const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin/postgres";
const POSTGIS_CONTROL: &str = "/usr/share/postgresql/15/extension/postgis.control";

/// Where the tests' Python lives (PyJWT and cryptography, the auth-check
/// tests' reference verifier): `<repo>/target/pyenv`.
pub(crate) fn pyenv() -> PathBuf {
    root().join("target/pyenv")
}

/// The venv, with `requirements.txt` installed.
pub(crate) fn python() -> Result<()> {
    venv(&pyenv(), &root().join("requirements.txt"))
}

/// A venv at `dir` with `requirements` installed. A copy of the
/// requirements inside the venv marks it up to date.
pub(crate) fn venv(dir: &Path, requirements: &Path) -> Result<()> {
    let wanted = std::fs::read_to_string(requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let python = dir.join("bin/python");
    let stamp = dir.join("requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|had| had == wanted) {
        return Ok(());
    }
    if !python.exists() {
        let create = || run(cmd("python3").arg("-m").arg("venv").arg(dir));
        if create().is_err() {
            // Debian's python3 lacks venv/ensurepip until python3-venv.
            let _ = std::fs::remove_dir_all(dir);
            apt_install(&["python3-venv"])?;
            create()?;
        }
    }
    run(cmd(&python.to_string_lossy())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--requirement")
        .arg(requirements)
        .env("PIP_NO_INPUT", "1"))?;
    std::fs::write(&stamp, wanted).context("writing the venv's requirements stamp")
}

fn apt_install(packages: &[&str]) -> Result<()> {
    apt_get_install(packages, true)
}

/// `apt_install` without the packages' recommends.
fn apt_install_only(packages: &[&str]) -> Result<()> {
    apt_get_install(packages, false)
}

fn apt_get_install(packages: &[&str], recommends: bool) -> Result<()> {
    let sudo = output(cmd("id").arg("-u")).is_none_or(|uid| uid.trim() != "0");
    let apt = |args: &[&str]| {
        let mut command = if sudo { cmd("sudo") } else { cmd("apt-get") };
        if sudo {
            command.arg("apt-get");
        }
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut command)
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q"];
    if !recommends {
        install.push("--no-install-recommends");
    }
    apt(&[install.as_slice(), packages].concat())
}
