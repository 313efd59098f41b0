//! The `/_policy` endpoints: reading, changing, restoring and dropping
//! the stored version, each behind the policy admin token, and the
//! requests' parts they read (`If-Match`, `?version=`, the document).

use std::rc::Rc;

use http::{HeaderValue, Method, StatusCode};
use serde_json::json;

use super::stored::{Head, read_head, version_text};
use super::{ADMIN_PATH, LivePolicy, MAX_POLICY_BYTES};
use crate::function::{Context, EdgeFunction, instantiate};
use crate::model::{Request, Response, json_response};
use crate::platform::{StoreError, Timestamp};
use crate::policy::ConfigError;
use crate::problem::Problem;

impl<F: EdgeFunction> LivePolicy<F> {
    pub(super) async fn handle(
        &self,
        req: Request,
        ctx: &Context<'_>,
    ) -> Result<Response, Problem> {
        let path = req.uri().path().to_owned();
        let rest = path.strip_prefix(ADMIN_PATH).unwrap_or_default();
        let method = req.method().clone();
        self.admin.check(&req, "changing the policy")?;
        let store = ctx.store();
        match (rest, &method) {
            ("" | "/", &Method::GET | &Method::HEAD) => {
                let head = read_head(store, F::NAME).await.map_err(store_problem)?;
                self.install(&head, ctx);
                Ok(self.describe(&head))
            }
            ("" | "/", &Method::PUT) => {
                let text = policy_text(&req)?;
                self.refuse_secrets(&text)?;
                self.validate(&text)?;
                let expected = if_match(&req)?;
                let head = self
                    .store_version(store, ctx, Some(text), None, expected)
                    .await?;
                self.install(&head, ctx);
                Ok(self.changed(&head, StatusCode::OK))
            }
            ("" | "/", &Method::DELETE) => {
                let expected = if_match(&req)?;
                let head = self.store_version(store, ctx, None, None, expected).await?;
                self.install(&head, ctx);
                Ok(self.changed(&head, StatusCode::OK))
            }
            ("/restore", &Method::POST) => {
                let version = query_version(&req)?;
                let head = read_head(store, F::NAME).await.map_err(store_problem)?;
                let text = version_text(store, F::NAME, &head, version).await?;
                if let Some(text) = &text {
                    self.validate(text)?;
                }
                let expected = if_match(&req)?;
                let head = self
                    .store_version(store, ctx, text, Some(version), expected)
                    .await?;
                self.install(&head, ctx);
                Ok(self.changed(&head, StatusCode::OK))
            }
            (rest, &Method::GET | &Method::HEAD) if rest.starts_with("/versions/") => {
                let number = &rest["/versions/".len()..];
                let version = number.parse::<u64>().map_err(|_| {
                    Problem::bad_request(
                        "invalid-version",
                        format!("version {number:?} is not a version number"),
                    )
                })?;
                let head = read_head(store, F::NAME).await.map_err(store_problem)?;
                let text = version_text(store, F::NAME, &head, version).await?;
                let text = text.unwrap_or_else(|| self.base.policy_text().to_owned());
                let mut response = Response::new(text.into_bytes().into());
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                Ok(response)
            }
            ("" | "/", _) => Err(Problem::method_not_allowed(
                &method,
                &[Method::GET, Method::PUT, Method::DELETE],
            )),
            ("/restore", _) => Err(Problem::method_not_allowed(&method, &[Method::POST])),
            _ => Err(Problem::not_found(&path)),
        }
    }

    /// Refuses a document that builds no function, naming each field.
    fn validate(&self, text: &str) -> Result<(), Problem> {
        match instantiate::<F>(&self.config_for(Some(text))) {
            Ok(_) => Ok(()),
            Err(error) => Err(invalid_policy(&error)),
        }
    }

    /// Refuses a document holding the value of one of the function's
    /// secrets (named, never shown): the store is no place for secrets.
    fn refuse_secrets(&self, text: &str) -> Result<(), Problem> {
        if self.base.redact(text) == text {
            return Ok(());
        }
        Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "secret-in-policy",
            "Policy holds a secret",
        )
        .with_detail(
            "the document contains the value of one of the function's secrets; \
             name the secret in the policy and keep its value a platform secret",
        ))
    }

    /// `GET /_policy`: the stored head and the version in effect here.
    fn describe(&self, head: &Head) -> Response {
        let active = Rc::clone(&self.state.borrow().active);
        let text = head
            .policy
            .clone()
            .unwrap_or_else(|| self.base.policy_text().to_owned());
        let mut body = json!({
            "function": F::NAME,
            "stored_version": head.version(),
            "in_effect": self.status(&active),
            "policy": text,
            "versions": head.history,
        });
        if let Some(current) = &head.current {
            body["updated_at"] = json!(Timestamp::from_millis(current.updated_at_ms).to_rfc3339());
        }
        let mut response = json_response(StatusCode::OK, &body);
        set_etag(&mut response, head.version());
        response
    }

    /// The answer to a change: the new version and the one in effect.
    fn changed(&self, head: &Head, status: StatusCode) -> Response {
        let active = Rc::clone(&self.state.borrow().active);
        let mut response = json_response(
            status,
            &json!({
                "function": F::NAME,
                "version": head.version(),
                "digest": head.current.as_ref().and_then(|c| c.digest.clone()),
                "restored_from": head.current.as_ref().and_then(|c| c.restored_from),
                "in_effect": self.status(&active),
            }),
        );
        set_etag(&mut response, head.version());
        response
    }
}

fn set_etag(response: &mut Response, version: u64) {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(http::header::ETAG, value);
    }
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
}

/// The document in a `PUT` body: UTF-8, not empty, at most [`MAX_POLICY_BYTES`].
fn policy_text(req: &Request) -> Result<String, Problem> {
    let body = req.body();
    if body.len() > MAX_POLICY_BYTES {
        return Err(Problem::payload_too_large(MAX_POLICY_BYTES));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        Problem::bad_request(
            "invalid-policy",
            format!(
                "the policy document is not UTF-8 (byte {})",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(Problem::bad_request(
            "invalid-policy",
            "the body is empty; send the policy document (TOML or JSON), or DELETE to return to the deployed one",
        ));
    }
    Ok(text.to_owned())
}

/// `If-Match: "N"` (or `*`, no precondition).
fn if_match(req: &Request) -> Result<Option<u64>, Problem> {
    let Some(value) = req.headers().get(http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| {
            Problem::bad_request(
                "invalid-if-match",
                format!("If-Match {text:?} is not a policy version's ETag (\"N\")"),
            )
        })
}

/// `?version=N`.
fn query_version(req: &Request) -> Result<u64, Problem> {
    let query = req.uri().query().unwrap_or_default();
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("version="))
        .ok_or_else(|| {
            Problem::bad_request(
                "invalid-version",
                "restore needs ?version=N (see GET /_policy for the versions kept)",
            )
        })?;
    value.parse().map_err(|_| {
        Problem::bad_request(
            "invalid-version",
            format!("version {value:?} is not a version number"),
        )
    })
}

/// 422 naming every field the document breaks.
fn invalid_policy(error: &ConfigError) -> Problem {
    let problem = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-policy",
        "Invalid policy",
    )
    .with_detail(format!("{error}; the version in effect stays"));
    match error {
        ConfigError::Invalid(errors) | ConfigError::NotAllowed(errors) => problem.with_extension(
            "errors",
            errors
                .iter()
                .map(|e| json!({ "field": e.path, "value": e.value, "rule": e.rule }))
                .collect::<Vec<_>>(),
        ),
        _ => problem,
    }
}

pub(super) fn store_problem(error: StoreError) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        "Policy store unavailable",
    )
    .with_detail(format!(
        "the policy store could not be used ({error}); the version in effect stays"
    ))
    .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1"))
}
