"""Deferring the assistance worker jobs by name (the jobs: :mod:`.tasks`), as in
:mod:`gridsvc.cases.jobs`: a deadline check is queued in the same transaction as the change
that set the deadline. Inside :func:`gridsvc.cases.jobs.paused` (bulk loads) nothing is
queued; the sweep catches up."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from procrastinate.contrib.django import app

from gridsvc.cases import jobs as case_jobs

QUEUE = "assistance"
CHECK = "assistance.check"


def schedule_deadline_check(application: Any) -> None:
    """Queue ``assistance.check`` at the application's reminder time (临期, as a case's
    yellow card) and at its stage deadline."""
    if not case_jobs.enabled() or application.due_at is None:
        return
    now = timezone.now()
    times = [application.due_at]
    remind_at = getattr(application, "remind_at", None)
    if remind_at is not None and remind_at < application.due_at:
        times.insert(0, remind_at)
    for at in times:
        app.configure_task(CHECK, queue=QUEUE, schedule_at=max(at, now)).defer(
            application_id=application.pk
        )
