"""Background work (procrastinate): forget Idempotency-Key answers older than their TTL."""

from __future__ import annotations

from procrastinate.contrib.django import app

from . import idempotency


@app.periodic(cron="40 * * * *", periodic_id="sync-purge-idempotency")
@app.task(
    name="sync.purge_idempotency",
    queue="sync",
    queueing_lock="sync.purge_idempotency",
    pass_context=False,
)
def purge_idempotency(timestamp: int) -> int:
    """Hourly: delete expired idempotency records; returns how many."""
    return idempotency.purge_expired()
