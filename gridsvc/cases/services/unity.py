"""Cases and the community's ethnic-unity work (民族团结进步创建, issue 20):

- the ``ethnic`` category's closing rule (结案条件: 矛盾化解,民族宗教工作站确认,回访稳定): a
  case whose rule asks for the street ethnic-affairs desk's sign-off (民族宗教工作站确认) is
  neither verified as satisfied nor closed until the desk's standing sign-off confirms it
  (recorded in :mod:`gridsvc.community` by the desk alone);
- the 五员 调处员 (five-member team mediator): takes (认领) and handles dispute cases of their
  community at the community mediation level (社区调委会), and routing hands them a dispute
  that reaches that level (:func:`mediator_for`);
- interpreters 民族语言翻译员: when a case is assigned to a household with residents who need
  one, the assignment says so and names the community's interpreters for their languages.

The community's rules asked here (:mod:`gridsvc.community.rules`, its languages and models)
stand below the cases; the community's services stand above them and are not imported.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.utils import timezone

from gridsvc.community.models import TeamMembership
from gridsvc.community.rules import (
    CommunityError,
    active_mediators,
    ethnic_sign_off,
    interpreters_for,
    may_mediate,
    needs_ethnic_sign_off,
)

from ..models import Case, Kind
from .errors import SignOffMissing


def missing_sign_off(case: Case) -> str:
    """Why ``case`` may not be verified as satisfied or closed yet (empty when it may): its
    closing rule asks for the ethnic-affairs desk's sign-off and the standing one is absent or
    says 尚未稳定."""
    if not needs_ethnic_sign_off(case):
        return ""
    row = ethnic_sign_off(case)
    if row is None:
        return (
            "the ethnic-affairs desk (民族宗教工作站) has not signed off this case; its closing "
            "rule asks for the desk's confirmation"
        )
    if not row.confirmed:
        why = f": {row.note}" if row.note else ""
        return f"the ethnic-affairs desk (民族宗教工作站) says the case is not yet stable{why}"
    return ""


def require_sign_off(case: Case, action: str) -> None:
    """Refuse (409, field ``ethnic_sign_off``) to ``action`` a case still owing the desk's
    confirmation."""
    why = missing_sign_off(case)
    if why:
        raise SignOffMissing(f"cannot {action}: {why}", "ethnic_sign_off")


def mediator_for(
    kind: str, community_id: int | None, day: date, household_id: int | None = None
) -> tuple[TeamMembership | None, str]:
    """The 五员 调处员 routing hands a case of ``kind`` in the community to, and why none when
    none: only disputes; the memberships running on ``day``, not on leave; when the
    household has residents needing an interpreter, one who speaks their language first;
    else the earliest. Returns (membership or None, why none)."""
    if kind != Kind.DISPUTE or community_id is None:
        return None, ""
    found = active_mediators(community_id, day)
    if not found:
        return None, "no 五员 调处员 at work in the community (vacant or on leave)"
    if household_id is not None and len(found) > 1:
        from gridsvc.community.languages import speakers_for_households

        speakers = speakers_for_households([household_id], day).get(household_id, set())
        found.sort(key=lambda t: t.member_id not in speakers)
    return found[0], ""


def is_case_mediator(member: Any, case: Case) -> bool:
    """Whether ``member`` is an active 五员 调处员 (or mediation committee member) of the
    community of ``case``, a dispute: they may take it and handle it."""
    if member is None or not getattr(member, "pk", None):
        return False
    if case.kind != Kind.DISPUTE or case.community_id is None:
        return False
    return may_mediate(member, case.community_id, timezone.localdate())


def attach_case_interpreters(case: Case, actor: Any = None) -> list[Any]:
    """When routing hands a new case to its handler: attach an interpreter (and tell them)
    if a resident of the household needs one and the handler does not speak their language."""
    from gridsvc.community.languages import attach_interpreters

    if case.household_id is None or case.handler_id is None:
        return []
    return attach_interpreters(
        household=case.household_id,
        assignee_id=case.handler_id,
        case=case,
        recorded_by=actor if getattr(actor, "pk", None) else None,
        fresh=True,
    )


def interpreter_needs(case: Case, actor: Any) -> dict[str, Any]:
    """For an assignment (the case's ``handler`` is the new assignee): whether an interpreter
    must go along (``needs_interpreter``: a resident of the household needs one and the
    assignee speaks none of their languages), the residents and their languages, the
    languages the assignee speaks of those (``handler_speaks``), the interpreters attached
    (``interpreter_calls``: :class:`gridsvc.community.models.InterpreterCall` rows, the
    interpreter told in their inbox), all the community's 民族语言翻译员 for those languages
    and the languages nobody covers (seen as ``actor``). Empty when the case has no household
    or the actor cannot see it."""
    from gridsvc.community.languages import (
        attach_interpreters,
        calls_as_dicts,
        household_needs,
        languages_spoken,
    )

    if case.household_id is None or actor is None:
        return {}
    try:
        found = interpreters_for(actor, case.household_id)
    except CommunityError:
        return {}
    needed = {
        c
        for langs in household_needs([case.household_id]).get(case.household_id, [])
        for c in langs
    }
    handler_id = case.handler_id
    spoken = languages_spoken([handler_id]).get(handler_id, set()) if handler_id else set()
    calls = attach_interpreters(
        household=case.household_id,
        assignee_id=case.handler_id,
        case=case,
        recorded_by=actor if getattr(actor, "pk", None) else None,
    )
    return {
        "needs_interpreter": bool(calls),
        "interpreter_residents": found["residents"],
        "handler_speaks": sorted(spoken & needed),
        "interpreter_calls": calls_as_dicts(calls),
        "interpreters": found["interpreters"],
        "missing_languages": found["missing_languages"],
    }
