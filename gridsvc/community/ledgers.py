"""台账 of the community's ethnic-unity work, named as the seeds name them (issue 20 item 10).

Per grid (sheets added to :func:`gridsvc.dataio.ledgers.ledger_workbook`) and per community
(:func:`community_workbook`): 活动与宣传 · 排查(五员一日一报, 排查活动反馈) · 信访 · 志愿者 ·
宗教场所 · 结对帮扶 · 评比 · 调处 · 签认 (sign-offs) · 翻译随行 (interpreter calls) · and the resident-group ledgers 离退休老领导 · 个体户/企业家 · 归国华侨/留学生 ·
新的社会阶层 (:class:`~gridsvc.community.models.GroupMember`). The community workbook also
carries the resident ledgers 少数民族人员 · 困难家庭 · 下岗失业 over the whole community.

Who gets them: as every ledger, staff and street only (the neighbour tier is refused,
:class:`~gridsvc.dataio.ledgers.LedgerRefused`), and only the part of the territory held
through staff positions (:func:`~gridsvc.chain.visibility.staff_scope`). Residents are listed
with the ledgers' masks (ID number region + last four, phone last four, birth year, ethnicity
masked for staff and street, as the visibility matrix says); petitioners' names are masked
below the street, like the API; the ethnic mix of activities is a sum of counts. Every
workbook is written to the audit log.
"""

from __future__ import annotations

import io
from datetime import date
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Max, Q

from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import ETHNICITY, MASKED, Tier, rule
from gridsvc.territory.codes import mask_name
from gridsvc.territory.models import Community, Grid, Place, Resident

from .models import (
    Activity,
    CampaignReturn,
    FiveRole,
    GroupMember,
    InterpreterCall,
    Mediation,
    Pairing,
    Petition,
    Rating,
    ResidentGroup,
    ScreeningReport,
    SignOff,
    TeamMembership,
    VenueVisit,
)

if TYPE_CHECKING:  # openpyxl is imported where a workbook is made (not with the URLconf)
    from openpyxl import Workbook

RESIDENT_LEDGERS: list[tuple[str, Q]] = [
    ("少数民族人员", ~Q(ethnicity="01")),
    ("困难家庭", Q(tags__contains=["hardship"])),
    ("下岗失业", Q(tags__contains=["unemployed"])),
]
GROUP_SHEETS: dict[str, str] = {
    ResidentGroup.RETIRED_LEADER: "离退休老领导",
    ResidentGroup.SELF_EMPLOYED: "个体户企业家",
    ResidentGroup.RETURNED_OVERSEAS: "归国华侨留学生",
    ResidentGroup.NEW_STRATUM: "新的社会阶层",
}
GROUP_DETAIL = {
    ResidentGroup.RETIRED_LEADER: "原任职务",
    ResidentGroup.SELF_EMPLOYED: "经营项目/企业",
    ResidentGroup.RETURNED_OVERSEAS: "侨居/留学国家",
    ResidentGroup.NEW_STRATUM: "从业领域",
}


def _area_q(area: Grid | Community) -> Q:
    return Q(grid=area) if isinstance(area, Grid) else Q(community=area)


def add_sheets(
    wb: Workbook, area: Grid | Community, scope: Scope, tier: Tier, year: int, unmasked: bool
) -> dict[str, int]:
    """Append the community-work ledgers of ``area`` (a grid or a community) for ``year`` to
    ``wb``, limited to ``scope`` (a staff scope). Returns rows per sheet."""
    from gridsvc.dataio.cells import append_row
    from gridsvc.dataio.ledgers import BASE_HEADERS, _base, _header

    eth_masked = rule(ETHNICITY, tier) == MASKED and not unmasked
    q = _area_q(area)
    counts: dict[str, int] = {}

    def rows(model: type, field: str = "date") -> Any:
        return scope.filter(model.objects.filter(q, **{f"{field}__year": year}))

    # 活动与宣传
    title = "活动与宣传"
    ws = wb.create_sheet(title)
    _header(
        ws,
        ["序号", "日期", "类型", "名称", "地点", "组织者", "合作单位", "参与人数", "少数民族人数",
         "宣传资料(份)", "答题(份)", "横幅展板"],
        f"{area.name} {title}台账({year}年)",
    )  # fmt: skip
    acts = list(rows(Activity).select_related("place").order_by("date", "id"))
    for i, a in enumerate(acts, start=1):
        minority = sum(v for k, v in (a.ethnic_mix or {}).items() if k not in ("01", "汉族"))
        append_row(
            ws,
            [i, a.date.isoformat(), a.get_kind_display(), a.title, a.place.name if a.place else "",
             a.organiser, a.partners, a.participants, minority, a.materials, a.answer_sheets,
             a.banners],
        )  # fmt: skip
    counts[title] = len(acts)

    # 排查: 五员一日一报 (community records) and the grid's campaign returns
    title = "排查"
    ws = wb.create_sheet(title)
    _header(
        ws,
        ["序号", "日期", "来源", "报告人", "零报告", "发现不稳定因素", "件数", "投入人次"],
        f"{area.name} 排查不稳定因素台账({year}年)",
    )
    n = 0
    reports = rows(ScreeningReport).select_related("member").order_by("date", "member_id")
    for r in reports:
        n += 1
        append_row(
            ws,
            [n, r.date.isoformat(), "五员一日一报", str(r.member), "是" if r.zero_report else "",
             r.findings, r.findings_count, r.persons],
        )  # fmt: skip
    returns = (
        scope.filter(CampaignReturn.objects.filter(q, campaign__start__year=year))
        .select_related("campaign", "filed_by", "grid")
        .order_by("campaign__start", "grid__code")
    )
    for r in returns:
        n += 1
        append_row(
            ws,
            [n, r.filed_at.date().isoformat() if r.filed_at else "(未报)",
             f"{r.campaign.name} · {r.grid.name if r.grid else ''}",
             str(r.filed_by) if r.filed_by else "", "是" if r.filed_at and r.zero_report else "",
             r.findings, r.findings_count, ""],
        )  # fmt: skip
    counts[title] = n

    # 信访
    title = "信访"
    ws = wb.create_sheet(title)
    _header(
        ws,
        [
            "序号",
            "日期",
            "来访人",
            "事由",
            "涉及民族宗教",
            "人数",
            "集体访",
            "接待人",
            "状态",
            "案件",
        ],
        f"{area.name} {title}台账({year}年)",
    )
    pets = list(rows(Petition).select_related("handled_by", "case").order_by("date", "id"))
    for i, p in enumerate(pets, start=1):
        who = p.petitioner if tier >= Tier.STREET else mask_name(p.petitioner)
        append_row(
            ws,
            [i, p.date.isoformat(), who, p.subject, "是" if p.ethnic_religious else "",
             p.group_size, "是" if p.group_risk else "", str(p.handled_by) if p.handled_by else "",
             p.get_status_display(), p.case.number if p.case else ""],
        )  # fmt: skip
    counts[title] = len(pets)

    # 志愿者 (五员, 一格十员, 志愿者服务队, 便民服务队) and their hours
    title = "志愿者"
    ws = wb.create_sheet(title)
    _header(
        ws,
        ["序号", "队伍", "角色", "姓名", "起始日期", "终止日期", "服务时长(小时)"],
        f"{area.name} 志愿者及队伍台账",
    )
    roles = dict(FiveRole.choices)
    teams = list(
        scope.filter(TeamMembership.objects.filter(q))
        .select_related("member")
        .order_by("team", "role", "id")
    )
    for i, t in enumerate(teams, start=1):
        append_row(
            ws,
            [i, t.get_team_display(), roles.get(t.role, t.role), str(t.member) if t.member else t.name,
             t.valid_from.isoformat(), t.valid_to.isoformat() if t.valid_to else "", float(t.hours)],
        )  # fmt: skip
    counts[title] = len(teams)

    # 宗教场所: the venues and their liaison visits in the year
    title = "宗教场所"
    ws = wb.create_sheet(title)
    _header(
        ws,
        ["序号", "场所", "类型", "地址", "走访次数", "共同走访", "最近走访", "发现隐患"],
        f"{area.name} 民族宗教场所台账({year}年)",
    )
    places = scope.filter(Place.objects.filter(q, kind__in=["mosque", "religious_venue"]))
    visits = {
        v["place"]: v
        for v in rows(VenueVisit)
        .order_by()
        .values("place")
        .annotate(
            n=Count("id"),
            joint=Count("id", filter=Q(joint=True)),
            last=Max("date"),
            hazards=Count("id", filter=Q(hazard_found=True)),
        )
    }
    places = list(places.order_by("id"))
    for i, p in enumerate(places, start=1):
        v = visits.get(p.pk, {})
        append_row(
            ws,
            [i, p.name, p.get_kind_display(), p.address, v.get("n", 0), v.get("joint", 0),
             v["last"].isoformat() if v.get("last") else "", v.get("hazards", 0)],
        )  # fmt: skip
    counts[title] = len(places)

    # 结对帮扶, 共建单位, 在职党员报到, 微心愿 running in the year
    title = "结对帮扶"
    ws = wb.create_sheet(title)
    _header(
        ws,
        ["序号", "类型", "结对人/单位", "住户", "开始", "结束", "帮扶内容"],
        f"{area.name} 结对帮扶台账({year}年)",
    )
    pairs = list(
        scope.filter(
            Pairing.objects.filter(q, started__year__lte=year).filter(
                Q(ended__isnull=True) | Q(ended__year__gte=year)
            )
        )
        .select_related("member", "household")
        .order_by("started", "id")
    )
    for i, p in enumerate(pairs, start=1):
        who = " · ".join(x for x in (str(p.member) if p.member else "", p.partner) if x)
        append_row(
            ws,
            [i, p.get_kind_display(), who, str(p.household) if p.household else "",
             p.started.isoformat(), p.ended.isoformat() if p.ended else "", p.help_given],
        )  # fmt: skip
    counts[title] = len(pairs)

    # 评比 (五星级文明户 …) of the year, revoked ones marked (动态管理)
    title = "评比"
    ws = wb.create_sheet(title)
    _header(
        ws,
        ["序号", "年度", "称号", "住户", "星级", "评选标准", "状态"],
        f"{area.name} 评比台账({year}年)",
    )
    rated = list(
        scope.filter(Rating.objects.filter(q, year=year))
        .select_related("household")
        .order_by("title", "household_id")
    )
    for i, r in enumerate(rated, start=1):
        append_row(
            ws,
            [i, r.year, r.get_title_display(), str(r.household), r.stars, r.criteria,
             "已撤销" if r.revoked else ("已调整" if r.revised_at else "有效")],
        )  # fmt: skip
    counts[title] = len(rated)

    # 调处: the 调处员's (and committee's) mediation sessions of dispute cases
    title = "调处"
    ws = wb.create_sheet(title)
    _header(
        ws,
        ["序号", "日期", "案件", "调处员", "结果", "说明"],
        f"{area.name} 矛盾纠纷调处台账({year}年)",
    )
    sessions = list(rows(Mediation).select_related("case", "mediator").order_by("date", "id"))
    for i, m in enumerate(sessions, start=1):
        append_row(
            ws,
            [i, m.date.isoformat(), m.case.number, str(m.mediator), m.get_outcome_display(),
             m.note],
        )  # fmt: skip
    counts[title] = len(sessions)

    # 签认: the street ethnic-affairs desk's sign-offs (民族宗教工作站确认) on cases
    title = "签认"
    ws = wb.create_sheet(title)
    _header(
        ws,
        ["序号", "日期", "案件", "签认人", "结论", "说明"],
        f"{area.name} 民族宗教工作站签认台账({year}年)",
    )
    signs = list(
        rows(SignOff, "created_at").select_related("case", "recorded_by").order_by("created_at")
    )
    for i, o in enumerate(signs, start=1):
        append_row(
            ws,
            [i, o.created_at.date().isoformat(), o.case.number, str(o.recorded_by),
             "确认" if o.confirmed else "不予确认", o.note],
        )  # fmt: skip
    counts[title] = len(signs)

    # 翻译随行: interpreters called to cases and visit tasks (请翻译随行)
    title = "翻译随行"
    ws = wb.create_sheet(title)
    _header(
        ws,
        ["序号", "日期", "事项", "住户", "语言", "翻译员", "承办人"],
        f"{area.name} 民族语言翻译随行台账({year}年)",
    )
    calls = list(
        rows(InterpreterCall, "created_at")
        .select_related("case", "visit_task__rule", "household", "interpreter__member", "assignee")
        .order_by("created_at", "id")
    )
    for i, c in enumerate(calls, start=1):
        if c.case_id:
            about = f"案件 {c.case.number}"
        else:
            about = f"走访 {c.visit_task.rule.name} {c.visit_task.period}"
        who = ""
        if c.interpreter is not None:
            who = str(c.interpreter.member) if c.interpreter.member else c.interpreter.name
        append_row(
            ws,
            [i, c.created_at.date().isoformat(), about, str(c.household), c.get_language_display(),
             who or "(无翻译员)", str(c.assignee) if c.assignee else ""],
        )  # fmt: skip
    counts[title] = len(calls)

    # resident groups
    for group, sheet in GROUP_SHEETS.items():
        ws = wb.create_sheet(sheet)
        _header(ws, [*BASE_HEADERS, GROUP_DETAIL[group]], f"{area.name} {sheet}台账")
        members = list(
            scope.filter(GroupMember.objects.filter(q, group=group))
            .select_related("resident__household__unit__building")
            .order_by("resident__household__unit__building__code", "resident_id")
        )
        for i, g in enumerate(members, start=1):
            append_row(ws, [*_base(i, g.resident, unmasked, eth_masked), g.detail])
        counts[sheet] = len(members)
    return counts


def community_workbook(community: Community, member: Any, *, year: int | None = None) -> bytes:
    """The community's ledgers as xlsx bytes: the resident ledgers (少数民族人员, 困难家庭,
    下岗失业) over the whole community and :func:`add_sheets`, limited to the staff part of
    ``member``'s territory (audited). Raises ``LedgerRefused`` for the neighbour tier."""
    from openpyxl import Workbook

    from gridsvc.dataio.access import audit_export
    from gridsvc.dataio.cells import append_row
    from gridsvc.dataio.ledgers import BASE_HEADERS, _base, _header, ledger_access

    tier, scope, unmasked, eth_masked = ledger_access(member)
    today = date.today()
    year = year or today.year
    wb = Workbook()
    wb.remove(wb.active)
    counts: dict[str, int] = {}
    base = (
        scope.filter(Resident.objects.filter(household__unit__building__grid__community=community))
        .select_related("household__unit__building")
        .order_by(
            "household__unit__building__code", "household__unit__number", "household__room", "id"
        )
    )
    for title, q in RESIDENT_LEDGERS:
        ws = wb.create_sheet(title)
        _header(ws, BASE_HEADERS, f"{community.name} {title}台账")
        people = list(base.filter(q))
        for i, r in enumerate(people, start=1):
            append_row(ws, _base(i, r, unmasked, eth_masked))
        counts[title] = len(people)
    counts.update(add_sheets(wb, community, scope, tier, year, unmasked))
    summary = wb.create_sheet("汇总", 0)
    _header(summary, ["台账", "条数"], f"{community.name}({community.code})台账汇总 {year}年")
    for k, v in counts.items():
        append_row(summary, [k, v])
    append_row(summary, [])
    append_row(
        summary,
        ["说明", "身份证号、联系电话、民族已脱敏,出生日期只列年份;导出已记入审计日志"],
    )
    buf = io.BytesIO()
    wb.save(buf)
    audit_export(
        member,
        "community_ledger",
        detail={"community": community.code, "year": year, "counts": counts, "unmasked": unmasked},
    )
    return buf.getvalue()


def visible_community(pk: Any, member: Any) -> Community | None:
    """The community ``pk`` if ``member``'s ledgers reach it (held through staff positions,
    over the community or the street: a grid's staff get their grid's ledgers instead)."""
    from gridsvc.dataio.ledgers import LedgerRefused, ledger_scope, may_get_ledgers

    if not may_get_ledgers(member):
        raise LedgerRefused(
            "ledgers (台账) are kept by grid members, community cadres and the street office"
        )
    scope = ledger_scope(member)
    comm = Community.objects.filter(pk=pk).first()
    if comm is None:
        return None
    if scope.everything or comm.pk in scope.community_ids or comm.street_id in scope.street_ids:
        return comm
    return None
