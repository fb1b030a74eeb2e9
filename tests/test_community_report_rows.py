"""The work report's figures table (xlsx 概况 and the PDF's first pages) carries every figure
of the community section (民族团结进步创建, ``unity``) of the report JSON — the campaign
returns, interpreter calls, sign-offs and the rest used to be in the JSON only — and the
OpenAPI schema names the shapes of the community endpoints that answer free objects."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook

pytestmark = pytest.mark.django_db

MONTH = "2026-10"

#: the figures the table lacked before (label as printed)
NEW_ROWS = {
    "campaign_returns": "专项排查应报(网格·次)",
    "campaign_returns_filed": "专项排查已报(网格·次)",
    "interpreter_calls": "翻译随行(次)",
    "ethnic_sign_offs": "民族宗教事务会签(件)",
    "mediations_agreed": "其中达成协议",
    "group_petitions": "群体性信访(件)",
    "venue_hazards": "宗教场所走访发现隐患",
    "screening_persons": "五员排查投入人次(本期)",
}


def test_the_monthly_xlsx_has_a_row_for_every_community_figure(demo, member_client):
    from gridsvc.accounts.models import Member
    from gridsvc.cases.models import Case
    from gridsvc.community.models import InterpreterCall
    from gridsvc.reports.render import UNITY_ROWS
    from gridsvc.territory.models import Household

    # the demo calls no interpreter: one 请翻译随行 in October (a case at a 东乡语 household)
    grid = demo.grids[0]
    call = InterpreterCall.objects.create(
        street=demo.street,
        community=demo.community,
        grid=grid,
        household=Household.objects.filter(unit__building__grid=grid).order_by("pk").first(),
        language="sce",
        recorded_by=Member.objects.get(username="grid1"),
        case=Case.objects.filter(community=demo.community).order_by("pk").first(),
    )
    InterpreterCall.objects.filter(pk=call.pk).update(
        created_at=datetime(2026, 10, 12, 9, tzinfo=UTC)
    )
    street = member_client("street")
    url = f"/api/v1/reports/monthly/?community={demo.community.code}&month={MONTH}"
    unity = street.get(f"{url}&format=json").json()["unity"]
    r = street.get(f"{url}&format=xlsx")
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.content))["概况"]
    cells = {row[0]: row[1] for row in sheet.iter_rows(min_row=2, values_only=True) if row}
    # every count of the section has a row, with the JSON's value
    labels = dict(UNITY_ROWS)
    assert set(unity) - set(labels) == {"screening_summary"}
    for key, label in NEW_ROWS.items():
        assert labels[key] == label
    assert {labels[k]: cells.get(labels[k]) for k in labels} == {
        labels[k]: unity[k] for k in labels
    }
    # the demo's October: a campaign with a return due from each of the 7 grids, 6 filed
    assert cells["专项排查应报(网格·次)"] == 7 and cells["专项排查已报(网格·次)"] == 6
    assert cells["翻译随行(次)"] == 1
    # the 五员 sentence is written under the table
    assert cells["五员排查"] == unity["screening_summary"]
