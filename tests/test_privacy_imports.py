"""Imports and privacy (issue 15, items 1, 5 and 6 for imports): identities are resolved only
inside the caller's territory and a match outside names no one; a hostile or huge file gets
a 4xx naming ``file`` (or goes to the background worker with progress) and nothing is stored
half-way; user text comes back in the error workbook as text, never as a formula."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook, load_workbook
from procrastinate.contrib.django.models import ProcrastinateJob

from gridsvc.accounts.models import Member
from gridsvc.chain.models import Position
from gridsvc.crypto import keyed_hash
from gridsvc.reports.models import ImportRun
from gridsvc.territory.codes import make_id_number
from gridsvc.territory.models import Building, Household, Resident, Unit

pytestmark = pytest.mark.django_db

URL = "/api/v1/reports/imports/roster/"
HEADERS = ["楼栋", "单元", "房号", "姓名", "身份证号", "民族", "联系电话", "与户主关系"]


def xlsx(rows: list[list[str]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(HEADERS)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def csv_bytes(rows: list[list[str]]) -> bytes:
    return "\n".join(",".join(r) for r in [HEADERS, *rows]).encode("utf-8")


def upload(client, data: bytes, name: str = "r.xlsx", **params):  # type: ignore[no-untyped-def]
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.post(
        URL + (f"?{query}" if query else ""),
        {"file": SimpleUploadedFile(name, data)},
        format="multipart",
    )


def snapshot(res: Resident) -> tuple:  # type: ignore[type-arg]
    res.refresh_from_db()
    return (res.household_id, res.name, res.ethnicity, res.phone, list(res.tags), res.gender)


@pytest.fixture
def far_resident(demo) -> Resident:
    """A resident of grid 7, with a household (another grid than grid1's and uh-001-1's)."""
    return (
        Resident.objects.filter(household__unit__building__grid=demo.grids[6])
        .exclude(id_number="")
        .select_related("household__unit__building")
        .order_by("pk")
        .first()
    )


@pytest.fixture
def own_building(demo) -> Building:
    return Building.objects.filter(grid=demo.grids[0]).order_by("code").first()


def leaks(text: str, res: Resident) -> list[str]:
    """Anything of ``res`` found in ``text``: name, building, address, room."""
    hh = res.household
    found = [res.name, hh.unit.building.name, hh.unit.building.code, f"{hh.unit} {hh.room}"]
    return [f for f in found if f and f in text]


# ---------------------------------------------------------------- item 1: scope
@pytest.mark.parametrize("dry_run", [True, False])
def test_unit_head_cannot_import_or_learn_about_another_grids_resident(
    demo, member_client, far_resident, dry_run
):
    unit = Unit.objects.get(
        pk=Position.objects.get(member__username="uh-001-1", position_type="unit_head").unit_id
    )
    before = snapshot(far_resident)
    households = Household.objects.count()
    row = [unit.building.code, unit.number, "101", "改名", far_resident.id_number, "汉族",
           "13900000000", "户主"]  # fmt: skip
    params = {"dry_run": 1} if dry_run else {}
    resp = upload(member_client("uh-001-1"), xlsx([row]), **params)
    assert resp.status_code == 403
    assert not leaks(resp.content.decode(), far_resident)
    assert snapshot(far_resident) == before and Household.objects.count() == households


@pytest.mark.parametrize("dry_run", [True, False])
def test_id_number_outside_the_territory_is_a_row_error_naming_nothing(
    demo, member_client, far_resident, own_building, dry_run
):
    """grid1 puts grid 7's resident into a grid-1 flat: refused, and nothing of her shows."""
    before = snapshot(far_resident)
    residents, households = Resident.objects.count(), Household.objects.count()
    rows = [
        [own_building.code, "1", "9801", "改名", far_resident.id_number, "汉族", "13900000000",
         "户主"],
        [own_building.code, "1", "9801", "新人", make_id_number("620103", date(1991, 2, 3), 917,
         female=True), "回族", "", "配偶"],
    ]  # fmt: skip
    params = {"dry_run": 1} if dry_run else {}
    client = member_client("grid1")
    resp = upload(client, xlsx(rows), **params)
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["bad"] == 1 and body["good"] == 1 and body["moved"] == []
    [error] = body["errors"]
    assert error["row"] == 2 and error["fields"] == ["id_number"]
    assert error["messages"] == ["身份证号不能在此使用 (ID number cannot be used here)"]
    assert not leaks(json.dumps(body, ensure_ascii=False), far_resident)
    assert snapshot(far_resident) == before
    if dry_run:
        assert Resident.objects.count() == residents and Household.objects.count() == households
    else:  # the good row went in; the refused resident was neither moved nor renamed
        assert Resident.objects.count() == residents + 1
        assert (
            Resident.objects.filter(id_number_hash=keyed_hash(far_resident.id_number)).count() == 1
        )
    # the error workbook names her no more than the report
    book = upload(client, xlsx(rows), dry_run=1, format="xlsx")
    ws = load_workbook(io.BytesIO(book.content)).active
    text = " ".join(str(c.value) for r in ws.iter_rows() for c in r if c.value is not None)
    assert "不能在此使用" in text and not leaks(text.replace("改名", ""), far_resident)


def test_rows_for_households_outside_the_territory_are_errors(demo, member_client, own_building):
    """A household of grid 7, and a unit grid1 reaches only through a neighbour's position."""
    far_hh = (
        (
            Household.objects.filter(unit__building__grid=demo.grids[6]).select_related(
                "unit__building"
            )
        )
        .order_by("pk")
        .first()
    )
    grid1 = Member.objects.get(username="grid1")
    other_unit = (
        Unit.objects.filter(building__grid=demo.grids[5]).select_related("building").order_by("pk")
    ).first()
    Position.objects.create(position_type="unit_head", member=grid1, unit=other_unit)
    residents, households = Resident.objects.count(), Household.objects.count()
    far_count = far_hh.residents.count()
    rows = [
        [far_hh.unit.building.code, far_hh.unit.number, far_hh.room, "外人",
         make_id_number("620103", date(1992, 3, 4), 919, False), "汉族", "", ""],
        [other_unit.building.code, other_unit.number, "9701", "邻居",
         make_id_number("620103", date(1993, 4, 5), 921, False), "汉族", "", ""],
    ]  # fmt: skip
    resp = upload(member_client("grid1"), xlsx(rows))
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["good"] == 0 and body["bad"] == 2 and not body["applied"]
    assert all(e["fields"] == ["building"] for e in body["errors"])
    assert all("辖区" in e["messages"][0] for e in body["errors"])
    assert Resident.objects.count() == residents and Household.objects.count() == households
    assert far_hh.residents.count() == far_count


def test_operator_command_line_still_sees_everything(tmp_path, demo, far_resident):
    """The command (no actor) moves a resident across grids, as the operator means to."""
    from gridsvc.dataio.roster import import_roster

    b1 = Building.objects.filter(grid=demo.grids[0]).order_by("code").first()
    path = tmp_path / "r.xlsx"
    path.write_bytes(xlsx([[b1.code, "1", "9601", far_resident.name, far_resident.id_number,
                            "汉族", "", ""]]))  # fmt: skip
    report, _ = import_roster(path)
    assert report["good"] == 1 and report["residents_updated"] == 1
    far_resident.refresh_from_db()
    assert far_resident.household.unit.building_id == b1.pk


# ---------------------------------------------------------------- item 5: hostile and huge
def xxe_xlsx() -> bytes:
    """An xlsx whose sheet declares an external entity and uses it in a cell."""
    src = zipfile.ZipFile(io.BytesIO(xlsx([["B", "1", "101", "x", "1", "汉族", "", ""]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                dtype = '<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                if text.startswith("<?xml"):
                    decl, _, rest = text.partition("?>")
                    text = decl + "?>" + dtype + rest
                else:
                    text = dtype + text
                data = text.replace("<v>", "<v>&xxe;", 1).encode()
            dst.writestr(item, data)
    return out.getvalue()


def test_xlsx_declaring_an_external_entity_is_a_400_naming_file(demo, member_client):
    residents = Resident.objects.count()
    resp = upload(member_client("grid1"), xxe_xlsx())
    assert resp.status_code == 400, resp.content
    body = resp.json()
    assert isinstance(body["file"], list) and "xlsx" in body["file"][0], body
    assert "root:" not in resp.content.decode()
    assert Resident.objects.count() == residents


def test_xlsx_unpacking_to_too_much_is_a_400_naming_file(demo, member_client, settings):
    settings.ROSTER_MAX_UNPACKED_BYTES = 2000  # a real workbook unpacks to more than that
    resp = upload(member_client("grid1"), xlsx([["B", "1", "101", "x", "1", "汉族", "", ""]]))
    assert resp.status_code == 400 and "unpacks to" in resp.json()["file"][0]
    bad = upload(member_client("grid1"), b"PK not really a zip")
    assert bad.status_code == 400 and "file" in bad.json()


def rows_of(building: Building, n: int, first: int = 931) -> list[list[str]]:
    return [
        [building.code, "1", f"95{i:02d}", f"居民{i}",
         make_id_number("620103", date(1980, 1, 1 + i), first + 2 * i, False), "汉族", "", "户主"]
        for i in range(n)
    ]  # fmt: skip


def test_large_roster_goes_to_the_worker_with_progress_for_its_uploader(
    demo, member_client, own_building, settings
):
    from gridsvc.dataio import tasks

    settings.ROSTER_SYNC_MAX_ROWS = 3
    settings.ROSTER_MAX_ROWS = 10
    residents = Resident.objects.count()
    client = member_client("grid1")
    rows = rows_of(own_building, 6)
    rows[5][5] = "火星族"  # one bad row: the worker keeps an error workbook
    resp = upload(client, xlsx(rows))
    assert resp.status_code == 202, resp.content
    run_id = resp.json()["id"]
    assert resp.json()["status"] == "queued" and resp["Location"].endswith(f"/runs/{run_id}/")
    job = ProcrastinateJob.objects.get(task_name="dataio.import_roster", status="todo")
    assert job.args == {"run_id": run_id} and job.queue_name == "imports"
    assert Resident.objects.count() == residents  # nothing yet
    stored = ImportRun.objects.get(pk=run_id).upload
    assert stored and "居民0".encode() not in bytes(stored)  # the file waits encrypted
    assert client.get(f"/api/v1/reports/imports/runs/{run_id}/").json()["status"] == "queued"
    assert member_client("grid2").get(f"/api/v1/reports/imports/runs/{run_id}/").status_code == 404

    tasks.import_roster_job(run_id=run_id)  # what the worker runs
    status = client.get(f"/api/v1/reports/imports/runs/{run_id}/").json()
    assert status["status"] == "done" and status["rows_done"] == status["rows_total"] == 6
    assert status["report"]["residents_created"] == 5 and status["report"]["applied"]
    assert Resident.objects.count() == residents + 5
    assert ImportRun.objects.get(pk=run_id).upload is None  # the file is dropped
    book = client.get(f"/api/v1/reports/imports/runs/{run_id}/?format=xlsx")
    assert book.status_code == 200
    ws = load_workbook(io.BytesIO(book.content)).active
    assert ws.max_row == 2 and ws.cell(2, 1 + HEADERS.index("民族") + 1).value == "火星族"
    other = member_client("grid2").get(f"/api/v1/reports/imports/runs/{run_id}/?format=xlsx")
    assert other.status_code == 404


def test_roster_over_the_hard_limit_is_refused_and_stores_nothing(
    demo, member_client, own_building, settings, tmp_path
):
    from gridsvc.dataio import tasks
    from gridsvc.dataio.tasks import queue_import

    settings.ROSTER_SYNC_MAX_ROWS = 3
    settings.ROSTER_MAX_ROWS = 10
    residents, runs = Resident.objects.count(), ImportRun.objects.count()
    for data, name in ((xlsx(rows_of(own_building, 12)), "big.xlsx"),
                       (csv_bytes(rows_of(own_building, 12)), "big.csv")):  # fmt: skip
        resp = upload(member_client("grid1"), data, name)
        assert resp.status_code == 413 and "10" in resp.json()["file"][0]
    assert (
        ImportRun.objects.count() == runs
        and not ProcrastinateJob.objects.filter(task_name="dataio.import_roster").exists()
    )
    # a file that hides its size is stopped by the worker at the limit: all or nothing
    path = tmp_path / "big.csv"
    path.write_bytes(csv_bytes(rows_of(own_building, 12)))
    run = queue_import(path, actor=Member.objects.get(username="grid1"), dry_run=False,
                       file_name="big.csv")  # fmt: skip
    tasks.import_roster_job(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and not run.applied and "10" in run.report["fatal"][0]
    assert Resident.objects.count() == residents and run.upload is None


def test_control_characters_and_long_text_are_row_errors(demo, member_client, own_building):
    rows = rows_of(own_building, 2)
    rows[0][3] = "马\x00娟"
    rows[1][3] = "长" * 80
    resp = upload(member_client("grid1"), csv_bytes(rows), "r.csv")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["bad"] == 2 and all(e["fields"] == ["name"] for e in body["errors"])


# ---------------------------------------------------------------- item 6: formulas
def test_error_workbook_returns_user_text_as_text_not_formula(demo, member_client, own_building):
    rows = rows_of(own_building, 1)
    rows[0][3] = "=1+2"
    rows[0][5] = "火星族"  # an error, so the row comes back in the error workbook
    resp = upload(member_client("grid1"), csv_bytes(rows), "r.csv", dry_run=1, format="xlsx")
    assert resp.status_code == 200
    ws = load_workbook(io.BytesIO(resp.content)).active
    cell = ws.cell(2, 1 + HEADERS.index("姓名") + 1)
    assert cell.value == "=1+2" and cell.data_type == "s"
    template = load_workbook(
        io.BytesIO(member_client("grid1").get("/api/v1/reports/roster-template/").content)
    )
    assert all(c.data_type == "s" for r in template.active.iter_rows() for c in r if c.value)
