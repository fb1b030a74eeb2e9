"""Per-request overhead of a few read endpoints, measured in-process (no HTTP server).

    .venv/bin/python bench/bench_overhead.py [-n 200] [--user grid1] [--profile chain-point]

Uses the demo street (``manage.py load_demo``) in the dev database, DEBUG off, and DRF's
APIClient authenticated with a JWT bearer token from ``POST /api/v1/auth/token/``. For each
endpoint it prints the median and p90 wall time per call and the number of SQL queries one
call runs (with their total SQL time as Django saw it). ``--profile NAME`` prints a cProfile
of that endpoint. These are measurements, not a pass/fail test.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import benchenv  # noqa: E402

benchenv.apply()

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

PASSWORD = "gridsvc-demo"


def login(username: str) -> APIClient:
    c = APIClient()
    r = c.post(
        "/api/v1/auth/token/",
        {"username": username, "password": PASSWORD, "device": "bench"},
        format="json",
    )
    if r.status_code != 200:
        sys.exit(f"login as {username} failed: {r.status_code} {r.content[:200]!r}")
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {r.json()['access']}")
    return c


def endpoints(username: str) -> dict[str, str]:
    from django.contrib.auth import get_user_model

    from gridsvc.chain.models import Position
    from gridsvc.chain.scope import scope_for
    from gridsvc.territory.models import Building, Household

    user = get_user_model().objects.get(username=username)
    scope = scope_for(user)
    hh = scope.filter(Household.objects.all()).order_by("id").first()
    b = scope.filter(Building.objects.exclude(footprint__isnull=True)).order_by("id").first()
    pt = b.footprint.point_on_surface.transform(4326, clone=True) if b else None
    assert Position.objects.filter(member=user).exists(), f"{username} holds no position"
    out = {}
    if pt is not None:
        out["chain-point"] = f"/api/v1/chain/?lon={pt.x:.7f}&lat={pt.y:.7f}"
    if hh is not None:
        out["chain-household"] = f"/api/v1/chain/?household={hh.id}"
    out["my-tasks"] = "/api/v1/visit-tasks/?mine=1"
    out["change-feed"] = "/api/v1/sync/changes/"
    out["me"] = "/api/v1/me/"
    return out


def measure(client: APIClient, path: str, n: int) -> dict:
    for _ in range(3):
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.content[:300])
    with CaptureQueriesContext(connection) as ctx:
        client.get(path)
    captured = list(ctx.captured_queries)  # copy: the log is reset by the next request
    sql_ms = sum(float(q["time"]) for q in captured) * 1000
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.get(path)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p90_ms": times[int(len(times) * 0.9)],
        "queries": len(captured),
        "sql_ms": sql_ms,
        "sql": [q["sql"] for q in captured],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--user", default="grid1")
    ap.add_argument("--profile", default="")
    ap.add_argument("--show-sql", action="store_true")
    args = ap.parse_args()
    client = login(args.user)
    paths = endpoints(args.user)
    print(f"user={args.user} n={args.n} DEBUG=off in-process APIClient + JWT")
    print(f"{'endpoint':<18}{'median ms':>10}{'p90 ms':>9}{'queries':>9}{'sql ms':>8}")
    for name, path in paths.items():
        m = measure(client, path, args.n)
        print(
            f"{name:<18}{m['median_ms']:>10.2f}{m['p90_ms']:>9.2f}"
            f"{m['queries']:>9}{m['sql_ms']:>8.2f}"
        )
        if args.show_sql:
            for s in m["sql"]:
                print("    ", s[:300])
    if args.profile:
        path = paths[args.profile]
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.n):
            client.get(path)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(45)


if __name__ == "__main__":
    main()
