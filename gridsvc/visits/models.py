"""Field visits 走访: visit rules, due tasks, GPS-checked visit logs, daily reports.

- :class:`VisitRule` (走访规则) is data: which group (a resident tag such as 社区矫正
  community_correction, 两劳帮教 help_education, 困难家庭 hardship, 独居老人 elderly_alone, or
  every household) is visited how often, within which window, by which chain level, and
  whether jointly (联合走访, e.g. with a religious venue's representative).
- :class:`VisitTask` (走访任务) is one household due for a visit under a rule in a period;
  generated idempotently (unique rule + household + period start).
- :class:`Visit` (走访记录) is what a member logged on the phone: client UUID (idempotency
  key of the offline upload), client and server time, GPS with accuracy and its judgement,
  distance to the household's building (PostGIS, geography) and the far-off flag.
- :class:`DailyReport` (一日一报): one per member per day, versioned; its items carry ids so
  that a stale device's upload is merged by item, never replacing items sent earlier from
  another device (:func:`save_daily_report`).
- :class:`ChangeLog`: household/resident changes for the phone's change feed (territory
  models have no ``updated_at``; this app keeps its own log, fed by signals).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from django.conf import settings
from django.contrib.gis.db import models
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

SRID = 4326


class Frequency(models.TextChoices):
    WEEKLY = "weekly", "每周"
    MONTHLY = "monthly", "每月"
    QUARTERLY = "quarterly", "每季度"
    YEARLY = "yearly", "每年"


# Who visits: a chain level (chain.services.LEVELS names) or the grid member 网格员.
VISITOR_LEVELS = [
    ("grid_member", "网格员"),
    ("unit_head", "单元长"),
    ("building_head", "楼长"),
    ("owners_committee", "业主委员会"),
    ("property_manager", "物业经理"),
    ("community_cadre", "社区干部"),
    ("mediation_committee", "社区调委会"),
    ("street_dispatcher", "街道调度台"),
]
ALL_HOUSEHOLDS = "all_households"
# a rule over the religious venues (Places of kind mosque / religious_venue), not households:
# its tasks are gridsvc.community.models.VenueTask (每个月和清真寺共同走访, issue 20 item 6)
RELIGIOUS_VENUES = "religious_venues"


class VisitRule(models.Model):
    """走访规则: target group → frequency, window, visiting level, joint visit."""

    code = models.SlugField(max_length=48, unique=True)
    name = models.CharField(max_length=100)
    target_group = models.CharField(
        max_length=32,
        help_text="a resident tag (community_correction, hardship, elderly_alone …) "
        f"or '{ALL_HOUSEHOLDS}'",
    )
    frequency = models.CharField(max_length=16, choices=Frequency.choices)
    window_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="days from the period start by which the visit is due (blank: the whole "
        "period); after that an open task is overdue",
    )
    grace_days = models.PositiveSmallIntegerField(
        default=0, help_text="days after the period end before an undone task is missed"
    )
    visitor_level = models.CharField(max_length=32, choices=VISITOR_LEVELS)
    joint_visit = models.BooleanField(default=False, help_text="联合走访")
    joint_with = models.CharField(
        max_length=200, blank=True, help_text="e.g. 宗教场所代表 (religious venue representative)"
    )
    active = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def clean(self) -> None:
        from gridsvc.territory.models import Resident

        if (
            self.target_group not in (ALL_HOUSEHOLDS, RELIGIOUS_VENUES)
            and self.target_group not in Resident.Tag.values
        ):
            raise ValidationError(
                {"target_group": f"a resident tag, '{ALL_HOUSEHOLDS}' or '{RELIGIOUS_VENUES}'"},
            )

    def __str__(self) -> str:
        return self.name


class VisitTask(models.Model):
    """走访任务: a household due for a visit under a rule in one period."""

    class Status(models.TextChoices):
        OPEN = "open", "待走访"
        DONE = "done", "已走访"
        OVERDUE = "overdue", "逾期"
        MISSED = "missed", "漏访"

    rule = models.ForeignKey(VisitRule, on_delete=models.PROTECT, related_name="tasks")
    household = models.ForeignKey(
        "territory.Household", on_delete=models.CASCADE, related_name="visit_tasks"
    )
    resident = models.ForeignKey(
        "territory.Resident",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="visit_tasks",
        help_text="the resident of the target group the visit is about (if any)",
    )
    period = models.CharField(max_length=16, help_text="2026-11, 2026-Q4, 2026, 2026-W48")
    period_start = models.DateField()
    period_end = models.DateField(help_text="last day of the period (inclusive)")
    due_on = models.DateField(help_text="visit due by this day (period start + window)")
    assigned_member = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="visit_tasks",
    )
    assigned_position = models.ForeignKey(
        "chain.Position", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    assigned_level = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    done_by = models.ForeignKey(
        "Visit", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["due_on", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "household", "period_start"], name="visit_task_unique_period"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gte=models.F("period_start")),
                name="visit_task_period_order",
            ),
        ]
        indexes = [
            models.Index(fields=["assigned_member", "status", "due_on"]),
            models.Index(fields=["household", "status"]),
            models.Index(fields=["status", "due_on"]),
            models.Index(fields=["updated_at", "id"]),
        ]

    def __str__(self) -> str:
        return f"{self.rule} · {self.household} · {self.period}"


def _no_findings() -> list:
    return []


class Visit(models.Model):
    """走访记录 logged from the phone (offline first: ``client_uuid`` is the idempotency key)."""

    client_uuid = models.UUIDField(unique=True, default=uuid.uuid4)
    content_hash = models.CharField(
        max_length=64, help_text="hash of the submitted content: same UUID + same hash = duplicate"
    )
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="visits"
    )
    household = models.ForeignKey(
        "territory.Household", on_delete=models.PROTECT, related_name="visits"
    )
    resident = models.ForeignKey(
        "territory.Resident", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    task = models.ForeignKey(
        VisitTask, on_delete=models.SET_NULL, null=True, blank=True, related_name="visits"
    )
    client_time = models.DateTimeField(help_text="time on the phone when the visit was made")
    server_time = models.DateTimeField(auto_now_add=True, db_index=True)
    location = models.PointField(srid=SRID, null=True, blank=True, help_text="WGS84")
    location_source = models.CharField(
        max_length=16, blank=True, help_text="gps | photo_exif | '' (none)"
    )
    input_crs = models.CharField(max_length=16, default="wgs84")
    accuracy_m = models.FloatField(null=True, blank=True)
    accuracy_grade = models.CharField(max_length=16, blank=True)
    distance_m = models.FloatField(
        null=True, blank=True, help_text="metres from the household's building footprint"
    )
    far_off = models.BooleanField(default=False, db_index=True)
    purpose = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    findings = models.JSONField(default=_no_findings, blank=True)
    participant_members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="joint_visits"
    )
    participants_text = models.CharField(max_length=300, blank=True)
    case_ids = models.JSONField(default=_no_findings, blank=True, help_text="cases opened")
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-client_time", "-id"]
        indexes = [
            models.Index(fields=["household", "client_time"]),
            models.Index(fields=["member", "client_time"]),
        ]

    def __str__(self) -> str:
        return f"visit {self.client_uuid} · {self.household}"


class VisitPhoto(models.Model):
    """A photo of a visit (JPEG/PNG, ≤ 5 MB, checked by magic bytes); EXIF GPS kept if any."""

    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="photos")
    image = models.FileField(upload_to="visits/%Y/%m/")
    content_type = models.CharField(max_length=16)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    exif_point = models.PointField(srid=SRID, null=True, blank=True)
    exif_time = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["visit", "sha256"], name="visit_photo_unique")
        ]


class DailyReport(models.Model):
    """一日一报: a member's daily report — nothing abnormal (无异常), or items.

    Each item carries an ``id`` (the phone's, or one the server gives it). ``version`` goes up
    with every change; :attr:`etag` is what ``If-Match`` names (see :func:`save_daily_report`)."""

    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_reports"
    )
    date = models.DateField()
    nothing_abnormal = models.BooleanField(default=True)
    items = models.JSONField(default=_no_findings, blank=True)
    version = models.PositiveIntegerField(
        default=1, help_text="goes up with every change (ETag / If-Match)"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-date", "member_id"]
        constraints = [
            models.UniqueConstraint(fields=["member", "date"], name="daily_report_unique")
        ]

    def clean(self) -> None:
        if not self.nothing_abnormal and not self.items:
            raise ValidationError({"items": "list the items, or report nothing abnormal"})

    @property
    def etag(self) -> str:
        return f'"daily-report-{self.pk}-v{self.version}"'


class StaleDailyReport(Exception):
    """The upload would overwrite what the server has (412): ``current`` is the server's copy."""

    def __init__(self, current: DailyReport, message: str) -> None:
        super().__init__(message)
        self.current = current
        self.message = message


def new_item_id() -> str:
    return uuid.uuid4().hex


def _content(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "id"}


def _with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**item, "id": str(item.get("id") or new_item_id())} for item in items]


def save_daily_report(
    member,  # type: ignore[no-untyped-def]
    day: date,
    nothing_abnormal: bool,
    items: list[dict[str, Any]],
    expected_version: int | None = None,
) -> tuple[DailyReport, bool]:
    """Store ``member``'s report for ``day`` (一日一报); (report, created).

    Stale devices never silently erase data:

    - with ``expected_version`` (``If-Match``) equal to the stored version, the upload
      replaces the report (items may be removed); another version raises
      :class:`StaleDailyReport` with the server's copy (412);
    - without it, the upload is merged by item ``id``: items the server has and the upload
      lacks are kept, new ids are added, an item sent again unchanged is a no-op, and an item
      sent with the same id but other content raises :class:`StaleDailyReport` (the phone
      must read the server's copy and send its edit with ``If-Match``). An item without an
      ``id`` gets one, unless the same content is stored already (an old app's retry).

    ``nothing_abnormal`` is false whenever the report has items."""
    with transaction.atomic():
        report, created = DailyReport.objects.select_for_update().get_or_create(
            member=member,
            date=day,
            defaults={
                "items": _with_ids(items),
                "nothing_abnormal": nothing_abnormal and not items,
            },
        )
        if created:
            return report, True
        stored = _with_ids(report.items or [])
        if expected_version is not None:
            if expected_version != report.version:
                raise StaleDailyReport(
                    report,
                    f"the report has changed (now version {report.version}); "
                    "reload it and try again",
                )
            merged = _with_ids(items)
        else:
            merged = list(stored)
            by_id = {item["id"]: item for item in stored}
            contents = [_content(item) for item in stored]
            for item in items:
                if item.get("id") in (None, ""):
                    if _content(item) not in contents:
                        merged.append({**item, "id": new_item_id()})
                        contents.append(_content(item))
                    continue
                key = str(item["id"])
                if key not in by_id:
                    merged.append({**item, "id": key})
                    by_id[key] = merged[-1]
                elif _content(by_id[key]) != _content(item):
                    raise StaleDailyReport(
                        report,
                        f"item {key} was changed on the server (version {report.version}); "
                        "reload the report and send your edit with If-Match",
                    )
        flag = nothing_abnormal and not merged
        if merged != report.items or flag != report.nothing_abnormal:
            report.items, report.nothing_abnormal = merged, flag
            report.version += 1
            report.save(update_fields=["items", "nothing_abnormal", "version", "updated_at"])
        return report, False


class ChangeLog(models.Model):
    """A household (or one of its residents) changed: one row per save, for the change feed."""

    household_id_ref = models.BigIntegerField(db_index=True)
    building_id_ref = models.BigIntegerField(null=True, db_index=True)
    unit_id_ref = models.BigIntegerField(null=True)
    kind = models.CharField(max_length=16, help_text="household | resident")
    deleted = models.BooleanField(default=False)
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
