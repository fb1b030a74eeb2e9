"""The community-work ledger sheets (gridsvc/community/ledgers.py) against a golden copy.

``tests/data/community_ledger_sheets_2026.json`` holds every cell value of the sheets the
community ledgers write — in grid 1's workbook (as ``grid1`` reads it) and in the community's
workbook (as the staff 调处员 ``mediator`` reads it) for the demo year 2026 — captured from the
code before the sheets were rewritten as one sheet-spec table. Cell-for-cell equal, except the
columns a sheet gained since (``ADDED_COLUMNS``: appended on the right, the old ones unchanged).

The demo's cases are dated back from the day the demo is loaded, so the rows hanging on cases
(调处, 签认, 翻译随行 of a case) and the wall-clock ``created_at`` would change from day to day,
and the venues' visits follow the venue rule's demo: :func:`_pin` replaces them, inside the
test's transaction, by a fixed handful. To capture the
golden again: ``GRIDSVC_WRITE_GOLDEN=1`` (only ever from code known to write the right sheets).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from gridsvc.accounts.models import Member
from gridsvc.cases.models import Case
from gridsvc.community.ledgers import community_workbook
from gridsvc.community.models import (
    InterpreterCall,
    Mediation,
    SignOff,
    TeamMembership,
    VenueTask,
    VenueVisit,
)
from gridsvc.dataio.ledgers import ledger_workbook
from gridsvc.territory.models import Household, Place
from gridsvc.visits.models import VisitTask

pytestmark = pytest.mark.django_db

GOLDEN = Path(__file__).parent / "data" / "community_ledger_sheets_2026.json"
YEAR = 2026
# the sheets gridsvc/community/ledgers.py writes into a grid's workbook
COMMUNITY_WORK_SHEETS = [
    "活动与宣传", "排查", "信访", "志愿者", "宗教场所", "结对帮扶", "评比", "调处", "签认",
    "翻译随行", "离退休老领导", "个体户企业家", "归国华侨留学生", "新的社会阶层",
]  # fmt: skip
# columns appended since the golden was captured: sheet → how many
ADDED_COLUMNS = {"宗教场所": 4, "结对帮扶": 2, "活动与宣传": 1, "志愿者": 1}
# sheets added since (after the golden ones; their rows of the community's 汇总 left out):
# tests/test_community_ledgers_more.py and tests/test_unity_ledgers_more.py check them. The
# grid's 志愿者 golden was captured again when it gained the community-wide team members (社区);
# its interpreters' 角色 cells name the language (东乡语) since, as the REST API does (was `sce`)
ADDED_SHEETS = {"专项排查", "语言与翻译", "宗教场所联系人", "成员语言", "宗教场所走访", "志愿服务记录",
                "帮扶记录", "活动照片"}  # fmt: skip
# sheets longer than this are kept as their length, a digest of every row and the first rows
# (the community's 少数民族人员 and its year of 一日一报 would make the file some 300 kB)
LONG = 120
HEAD = 20


def _digest(rows: list[list[Any]]) -> str:
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def _kept(rows: list[list[Any]]) -> list[list[Any]] | dict[str, Any]:
    """A sheet as the golden file keeps it."""
    if len(rows) <= LONG:
        return rows
    return {"rows": len(rows), "sha256": _digest(rows), "head": rows[:HEAD]}


def _dump(books: dict[str, dict[str, Any]]) -> str:
    """The golden file: JSON, one sheet row a line (diffs read by row)."""
    lines = ["{"]
    for b, (book, sheets) in enumerate(books.items()):
        lines.append(f" {json.dumps(book)}: {{")
        for s, (sheet, kept) in enumerate(sheets.items()):
            rows = kept if isinstance(kept, list) else kept["head"]
            body = ",\n".join("   " + json.dumps(r, ensure_ascii=False) for r in rows)
            if isinstance(kept, list):
                value = f"[\n{body}\n  ]"
            else:
                value = (
                    f'{{"rows": {kept["rows"]}, "sha256": "{kept["sha256"]}", "head": [\n'
                    f"{body}\n  ]}}"
                )
            comma = "," if s < len(sheets) - 1 else ""
            lines.append(f"  {json.dumps(sheet, ensure_ascii=False)}: {value}{comma}")
        lines.append(" }" + ("," if b < len(books) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _pin(demo: Any) -> None:
    """Replace the rows that hang on the demo's (load-day-relative) cases by fixed ones."""
    comm = demo.community
    grid = demo.grids[0]
    Mediation.objects.filter(community=comm).delete()
    SignOff.objects.filter(community=comm).delete()
    InterpreterCall.objects.filter(community=comm, case__isnull=False).delete()
    # the visit tasks' calls stay (the visits are fixed-date); their wall-clock stamp does not
    calls = InterpreterCall.objects.filter(community=comm).order_by("id")
    for k, pk in enumerate(calls.values_list("pk", flat=True)):
        stamp = datetime(YEAR, 3, 1, 4, tzinfo=UTC) + timedelta(hours=k)
        InterpreterCall.objects.filter(pk=pk).update(created_at=stamp)
    cases = list(Case.objects.order_by("id")[:4])
    for k, c in enumerate(cases, start=1):
        Case.objects.filter(pk=c.pk).update(number=f"GOLDEN-{k:03d}")
    mediator = Member.objects.get(username="cadre5")
    ethnic = Member.objects.get(username="ethnic")
    where = {"street": demo.street, "community": comm, "grid": grid}
    for k, (case, outcome) in enumerate(
        zip(cases[:3], ["agreed", "ongoing", "failed"], strict=True)
    ):
        Mediation.objects.create(
            **where, recorded_by=mediator, case=case, mediator=mediator,
            date=date(YEAR, 4, 10 + k), outcome=outcome, note=f"调处{k}",
        )  # fmt: skip
    for k, case in enumerate(cases[1:3]):
        SignOff.objects.create(
            **where, recorded_by=ethnic, case=case, confirmed=k == 0,
            note="回访稳定" if k == 0 else "尚不稳定",
            created_at=datetime(YEAR, 5, 2 + k, 3, tzinfo=UTC),
        )  # fmt: skip
    household = Household.objects.filter(unit__building__grid=grid).order_by("id").first()
    interpreter = (
        TeamMembership.objects.filter(community=comm, team="interpreters").order_by("id").first()
    )
    for k, case in enumerate(cases[:2]):
        InterpreterCall.objects.create(
            **where, recorded_by=mediator, case=case, household=household, language="ug",
            interpreter=interpreter if k == 0 else None, assignee=mediator if k == 0 else None,
            created_at=datetime(YEAR, 6, 1 + k, 2, tzinfo=UTC),
        )  # fmt: skip
    # the venues' liaison visits: the demo's change as the venue rule is worked on; fixed here
    VenueVisit.objects.filter(community=comm).delete()
    venues = Place.objects.filter(community=comm, kind__in=["mosque", "religious_venue"])
    for k, venue in enumerate(venues.order_by("id")):
        for month in range(1, 4 + k):
            VenueVisit.objects.create(
                street=demo.street, community=comm, grid=venue.grid, recorded_by=mediator,
                place=venue, date=date(YEAR, month, 10 + k), joint=month != 2,
                participants=3, hazard_found=month == 3, hazards="消防通道堵塞" if month == 3 else "",
            )  # fmt: skip
    task = VisitTask.objects.filter(household__unit__building__grid=grid).order_by("id").first()
    InterpreterCall.objects.create(
        **where, recorded_by=mediator, visit_task=task, household=task.household, language="kk",
        created_at=datetime(YEAR, 7, 1, 2, tzinfo=UTC),
    )  # fmt: skip


def _json_cell(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    return v


def _rows(ws: Any) -> list[list[Any]]:
    """Every row's cell values, trailing empty cells dropped."""
    out = []
    for row in ws.iter_rows(values_only=True):
        cells = [_json_cell(v) for v in row]
        while cells and cells[-1] is None:
            cells.pop()
        out.append(cells)
    return out


def _workbooks(demo: Any) -> dict[str, dict[str, list[list[Any]]]]:
    _pin(demo)
    grid_wb = load_workbook(
        io.BytesIO(ledger_workbook(demo.grids[0], Member.objects.get(username="grid1"), year=YEAR))
    )
    comm_wb = load_workbook(
        io.BytesIO(
            community_workbook(demo.community, Member.objects.get(username="mediator"), year=YEAR)
        )
    )
    grid = {t: _rows(grid_wb[t]) for t in COMMUNITY_WORK_SHEETS}
    # the grid summary's rows of these sheets (its title carries today's date; its other rows
    # are other modules' sheets)
    grid["汇总"] = [r for r in _rows(grid_wb["汇总"]) if r and r[0] in COMMUNITY_WORK_SHEETS]
    community = {ws.title: _rows(ws) for ws in comm_wb.worksheets if ws.title not in ADDED_SHEETS}
    community["汇总"] = [r for r in community["汇总"] if not (r and r[0] in ADDED_SHEETS)]
    return {"grid": grid, "community": community}


def _differences(
    sheet: str, golden: list[list[Any]] | dict[str, Any], now: list[list[Any]]
) -> list[str]:
    """How ``now`` differs from the golden copy of ``sheet`` (the first differing row)."""
    added = ADDED_COLUMNS.get(sheet, 0)
    if isinstance(golden, dict):  # a long sheet: its length, first rows and digest
        head = golden["head"]
        if added or len(now) != golden["rows"] or now[: len(head)] != head:
            first = next(
                (i for i, (o, n) in enumerate(zip(head, now, strict=False)) if o != n), len(head)
            )
            return [f"{sheet}: {len(now)} rows (golden {golden['rows']}), row {first + 1}"]
        return [] if _digest(now) == golden["sha256"] else [f"{sheet}: rows differ"]
    if len(now) != len(golden):
        return [f"{sheet}: {len(now)} rows (golden {len(golden)})"]
    for i, (old, new) in enumerate(zip(golden, now, strict=True), start=1):
        if added and i >= 2 and new:  # header and data rows: the old columns, then the new
            width = len(golden[1])  # the old header's (a golden row drops its trailing blanks)
            same = (
                len(new) <= width + added
                and new[: len(old)] == old
                and all(v is None for v in new[len(old) : width])
            )
        else:
            same = new == old
        if not same:
            return [f"{sheet} row {i}: {new} (golden {old})"]
    return []


def test_the_ledger_sheets_are_the_golden_ones_cell_for_cell(demo: Any) -> None:
    got = _workbooks(demo)
    if os.environ.get("GRIDSVC_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        kept = {b: {t: _kept(rows) for t, rows in book.items()} for b, book in got.items()}
        GOLDEN.write_text(_dump(kept))
    golden = json.loads(GOLDEN.read_text())
    problems = []
    for book in ("grid", "community"):
        assert list(got[book]) == list(golden[book]), book  # the same sheets, in order
        for sheet, rows in golden[book].items():
            problems += [f"{book} {p}" for p in _differences(sheet, rows, got[book][sheet])]
    assert problems == []
    # the golden is not empty where it matters
    for sheet in ("活动与宣传", "排查", "信访", "志愿者", "宗教场所", "调处", "签认", "翻译随行"):
        assert len(got["community"][sheet]) > 2, sheet


def test_a_grid_members_ledger_masks_ids_phones_and_petitioners(demo: Any) -> None:
    """docs/security.md, ledger rules: ID numbers region + last four, phones last four,
    ethnicity masked for staff; petitioners' names masked below the street."""
    got = _workbooks(demo)["grid"]
    masked = 0
    for sheet in ("个体户企业家", "新的社会阶层", "离退休老领导", "归国华侨留学生"):
        header, *rows = got[sheet][1:]
        for row in rows:
            ident, phone = row[header.index("身份证号")], row[header.index("联系电话")]
            assert not ident or ("*" in ident and len(ident.replace("*", "")) <= 10), ident
            assert not phone or ("*" in phone and len(phone.replace("*", "")) <= 4), phone
            assert row[header.index("民族")] == "**"
            masked += bool(ident) and bool(phone)
    assert masked
    header, *petitions = got["信访"][1:]
    assert petitions
    assert all("*" in row[header.index("来访人")] for row in petitions)
    street = load_workbook(
        io.BytesIO(ledger_workbook(demo.grids[0], Member.objects.get(username="street"), year=YEAR))
    )
    names = [r[2] for r in street["信访"].iter_rows(min_row=3, values_only=True)]
    assert names and all("*" not in n for n in names)


def test_the_venue_sheet_counts_the_years_joint_visit_tasks_by_status(demo: Any) -> None:
    """宗教场所: per venue, the year's VenueTasks — all (应共同走访), done, overdue, missed."""
    from gridsvc.visits.models import VisitRule

    rule, _ = VisitRule.objects.get_or_create(
        code="golden-venues",
        defaults={"name": "每月与清真寺共同走访", "target_group": "religious_venues",
                  "frequency": "monthly", "visitor_level": "grid_member", "joint_visit": True},
    )  # fmt: skip
    venue = (
        Place.objects.filter(community=demo.community, kind__in=["mosque", "religious_venue"])
        .order_by("id")
        .first()
    )
    VenueTask.objects.filter(community=demo.community).delete()
    recorder = Member.objects.get(username="street")
    statuses = ["done", "done", "done", "overdue", "missed", "missed", "open"]
    for month, status in enumerate(statuses, start=1):
        start = date(YEAR, month, 1)
        VenueTask.objects.create(
            street=demo.street, community=demo.community, grid=venue.grid, recorded_by=recorder,
            rule=rule, place=venue, period=f"{YEAR}-{month:02d}", period_start=start,
            period_end=start + timedelta(days=27), due_on=start + timedelta(days=20),
            status=status,
        )  # fmt: skip
    # another year's task is not this year's
    VenueTask.objects.create(
        street=demo.street, community=demo.community, grid=venue.grid, recorded_by=recorder,
        rule=rule, place=venue, period=f"{YEAR - 1}-12", period_start=date(YEAR - 1, 12, 1),
        period_end=date(YEAR - 1, 12, 28), due_on=date(YEAR - 1, 12, 20), status="missed",
    )  # fmt: skip
    book = load_workbook(
        io.BytesIO(
            community_workbook(demo.community, Member.objects.get(username="mediator"), year=YEAR)
        )
    )
    header, *rows = list(book["宗教场所"].iter_rows(min_row=2, values_only=True))
    assert list(header[-4:]) == ["应共同走访(任务)", "已走访", "逾期", "漏访"]
    row = next(r for r in rows if r[1] == venue.name)
    assert list(row[-4:]) == [7, 3, 1, 2]
    others = [r for r in rows if r[1] != venue.name]
    assert others and all(list(r[-4:]) == [0, 0, 0, 0] for r in others if r[1])
