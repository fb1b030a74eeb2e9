"""Reporting a case 上报 → 立案 → 派遣: store, route and notify in one transaction; nearby open
cases of the same category come back as possible duplicates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.contrib.gis.geos import Point
from django.db import connection, transaction
from django.db.models import Field, QuerySet
from django.db.models.sql import InsertQuery
from django.utils import timezone

from gridsvc import prepared
from gridsvc.supervision.models import InboxMessage
from gridsvc.territory.models import Building, Compound, Household, Unit

from .. import jobs
from ..models import (
    OPEN_STATUSES,
    Case,
    CaseEvent,
    Category,
    Status,
)
from .deadlines import (
    KnownRules,
    case_number,
    schedule_checks,
    schedule_follow_up,
    set_deadline,
)
from .errors import CaseError
from .events import dispatchers, holders_over, inbox_messages, new_event
from .routing import Routing, apply_routing, route
from .unity import attach_case_interpreters

if TYPE_CHECKING:
    from gridsvc.accounts.models import Member
    from gridsvc.chain.answer import Resolved


S = Status


FLAGS = ("ethnic_religious", "group_incident", "petition_risk")
#: a case's own columns its visibility follows from (:meth:`Scope.located_q`: a holder over
#: its street, community, grid, compound, building or unit) and the handler's and reporter's
#: (api.cases.scope.visible_among reads them)
SEEN_BY = (
    "street_id",
    "community_id",
    "grid_id",
    "compound_id",
    "building_id",
    "unit_id",
    "handler_id",
    "reported_by_id",
)


@dataclass
class Report:
    case: Case
    duplicates: list[Case]


@dataclass
class ReadAhead:
    """What the statement that found a report's category read ahead for its point
    (:func:`api.cases.inputs.category_and_place`, issue 19: one round trip instead of three):
    the point's place and holders at ``when`` (:func:`gridsvc.chain.answer.resolve_point`),
    the category's time limits and the place's street's clock (:class:`KnownRules`), and —
    for a report that may be stored in one statement (:func:`_store_at_once`) — its number,
    id and message id drawn (:func:`_draw`; else ``[]``)."""

    when: datetime
    resolved: Resolved
    rules: KnownRules
    drawn: list[Any]


def may_draw_ahead(on_the_spot: bool, flags: Iterable[str], files: bool) -> bool:
    """Whether a report's number and ids may be drawn with the read of its category and
    point (:class:`ReadAhead`): nothing may refuse it after that read (no photo to check, not
    on the spot) and it is likely stored in one statement (no flag: no flag rule's notify
    list; the jobs deferred in the statement)."""
    return (
        not on_the_spot
        and not files
        and not [f for f in flags if f in FLAGS]
        and jobs.enabled()
        and jobs.can_defer_in_statement()
    )


def draw_ahead_sql() -> list[str]:
    """The expressions :class:`ReadAhead` draws (those of a report stored at once)."""
    return _draw(True)


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


def check_report(
    category: Category,
    location: Point | None,
    places: Iterable[object],
    on_the_spot: bool = False,
    outcome: str = "",
) -> None:
    """The report's refusals (:class:`CaseError`), raised before anything is read or written:
    :func:`report_case` checks them first, and a caller may check them before opening the
    transaction that stores the report (no savepoint needed to answer them)."""
    if not category.active:
        raise CaseError(f"category {category.code} is not in use", "category")
    if on_the_spot and not outcome.strip():
        raise CaseError("on-the-spot handling needs the outcome", "outcome")
    if location is None and not any(places):
        raise CaseError("give a location or a household/unit/building/compound", "location")


def report_case(
    *,
    reporter: Member | None,
    category: Category,
    title: str,
    location: Point | None = None,
    household: Household | None = None,
    unit: Unit | None = None,
    building: Building | None = None,
    compound: Compound | None = None,
    description: str = "",
    parties: list[dict[str, Any]] | None = None,
    priority: int = 3,
    flags: Iterable[str] = (),
    source: str = "app",
    external_ref: str = "",
    on_the_spot: bool = False,
    outcome: str = "",
    when: datetime | None = None,
    read: ReadAhead | None = None,
) -> Report:
    """Store and route a report (上报 → 立案 → 派遣) in one transaction; returns the case and the
    open cases nearby that may be duplicates. ``read``: what was read ahead for its point (at
    ``read.when``, the report's time)."""
    if read is not None and (location is None or any((household, unit, building, compound))):
        read = None  # read for a point alone
    when = read.when if read is not None else (when or timezone.now())
    flags = [f for f in flags if f in FLAGS]
    check_report(category, location, (household, unit, building, compound), on_the_spot, outcome)
    r = route(
        category,
        location,
        household=household,
        unit=unit,
        building=building,
        compound=compound,
        flags=flags,
        when=when,
        resolved=read.resolved if read is not None else None,
    )
    assert r.location.point is not None  # locate() always places the report
    # no savepoint of its own inside a caller's transaction (two statements fewer): every
    # caller's block around it is atomic, and a failure here fails the whole report
    with transaction.atomic(savepoint=False):
        case = Case(
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
        apply_routing(case, r)
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
        # a report handed to its handler, no household (no interpreter to call), nobody else
        # told: the case, its events, the handler's message and the jobs are ONE statement,
        # the case's and the message's ids drawn with the number in the rules' read
        # (:func:`_store_at_once`); any other report as below
        at_once = (
            not on_the_spot
            and not r.queued
            and not r.notify
            and case.handler_id is not None
            and case.household_id is None
            and jobs.enabled()
            and jobs.can_defer_in_statement()
        )
        known = read.rules if read is not None else None
        if read is not None and read.drawn:
            set_deadline(case, known=known)
            drawn = read.drawn
        else:
            drawn = set_deadline(case, draw=_draw(at_once), known=known)
        case.number = case_number(when, drawn[0])
        if at_once:
            case.pk = drawn[1]
            dups = _store_at_once(
                case,
                _events(case, r, reporter, title, source, flags, when),
                drawn[2],
                title,
                _nearby_statement(category, case, when),
            )
            return Report(case, dups)
        if len(drawn) > 1:  # its id drawn ahead (not stored at once after all: queued)
            case.pk = drawn[1]
            case.save(force_insert=True)
        else:
            case.save()
        if case.handler_id and not on_the_spot:  # 请翻译随行 where the handler lacks the language
            attach_case_interpreters(case, reporter)
        # the report's events in one INSERT (in this order: report, route, on the spot)
        events = _events(case, r, reporter, title, source, flags, when)
        if on_the_spot:
            events.append(new_event(case, "on_the_spot", reporter, note=outcome, at=when))
        CaseEvent.objects.bulk_create(events)
        if on_the_spot:
            schedule_follow_up(case, when)
        # the messages' delivery goes with the deadline checks: one statement for the jobs
        messages: list[int] = []
        if case.handler_id and not on_the_spot:
            messages += inbox_messages(
                [case.handler_id],
                InboxMessage.Kind.NEW_CASE,
                case,
                f"新案件 {case.number}: {title}",
            )
        elif r.queued:
            messages += inbox_messages(
                dispatchers(case),
                InboxMessage.Kind.NEW_CASE,
                case,
                f"待派遣 {case.number}: {title}",
            )
        if r.notify:
            messages += inbox_messages(
                holders_over(case, r.notify),
                InboxMessage.Kind.NEW_CASE,
                case,
                f"关注 {case.number}: {title}",
                "、".join(_flag_labels(case)) or category.name,
            )
        schedule_checks(case, deliver=messages)
    return Report(case, _duplicates(category, case, when))


def _duplicates(category: Category, case: Case, when: datetime) -> list[Case]:
    """The open cases near a new one: the answer names them only (id, number, title,
    status) — no geometry, no chain JSON — with the columns who may see them follows from
    (api.cases.scope.visible_among)."""
    return list(_nearby(category, case, when))


def _nearby(category: Category, case: Case, when: datetime) -> QuerySet[Case]:
    """The query of :func:`_duplicates`."""
    return find_duplicates(category, case.location, when, exclude_id=case.pk).only(
        "id", "number", "title", "status", "reported_at", "category_id", *SEEN_BY
    )[:10]


_NEARBY_SQL: list[str] = []  # the SQL of _nearby, compiled once per process


def _nearby_statement(category: Category, case: Case, when: datetime) -> tuple[str, list[Any]]:
    """The SQL and parameters of :func:`_nearby`: compiled by the ORM once per process (the
    text is the same for every report, only the parameters change), kept only when its
    parameters are those this function gives (checked on that first compile)."""
    params = [
        category.pk,
        when - timedelta(days=category.duplicate_days),
        *OPEN_STATUSES,
        case.location.x,
        case.location.y,
        category.duplicate_radius_m,
        case.pk,
    ]
    if _NEARBY_SQL:
        return _NEARBY_SQL[0], params
    sql, compiled = _nearby(category, case, when).query.sql_with_params()
    if list(compiled) == params:
        _NEARBY_SQL.append(sql)
    return sql, list(compiled)


def _events(
    case: Case,
    r: Routing,
    reporter: Member | None,
    title: str,
    source: str,
    flags: list[str],
    when: datetime,
) -> list[CaseEvent]:
    """A report's events, not stored yet: the report, then the route."""
    return [
        new_event(
            case,
            "report",
            reporter,
            note=title,
            location=case.location,
            at=when,
            data={"source": source, "flags": flags},
        ),
        new_event(
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
        ),
    ]


_NUMBER = "nextval('cases_case_number_seq')"


def _draw(at_once: bool) -> list[str]:
    """What a report draws with its rules' read: the number; for :func:`_store_at_once` the
    case's id and its message's id too (the serial sequences of their tables)."""
    if not at_once:
        return [_NUMBER]
    return [
        _NUMBER,
        f"nextval(pg_get_serial_sequence('{Case._meta.db_table}', 'id'))",
        f"nextval(pg_get_serial_sequence('{InboxMessage._meta.db_table}', 'id'))",
    ]


# the INSERTs' SQL text by what it depends on: the model, whether the primary key is given,
# and each value's placeholder (``%s``, a geometry's, per row); compiled by the ORM once
_INSERT_SQL: dict[tuple[Any, ...], str] = {}


def _insert_sql(objs: list[Any]) -> tuple[str, list[Any]]:
    """The INSERT the ORM sends for ``objs`` (one model; every concrete field, the primary
    key included when set — fields' ``pre_save`` run, auto_now set on the objects). Its
    parameters are the compiler's own (``pre_save`` then ``get_db_prep_save``) every time;
    its text is compiled by the ORM once per process for each shape (:data:`_INSERT_SQL`),
    and not kept when a value is an expression."""
    model = type(objs[0])
    fields = [f for f in model._meta.local_concrete_fields if not f.generated]
    if any(o.pk is None for o in objs):
        fields = [f for f in fields if f is not model._meta.auto_field]
    query = InsertQuery(model)
    query.insert_values(fields, objs, raw=False)
    compiler = query.get_compiler(connection.alias)
    rows = [[compiler.prepare_value(f, compiler.pre_save_val(f, o)) for f in fields] for o in objs]
    placeholders = [getattr(f, "get_placeholder", None) for f in fields]
    key: tuple[Any, ...] | None = (model, len(fields))
    shape: list[str] = []
    for row in rows:
        for get, value in zip(placeholders, row, strict=True):
            if hasattr(value, "as_sql"):
                key = None  # an expression: its SQL is its own
                break
            shape.append("%s" if get is None else get(value, compiler, connection))
        if key is None:
            break
    sql = _INSERT_SQL.get((*key, *shape)) if key is not None else None
    if sql is not None:
        params = [p for row in rows for p in row]
    else:
        ((sql, compiled),) = compiler.as_sql()
        params = list(compiled)
        if key is not None and len(params) == len(fields) * len(objs):
            _INSERT_SQL[(*key, *shape)] = sql
    for o in objs:
        o._state.adding, o._state.db = False, connection.alias
    return sql, params


def _store_at_once(
    case: Case,
    events: list[CaseEvent],
    message_id: int,
    title: str,
    nearby: tuple[str, list[Any]],
) -> list[Case]:
    """Store a new case (its id drawn already), its events and its handler's inbox message,
    queue its deadline checks with the message's delivery, and read the ``nearby`` open
    cases (:func:`_duplicates`), in ONE statement: the rows, jobs and reads
    :func:`report_case` otherwise sends in five (the case's INSERT, the events', the
    message's, procrastinate's defer, the duplicates' SELECT) — the ORM's own INSERTs as
    data-modifying CTEs, procrastinate's own defer query, the duplicates' own query beside
    it (it sees the database as before the statement: the new case is not among them)."""
    assert case.handler_id is not None  # only a report handed to its handler comes here
    message = InboxMessage(
        id=message_id,
        member_id=case.handler_id,
        kind=InboxMessage.Kind.NEW_CASE,
        title=f"新案件 {case.number}: {title}"[:200],
        body="",
        object_type="case",
        object_id=str(case.pk),
    )
    parts, params = [], []
    for name, objs in (("c", [case]), ("e", events), ("m", [message])):
        sql, p = _insert_sql(objs)
        parts.append(f"{name} AS ({sql})")
        params += p
    defer_sql, batch = jobs.defer_select(jobs.deadline_jobs(case, [message_id]))
    parts.append(f"j AS ({defer_sql})")
    near_sql, near_params = nearby
    # the jobs' CTE read once (a SELECT in WITH runs only when read), the nearby beside; its
    # text the same for every such report (each INSERT's compiled once per shape): prepared
    # on the connection (gridsvc.prepared), parsed and planned once
    names, found_rows = prepared.fetchall_named(
        f"WITH {', '.join(parts)} SELECT d.* FROM (SELECT count(*) FROM j) q "
        f"LEFT JOIN ({near_sql}) d ON true",
        [*params, batch, *near_params],
        connection.alias,
    )
    rows = [dict(zip(names, row, strict=True)) for row in found_rows]
    found = [
        Case.from_db(connection.alias, list(row), list(row.values()))
        for row in rows
        if row["id"] is not None
    ]
    found.sort(key=lambda c: c.reported_at, reverse=True)  # as the query orders them
    return found


def _flag_labels(case: Case) -> list[str]:
    return [str(cast("Field[Any, Any]", Case._meta.get_field(f)).help_text) for f in case.flags]
