"""Assistance applications (民生服务申请): 低保, 临时救助, 廉租房/公租房 and rent subsidy,
居民医保/养老 enrolment, student aid, job referral and training.

An application is made by or for a household (often by the grid member on a visit) and goes
submitted → checked (members, declared income, documents) → reviewed by the community
(社区评议) → decided by the street (街道审批: approved with amount, start and end dates, or
rejected with reasons). 低保 is re-checked yearly (年度复核). Every transition is an
:class:`ApplicationEvent` with actor and time. Stage deadlines run on the working-day clock
(:mod:`gridsvc.supervision.clock`). Income, amounts and the kind of assistance are
LOW_INCOME-sensitive (:mod:`gridsvc.chain.visibility`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Kind(models.TextChoices):
    DIBAO = "dibao", "低保 最低生活保障"
    TEMP_RELIEF = "temp_relief", "临时救助"
    PUBLIC_HOUSING = "public_housing", "廉租房/公租房"
    RENT_SUBSIDY = "rent_subsidy", "廉租房补贴"
    MEDICAL_INSURANCE = "medical_insurance", "居民医保参保"
    PENSION = "pension", "城乡居民养老保险参保"
    STUDENT_AID = "student_aid", "助学"
    JOB = "job", "就业推荐/培训"


class Status(models.TextChoices):
    SUBMITTED = "submitted", "已申请"
    CHECKED = "checked", "已核查"
    REVIEWED = "reviewed", "社区已评议"
    APPROVED = "approved", "街道已批准"
    REJECTED = "rejected", "未批准"
    WITHDRAWN = "withdrawn", "已撤回"
    ENDED = "ended", "已停止"


OPEN_STATUSES = (Status.SUBMITTED, Status.CHECKED, Status.REVIEWED)


class Application(models.Model):
    """一件民生服务申请 for a household."""

    client_uuid = models.UUIDField(
        unique=True, null=True, blank=True, help_text="the phone's id: a retry is the same row"
    )
    household = models.ForeignKey(
        "territory.Household", on_delete=models.PROTECT, related_name="assistance_applications"
    )
    applicant = models.ForeignKey(
        "territory.Resident",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="the resident applying (blank: the household)",
    )
    visit = models.ForeignKey(
        "visits.Visit",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assistance_applications",
        help_text="the visit on which the grid member started it",
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.SUBMITTED, db_index=True
    )
    reason = models.TextField(blank=True, help_text="why the household applies")
    # checks (核查)
    members_count = models.PositiveSmallIntegerField(null=True, blank=True)
    monthly_income = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, help_text="declared, yuan/month"
    )
    documents = models.JSONField(default=list, blank=True, help_text="documents seen (names)")
    # community review (社区评议) and street decision (街道审批)
    review_opinion = models.TextField(blank=True)
    recommended = models.BooleanField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    amount = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, help_text="yuan per month or once"
    )
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    recheck_due = models.DateField(null=True, blank=True, help_text="next 复核 (低保: yearly)")
    # the working-day clock of the current stage
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    remind_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="临期 reminder time (as a case's yellow card: 80% of the stage)",
    )
    warned_for = models.DateTimeField(
        null=True, blank=True, help_text="the due_at already reminded before (once per deadline)"
    )
    reminded_for = models.DateTimeField(
        null=True, blank=True, help_text="the due_at already escalated (once per deadline)"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "status"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_status_display()})"


class ApplicationEvent(models.Model):
    """One transition of an application: who, when, from which status to which."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=24)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]


class Migrant(models.Model):
    """流动人口: a resident who came from elsewhere — arrival and departure, 居住证, where from
    with a contact at home (流入地和流出地两头对接), work or business (个体户, 营业执照),
    children's school or nursery needs (子女上学、入托), training."""

    class Permit(models.TextChoices):
        NONE = "none", "未办理"
        APPLIED = "applied", "已申请"
        ISSUED = "issued", "已办理"
        EXPIRED = "expired", "已过期"

    class Work(models.TextChoices):
        EMPLOYED = "employed", "务工"
        SELF_EMPLOYED = "self_employed", "个体户/经商"
        SEEKING = "seeking", "待业"
        STUDENT = "student", "上学"
        OTHER = "other", "其他"

    resident = models.OneToOneField(
        "territory.Resident", on_delete=models.CASCADE, related_name="migrant"
    )
    arrived_on = models.DateField()
    departed_on = models.DateField(null=True, blank=True)
    departed_to = models.CharField(max_length=200, blank=True)
    permit = models.CharField(max_length=12, choices=Permit.choices, default=Permit.NONE)
    permit_expires = models.DateField(null=True, blank=True)
    home_contact = models.CharField(
        max_length=200, blank=True, help_text="流出地 contact (村委会, family, 驻地办事处)"
    )
    home_contact_phone = models.CharField(max_length=32, blank=True)
    work = models.CharField(max_length=16, choices=Work.choices, default=Work.OTHER)
    employer = models.CharField(max_length=200, blank=True)
    business_licence = models.CharField(max_length=64, blank=True, help_text="营业执照 number")
    children_needs = models.TextField(blank=True, help_text="子女上学、入托")
    training = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-arrived_on", "-id"]

    def __str__(self) -> str:
        return f"流动人口 {self.resident_id} {self.arrived_on}"


class ApplicationDocument(models.Model):
    """A document attached to an application (申请材料: 户口簿, 身份证, 收入证明 …), an image
    or a PDF checked by its content (:mod:`gridsvc.uploads`). LOW_INCOME-sensitive: the file
    is served only under an unmask grant, and each download is audited."""

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="attachments"
    )
    name = models.CharField(max_length=100, help_text="what the document is (户口簿, 收入证明 …)")
    file = models.FileField(upload_to="assistance/%Y/%m/")
    content_type = models.CharField(max_length=64)
    size = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    client_uuid = models.UUIDField(
        unique=True, null=True, blank=True, help_text="the phone's id: a retry is the same row"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.application_id})"


class MigrantMove(models.Model):
    """One arrival (来) or departure (走) of a migrant as recorded, with the phone's
    ``client_uuid`` (an offline batch sent again records nothing twice). :class:`Migrant` holds
    the current state; these rows are its history."""

    class Move(models.TextChoices):
        ARRIVAL = "arrival", "来"
        DEPARTURE = "departure", "走"

    migrant = models.ForeignKey(Migrant, on_delete=models.CASCADE, related_name="moves")
    move = models.CharField(max_length=12, choices=Move.choices)
    on = models.DateField()
    place = models.CharField(max_length=200, blank=True, help_text="where to (departure)")
    client_uuid = models.UUIDField(unique=True, null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["on", "id"]
