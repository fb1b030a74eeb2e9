"""The workflow actions as one table: each :class:`Action` names the states it is allowed
from, who may take it, and the handler that changes the case. Adding an action is one entry
(and its handler)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from gridsvc.chain.services import LEVEL_BY_NAME, STREET_LEVEL
from gridsvc.supervision.models import InboxMessage

from ..levels import MEDIATOR_LEVEL
from ..models import (
    OPEN_STATUSES,
    Case,
    Department,
    Status,
)
from .clock import escalate_one_level
from .deadlines import schedule_follow_up, set_deadline
from .errors import CaseError
from .events import dispatchers, inbox, level_above_members, record
from .permissions import member_level
from .unity import interpreter_needs, require_sign_off

S = Status


@dataclass
class Step:
    """One action being applied to a locked case: what the handler reads and what it adds to
    the event (``extra``)."""

    case: Case
    actor: Any
    data: dict[str, Any]
    note: str
    when: datetime
    before: str  # the status before the action
    handler_before: int | None  # the handler before the action
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- handlers
def _start(step: Step) -> None:
    case = step.case
    case.status = S.IN_PROGRESS
    case.accepted_at = case.accepted_at or step.when


def _assign(step: Step) -> None:
    from gridsvc.accounts.models import Member

    case, data, when = step.case, step.data, step.when
    try:
        member_id: Any = data.get("member")  # as the client sent it
        member = Member.objects.get(pk=member_id, is_active=True)
    except (Member.DoesNotExist, ValueError, TypeError):
        raise CaseError("no such active member", "member") from None
    if case.grid_id is None and data.get("grid"):
        _place_in_grid(case, data["grid"])
    level = member_level(member, case)
    case.handler = member
    case.level = level
    case.level_index = LEVEL_BY_NAME[level].index
    case.department = None
    case.status = S.ASSIGNED
    case.assigned_at = when
    case.stage_started_at = when  # the new handler's clock starts now
    case.accepted_at = case.accepted_at or when
    kind = "reassign" if step.before != S.REPORTED and step.handler_before else "assign"
    step.extra = {"member": member.pk, "level": level, "kind": kind}
    # a household needing an interpreter: the assignment names the 民族语言翻译员 (issue 20)
    case.assignment_interpreter = interpreter_needs(case, step.actor or member)
    step.extra.update(case.assignment_interpreter)
    inbox([member.pk], InboxMessage.Kind.NEW_CASE, case, f"派遣 {case.number}: {case.title}")


def _take(step: Step) -> None:
    """认领: a 五员 调处员 of the case's community takes a dispute to mediate it, at the
    community mediation level (社区调委会)."""
    case, when = step.case, step.when
    case.handler = step.actor
    case.level = MEDIATOR_LEVEL
    case.level_index = LEVEL_BY_NAME[MEDIATOR_LEVEL].index
    case.department = None
    case.status = S.ASSIGNED
    case.assigned_at = when
    case.stage_started_at = when
    case.accepted_at = case.accepted_at or when
    step.extra = {"member": step.actor.pk, "level": MEDIATOR_LEVEL, "kind": "take"}
    case.assignment_interpreter = interpreter_needs(case, step.actor)
    step.extra.update(case.assignment_interpreter)


def _resolve(step: Step) -> None:
    case, when = step.case, step.when
    outcome = (step.data.get("outcome") or "").strip()
    if not outcome:
        raise CaseError("an outcome is required to resolve a case (事事有结果)", "outcome")
    case.status = S.RESOLVED
    case.outcome = outcome
    case.resolved_at = when
    case.resolved_by = step.actor if getattr(step.actor, "pk", None) else None
    case.resolved_level = "department" if step.before == S.TRANSFERRED else case.level
    case.stage_started_at = when
    schedule_follow_up(case, when)


def _verify(step: Step) -> None:
    case, when = step.case, step.when
    satisfied = step.data.get("satisfied")
    if not isinstance(satisfied, bool):
        raise CaseError("say whether the follow-up was satisfied (true/false)", "satisfied")
    if satisfied:  # 回访稳定 needs the desk's confirmation first where the closing rule asks
        require_sign_off(case, "verify")
    fu = case.follow_ups.filter(done_at__isnull=True).first()
    if fu is not None:
        fu.done_at, fu.done_by, fu.satisfied, fu.note = when, step.actor, satisfied, step.note
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
    step.extra = {"satisfied": satisfied}


def _close(step: Step) -> None:
    if not step.case.outcome:
        raise CaseError("no case closes without an outcome", "outcome")
    require_sign_off(step.case, "close")  # 民族宗教工作站确认 (the ethnic category's rule)
    step.case.status = S.CLOSED
    step.case.closed_at = step.when


def _escalate(step: Step) -> None:
    case = step.case
    escalate_one_level(case, step.when, reason=step.note or "escalated by hand", actor=step.actor)
    step.extra = {"to_level": case.level, "handler": case.handler_id}


def _transfer(step: Step) -> None:
    case = step.case
    try:
        dept_id: Any = step.data.get("department")
        dept = Department.objects.get(pk=dept_id)
    except (Department.DoesNotExist, ValueError, TypeError):
        raise CaseError("no such department", "department") from None
    case.department = dept
    case.status = S.TRANSFERRED
    case.stage_started_at = step.when
    step.extra = {"department": dept.pk, "department_name": dept.name}


def _reason(step: Step, message: str) -> str:
    reason = (step.data.get("reason") or step.note).strip()
    if not reason:
        raise CaseError(message, "reason")
    return reason


def _reject(step: Step) -> None:
    reason = _reason(step, "a reason is required to reject a case")
    step.case.status = S.REJECTED
    step.case.rejection_reason = reason
    step.case.closed_at = step.when


def _reopen(step: Step) -> None:
    case, when = step.case, step.when
    _reason(step, "a reason is required to reopen a case")
    case.status = S.REOPENED
    case.reopened_count += 1
    case.closed_at = case.verified_at = case.resolved_at = None
    case.resolved_level = ""
    case.assigned_at = when
    case.stage_started_at = when
    if case.handler_id is None:
        case.status = S.REPORTED


def _send_back(step: Step) -> None:
    case = step.case
    reason = _reason(step, "say why this case is not yours to handle")
    case.status = S.REPORTED
    case.handler = None
    case.level = STREET_LEVEL.name
    case.level_index = STREET_LEVEL.index
    case.sent_back_count += 1
    case.stage_started_at = step.when
    inbox(dispatchers(case), InboxMessage.Kind.SEND_BACK, case, f"回退 {case.number}", reason)


def _resume(step: Step) -> None:
    case = step.case
    case.status = S.IN_PROGRESS
    case.hold_until = None
    case.assigned_at = step.when
    case.stage_started_at = step.when


def _merge(step: Step) -> None:
    case, when = step.case, step.when
    try:
        target_id: Any = step.data.get("into")
        target = Case.objects.get(pk=target_id)
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
        step.actor,
        note=f"{case.number} merged in",
        at=when,
        data={"case": case.pk},
    )
    step.extra = {"into": target.pk}


def _set_deadline(step: Step) -> None:
    due = _parse_time(step.data.get("due_at"), "due_at")
    if due <= step.when:
        raise CaseError("the deadline must be in the future", "due_at")
    set_deadline(step.case, due, set_by=step.actor)
    step.extra = {"due_at": due.isoformat()}


def _supervise(step: Step) -> None:
    case = step.case
    case.supervised_at = step.when
    inbox(
        [case.handler_id, *level_above_members(case)],
        InboxMessage.Kind.SUPERVISION,
        case,
        f"督办 {case.number}: {case.title}",
        step.note,
    )


def _comment(step: Step) -> None:
    pass


# ---------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Action:
    """A workflow action: allowed from ``from_statuses``, taken by ``who`` (handler = the
    handler or the levels above, manager, any), applied by ``apply``.

    ``clock``: when the running stage's deadline is computed afresh — ``on_change`` (when the
    status changes), ``always``, or ``never`` (the handler sets it, or nothing changes).
    ``clears_card``: the dispatcher's decision gives a fresh deadline, so the yellow/red card
    shown now is taken off (the counts and card events stay for the assessment)."""

    name: str
    from_statuses: tuple[str, ...]
    label: str
    apply: Callable[[Step], None]
    who: str = "handler"  # handler | manager | mediator (the community's 调处员) | any
    clock: str = "on_change"  # on_change | always | never
    clears_card: bool = False


_OPEN = OPEN_STATUSES
ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("start", (S.ASSIGNED, S.ESCALATED, S.REOPENED), "受理/开始处置", _start),
        Action(
            "assign",
            (S.REPORTED, S.ASSIGNED, S.ESCALATED, S.REOPENED, S.IN_PROGRESS, S.TRANSFERRED),
            "派遣/改派",
            _assign,
            "manager",
            clock="always",
            clears_card=True,
        ),
        Action(
            "take",
            (S.REPORTED, S.ASSIGNED, S.ESCALATED, S.REOPENED),
            "调处员认领",
            _take,
            "mediator",
            clock="always",
        ),
        Action(
            "resolve",
            (S.ASSIGNED, S.IN_PROGRESS, S.ESCALATED, S.REOPENED, S.TRANSFERRED),
            "处置完毕",
            _resolve,
        ),
        Action("verify", (S.RESOLVED,), "回访核查", _verify, "manager"),
        Action("close", (S.VERIFIED,), "结案", _close, "manager"),
        Action(
            "escalate",
            (S.ASSIGNED, S.IN_PROGRESS, S.ESCALATED, S.REOPENED),
            "升级",
            _escalate,
            clock="never",  # the level above gets its own deadline (escalate_one_level)
        ),
        Action(
            "transfer",
            (S.REPORTED, S.ASSIGNED, S.IN_PROGRESS, S.ESCALATED, S.REOPENED),
            "转办职能部门",
            _transfer,
            "manager",
        ),
        Action("reject", (S.REPORTED, S.ASSIGNED), "不予受理", _reject, "manager"),
        Action(
            "reopen",
            (S.RESOLVED, S.VERIFIED, S.CLOSED, S.REJECTED, S.TRANSFERRED),
            "重新办理",
            _reopen,
            "manager",
        ),
        Action("send_back", (S.ASSIGNED, S.ESCALATED, S.REOPENED), "回退", _send_back),
        Action("resume", (S.ON_HOLD,), "恢复办理", _resume, "manager", clears_card=True),
        Action(
            "merge",
            (S.REPORTED, S.ASSIGNED, S.IN_PROGRESS, S.ESCALATED, S.REOPENED),
            "合并",
            _merge,
            "manager",
        ),
        Action(
            "set_deadline",
            _OPEN,
            "设定时限",
            _set_deadline,
            "manager",
            clock="never",
            clears_card=True,
        ),
        Action("supervise", (*_OPEN, S.ON_HOLD), "督办", _supervise, "manager", clock="never"),
        Action("comment", tuple(S.values), "备注", _comment, "any", clock="never"),
    )
}


def _parse_time(raw: Any, field_name: str) -> datetime:
    from django.utils.dateparse import parse_datetime

    value: datetime | None
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
