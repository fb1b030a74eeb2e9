"""Query parameters of the map layers (tiles, GeoJSON layers, heatmap, choropleth, offline
packages, OGC API - Features) as serializers: one definition parses the request (400 naming
the field) and describes the parameters in the OpenAPI schema
(``extend_schema(parameters=[...])``).

The serializers only parse (types, ranges, formats, names of states and kinds); the rules —
how big a box, which CRS a tile may have, which categories exist, how states group — stay
in :mod:`gridsvc.layers.services`. A layer's own filters come from its
:class:`~gridsvc.layers.services.Filter` declarations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from api.fields import CLIENT_TIME_RANGE, in_client_range
from geo import crs as geocrs
from gridsvc.layers import services as S

OGC_LIMIT_DEFAULT = 10
OGC_LIMIT_MAX = 10_000
MAX_ID = 2**62
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

_NUMBER = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
BBOX_PATTERN = rf"^\s*{_NUMBER}\s*(,\s*{_NUMBER}\s*){{3}}$"
OGC_BBOX_PATTERN = rf"^\s*{_NUMBER}\s*(,\s*{_NUMBER}\s*){{3}}((,\s*{_NUMBER}\s*){{2}})?$"
#: a day of the calendar in the years a client may send (:mod:`api.fields`: 1970–2099): every
#: match is a real date and every real date matches — days 1–28 of any month, 29–30 of any
#: month but February, 31 of the months that have it, and 29 February of the leap years
#: (1972 … 1996, 2000 … 2096; 2000 is one, as a multiple of 400)
_YEAR = r"(19[7-9]\d|20\d{2})"
_LEAP_YEAR = r"(19(7[26]|8[048]|9[26])|20([02468][048]|[13579][26]))"
_DAY = (
    rf"({_YEAR}-((0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
    rf"|{_LEAP_YEAR}-02-29)"
)
_CLOCK = r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?"
_OFFSET = r"(Z|[+-](0\d|1[0-4]):?[0-5]\d)"
INSTANT_PATTERN = rf"^{_DAY}([T ]{_CLOCK}{_OFFSET}?)?$"
_INSTANT = INSTANT_PATTERN[1:-1]
INTERVAL_PATTERN = rf"^({_INSTANT}|{_INSTANT}/({_INSTANT}|\.\.)?|(\.\.)?/{_INSTANT})$"
#: the range beside a published pattern: the pattern has the years, the range is in UTC
#: (a pattern cannot say that 1970-01-01T00:00+08:00 is 1969-12-31T16:00Z, nor that
#: 2099-12-31T20:00-05:00 is 2100-01-01T01:00Z)
INSTANT_RANGE_HELP = (
    f"{CLIENT_TIME_RANGE}: the range is in UTC, so an early hour of 1970-01-01 with a positive "
    "offset (1970-01-01T00:00+08:00) or without one (the server's time zone, +08:00) is a 400, "
    "and so is a late hour of 2099-12-31 with a negative offset (2099-12-31T20:00-05:00)"
)


def query_data(params: Mapping[str, Any]) -> dict[str, str]:
    """A query string as a plain dict for a serializer: one value per name, and an empty
    value is an absent one (``?bbox=`` is no box)."""
    getter = getattr(params, "items", None)
    pairs = getter() if getter else []
    return {k: v for k, v in pairs if v not in (None, "")}


# ---------------------------------------------------------------------------- fields
class CrsField(serializers.ChoiceField):
    """A coordinate system of :func:`geo.crs.normalize_crs` (its aliases too: EPSG:4326 …)."""

    def __init__(self, choices: Iterable[str] = geocrs.SUPPORTED_CRS, **kwargs: Any) -> None:
        super().__init__(choices=list(choices), **kwargs)

    def to_internal_value(self, data: Any) -> str:
        try:
            crs = geocrs.normalize_crs(data)
        except geocrs.UnsupportedCRS:
            raise ValidationError(
                f"one of {', '.join(geocrs.SUPPORTED_CRS)} (got {str(data)[:40]!r})"
            ) from None
        return crs


class TextField(serializers.Field):
    """A string parameter read into something else: ``parse_text`` gets the stripped text
    (at most ``max_length`` characters, no NUL)."""

    max_length = 200

    def __init__(self, *, max_length: int | None = None, **kwargs: Any) -> None:
        if max_length is not None:
            self.max_length = max_length
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            raise ValidationError("must be a string")
        text = str(data).strip()
        if len(text) > self.max_length:
            raise ValidationError(f"at most {self.max_length} characters")
        if "\x00" in text:
            raise ValidationError("invalid character")
        return self.parse_text(text)

    def parse_text(self, text: str) -> Any:
        return text

    def to_representation(self, value: Any) -> Any:  # pragma: no cover - input only
        return value


extend_schema_field({"type": "string"})(TextField)


class BBoxField(TextField):
    """``minlon,minlat,maxlon,maxlat``: four finite numbers, longitudes in [-180, 180] and
    latitudes in [-90, 90] → a tuple."""

    max_length = 400

    def __init__(self, *, six: bool = False, **kwargs: Any) -> None:
        self.six = six  # OGC API: minx,miny,minz,maxx,maxy,maxz too
        super().__init__(**kwargs)

    def parse_text(self, text: str) -> tuple[float, float, float, float]:
        parts = text.split(",")
        if self.six and len(parts) == 6:
            parts = [parts[0], parts[1], parts[3], parts[4]]
        if len(parts) != 4:
            raise ValidationError("four numbers: minlon,minlat,maxlon,maxlat")
        try:
            x0, y0, x1, y1 = (float(p) for p in parts)
        except ValueError:
            raise ValidationError("four numbers: minlon,minlat,maxlon,maxlat") from None
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise ValidationError("numbers must be finite")
        if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
            raise ValidationError("longitudes in [-180, 180], latitudes in [-90, 90]")
        return x0, y0, x1, y1


extend_schema_field({"type": "string", "pattern": BBOX_PATTERN})(BBoxField)


class InstantField(TextField):
    """A date ``YYYY-MM-DD`` (a whole local day: its start, or with ``end`` the start of the
    next day) or an ISO 8601 date-time (naive = local time) → an aware datetime, a date-time
    a client may send (:func:`api.fields.in_client_range`: 1970-2099 UTC)."""

    max_length = 40

    def __init__(self, *, end: bool = False, **kwargs: Any) -> None:
        self.end = end
        super().__init__(**kwargs)

    def parse_text(self, text: str) -> datetime | None:
        try:
            value = S.parse_instant(text, self.field_name, end=self.end)
        except S.ParamError as exc:
            raise ValidationError(exc.message) from None
        return value if value is None else in_client_range(value)


extend_schema_field({"type": "string", "pattern": INSTANT_PATTERN})(InstantField)


class IntervalField(TextField):
    """OGC API ``datetime``: an instant, ``a/b``, ``../b`` or ``a/..`` → (start, end); each
    end given is a date-time a client may send (:func:`api.fields.in_client_range`)."""

    max_length = 90

    def parse_text(self, raw: str) -> tuple[datetime | None, datetime | None]:
        interval = "/" in raw
        try:
            if interval:
                a, _, b = raw.partition("/")
                lo = S.parse_instant(a or "..", "datetime")
                hi = S.parse_instant(b or "..", "datetime", end=True)
                if lo is None and hi is None:
                    raise ValidationError("an open interval needs one end")
            else:
                lo = S.parse_instant(raw, "datetime")
                hi = S.parse_instant(raw, "datetime", end=True) if len(raw) == 10 else lo
        except S.ParamError as exc:
            raise ValidationError(exc.message) from None
        lo, hi = (None if t is None else in_client_range(t) for t in (lo, hi))
        if interval:
            if lo and hi and lo >= hi:
                raise ValidationError("start after end")
            return lo, hi
        if lo is not None and hi is not None and hi == lo:
            hi = lo + timedelta(microseconds=1)
        return lo, hi


extend_schema_field({"type": "string", "pattern": INTERVAL_PATTERN})(IntervalField)


class CsvField(TextField):
    """Comma-separated values → a list (blanks dropped); with ``names`` each must be one."""

    max_length = 2000

    def __init__(self, *, names: Any = None, what: str = "value", **kwargs: Any) -> None:
        self.names = names  # a list or a function returning one (read when parsing)
        self.what = what
        super().__init__(**kwargs)

    def allowed(self) -> list[str] | None:
        return self.names() if callable(self.names) else self.names

    def parse_text(self, text: str) -> list[str]:
        items = [p.strip() for p in text.split(",") if p.strip()]
        allowed = self.allowed()
        if allowed is not None:
            for item in items:
                if item not in allowed:
                    raise ValidationError(
                        f"unknown {self.what} {item!r}: one of {', '.join(allowed)}"
                    )
        return items


def _csv_schema(names: list[str]) -> dict[str, Any]:
    one = "|".join(re.escape(n) for n in names)
    return {"type": "string", "pattern": rf"^({one})(,({one}))*$"}


# ---------------------------------------------------------------------------- serializers
class Params(serializers.Serializer):
    """Query parameters: a serializer that only parses (nothing is saved)."""

    def create(self, validated_data: Any) -> Any:  # pragma: no cover - never saved
        raise NotImplementedError

    def update(self, instance: Any, validated_data: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


def params_class(name: str, fields: Mapping[str, serializers.Field], base: type = Params) -> type:
    """A serializer class with these fields (names such as ``from`` or ``bbox-crs`` are not
    Python identifiers, so they are given as a mapping)."""
    return type(name, (base,), dict(fields))


def parse(serializer_class: type[serializers.Serializer], params: Mapping[str, Any]) -> dict:
    """Parsed values, or ValidationError (400) naming each bad field."""
    s = serializer_class(data=query_data(params))
    s.is_valid(raise_exception=True)
    return dict(s.validated_data)


@extend_schema_field(_csv_schema(S.status_names()))
class StatusesField(CsvField):
    """Case states or the groups ``open`` / ``done``, comma-separated."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(names=S.status_names, what="state", **kwargs)


def filter_field(f: S.Filter) -> serializers.Field:
    """The serializer field of a layer filter."""
    help_text = f.description
    if f.type == "id":
        return serializers.IntegerField(
            min_value=1, max_value=MAX_ID, required=False, help_text=help_text
        )
    if f.type == "text":
        return serializers.CharField(max_length=64, required=False, help_text=help_text)
    if f.type == "bool":
        return serializers.BooleanField(required=False, help_text=help_text)
    if f.type == "choice":
        return serializers.ChoiceField(choices=list(f.choices), required=False, help_text=help_text)
    if f.type == "since":
        return InstantField(required=False, help_text=f"{help_text}; {INSTANT_RANGE_HELP}")
    if f.type == "until":
        return InstantField(
            end=True, required=False, help_text=f"{help_text}; {INSTANT_RANGE_HELP}"
        )
    if f.type == "categories":
        return CsvField(what="category", required=False, help_text=help_text)
    if f.type == "statuses":
        return StatusesField(required=False, help_text=help_text)
    raise ValueError(f"unknown filter type {f.type!r}")


class FilterParams(Params):
    """A layer's filters; ``since``/``until`` aliases merged and ordered."""

    window_names: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    alias_of: dict[str, str] = {}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for alias, name in self.alias_of.items():
            value = attrs.pop(alias, None)
            if value is not None and attrs.get(name) is None:
                attrs[name] = value
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since >= until:
            used = "until" if "until" in self.initial_data else "to"
            raise ValidationError({used: ["must be after since"]})
        return attrs


def filter_fields(filters: Iterable[S.Filter], *, aliases: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in filters:
        out[f.name] = filter_field(f)
        if aliases:
            for alias in f.aliases:
                out[alias] = filter_field(
                    S.Filter(alias, f.type, f"alias of {f.name}", f.path, f.choices)
                )
    return out


def _aliases(filters: Iterable[S.Filter]) -> dict[str, str]:
    return {a: f.name for f in filters for a in f.aliases}


@cache
def layer_filter_params(layer: str | None, *, aliases: bool = True) -> type[FilterParams]:
    """The filters of ``layer`` (None: the case filters of the heatmap and choropleth)."""
    filters = S.LAYERS[layer].filters if layer else S.CASE_FILTERS
    fields = filter_fields(filters, aliases=aliases)
    cls = params_class(f"{(layer or 'case').title()}FilterParams", fields, FilterParams)
    cls.alias_of = _aliases(filters) if aliases else {}
    return cls


@cache
def all_filter_params(*, aliases: bool = True) -> type[FilterParams]:
    """Every layer's filters at once (the schema of an operation that serves all layers;
    where two layers share a name, e.g. ``kind``, the choices are joined)."""
    merged: dict[str, S.Filter] = {}
    for f in (*S.CASE_FILTERS, *(f for d in S.LAYERS.values() for f in d.filters)):
        seen = merged.get(f.name)
        if seen is None:
            merged[f.name] = f
        elif f.choices:
            joined = tuple(dict.fromkeys((*seen.choices, *f.choices)))
            merged[f.name] = S.Filter(
                f.name,
                f.type,
                f"{seen.description}; {f.description}",
                seen.path,
                joined,
                seen.aliases,
            )
    cls = params_class("LayerFilterParams", filter_fields(merged.values(), aliases=aliases))
    return cls  # type: ignore[return-value]


def layer_query(layer: str | None, params: Mapping[str, Any], *, aliases: bool = True):  # type: ignore[no-untyped-def]
    """The parsed filters of ``layer`` as a :class:`~gridsvc.layers.services.LayerQuery`."""
    values = parse(layer_filter_params(layer, aliases=aliases), params)
    return S.layer_query(S.LAYERS[layer] if layer else None, values)


_TILE_CRS_HELP = (
    "tile grid and coordinates: wgs84 (default; cgcs2000 = wgs84) or gcj02 (web mercator over "
    "GCJ-02, for Amap/Tencent basemaps); bd09 is a 400"
)


class TileCrsParams(Params):
    crs = CrsField(
        choices=[*S.TILE_CRS, "cgcs2000"], required=False, default="wgs84", help_text=_TILE_CRS_HELP
    )


class PackageParams(Params):
    crs = CrsField(
        choices=[*S.TILE_CRS, "cgcs2000"],
        required=False,
        default="wgs84",
        help_text="wgs84 (default) or gcj02 (tiles in the GCJ-02 web-mercator grid and household "
        "points in GCJ-02, for Amap/Tencent basemaps): a package of its own with its own ETag",
    )


_CRS_HELP = "coordinates of bbox and output: wgs84 (default), gcj02, bd09, cgcs2000"


class SimplifyParams(Params):
    crs = CrsField(required=False, default="wgs84", help_text=_CRS_HELP)
    zoom = serializers.FloatField(
        min_value=0,
        max_value=S.MAX_ZOOM,
        required=False,
        help_text="simplify for this web-map zoom",
    )
    tolerance = serializers.FloatField(
        min_value=0,
        max_value=10_000,
        required=False,
        help_text="simplification tolerance in metres (overrides zoom)",
    )


class FeaturesParams(SimplifyParams):
    bbox = BBoxField(required=False, help_text="minlon,minlat,maxlon,maxlat (in crs)")
    page = serializers.IntegerField(min_value=1, max_value=10**9, required=False)
    page_size = serializers.IntegerField(
        min_value=1, max_value=500, required=False, help_text="features per page (≤ 500)"
    )


class HeatmapParams(Params):
    crs = CrsField(required=False, default="wgs84", help_text=_CRS_HELP)
    bbox = BBoxField(
        required=False, help_text="minlon,minlat,maxlon,maxlat (in crs); default: your territory"
    )
    zoom = serializers.FloatField(
        min_value=0,
        max_value=S.MAX_ZOOM,
        required=False,
        default=15.0,
        help_text=f"web-map zoom 0..{S.MAX_ZOOM} (hexagon size; default 15)",
    )


@extend_schema_field({"type": "string", "pattern": OGC_BBOX_PATTERN})
class OgcBBoxField(BBoxField):
    """OGC API ``bbox``: four numbers, or six (minx,miny,minz,maxx,maxy,maxz; heights dropped)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(six=True, **kwargs)


class OgcItemsParams(Params):
    bbox = OgcBBoxField(required=False, help_text="minlon,minlat,maxlon,maxlat (CRS84)")
    limit = serializers.IntegerField(
        min_value=1,
        max_value=OGC_LIMIT_MAX,
        required=False,
        default=OGC_LIMIT_DEFAULT,
        help_text=f"1..{OGC_LIMIT_MAX} (default {OGC_LIMIT_DEFAULT})",
    )
    offset = serializers.IntegerField(
        min_value=0, max_value=10**9, required=False, default=0, help_text="skip this many items"
    )
    datetime = IntervalField(
        required=False,
        help_text="RFC 3339 instant or interval (a/b, ../b, a/..): cases by reported time, "
        f"visits by visit time; each end given {INSTANT_RANGE_HELP}",
    )
    f = serializers.ChoiceField(
        choices=["json"], required=False, help_text="json (the only format)"
    )


OgcItemsParams._declared_fields["bbox-crs"] = serializers.ChoiceField(
    choices=[CRS84], required=False, help_text="the CRS of bbox: CRS84 only"
)


@cache
def ogc_items_params(layer: str) -> type[Params]:
    """OGC API items of ``layer``: paging, bbox, datetime and the layer's filters (no
    aliases); any other parameter is a 400 naming it."""
    fields = filter_fields(S.LAYERS[layer].filters, aliases=False)
    return params_class(f"{layer.title()}OgcItemsParams", fields, OgcItemsParams)


def parse_ogc_items(layer: str, params: Mapping[str, Any]) -> dict[str, Any]:
    cls = ogc_items_params(layer)
    known = set(cls._declared_fields)
    for key in params:
        if key not in known:
            raise ValidationError(
                {key: [f"unknown parameter for {layer}: {', '.join(sorted(known))}"]}
            )
    values = parse(cls, params)
    if values.get("datetime") and not S.LAYERS[layer].temporal:
        raise ValidationError({"datetime": [f"{layer} has no time"]})
    return values


@cache
def ogc_items_schema_params() -> type[Params]:
    """Every layer's OGC API filters at once (the operation's schema)."""
    fields = dict(all_filter_params(aliases=False)._declared_fields)
    return params_class("OgcItemsAllParams", fields, OgcItemsParams)


__all__ = [
    "CRS84",
    "FeaturesParams",
    "HeatmapParams",
    "OGC_LIMIT_DEFAULT",
    "OGC_LIMIT_MAX",
    "PackageParams",
    "SimplifyParams",
    "TileCrsParams",
    "all_filter_params",
    "layer_query",
    "parse",
    "parse_ogc_items",
]
