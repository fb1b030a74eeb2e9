"""流动人口 from arrival to departure (issue 21 item 3): recording an arrival or a departure
tells the grid's members and cadre in their inbox (delivered through the phone's change feed);
the monthly inflow and outflow are counted from the records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from gridsvc.chain.models import PositionType
from gridsvc.territory.models import Resident

from .models import Migrant, MigrantMove
from .services import AssistanceError, _require

GRID_FEED = (PositionType.GRID_MEMBER, PositionType.COMMUNITY_CADRE)


def _tell_grid(migrant: Migrant, title: str) -> int:
    from gridsvc.cases.jobs import deliver_inbox_later
    from gridsvc.chain.models import Position
    from gridsvc.supervision.models import InboxMessage

    household = migrant.resident.household
    grid_id = household.unit.building.grid_id if household else None
    if grid_id is None:
        return 0
    ids = sorted(
        set(
            Position.objects.active_at()
            .filter(position_type__in=GRID_FEED, grid_id=grid_id)
            .values_list("member_id", flat=True)
        )
    )
    rows = InboxMessage.objects.bulk_create(
        [
            InboxMessage(
                member_id=m,
                kind=InboxMessage.Kind.OTHER,
                title=title[:200],
                object_type="migrant",
                object_id=str(migrant.pk),
            )
            for m in ids
        ]
    )
    deliver_inbox_later([r.pk for r in rows])
    return len(rows)


@dataclass
class Recorded:
    """An arrival or departure as recorded: the migrant, and whether it was recorded now
    (false: this ``client_uuid`` was recorded before and nothing was done again)."""

    migrant: Migrant
    created: bool


def _already(client_uuid: uuid.UUID | None, move: str) -> Migrant | None:
    """The migrant of a move already recorded under ``client_uuid`` (a retry), or None."""
    if client_uuid is None:
        return None
    done = MigrantMove.objects.select_related("migrant").filter(client_uuid=client_uuid).first()
    if done is None:
        return None
    if done.move != move:
        raise AssistanceError(f"this client_uuid was used for a {done.move}", "client_uuid")
    return done.migrant


def record_arrival(
    actor: Any,
    resident: Resident,
    arrived_on: date,
    *,
    client_uuid: uuid.UUID | None = None,
    **fields: Any,
) -> Migrant:
    """来: a migrant arrives (or arrives again after a departure: the record is reopened).
    ``client_uuid``: the phone's id of the arrival; sent again, nothing is recorded twice."""
    return arrive(actor, resident, arrived_on, client_uuid=client_uuid, **fields).migrant


def arrive(
    actor: Any,
    resident: Resident,
    arrived_on: date,
    *,
    client_uuid: uuid.UUID | None = None,
    **fields: Any,
) -> Recorded:
    """:func:`record_arrival`, telling whether it was recorded now."""
    if resident.household is None:
        raise AssistanceError("the resident has no household here", "resident")
    _require(actor, resident.household, "submit")
    allowed = {f.name for f in Migrant._meta.get_fields() if f.concrete} - {
        "id",
        "resident",
        "arrived_on",
        "departed_on",
        "recorded_by",
        "created_at",
        "updated_at",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise AssistanceError(f"unknown fields {sorted(unknown)}", sorted(unknown)[0])
    with transaction.atomic():
        done = _already(client_uuid, MigrantMove.Move.ARRIVAL)
        if done is not None:
            if done.resident_id != resident.pk:
                raise AssistanceError(
                    "this client_uuid was used for another resident", "client_uuid"
                )
            return Recorded(done, False)
        migrant, _ = Migrant.objects.select_for_update().update_or_create(
            resident=resident,
            defaults={
                "arrived_on": arrived_on,
                "departed_on": None,
                "departed_to": "",
                "recorded_by": actor,
                **fields,
            },
        )
        MigrantMove.objects.create(
            migrant=migrant,
            move=MigrantMove.Move.ARRIVAL,
            on=arrived_on,
            client_uuid=client_uuid,
            recorded_by=actor,
        )
        _tell_grid(migrant, f"流动人口来住: {resident.name} ({arrived_on.isoformat()})")
    return Recorded(migrant, True)


def record_departure(
    actor: Any,
    migrant_id: int,
    departed_on: date,
    departed_to: str = "",
    *,
    client_uuid: uuid.UUID | None = None,
) -> Migrant:
    """走: the migrant left (where to, for the 两头对接 with the destination)."""
    return depart(actor, migrant_id, departed_on, departed_to, client_uuid=client_uuid).migrant


def depart(
    actor: Any,
    migrant_id: int,
    departed_on: date,
    departed_to: str = "",
    *,
    client_uuid: uuid.UUID | None = None,
) -> Recorded:
    """:func:`record_departure`, telling whether it was recorded now (a departure sent again
    under its ``client_uuid`` is not a 409, it is the same departure)."""
    with transaction.atomic():
        done = _already(client_uuid, MigrantMove.Move.DEPARTURE)
        if done is not None:
            if done.pk != migrant_id:
                raise AssistanceError(
                    "this client_uuid was used for another migrant", "client_uuid"
                )
            return Recorded(done, False)
        migrant = (
            Migrant.objects.select_for_update(of=("self",))
            .select_related("resident__household")
            .get(pk=migrant_id)
        )
        _require(actor, migrant.resident.household, "submit")
        if migrant.departed_on is not None:
            raise AssistanceError("already departed", "departed_on", status=409, code="conflict")
        if departed_on < migrant.arrived_on:
            raise AssistanceError("departure before arrival", "departed_on")
        migrant.departed_on, migrant.departed_to = departed_on, departed_to
        migrant.save()
        MigrantMove.objects.create(
            migrant=migrant,
            move=MigrantMove.Move.DEPARTURE,
            on=departed_on,
            place=departed_to,
            client_uuid=client_uuid,
            recorded_by=actor,
        )
        _tell_grid(migrant, f"流动人口离开: {migrant.resident.name} ({departed_on.isoformat()})")
    return Recorded(migrant, True)


def flows(qs: QuerySet[Migrant], first: date, last: date) -> dict[str, int]:
    """Inflow and outflow between ``first`` and ``last`` (inclusive), and those present at
    the end; 居住证 expiring within the span."""
    return {
        "arrived": qs.filter(arrived_on__range=(first, last)).count(),
        "departed": qs.filter(departed_on__range=(first, last)).count(),
        "present": qs.filter(arrived_on__lte=last).exclude(departed_on__lte=last).count(),
        "permits_expiring": qs.filter(
            permit=Migrant.Permit.ISSUED, permit_expires__range=(first, last)
        ).count(),
    }
