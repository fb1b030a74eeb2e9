"""Religious venues (issue 20 item 6): the venues' contacts and the joint monthly visit
(每个月和清真寺共同走访) as a visit rule over the venues.

A :class:`gridsvc.visits.models.VisitRule` with ``target_group`` ``religious_venues`` makes,
for every period of its frequency, one :class:`VenueTask` per venue (a Place of kind mosque or
religious_venue), assigned like a household task to the holder of the rule's visiting level
over the venue's grid (网格员), climbing the chain when the grid has none. A
:class:`VenueVisit` to the venue dated inside the period completes it, whichever came first
(an overdue task too, and a missed one: the visit was made in its period, recorded late).

The clock is the household tasks' (:func:`gridsvc.visits.services.update_statuses`), run by
the daily job (:func:`gridsvc.visits.tasks.run_daily`): :func:`update_venue_statuses` moves
open tasks to overdue (逾期) once ``due_on`` has passed and open/overdue ones to missed (漏访)
after the period end plus the rule's grace days — from dates, so a run after the worker was
down catches up. :func:`reassign_venue_tasks` re-picks the visitor of open/overdue tasks when a
position over the venue changes hands (交接), goes on leave or falls vacant, like
:func:`gridsvc.visits.services.reassign_open_tasks` for households. Every status or assignee
write moves ``updated_at`` (the phone's feed, ``venue_tasks`` stream).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import Tier, mask_phone
from gridsvc.territory.models import Place
from gridsvc.visits.periods import periods_overlapping

from .models import VenueTask, VenueVisit

RELIGIOUS_KINDS = (Place.Kind.MOSQUE, Place.Kind.RELIGIOUS_VENUE)
#: the statuses a venue visit or a new visitor still changes
OPEN_STATUSES = (VenueTask.Status.OPEN, VenueTask.Status.OVERDUE)
#: what a visit dated in the period completes (missed: marked while the visit was unrecorded)
CLOSABLE_STATUSES = (*OPEN_STATUSES, VenueTask.Status.MISSED)


def venues() -> QuerySet[Place]:
    """Every religious venue that sits in a community (宗教活动场所)."""
    return Place.objects.filter(kind__in=RELIGIOUS_KINDS, community__isnull=False)


def generate_venue_tasks(
    rule: Any,
    start: date,
    end: date | None = None,
    *,
    when: datetime | None = None,
    places: QuerySet[Place] | None = None,
) -> int:
    """Create ``rule``'s venue tasks for each period overlapping [start, end]; the number
    created. Idempotent (unique rule + venue + period start); a visit already recorded in
    the period makes the task done at once. ``places`` limits it to those venues (default:
    every venue, :func:`venues`)."""
    from gridsvc.visits.periods import due_date, local_day_start
    from gridsvc.visits.services import Assigner

    end = end or start
    chosen = venues() if places is None else venues().filter(pk__in=places.values("pk"))
    places_list = list(chosen.select_related("community"))
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
        for place in places_list:
            if place.pk in have:
                continue
            community = place.community
            assert community is not None  # venues() keeps venues in a community
            street_id = community.street_id
            a = assigner.assign(
                rule.visitor_level, _venue_place(place.grid_id, community.pk, street_id)
            )
            done = _visit_in(place.pk, period.start, period.end)
            VenueTask.objects.create(
                rule=rule,
                place=place,
                period=period.label,
                period_start=period.start,
                period_end=period.end,
                due_on=due_date(rule, period),
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


def _venue_place(grid: int | None, community: int, street: int) -> Any:
    """Where a venue sits, as the assigner reads a household's place (no unit or building:
    a venue's visitor is found from its grid up)."""
    from gridsvc.visits.services import HouseholdPlace

    return HouseholdPlace(None, None, None, grid, community, street)


def update_venue_statuses(
    today: date | None = None, *, places: QuerySet[Place] | None = None
) -> dict[str, int]:
    """The venue tasks' clock (the household tasks' rule): open → overdue (逾期) once
    ``due_on`` has passed; open/overdue → missed (漏访) after the period end plus the rule's
    grace days. From dates, so a run after days without one catches up. ``places`` limits it
    to those venues' tasks. Returns ``{"venue_overdue": n, "venue_missed": n}``."""
    from gridsvc.visits.models import VisitRule
    from gridsvc.visits.periods import local_today

    today = today or local_today()
    now = timezone.now()
    tasks = VenueTask.objects.all()
    if places is not None:
        tasks = tasks.filter(place__in=places.values("pk"))
    missed = 0
    with transaction.atomic():
        rules = VisitRule.objects.filter(pk__in=VenueTask.objects.values("rule_id"))
        for rule_id, grace in rules.values_list("id", "grace_days"):
            missed += tasks.filter(
                rule_id=rule_id,
                status__in=OPEN_STATUSES,
                period_end__lt=today - timedelta(days=grace),
            ).update(status=VenueTask.Status.MISSED, updated_at=now)
        overdue = tasks.filter(status=VenueTask.Status.OPEN, due_on__lt=today).update(
            status=VenueTask.Status.OVERDUE, updated_at=now
        )
    return {"venue_overdue": overdue, "venue_missed": missed}


def reassign_venue_tasks(*, position: Any = None, when: datetime | None = None) -> int:
    """Re-pick the visitor of open and overdue venue tasks (after a hand-over 交接, leave, a
    vacancy), like :func:`gridsvc.visits.services.reassign_open_tasks` for households.
    Limited to the venues under ``position`` (a grid, community or street post; a post over a
    compound, building or unit has no venue under it). Returns how many changed hands; their
    ``updated_at`` moves so phones pick the change up."""
    from gridsvc.visits.services import Assigner

    qs = VenueTask.objects.filter(status__in=OPEN_STATUSES).select_related("rule")
    if position is not None:
        field = position.target_field
        if field not in ("grid", "community", "street"):
            return 0
        qs = qs.filter(**{f"{field}_id": getattr(position, f"{field}_id")})
    tasks = list(qs)
    if not tasks:
        return 0
    assigner = Assigner.load(when or timezone.now())
    now = timezone.now()
    changed = []
    for t in tasks:
        a = assigner.assign(
            t.rule.visitor_level, _venue_place(t.grid_id, t.community_id, t.street_id)
        )
        if (t.assigned_member_id, t.assigned_position_id) != (a.member_id, a.position_id):
            t.assigned_member_id, t.assigned_position_id = a.member_id, a.position_id
            t.assigned_level, t.updated_at = a.level, now
            changed.append(t)
    VenueTask.objects.bulk_update(
        changed, ["assigned_member", "assigned_position", "assigned_level", "updated_at"]
    )
    return len(changed)


def feed_venue_tasks(member: Any, scope: Scope) -> QuerySet[VenueTask]:
    """The venue tasks of the phone's feed (``venue_tasks``): the caller's own and, for staff
    above the grid (a community's or the street's, from ``scope``: their work scope), those
    in that territory. A grid's staff get their own only: the phone carries their workload,
    the REST list (:func:`visible_venue_tasks`) the grid's."""
    own = Q(assigned_member=member) if getattr(member, "is_authenticated", False) else Q(pk__in=[])
    above = Scope(
        everything=scope.everything,
        street_ids=set(scope.street_ids),
        community_ids=set(scope.community_ids),
    )
    if above.empty:
        return VenueTask.objects.filter(own)
    return VenueTask.objects.filter(
        Q(pk__in=above.filter(VenueTask.objects.all()).values("pk")) | own
    )


def visible_venue_tasks(member: Any, in_scope: QuerySet[VenueTask]) -> QuerySet[VenueTask]:
    """The venue tasks ``member`` reads: those in their work territory (``in_scope``) and their
    own (assigned to them)."""
    if not getattr(member, "is_authenticated", False):
        return in_scope
    return VenueTask.objects.filter(Q(pk__in=in_scope.values("pk")) | Q(assigned_member=member))


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
    """A venue visit completes the undone tasks of its venue whose period covers its date:
    open, overdue (a late visit inside the period) or missed (the visit was made in its period
    and recorded after the clock gave it up, as a household visit synced late closes a missed
    task)."""
    return VenueTask.objects.filter(
        place_id=visit.place_id,
        status__in=CLOSABLE_STATUSES,
        period_start__lte=visit.date,
        period_end__gte=visit.date,
    ).update(status=VenueTask.Status.DONE, done_by=visit, updated_at=timezone.now())


def judge_fix(
    place: Place,
    lon: float | None,
    lat: float | None,
    accuracy_m: float | None = None,
    exif_points: list[tuple[float, float] | None] | None = None,
) -> dict[str, Any]:
    """Where a venue visit was recorded, judged by the household visits' rule
    (:mod:`gridsvc.visits.ingest`): the phone's GPS fix (WGS84, ``location_source`` ``gps``,
    its accuracy graded), else the first photo's EXIF point (``photo_exif``); its distance to
    the venue (PostGIS geography, metres, 2 decimals) and ``far_off`` beyond
    ``GRIDSVC["VISIT_FAR_OFF_M"]`` (:func:`gridsvc.visits.ingest.far_off_threshold_m`) —
    flagged, never refused. The model fields of :class:`VenueVisit` (none without a fix)."""
    from django.contrib.gis.geos import Point
    from django.db import connection

    from gridsvc.visits.ingest import _judge, far_off_threshold_m

    if lon is not None and lat is not None:
        source, point = "gps", (lon, lat)
    else:
        point = next((p for p in exif_points or [] if p), None)
        source = "photo_exif" if point else ""
    if point is None:
        return {}
    with connection.cursor() as cur:
        cur.execute(
            f"""SELECT round(ST_Distance(ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography,
                                         point::geography)::numeric, 2)::float8
                  FROM {Place._meta.db_table} WHERE id = %s""",
            [point[0], point[1], place.pk],
        )
        row = cur.fetchone()
    distance = row[0] if row else None
    return {
        "location": Point(point[0], point[1], srid=4326),
        "location_source": source,
        "accuracy_m": accuracy_m if source == "gps" else None,
        "accuracy_grade": _judge(accuracy_m) if source == "gps" else "",
        "distance_m": distance,
        "far_off": distance is not None and distance > far_off_threshold_m(),
    }


def present_venue_contact(data: dict[str, Any], phone: str, tier: Tier) -> dict[str, Any]:
    """A venue contact as the reader may see it: the phone in clear for staff and street,
    masked like a resident's (:func:`gridsvc.chain.visibility.mask_phone`) below."""
    if tier < Tier.STAFF:
        data["phone"] = mask_phone(phone)
        data["masked"] = ["phone"]
    else:
        data["masked"] = []
    return data
