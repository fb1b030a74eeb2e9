"""Deferring the layers app's worker jobs by name (the jobs themselves: :mod:`.tasks`).

:mod:`.offline` and :mod:`.signals` queue builds through here, so they never import the
tasks that call them back (``offline`` → ``jobs``, ``tasks`` → ``offline``: no cycle).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from procrastinate import exceptions as pexc
from procrastinate.contrib.django import app

QUEUE = "layers"
BUILD_OFFLINE = "layers.build_offline"
REFRESH_STALE = "layers.refresh_stale"


def defer(name: str, *, queueing_lock: str | None = None, **kwargs: Any) -> bool:
    """Queue the job ``name`` in a savepoint: an already-queued job (queueing lock) is not an
    error and must not abort the caller's transaction. False when one was already queued."""
    options: dict[str, Any] = {"queue": QUEUE}
    if queueing_lock is not None:
        options["queueing_lock"] = queueing_lock
    try:
        with transaction.atomic():
            app.configure_task(name, **options).defer(**kwargs)
        return True
    except pexc.AlreadyEnqueued:
        return False


def enqueue_build(grid_id: int, crs: str = "wgs84") -> bool:
    """One queued job per grid: a job already waiting builds every queued package of the grid
    (other coordinate systems too), so a second request need not queue another."""
    kwargs: dict[str, Any] = {"grid_id": grid_id}
    if crs != "wgs84":
        kwargs["crs"] = crs
    return defer(BUILD_OFFLINE, queueing_lock=f"offline-{grid_id}", **kwargs)


def enqueue_refresh() -> bool:
    """Rebuild the stale packages (one job waiting at a time: ``layers.refresh_stale``)."""
    return defer(REFRESH_STALE, queueing_lock=REFRESH_STALE)
