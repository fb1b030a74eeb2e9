"""Roster import: good rows in, bad rows listed in a workbook the office can fix, idempotent."""

from __future__ import annotations

import io
from datetime import date

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from openpyxl import Workbook, load_workbook

from gridsvc.crypto import keyed_hash
from gridsvc.territory.codes import make_id_number
from gridsvc.territory.models import Building, Household, Resident

pytestmark = pytest.mark.django_db

HEADERS = [
    "楼栋",
    "单元",
    "房号",
    "姓名",
    "身份证号",
    "民族",
    "联系电话",
    "与户主关系",
    "户籍类型",
    "标签/人群类别",
]
GOOD_ID = make_id_number("620103", date(1985, 5, 6), 901, female=False)
NEW_ID = make_id_number("620103", date(1990, 7, 8), 903, female=True)
BAD_ID = GOOD_ID[:-1] + ("0" if GOOD_ID[-1] != "0" else "1")


def rows(b1: str, b_far: str) -> list[list[str]]:
    return [
        [b1, "1", "9901", "马新民", GOOD_ID, "回族", "13800001111", "户主", "流动人口", "低保、失业/下岗"],
        [b1, "1", "9901", "马小兰", NEW_ID, "回族", "", "配偶", "", ""],
        [b1, "1", "9902", "错号码", BAD_ID, "汉族", "", "户主", "", ""],
        [b1, "1", "9903", "怪民族", make_id_number("620103", date(1970, 1, 1), 905, False), "火星族", "", "", "", ""],
        ["不存在的楼", "1", "101", "无楼", make_id_number("620103", date(1971, 1, 1), 907, False), "汉族", "", "", "", ""],
        [b1, "9", "101", "无单元", make_id_number("620103", date(1972, 1, 1), 909, False), "汉族", "", "", "", ""],
        [b_far, "1", "101", "别处", make_id_number("620103", date(1973, 1, 1), 911, False), "汉族", "", "", "", ""],
        [b1, "1", "9904", "重复号", GOOD_ID, "回族", "", "", "", "外星标签"],
    ]  # fmt: skip


def workbook(data: list[list[str]], headers=HEADERS) -> bytes:  # type: ignore[no-untyped-def]
    wb = Workbook()
    ws = wb.active
    ws.append(["华林山社区居民名册"])  # a title row above the headers, as offices do
    ws.append(headers)
    for r in data:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@pytest.fixture
def buildings(demo):
    b1 = Building.objects.filter(grid=demo.grids[0]).order_by("code").first()
    far = Building.objects.filter(grid=demo.grids[6]).order_by("code").first()
    return b1, far


def test_good_rows_in_bad_rows_listed_and_fixable(tmp_path, buildings):
    from gridsvc.dataio.roster import error_workbook, import_roster

    b1, far = buildings
    path = tmp_path / "roster.xlsx"
    path.write_bytes(workbook(rows(b1.code, far.name)))
    residents_before = Resident.objects.count()
    report, sheet = import_roster(path)
    assert report["good"] == 3 and report["bad"] == 5, report["errors"]  # far is fine here
    by_row = {e["row"]: " ".join(e["messages"]) for e in report["errors"]}
    assert "checksum" in by_row[5]
    assert "火星族" in by_row[6]
    assert "不存在" in by_row[7]
    assert "单元" in by_row[8]
    assert "重复" in by_row[10] and "外星标签" in by_row[10]
    assert Resident.objects.count() == residents_before + 3
    head = Resident.objects.get(id_number_hash=keyed_hash(GOOD_ID))
    assert head.ethnicity == "03" and head.residency == "floating"
    assert set(head.tags) == {"low_income", "unemployed"} and head.gender == "M"
    hh = Household.objects.get(unit__building=b1, unit__number="1", room="9901")
    assert hh.head == head and hh.floor == 99 and hh.residents.count() == 2

    # the error workbook: the original rows, an error column, highlighted
    wb = load_workbook(io.BytesIO(error_workbook(sheet)))
    ws = wb.active
    header = [c.value for c in ws[1]]
    assert header[0] == "原行号" and header[-1] == "错误说明" and header[1:-1] == HEADERS
    assert ws.max_row == 1 + 5
    assert ws.cell(2, len(header)).fill.fgColor.rgb.endswith("FFC7CE")
    id_col = header.index("身份证号") + 1
    assert ws.cell(2, id_col).fill.fgColor.rgb.endswith("FFEB9C")  # the bad ID cell

    # the office fixes the ID number and re-uploads the error workbook as it is
    ws.cell(2, id_col).value = make_id_number("620103", date(1980, 2, 3), 913, False)
    fixed = tmp_path / "fixed.xlsx"
    wb.save(fixed)
    report2, _ = import_roster(fixed)
    assert report2["good"] == 1 and report2["residents_created"] == 1
    assert Resident.objects.count() == residents_before + 4


def test_reupload_is_idempotent_and_updates_in_place(tmp_path, buildings):
    from gridsvc.dataio.roster import import_roster

    b1, far = buildings
    path = tmp_path / "roster.xlsx"
    path.write_bytes(workbook(rows(b1.code, far.code)[:2]))
    first, _ = import_roster(path)
    assert first["residents_created"] == 2 and first["households_created"] == 1
    count = Resident.objects.count()
    again, _ = import_roster(path)
    assert again["residents_created"] == 0 and again["residents_unchanged"] == 2
    assert again["households_created"] == 0 and Resident.objects.count() == count
    changed = rows(b1.code, far.code)[:2]
    changed[1][6] = "13900002222"
    path.write_bytes(workbook(changed))
    third, _ = import_roster(path)
    assert third["residents_updated"] == 1 and Resident.objects.count() == count
    assert Resident.objects.get(id_number_hash=keyed_hash(NEW_ID)).phone == "13900002222"


def test_dry_run_writes_nothing_and_csv_works(tmp_path, buildings):
    from gridsvc.dataio.roster import import_roster

    b1, far = buildings
    path = tmp_path / "roster.csv"
    lines = [",".join(HEADERS)] + [",".join(r) for r in rows(b1.code, far.code)[:2]]
    path.write_text("\n".join(lines), encoding="utf-8-sig")
    count = Resident.objects.count()
    report, _ = import_roster(path, dry_run=True)
    assert report["good"] == 2 and report["residents_created"] == 2 and not report["applied"]
    assert Resident.objects.count() == count
    report, _ = import_roster(path)
    assert report["applied"] and Resident.objects.count() == count + 2


def test_missing_columns_is_a_clear_error(tmp_path, demo):
    from gridsvc.dataio.roster import import_roster

    path = tmp_path / "roster.xlsx"
    path.write_bytes(workbook([["x"]], headers=["姓名", "身份证号"]))
    report, sheet = import_roster(path)
    assert sheet is None and "楼栋" in report["fatal"][0]


def test_api_scoped_rows_outside_territory_are_errors(tmp_path, buildings, member_client):
    b1, far = buildings
    data = workbook([rows(b1.code, far.code)[0], rows(b1.code, far.code)[6]])
    client = member_client("grid1")
    resp = client.post(
        "/api/v1/reports/imports/roster/",
        {"file": _named(data, "r.xlsx")},
        format="multipart",
    )
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["good"] == 1 and body["bad"] == 1
    assert "辖区" in body["errors"][0]["messages"][0]
    xlsx = client.post(
        "/api/v1/reports/imports/roster/?format=xlsx&dry_run=1",
        {"file": _named(data, "r.xlsx")},
        format="multipart",
    )
    assert xlsx.status_code == 200 and xlsx["Content-Type"].startswith("application/vnd.openxml")
    assert load_workbook(io.BytesIO(xlsx.content)).active.max_row == 2
    bad = client.post(
        "/api/v1/reports/imports/roster/", {"file": _named(b"x", "r.txt")}, format="multipart"
    )
    assert bad.status_code == 400 and "file" in bad.json()


def _named(data: bytes, name: str):  # type: ignore[no-untyped-def]
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def test_template_and_command(tmp_path, buildings, member_client, capsys):
    resp = member_client("grid1").get("/api/v1/reports/roster-template/")
    assert resp.status_code == 200
    wb = load_workbook(io.BytesIO(resp.content))
    headers = [c.value for c in wb.active[1]]
    assert headers[:3] == ["楼栋*", "单元*", "房号*"] and "标签/人群类别" in headers
    assert "填写说明" in wb.sheetnames

    b1, far = buildings
    path = tmp_path / "roster.xlsx"
    path.write_bytes(workbook(rows(b1.code, far.code)[:3]))
    out = tmp_path / "errors.xlsx"
    with pytest.raises(CommandError):
        call_command("import_roster", str(path), "--errors", str(out))
    assert load_workbook(out).active.max_row == 2
    assert "2 good, 1 with errors" in capsys.readouterr().out
