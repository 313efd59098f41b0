//! The manifest: one entry per tile (its cell, the run that wrote it, the
//! box its assets span and summaries the filters prune with) and a packed
//! R-tree over those boxes, so a query finds the tiles it touches without
//! reading any other. The head record names the current manifest.
//!
//! Tiles are immutable: a new batch is written as new tiles under a new
//! run number and a new manifest listing old and new, then the head is
//! swapped atomically. Readers may cache tiles for ever and the manifest
//! until the head moves.

use serde::{Deserialize, Serialize};

use crate::geodesy::{BoxSet, LonLatBox};
use crate::model::Asset;
use crate::packed;
use crate::partition::CellId;

const MAGIC: u64 = u64::from_le_bytes(*b"SQMANI01");
/// A manifest with an override table after the entries.
const MAGIC_KEYED: u64 = u64::from_le_bytes(*b"SQMANI02");
const ENTRY_WORDS: usize = 11;
/// Words per `(id, run)` of an id list (the overrides, the dataset's id
/// directory): id (high, low), run.
const ID_RUN_WORDS: usize = 3;
/// The run an override names for a deleted asset (runs start at 1).
pub const DELETED: u32 = 0;

/// One tile as the manifest knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TileEntry {
    /// Its cell.
    pub cell: CellId,
    /// The run (ingest batch or build) that wrote it.
    pub run: u32,
    /// How many assets.
    pub count: u32,
    /// The box its assets span.
    pub bbox: LonLatBox,
    /// Earliest and latest processing time, ms.
    pub time: (i64, i64),
    /// The largest fusion confidence in it.
    pub max_confidence: f64,
    /// The largest deformation magnitude in it.
    pub max_magnitude: f64,
}

impl TileEntry {
    /// The entry describing `assets` (not empty).
    pub fn describe(cell: CellId, run: u32, assets: &[Asset]) -> TileEntry {
        let mut e = TileEntry {
            cell,
            run,
            count: assets.len() as u32,
            bbox: [
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ],
            time: (i64::MAX, i64::MIN),
            max_confidence: 0.0,
            max_magnitude: 0.0,
        };
        for a in assets {
            e.bbox = [
                e.bbox[0].min(a.lon),
                e.bbox[1].min(a.lat),
                e.bbox[2].max(a.lon),
                e.bbox[3].max(a.lat),
            ];
            e.time = (
                e.time.0.min(a.processed_at_ms),
                e.time.1.max(a.processed_at_ms),
            );
            e.max_confidence = e.max_confidence.max(a.fusion_confidence);
            e.max_magnitude = e.max_magnitude.max(a.magnitude());
        }
        e
    }

    /// The tile's key in the store.
    pub fn key(&self, dataset: &str) -> String {
        tile_key(dataset, self.run, self.cell)
    }
}

/// The store key of a tile.
pub fn tile_key(dataset: &str, run: u32, cell: CellId) -> String {
    format!(
        "sq/{dataset}/t/{run}/{}-{:x}-{}",
        cell.level, cell.code, cell.part
    )
}

/// The store key of a manifest.
pub fn manifest_key(dataset: &str, run: u32) -> String {
    format!("sq/{dataset}/m/{run}")
}

/// The store key of the id directory of a run: every live id of the
/// dataset as of that run, and the run holding it.
pub fn ids_key(dataset: &str, run: u32) -> String {
    format!("sq/{dataset}/m/{run}.ids")
}

/// The store key of the head record.
pub fn head_key(dataset: &str) -> String {
    format!("sq/{dataset}/head")
}

/// The head record: which manifest is current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// The latest run; its manifest is current.
    pub run: u32,
    /// Assets in the dataset.
    pub assets: u64,
    /// Tiles in the dataset.
    pub tiles: u64,
    /// Bytes of tiles in the store.
    pub tile_bytes: u64,
    /// When the head last moved, RFC 3339.
    pub updated_at: String,
}

/// A decoded manifest.
///
/// An asset id is a key: a later write of an id replaces the earlier one
/// and a delete removes it, while tiles stay immutable. Where an id has
/// versions in tiles of more than one run (or was deleted), the override
/// table names the run holding the live version ([`DELETED`]: none), and
/// every other version is dead: skipped by queries, not counted.
#[derive(Debug, Clone)]
pub struct Manifest {
    entries: Vec<TileEntry>,
    rtree: Vec<u8>,
    /// Sorted by id: (id, run of the live version or [`DELETED`]).
    overrides: Vec<(u128, u32)>,
    /// Versions in the tiles that are dead (replaced or deleted).
    dead: u64,
}

/// A manifest that could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("damaged manifest: {0}")]
pub struct ManifestError(&'static str);

impl Manifest {
    /// A manifest of `entries`.
    pub fn new(entries: Vec<TileEntry>) -> Manifest {
        Manifest::keyed(entries, Vec::new(), 0)
    }

    /// A manifest of `entries` with overrides (any order; the last of an
    /// id counts) and the count of dead versions they make.
    pub fn keyed(entries: Vec<TileEntry>, mut overrides: Vec<(u128, u32)>, dead: u64) -> Manifest {
        let rtree = packed::build(entries.iter().map(|e| e.bbox));
        // Stable: the last of equal ids is kept.
        overrides.sort_by_key(|o| o.0);
        let mut kept: Vec<(u128, u32)> = Vec::with_capacity(overrides.len());
        for o in overrides {
            match kept.last_mut() {
                Some(last) if last.0 == o.0 => *last = o,
                _ => kept.push(o),
            }
        }
        Manifest {
            entries,
            rtree,
            overrides: kept,
            dead,
        }
    }

    /// Whether the version of `id` in a tile of `run` is the live one.
    pub fn live(&self, id: u128, run: u32) -> bool {
        if self.overrides.is_empty() {
            return true;
        }
        match self.overrides.binary_search_by_key(&id, |o| o.0) {
            Ok(i) => self.overrides[i].1 == run,
            Err(_) => true,
        }
    }

    /// The override of `id`, if it has one.
    pub fn override_of(&self, id: u128) -> Option<u32> {
        self.overrides
            .binary_search_by_key(&id, |o| o.0)
            .ok()
            .map(|i| self.overrides[i].1)
    }

    /// The overrides, by id.
    pub fn overrides(&self) -> &[(u128, u32)] {
        &self.overrides
    }

    /// Dead versions in the tiles.
    pub fn dead(&self) -> u64 {
        self.dead
    }

    /// Live assets: the tiles' counts less the dead versions.
    pub fn live_assets(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| u64::from(e.count))
            .sum::<u64>()
            .saturating_sub(self.dead)
    }

    /// The entries.
    pub fn entries(&self) -> &[TileEntry] {
        &self.entries
    }

    /// The entries whose boxes meet one of `boxes`, each once.
    pub fn touching(&self, boxes: &BoxSet) -> Vec<&TileEntry> {
        let mut hits: Vec<u32> = boxes
            .0
            .iter()
            .flat_map(|b| packed::search(&self.rtree, b))
            .collect();
        hits.sort_unstable();
        hits.dedup();
        hits.iter()
            .filter_map(|&i| self.entries.get(i as usize))
            .collect()
    }

    /// Its size in memory.
    pub fn memory_bytes(&self) -> usize {
        self.entries.len() * std::mem::size_of::<TileEntry>() + self.rtree.len()
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let keyed = !self.overrides.is_empty() || self.dead > 0;
        let mut out = Vec::with_capacity(
            40 + self.rtree.len() + self.entries.len() * 88 + self.overrides.len() * 24,
        );
        let magic = if keyed { MAGIC_KEYED } else { MAGIC };
        for w in [magic, self.entries.len() as u64, self.rtree.len() as u64] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.rtree);
        out.resize(out.len().div_ceil(8) * 8, 0);
        for e in &self.entries {
            let words = [
                e.bbox[0].to_bits(),
                e.bbox[1].to_bits(),
                e.bbox[2].to_bits(),
                e.bbox[3].to_bits(),
                u64::from(e.count) | u64::from(e.run) << 32,
                u64::from(e.cell.level) | u64::from(e.cell.part) << 8,
                e.cell.code,
                e.time.0 as u64,
                e.time.1 as u64,
                e.max_confidence.to_bits(),
                e.max_magnitude.to_bits(),
            ];
            for w in words {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        if keyed {
            for w in [self.dead, self.overrides.len() as u64] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            put_id_runs(&mut out, &self.overrides);
        }
        out
    }

    /// Reads a stored manifest, checking its structure.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let word = |i: usize| word_at(bytes, i).ok_or(ManifestError("truncated"));
        let keyed = match word(0)? {
            MAGIC => false,
            MAGIC_KEYED => true,
            _ => return Err(ManifestError("magic")),
        };
        let count = usize::try_from(word(1)?).map_err(|_| ManifestError("count"))?;
        // Every entry takes ENTRY_WORDS words of the bytes: a larger count
        // is damage, refused before any offset is computed from it.
        if count > bytes.len() / (8 * ENTRY_WORDS) {
            return Err(ManifestError("count"));
        }
        let rtree_len = usize::try_from(word(2)?).map_err(|_| ManifestError("r-tree"))?;
        let rtree = bytes
            .get(24..24usize.saturating_add(rtree_len))
            .ok_or(ManifestError("r-tree"))?
            .to_vec();
        let start = (24usize.saturating_add(rtree_len)).div_ceil(8);
        let entries_end = count
            .checked_mul(ENTRY_WORDS)
            .and_then(|n| n.checked_add(start))
            .ok_or(ManifestError("length"))?;
        let (dead, n_overrides) = if keyed {
            let n =
                usize::try_from(word(entries_end + 1)?).map_err(|_| ManifestError("overrides"))?;
            (word(entries_end)?, n)
        } else {
            (0, 0)
        };
        let expected_words = if keyed {
            n_overrides
                .checked_mul(ID_RUN_WORDS)
                .and_then(|n| n.checked_add(entries_end + 2))
        } else {
            Some(entries_end)
        };
        if expected_words.and_then(|w| w.checked_mul(8)) != Some(bytes.len()) {
            return Err(ManifestError("length"));
        }
        if !packed::check(&rtree, count) {
            return Err(ManifestError("r-tree"));
        }
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let w = |k: usize| word(start + i * ENTRY_WORDS + k);
            let level = (w(5)? & 0xff) as u8;
            if level > crate::partition::MAX_LEVEL {
                return Err(ManifestError("level"));
            }
            entries.push(TileEntry {
                bbox: [
                    f64::from_bits(w(0)?),
                    f64::from_bits(w(1)?),
                    f64::from_bits(w(2)?),
                    f64::from_bits(w(3)?),
                ],
                count: (w(4)? & 0xffff_ffff) as u32,
                run: (w(4)? >> 32) as u32,
                cell: CellId {
                    level,
                    part: (w(5)? >> 8) as u32,
                    code: w(6)?,
                },
                time: (w(7)? as i64, w(8)? as i64),
                max_confidence: f64::from_bits(w(9)?),
                max_magnitude: f64::from_bits(w(10)?),
            });
        }
        let overrides = read_id_runs(
            bytes,
            entries_end + 2,
            n_overrides,
            ["overrides", "overrides order"],
        )
        .map_err(ManifestError)?;
        Ok(Manifest {
            entries,
            rtree,
            overrides,
            dead,
        })
    }
}

/// The little-endian word `i` (bytes `8 i..8 i + 8`) of `bytes`, if there.
pub(crate) fn word_at(bytes: &[u8], i: usize) -> Option<u64> {
    let start = i.checked_mul(8)?;
    let b = bytes.get(start..start.checked_add(8)?)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    Some(u64::from_le_bytes(w))
}

/// Appends an id list: per `(id, run)`, the id's high and low words and the
/// run, little-endian.
pub(crate) fn put_id_runs(out: &mut Vec<u8>, list: &[(u128, u32)]) {
    for &(id, run) in list {
        for w in [(id >> 64) as u64, id as u64, u64::from(run)] {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
}

/// Reads the `n` `(id, run)` of an id list from word `start` of `bytes`
/// on, ids strictly ascending ([`put_id_runs`]'s form). The error is
/// `"truncated"` or, for a run that is not a `u32` and for ids out of
/// order, the caller's `[run, order]`.
pub(crate) fn read_id_runs(
    bytes: &[u8],
    start: usize,
    n: usize,
    [bad_run, bad_order]: [&'static str; 2],
) -> Result<Vec<(u128, u32)>, &'static str> {
    let mut out: Vec<(u128, u32)> = Vec::with_capacity(n);
    for i in 0..n {
        let w = |k: usize| word_at(bytes, start + i * ID_RUN_WORDS + k).ok_or("truncated");
        let id = u128::from(w(0)?) << 64 | u128::from(w(1)?);
        let run = u32::try_from(w(2)?).map_err(|_| bad_run)?;
        if out.last().is_some_and(|&(last, _)| last >= id) {
            return Err(bad_order);
        }
        out.push((id, run));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::partition::partition;
    use crate::tile::tests::asset;

    #[test]
    fn round_trip_and_touching() {
        let assets: Vec<Asset> = (0..2000)
            .map(|i| asset(i, f64::from(i % 50) - 25.0, f64::from(i / 50) - 20.0))
            .collect();
        let entries: Vec<TileEntry> = partition(assets, 64)
            .iter()
            .map(|(c, t)| TileEntry::describe(*c, 1, t))
            .collect();
        let m = Manifest::new(entries);
        let back = Manifest::decode(&m.encode()).unwrap();
        assert_eq!(back.entries(), m.entries());
        let q = BoxSet(vec![[0.0, 0.0, 3.0, 3.0]]);
        let touched = back.touching(&q);
        assert!(!touched.is_empty() && touched.len() < back.entries().len());
        for e in back.entries() {
            let hit = touched.contains(&e);
            assert_eq!(hit, q.intersects(&e.bbox));
        }
        let bytes = m.encode();
        assert!(Manifest::decode(&bytes[..bytes.len() - 1]).is_err());

        // With overrides: the same entries, the table read back.
        let keyed = Manifest::keyed(m.entries().to_vec(), vec![(9, 3), (4, DELETED), (9, 5)], 2);
        let back = Manifest::decode(&keyed.encode()).unwrap();
        assert_eq!(back.overrides(), &[(4, DELETED), (9, 5)]);
        assert_eq!(back.dead(), 2);
        assert_eq!(back.live_assets(), 1998);
        assert!(back.live(9, 5) && !back.live(9, 3) && !back.live(4, 1) && back.live(5, 1));
        let bytes = keyed.encode();
        assert!(Manifest::decode(&bytes[..bytes.len() - 8]).is_err());
    }

    /// Found with `fuzz/` (spatial_store): a damaged manifest whose entry
    /// count is near `usize::MAX / 88` overflowed the word offsets (a panic
    /// in debug builds) instead of being refused as damaged.
    #[test]
    fn huge_counts_are_damage_not_overflow() {
        for magic in [MAGIC, MAGIC_KEYED] {
            for count in [(1u64 << 61) / 11, u64::MAX / 11, u64::MAX] {
                let mut bytes = Vec::new();
                for w in [magic, count, 0, 0, 0] {
                    bytes.extend_from_slice(&w.to_le_bytes());
                }
                assert!(Manifest::decode(&bytes).is_err(), "count {count}");
            }
        }
        assert_eq!(word_at(&[0; 16], usize::MAX / 4), None);
    }
}
