"""Field-level need-to-know (按需知悉): one visibility matrix, role tier × attribute.

Territory scope (:mod:`gridsvc.chain.scope`) decides *which* records a member reaches; this
module decides *which facts about a resident* they may learn from them. Every output path —
API serializers and filters, the change feed, offline packages, ledgers (台账), exports,
reports, daily reports, counts — asks this module and nothing else.

Tiers (from the positions a member holds now):

- ``NEIGHBOUR`` 邻里: unit head (单元长), building head (楼长), owners' committee (业主委员会),
  property manager (物业经理). They are the residents' neighbours: they never learn a
  sensitive status, not by a field, a filter, a ledger, a count or a daily report.
- ``STAFF`` 网格/社区工作人员: grid member (网格员), community cadre (社区干部), mediation
  committee and the 五员 over a community. They see sensitive facts only as masks and
  counts; clear values need an unmask grant (break-the-glass, audited).
- ``STREET`` 街道: street dispatcher and the ethnic-affairs desk; like STAFF, plus exact
  small counts (no small-cell suppression) over their street.
- superusers are ``STREET``.

A member holding positions of several tiers is judged per record by :func:`staff_scope`:
a grid member who is also a building head elsewhere learns sensitive facts only inside
the grid.

Values of the matrix:

- ``CLEAR``: shown as stored.
- ``MASKED``: shown masked (``mask_*`` below); clear only under an unmask grant.
- ``COARSE``: shown coarsened (birth date → birth year), never more, even with a grant
  in outputs that also show a masked ID number (the set of fields is the mask).
- ``HIDDEN``: not shown, not filterable, not counted in anything the tier sees.

Masks are designed as a set (item 2 of the privacy review): an ID number masked to region +
last four together with the birth year still leaves ~30 candidate IDs; the full birth date
is never shown beside a masked ID (it would rebuild the whole number), and phones keep only
their last four digits so a masked phone cannot be joined to another list.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from gridsvc.chain.scope import Scope

# ---------------------------------------------------------------- tiers


class Tier(IntEnum):
    NONE = 0
    NEIGHBOUR = 1
    STAFF = 2
    STREET = 3


NEIGHBOUR_POSITIONS = frozenset(
    {"unit_head", "building_head", "owners_committee", "property_manager"}
)
STREET_POSITIONS = frozenset({"street_dispatcher", "ethnic_affairs_desk"})

# ---------------------------------------------------------------- attributes
# Attribute names used in the matrix and by every output path.
NAME = "name"
GENDER = "gender"
BIRTH_DATE = "birth_date"
ID_NUMBER = "id_number"
PHONE = "phone"
ETHNICITY = "ethnicity"
RELIGION = "religion"  # 宗教人士 tag, religious-venue ties
CORRECTION = "correction"  # 社区矫正 / 两劳帮教
DISABILITY = "disability"  # 残疾
HEALTH = "health"
LOW_INCOME = "low_income"  # 低保, 困难家庭, 廉租房 (income and assistance)
EXACT_ADDRESS = "exact_address"  # room number
OTHER_TAGS = "other_tags"  # 党员, 志愿者, 独居老人 …

CLEAR = "clear"
MASKED = "masked"
COARSE = "coarse"
HIDDEN = "hidden"

# role tier × attribute. Unmask grants (audit.services) turn MASKED into CLEAR for the
# positions in settings.UNMASK_POSITION_TYPES; nothing else changes a cell.
MATRIX: dict[str, dict[Tier, str]] = {
    NAME: {Tier.NEIGHBOUR: CLEAR, Tier.STAFF: CLEAR, Tier.STREET: CLEAR},
    GENDER: {Tier.NEIGHBOUR: CLEAR, Tier.STAFF: CLEAR, Tier.STREET: CLEAR},
    BIRTH_DATE: {Tier.NEIGHBOUR: COARSE, Tier.STAFF: COARSE, Tier.STREET: COARSE},
    ID_NUMBER: {Tier.NEIGHBOUR: MASKED, Tier.STAFF: MASKED, Tier.STREET: MASKED},
    PHONE: {Tier.NEIGHBOUR: MASKED, Tier.STAFF: MASKED, Tier.STREET: MASKED},
    ETHNICITY: {Tier.NEIGHBOUR: HIDDEN, Tier.STAFF: MASKED, Tier.STREET: MASKED},
    RELIGION: {Tier.NEIGHBOUR: HIDDEN, Tier.STAFF: MASKED, Tier.STREET: MASKED},
    CORRECTION: {Tier.NEIGHBOUR: HIDDEN, Tier.STAFF: MASKED, Tier.STREET: MASKED},
    DISABILITY: {Tier.NEIGHBOUR: HIDDEN, Tier.STAFF: MASKED, Tier.STREET: MASKED},
    HEALTH: {Tier.NEIGHBOUR: HIDDEN, Tier.STAFF: MASKED, Tier.STREET: MASKED},
    LOW_INCOME: {Tier.NEIGHBOUR: HIDDEN, Tier.STAFF: MASKED, Tier.STREET: MASKED},
    EXACT_ADDRESS: {Tier.NEIGHBOUR: CLEAR, Tier.STAFF: CLEAR, Tier.STREET: CLEAR},
    OTHER_TAGS: {Tier.NEIGHBOUR: CLEAR, Tier.STAFF: CLEAR, Tier.STREET: CLEAR},
}

# Resident tags → the attribute they reveal. Tags not listed are OTHER_TAGS.
TAG_ATTRIBUTE: dict[str, str] = {
    "community_correction": CORRECTION,
    "help_education": CORRECTION,
    "disabled": DISABILITY,
    "low_income": LOW_INCOME,
    "low_rent_housing": LOW_INCOME,
    "hardship": LOW_INCOME,
    "religious_figure": RELIGION,
}
# Every tag that reveals a sensitive status (PIPL 敏感个人信息).
SENSITIVE_TAGS = frozenset(TAG_ATTRIBUTE)
SENSITIVE_ATTRIBUTES = frozenset({ETHNICITY, RELIGION, CORRECTION, DISABILITY, HEALTH, LOW_INCOME})

# Small-cell suppression (k-anonymity): a count of a sensitive attribute below K over a
# territory is shown as None ("<5") to every tier below STREET.
SMALL_CELL_K = 5


def tier_of_positions(position_types: set[str] | frozenset[str], superuser: bool = False) -> Tier:
    """The highest tier among ``position_types`` (a superuser is STREET)."""
    if superuser or position_types & STREET_POSITIONS:
        return Tier.STREET
    if position_types - NEIGHBOUR_POSITIONS:
        return Tier.STAFF
    if position_types:
        return Tier.NEIGHBOUR
    return Tier.NONE


def tier_for(member: Any) -> Tier:
    """The member's tier from the positions they hold now (cached on the member object)."""
    if member is None or not getattr(member, "is_authenticated", False):
        return Tier.NONE
    cached = getattr(member, "_gridsvc_tier", None)
    if cached is not None:
        return cached
    from gridsvc.chain.models import Position

    types = set(
        Position.objects.held_at().filter(member=member).values_list("position_type", flat=True)
    )
    tier = tier_of_positions(types, superuser=bool(member.is_superuser))
    member._gridsvc_tier = tier
    return tier


def rule(attribute: str, tier: Tier) -> str:
    """The matrix cell for ``attribute`` and ``tier`` (no tier: HIDDEN)."""
    if tier == Tier.NONE:
        return HIDDEN
    return MATRIX[attribute][tier]


def may_know(attribute: str, tier: Tier) -> bool:
    """Whether ``tier`` may learn anything of ``attribute`` (even masked or as a count)."""
    return rule(attribute, tier) != HIDDEN


def knows_sensitive(tier: Tier) -> bool:
    """Whether ``tier`` may learn any sensitive status at all (filters, counts, tasks)."""
    return tier >= Tier.STAFF


def visible_tags(tags: list[str], tier: Tier, unmasked: bool = False) -> list[str]:
    """The resident's tags this tier may see: sensitive ones only with an unmask grant and
    only for tiers that may know them."""
    out = []
    for tag in tags:
        attribute = TAG_ATTRIBUTE.get(tag, OTHER_TAGS)
        cell = rule(attribute, tier)
        if cell == CLEAR or (cell == MASKED and unmasked):
            out.append(tag)
    return out


def staff_scope(scope: Scope) -> Scope:
    """The part of ``scope`` held through staff or street positions (street, community,
    grid): where sensitive facts may be known. Building/compound/unit grants are dropped."""
    if scope.everything:
        return scope
    return Scope(
        street_ids=set(scope.street_ids),
        community_ids=set(scope.community_ids),
        grid_ids=set(scope.grid_ids),
    )


def suppress_small(count: int | None, tier: Tier) -> int | None:
    """A sensitive count as shown to ``tier``: counts 1..K-1 become None ("<5") below STREET."""
    if count is None:
        return None
    if tier >= Tier.STREET:
        return count
    if 0 < count < SMALL_CELL_K:
        return None
    return count


def birth_year(value: Any) -> int | None:
    """The coarse form of a birth date (COARSE): its year."""
    return value.year if value else None
