//! Reads a Spin application manifest (`spin.toml`, version 2) the way Spin
//! does for what this host supports: HTTP triggers (`route` →
//! `component`), each component's `source`, its `allowed_outbound_hosts`
//! (entries may be templates over application variables, as in Spin), and
//! variables — application variables with `default` / `required` /
//! `secret`, and component variables that are templates over them
//! (`"{{ name }}"`).
//!
//! Application variable values come, in order, from explicit overrides
//! (`edge-host --var`), the environment (`SPIN_VARIABLE_<NAME>`, Spin's own
//! provider) and the declared default. A required variable with no value
//! is an error naming it; a secret's value never appears in an error.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use super::outbound::AllowedHosts;

/// One component to serve: its route prefix, its `.wasm` and its resolved
/// component variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentApp {
    /// The component's id in the manifest.
    pub id: String,
    /// The route prefix, e.g. `/counter` for `route = "/counter/..."`.
    pub route: String,
    /// The component's `.wasm`, relative paths resolved against the manifest.
    pub source: PathBuf,
    /// The component's variables, templates resolved.
    pub variables: HashMap<String, String>,
    /// The hosts the component may reach, templates resolved.
    pub allowed_outbound_hosts: AllowedHosts,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    spin_manifest_version: u32,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: Triggers,
    #[serde(default)]
    component: BTreeMap<String, Component>,
}

#[derive(Debug, Default, Deserialize)]
struct VariableDecl {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Debug, Default, Deserialize)]
struct Triggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
}

#[derive(Debug, Deserialize)]
struct HttpTrigger {
    route: String,
    component: String,
}

#[derive(Debug, Deserialize)]
struct Component {
    source: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
}

/// Reads `path` and resolves every HTTP component.
pub fn load(path: &Path, overrides: &HashMap<String, String>) -> Result<Vec<ComponentApp>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let env: HashMap<String, String> = std::env::vars()
        .filter_map(|(k, v)| Some((k.strip_prefix("SPIN_VARIABLE_")?.to_ascii_lowercase(), v)))
        .collect();
    resolve(&text, base, overrides, &env).with_context(|| format!("in {}", path.display()))
}

fn resolve(
    text: &str,
    base: &Path,
    overrides: &HashMap<String, String>,
    env: &HashMap<String, String>,
) -> Result<Vec<ComponentApp>> {
    let manifest: Manifest = toml::from_str(text)?;
    if manifest.spin_manifest_version != 2 {
        bail!(
            "spin_manifest_version = {} is not supported (only 2)",
            manifest.spin_manifest_version
        );
    }
    let mut values = HashMap::new();
    for (name, decl) in &manifest.variables {
        let value = overrides
            .get(name)
            .or_else(|| env.get(name))
            .cloned()
            .or_else(|| decl.default.clone());
        match value {
            Some(value) => {
                values.insert(name.clone(), value);
            }
            None if decl.required => bail!(
                "variable {name:?} is required: pass --var {name}=… or set SPIN_VARIABLE_{}{}",
                name.to_ascii_uppercase(),
                if decl.secret { " (a secret)" } else { "" }
            ),
            None => {}
        }
    }
    manifest
        .trigger
        .http
        .iter()
        .map(|trigger| {
            let component = manifest
                .component
                .get(&trigger.component)
                .with_context(|| {
                    format!(
                        "trigger {:?} names component {:?}, which is not declared",
                        trigger.route, trigger.component
                    )
                })?;
            let variables = component
                .variables
                .iter()
                .map(|(name, template)| Ok((name.clone(), expand(template, &values)?)))
                .collect::<Result<_>>()
                .with_context(|| format!("component {:?}", trigger.component))?;
            let hosts = component
                .allowed_outbound_hosts
                .iter()
                .map(|entry| expand(entry, &values))
                .collect::<Result<Vec<_>>>()
                .and_then(|hosts| AllowedHosts::parse(&hosts))
                .with_context(|| {
                    format!("component {:?}: allowed_outbound_hosts", trigger.component)
                })?;
            Ok(ComponentApp {
                id: trigger.component.clone(),
                route: trigger
                    .route
                    .trim_end_matches("/...")
                    .trim_end_matches('/')
                    .to_owned(),
                source: base.join(&component.source),
                variables,
                allowed_outbound_hosts: hosts,
            })
        })
        .collect()
}

/// Expands `{{ name }}` references to application variables.
fn expand(template: &str, values: &HashMap<String, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .with_context(|| format!("unclosed {{{{ in {template:?}"))?;
        let name = after[..end].trim();
        let value = values
            .get(name)
            .with_context(|| format!("template refers to variable {name:?}, which has no value"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_manifest() -> String {
        std::fs::read_to_string(crate::workspace_root().join("spin.toml")).unwrap()
    }

    /// Values for every required secret of the project's manifest.
    fn all_secrets(counter_token: &str) -> HashMap<String, String> {
        [
            ("counter_admin_token", counter_token),
            ("rate_limit_hash_key", "h"),
            ("rate_limit_admin_token", "a"),
            ("auth_api_key_hash_key", "k"),
            ("auth_admin_token", "t"),
            ("gdpr_anonymization_salt", "s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn the_project_manifest_resolves() {
        let overrides = all_secrets("s3cret");
        let apps = resolve(
            &project_manifest(),
            Path::new("/repo"),
            &overrides,
            &HashMap::new(),
        )
        .unwrap();
        let counter = apps.iter().find(|a| a.id == "counter").unwrap();
        assert_eq!(counter.route, "/counter");
        assert_eq!(
            counter.source,
            Path::new("/repo/target/edge/spin/counter.wasm")
        );
        assert_eq!(counter.variables["counter_admin_token"], "s3cret");
        assert_eq!(counter.variables["policy"], "");
        let limiter = apps.iter().find(|a| a.id == "rate-limit").unwrap();
        assert_eq!(limiter.route, "/rate-limit");
        assert_eq!(limiter.variables["rate_limit_hash_key"], "h");
        let auth = apps.iter().find(|a| a.id == "auth-check").unwrap();
        assert_eq!(auth.route, "/auth-check");
        assert_eq!(auth.variables["auth_admin_token"], "t");
    }

    #[test]
    fn a_missing_required_secret_is_named_and_env_fills_it() {
        let mut others = all_secrets("unused");
        others.remove("counter_admin_token");
        let err = resolve(
            &project_manifest(),
            Path::new("."),
            &others,
            &HashMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"counter_admin_token\" is required"), "{err}");
        assert!(err.contains("SPIN_VARIABLE_COUNTER_ADMIN_TOKEN"), "{err}");
        let env = all_secrets("from-env");
        let apps = resolve(&project_manifest(), Path::new("."), &HashMap::new(), &env).unwrap();
        assert_eq!(apps[0].variables["counter_admin_token"], "from-env");
    }

    #[test]
    fn allowed_outbound_hosts_are_parsed_with_templates() {
        let manifest = r#"
            spin_manifest_version = 2
            [application]
            name = "t"
            [variables]
            idp = { default = "http://127.0.0.1:9000" }
            [[trigger.http]]
            route = "/a/..."
            component = "a"
            [[trigger.http]]
            route = "/b/..."
            component = "b"
            [component.a]
            source = "a.wasm"
            allowed_outbound_hosts = ["{{ idp }}", "https://*.example.com"]
            [component.b]
            source = "b.wasm"
        "#;
        let allows = |app: &ComponentApp, url: &str| {
            app.allowed_outbound_hosts.allows(&url.parse().unwrap())
        };
        let apps = resolve(manifest, Path::new("."), &HashMap::new(), &HashMap::new()).unwrap();
        assert!(allows(&apps[0], "http://127.0.0.1:9000/jwks"));
        assert!(allows(&apps[0], "https://login.example.com/"));
        assert!(!allows(&apps[0], "http://127.0.0.1:9001/jwks"));
        assert!(apps[1].allowed_outbound_hosts.is_empty());

        let overrides = [("idp".to_owned(), "http://127.0.0.1:*".to_owned())].into();
        let apps = resolve(manifest, Path::new("."), &overrides, &HashMap::new()).unwrap();
        assert!(allows(&apps[0], "http://127.0.0.1:9001/jwks"));

        let bad = [("idp".to_owned(), "127.0.0.1:9000".to_owned())].into();
        let err = resolve(manifest, Path::new("."), &bad, &HashMap::new()).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("allowed_outbound_hosts") && err.contains("no scheme"),
            "{err}"
        );
    }

    #[test]
    fn templates_expand_and_unknown_names_fail() {
        let values = [("a".to_owned(), "1".to_owned())].into();
        assert_eq!(expand("x{{ a }}y{{a}}", &values).unwrap(), "x1y1");
        assert!(expand("{{ b }}", &values).is_err());
        assert!(expand("{{ a ", &values).is_err());
    }
}
