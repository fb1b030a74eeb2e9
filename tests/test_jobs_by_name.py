"""Jobs queued by name (gridsvc.cases.jobs, gridsvc.layers.jobs) land on the queue the worker
runs them from; a bulk load inside ``jobs.paused()`` queues none; every domain error is
answered by the one handler (api.errors)."""

from __future__ import annotations

import pytest
from procrastinate.contrib.django.models import ProcrastinateJob

from gridsvc.cases import jobs, services
from gridsvc.cases.models import Category, TimeLimit
from gridsvc.layers import jobs as layer_jobs
from gridsvc.supervision.models import InboxMessage

from .cases_helpers import report

pytestmark = pytest.mark.django_db


def _jobs(name: str) -> list[ProcrastinateJob]:
    return list(ProcrastinateJob.objects.filter(task_name=name, status="todo"))


def test_deadline_checks_and_deliveries_are_queued_by_name_outside_a_pause(
    demo, django_capture_on_commit_callbacks
):
    ProcrastinateJob.objects.filter(task_name__startswith="cases.").delete()
    TimeLimit.objects.create(
        category=Category.objects.get(code="neighbour.noise"),
        stage="accept",
        level="unit_head",
        amount=4,
        unit="natural_hours",
    )
    with django_capture_on_commit_callbacks(execute=True), jobs.paused():
        with jobs.paused():  # nested: still paused after the inner block
            pass
        paused_case = report().case
        services.inbox([paused_case.handler_id], InboxMessage.Kind.OTHER, paused_case, "t")
    assert paused_case.due_at is not None
    assert _jobs("cases.check") == [] and _jobs("cases.deliver") == []

    case = report().case
    checks = _jobs("cases.check")
    assert checks and {j.queue_name for j in checks} == {"cases"}
    assert {j.args["case_id"] for j in checks} == {case.pk}
    assert all(j.scheduled_at >= case.reported_at for j in checks)

    n = InboxMessage.objects.count()
    ProcrastinateJob.objects.filter(task_name="cases.deliver").delete()
    # queued in the messages' own transaction (no on-commit hook that could fail after it)
    services.inbox([case.handler_id], InboxMessage.Kind.OTHER, case, "test")
    assert InboxMessage.objects.count() == n + 1
    (deliver,) = _jobs("cases.deliver")
    assert deliver.queue_name == "cases"
    assert deliver.args["message_ids"] == [InboxMessage.objects.latest("id").pk]


def test_offline_builds_are_queued_by_name_once_per_grid(demo):
    ProcrastinateJob.objects.filter(task_name__startswith="layers.").delete()
    grid = demo.grids[0]
    assert layer_jobs.enqueue_build(grid.id) is True
    assert layer_jobs.enqueue_build(grid.id, "gcj02") is False  # one waiting job per grid
    (build,) = _jobs("layers.build_offline")
    assert (build.queue_name, build.queueing_lock) == ("layers", f"offline-{grid.id}")
    assert build.args == {"grid_id": grid.id}
    assert layer_jobs.enqueue_refresh() is True
    assert layer_jobs.enqueue_refresh() is False
    (refresh,) = _jobs("layers.refresh_stale")
    assert refresh.queue_name == "layers"
