"""Export a layer (图层导出) to GeoPackage, GeoJSON or a zipped shapefile.

Layers: grids, compounds, buildings, places, households (as points at their building) and
cases. Every layer goes through the caller's territory scope (``scope_for(member)``) and
carries no personal data: no names, ID numbers, phones or free text (descriptions may name
people). What a layer shows of a sensitive status follows :mod:`gridsvc.chain.visibility`:
the neighbour tier gets no household tenure (廉租房 is an income/assistance status) and no
ethnic/religious flag on cases; a member who is staff in one place and a neighbour in another
gets them blank outside the part held through staff positions. Every export is written to the audit log.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from django.contrib.gis.db.models.functions import AsWKB
from django.db.models import Case as DbCase
from django.db.models import Count, F, Model, QuerySet, Value, When

from geo.io import FORMATS, MEDIA_TYPES, LayerError, write_layer
from gridsvc.cases.models import Case
from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import LOW_INCOME, Tier, may_know, staff_scope, tier_for
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


def export_tier(member) -> Tier:  # type: ignore[no-untyped-def]
    """The member's visibility tier; ``None`` (the operator's command) is STREET."""
    return Tier.STREET if member is None else tier_for(member)


def layer_frame(layer: str, member=None) -> gpd.GeoDataFrame:  # type: ignore[no-untyped-def]
    """The scoped layer as a GeoDataFrame (WGS84), with the columns ``member``'s tier may see."""
    scope = member_scope(member)
    tier = export_tier(member)
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
        columns: dict[str, Any] = {
            "hh_id": "id",
            "building": "unit__building__code",
            "unit_no": "unit__number",
            "room": "room",
            "floor": "floor",
            "tenure": "tenure",  # 廉租房 reveals an assistance status
            "grid_code": "unit__building__grid__code",
            "residents": Count("residents"),
        }
        if not may_know(LOW_INCOME, tier):
            del columns["tenure"]
        elif _mixed(scope):  # blank outside the part held through staff positions
            columns["tenure"] = _only_in_staff_scope(scope, Household, "tenure", "")
        return _frame(qs, "unit__building__point", columns)
    if layer == "cases":
        return _cases_frame(scope, tier)
    raise LayerError(f"unknown layer {layer!r}: choose one of {', '.join(LAYERS)}")


# Case columns of the layer: output name → field path. Free text (title, description,
# parties, outcome) may name people and is left out.
CASE_COLUMNS: dict[str, str] = {
    "case_id": "id",
    "number": "number",
    "kind": "kind",
    "category": "category__code",
    "status": "status",
    "priority": "priority",
    "level": "level",
    "grid_code": "grid__code",
    "reported_at": "reported_at",
    "resolved_at": "resolved_at",
    "closed_at": "closed_at",
    "ethnic_religious": "ethnic_religious",  # 涉及民族宗教因素: not for the neighbour tier
    "group_incident": "group_incident",
    "petition_risk": "petition_risk",
}
DATETIME_COLUMNS = ("reported_at", "resolved_at", "closed_at")


def _mixed(scope: Scope) -> bool:
    """Whether ``scope`` holds neighbour grants (compound, building, unit) besides staff ones:
    sensitive columns are then judged per row."""
    return not scope.everything and bool(scope.compound_ids or scope.building_ids or scope.unit_ids)


def _only_in_staff_scope(scope: Scope, model: type[Model], field: str, default: Any) -> DbCase:
    """``field`` for rows inside the staff part of ``scope``, ``default`` elsewhere."""
    inside = staff_scope(scope).filter(model.objects.all()).values("pk")
    return DbCase(
        When(pk__in=inside, then=F(field)),
        default=Value(default),
        output_field=model._meta.get_field(field),
    )


def _cases_frame(scope: Scope, tier: Tier) -> gpd.GeoDataFrame:
    cols: dict[str, Any] = dict(CASE_COLUMNS)
    if tier < Tier.STAFF:
        del cols["ethnic_religious"]
    elif _mixed(scope):
        cols["ethnic_religious"] = _only_in_staff_scope(scope, Case, "ethnic_religious", None)
    qs = scope.filter(Case.objects.all()).order_by("id")
    frame = _frame(qs, "location", cols)
    for col in DATETIME_COLUMNS:  # GDAL wants naive datetimes as text in shapefiles
        frame[col] = frame[col].map(lambda v: "" if v is None else v.isoformat())
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
