//! `cargo xtask sync`'s second step: a first `wrangler.toml` environment
//! and `spin.toml` component for every registered function the manifests
//! lack. A binary of this crate because only the function crates know
//! their variables and secrets, and this crate links them all.

use anyhow::{Context as _, Result};
use edge_registry::Registry;
use edge_registry::scaffold::{self, Declared};
use wasm_tests::native::FUNCTIONS;

fn main() -> Result<()> {
    let registry = Registry::load()?;
    let root = Registry::root();
    let wrangler_path = root.join("wrangler.toml");
    let spin_path = root.join("spin.toml");
    let mut wrangler = std::fs::read_to_string(&wrangler_path).context("wrangler.toml")?;
    let mut spin = std::fs::read_to_string(&spin_path).context("spin.toml")?;
    let mut added = Vec::new();
    for registration in FUNCTIONS {
        let function = registry.get(registration.name)?;
        let secrets = registration.secrets_read();
        let declared = Declared {
            name: registration.name,
            variables: registration.variables,
            secrets: &secrets,
        };
        if !function.top_level_worker
            && let Some(text) = scaffold::add_worker(&wrangler, &declared)?
        {
            wrangler = text;
            added.push(format!("wrangler.toml: [env.{}]", declared.name));
        }
        if let Some(text) = scaffold::add_component(&spin, &declared)? {
            spin = text;
            added.push(format!("spin.toml: [component.{}]", declared.name));
        }
    }
    if added.is_empty() {
        eprintln!("sync-manifests: wrangler.toml and spin.toml have every function");
        return Ok(());
    }
    std::fs::write(&wrangler_path, wrangler).context("wrangler.toml")?;
    std::fs::write(&spin_path, spin).context("spin.toml")?;
    for line in added {
        eprintln!("sync-manifests: added {line}");
    }
    Ok(())
}
