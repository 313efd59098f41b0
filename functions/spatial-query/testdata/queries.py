#!/usr/bin/env python3
"""Writes random spatial queries over a file of generated assets (JSON lines).

Usage: queries.py [--seed N] --assets ASSETS.ndjson [--per-type N]
                  [--out FILE.jsonl] [--edge-cases]

Deterministic for a seed and an assets file. `--per-type` queries of each
of the four types, in this order, one JSON object a line, ids numbered per
type from 0 ("r0".., "b0".., "p0".., "k0"..):

  {"id": "r17", "type": "radius", "lon": .., "lat": .., "radius_m": ..}
      Centre near an asset (jittered), exactly on one, uniform over the
      sphere, or in an awkward place (near the antimeridian, within 2
      degrees of a pole or on it, near (0, 0)); radius log-uniform over
      50 m .. 300 km.
  {"id": "b3", "type": "bbox", "bbox": [west, south, east, north]}
      Width and height log-uniform over 0.001 .. 20 degrees (aspect at most
      4:1 before clamping); about 10% cross the antimeridian (west > east,
      e.g. [179.5, -10, -179.2, 5]), most of those around an asset near it;
      some have an edge exactly on an
      asset's longitude or latitude, or exactly on +-180 / +-90.
      Boundaries inclusive.
  {"id": "p5", "type": "polygon", "geometry": <GeoJSON Polygon or
   MultiPolygon>, "boundary": "include" | "exclude"}
      Star-shaped around a centre (vertex angles sorted, so simple), 5..40
      distinct vertices, closed rings, the outer ring counter-clockwise;
      about 30% of rings have one hole (a smaller star, strictly inside,
      clockwise); about 20% are MultiPolygons of two disjoint parts; size
      0.01 .. 5 degrees; never crossing the antimeridian or a pole. About
      10% have some vertices that are asset coordinates, and some also an
      axis-parallel edge passing exactly through an asset (both put assets
      exactly on the boundary); these come in pairs, the same geometry once
      "include" and once "exclude", without filters. Of the rest, alternately "include"
      (boundary points count, like ST_Covers) and "exclude" (like
      ST_Contains).
  {"id": "k2", "type": "knn", "lon": .., "lat": .., "k": 1 | 5 | 10 | 50}
      Centre near an asset, exactly on one (some on positions several
      assets share, so distances tie), uniform, or awkward.

About 30% of the queries (not the polygon pairs) carry filters, any of: "min_confidence": x
(fusion_confidence >= x), "min_magnitude": y (|deformation| >= y),
"from": RFC 3339 (processed_at >= from), "to": RFC 3339 (processed_at <
to). Thresholds are sometimes exactly an asset's value, so the
inclusive/exclusive ends matter; times are in milliseconds, often exactly an
asset's time or one millisecond off it, some before 1970, mostly `Z`, some
with an offset; about 5% of time filters have a bound finer than a
millisecond (six fraction digits), which the function refuses (with
--edge-cases only).
With --edge-cases, about 10% of radius and knn queries are centred exactly on an asset at a
pole or on the antimeridian but spelled differently (another longitude at
the pole, 180 for -180), a third of those radius queries with radius 0
and half of the rest under 50 m; 3% more radius queries have radius 0 on
an asset.

Coordinates and numbers are written with Python's repr (via json).
Only the standard library is used. Progress goes to stderr.
"""

import argparse
import calendar
import datetime
import json
import math
import random
import sys
import time

METRES_PER_DEGREE = 111_320.0
T_START = calendar.timegm((2024, 1, 1, 0, 0, 0))
T_END = calendar.timegm((2026, 11, 1, 0, 0, 0))
T_OLD_START = calendar.timegm((1950, 1, 1, 0, 0, 0))
T_OLD_END = calendar.timegm((1970, 1, 2, 0, 0, 0))
LON_LIMIT = 179.999  # polygons keep inside (-LON_LIMIT, LON_LIMIT)
LAT_LIMIT = 89.999


def log_uniform(rng, lo, hi):
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def wrap_lon(lon):
    if -180.0 <= lon <= 180.0:
        return lon
    lon = math.fmod(lon + 180.0, 360.0)
    if lon < 0.0:
        lon += 360.0
    return lon - 180.0


def uniform_point(rng):
    return rng.uniform(-180.0, 180.0), math.degrees(math.asin(rng.uniform(-1.0, 1.0)))


def offset_point(lon, lat, east_m, north_m):
    """(lon, lat) moved by metres east and north (flat-earth), wrapped/reflected."""
    lat2 = lat + north_m / METRES_PER_DEGREE
    flip = False
    if lat2 > 90.0:
        lat2, flip = 180.0 - lat2, True
    elif lat2 < -90.0:
        lat2, flip = -180.0 - lat2, True
    coslat = max(math.cos(math.radians(lat)), 1e-3)
    lon2 = lon + east_m / (METRES_PER_DEGREE * coslat)
    if flip:
        lon2 += 180.0
    return wrap_lon(lon2), lat2


def jitter(rng, lon, lat, sigma_m):
    return offset_point(lon, lat, rng.gauss(0.0, sigma_m), rng.gauss(0.0, sigma_m))


def awkward_point(rng):
    r = rng.random()
    if r < 0.45:
        # Near the antimeridian, either side, sometimes exactly on it.
        u = rng.random()
        if u < 0.1:
            lon = 180.0
        elif u < 0.2:
            lon = -180.0
        else:
            off = rng.uniform(0.0, 0.5)
            lon = 180.0 - off if rng.random() < 0.5 else -180.0 + off
        return lon, max(-89.0, min(89.0, rng.gauss(0.0, 25.0)))
    if r < 0.85:
        # Near a pole, sometimes on it.
        u = rng.random()
        lat = 90.0 if u < 0.15 else rng.uniform(88.0, 90.0)
        if rng.random() < 0.5:
            lat = -lat
        return rng.uniform(-180.0, 180.0), lat
    # Near (0, 0), sometimes exactly on it.
    if rng.random() < 0.3:
        return 0.0, 0.0
    return rng.gauss(0.0, 0.05), rng.gauss(0.0, 0.05)


class Assets:
    """The fields of the assets that queries are built from, in file order."""

    def __init__(self, path):
        self.lon = []
        self.lat = []
        self.conf = []
        self.mag = []
        self.t = []
        started = time.monotonic()
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                feature = json.loads(line)
                lon, lat = feature["geometry"]["coordinates"][:2]
                p = feature["properties"]
                dx, dy, dz = p["deformation"]
                self.lon.append(lon)
                self.lat.append(lat)
                self.conf.append(p["fusion_confidence"])
                self.mag.append(math.sqrt(dx * dx + dy * dy + dz * dz))
                self.t.append(parse_time(p["processed_at"]))
                if n % 250_000 == 0:
                    print(f"queries: {n} assets read", file=sys.stderr)
        if not self.lon:
            raise SystemExit(f"queries: no assets in {path}")
        self.grid = None
        print(
            f"queries: {len(self.lon)} assets read in {time.monotonic() - started:.1f} s",
            file=sys.stderr,
        )

    def __len__(self):
        return len(self.lon)

    def on_pole_or_antimeridian(self):
        """Indexes of the assets exactly at a pole or on +-180."""
        if not hasattr(self, "_edge"):
            self._edge = [
                i
                for i, (lon, lat) in enumerate(zip(self.lon, self.lat))
                if abs(lat) == 90.0 or abs(lon) == 180.0
            ]
        return self._edge

    def near_antimeridian(self):
        """Indexes of the assets within 0.5 degrees of the antimeridian."""
        if not hasattr(self, "_near_am"):
            self._near_am = [i for i, lon in enumerate(self.lon) if abs(lon) >= 179.5]
        return self._near_am

    def near(self, lon0, lat0, lon1, lat1):
        """Indexes of the assets in the box (no wrapping), from a 1-degree grid."""
        if self.grid is None:
            grid = {}
            for i, (lon, lat) in enumerate(zip(self.lon, self.lat)):
                grid.setdefault((math.floor(lon), math.floor(lat)), []).append(i)
            self.grid = grid
        found = []
        for gx in range(math.floor(lon0), math.floor(lon1) + 1):
            for gy in range(math.floor(lat0), math.floor(lat1) + 1):
                for i in self.grid.get((gx, gy), ()):
                    if lon0 <= self.lon[i] <= lon1 and lat0 <= self.lat[i] <= lat1:
                        found.append(i)
        return found


EPOCH = datetime.datetime(1970, 1, 1)
# --edge-cases: respelled pole/antimeridian centres, radius 0 and bounds
# finer than a millisecond (the oracle test; the benchmark leaves them out:
# PostgreSQL's KNN index scan fails on some, and the function refuses the
# sub-millisecond ones).
EDGE_CASES = False


def parse_time(text):
    """processed_at of a generated asset ("YYYY-MM-DDTHH:MM:SS[.mmm]Z",
    possibly before 1970) as epoch milliseconds."""
    whole, _, frac = text.rstrip("Z").partition(".")
    d = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    ms = (d - EPOCH) // datetime.timedelta(milliseconds=1)
    return ms + (int(frac.ljust(3, "0")[:3]) if frac else 0)


def format_time(rng, t_ms, sub_ms=0):
    """Epoch milliseconds as RFC 3339: mostly `Z`, some with an offset;
    milliseconds written when there are any (and now and then when there
    are none, as `.000`); `sub_ms` (0..999) microseconds below the
    millisecond, written as six digits (such a bound is to be refused)."""
    r = rng.random()
    seconds, ms = divmod(t_ms, 1000)
    if sub_ms:
        frac = f".{ms:03d}{sub_ms:03d}"
    elif ms or r > 0.9:
        frac = f".{ms:03d}"
    else:
        frac = ""
    if r < 0.2:
        minutes = rng.choice([-480, -300, -210, 60, 120, 330, 345, 540, 840])
        local = EPOCH + datetime.timedelta(seconds=seconds + minutes * 60)
        sign = "+" if minutes >= 0 else "-"
        hh, mm = divmod(abs(minutes), 60)
        return local.strftime("%Y-%m-%dT%H:%M:%S") + frac + f"{sign}{hh:02d}:{mm:02d}"
    return (EPOCH + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def filters(rng, assets):
    """About 30% of queries: a non-empty random set of filters."""
    if rng.random() >= 0.3:
        return {}
    out = {}
    while not out:
        if rng.random() < 0.5:
            r = rng.random()
            if r < 0.4:
                out["min_confidence"] = round(rng.uniform(0.3, 0.95), 2)
            elif r < 0.7:
                out["min_confidence"] = assets.conf[rng.randrange(len(assets))]
            elif r < 0.85:
                out["min_confidence"] = 0.0
            else:
                out["min_confidence"] = 1.0
        if rng.random() < 0.4:
            r = rng.random()
            if r < 0.4:
                out["min_magnitude"] = round(rng.uniform(0.0, 20.0), 1)
            elif r < 0.8:
                out["min_magnitude"] = assets.mag[rng.randrange(len(assets))]
            else:
                out["min_magnitude"] = 0.0
        if rng.random() < 0.5:
            # Times in milliseconds; bounds often exactly an asset's time
            # (from inclusive, to exclusive) or a millisecond off it, some
            # before 1970.
            if rng.random() < 0.4:
                start = assets.t[rng.randrange(len(assets))] + rng.choice([0, 0, -1, 1])
            elif rng.random() < 0.2:
                start = rng.randrange(T_OLD_START, T_OLD_END) * 1000 + rng.randrange(1000)
            else:
                start = rng.randrange(T_START - 30 * 86_400, T_END) * 1000
            length = int(log_uniform(rng, 1.0, 1000.0 * 86_400_000.0))
            if rng.random() < 0.3:
                # An asset's time as the exclusive end.
                end = assets.t[rng.randrange(len(assets))] + rng.choice([0, 0, -1, 1])
                start = end - length
            else:
                end = start + length
            # Now and then a bound finer than a millisecond: refused.
            sub = [0, 0]
            if EDGE_CASES and rng.random() < 0.05:
                sub[rng.randrange(2)] = rng.randrange(1, 1000)
            r = rng.random()
            if r < 0.6:
                out["from"] = format_time(rng, start, sub[0])
                out["to"] = format_time(rng, end, sub[1])
            elif r < 0.8:
                out["from"] = format_time(rng, start, sub[0] or sub[1])
            else:
                out["to"] = format_time(rng, end, sub[0] or sub[1])
    return out


# --- radius ----------------------------------------------------------------

def respelled(rng, assets):
    """An asset exactly at a pole or on the antimeridian, its position
    written differently (another longitude at a pole, 180 for -180), or None."""
    edge = assets.on_pole_or_antimeridian()
    if not edge:
        return None
    i = edge[rng.randrange(len(edge))]
    lon, lat = assets.lon[i], assets.lat[i]
    if abs(lat) == 90.0:
        return rng.choice([0.0, 180.0, -180.0, rng.uniform(-180.0, 180.0)]), lat
    return -lon, lat


def radius_query(rng, assets):
    radius = log_uniform(rng, 50.0, 300_000.0)
    r = rng.random()
    if EDGE_CASES and r < 0.1:
        # On a pole or the antimeridian, spelled differently from the
        # assets there; a third with radius 0 (the same point only).
        p = respelled(rng, assets)
        if p is not None:
            if rng.random() < 0.33:
                radius = 0.0
            elif rng.random() < 0.5:
                radius = log_uniform(rng, 0.001, 50.0)
            return {"type": "radius", "lon": p[0], "lat": p[1], "radius_m": radius}
    if EDGE_CASES and r < 0.13:
        # Radius 0 on an asset.
        i = rng.randrange(len(assets))
        return {"type": "radius", "lon": assets.lon[i], "lat": assets.lat[i], "radius_m": 0.0}
    if r < 0.6:
        i = rng.randrange(len(assets))
        lon, lat = jitter(rng, assets.lon[i], assets.lat[i], radius * rng.uniform(0.0, 0.7))
    elif r < 0.7:
        i = rng.randrange(len(assets))
        lon, lat = assets.lon[i], assets.lat[i]
    elif r < 0.85:
        lon, lat = uniform_point(rng)
    else:
        lon, lat = awkward_point(rng)
    return {"type": "radius", "lon": lon, "lat": lat, "radius_m": radius}


# --- bbox ------------------------------------------------------------------

def bbox_size(rng):
    size = log_uniform(rng, 0.001, 20.0)
    aspect = math.exp(rng.uniform(-math.log(4.0), math.log(4.0)))
    w = min(20.0, max(0.001, size * math.sqrt(aspect)))
    h = min(20.0, max(0.001, size / math.sqrt(aspect)))
    return w, h


def bbox_query(rng, assets):
    w, h = bbox_size(rng)
    r = rng.random()
    if r < 0.1:
        # Across the antimeridian: [west, 180] and [-180, east].
        near = assets.near_antimeridian()
        if near and rng.random() < 0.6:
            # Around an asset near the antimeridian, so the box is not empty.
            i = near[rng.randrange(len(near))]
            ax, ay = assets.lon[i], assets.lat[i]
            if ax >= 0.0:
                u_min, u_max = 180.0 - ax, w  # west = 180 - u <= ax
            else:
                u_min, u_max = 0.0, w - (ax + 180.0)  # east = w - u - 180 >= ax
            if u_max < u_min:
                w += u_min - u_max
                u_max = u_min
            u = rng.uniform(u_min, u_max)
            cy = ay + rng.uniform(-h / 2.0, h / 2.0)
        else:
            u = rng.uniform(0.0, w)
            cy = max(-89.0, min(89.0, rng.gauss(0.0, 25.0)))
        west = 180.0 - u
        east = west + w - 360.0
        if rng.random() < 0.1:
            west = 180.0 - w / 2.0
            east = -180.0  # only the -180 meridian on the far side
        if not west > east:
            west, east = 180.0 - w / 2.0, -180.0 + w / 2.0
        south, north = cy - h / 2.0, cy + h / 2.0
    else:
        if r < 0.65:
            i = rng.randrange(len(assets))
            cx, cy = jitter(rng, assets.lon[i], assets.lat[i], 0.3 * METRES_PER_DEGREE * min(w, h))
        elif r < 0.8:
            cx, cy = uniform_point(rng)
        else:
            cx, cy = awkward_point(rng)
        west, east = cx - w / 2.0, cx + w / 2.0
        south, north = cy - h / 2.0, cy + h / 2.0
        # No wrapping here: clamp at +-180 (so some edges are exactly +-180).
        if west < -180.0:
            west, east = -180.0, -180.0 + w
        if east > 180.0:
            west, east = 180.0 - w, 180.0
        if r >= 0.9:
            # An edge exactly on an asset's longitude or latitude.
            i = rng.randrange(len(assets))
            ax, ay = assets.lon[i], assets.lat[i]
            e = rng.randrange(4)
            if e == 0:
                west, east = ax, min(180.0, ax + w)
            elif e == 1:
                west, east = max(-180.0, ax - w), ax
            elif e == 2:
                south, north = ay, ay + h
            else:
                south, north = ay - h, ay
            if e >= 2:
                cx = ax + rng.uniform(-w / 2.0, w / 2.0)
                west, east = max(-180.0, cx - w / 2.0), min(180.0, cx + w / 2.0)
            else:
                south = ay - rng.uniform(0.0, h)
                north = south + h
    south = max(-90.0, south)
    north = min(90.0, north)
    return {"type": "bbox", "bbox": [west, south, east, north]}


# --- polygon ---------------------------------------------------------------

def star_angles(rng, n):
    """n increasing angles in [a0, a0 + 2 pi), every gap below pi."""
    a0 = rng.uniform(0.0, 2.0 * math.pi)
    step = 2.0 * math.pi / n
    return [a0 + (i + rng.uniform(0.15, 0.85)) * step for i in range(n)]


def min_edge_distance(pts):
    """Smallest distance from the origin to the edges of a closed ring."""
    best = math.inf
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
        dx, dy = x2 - x1, y2 - y1
        den = dx * dx + dy * dy
        t = 0.0 if den == 0.0 else max(0.0, min(1.0, -(x1 * dx + y1 * dy) / den))
        px, py = x1 + t * dx, y1 + t * dy
        best = min(best, math.hypot(px, py))
    return best


def star_part(rng, cx, cy, radius, sx, with_hole):
    """A polygon (list of rings) star-shaped around (cx, cy): in the frame
    x = (lon - cx) / sx, y = lat - cy its vertices lie within `radius`."""
    n = rng.randint(5, 40)
    angles = star_angles(rng, n)
    local = []
    for a in angles:
        r = radius * rng.uniform(0.35, 1.0)
        local.append((r * math.cos(a), r * math.sin(a)))
    outer = [[cx + sx * x, cy + y] for x, y in local]
    outer.append(list(outer[0]))
    rings = [outer]
    if with_hole:
        inner_max = 0.8 * min_edge_distance(local)
        m = rng.randint(4, 12)
        hole = []
        for a in reversed(star_angles(rng, m)):  # clockwise
            r = inner_max * rng.uniform(0.3, 1.0)
            hole.append([cx + sx * r * math.cos(a), cy + r * math.sin(a)])
        hole.append(list(hole[0]))
        rings.append(hole)
    return rings


def lon_scale(cy):
    return min(4.0, 1.0 / max(math.cos(math.radians(cy)), 1e-9))


def fit_centre(cx, cy, radius, sx_of):
    """Move a centre so that a part of `radius` stays off the antimeridian and poles."""
    cy = max(-LAT_LIMIT + radius, min(LAT_LIMIT - radius, cy))
    sx = sx_of(cy)
    cx = max(-LON_LIMIT + sx * radius, min(LON_LIMIT - sx * radius, cx))
    return cx, cy, sx


def polygon_centre(rng, assets, radius):
    r = rng.random()
    if r < 0.7:
        # Off an asset by 0.2..0.5 of the radius (holes are centred).
        i = rng.randrange(len(assets))
        a = rng.uniform(0.0, 2.0 * math.pi)
        d = radius * rng.uniform(0.2, 0.5)
        lat = max(-LAT_LIMIT, min(LAT_LIMIT, assets.lat[i] + d * math.sin(a)))
        return assets.lon[i] + lon_scale(lat) * d * math.cos(a), lat
    if r < 0.85:
        return uniform_point(rng)
    return awkward_point(rng)


def ring_inside_limits(ring):
    return all(-LON_LIMIT <= x <= LON_LIMIT and -LAT_LIMIT <= y <= LAT_LIMIT for x, y in ring)


def plain_polygon(rng, assets):
    size = log_uniform(rng, 0.01, 5.0)
    if rng.random() < 0.2 / 0.9:
        # Two disjoint parts, each of diameter at most `size`.
        r1 = size / 2.0
        r2 = r1 * rng.uniform(0.3, 1.0)
        gap = (r1 + r2) * rng.uniform(1.15, 2.0)
        while True:
            cx, cy = polygon_centre(rng, assets, r1)
            cx, cy, sx = fit_centre(cx, cy, r1 + gap + r2, lon_scale)
            a = rng.uniform(0.0, 2.0 * math.pi)
            c2x, c2y = cx + sx * gap * math.cos(a), cy + gap * math.sin(a)
            p1 = star_part(rng, cx, cy, r1, sx, rng.random() < 0.3)
            p2 = star_part(rng, c2x, c2y, r2, sx, rng.random() < 0.3)
            if ring_inside_limits(p1[0]) and ring_inside_limits(p2[0]):
                return {"type": "MultiPolygon", "coordinates": [p1, p2]}
    while True:
        cx, cy = polygon_centre(rng, assets, size / 2.0)
        cx, cy, sx = fit_centre(cx, cy, size / 2.0, lon_scale)
        rings = star_part(rng, cx, cy, size / 2.0, sx, rng.random() < 0.3)
        if ring_inside_limits(rings[0]):
            return {"type": "Polygon", "coordinates": rings}


def asset_polygon(rng, assets):
    """A star polygon some of whose vertices are asset coordinates, and
    sometimes an axis-parallel edge through an asset; or None to try again."""
    radius = log_uniform(rng, 0.01, 1.0)
    i = rng.randrange(len(assets))
    ax, ay = assets.lon[i], assets.lat[i]
    if abs(ay) > 80.0 or abs(ax) > 175.0:
        return None
    sx = lon_scale(ay)
    # The centre, so that the anchor asset is a vertex candidate.
    theta = rng.uniform(0.0, 2.0 * math.pi)
    rho = radius * rng.uniform(0.4, 0.9)
    cx, cy = ax - sx * rho * math.cos(theta), ay - rho * math.sin(theta)

    def polar(x, y):
        lx, ly = (x - cx) / sx, y - cy
        return math.atan2(ly, lx), math.hypot(lx, ly)

    pinned = []  # (angle, [lon, lat]) fixed vertices
    for j in assets.near(cx - sx * radius, cy - radius, cx + sx * radius, cy + radius):
        x, y = assets.lon[j], assets.lat[j]
        a, d = polar(x, y)
        if 0.3 * radius <= d <= radius:
            pinned.append((a, [x, y]))
    rng.shuffle(pinned)
    keep = rng.randint(1, 12)
    # The anchor first, then others, with distinct angles.
    a_anchor, _ = polar(ax, ay)
    chosen = [(a_anchor, [ax, ay])]
    for a, p in pinned:
        if len(chosen) >= keep:
            break
        if all(abs(math.remainder(a - b, 2.0 * math.pi)) > 1e-6 for b, _ in chosen) and p != [ax, ay]:
            chosen.append((a, p))

    # An edge exactly along the latitude (or longitude) of another asset,
    # passing strictly between its two ends through the asset.
    pair = None
    chosen_points = [p for _, p in chosen]
    others = [p for _, p in pinned if p not in chosen_points]
    if others and rng.random() < 0.5:
        bx, by = others[rng.randrange(len(others))]
        e1 = radius * rng.uniform(0.05, 0.3)
        e2 = radius * rng.uniform(0.05, 0.3)
        if rng.random() < 0.5:
            ends = ([bx - sx * e1, by], [bx + sx * e2, by])  # along the latitude
        else:
            ends = ([bx, by - e1], [bx, by + e2])  # along the longitude
        (a1, d1), (a2, d2) = polar(*ends[0]), polar(*ends[1])
        if min(d1, d2) > 0.05 * radius and max(d1, d2) <= 1.2 * radius:
            pair = ((a1, ends[0]), (a2, ends[1]))

    def between(a, lo, hi):
        """Is angle a strictly inside the shorter arc from lo to hi?"""
        span = math.remainder(hi - lo, 2.0 * math.pi)
        off = math.remainder(a - lo, 2.0 * math.pi)
        if span < 0:
            span, off = -span, -off
        return 0.0 < off < span

    def same_angle(a, b, eps):
        return abs(math.remainder(a - b, 2.0 * math.pi)) <= eps

    if pair is not None:
        (a1, _), (a2, _) = pair
        chosen = [
            (a, p)
            for a, p in chosen
            if not between(a, a1, a2) and not same_angle(a, a1, 1e-6) and not same_angle(a, a2, 1e-6)
        ]
        chosen.extend(pair)

    n_syn = rng.randint(5, 25)
    synthetic = []
    for a in star_angles(rng, n_syn):
        if any(same_angle(a, b, 1e-3) for b, _ in chosen):
            continue
        if pair is not None and between(a, pair[0][0], pair[1][0]):
            continue
        r = radius * rng.uniform(0.35, 1.0)
        synthetic.append((a, [cx + sx * r * math.cos(a), cy + r * math.sin(a)]))
    verts = sorted(
        ((a % (2.0 * math.pi), p) for a, p in chosen + synthetic), key=lambda v: v[0]
    )
    if not 5 <= len(verts) <= 40:
        return None
    # Every gap below pi, so the ring is simple and star-shaped.
    angles = [a for a, _ in verts]
    gaps = [b - a for a, b in zip(angles, angles[1:])] + [angles[0] + 2.0 * math.pi - angles[-1]]
    if max(gaps) >= math.pi * 0.95 or min(gaps) <= 0.0:
        return None
    ring = [p for _, p in verts]
    if not ring_inside_limits(ring):
        return None
    ring.append(list(ring[0]))
    return {"type": "Polygon", "coordinates": [ring]}


# --- knn -------------------------------------------------------------------

def knn_query(rng, assets):
    k = rng.choice([1, 5, 10, 50])
    r = rng.random()
    if EDGE_CASES and r < 0.1:
        p = respelled(rng, assets)
        if p is not None:
            return {"type": "knn", "lon": p[0], "lat": p[1], "k": k}
    if r < 0.4:
        i = rng.randrange(len(assets))
        lon, lat = jitter(rng, assets.lon[i], assets.lat[i], log_uniform(rng, 10.0, 20_000.0))
    elif r < 0.55:
        i = rng.randrange(len(assets))
        lon, lat = assets.lon[i], assets.lat[i]
    elif r < 0.8:
        lon, lat = uniform_point(rng)
    else:
        lon, lat = awkward_point(rng)
    return {"type": "knn", "lon": lon, "lat": lat, "k": k}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--assets", required=True, help="NDJSON from assets.py")
    ap.add_argument("--per-type", type=int, default=250)
    ap.add_argument("--out", default="-", help="output file ('-' for stdout)")
    ap.add_argument("--edge-cases", action="store_true",
                    help="add respelled pole/antimeridian centres, radius 0 and "
                         "sub-millisecond time bounds")
    args = ap.parse_args()
    global EDGE_CASES
    EDGE_CASES = args.edge_cases

    rng = random.Random(args.seed)
    assets = Assets(args.assets)
    n = args.per_type
    queries = []

    for i in range(n):
        q = radius_query(rng, assets)
        queries.append((f"r{i}", q, filters(rng, assets)))
    for i in range(n):
        q = bbox_query(rng, assets)
        queries.append((f"b{i}", q, filters(rng, assets)))

    # Polygons: about 10% built on asset coordinates, in include/exclude pairs.
    pairs = max(1, round(n * 0.1 / 2)) if n >= 4 else 0
    slots = set(rng.sample(range(n // 2), pairs)) if pairs else set()
    polys = []
    alternate = 0
    for slot in range(n // 2 + n % 2):
        if slot in slots and len(polys) + 2 <= n:
            geometry = None
            for _ in range(10_000):
                geometry = asset_polygon(rng, assets)
                if geometry is not None:
                    break
            if geometry is None:
                raise SystemExit("queries: could not build a polygon on asset coordinates")
            f = {}  # no filters, so include and exclude differ
            polys.append(({"type": "polygon", "geometry": geometry, "boundary": "include"}, f))
            polys.append(({"type": "polygon", "geometry": geometry, "boundary": "exclude"}, f))
        else:
            for _ in range(2):
                if len(polys) >= n:
                    break
                geometry = plain_polygon(rng, assets)
                boundary = "include" if alternate % 2 == 0 else "exclude"
                alternate += 1
                polys.append(
                    ({"type": "polygon", "geometry": geometry, "boundary": boundary},
                     filters(rng, assets))
                )
    for i, (q, f) in enumerate(polys[:n]):
        queries.append((f"p{i}", q, f))
    for i in range(n):
        q = knn_query(rng, assets)
        queries.append((f"k{i}", q, filters(rng, assets)))

    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8", newline="\n")
    try:
        for qid, q, f in queries:
            obj = {"id": qid}
            obj.update(q)
            obj.update(f)
            out.write(json.dumps(obj, allow_nan=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"queries: {len(queries)} written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
