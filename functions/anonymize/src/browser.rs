//! The browser entry point (feature `browser`): anonymize before upload.
//! `AnonymizeFunction` is the edge function itself (`fetch(Request)`);
//! `Anonymizer` is the same engine as plain calls on strings.

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
    ) -> Result<Anonymizer, JsError> {
        let config = edge_browser::config_from_options::<Anonymize>(&options)
            .map_err(|e| JsError::new(&e))?;
        let function = Anonymize::from_config(&config).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Anonymizer(function.anonymizer().clone()))
    }

    /// Free text, anonymized.
    pub fn text(&self, text: &str) -> Result<String, JsError> {
        self.rewrite(BodyKind::Text, text)
    }

    /// A JSON document, anonymized (field rules, then the detectors); throws
    /// on invalid JSON, naming where.
    pub fn json(&self, json: &str) -> Result<String, JsError> {
        self.rewrite(BodyKind::Json, json)
    }

    /// Newline-delimited JSON, anonymized line by line.
    pub fn ndjson(&self, ndjson: &str) -> Result<String, JsError> {
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
        js_sys::JSON::parse(&serde_json::Value::from(findings).to_string()).unwrap_or(JsValue::NULL)
    }
}

impl Anonymizer {
    fn rewrite(&self, kind: BodyKind, input: &str) -> Result<String, JsError> {
        let mut body = self.0.body(kind);
        let mut out = Vec::with_capacity(input.len());
        let problem = |p: edge_core::Problem| JsError::new(p.detail().unwrap_or(p.kind()));
        body.push(input.as_bytes(), &mut out).map_err(problem)?;
        body.finish(&mut out).map_err(problem)?;
        String::from_utf8(out).map_err(|e| JsError::new(&e.to_string()))
    }
}
