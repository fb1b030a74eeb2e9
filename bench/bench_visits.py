"""Benchmark: a visit batch of 500 over HTTP (gzipped, as the phone sends it) against its SQL floor.

Starts gunicorn (one sync worker per tree, DEBUG off, ``--no-control-socket``) for each source
tree named with ``--tree`` (default: this one), logs in over HTTP as a grid member with a JWT,
and then, round after round, interleaves:

- ``POST /api/v1/visits/batch/`` with 500 fresh visits in the member's territory, the body
  gzipped (``Content-Encoding: gzip``), over one persistent connection per server
  (``http.client``: no client library overhead), timed from the first byte sent to the last
  byte of the answer read;
- the SQL floor: the same rows as one ``INSERT … SELECT`` per batch over psycopg2 (distance to
  the building by PostGIS in the same statement; no idempotency or territory check);
- the honest SQL: what the service must do at least — the stored-UUID check, the territory
  check (households in the member's grid), one ``INSERT … ON CONFLICT DO NOTHING RETURNING``
  with the distance, the clock rows — as three statements in one transaction.

Medians and p90 per variant are printed and written to bench/results/visits.json. Runs against
the configured database (``DATABASE_URL``; the demo street must be loaded: ``manage.py
load_demo``) and deletes every row it inserted. Visits are dated 2024-03 (before any demo task
period), so they close no task.

    DATABASE_URL=postgis://…/gridsvc_bench_visits .venv/bin/python bench/bench_visits.py \\
        [--rounds 15] [--batch 500] [--user grid1] [--tree before=/tmp/old-checkout]

``run_sql`` is also used by bench/run.py.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import benchenv  # noqa: E402
from benchenv import free_port  # noqa: E402

benchenv.apply()

import django  # noqa: E402

django.setup()

from psycopg2.extras import execute_values  # noqa: E402

from gridsvc.territory.models import Household  # noqa: E402
from gridsvc.visits.ingest import far_off_threshold_m  # noqa: E402
from gridsvc.visits.models import Visit  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
MARK_API = "bench-visits-api"
MARK_SQL = "bench-visits-sql"
PASSWORD = "gridsvc-demo"


def make_rows(n: int, households: list[tuple[int, float, float]], seed: int) -> list[dict]:
    """``n`` visits spread over ``households`` ((id, lon, lat) of the building point)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        hid, x, y = households[i % len(households)]
        rows.append(
            {
                "client_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "household": hid,
                "client_time": datetime(
                    2024, 3, 1 + i % 28, 9 + i % 9, i % 60, tzinfo=TZ
                ).isoformat(),
                "lon": round(x + rng.uniform(-0.0004, 0.0004), 7),
                "lat": round(y + rng.uniform(-0.0003, 0.0003), 7),
                "accuracy_m": round(rng.uniform(3, 60), 1),
                "purpose": MARK_API,
                "notes": "bench",
            }
        )
    return rows


def _connect():  # type: ignore[no-untyped-def]
    import psycopg2
    from django.conf import settings

    db = settings.DATABASES["default"]
    return psycopg2.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"],
        host=db["HOST"],
        port=db["PORT"] or 5432,
    )


SQL_FLOOR = """
    INSERT INTO visits_visit (client_uuid, content_hash, member_id, household_id,
        client_time, server_time, location, location_source, input_crs, accuracy_m,
        accuracy_grade, distance_m, far_off, purpose, notes, findings, participants_text,
        case_ids, updated_at)
    SELECT v.u, '', v.m, v.hh, v.ct, now(), ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326),
           'gps', 'wgs84', v.acc, '', d.m, d.m > %(t)s, %(mark)s, 'bench', '[]', '',
           '[]', now()
      FROM (VALUES %%s) AS v(u, m, hh, ct, lon, lat, acc)
      JOIN territory_household h ON h.id = v.hh
      JOIN territory_unit un ON un.id = h.unit_id
      JOIN territory_building b ON b.id = un.building_id
      CROSS JOIN LATERAL (SELECT ST_Distance(
            ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326)::geography,
            b.footprint::geography) AS m) d
"""
TEMPLATE = "(%s::uuid, %s::bigint, %s::bigint, %s::timestamptz, %s::float8, %s::float8, %s::float8)"


def _sql_chunk(rows: list[dict], member_id: int) -> list[tuple]:
    return [
        (
            str(uuid.uuid4()),
            member_id,
            r["household"],
            r["client_time"],
            r["lon"],
            r["lat"],
            r["accuracy_m"],
        )
        for r in rows
    ]


def run_sql(rows: list[dict], batch: int, member_id: int, conn=None) -> float:  # type: ignore[no-untyped-def]
    """Bare SQL over psycopg2: one INSERT … SELECT per batch, distance by PostGIS (seconds).
    ``conn``: a connection to reuse (a fresh one pays its catalog caches in the first batch)."""
    threshold = far_off_threshold_m()
    raw = conn or _connect()
    t0 = time.perf_counter()
    with raw.cursor() as cur:
        stmt = cur.mogrify(SQL_FLOOR, {"t": threshold, "mark": MARK_SQL}).decode()
        for i in range(0, len(rows), batch):
            execute_values(
                cur,
                stmt,
                _sql_chunk(rows[i : i + batch], member_id),
                template=TEMPLATE,
                page_size=batch,
            )
            raw.commit()
    elapsed = time.perf_counter() - t0
    if conn is None:
        raw.close()
    return elapsed


HONEST_INSERT = """
    INSERT INTO visits_visit (client_uuid, content_hash, member_id, household_id,
        client_time, server_time, location, location_source, input_crs, accuracy_m,
        accuracy_grade, distance_m, far_off, purpose, notes, findings, participants_text,
        case_ids, updated_at)
    SELECT v.u, md5(v.u::text), v.m, v.hh, v.ct, now(),
           ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326), 'gps', 'wgs84', v.acc, '', d.m,
           d.m > %(t)s, %(mark)s, 'bench', '[]', '', '[]', now()
      FROM (VALUES %%s) AS v(u, m, hh, ct, lon, lat, acc)
      JOIN territory_household h ON h.id = v.hh
      JOIN territory_unit un ON un.id = h.unit_id
      JOIN territory_building b ON b.id = un.building_id
      CROSS JOIN LATERAL (SELECT ST_Distance(
            ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326)::geography,
            b.footprint::geography) AS m) d
    ON CONFLICT (client_uuid) DO NOTHING
    RETURNING id
"""


def sql_honest(raw, rows: list[dict], member_id: int, grid_id: int) -> float:  # type: ignore[no-untyped-def]
    """The least the service must do for a batch, as bare SQL (ms): the stored-UUID check, the
    territory check, one INSERT … ON CONFLICT … RETURNING, the clock rows; one transaction."""
    chunk = _sql_chunk(rows, member_id)
    t0 = time.perf_counter()
    with raw.cursor() as cur:
        cur.execute(
            "SELECT client_uuid, content_hash, id FROM visits_visit WHERE client_uuid = ANY(%s::uuid[])",
            [[c[0] for c in chunk]],
        )
        cur.fetchall()
        cur.execute(
            "SELECT h.id FROM territory_household h JOIN territory_unit u ON u.id = h.unit_id"
            " JOIN territory_building b ON b.id = u.building_id"
            " WHERE h.id = ANY(%s::bigint[]) AND b.grid_id = %s",
            [list({c[2] for c in chunk}), grid_id],
        )
        cur.fetchall()
        stmt = cur.mogrify(HONEST_INSERT, {"t": far_off_threshold_m(), "mark": MARK_SQL}).decode()
        ids = execute_values(cur, stmt, chunk, template=TEMPLATE, page_size=len(chunk), fetch=True)
        cur.execute(
            "INSERT INTO sync_visitclock (visit_id, sent_time, received_at, corrected, flag)"
            " SELECT unnest(%s::bigint[]), now(), now(), false, ''",
            [[i[0] for i in ids]],
        )
    raw.commit()
    return (time.perf_counter() - t0) * 1000


# ---------------------------------------------------------------------------- servers
class Server:
    """gunicorn over ``tree`` (one sync worker, DEBUG off) on a free loopback port."""

    def __init__(self, label: str, tree: Path) -> None:
        self.label, self.tree = label, tree
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        log = open(f"/tmp/bench-visits-{self.label}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "gunicorn"),
                "gridsvc.wsgi",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                "1",
                "--timeout",
                "120",
                "--no-control-socket",
            ],
            cwd=self.tree,
            env={**os.environ, "PYTHONPATH": str(self.tree)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn ({self.label}) exited: see {log.name}")
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn ({self.label}) did not answer /health")

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group this process started
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


class Client:
    """One persistent HTTP/1.1 connection, a JWT from /api/v1/auth/token/."""

    def __init__(self, port: int, username: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        status, body = self.call(
            "POST",
            "/api/v1/auth/token/",
            json.dumps({"username": username, "password": PASSWORD, "device": "bench"}).encode(),
            {"Content-Type": "application/json"},
        )
        if status != 200:
            raise RuntimeError(f"login {username}: {status} {body[:200]!r}")
        self.token = json.loads(body)["access"]

    def call(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def batch(self, rows: list[dict]) -> tuple[float, dict]:
        body = gzip.compress(json.dumps({"visits": rows}).encode(), compresslevel=6)
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Accept-Encoding": "gzip",
            "X-Device-Time": datetime.now(TZ).isoformat(),
        }
        t0 = time.perf_counter()
        status, answer = self.call("POST", "/api/v1/visits/batch/", body, headers)
        ms = (time.perf_counter() - t0) * 1000
        if status != 200:
            raise SystemExit(f"batch failed: {status} {answer[:300]!r}")
        if answer[:2] == b"\x1f\x8b":
            answer = gzip.decompress(answer)
        return ms, json.loads(answer)["summary"]


def cleanup() -> int:
    n, _ = Visit.objects.filter(purpose__in=[MARK_API, MARK_SQL]).delete()
    return n


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--user", default="grid1")
    ap.add_argument(
        "--tree",
        action="append",
        default=[],
        help="LABEL=PATH of a source tree to serve (repeatable; default: now=<this tree>)",
    )
    args = ap.parse_args()
    from gridsvc.accounts.models import Member
    from gridsvc.chain.models import Position

    trees = [t.split("=", 1) for t in args.tree] or [["now", str(ROOT)]]
    member = Member.objects.get(username=args.user)
    post = Position.objects.held_at().filter(member=member, grid__isnull=False).first()
    if post is None:
        raise SystemExit(f"{args.user} holds no grid post: load the demo street (load_demo)")
    homes = [
        (h.id, h.unit.building.point.x, h.unit.building.point.y)
        for h in Household.objects.filter(unit__building__grid_id=post.grid_id).select_related(
            "unit__building"
        )
    ]
    cleanup()
    servers = [Server(label, Path(path)) for label, path in trees]
    times: dict[str, list[float]] = {s.label: [] for s in servers}
    times["sql floor"], times["sql honest"] = [], []
    outcomes: dict[str, dict] = {}
    raw = _connect()
    try:
        for s in servers:
            s.__enter__()
        clients = {s.label: Client(s.port, args.user) for s in servers}
        for s in servers:  # warm-up: each worker's first request (imports, caches)
            clients[s.label].batch(make_rows(args.batch, homes, seed=sum(map(ord, s.label))))
        for r in range(args.rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for k, s in enumerate(order):
                ms, summary = clients[s.label].batch(
                    make_rows(args.batch, homes, 1000 + r * 10 + k)
                )
                times[s.label].append(ms)
                outcomes[s.label] = summary
            rows = make_rows(args.batch, homes, 5000 + r)
            times["sql floor"].append(run_sql(rows, args.batch, member.id, raw) * 1000)
            times["sql honest"].append(sql_honest(raw, rows, member.id, post.grid_id))
    finally:
        raw.close()
        for s in servers:
            s.__exit__(None, None, None)
        removed = cleanup()
    floor = statistics.median(times["sql floor"])
    result = {
        "benchmark": "visits_batch_http",
        "batch": args.batch,
        "rounds": args.rounds,
        "user": args.user,
        "database": os.environ.get("DATABASE_URL", "default").rsplit("/", 1)[-1],
        "machine": f"{os.cpu_count()} cores, shared; interleaved rounds",
        "variants": {},
        "outcomes": outcomes,
        "cleaned_up_rows": removed,
    }
    print(f"{'variant':<14}{'median ms':>10}{'p90 ms':>10}{'× floor':>9}")
    for label, values in times.items():
        med = statistics.median(values)
        result["variants"][label] = {
            "median_ms": round(med, 1),
            "p90_ms": round(pct(values, 0.9), 1),
            "ratio_to_sql_floor": round(med / floor, 2),
            "samples_ms": [round(v, 1) for v in values],
        }
        print(f"{label:<14}{med:>10.1f}{pct(values, 0.9):>10.1f}{med / floor:>9.1f}")
    print(f"outcomes: {outcomes}")
    out = ROOT / "bench" / "results" / "visits.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
