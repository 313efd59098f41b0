//! The reports as markdown tables.

use bench_support::thousands;

use crate::inprocess::{ROWS, Report};
#[cfg(not(target_family = "wasm"))]
use crate::live::{LiveReport, MODES};

/// The goal through `wrangler dev`: the pipeline at most this far below
/// the pass-through's requests/s.
pub const LIVE_GOAL: f64 = 0.15;
/// The goal in-process: µs per request in wasm on the HS256 path, its
/// signature check aside.
pub const WASM_GOAL_US: f64 = 50.0;

/// `12.345` µs as `12.3`, small figures with more digits.
pub fn micros(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        thousands(us)
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// The table of the `wrangler dev` measurement.
#[cfg(not(target_family = "wasm"))]
pub fn live_table(report: &LiveReport) -> Result<String, String> {
    let pass = report
        .mode("pass")
        .ok_or("the report has no pass-through mode")?;
    let mut out = String::from(
        "| through `wrangler dev` | requests/s | vs pass-through | p50 | p99 | \
         CPU/request: workerd | wrangler (node) | both vs pass-through | \
         goal: ≤ 15 % below pass-through |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (id, label, _, _) in MODES {
        let Some(mode) = report.mode(id) else {
            continue;
        };
        let change = mode.rps / pass.rps.max(1e-9) - 1.0;
        let cpu = |m: &crate::live::LiveMode| m.workerd_cpu_ms + m.wrangler_cpu_ms;
        let percent = |v: f64| format!("{:+.1} %", v * 100.0).replace('-', "−");
        let (versus, cpu_versus) = if id == "pass" {
            (String::new(), String::new())
        } else {
            (
                percent(change),
                percent(cpu(mode) / cpu(pass).max(1e-9) - 1.0),
            )
        };
        let goal = if matches!(id, "hs256" | "rs256") {
            format!(
                "{} ({:.1} % below)",
                met(-change <= LIVE_GOAL),
                -change * 100.0
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| {label} | {} | {versus} | {:.1} ms | {:.1} ms | {:.2} ms | {:.2} ms | {cpu_versus} \
             | {goal} |\n",
            thousands(mode.rps),
            mode.p50_ms,
            mode.p99_ms,
            mode.workerd_cpu_ms,
            mode.wrangler_cpu_ms,
        ));
    }
    out.push_str(&format!(
        "\n{} keep-alive clients (one request at a time each: HTTP/1.1 POST of the 1 KB JSON \
         body with a bearer token) against one `wrangler dev` ({}) serving the gateway's \
         Workers build (wrangler.toml's top-level worker, worker-build --release: opt-level z) \
         with one policy whose routes are the modes, all to a local origin on 127.0.0.1 (std \
         sockets, `200` with 11 bytes). The modes take turns: {} s warm-up each, then {} turns \
         of {} s each; requests/s is the median turn, latencies are over every measured \
         request (p90 in the report), CPU/request is the processes' user + system time over \
         the turns (from /proc) divided by the requests (this program, clients and origin: \
         {:.2}–{:.2} ms); \"both vs pass-through\" compares workerd's and wrangler's \
         together, what bounds requests/s when the cores are saturated. Tokens spread over {} subjects, the rate limiter's keys (one \
         Durable Object each, {} permits leased per round trip). The origin received {} \
         bodies from the routes that anonymize, {} with the email in clear, and {} from the \
         others, {} in clear. Load generator, wrangler, workerd and the origin share this \
         machine's {} cores.\n",
        report.clients,
        report.wrangler,
        report.warmup,
        report.rounds,
        report.seconds,
        report
            .modes
            .iter()
            .map(|m| m.bench_cpu_ms)
            .fold(f64::INFINITY, f64::min),
        report
            .modes
            .iter()
            .map(|m| m.bench_cpu_ms)
            .fold(0.0, f64::max),
        crate::fixtures::SUBJECTS,
        crate::fixtures::LEASE,
        report.origin.anonymized,
        report.origin.anonymized_clear,
        report.origin.other,
        report.origin.other_clear,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    ));
    Ok(out)
}

/// The in-process tables: every row natively and in wasm, then the HS256
/// and RS256 paths with their signature check set aside.
pub fn inprocess_tables(native: &Report, wasm: &Report) -> String {
    let cpu = native.has_cpu() && wasm.has_cpu();
    let mut out = String::from(
        "| in-process, µs per request | native | wasm (wasmtime) | wasm/native |\n\
         |---|---:|---:|---:|\n",
    );
    for (id, label) in ROWS {
        let (n, w) = (native.best(id, cpu), wasm.best(id, cpu));
        if n.is_none() && w.is_none() {
            continue;
        }
        let cell = |v: Option<f64>| v.map_or("–".to_owned(), micros);
        let ratio = match (n, w) {
            (Some(n), Some(w)) if n > 0.0 => format!("{:.1}×", w / n),
            _ => "–".to_owned(),
        };
        out.push_str(&format!(
            "| {label} | {} | {} | {ratio} |\n",
            cell(n),
            cell(w)
        ));
    }
    out.push_str(
        "\n| crypto aside, µs per request | native: whole | signature | rest | \
         wasm: whole | signature | rest | goal: rest ≤ 50 µs in wasm |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let aside = [
        (
            "auth → rate limit → anonymize, HS256",
            "pipeline_hs256",
            "verify_hs256",
            true,
        ),
        (
            "auth → rate limit → anonymize, RS256",
            "pipeline_rs256",
            "verify_rs256",
            false,
        ),
        (
            "whole gateway (`serve`), HS256",
            "gateway_hs256",
            "verify_hs256",
            true,
        ),
        (
            "whole gateway (`serve`), RS256",
            "gateway_rs256",
            "verify_rs256",
            false,
        ),
    ];
    for (label, path, signature, hs256) in aside {
        let split = |report: &Report| match (report.best(path, cpu), report.best(signature, cpu)) {
            (Some(whole), Some(sig)) => Some((whole, sig, whole - sig)),
            _ => None,
        };
        let cells = |s: Option<(f64, f64, f64)>| match s {
            Some((whole, sig, rest)) => format!(
                "{} | {} ({:.0} %) | {}",
                micros(whole),
                micros(sig),
                sig / whole.max(1e-9) * 100.0,
                micros(rest)
            ),
            None => "– | – | –".to_owned(),
        };
        let wasm_split = split(wasm);
        let goal = match (hs256, wasm_split) {
            (true, Some((_, _, rest))) => met(rest <= WASM_GOAL_US).to_owned(),
            (false, Some((_, _, rest))) => format!("({})", met(rest <= WASM_GOAL_US)),
            (_, None) => String::new(),
        };
        out.push_str(&format!(
            "| {label} | {} | {} | {goal} |\n",
            cells(split(native)),
            cells(wasm_split)
        ));
    }
    out.push_str(&format!(
        "\nOne request: a clone of a prepared `POST {}` with a {}-byte JSON body (email, \
         phone, IPv4, IPv6, card, IBAN), then the stages as the gateway builds them from its \
         policy's sections, on in-memory services (store, clock, randomness; log lines \
         formatted and discarded; the metrics recorder on). The bare endpoint and the \
         in-memory origin answer `200` without network; the whole gateway adds `serve` \
         (correlation id, route, log line, metrics) and the origin forwarding (headers, \
         breaker). Rate limit: a fixed window keyed by the verified `sub` ({} subjects), {} \
         permits leased per store call. Signature alone: auth-check's `Key::verify` on the \
         parsed key (RSA 2048, e = 65537; pure Rust in both builds); rest = whole − \
         signature. The fastest of {} rounds of about {} s taken in turns over every row \
         (medians in the reports); {}; wasm: wasm32-wasip2 under wasmtime 48.0.8 \
         (Cranelift, opt-level speed); both bench-o3 (opt-level 3, LTO).\n",
        crate::fixtures::PIPELINE_PATH,
        native.body_bytes,
        crate::fixtures::SUBJECTS,
        crate::fixtures::LEASE,
        native.rounds,
        native.seconds,
        if cpu {
            "the thread's CPU time (its /proc schedstat, read by the wasm guest through a \
             preopened directory; wall-clock time, which also counts waiting for a CPU on a \
             busy machine, is in the reports)"
        } else {
            "wall-clock time (std::time::Instant) inside the program"
        },
    ));
    out
}
