"""Visit rules → tasks: generation (idempotent), statuses, reassignment, the worker task."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from gridsvc.accounts.models import Member
from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.services import hand_over
from gridsvc.territory.models import Household, Resident
from gridsvc.visits import tasks as worker
from gridsvc.visits.models import VisitRule, VisitTask
from gridsvc.visits.services import generate_tasks, update_statuses

pytestmark = pytest.mark.django_db
TZ = ZoneInfo("Asia/Shanghai")


def test_seeded_rules_cover_the_design_groups(demo):
    rules = {r.target_group: r for r in VisitRule.objects.all()}
    assert rules["community_correction"].frequency == "monthly"
    assert rules["help_education"].frequency == "monthly"
    assert rules["hardship"].frequency == "monthly"
    assert "elderly_alone" in rules
    assert rules["all_households"].frequency == "yearly"


def test_generation_makes_one_task_per_target_household_and_is_idempotent(demo):
    call_command("generate_visit_tasks", "--period", "2026-12", verbosity=0)
    dec = VisitTask.objects.filter(period_start=date(2026, 12, 1))
    correction = Resident.objects.filter(tags__contains=["community_correction"])
    expected = correction.values("household").distinct().count()
    assert dec.filter(rule__code="community-correction-monthly").count() == expected > 0
    hardship_households = (
        Resident.objects.filter(tags__contains=["hardship"]).values("household").distinct().count()
    )
    assert dec.filter(rule__code="hardship-monthly").count() == hardship_households
    total = VisitTask.objects.count()

    call_command("generate_visit_tasks", "--period", "2026-12", verbosity=0)
    assert VisitTask.objects.count() == total, "running twice makes no duplicates"
    again = generate_tasks(date(2026, 12, 1), date(2026, 12, 31))
    assert again.created == 0


def test_tasks_go_to_the_grid_member_of_the_households_grid(demo):
    generate_tasks(date(2026, 12, 1))
    task = VisitTask.objects.filter(
        rule__code="community-correction-monthly", period_start=date(2026, 12, 1)
    ).first()
    grid = task.household.unit.building.grid
    holder = Position.objects.get(position_type="grid_member", grid=grid, valid_to__isnull=True)
    assert task.assigned_member_id == holder.member_id
    assert task.assigned_level == "grid_member"


def test_vacant_building_head_climbs_the_chain(demo):
    """Building B005's head post is vacant: its elderly-alone tasks go further up."""
    generate_tasks(date(2026, 12, 1))
    vacant = VisitTask.objects.filter(
        rule__code="elderly-alone-monthly",
        period_start=date(2026, 12, 1),
        household__unit__building__code__endswith="B005",
    )
    for t in vacant:
        assert t.assigned_level != "building_head"
        assert t.assigned_member_id is not None


def test_statuses_open_overdue_missed(demo):
    generate_tasks(date(2026, 12, 1))
    dec = VisitTask.objects.filter(
        rule__code="community-correction-monthly", period_start=date(2026, 12, 1)
    )
    assert set(dec.values_list("status", flat=True)) == {"open"}
    update_statuses(date(2026, 12, 21))  # window of 20 days has passed
    assert set(dec.values_list("status", flat=True)) == {"overdue"}
    update_statuses(date(2027, 1, 5))  # period end + 5 days grace has not passed yet
    assert set(dec.values_list("status", flat=True)) == {"overdue"}
    update_statuses(date(2027, 1, 6))
    assert set(dec.values_list("status", flat=True)) == {"missed"}


def test_the_worker_task_generates_and_updates(demo):
    tick = int(datetime(2026, 12, 2, 0, 20, tzinfo=TZ).timestamp())
    first = worker.daily(tick)
    assert first["generated"]["created"] > 0
    count = VisitTask.objects.count()
    second = worker.daily(tick)
    assert second["generated"]["created"] == 0
    assert VisitTask.objects.count() == count


def test_tasks_follow_a_hand_over(demo, django_capture_on_commit_callbacks):
    pos = Position.objects.get(position_type=PositionType.GRID_MEMBER, grid=demo.grids[0])
    open_before = VisitTask.objects.filter(
        assigned_member=pos.member, status__in=["open", "overdue"]
    ).count()
    assert open_before > 0
    newcomer = Member.objects.create_user("grid1-new", password="x-long-password-1")
    with django_capture_on_commit_callbacks(execute=True):
        hand_over(pos, newcomer, note="调岗")
    assert (
        VisitTask.objects.filter(assigned_member=newcomer, status__in=["open", "overdue"]).count()
        == open_before
    )
    assert not VisitTask.objects.filter(
        assigned_member=pos.member, status__in=["open", "overdue"]
    ).exists()
    # done tasks keep who did them
    assert VisitTask.objects.filter(assigned_member=pos.member, status="done").exists()


def test_demo_visits_are_consistent_with_rules(demo):
    """Every demo visit closed a task of its household, done by the task's assignee."""
    done = VisitTask.objects.filter(status="done").select_related("done_by")
    assert done.count() > 2000
    for t in done[::97]:
        assert t.done_by.household_id == t.household_id
        assert t.period_start <= t.done_by.client_time.astimezone(TZ).date() <= t.period_end
    assert VisitTask.objects.filter(status="missed").exists()
    assert VisitTask.objects.filter(status="overdue").exists()
    households = Household.objects.count()
    assert (
        VisitTask.objects.filter(rule__code="all-households-yearly", period="2026").count()
        == households
    )
