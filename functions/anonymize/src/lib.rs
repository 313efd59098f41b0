//! Anonymize: GDPR anonymization of request bodies at the edge and in the
//! browser. Emails, IPs, phone numbers, payment cards, IBANs, secrets and
//! the policy's own patterns are found (validated by checksum where one
//! exists) in free text, JSON and NDJSON, and replaced by the operator their
//! entity, data class or JSON field rule names: redact, tag, mask, keyed-hash
//! pseudonym, IP truncation, generalization, or the reversible AES-SIV form.
//!
//! | request | answer |
//! |---|---|
//! | a JSON, NDJSON or text body | anonymized, then forwarded to the origin (or, without one, returned) |
//! | a body beyond the buffered limit | the same as a stream, in bounded memory (Workers) |
//! | another content type | passed untouched or `415`, as the policy says |
//! | invalid JSON/NDJSON/UTF-8 | `400` naming where (offset, line, path), never the content |
//! | `POST {admin_path}/deanonymize` | the reversible tokens decrypted (bearer admin secret) |
//! | `POST {admin_path}/k-anonymity` | the batch's smallest equivalence class over the quasi-identifiers |
//! | `POST {admin_path}/analyze` | the findings' kinds and offsets, never the values |
//! | `POST {admin_path}/batch` | NDJSON or JSON-array records, each anonymized on its own (`batch`), delivered to the policy's sink or answered |
//!
//! On Workers the same batch path is a queue consumer (`workers.rs`,
//! [`batch`]): messages anonymized, delivered to the sink, failures retried
//! then dead-lettered and reported.

pub mod batch;
pub mod body;
pub mod detect;
mod engine;
pub mod entity;
pub mod json;
pub mod kanon;
pub mod operators;
pub mod policy;

#[cfg(all(feature = "browser", target_arch = "wasm32"))]
mod browser;
#[cfg(all(feature = "spin", target_arch = "wasm32"))]
mod spin;
#[cfg(all(feature = "workers", target_arch = "wasm32"))]
mod workers;

use async_trait::async_trait;
use bytes::Bytes;
use edge_core::admin::AdminGuard;
use edge_core::function::Context;
use edge_core::model::{json_response, query_param};
use edge_core::origin::OriginClient;
use edge_core::pipeline::{self, Endpoint, Filter};
use edge_core::policy::FieldError;
use edge_core::stream::{BodyTransform, StreamPlan, StreamingFunction};
use edge_core::{Config, ConfigError, EdgeFunction, Problem, Request, Response};
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;

pub use body::{BodyAnonymizer, BodyKind, Deanonymizer, FindingsSummary};
pub use engine::{Anonymizer, Findings};

use crate::kanon::KAnonymity;
use crate::operators::{Keys, Operator};
use crate::policy::{
    ADMIN_SECRET, AnonymizePolicy, KEY_SECRET, SALT_SECRET, Section, UnknownContent,
};

/// The response header counting what was anonymized (`email=2, ipv4=1`).
pub const FINDINGS_HEADER: &str = "x-anonymize-findings";

/// The anonymize function.
pub struct Anonymize {
    anonymizer: Anonymizer,
    section: Section,
    admin: AdminGuard,
    quasi_identifiers: Vec<(String, Option<Operator>)>,
    origin: Option<OriginClient>,
}

/// The shortest salt accepted (the pseudonyms' only secret).
const MIN_SECRET_BYTES: usize = 16;

fn weak_secret(name: &str) -> ConfigError {
    ConfigError::Invalid(vec![FieldError {
        path: name.to_owned(),
        value: "(secret)".to_owned(),
        rule: format!("must be at least {MIN_SECRET_BYTES} bytes"),
    }])
}

#[async_trait(?Send)]
impl EdgeFunction for Anonymize {
    const NAME: &'static str = "anonymize";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DEFAULT_POLICY: &'static str = include_str!("../policy.toml");
    const SECRETS: &'static [&'static str] = &[SALT_SECRET, KEY_SECRET, ADMIN_SECRET];

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        let policy: AnonymizePolicy = config.policy()?;
        config.check_outbound(policy.outbound())?;
        let section = policy.anonymize;
        let salt = config.require_secret("anonymize", SALT_SECRET)?;
        if salt.expose().len() < MIN_SECRET_BYTES {
            return Err(weak_secret(SALT_SECRET));
        }
        let key = if section.uses_encryption() {
            let key = config.require_secret("anonymize", KEY_SECRET)?;
            if key.expose().len() < MIN_SECRET_BYTES {
                return Err(weak_secret(KEY_SECRET));
            }
            Some(key)
        } else {
            config
                .secret(KEY_SECRET)
                .filter(|k| k.expose().len() >= MIN_SECRET_BYTES)
        };
        let keys = Keys::new(salt.expose().as_bytes(), key.map(|k| k.expose().as_bytes()));
        let anonymizer = Anonymizer::new(&section, keys).map_err(|e| {
            ConfigError::Invalid(vec![FieldError {
                path: "anonymize".into(),
                value: String::new(),
                rule: e,
            }])
        })?;
        let quasi_identifiers = section
            .k_anonymity
            .quasi_identifiers
            .iter()
            .map(|q| parse_quasi_identifier(q))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                ConfigError::Invalid(vec![FieldError {
                    path: "anonymize.k_anonymity.quasi_identifiers".into(),
                    value: String::new(),
                    rule: e,
                }])
            })?;
        Ok(Anonymize {
            anonymizer,
            admin: AdminGuard::new(config, "anonymize", Some(ADMIN_SECRET)),
            quasi_identifiers,
            origin: section.origin.clone().map(OriginClient::with_defaults),
            section,
        })
    }

    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let path = req.uri().path().to_owned();
        if let Some(rest) = path.strip_prefix(self.section.admin_path.as_str())
            && (rest.is_empty() || rest.starts_with('/'))
        {
            if rest == "/batch" {
                return self.batch(req, ctx).await;
            }
            let rest = rest.to_owned();
            return self.admin(req, &rest, ctx);
        }
        match &self.origin {
            Some(origin) => pipeline::run(&[self], req, origin, ctx).await,
            None => pipeline::run(&[self], req, &AnonymizedAnswer, ctx).await,
        }
    }

    fn origins(&self) -> Vec<&OriginClient> {
        self.origin.iter().collect()
    }
}

/// The anonymizer as a stage of a chain: it decides nothing on the head;
/// it rewrites JSON, NDJSON and text bodies, and passes or refuses (`415`)
/// other content as the policy says.
#[async_trait(?Send)]
impl Filter for Anonymize {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn on_request(
        &self,
        _head: &mut http::request::Parts,
        _ctx: &Context<'_>,
    ) -> Result<(), Problem> {
        Ok(())
    }

    fn request_body(
        &self,
        head: &http::request::Parts,
        ctx: &Context<'_>,
    ) -> Result<Option<Box<dyn BodyTransform>>, Problem> {
        match BodyKind::of(&head.headers) {
            Some(kind) => Ok(Some(Box::new(self.anonymizer.body(kind)))),
            None if self.section.unknown_content == UnknownContent::Refuse => {
                Err(unsupported(&head.headers))
            }
            None => {
                ctx.note("anonymized", json!("passed unread"));
                Ok(None)
            }
        }
    }

    fn on_response(
        &self,
        request: &http::Extensions,
        _status: StatusCode,
        _headers: &mut http::HeaderMap,
        ctx: &Context<'_>,
    ) {
        if let Some(FindingsSummary(findings)) = request.get() {
            ctx.note("anonymized", json!({ "findings": findings }));
        }
    }
}

/// The standalone function's answer without an origin: the anonymized
/// body itself, with its findings counted in [`FINDINGS_HEADER`].
struct AnonymizedAnswer;

#[async_trait(?Send)]
impl Endpoint for AnonymizedAnswer {
    async fn call(&self, req: Request, _ctx: &Context<'_>) -> Result<Response, Problem> {
        if req.body().is_empty() {
            let with_body = [Method::POST, Method::PUT, Method::PATCH];
            // A POST without a body is the client's mistake, not the
            // method's (issue 16); a GET has none to send.
            return Err(if with_body.contains(req.method()) {
                Problem::bad_request("empty-body", "the body is empty: send one to anonymize")
            } else {
                Problem::method_not_allowed(req.method(), &with_body)
                    .with_detail("send a body to anonymize")
            });
        }
        let (parts, body) = req.into_parts();
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        match BodyKind::of(&parts.headers) {
            Some(kind) => {
                headers.insert(header::CONTENT_TYPE, kind.content_type(&parts.headers));
                if let Some(FindingsSummary(findings)) = parts.extensions.get()
                    && let Ok(value) = HeaderValue::from_str(findings)
                {
                    headers.insert(FINDINGS_HEADER, value);
                }
            }
            None => {
                if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
                    headers.insert(header::CONTENT_TYPE, ct.clone());
                }
            }
        }
        Ok(response)
    }
}

#[async_trait(?Send)]
impl StreamingFunction for Anonymize {
    async fn stream_plan(
        &self,
        head: &mut http::request::Parts,
        _ctx: &Context<'_>,
    ) -> Result<Option<StreamPlan>, Problem> {
        let path = head.uri.path();
        if path.starts_with(self.section.admin_path.as_str()) {
            return Ok(None);
        }
        let (transform, content_type): (Box<dyn edge_core::stream::BodyTransform>, _) =
            match BodyKind::of(&head.headers) {
                Some(kind) => (
                    Box::new(self.anonymizer.body(kind)),
                    kind.content_type(&head.headers),
                ),
                None if self.section.unknown_content == UnknownContent::Pass => (
                    Box::new(body::PassThrough),
                    head.headers
                        .get(header::CONTENT_TYPE)
                        .cloned()
                        .unwrap_or(HeaderValue::from_static("application/octet-stream")),
                ),
                None => return Err(unsupported(&head.headers)),
            };
        Ok(Some(StreamPlan {
            transform,
            origin: self.section.origin.as_ref().map(ToString::to_string),
            content_type,
            answer_headers: None,
        }))
    }
}

/// A quasi-identifier as written in the policy or `?qi=`: a dotted path,
/// optionally `:operator` to generalize first (`age:range(10)`).
pub fn parse_quasi_identifier(text: &str) -> Result<(String, Option<Operator>), String> {
    let (path, operator) = match text.split_once(':') {
        Some((path, op)) => (
            path,
            Some(
                op.parse::<Operator>()
                    .map_err(|e| format!("{text:?}: {e}"))?,
            ),
        ),
        None => (text, None),
    };
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!("{text:?} is not a dotted path"));
    }
    Ok((path.to_owned(), operator))
}

fn unsupported(headers: &http::HeaderMap) -> Problem {
    let what = match headers.get(header::CONTENT_ENCODING) {
        Some(_) => "an encoded body (Content-Encoding) cannot be read".to_owned(),
        None => match headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            Some(ct) => format!(
                "content type {:?} is not anonymized here; send JSON, NDJSON or text",
                ct.chars().take(100).collect::<String>()
            ),
            None => "the body has no Content-Type; send JSON, NDJSON or text".to_owned(),
        },
    };
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
    )
    .with_detail(what)
}

impl Anonymize {
    /// The anonymizer, for callers outside HTTP (the browser build, benches).
    pub fn anonymizer(&self) -> &Anonymizer {
        &self.anonymizer
    }

    fn admin(&self, req: Request, rest: &str, ctx: &Context<'_>) -> Result<Response, Problem> {
        let path = req.uri().path().to_owned();
        let endpoint = match rest {
            "/deanonymize" | "/k-anonymity" | "/analyze" => rest,
            _ => return Err(Problem::not_found(&path)),
        };
        if req.method() != Method::POST {
            return Err(Problem::method_not_allowed(req.method(), &[Method::POST]));
        }
        match endpoint {
            "/deanonymize" => self.deanonymize(req, ctx),
            "/k-anonymity" => self.k_anonymity(req),
            _ => self.analyze(req),
        }
    }

    fn deanonymize(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        self.admin.check(&req, "de-anonymization")?;
        let kind = BodyKind::of(req.headers()).ok_or_else(|| unsupported(req.headers()))?;
        let mut reverse = self.anonymizer.deanonymizer(kind).map_err(|e| {
            Problem::new(
                StatusCode::CONFLICT,
                "no-encryption-key",
                "No encryption key",
            )
            .with_detail(e)
        })?;
        let mut out = Vec::with_capacity(req.body().len());
        BodyTransform::push(&mut reverse, req.body(), &mut out)?;
        BodyTransform::finish(&mut reverse, &mut out)?;
        let (reversed, failed) = reverse.counts();
        // The audit trail: who may read it is whoever reads logs, so counts only.
        ctx.log().warn(
            "de-anonymized",
            json!({ "tokens": reversed, "failed": failed }),
        );
        let mut response = Response::new(Bytes::from(out));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, kind.content_type(req.headers()));
        response
            .headers_mut()
            .insert("x-deanonymized", HeaderValue::from(reversed));
        response
            .headers_mut()
            .insert("x-deanonymize-failed", HeaderValue::from(failed));
        Ok(response)
    }

    fn k_anonymity(&self, req: Request) -> Result<Response, Problem> {
        let threshold = match query_param(&req, "k") {
            Some(k) => k.parse::<usize>().ok().filter(|k| *k >= 1).ok_or_else(|| {
                Problem::bad_request("invalid-parameter", "k must be a whole number ≥ 1")
            })?,
            None => self.section.k_anonymity.threshold,
        };
        let quasi = match query_param(&req, "qi") {
            Some(list) => list
                .split(',')
                .filter(|q| !q.is_empty())
                .map(parse_quasi_identifier)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Problem::bad_request("invalid-parameter", format!("qi: {e}")))?,
            None => self.quasi_identifiers.clone(),
        };
        if quasi.is_empty() {
            return Err(Problem::bad_request(
                "no-quasi-identifiers",
                "name the quasi-identifiers (?qi=zip,age:range(10)) or set anonymize.k_anonymity.quasi_identifiers",
            ));
        }
        let mut report = KAnonymity::new(quasi, threshold as u64);
        let body = req.body();
        let records = body::records(req.headers(), body)
            .map_err(|e| Problem::bad_request("invalid-json", e))?;
        for record in records {
            report.add(&record.map_err(|e| Problem::bad_request("invalid-json", e))?);
        }
        Ok(json_response(StatusCode::OK, &json!(report.report())))
    }

    fn analyze(&self, req: Request) -> Result<Response, Problem> {
        let text = std::str::from_utf8(req.body()).map_err(|e| {
            Problem::bad_request(
                "invalid-utf8",
                format!("the body is not UTF-8 (byte {})", e.valid_up_to()),
            )
        })?;
        let findings: Vec<_> = self
            .anonymizer
            .analyze(text)
            .into_iter()
            .map(|(entity, span)| json!({ "entity": entity, "start": span.start, "end": span.end }))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "findings": findings }),
        ))
    }
}
