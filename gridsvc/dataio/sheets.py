"""What every ledger (台账) workbook shares: who may open one and how it is masked
(:func:`ledger_access`), a resident's masked columns (:func:`person_cells`), the sheet heading
(:func:`header`), one sheet written from its spec (:class:`Ledger`, :class:`SheetSpec`,
:func:`write_sheet`) and the 汇总 sheet with the audit entry (:func:`finish_workbook`).

The three ledger modules — the grid's person ledgers (:mod:`gridsvc.dataio.ledgers`), the
community work (:mod:`gridsvc.community.ledgers`) and people's services
(:mod:`gridsvc.assistance.ledgers`) — import this module; it imports none of them, and the
community and assistance modules import nothing of the grid workbook (which puts their
sheets into it): no import circle.

openpyxl is imported where a workbook is made, not with the URLconf.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet

from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import (
    ETHNICITY,
    MASKED,
    Tier,
    birth_year,
    rule,
    staff_scope,
    tier_for,
)
from gridsvc.territory.codes import ETHNICITIES, mask_id_number, mask_phone
from gridsvc.territory.models import Community, Grid, Resident

from .access import audit_export, may_unmask_export, member_scope
from .cells import append_row

if TYPE_CHECKING:
    from openpyxl import Workbook

MASK = "**"  # a masked value, as in the API (api.privacy.MASK)
HEADER_FILL = "DDEBF7"
BASE_HEADERS = [
    "序号",
    "姓名",
    "性别",
    "出生年份",
    "民族",
    "身份证号",
    "联系电话",
    "楼栋",
    "单元",
    "房号",
]
REFUSED = "ledgers (台账) are kept by grid members, community cadres and the street office"


class LedgerRefused(PermissionDenied):
    """Ledgers are the grid staff's records: the neighbour tier never gets them."""


def ledger_tier(member) -> Tier:  # type: ignore[no-untyped-def]
    """The member's tier for ledgers; ``None`` (the operator's command) is STREET."""
    return Tier.STREET if member is None else tier_for(member)


def may_get_ledgers(member) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``member`` may download ledgers at all (staff and street tiers)."""
    return ledger_tier(member) >= Tier.STAFF


def ledger_scope(member) -> Scope:  # type: ignore[no-untyped-def]
    """Where ``member``'s ledgers reach: their territory held through staff/street positions."""
    return staff_scope(member_scope(member))


def ledger_access(  # type: ignore[no-untyped-def]
    member, area: Grid | Community | None = None
) -> tuple[Tier, Scope, bool, bool]:
    """Who may open a ledger (台账) of ``area`` and how it is masked for them, for every ledger
    workbook: ``(tier, scope, unmasked, ethnicity_masked)``. Raises :class:`LedgerRefused`
    below the staff tier (neighbours keep no ledgers). The street tier (exact small counts,
    names in clear) is for the street the member holds a street post over, as the reports
    read it (:func:`gridsvc.reports.services.figures_tier`): a dispatcher of one street who
    is a grid member in another gets that grid's ledgers as staff. ``area`` None: the rule
    over the member's whole staff territory."""
    from gridsvc.reports.services import figures_tier

    tier = ledger_tier(member)
    if tier < Tier.STAFF:
        raise LedgerRefused(REFUSED)
    scope = ledger_scope(member)
    if member is not None:
        where = area.community if isinstance(area, Grid) else area
        tier = figures_tier(member, scope, where)
    unmasked = may_unmask_export(member, ("id_number", "phone", "ethnicity"))
    return tier, scope, unmasked, rule(ETHNICITY, tier) == MASKED and not unmasked


def person_cells(r: Resident, unmasked: bool, ethnicity_masked: bool) -> list:  # type: ignore[type-arg]
    """A resident's columns of every person ledger after 序号 (:data:`BASE_HEADERS`). Birth
    *year* only: with the ID number masked to region + last four, the full date would rebuild
    the whole number."""
    hh = r.household
    return [
        r.name,
        r.get_gender_display() if r.gender else "",
        birth_year(r.birth_date) or "",
        MASK if ethnicity_masked else ETHNICITIES.get(r.ethnicity, ("", ""))[0],
        r.id_number if unmasked else mask_id_number(r.id_number),
        r.phone if unmasked else mask_phone(r.phone),
        hh.unit.building.name if hh else "",
        hh.unit.number if hh else "",
        hh.room if hh else "",
    ]


def header(ws, headers: list[str], title: str) -> None:  # type: ignore[no-untyped-def]
    """A ledger sheet's heading (row 1, ``title``) and column header (row 2)."""
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    append_row(ws, [title])
    ws["A1"].font = Font(bold=True, size=13)
    append_row(ws, headers)
    for c in ws[2]:
        c.font = Font(bold=True)
        c.fill = PatternFill("solid", fgColor=HEADER_FILL)
        c.alignment = Alignment(horizontal="center")
    for i, h in enumerate(headers, start=1):
        ws.column_dimensions[get_column_letter(i)].width = (
            20 if h == "身份证号" else max(8, 3 * len(h))
        )
    ws.freeze_panes = "C3"


@dataclass(frozen=True)
class Ledger:
    """What one ledger workbook is made for: the area (a grid or a community), the reader's
    staff scope and tier, the year, and the reader's masks."""

    area: Grid | Community
    scope: Scope
    tier: Tier
    year: int
    unmasked: bool
    eth_masked: bool

    @property
    def q(self) -> Q:
        """The area's records (their own grid or community field)."""
        return Q(grid=self.area) if isinstance(self.area, Grid) else Q(community=self.area)

    def records(self, model: type[Model], **filters: Any) -> QuerySet:
        """``model``'s records of the area within the scope."""
        return self.scope.filter(model._default_manager.filter(self.q, **filters))

    def of_year(self, model: type[Model], field: str = "date") -> QuerySet:
        """``model``'s records of the area dated (by ``field``) in the year."""
        return self.records(model, **{f"{field}__year": self.year})

    def person(self, r: Resident) -> list[Any]:
        """A resident's ledger columns after 序号, masked for the reader."""
        return person_cells(r, self.unmasked, self.eth_masked)


@dataclass(frozen=True)
class SheetSpec:
    """One ledger sheet: its ``title`` (the tab and the count's key), its ``headers`` (after
    序号), its ``heading`` (row 1; ``{area}`` and ``{year}`` filled in), the records
    (``rows``) and a record's cells after 序号 (``row``). ``after``, if given, is called with
    the sheet, the ledger and the records written (e.g. to embed pictures beside the rows)."""

    title: str
    headers: list[str]
    heading: str
    rows: Callable[[Ledger], Iterable[Any]]
    row: Callable[[Ledger, Any], list[Any]]
    after: Callable[[Any, Ledger, list[Any]], None] | None = None


def write_sheet(wb: Workbook, spec: SheetSpec, ledger: Ledger) -> int:
    """Append ``spec``'s sheet to ``wb``: heading, header, the numbered rows. Returns the
    number of rows."""
    ws = wb.create_sheet(spec.title)
    heading = spec.heading.format(area=ledger.area.name, year=ledger.year)
    header(ws, ["序号", *spec.headers], heading)
    written: list[Any] = []
    n = 0
    for n, record in enumerate(spec.rows(ledger), start=1):  # noqa: B007
        append_row(ws, [n, *spec.row(ledger, record)])
        if spec.after is not None:
            written.append(record)
    if spec.after is not None:
        spec.after(ws, ledger, written)
    return n


def finish_workbook(  # type: ignore[no-untyped-def]
    wb, counts: dict[str, int], headers: list[str], heading: str, member, kind: str, detail: dict
) -> bytes:
    """Put the 汇总 sheet (rows per ledger and the masking note) first in a ledger workbook,
    write the export to the audit log (``kind``, ``detail``) and return the xlsx bytes."""
    summary = wb.create_sheet("汇总", 0)
    header(summary, headers, heading)
    for k, v in counts.items():
        append_row(summary, [k, v])
    append_row(summary, [])
    append_row(
        summary,
        ["说明", "身份证号、联系电话、民族已脱敏,出生日期只列年份;导出已记入审计日志"],
    )
    buf = io.BytesIO()
    wb.save(buf)
    audit_export(member, kind, detail=detail)
    return buf.getvalue()
