"""geo.crs: WGS84 / GCJ-02 / BD-09 / CGCS2000 conversion (pure Python, no database)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import crs
from geo.accuracy import haversine_m
from geo.crs import (
    CHINA_BBOX,
    SUPPORTED_CRS,
    UnsupportedCRS,
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    normalize_crs,
    out_of_china,
    to_wgs84,
    transform,
    transform_array,
    transform_geojson_geometry,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

HYPOTHESIS = settings(max_examples=150, deadline=None, derandomize=True)

# Reference pairs (WGS84 lon, lat) → (GCJ-02 lon, lat) from the eviltransform test suite
# (Shanghai, Shenzhen, Beijing) and the R package of the same algorithm, plus coordtransform's
# documented example. All are reproduced to < 1e-8 degrees by the Krasovsky formula.
# (The often-quoted Tiananmen pair (116.3912757, 39.906217) → (116.397500, 39.907584) is
# NOT reproduced to 1e-5 (off by 3.4e-5 degrees in latitude), so it is not used.)
GCJ_PAIRS = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),
    ((116.39089, 39.90734), (116.39713094, 39.90874107)),
    ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),
]
# coordtransform's documented GCJ-02 → BD-09 example.
BD_PAIRS = [((116.404, 39.915), (116.41036949371029, 39.92133699351021))]

# Points strictly inside CHINA_BBOX (a hair away from its edges, where a point and its
# offset image can fall on different sides of the rectangle).
_EDGE = 0.02
china_lon = st.floats(CHINA_BBOX[0] + _EDGE, CHINA_BBOX[2] - _EDGE)
china_lat = st.floats(CHINA_BBOX[1] + _EDGE, CHINA_BBOX[3] - _EDGE)
# Eastern and central China (Lanzhou, Beijing, Shanghai, Guangzhou, Chengdu ...).
east_lon = st.floats(100.0, 122.0)
east_lat = st.floats(22.0, 42.0)

CITIES = {
    "lanzhou": (103.8343, 36.0611),
    "beijing": (116.3975, 39.9087),
    "shanghai": (121.4737, 31.2304),
    "guangzhou": (113.2644, 23.1291),
    "urumqi": (87.6168, 43.8256),
    "harbin": (126.5350, 45.8038),
    "lhasa": (91.1409, 29.6456),
}


def dist(a: tuple[float, float], b: tuple[float, float]) -> float:
    return haversine_m(a[0], a[1], b[0], b[1])


# ------------------------------------------------------------------ reference values
@pytest.mark.parametrize(("wgs", "gcj"), GCJ_PAIRS)
def test_wgs84_to_gcj02_matches_reference_pairs(wgs, gcj):
    lon, lat = wgs84_to_gcj02(*wgs)
    assert lon == pytest.approx(gcj[0], abs=1e-5)
    assert lat == pytest.approx(gcj[1], abs=1e-5)
    assert from_wgs84(*wgs, "gcj02") == (lon, lat)


@pytest.mark.parametrize(("wgs", "gcj"), GCJ_PAIRS)
def test_gcj02_to_wgs84_inverts_reference_pairs(wgs, gcj):
    lon, lat = gcj02_to_wgs84(*gcj)
    assert lon == pytest.approx(wgs[0], abs=1e-7)
    assert lat == pytest.approx(wgs[1], abs=1e-7)


def test_inverse_is_better_than_the_one_step_approximation():
    # coordtransform's one-step gcj02towgs84(116.404, 39.915): ~0.06 m from the exact inverse.
    approx = (116.39775550083061, 39.91359571849836)
    exact = gcj02_to_wgs84(116.404, 39.915)
    assert 0.0 < dist(approx, exact) < 0.5
    back = wgs84_to_gcj02(*exact)
    assert max(abs(back[0] - 116.404), abs(back[1] - 39.915)) < 1e-7


@pytest.mark.parametrize(("gcj", "bd"), BD_PAIRS)
def test_gcj02_to_bd09_matches_reference_pair(gcj, bd):
    lon, lat = gcj02_to_bd09(*gcj)
    assert lon == pytest.approx(bd[0], abs=1e-8)
    assert lat == pytest.approx(bd[1], abs=1e-8)
    # Baidu's closed-form inverse gives (116.39762729119315, 39.90865673957631) for
    # (116.404, 39.915); ours is the iterated exact inverse, within 0.1 m of it.
    assert dist(bd09_to_gcj02(116.404, 39.915), (116.39762729119315, 39.90865673957631)) < 0.1


# --------------------------------------------------------------------- properties
@HYPOTHESIS
@given(china_lon, china_lat)
def test_gcj02_round_trip_under_half_a_metre(lon, lat):
    g = wgs84_to_gcj02(lon, lat)
    back = gcj02_to_wgs84(*g)
    assert dist((lon, lat), back) < 0.5
    # and the iteration really converged: forward(inverse(g)) == g to 1e-7 degrees
    again = wgs84_to_gcj02(*back)
    assert max(abs(again[0] - g[0]), abs(again[1] - g[1])) < 1e-7


@HYPOTHESIS
@given(china_lon, china_lat)
def test_bd09_round_trips_under_half_a_metre(lon, lat):
    b = wgs84_to_bd09(lon, lat)
    assert dist((lon, lat), bd09_to_wgs84(*b)) < 0.5
    g = wgs84_to_gcj02(lon, lat)
    assert dist(g, bd09_to_gcj02(*gcj02_to_bd09(*g))) < 0.5


@HYPOTHESIS
@given(east_lon, east_lat)
def test_gcj02_offset_is_hundreds_of_metres_in_eastern_china(lon, lat):
    assert 100.0 < dist((lon, lat), wgs84_to_gcj02(lon, lat)) < 700.0


@HYPOTHESIS
@given(china_lon, china_lat)
def test_gcj02_offset_is_bounded_everywhere_in_the_rectangle(lon, lat):
    # Smaller in places (parts of Qinghai and the South China Sea: tens of metres).
    assert 1.0 < dist((lon, lat), wgs84_to_gcj02(lon, lat)) < 750.0


@pytest.mark.parametrize("name", sorted(CITIES))
def test_cities_offsets(name):
    lon, lat = CITIES[name]
    g = wgs84_to_gcj02(lon, lat)
    assert 100.0 < dist((lon, lat), g) < 700.0
    b = gcj02_to_bd09(*g)
    # Baidu adds ~0.0065° east and ~0.006° north (plus a small rotation and scaling)
    assert b[0] - g[0] == pytest.approx(0.0065, abs=5e-4)
    assert b[1] - g[1] == pytest.approx(0.006, abs=5e-4)
    assert wgs84_to_bd09(lon, lat) == pytest.approx(b, abs=1e-12)


@HYPOTHESIS
@given(china_lon, china_lat)
def test_bd09_offset_pattern(lon, lat):
    b = gcj02_to_bd09(lon, lat)
    assert b[0] - lon == pytest.approx(0.0065, abs=5e-4)
    assert b[1] - lat == pytest.approx(0.006, abs=5e-4)


OUTSIDE = [
    (2.3522, 48.8566),  # Paris
    (-74.006, 40.7128),  # New York
    (139.6917, 35.6895),  # Tokyo
    (151.2093, -33.8688),  # Sydney
    (0.0, 0.0),
    (-180.0, -90.0),
    (180.0, 90.0),
    (72.0, 30.0),  # just west of the rectangle
    (120.0, 56.0),  # just north of it
]


@pytest.mark.parametrize("point", OUTSIDE)
def test_no_offset_outside_china(point):
    assert out_of_china(*point)
    for name in SUPPORTED_CRS:
        assert from_wgs84(*point, name) == pytest.approx(point, abs=1e-12)
        assert to_wgs84(*point, name) == pytest.approx(point, abs=1e-12)
    assert gcj02_to_bd09(*point) == point
    assert bd09_to_gcj02(*point) == point


def test_out_of_china():
    assert not out_of_china(103.8343, 36.0611)
    assert not out_of_china(CHINA_BBOX[0], CHINA_BBOX[1])  # edges are inside
    assert out_of_china(CHINA_BBOX[0] - 1e-6, 30.0)


# ---------------------------------------------------------------------- dispatcher
@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("wgs84", "wgs84"),
        ("WGS84", "wgs84"),
        ("EPSG:4326", "wgs84"),
        ("epsg:4326", "wgs84"),
        (" GCJ02 ", "gcj02"),
        ("gcj-02", "gcj02"),
        ("BD09", "bd09"),
        ("cgcs2000", "cgcs2000"),
        ("CGCS2000", "cgcs2000"),
        ("EPSG:4490", "cgcs2000"),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "wgs84"),
    ],
)
def test_normalize_crs(name, canonical):
    assert normalize_crs(name) == canonical
    assert to_wgs84(116.4, 39.9, name) == pytest.approx(to_wgs84(116.4, 39.9, canonical), abs=1e-12)


@pytest.mark.parametrize("bad", ["", "wgs-72", "EPSG:3857", "mars", None, 4326])
def test_unknown_crs_is_rejected_with_the_accepted_names(bad):
    with pytest.raises(UnsupportedCRS) as err:
        to_wgs84(116.4, 39.9, bad)
    assert isinstance(err.value, ValueError)
    for name in SUPPORTED_CRS:
        assert name in str(err.value)
    with pytest.raises(ValueError):
        from_wgs84(116.4, 39.9, bad)
    with pytest.raises(UnsupportedCRS):
        transform_array([116.4], [39.9], "wgs84", bad)


def test_supported_crs():
    assert SUPPORTED_CRS == ("wgs84", "gcj02", "bd09", "cgcs2000")


def test_dispatcher_matches_the_named_functions():
    p = CITIES["lanzhou"]
    assert from_wgs84(*p, "wgs84") == p
    assert from_wgs84(*p, "gcj02") == wgs84_to_gcj02(*p)
    assert from_wgs84(*p, "bd09") == wgs84_to_bd09(*p)
    g = wgs84_to_gcj02(*p)
    assert to_wgs84(*g, "gcj02") == gcj02_to_wgs84(*g)
    b = wgs84_to_bd09(*p)
    assert to_wgs84(*b, "bd09") == bd09_to_wgs84(*b)
    assert transform(*g, "gcj02", "bd09") == gcj02_to_bd09(*g)
    assert transform(*b, "bd09", "gcj02") == bd09_to_gcj02(*b)
    assert dist(transform(*g, "GCJ02", "EPSG:4326"), p) < 0.01


def test_cgcs2000_coincides_with_wgs84():
    for p in CITIES.values():
        assert dist(to_wgs84(*p, "cgcs2000"), p) < 0.01
        assert dist(from_wgs84(*p, "EPSG:4490"), p) < 0.01
    assert crs._cgcs_transformer(True) is crs._cgcs_transformer(True)  # cached


def test_results_are_plain_floats():
    for name in SUPPORTED_CRS:
        for value in (*to_wgs84(116, 39, name), *from_wgs84(116, 39, name)):
            assert type(value) is float


# ------------------------------------------------------------------------ arrays
@pytest.mark.parametrize("src", SUPPORTED_CRS)
@pytest.mark.parametrize("dst", SUPPORTED_CRS)
def test_transform_array_matches_scalar(src, dst):
    rng = np.random.default_rng(7)
    lon = np.concatenate([rng.uniform(73, 135, 40), [2.35, -74.0, 139.69]])
    lat = np.concatenate([rng.uniform(18, 53, 40), [48.85, 40.71, 35.69]])
    lon_in, lat_in = lon.copy(), lat.copy()
    x, y = transform_array(lon, lat, src, dst)
    assert x.shape == lon.shape and y.shape == lat.shape
    np.testing.assert_array_equal(lon, lon_in)  # inputs untouched
    np.testing.assert_array_equal(lat, lat_in)
    for i in range(lon.size):
        sx, sy = transform(float(lon[i]), float(lat[i]), src, dst)
        assert abs(sx - x[i]) < 1e-9 and abs(sy - y[i]) < 1e-9


def test_transform_array_keeps_shape_and_passes_nan_through():
    lon = np.array([[116.4, np.nan], [1e300, 103.8]])
    lat = np.array([[39.9, 30.0], [0.0, 36.0]])
    x, y = transform_array(lon, lat, "gcj02", "wgs84")
    assert x.shape == (2, 2)
    assert np.isnan(x[0, 1]) and x[1, 0] == 1e300
    assert dist((x[1, 1], y[1, 1]), gcj02_to_wgs84(103.8, 36.0)) < 1e-6


# ----------------------------------------------------------------------- GeoJSON
def _geometries() -> list[dict]:
    ring = [[103.83, 36.06], [103.84, 36.06], [103.84, 36.07], [103.83, 36.07], [103.83, 36.06]]
    hole = [[103.833, 36.063], [103.836, 36.063], [103.836, 36.066], [103.833, 36.063]]
    return [
        {"type": "Point", "coordinates": [103.8343, 36.0611]},
        {"type": "Point", "coordinates": [103.8343, 36.0611, 1520.5]},
        {"type": "MultiPoint", "coordinates": [[103.83, 36.06], [103.84, 36.07]]},
        {"type": "LineString", "coordinates": ring[:3]},
        {"type": "MultiLineString", "coordinates": [ring[:2], ring[2:]]},
        {"type": "Polygon", "coordinates": [ring, hole]},
        {"type": "MultiPolygon", "coordinates": [[ring], [ring, hole]]},
        {
            "type": "GeometryCollection",
            "geometries": [
                {"type": "Point", "coordinates": [103.8343, 36.0611]},
                {
                    "type": "GeometryCollection",
                    "geometries": [{"type": "LineString", "coordinates": ring[:2]}],
                },
            ],
        },
        {"type": "MultiPoint", "coordinates": []},
    ]


def _positions(geom: dict) -> list[list[float]]:
    if geom["type"] == "GeometryCollection":
        return [p for g in geom["geometries"] for p in _positions(g)]
    depth = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2}
    out: list = [geom["coordinates"]]
    for _ in range(depth.get(geom["type"], 3)):
        out = [c for item in out for c in item]
    return out


@pytest.mark.parametrize("geom", _geometries(), ids=lambda g: g["type"])
@pytest.mark.parametrize("dst", ["gcj02", "bd09", "cgcs2000"])
def test_transform_geojson_geometry(geom, dst):
    original = copy.deepcopy(geom)
    out = transform_geojson_geometry(geom, "wgs84", dst)
    assert geom == original  # not modified
    json.dumps(out)  # plain JSON types
    assert out["type"] == geom["type"]
    src_pos, out_pos = _positions(geom), _positions(out)
    assert len(src_pos) == len(out_pos)
    for p, q in zip(src_pos, out_pos, strict=True):
        assert (q[0], q[1]) == pytest.approx(from_wgs84(p[0], p[1], dst), abs=1e-12)
        assert q[2:] == p[2:]  # altitude kept
    back = transform_geojson_geometry(out, dst, "wgs84")
    for p, q in zip(src_pos, _positions(back), strict=True):
        assert dist((p[0], p[1]), (q[0], q[1])) < 0.5


def test_transform_geojson_geometry_recomputes_bbox():
    geom = {"type": "LineString", "coordinates": [[103.83, 36.06], [103.84, 36.07]]}
    geom["bbox"] = [103.83, 36.06, 103.84, 36.07]
    out = transform_geojson_geometry(geom, "wgs84", "gcj02")
    a = wgs84_to_gcj02(103.83, 36.06)
    b = wgs84_to_gcj02(103.84, 36.07)
    assert out["bbox"] == pytest.approx([a[0], a[1], b[0], b[1]])


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "Feature", "geometry": None},
        {"type": "Point"},
        {"type": "Point", "coordinates": [1.0]},
        {"type": "LineString", "coordinates": [1.0, 2.0]},
        "POINT(1 2)",
    ],
)
def test_transform_geojson_geometry_rejects_non_geometries(bad):
    with pytest.raises(ValueError):
        transform_geojson_geometry(bad, "wgs84", "gcj02")


def test_transform_geojson_geometry_rejects_unknown_crs():
    with pytest.raises(UnsupportedCRS):
        transform_geojson_geometry({"type": "Point", "coordinates": [1, 2]}, "wgs84", "xy")
