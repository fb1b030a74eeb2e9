"""The clock on open cases (the worker): yellow card near the deadline, red card and one
level up when overdue, and deadlines recomputed after a calendar or rule change."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from gridsvc.chain.services import LEVEL_BY_NAME, LEVELS, STREET_LEVEL, walk
from gridsvc.community.languages import attach_interpreters
from gridsvc.supervision.models import InboxMessage
from gridsvc.territory.services import locate

from ..models import (
    RUNNING_STATUSES,
    Card,
    Case,
    Status,
)
from .deadlines import compute_deadline, schedule_checks, set_deadline
from .errors import IllegalTransition
from .events import inbox, level_above_members, record

if TYPE_CHECKING:
    from gridsvc.accounts.models import Member


S = Status


def escalate_one_level(
    case: Case, when: datetime, reason: str, actor: Member | None = None
) -> bool:
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
        step, walked = chain.first_active_from(LEVELS[current + 1].name)
        target_level = step.level_name
        handler = step.primary.member_id if step.primary else None
        # a dispute reaching the community mediation level: its 五员 调处员 (issue 20)
        from .routing import mediator_routing

        mediated = mediator_routing(case.category, chain, LEVELS[current + 1].name, step, walked)
        if mediated is not None:
            target_level, handler = mediated.level, mediated.handler_id
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
    if case.household_id is not None:
        # the new handler, like the first: an interpreter when they do not speak the
        # household's language, none when they do (the same call kept on a retried job)
        attach_interpreters(
            household=case.household_id,
            assignee_id=handler,
            case=case,
            recorded_by=actor,
        )
    inbox(
        [handler, before_handler],
        InboxMessage.Kind.ESCALATION,
        case,
        f"升级 {case.number} → {LEVEL_BY_NAME[target_level].label}",
        reason,
    )
    return True


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
            if case.status in RUNNING_STATUSES and escalate_one_level(case, now, reason="overdue"):
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
                schedule_checks(case)
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
                schedule_checks(case)
                n += 1
            else:
                case.save(update_fields=["deadline_version"])
    return n
