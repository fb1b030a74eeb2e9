"""People's services on the demo street (issue 21 item 4): the seed's 华林山 figures are
counted from assistance records made through the workflow (fixtures/demo_assistance.py), and
the work report reads the same figures (staff and street only)."""

from __future__ import annotations

import io
from datetime import date

import pytest
from openpyxl import load_workbook

from gridsvc.assistance.figures import figures, given, period_figures
from gridsvc.assistance.models import Application, ApplicationEvent, Kind, Status

pytestmark = pytest.mark.django_db
DAY = date(2026, 11, 30)
STREET = {"household__unit__building__grid__community__street__code": "620103003"}


def _apps():  # type: ignore[no-untyped-def]
    return Application.objects.filter(**STREET)


def test_the_demo_reproduces_the_seed_figures_from_approved_applications(demo):
    f = period_figures(_apps(), date(2026, 1, 1), DAY)
    d = f[Kind.DIBAO]
    assert (d["minority_people"], d["minority_households"], d["people"]) == (296, 120, 740)
    assert d["minority_people_share"] == 40.0
    r = f[Kind.RENT_SUBSIDY]
    assert (r["minority_households"], r["households"]) == (25, 83)
    assert round(r["minority_households_share"]) == 30
    m = f[Kind.MEDICAL_INSURANCE]
    assert (m["minority_people"], m["people"]) == (677, 1693)
    assert round(m["minority_people_share"]) == 40
    t = f[Kind.TEMP_RELIEF]
    assert (t["households"], t["minority_households"]) == (106, 106)
    # every one went submit → check → review → approve, each step by a named member
    app = _apps().filter(kind=Kind.DIBAO).order_by("pk").first()
    steps = list(ApplicationEvent.objects.filter(application=app).order_by("id"))
    assert [e.action for e in steps] == ["submit", "check", "review", "approve"]
    assert {e.actor.username for e in steps[2:]} == {"mediator", "street"}
    assert steps[0].actor.username.startswith("grid")


def test_each_figure_moves_with_its_records(demo):
    before = figures(_apps(), DAY)
    one = _apps().filter(kind=Kind.DIBAO, status=Status.APPROVED).order_by("pk").first()
    size = one.household.residents.count()
    one.delete()
    rent = _apps().filter(kind=Kind.RENT_SUBSIDY).exclude(household__residents__ethnicity="01")
    rent.order_by("pk").first().delete()
    med = _apps().filter(kind=Kind.MEDICAL_INSURANCE).order_by("pk").first()
    med_size = med.household.residents.count()
    med.status = Status.ENDED
    med.save()
    after = figures(_apps(), DAY)
    assert after[Kind.DIBAO]["people"] == before[Kind.DIBAO]["people"] - size
    assert after[Kind.DIBAO]["households"] == before[Kind.DIBAO]["households"] - 1
    assert after[Kind.RENT_SUBSIDY]["minority_households"] == 24
    assert after[Kind.MEDICAL_INSURANCE]["people"] == 1693 - med_size
    relief = given(_apps().filter(kind=Kind.TEMP_RELIEF), date(2026, 1, 1), DAY)
    relief.order_by("pk").first().delete()
    assert period_figures(_apps(), date(2026, 1, 1), DAY)[Kind.TEMP_RELIEF]["households"] == 105


def _rows(content: bytes) -> dict[str, object]:
    ws = load_workbook(io.BytesIO(content)).worksheets[0]
    return {row[0]: row[1] for row in ws.iter_rows(values_only=True) if row and row[0]}


def test_the_annual_report_carries_the_figures_for_staff_and_street_only(demo, member_client):
    street = member_client("street")
    r = street.get(f"/api/v1/reports/annual/?community={demo.community.code}&year=2026")
    assert r.status_code == 200, r.content
    a = r.json()["assistance"]["figures"]
    assert a["dibao"]["minority_people"] == 296 and a["dibao"]["people"] == 740
    assert a["rent_subsidy"]["minority_households"] == 25
    assert a["medical_insurance"]["minority_people"] == 677
    assert a["temp_relief"]["households"] == 106
    assert r.json()["assistance"]["migrants"]["arrived"] > 0
    x = street.get(f"/api/v1/reports/annual/?community={demo.community.code}&year=2026&format=xlsx")
    assert x.status_code == 200
    rows = _rows(x.content)
    assert rows["民生服务—少数民族低保人数"] == 296
    assert rows["民生服务—少数民族居民医保参保人数"] == 677
    assert rows["民生服务—本期临时救助户数"] == 106
    # the neighbour tier: no assistance section at all
    bh = member_client("bh-001").get(
        f"/api/v1/reports/annual/?community={demo.community.code}&year=2026"
    )
    assert bh.status_code != 200 or "assistance" not in bh.json()
