"""The grid's ledgers (台账, :mod:`gridsvc.dataio.ledgers`) of people's services: one row per
assistance application of the grid's households decided or open in the year (民生服务台账),
and the year's figures (民生服务统计) from :mod:`.figures` — the same numbers as the work
report. Staff and street only (the ledger workbook refuses the neighbour tier); income and
amounts are ``**`` unless the export is unmasked (then audited with the workbook)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Q
from django.utils import timezone
from openpyxl import Workbook

from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import MASK, Tier, knows_sensitive, staff_scope
from gridsvc.territory.models import Household

from .figures import COUNT_KEYS, period_figures, suppressed
from .models import Application, Kind, Status

LEDGER_HEADERS = ["序号", "住户", "类别", "状态", "申请日期", "开始日期", "结束日期", "复核日期",
                  "核查人数", "月收入(元)", "金额(元)"]  # fmt: skip


def add_sheets(
    wb: Workbook, area: Any, scope: Scope, tier: Tier, year: int, unmasked: bool
) -> dict[str, int]:
    """Append 民生服务台账 and 民生服务统计 for ``area`` (a grid) in ``year`` to ``wb``, at the
    ``tier`` of :func:`gridsvc.dataio.sheets.ledger_access` for that grid (the street tier
    only over the reader's own street)."""
    from gridsvc.dataio.cells import append_row
    from gridsvc.dataio.sheets import header as _header

    if not knows_sensitive(tier):
        return {}
    households = staff_scope(scope).filter(Household.objects.filter(unit__building__grid=area))
    first, last = date(year, 1, 1), date(year, 12, 31)
    apps = Application.objects.filter(household__in=households)
    in_year = (
        apps.filter(
            Q(created_at__year=year)
            | Q(status=Status.APPROVED, start_date__lte=last)
            & (Q(end_date__isnull=True) | Q(end_date__gte=first))
        )
        .select_related("household__unit__building")
        .order_by("kind", "household_id", "id")
    )
    ws = wb.create_sheet("民生服务台账")
    _header(ws, LEDGER_HEADERS, f"{area.name} 民生服务台账 {year}")
    n = 0
    for n, a in enumerate(in_year, start=1):  # noqa: B007
        money = (
            (lambda v: "" if v is None else str(v)) if unmasked else (lambda v: "" if v is None else MASK)
        )  # fmt: skip
        append_row(
            ws,
            [n, str(a.household), a.get_kind_display(), a.get_status_display(),
             a.created_at.date().isoformat(),
             a.start_date.isoformat() if a.start_date else "",
             a.end_date.isoformat() if a.end_date else "",
             a.recheck_due.isoformat() if a.recheck_due else "",
             a.members_count or "", money(a.monthly_income), money(a.amount)],
        )  # fmt: skip
    stats = wb.create_sheet("民生服务统计")
    headers = [
        "类别",
        "户数",
        "人数",
        "少数民族人数",
        "少数民族户数",
        "少数民族人数占比",
        "少数民族户数占比",
    ]
    _header(stats, headers, f"{area.name} 民生服务统计 {year}(临时救助为年内发放)")
    for kind, row in period_figures(apps, first, min(last, timezone.localdate())).items():
        shown = suppressed(row, tier)
        append_row(
            stats,
            [Kind(kind).label, *("<5" if shown[k] is None else shown[k] for k in COUNT_KEYS),
             "" if shown["minority_people_share"] is None else shown["minority_people_share"],
             "" if shown["minority_households_share"] is None else shown["minority_households_share"]],
        )  # fmt: skip
    return {"民生服务": n}
