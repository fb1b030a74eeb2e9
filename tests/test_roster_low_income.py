"""The grid ledger's 低保及廉租房 sheet lists 低保 as the work report counts it: the approved
低保 applications in force on the ledger's day (gridsvc.assistance.figures), not the
residents' ``low_income`` tag."""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

import pytest
from openpyxl import load_workbook

from gridsvc.accounts.models import Member
from gridsvc.assistance.figures import kind_figures
from gridsvc.assistance.models import Application, Kind, Status
from gridsvc.dataio.ledgers import ledger_workbook
from gridsvc.territory.models import Resident

pytestmark = pytest.mark.django_db

YEAR = 2026
SHEET = "低保及廉租房"


def _day() -> date:
    return min(date(YEAR, 12, 31), date.today())


def _sheet(grid: Any) -> list[tuple[Any, ...]]:
    """The sheet's data rows as grid 1's member reads them."""
    content = ledger_workbook(grid, Member.objects.get(username="grid1"), year=YEAR)
    ws = load_workbook(io.BytesIO(content))[SHEET]
    header = [c.value for c in ws[2]]
    assert header[-3:] == ["低保", "廉租房", "住房性质"]
    return list(ws.iter_rows(min_row=3, values_only=True))


def _on_dibao(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [r for r in rows if r[-3] == "是"]


def _homes(rows: list[tuple[Any, ...]]) -> set[tuple[str, str, str]]:
    """(楼栋, 单元, 房号) of the rows."""
    return {(str(r[7]), str(r[8]), str(r[9])) for r in rows}


def _home(household: Any) -> tuple[str, str, str]:
    return (household.unit.building.name, str(household.unit.number), str(household.room))


def test_the_roster_low_income_is_the_approved_applications_in_force(demo: Any) -> None:
    grid, day = demo.grids[0], _day()
    apps = Application.objects.filter(household__unit__building__grid=grid)
    in_force = apps.filter(kind=Kind.DIBAO, status=Status.APPROVED, start_date__lte=day).exclude(
        end_date__lt=day
    )
    rows = _sheet(grid)
    # the sheet's 低保 people are the report's figure for the grid on the day
    assert len(_on_dibao(rows)) == kind_figures(apps, Kind.DIBAO, day)["people"] > 0
    # a tag added to someone not on 低保 changes nothing …
    untagged = (
        Resident.objects.filter(household__unit__building__grid=grid)
        .exclude(household__in=in_force.values("household"))
        .exclude(tags__overlap=["low_income", "low_rent_housing"])
        .order_by("id")
        .first()
    )
    assert untagged is not None
    untagged.tags = [*untagged.tags, "low_income"]
    untagged.save()
    assert _sheet(grid) == rows
    assert _home(untagged.household) not in _homes(_on_dibao(rows))

    # … nor does a tag removed from someone on it
    tagged = Resident.objects.filter(
        household__in=in_force.values("household"), tags__contains=["low_income"]
    ).first()
    assert tagged is not None
    tagged.tags = [t for t in tagged.tags if t != "low_income"]
    tagged.save()
    assert _sheet(grid) == rows

    # an application ended before the day takes its household off 低保
    ended = in_force.order_by("pk").first()
    assert ended is not None
    assert _home(ended.household) in _homes(_on_dibao(rows))
    people = ended.household.residents.count()
    ended.end_date = day - timedelta(days=1)
    ended.save()
    after = _sheet(grid)
    assert len(_on_dibao(after)) == len(_on_dibao(rows)) - people
    assert _home(ended.household) not in _homes(_on_dibao(after))
