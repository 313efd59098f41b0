"""Writes spatial-query.json, the spatial-query function's conformance suite.
Every expected answer is computed here, independently of the Rust code:
geodesic distances with GeographicLib (Karney's reference implementation
in Python), boxes, polygons with holes (boundary in or out), filters, id
order and paging cursors by plain Python. So the cases show the four
runtimes answer alike and as a second implementation does.

    target/pyenv/bin/python wasm-tests/conformance/spatial_query.py
(`cargo xtask test` creates target/pyenv with geographiclib.)
"""

import json
import math
import os

from geographiclib.geodesic import Geodesic

from cases import case, problem

HERE = os.path.dirname(os.path.abspath(__file__))
ADMIN = "conformance-admin-token"
AUTH = {"authorization": "Bearer " + ADMIN}

# Small tiles, so every query crosses several.
POLICY = """
[spatial]
dataset = "conformance"
fusion_max_distance_m = 5000.0
fusion_min_confidence = 0.0
default_limit = 100
max_limit = 1000
max_k = 100
max_tiles_per_query = 256
tile_capacity = 4
tile_cache_bytes = 1048576
head_ttl = "5s"
max_polygon_vertices = 1000
max_zones = 10
admin_token_secret = "SPATIAL_ADMIN_TOKEN"
"""


def uuid(n):
    return "00000000-0000-4000-8000-%012d" % n


def asset(n, lon, lat):
    return {
        "id": uuid(n),
        "lon": lon,
        "lat": lat,
        "z": 30.0 + n,
        "deformation": [float(n % 3), -1.5, float(n % 4) / 2],
        "registration_quality": 0.75,
        "fusion_confidence": [0.2, 0.5, 0.8, 0.95][n % 4],
        "processing_duration_ms": 1000 + n,
        "algorithm_version": "fusion-2.%d.0" % (n % 2),
        "processed_at": "2026-%02d-15T08:30:00Z" % (1 + n % 6),
    }


# A 5 x 4 grid in Berlin, 0.01 degrees apart; three assets by the
# antimeridian; one near the North Pole.
ASSETS = [asset(j * 5 + i, round(13.40 + 0.01 * i, 2), round(52.50 + 0.01 * j, 2)) for j in range(4) for i in range(5)]
ASSETS += [asset(20, 179.95, -16.5), asset(21, -179.95, -16.5), asset(22, -179.0, -16.5), asset(23, 45.0, 89.9)]
# Added later as a GeoJSON FeatureCollection.
LATE = [asset(24, 13.455, 52.515), asset(25, 13.385, 52.485)]


def feature_in(a):
    return {
        "type": "Feature",
        "id": a["id"],
        "geometry": {"type": "Point", "coordinates": [a["lon"], a["lat"], a["z"]]},
        "properties": {k: a[k] for k in ("deformation", "registration_quality", "fusion_confidence",
                                         "processing_duration_ms", "algorithm_version", "processed_at")},
    }


def magnitude(a):
    dx, dy, dz = a["deformation"]
    return math.sqrt(dx * dx + dy * dy + dz * dz)


def feature_out(a, distance=None):
    f = feature_in(a)
    f["properties"]["deformation_magnitude"] = magnitude(a)
    if distance is not None:
        # Millimetres, rounded half away from zero (Rust's f64::round).
        f["properties"]["distance_m"] = math.floor(distance * 1000.0 + 0.5) / 1000.0
    return f


def distance(a, lon, lat):
    return Geodesic.WGS84.Inverse(lat, lon, a["lat"], a["lon"])["s12"]


ALL = ASSETS + LATE


def by_id(assets):
    return sorted(assets, key=lambda a: a["id"])


def radius(lon, lat, r, assets=None):
    hits = [(distance(a, lon, lat), a["id"], a) for a in (assets or ALL)]
    hits = sorted(h for h in hits if h[0] <= r)
    return [feature_out(a, d) for d, _, a in hits]


def nearest(lon, lat, k, reach):
    return radius(lon, lat, reach)[:k]


def in_box(a, w, s, e, n):
    lon_ok = w <= a["lon"] <= e if w <= e else (a["lon"] >= w or a["lon"] <= e)
    return lon_ok and s <= a["lat"] <= n


def on_segment(p, q, r):
    (px, py), (qx, qy), (rx, ry) = p, q, r
    cross = (qx - px) * (ry - py) - (qy - py) * (rx - px)
    return cross == 0 and min(px, qx) <= rx <= max(px, qx) and min(py, qy) <= ry <= max(py, qy)


def ring_position(ring, x, y):
    """'boundary', 'inside' or 'outside' (even-odd ray casting)."""
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:]):
        if on_segment((x1, y1), (x2, y2), (x, y)):
            return "boundary"
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return "inside" if inside else "outside"


def polygon_position(rings, x, y):
    outer = ring_position(rings[0], x, y)
    if outer != "inside":
        return outer
    for hole in rings[1:]:
        h = ring_position(hole, x, y)
        if h == "boundary":
            return "boundary"
        if h == "inside":
            return "outside"
    return "inside"


def square(w, s, e, n, clockwise=False):
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    return ring[::-1] if clockwise else ring


def page(features, matched=None, nxt=None):
    body = {"type": "FeatureCollection", "numberMatched": len(features) if matched is None else matched,
            "numberReturned": len(features), "features": features}
    body["next"] = nxt
    return body


def cursor(distance_m, uid):
    bits = 0 if distance_m == 0 else int.from_bytes(__import__("struct").pack(">d", distance_m), "big")
    return "%016x%s" % (bits, uid.replace("-", ""))


def main():
    ndjson_lines = [json.dumps(feature_in(a)) for a in ASSETS]
    bad = [
        '{"type":"Feature","id":"%s","geometry":{"type":"Point","coordinates":[NaN,1]},"properties":{}}' % uuid(90),
        json.dumps(dict(feature_in(asset(91, 181.0, 0.0)))),
        json.dumps({**feature_in(asset(92, 1.0, 1.0)), "properties": {**feature_in(asset(92, 1, 1))["properties"], "fusion_confidence": 1.5}}),
        json.dumps({**feature_in(asset(93, 1.0, 1.0)), "id": "not-a-uuid"}),
    ]
    ndjson = "\n".join(ndjson_lines[:10] + bad[:2] + ndjson_lines[10:] + bad[2:]) + "\n"
    fc = json.dumps({"type": "FeatureCollection", "features": [feature_in(a) for a in LATE]})

    berlin = [a for a in ALL if 13.0 < a["lon"] < 14.0]
    box = (13.405, 52.495, 13.435, 52.525)
    polygon = {"type": "Polygon", "coordinates": [square(13.395, 52.495, 13.445, 52.525),
                                                   square(13.415, 52.505, 13.425, 52.515, clockwise=True)]}
    # Vertices and edges through grid points, so the boundary matters.
    edge_polygon = {"type": "MultiPolygon", "coordinates": [[square(13.40, 52.50, 13.42, 52.52)],
                                                            [square(13.44, 52.52, 13.45, 52.53)]]}

    def within(geometry, boundary):
        keep = []
        for a in ALL:
            polys = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
            positions = [polygon_position(p, a["lon"], a["lat"]) for p in polys]
            if "inside" in positions or (boundary == "include" and "boundary" in positions):
                keep.append(a)
        return [feature_out(a) for a in by_id(keep)]

    confident = by_id([a for a in berlin if a["fusion_confidence"] >= 0.8])
    march = by_id([a for a in berlin if a["processed_at"].startswith("2026-03")])
    moving = by_id([a for a in berlin if magnitude(a) >= 2.0])
    berlin_sorted = by_id(berlin)
    first5 = berlin_sorted[:5]
    zone = {"type": "Feature", "properties": {"name": "yard"},
            "geometry": {"type": "Polygon", "coordinates": [square(13.40, 52.50, 13.42, 52.52)]}}

    cases = [
        case("health passes", "GET", "/health", 200, {"status": "pass", "function": "spatial-query"}),
        case("an empty dataset has no head", "GET", "/dataset", 200, {"dataset": "conformance", "head": None}),
        case("queries on an empty dataset find nothing", "GET", "/assets/bbox?bbox=-180,-90,180,90", 200, page([])),
        case("ingest needs the admin token", "POST", "/assets", 401, problem("unauthorized"), body=ndjson,
             headers={"content-type": "application/x-ndjson"}, body_excludes=[ADMIN]),
        case("NDJSON ingest keeps the good features and reports the bad ones", "POST", "/assets", 201,
             {"report": {"accepted": len(ASSETS), "rejected": 4}, "dataset": {"assets": len(ASSETS)}},
             body=ndjson, headers={"content-type": "application/x-ndjson", **AUTH}),
        case("a FeatureCollection adds a second run", "POST", "/assets", 201,
             {"report": {"accepted": 2, "rejected": 0}, "dataset": {"assets": len(ALL)}},
             body=fc, headers={"content-type": "application/geo+json", **AUTH}),
        case("an unknown media type is refused", "POST", "/assets", 415, problem("unsupported-media-type"),
             body="x", headers={"content-type": "text/csv", **AUTH}),
        case("radius: geodesic on WGS84, nearest first, distances in metres", "GET",
             "/assets/radius?lon=13.412&lat=52.508&radius_m=1500", 200, page(radius(13.412, 52.508, 1500))),
        case("radius defaults to FUSION_MAX_DISTANCE (5 km here)", "GET", "/assets/radius?lon=13.36&lat=52.5",
             200, page(radius(13.36, 52.5, 5000))),
        case("radius across the antimeridian", "GET", "/assets/radius?lon=180&lat=-16.5&radius_m=20000", 200,
             page(radius(180.0, -16.5, 20000))),
        case("radius at the pole", "GET", "/assets/radius?lon=-120&lat=90&radius_m=20000", 200,
             page(radius(-120.0, 90.0, 20000))),
        case("bbox, boundary included, by id", "GET", "/assets/bbox?bbox=%s,%s,%s,%s" % box, 200,
             page([feature_out(a) for a in by_id([a for a in ALL if in_box(a, *box)])])),
        case("bbox crossing the antimeridian (west > east)", "GET", "/assets/bbox?bbox=179.9,-17,-179.5,-16", 200,
             page([feature_out(a) for a in by_id([a for a in ALL if in_box(a, 179.9, -17, -179.5, -16)])])),
        case("polygon with a hole, boundary included (ST_Covers)", "POST", "/assets/within?boundary=include", 200,
             page(within(polygon, "include")), body=json.dumps(polygon), headers={"content-type": "application/geo+json"}),
        case("multipolygon through grid points, boundary included", "POST", "/assets/within", 200,
             page(within(edge_polygon, "include")), body=json.dumps(edge_polygon),
             headers={"content-type": "application/geo+json"}),
        case("multipolygon through grid points, boundary excluded (ST_Contains)", "POST",
             "/assets/within?boundary=exclude", 200, page(within(edge_polygon, "exclude")),
             body=json.dumps(edge_polygon), headers={"content-type": "application/geo+json"}),
        case("k nearest with distances", "GET", "/assets/nearest?lon=13.4033&lat=52.5071&k=4", 200,
             page(nearest(13.4033, 52.5071, 4, 5000))),
        case("nearest stops at max_distance_m", "GET", "/assets/nearest?lon=13.3&lat=52.5&k=3&max_distance_m=7000",
             200, page(nearest(13.3, 52.5, 3, 7000))),
        case("min_confidence filter", "GET", "/assets/bbox?bbox=13,52,14,53&min_confidence=0.8", 200,
             page([feature_out(a) for a in confident])),
        case("time window: from inclusive, to exclusive", "GET",
             "/assets/bbox?bbox=13,52,14,53&from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z", 200,
             page([feature_out(a) for a in march])),
        case("min_magnitude filter", "GET", "/assets/bbox?bbox=13,52,14,53&min_magnitude=2", 200,
             page([feature_out(a) for a in moving])),
        case("paging: the first page and a cursor", "GET", "/assets/bbox?bbox=13,52,14,53&limit=5", 200,
             page([feature_out(a) for a in first5], matched=len(berlin), nxt=cursor(0, first5[-1]["id"]))),
        case("paging: the page after the cursor", "GET",
             "/assets/bbox?bbox=13,52,14,53&limit=5&cursor=" + cursor(0, first5[-1]["id"]), 200,
             page([feature_out(a) for a in berlin_sorted[5:10]], matched=len(berlin),
                  nxt=cursor(0, berlin_sorted[9]["id"]))),
        case("the JSON query form", "POST", "/assets/query", 200, page(nearest(13.41, 52.51, 2, 5000)),
             body=json.dumps({"type": "nearest", "lon": 13.41, "lat": 52.51, "k": 2}),
             headers={"content-type": "application/json"}),
        case("the dataset's head counts both runs", "GET", "/dataset", 200,
             {"dataset": "conformance", "head": {"assets": len(ALL)}}),
        case("longitude out of range: 400 naming lon", "GET", "/assets/radius?lon=190&lat=0", 400,
             problem("invalid-query", "lon")),
        case("a NaN-like latitude: 400 naming lat", "GET", "/assets/radius?lon=0&lat=NaN", 400,
             problem("invalid-query", "lat")),
        case("a bbox with three numbers: 400", "GET", "/assets/bbox?bbox=1,2,3", 400, problem("invalid-query", "bbox")),
        case("k beyond max_k: 400", "GET", "/assets/nearest?lon=0&lat=0&k=101", 400, problem("invalid-query", "k")),
        case("an open ring: 400 naming geometry", "POST", "/assets/within", 400, problem("invalid-query", "geometry"),
             body=json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}),
             headers={"content-type": "application/geo+json"}),
        case("an unknown query type: 400", "POST", "/assets/query", 400, problem("invalid-query", "type"),
             body='{"type":"sphere"}', headers={"content-type": "application/json"}),
        case("a forged cursor: 400", "GET", "/assets/bbox?bbox=0,0,1,1&cursor=nope", 400,
             problem("invalid-query", "cursor")),
        case("a body that is not JSON: 400", "POST", "/assets/query", 400, problem("invalid-json"), body="{",
             headers={"content-type": "application/json"}),
        case("a wrong method: 405", "DELETE", "/assets/radius?lon=0&lat=0", 405, problem("method-not-allowed"),
             headers_present=["allow"]),
        case("an unknown path: 404", "GET", "/nowhere", 404, problem("not-found")),
        case("a zone needs the admin token", "PUT", "/zones/yard", 401, problem("unauthorized"), body=json.dumps(zone),
             headers={"content-type": "application/geo+json"}),
        case("a zone is stored", "PUT", "/zones/yard", 204, body=json.dumps(zone),
             headers={"content-type": "application/geo+json", **AUTH}),
        case("a bad zone is refused", "PUT", "/zones/bad", 400, problem("invalid-zone", "geometry"),
             body='{"type":"Point","coordinates":[0,0]}', headers={"content-type": "application/geo+json", **AUTH}),
        case("geofence: a point inside", "GET", "/geofence?lon=13.41&lat=52.51", 200,
             {"type": "FeatureCollection", "features": [{"type": "Feature", "id": "yard", **{k: zone[k] for k in ("geometry", "properties")}}]}),
        case("geofence: a point on the edge is inside", "GET", "/geofence?lon=13.4&lat=52.51", 200,
             {"type": "FeatureCollection", "features": [{"type": "Feature", "id": "yard", **{k: zone[k] for k in ("geometry", "properties")}}]}),
        case("geofence: a point outside", "GET", "/geofence?lon=13.5&lat=52.51", 200,
             {"type": "FeatureCollection", "features": []}),
        case("the zone is listed", "GET", "/zones", 200,
             {"type": "FeatureCollection", "features": [{"type": "Feature", "id": "yard", **{k: zone[k] for k in ("geometry", "properties")}}]}),
        case("the zone is deleted", "DELETE", "/zones/yard", 204, headers=AUTH),
        case("and is gone", "GET", "/zones/yard", 404, problem("not-found")),
        # Issue 16: what a new user found.
        case("an unknown parameter: 400 naming it (no fallback to the default radius)", "GET",
             "/assets/radius?lon=13.41&lat=52.51&radius=5", 400, problem("invalid-query", "radius")),
        case("from after to: 400 naming from", "GET",
             "/assets/bbox?bbox=13,52,14,53&from=2026-04-01T00:00:00Z&to=2026-03-01T00:00:00Z", 400,
             problem("invalid-query", "from")),
        case("a time finer than a millisecond: 400, not cut off", "GET",
             "/assets/bbox?bbox=13,52,14,53&from=2026-03-01T00:00:00.0005Z", 400,
             problem("invalid-query", "from")),
        case("a body that is not JSON by its type: 415", "POST", "/assets/within", 415,
             problem("unsupported-media-type"), body=json.dumps(polygon),
             headers={"content-type": "application/pdf"}),
        case("an ingest with nothing valid: a 422 problem with the report", "POST", "/assets", 422,
             {**problem("no-valid-features"), "report": {"accepted": 0, "rejected": 2}},
             body="\n".join(bad[1:3]) + "\n", headers={"content-type": "application/x-ndjson", **AUTH}),
        case("an id is a key: re-ingesting a batch changes nothing", "POST", "/assets", 201,
             {"report": {"accepted": 2, "rejected": 0}, "dataset": {"assets": len(ALL)}},
             body=fc, headers={"content-type": "application/geo+json", **AUTH}),
        case("a delete needs the admin token", "DELETE", "/assets/" + LATE[0]["id"], 401, problem("unauthorized")),
        case("an asset is deleted", "DELETE", "/assets/" + LATE[0]["id"], 204, headers=AUTH),
        case("and is gone from the count", "GET", "/dataset", 200,
             {"dataset": "conformance", "head": {"assets": len(ALL) - 1}}),
        case("and from queries", "GET", "/assets/radius?lon=%s&lat=%s&radius_m=0" % (LATE[0]["lon"], LATE[0]["lat"]),
             200, page([])),
        case("a second delete: 404", "DELETE", "/assets/" + LATE[0]["id"], 404, problem("not-found", "id"),
             headers=AUTH),
    ]
    suite = {
        "function": "spatial-query",
        "browser_class": "SpatialQueryFunction",
        "mount": "/spatial-query",
        "vars": {"POLICY": POLICY},
        "secrets": {"SPATIAL_ADMIN_TOKEN": ADMIN},
        "cases": cases,
    }
    with open(os.path.join(HERE, "spatial-query.json"), "w") as f:
        json.dump(suite, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
