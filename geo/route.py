"""Walking order for a member's visits of the day.

:func:`order_stops` builds an open path (it does not return to the start) with the
nearest-neighbour heuristic and improves it with 2-opt. Distances are great-circle metres
(:func:`geo.accuracy.haversine_m`) between WGS84 (lon, lat) points. Both steps are
deterministic: ties go to the lowest index and 2-opt makes a bounded number of passes, so
the same input always gives the same order.

The 2-opt on an open path is done as a tour through a dummy node at zero distance from
every point: the path ends (and, without a fixed start, also begins) at the dummy, so
reversals may move the free end(s) as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geo.accuracy import EARTH_RADIUS_M, haversine_m

__all__ = ["MAX_2OPT_PASSES", "RouteResult", "order_stops", "path_length_m"]

#: Default bound on 2-opt passes (each pass tries every segment start once).
MAX_2OPT_PASSES = 50
#: Above this many points no distance matrix is built: nearest neighbour only.
MATRIX_LIMIT = 2000
# An improvement must shorten the path by more than this (metres) to be applied.
_EPS_M = 1e-6

Point = tuple[float, float]


@dataclass
class RouteResult:
    """The walking order of :func:`order_stops`.

    :ivar order: indices into the ``stops`` given, in walking order.
    :ivar length_m: length of the path in metres, from the start (if any) through every stop.
    :ivar path: the path's (lon, lat) points: the start (if given), then the stops in order.
    """

    order: list[int]
    length_m: float
    path: list[Point] = field(default_factory=list)

    def as_geojson(self) -> dict[str, Any]:
        """The path as a GeoJSON Feature.

        The geometry is a LineString of :attr:`path`, or ``null`` when the path has fewer
        than two points (nothing to walk). Properties: ``length_m`` (rounded to 0.1 m),
        ``stop_count`` and ``order``.
        """
        geometry: dict[str, Any] | None = None
        if len(self.path) >= 2:
            geometry = {
                "type": "LineString",
                "coordinates": [[float(lon), float(lat)] for lon, lat in self.path],
            }
        return {
            "type": "Feature",
            "geometry": geometry,
            "properties": {
                "length_m": round(float(self.length_m), 1),
                "stop_count": len(self.order),
                "order": list(self.order),
            },
        }


def path_length_m(points: Sequence[Sequence[float]]) -> float:
    """Length in metres of the polyline through ``points`` ((lon, lat) WGS84), in order."""
    total = 0.0
    for a, b in zip(points, points[1:], strict=False):
        total += haversine_m(a[0], a[1], b[0], b[1])
    return total


def _check(points: Sequence[Sequence[float]], what: str) -> list[Point]:
    out: list[Point] = []
    for i, p in enumerate(points):
        try:
            lon, lat = float(p[0]), float(p[1])
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"{what} {i}: expected (lon, lat), got {p!r}") from None
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise ValueError(f"{what} {i}: coordinates must be finite, got {p!r}")
        out.append((lon, lat))
    return out


def _distance_matrix(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Great-circle distances (metres) between all pairs of points."""
    phi = np.radians(lat)
    lmb = np.radians(lon)
    dphi = phi[:, None] - phi[None, :]
    dlmb = lmb[:, None] - lmb[None, :]
    h = np.sin(dphi / 2.0) ** 2 + np.cos(phi)[:, None] * np.cos(phi)[None, :] * (
        np.sin(dlmb / 2.0) ** 2
    )
    d: np.ndarray = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return d


def _row(lon: np.ndarray, lat: np.ndarray, k: int) -> np.ndarray:
    """Distances (metres) from point ``k`` to every point."""
    phi = np.radians(lat)
    h = np.sin((phi - phi[k]) / 2.0) ** 2 + np.cos(phi) * np.cos(phi[k]) * (
        np.sin(np.radians(lon - lon[k]) / 2.0) ** 2
    )
    d: np.ndarray = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return d


def _first_stop(lon: np.ndarray, lat: np.ndarray) -> int:
    """Without a start: begin at the stop farthest from the centroid (a likely path end)."""
    c_lon, c_lat = float(lon.mean()), float(lat.mean())
    d = [haversine_m(c_lon, c_lat, float(x), float(y)) for x, y in zip(lon, lat, strict=True)]
    return int(np.argmax(d))


def _nearest_neighbour(
    lon: np.ndarray, lat: np.ndarray, first: int, dist: np.ndarray | None
) -> list[int]:
    """Greedy path over all nodes from ``first``; ties go to the lowest index."""
    n = lon.size
    visited = np.zeros(n, dtype=bool)
    seq = [first]
    visited[first] = True
    cur = first
    for _ in range(n - 1):
        row = (dist[cur] if dist is not None else _row(lon, lat, cur)).copy()
        row[visited] = np.inf
        cur = int(np.argmin(row))
        visited[cur] = True
        seq.append(cur)
    return seq


def _two_opt(
    seq: list[int], dist: np.ndarray, dummy: int, fixed_start: bool, passes: int
) -> list[int]:
    """Improve the open path ``seq`` (node indices) with 2-opt; see the module docstring.

    ``dist`` has one extra row/column of zeros for ``dummy``. Each pass tries every segment
    start ``i`` and applies the best reversal ``s[i..j]`` for it if that shortens the path.
    """
    s = np.array(([] if fixed_start else [dummy]) + seq + [dummy], dtype=np.intp)
    n = s.size
    if n < 4:  # a single reversible edge at most: nothing to gain
        return seq
    first = 1
    for _ in range(passes):
        improved = False
        for i in range(first, n - 2):
            a, b = s[i - 1], s[i]
            c = s[i + 1 : n - 1]  # candidate segment ends j = i+1 .. n-2
            d = s[i + 2 : n]  # their successors
            delta = dist[a, c] + dist[b, d] - dist[a, b] - dist[c, d]
            k = int(np.argmin(delta))
            if delta[k] < -_EPS_M:
                j = i + 1 + k
                s[i : j + 1] = s[i : j + 1][::-1].copy()
                improved = True
        if not improved:
            break
    inner = s[:-1] if fixed_start else s[1:-1]
    return [int(v) for v in inner]


def order_stops(
    start: tuple[float, float] | None,
    stops: Sequence[tuple[float, float]],
    *,
    improve: bool = True,
    max_passes: int = MAX_2OPT_PASSES,
) -> RouteResult:
    """Order ``stops`` ((lon, lat) WGS84) into a short open walking path.

    :param start: where the member sets out (not a stop, not returned to); ``None`` lets
        the path begin at whichever stop suits best.
    :param stops: the places to visit; duplicates are allowed.
    :param improve: apply 2-opt after the nearest-neighbour construction (default).
    :param max_passes: bound on 2-opt passes (each costs O(n) vector operations of size n).
    :returns: a :class:`RouteResult`; ``order`` is a permutation of ``range(len(stops))``.
    :raises ValueError: for a malformed or non-finite coordinate.
    """
    pts = _check(stops, "stop")
    origin = _check([start], "start")[0] if start is not None else None
    n = len(pts)
    if n == 0:
        return RouteResult(order=[], length_m=0.0, path=[origin] if origin is not None else [])

    nodes = ([origin] if origin is not None else []) + pts
    offset = 1 if origin is not None else 0  # node index of stop 0
    lon = np.array([p[0] for p in nodes], dtype=np.float64)
    lat = np.array([p[1] for p in nodes], dtype=np.float64)

    dist: np.ndarray | None = None
    if len(nodes) <= MATRIX_LIMIT:
        dist = np.zeros((len(nodes) + 1, len(nodes) + 1))  # + the dummy node, all zeros
        dist[:-1, :-1] = _distance_matrix(lon, lat)

    if origin is not None:
        seq = _nearest_neighbour(lon, lat, 0, None if dist is None else dist[:-1, :-1])
    else:
        first = _first_stop(lon, lat)
        seq = _nearest_neighbour(lon, lat, first, None if dist is None else dist[:-1, :-1])

    if improve and dist is not None and n >= 2:
        seq = _two_opt(seq, dist, len(nodes), origin is not None, max(0, int(max_passes)))

    order = [k - offset for k in seq if k >= offset]
    path = ([origin] if origin is not None else []) + [pts[i] for i in order]
    if dist is not None:
        length = float(sum(dist[a, b] for a, b in zip(seq, seq[1:], strict=False)))
    else:
        length = path_length_m(path)
    return RouteResult(order=order, length_m=length, path=path)
