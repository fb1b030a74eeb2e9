"""Request body parsers with input limits: every body the API reads goes through these.

- JSON nested deeper than :data:`MAX_DEPTH` (arrays/objects inside each other) is refused
  with 400 before any view sees it (``[`` × 100,000 used to end in a RecursionError → 500).
- No text may carry the NUL character (U+0000): PostgreSQL refuses it in ``text`` columns, so
  it used to surface as a 500 half-way through a write. A JSON string (or object key), a form
  or multipart text field with NUL is a 400 naming the field path (``visits[0].note``);
  nothing is stored.

The three parsers replace DRF's defaults (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``);
views that list their own parsers import them from here. :func:`loads` is the same check for
code that decodes JSON itself (e.g. a JSON string inside a multipart form).
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

#: deepest nesting of arrays/objects accepted in a JSON body
MAX_DEPTH = 64
NUL = "\x00"
NUL_MESSAGE = "must not contain the NUL character (\\u0000)"
DEPTH_MESSAGE = f"JSON nested deeper than {MAX_DEPTH} levels"


class InputRefused(ParseError):
    """400 with ``{field path: [message]}`` (a ParseError, so DRF answers it before the view)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__({field: [message]})


def _path(parent: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def check_value(value: Any, root: str = "") -> None:
    """Raise :class:`InputRefused` if ``value`` (decoded JSON) nests deeper than
    :data:`MAX_DEPTH` or holds a string with NUL. Iterative: no recursion on hostile input."""
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                raise InputRefused(path or "non_field_errors", NUL_MESSAGE)
        elif isinstance(item, dict):
            if depth >= MAX_DEPTH:
                raise InputRefused(path or "non_field_errors", DEPTH_MESSAGE)
            for k, v in item.items():
                sub = _path(path, k)
                if isinstance(k, str) and NUL in k:
                    raise InputRefused(path or "non_field_errors", f"a key {NUL_MESSAGE}")
                stack.append((v, sub, depth + 1))
        elif isinstance(item, list):
            if depth >= MAX_DEPTH:
                raise InputRefused(path or "non_field_errors", DEPTH_MESSAGE)
            stack.extend((v, _path(path, i), depth + 1) for i, v in enumerate(item))


def loads(raw: str | bytes, field: str = "") -> Any:
    """``json.loads`` with the API's input limits (depth, NUL); ``ValueError`` if it is not
    JSON, :class:`InputRefused` if it breaks a limit."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise InputRefused(field or "non_field_errors", DEPTH_MESSAGE) from None
    check_value(value, field)
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser (strict: no NaN/Infinity) plus the depth and NUL limits."""

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise InputRefused("non_field_errors", DEPTH_MESSAGE) from None
        check_value(data)
        return data


def _check_form(data: Any) -> None:
    for key, values in data.lists():
        if NUL in key:
            raise InputRefused("non_field_errors", f"a field name {NUL_MESSAGE}")
        for v in values:
            if isinstance(v, str) and NUL in v:
                raise InputRefused(key, NUL_MESSAGE)


class FormParser(parsers.FormParser):
    """application/x-www-form-urlencoded without NUL in any field."""

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        data = super().parse(stream, media_type, parser_context)
        _check_form(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    """multipart/form-data without NUL in any text field or file name."""

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        result = super().parse(stream, media_type, parser_context)
        _check_form(result.data)
        for key, files in result.files.lists():
            for f in files:
                if NUL in (f.name or ""):
                    raise InputRefused(key, f"the file name {NUL_MESSAGE}")
        return result


class RejectNulMiddleware:
    """The same NUL rule for what no parser reads: the URL path and the query string. A NUL
    there (``/reports/ledgers/a%00/``, ``?community=%00``) is a 400 naming the parameter
    instead of a 500 from PostgreSQL; listed in ``MIDDLEWARE`` before the views."""

    def __init__(self, get_response) -> None:  # type: ignore[no-untyped-def]
        self.get_response = get_response

    def __call__(self, request):  # type: ignore[no-untyped-def]
        from django.http import JsonResponse

        def refuse(field: str) -> JsonResponse:
            if request.path.startswith("/open311/"):  # GeoReport v2 errors are a list
                error = [{"code": 400, "description": f"{field}: {NUL_MESSAGE}"}]
                return JsonResponse(error, status=400, safe=False)
            return JsonResponse({field: [NUL_MESSAGE]}, status=400)

        if NUL in request.path:
            return refuse("path")
        for key, values in request.GET.lists():
            if NUL in key or any(NUL in v for v in values):
                return refuse(key.replace(NUL, "") or "query")
        return self.get_response(request)
