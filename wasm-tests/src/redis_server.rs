//! A throwaway Redis (Debian `redis-server`) on 127.0.0.1 for the tests of
//! the host's Redis-backed key-value store, and [`TiedChild`], a process
//! that dies with the test that started it.
//!
//! The binary is `REDIS_SERVER` if set, else `redis-server` on `PATH` or in
//! `/usr/bin`; when there is none it is installed with apt-get (as
//! `cargo xtask install` does), once per process. Each server listens on a
//! free port, keeps its files in a temporary directory removed on drop and,
//! by default, persists nothing. [`RedisServer::start_durable`] keeps an
//! append-only file written before every reply (`appendfsync always`), so
//! that a server killed with SIGKILL and restarted on the same directory
//! still holds every write it acknowledged.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// How long a server may take to answer `PING` after it was started.
pub const START_DEADLINE: Duration = Duration::from_secs(15);

/// A process started through `sh`, which kills it (SIGKILL) when the pipe
/// on its standard input closes: on drop, and also when the test process
/// dies without dropping it.
pub struct TiedChild {
    shell: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
}

impl TiedChild {
    /// Starts `program` with `args`, its standard error into `stderr_log`.
    /// Returns the child and its standard output.
    pub fn spawn(
        program: &Path,
        args: &[String],
        stderr_log: &Path,
    ) -> Result<(TiedChild, BufReader<ChildStdout>)> {
        // The program runs in the background (its stdin is /dev/null), the
        // shell reports its pid and waits for EOF on its own stdin.
        let script = r#""$@" & echo "$!"; cat >/dev/null; kill -9 "$!" 2>/dev/null"#;
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr_log)?)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdin = shell.stdin.take();
        let mut stdout = BufReader::new(shell.stdout.take().context("the shell's stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let pid = line
            .trim()
            .parse()
            .with_context(|| format!("{}: no pid from the shell: {line:?}", program.display()))?;
        Ok((TiedChild { shell, stdin, pid }, stdout))
    }

    /// The program's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the program still runs.
    pub fn running(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .is_ok_and(|stat| stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')))
    }

    /// Kills the program with SIGKILL and waits for the shell to reap it.
    pub fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        drop(self.stdin.take());
        let _ = self.shell.wait();
    }
}

impl Drop for TiedChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `redis-server`; killed, and its directory removed, on drop.
pub struct RedisServer {
    child: Option<TiedChild>,
    port: u16,
    dir: PathBuf,
    durable: bool,
}

impl RedisServer {
    /// A server that persists nothing.
    pub fn start() -> Result<Self> {
        Self::launch(false)
    }

    /// A server whose append-only file is written and synced before each
    /// reply, so [`RedisServer::kill`] then [`RedisServer::restart`] loses
    /// no acknowledged write.
    pub fn start_durable() -> Result<Self> {
        Self::launch(true)
    }

    fn launch(durable: bool) -> Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("edge-redis-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir)?;
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            durable,
        };
        // A free port can be taken between asking and binding: try again.
        let mut last = None;
        for _ in 0..3 {
            server.port = free_port()?;
            match server.run() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server with SIGKILL (no shutdown, no save).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Starts the server again on the same port and directory (a durable
    /// one reloads its append-only file) and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.run()
    }

    /// The end of the server's log.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.join("redis.log")) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn run(&mut self) -> Result<()> {
        let binary = redis_server_binary()?;
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--save",
            "",
            "--dir",
            &self.dir.to_string_lossy(),
            "--logfile",
            "redis.log",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let persistence: &[&str] = if self.durable {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        args.extend(persistence.iter().map(|s| (*s).to_owned()));
        let (child, _stdout) = TiedChild::spawn(&binary, &args, &self.dir.join("stderr.log"))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
            {
                return Ok(());
            }
            let running = self.child.as_ref().is_some_and(TiedChild::running);
            if !running || started.elapsed() > START_DEADLINE {
                self.kill();
                bail!(
                    "redis-server on port {} did not answer ({}):\n{}",
                    self.port,
                    if running { "too slow" } else { "exited" },
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A per-process counter for directory names.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `REDIS_SERVER`, else `redis-server` on `PATH` or in `/usr/bin`,
/// installed with apt-get (Debian `redis-server`) when missing.
pub fn redis_server_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("REDIS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = find_on_path("redis-server") {
        return Ok(found);
    }
    eprintln!("redis-server is missing: installing Debian redis-server with apt-get");
    apt_install("redis-server").context(
        "installing redis-server (run `cargo xtask install`, or set REDIS_SERVER to a binary)",
    )?;
    find_on_path("redis-server").context("redis-server is still not on PATH after apt-get")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `apt-get update` then `apt-get install -y --no-install-recommends
/// PACKAGE`, through sudo when not root.
fn apt_install(package: &str) -> Result<()> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let apt = |args: &[&str]| -> Result<()> {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        let status = command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-q"])?;
    apt(&["install", "-y", "-q", "--no-install-recommends", package])
}
