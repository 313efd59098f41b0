//! Embeds the corpus: the guest under `bench-runner` gets no files, so the
//! file named by `ANONYMIZE_BENCH_CORPUS` (set by `cargo xtask bench
//! anonymize`) is copied to `OUT_DIR/corpus.jsonl` and built into the
//! program. Without the variable the corpus is empty and `run` says so.

use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-env-changed=ANONYMIZE_BENCH_CORPUS");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("corpus.jsonl");
    match std::env::var_os("ANONYMIZE_BENCH_CORPUS") {
        Some(corpus) if !corpus.is_empty() => {
            println!("cargo::rerun-if-changed={}", corpus.to_string_lossy());
            if let Err(e) = std::fs::copy(&corpus, &out) {
                panic!("ANONYMIZE_BENCH_CORPUS={}: {e}", corpus.to_string_lossy());
            }
        }
        _ => std::fs::write(&out, b"").expect("writing OUT_DIR/corpus.jsonl"),
    }
}
