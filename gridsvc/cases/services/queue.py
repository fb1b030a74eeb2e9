"""The street's dispatch queue 派遣队列: unrouted, overdue and flagged cases."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from ..models import (
    OPEN_STATUSES,
    RUNNING_STATUSES,
    Card,
    Case,
    Status,
)

S = Status


def dispatch_queue(qs: QuerySet[Case], kind: str, now: datetime | None = None) -> QuerySet[Case]:
    """The street's dispatch queue: unrouted, overdue, flagged (or all of them)."""
    now = now or timezone.now()
    unrouted = Q(status=S.REPORTED)
    overdue = Q(status__in=RUNNING_STATUSES) & (Q(due_at__lt=now) | Q(card=Card.RED))
    flagged = Q(status__in=OPEN_STATUSES) & (
        Q(ethnic_religious=True)
        | Q(group_incident=True)
        | Q(petition_risk=True)
        | Q(supervised_at__isnull=False)
        | Q(card__in=[Card.YELLOW, Card.RED])
    )
    cond = {"unrouted": unrouted, "overdue": overdue, "flagged": flagged}.get(kind)
    if cond is None:
        cond = unrouted | overdue | flagged
    return qs.filter(cond).order_by("due_at", "reported_at")
