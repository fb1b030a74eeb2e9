"""The work report reproduces the demo street's seed figures from records, in every format."""

from __future__ import annotations

import io
import re
import subprocess
from datetime import date

import pytest
from django.core.management import call_command
from openpyxl import load_workbook

from gridsvc.chain.scope import Scope
from gridsvc.reports.render import TABLE_ROWS_PER_PAGE, headline_rows
from gridsvc.reports.services import month_period, work_report, year_period

pytestmark = pytest.mark.django_db
LOW_INCOME_ROWS = [
    "低保人数",
    "低保户数",
    "少数民族低保人数",
    "少数民族低保户数",
    "少数民族占低保人数比例",
]


def test_low_income_is_one_definition_the_approved_applications_in_force(demo):
    """低保 in 概况, the per-grid table, the charts and the 民生服务 section is one figure: the
    approved 低保 applications in force on the period's last day (issue 21 item 4), not the
    residents' ``low_income`` tag. In June 2026 the demo has approved part of its 低保
    households, so the two would differ."""
    from gridsvc.assistance.figures import kind_figures
    from gridsvc.assistance.models import Application, Kind, Status
    from gridsvc.territory.models import Resident

    code, june = demo.community.code, month_period("2026-06")
    apps = Application.objects.filter(household__unit__building__grid__community=demo.community)

    def low_income() -> tuple[dict, list[int], dict]:
        r = work_report(period=june, scope=Scope(everything=True), community=code)
        return r["population"]["low_income"], [g["low_income"] for g in r["grids"]], r

    li, per_grid, r = low_income()
    f = kind_figures(apps, Kind.DIBAO, june.last_day)
    keys = ("people", "households", "minority_people", "minority_households")
    assert [li[k] for k in keys] == [f[k] for k in keys]
    assert 0 < li["people"] < Resident.objects.filter(tags__contains=["low_income"]).count()
    assert sum(per_grid) == li["people"]
    assert [r["assistance"]["figures"]["dibao"][k] for k in keys] == [li[k] for k in keys]
    labels = [label for label, _ in headline_rows(r)]
    assert [x for x in labels if "低保" in x] == LOW_INCOME_ROWS
    # 廉租房: the housing type and the subsidy paid are two figures, labelled apart
    assert "廉租房住户数(实物配租,按住房登记)" in labels
    assert "民生服务—廉租房租赁补贴户数(货币补贴)" in labels
    assert not {"low_income", "low_rent_housing"} & {g["tag"] for g in r["key_groups"]}

    # a resident's tag removed moves nothing; an application ended before the day does
    on = apps.filter(kind=Kind.DIBAO, status=Status.APPROVED, start_date__lte=june.last_day)
    tagged = Resident.objects.filter(
        household__in=on.values("household"), tags__contains=["low_income"]
    ).first()
    tagged.tags = [t for t in tagged.tags if t != "low_income"]
    tagged.save()
    assert low_income()[0] == li
    ended = on.order_by("pk").first()
    size = ended.household.residents.count()
    ended.end_date = date(2026, 6, 15)
    ended.save()
    after = low_income()[0]
    assert (after["people"], after["households"]) == (li["people"] - size, li["households"] - 1)


def test_demo_community_reproduces_the_seed_figures(demo):
    r = work_report(
        period=month_period("2026-10"), scope=Scope(everything=True), community=demo.community.code
    )
    p = r["population"]
    assert (p["households"], p["residents"]) == (1517, 4101)
    assert (p["minority_households"], p["minority_residents"]) == (532, 1436)
    assert round(100 * p["minority_residents_share"]) == 35
    li = p["low_income"]
    assert (li["minority_people"], li["people"], li["minority_households"]) == (296, 740, 120)
    assert round(100 * li["minority_share"]) == 40
    # the same records as the 民生服务 section's 低保: one figure
    d = r["assistance"]["figures"]["dibao"]
    assert (d["minority_people"], d["people"], d["minority_households"]) == (296, 740, 120)
    assert sum(g["low_income"] for g in r["grids"]) == 740
    eth = {e["name"]: e["residents"] for e in r["by_ethnicity"]}
    assert set(eth) == {"汉族", "回族", "东乡族", "保安族", "撒拉族"}
    assert sum(eth.values()) == 4101
    assert sum(g["households"] for g in r["grids"]) == 1517 and len(r["grids"]) == 7
    assert r["area"]["grids"] == 7
    assert r["visits"]["available"] is True
    c = r["cases"]
    assert c["available"] is True
    assert c["disputes_received"] > 0 and c["hazards_found"] > 0
    assert sum(x["received"] for x in c["disputes_by_category"]) == c["disputes_received"]


def test_street_annual_report_matches_and_grid_member_sees_own_grid(demo, member_client):
    resp = member_client("street").get(
        f"/api/v1/reports/annual/?street={demo.street.code}&year=2026&format=json"
    )
    assert resp.status_code == 200
    assert resp.json()["population"]["residents"] == 4101
    mine = member_client("grid1").get(
        f"/api/v1/reports/monthly/?community={demo.community.code}&month=2026-10"
    )
    assert mine.status_code == 200
    grids = mine.json()["grids"]
    assert [g["code"] for g in grids] == [demo.grids[0].code]
    assert mine.json()["population"]["households"] == grids[0]["households"] < 1517


def test_bad_parameters_name_the_field(demo, member_client):
    client = member_client("street")
    bad = client.get(f"/api/v1/reports/monthly/?community={demo.community.code}&month=2026-13")
    assert bad.status_code == 400 and "month" in bad.json()
    both = client.get("/api/v1/reports/monthly/?month=2026-10")
    assert both.status_code == 400 and "community" in both.json()
    fmt = client.get(
        f"/api/v1/reports/monthly/?community={demo.community.code}&month=2026-10&format=doc"
    )
    assert fmt.status_code == 400 and "format" in fmt.json()
    other = member_client("grid1").get(
        "/api/v1/reports/monthly/?community=999999999999&month=2026-10"
    )
    assert other.status_code == 400


def test_xlsx_has_figures_and_charts(demo, member_client):
    resp = member_client("street").get(
        f"/api/v1/reports/monthly/?community={demo.community.code}&month=2026-10&format=xlsx"
    )
    assert resp.status_code == 200
    wb = load_workbook(io.BytesIO(resp.content))
    figures = {row[0]: row[1] for row in wb["概况"].iter_rows(min_row=4, values_only=True)}
    assert figures["户数"] == 1517 and figures["少数民族人口占比"] == "35.0%"
    assert figures["少数民族占低保人数比例"] == "40.0%"
    assert (figures["低保人数"], figures["少数民族低保人数"], figures["少数民族低保户数"]) == (
        740,
        296,
        120,
    )
    # each 低保 figure once: no second (民生服务) set of 低保 rows
    assert sorted(str(k) for k in figures if k and "低保" in str(k)) == sorted(LOW_INCOME_ROWS)
    grid_rows = list(wb["各网格"].iter_rows(values_only=True))
    column = grid_rows[0].index("低保人数")
    assert sum(row[column] for row in grid_rows[1:] if row[0]) == 740
    assert wb["各网格"]._charts and wb["民族构成"]._charts


def test_pdf_renders_pages(tmp_path, demo, member_client):
    url = f"/api/v1/reports/monthly/?community={demo.community.code}&month=2026-10"
    resp = member_client("street").get(f"{url}&format=pdf")
    assert resp.status_code == 200 and resp.content.startswith(b"%PDF")
    # the figures table (continued over as many A4 pages as it needs), charts, map, and the
    # grids' assessment (the demo has cases that month)
    pages = len(re.findall(rb"/Type\s*/Page\b", resp.content))
    assert pages >= 4
    # poppler (installed by scripts/setup.sh) renders every page
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(resp.content)
    subprocess.run(["pdftoppm", "-r", "20", "-png", str(pdf), str(tmp_path / "p")], check=True)
    assert len(list(tmp_path.glob("p-*.png"))) == pages
    # every headline row is printed: none falls off the bottom of the page
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    report = member_client("street").get(f"{url}&format=json").json()
    labels = [label for label, _ in headline_rows(report)]
    assert len(labels) > TABLE_ROWS_PER_PAGE  # the demo's table does need two pages
    assert [label for label in labels if label not in text.replace("\n", "")] == []


def test_command_writes_report(tmp_path, demo):
    out = tmp_path / "r.xlsx"
    call_command(
        "work_report", "--community", demo.community.code, "--month", "2026-10", "--out", str(out)
    )
    assert load_workbook(out)["概况"]["A1"].value.startswith("华林山社区 2026年10月")
    assert year_period("2026").end.year == 2027


def test_the_monthly_report_carries_the_same_assessment_as_the_api(demo, member_client):
    street = member_client("street")
    report = street.get(
        f"/api/v1/reports/monthly/?community={demo.community.code}&month=2026-10&format=json"
    ).json()["assessment"]
    api = street.get("/api/v1/assessment/?by=grid&since=2026-10-01&until=2026-11-01").json()
    assert report["available"] and report["by_grid"], "the demo has cases due in October"
    from_report = {r["key"]: (r["counts"], r["score"], r["grade"]) for r in report["by_grid"]}
    from_api = {r["key"]: (r["counts"], r["score"], r["grade"]) for r in api["rows"]}
    assert from_report == from_api
    xlsx = street.get(
        f"/api/v1/reports/monthly/?community={demo.community.code}&month=2026-10&format=xlsx"
    )
    sheet = load_workbook(io.BytesIO(xlsx.content))["考核"]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert len(rows) == len(report["by_grid"])
    assert {r[0] for r in rows} == {r["name"] for r in report["by_grid"]}
