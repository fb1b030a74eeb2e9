"""Geospatial helpers for gridsvc with no Django dependency.

- :mod:`geo.crs`: WGS84, GCJ-02 (Amap/Tencent), BD-09 (Baidu) and CGCS2000 conversion.
- :mod:`geo.accuracy`: GPS accuracy grades and great-circle distance.
- :mod:`geo.route`: walking order for a day's visits (nearest neighbour + 2-opt).
- :mod:`geo.hexbin`: hexagon-bin sizes and web-mercator tile math.
"""
