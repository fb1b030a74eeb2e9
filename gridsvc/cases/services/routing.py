"""Routing a report (DESIGN.md "Routing a report"): locate the place (reference, else covering
building, else nearest building within a tolerance; grid and compound by ST_Covers with the
lowest code winning on shared edges), pick the starting level from the category and flag
rules, walk the chain to the first active holder, store the walked chain and the reason. A
dispute reaching the community mediation level goes to the community's 五员 调处员 when one is
at work (issue 20).
Outside every grid the case waits in the street dispatch queue with the nearest grid
suggested."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.gis.geos import Point
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from gridsvc.chain.services import LEVEL_BY_NAME, STREET_LEVEL, Chain, ChainStep, Holder, walk
from gridsvc.territory.models import Building, Community, Compound, Grid, Household, Street, Unit
from gridsvc.territory.services import Location, locate

from ..levels import MEDIATOR_LEVEL
from ..models import (
    Case,
    Category,
    FlagRule,
)
from .unity import mediator_for

if TYPE_CHECKING:
    from gridsvc.chain.answer import Resolved


@dataclass
class Routing:
    location: Location
    start_level: str
    level: str
    handler_id: int | None
    queued: bool  # waits in the street dispatch queue
    chain: list[dict[str, Any]]
    walked: list[str]
    reason: str
    notify: list[str] = field(default_factory=list)


def start_level_for(category: Category, flags: Iterable[str] = ()) -> tuple[str, list[str]]:
    """The level a case starts at and who is notified at once (category and flag rules)."""
    level = category.effective_start_level
    notify = category.effective_notify
    flags = list(flags)
    if not flags:  # no flag, no rule to read
        return level, notify
    rules = {r.flag: r for r in FlagRule.objects.filter(flag__in=flags)}
    for rule in rules.values():
        if LEVEL_BY_NAME[rule.min_level].index > LEVEL_BY_NAME[level].index:
            level = rule.min_level
        notify += [n for n in rule.notify if n not in notify]
    return level, notify


def route(
    category: Category,
    point: Point | None = None,
    *,
    household: Household | None = None,
    unit: Unit | None = None,
    building: Building | None = None,
    compound: Compound | None = None,
    flags: Iterable[str] = (),
    when: datetime | None = None,
    resolved: Resolved | None = None,
) -> Routing:
    """Where a report goes (no writes): the location, the level and the holder, and why.
    ``resolved``: the point's place and holders at ``when`` read already
    (:func:`gridsvc.chain.answer.resolve_point`'s row, sent with another statement)."""
    when = when or timezone.now()
    start, notify = start_level_for(category, flags)
    start_label = LEVEL_BY_NAME[start].label
    found = None
    if point is not None and not any((household, unit, building, compound)):
        found = _point_chain(point, when, resolved)  # a point inside a grid: one statement
    if found is not None:
        chain, steps = found
        loc = chain.location
    else:
        loc = locate(point, household=household, unit=unit, building=building, compound=compound)
    if loc.grid is None:
        near = loc.nearest_grid
        dist = loc.nearest_grid_distance_m
        reason = "outside every grid → street dispatch queue"
        if near is not None:
            reason += f"; nearest grid {near.name} ({near.code}) at {dist:.0f} m"
            loc.street = near.community.street
        return Routing(loc, start, STREET_LEVEL.name, None, True, [], [], reason, notify)
    if found is None:
        chain = walk(loc, when)
        steps = [s.as_dict() for s in chain.steps]
    step, walked = chain.first_active_from(start)
    parts = [f"{category.name}: starts at {start_label}"]
    mediated, why_not = _to_mediator(category, chain, start, step, walked, notify, steps)
    if mediated is not None:
        return mediated
    for s in walked[:-1]:
        parts.append(f"{s.level_label} skipped ({s.status})")
    if why_not:
        parts.append(why_not)
    holder = step.primary
    if step.level == STREET_LEVEL.index and holder is None:
        parts.append("nobody holds the street desk → dispatch queue")
        return Routing(
            loc,
            start,
            step.level_name,
            None,
            True,
            steps,
            [s.level_name for s in walked],
            "; ".join(parts),
            notify,
        )
    parts.append(f"→ {step.level_label} {holder.name if holder else ''}".rstrip())
    return Routing(
        loc,
        start,
        step.level_name,
        holder.member_id if holder else None,
        False,
        steps,
        [s.level_name for s in walked],
        "; ".join(parts),
        notify,
    )


def mediator_routing(
    category: Category, chain: Chain, start: str, step: ChainStep, walked: list[ChainStep]
) -> Routing | None:
    """Where a case of ``category`` walked from ``start`` to ``step`` goes instead: the
    community's 五员 调处员 for a dispute reaching the mediation level (also on escalation by
    the clock), else None."""
    return _to_mediator(category, chain, start, step, walked, [])[0]


def _to_mediator(
    category: Category,
    chain: Chain,
    start: str,
    step: ChainStep,
    walked: list[ChainStep],
    notify: list[str],
    steps: list[dict[str, Any]] | None = None,
) -> tuple[Routing | None, str]:
    """A dispute that reaches the community mediation level (社区调委会: it starts there, or
    the levels below it are vacant or on leave) goes to the community's 五员 调处员 (003: 组建
    “五员”队伍…开展…矛盾纠纷调处工作), ahead of the committee and the street desk. Returns
    the routing (None when the rule does not apply or no 调处员 is at work) and, for a
    dispute falling back to the normal chain, why."""
    mediation = LEVEL_BY_NAME[MEDIATOR_LEVEL].index
    if LEVEL_BY_NAME[start].index > mediation or step.level < mediation:
        return None, ""
    loc = chain.location
    who, why_not = mediator_for(
        category.kind,
        getattr(loc.community, "pk", None),
        timezone.localdate(chain.when),
        getattr(loc.household, "pk", None),
    )
    if who is None:
        return None, why_not
    upto = [s for s in walked if s.level <= mediation]
    parts = [f"{category.name}: starts at {LEVEL_BY_NAME[start].label}"]
    parts += [f"{s.level_label} skipped ({s.status})" for s in upto if s.level < mediation]
    committee = upto[-1]
    if committee.level == mediation and committee.primary is not None:
        beside = f"before the committee's {committee.primary.name}"
    else:
        beside = f"the committee is {committee.status}"
    parts.append(
        f"→ {LEVEL_BY_NAME[MEDIATOR_LEVEL].label} 五员调处员 {who.member} "
        f"(a dispute reaching the community goes to its 调处员; {beside})"
    )
    routing = Routing(
        loc,
        start,
        MEDIATOR_LEVEL,
        who.member_id,
        False,
        steps if steps is not None else [s.as_dict() for s in chain.steps],
        [s.level_name for s in upto],
        "; ".join(parts),
        notify,
    )
    return routing, ""


def _partial(model: type[Model], **values: Any) -> Any:
    """A row of ``model`` known by some columns only (the others load when first read), as
    the ORM builds a deferred instance."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(connection.alias, names, [values[n] for n in names])


def _point_chain(
    point: Point, when: datetime, resolved: Resolved | None = None
) -> tuple[Chain, list[dict[str, Any]]] | None:
    """The place of ``point`` and its chain at ``when`` from ONE statement
    (:func:`gridsvc.chain.answer.resolve_point`: the rules of :func:`locate` + :func:`walk`,
    the steps as ``Chain.as_dict`` writes them), the place's objects as deferred instances
    (ids and names; anything else read of them loads then). None for a point outside every
    grid: :func:`locate` names the nearest grid and its street. ``resolved``: that statement's
    row, read already."""
    from gridsvc.chain.answer import answer, resolve_point

    res = resolved if resolved is not None else resolve_point(point.x, point.y, when)
    if res.grid_id is None:
        return None
    street = _partial(Street, id=res.street_id, name=res.street_name)
    community = _partial(
        Community, id=res.community_id, name=res.community_name, street_id=res.street_id
    )
    community.street = street
    grid = _partial(
        Grid, id=res.grid_id, name=res.grid_name, code=res.grid_code, community_id=res.community_id
    )
    grid.community = community
    compound = (
        None
        if res.compound_id is None
        else _partial(Compound, id=res.compound_id, name=res.compound_name)
    )
    bld = None
    if res.building_id is not None:
        bld = _partial(
            Building,
            id=res.building_id,
            name=res.building_name,
            compound_id=res.compound_id,
            grid_id=res.grid_id,
        )
        bld.compound, bld.grid = compound, grid
    loc = Location(
        method=res.method,
        point=point,
        building=bld,
        compound=compound,
        grid=grid,
        community=community,
        street=street,
        distance_m=res.distance_m,
    )
    steps = answer(res, when)["steps"]
    chain = Chain(
        location=loc,
        when=when,
        steps=[
            ChainStep(
                level=d["level"],
                level_name=d["level_name"],
                level_label=d["level_label"],
                object_type=d["object_type"],
                object_id=d["object_id"],
                object_name=d["object_name"],
                status=d["status"],
                holders=[Holder(**h) for h in d["holders"]],
            )
            for d in steps
        ],
    )
    return chain, steps


def apply_routing(case: Case, r: Routing) -> None:
    loc = r.location
    case.located_by = loc.method
    case.household = loc.household
    case.unit = loc.unit
    case.building = loc.building
    case.compound = loc.compound
    case.grid = loc.grid
    case.community = loc.community
    case.street = loc.street
    case.suggested_grid = loc.nearest_grid if loc.grid is None else None
    case.level = r.level
    case.level_index = LEVEL_BY_NAME[r.level].index
    case.handler_id = r.handler_id
    case.chain = r.chain
    case.route_reason = r.reason
