//! The browser entry point (feature `browser`): the `RateLimitFunction` class
//! (client-side throttling, state in memory). A page is one client, its own
//! device, and has no address of its own: `ip` key parts read `127.0.0.1`
//! ([`crate::identity::BROWSER_CLIENT`]) there, so a policy keyed by address
//! — the built-in one — limits the page as it would one client.
//!
//! `Throttle` holds calls back before they are sent, with the same
//! algorithms, and honours what a server reports in its `RateLimit` fields
//! and `Retry-After` ([`crate::client`]); `parseRateLimit` reads those
//! fields.

use edge_browser::{js_sys, web_sys};
use wasm_bindgen::prelude::*;

use crate::client::{Throttle as Core, ThrottleOptions, parse_fields};

edge_browser::export_function!(RateLimitFunction, crate::RateLimit);

#[wasm_bindgen(typescript_custom_section)]
const THROTTLE_TS: &'static str = r#"
/** A throttle's limit: a scope of the function's built-in policy, or an algorithm, limit and period. */
export type ThrottleOptions =
  | { scope: "AUTH_LOGIN" | "API_GENERAL" | "API_CV_GENERATION" | "GLOBAL_DDOS" | string }
  | {
      algorithm: "fixed_window" | "sliding_window" | "token_bucket" | "gcra";
      /** Permits per period. */
      limit: number;
      /** The period, e.g. `"1m"`, `"15m"`, `"500ms"`. */
      period: string;
      /** Bucket size (token bucket, GCRA); default `limit`. */
      burst?: number;
    };
/** What `Throttle.acquire` decided. */
export interface ThrottleDecision {
  allowed: boolean;
  remaining: number;
  resetMs: number;
  retryAfterMs: number;
  /** Whether a server's report (not the throttle's own count) refused it. */
  server: boolean;
}
/** One policy a server reported in `RateLimit` / `RateLimit-Policy`. */
export interface ReportedLimit {
  name: string;
  /** `r`: permits left. */
  remaining: number | null;
  /** `t`: seconds until the quota is whole again. */
  reset: number | null;
  /** `q`: the quota. */
  quota: number | null;
  /** `w`: the window, seconds. */
  window: number | null;
}
"#;

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

fn field(headers: &web_sys::Headers, name: &str) -> Option<String> {
    headers.get(name).ok().flatten()
}

/// The `RateLimit` fields of `headers` (a `Headers`, or an object of
/// strings), parsed.
fn reported(headers: &JsValue) -> Result<Vec<crate::client::ReportedLimit>, JsValue> {
    let (state, policy) = match headers.dyn_ref::<web_sys::Headers>() {
        Some(h) => (field(h, "ratelimit"), field(h, "ratelimit-policy")),
        None => {
            let get = |name: &str| {
                let object = js_sys::Object::try_from(headers)?;
                js_sys::Object::entries(object).iter().find_map(|entry| {
                    let entry = js_sys::Array::from(&entry);
                    let key = entry.get(0).as_string()?;
                    key.eq_ignore_ascii_case(name)
                        .then(|| entry.get(1).as_string())
                        .flatten()
                })
            };
            (get("ratelimit"), get("ratelimit-policy"))
        }
    };
    parse_fields(state.as_deref(), policy.as_deref())
        .map_err(|e| edge_browser::bad_request("invalid-ratelimit-field", e))
}

/// The `RateLimit` and `RateLimit-Policy` fields of a response's headers
/// (a `Headers` or a plain object), joined by policy name, the most
/// constrained first. Throws a `ProblemError` naming a malformed member.
// Exported to JavaScript, which Rust's visibility does not see.
#[allow(unreachable_pub)]
#[wasm_bindgen(js_name = parseRateLimit, unchecked_return_type = "ReportedLimit[]")]
pub fn parse_rate_limit(
    #[wasm_bindgen(unchecked_param_type = "Headers | Record<string, string>")] headers: JsValue,
) -> Result<JsValue, JsValue> {
    let parsed = reported(&headers)?;
    Ok(edge_browser::json_to_js(
        &serde_json::to_value(parsed).unwrap_or_default(),
    ))
}

/// Client-side throttling, per key, with the function's algorithms.
#[wasm_bindgen]
pub struct Throttle(Core);

#[wasm_bindgen]
impl Throttle {
    /// Throws a `misconfigured` problem naming the bad field.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "ThrottleOptions")] options: JsValue,
    ) -> Result<Throttle, JsValue> {
        let value = edge_browser::js_to_json(&options).map_err(edge_browser::config_error)?;
        let options: ThrottleOptions = serde_json::from_value(value)
            .map_err(|e| edge_browser::config_error(format!("invalid options: {e}")))?;
        Core::new(options)
            .map(Throttle)
            .map_err(edge_browser::config_error)
    }

    /// The scope's name (`client` unless made from a scope).
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.0.name().to_owned()
    }

    /// Takes `cost` (default 1) permits for `key` (default `""`) now.
    #[wasm_bindgen(unchecked_return_type = "ThrottleDecision")]
    pub fn acquire(&mut self, key: Option<String>, cost: Option<u32>) -> JsValue {
        let decision = self.0.acquire(
            key.as_deref().unwrap_or(""),
            u64::from(cost.unwrap_or(1)),
            now_ms(),
        );
        edge_browser::json_to_js(&serde_json::to_value(decision).unwrap_or_default())
    }

    /// Takes in a server's answer for `key`: its `RateLimit` fields and
    /// `Retry-After` (seconds). A scope reported exhausted, or a
    /// `Retry-After`, refuses the key until then.
    pub fn observe(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Response | Headers | Record<string, string>")]
        answer: JsValue,
        key: Option<String>,
    ) -> Result<(), JsValue> {
        let headers: JsValue = match answer.dyn_ref::<web_sys::Response>() {
            Some(response) => response.headers().into(),
            None => answer,
        };
        let parsed = reported(&headers)?;
        let retry_after = match headers.dyn_ref::<web_sys::Headers>() {
            Some(h) => field(h, "retry-after"),
            None => js_sys::Reflect::get(&headers, &"retry-after".into())
                .ok()
                .and_then(|v| v.as_string()),
        }
        .and_then(|v| v.trim().parse::<u64>().ok());
        self.0
            .observe(key.as_deref().unwrap_or(""), &parsed, retry_after, now_ms());
        Ok(())
    }

    /// Forgets everything about `key` (default `""`).
    pub fn reset(&mut self, key: Option<String>) {
        self.0.reset(key.as_deref().unwrap_or(""));
    }
}
