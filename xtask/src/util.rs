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

/// When `path` was last modified, if it exists.
pub(crate) fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether every one of `outputs` exists and is at least as new as `input`.
pub(crate) fn fresh(outputs: &[PathBuf], input: &Path) -> bool {
    let Some(input) = modified(input) else {
        return false;
    };
    outputs
        .iter()
        .all(|output| modified(output).is_some_and(|output| output >= input))
}

/// The status of `GET path` on `127.0.0.1:port`, or `None` when nothing
/// answers there within a few seconds.
pub(crate) fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    use std::time::Duration;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        std::net::TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200"
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_reads_a_status_line_and_none_without_a_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buffer = [0; 256];
            while !request.ends_with(b"\r\n\r\n") {
                let read = stream.read(&mut buffer).unwrap();
                assert!(read > 0, "the request ended early");
                request.extend_from_slice(&buffer[..read]);
            }
            assert!(request.starts_with(b"GET /health HTTP/1.1\r\n"));
            stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        });
        assert_eq!(http_status(port, "/health"), Some(503));
        server.join().unwrap();
        assert_eq!(http_status(port, "/health"), None);
    }

    #[test]
    fn fresh_needs_every_output_newer_than_the_input() {
        let dir = std::env::temp_dir().join(format!("xtask-fresh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("in.wasm");
        let outputs = [dir.join("a.js"), dir.join("b.wasm")];
        std::fs::write(&input, "x").unwrap();
        assert!(!fresh(&outputs, &input), "outputs missing");
        std::fs::write(&outputs[0], "a").unwrap();
        std::fs::write(&outputs[1], "b").unwrap();
        assert!(fresh(&outputs, &input));
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&input)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(!fresh(&outputs, &input), "input newer than outputs");
        assert!(!fresh(&outputs, &dir.join("missing.wasm")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
