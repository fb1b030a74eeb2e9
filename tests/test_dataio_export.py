"""Layer exports and ledgers: open in GDAL and openpyxl, scoped, masked, audited."""

from __future__ import annotations

import io
import subprocess
import zipfile

import pyogrio
import pytest
from openpyxl import load_workbook

from gridsvc.audit.models import AuditEntry
from gridsvc.cases.models import Case
from gridsvc.territory.models import Building, Household

pytestmark = pytest.mark.django_db


def test_grid_member_exports_only_grid_1_and_gdal_opens_it(tmp_path, demo, member_client):
    client = member_client("grid1")
    resp = client.get("/api/v1/reports/export/grids/?format=gpkg")
    assert resp.status_code == 200
    path = tmp_path / "grids.gpkg"
    path.write_bytes(resp.content)
    info = pyogrio.read_info(path)
    assert info["features"] == 1 and info["crs"] == "EPSG:4326"
    frame = pyogrio.read_dataframe(path)
    assert list(frame["code"]) == [demo.grids[0].code]
    # GDAL's own tool (installed by scripts/setup.sh: a missing one fails, not skips)
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", str(path), "grids"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Feature Count: 1" in out

    resp = client.get("/api/v1/reports/export/buildings/?format=geojson")
    path = tmp_path / "b.geojson"
    path.write_bytes(resp.content)
    frame = pyogrio.read_dataframe(path)
    assert set(frame["grid_code"]) == {demo.grids[0].code}
    assert len(frame) == Building.objects.filter(grid=demo.grids[0]).count()
    assert AuditEntry.objects.filter(action="export", object_type="layer:buildings").exists()


def test_households_as_points_in_a_zipped_shapefile(tmp_path, demo, member_client):
    resp = member_client("street").get("/api/v1/reports/export/households/?format=shp")
    assert resp.status_code == 200 and resp["Content-Type"] == "application/zip"
    path = tmp_path / "households.zip"
    path.write_bytes(resp.content)
    names = zipfile.ZipFile(path).namelist()
    assert {"households.shp", "households.dbf", "households.prj", "households.cpg"} <= set(names)
    info = pyogrio.read_info(f"/vsizip/{path}/households.shp")
    assert info["features"] == Household.objects.count() and info["geometry_type"] == "Point"
    frame = pyogrio.read_dataframe(f"/vsizip/{path}/households.shp")
    assert "name" not in frame.columns and "id_number" not in frame.columns  # no personal data


def test_bad_layer_and_format(demo, member_client):
    client = member_client("street")
    assert client.get("/api/v1/reports/export/people/").status_code == 404
    bad = client.get("/api/v1/reports/export/grids/?format=kml")
    assert bad.status_code == 400 and "format" in bad.json()
    cases = client.get("/api/v1/reports/export/cases/?format=geojson")
    assert cases.status_code == 200
    props = cases.json()["features"][0]["properties"]
    assert {"number", "kind", "category", "status", "grid_code", "reported_at"} <= set(props)
    assert len(cases.json()["features"]) == Case.objects.count()


def test_ledgers_masked_scoped_audited(demo, member_client):
    client = member_client("grid1")
    code = demo.grids[0].code
    resp = client.get(f"/api/v1/reports/ledgers/{code}/?year=2026")
    assert resp.status_code == 200
    wb = load_workbook(io.BytesIO(resp.content))
    assert wb.sheetnames[0] == "汇总"
    for title in ("少数民族居民", "困难家庭", "失业下岗人员", "低保及廉租房", "独居老人",
                  "社区矫正及两劳帮教", "流动人口", "流动人口按户籍地", "德高望重及宗教人士"):  # fmt: skip
        assert title in wb.sheetnames
    ws = wb["少数民族居民"]
    header = [c.value for c in ws[2]]
    row = [c.value for c in ws[3]]
    assert row[header.index("姓名")]  # names are shown
    assert "*" in row[header.index("身份证号")] and "*" in row[header.index("联系电话")]
    assert row[header.index("民族")] != "汉族"
    correction = [c.value for c in wb["社区矫正及两劳帮教"][2]]
    assert correction[-1] == "12月走访"
    entry = AuditEntry.objects.filter(action="export", object_type="ledger").latest("id")
    assert entry.detail["grid"] == code
    other = client.get(f"/api/v1/reports/ledgers/{demo.grids[6].code}/")
    assert other.status_code == 404
    assert client.get(f"/api/v1/reports/ledgers/{code}/?year=20x6").status_code == 400
