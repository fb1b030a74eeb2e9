"""Who holds which post, where, how to reach them and how busy they are (岗位通讯录).

Used by the street office page: the staff directory (``GET /api/v1/staff/``), the missing
daily reports (一日一报) with their 催报 action (:mod:`gridsvc.supervision.chase`) and the
dispatch candidates of a case (:mod:`gridsvc.cases.services.candidates`).

Work contacts (工作联系方式): the phone of a post holder's member account is the number the
post is reached at. It is shown only to callers at the staff or street tier
(``visibility.Tier.STAFF`` and up: grid members, cadres, 五员, mediation committee, the street
desks), who coordinate these posts; neighbour tiers (楼长, 单元长, 物业, 业委会) get ``None``:
a volunteer 楼长's number is a resident's own phone and is not passed between neighbours.
A member's phone is also a login name (``gridsvc.accounts.backends``), so it is never put in
lists anyone else reads (exports, the change feed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet

from gridsvc.chain import visibility
from gridsvc.chain.models import Position, PositionType
from gridsvc.chain.scope import Scope

#: 岗位名称 by position type
ROLE_LABELS: dict[str, str] = {str(k): str(v) for k, v in PositionType.choices}

#: the order posts are listed in: the chain bottom → top, then the other posts
ROLE_ORDER: tuple[str, ...] = (
    PositionType.GRID_MEMBER,
    PositionType.COMMUNITY_CADRE,
    PositionType.UNIT_HEAD,
    PositionType.BUILDING_HEAD,
    PositionType.OWNERS_COMMITTEE,
    PositionType.PROPERTY_MANAGER,
    PositionType.MEDIATION_COMMITTEE,
    PositionType.PUBLICITY_OFFICER,
    PositionType.ORGANISER,
    PositionType.INFORMATION_OFFICER,
    PositionType.LIAISON_OFFICER,
    PositionType.MEDIATOR,
    PositionType.STREET_DISPATCHER,
    PositionType.ETHNIC_AFFAIRS_DESK,
)

#: select_related paths that name a post's place and its grid and community in one query
PLACE_RELATED = (
    "member",
    "street",
    "community",
    "grid__community",
    "compound__community",
    "building__grid__community",
    "unit__building__grid__community",
)
#: the geometries those rows would drag along, never needed here
PLACE_DEFER = (
    "street__boundary",
    "community__boundary",
    "grid__boundary",
    "grid__community__boundary",
    "compound__boundary",
    "compound__community__boundary",
    "building__footprint",
    "building__point",
    "building__grid__boundary",
    "building__grid__community__boundary",
    "unit__building__footprint",
    "unit__building__point",
    "unit__building__grid__boundary",
    "unit__building__grid__community__boundary",
)


def role_label(position_type: str) -> str:
    """岗位名称 of ``position_type`` (the type itself when unknown)."""
    return ROLE_LABELS.get(position_type, position_type)


def shows_contacts(caller: Any) -> bool:
    """Whether ``caller`` is shown post holders' work phones: staff and street tiers only."""
    return visibility.tier_for(caller) >= visibility.Tier.STAFF


def work_contact(member: Any, caller_sees: bool) -> str | None:
    """The work phone of ``member`` as ``caller`` sees it: ``None`` when the caller may not
    (``caller_sees`` from :func:`shows_contacts`) or when none is recorded."""
    if not caller_sees:
        return None
    return (getattr(member, "phone", "") or "").strip() or None


def open_case_counts(member_ids: Iterable[int]) -> dict[int, int]:
    """How many open cases each member handles now, over the whole street (one query): the
    workload a dispatcher weighs, not limited to the caller's territory."""
    from gridsvc.cases.models import OPEN_STATUSES, Case

    ids = sorted({m for m in member_ids if m})
    if not ids:
        return {}
    rows = (
        Case.objects.filter(handler_id__in=ids, status__in=OPEN_STATUSES)
        .order_by()
        .values("handler_id")
        .annotate(n=Count("id"))
    )
    return {r["handler_id"]: r["n"] for r in rows}


def place_of(position: Position) -> dict[str, Any]:
    """Where ``position`` is held: the place's type, id and name, and the grid and community
    it lies in (``None`` where the post is above them or spans several grids)."""
    field = position.target_field
    target = getattr(position, field)
    grid = None
    community = None
    if field == "grid":
        grid = target
    elif field == "building":
        grid = target.grid
    elif field == "unit":
        grid = target.building.grid
    if grid is not None:
        community = grid.community
    elif field == "compound":
        community = target.community
    elif field == "community":
        community = target
    return {
        "target_type": field,
        "target_id": getattr(target, "pk", None),
        "territory_name": "" if target is None else str(target),
        "grid": getattr(grid, "pk", None),
        "grid_name": getattr(grid, "name", None),
        "community": getattr(community, "pk", None),
        "community_name": getattr(community, "name", None),
    }


def _in_grid(grid_id: int) -> Q:
    return (
        Q(grid_id=grid_id)
        | Q(building__grid_id=grid_id)
        | Q(unit__building__grid_id=grid_id)
        | Q(compound__buildings__grid_id=grid_id)
    )


def _in_community(community_id: int) -> Q:
    return (
        Q(community_id=community_id)
        | Q(grid__community_id=community_id)
        | Q(building__grid__community_id=community_id)
        | Q(unit__building__grid__community_id=community_id)
        | Q(compound__community_id=community_id)
    )


def staff_positions(
    scope: Scope,
    *,
    grid: int | None = None,
    community: int | None = None,
    roles: Iterable[str] = (),
    when: datetime | None = None,
) -> QuerySet[Position]:
    """Posts held now (on leave included) inside ``scope``, optionally in one grid or
    community and of some ``roles``."""
    qs = scope.filter(Position.objects.held_at(when))
    if grid is not None:
        qs = qs.filter(_in_grid(grid))
    if community is not None:
        qs = qs.filter(_in_community(community))
    roles = list(roles)
    if roles:
        qs = qs.filter(position_type__in=roles)
    # the filters through compounds' buildings may repeat a row
    return (
        Position.objects.filter(pk__in=qs.values("pk"))
        .select_related(*PLACE_RELATED)
        .defer(*PLACE_DEFER)
    )


def staff_directory(
    scope: Scope,
    caller: Any,
    *,
    grid: int | None = None,
    community: int | None = None,
    roles: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """岗位通讯录: each post held now in the caller's territory with its holder, role label,
    place, work contact (staff and street callers only), open cases and leave."""
    positions = list(staff_positions(scope, grid=grid, community=community, roles=roles))
    counts = open_case_counts(p.member_id for p in positions)
    sees = shows_contacts(caller)
    order = {r: i for i, r in enumerate(ROLE_ORDER)}
    rows = []
    for p in positions:
        rows.append(
            {
                "position": p.pk,
                "member": p.member_id,
                "name": str(p.member),
                "role": p.position_type,
                "role_label": role_label(p.position_type),
                **place_of(p),
                "contact": work_contact(p.member, sees),
                "open_cases": counts.get(p.member_id, 0),
                "on_leave": p.on_leave,
            }
        )
    rows.sort(
        key=lambda r: (
            order.get(r["role"], len(order)),
            r["grid_name"] or "",
            r["territory_name"],
            r["name"],
            r["position"],
        )
    )
    return rows
