"""Rules of the community's ethnic-unity work (issue 20). Views call these; nothing here
knows HTTP beyond :class:`CommunityError`.

Who may record: staff and street tiers (网格员, 社区干部, 调解委员会, 五员, 街道) over the
record's territory, judged on :func:`gridsvc.chain.visibility.staff_scope` (a grid member who
is also a building head elsewhere records only in the grid). Neighbours record and read
nothing here. Every id in a request is resolved through that scope: a foreign id is
"not found", like a nonexistent one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Model, Q, QuerySet, Sum
from django.utils import timezone

from gridsvc.chain.scope import Scope, districts_for
from gridsvc.chain.visibility import Tier, staff_scope, suppress_small
from gridsvc.territory.models import Community, District, Grid, Household, Place, Street

from .models import (
    Activity,
    Campaign,
    CampaignReturn,
    FiveRole,
    GroupMember,
    InterpreterCall,
    Language,
    Mediation,
    MemberLanguage,
    Pairing,
    PairingHelp,
    Petition,
    Rating,
    ResidentGroup,
    ResidentLanguage,
    ReturnFiling,
    ScreeningReport,
    ServiceLog,
    SignOff,
    Team,
    TeamMembership,
    UnityReport,
    VenueContact,
    VenueTask,
    VenueVisit,
)
from .rules import NOT_FOUND as NOT_FOUND
from .rules import CommunityError as CommunityError
from .rules import RecordedSpan as RecordedSpan
from .rules import active_mediators as active_mediators
from .rules import ethnic_sign_off as ethnic_sign_off
from .rules import five_member_teams as five_member_teams
from .rules import interpreters_for as interpreters_for
from .rules import judged_when_recorded as _judged_when_recorded
from .rules import located_from_household as _located_from_household
from .rules import may_mediate as may_mediate
from .rules import needs_ethnic_sign_off as needs_ethnic_sign_off
from .rules import require_staff as _require_staff
from .rules import resolve as _resolve
from .rules import staff_posts_left_since as _staff_posts_left_since
from .rules import work_scope as work_scope


def visible(model: type[Model], member: Any) -> QuerySet:
    """Rows of ``model`` in ``member``'s work scope (plus their own screening reports)."""
    qs = work_scope(member).filter(model.objects.all())
    if model is ScreeningReport and getattr(member, "is_authenticated", False):
        qs = ScreeningReport.objects.filter(Q(pk__in=qs.values("pk")) | Q(member=member))
    if model is VenueTask:  # and the venue tasks assigned to them
        from .venues import visible_venue_tasks

        qs = visible_venue_tasks(member, qs)
    return qs


def locate(member: Any, *, grid: int | None = None, community: int | None = None) -> dict[str, Any]:
    """The street/community/grid of a new record, checked against ``member``'s work scope.
    A grid-level record names its grid; a community-level one its community (only for those
    holding the community or the street)."""
    scope = _require_staff(member)
    if grid not in (None, ""):
        g = _resolve(scope, Grid, grid, "grid")
        comm = g.community
        return {"street_id": comm.street_id, "community_id": comm.pk, "grid_id": g.pk}
    if community in (None, ""):
        # the only community the member holds (directly or through their street)
        held = Community.objects.filter(
            Q(pk__in=scope.community_ids) | Q(street__in=scope.street_ids)
        ).values_list("pk", flat=True)[:2]
        if len(held) == 1:
            community = held[0]
    if community in (None, ""):
        raise CommunityError("name the grid or the community", "grid")
    comm = scope.filter(Community.objects.all()).filter(pk=community).first()
    if comm is None or not (
        scope.everything or comm.pk in scope.community_ids or comm.street_id in scope.street_ids
    ):
        raise CommunityError(NOT_FOUND, "community")
    return {"street_id": comm.street_id, "community_id": comm.pk, "grid_id": None}


def _retried(
    rows: type[Model] | QuerySet,
    member: Any,
    client_uuid: uuid.UUID | None,
    owner: str = "recorded_by_id",
    same: dict[str, Any] | None = None,
) -> Any:
    """The row of ``rows`` (a model or a queryset) a phone's retry names (its ``client_uuid``
    stored before), when ``member`` stored it (the row's ``owner`` id); None for a new (or no)
    ``client_uuid``. One stored by someone else is refused (409 naming ``client_uuid``), and
    so is one whose ``same`` attributes (what the retry names: its pairing, membership,
    case …, as ids) differ from the stored row's: the same ``client_uuid`` with other content
    is a conflict, never the stored row passed off as it (``code`` ``conflict``)."""
    if client_uuid is None:
        return None
    qs = rows if isinstance(rows, QuerySet) else rows._default_manager.all()
    stored = qs.filter(client_uuid=client_uuid).first()
    if stored is not None and getattr(stored, owner) != member.pk:
        raise CommunityError("client_uuid already used", "client_uuid", status=409)
    if stored is not None and same:
        for attr, value in same.items():
            if value not in (None, "") and str(getattr(stored, attr)) != str(value):
                raise CommunityError(
                    "client_uuid already used for another record",
                    "client_uuid",
                    status=409,
                    code="conflict",
                )
    return stored


def _named(scope: Scope, model: type[Model], pk: Any, field: str, missing: str) -> Any:
    """The ``model`` row ``pk`` inside ``scope`` as :func:`_resolve` finds it, an id being
    required here: none given is refused with ``missing`` ("name the …") naming ``field``."""
    obj = _resolve(scope, model, pk, field)
    if obj is None:
        raise CommunityError(missing, field)
    return obj


def _resident_at_home(scope: Scope, pk: Any) -> Any:
    """The resident ``pk`` (required) inside ``scope``, who has a household in the
    territory (the group ledgers and the languages are kept by household)."""
    from gridsvc.territory.models import Resident

    resident = _named(scope, Resident, pk, "resident", "name the resident")
    if resident.household_id is None:
        raise CommunityError("the resident has no household in the territory", "resident")
    return resident


def _save_or_replace(
    model: type[Model],
    recorder: Any,
    client_uuid: uuid.UUID | None,
    match: dict[str, Any],
    values: dict[str, Any],
    **fields: Any,
) -> tuple[Any, bool]:
    """The ``model`` row matching ``match`` gets ``values`` (recorded again: replaced, not
    added; ``False``); without one, a new row of ``match``, ``values`` and ``fields`` is saved
    as :func:`_save` does."""
    existing = model._default_manager.filter(**match).first()
    if existing is not None:
        for k, v in values.items():
            setattr(existing, k, v)
        existing.save()
        return existing, False
    return _save(model, recorder, client_uuid, **match, **values, **fields)


def _located_as(row: Any) -> dict[str, Any]:
    """Where a record about ``row`` (a membership, a pairing, a case) lies: ``row``'s street,
    community and grid ids."""
    return {"street_id": row.street_id, "community_id": row.community_id, "grid_id": row.grid_id}


def _held_member(scope: Scope, pk: Any, field: str, staff_only: bool = False) -> Any:
    """The member ``pk`` if they hold a position in ``scope`` now (``staff_only``: a staff or
    street post, not a neighbour's — 楼长, 单元长, 物业, 业委会 read no community work); else
    "not found" naming ``field``."""
    from gridsvc.accounts.models import Member
    from gridsvc.chain.models import Position
    from gridsvc.chain.visibility import NEIGHBOUR_POSITIONS

    posts = scope.filter(Position.objects.held_at())
    if staff_only:
        posts = posts.exclude(position_type__in=NEIGHBOUR_POSITIONS)
    held = posts.values("member_id")
    obj = Member.objects.filter(pk=pk, pk__in=held).first()
    if obj is None:
        raise CommunityError(NOT_FOUND, field)
    return obj


def _save(
    model: type[Model],
    recorder: Any,
    client_uuid: uuid.UUID | None,
    /,
    then: Callable[[Any], Any] | None = None,
    **fields: Any,
) -> tuple[Any, bool]:
    """Create a row; a retried phone upload (same ``client_uuid``) returns the stored one.
    ``then(row)`` runs in the same transaction as the insert, only when the row is new."""
    existing = _retried(model, recorder, client_uuid)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            row = model.objects.create(recorded_by=recorder, client_uuid=client_uuid, **fields)
            if then is not None:
                then(row)
    except IntegrityError:
        existing = model.objects.filter(client_uuid=client_uuid).first() if client_uuid else None
        if existing is None or existing.recorded_by_id != recorder.pk:
            raise
        return existing, False
    return row, True


# ---------------------------------------------------------------- teams
def add_team_member(
    member: Any,
    *,
    team: str,
    role: str,
    person: int | None = None,
    name: str = "",
    grid: int | None = None,
    community: int | None = None,
    valid_from: date | None = None,
    hours: Any = 0,
    client_uuid: uuid.UUID | None = None,
) -> tuple[TeamMembership, bool]:
    """Add a person to a team. 五员 are a community team (several members per role, roles
    from :class:`FiveRole`); 一格十员 belong to a grid. ``person`` (a member id) must hold a
    position in the recorder's work scope."""
    if team == Team.FIVE_MEMBERS and role not in FiveRole.values:
        raise CommunityError(f"a 五员 role is one of {', '.join(FiveRole.values)}", "role")
    if team == Team.INTERPRETERS and role not in Language.values:
        raise CommunityError(f"an interpreter's role is a language: {Language.values}", "role")
    where = locate(member, grid=grid, community=community)
    if team == Team.GRID_TEN and where["grid_id"] is None:
        raise CommunityError("一格十员 belong to a grid", "grid")
    if team == Team.FIVE_MEMBERS:
        where["grid_id"] = None
    person_obj = None
    if person not in (None, ""):
        person_obj = _held_member(work_scope(member), person, "person")
    if person_obj is None and not name.strip():
        raise CommunityError("name the person or give their account", "name")
    return _save(
        TeamMembership,
        member,
        client_uuid,
        team=team,
        role=role,
        member=person_obj,
        name=name,
        valid_from=valid_from or timezone.localdate(),
        hours=hours,
        **where,
    )


def set_on_leave(member: Any, membership: TeamMembership, on_leave: bool) -> TeamMembership:
    """请假 / 销假: a team member on leave is passed over by routing (a 调处员) and by the
    interpreter calls; recorded by staff over the membership (it is one they may see)."""
    _require_staff(member)
    membership.on_leave = bool(on_leave)
    membership.save(update_fields=["on_leave", "updated_at"])
    return membership


def log_service(
    member: Any,
    membership: TeamMembership,
    *,
    day: date,
    hours: Any,
    note: str = "",
    client_uuid: uuid.UUID | None = None,
) -> ServiceLog:
    """志愿服务时长: ``hours`` given on ``day`` by a team member (the membership is one the
    recorder may see; ``day`` within its period, not in the future); adds to the membership's
    running total. A phone's retry (same ``client_uuid``) returns the stored log and adds
    nothing."""
    return log_service_once(
        member, membership, day=day, hours=hours, note=note, client_uuid=client_uuid
    )[0]


def log_service_once(
    member: Any,
    membership: TeamMembership,
    *,
    day: date,
    hours: Any,
    note: str = "",
    client_uuid: uuid.UUID | None = None,
) -> tuple[ServiceLog, bool]:
    """As :func:`log_service`, and whether the hours were added now (``False``: a retry of
    that ``client_uuid``; nothing added)."""
    from decimal import Decimal, InvalidOperation

    from django.db.models import F

    _require_staff(member)
    stored = _retried(ServiceLog, member, client_uuid, same={"membership_id": membership.pk})
    if stored is not None:  # a retry: nothing checked again, nothing added
        return stored, False
    try:
        hours = Decimal(str(hours))
    except InvalidOperation:
        raise CommunityError("a number of hours", "hours") from None
    if not (Decimal(0) < hours <= Decimal(24)):
        raise CommunityError("between 0 and 24 hours in a day", "hours")
    if day > timezone.localdate():
        raise CommunityError("hours are logged for days that have passed", "date")
    if day < membership.valid_from or (membership.valid_to and day > membership.valid_to):
        # a former member's hours after the membership ended (or before it began) are no
        # team's service: refused, never added to the running total
        raise CommunityError("the day lies outside the team membership's period", "date")
    return _save(
        ServiceLog,
        member,
        client_uuid,
        # the running total moves with the new log only (a retry adds nothing)
        then=lambda log: TeamMembership.objects.filter(pk=membership.pk).update(
            hours=F("hours") + hours
        ),
        membership=membership,
        date=day,
        hours=hours,
        note=note,
        **_located_as(membership),
    )


# ---------------------------------------------------------------- activities
def record_activity(member: Any, data: dict[str, Any]) -> tuple[Activity, bool]:
    """活动与宣传: record an activity in a grid (or the whole community)."""
    data = dict(data)
    grid, community = data.pop("grid", None), data.pop("community", None)
    place = data.pop("place", None)
    if place not in (None, ""):
        data["place"] = _resolve(_require_staff(member), Place, place, "place")
        if data.get("point") is None:
            data["point"] = data["place"].point
        if grid in (None, "") and community in (None, ""):
            grid, community = data["place"].grid_id, data["place"].community_id
    where = locate(member, grid=grid, community=community)
    mix = data.get("ethnic_mix") or {}
    if any(not isinstance(v, int) or v < 0 for v in mix.values()):
        raise CommunityError("counts per ethnicity, whole numbers", "ethnic_mix")
    if sum(mix.values()) > data.get("participants", 0):
        raise CommunityError("the ethnic mix adds up to more than the participants", "ethnic_mix")
    return _save(Activity, member, data.pop("client_uuid", None), **data, **where)


# ---------------------------------------------------------------- 五员一日一报
def file_screening(
    member: Any,
    *,
    day: date | None = None,
    zero_report: bool = True,
    findings: str = "",
    findings_count: int = 0,
    persons: int = 1,
    client_uuid: uuid.UUID | None = None,
) -> tuple[ScreeningReport, bool]:
    """五员一日一报: the member's screening report for ``day`` (default today); sending again
    the same day replaces it. ``zero_report`` (零报告: nothing found) is a report. A phone's
    retry (same ``client_uuid``) returns the stored report unchanged."""
    stored = _retried(ScreeningReport, member, client_uuid, owner="member_id")
    if stored is not None:
        return stored, False
    day = day or timezone.localdate()
    if day > timezone.localdate():
        raise CommunityError("a report is not filed for a future day", "date")
    team = five_member_teams(member, day).order_by("id").first()
    if team is None:
        raise CommunityError(
            "only members of a 五员 team file screening reports", status=403, code="not_five"
        )
    if zero_report and (findings.strip() or findings_count):
        raise CommunityError("a 零报告 has no findings", "zero_report")
    if not zero_report and not findings.strip():
        raise CommunityError("describe the findings, or send a 零报告", "findings")
    if not zero_report and not findings_count:
        findings_count = 1
    values = {
        "zero_report": zero_report,
        "findings": findings,
        "findings_count": findings_count,
        "persons": persons,
        "street_id": team.street_id,
        "community_id": team.community_id,
        "grid_id": None,
    }
    if client_uuid is not None:
        values["client_uuid"] = client_uuid
    report, created = ScreeningReport.objects.update_or_create(
        member=member, date=day, defaults=values, create_defaults={**values, "recorded_by": member}
    )
    return report, created


def screening_day(scope: Scope, day: date) -> dict[str, Any]:
    """The street's daily sum of the 五员 screening (截止目前共投入X人次…未发现…): who is on
    the teams in ``scope``, who reported (a 零报告 counts), who is missing, findings, and the
    person-times (人次) since the start of the year."""
    teams = (
        scope.filter(TeamMembership.objects.filter(team=Team.FIVE_MEMBERS))
        .filter(member__isnull=False, valid_from__lte=day)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))
    )
    expected = set(teams.values_list("member_id", flat=True))
    reports = scope.filter(ScreeningReport.objects.filter(date=day))
    reported = set(reports.values_list("member_id", flat=True))
    year = scope.filter(
        ScreeningReport.objects.filter(date__year=day.year, date__lte=day)
    ).aggregate(persons=Sum("persons"), findings=Sum("findings_count"))
    from gridsvc.accounts.models import Member

    missing = Member.objects.filter(pk__in=expected - reported).order_by("username")
    persons, found = year["persons"] or 0, year["findings"] or 0
    return {
        "date": day.isoformat(),
        "summary": screening_sentence(day, persons, found),
        "expected": len(expected),
        "reported": len(expected & reported),
        "zero_reports": reports.filter(zero_report=True).count(),
        "findings": reports.aggregate(n=Sum("findings_count"))["n"] or 0,
        "missing": [{"id": m.pk, "username": m.username} for m in missing],
        "persons_this_year": year["persons"] or 0,
        "findings_this_year": year["findings"] or 0,
    }


def screening_sentence(day: date, persons: int, findings: int) -> str:
    """The street's sentence for its report (003: 截止目前共投入X00余人次,未发现存在有影响
    辖区民族团结不稳定因素): person-times rounded down to the hundred (余) above 100."""
    if persons >= 100:
        amount = f"{persons // 100 * 100}余人次"
    else:
        amount = f"{persons}人次"
    found = (
        "未发现影响民族团结的不稳定因素"
        if not findings
        else f"发现影响民族团结的不稳定因素{findings}件"
    )
    return f"截至{day.month}月{day.day}日,“五员”队伍实行一日一报,共投入{amount}排查,{found}。"


def chase_screening(
    rows: dict[int, dict[str, Any]], scope: Scope, day: date, member: Any = None
) -> None:
    """Add to the daily-report chase (``rows``: member id → row of
    :func:`gridsvc.visits.services.members_missing_daily_report`) the 五员 who owe ``day``'s
    screening report (一日一报, 零报告 counts) and have not sent it. Each row gains
    ``screening``: the memberships owing a report (empty when only the field report is
    missing). With ``member`` (the caller) only the teams they may read: the staff part of
    their territory, and themselves."""
    teams = (
        TeamMembership.objects.filter(team=Team.FIVE_MEMBERS, member__isnull=False)
        .filter(valid_from__lte=day)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))
    )
    if member is None or scope.everything:
        teams = scope.filter(teams)
    else:
        teams = teams.filter(
            Q(pk__in=staff_scope(scope).filter(teams).values("pk")) | Q(member=member)
        )
    filed = ScreeningReport.objects.filter(date=day).values("member_id")
    labels = dict(FiveRole.choices)
    for t in teams.exclude(member_id__in=filed).select_related("member").order_by("id"):
        row = rows.setdefault(
            t.member_id,
            {
                "member": t.member_id,
                "username": t.member.username,
                "name": str(t.member),
                "positions": [],
            },
        )
        row.setdefault("screening", []).append(
            {
                "membership": t.pk,
                "team": t.team,
                "role": t.role,
                "role_name": labels.get(t.role, t.role),
                "community": t.community_id,
            }
        )
    for row in rows.values():
        row.setdefault("screening", [])


# ---------------------------------------------------------------- screening campaigns
def start_campaign(member: Any, data: dict[str, Any]) -> tuple[Campaign, bool]:
    """A screening campaign (排查化解月) over a community (or one grid) and a period; a pending
    return is created for each of its grids (the grids' staff see and file them)."""
    data = dict(data)
    where = locate(member, grid=data.pop("grid", None), community=data.pop("community", None))
    if data["end"] < data["start"]:
        raise CommunityError("the campaign ends before it starts", "end")
    with transaction.atomic():
        campaign, created = _save(Campaign, member, data.pop("client_uuid", None), **data, **where)
        if created:
            grids = Grid.objects.filter(community_id=campaign.community_id, parent__isnull=True)
            if campaign.grid_id:
                grids = grids.filter(pk=campaign.grid_id)
            CampaignReturn.objects.bulk_create(
                CampaignReturn(
                    campaign=campaign,
                    grid=g,
                    street_id=campaign.street_id,
                    community_id=campaign.community_id,
                    recorded_by=member,
                )
                for g in grids
            )
    return campaign, created


def _filing_time(client_time: datetime | None) -> datetime | None:
    """When a phone's filing was recorded, on the server's clock: its ``client_time``
    corrected by the request's clock offset (``X-Device-Time``, as visits are), never after
    the receive time; None for an online filing (recorded when filed)."""
    from gridsvc.sync.clock import current as current_clock

    if client_time is None:
        return None
    clock = current_clock()
    when, _ = clock.correct(client_time)
    return min(when, clock.received_at)


def file_return(
    member: Any,
    ret: CampaignReturn,
    *,
    zero_report: bool = True,
    findings: str = "",
    findings_count: int = 0,
    client_uuid: uuid.UUID | None = None,
    client_time: datetime | None = None,
    while_running: bool = False,
) -> tuple[CampaignReturn, bool]:
    """File a grid's return: findings or a 零报告. Filing again replaces it — unless the
    filing is stale. Returns the return and whether this filing was applied now.

    - A filing's ``client_uuid`` is kept (:class:`ReturnFiling`): a retry of **any**
      ``client_uuid`` applied to the return before changes nothing (``False``: a duplicate),
      so a phone that sent A, then B, then retries A keeps B. The same ``client_uuid`` sent
      by another member, or for another return, is refused (409).
    - A filing recorded on the phone (``client_time``, corrected by the phone's clock
      offset) **earlier** than the filing in force (its ``client_time``, else when it was
      filed) is refused (409 naming ``client_time``): it never
      replaces the later one. A filing without ``client_time`` (online) is recorded now.
    - ``while_running`` (the API's and the phone's filings): a filing recorded after the
      campaign's last day is refused (409 ``campaign_ended`` naming ``campaign``): the
      campaign's figures have gone up; one recorded on the phone while it ran and sent late
      is taken. A back-office entry of a past campaign's returns (the demo's history) passes
      False.
    """
    _require_staff(member)
    done = _retried(ReturnFiling, member, client_uuid, owner="filed_by_id")
    if done is not None:
        if done.ret_id != ret.pk:
            raise CommunityError("client_uuid already used", "client_uuid", status=409)
        ret.refresh_from_db()
        return ret, False
    if timezone.localdate() < ret.campaign.start:
        raise CommunityError("the campaign has not started", "campaign", status=409)
    if zero_report and (findings.strip() or findings_count):
        raise CommunityError("a 零报告 has no findings", "zero_report")
    if not zero_report and not findings.strip():
        raise CommunityError("describe the findings, or send a 零报告", "findings")
    recorded = _filing_time(client_time)
    if while_running and timezone.localdate(recorded or timezone.now()) > ret.campaign.end:
        raise CommunityError(
            f"the campaign ended on {ret.campaign.end.isoformat()}",
            "campaign",
            status=409,
            code="campaign_ended",
        )
    with transaction.atomic():
        locked = CampaignReturn.objects.select_for_update().get(pk=ret.pk)
        in_force = locked.client_time or locked.filed_at
        if recorded is not None and in_force is not None and recorded < in_force:
            raise CommunityError(
                "a filing recorded later is in force (recorded "
                f"{timezone.localtime(in_force):%Y-%m-%d %H:%M}); this one is stale",
                "client_time",
                status=409,
                code="stale_filing",
            )
        ret.zero_report = zero_report
        ret.findings = findings
        ret.findings_count = findings_count or (0 if zero_report else 1)
        ret.filed_at = timezone.now()
        ret.filed_by = member
        ret.client_uuid = client_uuid
        ret.client_time = recorded
        ret.save()
        if client_uuid is not None:
            ReturnFiling.objects.create(
                ret=ret,
                client_uuid=client_uuid,
                filed_by=member,
                filed_at=ret.filed_at,
                client_time=recorded,
            )
    return ret, True


def file_return_offline(member: Any, data: dict[str, Any]) -> tuple[CampaignReturn, bool]:
    """A grid's return to a campaign from the phone's offline batch: ``campaign`` and ``grid``
    (optional when the caller sees one return of the campaign) name the return, resolved
    through the caller's work scope (a foreign one is "not found", naming the field); then as
    :func:`file_return` — filing again with another ``client_uuid`` replaces the return, as
    ``campaign-returns/{id}/file/`` does, unless recorded on the phone (``client_time``)
    before the filing in force. Any ``client_uuid`` applied to the return before is the
    stored filing (``False``: nothing changed)."""
    scope = _require_staff(member)
    key = data.get("client_uuid")
    campaign, grid = data.get("campaign"), data.get("grid")
    done = _retried(ReturnFiling.objects.select_related("ret"), member, key, owner="filed_by_id")
    if done is not None:
        if str(done.ret.campaign_id) != str(campaign) or grid not in (None, "", done.ret.grid_id):
            raise CommunityError(
                "client_uuid already used for another return",
                "client_uuid",
                status=409,
                code="conflict",
            )
        return done.ret, False
    if campaign in (None, ""):
        raise CommunityError("name the campaign", "campaign")
    rows = scope.filter(CampaignReturn.objects.filter(campaign_id=campaign))
    if not rows.exists():
        raise CommunityError(NOT_FOUND, "campaign")
    if grid not in (None, ""):
        rows = rows.filter(grid_id=grid)
        if not rows.exists():
            raise CommunityError(NOT_FOUND, "grid")
    found = list(rows.select_related("campaign")[:2])
    if len(found) > 1:
        raise CommunityError("name the grid", "grid")
    return file_return(
        member,
        found[0],
        zero_report=data.get("zero_report", True),
        findings=data.get("findings", ""),
        findings_count=data.get("findings_count", 0),
        client_uuid=key,
        client_time=data.get("client_time"),
        while_running=True,
    )


def log_service_offline(member: Any, data: dict[str, Any]) -> tuple[ServiceLog, bool]:
    """志愿服务时长 from the phone's offline batch: ``membership`` (a team membership in the
    caller's work scope, else "not found"), ``date`` (default today), ``hours``, ``note``;
    idempotent by ``client_uuid``. As ``teams/{id}/hours/``."""
    scope = _require_staff(member)
    membership = _named(
        scope, TeamMembership, data.get("membership"), "membership", "name the team membership"
    )
    return log_service_once(
        member,
        membership,
        day=data.get("date") or timezone.localdate(),
        hours=data.get("hours"),
        note=data.get("note", ""),
        client_uuid=data.get("client_uuid"),
    )


def service_logs(
    member: Any,
    *,
    membership: int | None = None,
    start: date | None = None,
    last: date | None = None,
) -> QuerySet:
    """The day-by-day 志愿服务时长 (:class:`ServiceLog`) in ``member``'s work scope, as the
    teams are read (neighbours: none), newest first; optionally one team membership's
    (another's, or one outside the scope, lists nothing) and the days ``start`` ≤ d ≤
    ``last``."""
    rows = visible(ServiceLog, member)
    if membership is not None:
        rows = rows.filter(membership_id=membership)
    if start is not None:
        rows = rows.filter(date__gte=start)
    if last is not None:
        rows = rows.filter(date__lte=last)
    return rows.order_by("-date", "-id")


def campaign_coverage(campaign: Campaign, scope: Scope) -> dict[str, Any]:
    """Coverage of a campaign over the grids ``scope`` reaches: returned (零报告 counts),
    findings, and the grids still missing."""
    rows = list(scope.filter(campaign.returns.all()).select_related("grid").order_by("grid__code"))
    filed = [r for r in rows if r.filed_at]
    return {
        "campaign": campaign.pk,
        "grids": len(rows),
        "returned": len(filed),
        "zero_reports": sum(r.zero_report for r in filed),
        "findings": sum(r.findings_count for r in filed),
        "coverage": round(len(filed) / len(rows), 4) if rows else None,
        "missing": [r.grid.code for r in rows if not r.filed_at],
    }


# ---------------------------------------------------------------- 信访
def log_petition(member: Any, data: dict[str, Any]) -> tuple[Petition, bool]:
    """信访: log a visitor/petition; ``case`` links it to a case the recorder may see."""
    data = dict(data)
    where = locate(member, grid=data.pop("grid", None), community=data.pop("community", None))
    case = data.pop("case", None)
    if case not in (None, ""):
        from gridsvc.cases.models import Case

        data["case"] = _resolve(work_scope(member), Case, case, "case")
    handler = data.pop("handled_by", None)
    if handler not in (None, ""):
        # who handles a 信访 reads it: a staff post (a neighbour would hold a record they
        # may never read)
        data["handled_by"] = _held_member(work_scope(member), handler, "handled_by", True)
    else:
        data["handled_by"] = member
    return _save(Petition, member, data.pop("client_uuid", None), **data, **where)


def resolve_petition(member: Any, petition: Petition, *, case: int | None = None) -> Petition:
    """办结: close a petition the recorder may see, optionally linking the case it became."""
    scope = _require_staff(member)
    if petition.status == Petition.Status.RESOLVED:
        raise CommunityError("the petition is already resolved", "status", status=409)
    if case not in (None, ""):
        from gridsvc.cases.models import Case

        petition.case = _resolve(scope, Case, case, "case")
    petition.status = Petition.Status.RESOLVED
    petition.save(update_fields=["status", "case"])
    return petition


# ---------------------------------------------------------------- religious venues
def _venue_of(member: Any, data: dict[str, Any]) -> tuple[Place, dict[str, Any]]:
    """The venue ``data["place"]`` names (popped), in ``member``'s work scope, and where a
    record about it is located (its grid, else its community)."""
    _require_staff(member)
    place = _named(work_scope(member), Place, data.pop("place", None), "place", "name the venue")
    if not place.is_religious:
        raise CommunityError("the place is not a religious venue", "place")
    if place.grid_id:
        return place, locate(member, grid=place.grid_id)
    return place, locate(member, community=place.community_id)


def record_venue_visit(member: Any, data: dict[str, Any]) -> tuple[VenueVisit, bool]:
    """A liaison visit to a religious venue (Place of kind mosque / religious_venue).

    ``lon``/``lat`` (WGS84) and ``accuracy_m``: the phone's fix, judged as a household
    visit's (:func:`gridsvc.community.venues.judge_fix`: distance to the venue, ``far_off``
    flagged beyond the visits' threshold); ``photos``: checked photos
    (:class:`gridsvc.visits.ingest.PhotoInput`) kept on the visit
    (:func:`gridsvc.community.photos.store_venue_visit_photos`) — stored with the visit in one
    transaction, only when the visit is new (a retry is the stored visit and its photos)."""
    data = dict(data)
    place, where = _venue_of(member, data)
    if data.get("hazards", "").strip():
        data["hazard_found"] = True
    from .photos import store_venue_visit_photos
    from .venues import complete_venue_tasks, judge_fix

    photos = list(data.pop("photos", None) or [])
    lon, lat, accuracy = data.pop("lon", None), data.pop("lat", None), data.pop("accuracy_m", None)
    fix = judge_fix(place, lon, lat, accuracy, [p.exif_point for p in photos])

    def then(visit: VenueVisit) -> None:
        store_venue_visit_photos(member, visit, photos)
        complete_venue_tasks(visit)  # the month's 共同走访 task of the venue is done

    return _save(
        VenueVisit,
        member,
        data.pop("client_uuid", None),
        then=then,
        place=place,
        **data,
        **fix,
        **where,
    )


def record_venue_contact(member: Any, data: dict[str, Any]) -> tuple[VenueContact, bool]:
    """A religious venue's contact person (name, role, phone), kept on the venue."""
    data = dict(data)
    place, where = _venue_of(member, data)
    if not str(data.get("name", "")).strip():
        raise CommunityError("name the contact", "name")
    return _save(VenueContact, member, data.pop("client_uuid", None), place=place, **data, **where)


# ---------------------------------------------------------------- pairing
def record_pairing(member: Any, data: dict[str, Any]) -> tuple[Pairing, bool]:
    """结对帮扶 / 共建 / 在职党员报到 / 微心愿: a household's pairing with a member or unit."""
    data = dict(data)
    scope = _require_staff(member)
    household = _resolve(scope, Household, data.pop("household", None), "household")
    partner_member = data.pop("member", None)
    if partner_member not in (None, ""):
        data["member"] = _held_member(scope, partner_member, "member")
    if not data.get("member") and not data.get("partner", "").strip():
        raise CommunityError("name the paired member or unit", "partner")
    grid, community = data.pop("grid", None), data.pop("community", None)
    if household is not None:
        where = _located_from_household(household)
    else:
        where = locate(member, grid=grid, community=community)
    return _save(
        Pairing, member, data.pop("client_uuid", None), household=household, **data, **where
    )


def record_pairing_help(member: Any, data: dict[str, Any]) -> tuple[PairingHelp, bool]:
    """Help given under a pairing (结对帮扶的帮扶记录): ``pairing`` (in the recorder's work
    scope, else "not found"), ``date`` (default today; not in the future, not before the
    pairing started nor after it ended), ``what`` was done, optionally the ``visit`` it was
    given on (a visit the recorder may see, to the pairing's household), ``hours`` (≤ 24) and
    ``amount`` (元). Idempotent by ``client_uuid``. The pairing's ``help_given`` text is left
    as its summary; these records are the list."""
    from decimal import Decimal

    from gridsvc.visits.models import Visit

    data = dict(data)
    scope = _require_staff(member)
    key = data.pop("client_uuid", None)
    stored = _retried(PairingHelp, member, key, same={"pairing_id": data.get("pairing")})
    if stored is not None:
        return stored, False
    pairing = _named(scope, Pairing, data.get("pairing"), "pairing", "name the pairing")
    day = data.get("date") or timezone.localdate()
    if day > timezone.localdate():
        raise CommunityError("help is recorded once given", "date")
    if day < pairing.started or (pairing.ended and day > pairing.ended):
        raise CommunityError("outside the pairing's period", "date")
    what = str(data.get("what") or "").strip()
    if not what:
        raise CommunityError("say what was done", "what")
    visit = _resolve(scope, Visit, data.get("visit"), "visit")
    if visit is not None and pairing.household_id and visit.household_id != pairing.household_id:
        raise CommunityError("a visit to another household", "visit")
    hours, amount = data.get("hours"), data.get("amount")
    if hours is not None and not (Decimal(0) < Decimal(str(hours)) <= Decimal(24)):
        raise CommunityError("between 0 and 24 hours in a day", "hours")
    if amount is not None and Decimal(str(amount)) < 0:
        raise CommunityError("an amount is not negative", "amount")
    return _save(
        PairingHelp,
        member,
        key,
        pairing=pairing,
        date=day,
        what=what,
        visit=visit,
        hours=hours,
        amount=amount,
        **_located_as(pairing),
    )


# ---------------------------------------------------------------- 评比
def rate_household(member: Any, data: dict[str, Any]) -> tuple[Rating, bool]:
    """评比: rate a household for a year; rating it again (same title and year) revises the
    rating (动态管理: stars changed, or revoked)."""
    data = dict(data)
    scope = _require_staff(member)
    household = _named(
        scope, Household, data.pop("household", None), "household", "name the household"
    )
    where = _located_from_household(household)
    data.pop("client_uuid", None)
    existing = Rating.objects.filter(
        household=household, year=data["year"], title=data["title"]
    ).first()
    if existing is not None:
        for k, v in data.items():
            setattr(existing, k, v)
        existing.revised_at = timezone.now()
        existing.save()
        return existing, False
    return Rating.objects.create(recorded_by=member, household=household, **data, **where), True


# ---------------------------------------------------------------- monthly figures
def monthly_figures(
    scope: Scope, year: int, month: int, tier: Tier = Tier.STREET
) -> dict[str, Any]:
    """The month's 创建 figures over ``scope`` (a work scope) as ``tier`` reads them; see
    :func:`figures`."""
    start = date(year, month, 1)
    end = date(year + (month == 12), month % 12 + 1, 1)
    return figures(scope, start, end, tier=tier)


def figures(
    scope: Scope, start: date, end: date, area: Any = None, tier: Tier = Tier.STREET
) -> dict[str, Any]:
    """创建 figures over ``scope`` (a work scope) for days ``start`` ≤ d < ``end``, optionally
    within ``area`` (a Community or Street), for the monthly/annual work report: activities
    and their participants, materials handed out, the 五员 screening (reports, 零报告,
    findings, 人次), 信访 (all, on ethnic/religious matters, group petitions), venue visits
    and hazards, pairings active, volunteer hours, households rated 五星级文明户 in the year (not
    revoked), 调处 and sign-offs, the returns of the campaigns running in the period (due and
    filed), the joint venue visits due / done / late (:func:`venue_task_figures`), the 结对帮扶
    help given (:func:`pairing_help_figures`), the interpreters attached to cases and visit
    tasks, and the languages the 五员 and 一格十员 speak (:func:`member_language_figures`).
    ``tier``: the reader's (the help's amount is small-cell suppressed below the street)."""
    from gridsvc.territory.models import Street

    if area is None:
        area_q = Q()
    elif isinstance(area, Street):
        area_q = Q(street=area)
    else:
        area_q = Q(community=area)

    def within(model: type[Model], field: str = "date") -> QuerySet:
        rows = model.objects.filter(area_q, **{f"{field}__gte": start, f"{field}__lt": end})
        return scope.filter(rows)

    acts = within(Activity).aggregate(participants=Sum("participants"), materials=Sum("materials"))
    screening = within(ScreeningReport)
    petitions = within(Petition)
    venues = within(VenueVisit)
    pairings = scope.filter(
        Pairing.objects.filter(area_q, started__lt=end).filter(
            Q(ended__isnull=True) | Q(ended__gte=start)
        )
    )
    ratings = scope.filter(Rating.objects.filter(area_q, year=start.year, revoked=False))
    returns = scope.filter(
        CampaignReturn.objects.filter(area_q, campaign__start__lt=end, campaign__end__gte=start)
    )
    last = end - timedelta(days=1)
    year = scope.filter(
        ScreeningReport.objects.filter(area_q, date__year=last.year, date__lte=last)
    ).aggregate(persons=Sum("persons"), findings=Sum("findings_count"))
    return {
        "activities": within(Activity).count(),
        "activity_participants": acts["participants"] or 0,
        "materials": acts["materials"] or 0,
        "screening_reports": screening.count(),
        "zero_reports": screening.filter(zero_report=True).count(),
        "screening_findings": screening.aggregate(n=Sum("findings_count"))["n"] or 0,
        "screening_persons": screening.aggregate(n=Sum("persons"))["n"] or 0,
        "petitions": petitions.count(),
        "petitions_ethnic_religious": petitions.filter(ethnic_religious=True).count(),
        "group_petitions": petitions.filter(group_size__gte=Petition.GROUP_THRESHOLD).count(),
        "venue_visits": venues.count(),
        "venue_hazards": venues.filter(hazard_found=True).count(),
        "pairings_active": pairings.count(),
        "volunteer_hours": float(within(ServiceLog).aggregate(n=Sum("hours"))["n"] or 0),
        "five_star_households": ratings.filter(title="five_star").count(),
        "screening_persons_year": year["persons"] or 0,
        "screening_summary": screening_sentence(last, year["persons"] or 0, year["findings"] or 0),
        "mediations": within(Mediation).count(),
        "mediations_agreed": within(Mediation).filter(outcome=Mediation.Outcome.AGREED).count(),
        "ethnic_sign_offs": scope.filter(
            SignOff.objects.filter(area_q, created_at__date__gte=start, created_at__date__lt=end)
        ).count(),
        # screening campaigns running in the period: the grids' returns due and filed
        "campaign_returns": returns.count(),
        "campaign_returns_filed": returns.filter(filed_at__isnull=False).count(),
        **venue_task_figures(scope, start, end, area_q),
        **pairing_help_figures(scope, start, end, area_q, tier),
        **group_language_figures(scope, end, area_q),
        **member_language_figures(scope, end, area_q),
        "disputes_to_mediator": disputes_to_mediator(scope, start, end, area_q),
        # interpreters attached to cases and visit tasks (请翻译随行) in the period
        "interpreter_calls": scope.filter(
            InterpreterCall.objects.filter(
                area_q, created_at__date__gte=start, created_at__date__lt=end
            )
        ).count(),
    }


def venue_task_figures(scope: Scope, start: date, end: date, area_q: Q) -> dict[str, int]:
    """宗教场所联合走访 (每个月和清真寺共同走访) in the period: the venue tasks of the periods
    starting in ``start`` ≤ d < ``end`` (a month's report: that month's; a year's: its twelve)
    — due, done (a visit in the period), and 逾期 or 漏访 (overdue or missed) as they stand."""
    tasks = scope.filter(
        VenueTask.objects.filter(area_q, period_start__gte=start, period_start__lt=end)
    )
    counts = dict(
        tasks.order_by().values("status").annotate(n=Count("id")).values_list("status", "n")
    )
    late = (VenueTask.Status.OVERDUE, VenueTask.Status.MISSED)
    return {
        "venue_tasks_due": sum(counts.values()),
        "venue_tasks_done": counts.get(VenueTask.Status.DONE, 0),
        "venue_tasks_late": sum(counts.get(s, 0) for s in late),
    }


def pairing_help_figures(
    scope: Scope, start: date, end: date, area_q: Q, tier: Tier = Tier.STREET
) -> dict[str, Any]:
    """结对帮扶 help given in the period: the help records (:class:`PairingHelp`) dated
    ``start`` ≤ d < ``end`` — how many, and the money or goods' value (元) they carry. The
    value is an amount of assistance (``LOW_INCOME``): summed over 1–4 households (a pairing
    without one counts as one) it would tell what each was given, so below the street tier it
    is then None, as a small count is (:func:`~gridsvc.chain.visibility.suppress_small`)."""
    rows = scope.filter(PairingHelp.objects.filter(area_q, date__gte=start, date__lt=end))
    agg = rows.aggregate(
        n=Count("id"),
        total=Sum("amount"),
        households=Count("pairing__household", distinct=True, filter=Q(amount__isnull=False)),
        others=Count(
            "pairing",
            distinct=True,
            filter=Q(amount__isnull=False, pairing__household__isnull=True),
        ),
    )
    amount: float | None = float(agg["total"] or 0)
    if suppress_small(agg["households"] + agg["others"], tier) is None:
        amount = None
    return {"pairing_help": agg["n"] or 0, "pairing_help_amount": amount}


def group_language_figures(scope: Scope, end: date, area_q: Q) -> dict[str, int]:
    """群体台账人员 and 需翻译 residents as they stand at the period's end (records made
    before ``end``): ``group_members`` (all four group ledgers), ``group_members_<group>`` per
    :class:`ResidentGroup`, and ``interpreter_needed`` — residents whose languages record says
    they need an interpreter (:class:`ResidentLanguage`)."""
    groups = scope.filter(GroupMember.objects.filter(area_q, created_at__date__lt=end))
    counts = dict(
        groups.order_by().values("group").annotate(n=Count("id")).values_list("group", "n")
    )
    out = {"group_members": sum(counts.values())}
    out.update({f"group_members_{g}": counts.get(g, 0) for g in ResidentGroup.values})
    out["interpreter_needed"] = scope.filter(
        ResidentLanguage.objects.filter(area_q, interpreter_needed=True, created_at__date__lt=end)
    ).count()
    return out


#: the teams whose members' languages the figures count (五员, 一格十员)
LANGUAGE_TEAMS = (Team.FIVE_MEMBERS, Team.GRID_TEN)


def member_language_figures(scope: Scope, end: date, area_q: Q) -> dict[str, Any]:
    """The languages of the 五员 and 一格十员 on the period's last day (memberships running
    that day, with an account): ``member_languages`` — language name → how many of them speak
    it besides 汉语 (recorded, :class:`MemberLanguage`, or as an active 民族语言翻译员), e.g.
    ``{"维吾尔语": 3}``, in :class:`Language` order — and ``members_interpreting``, how many
    speak at least one such language (can interpret in the field). A member on both teams or
    on several grids' teams counts once."""
    from .languages import active_memberships, language_name, languages_spoken

    day = end - timedelta(days=1)
    teams = scope.filter(
        TeamMembership.objects.filter(area_q, team__in=LANGUAGE_TEAMS, member__isnull=False)
    )
    ids = set(active_memberships(teams, day).values_list("member_id", flat=True))
    spoken = languages_spoken(ids, day)
    counts: dict[str, int] = {}
    for langs in spoken.values():
        for code in langs:
            counts[code] = counts.get(code, 0) + 1
    order = [c for c in Language.values if c in counts] + sorted(
        c for c in counts if c not in Language.values
    )
    return {
        "member_languages": {language_name(c): counts[c] for c in order},
        "members_interpreting": len(spoken),
    }


def disputes_to_mediator(scope: Scope, start: date, end: date, area_q: Q) -> int:
    """Disputes routed to the 五员 调处员 in the period (矛盾纠纷分派调处员): cases whose route
    reached the 调处员 — their first routing (the ``route`` event) or an escalation by the
    clock (``escalate``) dated ``start`` ≤ d < ``end`` put them at the community mediation
    level (社区调委会) in the hands of a 五员 调处员 of the case's community
    (``gridsvc.cases.services.routing``: the event's ``handler``). A committee holder who is no
    调处员 does not count; a dispute routed twice counts once."""
    from django.db.models import Exists, IntegerField, OuterRef
    from django.db.models.fields.json import KeyTextTransform
    from django.db.models.functions import Cast

    from gridsvc.cases.levels import MEDIATOR_LEVEL
    from gridsvc.cases.models import Case, CaseEvent

    mediator = TeamMembership.objects.filter(
        team=Team.FIVE_MEMBERS,
        role=FiveRole.MEDIATOR,
        member_id=OuterRef("handler"),
        community_id=OuterRef("case__community_id"),
    )
    events = (
        CaseEvent.objects.filter(at__date__gte=start, at__date__lt=end)
        .filter(
            Q(kind="route", data__level=MEDIATOR_LEVEL)
            | Q(kind="escalate", data__to_level=MEDIATOR_LEVEL)
        )
        .annotate(handler=Cast(KeyTextTransform("handler", "data"), IntegerField()))
        .filter(Exists(mediator))
    )
    cases = scope.filter(Case.objects.filter(area_q, kind="dispute"))
    return cases.filter(pk__in=events.values("case_id")).count()


# ---------------------------------------------------------------- cases: sign-off, 调处
def _visible_case(member: Any, case: Any) -> Any:
    from gridsvc.cases.models import Case

    return _named(_require_staff(member), Case, case, "case", "name the case")


def is_ethnic_desk(member: Any, street_id: int | None) -> bool:
    """Whether ``member`` holds the street's ethnic-affairs desk (民族宗教工作站) now."""
    from gridsvc.chain.models import Position, PositionType

    if getattr(member, "is_superuser", False):
        return True
    return (
        Position.objects.active_at()
        .filter(member=member, position_type=PositionType.ETHNIC_AFFAIRS_DESK, street_id=street_id)
        .exists()
    )


def sign_off(
    member: Any, case: Any, *, confirmed: bool = True, note: str = ""
) -> tuple[SignOff, bool]:
    """民族宗教工作站确认: the street's ethnic-affairs desk confirms (or, ``confirmed`` false,
    refuses with a reason) a case whose closing rule asks for it. Only the desk over the
    case's street signs; the latest sign-off stands (:func:`ethnic_sign_off`)."""
    obj = _visible_case(member, case)
    if not needs_ethnic_sign_off(obj):
        raise CommunityError(
            "only cases of the ethnic category or flagged 涉及民族宗教因素 are signed off", "case"
        )
    if not is_ethnic_desk(member, obj.street_id):
        raise CommunityError(
            "the street's ethnic-affairs desk signs off", status=403, code="not_ethnic_desk"
        )
    if not confirmed and not note.strip():
        raise CommunityError("say why the case is not yet stable", "note")
    if obj.street_id is None or obj.community_id is None:
        raise CommunityError("the case lies outside every community", "case")
    row = SignOff.objects.create(
        case=obj,
        confirmed=confirmed,
        note=note,
        recorded_by=member,
        **_located_as(obj),
    )
    return row, True


def record_mediation(member: Any, data: dict[str, Any]) -> tuple[Mediation, bool]:
    """调处: a 调处员 (or the mediation committee) records a mediation session of a dispute
    case in their community, with its outcome. The case's workflow is not moved. Who may is
    :func:`may_mediate` on the session's day (a 调处员 on leave may not); the day is not in
    the future nor before the case was reported. A retry of a session the member stored (its
    ``client_uuid``) is the stored one, checked first."""
    data = dict(data)
    stored = _retried(
        Mediation, member, data.get("client_uuid"), same={"case_id": data.get("case")}
    )
    if stored is not None:  # a retry: the stored session, whatever changed since (leave, end)
        return stored, False
    obj = _visible_case(member, data.pop("case", None))
    day = data.get("date") or timezone.localdate()
    if day > timezone.localdate():
        raise CommunityError("a mediation is recorded after it happened", "date")
    if obj.kind != "dispute":
        raise CommunityError("only disputes are mediated", "case")
    if day < timezone.localdate(obj.reported_at):
        raise CommunityError("a mediation is not dated before the case was reported", "date")
    if obj.community_id is None or not may_mediate(member, obj.community_id, day):
        raise CommunityError(
            "the community's 调处员 or mediation committee mediates",
            status=403,
            code="not_mediator",
        )
    data["date"] = day
    data.pop("grid", None)
    data.pop("community", None)
    return _save(
        Mediation,
        member,
        data.pop("client_uuid", None),
        case=obj,
        mediator=member,
        **_located_as(obj),
        **data,
    )


# ---------------------------------------------------------------- resident groups
def add_group_member(member: Any, data: dict[str, Any]) -> tuple[GroupMember, bool]:
    """Record a resident in a group ledger (离退休老领导, 个体户/企业家, 归国华侨/留学生,
    新的社会阶层); recording them again updates ``detail``."""
    data = dict(data)
    resident = _resident_at_home(_require_staff(member), data.pop("resident", None))
    return _save_or_replace(
        GroupMember,
        member,
        data.pop("client_uuid", None),
        {"resident": resident, "group": data["group"]},
        {"detail": data["detail"]} if "detail" in data else {},
        **_located_from_household(resident.household),
    )


# ---------------------------------------------------------------- phone: change feed
FEED_STREAMS: dict[str, type[Model]] = {
    "activities": Activity,
    "screening": ScreeningReport,
    "venue_visits": VenueVisit,
    # what a phone reads in the field besides: the rosters (一格十员, hours), the campaign
    # returns its grid owes, 信访, pairings and the interpreters attached to its work; the
    # households' 评比 (revised in place: a revision comes again), 调处 sessions and the desk's
    # sign-offs of its cases
    "teams": TeamMembership,
    "campaign_returns": CampaignReturn,
    "petitions": Petition,
    "pairings": Pairing,
    "interpreter_calls": InterpreterCall,
    "ratings": Rating,
    "mediations": Mediation,
    "sign_offs": SignOff,
    # the joint venue visits due (own, and in the territory: a status change comes again), the
    # group ledgers' residents and residents' languages (read as the REST lists read them)
    "venue_tasks": VenueTask,
    "group_members": GroupMember,
    "resident_languages": ResidentLanguage,
    # help given under the pairings (结对帮扶记录): the records, one per occasion
    "pairing_help": PairingHelp,
}
#: what a stream's rows are shown with (the REST list's select_related)
FEED_RELATED: dict[str, tuple[str, ...]] = {
    "campaign_returns": ("campaign",),  # the campaign's name and period are shown
    "interpreter_calls": ("interpreter__member",),  # the interpreter's name is shown
    "venue_tasks": ("place",),
    "group_members": ("resident",),
}
#: what a stream's rows carry besides (an activity's photos: ids, sizes, urls)
FEED_PREFETCH: dict[str, tuple[str, ...]] = {
    "activities": ("photos",),
    "venue_visits": ("photos",),
}
FEED_NAME = "community"


def with_help_summary(qs: QuerySet) -> QuerySet:
    """Pairings with ``help_count`` (their help records, 帮扶记录) and ``last_help_on`` (the
    last one's day), as the list and the feed show them."""
    return qs.select_related("member").annotate(
        help_count=Count("help_records"), last_help_on=Max("help_records__date")
    )


def work_territory_mark(member: Any) -> str:
    """A short digest of what decides which community rows ``member``'s phone may hold: the
    streets, communities and grids of their work scope (:func:`work_scope`), or everything.
    It changes when a post is handed over, ends, or its place moves; the feed's cursor keeps
    it, and a cursor holding another tells the phone to start again (:func:`changes`)."""
    import hashlib
    import json

    scope = work_scope(member)
    data = {
        "all": scope.everything,
        "s": sorted(scope.street_ids),
        "c": sorted(scope.community_ids),
        "g": sorted(scope.grid_ids),
    }
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:24]


def cursor_holds_other_territory(member: Any, cursor: str) -> bool:
    """Whether ``cursor`` (the community feed's, given to ``member``) was made for another work
    territory than ``member``'s now: the phone holds rows it must drop. False for a cursor
    that is not theirs or not this feed's."""
    from gridsvc.sync.cursor import BadCursor, decode_cursor

    try:
        state = decode_cursor(cursor, member.pk)
    except BadCursor:
        return False
    return state.get("feed") == FEED_NAME and state.get("w") != work_territory_mark(member)


def changes(
    member: Any, cursor: str | None, limit: int = 500
) -> tuple[dict[str, list[Any]], str, bool, bool]:
    """The phone's feed of the community records it records offline (activities, 五员
    screening reports, venue visits) and reads in the field (team rosters, campaign returns,
    信访, pairings, interpreter calls, ratings, mediations, sign-offs) in ``member``'s work scope (their own screening reports
    too): without ``cursor`` all of them, with it what was saved after it, by
    ``(updated_at, id)``, ``limit`` rows per stream. Returns (rows per stream, the next
    cursor, whether more is waiting, ``reset``). Cursors are signed for the member like the
    sync feed's (:mod:`gridsvc.visits.sync`); one from another feed or member raises
    ``BadCursor``.

    Territory changes (a hand-over, a post ended, a grid moved): the cursor keeps
    :func:`work_territory_mark`; when the member's is another now, the feed starts again from
    nothing and answers ``reset`` — the phone drops every community row it holds before it
    applies the page (rows of a grid no longer theirs must not stay on the phone), then pages
    on as from a first sync. A cursor made before the mark was kept counts as another."""
    from gridsvc.sync.cursor import BadCursor, decode_cursor, encode_cursor, keyset_mark, rows_after

    state = decode_cursor(cursor, member.pk)
    if state and state.get("feed") != FEED_NAME:
        raise BadCursor("not a cursor of the community feed: sync from the start (no since)")
    mark = work_territory_mark(member)
    reset = bool(state) and state.get("w") != mark
    if reset:
        state = {}
    state["feed"], state["w"] = FEED_NAME, mark
    out: dict[str, list[Any]] = {}
    more = False
    for key, model in FEED_STREAMS.items():
        if key == "venue_tasks":  # own, and the territory's for staff above the grid
            from .venues import feed_venue_tasks

            qs = rows_after(feed_venue_tasks(member, work_scope(member)), state.get(key))
        else:
            qs = rows_after(visible(model, member), state.get(key))
        if key == "pairings":  # shown with their help records' count and last day
            qs = with_help_summary(qs)
        if key in FEED_RELATED:
            qs = qs.select_related(*FEED_RELATED[key])
        if key in FEED_PREFETCH:
            qs = qs.prefetch_related(*FEED_PREFETCH[key])
        rows = list(qs.order_by("updated_at", "id")[: limit + 1])
        if len(rows) > limit:
            more, rows = True, rows[:limit]
        if rows:
            state[key] = keyset_mark(rows[-1].updated_at, rows[-1].pk)
        out[key] = rows
    return out, encode_cursor(state, member.pk), more, reset


# ---------------------------------------------------------------- phone: offline batch
def offline_upload_window() -> timedelta:
    """How long after leaving a post its offline records are still taken (交接后补传期限): the
    visits' window (``GRIDSVC["VISIT_HANDOVER_UPLOAD_DAYS"]``, 30 days), one rule for both."""
    from gridsvc.visits.ingest import handover_upload_window

    return handover_upload_window()


def may_send_offline(member: Any) -> bool:
    """Whether ``member`` may send an offline batch of community records at all: staff now,
    or a staff post left within :func:`offline_upload_window` (its records made in post are
    judged item by item). Anyone else (a neighbour, a member whose posts ended long ago) is
    refused the whole batch (403)."""
    if not work_scope(member).empty:
        return True
    if not getattr(member, "is_authenticated", False):
        return False
    since = timezone.now() - offline_upload_window()
    return _staff_posts_left_since(member, since).exists()


def recorded_span(kind: str, data: dict[str, Any], now: datetime | None = None) -> RecordedSpan:
    """When an offline item was recorded: its ``date`` (the whole day, Asia/Shanghai; default
    today), or a campaign return's ``client_time`` (the instant; default now)."""
    now = now or timezone.now()
    since = now - offline_upload_window()
    if kind == "campaign_return":
        when = data.get("client_time") or now
        return RecordedSpan(when, when + timedelta(microseconds=1), since)
    day = data.get("date") or timezone.localdate(now)
    if isinstance(day, datetime):
        day = timezone.localdate(day)
    start = timezone.make_aware(datetime.combine(day, datetime.min.time()))
    return RecordedSpan(start, start + timedelta(days=1), since)


def _held_now(member: Any, row: Model) -> bool:
    """Whether ``row`` (a community record) lies in ``member``'s work scope now."""
    scope = work_scope(member)
    street, community, grid = (
        getattr(row, f"{n}_id", None) for n in ("street", "community", "grid")
    )
    if grid is not None or scope.everything:
        return scope.allows_grid(grid, community_id=community, street_id=street)
    # a community's or a street's record (no grid)
    return bool(
        (community is not None and community in scope.community_ids)
        or (street is not None and street in scope.street_ids)
    )


def record_offline(member: Any, kind: str, data: dict[str, Any]) -> tuple[Model, bool]:
    """Store one item of an offline batch, judged at the time it was recorded (交接后补传):
    as :func:`record_offline_now`, with the member's work scope widened by the staff posts
    they held on the item's day (:func:`recorded_span`) and left within the upload window
    (:func:`offline_upload_window`). So a record made in post and sent after a hand-over is
    stored, and flagged: the row's ``late_upload`` is true when its place is no longer in the
    member's work scope (the successor sees it, the phone marks it sent). One recorded after
    the post ended, or for a grid or record the member never held, is refused with ``code:
    not_in_territory`` (an id outside the territory reads as one that does not exist)."""
    with _judged_when_recorded(recorded_span(kind, data)):
        try:
            row, created = record_offline_now(member, kind, data)
        except CommunityError as exc:
            if exc.message == NOT_FOUND and exc.code == CommunityError.code:
                raise CommunityError(NOT_FOUND, exc.field, code="not_in_territory") from exc
            raise
    row.late_upload = not _held_now(member, row)  # type: ignore[attr-defined]
    return row, created


def record_offline_now(member: Any, kind: str, data: dict[str, Any]) -> tuple[Model, bool]:
    """Store one item of an offline batch (``kind``: activity, screening, venue_visit,
    campaign_return, service_log, pairing_help, petition, mediation) through the same rule as
    its single POST; idempotent by the item's ``client_uuid``. Returns the row and whether it
    was stored now (false: that ``client_uuid`` was already stored).

    ``petition`` (信访 registered in the field) is :func:`log_petition`; ``mediation`` (the
    调处员's session record) is :func:`record_mediation` — a member who may not mediate in the
    case's community is refused as by ``mediations/``. A retry of a row the caller stored is
    the stored row, checked first (a 调处员 gone on leave since still hears ``duplicate``)."""
    if kind == "petition":
        key = data.get("client_uuid")
        stored = (
            Petition.objects.filter(client_uuid=key, recorded_by=member).first() if key else None
        )
        if stored is not None:
            return stored, False
        return log_petition(member, data)
    if kind == "mediation":  # its retry is checked first there, against the case it names
        return record_mediation(member, data)
    if kind == "activity":
        return record_activity(member, data)
    if kind == "venue_visit":
        return record_venue_visit(member, data)
    if kind == "campaign_return":
        return file_return_offline(member, data)
    if kind == "service_log":
        return log_service_offline(member, data)
    if kind == "pairing_help":
        return record_pairing_help(member, data)
    if kind == "screening":
        key = data.get("client_uuid")
        stored = ScreeningReport.objects.filter(client_uuid=key).first() if key else None
        if stored is not None and stored.member_id == member.pk:
            return stored, False
        report, _ = file_screening(
            member,
            day=data.get("date"),
            zero_report=data.get("zero_report", True),
            findings=data.get("findings", ""),
            findings_count=data.get("findings_count", 0),
            persons=data.get("persons", 1),
            client_uuid=data.get("client_uuid"),
        )
        return report, True  # stored now (a report of that day sent before is replaced)
    raise CommunityError(
        "one of activity, screening, venue_visit, campaign_return, service_log, pairing_help,"
        " petition, mediation",
        "kind",
    )


# ---------------------------------------------------------------- languages and interpreters
def record_languages(member: Any, data: dict[str, Any]) -> tuple[ResidentLanguage, bool]:
    """A resident's languages and whether they need an interpreter; recording them again
    replaces them."""
    data = dict(data)
    resident = _resident_at_home(_require_staff(member), data.pop("resident", None))
    languages = list(dict.fromkeys(data.get("languages") or []))
    if not languages:
        raise CommunityError("at least one language", "languages")
    needed = bool(data.get("interpreter_needed", Language.MANDARIN not in languages))
    return _save_or_replace(
        ResidentLanguage,
        member,
        data.pop("client_uuid", None),
        {"resident": resident},
        {"languages": languages, "interpreter_needed": needed},
        **_located_from_household(resident.household),
    )


def record_member_languages(member: Any, data: dict[str, Any]) -> tuple[MemberLanguage, bool]:
    """The languages a member speaks besides 汉语 (``person``: a member holding a position in
    the recorder's work scope, or the recorder themselves); recording again replaces them."""
    from gridsvc.accounts.models import Member
    from gridsvc.chain.models import Position

    scope = _require_staff(member)
    person = data.get("person") or getattr(member, "pk", None)
    held = scope.filter(Position.objects.held_at()).values("member_id")
    obj = Member.objects.filter(Q(pk__in=held) | Q(pk=member.pk), pk=person).first()
    if obj is None:
        raise CommunityError(NOT_FOUND, "person")
    languages = [c for c in dict.fromkeys(data.get("languages") or []) if c != Language.MANDARIN]
    row, created = MemberLanguage.objects.update_or_create(
        member=obj,
        defaults={"languages": languages},
        create_defaults={"languages": languages, "recorded_by": member},
    )
    return row, created


# ---------------------------------------------------------------- reporting upward (item 9)
def _street_in_hand(member: Any, street: Any) -> Any:
    """The street ``street`` (an id) if ``member`` holds it (street dispatcher, ethnic-affairs
    desk, superuser); else "not found"."""
    from gridsvc.territory.models import Street

    scope = work_scope(member)
    if street in (None, ""):
        held = list(scope.street_ids)
        if len(held) == 1:
            street = held[0]
        elif not scope.everything:
            raise CommunityError(NOT_FOUND if not held else "name the street", "street")
    obj = Street.objects.filter(pk=street).first() if street not in (None, "") else None
    if obj is None or not (scope.everything or obj.pk in scope.street_ids):
        raise CommunityError(NOT_FOUND, "street")
    return obj


def report_period(year: int, kind: str, month: int = 0) -> tuple[date, date]:
    """Days start ≤ d < end a report covers: a month, or the year (plan and summary)."""
    if kind == UnityReport.Kind.MONTHLY:
        if not 1 <= month <= 12:
            raise CommunityError("a month 1–12", "month")
        return date(year, month, 1), date(year + (month == 12), month % 12 + 1, 1)
    return date(year, 1, 1), date(year + 1, 1, 1)


def submit_report(member: Any, data: dict[str, Any]) -> tuple[UnityReport, bool]:
    """The street submits its 创建 plan (年初), a month's report or the year's summary (年终) to
    the district, with the figures over the street as they stand (a plan carries none).
    Submitting again replaces it until the district acknowledges it (then 409)."""
    from gridsvc.chain.scope import Scope

    street = _street_in_hand(member, data.get("street"))
    year, kind, month = int(data["year"]), data["kind"], int(data.get("month") or 0)
    if kind != UnityReport.Kind.MONTHLY:
        month = 0
    start, end = report_period(year, kind, month)
    if kind != UnityReport.Kind.PLAN and start > timezone.localdate():
        raise CommunityError("a report is submitted once its period has begun", "year")
    if kind == UnityReport.Kind.PLAN and not (data.get("text") or "").strip():
        raise CommunityError("the plan's text", "text")
    figures_now = (
        {}
        if kind == UnityReport.Kind.PLAN
        else figures(Scope(street_ids={street.pk}), start, end, street)
    )
    values = {
        "text": data.get("text", ""),
        "figures": figures_now,
        "submitted_by": member,
        "submitted_at": timezone.now(),
    }
    with transaction.atomic():
        existing = (
            UnityReport.objects.select_for_update()
            .filter(street=street, year=year, kind=kind, month=month)
            .first()
        )
        if existing is not None and existing.acknowledged_at:
            raise CommunityError("the district has acknowledged it", "kind", status=409)
        if existing is not None:
            for k, v in values.items():
                setattr(existing, k, v)
            existing.save()
            return existing, False
        return UnityReport.objects.create(
            street=street, year=year, kind=kind, month=month, **values
        ), True


def district_codes(member: Any) -> set[str]:
    """The districts (6-digit codes) ``member`` works for: a district post (区创建办) held now,
    not on leave (:func:`gridsvc.chain.scope.districts_for`)."""
    return set(districts_for(member).values_list("code", flat=True))


def readable_districts(member: Any) -> tuple[QuerySet, set[int]]:
    """The districts (区) ``member`` may read, and which of them in full.

    A district's 创建 officer (a district post, :func:`gridsvc.chain.scope.districts_for`)
    reads their district in full (code, streets, boundary); the street office (街道调度台, 民族宗教工作站: a street post held now)
    reads its street's district by name only; anyone else reads none."""
    if not getattr(member, "is_authenticated", False):
        return District.objects.none(), set()
    if getattr(member, "is_superuser", False):
        return District.objects.all(), set(District.objects.values_list("pk", flat=True))
    from gridsvc.chain.models import Position
    from gridsvc.chain.visibility import STREET_POSITIONS

    full = set(districts_for(member).values_list("pk", flat=True))
    streets = (
        Position.objects.held_at()
        .filter(member=member, position_type__in=list(STREET_POSITIONS), street__isnull=False)
        .values("street_id")
    )
    named = set(
        Street.objects.filter(pk__in=streets, district__isnull=False).values_list(
            "district_id", flat=True
        )
    )
    return District.objects.filter(pk__in=full | named).order_by("code"), full


def district_boundary(district: District) -> Any:
    """The district's own boundary, else the union of its streets' (None when neither)."""
    if district.boundary is not None:
        return district.boundary
    from django.contrib.gis.db.models.aggregates import Union

    return Street.objects.filter(district=district, boundary__isnull=False).aggregate(
        u=Union("boundary")
    )["u"]


def visible_reports(member: Any) -> QuerySet:
    """Reports of the streets ``member`` holds, and of the streets of their districts (the
    streets whose ``district`` is theirs)."""
    from gridsvc.territory.models import Street

    scope = work_scope(member)
    if scope.everything:
        return UnityReport.objects.all()
    q = Q(street__in=scope.street_ids)
    codes = district_codes(member)
    if codes:
        q |= Q(street__in=Street.objects.filter(district__code__in=codes).values("pk"))
    return UnityReport.objects.filter(q)


def acknowledge_report(member: Any, report: UnityReport, note: str = "") -> UnityReport:
    """签收: an officer of the report's district acknowledges it (once)."""
    if not (
        getattr(member, "is_superuser", False)
        or (report.street.district_id and report.street.district.code in district_codes(member))
    ):
        raise CommunityError(
            "the district's 创建 office acknowledges", status=403, code="not_district"
        )
    if report.acknowledged_at:
        raise CommunityError("already acknowledged", "acknowledged_at", status=409)
    report.acknowledged_by, report.acknowledged_at = member, timezone.now()
    report.acknowledgement = note
    report.save(update_fields=["acknowledged_by", "acknowledged_at", "acknowledgement"])
    return report


def district_overview(member: Any, code: str, year: int, month: int = 0) -> dict[str, Any]:
    """The district's streets side by side: each street's 创建 figures for the month (or the
    year with ``month`` 0) and where its plan, summary and month's report stand. For the
    district's officers only (403 otherwise)."""
    from gridsvc.chain.scope import Scope
    from gridsvc.territory.models import Street

    if not (getattr(member, "is_superuser", False) or code in district_codes(member)):
        raise CommunityError("for the district's 创建 office", status=403, code="not_district")
    kind = UnityReport.Kind.MONTHLY if month else UnityReport.Kind.SUMMARY
    start, end = report_period(year, kind, month)
    reports = {
        (r.street_id, r.kind, r.month): r
        for r in UnityReport.objects.filter(street__district__code=code, year=year)
    }

    def state(street_id: int, kind: str, m: int = 0) -> str:
        r = reports.get((street_id, kind, m))
        return "missing" if r is None else ("acknowledged" if r.acknowledged_at else "submitted")

    streets = []
    for s in Street.objects.filter(district__code=code).order_by("code"):
        streets.append(
            {
                "street": s.pk,
                "code": s.code,
                "name": s.name,
                "figures": figures(Scope(street_ids={s.pk}), start, end, s),
                "plan": state(s.pk, UnityReport.Kind.PLAN),
                "summary": state(s.pk, UnityReport.Kind.SUMMARY),
                "monthly": state(s.pk, UnityReport.Kind.MONTHLY, month) if month else None,
            }
        )
    district = District.objects.filter(code=code).first()
    return {
        "district": code,
        "district_name": district.name if district else "",
        "year": year,
        "month": month or None,
        "streets": streets,
    }


# ---------------------------------------------------------------- map layer of activities
def activity_map(member: Any, start: date, end: date) -> dict[str, Any]:
    """Activities in ``member``'s work scope with ``start`` ≤ date < ``end`` as GeoJSON points
    (WGS84) for the map: the activity's point (or its place's), else the representative point
    of its grid or community (``located_by`` says which), and ``by_grid`` (activities and
    participants per grid, for the heat/choropleth). No names, no ethnic mix."""
    _require_staff(member)
    rows = (
        visible(Activity, member)
        .filter(date__gte=start, date__lt=end)
        .select_related("grid", "community")
        .order_by("date", "id")
    )
    labels = dict(Activity._meta.get_field("kind").choices)
    features, by_grid = [], {}
    for a in rows:
        if a.point is not None:
            point, how = a.point, "point"
        elif a.grid_id:
            point, how = a.grid.boundary.point_on_surface, "grid"
        else:
            point, how = a.community.boundary.point_on_surface, "community"
        point = point.transform(4326, clone=True) if point.srid not in (None, 4326) else point
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [round(point.x, 7), round(point.y, 7)],
                },
                "properties": {
                    "id": a.pk,
                    "kind": a.kind,
                    "kind_name": labels.get(a.kind, a.kind),
                    "title": a.title,
                    "date": a.date.isoformat(),
                    "participants": a.participants,
                    "materials": a.materials,
                    "grid": a.grid_id,
                    "community": a.community_id,
                    "located_by": how,
                },
            }
        )
        if a.grid_id:
            g = by_grid.setdefault(
                a.grid_id, {"grid": a.grid_id, "activities": 0, "participants": 0}
            )
            g["activities"] += 1
            g["participants"] += a.participants
    return {
        "type": "FeatureCollection",
        "features": features,
        "by_grid": sorted(by_grid.values(), key=lambda g: g["grid"]),
    }
