"""Issue 20, the 台账 and report items left (docs/unity.md): the ledger sheets one row per
record — 宗教场所走访 (each joint venue-visit task), 志愿服务记录 (each day's service hours), 帮扶记录
(each occasion of pairing help) — activity photos in the ledgers (a photo count on 活动与宣传, a
活动照片 sheet with thumbnails, bounded), the community-wide team members in each grid's 志愿者
sheet, the work report's 民族团结进步创建 sheet and PDF section, and the members' languages in
the figures. Counted here from the records."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pytest
from openpyxl import load_workbook

from gridsvc.accounts.models import Member
from gridsvc.community.ledgers import community_workbook
from gridsvc.community.models import (
    Activity,
    PairingHelp,
    ServiceLog,
    TeamMembership,
    VenueTask,
)
from gridsvc.dataio.ledgers import ledger_workbook

pytestmark = pytest.mark.django_db

YEAR = 2026


def _sheet(book: Any, title: str) -> tuple[list[Any], list[list[Any]]]:
    """The header and the data rows (after the heading row) of one sheet."""
    header, *rows = [list(r) for r in book[title].iter_rows(min_row=2, values_only=True)]
    return header, rows


def _grid_member(grid: Any) -> Member:
    """The grid member (网格员) holding ``grid`` in the demo."""
    from gridsvc.chain.models import Position, PositionType

    pos = (
        Position.objects.held_at()
        .filter(grid=grid, position_type=PositionType.GRID_MEMBER, member__isnull=False)
        .order_by("id")
        .first()
    )
    assert pos is not None, grid
    return pos.member


def _grid_book(grid: Any, who: Member | None = None) -> Any:
    data = ledger_workbook(grid, who or _grid_member(grid), year=YEAR)
    return load_workbook(io.BytesIO(data))


def _summary(book: Any) -> dict[str, Any]:
    return {r[0]: r[1] for r in book["汇总"].iter_rows(values_only=True) if r and r[0]}


def _col(header: list[Any], rows: list[list[Any]], name: str) -> list[Any]:
    i = header.index(name)
    return [r[i] for r in rows]


# ---------------------------------------------------------------- 宗教场所走访
def test_the_venue_visit_sheet_lists_each_task_of_the_grid_only(demo):
    tasks = VenueTask.objects.filter(community=demo.community, period_start__year=YEAR)
    venue_grid = next(g for g in demo.grids if tasks.filter(grid=g).exists())
    other = next(g for g in demo.grids if not tasks.filter(grid=g).exists())
    book = _grid_book(venue_grid)
    header, rows = _sheet(book, "宗教场所走访")
    assert header == ["序号", "场所", "周期", "应访日期", "状态", "走访人", "走访日期"]
    mine = list(
        tasks.filter(grid=venue_grid)
        .select_related("place", "done_by__recorded_by", "assigned_member")
        .order_by("period_start", "place_id", "id")
    )
    assert len(rows) == len(mine) and rows
    for row, t in zip(rows, mine, strict=True):
        visitor = t.done_by.recorded_by if t.done_by else t.assigned_member
        assert row[1:] == [
            t.place.name, t.period, t.due_on.isoformat(), t.get_status_display(),
            str(visitor) if visitor else None,
            t.done_by.date.isoformat() if t.done_by else None,
        ]  # fmt: skip
    # the demo's year: done, 逾期 and 漏访 all appear, by their names
    assert {"已走访"} <= set(_col(header, rows, "状态"))
    assert _summary(book)["宗教场所走访"] == len(mine)
    # another grid's ledger: none of these rows
    _, rows_other = _sheet(_grid_book(other), "宗教场所走访")
    assert rows_other == []
    # the community's ledger: every task of the community
    comm = load_workbook(
        io.BytesIO(
            community_workbook(demo.community, Member.objects.get(username="mediator"), year=YEAR)
        )
    )
    _, all_rows = _sheet(comm, "宗教场所走访")
    assert len(all_rows) == tasks.count() == 22  # January … November, two mosques
    statuses = _col(header, all_rows, "状态")
    assert statuses.count("漏访") == 1 and statuses.count("逾期") == 1


# ---------------------------------------------------------------- 志愿服务记录
def test_the_service_log_sheet_lists_each_days_hours_of_the_grid_only(demo):
    g1, g2 = demo.grids[0], demo.grids[1]
    book = _grid_book(g1)
    header, rows = _sheet(book, "志愿服务记录")
    assert header == ["序号", "成员/志愿者", "队伍", "日期", "时长(小时)", "服务内容"]
    logs = list(
        ServiceLog.objects.filter(grid=g1, date__year=YEAR)
        .select_related("membership__member")
        .order_by("date", "id")
    )
    assert logs and len(rows) == len(logs)
    for row, log in zip(rows, logs, strict=True):
        m = log.membership
        assert row[1:5] == [
            str(m.member) if m.member else m.name, m.get_team_display(), log.date.isoformat(),
            float(log.hours),
        ]  # fmt: skip
    # the names are grid 1's team members; grid 2's members' days are not here
    names_g2 = {
        (str(t.member) if t.member else t.name) for t in TeamMembership.objects.filter(grid=g2)
    }
    names_g1 = {
        (str(t.member) if t.member else t.name) for t in TeamMembership.objects.filter(grid=g1)
    }
    assert set(_col(header, rows, "成员/志愿者")) <= names_g1
    _, rows2 = _sheet(_grid_book(g2), "志愿服务记录")
    assert len(rows2) == ServiceLog.objects.filter(grid=g2, date__year=YEAR).count()
    assert set(_col(header, rows2, "成员/志愿者")) <= names_g2
    assert sum(_col(header, rows, "时长(小时)")) == float(
        sum(log.hours for log in logs)
    )  # the sheet adds up to the hours logged in the year


# ---------------------------------------------------------------- 帮扶记录
def test_the_pairing_help_sheet_names_pairings_as_the_pairing_sheet_does(demo):
    helped = PairingHelp.objects.filter(community=demo.community, date__year=YEAR)
    g = next(g for g in demo.grids if helped.filter(grid=g).count() >= 3)
    other = next(x for x in demo.grids if x != g and helped.filter(grid=x).exists())
    book = _grid_book(g)
    header, rows = _sheet(book, "帮扶记录")
    assert header == ["序号", "类型", "结对人/单位", "住户", "日期", "帮扶内容", "时长(小时)",
                      "金额/折价(元)"]  # fmt: skip
    mine = list(helped.filter(grid=g).order_by("date", "id"))
    assert len(rows) == len(mine)
    assert _col(header, rows, "日期") == [h.date.isoformat() for h in mine]
    assert _col(header, rows, "帮扶内容") == [h.what for h in mine]
    # the pairing as the 结对帮扶 sheet names it: the same member/unit and household cells
    p_header, p_rows = _sheet(book, "结对帮扶")
    named = {(r[p_header.index("结对人/单位")], r[p_header.index("住户")]) for r in p_rows}
    assert {(r[2], r[3]) for r in rows} <= named
    # another grid's help: not in this grid's ledger, and its own there
    _, rows_other = _sheet(_grid_book(other), "帮扶记录")
    assert len(rows_other) == helped.filter(grid=other).count()
    assert not {(r[2], r[3]) for r in rows_other} & {(r[2], r[3]) for r in rows}


def test_no_new_sheet_shows_a_residents_number_or_phone(demo):
    """The new sheets name households and members as the existing sheets do; no resident's
    ID number or phone appears in clear in any of them (docs/security.md, ledger rules)."""
    from gridsvc.territory.models import Resident

    g = demo.grids[0]
    book = _grid_book(g)
    residents = Resident.objects.filter(household__unit__building__grid=g)
    secrets = {r.id_number for r in residents if r.id_number} | {
        r.phone for r in residents if r.phone
    }
    assert secrets
    for title in ("宗教场所走访", "志愿服务记录", "帮扶记录", "活动照片"):
        cells = {str(v) for row in book[title].iter_rows(values_only=True) for v in row if v}
        assert not cells & secrets, title
    # neighbours keep no ledgers at all
    from gridsvc.dataio.ledgers import LedgerRefused

    with pytest.raises(LedgerRefused):
        ledger_workbook(g, Member.objects.get(username="bh-001"), year=YEAR)


# ---------------------------------------------------------------- 志愿者: community-wide members
def test_a_grid_ledger_lists_the_community_wide_team_members_marked_community(demo):
    comm_wide = TeamMembership.objects.filter(community=demo.community, grid__isnull=True)
    assert comm_wide.filter(team="five_members").exists()
    names = sorted((str(t.member) if t.member else t.name) for t in comm_wide)
    for g in demo.grids[:2]:
        header, rows = _sheet(_grid_book(g), "志愿者")
        assert header[-1] == "范围"
        own = [r for r in rows if r[-1] == g.name]
        shared = [r for r in rows if r[-1] == "社区"]
        assert len(own) == TeamMembership.objects.filter(grid=g).count()
        assert len(shared) == comm_wide.count() and len(rows) == len(own) + len(shared)
        assert sorted(r[3] for r in shared) == names
        # the 五员 are among them, by role
        assert {"调处员", "宣传员"} <= {r[2] for r in shared}


# ---------------------------------------------------------------- 活动照片
def _jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


def test_activity_photos_are_counted_listed_and_embedded_with_a_bound(
    demo, member_client, settings, tmp_path, monkeypatch
):
    from gridsvc.community import ledgers

    settings.MEDIA_ROOT = tmp_path
    g1, g2 = demo.grids[0], demo.grids[1]
    activity = Activity.objects.filter(grid=g1, date__year=YEAR).order_by("date", "id").first()
    assert activity is not None
    phone = member_client(_grid_member(g1).username)
    for k in range(3):
        f = io.BytesIO(_jpeg((40 * k, 90, 200)))
        f.name = "photo.jpg"
        r = phone.post(
            f"/api/v1/community/activities/{activity.pk}/photos/", {"photo": f}, format="multipart"
        )
        assert r.status_code == 201, r.content
    stored = list(activity.photos.order_by("id"))

    book = _grid_book(g1)
    header, rows = _sheet(book, "活动与宣传")
    assert header[-1] == "照片(张)"
    by_title = {r[header.index("名称")]: r[-1] for r in rows}
    assert by_title[activity.title] == 3
    assert sum(v or 0 for v in by_title.values()) == 3

    header, rows = _sheet(book, "活动照片")
    assert header == ["序号", "活动", "活动日期", "SHA-256(前12位)", "大小(KB)", "拍摄时间",
                      "上传时间", "缩略图"]  # fmt: skip
    assert [r[3] for r in rows] == [p.sha256[:12] for p in stored]
    assert {r[1] for r in rows} == {activity.title}
    assert [r[4] for r in rows] == [round(p.size / 1024, 1) for p in stored]
    images = book["活动照片"]._images
    assert len(images) == 3
    # thumbnails, not the 640×480 originals
    assert all(max(img.width, img.height) <= ledgers.THUMB_PX for img in images)
    assert _summary(book)["活动照片"] == 3

    # bounded: with room for two, two rows and pictures and a note saying how many there are
    monkeypatch.setattr(ledgers, "LEDGER_PHOTOS", 2)
    small = _grid_book(g1)
    _, rows = _sheet(small, "活动照片")
    data = [r for r in rows if isinstance(r[0], int)]
    assert len(data) == 2 and len(small["活动照片"]._images) == 2
    assert ["说明", "共3张照片,台账只列前2张(按活动日期)"] == [v for v in rows[-1] if v is not None]
    assert _summary(small)["活动照片"] == 2

    # another grid's ledger: none of grid 1's photos
    other = _grid_book(g2)
    _, rows = _sheet(other, "活动照片")
    assert rows == [] and other["活动照片"]._images == []
    # a reader of the activity gets them in the community ledger too
    comm = load_workbook(
        io.BytesIO(
            community_workbook(demo.community, Member.objects.get(username="mediator"), year=YEAR)
        )
    )
    assert len(comm["活动照片"]._images) == 2  # still the bound of two


def test_the_ledgers_stay_the_same_for_a_year_without_records(demo):
    """A year before the demo's records: the new sheets are there, empty."""
    book = load_workbook(
        io.BytesIO(ledger_workbook(demo.grids[0], _grid_member(demo.grids[0]), year=2020))
    )
    for title in ("宗教场所走访", "志愿服务记录", "帮扶记录", "活动照片"):
        assert _sheet(book, title)[1] == [], title


# ---------------------------------------------------------------- the work report
MONTH = "2026-10"


def _report(client: Any, community: Any, fmt: str) -> Any:
    url = f"/api/v1/reports/monthly/?community={community.code}&month={MONTH}&format={fmt}"
    r = client.get(url)
    assert r.status_code == 200, r.content[:300]
    return r


def _pdf_text(content: bytes, tmp_path: Any) -> str:
    import subprocess

    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(content)
    out = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    )
    return out.stdout


def test_the_report_xlsx_has_the_unity_sheet_with_the_json_numbers(demo, member_client, tmp_path):
    from gridsvc.reports.render import MEMBER_LANGUAGE_ROW, UNITY_ROWS

    five = TeamMembership.objects.filter(
        community=demo.community, team="five_members", member__isnull=False, valid_to__isnull=True
    ).order_by("id")
    from gridsvc.community.models import MemberLanguage

    MemberLanguage.objects.update_or_create(
        member=five[0].member, defaults={"languages": ["ug"], "recorded_by": five[0].member}
    )
    street = member_client("street")
    body = _report(street, demo.community, "json").json()
    unity = body["unity"]
    assert unity["member_languages"].get("维吾尔语", 0) >= 1
    book = load_workbook(io.BytesIO(_report(street, demo.community, "xlsx").content))
    assert book.sheetnames[:2] == ["概况", "民族团结进步创建"]
    sheet = book["民族团结进步创建"]
    # the heading: the report's title, then the period and the territory
    assert sheet["A1"].value.startswith(f"{demo.community.name} 2026年10月")
    assert sheet["A2"].value == (
        f"统计期间 2026-10-01 至 2026-10-31 · 社区 {demo.community.name}({demo.community.code})"
    )
    cells = {row[0]: row[1] for row in sheet.iter_rows(min_row=4, values_only=True) if row}
    # the same numbers as the JSON report, every figure of the section
    labels = dict(UNITY_ROWS)
    assert {labels[k]: cells.get(labels[k]) for k in labels} == {
        labels[k]: unity[k] for k in labels
    }
    for name, n in unity["member_languages"].items():
        assert cells[MEMBER_LANGUAGE_ROW.format(name)] == n
    assert cells["五员排查"] == unity["screening_summary"]
    # moved, not copied: the overview carries none of the section's rows
    overview = {row[0] for row in book["概况"].iter_rows(values_only=True) if row}
    assert not overview & (set(labels.values()) | {"五员排查"})
    # the PDF: a section of its own with the same rows
    text = _pdf_text(_report(street, demo.community, "pdf").content, tmp_path)
    assert "民族团结进步创建" in text and "统计期间 2026-10-01 至 2026-10-31" in text
    section = text[text.index("统计期间 2026-10-01") :]
    for key, label in UNITY_ROWS:
        line = next(x for x in section.splitlines() if label in x)
        value = line.split(label, 1)[1].split()[0]
        assert float(value) == float(unity[key]), (label, value)
    line = next(x for x in section.splitlines() if "五员/一格十员成员语言:维吾尔语" in x)
    assert line.split("(人)", 1)[1].split()[0] == str(unity["member_languages"]["维吾尔语"])
    # a building head's report has no such sheet (no community section for neighbours)
    r = member_client("bh-001").get(
        f"/api/v1/reports/monthly/?community={demo.community.code}&month={MONTH}&format=xlsx"
    )
    if r.status_code == 200:
        assert "民族团结进步创建" not in load_workbook(io.BytesIO(r.content)).sheetnames


def test_the_figures_count_the_team_members_languages(demo, member_client):
    from gridsvc.community.models import MemberLanguage
    from gridsvc.community.services import figures, work_scope

    street_member = Member.objects.get(username="street")
    scope = work_scope(street_member)
    start, end = date(2026, 10, 1), date(2026, 11, 1)
    # 五员 and 一格十员 with an account, on the team on 31 October, none speaking anything yet
    teams = TeamMembership.objects.filter(
        community=demo.community, team__in=["five_members", "grid_ten"], member__isnull=False
    ).filter(valid_from__lte=date(2026, 10, 31))
    on_team = sorted(
        {t.member_id for t in teams if not t.valid_to or t.valid_to >= date(2026, 10, 31)}
    )
    interpreters = set(
        TeamMembership.objects.filter(team="interpreters", member__isnull=False).values_list(
            "member_id", flat=True
        )
    )
    MemberLanguage.objects.filter(member_id__in=on_team).delete()
    quiet = [m for m in on_team if m not in interpreters]
    assert len(quiet) >= 3, on_team
    before = figures(scope, start, end, demo.community)
    assert before["member_languages"] == {} and before["members_interpreting"] == 0

    a, b, c = (Member.objects.get(pk=pk) for pk in quiet[:3])
    MemberLanguage.objects.create(member=a, languages=["ug"], recorded_by=a)
    MemberLanguage.objects.create(member=b, languages=["zh", "ug", "kk"], recorded_by=b)
    MemberLanguage.objects.create(member=c, languages=["zh"], recorded_by=c)  # 汉语 only
    # someone on no such team speaking 藏语: not counted
    outsider = Member.objects.exclude(pk__in=on_team).exclude(pk__in=interpreters).first()
    MemberLanguage.objects.create(member=outsider, languages=["bo"], recorded_by=outsider)
    after = figures(scope, start, end, demo.community)
    assert after["member_languages"] == {"维吾尔语": 2, "哈萨克语": 1}
    assert list(after["member_languages"]) == ["维吾尔语", "哈萨克语"]  # Language order
    assert after["members_interpreting"] == 2
    # the same through the month's figures endpoint and the report's JSON
    body = member_client("street").get("/api/v1/community/figures/?month=2026-10").json()
    assert body["member_languages"] == after["member_languages"]
    assert body["members_interpreting"] == 2
    report = _report(member_client("street"), demo.community, "json").json()["unity"]
    assert report["member_languages"] == {"维吾尔语": 2, "哈萨克语": 1}
    # a member whose membership ended before the month's end is not counted
    TeamMembership.objects.filter(member=a, team__in=["five_members", "grid_ten"]).update(
        valid_to=date(2026, 10, 20)
    )
    late = figures(scope, start, end, demo.community)
    assert late["member_languages"] == {"维吾尔语": 1, "哈萨克语": 1}
    assert late["members_interpreting"] == 1


# ---------------------------------------------------------------- follow-ups (unityLedgers2)
def _community_book(who: str = "mediator") -> Any:
    from gridsvc.territory.models import Community

    comm = Community.objects.get(code="620103003012")
    return load_workbook(
        io.BytesIO(community_workbook(comm, Member.objects.get(username=who), year=YEAR))
    )


def _work_cells(book: Any) -> set[Any]:
    """Every cell of the community-work sheets (gridsvc/community/ledgers.py SHEETS)."""
    from gridsvc.community.ledgers import SHEETS

    return {
        v for spec in SHEETS for row in book[spec.title].iter_rows(values_only=True) for v in row
    }


def test_every_ledger_names_the_languages_never_their_codes(demo):
    """志愿者 showed a 民族语言翻译员's role as the code (``sce``): every sheet now names the
    language (东乡语) as the REST API's ``language_name`` does."""
    from gridsvc.community.models import Language

    g1 = demo.grids[0]
    street, clerk = demo.street, Member.objects.get(username="street")
    # an interpreter of grid 1 (维吾尔语) beside the community's two 东乡语 ones
    TeamMembership.objects.create(
        street=street, community=demo.community, grid=g1, recorded_by=clerk,
        team="interpreters", role="ug", name="艾力", valid_from=date(YEAR, 1, 1),
    )  # fmt: skip
    codes = set(Language.values)
    book = _grid_book(g1)
    header, rows = _sheet(book, "志愿者")
    interpreters = [r for r in rows if r[1] == "民族语言翻译员"]
    assert {(r[3], r[2], r[-1]) for r in interpreters} == {
        ("艾力", "维吾尔语", g1.name), ("沙明", "东乡语", "社区"), ("马文", "东乡语", "社区"),
    }  # fmt: skip
    _, langs = _sheet(book, "成员语言")
    assert ["艾力", "民族语言翻译员(维吾尔语)", "维吾尔语"] in [r[1:4] for r in langs]
    assert not _work_cells(book) & codes
    comm = _community_book()
    _, rows = _sheet(comm, "志愿者")
    assert {r[2] for r in rows if r[1] == "民族语言翻译员"} == {"维吾尔语", "东乡语"}
    assert not _work_cells(comm) & codes


def test_a_grid_ledgers_member_languages_list_the_community_wide_members(demo):
    """成员语言 in a grid's ledger lists the community-wide team members (the 五员, the
    民族语言翻译员 …) as 志愿者 does, marked 社区 in 范围; none of another community's."""
    from gridsvc.community.models import MemberLanguage
    from gridsvc.territory.models import Community

    g1 = demo.grids[0]
    clerk = Member.objects.get(username="street")
    wide = TeamMembership.objects.filter(
        community=demo.community, grid__isnull=True, team="five_members", member__isnull=False
    ).select_related("member")
    # a 五员 on no team of grid 1 and holding no post there, and one who is grid 1's too
    from django.db.models import Q

    from gridsvc.chain.models import Position

    in_g1 = set(
        Position.objects.held_at()
        .filter(Q(grid=g1) | Q(building__grid=g1) | Q(unit__building__grid=g1))
        .values_list("member_id", flat=True)
    ) | set(TeamMembership.objects.filter(grid=g1).values_list("member_id", flat=True))
    only_wide = next(t.member for t in wide if t.member_id not in in_g1)
    both = next(
        t.member for t in wide if TeamMembership.objects.filter(grid=g1, member=t.member).exists()
    )
    for m in (only_wide, both):
        MemberLanguage.objects.update_or_create(
            member=m, defaults={"languages": ["zh", "kk"], "recorded_by": m}
        )
    # another community's community-wide 五员 and interpreter: never in this grid's ledger
    other = Community.objects.create(street=demo.street, code="620103003099", name="别的社区")
    stranger = Member.objects.create_user("other-five", password="x-long-password-1")
    MemberLanguage.objects.create(member=stranger, languages=["ug"], recorded_by=stranger)
    for team, role, kw in (
        ("five_members", "mediator", {"member": stranger}),
        ("interpreters", "bo", {"name": "别社区翻译"}),
    ):
        TeamMembership.objects.create(
            street=demo.street, community=other, recorded_by=clerk, team=team, role=role,
            valid_from=date(YEAR, 1, 1), **kw,
        )  # fmt: skip

    header, rows = _sheet(_grid_book(g1), "成员语言")
    assert header == ["序号", "姓名", "岗位", "语言", "范围"]
    by_name = {r[1]: r for r in rows}
    assert by_name[str(only_wide)][4] == "社区"
    assert by_name[str(only_wide)][3] == "哈萨克语"
    assert "五员(" in by_name[str(only_wide)][2]
    assert set(by_name[str(both)][4].split("、")) == {g1.name, "社区"}
    # the community's two 东乡语 interpreters (no account), by name
    for name in ("沙明", "马文"):
        assert by_name[name][2:] == ["民族语言翻译员(东乡语)", "东乡语", "社区"]
    assert str(stranger) not in by_name and "别社区翻译" not in by_name
    # the 志愿者 sheet decides 社区 the same way: the same people marked 社区 in both
    v_header, v_rows = _sheet(_grid_book(g1), "志愿者")
    shared = {r[3] for r in v_rows if r[-1] == "社区"}
    assert {r[1] for r in rows if "社区" in r[4].split("、")} <= shared
    # another grid's ledger lists the same community-wide speakers
    _, rows2 = _sheet(_grid_book(demo.grids[1]), "成员语言")
    assert {r[1] for r in rows2 if r[4] == "社区"} >= {str(only_wide), "沙明", "马文"}
    # the community's own ledger: no second copy, and each row's 范围 by the same rule
    _, comm_rows = _sheet(_community_book(), "成员语言")
    names = [r[1] for r in comm_rows]
    assert len(names) == len(set(names)) and str(stranger) not in names
    assert {r[1]: r[4] for r in comm_rows}["沙明"] == "社区"


def test_the_pairing_help_sheet_has_the_amount_masked_as_an_assistance_amount(demo, monkeypatch):
    """帮扶记录 gains 金额/折价(元) (``PairingHelp.amount``): an amount of assistance to a
    household, ``**`` as the 民生服务台账's amounts unless the export is unmasked
    (docs/security.md); blank where none was recorded."""
    from decimal import Decimal

    from gridsvc.community.models import Pairing

    pairing = Pairing.objects.filter(grid__isnull=False).order_by("id").first()
    g = pairing.grid
    PairingHelp.objects.filter(grid=g).delete()
    where = {"street": demo.street, "community": demo.community, "grid": g}
    clerk = Member.objects.get(username="street")
    PairingHelp.objects.create(**where, recorded_by=clerk, pairing=pairing,
                               date=date(YEAR, 3, 1), what="送米面油", amount=Decimal("200.50"))  # fmt: skip
    PairingHelp.objects.create(**where, recorded_by=clerk, pairing=pairing,
                               date=date(YEAR, 4, 1), what="代办低保复核", hours=Decimal("1.5"))  # fmt: skip

    header, rows = _sheet(_grid_book(g), "帮扶记录")
    assert header[-1] == "金额/折价(元)"
    assert [(r[5], r[-1]) for r in rows] == [("送米面油", "**"), ("代办低保复核", None)]
    _, rows = _sheet(_grid_book(g, Member.objects.get(username="street")), "帮扶记录")
    assert [r[-1] for r in rows] == ["**", None]  # the street: masked as well
    # an unmasked export (the hook's answer when a grant covers exports) shows the figure
    monkeypatch.setattr("gridsvc.dataio.sheets.may_unmask_export", lambda *a, **k: True)
    _, rows = _sheet(_grid_book(g), "帮扶记录")
    assert [(r[5], r[-1]) for r in rows] == [("送米面油", 200.5), ("代办低保复核", None)]
