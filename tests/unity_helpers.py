"""Shared helpers for the ethnic-unity (民族团结) tests: the demo's household needing a
东乡语 interpreter and an interpreter with an account for it."""

from __future__ import annotations

from datetime import date

from gridsvc.accounts.models import Member
from gridsvc.community.models import ResidentLanguage, Team, TeamMembership
from gridsvc.territory.models import Household


def needing_household() -> tuple[Household, ResidentLanguage]:
    """The first demo household with a resident needing an interpreter (东乡语, ``sce``), and
    that resident's languages."""
    need = (
        ResidentLanguage.objects.filter(interpreter_needed=True, resident__household__isnull=False)
        .select_related("resident__household__unit__building__grid")
        .order_by("id")
        .first()
    )
    assert need is not None and need.languages == ["sce"]
    return need.resident.household, need


def interpreter_with_account(hh: Household, username: str) -> TeamMembership:
    """A 东乡语 interpreter with an account ``username`` (the demo's two have none), first in
    line for ``hh``'s grid."""
    who = Member.objects.create_user(username, password="x-long-password-1")
    grid = hh.unit.building.grid
    return TeamMembership.objects.create(
        team=Team.INTERPRETERS,
        role="sce",
        member=who,
        street_id=grid.community.street_id,
        community_id=grid.community_id,
        grid=grid,
        valid_from=date(2020, 1, 1),
        recorded_by=who,
    )
