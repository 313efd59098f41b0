//! One tile: the assets of one cell, as columns plus a packed Hilbert
//! R-tree over their positions (`geo-index`, the flatbush layout), in one
//! blob for the platform store.
//!
//! A tile is read back with one copy into 8-byte words and a structural
//! check, then searched in place: loading it builds nothing. The check
//! matters because the R-tree search trusts the offsets it reads, and a
//! store can hand back anything.
//!
//! Layout (little-endian 64-bit words): magic, `count | versions << 32`,
//! R-tree byte length, version-table byte length, the R-tree (padded),
//! the version table (`u16` length + UTF-8 each, padded), then twelve
//! columns of `count` words: lon, lat, z, id (high, low), dx, dy, dz,
//! registration quality, fusion confidence, duration `| version << 32`,
//! processed-at.

use uuid::Uuid;

use crate::geodesy::LonLatBox;
use crate::model::Asset;
use crate::packed;

const MAGIC: u64 = u64::from_le_bytes(*b"SQTILE01");
const HEADER_WORDS: usize = 4;
const COLUMNS: usize = 12;

/// Why a stored tile could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TileError {
    /// Not a tile, or a truncated or damaged one.
    #[error("damaged tile: {0}")]
    Damaged(&'static str),
}

/// A decoded tile.
#[derive(Debug, Clone)]
pub struct Tile {
    words: Vec<u64>,
    count: usize,
    /// Byte range of the R-tree within `words`.
    rtree: (usize, usize),
    columns: usize,
    versions: Vec<String>,
}

#[derive(Clone, Copy)]
enum Col {
    Lon = 0,
    Lat,
    Z,
    IdHigh,
    IdLow,
    Dx,
    Dy,
    Dz,
    Quality,
    Confidence,
    DurationVersion,
    ProcessedAt,
}

impl Tile {
    /// Encodes assets (best given in a space-filling-curve order, so the
    /// columns are read in runs).
    pub fn encode(assets: &[Asset]) -> Vec<u8> {
        let count = assets.len();
        let rtree = packed::build(assets.iter().map(|a| [a.lon, a.lat, a.lon, a.lat]));

        let mut versions: Vec<&str> = Vec::new();
        let mut version_of = Vec::with_capacity(count);
        for a in assets {
            let v = match versions.iter().position(|v| *v == a.algorithm_version) {
                Some(i) => i,
                None => {
                    versions.push(&a.algorithm_version);
                    versions.len() - 1
                }
            };
            version_of.push(v as u64);
        }
        let mut table = Vec::new();
        for v in &versions {
            table.extend_from_slice(&(v.len() as u16).to_le_bytes());
            table.extend_from_slice(v.as_bytes());
        }

        let mut out = Vec::with_capacity(
            8 * (HEADER_WORDS + COLUMNS * count) + rtree.len() + table.len() + 16,
        );
        for w in [
            MAGIC,
            count as u64 | (versions.len() as u64) << 32,
            rtree.len() as u64,
            table.len() as u64,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        push_padded(&mut out, &rtree);
        push_padded(&mut out, &table);
        let column = |out: &mut Vec<u8>, f: &dyn Fn(usize, &Asset) -> u64| {
            for (i, a) in assets.iter().enumerate() {
                out.extend_from_slice(&f(i, a).to_le_bytes());
            }
        };
        column(&mut out, &|_, a| a.lon.to_bits());
        column(&mut out, &|_, a| a.lat.to_bits());
        column(&mut out, &|_, a| a.z.to_bits());
        column(&mut out, &|_, a| (a.id.as_u128() >> 64) as u64);
        column(&mut out, &|_, a| a.id.as_u128() as u64);
        column(&mut out, &|_, a| a.deformation[0].to_bits());
        column(&mut out, &|_, a| a.deformation[1].to_bits());
        column(&mut out, &|_, a| a.deformation[2].to_bits());
        column(&mut out, &|_, a| a.registration_quality.to_bits());
        column(&mut out, &|_, a| a.fusion_confidence.to_bits());
        column(&mut out, &|i, a| {
            u64::from(a.processing_duration_ms) | version_of[i] << 32
        });
        column(&mut out, &|_, a| a.processed_at_ms as u64);
        out
    }

    /// Reads a stored tile, checking its structure.
    pub fn decode(bytes: &[u8]) -> Result<Tile, TileError> {
        if !bytes.len().is_multiple_of(8) || bytes.len() < 8 * HEADER_WORDS {
            return Err(TileError::Damaged("length"));
        }
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect();
        if words[0] != MAGIC {
            return Err(TileError::Damaged("magic"));
        }
        let count = (words[1] & 0xffff_ffff) as usize;
        let n_versions = (words[1] >> 32) as usize;
        // Lengths past the blob's are damage (and would overflow `padded`).
        let within = |w: u64| usize::try_from(w).ok().filter(|&n| n <= bytes.len());
        let rtree_len = within(words[2]).ok_or(TileError::Damaged("r-tree"))?;
        let table_len = within(words[3]).ok_or(TileError::Damaged("versions"))?;
        let rtree_start = 8 * HEADER_WORDS;
        let table_start = rtree_start
            .checked_add(padded(rtree_len))
            .ok_or(TileError::Damaged("r-tree"))?;
        let columns_start = table_start
            .checked_add(padded(table_len))
            .ok_or(TileError::Damaged("versions"))?;
        let expected = count
            .checked_mul(8 * COLUMNS)
            .and_then(|c| c.checked_add(columns_start))
            .ok_or(TileError::Damaged("count"))?;
        if expected != bytes.len() {
            return Err(TileError::Damaged("length"));
        }
        let versions = read_versions(&bytes[table_start..table_start + table_len], n_versions)?;
        let tile = Tile {
            count,
            rtree: (rtree_start, rtree_start + rtree_len),
            columns: columns_start / 8,
            versions,
            words,
        };
        if !packed::check(&tile.bytes()[tile.rtree.0..tile.rtree.1], count) {
            return Err(TileError::Damaged("r-tree"));
        }
        for i in 0..count {
            if tile.version_index(i) >= tile.versions.len() {
                return Err(TileError::Damaged("version index"));
            }
        }
        Ok(tile)
    }

    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.words)
    }

    /// How many assets.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Its size in memory, for cache accounting.
    pub fn memory_bytes(&self) -> usize {
        self.words.len() * 8 + self.versions.iter().map(|v| v.len() + 24).sum::<usize>()
    }

    /// The indices of the assets in a box (boundaries included).
    pub fn search(&self, b: &LonLatBox) -> Vec<u32> {
        if self.count == 0 {
            return Vec::new();
        }
        packed::search(&self.bytes()[self.rtree.0..self.rtree.1], b)
    }

    fn col(&self, c: Col, i: usize) -> u64 {
        self.words[self.columns + c as usize * self.count + i]
    }

    /// Longitude of asset `i`.
    pub fn lon(&self, i: usize) -> f64 {
        f64::from_bits(self.col(Col::Lon, i))
    }

    /// Latitude of asset `i`.
    pub fn lat(&self, i: usize) -> f64 {
        f64::from_bits(self.col(Col::Lat, i))
    }

    /// The id of asset `i`.
    pub fn id(&self, i: usize) -> Uuid {
        Uuid::from_u128(
            u128::from(self.col(Col::IdHigh, i)) << 64 | u128::from(self.col(Col::IdLow, i)),
        )
    }

    /// Fusion confidence of asset `i`.
    pub fn confidence(&self, i: usize) -> f64 {
        f64::from_bits(self.col(Col::Confidence, i))
    }

    /// Deformation magnitude of asset `i`.
    pub fn magnitude(&self, i: usize) -> f64 {
        crate::model::magnitude(self.deformation(i))
    }

    fn deformation(&self, i: usize) -> [f64; 3] {
        [
            f64::from_bits(self.col(Col::Dx, i)),
            f64::from_bits(self.col(Col::Dy, i)),
            f64::from_bits(self.col(Col::Dz, i)),
        ]
    }

    /// Processing time of asset `i`, ms since the epoch.
    pub fn processed_at_ms(&self, i: usize) -> i64 {
        self.col(Col::ProcessedAt, i) as i64
    }

    fn version_index(&self, i: usize) -> usize {
        (self.col(Col::DurationVersion, i) >> 32) as usize
    }

    /// Asset `i` in full.
    pub fn asset(&self, i: usize) -> Asset {
        let dv = self.col(Col::DurationVersion, i);
        Asset {
            id: self.id(i),
            lon: self.lon(i),
            lat: self.lat(i),
            z: f64::from_bits(self.col(Col::Z, i)),
            deformation: self.deformation(i),
            registration_quality: f64::from_bits(self.col(Col::Quality, i)),
            fusion_confidence: self.confidence(i),
            processing_duration_ms: dv as u32,
            algorithm_version: self
                .versions
                .get(self.version_index(i))
                .cloned()
                .unwrap_or_default(),
            processed_at_ms: self.processed_at_ms(i),
        }
    }

    /// Every asset, in stored order.
    pub fn assets(&self) -> impl Iterator<Item = Asset> + '_ {
        (0..self.count).map(|i| self.asset(i))
    }
}

fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

fn push_padded(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
    out.resize(out.len() + padded(bytes.len()) - bytes.len(), 0);
}

fn read_versions(mut table: &[u8], n: usize) -> Result<Vec<String>, TileError> {
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let len = table
            .get(..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
            .ok_or(TileError::Damaged("versions"))?;
        let text = table
            .get(2..2 + len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(TileError::Damaged("versions"))?;
        out.push(text.to_owned());
        table = &table[2 + len..];
    }
    if !table.is_empty() {
        return Err(TileError::Damaged("versions"));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn asset(n: u32, lon: f64, lat: f64) -> Asset {
        Asset {
            id: Uuid::from_u128(0x1234_0000_0000_0000_0000_0000_0000_0000 | u128::from(n)),
            lon,
            lat,
            z: f64::from(n),
            deformation: [1.0, -2.0, f64::from(n % 7)],
            registration_quality: 0.5,
            fusion_confidence: f64::from(n % 11) / 10.0,
            processing_duration_ms: n * 3,
            algorithm_version: format!("fusion-{}", n % 3),
            processed_at_ms: 1_700_000_000_000 + i64::from(n),
        }
    }

    fn grid(n: u32) -> Vec<Asset> {
        (0..n)
            .map(|i| asset(i, f64::from(i % 100) * 0.01, f64::from(i / 100) * 0.01))
            .collect()
    }

    #[test]
    fn round_trip_and_search() {
        for n in [0, 1, 2, 16, 17, 1000] {
            let assets = grid(n);
            let tile = Tile::decode(&Tile::encode(&assets)).unwrap();
            assert_eq!(tile.len(), n as usize);
            assert_eq!(tile.assets().collect::<Vec<_>>(), assets);
            let b = [0.1, 0.0, 0.2, 0.05];
            let mut found: Vec<u32> = tile.search(&b);
            found.sort();
            let expected: Vec<u32> = (0..n)
                .filter(|&i| {
                    let a = &assets[i as usize];
                    a.lon >= b[0] && a.lon <= b[2] && a.lat >= b[1] && a.lat <= b[3]
                })
                .collect();
            assert_eq!(found, expected, "n = {n}");
        }
    }

    #[test]
    fn damaged_tiles_are_refused_not_trusted() {
        let bytes = Tile::encode(&grid(300));
        assert!(Tile::decode(&bytes[..bytes.len() - 8]).is_err());
        assert!(Tile::decode(b"not a tile at all, really not!!!").is_err());
        // Flip every byte of the header and the R-tree in turn: each either
        // decodes to something searchable or is refused; nothing panics.
        let rtree_end = 32 + 8 * 40;
        for i in 0..rtree_end {
            let mut copy = bytes.clone();
            copy[i] ^= 0xa5;
            if let Ok(tile) = Tile::decode(&copy) {
                let _ = tile.search(&[-180.0, -90.0, 180.0, 90.0]);
            }
        }
    }

    /// Found with `fuzz/` (spatial_store): an R-tree or version-table
    /// length near `u64::MAX` overflowed its padding (a panic in debug
    /// builds) instead of being refused as damaged.
    #[test]
    fn huge_lengths_are_damage_not_overflow() {
        for (rtree, table) in [(u64::MAX, 0), (0, u64::MAX - 2), (1 << 62, 1 << 62)] {
            let mut bytes = Vec::new();
            for w in [MAGIC, 0, rtree, table] {
                bytes.extend_from_slice(&w.to_le_bytes());
            }
            assert!(Tile::decode(&bytes).is_err(), "{rtree} {table}");
        }
    }
}
