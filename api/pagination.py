"""Pagination: page-number pages with a bounded page size (a too-big page is a 400)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
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

    def paginate_values(
        self,
        qs: QuerySet,
        request,  # type: ignore[no-untyped-def]
        count_qs: QuerySet | None = None,
    ) -> list[Any] | None:
        """The page of ``qs`` (a ``values()`` queryset, or of model instances) and its count
        in ONE query — the count
        an uncorrelated subquery of the same statement, instead of DRF's ``COUNT`` query
        before the page (issue 19). The answer (``get_paginated_response``) is DRF's to the
        byte. ``count_qs``: the same rows without the joins ``values()`` added (counted
        alone, and the page's ids read from it; default ``qs``) — ``qs`` may then be wider
        (e.g. a values() query of every row built once per process), only its rows of the
        page's ids are read, in its order. None when the request asks for what only DRF's own path answers (``page=last``,
        a page that is not a positive number, a page past the end): call
        ``paginate_queryset`` then."""
        size = self.get_page_size(request)
        raw = request.query_params.get(self.page_query_param, 1)
        if not size or raw in self.last_page_strings:
            return None
        try:
            number = int(raw)
        except (TypeError, ValueError):
            return None
        if number < 1:
            return None
        counted = qs if count_qs is None else count_qs
        sql, params = counted.order_by().values("pk").query.sql_with_params()
        total = RawSQL(f"SELECT COUNT(*) FROM ({sql}) _page_count", params)  # noqa: S611
        offset = (number - 1) * size
        # the page's ids first (by the index, without the joins), then its rows joined
        order = qs.query.order_by or qs.model._meta.ordering
        page = counted.order_by(*order).values("pk")[offset : offset + size]
        rows = list(qs.filter(pk__in=page).annotate(_page_count=total))
        if not rows and number > 1:
            return None  # past the end: DRF's 404
        count = 0
        for row in rows:
            if isinstance(row, dict):
                count = row.pop("_page_count")
            else:
                count = row.__dict__.pop("_page_count")
        paginator = self.django_paginator_class([], size)
        paginator.__dict__["count"] = count  # a cached_property: known, not counted again
        self.page = paginator.page(number)
        self.page.object_list = rows
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True
        self.request = request
        return rows


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
