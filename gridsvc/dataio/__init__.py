"""Data in and out (数据导入导出): boundary and roster imports with checks, layer exports,
ledgers (台账). Not an installed app: the import history lives in :mod:`gridsvc.reports`.

- :mod:`.boundaries`: grid/compound/building boundaries from shapefile, GeoPackage, GeoJSON,
  CSV+WKT, with a dry run (validity, overlaps, gaps, containment, duplicates, CRS).
- :mod:`.roster`: households and residents from the community office's xlsx/csv roster.
- :mod:`.export`: any layer to GeoPackage/GeoJSON/zipped shapefile, territory-scoped, masked.
- :mod:`.ledgers`: per-grid ledgers (台账) as xlsx.
- :mod:`.access`: who may import, the unmask hook, and the audit hook every export calls.
"""
