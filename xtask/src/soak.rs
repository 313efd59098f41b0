//! `cargo xtask soak [--minutes N] [--target workers|spin] [--clients N]`:
//! the gateway's whole pipeline held under load for N minutes (5 by
//! default) on its Workers build under `wrangler dev` and on its Spin build
//! in `edge-host` with the key-value store on Redis, each in front of a
//! local origin, loopback only. `gateway-bench soak` (`bench/gateway`)
//! drives it and prints a table per runtime: requests, rate, p50/p99 and
//! errors per window, the servers' resident memory, and whether anything
//! was lost; the tables are kept in `target/bench-results/soak/`.

use anyhow::{Context as _, Result, bail};
use edge_registry::Registry;

use crate::util::{cmd, root, run, target_dir};

const USAGE: &str =
    "usage: cargo xtask soak [--minutes N (5)] [--target workers|spin (both)] [--clients N (16)]";

pub(crate) fn run_soak(registry: &Registry, args: &[String]) -> Result<()> {
    let (mut minutes, mut clients) = ("5".to_owned(), "16".to_owned());
    let mut targets = vec!["workers", "spin"];
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--minutes" => minutes.clone_from(value),
            "--clients" => clients.clone_from(value),
            "--target" if value == "workers" || value == "spin" => {
                targets.retain(|t| t == value);
            }
            _ => bail!("unknown option {flag} {value}\n{USAGE}"),
        }
    }
    crate::install::all(crate::install::Needs::Build)?;
    crate::install::redis_server()?;
    run(cmd("cargo").args(["build", "--release", "-p", "gateway-bench"]))?;
    let program = target_dir().join("release/gateway-bench");
    let results = target_dir().join("bench-results/soak");
    std::fs::create_dir_all(&results)?;
    for target in targets {
        let mut soak = cmd(&program.to_string_lossy());
        soak.args([
            "soak",
            "--target",
            target,
            "--minutes",
            &minutes,
            "--clients",
            &clients,
        ]);
        if target == "workers" {
            crate::build::worker_unless_fresh(registry, "gateway")?;
            soak.arg("--wrangler")
                .arg(root().join("node_modules/.bin/wrangler"));
        } else {
            crate::build::spin(registry, &["gateway"])?;
            crate::dev::build_host()?;
            soak.arg("--edge-host")
                .arg(crate::dev::host_target().join("debug/edge-host"))
                .arg("--component")
                .arg(target_dir().join("edge/spin/gateway.wasm"))
                .args(["--redis-server", "/usr/bin/redis-server"]);
        }
        let output = soak
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", program.display()))?;
        let table = String::from_utf8_lossy(&output.stdout);
        print!("{table}");
        std::fs::write(results.join(format!("{target}.md")), table.as_bytes())?;
        if !output.status.success() {
            bail!("the soak on {target} failed ({})", output.status);
        }
    }
    Ok(())
}
