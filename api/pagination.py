"""Pagination: page-number pages with a bounded page size (a too-big page is a 400)."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework_gis.pagination import GeoJsonPagination

MAX_PAGE_SIZE = 500


class _BoundedPageSize:
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request):  # type: ignore[no-untyped-def]
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise ValidationError({"page_size": "must be an integer"}) from None
        if size < 1 or size > self.max_page_size:
            raise ValidationError({"page_size": f"must be between 1 and {self.max_page_size}"})
        return size


class StandardPagination(_BoundedPageSize, PageNumberPagination):
    page_size = 50


class GeoPagination(_BoundedPageSize, GeoJsonPagination):
    """FeatureCollection pages for GeoJSON endpoints."""

    page_size = 100

    def get_paginated_response_schema(self, schema):  # type: ignore[no-untyped-def]
        described = super().get_paginated_response_schema(schema)
        # the library renames results → features but leaves "results" required
        described["required"] = [
            "features" if r == "results" else r for r in described.get("required", [])
        ]
        # drf-gis describes a list as a FeatureCollection component ("GridList"); a page's
        # "features" is the array of its items ("Grid").
        ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
        if ref.endswith("List"):
            described["properties"]["features"] = {
                "type": "array",
                "items": {"$ref": ref[: -len("List")]},
            }
        return described
