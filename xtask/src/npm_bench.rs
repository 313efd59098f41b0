//! `cargo xtask bench npm [--no-build] [--rounds N] [--only RUNTIME,…]`:
//! the npm package's timings in Node 22, Deno and headless Chromium beside
//! native, and each module's size, from one run.
//!
//! The workloads are the package's local-first ones: anonymizing 1 MiB of
//! NDJSON records with personal data (`Anonymizer.ndjson`), indexing
//! 100,000 assets (`new SpatialIndex`) and answering radius queries over
//! them (`SpatialIndex.query`). Inputs, in `target/bench-results/npm/`,
//! generated once by the repository's generators: the anonymize
//! benchmark's corpus (`corpus.py --seed 7 --docs 2000`), whose JSON
//! records `npm-bench records` writes as NDJSON up to 1 MiB; assets
//! (`assets.py --seed 7 --count 100000`) and the radius queries of
//! `queries.py --seed 23 --per-type 100` over them.
//!
//! Steps: the browser builds (as `cargo xtask npm`; none with `--no-build`)
//! and the package, packed; the tarball installed into a scratch project
//! (`target/bench-results/npm/project`) as a user installs it; `npm-bench`
//! (`bench/npm`, bench-o3) times the same Rust code natively;
//! `bench/npm/run.mjs` under the npm Node 22 and the npm Deno and
//! `bench/npm/chromium.mjs` (a page on 127.0.0.1 in Debian's Chromium,
//! driven by playwright-core) time the package with
//! `bench/npm/measure.mjs`. `npm-bench table` sets the reports side by
//! side, failing unless every runtime computed the same answers; the
//! sizes table follows. Everything printed is also saved as `table.md`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::bench::{capture, stdout_of};
use crate::util::{cmd, root, run as run_command, target_dir};

const USAGE: &str = "usage: cargo xtask bench npm [--no-build] [--rounds N (15)] [--only native,node,deno,chromium]";
/// The bench program's package and binary.
const PROGRAM: &str = "npm-bench";
const PROFILE: &str = "bench-o3";
/// The NDJSON input's size: the records that fit in 1 MiB.
const RECORD_BYTES: u64 = 1 << 20;
const CORPUS_SEED: u32 = 7;
const CORPUS_DOCS: u32 = 2000;
const ASSETS: u64 = 100_000;
const ASSET_SEED: u32 = 7;
const QUERY_SEED: u32 = 23;
const PER_TYPE: u32 = 100;
const RUNTIMES: [&str; 4] = ["native", "node", "deno", "chromium"];

pub(crate) fn run(options: &[String]) -> Result<()> {
    let started = std::time::Instant::now();
    let (mut build, mut rounds, mut only) = (true, 15u32, RUNTIMES.to_vec());
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let mut value = || {
            options
                .next()
                .with_context(|| format!("{option} needs a value\n{USAGE}"))
        };
        match option.as_str() {
            "--no-build" => build = false,
            "--rounds" => {
                let v = value()?;
                rounds = v.parse().with_context(|| format!("--rounds {v:?}"))?;
            }
            "--only" => {
                let v = value()?;
                only = v.split(',').collect::<Vec<_>>();
                if let Some(bad) = only.iter().find(|r| !RUNTIMES.contains(r)) {
                    bail!("--only: no runtime {bad:?}\n{USAGE}");
                }
                only = RUNTIMES
                    .iter()
                    .copied()
                    .filter(|r| only.contains(r))
                    .collect();
            }
            _ => bail!("unknown option {option}\n{USAGE}"),
        }
    }
    if !only.contains(&"native") {
        only.insert(0, "native");
    }
    let rounds = rounds.max(1).to_string();
    let root = root();
    let results = target_dir().join("bench-results/npm");
    std::fs::create_dir_all(&results)?;

    // The package, as a user gets it.
    let registry = edge_registry::Registry::load()?;
    if build {
        crate::install::all(crate::install::Needs::Build)?;
        crate::npm::browser_builds(&registry)?;
    }
    let tarball = crate::npm::package(&registry)?;
    let project = results.join("project");
    install_tarball(&project, &tarball)?;
    for script in ["run.mjs", "measure.mjs"] {
        let from = root.join("bench/npm").join(script);
        std::fs::copy(&from, project.join(script))
            .with_context(|| format!("copying {}", from.display()))?;
    }

    // The inputs, generated once.
    crate::install::python()?;
    let python = crate::install::pyenv().join("bin/python");
    let generate = |file: &Path, script: &str, args: &[String]| -> Result<()> {
        if file.exists() {
            eprintln!("xtask: reusing {}", file.display());
            return Ok(());
        }
        let partial = file.with_extension("partial");
        run_command(
            cmd(&python.to_string_lossy())
                .arg(root.join(script))
                .args(args)
                .arg("--out")
                .arg(&partial),
        )?;
        std::fs::rename(&partial, file)?;
        Ok(())
    };
    let corpus = results.join(format!("corpus-{CORPUS_SEED}-{CORPUS_DOCS}.jsonl"));
    generate(
        &corpus,
        "functions/anonymize/testdata/corpus.py",
        &[
            "--seed".into(),
            CORPUS_SEED.to_string(),
            "--docs".into(),
            CORPUS_DOCS.to_string(),
        ],
    )?;
    let assets = results.join(format!("assets-{ASSETS}.ndjson"));
    generate(
        &assets,
        "functions/spatial-query/testdata/assets.py",
        &[
            "--seed".into(),
            ASSET_SEED.to_string(),
            "--count".into(),
            ASSETS.to_string(),
        ],
    )?;
    let queries = results.join(format!("queries-{ASSETS}-{PER_TYPE}.jsonl"));
    generate(
        &queries,
        "functions/spatial-query/testdata/queries.py",
        &[
            "--seed".into(),
            QUERY_SEED.to_string(),
            "--assets".into(),
            assets.to_string_lossy().into_owned(),
            "--per-type".into(),
            PER_TYPE.to_string(),
        ],
    )?;

    // The native program prepares the records and the radius queries.
    run_command(cmd("cargo").args(["build", "-p", PROGRAM, "--profile", PROFILE]))?;
    let native = target_dir().join(format!("{PROFILE}/{PROGRAM}"));
    let native = || cmd(&native.to_string_lossy());
    let records = results.join("records.ndjson");
    let radius = results.join("radius.json");
    run_command(
        native()
            .arg("records")
            .arg("--corpus")
            .arg(&corpus)
            .args(["--bytes", &RECORD_BYTES.to_string()])
            .arg("--out")
            .arg(&records),
    )?;
    run_command(
        native()
            .arg("radius")
            .arg("--queries")
            .arg(&queries)
            .arg("--out")
            .arg(&radius),
    )?;

    // Each runtime, one after the other.
    let report = |runtime: &str| results.join(format!("{runtime}.json"));
    let inputs = |command: &mut std::process::Command| {
        command
            .arg("--records")
            .arg(&records)
            .arg("--assets")
            .arg(&assets)
            .arg("--radius")
            .arg(&radius)
            .args(["--rounds", &rounds]);
    };
    let node = root.join("node_modules/.bin/node");
    for runtime in &only {
        let out = report(runtime);
        let _ = std::fs::remove_file(&out);
        match *runtime {
            "native" => {
                let mut command = native();
                command.arg("run");
                inputs(&mut command);
                capture(&mut command, &out)?;
            }
            "node" => {
                let mut command = cmd(&node.to_string_lossy());
                command.current_dir(&project).arg("run.mjs");
                inputs(&mut command);
                run_command(command.arg("--out").arg(&out))?;
            }
            "deno" => {
                let deno = root.join("node_modules/.bin/deno");
                let mut command = cmd(&deno.to_string_lossy());
                command
                    .current_dir(&project)
                    .arg("run")
                    .arg("--allow-read")
                    .arg(format!("--allow-write={}", results.display()))
                    .arg("run.mjs");
                inputs(&mut command);
                run_command(command.arg("--out").arg(&out))?;
            }
            _ => {
                if !Path::new("/usr/bin/chromium").exists()
                    && std::env::var_os("CHROMIUM").is_none()
                {
                    bail!("no /usr/bin/chromium: run `cargo xtask install`");
                }
                let mut command = cmd(&node.to_string_lossy());
                command
                    .arg(root.join("bench/npm/chromium.mjs"))
                    .arg("--package")
                    .arg(project.join("node_modules/edge-functions"))
                    .arg("--data")
                    .arg(&results)
                    .args(["--records", "records.ndjson"])
                    .arg("--assets")
                    .arg(file_name(&assets))
                    .args(["--radius", "radius.json", "--rounds", &rounds])
                    .arg("--out")
                    .arg(&out);
                run_command(&mut command)?;
            }
        }
    }

    let mut text = String::from("\n## The npm package beside native\n\n");
    text.push_str(&stdout_of(
        native().arg("table").args(only.iter().map(|r| report(r))),
    )?);
    text.push_str(&format!(
        "\nOne run, `cargo xtask bench npm --rounds {rounds}`. Anonymize: `Anonymizer.ndjson` \
         (the default policy, salt and key set) on {} NDJSON records from corpus.py --seed \
         {CORPUS_SEED} --docs {CORPUS_DOCS} (the anonymize benchmark's corpus; its JSON \
         records, as many as fit in 1 MiB), two warm-up calls, then {rounds} timed; MB/s = 10⁶ \
         bytes of input per second at the median. Index: `new SpatialIndex(ndjson, \"ndjson\")` \
         over assets.py --seed {ASSET_SEED} --count {ASSETS} (parse, validate, tile, encode and \
         decode the tiles), one warm-up. Radius: every radius query of queries.py --seed \
         {QUERY_SEED} --per-type {PER_TYPE} (centres near assets, on them, uniform and awkward; \
         50 m–300 km; a third with filters) as JSON text, answered as GeoJSON text; a sample is \
         one round over all of them divided by their number, two warm-up rounds. Native: \
         `npm-bench` (bench-o3: opt-level 3, LTO) calling the Rust code the classes wrap, \
         `std::time::Instant`; the package: its release builds (opt-level z, `wasm-opt -Oz`), \
         `performance.now()` (100 µs resolution in Chromium without cross-origin isolation, \
         hence rounds), strings crossing into and out of the wasm as a page's do. Reports: {}\n",
        count_lines(&records)?,
        results.display()
    ));
    print!("{text}");
    println!("\n## Module sizes");
    crate::npm::sizes(&registry, &tarball)?;
    std::fs::write(results.join("table.md"), &text)?;
    eprintln!(
        "xtask: bench npm took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn count_lines(path: &Path) -> Result<usize> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().count())
}

/// `project` made anew, the tarball installed into it (offline: the
/// package has no dependencies).
fn install_tarball(project: &PathBuf, tarball: &Path) -> Result<()> {
    if project.exists() {
        std::fs::remove_dir_all(project)
            .with_context(|| format!("removing {}", project.display()))?;
    }
    std::fs::create_dir_all(project)?;
    std::fs::write(
        project.join("package.json"),
        r#"{"name":"npm-bench","private":true,"type":"module"}"#,
    )?;
    // npm's report to stderr: stdout is the tables.
    run_command(
        cmd("npm")
            .stdout(std::io::stderr())
            .current_dir(project)
            .args([
                "install",
                "--offline",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--no-package-lock",
            ])
            .arg(tarball),
    )
}
