"""Background work (procrastinate): visit task generation and status updates.

``visits.daily`` runs every day at 00:20 (Asia/Shanghai is the server's TIME_ZONE): it makes
the tasks for the periods around today (idempotent: running twice creates nothing new) and
moves open tasks past their window to overdue and undone ones past period end + grace to
missed — the household visit tasks and the religious venues' joint visits (VenueTask,
:func:`gridsvc.community.venues.update_venue_statuses`) alike. If the worker was down it
catches up on the next run (statuses are computed from dates, not from missed ticks).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.utils import timezone
from procrastinate.contrib.django import app

from gridsvc.community.venues import update_venue_statuses

from . import services


def run_daily(today: date | None = None) -> dict[str, Any]:
    """Generate this period's tasks (and next week's, venue tasks included) and update the
    statuses of the household tasks and the venue tasks (``venue_overdue``, ``venue_missed``)."""
    today = today or services.local_today()
    generated = services.generate_tasks(today, today + timedelta(days=7))
    statuses = services.update_statuses(today)
    return {"generated": generated.as_dict(), **statuses, **update_venue_statuses(today)}


@app.periodic(cron="20 0 * * *", periodic_id="visits-daily")
@app.task(name="visits.daily", queue="visits", queueing_lock="visits.daily", pass_context=False)
def daily(timestamp: int) -> dict:
    """Periodic entry point; ``timestamp`` is the scheduled tick (seconds since the epoch)."""
    when = datetime.fromtimestamp(timestamp, tz=timezone.get_current_timezone())
    return run_daily(timezone.localdate(when))


@app.task(name="visits.generate", queue="visits")
def generate(start: str, end: str) -> dict:
    """Generate tasks for a span on demand (e.g. enqueued by the admin)."""
    return services.generate_tasks(date.fromisoformat(start), date.fromisoformat(end)).as_dict()
