//! The Deno runtime: the npm package as a user installs it (the tarball
//! `cargo xtask build` packs, installed once per test process into a
//! scratch project) served by `deno serve` (Deno from npm, the `deno`
//! devDependency) through the package's `deno/serve.js` entry, as a user
//! would deploy it to Deno Deploy: the function named by `EDGE_FUNCTION`,
//! its variables and secrets in an environment holding nothing else. One
//! process per suite, on 127.0.0.1 and a free port, stopped when
//! [`DenoServe`] drops. The cases go over HTTP ([`crate::workerd::send`]).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::conformance::{Actual, Suite};
use crate::workerd::{agent, log_tail, send, wait_healthy};
use crate::workspace_root;

/// How long `deno serve` may take to answer `/health`.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The Deno binary the `deno` npm package installed: its own copy
/// (`node_modules/deno/deno`, when its postinstall ran) or the platform
/// package's (`node_modules/@deno/PLATFORM/deno`). Calling it directly
/// spares a Node process per start (`node_modules/.bin/deno` is a Node
/// shim that spawns it).
pub fn deno_binary() -> Result<PathBuf> {
    let modules = workspace_root().join("node_modules");
    let own = modules.join("deno/deno");
    if own.exists() {
        return Ok(own);
    }
    let platforms = modules.join("@deno");
    if let Ok(entries) = std::fs::read_dir(&platforms) {
        for entry in entries.flatten() {
            let binary = entry.path().join("deno");
            if binary.exists() {
                return Ok(binary);
            }
        }
    }
    bail!(
        "no Deno binary in {}: run `cargo xtask install` (npm devDependency `deno`)",
        platforms.display()
    )
}

/// A scratch project with the tarball installed (once per process):
/// returns the package's `deno/serve.js`.
fn serve_entry() -> Result<PathBuf> {
    static ENTRY: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    ENTRY
        .get_or_init(|| {
            let entry = crate::npm::scratch_project("deno-serve")
                .map_err(|e| format!("{e:#}"))?
                .join("node_modules/edge-functions/deno/serve.js");
            if entry.exists() {
                Ok(entry)
            } else {
                Err(format!(
                    "the package has no deno/serve.js ({})",
                    entry.display()
                ))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// A running `deno serve` of one function.
pub struct DenoServe {
    child: Child,
    port: u16,
    scratch: PathBuf,
}

impl DenoServe {
    /// Serves `function` with these variables and secrets in its
    /// environment and waits until `/health` answers (200, or 503 or 500
    /// when it is unwell or misconfigured).
    pub fn start(
        function: &str,
        vars: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let deno = deno_binary()?;
        let entry = serve_entry()?;
        // Another process may take the free port before Deno binds it:
        // such a start is tried again.
        let mut attempt = 1;
        loop {
            match Self::launch(&deno, &entry, function, vars, secrets) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    fn launch(
        deno: &Path,
        entry: &Path,
        function: &str,
        vars: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let scratch =
            std::env::temp_dir().join(format!("edge-deno-serve-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&scratch)?;
        let mut command = Command::new(deno);
        command
            .current_dir(entry_project(entry))
            // What a deployment's environment holds: the configuration,
            // and Deno's own cache directory.
            .env_clear()
            .env("DENO_DIR", scratch.join("deno-dir"))
            .env("DENO_NO_UPDATE_CHECK", "1")
            .env("NO_COLOR", "1")
            .env("EDGE_FUNCTION", function)
            .args([
                "serve",
                "--allow-read",
                "--allow-env",
                "--host",
                "127.0.0.1",
            ])
            .arg("--port")
            .arg(port.to_string())
            .arg(entry)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(scratch.join("deno.log"))?)
            .stderr(std::fs::File::create(scratch.join("deno.err"))?);
        for (k, v) in vars.iter().chain(secrets) {
            command.env(k, v);
        }
        let child = command.spawn().context("starting deno serve")?;
        let mut serve = DenoServe {
            child,
            port,
            scratch,
        };
        serve.wait_ready()?;
        Ok(serve)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let url = self.url();
        let logs = self.logs();
        wait_healthy(
            &mut self.child,
            &url,
            // 500: serving, with a configuration it refuses.
            &[200, 500, 503],
            (START_DEADLINE, Duration::from_millis(50)),
            "deno serve",
            &logs,
        )
    }

    fn logs(&self) -> [PathBuf; 2] {
        [self.scratch.join("deno.log"), self.scratch.join("deno.err")]
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last lines Deno printed (the function's log lines among them).
    pub fn log_tail(&self) -> String {
        log_tail(&self.logs())
    }
}

/// The scratch project `entry` was installed into.
fn entry_project(entry: &Path) -> PathBuf {
    entry
        .ancestors()
        .nth(4)
        .map_or_else(std::env::temp_dir, Path::to_path_buf)
}

impl Drop for DenoServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Runs the suite on `deno serve`: one process for the suite's cases.
pub fn answers(suite: &Suite) -> Result<Vec<Actual>> {
    let serve = DenoServe::start(&suite.function, &suite.vars, &suite.secrets)?;
    let agent = agent(Duration::from_secs(30));
    suite
        .cases
        .iter()
        .map(|case| {
            send(&agent, &serve.url(), &case.request)
                .with_context(|| format!("{}:\n{}", case.name, serve.log_tail()))
        })
        .collect()
}
