"""Background work queued in the change's own transaction, not in an on-commit hook.

A hook runs after the commit: if the database goes away just then (PgBouncer restarted, its
pool full — scripts/cluster_faults.py) the work is lost for good and the request answers 500
although its change was stored. pytest-django's test transaction never commits, so nothing
here runs on-commit hooks: what a test sees was written in the transaction itself.
"""

from __future__ import annotations

import pytest
from django.db import transaction
from procrastinate.contrib.django.models import ProcrastinateJob

from gridsvc.accounts.models import Member
from gridsvc.cases.models import TimeLimit
from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.services import hand_over
from gridsvc.layers import offline
from gridsvc.territory.models import Building
from gridsvc.visits.models import VisitTask


def _todo(name: str) -> list[ProcrastinateJob]:
    return list(ProcrastinateJob.objects.filter(task_name=name, status="todo"))


def test_a_time_limit_edit_queues_the_recompute_with_the_edit(demo):
    ProcrastinateJob.objects.filter(task_name="cases.recompute").delete()
    limit = TimeLimit.objects.get(category__code="neighbour", stage="handle", level="unit_head")
    limit.amount += 1
    limit.save()
    (job,) = _todo("cases.recompute")  # no on-commit hook ran: queued with the edit
    assert job.queue_name == "cases" and job.args["category_ids"] == [limit.category_id]
    # rolled back with the edit
    ProcrastinateJob.objects.filter(task_name="cases.recompute").delete()
    with pytest.raises(RuntimeError), transaction.atomic():
        limit.amount += 1
        limit.save()
        raise RuntimeError
    assert _todo("cases.recompute") == []


def test_a_territory_change_queues_one_package_refresh_with_the_change(demo):
    grid = demo.grids[0]
    offline.build_package(grid.id)
    ProcrastinateJob.objects.filter(task_name__startswith="layers.").delete()
    buildings = list(Building.objects.filter(grid=grid).order_by("code")[:2])
    # a change rolled back takes its job with it, and the next change still queues one
    with pytest.raises(RuntimeError), transaction.atomic():
        buildings[0].floors += 1
        buildings[0].save()
        assert len(_todo("layers.refresh_stale")) == 1
        raise RuntimeError
    assert _todo("layers.refresh_stale") == []
    buildings[0].refresh_from_db()
    with transaction.atomic():
        for b in buildings:  # two saves, one job
            b.floors += 1
            b.save()
    (job,) = _todo("layers.refresh_stale")
    assert job.queue_name == "layers" and offline.is_stale(grid.id)


def test_a_hand_over_moves_the_open_tasks_in_its_transaction(demo):
    pos = Position.objects.get(position_type=PositionType.GRID_MEMBER, grid=demo.grids[1])
    old = pos.member
    open_before = set(
        VisitTask.objects.filter(assigned_member=old, status__in=["open", "overdue"]).values_list(
            "id", flat=True
        )
    )
    assert open_before
    newcomer = Member.objects.create_user("grid2-new", password="x-long-password-1")
    # a hand-over that fails later in its transaction leaves the tasks where they were
    with pytest.raises(RuntimeError), transaction.atomic():
        hand_over(pos, newcomer, note="调岗")
        raise RuntimeError
    pos.refresh_from_db()
    assert pos.valid_to is None
    assert (
        set(
            VisitTask.objects.filter(
                assigned_member=old, status__in=["open", "overdue"]
            ).values_list("id", flat=True)
        )
        == open_before
    )
    hand_over(pos, newcomer, note="调岗")  # no on-commit hook runs here
    assert (
        set(
            VisitTask.objects.filter(
                assigned_member=newcomer, status__in=["open", "overdue"]
            ).values_list("id", flat=True)
        )
        == open_before
    )


def test_a_hand_over_gives_the_tasks_straight_to_the_new_holder(demo):
    """The old post is closed and the new one opened in one transaction: the tasks are re-picked
    once, for the new holder, not first handed up the chain to whoever stands in for the
    vacancy (who would be told, and called an interpreter for, work that is not theirs)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    pos = Position.objects.get(position_type=PositionType.GRID_MEMBER, grid=demo.grids[2])
    open_tasks = set(
        VisitTask.objects.filter(
            assigned_member=pos.member, status__in=["open", "overdue"]
        ).values_list("id", flat=True)
    )
    assert open_tasks
    newcomer = Member.objects.create_user("grid3-new", password="x-long-password-1")
    with CaptureQueriesContext(connection) as ctx:
        hand_over(pos, newcomer, note="调岗")
    task_writes = [
        q["sql"] for q in ctx.captured_queries if q["sql"].startswith('UPDATE "visits_visittask"')
    ]
    assert len(task_writes) == 1, "the tasks changed hands once"
    assert (
        set(
            VisitTask.objects.filter(
                assigned_member=newcomer, status__in=["open", "overdue"]
            ).values_list("id", flat=True)
        )
        == open_tasks
    )
