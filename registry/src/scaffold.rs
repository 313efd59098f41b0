//! What `cargo xtask sync` writes, so that adding a function is its folder
//! and one `functions.toml` entry: the generated lists in
//! `wasm-tests/Cargo.toml` and `wasm-tests/src/native.rs` (rewritten from
//! the registry every time), and a first `wrangler.toml` environment and
//! `spin.toml` component for a function the manifests do not have yet
//! (added once; from then on they are the user's to annotate, and
//! wasm-tests' registry test holds them to the registry).
//!
//! Text in, text out: no file access here, so the tests can run it on
//! manifests in memory.

use anyhow::{Context as _, Result, bail};

use crate::Registry;

/// What a function declares (its `EdgeFunction`'s `VARIABLES` and
/// `SECRETS`), which only the crate itself knows.
#[derive(Debug, Clone, Copy)]
pub struct Declared<'a> {
    /// The registry name.
    pub name: &'a str,
    /// Platform variables beside `POLICY`.
    pub variables: &'a [&'a str],
    /// Platform secrets.
    pub secrets: &'a [&'a str],
}

/// The comment that opens a generated list; what lies between it and
/// [`END`] belongs to `cargo xtask sync`.
pub const BEGIN: &str = "BEGIN generated from functions.toml by `cargo xtask sync`";
/// The comment that closes a generated list.
pub const END: &str = "END generated from functions.toml";

/// The crate's library name: `rate-limit` → `rate_limit`.
pub fn crate_ident(name: &str) -> String {
    name.replace('-', "_")
}

/// The function's `EdgeFunction` type, by the convention every crate
/// follows: `rate-limit` → `rate_limit::RateLimit`.
pub fn edge_function_type(name: &str) -> String {
    let camel: String = name
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    format!("{}::{camel}", crate_ident(name))
}

/// `wasm-tests/Cargo.toml`'s dependency on every function crate.
pub fn cargo_dependencies(registry: &Registry) -> String {
    registry
        .names()
        .map(|name| format!("{name} = {{ path = \"../functions/{name}\" }}\n"))
        .collect()
}

/// `wasm-tests/src/native.rs`'s `functions!` invocation.
pub fn native_functions(registry: &Registry) -> String {
    let types: String = registry
        .names()
        .map(|name| format!("    {},\n", edge_function_type(name)))
        .collect();
    format!("functions![\n{types}];\n")
}

/// `text` with the lines between the `comment`-prefixed [`BEGIN`] and
/// [`END`] lines replaced by `body`.
pub fn replace_generated(text: &str, comment: &str, body: &str) -> Result<String> {
    let begin = format!("{comment} {BEGIN}\n");
    let end = format!("{comment} {END}\n");
    let start = text
        .find(&begin)
        .with_context(|| format!("no line {:?}", begin.trim_end()))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .with_context(|| format!("no line {:?} after the BEGIN line", end.trim_end()))?
        + start;
    Ok(format!("{}{body}{}", &text[..start], &text[stop..]))
}

/// The Spin application variable a platform variable of `function` reads:
/// its policy is `NAME_policy`, every other name lower-cased.
fn spin_variable(function: &str, variable: &str) -> String {
    if variable == "POLICY" {
        format!("{}_policy", crate_ident(function))
    } else {
        variable.to_ascii_lowercase()
    }
}

/// A `wrangler.toml` environment for a function without one: its build, its
/// variables (secrets come from `wrangler secret put`), the store and cache
/// the Workers glue opens, its metrics flushed to the metrics worker.
pub fn worker_environment(function: &Declared<'_>) -> String {
    let name = function.name;
    let vars: Vec<String> = std::iter::once("POLICY")
        .chain(function.variables.iter().copied())
        .map(|v| format!("{v} = \"\""))
        .collect();
    let secrets = if function.secrets.is_empty() {
        String::new()
    } else {
        format!("\n# Secrets: {}.", function.secrets.join(", "))
    };
    format!(
        "\n[env.{name}]\n\
         name = \"edge-{name}\"\n\
         main = \"functions/{name}/build/index.js\"\n\
         build = {{ command = \"cargo xtask build-worker {name}\" }}\n\
         # The policy is built in (functions/{name}/policy.toml); set POLICY to replace it.{secrets}\n\
         vars = {{ {vars} }}\n\
         durable_objects.bindings = [{{ name = \"EDGE_STORE\", class_name = \"EdgeStore\" }}]\n\
         kv_namespaces = [{{ binding = \"EDGE_CACHE\", id = \"edge-{name}-cache\" }}]\n\
         # Request metrics flush to the metrics worker (secret METRICS_INGEST_TOKEN),\n\
         # every METRICS_FLUSH_EVERY records (var, default 1000), each minute and on the cron.\n\
         services = [{{ binding = \"METRICS\", service = \"edge-metrics\" }}]\n\
         triggers = {{ crons = [\"* * * * *\"] }}\n\
         \n\
         [[env.{name}.migrations]]\n\
         tag = \"v1\"\n\
         new_sqlite_classes = [\"EdgeStore\"]\n",
        vars = vars.join(", "),
    )
}

/// `wrangler` with an environment for `function` appended, unless it has
/// one (or the function is the top-level worker, which is written by hand).
pub fn add_worker(wrangler: &str, function: &Declared<'_>) -> Result<Option<String>> {
    let parsed: toml::Table = wrangler.parse().context("wrangler.toml")?;
    let has = parsed
        .get("env")
        .and_then(|envs| envs.get(function.name))
        .is_some();
    if has {
        return Ok(None);
    }
    let mut text = wrangler.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&worker_environment(function));
    Ok(Some(text))
}

/// `spin` with a component, its route and its application variables added
/// for `function`, unless it has the component. Variables another
/// component already declared (a shared secret) are reused.
pub fn add_component(spin: &str, function: &Declared<'_>) -> Result<Option<String>> {
    let parsed: toml::Table = spin.parse().context("spin.toml")?;
    let name = function.name;
    if parsed.get("component").and_then(|c| c.get(name)).is_some() {
        return Ok(None);
    }
    let declared = parsed.get("variables").and_then(toml::Value::as_table);
    let reads: Vec<(String, String, bool)> = std::iter::once(("POLICY", false))
        .chain(function.variables.iter().map(|v| (*v, false)))
        .chain(function.secrets.iter().map(|s| (*s, true)))
        .map(|(v, secret)| (v.to_ascii_lowercase(), spin_variable(name, v), secret))
        .collect();
    let new_variables: String = reads
        .iter()
        .filter(|(_, app, _)| !declared.is_some_and(|d| d.contains_key(app)))
        .map(|(_, app, secret)| {
            let secret = if *secret { ", secret = true" } else { "" };
            format!("{app} = {{ default = \"\"{secret} }}\n")
        })
        .collect();
    let component_variables: String = reads
        .iter()
        .map(|(own, app, _)| format!("{own} = \"{{{{ {app} }}}}\"\n"))
        .collect();
    // [variables] is a table: its new keys go before the first table that
    // follows it; triggers and components may come anywhere after.
    let Some(variables_at) = spin.find("\n[variables]\n") else {
        bail!("spin.toml has no [variables] table");
    };
    let after = variables_at + "\n[variables]\n".len();
    let mut insert_at = spin[after..]
        .find("\n[")
        .map_or(spin.len(), |i| after + i + 1);
    // After the last declaration, before the blank lines that end it.
    while insert_at > after && spin[..insert_at].ends_with("\n\n") {
        insert_at -= 1;
    }
    let mut text = format!(
        "{}{new_variables}{}",
        &spin[..insert_at],
        &spin[insert_at..]
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "\n[[trigger.http]]\n\
         route = \"/{name}/...\"\n\
         component = \"{name}\"\n\
         \n\
         [component.{name}]\n\
         source = \"target/edge/spin/{name}.wasm\"\n\
         key_value_stores = [\"default\"]\n\
         allowed_outbound_hosts = []\n\
         \n\
         [component.{name}.variables]\n\
         {component_variables}\
         \n\
         [component.{name}.build]\n\
         command = \"cargo xtask build-spin {name}\"\n\
         watch = [\"functions/{name}/**/*.rs\", \"shared/src/**/*.rs\", \"platform/spin/src/**/*.rs\"]\n"
    ));
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: Declared<'static> = Declared {
        name: "echo-back",
        variables: &["ECHO_MODE"],
        secrets: &["ECHO_TOKEN", "SHARED_TOKEN"],
    };

    #[test]
    fn type_names_follow_the_crate_names() {
        assert_eq!(edge_function_type("counter"), "counter::Counter");
        assert_eq!(
            edge_function_type("spatial-query"),
            "spatial_query::SpatialQuery"
        );
    }

    #[test]
    fn a_generated_list_is_replaced_and_the_rest_kept() {
        let text = format!("a\n# {BEGIN}\nold\n# {END}\nb\n");
        let new = replace_generated(&text, "#", "new\n").unwrap();
        assert_eq!(new, format!("a\n# {BEGIN}\nnew\n# {END}\nb\n"));
        assert!(replace_generated("a\n", "#", "x").is_err());
        let unclosed = format!("# {BEGIN}\nold\n");
        assert!(replace_generated(&unclosed, "#", "x").is_err());
    }

    #[test]
    fn a_new_worker_is_appended_once() {
        let wrangler = "name = \"top\"\n\n[env.other]\nname = \"edge-other\"\n";
        let added = add_worker(wrangler, &ECHO).unwrap().unwrap();
        let parsed: toml::Table = added.parse().unwrap();
        let env = &parsed["env"]["echo-back"];
        assert_eq!(env["name"].as_str(), Some("edge-echo-back"));
        let vars = env["vars"].as_table().unwrap();
        assert!(vars.contains_key("POLICY") && vars.contains_key("ECHO_MODE"));
        assert!(!vars.contains_key("ECHO_TOKEN"), "secrets are not vars");
        assert!(add_worker(&added, &ECHO).unwrap().is_none());
    }

    #[test]
    fn a_new_component_declares_its_variables_once_and_reuses_shared_ones() {
        let spin = "spin_manifest_version = 2\n\n[variables]\n\
                    shared_token = { required = true, secret = true }\n\n\
                    [[trigger.http]]\nroute = \"/other/...\"\ncomponent = \"other\"\n\n\
                    [component.other]\nsource = \"x\"\n";
        let added = add_component(spin, &ECHO).unwrap().unwrap();
        assert!(
            added.contains("secret = true }\necho_back_policy = { default = \"\" }\n"),
            "new declarations follow the last one: {added}"
        );
        assert!(added.contains("= true }\n\n[[trigger.http]]"), "{added}");
        let parsed: toml::Table = added.parse().unwrap();
        let variables = parsed["variables"].as_table().unwrap();
        assert_eq!(variables["echo_back_policy"]["default"].as_str(), Some(""));
        assert_eq!(variables["echo_token"]["secret"].as_bool(), Some(true));
        assert_eq!(
            variables["shared_token"]["required"].as_bool(),
            Some(true),
            "an existing declaration is kept"
        );
        let component = &parsed["component"]["echo-back"];
        assert_eq!(
            component["variables"]["policy"].as_str(),
            Some("{{ echo_back_policy }}")
        );
        assert_eq!(
            component["variables"]["echo_mode"].as_str(),
            Some("{{ echo_mode }}")
        );
        let routes = parsed["trigger"]["http"].as_array().unwrap();
        assert!(
            routes
                .iter()
                .any(|r| r["route"].as_str() == Some("/echo-back/..."))
        );
        assert!(add_component(&added, &ECHO).unwrap().is_none());
    }
}
