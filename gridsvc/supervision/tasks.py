"""Background work that keeps the background work going (queue ``supervision``).

- ``supervision.retry_stalled`` (every minute): jobs left in ``doing`` by a worker that died
  go back to their queue (see :mod:`gridsvc.supervision.worker`).
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
