"""Coordinate conversion between WGS84 and the systems used by Chinese map SDKs.

Supported systems (all as longitude, latitude in degrees, in that order):

- ``wgs84``: GPS / EPSG:4326, what the database stores.
- ``gcj02``: the obfuscated "Mars" datum (GB/T 28589 / 国测局) used by Amap and Tencent
  maps. It is WGS84 plus a non-linear offset of a few hundred metres, published nowhere
  officially; the widely used Krasovsky-ellipsoid formula below reproduces the SDKs to
  centimetres. The inverse has no closed form and is solved iteratively.
- ``bd09``: Baidu's system, a further offset applied on top of GCJ-02.
- ``cgcs2000``: China Geodetic Coordinate System 2000 (EPSG:4490). Its ellipsoid and frame
  agree with WGS84 to a few centimetres, far below phone-GPS precision; PROJ knows no
  better transformation than a "ballpark" identity, and that is what we use (through a
  cached :class:`pyproj.Transformer`, so that a real grid shift would be picked up if PROJ
  ever ships one).

Outside China the SDKs apply no offset, and neither do we: the GCJ-02 and BD-09
conversions are the identity outside the rectangle :data:`CHINA_BBOX` (the same rectangle
the SDKs and the common open-source ports use; it also covers some neighbouring
countries). For the inverse conversions the test is made on the *result*, so that points
whose offset carries them across the rectangle's edge still round-trip.

Scalar functions return plain ``float`` tuples; the ``*_array`` variant and
:func:`transform_array` work on numpy arrays of any shape.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyproj import Transformer

__all__ = [
    "CHINA_BBOX",
    "SUPPORTED_CRS",
    "UnsupportedCRS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_affine",
    "gcj02_box_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "normalize_crs",
    "out_of_china",
    "to_wgs84",
    "transform",
    "transform_array",
    "transform_geojson_geometry",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

#: Semi-major axis of the Krasovsky 1940 ellipsoid used by the GCJ-02 formula (metres).
KRASOVSKY_A = 6378245.0
#: First eccentricity squared of the Krasovsky 1940 ellipsoid.
KRASOVSKY_EE = 0.00669342162296594323
#: Baidu's constant (pi * 3000 / 180).
BD_X_PI = math.pi * 3000.0 / 180.0
#: The constant shift Baidu adds on top of its rotation/scaling of GCJ-02 (degrees).
BD_DLON = 0.0065
BD_DLAT = 0.006

#: (min_lon, min_lat, max_lon, max_lat): where GCJ-02 / BD-09 offsets are applied.
CHINA_BBOX: tuple[float, float, float, float] = (72.004, 0.8293, 137.8347, 55.8271)
# Inverse conversions only iterate for inputs within this margin of CHINA_BBOX (degrees);
# the largest offset is far below it, and the formula misbehaves near the poles.
_ITERATE_MARGIN = 1.0
# Slack of the inside-China test on an inverse's result: a preimage exactly on the edge of
# CHINA_BBOX is found only to within rounding.
_EDGE_SLACK = 1e-8

#: Convergence threshold of the iterative inverses (degrees, ~0.1 mm; spec: < 1e-7).
INVERSE_TOLERANCE_DEG = 1e-9
#: Iteration cap of the inverses (they converge in 3 to 5 steps inside China).
INVERSE_MAX_ITER = 30

#: Canonical names accepted by :func:`to_wgs84` / :func:`from_wgs84`.
SUPPORTED_CRS: tuple[str, ...] = ("wgs84", "gcj02", "bd09", "cgcs2000")

_ALIASES: dict[str, str] = {
    "wgs84": "wgs84",
    "wgs-84": "wgs84",
    "epsg:4326": "wgs84",
    "crs84": "wgs84",
    "ogc:crs84": "wgs84",
    "http://www.opengis.net/def/crs/ogc/1.3/crs84": "wgs84",
    "http://www.opengis.net/def/crs/epsg/0/4326": "wgs84",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
    "bd09ll": "bd09",
    "cgcs2000": "cgcs2000",
    "epsg:4490": "cgcs2000",
    "http://www.opengis.net/def/crs/epsg/0/4490": "cgcs2000",
}

FloatArray = NDArray[np.float64]


class UnsupportedCRS(ValueError):
    """Raised for a coordinate system name that is not one of :data:`SUPPORTED_CRS`."""

    def __init__(self, crs: object) -> None:
        self.crs = crs
        super().__init__(
            f"unsupported coordinate system {crs!r}; accepted: "
            f"{', '.join(SUPPORTED_CRS)} (case-insensitive; also EPSG:4326 = wgs84, "
            "EPSG:4490 = cgcs2000)"
        )


def normalize_crs(crs: str) -> str:
    """Canonical name (one of :data:`SUPPORTED_CRS`) for ``crs``.

    Case and surrounding white space are ignored; ``EPSG:4326``, ``CRS84`` and the OGC
    URIs map to ``wgs84``, ``EPSG:4490`` to ``cgcs2000``. Note that the axis order is
    always longitude, latitude here, whatever the EPSG definition says.

    :raises UnsupportedCRS: for anything else (including non-strings).
    """
    if not isinstance(crs, str):
        raise UnsupportedCRS(crs)
    try:
        return _ALIASES[crs.strip().lower()]
    except KeyError:
        raise UnsupportedCRS(crs) from None


# --------------------------------------------------------------------------- China test
def out_of_china(lon: float, lat: float) -> bool:
    """True if (``lon``, ``lat``) lies outside :data:`CHINA_BBOX` (no offset applies there)."""
    min_lon, min_lat, max_lon, max_lat = CHINA_BBOX
    return not (min_lon <= lon <= max_lon and min_lat <= lat <= max_lat)


def _inside_china_array(lon: FloatArray, lat: FloatArray, margin: float = 0.0) -> NDArray[Any]:
    min_lon, min_lat, max_lon, max_lat = CHINA_BBOX
    return (
        (lon >= min_lon - margin)
        & (lon <= max_lon + margin)
        & (lat >= min_lat - margin)
        & (lat <= max_lat + margin)
    )


def _near_china(lon: float, lat: float, margin: float = _ITERATE_MARGIN) -> bool:
    min_lon, min_lat, max_lon, max_lat = CHINA_BBOX
    m = margin
    return min_lon - m <= lon <= max_lon + m and min_lat - m <= lat <= max_lat + m


# ----------------------------------------------------------------------- GCJ-02 formula
# ``xp`` is either the math module (scalars) or numpy (arrays): both provide sin/cos/sqrt.
def _gcj_offset(lon: Any, lat: Any, xp: Any) -> tuple[Any, Any]:
    """(dlon, dlat) in degrees that GCJ-02 adds to a WGS84 point, without the China test."""
    x = lon - 105.0
    y = lat - 35.0
    pi = math.pi
    common = (20.0 * xp.sin(6.0 * x * pi) + 20.0 * xp.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * xp.sqrt(abs(x))
    dlat = dlat + common
    dlat = dlat + (20.0 * xp.sin(y * pi) + 40.0 * xp.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat = dlat + (160.0 * xp.sin(y / 12.0 * pi) + 320.0 * xp.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * xp.sqrt(abs(x))
    dlon = dlon + common
    dlon = dlon + (20.0 * xp.sin(x * pi) + 40.0 * xp.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon = dlon + (150.0 * xp.sin(x / 12.0 * pi) + 300.0 * xp.sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * pi
    magic = 1.0 - KRASOVSKY_EE * xp.sin(rad_lat) ** 2
    sqrt_magic = xp.sqrt(magic)
    dlat = (dlat * 180.0) / ((KRASOVSKY_A * (1.0 - KRASOVSKY_EE)) / (magic * sqrt_magic) * pi)
    dlon = (dlon * 180.0) / (KRASOVSKY_A / sqrt_magic * xp.cos(rad_lat) * pi)
    return dlon, dlat


def _gcj_forward(lon: Any, lat: Any, xp: Any) -> tuple[Any, Any]:
    dlon, dlat = _gcj_offset(lon, lat, xp)
    return lon + dlon, lat + dlat


def _bd_forward(lon: Any, lat: Any, xp: Any, atan2: Callable[[Any, Any], Any]) -> tuple[Any, Any]:
    """GCJ-02 → BD-09 without the China test."""
    z = xp.sqrt(lon * lon + lat * lat) + 0.00002 * xp.sin(lat * BD_X_PI)
    theta = atan2(lat, lon) + 0.000003 * xp.cos(lon * BD_X_PI)
    return z * xp.cos(theta) + BD_DLON, z * xp.sin(theta) + BD_DLAT


def _bd_inverse_guess(
    lon: Any, lat: Any, xp: Any, atan2: Callable[[Any, Any], Any]
) -> tuple[Any, Any]:
    """Baidu's closed-form approximate BD-09 → GCJ-02 (good to ~1e-6 degrees)."""
    x = lon - BD_DLON
    y = lat - BD_DLAT
    z = xp.sqrt(x * x + y * y) - 0.00002 * xp.sin(y * BD_X_PI)
    theta = atan2(y, x) - 0.000003 * xp.cos(x * BD_X_PI)
    return z * xp.cos(theta), z * xp.sin(theta)


def _solve_scalar(
    forward: Callable[[float, float], tuple[float, float]],
    lon: float,
    lat: float,
    lon0: float,
    lat0: float,
) -> tuple[float, float]:
    """Fixed-point iteration for ``forward(x) == (lon, lat)`` starting at (lon0, lat0).

    The Jacobian of both offsets is the identity to within ~1e-3, so subtracting the
    residual converges by about three digits per step.
    """
    x, y = lon0, lat0
    for _ in range(INVERSE_MAX_ITER):
        fx, fy = forward(x, y)
        ex, ey = fx - lon, fy - lat
        x, y = x - ex, y - ey
        if abs(ex) < INVERSE_TOLERANCE_DEG and abs(ey) < INVERSE_TOLERANCE_DEG:
            break
    return x, y


def _solve_array(
    forward: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]],
    lon: FloatArray,
    lat: FloatArray,
    lon0: FloatArray,
    lat0: FloatArray,
    active: NDArray[Any],
) -> tuple[FloatArray, FloatArray]:
    """Vectorised :func:`_solve_scalar`; convergence is judged on ``active`` points only."""
    x, y = lon0.copy(), lat0.copy()
    for _ in range(INVERSE_MAX_ITER):
        fx, fy = forward(x, y)
        ex, ey = fx - lon, fy - lat
        x, y = x - ex, y - ey
        err = np.maximum(np.abs(ex), np.abs(ey))[active]
        if err.size == 0 or not np.nanmax(err, initial=0.0) >= INVERSE_TOLERANCE_DEG:
            break
    return x, y


# ------------------------------------------------------------------ scalar conversions
def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """WGS84 → GCJ-02 (Amap, Tencent). Identity outside China."""
    if out_of_china(lon, lat):
        return float(lon), float(lat)
    g_lon, g_lat = _gcj_forward(float(lon), float(lat), math)
    return g_lon, g_lat


def _gcj_inverse(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 → WGS84 without the China test."""
    dlon, dlat = _gcj_offset(lon, lat, math)

    def forward(x: float, y: float) -> tuple[float, float]:
        return _gcj_forward(x, y, math)

    return _solve_scalar(forward, lon, lat, lon - dlon, lat - dlat)


def _bd_inverse(lon: float, lat: float) -> tuple[float, float]:
    """BD-09 → GCJ-02 without the China test: Baidu's closed form, refined."""
    g0_lon, g0_lat = _bd_inverse_guess(lon, lat, math, math.atan2)

    def forward(x: float, y: float) -> tuple[float, float]:
        return _bd_forward(x, y, math, math.atan2)

    return _solve_scalar(forward, lon, lat, g0_lon, g0_lat)


def _inverse_in_china(
    lon: float, lat: float, inverse: Callable[[float, float], tuple[float, float]]
) -> tuple[float, float]:
    """``inverse`` (an offset's solver) at (lon, lat); the input unchanged where it, or the
    solution, lies outside China (no offset applies there): :func:`_keep_if_inside` for one
    point."""
    lon, lat = float(lon), float(lat)
    if not _near_china(lon, lat):
        return lon, lat
    r_lon, r_lat = inverse(lon, lat)
    if not _near_china(r_lon, r_lat, _EDGE_SLACK):
        return lon, lat
    return r_lon, r_lat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 → WGS84 by fixed-point iteration (residual < 1e-9 degrees, ≤ 30 steps).

    The result's error is far below a millimetre inside China. If the solution lies
    outside China the input is returned unchanged (no offset applies there).
    """
    return _inverse_in_china(lon, lat, _gcj_inverse)


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 → BD-09 (Baidu). Identity outside China."""
    if out_of_china(lon, lat):
        return float(lon), float(lat)
    b_lon, b_lat = _bd_forward(float(lon), float(lat), math, math.atan2)
    return b_lon, b_lat


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """BD-09 → GCJ-02: Baidu's closed form refined by iteration to < 1e-9 degrees.

    Identity if the result lies outside China.
    """
    return _inverse_in_china(lon, lat, _bd_inverse)


def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """WGS84 → BD-09 (GCJ-02, then Baidu's offset). Identity outside China."""
    if out_of_china(lon, lat):
        return float(lon), float(lat)
    b_lon, b_lat = _bd_forward(*_gcj_forward(float(lon), float(lat), math), math, math.atan2)
    return b_lon, b_lat


def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """BD-09 → WGS84 (through GCJ-02). Identity if the result lies outside China."""
    return _inverse_in_china(lon, lat, lambda x, y: _gcj_inverse(*_bd_inverse(x, y)))


# ------------------------------------------------------------------------- CGCS2000
@lru_cache(maxsize=2)
def _cgcs_transformer(to_wgs: bool) -> Transformer:
    """Module-level cache of the (thread-safe, pyproj ≥ 3.1) CGCS2000 transformers."""
    if to_wgs:
        return Transformer.from_crs("EPSG:4490", "EPSG:4326", always_xy=True)
    return Transformer.from_crs("EPSG:4326", "EPSG:4490", always_xy=True)


def cgcs2000_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """CGCS2000 (EPSG:4490) → WGS84; the two coincide to centimetres (PROJ: identity)."""
    x, y = _cgcs_transformer(True).transform(float(lon), float(lat))
    return float(x), float(y)


def wgs84_to_cgcs2000(lon: float, lat: float) -> tuple[float, float]:
    """WGS84 → CGCS2000 (EPSG:4490); see :func:`cgcs2000_to_wgs84`."""
    x, y = _cgcs_transformer(False).transform(float(lon), float(lat))
    return float(x), float(y)


# ----------------------------------------------------------------------- dispatchers
_TO_WGS84: dict[str, Callable[[float, float], tuple[float, float]]] = {
    "wgs84": lambda lon, lat: (float(lon), float(lat)),
    "gcj02": gcj02_to_wgs84,
    "bd09": bd09_to_wgs84,
    "cgcs2000": cgcs2000_to_wgs84,
}
_FROM_WGS84: dict[str, Callable[[float, float], tuple[float, float]]] = {
    "wgs84": lambda lon, lat: (float(lon), float(lat)),
    "gcj02": wgs84_to_gcj02,
    "bd09": wgs84_to_bd09,
    "cgcs2000": wgs84_to_cgcs2000,
}


def to_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """(lon, lat) given in ``crs`` → WGS84.

    :param crs: one of :data:`SUPPORTED_CRS` or an alias (see :func:`normalize_crs`).
    :raises UnsupportedCRS: for an unknown ``crs``.
    """
    return _TO_WGS84[normalize_crs(crs)](lon, lat)


def from_wgs84(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """WGS84 (lon, lat) → ``crs``.

    :raises UnsupportedCRS: for an unknown ``crs``.
    """
    return _FROM_WGS84[normalize_crs(crs)](lon, lat)


def transform(lon: float, lat: float, src: str, dst: str) -> tuple[float, float]:
    """(lon, lat) from ``src`` to ``dst``; GCJ-02 ↔ BD-09 directly, anything else via WGS84.

    :raises UnsupportedCRS: if either name is unknown.
    """
    s, d = normalize_crs(src), normalize_crs(dst)
    if s == d:
        return float(lon), float(lat)
    if (s, d) == ("gcj02", "bd09"):
        return gcj02_to_bd09(lon, lat)
    if (s, d) == ("bd09", "gcj02"):
        return bd09_to_gcj02(lon, lat)
    return _FROM_WGS84[d](*_TO_WGS84[s](lon, lat))


# ------------------------------------------------------------------ array conversions
def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    return x.astype(np.float64, copy=True), y.astype(np.float64, copy=True)


def _arctan2(y: Any, x: Any) -> Any:
    return np.arctan2(y, x)


def _wgs_to_gcj_arr(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    inside = _inside_china_array(lon, lat)
    g_lon, g_lat = _gcj_forward(lon, lat, np)
    return np.where(inside, g_lon, lon), np.where(inside, g_lat, lat)


def _gcj_inverse_arr(lon: FloatArray, lat: FloatArray, near: Any) -> tuple[FloatArray, FloatArray]:
    dlon, dlat = _gcj_offset(lon, lat, np)

    def forward(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        return _gcj_forward(x, y, np)

    return _solve_array(forward, lon, lat, lon - dlon, lat - dlat, near)


def _bd_inverse_arr(lon: FloatArray, lat: FloatArray, near: Any) -> tuple[FloatArray, FloatArray]:
    g0_lon, g0_lat = _bd_inverse_guess(lon, lat, np, _arctan2)

    def forward(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        return _bd_forward(x, y, np, _arctan2)

    return _solve_array(forward, lon, lat, g0_lon, g0_lat, near)


def _keep_if_inside(
    lon: FloatArray, lat: FloatArray, near: Any, r_lon: FloatArray, r_lat: FloatArray
) -> tuple[FloatArray, FloatArray]:
    keep = near & _inside_china_array(r_lon, r_lat, _EDGE_SLACK)
    return np.where(keep, r_lon, lon), np.where(keep, r_lat, lat)


def _gcj_to_wgs_arr(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    near = _inside_china_array(lon, lat, _ITERATE_MARGIN)
    return _keep_if_inside(lon, lat, near, *_gcj_inverse_arr(lon, lat, near))


def _gcj_to_bd_arr(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    inside = _inside_china_array(lon, lat)
    b_lon, b_lat = _bd_forward(lon, lat, np, _arctan2)
    return np.where(inside, b_lon, lon), np.where(inside, b_lat, lat)


def _bd_to_gcj_arr(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    near = _inside_china_array(lon, lat, _ITERATE_MARGIN)
    return _keep_if_inside(lon, lat, near, *_bd_inverse_arr(lon, lat, near))


def _wgs_to_bd_arr(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    inside = _inside_china_array(lon, lat)
    b_lon, b_lat = _bd_forward(*_gcj_forward(lon, lat, np), np, _arctan2)
    return np.where(inside, b_lon, lon), np.where(inside, b_lat, lat)


def _bd_to_wgs_arr(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    near = _inside_china_array(lon, lat, _ITERATE_MARGIN)
    g_lon, g_lat = _bd_inverse_arr(lon, lat, near)
    return _keep_if_inside(lon, lat, near, *_gcj_inverse_arr(g_lon, g_lat, near))


def _cgcs_arr(to_wgs: bool) -> Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]:
    def run(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        x, y = _cgcs_transformer(to_wgs).transform(lon, lat)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    return run


def _identity_arr(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return lon, lat


_ArrFn = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
_TO_WGS84_ARR: dict[str, _ArrFn] = {
    "wgs84": _identity_arr,
    "gcj02": _gcj_to_wgs_arr,
    "bd09": _bd_to_wgs_arr,
    "cgcs2000": _cgcs_arr(True),
}
_FROM_WGS84_ARR: dict[str, _ArrFn] = {
    "wgs84": _identity_arr,
    "gcj02": _wgs_to_gcj_arr,
    "bd09": _wgs_to_bd_arr,
    "cgcs2000": _cgcs_arr(False),
}


def transform_array(
    lon: ArrayLike, lat: ArrayLike, src: str, dst: str
) -> tuple[FloatArray, FloatArray]:
    """Vectorised :func:`transform`: arrays (any shape, broadcast together) of lon and lat.

    Returns new float64 arrays; the inputs are never modified. Same results as the scalar
    functions, point by point.

    :raises UnsupportedCRS: if either name is unknown.
    """
    s, d = normalize_crs(src), normalize_crs(dst)
    x, y = _as_arrays(lon, lat)
    with np.errstate(all="ignore"):  # far-off or non-finite inputs pass through unchanged
        if s == d:
            return x, y
        if (s, d) == ("gcj02", "bd09"):
            return _gcj_to_bd_arr(x, y)
        if (s, d) == ("bd09", "gcj02"):
            return _bd_to_gcj_arr(x, y)
        return _FROM_WGS84_ARR[d](*_TO_WGS84_ARR[s](x, y))


# --------------------------------------------------------------------------- GeoJSON
_DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}


def _collect(coords: Any, depth: int, out: list[Any]) -> None:
    if depth == 0:
        if not isinstance(coords, list | tuple) or len(coords) < 2:
            raise ValueError(f"invalid GeoJSON position: {coords!r}")
        out.append(coords)
        return
    if not isinstance(coords, list | tuple):
        raise ValueError(f"invalid GeoJSON coordinates: {coords!r}")
    for c in coords:
        _collect(c, depth - 1, out)


def _rebuild(coords: Any, depth: int, it: Any) -> list[Any]:
    if depth == 0:
        lon, lat = next(it)
        return [lon, lat, *coords[2:]]
    return [_rebuild(c, depth - 1, it) for c in coords]


def _geometry_positions(geom: dict[str, Any], out: list[Any]) -> None:
    gtype = geom.get("type") if isinstance(geom, dict) else None
    if gtype == "GeometryCollection":
        for g in geom.get("geometries") or []:
            _geometry_positions(g, out)
        return
    if gtype not in _DEPTH:
        raise ValueError(f"not a GeoJSON geometry: type {gtype!r}")
    _collect(geom.get("coordinates"), _DEPTH[gtype], out)


def _geometry_rebuild(geom: dict[str, Any], it: Any) -> dict[str, Any]:
    result = {k: copy.deepcopy(v) for k, v in geom.items() if k != "bbox"}
    if geom["type"] == "GeometryCollection":
        result["geometries"] = [_geometry_rebuild(g, it) for g in geom.get("geometries") or []]
    else:
        result["coordinates"] = _rebuild(geom["coordinates"], _DEPTH[geom["type"]], it)
    return result


def transform_geojson_geometry(geom: dict[str, Any], src: str, dst: str) -> dict[str, Any]:
    """A copy of the GeoJSON geometry ``geom`` with its coordinates converted ``src`` → ``dst``.

    Handles every geometry type including nested GeometryCollections; a third (altitude)
    ordinate is kept as is, other members are copied, a ``bbox`` member is recomputed. The
    input is not modified. All positions are converted in one vectorised call.

    :raises UnsupportedCRS: if either name is unknown.
    :raises ValueError: if ``geom`` is not a GeoJSON geometry.
    """
    s, d = normalize_crs(src), normalize_crs(dst)
    positions: list[Any] = []
    _geometry_positions(geom, positions)
    if positions:
        lon = np.array([p[0] for p in positions], dtype=np.float64)
        lat = np.array([p[1] for p in positions], dtype=np.float64)
        x, y = transform_array(lon, lat, s, d)
        pairs = list(zip(x.tolist(), y.tolist(), strict=True))
    else:
        pairs = []
    result = _geometry_rebuild(geom, iter(pairs))
    if "bbox" in geom and pairs:
        xs = [p[0] for p in pairs]
        ys = [p[1] for p in pairs]
        result["bbox"] = [min(xs), min(ys), max(xs), max(ys)]
    return result


# ------------------------------------------------------------ GCJ-02 over a small area
def gcj02_affine(
    bbox: tuple[float, float, float, float], samples: int = 5
) -> tuple[tuple[float, float, float, float, float, float], float]:
    """The affine map WGS84 → GCJ-02 that best fits :func:`wgs84_to_gcj02` over ``bbox``
    (min_lon, min_lat, max_lon, max_lat, WGS84), and its largest error there (degrees).

    GCJ-02 is no PROJ coordinate system, so PostGIS cannot ``ST_Transform`` to it; but over
    one map tile its offset is smooth (its gradient is at most ~2.5e-3), so an affine map —
    PostGIS's ``ST_Affine(geom, a, b, d, e, xoff, yoff)``: ``x' = a x + b y + xoff``,
    ``y' = d x + e y + yoff`` — reproduces it to a few centimetres at zoom 14 (second-order
    terms only), set-based over every vertex. The fit is least squares on a ``samples`` ×
    ``samples`` grid of exact conversions; the returned error is the largest residual on a
    grid twice as fine. Outside China the map is the identity (as the SDKs).
    """
    x0, y0, x1, y1 = (float(v) for v in bbox)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    xs = np.linspace(x0, x1, samples)
    ys = np.linspace(y0, y1, samples)
    gx, gy = (g.ravel() for g in np.meshgrid(xs, ys))
    tx, ty = _wgs_to_gcj_arr(gx, gy)
    design = np.column_stack([gx - cx, gy - cy, np.ones_like(gx)])
    # fit the offsets (not the coordinates): well conditioned whatever the longitude
    (ax, bx, ox), *_ = np.linalg.lstsq(design, tx - gx, rcond=None)
    (dy, ey, oy), *_ = np.linalg.lstsq(design, ty - gy, rcond=None)
    a, b = 1.0 + ax, bx
    d, e = dy, 1.0 + ey
    xoff = ox - ax * cx - bx * cy
    yoff = oy - dy * cx - ey * cy
    fx = np.linspace(x0, x1, 2 * samples + 1)
    fy = np.linspace(y0, y1, 2 * samples + 1)
    hx, hy = (h.ravel() for h in np.meshgrid(fx, fy))
    ex, ey_ = _wgs_to_gcj_arr(hx, hy)
    err = np.maximum(
        np.abs(a * hx + b * hy + xoff - ex), np.abs(d * hx + e * hy + yoff - ey_)
    ).max()
    return (float(a), float(b), float(d), float(e), float(xoff), float(yoff)), float(err)


def gcj02_box_to_wgs84(
    bbox: tuple[float, float, float, float], samples: int = 5
) -> tuple[float, float, float, float]:
    """The WGS84 box holding the GCJ-02 box ``bbox`` (its edges converted point by point,
    widened by the largest bend of an edge, so that nothing inside is missed)."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    t = np.linspace(0.0, 1.0, samples)
    ex = np.concatenate(
        [x0 + (x1 - x0) * t, np.full(samples, x1), x1 - (x1 - x0) * t, np.full(samples, x0)]
    )
    ey = np.concatenate(
        [np.full(samples, y0), y0 + (y1 - y0) * t, np.full(samples, y1), y1 - (y1 - y0) * t]
    )
    wx, wy = _gcj_to_wgs_arr(ex, ey)
    pad_x = (x1 - x0) * 5e-3 + 1e-7
    pad_y = (y1 - y0) * 5e-3 + 1e-7
    return (
        float(wx.min() - pad_x),
        float(wy.min() - pad_y),
        float(wx.max() + pad_x),
        float(wy.max() + pad_y),
    )
