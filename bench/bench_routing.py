"""Benchmark: route 10,000 random points through the full case routing.

Full routing (:func:`gridsvc.cases.services.route`): locate (covering building, else nearest
within the tolerance, grid and compound by ST_Covers with the shared-edge tie-break), the
category and flag rules, the chain walked to the first active holder. Nothing is written, so
the data is untouched. Baseline: the bare PostGIS point-in-polygon query (which grid covers
the point) run over psycopg2 for the same points. Prints routes per second for both and the
ratio, and writes bench/results/routing.json.

    .venv/bin/python bench/bench_routing.py [--points 10000] [--street CODE]

Runs against the configured database (``make demo`` data, or a city from ``load_city``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gridsvc.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-not-a-secret")  # DEBUG off: no query log

import django  # noqa: E402

django.setup()

import psycopg2  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.gis.geos import Point  # noqa: E402
from django.db import connection  # noqa: E402

from gridsvc.cases.models import Category  # noqa: E402
from gridsvc.cases.services import route  # noqa: E402

BARE_SQL = """
SELECT id FROM territory_grid
WHERE parent_id IS NULL AND ST_Covers(boundary, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
ORDER BY code LIMIT 1
"""


def random_points(n: int, street: str, seed: int = 20261124) -> list[tuple[float, float]]:
    """Points spread over the extent of one street's grids (a few fall outside every grid)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(g.boundary) e FROM territory_grid g "
            " JOIN territory_community c ON c.id = g.community_id "
            " JOIN territory_street s ON s.id = c.street_id WHERE s.code = %s) s",
            [street],
        )
        x0, y0, x1, y1 = cur.fetchone()
    rng = random.Random(seed)
    return [(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(n)]


def bench_full(points: list[tuple[float, float]]) -> tuple[float, dict[str, int]]:
    cats = list(Category.objects.filter(active=True))
    levels: dict[str, int] = {}
    rng = random.Random(7)
    t = time.perf_counter()
    for x, y in points:
        r = route(rng.choice(cats), Point(x, y, srid=4326))
        levels[r.level] = levels.get(r.level, 0) + 1
    return time.perf_counter() - t, levels


def bench_bare(points: list[tuple[float, float]]) -> float:
    db = settings.DATABASES["default"]
    conn = psycopg2.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"],
        host=db["HOST"],
        port=db["PORT"],
    )
    with conn, conn.cursor() as cur:
        t = time.perf_counter()
        for x, y in points:
            cur.execute(BARE_SQL, (x, y))
            cur.fetchone()
        elapsed = time.perf_counter() - t
    conn.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--street", default="620103003", help="street code (default: the demo)")
    args = ap.parse_args()
    points = random_points(args.points, args.street)
    bench_full(points[:50])  # warm caches
    bare = bench_bare(points)
    full, levels = bench_full(points)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM territory_grid")
        (grids,) = cur.fetchone()
    result = {
        "operation": "route a point (full routing)",
        "points": len(points),
        "grids": grids,
        "full_routes_per_s": round(len(points) / full, 1),
        "bare_pip_per_s": round(len(points) / bare, 1),
        "ratio": round(full / bare, 2),
        "levels": levels,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"{'operation':32} {'per s':>10} {'bare SQL per s':>15} {'ratio':>7}")
    print(
        f"{'full routing':32} {result['full_routes_per_s']:>10} {result['bare_pip_per_s']:>15} "
        f"{result['ratio']:>7}"
    )
    print("landed at:", ", ".join(f"{k} {v}" for k, v in sorted(levels.items())))
    out = ROOT / "bench" / "results" / "routing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
