"""Map layers: the tile cache, the per-grid change log and the offline packages.

- :class:`TileCache` holds built vector tiles (MVT) per layer, tile, and *variant* (a hash of
  the caller's territory scope and the query filters). Each row keeps the area whose data it
  was built from (``bounds``, WGS84); PostgreSQL triggers on the source tables delete the rows
  whose ``bounds`` touch a changed row (see migration ``0002_triggers``), so a tile is never
  served from the cache after the data under it changed. ``expires_at`` bounds the life of
  every row (time-dependent layers such as case ages expire within minutes).
- :class:`GridChange` is an insert-only log, written by the same triggers, of the grids whose
  data changed; an offline package is stale while rows for its grid exist (the builder deletes
  the rows it has seen, in the snapshot it builds from).
- :class:`OfflinePackage` is the phone's package of one grid in one coordinate system
  (``wgs84`` or ``gcj02`` for Amap/Tencent basemaps): its base layers as tiles in one MBTiles
  file plus the household list as GeoJSON (zipped), with size and ETag.
"""

from __future__ import annotations

from django.contrib.gis.db import models

SRID = 4326


class TileCache(models.Model):
    layer = models.CharField(max_length=32)
    z = models.PositiveSmallIntegerField()
    x = models.PositiveIntegerField()
    y = models.PositiveIntegerField()
    variant = models.CharField(max_length=40, help_text="hash of scope + filters")
    data = models.BinaryField(help_text="the tile (MVT protobuf), gzip-compressed")
    size = models.PositiveIntegerField(help_text="uncompressed bytes")
    features = models.PositiveIntegerField(default=0)
    etag = models.CharField(max_length=40)
    bounds = models.PolygonField(srid=SRID, help_text="area whose data the tile shows")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["layer", "z", "x", "y", "variant"], name="tile_cache_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.layer}/{self.z}/{self.x}/{self.y} {self.variant[:8]}"


class GridChange(models.Model):
    """One statement changed data of ``grid_id`` (written by triggers; insert-only)."""

    grid_id = models.BigIntegerField(db_index=True)
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]


class OfflinePackage(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "排队中"
        READY = "ready", "可下载"
        FAILED = "failed", "失败"

    class Crs(models.TextChoices):
        WGS84 = "wgs84", "WGS84"
        GCJ02 = "gcj02", "GCJ-02 (Amap/Tencent)"

    grid = models.ForeignKey(
        "territory.Grid", on_delete=models.CASCADE, related_name="offline_packages"
    )
    crs = models.CharField(max_length=8, choices=Crs.choices, default=Crs.WGS84)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    file = models.FileField(upload_to="offline/", blank=True)
    size = models.PositiveBigIntegerField(default=0)
    etag = models.CharField(max_length=80, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)
    build_ms = models.PositiveIntegerField(default=0)
    requested_at = models.DateTimeField(null=True, blank=True)
    minzoom = models.PositiveSmallIntegerField(default=0)
    maxzoom = models.PositiveSmallIntegerField(default=0)
    tiles = models.PositiveIntegerField(default=0)
    households = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True, help_text="features per layer")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["grid_id", "crs"]
        constraints = [
            models.UniqueConstraint(fields=["grid", "crs"], name="offline_package_grid_crs")
        ]

    def __str__(self) -> str:
        return f"offline package of grid {self.grid_id} in {self.crs} ({self.status})"
