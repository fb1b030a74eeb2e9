"""API for data in/out and reports (/api/v1/reports/...).

- ``POST imports/boundaries/`` (data managers: street level or superuser) multipart ``file``,
  ``kind`` street|community|grid|compound|building, optional ``layer``, ``community``,
  ``street``, ``district``, ``crs`` (wgs84, gcj02, bd09, cgcs2000 or EPSG:nnnn; unknown →
  400 naming ``crs``), ``gcj02``, ``strict``, ``map`` (``code=WGBM,name=WGMC`` or a JSON
  object; repeatable) and ``dry_run`` (default true) → the dry-run report as JSON; with
  ``dry_run=false`` the import is queued for the background worker → 202 with the run to
  poll (``imports/runs/{id}/``: status, phase, features done/total, then the report).
  Features outside the data manager's streets are errors; more than
  ``BOUNDARY_MAX_FEATURES`` (10,000) features → 413 naming ``file``.
- ``POST imports/roster/`` multipart ``file`` (xlsx/csv), optional ``dry_run`` → the per-row
  report as JSON; ``?format=xlsx`` returns the error workbook instead. Only inside the
  caller's staff territory (grid, community, street; neighbours' positions get 403): rows
  for buildings, units, households or ID numbers outside it are row errors that name no one.
  Up to ``ROSTER_SYNC_MAX_ROWS`` rows (1,000) are imported in the request; a larger roster
  is queued for the background worker → 202 with the run to poll; more than
  ``ROSTER_MAX_ROWS`` (100,000) → 413. An unreadable file (also an xlsx declaring XML
  entities) → 400 naming ``file``.
- ``GET imports/runs/{id}/`` → a queued import's status and progress (its uploader only);
  ``?format=xlsx`` → its error workbook.
- ``GET roster-template/`` → the empty roster template (xlsx).
- ``GET export/{layer}/?format=gpkg|geojson|shp`` → the layer, scoped, masked, audited.
- ``GET ledgers/{grid_code}/?year=`` → the grid's ledgers (台账) as xlsx, audited.
- ``GET monthly/?community=|street=&month=2026-10&format=json|xlsx|pdf`` and
  ``GET annual/?community=|street=&year=2026&format=…`` → the work report.
- ``POST issued/`` {community|street, month|year, note} → issue (印发) a report (street office):
  from then on the street tier gets it as issued (201; 403 below the street tier; 400 when the
  period is not over or already issued).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api.parsers import FormParser, MultiPartParser
from api.scoping import request_scope
from geo.io import LayerError, parse_crs
from gridsvc.dataio.access import audit_export, is_data_manager
from gridsvc.dataio.boundaries import (
    KIND_FIELDS,
    KINDS,
    import_boundaries,
    max_features_limit,
)
from gridsvc.dataio.export import LAYERS, export_layer
from gridsvc.dataio.ledgers import ledger_workbook, visible_grid
from gridsvc.dataio.roster import (
    RosterError,
    RosterTooLarge,
    declared_rows,
    error_workbook,
    import_roster,
    import_scope,
    max_row_limit,
    run_status,
    stored_error_workbook,
    sync_row_limit,
    template_workbook,
)
from gridsvc.dataio.tasks import queue_boundary_import, queue_import
from gridsvc.reports.models import ImportRun
from gridsvc.reports.services import (
    MEDIA,
    month_period,
    parse_year,
    report_document,
    year_period,
)

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
BOUNDARY_SUFFIXES = (".zip", ".gpkg", ".geojson", ".json", ".csv", ".shp")
ROSTER_SUFFIXES = (".xlsx", ".csv")
XLSX = MEDIA["xlsx"]


def _upload_schema(**fields: dict) -> dict:  # type: ignore[type-arg]
    props = {"file": {"type": "string", "format": "binary"}} | fields
    return {"multipart/form-data": {"type": "object", "properties": props, "required": ["file"]}}


def _q(name: str, description: str, enum: list[str] | None = None) -> OpenApiParameter:
    return OpenApiParameter(name, str, OpenApiParameter.QUERY, description=description, enum=enum)


_BINARY = {
    (200, XLSX): OpenApiTypes.BINARY,
    (200, "application/pdf"): OpenApiTypes.BINARY,
    (200, "application/geopackage+sqlite3"): OpenApiTypes.BINARY,
    (200, "application/geo+json"): OpenApiTypes.OBJECT,  # a GeoJSON FeatureCollection
    (200, "application/zip"): OpenApiTypes.BINARY,
}


def _truthy(value) -> bool:  # type: ignore[no-untyped-def]
    return str(value or "").lower() in ("1", "true", "yes", "on")


def _file_response(content: bytes, filename: str, media_type: str) -> HttpResponse:
    resp = HttpResponse(content, content_type=media_type)
    resp["Content-Disposition"] = f'attachment; filename="{filename}"'
    resp["Cache-Control"] = "no-store"
    return resp


class _View(APIView):
    """``?format=`` names our file formats, not DRF renderers: always negotiate JSON."""

    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request, force=False):  # type: ignore[no-untyped-def]
        return (JSONRenderer(), JSONRenderer.media_type)


class _Upload:
    """The uploaded ``file`` saved to a temporary path with its own suffix."""

    def __init__(self, request, suffixes: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
        upload = request.FILES.get("file")
        if upload is None:
            raise DRFValidationError({"file": "upload the file as multipart field 'file'"})
        suffix = Path(upload.name).suffix.lower()
        if suffix not in suffixes:
            raise DRFValidationError({"file": f"expected one of {', '.join(suffixes)}"})
        if upload.size > MAX_UPLOAD_BYTES:
            raise DRFValidationError({"file": f"larger than {MAX_UPLOAD_BYTES // 2**20} MB"})
        self.name = upload.name
        self._tmp = tempfile.TemporaryDirectory()
        self.path = Path(self._tmp.name) / f"upload{suffix}"
        with self.path.open("wb") as fh:
            for chunk in upload.chunks():
                fh.write(chunk)

    def __enter__(self) -> _Upload:
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        self._tmp.cleanup()


def _boundary_mapping(request, kind: str) -> dict[str, str] | None:  # type: ignore[no-untyped-def]
    """The ``map`` field(s): ``code=WGBM,name=WGMC`` or a JSON object, as on the command line."""
    import json

    mapping: dict[str, str] = {}
    for raw in request.data.getlist("map") if hasattr(request.data, "getlist") else []:
        text = str(raw or "").strip()
        if not text:
            continue
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError as exc:
                raise DRFValidationError({"map": [f"not a JSON object: {exc}"]}) from exc
            if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
                raise DRFValidationError({"map": ["a JSON object of field → column names"]})
            mapping.update({str(k): v for k, v in obj.items()})
            continue
        for item in text.split(","):
            field, sep, column = item.partition("=")
            if not sep or not field.strip() or not column.strip():
                raise DRFValidationError({"map": [f"FIELD=COLUMN expected, got {item!r}"]})
            mapping[field.strip()] = column.strip()
    unknown = sorted(set(mapping) - set(KIND_FIELDS[kind]))
    if unknown:
        raise DRFValidationError(
            {"map": [f"unknown field(s) {', '.join(unknown)}: {', '.join(KIND_FIELDS[kind])}"]}
        )
    return mapping or None


class BoundaryDryRunView(_View):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Boundary import: dry run, or queued for the worker (data managers)",
        request=_upload_schema(
            kind={"type": "string", "enum": list(KINDS)},
            layer={"type": "string"},
            community={"type": "string"},
            street={"type": "string"},
            district={"type": "string"},
            crs={"type": "string"},
            gcj02={"type": "boolean"},
            strict={"type": "boolean"},
            map={"type": "string"},
            dry_run={"type": "boolean", "default": True},
        ),
        responses={200: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT},
    )
    def post(self, request):  # type: ignore[no-untyped-def]
        if not is_data_manager(request.user):
            raise PermissionDenied("boundary imports are for data managers (street level)")
        data = request.data
        kind = data.get("kind", "")
        if kind not in KINDS:
            raise DRFValidationError({"kind": f"one of {', '.join(KINDS)}"})
        crs = data.get("crs") or None
        if crs:
            try:
                parse_crs(crs)
            except LayerError as exc:
                raise DRFValidationError({"crs": [str(exc)]}) from exc
        options = {
            "layer": data.get("layer") or None,
            "community": data.get("community") or None,
            "street": data.get("street") or None,
            "district": data.get("district") or None,
            "crs": crs,
            "gcj02": _truthy(data.get("gcj02")),
            "strict": _truthy(data.get("strict")),
            "mapping": _boundary_mapping(request, kind),
        }
        dry_run = str(data.get("dry_run", "true")).lower() not in ("0", "false", "no", "off")
        with _Upload(request, BOUNDARY_SUFFIXES) as up:
            if not dry_run:
                run = queue_boundary_import(
                    up.path, kind=kind, actor=request.user, file_name=up.name, options=options
                )
                url = f"/api/v1/reports/imports/runs/{run.pk}/"
                return Response(
                    run_status(run) | {"url": url}, status=202, headers={"Location": url}
                )
            report = import_boundaries(
                up.path,
                kind,
                dry_run=True,
                actor=request.user,
                file_name=up.name,
                max_features=max_features_limit(),
                **options,
            )
        if report.get("too_large"):
            return Response({"file": [e["message"] for e in report["errors"]]}, status=413)
        return Response(report)


class RosterImportView(_View):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Import the household/resident roster (xlsx/csv)",
        request=_upload_schema(dry_run={"type": "boolean"}),
        parameters=[_q("format", "xlsx: return the error workbook", ["json", "xlsx"])],
        responses={200: OpenApiTypes.OBJECT, (200, XLSX): OpenApiTypes.BINARY},
    )
    def post(self, request):  # type: ignore[no-untyped-def]
        if import_scope(request.user).empty:
            raise PermissionDenied(
                "roster imports are for grid members, community and street staff"
            )
        dry_run = _truthy(request.data.get("dry_run") or request.query_params.get("dry_run"))
        with _Upload(request, ROSTER_SUFFIXES) as up:
            try:
                report, sheet = import_roster(
                    up.path,
                    dry_run=dry_run,
                    actor=request.user,
                    file_name=up.name,
                    max_rows=sync_row_limit(),
                )
            except RosterTooLarge:
                declared = declared_rows(up.path)
                if declared is not None and declared - 1 > max_row_limit():
                    return Response(
                        {
                            "file": [
                                f"the roster has {declared - 1} rows; at most "
                                f"{max_row_limit()} rows per file: split it"
                            ]
                        },
                        status=413,
                    )
                run = queue_import(up.path, actor=request.user, dry_run=dry_run, file_name=up.name)
                url = f"/api/v1/reports/imports/runs/{run.pk}/"
                return Response(
                    run_status(run) | {"url": url}, status=202, headers={"Location": url}
                )
            except RosterError as exc:  # pragma: no cover - import_roster reports these
                raise DRFValidationError({"file": str(exc)}) from exc
        if report["fatal"] and sheet is None:
            return Response({"file": report["fatal"], "report": report}, status=400)
        if request.query_params.get("format") == "xlsx" and sheet is not None:
            audit_export(
                request.user, "roster_errors", detail={"file": up.name, "rows": report["bad"]}
            )
            name = f"{Path(up.name).stem}-错误行.xlsx"
            return _file_response(error_workbook(sheet), name, XLSX)
        return Response(report)


class ImportRunView(_View):
    @extend_schema(
        summary="A queued import's status and progress (its uploader only)",
        parameters=[_q("format", "xlsx: the rows with errors", ["json", "xlsx"])],
        responses={200: OpenApiTypes.OBJECT, (200, XLSX): OpenApiTypes.BINARY},
    )
    def get(self, request, pk: int):  # type: ignore[no-untyped-def]
        run = ImportRun.objects.filter(pk=pk, actor=request.user).first()
        if run is None:
            raise NotFound("no such import of yours")
        if request.query_params.get("format") == "xlsx":
            content = stored_error_workbook(run)
            if content is None:
                raise NotFound("this import has no rows with errors (or is not finished)")
            audit_export(
                request.user, "roster_errors", detail={"file": run.file_name, "run": run.pk}
            )
            return _file_response(content, f"{Path(run.file_name).stem}-错误行.xlsx", XLSX)
        return Response(run_status(run))


class RosterTemplateView(_View):
    @extend_schema(
        summary="The empty roster template", responses={(200, XLSX): OpenApiTypes.BINARY}
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        return _file_response(template_workbook(), "居民名册模板.xlsx", XLSX)


class LayerExportView(_View):
    @extend_schema(
        summary="Export a layer (scoped, masked, audited)",
        parameters=[_q("format", "file format", ["gpkg", "geojson", "shp"])],
        responses=_BINARY,
    )
    def get(self, request, layer: str):  # type: ignore[no-untyped-def]
        if layer not in LAYERS:
            raise NotFound(f"unknown layer: one of {', '.join(LAYERS)}")
        fmt = request.query_params.get("format", "gpkg")
        try:
            exp = export_layer(layer, fmt, request.user)
        except LayerError as exc:
            raise DRFValidationError(
                {"format" if "format" in str(exc) else "layer": str(exc)}
            ) from exc
        return _file_response(exp.content, exp.filename, exp.media_type)


class LedgerView(_View):
    @extend_schema(
        summary="The grid's ledgers (台账) as xlsx",
        parameters=[_q("year", "year of the visit record, e.g. 2026")],
        responses={(200, XLSX): OpenApiTypes.BINARY},
    )
    def get(self, request, grid: str):  # type: ignore[no-untyped-def]
        obj = visible_grid(grid, request.user)
        if obj is None:
            raise NotFound("no such grid in your territory")
        year = request.query_params.get("year")
        content = ledger_workbook(obj, request.user, year=parse_year(year) if year else None)
        return _file_response(content, f"台账-{obj.code}.xlsx", XLSX)


class WorkReportView(_View):
    kind = "monthly"

    @extend_schema(
        summary="Work report (monthly: month=2026-10; annual: year=2026)",
        parameters=[
            _q("community", "12-digit community code (or street)"),
            _q("street", "9-digit street code (or community)"),
            _q("month", "monthly report: 2026-10"),
            _q("year", "annual report: 2026"),
            _q("format", "json, xlsx or pdf", ["json", "xlsx", "pdf"]),
        ],
        responses={200: OpenApiTypes.OBJECT} | _BINARY,
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        q = request.query_params
        try:
            if self.kind == "monthly":
                period = month_period(q.get("month", ""))
            else:
                period = year_period(q.get("year", ""))
            report, content, name = report_document(
                q.get("format", "json"),
                period=period,
                scope=request_scope(request),
                member=request.user,
                community=q.get("community") or None,
                street=q.get("street") or None,
            )
        except ValidationError as exc:
            raise DRFValidationError(exc.message_dict) from exc
        if content is None:
            return Response(report)
        return _file_response(content, name, MEDIA[q.get("format")])


class IssueReportSerializer(serializers.Serializer):
    """What the street office sends to issue a report (one parser: a body that is not an
    object, or a field of the wrong type, is a 400 naming it)."""

    community = serializers.CharField(required=False, help_text="12-digit code")
    street = serializers.CharField(required=False, help_text="9-digit code")
    month = serializers.CharField(required=False, help_text="2026-11")
    year = serializers.CharField(required=False, help_text="2026")
    note = serializers.CharField(required=False, allow_blank=True, max_length=200)


class IssueReportView(_View):
    @extend_schema(
        summary="Issue (印发) a work report: its figures are kept as issued (street office)",
        request=IssueReportSerializer,
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request):  # type: ignore[no-untyped-def]
        """The report of a period that is over, issued once per area and period; the street
        tier then gets these figures whenever it asks for the report (docs/data.md)."""
        from django.core.exceptions import PermissionDenied as DjangoPermissionDenied

        from gridsvc.reports.services import issue_report, issued_note

        body = IssueReportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        try:
            if bool(d.get("month")) == bool(d.get("year")):
                raise ValidationError({"month": "give exactly one of month or year"})
            period = month_period(d["month"]) if d.get("month") else year_period(d["year"])
            issued = issue_report(
                period=period,
                scope=request_scope(request),
                member=request.user,
                community=d.get("community") or None,
                street=d.get("street") or None,
                note=str(d.get("note") or ""),
            )
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        except ValidationError as exc:
            raise DRFValidationError(exc.message_dict) from exc
        return Response(issued.report | {"issued": issued_note(issued)}, status=201)


urlpatterns: list = [
    path("reports/imports/boundaries/", BoundaryDryRunView.as_view(), name="import-boundaries"),
    path("reports/imports/roster/", RosterImportView.as_view(), name="import-roster"),
    path("reports/imports/runs/<int:pk>/", ImportRunView.as_view(), name="import-run"),
    path("reports/roster-template/", RosterTemplateView.as_view(), name="roster-template"),
    path("reports/export/<str:layer>/", LayerExportView.as_view(), name="export-layer"),
    path("reports/ledgers/<str:grid>/", LedgerView.as_view(), name="ledgers"),
    path("reports/monthly/", WorkReportView.as_view(kind="monthly"), name="report-monthly"),
    path("reports/annual/", WorkReportView.as_view(kind="annual"), name="report-annual"),
    path("reports/issued/", IssueReportView.as_view(), name="report-issue"),
]
root_urlpatterns: list = []


def register(router) -> None:  # type: ignore[no-untyped-def]
    """Register this domain's viewsets on the /api/v1/ router (none: plain views above)."""
