"""City-scale benchmarks: the real service over HTTP against the same work as bare SQL.

    bash scripts/bench.sh small            # or: make bench SIZE=small|medium|large
    .venv/bin/python bench/run.py --size small [--no-locust] [--port N] [--quick]
    .venv/bin/python bench/run.py --table   # markdown table of the latest result per size
    .venv/bin/python bench/run.py --sync [--quick]  # the phone-sync bench alone (bench_sync.py)

What it does: loads the city of that size if it is not loaded (``manage.py load_city``,
idempotent), starts gunicorn (as scripts/serve.sh: gridsvc/gunicorn_conf.py; no background worker) on a
free loopback port with production settings (DEBUG off), logs in over HTTP
(``/api/v1/auth/token/``) as a grid member, a community cadre, a street dispatcher and the
city's superuser, then times each operation over HTTP and the same work as hand-written SQL over
psycopg on the same data, plus the number of queries Django ran for one call and how long
those exact queries take when replayed bare (``orm_sql``: what is left is Python).
Then 200 simulated grid members with locust (bench/locustfile.py) for 60 s.

Prints a table (median, p99, ratio to bare SQL) and writes bench/results/<size>-<date>.json
with machine info and the git commit. Nothing here passes or fails on time: these are
measurements. Rows the benchmark creates (cases, visits) are removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import benchenv  # noqa: E402
from benchenv import free_port, log, pct  # noqa: E402

benchenv.apply()

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from fixtures import city  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
PY = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var"
MARK = "bench-city"
LAYERS_BENCH_TIMEOUT_S = 300  # bound on bench/bench_layers.py's run()
LAYERS_STATEMENT_TIMEOUT_MS = 30_000  # its naive-SQL baselines can take minutes at medium  # purpose of visits / title prefix of cases this benchmark creates


# ---------------------------------------------------------------------------- helpers
def timed(fn, n: int, warm: int = 2) -> list[float]:  # type: ignore[no-untyped-def]
    for i in range(warm):
        fn(-1 - i)
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def pg():  # type: ignore[no-untyped-def]
    conn = city._pg_connect()
    conn.autocommit = True
    return conn


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    with pg() as conn, conn.cursor() as cur:
        cur.execute("SELECT version(), postgis_lib_version()")
        pgv, postgis = cur.fetchone()
        settings = {}
        for name in ("shared_buffers", "work_mem", "max_connections", "synchronous_commit", "jit"):
            cur.execute(f"SHOW {name}")
            settings[name] = cur.fetchone()[0]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "postgresql": pgv.split(" on ")[0],
        "postgis": postgis,
        "pg_settings": settings,
        "git_commit": commit + ("+dirty" if dirty else ""),
        "load_average": os.getloadavg(),
    }


# ---------------------------------------------------------------------------- the server
class Server:
    """gunicorn as scripts/serve.sh runs it (gridsvc/gunicorn_conf.py: 2 gthread workers × 4
    threads, preloaded), on a free loopback port."""

    def __init__(self, workers: int = 0, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        VAR.mkdir(exist_ok=True)
        subprocess.run(
            [PY, "manage.py", "collectstatic", "--no-input", "-v", "0"], cwd=ROOT, check=True
        )
        self.logfile = open(VAR / "bench-gunicorn.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                GUNICORN,
                "gridsvc.wsgi",
                "-c",
                "gridsvc/gunicorn_conf.py",  # as scripts/serve.sh: preload, views imported
                "-b",
                f"127.0.0.1:{self.port}",
                *(["-w", str(self.workers)] if self.workers else []),
                "--timeout",
                "120",
                # gunicorn 27's control socket in the home folder would clobber a running
                # server's
                "--no-control-socket",
            ],
            cwd=ROOT,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("gunicorn exited; see var/bench-gunicorn.log")
            time.sleep(0.3)
        raise RuntimeError("gunicorn did not answer /health within 60 s")

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group this process started
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.logfile.close()


class Api:
    """A member's session: ``get``/``post`` (the timed calls) go through the light client
    (bench/httpclient.py: one socket, ~0.05 ms a call); ``s`` is a ``requests`` session with
    the same token for the callers that need its features (streaming, gzip bodies)."""

    def __init__(self, base: str, username: str) -> None:
        from httpclient import Client

        self.base = base
        self.s = requests.Session()
        host, _, port = base.removeprefix("http://").partition(":")
        self.c = Client(int(port), host=host)
        self.c.headers["Accept-Encoding"] = "gzip"  # as requests (and the phone) send
        t = time.perf_counter()
        r = self.c.post(
            "/api/v1/auth/token/",
            json={"username": username, "password": city.PASSWORD, "device": "bench"},
        )
        self.login_ms = (time.perf_counter() - t) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"login {username}: {r.status_code} {r.text[:200]}")
        self.token = r.json()["access"]
        self.s.headers["Authorization"] = f"Bearer {self.token}"
        self.c.headers["Authorization"] = f"Bearer {self.token}"
        self.username = username

    def get(self, path: str, ok=(200,), headers: dict | None = None):  # type: ignore[no-untyped-def]
        r = self.c.get(path, headers=headers)
        if r.status_code not in ok:
            raise RuntimeError(f"GET {path}: {r.status_code} {r.text[:300]}")
        return r

    def post(self, path: str, body, ok=(200, 201)):  # type: ignore[no-untyped-def]
        r = self.c.post(path, json=body)
        if r.status_code not in ok:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:300]}")
        return r


def orm_profile(username: str, path: str) -> tuple[int, list[str]]:
    """Run ``path`` in-process as ``username``; the SQL Django sent (for replay)."""
    from rest_framework.test import APIClient

    from gridsvc.accounts.models import Member

    client = APIClient()
    client.force_authenticate(Member.objects.get(username=username))
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(path)
    if r.status_code != 200:
        raise RuntimeError(f"in-process GET {path}: {r.status_code}")
    sqls = [q["sql"] for q in ctx.captured_queries]
    selects = [s for s in sqls if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    return len(sqls), selects


# ---------------------------------------------------------------------------- the data
class Picks:
    """Who and what the operations use (deterministic for a size)."""

    def __init__(self, size: str) -> None:
        from gridsvc.accounts.models import Member
        from gridsvc.cases.models import OPEN_STATUSES, Case
        from gridsvc.territory.models import Building, Grid, Household, Street

        grids = list(
            Grid.objects.filter(code__startswith=city.CITY_PREFIX)
            .order_by("code")
            .values_list("id", "code")
        )
        if not grids:
            raise SystemExit("no city loaded")
        gid, gcode = grids[len(grids) // 2]
        self.grid_id, self.grid_code = gid, gcode
        self.grid_member = f"{city.USER_PREFIX}gm-{gcode}"
        self.grid_member_id = Member.objects.get(username=self.grid_member).id
        self.households = list(
            Household.objects.filter(unit__building__grid_id=gid)
            .order_by("id")
            .values_list("id", flat=True)
        )
        self.buildings = [
            (b.id, b.point.x, b.point.y)
            for b in Building.objects.filter(grid_id=gid).order_by("id").only("id", "point")
        ]
        rng = random.Random(7)
        self.points = []
        for _ in range(400):
            _bid, x, y = rng.choice(self.buildings)
            self.points.append(
                (round(x + rng.uniform(-0.0002, 0.0002), 7), round(y + rng.uniform(-4e-5, 4e-5), 7))
            )
        top = (
            Case.objects.filter(
                handler__username__startswith=city.USER_PREFIX + "cd-", status__in=OPEN_STATUSES
            )
            .values("handler__username", "handler_id")
            .order_by()
        )
        from django.db.models import Count

        row = top.annotate(n=Count("id")).order_by("-n", "handler_id").first()
        self.cadre = row["handler__username"] if row else f"{city.USER_PREFIX}cd-{gcode}"
        self.cadre_id = Member.objects.get(username=self.cadre).id
        street = Street.objects.filter(code__startswith=city.CITY_PREFIX).order_by("code").first()
        self.street_code = street.code
        self.dispatcher = f"{city.USER_PREFIX}sd-{street.code}-1"
        self.admin = city.ADMIN_USERNAME
        self.bbox = city.Layout.of(city.SIZES[size]).bbox_lonlat()
        self.street_grids = list(
            Grid.objects.filter(community__street=street).values_list("id", flat=True)
        )


# ---------------------------------------------------------------------------- bare SQL
_HOLDERS = """
SELECT pos.position_type, pos.member_id, m.display_name, pos.on_leave, pos.id
FROM ({targets}) t, LATERAL (
  SELECT * FROM chain_position p WHERE p.position_type = 'unit_head' AND p.unit_id = t.unit_id
  UNION ALL SELECT * FROM chain_position p
   WHERE p.position_type = 'building_head' AND p.building_id = t.building_id
  UNION ALL SELECT * FROM chain_position p
   WHERE p.position_type IN ('owners_committee', 'property_manager')
     AND p.compound_id = t.compound_id
  UNION ALL SELECT * FROM chain_position p
   WHERE p.position_type = 'community_cadre' AND p.grid_id = t.grid_id
  UNION ALL SELECT * FROM chain_position p
   WHERE p.position_type = 'mediation_committee' AND p.community_id = t.community_id
  UNION ALL SELECT * FROM chain_position p
   WHERE p.position_type = 'street_dispatcher' AND p.street_id = t.street_id) pos
JOIN accounts_member m ON m.id = pos.member_id
WHERE pos.valid_from <= now() AND (pos.valid_to IS NULL OR pos.valid_to > now())
ORDER BY pos.valid_from, pos.id
"""
# locate (covering building, else nearest within ~30 m; grid by ST_Covers) + every holder
SQL_CHAIN_POINT = _HOLDERS.format(
    targets="""
  WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g),
  b AS (SELECT b.id, b.compound_id FROM territory_building b, p
        WHERE b.footprint && ST_Expand(p.g, 0.0004)
        ORDER BY ST_Covers(b.footprint, p.g) DESC,
                 ST_Distance(b.footprint::geography, p.g::geography), b.code LIMIT 1),
  g AS (SELECT g.id, g.community_id, c.street_id FROM territory_grid g
        JOIN territory_community c ON c.id = g.community_id, p
        WHERE g.parent_id IS NULL AND ST_Covers(g.boundary, p.g) ORDER BY g.code LIMIT 1)
  SELECT NULL::bigint AS unit_id, b.id AS building_id, b.compound_id, g.id AS grid_id,
         g.community_id, g.street_id FROM b, g"""
)
SQL_CHAIN_HOUSEHOLD = _HOLDERS.format(
    targets="""
  SELECT h.unit_id, b.id AS building_id, b.compound_id, b.grid_id, g.community_id, c.street_id
  FROM territory_household h JOIN territory_unit u ON u.id = h.unit_id
  JOIN territory_building b ON b.id = u.building_id
  JOIN territory_grid g ON g.id = b.grid_id
  JOIN territory_community c ON c.id = g.community_id
  WHERE h.id = %(hh)s"""
).replace(
    "ORDER BY pos.valid_from",
    "UNION ALL SELECT 'household_head', NULL, r.name, false, NULL "
    "FROM territory_household h JOIN territory_resident r ON r.id = h.head_id "
    "WHERE h.id = %(hh)s\nORDER BY 5 NULLS FIRST --",
)
SQL_MY_TASKS = [
    """SELECT count(*) FROM visits_visittask WHERE assigned_member_id = %(m)s""",
    """SELECT t.id, t.rule_id, r.code, r.name, t.household_id, t.resident_id, u.building_id,
              b.grid_id, h.room, t.period, t.period_start, t.period_end, t.due_on, t.status,
              t.assigned_member_id, t.assigned_position_id, t.assigned_level, t.done_by_id,
              t.updated_at
       FROM visits_visittask t JOIN visits_visitrule r ON r.id = t.rule_id
       JOIN territory_household h ON h.id = t.household_id
       JOIN territory_unit u ON u.id = h.unit_id
       JOIN territory_building b ON b.id = u.building_id
       WHERE t.assigned_member_id = %(m)s ORDER BY t.due_on, t.id LIMIT 50""",
]
SQL_MY_CASES = [
    """SELECT count(*) FROM cases_case WHERE handler_id = %(m)s""",
    """SELECT c.id, c.number, c.kind, c.title, c.status, c.level, c.category_id, k.name,
              c.priority, ST_X(c.location), ST_Y(c.location), c.grid_id, c.building_id,
              c.household_id, c.reported_at, c.due_at, c.card, c.updated_at, c.chain
       FROM cases_case c JOIN cases_category k ON k.id = c.category_id
       WHERE c.handler_id = %(m)s ORDER BY c.reported_at DESC, c.id DESC LIMIT 50""",
]
SQL_SYNC = [
    # tasks in the grid or assigned to me: each side by its own index, then merged
    """SELECT t.id, r.code, r.name, t.household_id, t.resident_id, t.period, t.period_start,
              t.period_end, t.due_on, t.status, t.assigned_member_id, t.done_by_id, t.updated_at
       FROM ((SELECT t.* FROM visits_visittask t
              JOIN territory_household h ON h.id = t.household_id
              JOIN territory_unit u ON u.id = h.unit_id
              JOIN territory_building b ON b.id = u.building_id
              WHERE b.grid_id = %(g)s ORDER BY t.updated_at, t.id LIMIT 501)
             UNION
             (SELECT t.* FROM visits_visittask t WHERE t.assigned_member_id = %(m)s
              ORDER BY t.updated_at, t.id LIMIT 501)) t
       JOIN visits_visitrule r ON r.id = t.rule_id
       ORDER BY t.updated_at, t.id LIMIT 501""",
    """SELECT h.id, h.unit_id, u.number, u.building_id, b.name, b.grid_id, h.room, h.floor,
              h.tenure, hr.name, (SELECT count(*) FROM territory_resident r
                                  WHERE r.household_id = h.id)
       FROM (SELECT DISTINCT household_id_ref AS id FROM
               (SELECT household_id_ref FROM visits_changelog
                WHERE building_id_ref IN (SELECT id FROM territory_building WHERE grid_id = %(g)s)
                ORDER BY id LIMIT 501) l) cl
       JOIN territory_household h ON h.id = cl.id JOIN territory_unit u ON u.id = h.unit_id
       JOIN territory_building b ON b.id = u.building_id
       LEFT JOIN territory_resident hr ON hr.id = h.head_id""",
    """SELECT c.id, c.number, c.title, c.category_id, c.status, c.level, c.household_id,
              c.building_id, c.grid_id, ST_X(c.location), ST_Y(c.location), c.updated_at
       FROM cases_case c WHERE c.grid_id = %(g)s ORDER BY c.updated_at, c.id LIMIT 501""",
]
SQL_HEATMAP = """
SELECT floor(ST_X(p) / %(s)s)::int AS i, floor(ST_Y(p) / %(s)s)::int AS j, count(*)
FROM (SELECT ST_Transform(location, 3857) AS p FROM cases_case
      WHERE location && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)) s
GROUP BY 1, 2
"""
TILE_SQL = {
    "grids": ("territory_grid", "boundary", "t.id, t.code, t.name"),
    "buildings": ("territory_building", "footprint", "t.id, t.code, t.name, t.floors"),
    "households": ("territory_building", "point", "t.id, t.code"),
    "cases": ("cases_case", "location", "t.id, t.status, t.category_id"),
}


def tile_sql(layer: str) -> str:
    table, geom, cols = TILE_SQL[layer]
    return f"""
SELECT ST_AsMVT(q, '{layer}', 4096, 'geom') FROM (
  SELECT {cols}, ST_AsMVTGeom(ST_Transform(t.{geom}, 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s),
                              4096, 64, true) AS geom
  FROM {table} t
  WHERE t.{geom} && ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326)) q"""


# ---------------------------------------------------------------------------- operations
def run_ops(base: str, size: str, quick: bool) -> tuple[list[dict], dict]:  # noqa: PLR0915
    picks = Picks(size)
    n = 10 if quick else 50
    rows: list[dict] = []
    logins = {}
    gm = Api(base, picks.grid_member)
    cadre = Api(base, picks.cadre)
    disp = Api(base, picks.dispatcher)
    admin = Api(base, picks.admin)
    for a in (gm, cadre, disp, admin):
        logins[a.username] = round(a.login_ms, 1)
    sqlc = pg()
    cur = sqlc.cursor()

    def sql_many(stmts: list[str], params: dict):  # type: ignore[no-untyped-def]
        def go(_i: int) -> None:
            for s in stmts:
                cur.execute(s, params)
                cur.fetchall()

        return go

    def replay(selects: list[str]):  # type: ignore[no-untyped-def]
        def go(_i: int) -> None:
            for s in selects:
                cur.execute(s.replace("%", "%%"))
                cur.fetchall()

        return go

    def record(name: str, http: list[float], sql: list[float] | None, note: str = "",
               user: str | None = None, path: str | None = None, sql_kind: str = "hand") -> None:  # fmt: skip
        row = {
            "operation": name,
            "n": len(http),
            "median_ms": round(statistics.median(http), 2),
            "p99_ms": round(pct(http, 0.99), 2),
            "sql_median_ms": round(statistics.median(sql), 2) if sql else None,
            "sql_p99_ms": round(pct(sql, 0.99), 2) if sql else None,
            "sql_kind": sql_kind if sql else None,
            "ratio": round(statistics.median(http) / statistics.median(sql), 1) if sql else None,
            "note": note,
        }
        if user and path:
            try:
                nq, selects = orm_profile(user, path)
                rep = timed(replay(selects), min(n, 10), warm=1)
                row["orm_queries"] = nq
                row["orm_sql_ms"] = round(statistics.median(rep), 2)
            except Exception as exc:  # noqa: BLE001 - the profile is extra information
                row["orm_queries"] = f"n/a ({exc.__class__.__name__})"
        rows.append(row)
        log(
            f"  {name:<28} http {row['median_ms']:>8.1f} ms (p99 {row['p99_ms']:>8.1f})"
            + (f"   sql {row['sql_median_ms']:>7.2f} ms   ×{row['ratio']}" if sql else "")
            + (f"   orm {row.get('orm_queries')} q / {row.get('orm_sql_ms')} ms" if "orm_sql_ms" in row else "")
        )  # fmt: skip

    def na(name: str, why: str) -> None:
        rows.append({"operation": name, "median_ms": None, "p99_ms": None, "ratio": None,
                     "note": f"n/a: {why}"})  # fmt: skip
        log(f"  {name:<28} n/a: {why}")

    pts = picks.points
    hhs = picks.households
    # chain lookups
    path_pt = lambda i: f"/api/v1/chain/?lon={pts[i % len(pts)][0]}&lat={pts[i % len(pts)][1]}"  # noqa: E731
    http = timed(lambda i: gm.get(path_pt(i)), n)
    sql = timed(
        lambda i: sql_many([SQL_CHAIN_POINT], {"lon": pts[i % len(pts)][0], "lat": pts[i % len(pts)][1]})(i),
        n,
    )  # fmt: skip
    record("chain for a point", http, sql, user=picks.grid_member, path=path_pt(0))
    path_hh = lambda i: f"/api/v1/chain/?household={hhs[i % len(hhs)]}"  # noqa: E731
    http = timed(lambda i: gm.get(path_hh(i)), n)
    sql = timed(lambda i: sql_many([SQL_CHAIN_HOUSEHOLD], {"hh": hhs[i % len(hhs)]})(i), n)
    record("chain for a household", http, sql, user=picks.grid_member, path=path_hh(0))

    # case routing (POST /api/v1/cases/: locate, route, store, events, inbox, deadline jobs)
    created_sql: list[int] = []
    try:
        from gridsvc.cases import services as case_services  # noqa: F401

        has_cases_api = gm.s.options(base + "/api/v1/cases/", timeout=30).status_code == 200
    except ImportError:
        has_cases_api = False
    if has_cases_api:
        body = lambda i: {  # noqa: E731
            "category": "neighbour.noise",
            "title": f"{MARK}: 噪音扰民 {i}",
            "lon": pts[i % len(pts)][0],
            "lat": pts[i % len(pts)][1],
        }
        http = timed(lambda i: gm.post("/api/v1/cases/", body(i)), max(10, n // 2))
        sql = timed(lambda i: created_sql.append(sql_report_case(cur, picks, pts[i % len(pts)], i)), max(10, n // 2))  # fmt: skip
        record("report + route a case", http, sql, note="POST /api/v1/cases/ vs locate+chain+INSERT case+2 events")  # fmt: skip
        mine = "/api/v1/cases/?mine=1"
        http = timed(lambda i: cadre.get(mine), n)
        sql = timed(sql_many(SQL_MY_CASES, {"m": picks.cadre_id}), n)
        record("my cases (cadre)", http, sql, user=picks.cadre, path=mine)
    else:
        na("report + route a case", "no POST /api/v1/cases/ in this checkout")
        na("my cases (cadre)", "no /api/v1/cases/ in this checkout")

    # my tasks, the change feed
    tasks = "/api/v1/visit-tasks/?mine=1"
    http = timed(lambda i: gm.get(tasks), n)
    sql = timed(sql_many(SQL_MY_TASKS, {"m": picks.grid_member_id}), n)
    record("my tasks (grid member)", http, sql, user=picks.grid_member, path=tasks)
    feed = "/api/v1/sync/changes/"
    http = timed(lambda i: gm.get(feed), n)
    sql = timed(sql_many(SQL_SYNC, {"g": picks.grid_id, "m": picks.grid_member_id}), n)
    record("change feed, first sync", http, sql, user=picks.grid_member, path=feed)
    cursor = gm.get(feed).json()
    while cursor.get("has_more"):
        cursor = gm.get(feed + "?since=" + cursor["cursor"]).json()
    nxt = feed + "?since=" + cursor["cursor"]
    http = timed(lambda i: gm.get(nxt), n)
    record("change feed, nothing new", http, None, user=picks.grid_member, path=nxt)

    # a phone's sync: first sync paged to the end, incremental, a batch of 500 (bench_sync.py)
    try:
        import bench.bench_sync as bs

        rows.extend(bs.run(base, gm, picks, cur, MARK, quick))
    except Exception as exc:  # noqa: BLE001 - one bench failing leaves the others' rows
        na("sync: first sync, paged to the end", str(exc)[:120])

    # tiles (the layers helper's bench when present; else ours)
    # over HTTP as a grid member with a JWT (the phone's case: the scope's masking and
    # cache key per grid), tiles around a building of the member's grid
    rows.extend(run_tiles(base, gm, picks, cur, n))

    # heatmap over the whole city (superuser)
    x0, y0, x1, y1 = picks.bbox
    hm = f"/api/v1/heatmap/cases/?bbox={x0},{y0},{x1},{y1}&zoom=12"
    try:
        admin.get(hm)
        http = timed(lambda i: admin.get(hm), max(5, n // 5), warm=1)
        sql = timed(
            sql_many([SQL_HEATMAP], {"s": 1000.0, "x0": x0, "y0": y0, "x1": x1, "y1": y1}),
            max(5, n // 5),
            warm=1,
        )
        record("heatmap of all cases", http, sql, note="hex bins (service) vs arithmetic square bins", user=picks.admin, path=hm)  # fmt: skip
    except RuntimeError as exc:
        na("heatmap of all cases", str(exc)[:80])

    # a month's report of a street (the SQL side replays the queries the report ran)
    rep = f"/api/v1/reports/monthly/?street={picks.street_code}&month=2026-10"
    try:
        disp.get(rep)
        http = timed(lambda i: disp.get(rep), 5 if not quick else 3, warm=1)
        _nq, selects = orm_profile(picks.dispatcher, rep)
        sql = timed(replay(selects), 5 if not quick else 3, warm=1)
        record("monthly report of a street", http, sql, user=picks.dispatcher, path=rep, sql_kind="replay of the report's own queries")  # fmt: skip
    except RuntimeError as exc:
        na("monthly report of a street", str(exc)[:80])

    # visit batch ingest (bench/bench_visits.py's bare-SQL baseline)
    rows.append(run_ingest(gm, picks, quick))

    cur.close()
    sqlc.close()
    cleanup()
    return rows, {"logins_ms": logins, "picks": {
        "grid_member": picks.grid_member, "cadre": picks.cadre, "dispatcher": picks.dispatcher,
        "grid": picks.grid_code, "street": picks.street_code,
    }}  # fmt: skip


def sql_report_case(cur, picks: Picks, pt: tuple[float, float], i: int) -> int:  # type: ignore[no-untyped-def]
    """The bare-SQL counterpart of POST /api/v1/cases/: locate + chain in one statement, then
    the case row and two events, in one transaction."""
    from psycopg.types.json import Jsonb

    cur.execute("BEGIN")
    cur.execute(SQL_CHAIN_POINT, {"lon": pt[0], "lat": pt[1]})
    holders = cur.fetchall()
    handler = next((h[1] for h in holders if h[0] == "building_head" and not h[3]), None)
    now = datetime.now(TZ)
    row = {
        "number": f"BS{uuid.uuid4().hex[:12]}",
        "kind": "dispute",
        "category_id": None,
        "title": f"{MARK}: sql {i}",
        "location": f"SRID=4326;POINT({pt[0]} {pt[1]})",
        "status": "assigned",
        "level": "building_head",
        "handler_id": handler,
        "reported_at": now.isoformat(),
        "updated_at": now.isoformat(),
        "chain": [list(map(str, h)) for h in holders],
    }
    cur.execute("SELECT id FROM cases_category WHERE code = 'neighbour.noise'")
    row["category_id"] = cur.fetchone()[0]
    defaults = {
        c: d
        for c, _k, d in city.column_specs()["cases_case"]
        if d is not None and d != r"\N" and c not in row
    }
    cur.execute(
        """INSERT INTO cases_case SELECT (jsonb_populate_record(NULL::cases_case,
               %s || jsonb_build_object('id', nextval(pg_get_serial_sequence('cases_case','id'))))).*
           RETURNING id""",
        [Jsonb({**defaults, **row})],
    )
    case_id = cur.fetchone()[0]
    for kind in ("report", "route"):
        cur.execute(
            """INSERT INTO cases_caseevent (case_id, kind, from_status, to_status, at, note, data,
                   level, actor_id) VALUES (%s, %s, '', 'assigned', now(), '', '{}', '', NULL)""",
            [case_id, kind],
        )
    cur.execute("COMMIT")
    return case_id


def run_tiles(base: str, api: Api, picks: Picks, cur, n: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """Cold (first request), cached (second) and revalidated (If-None-Match → 304) tiles over
    HTTP as ``api``'s member (a grid member with a JWT), then bench/bench_layers.py's
    in-process rows (superuser, no HTTP) beside them when that benchmark is present."""
    extra: list[dict] = []
    layers_bench = ROOT / "bench" / "bench_layers.py"
    if layers_bench.exists():  # the layers helper's benchmark: in a bounded subprocess
        code = (
            "import json, sys; sys.path.insert(0, '.'); import bench.bench_layers as bl; "
            f"print('ROWS' + json.dumps(bl.run(tiles={max(4, n // 5)}, repeat=3), default=str))"
        )
        env = {**os.environ, "PGOPTIONS": f"-c statement_timeout={LAYERS_STATEMENT_TIMEOUT_MS}"}
        try:
            out = subprocess.run(
                [PY, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                timeout=LAYERS_BENCH_TIMEOUT_S,
            )  # fmt: skip
            line = next((x for x in out.stdout.splitlines() if x.startswith("ROWS")), None)
            if out.returncode == 0 and line:
                got = json.loads(line[4:])
                for r in got:
                    r["note"] = ("bench/bench_layers.py (in-process) " + r.get("note", "")).strip()
                    log(f"  {r['operation']:<28} {r.get('median_ms')} ms   sql {r.get('sql_median_ms')} ms")  # fmt: skip
                extra = got
            else:
                why = (out.stderr.strip().splitlines() or ["no output"])[-1][:160]
        except subprocess.TimeoutExpired:
            why = f"took more than {LAYERS_BENCH_TIMEOUT_S} s"
        if not extra:
            log(f"  bench/bench_layers.py run() did not finish ({why})")
            extra = [{"operation": "layers bench (bench_layers.run)", "median_ms": None,
                      "note": f"n/a: {why}"}]  # fmt: skip
    from geo.hexbin import lonlat_to_tile

    rows: list[dict] = []
    z = 16
    lon, lat = picks.buildings[0][1], picks.buildings[0][2]
    cx, cy = lonlat_to_tile(lon, lat, z)
    tiles = [(cx + dx, cy + dy) for dx in range(-3, 4) for dy in range(-3, 4)]
    with pg() as c2, c2.cursor() as cur2:
        city._invalidate_tiles(cur2)
    for layer in TILE_SQL:
        url = lambda t, layer=layer: f"/tiles/{layer}/{z}/{t[0]}/{t[1]}.mvt"  # noqa: E731
        try:
            api.get(url(tiles[0]), ok=(200, 204))
        except RuntimeError as exc:
            rows.append(
                {"operation": f"tile {layer}", "median_ms": None, "note": f"n/a: {exc}"[:120]}
            )
            continue
        with pg() as c2, c2.cursor() as cur2:
            city._invalidate_tiles(cur2)
        cold = [
            v for v in timed(lambda i, url=url: api.get(url(tiles[i % len(tiles)]), ok=(200, 204)), len(tiles), warm=0)
        ]  # fmt: skip
        etags = {}

        def hit(i: int, url=url, etags=etags) -> None:
            r = api.get(url(tiles[i % len(tiles)]), ok=(200, 204))
            etags[i % len(tiles)] = r.headers.get("ETag")

        warm = timed(hit, len(tiles), warm=0)
        revalidate = timed(
            lambda i, url=url, etags=etags: api.get(
                url(tiles[i % len(tiles)]),
                ok=(304, 200, 204),
                headers={"If-None-Match": etags.get(i % len(tiles)) or ""},
            ),
            len(tiles),
            warm=0,
        )
        sql = timed(
            lambda i, layer=layer: (
                cur.execute(tile_sql(layer), {"z": z, "x": tiles[i % len(tiles)][0], "y": tiles[i % len(tiles)][1]}),
                cur.fetchall(),
            ),
            len(tiles),
            warm=1,
        )  # fmt: skip
        sm = statistics.median(sql)
        for name, vals in (("cold", cold), ("cached", warm), ("304", revalidate)):
            rows.append(
                {
                    "operation": f"tile {layer} z{z} {name}",
                    "n": len(vals),
                    "median_ms": round(statistics.median(vals), 2),
                    "p99_ms": round(pct(vals, 0.99), 2),
                    "sql_median_ms": round(sm, 2),
                    "sql_kind": "hand",
                    "ratio": round(statistics.median(vals) / sm, 1),
                    "note": "a grid member over HTTP (JWT); SQL = one ST_AsMVT, no scope",
                }
            )
            log(
                f"  tile {layer} z{z} {name:<7}        http {statistics.median(vals):>8.1f} ms   sql {sm:>7.2f} ms"
            )
    return rows + extra


def run_ingest(api: Api, picks: Picks, quick: bool) -> dict:
    """POST /api/v1/visits/batch/ (500 visits a batch) vs bench_visits.run_sql (the same rows
    inserted by one INSERT … SELECT per batch, distance by PostGIS)."""
    import bench.bench_visits as bv

    batches = 3 if quick else 6
    rng = random.Random(11)
    rows = []
    for i in range(500 * batches):
        hid = picks.households[i % len(picks.households)]
        _b, x, y = picks.buildings[i % len(picks.buildings)]
        rows.append(
            {
                "client_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "household": hid,
                "client_time": datetime(
                    2024, 3, 1 + i % 28, 9 + i % 9, i % 60, tzinfo=TZ
                ).isoformat(),
                "lon": round(x + rng.uniform(-0.0003, 0.0003), 7),
                "lat": round(y + rng.uniform(-0.0002, 0.0002), 7),
                "accuracy_m": round(rng.uniform(3, 60), 1),
                "purpose": MARK,
                "notes": "bench",
            }
        )
    http = []
    for i in range(batches):
        t = time.perf_counter()
        r = api.post("/api/v1/visits/batch/", {"visits": rows[i * 500 : (i + 1) * 500]})
        http.append((time.perf_counter() - t) * 1000)
        summary = r.json()["summary"]
        if summary.get("accepted") != 500:
            log(f"  ingest batch {i}: {summary}")
    sql_s = bv.run_sql(rows, 500, picks.grid_member_id)
    sql_per_batch = sql_s * 1000 / batches
    row = {
        "operation": "visit batch ingest (500)",
        "n": batches,
        "median_ms": round(statistics.median(http), 1),
        "p99_ms": round(pct(http, 0.99), 1),
        "sql_median_ms": round(sql_per_batch, 1),
        "sql_kind": "bench_visits.run_sql (mean per batch)",
        "ratio": round(statistics.median(http) / sql_per_batch, 1),
        "note": f"{500 / statistics.median(http) * 1000:.0f} visits/s over HTTP",
    }
    log(
        f"  {row['operation']:<28} http {row['median_ms']:>8.1f} ms (p99 {row['p99_ms']:>8.1f})"
        f"   sql {row['sql_median_ms']:>7.1f} ms   ×{row['ratio']}"
    )
    return row


def cleanup() -> None:
    """Remove what the benchmark created: cases, visits (and what refers to them)."""
    import bench.bench_visits as bv

    with pg() as conn, conn.cursor() as cur:
        try:
            cur.execute(
                """DELETE FROM procrastinate_jobs WHERE status = 'todo' AND task_name = 'cases.check'
                   AND (args->>'case_id')::bigint IN (SELECT id FROM cases_case WHERE title LIKE %s)""",
                [MARK + ":%"],
            )
        except Exception as exc:  # noqa: BLE001 - the queue may refuse; the cases go anyway
            log(f"  (could not drop the deadline jobs of benchmark cases: {exc})")
    city.remove(
        log=lambda m: log("  cleanup: " + m),
        city=False,
        extra_seeds=[
            ("cases_case", "title LIKE %s", [MARK + ":%"]),
            ("visits_visit", "purpose IN (%s, %s, %s)", [MARK, bv.MARK_SQL, "bench-locust"]),
        ],
    )


# ---------------------------------------------------------------------------- locust
def run_locust(base: str, size: str, users: int, seconds: int) -> dict:
    """200 grid members (their own JWTs, minted like the login view mints them) for a bounded
    time; requests per second, p50/p99, failures."""
    from rest_framework_simplejwt.tokens import RefreshToken

    from geo.hexbin import lonlat_to_tile
    from gridsvc.accounts.authentication import DEVICE_CLAIM
    from gridsvc.accounts.models import Device, Member
    from gridsvc.territory.models import Building, Household

    members = list(
        Member.objects.filter(username__startswith=city.USER_PREFIX + "gm-").order_by("username")
    )
    step = max(1, len(members) // users)
    chosen = members[::step][:users]
    people = []
    for m in chosen:
        grid_code = m.username.removeprefix(city.USER_PREFIX + "gm-")
        dev, _ = Device.objects.get_or_create(member=m, device_id="bench-locust")
        refresh = RefreshToken.for_user(m)
        refresh[DEVICE_CLAIM] = dev.pk
        hh = list(
            Household.objects.filter(unit__building__grid__code=grid_code).values_list(
                "id", "unit__building__point"
            )[:100]
        )
        b = Building.objects.filter(grid__code=grid_code).values_list("point", flat=True).first()
        tiles = [lonlat_to_tile(b.x, b.y, z) for z in (15, 16, 17)]
        people.append(
            {
                "username": m.username,
                "token": str(refresh.access_token),
                "households": [[h, p.x, p.y] for h, p in hh],
                "tiles": [[z, x, y] for z, (x, y) in zip((15, 16, 17), tiles, strict=True)],
            }
        )
    VAR.mkdir(exist_ok=True)
    users_file = VAR / "bench-locust-users.json"
    users_file.write_text(json.dumps(people))
    prefix = VAR / f"locust-{size}"
    cmd = [
        str(ROOT / ".venv" / "bin" / "locust"),
        "-f", str(ROOT / "bench" / "locustfile.py"),
        "--headless", "-u", str(users), "-r", str(max(1, users // 10)),
        "-t", f"{seconds}s", "--host", base, "--csv", str(prefix), "--only-summary",
        "--stop-timeout", "10", "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_LOCUST_USERS": str(users_file)}
    log(f"locust: {users} grid members for {seconds} s …")
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 120
    )
    wall = time.perf_counter() - t0
    stats = _read_csv(Path(f"{prefix}_stats.csv"))
    failures = _read_csv(Path(f"{prefix}_failures.csv"))
    agg = next((r for r in stats if r.get("Name") == "Aggregated"), {})
    per = [
        {
            "name": r["Name"],
            "requests": int(r["Request Count"]),
            "failures": int(r["Failure Count"]),
            "p50_ms": float(r["50%"]),
            "p99_ms": float(r["99%"]),
            "rps": round(float(r["Requests/s"]), 1),
        }
        for r in stats
        if r.get("Name") != "Aggregated"
    ]
    out = {
        "users": users,
        "seconds": seconds,
        "wall_s": round(wall, 1),
        "requests": int(agg.get("Request Count", 0) or 0),
        "failures": int(agg.get("Failure Count", 0) or 0),
        "rps": round(float(agg.get("Requests/s", 0) or 0), 1),
        "p50_ms": float(agg.get("50%", 0) or 0),
        "p99_ms": float(agg.get("99%", 0) or 0),
        "by_request": per,
        "failure_kinds": [
            {"name": f.get("Name"), "error": f.get("Error"), "count": f.get("Occurrences")}
            for f in failures
        ],
        "exit_code": proc.returncode,
    }
    if proc.returncode not in (0, 1):
        out["stderr_tail"] = proc.stderr[-2000:]
    log(
        f"locust: {out['requests']} requests, {out['rps']} req/s, p50 {out['p50_ms']} ms, "
        f"p99 {out['p99_ms']} ms, failures {out['failures']}"
    )
    for f in out["failure_kinds"]:
        log(f"  failure: {f}")
    return out


def _read_csv(path: Path) -> list[dict]:
    import csv

    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------- reporting
def print_table(rows: list[dict]) -> None:
    log("")
    log(f"{'operation':<34}{'median ms':>11}{'p99 ms':>10}{'SQL ms':>9}{'ratio':>8}{'ORM q':>7}{'ORM SQL ms':>11}")  # fmt: skip
    for r in rows:
        if r.get("median_ms") is None:
            log(f"{r['operation']:<34}{'n/a':>11}   {r.get('note', '')}")
            continue
        sql = r.get("sql_median_ms")
        log(
            f"{r['operation']:<34}{r['median_ms']:>11.1f}{r['p99_ms']:>10.1f}"
            f"{(f'{sql:.2f}' if sql is not None else '–'):>9}"
            f"{(str(r['ratio']) + '×' if r.get('ratio') is not None else '–'):>8}"
            f"{str(r.get('orm_queries', '–')):>7}"
            f"{(str(r['orm_sql_ms']) if r.get('orm_sql_ms') is not None else '–'):>11}"
        )


def markdown_table() -> str:
    """The latest result of each size as one markdown table (for the README)."""
    latest: dict[str, dict] = {}
    for p in sorted(RESULTS.glob("*-*.json")):
        try:
            data = json.loads(p.read_text())
        except ValueError:
            continue
        if "operations" in data and data.get("size") in city.SIZES:
            latest[data["size"]] = data
    sizes = [s for s in ("small", "medium", "large") if s in latest]
    if not sizes:
        return "no results yet"
    ops: list[str] = []
    for s in sizes:
        for r in latest[s]["operations"]:
            if r["operation"] not in ops:
                ops.append(r["operation"])
    head = (
        "| operation | " + " | ".join(f"{s} median / p99 ms | {s} SQL ms (×)" for s in sizes) + " |"
    )
    lines = [head, "|---|" + "---:|---:|" * len(sizes)]
    for op in ops:
        cells = []
        for s in sizes:
            r = next((x for x in latest[s]["operations"] if x["operation"] == op), None)
            if r is None or r.get("median_ms") is None:
                cells += ["n/a", ""]
                continue
            cells.append(f"{r['median_ms']:.1f} / {r['p99_ms']:.1f}")
            sql = r.get("sql_median_ms")
            cells.append(f"{sql:.2f} ({r['ratio']}×)" if sql is not None else "–")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    for s in sizes:
        d = latest[s]
        lo = d.get("locust") or {}
        if lo:
            lines.append("")
            lines.append(
                f"locust ({s}): {lo['users']} grid members, {lo['seconds']} s: "
                f"{lo['rps']} req/s, p50 {lo['p50_ms']:.0f} ms, p99 {lo['p99_ms']:.0f} ms, "
                f"{lo['failures']} failures of {lo['requests']}"
            )
    meta = ", ".join(
        f"{s}: {latest[s]['date']} @ {latest[s]['machine']['git_commit']}" for s in sizes
    )
    return "\n".join(lines) + f"\n\n({meta})"


def ensure_city(size: str) -> dict:
    loaded, figures = city.loaded_size()
    if loaded == size:
        log(f"city {size} already loaded ({figures})")
        return {"action": "none", "loaded_before": loaded}
    log(f"loading city {size} (loaded before: {loaded}) …")
    t0 = time.perf_counter()
    out = subprocess.run(
        [PY, "manage.py", "load_city", "--size", size, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.stdout.write(out.stdout[-3000:])
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit("load_city failed")
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    for x in out.stdout.splitlines():
        if not x.startswith("{"):
            log("  " + x)
    result = json.loads(lines[-1]) if lines else {}
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def _loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def run_sync_alone(quick: bool) -> None:
    """``--sync``: the phone-sync bench (bench/bench_sync.py) alone, against the city loaded
    in the database ``DATABASE_URL`` names (default: the development one; :func:`ensure_city`
    is not called: load it first with ``make bench SIZE=small`` or ``manage.py load_city``), on
    its own gunicorn. Writes bench/results/sync-<size>-<date>.json (not <size>-<date>.json:
    that is the table of :func:`main`)."""
    import bench.bench_sync as bs

    loaded, figures = city.loaded_size()
    if not loaded:
        raise SystemExit("no city loaded: make bench SIZE=small (or manage.py load_city)")
    picks = Picks(loaded)
    started = datetime.now(TZ).isoformat(timespec="seconds")
    load_before = _loadavg()
    with Server() as server, pg() as conn, conn.cursor() as cur:
        api = Api(server.url, picks.grid_member)
        try:
            rows = bs.run(server.url, api, picks, cur, MARK, quick)
        finally:
            cleanup()
    result = {
        "size": loaded,
        "figures": figures,
        "date": date.today().isoformat(),
        "started_at": started,
        "member": picks.grid_member,
        "grid": picks.grid_code,
        "machine": machine_info(),
        # 1/5/15-minute load averages (2 cores): other work on the machine at the time
        "loadavg_before": load_before,
        "loadavg_after": _loadavg(),
        "operations": rows,
    }
    out = RESULTS / f"sync-{loaded}-{result['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=[s for s in city.SIZES if s != "tiny"], default="small")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    ap.add_argument("--no-locust", action="store_true")
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--table", action="store_true", help="print the README table and exit")
    ap.add_argument(
        "--sync", action="store_true", help="the phone-sync bench alone, on the loaded city"
    )
    args = ap.parse_args()
    if args.table:
        print(markdown_table())
        return
    if args.sync:
        run_sync_alone(args.quick)
        return
    t0 = time.perf_counter()
    load = ensure_city(args.size)
    t_load = time.perf_counter() - t0
    result: dict = {
        "size": args.size,
        "figures": city.SIZES[args.size].describe(),
        "date": date.today().isoformat(),
        "started_at": datetime.now(TZ).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load": load,
        "load_wall_s": round(t_load, 1),
    }
    with Server(port=args.port) as server:
        log(f"gunicorn on {server.url} (as scripts/serve.sh, DEBUG off)")
        t1 = time.perf_counter()
        ops, extra = run_ops(server.url, args.size, args.quick)
        result["operations"] = ops
        result.update(extra)
        result["ops_wall_s"] = round(time.perf_counter() - t1, 1)
        if not args.no_locust:
            try:
                result["locust"] = run_locust(server.url, args.size, args.users, args.seconds)
            finally:
                cleanup()
    result["total_wall_s"] = round(time.perf_counter() - t0, 1)
    print_table(ops)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{args.size}-{result['date']}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    log(f"\nwrote {out.relative_to(ROOT)} (total {result['total_wall_s']} s)")


if __name__ == "__main__":
    main()
