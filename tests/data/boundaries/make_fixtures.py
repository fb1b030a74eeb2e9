"""Writes the small boundary fixtures of tests/test_boundaries_real.py (run once; the output
is committed): ``python tests/data/boundaries/make_fixtures.py``.

A new street 620103004 east of the demo street (local metres 1100..1800 × 0..700 of the demo's
transverse-Mercator frame), split into two communities that share the edge x = 1400 exactly,
with an enclave (1500..1600 × 300..400) that belongs to neither, declared by a feature whose
类型 is 飞地. Coordinates are GCJ-02 (as drawn on an Amap/Tencent base map), written as
RFC 7946 GeoJSON (no ``crs`` member), 7 decimals.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from pyproj import Transformer  # noqa: E402

from geo.crs import transform  # noqa: E402

# the demo street's local frame (fixtures/demo_street.py: ORIGIN_LON, ORIGIN_LAT, _to_wgs84)
_to_wgs84 = Transformer.from_crs(
    "+proj=tmerc +lat_0=36.056 +lon_0=103.77 +k=1 +x_0=0 +y_0=0 +ellps=WGS84",
    "EPSG:4326",
    always_xy=True,
)

HERE = Path(__file__).parent


def gcj(x: float, y: float) -> list[float]:
    lon, lat = _to_wgs84.transform(x, y)
    g = transform(lon, lat, "wgs84", "gcj02")
    return [round(g[0], 7), round(g[1], 7)]


def ring(points: list[tuple[float, float]]) -> list[list[float]]:
    pts = [gcj(x, y) for x, y in points]
    return pts + [pts[0]]


def feature(props: dict, *rings: list[tuple[float, float]]) -> dict:
    return {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": "Polygon", "coordinates": [ring(r) for r in rings]},
    }


def write(name: str, features: list[dict]) -> None:
    doc = {"type": "FeatureCollection", "name": name, "features": features}
    (HERE / f"{name}.geojson").write_text(
        json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )


STREET = [(1100, 0), (1400, 0), (1800, 0), (1800, 700), (1400, 700), (1100, 700)]
WEST = [(1100, 0), (1400, 0), (1400, 700), (1100, 700)]
EAST = [(1400, 0), (1800, 0), (1800, 700), (1400, 700)]
ENCLAVE = [(1500, 300), (1600, 300), (1600, 400), (1500, 400)]

write(
    "streets_gcj02",
    [feature({"街道编码": "004", "名称": "新城街道", "区县编码": "620103"}, STREET)],
)
write(
    "communities_gcj02",
    [
        feature({"sqbm": "001", "mc": "西园社区", "lx": ""}, WEST),
        feature({"sqbm": "002", "mc": "东园社区", "lx": ""}, EAST, list(reversed(ENCLAVE))),
        feature({"sqbm": "", "mc": "军事管理区", "lx": "飞地"}, ENCLAVE),
    ],
)
