"""The 五位一体 chain: positions held by members over territory objects, with history.

社区干部包网格 · 物业经理包小区 · 业主委员会包楼长 · 楼长包单元长 · 单元长包家长.

A :class:`Position` is an assignment (position type, territory object, member, valid from/to,
on leave). Positions are never overwritten: handing a position over closes the old row
(``valid_to``) and opens a new one, so a closed case still names who was responsible then.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class PositionType(models.TextChoices):
    """Position types; the escalation levels come first, in chain order (bottom → top)."""

    UNIT_HEAD = "unit_head", "单元长"
    BUILDING_HEAD = "building_head", "楼长"
    OWNERS_COMMITTEE = "owners_committee", "业主委员会"
    PROPERTY_MANAGER = "property_manager", "物业经理"
    COMMUNITY_CADRE = "community_cadre", "社区干部(网格长)"
    MEDIATION_COMMITTEE = "mediation_committee", "社区人民调解委员会"
    STREET_DISPATCHER = "street_dispatcher", "街道调度"
    # Not escalation levels, but positions that grant territory and do field work.
    GRID_MEMBER = "grid_member", "网格员"
    ETHNIC_AFFAIRS_DESK = "ethnic_affairs_desk", "街道民族宗教工作站"
    # 五员: the community's five staff roles.
    PUBLICITY_OFFICER = "publicity_officer", "宣传员"
    ORGANISER = "organiser", "组织员"
    INFORMATION_OFFICER = "information_officer", "信息员"
    LIAISON_OFFICER = "liaison_officer", "联络员"
    MEDIATOR = "mediator", "调处员"
    # Above the street: the district's 创建 office (区民族团结进步创建办 / 民宗局).
    DISTRICT_OFFICER = "district_officer", "区创建办"


# Which territory object each post in the street is held over: the posts that reach
# households, visit tasks and the escalation chain (and nothing above the street).
POSITION_TARGET: dict[str, str] = {
    PositionType.UNIT_HEAD: "unit",
    PositionType.BUILDING_HEAD: "building",
    PositionType.OWNERS_COMMITTEE: "compound",
    PositionType.PROPERTY_MANAGER: "compound",
    PositionType.COMMUNITY_CADRE: "grid",
    PositionType.GRID_MEMBER: "grid",
    PositionType.MEDIATION_COMMITTEE: "community",
    PositionType.PUBLICITY_OFFICER: "community",
    PositionType.ORGANISER: "community",
    PositionType.INFORMATION_OFFICER: "community",
    PositionType.LIAISON_OFFICER: "community",
    PositionType.MEDIATOR: "community",
    PositionType.STREET_DISPATCHER: "street",
    PositionType.ETHNIC_AFFAIRS_DESK: "street",
}
# Posts above the street, held over a district (区). Their holders reach no record about a
# person (their work scope is empty, their tier none): they read the district's and its
# streets' outlines, their 创建 figures side by side, and acknowledge their reports.
DISTRICT_TARGET: dict[str, str] = {PositionType.DISTRICT_OFFICER: "district"}
# Every position type → the territory object it is held over.
HELD_OVER: dict[str, str] = {**POSITION_TARGET, **DISTRICT_TARGET}
TARGET_FIELDS = ("district", "street", "community", "grid", "compound", "building", "unit")


def _exactly_one_target() -> Q:
    """Q that holds when exactly one of the territory foreign keys is set."""
    alternatives = Q()
    for chosen in TARGET_FIELDS:
        alternatives |= Q(
            **{f"{f}__isnull": f != chosen for f in TARGET_FIELDS},
        )
    return alternatives


class PositionQuerySet(models.QuerySet):
    def held_at(self, when: datetime | None = None) -> PositionQuerySet:
        """Positions whose validity covers ``when`` (default now), on leave or not."""
        when = when or timezone.now()
        return self.filter(Q(valid_from__lte=when), Q(valid_to__isnull=True) | Q(valid_to__gt=when))

    def active_at(self, when: datetime | None = None) -> PositionQuerySet:
        """Held at ``when`` and not on leave: the holders who can act."""
        return self.held_at(when).filter(on_leave=False)


class Position(models.Model):
    """One assignment of a member to a position over a territory object (岗位任职)."""

    position_type = models.CharField(max_length=32, choices=PositionType.choices)
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="positions"
    )
    district = models.ForeignKey(
        "territory.District", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    street = models.ForeignKey(
        "territory.Street", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    community = models.ForeignKey(
        "territory.Community", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    grid = models.ForeignKey(
        "territory.Grid", on_delete=models.CASCADE, null=True, blank=True, related_name="positions"
    )
    compound = models.ForeignKey(
        "territory.Compound", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    building = models.ForeignKey(
        "territory.Building", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    unit = models.ForeignKey(
        "territory.Unit", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    valid_from = models.DateTimeField(default=timezone.now)
    valid_to = models.DateTimeField(null=True, blank=True)
    on_leave = models.BooleanField(default=False)
    note = models.CharField(max_length=200, blank=True)

    objects = PositionQuerySet.as_manager()

    class Meta:
        ordering = ["position_type", "valid_from"]
        indexes = [
            models.Index(fields=["position_type", "grid"]),
            models.Index(fields=["position_type", "compound"]),
            models.Index(fields=["position_type", "building"]),
            models.Index(fields=["position_type", "unit"]),
            models.Index(fields=["position_type", "district"]),
            models.Index(fields=["member", "valid_to"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=models.F("valid_from")),
                name="position_valid_period",
            ),
            models.CheckConstraint(condition=_exactly_one_target(), name="position_one_target"),
        ]

    @property
    def target_field(self) -> str:
        return HELD_OVER[self.position_type]

    @property
    def target(self):
        return getattr(self, self.target_field)

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        field = HELD_OVER.get(self.position_type)
        if field is None:
            raise ValidationError({"position_type": "unknown position type"})
        if getattr(self, f"{field}_id") is None:
            raise ValidationError(
                {field: f"a {self.position_type} position is held over a {field}"}
            )
        others = [f for f in TARGET_FIELDS if f != field and getattr(self, f"{f}_id")]
        if others:
            raise ValidationError(
                {others[0]: f"a {self.position_type} is held over a {field} only"}
            )

    def __str__(self) -> str:
        return f"{self.get_position_type_display()} {self.member} @ {self.target}"


class TerritorySnapshot(models.Model):
    """What a member's phone holds, as the change feed last sent it (辖区快照).

    The feed's cursor names one of these. On every sync the member's territory now is compared
    with the cursor's: after a hand-over, leaving a post, a new position or a boundary
    re-import (a building moved to another grid) the two differ, and the feed tells the phone
    what to drop and brings what is new. ``data`` holds the buildings (with their grid) and
    units whose households the member sees, the positions' territory ids, and the tier per
    building (see ``gridsvc.visits.sync``); identical territories share one row (``digest``).
    Rows are never changed; a row no cursor names any more may be deleted (a phone that still
    holds such a cursor gets a 400 and does a first sync).
    """

    digest = models.CharField(max_length=64, unique=True)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"territory {self.digest[:12]}"
