"""Religious venues (issue 20 item 6): the venues' contacts and the joint monthly visit
(每个月和清真寺共同走访) as a visit rule over the venues.

A :class:`gridsvc.visits.models.VisitRule` with ``target_group`` ``religious_venues`` makes,
for every period of its frequency, one :class:`VenueTask` per venue (a Place of kind mosque or
religious_venue), assigned like a household task to the holder of the rule's visiting level
over the venue's grid (网格员), climbing the chain when the grid has none. A
:class:`VenueVisit` to the venue dated inside the period completes it, whichever came first.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from gridsvc.chain.visibility import Tier, mask_phone
from gridsvc.territory.models import Place
from gridsvc.visits.periods import periods_overlapping

from .models import VenueTask, VenueVisit

RELIGIOUS_KINDS = (Place.Kind.MOSQUE, Place.Kind.RELIGIOUS_VENUE)


def venues() -> QuerySet[Place]:
    """Every religious venue that sits in a community (宗教活动场所)."""
    return Place.objects.filter(kind__in=RELIGIOUS_KINDS, community__isnull=False)


def generate_venue_tasks(
    rule: Any, start: date, end: date | None = None, *, when: datetime | None = None
) -> int:
    """Create ``rule``'s venue tasks for each period overlapping [start, end]; the number
    created. Idempotent (unique rule + venue + period start); a visit already recorded in
    the period makes the task done at once."""
    from gridsvc.visits.services import Assigner, HouseholdPlace, _due_on, local_day_start

    end = end or start
    places = list(venues().select_related("community"))
    made = 0
    for period in periods_overlapping(rule.frequency, start, end):
        at = when or timezone.now()
        at = min(max(at, local_day_start(period.start)), local_day_start(period.end))
        assigner = Assigner.load(at)
        have = set(
            VenueTask.objects.filter(rule=rule, period_start=period.start).values_list(
                "place_id", flat=True
            )
        )
        for place in places:
            if place.pk in have:
                continue
            community = place.community
            assert community is not None  # venues() keeps venues in a community
            street_id = community.street_id
            a = assigner.assign(
                rule.visitor_level,
                HouseholdPlace(None, None, None, place.grid_id, community.pk, street_id),
            )
            done = _visit_in(place.pk, period.start, period.end)
            VenueTask.objects.create(
                rule=rule,
                place=place,
                period=period.label,
                period_start=period.start,
                period_end=period.end,
                due_on=_due_on(rule, period),
                assigned_member_id=a.member_id,
                assigned_position_id=a.position_id,
                assigned_level=a.level,
                status=VenueTask.Status.DONE if done else VenueTask.Status.OPEN,
                done_by=done,
                street_id=street_id,
                community_id=community.pk,
                grid_id=place.grid_id,
                recorded_by_id=a.member_id or _system_user_id(),
            )
            made += 1
    return made


def _visit_in(place_id: int, first: date, last: date) -> VenueVisit | None:
    return (
        VenueVisit.objects.filter(place_id=place_id, date__gte=first, date__lte=last)
        .order_by("date", "id")
        .first()
    )


def _system_user_id() -> int:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(is_superuser=True).order_by("id").first()
    if user is None:
        user = get_user_model().objects.order_by("id").first()
    return user.pk  # type: ignore[union-attr]


def complete_venue_tasks(visit: VenueVisit) -> int:
    """A venue visit completes the open tasks of its venue whose period covers its date."""
    return VenueTask.objects.filter(
        place_id=visit.place_id,
        status=VenueTask.Status.OPEN,
        period_start__lte=visit.date,
        period_end__gte=visit.date,
    ).update(status=VenueTask.Status.DONE, done_by=visit, updated_at=timezone.now())


def present_venue_contact(data: dict[str, Any], phone: str, tier: Tier) -> dict[str, Any]:
    """A venue contact as the reader may see it: the phone in clear for staff and street,
    masked like a resident's (:func:`gridsvc.chain.visibility.mask_phone`) below."""
    if tier < Tier.STAFF:
        data["phone"] = mask_phone(phone)
        data["masked"] = ["phone"]
    else:
        data["masked"] = []
    return data
