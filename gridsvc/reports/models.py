"""Reports and data in/out: the record of imports and the history of imported boundaries.

- :class:`ImportRun` (导入记录): one run of a boundary or roster import (dry run or real),
  who ran it, on which file, and the full report it produced. A roster too large to import
  within the request (``settings.ROSTER_SYNC_MAX_ROWS``), and every real boundary import
  through the API (its options in ``report["options"]``), is queued: the run then carries
  the upload (encrypted at rest, dropped when the worker is done), its status and progress
  (rows checked / written) for the uploader to poll, and the error workbook.
- :class:`BoundaryVersion` (边界版本): every geometry and attribute set a street, community,
  grid, compound or building has had through imports. Re-importing updates the territory row in place (by
  code) and appends a version here; the first import over a row that predates imports also
  stores its previous state as version 1, so nothing is lost.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.gis.db import models


class ImportRun(models.Model):
    class Kind(models.TextChoices):
        STREET = "street", "街道边界"
        COMMUNITY = "community", "社区边界"
        GRID = "grid", "网格边界"
        COMPOUND = "compound", "小区边界"
        BUILDING = "building", "楼栋轮廓"
        ROSTER = "roster", "户籍/居民名册"

    class Status(models.TextChoices):
        QUEUED = "queued", "排队中"
        RUNNING = "running", "导入中"
        DONE = "done", "完成"
        FAILED = "failed", "失败"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    file_name = models.CharField(max_length=255)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    dry_run = models.BooleanField(default=True)
    ok = models.BooleanField(default=False, help_text="no blocking error was found")
    applied = models.BooleanField(default=False, help_text="the changes were committed")
    report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # background runs (queued imports); a synchronous run is DONE when it is saved
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DONE)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_done = models.PositiveIntegerField(default=0)
    phase = models.CharField(max_length=16, blank=True, help_text="reading, checking, writing")
    finished_at = models.DateTimeField(null=True, blank=True)
    upload = models.BinaryField(
        null=True, blank=True, editable=False, help_text="the queued file, Fernet-encrypted"
    )
    error_workbook = models.BinaryField(
        null=True, blank=True, editable=False, help_text="rows with errors (xlsx), encrypted"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        mode = "dry run" if self.dry_run else "import"
        return f"{self.get_kind_display()} {mode} {self.file_name} ({self.created_at:%Y-%m-%d})"


class BoundaryVersion(models.Model):
    """One state of a grid/compound/building boundary (with its attributes)."""

    kind = models.CharField(
        max_length=16, choices=[c for c in ImportRun.Kind.choices if c[0] != "roster"]
    )
    code = models.CharField(max_length=32)
    version = models.PositiveIntegerField()
    geometry = models.MultiPolygonField(srid=4326)
    attributes = models.JSONField(default=dict, blank=True)
    run = models.ForeignKey(
        ImportRun, on_delete=models.PROTECT, null=True, blank=True, related_name="versions"
    )
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True, help_text="replaced at")

    class Meta:
        ordering = ["kind", "code", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "code", "version"], name="boundary_version_unique"
            )
        ]
        indexes = [models.Index(fields=["kind", "code", "valid_to"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.code} v{self.version}"


class IssuedReport(models.Model):
    """A work report as issued (印发): the figures are kept as they were issued, so asking for
    the report again gives the same numbers, whatever changed in the registers since.

    One per area and period. Issued by the street office (or the operator's command) with
    exact figures; only the street tier reads the stored report (lower tiers' reports depend
    on their own territory and are computed, tags as of the period's end)."""

    class Level(models.TextChoices):
        COMMUNITY = "community", "社区"
        STREET = "street", "街道"

    level = models.CharField(max_length=16, choices=Level.choices)
    area_code = models.CharField(max_length=12)
    period_kind = models.CharField(max_length=8, help_text="month or year")
    period_label = models.CharField(max_length=8, help_text="2026-11 or 2026")
    report = models.JSONField(help_text="the report as issued (street tier, exact)")
    case_density = models.JSONField(default=dict, blank=True, help_text="cases per grid (map)")
    issued_at = models.DateTimeField(auto_now_add=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["area_code", "period_kind", "period_label"], name="issued_report_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.area_code} {self.period_label} (issued {self.issued_at:%Y-%m-%d})"
