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
from datetime import date
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Model, Q, QuerySet, Sum
from django.utils import timezone

from gridsvc.chain.scope import Scope, scope_for
from gridsvc.chain.visibility import Tier, staff_scope, tier_for
from gridsvc.errors import DomainError
from gridsvc.territory.models import Community, Grid, Household, Place

from .models import (
    Activity,
    Campaign,
    CampaignReturn,
    FiveRole,
    Pairing,
    Petition,
    Rating,
    ScreeningReport,
    ServiceLog,
    Team,
    TeamMembership,
    VenueVisit,
)

NOT_FOUND = "not found"


class CommunityError(DomainError):
    """A rule of the community work refused the request."""


def work_scope(member: Any) -> Scope:
    """Where ``member`` may read and record community work: the staff/street part of their
    scope (empty for neighbours and for members without positions)."""
    if tier_for(member) < Tier.STAFF:
        return Scope()
    return staff_scope(scope_for(member))


def visible(model: type[Model], member: Any) -> QuerySet:
    """Rows of ``model`` in ``member``'s work scope (plus their own screening reports)."""
    qs = work_scope(member).filter(model.objects.all())
    if model is ScreeningReport and getattr(member, "is_authenticated", False):
        qs = ScreeningReport.objects.filter(Q(pk__in=qs.values("pk")) | Q(member=member))
    return qs


def _require_staff(member: Any) -> Scope:
    scope = work_scope(member)
    if scope.empty:
        raise CommunityError(
            "only grid, community and street staff record community work",
            status=403,
            code="permission_denied",
        )
    return scope


def _resolve(scope: Scope, model: type[Model], pk: Any, field: str) -> Any:
    if pk in (None, ""):
        return None
    obj = scope.filter(model.objects.all()).filter(pk=pk).first()
    if obj is None:
        raise CommunityError(NOT_FOUND, field)
    return obj


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


def _located_from_household(household: Household) -> dict[str, Any]:
    g = household.unit.building.grid
    if g is None:
        raise CommunityError("the household's building lies outside every grid", "household")
    return {"street_id": g.community.street_id, "community_id": g.community_id, "grid_id": g.pk}


def _save(
    model: type[Model], recorder: Any, client_uuid: uuid.UUID | None, /, **fields: Any
) -> tuple[Any, bool]:
    """Create a row; a retried phone upload (same ``client_uuid``) returns the stored one."""
    if client_uuid is not None:
        existing = model.objects.filter(client_uuid=client_uuid).first()
        if existing is not None:
            if existing.recorded_by_id != recorder.pk:
                raise CommunityError("client_uuid already used", "client_uuid", status=409)
            return existing, False
    try:
        with transaction.atomic():
            row = model.objects.create(recorded_by=recorder, client_uuid=client_uuid, **fields)
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
    where = locate(member, grid=grid, community=community)
    if team == Team.GRID_TEN and where["grid_id"] is None:
        raise CommunityError("一格十员 belong to a grid", "grid")
    if team == Team.FIVE_MEMBERS:
        where["grid_id"] = None
    person_obj = None
    if person not in (None, ""):
        from gridsvc.accounts.models import Member
        from gridsvc.chain.models import Position

        scope = work_scope(member)
        held = scope.filter(Position.objects.held_at()).values("member_id")
        person_obj = Member.objects.filter(pk=person, pk__in=held).first()
        if person_obj is None:
            raise CommunityError(NOT_FOUND, "person")
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


def log_service(
    member: Any, membership: TeamMembership, *, day: date, hours: Any, note: str = ""
) -> ServiceLog:
    """志愿服务时长: ``hours`` given on ``day`` by a team member (the membership is one the
    recorder may see); adds to the membership's running total."""
    from decimal import Decimal

    from django.db.models import F

    _require_staff(member)
    hours = Decimal(str(hours))
    if not (Decimal(0) < hours <= Decimal(24)):
        raise CommunityError("between 0 and 24 hours in a day", "hours")
    if day > timezone.localdate():
        raise CommunityError("hours are logged for days that have passed", "date")
    with transaction.atomic():
        log = ServiceLog.objects.create(
            membership=membership,
            date=day,
            hours=hours,
            note=note,
            recorded_by=member,
            street_id=membership.street_id,
            community_id=membership.community_id,
            grid_id=membership.grid_id,
        )
        TeamMembership.objects.filter(pk=membership.pk).update(hours=F("hours") + hours)
    return log


def five_member_teams(member: Any, day: date) -> QuerySet:
    """The 五员 memberships of ``member`` active on ``day``."""
    return TeamMembership.objects.filter(
        team=Team.FIVE_MEMBERS, member=member, valid_from__lte=day
    ).filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))


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
) -> tuple[ScreeningReport, bool]:
    """五员一日一报: the member's screening report for ``day`` (default today); sending again
    the same day replaces it. ``zero_report`` (零报告: nothing found) is a report."""
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
    return {
        "date": day.isoformat(),
        "expected": len(expected),
        "reported": len(expected & reported),
        "zero_reports": reports.filter(zero_report=True).count(),
        "findings": reports.aggregate(n=Sum("findings_count"))["n"] or 0,
        "missing": [{"id": m.pk, "username": m.username} for m in missing],
        "persons_this_year": year["persons"] or 0,
        "findings_this_year": year["findings"] or 0,
    }


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


def file_return(
    member: Any,
    ret: CampaignReturn,
    *,
    zero_report: bool = True,
    findings: str = "",
    findings_count: int = 0,
) -> CampaignReturn:
    """File a grid's return (filing again replaces it): findings or a 零报告."""
    _require_staff(member)
    if timezone.localdate() < ret.campaign.start:
        raise CommunityError("the campaign has not started", "campaign", status=409)
    if zero_report and (findings.strip() or findings_count):
        raise CommunityError("a 零报告 has no findings", "zero_report")
    if not zero_report and not findings.strip():
        raise CommunityError("describe the findings, or send a 零报告", "findings")
    ret.zero_report = zero_report
    ret.findings = findings
    ret.findings_count = findings_count or (0 if zero_report else 1)
    ret.filed_at = timezone.now()
    ret.filed_by = member
    ret.save()
    return ret


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
        from gridsvc.accounts.models import Member
        from gridsvc.chain.models import Position

        held = work_scope(member).filter(Position.objects.held_at()).values("member_id")
        data["handled_by"] = Member.objects.filter(pk=handler, pk__in=held).first()
        if data["handled_by"] is None:
            raise CommunityError(NOT_FOUND, "handled_by")
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
def record_venue_visit(member: Any, data: dict[str, Any]) -> tuple[VenueVisit, bool]:
    """A liaison visit to a religious venue (Place of kind mosque / religious_venue)."""
    data = dict(data)
    _require_staff(member)
    place = _resolve(work_scope(member), Place, data.pop("place", None), "place")
    if place is None:
        raise CommunityError("name the venue", "place")
    if not place.is_religious:
        raise CommunityError("the place is not a religious venue", "place")
    if place.grid_id:
        where = locate(member, grid=place.grid_id)
    else:
        where = locate(member, community=place.community_id)
    if data.get("hazards", "").strip():
        data["hazard_found"] = True
    return _save(VenueVisit, member, data.pop("client_uuid", None), place=place, **data, **where)


# ---------------------------------------------------------------- pairing
def record_pairing(member: Any, data: dict[str, Any]) -> tuple[Pairing, bool]:
    """结对帮扶 / 共建 / 在职党员报到 / 微心愿: a household's pairing with a member or unit."""
    data = dict(data)
    scope = _require_staff(member)
    household = _resolve(scope, Household, data.pop("household", None), "household")
    partner_member = data.pop("member", None)
    if partner_member not in (None, ""):
        from gridsvc.accounts.models import Member
        from gridsvc.chain.models import Position

        held = scope.filter(Position.objects.held_at()).values("member_id")
        data["member"] = Member.objects.filter(pk=partner_member, pk__in=held).first()
        if data["member"] is None:
            raise CommunityError(NOT_FOUND, "member")
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


# ---------------------------------------------------------------- 评比
def rate_household(member: Any, data: dict[str, Any]) -> tuple[Rating, bool]:
    """评比: rate a household for a year; rating it again (same title and year) revises the
    rating (动态管理: stars changed, or revoked)."""
    data = dict(data)
    scope = _require_staff(member)
    household = _resolve(scope, Household, data.pop("household", None), "household")
    if household is None:
        raise CommunityError("name the household", "household")
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
def monthly_figures(scope: Scope, year: int, month: int) -> dict[str, Any]:
    """The month's 创建 figures over ``scope`` (a work scope); see :func:`figures`."""
    start = date(year, month, 1)
    end = date(year + (month == 12), month % 12 + 1, 1)
    return figures(scope, start, end)


def figures(scope: Scope, start: date, end: date, area: Any = None) -> dict[str, Any]:
    """创建 figures over ``scope`` (a work scope) for days ``start`` ≤ d < ``end``, optionally
    within ``area`` (a Community or Street), for the monthly/annual work report: activities
    and their participants, materials handed out, the 五员 screening (reports, 零报告,
    findings, 人次), 信访 (all, on ethnic/religious matters, group petitions), venue visits
    and hazards, pairings active, volunteer hours, households rated 五星级文明户 in the year (not revoked)."""
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
    }
