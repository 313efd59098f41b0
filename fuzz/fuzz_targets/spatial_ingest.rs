//! GeoJSON and NDJSON ingest of spatial-query (`FeatureReader`), with chunk
//! boundaries chosen by the fuzzer: any split reads the same assets,
//! rejections and errors as the whole input (`read_all`); the feature
//! buffer stays within its limit; and every accepted asset round-trips
//! through its GeoJSON form (`to_feature` → `parse_feature`) and a tile.
//! Input: format byte, `edge_fuzz::chunked` cuts, body.
#![no_main]

use edge_fuzz::{chunked, pieces};
use libfuzzer_sys::fuzz_target;
use spatial_query::Asset;
use spatial_query::ingest::{
    FeatureReader, IngestError, IngestLimits, IngestReport, InputFormat, Rejection, parse_feature,
    read_all,
};
use spatial_query::tile::Tile;

type Read = Result<(Vec<Asset>, IngestReport), IngestError>;

fn read_split(format: InputFormat, limits: IngestLimits, chunks: &[&[u8]]) -> Read {
    let mut reader = FeatureReader::new(format, limits);
    let mut report = IngestReport::new(&limits);
    let mut assets = Vec::new();
    let mut out = |r: Result<Asset, Rejection>| {
        report.record(&r);
        if let Ok(asset) = r {
            assets.push(asset);
        }
    };
    for chunk in chunks {
        reader.push(chunk, &mut out)?;
        assert!(
            reader.buffer_capacity() <= limits.max_feature_bytes,
            "feature buffer {} past its limit {}",
            reader.buffer_capacity(),
            limits.max_feature_bytes
        );
    }
    reader.finish(&mut out)?;
    Ok((assets, report))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let format = if mode % 2 == 0 {
        InputFormat::GeoJson
    } else {
        InputFormat::NdJson
    };
    // Small limits too, so that the oversize paths are reached.
    let limits = IngestLimits {
        max_feature_bytes: if mode & 2 == 0 { 64 * 1024 } else { 300 },
        max_reported: 4,
    };
    let (cuts, body) = chunked(rest);
    let whole = read_all(format, limits, body);
    let split = read_split(format, limits, &pieces(body, &cuts));
    // Error offsets may name where the split saw the problem; the kind of
    // error and everything read before it must agree.
    match (&whole, &split) {
        (Ok(w), Ok(s)) => {
            assert_eq!(
                format!("{:?}", w.0),
                format!("{:?}", s.0),
                "assets differ for {cuts:?}"
            );
            assert_eq!(w.1, s.1, "reports differ for {cuts:?}");
        }
        (Err(w), Err(s)) => assert_eq!(w, s, "errors differ for {cuts:?}"),
        _ => panic!("whole {whole:?} but split {cuts:?} {split:?}"),
    }
    let Ok((assets, _)) = whole else { return };
    for asset in &assets {
        let feature = asset.to_feature(None).to_string();
        let back = parse_feature(feature.as_bytes())
            .unwrap_or_else(|e| panic!("{feature} no longer reads: {e:?}"));
        assert_eq!(&back, asset, "GeoJSON round trip of {feature}");
    }
    let tile = Tile::decode(&Tile::encode(&assets)).expect("a fresh tile");
    for (i, asset) in assets.iter().enumerate() {
        assert_eq!(&tile.asset(i), asset, "tile round trip");
    }
});
