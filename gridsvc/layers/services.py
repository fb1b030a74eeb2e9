"""Map layers in PostGIS: vector tiles, GeoJSON features, hexagon heatmaps, choropleth figures.

Every function takes the caller's :class:`~gridsvc.chain.scope.Scope` and builds its query from
``scope.filter(...)`` querysets, so tiles, features and figures are limited exactly like every
other list. Each layer declares its properties once (:data:`LAYERS`); nothing else reaches a tile
or a feature: no names of people, ID numbers, phones, resident tags, case parties, titles or
descriptions, and no GPS tracks (visits are drawn at the visited household's building).

Fast paths (see docs/layers.md):

- One SQL statement per tile: the ORM compiles the scoped, filtered feature query (``geom &&
  envelope`` with the envelope transformed to the column's SRID, never the column), wrapped in
  ``ST_AsMVT(ST_AsMVTGeom(...))`` with extent 4096, buffer 64, simplification by zoom and a
  feature cap.
- Built tiles go to :class:`~gridsvc.layers.models.TileCache` (gzip, ETag), keyed by layer,
  tile and a hash of the scope and filters; triggers delete the rows under changed data.
- Heatmaps GROUP BY an arithmetic hexagon index (the same cells as ``ST_HexagonGrid`` — checked
  by the tests) instead of joining points to a generated grid; ``ST_Hexagon(size, i, j)`` draws
  only the cells that have cases.
"""

from __future__ import annotations

import gzip
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.gis.db.models.functions import AsGeoJSON
from django.contrib.gis.geos import Polygon
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    BooleanField,
    CharField,
    Count,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    Q,
    QuerySet,
    Value,
)
from django.db.models import Case as When_
from django.db.models import When as WhenClause
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from geo import crs as geocrs
from geo.hexbin import (
    EARTH_RADIUS_3857,
    ORIGIN_SHIFT,
    hex_size_for_zoom,
    lonlat_to_3857,
    resolution_m_per_px,
    tile_bounds_3857,
)
from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import ETHNICITY, LOW_INCOME
from gridsvc.dbrouter import read_alias, read_connection
from gridsvc.errors import DomainError
from gridsvc.prepared import fetchone
from gridsvc.territory.models import Building, Compound, Grid, Household, Place

EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 22
FEATURE_CAP = 20_000
#: households are drawn one point per building (with a count) below this zoom
HOUSEHOLD_DETAIL_ZOOM = 17
#: life of a cached tile: time-dependent layers (case age/overdue, relative windows) and others
TTL_TIME_DEPENDENT = timedelta(minutes=5)
TTL_STATIC = timedelta(days=1)
#: HTTP max-age of tiles (private: tiles are per territory)
HTTP_MAX_AGE = 60
#: default window of the visits layer
VISITS_DEFAULT_DAYS = 90
#: widest bbox accepted by the heatmap and GeoJSON layers (degrees)
MAX_BBOX_DEG = 5.0
DEG_PER_M = 1.0 / 111_320.0


class ParamError(DomainError, ValueError):
    """Bad input, with the name of the parameter at fault (→ HTTP 400 naming the field)."""

    code = "bad_parameter"

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message, field_name)
        self.args = (f"{field_name}: {message}",)

    def body(self) -> dict[str, Any]:
        return {self.field: [self.message]}


# ====================================================================== parameters
# Query parameters are parsed (types, ranges, formats, names of states) by the API's
# serializers (api/layer_params.py), which read :class:`Filter` declarations from here; the
# rules below (what a tile CRS may be, how big a box, which categories exist) are the layers'.

#: coordinate systems a tile can be drawn in: WGS84 (web mercator over WGS84, the default;
#: CGCS2000 is the same to centimetres) and GCJ-02 (web mercator over GCJ-02, the grid of
#: Amap and Tencent basemaps). BD-09 has its own tile grid (Baidu's), so it is refused.
TILE_CRS = ("wgs84", "gcj02")


def tile_crs(crs: str | None, field_name: str = "crs") -> str:
    """The tile grid for a canonical CRS name (:func:`geo.crs.normalize_crs`): ``wgs84``
    (default; ``cgcs2000`` too) or ``gcj02``; ParamError naming ``crs`` for anything else."""
    if crs in (None, "", "cgcs2000"):
        return "wgs84"
    if crs not in TILE_CRS:
        raise ParamError(
            field_name,
            f"tiles come in {', '.join(TILE_CRS)} (cgcs2000 = wgs84); Baidu maps (bd09) use "
            "their own tile grid: use the GeoJSON layers with crs=bd09",
        )
    return crs


def bbox_wgs84(
    box: tuple[float, float, float, float] | None, crs: str = "wgs84", field_name: str = "bbox"
) -> tuple[float, float, float, float] | None:
    """A box ``(minlon, minlat, maxlon, maxlat)`` given in ``crs`` → a WGS84 box (corners
    converted). Minimum not above maximum, at most :data:`MAX_BBOX_DEG` wide and high."""
    if box is None:
        return None
    x0, y0, x1, y1 = box
    if x0 > x1 or y0 > y1:
        raise ParamError(field_name, "minimum greater than maximum")
    if x1 - x0 > MAX_BBOX_DEG or y1 - y0 > MAX_BBOX_DEG:
        raise ParamError(field_name, f"at most {MAX_BBOX_DEG} degrees wide and high")
    if crs != "wgs84":
        corners = [geocrs.to_wgs84(x, y, crs) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
        xs = [c[0] for c in corners]
        ys = [c[1] for c in corners]
        return min(xs), min(ys), max(xs), max(ys)
    return x0, y0, x1, y1


def parse_instant(raw: str | None, field_name: str, end: bool = False) -> datetime | None:
    """A date (``YYYY-MM-DD``: its start, or with ``end`` the start of the next day) or an
    ISO 8601 date-time (naive = local time): how the layers read a day (local whole days)."""
    if raw in (None, "", ".."):
        return None
    raw = str(raw).strip()
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            if end:
                d += timedelta(days=1)
            return timezone.make_aware(datetime.combine(d, time.min))
        value = parse_datetime(raw.replace(" ", "T", 1) if "T" not in raw else raw)
    except (ValueError, OverflowError):
        value = None
    if value is None:
        raise ParamError(field_name, "a date YYYY-MM-DD or an ISO 8601 date-time")
    if timezone.is_naive(value):
        try:
            value = timezone.make_aware(value)
        except Exception:  # noqa: BLE001 - a non-existent local time, out of range …
            raise ParamError(field_name, "not a valid local time") from None
    return value


def case_statuses(names: Iterable[str] | None) -> list[str] | None:
    """Case states for ``status`` (states or the groups ``open`` / ``done``, already checked
    against :func:`status_names`)."""
    from gridsvc.cases.models import DONE_STATUSES, OPEN_STATUSES

    if names is None:
        return None
    out: list[str] = []
    for name in names:
        if name == "open":
            out += [str(s) for s in OPEN_STATUSES]
        elif name == "done":
            out += [str(s) for s in DONE_STATUSES]
        else:
            out.append(name)
    return sorted(set(out))


def status_names() -> list[str]:
    """What ``status`` accepts: the groups ``open`` and ``done`` and every case state."""
    from gridsvc.cases.models import Status

    return ["open", "done", *Status.values]


def case_categories(codes: Iterable[str] | None, field_name: str = "category") -> list[int] | None:
    """``category``: codes or ids; a category includes its sub-categories (ParamError naming
    the field for an unknown one)."""
    from gridsvc.cases.models import Category

    if codes is None:
        return None
    ids: set[int] = set()
    for part in codes:
        q = Q(code=part)
        if part.isdigit() and len(part) < 12:
            q |= Q(id=int(part))
        found = list(Category.objects.filter(q).values_list("id", flat=True))
        if not found:
            raise ParamError(field_name, f"unknown category {part!r}")
        ids.update(found)
    # sub-categories (two levels are enough for the seeded rules; loop for deeper trees)
    frontier = set(ids)
    while frontier:
        children = set(Category.objects.filter(parent__in=frontier).values_list("id", flat=True))
        frontier = children - ids
        ids |= children
    return sorted(ids)


# ====================================================================== scope
def scope_key(scope: Scope) -> str:
    """A canonical string for a scope (equal scopes share cached tiles)."""
    if scope.everything:
        return "all"
    parts = []
    for name in (
        "street_ids",
        "community_ids",
        "grid_ids",
        "compound_ids",
        "building_ids",
        "unit_ids",
        "unit_building_ids",
    ):
        ids = getattr(scope, name)
        if ids:
            parts.append(f"{name.removesuffix('_ids')}:{','.join(map(str, sorted(ids)))}")
    return ";".join(parts) or "none"


def grid_scope(grid_id: int) -> Scope:
    """The scope of one grid (what a grid member of it sees): offline packages."""
    return Scope(grid_ids={grid_id})


def covers_grid(scope: Scope, grid: Grid) -> bool:
    """Whether ``scope`` holds the *whole* grid (street, community or the grid itself); a
    building or unit head sees part of a grid and gets no package of all of it."""
    if scope.everything or grid.id in scope.grid_ids:
        return True
    if grid.community_id in scope.community_ids:
        return True
    return bool(scope.street_ids) and grid.community.street_id in scope.street_ids


def whole_grid_ids(scope: Scope) -> QuerySet:
    """Ids of the grids ``scope`` holds whole (see :func:`covers_grid`), as a subquery."""
    qs = Grid.objects.all()
    if not scope.everything:
        qs = qs.filter(
            Q(id__in=scope.grid_ids)
            | Q(community_id__in=scope.community_ids)
            | Q(community__street_id__in=scope.street_ids)
        )
    return qs.values("id")


# ====================================================================== SQL helpers
class MVTGeom(Func):
    """``ST_AsMVTGeom(ST_Simplify(ST_Transform(geom, 3857), tol, true), ST_TileEnvelope(z, x, y),
    4096, 64, true)`` — simplification skipped for points (tol 0)."""

    def __init__(
        self,
        expression: Any,
        z: int,
        x: int,
        y: int,
        tolerance: float,
        affine: tuple[float, ...] | None = None,
    ) -> None:
        from django.contrib.gis.db.models import GeometryField

        self.tile = (int(z), int(x), int(y))
        self.tolerance = float(tolerance)
        self.affine = affine
        super().__init__(expression, output_field=GeometryField(srid=3857))

    def as_sql(self, compiler, connection, **extra):  # type: ignore[no-untyped-def, override]
        sql, params = compiler.compile(self.source_expressions[0])
        geom = f"ST_Transform({shifted_sql(sql, self.affine)}, 3857)"
        if self.tolerance > 0:
            geom = f"ST_Simplify({geom}, {self.tolerance!r}, true)"
        z, x, y = self.tile
        return (
            f"ST_AsMVTGeom({geom}, ST_TileEnvelope({z}, {x}, {y}), {EXTENT}, {BUFFER}, true)",
            params,
        )


def shifted_sql(sql: str, affine: tuple[float, ...] | None) -> str:
    """``sql`` (a WGS84 geometry) moved to GCJ-02 by the tile's affine fit
    (:func:`geo.crs.gcj02_affine`), or unchanged without one."""
    if not affine:
        return sql
    a, b, d, e, xoff, yoff = (float(v) for v in affine)
    return f"ST_Affine({sql}, {a!r}, {b!r}, {d!r}, {e!r}, {xoff!r}, {yoff!r})"


def tile_geometry(z: int, x: int, y: int, crs: str, margin_m: float = 0.0):  # type: ignore[no-untyped-def]
    """(WGS84 envelope to select rows by, affine WGS84 → tile CRS or None) of tile z/x/y in
    the web-mercator grid of ``crs``. For GCJ-02 the tile is the same square of the GCJ-02
    mercator plane Amap uses; the rows under it are found by its WGS84 box, and drawn moved
    by the affine map fitted to GCJ-02 over that box (error < 0.2 m from zoom 14)."""
    env = tile_envelope_4326(z, x, y, margin_m)
    if crs != "gcj02":
        return env, None
    wgs = geocrs.gcj02_box_to_wgs84(env.extent)
    affine, _err = geocrs.gcj02_affine(wgs)
    return box_4326(*wgs), affine


class Simplified(Func):
    """``ST_SimplifyPreserveTopology(geom, tolerance)`` (degrees); the geometry itself at 0."""

    def __init__(self, expression: Any, tolerance: float, multi: bool = False) -> None:
        from django.contrib.gis.db.models import GeometryField

        self.tolerance = float(tolerance)
        self.multi = multi
        super().__init__(expression, output_field=GeometryField(srid=4326))

    def as_sql(self, compiler, connection, **extra):  # type: ignore[no-untyped-def, override]
        sql, params = compiler.compile(self.source_expressions[0])
        if self.tolerance > 0:
            sql = f"ST_SimplifyPreserveTopology({sql}, {self.tolerance!r})"
            if self.multi:
                sql = f"ST_Multi({sql})"
        return sql, params


class AgeDays(Func):
    template = "floor(extract(epoch from (now() - %(expressions)s)) / 86400)::int"
    output_field = IntegerField()


class MercX(Func):
    template = f"(ST_X(%(expressions)s) * {ORIGIN_SHIFT!r} / 180.0)"

    def __init__(self, expression: Any) -> None:
        from django.db.models import FloatField

        super().__init__(expression, output_field=FloatField())


class MercY(Func):
    template = (
        "(ln(tan(radians(90.0 + least(85.0511287798066, greatest(-85.0511287798066, "
        f"ST_Y(%(expressions)s)))) / 2.0)) * {EARTH_RADIUS_3857!r})"
    )

    def __init__(self, expression: Any) -> None:
        from django.db.models import FloatField

        super().__init__(expression, output_field=FloatField())


def mercator_to_lonlat(x: float, y: float) -> tuple[float, float]:
    lon = x / ORIGIN_SHIFT * 180.0
    lat = math.degrees(2.0 * math.atan(math.exp(y / EARTH_RADIUS_3857)) - math.pi / 2.0)
    return lon, lat


def box_4326(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    poly = Polygon.from_bbox((x0, y0, x1, y1))
    poly.srid = 4326
    return poly


def tile_envelope_4326(z: int, x: int, y: int, margin_m: float = 0.0) -> Polygon:
    """The tile's envelope (widened by ``margin_m`` EPSG:3857 metres) in WGS84 — mercator maps
    axis-aligned boxes to axis-aligned boxes, so this is exact."""
    bx0, by0, bx1, by1 = tile_bounds_3857(z, x, y)
    lon0, lat0 = mercator_to_lonlat(
        max(-ORIGIN_SHIFT, bx0 - margin_m), max(-ORIGIN_SHIFT, by0 - margin_m)
    )
    lon1, lat1 = mercator_to_lonlat(
        min(ORIGIN_SHIFT, bx1 + margin_m), min(ORIGIN_SHIFT, by1 + margin_m)
    )
    return box_4326(lon0, lat0, lon1, lat1)


def hex_cells_sql(points_sql: str, size: float) -> str:
    """SQL selecting ``(i, j)`` of the ``ST_HexagonGrid(size, …)`` hexagon holding each row of
    ``points_sql`` (columns ``x``, ``y`` in EPSG:3857), by arithmetic: the nearer of the two
    candidate column centres. ``ST_Hexagon(size, i, j)`` is that cell's polygon.

    Float8 literals throughout (no numeric arithmetic), and ``OFFSET 0`` fences so that the
    planner computes each step once per point instead of inlining the expressions."""
    w = f"{1.5 * size!r}::float8"
    h = f"{size * math.sqrt(3.0)!r}::float8"
    h2 = f"{size * math.sqrt(3.0) / 2.0!r}::float8"
    return f"""
SELECT CASE WHEN da <= db THEN i0 ELSE i0 + 1 END AS i,
       CASE WHEN da <= db THEN ja ELSE jb END AS j
FROM (
  SELECT i0, ja, jb,
         (x - {w} * i0) ^ 2 + (y - {h} * ja - oa) ^ 2 AS da,
         (x - {w} * (i0 + 1)) ^ 2 + (y - {h} * jb - ob) ^ 2 AS db
  FROM (
    SELECT x, y, i0, oa, ob, round((y - oa) / {h})::int AS ja, round((y - ob) / {h})::int AS jb
    FROM (
      SELECT x, y, i0,
             CASE WHEN mod(i0, 2) <> 0 THEN {h2} ELSE 0::float8 END AS oa,
             CASE WHEN mod(i0 + 1, 2) <> 0 THEN {h2} ELSE 0::float8 END AS ob
      FROM (SELECT x, y, floor(x / {w})::int AS i0 FROM ({points_sql}) p0 OFFSET 0) p1
      OFFSET 0
    ) p2
    OFFSET 0
  ) p3
  OFFSET 0
) p4"""


# ====================================================================== layers
@dataclass
class LayerQuery:
    """Filters of a layer request (already validated)."""

    since: datetime | None = None
    until: datetime | None = None
    categories: list[int] | None = None
    statuses: list[str] | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    #: no default window (the visits layer's last 90 days): the caller gives its own
    #: (OGC ``datetime``) or asks for one feature by id
    all_time: bool = False
    #: leave out what changes with the clock alone (case age, overdue): offline packages,
    #: whose bytes and ETag must change only when the data does (the phone has ``due``)
    timeless: bool = False
    #: the tile grid and coordinates of tiles: ``wgs84`` or ``gcj02`` (:data:`TILE_CRS`)
    crs: str = "wgs84"

    def key(self) -> str:
        return repr(
            (
                *((self.crs,) if self.crs != "wgs84" else ()),
                self.timeless,
                self.since.isoformat() if self.since else None,
                self.until.isoformat() if self.until else None,
                self.categories,
                self.statuses,
                sorted(self.filters.items()),
            )
        )


@dataclass(frozen=True)
class Prop:
    """One property of a layer, declared once. Tiles, GeoJSON and OGC API items show the
    ``map`` properties; exports (:mod:`gridsvc.dataio.export`) write the ``export`` ones as
    columns. ``sensitive`` names the :mod:`gridsvc.chain.visibility` attribute the value
    reveals: a tier that may not know it gets no such column, and a scope mixing staff and
    neighbour grants gets ``blank`` outside its staff part."""

    name: str
    #: ``integer`` | ``number`` | ``string`` | ``boolean`` | ``datetime``
    type: str
    label: str
    #: a field path, an ORM expression, or a function returning one (imports deferred)
    expr: Any
    map: bool = True
    export: bool = False
    #: the column's name in exported files, when it is not ``name`` (shapefile: ≤ 10 chars)
    column: str | None = None
    #: changes with the clock alone: left out of timeless queries (offline packages)
    clock: bool = False
    sensitive: str | None = None
    blank: Any = None

    def expression(self) -> Any:
        if isinstance(self.expr, str):
            return F(self.expr)
        if callable(self.expr) and not hasattr(self.expr, "resolve_expression"):
            return self.expr()
        return self.expr

    @property
    def column_name(self) -> str:
        return self.column or self.name


@dataclass(frozen=True)
class Filter:
    """A query parameter of a layer. The API's serializers parse it from ``type`` (``id``,
    ``text``, ``bool``, ``choice``, ``since``, ``until``, ``categories``, ``statuses``);
    ``path`` is the field it filters (the window and case filters have their own)."""

    name: str
    type: str
    description: str
    path: str | None = None
    choices: tuple[str, ...] = ()
    #: other names the GeoJSON layers and tiles accept (not OGC API)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Built:
    """A layer's scoped, filtered queryset: the geometry to draw and the properties."""

    qs: QuerySet
    geom: str  # field path of the geometry (for bbox lookups and drawing)
    props: dict[str, Any] = field(default_factory=dict)  # property name → expression
    temporal: str | None = None  # field path for OGC datetime
    fid: Any = "pk"
    #: expressions replacing a property's own (households aggregated per building)
    overrides: dict[str, Any] = field(default_factory=dict)
    #: the build applied the layer's filters itself
    filtered: bool = False


@dataclass(frozen=True)
class LayerDef:
    name: str
    title: str
    description: str
    geometry_type: str
    minzoom: int
    props: tuple[Prop, ...]
    build: Callable[[Scope, LayerQuery, int | None], Built]
    filters: tuple[Filter, ...] = ()
    temporal: bool = False
    time_dependent: bool = False
    polygon: bool = False
    #: the order of rows in an export (default: the layer's own)
    export_order: tuple[str, ...] = ()

    @property
    def fields(self) -> dict[str, str]:
        """Map properties → type (tiles, GeoJSON, OGC API)."""
        return {p.name: p.type for p in self.props if p.map}

    @property
    def filter_descriptions(self) -> dict[str, str]:
        return {f.name: f.description for f in self.filters}

    @property
    def export_props(self) -> tuple[Prop, ...]:
        return tuple(p for p in self.props if p.export)

    @property
    def exported(self) -> bool:
        return bool(self.export_props)

    def tilejson_fields(self) -> dict[str, str]:
        kinds = {"integer": "Number", "number": "Number", "string": "String", "boolean": "Boolean"}
        return {k: kinds[v] for k, v in self.fields.items()}

    def query(self, scope: Scope, q: LayerQuery, zoom: int | None = None) -> Built:
        """The scoped, filtered rows with the map properties' expressions (``zoom``: of a
        tile; None for GeoJSON and OGC API)."""
        built = self.build(scope, q, zoom)
        if not built.filtered:
            built = replace(built, qs=apply_filters(built.qs, q, self.filters))
        props = {
            p.name: built.overrides.get(p.name, p.expression())
            for p in self.props
            if p.map and not (q.timeless and p.clock)
        }
        return replace(built, props=props)

    def rows(self, scope: Scope) -> tuple[QuerySet, str]:
        """(the scoped rows, the geometry's field path) for an export: every row of the
        caller's territory, unfiltered, one per feature."""
        built = self.build(scope, LayerQuery(all_time=True), None)
        qs = built.qs.order_by(*self.export_order) if self.export_order else built.qs
        return qs, built.geom


def apply_filters(qs: QuerySet, q: LayerQuery, filters: Iterable[Filter]) -> QuerySet:
    """``q.filters`` on the fields the declarations name."""
    for f in filters:
        value = q.filters.get(f.name)
        if f.path and value is not None:
            qs = qs.filter(**{f.path: value})
    return qs


def _grids(scope: Scope, q: LayerQuery, zoom: int | None) -> Built:
    return Built(scope.filter(Grid.objects.all()).order_by("code"), "boundary")


def _compounds(scope: Scope, q: LayerQuery, zoom: int | None) -> Built:
    return Built(scope.filter(Compound.objects.all()).order_by("code"), "boundary")


def _buildings(scope: Scope, q: LayerQuery, zoom: int | None) -> Built:
    return Built(scope.filter(Building.objects.all()).order_by("code"), "footprint")


def _households(scope: Scope, q: LayerQuery, zoom: int | None) -> Built:
    households = apply_filters(scope.filter(Household.objects.all()), q, HOUSEHOLD_FILTERS)
    if zoom is not None and zoom < HOUSEHOLD_DETAIL_ZOOM:
        # one point per building with the count of the caller's households in it
        qs = (
            Building.objects.filter(id__in=households.values("unit__building_id"))
            .annotate(
                n_households=Count(
                    "units__households",
                    filter=Q(units__households__in=households.values("id")),
                )
            )
            .order_by("code")
        )
        none = Value(None, output_field=IntegerField())
        overrides = {
            "building": F("code"),
            "households": F("n_households"),
            "unit": none,
            "room": none,
            "floor": none,
        }
        return Built(qs, "point", overrides=overrides, filtered=True)
    return Built(households.order_by("unit_id", "room"), "unit__building__point", filtered=True)


def _places(scope: Scope, q: LayerQuery, zoom: int | None) -> Built:
    return Built(scope.filter(Place.objects.all()).order_by("id"), "point")


def scoped_cases(scope: Scope, q: LayerQuery) -> QuerySet:
    """The caller's cases within the filters (window on ``reported_at``)."""
    from gridsvc.cases.models import Case

    qs = scope.filter(Case.objects.all())
    if q.since:
        qs = qs.filter(reported_at__gte=q.since)
    if q.until:
        qs = qs.filter(reported_at__lt=q.until)
    if q.categories is not None:
        qs = qs.filter(category_id__in=q.categories)
    if q.statuses is not None:
        qs = qs.filter(status__in=q.statuses)
    return apply_filters(qs, q, CASE_LAYER_FILTERS)


class UtcIso(Func):
    """A timestamptz as ``2026-11-30T03:00:00Z`` (text)."""

    template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    output_field = CharField()


def _cases(scope: Scope, q: LayerQuery, zoom: int | None) -> Built:
    qs = scoped_cases(scope, q).order_by("-reported_at", "-id")
    return Built(qs, "location", temporal="reported_at", filtered=True)


def _visits(scope: Scope, q: LayerQuery, zoom: int | None) -> Built:
    from gridsvc.visits.models import Visit

    qs = scope.filter(Visit.objects.all())
    since = q.since
    if since is None and q.until is None and not q.all_time:
        since = timezone.now() - timedelta(days=VISITS_DEFAULT_DAYS)
    if since:
        qs = qs.filter(client_time__gte=since)
    if q.until:
        qs = qs.filter(client_time__lt=q.until)
    qs = qs.order_by("-client_time", "-id")
    return Built(qs, "household__unit__building__point", temporal="client_time")


def _case_open() -> Any:
    from gridsvc.cases import figures

    return ExpressionWrapper(figures.OPEN, output_field=BooleanField())


def _case_overdue() -> Any:
    from gridsvc.cases import figures

    return When_(
        WhenClause(figures.overdue(Now()), then=Value(True)),
        default=Value(False),
        output_field=BooleanField(),
    )


_ID = "integer id of a grid/community/… in your territory"
#: the case filters of the cases layer, the heatmap and the choropleth
CASE_FILTERS: tuple[Filter, ...] = (
    Filter(
        "since", "since", "reported on/after (date or date-time; alias from)", aliases=("from",)
    ),
    Filter("until", "until", "reported on/before (date: inclusive; alias to)", aliases=("to",)),
    Filter(
        "category", "categories", "category codes or ids, comma-separated (with sub-categories)"
    ),
    Filter(
        "status",
        "statuses",
        "states, comma-separated, or open / done (alias state)",
        aliases=("state",),
    ),
    Filter("kind", "choice", "dispute or hazard", "kind", ("dispute", "hazard")),
)
CASE_LAYER_FILTERS: tuple[Filter, ...] = (*CASE_FILTERS, Filter("grid", "id", _ID, "grid_id"))
HOUSEHOLD_FILTERS: tuple[Filter, ...] = (
    Filter("grid", "id", _ID, "unit__building__grid_id"),
    Filter("building", "id", _ID, "unit__building_id"),
    Filter("unit", "id", _ID, "unit_id"),
)
LAYERS: dict[str, LayerDef] = {
    d.name: d
    for d in (
        LayerDef(
            "grids",
            "网格 grids",
            "Grid polygons with code and name.",
            "MultiPolygon",
            8,
            (
                Prop("code", "string", "网格编码 grid code", "code", export=True),
                Prop("name", "string", "名称 name", "name", export=True),
                Prop(
                    "community", "string", "社区编码 community code", "community__code", export=True
                ),
                Prop(
                    "micro",
                    "boolean",
                    "微网格 micro-grid",
                    ExpressionWrapper(Q(parent__isnull=False), output_field=BooleanField()),
                ),
                Prop(
                    "parent",
                    "string",
                    "上级网格 parent grid",
                    "parent__code",
                    map=False,
                    export=True,
                ),
                Prop(
                    "responsible_body",
                    "string",
                    "责任主体 responsible body",
                    "responsible_body",
                    map=False,
                    export=True,
                    column="resp_body",
                ),
            ),
            _grids,
            (
                Filter("community", "id", _ID, "community_id"),
                Filter("code", "text", "15-digit grid code", "code"),
            ),
            polygon=True,
        ),
        LayerDef(
            "compounds",
            "小区 compounds",
            "Compound polygons with code and name.",
            "MultiPolygon",
            11,
            (
                Prop("code", "string", "小区编码 compound code", "code", export=True),
                Prop("name", "string", "名称 name", "name", export=True),
                Prop(
                    "community",
                    "string",
                    "社区编码 community code",
                    "community__code",
                    map=False,
                    export=True,
                ),
                Prop(
                    "property_company",
                    "string",
                    "物业公司 property company",
                    "property_company",
                    map=False,
                    export=True,
                    column="property",
                ),
            ),
            _compounds,
            (
                Filter("community", "id", _ID, "community_id"),
                Filter("code", "text", "compound code", "code"),
            ),
            polygon=True,
        ),
        LayerDef(
            "buildings",
            "楼栋 buildings",
            "Building footprints.",
            "MultiPolygon",
            13,
            (
                Prop("code", "string", "楼栋编码 building code", "code", export=True),
                Prop("name", "string", "名称 name", "name", export=True),
                Prop("address", "string", "地址 address", "address", map=False, export=True),
                Prop("floors", "integer", "层数 floors", "floors", export=True),
                Prop("grid", "integer", "网格 id grid id", "grid_id"),
                Prop("compound", "integer", "小区 id compound id", "compound_id"),
                Prop(
                    "grid_code",
                    "string",
                    "网格编码 grid code",
                    "grid__code",
                    map=False,
                    export=True,
                ),
                Prop(
                    "compound_code",
                    "string",
                    "小区编码 compound code",
                    "compound__code",
                    map=False,
                    export=True,
                    column="compound",
                ),
                Prop(
                    "households",
                    "integer",
                    "户数 households",
                    lambda: Count("units__households"),
                    map=False,
                    export=True,
                ),
            ),
            _buildings,
            (
                Filter("grid", "id", _ID, "grid_id"),
                Filter("compound", "id", _ID, "compound_id"),
                Filter("code", "text", "building code", "code"),
            ),
            polygon=True,
        ),
        LayerDef(
            "households",
            "户 households",
            "Households at their building; in tiles below zoom "
            f"{HOUSEHOLD_DETAIL_ZOOM} one point per building with the count. "
            "No names, no residents, no tags.",
            "Point",
            14,
            (
                Prop("hh_id", "integer", "户 id household id", "id", map=False, export=True),
                Prop(
                    "building",
                    "string",
                    "楼栋编码 building code",
                    "unit__building__code",
                    export=True,
                ),
                Prop("households", "integer", "户数 households", Value(1)),
                Prop("unit", "string", "单元 unit", "unit__number", export=True, column="unit_no"),
                Prop("room", "string", "房号 room", "room", export=True),
                Prop("floor", "integer", "楼层 floor", "floor", export=True),
                # 廉租房 reveals an income/assistance status
                Prop(
                    "tenure",
                    "string",
                    "住房性质 tenure",
                    "tenure",
                    map=False,
                    export=True,
                    sensitive=LOW_INCOME,
                    blank="",
                ),
                Prop(
                    "grid_code",
                    "string",
                    "网格编码 grid code",
                    "unit__building__grid__code",
                    map=False,
                    export=True,
                ),
                Prop(
                    "residents",
                    "integer",
                    "人数 residents",
                    lambda: Count("residents"),
                    map=False,
                    export=True,
                ),
            ),
            _households,
            HOUSEHOLD_FILTERS,
            export_order=("id",),
        ),
        LayerDef(
            "places",
            "场所 places",
            "Places of interest (religious venues, schools, clinics, service centres).",
            "Point",
            10,
            (
                Prop("kind", "string", "类别 kind", "kind", export=True),
                Prop("name", "string", "名称 name", "name", export=True),
                Prop("address", "string", "地址 address", "address", map=False, export=True),
                Prop("grid", "integer", "网格 id grid id", "grid_id"),
                Prop(
                    "grid_code",
                    "string",
                    "网格编码 grid code",
                    "grid__code",
                    map=False,
                    export=True,
                ),
            ),
            _places,
            (
                Filter("kind", "choice", "place kind", "kind", tuple(Place.Kind.values)),
                Filter("grid", "id", _ID, "grid_id"),
            ),
        ),
        LayerDef(
            "cases",
            "案件 cases",
            "Cases with state, category and age (no titles, parties or descriptions).",
            "Point",
            10,
            # free text (title, description, parties, outcome) may name people: never here
            (
                Prop("case_id", "integer", "案件 id case id", "id", map=False, export=True),
                Prop("number", "string", "案件编号 case number", "number", map=False, export=True),
                Prop("status", "string", "状态 state", "status", export=True),
                Prop("open", "boolean", "未结 open", _case_open),
                Prop("overdue", "boolean", "超期 overdue", _case_overdue, clock=True),
                Prop("category", "string", "类别编码 category code", "category__code", export=True),
                Prop("kind", "string", "类型 kind (dispute/hazard)", "kind", export=True),
                Prop(
                    "priority", "integer", "紧急程度 priority", "priority", map=False, export=True
                ),
                Prop("level", "string", "层级 chain level", "level", export=True),
                Prop("card", "string", "督办牌 card", "card"),
                Prop(
                    "age_days",
                    "integer",
                    "已过天数 age in days",
                    lambda: AgeDays(F("reported_at")),
                    clock=True,
                ),
                Prop("reported", "string", "上报日期 reported on", "reported_at__date"),
                # the running stage's deadline, UTC ISO 8601 (a phone offline works out "overdue")
                Prop("due", "string", "期限 due (UTC)", lambda: UtcIso(F("due_at"))),
                Prop(
                    "grid_code",
                    "string",
                    "网格编码 grid code",
                    "grid__code",
                    map=False,
                    export=True,
                ),
                Prop(
                    "reported_at",
                    "datetime",
                    "上报时间 reported at",
                    "reported_at",
                    map=False,
                    export=True,
                ),
                Prop(
                    "resolved_at",
                    "datetime",
                    "化解时间 resolved at",
                    "resolved_at",
                    map=False,
                    export=True,
                ),
                Prop(
                    "closed_at",
                    "datetime",
                    "结案时间 closed at",
                    "closed_at",
                    map=False,
                    export=True,
                ),
                # 涉及民族宗教因素: not for the neighbour tier
                Prop(
                    "ethnic_religious",
                    "boolean",
                    "涉及民族宗教因素 ethnic/religious factor",
                    "ethnic_religious",
                    map=False,
                    export=True,
                    sensitive=ETHNICITY,
                ),
                Prop(
                    "group_incident",
                    "boolean",
                    "群体性事件 group incident",
                    "group_incident",
                    map=False,
                    export=True,
                ),
                Prop(
                    "petition_risk",
                    "boolean",
                    "信访风险 petition risk",
                    "petition_risk",
                    map=False,
                    export=True,
                ),
            ),
            _cases,
            CASE_LAYER_FILTERS,
            temporal=True,
            time_dependent=True,
            export_order=("id",),
        ),
        LayerDef(
            "visits",
            "走访 visits",
            "Visits drawn at the visited household's building (no GPS tracks, no names); "
            f"last {VISITS_DEFAULT_DAYS} days unless since/until are given.",
            "Point",
            10,
            (
                Prop("day", "string", "走访日期 day", "client_time__date"),
                Prop(
                    "building",
                    "string",
                    "楼栋编码 building code",
                    "household__unit__building__code",
                ),
                Prop("far_off", "boolean", "远离住户 far off", "far_off"),
                Prop("accuracy", "string", "定位精度 accuracy grade", "accuracy_grade"),
                Prop(
                    "task",
                    "boolean",
                    "任务走访 for a task",
                    ExpressionWrapper(Q(task__isnull=False), output_field=BooleanField()),
                ),
            ),
            _visits,
            (
                Filter("since", "since", "visited on/after", aliases=("from",)),
                Filter("until", "until", "visited on/before (date: inclusive)", aliases=("to",)),
                Filter("far_off", "bool", "true/false", "far_off"),
                Filter("grid", "id", _ID, "household__unit__building__grid_id"),
            ),
            temporal=True,
            time_dependent=True,
        ),
    )
}
TILE_LAYERS = tuple(LAYERS) + ("heatmap",)
#: the layers an export (:mod:`gridsvc.dataio.export`) can write
EXPORT_LAYERS = tuple(name for name, d in LAYERS.items() if d.exported)


def register_layer(layer: LayerDef) -> None:
    """Add a layer another app declares to the registry, from that app's ``AppConfig.ready``
    (issue 21's 应保尽保 layer: gridsvc/assistance/layer.py): tiles, GeoJSON, OGC API, the
    layer list and exports then serve it like the layers above."""
    global TILE_LAYERS, EXPORT_LAYERS
    LAYERS[layer.name] = layer
    TILE_LAYERS = tuple(LAYERS) + ("heatmap",)
    EXPORT_LAYERS = tuple(name for name, d in LAYERS.items() if d.exported)


def layer_def(name: str) -> LayerDef:
    try:
        return LAYERS[name]
    except KeyError:
        raise ParamError("layer", f"unknown layer {name!r}: one of {', '.join(LAYERS)}") from None


def layer_query(layer: LayerDef | None, values: Mapping[str, Any]) -> LayerQuery:
    """A :class:`LayerQuery` from parsed filter values of ``layer`` (None: the case filters
    of the heatmap and the choropleth): states expanded, categories looked up."""
    q = LayerQuery()
    for f in layer.filters if layer else CASE_FILTERS:
        value = values.get(f.name)
        if value is None:
            continue
        if f.type == "since":
            q.since = value
        elif f.type == "until":
            q.until = value
        elif f.type == "categories":
            q.categories = case_categories(value, f.name)
        elif f.type == "statuses":
            q.statuses = case_statuses(value)
        else:
            q.filters[f.name] = value
    return q


#: the empty query of a layer (offline packages, benchmarks)
def parse_layer_query(layer: LayerDef | None, params: Mapping[str, Any]) -> LayerQuery:
    return layer_query(layer, params)


# ====================================================================== tiles
@dataclass
class Tile:
    gz: bytes
    etag: str
    created_at: datetime
    size: int
    features: int
    cached: bool
    max_age: int

    @property
    def data(self) -> bytes:
        """The tile's MVT bytes (``gz`` unzipped; the last few kept by ETag, which names
        the bytes: a client that takes no gzip is not served a gunzip per request)."""
        if not self.gz:
            return b""
        raw = _UNZIPPED.get(self.etag)
        if raw is None:
            raw = gzip.decompress(self.gz)
            if len(raw) <= _UNZIPPED_MAX_BYTES:
                if len(_UNZIPPED) >= _UNZIPPED_MAX:
                    try:  # the oldest (another thread may be at it too)
                        del _UNZIPPED[next(iter(_UNZIPPED))]
                    except (StopIteration, KeyError, RuntimeError):
                        pass
                _UNZIPPED[self.etag] = raw
        return raw


#: the unzipped bytes of the last tiles served raw, by ETag (:attr:`Tile.data`; per process)
_UNZIPPED: dict[str, bytes] = {}
_UNZIPPED_MAX = 64
_UNZIPPED_MAX_BYTES = 128 * 1024


def valid_tile(z: Any, x: Any, y: Any) -> bool:
    """Whether :func:`check_tile` would pass."""
    if not all(type(v) is int for v in (z, x, y)) or not 0 <= z <= MAX_ZOOM:
        return False
    n = 1 << z
    return 0 <= x < n and 0 <= y < n


def check_tile(z: int, x: int, y: int) -> None:
    if not 0 <= z <= MAX_ZOOM:
        raise ParamError("z", f"zoom must be between 0 and {MAX_ZOOM}")
    n = 1 << z
    if not 0 <= x < n:
        raise ParamError("x", f"must be between 0 and {n - 1} at zoom {z}")
    if not 0 <= y < n:
        raise ParamError("y", f"must be between 0 and {n - 1} at zoom {z}")


def _layer_tile_sql(layer: LayerDef, scope: Scope, q: LayerQuery, z: int, x: int, y: int):  # type: ignore[no-untyped-def]
    """(sql, params, bounds) of one layer's tile: a single statement returning the MVT."""
    built = layer.query(scope, q, z)
    span = 2.0 * ORIGIN_SHIFT / (1 << z)
    env, affine = tile_geometry(z, x, y, q.crs, margin_m=span * BUFFER / EXTENT)
    tol = span / EXTENT if layer.polygon else 0.0
    annotations = {f"f_{k}": v for k, v in built.props.items()}
    qs = (
        built.qs.filter(**{f"{built.geom}__bboverlaps": env})
        .annotate(
            fid=F(built.fid), fgeom=MVTGeom(F(built.geom), z, x, y, tol, affine), **annotations
        )
        .values("fid", "fgeom", *annotations)
    )[:FEATURE_CAP]
    inner, params = qs.query.sql_with_params()
    cols = ", ".join(f'q."f_{k}" AS "{k}"' for k in built.props)
    sql = (
        "SELECT ST_AsMVT(t.*, %s, 4096, 'geom', 'id'), count(*) FROM ("
        f'SELECT q."fid" AS id, q."fgeom" AS geom, {cols} FROM ({inner}) q'
        ' WHERE q."fgeom" IS NOT NULL) t'
    )
    return sql, (layer.name, *params), env


def _heatmap_points_sql(scope: Scope, q: LayerQuery, env: Polygon) -> tuple[str, tuple]:
    qs = (
        scoped_cases(scope, q)
        .filter(location__bboverlaps=env)
        .order_by()
        .annotate(x=MercX(F("location")), y=MercY(F("location")))
        .values("x", "y")
    )
    inner, params = qs.query.sql_with_params()
    return inner, tuple(params)


def _heatmap_tile_sql(scope: Scope, q: LayerQuery, z: int, x: int, y: int):  # type: ignore[no-untyped-def]
    size = hex_size_for_zoom(z)
    env, affine = tile_geometry(z, x, y, q.crs, margin_m=2.0 * size)
    points, params = _heatmap_points_sql(scope, q, env)
    hexagon = f"ST_SetSRID(ST_Hexagon({size!r}, c.i, c.j), 3857)"
    if affine:  # cells are binned on WGS84 mercator and drawn moved to GCJ-02
        hexagon = f"ST_Transform({shifted_sql(f'ST_Transform({hexagon}, 4326)', affine)}, 3857)"
    sql = f"""
SELECT ST_AsMVT(t.*, 'heatmap', 4096, 'geom'), count(*) FROM (
  SELECT ST_AsMVTGeom({hexagon}, ST_TileEnvelope({z}, {x}, {y}), 4096, 64, true)
           AS geom, c.n AS count, c.i, c.j
  FROM (SELECT i, j, count(*)::int AS n FROM ({hex_cells_sql(points, size)}) cells GROUP BY i, j OFFSET 0) c
  WHERE {hexagon} && ST_TileEnvelope({z}, {x}, {y}, margin => {BUFFER / EXTENT!r})
) t WHERE t.geom IS NOT NULL"""
    return sql, params, env


def tile_variant(scope: Scope, q: LayerQuery, layer: str) -> str:
    raw = f"{layer}|{scope_key(scope)}|{q.key()}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def _etag(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def build_tile(
    layer: str, z: int, x: int, y: int, scope: Scope, q: LayerQuery
) -> tuple[bytes, int, Polygon]:
    """Build one tile in PostGIS, bypassing the cache: (mvt bytes, features, bounds)."""
    check_tile(z, x, y)
    try:
        if layer == "heatmap":
            sql, params, env = _heatmap_tile_sql(scope, q, z, x, y)
        else:
            ldef = layer_def(layer)
            if z < ldef.minzoom or scope.empty:
                return b"", 0, tile_geometry(z, x, y, q.crs)[0]
            sql, params, env = _layer_tile_sql(ldef, scope, q, z, x, y)
    except EmptyResultSet:
        # the scope selects nothing of this layer (e.g. a unit head has no compound): Django
        # knows before any SQL is written; the tile is empty, not an error
        return b"", 0, tile_geometry(z, x, y, q.crs)[0]
    if scope.empty:
        return b"", 0, env
    with read_connection().cursor() as cur:
        cur.execute(sql, params)
        data, n = cur.fetchone()
    return bytes(data or b""), int(n or 0), env


# the ETags the client holds (If-None-Match) as one text parameter, split in SQL: the tags
# never hold a comma (the header is split on commas), and a text is cheaper to send than an
# array (psycopg inspects a list's items to type it, on every request)
_KNOWN = "string_to_array(%(known)s::text, ',')"
_TILE_LOOKUP = (
    f"SELECT CASE WHEN etag = ANY({_KNOWN}) THEN NULL ELSE data END, etag, created_at,"
    " size, features FROM layers_tilecache"
    " WHERE layer = %(layer)s AND z = %(z)s AND x = %(x)s AND y = %(y)s"
    " AND variant = %(variant)s AND expires_at > now()"
)


# the cached variants of a tile whose ETag the client holds (If-None-Match), no bytes: sent
# with the caller's query (gridsvc.accounts.authentication.Rider), a revalidation is one
# statement; which variant is the caller's is decided in Python (tile_variant), not in SQL
_TILE_HELD = (
    "SELECT array_agg(variant), array_agg(etag), array_agg(created_at), array_agg(size),"
    " array_agg(features) FROM layers_tilecache"
    " WHERE layer = %(layer)s AND z = %(z)s AND x = %(x)s AND y = %(y)s"
    f" AND etag = ANY({_KNOWN}) AND expires_at > now()"
)


def held_tile_statement(
    layer: str, z: int, x: int, y: int, known: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """The statement whose row :func:`get_tile` takes as ``held``: the tile's cached
    variants among the ETags the client holds (a 304 without a lookup of its own)."""
    return _TILE_HELD, {"layer": layer, "z": z, "x": x, "y": y, "known": ",".join(known)}


# The variant (tile_variant: the caller's scope and the query) a client's last tile of a
# layer had, by the client's credentials (the Authorization header): a phone's next tile is
# most likely of the same variant, so the cache row of that variant — bytes, or none when
# its ETag is among those the client holds — rides with the caller's query
# (:func:`guessed_tile_statement`) and a cached tile, 200 or 304, is one statement (issue 19:
# it was two for a 200). The row is used only when the variant of the authenticated caller
# is the one guessed (:func:`get_tile`); otherwise the tile is looked up as before. Bounded;
# a full table is emptied, not grown.
_GUESSES: dict[tuple[str, str], str] = {}
_GUESSES_MAX = 10_000


def guessed_variant(client: str, layer: str) -> str | None:
    """The variant of ``client``'s last tile of ``layer`` in this process (None: none yet)."""
    return _GUESSES.get((client, layer))


def _remember_variant(client: str, layer: str, variant: str) -> None:
    if len(_GUESSES) >= _GUESSES_MAX:
        _GUESSES.clear()
    _GUESSES[(client, layer)] = variant


def guessed_tile_statement(
    layer: str, z: int, x: int, y: int, known: Sequence[str], variant: str
) -> tuple[str, dict[str, Any]]:
    """The statement whose row :func:`get_tile` takes as ``guess``: the cache row of the tile
    for ``variant``, without its bytes when the client holds its ETag (``known``)."""
    return _TILE_LOOKUP, {
        "known": ",".join(known), "layer": layer, "z": z, "x": x, "y": y, "variant": variant
    }  # fmt: skip


def get_tile(
    layer: str,
    z: int,
    x: int,
    y: int,
    scope: Scope,
    q: LayerQuery,
    *,
    use_cache: bool = True,
    known: Sequence[str] = (),
    held: tuple | None = None,
    client: str | None = None,
    guess: tuple[str, tuple | None] | None = None,
) -> Tile:
    """The tile from the cache, or built and cached. ``known``: the ETags the client holds
    (If-None-Match); when the cached tile is one of them its bytes are not read (``gz`` is
    empty: the answer is a 304). ``held``: the row of :func:`held_tile_statement` for the
    same tile and ``known``, read already (this scope's variant among them is the 304).
    ``client``: the caller's credentials, to remember the variant by
    (:func:`guessed_variant`); ``guess``: ``(variant guessed, the row of
    :func:`guessed_tile_statement` for it)``, read already — used when the variant is this
    scope's."""
    check_tile(z, x, y)
    time_dependent = layer == "heatmap" or (layer in LAYERS and LAYERS[layer].time_dependent)
    max_age = HTTP_MAX_AGE if not time_dependent else HTTP_MAX_AGE // 2
    variant = tile_variant(scope, q, layer)
    if client is not None and (guess is None or guess[0] != variant):
        _remember_variant(client, layer, variant)
    if use_cache and guess is not None and guess[0] == variant:
        row = guess[1]  # the cache row of this variant, read with the caller (None: none)
    elif use_cache and held is not None and held[0] and variant in held[0]:
        i = held[0].index(variant)
        return Tile(b"", held[1][i], held[2][i], held[3][i], held[4][i], True, max_age)
    elif use_cache:
        # a prepared statement (gridsvc.prepared): a tile whose variant was not guessed
        # (the client's first of the layer) runs it
        row = fetchone(
            _TILE_LOOKUP,
            {"known": ",".join(known), "layer": layer, "z": z, "x": x, "y": y, "variant": variant},
            alias=read_alias(),
        )
    if use_cache:
        if row:
            gz = bytes(row[0]) if row[0] is not None else b""
            return Tile(gz, row[1], row[2], row[3], row[4], True, max_age)
    raw, n, bounds = build_tile(layer, z, x, y, scope, q)
    gz = gzip.compress(raw, 6, mtime=0) if raw else b""
    # a GCJ-02 tile has its own ETag even where it is empty like its WGS84 twin
    etag = _etag(raw if q.crs == "wgs84" else q.crs.encode() + b"|" + raw)
    now = timezone.now()
    if use_cache:
        ttl = TTL_TIME_DEPENDENT if time_dependent else TTL_STATIC
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO layers_tilecache (layer, z, x, y, variant, data, size, features, etag,"
                " bounds, created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " ST_GeomFromEWKB(%s), %s, %s)"
                " ON CONFLICT (layer, z, x, y, variant) DO UPDATE SET data = EXCLUDED.data,"
                " size = EXCLUDED.size, features = EXCLUDED.features, etag = EXCLUDED.etag,"
                " bounds = EXCLUDED.bounds, created_at = EXCLUDED.created_at,"
                " expires_at = EXCLUDED.expires_at",
                (
                    layer,
                    z,
                    x,
                    y,
                    variant,
                    gz,
                    len(raw),
                    n,
                    etag,
                    bytes(bounds.ewkb),
                    now,
                    now + ttl,
                ),
            )
    return Tile(gz, etag, now, len(raw), n, False, max_age)


def purge_expired_tiles() -> int:
    with connection.cursor() as cur:
        cur.execute("DELETE FROM layers_tilecache WHERE expires_at <= now()")
        return cur.rowcount


def scope_extent(scope: Scope) -> tuple[float, float, float, float] | None:
    """WGS84 extent of the caller's grids (for TileJSON bounds)."""
    from django.contrib.gis.db.models import Extent

    ext = scope.filter(Grid.objects.all()).aggregate(e=Extent("boundary"))["e"]
    if ext is None and not scope.empty:
        ext = scope.filter(Building.objects.all()).aggregate(e=Extent("footprint"))["e"]
    return tuple(ext) if ext else None  # type: ignore[return-value]


def tilejson(layer: str, scope: Scope, tiles_url: str, query: str = "", crs: str = "wgs84") -> dict:
    """TileJSON 3.0.0 for ``layer`` (``tiles_url`` is the absolute /tiles/ prefix); with
    ``crs="gcj02"`` the bounds and centre are GCJ-02 like the tiles."""
    if layer == "heatmap":
        fields = {"count": "Number", "i": "Number", "j": "Number"}
        minzoom, title, desc = 0, "案件热力 case heatmap", "Hexagon bins of cases with counts."
    else:
        ldef = layer_def(layer)
        fields, minzoom, title, desc = (
            ldef.tilejson_fields(),
            ldef.minzoom,
            ldef.title,
            ldef.description,
        )
    ext = scope_extent(scope) or (-180.0, -85.0511, 180.0, 85.0511)
    if crs != "wgs84":
        lo = geocrs.from_wgs84(ext[0], ext[1], crs)
        hi = geocrs.from_wgs84(ext[2], ext[3], crs)
        ext = (lo[0], lo[1], hi[0], hi[1])
    cx, cy = (ext[0] + ext[2]) / 2, (ext[1] + ext[3]) / 2
    suffix = f"?{query}" if query else ""
    return {
        "tilejson": "3.0.0",
        "name": layer,
        "description": desc,
        "attribution": "gridsvc",
        "scheme": "xyz",
        "crs": crs,
        "tiles": [f"{tiles_url}{layer}/{{z}}/{{x}}/{{y}}.mvt{suffix}"],
        "minzoom": minzoom,
        "maxzoom": MAX_ZOOM,
        "bounds": [round(v, 7) for v in ext],
        "center": [round(cx, 7), round(cy, 7), max(minzoom, 15)],
        "vector_layers": [
            {
                "id": layer,
                "description": f"{title}: {desc}",
                "minzoom": minzoom,
                "maxzoom": MAX_ZOOM,
                "fields": fields,
            }
        ],
    }


# ====================================================================== GeoJSON features
def tolerance_deg(zoom: float | None, tolerance_m: float | None) -> float:
    """Simplification tolerance in degrees: ``tolerance`` metres, or half a pixel at ``zoom``."""
    if tolerance_m is not None:
        return tolerance_m * DEG_PER_M
    if zoom is not None:
        return resolution_m_per_px(zoom) * 0.5 * DEG_PER_M
    return 0.0


def features_queryset(
    layer: LayerDef,
    scope: Scope,
    q: LayerQuery,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    datetime_range: tuple[datetime | None, datetime | None] = (None, None),
    tolerance: float = 0.0,
    feature_id: int | None = None,
) -> QuerySet:
    """Values rows ``{fid, geojson, f_<prop>…}`` of the layer (per household, never
    aggregated), ordered stably (for paging)."""
    built = layer.query(scope, q, None)
    qs = built.qs
    if bbox is not None:
        qs = qs.filter(**{f"{built.geom}__bboverlaps": box_4326(*bbox)})
    lo, hi = datetime_range
    if built.temporal:
        if lo:
            qs = qs.filter(**{f"{built.temporal}__gte": lo})
        if hi:
            qs = qs.filter(**{f"{built.temporal}__lt": hi})
    if feature_id is not None:
        qs = qs.filter(pk=feature_id)
    annotations = {f"f_{k}": v for k, v in built.props.items()}
    return (
        qs.annotate(
            fid=F(built.fid),
            geojson=AsGeoJSON(Simplified(F(built.geom), tolerance, layer.polygon), precision=7),
            **annotations,
        )
        .values("fid", "geojson", *annotations)
        .order_by("fid")
    )


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    return v


def row_to_feature(row: dict, props: Iterable[str], crs: str = "wgs84") -> dict:
    import orjson

    geom = orjson.loads(row["geojson"]) if row.get("geojson") else None
    if geom is not None and crs != "wgs84":
        geom = geocrs.transform_geojson_geometry(geom, "wgs84", crs)
    return {
        "type": "Feature",
        "id": row["fid"],
        "geometry": geom,
        "properties": {p: _json_value(row.get(f"f_{p}")) for p in props},
    }


# ====================================================================== heatmap
def heatmap(
    scope: Scope,
    q: LayerQuery,
    bbox: tuple[float, float, float, float],
    zoom: float,
    crs: str = "wgs84",
) -> dict:
    """Hexagon bins (GeoJSON FeatureCollection) of the caller's cases in the window.

    Hexagons are the cells of ``ST_HexagonGrid(hex_size_for_zoom(zoom))`` in EPSG:3857 that
    touch ``bbox`` and hold cases; each ``count`` is the number of cases in the whole cell
    (also outside the box), so counts do not change when the map is panned.
    """
    import orjson

    size = hex_size_for_zoom(zoom)
    x0, y0 = lonlat_to_3857(bbox[0], bbox[1])
    x1, y1 = lonlat_to_3857(bbox[2], bbox[3])
    lon0, lat0 = mercator_to_lonlat(x0 - 2 * size, y0 - 2 * size)
    lon1, lat1 = mercator_to_lonlat(x1 + 2 * size, y1 + 2 * size)
    features: list[dict] = []
    total = 0
    if not scope.empty:
        points, params = _heatmap_points_sql(scope, q, box_4326(lon0, lat0, lon1, lat1))
        sql = f"""
SELECT c.i, c.j, c.n, ST_AsGeoJSON(ST_Transform(ST_SetSRID(ST_Hexagon({size!r}, c.i, c.j), 3857), 4326), 7)
FROM (SELECT i, j, count(*)::int AS n FROM ({hex_cells_sql(points, size)}) cells GROUP BY i, j OFFSET 0) c
WHERE ST_SetSRID(ST_Hexagon({size!r}, c.i, c.j), 3857) && ST_MakeEnvelope(%s, %s, %s, %s, 3857)
ORDER BY c.i, c.j"""
        with connection.cursor() as cur:
            cur.execute(sql, (*params, x0, y0, x1, y1))
            rows = cur.fetchall()
        for i, j, n, gj in rows:
            geom = orjson.loads(gj)
            if crs != "wgs84":
                geom = geocrs.transform_geojson_geometry(geom, "wgs84", crs)
            features.append(
                {
                    "type": "Feature",
                    "id": f"{i}:{j}",
                    "geometry": geom,
                    "properties": {"count": n, "i": i, "j": j},
                }
            )
            total += n
    return {
        "type": "FeatureCollection",
        "features": features,
        "hex_size_m": size,
        "zoom": zoom,
        "total": total,
        "crs": crs,
        "since": q.since.isoformat() if q.since else None,
        "until": q.until.isoformat() if q.until else None,
    }


# ====================================================================== choropleth
def choropleth(scope: Scope, q: LayerQuery, *, tolerance: float = 0.0, crs: str = "wgs84") -> dict:
    """Per-grid figures for the caller's grids: cases reported in the window (filters apply)
    that are open, overdue (open and past ``due_at``), resolved (resolved, verified or closed),
    the resolution rate (resolved ÷ cases, void/merged not counted) and visits done in the
    window — each as :mod:`gridsvc.cases.figures` defines it."""
    import orjson

    from gridsvc.cases import figures
    from gridsvc.visits.models import Visit

    now = timezone.now()
    grids = list(
        scope.filter(Grid.objects.all())
        .order_by("code")
        .annotate(geojson=AsGeoJSON(Simplified(F("boundary"), tolerance, True), precision=7))
        .values("id", "code", "name", "geojson")
    )
    cases = (
        figures.counted(scoped_cases(scope, q))
        .exclude(grid__isnull=True)
        .order_by()
        .values("grid_id")
        .annotate(**figures.counts(now))
    )
    by_grid = {r["grid_id"]: r for r in cases}
    visits = scope.filter(Visit.objects.all())
    if q.since:
        visits = visits.filter(client_time__gte=q.since)
    if q.until:
        visits = visits.filter(client_time__lt=q.until)
    visit_counts = dict(
        visits.order_by()
        .values("household__unit__building__grid_id")
        .annotate(n=Count("id"))
        .values_list("household__unit__building__grid_id", "n")
    )
    features = []
    for g in grids:
        c = by_grid.get(g["id"], {})
        geom = orjson.loads(g["geojson"])
        if crs != "wgs84":
            geom = geocrs.transform_geojson_geometry(geom, "wgs84", crs)
        features.append(
            {
                "type": "Feature",
                "id": g["id"],
                "geometry": geom,
                "properties": {
                    "code": g["code"],
                    "name": g["name"],
                    "cases": c.get("total", 0),
                    "open": c.get("open", 0),
                    "overdue": c.get("overdue", 0),
                    "resolved": c.get("resolved", 0),
                    "resolution_rate": figures.resolution_rate(c),
                    "visits_done": visit_counts.get(g["id"], 0),
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "crs": crs,
        "since": q.since.isoformat() if q.since else None,
        "until": q.until.isoformat() if q.until else None,
        "computed_at": now.isoformat(),
    }


__all__ = [
    "LAYERS",
    "TILE_LAYERS",
    "CASE_FILTERS",
    "EXPORT_LAYERS",
    "Filter",
    "LayerDef",
    "Prop",
    "LayerQuery",
    "ParamError",
    "Tile",
    "build_tile",
    "check_tile",
    "choropleth",
    "covers_grid",
    "features_queryset",
    "get_tile",
    "grid_scope",
    "heatmap",
    "hex_cells_sql",
    "bbox_wgs84",
    "layer_query",
    "parse_instant",
    "parse_layer_query",
    "tile_crs",
    "row_to_feature",
    "scope_key",
    "tilejson",
]
