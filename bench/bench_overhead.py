"""The fixed cost of a request, measured honestly: gridsvc beside its floor, an anchor, the
honest SQL of the same work and the older code, interleaved in one run.

    .venv/bin/python bench/bench_overhead.py --tree HEAD --before 'f5fdbda^'   # as published
    .venv/bin/python bench/bench_overhead.py [-n 100] [--variants gthread2x4,sync3]
        [--concurrency 8,32] [--mix-concurrency 8,32,128] [--seconds 4] [--mix-seconds 8]
    .venv/bin/python bench/bench_overhead.py --table [result.json]  # README table
    .venv/bin/python bench/bench_overhead.py --profile chain-point   # pyinstrument, in-process

Uses the city loaded in the dev database (``bench/run.py --size small`` or ``manage.py
load_city --size small``; else the demo street). ``--tree HEAD`` runs everything (servers and
in-process parts) on a clean git worktree of that commit, not on the working tree (which may
hold other people's unfinished, unmigrated edits); ``--before <commit or checkout>`` serves the
older code too (a git worktree; ``--before-variant``, default ``sync3-bare``: 3 sync workers,
no config, as scripts/serve.sh ran it then). Servers start on free loopback ports with
production settings (DEBUG off, no background worker), each with ``--no-control-socket``
(gunicorn 27's control socket in the home folder would clobber a running server's):

- gridsvc under gunicorn, once per ``--variants`` entry (``gthread2x4``: 2 workers × 4
  threads with gridsvc/gunicorn_conf.py, as serve.sh; ``sync3``: 3 sync workers; suffixes in
  :func:`gunicorn_cmd`), with the floor views of :mod:`bench.anchors.floor`;
- the anchor (:mod:`bench.anchors.app`, Starlette + asyncpg under uvicorn, 3 workers).

Every worker's first requests are made before timing (a concurrent burst, timed: the slowest
is what a user meets after a deploy). Then, **interleaved** in one loop (each round visits
every target in a shuffled order, so the machine's load hits all of them alike; ``--settle-ms``
pauses before each, 0 by default: a 10 ms pause made every figure slower, the floor 3.71 →
4.29 ms, as a process woken after a pause pays for it on this VM), with a light client (:mod:`bench.httpclient`: a raw socket, persistent when the
server keeps it open):

- floor: a trivial Django view (middleware, no database) and the same behind DRF + JWT;
- the anchor's floor and its chain for a point / a household;
- per server: the chain for a point / a household, my cases (the cadre with most cases), my
  tasks, the change feed (first sync, and nothing new since the last cursor), a tile of the
  member's grid cached (200) and revalidated (304), **report + route a case** (``POST
  /api/v1/cases/`` with a fresh Idempotency-Key) and, every ``--batch-every`` rounds, **a
  visit batch of 500** (gzipped, fresh client UUIDs and Idempotency-Key: real inserts) —
  both written by a member of another grid, so that the first member's feed stays "nothing
  new" (a write in their territory would make every poll bring it);
- the bare SQL over psycopg, unprepared (as Django sends it) and prepared (server-side): the
  chain (the caller + scope query, then the chain statement) and the honest SQL of report +
  route (:func:`sql_report_targets`: idempotency record, category, locate + chain, number,
  deadline lookups, case, events, inbox, deadline jobs, duplicate search); the honest
  set-based SQL of a visit batch (:func:`sql_batch_target`: caller, idempotency record,
  stored-UUID and territory checks, one INSERT … ON CONFLICT … RETURNING, clock rows).

Then closed loops (no think time, ``--seconds`` each): the chain for a point on the anchor,
the floor and gridsvc at ``--concurrency``; the **realistic mix** of a member's day
(:data:`MIX`: chain, my cases, my tasks, feed, tile, report) on gridsvc and on the older code
at ``--mix-concurrency`` (req/s, p50, p99, errors). Everything the run wrote (cases, visits,
idempotency records, deadline jobs) is deleted at the end. Writes
bench/results/overhead-<date>[-HHMM].json. Measurements, not a pass/fail test; the machine
(2 cores) is shared, so compare columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import benchenv  # noqa: E402
from benchenv import free_port, log, pct  # noqa: E402

benchenv.apply()

import django  # noqa: E402

django.setup()

from httpclient import Client, parse_head  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var"
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
UVICORN = str(ROOT / ".venv" / "bin" / "uvicorn")
PASSWORD = "gridsvc-demo"


# ------------------------------------------------------------------------- the light client
Req = tuple[str, str, str, dict[str, str], bytes, tuple[int, ...]]
"""One request of a closed loop: (label, method, path, headers, body, statuses counted as ok)."""


def get_req(label: str, path: str, token: str, headers: dict[str, str] | None = None,
            ok: tuple[int, ...] = (200,)) -> Callable[[int], Req]:  # fmt: skip
    hdrs = {"Authorization": f"Bearer {token}", **(headers or {})}
    return lambda i: (label, "GET", path, hdrs, b"", ok)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = parse_head(head[:-4])
    close = headers.get("Connection", "").lower() == "close"
    if status in (204, 304) or 100 <= status < 200:
        return status, close
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                return status, close
    await reader.readexactly(int(headers.get("Content-Length", 0)))
    return status, close


async def _closed_loop(
    port: int,
    token: str,
    paths: list[str] | None,
    seconds: float,
    clients: int,
    keep: list | None = None,
    reqs: list[Callable[[int], Req]] | None = None,
) -> dict:
    """``clients`` concurrent clients, no think time, for ``seconds``; each sends ``reqs`` in
    turn (client k starts at the k-th; a GET of each of ``paths`` when no ``reqs``)."""
    if reqs is None:
        reqs = [get_req("GET", path, token) for path in paths or []]
    lat: list[float] = []
    by_label: dict[str, list[float]] = {}
    errors = 0
    stop = time.perf_counter() + seconds

    async def one(k: int) -> None:
        nonlocal errors
        reader = writer = None
        i = k
        while time.perf_counter() < stop:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            label, method, path, headers, body, ok = reqs[i % len(reqs)](i)
            i += clients
            head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            if body or method != "GET":
                head += f"Content-Length: {len(body)}\r\n"
            t = time.perf_counter()
            try:
                writer.write(head.encode() + b"\r\n" + body)
                status, close = await _read_answer(reader)  # type: ignore[arg-type]
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                errors += 1
                writer.close()
                reader = writer = None
                continue
            ms = (time.perf_counter() - t) * 1000
            lat.append(ms)
            by_label.setdefault(label, []).append(ms)
            if status not in ok:
                errors += 1
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(clients)))
    wall = time.perf_counter() - t0
    if keep is not None:
        keep.extend(lat)
    out = {
        "clients": clients,
        "requests": len(lat),
        "rps": round(len(lat) / wall, 1),
        "p50_ms": round(pct(lat, 0.5), 2),
        "p99_ms": round(pct(lat, 0.99), 2),
        "errors": errors,
    }
    if len(by_label) > 1:
        out["by_operation"] = {
            label: {"n": len(v), "p50_ms": round(pct(v, 0.5), 2), "p99_ms": round(pct(v, 0.99), 2)}
            for label, v in sorted(by_label.items())
        }  # fmt: skip
    return out


# ------------------------------------------------------------------------------ the servers
class Proc:
    """A server this benchmark started (its own process group; stopped at the end)."""

    def __init__(self, name: str, cmd: list[str], env: dict | None = None, *, port: int) -> None:
        self.name, self.cmd, self.port = name, cmd, port
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.cwd = ROOT

    def __enter__(self) -> Proc:
        VAR.mkdir(exist_ok=True)
        self.logfile = open(VAR / f"bench-{self.name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.cmd, cwd=self.cwd, env=self.env, stdout=self.logfile, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see var/bench-{self.name}.log")
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not listen within 90 s")

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.logfile.close()


def gunicorn_cmd(variant: str, port: int) -> tuple[list[str], dict]:
    """``sync3`` (3 sync workers), ``gthread2x4`` (2 workers × 4 threads), with
    gridsvc/gunicorn_conf.py (``--preload``, view modules imported before the fork); suffix
    ``-nopreload``: the config without preload (each worker imports them at start);
    ``-bare``: no config (each worker's first request imports them); ``-noprep``: the hot
    statements not prepared (``GRIDSVC_PREPARED=0``, as behind PgBouncer)."""
    v, _, how = variant.partition("-")
    cmd = [GUNICORN, "bench.anchors.floor", "-b", f"127.0.0.1:{port}", "--timeout", "120",
           "--no-control-socket"]  # fmt: skip
    if how != "bare":
        cmd[2:2] = ["-c", "gridsvc/gunicorn_conf.py"]
    if v.startswith("sync"):
        cmd += ["-w", v[4:] or "3", "--worker-class", "sync"]
    elif v.startswith("gthread"):
        w, _, t = v[7:].partition("x")
        cmd += ["-w", w or "2", "--worker-class", "gthread", "--threads", t or "4"]
    else:
        raise SystemExit(f"unknown variant {variant}")
    return cmd, {
        "GRIDSVC_PRELOAD": "0" if how == "nopreload" else "1",
        "GRIDSVC_PREPARED": "0" if how == "noprep" else "1",
    }


def warm_up(port: int, paths: list[str], token: str, rounds: int = 3) -> list[float]:
    """Each worker's first requests: a burst of 8 concurrent clients (an idle sync worker
    rarely wins the accept race against the one that just answered, so one client in turn
    would warm one worker), then a few in turn. Their times (the slowest is a worker's first
    request: what a user meets after a deploy or a worker restart)."""
    out: list[float] = []
    for path in paths:
        r = asyncio.run(_closed_loop(port, token, [path], 1.0, 8, keep=out))
        if r["errors"]:
            raise RuntimeError(f"warm-up {path}: {r['errors']} errors")
    for _ in range(rounds):
        for path in paths:
            t = time.perf_counter()
            Client(port, token).get(path)
            out.append((time.perf_counter() - t) * 1000)
    return out


# ------------------------------------------------------------------------------ the work
def picks() -> dict:
    from django.contrib.auth import get_user_model

    from fixtures import city
    from gridsvc.chain.scope import scope_for
    from gridsvc.territory.models import Building, Grid, Household

    members = get_user_model().objects
    grid = Grid.objects.filter(code__startswith=city.CITY_PREFIX).order_by("code")
    n = grid.count()
    if n:
        g = grid[n // 2]
        username, where = f"{city.USER_PREFIX}gm-{g.code}", f"city ({n} grids)"
    else:
        username, where = "grid1", "demo street"
    user = members.get(username=username)
    scope = scope_for(user)
    households = list(
        scope.filter(Household.objects.all()).order_by("id").values_list("id", flat=True)[:200]
    )
    rng = random.Random(7)
    blds = list(scope.filter(Building.objects.exclude(point=None)).order_by("id")[:100])
    points = []
    for _ in range(200):
        b = rng.choice(blds)
        points.append((round(b.point.x + rng.uniform(-2e-4, 2e-4), 7),
                       round(b.point.y + rng.uniform(-4e-5, 4e-5), 7)))  # fmt: skip
    # the cadre with the most cases to handle (my cases), in the city or the demo street
    from django.db.models import Count

    from geo.hexbin import lonlat_to_tile
    from gridsvc.cases.models import Case

    prefix = f"{city.USER_PREFIX}cd-" if n else "cadre"
    top = (
        Case.objects.filter(handler__username__startswith=prefix)
        .values("handler__username")
        .annotate(k=Count("id"))
        .order_by("-k", "handler__username")
        .first()
    )
    cadre = top["handler__username"] if top else ("cadre1" if not n else username)
    z = 16
    tile = (z, *lonlat_to_tile(points[0][0], points[0][1], z))
    # the member's grid and its households with their building's point (the visit batch)
    from gridsvc.chain.models import Position

    post = Position.objects.held_at().filter(member=user, grid__isnull=False).first()
    grid_id = post.grid_id if post else None
    homes = [
        (h.id, h.unit.building.point.x, h.unit.building.point.y)
        for h in Household.objects.filter(unit__building__grid_id=grid_id)
        .exclude(unit__building__point=None)
        .select_related("unit__building")
        .order_by("id")[:200]
    ]
    # the writes (report + route, visit batches) are made by a member of another grid, so
    # that they do not change what the first member's feed answers ("nothing new" stays so)
    wname = f"{city.USER_PREFIX}gm-{grid[n // 2 + 1].code}" if n > 1 else "grid2"
    writer = members.get(username=wname)
    wpost = Position.objects.held_at().filter(member=writer, grid__isnull=False).first()
    if wpost is None or wpost.grid_id == grid_id:
        raise SystemExit(f"{wname} holds no grid post apart from {username}'s")
    wblds = list(Building.objects.filter(grid_id=wpost.grid_id).exclude(point=None)[:100])
    wpoints = []
    for _ in range(200):
        b = rng.choice(wblds)
        wpoints.append((round(b.point.x + rng.uniform(-2e-4, 2e-4), 7),
                        round(b.point.y + rng.uniform(-4e-5, 4e-5), 7)))  # fmt: skip
    whomes = [
        (h.id, h.unit.building.point.x, h.unit.building.point.y)
        for h in Household.objects.filter(unit__building__grid_id=wpost.grid_id)
        .exclude(unit__building__point=None)
        .select_related("unit__building")
        .order_by("id")[:200]
    ]
    return {"username": username, "user_id": user.pk, "where": where, "cadre": cadre,
            "households": households, "points": points, "tile": tile, "grid_id": grid_id,
            "homes": homes,
            "writer": {"username": wname, "user_id": writer.pk, "grid_id": wpost.grid_id,
                       "points": wpoints, "homes": whomes}}  # fmt: skip


def login(port: int, username: str) -> str:
    r = Client(port).post(
        "/api/v1/auth/token/",
        json={"username": username, "password": PASSWORD, "device": "bench"},
    )
    if r.status_code != 200:
        raise SystemExit(f"login {username}: {r.status_code} {r.text[:200]}")
    return r.json()["access"]


def sql_targets(p: dict, token: str) -> tuple[dict, Callable[[bool], None], object, object]:
    """The bare SQL of one chain call (auth + scope, then the chain statement), over psycopg
    with Django's connection settings, unprepared and prepared; also the caller's query, the
    cursor and the connection (for the other SQL baselines)."""
    import math

    import psycopg
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from gridsvc.accounts.authentication import _user_scope_sql
    from gridsvc.chain import answer as chain

    db = settings.DATABASES["default"]
    conn = psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"],
                           password=db["PASSWORD"], dbname=db["NAME"], autocommit=True)  # fmt: skip
    conn.prepare_threshold = 1_000_000  # no auto-prepare: prepared only where asked
    cur = conn.cursor()
    user_sql, _ = _user_scope_sql(get_user_model())
    tol = float(settings.GRIDSVC["NEAREST_BUILDING_TOLERANCE_M"])

    def auth(prepare: bool, uid: int = p["user_id"]) -> None:
        cur.execute(user_sql, {"uid": uid, "dev": None, "now": timezone.now()},
                    prepare=prepare)  # fmt: skip
        cur.fetchall()

    def point(i: int, prepare: bool) -> None:
        lon, lat = p["points"][i % len(p["points"])]
        deg = tol / (111_320.0 * max(math.cos(math.radians(lat)), 0.01))
        auth(prepare)
        cur.execute(chain.SQL_POINT, {"lon": lon, "lat": lat, "deg": deg, "tol": tol,
                                      "now": timezone.now()}, prepare=prepare)  # fmt: skip
        cur.fetchall()

    def household(i: int, prepare: bool) -> None:
        auth(prepare)
        cur.execute(chain.SQL_REF["household"],
                    {"ref": p["households"][i % len(p["households"])], "now": timezone.now()},
                    prepare=prepare)  # fmt: skip
        cur.fetchall()

    return (
        {
            "sql chain point (unprepared)": lambda i: point(i, False),
            "sql chain point (prepared)": lambda i: point(i, True),
            "sql chain household (unprepared)": lambda i: household(i, False),
            "sql chain household (prepared)": lambda i: household(i, True),
        },
        auth,
        cur,
        conn,
    )


# ------------------------------------------------------------------- writes: report, visits
MARK = "bench-overhead"  # titles of the cases, purpose of the visits, prefix of the keys
CATEGORY = "neighbour.noise"


def report_body(p: dict, i: int) -> bytes:
    lon, lat = p["points"][i % len(p["points"])]
    return json.dumps({"category": CATEGORY, "title": f"{MARK}: 噪音扰民 {i}",
                       "lon": lon, "lat": lat}).encode()  # fmt: skip


def report_req(p: dict, token: str) -> Callable[[int], Req]:
    """POST /api/v1/cases/ as the phone sends it: a fresh ``Idempotency-Key`` each time."""

    def req(i: int) -> Req:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "Idempotency-Key": f"{MARK}-{uuid.uuid4()}"}  # fmt: skip
        return ("report + route", "POST", "/api/v1/cases/", headers, report_body(p, i), (201,))

    return req


def batch_body(p: dict, i: int, purpose: str = MARK) -> list[dict]:
    """500 fresh visits (new client UUIDs: real inserts) to households of the member's grid,
    dated 2024-03 (before any task period: they close no task)."""
    import bench_visits as bv

    rows = bv.make_rows(p["batch"], p["homes"], seed=random.getrandbits(62))  # fresh UUIDs
    for r in rows:
        r["purpose"] = purpose
    return rows


def batch_call(c: Client, p: dict, i: int):  # type: ignore[no-untyped-def]
    body = gzip.compress(json.dumps({"visits": batch_body(p, i)}).encode(), compresslevel=6)
    return c.request("POST", "/api/v1/visits/batch/", body=body, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip",
        "Idempotency-Key": f"{MARK}-{uuid.uuid4()}", "X-Device-Time": timezone_now().isoformat(),
    })  # fmt: skip


def timezone_now():  # type: ignore[no-untyped-def]
    from django.utils import timezone

    return timezone.now()


IDEM_CLAIM = """
    INSERT INTO sync_idempotencyrecord (member_id, key, method, path, body_hash, status,
        response_body, response_headers, created_at, completed_at)
    VALUES (%(member)s, %(key)s, 'POST', %(path)s, %(hash)s, NULL, NULL, '{}', now(), NULL)
    RETURNING id"""
IDEM_DONE = """
    UPDATE sync_idempotencyrecord SET status = %(status)s, response_body = %(body)s,
        response_headers = %(headers)s, completed_at = now() WHERE id = %(id)s"""
CATEGORY_SQL = """
    SELECT id, code, name, kind, parent_id, start_level, notify, duplicate_radius_m,
           duplicate_days, active
      FROM cases_category
     WHERE code = %(code)s OR id = (SELECT parent_id FROM cases_category WHERE code = %(code)s)"""
LIMITS_SQL = """
    SELECT category_id, stage, level, amount, unit FROM cases_timelimit
     WHERE category_id = ANY(%(cats)s) AND level IN (%(level)s, '') AND stage IN ('accept', 'handle')"""
CALENDAR_SQL = """
    SELECT date, is_workday FROM supervision_calendarday
     WHERE (street_id IS NULL OR street_id = %(street)s) AND date >= %(today)s
     ORDER BY date LIMIT 60"""
HOURS_SQL = """
    SELECT periods FROM supervision_workinghours WHERE street_id = %(street)s ORDER BY id LIMIT 1"""
INSERT_CASE = """
    INSERT INTO cases_case (number, kind, category_id, title, description, parties, priority,
        ethnic_religious, group_incident, petition_risk, source, external_ref, location,
        located_by, household_id, unit_id, building_id, compound_id, grid_id, community_id,
        street_id, suggested_grid_id, status, level, level_index, handler_id, department_id,
        reported_by_id, chain, route_reason, reported_at, accepted_at, assigned_at, resolved_at,
        verified_at, closed_at, updated_at, due_at, due_stage, due_source, due_set_by_id,
        stage_started_at, deadline_error, yellow_at, handle_due_at, card, red_cards,
        yellow_cards, deadline_version, supervised_at, outcome, resolved_level, resolved_by_id,
        rejection_reason, on_the_spot, hold_until, merged_into_id, escalations, reopened_count,
        reworked_count, sent_back_count, extended_count, version)
    VALUES (%(number)s, %(kind)s, %(category)s, %(title)s, '', '[]', 3, false, false, false,
        'app', '', ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(method)s, %(household)s,
        %(unit)s, %(building)s, %(compound)s, %(grid)s, %(community)s, %(street)s, NULL,
        'assigned', %(level)s, %(level_index)s, %(handler)s, NULL, %(reporter)s, %(chain)s,
        %(reason)s, %(now)s, %(now)s, %(now)s, NULL, NULL, NULL, %(now)s, %(due)s, 'accept',
        'rule', NULL, %(now)s, '', %(yellow)s, %(handle_due)s, '', 0, 0, 1, NULL, '', '', NULL,
        '', false, NULL, NULL, 0, 0, 0, 0, 0, 1)
    RETURNING id"""
EVENTS_SQL = """
    INSERT INTO cases_caseevent (case_id, kind, from_status, to_status, actor_id, at, location,
        note, data, level)
    VALUES (%(case)s, 'report', '', 'assigned', %(reporter)s, %(now)s,
            ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(title)s, %(report)s, %(level)s),
           (%(case)s, 'route', 'reported', 'assigned', NULL, %(now)s, NULL, %(reason)s,
            %(route)s, %(level)s)"""
INBOX_SQL = """
    INSERT INTO supervision_inboxmessage (member_id, kind, title, body, object_type, object_id,
        created_at, read_at, delivered_at)
    VALUES (%(handler)s, 'new_case', %(title)s, '', 'case', %(object)s, %(now)s, NULL, NULL)"""
JOBS_SQL = """
    SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[
        ROW('cases', 'cases.check', 0, NULL, NULL, %(args)s::jsonb, %(yellow)s::timestamptz)
            ::procrastinate_job_to_defer_v1,
        ROW('cases', 'cases.check', 0, NULL, NULL, %(args)s::jsonb, %(due)s::timestamptz)
            ::procrastinate_job_to_defer_v1]))"""
DUPLICATES_SQL = """
    SELECT id, number, title, status, reported_at FROM cases_case
     WHERE category_id = %(category)s AND status = ANY(%(open)s) AND reported_at >= %(since)s
       AND id <> %(case)s
       AND ST_DWithin(location::geography,
                      ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography, %(radius)s)
     ORDER BY reported_at DESC LIMIT 10"""


def sql_report_targets(p: dict, cur, conn, auth: Callable[[bool], None]) -> dict:  # type: ignore[no-untyped-def]
    """The honest SQL of ``POST /api/v1/cases/``, the same work as the service and no more: the
    caller and their scope, the Idempotency-Key record (claimed, then completed with the
    answer), the category (and its parent), locate + chain in one statement, the case number,
    the deadline lookups (time limits at the level, the street's calendar and working hours),
    the case row, its two events, the handler's inbox message, the two deadline jobs
    (procrastinate's defer function, one call), commit, then the nearby open duplicates."""
    import hashlib
    import math
    from datetime import timedelta

    from django.conf import settings
    from psycopg.types.json import Jsonb

    from gridsvc.cases.models import OPEN_STATUSES, Category
    from gridsvc.chain import answer as chain
    from gridsvc.chain.services import LEVEL_BY_NAME

    cat = Category.objects.get(code=CATEGORY)
    start = LEVEL_BY_NAME[cat.effective_start_level].index
    tol = float(settings.GRIDSVC["NEAREST_BUILDING_TOLERANCE_M"])
    open_statuses = [str(s) for s in OPEN_STATUSES]

    def report(i: int, prepare: bool) -> None:
        x = lambda sql, params=None: cur.execute(sql, params, prepare=prepare)  # noqa: E731
        lon, lat = p["points"][i % len(p["points"])]
        now = timezone_now()
        body = report_body(p, i)
        auth(prepare)
        with conn.transaction():
            x(IDEM_CLAIM, {"member": p["user_id"], "key": f"{MARK}-{uuid.uuid4()}",
                           "path": "/api/v1/cases/", "hash": hashlib.sha256(body).hexdigest()})  # fmt: skip
            record = cur.fetchone()[0]
            x(CATEGORY_SQL, {"code": CATEGORY})
            cats = cur.fetchall()
            deg = tol / (111_320.0 * max(math.cos(math.radians(lat)), 0.01))
            x(chain.SQL_POINT, {"lon": lon, "lat": lat, "deg": deg, "tol": tol, "now": now})
            res = chain.Resolved(tuple(cur.fetchone()))
            steps = chain.answer(res, now)["steps"]
            walked = [s for s in steps if s["level"] >= start]
            step = next((s for s in walked if s["status"] == "active"), walked[-1])
            handler = next((h["member_id"] for h in step["holders"] if not h["on_leave"]), None)
            x("SELECT nextval('cases_case_number_seq')")
            number = f"AJ{now:%Y}{cur.fetchone()[0]:07d}"
            x(LIMITS_SQL, {"cats": [c[0] for c in cats], "level": step["level_name"]})
            limits = cur.fetchall()
            x(CALENDAR_SQL, {"street": res.street_id, "today": now.date()})
            cur.fetchall()
            x(HOURS_SQL, {"street": res.street_id})
            cur.fetchall()
            hours = {stage: amount for _c, stage, _l, amount, _u in limits}
            due = now + timedelta(hours=hours.get("accept", 24))
            handle_due = now + timedelta(hours=hours.get("handle", 72))
            yellow = now + (due - now) * 0.6
            reason = f"{cat.name}: starts at {steps[start]['level_label']} → {step['level_label']}"
            title = f"{MARK}: sql {i}"
            x(INSERT_CASE, {
                "number": number, "kind": cat.kind, "category": cat.pk, "title": title,
                "lon": lon, "lat": lat, "method": res.method, "household": res.household_id,
                "unit": res.unit_id, "building": res.building_id, "compound": res.compound_id,
                "grid": res.grid_id, "community": res.community_id, "street": res.street_id,
                "level": step["level_name"], "level_index": step["level"], "handler": handler,
                "reporter": p["user_id"], "chain": Jsonb(steps), "reason": reason, "now": now,
                "due": due, "yellow": yellow, "handle_due": handle_due,
            })  # fmt: skip
            case_id = cur.fetchone()[0]
            x(EVENTS_SQL, {
                "case": case_id, "reporter": p["user_id"], "now": now, "lon": lon, "lat": lat,
                "title": title, "level": step["level_name"], "reason": reason,
                "report": Jsonb({"source": "app", "flags": []}),
                "route": Jsonb({"walked": [s["level_name"] for s in walked[: walked.index(step) + 1]],
                                "level": step["level_name"], "handler": handler, "queued": False}),
            })  # fmt: skip
            if handler is not None:
                x(INBOX_SQL, {"handler": handler, "title": f"新案件 {number}: {title}",
                              "object": str(case_id), "now": now})  # fmt: skip
            x(JOBS_SQL, {"args": Jsonb({"case_id": case_id, "version": 1}), "yellow": yellow,
                         "due": due})  # fmt: skip
            cur.fetchall()
            answer = {"case": {"id": case_id, "number": number, "title": title, "chain": steps,
                               "due_at": due.isoformat(), "handler": handler}}  # fmt: skip
            x(IDEM_DONE, {"status": 201, "body": json.dumps(answer).encode(),
                          "headers": Jsonb({"Content-Type": "application/json"}), "id": record})  # fmt: skip
        x(DUPLICATES_SQL, {"category": cat.pk, "open": open_statuses, "case": case_id,
                           "since": now - timedelta(days=cat.duplicate_days), "lon": lon,
                           "lat": lat, "radius": cat.duplicate_radius_m})  # fmt: skip
        cur.fetchall()

    return {
        "sql report + route (unprepared)": lambda i: report(i, False),
        "sql report + route (prepared)": lambda i: report(i, True),
    }


def sql_batch_target(p: dict, auth: Callable[[bool], None]) -> Callable[[int], None]:
    """The honest set-based SQL of a visit batch (``bench_visits.sql_honest``: the stored-UUID
    check, the territory check — households in the member's grid —, one ``INSERT … ON
    CONFLICT DO NOTHING RETURNING`` with the distance by PostGIS, the clock rows), with the
    caller's query and the Idempotency-Key record before it, in the same transaction."""
    import hashlib

    import bench_visits as bv

    raw = bv._connect()

    def batch(i: int) -> None:
        rows = batch_body(p, i)
        body = json.dumps({"visits": rows}).encode()
        auth(False)
        with raw.cursor() as c:
            c.execute(IDEM_CLAIM.replace("%(path)s", "'/api/v1/visits/batch/'"),
                      {"member": p["user_id"], "key": f"{MARK}-{uuid.uuid4()}",
                       "hash": hashlib.sha256(body).hexdigest()})  # fmt: skip
            record = c.fetchone()[0]
            c.execute(IDEM_DONE.replace("%(headers)s", "'{}'"),
                      {"status": 200, "body": b"x" * 2000, "id": record})  # fmt: skip
        bv.sql_honest(raw, rows, p["user_id"], p["grid_id"])  # commits

    batch.close = raw.close  # type: ignore[attr-defined]
    return batch


def cleanup() -> None:
    """Remove what the benchmark wrote: its cases (with their events, the inbox messages
    about them and their deadline jobs), visits and Idempotency-Key records."""
    import bench_visits as bv
    from django.db import connection

    from fixtures import city

    with connection.cursor() as cur:
        cur.execute(
            """DELETE FROM procrastinate_jobs WHERE status = 'todo' AND task_name = 'cases.check'
               AND (args->>'case_id')::bigint IN (SELECT id FROM cases_case WHERE title LIKE %s)""",
            [MARK + ":%"],
        )
        cur.execute("DELETE FROM sync_idempotencyrecord WHERE key LIKE %s", [MARK + "-%"])
        # the inbox messages about its cases (object_id is not a foreign key: matched by the
        # case's title in the message, which also finds those an interrupted run left)
        cur.execute(
            "DELETE FROM supervision_inboxmessage WHERE object_type = 'case' AND title LIKE %s",
            [f"%: {MARK}:%"],
        )
    city.remove(log=lambda m: None, city=False, extra_seeds=[
        ("cases_case", "title LIKE %s", [MARK + ":%"]),
        ("visits_visit", "purpose IN (%s, %s)", [MARK, bv.MARK_SQL]),
    ])  # fmt: skip


def before_tree(spec: str, name: str = "") -> tuple[Path, str]:
    """A checkout: a directory, or a commit made into a git worktree in the temp folder
    (``gridsvc-bench-<sha>``, or ``gridsvc-bench-<name>`` moved to the commit; reused by later
    runs). Returns the tree and its commit."""
    path = Path(spec)
    if path.is_dir():
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path,
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
        return path.resolve(), sha
    sha = subprocess.run(["git", "rev-parse", "--short", f"{spec}^{{commit}}"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    tree = Path(tempfile.gettempdir()) / f"gridsvc-bench-{name or sha}"
    if not (tree / "manage.py").exists():
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        log(f"  made git worktree {tree} at {sha}")
    elif name:
        subprocess.run(["git", "checkout", "--quiet", "--detach", "--force", sha], cwd=tree,
                       check=True)  # fmt: skip
    return tree, sha


def run_in_tree(spec: str, argv: list[str]) -> int:
    """Run this benchmark, servers and in-process parts alike, on a clean worktree of the
    commit ``spec`` (the working tree may hold other people's unfinished, unmigrated edits);
    the result file is copied back here."""
    tree, sha = before_tree(spec, "now")
    for name in (".venv", "var"):
        if not (tree / name).exists():
            (tree / name).symlink_to(ROOT / name)
    log(f"running on a clean worktree of {sha}: {tree}")
    t0 = time.time()
    rc = subprocess.run([sys.executable, str(tree / "bench" / "bench_overhead.py"), *argv],
                        cwd=tree, env={**os.environ, "BENCH_IN_TREE": sha}).returncode  # fmt: skip
    for f in (tree / "bench" / "results").glob("overhead-*.json"):
        if f.stat().st_mtime >= t0:
            (RESULTS / f.name).write_bytes(f.read_bytes())
            log(f"copied {f.name} to {RESULTS.relative_to(ROOT)}")
    return rc


def _nothing(body: dict) -> bool:
    """A feed answer with nothing in it (no rows, no purges, territory unchanged)."""
    for key, value in body.items():
        if isinstance(value, list) and value:
            return False
        if isinstance(value, dict) and any(value.values()):
            return False
        if key == "territory_changed" and value:
            return False
    return True


def member_day(port: int, token: str) -> dict:
    """Per server: the cursor after a first sync (for "nothing new") and a tile's ETag."""
    c = Client(port, token)
    feed = "/api/v1/sync/changes/"
    body = c.get(feed).json()
    while body.get("has_more"):
        body = c.get(f"{feed}?since={body['cursor']}").json()
    return {"nothing_new": f"{feed}?since={body['cursor']}"}


MIX = (  # a member's day, weighted as bench/locustfile.py's (a phone polls the feed most;
    # a first sync happens once per install, so it is not in the mix): 15 requests in turn
    "feed nothing new", "my tasks", "tile cached", "chain point", "feed nothing new",
    "tile 304", "my cases", "my tasks", "feed nothing new", "tile cached", "chain household",
    "feed nothing new", "my tasks", "tile 304", "report + route",
)  # fmt: skip


def run(args: argparse.Namespace) -> dict:  # noqa: PLR0915
    p = picks()
    w = p["writer"]  # the writes' member (another grid): report + route, visit batches
    w["batch"] = args.batch
    log(f"{p['where']}: as {p['username']}; variants {args.variants}")
    variants = [v for v in args.variants.split(",") if v]
    servers = [
        Proc(f"gunicorn-{v}", *gunicorn_cmd(v, port := free_port()), port=port) for v in variants
    ]
    result: dict = {"picks": {k: p[k] for k in ("username", "where", "cadre")}}
    result["picks"]["writer"] = w["username"]
    if args.before:
        # the older code served as it was then (default sync3-bare: serve.sh before issue 19) —
        # gridsvc, api and geo from there, the floor views from here — in the same loops
        before, sha = before_tree(args.before)  # gridsvc-bench-<sha>
        cmd, env = gunicorn_cmd(args.before_variant, port := free_port())
        env["PYTHONPATH"] = f"{before}:{ROOT}"
        proc = Proc("gunicorn-before", cmd, env, port=port)
        proc.cwd = before
        servers.append(proc)
        result["before"] = {"commit": sha, "variant": args.before_variant, "tree": str(before)}
    aport = free_port()
    anchor = Proc("anchor", [UVICORN, "bench.anchors.app:app", "--port", str(aport),
                             "--workers", "3", "--no-access-log", "--log-level", "warning"],
                  port=aport)  # fmt: skip
    pts, hhs = p["points"], p["households"]
    pt = lambda i: "lon={}&lat={}".format(*pts[i % len(pts)])  # noqa: E731
    hh = lambda i: f"household={hhs[i % len(hhs)]}"  # noqa: E731
    t_start = [time.perf_counter()]
    sql_batch = None
    cleanup()
    for s in servers:
        t0 = time.perf_counter()
        s.__enter__()
        log(f"  {s.name} listening after {time.perf_counter() - t0:.1f} s")
    try:
        anchor.__enter__()
        token = login(servers[0].port, p["username"])
        ctoken = login(servers[0].port, p["cadre"])
        wtoken = login(servers[0].port, w["username"])
        chain_paths = [f"/api/v1/chain/?{pt(0)}", f"/api/v1/chain/?{hh(0)}"]
        result["first_requests"] = {}
        for s in servers:
            wu = warm_up(s.port, ["/bench/floor/", "/bench/floor-auth/", *chain_paths], token)
            first = {"max_ms": round(max(wu), 1), "p99_ms": round(pct(wu, 0.99), 1),
                     "warm_median_ms": round(statistics.median(wu[-8:]), 2)}  # fmt: skip
            result["first_requests"][s.name] = first
            log(f"  {s.name} warm-up: slowest first request {first['max_ms']} ms")
        warm_up(aport, ["/floor", "/floor-auth", f"/chain?{pt(0)}", f"/chain?{hh(0)}"], token)
        targets: dict = {}
        every: dict[str, int] = {}  # targets timed every k-th round only (the batch of 500)
        ok_status: dict[str, int] = {}
        ac = Client(aport, token)
        targets["anchor floor"] = lambda i: ac.get("/floor")
        targets["anchor floor + JWT"] = lambda i: ac.get("/floor-auth")
        targets["anchor chain point"] = lambda i: ac.get(f"/chain?{pt(i)}")
        targets["anchor chain household"] = lambda i: ac.get(f"/chain?{hh(i)}")
        # the read paths of a member's day: my cases (a cadre), my tasks, the change feed
        # (first sync; nothing new since the last cursor), a tile of the member's grid from
        # the cache and revalidated (304); the writes: report + route a case, a visit batch
        tile_path = "/tiles/buildings/{}/{}/{}.mvt".format(*p["tile"])
        feed = "/api/v1/sync/changes/"
        day: dict[str, dict] = {}
        for s in servers:
            c = Client(s.port, token)
            cc = Client(s.port, ctoken)
            wc = Client(s.port, wtoken)
            v = s.name.removeprefix("gunicorn-")
            d = day[v] = member_day(s.port, token)
            d["etag"] = c.get(tile_path).headers.get("ETag") or ""
            for path in ("/api/v1/visit-tasks/?mine=1", feed, d["nothing_new"], tile_path):
                c.get(path)  # warm (and the tile cached)
            cc.get("/api/v1/cases/?mine=1")
            r = wc.request("POST", "/api/v1/cases/", body=report_body(w, 0),
                           headers={"Content-Type": "application/json"})  # fmt: skip
            if r.status_code != 201:
                raise RuntimeError(f"{v} report: {r.status_code} {r.text[:300]}")
            r = batch_call(wc, w, 0)
            if r.status_code != 200 or r.json()["summary"].get("accepted") != args.batch:
                raise RuntimeError(f"{v} visit batch: {r.status_code} {r.text[:300]}")
            targets[f"{v} floor"] = lambda i, c=c: c.get("/bench/floor/")
            targets[f"{v} floor + JWT"] = lambda i, c=c: c.get("/bench/floor-auth/")
            targets[f"{v} chain point"] = lambda i, c=c: c.get(f"/api/v1/chain/?{pt(i)}")
            targets[f"{v} chain household"] = lambda i, c=c: c.get(f"/api/v1/chain/?{hh(i)}")
            targets[f"{v} my cases"] = lambda i, c=cc: c.get("/api/v1/cases/?mine=1")
            targets[f"{v} my tasks"] = lambda i, c=c: c.get("/api/v1/visit-tasks/?mine=1")
            targets[f"{v} feed first sync"] = lambda i, c=c: c.get(feed)
            targets[f"{v} feed nothing new"] = lambda i, c=c, d=d: c.get(d["nothing_new"])
            targets[f"{v} tile cached"] = lambda i, c=c: c.get(tile_path)
            targets[f"{v} tile 304"] = lambda i, c=c, d=d: c.get(
                tile_path, headers={"If-None-Match": d["etag"]}
            )
            ok_status[f"{v} tile 304"] = 304
            targets[f"{v} report + route"] = lambda i, c=wc: c.request(
                "POST", "/api/v1/cases/", body=report_body(w, i),
                headers={"Content-Type": "application/json",
                         "Idempotency-Key": f"{MARK}-{uuid.uuid4()}"},
            )  # fmt: skip
            ok_status[f"{v} report + route"] = 201
            targets[f"{v} visit batch"] = lambda i, c=wc: batch_call(c, w, 1 + i)
            every[f"{v} visit batch"] = args.batch_every
        sql, auth, cur, conn = sql_targets(p, token)
        wauth = lambda prepare: auth(prepare, w["user_id"])  # noqa: E731
        sql.update(sql_report_targets(w, cur, conn, wauth))
        sql_batch = sql_batch_target(w, wauth)
        sql["sql visit batch (honest, set-based)"] = sql_batch
        every["sql visit batch (honest, set-based)"] = args.batch_every
        for name in ("sql report + route (unprepared)", "sql report + route (prepared)"):
            sql[name](0)  # warm (and prepared)
        sql_batch(0)
        # the answers agree (gridsvc's and the anchor's chain for the same point)
        first = servers[0].name.removeprefix("gunicorn-")
        a = targets["anchor chain point"](3).json()
        g = targets[f"{first} chain point"](3).json()
        a.pop("when"), g.pop("when")
        result["anchor_answer_equal"] = a == g
        times: dict[str, list[float]] = {name: [] for name in [*targets, *sql]}
        calls = {**targets, **sql}
        names = list(calls)
        rng = random.Random(1)
        dropped: dict[str, int] = {}
        settle = max(args.settle_ms, 0.0) / 1000
        result["settle_ms"] = args.settle_ms
        log(f"  interleaved: {args.n} rounds × {len(names)} targets "
            f"(visit batches every {args.batch_every} rounds)")  # fmt: skip
        for i in range(args.n):
            rng.shuffle(names)
            for name in names:
                if i % every.get(name, 1):
                    continue
                if settle:  # what the previous target left running (a process's exit, a
                    time.sleep(settle)  # connection's close) ends before this one is timed
                t = time.perf_counter()
                out = calls[name](i)
                ms = (time.perf_counter() - t) * 1000
                if out is not None and out.status_code != ok_status.get(name, 200):
                    raise RuntimeError(f"{name}: {out.status_code} {out.text[:200]}")
                if name.endswith(" feed nothing new"):
                    body = out.json()
                    if not _nothing(body):
                        # something changed in the member's territory meanwhile (another
                        # session writing to the same database): not a "nothing new" sample;
                        # the next poll starts from this answer's cursor
                        day[name.removesuffix(" feed nothing new")]["nothing_new"] = (
                            f"{feed}?since={body['cursor']}"
                        )
                        dropped[name] = dropped.get(name, 0) + 1
                        continue
                times[name].append(ms)
        result["latency"] = {
            name: {
                "median_ms": round(statistics.median(v), 3),
                "p90_ms": round(pct(v, 0.9), 3),
                "p99_ms": round(pct(v, 0.99), 3),
                "n": len(v),
            }  # fmt: skip
            for name, v in times.items()
            if v
        }
        for name, v in result["latency"].items():
            log(
                f"    {name:<40} {v['median_ms']:>8.2f} ms  p90 {v['p90_ms']:>8.2f}  p99 {v['p99_ms']:>8.2f}"
            )
        # closed loop: the chain for a point (anchor, floor, gridsvc), then the mix of a
        # member's day on gridsvc and on the older code, level by level, one after the other
        sat = []
        point_paths = [f"/api/v1/chain/?{pt(i)}" for i in range(len(pts))]
        chain_servers = [s for s in servers if s.name != "gunicorn-before"]
        for clients in [int(c) for c in args.concurrency.split(",") if c]:
            runs = [("anchor chain point", aport, [f"/chain?{pt(i)}" for i in range(len(pts))])]
            for s in chain_servers:
                v = s.name.removeprefix("gunicorn-")
                runs += [(f"{v} floor", s.port, ["/bench/floor/"]),
                         (f"{v} chain point", s.port, point_paths)]  # fmt: skip
            for label, port, paths in runs:
                r = asyncio.run(_closed_loop(port, token, paths, args.seconds, clients))
                r["target"] = label
                sat.append(r)
                log(
                    f"    closed loop c={clients:<3} {label:<28} {r['rps']:>7.1f} req/s  p50 {r['p50_ms']:>7.1f}  p99 {r['p99_ms']:>7.1f}  errors {r['errors']}"
                )
        result["saturation"] = sat
        if dropped:
            log(f"  polls that were not 'nothing new' (left out): {dropped}")
        result["not_nothing_new"] = dropped
        mix_servers = [servers[0]] + [s for s in servers if s.name == "gunicorn-before"]
        for s in mix_servers:  # a fresh cursor for the mix's polls
            day[s.name.removeprefix("gunicorn-")].update(member_day(s.port, token))
        mixes = []
        for clients in [int(c) for c in args.mix_concurrency.split(",") if c]:
            for s in mix_servers:
                v = s.name.removeprefix("gunicorn-")
                d = day[v]
                one = {
                    "feed nothing new": get_req("feed nothing new", d["nothing_new"], token),
                    "feed first sync": get_req("feed first sync", feed, token),
                    "my tasks": get_req("my tasks", "/api/v1/visit-tasks/?mine=1", token),
                    "my cases": get_req("my cases", "/api/v1/cases/?mine=1", ctoken),
                    "tile cached": get_req("tile cached", tile_path, token),
                    "tile 304": get_req("tile 304", tile_path, token,
                                        {"If-None-Match": d["etag"]}, (304,)),
                    "report + route": report_req(w, wtoken),
                }  # fmt: skip
                point = lambda i: get_req("chain point", f"/api/v1/chain/?{pt(i)}", token)(i)  # noqa: E731
                house = lambda i: get_req("chain household", f"/api/v1/chain/?{hh(i)}", token)(i)  # noqa: E731
                reqs = [point if op == "chain point" else house if op == "chain household"
                        else one[op] for op in MIX]  # fmt: skip
                r = asyncio.run(_closed_loop(s.port, token, None, args.mix_seconds, clients,
                                             reqs=reqs))  # fmt: skip
                r["target"] = v
                mixes.append(r)
                log(
                    f"    mix c={clients:<3} {v:<12} {r['rps']:>7.1f} req/s  p50 {r['p50_ms']:>7.1f}  p99 {r['p99_ms']:>7.1f}  errors {r['errors']}"
                )
        result["mix"] = mixes
    finally:
        anchor.__exit__()
        for s in servers:
            s.__exit__()
        if sql_batch is not None:
            sql_batch.close()  # type: ignore[attr-defined]
        cleanup()
    result["wall_s"] = round(time.perf_counter() - t_start[0], 1)
    return result


# ------------------------------------------------------------------------------ profile
def profile_report_route(p: dict, n: int) -> None:
    """pyinstrument over ``n`` in-process ``POST /api/v1/cases/`` as the bench's report-route
    op sends them (the writer, a member of another grid; a fresh Idempotency-Key each), then
    what they wrote is deleted (:func:`cleanup`), so repeated runs do not pile up cases."""
    from pyinstrument import Profiler
    from rest_framework.test import APIClient

    w = p["writer"]
    c = APIClient()
    r = c.post("/api/v1/auth/token/",
               {"username": w["username"], "password": PASSWORD, "device": "bench"}, format="json")  # fmt: skip
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['access']}")

    def post(i: int) -> None:
        r = c.generic("POST", "/api/v1/cases/", report_body(w, i), "application/json",
                      HTTP_IDEMPOTENCY_KEY=f"{MARK}-{uuid.uuid4()}")  # fmt: skip
        if r.status_code != 201:
            raise RuntimeError(f"report: {r.status_code} {r.content[:300]!r}")

    try:
        for i in range(5):
            post(i)
        prof = Profiler(interval=0.0002)
        prof.start()
        for i in range(n):
            post(i)
        prof.stop()
        print(prof.output_text(unicode=True, color=False, show_all=False))
    finally:
        cleanup()


def profile(name: str, n: int) -> None:
    """pyinstrument over ``n`` in-process calls of ``name`` (chain-point, chain-household,
    me, my-tasks, my-cases, feed-first-sync, feed-nothing-new, tile-cached, tile-304,
    report-route) through the whole stack (middleware, DRF, JWT)."""
    from pyinstrument import Profiler
    from rest_framework.test import APIClient

    p = picks()
    if name == "report-route":
        profile_report_route(p, n)
        return
    c = APIClient()
    r = c.post("/api/v1/auth/token/",
               {"username": p["username"], "password": PASSWORD, "device": "bench"}, format="json")  # fmt: skip
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['access']}")
    pts, hhs = p["points"], p["households"]
    paths = {
        "chain-point": lambda i: "/api/v1/chain/?lon={}&lat={}".format(*pts[i % len(pts)]),
        "chain-household": lambda i: f"/api/v1/chain/?household={hhs[i % len(hhs)]}",
        "me": lambda i: "/api/v1/me/",
        "my-tasks": lambda i: "/api/v1/visit-tasks/?mine=1",
        "my-cases": lambda i: "/api/v1/cases/?mine=1",
        "feed-first-sync": lambda i: "/api/v1/sync/changes/",
    }
    headers: dict = {}
    if name == "feed-nothing-new":  # the cursor after a first sync, polled again
        body = c.get("/api/v1/sync/changes/").json()
        while body.get("has_more"):
            body = c.get(f"/api/v1/sync/changes/?since={body['cursor']}").json()
        paths[name] = lambda i, cur=body["cursor"]: f"/api/v1/sync/changes/?since={cur}"
    if name in ("tile-cached", "tile-304"):  # a tile of the member's grid, from the cache
        tile = "/tiles/buildings/{}/{}/{}.mvt".format(*p["tile"])
        paths[name] = lambda i: tile
        if name == "tile-304":
            headers["HTTP_IF_NONE_MATCH"] = c.get(tile).headers.get("ETag") or ""
    for i in range(5):
        c.get(paths[name](i), **headers)
    prof = Profiler(interval=0.0002)
    prof.start()
    for i in range(n):
        c.get(paths[name](i), **headers)
    prof.stop()
    print(prof.output_text(unicode=True, color=False, show_all=False))


# ------------------------------------------------------------------------------ the table
# (operation label, key in the result, target: (kind, amount, text))
ROWS = (
    ("chain for a point", "chain point", ("floor+anchor", 2.0, "≤ floor + 2 and ≤ 1.3× anchor")),
    ("chain for a household", "chain household", ("floor", 2.5, "≤ floor + 2.5")),
    ("report + route a case", "report + route", ("sql", 1.3, "≤ floor + 1.3× its SQL")),
    ("my cases (a cadre)", "my cases", ("floor", 5.0, "≤ floor + 5")),
    ("my tasks", "my tasks", ("floor", 4.0, "≤ floor + 4")),
    ("change feed, nothing new", "feed nothing new", ("floor", 2.0, "≤ floor + 2")),
    ("change feed, first sync", "feed first sync", ("floor", 10.0, "≤ floor + 10")),
    ("cached tile, as a grid member", "tile cached", ("floor", 1.0, "≤ floor + 1")),
    ("tile 304, as a grid member", "tile 304", ("floor", 1.0, "≤ floor + 1")),
    ("visit batch of 500", "visit batch", ("absolute", 150.0, "≤ 150 ms")),
    ("floor + JWT (user, device, scope)", "floor + JWT", None),
    ("floor (trivial view, no database)", "floor", None),
)
SQL_OF = {
    "chain point": ("sql chain point (unprepared)", "sql chain point (prepared)"),
    "chain household": ("sql chain household (unprepared)", "sql chain household (prepared)"),
    "report + route": ("sql report + route (unprepared)", "sql report + route (prepared)"),
    "visit batch": ("sql visit batch (honest, set-based)", None),
}
ANCHOR_OF = {"chain point": "anchor chain point", "chain household": "anchor chain household",
             "floor + JWT": "anchor floor + JWT", "floor": "anchor floor"}  # fmt: skip


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.1f}" if v >= 100 else f"{v:.2f}"


def _met(kind: str, amount: float, f: float, g: float, a: float | None,
         su: float | None, sp: float | None) -> str:  # fmt: skip
    if kind == "floor":
        return "yes" if g <= f + amount else "no"
    if kind == "floor+anchor":
        ok_floor, ok_anchor = g <= f + amount, a is not None and g <= 1.3 * a
        return ("yes" if ok_floor and ok_anchor else
                f"no ({'floor ok' if ok_floor else 'floor no'}, "
                f"{'anchor ok' if ok_anchor else 'anchor no'})")  # fmt: skip
    if kind == "absolute":
        return "yes" if g <= amount else "no"
    if kind == "sql" and su is not None:
        out = f"vs unprepared ({f + amount * su:.1f}): {'yes' if g <= f + amount * su else 'no'}"
        if sp is not None:
            out += (
                f"; vs prepared ({f + amount * sp:.1f}): {'yes' if g <= f + amount * sp else 'no'}"
            )
        return out
    return "–"


def markdown_table(path: Path | None = None) -> str:
    """The README table of a result: floor, anchor, gridsvc (and the older code), the honest
    SQL, target and whether it is met per operation; the mix's closed loops; the machine."""
    files = sorted(RESULTS.glob("overhead-*.json"), key=lambda f: f.stat().st_mtime)
    if path is None and not files:
        return "(no overhead result yet)"
    path = path or files[-1]
    res = json.loads(path.read_text())
    lat = res["latency"]
    med = lambda k: lat[k]["median_ms"] if k in lat else None  # noqa: E731
    v = next(x for x in res["variants"] if x != "before")
    has_before = "before" in res["variants"]
    before = res.get("before") or {}
    m = res.get("machine", {})
    la, lb = m.get("load_average") or [], m.get("load_average_after") or []
    out = [
        f"`bench/results/{path.name}`: {res['date']}, {res['picks']['where']} (as "
        f"{res['picks']['username']}; my cases as {res['picks']['cadre']}), gridsvc at commit "
        f"{m.get('git_commit')} served as `{v}`"
        + (f", before = commit {before.get('commit', '?')} served as `{before.get('variant')}`"
           if has_before else "")
        + f"; medians of {lat[f'{v} floor']['n']} interleaved rounds"
        + (f" ({lat[f'{v} visit batch']['n']} visit batches)" if f"{v} visit batch" in lat else "")
        + f", ms. Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, load average "
        f"{' / '.join(f'{x:.1f}' for x in la)} before"
        + (f", {' / '.join(f'{x:.1f}' for x in lb)} after" if lb else "")
        + f"; anchor answers equal to gridsvc's: {res.get('anchor_answer_equal')}"
        + (
            "; feed polls left out as not 'nothing new' (another session wrote to the "
            "member's territory meanwhile): "
            + ", ".join(f"{k.split()[0]} {n}" for k, n in res["not_nothing_new"].items())
            if res.get("not_nothing_new")
            else ""
        )
        + ".",
        "",
        "| operation | floor | anchor | gridsvc | " + ("before | " if has_before else "")
        + "gridsvc − floor | gridsvc / anchor | SQL unprepared / prepared | target | met |",
        "|---|---:|---:|---:|" + ("---:|" if has_before else "") + "---:|---:|---:|---|---|",
    ]  # fmt: skip
    floor = med(f"{v} floor")
    assert floor is not None
    for label, key, target in ROWS:
        g = med(f"{v} {key}")
        if g is None:
            continue
        f = 0.0 if key == "visit batch" else floor
        a = med(ANCHOR_OF[key]) if key in ANCHOR_OF else None
        su_key, sp_key = SQL_OF.get(key, (None, None))
        su = med(su_key) if su_key else None
        sp = med(sp_key) if sp_key else None
        sql = "–" if su is None else _fmt(su) + (f" / {_fmt(sp)}" if sp is not None else "")
        b = med(f"before {key}") if has_before else None
        met = "–" if target is None else _met(target[0], target[1], f, g, a, su, sp)
        out.append(
            f"| {label} | {_fmt(floor) if key != 'visit batch' else '–'} | {_fmt(a)} | {_fmt(g)} | "
            + (f"{_fmt(b)} | " if has_before else "")
            + (f"{_fmt(g - floor)} | " if key not in ("visit batch", "floor") else "– | ")
            + (f"{g / a:.2f}× | " if a else "– | ")
            + f"{sql} | {target[2] if target else '–'} | {met} |"
        )  # fmt: skip
    mix = res.get("mix") or []
    if mix:
        now = {r["clients"]: r for r in mix if r["target"] != "before"}
        old = {r["clients"]: r for r in mix if r["target"] == "before"}
        out += ["", "Realistic mix, closed loop (no think time; chain, my cases, my tasks, feed, "
                "tile, report; 15 requests in turn per client, `MIX` in bench_overhead.py); "
                "target ≥ 2× the older code's req/s, 0 errors:", "",
                "| clients | gridsvc req/s | p50 ms | p99 ms | errors | before req/s | p50 ms | "
                "p99 ms | errors | gridsvc / before | met |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
        for c, r in now.items():
            o = old.get(c)
            ratio = r["rps"] / o["rps"] if o and o["rps"] else None
            met = ("yes" if ratio and ratio >= 2 and not r["errors"] else "no") if o else "–"
            out.append(
                f"| {c} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | "
                + (f"{o['rps']} | {o['p50_ms']} | {o['p99_ms']} | {o['errors']} | {ratio:.2f}× | "
                   if o else "– | – | – | – | – | ")
                + f"{met} |"
            )  # fmt: skip
    sat = res.get("saturation") or []
    if sat:
        out += ["", "Closed loop, chain for a point (floor: the trivial view):", "",
                "| target | clients | req/s | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in sat:
            out.append(f"| {r['target']} | {r['clients']} | {r['rps']} | {r['p50_ms']} | "
                       f"{r['p99_ms']} | {r['errors']} |")  # fmt: skip
    first = res.get("first_requests") or {}
    if first:
        out += ["", "Slowest of each worker's first requests (a concurrent burst right after "
                "start; what a user meets after a deploy or a worker restart):", "",
                "| server | slowest first request ms | warm median ms |", "|---|---:|---:|"]  # fmt: skip
        for name, f in first.items():
            out.append(
                f"| {name.removeprefix('gunicorn-')} | {f['max_ms']} | {f['warm_median_ms']} |"
            )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--variants", default="gthread2x4")
    ap.add_argument("--concurrency", default="8,32", help="closed loops of the chain")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--mix-concurrency", default="8,32,128", help="closed loops of the mix")
    ap.add_argument("--mix-seconds", type=float, default=8.0)
    ap.add_argument("--batch", type=int, default=500, help="visits in a batch")
    ap.add_argument("--batch-every", type=int, default=10, help="a batch every k-th round")
    ap.add_argument(
        "--settle-ms", type=float, default=0.0,
        help="pause before each timed request of the interleaved loop (0: back to back)",
    )  # fmt: skip
    ap.add_argument("--profile", default="")
    ap.add_argument(
        "--before",
        default="",
        help="older code to A/B in the same run: a checkout, or a commit (made into a git "
        "worktree), e.g. f5fdbda^ (the tree before issue 19's work began)",
    )
    ap.add_argument(
        "--before-variant",
        default="sync3-bare",
        help="how the older checkout is served (sync3-bare: as serve.sh before issue 19; "
        "gthread2x4: its gunicorn_conf.py, to A/B code alone)",
    )
    ap.add_argument("--table", nargs="?", const="latest", default="",
                    help="print the README table of the latest result (or of this file)")  # fmt: skip
    ap.add_argument(
        "--tree",
        default="",
        help="run on a clean git worktree of this commit (e.g. HEAD) instead of the working tree",
    )
    args = ap.parse_args()
    if args.tree and not args.table and not args.profile:
        argv = sys.argv[1:]
        k = argv.index("--tree") if "--tree" in argv else -1
        argv = (
            argv[:k] + argv[k + 2 :] if k >= 0 else [a for a in argv if not a.startswith("--tree=")]
        )
        raise SystemExit(run_in_tree(args.tree, argv))
    if args.table:
        print(markdown_table(None if args.table == "latest" else Path(args.table).resolve()))
        return
    if args.profile:
        profile(args.profile, args.n)
        return
    import run as city_run  # machine_info: cpu, cores, PostgreSQL, commit, load

    machine = city_run.machine_info()
    result = {"date": date.today().isoformat(), "machine": machine,
              "variants": [v for v in args.variants.split(",") if v]
              + (["before"] if args.before else [])}  # fmt: skip
    result.update(run(args))
    result["machine"]["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"overhead-{result['date']}.json"
    if out.exists():  # a second run the same day keeps the first
        out = RESULTS / f"overhead-{result['date']}-{time.strftime('%H%M')}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    log(f"\nwrote {out.relative_to(ROOT)}\n")
    print(markdown_table(out))


if __name__ == "__main__":
    main()
