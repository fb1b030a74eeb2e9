"""Deadlines 时限: absolute times computed on the street's working-time clock
(:mod:`gridsvc.supervision.clock`) from the category's :class:`TimeLimit` rows; a deadline
check is enqueued on the worker in the same transaction as the change (deferred by name
through :mod:`gridsvc.cases.jobs`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

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


def _ancestry(category: Category) -> list[Category]:
    """The category, its parent, … up to the root (a cycle stops the walk)."""
    chain: list[Category] = []
    cat: Category | None = category
    while cat is not None and cat not in chain:
        chain.append(cat)
        cat = cat.parent
    return chain


def _pick_limits(
    rows: dict[tuple[int, str, str], TimeLimit], chain: list[Category], wanted: dict[str, str]
) -> dict[str, TimeLimit | None]:
    """For each wanted ``{stage: level}``: the nearest category's limit, level-specific first."""
    return {
        stage: next(
            (
                rows[key]
                for c in chain
                for key in ((c.pk, stage, level), (c.pk, stage, ""))
                if key in rows
            ),
            None,
        )
        for stage, level in wanted.items()
    }


def time_limits(category: Category, wanted: dict[str, str]) -> dict[str, TimeLimit | None]:
    """The limits for several stages at once (``{stage: level}``), in one query: for each
    stage the category's own (level-specific first), else the nearest ancestor's."""
    chain = _ancestry(category)
    levels = set(wanted.values()) | {""}
    rows = {
        (t.category_id, t.stage, t.level): t
        for t in TimeLimit.objects.filter(
            category_id__in=[c.pk for c in chain], stage__in=list(wanted), level__in=levels
        )
    }
    return _pick_limits(rows, chain, wanted)


def case_number(when: datetime, n: int) -> str:
    """A case's number 案件编号 from the sequence's ``n``: AJ, the year, seven digits."""
    return f"AJ{timezone.localtime(when):%Y}{n:07d}"


def time_limits_and_clock(
    category: Category, wanted: dict[str, str], street_id: int | None
) -> tuple[dict[str, TimeLimit | None], WorkClock]:
    """:func:`time_limits` and the street's :class:`WorkClock` (calendar days, office hours)
    in ONE statement (issue 19: a report's deadline was three queries)."""
    limits, clock, _ = _limits_and_clock(category, wanted, street_id, ())
    return limits, clock


def _limits_and_clock(
    category: Category, wanted: dict[str, str], street_id: int | None, draw: Sequence[str]
) -> tuple[dict[str, TimeLimit | None], WorkClock, list[Any]]:
    """:func:`time_limits_and_clock`, and the values of the ``draw`` expressions (a new
    case's number and ids drawn from their sequences) in the same statement: a new case's
    deadline is read just before it is stored."""
    from gridsvc.prepared import fetchone

    chain = _ancestry(category)
    levels = sorted(set(wanted.values()) | {""})
    drawn_sql = "".join(f", {expr}" for expr in draw)
    sql = f"""SELECT {limit_rows_sql("t.category_id = ANY(%(cats)s) AND t.stage = ANY(%(stages)s) AND t.level = ANY(%(levels)s)")},
  {WorkClock.columns_sql("street")}{drawn_sql}"""
    params: dict[str, Any] = {
        "cats": [c.pk for c in chain],
        "stages": list(wanted),
        "levels": levels,
        "street": street_id,
    }
    # prepared on the connection (gridsvc.prepared): parsed and planned once, not per report
    limit_rows, days, periods, *drawn = fetchone(sql, params)  # type: ignore[misc]
    rows = limits_from_column(limit_rows)
    clock = WorkClock.from_columns(street_id, days, periods)
    return _pick_limits(rows, chain, wanted), clock, drawn


def limit_rows_sql(where: str) -> str:
    """A column for a SELECT: the :class:`TimeLimit` rows matching ``where`` (on ``t``) as
    one jsonb array, read by :func:`limits_from_column`."""
    return f"""(SELECT COALESCE(jsonb_agg(jsonb_build_array(
          t.id, t.category_id, t.stage, t.level, t.amount, t.unit)), '[]')
   FROM "{TimeLimit._meta.db_table}" t WHERE {where})"""


def limits_from_column(value: Any) -> dict[tuple[int, str, str], TimeLimit]:
    """The rows of :func:`limit_rows_sql`'s column by (category, stage, level)."""
    import json

    limit_rows = json.loads(value) if isinstance(value, str) else value
    rows: dict[tuple[int, str, str], TimeLimit] = {}
    for pk, cat_id, stage, level, amount, unit in limit_rows:
        t = TimeLimit(
            id=pk, category_id=cat_id, stage=stage, level=level, amount=float(amount), unit=unit
        )
        t._state.adding, t._state.db = False, connection.alias
        rows[(cat_id, stage, level)] = t
    return rows


@dataclass
class KnownRules:
    """A category's time limits (every stage and level of it and its ancestors) and a
    street's clock, read ahead by the statement that found the category and the place (a
    report at a point, :func:`api.cases.inputs.category_and_place`): :func:`set_deadline`
    then reads nothing more for a case of that street."""

    limits: dict[tuple[int, str, str], TimeLimit]
    street_id: int | None
    clock: WorkClock


def time_limit(category: Category, stage: str, level: str = "") -> TimeLimit | None:
    """The limit for a stage at a level: the category's own (level-specific first), else the
    parent category's."""
    return time_limits(category, {stage: level})[stage]


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


def _stage_level(case: Case, stage: str) -> str:
    return case.level if stage in ("accept", "handle") else ""


def compute_deadline(
    case: Case,
    clock: WorkClock | None = None,
    limits: dict[str, TimeLimit | None] | None = None,
) -> tuple[datetime | None, str]:
    """Deadline of the stage the case is in, from the stage start, the category's limit and
    approved extensions since. Returns (deadline or None, error message or ""). ``limits``:
    the stages' limits already looked up (:func:`time_limits`)."""
    stage = STAGE_OF_STATUS.get(case.status)
    if stage is None:
        return None, ""
    if limits is not None and stage in limits:
        limit = limits[stage]
    else:
        limit = time_limit(case.category, stage, _stage_level(case, stage))
    if limit is None:
        return None, ""
    start = case.assigned_at if stage == "handle" else case.stage_started_at
    start = start or case.reported_at
    clock = clock or WorkClock(_street_id(case))
    try:
        due = clock.add(start, limit.amount, limit.unit)
        # approved extensions since (a case not stored yet — a new report — has none: no
        # query built for them)
        extensions = (
            []
            if case.pk is None
            else case.requests.filter(
                kind=CaseRequest.Kind.EXTENSION,
                state=CaseRequest.State.APPROVED,
                decided_at__gte=start,
            ).order_by("decided_at")
        )
        for req in extensions:
            due = clock.add(due, req.amount or 0, req.unit or "natural_days")
    except CalendarMissing as exc:
        return None, str(exc)
    return due, ""


def set_deadline(
    case: Case,
    due: datetime | None = None,
    error: str = "",
    set_by: Member | None = None,
    *,
    draw: Sequence[str] = (),
    known: KnownRules | None = None,
) -> list[Any]:
    """Store the running stage's deadline, the yellow-card time and bump the version used by
    the deadline jobs (older jobs then do nothing).

    Without ``due`` the deadline is the rule's (time limit on the working-time clock). With
    ``due`` it was set by a person (a dispatcher's 设定时限): ``due_source="person"``, kept when
    the calendar or the rules change (:func:`recompute_open_deadlines`) until the case leaves
    the stage.

    ``draw``: SQL expressions (a new case's number 案件编号 and ids from their sequences, the
    case not stored yet) evaluated in the statement that reads the rules (a round trip
    fewer), else by a statement of their own; returns their values (none: []).

    ``known``: the limits and the clock read ahead (:class:`KnownRules`), used when they are
    the case's street's — no statement for them."""
    # one clock (calendar, office hours) and the time limits for the stage and 处置, read
    # together in one statement (time_limits_and_clock)
    clock = WorkClock(_street_id(case))
    limits: dict[str, TimeLimit | None] | None = None
    drawn: list[Any] = []
    if due is None and not error:
        stage = STAGE_OF_STATUS.get(case.status)
        wanted = {stage: _stage_level(case, stage)} if stage else {}
        if case.status in RUNNING_STATUSES and case.handle_due_at is None:
            wanted["handle"] = case.level  # the same level as the handle stage's own
        limits = {}
        if wanted and known is not None and known.street_id == _street_id(case):
            limits, clock = (
                _pick_limits(known.limits, _ancestry(case.category), wanted),
                known.clock,
            )
        elif wanted:
            limits, clock, drawn = _limits_and_clock(case.category, wanted, _street_id(case), draw)
            draw = ()
        due, error = compute_deadline(case, clock, limits)
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
    if draw:  # no rule read above: by themselves
        with connection.cursor() as cur:
            cur.execute("SELECT " + ", ".join(draw))
            drawn = list(cur.fetchone())
    if case.status in RUNNING_STATUSES and case.handle_due_at is None and due is not None:
        if limits is not None and "handle" in limits:
            handle = limits["handle"]
        else:
            handle = time_limit(case.category, "handle", case.level)
        if handle is not None:
            try:
                case.handle_due_at = clock.add(
                    case.assigned_at or case.reported_at, handle.amount, handle.unit
                )
            except CalendarMissing:
                pass
    return drawn


def schedule_checks(case: Case, deliver: list[int] | None = None) -> None:
    """Enqueue the deadline checks in the current transaction (the worker runs them; bulk
    loaders queue none inside :func:`gridsvc.cases.jobs.paused`), with the delivery of the
    inbox messages ``deliver`` (:func:`.events.inbox` with ``deliver=False``) in the same
    statement."""
    jobs.schedule_deadline_checks(case, deliver)


def schedule_follow_up(case: Case, when: datetime) -> FollowUp:
    """After resolution, a return visit 回访 by the grid member (else the level above)."""
    due, _ = compute_deadline(case)
    visitors = holders_over(case, [PositionType.GRID_MEMBER]) or level_above_members(case)
    visitor = visitors[0] if visitors else None
    return FollowUp.objects.create(
        case=case, assigned_to_id=visitor, due_at=due or when + timedelta(days=3)
    )
