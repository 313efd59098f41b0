//! The gateway's policy: its routes, and beside them the sections of the
//! functions it composes, each written as in that function's own policy
//! (`[auth]`, `[rate_limit]`, `[anonymize]`, `[spatial]`, `[metrics]`,
//! `[counter]`). A section left out is that function's built-in policy.

use std::collections::BTreeMap;

use edge_core::origin::{DEFAULT_RETRIES, DEFAULT_TIMEOUT, Origin, OriginSettings};
use edge_core::policy::{Policy, PolicyDuration, Validator};
use edge_core::route::RoutePattern;
use serde::Deserialize;
use serde_json::Value;

use crate::composed::COMPOSED;

/// The whole document.
#[derive(Debug, Clone, Deserialize)]
pub struct GatewayPolicy {
    /// The routes.
    pub gateway: Section,
    /// The composed functions' sections, by key (`auth`, `rate_limit` …).
    #[serde(flatten)]
    pub sections: BTreeMap<String, Value>,
}

impl GatewayPolicy {
    /// The section of the document with key `key`, if written.
    pub fn section(&self, key: &str) -> Option<&Value> {
        self.sections.get(key)
    }

    /// The origins the gateway's own fields name, each with its field
    /// path, for `Config::check_outbound` (the composed functions check
    /// theirs, under their sections, when they are built).
    pub fn outbound(&self) -> Vec<(String, String)> {
        let routes = self.gateway.routes.iter().enumerate();
        let routes = routes.filter_map(|(i, route)| {
            let origin = route.origin.as_ref()?;
            Some((format!("gateway.routes[{i}].origin"), origin.to_string()))
        });
        self.gateway
            .origin
            .iter()
            .map(|origin| ("gateway.origin".to_owned(), origin.to_string()))
            .chain(routes)
            .collect()
    }
}

/// `[gateway]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Where routes that name neither an origin nor a mount go.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// How long an origin may take to answer (every attempt and the
    /// backoff between them), unless a route says otherwise.
    #[serde(default = "default_timeout")]
    pub timeout: PolicyDuration,
    /// How often an idempotent request is tried again after a failure,
    /// unless a route says otherwise.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First match wins; a request matching none is answered `404`.
    pub routes: Vec<RouteSpec>,
}

/// One `[[gateway.routes]]`: which requests, through which stages, to where.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// `"[METHOD ]/path"`: `*` one segment, a trailing `/**` any rest.
    pub route: String,
    /// The auth check runs (its `[auth]` rules decide who passes).
    #[serde(default)]
    pub auth: bool,
    /// The rate limiter runs (its `[rate_limit]` scopes that match apply,
    /// keyed by the verified caller the auth check left).
    #[serde(default)]
    pub rate_limit: bool,
    /// Which bodies the anonymizer rewrites.
    #[serde(default)]
    pub anonymize: AnonymizeBodies,
    /// The origin (`http(s)://host[:port][/prefix]`); else `gateway.origin`.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// A composed function that answers instead of an origin.
    #[serde(default)]
    pub mount: Option<String>,
    /// With `mount`: whether the function sees the path without the
    /// route's literal prefix (`/spatial/assets` → `/assets`).
    #[serde(default = "yes")]
    pub strip_prefix: bool,
    /// How long the origin may take, instead of `gateway.timeout`.
    #[serde(default)]
    pub timeout: Option<PolicyDuration>,
    /// Retries of idempotent requests, instead of `gateway.retries`.
    #[serde(default)]
    pub retries: Option<u32>,
}

impl RouteSpec {
    /// How this route talks to its origin.
    pub fn settings(&self, section: &Section) -> OriginSettings {
        OriginSettings {
            timeout: self.timeout.unwrap_or(section.timeout),
            retries: self.retries.unwrap_or(section.retries),
        }
    }
}

/// Which bodies of a route the anonymizer rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnonymizeBodies {
    /// None.
    #[default]
    Off,
    /// The request's, before it is forwarded.
    Request,
    /// The origin's answer's.
    Response,
    /// Both.
    Both,
}

impl AnonymizeBodies {
    /// Whether request bodies are rewritten.
    pub fn request(self) -> bool {
        matches!(self, AnonymizeBodies::Request | AnonymizeBodies::Both)
    }
    /// Whether response bodies are rewritten.
    pub fn response(self) -> bool {
        matches!(self, AnonymizeBodies::Response | AnonymizeBodies::Both)
    }
}

fn default_timeout() -> PolicyDuration {
    PolicyDuration(DEFAULT_TIMEOUT)
}
fn default_retries() -> u32 {
    DEFAULT_RETRIES
}
fn yes() -> bool {
    true
}

/// The most routes a gateway takes (each request walks them in order).
pub const MAX_ROUTES: usize = 256;

impl Policy for GatewayPolicy {
    fn validate(&self, v: &mut Validator) {
        v.field("gateway", |v| self.gateway.validate(v));
        for key in self.sections.keys() {
            v.check(
                COMPOSED.iter().any(|c| c.section == key),
                key,
                "(section)",
                &format!(
                    "is not a section of a composed function ({})",
                    COMPOSED
                        .iter()
                        .map(|c| c.section)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
}

impl Section {
    fn validate(&self, v: &mut Validator) {
        OriginSettings {
            timeout: self.timeout,
            retries: self.retries,
        }
        .validate(v);
        v.check(
            (1..=MAX_ROUTES).contains(&self.routes.len()),
            "routes",
            self.routes.len(),
            &format!("must list 1..={MAX_ROUTES} routes"),
        );
        v.field("routes", |v| {
            for (i, route) in self.routes.iter().enumerate() {
                v.index(i, |v| route.validate(v, self));
            }
        });
    }
}

impl RouteSpec {
    fn validate(&self, v: &mut Validator, section: &Section) {
        let pattern = RoutePattern::parse(&self.route);
        if let Err(rule) = &pattern {
            v.check(false, "route", &self.route, rule);
        }
        if self.timeout.is_some() || self.retries.is_some() {
            self.settings(section).validate(v);
        }
        match (&self.mount, &self.origin) {
            (Some(_), Some(origin)) => {
                v.check(false, "origin", origin, "must not be given with mount");
            }
            (Some(mount), None) => {
                v.check(
                    COMPOSED.iter().any(|c| c.name == mount),
                    "mount",
                    mount,
                    &format!(
                        "must name one of {}",
                        COMPOSED
                            .iter()
                            .map(|c| c.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                if let Ok(pattern) = &pattern
                    && self.strip_prefix
                {
                    v.check(
                        pattern.mount_path().is_some(),
                        "route",
                        &self.route,
                        "must be literal segments ending in /** to mount a function \
                         (or set strip_prefix = false)",
                    );
                }
            }
            (None, Some(_)) => {}
            (None, None) => {
                v.check(
                    section.origin.is_some(),
                    "origin",
                    Value::Null,
                    "is needed (or gateway.origin, or a mount)",
                );
            }
        }
        if self.mount.is_none() {
            v.check(
                self.strip_prefix,
                "strip_prefix",
                self.strip_prefix,
                "applies only with mount",
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use edge_core::policy::parse_policy;
    use edge_core::{Config, EdgeFunction};

    fn errors(text: &str) -> String {
        parse_policy::<GatewayPolicy>(text).unwrap_err().to_string()
    }

    #[test]
    fn the_built_in_policy_is_valid() {
        let policy = parse_policy::<GatewayPolicy>(crate::DEFAULT_POLICY).unwrap();
        assert!(policy.gateway.routes.len() >= 5);
        assert!(policy.section("auth").is_some());
    }

    #[test]
    fn bad_routes_are_named_by_field() {
        let text = r#"
            [gateway]
            routes = [
              { route = "get /x", origin = "https://x.example" },
              { route = "/a/*/**", mount = "spatial-query" },
              { route = "/m/**", mount = "nope" },
              { route = "/o" },
              { route = "/p", origin = "https://p.example", strip_prefix = false, timeout = "0s" },
            ]
        "#;
        let e = errors(text);
        for expected in [
            r#"gateway.routes[0].route: "get /x" must start with an upper-case HTTP method"#,
            r#"gateway.routes[1].route: "/a/*/**" must be literal segments"#,
            r#"gateway.routes[2].mount: "nope" must name one of counter, rate-limit"#,
            "gateway.routes[3].origin: null is needed",
            "gateway.routes[4].timeout: \"0s\" must be > 0 and at most 5m",
            "gateway.routes[4].strip_prefix: false applies only with mount",
        ] {
            assert!(e.contains(expected), "{expected}\n in {e}");
        }
    }

    const ROUTES: &str = r#"
        [gateway]
        origin = "https://api.example.com"
        routes = [
          { route = "/a/**" },
          { route = "/b/**", origin = "https://api.example.com/v2" },
          { route = "/c/**", origin = "https://x.example:8443" },
          { route = "/counter/**", mount = "counter" },
        ]
    "#;

    fn config(policy: &str) -> Config {
        Config::new(crate::DEFAULT_POLICY)
            .with_var("POLICY", policy)
            .with_secret("COUNTER_ADMIN_TOKEN", "gateway-test-admin-token")
            .with_secret("AUTH_HS256_SECRET", "gateway-test-hs256-secret-0123456789")
            .with_secret(
                "AUTH_API_KEY_HASH_KEY",
                "gateway-test-api-key-hash-key-0123",
            )
            .with_secret("AUTH_ADMIN_TOKEN", "gateway-test-auth-admin-token")
            .with_secret("RATE_LIMIT_HASH_KEY", "gateway-test-hash-key")
            .with_secret("RATE_LIMIT_ADMIN_TOKEN", "gateway-test-rate-limit-admin")
            .with_secret("GDPR_ANONYMIZATION_SALT", "gateway-test-anonymization-salt")
            .with_secret("METRICS_INGEST_TOKEN", "gateway-test-ingest")
    }

    fn start_error(config: &Config) -> String {
        crate::Gateway::from_config(config)
            .err()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_route_origin_outside_the_allowed_hosts_fails_at_start_by_field() {
        let refused = config(ROUTES).with_allowed_outbound_hosts("https://api.example.com");
        assert_eq!(
            start_error(&refused),
            "gateway.routes[2].origin: https://x.example:8443 is not in this component's \
             allowed_outbound_hosts (https://api.example.com); add it to spin.toml"
        );
        let allowed = config(ROUTES)
            .with_allowed_outbound_hosts("https://api.example.com,https://x.example:8443");
        assert!(crate::Gateway::from_config(&allowed).is_ok());
        // gateway.origin too, and every refused URL at once.
        let error = start_error(&config(ROUTES).with_allowed_outbound_hosts("https://*.test"));
        for field in [
            "gateway.origin: https://api.example.com is not",
            "gateway.routes[1].origin: https://api.example.com is not",
            "gateway.routes[2].origin: https://x.example:8443 is not",
        ] {
            assert!(error.contains(field), "{field}\n in {error}");
        }
        // Without an allow-list (Workers, browsers) every origin passes.
        assert!(crate::Gateway::from_config(&config(ROUTES)).is_ok());
    }

    #[test]
    fn composed_functions_urls_are_checked_under_their_sections() {
        let policy = r#"
            [gateway]
            origin = "https://api.example.com"
            routes = [
              { route = "/api/**", auth = true },
              { route = "/_metrics/**", mount = "metrics", strip_prefix = false },
            ]
            [auth]
            [[auth.providers]]
            issuer = "https://idp.example"
            discovery = true
            [metrics]
            retention = "1h"
            summary_window = "5m"
            ingest_token_secret = "METRICS_INGEST_TOKEN"
            admin_token_secret = "METRICS_ADMIN_TOKEN"
            webhook = "https://hooks.example/alerts"
        "#;
        let error =
            start_error(&config(policy).with_allowed_outbound_hosts("https://api.example.com"));
        assert!(
            error.starts_with("auth.providers[0].issuer: https://idp.example is not"),
            "{error}"
        );
        let error = start_error(
            &config(policy)
                .with_allowed_outbound_hosts("https://api.example.com,https://idp.example"),
        );
        assert!(
            error.starts_with("metrics.webhook: https://hooks.example is not"),
            "{error}"
        );
        let allowed = config(policy).with_allowed_outbound_hosts(
            "https://api.example.com,https://idp.example,https://hooks.example",
        );
        assert!(crate::Gateway::from_config(&allowed).is_ok());
    }

    #[test]
    fn the_built_in_policy_passes_spin_tomls_default_hosts() {
        // gateway_origin_host, auth_check_idp_host, metrics_webhook_host.
        let config = config("").with_allowed_outbound_hosts(
            "https://api.example.com,https://auth.example.com,https://alerts.example.com",
        );
        if let Err(e) = crate::Gateway::from_config(&config) {
            panic!("{e}");
        }
    }

    #[test]
    fn unknown_sections_and_fields_are_refused() {
        let e = errors(
            "[gateway]\nroutes = [{ route = \"/\", mount = \"counter\", strip_prefix = false }]\n[nope]\nx = 1\n",
        );
        assert!(e.contains("nope: \"(section)\" is not a section"), "{e}");
        let e = errors("[gateway]\nroutes = [{ route = \"/\", orign = \"http://x\" }]\n");
        assert!(
            e.contains("gateway.routes[0]") && e.contains("orign"),
            "{e}"
        );
        let e = errors("[gateway]\nroutes = [{ route = \"/\", origin = \"ftp://x\" }]\n");
        assert!(e.starts_with("policy: gateway.routes[0].origin: "), "{e}");
        assert!(e.contains(r#""ftp://x" must be an http(s) URL"#), "{e}");
        let e = errors("[gateway]\nroutes = []\n");
        assert!(
            e.contains("gateway.routes: 0 must list 1..=256 routes"),
            "{e}"
        );
    }
}
