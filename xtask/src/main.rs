//! `cargo xtask`: the project's two commands and the steps behind them.
//!
//! - `cargo xtask dev`: installs what is missing, builds every function for
//!   every platform and serves them locally (Workers builds under
//!   `wrangler dev`, Spin builds under the project's wasmtime host).
//! - `cargo xtask test`: installs the same, then lints, builds and runs every
//!   test, the conformance suite on all four runtimes included.
//!
//! Other subcommands are the steps: `install`, `build`, `build-worker NAME`,
//! `sizes`, and `bench rate-limit|auth-check|anonymize|spatial-query|metrics` (the benchmark tables).

mod bench;
mod build;
mod install;
mod util;

use std::process::ExitCode;

use anyhow::{Result, bail};

/// The functions in `functions/`, each built for every platform.
pub(crate) const FUNCTIONS: &[Function] = &[
    Function {
        name: "counter",
        dev_secrets: &[("COUNTER_ADMIN_TOKEN", "dev-admin-token")],
    },
    Function {
        name: "rate-limit",
        dev_secrets: &[
            ("RATE_LIMIT_HASH_KEY", "dev-hash-key"),
            ("RATE_LIMIT_ADMIN_TOKEN", "dev-admin-token"),
        ],
    },
    Function {
        name: "auth-check",
        dev_secrets: &[
            ("AUTH_API_KEY_HASH_KEY", "dev-api-key-hash-key"),
            ("AUTH_ADMIN_TOKEN", "dev-admin-token"),
        ],
    },
    Function {
        name: "anonymize",
        dev_secrets: &[
            ("GDPR_ANONYMIZATION_SALT", "dev-anonymization-salt"),
            ("GDPR_ANONYMIZATION_KEY", "dev-anonymization-key-0123456789"),
            ("ANONYMIZE_ADMIN_TOKEN", "dev-admin-token"),
        ],
    },
    Function {
        name: "spatial-query",
        dev_secrets: &[("SPATIAL_ADMIN_TOKEN", "dev-admin-token")],
    },
    Function {
        name: "metrics",
        dev_secrets: &[("METRICS_ADMIN_TOKEN", "dev-admin-token")],
    },
];

/// The secret every worker flushes its metrics with (and the metrics
/// worker checks), given to all of them locally.
pub(crate) const METRICS_INGEST_DEV_SECRET: (&str, &str) =
    ("METRICS_INGEST_TOKEN", "dev-ingest-token");

/// One function crate.
pub(crate) struct Function {
    /// The crate (and directory) name.
    pub(crate) name: &'static str,
    /// The secrets `cargo xtask dev` gives it locally (Workers names; the
    /// Spin variable is the lower-cased name).
    pub(crate) dev_secrets: &'static [(&'static str, &'static str)],
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let started = std::time::Instant::now();
    match args.first().map(String::as_str) {
        Some("install") => install::all(install::Needs::Test),
        Some("build") => {
            install::all(install::Needs::Build)?;
            build::all()?;
            build::sizes()
        }
        Some("build-worker") => match args.get(1) {
            Some(name) => build::worker_unless_fresh(name),
            None => bail!("usage: cargo xtask build-worker NAME"),
        },
        Some("sizes") => build::sizes(),
        Some("bench") => bench::run(&args[1..]),
        Some("dev") => {
            install::all(install::Needs::Build)?;
            build::all()?;
            build::sizes()?;
            build::dev()
        }
        Some("test") => {
            install::all(install::Needs::Test)?;
            build::test(started)
        }
        _ => bail!(
            "usage: cargo xtask <dev|test|bench rate-limit|metrics|install|build|build-worker NAME|sizes>\n\
             dev   builds every function for every platform and serves them on 127.0.0.1\n\
             test  lints, builds and runs every test (the conformance suite on all runtimes)"
        ),
    }
}
