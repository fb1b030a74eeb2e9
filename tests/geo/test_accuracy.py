"""geo.accuracy: GPS accuracy grades and haversine distance."""

from __future__ import annotations

import math

import pytest
from pyproj import Geod

from geo.accuracy import ACCURACY_GRADES, haversine_m, judge_gps_accuracy


@pytest.mark.parametrize(
    ("accuracy", "grade"),
    [
        (None, "unknown"),
        (0, "good"),
        (3.2, "good"),
        (5, "good"),
        (5.0001, "fair"),
        (12, "fair"),
        (30, "fair"),
        (30.5, "acceptable"),
        (100, "acceptable"),
        (100.01, "poor"),
        (2500, "poor"),
        (math.inf, "poor"),
        (math.nan, "unknown"),
        (-1, "unknown"),
        ("12", "fair"),
        ("abc", "unknown"),
        (True, "unknown"),
    ],
)
def test_judge_gps_accuracy(accuracy, grade):
    assert judge_gps_accuracy(accuracy) == grade
    assert grade in ACCURACY_GRADES


def test_haversine_basics():
    assert haversine_m(103.8, 36.0, 103.8, 36.0) == 0.0
    assert haversine_m(0, 0, 0, 1) == pytest.approx(111_195.08, abs=0.1)  # 1° of arc
    assert haversine_m(0, 0, 180, 0) == pytest.approx(math.pi * 6371008.8)
    a = haversine_m(103.8, 36.0, 103.9, 36.1)
    assert a == haversine_m(103.9, 36.1, 103.8, 36.0)


@pytest.mark.parametrize(
    ("p", "q"),
    [
        ((103.83, 36.06), (103.85, 36.07)),
        ((116.4, 39.9), (121.47, 31.23)),
        ((87.6, 43.8), (126.5, 45.8)),
    ],
)
def test_haversine_within_half_a_percent_of_the_ellipsoid(p, q):
    ellipsoidal = Geod(ellps="WGS84").inv(p[0], p[1], q[0], q[1])[2]
    assert haversine_m(*p, *q) == pytest.approx(ellipsoidal, rel=5e-3)
