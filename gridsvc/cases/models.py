"""Cases: disputes (矛盾纠纷) and safety hazards (安全隐患), routed by place along the 五位一体 chain.

- :class:`Category` — category rules as data (案件类别): starting level, notify lists, the
  conditions to open (立案条件) and to close (结案条件), duplicate radius/days; sub-categories
  hang off a parent and inherit what they do not set.
- :class:`TimeLimit` — time limits per category (and level) for each stage: accept 受理,
  dispatch 派遣, handle 处置, verify 核查, in natural days/hours, working days or working hours.
- :class:`FlagRule` — what a flag does (ethnic/religious factor → community cadre at once and the
  street's ethnic-affairs desk notified).
- :class:`Case` — one report and where it stands; deadlines stored as absolute times.
- :class:`CaseEvent` — append-only history of every transition (actor, time, place, note,
  attachments); the database refuses UPDATE/DELETE.
- :class:`CaseRequest` — exception paths that need the level above to approve: extension 延时,
  hold 挂账, void 作废.
- :class:`FollowUp` — the return visit 回访 after resolution.
- :class:`MediationRecord` — the People's Mediation Law agreement 人民调解协议 for a dispute.
- :class:`Department` — outside departments 职能部门 a case can be transferred to.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib.gis.db import models
from django.db.models import Q

from gridsvc.chain.services import LEVELS

LEVEL_CHOICES = [(lvl.name, lvl.label) for lvl in LEVELS]
TIME_UNITS = [
    ("natural_days", "自然日"),
    ("natural_hours", "小时"),
    ("working_days", "工作日"),
    ("working_hours", "工作小时"),
]


class Kind(models.TextChoices):
    DISPUTE = "dispute", "矛盾纠纷"
    HAZARD = "hazard", "安全隐患"


class Department(models.Model):
    """An outside department 职能部门 (e.g. 市场监管所, 派出所, 供水公司) cases are transferred to."""

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    street = models.ForeignKey(
        "territory.Street", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    contact = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Category(models.Model):
    """A category rule 案件类别规则 (admin-editable, seeded by migration)."""

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    start_level = models.CharField(
        max_length=32, choices=LEVEL_CHOICES, blank=True, help_text="empty = the parent's"
    )
    notify = models.JSONField(
        default=list,
        blank=True,
        help_text='position types notified at once, e.g. ["community_cadre", "ethnic_affairs_desk"]',
    )
    open_conditions = models.TextField(blank=True, help_text="立案条件, shown to the handler")
    close_conditions = models.TextField(blank=True, help_text="结案条件, shown to the handler")
    duplicate_radius_m = models.FloatField(default=150)
    duplicate_days = models.PositiveSmallIntegerField(default=14)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name

    @property
    def effective_start_level(self) -> str:
        if self.start_level:
            return self.start_level
        return self.parent.effective_start_level if self.parent else LEVELS[1].name

    @property
    def effective_notify(self) -> list[str]:
        return list(self.notify or (self.parent.effective_notify if self.parent else []))

    @property
    def effective_open_conditions(self) -> str:
        return self.open_conditions or (
            self.parent.effective_open_conditions if self.parent else ""
        )

    @property
    def effective_close_conditions(self) -> str:
        return self.close_conditions or (
            self.parent.effective_close_conditions if self.parent else ""
        )


class TimeLimit(models.Model):
    """How long a stage may take for a category (at a level, or at every level when blank)."""

    class Stage(models.TextChoices):
        ACCEPT = "accept", "受理"
        DISPATCH = "dispatch", "派遣"
        HANDLE = "handle", "处置"
        VERIFY = "verify", "核查"

    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="time_limits")
    stage = models.CharField(max_length=16, choices=Stage.choices)
    level = models.CharField(max_length=32, choices=LEVEL_CHOICES, blank=True)
    amount = models.FloatField()
    unit = models.CharField(max_length=16, choices=TIME_UNITS)

    class Meta:
        ordering = ["category", "stage", "level"]
        constraints = [
            models.UniqueConstraint(
                fields=["category", "stage", "level"], name="time_limit_unique"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="time_limit_amount"),
        ]

    def __str__(self) -> str:
        return f"{self.category.code} {self.stage} {self.level or '*'}: {self.amount} {self.unit}"


class FlagRule(models.Model):
    """What a case flag does: the lowest level it may start at, who is notified at once."""

    class Flag(models.TextChoices):
        ETHNIC_RELIGIOUS = "ethnic_religious", "涉及民族宗教因素"
        GROUP_INCIDENT = "group_incident", "群体性事件"
        PETITION_RISK = "petition_risk", "信访风险"

    flag = models.CharField(max_length=32, choices=Flag.choices, unique=True)
    min_level = models.CharField(max_length=32, choices=LEVEL_CHOICES)
    notify = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"{self.flag} → {self.min_level}"


class Status(models.TextChoices):
    REPORTED = "reported", "已上报"
    ASSIGNED = "assigned", "已派遣"
    IN_PROGRESS = "in_progress", "处置中"
    ESCALATED = "escalated", "已升级"
    RESOLVED = "resolved", "已处置"
    VERIFIED = "verified", "已核查"
    CLOSED = "closed", "已结案"
    REOPENED = "reopened", "已重办"
    TRANSFERRED = "transferred", "已转办"
    REJECTED = "rejected", "不予受理"
    ON_HOLD = "on_hold", "挂账"
    VOID = "void", "作废"
    MERGED = "merged", "已合并"


OPEN_STATUSES = (
    Status.REPORTED,
    Status.ASSIGNED,
    Status.IN_PROGRESS,
    Status.ESCALATED,
    Status.REOPENED,
    Status.TRANSFERRED,
)
# statuses whose handling clock runs (overdue cases in these are escalated)
RUNNING_STATUSES = (Status.ASSIGNED, Status.IN_PROGRESS, Status.ESCALATED, Status.REOPENED)
DONE_STATUSES = (Status.RESOLVED, Status.VERIFIED, Status.CLOSED)


class Card(models.TextChoices):
    NONE = "", "无"
    YELLOW = "yellow", "黄牌"
    RED = "red", "红牌"


class Case(models.Model):
    """A dispute or hazard report and where it stands."""

    # set on the instance by an assignment, not stored: its interpreter needs (issue 20)
    assignment_interpreter: dict[str, Any]

    number = models.CharField(max_length=20, unique=True, help_text="案件编号")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="cases")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    parties = models.JSONField(default=list, blank=True, help_text="当事人 [{name, role, phone}]")
    priority = models.PositiveSmallIntegerField(
        default=3, choices=[(1, "紧急"), (2, "高"), (3, "普通"), (4, "低")]
    )
    ethnic_religious = models.BooleanField(default=False, help_text="涉及民族宗教因素")
    group_incident = models.BooleanField(default=False, help_text="群体性事件")
    petition_risk = models.BooleanField(default=False, help_text="信访风险")
    source = models.CharField(max_length=16, default="app")  # app | web | open311 | visit
    external_ref = models.CharField(max_length=64, blank=True)

    # where
    location = models.PointField(srid=4326)
    located_by = models.CharField(max_length=32, blank=True)
    household = models.ForeignKey(
        "territory.Household", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    unit = models.ForeignKey(
        "territory.Unit", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    building = models.ForeignKey(
        "territory.Building", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    compound = models.ForeignKey(
        "territory.Compound", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    grid = models.ForeignKey(
        "territory.Grid", on_delete=models.SET_NULL, null=True, blank=True, related_name="cases"
    )
    community = models.ForeignKey(
        "territory.Community", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    street = models.ForeignKey(
        "territory.Street", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    suggested_grid = models.ForeignKey(
        "territory.Grid",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="outside every grid: the nearest grid, suggested to the dispatcher",
    )

    # who
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REPORTED)
    level = models.CharField(max_length=32, choices=LEVEL_CHOICES, blank=True)
    level_index = models.PositiveSmallIntegerField(null=True, blank=True)
    handler = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="cases_handled",
    )
    department = models.ForeignKey(
        Department, on_delete=models.SET_NULL, null=True, blank=True, related_name="cases"
    )
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="cases_reported",
    )
    chain = models.JSONField(default=list, blank=True, help_text="the chain walked when routed")
    route_reason = models.TextField(blank=True)

    # when
    reported_at = models.DateTimeField(db_index=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True, help_text="at the current level")
    resolved_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    due_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="deadline of the running stage"
    )
    due_stage = models.CharField(max_length=16, blank=True)
    due_source = models.CharField(
        max_length=8,
        choices=[("rule", "按时限规则"), ("person", "人工设定")],
        default="rule",
        help_text="rule: computed from the time limits and the calendar (recomputed when they "
        "change); person: set by a dispatcher (set_deadline), kept on recompute",
    )
    due_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="who set the deadline by hand (due_source=person)",
    )
    stage_started_at = models.DateTimeField(null=True, blank=True)
    deadline_error = models.CharField(
        max_length=300, blank=True, help_text="why no deadline could be computed (e.g. no calendar)"
    )
    yellow_at = models.DateTimeField(null=True, blank=True)
    handle_due_at = models.DateTimeField(
        null=True, blank=True, help_text="first handling deadline (for assessment)"
    )
    card = models.CharField(max_length=8, choices=Card.choices, blank=True, default="")
    red_cards = models.PositiveSmallIntegerField(default=0)
    yellow_cards = models.PositiveSmallIntegerField(default=0)
    deadline_version = models.PositiveIntegerField(default=0)
    supervised_at = models.DateTimeField(null=True, blank=True, help_text="督办单 opened")

    # outcome and exception paths
    outcome = models.TextField(blank=True, help_text="处置结果 (required to resolve)")
    resolved_level = models.CharField(max_length=32, blank=True, help_text="level it ended at")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    rejection_reason = models.TextField(blank=True)
    on_the_spot = models.BooleanField(default=False, help_text="自处理")
    hold_until = models.DateField(null=True, blank=True, help_text="挂账 review date")
    merged_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="merged"
    )
    escalations = models.PositiveSmallIntegerField(default=0)
    reopened_count = models.PositiveSmallIntegerField(default=0)
    reworked_count = models.PositiveSmallIntegerField(
        default=0, help_text="re-dispatched after a failed verification (返工)"
    )
    sent_back_count = models.PositiveSmallIntegerField(default=0, help_text="回退")
    extended_count = models.PositiveSmallIntegerField(default=0, help_text="延时 approved")
    version = models.PositiveIntegerField(default=1, help_text="optimistic lock (ETag)")

    class Meta:
        ordering = ["-reported_at", "-id"]
        indexes = [
            models.Index(fields=["status", "due_at"]),
            models.Index(fields=["handler", "status"]),
            models.Index(fields=["grid", "status"]),
            models.Index(fields=["category", "reported_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def etag(self) -> str:
        return f'"case-{self.pk}-v{self.version}"'

    @property
    def flags(self) -> list[str]:
        return [
            f for f in ("ethnic_religious", "group_incident", "petition_risk") if getattr(self, f)
        ]


class CaseEvent(models.Model):
    """One step in a case's life (append-only: the database refuses UPDATE and DELETE)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, db_index=True)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(db_index=True)
    location = models.PointField(srid=4326, null=True, blank=True)
    note = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    level = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["case", "at"])]

    def __str__(self) -> str:
        return f"{self.case_id} {self.kind} {self.at:%Y-%m-%d %H:%M}"


class Attachment(models.Model):
    """A photo or file on a case (before/after photos of on-the-spot handling …)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="attachments")
    event = models.ForeignKey(
        CaseEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="attachments"
    )
    role = models.CharField(max_length=16, default="photo")  # photo | before | after | file
    file = models.FileField(upload_to="cases/%Y/%m/")
    content_type = models.CharField(max_length=64, blank=True)
    size = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)


class CaseRequest(models.Model):
    """An exception needing the level above: extension 延时, hold 挂账, void 作废."""

    class Kind(models.TextChoices):
        EXTENSION = "extension", "延时"
        HOLD = "hold", "挂账"
        VOID = "void", "作废"

    class State(models.TextChoices):
        PENDING = "pending", "待审批"
        APPROVED = "approved", "已批准"
        REFUSED = "refused", "已驳回"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="requests")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reason = models.TextField()
    amount = models.FloatField(null=True, blank=True, help_text="extension length")
    unit = models.CharField(max_length=16, choices=TIME_UNITS, blank=True)
    review_date = models.DateField(null=True, blank=True, help_text="hold: when to look again")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "kind"],
                condition=Q(state="pending"),
                name="one_pending_request_per_kind",
            )
        ]


class FollowUp(models.Model):
    """The return visit 回访 after a case is resolved; unsatisfied reopens the case."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="follow_ups")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    due_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    satisfied = models.BooleanField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["due_at", "id"]


class MediationRecord(models.Model):
    """人民调解协议书: what the People's Mediation Law (人民调解法 第二十九条) asks an agreement to
    state — the parties, the main facts, the issues in dispute, the terms agreed, how and by
    when they are carried out — plus the follow-up on whether it was honoured and the 30-day
    window (第三十三条) for the parties to apply together for court confirmation 司法确认."""

    case = models.OneToOneField(Case, on_delete=models.CASCADE, related_name="mediation")
    parties = models.JSONField(help_text="[{name, role, id_number?, address?}] — at least two")
    facts = models.TextField(help_text="纠纷的主要事实")
    issues = models.TextField(help_text="争议事项")
    terms = models.TextField(help_text="各方当事人的权利和义务 (协议内容)")
    performance_method = models.CharField(max_length=200, help_text="履行方式")
    performance_deadline = models.DateField(help_text="履行期限")
    signed_on = models.DateField(help_text="协议生效日期")
    mediator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    honoured = models.BooleanField(null=True, blank=True, help_text="履行情况 (follow-up)")
    honoured_checked_on = models.DateField(null=True, blank=True)
    honoured_note = models.TextField(blank=True)
    court_confirmation_applied = models.BooleanField(default=False, help_text="已申请司法确认")
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def court_confirmation_deadline(self) -> date:
        return self.signed_on + timedelta(days=30)
