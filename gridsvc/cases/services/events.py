"""The case timeline (append-only :class:`CaseEvent`) and inbox messages 消息 to the members
holding positions over the case's place."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.gis.geos import Point
from django.db.models import Q
from django.utils import timezone

from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.services import LEVELS
from gridsvc.supervision.models import InboxMessage

from .. import jobs
from ..models import (
    Case,
    CaseEvent,
)

if TYPE_CHECKING:
    from gridsvc.accounts.models import Member


def record(
    case: Case,
    kind: str,
    actor: Member | None = None,
    *,
    from_status: str = "",
    note: str = "",
    data: dict[str, Any] | None = None,
    location: Point | None = None,
    at: datetime | None = None,
) -> CaseEvent:
    event = new_event(
        case,
        kind,
        actor,
        from_status=from_status,
        note=note,
        data=data,
        location=location,
        at=at,
    )
    event.save(force_insert=True)
    return event


def new_event(
    case: Case,
    kind: str,
    actor: Member | None = None,
    *,
    from_status: str = "",
    note: str = "",
    data: dict[str, Any] | None = None,
    location: Point | None = None,
    at: datetime | None = None,
) -> CaseEvent:
    """The event :func:`record` stores, not saved yet (several in one INSERT:
    ``CaseEvent.objects.bulk_create``)."""
    return CaseEvent(
        case=case,
        kind=kind,
        from_status=from_status,
        to_status=case.status,
        actor=actor if getattr(actor, "pk", None) else None,
        at=at or timezone.now(),
        location=location,
        note=note,
        data=data or {},
        level=case.level,
    )


def inbox(
    member_ids: Iterable[int | None], kind: str, case: Case, title: str, body: str = ""
) -> int:
    """Put a message in each member's inbox (delivered by the change feed and the notifier)."""
    ids = inbox_messages(member_ids, kind, case, title, body)
    if ids:
        jobs.deliver_inbox_later(ids)
    return len(ids)


def inbox_messages(
    member_ids: Iterable[int | None], kind: str, case: Case, title: str, body: str = ""
) -> list[int]:
    """:func:`inbox` without queueing the delivery: the messages' ids, for the caller to queue
    with its other jobs in one statement (:func:`.deadlines.schedule_checks`)."""
    ids = sorted({m for m in member_ids if m})
    if not ids:
        return []
    messages = InboxMessage.objects.bulk_create(
        [
            InboxMessage(
                member_id=m,
                kind=kind,
                title=title[:200],
                body=body,
                object_type="case",
                object_id=str(case.pk),
            )
            for m in ids
        ]
    )
    return [m.pk for m in messages]


def posts_over(case: Case, position_types: Iterable[str]) -> Q:
    """A filter on Position: posts of ``position_types`` held over the case's place (its unit,
    building, compound, grid, community or street, as each type is held)."""
    target: dict[str, tuple[str, int | None]] = {
        PositionType.UNIT_HEAD: ("unit", case.unit_id),
        PositionType.BUILDING_HEAD: ("building", case.building_id),
        PositionType.OWNERS_COMMITTEE: ("compound", case.compound_id),
        PositionType.PROPERTY_MANAGER: ("compound", case.compound_id),
        PositionType.COMMUNITY_CADRE: ("grid", case.grid_id),
        PositionType.GRID_MEMBER: ("grid", case.grid_id),
        PositionType.MEDIATION_COMMITTEE: ("community", case.community_id),
        PositionType.STREET_DISPATCHER: ("street", case.street_id),
        PositionType.ETHNIC_AFFAIRS_DESK: ("street", case.street_id),
    }
    q = Q(pk__in=[])
    for ptype in position_types:
        attr, obj_id = target.get(ptype, (None, None))
        if attr and obj_id:
            q |= Q(position_type=ptype, **{f"{attr}_id": obj_id})
    return q


def holders_over(
    case: Case, position_types: Iterable[str], when: datetime | None = None
) -> list[int]:
    """Members holding any of ``position_types`` over the case's place (grid, compound …)."""
    q = posts_over(case, position_types)
    return list(
        Position.objects.active_at(when).filter(q).values_list("member_id", flat=True).distinct()
    )


def level_above_members(case: Case) -> list[int]:
    """Active holders of the first level above the case's current level that has one."""
    if case.level_index is None:
        return holders_over(case, [PositionType.STREET_DISPATCHER])
    for lvl in LEVELS[case.level_index + 1 :]:
        members = holders_over(case, [lvl.name])
        if members:
            return members
    return []


def dispatchers(case: Case) -> list[int]:
    return holders_over(case, [PositionType.STREET_DISPATCHER])
