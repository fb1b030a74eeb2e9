"""``crs`` on endpoints that answer in WGS84 only.

The API has one coordinate vocabulary (:func:`geo.crs.normalize_crs`). Endpoints that convert
(`/api/v1/layers/…`, cases, the chain, visits, tiles) take ``crs`` themselves; the plain
territory lists (grids, compounds, buildings, places as GeoJSON with ``in_bbox``) answer in
WGS84 only. On those a ``crs`` other than WGS84 (or CGCS2000, the same to centimetres) is a
400 naming ``crs`` that points to the layer endpoint, never silently ignored (a GCJ-02 box
read as WGS84 is ~500 m off).
"""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend

WGS84_LIKE = ("wgs84", "cgcs2000")


def wgs84_only(raw: str | None, hint: str = "") -> str:
    """The canonical name of ``raw`` if it is WGS84-like (default wgs84); else ValidationError
    naming ``crs``."""
    from geo.crs import UnsupportedCRS, normalize_crs

    if raw in (None, ""):
        return "wgs84"
    try:
        crs = normalize_crs(str(raw))
    except UnsupportedCRS as exc:
        raise ValidationError({"crs": [str(exc)]}) from None
    if crs not in WGS84_LIKE:
        raise ValidationError({"crs": [f"this endpoint answers in WGS84 only (got {crs}){hint}"]})
    return crs


class Wgs84OnlyCrsFilter(BaseFilterBackend):
    """Refuses ``crs`` other than WGS84 on a WGS84-only GeoJSON list (400 naming ``crs``)."""

    def filter_queryset(self, request, queryset, view):  # type: ignore[no-untyped-def]
        from gridsvc.layers.services import LAYERS

        basename = getattr(view, "basename", None)
        layer = f"{basename}s" if basename and f"{basename}s" in LAYERS else None
        hint = f"; for {layer} in other systems use /api/v1/layers/{layer}/?crs=" if layer else ""
        wgs84_only(request.query_params.get("crs"), hint)
        return queryset

    def get_schema_operation_parameters(self, view):  # type: ignore[no-untyped-def]
        return [
            {
                "name": "crs",
                "required": False,
                "in": "query",
                "description": "wgs84 (default) or cgcs2000 only: this list answers in WGS84; "
                "other systems through /api/v1/layers/{layer}/?crs=",
                "schema": {"type": "string", "enum": list(WGS84_LIKE)},
            }
        ]
