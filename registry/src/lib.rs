//! The list of functions: `functions.toml` at the workspace root, the one
//! place a function is registered. `xtask` builds, lints and serves what
//! it lists; `wasm-tests` checks the native runner, `wrangler.toml` and
//! `spin.toml` against it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

pub mod scaffold;

/// The parsed and validated `functions.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// What `cargo xtask dev` shares among the functions.
    pub dev: Dev,
    /// The functions, in the order builds and the dev banner take them.
    #[serde(rename = "function")]
    pub functions: Vec<Function>,
}

/// Local serving, shared by every function.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dev {
    /// The Spin host's port; each function is under `/NAME/`.
    pub spin_port: u16,
    /// The browser demo page's port.
    pub browser_port: u16,
    /// The secrets' local values (name → value), given to every function:
    /// each reads those in its `EdgeFunction::SECRETS`. On Spin, where
    /// they are application variables, the name is lower-cased.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// One function crate, `functions/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Function {
    /// The crate, directory, Workers environment and Spin component name.
    pub name: String,
    /// Where `cargo xtask dev` serves its Workers build.
    pub port: u16,
    /// Commands the dev banner suggests, over `{workers}` and `{spin}`.
    #[serde(default)]
    pub examples: Vec<String>,
    /// Built for each platform in a cargo invocation of its own: it depends
    /// on other function crates, whose platform entry points sit behind the
    /// same feature names and would be linked in with its own.
    #[serde(default)]
    pub own_build: bool,
    /// Its worker is `wrangler.toml`'s top level (`wrangler dev` without
    /// `--env`) rather than an `[env.NAME]`. One function at most.
    #[serde(default)]
    pub top_level_worker: bool,
}

/// The placeholders an example may use.
pub const PLACEHOLDERS: [&str; 2] = ["{workers}", "{spin}"];

impl Registry {
    /// The workspace root.
    pub fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".."))
    }

    /// `<root>/functions.toml`.
    pub fn path() -> PathBuf {
        Self::root().join("functions.toml")
    }

    /// Reads and validates `functions.toml`.
    pub fn load() -> Result<Self> {
        let path = Self::path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and validates a registry document.
    pub fn parse(text: &str) -> Result<Self> {
        let registry: Registry = toml::from_str(text)?;
        registry.validate()?;
        Ok(registry)
    }

    /// The function called `name`, or an error listing the known ones.
    pub fn get(&self, name: &str) -> Result<&Function> {
        self.functions
            .iter()
            .find(|f| f.name == name)
            .with_context(|| {
                format!(
                    "unknown function {name:?} (functions.toml has {})",
                    self.names().collect::<Vec<_>>().join(", ")
                )
            })
    }

    /// Every function's name, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().map(|f| f.name.as_str())
    }

    /// The cargo invocations that build `names` for a platform: one for
    /// all those built together, one for each with an `own_build`.
    pub fn build_groups<'a>(&self, names: &[&'a str]) -> Result<Vec<Vec<&'a str>>> {
        let mut together = Vec::new();
        let mut groups = Vec::new();
        for name in names {
            if self.get(name)?.own_build {
                groups.push(vec![*name]);
            } else {
                together.push(*name);
            }
        }
        if !together.is_empty() {
            groups.insert(0, together);
        }
        Ok(groups)
    }

    /// The directories under `functions/` with a `Cargo.toml` that are not
    /// registered, and the registered names without one.
    pub fn unmatched_crates(&self, root: &Path) -> Result<(Vec<String>, Vec<String>)> {
        let dir = root.join("functions");
        let mut crates = BTreeSet::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let entry = entry?;
            if entry.path().join("Cargo.toml").is_file() {
                crates.insert(entry.file_name().to_string_lossy().into_owned());
            }
        }
        let registered: BTreeSet<String> = self.names().map(str::to_owned).collect();
        Ok((
            crates.difference(&registered).cloned().collect(),
            registered.difference(&crates).cloned().collect(),
        ))
    }

    fn validate(&self) -> Result<()> {
        let mut names = BTreeSet::new();
        let mut ports = BTreeMap::from([
            (self.dev.spin_port, "the Spin host".to_owned()),
            (self.dev.browser_port, "the browser page".to_owned()),
        ]);
        if ports.len() < 2 {
            bail!(
                "dev.spin_port and dev.browser_port are both {}",
                self.dev.spin_port
            );
        }
        check_secret_names("dev.secrets", self.dev.secrets.keys())?;
        let top_level: Vec<&str> = self
            .functions
            .iter()
            .filter(|f| f.top_level_worker)
            .map(|f| f.name.as_str())
            .collect();
        if top_level.len() > 1 {
            bail!("only one function can be the top-level worker, not {top_level:?}");
        }
        for function in &self.functions {
            let name = &function.name;
            if !is_kebab(name) {
                bail!("function name {name:?} must be lower-case kebab-case (a crate name)");
            }
            if !names.insert(name.as_str()) {
                bail!("function {name:?} is listed twice");
            }
            if let Some(taken) = ports.insert(function.port, format!("function {name:?}")) {
                bail!("{name}: port {} is already {taken}'s", function.port);
            }
            for example in &function.examples {
                if let Some(unknown) = unknown_placeholder(example) {
                    bail!(
                        "{name}.examples: unknown placeholder {unknown} in {example:?} (known: {})",
                        PLACEHOLDERS.join(", ")
                    );
                }
            }
        }
        Ok(())
    }
}

impl Function {
    /// An example with its placeholders filled in.
    pub fn example(&self, example: &str, workers: &str, spin: &str) -> String {
        example
            .replace("{workers}", workers)
            .replace("{spin}", spin)
    }
}

fn is_kebab(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_secret_names<'a>(what: &str, names: impl Iterator<Item = &'a String>) -> Result<()> {
    for name in names {
        let upper_snake = name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !upper_snake {
            bail!("{what}: {name:?} is not a platform secret name (UPPER_SNAKE_CASE)");
        }
    }
    Ok(())
}

/// The first `{word}` (lower-case letters only) that is not a placeholder.
fn unknown_placeholder(example: &str) -> Option<&str> {
    let mut rest = example;
    while let Some(start) = rest.find('{') {
        let candidate = &rest[start..];
        if let Some(end) = candidate.find('}') {
            let token = &candidate[..=end];
            let word = &token[1..token.len() - 1];
            if !word.is_empty()
                && word.chars().all(|c| c.is_ascii_lowercase())
                && !PLACEHOLDERS.contains(&token)
            {
                return Some(token);
            }
        }
        rest = &candidate[1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [dev]
        spin_port = 3000
        browser_port = 8080
        secrets = { ONE_TOKEN = "dev-one" }

        [[function]]
        name = "one"
        port = 8787
        examples = ["curl {workers}/x -w '%{http_code}' -d '{\"a\":1}'", "curl {spin}/y"]

        [[function]]
        name = "two"
        port = 8788

        [[function]]
        name = "both"
        port = 8789
        own_build = true
        top_level_worker = true
    "#;

    #[test]
    fn the_workspace_registry_is_valid_and_matches_functions_dir() {
        let registry = Registry::load().unwrap();
        assert!(registry.names().any(|n| n == "counter"));
        let (unregistered, missing) = registry.unmatched_crates(&Registry::root()).unwrap();
        assert!(
            unregistered.is_empty(),
            "not in functions.toml: {unregistered:?}"
        );
        assert!(missing.is_empty(), "no crate in functions/: {missing:?}");
    }

    #[test]
    fn a_minimal_registry_parses_in_order() {
        let registry = Registry::parse(MINIMAL).unwrap();
        assert_eq!(registry.names().collect::<Vec<_>>(), ["one", "two", "both"]);
        assert_eq!(
            registry.build_groups(&["both", "one", "two"]).unwrap(),
            [vec!["one", "two"], vec!["both"]]
        );
        assert_eq!(registry.build_groups(&["both"]).unwrap(), [vec!["both"]]);
        let one = registry.get("one").unwrap();
        assert_eq!(registry.dev.secrets["ONE_TOKEN"], "dev-one");
        assert_eq!(
            one.example(&one.examples[1], "http://w", "http://s/one"),
            "curl http://s/one/y"
        );
        assert!(registry.get("three").is_err());
    }

    fn error(text: &str) -> String {
        format!("{:#}", Registry::parse(text).unwrap_err())
    }

    #[test]
    fn mistakes_are_refused_by_name() {
        let duplicate = format!("{MINIMAL}\n[[function]]\nname = \"one\"\nport = 8790\n");
        assert!(error(&duplicate).contains("listed twice"));
        let port = format!("{MINIMAL}\n[[function]]\nname = \"three\"\nport = 8788\n");
        assert!(error(&port).contains("port 8788 is already function \"two\"'s"));
        let spin_port = format!("{MINIMAL}\n[[function]]\nname = \"three\"\nport = 3000\n");
        assert!(error(&spin_port).contains("the Spin host"));
        let name = format!("{MINIMAL}\n[[function]]\nname = \"Three\"\nport = 8790\n");
        assert!(error(&name).contains("kebab-case"));
        let placeholder = MINIMAL.replace("{spin}/y", "{spn}/y");
        assert!(error(&placeholder).contains("unknown placeholder {spn}"));
        let secret = MINIMAL.replace("ONE_TOKEN", "one_token");
        assert!(error(&secret).contains("UPPER_SNAKE_CASE"));
        let two_top = MINIMAL.replace("port = 8788\n", "port = 8788\ntop_level_worker = true\n");
        assert!(error(&two_top).contains("only one function can be the top-level worker"));
        let typo = MINIMAL.replace("examples", "exmaples");
        assert!(error(&typo).contains("exmaples"));
    }
}
