"""Case rules: routing, the workflow, deadlines, escalation, duplicates, exception paths.

Routing (DESIGN.md "Routing a report"): locate the place (reference, else covering building,
else nearest building within a tolerance; grid and compound by ST_Covers with the lowest code
winning on shared edges), pick the starting level from the category and flag rules, walk the
chain to the first active holder, store the walked chain and the reason. Outside every grid the
case waits in the street dispatch queue with the nearest grid suggested.

The workflow is a table of actions (:data:`ACTIONS`): an action allowed from the case's status
moves it and appends a :class:`CaseEvent`; any other raises :class:`IllegalTransition` with the
actions that are allowed (the API answers 409). Every change takes the row lock and checks the
caller's version (ETag) so two dispatchers never silently overwrite each other (412).

Deadlines are absolute times computed on the street's working-time clock
(:mod:`gridsvc.supervision.clock`) from the category's :class:`TimeLimit` rows; a deadline
check is enqueued on the worker in the same transaction as the change (deferred by name
through :mod:`gridsvc.cases.jobs`, run by :mod:`gridsvc.cases.tasks`), and a sweep every minute
catches up after downtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.gis.geos import Point
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.services import LEVEL_BY_NAME, LEVELS, STREET_LEVEL, Chain, walk
from gridsvc.errors import DomainError
from gridsvc.supervision.clock import CalendarMissing, WorkClock
from gridsvc.supervision.models import InboxMessage
from gridsvc.territory.models import Building, Compound, Household, Unit
from gridsvc.territory.services import Location, locate

from . import jobs
from .models import (
    OPEN_STATUSES,
    RUNNING_STATUSES,
    Card,
    Case,
    CaseEvent,
    CaseRequest,
    Category,
    Department,
    FlagRule,
    FollowUp,
    Status,
    TimeLimit,
)

S = Status
FLAGS = ("ethnic_religious", "group_incident", "petition_risk")
YELLOW_SHARE = float(getattr(settings, "GRIDSVC", {}).get("YELLOW_CARD_SHARE", 0.8))


# ---------------------------------------------------------------------------- errors
class CaseError(DomainError):
    """A rule refused the request (the API answers 400 naming ``field``)."""

    code = "case_refused"


class IllegalTransition(CaseError):
    """The action is not allowed in the case's state (409, with the allowed actions)."""

    status_code = 409
    code = "illegal_transition"

    def __init__(self, action: str, status: str, allowed: list[str]) -> None:
        super().__init__(
            f"cannot {action} a case that is {status}; allowed: {', '.join(allowed) or 'none'}",
            "action",
        )
        self.action = action
        self.status = status
        self.allowed = allowed

    def body(self) -> dict[str, Any]:
        return {**super().body(), "allowed": self.allowed, "status": self.status}


class StaleVersion(CaseError):
    """The caller's version (If-Match) is not the case's (412, with the current ETag)."""

    status_code = 412
    code = "stale_version"

    def __init__(self, current: Case) -> None:
        super().__init__(
            f"the case has changed (now version {current.version}); reload it and try again",
            "If-Match",
        )
        self.current = current

    def body(self) -> dict[str, Any]:
        return {**super().body(), "current_version": self.current.version}

    def headers(self) -> dict[str, str]:
        return {"ETag": self.current.etag}


class NotAllowed(CaseError):
    status_code = 403
    code = "not_allowed"


# ---------------------------------------------------------------------------- routing
@dataclass
class Routing:
    location: Location
    start_level: str
    level: str
    handler_id: int | None
    queued: bool  # waits in the street dispatch queue
    chain: list[dict]
    walked: list[str]
    reason: str
    notify: list[str] = field(default_factory=list)


def start_level_for(category: Category, flags: Iterable[str] = ()) -> tuple[str, list[str]]:
    """The level a case starts at and who is notified at once (category and flag rules)."""
    level = category.effective_start_level
    notify = category.effective_notify
    rules = {r.flag: r for r in FlagRule.objects.filter(flag__in=list(flags))}
    for rule in rules.values():
        if LEVEL_BY_NAME[rule.min_level].index > LEVEL_BY_NAME[level].index:
            level = rule.min_level
        notify += [n for n in rule.notify if n not in notify]
    return level, notify


def route(
    category: Category,
    point: Point | None = None,
    *,
    household: Household | None = None,
    unit: Unit | None = None,
    building: Building | None = None,
    compound: Compound | None = None,
    flags: Iterable[str] = (),
    when: datetime | None = None,
) -> Routing:
    """Where a report goes (no writes): the location, the level and the holder, and why."""
    when = when or timezone.now()
    loc = locate(point, household=household, unit=unit, building=building, compound=compound)
    start, notify = start_level_for(category, flags)
    start_label = LEVEL_BY_NAME[start].label
    if loc.grid is None:
        near = loc.nearest_grid
        dist = loc.nearest_grid_distance_m
        reason = "outside every grid → street dispatch queue"
        if near is not None:
            reason += f"; nearest grid {near.name} ({near.code}) at {dist:.0f} m"
            loc.street = near.community.street
        return Routing(loc, start, STREET_LEVEL.name, None, True, [], [], reason, notify)
    chain: Chain = walk(loc, when)
    step, walked = chain.first_active_from(start)
    parts = [f"{category.name}: starts at {start_label}"]
    for s in walked[:-1]:
        parts.append(f"{s.level_label} skipped ({s.status})")
    holder = step.primary
    if step.level == STREET_LEVEL.index and holder is None:
        parts.append("nobody holds the street desk → dispatch queue")
        return Routing(
            loc,
            start,
            step.level_name,
            None,
            True,
            [s.as_dict() for s in chain.steps],
            [s.level_name for s in walked],
            "; ".join(parts),
            notify,
        )
    parts.append(f"→ {step.level_label} {holder.name if holder else ''}".rstrip())
    return Routing(
        loc,
        start,
        step.level_name,
        holder.member_id if holder else None,
        False,
        [s.as_dict() for s in chain.steps],
        [s.level_name for s in walked],
        "; ".join(parts),
        notify,
    )


# ---------------------------------------------------------------------------- deadlines
def time_limit(category: Category, stage: str, level: str = "") -> TimeLimit | None:
    """The limit for a stage at a level: the category's own (level-specific first), else the
    parent category's."""
    cat: Category | None = category
    while cat is not None:
        rows = {
            t.level: t
            for t in TimeLimit.objects.filter(category=cat, stage=stage, level__in=[level, ""])
        }
        if level in rows:
            return rows[level]
        if "" in rows:
            return rows[""]
        cat = cat.parent
    return None


STAGE_OF_STATUS = {
    S.REPORTED: "dispatch",
    S.ASSIGNED: "accept",
    S.ESCALATED: "accept",
    S.REOPENED: "accept",
    S.IN_PROGRESS: "handle",
    S.RESOLVED: "verify",
}


def _street_id(case: Case) -> int | None:
    return case.street_id


def compute_deadline(case: Case, clock: WorkClock | None = None) -> tuple[datetime | None, str]:
    """Deadline of the stage the case is in, from the stage start, the category's limit and
    approved extensions since. Returns (deadline or None, error message or "")."""
    stage = STAGE_OF_STATUS.get(case.status)
    if stage is None:
        return None, ""
    limit = time_limit(case.category, stage, case.level if stage in ("accept", "handle") else "")
    if limit is None:
        return None, ""
    start = case.assigned_at if stage == "handle" else case.stage_started_at
    start = start or case.reported_at
    clock = clock or WorkClock(_street_id(case))
    try:
        due = clock.add(start, limit.amount, limit.unit)
        extensions = CaseRequest.objects.none() if case.pk is None else case.requests
        for req in extensions.filter(
            kind=CaseRequest.Kind.EXTENSION,
            state=CaseRequest.State.APPROVED,
            decided_at__gte=start,
        ).order_by("decided_at"):
            due = clock.add(due, req.amount or 0, req.unit or "natural_days")
    except CalendarMissing as exc:
        return None, str(exc)
    return due, ""


def set_deadline(
    case: Case,
    due: datetime | None = None,
    error: str = "",
    set_by=None,  # type: ignore[no-untyped-def]
) -> None:
    """Store the running stage's deadline, the yellow-card time and bump the version used by
    the deadline jobs (older jobs then do nothing).

    Without ``due`` the deadline is the rule's (time limit on the working-time clock). With
    ``due`` it was set by a person (a dispatcher's 设定时限): ``due_source="person"``, kept when
    the calendar or the rules change (:func:`recompute_open_deadlines`) until the case leaves
    the stage."""
    if due is None and not error:
        due, error = compute_deadline(case)
        case.due_source, case.due_set_by = "rule", None
    elif due is not None:
        case.due_source = "person"
        case.due_set_by = set_by if getattr(set_by, "pk", None) else None
    else:
        case.due_source, case.due_set_by = "rule", None
    case.due_at = due
    case.deadline_error = error[:300]
    case.due_stage = STAGE_OF_STATUS.get(case.status, "") if due else ""
    if due is not None:
        start = (case.assigned_at if case.due_stage == "handle" else case.stage_started_at) or (
            case.reported_at
        )
        span = max((due - start).total_seconds(), 0)
        case.yellow_at = start + timedelta(seconds=span * YELLOW_SHARE)
    else:
        case.yellow_at = None
    case.deadline_version += 1
    if case.status in RUNNING_STATUSES and case.handle_due_at is None and due is not None:
        handle = time_limit(case.category, "handle", case.level)
        if handle is not None:
            try:
                case.handle_due_at = WorkClock(_street_id(case)).add(
                    case.assigned_at or case.reported_at, handle.amount, handle.unit
                )
            except CalendarMissing:
                pass


def _schedule_checks(case: Case) -> None:
    """Enqueue the deadline checks in the current transaction (the worker runs them; bulk
    loaders queue none inside :func:`gridsvc.cases.jobs.paused`)."""
    jobs.schedule_deadline_checks(case)


# ---------------------------------------------------------------------------- events, inbox
def record(
    case: Case,
    kind: str,
    actor=None,  # type: ignore[no-untyped-def]
    *,
    from_status: str = "",
    note: str = "",
    data: dict | None = None,
    location: Point | None = None,
    at: datetime | None = None,
) -> CaseEvent:
    return CaseEvent.objects.create(
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
    ids = sorted({m for m in member_ids if m})
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
    if ids:
        jobs.deliver_inbox_later([m.pk for m in messages])
    return len(ids)


def holders_over(
    case: Case, position_types: Iterable[str], when: datetime | None = None
) -> list[int]:
    """Members holding any of ``position_types`` over the case's place (grid, compound …)."""
    target = {
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


# ---------------------------------------------------------------------------- report
@dataclass
class Report:
    case: Case
    duplicates: list[Case]


def next_number(when: datetime) -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT nextval('cases_case_number_seq')")
        (n,) = cur.fetchone()
    return f"AJ{timezone.localtime(when):%Y}{n:07d}"


def find_duplicates(
    category: Category,
    point: Point,
    when: datetime | None = None,
    exclude_id: int | None = None,
    radius_m: float | None = None,
    days: int | None = None,
) -> QuerySet[Case]:
    """Open cases of the same category near ``point`` reported in the last days (suggestions)."""
    when = when or timezone.now()
    radius = category.duplicate_radius_m if radius_m is None else radius_m
    days = category.duplicate_days if days is None else days
    qs = Case.objects.filter(
        category=category, status__in=OPEN_STATUSES, reported_at__gte=when - timedelta(days=days)
    ).extra(
        where=[
            "ST_DWithin(cases_case.location::geography, ST_SetSRID(ST_MakePoint(%s,%s),4326)::geography, %s)"
        ],
        params=[point.x, point.y, radius],
    )
    if exclude_id:
        qs = qs.exclude(pk=exclude_id)
    return qs.order_by("-reported_at")


def _apply_routing(case: Case, r: Routing) -> None:
    loc = r.location
    case.located_by = loc.method
    case.household = loc.household
    case.unit = loc.unit
    case.building = loc.building
    case.compound = loc.compound
    case.grid = loc.grid
    case.community = loc.community
    case.street = loc.street
    case.suggested_grid = loc.nearest_grid if loc.grid is None else None
    case.level = r.level
    case.level_index = LEVEL_BY_NAME[r.level].index
    case.handler_id = r.handler_id
    case.chain = r.chain
    case.route_reason = r.reason


def report_case(
    *,
    reporter,  # type: ignore[no-untyped-def]
    category: Category,
    title: str,
    location: Point | None = None,
    household: Household | None = None,
    unit: Unit | None = None,
    building: Building | None = None,
    compound: Compound | None = None,
    description: str = "",
    parties: list | None = None,
    priority: int = 3,
    flags: Iterable[str] = (),
    source: str = "app",
    external_ref: str = "",
    on_the_spot: bool = False,
    outcome: str = "",
    when: datetime | None = None,
) -> Report:
    """Store and route a report (上报 → 立案 → 派遣) in one transaction; returns the case and the
    open cases nearby that may be duplicates."""
    when = when or timezone.now()
    flags = [f for f in flags if f in FLAGS]
    if not category.active:
        raise CaseError(f"category {category.code} is not in use", "category")
    if on_the_spot and not outcome.strip():
        raise CaseError("on-the-spot handling needs the outcome", "outcome")
    if location is None and not any((household, unit, building, compound)):
        raise CaseError("give a location or a household/unit/building/compound", "location")
    r = route(
        category,
        location,
        household=household,
        unit=unit,
        building=building,
        compound=compound,
        flags=flags,
        when=when,
    )
    with transaction.atomic():
        case = Case(
            number=next_number(when),
            kind=category.kind,
            category=category,
            title=title,
            description=description,
            parties=parties or [],
            priority=priority,
            source=source,
            external_ref=external_ref,
            location=r.location.point,
            reported_by=reporter if getattr(reporter, "pk", None) else None,
            reported_at=when,
            stage_started_at=when,
            **{f: f in flags for f in FLAGS},
        )
        _apply_routing(case, r)
        if on_the_spot:
            # 自处理: the reporter resolved it at once; counted apart
            case.on_the_spot = True
            case.handler = reporter
            case.status = S.RESOLVED
            case.outcome = outcome
            case.resolved_at = when
            case.resolved_by = reporter
            case.resolved_level = case.level
            case.stage_started_at = when
        elif r.queued:
            case.status = S.REPORTED
        else:
            case.status = S.ASSIGNED
            case.assigned_at = when
            case.accepted_at = when
        set_deadline(case)
        case.save()
        record(
            case,
            "report",
            reporter,
            note=title,
            location=case.location,
            at=when,
            data={"source": source, "flags": flags},
        )
        record(
            case,
            "route",
            None,
            from_status=S.REPORTED,
            note=r.reason,
            at=when,
            data={
                "walked": r.walked,
                "level": r.level,
                "handler": r.handler_id,
                "queued": r.queued,
            },
        )
        if on_the_spot:
            record(case, "on_the_spot", reporter, note=outcome, at=when)
            _schedule_follow_up(case, when)
        if case.handler_id and not on_the_spot:
            inbox(
                [case.handler_id],
                InboxMessage.Kind.NEW_CASE,
                case,
                f"新案件 {case.number}: {title}",
            )
        elif r.queued:
            inbox(
                dispatchers(case),
                InboxMessage.Kind.NEW_CASE,
                case,
                f"待派遣 {case.number}: {title}",
            )
        if r.notify:
            inbox(
                holders_over(case, r.notify),
                InboxMessage.Kind.NEW_CASE,
                case,
                f"关注 {case.number}: {title}",
                "、".join(_flag_labels(case)) or category.name,
            )
        _schedule_checks(case)
    dups = list(find_duplicates(category, case.location, when, exclude_id=case.pk)[:10])
    return Report(case, dups)


def _flag_labels(case: Case) -> list[str]:
    return [str(Case._meta.get_field(f).help_text) for f in case.flags]


# ---------------------------------------------------------------------------- permissions
def _member_levels(member, case: Case) -> set[int]:  # type: ignore[no-untyped-def]
    """Chain levels the member holds over the case's place now."""
    levels: set[int] = set()
    for lvl in LEVELS[1:]:
        if member.pk in holders_over(case, [lvl.name]):
            levels.add(lvl.index)
    if member.pk in holders_over(case, [PositionType.GRID_MEMBER]):
        levels.add(LEVEL_BY_NAME[PositionType.COMMUNITY_CADRE].index)
    return levels


def can_manage(member, case: Case) -> bool:  # type: ignore[no-untyped-def]
    """Street desk, community mediation or grid cadre over the case (dispatch actions)."""
    if getattr(member, "is_superuser", False):
        return True
    return bool(
        {5, 6, 7} & _member_levels(member, case)
        or member.pk in holders_over(case, [PositionType.STREET_DISPATCHER])
    )


def is_above(member, case: Case) -> bool:  # type: ignore[no-untyped-def]
    """Holds a level above the case's current level (approves extensions, holds, voids)."""
    if getattr(member, "is_superuser", False):
        return True
    current = case.level_index if case.level_index is not None else STREET_LEVEL.index
    levels = _member_levels(member, case)
    if current >= STREET_LEVEL.index:
        return STREET_LEVEL.index in levels and member.pk != case.handler_id
    return any(lv > current for lv in levels)


def can_handle(member, case: Case) -> bool:  # type: ignore[no-untyped-def]
    return case.handler_id == member.pk or can_manage(member, case) or is_above(member, case)


# ---------------------------------------------------------------------------- workflow
@dataclass(frozen=True)
class Action:
    name: str
    from_statuses: tuple[str, ...]
    label: str
    who: str = "handler"  # handler | manager | above | reporter


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("start", (S.ASSIGNED, S.ESCALATED, S.REOPENED), "受理/开始处置"),
        Action(
            "assign",
            (S.REPORTED, S.ASSIGNED, S.ESCALATED, S.REOPENED, S.IN_PROGRESS, S.TRANSFERRED),
            "派遣/改派",
            "manager",
        ),
        Action(
            "resolve",
            (S.ASSIGNED, S.IN_PROGRESS, S.ESCALATED, S.REOPENED, S.TRANSFERRED),
            "处置完毕",
        ),
        Action("verify", (S.RESOLVED,), "回访核查", "manager"),
        Action("close", (S.VERIFIED,), "结案", "manager"),
        Action("escalate", (S.ASSIGNED, S.IN_PROGRESS, S.ESCALATED, S.REOPENED), "升级"),
        Action(
            "transfer",
            (S.REPORTED, S.ASSIGNED, S.IN_PROGRESS, S.ESCALATED, S.REOPENED),
            "转办职能部门",
            "manager",
        ),
        Action("reject", (S.REPORTED, S.ASSIGNED), "不予受理", "manager"),
        Action(
            "reopen",
            (S.RESOLVED, S.VERIFIED, S.CLOSED, S.REJECTED, S.TRANSFERRED),
            "重新办理",
            "manager",
        ),
        Action("send_back", (S.ASSIGNED, S.ESCALATED, S.REOPENED), "回退"),
        Action("resume", (S.ON_HOLD,), "恢复办理", "manager"),
        Action(
            "merge",
            (S.REPORTED, S.ASSIGNED, S.IN_PROGRESS, S.ESCALATED, S.REOPENED),
            "合并",
            "manager",
        ),
        Action("set_deadline", OPEN_STATUSES, "设定时限", "manager"),
        Action("supervise", OPEN_STATUSES + (S.ON_HOLD,), "督办", "manager"),
        Action("comment", tuple(S.values), "备注", "any"),
    )
}


def allowed_actions(case: Case) -> list[str]:
    return [name for name, a in ACTIONS.items() if case.status in a.from_statuses]


def _check_actor(action: Action, member, case: Case) -> None:  # type: ignore[no-untyped-def]
    if member is None:
        return  # the system (worker)
    if action.who == "any":
        return
    ok = can_manage(member, case) if action.who == "manager" else can_handle(member, case)
    if not ok:
        raise NotAllowed(f"you may not {action.name} this case", "action")


def _locked(case_id: int, expected_version: int | None) -> Case:
    case = Case.objects.select_for_update().select_related("category").get(pk=case_id)
    if expected_version is not None and case.version != expected_version:
        raise StaleVersion(case)
    return case


def _member_level(member, case: Case) -> str:  # type: ignore[no-untyped-def]
    levels = _member_levels(member, case)
    if levels:
        return LEVELS[min(levels)].name
    raise CaseError(f"{member} holds no position over this case's place", "member")


def act(
    case_id: int,
    action: str,
    actor,  # type: ignore[no-untyped-def]
    *,
    expected_version: int | None = None,
    note: str = "",
    location: Point | None = None,
    data: dict[str, Any] | None = None,
    when: datetime | None = None,
) -> Case:
    """Apply a workflow action to a case (row-locked, version-checked, one event)."""
    if action not in ACTIONS:
        raise CaseError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}", "action")
    data = dict(data or {})
    spec = ACTIONS[action]
    with transaction.atomic():
        case = _locked(case_id, expected_version)
        # the time is taken once the case is locked: a transition waiting for the lock is
        # stamped after the one it follows, so the timeline's times keep the order of events
        when = when or timezone.now()
        if case.status not in spec.from_statuses:
            raise IllegalTransition(action, case.status, allowed_actions(case))
        _check_actor(spec, actor, case)
        before = case.status
        extra: dict[str, Any] = {}
        handler_before = case.handler_id
        restart_clock = True
        if action == "start":
            case.status = S.IN_PROGRESS
            case.accepted_at = case.accepted_at or when
        elif action == "assign":
            from gridsvc.accounts.models import Member

            try:
                member = Member.objects.get(pk=data.get("member"), is_active=True)
            except (Member.DoesNotExist, ValueError, TypeError):
                raise CaseError("no such active member", "member") from None
            if case.grid_id is None and data.get("grid"):
                _place_in_grid(case, data["grid"])
            level = _member_level(member, case)
            case.handler = member
            case.level = level
            case.level_index = LEVEL_BY_NAME[level].index
            case.department = None
            case.status = S.ASSIGNED
            case.assigned_at = when
            case.stage_started_at = when  # the new handler's clock starts now
            case.accepted_at = case.accepted_at or when
            action_kind = "reassign" if before != S.REPORTED and handler_before else "assign"
            extra = {"member": member.pk, "level": level, "kind": action_kind}
            inbox(
                [member.pk], InboxMessage.Kind.NEW_CASE, case, f"派遣 {case.number}: {case.title}"
            )
        elif action == "resolve":
            outcome = (data.get("outcome") or "").strip()
            if not outcome:
                raise CaseError("an outcome is required to resolve a case (事事有结果)", "outcome")
            case.status = S.RESOLVED
            case.outcome = outcome
            case.resolved_at = when
            case.resolved_by = actor if getattr(actor, "pk", None) else None
            case.resolved_level = "department" if before == S.TRANSFERRED else case.level
            case.stage_started_at = when
            _schedule_follow_up(case, when)
        elif action == "verify":
            satisfied = data.get("satisfied")
            if not isinstance(satisfied, bool):
                raise CaseError("say whether the follow-up was satisfied (true/false)", "satisfied")
            fu = case.follow_ups.filter(done_at__isnull=True).first()
            if fu is not None:
                fu.done_at, fu.done_by, fu.satisfied, fu.note = when, actor, satisfied, note
                fu.save()
            if satisfied:
                case.status = S.VERIFIED
                case.verified_at = when
            else:  # 返工: back to the handler who resolved it
                case.status = S.REOPENED
                case.reopened_count += 1
                case.reworked_count += 1
                case.resolved_at = None
                case.resolved_level = ""
                case.assigned_at = when
                case.stage_started_at = when
            extra = {"satisfied": satisfied}
        elif action == "close":
            if not case.outcome:
                raise CaseError("no case closes without an outcome", "outcome")
            case.status = S.CLOSED
            case.closed_at = when
        elif action == "escalate":
            _escalate(case, when, reason=note or "escalated by hand", actor=actor)
            extra = {"to_level": case.level, "handler": case.handler_id}
        elif action == "transfer":
            try:
                dept = Department.objects.get(pk=data.get("department"))
            except (Department.DoesNotExist, ValueError, TypeError):
                raise CaseError("no such department", "department") from None
            case.department = dept
            case.status = S.TRANSFERRED
            case.stage_started_at = when
            extra = {"department": dept.pk, "department_name": dept.name}
        elif action == "reject":
            reason = (data.get("reason") or note).strip()
            if not reason:
                raise CaseError("a reason is required to reject a case", "reason")
            case.status = S.REJECTED
            case.rejection_reason = reason
            case.closed_at = when
        elif action == "reopen":
            reason = (data.get("reason") or note).strip()
            if not reason:
                raise CaseError("a reason is required to reopen a case", "reason")
            case.status = S.REOPENED
            case.reopened_count += 1
            case.closed_at = case.verified_at = case.resolved_at = None
            case.resolved_level = ""
            case.assigned_at = when
            case.stage_started_at = when
            if case.handler_id is None:
                case.status = S.REPORTED
        elif action == "send_back":
            reason = (data.get("reason") or note).strip()
            if not reason:
                raise CaseError("say why this case is not yours to handle", "reason")
            case.status = S.REPORTED
            case.handler = None
            case.level = STREET_LEVEL.name
            case.level_index = STREET_LEVEL.index
            case.sent_back_count += 1
            case.stage_started_at = when
            inbox(
                dispatchers(case), InboxMessage.Kind.SEND_BACK, case, f"回退 {case.number}", reason
            )
        elif action == "resume":
            case.status = S.IN_PROGRESS
            case.hold_until = None
            case.assigned_at = when
            case.stage_started_at = when
        elif action == "merge":
            try:
                target = Case.objects.get(pk=data.get("into"))
            except (Case.DoesNotExist, ValueError, TypeError):
                raise CaseError("no such case to merge into", "into") from None
            if target.pk == case.pk or target.merged_into_id == case.pk:
                raise CaseError("a case cannot be merged into itself", "into")
            case.status = S.MERGED
            case.merged_into = target
            case.closed_at = when
            record(
                target,
                "merged_in",
                actor,
                note=f"{case.number} merged in",
                at=when,
                data={"case": case.pk},
            )
            extra = {"into": target.pk}
        elif action == "set_deadline":
            raw = data.get("due_at")
            due = _parse_time(raw, "due_at")
            if due <= when:
                raise CaseError("the deadline must be in the future", "due_at")
            set_deadline(case, due, set_by=actor)
            restart_clock = False
            extra = {"due_at": due.isoformat()}
        elif action == "supervise":
            case.supervised_at = when
            restart_clock = False
            inbox(
                [case.handler_id, *level_above_members(case)],
                InboxMessage.Kind.SUPERVISION,
                case,
                f"督办 {case.number}: {case.title}",
                note,
            )
        elif action == "comment":
            restart_clock = False
        if restart_clock and action != "escalate" and (case.status != before or action == "assign"):
            set_deadline(case)
        if action in ("assign", "set_deadline", "resume") and case.card:
            # the dispatcher's decision gives a fresh deadline: the card shown now is taken
            # off (the yellow/red counts and card events stay for the assessment)
            extra["card_cleared"] = case.card
            case.card = Card.NONE
        case.version += 1
        case.save()
        record(
            case,
            action,
            actor,
            from_status=before,
            note=note,
            location=location,
            data={**data, **extra},
            at=when,
        )
        _schedule_checks(case)
    return case


def _parse_time(raw: Any, field_name: str) -> datetime:
    from django.utils.dateparse import parse_datetime

    if isinstance(raw, datetime):
        value = raw
    else:
        value = parse_datetime(str(raw or ""))
    if value is None:
        raise CaseError("give an ISO 8601 date and time", field_name)
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


def _place_in_grid(case: Case, grid_id: Any) -> None:
    """The dispatcher puts a case from outside every grid into a grid (e.g. the suggested one)."""
    from gridsvc.territory.models import Grid

    try:
        grid = Grid.objects.select_related("community__street").get(pk=grid_id)
    except (Grid.DoesNotExist, ValueError, TypeError):
        raise CaseError("no such grid", "grid") from None
    case.grid = grid
    case.community = grid.community
    case.street = grid.community.street


def _schedule_follow_up(case: Case, when: datetime) -> FollowUp:
    """After resolution, a return visit 回访 by the grid member (else the level above)."""
    due, _ = compute_deadline(case)
    visitor = (
        holders_over(case, [PositionType.GRID_MEMBER]) or level_above_members(case) or [None]
    )[0]
    return FollowUp.objects.create(
        case=case, assigned_to_id=visitor, due_at=due or when + timedelta(days=3)
    )


def _escalate(case: Case, when: datetime, reason: str, actor=None) -> bool:  # type: ignore[no-untyped-def]
    """Move the case one level up to the next level with an active holder. Returns False at the
    top (the street desk: nothing above)."""
    current = case.level_index if case.level_index is not None else STREET_LEVEL.index
    if current >= STREET_LEVEL.index:
        if actor is not None:
            raise IllegalTransition("escalate", "at the street desk", [])
        return False
    if case.grid_id is None:
        target_level, handler = STREET_LEVEL.name, None
    else:
        loc = locate(
            case.location, household=case.household, unit=case.unit, building=case.building
        )
        chain = walk(loc, when)
        step, _ = chain.first_active_from(LEVELS[current + 1].name)
        target_level = step.level_name
        handler = step.primary.member_id if step.primary else None
        case.chain = [s.as_dict() for s in chain.steps]
    before_handler = case.handler_id
    case.level = target_level
    case.level_index = LEVEL_BY_NAME[target_level].index
    case.handler_id = handler
    case.status = S.ESCALATED if handler else S.REPORTED
    case.escalations += 1
    case.assigned_at = when
    case.stage_started_at = when
    set_deadline(case)
    inbox(
        [handler, before_handler],
        InboxMessage.Kind.ESCALATION,
        case,
        f"升级 {case.number} → {LEVEL_BY_NAME[target_level].label}",
        reason,
    )
    return True


# ---------------------------------------------------------------------------- the clock
def apply_clock(case_id: int, now: datetime | None = None) -> str:
    """Yellow card near the deadline, red card and one level up when overdue (the worker).

    Safe to run any number of times: the row lock and the stored deadline decide; after an
    escalation the new level has a fresh deadline, so a second run does nothing.
    """
    with transaction.atomic():
        try:
            case = Case.objects.select_for_update().select_related("category").get(pk=case_id)
        except Case.DoesNotExist:
            return "gone"
        now = now or timezone.now()  # after the lock, like act(): events stay in order
        if case.due_at is None or case.status not in (*RUNNING_STATUSES, S.REPORTED, S.RESOLVED):
            return "no clock"
        if now >= case.due_at:
            if case.card != Card.RED:
                case.card = Card.RED
            case.red_cards += 1
            before = case.status
            record(
                case,
                "red_card",
                None,
                from_status=before,
                at=now,
                data={"due_at": case.due_at.isoformat()},
            )
            inbox(
                [case.handler_id, *level_above_members(case)],
                InboxMessage.Kind.RED_CARD,
                case,
                f"红牌 超期 {case.number}: {case.title}",
            )
            if case.status in RUNNING_STATUSES and _escalate(case, now, reason="overdue"):
                case.version += 1
                case.save()
                record(
                    case,
                    "escalate",
                    None,
                    from_status=before,
                    at=now,
                    note="overdue: escalated one level",
                    data={"to_level": case.level, "handler": case.handler_id, "auto": True},
                )
                _schedule_checks(case)
                return "escalated"
            case.due_at = None  # nothing above / not a handling stage: carded once
            case.version += 1
            case.save()
            return "red"
        if case.yellow_at and now >= case.yellow_at and not case.card:
            case.card = Card.YELLOW
            case.yellow_cards += 1
            case.version += 1
            case.save()
            record(
                case,
                "yellow_card",
                None,
                from_status=case.status,
                at=now,
                data={"due_at": case.due_at.isoformat()},
            )
            inbox(
                [case.handler_id, *level_above_members(case)],
                InboxMessage.Kind.YELLOW_CARD,
                case,
                f"黄牌 临期 {case.number}: {case.title}",
            )
            return "yellow"
        return "running"


def due_for_clock(now: datetime | None = None) -> list[int]:
    """Cases whose yellow or red time has passed and that the worker has not handled yet."""
    now = now or timezone.now()
    qs = Case.objects.filter(due_at__isnull=False).filter(
        Q(due_at__lte=now) | Q(yellow_at__lte=now, card="")
    )
    return list(
        qs.filter(status__in=(*RUNNING_STATUSES, S.REPORTED, S.RESOLVED)).values_list(
            "pk", flat=True
        )[:5000]
    )


def recompute_open_deadlines(
    street_id: int | None = None, category_ids: Iterable[int] | None = None
) -> int:
    """After a calendar or rule change: recompute the stored deadlines of open cases."""
    qs = Case.objects.filter(status__in=(*RUNNING_STATUSES, S.REPORTED, S.RESOLVED))
    if street_id:
        qs = qs.filter(street_id=street_id)
    if category_ids is not None:
        qs = qs.filter(Q(category__in=category_ids) | Q(category__parent__in=category_ids))
    n = 0
    for case_id in qs.values_list("pk", flat=True):
        with transaction.atomic():
            case = Case.objects.select_for_update().select_related("category").get(pk=case_id)
            old = case.due_at
            if case.due_source == "person" and old is not None:
                # a dispatcher's deadline stands; the timeline says so (and what the rule
                # would have given)
                rule_due, error = compute_deadline(case)
                record(
                    case,
                    "deadline_kept",
                    None,
                    from_status=case.status,
                    note="deadline set by a person: kept on recompute",
                    data={
                        "source": "person",
                        "due_at": old.isoformat(),
                        "set_by": case.due_set_by_id,
                        "rule": rule_due.isoformat() if rule_due else None,
                        "error": error,
                    },
                )
                continue
            set_deadline(case)
            if case.due_at != old:
                case.version += 1
                case.save()
                record(
                    case,
                    "deadline_recomputed",
                    None,
                    from_status=case.status,
                    data={
                        "source": "rule",
                        "old": old.isoformat() if old else None,
                        "new": case.due_at.isoformat() if case.due_at else None,
                        "error": case.deadline_error,
                    },
                )
                _schedule_checks(case)
                n += 1
            else:
                case.save(update_fields=["deadline_version"])
    return n


# ---------------------------------------------------------------------------- requests
def request_exception(
    case_id: int,
    kind: str,
    actor,  # type: ignore[no-untyped-def]
    *,
    reason: str,
    amount: float | None = None,
    unit: str = "",
    review_date=None,  # type: ignore[no-untyped-def]
    expected_version: int | None = None,
    when: datetime | None = None,
) -> CaseRequest:
    """Ask the level above for an extension 延时, a hold 挂账 or a void 作废."""
    if kind not in CaseRequest.Kind.values:
        raise CaseError(f"kind must be one of {', '.join(CaseRequest.Kind.values)}", "kind")
    if not (reason or "").strip():
        raise CaseError("a reason is required", "reason")
    with transaction.atomic():
        case = _locked(case_id, expected_version)
        if case.status not in (*OPEN_STATUSES,):
            raise IllegalTransition(f"request {kind}", case.status, allowed_actions(case))
        if not can_handle(actor, case):
            raise NotAllowed("only the handler or the levels above may ask", "kind")
        if kind == "extension":
            from gridsvc.supervision.clock import UNITS

            if amount is None or amount <= 0:
                raise CaseError("say how long the extension is", "amount")
            if unit not in UNITS:
                raise CaseError(f"unit must be one of {', '.join(UNITS)}", "unit")
        if kind == "hold" and review_date is None:
            raise CaseError("a hold needs a review date", "review_date")
        if case.requests.filter(kind=kind, state=CaseRequest.State.PENDING).exists():
            raise CaseError(f"a {kind} request is already waiting for a decision", "kind")
        req = CaseRequest.objects.create(
            case=case,
            kind=kind,
            reason=reason,
            amount=amount,
            unit=unit,
            review_date=review_date,
            requested_by=actor,
            requested_at=when or timezone.now(),
        )
        case.version += 1
        case.save(update_fields=["version", "updated_at"])
        record(
            case,
            f"{kind}_requested",
            actor,
            from_status=case.status,
            note=reason,
            at=req.requested_at,
            data={
                "request": req.pk,
                "amount": amount,
                "unit": unit,
                "review_date": str(review_date) if review_date else None,
            },
        )
        inbox(
            level_above_members(case),
            InboxMessage.Kind.EXTENSION,
            case,
            f"待审批 {req.get_kind_display()} {case.number}",
            reason,
        )
    return req


def decide_request(  # type: ignore[no-untyped-def]
    request_id: int, actor, approve: bool, note: str = "", when: datetime | None = None
) -> CaseRequest:
    """The level above approves or refuses; an approved extension moves the deadline, a hold
    parks the case until its review date, a void ends it."""
    with transaction.atomic():
        req = CaseRequest.objects.select_for_update().get(pk=request_id)
        case = _locked(req.case_id, None)
        if req.state != CaseRequest.State.PENDING:
            raise CaseError(f"this request was already {req.state}", "state")
        if not is_above(actor, case) or actor.pk == req.requested_by_id:
            raise NotAllowed("only the level above the handler may decide", "approve")
        now = when or timezone.now()
        req.state = CaseRequest.State.APPROVED if approve else CaseRequest.State.REFUSED
        req.decided_by = actor
        req.decided_at = now
        req.decision_note = note
        req.save()
        before = case.status
        if approve:
            if req.kind == "extension":
                case.extended_count += 1
                if case.due_source == "person" and case.due_at is not None:
                    # the extension adds to the deadline the dispatcher set
                    set_deadline(
                        case,
                        WorkClock(case.street_id).add(
                            case.due_at, req.amount or 0, req.unit or "natural_days"
                        ),
                        set_by=case.due_set_by,
                    )
                else:
                    set_deadline(case)
                if case.handle_due_at and case.due_stage == "handle":
                    case.handle_due_at = case.due_at
                elif case.handle_due_at:
                    case.handle_due_at = WorkClock(case.street_id).add(
                        case.handle_due_at, req.amount or 0, req.unit or "natural_days"
                    )
                if case.card == Card.YELLOW and case.yellow_at and case.yellow_at > now:
                    case.card = Card.NONE
            elif req.kind == "hold":
                case.status = S.ON_HOLD
                case.hold_until = req.review_date
                set_deadline(case)
            elif req.kind == "void":
                case.status = S.VOID
                case.closed_at = now
                set_deadline(case)
        case.version += 1
        case.save()
        record(
            case,
            f"{req.kind}_{req.state}",
            actor,
            from_status=before,
            note=note,
            at=now,
            data={"request": req.pk},
        )
        inbox(
            [req.requested_by_id],
            InboxMessage.Kind.EXTENSION,
            case,
            f"{req.get_kind_display()}{'已批准' if approve else '被驳回'} {case.number}",
            note,
        )
        _schedule_checks(case)
    return req


# ---------------------------------------------------------------------------- queries
def dispatch_queue(qs: QuerySet[Case], kind: str, now: datetime | None = None) -> QuerySet[Case]:
    """The street's dispatch queue: unrouted, overdue, flagged (or all of them)."""
    now = now or timezone.now()
    unrouted = Q(status=S.REPORTED)
    overdue = Q(status__in=RUNNING_STATUSES) & (Q(due_at__lt=now) | Q(card=Card.RED))
    flagged = Q(status__in=OPEN_STATUSES) & (
        Q(ethnic_religious=True)
        | Q(group_incident=True)
        | Q(petition_risk=True)
        | Q(supervised_at__isnull=False)
        | Q(card__in=[Card.YELLOW, Card.RED])
    )
    cond = {"unrouted": unrouted, "overdue": overdue, "flagged": flagged}.get(kind)
    if cond is None:
        cond = unrouted | overdue | flagged
    return qs.filter(cond).order_by("due_at", "reported_at")
