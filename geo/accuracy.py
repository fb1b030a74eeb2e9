"""GPS accuracy grades and great-circle distance.

A visit keeps the phone's reported horizontal accuracy (the radius, in metres, of the
68 % confidence circle that Android and iOS report) and a grade judged from it.
"""

from __future__ import annotations

import math

__all__ = [
    "ACCURACY_GRADES",
    "EARTH_RADIUS_M",
    "GOOD_M",
    "FAIR_M",
    "ACCEPTABLE_M",
    "haversine_m",
    "judge_gps_accuracy",
]

#: Upper bounds (inclusive, metres) of the grades.
GOOD_M = 5.0
FAIR_M = 30.0
ACCEPTABLE_M = 100.0

#: Every value :func:`judge_gps_accuracy` may return, best first.
ACCURACY_GRADES: tuple[str, ...] = ("good", "fair", "acceptable", "poor", "unknown")

#: Mean Earth radius (IUGG, metres), used by :func:`haversine_m`.
EARTH_RADIUS_M = 6371008.8


def judge_gps_accuracy(accuracy_m: float | None) -> str:
    """Grade a reported GPS accuracy radius in metres.

    ``"good"`` (≤ 5 m), ``"fair"`` (≤ 30 m), ``"acceptable"`` (≤ 100 m), ``"poor"``
    (> 100 m, including infinity), ``"unknown"`` (``None``, NaN, a negative value or
    something that is not a number).
    """
    if accuracy_m is None or isinstance(accuracy_m, bool):
        return "unknown"
    try:
        value = float(accuracy_m)
    except (TypeError, ValueError):
        return "unknown"
    if math.isnan(value) or value < 0:
        return "unknown"
    if value <= GOOD_M:
        return "good"
    if value <= FAIR_M:
        return "fair"
    if value <= ACCEPTABLE_M:
        return "acceptable"
    return "poor"


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two WGS84 points (degrees), on a sphere.

    Within 0.5 % of the ellipsoidal distance; exact enough for walking routes and
    far-off checks.
    """
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2.0) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))
