"""Ledgers (台账) of one grid as an xlsx workbook, one sheet per ledger.

少数民族居民 · 困难家庭 · 失业/下岗人员 · 低保及廉租房 · 独居老人 · 社区矫正及两劳帮教 (with the
month-by-month visit record when the visits app has tasks) · 流动人口 (list, and a summary by
place of origin) · 德高望重人士及宗教人士.

Who gets them (按需知悉, :mod:`gridsvc.chain.visibility`): ledgers are the grid staff's working
records (网格员、社区干部、街道) and list members of sensitive groups, so they are refused to the
neighbour tier (楼长、单元长、物业、业委会) outright (:class:`LedgerRefused`, 403) and, for a member
who is staff in one place and a neighbour in another, cover only the part of the grid held
through a staff position (:func:`~gridsvc.chain.visibility.staff_scope`).

Masks are a set over each row (item 2 of the privacy review): ID numbers keep region + last
four, so the birth *date* is never shown beside them — only the birth year (and an age computed
from the year alone); phones keep only their last four digits (``mask_phone``); ethnicity is
masked like in the API. The unmask hook (:func:`~gridsvc.dataio.access.may_unmask_export`)
allows nothing yet. Every string cell is written as text (:mod:`gridsvc.dataio.cells`), never
a formula, and every ledger export is written to the audit log.

低保 is the work report's one definition: the approved 低保 applications in force on the
ledger's day (the year's last day, today for the current year;
:func:`gridsvc.assistance.figures.households_on`), not the residents' ``low_income`` tag.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date

from django.db.models import Count, Q, QuerySet

from gridsvc.assistance.figures import households_on
from gridsvc.assistance.models import Kind
from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import SENSITIVE_TAGS
from gridsvc.territory.models import Grid, Household, Resident
from gridsvc.visits.models import VisitTask

from .cells import append_row

# what every ledger workbook shares (gridsvc.dataio.sheets), named here as before
from .sheets import (  # noqa: F401
    BASE_HEADERS,
    MASK,
    REFUSED,
    LedgerRefused,
    finish_workbook,
    ledger_access,
    ledger_scope,
    ledger_tier,
    may_get_ledgers,
    person_cells,
)
from .sheets import header as _header

TAG_LABELS = dict(Resident.Tag.choices)
RESIDENCY_LABELS = dict(Resident.Residency.choices)
TENURE_LABELS = dict(Household.Tenure.choices)


def dibao_households(day: date) -> QuerySet:
    """The households on 低保 on ``day``: approved 低保 applications in force that day — the
    work report's one definition (:func:`gridsvc.assistance.figures.households_on`), not the
    residents' ``low_income`` tag."""
    return households_on(Kind.DIBAO, day)


def on_dibao_q(day: date) -> Q:
    """The 低保及廉租房 sheet's residents: in a household on 低保 on ``day``, or tagged as
    living in 廉租房."""
    return Q(household__in=dibao_households(day)) | Q(tags__contains=["low_rent_housing"])


# (sheet title, filter on residents — or its function of the ledger's day —, extra columns);
# the correction/help-education and floating sheets are built separately below.
LEDGERS: list[tuple[str, Q | Callable[[date], Q], list[str]]] = [
    ("少数民族居民", ~Q(ethnicity="01"), ["户籍类型", "与户主关系"]),
    ("困难家庭", Q(tags__contains=["hardship"]), ["与户主关系", "标签"]),
    ("失业下岗人员", Q(tags__contains=["unemployed"]), ["户籍类型"]),
    ("低保及廉租房", on_dibao_q, ["低保", "廉租房", "住房性质"]),
    ("独居老人", Q(tags__contains=["elderly_alone"]), ["年龄(按出生年份)"]),
    ("德高望重及宗教人士", Q(tags__contains=["respected_elder"]) | Q(tags__contains=["religious_figure"]),
     ["类别"]),
]  # fmt: skip
CORRECTION_TAGS = ("community_correction", "help_education")


def _residents(grid: Grid, scope: Scope) -> QuerySet:
    qs = Resident.objects.filter(household__unit__building__grid=grid)
    return (
        scope.filter(qs)
        .select_related("household__unit__building")
        .order_by(
            "household__unit__building__code", "household__unit__number", "household__room", "id"
        )
    )


def _base(i: int, r: Resident, unmasked: bool, ethnicity_masked: bool) -> list:  # type: ignore[type-arg]
    """序号 and :func:`person_cells`: the columns every person ledger starts with."""
    return [i, *person_cells(r, unmasked, ethnicity_masked)]


def _extra(col: str, r: Resident, today: date, dibao: Collection[int] = ()) -> str | int:
    """Column ``col`` of a person ledger; ``dibao``: the household ids on 低保 that day."""
    tags = set(r.tags)
    if col == "户籍类型":
        return RESIDENCY_LABELS.get(r.residency, r.residency)
    if col == "与户主关系":
        return r.relation_to_head
    if col == "标签":
        return "、".join(TAG_LABELS.get(t, t) for t in r.tags if t not in SENSITIVE_TAGS)
    if col == "低保":
        return "是" if r.household_id in dibao else ""
    if col == "廉租房":
        return "是" if "low_rent_housing" in tags else ""
    if col == "住房性质":
        return TENURE_LABELS.get(r.household.tenure, "") if r.household else ""
    if col == "年龄(按出生年份)":  # from the year alone: an exact age would narrow the date
        return today.year - r.birth_date.year if r.birth_date else ""
    if col == "类别":
        return "、".join(
            TAG_LABELS[t] for t in ("respected_elder", "religious_figure") if t in tags
        )
    if col == "户籍地":
        return r.origin_place
    return ""


def _visit_months(residents: list[Resident], year: int) -> dict[tuple[int, int], str]:
    """(resident or household id, month) → visit status of the correction visits."""
    labels = dict(VisitTask.Status.choices)
    out: dict[tuple[int, int], str] = {}
    hh_ids = {r.household_id for r in residents}
    tasks = (
        VisitTask.objects.filter(
            household__in=hh_ids,
            period_start__year=year,
            rule__target_group__in=CORRECTION_TAGS,
        )
        .select_related("done_by")
        .order_by("period_start")
    )
    for t in tasks:
        text = labels.get(t.status, t.status)
        if t.done_by_id and t.done_by:
            text += f" {t.done_by.client_time:%m-%d}"
        key = t.resident_id or -t.household_id
        out[(key, t.period_start.month)] = text
    return out


def ledger_workbook(grid: Grid, member=None, *, year: int | None = None) -> bytes:  # type: ignore[no-untyped-def]
    """All ledgers of ``grid`` as xlsx bytes, limited to the part of ``member``'s territory
    held through staff positions (audited). Raises :class:`LedgerRefused` for the neighbour
    tier."""
    tier, scope, unmasked, eth_masked = ledger_access(member, grid)
    today = date.today()
    year = year or today.year
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    counts: dict[str, int] = {}
    base = _residents(grid, scope)
    # 低保 as the work report counts it, on the year's last day (today for the current year)
    day = min(date(year, 12, 31), today)
    dibao = set(
        dibao_households(day)
        .filter(household__unit__building__grid=grid)
        .values_list("household", flat=True)
    )
    for title, q, extra in LEDGERS:
        ws = wb.create_sheet(title)
        _header(ws, BASE_HEADERS + extra, f"{grid.name} {title}台账")
        rows = list(base.filter(q(day) if callable(q) else q))
        for i, r in enumerate(rows, start=1):
            cells = [_extra(c, r, today, dibao) for c in extra]
            append_row(ws, _base(i, r, unmasked, eth_masked) + cells)
        counts[title] = len(rows)

    # 社区矫正及两劳帮教 with the monthly visit record (走访记录)
    title = "社区矫正及两劳帮教"
    ws = wb.create_sheet(title)
    months = [f"{m}月走访" for m in range(1, 13)]
    _header(ws, BASE_HEADERS + ["类别"] + months, f"{grid.name} {title}台账({year}年走访记录)")
    rows = list(base.filter(Q(tags__overlap=list(CORRECTION_TAGS))))
    visits = _visit_months(rows, year)
    for i, r in enumerate(rows, start=1):
        kind = "、".join(TAG_LABELS[t] for t in CORRECTION_TAGS if t in r.tags)
        record = [
            visits.get((r.id, m)) or visits.get((-r.household_id, m), "") for m in range(1, 13)
        ]
        append_row(ws, _base(i, r, unmasked, eth_masked) + [kind] + record)
    counts[title] = len(rows)

    # 流动人口: list + summary by origin (GROUP BY in SQL)
    title = "流动人口"
    ws = wb.create_sheet(title)
    _header(ws, BASE_HEADERS + ["户籍地", "住房性质"], f"{grid.name} {title}台账")
    rows = list(base.filter(residency=Resident.Residency.FLOATING))
    for i, r in enumerate(rows, start=1):
        append_row(
            ws, _base(i, r, unmasked, eth_masked) + [r.origin_place, _extra("住房性质", r, today)]
        )
    counts[title] = len(rows)
    ws = wb.create_sheet("流动人口按户籍地")
    _header(ws, ["户籍地", "人数", "户数"], f"{grid.name} 流动人口按户籍地统计")
    by_origin = (
        base.filter(residency=Resident.Residency.FLOATING)
        .order_by()
        .values("origin_place")
        .annotate(n=Count("id"), h=Count("household", distinct=True))
        .order_by("-n", "origin_place")
    )
    for row in by_origin:
        append_row(ws, [row["origin_place"] or "(未填)", row["n"], row["h"]])

    # the community's ethnic-unity work: activities, screening, 信访, volunteers, venues, groups
    from gridsvc.community.ledgers import add_sheets

    counts.update(add_sheets(wb, grid, scope, tier, year, unmasked))
    # people's services (民生服务, docs/assistance.md)
    from gridsvc.assistance.ledgers import add_sheets as add_assistance_sheets

    counts.update(add_assistance_sheets(wb, grid, scope, tier, year, unmasked))

    return finish_workbook(
        wb,
        counts,
        ["台账", "人数"],
        f"{grid.name}({grid.code})台账汇总 {today:%Y-%m-%d}",
        member,
        "ledger",
        {"grid": grid.code, "year": year, "counts": counts, "unmasked": unmasked},
    )


def visible_grid(code: str, member=None) -> Grid | None:  # type: ignore[no-untyped-def]
    """The grid with ``code`` if ``member``'s ledgers reach it (staff positions only).
    Raises :class:`LedgerRefused` (403) for the neighbour tier, whatever the grid."""
    if not may_get_ledgers(member):
        raise LedgerRefused(REFUSED)
    return ledger_scope(member).filter(Grid.objects.filter(code=code)).first()
