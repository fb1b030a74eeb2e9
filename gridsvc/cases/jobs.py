"""Deferring the cases app's worker jobs by name (the jobs themselves: :mod:`.tasks`).

The rules in :mod:`.services` queue jobs through here, so they never import the tasks that
call them back (``services`` → ``jobs``, ``tasks`` → ``services``: no cycle). A job is named
as :mod:`.tasks` registers it (``cases.check``, ``cases.deliver``, ``cases.recompute``).

Bulk loaders (the demo, the city generator) queue nothing inside :func:`paused`: the worker's
every-minute sweep catches up on the deadlines afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from django.utils import timezone
from procrastinate.contrib.django import app

QUEUE = "cases"
CHECK = "cases.check"
DELIVER = "cases.deliver"
RECOMPUTE = "cases.recompute"

_paused: ContextVar[bool] = ContextVar("gridsvc_cases_jobs_paused", default=False)


@contextmanager
def paused() -> Iterator[None]:
    """Queue no case job inside the block (bulk loads); nested blocks are fine."""
    token = _paused.set(True)
    try:
        yield
    finally:
        _paused.reset(token)


def enabled() -> bool:
    """False inside :func:`paused`."""
    return not _paused.get()


def defer(name: str, *, schedule_at: datetime | None = None, **kwargs: Any) -> None:
    """Queue the job ``name`` with ``kwargs`` (in the caller's transaction)."""
    options: dict[str, Any] = {"queue": QUEUE}
    if schedule_at is not None:
        options["schedule_at"] = schedule_at
    app.configure_task(name, **options).defer(**kwargs)


def schedule_deadline_checks(case: Any, deliver: list[int] | None = None) -> None:
    """Enqueue clock checks for the case's yellow time and deadline (in the caller's
    transaction: if it rolls back, so do the jobs); ``deliver``: inbox message ids whose
    delivery job (``cases.deliver``) goes in the same statement."""
    if not enabled():
        return
    times = []
    if case.yellow_at and not case.card:
        times.append(case.yellow_at)
    if case.due_at:
        times.append(case.due_at)
    # all in one statement (procrastinate's batch defer), each check at its own time
    deferrer = app.configure_task(CHECK, queue=QUEUE)
    now = timezone.now()
    batch = [
        deferrer.make_new_job(case_id=case.pk, version=case.deadline_version).evolve(
            scheduled_at=max(when, now)
        )
        for when in times
    ]
    if deliver:
        batch.append(
            app.configure_task(DELIVER, queue=QUEUE).make_new_job(message_ids=list(deliver))
        )
    if batch:
        deferrer.job_manager.batch_defer_jobs(jobs=batch, connection=deferrer.connection)


def deliver_inbox_later(message_ids: list[int]) -> None:
    """Queue the inbox messages for the notifier (``cases.deliver``) in the messages' own
    transaction: the job commits with them or not at all. (Queued in an on-commit hook, a
    database that went away just after the commit — PgBouncer restarted, its pool full — lost
    the delivery for good and answered 500 to a request whose work was stored: found by
    scripts/cluster_faults.py.)"""
    if not enabled() or not message_ids:
        return
    defer(DELIVER, message_ids=list(message_ids))


def recompute_later(street_id: int | None = None, category_ids: list[int] | None = None) -> None:
    """Queue the recompute of stored deadlines (``cases.recompute``: a calendar or time-limit
    change, 日历/时限变更) in the change's own transaction: the job commits with the change or
    not at all. (Queued in an on-commit hook, a database that went away just after the commit
    lost the recompute for good — the open cases kept deadlines of the old rule — and answered
    500 to an edit that was stored; see :func:`deliver_inbox_later`.)"""
    defer(RECOMPUTE, street_id=street_id, category_ids=category_ids)
