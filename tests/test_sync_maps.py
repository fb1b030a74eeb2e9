"""Issue 16, items 9, 11 and 12 for the phone: coordinates in every endpoint (one ``crs``
vocabulary, unknown ones refused), GCJ-02 tiles and offline packages for Amap/Tencent
basemaps with their own cache rows and ETags, the package's download (Content-Length,
Range/If-Range resume, never gzipped twice), its staleness for the change feed, cases kept
out of the package (the feed is the delta), and the upload limits advertised before upload.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import sqlite3
import zipfile

import mapbox_vector_tile
import pytest
from procrastinate.contrib.django.models import ProcrastinateJob

from geo.crs import gcj02_affine, wgs84_to_gcj02
from geo.hexbin import lonlat_to_tile
from gridsvc.layers import offline
from gridsvc.layers import tasks as worker
from gridsvc.layers.models import GridChange, OfflinePackage, TileCache
from gridsvc.territory.models import Building, Grid

from .cases_helpers import report

pytestmark = pytest.mark.django_db

Z = 18


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (a[0] - b[0]) * 111_320 * math.cos(math.radians(a[1]))
    dy = (a[1] - b[1]) * 110_574
    return math.hypot(dx, dy)


def tile_point_to_lonlat(z: int, x: int, y: int, px: float, py: float) -> tuple[float, float]:
    """A point of a decoded tile (mapbox-vector-tile: y up, extent 4096) → lon/lat of the
    tile grid's plane."""
    n = 1 << z
    fx = (x + px / 4096) / n
    fy = (y + 1 - py / 4096) / n  # row from the top
    lon = fx * 360 - 180
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * fy))))
    return lon, lat


def a_building(grid: Grid) -> Building:
    return Building.objects.filter(grid=grid, point__isnull=False).order_by("code").first()


def household_points(client, z, x, y, query=""):  # type: ignore[no-untyped-def]
    r = client.get(f"/tiles/households/{z}/{x}/{y}.mvt{query}")
    assert r.status_code == 200, r.content[:300]
    body = gzip.decompress(r.content) if r.get("Content-Encoding") == "gzip" else r.content
    decoded = mapbox_vector_tile.decode(body) if body else {}
    return r, decoded.get("households", {}).get("features", [])


# ============================================================== item 9: crs everywhere
def same_chain(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k != "when"} == {
        k: v for k, v in b.items() if k != "when"
    }


def test_chain_refuses_an_unknown_crs_and_reads_gcj02_points(demo, member_client):
    client = member_client("grid1")
    b = a_building(demo.grids[0])
    r = client.get(f"/api/v1/chain/?lon={b.point.x}&lat={b.point.y}&crs=bogus")
    assert r.status_code == 400 and "crs" in r.json()
    wgs = client.get(f"/api/v1/chain/?lon={b.point.x}&lat={b.point.y}")
    assert wgs.status_code == 200
    glon, glat = wgs84_to_gcj02(b.point.x, b.point.y)
    gcj = client.get(f"/api/v1/chain/?lon={glon}&lat={glat}&crs=gcj02")
    assert gcj.status_code == 200 and same_chain(gcj.json(), wgs.json())
    aliased = client.get(f"/api/v1/chain/?lon={b.point.x}&lat={b.point.y}&crs=EPSG:4326")
    assert same_chain(aliased.json(), wgs.json())


def test_case_bbox_is_read_in_crs(demo, member_client):
    client = member_client("grid1")
    case = report(reporter="grid1", title="路灯坏了").case
    lon, lat = case.location.x, case.location.y
    glon, glat = wgs84_to_gcj02(lon, lat)
    d = 0.0003  # ~30 m: the GCJ-02 box does not hold the WGS84 point (~500 m away)
    box = f"{glon - d},{glat - d},{glon + d},{glat + d}"
    ids = {c["id"] for c in client.get(f"/api/v1/cases/?bbox={box}&crs=gcj02").json()["results"]}
    assert case.id in ids
    ids = {c["id"] for c in client.get(f"/api/v1/cases/?bbox={box}").json()["results"]}
    assert case.id not in ids
    assert client.get(f"/api/v1/cases/?bbox={box}&crs=bogus").status_code == 400


def test_route_start_and_answer_in_crs(demo, member_client):
    client = member_client("grid1")
    r = client.get("/api/v1/visits/route/?start_lon=103.8&start_lat=36.0&crs=bogus")
    assert r.status_code == 400 and "crs" in r.json()
    wgs = client.get("/api/v1/visits/route/").json()
    gcj = client.get("/api/v1/visits/route/?crs=gcj02").json()
    assert gcj["crs"] == "gcj02"
    for a, b in zip(wgs["stops"], gcj["stops"], strict=True):
        expected = wgs84_to_gcj02(a["lon"], a["lat"])
        assert metres(expected, (b["lon"], b["lat"])) < 0.01


def test_visits_take_the_api_crs_aliases(demo, member_client):
    import uuid

    from django.utils import timezone

    from gridsvc.territory.models import Household

    client = member_client("grid1")
    h = Household.objects.filter(unit__building__grid=demo.grids[0]).order_by("id").first()
    b = h.unit.building
    item = {
        "client_uuid": str(uuid.uuid4()),
        "household": h.id,
        "client_time": timezone.now().isoformat(),
        "lon": b.point.x,
        "lat": b.point.y,
        "crs": "EPSG:4326",
        "notes": "走访",
    }
    r = client.post("/api/v1/visits/batch/", {"visits": [item]}, format="json")
    assert r.status_code == 200
    assert r.json()["results"][0]["status"] == "accepted", r.json()
    item = {**item, "client_uuid": str(uuid.uuid4()), "crs": "mars"}
    res = client.post("/api/v1/visits/batch/", {"visits": [item]}, format="json").json()
    assert res["results"][0]["status"] == "rejected" and "crs" in res["results"][0]["errors"]


# ============================================================== item 9: GCJ-02 tiles
def test_gcj02_tiles_are_drawn_in_amaps_grid_with_their_own_etag_and_cache(demo, member_client):
    client = member_client("grid1")
    b = a_building(demo.grids[0])
    wgs_point = (b.point.x, b.point.y)
    gcj_point = wgs84_to_gcj02(*wgs_point)
    assert metres(wgs_point, gcj_point) > 100  # the offset a basemap shows

    x, y = lonlat_to_tile(*gcj_point, Z)
    r_gcj, feats = household_points(client, Z, x, y, "?crs=gcj02")
    assert r_gcj["X-Tile-Cache"] == "miss"
    mine = [f for f in feats if f["properties"]["building"] == b.code]
    assert mine, "the building's households are in the GCJ-02 tile holding its GCJ-02 point"
    px, py = mine[0]["geometry"]["coordinates"]
    drawn = tile_point_to_lonlat(Z, x, y, px, py)
    # drawn where Amap draws the place (within a tile unit, ~4 cm at z18), not 227 m off
    assert metres(drawn, gcj_point) < 0.2

    # the same z/x/y in WGS84 is another tile: other bytes, ETag and cache row
    r_wgs, wfeats = household_points(client, Z, x, y)
    assert r_wgs["ETag"] != r_gcj["ETag"]
    for f in wfeats:
        if f["properties"]["building"] == b.code:
            px, py = f["geometry"]["coordinates"]
            assert metres(tile_point_to_lonlat(Z, x, y, px, py), wgs_point) < 0.2
    again, _ = household_points(client, Z, x, y, "?crs=gcj02")
    assert again["X-Tile-Cache"] == "hit" and again["ETag"] == r_gcj["ETag"]
    assert TileCache.objects.filter(layer="households", z=Z, x=x, y=y).count() == 2
    r304 = client.get(
        f"/tiles/households/{Z}/{x}/{y}.mvt?crs=gcj02", HTTP_IF_NONE_MATCH=r_gcj["ETag"]
    )
    assert r304.status_code == 304
    r200 = client.get(
        f"/tiles/households/{Z}/{x}/{y}.mvt?crs=gcj02", HTTP_IF_NONE_MATCH=r_wgs["ETag"]
    )
    assert r200.status_code == 200


def test_gcj02_tile_polygons_and_heatmap(demo, member_client):
    client = member_client("street")
    b = a_building(demo.grids[0])
    gcj_point = wgs84_to_gcj02(b.point.x, b.point.y)
    x, y = lonlat_to_tile(*gcj_point, 16)
    r = client.get(f"/tiles/buildings/16/{x}/{y}.mvt?crs=gcj02", HTTP_ACCEPT_ENCODING="gzip")
    decoded = mapbox_vector_tile.decode(gzip.decompress(r.content))
    ring = next(f for f in decoded["buildings"]["features"] if f["id"] == b.id)["geometry"]
    coords = ring["coordinates"][0] if ring["type"] == "Polygon" else ring["coordinates"][0][0]
    xs = [c[0] for c in coords]
    ys = [c[1] for c in coords]
    centre = tile_point_to_lonlat(16, x, y, (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
    ex = b.footprint.extent
    expected = wgs84_to_gcj02((ex[0] + ex[2]) / 2, (ex[1] + ex[3]) / 2)
    assert metres(centre, expected) < 1.0
    heat = client.get(f"/tiles/heatmap/16/{x}/{y}.mvt?crs=gcj02")
    assert heat.status_code == 200


def test_tile_crs_is_validated_and_tilejson_follows_it(demo, member_client):
    client = member_client("grid1")
    for crs in ("bogus", "bd09"):
        r = client.get(f"/tiles/buildings/16/0/0.mvt?crs={crs}")
        assert r.status_code == 400 and "crs" in r.json(), crs
        assert client.get(f"/tiles/buildings.json?crs={crs}").status_code == 400
    plain = client.get("/tiles/buildings.json").json()
    tj = client.get("/tiles/buildings.json?crs=gcj02").json()
    assert tj["crs"] == "gcj02" and plain["crs"] == "wgs84"
    assert "crs=gcj02" in tj["tiles"][0]
    lo = wgs84_to_gcj02(plain["bounds"][0], plain["bounds"][1])
    assert metres(lo, (tj["bounds"][0], tj["bounds"][1])) < 0.1
    # cgcs2000 is WGS84 to centimetres: the same tiles
    a = client.get("/tiles/buildings/16/0/0.mvt?crs=cgcs2000")
    assert a.status_code == 200


def test_the_affine_fit_is_within_centimetres_at_package_zooms():
    lon, lat = 103.83, 36.06  # Lanzhou
    span = 360 / 2**14
    _, err = gcj02_affine((lon, lat, lon + span, lat + span))
    assert err * 111_320 < 0.3


# ============================================================== GCJ-02 offline packages
def unzip(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_gcj02_package_is_a_package_of_its_own(demo, member_client, tmp_path):
    client = member_client("grid1")
    g1 = demo.grids[0]
    meta = client.get(f"/api/v1/offline/grids/{g1.id}/?crs=gcj02").json()
    assert meta["crs"] == "gcj02" and meta["status"] == "queued"
    assert meta["download"].endswith("/package?crs=gcj02")
    job = ProcrastinateJob.objects.get(task_name="layers.build_offline", status="todo")
    assert job.args == {"grid_id": g1.id, "crs": "gcj02"}
    assert client.get(f"/api/v1/offline/grids/{g1.id}/?crs=bogus").status_code == 400
    assert client.get(f"/api/v1/offline/grids/{g1.id}/package?crs=bd09").status_code == 400

    worker.build_offline(grid_id=g1.id, crs="gcj02")
    wgs = offline.build_package(g1.id)
    gcj = OfflinePackage.objects.get(grid=g1, crs="gcj02")
    assert gcj.status == "ready" and gcj.etag != wgs.etag and "gcj02" in gcj.etag
    r = client.get(f"/api/v1/offline/grids/{g1.id}/package?crs=gcj02")
    assert r.status_code == 200 and r["ETag"] == gcj.etag and r["X-Package-Crs"] == "gcj02"
    # the WGS84 package's ETag does not match the GCJ-02 one
    r = client.get(f"/api/v1/offline/grids/{g1.id}/package?crs=gcj02", HTTP_IF_NONE_MATCH=wgs.etag)
    assert r.status_code == 200
    files = unzip(b"".join(r.streaming_content))
    wfiles = unzip(wgs.file.read())
    assert json.loads(files["manifest.json"])["crs"] == "gcj02"
    gfeats = json.loads(files["households.geojson"])["features"]
    wfeats = json.loads(wfiles["households.geojson"])["features"]
    assert [f["id"] for f in gfeats] == [f["id"] for f in wfeats]
    for g, w in zip(gfeats, wfeats, strict=True):
        expected = wgs84_to_gcj02(*w["geometry"]["coordinates"])
        assert metres(expected, tuple(g["geometry"]["coordinates"])) < 0.02
    path = tmp_path / "g.mbtiles"
    path.write_bytes(files[f"grid-{g1.code}.mbtiles"])
    db = sqlite3.connect(path)
    meta = dict(db.execute("SELECT name, value FROM metadata"))
    assert meta["crs"] == "gcj02"
    # a building's households are in the tile of their GCJ-02 point (TMS rows)
    b = a_building(g1)
    gx, gy = wgs84_to_gcj02(b.point.x, b.point.y)
    x, y = lonlat_to_tile(gx, gy, 18)
    row = db.execute(
        "SELECT tile_data FROM tiles WHERE zoom_level = 18 AND tile_column = ? AND tile_row = ?",
        (x, (1 << 18) - 1 - y),
    ).fetchone()
    decoded = mapbox_vector_tile.decode(gzip.decompress(row[0]))
    pts = [
        f["geometry"]["coordinates"]
        for f in decoded["households"]["features"]
        if f["properties"]["building"] == b.code
    ]
    assert pts and metres(tile_point_to_lonlat(18, x, y, *pts[0]), (gx, gy)) < 0.2


def test_a_data_change_rebuilds_both_packages_of_the_grid(demo):
    g1 = demo.grids[0]
    offline.build_package(g1.id)
    offline.build_package(g1.id, "gcj02")
    b = a_building(g1)
    Building.objects.filter(pk=b.pk).update(floors=(b.floors or 1) + 1)
    assert offline.is_stale(g1.id)
    before = dict(OfflinePackage.objects.filter(grid=g1).values_list("crs", "built_at"))
    offline.refresh_stale()
    after = dict(OfflinePackage.objects.filter(grid=g1).values_list("crs", "built_at"))
    assert not offline.is_stale(g1.id)
    assert all(after[c] > before[c] for c in ("wgs84", "gcj02"))


# ============================================================== item 12: download
def test_package_downloads_with_length_and_resumes_with_range(demo, member_client):
    client = member_client("grid1")
    g1 = demo.grids[0]
    package = offline.build_package(g1.id)
    url = f"/api/v1/offline/grids/{g1.id}/package"
    whole = client.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert whole.status_code == 200
    # a zip is not gzipped a second time: exact length, strong ETag, ranges offered
    assert "Content-Encoding" not in whole
    assert int(whole["Content-Length"]) == package.size
    assert whole["ETag"] == package.etag and not whole["ETag"].startswith("W/")
    assert whole["Accept-Ranges"] == "bytes"
    body = b"".join(whole.streaming_content)
    assert len(body) == package.size

    cut = package.size // 3
    part = client.get(
        url, HTTP_RANGE=f"bytes={cut}-", HTTP_IF_RANGE=package.etag, HTTP_ACCEPT_ENCODING="gzip"
    )
    assert part.status_code == 206 and "Content-Encoding" not in part
    assert part["Content-Range"] == f"bytes {cut}-{package.size - 1}/{package.size}"
    assert int(part["Content-Length"]) == package.size - cut
    assert body[:cut] + b"".join(part.streaming_content) == body

    tail = client.get(url, HTTP_RANGE="bytes=-10")
    assert tail.status_code == 206 and b"".join(tail.streaming_content) == body[-10:]
    mid = client.get(url, HTTP_RANGE="bytes=5-14")
    assert mid["Content-Range"] == f"bytes 5-14/{package.size}"
    assert b"".join(mid.streaming_content) == body[5:15]

    # the package changed since: If-Range does not match → the whole new package (200)
    stale = client.get(url, HTTP_RANGE=f"bytes={cut}-", HTTP_IF_RANGE='"offline-old"')
    assert stale.status_code == 200 and int(stale["Content-Length"]) == package.size
    beyond = client.get(url, HTTP_RANGE=f"bytes={package.size}-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{package.size}"


# ============================================================== base and delta
def test_cases_are_in_the_feed_not_in_the_package_and_do_not_make_it_stale(demo, tmp_path):
    g1 = demo.grids[0]
    package = offline.build_package(g1.id)
    files = unzip(package.file.read())
    path = tmp_path / "g.mbtiles"
    path.write_bytes(files[f"grid-{g1.code}.mbtiles"])
    meta = dict(sqlite3.connect(path).execute("SELECT name, value FROM metadata"))
    assert "cases" not in {v["id"] for v in json.loads(meta["json"])["vector_layers"]}
    assert "change feed" in json.loads(files["manifest.json"])["delta"]
    GridChange.objects.all().delete()
    report(reporter="grid1", title="楼道堆物")
    assert not offline.is_stale(g1.id)
    assert not ProcrastinateJob.objects.filter(task_name="layers.refresh_stale").exists()


def test_package_states_for_the_change_feed(demo, member_client):
    from gridsvc.chain.scope import Scope

    g1, g2 = demo.grids[0], demo.grids[1]
    offline.build_package(g1.id)
    offline.build_package(g1.id, "gcj02")
    offline.build_package(g2.id)
    states = offline.package_states(Scope(grid_ids={g1.id}))
    assert [(s["grid"], s["crs"]) for s in states] == [(g1.id, "wgs84"), (g1.id, "gcj02")]
    etags = dict(OfflinePackage.objects.filter(grid=g1).values_list("crs", "etag"))
    assert {s["crs"]: s["etag"] for s in states} == etags
    assert not any(s["stale"] for s in states)
    assert states[1]["download"].endswith(f"{g1.id}/package?crs=gcj02")
    b = a_building(g1)
    Building.objects.filter(pk=b.pk).update(name="新名字")
    assert all(s["stale"] for s in offline.package_states(Scope(grid_ids={g1.id})))
    street = offline.package_states(Scope(street_ids={demo.street.id}))
    assert {s["grid"] for s in street} == {g1.id, g2.id}


# ============================================================== item 11: limits
def test_limits_are_advertised_before_upload(demo, member_client):
    from gridsvc.visits import ingest

    r = member_client("grid1").get("/api/v1/sync/limits/")
    assert r.status_code == 200
    data = r.json()
    assert data["visit_photo"]["max_bytes"] == ingest.MAX_PHOTO_BYTES == 5 * 1024 * 1024
    assert data["visit_photo"]["max_per_visit"] == ingest.MAX_PHOTOS
    assert data["case_attachment"]["max_bytes"] == 10 * 1024 * 1024
    assert data["visit_batch_max_items"] == 500
    assert data["offline_package"]["crs"] == ["wgs84", "gcj02"]
    assert "gcj02" in data["coordinate_systems"]


def test_wgs84_only_territory_lists_refuse_other_crs(demo, member_client):
    client = member_client("grid1")
    b = a_building(demo.grids[0])
    box = f"{b.point.x - 0.001},{b.point.y - 0.001},{b.point.x + 0.001},{b.point.y + 0.001}"
    for path in ("grids", "compounds", "buildings", "places"):
        r = client.get(f"/api/v1/{path}/?in_bbox={box}&crs=gcj02")
        assert r.status_code == 400 and "crs" in r.json(), path
        assert f"/api/v1/layers/{path}/" in r.json()["crs"][0]
        assert client.get(f"/api/v1/{path}/?crs=bogus").status_code == 400
        assert client.get(f"/api/v1/{path}/?in_bbox={box}&crs=EPSG:4326").status_code == 200
    ids = {f["id"] for f in client.get(f"/api/v1/buildings/?in_bbox={box}").json()["features"]}
    assert b.id in ids
