//! Tiles and manifests as read back from the store (spatial-query `tile`,
//! `manifest`): any bytes decode or are refused without a panic, and a
//! decoded one is never trusted past its checks: every accessor of every
//! asset and any search box stay in bounds, searches return indices of
//! the tile, and re-encoding is a fixpoint. Mode 2 encodes assets built
//! from the input, then damages the bytes at fuzzer-chosen places; modes 3
//! and 4 put a tile's or manifest's magic before the input, so that every
//! header word (counts, lengths) is the fuzzer's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spatial_query::Asset;
use spatial_query::geodesy::BoxSet;
use spatial_query::manifest::Manifest;
use spatial_query::tile::Tile;

fn boxes(seed: &[u8]) -> Vec<[f64; 4]> {
    let mut out = vec![[-180.0, -90.0, 180.0, 90.0], [0.0, 0.0, 0.0, 0.0]];
    for c in seed.chunks_exact(4).take(4) {
        let v = |b: u8| f64::from(b as i8) * 1.5;
        out.push([v(c[0]), v(c[1]) / 2.0, v(c[2]), v(c[3]) / 2.0]);
    }
    out
}

fn check_tile(bytes: &[u8], seed: &[u8]) {
    let Ok(tile) = Tile::decode(bytes) else {
        return;
    };
    let n = tile.len();
    let assets: Vec<Asset> = tile.assets().collect();
    assert_eq!(assets.len(), n);
    for (i, a) in assets.iter().enumerate() {
        assert_eq!(a.id, tile.id(i));
        let _ = (
            tile.lon(i),
            tile.lat(i),
            tile.confidence(i),
            tile.magnitude(i),
        );
        let _ = tile.processed_at_ms(i);
    }
    for b in boxes(seed) {
        for i in tile.search(&b) {
            assert!((i as usize) < n, "search returned {i} of {n}");
        }
    }
    let _ = tile.memory_bytes();
    // The canonical form of what was read is itself readable, and stable.
    let again = Tile::encode(&assets);
    let back = Tile::decode(&again).expect("a tile encoded from decoded assets");
    let round: Vec<Asset> = back.assets().collect();
    assert_eq!(
        format!("{round:?}"),
        format!("{assets:?}"),
        "tile assets changed across encode/decode"
    );
    assert_eq!(Tile::encode(&round), again);
}

fn check_manifest(bytes: &[u8], seed: &[u8]) {
    let Ok(m) = Manifest::decode(bytes) else {
        return;
    };
    let _ = (m.live_assets(), m.dead(), m.memory_bytes());
    for &(id, run) in m.overrides() {
        assert_eq!(m.override_of(id), Some(run));
        let _ = m.live(id, run);
    }
    let touched = m.touching(&BoxSet(boxes(seed)));
    assert!(touched.len() <= m.entries().len());
    let encoded = m.encode();
    let back = Manifest::decode(&encoded).expect("a re-encoded manifest");
    assert_eq!(
        format!("{:?}", back.entries()),
        format!("{:?}", m.entries())
    );
    assert_eq!(back.overrides(), m.overrides());
    assert_eq!(back.dead(), m.dead());
    assert_eq!(back.encode(), encoded, "encoding is not a fixpoint");
}

/// Assets from GeoJSON/NDJSON text, so that seeds from the conformance
/// ingest bodies give real tiles.
fn assets_of(text: &[u8]) -> Vec<Asset> {
    use spatial_query::ingest::{IngestLimits, InputFormat, read_all};
    [InputFormat::GeoJson, InputFormat::NdJson]
        .into_iter()
        .find_map(|f| read_all(f, IngestLimits::default(), text).ok())
        .map(|(assets, _)| assets)
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => check_tile(rest, rest),
        1 => check_manifest(rest, rest),
        // The magic given, the header words (counts, lengths) from the input.
        3 => check_tile(&[&b"SQTILE01"[..], rest].concat(), rest),
        4 => {
            let magic = if rest.first().is_some_and(|b| b & 1 == 1) {
                b"SQMANI02"
            } else {
                b"SQMANI01"
            };
            check_manifest(
                &[&magic[..], rest.get(1..).unwrap_or_default()].concat(),
                rest,
            )
        }
        _ => {
            // Damage: up to 4 (offset, xor) pairs, then the assets' text.
            let (damage, text) = rest.split_at(rest.len().min(8));
            let assets = assets_of(text);
            let mut tile = Tile::encode(&assets);
            let decoded = Tile::decode(&tile).expect("a fresh tile");
            assert_eq!(decoded.len(), assets.len());
            for (i, a) in assets.iter().enumerate() {
                assert_eq!(&decoded.asset(i), a, "tile round trip");
            }
            let entries: Vec<_> = if assets.is_empty() {
                Vec::new()
            } else {
                vec![spatial_query::manifest::TileEntry::describe(
                    spatial_query::partition::CellId {
                        level: 0,
                        part: 0,
                        code: 0,
                    },
                    1,
                    &assets,
                )]
            };
            let mut manifest = Manifest::new(entries).encode();
            for pair in damage.chunks_exact(2) {
                for bytes in [&mut tile, &mut manifest] {
                    if !bytes.is_empty() {
                        let at = usize::from(pair[0]) * 7 % bytes.len();
                        bytes[at] ^= pair[1];
                    }
                }
            }
            check_tile(&tile, damage);
            check_manifest(&manifest, damage);
        }
    }
});
