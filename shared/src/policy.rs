//! Declarative configuration: one policy document per function (TOML or
//! JSON), plus the platform's variables and secrets, validated once at
//! start.
//!
//! Errors name the field path and the bad value, e.g.
//! `rate_limit.scopes[2].window: "0s" must be > 0`. Secret values live in
//! [`Secret`], which never prints, and every error message is scrubbed of
//! known secret values before it leaves [`Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;

use crate::origin::allowed::{self, AllowedHosts, url_authority};

/// The variable that, when set and non-empty, replaces the built-in policy
/// document (`POLICY` in `wrangler.toml` `[vars]`, in Spin variables, or in
/// the browser's `vars`).
pub const POLICY_VARIABLE: &str = "POLICY";

/// A policy document type: deserializable, then validated.
pub trait Policy: DeserializeOwned {
    /// Records every rule the policy breaks; an empty validator means valid.
    fn validate(&self, v: &mut Validator);
}

/// One broken rule: where, what value, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `rate_limit.scopes[2].window`.
    pub path: String,
    /// The offending value as written (JSON-quoted strings).
    pub value: String,
    /// The rule, e.g. `must be > 0`.
    pub rule: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.path, self.value, self.rule)
    }
}

/// Collects [`FieldError`]s while walking a policy, tracking the path.
#[derive(Debug, Default)]
pub struct Validator {
    path: Vec<String>,
    errors: Vec<FieldError>,
}

impl Validator {
    /// Validates the nested field `name` with `f`.
    pub fn field(&mut self, name: &str, f: impl FnOnce(&mut Self)) {
        self.path.push(if self.path.is_empty() {
            name.to_owned()
        } else {
            format!(".{name}")
        });
        f(self);
        self.path.pop();
    }

    /// Validates element `index` of the current list with `f`.
    pub fn index(&mut self, index: usize, f: impl FnOnce(&mut Self)) {
        self.path.push(format!("[{index}]"));
        f(self);
        self.path.pop();
    }

    /// Records a broken rule on field `name` of the current path unless `ok`.
    /// `value` is shown JSON-encoded.
    pub fn check(&mut self, ok: bool, name: &str, value: impl serde::Serialize, rule: &str) {
        if !ok {
            let value = serde_json::to_string(&value).unwrap_or_else(|_| "?".into());
            self.field(name, |v| v.push(value, rule));
        }
    }

    /// Records a broken rule on the current path itself.
    pub fn push(&mut self, value: String, rule: &str) {
        self.errors.push(FieldError {
            path: self.path.concat(),
            value,
            rule: rule.to_owned(),
        });
    }

    /// The errors recorded so far.
    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }
}

/// A configuration error found at start. Its message names the field and
/// the value, and never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The document is not valid TOML or JSON, or a field has the wrong type.
    #[error("policy: {0}")]
    Parse(String),
    /// The document parsed but breaks rules.
    #[error("policy: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// A platform variable holds a bad value.
    #[error("variable {name}: {value:?} {rule}")]
    Variable {
        /// The variable's name.
        name: String,
        /// Its value.
        value: String,
        /// The rule it breaks.
        rule: String,
    },
    /// A secret named by the policy is not set on the platform.
    #[error("{field}: secret {name:?} is not set")]
    MissingSecret {
        /// The policy field naming the secret.
        field: String,
        /// The secret's name (never its value).
        name: String,
    },
    /// URLs the policy names that the platform will not let the function
    /// call (Spin's `allowed_outbound_hosts`, see [`Config::check_outbound`]):
    /// each the field, the URL's `scheme://host[:port]` and the list.
    #[error("{}", join(.0))]
    NotAllowed(Vec<FieldError>),
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A secret value (an API token, a salt). It never prints: `Debug` shows
/// `Secret([REDACTED])` and there is no `Display` or `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for cryptographic use only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented credential.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// A duration written the human way in a policy: `"500ms"`, `"15m"`, `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct PolicyDuration(pub Duration);

impl<'de> Deserialize<'de> for PolicyDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(PolicyDuration)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration ({e})")))
    }
}

impl serde::Serialize for PolicyDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

/// The policy document, variables and secrets of one function instance,
/// and on Spin the hosts it may call.
#[derive(Clone, Default)]
pub struct Config {
    default_policy: String,
    vars: BTreeMap<String, String>,
    secrets: BTreeMap<String, Secret>,
    /// `None`: no restriction (Workers, browsers, native); else the
    /// component's allow-list, or why its variable could not be read.
    allowed_hosts: Option<Result<AllowedHosts, ConfigError>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field(
                "vars",
                &self
                    .vars
                    .iter()
                    .map(|(k, v)| (k, self.redact(v)))
                    .collect::<BTreeMap<_, _>>(),
            )
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("allowed_hosts", &self.allowed_hosts)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A config whose policy is `default_policy` unless the `POLICY`
    /// variable replaces it.
    pub fn new(default_policy: impl Into<String>) -> Self {
        Config {
            default_policy: default_policy.into(),
            ..Config::default()
        }
    }

    /// Sets a platform variable.
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Sets a platform secret.
    pub fn with_secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(name.into(), Secret::new(value));
        self
    }

    /// The policy text in force: the `POLICY` variable, else the built-in one.
    pub fn policy_text(&self) -> &str {
        match self.vars.get(POLICY_VARIABLE) {
            Some(text) if !text.trim().is_empty() => text,
            _ => &self.default_policy,
        }
    }

    /// Parses and validates the policy in force.
    pub fn policy<P: Policy>(&self) -> Result<P, ConfigError> {
        parse_policy::<P>(self.policy_text()).map_err(|e| self.scrub(e))
    }

    /// A platform variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// A boolean variable (`true`/`false`/`1`/`0`/`yes`/`no`), `default` when unset.
    pub fn var_bool(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        let Some(value) = self.var(name) else {
            return Ok(default);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "" => Ok(default),
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(self.scrub(ConfigError::Variable {
                name: name.to_owned(),
                value: value.to_owned(),
                rule: "must be true or false".into(),
            })),
        }
    }

    /// Restricts the URLs the function may call to `hosts` (Spin's
    /// `allowed_outbound_hosts`), which [`Config::check_outbound`] checks.
    pub fn with_allowed_hosts(mut self, hosts: AllowedHosts) -> Self {
        self.allowed_hosts = Some(Ok(hosts));
        self
    }

    /// The same from the text of the component variable mirroring the list
    /// ([`allowed::VARIABLE`]: entries joined by commas). A text that does
    /// not parse makes [`Config::check_outbound`] fail naming the variable.
    pub fn with_allowed_outbound_hosts(mut self, text: &str) -> Self {
        self.allowed_hosts =
            Some(
                AllowedHosts::parse_list(text).map_err(|e| ConfigError::Variable {
                    name: allowed::VARIABLE.to_owned(),
                    value: text.to_owned(),
                    rule: format!("must list Spin allowed_outbound_hosts entries: {e}"),
                }),
            );
        self
    }

    /// The hosts the function may call: `None` when the platform does not
    /// restrict them; an error when the platform's list did not parse.
    pub fn allowed_hosts(&self) -> Result<Option<&AllowedHosts>, ConfigError> {
        match &self.allowed_hosts {
            None => Ok(None),
            Some(Ok(hosts)) => Ok(Some(hosts)),
            Some(Err(e)) => Err(self.scrub(e.clone())),
        }
    }

    /// Checks the URLs the policy names, each `(field path, URL)`, against
    /// the allowed hosts: every one not allowed is named in one
    /// [`ConfigError::NotAllowed`], e.g. `gateway.routes[2].origin:
    /// https://x.example:8443 is not in this component's
    /// allowed_outbound_hosts (https://api.example.com); add it to
    /// spin.toml`. Without an allow-list every URL passes.
    pub fn check_outbound<F, U>(
        &self,
        urls: impl IntoIterator<Item = (F, U)>,
    ) -> Result<(), ConfigError>
    where
        F: Into<String>,
        U: AsRef<str>,
    {
        let Some(hosts) = self.allowed_hosts()? else {
            return Ok(());
        };
        let denied: Vec<FieldError> = urls
            .into_iter()
            .filter(|(_, url)| !hosts.allows_url(url.as_ref()))
            .map(|(field, url)| FieldError {
                path: field.into(),
                value: self.redact(
                    &url_authority(url.as_ref()).unwrap_or_else(|| format!("{:?}", url.as_ref())),
                ),
                rule: format!(
                    "is not in this component's {} ({hosts}); add it to spin.toml",
                    allowed::VARIABLE
                ),
            })
            .collect();
        if denied.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::NotAllowed(denied))
        }
    }

    /// A secret by name.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    /// A secret the policy field `field` names; missing is an error.
    pub fn require_secret(&self, field: &str, name: &str) -> Result<&Secret, ConfigError> {
        self.secret(name).ok_or_else(|| ConfigError::MissingSecret {
            field: field.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Replaces every secret value found in `text` with `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.secrets.values() {
            let value = secret.expose();
            if value.len() >= 4 {
                text = text.replace(value, "[REDACTED]");
            }
        }
        text
    }

    /// `error` with every secret value it quotes (in a field, a value, a
    /// rule, a name) replaced by `[REDACTED]`.
    pub fn scrub(&self, error: ConfigError) -> ConfigError {
        let fields = |errors: Vec<FieldError>| -> Vec<FieldError> {
            errors
                .into_iter()
                .map(|e| FieldError {
                    path: self.redact(&e.path),
                    value: self.redact(&e.value),
                    rule: self.redact(&e.rule),
                })
                .collect()
        };
        match error {
            ConfigError::Parse(m) => ConfigError::Parse(self.redact(&m)),
            ConfigError::Invalid(errors) => ConfigError::Invalid(fields(errors)),
            ConfigError::NotAllowed(errors) => ConfigError::NotAllowed(fields(errors)),
            ConfigError::Variable { name, value, rule } => ConfigError::Variable {
                name: self.redact(&name),
                value: self.redact(&value),
                rule: self.redact(&rule),
            },
            ConfigError::MissingSecret { field, name } => ConfigError::MissingSecret {
                field: self.redact(&field),
                name: self.redact(&name),
            },
        }
    }
}

/// Parses a policy document (JSON if it starts with `{`, else TOML) and
/// validates it.
///
/// # Examples
///
/// ```
/// use edge_core::policy::{parse_policy, Policy, Validator};
///
/// #[derive(serde::Deserialize)]
/// struct Limits { max: u32 }
/// impl Policy for Limits {
///     fn validate(&self, v: &mut Validator) {
///         v.check(self.max > 0, "max", self.max, "must be > 0");
///     }
/// }
///
/// assert_eq!(parse_policy::<Limits>("max = 3").unwrap().max, 3);
/// let err = parse_policy::<Limits>(r#"{"max": 0}"#).err().unwrap();
/// assert_eq!(err.to_string(), "policy: max: 0 must be > 0");
/// ```
pub fn parse_policy<P: Policy>(text: &str) -> Result<P, ConfigError> {
    let policy: P = if text.trim_start().starts_with('{') {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| path_error(e.path(), e.inner()))?
    } else {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| ConfigError::Parse(format!("invalid TOML: {}", one_line(&e))))?;
        serde_path_to_error::deserialize(de).map_err(|e| path_error(e.path(), e.inner()))?
    };
    let mut v = Validator::default();
    policy.validate(&mut v);
    let errors = v.into_errors();
    if errors.is_empty() {
        Ok(policy)
    } else {
        Err(ConfigError::Invalid(errors))
    }
}

fn path_error(path: &serde_path_to_error::Path, inner: &dyn fmt::Display) -> ConfigError {
    let path = path.to_string();
    let message = one_line(inner);
    if path == "." {
        ConfigError::Parse(message)
    } else {
        ConfigError::Parse(format!("{path}: {message}"))
    }
}

/// Error messages from parsers may span lines (TOML shows a snippet); logs
/// and problem bodies want one line.
fn one_line(e: &dyn fmt::Display) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        rate_limit: RateLimit,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RateLimit {
        scopes: Vec<Scope>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Scope {
        name: String,
        limit: u32,
        window: PolicyDuration,
    }
    impl Policy for Doc {
        fn validate(&self, v: &mut Validator) {
            v.field("rate_limit", |v| {
                for (i, s) in self.rate_limit.scopes.iter().enumerate() {
                    v.field("scopes", |v| {
                        v.index(i, |v| {
                            v.check(s.limit > 0, "limit", s.limit, "must be > 0");
                            v.check(!s.window.0.is_zero(), "window", s.window, "must be > 0");
                            v.check(!s.name.is_empty(), "name", &s.name, "must not be empty");
                        })
                    })
                }
            })
        }
    }

    const VALID: &str = r#"
        [[rate_limit.scopes]]
        name = "a"
        limit = 5
        window = "15m"
        [[rate_limit.scopes]]
        name = "b"
        limit = 100
        window = "1m"
    "#;

    #[test]
    fn valid_toml_and_json_load_the_same() {
        let toml_doc = parse_policy::<Doc>(VALID).unwrap();
        let json_doc = parse_policy::<Doc>(
            r#"{"rate_limit":{"scopes":[{"name":"a","limit":5,"window":"15m"},
                {"name":"b","limit":100,"window":"1m"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            toml_doc.rate_limit.scopes[0].window.0,
            Duration::from_secs(900)
        );
        assert_eq!(json_doc.rate_limit.scopes[1].limit, 100);
    }

    #[test]
    fn rule_errors_name_path_and_value() {
        let text = VALID.replace("window = \"1m\"", "window = \"0s\"");
        let text =
            format!("{text}\n[[rate_limit.scopes]]\nname = \"\"\nlimit = 0\nwindow = \"0s\"\n");
        let err = parse_policy::<Doc>(&text).unwrap_err().to_string();
        assert_eq!(
            err,
            "policy: rate_limit.scopes[1].window: \"0s\" must be > 0; \
             rate_limit.scopes[2].limit: 0 must be > 0; \
             rate_limit.scopes[2].window: \"0s\" must be > 0; \
             rate_limit.scopes[2].name: \"\" must not be empty"
        );
    }

    #[test]
    fn type_errors_name_the_path() {
        let err = parse_policy::<Doc>(&VALID.replace("limit = 5", "limit = \"five\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("policy: rate_limit.scopes[0].limit: "),
            "{err}"
        );
        assert!(err.contains("five"), "{err}");
        let err = parse_policy::<Doc>(&VALID.replace("\"15m\"", "\"soon\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rate_limit.scopes[0].window"), "{err}");
        assert!(err.contains("\"soon\" is not a duration"), "{err}");
        let err = parse_policy::<Doc>(r#"{"rate_limit": {"scopes": [{"name": "a"}]}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rate_limit.scopes[0]: missing field `limit`"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_are_one_line() {
        let err = parse_policy::<Doc>("[rate_limit\nscopes = 1")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("policy: invalid TOML"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn secrets_never_print() {
        let config = Config::new(VALID.replace("\"a\"", "\"hunter2-secret\""))
            .with_secret("ADMIN", "hunter2-secret")
            .with_var("FLAG", "hunter2-secret");
        assert_eq!(
            format!("{:?}", config.secret("ADMIN").unwrap()),
            "Secret([REDACTED])"
        );
        assert!(!format!("{config:?}").contains("hunter2"));
        let err = config.var_bool("FLAG", false).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("[REDACTED]"), "{err}");
        // A policy that breaks a rule with the secret as the value.
        let config = Config::new(VALID.replace("name = \"a\"", "name = 7"))
            .with_secret("ADMIN", "7777")
            .with_var(
                POLICY_VARIABLE,
                VALID.replace("limit = 5", "limit = \"7777\""),
            );
        let err = config.policy::<Doc>().unwrap_err().to_string();
        assert!(!err.contains("7777"), "{err}");
    }

    #[test]
    fn policy_variable_replaces_the_default() {
        let config = Config::new("not toml at all [").with_var(POLICY_VARIABLE, VALID);
        assert_eq!(config.policy::<Doc>().unwrap().rate_limit.scopes.len(), 2);
        let config = Config::new(VALID).with_var(POLICY_VARIABLE, "  ");
        assert!(config.policy::<Doc>().is_ok());
    }

    #[test]
    fn missing_secret_names_field_and_secret() {
        let err = Config::new("")
            .require_secret("counter.admin_token_secret", "COUNTER_ADMIN_TOKEN")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "counter.admin_token_secret: secret \"COUNTER_ADMIN_TOKEN\" is not set"
        );
    }

    #[test]
    fn outbound_urls_are_checked_against_the_allowed_hosts() {
        let urls = [
            ("gateway.origin", "https://api.example.com/v1"),
            ("gateway.routes[2].origin", "https://x.example:8443"),
            (
                "metrics.webhook",
                "https://u:hunter2@alerts.example/hook?k=1",
            ),
        ];
        // No allow-list (Workers, browsers): everything passes.
        assert_eq!(Config::new("").check_outbound(urls), Ok(()));
        let config = Config::new("").with_allowed_outbound_hosts("https://api.example.com");
        let err = config.check_outbound(urls).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gateway.routes[2].origin: https://x.example:8443 is not in this component's \
             allowed_outbound_hosts (https://api.example.com); add it to spin.toml; \
             metrics.webhook: https://alerts.example is not in this component's \
             allowed_outbound_hosts (https://api.example.com); add it to spin.toml"
        );
        let config = Config::new("").with_allowed_outbound_hosts(
            "https://api.example.com, https://x.example:8443,https://*.example",
        );
        assert_eq!(config.check_outbound(urls), Ok(()));
        // An empty list allows nothing.
        let err = Config::new("")
            .with_allowed_outbound_hosts("")
            .check_outbound([("anonymize.origin", "http://127.0.0.1:9000")])
            .unwrap_err();
        assert!(
            err.to_string().contains("allowed_outbound_hosts (none)"),
            "{err}"
        );
        // A typed list does the same; clones keep it.
        let hosts = AllowedHosts::parse(&["http://127.0.0.1:*"]).unwrap();
        let config = Config::new("").with_allowed_hosts(hosts.clone()).clone();
        assert_eq!(config.allowed_hosts(), Ok(Some(&hosts)));
        assert_eq!(
            config.check_outbound([("anonymize.origin", "http://127.0.0.1:9000")]),
            Ok(())
        );
    }

    #[test]
    fn a_malformed_allowed_hosts_variable_names_itself() {
        let config = Config::new("").with_allowed_outbound_hosts("api.example.com");
        let err = config
            .check_outbound(std::iter::empty::<(String, String)>())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("variable allowed_outbound_hosts: \"api.example.com\" must list"),
            "{err}"
        );
        assert!(err.contains("has no scheme"), "{err}");
    }

    #[test]
    fn secret_comparison() {
        let s = Secret::new("token-123");
        assert!(s.matches(b"token-123"));
        assert!(!s.matches(b"token-124"));
        assert!(!s.matches(b"token-12"));
    }
}
