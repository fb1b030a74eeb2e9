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
from typing import TYPE_CHECKING, Any

from django.contrib.gis.db.models.functions import AsWKB
from django.db.models import Case as DbCase
from django.db.models import F, Model, QuerySet, Value, When

from geo.io import FORMATS, MEDIA_TYPES, LayerError, write_layer
from geo.lazy import lazy
from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import Tier, may_know, staff_scope, tier_for
from gridsvc.layers.services import EXPORT_LAYERS
from gridsvc.layers.services import LAYERS as LAYER_DEFS

from .access import audit_export, member_scope

if TYPE_CHECKING:
    import geopandas as gpd
    import shapely
else:  # imported on first use, not with the URLconf
    gpd = lazy("geopandas")
    shapely = lazy("shapely")

#: the layers an export can write (those with ``export`` properties)
LAYERS = EXPORT_LAYERS


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
    """The scoped layer as a GeoDataFrame (WGS84), with the columns ``member``'s tier may see.

    The rows and columns are the layer's own declaration (:data:`gridsvc.layers.services.LAYERS`,
    its ``export`` properties): a sensitive one (``Prop.sensitive``) is left out for a tier
    that may not know it, and blank outside the staff part of a mixed scope."""
    ldef = LAYER_DEFS.get(layer)
    if ldef is None or not ldef.exported:
        raise LayerError(f"unknown layer {layer!r}: choose one of {', '.join(LAYERS)}")
    scope = member_scope(member)
    tier = export_tier(member)
    qs, geom = ldef.rows(scope)
    columns: dict[str, Any] = {}
    for prop in ldef.export_props:
        expr = prop.expression()
        if prop.sensitive:
            if not may_know(prop.sensitive, tier):
                continue
            if _mixed(scope):  # blank outside the part held through staff positions
                expr = _only_in_staff_scope(scope, qs.model, prop.expr, prop.blank)
        columns[prop.column_name] = expr
    frame = _frame(qs, geom, columns)
    for prop in ldef.export_props:  # GDAL wants naive datetimes as text in shapefiles
        if prop.type == "datetime" and prop.column_name in frame:
            frame[prop.column_name] = frame[prop.column_name].map(
                lambda v: "" if v is None else v.isoformat()
            )
    return frame


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
