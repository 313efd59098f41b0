//! The ingest reader's behaviour: chunking, rejections, limits and the
//! structure of GeoJSON documents.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use spatial_query::Asset;
use spatial_query::ingest::{
    FeatureReader, IngestError, IngestLimits, IngestReport, InputFormat, Rejection, parse_feature,
    read_all,
};

type Outcome = (Vec<Result<Asset, Rejection>>, Result<(), IngestError>);

fn uuid(i: u32) -> String {
    format!("{i:08x}-0000-4000-8000-{i:012x}")
}

/// A valid feature, about 320 bytes.
fn feature(i: u32) -> String {
    let lon = -180.0 + f64::from(i % 36_000) / 100.0;
    let lat = -90.0 + f64::from(i % 18_000) / 100.0;
    format!(
        concat!(
            r#"{{"type":"Feature","id":"{}","geometry":{{"type":"Point","coordinates":[{},{},34.5]}},"#,
            r#""properties":{{"deformation":[1.25,-0.5,3.75],"deformation_magnitude":4.0,"#,
            r#""registration_quality":0.93,"fusion_confidence":0.81,"processing_duration_ms":{},"#,
            r#""algorithm_version":"fusion-2.3.1","processed_at":"2026-03-01T12:00:00Z"}}}}"#
        ),
        uuid(i),
        lon,
        lat,
        1000 + i
    )
}

/// A valid feature with one property's JSON replaced (or removed when
/// `value` is `None`).
fn feature_with(i: u32, property: &str, value: Option<&str>) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&feature(i)).unwrap();
    let props = v["properties"].as_object_mut().unwrap();
    props.remove(property);
    let text = v.to_string();
    match value {
        None => text,
        Some(value) => text.replacen(
            r#""properties":{"#,
            &format!(r#""properties":{{"{property}":{value},"#),
            1,
        ),
    }
}

fn collection(features: &[String]) -> String {
    format!(
        r#"{{"type":"FeatureCollection","bbox":[-180,-90,180,90],"features":[{}],"crs":{{"type":"name","properties":{{"name":"EPSG:4326"}}}}}}"#,
        features.join(",\n ")
    )
}

fn run(format: InputFormat, limits: IngestLimits, input: &[u8], step: usize) -> Outcome {
    let mut reader = FeatureReader::new(format, limits);
    let mut got = Vec::new();
    let end = {
        let mut out = |r| got.push(r);
        let mut end = Ok(());
        for piece in input.chunks(step.max(1)) {
            if let Err(e) = reader.push(piece, &mut out) {
                end = Err(e);
                break;
            }
        }
        match end {
            Ok(()) => reader.finish(&mut out),
            Err(e) => Err(e),
        }
    };
    (got, end)
}

fn whole(format: InputFormat, input: &[u8]) -> Outcome {
    run(format, IngestLimits::default(), input, input.len())
}

fn rejections(outcome: &Outcome) -> Vec<&Rejection> {
    outcome.0.iter().filter_map(|r| r.as_ref().err()).collect()
}

#[test]
fn a_valid_feature_becomes_an_asset() {
    let asset = parse_feature(feature(7).as_bytes()).unwrap();
    assert_eq!(asset.id.hyphenated().to_string(), uuid(7));
    assert_eq!((asset.lon, asset.lat, asset.z), (-179.93, -89.93, 34.5));
    assert_eq!(asset.deformation, [1.25, -0.5, 3.75]);
    assert_eq!(asset.registration_quality, 0.93);
    assert_eq!(asset.fusion_confidence, 0.81);
    assert_eq!(asset.processing_duration_ms, 1007);
    assert_eq!(asset.algorithm_version, "fusion-2.3.1");
    assert_eq!(
        asset.processed_at_ms,
        spatial_query::model::parse_timestamp("2026-03-01T12:00:00Z").unwrap()
    );
    // And back: the model's own GeoJSON form reads the same.
    let again = parse_feature(asset.to_feature(None).to_string().as_bytes()).unwrap();
    assert_eq!(again, asset);
}

#[test]
fn chunking_never_changes_the_results() {
    let mut features: Vec<String> = (0..20).map(feature).collect();
    features[3] = feature_with(3, "fusion_confidence", Some("NaN"));
    features[5] = "42".into();
    features[6] = r#""a \"string\" feature""#.into();
    features[8] = r#"[[1,[2,"]"]],{"}":"{"}]"#.into();
    features[9] = feature(9).replace(&uuid(9), "not-a-uuid");
    features[11] = feature_with(11, "algorithm_version", Some(r#""fusion-\u00e9\"2\\ ü""#));
    features[12] = feature(12).replace("34.5]", "-Infinity]");
    features[14] = feature(14).replace(r#""type":"Feature""#, r#""type":Feature"#);
    let doc = collection(&features);
    let expected = whole(InputFormat::GeoJson, doc.as_bytes());
    assert_eq!(expected.1, Ok(()));
    assert_eq!(expected.0.len(), 20);
    for step in [1, 2, 3, 7, 64] {
        let got = run(
            InputFormat::GeoJson,
            IngestLimits::default(),
            doc.as_bytes(),
            step,
        );
        assert_eq!(got, expected, "chunks of {step}");
    }

    let rejected: Vec<_> = rejections(&expected)
        .iter()
        .map(|r| (r.index, r.field.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (3, "properties.fusion_confidence", "not a finite number"),
            (5, "", "expected a Feature object"),
            (6, "", "expected a Feature object"),
            (8, "", "expected a Feature object"),
            (9, "id", "not a UUID"),
            (12, "geometry.coordinates[2]", "not a finite number"),
            (14, "", "invalid JSON at column 9"),
        ]
    );
    let escaped = expected.0[11].as_ref().unwrap();
    assert_eq!(escaped.algorithm_version, "fusion-é\"2\\ ü");
    assert!(rejections(&expected).iter().all(|r| r.line.is_none()));
    assert_eq!(
        rejections(&expected)[0].id.as_deref(),
        Some(uuid(3).as_str())
    );
    assert_eq!(rejections(&expected)[4].id.as_deref(), Some("not-a-uuid"));

    // NDJSON too.
    let lines = features.join("\r\n") + "\n\n  \n";
    let expected = whole(InputFormat::NdJson, lines.as_bytes());
    assert_eq!(expected.0.len(), 20);
    for step in [1, 2, 3, 7, 64] {
        let got = run(
            InputFormat::NdJson,
            IngestLimits::default(),
            lines.as_bytes(),
            step,
        );
        assert_eq!(got, expected, "chunks of {step}");
    }
}

#[test]
fn invalid_utf8_rejects_only_its_feature() {
    let mut doc = collection(&[feature(0), feature(1), feature(2)]).into_bytes();
    let id = uuid(1);
    let at = doc
        .windows(id.len())
        .position(|w| w == id.as_bytes())
        .unwrap();
    let at = at
        + doc[at..]
            .windows(12)
            .position(|w| w == b"fusion-2.3.1")
            .unwrap();
    doc[at + 7] = 0xFF;
    let expected = whole(InputFormat::GeoJson, &doc);
    assert_eq!(expected.1, Ok(()));
    assert!(expected.0[0].is_ok() && expected.0[2].is_ok());
    let r = expected.0[1].as_ref().unwrap_err();
    assert_eq!(r.field, "");
    assert!(
        r.reason.starts_with("invalid JSON at column"),
        "{}",
        r.reason
    );
    for step in [1, 2, 3, 5, 7, 64, 500] {
        assert_eq!(
            run(InputFormat::GeoJson, IngestLimits::default(), &doc, step),
            expected
        );
    }
    let mut lines = format!("{}\n{}", feature(0), feature(1)).into_bytes();
    let at = lines.len() - 20;
    lines[at] = 0xC3;
    let outcome = whole(InputFormat::NdJson, &lines);
    assert!(outcome.0[0].is_ok());
    assert_eq!(outcome.0[1].as_ref().unwrap_err().line, Some(2));
}

#[test]
fn ndjson_features_are_rejected_one_by_one() {
    let lines = [
        feature(0),                                                                // line 1
        feature_with(1, "fusion_confidence", Some("NaN")),                         // 2
        String::new(),                                                             // 3: blank
        feature(2).replace(r#""coordinates":[-179.98"#, r#""coordinates":[181"#),  // 4
        feature_with(3, "fusion_confidence", Some("1.5")),                         // 5
        feature(4).replace(&uuid(4), "0f8e6c1a-zzzz"),                             // 6
        feature_with(5, "processed_at", None),                                     // 7
        feature_with(6, "registration_quality", Some(r#""high""#)),                // 8
        feature(7).replace("[-179.93,-89.93,34.5]", r#""here""#),                  // 9
        feature_with(8, "processing_duration_ms", Some("-5")),                     // 10
        feature_with(9, "algorithm_version", Some("3")),                           // 11
        feature_with(10, "deformation", Some("[1,2]")),                            // 12
        r#"{"type":"Feature","id": x}"#.into(),                                    // 13
        r#"{"type":"Feature","#.into(),                                            // 14
        feature_with(11, "deformation", Some("[1,Infinity,3]")),                   // 15
        feature(12).replace(",34.5]", "]"),                                        // 16: 2-D
        feature(13).replace(&uuid(13), &uuid(13).replace('-', "").to_uppercase()), // 17
        feature_with(14, "processed_at", Some(r#""yesterday""#)),                  // 18
        feature(15).replace(&format!(r#","id":"{}""#, uuid(15)), ""),              // 19: no id
        feature(16).replace("[-179.84,-89.84,34.5]", "[10,91]"),                   // 20
        feature_with(
            17,
            "algorithm_version",
            Some(&format!("{:?}", "v".repeat(65))),
        ), // 21
        "[1, 2, 3]".into(),                                                        // 22
        "{} {}".into(),                                                            // 23
        feature(18), // 24, no final newline
    ];
    let input = lines.join("\r\n");
    let outcome = whole(InputFormat::NdJson, input.as_bytes());
    assert_eq!(outcome.1, Ok(()));
    let accepted: Vec<_> = outcome.0.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(accepted.len(), 4);
    assert_eq!(accepted[1].z, 0.0);
    assert_eq!(accepted[2].id.hyphenated().to_string(), uuid(13));

    let got: Vec<_> = rejections(&outcome)
        .iter()
        .map(|r| {
            (
                r.index,
                r.line.unwrap(),
                r.field.as_str(),
                r.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, 2, "properties.fusion_confidence", "not a finite number"),
            (
                2,
                4,
                "geometry.coordinates[0]",
                "longitude 181 out of [-180, 180]"
            ),
            (3, 5, "properties.fusion_confidence", "1.5 out of [0, 1]"),
            (4, 6, "id", "not a UUID"),
            (5, 7, "properties.processed_at", "missing"),
            (6, 8, "properties.registration_quality", "expected a number"),
            (
                7,
                9,
                "geometry.coordinates",
                "expected an array of 2 or 3 numbers"
            ),
            (
                8,
                10,
                "properties.processing_duration_ms",
                "expected a non-negative integer"
            ),
            (9, 11, "properties.algorithm_version", "expected a string"),
            (10, 12, "properties.deformation", "expected 3 numbers"),
            (11, 13, "", "invalid JSON at column 25"),
            (12, 14, "", "unexpected end of JSON at column 18"),
            (13, 15, "properties.deformation[1]", "not a finite number"),
            (
                16,
                18,
                "properties.processed_at",
                "not an RFC 3339 timestamp"
            ),
            (17, 19, "id", "missing"),
            (
                18,
                20,
                "geometry.coordinates[1]",
                "latitude 91 out of [-90, 90]"
            ),
            (
                19,
                21,
                "properties.algorithm_version",
                "longer than 64 bytes"
            ),
            (20, 22, "", "expected a Feature object"),
            (21, 23, "", "invalid JSON at column 4"),
        ]
    );
    let rs = rejections(&outcome);
    assert_eq!(rs[0].id.as_deref(), Some(uuid(1).as_str()));
    assert_eq!(rs[3].id.as_deref(), Some("0f8e6c1a-zzzz"));
    assert_eq!(rs[10].id, None);
    // The last feature, without a final newline, is index 22 on line 24.
    assert_eq!(outcome.0.len(), 23);

    let mut report = IngestReport::new(&IngestLimits {
        max_reported: 5,
        ..IngestLimits::default()
    });
    for r in &outcome.0 {
        report.record(r);
    }
    assert_eq!((report.accepted, report.rejected), (4, 19));
    assert_eq!(report.rejections.len(), 5);
    assert!(report.truncated());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["accepted"], 4);
    assert_eq!(
        json["rejections"][0]["field"],
        "properties.fusion_confidence"
    );
    assert_eq!(json["rejections"][0]["line"], 2);
    assert!(json.get("max_reported").is_none());
}

#[test]
fn the_id_may_be_a_property() {
    let f = feature(21)
        .replace(&format!(r#""id":"{}","#, uuid(21)), "")
        .replace(
            r#""properties":{"#,
            &format!(r#""properties":{{"id":"{}","#, uuid(21).to_uppercase()),
        );
    assert!(!f.starts_with(r#"{"type":"Feature","id""#));
    let asset = parse_feature(f.as_bytes()).unwrap();
    assert_eq!(asset.id.hyphenated().to_string(), uuid(21));
    let bad = f.replace(&uuid(21).to_uppercase(), "nope");
    assert_eq!(
        parse_feature(bad.as_bytes()),
        Err(("properties.id".into(), "not a UUID".into()))
    );
    let braced = feature(24).replace(&uuid(24), &format!("{{{}}}", uuid(24)));
    assert_eq!(
        parse_feature(braced.as_bytes()),
        Err(("id".into(), "not a UUID".into()))
    );
    // A top-level id wins.
    let both = feature(22).replace(r#""properties":{"#, r#""properties":{"id":"nope","#);
    assert!(parse_feature(both.as_bytes()).is_ok());
    assert_eq!(
        parse_feature(
            feature(23)
                .replace(&format!(r#""{}""#, uuid(23)), "17")
                .as_bytes()
        ),
        Err(("id".into(), "expected a UUID string".into()))
    );
}

#[test]
fn geometry_and_type_errors_name_their_field() {
    let cases = [
        (
            feature(1).replace(r#""type":"Point""#, r#""type":"LineString""#),
            "geometry.type",
            "expected \"Point\"",
        ),
        (
            feature(1).replace(r#"{"type":"Point","#, "{"),
            "geometry.type",
            "missing",
        ),
        (
            feature(1).replace(r#""type":"Feature","#, ""),
            "type",
            "missing",
        ),
        (
            feature(1).replace(r#""type":"Feature""#, r#""type":7"#),
            "type",
            "expected \"Feature\"",
        ),
        (
            feature(1).replace(",34.5]", ",34.5,1]"),
            "geometry.coordinates",
            "expected 2 or 3 numbers",
        ),
        (
            feature(1).replace("[-179.99,-89.99,34.5]", "[null,1]"),
            "geometry.coordinates[0]",
            "expected a number",
        ),
        (
            feature(1).replace("[-179.99,-89.99,34.5]", "[1e999,1]"),
            "",
            "not a finite number",
        ),
        (
            feature(1).replace(
                r#""processing_duration_ms":1001"#,
                r#""processing_duration_ms":4294967296"#,
            ),
            "properties.processing_duration_ms",
            "larger than 4294967295",
        ),
        (
            feature(1).replace(
                r#""processing_duration_ms":1001"#,
                r#""processing_duration_ms":1001.5"#,
            ),
            "properties.processing_duration_ms",
            "expected a non-negative integer",
        ),
        (
            feature(1).replace(
                r#""algorithm_version":"fusion-2.3.1""#,
                r#""algorithm_version":"""#,
            ),
            "properties.algorithm_version",
            "empty",
        ),
        (
            feature(1).replace(
                r#""registration_quality":0.93"#,
                r#""registration_quality":-0.5"#,
            ),
            "properties.registration_quality",
            "-0.5 out of [0, 1]",
        ),
    ];
    for (text, field, reason) in cases {
        assert_eq!(
            parse_feature(text.as_bytes()),
            Err((field.to_owned(), reason.to_owned())),
            "{text}"
        );
    }
    let null_geometry = r#"{"type":"Feature","id":"0f8e6c1a-2b3c-4d5e-8f90-123456789abc","geometry":null,"properties":{}}"#;
    assert_eq!(
        parse_feature(null_geometry.as_bytes()),
        Err(("geometry".into(), "missing".into()))
    );
    let no_props = r#"{"type":"Feature","id":"0f8e6c1a-2b3c-4d5e-8f90-123456789abc","geometry":{"type":"Point","coordinates":[1,2]},"properties":[1]}"#;
    assert_eq!(
        parse_feature(no_props.as_bytes()),
        Err(("properties".into(), "expected an object".into()))
    );
    // An unread property may be anything, even NaN.
    assert!(
        parse_feature(feature_with(1, "deformation_magnitude", Some("NaN")).as_bytes()).is_ok()
    );
    assert!(parse_feature(feature_with(1, "extra", Some(r#"{"a":[[[]]]}"#)).as_bytes()).is_ok());
}

#[test]
fn reasons_never_echo_the_feature() {
    let secret = "s3cr3t-s3cr3t";
    for text in [
        format!(r#"{{"type":"{secret}"}}"#),
        format!(
            r#"{{"type":"Feature","id":"0f8e6c1a-2b3c-4d5e-8f90-123456789abc","geometry":{{"type":"{secret}"}}}}"#
        ),
        format!(r#""{secret}""#),
        format!(r#"{{"{secret}": {secret}}}"#),
        feature_with(1, "registration_quality", Some(&format!(r#""{secret}""#))),
        feature_with(1, "processed_at", Some(&format!(r#""{secret}""#))),
    ] {
        let (field, reason) = parse_feature(text.as_bytes()).unwrap_err();
        assert!(
            !field.contains(secret) && !reason.contains(secret),
            "{reason}"
        );
    }
}

#[test]
fn a_huge_feature_is_rejected_without_buffering_it() {
    let limits = IngestLimits::default();
    let huge = feature_with(1, "blob", Some(&format!("\"{}\"", "x".repeat(10 << 20))));
    assert!(huge.len() > 10 << 20);

    let ndjson = format!("{}\n{huge}\n{}\n", feature(0), feature(2));
    let doc = collection(&[feature(0), huge.clone(), feature(2)]);
    for (format, input) in [(InputFormat::NdJson, ndjson), (InputFormat::GeoJson, doc)] {
        let mut reader = FeatureReader::new(format, limits);
        let mut got = Vec::new();
        let mut out = |r| got.push(r);
        for piece in input.as_bytes().chunks(4096) {
            reader.push(piece, &mut out).unwrap();
            assert!(reader.buffer_capacity() <= limits.max_feature_bytes);
        }
        reader.finish(&mut out).unwrap();
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[2].is_ok());
        let r = got[1].as_ref().unwrap_err();
        assert_eq!((r.index, r.field.as_str()), (1, ""));
        assert_eq!(r.reason, "feature larger than 65536 bytes");
    }

    // A single Feature document, too.
    let mut reader = FeatureReader::new(InputFormat::GeoJson, limits);
    let mut got = Vec::new();
    let mut out = |r| got.push(r);
    for piece in huge.as_bytes().chunks(65_536) {
        reader.push(piece, &mut out).unwrap();
        assert!(reader.buffer_capacity() <= limits.max_feature_bytes);
    }
    reader.finish(&mut out).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].as_ref().unwrap_err().reason,
        "feature larger than 65536 bytes"
    );

    // Exactly at the limit is fine.
    let f = feature(3);
    let exact = IngestLimits {
        max_feature_bytes: f.len(),
        ..limits
    };
    let (assets, report) = read_all(InputFormat::NdJson, exact, f.as_bytes()).unwrap();
    assert_eq!((assets.len(), report.rejected), (1, 0));
    let (assets, _) = read_all(InputFormat::GeoJson, exact, collection(&[f]).as_bytes()).unwrap();
    assert_eq!(assets.len(), 1);
    let smaller = IngestLimits {
        max_feature_bytes: exact.max_feature_bytes - 1,
        ..limits
    };
    let (assets, report) = read_all(InputFormat::NdJson, smaller, feature(3).as_bytes()).unwrap();
    assert_eq!((assets.len(), report.rejected), (0, 1));
}

#[test]
fn deep_nesting_neither_overflows_nor_panics() {
    let deep = "[".repeat(1_000_000);
    let closed = format!("{deep}{}", "]".repeat(1_000_000));
    let roomy = IngestLimits {
        max_feature_bytes: 4 << 20,
        ..IngestLimits::default()
    };

    assert_eq!(
        whole(InputFormat::GeoJson, deep.as_bytes()).1,
        Err(IngestError::NotFeatureCollection {
            offset: 0,
            message: "the top-level value is not an object".into()
        })
    );
    for limits in [IngestLimits::default(), roomy] {
        // Unclosed: the end comes first.
        let doc = format!(r#"{{"type":"FeatureCollection","features":{deep}"#);
        let (got, end) = run(InputFormat::GeoJson, limits, doc.as_bytes(), 1 << 16);
        assert!(got.is_empty());
        assert!(
            matches!(end, Err(IngestError::Syntax { offset, .. }) if offset == doc.len() as u64)
        );
        // Closed: one element, rejected.
        let doc = format!(r#"{{"type":"FeatureCollection","features":[{closed}]}}"#);
        let (got, end) = run(InputFormat::GeoJson, limits, doc.as_bytes(), 1 << 16);
        assert_eq!(end, Ok(()));
        assert_eq!(got.len(), 1);
        assert!(got[0].is_err());
        // A skipped member.
        let doc = format!(r#"{{"type":"FeatureCollection","junk":{closed},"features":[]}}"#);
        assert_eq!(
            run(InputFormat::GeoJson, limits, doc.as_bytes(), 1 << 16).1,
            Ok(())
        );
        // NDJSON.
        for line in [&deep, &closed] {
            let (got, end) = run(InputFormat::NdJson, limits, line.as_bytes(), 1 << 16);
            assert_eq!(end, Ok(()));
            assert_eq!(got.len(), 1);
            assert!(got[0].is_err());
        }
        let objects = format!(
            "{}{}",
            r#"{"properties":"#.repeat(200_000),
            "}".repeat(200_000)
        );
        let (got, _) = run(InputFormat::NdJson, limits, objects.as_bytes(), 1 << 16);
        assert!(got[0].is_err());
    }
}

#[test]
fn members_in_any_order_and_single_features() {
    let f = [feature(0), feature(1)];
    let after = collection(&f);
    let before = format!(
        r#"{{"name":"x","features":[{},{}],"bbox":[0,0,1,1],"type":"FeatureCollection"}}"#,
        f[0], f[1]
    );
    let a = whole(InputFormat::GeoJson, after.as_bytes());
    let b = whole(InputFormat::GeoJson, before.as_bytes());
    assert_eq!(a.1, Ok(()));
    assert_eq!(a, b);
    assert_eq!(a.0.len(), 2);

    // A single Feature, its type last, whitespace and a BOM around.
    let single = feature(5).replace(r#"{"type":"Feature","#, "{ ").replacen(
        '}',
        r#"}, "type" : "Feature""#,
        1,
    );
    let single = format!("\u{feff}\n {single}\n\n");
    let outcome = whole(InputFormat::GeoJson, single.as_bytes());
    assert_eq!(outcome.1, Ok(()));
    assert_eq!(outcome.0.len(), 1);
    assert_eq!(outcome.0[0].as_ref().unwrap().processing_duration_ms, 1005);
    for step in [1, 2, 3, 7, 64] {
        assert_eq!(
            run(
                InputFormat::GeoJson,
                IngestLimits::default(),
                single.as_bytes(),
                step
            ),
            outcome
        );
    }
    // A bad single Feature is a rejection, not an error.
    let bad = feature(6).replace(r#""fusion_confidence":0.81"#, r#""fusion_confidence":2"#);
    let outcome = whole(InputFormat::GeoJson, bad.as_bytes());
    assert_eq!(outcome.1, Ok(()));
    assert_eq!(
        rejections(&outcome)[0].field,
        "properties.fusion_confidence"
    );

    let empty = r#"{"features":[],"type":"FeatureCollection"}"#;
    assert_eq!(
        whole(InputFormat::GeoJson, empty.as_bytes()),
        (vec![], Ok(()))
    );
}

fn geo_error(input: &str) -> IngestError {
    let (_, end) = whole(InputFormat::GeoJson, input.as_bytes());
    let e = end.unwrap_err();
    // The same in one-byte chunks.
    let (_, again) = run(
        InputFormat::GeoJson,
        IngestLimits::default(),
        input.as_bytes(),
        1,
    );
    assert_eq!(again, Err(e.clone()));
    e
}

fn offset(e: &IngestError) -> Option<u64> {
    match e {
        IngestError::Syntax { offset, .. } | IngestError::NotFeatureCollection { offset, .. } => {
            Some(*offset)
        }
        IngestError::Empty => None,
    }
}

#[test]
fn structural_errors_give_their_offset() {
    let f = feature(0);
    let n = f.len() as u64;
    let head = r#"{"type":"FeatureCollection","features":["#;
    let h = head.len() as u64;
    let syntax = |input: &str| match geo_error(input) {
        e @ IngestError::Syntax { .. } => offset(&e),
        other => panic!("{other:?}"),
    };
    let not_fc = |input: &str| match geo_error(input) {
        e @ IngestError::NotFeatureCollection { .. } => offset(&e),
        other => panic!("{other:?}"),
    };

    assert_eq!(geo_error(""), IngestError::Empty);
    assert_eq!(geo_error(" \r\n\t "), IngestError::Empty);
    assert_eq!(syntax(&format!("{head}{f} x {f}]}}")), Some(h + n + 1));
    assert_eq!(syntax(&format!("{head}{f},,{f}]}}")), Some(h + n + 1));
    assert_eq!(syntax(&format!("{head}{f},]}}")), Some(h + n + 1));
    assert_eq!(syntax(&format!("{head}{f}]}} x")), Some(h + n + 3));
    assert_eq!(syntax(&format!("{head}{f}]}}}}")), Some(h + n + 2));
    assert_eq!(syntax(&format!("{head}{f}")), Some(h + n));
    assert_eq!(syntax(&format!("{head}{f}]")), Some(h + n + 1));
    assert_eq!(syntax(&format!("{head}{{")), Some(h + 1));
    assert_eq!(syntax(r#"{"type" "FeatureCollection"}"#), Some(8));
    assert_eq!(syntax(r#"{"type":"FeatureCollection",}"#), Some(28));
    assert_eq!(syntax(r#"{"type":}"#), Some(8));
    assert_eq!(syntax("x"), Some(0));
    assert_eq!(syntax("  <html>"), Some(2));
    assert_eq!(syntax("\u{feff}\u{feff}{}"), Some(3));

    assert_eq!(not_fc("[]"), Some(0));
    assert_eq!(not_fc(" 42"), Some(1));
    assert_eq!(not_fc("{}"), Some(1));
    assert_eq!(not_fc(r#"{"features":[]}"#), Some(14));
    assert_eq!(not_fc(r#"{"type":"FeatureCollection"}"#), Some(27));
    assert_eq!(not_fc(r#"{"type":"Topology","arcs":[]}"#), Some(8));
    assert_eq!(not_fc(r#"{"type":1}"#), Some(8));
    assert_eq!(
        not_fc(r#"{"type":"FeatureCollection","features":{}}"#),
        Some(39)
    );
    assert_eq!(not_fc(r#"{"features":[],"type":"Feature"}"#), Some(22));
    assert_eq!(
        not_fc(r#"{"type":"FeatureCollection","type":"FeatureCollection","features":[]}"#),
        Some(35)
    );
    match geo_error(r#"{"type":"Topology"}"#) {
        IngestError::NotFeatureCollection { message, .. } => {
            assert_eq!(message, r#""type" is "Topology""#);
        }
        other => panic!("{other:?}"),
    }

    // An error sticks.
    let mut reader = FeatureReader::new(InputFormat::GeoJson, IngestLimits::default());
    let e = reader.push(b"[", &mut |_| {}).unwrap_err();
    assert_eq!(reader.push(b"{}", &mut |_| {}), Err(e.clone()));
    assert_eq!(reader.finish(&mut |_| {}), Err(e));
    assert_eq!(
        IngestError::Syntax {
            offset: 3,
            message: "expected `{`".into()
        }
        .to_string(),
        "invalid JSON at byte 3: expected `{`"
    );

    // NDJSON has no structure to break.
    for input in ["", "\n\n", "x\n]]]\n{", "\u{feff}"] {
        let (_, end) = whole(InputFormat::NdJson, input.as_bytes());
        assert_eq!(end, Ok(()));
    }
}

#[test]
fn a_bom_starts_ndjson_and_text_sequences_work() {
    let input = format!("\u{feff}{}\n\u{1e}{}\n", feature(0), feature(1));
    let (assets, report) = read_all(
        InputFormat::NdJson,
        IngestLimits::default(),
        input.as_bytes(),
    )
    .unwrap();
    assert_eq!((assets.len(), report.rejected), (2, 0));
}

/// A small valid collection, some of its bytes then changed.
fn mutated_doc() -> impl Strategy<Value = Vec<u8>> {
    let doc = collection(&[
        feature(0),
        feature_with(1, "fusion_confidence", Some("NaN")),
        feature(2),
    ])
    .into_bytes();
    let len = doc.len();
    let alphabet = prop::sample::select(b"{}[]\",:\\ \nNaI0-1e.tx\xc3\xa9".to_vec());
    prop::collection::vec((0..len, alphabet, 0..3u8), 0..6).prop_map(move |edits| {
        let mut d = doc.clone();
        for (at, byte, how) in edits {
            let at = at.min(d.len().saturating_sub(1));
            match how {
                0 if !d.is_empty() => d[at] = byte,
                1 => d.insert(at, byte),
                _ if !d.is_empty() => {
                    d.remove(at);
                }
                _ => {}
            }
        }
        d
    })
}

fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(b"{}[]\",:\\ \nNaI0-1e.txyfepF".to_vec()),
        0..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_and_chunking_is_invisible(
        input in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..400),
            jsonish(),
            mutated_doc(),
        ],
        step in 1usize..40,
        small in any::<bool>(),
    ) {
        let limits = IngestLimits {
            max_feature_bytes: if small { 200 } else { 64 * 1024 },
            max_reported: 100,
        };
        for format in [InputFormat::GeoJson, InputFormat::NdJson] {
            let all = run(format, limits, &input, input.len());
            let chunked = run(format, limits, &input, step);
            prop_assert_eq!(&chunked, &all);
            if format == InputFormat::NdJson {
                prop_assert!(all.1.is_ok());
            }
        }
        let _ = parse_feature(&input);
    }
}

/// `cargo test --release -p spatial-query --test ingest -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput() {
    const N: u32 = 200_000;
    let features: Vec<String> = (0..N).map(feature).collect();
    let bytes: usize = features.iter().map(String::len).sum();
    let ndjson = features.join("\n");
    let geojson = collection(&features);
    // For scale (the machine may be busy): serde_json merely checking the
    // same features, best of five.
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        for f in &features {
            serde_json::from_str::<serde::de::IgnoredAny>(f).unwrap();
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "serde_json::from_str::<IgnoredAny> alone: {:.0} features/s",
        f64::from(N) / best
    );
    for (name, format, input) in [
        ("NDJSON", InputFormat::NdJson, ndjson.as_bytes()),
        ("GeoJSON", InputFormat::GeoJson, geojson.as_bytes()),
    ] {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = std::time::Instant::now();
            let mut reader = FeatureReader::new(format, IngestLimits::default());
            let mut report = IngestReport::default();
            let mut sum = 0.0;
            let mut out = |r: Result<Asset, Rejection>| {
                report.record(&r);
                if let Ok(a) = r {
                    sum += a.lon;
                }
            };
            for piece in input.chunks(64 * 1024) {
                reader.push(piece, &mut out).unwrap();
            }
            reader.finish(&mut out).unwrap();
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(report.accepted, u64::from(N));
            assert!(sum.is_finite());
            best = best.min(secs);
        }
        println!(
            "{name}: {N} features ({} bytes avg) in {:.3} s: {:.0} features/s, {:.0} MB/s",
            bytes / N as usize,
            best,
            f64::from(N) / best,
            input.len() as f64 / best / 1e6
        );
    }
}
