"""Offline package of one grid for the phone (离线包).

One zip with:

- ``grid-<code>.mbtiles``: the grid's layers (grids, compounds, buildings, households, places,
  cases) as vector tiles, zooms :data:`ZOOMS`, in one MBTiles 1.3 file (SQLite; TMS rows,
  gzip-compressed MVT, every layer of a tile in the same tile blob);
- ``households.geojson``: the grid's households at their building with their residents, shown
  through the visibility matrix (``gridsvc.chain.visibility``) at the STAFF tier like the API:
  ID numbers and phones masked, birth year only, no ethnicity, no sensitive tags; a package is
  never unmasked;
- ``manifest.json``: grid, zooms, layers, feature counts.

The zip is deterministic (fixed entry times; built-at time kept in the database, not in the
file), so an unchanged grid keeps its ETag and a phone's ``If-None-Match`` gets a 304.

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
from django.db.models import Count
from django.utils import timezone

from geo.hexbin import lonlat_bbox_to_tiles
from gridsvc.chain.visibility import Tier, present_resident
from gridsvc.territory.models import Grid, Household, Resident

from . import services
from .models import GridChange, OfflinePackage

LAYERS = ("grids", "compounds", "buildings", "households", "places", "cases")
ZOOMS = range(14, 19)
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
MAX_TILES = 5_000
# Who may hold a package: holders of the whole grid (grid member, cadre, community, street),
# so the lowest tier is STAFF. Residents are shown at this tier: masked, never unmasked.
PACKAGE_TIER = Tier.STAFF


def is_stale(grid_id: int) -> bool:
    return GridChange.objects.filter(grid_id=grid_id).exists()


def _mbtiles(grid: Grid, tiles: list[tuple[int, int, int, bytes]], fields: dict) -> bytes:
    x0, y0, x1, y1 = grid.boundary.extent
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
            "description": "gridsvc offline package (no personal data in tiles)",
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


def household_collection(grid: Grid) -> dict:
    """The grid's households as GeoJSON points at their building, residents masked."""
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
        features.append(
            {
                "type": "Feature",
                "id": h.id,
                "geometry": {
                    "type": "Point",
                    "coordinates": [round(point.x, 7), round(point.y, 7)],
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
    return {"type": "FeatureCollection", "features": features}


def _tiles(grid: Grid) -> tuple[list[tuple[int, int, int, bytes]], dict[str, int]]:
    scope = services.grid_scope(grid.id)
    bbox = grid.boundary.extent
    out: list[tuple[int, int, int, bytes]] = []
    counts = dict.fromkeys(LAYERS, 0)
    queries = {name: services.parse_layer_query(services.LAYERS[name], {}) for name in LAYERS}
    for q in queries.values():
        q.timeless = True  # the package's bytes change only when its data does
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


def build_package(grid_id: int) -> OfflinePackage:
    """Build (or rebuild) the package of ``grid_id`` and store it; returns the row."""
    started = time.monotonic()
    grid = Grid.objects.select_related("community").get(pk=grid_id)
    isolate = not connection.in_atomic_block
    with transaction.atomic():
        if isolate:
            with connection.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        with connection.cursor() as cur:
            cur.execute("DELETE FROM layers_gridchange WHERE grid_id = %s", [grid_id])
        tiles, counts = _tiles(grid)
        fields = {name: services.LAYERS[name].tilejson_fields() for name in LAYERS}
        for clock_only in services.CLOCK_ONLY_CASE_PROPS:
            fields["cases"].pop(clock_only, None)
        mbtiles = _mbtiles(grid, tiles, fields)
        households = household_collection(grid)
        manifest = {
            "grid": {"id": grid.id, "code": grid.code, "name": grid.name},
            "bounds": list(grid.boundary.extent),
            "zooms": [ZOOMS[0], ZOOMS[-1]],
            "layers": list(LAYERS),
            "tiles": len(tiles),
            "features_at_max_zoom": counts,
            "households": len(households["features"]),
            "files": [f"grid-{grid.code}.mbtiles", "households.geojson"],
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
        package, _ = OfflinePackage.objects.select_for_update().get_or_create(grid=grid)
        if package.sha256 != sha or not package.file:
            old = package.file.name if package.file else None
            package.file.save(f"grid-{grid.id}-{sha[:16]}.zip", ContentFile(content), save=False)
            if old and old != package.file.name:
                package.file.storage.delete(old)
        package.sha256 = sha
        package.etag = f'"offline-{grid.id}-{sha[:24]}"'
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


def request_package(grid: Grid) -> tuple[OfflinePackage, bool]:
    """The grid's package row (created as queued if missing); True if a build was enqueued."""
    package, created = OfflinePackage.objects.get_or_create(grid=grid)
    if created or package.status == OfflinePackage.Status.FAILED or is_stale(grid.id):
        package.requested_at = timezone.now()
        package.save(update_fields=["requested_at"])
        from .tasks import enqueue_build

        return package, enqueue_build(grid.id)
    return package, False


def refresh_stale(limit: int = 50) -> dict[str, int]:
    """Rebuild stale or queued packages; drop change rows of grids with no package."""
    done = failed = 0
    stale = set(
        OfflinePackage.objects.filter(grid_id__in=GridChange.objects.values("grid_id")).values_list(
            "grid_id", flat=True
        )
    ) | set(
        OfflinePackage.objects.filter(status=OfflinePackage.Status.QUEUED).values_list(
            "grid_id", flat=True
        )
    )
    for grid_id in sorted(stale)[:limit]:
        try:
            build_package(grid_id)
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
