"""Spatial rules of the territory, done by PostGIS.

- :func:`derive_building_containers`: building → grid and building → compound, from the
  footprint, in one UPDATE (largest share of the footprint wins, compared to 1e-6 so that
  float noise cannot decide; ties go to the lowest code, so a building on a shared edge
  always lands in the same grid) — the SQL lives on ``Building.objects`` (the model's save
  uses it too), the grid covering a point on ``Grid.objects.covering``;
- :func:`locate`: where a report or visit is — a household/unit/building reference wins,
  else the building whose footprint covers the point, else the nearest building within a
  tolerance; grid and compound by ST_Covers with the lowest code winning on shared edges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.gis.geos import GEOSGeometry, Point
from django.db import connection

from .models import Building, Community, Compound, Grid, Household, Street, Unit


def derive_building_containers(building_ids: Iterable[int] | None = None) -> int:
    """Recompute grid and compound of the given buildings (all when None); returns rows
    (:meth:`~gridsvc.territory.models.BuildingManager.derive_containers`)."""
    return Building.objects.derive_containers(building_ids)


def rederive_buildings_near(geometry: GEOSGeometry) -> int:
    """After a grid or compound boundary changed: recompute buildings touching ``geometry``."""
    return Building.objects.rederive_near(geometry)


def orphan_buildings():
    """Buildings outside every grid (to be reported, never silently dropped)."""
    return Building.objects.filter(grid__isnull=True).order_by("code")


def grid_covering(point: Point) -> Grid | None:
    """The top-level grid covering ``point``; on a shared edge the lowest code wins."""
    return Grid.objects.covering(point)


def compound_covering(point: Point) -> Compound | None:
    return Compound.objects.filter(boundary__covers=point).order_by("code").first()


def nearest_grid(point: Point) -> tuple[Grid | None, float | None]:
    """The grid nearest to ``point`` (KNN on the GiST index) and its distance in metres."""
    with connection.cursor() as cur:
        cur.execute(
            """
            WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%s, %s), 4326) AS g),
            near AS (
              SELECT id, code, boundary FROM territory_grid, p
              WHERE parent_id IS NULL ORDER BY boundary <-> p.g LIMIT 8)
            SELECT near.id, ST_Distance(near.boundary::geography, p.g::geography) AS d
            FROM near, p ORDER BY d, near.code LIMIT 1
            """,
            [point.x, point.y],
        )
        row = cur.fetchone()
    if not row:
        return None, None
    return Grid.objects.select_related("community__street").get(pk=row[0]), float(row[1])


def building_at(
    point: Point, tolerance_m: float | None = None
) -> tuple[Building | None, str, float]:
    """The building covering ``point``, else the nearest within ``tolerance_m``.

    Returns ``(building, method, distance_m)`` with method ``covering_building``,
    ``nearest_building`` or ``none``.
    """
    tol = settings.GRIDSVC["NEAREST_BUILDING_TOLERANCE_M"] if tolerance_m is None else tolerance_m
    # Index-friendly box: tolerance in degrees of longitude (the wider one) at this latitude.
    import math

    deg = tol / (111_320.0 * max(math.cos(math.radians(point.y)), 0.01))
    with connection.cursor() as cur:
        cur.execute(
            """
            WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%s, %s), 4326) AS g)
            SELECT b.id, ST_Covers(b.footprint, p.g) AS covers,
                   ST_Distance(b.footprint::geography, p.g::geography) AS d
            FROM territory_building b, p
            WHERE b.footprint && ST_Expand(p.g, %s)
            ORDER BY covers DESC, d, b.code
            LIMIT 1
            """,
            [point.x, point.y, deg],
        )
        row = cur.fetchone()
    if not row:
        return None, "none", 0.0
    bid, covers, dist = row
    if not covers and dist > tol:
        return None, "none", 0.0
    # what locate() reads next comes along (one query, not one per level)
    # (not their boundaries nor the footprint: a multipolygon each, never read here)
    found = (
        Building.objects.select_related("compound", "grid__community__street")
        .defer(
            "footprint",
            "compound__boundary",
            "grid__boundary",
            "grid__community__boundary",
            "grid__community__street__boundary",
        )
        .get(pk=bid)
    )
    if covers:
        return found, "covering_building", 0.0
    return found, "nearest_building", float(dist)


@dataclass
class Location:
    """Where something is, in both lines of the territory."""

    method: str
    point: Point | None = None
    household: Household | None = None
    unit: Unit | None = None
    building: Building | None = None
    compound: Compound | None = None
    grid: Grid | None = None
    community: Community | None = None
    street: Street | None = None
    distance_m: float | None = None
    nearest_grid: Grid | None = None
    nearest_grid_distance_m: float | None = None

    @property
    def inside_grid(self) -> bool:
        return self.grid is not None

    def describe(self) -> dict:
        def ref(obj):
            return None if obj is None else {"id": obj.pk, "name": str(obj)}

        return {
            "method": self.method,
            "household": ref(self.household),
            "unit": ref(self.unit),
            "building": ref(self.building),
            "compound": ref(self.compound),
            "grid": ref(self.grid),
            "community": ref(self.community),
            "street": ref(self.street),
            "distance_m": self.distance_m,
            "nearest_grid": ref(self.nearest_grid),
            "nearest_grid_distance_m": self.nearest_grid_distance_m,
        }


def _fill_admin(loc: Location) -> Location:
    if loc.grid is not None:
        loc.community = loc.grid.community
        loc.street = loc.community.street
    return loc


def locate(
    point: Point | None = None,
    *,
    household: Household | None = None,
    unit: Unit | None = None,
    building: Building | None = None,
    compound: Compound | None = None,
    tolerance_m: float | None = None,
) -> Location:
    """Resolve a reference or a point to the territory (DESIGN.md "Routing a report", step 1)."""
    if household is not None:
        unit = household.unit
    if unit is not None:
        building = unit.building
    if building is not None:
        method = "household" if household else "unit" if unit else "building"
        loc = Location(
            method=method,
            point=point or building.point,
            household=household,
            unit=unit,
            building=building,
            compound=building.compound,
            grid=building.grid,
        )
        if loc.grid is None:
            loc.nearest_grid, loc.nearest_grid_distance_m = nearest_grid(loc.point)
        return _fill_admin(loc)
    if compound is not None and point is None:
        point = compound.boundary.point_on_surface
    if point is None:
        raise ValueError("locate() needs a point or a household/unit/building/compound")
    if point.srid is None:
        point.srid = 4326
    found, method, dist = building_at(point, tolerance_m)
    if found is not None:
        loc = Location(
            method=method,
            point=point,
            building=found,
            compound=compound or found.compound,
            grid=found.grid,
            distance_m=dist,
        )
        if loc.grid is None:
            loc.grid = grid_covering(point)
    else:
        loc = Location(
            method="point" if compound is None else "compound",
            point=point,
            compound=compound or compound_covering(point),
            grid=grid_covering(point),
        )
    if loc.grid is None:
        loc.method = "outside"
        loc.nearest_grid, loc.nearest_grid_distance_m = nearest_grid(point)
    return _fill_admin(loc)
