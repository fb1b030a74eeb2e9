"""Exception paths needing the level above: extension 延时, hold 挂账, void 作废."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from gridsvc.supervision.clock import WorkClock
from gridsvc.supervision.models import InboxMessage

from ..models import (
    OPEN_STATUSES,
    Card,
    CaseRequest,
    Status,
)
from .deadlines import schedule_checks, set_deadline
from .errors import CaseError, IllegalTransition, NotAllowed
from .events import inbox, level_above_members, record
from .permissions import can_handle, is_above
from .workflow import allowed_actions, locked

if TYPE_CHECKING:
    from gridsvc.accounts.models import Member


S = Status


def request_exception(
    case_id: int,
    kind: str,
    actor: Member,
    *,
    reason: str,
    amount: float | None = None,
    unit: str = "",
    review_date: date | None = None,
    expected_version: int | None = None,
    when: datetime | None = None,
) -> CaseRequest:
    """Ask the level above for an extension 延时, a hold 挂账 or a void 作废."""
    if kind not in CaseRequest.Kind.values:
        raise CaseError(f"kind must be one of {', '.join(CaseRequest.Kind.values)}", "kind")
    if not (reason or "").strip():
        raise CaseError("a reason is required", "reason")
    with transaction.atomic():
        case = locked(case_id, expected_version)
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


def decide_request(
    request_id: int, actor: Member, approve: bool, note: str = "", when: datetime | None = None
) -> CaseRequest:
    """The level above approves or refuses; an approved extension moves the deadline, a hold
    parks the case until its review date, a void ends it."""
    with transaction.atomic():
        req = CaseRequest.objects.select_for_update().get(pk=request_id)
        case = locked(req.case_id, None)
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
        schedule_checks(case)
    return req
