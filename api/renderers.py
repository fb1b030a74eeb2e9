"""The API's JSON renderer (issue 19): DRF's JSON, written by orjson.

DRF's :class:`~rest_framework.renderers.JSONRenderer` encodes with the standard library (a
page of 50 cases, 44 kB: 0.41 ms; orjson 0.09 ms). :class:`JSONRenderer` writes the same bytes
— compact, UTF-8, U+2028 and U+2029 escaped as DRF escapes them — and hands anything else to
DRF's own: an indent asked for in the ``Accept`` header, and a value orjson does not write as
DRF's encoder does (dates and times, which DRF writes with a ``Z`` for UTC; decimals, lazy
texts, non-text keys …). ``tests/test_renderers.py`` checks the bytes are DRF's. The one
difference: a number with an exponent is written without padding (``1e-7`` where the standard
library writes ``1e-07``) — the same number to any JSON reader."""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework import renderers

#: U+2028 and U+2029 in UTF-8, and the escapes DRF's JSONRenderer writes for them
_JS_SEPARATORS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))
#: dates, times and dataclasses go to :func:`_refuse` (DRF's encoder writes them its way)
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def json_bytes(data: Any) -> bytes | None:
    """``data`` as :class:`JSONRenderer` writes it without an indent; None when orjson does
    not write one of its values as DRF does (DRF's renderer then writes it all)."""
    try:
        out = orjson.dumps(data, default=_refuse, option=_OPTIONS)
    except TypeError:  # (orjson.JSONEncodeError): a value for DRF's encoder
        return None
    for raw, escaped in _JS_SEPARATORS:
        if raw in out:  # (rare: a scan, no copy of the answer otherwise)
            out = out.replace(raw, escaped)
    return out


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON, written by orjson (:func:`json_bytes`); DRF's renderer for an indent or a
    value orjson does not write as DRF does."""

    def render(self, data, accepted_media_type=None, renderer_context=None):  # type: ignore[no-untyped-def]
        if data is None or self.get_indent(accepted_media_type, renderer_context or {}):
            return super().render(data, accepted_media_type, renderer_context)
        out = json_bytes(data)
        if out is None:
            return super().render(data, accepted_media_type, renderer_context)
        return out
