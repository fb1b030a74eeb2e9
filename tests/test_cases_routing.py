"""Routing a report: every level, vacancies, leave, shared edges, outside every grid, flags."""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import Point

from gridsvc.cases import services
from gridsvc.cases.models import Case, CaseEvent, Status
from gridsvc.chain.models import Position
from gridsvc.chain.services import LEVEL_BY_NAME
from gridsvc.supervision.models import InboxMessage
from gridsvc.territory.models import Building, Household, Unit

from .cases_helpers import building, category, member, point_on_shared_edge, report

pytestmark = pytest.mark.django_db


def _held_unit():
    return (
        Unit.objects.filter(
            pk__in=Position.objects.held_at()
            .filter(position_type="unit_head", on_leave=False)
            .values("unit"),
            building__compound__isnull=False,
        )
        .order_by("id")
        .first()
    )


@pytest.mark.parametrize(
    "code,level",
    [
        ("neighbour.noise", "unit_head"),
        ("neighbour.parking", "building_head"),
        ("property", "property_manager"),
        ("wages", "community_cadre"),
    ],
)
def test_starting_level_comes_from_the_category_rule(demo, code, level):
    unit = _held_unit()
    hh = unit.households.first()
    # make every level of this unit's chain held and at work, so the case lands where it starts
    case = report(code, household=hh).case
    assert case.status == Status.ASSIGNED
    assert case.level == level, case.route_reason
    holder = Position.objects.held_at().filter(position_type=level, member=case.handler).first()
    assert holder is not None, "the handler holds the level the case landed at"
    assert case.chain and case.chain[0]["level_name"] == "household_head"
    assert case.grid_id == hh.unit.building.grid_id


def test_each_level_of_the_chain_can_receive_a_case(demo):
    """Start a case at each level in turn (changing the rule as data) and see it land there."""
    unit = _held_unit()
    hh = unit.households.first()
    cat = category("neighbour")
    landed = []
    for level in (
        "unit_head",
        "building_head",
        "owners_committee",
        "property_manager",
        "community_cadre",
        "mediation_committee",
        "street_dispatcher",
    ):
        cat.start_level = level
        cat.save()
        c = services.report_case(reporter=None, category=cat, title=level, household=hh).case
        landed.append(c.level)
        assert c.handler_id is not None
    assert landed[0] == "unit_head" and landed[-1] == "street_dispatcher"
    assert landed == sorted(landed, key=lambda n: LEVEL_BY_NAME[n].index)


def test_vacant_building_head_is_skipped_and_the_reason_is_stored(demo):
    b5 = building("B005")  # the demo's vacant building-head post
    case = report("neighbour.parking", building=b5).case
    assert case.level != "building_head"
    assert "楼长 skipped (vacant)" in case.route_reason
    route = CaseEvent.objects.get(case=case, kind="route")
    assert route.data["walked"][0] == "building_head"


def test_building_head_on_leave_is_skipped(demo):
    b9 = building("B009")
    case = report("neighbour.parking", building=b9).case
    assert "楼长 skipped (on_leave)" in case.route_reason
    assert case.handler != Position.objects.get(position_type="building_head", building=b9).member


def test_point_inside_a_building_routes_by_the_covering_building(demo):
    b = building("B012")
    case = report("neighbour.parking", location=b.footprint.point_on_surface).case
    assert case.building_id == b.pk and case.located_by == "covering_building"


def test_point_on_a_shared_grid_edge_goes_to_the_lowest_code(demo):
    g1, g2 = demo.grids[0], demo.grids[1]
    p = point_on_shared_edge(g1, g2)
    assert g1.boundary.covers(p) and g2.boundary.covers(p)
    first = report("wages", location=p).case
    again = report("wages", location=Point(p.x, p.y, srid=4326)).case
    assert first.grid_id == again.grid_id == min((g1, g2), key=lambda g: g.code).pk


def test_point_outside_every_grid_waits_in_the_street_queue_with_the_nearest_grid(demo):
    east = max(g.boundary.extent[2] for g in demo.grids)
    p = Point(east + 0.01, demo.grids[0].boundary.centroid.y, srid=4326)
    case = report("neighbour.noise", location=p).case
    assert case.status == Status.REPORTED and case.grid_id is None and case.handler_id is None
    assert case.suggested_grid_id is not None
    assert case.street_id == demo.street.pk, "the street desk sees it"
    assert "outside every grid" in case.route_reason
    queue = services.dispatch_queue(Case.objects.all(), "unrouted")
    assert case in queue
    assert InboxMessage.objects.filter(member__username="street", object_id=str(case.pk)).exists()


def test_ethnic_religious_flag_starts_at_the_cadre_and_notifies_the_desk(demo):
    hh = Household.objects.filter(unit__building__grid=demo.grids[0]).first()
    case = report("neighbour.noise", household=hh, flags=["ethnic_religious"]).case
    assert LEVEL_BY_NAME[case.level].index >= LEVEL_BY_NAME["community_cadre"].index
    desk = (
        Position.objects.held_at()
        .filter(position_type="ethnic_affairs_desk")
        .values_list("member_id", flat=True)
    )
    assert desk, "the demo street has an ethnic-affairs desk"
    assert InboxMessage.objects.filter(member_id__in=desk, object_id=str(case.pk)).exists()


def test_duplicates_are_suggested_and_a_case_can_be_merged(demo):
    hh = Household.objects.filter(unit__building__code__endswith="B002").first()
    first = report("neighbour.leak", household=hh).case
    second = report("neighbour.leak", household=hh)
    assert first in second.duplicates
    other_category = report("neighbour.noise", household=hh)
    assert first not in other_category.duplicates
    far = report(
        "neighbour.leak", building=Building.objects.exclude(grid=hh.unit.building.grid).first()
    )
    assert first not in far.duplicates
    merged = services.act(second.case.pk, "merge", member("street"), data={"into": first.pk})
    assert merged.status == Status.MERGED and merged.merged_into_id == first.pk
    assert first.events.filter(kind="merged_in").exists()


def test_report_needs_a_place(demo):
    with pytest.raises(services.CaseError) as err:
        services.report_case(reporter=None, category=category("neighbour"), title="x")
    assert err.value.field == "location"
