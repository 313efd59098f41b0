//! Browser glue (wasm-bindgen, `wasm32-unknown-unknown`): runs a function
//! in the page, on a `Request`, answering a `Response`, with its state in
//! memory — so sensitive work can happen before data leaves the device.
//!
//! [`BrowserFunction`] is the generic part; [`export_function!`] declares
//! the exported JS class for one function (it needs `wasm-bindgen` as a
//! direct dependency of the calling crate).

use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use edge_core::function::{Instance, Services, instantiate};
use edge_core::log::{Level, LogSink};
use edge_core::memory::MemoryStore;
use edge_core::model::{MAX_BODY_BYTES, Runtime};
use edge_core::platform::{HttpClient, HttpError, OsRandom, SendOptions, url_for_errors};
use edge_core::{Body, Clock, Config, EdgeFunction, Problem, Request, Response, Timestamp};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

#[doc(hidden)]
pub use wasm_bindgen;

/// The TypeScript type of the options every exported class takes.
#[wasm_bindgen::prelude::wasm_bindgen(typescript_custom_section)]
const OPTIONS_TS: &'static str = r#"
/** Configuration of an edge function running in the browser. */
export interface EdgeFunctionOptions {
  /** Variables, e.g. `POLICY` (a TOML or JSON policy document). */
  vars?: Record<string, string>;
  /** Secrets by name. They never appear in logs, errors or responses. */
  secrets?: Record<string, string>;
}
"#;

/// Time from `Date.now()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DateClock;

impl Clock for DateClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(js_sys::Date::now() as u64)
    }
}

/// Log lines to the browser console.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleSink;

impl LogSink for ConsoleSink {
    fn write(&self, level: Level, line: &str) {
        let line = JsValue::from_str(line);
        match level {
            Level::Error => web_sys::console::error_1(&line),
            Level::Warn => web_sys::console::warn_1(&line),
            _ => web_sys::console::log_1(&line),
        }
    }
}

/// Outbound HTTP through the global `fetch`. A timeout is an
/// `AbortSignal.timeout` on the request, which aborts the `fetch` and the
/// reading of its body; retries wait on `setTimeout`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchClient;

impl FetchClient {
    /// Sends `req` (aborted when `signal` fires) and reads the whole response.
    async fn exchange(
        req: Request,
        signal: Option<&web_sys::AbortSignal>,
    ) -> Result<Response, HttpError> {
        let url = url_for_errors(req.uri());
        let transport = |e: JsValue| HttpError::Transport {
            url: url.clone(),
            reason: format!("{e:?}"),
        };
        let request = to_js_request(req, signal).map_err(transport)?;
        let promise = global_function("fetch")
            .map_err(transport)?
            .call1(&JsValue::UNDEFINED, &request)
            .map_err(transport)?
            .dyn_into::<js_sys::Promise>()
            .map_err(transport)?;
        let response: web_sys::Response = JsFuture::from(promise)
            .await
            .map_err(transport)?
            .dyn_into()
            .map_err(transport)?;
        from_js_response(response).await.map_err(transport)
    }
}

/// A function of the global scope (a window's or a worker's).
fn global_function(name: &str) -> Result<js_sys::Function, JsValue> {
    js_sys::Reflect::get(&js_sys::global(), &name.into())?.dyn_into::<js_sys::Function>()
}

#[async_trait(?Send)]
impl HttpClient for FetchClient {
    async fn send(&self, req: Request) -> Result<Response, HttpError> {
        Self::exchange(req, None).await
    }

    async fn send_with(&self, req: Request, opts: &SendOptions) -> Result<Response, HttpError> {
        let Some(timeout) = opts.timeout else {
            return Self::exchange(req, None).await;
        };
        let url = url_for_errors(req.uri());
        let millis = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let signal = web_sys::AbortSignal::timeout_with_u32(millis);
        match Self::exchange(req, Some(&signal)).await {
            Err(_) if signal.aborted() => Err(HttpError::Timeout {
                url,
                after: timeout,
            }),
            result => result,
        }
    }

    async fn sleep(&self, duration: Duration) -> bool {
        let Ok(set_timeout) = global_function("setTimeout") else {
            return false;
        };
        let millis = i32::try_from(duration.as_millis()).unwrap_or(i32::MAX);
        let mut started = false;
        let promise = js_sys::Promise::new(&mut |resolve, _reject| {
            started = set_timeout
                .call2(&JsValue::UNDEFINED, &resolve, &JsValue::from(millis))
                .is_ok();
        });
        started && JsFuture::from(promise).await.is_ok()
    }
}

fn headers_of(js: &web_sys::Headers) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    if let Ok(Some(iter)) = js_sys::try_iter(js) {
        for entry in iter.flatten() {
            let entry = js_sys::Array::from(&entry);
            if let (Some(name), Some(value)) = (entry.get(0).as_string(), entry.get(1).as_string())
            {
                pairs.push((name, value));
            }
        }
    }
    pairs
}

fn to_js_headers(headers: &http::HeaderMap) -> Result<web_sys::Headers, JsValue> {
    let js = web_sys::Headers::new()?;
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            js.append(name.as_str(), value)?;
        }
    }
    Ok(js)
}

async fn body_bytes(promise: Result<js_sys::Promise, JsValue>) -> Result<Vec<u8>, JsValue> {
    let buffer = JsFuture::from(promise?).await?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Reads a request body chunk by chunk, stopping (and cancelling the
/// stream) once it passes [`MAX_BODY_BYTES`], so memory stays bounded.
async fn read_bounded(req: &web_sys::Request) -> Result<Vec<u8>, Problem> {
    let bad = |e: JsValue| Problem::bad_request("invalid-body", format!("{e:?}"));
    let Some(stream) = req.body() else {
        return Ok(Vec::new());
    };
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut body = Vec::new();
    loop {
        let step = JsFuture::from(reader.read()).await.map_err(bad)?;
        let done = js_sys::Reflect::get(&step, &"done".into()).map_err(bad)?;
        if done.as_bool() == Some(true) {
            return Ok(body);
        }
        let value = js_sys::Reflect::get(&step, &"value".into()).map_err(bad)?;
        let chunk = js_sys::Uint8Array::new(&value);
        if body.len() + chunk.length() as usize > MAX_BODY_BYTES {
            let _ = reader.cancel();
            return Err(Problem::payload_too_large(MAX_BODY_BYTES));
        }
        body.extend_from_slice(&chunk.to_vec());
    }
}

/// Converts a page's `Request` into the core model (413 beyond [`MAX_BODY_BYTES`]).
pub async fn from_js_request(req: &web_sys::Request) -> Result<Request, Problem> {
    let mut builder = http::Request::builder()
        .method(req.method().as_str())
        .uri(req.url());
    for (name, value) in headers_of(&req.headers()) {
        builder = builder.header(name, value);
    }
    let body = read_bounded(req).await?;
    builder
        .body(Body::from(body))
        .map_err(|e| Problem::bad_request("invalid-request", e.to_string()))
}

/// Converts a core response into a page `Response`.
pub fn to_js_response(response: Response) -> Result<web_sys::Response, JsValue> {
    let (parts, body) = response.into_parts();
    let init = web_sys::ResponseInit::new();
    init.set_status(parts.status.as_u16());
    init.set_headers(&to_js_headers(&parts.headers)?.into());
    // Null-body statuses must be built without a body.
    if matches!(parts.status.as_u16(), 101 | 204 | 205 | 304) {
        return web_sys::Response::new_with_opt_str_and_init(None, &init);
    }
    let mut bytes = body.to_vec();
    web_sys::Response::new_with_opt_u8_array_and_init(Some(&mut bytes), &init)
}

fn to_js_request(
    req: Request,
    signal: Option<&web_sys::AbortSignal>,
) -> Result<web_sys::Request, JsValue> {
    let (parts, body) = req.into_parts();
    let init = web_sys::RequestInit::new();
    init.set_method(parts.method.as_str());
    init.set_signal(signal);
    init.set_headers(&to_js_headers(&parts.headers)?.into());
    if !body.is_empty() {
        init.set_body(&js_sys::Uint8Array::from(body.as_ref()));
    }
    web_sys::Request::new_with_str_and_init(&parts.uri.to_string(), &init)
}

async fn from_js_response(response: web_sys::Response) -> Result<Response, JsValue> {
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in headers_of(&response.headers()) {
        builder = builder.header(name, value);
    }
    let body = body_bytes(response.array_buffer()).await?;
    builder
        .body(Body::from(body))
        .map_err(|e| JsValue::from_str(&e.to_string()))
}

fn string_map(options: &JsValue, field: &str) -> Result<Vec<(String, String)>, String> {
    let value = js_sys::Reflect::get(options, &field.into()).unwrap_or(JsValue::UNDEFINED);
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    let object = value
        .dyn_into::<js_sys::Object>()
        .map_err(|_| format!("options.{field} must be an object of strings"))?;
    js_sys::Object::entries(&object)
        .iter()
        .map(|entry| {
            let entry = js_sys::Array::from(&entry);
            let name = entry.get(0).as_string().unwrap_or_default();
            let value = entry
                .get(1)
                .as_string()
                .ok_or_else(|| format!("options.{field}.{name} must be a string"))?;
            Ok((name, value))
        })
        .collect()
}

/// The configuration `options` (`{ vars, secrets }`, see
/// `EdgeFunctionOptions`) give function `F`.
pub fn config_from_options<F: EdgeFunction>(options: &JsValue) -> Result<Config, String> {
    let (vars, secrets) = if options.is_undefined() || options.is_null() {
        Default::default()
    } else {
        (
            string_map(options, "vars")?,
            string_map(options, "secrets")?,
        )
    };
    let find = |map: &[(String, String)], name: &str| {
        map.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    };
    Ok(edge_core::function::config::<F>(
        |name| find(&vars, name),
        |name| find(&secrets, name),
    ))
}

/// The TypeScript type of the errors the exported classes throw.
#[wasm_bindgen::prelude::wasm_bindgen(typescript_custom_section)]
const PROBLEM_TS: &'static str = r#"
/** An `Error` carrying the RFC 9457 problem the server side would answer with. */
export interface ProblemError extends Error {
  name: "ProblemError";
  /** The problem type URI, e.g. `urn:edge-functions:problem:bad-signature`. */
  type: string;
  /** The problem's title, e.g. `Unauthorized`. */
  title: string;
  /** The HTTP status the server side answers with. */
  status: number;
  /** What was wrong (the same text as the server's `detail`). */
  detail?: string;
  /** Extension members of the problem, e.g. `offset` and `path` of invalid JSON. */
  [member: string]: unknown;
}
"#;

/// `problem` as a JS `Error` named `ProblemError` whose `message` is the
/// detail (or the title) and whose `type`, `title`, `status` and `detail`
/// are the members of the problem+json body the server side would send,
/// extension members included.
pub fn problem_error(problem: &Problem) -> JsValue {
    let body = problem.to_json(None);
    let message = problem
        .detail()
        .or_else(|| body.get("title").and_then(|t| t.as_str()))
        .unwrap_or(problem.kind());
    let error = js_sys::Error::new(message);
    error.set_name("ProblemError");
    if let Some(members) = body.as_object() {
        for (name, value) in members {
            let value = js_sys::JSON::parse(&value.to_string()).unwrap_or(JsValue::UNDEFINED);
            let _ = js_sys::Reflect::set(&error, &name.into(), &value);
        }
    }
    error.into()
}

/// A configuration error (a bad policy, option or secret) as a
/// [`problem_error`] of type `misconfigured`, the detail naming the field
/// and value (configuration errors never carry secrets).
pub fn config_error(detail: impl std::fmt::Display) -> JsValue {
    problem_error(&Problem::misconfigured().with_detail(detail.to_string()))
}

/// A bad argument to an exported call as a [`problem_error`] of type
/// `kind` (status 400), as the server side answers a bad request.
pub fn bad_request(kind: &'static str, detail: impl std::fmt::Display) -> JsValue {
    problem_error(&Problem::bad_request(kind, detail.to_string()))
}

/// A JSON value as a JS value (through `JSON.parse`).
pub fn json_to_js(value: &serde_json::Value) -> JsValue {
    js_sys::JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL)
}

/// A JS value as JSON (through `JSON.stringify`); `undefined` is `null`.
pub fn js_to_json(value: &JsValue) -> Result<serde_json::Value, String> {
    if value.is_undefined() {
        return Ok(serde_json::Value::Null);
    }
    let text = js_sys::JSON::stringify(value)
        .map_err(|_| "the value cannot be written as JSON".to_owned())?;
    let text: String = text.into();
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// A function running in the page with an in-memory store.
pub struct BrowserFunction<F> {
    instance: Instance<F>,
    store: MemoryStore,
}

impl<F: EdgeFunction + 'static> BrowserFunction<F> {
    /// Builds the function from `options` (`{ vars, secrets }`); an invalid
    /// policy is an error naming the field and value.
    pub fn new(options: &JsValue) -> Result<Rc<Self>, String> {
        let config = config_from_options::<F>(options)?;
        let instance = instantiate::<F>(&config);
        if let Err(error) = &instance {
            return Err(error.to_string());
        }
        Ok(Rc::new(BrowserFunction {
            instance,
            store: MemoryStore::new(),
        }))
    }

    /// Handles one `Request`, resolving to a `Response`.
    pub fn fetch(self: Rc<Self>, request: web_sys::Request) -> js_sys::Promise {
        wasm_bindgen_futures::future_to_promise(async move {
            let response = match from_js_request(&request).await {
                Ok(request) => {
                    let services = Services {
                        runtime: Runtime::Browser,
                        clock: &DateClock,
                        store: &self.store,
                        cache: &self.store,
                        random: &OsRandom,
                        http: &FetchClient,
                        log_sink: &ConsoleSink,
                        metrics: None,
                    };
                    edge_core::serve(&self.instance, request, &services).await
                }
                Err(problem) => problem.into_response(None),
            };
            to_js_response(response).map(JsValue::from)
        })
    }
}

/// Declares the exported JS class `$class` for function type `$function`:
/// `new $class(options?: EdgeFunctionOptions)` (throws a `misconfigured`
/// `ProblemError` naming the field on an invalid policy) and
/// `fetch(request: Request): Promise<Response>`.
#[macro_export]
macro_rules! export_function {
    ($class:ident, $function:ty) => {
        /// The function, running in this page. Its state lives in memory.
        #[::wasm_bindgen::prelude::wasm_bindgen]
        pub struct $class(::std::rc::Rc<$crate::BrowserFunction<$function>>);

        #[::wasm_bindgen::prelude::wasm_bindgen]
        impl $class {
            /// Builds the function; throws when the policy or options are invalid.
            #[wasm_bindgen(constructor)]
            pub fn new(
                #[wasm_bindgen(unchecked_param_type = "EdgeFunctionOptions | undefined")]
                options: ::wasm_bindgen::JsValue,
            ) -> ::std::result::Result<$class, ::wasm_bindgen::JsValue> {
                $crate::BrowserFunction::<$function>::new(&options)
                    .map($class)
                    .map_err($crate::config_error)
            }

            /// Handles a request as the function would at the edge.
            #[wasm_bindgen(unchecked_return_type = "Promise<Response>")]
            pub fn fetch(&self, request: $crate::web_sys::Request) -> $crate::js_sys::Promise {
                ::std::rc::Rc::clone(&self.0).fetch(request)
            }
        }
    };
}

#[doc(hidden)]
pub use {js_sys, wasm_bindgen_futures, web_sys};
