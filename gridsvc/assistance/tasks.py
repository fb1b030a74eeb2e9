"""Background work for assistance applications (procrastinate).

- ``assistance.check`` runs at a stage's deadline (queued with the change that set it);
- ``assistance.sweep`` runs every ten minutes and catches up on every overdue application
  if the worker was down. Both remind once per deadline (:func:`services.apply_clock`).
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
