"""Background work for map layers (procrastinate, queue ``layers``).

- ``layers.build_offline(grid_id, crs)``: build one grid's offline package in ``crs`` (and
  the grid's other packages that need it; enqueued when a phone first asks for it, one job
  per grid at a time: queueing lock ``offline-<grid>``).
- ``layers.refresh_stale``: rebuild every package whose grid's data changed; enqueued after a
  commit that changed territory or residents (signals, see :mod:`gridsvc.layers.signals`).
- ``layers.sweep`` (every 5 minutes): the same, plus purging expired tiles — catches up on
  changes the signals cannot see (bulk loads, raw SQL: the triggers logged them) or that were
  made while the worker was down.

They are queued by name through :mod:`.jobs` (which never imports this module).
"""

from __future__ import annotations

import logging

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
