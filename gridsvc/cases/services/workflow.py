"""The workflow: :func:`act` applies one action of :data:`.actions.ACTIONS` to a case, row-locked
and version-checked (ETag → 412), and appends one :class:`CaseEvent`; an action not allowed
from the case's state raises :class:`IllegalTransition` with the allowed ones (409)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.gis.geos import Point
from django.db import transaction
from django.utils import timezone

from ..models import (
    Card,
    Case,
)
from .actions import ACTIONS, Action, Step
from .deadlines import schedule_checks, set_deadline
from .errors import CaseError, IllegalTransition, NotAllowed, StaleVersion
from .events import record
from .permissions import can_handle, can_manage
from .unity import is_case_mediator

if TYPE_CHECKING:
    from gridsvc.accounts.models import Member


def allowed_actions(case: Case) -> list[str]:
    return [name for name, a in ACTIONS.items() if case.status in a.from_statuses]


def _check_actor(action: Action, member: Member | None, case: Case) -> None:
    if member is None:
        return  # the system (worker)
    if action.who == "any":
        return
    if action.who == "mediator":
        ok = is_case_mediator(member, case)
    elif action.who == "manager":
        ok = can_manage(member, case)
    else:
        ok = can_handle(member, case)
    if not ok:
        raise NotAllowed(f"you may not {action.name} this case", "action")


def locked(case_id: int, expected_version: int | None) -> Case:
    case = Case.objects.select_for_update().select_related("category").get(pk=case_id)
    if expected_version is not None and case.version != expected_version:
        raise StaleVersion(case)
    return case


def act(
    case_id: int,
    action: str,
    actor: Member | None,
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
        case = locked(case_id, expected_version)
        # the time is taken once the case is locked: a transition waiting for the lock is
        # stamped after the one it follows, so the timeline's times keep the order of events
        when = when or timezone.now()
        if case.status not in spec.from_statuses:
            raise IllegalTransition(action, case.status, allowed_actions(case))
        _check_actor(spec, actor, case)
        step = Step(case, actor, data, note, when, case.status, case.handler_id)
        before = step.before
        spec.apply(step)
        extra = step.extra
        if spec.clock == "always" or (spec.clock == "on_change" and case.status != before):
            set_deadline(case)
        if spec.clears_card and case.card:
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
        schedule_checks(case)
    return case
