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
    batch = deadline_jobs(case, deliver)
    if batch:
        deferrer = app.configure_task(CHECK, queue=QUEUE)
        deferrer.job_manager.batch_defer_jobs(jobs=batch, connection=deferrer.connection)


def deadline_jobs(case: Any, deliver: list[int] | None = None) -> list[Any]:
    """The jobs :func:`schedule_deadline_checks` queues: a clock check at the case's yellow
    time and at its deadline (each at its own time), the delivery of ``deliver``."""
    times = []
    if case.yellow_at and not case.card:
        times.append(case.yellow_at)
    if case.due_at:
        times.append(case.due_at)
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
    return batch


def can_defer_in_statement() -> bool:
    """Whether :func:`defer_select` can be used: the jobs go through Django's connection
    (procrastinate's Django connector), so a caller's statement can queue them."""
    return hasattr(app.job_manager.connector.get_sync_connector(), "_wrap_json")


def defer_select(batch: list[Any]) -> tuple[str, Any]:
    """The SELECT that queues ``batch`` (procrastinate's own ``defer_jobs`` query, its one
    parameter positional, wrapped as its Django connector wraps it): for a caller that sends
    it with other work in one statement."""
    manager = app.job_manager
    kwargs = manager._defer_jobs_query_kwargs(jobs=batch)
    query = kwargs.pop("query").replace("%(jobs)s", "%s")
    wrapped = manager.connector.get_sync_connector()._wrap_json(kwargs)  # type: ignore[attr-defined]
    return query.strip().rstrip(";"), wrapped["jobs"]


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
