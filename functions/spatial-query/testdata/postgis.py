#!/usr/bin/env python3
"""PostGIS as the oracle for the spatial-query tests, and its side of the benchmark.

Usage:
  postgis.py oracle --assets ASSETS.ndjson --queries QUERIES.jsonl --out RESULTS.jsonl
  postgis.py bench  --assets ASSETS.ndjson --queries QUERIES.jsonl --out BENCH.json
                    [--repeat N]
Common options: [--pg-bindir DIR] (default: $PG_BINDIR, else `pg_config
--bindir`, else /usr/lib/postgresql/15/bin).

Both start a throwaway PostgreSQL cluster (initdb in a fresh temporary
directory, as the `postgres` user when run as root; listening on 127.0.0.1
on a free port, its unix socket inside the temporary directory; fsync off),
`CREATE EXTENSION postgis`, load the assets (from assets.py) with COPY
into

  assets(id uuid primary key, geog geography(PointZ,4326),
         geom geometry(PointZ,4326), dx, dy, dz, magnitude float8,
         registration_quality, fusion_confidence float8,
         processing_duration_ms int8, algorithm_version text,
         processed_at timestamptz)

(magnitude = sqrt(dx*dx + dy*dy + dz*dz), coordinates sent as EWKB so the
doubles are exact), build GiST indexes on geog and geom, VACUUM ANALYZE,
answer the queries (from queries.py), and stop the cluster and delete the
directory at exit, on error, and on SIGINT/SIGTERM/SIGHUP.

oracle: one JSON line per query, in the queries' order:
  {"id": "r17", "ids": [sorted id strings]}              radius, bbox, polygon
  {"id": "k3", "neighbors": [[id, distance_m], ...]}     knn, nearest first
Semantics:
  radius   ST_DWithin(geog, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography,
           radius_m), on the spheroid (the default). Below 1 mm through
           _ST_DWithin (no index): with the GiST index, PostGIS 3.3 drops
           points at distance exactly 0 written differently (a pole under
           another longitude, 180 for -180) when radius_m is 0, though
           ST_Distance says 0 and ST_DWithin without the index keeps them.
  bbox     boundary inclusive, exact in doubles: geom && envelope (for the
           index) AND west <= ST_X(geom) <= east AND south <= ST_Y(geom) <=
           north; when west > east, x >= west OR x <= east. (`&&` alone is
           NOT exact: it compares float4 boxes rounded outwards, so it also
           returns points up to a float4 step outside the box.)
  polygon  ST_Covers(poly, geom) for "include", ST_Contains(poly, geom) for
           "exclude", poly = ST_SetSRID(ST_GeomFromGeoJSON(geometry), 4326):
           planar in lon/lat, holes honoured.
  knn      the k nearest by ST_Distance(geog, q) (spheroid; PostGIS rounds
           it to 1e-8 m), ties by id. The geography `<->` operator orders by
           distance on a sphere (radius 6371008.77 m), not the spheroid, so
           candidates are taken in `<->` order (LIMIT 4k + 64), re-ordered
           by ST_Distance, and the candidate set is widened until the k-th
           spheroid distance is below 0.99 x the largest sphere distance
           among the candidates (the sphere and spheroid distances differ by
           under 0.6%), or the candidates are all the rows that pass. Where
           the index scan fails ("index returned tuples in wrong order":
           PostgreSQL's KNN on geography, centred on a pole or the
           antimeridian) every passing row is ranked by ST_Distance instead.
  filters  fusion_confidence >= min_confidence, magnitude >= min_magnitude,
           processed_at >= from, processed_at < to; ANDed to every type
           (for knn, before the k are picked).
Distances are written as floats (shortest round-trip repr). Notes about
queries whose answer depends on the last bits (an asset within 1e-6 m of a
radius, knn distances within 1e-6 m of the k-th) go to stderr.

bench: for each query, one warm-up run, then --repeat (default 3) runs
measured by the server's "Execution Time" from EXPLAIN (ANALYZE, TIMING OFF,
FORMAT JSON) and --repeat runs measured by the client's wall time
(execute and fetch, over the unix socket). knn runs in the index-ordered
form: SELECT id, ST_Distance(geog, q) ... ORDER BY geog <-> q LIMIT k.
Writes JSON:
  {"postgresql_version", "postgis_version", "rows", "load_s", "index_s",
   "analyze_s", "repeat", "settings": {...},
   "server_execution_ms": {"radius": {"count", "p50_ms", "p99_ms",
                           "mean_ms"}, "bbox": .., "polygon": .., "knn": ..,
                           "all": ..},
   "server_planning_ms": {same, the "Planning Time" of those EXPLAINs},
   "client_round_trip_ms": {same}}
where count is the number of measured runs (queries x repeat) and the
percentiles interpolate linearly between order statistics. Statements are
not prepared (psycopg prepare_threshold=None), so every run is planned
afresh: the round trip includes planning, which "Execution Time" does not.

Needs psycopg 3 (requirements.txt) and PostgreSQL with PostGIS 3
(Debian: postgresql-15-postgis-3). Progress goes to stderr.
"""

import argparse
import json
import math
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import psycopg

DEFAULT_BINDIR = "/usr/lib/postgresql/15/bin"

# Sphere and spheroid distances differ by under 0.6% (meridional radius of
# curvature 6335439 m at the equator .. 6399594 m at the poles, against the
# mean radius 6371009 m); the knn candidate check allows 1%.
SPHERE_SAFETY = 0.99
NEAR_BOUNDARY_M = 1e-6

QUERY_TYPES = ("radius", "bbox", "polygon", "knn")


def log(msg):
    print(f"postgis: {msg}", file=sys.stderr, flush=True)


# --- the throwaway cluster -------------------------------------------------

class Cluster:
    """A PostgreSQL cluster in a temporary directory, removed on stop()."""

    def __init__(self, bindir, settings):
        self.bindir = bindir
        self.settings = settings
        self.tmp = None
        self.proc = None
        self.port = None
        self.sockdir = None
        self.logfile = None
        self.run_as = None  # (uid, gid) when root

    def _user_kwargs(self):
        if self.run_as is None:
            return {}
        uid, gid = self.run_as
        return {"user": uid, "group": gid, "extra_groups": []}

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="spatial-query-pg-")
        if os.geteuid() == 0:
            # initdb refuses root: the cluster runs as `postgres`.
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise SystemExit("postgis: running as root but there is no `postgres` user")
            self.run_as = (pw.pw_uid, pw.pw_gid)
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(self.tmp, 0o700)
        data = os.path.join(self.tmp, "data")
        self.sockdir = os.path.join(self.tmp, "sock")
        self.logfile = os.path.join(self.tmp, "postgres.log")
        os.mkdir(self.sockdir)
        if self.run_as:
            os.chown(self.sockdir, *self.run_as)

        started = time.monotonic()
        initdb = [
            os.path.join(self.bindir, "initdb"),
            "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        ]
        r = subprocess.run(
            initdb, cwd=self.tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, **self._user_kwargs(),
        )
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed ({r.returncode}):\n{r.stdout}")

        for attempt in range(5):
            self.port = free_port()
            cmd = [os.path.join(self.bindir, "postgres"), "-D", data, "-p", str(self.port)]
            for k, v in self.settings.items():
                cmd += ["-c", f"{k}={v}"]
            cmd += ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.sockdir}"]
            with open(self.logfile, "ab") as lf:
                if self.run_as:
                    os.fchown(lf.fileno(), *self.run_as)
                # Its own session: a terminal's ^C reaches only this script,
                # which then shuts the cluster down in order.
                self.proc = subprocess.Popen(
                    cmd, cwd=self.tmp, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                    start_new_session=True, **self._user_kwargs(),
                )
            if self._wait_ready():
                log(f"cluster up on 127.0.0.1:{self.port} in {self.tmp} "
                    f"({time.monotonic() - started:.1f} s)")
                return
            if "could not bind" not in self.log_tail() and "in use" not in self.log_tail():
                break
            log(f"port {self.port} taken, trying another (attempt {attempt + 1})")
        raise RuntimeError(f"postgres did not start; its log:\n{self.log_tail()}")

    def _wait_ready(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with psycopg.connect(**self.conninfo(), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        return False

    def conninfo(self):
        return {"host": self.sockdir, "port": self.port, "user": "postgres", "dbname": "postgres"}

    def log_tail(self, n=4000):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self):
        """Stop the server and remove the directory; safe to call twice."""
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            old[sig] = signal.signal(sig, signal.SIG_IGN)
        try:
            if self.proc is not None and self.proc.poll() is None:
                # SIGINT: fast shutdown; then SIGQUIT (immediate); then SIGKILL.
                for sig, wait in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
                    try:
                        self.proc.send_signal(sig)
                    except ProcessLookupError:
                        break
                    try:
                        self.proc.wait(wait)
                        break
                    except subprocess.TimeoutExpired:
                        log(f"postgres did not stop on signal {sig}, escalating")
                log("cluster stopped")
            self.proc = None
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.tmp = None
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_bindir(arg):
    candidates = []
    if arg:
        candidates.append(arg)
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        candidates.append(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    candidates.append(DEFAULT_BINDIR)
    for c in candidates:
        if os.path.exists(os.path.join(c, "initdb")) and os.path.exists(os.path.join(c, "postgres")):
            return c
    raise SystemExit(f"postgis: no PostgreSQL server binaries in {candidates}")


def raise_on_signal(signum, frame):
    raise SystemExit(128 + signum)


# --- loading ---------------------------------------------------------------

CREATE_TABLE = """
CREATE TABLE assets (
    id uuid NOT NULL,
    geog geography(PointZ, 4326) NOT NULL,
    geom geometry(PointZ, 4326) NOT NULL,
    dx float8 NOT NULL,
    dy float8 NOT NULL,
    dz float8 NOT NULL,
    magnitude float8 NOT NULL,
    registration_quality float8 NOT NULL,
    fusion_confidence float8 NOT NULL,
    processing_duration_ms int8 NOT NULL,
    algorithm_version text NOT NULL,
    processed_at timestamptz NOT NULL
)
"""

COPY_SQL = (
    "COPY assets (id, geog, geom, dx, dy, dz, magnitude, registration_quality, "
    "fusion_confidence, processing_duration_ms, algorithm_version, processed_at) FROM STDIN"
)

# EWKB of a POINT Z with SRID: little-endian, type 1 | Z flag | SRID flag.
EWKB_POINTZ = struct.Struct("<BIIddd")
EWKB_POINTZ_TYPE = 0x80000000 | 0x20000000 | 1


def copy_text(s):
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def asset_rows(path):
    """COPY text lines, one per asset, read from NDJSON as it streams."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                feat = json.loads(line)
                coords = feat["geometry"]["coordinates"]
                lon, lat = float(coords[0]), float(coords[1])
                z = float(coords[2]) if len(coords) > 2 else 0.0
                p = feat["properties"]
                dx, dy, dz = (float(v) for v in p["deformation"])
                mag = math.sqrt(dx * dx + dy * dy + dz * dz)
                ewkb = EWKB_POINTZ.pack(1, EWKB_POINTZ_TYPE, 4326, lon, lat, z).hex()
                yield (
                    f"{feat['id']}\t{ewkb}\t{ewkb}\t{dx!r}\t{dy!r}\t{dz!r}\t{mag!r}\t"
                    f"{float(p['registration_quality'])!r}\t{float(p['fusion_confidence'])!r}\t"
                    f"{int(p['processing_duration_ms'])}\t{copy_text(str(p['algorithm_version']))}\t"
                    f"{p['processed_at']}\n"
                )
            except (KeyError, TypeError, ValueError, IndexError) as e:
                raise SystemExit(f"postgis: {path}:{n}: bad asset: {e}")


def load(cluster, assets_path, vacuum_freeze=False):
    """Create the extension and table, COPY the assets, index, analyze.
    Returns (rows, timings)."""
    timings = {}
    with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
        t0 = time.monotonic()
        rows = 0
        with conn.transaction():
            conn.execute(CREATE_TABLE)
            with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                buf = []
                size = 0
                for line in asset_rows(assets_path):
                    buf.append(line)
                    size += len(line)
                    rows += 1
                    if size >= 1 << 20:
                        copy.write("".join(buf))
                        buf.clear()
                        size = 0
                    if rows % 200_000 == 0:
                        log(f"{rows} rows loaded ({time.monotonic() - t0:.1f} s)")
                if buf:
                    copy.write("".join(buf))
        timings["load_s"] = time.monotonic() - t0
        log(f"{rows} rows loaded in {timings['load_s']:.1f} s")

    # The primary key and both GiST indexes, built side by side.
    t0 = time.monotonic()
    statements = [
        "ALTER TABLE assets ADD PRIMARY KEY (id)",
        "CREATE INDEX assets_geog_gist ON assets USING gist (geog)",
        "CREATE INDEX assets_geom_gist ON assets USING gist (geom)",
    ]
    errors = []

    def build(sql):
        try:
            with psycopg.connect(**cluster.conninfo(), autocommit=True) as c:
                t = time.monotonic()
                c.execute(sql)
                log(f"{sql.split(' ON ')[0].split(' (')[0]}: {time.monotonic() - t:.1f} s")
        except Exception as e:  # reported below
            errors.append(f"{sql}: {e}")

    threads = [threading.Thread(target=build, args=(s,), daemon=True) for s in statements]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("index build failed: " + "; ".join(errors))
    timings["index_s"] = time.monotonic() - t0

    t0 = time.monotonic()
    with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE) assets" if vacuum_freeze else "VACUUM ANALYZE assets")
    timings["analyze_s"] = time.monotonic() - t0
    log(f"indexes {timings['index_s']:.1f} s, vacuum/analyze {timings['analyze_s']:.1f} s")
    return rows, timings


# --- queries ---------------------------------------------------------------

Q_POINT = "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography"


def read_queries(path):
    queries = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                q = json.loads(line)
            except ValueError as e:
                raise SystemExit(f"postgis: {path}:{n}: {e}")
            if q.get("type") not in QUERY_TYPES or "id" not in q:
                raise SystemExit(f"postgis: {path}:{n}: unknown query {line[:200]!r}")
            queries.append(q)
    return queries


# Radius queries below this (metres) are answered without the index.
TINY_RADIUS_M = 1e-3


def filter_sql(q, params):
    conds = []
    if q.get("min_confidence") is not None:
        params["min_confidence"] = float(q["min_confidence"])
        conds.append("fusion_confidence >= %(min_confidence)s")
    if q.get("min_magnitude") is not None:
        params["min_magnitude"] = float(q["min_magnitude"])
        conds.append("magnitude >= %(min_magnitude)s")
    if q.get("from") is not None:
        params["from"] = str(q["from"])
        conds.append("processed_at >= %(from)s::timestamptz")
    if q.get("to") is not None:
        params["to"] = str(q["to"])
        conds.append("processed_at < %(to)s::timestamptz")
    return "".join(f" AND {c}" for c in conds)


def query_sql(q, knn_limit=None, knn_bench=False):
    """(sql, params) of a query; for knn the candidate form (knn_limit rows,
    with the sphere distance) or the bench form."""
    params = {}
    t = q["type"]
    if t == "radius":
        params.update(lon=float(q["lon"]), lat=float(q["lat"]), radius=float(q["radius_m"]))
        if params["radius"] < TINY_RADIUS_M and not knn_bench:
            # ST_DWithin's index test (geog && _ST_Expand(q, r), float4
            # boxes) drops a point at distance exactly 0 that is written
            # differently (a pole under another longitude, 180 for -180)
            # when r is 0; the function itself, distance <= r, keeps it.
            sql = (f"SELECT id::text FROM assets"
                   f" WHERE _ST_DWithin(geog, {Q_POINT}, %(radius)s, true)")
        else:
            sql = f"SELECT id::text FROM assets WHERE ST_DWithin(geog, {Q_POINT}, %(radius)s)"
    elif t == "bbox":
        w, s, e, n = (float(v) for v in q["bbox"])
        params.update(w=w, s=s, e=e, n=n)
        y = "ST_Y(geom) BETWEEN %(s)s AND %(n)s"
        if w <= e:
            sql = (
                "SELECT id::text FROM assets WHERE geom && ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326)"
                f" AND ST_X(geom) BETWEEN %(w)s AND %(e)s AND {y}"
            )
        else:
            sql = (
                "SELECT id::text FROM assets WHERE"
                " (geom && ST_MakeEnvelope(%(w)s, %(s)s, 180, %(n)s, 4326)"
                " OR geom && ST_MakeEnvelope(-180, %(s)s, %(e)s, %(n)s, 4326))"
                f" AND (ST_X(geom) >= %(w)s OR ST_X(geom) <= %(e)s) AND {y}"
            )
    elif t == "polygon":
        params["poly"] = json.dumps(q["geometry"])
        boundary = q.get("boundary", "include")
        if boundary not in ("include", "exclude"):
            raise SystemExit(f"postgis: {q['id']}: boundary must be include or exclude")
        fn = "ST_Covers" if boundary == "include" else "ST_Contains"
        sql = f"SELECT id::text FROM assets WHERE {fn}(ST_SetSRID(ST_GeomFromGeoJSON(%(poly)s), 4326), geom)"
    else:
        params.update(lon=float(q["lon"]), lat=float(q["lat"]), k=int(q["k"]))
        where = "TRUE" + filter_sql(q, params)
        if knn_bench:
            return (
                f"SELECT id::text, ST_Distance(geog, {Q_POINT}) FROM assets WHERE {where}"
                f" ORDER BY geog <-> {Q_POINT} LIMIT %(k)s",
                params,
            )
        params["limit"] = knn_limit
        return (
            f"SELECT id::text, ST_Distance(geog, {Q_POINT}), geog <-> {Q_POINT} FROM assets"
            f" WHERE {where} ORDER BY geog <-> {Q_POINT} LIMIT %(limit)s",
            params,
        )
    return sql + filter_sql(q, params), params


def knn_exact(cur, q, stats):
    k = int(q["k"])
    if k < 1:
        return []
    limit = 4 * k + 64
    while True:
        sql, params = query_sql(q, knn_limit=limit)
        try:
            rows = cur.execute(sql, params).fetchall()
        except psycopg.Error as e:
            # PostgreSQL's KNN index scan on geography can fail with "index
            # returned tuples in wrong order" when the centre is a pole or
            # on the antimeridian (its sphere bound rounds above the
            # recheck): then without the index, every row ranked.
            if "wrong order" not in str(e):
                raise
            stats["knn_no_index"] += 1
            log(f"note: {q['id']}: knn index scan failed ({e}); ranking every row")
            params = {"lon": float(q["lon"]), "lat": float(q["lat"]), "k": k + 1}
            where = "TRUE" + filter_sql(q, params)
            rows = cur.execute(
                f"SELECT id::text, ST_Distance(geog, {Q_POINT}) AS d FROM assets"
                f" WHERE {where} ORDER BY d, id::text LIMIT %(k)s",
                params,
            ).fetchall()
            ranked = sorted(((d, i) for i, d in rows), key=lambda r: (r[0], r[1]))
            break
        ranked = sorted(((d, i) for i, d, _ in rows), key=lambda r: (r[0], r[1]))
        if len(rows) < limit:
            break  # every row that passes the filters is a candidate
        kth = ranked[k - 1][0]
        sphere_max = max(r[2] for r in rows)
        if kth < SPHERE_SAFETY * sphere_max:
            break
        stats["knn_widened"] += 1
        log(f"{q['id']}: knn candidates {limit} not enough "
            f"(k-th {kth!r} m vs sphere {sphere_max!r} m), widening")
        limit *= 4
    top = ranked[:k]
    if len(ranked) > k and ranked[k][0] - ranked[k - 1][0] <= NEAR_BOUNDARY_M:
        stats["knn_close"] += 1
        log(f"note: {q['id']}: distances {k}th {ranked[k - 1][0]!r} and "
            f"{k + 1}th {ranked[k][0]!r} m are within {NEAR_BOUNDARY_M} m")
    return [[i, d] for d, i in top]


def radius_near_boundary(cur, q):
    """How many assets (passing the filters) are within 1e-6 m of the radius."""
    params = {"lon": float(q["lon"]), "lat": float(q["lat"]),
              "lo": float(q["radius_m"]) - NEAR_BOUNDARY_M,
              "hi": float(q["radius_m"]) + NEAR_BOUNDARY_M}
    sql = (f"SELECT count(*) FROM assets WHERE ST_DWithin(geog, {Q_POINT}, %(hi)s)"
           f" AND NOT ST_DWithin(geog, {Q_POINT}, %(lo)s)") + filter_sql(q, params)
    return cur.execute(sql, params).fetchone()[0]


def session_setup(conn):
    conn.execute("SET TimeZone = 'UTC'")


def run_oracle(args, cluster):
    queries = read_queries(args.queries)
    rows, timings = load(cluster, args.assets)
    t0 = time.monotonic()
    stats = {"knn_widened": 0, "knn_close": 0, "knn_no_index": 0, "radius_near": 0,
             "invalid_polygons": 0}
    per_type = {t: [0, 0.0] for t in QUERY_TYPES}
    out = open(args.out, "w", encoding="utf-8", newline="\n")
    try:
        with psycopg.connect(**cluster.conninfo(), autocommit=True, prepare_threshold=None) as conn:
            session_setup(conn)
            cur = conn.cursor()
            for n, q in enumerate(queries, 1):
                tq = time.monotonic()
                if q["type"] == "knn":
                    result = {"id": q["id"], "neighbors": knn_exact(cur, q, stats)}
                else:
                    if q["type"] == "polygon":
                        valid, reason = cur.execute(
                            "SELECT ST_IsValid(g), ST_IsValidReason(g) FROM "
                            "(SELECT ST_GeomFromGeoJSON(%s) AS g) AS t",
                            (json.dumps(q["geometry"]),),
                        ).fetchone()
                        if not valid:
                            stats["invalid_polygons"] += 1
                            log(f"warning: {q['id']}: polygon not valid: {reason}")
                    sql, params = query_sql(q)
                    ids = sorted(r[0] for r in cur.execute(sql, params))
                    result = {"id": q["id"], "ids": ids}
                    if q["type"] == "radius":
                        near = radius_near_boundary(cur, q)
                        if near:
                            stats["radius_near"] += 1
                            log(f"note: {q['id']}: {near} asset(s) within "
                                f"{NEAR_BOUNDARY_M} m of radius {q['radius_m']!r}")
                out.write(json.dumps(result) + "\n")
                per_type[q["type"]][0] += 1
                per_type[q["type"]][1] += time.monotonic() - tq
                if n % 100 == 0 or n == len(queries):
                    log(f"{n}/{len(queries)} queries answered ({time.monotonic() - t0:.1f} s)")
    finally:
        out.close()
    timings["queries_s"] = time.monotonic() - t0
    log(f"oracle: {len(queries)} queries over {rows} assets -> {args.out}; "
        f"load {timings['load_s']:.1f} s, indexes {timings['index_s']:.1f} s, "
        f"analyze {timings['analyze_s']:.1f} s, queries {timings['queries_s']:.1f} s "
        + ", ".join(f"{t} {c} in {s:.1f} s" for t, (c, s) in per_type.items())
        + f"; {stats}")


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summary(values):
    v = sorted(values)
    return {
        "count": len(v),
        "p50_ms": percentile(v, 50),
        "p99_ms": percentile(v, 99),
        "mean_ms": (sum(v) / len(v)) if v else None,
    }


def run_bench(args, cluster):
    queries = read_queries(args.queries)
    rows, timings = load(cluster, args.assets, vacuum_freeze=True)
    server = {t: [] for t in QUERY_TYPES}
    planning = {t: [] for t in QUERY_TYPES}
    client = {t: [] for t in QUERY_TYPES}
    t0 = time.monotonic()
    with psycopg.connect(**cluster.conninfo(), autocommit=True, prepare_threshold=None) as conn:
        session_setup(conn)
        versions = conn.execute(
            "SELECT version(), current_setting('server_version'), postgis_lib_version(), postgis_full_version()"
        ).fetchone()
        settings = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                (["shared_buffers", "work_mem", "jit", "max_parallel_workers_per_gather",
                  "random_page_cost", "effective_cache_size", "fsync"],),
            ).fetchall()
        )
        cur = conn.cursor()
        for n, q in enumerate(queries, 1):
            sql, params = query_sql(q, knn_bench=True)
            cur.execute(sql, params).fetchall()  # warm-up
            for _ in range(args.repeat):
                plan = cur.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql, params).fetchone()[0]
                if isinstance(plan, str):
                    plan = json.loads(plan)
                server[q["type"]].append(float(plan[0]["Execution Time"]))
                planning[q["type"]].append(float(plan[0]["Planning Time"]))
            for _ in range(args.repeat):
                tc = time.perf_counter()
                cur.execute(sql, params).fetchall()
                client[q["type"]].append((time.perf_counter() - tc) * 1000.0)
            if n % 50 == 0 or n == len(queries):
                log(f"{n}/{len(queries)} queries measured ({time.monotonic() - t0:.1f} s)")
    result = {
        "postgresql_version": versions[1],
        "postgresql_version_full": versions[0],
        "postgis_version": versions[2],
        "postgis_full_version": versions[3],
        "rows": rows,
        "load_s": round(timings["load_s"], 3),
        "index_s": round(timings["index_s"], 3),
        "analyze_s": round(timings["analyze_s"], 3),
        "repeat": args.repeat,
        "queries": {t: sum(1 for q in queries if q["type"] == t) for t in QUERY_TYPES},
        "settings": settings,
        "server_execution_ms": {t: summary(server[t]) for t in QUERY_TYPES},
        "server_planning_ms": {t: summary(planning[t]) for t in QUERY_TYPES},
        "client_round_trip_ms": {t: summary(client[t]) for t in QUERY_TYPES},
    }
    result["server_planning_ms"]["all"] = summary([v for t in QUERY_TYPES for v in planning[t]])
    result["server_execution_ms"]["all"] = summary([v for t in QUERY_TYPES for v in server[t]])
    result["client_round_trip_ms"]["all"] = summary([v for t in QUERY_TYPES for v in client[t]])
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    log(f"bench: {len(queries)} queries x {args.repeat} over {rows} rows -> {args.out} "
        f"({time.monotonic() - t0:.1f} s)")
    for name in ("server_execution_ms", "server_planning_ms", "client_round_trip_ms"):
        for t in QUERY_TYPES + ("all",):
            s = result[name][t]
            if s["count"]:
                log(f"  {name:22} {t:8} n={s['count']:5} p50 {s['p50_ms']:.3f} "
                    f"p99 {s['p99_ms']:.3f} mean {s['mean_ms']:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    for mode in ("oracle", "bench"):
        p = sub.add_parser(mode)
        p.add_argument("--assets", required=True)
        p.add_argument("--queries", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--pg-bindir", default=None)
        if mode == "bench":
            p.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.mode == "bench" and args.repeat < 1:
        ap.error("--repeat must be >= 1")
    for path in (args.assets, args.queries):
        if not os.path.exists(path):
            ap.error(f"no such file: {path}")

    bindir = find_bindir(args.pg_bindir)
    # The cluster stops on the way out of the `with`, whatever the signal;
    # SIGINT is caught even when a non-interactive shell started us ignoring it.
    signal.signal(signal.SIGTERM, raise_on_signal)
    signal.signal(signal.SIGHUP, raise_on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    settings = {
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "wal_level": "minimal",
        "max_wal_senders": "0",
        "max_wal_size": "8GB",
        "checkpoint_timeout": "1h",
        "autovacuum": "off",
        "shared_buffers": "1GB",
        "effective_cache_size": "4GB",
        "work_mem": "64MB",
        "maintenance_work_mem": "1GB",
        "jit": "off",
        "max_connections": "20",
        "logging_collector": "off",
        "log_min_messages": "warning",
        "TimeZone": "UTC",
    }
    try:
        with Cluster(bindir, settings) as cluster:
            with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
                avail = conn.execute(
                    "SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'"
                ).fetchone()
            if avail is None:
                raise SystemExit(
                    "postgis: the PostGIS extension is not installed for this PostgreSQL "
                    "(Debian: apt-get install postgresql-15-postgis-3)"
                )
            if args.mode == "oracle":
                run_oracle(args, cluster)
            else:
                run_bench(args, cluster)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    except psycopg.Error as e:
        log(f"error: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
