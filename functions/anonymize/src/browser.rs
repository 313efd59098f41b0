//! The browser entry point (feature `browser`): anonymize before upload.
//! `AnonymizeFunction` is the edge function itself (`fetch(Request)`);
//! `Anonymizer` is the same engine as plain calls on strings. Errors are
//! `ProblemError`s with the type and detail the edge function answers with.

use edge_core::EdgeFunction;
use edge_core::stream::BodyTransform;
use wasm_bindgen::prelude::*;

use crate::{Anonymize, BodyKind};

edge_browser::export_function!(AnonymizeFunction, crate::Anonymize);

#[wasm_bindgen(typescript_custom_section)]
const ANONYMIZER_TS: &'static str = r#"
/** One finding of `Anonymizer.analyze`: what kind, and where (UTF-8 byte offsets). */
export interface Finding {
  /** `email`, `ipv4`, `ipv6`, `phone`, `card`, `iban`, `jwt`, `api_key`, or a policy pattern's name. */
  entity: string;
  start: number;
  end: number;
}
"#;

/// The anonymizer on strings: the policy and secrets as for the edge
/// function (`{ vars: { POLICY }, secrets: { GDPR_ANONYMIZATION_SALT, … } }`).
#[wasm_bindgen]
pub struct Anonymizer(crate::Anonymizer);

#[wasm_bindgen]
impl Anonymizer {
    /// Builds it; throws when the policy or a secret is invalid.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "EdgeFunctionOptions | undefined")] options: JsValue,
    ) -> Result<Anonymizer, JsValue> {
        let config = edge_browser::config_from_options::<Anonymize>(&options)
            .map_err(edge_browser::config_error)?;
        let function = Anonymize::from_config(&config).map_err(edge_browser::config_error)?;
        Ok(Anonymizer(function.anonymizer().clone()))
    }

    /// Free text, anonymized.
    pub fn text(&self, text: &str) -> Result<String, JsValue> {
        self.rewrite(BodyKind::Text, text)
    }

    /// A JSON document, anonymized (field rules, then the detectors); throws
    /// on invalid JSON, naming where.
    pub fn json(&self, json: &str) -> Result<String, JsValue> {
        self.rewrite(BodyKind::Json, json)
    }

    /// Newline-delimited JSON, anonymized line by line.
    pub fn ndjson(&self, ndjson: &str) -> Result<String, JsValue> {
        self.rewrite(BodyKind::Ndjson, ndjson)
    }

    /// What the detectors find in `text`, without the values.
    #[wasm_bindgen(unchecked_return_type = "Finding[]")]
    pub fn analyze(&self, text: &str) -> JsValue {
        let findings: Vec<_> = self
            .0
            .analyze(text)
            .into_iter()
            .map(|(entity, span)| serde_json::json!({ "entity": entity, "start": span.start, "end": span.end }))
            .collect();
        edge_browser::json_to_js(&serde_json::Value::from(findings))
    }

    /// The reversible tokens (operator `encrypt`) in `input` decrypted:
    /// the de-anonymize path, which needs the `GDPR_ANONYMIZATION_KEY`
    /// secret. `kind` is `"text"`, `"json"` or `"ndjson"`. Throws a
    /// `no-encryption-key` problem without the key.
    pub fn deanonymize(&self, input: &str, kind: Option<String>) -> Result<String, JsValue> {
        let kind = body_kind(kind.as_deref().unwrap_or("text"))?;
        let mut reverse = self.0.deanonymizer(kind).map_err(|e| {
            edge_browser::problem_error(
                &edge_core::Problem::new(
                    http::StatusCode::CONFLICT,
                    "no-encryption-key",
                    "No encryption key",
                )
                .with_detail(e),
            )
        })?;
        let mut out = Vec::with_capacity(input.len());
        let problem = |p: edge_core::Problem| edge_browser::problem_error(&p);
        reverse.push(input.as_bytes(), &mut out).map_err(problem)?;
        reverse.finish(&mut out).map_err(problem)?;
        String::from_utf8(out).map_err(|e| edge_browser::bad_request("invalid-body", e))
    }
}

fn body_kind(kind: &str) -> Result<BodyKind, JsValue> {
    match kind {
        "text" => Ok(BodyKind::Text),
        "json" => Ok(BodyKind::Json),
        "ndjson" => Ok(BodyKind::Ndjson),
        other => Err(edge_browser::bad_request(
            "invalid-parameter",
            format!("kind {other:?} must be \"text\", \"json\" or \"ndjson\""),
        )),
    }
}

impl Anonymizer {
    fn rewrite(&self, kind: BodyKind, input: &str) -> Result<String, JsValue> {
        let mut body = self.0.body(kind);
        let mut out = Vec::with_capacity(input.len());
        let problem = |p: edge_core::Problem| edge_browser::problem_error(&p);
        body.push(input.as_bytes(), &mut out).map_err(problem)?;
        body.finish(&mut out).map_err(problem)?;
        String::from_utf8(out).map_err(|e| edge_browser::bad_request("invalid-body", e))
    }
}
