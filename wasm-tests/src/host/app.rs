//! Loading a component and running one HTTP request through it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http_body_util::{BodyExt as _, Full};
use wasmtime::Store;
use wasmtime::component::Component;
use wasmtime_wasi_http::p3::Request as WasiRequest;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use super::engine;
use super::kv::KvStore;
use super::outbound::AllowedHosts;
use super::state::{self, HostState};
use super::variables::Variables;

/// How one component is mounted, and what it can see.
#[derive(Clone, Default)]
pub struct AppConfig {
    /// Values returned by `spin:variables/variables.get`.
    pub variables: HashMap<String, String>,
    /// Store behind `wasi:keyvalue`; share one between apps to share data.
    pub kv: KvStore,
    /// Mount prefix such as `/counter` (a Spin route `/counter/...`); `/`
    /// mounts the app at the root. A trailing `/...` is accepted and ignored.
    pub route: String,
    /// Where the guest's stderr (its JSON logs) goes: `None` inherits the
    /// host's stderr; a pipe captures it (bounded), for tests to read.
    pub guest_stderr: Option<GuestLogs>,
}

/// A bounded in-memory capture of guest stderr, shared by every request of
/// an app. Clone it before handing it to [`AppConfig`] to read it later.
pub type GuestLogs = wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// A compiled, pre-instantiated Spin HTTP component.
///
/// Cheap to share behind an `Arc`; each [`App::handle`] call instantiates the
/// component in a fresh store, so concurrent calls are independent except for
/// the shared [`KvStore`].
pub struct App {
    route: String,
    pre: ServicePre<HostState>,
    variables: Variables,
    kv: KvStore,
    guest_stderr: Option<GuestLogs>,
    allowed_outbound_hosts: Arc<AllowedHosts>,
    /// The largest linear memory any of this app's instances had.
    peak_memory: Arc<AtomicUsize>,
}

impl App {
    /// Compiles the component at `wasm_path` and links it against the host
    /// imports. Fails if the file is not a component exporting
    /// `wasi:http/handler@0.3.0`, or if it imports something this host lacks.
    ///
    /// Compiled components are cached per process (keyed by path, size and
    /// modification time), so loading the same file again is cheap, and
    /// between processes by wasmtime's compilation cache (keyed by the
    /// bytes; see [`compile_cache_dir`](super::compile_cache_dir)).
    pub fn load(wasm_path: &Path, config: AppConfig) -> anyhow::Result<App> {
        let component = compile(wasm_path)?;
        Self::from_component(&component, config)
            .with_context(|| format!("failed to load {}", wasm_path.display()))
    }

    /// Like [`App::load`], for an already compiled component.
    pub fn from_component(component: &Component, config: AppConfig) -> anyhow::Result<App> {
        let route = normalize_route(&config.route)?;
        let instance_pre = state::linker()?.instantiate_pre(component)?;
        let pre = ServicePre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("component does not export `wasi:http/handler@0.3.0`")?;
        Ok(App {
            route,
            pre,
            variables: Arc::new(config.variables),
            kv: config.kv,
            guest_stderr: config.guest_stderr,
            allowed_outbound_hosts: Arc::default(),
            peak_memory: Arc::default(),
        })
    }

    /// The largest linear memory, in bytes, any instance of this app
    /// created or grew to while handling a request (each request gets a
    /// fresh instance, so this is the worst request's).
    pub fn peak_memory(&self) -> usize {
        self.peak_memory.load(Ordering::Relaxed)
    }

    /// Lets this app's guests send HTTP requests to `hosts` (a Spin
    /// component's `allowed_outbound_hosts`; by default nothing is allowed,
    /// as in Spin). A method rather than an [`AppConfig`] field so that
    /// existing `AppConfig { .. }` literals keep compiling.
    ///
    /// ```no_run
    /// # use wasm_tests::host::{AllowedHosts, App, AppConfig};
    /// # fn f(app: App) -> anyhow::Result<App> {
    /// Ok(app.with_allowed_outbound_hosts(AllowedHosts::parse(&["http://127.0.0.1:*"])?))
    /// # }
    /// ```
    #[must_use]
    pub fn with_allowed_outbound_hosts(mut self, hosts: AllowedHosts) -> App {
        self.allowed_outbound_hosts = Arc::new(hosts);
        self
    }

    /// The hosts this app's guests may reach.
    pub fn allowed_outbound_hosts(&self) -> &AllowedHosts {
        &self.allowed_outbound_hosts
    }

    /// The normalized mount prefix, e.g. `/counter` (or `/` for the root).
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The key-value store this app's instances use.
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    /// The part of `path` after this app's route (Spin's `spin-path-info`),
    /// or `None` if the route does not match `path`.
    pub fn path_info<'a>(&self, path: &'a str) -> Option<&'a str> {
        if self.route == "/" {
            return Some(path);
        }
        let rest = path.strip_prefix(self.route.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// Runs one request through a fresh instance and returns the buffered
    /// response.
    ///
    /// `req.uri()` should carry the full path (`/counter/health?x=1`); scheme
    /// and authority default to `http` and the `Host` header (or `localhost`).
    /// Spin's request headers are added: `spin-path-info`, `spin-full-url`,
    /// `spin-matched-route`, `spin-raw-component-route`,
    /// `spin-component-route`, `spin-base-path` and `spin-client-addr`.
    ///
    /// Errors if the path is outside this app's route, if the guest traps, or
    /// if it returns a `wasi:http` error code instead of a response.
    pub async fn handle(
        &self,
        req: http::Request<Bytes>,
        client_addr: SocketAddr,
    ) -> anyhow::Result<http::Response<Bytes>> {
        let req = self.prepare(req, client_addr)?;

        let mut store = Store::new(
            engine(),
            HostState::new(
                self.kv.clone(),
                self.variables.clone(),
                self.guest_stderr.clone(),
                self.allowed_outbound_hosts.clone(),
            ),
        );
        store.limiter(|state| &mut state.memory);
        let service = self.pre.instantiate_async(&mut store).await?;
        let (request, request_io) = WasiRequest::from_http(store.data_mut().hooks(), req);

        // Everything that touches the guest, including reading the response
        // body it streams, has to happen inside `run_concurrent`, which drives
        // the component's tasks.
        let response = store
            .run_concurrent(async |store| {
                let respond = async {
                    let response = service
                        .handle(store, request)
                        .await?
                        .map_err(|code| wasmtime::format_err!("guest returned {code:?}"))?;
                    let response =
                        store.with(|access| response.into_http(access, async { Ok(()) }))?;
                    let (parts, body) = response.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map_err(|e| wasmtime::format_err!("response body: {e}"))?;
                    wasmtime::Result::Ok(http::Response::from_parts(parts, body.to_bytes()))
                };
                let consume_request = async {
                    request_io
                        .await
                        .map_err(|e| wasmtime::format_err!("request body: {e}"))
                };
                let (response, ()) = tokio::try_join!(respond, consume_request)?;
                Ok(response)
            })
            .await;
        self.peak_memory
            .fetch_max(store.data().memory.peak, Ordering::Relaxed);
        let response: wasmtime::Result<http::Response<Bytes>> = response?;
        Ok(response?)
    }

    /// Makes the URI absolute and adds Spin's routing headers.
    fn prepare(
        &self,
        req: http::Request<Bytes>,
        client_addr: SocketAddr,
    ) -> anyhow::Result<http::Request<Full<Bytes>>> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let path_info = self
            .path_info(&path)
            .ok_or_else(|| anyhow!("path {path:?} is outside route {:?}", self.route))?
            .to_owned();

        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        let authority = match (uri.authority.take(), parts.headers.get(HOST)) {
            (Some(authority), _) => authority,
            (None, Some(host)) => Authority::try_from(host.as_bytes())
                .context("'Host' header is not a valid authority")?,
            (None, None) => Authority::from_static("localhost"),
        };
        let scheme = uri.scheme.take().unwrap_or(Scheme::HTTP);
        let path_and_query = uri
            .path_and_query
            .take()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        let full_url = format!("{scheme}://{authority}{path_and_query}");
        parts.uri = full_url.parse().context("invalid request URI")?;

        let wildcard_route = if self.route == "/" {
            "/...".to_owned()
        } else {
            format!("{}/...", self.route)
        };
        let spin_headers = [
            ("spin-path-info", path_info),
            ("spin-full-url", full_url),
            ("spin-matched-route", wildcard_route.clone()),
            ("spin-base-path", "/".to_owned()),
            ("spin-raw-component-route", wildcard_route),
            ("spin-component-route", self.route.clone()),
            ("spin-client-addr", client_addr.to_string()),
        ];
        for (name, value) in spin_headers {
            let value = HeaderValue::try_from(value)
                .with_context(|| format!("invalid value for header {name}"))?;
            parts.headers.insert(HeaderName::from_static(name), value);
        }
        // Transport-level; Spin strips it too.
        parts.headers.remove(http::header::CONNECTION);

        Ok(http::Request::from_parts(parts, Full::new(body)))
    }
}

/// Compiles `path`, reusing an earlier compilation of the same file in this
/// process, else one in the [`engine`]'s compilation cache.
///
/// Cranelift takes seconds per component (the gateway's ~5 MB the longest),
/// test suites load the same few components many times, and `edge-host`
/// loads every component before it answers.
fn compile(path: &Path) -> anyhow::Result<Component> {
    type Key = (PathBuf, u64, Option<SystemTime>);
    static CACHE: OnceLock<Mutex<HashMap<Key, Component>>> = OnceLock::new();

    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let key = (canonical, meta.len(), meta.modified().ok());
    let cache = CACHE.get_or_init(Default::default);
    let lock = || {
        cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    if let Some(component) = lock().get(&key) {
        return Ok(component.clone());
    }
    let component = Component::from_file(engine(), path)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("failed to compile {}", path.display()))?;
    lock().insert(key, component.clone());
    Ok(component)
}

/// `/counter`, `/counter/` and `/counter/...` all become `/counter`;
/// an empty route, `/` and `/...` become `/`.
fn normalize_route(route: &str) -> anyhow::Result<String> {
    let trimmed = route.strip_suffix("/...").unwrap_or(route);
    let trimmed = trimmed.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".to_owned());
    }
    if !trimmed.starts_with('/') || trimmed.contains("...") {
        bail!("invalid route {route:?}: expected a prefix like \"/counter\"");
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::normalize_route;

    #[test]
    fn routes_are_normalized() {
        for (input, want) in [
            ("/counter", "/counter"),
            ("/counter/", "/counter"),
            ("/counter/...", "/counter"),
            ("/a/b", "/a/b"),
            ("", "/"),
            ("/", "/"),
            ("/...", "/"),
        ] {
            assert_eq!(
                normalize_route(input).expect("valid route"),
                want,
                "{input:?}"
            );
        }
        assert!(normalize_route("counter").is_err());
        assert!(normalize_route("/a/.../b").is_err());
    }
}
