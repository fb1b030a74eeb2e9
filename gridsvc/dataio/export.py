"""Export a layer (图层导出) to GeoPackage, GeoJSON or a zipped shapefile.

Layers: grids, compounds, buildings, places, households (as points at their building) and,
once the cases app has a ``Case`` model, cases. Every layer goes through the caller's
territory scope (``scope_for(member)``); no personal data is exported in layers except what
:func:`gridsvc.dataio.access.may_unmask_export` would allow (nothing yet: names of heads are
not in the household layer at all). Every export is written to the audit log.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from django.apps import apps
from django.contrib.gis.db.models.functions import AsWKB
from django.db.models import Count, F, QuerySet

from geo.io import FORMATS, MEDIA_TYPES, LayerError, write_layer
from gridsvc.territory.models import Building, Compound, Grid, Household, Place

from .access import audit_export, member_scope

LAYERS = ("grids", "compounds", "buildings", "places", "households", "cases")


@dataclass
class Export:
    content: bytes
    filename: str
    media_type: str
    features: int


def _frame(qs: QuerySet, geom: str, columns: dict[str, Any]) -> gpd.GeoDataFrame:
    """A GeoDataFrame from a queryset: ``columns`` maps output name → field path/expression."""
    exprs = {f"x_{c}": F(e) if isinstance(e, str) else e for c, e in columns.items()}
    rows = list(qs.annotate(x_wkb=AsWKB(geom), **exprs).values("x_wkb", *exprs))
    data = {c: [r[f"x_{c}"] for r in rows] for c in columns}
    geoms = shapely.from_wkb([bytes(r["x_wkb"]) for r in rows]) if rows else []
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs="EPSG:4326")


def layer_frame(layer: str, member=None) -> gpd.GeoDataFrame:  # type: ignore[no-untyped-def]
    """The scoped layer as a GeoDataFrame (WGS84)."""
    scope = member_scope(member)
    if layer == "grids":
        qs = scope.filter(Grid.objects.all()).order_by("code")
        return _frame(
            qs,
            "boundary",
            {
                "code": "code",
                "name": "name",
                "community": "community__code",
                "parent": "parent__code",
                "resp_body": "responsible_body",
            },
        )
    if layer == "compounds":
        qs = scope.filter(Compound.objects.all()).order_by("code")
        return _frame(
            qs,
            "boundary",
            {
                "code": "code",
                "name": "name",
                "community": "community__code",
                "property": "property_company",
            },
        )
    if layer == "buildings":
        qs = scope.filter(Building.objects.all()).order_by("code")
        return _frame(
            qs,
            "footprint",
            {
                "code": "code",
                "name": "name",
                "address": "address",
                "floors": "floors",
                "grid_code": "grid__code",
                "compound": "compound__code",
                "households": Count("units__households"),
            },
        )
    if layer == "places":
        qs = scope.filter(Place.objects.all()).order_by("id")
        return _frame(
            qs,
            "point",
            {
                "kind": "kind",
                "name": "name",
                "address": "address",
                "grid_code": "grid__code",
            },
        )
    if layer == "households":
        qs = scope.filter(Household.objects.all()).order_by("id")
        return _frame(
            qs,
            "unit__building__point",
            {
                "hh_id": "id",
                "building": "unit__building__code",
                "unit_no": "unit__number",
                "room": "room",
                "floor": "floor",
                "tenure": "tenure",
                "grid_code": "unit__building__grid__code",
                "residents": Count("residents"),
            },
        )
    if layer == "cases":
        return _cases_frame(scope)
    raise LayerError(f"unknown layer {layer!r}: choose one of {', '.join(LAYERS)}")


# Case fields exported when present (free text such as descriptions may name people: left out).
CASE_FIELDS = (
    "number", "code", "category", "subcategory", "kind", "state", "status", "priority",
    "level", "current_level", "reported_at", "created_at", "resolved_at", "closed_at",
    "ethnic_religious", "group_incident", "petition_risk",
)  # fmt: skip


def case_model():  # type: ignore[no-untyped-def]
    """The cases app's Case model, or None while it does not exist yet."""
    try:
        return apps.get_model("cases", "Case")
    except LookupError:
        return None


def _cases_frame(scope) -> gpd.GeoDataFrame:  # type: ignore[no-untyped-def]
    Case = case_model()
    if Case is None:
        raise LayerError("the cases layer is not available yet (no Case model)")
    geom = next(
        (f.name for f in Case._meta.concrete_fields if f.get_internal_type() == "PointField"),
        None,
    )
    if geom is None:
        raise LayerError("the Case model has no point field to export")
    try:
        qs = scope.filter(Case.objects.all())
    except TypeError as exc:  # no scope rule yet: refuse rather than leak
        raise LayerError(f"cases cannot be scoped yet: {exc}") from exc
    names = {f.name for f in Case._meta.concrete_fields}
    cols: dict[str, Any] = {n: n for n in CASE_FIELDS if n in names}
    cols["case_id"] = "id"
    frame = _frame(qs.exclude(**{f"{geom}__isnull": True}).order_by("id"), geom, cols)
    for col in frame.columns:  # GDAL wants naive datetimes as text in shapefiles
        if str(frame[col].dtype).startswith("datetime") or frame[col].dtype == object:
            if col != frame.geometry.name:
                frame[col] = frame[col].map(lambda v: "" if v is None else str(v))
    return frame


def export_layer(layer: str, fmt: str, member=None) -> Export:  # type: ignore[no-untyped-def]
    """Export ``layer`` as ``fmt`` (gpkg | geojson | shp) for ``member`` (audited)."""
    if fmt not in FORMATS:
        raise LayerError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    frame = layer_frame(layer, member)
    ext = {"gpkg": "gpkg", "geojson": "geojson", "shp": "zip"}[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_layer(frame, Path(tmp) / f"{layer}.{ext}", fmt, layer)
        content = path.read_bytes()
    audit_export(
        member,
        f"layer:{layer}",
        detail={"format": fmt, "features": len(frame), "unmasked": False},
    )
    return Export(content, f"{layer}.{ext}", MEDIA_TYPES[fmt], len(frame))
