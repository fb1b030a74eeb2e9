"""Boundary imports: broken files built in the test are reported, nothing is lost."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from django.core.management import call_command
from django.core.management.base import CommandError
from shapely.geometry import MultiPolygon, Polygon, box

from fixtures.demo_street import COMMUNITY_CODE, _to_wgs84, grid_boxes
from geo.crs import transform_array
from gridsvc.dataio.boundaries import import_boundaries
from gridsvc.reports.models import BoundaryVersion, ImportRun
from gridsvc.territory.models import Building, Compound, Grid

pytestmark = pytest.mark.django_db


def wgs(geom):  # local metres of the demo (origin SW corner) → WGS84
    return shapely.transform(geom, lambda x, y: _to_wgs84.transform(x, y), interleaved=False)


def grids_frame(overrides: dict[str, object] | None = None) -> gpd.GeoDataFrame:
    """The demo's 7 grids in WGS84, with some replaced (seq → local-metre polygon)."""
    overrides = overrides or {}
    rows = [(COMMUNITY_CODE + seq, wgs(overrides.get(seq, poly))) for seq, poly in grid_boxes()]
    return gpd.GeoDataFrame(
        {"code": [c for c, _ in rows], "name": [f"网格{c[-3:]}" for c, _ in rows]},
        geometry=[g for _, g in rows],
        crs="EPSG:4326",
    )


def test_gauss_kruger_file_is_reprojected_and_clean(tmp_path, demo):
    path = tmp_path / "grids_gk.gpkg"
    grids_frame().to_crs("EPSG:4544").to_file(path, layer="grids")  # CGCS2000 GK CM 105E
    names = {g.code: g.name for g in Grid.objects.all()}
    report = import_boundaries(path, "grid", dry_run=True)
    assert report["ok"], report["errors"]
    assert report["crs"]["source"] == "EPSG:4544"
    assert report["overlaps"] == [] and report["gaps"] == []
    assert report["buildings_in_no_grid"] == [] and report["buildings_in_two_grids"] == []
    assert len(report["updated"]) == 7  # names differ, geometries identical
    assert {g.code: g.name for g in Grid.objects.all()} == names  # dry run changed nothing
    assert ImportRun.objects.filter(dry_run=True, kind="grid").exists()


def test_self_intersection_is_repaired_with_areas(tmp_path, demo):
    bowtie = Polygon([(0, 350), (250, 700), (250, 350), (0, 700), (0, 350)])
    path = tmp_path / "grids.geojson"
    grids_frame({"001": bowtie}).to_file(path, driver="GeoJSON")
    report = import_boundaries(path, "grid", dry_run=True)
    bad = report["invalid_geometries"]
    assert [b["code"] for b in bad] == [COMMUNITY_CODE + "001"]
    assert "Self-intersection" in bad[0]["reason"] and bad[0]["repair"] == "make_valid"
    assert bad[0]["area_before_m2"] == pytest.approx(0, abs=1)  # the lobes cancel out
    assert bad[0]["area_after_m2"] == pytest.approx(250 * 350 / 2, rel=0.01)
    # the repaired bow-tie leaves two triangles of grid 1 uncovered: a gap in the community
    assert sum(g["area_m2"] for g in report["gaps"]) == pytest.approx(250 * 350 / 2, rel=0.01)
    assert (
        any(b["code"].endswith("B001") for b in report["buildings_in_no_grid"])
        or report["buildings_in_two_grids"]
    )


def test_overlap_and_gap_are_reported_with_areas(tmp_path, demo):
    path = tmp_path / "grids.shp"
    frame = grids_frame(
        {
            "001": box(0, 350, 270, 700),  # 20 m into grid 002
            "004": box(760, 350, 1000, 700),  # leaves a 10 m strip uncovered
        }
    )
    frame.to_file(path)
    report = import_boundaries(path, "grid", dry_run=True)
    pair = report["overlaps"][0]
    assert (pair["a"][-3:], pair["b"][-3:]) == ("001", "002")
    assert pair["area_m2"] == pytest.approx(20 * 350, rel=0.01)
    assert sum(g["area_m2"] for g in report["gaps"]) == pytest.approx(10 * 350, rel=0.02)
    assert report["ok"]  # warnings only …
    strict = import_boundaries(path, "grid", dry_run=True, strict=True)
    assert not strict["ok"]  # … unless strict


def test_wrong_and_missing_crs(tmp_path, demo):
    # metres labelled as degrees
    wrong = grids_frame().to_crs("EPSG:4544").set_crs("EPSG:4326", allow_override=True)
    p1 = tmp_path / "wrong.gpkg"
    wrong.to_file(p1)
    r1 = import_boundaries(p1, "grid", dry_run=True)
    assert not r1["ok"] and "wrong CRS" in r1["errors"][0]["message"]
    # a CSV of projected WKT has no CRS at all
    gk = grids_frame().to_crs("EPSG:4544")
    p2 = tmp_path / "grids.csv"
    gk.assign(wkt=gk.geometry.to_wkt()).drop(columns="geometry").to_csv(p2, index=False)
    r2 = import_boundaries(p2, "grid", dry_run=True)
    assert not r2["ok"] and "missing CRS" in r2["errors"][0]["message"]
    r3 = import_boundaries(p2, "grid", dry_run=True, assume_crs="EPSG:4544")
    assert r3["ok"], r3["errors"]
    # lon/lat WKT without CRS: assumed WGS84 with a warning
    wgs84 = grids_frame()
    p3 = tmp_path / "grids_ll.csv"
    wgs84.assign(wkt=wgs84.geometry.to_wkt()).drop(columns="geometry").to_csv(p3, index=False)
    r4 = import_boundaries(p3, "grid", dry_run=True)
    assert r4["ok"] and r4["crs"]["assumed"]
    assert any("missing CRS" in w["message"] for w in r4["warnings"])


def test_gcj02_option_undoes_the_offset(tmp_path, demo):
    def to_gcj(xy):
        x, y = transform_array(xy[:, 0], xy[:, 1], "wgs84", "gcj02")
        return np.column_stack([x, y])

    frame = grids_frame()
    frame = frame.set_geometry(shapely.transform(frame.geometry.values, to_gcj))
    path = tmp_path / "gcj.geojson"
    frame.to_file(path, driver="GeoJSON")
    plain = import_boundaries(path, "grid", dry_run=True)
    assert plain["overlaps"] == [] and plain["gaps"]  # shifted ~500 m: a gap in the community
    fixed = import_boundaries(path, "grid", dry_run=True, gcj02=True)
    assert fixed["crs"]["gcj02"] and fixed["gaps"] == [], fixed["gaps"]


def test_duplicates_and_unknown_community_block_and_keep_rows(tmp_path, demo):
    frame = grids_frame({"001": box(0, 350, 240, 700)})
    frame.loc[1, "code"] = frame.loc[2, "code"]  # duplicate code
    frame.loc[6, "code"] = "999999999999001"  # unknown community
    path = tmp_path / "bad.gpkg"
    frame.to_file(path)
    before = Grid.objects.get(code=COMMUNITY_CODE + "001").boundary.wkt
    report = import_boundaries(path, "grid")
    assert not report["ok"] and not report["applied"]
    checks = {e["check"] for e in report["errors"]}
    assert {"duplicates", "community"} <= checks
    assert Grid.objects.get(code=COMMUNITY_CODE + "001").boundary.wkt == before
    assert Grid.objects.count() == 7 and not BoundaryVersion.objects.exists()


def test_reimport_updates_in_place_keeps_history_and_rederives(tmp_path, demo):
    # move the 001/002 border 50 m east: buildings near it change grid
    frame = grids_frame({"001": box(0, 350, 300, 700), "002": box(300, 350, 500, 700)})
    path = tmp_path / "grids.gpkg"
    frame.to_file(path)
    ids_before = set(Grid.objects.values_list("id", flat=True))
    report = import_boundaries(path, "grid")
    assert report["applied"], report["errors"]
    assert set(Grid.objects.values_list("id", flat=True)) == ids_before  # updated in place
    g1 = Grid.objects.get(code=COMMUNITY_CODE + "001")
    assert g1.name == "网格001"
    history = BoundaryVersion.objects.filter(kind="grid", code=g1.code).order_by("version")
    assert [v.version for v in history] == [1, 2]
    assert history[0].valid_to is not None and history[1].valid_to is None
    assert history[0].geometry.area < history[1].geometry.area
    assert report["rederived_buildings"] > 0
    moved = Building.objects.filter(grid=g1).count()
    assert moved > Building.objects.filter(grid__code=COMMUNITY_CODE + "002").count() or moved
    # importing the same file again changes nothing
    again = import_boundaries(path, "grid")
    assert again["unchanged"] and not again["updated"] and not again["created"]
    assert BoundaryVersion.objects.filter(kind="grid", code=g1.code).count() == 2


def test_buildings_in_no_grid_and_in_two_and_new_compound(tmp_path, demo):
    slabs = {
        "T-EDGE": box(240, 500, 260, 512),  # straddles 001 | 002
        "T-OUT": box(1100, 100, 1150, 112),  # east of the community
    }
    frame = gpd.GeoDataFrame(
        {"楼栋编码": list(slabs), "楼栋名称": ["跨界楼", "界外楼"], "层数": [6, 5]},
        geometry=[MultiPolygon([wgs(g)]) for g in slabs.values()],
        crs="EPSG:4326",
    )
    path = tmp_path / "buildings.gpkg"
    frame.to_file(path, layer="楼栋")
    report = import_boundaries(path, "building")
    assert report["columns"]["code"] == "楼栋编码"
    assert [b["code"] for b in report["buildings_in_no_grid"]] == ["T-OUT"]
    two = report["buildings_in_two_grids"][0]
    assert two["code"] == "T-EDGE" and len(two["grids"]) == 2
    assert report["applied"]  # warnings do not block
    edge = Building.objects.get(code="T-EDGE")
    assert edge.grid is not None and edge.floors == 6 and edge.point is not None
    assert Building.objects.get(code="T-OUT").grid is None

    comp = gpd.GeoDataFrame(
        {"code": ["C-NEW"], "name": ["新小区"]},
        geometry=[wgs(box(20, 20, 120, 120))],  # overlaps compound C05 (15..200)
        crs="EPSG:4326",
    )
    cpath = tmp_path / "compounds.geojson"
    comp.to_file(cpath, driver="GeoJSON")
    rc = import_boundaries(cpath, "compound", dry_run=True)
    assert rc["ok"] and rc["overlaps"][0]["layer"] == "compounds"
    assert not Compound.objects.filter(code="C-NEW").exists()


def test_command_dry_run_and_failure_exit(tmp_path, demo, capsys):
    path = tmp_path / "grids.gpkg"
    grids_frame().to_file(path)
    call_command("import_boundaries", str(path), "--kind", "grid", "--dry-run")
    out = capsys.readouterr().out
    assert "DRY RUN" in out and "updated 7" in out
    bad = tmp_path / "nocode.geojson"
    grids_frame().rename(columns={"code": "foo"}).to_file(bad, driver="GeoJSON")
    with pytest.raises(CommandError):
        call_command("import_boundaries", str(bad), "--kind", "grid")
    assert pyogrio.read_info(path)["features"] == 7


def test_api_dry_run_for_data_managers_only(tmp_path, demo, member_client):
    path = tmp_path / "grids.gpkg"
    grids_frame({"001": box(0, 350, 270, 700)}).to_file(path)
    with path.open("rb") as fh:
        resp = member_client("street").post(
            "/api/v1/reports/imports/boundaries/", {"file": fh, "kind": "grid"}, format="multipart"
        )
    assert resp.status_code == 200, resp.content
    assert resp.json()["dry_run"] and resp.json()["overlaps"]
    with path.open("rb") as fh:
        denied = member_client("grid1").post(
            "/api/v1/reports/imports/boundaries/", {"file": fh, "kind": "grid"}, format="multipart"
        )
    assert denied.status_code == 403
    with path.open("rb") as fh:
        bad = member_client("street").post(
            "/api/v1/reports/imports/boundaries/", {"file": fh, "kind": "x"}, format="multipart"
        )
    assert bad.status_code == 400 and "kind" in bad.json()


# ---------------------------------------------------------------- scope (issue 15 item 1)
def _geos(geom):  # type: ignore[no-untyped-def]
    from django.contrib.gis.geos import GEOSGeometry

    return GEOSGeometry(shapely.to_wkt(MultiPolygon([geom])), srid=4326)


@pytest.fixture
def other_street(demo):
    """A neighbouring street east of the demo community (local metres 1000..1600), with a
    community, a grid, a compound and a building of its own."""
    from gridsvc.territory.models import Community, Street

    area = wgs(box(1000, 0, 1600, 700))
    street = Street.objects.create(code="620103004", name="邻街道", boundary=_geos(area))
    community = Community.objects.create(
        street=street, code="620103004001", name="邻社区", boundary=_geos(area)
    )
    grid = Grid.objects.create(
        community=community, code="620103004001001", name="邻网格", boundary=_geos(area)
    )
    compound = Compound.objects.create(
        community=community,
        code="X-C01",
        name="邻小区",
        boundary=_geos(wgs(box(1050, 50, 1300, 300))),
    )
    building = Building.objects.create(
        code="X-B01",
        name="邻楼",
        footprint=_geos(wgs(box(1100, 100, 1150, 112))),
        grid=grid,
        compound=compound,
    )
    return type(
        "Other", (), {"street": street, "grid": grid, "compound": compound, "building": building}
    )


def _post(client, path, kind):  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        return client.post(
            "/api/v1/reports/imports/boundaries/", {"file": fh, "kind": kind}, format="multipart"
        )


def test_data_manager_cannot_touch_another_streets_territory(
    tmp_path, demo, other_street, member_client
):
    from gridsvc.accounts.models import Member

    actor = Member.objects.get(username="street")
    before = Compound.objects.get(code="X-C01").boundary.wkt
    # a compound in our own community that reuses the neighbour's compound code
    comp = gpd.GeoDataFrame(
        {"code": ["X-C01"], "name": ["抢占"]},
        geometry=[wgs(box(20, 20, 120, 120))],
        crs="EPSG:4326",
    )
    cpath = tmp_path / "c.geojson"
    comp.to_file(cpath, driver="GeoJSON")
    resp = _post(member_client("street"), cpath, "compound")
    assert resp.status_code == 200 and not resp.json()["ok"]
    assert any(e["check"] == "scope" for e in resp.json()["errors"])
    report = import_boundaries(cpath, "compound", actor=actor)
    assert not report["applied"]
    comp_after = Compound.objects.get(code="X-C01")
    assert comp_after.boundary.wkt == before and comp_after.name == "邻小区"
    assert comp_after.community.code == "620103004001"

    # a grid of our community drawn over the neighbour street (its building would follow)
    frame = grids_frame({"007": box(750, 0, 1200, 350)})
    gpath = tmp_path / "g.gpkg"
    frame.to_file(gpath)
    report = import_boundaries(gpath, "grid", actor=actor)
    assert not report["applied"]
    assert [
        e["code"] if "code" in e else e["row"] for e in report["errors"] if e["check"] == "scope"
    ]
    assert Building.objects.get(code="X-B01").grid_id == other_street.grid.pk

    # a building with the neighbour's building code, placed in our community
    bframe = gpd.GeoDataFrame(
        {"code": ["X-B01"]},
        geometry=[MultiPolygon([wgs(box(240, 500, 260, 512))])],
        crs="EPSG:4326",
    )
    bpath = tmp_path / "b.gpkg"
    bframe.to_file(bpath)
    report = import_boundaries(bpath, "building", actor=actor)
    assert not report["applied"] and report["errors"][0]["check"] == "scope"
    assert Building.objects.get(code="X-B01").compound_id == other_street.compound.pk

    # the operator (command line, no actor) may: the same grid file is only warned about
    assert import_boundaries(gpath, "grid", dry_run=True)["ok"]


def test_rederivation_after_an_import_leaves_other_streets_buildings(demo, other_street):
    """Defence in depth: even if a boundary reached over, only the caller's buildings move."""
    from django.contrib.gis.geos import Polygon as GPolygon

    from gridsvc.accounts.models import Member
    from gridsvc.dataio.boundaries import _buildings_to_rederive, import_scope

    scope = import_scope(Member.objects.get(username="street"))
    env = GPolygon.from_bbox(Building.objects.get(code="X-B01").footprint.extent)
    env.srid = 4326
    assert other_street.building.pk not in _buildings_to_rederive(scope, env)
    assert other_street.building.pk in _buildings_to_rederive(import_scope(None), env)


def test_api_refuses_a_file_with_too_many_features(tmp_path, demo, member_client, settings):
    settings.BOUNDARY_MAX_FEATURES = 3
    path = tmp_path / "grids.gpkg"
    grids_frame().to_file(path)
    resp = _post(member_client("street"), path, "grid")
    assert resp.status_code == 413 and "at most 3" in resp.json()["file"][0]
