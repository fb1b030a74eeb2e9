"""The 五位一体 chain: levels, vacancies, leave, and history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.services import LEVELS, chain_for, hand_over, holders_at
from gridsvc.territory.models import Building, Household, Unit

pytestmark = pytest.mark.django_db


def _statuses(chain):
    return {s.level_name: s.status for s in chain.steps}


def test_chain_for_a_demo_household_has_every_level_in_order(demo):
    hh = Household.objects.filter(unit__building__compound__code__endswith="C01").first()
    chain = chain_for(household=hh)
    assert [s.level for s in chain.steps] == list(range(len(LEVELS)))
    assert [s.level_name for s in chain.steps] == [
        "household_head",
        "unit_head",
        "building_head",
        "owners_committee",
        "property_manager",
        "community_cadre",
        "mediation_committee",
        "street_dispatcher",
    ]
    assert chain.steps[0].status == "resident" and chain.steps[0].holders[0].name == hh.head.name
    assert chain.steps[5].object_id == hh.unit.building.grid_id
    assert chain.steps[-1].can_act


def test_chain_for_every_demo_household_resolves(demo):
    for hh in Household.objects.select_related("unit__building", "head")[::50]:
        chain = chain_for(household=hh)
        assert chain.location.grid is not None
        assert chain.active(), "some level always can act (the street desk at least)"


def test_vacant_unit_head_is_skipped(demo):
    unit = Unit.objects.exclude(
        pk__in=Position.objects.filter(position_type="unit_head").values("unit")
    ).first()
    assert unit is not None, "the demo has unit-head vacancies"
    chain = chain_for(unit=unit)
    assert _statuses(chain)["unit_head"] == "vacant"
    step, walked = chain.first_active_from("unit_head")
    assert walked[0].status == "vacant"
    assert step.level > 1


def test_member_on_leave_is_skipped_and_next_level_acts(demo):
    b = Building.objects.get(code__endswith="B009")  # the demo's building head on sick leave
    pos = Position.objects.get(position_type="building_head", building=b)
    assert pos.on_leave
    chain = chain_for(building=b)
    assert _statuses(chain)["building_head"] == "on_leave"
    step, walked = chain.first_active_from("building_head")
    assert [w.level_name for w in walked][0] == "building_head"
    assert step.level_name in {"owners_committee", "property_manager", "community_cadre"}
    pos.on_leave = False
    pos.save()
    step, _ = chain_for(building=b).first_active_from("building_head")
    assert step.level_name == "building_head" and step.primary.member_id == pos.member_id


def test_building_outside_any_compound_skips_compound_levels(demo):
    b = Building.objects.filter(compound__isnull=True).first()
    st = _statuses(chain_for(building=b))
    assert st["owners_committee"] == "no_object" and st["property_manager"] == "no_object"


def test_position_handed_over_keeps_history(demo):
    b = Building.objects.get(code__endswith="B003")  # handed over on 2026-06-01
    before = datetime(2026, 3, 1, tzinfo=UTC)
    after = datetime(2026, 7, 1, tzinfo=UTC)
    old = holders_at(PositionType.BUILDING_HEAD, b, before)
    new = holders_at(PositionType.BUILDING_HEAD, b, after)
    assert len(old) == 1 and len(new) == 1
    assert old[0].member.username == "bh-003-old" and new[0].member.username == "bh-003"
    assert chain_for(building=b, when=before).steps[2].holders[0].name == str(old[0].member)


def test_hand_over_closes_old_and_opens_new(demo):
    b = Building.objects.get(code__endswith="B001")
    pos = Position.objects.get(position_type="building_head", building=b, valid_to__isnull=True)
    newcomer = Member.objects.create(username="newhead", display_name="新楼长")
    t = timezone.now()
    hand_over(pos, newcomer, when=t)
    assert holders_at("building_head", b, t - timedelta(seconds=1))[0].member_id == pos.member_id
    assert holders_at("building_head", b, t + timedelta(seconds=1))[0].member == newcomer
    pos.refresh_from_db()
    assert pos.valid_to == t


def test_vacant_grid_cadre_falls_to_community_mediation(demo):
    grid4 = demo.grids[3]
    b = Building.objects.filter(grid=grid4, compound__code__endswith="C04").first()
    chain = chain_for(building=b)
    assert _statuses(chain)["community_cadre"] == "vacant"
    step, walked = chain.first_active_from("community_cadre")
    assert step.level_name == "mediation_committee"
    assert [w.status for w in walked] == ["vacant", "active"]


def test_position_needs_exactly_one_target(demo):
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError, transaction

    m = Member.objects.get(username="grid1")
    p = Position(position_type="grid_member", member=m)
    with pytest.raises(ValidationError):
        p.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        Position.objects.create(position_type="grid_member", member=m)


def test_who_may_hand_a_post_over(demo):
    """交接 by a manager: the street desk any post of the street, a grid's cadre only the
    field posts of their grid (not their own cadre post, not another grid's), nobody else."""
    from gridsvc.chain.services import may_hand_over

    member_post = Position.objects.held_at().get(
        member__username="grid1", position_type="grid_member"
    )
    cadre_post = Position.objects.held_at().get(
        member__username="cadre1", position_type="community_cadre"
    )
    head_post = (
        Position.objects.held_at()
        .filter(position_type="building_head", building__grid=demo.grids[0])
        .first()
    )
    street, cadre1, cadre6, grid2 = (
        Member.objects.get(username=u) for u in ("street", "cadre1", "cadre6", "grid2")
    )
    assert may_hand_over(street, member_post) and may_hand_over(street, cadre_post)
    assert may_hand_over(cadre1, member_post) and may_hand_over(cadre1, head_post)
    assert not may_hand_over(cadre1, cadre_post), "a cadre does not hand over a cadre post"
    assert not may_hand_over(cadre6, member_post), "another grid's cadre"
    assert not may_hand_over(grid2, member_post)
    # on leave: no authority
    Position.objects.filter(member=street, position_type="street_dispatcher").update(on_leave=True)
    assert not may_hand_over(street, member_post)


def test_the_household_level_is_called_hu_zhang_not_jia_zhang(demo, member_client):
    """The seeds' 单元长包家长 means the head of a household, but 家长 reads as "parent" to a
    dispatcher: the level is shown as 户长, in the chain answer and the case level choices."""
    from gridsvc.cases.models import Case

    hh = Household.objects.filter(unit__building__grid=demo.grids[0]).first()
    r = member_client("street").get(f"/api/v1/chain/?household={hh.pk}")
    assert r.status_code == 200, r.content
    labels = {s["level_name"]: s["level_label"] for s in r.json()["steps"]}
    assert labels["household_head"] == "户长"
    assert dict(Case._meta.get_field("level").choices)["household_head"] == "户长"
