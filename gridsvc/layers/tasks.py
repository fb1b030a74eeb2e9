"""Background work for map layers (procrastinate, queue ``layers``).

- ``layers.build_offline(grid_id, crs)``: build one grid's offline package in ``crs`` (and
  the grid's other packages that need it; enqueued when a phone first asks for it, one job
  per grid at a time: queueing lock ``offline-<grid>``).
- ``layers.refresh_stale``: rebuild every package whose grid's data changed; enqueued after a
  commit that changed territory or residents (signals, see :mod:`gridsvc.layers.signals`).
- ``layers.sweep`` (every 5 minutes): the same, plus purging expired tiles — catches up on
  changes the signals cannot see (bulk loads, raw SQL: the triggers logged them) or that were
  made while the worker was down.
"""

from __future__ import annotations

import logging

from django.db import transaction
from procrastinate import exceptions as pexc
from procrastinate.contrib.django import app

from . import offline, services

log = logging.getLogger(__name__)


@app.task(name="layers.build_offline", queue="layers", pass_context=False)
def build_offline(grid_id: int, crs: str = "wgs84") -> dict:
    try:
        package = offline.build_package(grid_id, crs)
    except Exception as exc:
        # recorded on the package (the phone sees "failed", not "queued" for ever); the
        # sweep tries again
        offline.OfflinePackage.objects.filter(grid_id=grid_id).update(
            status=offline.OfflinePackage.Status.FAILED, error=str(exc)[:2000]
        )
        raise
    return {"grid": grid_id, "crs": crs, "size": package.size, "etag": package.etag}


@app.task(
    name="layers.refresh_stale",
    queue="layers",
    queueing_lock="layers.refresh_stale",
    pass_context=False,
)
def refresh_stale() -> dict:
    return offline.refresh_stale()


@app.periodic(cron="*/5 * * * *", periodic_id="layers-sweep")
@app.task(name="layers.sweep", queue="layers", queueing_lock="layers.sweep", pass_context=False)
def sweep(timestamp: int) -> dict:
    result = offline.refresh_stale()
    result["tiles_purged"] = services.purge_expired_tiles()
    return result


def _defer(task, **kwargs) -> bool:  # type: ignore[no-untyped-def]
    """Defer in a savepoint: an already-queued job (queueing lock) is not an error and must not
    abort the caller's transaction."""
    try:
        with transaction.atomic():
            task.defer(**kwargs)
        return True
    except pexc.AlreadyEnqueued:
        return False


def enqueue_build(grid_id: int, crs: str = "wgs84") -> bool:
    """One queued job per grid: a job already waiting builds every queued package of the grid
    (other coordinate systems too), so a second request need not queue another."""
    kwargs: dict = {"grid_id": grid_id}
    if crs != "wgs84":
        kwargs["crs"] = crs
    return _defer(build_offline.configure(queueing_lock=f"offline-{grid_id}"), **kwargs)


def enqueue_refresh() -> bool:
    return _defer(refresh_stale)
