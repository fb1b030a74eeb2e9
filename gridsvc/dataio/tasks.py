"""Background work for data imports (procrastinate, queue ``imports``).

- ``dataio.import_roster(run_id)``: a roster too large to import within the request
  (more than ``settings.ROSTER_SYNC_MAX_ROWS`` rows). Enqueued by
  :func:`queue_import` in the same transaction that records the queued
  :class:`~gridsvc.reports.models.ImportRun`; the uploader polls the run for progress.
- ``dataio.import_boundaries(run_id)``: a real boundary import asked for through the API
  (``dry_run=false``), enqueued by :func:`queue_boundary_import`.

A job killed mid-import (worker killed, OOM, machine lost) is retried by the stalled-job
recovery (:mod:`gridsvc.supervision.worker`) and finds its run ``running``: :func:`resume_run`
finishes it from what was committed (a boundary import commits its rows and its report in
one transaction) or puts it back to ``queued`` so the job imports it again (nothing of an
unfinished import was committed: the roster's rows, its report and the run's end commit
together, see :func:`gridsvc.dataio.roster.run_queued_import`). An advisory lock on the run,
held while it imports, keeps a retry off a run whose job is in fact still alive.

The worker finds this module through :mod:`gridsvc.reports.tasks` (procrastinate imports the
``tasks`` module of every installed app; ``gridsvc.dataio`` is not an app).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from procrastinate.contrib.django import app

from gridsvc.crypto import fernet
from gridsvc.reports.models import ImportRun

from .boundaries import QUEUE_OPTIONS, run_queued_boundaries
from .roster import run_queued_import

_LOCK_CLASS = 0x1D0  # pg_advisory_lock(class, run id): the run is being imported


@contextlib.contextmanager
def run_lock(run_id: int) -> Iterator[bool]:
    """Hold the run's advisory lock (session level) while the block runs; yields False when
    another live session holds it (the first job is still importing)."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, run_id])
        got = bool(cur.fetchone()[0])
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, run_id])


def resume_run(run_id: int) -> str | None:
    """A run left ``running`` by a killed job (call holding :func:`run_lock`): finished from
    its committed report when its import was applied, else put back to ``queued`` (nothing
    of it was committed) so it is imported again. Returns the run's status now."""
    with transaction.atomic():
        run = ImportRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != ImportRun.Status.RUNNING:
            return None if run is None else run.status
        if run.applied and (run.report or {}).get("applied"):  # committed: only the end is left
            run.status, run.phase = ImportRun.Status.DONE, "done"
            features = run.report.get("features")
            if features is not None:
                run.rows_total = run.rows_done = features
        else:  # nothing was committed: import it again
            run.status, run.phase, run.rows_done = ImportRun.Status.QUEUED, "queued", 0
            run.applied = False
        if run.status == ImportRun.Status.DONE:
            run.finished_at, run.upload = timezone.now(), None
        run.save()
        return run.status


def _run(run_id: int, work) -> dict:  # type: ignore[no-untyped-def]
    with run_lock(run_id) as mine:
        if not mine:  # the job that started it is alive and importing
            return {"run": run_id, "status": "running"}
        resume_run(run_id)
        return work(run_id)


@app.task(name="dataio.import_roster", queue="imports", pass_context=False)
def import_roster_job(run_id: int) -> dict:
    """Import one queued roster (see :func:`gridsvc.dataio.roster.run_queued_import`)."""
    return _run(run_id, run_queued_import)


@app.task(name="dataio.import_boundaries", queue="imports", pass_context=False)
def import_boundaries_job(run_id: int) -> dict:
    """Import one queued boundary file (see
    :func:`gridsvc.dataio.boundaries.run_queued_boundaries`)."""
    return _run(run_id, run_queued_boundaries)


# ---------------------------------------------------------------- queueing (the API's side)
def queue_import(path: str | Path, *, actor, dry_run: bool, file_name: str):  # type: ignore[no-untyped-def]
    """Record a queued roster import (the file encrypted on the run) and enqueue the worker
    job, both in one transaction: either both exist or neither."""
    with transaction.atomic():
        run = ImportRun.objects.create(
            kind=ImportRun.Kind.ROSTER,
            file_name=file_name[:255],
            actor=actor if getattr(actor, "pk", None) else None,
            dry_run=dry_run,
            status=ImportRun.Status.QUEUED,
            phase="queued",
            upload=fernet().encrypt(Path(path).read_bytes()),
            report={"file": file_name, "dry_run": dry_run},
        )
        import_roster_job.defer(run_id=run.pk)
    return run


def queue_boundary_import(
    path: str | Path,
    *,
    kind: str,
    actor,
    file_name: str,
    options: dict[str, Any],  # type: ignore[no-untyped-def]
) -> ImportRun:
    """Record a real (not dry-run) boundary import for the background worker: the file
    encrypted on the :class:`ImportRun`, the options in its report, and the worker job, all
    in one transaction (either both exist or neither). The uploader polls the run."""
    opts = {k: options.get(k) for k in QUEUE_OPTIONS if options.get(k) not in (None, "", {})}
    with transaction.atomic():
        run = ImportRun.objects.create(
            kind=kind,
            file_name=file_name[:255],
            actor=actor if getattr(actor, "pk", None) else None,
            dry_run=False,
            status=ImportRun.Status.QUEUED,
            phase="queued",
            upload=fernet().encrypt(Path(path).read_bytes()),
            report={"file": file_name, "kind": kind, "dry_run": False, "options": opts},
        )
        import_boundaries_job.defer(run_id=run.pk)
    return run
