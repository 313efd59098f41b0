//! Spatial-query parameters: query strings (`query_fields`), the query of
//! each kind with an optional GeoJSON geometry body (`parse_query`,
//! `parse_area`), and page cursors. No input panics; a parsed query keeps
//! its page size within the policy's maximum; cursors round-trip.
//! Input: kind byte, query string, newline, geometry JSON.
#![no_main]

use std::sync::OnceLock;

use edge_fuzz::suite_policy;
use libfuzzer_sys::fuzz_target;
use spatial_query::policy::{Section, SpatialPolicy};
use spatial_query::query::Cursor;
use spatial_query::request::{parse_area, parse_query, query_fields, vertex_count};

fn section() -> &'static Section {
    static S: OnceLock<SpatialPolicy> = OnceLock::new();
    &S.get_or_init(|| {
        edge_core::policy::parse_policy(suite_policy("spatial-query").expect("a policy"))
            .expect("the conformance policy")
    })
    .spatial
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let (query, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let fields = query_fields(Some(query));
    let geometry = serde_json::from_slice::<serde_json::Value>(body).ok();
    let kind = [
        Some("radius"),
        Some("bbox"),
        Some("polygon"),
        Some("nearest"),
        None,
    ][usize::from(kind % 5)];
    let policy = section();
    if let Ok(q) = parse_query(&fields, kind, geometry.as_ref(), policy) {
        assert!(
            q.limit <= policy.max_limit.max(policy.max_k),
            "limit {}",
            q.limit
        );
        if let Some(after) = q.after {
            assert_eq!(Cursor::decode(&after.encode()), Some(after));
        }
    }
    if let Some(geometry) = &geometry
        && let Ok(area) = parse_area(geometry, policy.max_polygon_vertices)
    {
        assert!(vertex_count(&area) <= policy.max_polygon_vertices);
    }
    if let Some(cursor) = Cursor::decode(query) {
        assert_eq!(
            Cursor::decode(&cursor.encode()),
            Some(cursor),
            "cursor round trip"
        );
    }
});
