"""Walk the 五位一体 chain for a place (DESIGN.md "The 五位一体 chain").

Escalation climbs: household head 家长 → unit head 单元长 → building head 楼长 → owners'
committee 业主委员会 → property manager 物业经理 → the grid's community cadre 社区干部 →
community mediation committee 社区调委会 → street dispatch desk 街道调度.

:func:`chain_for` returns every level with its holder or why it was skipped (vacant, on
leave, no such object — e.g. a building outside any compound has no property manager), so
anyone can see why a case landed where it did. One SQL query fetches all holders.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.gis.geos import Point
from django.utils import timezone

from gridsvc.errors import DomainError
from gridsvc.territory.models import Building, Compound, Household, Unit
from gridsvc.territory.services import Location, locate

from .models import Position, PositionType

if TYPE_CHECKING:
    from .scope import Scope


@dataclass(frozen=True)
class Level:
    """One rung of the escalation ladder."""

    index: int
    name: str  # position type (or household_head)
    label: str
    target: str  # territory attribute of Location


LEVELS: tuple[Level, ...] = (
    Level(0, "household_head", "户长", "household"),
    Level(1, PositionType.UNIT_HEAD.value, "单元长", "unit"),
    Level(2, PositionType.BUILDING_HEAD.value, "楼长", "building"),
    Level(3, PositionType.OWNERS_COMMITTEE.value, "业主委员会", "compound"),
    Level(4, PositionType.PROPERTY_MANAGER.value, "物业经理", "compound"),
    Level(5, PositionType.COMMUNITY_CADRE.value, "社区干部", "grid"),
    Level(6, PositionType.MEDIATION_COMMITTEE.value, "社区调委会", "community"),
    Level(7, PositionType.STREET_DISPATCHER.value, "街道调度台", "street"),
)
LEVEL_BY_NAME = {lvl.name: lvl for lvl in LEVELS}
STREET_LEVEL = LEVELS[-1]


def level_index(name: str) -> int:
    """Index of a level by name; raises KeyError for unknown names."""
    return LEVEL_BY_NAME[name].index


@dataclass
class Holder:
    member_id: int | None
    name: str
    position_id: int | None = None
    on_leave: bool = False


@dataclass
class ChainStep:
    """A level of the chain for one place: who holds it, or why it is skipped."""

    level: int
    level_name: str
    level_label: str
    object_type: str
    object_id: int | None
    object_name: str | None
    status: str  # active | vacant | on_leave | no_object | resident | desk
    holders: list[Holder] = field(default_factory=list)

    @property
    def can_act(self) -> bool:
        """Whether a case can be handed to this level (a member holds it and is at work)."""
        return self.status == "active" or self.status == "desk"

    @property
    def primary(self) -> Holder | None:
        active = [h for h in self.holders if not h.on_leave]
        return active[0] if active else None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["can_act"] = self.can_act
        return d


@dataclass
class Chain:
    location: Location
    when: datetime
    steps: list[ChainStep]

    def active(self) -> list[ChainStep]:
        """The levels whose holder can act, bottom to top."""
        return [s for s in self.steps if s.can_act]

    def first_active_from(self, level_name: str) -> tuple[ChainStep, list[ChainStep]]:
        """Walk up from ``level_name`` to the first level that can act.

        Returns the step and the steps walked (including skipped ones). The street desk
        always can act, so the walk always ends.
        """
        start = level_index(level_name)
        walked: list[ChainStep] = []
        for step in self.steps[start:]:
            walked.append(step)
            if step.can_act:
                return step, walked
        return self.steps[-1], walked  # pragma: no cover - street desk always acts

    def as_dict(self) -> dict:
        return {
            "when": self.when.isoformat(),
            "location": self.location.describe(),
            "steps": [s.as_dict() for s in self.steps],
        }


@dataclass(frozen=True)
class _Held:
    """A held position as the chain reads it (no model instance, no member row)."""

    position_type: str
    member_id: int
    member_name: str
    pk: int
    on_leave: bool


# every level's holders in one statement: an OR of (type, target) pairs, each on its index
_HOLDERS_SQL = """
SELECT p.position_type, p.member_id, COALESCE(NULLIF(m.display_name, ''), m.username), p.id,
       p.on_leave
FROM chain_position p JOIN accounts_member m ON m.id = p.member_id
WHERE p.valid_from <= %(now)s AND (p.valid_to IS NULL OR p.valid_to > %(now)s) AND (
  (p.position_type = 'unit_head' AND p.unit_id = %(unit)s)
  OR (p.position_type = 'building_head' AND p.building_id = %(building)s)
  OR (p.position_type IN ('owners_committee', 'property_manager')
      AND p.compound_id = %(compound)s)
  OR (p.position_type = 'community_cadre' AND p.grid_id = %(grid)s)
  OR (p.position_type = 'mediation_committee' AND p.community_id = %(community)s)
  OR (p.position_type = 'street_dispatcher' AND p.street_id = %(street)s))
ORDER BY p.valid_from, p.id
"""


def _holders_query(loc: Location, when: datetime) -> list[_Held]:
    ids = {
        attr: getattr(getattr(loc, attr), "pk", None)
        for attr in ("unit", "building", "compound", "grid", "community", "street")
    }
    if all(v is None for v in ids.values()):
        return []
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(_HOLDERS_SQL, {**ids, "now": when})
        return [_Held(*row) for row in cur.fetchall()]


def walk(loc: Location, when: datetime | None = None) -> Chain:
    """Build the chain for a resolved location at time ``when`` (default now)."""
    when = when or timezone.now()
    by_level: dict[str, list[_Held]] = {}
    for pos in _holders_query(loc, when):
        by_level.setdefault(pos.position_type, []).append(pos)

    steps: list[ChainStep] = []
    for lvl in LEVELS:
        obj = getattr(loc, lvl.target)
        step = ChainStep(
            level=lvl.index,
            level_name=lvl.name,
            level_label=lvl.label,
            object_type=lvl.target,
            object_id=getattr(obj, "pk", None),
            object_name=None if obj is None else str(obj),
            status="no_object",
        )
        if obj is None:
            pass
        elif lvl.name == "household_head":
            head = obj.head
            if head is not None:
                step.status = "resident"  # a resident, not a member account: informs, not acts
                step.holders = [Holder(member_id=None, name=head.name)]
            else:
                step.status = "vacant"
        else:
            held = by_level.get(lvl.name, [])
            step.holders = [
                Holder(
                    member_id=p.member_id,
                    name=p.member_name,
                    position_id=p.pk,
                    on_leave=p.on_leave,
                )
                for p in held
            ]
            if any(not p.on_leave for p in held):
                step.status = "active"
            elif held:
                step.status = "on_leave"
            elif lvl is STREET_LEVEL:
                step.status = "desk"  # the dispatch desk's queue is never vacant
            else:
                step.status = "vacant"
        steps.append(step)
    return Chain(location=loc, when=when, steps=steps)


def chain_for(
    *,
    household: Household | None = None,
    unit: Unit | None = None,
    building: Building | None = None,
    compound: Compound | None = None,
    point: Point | None = None,
    when: datetime | None = None,
) -> Chain:
    """The chain of responsible holders for a household, unit, building, compound or point."""
    loc = locate(point, household=household, unit=unit, building=building, compound=compound)
    return walk(loc, when)


def holders_at(position_type: str, target, when: datetime | None = None) -> list[Position]:
    """Who held ``position_type`` over ``target`` at ``when`` ("who held X over Y at T")."""
    from .models import HELD_OVER

    field_name = HELD_OVER[position_type]
    return list(
        Position.objects.held_at(when)
        .filter(position_type=position_type, **{field_name: target})
        .select_related("member")
        .order_by("valid_from", "id")
    )


def appoint(
    member, position_type: str, target, when: datetime | None = None, note: str = ""
) -> Position:
    """Open a post (任职): ``member`` holds ``position_type`` over ``target`` (the territory
    object :data:`~.models.HELD_OVER` names for the type: a district for 区创建办, a grid for a
    grid member …) from ``when`` (default now). Validated like any post (one target, of the
    right kind); a post changing hands is :func:`hand_over`, one ending is closed
    (``valid_to``)."""
    from django.core.exceptions import ValidationError

    from .models import HELD_OVER

    field_name = HELD_OVER[position_type]
    target_model = Position._meta.get_field(field_name).related_model
    if not (isinstance(target_model, type) and isinstance(target, target_model)):
        raise ValidationError({field_name: f"a {position_type} is held over a {field_name}"})
    position = Position(
        position_type=position_type,
        member=member,
        valid_from=when or timezone.now(),
        note=note,
        **{field_name: target},
    )
    position.full_clean()
    position.save()
    return position


#: set while :func:`hand_over` closes the old post: the post is vacant for an instant, and
#: whoever reacts to a post's save (visit tasks re-picked, interpreters called) waits for the
#: new holder's save instead of acting on the vacancy
_CLOSING_FOR_HAND_OVER: ContextVar[bool] = ContextVar("closing_for_hand_over", default=False)


def closing_for_hand_over() -> bool:
    """Whether the position being saved is the old post of a hand-over (交接), closed only to
    be opened for the new holder in the same transaction."""
    return _CLOSING_FOR_HAND_OVER.get()


def hand_over(
    position: Position, new_member, when: datetime | None = None, note: str = ""
) -> Position:
    """Close ``position`` at ``when`` and open the same position for ``new_member`` (交接)."""
    from django.db import transaction

    when = when or timezone.now()
    with transaction.atomic():
        position.valid_to = when
        token = _CLOSING_FOR_HAND_OVER.set(True)
        try:
            position.save(update_fields=["valid_to"])
        finally:
            _CLOSING_FOR_HAND_OVER.reset(token)
        new = Position(
            position_type=position.position_type,
            member=new_member,
            valid_from=when,
            note=note,
            **{position.target_field: position.target},
        )
        new.full_clean()
        new.save()
    return new


# ---------------------------------------------------------------- hand-over (交接) by a manager
#: field posts a community cadre (社区干部/网格长) hands over inside their grid
CADRE_HANDS_OVER = frozenset(
    {
        PositionType.GRID_MEMBER,
        PositionType.PROPERTY_MANAGER,
        PositionType.OWNERS_COMMITTEE,
        PositionType.BUILDING_HEAD,
        PositionType.UNIT_HEAD,
    }
)


class HandOverError(DomainError):
    """A hand-over refused: ``field`` names what is wrong, ``status`` the HTTP status (404 for
    a post the actor may not see: answered as not found, naming nothing)."""

    code = "hand_over_refused"

    def __init__(self, field_name: str, message: str, status: int = 400) -> None:
        super().__init__(message, field_name, status=status)

    @property
    def status(self) -> int:
        return self.status_code

    def body(self) -> dict[str, Any]:
        if self.status_code == 404:
            return {"detail": self.message}
        return super().body()


def hand_over_authority(actor) -> tuple[Scope, Scope]:
    """Where ``actor`` may hand posts over: (any post, field posts only).

    The street dispatcher (街道调度) hands over any post in their street; the community cadre
    of a grid hands over the field posts in it (:data:`CADRE_HANDS_OVER`: grid member,
    property manager and owners' committee of a compound with a building in the grid,
    building and unit heads). A superuser anywhere. Posts held while on leave give no
    authority."""
    from .scope import Scope

    if actor.is_superuser:
        return Scope(everything=True), Scope()
    rows = (
        Position.objects.active_at()
        .filter(
            member=actor,
            position_type__in=[PositionType.STREET_DISPATCHER, PositionType.COMMUNITY_CADRE],
        )
        .values_list("position_type", "street_id", "grid_id")
    )
    anything, field_posts = Scope(), Scope()
    for ptype, street_id, grid_id in rows:
        if ptype == PositionType.STREET_DISPATCHER:
            anything.street_ids.add(street_id)
        else:
            field_posts.grid_ids.add(grid_id)
    return anything, field_posts


def may_hand_over(actor, position: Position) -> bool:
    """Whether ``actor`` may hand ``position`` over (:func:`hand_over_authority`)."""
    anything, field_posts = hand_over_authority(actor)
    one = Position.objects.filter(pk=position.pk)
    if not anything.empty and anything.filter(one).exists():
        return True
    return (
        position.position_type in CADRE_HANDS_OVER
        and not field_posts.empty
        and field_posts.filter(one).exists()
    )


def hand_over_by(
    actor,
    position: Position,
    new_member,
    when: datetime | None = None,
    note: str = "",
) -> tuple[Position, bool]:
    """Hand ``position`` over to ``new_member`` on behalf of ``actor`` (交接, the API's rule).

    Returns (the successor's position, whether it was made now). Idempotent: if ``position``
    was already handed over to ``new_member`` the existing successor comes back (False).
    Refused (:class:`HandOverError`): an actor without authority over the post (404, as if it
    did not exist); a post already closed or handed to someone else (409); a new holder who
    is the old one, inactive, or holds posts only outside the actor's authority (400
    ``member``: "not found"); a time in the future or before the post began (400 ``when``).
    """
    from django.db import transaction

    with transaction.atomic():  # two managers handing the same post over: one wins
        position = Position.objects.select_for_update().get(pk=position.pk)
        return _hand_over_by(actor, position, new_member, when, note)


def _hand_over_by(actor, position: Position, new_member, when, note: str) -> tuple[Position, bool]:
    from .scope import Scope, scope_for

    if not may_hand_over(actor, position):
        raise HandOverError("detail", "no such position in your territory", 404)
    if position.valid_to is not None:
        successor = (
            Position.objects.filter(
                position_type=position.position_type,
                valid_from=position.valid_to,
                **{position.target_field: position.target},
            )
            .order_by("id")
            .first()
        )
        if successor is not None and successor.member_id == getattr(new_member, "pk", None):
            return successor, False
        raise HandOverError(
            "position",
            "this post was already closed"
            + (f" and handed to member {successor.member_id}" if successor else ""),
            409,
        )
    if new_member is None or not new_member.is_active or new_member.pk == position.member_id:
        raise HandOverError("member", "not found")
    anything, field_posts = hand_over_authority(actor)
    theirs = scope_for(new_member)
    if not (theirs.empty or anything.everything):
        held = Position.objects.held_at().filter(member=new_member)
        mine = Scope(
            street_ids=anything.street_ids, grid_ids=anything.grid_ids | field_posts.grid_ids
        )
        if not mine.filter(held).exists():
            raise HandOverError("member", "not found")
    now = timezone.now()
    when = when or now
    if when > now:
        raise HandOverError("when", "a hand-over is recorded when it happens, not ahead")
    if when <= position.valid_from:
        raise HandOverError("when", "must be after the post began")
    return hand_over(position, new_member, when=when, note=note), True
