"""The fixed cost of a request, measured honestly: gridsvc beside its floor and an anchor.

    .venv/bin/python bench/bench_overhead.py [-n 300] [--variants sync3,gthread2x4]
                                             [--concurrency 8,32] [--seconds 6]
    .venv/bin/python bench/bench_overhead.py --table     # README table of the latest result
    .venv/bin/python bench/bench_overhead.py --profile chain-point   # pyinstrument, in-process

Uses the city loaded in the dev database (``bench/run.py --size small`` or ``manage.py
load_city --size small``; else the demo street) and starts, on free loopback ports, with
production settings (DEBUG off, no background worker):

- gridsvc under gunicorn, once per ``--variants`` entry (``sync3``: 3 sync workers as
  scripts/serve.sh; ``gthread2x4``: 2 workers × 4 threads; a ``p`` suffix adds ``--preload``),
  each with ``--no-control-socket`` (gunicorn 27's control socket in the home folder would
  clobber a running server's) and the floor views of :mod:`bench.anchors.floor`;
- the anchor (:mod:`bench.anchors.app`, Starlette + asyncpg under uvicorn, 3 workers).

Every worker's first requests are made before timing (a warm-up over fresh connections).
Then, **interleaved** in one loop (each round visits every target in a shuffled order, so
the machine's load hits all of them alike), with a light client (a raw socket, persistent
when the server keeps it open; ~0.05 ms per call):

- floor: a trivial Django view (middleware, no database) and the same behind DRF + JWT;
- the anchor's floor and its chain for a point / a household;
- gridsvc's chain for a point / a household;
- the bare SQL of the same work (the auth + scope query, then the chain statement) over
  psycopg, unprepared (as Django sends it) and prepared (server-side).

Then closed-loop saturation: ``--concurrency`` clients with no think time for ``--seconds``
each against the floor, gridsvc's and the anchor's chain for a point (req/s, p50, p99,
errors). Writes bench/results/overhead-<date>.json. Measurements, not a pass/fail test; the
machine (2 cores) is shared, so compare columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import benchenv  # noqa: E402

benchenv.apply()

import django  # noqa: E402

django.setup()

from httpclient import Client, parse_head  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var"
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
UVICORN = str(ROOT / ".venv" / "bin" / "uvicorn")
PASSWORD = "gridsvc-demo"


def log(msg: str) -> None:
    print(msg, flush=True)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------- the light client
def _parse_head(head: bytes) -> tuple[int, int, bool]:
    status, headers = parse_head(head)
    close = headers.get("Connection", "").lower() == "close"
    return status, int(headers.get("Content-Length", 0)), close


async def _closed_loop(
    port: int, token: str, paths: list[str], seconds: float, clients: int, keep: list | None = None
) -> dict:
    """``clients`` concurrent clients, no think time, for ``seconds``."""
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    head_tail = f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"

    async def one(k: int) -> None:
        nonlocal errors
        reader = writer = None
        i = k
        while time.perf_counter() < stop:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            path = paths[i % len(paths)]
            i += clients
            t = time.perf_counter()
            try:
                writer.write(f"GET {path} HTTP/1.1\r\n{head_tail}".encode())
                head = await reader.readuntil(b"\r\n\r\n")  # type: ignore[union-attr]
                status, length, close = _parse_head(head[:-4])
                await reader.readexactly(length)  # type: ignore[union-attr]
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                errors += 1
                writer.close()
                reader = writer = None
                continue
            lat.append((time.perf_counter() - t) * 1000)
            if status != 200:
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
    return {
        "clients": clients,
        "requests": len(lat),
        "rps": round(len(lat) / wall, 1),
        "p50_ms": round(pct(lat, 0.5), 2),
        "p99_ms": round(pct(lat, 0.99), 2),
        "errors": errors,
    }


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
    return {"username": username, "user_id": user.pk, "where": where, "cadre": cadre,
            "households": households, "points": points, "tile": tile}  # fmt: skip


def login(port: int, username: str) -> str:
    r = Client(port).post(
        "/api/v1/auth/token/",
        json={"username": username, "password": PASSWORD, "device": "bench"},
    )
    if r.status_code != 200:
        raise SystemExit(f"login {username}: {r.status_code} {r.text[:200]}")
    return r.json()["access"]


def sql_targets(p: dict, token: str) -> dict:
    """The bare SQL of one chain call (auth + scope, then the chain statement), over psycopg
    with Django's connection settings, unprepared and prepared."""
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

    def auth(prepare: bool) -> None:
        cur.execute(user_sql, {"uid": p["user_id"], "dev": None, "now": timezone.now()},
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

    return {
        "sql chain point (unprepared)": lambda i: point(i, False),
        "sql chain point (prepared)": lambda i: point(i, True),
        "sql chain household (unprepared)": lambda i: household(i, False),
        "sql chain household (prepared)": lambda i: household(i, True),
    }


def run(args: argparse.Namespace) -> dict:
    p = picks()
    log(f"{p['where']}: as {p['username']}; variants {args.variants}")
    variants = [v for v in args.variants.split(",") if v]
    servers = [
        Proc(f"gunicorn-{v}", *gunicorn_cmd(v, port := free_port()), port=port) for v in variants
    ]
    if args.before:
        # the same server (sync3, as serve.sh ran it: no config) on an older checkout — gridsvc,
        # api and geo from there, the floor views from here — for an A/B in the same loop
        before = Path(args.before).resolve()
        cmd, env = gunicorn_cmd(args.before_variant, port := free_port())
        env["PYTHONPATH"] = f"{before}:{ROOT}"
        proc = Proc("gunicorn-before", cmd, env, port=port)
        proc.cwd = before
        servers.append(proc)
    aport = free_port()
    anchor = Proc("anchor", [UVICORN, "bench.anchors.app:app", "--port", str(aport),
                             "--workers", "3", "--no-access-log", "--log-level", "warning"],
                  port=aport)  # fmt: skip
    pts, hhs = p["points"], p["households"]
    pt = lambda i: "lon={}&lat={}".format(*pts[i % len(pts)])  # noqa: E731
    hh = lambda i: f"household={hhs[i % len(hhs)]}"  # noqa: E731
    result: dict = {"picks": {k: p[k] for k in ("username", "where", "cadre")}}
    t_start = [time.perf_counter()]
    for s in servers:
        t0 = time.perf_counter()
        s.__enter__()
        log(f"  {s.name} listening after {time.perf_counter() - t0:.1f} s")
    try:
        anchor.__enter__()
        token = login(servers[0].port, p["username"])
        chain_paths = [f"/api/v1/chain/?{pt(0)}", f"/api/v1/chain/?{hh(0)}"]
        result["first_requests"] = {}
        for s in servers:
            w = warm_up(s.port, ["/bench/floor/", "/bench/floor-auth/", *chain_paths], token)
            first = {"max_ms": round(max(w), 1), "p99_ms": round(pct(w, 0.99), 1),
                     "warm_median_ms": round(statistics.median(w[-8:]), 2)}  # fmt: skip
            result["first_requests"][s.name] = first
            log(f"  {s.name} warm-up: slowest first request {first['max_ms']} ms")
        warm_up(aport, ["/floor", "/floor-auth", f"/chain?{pt(0)}", f"/chain?{hh(0)}"], token)
        targets: dict = {}
        ac = Client(aport, token)
        targets["anchor floor"] = lambda i: ac.get("/floor")
        targets["anchor floor + JWT"] = lambda i: ac.get("/floor-auth")
        targets["anchor chain point"] = lambda i: ac.get(f"/chain?{pt(i)}")
        targets["anchor chain household"] = lambda i: ac.get(f"/chain?{hh(i)}")
        for s in servers:
            c = Client(s.port, token)
            v = s.name.removeprefix("gunicorn-")
            targets[f"{v} floor"] = lambda i, c=c: c.get("/bench/floor/")
            targets[f"{v} floor + JWT"] = lambda i, c=c: c.get("/bench/floor-auth/")
            targets[f"{v} chain point"] = lambda i, c=c: c.get(f"/api/v1/chain/?{pt(i)}")
            targets[f"{v} chain household"] = lambda i, c=c: c.get(f"/api/v1/chain/?{hh(i)}")
        # the read paths of a member's day (issue 19, second part): my cases (a cadre), my
        # tasks, the change feed (first sync; nothing new since the last cursor), a tile of
        # the member's grid from the cache and revalidated (304)
        ctoken = login(servers[0].port, p["cadre"])
        tile_path = "/tiles/buildings/{}/{}/{}.mvt".format(*p["tile"])
        feed = "/api/v1/sync/changes/"
        c0 = Client(servers[0].port, token)
        body = c0.get(feed).json()
        while body.get("has_more"):
            body = c0.get(f"{feed}?since={body['cursor']}").json()
        nothing_new = f"{feed}?since={body['cursor']}"
        tile_etag = c0.get(tile_path).headers.get("ETag") or ""
        ok304 = set()
        for s in servers:
            c = Client(s.port, token)
            cc = Client(s.port, ctoken)
            v = s.name.removeprefix("gunicorn-")
            for path in (
                "/api/v1/cases/?mine=1",
                "/api/v1/visit-tasks/?mine=1",
                feed,
                nothing_new,
                tile_path,
            ):
                (cc if "cases" in path else c).get(path)  # warm (and the tile cached)
            targets[f"{v} my cases"] = lambda i, c=cc: c.get("/api/v1/cases/?mine=1")
            targets[f"{v} my tasks"] = lambda i, c=c: c.get("/api/v1/visit-tasks/?mine=1")
            targets[f"{v} feed first sync"] = lambda i, c=c: c.get(feed)
            targets[f"{v} feed nothing new"] = lambda i, c=c: c.get(nothing_new)
            targets[f"{v} tile cached"] = lambda i, c=c: c.get(tile_path)
            targets[f"{v} tile 304"] = lambda i, c=c: c.get(
                tile_path, headers={"If-None-Match": tile_etag}
            )
            ok304.add(f"{v} tile 304")
        sql = sql_targets(p, token)
        # the answers agree (gridsvc's and the anchor's chain for the same point)
        first = servers[0].name.removeprefix("gunicorn-")
        a = targets["anchor chain point"](3).json()
        g = targets[f"{first} chain point"](3).json()
        a.pop("when"), g.pop("when")
        result["anchor_answer_equal"] = a == g
        times: dict[str, list[float]] = {name: [] for name in [*targets, *sql]}
        calls = {**targets, **{k: v for k, v in sql.items()}}
        names = list(calls)
        rng = random.Random(1)
        log(f"  interleaved: {args.n} rounds × {len(names)} targets")
        for i in range(args.n):
            rng.shuffle(names)
            for name in names:
                t = time.perf_counter()
                out = calls[name](i)
                times[name].append((time.perf_counter() - t) * 1000)
                if out is not None and out.status_code != (304 if name in ok304 else 200):
                    raise RuntimeError(f"{name}: {out.status_code} {out.text[:200]}")
        result["latency"] = {
            name: {
                "median_ms": round(statistics.median(v), 3),
                "p90_ms": round(pct(v, 0.9), 3),
                "p99_ms": round(pct(v, 0.99), 3),
                "n": len(v),
            }  # fmt: skip
            for name, v in times.items()
        }
        for name, v in result["latency"].items():
            log(
                f"    {name:<36} {v['median_ms']:>8.2f} ms  p90 {v['p90_ms']:>8.2f}  p99 {v['p99_ms']:>8.2f}"
            )
        # closed loop
        sat = []
        point_paths = [f"/api/v1/chain/?{pt(i)}" for i in range(len(pts))]
        for clients in [int(c) for c in args.concurrency.split(",") if c]:
            runs = [("anchor chain point", aport, [f"/chain?{pt(i)}" for i in range(len(pts))])]
            for s in servers:
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
    finally:
        anchor.__exit__()
        for s in servers:
            s.__exit__()
    result["wall_s"] = round(time.perf_counter() - t_start[0], 1)
    return result


# ------------------------------------------------------------------------------ profile
def profile(name: str, n: int) -> None:
    """pyinstrument over ``n`` in-process calls of ``name`` (chain-point, chain-household,
    floor-auth) through the whole stack (middleware, DRF, JWT)."""
    from pyinstrument import Profiler
    from rest_framework.test import APIClient

    p = picks()
    c = APIClient()
    r = c.post("/api/v1/auth/token/",
               {"username": p["username"], "password": PASSWORD, "device": "bench"}, format="json")  # fmt: skip
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['access']}")
    pts, hhs = p["points"], p["households"]
    paths = {
        "chain-point": lambda i: "/api/v1/chain/?lon={}&lat={}".format(*pts[i % len(pts)]),
        "chain-household": lambda i: f"/api/v1/chain/?household={hhs[i % len(hhs)]}",
        "me": lambda i: "/api/v1/me/",
    }
    for i in range(5):
        c.get(paths[name](i))
    prof = Profiler(interval=0.0002)
    prof.start()
    for i in range(n):
        c.get(paths[name](i))
    prof.stop()
    print(prof.output_text(unicode=True, color=False, show_all=False))


# ------------------------------------------------------------------------------ the table
def markdown_table(path: Path | None = None) -> str:
    files = sorted(RESULTS.glob("overhead-*.json"), key=lambda f: f.stat().st_mtime)
    if path is None and not files:
        return "(no overhead result yet)"
    res = json.loads((path or files[-1]).read_text())
    lat = res["latency"]
    out = []
    for v in res["variants"]:
        floor = lat[f"{v} floor"]["median_ms"]
        out += [f"gridsvc as `{v}`, medians of {lat[f'{v} floor']['n']} interleaved calls (ms):", "",
                "| operation | floor | anchor | gridsvc | gridsvc − floor | gridsvc / anchor | bare SQL (unprepared / prepared) |",
                "|---|---|---|---|---|---|---|"]  # fmt: skip
        for op in ("point", "household"):
            a = lat[f"anchor chain {op}"]["median_ms"]
            g = lat[f"{v} chain {op}"]["median_ms"]
            su = lat[f"sql chain {op} (unprepared)"]["median_ms"]
            sp = lat[f"sql chain {op} (prepared)"]["median_ms"]
            out.append(f"| chain for a {op} | {floor:.2f} | {a:.2f} | {g:.2f} | {g - floor:.2f} | "
                       f"{g / a:.2f}× | {su:.2f} / {sp:.2f} |")  # fmt: skip
        fa = lat[f"{v} floor + JWT"]["median_ms"]
        aa = lat["anchor floor + JWT"]["median_ms"] if "anchor floor + JWT" in lat else None
        out.append(f"| floor + JWT auth (user, device, scope) | {floor:.2f} | "
                   + (f"{aa:.2f}" if aa else "") + f" | {fa:.2f} | {fa - floor:.2f} | "
                   + (f"{fa / aa:.2f}×" if aa else "") + " | |")  # fmt: skip
        for op, label, target in (
            ("my cases", "my cases (a cadre)", 5),
            ("my tasks", "my tasks", 4),
            ("feed nothing new", "change feed, nothing new", 2),
            ("feed first sync", "change feed, first sync", 10),
            ("tile cached", "cached tile, as a grid member", 1),
            ("tile 304", "tile 304, as a grid member", 1),
        ):
            if f"{v} {op}" in lat:
                g = lat[f"{v} {op}"]["median_ms"]
                out.append(f"| {label} (target floor + {target}) | {floor:.2f} | – | {g:.2f} | "
                           f"{g - floor:.2f} | – | |")  # fmt: skip
        out.append(f"| floor (trivial view, no database) | {floor:.2f} | "
                   f"{lat['anchor floor']['median_ms']:.2f} | {floor:.2f} | 0 | "
                   f"{floor / lat['anchor floor']['median_ms']:.2f}× | |")  # fmt: skip
        out.append("")
    sat = res.get("saturation") or []
    if sat:
        out += ["Closed loop (no think time), chain for a point unless named:", "",
                "| target | clients | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]  # fmt: skip
        for r in sat:
            out.append(f"| {r['target']} | {r['clients']} | {r['rps']} | {r['p50_ms']} | "
                       f"{r['p99_ms']} | {r['errors']} |")  # fmt: skip
    first = res.get("first_requests") or {}
    if first:
        out += ["", "Slowest of each worker's first requests (a concurrent burst right after "
                "start; what a user meets after a deploy or a worker restart):", "",
                "| server | slowest first request ms | warm median ms |", "|---|---|---|"]  # fmt: skip
        for name, f in first.items():
            out.append(
                f"| {name.removeprefix('gunicorn-')} | {f['max_ms']} | {f['warm_median_ms']} |"
            )
    m = res.get("machine", {})
    out.append("")
    out.append(f"({res['date']}, {res['picks']['where']}, commit {m.get('git_commit')}, "
               f"{m.get('cores')} cores, load average before {m.get('load_average')}; "
               f"anchor answers equal to gridsvc's: {res.get('anchor_answer_equal')})")  # fmt: skip
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--variants", default="sync3,gthread2x4")
    ap.add_argument("--concurrency", default="8,32")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--profile", default="")
    ap.add_argument("--before", default="", help="an older checkout (git worktree) to A/B")
    ap.add_argument(
        "--before-variant",
        default="sync3-bare",
        help="how the older checkout is served (sync3-bare: as serve.sh before issue 19; "
        "gthread2x4: its gunicorn_conf.py, to A/B code alone)",
    )
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    if args.table:
        print(markdown_table())
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
