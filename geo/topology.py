"""Topology checks for boundary layers (no Django): validity and repair, duplicates by code,
overlaps between polygons, gaps inside a boundary, buildings in no grid or in two.

Inputs are shapely geometries in WGS84 (lon/lat). Areas are computed in a Lambert azimuthal
equal-area projection centred on the data (exact areas, in m²), so the figures match
PostGIS ``ST_Area(geom::geography)`` to well under a percent at community scale.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

MIN_AREA_M2 = 1.0  # overlaps and gaps smaller than this are digitising noise
MIN_SHARE = 0.01  # a building "is in" a grid when ≥ 1 % of its footprint lies in it


@dataclass
class Repair:
    """One invalid geometry and what was done to it."""

    index: int
    code: str
    reason: str
    method: str  # "make_valid" | "buffer(0)" | "" when it could not be repaired
    area_before_m2: float
    area_after_m2: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.index + 1,
            "code": self.code,
            "reason": self.reason,
            "repair": self.method or None,
            "area_before_m2": round(self.area_before_m2, 2),
            "area_after_m2": round(self.area_after_m2, 2),
        }


class Metric:
    """An equal-area metric projection centred on some lon/lat geometries."""

    def __init__(self, geoms: Sequence[BaseGeometry | None]) -> None:
        arr = np.asarray([g for g in geoms if g is not None and not g.is_empty], dtype=object)
        if len(arr):
            minx, miny, maxx, maxy = shapely.total_bounds(arr)
            lon0, lat0 = (minx + maxx) / 2, (miny + maxy) / 2
        else:
            lon0, lat0 = 0.0, 0.0
        crs = CRS.from_proj4(f"+proj=laea +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m")
        self._fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    def project(self, geoms: Any) -> Any:
        """Project one geometry or an array of them to metres."""

        def conv(xy: np.ndarray) -> np.ndarray:
            x, y = self._fwd.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(geoms, conv)

    def area(self, geoms: Any) -> np.ndarray:
        areas: np.ndarray = shapely.area(self.project(np.asarray(geoms, dtype=object)))
        return areas


def polygonal(geom: BaseGeometry | None) -> MultiPolygon | None:
    """The polygonal part of ``geom`` as a MultiPolygon (None when there is none)."""
    if geom is None or geom.is_empty:
        return None
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    if isinstance(geom, MultiPolygon):
        return geom
    parts: list[Polygon] = []
    for g in getattr(geom, "geoms", []):
        mp = polygonal(g)
        if mp is not None:
            parts.extend(mp.geoms)
    return MultiPolygon(parts) if parts else None


def repair_geometries(
    geoms: Sequence[BaseGeometry | None], codes: Sequence[str], metric: Metric | None = None
) -> tuple[list[MultiPolygon | None], list[Repair]]:
    """Make every geometry a valid MultiPolygon.

    Invalid ones (self-intersection, bow-tie, ring self-touch …) are repaired with shapely
    ``make_valid`` keeping the polygonal parts, or ``buffer(0)`` if that leaves nothing. Each
    repair is listed with the area before (as GEOS computes it on the broken ring) and after.
    A geometry that is missing, not polygonal, or unrepairable comes back as None with a
    Repair whose method is "" (the caller reports it as an error).
    """
    metric = metric or Metric(geoms)
    out: list[MultiPolygon | None] = []
    repairs: list[Repair] = []
    for i, (geom, code) in enumerate(zip(geoms, codes, strict=True)):
        if geom is None or geom.is_empty:
            out.append(None)
            repairs.append(Repair(i, code, "missing or empty geometry", "", 0.0, 0.0))
            continue
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            out.append(None)
            repairs.append(Repair(i, code, f"not a polygon but a {geom.geom_type}", "", 0.0, 0.0))
            continue
        if geom.is_valid:
            out.append(polygonal(geom))
            continue
        reason = shapely.is_valid_reason(geom)
        before = float(metric.area([geom])[0])
        fixed, method = polygonal(shapely.make_valid(geom)), "make_valid"
        if fixed is None or fixed.is_empty:
            fixed, method = polygonal(geom.buffer(0)), "buffer(0)"
        if fixed is None or fixed.is_empty or not fixed.is_valid:
            out.append(None)
            repairs.append(Repair(i, code, reason, "", before, 0.0))
            continue
        out.append(fixed)
        repairs.append(Repair(i, code, reason, method, before, float(metric.area([fixed])[0])))
    return out, repairs


def duplicates(codes: Sequence[str]) -> list[dict[str, Any]]:
    """Codes that occur more than once, with their 1-based rows."""
    rows: dict[str, list[int]] = defaultdict(list)
    for i, code in enumerate(codes):
        rows[code].append(i + 1)
    return [{"code": c, "rows": r} for c, r in sorted(rows.items()) if len(r) > 1 and c]


def overlaps(
    geoms: Sequence[BaseGeometry | None],
    codes: Sequence[str],
    *,
    min_area_m2: float = MIN_AREA_M2,
    metric: Metric | None = None,
) -> list[dict[str, Any]]:
    """Pairs of polygons whose interiors overlap by at least ``min_area_m2`` (area in m²).

    Shared edges and corners are not overlaps. Uses an STRtree, so it is O(n log n) pairs.
    """
    metric = metric or Metric(geoms)
    arr = np.asarray([g if g is not None else shapely.Polygon() for g in geoms], dtype=object)
    tree = shapely.STRtree(arr)
    left, right = tree.query(arr, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if not len(left):
        return []
    inter = shapely.intersection(arr[left], arr[right])
    areas = metric.area(inter)
    out = [
        {"a": codes[a], "b": codes[b], "area_m2": round(float(area), 2)}
        for a, b, area in zip(left, right, areas, strict=True)
        if area >= min_area_m2
    ]
    return sorted(out, key=lambda d: (-d["area_m2"], d["a"], d["b"]))


def gaps(
    geoms: Sequence[BaseGeometry | None],
    boundary: BaseGeometry | None = None,
    *,
    min_area_m2: float = MIN_AREA_M2,
    metric: Metric | None = None,
) -> list[dict[str, Any]]:
    """Holes in the coverage: parts of ``boundary`` covered by no polygon, or (without a
    boundary) the interior holes of the polygons' union. Each with its area (m²) and a point
    inside it (lon, lat)."""
    metric = metric or Metric(list(geoms) + [boundary])
    valid = [g for g in geoms if g is not None and not g.is_empty]
    union = shapely.union_all(valid) if valid else shapely.Polygon()
    if boundary is not None and not boundary.is_empty:
        holes = polygonal(boundary.difference(union))
    else:
        rings = [
            Polygon(r) for p in (polygonal(union) or MultiPolygon()).geoms for r in p.interiors
        ]
        holes = MultiPolygon(rings) if rings else None
    if holes is None:
        return []
    parts = list(holes.geoms)
    areas = metric.area(parts)
    out = []
    for part, area in zip(parts, areas, strict=True):
        if area >= min_area_m2:
            p = part.representative_point()
            out.append({"area_m2": round(float(area), 2), "at": [round(p.x, 6), round(p.y, 6)]})
    return sorted(out, key=lambda d: -d["area_m2"])


def containment(
    buildings: Sequence[BaseGeometry | None],
    building_codes: Sequence[str],
    grids: Sequence[BaseGeometry | None],
    grid_codes: Sequence[str],
    *,
    min_share: float = MIN_SHARE,
    metric: Metric | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Buildings in no grid and buildings in two or more grids.

    A building is in a grid when at least ``min_share`` of its footprint lies in it. Returns
    (in_no_grid [{code, covered_share}], in_two [{code, grids: [{code, share}]}]).
    """
    metric = metric or Metric(list(buildings) + list(grids))
    b_arr = np.asarray([g if g is not None else shapely.Polygon() for g in buildings], dtype=object)
    g_arr = np.asarray([g if g is not None else shapely.Polygon() for g in grids], dtype=object)
    b_area = metric.area(b_arr)
    shares: dict[int, list[tuple[str, float]]] = defaultdict(list)
    if len(g_arr) and len(b_arr):
        tree = shapely.STRtree(g_arr)
        bi, gi = tree.query(b_arr, predicate="intersects")
        if len(bi):
            inter = metric.area(shapely.intersection(b_arr[bi], g_arr[gi]))
            for b, g, a in zip(bi, gi, inter, strict=True):
                share = float(a / b_area[b]) if b_area[b] > 0 else 0.0
                if share >= min_share:
                    shares[int(b)].append((grid_codes[g], share))
    no_grid, two = [], []
    for i, code in enumerate(building_codes):
        found = sorted(shares.get(i, []))
        if not found:
            no_grid.append({"code": code, "covered_share": 0.0})
        elif len(found) > 1:
            two.append(
                {"code": code, "grids": [{"code": c, "share": round(s, 3)} for c, s in found]}
            )
    return no_grid, two
