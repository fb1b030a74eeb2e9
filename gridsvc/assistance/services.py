"""Rules of assistance applications (民生服务申请): who may do what, the working-day
deadlines of each stage, the yearly 低保 re-check and the worker's reminders.

Stages and who acts (the household must lie in the actor's territory):

- submit (申请) and check (核查): grid member or community cadre over the household's grid,
  community staff (调委会, 五员) over its community, or the street office;
- review (社区评议): community cadre over the grid or community staff over the community;
- decide (街道审批), recheck (复核) and end (停止): the street dispatcher over the street.

Neighbours' roles (楼长, 单元长, 物业, 业委会) do nothing here and see nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import (
    CLEAR,
    LOW_INCOME,
    MASK,
    MASKED,
    Tier,
    rule,
    staff_scope,
    tier_for,
)
from gridsvc.errors import DomainError
from gridsvc.supervision.clock import deadline
from gridsvc.territory.models import Household, Resident

from . import jobs
from .models import OPEN_STATUSES, Application, ApplicationEvent, Kind, Status

# Working days each stage may take (民政 practice: 核查 5, 社区评议 10, 街道审批 10).
STAGE_WORKING_DAYS: dict[str, int] = {
    Status.SUBMITTED: 5,
    Status.CHECKED: 10,
    Status.REVIEWED: 10,
}
# 低保 is re-checked every year; other kinds only when an end date is reached; 临时救助 is
# paid once and never re-checked.
RECHECK_MONTHS: dict[str, int] = {Kind.DIBAO: 12}
ONE_OFF_KINDS = (Kind.TEMP_RELIEF,)


def _recheck_date(kind: str, start_date: date, end_date: date | None) -> date | None:
    """The first 复核 of an approval: a year on for 低保, the end date for others, none for
    one-off relief."""
    if kind in ONE_OFF_KINDS:
        return None
    months = RECHECK_MONTHS.get(kind)
    return _add_months(start_date, months) if months else end_date


FIVE_STAFF = (
    PositionType.PUBLICITY_OFFICER,
    PositionType.ORGANISER,
    PositionType.INFORMATION_OFFICER,
    PositionType.LIAISON_OFFICER,
    PositionType.MEDIATOR,
)
COMMUNITY_STAFF = (PositionType.MEDIATION_COMMITTEE, *FIVE_STAFF)
STREET_DESK = (PositionType.STREET_DISPATCHER,)

# stage → (position types over the grid, over the community, over the street)
ACTORS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "submit": (
        (PositionType.GRID_MEMBER, PositionType.COMMUNITY_CADRE),
        COMMUNITY_STAFF,
        (PositionType.STREET_DISPATCHER, PositionType.ETHNIC_AFFAIRS_DESK),
    ),
    "review": ((PositionType.COMMUNITY_CADRE,), COMMUNITY_STAFF, ()),
    "decide": ((), (), STREET_DESK),
}
ACTORS["check"] = ACTORS["submit"]
ACTORS["withdraw"] = ACTORS["submit"]
ACTORS["recheck"] = ACTORS["decide"]
ACTORS["end"] = ACTORS["decide"]


def amounts_in_clear(tier: Tier, unmasked: bool) -> bool:
    """Whether income and amounts of assistance (收入, 救助金额, 结对帮扶's money or goods:
    ``LOW_INCOME``) are shown in clear to ``tier``: where the visibility matrix masks them
    (staff, street) only under an unmask grant (``unmasked``; the caller audits the read),
    never where it hides them. The one rule of the assistance API, its 台账 and the community's
    pairing help (API, feed, 台账)."""
    cell = rule(LOW_INCOME, tier)
    return cell == CLEAR or (cell == MASKED and unmasked)


def shown_amount(value: Any, clear: bool) -> str | None:
    """An amount (元) as shown: none stays None, else in clear (``"620.00"``) or ``"**"``."""
    if value is None:
        return None
    return str(value) if clear else MASK


class AssistanceError(DomainError):
    """An assistance rule refused the request."""


class NotAllowed(AssistanceError):
    status_code = 403
    code = "permission_denied"


def _place(household: Household) -> tuple[int | None, int | None, int | None]:
    grid = household.unit.building.grid
    if grid is None:
        return None, None, None
    return grid.pk, grid.community_id, grid.community.street_id


def _territory_q(household: Household, stage: str) -> Q:
    on_grid, on_community, on_street = ACTORS[stage]
    grid_id, community_id, street_id = _place(household)
    q = Q(pk__in=[])
    if grid_id and on_grid:
        q |= Q(position_type__in=on_grid, grid_id=grid_id)
    if community_id and on_community:
        q |= Q(position_type__in=on_community, community_id=community_id)
    if street_id and on_street:
        q |= Q(position_type__in=on_street, street_id=street_id)
    return q


def may_act(member: Any, household: Household, stage: str) -> bool:
    """Whether ``member`` holds a position that may do ``stage`` for ``household``."""
    if member.is_superuser:
        return True
    held = Position.objects.held_at().filter(member=member)
    return held.filter(_territory_q(household, stage)).exists()


def actors_of(household: Household, stage: str) -> list[int]:
    """Members who may do ``stage`` for ``household`` now (not on leave)."""
    rows = Position.objects.active_at().filter(_territory_q(household, stage))
    return sorted(set(rows.values_list("member_id", flat=True)))


def _require(member: Any, household: Household, stage: str) -> None:
    if not may_act(member, household, stage):
        raise NotAllowed(f"your positions do not allow '{stage}' for this household")


def visible_applications(scope: Scope, member: Any) -> QuerySet[Application]:
    """Applications ``member`` may see: none below the STAFF tier; otherwise those of
    households in the staff part of the scope (a grid member who is also a building head
    elsewhere sees only their grid's)."""
    qs = Application.objects.select_related("household", "applicant", "created_by")
    if tier_for(member) < Tier.STAFF:
        return qs.none()
    return staff_scope(scope).filter(qs)


def _street_of(app: Application) -> int | None:
    return _place(app.household)[2]


def _remind_time(start: datetime, due: datetime | None) -> datetime | None:
    """When a stage is reminded before its deadline (临期): at the share of the span a case
    gets its yellow card (``YELLOW_CARD_SHARE``, 80%)."""
    if due is None:
        return None
    from gridsvc.cases.services.deadlines import YELLOW_SHARE

    span = max((due - start).total_seconds(), 0)
    return start + timedelta(seconds=span * YELLOW_SHARE)


def _set_deadline(app: Application, start: datetime) -> None:
    days = STAGE_WORKING_DAYS.get(app.status)
    app.due_at = (
        deadline(start, days, "working_days", _street_of(app)) if days is not None else None
    )
    app.remind_at = _remind_time(start, app.due_at)
    app.reminded_for = None
    app.warned_for = None


def _event(app: Application, action: str, before: str, actor: Any, note: str = "") -> None:
    ApplicationEvent.objects.create(
        application=app,
        action=action,
        from_status=before,
        to_status=app.status,
        actor=actor if getattr(actor, "pk", None) else None,
        note=note,
    )


def _move(app: Application, action: str, to: str, actor: Any, note: str = "") -> Application:
    before = app.status
    app.status = to
    _set_deadline(app, timezone.now())
    app.save()
    _event(app, action, before, actor, note)
    if app.due_at:
        jobs.schedule_deadline_check(app)
    return app


def _locked(app_id: int, *expected: str) -> Application:
    app = Application.objects.select_for_update().select_related("household").get(pk=app_id)
    if expected and app.status not in expected:
        raise AssistanceError(
            f"the application is {app.status}; this step needs {' or '.join(expected)}",
            "status",
            status=409,
            code="conflict",
        )
    return app


@dataclass
class Created:
    application: Application
    created: bool


def submit(
    actor: Any,
    household: Household,
    kind: str,
    *,
    applicant: Resident | None = None,
    visit: Any = None,
    reason: str = "",
    client_uuid: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Created:
    """申请: start an application for ``household`` (from a visit, possibly offline: the same
    ``client_uuid`` again returns the stored application). ``now``: when it was made (the
    phone's time of an offline submission, or a backdated load); the check deadline runs
    from it."""
    if client_uuid is not None:
        existing = Application.objects.filter(client_uuid=client_uuid).first()
        if existing is not None:
            if existing.household_id != household.pk or existing.kind != kind:
                raise AssistanceError(
                    "this client_uuid was used for another application", "client_uuid"
                )
            return Created(existing, False)
    if kind not in Kind.values:
        raise AssistanceError(f"unknown kind {kind!r}", "kind")
    _require(actor, household, "submit")
    if applicant is not None and applicant.household_id != household.pk:
        raise AssistanceError("the applicant does not live in this household", "applicant")
    if visit is not None and visit.household_id != household.pk:
        raise AssistanceError("the visit was to another household", "visit")
    with transaction.atomic():
        if Application.objects.filter(
            household=household, kind=kind, status__in=OPEN_STATUSES
        ).exists():
            raise AssistanceError(
                "this household already has an open application of this kind",
                "kind",
                status=409,
                code="conflict",
            )
        app = Application(
            household=household,
            applicant=applicant,
            visit=visit,
            kind=kind,
            reason=reason,
            client_uuid=client_uuid,
            created_by=actor,
        )
        _set_deadline(app, now or timezone.now())
        app.save()
        _event(app, "submit", "", actor, reason)
        jobs.schedule_deadline_check(app)
    return Created(app, True)


def check(
    actor: Any,
    app_id: int,
    *,
    members_count: int,
    monthly_income: Decimal,
    documents: list[str],
    note: str = "",
) -> Application:
    """核查: members confirmed, income declared, documents seen."""
    with transaction.atomic():
        app = _locked(app_id, Status.SUBMITTED)
        _require(actor, app.household, "check")
        if members_count < 1:
            raise AssistanceError("a household has at least one member", "members_count")
        if monthly_income < 0:
            raise AssistanceError("income cannot be negative", "monthly_income")
        if not documents:
            raise AssistanceError("name the documents seen (户口簿, 身份证 …)", "documents")
        app.members_count = members_count
        app.monthly_income = monthly_income
        app.documents = [str(d)[:100] for d in documents][:30]
        return _move(app, "check", Status.CHECKED, actor, note)


def review(actor: Any, app_id: int, *, recommended: bool, opinion: str) -> Application:
    """社区评议: the community's opinion (recommend or not), with its reasons."""
    if not opinion.strip():
        raise AssistanceError("the review needs its reasons", "opinion")
    with transaction.atomic():
        app = _locked(app_id, Status.CHECKED)
        _require(actor, app.household, "review")
        app.recommended = recommended
        app.review_opinion = opinion
        return _move(app, "review", Status.REVIEWED, actor, opinion)


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise ValueError(d)  # pragma: no cover


def decide(
    actor: Any,
    app_id: int,
    *,
    approved: bool,
    reason: str,
    amount: Decimal | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
) -> Application:
    """街道审批: approve (amount, start and end dates; 低保 re-checked yearly) or reject, with
    the reasons."""
    if not reason.strip():
        raise AssistanceError("the decision needs its reasons", "reason")
    with transaction.atomic():
        app = _locked(app_id, Status.REVIEWED)
        _require(actor, app.household, "decide")
        app.decision_reason = reason
        if approved:
            if start_date is None:
                raise AssistanceError("an approval needs a start date", "start_date")
            if end_date is not None and end_date < start_date:
                raise AssistanceError("the end date is before the start date", "end_date")
            if amount is not None and amount < 0:
                raise AssistanceError("the amount cannot be negative", "amount")
            app.amount, app.start_date, app.end_date = amount, start_date, end_date
            app.recheck_due = _recheck_date(app.kind, start_date, end_date)
            return _move(app, "approve", Status.APPROVED, actor, reason)
        return _move(app, "reject", Status.REJECTED, actor, reason)


def recheck(
    actor: Any,
    app_id: int,
    *,
    continue_: bool,
    note: str,
    amount: Decimal | None = None,
) -> Application:
    """复核: the street confirms the assistance goes on (next re-check a year on) or ends it."""
    with transaction.atomic():
        app = _locked(app_id, Status.APPROVED)
        _require(actor, app.household, "recheck")
        if not continue_:
            app.end_date = timezone.localdate()
            return _move(app, "recheck_end", Status.ENDED, actor, note)
        if amount is not None:
            app.amount = amount
        months = RECHECK_MONTHS.get(app.kind, 12)
        app.recheck_due = _add_months(
            max(app.recheck_due or timezone.localdate(), timezone.localdate()), months
        )
        app.save()
        _event(app, "recheck", Status.APPROVED, actor, note)
        return app


def withdraw(actor: Any, app_id: int, *, note: str = "") -> Application:
    """撤回: the household no longer applies (before the decision)."""
    with transaction.atomic():
        app = _locked(app_id, *OPEN_STATUSES)
        _require(actor, app.household, "withdraw")
        return _move(app, "withdraw", Status.WITHDRAWN, actor, note)


# ---------------------------------------------------------------- the clock and the worker
STAGE_ACTION = {Status.SUBMITTED: "check", Status.CHECKED: "review", Status.REVIEWED: "decide"}
STAGE_VERB = {"check": "核查", "review": "评议", "decide": "审批"}


def overdue(now: datetime | None = None) -> QuerySet[Application]:
    """Open applications past their stage's deadline and not yet escalated for it, or past
    their reminder time (临期) and not yet reminded for it."""
    now = now or timezone.now()
    late = Q(due_at__lte=now) & ~Q(reminded_for=F("due_at"), reminded_for__isnull=False)
    near = Q(remind_at__lte=now, due_at__gt=now) & ~Q(
        warned_for=F("due_at"), warned_for__isnull=False
    )
    return Application.objects.filter(late | near, status__in=OPEN_STATUSES)


def apply_clock(app_id: int, now: datetime | None = None) -> str:
    """Remind the stage's actors and escalate to the street desk once per overdue deadline
    (safe to run twice: the row lock and ``reminded_for`` decide)."""
    from gridsvc.supervision.models import InboxMessage

    now = now or timezone.now()
    with transaction.atomic():
        app = Application.objects.select_for_update().select_related("household").get(pk=app_id)
        if app.status not in OPEN_STATUSES or app.due_at is None:
            return "not_due"
        if app.due_at > now:
            if app.remind_at is None or app.remind_at > now:
                return "not_due"
            return _warn(app)
        if app.reminded_for == app.due_at:
            return "done"
        stage = STAGE_ACTION[app.status]
        members = set(actors_of(app.household, stage))
        members |= set(actors_of(app.household, "decide"))  # escalated to the street desk
        title = f"民生服务申请 #{app.pk} 逾期未{STAGE_VERB[stage]}"
        _notify(
            app, InboxMessage.Kind.ESCALATION, title, sorted(members), "reminded_for", "overdue"
        )
    return "escalated"


def _notify(
    app: Application, kind: str, title: str, members: Iterable[int], sent_for: str, event: str
) -> None:
    """Tell ``members`` (ids) of ``app``'s deadline (an inbox message of ``kind``), once per
    deadline: ``sent_for`` (``reminded_for``, ``warned_for``) set to it, the event logged;
    delivered after the caller's transaction commits."""
    from gridsvc.cases.jobs import deliver_inbox_later
    from gridsvc.supervision.models import InboxMessage

    messages = InboxMessage.objects.bulk_create(
        [
            InboxMessage(
                member_id=m,
                kind=kind,
                title=title[:200],
                object_type="assistance",
                object_id=str(app.pk),
            )
            for m in members
        ]
    )
    setattr(app, sent_for, app.due_at)
    app.save(update_fields=[sent_for, "updated_at"])
    _event(app, event, app.status, None, title)
    if messages:
        deliver_inbox_later([m.pk for m in messages])


def _warn(app: Application) -> str:
    """临期: remind the members who may take the pending step, once per deadline (as a case's
    yellow card; the street desk hears of it only when it is overdue). In the caller's
    transaction, the row locked."""
    from gridsvc.supervision.models import InboxMessage

    if app.warned_for == app.due_at:
        return "done"
    stage = STAGE_ACTION[app.status]
    due_day = timezone.localtime(app.due_at).date().isoformat()
    title = f"民生服务申请 #{app.pk} 临期: 请于 {due_day} 前{STAGE_VERB[stage]}"
    members = actors_of(app.household, stage)
    _notify(app, InboxMessage.Kind.YELLOW_CARD, title, members, "warned_for", "reminder")
    return "reminded"


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Apply the clock to every overdue application (the worker's catch-up)."""
    counts: dict[str, int] = {}
    for app_id in overdue(now).values_list("pk", flat=True):
        outcome = apply_clock(app_id, now)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def recheck_overdue(qs: QuerySet[Application], today: date | None = None) -> QuerySet[Application]:
    """Approved assistance whose re-check (复核) date has passed."""
    today = today or timezone.localdate()
    return qs.filter(status=Status.APPROVED, recheck_due__lt=today)


# ---------------------------------------------------------------- 应保尽保 (item 2)
# Recorded circumstances that suggest a kind of assistance (resident tags, the tenure).
SUGGESTING_TAGS: dict[str, tuple[str, ...]] = {
    Kind.DIBAO: ("low_income", "hardship"),
    Kind.PUBLIC_HOUSING: ("low_rent_housing",),
}
COVERING_KINDS: dict[str, tuple[str, ...]] = {
    Kind.DIBAO: (Kind.DIBAO,),
    Kind.PUBLIC_HOUSING: (Kind.PUBLIC_HOUSING, Kind.RENT_SUBSIDY),
}
LIVE_STATUSES = (*OPEN_STATUSES, Status.APPROVED)


def _suggested(kind: str) -> Q:
    q = Q(residents__tags__overlap=list(SUGGESTING_TAGS[kind]))
    if kind == Kind.PUBLIC_HOUSING:
        q |= Q(tenure__in=[Household.Tenure.LOW_RENT, Household.Tenure.PUBLIC_RENTAL])
    return q


def gap_households(
    households: QuerySet[Household], today: date | None = None
) -> dict[str, QuerySet[Household]]:
    """The rule of 应保尽保 as querysets (lazy, for a list or a map layer): among
    ``households`` (already scoped), per kind those whose records suggest it but that have no
    live application of it, and under ``recheck_overdue`` those on assistance whose re-check
    is overdue."""
    out: dict[str, QuerySet[Household]] = {}
    for kind, covering in COVERING_KINDS.items():
        covered = Application.objects.filter(kind__in=covering, status__in=LIVE_STATUSES)
        out[kind] = households.filter(
            pk__in=Household.objects.filter(_suggested(kind)).values("pk")
        ).exclude(pk__in=covered.values("household_id"))
    late = recheck_overdue(Application.objects.all(), today)
    out["recheck_overdue"] = households.filter(pk__in=late.values("household_id"))
    return out


def gaps(households: QuerySet[Household], today: date | None = None) -> dict[str, Any]:
    """应保尽保: among ``households`` (already scoped), those whose records suggest a kind of
    assistance but that have no live application of it (``missing``: kind → household ids),
    and households on assistance whose re-check is overdue (``recheck_overdue``)."""
    rows = {
        key: sorted(set(qs.values_list("pk", flat=True)))
        for key, qs in gap_households(households, today).items()
    }
    overdue_ids = rows.pop("recheck_overdue")
    return {"missing": rows, "recheck_overdue": overdue_ids}


def gaps_by_grid(gap: dict[str, Any]) -> dict[int | None, dict[str, int]]:
    """The counts of :func:`gaps` per grid (household → its building's grid)."""
    ids = {i for rows in gap["missing"].values() for i in rows} | set(gap["recheck_overdue"])
    grid_of = dict(
        Household.objects.filter(pk__in=ids).values_list("pk", "unit__building__grid_id")
    )
    out: dict[int | None, dict[str, int]] = {}
    keys = [*gap["missing"], "recheck_overdue"]
    for key in keys:
        rows = gap["missing"][key] if key in gap["missing"] else gap["recheck_overdue"]
        for i in rows:
            cell = out.setdefault(grid_of.get(i), dict.fromkeys(keys, 0))
            cell[key] += 1
    return out


RECHECK_NOTICE_DAYS = 30  # the street desk is told a month before a re-check falls due


def recheck_reminders(today: date | None = None) -> int:
    """Daily: tell the street desk (and the grid's members) of each approved application whose
    re-check (复核) falls due within :data:`RECHECK_NOTICE_DAYS` (a notice), and escalate it
    once it is overdue (kind ``escalation``, as overdue cases are) — each once per re-check
    date (a second run, or a retried job, sends nothing more). Returns the number of
    messages written."""
    from gridsvc.cases.jobs import deliver_inbox_later
    from gridsvc.supervision.models import InboxMessage

    today = today or timezone.localdate()
    horizon = date.fromordinal(today.toordinal() + RECHECK_NOTICE_DAYS)
    written: list[int] = []
    with transaction.atomic():
        due = Application.objects.select_related("household").filter(
            status=Status.APPROVED, recheck_due__lte=horizon
        )
        for app in due:
            late = app.recheck_due < today
            title = f"民生服务复核 #{app.pk} 应于 {app.recheck_due.isoformat()} 前完成"
            if late:  # escalated once when overdue, even if the notice went out before
                title = f"民生服务复核 #{app.pk} 已逾期(应于 {app.recheck_due.isoformat()} 前完成)"
            if InboxMessage.objects.filter(
                object_type="assistance", object_id=str(app.pk), title=title
            ).exists():
                continue
            members = set(actors_of(app.household, "recheck")) | set(
                actors_of(app.household, "check")
            )
            rows = InboxMessage.objects.bulk_create(
                [
                    InboxMessage(
                        member_id=m,
                        kind=InboxMessage.Kind.ESCALATION if late else InboxMessage.Kind.OTHER,
                        title=title,
                        object_type="assistance",
                        object_id=str(app.pk),
                    )
                    for m in sorted(members)
                ]
            )
            written += [r.pk for r in rows]
        deliver_inbox_later(written)
    return len(written)


# ---------------------------------------------------------------- batches (bulk loads)
# The same rules as :func:`submit` … :func:`decide`, for many households or applications at
# once (a street's yearly 医保 enrolment drive, the demo street): the permission is checked
# once per place, the rows written with bulk_create/bulk_update, one event per application.


def _may_act_cached(member: Any, household: Household, stage: str, cache: dict) -> bool:
    key = (stage, _place(household))
    if key not in cache:
        cache[key] = may_act(member, household, stage)
    return cache[key]


def _deadline_cached(status: str, street_id: int | None, start: datetime, cache: dict) -> Any:
    days = STAGE_WORKING_DAYS.get(status)
    if days is None:
        return None
    key = (status, street_id)
    if key not in cache:
        cache[key] = deadline(start, days, "working_days", street_id)
    return cache[key]


def submit_many(
    actor: Any,
    households: list[Household],
    kind: str,
    *,
    applicants: dict[int, Resident] | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> list[Application]:
    """申请 for many households at once (one application each, or one per named applicant
    in ``applicants``: household id → resident). Refused as a whole if the actor may not
    submit for one of them, or one already has an open application of ``kind``."""
    if kind not in Kind.values:
        raise AssistanceError(f"unknown kind {kind!r}", "kind")
    now = now or timezone.now()
    perm: dict = {}
    clock: dict = {}
    hh = list(
        Household.objects.select_related("unit__building__grid__community").filter(
            pk__in=[h.pk for h in households]
        )
    )
    for h in hh:
        if not _may_act_cached(actor, h, "submit", perm):
            raise NotAllowed(f"your positions do not allow 'submit' for household {h.pk}")
    with transaction.atomic():
        if Application.objects.filter(
            household__in=hh, kind=kind, status__in=OPEN_STATUSES
        ).exists():
            raise AssistanceError(
                "a household already has an open application of this kind",
                "kind",
                status=409,
                code="conflict",
            )
        apps = []
        for h in hh:
            app = Application(
                household=h,
                applicant=(applicants or {}).get(h.pk),
                kind=kind,
                reason=reason,
                created_by=actor,
            )
            app.due_at = _deadline_cached(app.status, _place(h)[2], now, clock)
            app.remind_at = _remind_time(now, app.due_at)
            apps.append(app)
        Application.objects.bulk_create(apps, batch_size=1000)
        ApplicationEvent.objects.bulk_create(
            [
                ApplicationEvent(
                    application=a,
                    action="submit",
                    from_status="",
                    to_status=a.status,
                    actor=actor,
                    note=reason,
                )
                for a in apps
            ],
            batch_size=1000,
        )
        for a in apps:
            jobs.schedule_deadline_check(a)
    return apps


def _advance_many(
    actor: Any,
    app_ids: list[int],
    stage: str,
    expected: str,
    to: str,
    action: str,
    note: str,
    fields: dict[str, Any],
    per_app: Any = None,
    per_app_fields: tuple[str, ...] = (),
) -> list[Application]:
    """Move many applications from ``expected`` to ``to`` (409 if one is not there, 403 if
    the actor may not take ``stage`` for one), setting ``fields`` (and ``per_app(app)``)."""
    perm: dict = {}
    clock: dict = {}
    now = timezone.now()
    with transaction.atomic():
        apps = list(
            Application.objects.select_for_update(of=("self",))
            .select_related("household__unit__building__grid__community")
            .filter(pk__in=app_ids)
            .order_by("pk")
        )
        if len(apps) != len(set(app_ids)):
            raise AssistanceError("unknown application", "applications", status=404)
        for app in apps:
            if app.status != expected:
                raise AssistanceError(
                    f"application {app.pk} is {app.status}; this step needs {expected}",
                    "status",
                    status=409,
                    code="conflict",
                )
            if not _may_act_cached(actor, app.household, stage, perm):
                raise NotAllowed(f"your positions do not allow '{stage}' for application {app.pk}")
        for app in apps:
            for k, v in fields.items():
                setattr(app, k, v)
            if per_app is not None:
                per_app(app)
            app.status = to
            app.due_at = _deadline_cached(to, _street_of(app), now, clock)
            app.remind_at = _remind_time(now, app.due_at)
            app.reminded_for = None
            app.warned_for = None
            app.updated_at = now
        # one UPDATE per distinct value of the fields that differ between applications
        varying = ("due_at", "remind_at", *per_app_fields)
        groups: dict[tuple, list[int]] = {}
        for app in apps:
            groups.setdefault(tuple(getattr(app, f) for f in varying), []).append(app.pk)
        for key, pks in groups.items():
            Application.objects.filter(pk__in=pks).update(
                status=to, reminded_for=None, warned_for=None, updated_at=now, **fields,
                **dict(zip(varying, key, strict=True)),
            )  # fmt: skip
        ApplicationEvent.objects.bulk_create(
            [
                ApplicationEvent(
                    application=a,
                    action=action,
                    from_status=expected,
                    to_status=to,
                    actor=actor if getattr(actor, "pk", None) else None,
                    note=note,
                )
                for a in apps
            ],
            batch_size=1000,
        )
        for a in apps:
            if a.due_at:
                jobs.schedule_deadline_check(a)
    return apps


def check_many(
    actor: Any,
    app_ids: list[int],
    *,
    monthly_income: Decimal,
    documents: list[str],
    note: str = "",
) -> list[Application]:
    """核查 of many applications: the members counted are the residents recorded in each
    household; the same declared income and documents."""
    if monthly_income < 0:
        raise AssistanceError("income cannot be negative", "monthly_income")
    if not documents:
        raise AssistanceError("name the documents seen (户口簿, 身份证 …)", "documents")
    sizes = dict(
        Application.objects.filter(pk__in=app_ids)
        .annotate(n=models.Count("household__residents"))
        .values_list("pk", "n")
    )

    def members(app: Application) -> None:
        app.members_count = max(sizes.get(app.pk, 1), 1)

    return _advance_many(
        actor, app_ids, "check", Status.SUBMITTED, Status.CHECKED, "check", note,
        {"monthly_income": monthly_income, "documents": [str(d)[:100] for d in documents][:30]},
        members, ("members_count",),
    )  # fmt: skip


def review_many(
    actor: Any, app_ids: list[int], *, recommended: bool, opinion: str
) -> list[Application]:
    """社区评议 of many applications (the same opinion, reasons required)."""
    if not opinion.strip():
        raise AssistanceError("the review needs its reasons", "opinion")
    return _advance_many(
        actor, app_ids, "review", Status.CHECKED, Status.REVIEWED, "review", opinion,
        {"recommended": recommended, "review_opinion": opinion},
    )  # fmt: skip


def approve_many(
    actor: Any,
    app_ids: list[int],
    *,
    reason: str,
    start_date: date,
    amount: Decimal | None = None,
    end_date: date | None = None,
) -> list[Application]:
    """街道审批 (approval) of many applications with the same amount and dates; the re-check
    date as in :func:`decide`."""
    if not reason.strip():
        raise AssistanceError("the decision needs its reasons", "reason")
    if end_date is not None and end_date < start_date:
        raise AssistanceError("the end date is before the start date", "end_date")
    if amount is not None and amount < 0:
        raise AssistanceError("the amount cannot be negative", "amount")

    def recheck_date(app: Application) -> None:
        app.recheck_due = _recheck_date(app.kind, start_date, end_date)

    return _advance_many(
        actor, app_ids, "decide", Status.REVIEWED, Status.APPROVED, "approve", reason,
        {"decision_reason": reason, "amount": amount, "start_date": start_date,
         "end_date": end_date},
        recheck_date, ("recheck_due",),
    )  # fmt: skip
