"""Background work for assistance applications (procrastinate).

- ``assistance.check`` runs at a stage's reminder time (临期, 80% of the stage, as a case's
  yellow card) and at its deadline (both queued with the change that set them);
- ``assistance.sweep`` runs every ten minutes and catches up on every application past
  either if the worker was down. Both remind once and escalate once per deadline
  (:func:`services.apply_clock`).
- ``assistance.daily`` (08:30) reminds of re-checks (复核) due within a month or overdue, once
  per re-check date (:func:`services.recheck_reminders`).
"""

from __future__ import annotations

from procrastinate.contrib.django import app

from . import services


@app.task(name="assistance.check", queue="assistance", pass_context=False)
def check(application_id: int) -> str:
    """Apply the clock to one application."""
    return services.apply_clock(application_id)


@app.periodic(cron="*/10 * * * *", periodic_id="assistance-sweep")
@app.task(
    name="assistance.sweep",
    queue="assistance",
    queueing_lock="assistance.sweep",
    pass_context=False,
)
def sweep(timestamp: int) -> dict[str, int]:
    """Every ten minutes: remind of and escalate every overdue application."""
    return services.sweep()


@app.periodic(cron="30 8 * * *", periodic_id="assistance-daily")
@app.task(
    name="assistance.daily",
    queue="assistance",
    queueing_lock="assistance.daily",
    pass_context=False,
)
def daily(timestamp: int) -> int:
    """Every morning: remind of 复核 (低保 yearly re-checks) due within a month or overdue."""
    return services.recheck_reminders()
