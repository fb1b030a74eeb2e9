"""Visit domain rules: task generation, statuses, reassignment, coverage, route, 一日一报.

- :func:`generate_tasks` makes the due tasks (走访任务) of every active rule for the periods
  overlapping a span; idempotent (unique rule + household + period start, bulk insert with
  ON CONFLICT DO NOTHING).
- :func:`assigner_for` / :class:`Assigner` pick who visits: the holder of the rule's chain
  level over the household (grid member 网格员 of the building's grid, unit head 单元长,
  building head 楼长 …), climbing the chain past vacancies and leave.
- :func:`update_statuses`: open → overdue after the window, open/overdue → missed after the
  period end + grace.
- :func:`reassign_open_tasks`: when a position changes hands, its open tasks follow.
- :func:`coverage`: due / done / overdue / missed / flagged per grid or member (reports reuse it).
- :func:`todays_route`: the member's due tasks in walking order (geo.route).
- :func:`members_missing_daily_report`: 一日一报 not yet sent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from gridsvc.chain import visibility
from gridsvc.chain.models import POSITION_TARGET, Position, PositionType
from gridsvc.chain.services import LEVELS, level_index
from gridsvc.community.languages import attach_to_new_tasks, speakers_for_households
from gridsvc.community.models import InterpreterCall
from gridsvc.territory.models import Household, Resident

from .models import ALL_HOUSEHOLDS, RELIGIOUS_VENUES, DailyReport, Visit, VisitRule, VisitTask
from .periods import due_date, periods_overlapping
from .periods import local_day_start as local_day_start
from .periods import local_today as local_today

GRID_MEMBER = PositionType.GRID_MEMBER.value
# Positions that do field work and send the daily report (一日一报).
FIELD_POSITION_TYPES = (
    PositionType.GRID_MEMBER.value,
    PositionType.COMMUNITY_CADRE.value,
    PositionType.BUILDING_HEAD.value,
    PositionType.UNIT_HEAD.value,
)

# ---------------------------------------------------------------- hooks of the apps above
# The visits stand below the community work (gridsvc.community imports the visits, never the
# reverse); what the daily run and the 一日一报 list ask of it comes through these hooks, filled
# by CommunityConfig.ready (gridsvc/community/apps.py).

#: who makes the tasks of a rule that is not visited household by household, by its
#: ``target_group``: ``maker(rule, start, end, when=...) -> tasks made``. The religious
#: venues' joint visits (RELIGIOUS_VENUES, 宗教场所共同走访):
#: :func:`gridsvc.community.venues.generate_venue_tasks`.
GROUP_TASK_MAKERS: dict[str, Callable[..., int]] = {}

#: who else owes a daily report, added to :func:`members_missing_daily_report`'s rows:
#: ``chase(rows_by_member, scope, day, member) -> None``. The 五员's screening report:
#: :func:`gridsvc.community.services.chase_screening`.
DAILY_REPORT_CHASERS: list[Callable[..., None]] = []


# ---------------------------------------------------------------- who visits
def climb_order(level: str) -> list[str]:
    """Position types tried in order for a rule's ``visitor_level`` (vacant/leave skipped)."""
    if level == GRID_MEMBER:
        start = level_index(PositionType.COMMUNITY_CADRE.value)
        return [GRID_MEMBER] + [lvl.name for lvl in LEVELS[start:]]
    return [lvl.name for lvl in LEVELS[max(1, level_index(level)) :]]


@dataclass
class HouseholdPlace:
    """Where a household sits in the territory (ids only)."""

    unit: int | None
    building: int | None
    compound: int | None
    grid: int | None
    community: int | None
    street: int | None

    def target(self, name: str) -> int | None:
        return getattr(self, name)


@dataclass
class Assignment:
    level: str
    position_id: int | None
    member_id: int | None


@dataclass
class Assigner:
    """Holders of every visiting position at one time, loaded in one query.

    ``holders[(position_type, target_id)]`` is the first active holder (earliest valid_from).
    """

    when: datetime
    holders: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    # every active holder of a post, for a preference among them (the household's language)
    all_holders: dict[tuple[str, int], list[tuple[int, int]]] = field(default_factory=dict)

    @classmethod
    def load(cls, when: datetime) -> Assigner:
        self = cls(when=when)
        rows = (
            Position.objects.active_at(when)
            .filter(position_type__in=list(POSITION_TARGET))
            .order_by("valid_from", "id")
            .values_list(
                "id",
                "member_id",
                "position_type",
                "street_id",
                "community_id",
                "grid_id",
                "compound_id",
                "building_id",
                "unit_id",
            )
        )
        for pid, member_id, ptype, *targets in rows:
            target = next(t for t in targets if t is not None)
            self.holders.setdefault((ptype, target), (pid, member_id))
            self.all_holders.setdefault((ptype, target), []).append((pid, member_id))
        return self

    def assign(
        self, level: str, place: HouseholdPlace, prefer: set[int] | None = None
    ) -> Assignment:
        """The first active holder up from ``level``; among several holders of that post, one
        of ``prefer`` (members speaking the household's language, issue 20) first."""
        for ptype in climb_order(level):
            target = place.target(POSITION_TARGET[ptype])
            if target is None:
                continue
            held = self.holders.get((ptype, target))
            if held and prefer:
                held = next((h for h in self.all_holders[(ptype, target)] if h[1] in prefer), held)
            if held:
                return Assignment(ptype, held[0], held[1])
        return Assignment("", None, None)


def household_places(households: QuerySet | list[int] | None = None) -> dict[int, HouseholdPlace]:
    """Territory ids of households (all if None), one query."""
    qs = Household.objects.all()
    if households is not None:
        qs = qs.filter(id__in=households)
    rows = qs.values_list(
        "id",
        "unit_id",
        "unit__building_id",
        "unit__building__compound_id",
        "unit__building__grid_id",
        "unit__building__grid__community_id",
        "unit__building__grid__community__street_id",
    )
    return {hid: HouseholdPlace(*rest) for hid, *rest in rows}


# ---------------------------------------------------------------- generation
@dataclass
class GenerationResult:
    created: int = 0
    existing: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "existing": self.existing, "by_rule": self.by_rule}


def target_households(rule: VisitRule) -> dict[int, int | None]:
    """household id → resident the visit is about (lowest id of the group), for a rule; in
    household order, so that tasks are made (and numbered) in the same order every time."""
    if rule.target_group == ALL_HOUSEHOLDS:
        return dict.fromkeys(Household.objects.order_by("id").values_list("id", flat=True))
    if rule.target_group == RELIGIOUS_VENUES:  # venue tasks: generate_venue_tasks
        return {}
    rows = (
        Resident.objects.filter(tags__contains=[rule.target_group], household__isnull=False)
        .values("household_id")
        .annotate(first=Min("id"))
        .order_by("household_id")
        .values_list("household_id", "first")
    )
    return dict(rows)


def generate_tasks(
    start: date,
    end: date | None = None,
    *,
    rules: QuerySet | list[VisitRule] | None = None,
    when: datetime | None = None,
    households: QuerySet | None = None,
) -> GenerationResult:
    """Create the tasks of every active rule for each period overlapping [start, end].

    Idempotent: the unique constraint (rule, household, period start) and
    ``ON CONFLICT DO NOTHING`` mean a second run creates nothing. The visitor is the holder
    of the rule's level at ``when`` (default: now, kept inside the period). ``households``
    limits the run to those households (default: every household in the database).
    """
    end = end or start
    rules = list(rules if rules is not None else VisitRule.objects.filter(active=True))
    result = GenerationResult()
    places = household_places(households)
    existing = VisitTask.objects.all()
    if households is not None:
        existing = existing.filter(household__in=households)
    assigners: dict[datetime, Assigner] = {}
    speakers = speakers_for_households(households)  # residents needing an interpreter
    for rule in rules:
        if rule.target_group == RELIGIOUS_VENUES:
            if households is None:  # a run limited to some households makes no venue tasks
                made = GROUP_TASK_MAKERS[rule.target_group](rule, start, end, when=when)
                result.by_rule[rule.code] = made
                result.created += made
            continue
        targets = target_households(rule)
        made = 0
        for period in periods_overlapping(rule.frequency, start, end):
            at = when or timezone.now()
            at = min(max(at, local_day_start(period.start)), local_day_start(period.end))
            assigner = assigners.get(at) or assigners.setdefault(at, Assigner.load(at))
            due_on = due_date(rule, period)
            rows = []
            for hid, resident_id in targets.items():
                place = places.get(hid)
                if place is None:
                    continue
                a = assigner.assign(rule.visitor_level, place, speakers.get(hid))
                rows.append(
                    VisitTask(
                        rule=rule,
                        household_id=hid,
                        resident_id=resident_id,
                        period=period.label,
                        period_start=period.start,
                        period_end=period.end,
                        due_on=due_on,
                        assigned_member_id=a.member_id,
                        assigned_position_id=a.position_id,
                        assigned_level=a.level,
                    )
                )
            before = existing.filter(rule=rule, period_start=period.start).count()
            VisitTask.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
            after = existing.filter(rule=rule, period_start=period.start).count()
            if speakers and after > before:  # an interpreter where the visitor lacks the language
                attach_to_new_tasks(
                    existing.filter(
                        rule=rule, period_start=period.start, household__in=list(speakers)
                    ).exclude(
                        pk__in=InterpreterCall.objects.filter(visit_task__isnull=False).values(
                            "visit_task"
                        )
                    )
                )
            made += after - before
            result.existing += before
        result.by_rule[rule.code] = made
        result.created += made
    return result


def update_statuses(
    today: date | None = None, *, households: QuerySet | None = None
) -> dict[str, int]:
    """open → overdue once ``due_on`` has passed; open/overdue → missed after the period end
    plus the rule's grace days. Catches up whatever the worker missed while it was down.
    ``households`` limits it to their tasks (default: every task)."""
    today = today or local_today()
    now = timezone.now()
    tasks = VisitTask.objects.all()
    if households is not None:
        tasks = tasks.filter(household__in=households)
    missed = 0
    with transaction.atomic():
        for rule in VisitRule.objects.all():
            missed += tasks.filter(
                rule=rule,
                status__in=[VisitTask.Status.OPEN, VisitTask.Status.OVERDUE],
                period_end__lt=today - timedelta(days=rule.grace_days),
            ).update(status=VisitTask.Status.MISSED, updated_at=now)
        overdue = tasks.filter(status=VisitTask.Status.OPEN, due_on__lt=today).update(
            status=VisitTask.Status.OVERDUE, updated_at=now
        )
    return {"overdue": overdue, "missed": missed}


# ---------------------------------------------------------------- reassignment
def households_under(position: Position) -> QuerySet:
    """Households inside a position's territory object."""
    path = {
        "unit": "unit_id",
        "building": "unit__building_id",
        "compound": "unit__building__compound_id",
        "grid": "unit__building__grid_id",
        "community": "unit__building__grid__community_id",
        "street": "unit__building__grid__community__street_id",
    }[position.target_field]
    return Household.objects.filter(**{path: getattr(position, f"{position.target_field}_id")})


def reassign_open_tasks(
    *, position: Position | None = None, households=None, when: datetime | None = None
) -> int:
    """Re-pick the visitor of open and overdue tasks (after a hand-over, leave, vacancy).

    Limit to the households under ``position`` or to ``households``. Returns how many tasks
    changed hands; their ``updated_at`` moves so phones pick the change up.
    """
    when = when or timezone.now()
    qs = VisitTask.objects.filter(
        status__in=[VisitTask.Status.OPEN, VisitTask.Status.OVERDUE]
    ).select_related("rule")
    if position is not None:
        qs = qs.filter(household__in=households_under(position))
    elif households is not None:
        qs = qs.filter(household__in=households)
    tasks = list(qs)
    if not tasks:
        return 0
    assigner = Assigner.load(when)
    places = household_places([t.household_id for t in tasks])
    speakers = speakers_for_households({t.household_id for t in tasks})
    changed = []
    now = timezone.now()
    for t in tasks:
        a = assigner.assign(
            t.rule.visitor_level, places[t.household_id], speakers.get(t.household_id)
        )
        if (t.assigned_member_id, t.assigned_position_id) != (a.member_id, a.position_id):
            t.assigned_member_id, t.assigned_position_id = a.member_id, a.position_id
            t.assigned_level = a.level
            t.updated_at = now
            changed.append(t)
    VisitTask.objects.bulk_update(
        changed,
        ["assigned_member", "assigned_position", "assigned_level", "updated_at"],
        batch_size=1000,
    )
    attach_to_new_tasks([t for t in changed if t.household_id in speakers])
    return len(changed)


# ---------------------------------------------------------------- coverage
def coverage(
    date_from: date,
    date_to: date,
    *,
    group: str = "grid",
    scope=None,  # type: ignore[no-untyped-def]
    member=None,  # type: ignore[no-untyped-def]
) -> list[dict[str, Any]]:
    """Per grid or member: tasks due in [from, to] (by ``due_on``) and how they stand
    (with ``member``: only the tasks ``member`` may see, :func:`hide_sensitive_tasks`).

    due = tasks due in the span; done / open / overdue / missed by status; flagged = done
    tasks whose closing visit was far off (``far_off``); rate = done ÷ due.
    """
    if group not in ("grid", "member"):
        raise ValueError("group must be grid or member")
    qs = VisitTask.objects.filter(due_on__gte=date_from, due_on__lte=date_to)
    if scope is not None:
        qs = scope.filter(qs)
        if member is not None:  # a count of a sensitive group's tasks tells the same as one
            qs = hide_sensitive_tasks(qs, scope, member)
    if group == "grid":
        keys = [
            "household__unit__building__grid_id",
            "household__unit__building__grid__code",
            "household__unit__building__grid__name",
        ]
    else:
        keys = [
            "assigned_member_id",
            "assigned_member__username",
            "assigned_member__display_name",
        ]
    S = VisitTask.Status
    rows = (
        qs.values(*keys)
        .annotate(
            due=Count("id"),
            done=Count("id", filter=Q(status=S.DONE)),
            open=Count("id", filter=Q(status=S.OPEN)),
            overdue=Count("id", filter=Q(status=S.OVERDUE)),
            missed=Count("id", filter=Q(status=S.MISSED)),
            flagged=Count("id", filter=Q(status=S.DONE, done_by__far_off=True)),
        )
        .order_by(keys[1])
    )
    out = []
    for r in rows:
        item = {
            "id": r[keys[0]],
            "code" if group == "grid" else "username": r[keys[1]],
            "name": r[keys[2]],
        }
        for k in ("due", "done", "open", "overdue", "missed", "flagged"):
            item[k] = r[k]
        item["rate"] = round(r["done"] / r["due"], 4) if r["due"] else None
        out.append(item)
    return out


# ---------------------------------------------------------------- today's route
def due_tasks(member, day: date) -> QuerySet:  # type: ignore[no-untyped-def]
    """The member's tasks to do on ``day``: open or overdue, in a period covering the day."""
    return (
        VisitTask.objects.filter(
            assigned_member=member,
            status__in=[VisitTask.Status.OPEN, VisitTask.Status.OVERDUE],
            period_start__lte=day,
            period_end__gte=day,
        )
        .select_related("rule", "household__unit__building")
        .order_by("id")
    )


def todays_route(
    member,  # type: ignore[no-untyped-def]
    day: date,
    start: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Due tasks grouped by building (one stop per building) in walking order.

    Ordered with ``geo.route.order_stops`` (nearest neighbour + 2-opt) from ``start``
    (lon, lat; default: the first stop). Returns stops, total length (m) and the path as
    GeoJSON, plus the length of the unordered input for comparison.
    """
    by_building: dict[int, dict[str, Any]] = {}
    for t in due_tasks(member, day):
        b = t.household.unit.building
        stop = by_building.get(b.id)
        if stop is None:
            stop = by_building[b.id] = {
                "building": b.id,
                "building_code": b.code,
                "building_name": b.name,
                "lon": b.point.x,
                "lat": b.point.y,
                "tasks": [],
            }
        stop["tasks"].append(
            {
                "id": t.id,
                "household": t.household_id,
                "room": t.household.room,
                "unit": t.household.unit.number,
                "rule": t.rule.code,
                "rule_name": t.rule.name,
                "due_on": t.due_on.isoformat(),
                "status": t.status,
            }
        )
    stops = list(by_building.values())
    out: dict[str, Any] = {
        "date": day.isoformat(),
        "start": None,
        "stops": [],
        "task_count": 0,
        "ordered": True,
        "length_m": 0.0,
        "input_length_m": 0.0,
        "path": None,
    }
    if not stops:
        return out
    coords = [(s["lon"], s["lat"]) for s in stops]
    origin = start or coords[0]
    out["start"] = {"lon": origin[0], "lat": origin[1]}
    out["task_count"] = sum(len(s["tasks"]) for s in stops)
    out["input_length_m"] = round(path_length_m([origin, *coords]), 1)
    try:
        from geo.route import order_stops
    except ImportError:  # geo.route not installed yet: stops in due order, flagged unordered
        line = [origin, *coords]
        out.update(
            stops=stops,
            ordered=False,
            length_m=out["input_length_m"],
            path={"type": "LineString", "coordinates": [list(c) for c in line]},
        )
        return out
    result = order_stops(origin, coords)
    out["stops"] = [stops[i] for i in result.order]
    out["length_m"] = round(float(result.length_m), 1)
    out["path"] = result.as_geojson()
    return out


def path_length_m(coords: list[tuple[float, float]]) -> float:
    """Length in metres of a WGS84 polyline, measured by PostGIS on the spheroid."""
    if len(coords) < 2:
        return 0.0
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT ST_Length(ST_SetSRID(ST_MakeLine(ARRAY(SELECT ST_MakePoint(x, y) "
            "FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS t(x, y, n) "
            "ORDER BY n)), 4326)::geography)",
            [[c[0] for c in coords], [c[1] for c in coords]],
        )
        return float(cur.fetchone()[0])


# ---------------------------------------------------------------- 一日一报
def members_missing_daily_report(scope, day: date, member=None) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Members holding a field position in ``scope`` on ``day`` (not on leave) who have not
    sent that day's report (一日一报), and the 五员 who have not sent that day's screening report
    (``screening`` on each row, :func:`gridsvc.community.services.chase_screening`, through
    :data:`DAILY_REPORT_CHASERS`). With
    ``member`` (the caller): only those whose reports ``member`` may read
    (:func:`work_record_positions`)."""
    at = local_day_start(day) + timedelta(hours=12)
    active = Position.objects.active_at(at).filter(position_type__in=FIELD_POSITION_TYPES)
    if member is None:
        positions = scope.filter(active)
    else:
        positions = work_record_positions(scope, member, active)
    positions = positions.select_related("member")
    reported = set(DailyReport.objects.filter(date=day).values_list("member_id", flat=True))
    by_member: dict[int, dict[str, Any]] = {}
    for p in positions.order_by("member__username", "id"):
        if p.member_id in reported:
            continue
        row = by_member.setdefault(
            p.member_id,
            {
                "member": p.member_id,
                "username": p.member.username,
                "name": str(p.member),
                "positions": [],
            },
        )
        row["positions"].append(
            {
                "id": p.id,
                "position_type": p.position_type,
                "target_type": p.target_field,
                "target_id": getattr(p, f"{p.target_field}_id"),
            }
        )
    # the 五员 owe a screening report (their 一日一报): chased in the same list
    for chase in DAILY_REPORT_CHASERS:
        chase(by_member, scope, day, member)
    return sorted(by_member.values(), key=lambda r: r["username"])


def tasks_by_household(tasks: list[VisitTask]) -> dict[int, list[VisitTask]]:
    out: dict[int, list[VisitTask]] = defaultdict(list)
    for t in tasks:
        out[t.household_id].append(t)
    return out


# ---------------------------------------------------------------- privacy of tasks
def _sensitive_hidden_q(scope, member, prefix: str = "", own: tuple[str, ...] = ()) -> Q | None:  # type: ignore[no-untyped-def]
    """Q of the rows (tasks; visits with ``prefix="task__"``) of sensitive groups
    (``visibility.SENSITIVE_TAGS``) ``member`` may not see, or None when they see them all.

    A task of a rule for community correction 社区矫正, help-education 两劳帮教, disability,
    low income or religion tells whoever sees it that someone in that household belongs to
    the group. Staff and street tiers work with these groups; neighbours (楼长, 单元长, 物业,
    业委会) see only such tasks assigned to themselves; a member who is both sees them only
    in the staff part of the territory (``visibility.staff_scope``). ``own`` names the fields
    that make a row the member's own (assigned to or made by them)."""
    if scope.everything:
        return None
    tier = visibility.tier_for(member)
    mixed = visibility.is_mixed(member)
    if visibility.knows_sensitive(tier) and not mixed:
        return None
    hidden = Q(**{f"{prefix}rule__target_group__in": visibility.SENSITIVE_TAGS})
    for field_name in own or (f"{prefix}assigned_member",):
        hidden &= ~Q(**{field_name: member})
    if visibility.knows_sensitive(tier):
        staff_tasks = visibility.staff_scope(scope).filter(VisitTask.objects.all()).values("id")
        hidden &= ~Q(**{f"{prefix}id__in" if prefix else "id__in": staff_tasks})
    return hidden


def hide_sensitive_tasks(qs: QuerySet[VisitTask], scope, member) -> QuerySet[VisitTask]:  # type: ignore[no-untyped-def]
    """``qs`` without the tasks of sensitive groups ``member`` may not see
    (:func:`_sensitive_hidden_q`)."""
    hidden = _sensitive_hidden_q(scope, member)
    return qs if hidden is None else qs.exclude(hidden)


def visible_tasks(scope, member) -> QuerySet[VisitTask]:  # type: ignore[no-untyped-def]
    """The tasks ``member`` may see: in their territory or assigned to them, without others'
    tasks of sensitive groups where the scope may not see them."""
    base = VisitTask.objects.all()
    if scope.everything:
        return base
    return hide_sensitive_tasks(
        base.filter(
            Q(id__in=scope.filter(VisitTask.objects.all()).values("id")) | Q(assigned_member=member)
        ),
        scope,
        member,
    )


def visible_visits(scope, member) -> QuerySet[Visit]:  # type: ignore[no-untyped-def]
    """The visits ``member`` may see: in their territory or made by them, without visits that
    closed tasks of sensitive groups they may not see (the visit would tell the same)."""
    base = Visit.objects.all()
    if scope.everything:
        return base
    qs = base.filter(Q(id__in=scope.filter(Visit.objects.all()).values("id")) | Q(member=member))
    hidden = _sensitive_hidden_q(
        scope, member, prefix="task__", own=("member", "task__assigned_member")
    )
    return qs if hidden is None else qs.exclude(hidden)


# What a visit record says in words: written by staff about the household's people (like the
# daily report), so neighbours read it only on their own visits.
VISIT_FREE_TEXT = ("purpose", "notes", "findings", "participants_text")


def present_visit(data: dict[str, Any], tier: visibility.Tier, own: bool) -> dict[str, Any]:
    """A serialised visit as ``tier`` sees it: neighbours get others' visits without their
    words (:data:`VISIT_FREE_TEXT` absent) — when, where and which task, not what was found."""
    if not own and not visibility.knows_sensitive(tier):
        for key in VISIT_FREE_TEXT:
            data.pop(key, None)
    return data


# ---------------------------------------------------------------- who reads whose work records
def work_record_positions(scope, member, positions: QuerySet[Position]) -> QuerySet[Position]:  # type: ignore[no-untyped-def]
    """The ``positions`` whose holders' work records ``member`` may read: daily reports
    (一日一报), the phone estimate.

    A grid member's or cadre's report speaks of the residents and problems of the whole grid,
    so it is read through the staff part of the territory (``visibility.staff_scope``):
    neighbours (楼长, 单元长, 物业, 业委会) read only their own; everyone reads their own."""
    if scope.everything:
        return positions
    own = positions.filter(member=member)
    if not visibility.knows_sensitive(visibility.tier_for(member)):
        return own
    return visibility.staff_scope(scope).filter(positions) | own
