"""Who may do what on a case: the managers (street desk, community mediation, the grid's
cadre or member), the levels above the case's current level, the handler."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridsvc.chain.models import PositionType
from gridsvc.chain.services import LEVEL_BY_NAME, LEVELS, STREET_LEVEL

from ..levels import MEDIATOR_LEVEL
from ..models import (
    Case,
)
from .errors import CaseError
from .events import holders_over

if TYPE_CHECKING:
    from gridsvc.accounts.models import Member


def _member_levels(member: Member, case: Case) -> set[int]:
    """Chain levels the member holds over the case's place now."""
    levels: set[int] = set()
    for lvl in LEVELS[1:]:
        if member.pk in holders_over(case, [lvl.name]):
            levels.add(lvl.index)
    if member.pk in holders_over(case, [PositionType.GRID_MEMBER]):
        levels.add(LEVEL_BY_NAME[PositionType.COMMUNITY_CADRE].index)
    return levels


def can_manage(member: Member, case: Case) -> bool:
    """Street desk, community mediation or grid cadre over the case (dispatch actions)."""
    if getattr(member, "is_superuser", False):
        return True
    return bool(
        {5, 6, 7} & _member_levels(member, case)
        or member.pk in holders_over(case, [PositionType.STREET_DISPATCHER])
    )


def is_above(member: Member, case: Case) -> bool:
    """Holds a level above the case's current level (approves extensions, holds, voids)."""
    if getattr(member, "is_superuser", False):
        return True
    current = case.level_index if case.level_index is not None else STREET_LEVEL.index
    levels = _member_levels(member, case)
    if current >= STREET_LEVEL.index:
        return STREET_LEVEL.index in levels and member.pk != case.handler_id
    return any(lv > current for lv in levels)


def can_handle(member: Member, case: Case) -> bool:
    return case.handler_id == member.pk or can_manage(member, case) or is_above(member, case)


def member_level(member: Member, case: Case) -> str:
    """The level ``member`` handles ``case`` at: the lowest chain level they hold over its
    place, else (a dispute in their community) the 五员 调处员's, 社区调委会."""
    from .unity import is_case_mediator

    levels = _member_levels(member, case)
    if levels:
        return LEVELS[min(levels)].name
    if is_case_mediator(member, case):
        return MEDIATOR_LEVEL
    raise CaseError(f"{member} holds no position over this case's place", "member")
