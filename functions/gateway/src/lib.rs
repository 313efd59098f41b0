//! The gateway: the capabilities as one pipeline in front of an origin,
//! in one process. Each route of its policy names the stages a request
//! passes — auth check → rate limit (keyed by the verified caller) →
//! anonymize (request and/or response bodies) — and where it ends: an
//! origin, or a composed function mounted under the route's path
//! (spatial query, metrics, counter, or a layer's own admin endpoints).
//! Every outcome, the 401s and 429s included, is recorded in the metrics
//! under the route's template.
//!
//! | request | answer |
//! |---|---|
//! | matching a route | its stages' refusal (`401`, `403`, `429`, `415` …) or the origin's / mounted function's answer, with the `RateLimit` fields |
//! | matching no route | `404` problem+json |
//! | `GET /health` | the store, the cache and each mounted function |
//!
//! The stages are the functions' own [`Filter`]s (`edge_core::pipeline`):
//! what one learns reaches the next as a typed value (the verified
//! [`Principal`](edge_core::pipeline::Principal), the rate-limit decision),
//! never as a header a client could have sent.

mod composed;
pub mod policy;

#[cfg(all(feature = "browser", target_arch = "wasm32"))]
mod browser;
#[cfg(all(feature = "spin", target_arch = "wasm32"))]
mod spin;
#[cfg(all(feature = "workers", target_arch = "wasm32"))]
mod workers;

use std::rc::Rc;

use anonymize::{Anonymize, BodyKind};
use async_trait::async_trait;
use edge_core::function::{Context, Mounted};
use edge_core::metrics::MetricsBatch;
use edge_core::origin::OriginClient;
use edge_core::pipeline::{self, Endpoint, Filter};
use edge_core::platform::Applied;
use edge_core::policy::FieldError;
use edge_core::route::{MountPath, RoutePattern};
use edge_core::stream::{BodyTransform, Chain, StreamPlan, StreamingFunction};
use edge_core::{Config, ConfigError, EdgeFunction, Problem, Request, Response, Timestamp};
use http::{Extensions, HeaderValue, response};

use crate::composed::Instances;
use crate::policy::{GatewayPolicy, RouteSpec};

/// The built-in policy: the seeds' API (see `policy.toml`).
pub const DEFAULT_POLICY: &str = include_str!("../policy.toml");

/// The gateway function.
pub struct Gateway {
    routes: Vec<Route>,
    mounted: Vec<Rc<dyn Mounted>>,
    /// One client (and circuit breaker) per origin and settings.
    origins: Vec<Rc<OriginClient>>,
}

/// One route, ready: its pattern, its stages in order, its end.
struct Route {
    pattern: RoutePattern,
    filters: Vec<Rc<dyn Filter>>,
    end: End,
    /// A stage rewrites the origin's answers (which a streamed request's
    /// answer would pass unread).
    rewrites_answers: bool,
}

enum End {
    Origin(Rc<OriginClient>),
    Mount {
        function: Rc<dyn Mounted>,
        /// `None`: the function sees the whole path.
        strip: Option<MountPath>,
    },
}

#[async_trait(?Send)]
impl EdgeFunction for Gateway {
    const NAME: &'static str = "gateway";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DEFAULT_POLICY: &'static str = DEFAULT_POLICY;
    const VARIABLES: &'static [&'static str] = &composed::VARIABLES;
    const SECRETS: &'static [&'static str] = &composed::SECRETS;

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        let policy: GatewayPolicy = config.policy()?;
        config.check_outbound(policy.outbound())?;
        let mut instances = Instances::new(&policy, config);
        let mut origins = Vec::new();
        let mut routes = Vec::with_capacity(policy.gateway.routes.len());
        for (i, spec) in policy.gateway.routes.iter().enumerate() {
            let route = route(spec, &policy, &mut instances, &mut origins);
            routes.push(route.map_err(|e| in_route(e, i))?);
        }
        Ok(Gateway {
            routes,
            mounted: instances.into_mounted(),
            origins,
        })
    }

    fn transaction(
        name: &str,
        input: &[u8],
        current: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Applied, String> {
        // The store transactions of the composed functions that have any.
        match name {
            rate_limit::TRANSACTION => {
                rate_limit::RateLimit::transaction(name, input, current, now)
            }
            edge_core::metrics::store::MERGE_TRANSACTION => {
                metrics::Metrics::transaction(name, input, current, now)
            }
            _ => Err(format!("unknown transaction {name:?}")),
        }
    }

    fn route(&self, req: &Request) -> String {
        let Some(route) = self.find(req.method(), req.uri().path()) else {
            return "(no route)".to_owned();
        };
        match &route.end {
            End::Mount {
                function,
                strip: Some(strip),
            } => {
                let inner = http::Request::builder()
                    .method(req.method().clone())
                    .uri(strip.strip(req.uri().path()).unwrap_or("/"))
                    .body(edge_core::Body::new());
                match inner {
                    Ok(inner) => format!("{}{}", strip.prefix(), function.route(&inner)),
                    Err(_) => route.pattern.template(),
                }
            }
            _ => route.pattern.template(),
        }
    }

    async fn handle(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let Some(route) = self.find(req.method(), req.uri().path()) else {
            return Err(no_route(req.method(), req.uri().path()));
        };
        let filters: Vec<&dyn Filter> = route.filters.iter().map(|f| f.as_ref()).collect();
        match &route.end {
            End::Origin(origin) => pipeline::run(&filters, req, origin.as_ref(), ctx).await,
            End::Mount { function, strip } => {
                let end = MountedEnd {
                    function: function.as_ref(),
                    strip: strip.as_ref(),
                };
                pipeline::run(&filters, req, &end, ctx).await
            }
        }
    }

    fn origins(&self) -> Vec<&OriginClient> {
        self.origins.iter().map(Rc::as_ref).collect()
    }

    async fn absorb_metrics(
        &self,
        batch: &MetricsBatch,
        ctx: &Context<'_>,
    ) -> Option<Result<(), String>> {
        // With the metrics function mounted, the gateway is its own aggregator.
        for function in &self.mounted {
            if let Some(result) = function.absorb_metrics(batch, ctx).await {
                return Some(result);
            }
        }
        None
    }

    async fn scheduled(&self, ctx: &Context<'_>) -> Result<(), String> {
        let mut failures = Vec::new();
        for function in &self.mounted {
            if let Err(reason) = function.scheduled(ctx).await {
                failures.push(format!("{}: {reason}", function.name()));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

/// Bodies past the buffered limit, on routes to an origin: the head phase
/// (auth check, rate limit) decides before any more of the body is read,
/// the request-body transforms (the anonymizer) rewrite it as it flows to
/// the origin, and the origin's answer gets the stages' headers. Routes
/// that anonymize answers or end at a mounted function read bodies whole
/// (`413` past the limit).
#[async_trait(?Send)]
impl StreamingFunction for Gateway {
    async fn stream_plan(
        &self,
        head: &mut http::request::Parts,
        ctx: &Context<'_>,
    ) -> Result<Option<StreamPlan>, Problem> {
        let Some(route) = self.find(&head.method, head.uri.path()) else {
            return Err(no_route(&head.method, head.uri.path()));
        };
        let End::Origin(origin) = &route.end else {
            return Ok(None);
        };
        if route.rewrites_answers {
            return Ok(None);
        }
        let filters: Vec<&dyn Filter> = route.filters.iter().map(|f| f.as_ref()).collect();
        let transforms = pipeline::stream_request(&filters, head, ctx).await?;
        let content_type = head
            .headers
            .get(http::header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        let (filters, extensions) = (route.filters.clone(), head.extensions.clone());
        Ok(Some(StreamPlan {
            transform: Box::new(Chain(transforms)),
            origin: Some(origin.origin().to_string()),
            content_type,
            answer_headers: Some(Box::new(move |status, headers, ctx| {
                pipeline::response_headers(&filters, &extensions, status, headers, ctx);
            })),
        }))
    }
}

impl Gateway {
    /// The first route matching a request's method and path.
    fn find(&self, method: &http::Method, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.pattern.matches(method, path))
    }
}

fn no_route(method: &http::Method, path: &str) -> Problem {
    Problem::not_found(path).with_detail(format!(
        "no gateway route matches {method} {}",
        path.chars().take(200).collect::<String>()
    ))
}

/// Builds one route (the policy was validated: its fields parse).
fn route(
    spec: &RouteSpec,
    policy: &GatewayPolicy,
    instances: &mut Instances<'_>,
    origins: &mut Vec<Rc<OriginClient>>,
) -> Result<Route, ConfigError> {
    let pattern =
        RoutePattern::parse(&spec.route).map_err(|rule| field_error("route", &spec.route, rule))?;
    let mut filters: Vec<Rc<dyn Filter>> = Vec::new();
    if spec.auth {
        filters.push(instances.auth()?);
    }
    if spec.rate_limit {
        filters.push(instances.rate_limit()?);
    }
    if spec.anonymize.request() {
        filters.push(instances.anonymize()?);
    }
    if spec.anonymize.response() {
        filters.push(Rc::new(AnonymizeResponses(instances.anonymize()?)));
    }
    let end =
        match (&spec.mount, &spec.origin, &policy.gateway.origin) {
            (Some(name), _, _) => End::Mount {
                function: instances
                    .mounted(name)
                    .ok_or_else(|| field_error("mount", name, "names no composed function"))??,
                strip: if spec.strip_prefix {
                    Some(pattern.mount_path().ok_or_else(|| {
                        field_error("route", &spec.route, "cannot be a mount path")
                    })?)
                } else {
                    None
                },
            },
            (None, Some(origin), _) | (None, None, Some(origin)) => {
                let settings = spec.settings(&policy.gateway);
                let shared = origins
                    .iter()
                    .find(|c| c.origin() == origin && *c.settings() == settings);
                let client = match shared {
                    Some(client) => client.clone(),
                    None => {
                        let client = Rc::new(OriginClient::new(origin.clone(), settings));
                        origins.push(client.clone());
                        client
                    }
                };
                End::Origin(client)
            }
            (None, None, None) => return Err(field_error("origin", "", "is needed")),
        };
    Ok(Route {
        pattern,
        filters,
        end,
        rewrites_answers: spec.anonymize.response(),
    })
}

fn field_error(path: &str, value: &str, rule: &str) -> ConfigError {
    ConfigError::Invalid(vec![FieldError {
        path: path.to_owned(),
        value: format!("{value:?}"),
        rule: rule.to_owned(),
    }])
}

/// A route's own errors, placed under `gateway.routes[i]`; a composed
/// function's errors already name its section.
fn in_route(error: ConfigError, i: usize) -> ConfigError {
    match error {
        ConfigError::Invalid(errors) => ConfigError::Invalid(
            errors
                .into_iter()
                .map(|e| match e.path.as_str() {
                    "route" | "mount" | "origin" => FieldError {
                        path: format!("gateway.routes[{i}].{}", e.path),
                        ..e
                    },
                    _ => e,
                })
                .collect(),
        ),
        other => other,
    }
}

/// A mounted function as the end of a route: it sees the path under the
/// mount (`/spatial/assets` → `/assets`).
struct MountedEnd<'a> {
    function: &'a dyn Mounted,
    strip: Option<&'a MountPath>,
}

#[async_trait(?Send)]
impl Endpoint for MountedEnd<'_> {
    async fn call(&self, req: Request, ctx: &Context<'_>) -> Result<Response, Problem> {
        let Some(strip) = self.strip else {
            return self.function.handle(req, ctx).await;
        };
        let (mut head, body) = req.into_parts();
        let rest = strip.strip(head.uri.path()).unwrap_or("/");
        let uri = match head.uri.query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest.to_owned(),
        };
        head.uri = uri
            .parse()
            .map_err(|_| Problem::bad_request("invalid-path", "the path cannot be mounted"))?;
        self.function
            .handle(Request::from_parts(head, body), ctx)
            .await
    }
}

/// The anonymizer on the way back: rewrites the origin's JSON, NDJSON and
/// text answers (other content passes).
struct AnonymizeResponses(Rc<Anonymize>);

#[async_trait(?Send)]
impl Filter for AnonymizeResponses {
    fn name(&self) -> &'static str {
        "anonymize-responses"
    }

    /// Asks the origin for an unencoded answer: a compressed one could
    /// not be read, so it could not be passed.
    async fn on_request(
        &self,
        head: &mut http::request::Parts,
        _ctx: &Context<'_>,
    ) -> Result<(), Problem> {
        head.headers.remove(http::header::ACCEPT_ENCODING);
        Ok(())
    }

    fn response_body(
        &self,
        _request: &Extensions,
        head: &response::Parts,
    ) -> Option<Box<dyn BodyTransform>> {
        let encoded = head
            .headers
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|e| e != "identity");
        if encoded {
            return Some(Box::new(Unreadable));
        }
        let kind = BodyKind::of(&head.headers)?;
        Some(Box::new(self.0.anonymizer().body(kind)))
    }
}

/// Refuses a body it cannot read (an encoded answer where answers are
/// anonymized): never passed on unread.
struct Unreadable;

impl BodyTransform for Unreadable {
    fn push(&mut self, _chunk: &[u8], _out: &mut Vec<u8>) -> Result<(), Problem> {
        Err(Problem::bad_request(
            "encoded-body",
            "an encoded (Content-Encoding) body cannot be anonymized",
        ))
    }
    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), Problem> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_takes_every_composed_functions_secrets() {
        for secret in [
            "RATE_LIMIT_HASH_KEY",
            "AUTH_API_KEY_HASH_KEY",
            "GDPR_ANONYMIZATION_SALT",
            "METRICS_INGEST_TOKEN",
        ] {
            assert!(Gateway::SECRETS.contains(&secret), "{secret}");
        }
        assert!(Gateway::VARIABLES.contains(&"RATE_LIMIT_ENABLED"));
    }
}
