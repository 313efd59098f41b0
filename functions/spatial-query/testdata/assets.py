#!/usr/bin/env python3
"""Writes generated fusion assets as NDJSON, one GeoJSON Feature a line.

Usage: assets.py [--seed N] [--count N] [--out FILE.ndjson] [--jobs N]

Deterministic for a seed: the same seed and count give the same bytes, for
any --jobs (records are made in chunks of 25,000, each from a generator
seeded by the seed and the chunk's index, in parallel processes), and a
smaller count gives a prefix of a larger one.
Each line is exactly

  {"type":"Feature","id":"<uuid4>","geometry":{"type":"Point",
   "coordinates":[lon,lat,z]},"properties":{"deformation":[dx,dy,dz],
   "registration_quality":q,"fusion_confidence":c,
   "processing_duration_ms":int,"algorithm_version":"fusion-2.3.1",
   "processed_at":"2026-03-01T12:00:00Z" or "1969-12-31T23:59:59.999Z"}}

(on one line, no spaces). Floats are written with Python's repr, the
shortest string that reads back as the same double, so every reader gets the
same doubles. Ids are version-4 UUIDs drawn from the seeded generator,
lowercase and hyphenated, unique within the file.

Where the assets are:
  ~70% in ~200 clusters: centres uniform by area with |lat| <= 80, sizes
       heavy-tailed (a few clusters hold most of the points), Gaussian
       spread with sigma log-uniform from 200 m to 50 km (metres east and
       north, converted at the centre's latitude; longitude wraps, latitude
       reflects at the poles);
  ~25% uniform over the sphere (uniform by area);
  ~5%  awkward: within 0.5 degrees of the antimeridian on both sides
       (a fifth exactly at -180 or 180), |lat| > 85 (a fifth exactly at the
       poles, any longitude), near (0, 0) (some exactly there), and some
       copies of an earlier asset's position (so distances tie), half of
       those at a pole or on the antimeridian spelled differently (another
       longitude at the pole, 180 for -180): the same point.
Always lon in [-180, 180], lat in [-90, 90], z in [-50, 4000] metres.

Properties: deformation components ~ N(0, 5) mm/yr, with about 1.5% of
assets having one component an outlier of 20..100 in magnitude (never
beyond +-100); registration_quality and fusion_confidence in [0, 1],
beta-like (Kumaraswamy) with about 1% exactly 0 and 1% exactly 1 each;
processing_duration_ms log-uniform over 50..600000; algorithm_version one
of five; processed_at, written with `Z`: 90% uniform in
[2024-01-01T00:00:00Z, 2026-11-01T00:00:00Z), two thirds of those whole
seconds and one third with milliseconds (`.123Z`); 10% uniform over
milliseconds in [1950-01-01, 1970-01-02), so before the epoch (negative
times) and across it. Never finer than a millisecond.

Only the standard library is used. Progress goes to stderr.
"""

import argparse
import calendar
import datetime
import math
import multiprocessing
import os
import random
import sys
import time

ALGORITHM_VERSIONS = [
    ("fusion-2.3.1", 0.55),
    ("fusion-2.3.0", 0.2),
    ("fusion-2.2.7", 0.15),
    ("fusion-2.4.0-rc.1", 0.07),
    ("fusion-1.9.12", 0.03),
]

CLUSTERS = 200
SIGMA_MIN_M = 200.0
SIGMA_MAX_M = 50_000.0
METRES_PER_DEGREE = 111_320.0

T_START = calendar.timegm((2024, 1, 1, 0, 0, 0))
T_END = calendar.timegm((2026, 11, 1, 0, 0, 0))  # exclusive
# Before the epoch: some assets have negative times, so comparisons and
# rounding on both sides of 1970 are exercised.
T_OLD_START = calendar.timegm((1950, 1, 1, 0, 0, 0))
T_OLD_END = calendar.timegm((1970, 1, 2, 0, 0, 0))  # exclusive
EPOCH = datetime.datetime(1970, 1, 1)


def format_ms(t_ms):
    """Epoch milliseconds as RFC 3339 UTC: whole seconds written without a
    fraction, else with exactly three digits (negative times included)."""
    d = EPOCH + datetime.timedelta(milliseconds=t_ms)
    ms = t_ms % 1000
    frac = f".{ms:03d}" if ms else ""
    return d.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"

CHUNK = 25_000  # records per independently seeded chunk


def wrap_lon(lon):
    """Longitude into [-180, 180]; values already inside are kept as they are."""
    if -180.0 <= lon <= 180.0:
        return lon
    lon = math.fmod(lon + 180.0, 360.0)
    if lon < 0.0:
        lon += 360.0
    return lon - 180.0


def uniform_lat(rng):
    """A latitude uniform by area."""
    return math.degrees(math.asin(rng.uniform(-1.0, 1.0)))


def make_clusters(rng):
    """(lon, lat, sigma_m) and a cumulative weight for each cluster."""
    centres = []
    weights = []
    for _ in range(CLUSTERS):
        while True:
            lat = uniform_lat(rng)
            if abs(lat) <= 80.0:
                break
        lon = rng.uniform(-180.0, 180.0)
        sigma = math.exp(rng.uniform(math.log(SIGMA_MIN_M), math.log(SIGMA_MAX_M)))
        centres.append((lon, lat, sigma))
        # Pareto-ish sizes: a few big clusters, many small ones.
        weights.append(rng.paretovariate(1.1))
    total = sum(weights)
    cumulative = []
    acc = 0.0
    for w in weights:
        acc += w / total
        cumulative.append(acc)
    cumulative[-1] = 1.0
    return centres, cumulative


def clustered(rng, centres, cumulative, bisect):
    lon0, lat0, sigma = centres[bisect(cumulative, rng.random())]
    north = rng.gauss(0.0, sigma)
    east = rng.gauss(0.0, sigma)
    lat = lat0 + north / METRES_PER_DEGREE
    # Reflect over a pole (then the longitude is on the other side).
    flip = False
    if lat > 90.0:
        lat = 180.0 - lat
        flip = True
    elif lat < -90.0:
        lat = -180.0 - lat
        flip = True
    coslat = max(math.cos(math.radians(lat0)), 1e-6)
    lon = lon0 + east / (METRES_PER_DEGREE * coslat)
    if flip:
        lon += 180.0
    return wrap_lon(lon), lat


def awkward(rng, recent):
    kind = rng.random()
    if kind < 0.40:
        # Within 0.5 degrees of the antimeridian, both sides.
        r = rng.random()
        if r < 0.1:
            lon = 180.0
        elif r < 0.2:
            lon = -180.0
        else:
            off = rng.uniform(0.0, 0.5)
            lon = 180.0 - off if rng.random() < 0.5 else -180.0 + off
        lat = uniform_lat(rng) if rng.random() < 0.5 else rng.gauss(0.0, 20.0)
        lat = max(-90.0, min(90.0, lat))
        return lon, lat
    if kind < 0.70:
        # Near the poles.
        r = rng.random()
        if r < 0.1:
            lat = 90.0
        elif r < 0.2:
            lat = -90.0
        else:
            lat = rng.uniform(85.0, 90.0)
            if rng.random() < 0.5:
                lat = -lat
        lon = rng.uniform(-180.0, 180.0)
        return lon, lat
    if kind < 0.90:
        # Near (0, 0): null island, the prime meridian, the equator.
        r = rng.random()
        if r < 0.05:
            return 0.0, 0.0
        if r < 0.15:
            return 0.0, rng.gauss(0.0, 0.01)
        if r < 0.25:
            return rng.gauss(0.0, 0.01), 0.0
        return rng.gauss(0.0, 0.01), rng.gauss(0.0, 0.01)
    # An exact copy of an earlier asset's position (ties in distance); at
    # a pole or on the antimeridian half of them spelled differently (any
    # longitude at a pole, 180 for -180): the same point, distance 0.
    if recent:
        lon, lat = rng.choice(recent)
        if rng.random() < 0.5:
            if abs(lat) == 90.0:
                lon = rng.uniform(-180.0, 180.0)
            elif abs(lon) == 180.0:
                lon = -lon
        return lon, lat
    return 0.0, 0.0


def unit_kumaraswamy(u, a, b):
    """Kumaraswamy(a, b) by its inverse CDF at u: beta-like on [0, 1]."""
    return (1.0 - (1.0 - u) ** (1.0 / b)) ** (1.0 / a)


CONTEXT = {}


def init_worker(seed):
    """Per process: the cluster centres and the lookup tables."""
    rng = random.Random(seed)
    centres, cumulative = make_clusters(rng)
    versions = [v for v, _ in ALGORITHM_VERSIONS]
    version_cum = []
    acc = 0.0
    for _, w in ALGORITHM_VERSIONS:
        acc += w
        version_cum.append(acc)
    version_cum[-1] = 1.0
    CONTEXT.update(
        seed=seed,
        centres=centres,
        cumulative=cumulative,
        versions=versions,
        version_cum=version_cum,
    )


def generate_chunk(job):
    """Records [index * CHUNK, index * CHUNK + n) as NDJSON text, and their ids.

    Each chunk has its own generator seeded from (seed, index), so the output
    does not depend on how many processes make it, and a smaller --count
    gives a prefix of a larger one.
    """
    index, n = job
    from bisect import bisect_right

    ctx = CONTEXT
    centres = ctx["centres"]
    cumulative = ctx["cumulative"]
    versions = ctx["versions"]
    version_cum = ctx["version_cum"]
    rng = random.Random(f"assets:{ctx['seed']}:{index}")
    rnd = rng.random
    log = math.log
    exp = math.exp
    sqrt = math.sqrt
    cos = math.cos
    sin = math.sin
    kuma = unit_kumaraswamy
    TWO_PI = 2.0 * math.pi
    log_dur_lo = math.log(50.0)
    log_dur_hi = math.log(600_001.0)
    span = T_END - T_START

    recent = []
    ids = []
    buf = []
    for _ in range(n):
        bits = rng.getrandbits(128)
        # Version 4, RFC 4122 variant.
        bits = (bits & ~(0xF000 << 64)) | (0x4000 << 64)
        bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)
        h = "%032x" % bits
        uid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        ids.append(bits)

        r = rnd()
        if r < 0.70:
            lon, lat = clustered(rng, centres, cumulative, bisect_right)
        elif r < 0.95:
            lon, lat = rng.uniform(-180.0, 180.0), uniform_lat(rng)
        else:
            lon, lat = awkward(rng, recent)
        if len(recent) < 4096:
            recent.append((lon, lat))
        elif rng.random() < 0.01:
            recent[rng.randrange(4096)] = (lon, lat)

        # Height: mostly low ground, some below sea level.
        r = rnd()
        if r < 0.08:
            z = -50.0 + 50.0 * rnd()
        elif r < 0.09:
            z = 0.0
        else:
            z = -350.0 * log(1.0 - rnd())
            if z > 4000.0:
                z = 4000.0
        # Deformation: Box-Muller normals, sigma 5, rare outliers.
        s1 = 5.0 * sqrt(-2.0 * log(1.0 - rnd()))
        a1 = TWO_PI * rnd()
        s2 = 5.0 * sqrt(-2.0 * log(1.0 - rnd()))
        a2 = TWO_PI * rnd()
        dx = s1 * cos(a1)
        dy = s1 * sin(a1)
        dz = s2 * cos(a2)
        if rnd() < 0.015:
            v = 20.0 + 80.0 * rnd()
            o = rnd()
            if o < 1 / 3:
                dx = v if dx >= 0.0 else -v
            elif o < 2 / 3:
                dy = v if dy >= 0.0 else -v
            else:
                dz = v if dz >= 0.0 else -v
        dx = min(100.0, max(-100.0, dx))
        dy = min(100.0, max(-100.0, dy))
        dz = min(100.0, max(-100.0, dz))
        # Qualities: beta-like, with exact 0 and 1 now and then.
        r = rnd()
        q = 0.0 if r < 0.01 else 1.0 if r < 0.02 else kuma(rnd(), 6.0, 2.0)
        r = rnd()
        c = 0.0 if r < 0.01 else 1.0 if r < 0.02 else kuma(rnd(), 4.0, 1.5)
        dur = int(exp(log_dur_lo + (log_dur_hi - log_dur_lo) * rnd()))
        dur = min(600_000, max(50, dur))
        version = versions[bisect_right(version_cum, rng.random())]
        r = rnd()
        if r < 0.9:
            t_ms = T_START * 1000 + int(rnd() * span) * 1000
            if r >= 0.6:
                # Milliseconds (30%).
                t_ms += int(rnd() * 1000)
        else:
            # Before (or just after) the epoch, with milliseconds (10%).
            t_ms = T_OLD_START * 1000 + int(rnd() * (T_OLD_END - T_OLD_START) * 1000)
        processed_at = format_ms(t_ms)

        buf.append(
            f'{{"type":"Feature","id":"{uid}","geometry":{{"type":"Point",'
            f'"coordinates":[{lon!r},{lat!r},{z!r}]}},"properties":{{'
            f'"deformation":[{dx!r},{dy!r},{dz!r}],'
            f'"registration_quality":{q!r},"fusion_confidence":{c!r},'
            f'"processing_duration_ms":{dur},"algorithm_version":"{version}",'
            f'"processed_at":"{processed_at}"}}}}\n'
        )
    return "".join(buf), ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--out", default="-", help="output file ('-' for stdout)")
    ap.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="worker processes (0: one per CPU); the output is the same for any value",
    )
    args = ap.parse_args()
    if args.count < 0:
        ap.error("--count must be >= 0")
    jobs = args.jobs or os.cpu_count() or 1

    chunks = [
        (i, min(CHUNK, args.count - i * CHUNK))
        for i in range((args.count + CHUNK - 1) // CHUNK)
    ]
    seen_ids = set()
    done = 0
    started = time.monotonic()
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8", newline="\n")
    try:
        if jobs <= 1 or len(chunks) <= 1:
            init_worker(args.seed)
            results = map(generate_chunk, chunks)
            pool = None
        else:
            pool = multiprocessing.get_context("fork").Pool(
                jobs, initializer=init_worker, initargs=(args.seed,)
            )
            results = pool.imap(generate_chunk, chunks)
        try:
            for text, ids in results:
                for bits in ids:
                    if bits in seen_ids:
                        # 122 random bits: never in practice, but ids are keys.
                        raise SystemExit(f"assets: duplicate id {bits:032x}; try another seed")
                    seen_ids.add(bits)
                out.write(text)
                done += len(ids)
                if done % 200_000 < CHUNK and done < args.count:
                    print(
                        f"assets: {done} written ({time.monotonic() - started:.1f} s)",
                        file=sys.stderr,
                    )
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    finally:
        if out is not sys.stdout:
            out.close()
    print(
        f"assets: {done} written to {args.out} in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
