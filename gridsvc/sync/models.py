"""Records of the phone sync protocol (同步协议).

- :class:`IdempotencyRecord`: the first response to an unsafe request sent with an
  ``Idempotency-Key`` header, per member, kept for a day so a retry gets the same answer.
- :class:`VisitClock`: what the phone's clock said about a visit and what the server made of
  it (the phone's clock is not trusted; see :mod:`gridsvc.sync.clock`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class IdempotencyRecord(models.Model):
    """The outcome of one ``Idempotency-Key`` of one member (幂等记录).

    ``status`` is null while the first request is still running (a concurrent duplicate then
    gets 409 ``idempotency_in_progress``)."""

    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=2048, help_text="path and query string")
    body_hash = models.CharField(max_length=64, help_text="SHA-256 of the (inflated) body")
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["member", "key"], name="idempotency_member_key")
        ]

    def __str__(self) -> str:
        return f"{self.member_id} {self.method} {self.path} [{self.key}]"


class VisitClock(models.Model):
    """A visit's times as the phone gave them and as the server judged them.

    ``Visit.client_time`` holds the corrected time (phone time − offset); this row keeps the
    phone's own value, the phone's clock at upload (``X-Device-Time``), the receive time,
    the offset and a flag for implausible times (never a reason to refuse the visit)."""

    class Flag(models.TextChoices):
        NONE = "", "—"
        FUTURE = "future", "in the future (after correction)"
        BEFORE_TASK_WINDOW = "before_task_window", "before the task's period"
        TOO_OLD = "too_old", "more than a year before the upload"

    visit = models.OneToOneField(
        "visits.Visit", on_delete=models.CASCADE, primary_key=True, related_name="clock"
    )
    sent_time = models.DateTimeField(help_text="client_time as the phone sent it")
    device_time = models.DateTimeField(
        null=True, blank=True, help_text="the phone's clock when it sent the upload"
    )
    received_at = models.DateTimeField(help_text="server time when the upload arrived")
    offset_ms = models.BigIntegerField(
        null=True, blank=True, help_text="phone clock − server clock; null when not sent"
    )
    corrected = models.BooleanField(default=False, help_text="client_time was shifted")
    flag = models.CharField(max_length=24, choices=Flag.choices, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"clock of visit {self.visit_id}"
