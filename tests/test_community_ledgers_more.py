"""Issue 20, the ledger sheets the community work lacked (gridsvc/community/ledgers.py): 专项排查
(each campaign: period, grids due, returned, 零报告, missing), 语言与翻译 (residents' languages and
interpreter needs, with the resident ledgers' masks) and 宗教场所联系人 (venue contacts, the phone
with the mask ``venue-contacts/`` uses, never in clear in an export) — counted here from the records."""

from __future__ import annotations

import io
from typing import Any

import pytest
from openpyxl import load_workbook

from gridsvc.accounts.models import Member
from gridsvc.community.ledgers import community_workbook
from gridsvc.community.models import Campaign, CampaignReturn, ResidentLanguage, VenueContact
from gridsvc.dataio.ledgers import ledger_workbook
from gridsvc.territory.models import Place

pytestmark = pytest.mark.django_db

YEAR = 2026


def _sheet(book: Any, title: str) -> tuple[list[Any], list[list[Any]]]:
    """The header and the data rows (after the heading row) of one sheet."""
    header, *rows = [list(r) for r in book[title].iter_rows(min_row=2, values_only=True)]
    return header, rows


def _community_book(demo: Any, who: str = "mediator") -> Any:
    data = community_workbook(demo.community, Member.objects.get(username=who), year=YEAR)
    return load_workbook(io.BytesIO(data))


def test_the_campaign_sheet_gives_each_campaign_its_returns(demo):
    book = _community_book(demo)
    header, rows = _sheet(book, "专项排查")
    assert header[:10] == ["序号", "专项排查", "类型", "开始", "结束", "应报网格", "已报", "零报告",
                           "发现件数", "未报网格"]  # fmt: skip
    campaigns = Campaign.objects.filter(community=demo.community, start__year=YEAR).order_by(
        "start", "id"
    )
    assert [r[1] for r in rows] == [c.name for c in campaigns] and len(rows) == 2
    for row, c in zip(rows, campaigns, strict=True):
        returns = CampaignReturn.objects.filter(campaign=c)
        filed = [r for r in returns if r.filed_at]
        missing = sorted((r for r in returns if not r.filed_at), key=lambda r: r.grid.code)
        assert row[3:10] == [
            c.start.isoformat(), c.end.isoformat(), returns.count(), len(filed),
            sum(r.zero_report for r in filed), sum(r.findings_count for r in filed),
            "、".join(r.grid.name for r in missing) or None,
        ]  # fmt: skip
    # the demo: June's all returned, October's with one grid (006) missing
    assert [r[5] - r[6] for r in rows] == [0, 1]
    # grid 1's own workbook: one return per campaign, its own
    grid_book = load_workbook(
        io.BytesIO(ledger_workbook(demo.grids[0], Member.objects.get(username="grid1"), year=YEAR))
    )
    _, grid_rows = _sheet(grid_book, "专项排查")
    assert [r[5] for r in grid_rows] == [1, 1]
    summary = {r[0]: r[1] for r in book["汇总"].iter_rows(values_only=True) if r and r[0]}
    assert summary["专项排查"] == 2


def test_the_language_sheet_masks_the_resident_like_the_other_resident_sheets(demo):
    book = _community_book(demo)
    header, rows = _sheet(book, "语言与翻译")
    assert header[-2:] == ["语言", "需要翻译"]
    records = ResidentLanguage.objects.filter(community=demo.community)
    assert len(rows) == records.count() == 30
    assert sum(r[-1] == "是" for r in rows) == records.filter(interpreter_needed=True).count()
    # the minority language would tell the masked 民族: masked alike, 汉语 shown
    assert all("东乡语" not in r[-2] and "**" in r[-2] for r in rows)
    assert {"汉语"} & {part for r in rows for part in r[-2].split("、")}
    for row in rows:
        ident, phone = row[header.index("身份证号")], row[header.index("联系电话")]
        assert not ident or ("*" in ident and len(ident.replace("*", "")) <= 10), ident
        assert not phone or ("*" in phone and len(phone.replace("*", "")) <= 4), phone
        assert row[header.index("民族")] == "**"
        assert len(str(row[header.index("出生年份")])) == 4
    # a grid member's ledger: their grid's residents only
    g1 = demo.grids[0]
    grid_book = load_workbook(
        io.BytesIO(ledger_workbook(g1, Member.objects.get(username="grid1"), year=YEAR))
    )
    _, grid_rows = _sheet(grid_book, "语言与翻译")
    assert len(grid_rows) == records.filter(grid=g1).count()


def test_the_venue_contact_sheet_masks_the_phone_as_the_rest_list_masks_it(demo, member_client):
    from gridsvc.chain.visibility import mask_phone

    venue = (
        Place.objects.filter(community=demo.community, kind__in=["mosque", "religious_venue"])
        .order_by("id")
        .first()
    )
    body = {"place": venue.pk, "name": "马阿訇", "role": "阿訇", "phone": "13900001234"}
    r = member_client("mediator").post("/api/v1/community/venue-contacts/", body, format="json")
    assert r.status_code == 201, r.content
    for who in ("mediator", "street"):
        header, rows = _sheet(_community_book(demo, who), "宗教场所联系人")
        assert header == ["序号", "场所", "类型", "联系人", "身份", "联系电话"]
        assert len(rows) == VenueContact.objects.filter(community=demo.community).count() == 1
        # an export: the phone with the REST list's mask (its last four), never in clear
        assert rows[0][1:] == [
            venue.name, venue.get_kind_display(), "马阿訇", "阿訇", mask_phone("13900001234")
        ]  # fmt: skip
        assert "13900001234" not in rows[0] and rows[0][-1].endswith("1234")
    # neighbours keep no ledgers at all
    from gridsvc.dataio.ledgers import LedgerRefused

    with pytest.raises(LedgerRefused):
        community_workbook(demo.community, Member.objects.get(username="bh-001"), year=YEAR)
