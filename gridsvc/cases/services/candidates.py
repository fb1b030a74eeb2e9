"""Who a case can be dispatched to (派遣候选人), best first.

Everyone who holds a post over the case's place now — the chain's levels (单元长 over its
unit, 楼长 over its building, 业主委员会 and 物业经理 over its compound, 社区干部 and 网格员
over its grid, the community mediation committee, the street desk) and, for a dispute, the
community's 五员 调处员 (who handles it at the mediation level, as routing sends it,
:mod:`.routing`) — in the order a dispatcher would normally choose:

1. the level routing starts this case at (its category's start level, raised by its flags:
   :func:`.routing.start_level_for`) — a fire hazard starts at the property manager, not the
   单元长 —, then each level above it (up the chain), then the levels below it, nearest first;
2. within a level the chain's own post first (社区干部 before 网格员; the 调处员 before the
   committee, as routing does), then the less busy;
3. people on leave last, marked.

The case's current handler is left out. Each row says why it stands where it does
(``reason``), how busy the person is (``open_cases``, over the whole street) and their work
contact (:func:`gridsvc.supervision.staff.work_contact`: staff and street callers only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.services import LEVEL_BY_NAME
from gridsvc.supervision.staff import (
    PLACE_DEFER,
    PLACE_RELATED,
    open_case_counts,
    place_of,
    role_label,
    shows_contacts,
    work_contact,
)

from ..models import Case, Kind
from .events import posts_over
from .routing import start_level_for

#: the chain level each post handles a case at (a 网格员 at the cadre's, as member_level)
POST_LEVEL: dict[str, str] = {
    PositionType.UNIT_HEAD: PositionType.UNIT_HEAD,
    PositionType.BUILDING_HEAD: PositionType.BUILDING_HEAD,
    PositionType.OWNERS_COMMITTEE: PositionType.OWNERS_COMMITTEE,
    PositionType.PROPERTY_MANAGER: PositionType.PROPERTY_MANAGER,
    PositionType.COMMUNITY_CADRE: PositionType.COMMUNITY_CADRE,
    PositionType.GRID_MEMBER: PositionType.COMMUNITY_CADRE,
    PositionType.MEDIATOR: PositionType.MEDIATION_COMMITTEE,
    PositionType.MEDIATION_COMMITTEE: PositionType.MEDIATION_COMMITTEE,
    PositionType.STREET_DISPATCHER: PositionType.STREET_DISPATCHER,
}
#: within one level: which post comes first
POST_RANK: dict[str, int] = {
    PositionType.COMMUNITY_CADRE: 0,
    PositionType.GRID_MEMBER: 1,
    PositionType.MEDIATOR: 0,  # routing sends a dispute to the 调处员 before the committee
    PositionType.MEDIATION_COMMITTEE: 1,
}


@dataclass
class _Post:
    member: Any
    position_type: str
    position: Position | None
    on_leave: bool
    community: Any = None  # a 调处员's community (no chain position)


#: the posts of the 五位一体 chain over a case's place, from the unit up to the street
CHAIN_POST_TYPES = (
    PositionType.UNIT_HEAD,
    PositionType.BUILDING_HEAD,
    PositionType.OWNERS_COMMITTEE,
    PositionType.PROPERTY_MANAGER,
    PositionType.COMMUNITY_CADRE,
    PositionType.GRID_MEMBER,
    PositionType.MEDIATION_COMMITTEE,
    PositionType.STREET_DISPATCHER,
)


def _posts(case: Case, when: datetime) -> list[_Post]:
    """Every post held over the case's place at ``when`` (on leave included)."""
    q = posts_over(case, CHAIN_POST_TYPES)
    held = (
        Position.objects.held_at(when)
        .filter(q, member__is_active=True)
        .select_related(*PLACE_RELATED)
        .defer(*PLACE_DEFER)
        .order_by("valid_from", "id")
    )
    posts = [_Post(p.member, p.position_type, p, p.on_leave) for p in held]
    if case.kind == Kind.DISPUTE and case.community_id is not None:
        posts += _mediators(case.community_id, timezone.localdate(when))
    return posts


def _mediators(community_id: int, day: Any) -> list[_Post]:
    """The community's 五员 调处员 on ``day`` who have an account, on leave or not
    (:func:`gridsvc.community.rules.mediator_memberships`)."""
    from gridsvc.community.rules import mediator_memberships

    rows = (
        mediator_memberships(community_id, day)
        .select_related("member", "community")
        .defer("community__boundary")
        .order_by("valid_from", "id")
    )
    return [
        _Post(
            t.member, PositionType.MEDIATOR, None, bool(getattr(t, "on_leave", False)), t.community
        )
        for t in rows
    ]


def _reason(post: _Post, level: str, start: str, category_name: str, flags: list[str]) -> str:
    here, first = LEVEL_BY_NAME[level], LEVEL_BY_NAME[start]
    if post.position_type == PositionType.MEDIATOR:
        why = "五员调处员:本社区矛盾纠纷到社区调解层级时由其调处"
    elif here.index == first.index:
        why = f"{category_name}从{first.label}起办"
        if flags:
            why += f"(标记 {'、'.join(flags)})"
    elif here.index > first.index:
        why = f"上一级:{first.label}之上第{here.index - first.index}级"
    else:
        why = f"下一级:{first.label}之下,通常不先派"
    if post.position_type == PositionType.GRID_MEMBER:
        why += ";网格员,按社区干部层级办理"
    if post.on_leave:
        why += ";请假中"
    return why


def dispatch_candidates(
    case: Case, caller: Any = None, when: datetime | None = None
) -> list[dict[str, Any]]:
    """The people ``case`` can be dispatched to, best first (see the module), each
    ``{member, name, role, role_label, level, level_label, grid, grid_name, open_cases,
    contact, on_leave, reason}``. One query for the posts, one for the 调处员 of a dispute,
    one for the workloads."""
    when = when or timezone.now()
    category = case.category
    flags = list(case.flags)
    start, _ = start_level_for(category, flags)
    start_index = LEVEL_BY_NAME[start].index
    posts = [p for p in _posts(case, when) if p.member.pk != case.handler_id]
    counts = open_case_counts(p.member.pk for p in posts)
    sees = shows_contacts(caller) if caller is not None else True

    def key(post: _Post) -> tuple[Any, ...]:
        index = LEVEL_BY_NAME[POST_LEVEL[post.position_type]].index
        if index >= start_index:
            band, distance = 0, index - start_index
        else:
            band, distance = 1, start_index - index
        return (
            post.on_leave,
            band,
            distance,
            POST_RANK.get(post.position_type, 0),
            counts.get(post.member.pk, 0),
            str(post.member),
            post.member.pk,
        )

    best: dict[int, _Post] = {}  # a member holding two posts over the place: the better one
    for post in sorted(posts, key=key):
        best.setdefault(post.member.pk, post)
    rows = []
    for post in sorted(best.values(), key=key):
        level = POST_LEVEL[post.position_type]
        # the grid they serve in (None for posts over a compound, the community, the street)
        place = place_of(post.position) if post.position is not None else {}
        rows.append(
            {
                "member": post.member.pk,
                "name": str(post.member),
                "role": str(post.position_type),
                "role_label": role_label(post.position_type),
                "level": str(level),
                "level_label": LEVEL_BY_NAME[level].label,
                "grid": place.get("grid"),
                "grid_name": place.get("grid_name"),
                "open_cases": counts.get(post.member.pk, 0),
                "contact": work_contact(post.member, sees),
                "on_leave": post.on_leave,
                "reason": _reason(post, level, start, category.name, flags),
            }
        )
    return rows
