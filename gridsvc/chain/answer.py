"""The chain API's answer in one SQL statement (五位一体 chain for a point or a reference).

:func:`gridsvc.territory.services.locate` + :func:`gridsvc.chain.services.walk` build model
instances level by level (building with its compound, grid, community and street, then the
holders): right for case routing, which stores them, but the read-only ``GET /chain/`` only
needs ids and names. Here the same rules (DESIGN.md "Routing a report", step 1 — the
covering building, else the nearest within the tolerance; grid and compound by ST_Covers,
lowest code on shared edges; the nearest grid for a place outside every grid) and every
level's holders are one statement returning names, no geometry, prepared on the connection
(:mod:`gridsvc.prepared`: its parsing and planning cost more than running it); the answer is
the same dictionary as ``walk(locate(...)).as_dict()``.

The caller's territory decides afterwards from the resolved ids
(:meth:`gridsvc.chain.scope.Scope.allows_building` / ``allows_grid``), so an object outside
the territory answers as not found, as before.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from gridsvc.prepared import fetchone

from .services import LEVELS, STREET_LEVEL

# --------------------------------------------------------------------- where the place is
_LOC_POINT = """
p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g),
b AS (SELECT b.id, b.compound_id, b.grid_id, ST_Covers(b.footprint, p.g) AS covers,
             ST_Distance(b.footprint::geography, p.g::geography) AS d
      FROM territory_building b, p
      WHERE b.footprint && ST_Expand(p.g, %(deg)s)
      ORDER BY covers DESC, d, b.code LIMIT 1),
f AS (SELECT * FROM b WHERE b.covers OR b.d <= %(tol)s),
l AS (
  SELECT NULL::bigint AS household_id, NULL::bigint AS unit_id, f.id AS building_id,
         CASE WHEN f.id IS NULL THEN 'point'
              WHEN f.covers THEN 'covering_building' ELSE 'nearest_building' END AS method,
         CASE WHEN f.id IS NULL THEN NULL WHEN f.covers THEN 0.0 ELSE f.d END AS distance_m,
         CASE WHEN f.id IS NOT NULL THEN f.compound_id
              ELSE (SELECT c.id FROM territory_compound c, p WHERE ST_Covers(c.boundary, p.g)
                    ORDER BY c.code LIMIT 1) END AS compound_id,
         COALESCE(f.grid_id,
                  (SELECT g.id FROM territory_grid g, p
                   WHERE g.parent_id IS NULL AND ST_Covers(g.boundary, p.g)
                   ORDER BY g.code LIMIT 1)) AS grid_id,
         (SELECT g FROM p) AS g
  FROM (SELECT 1) one LEFT JOIN f ON true)
"""
_LOC_REF = {
    "household": """
l AS (SELECT h.id AS household_id, u.id AS unit_id, b.id AS building_id,
             'household' AS method, NULL::float8 AS distance_m, b.compound_id, b.grid_id,
             b.point AS g
      FROM territory_household h JOIN territory_unit u ON u.id = h.unit_id
      JOIN territory_building b ON b.id = u.building_id WHERE h.id = %(ref)s)
""",
    "unit": """
l AS (SELECT NULL::bigint AS household_id, u.id AS unit_id, b.id AS building_id,
             'unit' AS method, NULL::float8 AS distance_m, b.compound_id, b.grid_id,
             b.point AS g
      FROM territory_unit u JOIN territory_building b ON b.id = u.building_id
      WHERE u.id = %(ref)s)
""",
    "building": """
l AS (SELECT NULL::bigint AS household_id, NULL::bigint AS unit_id, b.id AS building_id,
             'building' AS method, NULL::float8 AS distance_m, b.compound_id, b.grid_id,
             b.point AS g
      FROM territory_building b WHERE b.id = %(ref)s)
""",
}
# names of every level, the nearest grid for a place outside every grid (only then: the
# lateral's filter is a one-time test), and the holders of every level, oldest first
_TAIL = """
SELECT l.method, l.distance_m,
       l.household_id, hh.room, hh.head_id, hr.name,
       l.unit_id, un.number, l.building_id, bu.name,
       l.compound_id, co.name, l.grid_id, gr.name, gr.code,
       gr.community_id, cm.name, cm.street_id, st.name,
       ng.id, ng.name, ng.code, ng.d,
       (SELECT json_agg(json_build_array(p.position_type, p.member_id,
                                         COALESCE(NULLIF(m.display_name, ''), m.username),
                                         p.id, p.on_leave) ORDER BY p.valid_from, p.id)
        FROM chain_position p JOIN accounts_member m ON m.id = p.member_id
        WHERE p.valid_from <= %(now)s AND (p.valid_to IS NULL OR p.valid_to > %(now)s) AND (
          (p.position_type = 'unit_head' AND p.unit_id = l.unit_id)
          OR (p.position_type = 'building_head' AND p.building_id = l.building_id)
          OR (p.position_type IN ('owners_committee', 'property_manager')
              AND p.compound_id = l.compound_id)
          OR (p.position_type = 'community_cadre' AND p.grid_id = l.grid_id)
          OR (p.position_type = 'mediation_committee' AND p.community_id = gr.community_id)
          OR (p.position_type = 'street_dispatcher' AND p.street_id = cm.street_id)))
FROM l
LEFT JOIN territory_household hh ON hh.id = l.household_id
LEFT JOIN territory_resident hr ON hr.id = hh.head_id
LEFT JOIN territory_unit un ON un.id = l.unit_id
LEFT JOIN territory_building bu ON bu.id = l.building_id
LEFT JOIN territory_compound co ON co.id = l.compound_id
LEFT JOIN territory_grid gr ON gr.id = l.grid_id
LEFT JOIN territory_community cm ON cm.id = gr.community_id
LEFT JOIN territory_street st ON st.id = cm.street_id
LEFT JOIN LATERAL (
  SELECT near.id, near.name, near.code,
         ST_Distance(near.boundary::geography, l.g::geography) AS d
  FROM (SELECT g2.id, g2.name, g2.code, g2.boundary FROM territory_grid g2
        WHERE g2.parent_id IS NULL AND l.grid_id IS NULL AND l.g IS NOT NULL
        ORDER BY g2.boundary <-> l.g LIMIT 8) near
  ORDER BY d, near.code LIMIT 1) ng ON true
"""
SQL_POINT = "WITH " + _LOC_POINT + _TAIL
SQL_REF = {name: "WITH " + loc + _TAIL for name, loc in _LOC_REF.items()}


_COLUMNS = (
    "method", "distance_m", "household_id", "room", "head_id", "head_name", "unit_id",
    "unit_number", "building_id", "building_name", "compound_id", "compound_name", "grid_id",
    "grid_name", "grid_code", "community_id", "community_name", "street_id", "street_name",
    "near_id", "near_name", "near_code", "near_d", "holders",
)  # fmt: skip


class Resolved:
    """One row of the statement: the place's ids and names, and the holders."""

    method: str
    distance_m: float | None
    household_id: int | None
    room: str | None
    head_id: int | None
    head_name: str | None
    unit_id: int | None
    unit_number: Any
    building_id: int | None
    building_name: str | None
    compound_id: int | None
    compound_name: str | None
    grid_id: int | None
    grid_name: str | None
    grid_code: str | None
    community_id: int | None
    community_name: str | None
    street_id: int | None
    street_name: str | None
    near_id: int | None
    near_name: str | None
    near_code: str | None
    near_d: float | None
    holders: list

    def __init__(self, row: tuple) -> None:
        for name, value in zip(_COLUMNS, row, strict=True):
            setattr(self, name, value)
        if self.grid_id is None:
            self.community_id = self.street_id = None  # the admin line follows the grid
        held = self.holders
        if isinstance(held, str | bytes):
            held = json.loads(held)
        self.holders = held or []

    # names as the models' __str__ give them
    def names(self) -> dict[str, tuple[int | None, str | None]]:
        unit = None if self.unit_id is None else f"{self.building_name} {self.unit_number}单元"
        return {
            "household": (self.household_id, None if self.household_id is None else f"{unit} {self.room}"),
            "unit": (self.unit_id, unit),
            "building": (self.building_id, self.building_name),
            "compound": (self.compound_id, self.compound_name),
            "grid": (self.grid_id, None if self.grid_id is None else f"{self.grid_name} ({self.grid_code})"),
            "community": (self.community_id, self.community_name),
            "street": (self.street_id, self.street_name),
        }  # fmt: skip


def point_statement(lon: float, lat: float, when: datetime) -> tuple[str, dict[str, Any]]:
    """The statement and parameters of :func:`resolve_point` (for a caller-query rider,
    :func:`gridsvc.accounts.authentication.ride_with_caller`)."""
    tol = float(settings.GRIDSVC["NEAREST_BUILDING_TOLERANCE_M"])
    # index-friendly box: the tolerance in degrees of longitude (the wider one) at this latitude
    deg = tol / (111_320.0 * max(math.cos(math.radians(lat)), 0.01))
    return SQL_POINT, {"lon": lon, "lat": lat, "deg": deg, "tol": tol, "now": when}


def point_ctes(name: str) -> str:
    """:data:`SQL_POINT` as common table expressions (after ``WITH``, before others): its
    row as ``name``, with the columns of :class:`Resolved` (``name.grid_id``,
    ``name.street_id``, …), for a statement that reads more beside the place (a report:
    :func:`api.cases.inputs.category_and_place`); parameters those of
    :func:`point_statement`."""
    return f"{_LOC_POINT.strip()},\n{name}({', '.join(_COLUMNS)}) AS ({_TAIL.strip()})"


def ref_statement(name: str, pk: int, when: datetime) -> tuple[str, dict[str, Any]]:
    """The statement and parameters of :func:`resolve_ref`."""
    return SQL_REF[name], {"ref": pk, "now": when}


def point_resolved(row: tuple) -> Resolved:
    """The row of :data:`SQL_POINT` as the place and its holders."""
    res = Resolved(row)
    if res.grid_id is None:
        res.method = "outside"  # in no grid (the nearest one is named)
    return res


def resolve_point(lon: float, lat: float, when: datetime | None = None) -> Resolved:
    """Locate ``lon``/``lat`` (WGS84) and read every level's holders at ``when``: one query."""
    sql, params = point_statement(lon, lat, when or timezone.now())
    return point_resolved(fetchone(sql, params))  # type: ignore[arg-type]


def resolve_ref(name: str, pk: int, when: datetime | None = None) -> Resolved | None:
    """The same for a household, unit or building ``pk``; None when there is no such row."""
    row = fetchone(*ref_statement(name, pk, when or timezone.now()))
    return None if row is None else Resolved(row)


def answer(res: Resolved, when: datetime) -> dict[str, Any]:
    """The chain as :meth:`gridsvc.chain.services.Chain.as_dict` gives it."""
    names = res.names()

    def ref(level: str) -> dict | None:
        pk, name = names[level]
        return None if pk is None else {"id": pk, "name": name}

    location = {
        "method": res.method,
        **{level: ref(level) for level in ("household", "unit", "building", "compound")},
        "grid": ref("grid"),
        "community": ref("community"),
        "street": ref("street"),
        "distance_m": res.distance_m,
        "nearest_grid": None
        if res.near_id is None
        else {"id": res.near_id, "name": f"{res.near_name} ({res.near_code})"},
        "nearest_grid_distance_m": None if res.near_d is None else float(res.near_d),
    }
    by_level: dict[str, list] = {}
    for held in res.holders:
        by_level.setdefault(held[0], []).append(held)
    steps = []
    for lvl in LEVELS:
        pk, obj_name = names[lvl.target]
        holders: list[dict] = []
        if pk is None:
            status = "no_object"
        elif lvl.name == "household_head":
            if res.head_id is not None:
                status = "resident"  # a resident, not a member account: informs, not acts
                holders = [
                    {"member_id": None, "name": res.head_name, "position_id": None, "on_leave": False}
                ]  # fmt: skip
            else:
                status = "vacant"
        else:
            held = by_level.get(lvl.name, [])
            holders = [
                {"member_id": h[1], "name": h[2], "position_id": h[3], "on_leave": h[4]}
                for h in held
            ]
            if any(not h[4] for h in held):
                status = "active"
            elif held:
                status = "on_leave"
            elif lvl is STREET_LEVEL:
                status = "desk"  # the dispatch desk's queue is never vacant
            else:
                status = "vacant"
        steps.append(
            {
                "level": lvl.index,
                "level_name": lvl.name,
                "level_label": lvl.label,
                "object_type": lvl.target,
                "object_id": pk,
                "object_name": obj_name,
                "status": status,
                "holders": holders,
                "can_act": status in ("active", "desk"),
            }
        )
    return {"when": when.isoformat(), "location": location, "steps": steps}
