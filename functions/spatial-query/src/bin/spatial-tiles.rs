//! `spatial-tiles`: builds the tiled index of fusion assets offline, uploads
//! it to a running spatial-query function and describes what was built.
//!
//! ```text
//! spatial-tiles build --input FILE --out DIR [--format ndjson|geojson]
//!     [--dataset NAME] [--run N] [--capacity N] [--memory-mb N]
//!     [--json-summary FILE]
//! spatial-tiles upload --dir DIR --url URL [--token-env VAR] [--prefix /]
//!     [--expected-run N] [--dataset NAME] [--jobs N]
//! spatial-tiles stats --dir DIR [--dataset NAME] [--run N]
//! ```
//!
//! `build` reads the input in 64 KiB chunks through the streaming
//! [`FeatureReader`](spatial_query::ingest::FeatureReader), sorts the assets
//! by `(morton(lon, lat), id)` within `--memory-mb` (sorted runs beyond it
//! are spilled to temporary files in DIR and merged), cuts the sorted
//! stream into tiles of at most `--capacity` assets and writes each tile to
//! `DIR/<tile key>`, the manifest to `DIR/<manifest key>` and the head
//! record to `DIR/head.json`. The output depends only on the input and the
//! options, not on `--memory-mb`.
//!
//! An id is a key: where the input repeats an id (anywhere, at any
//! position), the last occurrence in input order is kept and the earlier
//! ones are rejected ("duplicate id"), as a later write replaces an earlier
//! one in the function. Every id and its input position are held in
//! memory for that (24 bytes an asset, beside `--memory-mb`). The build
//! also writes the run's id directory (`DIR/<dataset>/m/<run>.ids`), which
//! `upload` sends before the manifest.
//!
//! `upload` PUTs every tile the manifest lists, then the manifest, to
//! `{url}{prefix}_spatial/blobs/{key}` and publishes the head with
//! `POST {url}{prefix}_spatial/publish`. `stats` summarises a built
//! manifest.
//!
//! Exit codes: 0 success, 1 failure (I/O, HTTP), 2 bad usage or an input
//! that cannot be read as GeoJSON/NDJSON at all.

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::cmp::Reverse;
    use std::collections::{BTreeMap, BinaryHeap};
    use std::fmt::Write as _;
    use std::fs::{self, File};
    use std::io::{self, BufReader, BufWriter, Read, Write};
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use anyhow::{Context, anyhow, bail};
    use serde_json::{Value, json};
    use spatial_query::Asset;
    use spatial_query::ingest::{FeatureReader, IngestLimits, InputFormat, Rejection};
    use spatial_query::manifest::{self, Head, Manifest, TileEntry};
    use spatial_query::partition::{self, CellId, Partitioner};
    use spatial_query::tile::Tile;
    use uuid::Uuid;

    const USAGE: &str = "\
usage:
  spatial-tiles build --input FILE --out DIR [--format ndjson|geojson] [--dataset NAME]
                      [--run N] [--capacity N] [--memory-mb N] [--json-summary FILE]
  spatial-tiles upload --dir DIR --url URL [--token-env VAR] [--prefix /]
                       [--expected-run N] [--dataset NAME] [--jobs N]
  spatial-tiles stats --dir DIR [--dataset NAME] [--run N]";

    /// Input read per push.
    const CHUNK: usize = 64 * 1024;
    /// Rejections printed in full.
    const SHOWN_REJECTIONS: u64 = 20;
    /// Sorted runs merged at once; more are first merged in groups.
    const FAN_IN: usize = 64;

    /// A failure and the exit code it maps to.
    #[derive(Debug)]
    pub(crate) enum Failure {
        /// Bad arguments (exit 2).
        Usage(String),
        /// The input is not GeoJSON/NDJSON at all (exit 2).
        Input(String),
        /// Anything else (exit 1).
        Other(anyhow::Error),
    }

    impl From<anyhow::Error> for Failure {
        fn from(e: anyhow::Error) -> Self {
            Failure::Other(e)
        }
    }

    impl From<io::Error> for Failure {
        fn from(e: io::Error) -> Self {
            Failure::Other(e.into())
        }
    }

    type Result<T, E = Failure> = std::result::Result<T, E>;

    pub(crate) fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let outcome = match args.first().map(String::as_str) {
            Some("build") => Options::parse(&args[1..]).and_then(|o| build(&o)),
            Some("upload") => Options::parse(&args[1..]).and_then(|o| upload(&o)),
            Some("stats") => Options::parse(&args[1..]).and_then(|o| stats(&o)),
            Some("-h" | "--help" | "help") => {
                println!("{USAGE}");
                Ok(())
            }
            Some(other) => Err(Failure::Usage(format!("unknown command {other:?}"))),
            None => Err(Failure::Usage("no command".into())),
        };
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failure::Usage(m)) => {
                eprintln!("spatial-tiles: {m}\n{USAGE}");
                ExitCode::from(2)
            }
            Err(Failure::Input(m)) => {
                eprintln!("spatial-tiles: {m}");
                ExitCode::from(2)
            }
            Err(Failure::Other(e)) => {
                eprintln!("spatial-tiles: {e:#}");
                ExitCode::from(1)
            }
        }
    }

    // ---------------------------------------------------------------------
    // Options.

    /// `--flag value` pairs.
    #[derive(Debug, Default)]
    pub(crate) struct Options {
        values: BTreeMap<String, String>,
    }

    impl Options {
        pub(crate) fn parse(args: &[String]) -> Result<Options> {
            let mut values = BTreeMap::new();
            let mut it = args.iter();
            while let Some(flag) = it.next() {
                let Some(name) = flag.strip_prefix("--") else {
                    return Err(Failure::Usage(format!("unexpected argument {flag:?}")));
                };
                let (name, value) = match name.split_once('=') {
                    Some((n, v)) => (n.to_owned(), v.to_owned()),
                    None => {
                        let v = it
                            .next()
                            .ok_or_else(|| Failure::Usage(format!("--{name} needs a value")))?;
                        (name.to_owned(), v.clone())
                    }
                };
                if values.insert(name.clone(), value).is_some() {
                    return Err(Failure::Usage(format!("--{name} given twice")));
                }
            }
            Ok(Options { values })
        }

        fn check_known(&self, known: &[&str]) -> Result<()> {
            match self.values.keys().find(|k| !known.contains(&k.as_str())) {
                Some(k) => Err(Failure::Usage(format!("unknown option --{k}"))),
                None => Ok(()),
            }
        }

        fn get(&self, name: &str) -> Option<&str> {
            self.values.get(name).map(String::as_str)
        }

        fn required(&self, name: &str) -> Result<&str> {
            self.get(name)
                .ok_or_else(|| Failure::Usage(format!("--{name} is required")))
        }

        fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
            match self.get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| Failure::Usage(format!("--{name}: not a number: {v:?}"))),
            }
        }
    }

    fn check_dataset(name: &str) -> Result<()> {
        let ok = !name.is_empty()
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if ok {
            Ok(())
        } else {
            Err(Failure::Usage(format!(
                "--dataset {name:?}: use letters, digits, '-', '_' and '.'"
            )))
        }
    }

    // ---------------------------------------------------------------------
    // Progress and numbers.

    /// Prints to stderr at most once a second.
    struct Progress {
        last: Option<Instant>,
    }

    impl Progress {
        fn new() -> Self {
            Progress { last: None }
        }

        fn tick(&mut self, message: impl FnOnce() -> String) {
            let now = Instant::now();
            if self
                .last
                .is_none_or(|l| now.duration_since(l) >= Duration::from_secs(1))
            {
                self.last = Some(now);
                eprintln!("{}", message());
            }
        }
    }

    /// `1234567` as `1,234,567`.
    pub(crate) fn grouped(n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    fn per_second(n: u64, elapsed: Duration) -> u64 {
        let s = elapsed.as_secs_f64();
        if s > 0.0 { (n as f64 / s) as u64 } else { 0 }
    }

    fn now_rfc3339() -> String {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        spatial_query::model::format_timestamp(ms)
    }

    // ---------------------------------------------------------------------
    // Build: sorted runs.

    /// Code, id, input position.
    type SortKey = (u64, u128, u64);

    /// An asset with its sort key: the cell code, then the id, then the
    /// position in the input (so duplicates keep their input order and the
    /// order is total).
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Keyed {
        pub(crate) code: u64,
        pub(crate) seq: u64,
        pub(crate) asset: Asset,
    }

    impl Keyed {
        fn key(&self) -> SortKey {
            (self.code, self.asset.id.as_u128(), self.seq)
        }

        /// Bytes it holds in memory, roughly (the allocator's share of the
        /// version string included).
        fn memory(&self) -> usize {
            std::mem::size_of::<Keyed>() + (self.asset.algorithm_version.capacity() + 31) / 16 * 16
        }
    }

    /// Fixed part of a spilled record: code, seq, id, eight doubles,
    /// duration, processed-at, version length.
    const RECORD_FIXED: usize = 8 + 8 + 16 + 8 * 8 + 4 + 8 + 2;

    /// Writes one record of a spill file (little-endian, fixed fields then
    /// the version's bytes).
    pub(crate) fn write_record(out: &mut impl Write, k: &Keyed) -> io::Result<()> {
        let a = &k.asset;
        let mut buf = [0u8; RECORD_FIXED];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&k.code.to_le_bytes());
        put(&k.seq.to_le_bytes());
        put(&a.id.as_u128().to_le_bytes());
        for v in [
            a.lon,
            a.lat,
            a.z,
            a.deformation[0],
            a.deformation[1],
            a.deformation[2],
            a.registration_quality,
            a.fusion_confidence,
        ] {
            put(&v.to_bits().to_le_bytes());
        }
        put(&a.processing_duration_ms.to_le_bytes());
        put(&a.processed_at_ms.to_le_bytes());
        let version = a.algorithm_version.as_bytes();
        let len = u16::try_from(version.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "version too long"))?;
        put(&len.to_le_bytes());
        out.write_all(&buf)?;
        out.write_all(version)
    }

    /// Reads one record written by [`write_record`].
    pub(crate) fn read_record(input: &mut impl Read) -> io::Result<Keyed> {
        let mut buf = [0u8; RECORD_FIXED];
        input.read_exact(&mut buf)?;
        let mut at = 0;
        let mut take = |n: usize| {
            let s = &buf[at..at + n];
            at += n;
            s
        };
        let word = |s: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(s);
            u64::from_le_bytes(w)
        };
        let code = word(take(8));
        let seq = word(take(8));
        let mut id = [0u8; 16];
        id.copy_from_slice(take(16));
        let mut d = [0f64; 8];
        for v in &mut d {
            *v = f64::from_bits(word(take(8)));
        }
        let mut dur = [0u8; 4];
        dur.copy_from_slice(take(4));
        let processed_at_ms = word(take(8)) as i64;
        let len = {
            let s = take(2);
            u16::from_le_bytes([s[0], s[1]]) as usize
        };
        let mut version = vec![0u8; len];
        input.read_exact(&mut version)?;
        let algorithm_version = String::from_utf8(version)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "damaged spill record"))?;
        Ok(Keyed {
            code,
            seq,
            asset: Asset {
                id: Uuid::from_u128(u128::from_le_bytes(id)),
                lon: d[0],
                lat: d[1],
                z: d[2],
                deformation: [d[3], d[4], d[5]],
                registration_quality: d[6],
                fusion_confidence: d[7],
                processing_duration_ms: u32::from_le_bytes(dur),
                algorithm_version,
                processed_at_ms,
            },
        })
    }

    /// A sorted run spilled to disk; the file is removed when dropped.
    struct SpillFile {
        path: PathBuf,
        count: u64,
    }

    impl Drop for SpillFile {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.path);
        }
    }

    /// Collects assets within a memory budget, spilling sorted runs.
    struct Sorter {
        dir: PathBuf,
        budget: usize,
        run: Vec<Keyed>,
        run_bytes: usize,
        spilled: Vec<SpillFile>,
        next_file: u64,
        /// How many runs were sorted (spilled ones and the last).
        runs_sorted: u64,
    }

    fn sort_run(run: &mut [Keyed]) {
        run.sort_unstable_by_key(|k| k.key());
    }

    impl Sorter {
        fn new(dir: &Path, budget: usize) -> Sorter {
            Sorter {
                dir: dir.to_owned(),
                budget,
                run: Vec::new(),
                run_bytes: 0,
                spilled: Vec::new(),
                next_file: 0,
                runs_sorted: 0,
            }
        }

        fn slots(&self) -> usize {
            (self.budget / std::mem::size_of::<Keyed>()).max(1)
        }

        /// Adds an asset; spills when the budget is reached.
        fn push(&mut self, k: Keyed, progress: &mut Progress) -> io::Result<()> {
            if self.run.len() == self.run.capacity() {
                // Grow towards, never beyond, the budget's worth of slots.
                let room = self.slots().saturating_sub(self.run.len());
                let more = self.run.len().max(1024).min(room).max(1);
                self.run.reserve_exact(more);
            }
            self.run_bytes += k.memory();
            self.run.push(k);
            if self.run_bytes >= self.budget || self.run.len() >= self.slots() {
                self.spill(progress)?;
            }
            Ok(())
        }

        fn new_spill_path(&mut self) -> PathBuf {
            self.next_file += 1;
            self.dir
                .join(format!(".spill-{}-{}", std::process::id(), self.next_file))
        }

        fn spill(&mut self, progress: &mut Progress) -> io::Result<()> {
            sort_run(&mut self.run);
            self.runs_sorted += 1;
            let (n, count) = (self.runs_sorted, self.run.len());
            progress.tick(|| format!("sorted run {n} ({} assets)", grouped(count as u64)));
            let path = self.new_spill_path();
            let file = SpillFile {
                path: path.clone(),
                count: self.run.len() as u64,
            };
            let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
            for k in self.run.drain(..) {
                write_record(&mut out, &k)?;
            }
            out.flush()?;
            self.spilled.push(file);
            self.run_bytes = 0;
            if self.spilled.len() >= 2 * FAN_IN {
                self.compact()?;
            }
            Ok(())
        }

        /// Merges the oldest `FAN_IN` spilled runs into one.
        fn compact(&mut self) -> io::Result<()> {
            let group: Vec<SpillFile> = self.spilled.drain(..FAN_IN).collect();
            let path = self.new_spill_path();
            let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
            let mut merger = Merger::new(group.iter(), Vec::new())?;
            let mut count = 0;
            while let Some(k) = merger.next()? {
                write_record(&mut out, &k)?;
                count += 1;
            }
            out.flush()?;
            drop(merger);
            drop(group);
            self.spilled.insert(0, SpillFile { path, count });
            Ok(())
        }

        /// Everything, in order.
        fn finish(mut self, progress: &mut Progress) -> io::Result<(Merger, SortStats)> {
            if !self.run.is_empty() || self.spilled.is_empty() {
                sort_run(&mut self.run);
                self.runs_sorted += 1;
                let (n, count) = (self.runs_sorted, self.run.len());
                progress.tick(|| format!("sorted run {n} ({} assets)", grouped(count as u64)));
            }
            while self.spilled.len() > FAN_IN {
                self.compact()?;
            }
            let stats = SortStats {
                runs: self.runs_sorted,
                spilled: self.next_file,
            };
            let run = std::mem::take(&mut self.run);
            let mut merger = Merger::new(self.spilled.iter(), run)?;
            merger.files = std::mem::take(&mut self.spilled);
            Ok((merger, stats))
        }
    }

    #[derive(Debug, Clone, Copy)]
    struct SortStats {
        runs: u64,
        spilled: u64,
    }

    enum Source {
        Memory(std::vec::IntoIter<Keyed>),
        File { input: BufReader<File>, left: u64 },
    }

    impl Source {
        fn next(&mut self) -> io::Result<Option<Keyed>> {
            match self {
                Source::Memory(it) => Ok(it.next()),
                Source::File { input, left } => {
                    if *left == 0 {
                        return Ok(None);
                    }
                    *left -= 1;
                    read_record(input).map(Some)
                }
            }
        }
    }

    /// A k-way merge of sorted runs.
    struct Merger {
        sources: Vec<Source>,
        heads: Vec<Option<Keyed>>,
        heap: BinaryHeap<Reverse<(SortKey, usize)>>,
        /// The spill files being read (removed when the merger is dropped).
        files: Vec<SpillFile>,
    }

    impl Merger {
        fn new<'a>(
            files: impl Iterator<Item = &'a SpillFile>,
            memory: Vec<Keyed>,
        ) -> io::Result<Merger> {
            let mut sources = Vec::new();
            for f in files {
                sources.push(Source::File {
                    input: BufReader::with_capacity(64 * 1024, File::open(&f.path)?),
                    left: f.count,
                });
            }
            sources.push(Source::Memory(memory.into_iter()));
            let mut merger = Merger {
                heads: (0..sources.len()).map(|_| None).collect(),
                sources,
                heap: BinaryHeap::new(),
                files: Vec::new(),
            };
            for i in 0..merger.sources.len() {
                merger.refill(i)?;
            }
            Ok(merger)
        }

        fn refill(&mut self, i: usize) -> io::Result<()> {
            if let Some(k) = self.sources[i].next()? {
                self.heap.push(Reverse((k.key(), i)));
                self.heads[i] = Some(k);
            }
            Ok(())
        }

        fn next(&mut self) -> io::Result<Option<Keyed>> {
            let Some(Reverse((_, i))) = self.heap.pop() else {
                return Ok(None);
            };
            let k = self.heads[i].take();
            self.refill(i)?;
            Ok(k)
        }
    }

    // ---------------------------------------------------------------------
    // Build.

    /// What a build did, for the summary line and `--json-summary`.
    #[derive(Debug, Default)]
    struct Summary {
        features: u64,
        assets: u64,
        rejected: u64,
        duplicates: u64,
        tiles: u64,
        tile_bytes: u64,
        manifest_bytes: u64,
        runs: u64,
        spilled_runs: u64,
        read_s: f64,
        elapsed_s: f64,
    }

    impl Summary {
        fn bytes_per_asset(&self) -> f64 {
            if self.assets == 0 {
                0.0
            } else {
                self.tile_bytes as f64 / self.assets as f64
            }
        }

        fn assets_per_s(&self) -> f64 {
            if self.elapsed_s > 0.0 {
                self.assets as f64 / self.elapsed_s
            } else {
                0.0
            }
        }

        fn to_json(&self) -> Value {
            json!({
                "features": self.features,
                "assets": self.assets,
                "rejected": self.rejected,
                "duplicates": self.duplicates,
                "tiles": self.tiles,
                "tile_bytes": self.tile_bytes,
                "manifest_bytes": self.manifest_bytes,
                "bytes_per_asset": self.bytes_per_asset(),
                "sorted_runs": self.runs,
                "spilled_runs": self.spilled_runs,
                "read_s": self.read_s,
                "elapsed_s": self.elapsed_s,
                "assets_per_s": self.assets_per_s(),
            })
        }
    }

    fn format_from(path: &str, given: Option<&str>) -> Result<InputFormat> {
        let name = match given {
            Some(f) => f.to_ascii_lowercase(),
            None => Path::new(path)
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .unwrap_or_default(),
        };
        match name.as_str() {
            "ndjson" | "jsonl" | "geojsonl" | "geojsonseq" => Ok(InputFormat::NdJson),
            "geojson" | "json" => Ok(InputFormat::GeoJson),
            _ if given.is_some() => Err(Failure::Usage(format!(
                "--format {name:?}: use ndjson or geojson"
            ))),
            _ => Err(Failure::Usage(format!(
                "cannot tell the format of {path:?} from its extension: give --format"
            ))),
        }
    }

    fn show_rejection(r: &Rejection) {
        eprintln!("rejected: {}", describe_rejection(r));
    }

    fn show_duplicate(seq: u64, id: Uuid, later: u64) {
        eprintln!(
            "rejected: feature {seq}: id {id}: field id: duplicate id (feature {later} has it too, and wins)"
        );
    }

    fn describe_rejection(r: &Rejection) -> String {
        let mut s = format!("feature {}", r.index);
        if let Some(line) = r.line {
            let _ = write!(s, " (line {line})");
        }
        if let Some(id) = &r.id {
            let _ = write!(s, ": id {id}");
        }
        if !r.field.is_empty() {
            let _ = write!(s, ": field {}", r.field);
        }
        let _ = write!(s, ": {}", r.reason);
        s
    }

    /// Writes tiles as the partitioner emits them.
    struct TileWriter<'a> {
        out: &'a Path,
        dataset: &'a str,
        run: u32,
        made_dirs: Option<PathBuf>,
        entries: Vec<TileEntry>,
        assets: u64,
        bytes: u64,
    }

    impl TileWriter<'_> {
        fn write(&mut self, cell: CellId, assets: &[Asset]) -> Result<()> {
            let key = manifest::tile_key(self.dataset, self.run, cell);
            let bytes = Tile::encode(assets);
            write_key(self.out, &key, &bytes, &mut self.made_dirs)?;
            self.entries
                .push(TileEntry::describe(cell, self.run, assets));
            self.assets += assets.len() as u64;
            self.bytes += bytes.len() as u64;
            Ok(())
        }
    }

    /// Writes `bytes` to `out/key`, creating the key's folders.
    fn write_key(
        out: &Path,
        key: &str,
        bytes: &[u8],
        made: &mut Option<PathBuf>,
    ) -> anyhow::Result<()> {
        let path = out.join(key);
        if let Some(parent) = path.parent()
            && made.as_deref() != Some(parent)
        {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            *made = Some(parent.to_owned());
        }
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    }

    /// Counts what the reader produced, keeping the assets.
    fn take_features(
        pending: &mut Vec<Result<Asset, Rejection>>,
        summary: &mut Summary,
        sorter: &mut Sorter,
        ids: &mut Vec<(u128, u64)>,
        progress: &mut Progress,
    ) -> io::Result<()> {
        for r in pending.drain(..) {
            let seq = summary.features;
            summary.features += 1;
            match r {
                Ok(asset) => {
                    ids.push((asset.id.as_u128(), seq));
                    let code = partition::morton(asset.lon, asset.lat);
                    sorter.push(Keyed { code, seq, asset }, progress)?;
                }
                Err(rejection) => {
                    summary.rejected += 1;
                    if summary.rejected <= SHOWN_REJECTIONS {
                        show_rejection(&rejection);
                    }
                }
            }
        }
        Ok(())
    }

    fn build(o: &Options) -> Result<()> {
        o.check_known(&[
            "input",
            "format",
            "out",
            "dataset",
            "run",
            "capacity",
            "memory-mb",
            "json-summary",
        ])?;
        let input = o.required("input")?;
        let format = format_from(input, o.get("format"))?;
        let out = PathBuf::from(o.required("out")?);
        let dataset = o.get("dataset").unwrap_or("assets");
        check_dataset(dataset)?;
        let run: u32 = o.number("run", 1)?;
        let capacity: usize = o.number("capacity", 4096)?;
        if capacity == 0 || capacity > u32::MAX as usize {
            return Err(Failure::Usage("--capacity must be at least 1".into()));
        }
        // Fractions are allowed (tests use them to make many small runs).
        let memory_mb: f64 = o.number("memory-mb", 512.0)?;
        if !(memory_mb > 0.0 && memory_mb <= 1e7) {
            return Err(Failure::Usage("--memory-mb must be positive".into()));
        }
        let started = Instant::now();
        fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

        let mut source: Box<dyn Read> = if input == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(input).with_context(|| format!("opening {input}"))?)
        };

        // Read and sort.
        let mut summary = Summary::default();
        let mut progress = Progress::new();
        let mut sorter = Sorter::new(&out, (memory_mb * 1_048_576.0) as usize);
        let mut reader = FeatureReader::new(format, IngestLimits::default());
        let mut pending: Vec<Result<Asset, Rejection>> = Vec::new();
        // Every id with its input position: the last write of an id wins.
        let mut ids: Vec<(u128, u64)> = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        let mut offset = 0u64;
        let input_failure = |e: spatial_query::ingest::IngestError, offset: u64, features: u64| {
            Failure::Input(format!(
                "{input}: {e} (after {offset} bytes and {features} features)"
            ))
        };
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow!(e).context(format!("reading {input}")).into()),
            };
            let outcome = reader.push(&buf[..n], &mut |r| pending.push(r));
            take_features(
                &mut pending,
                &mut summary,
                &mut sorter,
                &mut ids,
                &mut progress,
            )?;
            offset += n as u64;
            outcome.map_err(|e| input_failure(e, offset, summary.features))?;
            let (features, rejected) = (summary.features, summary.rejected);
            progress.tick(|| {
                format!(
                    "read {} features ({}/s), {} rejected",
                    grouped(features),
                    grouped(per_second(features, started.elapsed())),
                    grouped(rejected)
                )
            });
        }
        let outcome = reader.finish(&mut |r| pending.push(r));
        take_features(
            &mut pending,
            &mut summary,
            &mut sorter,
            &mut ids,
            &mut progress,
        )?;
        outcome.map_err(|e| input_failure(e, offset, summary.features))?;
        summary.read_s = started.elapsed().as_secs_f64();

        // Merge, cut into tiles, write.
        let (mut merger, sort_stats) = sorter.finish(&mut progress)?;
        summary.runs = sort_stats.runs;
        summary.spilled_runs = sort_stats.spilled;
        let mut writer = TileWriter {
            out: &out,
            dataset,
            run,
            made_dirs: None,
            entries: Vec::new(),
            assets: 0,
            bytes: 0,
        };
        // The last input position of each id.
        ids.sort_unstable();
        let mut latest: Vec<(u128, u64)> = Vec::with_capacity(ids.len());
        for (id, seq) in ids {
            match latest.last_mut() {
                Some(last) if last.0 == id => last.1 = seq,
                _ => latest.push((id, seq)),
            }
        }
        let mut partitioner = Partitioner::new(capacity);
        let mut emitted: Vec<(CellId, Vec<Asset>)> = Vec::new();
        while let Some(k) = merger.next()? {
            let id = k.asset.id.as_u128();
            let last_seq = latest
                .binary_search_by_key(&id, |e| e.0)
                .map(|i| latest[i].1)
                .unwrap_or(k.seq);
            if last_seq != k.seq {
                summary.rejected += 1;
                summary.duplicates += 1;
                if summary.rejected <= SHOWN_REJECTIONS {
                    show_duplicate(k.seq, k.asset.id, last_seq);
                }
                continue;
            }
            partitioner
                .push(k.code, k.asset, &mut |c, t| emitted.push((c, t)))
                .map_err(|e| anyhow!(e))?;
            for (cell, assets) in emitted.drain(..) {
                writer.write(cell, &assets)?;
            }
            let tiles = writer.entries.len();
            progress.tick(|| format!("wrote {} tiles", grouped(tiles as u64)));
        }
        partitioner.finish(&mut |c, t| emitted.push((c, t)));
        for (cell, assets) in emitted.drain(..) {
            writer.write(cell, &assets)?;
        }
        drop(merger);

        // Manifest and head.
        summary.assets = writer.assets;
        summary.tiles = writer.entries.len() as u64;
        summary.tile_bytes = writer.bytes;
        let directory: Vec<u128> = latest.iter().map(|e| e.0).collect();
        write_key(
            &out,
            &manifest::ids_key(dataset, run),
            &spatial_query::dataset::directory_bytes(&directory, run),
            &mut None,
        )?;
        drop(latest);
        let manifest = Manifest::new(std::mem::take(&mut writer.entries)).encode();
        summary.manifest_bytes = manifest.len() as u64;
        write_key(
            &out,
            &manifest::manifest_key(dataset, run),
            &manifest,
            &mut None,
        )?;
        let head = Head {
            run,
            assets: summary.assets,
            tiles: summary.tiles,
            tile_bytes: summary.tile_bytes,
            updated_at: now_rfc3339(),
        };
        let head_json = serde_json::to_vec_pretty(&head).map_err(|e| anyhow!(e))?;
        fs::write(out.join("head.json"), head_json).context("writing head.json")?;

        summary.elapsed_s = started.elapsed().as_secs_f64();
        eprintln!(
            "built {} assets into {} tiles: {} bytes ({:.1} bytes/asset), manifest {} bytes; \
             {} rejected ({} duplicate ids); {} sorted runs, {} spilled; {:.2} s, {} assets/s",
            grouped(summary.assets),
            grouped(summary.tiles),
            grouped(summary.tile_bytes),
            summary.bytes_per_asset(),
            grouped(summary.manifest_bytes),
            grouped(summary.rejected),
            grouped(summary.duplicates),
            summary.runs,
            summary.spilled_runs,
            summary.elapsed_s,
            grouped(summary.assets_per_s() as u64),
        );
        if let Some(path) = o.get("json-summary") {
            let text = serde_json::to_string_pretty(&summary.to_json()).map_err(|e| anyhow!(e))?;
            fs::write(path, text + "\n").with_context(|| format!("writing {path}"))?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------------
    // Reading a built directory.

    /// A built run in a directory.
    struct Built {
        dataset: String,
        run: u32,
        head: Option<Value>,
        manifest: Manifest,
        manifest_key: String,
        manifest_bytes: Vec<u8>,
    }

    fn read_built(dir: &Path, dataset: Option<&str>, run: Option<u32>) -> Result<Built> {
        let head_path = dir.join("head.json");
        let head: Option<Value> = match fs::read(&head_path) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", head_path.display()))?,
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound && run.is_some() => None,
            Err(e) => {
                return Err(anyhow!(e)
                    .context(format!("reading {}", head_path.display()))
                    .into());
            }
        };
        let run = match (run, &head) {
            (Some(r), _) => r,
            (None, Some(h)) => {
                let h: Head = serde_json::from_value(h.clone())
                    .with_context(|| format!("reading {}", head_path.display()))?;
                h.run
            }
            (None, None) => return Err(Failure::Usage("no head.json: give --run".into())),
        };
        let dataset = match dataset {
            Some(d) => {
                check_dataset(d)?;
                d.to_owned()
            }
            None => {
                let mut found = Vec::new();
                if let Ok(dirs) = fs::read_dir(dir.join("sq")) {
                    for d in dirs.flatten() {
                        let name = d.file_name().to_string_lossy().into_owned();
                        if dir.join(manifest::manifest_key(&name, run)).is_file() {
                            found.push(name);
                        }
                    }
                }
                match found.len() {
                    1 => found.remove(0),
                    0 => {
                        return Err(Failure::Other(anyhow!(
                            "no manifest for run {run} under {}",
                            dir.join("sq").display()
                        )));
                    }
                    _ => {
                        found.sort();
                        return Err(Failure::Usage(format!(
                            "manifests of run {run} for several datasets ({}): give --dataset",
                            found.join(", ")
                        )));
                    }
                }
            }
        };
        let manifest_key = manifest::manifest_key(&dataset, run);
        let path = dir.join(&manifest_key);
        let manifest_bytes =
            fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let manifest =
            Manifest::decode(&manifest_bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Ok(Built {
            dataset,
            run,
            head,
            manifest,
            manifest_key,
            manifest_bytes,
        })
    }

    // ---------------------------------------------------------------------
    // Stats.

    fn stats(o: &Options) -> Result<()> {
        o.check_known(&["dir", "dataset", "run"])?;
        let dir = PathBuf::from(o.required("dir")?);
        let run = match o.get("run") {
            Some(_) => Some(o.number("run", 0u32)?),
            None => None,
        };
        let built = read_built(&dir, o.get("dataset"), run)?;
        let entries = built.manifest.entries();
        let assets: u64 = entries.iter().map(|e| u64::from(e.count)).sum();
        let min = entries.iter().map(|e| e.count).min().unwrap_or(0);
        let max = entries.iter().map(|e| e.count).max().unwrap_or(0);
        let avg = if entries.is_empty() {
            0.0
        } else {
            assets as f64 / entries.len() as f64
        };
        let mut levels: BTreeMap<u8, u64> = BTreeMap::new();
        let mut runs: BTreeMap<u32, u64> = BTreeMap::new();
        let (mut bytes, mut missing) = (0u64, 0u64);
        for e in entries {
            *levels.entry(e.cell.level).or_default() += 1;
            *runs.entry(e.run).or_default() += 1;
            match fs::metadata(dir.join(e.key(&built.dataset))) {
                Ok(m) => bytes += m.len(),
                Err(_) => missing += 1,
            }
        }
        println!("dataset {}, run {}", built.dataset, built.run);
        println!("tiles: {}", grouped(entries.len() as u64));
        println!("assets: {}", grouped(assets));
        println!("assets per tile: min {min}, avg {avg:.1}, max {max}");
        println!("tiles by level:");
        let widest = levels.values().copied().max().unwrap_or(1).max(1);
        for (level, n) in &levels {
            let bar = "#".repeat(((n * 40).div_ceil(widest)) as usize);
            println!("  {level:>2} {:>9} {bar}", grouped(*n));
        }
        if runs.len() > 1 {
            let list: Vec<String> = runs.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            println!("tiles by run: {}", list.join(", "));
        }
        let per_asset = if assets > 0 {
            bytes as f64 / assets as f64
        } else {
            0.0
        };
        println!(
            "bytes: tiles {} ({per_asset:.1} per asset), manifest {}",
            grouped(bytes),
            grouped(built.manifest_bytes.len() as u64)
        );
        if missing > 0 {
            println!("missing tile files: {}", grouped(missing));
        }
        if let Some(head) = &built.head {
            let h = |k: &str| head.get(k).cloned().unwrap_or(Value::Null);
            println!(
                "head: run {}, assets {}, tiles {}, tile_bytes {}, updated_at {}",
                h("run"),
                h("assets"),
                h("tiles"),
                h("tile_bytes"),
                h("updated_at")
            );
        }
        Ok(())
    }

    // ---------------------------------------------------------------------
    // Upload.

    /// `{url}{prefix}`, the prefix starting and ending with `/`.
    pub(crate) fn base_url(url: &str, prefix: &str) -> String {
        let url = url.trim_end_matches('/');
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            format!("{url}/")
        } else {
            format!("{url}/{prefix}/")
        }
    }

    /// Percent-encodes each `/`-separated segment of a key.
    pub(crate) fn encode_key(key: &str) -> String {
        let mut out = String::with_capacity(key.len());
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
        out
    }

    /// The PUT of one blob.
    pub(crate) fn blob_request(
        base: &str,
        key: &str,
        token: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<http::Request<Vec<u8>>> {
        Ok(http::Request::builder()
            .method("PUT")
            .uri(format!("{base}_spatial/blobs/{}", encode_key(key)))
            .header("content-type", "application/octet-stream")
            .header("authorization", format!("Bearer {token}"))
            .body(body)?)
    }

    /// The POST publishing a head.
    pub(crate) fn publish_request(
        base: &str,
        token: &str,
        head: &Value,
        expected_run: Option<u32>,
    ) -> anyhow::Result<http::Request<Vec<u8>>> {
        let body = serde_json::to_vec(&json!({"head": head, "expected_run": expected_run}))?;
        Ok(http::Request::builder()
            .method("POST")
            .uri(format!("{base}_spatial/publish"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(body)?)
    }

    /// Sends a request; the status and body.
    fn send(agent: &ureq::Agent, request: http::Request<Vec<u8>>) -> anyhow::Result<(u16, String)> {
        let response = agent.run(request)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .unwrap_or_default();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    fn shorten(text: &str) -> String {
        const MAX: usize = 2000;
        if text.len() <= MAX {
            return text.trim_end().to_owned();
        }
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    }

    /// PUTs one blob, trying up to three times; transport errors, 408,
    /// 429 and 5xx are retried, other refusals not.
    fn put_blob(
        agent: &ureq::Agent,
        base: &str,
        token: &str,
        key: &str,
        body: &[u8],
    ) -> anyhow::Result<()> {
        let mut problem = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(250 * 4u64.pow(attempt - 1)));
            }
            let request = blob_request(base, key, token, body.to_vec())?;
            match send(agent, request) {
                Ok((status, _)) if (200..300).contains(&status) => return Ok(()),
                Ok((status, text)) => {
                    problem = format!("{status}: {}", shorten(&text));
                    if !(status == 408 || status == 429 || status >= 500) {
                        break;
                    }
                }
                Err(e) => problem = format!("{e:#}"),
            }
        }
        bail!("PUT {key} failed: {problem}")
    }

    fn upload(o: &Options) -> Result<()> {
        o.check_known(&[
            "dir",
            "url",
            "token-env",
            "prefix",
            "expected-run",
            "dataset",
            "jobs",
        ])?;
        let dir = PathBuf::from(o.required("dir")?);
        let url = o.required("url")?;
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(Failure::Usage(format!("--url {url:?}: not an http URL")));
        }
        let token_env = o.get("token-env").unwrap_or("SPATIAL_ADMIN_TOKEN");
        let token = std::env::var(token_env)
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Failure::Usage(format!("the environment variable {token_env} is not set"))
            })?;
        let base = base_url(url, o.get("prefix").unwrap_or("/"));
        let expected_run = match o.get("expected-run") {
            None | Some("null") => None,
            Some(_) => Some(o.number("expected-run", 0u32)?),
        };
        let jobs: usize = o.number("jobs", 4)?;
        let built = read_built(&dir, o.get("dataset"), None)?;
        let head = built
            .head
            .clone()
            .ok_or_else(|| anyhow!("no head.json in {}", dir.display()))?;
        let mut keys: Vec<String> = built
            .manifest
            .entries()
            .iter()
            .map(|e| e.key(&built.dataset))
            .collect();
        for k in &keys {
            if !dir.join(k).is_file() {
                return Err(anyhow!(
                    "{} is listed in the manifest but missing",
                    dir.join(k).display()
                )
                .into());
            }
        }
        // The id directory (when the build wrote one), then the manifest.
        let ids_key = manifest::ids_key(&built.dataset, built.run);
        if dir.join(&ids_key).is_file() {
            keys.push(ids_key);
        }
        keys.push(built.manifest_key.clone());

        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let started = Instant::now();
        let next = AtomicUsize::new(0);
        let sent = AtomicU64::new(0);
        let bytes = AtomicU64::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let progress = Mutex::new(Progress::new());
        // The manifest last, once every tile is in.
        let (tiles, manifest_key) = keys.split_at(keys.len() - 1);
        let total = keys.len() as u64;
        let worker = |list: &[String]| {
            while !failed.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(key) = list.get(i) else { break };
                let outcome = fs::read(dir.join(key))
                    .with_context(|| format!("reading {}", dir.join(key).display()))
                    .and_then(|body| {
                        put_blob(&agent, &base, &token, key, &body).map(|()| body.len() as u64)
                    });
                match outcome {
                    Ok(n) => {
                        let done = sent.fetch_add(1, Ordering::Relaxed) + 1;
                        let b = bytes.fetch_add(n, Ordering::Relaxed) + n;
                        if let Ok(mut p) = progress.lock() {
                            p.tick(|| {
                                format!(
                                    "uploaded {}/{} blobs ({} bytes, {}/s)",
                                    grouped(done),
                                    grouped(total),
                                    grouped(b),
                                    grouped(per_second(b, started.elapsed()))
                                )
                            });
                        }
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                }
            }
        };
        std::thread::scope(|s| {
            for _ in 0..jobs.clamp(1, 32) {
                s.spawn(|| worker(tiles));
            }
        });
        if !failed.load(Ordering::Relaxed) {
            next.store(0, Ordering::Relaxed);
            worker(manifest_key);
        }
        if let Some(e) = first_error.lock().ok().and_then(|mut s| s.take()) {
            return Err(e.into());
        }
        eprintln!(
            "uploaded {} blobs ({} bytes) in {:.2} s",
            grouped(sent.load(Ordering::Relaxed)),
            grouped(bytes.load(Ordering::Relaxed)),
            started.elapsed().as_secs_f64()
        );

        let (status, text) = send(&agent, publish_request(&base, &token, &head, expected_run)?)
            .context("POST _spatial/publish")?;
        println!("publish: {status}");
        if (200..300).contains(&status) {
            if !text.trim().is_empty() {
                println!("{}", shorten(&text));
            }
            Ok(())
        } else {
            Err(anyhow!("publish refused ({status}): {}", shorten(&text)).into())
        }
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    mod tests {
        use super::*;

        fn keyed(n: u32, version: &str) -> Keyed {
            Keyed {
                code: u64::from(n) * 77,
                seq: u64::from(n),
                asset: Asset {
                    id: Uuid::from_u128(0xabcd_u128 << 100 | u128::from(n)),
                    lon: -179.5 + f64::from(n),
                    lat: 89.25,
                    z: -0.0,
                    deformation: [1.5, f64::MIN_POSITIVE, -3.0],
                    registration_quality: 0.0,
                    fusion_confidence: 1.0,
                    processing_duration_ms: u32::MAX - n,
                    algorithm_version: version.into(),
                    processed_at_ms: -1_000 + i64::from(n),
                },
            }
        }

        #[test]
        fn records_round_trip() {
            let records = [keyed(1, "fusion-2.3.1"), keyed(2, ""), keyed(3, "é-ü")];
            let mut bytes = Vec::new();
            for r in &records {
                write_record(&mut bytes, r).unwrap();
            }
            let mut input = &bytes[..];
            for r in &records {
                let back = read_record(&mut input).unwrap();
                assert_eq!(&back, r);
                assert_eq!(back.asset.z.to_bits(), r.asset.z.to_bits());
            }
            assert!(input.is_empty());
        }

        #[test]
        fn numbers_are_grouped() {
            assert_eq!(grouped(0), "0");
            assert_eq!(grouped(999), "999");
            assert_eq!(grouped(1000), "1,000");
            assert_eq!(grouped(1_234_567), "1,234,567");
        }

        #[test]
        fn options_parse() {
            let args: Vec<String> = ["--a", "1", "--b=x"].map(String::from).into();
            let o = Options::parse(&args).unwrap();
            assert_eq!(o.get("a"), Some("1"));
            assert_eq!(o.get("b"), Some("x"));
            assert!(o.check_known(&["a"]).is_err());
            assert!(Options::parse(&["--a".to_owned()]).is_err());
            assert!(Options::parse(&["a".to_owned()]).is_err());
        }

        #[test]
        fn requests_are_built() {
            let base = base_url("http://127.0.0.1:8791/", "/");
            assert_eq!(base, "http://127.0.0.1:8791/");
            assert_eq!(base_url("http://h", "api"), "http://h/api/");
            assert_eq!(base_url("http://h", "/api/"), "http://h/api/");
            let r = blob_request(&base, "sq/a b/t/1/3-1f-0", "secret", vec![1, 2]).unwrap();
            assert_eq!(r.method(), "PUT");
            assert_eq!(
                r.uri().to_string(),
                "http://127.0.0.1:8791/_spatial/blobs/sq/a%20b/t/1/3-1f-0"
            );
            assert_eq!(r.headers()["content-type"], "application/octet-stream");
            assert_eq!(r.headers()["authorization"], "Bearer secret");
            assert_eq!(r.body(), &vec![1, 2]);

            let head = json!({"run": 2, "assets": 1});
            let r = publish_request(&base_url("http://h", "x"), "t", &head, None).unwrap();
            assert_eq!(r.method(), "POST");
            assert_eq!(r.uri().to_string(), "http://h/x/_spatial/publish");
            assert_eq!(r.headers()["content-type"], "application/json");
            let body: Value = serde_json::from_slice(r.body()).unwrap();
            assert_eq!(body, json!({"head": head, "expected_run": null}));
            let r = publish_request("http://h/", "t", &head, Some(1)).unwrap();
            let body: Value = serde_json::from_slice(r.body()).unwrap();
            assert_eq!(body["expected_run"], 1);
        }

        #[test]
        fn formats_from_extensions() {
            assert!(matches!(
                format_from("a.ndjson", None),
                Ok(InputFormat::NdJson)
            ));
            assert!(matches!(
                format_from("a.GeoJSON", None),
                Ok(InputFormat::GeoJson)
            ));
            assert!(matches!(
                format_from("a.txt", Some("ndjson")),
                Ok(InputFormat::NdJson)
            ));
            assert!(format_from("a.txt", None).is_err());
            assert!(format_from("a.ndjson", Some("csv")).is_err());
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
