"""Offline package of one grid for the phone (离线包).

One zip per grid and coordinate system (``wgs84``, or ``gcj02`` for a phone drawing on an
Amap/Tencent basemap: tiles in the GCJ-02 web-mercator grid, household points in GCJ-02),
with:

- ``grid-<code>.mbtiles``: the grid's base layers (grids, compounds, buildings, households,
  places) as vector tiles, zooms :data:`ZOOMS`, in one MBTiles 1.3 file (SQLite; TMS rows,
  gzip-compressed MVT, every layer of a tile in the same tile blob);
- ``households.geojson``: the grid's households at their building with their residents, shown
  through the visibility matrix (``gridsvc.chain.visibility``) at the STAFF tier like the API:
  ID numbers and phones masked, birth year only, no ethnicity, no sensitive tags; a package is
  never unmasked;
- ``manifest.json``: grid, zooms, layers, feature counts.

The zip is deterministic (fixed entry times; built-at time kept in the database, not in the
file), so an unchanged grid keeps its ETag and a phone's ``If-None-Match`` gets a 304.

The package is the *base*; the change feed (``/api/v1/sync/changes/``) is the *delta*. Cases
change all day, so they are not in the package (the feed brings them, with their
coordinates) and a case change never makes a package stale; neither does a visit.
:func:`package_states` is what the feed tells the phone about its packages (ETag, stale).

Packages are built by the worker (``layers.build_offline``) when first asked for, and rebuilt
when the grid's data changed (``layers_gridchange`` rows, written by triggers, mark it stale).
The build reads its data and consumes the change rows in one REPEATABLE READ snapshot, so a
change committed during the build leaves the package stale and it is built again.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sqlite3
import tempfile
import time
import zipfile
from pathlib import Path

import orjson
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from geo import crs as geocrs
from geo.hexbin import lonlat_bbox_to_tiles
from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import Tier, present_resident
from gridsvc.territory.models import Grid, Household, Resident

from . import jobs, services
from .models import GridChange, OfflinePackage

LAYERS = ("grids", "compounds", "buildings", "households", "places")
CRS = ("wgs84", "gcj02")
ZOOMS = range(14, 19)
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
MAX_TILES = 5_000
# Who may hold a package: holders of the whole grid (grid member, cadre, community, street),
# so the lowest tier is STAFF. Residents are shown at this tier: masked, never unmasked.
PACKAGE_TIER = Tier.STAFF


def is_stale(grid_id: int) -> bool:
    return GridChange.objects.filter(grid_id=grid_id).exists()


def _extent(grid: Grid, crs: str) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = grid.boundary.extent
    if crs == "wgs84":
        return x0, y0, x1, y1
    lo = geocrs.from_wgs84(x0, y0, crs)
    hi = geocrs.from_wgs84(x1, y1, crs)
    return lo[0], lo[1], hi[0], hi[1]


def _mbtiles(
    grid: Grid, tiles: list[tuple[int, int, int, bytes]], fields: dict, crs: str = "wgs84"
) -> bytes:
    x0, y0, x1, y1 = _extent(grid, crs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.mbtiles"
        db = sqlite3.connect(path)
        db.executescript(
            "CREATE TABLE metadata (name text, value text);"
            "CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer,"
            " tile_data blob);"
            "CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);"
        )
        meta = {
            "name": f"{grid.name} {grid.code}",
            "format": "pbf",
            "type": "overlay",
            "version": "1",
            "description": "gridsvc offline package (no personal data in tiles); "
            + ("GCJ-02 web-mercator grid (Amap/Tencent)" if crs == "gcj02" else "WGS84"),
            "crs": crs,
            "bounds": ",".join(f"{v:.7f}" for v in (x0, y0, x1, y1)),
            "center": f"{(x0 + x1) / 2:.7f},{(y0 + y1) / 2:.7f},{ZOOMS[-1] - 1}",
            "minzoom": str(ZOOMS[0]),
            "maxzoom": str(ZOOMS[-1]),
            "json": json.dumps(
                {
                    "vector_layers": [
                        {
                            "id": name,
                            "fields": fields[name],
                            "minzoom": ZOOMS[0],
                            "maxzoom": ZOOMS[-1],
                        }
                        for name in LAYERS
                    ]
                },
                ensure_ascii=False,
            ),
        }
        db.executemany("INSERT INTO metadata VALUES (?, ?)", sorted(meta.items()))
        db.executemany(
            "INSERT INTO tiles VALUES (?, ?, ?, ?)",
            [(z, x, (1 << z) - 1 - y, gzip.compress(data, 6, mtime=0)) for z, x, y, data in tiles],
        )
        db.commit()
        db.execute("VACUUM")
        db.close()
        return path.read_bytes()


def household_collection(grid: Grid, crs: str = "wgs84") -> dict:
    """The grid's households as GeoJSON points at their building (in ``crs``), residents
    masked."""
    households = (
        Household.objects.filter(unit__building__grid=grid)
        .select_related("unit__building", "head")
        .annotate(resident_count=Count("residents"))
        .order_by("unit__building__code", "unit__number", "room")
    )
    residents: dict[int, list[dict]] = {}
    for r in Resident.objects.filter(household__unit__building__grid=grid).order_by("id"):
        record = {
            "id": r.id,
            "name": r.name,
            "gender": r.gender,
            "birth_year": None,
            "relation_to_head": r.relation_to_head,
            "residency": r.residency,
            "id_number": None,
            "phone": None,
            "tags": [],
        }
        # the visibility matrix at the lowest tier that may hold a package, never unmasked
        residents.setdefault(r.household_id, []).append(
            present_resident(record, r, PACKAGE_TIER, unmasked=False)
        )
    features = []
    for h in households:
        b = h.unit.building
        point = b.point or b.footprint.point_on_surface
        lon, lat = geocrs.from_wgs84(point.x, point.y, crs)
        features.append(
            {
                "type": "Feature",
                "id": h.id,
                "geometry": {
                    "type": "Point",
                    "coordinates": [round(lon, 7), round(lat, 7)],
                },
                "properties": {
                    "building": b.code,
                    "building_name": b.name,
                    "unit": h.unit.number,
                    "room": h.room,
                    "floor": h.floor,
                    "tenure": h.tenure,
                    "head": h.head_id,
                    "head_name": h.head.name if h.head else None,
                    "resident_count": h.resident_count,
                    "residents": residents.get(h.id, []),
                },
            }
        )
    return {"type": "FeatureCollection", "crs_name": crs, "features": features}


def _tiles(
    grid: Grid, crs: str = "wgs84"
) -> tuple[list[tuple[int, int, int, bytes]], dict[str, int]]:
    scope = services.grid_scope(grid.id)
    bbox = _extent(grid, crs)
    out: list[tuple[int, int, int, bytes]] = []
    counts = dict.fromkeys(LAYERS, 0)
    queries = {name: services.parse_layer_query(services.LAYERS[name], {}) for name in LAYERS}
    for q in queries.values():
        q.timeless = True  # the package's bytes change only when its data does
        q.crs = crs
    for z in ZOOMS:
        for _, x, y in lonlat_bbox_to_tiles(bbox, z, buffer=services.BUFFER / services.EXTENT):
            parts = []
            for name in LAYERS:
                data, n, _ = services.build_tile(name, z, x, y, scope, queries[name])
                if data:
                    parts.append(data)
                    if z == ZOOMS[-1]:
                        counts[name] += n
            if parts:
                out.append((z, x, y, b"".join(parts)))
            if len(out) > MAX_TILES:
                raise ValueError(f"grid {grid.code} needs more than {MAX_TILES} tiles")
    return out, counts


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


def _variants_to_build(grid_id: int, crs: str, stale: bool) -> list[str]:
    """The coordinate systems to build now: the one asked for, those queued or failed, and —
    when the grid's data changed — every package the grid has (they all went stale)."""
    rows = OfflinePackage.objects.filter(grid_id=grid_id)
    if not stale:
        rows = rows.filter(status__in=[OfflinePackage.Status.QUEUED, OfflinePackage.Status.FAILED])
    return sorted({crs, *rows.values_list("crs", flat=True)}, key=CRS.index)


def _build_one(grid: Grid, crs: str, started: float) -> OfflinePackage:
    tiles, counts = _tiles(grid, crs)
    fields = {name: services.LAYERS[name].tilejson_fields() for name in LAYERS}
    mbtiles = _mbtiles(grid, tiles, fields, crs)
    households = household_collection(grid, crs)
    manifest = {
        "grid": {"id": grid.id, "code": grid.code, "name": grid.name},
        "crs": crs,
        "bounds": list(_extent(grid, crs)),
        "zooms": [ZOOMS[0], ZOOMS[-1]],
        "layers": list(LAYERS),
        "tiles": len(tiles),
        "features_at_max_zoom": counts,
        "households": len(households["features"]),
        "files": [f"grid-{grid.code}.mbtiles", "households.geojson"],
        "delta": "cases, tasks and later changes come from the change feed "
        "(/api/v1/sync/changes/); the package is the base map",
        "privacy": "tiles carry no personal data; residents masked (ID numbers, phones, "
        "birth year only, no ethnicity, no sensitive tags)",
    }
    content = _zip(
        [
            ("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1).encode()),
            (f"grid-{grid.code}.mbtiles", mbtiles),
            ("households.geojson", orjson.dumps(households)),
        ]
    )
    sha = hashlib.sha256(content).hexdigest()
    package, _ = OfflinePackage.objects.select_for_update().get_or_create(grid=grid, crs=crs)
    if package.sha256 != sha or not package.file:
        old = package.file.name if package.file else None
        suffix = "" if crs == "wgs84" else f"-{crs}"
        package.file.save(
            f"grid-{grid.id}{suffix}-{sha[:16]}.zip", ContentFile(content), save=False
        )
        if old and old != package.file.name:
            package.file.storage.delete(old)
    package.sha256 = sha
    package.etag = package_etag(grid.id, crs, sha)
    package.size = len(content)
    package.status = OfflinePackage.Status.READY
    package.built_at = timezone.now()
    package.build_ms = int((time.monotonic() - started) * 1000)
    package.minzoom, package.maxzoom = ZOOMS[0], ZOOMS[-1]
    package.tiles = len(tiles)
    package.households = len(households["features"])
    package.summary = counts
    package.error = ""
    package.save()
    return package


def package_etag(grid_id: int, crs: str, sha: str) -> str:
    """``"offline-<grid>-<sha>"`` (WGS84) or ``"offline-<grid>-gcj02-<sha>"``: each
    coordinate system has its own ETag."""
    middle = "" if crs == "wgs84" else f"{crs}-"
    return f'"offline-{grid_id}-{middle}{sha[:24]}"'


def build_package(grid_id: int, crs: str = "wgs84") -> OfflinePackage:
    """Build (or rebuild) the package of ``grid_id`` in ``crs`` and store it; returns the row.

    In the same snapshot it also builds the grid's other packages that need it (queued, or all
    of them when the grid's data changed), since the change rows are consumed once per grid."""
    if crs not in CRS:
        raise ValueError(f"crs must be one of {', '.join(CRS)}")
    grid = Grid.objects.select_related("community").get(pk=grid_id)
    isolate = not connection.in_atomic_block
    with transaction.atomic():
        if isolate:
            with connection.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        with connection.cursor() as cur:
            cur.execute("DELETE FROM layers_gridchange WHERE grid_id = %s", [grid_id])
            stale = cur.rowcount > 0
        built = {}
        for variant in _variants_to_build(grid_id, crs, stale):
            built[variant] = _build_one(grid, variant, time.monotonic())
    return built[crs]


def request_package(grid: Grid, crs: str = "wgs84") -> tuple[OfflinePackage, bool]:
    """The grid's package row in ``crs`` (created as queued if missing); True if a build was
    enqueued."""
    package, created = OfflinePackage.objects.get_or_create(grid=grid, crs=crs)
    if created or package.status == OfflinePackage.Status.FAILED or is_stale(grid.id):
        package.requested_at = timezone.now()
        package.save(update_fields=["requested_at"])
        return package, jobs.enqueue_build(grid.id, crs)
    return package, False


def package_states(scope: Scope, download_base: str = "/api/v1/offline/grids/") -> list[dict]:
    """What the change feed says about the offline packages of the grids ``scope`` holds
    whole (the packages a phone may have): per built package ``grid``, ``crs``, ``etag``,
    ``size``, ``built_at``, ``stale`` (the grid's base data changed since: fetch the package
    again with ``If-None-Match`` once the rebuild is done) and ``download``. A phone compares
    ``etag`` with the one it holds; cases never make a package stale (they are in the feed).
    A few rows per member: small enough for every feed answer."""
    grids = services.whole_grid_ids(scope)
    rows = (
        OfflinePackage.objects.filter(grid_id__in=grids)
        .exclude(etag="")
        .select_related("grid")
        .order_by("grid_id", "crs")
    )
    stale = set(GridChange.objects.filter(grid_id__in=grids).values_list("grid_id", flat=True))
    out = []
    for p in sorted(rows, key=lambda p: (p.grid_id, CRS.index(p.crs))):
        query = "" if p.crs == "wgs84" else f"?crs={p.crs}"
        out.append(
            {
                "grid": p.grid_id,
                "code": p.grid.code,
                "crs": p.crs,
                "etag": p.etag,
                "size": p.size,
                "built_at": p.built_at.isoformat() if p.built_at else None,
                "stale": p.grid_id in stale,
                "download": f"{download_base}{p.grid_id}/package{query}",
            }
        )
    return out


def refresh_stale(limit: int = 50) -> dict[str, int]:
    """Rebuild stale or queued packages (every package of a stale grid, in one snapshot); drop
    change rows of grids with no package."""
    done = failed = 0
    todo: dict[int, str] = {}
    for grid_id, crs in OfflinePackage.objects.filter(
        Q(grid_id__in=GridChange.objects.values("grid_id")) | Q(status=OfflinePackage.Status.QUEUED)
    ).values_list("grid_id", "crs"):
        todo.setdefault(grid_id, crs)
    for grid_id in sorted(todo)[:limit]:
        try:
            build_package(grid_id, todo[grid_id])
            done += 1
        except Exception as exc:  # noqa: BLE001 - recorded on the package, others go on
            failed += 1
            OfflinePackage.objects.filter(grid_id=grid_id).update(
                status=OfflinePackage.Status.FAILED, error=str(exc)[:2000]
            )
    pruned, _ = GridChange.objects.exclude(
        grid_id__in=OfflinePackage.objects.values("grid_id")
    ).delete()
    return {"built": done, "failed": failed, "pruned": pruned}
