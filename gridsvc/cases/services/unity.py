"""Cases and the community's ethnic-unity work (民族团结进步创建, issue 20):

- the ``ethnic`` category's closing rule (结案条件: 矛盾化解,民族宗教工作站确认,回访稳定): a
  case whose rule asks for the street ethnic-affairs desk's sign-off (民族宗教工作站确认) is
  neither verified as satisfied nor closed until the desk's standing sign-off confirms it
  (recorded in :mod:`gridsvc.community` by the desk alone);
- the 五员 调处员 (five-member team mediator): takes (认领) and handles dispute cases of their
  community at the community mediation level (社区调委会);
- interpreters 民族语言翻译员: when a case is assigned to a household with residents who need
  one, the assignment says so and names the community's interpreters for their languages.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from gridsvc.chain.models import PositionType
from gridsvc.community.services import (
    CommunityError,
    ethnic_sign_off,
    interpreters_for,
    may_mediate,
    needs_ethnic_sign_off,
)

from ..models import Case, Kind
from .errors import SignOffMissing

#: the chain level a 调处员 handles a dispute at (社区调委会)
MEDIATOR_LEVEL = PositionType.MEDIATION_COMMITTEE.value


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


def is_case_mediator(member: Any, case: Case) -> bool:
    """Whether ``member`` is an active 五员 调处员 (or mediation committee member) of the
    community of ``case``, a dispute: they may take it and handle it."""
    if member is None or not getattr(member, "pk", None):
        return False
    if case.kind != Kind.DISPUTE or case.community_id is None:
        return False
    return may_mediate(member, case.community_id, timezone.localdate())


def interpreter_needs(case: Case, actor: Any) -> dict[str, Any]:
    """For an assignment: whether the case's household needs an interpreter
    (``needs_interpreter``), the residents and their languages, the community's 民族语言翻译员
    for them and the languages nobody covers (from
    :func:`gridsvc.community.services.interpreters_for`, seen as ``actor``). Empty when the
    case has no household or the actor cannot see it."""
    if case.household_id is None or actor is None:
        return {}
    try:
        found = interpreters_for(actor, case.household_id)
    except CommunityError:
        return {}
    return {
        "needs_interpreter": bool(found["residents"]),
        "interpreter_residents": found["residents"],
        "interpreters": found["interpreters"],
        "missing_languages": found["missing_languages"],
    }
