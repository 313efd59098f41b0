//! Criterion benchmark of rate-limit decisions: one group per algorithm
//! (decode the stored bytes, decide, encode) and one for governor, the
//! in-process GCRA they are compared with.
//!
//! The loops are `bench/decisions/src/workloads.rs`, included by path, so
//! that this bench and `cargo xtask bench rate-limit` (which runs them
//! natively and in wasm) measure the same work. Each iteration is one
//! decision; the workload's state and clock carry over between iterations.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

// Shared with the `rate-limit-bench` crate, which uses every item publicly.
#[allow(dead_code, unreachable_pub)]
#[path = "../../../bench/decisions/src/workloads.rs"]
mod workloads;

use workloads::{Decider, Visit, Workload};

/// Benches one workload in its group.
struct Bench<'a, 'c> {
    group: &'a mut BenchmarkGroup<'c, WallTime>,
}

impl Visit for Bench<'_, '_> {
    type Output = ();

    fn visit<D: Decider, F: Fn() -> D>(self, workload: Workload, make: F) {
        let mut decider = make();
        self.group
            .bench_function(workload.variant(), |b| b.iter(|| decider.decide()));
    }
}

fn decisions(c: &mut Criterion) {
    let mut groups: Vec<&str> = workloads::ALL.iter().map(|w| w.group()).collect();
    groups.dedup();
    for name in groups {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        for workload in workloads::ALL.into_iter().filter(|w| w.group() == name) {
            workload.visit(Bench { group: &mut group });
        }
        group.finish();
    }
}

criterion_group!(benches, decisions);
criterion_main!(benches);
