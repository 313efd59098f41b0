//! The cell scheme: a quadtree over the longitude/latitude rectangle, cells
//! numbered along the Z-order (Morton) curve. A dataset sorted by its
//! assets' level-30 codes is cut, in one pass, into the largest aligned
//! cells holding at most `capacity` assets each: dense areas get small
//! cells, sparse ones large, and no cell is ever held beyond `capacity + 1`
//! assets. A single level-30 cell (~4 cm) with more than `capacity` assets
//! is cut into parts.

use std::collections::VecDeque;

use crate::model::Asset;

/// The finest level: 2^30 cells across each axis.
pub const MAX_LEVEL: u8 = 30;

/// A tile's place: the cell (level and Morton prefix) and the part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellId {
    /// Quadtree level, 0 (the whole rectangle) to [`MAX_LEVEL`].
    pub level: u8,
    /// The cell's Morton code at its level.
    pub code: u64,
    /// Which part, when one finest cell holds more than a tile.
    pub part: u32,
}

/// The level-30 Morton code of a position.
pub fn morton(lon: f64, lat: f64) -> u64 {
    let scale = f64::from(1u32 << MAX_LEVEL);
    let max = (1u64 << MAX_LEVEL) - 1;
    let x = (((lon + 180.0) / 360.0 * scale) as u64).min(max);
    let y = (((lat + 90.0) / 180.0 * scale) as u64).min(max);
    spread(x) | spread(y) << 1
}

fn spread(v: u64) -> u64 {
    let mut v = v & 0x3fff_ffff;
    v = (v | v << 16) & 0x0000_ffff_0000_ffff;
    v = (v | v << 8) & 0x00ff_00ff_00ff_00ff;
    v = (v | v << 4) & 0x0f0f_0f0f_0f0f_0f0f;
    v = (v | v << 2) & 0x3333_3333_3333_3333;
    (v | v << 1) & 0x5555_5555_5555_5555
}

fn shift(level: u8) -> u32 {
    2 * u32::from(MAX_LEVEL - level)
}

/// Cuts a stream of assets, sorted by [`morton`] code, into tiles.
pub struct Partitioner {
    capacity: usize,
    buffer: VecDeque<(u64, Asset)>,
    /// The first code no emitted cell covers.
    covered_to: u64,
    /// A finest cell being emitted in parts: its code and the next part.
    open: Option<(u64, u32)>,
    last_code: u64,
}

/// Out-of-order input.
#[derive(Debug, thiserror::Error)]
#[error("assets are not sorted by cell code")]
pub struct Unsorted;

impl Partitioner {
    /// A partitioner making tiles of at most `capacity` assets.
    pub fn new(capacity: usize) -> Self {
        Partitioner {
            capacity: capacity.max(1),
            buffer: VecDeque::new(),
            covered_to: 0,
            open: None,
            last_code: 0,
        }
    }

    /// Adds the next asset (codes must not decrease); `emit` receives each
    /// finished tile.
    pub fn push(
        &mut self,
        code: u64,
        asset: Asset,
        emit: &mut dyn FnMut(CellId, Vec<Asset>),
    ) -> Result<(), Unsorted> {
        if code < self.last_code {
            return Err(Unsorted);
        }
        self.last_code = code;
        self.buffer.push_back((code, asset));
        while self.buffer.len() > self.capacity {
            self.cut(emit);
        }
        Ok(())
    }

    /// Emits what is left.
    pub fn finish(mut self, emit: &mut dyn FnMut(CellId, Vec<Asset>)) {
        while !self.buffer.is_empty() {
            self.cut(emit);
        }
    }

    /// Emits one tile from the front of the buffer: the largest aligned
    /// cell holding the first asset, not overlapping an emitted one, with at
    /// most `capacity` assets (the buffer holds more than `capacity` unless
    /// the input has ended, so the count is known).
    fn cut(&mut self, emit: &mut dyn FnMut(CellId, Vec<Asset>)) {
        let Some(&(first, _)) = self.buffer.front() else {
            return;
        };
        if let Some((code, part)) = self.open {
            if code == first {
                let n = self.count_below(code + 1).min(self.capacity);
                self.emit_front(
                    n,
                    CellId {
                        level: MAX_LEVEL,
                        code,
                        part,
                    },
                    emit,
                );
                self.open = Some((code, part + 1));
                self.covered_to = code + 1;
                return;
            }
            self.open = None;
        }
        for level in 0..=MAX_LEVEL {
            let s = shift(level);
            let start = first >> s << s;
            if start < self.covered_to {
                continue;
            }
            let end = start.saturating_add(1u64 << s);
            let n = self.count_below(end);
            if n <= self.capacity {
                self.emit_front(
                    n,
                    CellId {
                        level,
                        code: first >> s,
                        part: 0,
                    },
                    emit,
                );
                self.covered_to = end;
                return;
            }
            if level == MAX_LEVEL {
                self.emit_front(
                    self.capacity,
                    CellId {
                        level,
                        code: first,
                        part: 0,
                    },
                    emit,
                );
                self.open = Some((first, 1));
                self.covered_to = first + 1;
                return;
            }
        }
    }

    fn count_below(&self, end: u64) -> usize {
        self.buffer.partition_point(|(c, _)| *c < end)
    }

    fn emit_front(&mut self, n: usize, cell: CellId, emit: &mut dyn FnMut(CellId, Vec<Asset>)) {
        let assets = self.buffer.drain(..n).map(|(_, a)| a).collect();
        emit(cell, assets);
    }
}

/// Sorts assets by cell code and cuts them into tiles (the in-memory path;
/// the tile builder CLI sorts larger inputs on disk first).
pub fn partition(mut assets: Vec<Asset>, capacity: usize) -> Vec<(CellId, Vec<Asset>)> {
    let mut keyed: Vec<(u64, Asset)> = assets
        .drain(..)
        .map(|a| (morton(a.lon, a.lat), a))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
    let mut out = Vec::new();
    let mut p = Partitioner::new(capacity);
    for (code, asset) in keyed {
        // Sorted just above.
        let _ = p.push(code, asset, &mut |c, t| out.push((c, t)));
    }
    p.finish(&mut |c, t| out.push((c, t)));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tile::tests::asset;
    use proptest::prelude::*;

    fn cell_contains(c: &CellId, code: u64) -> bool {
        code >> shift(c.level) == c.code
    }

    fn check(assets: Vec<Asset>, capacity: usize) {
        let n = assets.len();
        let tiles = partition(assets, capacity);
        let mut seen = 0;
        for (i, (cell, tile)) in tiles.iter().enumerate() {
            assert!(tile.len() <= capacity && !tile.is_empty());
            for a in tile {
                assert!(cell_contains(cell, morton(a.lon, a.lat)));
            }
            // Cells never overlap, except the parts of one finest cell.
            for (other, _) in &tiles[..i] {
                let (a, b) = (cell, other);
                let overlap = cell_contains(a, b.code << shift(b.level))
                    || cell_contains(b, a.code << shift(a.level));
                assert!(!overlap || (a.level == MAX_LEVEL && a.code == b.code && a.part != b.part));
            }
            seen += tile.len();
        }
        assert_eq!(seen, n);
    }

    #[test]
    fn duplicates_beyond_capacity_become_parts() {
        let assets: Vec<Asset> = (0..25).map(|i| asset(i, 10.0, 20.0)).collect();
        let tiles = partition(assets.clone(), 10);
        assert_eq!(tiles.len(), 3);
        assert_eq!(tiles[2].0.part, 2);
        check(assets, 10);
    }

    proptest! {
        #[test]
        fn tiles_cover_all_disjointly(
            points in proptest::collection::vec((-180.0f64..=180.0, -90.0f64..=90.0, 0u8..3), 0..300),
            capacity in 1usize..40,
        ) {
            // Some points clustered tightly, some repeated.
            let assets = points.iter().enumerate().map(|(i, &(lon, lat, k))| match k {
                0 => asset(i as u32, lon, lat),
                1 => asset(i as u32, 1.0 + lon * 1e-7, 2.0 + lat * 1e-7),
                _ => asset(i as u32, 5.0, 5.0),
            }).collect();
            check(assets, capacity);
        }
    }
}
