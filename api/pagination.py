"""Pagination: page-number pages with a bounded page size (a too-big page is a 400)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.db import connections
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

    def _page_number(self, request) -> tuple[int, int] | None:  # type: ignore[no-untyped-def]
        """``(page size, page number)`` of the request; None when only DRF's own path
        answers it (``page=last``, a page that is not a positive number)."""
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
        return size, number

    def _answer(self, rows: list[Any], count: int, size: int, number: int, request) -> list[Any]:  # type: ignore[no-untyped-def]
        """Set up the page (``get_paginated_response``) as DRF's paginator would."""
        paginator = self.django_paginator_class([], size)
        paginator.__dict__["count"] = count  # a cached_property: known, not counted again
        self.page = paginator.page(number)
        self.page.object_list = rows
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True
        self.request = request
        return rows

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
        asked = self._page_number(request)
        if asked is None:
            return None
        size, number = asked
        offset = (number - 1) * size
        rows = list(page_query(qs, count_qs, offset, size))
        if not rows and number > 1:
            return None  # past the end: DRF's 404
        count = 0
        for row in rows:
            if isinstance(row, dict):
                count = row.pop("_page_count")
            else:
                count = row.__dict__.pop("_page_count")
        return self._answer(rows, count, size, number, request)

    def paginate_prepared(
        self,
        statement: PreparedPage,
        values: dict[str, int],
        request,  # type: ignore[no-untyped-def]
    ) -> list[dict[str, Any]] | None:
        """As :meth:`paginate_values`, the page of ``statement`` (a common list shape whose
        SQL is built once per process) for ``values`` of its parameters, run as a
        server-side prepared statement: no queryset built or compiled per request. None
        when only DRF's own path answers (as :meth:`paginate_values`)."""
        asked = self._page_number(request)
        if asked is None:
            return None
        size, number = asked
        rows = statement.rows(values, offset=(number - 1) * size, size=size)
        if not rows and number > 1:
            return None  # past the end: DRF's 404
        count = 0
        for row in rows:
            count = row.pop("_page_count")
        return self._answer(rows, count, size, number, request)


def page_query(qs: QuerySet, count_qs: QuerySet | None, offset: int, size: int) -> QuerySet:
    """The rows of ``qs`` on the page ``[offset, offset + size)`` with ``_page_count`` (the
    count of ``count_qs``, default ``qs``, as an uncorrelated subquery): the page's ids read
    from ``count_qs`` by its order (by the index, without the joins), then ``qs``'s rows of
    those ids in ``qs``'s order (see :meth:`StandardPagination.paginate_values`)."""
    counted = qs if count_qs is None else count_qs
    sql, params = counted.order_by().values("pk").query.sql_with_params()
    total = RawSQL(f"SELECT COUNT(*) FROM ({sql}) _page_count", params)  # noqa: S611
    order = qs.query.order_by or qs.model._meta.ordering
    page = counted.order_by(*order).values("pk")[offset : offset + size]
    return qs.filter(pk__in=page).annotate(_page_count=total)


class PreparedPage:
    """The page query of one common list shape ("my cases", "my tasks": the first page of a
    member's own rows, no other filter), its SQL built by the ORM ONCE per process and run
    as a server-side prepared statement (:func:`gridsvc.prepared.fetchall`): Django
    resolving and compiling a 60-column query cost a list request more than PostgreSQL
    running it (issue 19). ``build(values)`` returns ``(qs, count_qs)`` as handed to
    :meth:`StandardPagination.paginate_values` for ``values`` of the named integer
    parameters; it is called once, with stand-in values, and the SQL of
    :func:`page_query` has those (and the page's LIMIT/OFFSET) turned into named
    parameters. Rows come back converted as Django's ``values()`` converts them (its own
    converters), as dicts of the same keys. tests/test_request_cost_reads.py holds the
    answers equal to the ORM path's."""

    _LIMIT, _OFFSET = 987_654_301, 876_543_201  # stand-ins: numbers no query holds

    def __init__(
        self, build: Callable[[dict[str, int]], tuple[QuerySet, QuerySet | None]], *names: str
    ) -> None:
        self.build = build
        self.names = names
        self.alias = "default"
        self._compiled: tuple[str, dict[str, Any], dict[str, str], Any, list[str]] | None = None

    def _compile(self) -> tuple[str, dict[str, Any], dict[str, str], Any, list[str]]:
        stand_in = {name: 1_987_000_001 + 7919 * i for i, name in enumerate(self.names)}
        qs, count_qs = self.build(stand_in)
        query = page_query(qs, count_qs, self._OFFSET, self._LIMIT).query
        compiler = query.get_compiler(using=qs.db)
        sql, params = compiler.as_sql()
        by_value = {v: k for k, v in stand_in.items()}
        fixed: dict[str, Any] = {}  # the statement's own constants, as parameters
        named: dict[str, str] = {}  # placeholder → the value it takes
        pieces = re.split(r"(%%|%s)", sql)
        k = 0
        for i, piece in enumerate(pieces):
            if piece != "%s":
                continue
            value = params[k]
            key = f"p{k}"
            if isinstance(value, int) and not isinstance(value, bool) and value in by_value:
                named[key] = by_value[value]
            else:
                fixed[key] = value
            pieces[i] = f"%({key})s"
            k += 1
        if k != len(params):  # pragma: no cover - the ORM's SQL and its parameters disagree
            raise RuntimeError("placeholders and parameters differ")
        sql = "".join(pieces)
        window = f"LIMIT {self._LIMIT} OFFSET {self._OFFSET}"
        if sql.count(window) != 1 or any(
            sql.count(str(v))
            for v in (*stand_in.values(), self._LIMIT, self._OFFSET)
            if str(v) not in window
        ):  # pragma: no cover - a stand-in inlined in the SQL: cannot be a parameter
            raise RuntimeError(f"a stand-in value is not a parameter of {sql}")
        sql = sql.replace(window, "LIMIT %(_limit)s OFFSET %(_offset)s")
        expressions = [col for col, _, _ in compiler.select]
        converters = compiler.get_converters(expressions)
        selected: Any = getattr(query, "selected", None)  # Django 5.2: the values() names
        names = (
            list(selected)
            if selected
            else [*query.extra_select, *query.values_select, *query.annotation_select]
        )
        self.alias = qs.db
        self._compiled = (sql, fixed, named, converters, names)
        return self._compiled

    def sql(self) -> str:
        """The statement's text (``%(name)s`` placeholders)."""
        return (self._compiled or self._compile())[0]

    def rows(self, values: dict[str, int], offset: int, size: int) -> list[dict[str, Any]]:
        """The page's rows (dicts, with ``_page_count``) for ``values`` of the parameters."""
        from gridsvc.prepared import fetchall

        sql, fixed, named, converters, names = self._compiled or self._compile()
        params = {**fixed, **{key: values[name] for key, name in named.items()}}
        params["_limit"], params["_offset"] = size, offset
        found: list[Any] = fetchall(sql, params, self.alias)
        if converters:  # Django's own converters of these columns (as values() applies them)
            connection = connections[self.alias]
            found = [list(row) for row in found]
            for row in found:
                for pos, (convert, expression) in converters.items():
                    value = row[pos]
                    for converter in convert:
                        value = converter(value, expression, connection)
                    row[pos] = value
        return [dict(zip(names, row, strict=True)) for row in found]


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
