"""Running the background worker so that it never stops silently (后台任务不静默停止).

``manage.py worker`` runs procrastinate's worker with gridsvc's rules:

- every worker writes a heartbeat (procrastinate's ``procrastinate_workers`` table) every
  ``GRIDSVC_WORKER_HEARTBEAT`` seconds (default 10); ``/health`` reads it
  (:mod:`gridsvc.supervision.health`);
- a job left in ``doing`` by a worker that died (killed, OOM, machine lost) is *stalled* once its
  worker has sent no heartbeat for ``GRIDSVC_WORKER_STALLED`` seconds (default 30): it is put
  back in the queue when a worker starts and every minute after (the periodic task
  ``supervision.retry_stalled``). Every gridsvc job is safe to run twice;
- when the database goes away (a restart, a failover) procrastinate stops the worker; this
  command then exits with status 1 (procrastinate's own command exits 0), so the supervisor —
  ``scripts/worker.sh`` in ``make demo``, systemd (``deploy/gridsvc-worker.service``) in
  production — starts it again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import procrastinate

log = logging.getLogger("gridsvc.worker")


def heartbeat_seconds() -> float:
    """How often a worker writes its heartbeat."""
    return float(os.environ.get("GRIDSVC_WORKER_HEARTBEAT", "10"))


def stalled_seconds() -> float:
    """After how long without a heartbeat a worker counts as dead and its jobs as stalled."""
    return float(os.environ.get("GRIDSVC_WORKER_STALLED", "30"))


async def retry_stalled_jobs(app: procrastinate.App) -> list[int]:
    """Put every job of a dead worker (no heartbeat for :func:`stalled_seconds`) back in its
    queue. Returns the ids of the jobs retried."""
    stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_seconds())
    retried = []
    for job in stalled:
        assert job.id is not None  # a job read back from the database has its id
        await app.job_manager.retry_job(job)
        retried.append(job.id)
        log.warning("retrying stalled job %s (%s): its worker stopped", job.id, job.task_name)
    return retried


class _StopWatch(logging.Handler):
    """Notices procrastinate stopping the worker because a side task (the LISTEN connection,
    the heartbeat, the periodic deferrer) failed — the database went away."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failure = ""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", "") in ("side_task_failed", "side_task_monitor_failed"):
            self.failure = record.getMessage()


class DatabaseGone(RuntimeError):
    """The worker's own check found the database unreachable."""


def _ping_database() -> None:
    """Open a fresh connection and run ``SELECT 1`` (raises when the database is unreachable)."""
    import psycopg
    from django.db import connection

    settings = connection.settings_dict
    conn = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        connect_timeout=5,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()


async def _watchdog(interval: float, failures_allowed: int = 2) -> None:
    """Check the database every ``interval`` seconds; raise :class:`DatabaseGone` after
    ``failures_allowed`` failed checks in a row. procrastinate's pool may keep retrying a lost
    database for a long time without stopping the worker: this makes the loss an exit."""
    failures = 0
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.wait_for(asyncio.to_thread(_ping_database), timeout=interval + 10)
            failures = 0
        except Exception as exc:  # any failure to reach the database counts
            failures += 1
            log.warning("database check failed (%d/%d): %s", failures, failures_allowed, exc)
            if failures >= failures_allowed:
                raise DatabaseGone(str(exc)) from exc


async def _run(
    app: procrastinate.App, queues: list[str] | None, wait: bool, polling: float
) -> None:
    async with app.open_async():
        await retry_stalled_jobs(app)
        worker = asyncio.create_task(
            app.run_worker_async(
                # None (every queue) is what Worker takes; WorkerOptions' TypedDict omits it
                queues=queues,  # type: ignore[arg-type]
                wait=wait,
                fetch_job_polling_interval=polling,
                update_heartbeat_interval=heartbeat_seconds(),
                stalled_worker_timeout=stalled_seconds(),
            )
        )
        dog = asyncio.create_task(_watchdog(max(1.0, heartbeat_seconds() / 2)))
        done, _ = await asyncio.wait({worker, dog}, return_when=asyncio.FIRST_COMPLETED)
        if dog in done:
            # The database is gone: a graceful stop would hang on it. Jobs in flight are
            # stalled and retried by the next worker (every job is safe to run twice).
            log.error("the database is unreachable (%s): exiting 1", dog.exception())
            logging.shutdown()
            os._exit(1)
        dog.cancel()
        worker.result()


def run_worker(queues: Iterable[str] | None = None, wait: bool = True, polling: float = 5.0) -> int:
    """Run the worker until it is asked to stop (0) or the database fails it (1)."""
    from procrastinate.contrib.django import app, django_connector

    watch = _StopWatch()
    plog = logging.getLogger("procrastinate")
    plog.addHandler(watch)
    queue_list = [q for q in (queues or []) if q] or None
    try:
        connector = app.connector
        if isinstance(connector, django_connector.DjangoConnector):
            connector = connector.get_worker_connector()
        with app.replace_connector(connector) as worker_app:
            asyncio.run(_run(worker_app, queue_list, wait, polling))
    except Exception:
        log.exception("the worker failed: exiting 1 for the supervisor to restart it")
        return 1
    finally:
        plog.removeHandler(watch)
    if watch.failure:
        log.error(
            "the worker stopped (%s): exiting 1 for the supervisor to restart it", watch.failure
        )
        return 1
    return 0
