"""Deadlines 时限: absolute times computed on the street's working-time clock
(:mod:`gridsvc.supervision.clock`) from the category's :class:`TimeLimit` rows; a deadline
check is enqueued on the worker in the same transaction as the change (deferred by name
through :mod:`gridsvc.cases.jobs`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings

from gridsvc.chain.models import PositionType
from gridsvc.supervision.clock import CalendarMissing, WorkClock

from .. import jobs
from ..models import (
    RUNNING_STATUSES,
    Case,
    CaseRequest,
    Category,
    FollowUp,
    Status,
    TimeLimit,
)
from .events import holders_over, level_above_members

if TYPE_CHECKING:
    from gridsvc.accounts.models import Member


S = Status


YELLOW_SHARE = float(getattr(settings, "GRIDSVC", {}).get("YELLOW_CARD_SHARE", 0.8))


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


STAGE_OF_STATUS: dict[str, str] = {
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
    set_by: Member | None = None,
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


def schedule_checks(case: Case) -> None:
    """Enqueue the deadline checks in the current transaction (the worker runs them; bulk
    loaders queue none inside :func:`gridsvc.cases.jobs.paused`)."""
    jobs.schedule_deadline_checks(case)


def schedule_follow_up(case: Case, when: datetime) -> FollowUp:
    """After resolution, a return visit 回访 by the grid member (else the level above)."""
    due, _ = compute_deadline(case)
    visitors = holders_over(case, [PositionType.GRID_MEMBER]) or level_above_members(case)
    visitor = visitors[0] if visitors else None
    return FollowUp.objects.create(
        case=case, assigned_to_id=visitor, due_at=due or when + timedelta(days=3)
    )
