"""The community's ethnic-unity work (民族团结进步创建) as first-class records (issue 20).

Every record here is *located*: it carries ``street``, ``community`` and (when it belongs to
one grid) ``grid``, and is registered in :data:`gridsvc.chain.scope.LOCATED_MODELS`, so it is
visible to whoever holds a staff or street position over those objects. None of them carries
a building/compound/unit reference: neighbours (楼长, 单元长, 物业, 业委会) never reach them —
the work touches ethnicity and religion (sensitive under the PIPL), and the API reads them
through :func:`gridsvc.chain.visibility.staff_scope` on top of that.

- :class:`TeamMembership` 五员 / 一格十员 / 志愿者服务队 / 便民服务队: several members per role.
- :class:`Activity` 活动与宣传 (座谈会, 民族节日, 宣传资料, 公益日 …).
- :class:`ScreeningReport` 五员一日一报: screening of 不稳定因素, with 零报告.
- :class:`Petition` 信访 log.
- :class:`VenueVisit` religious-venue liaison (清真寺 / 宗教活动场所 joint visits, hazards).
- :class:`Pairing` 结对帮扶, 共建单位, 在职党员报到, 微心愿; :class:`PairingHelp` the help given.
- :class:`ActivityPhoto` photos of an activity.
- :class:`Rating` 评比 (五星级文明户, 好媳妇, 好婆婆, 服务之星), revised over time.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.gis.db import models
from django.contrib.postgres.fields import ArrayField
from django.db.models import Q
from django.utils import timezone

from gridsvc.territory.models import SRID


class Located(models.Model):
    """Territory of a record: street and community always, grid when it is one grid's."""

    street = models.ForeignKey("territory.Street", on_delete=models.PROTECT, related_name="+")
    community = models.ForeignKey("territory.Community", on_delete=models.PROTECT, related_name="+")
    grid = models.ForeignKey(
        "territory.Grid", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The scope's contract for LOCATED_MODELS is all six territory fields. This app never sets
    # these three: a building head, unit head or compound's manager never reaches the records.
    compound = models.ForeignKey(
        "territory.Compound",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    building = models.ForeignKey(
        "territory.Building",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    unit = models.ForeignKey(
        "territory.Unit",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # the change feed's mark: every save moves it (a screening report sent again, hours added)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    # phones retry: the same client_uuid from the same member is stored once
    client_uuid = models.UUIDField(null=True, blank=True, unique=True)

    class Meta:
        abstract = True


class Team(models.TextChoices):
    FIVE_MEMBERS = "five_members", "五员"
    GRID_TEN = "grid_ten", "一格十员"
    VOLUNTEERS = "volunteers", "志愿者服务队"
    CONVENIENCE = "convenience", "便民服务队"
    INTERPRETERS = "interpreters", "民族语言翻译员"


class Language(models.TextChoices):
    """Languages a resident speaks (004: 汉、维、哈三种语言; the demo's 东乡族 elders)."""

    MANDARIN = "zh", "汉语"
    UYGHUR = "ug", "维吾尔语"
    KAZAKH = "kk", "哈萨克语"
    DONGXIANG = "sce", "东乡语"
    TIBETAN = "bo", "藏语"
    MONGOLIAN = "mn", "蒙古语"
    SALAR = "slr", "撒拉语"
    BONAN = "peh", "保安语"


class FiveRole(models.TextChoices):
    """The 五员 and their duties (003: 开展排查影响民族团结不稳定因素及矛盾纠纷调处工作)."""

    PUBLICITY = "publicity", "宣传员"
    ORGANISER = "organiser", "组织员"
    INFORMATION = "information", "信息员"
    LIAISON = "liaison", "联络员"
    MEDIATOR = "mediator", "调处员"


FIVE_ROLE_DUTIES: dict[str, str] = {
    FiveRole.PUBLICITY: "宣讲民族团结政策, 发放宣传资料",
    FiveRole.ORGANISER: "组织座谈会、节日联谊等创建活动",
    FiveRole.INFORMATION: "排查不稳定因素, 一日一报",
    FiveRole.LIAISON: "联络清真寺等宗教场所与各族群众",
    FiveRole.MEDIATOR: "调处矛盾纠纷",
}


class TeamMembership(Located):
    """One member of a team (五员, 一格十员, 志愿者服务队, 便民服务队) for a period.

    Several members may hold the same role. A volunteer without an account is named in
    ``name``; ``member`` is set when the person signs in (五员 file 一日一报)."""

    team = models.CharField(max_length=16, choices=Team.choices)
    role = models.CharField(
        max_length=32,
        help_text="五员: a FiveRole; 民族语言翻译员: a Language code; others: free text",
    )
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="team_memberships",
    )
    name = models.CharField(max_length=64, blank=True)
    valid_from = models.DateField(default=timezone.localdate)
    valid_to = models.DateField(null=True, blank=True)
    hours = models.DecimalField(max_digits=7, decimal_places=1, default=0)
    on_leave = models.BooleanField(
        default=False, help_text="on leave (请假): routing passes a 调处员 on leave over"
    )

    class Meta:
        ordering = ["team", "role", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(member__isnull=True, name=""), name="team_member_or_name"
            )
        ]


class ServiceLog(Located):
    """Hours of service given by a team member (志愿服务时长) on one day; the membership's
    ``hours`` is their running total."""

    membership = models.ForeignKey(
        TeamMembership, on_delete=models.CASCADE, related_name="service_logs"
    )
    date = models.DateField()
    hours = models.DecimalField(max_digits=5, decimal_places=1)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-date", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(hours__gt=0, hours__lte=24), name="service_log_hours_in_a_day"
            )
        ]


class ActivityKind(models.TextChoices):
    FORUM = "forum", "座谈会"
    FESTIVAL = "festival", "民族节日活动"
    PUBLICITY = "publicity", "宣传(资料、横幅、展板、答题)"
    WELFARE_DAY = "welfare_day", "民族团结公益日(每月15日)"
    HAND_IN_HAND = "hand_in_hand", "结对子/手拉手/心连心"
    OTHER = "other", "其他"


class Activity(Located):
    """活动与宣传: one event or hand-out, with its counts (participants by ethnicity as counts,
    never names)."""

    kind = models.CharField(max_length=16, choices=ActivityKind.choices)
    title = models.CharField(max_length=128)
    date = models.DateField()
    place = models.ForeignKey(
        "territory.Place", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    point = models.PointField(srid=SRID, null=True, blank=True)
    organiser = models.CharField(max_length=128, blank=True)
    partners = models.CharField(max_length=256, blank=True)
    participants = models.PositiveIntegerField(default=0)
    ethnic_mix = models.JSONField(default=dict, blank=True, help_text="民族 → 人数")
    materials = models.PositiveIntegerField(default=0, help_text="宣传资料份数")
    answer_sheets = models.PositiveIntegerField(default=0, help_text="答题份数")
    banners = models.PositiveIntegerField(default=0, help_text="横幅/展板")
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-date", "-id"]


class StoredPhoto(models.Model):
    """What a community record's photo keeps (:mod:`gridsvc.community.photos` stores it): the
    file as sent, its type by content, size, ``sha256`` (once per record), EXIF GPS and time."""

    content_type = models.CharField(max_length=16)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    exif_point = models.PointField(srid=SRID, null=True, blank=True)
    exif_time = models.CharField(max_length=32, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class ActivityPhoto(StoredPhoto):
    """A photo of an activity (JPEG/PNG ≤ 5 MB, checked by magic bytes, like a visit photo);
    EXIF GPS and time kept if any, as visits keep them. One file per activity and content
    (``sha256``): a phone's retry does not double it. Served only to callers who may read the
    activity (``activities/{id}/photos/{photo}/file/``)."""

    activity = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="photos")
    image = models.FileField(upload_to="community/activities/%Y/%m/")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["activity", "sha256"], name="activity_photo_unique")
        ]


class ScreeningReport(Located):
    """五员一日一报: one member's screening of 不稳定因素 for one day. ``zero_report`` is the
    explicit 零报告 (nothing found) and counts as reported."""

    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    date = models.DateField()
    zero_report = models.BooleanField(default=True)
    findings = models.TextField(blank=True)
    findings_count = models.PositiveIntegerField(default=0)
    persons = models.PositiveIntegerField(default=1, help_text="投入人次")

    class Meta:
        ordering = ["-date", "member_id"]
        constraints = [
            models.UniqueConstraint(fields=["member", "date"], name="screening_one_per_day")
        ]


class Petition(Located):
    """信访: a visitor/petition log entry. ``group_size`` ≥ 5 is a group petition (集体访)."""

    class Status(models.TextChoices):
        OPEN = "open", "办理中"
        RESOLVED = "resolved", "已办结"

    date = models.DateField()
    petitioner = models.CharField(max_length=64)
    subject = models.CharField(max_length=256)
    ethnic_religious = models.BooleanField(default=False, help_text="涉及民族宗教")
    group_size = models.PositiveIntegerField(default=1)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    case = models.ForeignKey(
        "cases.Case", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)

    GROUP_THRESHOLD = 5

    @property
    def group_risk(self) -> bool:
        return self.group_size >= self.GROUP_THRESHOLD

    class Meta:
        ordering = ["-date", "-id"]


class VenueVisit(Located):
    """Religious-venue liaison (每个月和清真寺共同走访): a visit to a Place of kind mosque or
    religious_venue, joint with the venue or not, with hazards found."""

    place = models.ForeignKey("territory.Place", on_delete=models.PROTECT, related_name="+")
    date = models.DateField()
    joint = models.BooleanField(default=True, help_text="与场所共同走访")
    participants = models.PositiveIntegerField(default=0)
    hazard_found = models.BooleanField(default=False)
    hazards = models.TextField(blank=True)
    note = models.TextField(blank=True)
    # the phone's fix where the visit was recorded, judged like a household visit's
    # (gridsvc.community.venues.judge_fix: distance to the venue, far_off beyond
    # VISIT_FAR_OFF_M — flagged, never refused)
    location = models.PointField(srid=SRID, null=True, blank=True)
    location_source = models.CharField(max_length=16, blank=True, help_text="gps | photo_exif")
    accuracy_m = models.FloatField(null=True, blank=True)
    accuracy_grade = models.CharField(max_length=16, blank=True)
    distance_m = models.FloatField(null=True, blank=True, help_text="metres from the venue")
    far_off = models.BooleanField(default=False)

    class Meta:
        ordering = ["-date", "-id"]


class VenueVisitPhoto(StoredPhoto):
    """A photo taken on a venue visit (JPEG/PNG ≤ 5 MB by content, once per visit by
    ``sha256``), stored as activity photos are; served only to callers who may read the visit
    (``venue-visits/{id}/photos/{photo}/file/``)."""

    visit = models.ForeignKey(VenueVisit, on_delete=models.CASCADE, related_name="photos")
    image = models.FileField(upload_to="community/venue-visits/%Y/%m/")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["visit", "sha256"], name="venue_visit_photo_unique")
        ]


class VenueContact(Located):
    """A religious venue's contact person (阿訇, 管委会负责人 …) with their phone, kept on the
    venue (a Place of kind mosque / religious_venue). The phone is shown through
    :func:`gridsvc.community.services.present_venue_contact` (masked below the staff tier
    with the residents' :func:`gridsvc.chain.visibility.mask_phone`)."""

    place = models.ForeignKey("territory.Place", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=64)
    role = models.CharField(max_length=64, blank=True, help_text="阿訇, 管委会主任 …")
    phone = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["place_id", "id"]


class VenueTaskQuerySet(models.QuerySet):
    """A status written in bulk moves ``updated_at`` too (``auto_now`` does not fire on
    ``QuerySet.update``): the phone's feed brings the row again."""

    def update(self, **kwargs: object) -> int:
        if "status" in kwargs and "updated_at" not in kwargs:
            kwargs["updated_at"] = timezone.now()
        return super().update(**kwargs)


class VenueTask(Located):
    """The joint monthly venue visit due (每个月和清真寺共同走访): one per venue and period of a
    :class:`gridsvc.visits.models.VisitRule` whose ``target_group`` is ``religious_venues``,
    for the grid member of the venue's grid (up the chain when the grid has none). Generated
    with the household tasks (:func:`gridsvc.visits.services.generate_tasks`); a
    :class:`VenueVisit` to the venue inside the period completes it (an overdue task too).
    Kept here, not as a ``VisitTask``, because a visit task is about a household.

    Its clock is the household tasks' (:func:`gridsvc.community.venues.update_venue_statuses`,
    run daily): open → overdue (逾期) once ``due_on`` has passed; open/overdue → missed (漏访)
    after ``period_end`` plus the rule's ``grace_days``. Every status write moves
    ``updated_at`` (the phone's feed brings the row again)."""

    class Status(models.TextChoices):
        OPEN = "open", "待走访"
        DONE = "done", "已走访"
        OVERDUE = "overdue", "逾期"
        MISSED = "missed", "漏访"

    rule = models.ForeignKey("visits.VisitRule", on_delete=models.PROTECT, related_name="+")
    place = models.ForeignKey("territory.Place", on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=16)
    period_start = models.DateField()
    period_end = models.DateField()
    due_on = models.DateField()
    assigned_member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    assigned_position = models.ForeignKey(
        "chain.Position", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    assigned_level = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    done_by = models.ForeignKey(
        VenueVisit, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = VenueTaskQuerySet.as_manager()

    class Meta:
        ordering = ["due_on", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "place", "period_start"], name="venue_task_once"
            )
        ]


class Campaign(Located):
    """A periodic screening campaign (矛盾纠纷排查化解月, 排查不稳定因素) over a community (or one
    grid) and a period: each grid returns its findings or a 零报告."""

    class Kind(models.TextChoices):
        DISPUTES = "disputes", "矛盾纠纷排查化解月"
        INSTABILITY = "instability", "排查不稳定因素"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=128)
    start = models.DateField()
    end = models.DateField()

    class Meta:
        ordering = ["-start", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gte=models.F("start")), name="campaign_period")
        ]


class CampaignReturn(Located):
    """One grid's return to a campaign, created (pending) for every grid when the campaign
    starts, like a visit task; filed with findings or a 零报告 (nothing found)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="returns")
    filed_at = models.DateTimeField(null=True, blank=True)
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    zero_report = models.BooleanField(default=True)
    findings = models.TextField(blank=True)
    findings_count = models.PositiveIntegerField(default=0)
    # when the filing in force was recorded (the phone's time on the server's clock, or the
    # server's time of an online filing): a filing recorded earlier never replaces it
    client_time = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign_id", "grid_id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "grid"], name="campaign_return_per_grid")
        ]


class ReturnFiling(models.Model):
    """A filing applied to a campaign return (专项排查上报), kept by its ``client_uuid``: a
    retry of any filing ever applied to the return — not only the latest — is a duplicate and
    changes nothing (a phone that sent A, then B, then retries A never brings A back)."""

    ret = models.ForeignKey(CampaignReturn, on_delete=models.CASCADE, related_name="filings")
    client_uuid = models.UUIDField(unique=True)
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    filed_at = models.DateTimeField(default=timezone.now)
    client_time = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["ret_id", "filed_at", "id"]


class PairingKind(models.TextChoices):
    HELP = "help", "结对帮扶"
    CO_BUILDING = "co_building", "共建单位"
    PARTY_MEMBER = "party_member", "在职党员报到"
    WISH = "wish", "微心愿"


class Pairing(Located):
    """A pairing between a member or a unit and a household (or a co-building agreement with an
    organisation, household blank), with the help given so far."""

    kind = models.CharField(max_length=16, choices=PairingKind.choices)
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    partner = models.CharField(max_length=128, blank=True, help_text="单位/组织")
    household = models.ForeignKey(
        "territory.Household", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    started = models.DateField(default=timezone.localdate)
    ended = models.DateField(null=True, blank=True)
    help_given = models.TextField(blank=True)

    class Meta:
        ordering = ["-started", "-id"]


class PairingHelp(Located):
    """Help given under a pairing (结对帮扶的帮扶记录): a record per occasion — the day, what was
    done, the visit it was given on (optional), hours and money or goods' value when
    meaningful. The pairing's ``help_given`` text stays as its summary; the list is these."""

    pairing = models.ForeignKey(Pairing, on_delete=models.CASCADE, related_name="help_records")
    date = models.DateField()
    what = models.CharField(max_length=256, help_text="慰问、代办低保复核、送米面油 …")
    visit = models.ForeignKey(
        "visits.Visit", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    hours = models.DecimalField(max_digits=5, decimal_places=1, null=True, blank=True)
    amount = models.DecimalField(
        max_digits=9, decimal_places=2, null=True, blank=True, help_text="元 (money or goods)"
    )

    class Meta:
        ordering = ["-date", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(hours__isnull=True) | Q(hours__gt=0, hours__lte=24),
                name="pairing_help_hours_in_a_day",
            ),
            models.CheckConstraint(
                condition=Q(amount__isnull=True) | Q(amount__gte=0),
                name="pairing_help_amount_not_negative",
            ),
        ]


class RatingTitle(models.TextChoices):
    FIVE_STAR = "five_star", "五星级文明户"
    GOOD_DAUGHTER_IN_LAW = "good_daughter_in_law", "好媳妇"
    GOOD_MOTHER_IN_LAW = "good_mother_in_law", "好婆婆"
    SERVICE_STAR = "service_star", "服务之星"


class Rating(Located):
    """评比: a yearly rating of a household. 动态管理: a rating is revised (stars, revoked) in
    place; ``revised_at`` tells when."""

    household = models.ForeignKey("territory.Household", on_delete=models.PROTECT, related_name="+")
    year = models.PositiveIntegerField()
    title = models.CharField(max_length=24, choices=RatingTitle.choices)
    stars = models.PositiveSmallIntegerField(default=5)
    criteria = models.TextField(blank=True)
    revoked = models.BooleanField(default=False)
    revised_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-year", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["household", "year", "title"], name="rating_once_per_year"
            ),
            models.CheckConstraint(
                condition=Q(stars__gte=1, stars__lte=5), name="rating_stars_1_5"
            ),
        ]


class SignOff(Located):
    """The street ethnic-affairs desk's sign-off (民族宗教工作站确认) on a case of the ``ethnic``
    category or flagged 涉及民族宗教因素: the confirmation its closing rule asks for
    (结案条件: 矛盾化解,民族宗教工作站确认,回访稳定). ``confirmed`` false records a refusal
    (not yet stable) with its reason; a later sign-off replaces the standing one."""

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="+")
    confirmed = models.BooleanField(default=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class Mediation(Located):
    """A 调处员's (or mediation committee's) mediation of a dispute case: a session with its
    outcome (调处), so the 五员's 矛盾纠纷调处 is counted. It does not move the case."""

    class Outcome(models.TextChoices):
        AGREED = "agreed", "达成协议"
        ONGOING = "ongoing", "继续调处"
        FAILED = "failed", "调处不成"

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="+")
    mediator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    date = models.DateField()
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-date", "-id"]


class ResidentGroup(models.TextChoices):
    """The resident groups the seeds keep ledgers of that are not resident tags (002: 对辖区的
    少数民族居民, 个体户、企业家 …; 001: 离退休干部)."""

    RETIRED_LEADER = "retired_leader", "离退休老领导"
    SELF_EMPLOYED = "self_employed", "个体户/企业家"
    RETURNED_OVERSEAS = "returned_overseas", "归国华侨/留学生"
    NEW_STRATUM = "new_stratum", "新的社会阶层"


class GroupMember(Located):
    """A resident recorded in one of the :class:`ResidentGroup` ledgers (a record, not a tag:
    who recorded it and when), e.g. a 个体户 with their business in ``detail``."""

    resident = models.ForeignKey("territory.Resident", on_delete=models.CASCADE, related_name="+")
    group = models.CharField(max_length=20, choices=ResidentGroup.choices)
    detail = models.CharField(max_length=200, blank=True, help_text="原职务/经营项目/留学国家 …")

    class Meta:
        ordering = ["group", "id"]
        constraints = [
            models.UniqueConstraint(fields=["resident", "group"], name="group_member_once")
        ]


class ResidentLanguage(Located):
    """The languages a resident speaks and whether they need an interpreter (需要翻译) when
    a case or visit reaches them; matched with the 民族语言翻译员 team
    (:func:`gridsvc.community.services.interpreters_for`). Languages tell the ethnicity:
    read through the work scope like every record here (never by neighbours)."""

    resident = models.OneToOneField(
        "territory.Resident", on_delete=models.CASCADE, related_name="+"
    )
    languages = ArrayField(models.CharField(max_length=8, choices=Language.choices), default=list)
    interpreter_needed = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]


class MemberLanguage(models.Model):
    """The languages a member (网格员, 社区干部, 五员 …) speaks besides 汉语, so that a case or
    visit to a household needing an interpreter goes, when several may take it, to one who
    speaks the household's language, and an interpreter is called only when the assignee
    does not (issue 20 item 11). A 民族语言翻译员 speaks their team role's language anyway."""

    member = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="languages_spoken"
    )
    languages = ArrayField(models.CharField(max_length=8, choices=Language.choices), default=list)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]


class InterpreterCall(Located):
    """An interpreter attached to a case or a visit task (请翻译随行): the household has a
    resident needing an interpreter for ``language`` and the assignee does not speak it.
    ``interpreter`` is the 民族语言翻译员 called (notified in their inbox), or empty when
    nobody in the community interprets that language. One per case (or task) and language;
    a reassignment updates it."""

    case = models.ForeignKey(
        "cases.Case", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    visit_task = models.ForeignKey(
        "visits.VisitTask", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    household = models.ForeignKey("territory.Household", on_delete=models.CASCADE, related_name="+")
    language = models.CharField(max_length=8, choices=Language.choices)
    interpreter = models.ForeignKey(
        TeamMembership, on_delete=models.SET_NULL, null=True, blank=True, related_name="calls"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "language"],
                condition=Q(case__isnull=False),
                name="interpreter_call_case_once",
            ),
            models.UniqueConstraint(
                fields=["visit_task", "language"],
                condition=Q(visit_task__isnull=False),
                name="interpreter_call_task_once",
            ),
            models.CheckConstraint(
                condition=Q(case__isnull=False) | Q(visit_task__isnull=False),
                name="interpreter_call_for_something",
            ),
        ]


LOCATED = (
    TeamMembership,
    ServiceLog,
    Activity,
    Campaign,
    CampaignReturn,
    ScreeningReport,
    Petition,
    VenueVisit,
    VenueContact,
    VenueTask,
    Pairing,
    PairingHelp,
    Rating,
    SignOff,
    Mediation,
    GroupMember,
    ResidentLanguage,
    InterpreterCall,
)


# ---------------------------------------------------------------- reporting upward (item 9)
# The district's 创建 office (区创建办) holds chain posts over the district
# (``chain.PositionType.DISTRICT_OFFICER``), with history, hand-over and leave like any post.
class UnityReport(models.Model):
    """The street's 创建 report to the district: the year's plan (年初有计划), a month's report,
    or the year's summary (年终有总结), with the figures as submitted; acknowledged by the
    district (签收). Submitting again replaces it until it is acknowledged."""

    class Kind(models.TextChoices):
        PLAN = "plan", "年度计划"
        MONTHLY = "monthly", "月报"
        SUMMARY = "summary", "年度总结"

    street = models.ForeignKey("territory.Street", on_delete=models.PROTECT, related_name="+")
    year = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices)
    month = models.PositiveSmallIntegerField(default=0, help_text="1–12 for a month's report")
    text = models.TextField(blank=True)
    figures = models.JSONField(default=dict, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    submitted_at = models.DateTimeField(default=timezone.now)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledgement = models.TextField(blank=True, help_text="the district's note")

    class Meta:
        ordering = ["-year", "kind", "month", "street_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["street", "year", "kind", "month"], name="unity_report_once"
            ),
            models.CheckConstraint(condition=Q(month__lte=12), name="unity_report_month"),
        ]
