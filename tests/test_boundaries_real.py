"""Boundary imports with real-world data (issue 18 items 1-9): GCJ-02 files, one CRS
vocabulary, street and community import with GB/T 2260-style codes, declared enclaves, sanity
limits, ``--json``, the command without DJANGO_DEBUG, and the real import through the worker.

Fixtures: tests/data/boundaries/ (made by make_fixtures.py there): a street east of the demo
street and its two communities, in GCJ-02, sharing an edge exactly, with a declared enclave.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from django.core.management import call_command
from django.core.management.base import CommandError
from procrastinate.contrib.django.models import ProcrastinateJob
from shapely.geometry import box

from fixtures.demo_street import COMMUNITY_CODE, _to_wgs84, grid_boxes
from geo.crs import transform_array
from gridsvc.dataio.boundaries import import_boundaries
from gridsvc.reports.models import BoundaryVersion, ImportRun
from gridsvc.territory.models import Building, Community, Grid, Street

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "boundaries"
STREETS = DATA / "streets_gcj02.geojson"
COMMUNITIES = DATA / "communities_gcj02.geojson"
URL = "/api/v1/reports/imports/boundaries/"


def wgs(geom):  # local metres of the demo → WGS84
    return shapely.transform(geom, lambda x, y: _to_wgs84.transform(x, y), interleaved=False)


def shifted(geoms, src: str = "wgs84", dst: str = "gcj02"):
    def conv(xy):
        x, y = transform_array(xy[:, 0], xy[:, 1], src, dst)
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms), conv)


def grids_frame() -> gpd.GeoDataFrame:
    rows = [(COMMUNITY_CODE + seq, wgs(poly)) for seq, poly in grid_boxes()]
    return gpd.GeoDataFrame(
        {"code": [c for c, _ in rows], "name": [f"网格{c[-3:]}" for c, _ in rows]},
        geometry=[g for _, g in rows],
        crs="EPSG:4326",
    )


def rfc7946(frame: gpd.GeoDataFrame, path: Path) -> Path:
    """Write GeoJSON as RFC 7946 says (no ``crs`` member), whatever the numbers are."""
    doc = json.loads(frame.set_crs(None, allow_override=True).to_json())
    doc.pop("crs", None)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def post(client, path: Path, **fields):  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        return client.post(URL, {"file": fh, **fields}, format="multipart")


@pytest.fixture
def new_street(demo):
    """The fixture street 620103004 imported by the operator (GCJ-02 undone)."""
    report = import_boundaries(STREETS, "street", crs="gcj02")
    assert report["applied"], report["errors"]
    return Street.objects.get(code="620103004")


# ---------------------------------------------------------------- item 1
def test_compound_in_no_community_is_an_error_per_feature_not_a_crash(
    tmp_path, demo, member_client
):
    frame = gpd.GeoDataFrame(
        {"code": ["Z-01", "Z-02"], "name": ["外地甲", "外地乙"]},
        geometry=[box(116.30, 39.90, 116.301, 39.901), box(116.31, 39.90, 116.311, 39.901)],
        crs="EPSG:4326",
    )
    path = tmp_path / "faraway.geojson"
    frame.to_file(path, driver="GeoJSON")
    report = import_boundaries(path, "compound", gcj02=True, dry_run=True)
    errors = [e for e in report["errors"] if e["check"] == "community"]
    assert [e["row"] for e in errors] == [1, 2] and "Z-01" in errors[0]["message"]
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_boundaries", str(path), "--kind", "compound", "--gcj02", "--dry-run",
            stdout=out, stderr=io.StringIO(),
        )  # fmt: skip
    assert "lies in no community" in out.getvalue() and "GCJ02 offset undone" in out.getvalue()
    resp = post(member_client("street"), path, kind="compound", gcj02="true")
    assert resp.status_code == 200 and not resp.json()["ok"]
    assert any(e["check"] == "scope" or e["check"] == "community" for e in resp.json()["errors"])


# ---------------------------------------------------------------- item 2
def test_unknown_crs_is_a_400_and_a_clear_command_error(tmp_path, demo, member_client):
    frame = grids_frame()
    path = tmp_path / "grids.csv"
    frame.assign(wkt=frame.geometry.to_wkt()).drop(columns="geometry").to_csv(path, index=False)
    resp = post(member_client("street"), path, kind="grid", crs="mars")
    assert resp.status_code == 400 and "unknown CRS" in resp.json()["crs"][0]
    resp = post(member_client("street"), path, kind="grid", crs="EPSG:999999")
    assert resp.status_code == 400 and "crs" in resp.json()
    with pytest.raises(CommandError, match="unknown CRS"):
        call_command("import_boundaries", str(path), "--kind", "grid", "--crs", "mars")
    report = import_boundaries(path, "grid", crs="mars", dry_run=True)
    assert not report["ok"] and report["errors"][0]["check"] == "crs"


# ---------------------------------------------------------------- item 3
def test_gcj02_and_bd09_by_name_on_api_and_command_for_csv_and_geojson(
    tmp_path, demo, member_client
):
    frame = grids_frame()
    for datum in ("gcj02", "bd09"):
        moved = frame.set_geometry(shifted(frame.geometry.values, "wgs84", datum))
        csv = tmp_path / f"grids_{datum}.csv"
        moved.assign(wkt=moved.geometry.to_wkt(rounding_precision=10)).drop(
            columns="geometry"
        ).to_csv(csv, index=False)
        gj = rfc7946(moved, tmp_path / f"grids_{datum}.geojson")
        for path in (csv, gj):
            resp = post(member_client("street"), path, kind="grid", crs=datum.upper())
            body = resp.json()
            assert resp.status_code == 200 and body["ok"], body["errors"]
            assert body["crs"]["offset"] == datum and body["gaps"] == [] and not body["overlaps"]
            assert len(body["unchanged"]) + len(body["updated"]) == 7
            out = io.StringIO()
            call_command(
                "import_boundaries", str(path), "--kind", "grid", "--crs", datum, "--dry-run",
                "--json", stdout=out, stderr=io.StringIO(),
            )  # fmt: skip
            assert json.loads(out.getvalue())["gaps"] == []
    # without the CRS the same GCJ-02 file lands hundreds of metres off
    plain = post(member_client("street"), tmp_path / "grids_gcj02.geojson", kind="grid").json()
    assert plain["gaps"] and plain["crs"]["offset"] is None


def test_epsg_code_is_honoured_for_geojson_and_disagreement_is_an_error(tmp_path, demo):
    gk = grids_frame().to_crs("EPSG:4544")
    undeclared = rfc7946(gk, tmp_path / "gk.geojson")  # metres, no crs member
    report = import_boundaries(undeclared, "grid", crs="EPSG:4544", dry_run=True)
    assert report["ok"], report["errors"]
    assert report["crs"]["source"] == "EPSG:4544" and report["gaps"] == []
    assert report["crs"]["stated"] == "EPSG:4544"
    # the file says EPSG:4544, the person says EPSG:4545: which is it?
    declared = tmp_path / "gk.gpkg"
    gk.to_file(declared)
    bad = import_boundaries(declared, "grid", crs="EPSG:4545", dry_run=True)
    assert not bad["ok"] and "CRS disagreement" in bad["errors"][0]["message"]
    assert "EPSG:4544" in bad["errors"][0]["message"]
    with pytest.raises(CommandError):
        call_command(
            "import_boundaries", str(declared), "--kind", "grid", "--crs", "gcj02", "--dry-run",
            stdout=io.StringIO(),
        )  # fmt: skip
    # agreeing statements are fine (4544 by number alone too)
    assert import_boundaries(declared, "grid", crs="4544", dry_run=True)["ok"]


# ---------------------------------------------------------------- items 4 and 5
def test_street_and_community_import_with_derived_codes_shared_edge_and_enclave(
    tmp_path, demo, new_street
):
    assert new_street.name == "新城街道"
    assert BoundaryVersion.objects.filter(kind="street", code="620103004").count() == 1
    report = import_boundaries(
        COMMUNITIES, "community", crs="gcj02", mapping={"role": "lx"}, strict=True
    )
    assert report["applied"], report["errors"]
    assert report["created"] == ["620103004001", "620103004002"]
    assert report["overlaps"] == [] and report["gaps"] == []  # shared edge exact, enclave declared
    assert [e["name"] for e in report["exclusions"]] == ["军事管理区"]
    assert report["exclusions"][0]["area_m2"] == pytest.approx(100 * 100, rel=0.01)
    east = Community.objects.get(code="620103004002")
    assert east.street == new_street and east.name == "东园社区"
    west_shape = shapely.from_wkt(Community.objects.get(code="620103004001").boundary.wkt)
    assert west_shape.distance(shapely.from_wkt(east.boundary.wkt)) < 1e-9  # they touch
    # GCJ-02 undone: the community lies where it was drawn in WGS84 (within centimetres)
    expected = wgs(box(1100, 0, 1400, 700))
    assert shapely.hausdorff_distance(west_shape, expected) < 2e-7  # ≈ 2 cm

    # without declaring the enclave, --strict refuses the gap it leaves in the street
    undeclared = tmp_path / "communities.geojson"
    frame = gpd.read_file(COMMUNITIES)
    frame[frame["lx"] != "飞地"].to_file(undeclared, driver="GeoJSON")
    strict = import_boundaries(undeclared, "community", crs="gcj02", strict=True, dry_run=True)
    assert not strict["ok"] and strict["gaps"][0]["area_m2"] == pytest.approx(10_000, rel=0.01)

    # a grid import in the community whose boundary has the hole: no gap, --strict accepts
    grids = gpd.GeoDataFrame(
        {"code": ["620103004002001"], "name": ["东园一格"]},
        geometry=[shapely.from_wkt(east.boundary.wkt)],
        crs="EPSG:4326",
    )
    gpath = tmp_path / "grids.gpkg"
    grids.to_file(gpath)
    ok = import_boundaries(gpath, "grid", strict=True, dry_run=True)
    assert ok["ok"] and ok["gaps"] == [], ok["errors"]


def test_code_derivation_and_checks(tmp_path, demo, new_street):
    frame = gpd.GeoDataFrame(
        {
            "code": ["003", "620103004004", "620103003099", "12", "620103004005"],
            "street": ["620103004", "", "620103004", "620103004", "999999004"],
        },
        geometry=[wgs(box(1000 + 10 * i, 0, 1005 + 10 * i, 5)) for i in range(5)],
        crs="EPSG:4326",
    )
    path = tmp_path / "c.gpkg"
    frame.to_file(path)
    report = import_boundaries(path, "community", dry_run=True)
    bad = {e["row"]: e["message"] for e in report["errors"] if e["check"] == "code"}
    assert set(bad) == {3, 4, 5}
    assert "does not start with street 620103004" in bad[3]
    assert "12 digits" in bad[4] and "GB/T 2260" in bad[5]
    assert set(report["created"]) == {"620103004003", "620103004004"}
    streets = gpd.GeoDataFrame(
        {"code": ["005", "620199001"], "name": ["甲", "乙"]},
        geometry=[wgs(box(2000, 0, 2100, 100)), wgs(box(2200, 0, 2300, 100))],
        crs="EPSG:4326",
    )
    spath = tmp_path / "s.gpkg"
    streets.to_file(spath)
    no_district = import_boundaries(spath, "street", dry_run=True)
    assert "give the 6-digit district code" in no_district["errors"][0]["message"]
    with_district = import_boundaries(spath, "street", district="620103", dry_run=True)
    msgs = [e["message"] for e in with_district["errors"]]
    assert with_district["created"] == ["620103005"] and "620199001" in msgs[0]


def test_api_community_import_with_a_column_map_and_scope(tmp_path, demo, member_client):
    frame = gpd.GeoDataFrame(
        {"SQ": ["012"], "MC": ["华林山社区（新界）"]},
        geometry=[shapely.from_wkt(demo.community.boundary.wkt)],
        crs="EPSG:4326",
    )
    path = tmp_path / "c.gpkg"
    frame.to_file(path)
    client = member_client("street")
    resp = post(client, path, kind="community", street="620103003", map="code=SQ,name=MC")
    body = resp.json()
    assert resp.status_code == 200 and body["ok"], body
    assert body["columns"] == {"code": "SQ", "name": "MC"} and body["updated"] == ["620103003012"]
    resp = post(client, path, kind="community", map='{"code": "SQ", "nme": "MC"}')
    assert resp.status_code == 400 and "nme" in resp.json()["map"][0]
    # a street data manager cannot import streets, nor communities of another street
    refused = post(client, STREETS, kind="street", crs="gcj02").json()
    assert not refused["ok"] and refused["errors"][0]["check"] == "scope"
    assert refused["overlaps"] == [] and not Street.objects.filter(code="620103004").exists()


# ---------------------------------------------------------------- item 6
def test_json_output_is_json_alone_with_progress_on_stderr(tmp_path, demo):
    frame = grids_frame()
    frame.loc[0, "geometry"] = wgs(box(0, 350, 300, 700))
    frame.loc[1, "geometry"] = wgs(grid_boxes()[1][1].difference(box(0, 350, 300, 700)))
    path = tmp_path / "grids.gpkg"
    frame.to_file(path)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_boundaries", str(path), "--kind", "grid", "--json", stdout=out, stderr=err)
    report = json.loads(out.getvalue())
    assert report["applied"] and len(report["updated"]) == 7
    assert "saving" in err.getvalue() and "7/7" in err.getvalue()


# ---------------------------------------------------------------- item 7
def test_sanity_limits_by_kind(tmp_path, demo):
    huge = shapely.Polygon.from_bounds(103.6, 35.95, 103.82, 36.13)  # ≈ 400 km²
    frame = gpd.GeoDataFrame(
        {"code": ["B-HUGE", "B-MALL", "B-OK"]},
        geometry=[huge, wgs(box(300, 20, 500, 170)), wgs(box(240, 500, 260, 512))],
        crs="EPSG:4326",
    )
    path = tmp_path / "b.gpkg"
    frame.to_file(path)
    report = import_boundaries(path, "building", dry_run=True)
    limits = [e for e in report["errors"] if e["check"] == "limits"]
    assert [e["code"] for e in limits] == ["B-HUGE"] and "km²" in limits[0]["message"]
    assert limits[0]["area_m2"] > 3e8
    assert any(
        w["check"] == "limits" and w["code"] == "B-MALL" for w in report["warnings"]
    )  # 30,000 m²: a warning
    assert not report["ok"] and not Building.objects.filter(code="B-OK").exists()
    wiggly = shapely.Point(wgs(box(240, 500, 260, 512)).centroid).buffer(0.0001, 6000)
    frame = gpd.GeoDataFrame({"code": ["B-WIG"]}, geometry=[wiggly], crs="EPSG:4326")
    frame.to_file(path)
    report = import_boundaries(path, "building", dry_run=True)
    assert any("vertices" in e["message"] for e in report["errors"])


# ---------------------------------------------------------------- item 8
def test_documented_command_works_without_django_debug(tmp_path, demo):
    from django.db import connection

    subprocess.run(["bash", str(ROOT / "scripts" / "demo_secrets.sh"), str(tmp_path / "env")],
                   check=True, capture_output=True)  # fmt: skip
    db = connection.settings_dict
    url = f"postgis://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    (tmp_path / "env").write_text(
        (tmp_path / "env").read_text() + f"DATABASE_URL={url}\n", encoding="utf-8"
    )
    drop = {"GRIDSVC_TESTING", "DJANGO_DEBUG", "DJANGO_SECRET_KEY", "GRIDSVC_FIELD_KEYS",
            "GRIDSVC_HASH_KEY", "DATABASE_URL"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["GRIDSVC_ENV_FILE"] = str(tmp_path / "env")
    path = tmp_path / "grids.gpkg"
    grids_frame().to_file(path)
    r = subprocess.run(
        [sys.executable, "manage.py", "import_boundaries", str(path), "--kind", "grid",
         "--dry-run", "--json"],
        env=env, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] and json.loads(r.stdout)["dry_run"]
    # without any settings it still refuses, and says where the key may come from
    env["GRIDSVC_ENV_FILE"] = str(tmp_path / "missing")
    r = subprocess.run([sys.executable, "manage.py", "check"], env=env, capture_output=True,
                       text=True, cwd=ROOT)  # fmt: skip
    assert r.returncode != 0 and "GRIDSVC_ENV_FILE" in r.stderr


# ---------------------------------------------------------------- item 9
def test_api_real_import_goes_through_the_worker_with_progress(tmp_path, demo, member_client):
    from gridsvc.dataio import tasks

    frame = grids_frame()
    frame.loc[0, "geometry"] = wgs(box(0, 350, 300, 700))
    frame.loc[1, "geometry"] = wgs(grid_boxes()[1][1].difference(box(0, 350, 300, 700)))
    frame = frame.set_geometry(shifted(frame.geometry.values))
    path = rfc7946(frame, tmp_path / "grids.geojson")
    before = Grid.objects.get(code=COMMUNITY_CODE + "001").boundary.area
    assert post(member_client("grid1"), path, kind="grid", dry_run="false").status_code == 403
    client = member_client("street")
    resp = post(client, path, kind="grid", crs="gcj02", dry_run="false")
    assert resp.status_code == 202, resp.content
    run_id = resp.json()["id"]
    assert resp["Location"].endswith(f"/runs/{run_id}/") and resp.json()["status"] == "queued"
    job = ProcrastinateJob.objects.get(task_name="dataio.import_boundaries", status="todo")
    assert job.args == {"run_id": run_id} and job.queue_name == "imports"
    assert Grid.objects.get(code=COMMUNITY_CODE + "001").boundary.area == before  # not yet
    assert b"620103003012001" not in bytes(ImportRun.objects.get(pk=run_id).upload)

    tasks.import_boundaries_job(run_id=run_id)  # what the worker runs
    status = client.get(f"/api/v1/reports/imports/runs/{run_id}/").json()
    assert status["status"] == "done" and status["report"]["applied"], status
    assert status["rows_done"] == status["rows_total"] == 7
    assert status["report"]["crs"]["offset"] == "gcj02" and status["report"]["gaps"] == []
    assert Grid.objects.get(code=COMMUNITY_CODE + "001").boundary.area > before
    run = ImportRun.objects.get(pk=run_id)
    assert run.upload is None and run.versions.count() == len(status["report"]["updated"])
    assert (
        member_client("street2").get(f"/api/v1/reports/imports/runs/{run_id}/").status_code == 404
    )
    # a file with errors: the worker records the failure and changes nothing
    bad = tmp_path / "bad.geojson"
    frame.assign(code="999999999999001").iloc[:1].to_file(bad, driver="GeoJSON")
    run_id = post(client, bad, kind="grid", dry_run="false").json()["id"]
    tasks.import_boundaries_job(run_id=run_id)
    status = client.get(f"/api/v1/reports/imports/runs/{run_id}/").json()
    assert status["status"] == "failed" and not status["applied"] and status["report"]["errors"]
