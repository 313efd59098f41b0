//! `edge-load rate-limit [--seconds N] [--clients N]`: requests per second
//! through the rate limiter's Workers build under `wrangler dev`, limiting
//! off (the pass-through baseline), strict (a Durable Object round trip per
//! request) and leased, one after the other in one run. Prints a markdown
//! table; every mode must answer only 200s (the limit is set out of reach),
//! so the figures compare admitted traffic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use wasm_tests::conformance::CaseRequest;
use wasm_tests::workerd::{WranglerDev, agent, send};

/// Measured turns per mode.
const ROUNDS: usize = 3;
/// Distinct client keys the load spreads over (one Durable Object each).
const KEYS: usize = 8;

fn policy(lease: bool) -> String {
    format!(
        "[rate_limit]\nhash_key_secret = \"RATE_LIMIT_HASH_KEY\"\n\
         [[rate_limit.scopes]]\nname = \"BENCH\"\nalgorithm = \"fixed_window\"\n\
         limit = 1000000000\nperiod = \"1d\"\nkey = [\"header:x-client\"]\n{}",
        if lease { "lease = 100\n" } else { "" }
    )
}

struct Measured {
    ok: u64,
    other: u64,
    seconds: f64,
}

fn measure(dev: &WranglerDev, clients: usize, seconds: u64) -> Result<Measured> {
    let ok = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (ok, other, stop, base) = (ok.clone(), other.clone(), stop.clone(), dev.url());
            let case: CaseRequest = serde_json::from_value(serde_json::json!({
                "method": "GET", "path": "/bench",
                "headers": { "x-client": format!("client-{}", i % KEYS) }
            }))
            .unwrap_or_else(|e| unreachable!("a fixed case parses: {e}"));
            std::thread::spawn(move || {
                let agent = agent(Duration::from_secs(30));
                while !stop.load(Ordering::Relaxed) {
                    match send(&agent, &base, &case) {
                        Ok(a) if a.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    Ok(Measured {
        ok: ok.load(Ordering::Relaxed),
        other: other.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("rate-limit") {
        bail!("usage: edge-load rate-limit [--seconds N] [--clients N]");
    }
    let option = |name: &str, default: u64| -> Result<u64> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(args.get(i + 1).map_or("", String::as_str).parse()?),
            None => Ok(default),
        }
    };
    let seconds = option("--seconds", 5)?;
    let clients = usize::try_from(option("--clients", 16)?)?;
    let secrets: BTreeMap<String, String> =
        [("RATE_LIMIT_HASH_KEY".to_owned(), "bench".to_owned())].into();
    let modes = [
        (
            "pass-through (RATE_LIMIT_ENABLED=false)",
            policy(false),
            "false",
        ),
        (
            "strict: a Durable Object round trip per request",
            policy(false),
            "true",
        ),
        ("leased: 100 permits per round trip", policy(true), "true"),
    ];
    // All three run at once and are measured in turns, so drift on the
    // machine hits every mode alike; each mode's figure is its median round.
    let mut devs = Vec::new();
    for (label, policy, enabled) in &modes {
        let vars: BTreeMap<String, String> = [
            ("POLICY".to_owned(), policy.clone()),
            ("RATE_LIMIT_ENABLED".to_owned(), (*enabled).to_owned()),
        ]
        .into();
        let dev = WranglerDev::start("rate-limit", &vars, &secrets)?;
        measure(&dev, clients, 2)?; // warm-up: compile, first Durable Objects
        devs.push((*label, dev, Vec::new()));
    }
    for _round in 0..ROUNDS {
        for (label, dev, rates) in &mut devs {
            let m = measure(dev, clients, seconds)?;
            if m.other > 0 {
                bail!(
                    "{label}: {} answers were not 200\n{}",
                    m.other,
                    dev.log_tail()
                );
            }
            eprintln!(
                "edge-load: {label}: {} requests in {:.1} s",
                m.ok, m.seconds
            );
            rates.push(m.ok as f64 / m.seconds);
        }
    }
    let rows: Vec<(&str, f64)> = devs
        .iter_mut()
        .map(|(label, _, rates)| {
            rates.sort_by(f64::total_cmp);
            (*label, rates[rates.len() / 2])
        })
        .collect();
    let base = rows[0].1;
    println!("| mode | requests/s | vs pass-through |");
    println!("|---|---:|---:|");
    for (label, rps) in rows {
        println!(
            "| {label} | {rps:.0} | {:+.1} % |",
            (rps / base - 1.0) * 100.0
        );
    }
    println!(
        "\n{clients} keep-alive clients over {KEYS} keys; the three workers run side by side \
         and are measured in {ROUNDS} turns of {seconds} s each (median shown) after a 2 s \
         warm-up; GET through `wrangler dev` (workerd, local Durable Objects) on this machine; \
         load generator and workerd share its cores."
    );
    Ok(())
}
