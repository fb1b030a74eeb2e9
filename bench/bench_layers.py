"""Benchmark: vector tiles (cold and cached) and the case heatmap, against the same SQL run
directly over psycopg, and against django-vectortiles serving the same layer.

Runs against whatever is in the configured database (the demo street, or a city from
``fixtures/city.py``); it only reads, except the tile cache rows it creates and clears and the
synthetic cases it may add (``cases=``) and removes again.

    .venv/bin/python bench/bench_layers.py [--cases N] [--tiles 30] [--repeat 5] [--zoom 16]
        [--layer buildings] [--json bench/results/layers.json]

Each row: ``operation``, ``median_ms``, ``p99_ms`` (of the samples), ``sql_median_ms`` (the
same SQL statement, literal parameters, over a plain psycopg connection) and ``ratio`` =
median_ms / sql_median_ms (1.0 = no overhead over the database). Rows:

- ``tile <layer> cold``: GET /tiles/<layer>/z/x/y.mvt through Django (auth, scope, SQL, gzip,
  cache write) with the cache emptied first; SQL = the tile statement.
- ``tile <layer> cached``: the same request answered from the tile cache; SQL = the tile
  statement (ratio < 1: the cache is that much cheaper than building); ``cache_sql_median_ms``
  is the cache lookup alone.
- ``tile <layer> django-vectortiles``: django-vectortiles' ``VectorLayer.get_tile`` for the
  same table, zoom and tiles (no territory scope, no cache); SQL = our tile statement.
- ``heatmap geojson``: GET /api/v1/heatmap/cases/ over the data's extent; SQL = its statement.
- ``heatmap ST_HexagonGrid join``: the naive statement (points joined to ST_HexagonGrid);
  compared with our arithmetic-cell statement.
- ``heatmap tile``: GET /tiles/heatmap/z/x/y.mvt (cold), SQL = its statement.

``run(...)`` returns the rows; the command line prints them and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gridsvc.settings")
os.environ.setdefault("GRIDSVC_TESTING", "1")  # dev secrets; never used in production

import django  # noqa: E402
from django.apps import apps  # noqa: E402

if not apps.ready:
    django.setup()

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

BENCH_MARK = "BENCH-L"


# ---------------------------------------------------------------------- helpers
def _ms(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    p99 = s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]
    return statistics.median(s) * 1000.0, p99 * 1000.0


def _timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _literal(sql: str, params: Any) -> str:
    """The statement with its parameters inlined as literals (Django's own adapters)."""
    return connection.ops.compose_sql(sql, list(params))


def _psycopg() -> psycopg.Connection:
    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        dbname=db["NAME"],
        autocommit=True,
        options="-c statement_timeout=120000",
    )


def _row(op: str, samples: list[float], sql_samples: list[float], **extra: Any) -> dict:
    med, p99 = _ms(samples)
    sql_med, _ = _ms(sql_samples)
    return {
        "operation": op,
        "median_ms": round(med, 3),
        "p99_ms": round(p99, 3),
        "sql_median_ms": round(sql_med, 3),
        "ratio": round(med / sql_med, 2) if sql_med else None,
        "samples": len(samples),
        **extra,
    }


def _member():  # type: ignore[no-untyped-def]
    """A superuser (sees everything, like django-vectortiles) or the street desk."""
    from gridsvc.accounts.models import Member

    m = Member.objects.filter(is_superuser=True).order_by("id").first()
    return m or Member.objects.get(username="street")


def _client(member):  # type: ignore[no-untyped-def]
    from rest_framework.test import APIClient

    c = APIClient()
    c.force_authenticate(member)
    return c


def _tiles_with_data(layer: str, zoom: int, n: int, seed: int = 1) -> list[tuple[int, int, int]]:
    from geo.hexbin import lonlat_to_tile
    from gridsvc.cases.models import Case
    from gridsvc.territory.models import Building

    if layer == "heatmap" or layer == "cases":
        pts = Case.objects.values_list("location", flat=True)
    else:
        pts = Building.objects.values_list("point", flat=True)
    ids = list(pts.order_by("?")[: n * 20])
    rng = random.Random(seed)
    rng.shuffle(ids)
    tiles: list[tuple[int, int, int]] = []
    for p in ids:
        if p is None:
            continue
        t = (zoom, *lonlat_to_tile(p.x, p.y, zoom))
        if t not in tiles:
            tiles.append(t)
        if len(tiles) >= n:
            break
    return tiles


def _add_cases(target: int) -> int:
    """Add synthetic cases (marked BENCH-L…) near buildings until ``target`` cases exist."""
    from django.contrib.gis.geos import Point
    from django.utils import timezone

    from gridsvc.cases.models import Case, Category
    from gridsvc.territory.models import Building

    have = Case.objects.count()
    need = max(0, target - have)
    if not need:
        return 0
    rng = random.Random(20261124)
    buildings = list(Building.objects.values_list("point", "grid_id"))
    cats = list(Category.objects.values_list("id", "kind"))
    statuses = ["reported", "assigned", "in_progress", "resolved", "closed", "closed"]
    now = timezone.now()
    rows = []
    for i in range(need):
        p, grid = buildings[i % len(buildings)]
        cat, kind = cats[i % len(cats)]
        rows.append(
            Case(
                number=f"{BENCH_MARK}{i:09d}",
                kind=kind,
                category_id=cat,
                title="bench",
                location=Point(
                    p.x + rng.uniform(-0.0015, 0.0015),
                    p.y + rng.uniform(-0.0012, 0.0012),
                    srid=4326,
                ),
                grid_id=grid,
                status=rng.choice(statuses),
                reported_at=now - timedelta(days=rng.uniform(0, 365)),
                due_at=now + timedelta(days=rng.uniform(-20, 20)),
            )
        )
    Case.objects.bulk_create(rows, batch_size=5000)
    return need


def _remove_cases() -> int:
    from gridsvc.cases.models import Case

    n, _ = Case.objects.filter(number__startswith=BENCH_MARK).delete()
    return n


def _clear_tiles(layer: str | None = None) -> None:
    with connection.cursor() as cur:
        if layer:
            cur.execute("DELETE FROM layers_tilecache WHERE layer = %s", [layer])
        else:
            cur.execute("DELETE FROM layers_tilecache")


# ---------------------------------------------------------------------- benchmarks
def bench_tiles(layer: str, zoom: int, tiles: list, repeat: int, pg, member) -> list[dict]:  # type: ignore[no-untyped-def]
    from gridsvc.chain.scope import scope_for
    from gridsvc.layers import services as S

    client = _client(member)
    scope = scope_for(member)
    q = S.parse_layer_query(S.LAYERS.get(layer), {})
    ldef = S.LAYERS.get(layer)
    statements = []
    for z, x, y in tiles:
        if layer == "heatmap":
            sql, params, _ = S._heatmap_tile_sql(scope, q, z, x, y)
        else:
            sql, params, _ = S._layer_tile_sql(ldef, scope, q, z, x, y)
        statements.append(_literal(sql, params))

    def sql_samples() -> list[float]:
        out = []
        for stmt in statements:
            out += _timed(lambda stmt=stmt: pg.execute(stmt).fetchone(), repeat)
        return out

    for stmt in statements:  # warm the database's caches once
        pg.execute(stmt).fetchone()
    sql = sql_samples()

    cold: list[float] = []
    for z, x, y in tiles:
        for _ in range(repeat):
            _clear_tiles(layer)
            t0 = time.perf_counter()
            r = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", HTTP_ACCEPT_ENCODING="gzip")
            cold.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.content[:200]
    cached: list[float] = []
    for z, x, y in tiles:
        client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", HTTP_ACCEPT_ENCODING="gzip")
        cached += _timed(
            lambda z=z, x=x, y=y: client.get(
                f"/tiles/{layer}/{z}/{x}/{y}.mvt", HTTP_ACCEPT_ENCODING="gzip"
            ),
            repeat,
        )
    lookup = []
    for z, x, y in tiles:
        variant = S.tile_variant(scope, q, layer)
        stmt = _literal(
            "SELECT data, etag FROM layers_tilecache WHERE layer = %s AND z = %s AND x = %s"
            " AND y = %s AND variant = %s AND expires_at > now()",
            [layer, z, x, y, variant],
        )
        lookup += _timed(lambda stmt=stmt: pg.execute(stmt).fetchone(), repeat)
    rows = [
        _row(f"tile {layer} cold", cold, sql, zoom=zoom, tiles=len(tiles)),
        _row(
            f"tile {layer} cached",
            cached,
            sql,
            zoom=zoom,
            tiles=len(tiles),
            cache_sql_median_ms=round(_ms(lookup)[0], 3),
        ),
    ]
    if layer in ("buildings", "grids", "compounds", "places"):
        rows.append(_bench_vectortiles(layer, tiles, repeat, sql))
    _clear_tiles(layer)
    return rows


def _bench_vectortiles(layer: str, tiles: list, repeat: int, sql: list[float]) -> dict:
    from vectortiles import VectorLayer

    from gridsvc.territory.models import Building, Compound, Grid, Place

    spec = {
        "buildings": (
            Building,
            "footprint",
            ("id", "code", "name", "floors", "grid_id", "compound_id"),
        ),
        "grids": (Grid, "boundary", ("id", "code", "name")),
        "compounds": (Compound, "boundary", ("id", "code", "name")),
        "places": (Place, "point", ("id", "kind", "name", "grid_id")),
    }[layer]

    class Layer(VectorLayer):  # type: ignore[misc, valid-type]
        model = spec[0]
        id = layer
        geom_field = spec[1]
        tile_fields = spec[2]
        queryset_limit = 20_000

    vl = Layer()
    samples = []
    for z, x, y in tiles:
        vl.get_tile(x, y, z)
        samples += _timed(lambda x=x, y=y, z=z: vl.get_tile(x, y, z), repeat)
    return _row(f"tile {layer} django-vectortiles", samples, sql, tiles=len(tiles))


def bench_heatmap(zoom: int, repeat: int, pg, member) -> list[dict]:  # type: ignore[no-untyped-def]
    from django.contrib.gis.db.models import Extent

    from geo.hexbin import hex_size_for_zoom, lonlat_to_3857
    from gridsvc.cases.models import Case
    from gridsvc.chain.scope import scope_for
    from gridsvc.layers import services as S

    ext = Case.objects.aggregate(e=Extent("location"))["e"]
    if ext is None:
        return []
    client = _client(member)
    scope = scope_for(member)
    q = S.LayerQuery()
    bbox = ",".join(f"{v:.7f}" for v in ext)
    url = f"/api/v1/heatmap/cases/?bbox={bbox}&zoom={zoom}"
    client.get(url)
    api = _timed(lambda: client.get(url), repeat)

    # the same statement as the service builds it
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        S.heatmap(scope, q, tuple(ext), zoom)  # type: ignore[arg-type]
    stmt = [c["sql"] for c in ctx.captured_queries if "GROUP BY i, j" in c["sql"]][0]
    pg.execute(stmt).fetchall()
    sql = _timed(lambda: pg.execute(stmt).fetchall(), repeat)

    size = hex_size_for_zoom(zoom)
    x0, y0 = lonlat_to_3857(ext[0], ext[1])
    x1, y1 = lonlat_to_3857(ext[2], ext[3])
    naive = (
        "SELECT h.i, h.j, count(*), ST_AsGeoJSON(ST_Transform(h.geom, 4326), 7) "
        f"FROM ST_HexagonGrid({size!r}, ST_MakeEnvelope({x0 - 2 * size!r}, {y0 - 2 * size!r}, "
        f"{x1 + 2 * size!r}, {y1 + 2 * size!r}, 3857)) h "
        "JOIN cases_case c ON c.location && ST_Transform(h.geom, 4326) "
        "AND ST_Intersects(ST_Transform(h.geom, 4326), c.location) "
        "GROUP BY h.i, h.j, h.geom"
    )
    pg.execute(naive).fetchall()
    naive_s = _timed(lambda: pg.execute(naive).fetchall(), max(1, repeat // 2))
    cases = Case.objects.count()
    rows = [
        _row("heatmap geojson", api, sql, zoom=zoom, cases=cases),
        _row("heatmap ST_HexagonGrid join", naive_s, sql, zoom=zoom, cases=cases),
    ]
    return rows


def run(
    cases: int | None = None,
    tiles: int = 30,
    repeat: int = 5,
    zoom: int = 16,
    layer: str = "buildings",
    heatmap_zoom: int = 14,
    keep_cases: bool = False,
) -> list[dict]:
    """Run the benchmark on the configured database and return the rows.

    :param cases: if the database holds fewer cases than this, synthetic cases (numbered
        ``BENCH-L…``, near buildings) are added for the run and removed afterwards.
    :param tiles: how many distinct tiles (with data) to request per layer.
    :param repeat: samples per tile (cold samples clear the cache first).
    :param zoom: tile zoom; ``layer``: the territory layer to bench (buildings, grids, …).
    """
    member = _member()
    added = _add_cases(cases) if cases else 0
    pg = _psycopg()
    try:
        rows = bench_tiles(layer, zoom, _tiles_with_data(layer, zoom, tiles), repeat, pg, member)
        rows += bench_tiles(
            "cases", zoom, _tiles_with_data("cases", zoom, tiles), repeat, pg, member
        )
        heat_tiles = _tiles_with_data("heatmap", heatmap_zoom, max(3, tiles // 3))
        rows += [
            r
            for r in bench_tiles("heatmap", heatmap_zoom, heat_tiles, repeat, pg, member)
            if r["operation"] != "tile heatmap cached"
        ]
        for r in rows:
            if r["operation"] == "tile heatmap cold":
                r["operation"] = "heatmap tile"
        rows += bench_heatmap(heatmap_zoom, max(repeat, 5), pg, member)
    finally:
        pg.close()
        if added and not keep_cases:
            _remove_cases()
    for r in rows:
        r["synthetic_cases"] = added
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=None)
    ap.add_argument("--tiles", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--zoom", type=int, default=16)
    ap.add_argument("--heatmap-zoom", type=int, default=14)
    ap.add_argument("--layer", default="buildings")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "layers.json"))
    args = ap.parse_args(argv)
    rows = run(
        cases=args.cases,
        tiles=args.tiles,
        repeat=args.repeat,
        zoom=args.zoom,
        layer=args.layer,
        heatmap_zoom=args.heatmap_zoom,
    )
    print(f"{'operation':40} {'median ms':>10} {'p99 ms':>10} {'sql ms':>10} {'ratio':>7}")
    for r in rows:
        print(
            f"{r['operation']:40} {r['median_ms']:10.2f} {r['p99_ms']:10.2f} "
            f"{r['sql_median_ms']:10.2f} {r['ratio'] if r['ratio'] is not None else '-':>7}"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
