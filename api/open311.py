"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2), JSON only, at the site root.

Existing Open311 clients (hotline integrations, city apps) report into gridsvc through it:
categories are the *services*, cases are the *service requests*. Rules stay in
:mod:`gridsvc.cases.services` (a POST is routed along the chain like any report); this module
only translates.

- ``GET /open311/v2/discovery.json`` — service discovery (public).
- ``GET /open311/v2/services.json`` — every active category (public catalogue).
- ``GET /open311/v2/services/{service_code}.json`` — a service definition: the case flags and
  the priority as ``singlevaluelist`` attributes, the parties as text (public).
- ``POST /open311/v2/requests.json`` — report (form-encoded or JSON); an authenticated member
  only: ``Authorization: Bearer``, the web session, or the spec's ``api_key`` carrying a JWT
  access token. Answers ``201 [{service_request_id, service_notice, account_id}]``.
- ``GET /open311/v2/requests.json`` and ``GET /open311/v2/requests/{id}.json`` — the caller's
  territory only (:func:`api.cases.case_queryset`); ``service_request_id`` is the case number.

Errors are the spec's list ``[{"code": 400, "description": "lat: ..."}]`` with the HTTP status.
The reporter's name, e-mail and phone are stored as a party of the case and never returned,
not even typed again in the description or a note (masked there: :func:`_masked_text`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any

from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.urls import path, re_path
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.plumbing import build_array_type
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.fields import in_client_range
from api.parsers import FormParser, JSONParser, MultiPartParser
from gridsvc.accounts.authentication import DeviceJWTAuthentication
from gridsvc.cases import services
from gridsvc.cases.models import OPEN_STATUSES, Case, CaseEvent, Category, FlagRule, Kind, Status
from gridsvc.cases.textmask import masked_case_text
from gridsvc.chain.services import LEVEL_BY_NAME
from gridsvc.errors import DomainError
from gridsvc.territory.codes import mask_name
from gridsvc.territory.models import Building

from .cases import case_queryset, visible_among
from .layer_params import INSTANT_PATTERN, INSTANT_RANGE_HELP, CrsField
from .scoping import request_scope

SPEC = "http://wiki.open311.org/GeoReport_v2"
PREFIX = "open311/v2/"
MAX_REQUESTS = 1000  # the spec's default limit
DEFAULT_SPAN = timedelta(days=90)  # the spec's default window
MAX_DESCRIPTION = 4000
MEDIA_EVENT = "open311_media"
CHANGESET = "2025-06-01T00:00:00+08:00"  # when this endpoint last changed (discovery)
# Open311 "open": still being worked on (a hold 挂账 is a problem not yet solved).
OPEN311_OPEN = (*OPEN_STATUSES, Status.ON_HOLD)
TRUE_KEYS = {"true", "1", "yes", "y", "是"}
FALSE_KEYS = {"false", "0", "no", "n", "否", ""}
PRIORITIES = [("1", "紧急"), ("2", "高"), ("3", "普通"), ("4", "低")]
ATTR_KEY = re.compile(r"^attribute\[([^\]]*)\]$")


# ---------------------------------------------------------------------------- errors
class Open311Error(exceptions.APIException):
    """An error answered in the spec's format; ``description`` names the field."""

    def __init__(self, status_code: int, description: str) -> None:
        super().__init__(description)
        self.status_code = status_code


def bad(field: str, message: str) -> Open311Error:
    return Open311Error(400, f"{field}: {message}")


def _flatten(data: Any, prefix: str = "") -> list[str]:
    """DRF error data (``{"field": ["msg"]}``, ``{"detail": "msg"}``, lists) → messages."""
    if isinstance(data, Mapping):
        if "detail" in data and not prefix:
            return [str(data["detail"])]
        out: list[str] = []
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out += _flatten(value, name)
        return out
    if isinstance(data, list | tuple):
        out = []
        for item in data:
            out += _flatten(item, prefix)
        return out
    return [f"{prefix}: {data}" if prefix else str(data)]


def open311_errors(code: int, data: Any) -> list[dict[str, Any]]:
    """The spec's error body: ``[{"code": 400, "description": "..."}]``."""
    messages = _flatten(data) or ["error"]
    errors = [{"code": code, "description": m} for m in messages]
    return list(Open311ErrorSerializer(errors, many=True).data)


# ---------------------------------------------------------------------------- auth
class ApiKeyAuthentication(DeviceJWTAuthentication):
    """The spec's ``api_key`` parameter, carrying a JWT access token (as from
    ``POST /api/v1/auth/token/``). Read on POST only, from the body or the query string, so
    tokens do not end up in the access logs of GETs."""

    def authenticate(self, request: Request):  # type: ignore[no-untyped-def,override]
        if request.method != "POST":
            return None
        raw = request.query_params.get("api_key")
        if not raw:
            data = request.data  # a malformed body raises ParseError → 400
            if isinstance(data, Mapping):
                raw = data.get("api_key")
        if raw in (None, ""):
            return None
        if not isinstance(raw, str) or "\x00" in raw:
            raise exceptions.AuthenticationFailed("api_key: not an access token")
        validated = self.get_validated_token(raw.encode("utf-8", "replace"))
        return self.get_user(validated), validated


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "open311ApiKey"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {
            "type": "apiKey",
            "in": "query",
            "name": "api_key",
            "description": "a JWT access token (POST only; also accepted in the form body)",
        }


AUTHENTICATION = [DeviceJWTAuthentication, ApiKeyAuthentication, SessionAuthentication]


# ---------------------------------------------------------------------------- base view
class Open311View(APIView):
    """JSON whatever the Accept header or ``?format=`` says; every error in the spec's format."""

    renderer_classes = [JSONRenderer]
    authentication_classes = AUTHENTICATION
    permission_classes = [AllowAny]

    def perform_content_negotiation(self, request, force=False):  # type: ignore[no-untyped-def]
        return (JSONRenderer(), JSONRenderer.media_type)

    def initial(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().initial(request, *args, **kwargs)
        for key, values in request.query_params.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                raise bad(key.replace("\x00", ""), "invalid character")

    def handle_exception(self, exc):  # type: ignore[no-untyped-def]
        if isinstance(exc, DomainError):  # a domain rule's refusal, in Open311's words
            exc = Open311Error(exc.status_code, f"{exc.field}: {exc.message}")
        elif isinstance(exc, exceptions.NotFound):
            exc = Open311Error(404, "not found")
        response = super().handle_exception(exc)
        response.data = open311_errors(response.status_code, response.data)
        return response


# ---------------------------------------------------------------------------- input fields
def _plain(data: Any) -> dict[str, Any]:
    """A form or JSON body (or a query string) as a plain dict for a serializer: one value per
    name (a repeated form field stays a list), and an empty value is an absent one."""
    if not isinstance(data, Mapping):
        raise bad("body", "form fields or a JSON object")
    out: dict[str, Any] = {}
    for key in data:
        value: Any = data.getlist(key) if hasattr(data, "getlist") else data[key]
        if hasattr(data, "getlist") and isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None or value == "":
            continue
        out[str(key)] = value
    return out


def _text(**kwargs: Any) -> serializers.CharField:
    """Optional text of a form field or JSON value, stripped; blank is absent (NUL and lone
    surrogates refused by DRF)."""
    return serializers.CharField(required=False, allow_blank=True, **kwargs)


class CoordinateField(serializers.FloatField):
    """Decimal degrees (WGS84 unless ``crs`` says otherwise); booleans are not numbers."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class FlagField(serializers.Field):
    """A yes/no attribute: ``true``/``false``, ``1``/``0``, ``yes``/``no``, ``是``/``否``."""

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        if isinstance(data, str | int) and str(data).strip().lower() in TRUE_KEYS:
            return True
        if isinstance(data, str | int) and str(data).strip().lower() in FALSE_KEYS:
            return False
        raise serializers.ValidationError("true or false")

    def to_representation(self, value: Any) -> Any:  # pragma: no cover - input only
        return value


extend_schema_field({"type": "string", "pattern": "^(true|false|1|0|yes|y|no|n|是|否)$"})(FlagField)


@extend_schema_field({"type": "string", "pattern": "^[1-4]$"})
class PriorityField(serializers.ChoiceField):
    """紧急程度: 1 (紧急) … 4 (低)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=PRIORITIES, **kwargs)


#: what Django's URLValidator accepts of http(s) URLs with a domain name (the schema's words)
HTTP_URL_PATTERN = (
    r"^https?://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
    r"(:[1-9][0-9]{0,3})?([/?#][!-~]*)?$"
)


@extend_schema_field({"type": "string", "pattern": HTTP_URL_PATTERN, "maxLength": 1000})
class HttpUrlField(serializers.CharField):
    """An http(s) URL (a photo on the client's own server)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            max_length=1000,
            required=False,
            validators=[URLValidator(schemes=["http", "https"], message="an http(s) URL")],
            **kwargs,
        )


_LINE = "[^\\n\\r\\x0b\\x0c\\x1c-\\x1e\\x85\\u2028\\u2029]{0,50}"
_NEWLINE = "(\\r\\n|[\\n\\r])"


@extend_schema_field(
    {"type": "string", "maxLength": 1000, "pattern": f"^{_LINE}({_NEWLINE}{_LINE}){{0,19}}$"}
)
class PartiesField(serializers.CharField):
    """``attribute[parties]``: one name per line → parties of the case (当事人)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=1000, required=False, allow_blank=True, **kwargs)

    def to_internal_value(self, data: Any) -> list[dict[str, str]]:  # type: ignore[override]
        text = super().to_internal_value(data)
        lines = [n.strip() for n in text.splitlines() if n.strip()]
        if len(lines) > 20 or any(len(n) > 50 for n in lines):
            raise serializers.ValidationError("at most 20 names of at most 50 characters")
        return [{"name": n, "role": "当事人"} for n in lines]

    def run_validators(self, value: Any) -> None:  # the length was checked on the text
        return None


class Open311DateField(serializers.Field):
    """ISO 8601 date-time (a date alone: the start of that day, or the next day for
    ``end_date``); a time without an offset is read in the server's time zone. The instant is
    a date-time a client may send (:func:`api.fields.in_client_range`: 1970-2099 UTC)."""

    def __init__(self, *, end: bool = False, **kwargs: Any) -> None:
        self.end = end
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str) or len(data) > 40 or "\x00" in data:
            raise serializers.ValidationError(DATE_HELP)
        raw = data.strip()
        if "T" in raw:  # an unencoded "+08:00" arrives as " 08:00"
            raw = raw.replace(" ", "+")
        try:
            # a day first: parse_datetime reads "2026-05-01" as its midnight (fromisoformat)
            day = parse_date(raw)
            if day is not None:
                value = datetime.combine(day + timedelta(days=1) if self.end else day, time())
            else:
                value = parse_datetime(raw)
                if value is None:
                    raise ValueError(raw)
            if timezone.is_naive(value):
                value = timezone.make_aware(value)
        except (ValueError, OverflowError):
            raise serializers.ValidationError(DATE_HELP) from None
        # the one rule (the default window, 90 days either side, stays within the calendar)
        return in_client_range(value)

    def to_representation(self, value: Any) -> Any:  # pragma: no cover - input only
        return value


DATE_HELP = "an ISO 8601 date-time, e.g. 2025-05-01T08:00:00+08:00"
extend_schema_field({"type": "string", "pattern": INSTANT_PATTERN})(Open311DateField)


class CodesField(serializers.CharField):
    """Comma-separated codes → a list (blanks dropped)."""

    def __init__(self, *, most: int | None = None, **kwargs: Any) -> None:
        self.most = most
        super().__init__(required=False, allow_blank=True, **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:  # type: ignore[override]
        text = super().to_internal_value(data)
        codes = [c.strip() for c in text.split(",") if c.strip()]
        if self.most is not None and len(codes) > self.most:
            raise serializers.ValidationError(f"at most {self.most} ids")
        return codes

    def run_validators(self, value: Any) -> None:
        return None


# ---------------------------------------------------------------------------- input
class Open311Params(serializers.Serializer):
    """Parses only (nothing is saved)."""

    def create(self, validated_data: Any) -> Any:  # pragma: no cover - never saved
        raise NotImplementedError

    def update(self, instance: Any, validated_data: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


class JurisdictionParams(Open311Params):
    jurisdiction_id = _text(
        max_length=64, help_text="accepted and ignored (one jurisdiction per server)"
    )


class RequestListParams(JurisdictionParams):
    """``GET requests.json``: the spec's filters."""

    service_request_id = CodesField(
        most=MAX_REQUESTS,
        max_length=MAX_REQUESTS * 40,
        help_text="case numbers, comma-separated (overrides the rest)",
    )
    service_code = CodesField(max_length=4000, help_text="category codes, comma-separated")
    start_date = Open311DateField(
        required=False,
        help_text=f"ISO 8601, {INSTANT_RANGE_HELP}; default: 90 days before end_date",
    )
    end_date = Open311DateField(
        end=True,
        required=False,
        help_text=f"ISO 8601, {INSTANT_RANGE_HELP}; default: now (or 90 days after start_date)",
    )
    status = serializers.RegexField(
        r"^\s*(open|closed)\s*(,\s*(open|closed)\s*)*$",
        required=False,
        help_text="open, closed or open,closed",
        error_messages={"invalid": "open, closed or open,closed"},
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The spec's window: 90 days ending now by default, or from/to the date given."""
        start, end = attrs.get("start_date"), attrs.get("end_date")
        if start is None and end is None:
            end = timezone.now()
        if start is None:
            start = end - DEFAULT_SPAN  # type: ignore[operator]
        if end is None:
            end = start + DEFAULT_SPAN
        if end < start:
            raise serializers.ValidationError({"end_date": ["must not be before start_date"]})
        attrs["start_date"], attrs["end_date"] = start, end
        attrs["status"] = {s.strip() for s in attrs.get("status", "").split(",") if s.strip()}
        return attrs


#: the attributes a request may carry (see :func:`service_definition`)
ATTRIBUTE_CODES = (*services.FLAGS, "priority", "parties")


class ServiceRequestInput(JurisdictionParams):
    """``POST requests.json`` (form-encoded, multipart or JSON). Give ``lat`` and ``long``, or
    ``address_id`` (a building code in your territory). Attributes come as
    ``attribute[code]=value`` fields, or in JSON also as an ``attribute`` object."""

    service_code = serializers.RegexField(
        r"\S", max_length=200, help_text="a category code (see services.json)"
    )
    lat = CoordinateField(
        min_value=-90, max_value=90, required=False, help_text="latitude (WGS84 unless crs)"
    )
    long = CoordinateField(
        min_value=-180, max_value=180, required=False, help_text="longitude (WGS84 unless crs)"
    )
    crs = CrsField(
        required=False,
        help_text="not in GeoReport v2 (WGS84): a phone on Amap may send gcj02",
    )
    address_string = _text(max_length=200, help_text="kept in the description")
    address_id = serializers.RegexField(
        r"\S", max_length=32, required=False, help_text="a building code in your territory"
    )
    description = _text(max_length=MAX_DESCRIPTION)
    media_url = HttpUrlField(help_text="an http(s) URL")
    email = serializers.EmailField(
        max_length=254, required=False, help_text="stored as a party, never shown"
    )
    first_name = _text(max_length=50)
    last_name = _text(max_length=50)
    phone = serializers.RegexField(
        r"^[0-9+\-() ]{3,20}$",
        max_length=20,
        required=False,
        trim_whitespace=False,
        error_messages={"invalid": "digits, spaces and + - ( ) only"},
    )
    device_id = _text(max_length=64)
    account_id = _text(max_length=64, help_text="accepted, not used")
    api_key = _text(max_length=4000, help_text="a JWT access token (instead of Authorization)")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """The attributes (form fields and a JSON object) as ``attribute[code]`` fields; an
        attribute the service definition does not have is a 400 naming it."""
        attrs = _attributes(data)
        for code in attrs:
            if code not in ATTRIBUTE_CODES:
                raise serializers.ValidationError(
                    {f"attribute[{code}]": ["unknown attribute (see the service definition)"]}
                )
        plain = {k: v for k, v in data.items() if k != "attribute" and not ATTR_KEY.match(k)}
        plain.update({f"attribute[{k}]": v for k, v in attrs.items() if v not in (None, "")})
        return super().to_internal_value(plain)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        lat, lon = attrs.get("lat"), attrs.get("long")
        if lat is None and lon is None and not attrs.get("address_id"):
            raise serializers.ValidationError(
                {"lat": ["lat and long are required (or address_id, a building code)"]}
            )
        if lat is None and lon is not None:
            raise serializers.ValidationError({"lat": ["required with long"]})
        if lon is None and lat is not None:
            raise serializers.ValidationError({"long": ["required with lat"]})
        if lat is not None and attrs.get("crs") not in (None, "wgs84"):
            from geo.crs import to_wgs84

            attrs["long"], attrs["lat"] = to_wgs84(lon, lat, attrs["crs"])
        return attrs


for _code in services.FLAGS:
    ServiceRequestInput._declared_fields[f"attribute[{_code}]"] = FlagField(
        required=False, help_text=f"{FlagRule.Flag(_code).label}: true or false"
    )
ServiceRequestInput._declared_fields["attribute[priority]"] = PriorityField(
    required=False,
    help_text="紧急程度 (priority): 1 (紧急) … 4 (低); default 3",
)
ServiceRequestInput._declared_fields["attribute[parties]"] = PartiesField(
    help_text="当事人: one name per line; kept with the case, never published"
)


#: a report the schema shows (and schemathesis sends first): a demo category at a demo point
REQUEST_EXAMPLE = {
    "service_code": "neighbour.noise",
    "lat": 36.06,
    "long": 103.78,
    "address_id": "620103003012-B001",
}


class ServiceRequestInputScheme(OpenApiSerializerExtension):
    """The body's schema is the serializer's, plus what a flat field list cannot say: a
    request needs ``lat`` and ``long`` together, or ``address_id`` (then neither of them)."""

    target_class = ServiceRequestInput

    def map_serializer(self, auto_schema, direction):  # type: ignore[no-untyped-def]
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        one_of_them = {"anyOf": [{"required": ["lat"]}, {"required": ["long"]}]}
        schema["anyOf"] = [
            {"required": ["lat", "long"]},
            {"required": ["address_id"], "not": one_of_them},
        ]
        for name, value in REQUEST_EXAMPLE.items():
            schema["properties"][name]["example"] = value
        return schema


def _attributes(data: Mapping) -> dict[str, Any]:
    """``attribute[code]=value`` form fields, or a JSON ``attribute`` object, or both."""
    out: dict[str, Any] = {}
    nested = data.get("attribute")
    if nested not in (None, ""):
        if not isinstance(nested, Mapping):
            raise serializers.ValidationError(
                {"attribute": ["an object of attribute codes and values"]}
            )
        out.update({str(k): v for k, v in nested.items()})
    for key, value in data.items():
        m = ATTR_KEY.match(str(key))
        if m:
            out[m.group(1)] = value
    return out


def _category(code: Any) -> Category:
    found = Category.objects.filter(active=True, code=code).select_related("parent").first()
    if found is None:
        raise Open311Error(404, f"service_code: unknown service {str(code)[:200]!r}")
    return found


def _iso(value: datetime | None) -> str | None:
    return timezone.localtime(value).isoformat(timespec="seconds") if value else None


def _title(description: str, category: Category) -> str:
    first = next((line.strip() for line in description.splitlines() if line.strip()), "")
    if not first:
        return category.name
    return first if len(first) <= 60 else first[:59] + "…"


# ---------------------------------------------------------------------------- representations
FLAG_LABELS = {f.value: f.label for f in FlagRule.Flag}
DATATYPES = ["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]


def _attribute(
    code: str,
    order: int,
    description: str,
    datatype: str = "singlevaluelist",
    values: list[tuple[str, str]] | None = None,
    variable: bool = True,
    datatype_description: str | None = None,
) -> dict[str, Any]:
    return {
        "variable": variable,
        "code": code,
        "datatype": datatype,
        "required": False,
        "datatype_description": datatype_description,
        "order": order,
        "description": description,
        "values": [{"key": k, "name": n} for k, n in (values or [])],
    }


def service_definition(category: Category) -> dict[str, Any]:
    """The case flags and the priority as lists, the parties as text, the 立案条件 as
    information (``variable: false``)."""
    yes_no = [("true", "是"), ("false", "否")]
    attrs = [
        _attribute(flag, i, label, values=yes_no)
        for i, (flag, label) in enumerate(FLAG_LABELS.items(), start=1)
        if flag in services.FLAGS
    ]
    n = len(attrs)
    attrs.append(_attribute("priority", n + 1, "紧急程度 (priority)", values=PRIORITIES))
    attrs.append(
        _attribute(
            "parties",
            n + 2,
            "当事人 (parties involved)",
            datatype="text",
            datatype_description="one name per line; kept with the case, never published",
        )
    )
    conditions = category.effective_open_conditions
    if conditions:
        attrs.append(
            _attribute(
                "open_conditions",
                n + 3,
                f"立案条件: {conditions}",
                datatype="string",
                variable=False,
            )
        )
    return {"service_code": category.code, "attributes": attrs}


def _masked_text(text: str | None, case: Case) -> str | None:
    """A case's free text (description, a note) as an Open311 answer gives it: the parties
    (the reporter first) are never returned, so their names (张*明), phones and ID numbers typed
    in the text are masked there, and so is any other mobile phone or ID number
    (:func:`gridsvc.cases.textmask.masked_case_text`, with Open311's name mask)."""
    return masked_case_text(text, case.parties, name_mask=mask_name)


def open311_status(case: Case) -> str:
    return "open" if case.status in OPEN311_OPEN else "closed"


class Open311Output(serializers.Serializer):
    """Written only (the representation of a category, a case …)."""

    def create(self, validated_data: Any) -> Any:  # pragma: no cover - never saved
        raise NotImplementedError

    def update(self, instance: Any, validated_data: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


class LocalTimeField(serializers.DateTimeField):
    """ISO 8601 in the server's time zone, to the second (``2025-05-01T08:00:00+08:00``)."""

    def to_representation(self, value: Any) -> str | None:
        return _iso(value)


class Open311ServiceSerializer(Open311Output):
    """A category as an Open311 *service*."""

    service_code = serializers.CharField(source="code")
    service_name = serializers.CharField(source="name")
    description = serializers.SerializerMethodField()
    metadata = serializers.SerializerMethodField()
    type = serializers.SerializerMethodField()
    keywords = serializers.SerializerMethodField()
    group = serializers.SerializerMethodField()

    def get_description(self, category: Category) -> str:
        return category.effective_open_conditions or category.name

    def get_metadata(self, category: Category) -> bool:
        return bool(service_definition(category)["attributes"])

    @extend_schema_field(serializers.ChoiceField(choices=["realtime", "batch", "blackbox"]))
    def get_type(self, category: Category) -> str:
        return "realtime"

    def get_keywords(self, category: Category) -> str:
        kind = Kind(category.kind).label
        keywords = [kind]
        if category.parent_id:
            keywords.append(category.parent.name)
        keywords += [category.name, *category.code.split(".")]
        return ",".join(dict.fromkeys(keywords))

    def get_group(self, category: Category) -> str:
        return str(Kind(category.kind).label)


class Open311AttributeValueSerializer(Open311Output):
    key = serializers.CharField()
    name = serializers.CharField()


class Open311AttributeSerializer(Open311Output):
    variable = serializers.BooleanField()
    code = serializers.CharField()
    datatype = serializers.ChoiceField(choices=DATATYPES)
    required = serializers.BooleanField()
    datatype_description = serializers.CharField(allow_null=True)
    order = serializers.IntegerField()
    description = serializers.CharField()
    values = Open311AttributeValueSerializer(many=True)


class Open311ServiceDefinitionSerializer(Open311Output):
    """What a request of a service may carry (:func:`service_definition`)."""

    service_code = serializers.CharField()
    attributes = Open311AttributeSerializer(many=True)


class Open311ServiceRequestSerializer(Open311Output):
    """A case as an Open311 *service request*. Parties (names, phones, e-mails) are left
    out. Reads the annotations of :func:`with_details`."""

    service_request_id = serializers.CharField(source="number")
    status = serializers.SerializerMethodField()
    status_notes = serializers.SerializerMethodField()
    service_name = serializers.CharField(source="category.name")
    service_code = serializers.CharField(source="category.code")
    description = serializers.SerializerMethodField()
    agency_responsible = serializers.SerializerMethodField()
    service_notice = serializers.CharField(source="get_status_display", allow_null=True)
    requested_datetime = LocalTimeField(source="reported_at")
    updated_datetime = LocalTimeField(source="updated_at")
    expected_datetime = LocalTimeField(source="due_at", allow_null=True)
    address = serializers.SerializerMethodField()
    address_id = serializers.SerializerMethodField()
    zipcode = serializers.SerializerMethodField()
    lat = serializers.SerializerMethodField()
    long = serializers.SerializerMethodField()
    media_url = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ChoiceField(choices=["open", "closed"]))
    def get_status(self, case: Case) -> str:
        return open311_status(case)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_status_notes(self, case: Case) -> str | None:
        if case.status in (Status.RESOLVED, Status.VERIFIED, Status.CLOSED) and case.outcome:
            return _masked_text(case.outcome, case)
        if case.status == Status.REJECTED and case.rejection_reason:
            return _masked_text(case.rejection_reason, case)
        if case.status == Status.MERGED and case.merged_into_id:
            return f"已合并 (merged into another request): {case.merged_into.number}"
        return _masked_text(getattr(case, "latest_note", None) or case.outcome or None, case)

    @extend_schema_field(serializers.CharField(allow_blank=True))
    def get_description(self, case: Case) -> str:
        return _masked_text(case.description or case.title, case) or ""

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_agency_responsible(self, case: Case) -> str | None:
        if case.department_id:
            return case.department.name
        level = LEVEL_BY_NAME.get(case.level)
        return level.label if level else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_address(self, case: Case) -> str | None:
        parts = [
            case.compound.name if case.compound_id else "",
            case.building.name if case.building_id else "",
        ]
        text = " ".join(p for p in parts if p)
        if not text and case.grid_id:
            text = case.grid.name
        return text or None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_address_id(self, case: Case) -> str | None:
        return case.building.code if case.building_id else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_zipcode(self, case: Case) -> None:
        return None

    def get_lat(self, case: Case) -> float:
        return round(case.location.y, 7)

    def get_long(self, case: Case) -> float:
        return round(case.location.x, 7)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_media_url(self, case: Case) -> str | None:
        return getattr(case, "media_url", None) or None


def service_request(case: Case) -> dict[str, Any]:
    """A case as an Open311 service request (:class:`Open311ServiceRequestSerializer`)."""
    return dict(Open311ServiceRequestSerializer(case).data)


def with_details(qs: QuerySet[Case]) -> QuerySet[Case]:
    """What :class:`Open311ServiceRequestSerializer` reads, in one query."""
    events = CaseEvent.objects.filter(case=OuterRef("pk")).order_by("-at", "-id")
    return qs.select_related("building", "compound", "grid", "merged_into").annotate(
        latest_note=Subquery(events.exclude(note="").values("note")[:1]),
        media_url=Subquery(events.filter(kind=MEDIA_EVENT).values("data__media_url")[:1]),
    )


class Open311CreatedSerializer(Open311Output):
    service_request_id = serializers.CharField()
    service_notice = serializers.CharField()
    account_id = serializers.CharField(allow_null=True)


class Open311EndpointSerializer(Open311Output):
    specification = serializers.CharField()
    url = serializers.CharField()
    changeset = serializers.CharField()
    type = serializers.ChoiceField(choices=["production", "test"])
    formats = serializers.ListField(child=serializers.CharField())


class Open311DiscoverySerializer(Open311Output):
    changeset = serializers.CharField()
    contact = serializers.CharField()
    key_service = serializers.CharField()
    endpoints = Open311EndpointSerializer(many=True)


class Open311ErrorSerializer(Open311Output):
    """One error of the spec's list; ``description`` starts with the field at fault."""

    code = serializers.IntegerField()
    description = serializers.CharField()


class Open311ErrorsSerializer(Open311Output):
    """The spec's error body: a list of :class:`Open311ErrorSerializer` (described as the
    array it is by :class:`Open311ErrorsScheme`; spectacular drops ``many`` on errors)."""


class Open311ErrorsScheme(OpenApiSerializerExtension):
    target_class = Open311ErrorsSerializer

    def map_serializer(self, auto_schema, direction):  # type: ignore[no-untyped-def]
        item = auto_schema.resolve_serializer(Open311ErrorSerializer, direction)
        return build_array_type(item.ref)


def _errors(text: str) -> OpenApiResponse:
    return OpenApiResponse(Open311ErrorsSerializer, description=text)


ERRORS = {
    400: _errors("bad input; the description names the field"),
    401: _errors("not signed in (Authorization: Bearer, session, or api_key on POST)"),
    403: _errors("refused"),
    404: _errors("unknown service_code or service request"),
}


# ---------------------------------------------------------------------------- views
def parse(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Parsed input, or a 400 in the spec's format naming each bad field."""
    s = serializer_class(data=_plain(data))
    s.is_valid(raise_exception=True)
    return dict(s.validated_data)


class DiscoveryView(Open311View):
    @extend_schema(
        operation_id="open311_discovery",
        tags=["open311"],
        responses={200: Open311DiscoverySerializer},
    )
    def get(self, request: Request) -> Response:
        """Open311 service discovery: where the GeoReport v2 endpoint is and what it speaks."""
        url = request.build_absolute_uri(f"/{PREFIX}")
        discovery = {
            "changeset": CHANGESET,
            "contact": "the street office's dispatch desk (街道调度台)",
            "key_service": "ask the street office for an account; POST with a JWT as api_key",
            "endpoints": [
                {
                    "specification": SPEC,
                    "url": url,
                    "changeset": CHANGESET,
                    "type": "production",
                    "formats": ["application/json"],
                }
            ],
        }
        return Response(Open311DiscoverySerializer(discovery).data)


class ServiceListView(Open311View):
    @extend_schema(
        operation_id="open311_services",
        tags=["open311"],
        parameters=[JurisdictionParams],
        responses={200: Open311ServiceSerializer(many=True), 400: ERRORS[400]},
    )
    def get(self, request: Request) -> Response:
        """The public catalogue: every category in use is a service."""
        parse(JurisdictionParams, request.query_params)
        cats = Category.objects.filter(active=True).select_related("parent").order_by("code")
        return Response(Open311ServiceSerializer(cats, many=True).data)


class ServiceDefinitionView(Open311View):
    @extend_schema(
        operation_id="open311_service_definition",
        tags=["open311"],
        parameters=[JurisdictionParams],
        responses={200: Open311ServiceDefinitionSerializer, 400: ERRORS[400], 404: ERRORS[404]},
    )
    def get(self, request: Request, service_code: str) -> Response:
        """The attributes a request of this service may carry."""
        parse(JurisdictionParams, request.query_params)
        definition = service_definition(_category(service_code))
        return Response(Open311ServiceDefinitionSerializer(definition).data)


class RequestListView(Open311View):
    permission_classes = [IsAuthenticated]
    parser_classes = [FormParser, MultiPartParser, JSONParser]

    @extend_schema(
        operation_id="open311_requests",
        tags=["open311"],
        parameters=[RequestListParams],
        responses={200: Open311ServiceRequestSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        """Service requests in the caller's territory: newest first, at most 1000."""
        params = parse(RequestListParams, request.query_params)
        qs = case_queryset(request)
        if params.get("service_request_id"):
            qs = qs.filter(number__in=params["service_request_id"])
        else:
            if params.get("service_code"):
                qs = qs.filter(category__code__in=params["service_code"])
            if params["status"] == {"open"}:
                qs = qs.filter(status__in=OPEN311_OPEN)
            elif params["status"] == {"closed"}:
                qs = qs.exclude(status__in=OPEN311_OPEN)
            qs = qs.filter(
                reported_at__gte=params["start_date"], reported_at__lte=params["end_date"]
            )
        rows = with_details(qs.select_related("category", "department"))[:MAX_REQUESTS]
        return Response(Open311ServiceRequestSerializer(rows, many=True).data)

    @extend_schema(
        operation_id="open311_create_request",
        tags=["open311"],
        request={
            "application/x-www-form-urlencoded": ServiceRequestInput,
            "multipart/form-data": ServiceRequestInput,
            "application/json": ServiceRequestInput,
        },
        responses={201: Open311CreatedSerializer(many=True), **ERRORS},
    )
    def post(self, request: Request) -> Response:
        """Report a service request: stored as a case (source ``open311``) and routed at once.
        Give lat/long, or address_id (a building code in your territory)."""
        data = parse(ServiceRequestInput, request.data)
        category = _category(data["service_code"])
        point, building = self._where(request, data)
        description = data.get("description", "")
        address = data.get("address_string", "")
        flags = [code for code in services.FLAGS if data.get(f"attribute[{code}]")]
        priority = int(data.get("attribute[priority]") or 3)
        parties = list(data.get("attribute[parties]", []))
        reporter = self._reporter(data)
        if reporter:
            parties.insert(0, reporter)
        text = description
        if address:
            text = f"{description}\n\n地址 (address_string): {address}".strip()
        media_url = data.get("media_url", "")
        with transaction.atomic():
            report = services.report_case(
                reporter=request.user,
                category=category,
                title=_title(description, category),
                description=text,
                location=point,
                building=building,
                parties=parties,
                priority=priority,
                flags=flags,
                source="open311",
                external_ref=data.get("device_id", ""),
            )
            case = report.case
            if media_url:
                services.record(
                    case,
                    MEDIA_EVENT,
                    request.user,
                    from_status=case.status,
                    data={"media_url": media_url},
                )
        created = {
            "service_request_id": case.number,
            "service_notice": self._notice(case, len(visible_among(request, report.duplicates))),
            "account_id": None,
        }
        return Response(
            Open311CreatedSerializer([created], many=True).data, status=status.HTTP_201_CREATED
        )

    # -- POST helpers
    def _where(self, request: Request, data: Mapping) -> tuple[Any, Building | None]:
        """The point (WGS84) and the building (``address_id``, in the caller's territory)."""
        from django.contrib.gis.geos import Point

        building = None
        address_id = data.get("address_id")
        if address_id:
            building = (
                request_scope(request)
                .filter(Building.objects.all())
                .filter(code=address_id)
                .select_related("compound", "grid")
                .first()
            )
            if building is None:
                raise bad("address_id", "no building with this code in your territory")
        if data.get("lat") is None:
            return None, building
        return Point(data["long"], data["lat"], srid=4326), building

    def _reporter(self, data: Mapping) -> dict | None:
        first = data.get("first_name", "")
        last = data.get("last_name", "")
        phone = data.get("phone", "").strip()
        email = data.get("email", "")
        if not any((first, last, phone, email)):
            return None
        # Chinese names are family name first; Open311 clients send first/last separately.
        name = f"{last}{first}" if _is_cjk(first + last) else f"{first} {last}".strip()
        party: dict[str, str] = {"name": name or "(reporter)", "role": "报告人 (Open311)"}
        if phone:
            party["phone"] = phone
        if email:
            party["email"] = email
        return party

    def _notice(self, case: Case, duplicates: int) -> str:
        level = LEVEL_BY_NAME.get(case.level)
        if case.handler_id and level:
            notice = f"已受理,已派至{level.label}"
        else:
            notice = "已受理,待街道调度台派遣"
        if case.due_at:
            notice += f",处理期限 {_iso(case.due_at)}"
        if duplicates:
            notice += f";附近有 {duplicates} 件同类未结案件"
        return notice


def _is_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


class RequestDetailView(Open311View):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="open311_request",
        tags=["open311"],
        parameters=[JurisdictionParams],
        responses={200: Open311ServiceRequestSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, service_request_id: str) -> Response:
        """One service request (a list of one, as the spec has it), if in your territory."""
        parse(JurisdictionParams, request.query_params)
        number = service_request_id.strip()[:200]
        qs = with_details(case_queryset(request).select_related("category", "department"))
        case = qs.filter(number=number).first()
        if case is None:
            raise Open311Error(404, f"service_request_id: no request {number!r} in your territory")
        return Response(Open311ServiceRequestSerializer([case], many=True).data)


class UnknownView(Open311View):
    """Anything else under /open311/v2/ (e.g. the XML format): a 404 in the spec's format."""

    @extend_schema(exclude=True)
    def get(self, request: Request, rest: str = "") -> Response:
        if rest.endswith(".xml"):
            raise Open311Error(404, "format: this server speaks JSON only (use .json)")
        raise Open311Error(404, f"unknown Open311 resource {rest!r}; see discovery.json")

    @extend_schema(exclude=True)
    def post(self, request: Request, rest: str = "") -> Response:
        return self.get(request, rest)


# ---------------------------------------------------------------------------- routes
root_urlpatterns: list = [
    path(f"{PREFIX}discovery.json", DiscoveryView.as_view(), name="open311-discovery"),
    path(f"{PREFIX}services.json", ServiceListView.as_view(), name="open311-services"),
    path(
        f"{PREFIX}services/<str:service_code>.json",
        ServiceDefinitionView.as_view(),
        name="open311-service",
    ),
    path(f"{PREFIX}requests.json", RequestListView.as_view(), name="open311-requests"),
    path(
        f"{PREFIX}requests/<str:service_request_id>.json",
        RequestDetailView.as_view(),
        name="open311-request",
    ),
    re_path(rf"^{PREFIX}(?P<rest>.*)$", UnknownView.as_view(), name="open311-unknown"),
]

__all__ = ["root_urlpatterns"]
