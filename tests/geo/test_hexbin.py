"""geo.hexbin: hexagon sizes per zoom and web-mercator tile math."""

from __future__ import annotations

import math

import pytest
from pyproj import Transformer

from geo.hexbin import (
    HEX_ACROSS_PX,
    MAX_HEX_EDGE_M,
    MIN_HEX_EDGE_M,
    ORIGIN_SHIFT,
    hex_size_for_zoom,
    lonlat_bbox_to_tile_range,
    lonlat_bbox_to_tiles,
    lonlat_to_3857,
    lonlat_to_tile,
    resolution_m_per_px,
    tile_bounds_3857,
)

TO_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
WORLD = 20037508.342789244


def test_tile_0_0_0_is_the_whole_world():
    assert ORIGIN_SHIFT == pytest.approx(WORLD, abs=1e-9)
    assert tile_bounds_3857(0, 0, 0) == pytest.approx((-WORLD, -WORLD, WORLD, WORLD), abs=1e-6)


def test_tile_bounds_known_values():
    # ST_TileEnvelope(2, 1, 1) = POLYGON((-10018754.1713945 0, ..., 0 10018754.1713945))
    assert tile_bounds_3857(2, 1, 1) == pytest.approx((-WORLD / 2, 0, 0, WORLD / 2), abs=1e-6)
    assert tile_bounds_3857(1, 1, 0) == pytest.approx((0, 0, WORLD, WORLD), abs=1e-6)
    assert tile_bounds_3857(1, 0, 1) == pytest.approx((-WORLD, -WORLD, 0, 0), abs=1e-6)


def _slippy_corner(z: int, x: int, y: int) -> tuple[float, float]:
    """North-west corner (lon, lat) of a tile, by the OpenStreetMap wiki formulas."""
    n = 2**z
    lon = x / n * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
    return lon, lat


@pytest.mark.parametrize(("z", "x", "y"), [(3, 5, 2), (12, 3227, 1607), (16, 51642, 25723)])
def test_tile_bounds_agree_with_pyproj_and_slippy_map_formulas(z, x, y):
    xmin, ymin, xmax, ymax = tile_bounds_3857(z, x, y)
    nw = TO_3857.transform(*_slippy_corner(z, x, y))
    se = TO_3857.transform(*_slippy_corner(z, x + 1, y + 1))
    assert (xmin, ymax) == pytest.approx(nw, abs=1e-3)
    assert (xmax, ymin) == pytest.approx(se, abs=1e-3)


@pytest.mark.parametrize(
    ("z", "x", "y"), [(-1, 0, 0), (31, 0, 0), (1, 2, 0), (1, 0, -1), (2, 1.5, 0)]
)
def test_tile_bounds_reject_missing_tiles(z, x, y):
    with pytest.raises(ValueError):
        tile_bounds_3857(z, x, y)


def test_lonlat_to_3857_agrees_with_pyproj():
    for lon, lat in [(103.8343, 36.0611), (-74.0, 40.7), (0, 0), (179.9, -60)]:
        assert lonlat_to_3857(lon, lat) == pytest.approx(TO_3857.transform(lon, lat), abs=1e-6)


def test_lonlat_to_tile():
    assert lonlat_to_tile(0.0, 0.0, 0) == (0, 0)
    assert lonlat_to_tile(0.001, 0.001, 1) == (1, 0)
    assert lonlat_to_tile(-0.001, -0.001, 1) == (0, 1)
    assert lonlat_to_tile(103.8343, 36.0611, 12) == (3229, 1607)  # OSM wiki formula
    assert lonlat_to_tile(180.0, -90.0, 4) == (15, 15)  # clamped to the world


def test_lonlat_bbox_to_tiles_contains_the_bbox():
    bbox = (103.80, 36.03, 103.86, 36.08)
    tiles = lonlat_bbox_to_tiles(bbox, 14)
    assert tiles and all(t[0] == 14 for t in tiles)
    assert len(set(tiles)) == len(tiles)
    xs = [tile_bounds_3857(*t) for t in tiles]
    x0, y0 = lonlat_to_3857(bbox[0], bbox[1])
    x1, y1 = lonlat_to_3857(bbox[2], bbox[3])
    assert min(b[0] for b in xs) <= x0 and max(b[2] for b in xs) >= x1
    assert min(b[1] for b in xs) <= y0 and max(b[3] for b in xs) >= y1
    xmin, ymin, xmax, ymax = lonlat_bbox_to_tile_range(bbox, 14)
    assert len(tiles) == (xmax - xmin + 1) * (ymax - ymin + 1)


def test_lonlat_bbox_to_tiles_small_and_world():
    p = (103.8343, 36.0611)
    assert lonlat_bbox_to_tiles((*p, *p), 15) == [(15, *lonlat_to_tile(*p, 15))]
    assert lonlat_bbox_to_tiles((-180, -90, 180, 90), 0) == [(0, 0, 0)]
    assert lonlat_bbox_to_tiles((-180, -90, 180, 90), 1) == [
        (1, 0, 0),
        (1, 0, 1),
        (1, 1, 0),
        (1, 1, 1),
    ]


def test_lonlat_bbox_to_tiles_buffer_reaches_neighbours():
    # a point just inside tile (1, 0) at zoom 1, near its western edge (lon 0)
    near_edge = (0.01, 10.0, 0.01, 10.0)
    assert lonlat_bbox_to_tiles(near_edge, 1) == [(1, 1, 0)]
    assert lonlat_bbox_to_tiles(near_edge, 1, buffer=64 / 4096) == [(1, 0, 0), (1, 1, 0)]


@pytest.mark.parametrize(
    "bbox", [(1, 2, 0, 3), (0, 3, 1, 2), (0, 0, 1), (0, 0, math.nan, 1), (0, 0, math.inf, 1)]
)
def test_lonlat_bbox_to_tiles_rejects_bad_boxes(bbox):
    with pytest.raises(ValueError):
        lonlat_bbox_to_tiles(bbox, 5)


def test_lonlat_bbox_to_tiles_caps_the_count():
    with pytest.raises(ValueError):
        lonlat_bbox_to_tiles((73, 18, 135, 53), 14, max_tiles=1000)
    assert len(lonlat_bbox_to_tiles((73, 18, 135, 53), 6, max_tiles=None)) > 4


def test_hex_size_is_about_40_pixels_across():
    for zoom in range(10, 19):
        size = hex_size_for_zoom(zoom)
        assert 2 * size / resolution_m_per_px(zoom) == pytest.approx(HEX_ACROSS_PX)
    assert hex_size_for_zoom(14) == pytest.approx(191.09, abs=0.01)


def test_hex_size_is_clamped_and_monotone():
    sizes = [hex_size_for_zoom(z) for z in range(0, 25)]
    assert all(a >= b for a, b in zip(sizes, sizes[1:], strict=False))
    assert sizes[0] == MAX_HEX_EDGE_M and sizes[-1] == MIN_HEX_EDGE_M
    assert all(MIN_HEX_EDGE_M <= s <= MAX_HEX_EDGE_M for s in sizes)
    assert MIN_HEX_EDGE_M < hex_size_for_zoom(13.5) < MAX_HEX_EDGE_M


@pytest.mark.parametrize("zoom", [-1, math.nan, math.inf, "12", None])
def test_hex_size_rejects_bad_zoom(zoom):
    with pytest.raises(ValueError):
        hex_size_for_zoom(zoom)
