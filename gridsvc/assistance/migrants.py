"""流动人口 from arrival to departure (issue 21 item 3): recording an arrival or a departure
tells the grid's members and cadre in their inbox (delivered through the phone's change feed);
the monthly inflow and outflow are counted from the records."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from gridsvc.chain.models import PositionType
from gridsvc.territory.models import Resident

from .models import Migrant
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


def record_arrival(actor: Any, resident: Resident, arrived_on: date, **fields: Any) -> Migrant:
    """来: a migrant arrives (or arrives again after a departure: the record is reopened)."""
    if resident.household is None:
        raise AssistanceError("the resident has no household here", "resident")
    _require(actor, resident.household, "submit")
    allowed = {f.name for f in Migrant._meta.get_fields()} - {
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
        _tell_grid(migrant, f"流动人口来住: {resident.name} ({arrived_on.isoformat()})")
    return migrant


def record_departure(
    actor: Any, migrant_id: int, departed_on: date, departed_to: str = ""
) -> Migrant:
    """走: the migrant left (where to, for the 两头对接 with the destination)."""
    with transaction.atomic():
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
        _tell_grid(migrant, f"流动人口离开: {migrant.resident.name} ({departed_on.isoformat()})")
    return migrant


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
