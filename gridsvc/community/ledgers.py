"""台账 of the community's ethnic-unity work, named as the seeds name them (issue 20 item 10).

Per grid (sheets added to :func:`gridsvc.dataio.ledgers.ledger_workbook`) and per community
(:func:`community_workbook`): 活动与宣传 · 排查(五员一日一报, 排查活动反馈) · 信访 · 志愿者 ·
宗教场所 · 结对帮扶 · 评比 · 调处 · 签认 (sign-offs) · 翻译随行 (interpreter calls) · and the resident-group ledgers 离退休老领导 · 个体户/企业家 · 归国华侨/留学生 ·
新的社会阶层 (:class:`~gridsvc.community.models.GroupMember`) · 专项排查 (campaigns) · 语言与翻译
(residents' languages) · 宗教场所联系人 (venue contacts) · 成员语言 (members' languages, staff
data) · and one row per record: 宗教场所走访 (venue tasks) · 志愿服务记录 (service logs) · 帮扶记录
(pairing help) · 活动照片 (activity photos with thumbnails, at most :data:`LEDGER_PHOTOS`).
A grid's 志愿者 and 成员语言 also list its community's community-wide team members (范围
社区). Languages are named (东乡语), never coded. The community workbook also carries the
resident ledgers 少数民族人员 · 困难家庭 · 下岗失业 over the whole community.

Who gets them: as every ledger, staff and street only (the neighbour tier is refused,
:class:`~gridsvc.dataio.ledgers.LedgerRefused`), and only the part of the territory held
through staff positions (:func:`~gridsvc.chain.visibility.staff_scope`). Residents are listed
with the ledgers' masks (ID number region + last four, phone last four, birth year, ethnicity
masked for staff and street, as the visibility matrix says); petitioners' names are masked
below the street, like the API; the ethnic mix of activities is a sum of counts. Every
workbook is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from itertools import chain
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Max, Q, QuerySet, Sum

from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import ETHNICITY, MASKED, Tier, rule
from gridsvc.dataio.cells import append_row
from gridsvc.dataio.sheets import (
    BASE_HEADERS,
    MASK,
    REFUSED,
    Ledger,
    LedgerRefused,
    SheetSpec,
    finish_workbook,
    ledger_access,
    ledger_scope,
    may_get_ledgers,
    write_sheet,
)
from gridsvc.territory.models import Community, Grid, Place, Resident

from .languages import active_memberships, language_name, languages_spoken, role_name
from .models import (
    Activity,
    ActivityPhoto,
    Campaign,
    CampaignReturn,
    GroupMember,
    InterpreterCall,
    Language,
    Mediation,
    Pairing,
    PairingHelp,
    Petition,
    Rating,
    ResidentGroup,
    ResidentLanguage,
    ScreeningReport,
    ServiceLog,
    SignOff,
    TeamMembership,
    VenueContact,
    VenueTask,
    VenueVisit,
)
from .rules import shown_petition

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
GROUP_DETAIL: dict[str, str] = {
    ResidentGroup.RETIRED_LEADER: "原任职务",
    ResidentGroup.SELF_EMPLOYED: "经营项目/企业",
    ResidentGroup.RETURNED_OVERSEAS: "侨居/留学国家",
    ResidentGroup.NEW_STRATUM: "从业领域",
}
RESIDENT_ORDER = (
    "household__unit__building__code", "household__unit__number", "household__room", "id",
)  # fmt: skip


def _day(d: date | None) -> str:
    return d.isoformat() if d else ""


def _who(member: Any) -> str:
    return str(member) if member else ""


def _yes(flag: Any) -> str:
    return "是" if flag else ""


# ---------------------------------------------------------------- 活动与宣传
def _activities(led: Ledger) -> QuerySet:
    return (
        led.of_year(Activity)
        .select_related("place")
        .annotate(photo_n=Count("photos"))
        .order_by("date", "id")
    )


def _activity(led: Ledger, a: Activity) -> list[Any]:
    minority = sum(v for k, v in (a.ethnic_mix or {}).items() if k not in ("01", "汉族"))
    return [a.date.isoformat(), a.get_kind_display(), a.title, a.place.name if a.place else "",
            a.organiser, a.partners, a.participants, minority, a.materials, a.answer_sheets,
            a.banners, getattr(a, "photo_n", 0)]  # fmt: skip


# ---------------------------------------------------------------- 活动照片
#: photos one ledger lists (with a thumbnail each): a ledger stays small (a few MB at most);
#: the sheet's last row says how many there were when there were more
LEDGER_PHOTOS = 40
#: a thumbnail's longest side in pixels, and the row height (points) that shows it
THUMB_PX = 96
THUMB_ROW_PT = 76


def _photos_of(led: Ledger) -> QuerySet:
    """The photos of the area's activities of the year (within the reader's scope)."""
    return ActivityPhoto.objects.filter(activity__in=led.of_year(Activity).values("pk"))


def _photos(led: Ledger) -> QuerySet:
    """The first :data:`LEDGER_PHOTOS` photos, by the activity's date."""
    return (
        _photos_of(led)
        .select_related("activity")
        .order_by("activity__date", "activity_id", "id")[:LEDGER_PHOTOS]
    )


def _photo(led: Ledger, p: ActivityPhoto) -> list[Any]:
    """Taken (EXIF) and uploaded time; no GPS point (the activity's place says where)."""
    from django.utils import timezone

    uploaded = timezone.localtime(p.created_at).strftime("%Y-%m-%d %H:%M") if p.created_at else ""
    return [p.activity.title, p.activity.date.isoformat(), p.sha256[:12],
            round(p.size / 1024, 1), p.exif_time, uploaded, ""]  # fmt: skip


def thumbnail(data: bytes, size: int = THUMB_PX) -> bytes | None:
    """``data`` (a JPEG or PNG) shrunk to at most ``size`` pixels a side, as a PNG; ``None``
    when it cannot be read."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.thumbnail((size, size))
            out = io.BytesIO()
            img.convert("RGB").save(out, format="PNG")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return out.getvalue()


def _embed_thumbnails(ws: Any, led: Ledger, photos: list[ActivityPhoto]) -> None:
    """Each listed photo's thumbnail in its row's last column (openpyxl), and, when the
    area has more photos than :data:`LEDGER_PHOTOS`, a note row saying so."""
    import io

    from openpyxl.drawing.image import Image as XlImage
    from openpyxl.utils import get_column_letter

    col = get_column_letter(ws.max_column)
    ws.column_dimensions[col].width = 16
    for row, p in enumerate(photos, start=3):
        try:
            with p.image.open("rb") as f:
                small = thumbnail(f.read())
        except (OSError, ValueError):  # the file is gone from the storage
            small = None
        if small is None:
            ws[f"{col}{row}"] = "(文件缺失)"
            continue
        pic = XlImage(io.BytesIO(small))
        ws.add_image(pic, f"{col}{row}")
        ws.row_dimensions[row].height = THUMB_ROW_PT
    total = _photos_of(led).count()
    if total > len(photos):
        append_row(ws, [])
        append_row(ws, ["说明", f"共{total}张照片,台账只列前{LEDGER_PHOTOS}张(按活动日期)"])


# ---------------------------------------------------------------- 排查
def _screening(led: Ledger) -> Iterable[ScreeningReport | CampaignReturn]:
    """五员一日一报 (the community's records), then the grids' campaign returns."""
    reports = led.of_year(ScreeningReport).select_related("member").order_by("date", "member_id")
    returns = (
        led.records(CampaignReturn, campaign__start__year=led.year)
        .select_related("campaign", "filed_by", "grid")
        .order_by("campaign__start", "grid__code")
    )
    return chain(reports, returns)


def _screening_row(led: Ledger, r: ScreeningReport | CampaignReturn) -> list[Any]:
    if isinstance(r, ScreeningReport):
        return [r.date.isoformat(), "五员一日一报", str(r.member), _yes(r.zero_report),
                r.findings, r.findings_count, r.persons]  # fmt: skip
    return [r.filed_at.date().isoformat() if r.filed_at else "(未报)",
            f"{r.campaign.name} · {r.grid.name if r.grid else ''}", _who(r.filed_by),
            _yes(r.filed_at and r.zero_report), r.findings, r.findings_count, ""]  # fmt: skip


# ---------------------------------------------------------------- 信访
def _petitions(led: Ledger) -> QuerySet:
    return led.of_year(Petition).select_related("handled_by", "case").order_by("date", "id")


def _petition(led: Ledger, p: Petition) -> list[Any]:
    """Petitioners' names are masked below the street, in the subject too (as in the API:
    :func:`gridsvc.community.rules.shown_petition`)."""
    who, subject = shown_petition(p.petitioner, p.subject, led.tier)
    return [p.date.isoformat(), who, subject, _yes(p.ethnic_religious), p.group_size,
            _yes(p.group_risk), _who(p.handled_by), p.get_status_display(),
            p.case.number if p.case else ""]  # fmt: skip


# ---------------------------------------------------------------- 志愿者
def community_wide(led: Ledger) -> QuerySet:
    """The community-wide team members a grid's ledger lists beside the grid's own (a team
    of the grid's community with no grid: the 五员, 民族语言翻译员 …, who work in every grid
    of it), for the 志愿者 and 成员语言 sheets; none in a community's ledger (they are its own
    records there) nor for a grid outside the reader's scope."""
    area = led.area
    if not isinstance(area, Grid) or not led.scope.filter(Grid.objects.filter(pk=area.pk)).exists():
        return TeamMembership.objects.none()
    return TeamMembership.objects.filter(community_id=area.community_id, grid__isnull=True)


def where_of(grid: Grid | None) -> str:
    """范围 of a team member or a post: the grid's name, or 社区 for one over the community
    (a community-wide team member, a community post)."""
    return grid.name if grid is not None else "社区"


def _teams(led: Ledger) -> Iterable[TeamMembership]:
    """The area's team members, then (in a grid's ledger) :func:`community_wide`'s."""
    own = (
        led.records(TeamMembership).select_related("member", "grid").order_by("team", "role", "id")
    )
    return chain(own, community_wide(led).select_related("member").order_by("team", "role", "id"))


def _team(led: Ledger, t: TeamMembership) -> list[Any]:
    """The role by name (a 民族语言翻译员's language: 东乡语); 范围 by :func:`where_of`."""
    return [t.get_team_display(), role_name(t.team, t.role), str(t.member) if t.member else t.name,
            t.valid_from.isoformat(), _day(t.valid_to), float(t.hours),
            where_of(t.grid if t.grid_id else None)]  # fmt: skip


# ---------------------------------------------------------------- 志愿服务记录
def _service_logs(led: Ledger) -> QuerySet:
    return led.of_year(ServiceLog).select_related("membership__member").order_by("date", "id")


def _service_log(led: Ledger, s: ServiceLog) -> list[Any]:
    """One day's hours of a team member (the name as the 志愿者 sheet shows it)."""
    m = s.membership
    return [str(m.member) if m.member else m.name, m.get_team_display(), s.date.isoformat(),
            float(s.hours), s.note]  # fmt: skip


# ---------------------------------------------------------------- 宗教场所
def _venues(led: Ledger) -> list[tuple[Place, dict[str, Any], dict[str, int]]]:
    """The venues with their liaison visits of the year and their joint-visit tasks
    (:class:`VenueTask`) of the year by status."""
    places = list(led.records(Place, kind__in=["mosque", "religious_venue"]).order_by("id"))
    visits = {
        v["place"]: v
        for v in led.of_year(VenueVisit)
        .order_by()
        .values("place")
        .annotate(
            n=Count("id"),
            joint=Count("id", filter=Q(joint=True)),
            last=Max("date"),
            hazards=Count("id", filter=Q(hazard_found=True)),
        )
    }
    tasks: dict[int, dict[str, int]] = {}
    for t in (
        led.scope.filter(
            VenueTask.objects.filter(place__in=[p.pk for p in places], period_start__year=led.year)
        )
        .order_by()
        .values("place", "status")
        .annotate(n=Count("id"))
    ):
        tasks.setdefault(t["place"], {})[t["status"]] = t["n"]
    return [(p, visits.get(p.pk, {}), tasks.get(p.pk, {})) for p in places]


def _venue(led: Ledger, row: tuple[Place, dict[str, Any], dict[str, int]]) -> list[Any]:
    p, v, t = row
    return [p.name, p.get_kind_display(), p.address, v.get("n", 0), v.get("joint", 0),
            _day(v.get("last")), v.get("hazards", 0),
            sum(t.values()), t.get(VenueTask.Status.DONE, 0), t.get(VenueTask.Status.OVERDUE, 0),
            t.get(VenueTask.Status.MISSED, 0)]  # fmt: skip


# ---------------------------------------------------------------- 宗教场所走访
def _venue_tasks(led: Ledger) -> QuerySet:
    """The joint venue visits due (:class:`VenueTask`) of the periods starting in the year."""
    return (
        led.records(VenueTask, period_start__year=led.year)
        .select_related("place", "assigned_member", "done_by__recorded_by")
        .order_by("period_start", "place_id", "id")
    )


def _venue_task(led: Ledger, t: VenueTask) -> list[Any]:
    """The visitor: who made the visit that completed it, else who is (was) to make it."""
    visit = t.done_by
    visitor = visit.recorded_by if visit is not None else t.assigned_member
    return [t.place.name, t.period, t.due_on.isoformat(), t.get_status_display(), _who(visitor),
            _day(visit.date if visit is not None else None)]  # fmt: skip


# ---------------------------------------------------------------- 结对帮扶
def _pairings(led: Ledger) -> QuerySet:
    """Pairings (结对帮扶, 共建单位, 在职党员报到, 微心愿) running in the year, with their help
    records (:class:`~gridsvc.community.models.PairingHelp`) of the year: how many, the last."""
    running = Q(ended__isnull=True) | Q(ended__year__gte=led.year)
    in_year = Q(help_records__date__year=led.year)
    return (
        led.records(Pairing, started__year__lte=led.year)
        .filter(running)
        .select_related("member", "household")
        .annotate(
            help_n=Count("help_records", filter=in_year),
            help_last=Max("help_records__date", filter=in_year),
        )
        .order_by("started", "id")
    )


def _pairing(led: Ledger, p: Pairing) -> list[Any]:
    who = " · ".join(x for x in (_who(p.member), p.partner) if x)
    return [p.get_kind_display(), who, _who(p.household), p.started.isoformat(), _day(p.ended),
            p.help_given, getattr(p, "help_n", 0), _day(getattr(p, "help_last", None))]  # fmt: skip


def _pairing_helps(led: Ledger) -> QuerySet:
    """The help records (:class:`PairingHelp`) dated in the year."""
    return (
        led.of_year(PairingHelp)
        .select_related("pairing__member", "pairing__household")
        .order_by("date", "id")
    )


def _pairing_help(led: Ledger, h: PairingHelp) -> list[Any]:
    """The pairing named as the 结对帮扶 sheet names it (member · partner, the household).
    The money or goods' value (元) given to the household is an amount of assistance
    (``LOW_INCOME`` in the visibility matrix, docs/security.md): ``**`` as the 民生服务台账's
    amounts unless the export is unmasked; blank when none was recorded."""
    p = h.pairing
    who = " · ".join(x for x in (_who(p.member), p.partner) if x)
    if h.amount is None:
        amount: Any = ""
    else:
        amount = float(h.amount) if _amounts_shown(led) else MASK
    return [p.get_kind_display(), who, _who(p.household), h.date.isoformat(), h.what,
            float(h.hours) if h.hours is not None else "", amount]  # fmt: skip


def _amounts_shown(led: Ledger) -> bool:
    """Whether the ledger shows amounts of assistance in clear: the assistance rule
    (:func:`gridsvc.assistance.services.amounts_in_clear`) for the reader's tier — only in an
    unmasked (audited) export."""
    from gridsvc.assistance.services import amounts_in_clear

    return amounts_in_clear(led.tier, led.unmasked)


# ---------------------------------------------------------------- 评比
def _ratings(led: Ledger) -> QuerySet:
    return (
        led.records(Rating, year=led.year)
        .select_related("household")
        .order_by("title", "household_id")
    )


def _rating(led: Ledger, r: Rating) -> list[Any]:
    """Revoked ones marked (动态管理)."""
    state = "已撤销" if r.revoked else ("已调整" if r.revised_at else "有效")
    return [r.year, r.get_title_display(), str(r.household), r.stars, r.criteria, state]


# ---------------------------------------------------------------- 调处, 签认, 翻译随行
def _mediations(led: Ledger) -> QuerySet:
    return led.of_year(Mediation).select_related("case", "mediator").order_by("date", "id")


def _mediation(led: Ledger, m: Mediation) -> list[Any]:
    return [m.date.isoformat(), m.case.number, str(m.mediator), m.get_outcome_display(), m.note]


def _sign_offs(led: Ledger) -> QuerySet:
    return (
        led.of_year(SignOff, "created_at")
        .select_related("case", "recorded_by")
        .order_by("created_at")
    )


def _sign_off(led: Ledger, o: SignOff) -> list[Any]:
    return [o.created_at.date().isoformat(), o.case.number, str(o.recorded_by),
            "确认" if o.confirmed else "不予确认", o.note]  # fmt: skip


def _interpreter_calls(led: Ledger) -> QuerySet:
    return (
        led.of_year(InterpreterCall, "created_at")
        .select_related("case", "visit_task__rule", "household", "interpreter__member", "assignee")
        .order_by("created_at", "id")
    )


def _interpreter_call(led: Ledger, c: InterpreterCall) -> list[Any]:
    task = c.visit_task
    if c.case is not None:
        about = f"案件 {c.case.number}"
    else:
        about = f"走访 {task.rule.name} {task.period}" if task is not None else ""
    who = ""
    if c.interpreter is not None:
        who = str(c.interpreter.member) if c.interpreter.member else c.interpreter.name
    return [c.created_at.date().isoformat(), about, str(c.household), language_name(c.language),
            who or "(无翻译员)", _who(c.assignee)]  # fmt: skip


# ---------------------------------------------------------------- 专项排查, 语言, 联系人
def _campaigns(led: Ledger) -> list[dict[str, Any]]:
    """The screening campaigns (专项排查) running in the year, by the area's returns: grids
    due, returned (零报告 counts), 零报告, findings and the grids still missing."""
    returns = led.records(
        CampaignReturn, campaign__start__year__lte=led.year, campaign__end__year__gte=led.year
    )
    rows = list(
        returns.order_by()
        .values(
            "campaign_id", "campaign__name", "campaign__kind", "campaign__start", "campaign__end"
        )
        .annotate(
            due=Count("id"),
            returned=Count("id", filter=Q(filed_at__isnull=False)),
            zero=Count("id", filter=Q(filed_at__isnull=False, zero_report=True)),
            findings=Sum("findings_count", filter=Q(filed_at__isnull=False)),
        )
        .order_by("campaign__start", "campaign_id")
    )
    missing: dict[int, list[str]] = {}
    for c, name in (
        returns.filter(filed_at__isnull=True)
        .order_by("grid__code")
        .values_list("campaign_id", "grid__name")
    ):
        missing.setdefault(c, []).append(name or "")
    for r in rows:
        r["missing"] = missing.get(r["campaign_id"], [])
    return rows


def _campaign(led: Ledger, c: dict[str, Any]) -> list[Any]:
    kind = dict(Campaign.Kind.choices).get(c["campaign__kind"], c["campaign__kind"])
    return [c["campaign__name"], kind, c["campaign__start"].isoformat(),
            c["campaign__end"].isoformat(), c["due"], c["returned"], c["zero"],
            c["findings"] or 0, "、".join(c["missing"])]  # fmt: skip


def _resident_languages(led: Ledger) -> QuerySet:
    return (
        led.records(ResidentLanguage)
        .select_related("resident__household__unit__building")
        .order_by("resident__household__unit__building__code", "resident_id")
    )


def _resident_language(led: Ledger, r: ResidentLanguage) -> list[Any]:
    """The resident with the ledgers' masks, their languages and whether an interpreter must
    go along. Where the ledger masks ethnicity, a minority language is masked too (维吾尔语
    beside a masked 民族 would tell it): 汉语 is shown, any other language as the mask; the
    need of an interpreter stays. ``languages/`` gives staff the languages to arrange one."""
    shown = [
        language_name(x) if x == Language.MANDARIN or not led.eth_masked else MASK
        for x in r.languages
    ]
    return [*led.person(r.resident), "、".join(dict.fromkeys(shown)), _yes(r.interpreter_needed)]


def _venue_contacts(led: Ledger) -> QuerySet:
    return led.records(VenueContact).select_related("place").order_by("place_id", "id")


def _venue_contact(led: Ledger, c: VenueContact) -> list[Any]:
    """The phone masked with the mask ``venue-contacts/`` uses below the staff tier
    (``present_venue_contact``: ``visibility.mask_phone``), for every reader unless the
    ledger is unmasked: a ledger is an export, and its 汇总 says its phones are masked, as
    the resident sheets' are."""
    from gridsvc.chain.visibility import mask_phone

    from .venues import present_venue_contact

    shown = present_venue_contact({"phone": c.phone}, c.phone, led.tier)["phone"]
    phone = shown if led.unmasked else mask_phone(c.phone)
    return [c.place.name, c.place.get_kind_display(), c.name, c.role, phone]


# ---------------------------------------------------------------- 成员语言 (staff data)
def _member_languages(led: Ledger) -> list[tuple[str, str, str, str]]:
    """The area's members (holding a post over the area, or on one of its teams — in a grid's
    ledger also the community-wide team members, :func:`community_wide`, as 志愿者 lists them)
    who speak a language besides 汉语 (:class:`~gridsvc.community.models.MemberLanguage`, or
    as a 民族语言翻译员), and its interpreters without an account, by name: (name, posts,
    languages, 范围 — :func:`where_of` of each post and membership). Staff data, no
    resident's: the ledger's readers read it unmasked."""
    from django.utils import timezone

    from gridsvc.accounts.models import Member
    from gridsvc.chain.models import Position, PositionType

    from .models import Team

    area = led.area
    if isinstance(area, Grid):
        where = Q(grid=area) | Q(building__grid=area) | Q(unit__building__grid=area)
    else:
        where = (
            Q(community=area)
            | Q(grid__community=area)
            | Q(compound__community=area)
            | Q(building__grid__community=area)
            | Q(unit__building__grid__community=area)
        )
    posts: dict[Any, list[str]] = {}
    ranges: dict[Any, list[str]] = {}
    kinds = dict(PositionType.choices)
    for pos in (
        led.scope.filter(Position.objects.held_at().filter(where))
        .select_related("grid", "building__grid", "unit__building__grid")
        .order_by("id")
    ):
        posts.setdefault(pos.member_id, []).append(kinds.get(pos.position_type, pos.position_type))
        grid = (
            pos.grid
            or (pos.building.grid if pos.building_id else None)
            or (pos.unit.building.grid if pos.unit_id else None)
        )
        ranges.setdefault(pos.member_id, []).append(where_of(grid))
    teams = dict(Team.choices)
    spoken_by_name: dict[str, set[str]] = {}
    today = timezone.localdate()
    memberships = chain(
        active_memberships(led.records(TeamMembership), today)
        .select_related("grid")
        .order_by("id"),
        active_memberships(community_wide(led), today).order_by("id"),
    )
    for t in memberships:
        team = teams.get(t.team, t.team)
        post = f"{team}({role_name(t.team, t.role)})" if t.role else team
        key: Any = t.member_id or f"name:{t.name}"
        posts.setdefault(key, []).append(post)
        ranges.setdefault(key, []).append(where_of(t.grid if t.grid_id else None))
        if t.member_id is None and t.team == Team.INTERPRETERS:
            spoken_by_name.setdefault(key, set()).add(t.role)
    spoken: dict[Any, set] = dict(languages_spoken([k for k in posts if isinstance(k, int)], today))
    spoken.update(spoken_by_name)
    names = {
        m.pk: str(m)
        for m in Member.objects.filter(pk__in=[k for k in spoken if isinstance(k, int)])
    }
    order = list(Language.values)
    rows = []
    for key, langs in spoken.items():
        name = names.get(key, "") if isinstance(key, int) else key[len("name:") :]
        shown = sorted(langs, key=lambda c: order.index(c) if c in order else len(order))
        rows.append((name, "、".join(dict.fromkeys(posts[key])),
                     "、".join(language_name(c) for c in shown),
                     "、".join(dict.fromkeys(ranges[key]))))  # fmt: skip
    return sorted(rows)


def _member_language(led: Ledger, row: tuple[str, str, str, str]) -> list[Any]:
    return list(row)


# ---------------------------------------------------------------- resident groups
def _group_members(group: str) -> Callable[[Ledger], QuerySet]:
    def members(led: Ledger) -> QuerySet:
        return (
            led.records(GroupMember, group=group)
            .select_related("resident__household__unit__building")
            .order_by("resident__household__unit__building__code", "resident_id")
        )

    return members


def _group_member(led: Ledger, g: GroupMember) -> list[Any]:
    return [*led.person(g.resident), g.detail]


def _residents_where(q: Q) -> Callable[[Ledger], QuerySet]:
    """The community's residents matching ``q`` (a resident ledger over the community)."""

    def residents(led: Ledger) -> QuerySet:
        everyone = Resident.objects.filter(
            household__unit__building__grid__community_id=led.area.pk
        )
        return (
            led.scope.filter(everyone)
            .filter(q)
            .select_related("household__unit__building")
            .order_by(*RESIDENT_ORDER)
        )

    return residents


def _resident(led: Ledger, r: Resident) -> list[Any]:
    return led.person(r)


#: the community-work ledgers of a grid or a community, in the workbook's order
SHEETS: list[SheetSpec] = [
    SheetSpec("活动与宣传",
              ["日期", "类型", "名称", "地点", "组织者", "合作单位", "参与人数", "少数民族人数",
               "宣传资料(份)", "答题(份)", "横幅展板", "照片(张)"],
              "{area} 活动与宣传台账({year}年)", _activities, _activity),
    SheetSpec("排查", ["日期", "来源", "报告人", "零报告", "发现不稳定因素", "件数", "投入人次"],
              "{area} 排查不稳定因素台账({year}年)", _screening, _screening_row),
    SheetSpec("信访",
              ["日期", "来访人", "事由", "涉及民族宗教", "人数", "集体访", "接待人", "状态",
               "案件"],
              "{area} 信访台账({year}年)", _petitions, _petition),
    SheetSpec("志愿者", ["队伍", "角色", "姓名", "起始日期", "终止日期", "服务时长(小时)", "范围"],
              "{area} 志愿者及队伍台账", _teams, _team),
    SheetSpec("宗教场所",
              ["场所", "类型", "地址", "走访次数", "共同走访", "最近走访", "发现隐患",
               "应共同走访(任务)", "已走访", "逾期", "漏访"],
              "{area} 民族宗教场所台账({year}年)", _venues, _venue),
    SheetSpec("结对帮扶", ["类型", "结对人/单位", "住户", "开始", "结束", "帮扶内容",
                         "帮扶次数(年内)", "最近帮扶"],
              "{area} 结对帮扶台账({year}年)", _pairings, _pairing),
    SheetSpec("评比", ["年度", "称号", "住户", "星级", "评选标准", "状态"],
              "{area} 评比台账({year}年)", _ratings, _rating),
    SheetSpec("调处", ["日期", "案件", "调处员", "结果", "说明"],
              "{area} 矛盾纠纷调处台账({year}年)", _mediations, _mediation),
    SheetSpec("签认", ["日期", "案件", "签认人", "结论", "说明"],
              "{area} 民族宗教工作站签认台账({year}年)", _sign_offs, _sign_off),
    SheetSpec("翻译随行", ["日期", "事项", "住户", "语言", "翻译员", "承办人"],
              "{area} 民族语言翻译随行台账({year}年)", _interpreter_calls, _interpreter_call),
    *(
        SheetSpec(sheet, [*BASE_HEADERS[1:], GROUP_DETAIL[group]], f"{{area}} {sheet}台账",
                  _group_members(group), _group_member)
        for group, sheet in GROUP_SHEETS.items()
    ),
    SheetSpec("专项排查",
              ["专项排查", "类型", "开始", "结束", "应报网格", "已报", "零报告", "发现件数",
               "未报网格"],
              "{area} 专项排查台账({year}年)", _campaigns, _campaign),
    SheetSpec("语言与翻译", [*BASE_HEADERS[1:], "语言", "需要翻译"],
              "{area} 居民语言与翻译需求台账", _resident_languages, _resident_language),
    SheetSpec("宗教场所联系人", ["场所", "类型", "联系人", "身份", "联系电话"],
              "{area} 宗教场所联系人台账", _venue_contacts, _venue_contact),
    SheetSpec("成员语言", ["姓名", "岗位", "语言", "范围"],
              "{area} 成员语言台账", _member_languages, _member_language),
    SheetSpec("宗教场所走访", ["场所", "周期", "应访日期", "状态", "走访人", "走访日期"],
              "{area} 宗教场所共同走访台账({year}年)", _venue_tasks, _venue_task),
    SheetSpec("志愿服务记录", ["成员/志愿者", "队伍", "日期", "时长(小时)", "服务内容"],
              "{area} 志愿服务记录({year}年)", _service_logs, _service_log),
    SheetSpec("帮扶记录", ["类型", "结对人/单位", "住户", "日期", "帮扶内容", "时长(小时)",
                         "金额/折价(元)"],
              "{area} 结对帮扶记录({year}年)", _pairing_helps, _pairing_help),
    SheetSpec("活动照片",
              ["活动", "活动日期", "SHA-256(前12位)", "大小(KB)", "拍摄时间", "上传时间", "缩略图"],
              "{area} 活动照片({year}年)", _photos, _photo, _embed_thumbnails),
]  # fmt: skip


def add_sheets(
    wb: Workbook, area: Grid | Community, scope: Scope, tier: Tier, year: int, unmasked: bool
) -> dict[str, int]:
    """Append the community-work ledgers (:data:`SHEETS`) of ``area`` (a grid or a community)
    for ``year`` to ``wb``, limited to ``scope`` (a staff scope). Returns rows per sheet."""
    eth_masked = rule(ETHNICITY, tier) == MASKED and not unmasked
    ledger = Ledger(area, scope, tier, year, unmasked, eth_masked)
    return {spec.title: write_sheet(wb, spec, ledger) for spec in SHEETS}


#: the community workbook's resident ledgers (少数民族人员, 困难家庭, 下岗失业), before SHEETS
RESIDENT_SHEETS: list[SheetSpec] = [
    SheetSpec(title, BASE_HEADERS[1:], f"{{area}} {title}台账", _residents_where(q), _resident)
    for title, q in RESIDENT_LEDGERS
]


def community_workbook(community: Community, member: Any, *, year: int | None = None) -> bytes:
    """The community's ledgers as xlsx bytes: the resident ledgers (:data:`RESIDENT_SHEETS`)
    over the whole community and :func:`add_sheets`, limited to the staff part of
    ``member``'s territory (audited). Raises ``LedgerRefused`` for the neighbour tier."""
    from openpyxl import Workbook

    tier, scope, unmasked, eth_masked = ledger_access(member)
    year = year or date.today().year
    wb = Workbook()
    wb.remove(wb.active)
    ledger = Ledger(community, scope, tier, year, unmasked, eth_masked)
    counts = {spec.title: write_sheet(wb, spec, ledger) for spec in RESIDENT_SHEETS}
    counts.update(add_sheets(wb, community, scope, tier, year, unmasked))
    return finish_workbook(
        wb,
        counts,
        ["台账", "条数"],
        f"{community.name}({community.code})台账汇总 {year}年",
        member,
        "community_ledger",
        {"community": community.code, "year": year, "counts": counts, "unmasked": unmasked},
    )


def visible_community(pk: Any, member: Any) -> Community | None:
    """The community ``pk`` if ``member``'s ledgers reach it (held through staff positions,
    over the community or the street: a grid's staff get their grid's ledgers instead)."""
    if not may_get_ledgers(member):
        raise LedgerRefused(REFUSED)
    scope = ledger_scope(member)
    comm = Community.objects.filter(pk=pk).first()
    if comm is None:
        return None
    if scope.everything or comm.pk in scope.community_ids or comm.street_id in scope.street_ids:
        return comm
    return None
