"""Reading a case report's inputs: the place (lon/lat in a CRS or a GeoJSON point), the
category (id or code), the version the caller saw (If-Match), the upload size limit."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.gis.geos import Point
from django.db import connection
from rest_framework.exceptions import ValidationError

from api import versions
from gridsvc.cases.models import (
    Category,
)

if TYPE_CHECKING:
    from gridsvc.cases.services.reporting import ReadAhead

MAX_PHOTO_BYTES = 10 * 1024 * 1024


def expected_version(request) -> int | None:  # type: ignore[no-untyped-def]
    """The case version the caller last saw (If-Match or ``version``)."""
    return versions.expected_version(request, "a case")


def point_from(data: dict, crs: str = "wgs84") -> Point | None:
    """A WGS84 point from ``lon``/``lat`` or a GeoJSON ``location`` in ``crs``."""
    from geo.crs import UnsupportedCRS, to_wgs84

    loc = data.get("location")
    lon, lat = data.get("lon"), data.get("lat")
    if isinstance(loc, dict):
        coords = loc.get("coordinates")
        if loc.get("type") != "Point" or not isinstance(coords, list | tuple) or len(coords) < 2:
            raise ValidationError({"location": "a GeoJSON Point {type, coordinates: [lon, lat]}"})
        lon, lat = coords[0], coords[1]
    elif loc not in (None, ""):
        raise ValidationError({"location": "a GeoJSON Point {type, coordinates: [lon, lat]}"})
    if lon in (None, "") and lat in (None, ""):
        return None
    try:
        lon_f, lat_f = float(lon), float(lat)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError({"location": "lon and lat must be numbers"}) from None
    if not (-180 <= lon_f <= 180 and -90 <= lat_f <= 90) or lon_f != lon_f or lat_f != lat_f:
        raise ValidationError({"location": "lon must be in [-180, 180] and lat in [-90, 90]"})
    try:
        lon_f, lat_f = to_wgs84(lon_f, lat_f, crs or "wgs84")
    except UnsupportedCRS as exc:
        raise ValidationError({"crs": str(exc)}) from None
    return Point(lon_f, lat_f, srid=4326)


_CATEGORY_SQL: dict[str, str] = {}  # by what finds it (id, code): built once per process


def _category_sql(by: str) -> str:
    """An active category by ``id`` or ``code`` with its parent (routing and the time limits
    read it), in one prepared statement: the columns of both, the parent's after the
    category's (notify as text, read as the JSONField reads it)."""
    if by not in _CATEGORY_SQL:
        cols = ", ".join(
            f'{{t}}."{f.column}"' + ("::text" if f.name == "notify" else "")
            for f in Category._meta.concrete_fields
        )
        table = Category._meta.db_table
        _CATEGORY_SQL[by] = (
            f"SELECT {cols.format(t='c')}, {cols.format(t='p')} "
            f'FROM "{table}" c LEFT JOIN "{table}" p ON p."id" = c."parent_id" '
            f'WHERE c."active" AND c."{by}" = %(value)s ORDER BY c."id" LIMIT 1'
        )
    return _CATEGORY_SQL[by]


def _category_row(values: tuple) -> Category:
    names = [f.attname for f in Category._meta.concrete_fields]
    row = dict(zip(names, values, strict=True))
    if isinstance(row["notify"], str):
        row["notify"] = json.loads(row["notify"])
    return Category.from_db(connection.alias, names, [row[n] for n in names])


def category_from(value: Any) -> Category:
    """The active category a report names (its id or code), its parent loaded with it."""
    from gridsvc.prepared import fetchone

    row = None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        row = fetchone(_category_sql("id"), {"value": int(value)})
    elif isinstance(value, str) and value:
        row = fetchone(_category_sql("code"), {"value": value})
    if row is None:
        raise ValidationError({"category": "unknown category (give its id or code)"})
    n = len(Category._meta.concrete_fields)
    found = _category_row(row[:n])
    parent = None if row[n] is None else _category_row(row[n:])
    found.parent = parent
    return found


_PLACE_SQL: dict[str, str] = {}  # by what finds the category (id, code): built once


def _category_and_place_sql(by: str) -> str:
    """:func:`_category_sql` and, beside it in ONE statement, what the report of a point reads
    next: the point's place and holders (:func:`gridsvc.chain.answer.point_ctes`), the time
    limits of the category and its ancestors (every stage and level; the rules pick), the
    clock of the place's street, and — ``%(draw)s``, the point in a grid and nobody to notify
    by the category's rules — the case's number and ids (:func:`draw_ahead_sql`). No row: no
    such active category (nothing drawn)."""
    if by not in _PLACE_SQL:
        from gridsvc.cases.services.deadlines import limit_rows_sql
        from gridsvc.cases.services.reporting import draw_ahead_sql
        from gridsvc.chain.answer import point_ctes
        from gridsvc.supervision.clock import WorkClock

        fields = Category._meta.concrete_fields
        n = len(fields)
        cols = ", ".join(f"k{i}" for i in range(2 * n))
        pk = next(i for i, f in enumerate(fields) if f.primary_key)
        table = Category._meta.db_table
        drawn = ",\n  ".join(f"CASE WHEN may_draw THEN {expr} END" for expr in draw_ahead_sql())
        clock = WorkClock.columns_sql("street").replace("%(street)s", "ch.street_id")
        _PLACE_SQL[by] = f"""WITH RECURSIVE {point_ctes("ch")},
cat({cols}) AS ({_category_sql(by)}),
anc(id, parent_id, notify) AS (
  SELECT k.id, k.parent_id, k.notify FROM "{table}" k, cat WHERE k.id = cat.k{pk}
  UNION SELECT k.id, k.parent_id, k.notify FROM "{table}" k JOIN anc ON k.id = anc.parent_id),
go AS (SELECT %(draw)s AND ch.grid_id IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM anc WHERE anc.notify IS NOT NULL AND anc.notify <> '[]'::jsonb)
       AS may_draw FROM ch)
SELECT cat.*, ch.*,
  {limit_rows_sql("t.category_id IN (SELECT id FROM anc)")},
  {clock},
  {drawn}
FROM cat, ch, go"""
    return _PLACE_SQL[by]


def category_and_place(
    value: Any, point: Point, when: datetime, draw: bool
) -> tuple[Category, ReadAhead]:
    """The active category a report names (as :func:`category_from`) and what its report at
    ``point`` reads next (:class:`~gridsvc.cases.services.reporting.ReadAhead`), in one
    round trip; ``draw``: its number and ids may be drawn too
    (:func:`~gridsvc.cases.services.reporting.may_draw_ahead`)."""
    from gridsvc.cases.services.deadlines import KnownRules, limits_from_column
    from gridsvc.cases.services.reporting import ReadAhead
    from gridsvc.chain.answer import _COLUMNS, point_resolved, point_statement
    from gridsvc.prepared import fetchone
    from gridsvc.supervision.clock import WorkClock

    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        by, found_by = "id", int(value)
    elif isinstance(value, str) and value:
        by, found_by = "code", value
    else:
        raise ValidationError({"category": "unknown category (give its id or code)"})
    _, params = point_statement(point.x, point.y, when)
    row = fetchone(_category_and_place_sql(by), {**params, "value": found_by, "draw": draw})
    if row is None:
        raise ValidationError({"category": "unknown category (give its id or code)"})
    n = len(Category._meta.concrete_fields)
    category = _category_row(row[:n])
    category.parent = None if row[n] is None else _category_row(row[n : 2 * n])
    at = 2 * n + len(_COLUMNS)
    place = row[2 * n : at]
    limits, days, periods, *drawn = row[at:]
    street_id = place[_COLUMNS.index("street_id")]
    rules = KnownRules(
        limits_from_column(limits), street_id, WorkClock.from_columns(street_id, days, periods)
    )
    return category, ReadAhead(
        when=when,
        resolved=point_resolved(place),
        rules=rules,
        drawn=[] if drawn[0] is None else list(drawn),
    )
