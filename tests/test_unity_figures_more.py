"""Issue 20, the figures' missing counts: 群体台账人员 (by group), residents needing an
interpreter and disputes routed to the 五员 调处员 in the period — in ``figures/`` and the
work report (JSON, xlsx and PDF rows), each checked against a count of the demo's records made
here independently of ``services.figures``."""

from __future__ import annotations

import io
from datetime import date

import pytest
from django.utils import timezone
from openpyxl import load_workbook

from gridsvc.cases.models import CaseEvent
from gridsvc.community.models import (
    FiveRole,
    GroupMember,
    ResidentGroup,
    ResidentLanguage,
    Team,
    TeamMembership,
)
from gridsvc.territory.models import Household

from .cases_helpers import report

pytestmark = pytest.mark.django_db

NEW = {
    "disputes_to_mediator": "分派调处员的矛盾纠纷(件)",
    "interpreter_needed": "需翻译居民(人)",
    "group_members": "群体台账人员(人)",
    "group_members_retired_leader": "其中离退休老领导",
    "group_members_self_employed": "其中个体户/企业家",
    "group_members_returned_overseas": "其中归国华侨/留学生",
    "group_members_new_stratum": "其中新的社会阶层",
}


def _routed_to_mediator(community_id: int, start: date, end: date) -> int:
    return len(_routed_cases(community_id, start, end))


def _routed_cases(community_id: int, start: date, end: date) -> set[int]:
    """Disputes whose route or clock escalation in [start, end) handed them to a 五员 调处员
    of the community — read from the events one by one, in Python."""
    mediators = set(
        TeamMembership.objects.filter(
            team=Team.FIVE_MEMBERS, role=FiveRole.MEDIATOR, community_id=community_id
        ).values_list("member_id", flat=True)
    )
    cases = set()
    for ev in CaseEvent.objects.filter(
        kind__in=["route", "escalate"], case__community_id=community_id, case__kind="dispute"
    ).select_related("case"):
        day = timezone.localdate(ev.at)
        if not start <= day < end:
            continue
        level = ev.data.get("level") if ev.kind == "route" else ev.data.get("to_level")
        if level == "mediation_committee" and ev.data.get("handler") in mediators:
            cases.add(ev.case_id)
    return cases


def _expected(community_id: int, start: date, end: date) -> dict[str, int]:
    out = {}
    for g in ResidentGroup.values:
        out[f"group_members_{g}"] = sum(
            1
            for row in GroupMember.objects.filter(community_id=community_id)
            if row.group == g and row.created_at.date() < end
        )
    out["group_members"] = sum(out[f"group_members_{g}"] for g in ResidentGroup.values)
    out["interpreter_needed"] = sum(
        1
        for row in ResidentLanguage.objects.filter(community_id=community_id)
        if row.interpreter_needed and row.created_at.date() < end
    )
    out["disputes_to_mediator"] = _routed_to_mediator(community_id, start, end)
    return out


def test_the_year_figures_count_groups_interpreter_needs_and_disputes_to_the_mediator(
    demo, member_client
):
    # two wages disputes in grid 4 (its cadre post vacant) climb to the community: the first
    # goes to the 调处员 (counted), the second to the committee's holder while both 调处员
    # are on leave (not counted); a hazard never goes to the 调处员
    hh = Household.objects.filter(unit__building__grid=demo.grids[3]).order_by("id").first()
    routed = report("wages", household=hh).case
    assert routed.handler.username == "cadre5"
    mediators = TeamMembership.objects.filter(
        team=Team.FIVE_MEMBERS, role=FiveRole.MEDIATOR, community=demo.community
    )
    mediators.update(on_leave=True)
    committee = report("wages", household=hh).case
    assert committee.level == "mediation_committee" and committee.handler.username != "cadre5"
    mediators.update(on_leave=False)
    year = timezone.localdate().year
    street = member_client("street")
    url = f"/api/v1/reports/annual/?community={demo.community.code}&year={year}"
    r = street.get(f"{url}&format=json")
    assert r.status_code == 200, r.content[:300]
    unity = r.json()["unity"]
    start, end = date(year, 1, 1), date(year + 1, 1, 1)
    expected = _expected(demo.community.pk, start, end)
    assert {k: unity[k] for k in NEW} == expected
    # the demo has them: four group ledgers, the ten oldest 东乡族 residents need one
    assert expected["group_members"] > 0 and expected["interpreter_needed"] == 10
    assert all(expected[f"group_members_{g}"] > 0 for g in ResidentGroup.values)
    assert expected["disputes_to_mediator"] >= 1
    assert routed.pk in _routed_cases(demo.community.pk, start, end)
    assert committee.pk not in _routed_cases(demo.community.pk, start, end)
    # the xlsx (its 民族团结进步创建 sheet) and the PDF carry a row each
    book = load_workbook(io.BytesIO(street.get(f"{url}&format=xlsx").content))
    sheet = book["民族团结进步创建"]
    cells = {row[0]: row[1] for row in sheet.iter_rows(min_row=2, values_only=True) if row}
    assert {label: cells.get(label) for label in NEW.values()} == {
        label: unity[k] for k, label in NEW.items()
    }
    pdf = street.get(f"{url}&format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_the_month_figures_and_a_committee_holder_not_counted(demo, member_client):
    r = member_client("street").get("/api/v1/community/figures/?month=2026-09")
    assert r.status_code == 200, r.content
    f = r.json()
    expected = _expected(demo.community.pk, date(2026, 9, 1), date(2026, 10, 1))
    assert {k: f[k] for k in NEW} == expected
    # the grid member reads their grid's share only: never more than the street's
    g = member_client("grid1").get("/api/v1/community/figures/?month=2026-09").json()
    assert g["group_members"] <= f["group_members"]
    assert g["interpreter_needed"] <= f["interpreter_needed"]
