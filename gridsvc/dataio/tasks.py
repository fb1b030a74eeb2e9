"""Background work for data imports (procrastinate, queue ``imports``).

- ``dataio.import_roster(run_id)``: a roster too large to import within the request
  (more than ``settings.ROSTER_SYNC_MAX_ROWS`` rows). Enqueued by
  :func:`gridsvc.dataio.roster.queue_import` in the same transaction that records the
  queued :class:`~gridsvc.reports.models.ImportRun`; the uploader polls the run for progress.
- ``dataio.import_boundaries(run_id)``: a real boundary import asked for through the API
  (``dry_run=false``), enqueued by :func:`gridsvc.dataio.boundaries.queue_boundary_import`.

The worker finds this module through :mod:`gridsvc.reports.tasks` (procrastinate imports the
``tasks`` module of every installed app; ``gridsvc.dataio`` is not an app).
"""

from __future__ import annotations

from procrastinate.contrib.django import app


@app.task(name="dataio.import_roster", queue="imports", pass_context=False)
def import_roster_job(run_id: int) -> dict:
    """Import one queued roster (see :func:`gridsvc.dataio.roster.run_queued_import`)."""
    from .roster import run_queued_import

    return run_queued_import(run_id)


@app.task(name="dataio.import_boundaries", queue="imports", pass_context=False)
def import_boundaries_job(run_id: int) -> dict:
    """Import one queued boundary file (see
    :func:`gridsvc.dataio.boundaries.run_queued_boundaries`)."""
    from .boundaries import run_queued_boundaries

    return run_queued_boundaries(run_id)
