"""``make cluster`` against the single process, on this machine, in one interleaved run
(issue 23 item 5; docs/scaling.md, "Cluster against one process").

    .venv/bin/python bench/bench_cluster.py [--rounds 3] [--seconds 8] [--concurrency 8,32]
        [--users 40] [--locust-seconds 30] [--no-locust]
    .venv/bin/python bench/bench_cluster.py --table [result.json]   # the table for the docs

Needs the cluster up (``make cluster``: nginx on ``NGINX_PORT``, default 8080) on the dev
database with the demo street. Starts beside it one gunicorn as ``scripts/serve.sh`` runs it
(gridsvc/gunicorn_conf.py: 2 processes × 4 threads, ``--no-control-socket``) on a free
port, straight on the primary (the application role, ``CONN_MAX_AGE`` 60, prepared
statements on), production settings, the same keys (var/secrets.env) — the same code and the
same data behind both.

For the run, nginx's per-address rate limits are raised (every benchmark client comes from
127.0.0.1; 50 r/s would answer 429 to a closed loop) by re-rendering the cluster's nginx
configuration (``scripts/cluster.sh start`` with ``NGINX_RATE``/``NGINX_BURST``: only nginx
reloads) and put back afterwards.

Interleaved: each round runs, for every concurrency and every target in a shuffled order, a
closed loop (no think time) of the realistic mix of a grid member's day — the change feed
(nothing new since the last cursor), my tasks, a tile of the member's grid (cached, and
revalidated with its ETag), the chain for a point and for a household, my cases, and a case
report with a fresh ``Idempotency-Key`` (one request in 13) — with the light client of
:mod:`bench.httpclient`, each client as one of the demo street's grid members. Then the locust
run of bench/locustfile.py (``--users`` members thinking 1–4 s, ``--locust-seconds``) against
each target, also in a shuffled order. Connections stay far under ``max_connections``: the
single server holds at most 8 (its threads), the cluster at most PgBouncer's
``max_db_connections``.

Everything the run wrote (case reports, locust's visits, Idempotency-Key records, deadline
jobs) is deleted at the end. Writes bench/results/cluster-<date>[-HHMM].json. Measurements,
not a pass/fail test; the machine (2 cores) is shared, so compare the columns of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import benchenv  # noqa: E402
from benchenv import free_port, log, pct  # noqa: E402

benchenv.apply()

import django  # noqa: E402

django.setup()

from httpclient import Client  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var"
PASSWORD = "gridsvc-demo"
MARK = "bench-cluster"
MEMBERS = [f"grid{i}" for i in range(1, 8)]
MIX = (  # one member's day, as bench_overhead's MIX and the locustfile's weights: 13 requests
    "feed", "my tasks", "tile", "chain point", "feed", "tile 304", "my cases", "my tasks",
    "chain household", "feed", "my tasks", "tile", "report",
)  # fmt: skip


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------------ the targets
class Single:
    """One gunicorn as scripts/serve.sh runs it (no worker beside it: the cluster's workers
    serve the same database), on a free port, straight on the primary."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.logfile = VAR / "bench-cluster-single.log"

    def __enter__(self) -> Single:
        pg_port = os.environ.get("GRIDSVC_PG_PORT", "5439")
        env = {
            **os.environ,
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": f"postgis://gridsvc_app:gridsvc_app@127.0.0.1:{pg_port}/gridsvc",
        }
        for name in ("GRIDSVC_PGBOUNCER", "DATABASE_REPLICA_URL", "GRIDSVC_PREPARED"):
            env.pop(name, None)
        cmd = [
            str(ROOT / ".venv" / "bin" / "gunicorn"), "gridsvc.wsgi",
            "-c", str(ROOT / "gridsvc" / "gunicorn_conf.py"),
            "-b", f"127.0.0.1:{self.port}", "--no-control-socket",
        ]  # fmt: skip
        out = self.logfile.open("ab")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
        for _ in range(240):
            if port_open(self.port):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise SystemExit(f"the single gunicorn did not start (see {self.logfile})")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def cluster_env(rate: str | None) -> dict[str, str]:
    env = {**os.environ, "CLUSTER_SKIP_COLLECTSTATIC": "1"}
    if rate:
        env.update(NGINX_RATE=rate, NGINX_BURST=rate)
    return env


def nginx_limits(rate: str | None) -> None:
    """Re-render the running cluster's nginx with these limits (None: the defaults)."""
    done = subprocess.run(
        ["bash", "scripts/cluster.sh", "start"], cwd=ROOT, env=cluster_env(rate),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit("scripts/cluster.sh start failed:\n" + done.stdout + done.stderr)


# ------------------------------------------------------------------ the members and their day
def members() -> list[dict[str, Any]]:
    """Each demo grid member with households, building points and a tile of their grid."""
    from geo.hexbin import lonlat_to_tile
    from gridsvc.accounts.models import Member
    from gridsvc.chain.models import Position
    from gridsvc.territory.models import Building, Household

    people = []
    rng = random.Random(23)
    for username in MEMBERS:
        m = Member.objects.get(username=username)
        post = Position.objects.held_at().filter(member=m, grid__isnull=False).first()
        if post is None:
            continue
        hh = list(
            Household.objects.filter(unit__building__grid_id=post.grid_id)
            .exclude(unit__building__point=None)
            .order_by("id")
            .values_list("id", "unit__building__point")[:100]
        )
        pts = list(
            Building.objects.filter(grid_id=post.grid_id)
            .exclude(point=None)
            .order_by("id")
            .values_list("point", flat=True)[:50]
        )
        points = [
            (round(p.x + rng.uniform(-2e-4, 2e-4), 7), round(p.y + rng.uniform(-4e-5, 4e-5), 7))
            for p in (rng.choice(pts) for _ in range(50))
        ]
        b = pts[0]
        tiles = [[z, *lonlat_to_tile(b.x, b.y, z)] for z in (15, 16, 17)]
        people.append(
            {
                "username": username,
                "households": [[h, p.x, p.y] for h, p in hh],
                "points": points,
                "tiles": tiles,
            }
        )
    return people


def login(port: int, username: str) -> str:
    for _ in range(10):
        r = Client(port).post(
            "/api/v1/auth/token/",
            json={"username": username, "password": PASSWORD, "device": "bench-cluster"},
        )
        if r.status_code == 200:
            return r.json()["access"]
        time.sleep(1)
    raise SystemExit(f"login {username}: {r.status_code} {r.text[:200]}")


class Day:
    """One member's requests in turn against one target (cursor and ETag kept per target)."""

    def __init__(self, person: dict, token: str, port: int, offset: int) -> None:
        self.p, self.port, self.i = person, port, offset
        self.client = Client(port, token)
        feed = "/api/v1/sync/changes/"
        body = self.client.get(feed).json()
        while body.get("has_more"):
            body = self.client.get(f"{feed}?since={body['cursor']}").json()
        self.feed = f"{feed}?since={body['cursor']}"
        z, x, y = person["tiles"][1]
        self.tile = f"/tiles/buildings/{z}/{x}/{y}.mvt"
        first = self.client.get(self.tile)
        self.etag = first.headers.get("ETag", "")

    def next(self) -> tuple[str, str, str, Any, dict[str, str], tuple[int, ...]]:
        op = MIX[self.i % len(MIX)]
        n, self.i = self.i, self.i + 1
        p = self.p
        if op == "feed":
            return op, "GET", self.feed, None, {}, (200,)
        if op == "my tasks":
            return op, "GET", "/api/v1/visit-tasks/?mine=1&status=open", None, {}, (200,)
        if op == "my cases":
            return op, "GET", "/api/v1/cases/?mine=1", None, {}, (200,)
        if op == "tile":
            return op, "GET", self.tile, None, {}, (200, 204)
        if op == "tile 304":
            return op, "GET", self.tile, None, {"If-None-Match": self.etag}, (304, 200, 204)
        if op == "chain point":
            lon, lat = p["points"][n % len(p["points"])]
            return op, "GET", f"/api/v1/chain/?lon={lon}&lat={lat}", None, {}, (200,)
        if op == "chain household":
            hid = p["households"][n % len(p["households"])][0]
            return op, "GET", f"/api/v1/chain/?household={hid}", None, {}, (200,)
        hid = p["households"][n % len(p["households"])][0]
        body = {"category": "neighbour.noise", "title": f"{MARK}:{uuid.uuid4().hex[:12]}",
                "household": hid}  # fmt: skip
        return op, "POST", "/api/v1/cases/", body, {"Idempotency-Key": str(uuid.uuid4())}, (201,)


def closed_loop(days: list[Day], seconds: float) -> dict[str, Any]:
    """Every day a client thread, no think time, for ``seconds``."""
    lat: list[float] = []
    by_op: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    read_from: dict[str, int] = {}
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def one(day: Day) -> None:
        mine: list[tuple[str, float, int, str]] = []
        while time.perf_counter() < stop:
            op, method, path, body, headers, ok = day.next()
            t = time.perf_counter()
            try:
                r = day.client.request(method, path, json=body, headers=headers)
                status, where = r.status_code, r.headers.get("X-Gridsvc-Read-From", "")
            except (OSError, ValueError, IndexError):
                day.client.close()
                status, where = 0, ""
            ms = (time.perf_counter() - t) * 1000
            mine.append((op, ms, status if status not in ok else -1, where))
        with lock:
            for op, ms, bad, where in mine:
                lat.append(ms)
                by_op.setdefault(op, []).append(ms)
                if bad != -1:
                    key = f"{op} {bad}"
                    errors[key] = errors.get(key, 0) + 1
                if where:
                    read_from[where] = read_from.get(where, 0) + 1

    threads = [threading.Thread(target=one, args=(d,)) for d in days]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"lat": lat, "by_op": by_op, "errors": errors, "wall": wall, "read_from": read_from}


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    lat = [x for p in parts for x in p["lat"]]
    wall = sum(p["wall"] for p in parts)
    errors: dict[str, int] = {}
    read_from: dict[str, int] = {}
    ops: dict[str, list[float]] = {}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
        for k, v in p["read_from"].items():
            read_from[k] = read_from.get(k, 0) + v
        for k, v in p["by_op"].items():
            ops.setdefault(k, []).extend(v)
    return {
        "requests": len(lat),
        "seconds": round(wall, 1),
        "rps": round(len(lat) / wall, 1) if wall else 0,
        "p50_ms": round(pct(lat, 0.5), 1),
        "p90_ms": round(pct(lat, 0.9), 1),
        "p99_ms": round(pct(lat, 0.99), 1),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "read_from": read_from,
        "by_op_p50_ms": {k: round(pct(v, 0.5), 1) for k, v in sorted(ops.items())},
    }


# ------------------------------------------------------------------ locust
def run_locust(port: int, people: list[dict], tokens: dict[str, str], users: int,
               seconds: int, name: str) -> dict[str, Any]:  # fmt: skip
    """bench/locustfile.py, headless, ``users`` members (the demo's grid members in turn)."""
    import csv

    users_file = VAR / f"bench-cluster-locust-{name}.json"
    users_file.write_text(
        json.dumps(
            [
                {"username": p["username"], "token": tokens[p["username"]],
                 "households": p["households"], "tiles": p["tiles"]}
                for p in people
            ]
        )
    )  # fmt: skip
    prefix = VAR / f"bench-cluster-locust-{name}"
    cmd = [
        str(ROOT / ".venv" / "bin" / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"),
        "--headless", "-u", str(users), "-r", str(max(1, users // 5)), "-t", f"{seconds}s",
        "--host", f"http://127.0.0.1:{port}", "--csv", str(prefix), "--only-summary",
        "--stop-timeout", "10", "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_LOCUST_USERS": str(users_file)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=seconds + 120)  # fmt: skip
    rows = list(csv.DictReader(Path(f"{prefix}_stats.csv").open()))
    agg = next((r for r in rows if r.get("Name") == "Aggregated"), {})
    failures = list(csv.DictReader(Path(f"{prefix}_failures.csv").open()))
    return {
        "users": users,
        "seconds": seconds,
        "requests": int(agg.get("Request Count", 0) or 0),
        "failures": int(agg.get("Failure Count", 0) or 0),
        "rps": round(float(agg.get("Requests/s", 0) or 0), 1),
        "p50_ms": float(agg.get("50%", 0) or 0),
        "p99_ms": float(agg.get("99%", 0) or 0),
        "by_request_p50_ms": {
            r["Name"]: float(r["50%"]) for r in rows if r.get("Name") != "Aggregated"
        },
        "failure_kinds": [
            {"name": f.get("Name"), "error": f.get("Error"), "count": f.get("Occurrences")}
            for f in failures
        ],
        "exit_code": done.returncode,
    }


# ------------------------------------------------------------------ cleanup
def cleanup() -> dict[str, int]:
    """Delete what the run wrote: its case reports (with their events, the interpreter calls
    the community rules attached to them, their inbox messages and jobs), locust's visits and
    the Idempotency-Key records of the reports. Rows deleted per table."""
    from django.db import connection

    from fixtures import city

    like = MARK + ":%"
    deleted: dict[str, int] = {}
    with connection.cursor() as cur:
        cur.execute(
            """DELETE FROM procrastinate_jobs WHERE status = 'todo' AND task_name = 'cases.check'
               AND (args->>'case_id')::bigint IN (SELECT id FROM cases_case WHERE title LIKE %s)""",
            [like],
        )
        deleted["procrastinate_jobs"] = cur.rowcount
        cur.execute("DELETE FROM supervision_inboxmessage WHERE title LIKE %s", ["%" + like])
        deleted["supervision_inboxmessage"] = cur.rowcount
        cur.execute(
            "DELETE FROM sync_idempotencyrecord WHERE path = '/api/v1/cases/' AND member_id IN "
            "(SELECT id FROM accounts_member WHERE username = ANY(%s)) AND created_at > %s",
            [MEMBERS, STARTED],
        )
        deleted["sync_idempotencyrecord"] = cur.rowcount
    seeds = [
        [("community_interpretercall",
          "case_id IN (SELECT id FROM cases_case WHERE title LIKE %s)", [like]),
         ("cases_case", "title LIKE %s", [like])],
        [("visits_visit", "purpose = %s", ["bench-locust"])],
    ]  # fmt: skip
    for extra in seeds:
        for table, n in city.remove(log=lambda m: None, city=False, extra_seeds=extra).items():
            deleted[table] = deleted.get(table, 0) + n
    return deleted


STARTED = datetime.now(UTC)


# ------------------------------------------------------------------ the run
def run(args: argparse.Namespace) -> dict[str, Any]:  # noqa: PLR0915
    from django.db import connection

    nginx = int(os.environ.get("NGINX_PORT", "8080"))
    if not port_open(nginx):
        raise SystemExit(f"no cluster on :{nginx}: run `make cluster` first")
    with connection.cursor() as cur:
        cur.execute("SHOW max_connections")
        max_conn = int(cur.fetchone()[0])
    people = members()
    log(f"demo street: {len(people)} grid members; nginx :{nginx}")
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),  # fmt: skip
        "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()},
        "max_connections": max_conn,
        "settings": vars(args),
        "mix": list(MIX),
        "targets": {
            "cluster": "nginx → 2 app servers (gunicorn 2×4 gthread each) → PgBouncer "
            "(transaction mode) → primary; tiles/heatmaps on the streaming standby; "
            "2 workers",
            "single": "one gunicorn as scripts/serve.sh (2×4 gthread, preload) straight on the "
            "primary, CONN_MAX_AGE 60, prepared statements",
        },
    }
    nginx_limits(str(args.bench_rate))
    single = Single()
    parts: dict[tuple[str, int], list[dict]] = {}
    try:
        with single:
            ports = {"cluster": nginx, "single": single.port}
            log(f"single gunicorn on :{single.port}")
            tokens = {p["username"]: login(single.port, p["username"]) for p in people}
            # each client is one member's day; the warm-up (first sync, first tile) is untimed
            days = {
                (name, c): [
                    Day(people[k % len(people)], tokens[people[k % len(people)]["username"]],
                        port, k * 5)
                    for k in range(c)
                ]
                for name, port in ports.items()
                for c in args.concurrency
            }  # fmt: skip
            rng = random.Random(5)
            # a warm-up loop on each (every process's first requests), not counted
            for name in ports:
                closed_loop(days[(name, args.concurrency[0])], 3)
            for rnd in range(args.rounds):
                for c in args.concurrency:
                    order = list(ports)
                    rng.shuffle(order)
                    for name in order:
                        part = closed_loop(days[(name, c)], args.seconds)
                        parts.setdefault((name, c), []).append(part)
                        log(
                            f"round {rnd + 1} c={c:<3} {name:<8} {len(part['lat']):>5} requests, "
                            f"{len(part['lat']) / part['wall']:.1f} req/s, "
                            f"errors {sum(part['errors'].values())}"
                        )
            result["mix"] = {f"{name} c={c}": merge(ps) for (name, c), ps in sorted(parts.items())}
            if not args.no_locust:
                result["locust"] = {}
                order = list(ports)
                rng.shuffle(order)
                for name in order:
                    log(f"locust: {args.users} members for {args.locust_seconds} s on {name} …")
                    lo = run_locust(ports[name], people, tokens, args.users,
                                    args.locust_seconds, name)  # fmt: skip
                    result["locust"][name] = lo
                    log(f"  {lo['requests']} requests, {lo['rps']} req/s, p50 {lo['p50_ms']} "
                        f"ms, p99 {lo['p99_ms']} ms, failures {lo['failures']}")  # fmt: skip
    finally:
        nginx_limits(None)
    result["ratios"] = ratios(result)
    result["machine"]["load_after"] = os.getloadavg()
    return result


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """Cluster ÷ single: throughput and median latency per concurrency, and locust's."""
    out: dict[str, float] = {}
    mix = result.get("mix") or {}
    for key, value in mix.items():
        if not key.startswith("cluster "):
            continue
        c = key.split(" ", 1)[1]
        single = mix.get(f"single {c}")
        if single and single["rps"]:
            out[f"mix {c} req/s"] = round(value["rps"] / single["rps"], 2)
            out[f"mix {c} p50"] = round(value["p50_ms"] / single["p50_ms"], 2)
    lo = result.get("locust") or {}
    if lo.get("cluster") and lo.get("single") and lo["single"]["rps"]:
        out["locust req/s"] = round(lo["cluster"]["rps"] / lo["single"]["rps"], 2)
        if lo["single"]["p50_ms"]:
            out["locust p50"] = round(lo["cluster"]["p50_ms"] / lo["single"]["p50_ms"], 2)
    return out


def table(result: dict[str, Any]) -> str:
    lines = [
        "| run | target | requests | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, v in (result.get("mix") or {}).items():
        name, c = key.split(" ", 1)
        lines.append(
            f"| mix {c} | {name} | {v['requests']} | {v['rps']} | {v['p50_ms']} | "
            f"{v['p99_ms']} | {v['errors']} |"
        )
    for name, v in (result.get("locust") or {}).items():
        lines.append(
            f"| locust {v['users']} members | {name} | {v['requests']} | {v['rps']} | "
            f"{v['p50_ms']:g} | {v['p99_ms']:g} | {v['failures']} |"
        )
    r = result.get("ratios") or {}
    if r:
        lines.append("")
        lines.append("cluster ÷ single: " + ", ".join(f"{k} {v}" for k, v in r.items()))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", default="8,32")
    ap.add_argument("--users", type=int, default=40, help="locust members (bounded)")
    ap.add_argument("--locust-seconds", type=int, default=30)
    ap.add_argument("--no-locust", action="store_true")
    ap.add_argument("--bench-rate", type=int, default=100000,
                    help="nginx's per-address r/s and burst during the run")  # fmt: skip
    ap.add_argument("--table", nargs="?", const="", default=None, metavar="RESULT")
    args = ap.parse_args()
    if args.table is not None:
        path = Path(args.table) if args.table else max(RESULTS.glob("cluster-*.json"))
        print(table(json.loads(path.read_text())))
        return 0
    args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c]
    try:
        result = run(args)
    except BaseException:
        cleanup()
        raise
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC)
    path = RESULTS / f"cluster-{stamp:%Y-%m-%d}.json"
    if path.exists():
        path = RESULTS / f"cluster-{stamp:%Y-%m-%d-%H%M}.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    log(table(result))
    log(f"wrote {path.relative_to(ROOT)}")
    removed = cleanup()
    log(f"cleaned up: {removed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
