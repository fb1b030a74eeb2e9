"""Background work for cases (procrastinate): deadline checks, cards, escalation, reminders.

- ``cases.check`` is enqueued in the same transaction as every change that sets a deadline,
  scheduled at the yellow-card time and at the deadline; it applies the clock to one case.
- ``cases.sweep`` runs every minute and applies the clock to every case whose time has come:
  if the worker was down, it catches up on its first run. Both take the case's row lock and
  decide from the stored deadline, so a case is escalated once per overdue deadline however
  many jobs run for it.
- ``cases.daily`` reminds of holds due for review and of mediation agreements whose 30-day
  window for court confirmation is closing.
- ``cases.deliver`` hands inbox messages to the outgoing notifier (SMS/webhook/log), each
  message once (``InboxMessage.delivered_at``).
- ``cases.recompute`` recomputes stored deadlines after a calendar or rule change (one case per
  transaction; a second run changes nothing more). A deadline set by a person is kept.

The rules queue these jobs by name through :mod:`.jobs` (never importing this module,
which imports them). Every job is safe to run twice: a job left in ``doing`` by a killed
worker is retried (:mod:`gridsvc.supervision.worker`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.utils import timezone
from procrastinate.contrib.django import app

from . import services
from .models import Case


@app.task(name="cases.check", queue="cases", pass_context=False)
def check(case_id: int, version: int = 0) -> str:
    """Apply the clock to one case (yellow card, red card and escalation)."""
    return services.apply_clock(case_id)


def sweep_once(now: datetime | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for case_id in services.due_for_clock(now):
        outcome = services.apply_clock(case_id, now)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


@app.periodic(cron="* * * * *", periodic_id="cases-sweep")
@app.task(name="cases.sweep", queue="cases", queueing_lock="cases.sweep", pass_context=False)
def sweep(timestamp: int) -> dict[str, int]:
    """Every minute: catch up on every case whose yellow or red time has passed."""
    return sweep_once()


def daily_reminders(today: date | None = None) -> dict[str, int]:
    """Reminders of holds due for review and of closing court-confirmation windows, in one
    transaction: a run killed half-way leaves no reminder behind, so its retry sends each
    reminder once."""
    from django.db import transaction

    with transaction.atomic():
        return _daily_reminders(today)


def _daily_reminders(today: date | None = None) -> dict[str, int]:
    from gridsvc.supervision.models import InboxMessage

    from .models import MediationRecord, Status

    today = today or timezone.localdate()
    held = 0
    for case in Case.objects.filter(status=Status.ON_HOLD, hold_until__lte=today):
        held += services.inbox(
            [case.handler_id, *services.level_above_members(case)],
            InboxMessage.Kind.OTHER,
            case,
            f"挂账复核到期 {case.number}: {case.title}",
        )
    window = 0
    for rec in MediationRecord.objects.filter(
        court_confirmation_applied=False,
        signed_on__lte=today - timedelta(days=23),
        signed_on__gt=today - timedelta(days=30),
    ).select_related("case"):
        window += services.inbox(
            [rec.mediator_id],
            InboxMessage.Kind.OTHER,
            rec.case,
            f"司法确认申请期限 {rec.court_confirmation_deadline}: {rec.case.number}",
            "调解协议生效后30日内,双方当事人可共同向人民法院申请司法确认",
        )
    return {"hold_reviews": held, "court_confirmation_reminders": window}


@app.periodic(cron="10 8 * * *", periodic_id="cases-daily")
@app.task(name="cases.daily", queue="cases", queueing_lock="cases.daily", pass_context=False)
def daily(timestamp: int) -> dict[str, int]:
    return daily_reminders()


@app.task(name="cases.deliver", queue="cases", pass_context=False)
def deliver(
    message_ids: list[int] | None = None, member_ids: list[int] | None = None, title: str = ""
) -> int:
    """Send inbox messages through the configured notifier (logging sender by default), each
    once.

    Safe to run twice (a retried job whose worker was killed, two workers): a message is sent
    while its row is locked and marked ``delivered_at`` in the same transaction, so a second run
    skips it. Only a kill in the instant between the gateway's answer and the commit can send
    one message again; its ``message_id`` goes with it for the gateway to drop the duplicate.
    """
    from django.db import transaction

    from gridsvc.accounts.models import Member
    from gridsvc.supervision.models import InboxMessage
    from gridsvc.supervision.notify import sender

    out = sender()
    if message_ids is None:  # a job queued by an earlier release (member ids and a title)
        sent = 0
        for m in Member.objects.filter(pk__in=member_ids or []):
            sent += bool(out.send({"member": m.pk, "phone": getattr(m, "phone", "")}, title, ""))
        return sent
    sent = 0
    for message_id in sorted(message_ids):
        with transaction.atomic():
            msg = (
                InboxMessage.objects.select_for_update(of=("self",))
                .select_related("member")
                .filter(pk=message_id, delivered_at__isnull=True)
                .first()
            )
            if msg is None:
                continue  # already delivered (or deleted)
            ok = out.send(
                {"member": msg.member_id, "phone": getattr(msg.member, "phone", "")},
                msg.title,
                "",
                {
                    "message_id": msg.pk,
                    "kind": msg.kind,
                    "object": f"{msg.object_type}:{msg.object_id}",
                },
            )
            if ok:
                msg.delivered_at = timezone.now()
                msg.save(update_fields=["delivered_at"])
                sent += 1
    return sent


@app.task(name="cases.recompute", queue="cases", pass_context=False)
def recompute(street_id: int | None = None, category_ids: list[int] | None = None) -> int:
    """Recompute stored deadlines after a calendar, office-hours or rule change."""
    return services.recompute_open_deadlines(street_id, category_ids)
