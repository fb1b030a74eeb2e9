"""geo.route: walking order (nearest neighbour + 2-opt) for a day's visits."""

from __future__ import annotations

import json
import math
import random

import pytest

from geo.accuracy import haversine_m
from geo.route import RouteResult, order_stops, path_length_m

START = (103.7700, 36.0560)


def scattered(n: int, seed: int) -> list[tuple[float, float]]:
    """``n`` points scattered over ~3 km × 2 km of a Lanzhou street."""
    rnd = random.Random(seed)
    return [(103.76 + rnd.random() * 0.035, 36.045 + rnd.random() * 0.02) for _ in range(n)]


def _is_permutation(order: list[int], n: int) -> bool:
    return sorted(order) == list(range(n))


@pytest.mark.parametrize("start", [START, None])
def test_30_points_beat_the_input_order_and_nearest_neighbour(start):
    stops = scattered(30, seed=20261001)
    head = [start] if start else []
    input_len = path_length_m(head + stops)
    nn = order_stops(start, stops, improve=False)
    best = order_stops(start, stops)
    for r in (nn, best):
        assert _is_permutation(r.order, 30)
        assert r.length_m == pytest.approx(path_length_m(r.path), abs=1e-6)
        assert r.path == head + [stops[i] for i in r.order]
    assert best.length_m < input_len
    assert nn.length_m < input_len
    assert best.length_m <= nn.length_m + 1e-9
    assert best.length_m < 0.5 * input_len  # random order is far longer than a walk


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_two_opt_is_never_worse_than_nearest_neighbour(seed):
    stops = scattered(25, seed)
    for start in (START, None):
        assert (
            order_stops(start, stops).length_m
            <= order_stops(start, stops, improve=False).length_m + 1e-9
        )


def test_result_is_two_opt_optimal():
    """No single segment reversal (start fixed, free end) shortens the returned path."""
    stops = scattered(30, seed=99)
    r = order_stops(START, stops)
    pts = r.path
    best = path_length_m(pts)
    for i in range(1, len(pts) - 1):
        for j in range(i + 1, len(pts)):
            cand = pts[:i] + pts[i : j + 1][::-1] + pts[j + 1 :]
            assert path_length_m(cand) >= best - 1e-6


def test_deterministic():
    stops = scattered(40, seed=7)
    a = order_stops(START, stops)
    b = order_stops(START, list(stops))
    assert a.order == b.order and a.length_m == b.length_m


def test_points_on_a_line_are_walked_end_to_end():
    line = [(103.77 + 0.001 * k, 36.05) for k in range(10)]
    shuffled = [line[k] for k in (3, 7, 0, 9, 5, 1, 8, 2, 6, 4)]
    r = order_stops(line[0], shuffled)
    assert [shuffled[i] for i in r.order] == line
    assert r.length_m == pytest.approx(haversine_m(*line[0], *line[-1]), rel=1e-9)
    free = order_stops(None, shuffled)
    assert free.length_m == pytest.approx(haversine_m(*line[0], *line[-1]), rel=1e-9)


def test_zero_stops():
    for start in (START, None):
        r = order_stops(start, [])
        assert r.order == [] and r.length_m == 0.0
        f = r.as_geojson()
        assert f["type"] == "Feature" and f["geometry"] is None
        assert f["properties"]["stop_count"] == 0 and f["properties"]["length_m"] == 0.0


def test_one_stop():
    stop = (103.7750, 36.0580)
    r = order_stops(None, [stop])
    assert r.order == [0] and r.length_m == 0.0
    assert r.as_geojson()["geometry"] is None  # nothing to walk
    r = order_stops(START, [stop])
    assert r.order == [0]
    assert r.length_m == pytest.approx(haversine_m(*START, *stop))
    assert r.as_geojson()["geometry"]["coordinates"] == [list(START), list(stop)]


def test_two_stops():
    near, far = (103.7710, 36.0565), (103.7900, 36.0600)
    r = order_stops(START, [far, near])
    assert r.order == [1, 0]
    assert r.length_m == pytest.approx(path_length_m([START, near, far]))
    r = order_stops(None, [far, near])
    assert _is_permutation(r.order, 2)
    assert r.length_m == pytest.approx(haversine_m(*near, *far))


def test_duplicate_stops():
    p = (103.7750, 36.0580)
    r = order_stops(START, [p, p, p])
    assert _is_permutation(r.order, 3)
    assert r.length_m == pytest.approx(haversine_m(*START, *p))


def test_geojson_shape():
    stops = scattered(12, seed=3)
    r = order_stops(START, stops)
    assert isinstance(r, RouteResult)
    f = r.as_geojson()
    json.dumps(f)
    assert f["type"] == "Feature"
    geom = f["geometry"]
    assert geom["type"] == "LineString"
    coords = geom["coordinates"]
    assert len(coords) == len(stops) + 1
    assert coords[0] == list(START)
    assert all(len(c) == 2 and all(isinstance(v, float) for v in c) for c in coords)
    assert coords[1:] == [list(stops[i]) for i in r.order]
    props = f["properties"]
    assert props["stop_count"] == 12
    assert props["length_m"] == pytest.approx(r.length_m, abs=0.05)
    assert props["order"] == r.order


@pytest.mark.parametrize(
    "stops", [[(math.nan, 36.0)], [(103.7, math.inf)], [(103.7,)], [None], [("a", "b")]]
)
def test_bad_coordinates_are_rejected(stops):
    with pytest.raises(ValueError):
        order_stops(START, stops)


def test_bad_start_is_rejected():
    with pytest.raises(ValueError):
        order_stops((math.nan, 1.0), [(103.7, 36.0)])


def test_path_length():
    assert path_length_m([]) == 0.0
    assert path_length_m([START]) == 0.0
    a, b, c = (0.0, 0.0), (0.0, 1.0), (1.0, 1.0)
    assert path_length_m([a, b, c]) == pytest.approx(haversine_m(*a, *b) + haversine_m(*b, *c))


def test_a_few_hundred_stops_stay_fast():
    stops = scattered(300, seed=11)
    r = order_stops(START, stops)
    assert _is_permutation(r.order, 300)
    assert r.length_m < order_stops(START, stops, improve=False).length_m
