//! Where merged metrics live: one key per (window, function, shard) in the
//! atomic store, merged by a store transaction, and an index of those keys.
//!
//! On Workers the aggregator's Durable Objects run [`merge_transaction`]
//! next to each value (one round trip, serialized per key); on Spin every
//! component runs it in a compare-and-swap loop on the shared key-value
//! store, spread over a few shards to keep contention low. Readers find
//! the keys through [`INDEX_KEY`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{MetricsBatch, Window};
use crate::platform::{
    Applied, AtomicStore, Clock, StoreError, Timestamp, Transaction, update_json,
};

/// The transaction name the aggregator's store runs.
pub const MERGE_TRANSACTION: &str = "edge-metrics-merge";
/// The key listing which window keys exist.
pub const INDEX_KEY: &str = "metrics:index";
/// Windows expire from the store after this long, whatever the reader keeps.
pub const MAX_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most (function, shard) entries one window indexes.
const MAX_INDEX_ENTRIES: usize = 256;
/// Compare-and-swap attempts before a merge gives up.
const MAX_ATTEMPTS: u32 = 64;

/// The key of one window of one function's shard.
pub fn window_key(start: u64, function: &str, shard: u32) -> String {
    format!("metrics:w:{start}:{function}:{shard}")
}

/// Which window keys exist: window start → `function:shard` entries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Window start → entries.
    pub windows: BTreeMap<u64, BTreeSet<String>>,
}

impl Index {
    /// The store keys of the window starting at `start`.
    pub fn keys(&self, start: u64) -> Vec<String> {
        self.windows
            .get(&start)
            .into_iter()
            .flatten()
            .map(|entry| format!("metrics:w:{start}:{entry}"))
            .collect()
    }
}

/// The batch ids a stored window remembers (the latest ones), enough for
/// any retry to find its own: a retry follows its failure by a flush.
const MAX_BATCH_IDS: usize = 512;

/// A merge's input: one window of one batch.
#[derive(Serialize, Deserialize)]
struct MergeInput {
    /// The batch's id (empty: merged every time).
    #[serde(default)]
    batch: String,
    window: Window,
}

/// A window as stored: the merged window and the batches merged into it.
/// (Values written before batches had ids are a bare [`Window`].)
#[derive(Serialize, Deserialize)]
struct StoredWindow {
    window: Window,
    #[serde(default)]
    batches: VecDeque<String>,
}

fn stored_window(bytes: &[u8]) -> Result<StoredWindow, String> {
    serde_json::from_slice::<StoredWindow>(bytes)
        .or_else(|_| {
            serde_json::from_slice::<Window>(bytes).map(|window| StoredWindow {
                window,
                batches: VecDeque::new(),
            })
        })
        .map_err(|e| format!("stored window: {e}"))
}

/// Merges the window in `input` into the stored one (the store
/// transaction [`MERGE_TRANSACTION`]), once per batch id: a retried batch
/// that was merged already changes nothing. Its output is `created` when
/// the key was new, so the writer indexes it.
pub fn merge_transaction(
    _name: &str,
    input: &[u8],
    current: Option<&[u8]>,
    _now: Timestamp,
) -> Result<Applied, String> {
    let incoming: MergeInput =
        serde_json::from_slice(input).map_err(|e| format!("metrics window: {e}"))?;
    let start = incoming.window.start;
    let (mut stored, created) = match current {
        Some(bytes) => (stored_window(bytes)?, false),
        None => (
            StoredWindow {
                window: Window::new(start),
                batches: VecDeque::new(),
            },
            true,
        ),
    };
    let seen = !incoming.batch.is_empty() && stored.batches.contains(&incoming.batch);
    if !seen {
        stored.window.merge(&incoming.window);
        if !incoming.batch.is_empty() {
            stored.batches.push_back(incoming.batch);
            while stored.batches.len() > MAX_BATCH_IDS {
                stored.batches.pop_front();
            }
        }
    }
    let value = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
    Ok(Applied {
        value: Some(value),
        expires_at: Some(Timestamp(Duration::from_secs(start) + MAX_RETENTION)),
        output: if created {
            b"created".to_vec()
        } else {
            Vec::new()
        },
    })
}

/// Merges `batch` into the store under `shard` and indexes new keys.
pub async fn write_batch(
    store: &dyn AtomicStore,
    clock: &dyn Clock,
    batch: &MetricsBatch,
    shard: u32,
) -> Result<(), StoreError> {
    for window in &batch.windows {
        let input = serde_json::to_vec(&MergeInput {
            batch: batch.id.clone(),
            window: window.clone(),
        })
        .map_err(|e| StoreError::Corrupt {
            key: batch.source.clone(),
            reason: e.to_string(),
        })?;
        let key = window_key(window.start, &batch.source, shard);
        let tx = Transaction {
            name: MERGE_TRANSACTION,
            input: &input,
            run: merge_transaction,
            clock,
            max_attempts: MAX_ATTEMPTS,
        };
        if store.transact(&key, &tx).await? == b"created" {
            let entry = format!("{}:{shard}", batch.source);
            update_index(store, |index| {
                let entries = index.windows.entry(window.start).or_default();
                if entries.len() < MAX_INDEX_ENTRIES {
                    entries.insert(entry.clone());
                }
            })
            .await?;
        }
    }
    Ok(())
}

/// Reads the index (empty when there is none).
pub async fn read_index(store: &dyn AtomicStore) -> Result<Index, StoreError> {
    match store.get(INDEX_KEY).await? {
        None => Ok(Index::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            key: INDEX_KEY.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Changes the index in a compare-and-swap loop. A corrupt index is an
/// error, not replaced: a fresh one would lose track of every window key.
pub async fn update_index(
    store: &dyn AtomicStore,
    change: impl FnMut(&mut Index),
) -> Result<(), StoreError> {
    update_json(store, INDEX_KEY, MAX_ATTEMPTS, change).await
}

/// The windows starting in `from..=to` (seconds), each merged over its
/// functions and shards, oldest first.
pub async fn read_windows(
    store: &dyn AtomicStore,
    index: &Index,
    from: u64,
    to: u64,
) -> Result<Vec<Window>, StoreError> {
    let mut windows = Vec::new();
    for &start in index.windows.range(from..=to).map(|(start, _)| start) {
        let mut window = Window::new(start);
        for key in index.keys(start) {
            if let Some(bytes) = store.get(&key).await? {
                let part = stored_window(&bytes).map_err(|reason| StoreError::Corrupt {
                    key: key.clone(),
                    reason,
                })?;
                window.merge(&part.window);
            }
        }
        windows.push(window);
    }
    Ok(windows)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::memory::{FakeClock, MemoryStore};
    use crate::metrics::Recorder;

    fn at(s: u64) -> Timestamp {
        Timestamp(Duration::from_secs(s))
    }

    /// A batch applied in part (the store failed after its first window)
    /// or whole (its answer was lost) and sent again counts once.
    #[test]
    fn a_retried_batch_counts_once_whatever_was_applied_before() {
        futures::executor::block_on(async {
            let clock = FakeClock::at(at(0));
            let r = Recorder::new();
            for minute in 0..3u64 {
                for _ in 0..10 {
                    r.record("a", "/x", "GET", 200, 0.01, at(minute * 60 + 5));
                }
            }
            let mut batch = r.take("a").unwrap();
            batch.id = "batch-1".into();
            let store = MemoryStore::new();
            // The store failed after the first window: what it applied.
            let first = MetricsBatch {
                windows: batch.windows[..1].to_vec(),
                ..batch.clone()
            };
            write_batch(&store, &clock, &first, 0).await.unwrap();
            // The flush is retried: the whole batch.
            write_batch(&store, &clock, &batch, 0).await.unwrap();
            // The answer was lost: the same batch once more.
            write_batch(&store, &clock, &batch, 0).await.unwrap();
            let index = read_index(&store).await.unwrap();
            let windows = read_windows(&store, &index, 0, 1_000).await.unwrap();
            let counts: Vec<u64> = windows.iter().map(Window::requests).collect();
            assert_eq!(counts, [10, 10, 10]);
            // Without an id a batch is merged every time it comes.
            batch.id.clear();
            write_batch(&store, &clock, &batch, 0).await.unwrap();
            let windows = read_windows(&store, &index, 0, 1_000).await.unwrap();
            assert_eq!(windows[0].requests(), 20);
        });
    }

    #[test]
    fn batches_from_several_isolates_merge_exactly() {
        futures::executor::block_on(async {
            let store = MemoryStore::new();
            let clock = FakeClock::at(at(0));
            for (isolate, function) in [(0, "a"), (1, "a"), (2, "b")] {
                let r = Recorder::new();
                for i in 0..100 {
                    r.record(function, "/x", "GET", 200, f64::from(i) * 1e-3, at(60));
                }
                r.record(function, "/x", "GET", 503, 0.2, at(125));
                let batch = r.take(function).unwrap();
                write_batch(&store, &clock, &batch, isolate % 2)
                    .await
                    .unwrap();
            }
            let index = read_index(&store).await.unwrap();
            assert_eq!(index.windows.len(), 2);
            assert_eq!(index.keys(60).len(), 3, "{index:?}");
            let windows = read_windows(&store, &index, 0, 120).await.unwrap();
            assert_eq!(windows.len(), 2);
            assert_eq!(windows[0].requests(), 300);
            assert_eq!(windows[1].requests(), 3);
            let a = windows[0]
                .series
                .iter()
                .find(|(k, _)| k.function == "a")
                .unwrap()
                .1;
            assert_eq!(a.count(), 200);
            let p50 = a.quantile(0.5).unwrap();
            assert!((p50 / 0.049 - 1.0).abs() <= 0.01, "{p50}");
        });
    }
}
