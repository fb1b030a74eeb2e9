"""The 成员语言 ledger sheet (gridsvc/community/ledgers.py, issue 20 item 11): the area's members
who speak a language besides 汉语 (recorded, or as a 民族语言翻译员), with their posts there —
staff data, read by whoever reads the ledger."""

from __future__ import annotations

import io
from typing import Any

import pytest
from openpyxl import load_workbook

from gridsvc.accounts.models import Member
from gridsvc.chain.models import Position
from gridsvc.community.ledgers import community_workbook
from gridsvc.community.models import MemberLanguage, Team, TeamMembership
from gridsvc.dataio.ledgers import LedgerRefused, ledger_workbook

pytestmark = pytest.mark.django_db

YEAR = 2026


def _rows(data: bytes) -> tuple[list[Any], list[list[Any]]]:
    ws = load_workbook(io.BytesIO(data))["成员语言"]
    header, *rows = [list(r) for r in ws.iter_rows(min_row=2, values_only=True)]
    return header, rows


def test_the_sheet_lists_the_areas_speakers_with_their_posts(demo):
    grid1 = Member.objects.get(username="grid1")
    grid2 = Member.objects.get(username="grid2")
    for m in (grid1, grid2):
        MemberLanguage.objects.create(member=m, languages=["zh", "sce"], recorded_by=m)
    # a speaker holding no post in the community's territory is not its member
    outsider = Member.objects.create_user("outsider-ug", password="x-long-password-1")
    MemberLanguage.objects.create(member=outsider, languages=["ug"], recorded_by=outsider)

    header, rows = _rows(ledger_workbook(demo.grids[0], grid1, year=YEAR))
    assert header == ["序号", "姓名", "岗位", "语言", "范围"]
    # grid 1's own workbook: its grid member (post and 一格十员 team role), not grid 2's; the
    # community-wide 民族语言翻译员 too, marked 社区 (tests/test_unity_ledgers_more.py)
    assert [r[1:] for r in rows if r[4] != "社区"] == [
        [str(grid1), "网格员、一格十员(网格员)", "东乡语", demo.grids[0].name]
    ]
    assert str(grid2) not in {r[1] for r in rows}

    _, rows = _rows(community_workbook(demo.community, Member.objects.get(username="mediator")))
    by_name = {r[1]: r for r in rows}
    assert by_name[str(grid1)][3] == "东乡语" and by_name[str(grid2)][3] == "东乡语"
    assert str(outsider) not in by_name
    # the demo's two 东乡语 interpreters (no account) by name, as 民族语言翻译员
    interps = TeamMembership.objects.filter(
        team=Team.INTERPRETERS, community=demo.community, member__isnull=True
    )
    assert interps.count() == 2
    for t in interps:
        assert by_name[t.name][2] == "民族语言翻译员(东乡语)" and by_name[t.name][3] == "东乡语"
    assert len(rows) == 4
    # a member with a post in the community: the post's label there
    held = Position.objects.held_at().filter(member=grid2).values_list("position_type", flat=True)
    assert "grid_member" in held and "网格员" in by_name[str(grid2)][2]


def test_the_neighbour_tier_reads_no_ledger(demo):
    with pytest.raises(LedgerRefused):
        ledger_workbook(demo.grids[0], Member.objects.get(username="bh-001"), year=YEAR)
