"""Benchmark: ingest 10,000 visits in batches of 500 through POST /api/v1/visits/batch/.

Compared with a bare-SQL baseline: the same rows inserted over psycopg2 (execute_values,
distance to the building computed by PostGIS in the same statement). Prints a table and
writes bench/results/visits.json. Runs against the configured database (the demo street
must be loaded: ``make demo`` or ``manage.py load_demo``) and deletes every row it inserted.

    DJANGO_SETTINGS_MODULE=gridsvc.settings DJANGO_DEBUG=1 .venv/bin/python bench/bench_visits.py
    [--visits 10000] [--batch 500]

The visits are dated 2024-03 (before any demo task period), so they close no task and the
clean-up is a plain delete.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gridsvc.settings")

import django  # noqa: E402

django.setup()

from django.db import reset_queries  # noqa: E402
from psycopg2.extras import execute_values  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from gridsvc.accounts.models import Member  # noqa: E402
from gridsvc.territory.models import Household  # noqa: E402
from gridsvc.visits.ingest import far_off_threshold_m  # noqa: E402
from gridsvc.visits.models import Visit  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
MARK_API = "bench-visits-api"
MARK_SQL = "bench-visits-sql"


def make_rows(n: int, seed: int = 20261124) -> list[dict]:
    rng = random.Random(seed)
    homes = list(Household.objects.values_list("id", "unit__building__point"))
    rows = []
    for i in range(n):
        hid, p = homes[i % len(homes)]
        rows.append(
            {
                "client_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "household": hid,
                "client_time": datetime(
                    2024, 3, 1 + i % 28, 9 + i % 9, i % 60, tzinfo=TZ
                ).isoformat(),
                "lon": round(p.x + rng.uniform(-0.0004, 0.0004), 7),
                "lat": round(p.y + rng.uniform(-0.0003, 0.0003), 7),
                "accuracy_m": round(rng.uniform(3, 60), 1),
                "purpose": MARK_API,
                "notes": "bench",
            }
        )
    return rows


def run_api(rows: list[dict], batch: int, member: Member) -> tuple[float, dict]:
    client = APIClient()
    client.force_authenticate(member)
    counts = {"accepted": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        r = client.post("/api/v1/visits/batch/", {"visits": rows[i : i + batch]}, format="json")
        if r.status_code != 200:
            raise SystemExit(f"batch {i // batch} failed: {r.status_code} {r.content[:300]!r}")
        for k, v in r.json()["summary"].items():
            counts[k] += v
        reset_queries()
    return time.perf_counter() - t0, counts


def run_sql(rows: list[dict], batch: int, member_id: int) -> float:
    """Bare SQL over psycopg2: one INSERT … SELECT per batch, distance by PostGIS."""
    threshold = far_off_threshold_m()
    sql = """
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
    template = (
        "(%s::uuid, %s::bigint, %s::bigint, %s::timestamptz, %s::float8, %s::float8, %s::float8)"
    )
    import psycopg2
    from django.conf import settings

    db = settings.DATABASES["default"]
    raw = psycopg2.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"],
        host=db["HOST"],
        port=db["PORT"] or 5432,
    )
    t0 = time.perf_counter()
    with raw.cursor() as cur:
        stmt = cur.mogrify(sql, {"t": threshold, "mark": MARK_SQL}).decode()
        for i in range(0, len(rows), batch):
            chunk = [
                (
                    str(uuid.uuid4()),
                    member_id,
                    r["household"],
                    r["client_time"],
                    r["lon"],
                    r["lat"],
                    r["accuracy_m"],
                )
                for r in rows[i : i + batch]
            ]
            execute_values(cur, stmt, chunk, template=template, page_size=batch)
            raw.commit()
    elapsed = time.perf_counter() - t0
    raw.close()
    return elapsed


def cleanup() -> int:
    n, _ = Visit.objects.filter(purpose__in=[MARK_API, MARK_SQL]).delete()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    if not Household.objects.exists():
        raise SystemExit("load the demo street first: manage.py load_demo")
    member = Member.objects.filter(is_superuser=True).order_by("id").first()
    if member is None:
        raise SystemExit("no superuser (the demo's admin) to post as")
    cleanup()
    rows = make_rows(args.visits)
    try:
        api_s, counts = run_api(rows, args.batch, member)
        sql_s = run_sql(rows, args.batch, member.id)
    finally:
        removed = cleanup()
    n = args.visits
    result = {
        "benchmark": "visits_ingest",
        "visits": n,
        "batch": args.batch,
        "api": {
            "seconds": round(api_s, 3),
            "visits_per_s": round(n / api_s, 1),
            "per_batch_ms": round(api_s / (n / args.batch) * 1000, 1),
            "outcomes": counts,
        },
        "bare_sql": {"seconds": round(sql_s, 3), "visits_per_s": round(n / sql_s, 1)},
        "ratio_api_vs_sql": round(api_s / sql_s, 2),
        "cleaned_up_rows": removed,
    }
    print(f"{'path':<12}{'seconds':>10}{'visits/s':>12}")
    print(f"{'api batch':<12}{api_s:>10.2f}{n / api_s:>12.0f}")
    print(f"{'bare sql':<12}{sql_s:>10.2f}{n / sql_s:>12.0f}")
    print(f"api / sql time ratio: {api_s / sql_s:.1f}×  (outcomes {counts})")
    out = ROOT / "bench" / "results" / "visits.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
