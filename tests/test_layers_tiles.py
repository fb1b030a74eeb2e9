"""Vector tiles: decoded with mapbox-vector-tile (layers, features, extents), territory limits
(grid 1 gets nothing of grid 2), no personal data, ETag/304, the cache and its invalidation by
the data under a tile, TileJSON, bad input; GDAL's MVT driver reads a saved tile."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess

import mapbox_vector_tile
import pytest
from django.db import connection

from geo.hexbin import lonlat_to_tile, tile_bounds_3857
from gridsvc.cases.models import Case, Category
from gridsvc.layers.models import TileCache
from gridsvc.territory.models import Building, Grid, Household, Resident

from .cases_helpers import report

pytestmark = pytest.mark.django_db

ALL_LAYERS = ("grids", "compounds", "buildings", "households", "places", "cases", "visits")
FORBIDDEN_KEYS = {
    "title",
    "description",
    "parties",
    "id_number",
    "phone",
    "tags",
    "ethnicity",
    "head_name",
    "head",
    "member",
    "outcome",
    "note",
    "notes",
}


def tile_of(grid: Grid, z: int) -> tuple[int, int, int]:
    c = grid.boundary.point_on_surface
    return (z, *lonlat_to_tile(c.x, c.y, z))


def fetch(client, layer: str, z: int, x: int, y: int, query: str = "", **headers):  # type: ignore[no-untyped-def]
    r = client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt{query}", **headers)
    assert r.status_code == 200, r.content[:300]
    assert r["Content-Type"] == "application/vnd.mapbox-vector-tile"
    body = r.content
    if r.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return r, (mapbox_vector_tile.decode(body) if body else {})


def features(decoded: dict, layer: str) -> list[dict]:
    return decoded.get(layer, {}).get("features", [])


def test_every_layer_decodes_with_features_inside_the_tile(demo, member_client):
    client = member_client("street")
    z, x, y = tile_of(demo.grids[0], 16)
    seen = {}
    for layer in ALL_LAYERS + ("heatmap",):
        _, decoded = fetch(client, layer, z, x, y)
        assert set(decoded) <= {layer}
        feats = features(decoded, layer)
        seen[layer] = len(feats)
        if feats:
            assert decoded[layer]["extent"] == 4096
        for f in feats:
            assert not (FORBIDDEN_KEYS & set(f["properties"])), (layer, f["properties"])
            coords = json.dumps(f["geometry"]["coordinates"])
            values = [float(v) for v in coords.replace("[", " ").replace("]", " ").split(",")]
            # within the tile's 4096 extent plus the 64-unit buffer
            assert all(-64 - 1 <= v <= 4096 + 64 + 1 for v in values), (layer, coords[:200])
    for layer in ("grids", "compounds", "buildings", "households", "cases", "visits", "heatmap"):
        assert seen[layer] > 0, f"{layer} has features in grid 1's tile: {seen}"


def test_tile_feature_properties_and_ids(demo, member_client):
    client = member_client("grid1")
    z, x, y = tile_of(demo.grids[0], 16)
    _, decoded = fetch(client, "buildings", z, x, y)
    ids = {f["id"] for f in features(decoded, "buildings")}
    expected = set(Building.objects.filter(grid=demo.grids[0]).values_list("id", flat=True))
    assert ids and ids <= expected
    props = features(decoded, "buildings")[0]["properties"]
    assert set(props) >= {"code", "floors", "grid"}
    _, decoded = fetch(client, "cases", z, x, y)
    case = features(decoded, "cases")[0]
    assert set(case["properties"]) >= {"status", "category", "age_days", "open", "overdue"}
    db = Case.objects.get(pk=case["id"])
    assert case["properties"]["status"] == db.status
    assert case["properties"]["category"] == db.category.code


def test_a_grid_member_gets_nothing_of_another_grid(demo, member_client):
    g1, g2 = demo.grids[0], demo.grids[1]
    grid1 = member_client("grid1")
    street = member_client("street")
    g2_buildings = set(Building.objects.filter(grid=g2).values_list("id", flat=True))
    g2_cases = set(Case.objects.filter(grid=g2).values_list("id", flat=True))
    assert g2_buildings and g2_cases
    checked = 0
    for z in (15, 16, 17):
        z, x, y = tile_of(g2, z)
        for layer in ALL_LAYERS + ("heatmap",):
            _, mine = fetch(grid1, layer, z, x, y)
            _, all_ = fetch(street, layer, z, x, y)
            if layer == "grids":
                assert {f["id"] for f in features(mine, layer)} <= {g1.id}
            if layer == "buildings":
                assert not {f["id"] for f in features(mine, layer)} & g2_buildings
                checked += len({f["id"] for f in features(all_, layer)} & g2_buildings)
            if layer == "cases":
                assert not {f["id"] for f in features(mine, layer)} & g2_cases
                checked += len({f["id"] for f in features(all_, layer)} & g2_cases)
    assert checked > 0, "the street desk does see grid 2 in the same tiles"
    # a tile wholly inside grid 2 (and away from grid 1) is empty for grid 1's member
    b = Building.objects.filter(grid=g2).exclude(footprint__dwithin=(g1.boundary, 0.0003)).first()
    z, x, y = (18, *lonlat_to_tile(b.point.x, b.point.y, 18))
    for layer in ALL_LAYERS + ("heatmap",):
        r, mine = fetch(grid1, layer, z, x, y)
        assert not features(mine, layer), layer


def test_no_personal_data_in_any_tile(demo, member_client):
    client = member_client("street")
    names = list(
        Resident.objects.filter(household__unit__building__grid=demo.grids[0]).values_list(
            "name", flat=True
        )[:200]
    )
    cases = list(Case.objects.filter(grid=demo.grids[0]).values_list("title", "description"))
    z, x, y = tile_of(demo.grids[0], 17)
    blob = ""
    for layer in ALL_LAYERS:
        r, decoded = fetch(client, layer, z, x, y)
        blob += json.dumps(decoded, ensure_ascii=False)
    assert names and cases
    for name in names:
        assert name not in blob
    for title, description in cases:
        assert title not in blob
        if description:
            assert description not in blob


def test_households_are_counted_per_building_at_low_zoom(demo, member_client):
    client = member_client("grid1")
    g1 = demo.grids[0]
    z, x, y = tile_of(g1, 15)
    _, decoded = fetch(client, "households", z, x, y)
    per_building = {
        f["properties"]["building"]: f["properties"]["households"]
        for f in features(decoded, "households")
    }
    expected = {
        b.code: Household.objects.filter(unit__building=b).count()
        for b in Building.objects.filter(grid=g1)
    }
    assert per_building == {k: v for k, v in expected.items() if k in per_building}
    assert sum(per_building.values()) == sum(expected.values())  # the grid fits in the tile
    # at zoom 18: one point per household, with the room but no person
    b = Building.objects.filter(grid=g1).order_by("code").first()
    z, x, y = (18, *lonlat_to_tile(b.point.x, b.point.y, 18))
    _, decoded = fetch(client, "households", z, x, y)
    hh = [f for f in features(decoded, "households") if f["properties"]["building"] == b.code]
    assert len(hh) == Household.objects.filter(unit__building=b).count()
    assert {"room", "floor", "unit"} <= set(hh[0]["properties"])


def test_below_minzoom_the_tile_is_empty_and_low_zoom_grids_are_simplified(demo, member_client):
    client = member_client("street")
    z, x, y = tile_of(demo.grids[0], 10)
    r, decoded = fetch(client, "buildings", z, x, y)
    assert decoded == {} and r.content == b""
    _, decoded = fetch(client, "grids", z, x, y)
    assert len(features(decoded, "grids")) == len(demo.grids)


def test_etag_last_modified_304_and_the_cache(demo, member_client):
    client = member_client("grid1")
    z, x, y = tile_of(demo.grids[0], 16)
    r1, d1 = fetch(client, "buildings", z, x, y, HTTP_ACCEPT_ENCODING="gzip")
    assert r1["X-Tile-Cache"] == "miss" and r1["Content-Encoding"] == "gzip"
    assert r1["ETag"].startswith('"') and r1["Last-Modified"]
    assert "private" in r1["Cache-Control"] and "max-age" in r1["Cache-Control"]
    r2, d2 = fetch(client, "buildings", z, x, y)
    assert r2["X-Tile-Cache"] == "hit" and r2["ETag"] == r1["ETag"] and d1 == d2
    assert r2.get("Content-Encoding") is None  # no gzip asked: plain protobuf
    r3 = client.get(f"/tiles/buildings/{z}/{x}/{y}.mvt", HTTP_IF_NONE_MATCH=r1["ETag"])
    assert r3.status_code == 304 and r3.content == b""
    r4 = client.get(f"/tiles/buildings/{z}/{x}/{y}.mvt", HTTP_IF_MODIFIED_SINCE=r1["Last-Modified"])
    assert r4.status_code == 304
    # the same tile for another territory is another cache row
    fetch(member_client("street"), "buildings", z, x, y)
    assert TileCache.objects.filter(layer="buildings", z=z, x=x, y=y).count() == 2


def test_a_change_under_a_tile_invalidates_it_and_only_it(demo, member_client):
    client = member_client("grid1")
    g1 = demo.grids[0]
    b = Building.objects.filter(grid=g1).order_by("code").first()
    z, x, y = (17, *lonlat_to_tile(b.point.x, b.point.y, 17))
    far = tile_of(demo.grids[-1], 17)
    r1, _ = fetch(client, "buildings", z, x, y)
    fetch(member_client("street"), "buildings", *far)
    assert TileCache.objects.filter(layer="buildings").count() == 2
    Building.objects.filter(pk=b.pk).update(floors=b.floors + 3)  # a bulk update: the trigger
    assert not TileCache.objects.filter(layer="buildings", z=z, x=x, y=y).exists()
    assert TileCache.objects.filter(layer="buildings", z=far[0], x=far[1], y=far[2]).exists()
    r2, decoded = fetch(client, "buildings", z, x, y)
    assert r2["X-Tile-Cache"] == "miss" and r2["ETag"] != r1["ETag"]
    floors = {f["id"]: f["properties"]["floors"] for f in features(decoded, "buildings")}
    assert floors[b.pk] == b.floors + 3
    # a new case under the tile drops the cached case and heatmap tiles there
    fetch(client, "cases", z, x, y)
    fetch(client, "heatmap", z, x, y)
    hh = Household.objects.filter(unit__building=b).order_by("id").first()
    report(household=hh)
    assert not TileCache.objects.filter(layer__in=["cases", "heatmap"], z=z, x=x, y=y).exists()
    # renaming a category drops the case tiles (they carry its code)
    fetch(client, "cases", z, x, y)
    assert TileCache.objects.filter(layer="cases").exists()
    category = Category.objects.get(code="neighbour.noise")
    category.name = "噪声扰民"
    category.save()
    assert not TileCache.objects.filter(layer__in=["cases", "heatmap"]).exists()
    assert TileCache.objects.filter(layer="buildings").exists()


def test_case_filters_in_tiles(demo, member_client):
    client = member_client("street")
    z, x, y = tile_of(demo.grids[0], 15)
    _, everything = fetch(client, "cases", z, x, y)
    _, opened = fetch(client, "cases", z, x, y, "?status=open")
    _, closed = fetch(client, "cases", z, x, y, "?state=closed&category=neighbour")
    n_all = len(features(everything, "cases"))
    assert 0 < len(features(opened, "cases")) < n_all
    assert all(f["properties"]["open"] for f in features(opened, "cases"))
    assert features(closed, "cases"), "the demo has closed neighbour cases in this tile"
    assert all(
        f["properties"]["status"] == "closed"
        and f["properties"]["category"].startswith("neighbour")
        for f in features(closed, "cases")
    )


@pytest.mark.parametrize(
    ("url", "field", "status"),
    [
        ("/tiles/nope/1/0/0.mvt", "layer", 404),
        ("/tiles/grids/23/0/0.mvt", "z", 400),
        ("/tiles/grids/2/4/0.mvt", "x", 400),
        ("/tiles/grids/2/0/9.mvt", "y", 400),
        ("/tiles/cases/16/0/0.mvt?status=bogus", "status", 400),
        ("/tiles/cases/16/0/0.mvt?category=nope", "category", 400),
        ("/tiles/heatmap/16/0/0.mvt?since=yesterday", "since", 400),
        ("/tiles/visits/16/0/0.mvt?far_off=maybe", "far_off", 400),
        ("/tiles/nope.json", "layer", 404),
    ],
)
def test_bad_tile_requests_name_the_field(member_client, url, field, status):
    r = member_client("street").get(url)
    assert r.status_code == status
    assert field in r.json()


def test_tiles_need_a_login(client, demo):
    z, x, y = tile_of(demo.grids[0], 16)
    r = client.get(f"/tiles/grids/{z}/{x}/{y}.mvt")
    assert r.status_code in (401, 403)


def test_tilejson(demo, member_client):
    r = member_client("grid1").get("/tiles/cases.json?status=open")
    assert r.status_code == 200
    tj = r.json()
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"] == ["http://testserver/tiles/cases/{z}/{x}/{y}.mvt?status=open"]
    assert tj["vector_layers"][0]["id"] == "cases"
    assert "status" in tj["vector_layers"][0]["fields"]
    g = demo.grids[0].boundary.extent
    assert tj["bounds"] == pytest.approx(list(g), abs=1e-6)
    assert (
        member_client("street").get("/tiles/heatmap.json").json()["vector_layers"][0]["id"]
        == "heatmap"
    )


def test_gdal_reads_a_saved_tile(demo, member_client, tmp_path):
    # GDAL's own tool is installed by scripts/setup.sh: a missing one fails, never skips.
    assert shutil.which("ogrinfo"), "ogrinfo missing: run scripts/setup.sh (gdal-bin)"
    z, x, y = tile_of(demo.grids[0], 16)
    r, decoded = fetch(member_client("street"), "buildings", z, x, y)
    path = tmp_path / str(z) / str(x)
    path.mkdir(parents=True)
    (path / f"{y}.mvt").write_bytes(r.content)
    out = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-so", str(path / f"{y}.mvt")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "Layer name: buildings" in out
    assert f"Feature Count: {len(features(decoded, 'buildings'))}" in out
    # GDAL georeferences the tile from its z/x/y path: features fall in the tile's bounds
    full = subprocess.run(
        ["ogrinfo", "-ro", "-al", str(path / f"{y}.mvt")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "code (String) = 620103003012-B" in full
    ext = [line for line in out.splitlines() if line.startswith("Extent:")][0]
    xmin, ymin, xmax, ymax = tile_bounds_3857(z, x, y)
    nums = [
        float(v)
        for v in ext.replace("Extent:", "")
        .replace("(", "")
        .replace(")", "")
        .replace("-", " ", 0)
        .replace(" - ", ",")
        .replace(",", " ")
        .split()
    ]
    margin = (xmax - xmin) * 64 / 4096 + 1
    assert xmin - margin <= nums[0] and nums[2] <= xmax + margin
    assert ymin - margin <= nums[1] and nums[3] <= ymax + margin


def test_one_sql_statement_builds_a_tile(demo, member_client):
    from django.test.utils import CaptureQueriesContext

    client = member_client("street")
    z, x, y = tile_of(demo.grids[0], 16)
    with CaptureQueriesContext(connection) as ctx:
        fetch(client, "cases", z, x, y)
    mvt = [q["sql"] for q in ctx.captured_queries if "ST_AsMVT(" in q["sql"]]
    assert len(mvt) == 1
    assert "ST_TileEnvelope" in mvt[0] and "&&" in mvt[0]
