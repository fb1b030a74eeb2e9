"""Supervision (督办) and working-time clocks.

Time limits are stated in natural days, working days or working hours. Working days follow
the official PRC calendar (the ``chinesecalendar`` package) with its holidays and adjusted
working weekends (调休), overridden by a table the street can edit (:class:`CalendarDay`), and
for years the package does not know yet, a year the street has declared (:class:`CalendarYear`)
— a deadline in an undeclared, unknown year is an error, never a silent guess. A declared
year is *provisional* until the State Council's schedule is entered: its weekends rest and the
statutory holidays fixed in law (元旦, 春节, 清明, 劳动节, 端午, 中秋, 国庆, with 补假 for those
falling on a weekend) rest too; see :func:`gridsvc.supervision.clock.statutory_holidays`.
Working hours are per street (:class:`WorkingHours`, e.g. 8:30–12:00 and 14:30–18:00).
"""

from __future__ import annotations

from django.db import models


class CalendarDay(models.Model):
    """One day whose status the street sets by hand (a local holiday, an adjusted workday)."""

    street = models.ForeignKey(
        "territory.Street",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        help_text="empty = every street",
        related_name="+",
    )
    date = models.DateField()
    is_workday = models.BooleanField()
    note = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(fields=["street", "date"], name="calendar_day_unique"),
            models.UniqueConstraint(
                fields=["date"],
                condition=models.Q(street__isnull=True),
                name="calendar_day_unique_all_streets",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.date} {'班' if self.is_workday else '休'} {self.note}"


class CalendarYear(models.Model):
    """A year the official calendar package does not know yet, declared by the street.

    ``provisional`` (暂定, the default): weekends and the statutory holidays fixed in law rest,
    everything else works, except the CalendarDay rows. Once the State Council's schedule
    (放假安排, with its 调休) is entered as CalendarDay rows, clear ``provisional``: then only
    weekends and the table count. When the package learns the year, the package is used.
    """

    street = models.ForeignKey(
        "territory.Street", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    year = models.PositiveSmallIntegerField()
    note = models.CharField(max_length=128, blank=True)
    provisional = models.BooleanField(
        default=True,
        help_text="暂定: statutory holidays fixed in law are applied; clear it once the "
        "official schedule (放假安排, 调休) is entered as calendar days",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["street", "year"], name="calendar_year_unique")
        ]

    def __str__(self) -> str:
        return f"{self.year}{' (暂定)' if self.provisional else ''}"


class WorkingHours(models.Model):
    """A street's office hours: a list of [start, end] local times, e.g. 08:30–12:00."""

    street = models.OneToOneField(
        "territory.Street", on_delete=models.CASCADE, related_name="working_hours"
    )
    periods = models.JSONField(default=list, help_text='e.g. [["08:30","12:00"],["14:30","18:00"]]')

    def __str__(self) -> str:
        return ", ".join(f"{a}–{b}" for a, b in self.periods)


class InboxMessage(models.Model):
    """A message in a member's inbox (消息): new case, yellow/red card, escalation, send-back
    result, extension decision. Delivered to phones through the change feed."""

    class Kind(models.TextChoices):
        NEW_CASE = "new_case", "新案件"
        YELLOW_CARD = "yellow_card", "黄牌督办"
        RED_CARD = "red_card", "红牌督办"
        ESCALATION = "escalation", "升级"
        SEND_BACK = "send_back", "回退结果"
        EXTENSION = "extension", "延期审批"
        SUPERVISION = "supervision", "督办单"
        OTHER = "other", "其他"

    member = models.ForeignKey("accounts.Member", on_delete=models.CASCADE, related_name="inbox")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(
        null=True, blank=True, help_text="sent by the notifier (SMS/webhook); never sent twice"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["member", "created_at"])]

    def __str__(self) -> str:
        return f"{self.member}: {self.title}"


class AssessmentScheme(models.Model):
    """Weights and grade thresholds of the assessment score, kept as data (考核办法).

    ``weights`` maps figure names to weights (e.g. on_time_handling_rate 60, closure_rate 30,
    one_minus_rework_rate 10); ``grades`` lists [grade, minimum score] from best to worst.
    """

    name = models.CharField(max_length=64, unique=True)
    weights = models.JSONField()
    grades = models.JSONField()
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name
