"""Issue 20 in routing and assignment: a dispute reaching the community mediation level goes to
the community's 五员 调处员 (falling back to the chain when none is at work); an assignment to
a household whose residents need an interpreter calls one when the assignee does not speak
their language, and visit tasks prefer a member who does; the district is a territory object
above the street."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.cases.models import CaseEvent
from gridsvc.chain.models import Position, PositionType
from gridsvc.community.models import (
    FiveRole,
    InterpreterCall,
    MemberLanguage,
    ResidentLanguage,
    Team,
    TeamMembership,
)
from gridsvc.supervision.models import InboxMessage
from gridsvc.territory.models import District, Household, Street
from gridsvc.visits.models import VisitRule, VisitTask
from gridsvc.visits.services import generate_tasks

from .cases_helpers import category, report
from .unity_helpers import interpreter_with_account, needing_household

pytestmark = pytest.mark.django_db


def _in_grid(demo, index: int) -> Household:
    return Household.objects.filter(unit__building__grid=demo.grids[index]).order_by("id").first()


def _mediators(demo):  # type: ignore[no-untyped-def]
    return TeamMembership.objects.filter(
        team=Team.FIVE_MEMBERS, role=FiveRole.MEDIATOR, community=demo.community
    )


# ---------------------------------------------------------------- item 1: the 调处员 in routing
def test_a_dispute_reaching_the_community_goes_to_the_mediator(demo):
    # grid 4's cadre post is vacant: a wages dispute there climbs to the community level,
    # where the 五员 调处员 (cadre5, the earliest) takes it ahead of the committee
    case = report("wages", household=_in_grid(demo, 3)).case
    assert case.level == "mediation_committee", case.route_reason
    assert case.handler.username == "cadre5"
    assert case.status == "assigned"
    route = CaseEvent.objects.get(case=case, kind="route")
    assert "五员调处员" in route.note and "社区干部 skipped (vacant)" in route.note
    assert route.data["handler"] == case.handler_id
    assert InboxMessage.objects.filter(member=case.handler, object_id=str(case.pk)).exists()
    # the 调处员 may act on it as its handler
    from gridsvc.cases import services

    services.act(case.pk, "start", case.handler)


def test_a_dispute_escalated_to_the_community_goes_to_the_mediator(demo):
    from gridsvc.cases.services.clock import escalate_one_level

    case = report("wages", household=_in_grid(demo, 0)).case
    assert case.level == "community_cadre"  # grid 1's cadre holds it first
    assert escalate_one_level(case, timezone.now(), "逾期")
    assert case.level == "mediation_committee" and case.handler.username == "cadre5"
    hazard = report("hazard", household=_in_grid(demo, 0)).case
    while hazard.level != "mediation_committee":
        assert escalate_one_level(hazard, timezone.now(), "逾期")
    assert hazard.handler.username == "mediator"  # not a dispute: the committee


def test_a_dispute_starting_at_the_mediation_level_goes_to_the_mediator(demo):
    cat = category("neighbour")
    cat.start_level = "mediation_committee"
    cat.save()
    case = report("neighbour", household=_in_grid(demo, 0)).case
    assert case.handler.username == "cadre5" and case.level == "mediation_committee"
    assert "before the committee's" in case.route_reason


def test_falls_back_to_the_chain_when_the_mediator_post_is_vacant_or_on_leave(demo):
    hh = _in_grid(demo, 3)
    mediators = _mediators(demo)
    assert mediators.count() == 2
    # both on leave: the committee's holder takes it, and the route says why
    mediators.update(on_leave=True)
    case = report("wages", household=hh).case
    committee = Position.objects.held_at().get(
        position_type=PositionType.MEDIATION_COMMITTEE, community=demo.community
    )
    assert case.handler_id == committee.member_id and case.level == "mediation_committee"
    assert "no 五员 调处员 at work" in case.route_reason
    # one back at work: routed to them again
    cadre7 = mediators.get(member__username="cadre7")
    cadre7.on_leave = False
    cadre7.save()
    assert report("wages", household=hh).case.handler.username == "cadre7"
    # the post vacant (memberships ended): the chain again
    mediators.update(valid_to=timezone.localdate() - timedelta(days=1), on_leave=False)
    case = report("wages", household=hh).case
    assert case.handler_id == committee.member_id


def test_the_leave_endpoint_takes_a_mediator_out_of_routing(demo, member_client):
    street = member_client("street")
    for t in _mediators(demo):
        r = street.post(f"/api/v1/community/teams/{t.pk}/leave/", {"on_leave": True}, format="json")
        assert r.status_code == 200 and r.json()["on_leave"] is True
    case = report("wages", household=_in_grid(demo, 3)).case
    assert case.handler.username == "mediator"  # the committee
    # a neighbour (building head) cannot put anyone on leave
    t = _mediators(demo).first()
    r = member_client("bh-001").post(
        f"/api/v1/community/teams/{t.pk}/leave/", {"on_leave": False}, format="json"
    )
    assert r.status_code in (403, 404)


def test_non_dispute_categories_are_not_routed_to_the_mediator(demo):
    cat = category("hazard")
    cat.start_level = "mediation_committee"
    cat.save()
    case = report("hazard", household=_in_grid(demo, 3)).case
    assert case.handler.username == "mediator", case.route_reason
    assert "调处员" not in case.route_reason
    # and a small dispute still ends inside the compound (小矛盾不出小区)
    small = report("neighbour.noise", household=_in_grid(demo, 0)).case
    assert small.level in ("unit_head", "building_head"), small.route_reason


# ---------------------------------------------------------------- item 2: languages on assignment
def test_an_assignee_without_the_language_gets_an_interpreter_attached(demo, member_client):
    hh, need = needing_household()
    interp = interpreter_with_account(hh, "interp-sce")
    grid_member = Position.objects.held_at().get(
        grid=hh.unit.building.grid, position_type="grid_member"
    )
    case = report("neighbour.noise", household=hh).case
    street = member_client("street")
    r = street.post(
        f"/api/v1/cases/{case.pk}/actions/assign/", {"member": grid_member.member_id}, format="json"
    )
    assert r.status_code == 200, r.content
    said = r.json()["interpreter"]
    assert said["needs_interpreter"] is True and said["handler_speaks"] == []
    assert [c["language"] for c in said["interpreter_calls"]] == ["sce"]
    assert said["interpreter_calls"][0]["interpreter"] == interp.pk
    call = InterpreterCall.objects.get(case=case)
    assert call.interpreter == interp and call.assignee_id == grid_member.member_id
    assert InboxMessage.objects.filter(member=interp.member, object_id=str(case.pk)).exists()
    listed = street.get(f"/api/v1/community/interpreter-calls/?case={case.pk}").json()
    assert listed["count"] == 1 and listed["results"][0]["interpreter_name"]
    # the interpreter sees the call made to them; a neighbour sees none
    assert member_client("interp-sce").get("/api/v1/community/interpreter-calls/").json()["count"]
    assert member_client("bh-001").get("/api/v1/community/interpreter-calls/").json()["count"] == 0

    # the grid member records that they speak 东乡语: reassigned to them, no interpreter
    r = member_client("street").post(
        "/api/v1/community/member-languages/",
        {"person": grid_member.member_id, "languages": ["sce"]},
        format="json",
    )
    assert r.status_code == 201, r.content
    other = Position.objects.held_at().filter(position_type="community_cadre").first()
    street.post(
        f"/api/v1/cases/{case.pk}/actions/assign/", {"member": other.member_id}, format="json"
    )
    assert InterpreterCall.objects.filter(case=case).count() in (0, 1)
    r = street.post(
        f"/api/v1/cases/{case.pk}/actions/assign/", {"member": grid_member.member_id}, format="json"
    )
    said = r.json()["interpreter"]
    assert said["needs_interpreter"] is False and said["handler_speaks"] == ["sce"]
    assert not InterpreterCall.objects.filter(case=case).exists()


def test_a_new_case_routed_to_a_non_speaker_gets_an_interpreter(demo):
    hh, need = needing_household()
    interp = interpreter_with_account(hh, "interp-sce")
    case = report("neighbour.noise", household=hh).case
    assert case.handler_id is not None
    call = InterpreterCall.objects.get(case=case)
    assert call.language == "sce" and call.interpreter == interp
    assert call.assignee_id == case.handler_id
    assert InboxMessage.objects.filter(member=interp.member, object_id=str(case.pk)).exists()
    # a household where nobody needs one: no call
    other = (
        Household.objects.filter(unit__building__grid=hh.unit.building.grid)
        .exclude(pk__in=ResidentLanguage.objects.values("resident__household"))
        .order_by("id")
        .first()
    )
    assert not InterpreterCall.objects.filter(case=report("neighbour.noise", household=other).case)


def test_visit_tasks_prefer_a_member_who_speaks_the_households_language(demo):
    hh, need = needing_household()
    grid = hh.unit.building.grid
    first = Position.objects.held_at().get(grid=grid, position_type="grid_member")
    # a second grid member of the same grid, speaking 东乡语 (posted later: not first in line)
    speaker = Member.objects.create_user("grid-sce", password="x-long-password-1")
    Position.objects.create(
        position_type=PositionType.GRID_MEMBER,
        member=speaker,
        grid=grid,
        valid_from=timezone.make_aware(datetime(2026, 1, 1)),
    )
    MemberLanguage.objects.create(member=speaker, languages=["sce"], recorded_by=speaker)
    other = (
        Household.objects.filter(unit__building__grid=grid)
        .exclude(pk__in=ResidentLanguage.objects.values("resident__household"))
        .order_by("id")
        .first()
    )
    rule = VisitRule.objects.create(
        code="test-language",
        name="测试走访",
        target_group="all_households",
        frequency="monthly",
        window_days=20,
        grace_days=3,
        visitor_level="grid_member",
    )
    generate_tasks(
        date(2027, 1, 1),
        rules=[rule],
        households=Household.objects.filter(pk__in=[hh.pk, other.pk]),
        when=timezone.make_aware(datetime(2027, 1, 2)),
    )
    tasks = {t.household_id: t for t in VisitTask.objects.filter(rule=rule)}
    assert tasks[hh.pk].assigned_member_id == speaker.pk
    assert tasks[other.pk].assigned_member_id == first.member_id  # no language: the first
    assert not InterpreterCall.objects.filter(visit_task__rule=rule).exists()


def test_a_visit_task_to_a_non_speaker_attaches_the_interpreter(demo):
    hh, need = needing_household()
    interp = interpreter_with_account(hh, "interp-sce")
    rule = VisitRule.objects.create(
        code="test-language-2",
        name="测试走访",
        target_group="all_households",
        frequency="monthly",
        window_days=20,
        grace_days=3,
        visitor_level="grid_member",
    )
    today = timezone.localdate()
    generate_tasks(today, rules=[rule], households=Household.objects.filter(pk=hh.pk))
    task = VisitTask.objects.get(rule=rule, household=hh)
    call = InterpreterCall.objects.get(visit_task=task)
    assert call.language == "sce" and call.interpreter == interp
    assert call.assignee_id == task.assigned_member_id
    assert InboxMessage.objects.filter(
        member=interp.member, object_type="visit_task", object_id=str(task.pk)
    ).exists()
    # generating again attaches nothing new
    generate_tasks(today, rules=[rule], households=Household.objects.filter(pk=hh.pk))
    assert InterpreterCall.objects.filter(visit_task=task).count() == 1
    # the month's 创建 figures count it
    from gridsvc.chain.scope import Scope
    from gridsvc.community.services import monthly_figures

    figures = monthly_figures(Scope(street_ids={demo.street.pk}), today.year, today.month)
    assert figures["interpreter_calls"] >= 1


# ---------------------------------------------------------------- item 3: the district
def test_the_district_is_a_territory_object_over_its_streets(demo, member_client):
    district = District.objects.get(code="620103")
    assert demo.street.district_id == district.pk
    # a street with the district's code prefix but not in the district is not the district's
    Street.objects.create(code="620103999", name="别的街道")
    body = member_client("district").get("/api/v1/community/district/?year=2026&month=9").json()
    assert body["district_name"] == district.name
    assert [s["code"] for s in body["streets"]] == [demo.street.code]
    # adding the street to the district brings it in
    Street.objects.filter(code="620103999").update(district=district)
    body = member_client("district").get("/api/v1/community/district/?year=2026&month=9").json()
    assert [s["code"] for s in body["streets"]] == [demo.street.code, "620103999"]


# ---------------------------------------------------------------- item 5: the ledgers
def test_the_community_ledger_has_pairings_ratings_and_mediations(demo, member_client):
    import io

    from openpyxl import load_workbook

    from gridsvc.community.models import Mediation, Pairing, Rating

    r = member_client("street").get(f"/api/v1/community/ledgers/{demo.community.pk}/?year=2026")
    assert r.status_code == 200, r.content
    wb = load_workbook(io.BytesIO(r.content))
    sheets = {ws.title: list(ws.iter_rows(min_row=3, values_only=True)) for ws in wb.worksheets}
    rated = Rating.objects.filter(community=demo.community, year=2026)
    assert len(sheets["评比"]) == rated.count() > 0
    assert sum(row[6] == "已撤销" for row in sheets["评比"]) == rated.filter(revoked=True).count()
    sessions = Mediation.objects.filter(community=demo.community, date__year=2026)
    assert len(sheets["调处"]) == sessions.count() > 0
    assert {row[2] for row in sheets["调处"]} == set(
        sessions.values_list("case__number", flat=True)
    )
    pairs = Pairing.objects.filter(community=demo.community, started__year__lte=2026)
    assert len(sheets["结对帮扶"]) == pairs.count() > 0
    # a grid's ledger has them too, for the grid only
    grid = demo.grids[0]
    g = member_client("grid1").get(f"/api/v1/reports/ledgers/{grid.code}/?year=2026")
    wb = load_workbook(io.BytesIO(g.content))
    assert wb["评比"].max_row - 2 == rated.filter(grid=grid).count()


# ---------------------------------------------------------------- item 5: the phone's feed
def test_the_phone_feed_carries_rosters_returns_petitions_pairings_and_calls(demo, member_client):
    from gridsvc.community.models import CampaignReturn, Pairing, Petition

    hh, need = needing_household()
    interpreter_with_account(hh, "interp-sce")
    case = report("neighbour.noise", household=hh).case
    grid = hh.unit.building.grid
    holder = Position.objects.held_at().get(grid=grid, position_type="grid_member")
    phone = member_client(holder.member.username)
    body = phone.get("/api/v1/community/changes/?limit=500").json()
    for key, model in (
        ("teams", TeamMembership),
        ("campaign_returns", CampaignReturn),
        ("petitions", Petition),
        ("pairings", Pairing),
    ):
        assert {row["id"] for row in body[key]} == set(
            model.objects.filter(grid=grid).values_list("pk", flat=True)
        ), key
    calls = [c for c in body["interpreter_calls"] if c["case"] == case.pk]
    assert len(calls) == 1 and calls[0]["language"] == "sce" and calls[0]["interpreter_name"]
    # nothing new since: the new streams are empty after the cursor
    again = phone.get(f"/api/v1/community/changes/?since={body['cursor']}").json()
    if not again["has_more"] and not body["has_more"]:
        assert again["interpreter_calls"] == [] and again["teams"] == []
