"""The phone and people's services (issue 21 item 1): a change feed of the applications and
migrants in the member's grids, and an offline batch of what a grid member records on a visit
(申请 started from a visit, a migrant's arrival or departure).

Kept apart from the main sync feed (:mod:`gridsvc.visits.sync`) like the community's
(:func:`gridsvc.community.services.changes`): the same signed cursors (one per feed and
member), rows by ``(updated_at, id)``. Only the staff part of the member's scope
(:func:`gridsvc.chain.visibility.staff_scope`) is read: neighbours' roles (楼长, 单元长, 物业,
业委会) get nothing, a grid member who is also a building head elsewhere gets only their
grids' rows. Income, amounts and the home contact's phone are always masked in the feed (a
phone keeps no clear sensitive value; clear values need an unmask grant on the web API).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from django.db.models import Model, QuerySet
from django.utils import timezone

from gridsvc.chain.scope import scope_for
from gridsvc.chain.visibility import Tier, staff_scope, tier_for
from gridsvc.territory.models import Household, Resident

from . import migrants, services
from .models import Application, Migrant

FEED_NAME = "assistance"
BATCH_KINDS = ("application", "arrival", "departure")


def _staff_households(member: Any) -> QuerySet[Household]:
    if tier_for(member) < Tier.STAFF:
        return Household.objects.none()
    return staff_scope(scope_for(member)).filter(Household.objects.all())


def feed_applications(member: Any) -> QuerySet[Application]:
    """Applications the member's phone holds: those of households in the staff part of their
    scope (the ones they started among them)."""
    qs = services.visible_applications(scope_for(member), member)
    return qs.prefetch_related("events__actor", "attachments")


def feed_migrants(member: Any) -> QuerySet[Migrant]:
    """Migrants living (or who lived) in the staff part of the member's scope."""
    qs = Migrant.objects.select_related("resident")
    if tier_for(member) < Tier.STAFF:
        return qs.none()
    return staff_scope(scope_for(member)).filter(qs)


FEED_STREAMS = {"applications": feed_applications, "migrants": feed_migrants}


def changes(
    member: Any, cursor: str | None, limit: int = 500
) -> tuple[dict[str, list[Any]], str, bool]:
    """The phone's feed of applications and migrants: without ``cursor`` all of them, with
    it what was saved after it, ``limit`` rows per stream. Returns (rows per stream, the next
    cursor, whether more is waiting). A cursor of another feed or member raises
    ``BadCursor``."""
    from gridsvc.visits.sync import BadCursor, _after, _mark, decode_cursor, encode_cursor

    state = decode_cursor(cursor, member.pk)
    if state and state.get("feed") != FEED_NAME:
        raise BadCursor("not a cursor of the assistance feed: sync from the start (no since)")
    state["feed"] = FEED_NAME
    out: dict[str, list[Any]] = {}
    more = False
    for key, rows_of in FEED_STREAMS.items():
        qs = _after(rows_of(member), state.get(key))
        rows = list(qs.order_by("updated_at", "id")[: limit + 1])
        if len(rows) > limit:
            more, rows = True, rows[:limit]
        if rows:
            state[key] = _mark(rows[-1].updated_at, rows[-1].pk)
        out[key] = rows
    return out, encode_cursor(state, member.pk), more


# ---------------------------------------------------------------- the offline batch
def _not_found(field: str) -> services.AssistanceError:
    return services.AssistanceError("not found", field)


def _resident(member: Any, resident_id: Any) -> Resident:
    if resident_id is None:
        raise services.AssistanceError("name the resident", "resident")
    found = Resident.objects.filter(pk=resident_id, household__in=_staff_households(member)).first()
    if found is None:
        raise _not_found("resident")
    return found


def _start_application(member: Any, data: dict[str, Any], key: uuid.UUID) -> tuple[Model, bool]:
    from gridsvc.visits.models import Visit

    household = _staff_households(member).filter(pk=data.get("household")).first()
    if household is None:
        raise _not_found("household")
    applicant = None
    if data.get("applicant") is not None:
        applicant = Resident.objects.filter(pk=data["applicant"], household=household).first()
        if applicant is None:
            raise _not_found("applicant")
    visit = None
    if data.get("visit") is not None or data.get("visit_uuid") is not None:
        visits = Visit.objects.filter(household=household)
        if data.get("visit") is not None:
            visit = visits.filter(pk=data["visit"]).first()
            field = "visit"
        else:
            visit = visits.filter(client_uuid=data["visit_uuid"]).first()
            field = "visit_uuid"
        if visit is None:
            raise _not_found(field)
    made_at: datetime | None = data.get("made_at")
    if made_at is not None:
        made_at = min(made_at, timezone.now())  # a phone clock running ahead moves nothing
    out = services.submit(
        member,
        household,
        data["kind"],
        applicant=applicant,
        visit=visit,
        reason=data.get("reason", ""),
        client_uuid=key,
        now=made_at,
    )
    return out.application, out.created


def _arrival(member: Any, data: dict[str, Any], key: uuid.UUID) -> tuple[Model, bool]:
    data = dict(data)
    resident = _resident(member, data.pop("resident", None))
    arrived_on: date = data.pop("arrived_on")
    out = migrants.arrive(member, resident, arrived_on, client_uuid=key, **data)
    return out.migrant, out.created


def _departure(member: Any, data: dict[str, Any], key: uuid.UUID) -> tuple[Model, bool]:
    mine = feed_migrants(member)
    if data.get("migrant") is not None:
        migrant = mine.filter(pk=data["migrant"]).first()
        field = "migrant"
    else:
        migrant = mine.filter(resident_id=data.get("resident")).first()
        field = "resident"
    if migrant is None:
        raise _not_found(field)
    out = migrants.depart(
        member, migrant.pk, data["departed_on"], data.get("departed_to", ""), client_uuid=key
    )
    return out.migrant, out.created


def record_offline(
    member: Any, kind: str, data: dict[str, Any], client_uuid: uuid.UUID
) -> tuple[Model, bool]:
    """Store one item of an offline batch through the same rules as its single request:
    ``application`` (申请, from a visit: ``visit`` id or the visit's own ``visit_uuid``),
    ``arrival`` (来) or ``departure`` (走, by ``migrant`` or ``resident``). Ids are resolved
    in the staff part of the member's scope (a foreign one is "not found"). Idempotent by
    ``client_uuid``: returns the row and whether it was stored now."""
    if tier_for(member) < Tier.STAFF:
        raise services.NotAllowed("neighbours' roles do not handle assistance")
    if kind == "application":
        return _start_application(member, data, client_uuid)
    if kind == "arrival":
        return _arrival(member, data, client_uuid)
    if kind == "departure":
        return _departure(member, data, client_uuid)
    raise services.AssistanceError(f"one of {', '.join(BATCH_KINDS)}", "kind")
