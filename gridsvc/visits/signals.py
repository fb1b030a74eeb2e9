"""Signals: keep the change log for the phone's feed, and let tasks follow positions.

- Household / Resident saved or deleted → a :class:`ChangeLog` row (territory models have no
  ``updated_at``; the feed reads this log). Bulk operations send no signals: loaders that
  bulk-create households are read by a first (cursor-less) sync in full anyway.
- Position saved (hand-over 交接, leave, new holder) → :func:`reassign_open_tasks` for the
  households under it, in the save's own transaction: a hand-over either moves its open visit
  tasks or rolls back. (Run in an on-commit hook, a database that went away just after the
  commit left the tasks with the former holder for good and answered 500 to a stored
  hand-over; found by scripts/cluster_faults.py.)
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from gridsvc.chain.models import Position
from gridsvc.territory.models import Household, Resident

from .models import ChangeLog

VISITING_POSITION_TYPES = {
    "grid_member",
    "unit_head",
    "building_head",
    "owners_committee",
    "property_manager",
    "community_cadre",
    "mediation_committee",
    "street_dispatcher",
}


def _log_household(household_id: int | None, kind: str, deleted: bool = False) -> None:
    if household_id is None:
        return
    row = (
        Household.objects.filter(id=household_id)
        .values_list("unit_id", "unit__building_id")
        .first()
    )
    unit_id, building_id = row if row else (None, None)
    ChangeLog.objects.create(
        household_id_ref=household_id,
        unit_id_ref=unit_id,
        building_id_ref=building_id,
        kind=kind,
        deleted=deleted and kind == "household",
    )


def household_saved(sender, instance: Household, **kwargs) -> None:  # type: ignore[no-untyped-def]
    ChangeLog.objects.create(
        household_id_ref=instance.pk,
        unit_id_ref=instance.unit_id,
        building_id_ref=Household.objects.filter(pk=instance.pk)
        .values_list("unit__building_id", flat=True)
        .first(),
        kind="household",
    )


def household_deleted(sender, instance: Household, **kwargs) -> None:  # type: ignore[no-untyped-def]
    from gridsvc.territory.models import Unit

    ChangeLog.objects.create(
        household_id_ref=instance.pk,
        unit_id_ref=instance.unit_id,
        building_id_ref=Unit.objects.filter(pk=instance.unit_id)
        .values_list("building_id", flat=True)
        .first(),
        kind="household",
        deleted=True,
    )


def resident_changed(sender, instance: Resident, **kwargs) -> None:  # type: ignore[no-untyped-def]
    _log_household(instance.household_id, "resident")


def position_saved(sender, instance: Position, raw: bool = False, **kwargs) -> None:  # type: ignore[no-untyped-def]
    if raw or instance.position_type not in VISITING_POSITION_TYPES:
        return
    from gridsvc.chain.services import closing_for_hand_over

    if closing_for_hand_over():
        return  # the new holder's save, in the same transaction, re-picks the tasks once
    from gridsvc.community.venues import reassign_venue_tasks

    from .services import reassign_open_tasks

    # in the caller's transaction: the phones see the new holder's tasks at once, and an error
    # rolls the hand-over back. A hand-over's closing save is skipped (above): the tasks go
    # straight to the new holder, never through the level above (nor its interpreter calls).
    with transaction.atomic():
        reassign_open_tasks(position=instance)
        reassign_venue_tasks(position=instance)  # the religious venues' joint visits too


def connect() -> None:
    post_save.connect(household_saved, sender=Household, dispatch_uid="visits_hh_saved")
    post_delete.connect(household_deleted, sender=Household, dispatch_uid="visits_hh_deleted")
    post_save.connect(resident_changed, sender=Resident, dispatch_uid="visits_res_saved")
    post_delete.connect(resident_changed, sender=Resident, dispatch_uid="visits_res_deleted")
    post_save.connect(position_saved, sender=Position, dispatch_uid="visits_position_saved")
