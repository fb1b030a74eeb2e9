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
- the district's 创建 office (区创建办, a post over a district) has no tier: it learns nothing
  about a resident (its work scope is empty too).

A member holding positions of several tiers is judged per record by :func:`staff_scope`:
a grid member who is also a building head elsewhere learns sensitive facts only inside
the grid.

Values of the matrix:

- ``CLEAR``: shown as stored.
- ``MASKED``: shown masked (``mask_*`` below); clear only under an unmask grant.
- ``COARSE``: shown coarsened (birth date → birth year), never more, even with a grant
  in outputs that also show a masked ID number (the set of fields is the mask).
- ``HIDDEN``: not shown, not filterable, not counted in anything the tier sees.

Resident records (API, offline package) are shown through :func:`present_resident` (one
record at one tier) or a :class:`Viewer` (a request's member: tier per record, unmask grant);
the matrix is also in docs/security.md (:func:`matrix_markdown`, kept equal by a test).

Masks are designed as a set (item 2 of the privacy review): an ID number masked to region +
last four together with the birth year still leaves ~30 candidate IDs; the full birth date
is never shown beside a masked ID (it would rebuild the whole number), and phones keep only
their last four digits so a masked phone cannot be joined to another list.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from gridsvc.territory.codes import mask_id_number, mask_name, mask_phone

if TYPE_CHECKING:  # chain.scope imports territory.models, which reads SENSITIVE_TAGS here
    from gridsvc.chain.scope import Scope
    from gridsvc.territory.models import Household, Resident

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
#: posts above the street (区创建办): no tier — they learn nothing about a resident
DISTRICT_POSITIONS = frozenset({"district_officer"})

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
    """The highest tier among ``position_types`` (a superuser is STREET; posts above the
    street, :data:`DISTRICT_POSITIONS`, count for none)."""
    position_types = position_types - DISTRICT_POSITIONS
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
    member._gridsvc_mixed = tier > Tier.NEIGHBOUR and bool(types & NEIGHBOUR_POSITIONS)
    return tier


def is_mixed(member: Any) -> bool:
    """Whether ``member`` holds neighbour positions besides staff or street ones (a grid
    member who is also a building head elsewhere): such a member is judged per record."""
    tier_for(member)
    return bool(getattr(member, "_gridsvc_mixed", False))


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
    from gridsvc.chain.scope import Scope

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


# ---------------------------------------------------------------- resident records
MASK = "**"

# Where each attribute shows in a serialised resident (API, change feed, offline package):
# its keys, and for tag attributes the tag values (TAG_ATTRIBUTE). HEALTH has no field yet;
# it is in the matrix so that a future field is hidden from neighbours from its first day.
ATTRIBUTE_KEYS: dict[str, tuple[str, ...]] = {
    NAME: ("name",),
    GENDER: ("gender",),
    BIRTH_DATE: ("birth_date", "birth_year"),
    ID_NUMBER: ("id_number",),
    PHONE: ("phone",),
    ETHNICITY: ("ethnicity", "ethnicity_name"),
    RELIGION: (),
    CORRECTION: (),
    DISABILITY: (),
    HEALTH: (),
    LOW_INCOME: (),
    EXACT_ADDRESS: (),
    OTHER_TAGS: (),
}
_MASKERS: dict[str, Callable[[Any], Any]] = {
    NAME: mask_name,
    ID_NUMBER: mask_id_number,
    PHONE: mask_phone,
    ETHNICITY: lambda value: MASK if value else value,
}


def tags_of(attribute: str) -> frozenset[str]:
    """The resident tags that reveal ``attribute``."""
    return frozenset(t for t, a in TAG_ATTRIBUTE.items() if a == attribute)


def present_resident(data: dict, resident: Any, tier: Tier, unmasked: bool = False) -> dict:
    """Apply the matrix to one serialised resident ``data`` in place and return it.

    Acts on the keys ``data`` has (a package that leaves out ethnicity keeps it out); clear
    values are read from ``resident``. HIDDEN keys are removed (not nulled, not "**"), MASKED
    ones masked, the birth date becomes ``birth_year`` (COARSE); tags are filtered by
    :func:`visible_tags`. ``unmasked`` (an unmask grant) counts only for STAFF and STREET, and
    shows MASKED and COARSE cells in clear. ``data["masked"]`` lists the keys not shown in
    clear (hidden ones are not named: a neighbour does not learn they exist).
    """
    unmasked = unmasked and tier >= Tier.STAFF
    masked: list[str] = []
    for attribute in (NAME, GENDER, ID_NUMBER, PHONE, ETHNICITY):
        key = ATTRIBUTE_KEYS[attribute][0]
        cell = rule(attribute, tier)
        if cell == HIDDEN:
            for k in ATTRIBUTE_KEYS[attribute]:
                data.pop(k, None)
        elif key not in data:
            continue
        elif cell in (MASKED, COARSE) and not unmasked:
            data[key] = _MASKERS.get(attribute, lambda v: None)(getattr(resident, key))
            for k in ATTRIBUTE_KEYS[attribute][1:]:
                if k in data:
                    data[k] = None
            masked.append(key)
    if "birth_date" in data or "birth_year" in data:
        cell = rule(BIRTH_DATE, tier)
        born = resident.birth_date
        data.pop("birth_date", None)
        data.pop("birth_year", None)
        if cell != HIDDEN:
            data["birth_year"] = birth_year(born)
            if cell == CLEAR or unmasked:
                data["birth_date"] = born.isoformat() if born else None
            else:
                masked.append("birth_date")
    if "tags" in data:
        data["tags"] = visible_tags(list(resident.tags), tier, unmasked)
        if not unmasked and any(may_know(TAG_ATTRIBUTE[t], tier) for t in SENSITIVE_TAGS):
            masked.append("sensitive_tags")
    data["masked"] = masked
    return data


class Viewer:
    """Who looks at resident or household records: their tier, whether under an unmask
    grant, and — for a member holding positions of several tiers (:func:`is_mixed`) — the
    tier per record: the member's own tier inside :func:`staff_scope`, NEIGHBOUR elsewhere."""

    def __init__(self, member: Any, scope: Scope | None, unmasked: bool = False) -> None:
        self.member = member
        self.tier = tier_for(member)
        self.unmasked = unmasked
        self.mixed = scope is not None and not scope.everything and is_mixed(member)
        self.staff = staff_scope(scope) if self.mixed and scope is not None else None
        self._in_staff: dict[tuple[type, int], bool] = {}

    def prime(self, model: type[Resident | Household], ids: list[int]) -> None:
        """Learn in one query which of ``ids`` (rows of ``model``) lie in the staff part."""
        if self.staff is None:
            return
        ids = [i for i in ids if (model, i) not in self._in_staff]
        if not ids:
            return
        inside = set(
            self.staff.filter(model.objects.filter(pk__in=ids)).values_list("pk", flat=True)
        )
        for i in ids:
            self._in_staff[(model, i)] = i in inside

    def tier_of(self, record: Any) -> Tier:
        """The tier at which ``record`` (a resident or household) is shown to this viewer."""
        return self.tier_of_pk(type(record), record.pk)

    def tier_of_pk(self, model: type[Resident | Household], pk: int) -> Tier:
        """:meth:`tier_of` the row ``pk`` of ``model`` (read as plain values, not instances)."""
        if not self.mixed or self.staff is None:
            return self.tier
        key = (model, pk)
        if key not in self._in_staff:
            self.prime(model, [pk])
        return self.tier if self._in_staff[key] else Tier.NEIGHBOUR

    def present(self, data: dict, resident: Any) -> dict:
        """:func:`present_resident` at this viewer's tier for ``resident``."""
        return present_resident(data, resident, self.tier_of(resident), self.unmasked)

    def present_household(self, data: dict, household: Any) -> dict:
        """:func:`present_household` at this viewer's tier for ``household``."""
        return present_household(data, self.tier_of(household))


# Household fields that reveal an attribute: the tenure says 廉租房 / 公租房 (housing
# assistance, LOW_INCOME). Where the attribute is HIDDEN the whole key goes (leaving out only
# the revealing values would tell them by their absence); staff see the tenure they manage.
HOUSEHOLD_KEYS: dict[str, tuple[str, ...]] = {LOW_INCOME: ("tenure",)}


def present_household(data: dict, tier: Tier) -> dict:
    """Apply the matrix to one serialised household ``data`` in place and return it."""
    for attribute, keys in HOUSEHOLD_KEYS.items():
        if not may_know(attribute, tier):
            for key in keys:
                data.pop(key, None)
    return data


def household_filter_allowed(field: str, tier: Tier) -> bool:
    """Whether ``tier`` may filter households by ``field`` (a filter is a way to learn)."""
    return all(
        may_know(attribute, tier) for attribute, keys in HOUSEHOLD_KEYS.items() if field in keys
    )


ATTRIBUTE_LABELS: dict[str, str] = {
    NAME: "name 姓名",
    GENDER: "gender 性别",
    BIRTH_DATE: "birth date 出生日期",
    ID_NUMBER: "ID number 身份证号",
    PHONE: "phone 电话",
    ETHNICITY: "ethnicity 民族",
    RELIGION: "religion 宗教 (宗教人士)",
    CORRECTION: "correction 社区矫正 / 两劳帮教",
    DISABILITY: "disability 残疾",
    HEALTH: "health 健康",
    LOW_INCOME: "low income 低保 / 廉租房 / 困难家庭",
    EXACT_ADDRESS: "exact address 门牌",
    OTHER_TAGS: "other tags 党员 / 志愿者 / 独居老人 …",
}


def matrix_markdown() -> str:
    """The matrix as the Markdown table docs/security.md holds (a test keeps them equal)."""
    tiers = (Tier.NEIGHBOUR, Tier.STAFF, Tier.STREET)
    lines = [
        "| attribute | " + " | ".join(t.name.lower() for t in tiers) + " |",
        "|---" * (len(tiers) + 1) + "|",
    ]
    for attribute, cells in MATRIX.items():
        row = [ATTRIBUTE_LABELS[attribute], *(cells[t] for t in tiers)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
