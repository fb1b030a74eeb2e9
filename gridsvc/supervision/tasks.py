"""Background work that keeps the background work going (queue ``supervision``).

- ``supervision.retry_stalled`` (every minute): jobs left in ``doing`` by a worker that died
  go back to their queue (see :mod:`gridsvc.supervision.worker`).
- ``supervision.calendar_ahead`` (daily): before a year the official calendar package does not
  know, declare it provisional and warn the street office (:func:`.clock.prepare_next_year`).
"""

from __future__ import annotations

from procrastinate import JobContext
from procrastinate.contrib.django import app

from .worker import retry_stalled_jobs


@app.periodic(cron="* * * * *", periodic_id="supervision-retry-stalled")
@app.task(
    name="supervision.retry_stalled",
    queue="supervision",
    queueing_lock="supervision.retry_stalled",
    pass_context=True,
)
async def retry_stalled(context: JobContext, timestamp: int) -> list[int]:
    """Every minute: retry the jobs of workers that stopped sending heartbeats."""
    return await retry_stalled_jobs(context.app)


@app.periodic(cron="20 8 * * *", periodic_id="supervision-calendar-ahead")
@app.task(
    name="supervision.calendar_ahead",
    queue="supervision",
    queueing_lock="supervision.calendar_ahead",
    pass_context=False,
)
def calendar_ahead(timestamp: int) -> int:
    """Daily: in December, declare next year provisional (statutory holidays) if the official
    calendar package does not know it, and warn the street office once (inbox)."""
    from .clock import prepare_next_year

    return prepare_next_year()
