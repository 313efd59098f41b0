//! A real OpenID provider for the auth-check tests: `wasm-tests/oidc/provider.mjs`
//! (npm `oidc-provider` on the project's Node 22) as a child process on
//! 127.0.0.1, so the function fetches genuine discovery documents and JWKS
//! and verifies tokens a real provider issued. Its control API (`/__test/…`)
//! issues tokens, rotates keys and counts fetches; [`OidcProvider`] wraps it
//! and stops the process when dropped.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::workerd::agent;
use crate::workspace_root;

/// How long the provider may take to listen.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// How the provider starts.
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    /// `Cache-Control: public, max-age=N` on the JWKS (none: oidc-provider's own).
    pub jwks_max_age: Option<u64>,
    /// The default audience (resource) of tokens; `https://api.test` if none.
    pub audience: Option<String>,
}

/// What a token request asks for (`POST /__test/token`); unset fields take
/// the provider's defaults: RS256, audience `https://api.test`, 15 minutes,
/// `sub` = the client id `edge-tests`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenRequest {
    /// Space-separated scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The `roles` claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// RS256, PS256, ES256, ES384, EdDSA, or HS256 (with `secret`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// The `aud` claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Lifetime in seconds (positive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// The `sub` claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// More claims, overriding the issued ones (`exp`, `iss`, … included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<Value>,
    /// More protected-header fields (`crit`, `typ`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<Value>,
    /// The HS* key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A token the provider issued.
#[derive(Debug, Clone, Deserialize)]
pub struct Issued {
    /// The JWT.
    pub access_token: String,
    /// Seconds to expiry.
    pub expires_in: u64,
    /// The granted scopes.
    #[serde(default)]
    pub scope: Option<String>,
    /// The signing key's id (none for HS*).
    #[serde(default)]
    pub kid: Option<String>,
}

/// Fetch counts since start (or the last [`OidcProvider::reset_stats`]).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Stats {
    /// `GET /jwks`.
    pub jwks_fetches: u64,
    /// `GET /.well-known/openid-configuration`.
    pub discovery_fetches: u64,
    /// `POST /token`, the control API's included.
    pub token_requests: u64,
    /// Key generation, 1 at start, +1 per rotation.
    pub generation: u64,
    /// Every key id in the JWKS, newest generation first.
    pub kids: Vec<String>,
}

/// The key ids after a rotation.
#[derive(Debug, Clone, Deserialize)]
pub struct Rotation {
    /// The new generation.
    pub generation: u64,
    /// Every key id now in the JWKS.
    pub kids: Vec<String>,
    /// The key id that now signs each algorithm.
    pub signing_kids: std::collections::BTreeMap<String, String>,
}

/// A running provider; killed on drop.
pub struct OidcProvider {
    child: Child,
    // Held open: the provider exits when it closes (`--exit-with-stdin`),
    // so even a test killed before `Drop` leaves no process behind.
    stdin: Option<ChildStdin>,
    issuer: String,
    port: u16,
    scratch: PathBuf,
    agent: ureq::Agent,
}

impl OidcProvider {
    /// Starts a provider with default options.
    pub fn start() -> Result<Self> {
        Self::start_with(&ProviderOptions::default())
    }

    /// Starts a provider on a free port and waits until it listens.
    pub fn start_with(options: &ProviderOptions) -> Result<Self> {
        let root = workspace_root();
        let node = root.join("node_modules/.bin/node");
        let script = root.join("wasm-tests/oidc/provider.mjs");
        if !node.exists() || !root.join("node_modules/oidc-provider").exists() {
            bail!(
                "{} or oidc-provider is missing: run `cargo xtask install`",
                node.display()
            );
        }
        let scratch =
            std::env::temp_dir().join(format!("edge-oidc-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&scratch)?;
        let mut command = Command::new(&node);
        command
            .current_dir(&root)
            .arg(&script)
            .args(["--port", "0", "--exit-with-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(scratch.join("stderr.log"))?);
        if let Some(age) = options.jwks_max_age {
            command.args(["--jwks-max-age", &age.to_string()]);
        }
        if let Some(audience) = &options.audience {
            command.args(["--audience", audience]);
        }
        let mut child = command.spawn().context("starting the OIDC provider")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("provider stdout")?;

        // Lines go to a log; the ready line also to us.
        let (ready_tx, ready_rx) = mpsc::channel();
        let log_path = scratch.join("stdout.log");
        std::thread::spawn(move || {
            let mut log = std::fs::File::create(log_path).ok();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(log) = log.as_mut() {
                    let _ = writeln!(log, "{line}");
                }
                if line.starts_with("{\"ready\":true") {
                    let _ = ready_tx.send(line);
                }
            }
        });

        let mut provider = OidcProvider {
            child,
            stdin,
            issuer: String::new(),
            port: 0,
            scratch,
            agent: agent(Duration::from_secs(30)),
        };
        let started = Instant::now();
        let line = loop {
            if let Some(status) = provider.child.try_wait()? {
                bail!(
                    "the OIDC provider exited ({status}) before listening:\n{}",
                    provider.log_tail()
                );
            }
            if started.elapsed() > START_DEADLINE {
                bail!(
                    "the OIDC provider did not listen within {START_DEADLINE:?}:\n{}",
                    provider.log_tail()
                );
            }
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => break line,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        #[derive(Deserialize)]
        struct Ready {
            port: u16,
            issuer: String,
        }
        let ready: Ready = serde_json::from_str(&line).context("the provider's ready line")?;
        provider.port = ready.port;
        provider.issuer = ready.issuer;
        Ok(provider)
    }

    /// `http://127.0.0.1:PORT`: the `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `allowed_outbound_hosts` entry that reaches it.
    pub fn allowed_host(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// `{issuer}/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// An RS256 access token with these scopes and roles, issued by the
    /// client_credentials grant for the default audience.
    pub fn token(&self, scopes: &[&str], roles: &[&str]) -> Result<String> {
        let request = TokenRequest {
            scope: Some(scopes.join(" ")),
            roles: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
            ..TokenRequest::default()
        };
        Ok(self.issue(&request)?.access_token)
    }

    /// A token issued as `request` asks.
    pub fn issue(&self, request: &TokenRequest) -> Result<Issued> {
        let answer = self.control(
            "POST",
            "/__test/token",
            Some(serde_json::to_value(request)?),
        )?;
        serde_json::from_value(answer.clone())
            .with_context(|| format!("the provider refused to issue: {answer}"))
    }

    /// Any JWS (or `alg: none`), signed with the provider's current key for
    /// `alg` (or the key `kid`, or `secret` for HS*): for tokens no provider
    /// would issue (expired, bad `crit`, …). `header` adds to `{alg, kid, typ}`.
    pub fn sign(
        &self,
        alg: &str,
        header: Value,
        payload: Value,
        kid: Option<&str>,
    ) -> Result<String> {
        let mut body = serde_json::json!({ "alg": alg, "header": header, "payload": payload });
        if let Some(kid) = kid {
            body["kid"] = kid.into();
        }
        let answer = self.control("POST", "/__test/sign", Some(body))?;
        answer["token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no token in {answer}"))
    }

    /// New keys sign from now on; the JWKS has them and the previous
    /// generation.
    pub fn rotate(&self) -> Result<Rotation> {
        self.rotate_keeping_old(true)
    }

    /// Like [`OidcProvider::rotate`]; `keep_old = false` drops every older key.
    pub fn rotate_keeping_old(&self, keep_old: bool) -> Result<Rotation> {
        let answer = self.control(
            "POST",
            "/__test/rotate",
            Some(serde_json::json!({ "keep_old": keep_old })),
        )?;
        Ok(serde_json::from_value(answer)?)
    }

    /// Fetch counts.
    pub fn stats(&self) -> Result<Stats> {
        Ok(serde_json::from_value(self.control(
            "GET",
            "/__test/stats",
            None,
        )?)?)
    }

    /// Zeroes the fetch counts.
    pub fn reset_stats(&self) -> Result<()> {
        self.control("POST", "/__test/stats/reset", None).map(drop)
    }

    /// `Cache-Control: public, max-age=N` on the JWKS, or oidc-provider's own.
    pub fn set_jwks_max_age(&self, seconds: Option<u64>) -> Result<()> {
        let body = serde_json::json!({ "jwks_max_age": seconds });
        self.control("POST", "/__test/config", Some(body)).map(drop)
    }

    /// Makes the JWKS answer `status` (an outage), or serve again with `None`.
    pub fn set_jwks_status(&self, status: Option<u16>) -> Result<()> {
        let body = serde_json::json!({ "jwks_status": status });
        self.control("POST", "/__test/config", Some(body)).map(drop)
    }

    /// `GET` any URL (discovery, JWKS) as JSON, with its status.
    pub fn get_json(&self, url: &str) -> Result<(u16, Value)> {
        let request = http::Request::get(url).body(Vec::new())?;
        self.send(request)
    }

    /// The provider's recent output.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        for name in ["stdout.log", "stderr.log"] {
            if let Ok(log) = std::fs::read_to_string(self.scratch.join(name)) {
                text.push_str(&log);
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn control(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.issuer))
            .header("content-type", "application/json")
            .body(body.map_or_else(Vec::new, |b| b.to_string().into_bytes()))?;
        let (status, answer) = self.send(request)?;
        if status != 200 {
            bail!("{method} {path}: {status} {answer}\n{}", self.log_tail());
        }
        Ok(answer)
    }

    fn send(&self, request: http::Request<Vec<u8>>) -> Result<(u16, Value)> {
        let url = request.uri().to_string();
        let response = self
            .agent
            .run(request)
            .with_context(|| format!("calling the OIDC provider at {url}"))?;
        let status = response.status().as_u16();
        let body = response.into_body().read_to_vec()?;
        let value = serde_json::from_slice(&body)
            .with_context(|| format!("{url}: not JSON: {}", String::from_utf8_lossy(&body)))?;
        Ok((status, value))
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// A per-process counter, so that providers started together get their
/// own scratch directories.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
