//! Rate-limit decisions per second, the same loops natively and in wasm.
//!
//! This crate exists so that one program measures the rate-limit
//! algorithms (and governor, the in-process GCRA they are compared with)
//! on every runtime: built natively it is the native measurement, built for
//! `wasm32-wasip2` it is a WASI command that `bench-runner` runs under
//! wasmtime. Both print a [`Report`] as JSON; [`table`] sets reports side by
//! side. `cargo xtask bench rate-limit` drives all of it; the same
//! [`workloads`] also feed the criterion bench of the `rate-limit` crate.

pub mod workloads;

use bench_support::thousands;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use workloads::{Decider, Visit, Workload};

/// One runtime's measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What ran them, e.g. `native` or `wasm (wasmtime)`.
    pub label: String,
    /// A short name for ratio headers, e.g. `wasm`.
    pub short: String,
    /// The target the program was built for.
    pub target: String,
    /// One entry per workload.
    pub results: Vec<Measurement>,
}

/// One workload's timed rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// [`Workload::id`].
    pub id: String,
    /// Decisions per round.
    pub decisions: u64,
    /// Admitted decisions per round (the same in every round and runtime).
    pub admitted: u64,
    /// Timed rounds (after one untimed warm-up round).
    pub rounds: u32,
    /// The median round's rate.
    pub decisions_per_second: f64,
    /// The fastest round's rate.
    pub best_per_second: f64,
    /// The slowest round's rate.
    pub worst_per_second: f64,
}

/// Runs `rounds` timed rounds (after one warm-up round) of `decisions`
/// decisions of `workload`, each round on a fresh instance.
pub fn measure(workload: Workload, decisions: u64, rounds: u32) -> Measurement {
    workload.visit(Timer { decisions, rounds })
}

struct Timer {
    decisions: u64,
    rounds: u32,
}

impl Visit for Timer {
    type Output = Measurement;

    fn visit<D: Decider, F: Fn() -> D>(self, workload: Workload, make: F) -> Measurement {
        let round = || {
            let mut decider = make();
            let started = Instant::now();
            let mut admitted = 0u64;
            for _ in 0..self.decisions {
                admitted += u64::from(std::hint::black_box(decider.decide()));
            }
            (started.elapsed(), admitted)
        };
        let (_, admitted) = round();
        let mut rates: Vec<f64> = (0..self.rounds.max(1))
            .map(|_| per_second(self.decisions, round().0))
            .collect();
        rates.sort_by(f64::total_cmp);
        Measurement {
            id: workload.id().to_owned(),
            decisions: self.decisions,
            admitted,
            rounds: self.rounds.max(1),
            decisions_per_second: rates[rates.len() / 2],
            best_per_second: rates[rates.len() - 1],
            worst_per_second: rates[0],
        }
    }
}

fn per_second(decisions: u64, elapsed: Duration) -> f64 {
    decisions as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Why reports cannot be set side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// A markdown table: one row per workload of `base`, its rate, then each
/// of `others`' rates and their ratio to `base`. The runs must have made
/// the same decisions (the algorithms are deterministic, so a different
/// admitted count means a runtime computed something else).
pub fn table(base: &Report, others: &[Report]) -> Result<String, Mismatch> {
    let mut out = format!("| algorithm | admitted | {} decisions/s |", base.label);
    let mut rule = String::from("|---|---:|---:|");
    for other in others {
        out.push_str(&format!(
            " {} decisions/s | {}/{} |",
            other.label, other.short, base.short
        ));
        rule.push_str("---:|---:|");
    }
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for m in &base.results {
        let name = workloads::ALL
            .iter()
            .find(|w| w.id() == m.id)
            .map_or(m.id.clone(), |w| format!("{}: {}", w.group(), w.variant()));
        out.push_str(&format!(
            "| {name} | {:.1} % | {} |",
            100.0 * m.admitted as f64 / m.decisions.max(1) as f64,
            thousands(m.decisions_per_second),
        ));
        for other in others {
            let Some(o) = other.results.iter().find(|o| o.id == m.id) else {
                out.push_str(" (not run) | |");
                continue;
            };
            if (o.decisions, o.admitted) != (m.decisions, m.admitted) {
                return Err(Mismatch(format!(
                    "{}: {} admitted {} of {} decisions, {} admitted {} of {}",
                    m.id, base.label, m.admitted, m.decisions, other.label, o.admitted, o.decisions
                )));
            }
            out.push_str(&format!(
                " {} | {:.2} |",
                thousands(o.decisions_per_second),
                o.decisions_per_second / m.decisions_per_second.max(1e-9)
            ));
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_mostly_admits_and_sometimes_denies() {
        for workload in workloads::ALL {
            // Enough for every key's burst to drain (~1,000 decisions).
            let m = measure(workload, 3_000 * u64::from(workload.keys()), 1);
            let share = m.admitted as f64 / m.decisions as f64;
            assert!((0.85..0.95).contains(&share), "{}: {share}", m.id);
        }
    }

    #[test]
    fn a_runtime_that_decides_otherwise_is_refused() {
        let report = |admitted| Report {
            label: "x".into(),
            short: "x".into(),
            target: "t".into(),
            results: vec![Measurement {
                id: "gcra".into(),
                decisions: 10,
                admitted,
                rounds: 1,
                decisions_per_second: 1.0,
                best_per_second: 1.0,
                worst_per_second: 1.0,
            }],
        };
        assert!(table(&report(9), &[report(9)]).is_ok());
        assert!(table(&report(9), &[report(8)]).is_err());
    }
}
