"""Territory scope: what a member may see follows from the positions they hold.

- street dispatcher / ethnic-affairs desk over a street → everything in the street
- mediation committee and the 五员 over a community → the community
- community cadre / grid member over a grid → the grid (its buildings, households, compounds
  with buildings in it, places)
- property manager / owners' committee over a compound → the compound's buildings
- building head → the building; unit head → the unit's households
- the district's 创建 office (区创建办) over a district → no record at all: its holders read
  the district's and its streets' outlines, 创建 figures and reports (:func:`districts_for`)
- superusers see everything.

Scopes are applied to querysets (``scope.filter(qs)``), so every list, detail, tile, export
and report built on them is limited the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Model, Q, QuerySet

from gridsvc.territory.models import (
    Building,
    Community,
    Compound,
    District,
    Grid,
    Household,
    Place,
    Resident,
    Street,
    Unit,
)

from .models import Position, PositionType

# Path from each model to a Building (the unit of most grants).
_BUILDING_PATH = {
    Building: "",
    Unit: "building__",
    Household: "unit__building__",
    Resident: "household__unit__building__",
}
_UNIT_PATH = {Unit: "", Household: "unit__", Resident: "household__unit__"}

# Models of other apps that hang off a household (visit tasks, visits …): model → path to the
# household (e.g. "household__"). Apps register theirs in AppConfig.ready(); such rows are
# visible where their household is.
HOUSEHOLD_PATHS: dict[type[Model], str] = {}

# Models of other apps that carry their own territory references (a case has street, community,
# grid, compound, building, unit and household fields): visible to whoever holds a position over
# any of them. Registered in AppConfig.ready().
LOCATED_MODELS: set[type[Model]] = set()


@dataclass
class Scope:
    everything: bool = False
    street_ids: set[int] = field(default_factory=set)
    community_ids: set[int] = field(default_factory=set)
    grid_ids: set[int] = field(default_factory=set)
    compound_ids: set[int] = field(default_factory=set)
    building_ids: set[int] = field(default_factory=set)
    unit_ids: set[int] = field(default_factory=set)
    # buildings a unit head may see (for building/unit lists only, not their households)
    unit_building_ids: set[int] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not self.everything and not any(
            (
                self.street_ids,
                self.community_ids,
                self.grid_ids,
                self.compound_ids,
                self.building_ids,
                self.unit_ids,
            )
        )

    # ------------------------------------------------------------------ Q builders
    def building_q(self, prefix: str = "") -> Q:
        """Q selecting buildings fully inside the scope, at ``prefix`` (e.g. ``unit__building__``)."""
        q = Q(pk__in=[])
        if self.street_ids:
            q |= Q(**{f"{prefix}grid__community__street__in": self.street_ids})
        if self.community_ids:
            q |= Q(**{f"{prefix}grid__community__in": self.community_ids})
        if self.grid_ids:
            q |= Q(**{f"{prefix}grid__in": self.grid_ids})
        if self.compound_ids:
            q |= Q(**{f"{prefix}compound__in": self.compound_ids})
        if self.building_ids:
            q |= Q(**{f"{prefix}id__in" if prefix else "id__in": self.building_ids})
        return q

    def grid_q(self, prefix: str = "") -> Q:
        """Q over grids: granted grids, grids of granted communities/streets, and grids that
        contain granted buildings or compounds' buildings."""
        q = Q(pk__in=[]) if not prefix else Q(**{f"{prefix}id__in": []})
        if self.street_ids:
            q |= Q(**{f"{prefix}community__street__in": self.street_ids})
        if self.community_ids:
            q |= Q(**{f"{prefix}community__in": self.community_ids})
        grid_ids = set(self.grid_ids)
        if self.compound_ids or self.building_ids or self.unit_building_ids:
            grid_ids |= set(
                Building.objects.filter(
                    Q(compound__in=self.compound_ids)
                    | Q(id__in=self.building_ids | self.unit_building_ids)
                )
                .exclude(grid__isnull=True)
                .values_list("grid_id", flat=True)
            )
        if grid_ids:
            q |= Q(**{f"{prefix}id__in": grid_ids})
        return q

    def filter(self, qs: QuerySet) -> QuerySet:
        """Limit ``qs`` to this scope. Unknown models are refused (no silent leak)."""
        if self.everything:
            return qs
        model: type[Model] = qs.model
        if model in _BUILDING_PATH:
            prefix = _BUILDING_PATH[model]
            q = self.building_q(prefix)
            if model in _UNIT_PATH and self.unit_ids:
                q |= Q(**{f"{_UNIT_PATH[model]}id__in": self.unit_ids})
            if model is Building and self.unit_building_ids:
                q |= Q(id__in=self.unit_building_ids)
            return qs.filter(q)
        if model is Grid:
            return qs.filter(self.grid_q())
        if model is Compound:
            q = Q(id__in=self.compound_ids)
            if self.street_ids:
                q |= Q(community__street__in=self.street_ids)
            if self.community_ids:
                q |= Q(community__in=self.community_ids)
            if self.grid_ids or self.building_ids:
                q |= Q(
                    id__in=Building.objects.filter(
                        Q(grid__in=self.grid_ids) | Q(id__in=self.building_ids)
                    )
                    .exclude(compound__isnull=True)
                    .values("compound_id")
                )
            return qs.filter(q)
        if model is Community:
            q = Q(id__in=self.community_ids) | Q(street__in=self.street_ids)
            q |= Q(id__in=Grid.objects.filter(self.grid_q()).values("community_id"))
            return qs.filter(q)
        if model is Street:
            q = Q(id__in=self.street_ids)
            q |= Q(communities__in=Community.objects.filter(id__in=self.community_ids))
            q |= Q(communities__grids__in=Grid.objects.filter(self.grid_q()))
            return qs.filter(q).distinct()
        if model is Place:
            return qs.filter(
                Q(community__in=self.community_ids)
                | Q(community__street__in=self.street_ids)
                | Q(grid__in=Grid.objects.filter(self.grid_q()))
            )
        if model is Position:
            q = (
                Q(street__in=self.street_ids)
                | Q(community__in=self.community_ids)
                | Q(community__street__in=self.street_ids)
                | Q(grid__in=Grid.objects.filter(self.grid_q()))
                | Q(compound__in=Compound.objects.filter(self._compound_q_for_positions()))
                | Q(building__in=Building.objects.filter(self.building_q()))
                | Q(
                    unit__in=Unit.objects.filter(
                        self.building_q("building__") | Q(id__in=self.unit_ids)
                    )
                )
            )
            return qs.filter(q)
        if model in HOUSEHOLD_PATHS:
            hh = HOUSEHOLD_PATHS[model]
            q = self.building_q(f"{hh}unit__building__")
            if self.unit_ids:
                q |= Q(**{f"{hh}unit__id__in": self.unit_ids})
            return qs.filter(q)
        if model in LOCATED_MODELS:
            return qs.filter(self.located_q())
        raise TypeError(f"no territory scope rule for {model.__name__}")

    def located_q(self) -> Q:
        """Q over rows with their own street/community/grid/compound/building/unit fields:
        a row is visible to a holder over exactly those objects (a building head sees the
        building's cases, not the whole grid's)."""
        q = Q(pk__in=[])
        for name, ids in (
            ("street", self.street_ids),
            ("community", self.community_ids),
            ("grid", self.grid_ids),
            ("compound", self.compound_ids),
            ("building", self.building_ids),
            ("unit", self.unit_ids),
        ):
            if ids:
                q |= Q(**{f"{name}__in": ids})
        return q

    def _compound_q_for_positions(self) -> Q:
        return (
            Q(id__in=self.compound_ids)
            | Q(community__in=self.community_ids)
            | Q(community__street__in=self.street_ids)
            | Q(buildings__grid__in=self.grid_ids)
        )

    def allows_building_level(
        self,
        level: str,
        *,
        building_id: int | None,
        unit_id: int | None = None,
        compound_id: int | None = None,
        grid_id: int | None = None,
        community_id: int | None = None,
        street_id: int | None = None,
    ) -> bool:
        """Whether a household, unit or building (``level``) with these containers is in the
        scope, without a query: the same rule as :meth:`filter` on that model (the grid's
        community and street, the compound, the building; a unit head's unit — and, for the
        building list only, the unit's building)."""
        if self.everything:
            return True
        if (
            (street_id is not None and street_id in self.street_ids)
            or (community_id is not None and community_id in self.community_ids)
            or (grid_id is not None and grid_id in self.grid_ids)
            or (compound_id is not None and compound_id in self.compound_ids)
            or (building_id is not None and building_id in self.building_ids)
        ):
            return True
        if level in ("household", "unit"):
            return unit_id is not None and unit_id in self.unit_ids
        if level == "building":
            return building_id is not None and building_id in self.unit_building_ids
        raise ValueError(f"no building-level rule for {level}")

    def allows_grid(
        self,
        grid_id: int | None,
        *,
        community_id: int | None = None,
        street_id: int | None = None,
    ) -> bool:
        """Whether grid ``grid_id`` is in the scope (``None``: outside every grid, visible at
        the street level). ``community_id``/``street_id``, when the caller knows the grid's
        community and street, answer the common cases without a query."""
        if self.everything:
            return True
        if grid_id is None:
            return bool(self.street_ids)
        if (
            grid_id in self.grid_ids
            or (community_id is not None and community_id in self.community_ids)
            or (street_id is not None and street_id in self.street_ids)
        ):
            return True
        return Grid.objects.filter(self.grid_q(), id=grid_id).exists()


_ATTACHED = "_gridsvc_scope"


def _scope_from_rows(rows) -> Scope:
    """A scope from rows of (street, community, grid, compound, building, unit,
    the unit's building) ids of held positions."""
    scope = Scope()
    for street, community, grid, compound, building, unit, unit_building in rows:
        if street:
            scope.street_ids.add(street)
        if community:
            scope.community_ids.add(community)
        if grid:
            scope.grid_ids.add(grid)
        if compound:
            scope.compound_ids.add(compound)
        if building:
            scope.building_ids.add(building)
        if unit:
            scope.unit_ids.add(unit)
            scope.unit_building_ids.add(unit_building)
    return scope


def attach_scope(member, rows) -> None:
    """Keep ``member``'s current scope, computed from ``rows`` of held positions (see
    :func:`_scope_from_rows`) by the query that loaded ``member`` (JWT authentication reads
    user, device and positions at once); :func:`scope_for` (now) then runs no query."""
    member.__dict__[_ATTACHED] = (
        Scope(everything=True) if member.is_superuser else _scope_from_rows(rows)
    )


def _copy(scope: Scope) -> Scope:
    return Scope(
        everything=scope.everything,
        street_ids=set(scope.street_ids),
        community_ids=set(scope.community_ids),
        grid_ids=set(scope.grid_ids),
        compound_ids=set(scope.compound_ids),
        building_ids=set(scope.building_ids),
        unit_ids=set(scope.unit_ids),
        unit_building_ids=set(scope.unit_building_ids),
    )


def scope_for(member, when=None) -> Scope:
    """The scope of ``member`` from the positions they hold now (or at ``when``).

    For a member loaded by the JWT authentication the scope came with the user row (as of
    the start of the request)."""
    if member is None or not getattr(member, "is_authenticated", False):
        return Scope()
    if member.is_superuser:
        return Scope(everything=True)
    if when is None:
        attached = member.__dict__.get(_ATTACHED)
        if attached is not None:
            return _copy(attached)
    # One query: the unit heads' buildings come along through a join (was a second query).
    rows = (
        Position.objects.held_at(when)
        .filter(member=member)
        .values_list(
            "street_id",
            "community_id",
            "grid_id",
            "compound_id",
            "building_id",
            "unit_id",
            "unit__building_id",
        )
    )
    return _scope_from_rows(rows)


def districts_for(member, when=None) -> QuerySet[District]:
    """The districts (区) whose 创建 office ``member`` works in at ``when`` (default now): the
    district posts (区创建办) they hold then and are not on leave from. Not part of the
    :class:`Scope` (these posts reach no record about a person): they open the district's
    outline, its streets' 创建 figures and reports, and the acknowledgement of those reports
    (:mod:`gridsvc.community.services`). Handing the post over or ending it ends this at once."""
    if member is None or not getattr(member, "is_authenticated", False):
        return District.objects.none()
    posts = (
        Position.objects.active_at(when)
        .filter(member=member, position_type=PositionType.DISTRICT_OFFICER)
        .values("district_id")
    )
    return District.objects.filter(pk__in=posts)
