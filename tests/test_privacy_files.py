"""Privacy of every file output (issue 15 items 2, 3 and 6): ledgers (台账 xlsx), layer exports
(GeoPackage/GeoJSON/shapefile) and the work report (JSON/xlsx/PDF).

- masks are a set: no masked ID number or phone can be rebuilt from what the same file shows
  beside it (birth date/year, age, gender, region, last four, the GB 11643 check digit);
- need-to-know: the neighbour tier learns no sensitive status from any file; the staff tier
  gets small sensitive counts suppressed (k = 5); the street tier gets exact counts;
- user text in a spreadsheet is text, never a formula.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections import defaultdict
from datetime import date, timedelta

import pyogrio
import pytest
from openpyxl import load_workbook

from gridsvc.cases.models import Case, Category
from gridsvc.chain.models import Position
from gridsvc.chain.visibility import SENSITIVE_TAGS
from gridsvc.territory.codes import id_check_char
from gridsvc.territory.models import Resident, Unit

pytestmark = pytest.mark.django_db

NEIGHBOURS = ("uh-057-3", "bh-001", "pm-C01", "oc-C03")
MONTH = "2026-10"
SENSITIVE_WORDS = ("少数民族", "民族构成", "低保", "廉租房", "社区矫正", "两劳帮教", "残疾", "宗教")


def _report(client, community: str, fmt: str = "json"):  # type: ignore[no-untyped-def]
    return client.get(f"/api/v1/reports/monthly/?community={community}&month={MONTH}&format={fmt}")


# ---------------------------------------------------------------- rebuilding masked values
def _year_dates(year: int) -> set[date]:
    d, out = date(year, 1, 1), set()
    while d.year == year:
        out.add(d)
        d += timedelta(days=1)
    return out


def _dates_from(header: list[str], row: list, today: date) -> set[date] | None:  # type: ignore[type-arg]
    """Birth dates consistent with the row's other columns (None: no constraint)."""
    cols = dict(zip(header, row, strict=False))
    for name, value in cols.items():
        if value in (None, ""):
            continue
        if name == "出生日期":
            v = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
            return {v.date() if hasattr(v, "date") else v}
        if name in ("出生年份", "出生年"):
            return _year_dates(int(value))
        if name.startswith("年龄"):
            age = int(value)
            if "按出生年份" in name:
                return _year_dates(today.year - age)
            # exact age today: born in (today − (age+1) years, today − age years]
            hi = date(today.year - age, today.month, min(today.day, 28))
            lo = date(today.year - age - 1, today.month, min(today.day, 28))
            return {lo + timedelta(days=i) for i in range((hi - lo).days + 3)}
    return None


def id_candidates(masked: str, gender: str, dates: set[date] | None) -> int:
    """How many valid ID numbers fit ``masked`` (region + last four), the gender and the
    possible birth dates (all dates 1900–today when nothing narrows them)."""
    assert re.fullmatch(r"\d{6}\*+[\dX]{4}", masked), masked
    region, seq3, check = masked[:6], masked[-4:-1], masked[-1]
    if gender and (int(seq3[2]) % 2 == 1) != (gender == "男"):
        return 0
    if dates is None:
        dates = set().union(*(_year_dates(y) for y in range(1900, date.today().year + 1)))
    return sum(1 for d in dates if id_check_char(f"{region}{d:%Y%m%d}{seq3}") == check)


def test_no_masked_id_or_phone_in_the_ledger_can_be_rebuilt(demo, member_client):
    resp = member_client("grid1").get(f"/api/v1/reports/ledgers/{demo.grids[0].code}/")
    assert resp.status_code == 200
    wb = load_workbook(io.BytesIO(resp.content))
    today = date.today()
    # every row about the same person (name + masked ID) across all sheets of the file
    constraints: dict[tuple[str, str], list[set[date] | None]] = defaultdict(list)
    genders: dict[tuple[str, str], str] = {}
    phones = 0
    for ws in wb.worksheets:
        header = [c.value for c in ws[2]] if ws.max_row >= 2 else []
        if "身份证号" not in header:
            continue
        for row in ws.iter_rows(min_row=3, values_only=True):
            cols = dict(zip(header, row, strict=False))
            masked = cols["身份证号"]
            if not masked:
                continue
            key = (cols["姓名"], masked)
            constraints[key].append(_dates_from(header, list(row), today))
            genders[key] = cols.get("性别") or ""
            phone = cols.get("联系电话")
            if phone:
                phones += 1
                # only the last four digits: a masked phone can't be joined to another list
                assert re.fullmatch(r"\*+\d{4}", phone), phone
    assert len(constraints) > 50 and phones > 50
    worst = None
    for key, sets in constraints.items():
        known = [s for s in sets if s is not None]
        dates = set.intersection(*known) if known else None
        n = id_candidates(key[1], genders[key], dates)
        worst = n if worst is None else min(worst, n)
        assert n > 10, f"{key[0]}: only {n} ID numbers fit what the ledger shows"
    assert worst is not None


def test_layer_exports_carry_no_resident_identifiers(tmp_path, demo, member_client):
    client = member_client("grid1")
    for layer in ("households", "cases", "buildings", "places"):
        resp = client.get(f"/api/v1/reports/export/{layer}/?format=geojson")
        assert resp.status_code == 200, (layer, resp.content[:200])
        path = tmp_path / f"{layer}.geojson"
        path.write_bytes(resp.content)
        frame = pyogrio.read_dataframe(path)
        personal = {"id_number", "phone", "birth_date", "parties", "description", "title"}
        if layer in ("households", "cases"):
            personal.add("name")  # places and buildings have names; people don't appear
        assert not personal & set(frame.columns), layer
        text = resp.content.decode()
        assert not re.search(r"\d{6}\*+[\dX]{4}|\d{3}\*{4}\d{4}|\b1[3-9]\d{9}\b", text), layer


# ---------------------------------------------------------------- need to know
def test_neighbours_get_no_ledger(demo, member_client):
    for username in NEIGHBOURS:
        for grid in demo.grids:
            resp = member_client(username).get(f"/api/v1/reports/ledgers/{grid.code}/")
            assert resp.status_code == 403, (username, grid.code, resp.status_code)
    assert (
        member_client("grid1").get(f"/api/v1/reports/ledgers/{demo.grids[0].code}/").status_code
        == 200
    )


def test_a_grid_member_who_is_a_unit_head_elsewhere_gets_no_ledger_there(demo, member_client):
    corrected = Resident.objects.filter(tags__contains=["community_correction"]).exclude(
        household__unit__building__grid=demo.grids[0]
    )[0]
    unit = Unit.objects.select_related("building__grid").get(pk=corrected.household.unit_id)
    from gridsvc.accounts.models import Member

    Position.objects.create(
        position_type="unit_head", member=Member.objects.get(username="grid1"), unit=unit
    )
    client = member_client("grid1")
    assert client.get(f"/api/v1/reports/ledgers/{unit.building.grid.code}/").status_code == 404
    # and the community report counts sensitive figures only inside grid 1
    report = _report(client, demo.community.code).json()
    only_grid1 = Resident.objects.filter(
        household__unit__building__grid=demo.grids[0], tags__contains=["disabled"]
    ).count()
    groups = {g["tag"]: g["residents"] for g in report["key_groups"]}
    assert groups["disabled"] == (only_grid1 if only_grid1 >= 5 else None)
    assert report["population"]["residents"] > report["grids"][0]["residents"]
    # the layer export shows tenure (廉租房) only inside grid 1
    layer = client.get("/api/v1/reports/export/households/?format=geojson").json()["features"]
    tenure = {f["properties"]["grid_code"]: set() for f in layer}
    for f in layer:
        tenure[f["properties"]["grid_code"]].add(f["properties"]["tenure"])
    assert tenure[unit.building.grid.code] == {""}
    assert "low_rent" in tenure[demo.grids[0].code]


def _unit_head_with_a_corrected_resident(demo) -> str:
    for r in Resident.objects.filter(tags__contains=["community_correction"]):
        heads = Position.objects.held_at().filter(
            position_type="unit_head", unit_id=r.household.unit_id
        )
        if heads.exists():
            return heads[0].member.username
    raise AssertionError("the demo has a unit head over a resident under community correction")


def test_a_unit_head_report_has_no_sensitive_figure_in_any_format(tmp_path, demo, member_client):
    username = _unit_head_with_a_corrected_resident(demo)
    client = member_client(username)
    # a dispute about ethnic/religious matters in the unit this month
    unit = Position.objects.held_at().get(member__username=username).unit
    hh = unit.households.first()
    Case.objects.filter(pk=Case.objects.filter(kind="dispute", reported_at__month=10)[0].pk).update(
        category=Category.objects.get(code="ethnic"), ethnic_religious=True, household=hh,
        unit=unit, building=unit.building, grid=unit.building.grid,
    )  # fmt: skip
    report = _report(client, demo.community.code).json()
    assert report["cases"]["disputes_by_category"] == [
        {"category": "其他矛盾纠纷", "received": 1, "resolved": report["cases"]["disputes_resolved"],
         "rate": report["cases"]["resolution_rate"]}
    ]  # fmt: skip
    text = json.dumps(report, ensure_ascii=False)
    for tag in SENSITIVE_TAGS:
        assert tag not in text, tag
    assert "by_ethnicity" not in report
    assert not {
        "minority_residents",
        "minority_households",
        "low_income",
        "low_rent_households",
    } & set(report["population"])
    assert all("minority_residents" not in g and "low_income" not in g for g in report["grids"])
    assert report["privacy"]["sensitive_figures"] == "omitted"

    wb = load_workbook(io.BytesIO(_report(client, demo.community.code, "xlsx").content))
    assert "民族构成" not in wb.sheetnames
    cells = " ".join(
        str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row if c
    )
    for word in SENSITIVE_WORDS:
        assert word not in cells, word

    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(_report(client, demo.community.code, "pdf").content)
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True)
    assert "人口数" in out.stdout  # the text layer is there
    for word in SENSITIVE_WORDS:
        assert word not in out.stdout, word


def test_neighbours_layer_exports_show_no_assistance_or_ethnic_flags(tmp_path, demo, member_client):
    for username in NEIGHBOURS:
        client = member_client(username)
        resp = client.get("/api/v1/reports/export/households/?format=geojson")
        assert resp.status_code == 200
        assert "tenure" not in resp.json()["features"][0]["properties"], username
        assert "low_rent" not in resp.content.decode()
        cases = client.get("/api/v1/reports/export/cases/?format=geojson")
        assert cases.status_code == 200
        assert "ethnic_religious" not in cases.content.decode()
    staff = member_client("grid1").get("/api/v1/reports/export/households/?format=geojson")
    assert "tenure" in staff.json()["features"][0]["properties"]


def test_staff_counts_below_k_are_suppressed_street_counts_are_exact(demo, member_client):
    code = demo.community.code
    grid1 = demo.grids[0]
    exact = Resident.objects.filter(
        household__unit__building__grid=grid1, tags__contains=["community_correction"]
    ).count()
    assert 0 < exact < 5
    staff = _report(member_client("grid1"), code).json()
    groups = {g["tag"]: g["residents"] for g in staff["key_groups"]}
    assert groups["community_correction"] is None
    assert staff["privacy"] == {
        "tier": "staff", "sensitive_figures": "suppressed_below_k", "k": 5, "marker": "<5"
    }  # fmt: skip
    rules = {r["rule"]: r for r in staff["visits"]["by_rule"]}
    assert rules["community-correction-monthly"]["due"] is None
    # the hidden cells can't be had by subtraction from the published total
    hidden = [r for r in staff["visits"]["by_rule"] if r["due"] is None]
    assert len(hidden) >= 2
    # no cell of the staff report is a sensitive count between 1 and 4
    eth = [e["residents"] for e in staff["by_ethnicity"]]
    assert all(v is None or v == 0 or v >= 5 for v in eth)

    wb = load_workbook(io.BytesIO(_report(member_client("grid1"), code, "xlsx").content))
    kg = {row[0]: row[1] for row in wb["重点人群"].iter_rows(min_row=2, values_only=True)}
    assert kg["社区矫正"] == "<5"

    street = _report(member_client("street"), code).json()
    groups = {g["tag"]: g["residents"] for g in street["key_groups"]}
    assert (
        groups["community_correction"]
        == Resident.objects.filter(tags__contains=["community_correction"]).count()
    )
    assert street["privacy"]["sensitive_figures"] == "exact"
    # the demo's street-level figures are unchanged
    p = street["population"]
    assert (p["minority_households"], p["minority_residents"]) == (532, 1436)
    assert p["low_income"]["minority_people"] == 296


# ---------------------------------------------------------------- formula injection
EVIL_NAME = '=HYPERLINK("http://x","y")'
EVIL_TEXT = "=1+2"


def _cells_with(wb, value: str) -> list:  # type: ignore[no-untyped-def]
    return [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value == value]


def test_user_text_reaches_every_workbook_as_text_never_a_formula(demo, member_client):
    grid1 = demo.grids[0]
    r = Resident.objects.filter(
        household__unit__building__grid=grid1, residency=Resident.Residency.FLOATING
    ).first()
    r.name = EVIL_NAME
    r.origin_place = EVIL_TEXT
    r.save()
    case = Case.objects.filter(grid=grid1, kind="dispute", reported_at__month=10).first()
    Category.objects.filter(pk=case.category_id).update(name=EVIL_TEXT)
    client = member_client("grid1")

    ledger = load_workbook(io.BytesIO(client.get(f"/api/v1/reports/ledgers/{grid1.code}/").content))
    names = _cells_with(ledger, EVIL_NAME)
    origins = _cells_with(ledger, EVIL_TEXT)
    assert names and origins
    assert {c.data_type for c in names + origins} == {"s"}

    report = load_workbook(io.BytesIO(_report(client, demo.community.code, "xlsx").content))
    cells = _cells_with(report, EVIL_TEXT)
    assert {c.parent.title for c in cells} >= {"流动人口", "矛盾纠纷"}
    assert {c.data_type for c in cells} == {"s"}
