"""Benchmark: a phone's sync for a grid member of the loaded city (issue 16, "done means").

    bash scripts/bench.sh small                   # or make bench SIZE=small: part of run.py
    .venv/bin/python bench/run.py --sync [--quick]  # alone: the loaded city, its own gunicorn

Over HTTP, as a phone does it (``Accept-Encoding: gzip``, a JWT of its own device):

- **first sync**: ``GET /api/v1/sync/changes/`` without ``since``, paged with the returned
  cursor until ``has_more`` is false (default limit 500). Requests, bytes on the wire
  (gzipped, as received) and uncompressed, total ms. Repeated; median and p99 of the total.
- **incremental sync** after a few changes: three residents of the member's grid edited
  (``PATCH`` with ``If-Match``) and one case reported in the grid, then the feed from the
  cursor of the first sync, paged to the end. Requests, bytes, ms. And the same feed once
  more with nothing new.
- **a batch of 500 visits**: ``POST /api/v1/visits/batch/`` with a gzipped body
  (``Content-Encoding: gzip``), as the phone uploads a day's outbox.

Each against a hand-written SQL floor on the same data over psycopg (the rows the phone
receives, read in one pass with no paging, no scope checks, no masking and no JSON; for the
batch, bench_visits.run_sql: one INSERT … SELECT with the distance by PostGIS). Nothing
passes or fails on time; the rows it creates (visits, the case) carry the harness's mark and
are removed by run.py's cleanup; the residents' edits are put back.
"""

from __future__ import annotations

import gzip
import json
import random
import statistics
import time
import uuid
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
FEED = "/api/v1/sync/changes/"

# The floor of a first sync: what the phone receives, in one pass.
SQL_FIRST_SYNC = [
    # households of the grid, with unit, building and the head's name
    """SELECT h.id, h.unit_id, u.number, u.building_id, b.name, b.grid_id, h.room, h.floor,
              h.tenure, hr.name
       FROM territory_household h JOIN territory_unit u ON u.id = h.unit_id
       JOIN territory_building b ON b.id = u.building_id
       LEFT JOIN territory_resident hr ON hr.id = h.head_id
       WHERE b.grid_id = %(g)s""",
    # their residents
    """SELECT r.id, r.household_id, r.name, r.gender, r.birth_date, r.id_number, r.phone,
              r.ethnicity, r.residency, r.relation_to_head, r.tags
       FROM territory_resident r JOIN territory_household h ON h.id = r.household_id
       JOIN territory_unit u ON u.id = h.unit_id JOIN territory_building b ON b.id = u.building_id
       WHERE b.grid_id = %(g)s""",
    # tasks in the grid or assigned to the member: open ones and 30 days of done ones (the
    # two sides by their own index: an OR of the two walks every task of the city)
    """SELECT t.id, t.rule_id, t.household_id, t.resident_id, t.period, t.period_start,
              t.period_end, t.due_on, t.status, t.assigned_member_id, t.updated_at
       FROM visits_visittask t
       WHERE t.id IN (SELECT t2.id FROM visits_visittask t2
                      JOIN territory_household h ON h.id = t2.household_id
                      JOIN territory_unit u ON u.id = h.unit_id
                      JOIN territory_building b ON b.id = u.building_id
                      WHERE b.grid_id = %(g)s
                      UNION SELECT id FROM visits_visittask WHERE assigned_member_id = %(m)s)
         AND (t.status <> 'done' OR t.period_end >= current_date - 30)""",
    # cases in the grid: open ones and those reported, resolved or closed in 30 days
    """SELECT c.id, c.number, c.title, c.category_id, c.status, c.level, c.handler_id,
              c.household_id, c.building_id, c.grid_id, ST_X(c.location), ST_Y(c.location),
              c.updated_at
       FROM cases_case c WHERE c.grid_id = %(g)s
         AND (c.status IN ('reported', 'assigned', 'in_progress', 'escalated', 'reopened',
                           'transferred', 'on_hold')
              OR greatest(c.reported_at, c.closed_at, c.resolved_at) >= now() - interval '30 days')""",
]

# The floor of an incremental sync: the change log of the grid after a point, the households
# and residents it names, and the cases of the grid changed since.
SQL_INCREMENTAL = [
    """SELECT h.id, h.room, h.floor, h.tenure, r.id, r.name, r.id_number, r.phone, r.tags
       FROM (SELECT DISTINCT household_id_ref AS id FROM visits_changelog
             WHERE id > %(log)s AND building_id_ref IN
                   (SELECT id FROM territory_building WHERE grid_id = %(g)s)) cl
       JOIN territory_household h ON h.id = cl.id
       LEFT JOIN territory_resident r ON r.household_id = h.id""",
    """SELECT c.id, c.number, c.title, c.status, c.level, c.handler_id, c.updated_at
       FROM cases_case c WHERE c.grid_id = %(g)s AND c.updated_at > %(t)s""",
    """SELECT t.id, t.status, t.updated_at FROM visits_visittask t
       WHERE t.assigned_member_id = %(m)s AND t.updated_at > %(t)s""",
]


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _get(session, base: str, path: str) -> tuple[dict, int, int]:  # type: ignore[no-untyped-def]
    """GET as a phone: the body, bytes on the wire (as received) and uncompressed."""
    r = session.get(base + path, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=300)
    raw = r.raw.read(decode_content=False)
    body = gzip.decompress(raw) if r.headers.get("Content-Encoding") == "gzip" else raw
    if r.status_code != 200:
        raise RuntimeError(f"GET {path}: {r.status_code} {body[:300]!r}")
    return json.loads(body), len(raw), len(body)


def sync_to_end(session, base: str, since: str | None) -> dict:  # type: ignore[no-untyped-def]
    """Page the feed from ``since`` (None: a first sync) until ``has_more`` is false."""
    t0 = time.perf_counter()
    requests_n = wire = plain = 0
    counts = {"households": 0, "residents": 0, "tasks": 0, "cases": 0, "inbox": 0}
    cursor = since
    while True:
        page, w, p = _get(session, base, FEED + (f"?since={quote(cursor)}" if cursor else ""))
        requests_n += 1
        wire += w
        plain += p
        for k in counts:
            counts[k] += len(page.get(k) or [])
        cursor = page["cursor"]
        if not page.get("has_more"):
            break
    return {
        "ms": (time.perf_counter() - t0) * 1000,
        "requests": requests_n,
        "bytes_gzip": wire,
        "bytes_json": plain,
        "rows": counts,
        "cursor": cursor,
    }


def _floor(cur, stmts: list[str], params: dict, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n + 1):
        t = time.perf_counter()
        for s in stmts:
            cur.execute(s, params)
            cur.fetchall()
        if i:  # the first pass warms the cache
            out.append((time.perf_counter() - t) * 1000)
    return out


def _row(name: str, http: list[float], sql: list[float] | None, note: str, **extra) -> dict:  # type: ignore[no-untyped-def]
    med = statistics.median(http)
    sm = statistics.median(sql) if sql else None
    return {
        "operation": name,
        "n": len(http),
        "median_ms": round(med, 1),
        "p99_ms": round(_pct(http, 0.99), 1),
        "sql_median_ms": round(sm, 2) if sm is not None else None,
        "sql_kind": "hand (bench_sync)" if sql else None,
        "ratio": round(med / sm, 1) if sm else None,
        "note": note,
        **extra,
    }


def _edit_residents(session, base: str, grid_id: int, k: int = 3) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    """PATCH ``k`` residents of the grid as the phone does (If-Match); their old values."""
    from gridsvc.territory.models import Resident

    ids = list(
        Resident.objects.filter(household__unit__building__grid_id=grid_id)
        .order_by("id")
        .values_list("id", "origin_place")[:k]
    )
    for rid, _old in ids:
        url = f"{base}/api/v1/residents/{rid}/"
        etag = session.get(url, timeout=60).headers.get("ETag", "*")
        r = session.patch(url, json={"origin_place": "bench-sync"}, headers={"If-Match": etag})
        if r.status_code != 200:
            raise RuntimeError(f"PATCH resident {rid}: {r.status_code} {r.text[:200]}")
    return ids


def _restore_residents(old: list[tuple[int, str]]) -> None:
    from gridsvc.territory.models import Resident

    for rid, place in old:
        Resident.objects.filter(pk=rid).update(origin_place=place)


def run(base: str, api, picks, cur, mark: str, quick: bool = False) -> list[dict]:  # type: ignore[no-untyped-def]
    """The rows for run.py's table. ``api``: run.Api logged in as ``picks.grid_member``;
    ``cur``: a psycopg cursor (autocommit) for the floors; ``mark``: the purpose / case title
    prefix run.py's cleanup removes."""
    s = api.s
    g, m = picks.grid_id, picks.grid_member_id
    rows: list[dict] = []
    reps = 3 if quick else 5

    # first sync, paged to the end
    firsts = [sync_to_end(s, base, None) for _ in range(reps)]
    last = firsts[-1]
    floor = _floor(cur, SQL_FIRST_SYNC, {"g": g, "m": m}, reps)
    rows.append(
        _row(
            "sync: first sync, paged to the end",
            [f["ms"] for f in firsts],
            floor,
            f"{last['requests']} requests, {last['bytes_gzip'] / 1024:.0f} KiB gzipped "
            f"({last['bytes_json'] / 1024:.0f} KiB JSON); rows {last['rows']}",
            requests=last["requests"],
            bytes_gzip=last["bytes_gzip"],
            bytes_json=last["bytes_json"],
            rows=last["rows"],
        )
    )

    # a few changes, then the incremental sync from the first sync's cursor
    cur.execute("SELECT coalesce(max(id), 0), now() FROM visits_changelog")
    log_id, t_before = cur.fetchone()
    cursor = last["cursor"]
    old = _edit_residents(s, base, g)
    try:
        _bid, x, y = picks.buildings[0]
        r = s.post(
            base + "/api/v1/cases/",
            json={
                "title": f"{mark}: sync bench",
                "category": "neighbour.noise",
                "lon": x,
                "lat": y,
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
            timeout=60,
        )
        case_note = "" if r.status_code in (200, 201) else f" (case not reported: {r.status_code})"
        incs = [sync_to_end(s, base, cursor) for _ in range(reps)]
        inc = incs[-1]
        floor = _floor(cur, SQL_INCREMENTAL, {"g": g, "m": m, "log": log_id, "t": t_before}, reps)
        rows.append(
            _row(
                "sync: incremental after 4 changes",
                [f["ms"] for f in incs],
                floor,
                f"3 residents edited + 1 case{case_note}: {inc['requests']} requests, "
                f"{inc['bytes_gzip']} B gzipped; rows {inc['rows']}",
                requests=inc["requests"],
                bytes_gzip=inc["bytes_gzip"],
                bytes_json=inc["bytes_json"],
                rows=inc["rows"],
            )
        )
        quiet = [sync_to_end(s, base, inc["cursor"]) for _ in range(reps * 2)]
        rows.append(
            _row(
                "sync: incremental, nothing new",
                [f["ms"] for f in quiet],
                None,
                f"{quiet[-1]['requests']} request, {quiet[-1]['bytes_gzip']} B gzipped",
                requests=quiet[-1]["requests"],
                bytes_gzip=quiet[-1]["bytes_gzip"],
            )
        )
    finally:
        _restore_residents(old)

    # a batch of 500 visits, gzipped body, against bench_visits.run_sql
    import bench.bench_visits as bv

    batches = 2 if quick else 4
    rng = random.Random(16)
    visits = []
    for i in range(500 * batches):
        _b, x, y = picks.buildings[i % len(picks.buildings)]
        visits.append(
            {
                "client_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "household": picks.households[i % len(picks.households)],
                "client_time": datetime(
                    2024, 4, 1 + i % 28, 9 + i % 9, i % 60, tzinfo=TZ
                ).isoformat(),
                "lon": round(x + rng.uniform(-0.0003, 0.0003), 7),
                "lat": round(y + rng.uniform(-0.0002, 0.0002), 7),
                "accuracy_m": round(rng.uniform(3, 60), 1),
                "purpose": mark,
                "notes": "bench-sync",
            }
        )
    http, sizes = [], []
    for i in range(batches):
        body = gzip.compress(json.dumps({"visits": visits[i * 500 : (i + 1) * 500]}).encode())
        sizes.append(len(body))
        t = time.perf_counter()
        r = s.post(
            base + "/api/v1/visits/batch/",
            data=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            timeout=300,
        )
        http.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"visit batch: {r.status_code} {r.text[:300]}")
        summary = r.json()["summary"]
        if summary.get("accepted") != 500:
            print(f"  sync bench batch {i}: {summary}", flush=True)
    sql_s = bv.run_sql(visits, 500, m)
    per = [sql_s * 1000 / batches]
    rows.append(
        _row(
            "sync: batch of 500 visits (gzip)",
            http,
            per,
            f"{statistics.median(sizes) / 1024:.0f} KiB gzipped body; "
            f"{500 / statistics.median(http) * 1000:.0f} visits/s",
            bytes_gzip=int(statistics.median(sizes)),
        )
    )
    rows[-1]["sql_kind"] = "bench_visits.run_sql (mean per batch)"
    for r in rows:
        print(
            f"  {r['operation']:<36} http {r['median_ms']:>8.1f} ms   "
            f"sql {r['sql_median_ms'] if r['sql_median_ms'] is not None else '–':>7}   {r['note']}",
            flush=True,
        )
    return rows
