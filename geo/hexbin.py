"""Hexagon-bin sizes and web-mercator (EPSG:3857) tile math.

Tiles use the XYZ scheme of web maps and of PostGIS's ``ST_TileEnvelope``: 256-pixel
tiles, ``x`` growing east and ``y`` growing *south* from the north-west corner, ``2**z``
tiles per side. :func:`tile_bounds_3857` computes the same envelope as
``ST_TileEnvelope(z, x, y)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "EARTH_RADIUS_3857",
    "HEX_ACROSS_PX",
    "MAX_HEX_EDGE_M",
    "MAX_LAT_3857",
    "MAX_ZOOM",
    "MIN_HEX_EDGE_M",
    "ORIGIN_SHIFT",
    "TILE_SIZE_PX",
    "hex_size_for_zoom",
    "lonlat_bbox_to_tile_range",
    "lonlat_bbox_to_tiles",
    "lonlat_to_3857",
    "lonlat_to_tile",
    "resolution_m_per_px",
    "tile_bounds_3857",
]

#: Sphere radius of EPSG:3857 (metres).
EARTH_RADIUS_3857 = 6378137.0
#: Half the width of the EPSG:3857 world square: pi * R = 20037508.342789244 m.
ORIGIN_SHIFT = math.pi * EARTH_RADIUS_3857
#: Latitude at which web mercator is cut off (the world becomes a square).
MAX_LAT_3857 = 85.0511287798066
#: Pixels per tile side.
TILE_SIZE_PX = 256
#: Deepest zoom accepted by the tile functions.
MAX_ZOOM = 30

#: Target width of one heatmap hexagon on screen, in pixels.
HEX_ACROSS_PX = 40.0
#: Bounds on the hexagon edge (EPSG:3857 metres): no finer than a building, and no
#: coarser than a prefecture, whatever the zoom.
MIN_HEX_EDGE_M = 10.0
MAX_HEX_EDGE_M = 100_000.0

BBox = tuple[float, float, float, float]


def _check_zoom(zoom: float) -> None:
    if isinstance(zoom, bool) or not isinstance(zoom, int | float):
        raise ValueError(f"zoom must be a number, got {zoom!r}")
    if not math.isfinite(zoom) or zoom < 0:
        raise ValueError(f"zoom must be finite and ≥ 0, got {zoom!r}")


def resolution_m_per_px(zoom: float) -> float:
    """EPSG:3857 metres per pixel at ``zoom`` (256-pixel tiles; at the equator, on the
    ground it is this times cos(latitude))."""
    _check_zoom(zoom)
    return 2.0 * ORIGIN_SHIFT / (TILE_SIZE_PX * math.pow(2.0, zoom))


def hex_size_for_zoom(zoom: int) -> float:
    """Hexagon edge length, in EPSG:3857 metres, for heatmap bins at web-map ``zoom``.

    PostGIS's ``ST_HexagonGrid(size, bounds)`` takes this edge length; its hexagons are
    flat-topped, 2·size wide vertex to vertex. The size is chosen so that a hexagon is
    about :data:`HEX_ACROSS_PX` (40) pixels wide on screen, clamped to
    [:data:`MIN_HEX_EDGE_M`, :data:`MAX_HEX_EDGE_M`]. Fractional zooms are accepted.

    :raises ValueError: for a negative or non-finite zoom.
    """
    edge = resolution_m_per_px(zoom) * HEX_ACROSS_PX / 2.0
    return min(MAX_HEX_EDGE_M, max(MIN_HEX_EDGE_M, edge))


def _check_tile(z: int, x: int, y: int) -> None:
    for name, v in (("z", z), ("x", x), ("y", y)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"tile {name} must be an integer, got {v!r}")
    if not 0 <= z <= MAX_ZOOM:
        raise ValueError(f"tile zoom must be in 0..{MAX_ZOOM}, got {z}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise ValueError(f"tile {z}/{x}/{y} does not exist (x and y must be in 0..{n - 1})")


def tile_bounds_3857(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of XYZ tile ``z/x/y`` in EPSG:3857 metres.

    Equal to ``ST_TileEnvelope(z, x, y)``; tile 0/0/0 is ±20037508.342789244.

    :raises ValueError: for a tile that does not exist.
    """
    _check_tile(z, x, y)
    size = 2.0 * ORIGIN_SHIFT / (1 << z)
    return (
        -ORIGIN_SHIFT + size * x,
        ORIGIN_SHIFT - size * (y + 1),
        -ORIGIN_SHIFT + size * (x + 1),
        ORIGIN_SHIFT - size * y,
    )


def lonlat_to_3857(lon: float, lat: float) -> tuple[float, float]:
    """WGS84 (lon, lat) → EPSG:3857 (x, y) metres; latitude clamped to ±85.0511°."""
    lat = max(-MAX_LAT_3857, min(MAX_LAT_3857, lat))
    x = lon * ORIGIN_SHIFT / 180.0
    y = math.log(math.tan(math.radians(90.0 + lat) / 2.0)) * EARTH_RADIUS_3857
    return x, y


def _tile_index(v: float, n: int) -> int:
    return min(n - 1, max(0, math.floor(v)))


def lonlat_to_tile(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    """(x, y) of the XYZ tile at ``zoom`` containing WGS84 (lon, lat) (clamped to the world).

    :raises ValueError: for a zoom outside 0..30.
    """
    _check_tile(zoom, 0, 0)
    mx, my = lonlat_to_3857(lon, lat)
    n = 1 << zoom
    size = 2.0 * ORIGIN_SHIFT / n
    return _tile_index((mx + ORIGIN_SHIFT) / size, n), _tile_index((ORIGIN_SHIFT - my) / size, n)


def lonlat_bbox_to_tile_range(
    bbox: Sequence[float], zoom: int, *, buffer: float = 0.0
) -> tuple[int, int, int, int]:
    """(xmin, ymin, xmax, ymax), inclusive, of the XYZ tiles at ``zoom`` touching ``bbox``.

    :param bbox: (min_lon, min_lat, max_lon, max_lat) in WGS84; not across the antimeridian.
    :param buffer: widen each tile by this fraction of its size on every side before the
        test, e.g. ``64 / 4096`` for MVT tiles built with a 64-unit buffer (a feature near
        a tile's edge is drawn in its neighbour too).
    :raises ValueError: for a malformed bbox or zoom.
    """
    _check_tile(zoom, 0, 0)
    if len(bbox) != 4:
        raise ValueError(f"bbox must be (min_lon, min_lat, max_lon, max_lat), got {bbox!r}")
    min_lon, min_lat, max_lon, max_lat = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (min_lon, min_lat, max_lon, max_lat)):
        raise ValueError(f"bbox must be finite, got {bbox!r}")
    if min_lon > max_lon or min_lat > max_lat:
        raise ValueError(f"bbox minimum exceeds maximum: {bbox!r}")
    if not 0.0 <= buffer < 1.0:
        raise ValueError(f"buffer must be a fraction of a tile in [0, 1), got {buffer!r}")
    n = 1 << zoom
    size = 2.0 * ORIGIN_SHIFT / n
    x0, y0 = lonlat_to_3857(max(-180.0, min_lon), min_lat)
    x1, y1 = lonlat_to_3857(min(180.0, max_lon), max_lat)
    pad = buffer * size
    return (
        _tile_index((x0 - pad + ORIGIN_SHIFT) / size, n),
        _tile_index((ORIGIN_SHIFT - (y1 + pad)) / size, n),
        _tile_index((x1 + pad + ORIGIN_SHIFT) / size, n),
        _tile_index((ORIGIN_SHIFT - (y0 - pad)) / size, n),
    )


def lonlat_bbox_to_tiles(
    bbox: Sequence[float],
    zoom: int,
    *,
    buffer: float = 0.0,
    max_tiles: int | None = 65_536,
) -> list[tuple[int, int, int]]:
    """Every XYZ tile ``(z, x, y)`` at ``zoom`` touching ``bbox``, x-major then y.

    Tiles whose closed envelope touches the box are included (a box edge lying exactly
    on a tile boundary also yields the tile on the other side), which is what cache
    invalidation needs. See :func:`lonlat_bbox_to_tile_range` for ``bbox`` and ``buffer``.

    :param max_tiles: refuse (ValueError) to list more tiles than this; ``None``: no limit.
    """
    xmin, ymin, xmax, ymax = lonlat_bbox_to_tile_range(bbox, zoom, buffer=buffer)
    count = (xmax - xmin + 1) * (ymax - ymin + 1)
    if max_tiles is not None and count > max_tiles:
        raise ValueError(f"bbox covers {count} tiles at zoom {zoom}, more than {max_tiles}")
    return [(zoom, x, y) for x in range(xmin, xmax + 1) for y in range(ymin, ymax + 1)]
