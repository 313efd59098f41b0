//! `gateway-bench`: the gateway's pipeline against pass-through.
//!
//! ```text
//! gateway-bench run [--runtime native|wasm] [--rounds N] [--seconds F] [--only ID,ID]
//!                   [--schedstat PATH]
//! gateway-bench live [--wrangler PATH] [--clients N] [--seconds F] [--rounds N] [--warmup F]
//! gateway-bench table --native REPORT.json --wasm REPORT.json [--live REPORT.json]
//! gateway-bench soak --target workers|spin [--minutes F] [--clients N] [--window F]
//!                    [--wrangler PATH] [--edge-host PATH] [--component PATH] [--redis-server PATH]
//! gateway-bench policy ORIGIN
//! gateway-bench token HS256|RS256 [SUB]
//! ```
//!
//! `run` times the in-process rows on this runtime (native, or wasm under
//! `bench-runner`) and prints a JSON report, with the thread's CPU time
//! from `--schedstat` (`/proc/thread-self/schedstat`; in wasm
//! `/thread/schedstat`, that directory preopened by the runner); `live` (native only) measures
//! through `wrangler dev` from the workspace root and prints a JSON report;
//! `table` prints the markdown tables; `soak` holds the pipeline under load
//! for minutes (see `soak`) and prints its table. `policy` and `token` print the
//! gateway's policy (JSON) for an origin and a token valid for an hour, to
//! repeat a measurement by hand (`wrangler dev --var POLICY:…`, curl).

use std::process::ExitCode;
use std::time::Duration;

use gateway_bench::inprocess::{self, ROWS};
use gateway_bench::tables;

const USAGE: &str = "usage: gateway-bench run [--runtime native|wasm] [--rounds N] [--seconds F] \
                     [--only ID,ID] [--schedstat PATH]\n       \
                     gateway-bench live [--wrangler PATH] [--clients N] [--seconds F] \
                     [--rounds N] [--warmup F]\n       \
                     gateway-bench table --native REPORT.json --wasm REPORT.json \
                     [--live REPORT.json]\n       \
                     gateway-bench soak --target workers|spin [--minutes F] [--clients N] \
                     [--window F] [--wrangler PATH] [--edge-host PATH] [--component PATH] \
                     [--redis-server PATH]\n       \
                     gateway-bench policy ORIGIN\n       \
                     gateway-bench token HS256|RS256 [SUB]";

fn main() -> ExitCode {
    bench_support::main("gateway-bench", dispatch)
}

fn dispatch(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("live") => live(&args[1..]),
        Some("table") => table(&args[1..]),
        Some("soak") => soak(&args[1..]),
        Some("policy") => policy(&args[1..]),
        Some("token") => token(&args[1..]),
        _ => Err(USAGE.to_owned()),
    }
}

fn run(args: &[String]) -> Result<(), String> {
    // `--schedstat PATH` is this program's own; the rest are the shared ones.
    let mut schedstat = if cfg!(target_family = "wasm") {
        "/thread/schedstat"
    } else {
        "/proc/thread-self/schedstat"
    }
    .to_owned();
    let mut shared = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--schedstat" {
            schedstat = rest
                .next()
                .ok_or_else(|| format!("--schedstat needs a value\n{USAGE}"))?
                .clone();
        } else {
            shared.push(arg.clone());
        }
    }
    let bench_support::RunOptions {
        runtime,
        rounds,
        seconds,
        only,
    } = bench_support::RunOptions::parse(&shared, USAGE, 0.2)?;
    if let Some(ids) = &only
        && let Some(unknown) = ids.iter().find(|id| !ROWS.iter().any(|(row, _)| row == id))
    {
        return Err(format!("--only: no row {unknown:?}\n{USAGE}"));
    }
    let round = Duration::from_secs_f64(seconds.max(0.001));
    let report = inprocess::run(&runtime, rounds, round, only.as_deref(), Some(&schedstat))?;
    eprintln!(
        "gateway-bench [{runtime}] RSA key generated in {:.2} s; CPU time from {}",
        report.rsa_keygen_s,
        report
            .schedstat
            .as_deref()
            .unwrap_or("nowhere (wall time only)")
    );
    for row in &report.rows {
        eprintln!(
            "gateway-bench [{runtime}] {:<15} {:>10} µs (best {}, worst {}; CPU {} µs, best {}; {} per round)",
            row.id,
            tables::micros(row.median_us),
            tables::micros(row.best_us),
            tables::micros(row.worst_us),
            row.cpu_median_us.map_or("–".to_owned(), tables::micros),
            row.cpu_best_us.map_or("–".to_owned(), tables::micros),
            row.per_round
        );
    }
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

#[cfg(not(target_family = "wasm"))]
fn live(args: &[String]) -> Result<(), String> {
    use bench_support::parse;
    let mut options = gateway_bench::live::LiveOptions {
        wrangler: "node_modules/.bin/wrangler".into(),
        clients: 16,
        seconds: 3.0,
        rounds: 5,
        warmup: 2.0,
    };
    for (flag, value) in bench_support::option_pairs(args, USAGE)? {
        match flag {
            "--wrangler" => options.wrangler = value.into(),
            "--clients" => options.clients = parse(flag, value)?,
            "--seconds" => options.seconds = parse(flag, value)?,
            "--rounds" => options.rounds = parse(flag, value)?,
            "--warmup" => options.warmup = parse(flag, value)?,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if options.clients == 0 || options.rounds == 0 {
        return Err(format!("--clients and --rounds must be positive\n{USAGE}"));
    }
    let report = gateway_bench::live::run(&options)?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

#[cfg(not(target_family = "wasm"))]
fn soak(args: &[String]) -> Result<(), String> {
    use bench_support::parse;
    use gateway_bench::soak::{SoakOptions, Target};
    let (mut target, mut minutes, mut clients, mut window) = (None, 5.0, 16, 30.0);
    let mut wrangler = std::path::PathBuf::from("node_modules/.bin/wrangler");
    let mut edge_host = std::path::PathBuf::from("target/host/debug/edge-host");
    let mut component = std::path::PathBuf::from("target/edge/spin/gateway.wasm");
    let mut redis_server = std::path::PathBuf::from("redis-server");
    for (flag, value) in bench_support::option_pairs(args, USAGE)? {
        match flag {
            "--target" => target = Some(value.to_owned()),
            "--minutes" => minutes = parse(flag, value)?,
            "--clients" => clients = parse(flag, value)?,
            "--window" => window = parse(flag, value)?,
            "--wrangler" => wrangler = value.into(),
            "--edge-host" => edge_host = value.into(),
            "--component" => component = value.into(),
            "--redis-server" => redis_server = value.into(),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    let target = match target.as_deref() {
        Some("workers") => Target::Workers { wrangler },
        Some("spin") => Target::Spin {
            edge_host,
            component,
            redis_server,
        },
        _ => return Err(format!("--target workers|spin is needed\n{USAGE}")),
    };
    if clients == 0 || !(minutes > 0.0 && window > 0.0) {
        return Err(format!(
            "--clients, --minutes and --window must be positive\n{USAGE}"
        ));
    }
    let report = gateway_bench::soak::run(&SoakOptions {
        target,
        clients,
        seconds: minutes * 60.0,
        window,
    })?;
    println!("{}", gateway_bench::soak::table(&report));
    gateway_bench::soak::check(&report)
}

#[cfg(target_family = "wasm")]
fn soak(_args: &[String]) -> Result<(), String> {
    Err("soak runs natively only".to_owned())
}

#[cfg(target_family = "wasm")]
fn live(_args: &[String]) -> Result<(), String> {
    Err("live runs natively only (it starts wrangler dev)".to_owned())
}

fn read<T: serde::de::DeserializeOwned>(file: &str) -> Result<T, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))
}

fn table(args: &[String]) -> Result<(), String> {
    let (mut native, mut wasm, mut live) = (None, None, None);
    for (flag, value) in bench_support::option_pairs(args, USAGE)? {
        match flag {
            "--native" => native = Some(read::<inprocess::Report>(value)?),
            "--wasm" => wasm = Some(read::<inprocess::Report>(value)?),
            "--live" => live = Some(value),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if let Some(file) = live {
        print_live(file)?;
    }
    let (Some(native), Some(wasm)) = (native, wasm) else {
        return Err(format!("table needs --native and --wasm\n{USAGE}"));
    };
    println!("## In-process: the pipeline, natively and in wasm\n");
    print!("{}", tables::inprocess_tables(&native, &wasm));
    Ok(())
}

#[cfg(not(target_family = "wasm"))]
fn print_live(file: &str) -> Result<(), String> {
    let report = read::<gateway_bench::live::LiveReport>(file)?;
    println!("## Through wrangler dev: the pipeline against pass-through\n");
    println!("{}", tables::live_table(&report)?);
    Ok(())
}

#[cfg(target_family = "wasm")]
fn print_live(_file: &str) -> Result<(), String> {
    Err("the live table is printed natively".to_owned())
}

fn policy(args: &[String]) -> Result<(), String> {
    let [origin] = args else {
        return Err(USAGE.to_owned());
    };
    let signer = gateway_bench::fixtures::Signer::new()?;
    println!(
        "{}",
        gateway_bench::fixtures::gateway_policy(origin, signer.jwk())
    );
    Ok(())
}

fn token(args: &[String]) -> Result<(), String> {
    use gateway_bench::fixtures::Alg;
    let (alg, sub) = match args {
        [alg] => (alg, "user-0"),
        [alg, sub] => (alg, sub.as_str()),
        _ => return Err(USAGE.to_owned()),
    };
    let alg = match alg.as_str() {
        "HS256" => Alg::Hs256,
        "RS256" => Alg::Rs256,
        _ => return Err(USAGE.to_owned()),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let signer = gateway_bench::fixtures::Signer::new()?;
    println!("{}", signer.token(alg, sub, now - 5, now + 3600));
    Ok(())
}
