//! A dataset in the platform store, as one isolate sees it: the head
//! (strongly consistent store), the current manifest and a bounded cache of
//! tiles (both from the eventually consistent store; they never change
//! once written, so caching them is always safe).
//!
//! Writes add a run: a batch's tiles under a run number taken from an
//! atomic counter (so two writers never share keys), a manifest listing the
//! old tiles and the new, then a compare-and-swap of the head. A writer
//! that loses the swap lists its tiles again on top of the new head.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use async_trait::async_trait;
use edge_core::{AtomicStore, CasOutcome, KeyValueStore, StoreError};

use crate::manifest::{self, DELETED, Head, Manifest, TileEntry};
use crate::model::{self, Asset};
use crate::partition;
use crate::query::TileSource;
use crate::tile::Tile;

/// Times a writer retries a lost head swap.
const MAX_PUBLISH_ATTEMPTS: u32 = 8;

const DIRECTORY_MAGIC: u64 = u64::from_le_bytes(*b"SQIDS001");

/// Every live id of the dataset as of a run, with the run whose tile holds
/// it, sorted by id: how a write finds the ids it replaces. Stored beside
/// the run's manifest ([`manifest::ids_key`]); a run without one (a
/// dataset published by the tile builder, or written before ids were
/// keys) has it rebuilt from its tiles on the next write.
#[derive(Debug, Default)]
struct Directory(Vec<(u128, u32)>);

impl Directory {
    fn get(&self, id: u128) -> Option<u32> {
        self.0
            .binary_search_by_key(&id, |e| e.0)
            .ok()
            .map(|i| self.0[i].1)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 24 * self.0.len());
        for w in [DIRECTORY_MAGIC, self.0.len() as u64] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        manifest::put_id_runs(&mut out, &self.0);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Directory, DatasetError> {
        let damaged = |what: &str| DatasetError::Damaged(format!("id directory: {what}"));
        let word = |i: usize| manifest::word_at(bytes, i).ok_or_else(|| damaged("truncated"));
        if word(0)? != DIRECTORY_MAGIC {
            return Err(damaged("magic"));
        }
        let n = usize::try_from(word(1)?).map_err(|_| damaged("count"))?;
        if n.checked_mul(24).and_then(|b| b.checked_add(16)) != Some(bytes.len()) {
            return Err(damaged("length"));
        }
        let entries = manifest::read_id_runs(bytes, 2, n, ["run", "order"]).map_err(damaged)?;
        Ok(Directory(entries))
    }

    /// This directory with `ids` (sorted, distinct) now in `run`.
    fn with(&self, ids: &[u128], run: u32) -> Directory {
        let mut out = Vec::with_capacity(self.0.len() + ids.len());
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() || j < ids.len() {
            match (self.0.get(i), ids.get(j)) {
                (Some(&(a, r)), Some(&b)) if a < b => {
                    out.push((a, r));
                    i += 1;
                }
                (Some(&(a, _)), Some(&b)) if a == b => {
                    out.push((b, run));
                    i += 1;
                    j += 1;
                }
                (_, Some(&b)) => {
                    out.push((b, run));
                    j += 1;
                }
                (Some(&e), None) => {
                    out.push(e);
                    i += 1;
                }
                (None, None) => break,
            }
        }
        Directory(out)
    }

    /// This directory without `id`.
    fn without(&self, id: u128) -> Directory {
        Directory(self.0.iter().copied().filter(|e| e.0 != id).collect())
    }
}

/// The stored id directory of a dataset built in one run: `ids` sorted and
/// distinct, all in `run` (what the tile builder writes beside its
/// manifest, so the first write after a publish need not read every tile).
pub fn directory_bytes(ids: &[u128], run: u32) -> Vec<u8> {
    Directory(ids.iter().map(|&id| (id, run)).collect()).encode()
}

/// What a write starts from: the current manifest's entries, overrides
/// and dead count (healed of any id live in two runs), and its directory.
struct Base {
    head: Option<(Head, Vec<u8>)>,
    entries: Vec<TileEntry>,
    overrides: BTreeMap<u128, u32>,
    dead: u64,
    directory: Directory,
}

/// What a dataset operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something stored is not what it should be.
    #[error("{0}")]
    Damaged(String),
    /// A publish named a run that is not the current one.
    #[error("the head moved: run {current} is current, not {expected}")]
    Moved {
        /// The current run.
        current: u32,
        /// The run the caller expected.
        expected: u32,
    },
}

/// The cached view of one dataset.
pub struct DatasetCache {
    name: String,
    head_ttl_ms: u64,
    current: RefCell<Option<Current>>,
    tiles: RefCell<TileLru>,
}

#[derive(Clone)]
struct Current {
    head: Head,
    manifest: Rc<Manifest>,
    checked_at_ms: u64,
}

impl DatasetCache {
    /// The dataset `name`; the head is re-read after `head_ttl_ms`, and at
    /// most `tile_budget` bytes of tiles are kept.
    pub fn new(name: &str, head_ttl_ms: u64, tile_budget: usize) -> Self {
        DatasetCache {
            name: name.to_owned(),
            head_ttl_ms,
            current: RefCell::new(None),
            tiles: RefCell::new(TileLru::new(tile_budget)),
        }
    }

    /// The dataset's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current head and manifest (`None`: nothing published yet).
    pub async fn current(
        &self,
        store: &dyn AtomicStore,
        kv: &dyn KeyValueStore,
        now_ms: u64,
    ) -> Result<Option<(Head, Rc<Manifest>)>, DatasetError> {
        let cached = self.current.borrow().clone();
        if let Some(c) = &cached
            && now_ms.saturating_sub(c.checked_at_ms) < self.head_ttl_ms
        {
            return Ok(Some((c.head.clone(), c.manifest.clone())));
        }
        let Some((head, _)) = self.read_head(store).await? else {
            return Ok(None);
        };
        let manifest = match cached {
            Some(c) if c.head.run == head.run => c.manifest,
            _ => Rc::new(self.read_manifest(kv, head.run).await?),
        };
        *self.current.borrow_mut() = Some(Current {
            head: head.clone(),
            manifest: manifest.clone(),
            checked_at_ms: now_ms,
        });
        Ok(Some((head, manifest)))
    }

    async fn read_head(
        &self,
        store: &dyn AtomicStore,
    ) -> Result<Option<(Head, Vec<u8>)>, DatasetError> {
        let Some(bytes) = store.get(&manifest::head_key(&self.name)).await? else {
            return Ok(None);
        };
        let head = serde_json::from_slice(&bytes)
            .map_err(|e| DatasetError::Damaged(format!("head record: {e}")))?;
        Ok(Some((head, bytes)))
    }

    async fn read_manifest(
        &self,
        kv: &dyn KeyValueStore,
        run: u32,
    ) -> Result<Manifest, DatasetError> {
        let key = manifest::manifest_key(&self.name, run);
        let bytes = kv
            .get(&key)
            .await?
            .ok_or_else(|| DatasetError::Damaged(format!("manifest of run {run} is missing")))?;
        Manifest::decode(&bytes).map_err(|e| DatasetError::Damaged(e.to_string()))
    }

    /// The tiles, read through the cache.
    pub fn source<'a>(&'a self, kv: &'a dyn KeyValueStore) -> StoreTiles<'a> {
        StoreTiles { cache: self, kv }
    }

    /// Bytes of tiles cached now.
    pub fn cached_bytes(&self) -> usize {
        self.tiles.borrow().bytes
    }

    /// Adds a batch as a new run and publishes it; returns the new head.
    ///
    /// An id is a key: a write of an id already in the dataset replaces it
    /// (the older version is overridden, not counted, never returned), and
    /// within the batch the last write of an id wins.
    pub async fn ingest(
        &self,
        assets: Vec<Asset>,
        capacity: usize,
        store: &dyn AtomicStore,
        kv: &dyn KeyValueStore,
        now: &str,
    ) -> Result<Head, DatasetError> {
        let assets = model::last_of_each_id(assets);
        let mut ids: Vec<u128> = assets.iter().map(|a| a.id.as_u128()).collect();
        ids.sort_unstable();
        let run = self.next_run(store).await?;
        let mut added = Vec::new();
        let mut bytes = 0u64;
        for (cell, tile) in partition::partition(assets, capacity) {
            let entry = TileEntry::describe(cell, run, &tile);
            let encoded = Tile::encode(&tile);
            bytes += encoded.len() as u64;
            kv.set(&entry.key(&self.name), &encoded).await?;
            added.push(entry);
        }
        for _ in 0..MAX_PUBLISH_ATTEMPTS {
            let mut base = self.base(store, kv).await?;
            for &id in &ids {
                let existed = base.directory.get(id).is_some();
                if existed {
                    base.dead += 1;
                }
                if existed || base.overrides.contains_key(&id) {
                    base.overrides.insert(id, run);
                }
            }
            let directory = base.directory.with(&ids, run);
            base.entries.extend(added.iter().cloned());
            let tile_bytes = base.head.as_ref().map_or(0, |(h, _)| h.tile_bytes) + bytes;
            if let Some(head) = self
                .commit(base, directory, run, tile_bytes, now, store, kv)
                .await?
            {
                return Ok(head);
            }
        }
        Err(DatasetError::Store(StoreError::Contention(
            MAX_PUBLISH_ATTEMPTS,
        )))
    }

    /// Deletes the asset `id` as a new run; `None` when there is no such
    /// asset.
    pub async fn delete(
        &self,
        id: uuid::Uuid,
        store: &dyn AtomicStore,
        kv: &dyn KeyValueStore,
        now: &str,
    ) -> Result<Option<Head>, DatasetError> {
        let id = id.as_u128();
        let mut run = None;
        for _ in 0..MAX_PUBLISH_ATTEMPTS {
            let mut base = self.base(store, kv).await?;
            if base.directory.get(id).is_none() {
                return Ok(None);
            }
            let run = match run {
                Some(r) => r,
                None => *run.insert(self.next_run(store).await?),
            };
            base.overrides.insert(id, DELETED);
            base.dead += 1;
            let directory = base.directory.without(id);
            let tile_bytes = base.head.as_ref().map_or(0, |(h, _)| h.tile_bytes);
            if let Some(head) = self
                .commit(base, directory, run, tile_bytes, now, store, kv)
                .await?
            {
                return Ok(Some(head));
            }
        }
        Err(DatasetError::Store(StoreError::Contention(
            MAX_PUBLISH_ATTEMPTS,
        )))
    }

    async fn next_run(&self, store: &dyn AtomicStore) -> Result<u32, DatasetError> {
        let run = store
            .increment(&format!("sq/{}/runs", self.name), 1)
            .await?;
        u32::try_from(run).map_err(|_| DatasetError::Damaged("run counter".into()))
    }

    /// The current head, manifest and directory, as a write starts from.
    async fn base(
        &self,
        store: &dyn AtomicStore,
        kv: &dyn KeyValueStore,
    ) -> Result<Base, DatasetError> {
        let Some((head, head_bytes)) = self.read_head(store).await? else {
            return Ok(Base {
                head: None,
                entries: Vec::new(),
                overrides: BTreeMap::new(),
                dead: 0,
                directory: Directory::default(),
            });
        };
        let manifest = self.read_manifest(kv, head.run).await?;
        let mut overrides: BTreeMap<u128, u32> = manifest.overrides().iter().copied().collect();
        let mut dead = manifest.dead();
        let directory = match kv.get(&manifest::ids_key(&self.name, head.run)).await? {
            Some(bytes) => Directory::decode(&bytes)?,
            None => {
                // Rebuilt from the tiles; an id live in two runs (written
                // before ids were keys) keeps its latest run.
                let source = self.source(kv);
                let mut all: Vec<(u128, u32)> = Vec::new();
                for entry in manifest.entries() {
                    let tile = source.tile(entry).await.map_err(DatasetError::Damaged)?;
                    for i in 0..tile.len() {
                        let id = tile.id(i).as_u128();
                        if manifest.live(id, entry.run) {
                            all.push((id, entry.run));
                        }
                    }
                }
                all.sort_unstable();
                let mut live: Vec<(u128, u32)> = Vec::with_capacity(all.len());
                for (id, run) in all {
                    match live.last_mut() {
                        Some(last) if last.0 == id => {
                            dead += 1;
                            last.1 = run;
                            overrides.insert(id, run);
                        }
                        _ => live.push((id, run)),
                    }
                }
                Directory(live)
            }
        };
        Ok(Base {
            head: Some((head, head_bytes)),
            entries: manifest.entries().to_vec(),
            overrides,
            dead,
            directory,
        })
    }

    /// Writes the manifest and directory of `run` and swaps the head to it;
    /// `None` when the swap was lost.
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        base: Base,
        directory: Directory,
        run: u32,
        tile_bytes: u64,
        now: &str,
        store: &dyn AtomicStore,
        kv: &dyn KeyValueStore,
    ) -> Result<Option<Head>, DatasetError> {
        let manifest = Manifest::keyed(
            base.entries,
            base.overrides.into_iter().collect(),
            base.dead,
        );
        let head = Head {
            run,
            assets: manifest.live_assets(),
            tiles: manifest.entries().len() as u64,
            tile_bytes,
            updated_at: now.to_owned(),
        };
        kv.set(&manifest::ids_key(&self.name, run), &directory.encode())
            .await?;
        kv.set(&manifest::manifest_key(&self.name, run), &manifest.encode())
            .await?;
        let previous = base.head.as_ref().map(|(_, b)| b.as_slice());
        Ok(self
            .swap_head(store, previous, &head)
            .await?
            .then_some(head))
    }

    /// Makes `head` current (its manifest and tiles already uploaded), if
    /// the current run is `expected_run` (`None`: whatever it is).
    pub async fn publish(
        &self,
        head: Head,
        expected_run: Option<u32>,
        store: &dyn AtomicStore,
        kv: &dyn KeyValueStore,
    ) -> Result<Head, DatasetError> {
        let manifest = self.read_manifest(kv, head.run).await?;
        let assets = manifest.live_assets();
        if assets != head.assets || manifest.entries().len() as u64 != head.tiles {
            return Err(DatasetError::Damaged(format!(
                "the head says {} assets in {} tiles, the manifest of run {} lists {} in {}",
                head.assets,
                head.tiles,
                head.run,
                assets,
                manifest.entries().len()
            )));
        }
        let previous = self.read_head(store).await?;
        if let Some(expected) = expected_run {
            let current = previous.as_ref().map_or(0, |(h, _)| h.run);
            if current != expected {
                return Err(DatasetError::Moved { current, expected });
            }
        }
        // Runs given by the tile builder must not be reused by ingest.
        let counter = format!("sq/{}/runs", self.name);
        let taken = store.increment(&counter, 0).await?;
        if i64::from(head.run) > taken {
            store
                .increment(&counter, i64::from(head.run) - taken)
                .await?;
        }
        if self
            .swap_head(store, previous.as_ref().map(|(_, b)| b.as_slice()), &head)
            .await?
        {
            Ok(head)
        } else {
            let current = self.read_head(store).await?.map_or(0, |(h, _)| h.run);
            Err(DatasetError::Moved {
                current,
                expected: expected_run.unwrap_or(current),
            })
        }
    }

    async fn swap_head(
        &self,
        store: &dyn AtomicStore,
        expected: Option<&[u8]>,
        head: &Head,
    ) -> Result<bool, DatasetError> {
        let bytes = serde_json::to_vec(head).map_err(|e| DatasetError::Damaged(e.to_string()))?;
        let outcome = store
            .compare_and_swap(&manifest::head_key(&self.name), expected, &bytes)
            .await?;
        if outcome == CasOutcome::Swapped {
            // Readers here see it at once.
            *self.current.borrow_mut() = None;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Tiles from the store through a [`DatasetCache`].
pub struct StoreTiles<'a> {
    cache: &'a DatasetCache,
    kv: &'a dyn KeyValueStore,
}

#[async_trait(?Send)]
impl TileSource for StoreTiles<'_> {
    async fn tile(&self, entry: &TileEntry) -> Result<Rc<Tile>, String> {
        let key = entry.key(&self.cache.name);
        if let Some(tile) = self.cache.tiles.borrow_mut().get(&key) {
            return Ok(tile);
        }
        let bytes = self
            .kv
            .get(&key)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("tile {key} is missing"))?;
        let tile = Rc::new(Tile::decode(&bytes).map_err(|e| format!("{key}: {e}"))?);
        if tile.len() != entry.count as usize {
            return Err(format!(
                "{key}: {} assets, the manifest says {}",
                tile.len(),
                entry.count
            ));
        }
        self.cache.tiles.borrow_mut().put(key, tile.clone());
        Ok(tile)
    }
}

/// Tiles kept by last use, within a byte budget.
struct TileLru {
    budget: usize,
    bytes: usize,
    tick: u64,
    map: HashMap<String, (Rc<Tile>, u64)>,
}

impl TileLru {
    fn new(budget: usize) -> Self {
        TileLru {
            budget,
            bytes: 0,
            tick: 0,
            map: HashMap::new(),
        }
    }

    fn get(&mut self, key: &str) -> Option<Rc<Tile>> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(key).map(|(tile, used)| {
            *used = tick;
            tile.clone()
        })
    }

    fn put(&mut self, key: String, tile: Rc<Tile>) {
        let size = tile.memory_bytes();
        if size > self.budget {
            return;
        }
        while self.bytes + size > self.budget {
            let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((t, _)) = self.map.remove(&oldest) {
                self.bytes -= t.memory_bytes();
            }
        }
        self.tick += 1;
        self.bytes += size;
        if let Some((old, _)) = self.map.insert(key, (tile, self.tick)) {
            self.bytes -= old.memory_bytes();
        }
    }
}

/// A dataset held whole in memory (the browser, tests): tiles decoded once.
pub struct MemoryDataset {
    /// Its manifest.
    pub manifest: Manifest,
    tiles: HashMap<(u32, partition::CellId), Rc<Tile>>,
}

impl MemoryDataset {
    /// Indexes `assets` into tiles of at most `capacity`.
    pub fn new(assets: Vec<Asset>, capacity: usize) -> Self {
        let mut entries = Vec::new();
        let mut tiles = HashMap::new();
        // An id is a key: its last write wins.
        let assets = model::last_of_each_id(assets);
        for (cell, tile) in partition::partition(assets, capacity) {
            entries.push(TileEntry::describe(cell, 1, &tile));
            let decoded = Tile::decode(&Tile::encode(&tile));
            if let Ok(t) = decoded {
                tiles.insert((1, cell), Rc::new(t));
            }
        }
        MemoryDataset {
            manifest: Manifest::new(entries),
            tiles,
        }
    }

    /// Assets held.
    pub fn len(&self) -> u64 {
        self.manifest
            .entries()
            .iter()
            .map(|e| u64::from(e.count))
            .sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait(?Send)]
impl TileSource for MemoryDataset {
    async fn tile(&self, entry: &TileEntry) -> Result<Rc<Tile>, String> {
        self.tiles
            .get(&(entry.run, entry.cell))
            .cloned()
            .ok_or_else(|| "tile missing".to_owned())
    }
}
