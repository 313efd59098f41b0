//! Builds every function for every platform, reports sizes, serves them
//! locally (`dev`) and runs every check and test (`test`).
//!
//! Artifacts land in `target/edge/`: `spin/NAME.wasm` (a wasi:http 0.3
//! component), `browser/NAME/` (ES module, `.d.ts`, `NAME_bg.wasm`); the
//! Workers build stays where wrangler expects it, `functions/NAME/build/`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use edge_registry::Registry;

use crate::util::{cmd, root, run, target_dir};

/// Debian's Chromium.
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

/// Always `<repo>/target/edge`, whatever `CARGO_TARGET_DIR` says, because
/// `spin.toml` names its sources there.
pub(crate) fn artifacts() -> PathBuf {
    root().join("target/edge")
}

/// What to do as the builds in [`all`] finish: `cargo xtask dev` serves
/// each runtime as soon as its builds are ready.
pub(crate) trait Ready: Sync {
    /// Every Spin build is in `target/edge/spin/`.
    fn spin(&self) -> Result<()> {
        Ok(())
    }
    /// Function `name`'s Workers build is in `functions/NAME/build/`.
    fn worker(&self, _name: &str) -> Result<()> {
        Ok(())
    }
    /// Every browser build is in `target/edge/browser/`.
    fn browser(&self) -> Result<()> {
        Ok(())
    }
    /// Whether to stop before the next build (a server exited).
    fn cancelled(&self) -> bool {
        false
    }
}

/// Builds only, nothing to serve.
pub(crate) struct JustBuild;

impl Ready for JustBuild {}

/// Builds every function for Spin, the browser and Workers, skipping the
/// wasm-bindgen/wasm-opt and worker-build steps already made from the same
/// cargo build. The Spin and browser builds each take one cargo invocation
/// for all functions (but those with `own_build`), so two crates build
/// (and link, LTO on one codegen unit) side by side on two cores.
///
/// The Spin builds come first, alone; then the browser builds (cargo, then
/// wasm-bindgen and wasm-opt function by function) beside the Workers
/// builds (worker-build per function, two at a time): they use other cargo
/// target directories, so neither waits for the other's cargo lock — on an
/// unchanged tree, each is cargo finding its build fresh. `ready` hears as
/// each runtime's builds are done.
pub(crate) fn all(registry: &Registry, ready: &dyn Ready) -> Result<()> {
    let names: Vec<&str> = registry.names().collect();
    spin(registry, &names)?;
    ready.spin()?;
    let failed = AtomicBool::new(false);
    let stop = || ready.cancelled() || failed.load(Ordering::SeqCst);
    let fail = |result: Result<()>| {
        if result.is_err() {
            failed.store(true, Ordering::SeqCst);
        }
        result
    };
    std::thread::scope(|scope| {
        let browsers = scope.spawn(|| {
            fail((|| {
                let built = release_builds(registry, &names, "wasm32-unknown-unknown", "browser")?;
                for (name, input) in built {
                    if stop() {
                        bail!("stopped");
                    }
                    browser_unless_fresh(name, &input)?;
                }
                ready.browser()
            })())
        });
        // A function with a target directory of its own first: its cargo
        // does not wait for the others'. worker-build's cargo step waits for
        // the other job's to finish (one target dir), but its wasm-bindgen
        // and wasm-opt steps, about half of its time and on one core, overlap
        // with the other job's.
        let mut workers = names.clone();
        workers.sort_by_key(|name| !registry.get(name).is_ok_and(|f| f.own_build));
        let workers = fail(two_at_a_time(&workers, |name| {
            if stop() {
                bail!("stopped");
            }
            worker_build_unless_fresh(registry, name)?;
            ready.worker(name)
        }));
        let browsers = browsers
            .join()
            .unwrap_or_else(|_| bail!("the browser build thread panicked"));
        workers.and(browsers)
    })
}

/// Runs `job` on every item, two at a time (the machine's two cores),
/// stopping at the first error.
fn two_at_a_time<T: Sync>(items: &[T], job: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let worker = || -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        while !failed.load(SeqCst) {
            let Some(item) = items.get(next.fetch_add(1, SeqCst)) else {
                return Ok(());
            };
            if let Err(e) = job(item) {
                failed.store(true, SeqCst);
                return Err(e);
            }
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        let jobs = [scope.spawn(worker), scope.spawn(worker)];
        jobs.into_iter().try_for_each(|job| {
            job.join()
                .unwrap_or_else(|_| bail!("a build thread panicked"))
        })
    })
}

/// The Spin builds of `names` (one cargo invocation), copied to
/// `target/edge/spin/NAME.wasm`. `cargo xtask build-spin NAME`, each
/// component's build command in `spin.toml`, builds one: cargo then
/// resolves that crate's features alone, as Spin's own templates do.
pub(crate) fn spin(registry: &Registry, names: &[&str]) -> Result<()> {
    let dir = artifacts().join("spin");
    std::fs::create_dir_all(&dir)?;
    for (name, built) in release_builds(registry, names, "wasm32-wasip2", "spin")? {
        copy_if_changed(&built, &dir.join(format!("{name}.wasm")))?;
    }
    Ok(())
}

/// The cargo target directory for function `name`'s `platform` build.
/// Cargo names a crate's `.wasm` without a hash, so two builds of one
/// crate with other features take turns overwriting (and linking again)
/// the same file: the Workers builds get a directory of their own, apart
/// from the browser builds for the same wasm target, and a function with
/// `own_build` one of its own, since building it builds the functions it
/// depends on again without their platform features.
fn cargo_target(registry: &Registry, name: &str, platform: &str) -> Result<PathBuf> {
    let base = match registry.get(name)?.own_build {
        true => target_dir().join("own").join(name),
        false => target_dir(),
    };
    Ok(match platform {
        "workers" => base.join("workers"),
        _ => base,
    })
}

/// Builds every function in `names` in release for `target` with its
/// platform `feature`, returning each one's `.wasm`: one cargo invocation
/// for them all, but one of its own for a function with `own_build`.
pub(crate) fn release_builds<'a>(
    registry: &Registry,
    names: &[&'a str],
    target: &str,
    feature: &str,
) -> Result<Vec<(&'a str, PathBuf)>> {
    let mut built = Vec::new();
    for group in registry.build_groups(names)? {
        let Some(first) = group.first() else { continue };
        let dir = cargo_target(registry, first, feature)?;
        let mut build = cmd("cargo");
        build
            .args(["build", "--release", "--target", target, "--target-dir"])
            .arg(&dir);
        for name in &group {
            build
                .args(["-p", name, "--features"])
                .arg(format!("{name}/{feature}"));
        }
        run(&mut build)?;
        built.extend(
            group
                .iter()
                .map(|name| (*name, release_wasm(&dir, target, name))),
        );
    }
    Ok(built)
}

/// Where cargo puts function `name`'s release `.wasm` for `target` in
/// target directory `dir`: named after the crate, `-` made `_`.
fn release_wasm(dir: &Path, target: &str, name: &str) -> PathBuf {
    let artifact = name.replace('-', "_");
    dir.join(format!("{target}/release/{artifact}.wasm"))
}

/// Copies `from` to `to` unless `to` already holds the same bytes.
fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let bytes = read(from)?;
    if std::fs::read(to).is_ok_and(|had| had == bytes) {
        return Ok(());
    }
    std::fs::write(to, bytes).with_context(|| format!("writing {}", to.display()))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs `step`, which makes `outputs` from the `.wasm` at `input`, unless
/// it already made them from the same bytes. Those are kept, once the step
/// succeeds, as `target/edge/.work/PLATFORM/NAME.wasm`: bytes rather than
/// times, because cargo links a crate again (unchanged) whenever a build
/// with other features overwrote it, and that needs no new wasm-bindgen,
/// wasm-opt or worker-build run.
fn unless_done(
    platform: &str,
    name: &str,
    input: &Path,
    outputs: &[PathBuf],
    step: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let done = artifacts()
        .join(".work")
        .join(platform)
        .join(format!("{name}.wasm"));
    let bytes = read(input)?;
    if outputs.iter().all(|o| o.exists()) && std::fs::read(&done).is_ok_and(|had| had == bytes) {
        eprintln!("xtask: {name}'s {platform} build is up to date");
        return Ok(());
    }
    step()?;
    if let Some(dir) = done.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // What the step left there (worker-build runs its cargo build again).
    let bytes = read(input)?;
    std::fs::write(&done, bytes).with_context(|| format!("writing {}", done.display()))
}

/// The browser package from its release build, `target/edge/browser/NAME/`
/// (wasm-bindgen `--target web`, then `wasm-opt -Oz`), unless made from
/// the same build before.
pub(crate) fn browser_unless_fresh(name: &str, built: &Path) -> Result<()> {
    let out = artifacts().join("browser").join(name);
    let wasm = out.join(format!("{name}_bg.wasm"));
    let outputs = [out.join(format!("{name}.js")), wasm.clone()];
    unless_done("browser", name, built, &outputs, || {
        run(cmd("wasm-bindgen")
            .args(["--target", "web", "--out-name", name, "--out-dir"])
            .arg(&out)
            .arg(built))?;
        run(cmd("wasm-opt")
            .args([
                "-Oz",
                "--enable-bulk-memory",
                "--enable-nontrapping-float-to-int",
            ])
            .arg(&wasm)
            .arg("-o")
            .arg(&wasm))
    })
}

/// The Workers build through worker-build (cargo in target directory
/// `dir`), pointed at the local wasm-bindgen, wasm-opt and esbuild instead
/// of downloads.
fn worker(name: &str, dir: &Path) -> Result<()> {
    let bin = root().join("node_modules/.bin");
    run(cmd("worker-build")
        .args([
            "--release",
            &format!("functions/{name}"),
            "--features",
            "workers",
            "--target-dir",
        ])
        .arg(dir)
        .env("WASM_BINDGEN_BIN", "wasm-bindgen")
        .env("WASM_OPT_BIN", bin.join("wasm-opt"))
        .env("ESBUILD_BIN", bin.join("esbuild")))
}

/// The variable `cargo xtask dev` sets for each `wrangler dev` it starts: a
/// directory where it leaves a note, named after the function, saying it
/// made that function's Workers build just before (see [`worker_unless_fresh`]).
pub(crate) const JUST_BUILT: &str = "XTASK_DEV_JUST_BUILT";

/// wrangler's build command (`cargo xtask build-worker NAME`), run on every
/// `wrangler dev` start: [`worker_build_unless_fresh`] — unless `cargo xtask
/// dev` started this wrangler right after making the same build and left a
/// note in [`JUST_BUILT`]. The note is taken (removed): a later run of the
/// build command (wrangler's watcher) checks again.
pub(crate) fn worker_unless_fresh(registry: &Registry, name: &str) -> Result<()> {
    if take_note(std::env::var_os(JUST_BUILT).as_deref(), name) {
        eprintln!("xtask: {name}'s Workers build was just checked by cargo xtask dev");
        return Ok(());
    }
    worker_build_unless_fresh(registry, name)
}

/// Whether `dir` holds a note for `name`, which this takes.
fn take_note(dir: Option<&std::ffi::OsStr>, name: &str) -> bool {
    dir.is_some_and(|dir| std::fs::remove_file(Path::new(dir).join(name)).is_ok())
}

/// The cargo build worker-build would run (so it is found fresh), then
/// worker-build only if that build's `.wasm` is not the one it last ran on.
/// worker-build itself always runs wasm-bindgen and wasm-opt, 30–80 s on
/// one core.
fn worker_build_unless_fresh(registry: &Registry, name: &str) -> Result<()> {
    let dir = cargo_target(registry, name, "workers")?;
    let krate = root().join(format!("functions/{name}"));
    run(cmd("cargo")
        .current_dir(&krate)
        .args([
            "build",
            "--lib",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .args(["--features", "workers", "--target-dir"])
        .arg(&dir)
        // What worker-build sets for wasm-bindgen's macros; cargo does not
        // track it, so a build without it would be reused wrongly.
        .env("WASM_BINDGEN_USE_JS_SYS", "1"))?;
    let built = release_wasm(&dir, "wasm32-unknown-unknown", name);
    let outputs = ["build/index.js", "build/index_bg.wasm"].map(|file| krate.join(file));
    unless_done("workers", name, &built, &outputs, || worker(name, &dir))
}

fn worker_wasm(name: &str) -> Option<PathBuf> {
    let dir = root().join(format!("functions/{name}/build"));
    find_wasm(&dir)
}

fn find_wasm(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_wasm(&path) {
                return Some(found);
            }
        } else if path.extension().is_some_and(|e| e == "wasm") {
            return Some(path);
        }
    }
    None
}

pub(crate) fn gzip_len(bytes: &[u8]) -> Result<usize> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len())
}

/// Gzip sizes measured before, by a hash of the bytes (std's, which a new
/// Rust may change: then they are measured again), in
/// `target/edge/.work/gzip-sizes`: compressing every build at the best
/// level takes a core for ~20 s, while `cargo xtask dev` starts its servers.
struct GzipSizes {
    file: PathBuf,
    known: std::collections::BTreeMap<u64, usize>,
    /// The hashes asked for this time: the ones [`GzipSizes::save`] keeps.
    used: std::collections::BTreeSet<u64>,
}

impl GzipSizes {
    fn load() -> GzipSizes {
        let file = artifacts().join(".work/gzip-sizes");
        let known = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (hash, len) = line.split_once(' ')?;
                Some((u64::from_str_radix(hash, 16).ok()?, len.parse().ok()?))
            })
            .collect();
        GzipSizes {
            file,
            known,
            used: Default::default(),
        }
    }

    fn len(&mut self, bytes: &[u8]) -> Result<usize> {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let hash = hasher.finish();
        self.used.insert(hash);
        if let Some(&len) = self.known.get(&hash) {
            return Ok(len);
        }
        let len = gzip_len(bytes)?;
        self.known.insert(hash, len);
        Ok(len)
    }

    fn save(mut self) -> Result<()> {
        self.known.retain(|hash, _| self.used.contains(hash));
        let text: String = self
            .known
            .iter()
            .map(|(hash, len)| format!("{hash:016x} {len}\n"))
            .collect();
        if std::fs::read_to_string(&self.file).is_ok_and(|had| had == text) {
            return Ok(());
        }
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.file, text).with_context(|| format!("writing {}", self.file.display()))
    }
}

/// Prints each function's `.wasm` size, raw and gzip, per platform.
pub(crate) fn sizes(registry: &Registry) -> Result<()> {
    let mut gzip = GzipSizes::load();
    println!("\n| function | platform | .wasm | raw bytes | gzip bytes |");
    println!("|---|---|---|---:|---:|");
    for name in registry.names() {
        let files = [
            ("workers", worker_wasm(name)),
            ("spin", Some(artifacts().join(format!("spin/{name}.wasm")))),
            (
                "browser",
                Some(artifacts().join(format!("browser/{name}/{name}_bg.wasm"))),
            ),
        ];
        for (platform, path) in files {
            let Some(path) = path.filter(|p| p.exists()) else {
                println!("| {name} | {platform} | (not built) | | |");
                continue;
            };
            let bytes = std::fs::read(&path)?;
            let shown = path
                .strip_prefix(root())
                .unwrap_or(&path)
                .display()
                .to_string();
            println!(
                "| {name} | {platform} | {shown} | {} | {} |",
                bytes.len(),
                gzip.len(&bytes)?
            );
        }
    }
    println!();
    gzip.save()
}

/// Every check and test: formatting, clippy on the host and on both wasm
/// targets, docs, the builds and their sizes, then the test suites.
pub(crate) fn test(registry: &Registry, started: Instant) -> Result<()> {
    let step = |name: &str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        let started = Instant::now();
        let result = f();
        eprintln!(
            "xtask: step {name}: {} in {:.0} s",
            if result.is_ok() { "ok" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        result
    };
    step("fmt", &mut || {
        run(cmd("cargo").args(["fmt", "--all", "--", "--check"]))
    })?;
    step("clippy (host)", &mut || {
        run(cmd("cargo").args(["clippy", "--all-targets", "--", "-D", "warnings"]))
    })?;
    step("clippy (wasm targets)", &mut || {
        // Each function with its platform's glue crate, on that platform's target.
        for (target, feature, glue) in [
            ("wasm32-unknown-unknown", "workers", "edge-workers"),
            ("wasm32-unknown-unknown", "browser", "edge-browser"),
            ("wasm32-wasip2", "spin", "edge-spin"),
        ] {
            let mut clippy = cmd("cargo");
            clippy.args(["clippy", "-p", glue, "--target", target]);
            for name in registry.names() {
                clippy
                    .args(["-p", name, "--features"])
                    .arg(format!("{name}/{feature}"));
            }
            run(clippy.args(["--", "-D", "warnings"]))?;
        }
        Ok(())
    })?;
    step("docs", &mut || {
        run(cmd("cargo")
            .args(["doc", "--no-deps", "-p", "edge-core"])
            .env("RUSTDOCFLAGS", "-D warnings"))
    })?;
    step("build", &mut || {
        all(registry, &JustBuild)?;
        sizes(registry)?;
        crate::npm::package_and_sizes(registry)
    })?;
    step("fuzz smoke", &mut crate::fuzz::smoke)?;
    let mut tally = Tally::default();
    let result = step("cargo test", &mut || {
        tally.run(
            cmd("cargo")
                .args(["test", "--workspace", "--exclude", "edge-workers"])
                .args(["--exclude", "edge-spin", "--exclude", "edge-browser"])
                .env("EDGE_ARTIFACTS", artifacts()),
        )
    });
    eprintln!(
        "xtask: test finished in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // One closing line for everything: cargo's own last line is a doc-test
    // run that may well say "0 passed".
    println!("xtask: {} passed, {} failed", tally.passed, tally.failed);
    result
}

/// Passed and failed counts read from test output: cargo's `test result:`
/// lines and the conformance suite's `conformance RUNTIME: N passed, M failed`.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    /// Runs `command`, echoing its stdout while counting.
    fn run(&mut self, command: &mut Command) -> Result<()> {
        use std::io::BufRead as _;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("cannot start cargo test")?;
        if let Some(stdout) = child.stdout.take() {
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line?;
                println!("{line}");
                self.read(&line);
            }
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("cargo test failed ({status})");
        }
        Ok(())
    }

    fn read(&mut self, line: &str) {
        let counts = if let Some(rest) = line.strip_prefix("test result: ") {
            rest
        } else if line.starts_with("conformance ") {
            line.split_once(": ").map_or("", |(_, rest)| rest)
        } else {
            return;
        };
        let tokens: Vec<&str> = counts
            .split(|c: char| c == ';' || c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        let number_before = |word: &str| {
            tokens
                .windows(2)
                .find_map(|w| (w[1] == word).then(|| w[0].parse::<usize>().ok())?)
                .unwrap_or(0)
        };
        self.passed += number_before("passed");
        self.failed += number_before("failed");
    }
}

#[cfg(test)]
mod tests {
    use super::{Tally, take_note};

    #[test]
    fn a_just_built_note_is_taken_once() {
        let dir = std::env::temp_dir().join(format!("xtask-notes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("counter"), "").unwrap();
        assert!(
            !take_note(None, "counter"),
            "no directory: not cargo xtask dev's"
        );
        assert!(!take_note(Some(dir.as_os_str()), "gateway"));
        assert!(take_note(Some(dir.as_os_str()), "counter"));
        assert!(!take_note(Some(dir.as_os_str()), "counter"), "taken");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tally_reads_cargo_and_conformance_lines() {
        let mut tally = Tally::default();
        for line in [
            "test result: ok. 23 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.30s",
            "test result: FAILED. 3 passed; 2 failed; 0 ignored",
            "conformance workerd: 22 passed, 1 failed (18.8 s)",
            "running 4 tests",
        ] {
            tally.read(line);
        }
        assert_eq!((tally.passed, tally.failed), (48, 3));
    }
}
