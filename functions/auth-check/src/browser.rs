//! The browser entry point (feature `browser`): the `AuthCheckFunction`
//! class (verify tokens and route rules client-side, e.g. in a service
//! worker; keys from JWKS through the page's `fetch`), and `JwtVerifier`,
//! a token verified against a JWK set the caller passes (or, only when the
//! caller asks with `JwtVerifier.fromUrl`, fetches). Refusals are
//! `ProblemError`s with the type and detail the edge function answers with.

use edge_browser::{js_sys, wasm_bindgen_futures, web_sys};
use edge_core::Clock as _;
use wasm_bindgen::prelude::*;

use crate::verifier::{JwksVerifier, VerifierOptions};

edge_browser::export_function!(AuthCheckFunction, crate::AuthCheck);

#[wasm_bindgen(typescript_custom_section)]
const VERIFIER_TS: &'static str = r#"
/** What a `JwtVerifier` checks besides the signature (durations in seconds). */
export interface JwtVerifierOptions {
  /** `iss` must equal this. */
  issuer?: string;
  /** `aud` must contain this, or one of these. */
  audience?: string | string[];
  /** Accepted `alg`s (default: every asymmetric one the function verifies). */
  algorithms?: string[];
  /** Clock skew allowed on `exp`, `nbf`, `iat` (default 60). */
  leeway?: number;
  /** The oldest `iat` accepted. */
  maxAge?: number;
  /** Claims that must be present. */
  requiredClaims?: string[];
  /** The longest token accepted, bytes (default 8192). */
  maxTokenBytes?: number;
}
/** A JWK set (RFC 7517 §5). */
export interface JwkSet { keys: Record<string, unknown>[] }
"#;

/// Verifies JWTs against the keys of one JWK set, in the page.
#[wasm_bindgen]
pub struct JwtVerifier(JwksVerifier);

fn options_of(options: &JsValue) -> Result<VerifierOptions, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(VerifierOptions::default());
    }
    let value = edge_browser::js_to_json(options).map_err(edge_browser::config_error)?;
    serde_json::from_value(value)
        .map_err(|e| edge_browser::config_error(format!("invalid options: {e}")))
}

#[wasm_bindgen]
impl JwtVerifier {
    /// A verifier of `jwks` (an object, or its JSON text). Throws a
    /// `misconfigured` problem naming the field when the set or an option
    /// is invalid. Never touches the network.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "JwkSet | string")] jwks: JsValue,
        #[wasm_bindgen(unchecked_param_type = "JwtVerifierOptions | undefined")] options: JsValue,
    ) -> Result<JwtVerifier, JsValue> {
        let jwks = match jwks.as_string() {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| edge_browser::config_error(format!("invalid jwks: {e}")))?,
            None => edge_browser::js_to_json(&jwks).map_err(edge_browser::config_error)?,
        };
        JwksVerifier::new(&jwks, options_of(&options)?)
            .map(JwtVerifier)
            .map_err(|p| edge_browser::problem_error(&p))
    }

    /// Fetches the JWK set at `url` with the global `fetch` (the only call
    /// that uses the network, and only when the caller makes it), then
    /// builds a verifier of it.
    #[wasm_bindgen(js_name = fromUrl, unchecked_return_type = "Promise<JwtVerifier>")]
    pub fn from_url(
        url: String,
        #[wasm_bindgen(unchecked_param_type = "JwtVerifierOptions | undefined")] options: JsValue,
    ) -> js_sys::Promise {
        wasm_bindgen_futures::future_to_promise(async move {
            let options = options_of(&options)?;
            let unavailable = |reason: String| {
                edge_browser::problem_error(
                    &edge_core::Problem::new(
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        "keys-unavailable",
                        "Verification keys unavailable",
                    )
                    .with_detail(reason),
                )
            };
            // The URL without its query, as the function logs URLs.
            let shown = url.split(['?', '#']).next().unwrap_or_default().to_owned();
            let failed = |e: JsValue| {
                let reason = e
                    .dyn_ref::<js_sys::Error>()
                    .map(|e| String::from(e.message()))
                    .or_else(|| e.as_string())
                    .unwrap_or_else(|| "the request failed".into());
                unavailable(format!("fetching the JWK set at {shown} failed: {reason}"))
            };
            let fetch = js_sys::Reflect::get(&js_sys::global(), &"fetch".into())
                .ok()
                .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
                .ok_or_else(|| unavailable("there is no global fetch".into()))?;
            let promise = fetch
                .call1(&JsValue::UNDEFINED, &JsValue::from_str(&url))
                .map_err(failed)?;
            let response: web_sys::Response =
                wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
                    .await
                    .map_err(failed)?
                    .dyn_into()
                    .map_err(|_| unavailable("fetch did not answer a Response".into()))?;
            if !response.ok() {
                return Err(unavailable(format!(
                    "the JWK set at {shown} answered {}",
                    response.status()
                )));
            }
            let text = response.text().map_err(failed)?;
            let text = wasm_bindgen_futures::JsFuture::from(text)
                .await
                .map_err(failed)?
                .as_string()
                .unwrap_or_default();
            let jwks: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| unavailable(format!("the JWK set is not JSON: {e}")))?;
            JwksVerifier::new(&jwks, options)
                .map(|v| JsValue::from(JwtVerifier(v)))
                .map_err(|p| edge_browser::problem_error(&p))
        })
    }

    /// How many usable keys the set had.
    #[wasm_bindgen(getter, js_name = keyCount)]
    pub fn key_count(&self) -> usize {
        self.0.key_count()
    }

    /// The keys left out of the set, each `{ kid, reason }`.
    #[wasm_bindgen(
        getter,
        unchecked_return_type = "{ kid: string | null; reason: string }[]"
    )]
    pub fn skipped(&self) -> JsValue {
        let skipped: Vec<_> = self
            .0
            .skipped()
            .iter()
            .map(|(kid, reason)| serde_json::json!({ "kid": kid, "reason": reason }))
            .collect();
        edge_browser::json_to_js(&serde_json::Value::from(skipped))
    }

    /// The token's claims if it verifies now; else throws the function's
    /// refusal: a `ProblemError` with status 401 and a type such as
    /// `urn:edge-functions:problem:bad-signature` or `…:token-expired`.
    #[wasm_bindgen(unchecked_return_type = "Record<string, unknown>")]
    pub fn verify(&self, token: &str) -> Result<JsValue, JsValue> {
        let now = edge_browser::DateClock.now();
        self.0
            .verify(token, now)
            .map(|claims| edge_browser::json_to_js(&serde_json::Value::Object(claims.into_map())))
            .map_err(|p| edge_browser::problem_error(&p))
    }
}
