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
The reporter's name, e-mail and phone are stored as a party of the case and never returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.urls import path, re_path
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.parsers import FormParser, JSONParser, MultiPartParser
from gridsvc.accounts.authentication import DeviceJWTAuthentication
from gridsvc.cases import services
from gridsvc.cases.models import OPEN_STATUSES, Case, CaseEvent, Category, FlagRule, Kind, Status
from gridsvc.chain.services import LEVEL_BY_NAME
from gridsvc.errors import DomainError
from gridsvc.territory.models import Building

from .cases import case_queryset, visible_among
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
    return [{"code": code, "description": m} for m in messages]


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


# ---------------------------------------------------------------------------- input helpers
def _text(value: Any, field: str, max_length: int, *, required: bool = False) -> str:
    """A clean string from a form field or JSON value (400 naming the field otherwise)."""
    if value is None or value == "":
        if required:
            raise bad(field, "required")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise bad(field, "must be a string")
    text = str(value).strip()
    if "\x00" in text:
        raise bad(field, "invalid character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad(field, "not valid UTF-8") from None
    if len(text) > max_length:
        raise bad(field, f"at most {max_length} characters")
    if required and not text:
        raise bad(field, "required")
    return text


def _coordinate(value: Any, field: str, limit: float) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise bad(field, "must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad(field, "must be a number (decimal degrees, WGS84)") from None
    if not (-limit <= number <= limit):  # also refuses NaN and infinities
        raise bad(field, f"must be between -{limit:g} and {limit:g}")
    return number


def _flag(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    key = _text(value, field, 10).lower()
    if key in TRUE_KEYS:
        return True
    if key in FALSE_KEYS:
        return False
    raise bad(field, "true or false")


def _attributes(data: Mapping) -> dict[str, Any]:
    """``attribute[code]=value`` form fields, or a JSON ``attribute`` object, or both."""
    out: dict[str, Any] = {}
    nested = data.get("attribute")
    if nested not in (None, ""):
        if not isinstance(nested, Mapping):
            raise bad("attribute", "an object of attribute codes and values")
        out.update({str(k): v for k, v in nested.items()})
    for key in data:
        m = ATTR_KEY.match(str(key))
        if m:
            value = data.getlist(key) if hasattr(data, "getlist") else data[key]
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            out[m.group(1)] = value
    return out


def _category(code: Any) -> Category:
    code = _text(code, "service_code", 200, required=True)
    found = Category.objects.filter(active=True, code=code).select_related("parent").first()
    if found is None:
        raise Open311Error(404, f"service_code: unknown service {code!r}")
    return found


def _when(raw: str | None, field: str, end: bool = False) -> datetime | None:
    """ISO 8601 date-time (a date alone: the start of that day, or the next day for
    ``end_date``); a time without an offset is read in the server's time zone."""
    if not raw:
        return None
    raw = raw.strip()
    if "T" in raw:  # an unencoded "+08:00" arrives as " 08:00"
        raw = raw.replace(" ", "+")
    try:
        value = parse_datetime(raw)
        if value is None:
            day = parse_date(raw)
            if day is None:
                raise ValueError(raw)
            value = datetime.combine(day + timedelta(days=1) if end else day, time())
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        # the default window is computed from it: refuse dates at the ends of the calendar
        if not (value - DEFAULT_SPAN < value < value + DEFAULT_SPAN):
            raise ValueError(raw)
    except (ValueError, OverflowError):
        raise bad(field, "an ISO 8601 date-time, e.g. 2025-05-01T08:00:00+08:00") from None
    return value


def _iso(value: datetime | None) -> str | None:
    return timezone.localtime(value).isoformat(timespec="seconds") if value else None


def _title(description: str, category: Category) -> str:
    first = next((line.strip() for line in description.splitlines() if line.strip()), "")
    if not first:
        return category.name
    return first if len(first) <= 60 else first[:59] + "…"


# ---------------------------------------------------------------------------- representations
FLAG_LABELS = {f.value: f.label for f in FlagRule.Flag}


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


def service(category: Category) -> dict[str, Any]:
    kind = Kind(category.kind).label
    keywords = [kind]
    if category.parent_id:
        keywords.append(category.parent.name)
    keywords += [category.name, *category.code.split(".")]
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.effective_open_conditions or category.name,
        "metadata": bool(service_definition(category)["attributes"]),
        "type": "realtime",
        "keywords": ",".join(dict.fromkeys(keywords)),
        "group": kind,
    }


def open311_status(case: Case) -> str:
    return "open" if case.status in OPEN311_OPEN else "closed"


def _status_notes(case: Case) -> str | None:
    if case.status in (Status.RESOLVED, Status.VERIFIED, Status.CLOSED) and case.outcome:
        return case.outcome
    if case.status == Status.REJECTED and case.rejection_reason:
        return case.rejection_reason
    if case.status == Status.MERGED and case.merged_into_id:
        return f"已合并 (merged into another request): {case.merged_into.number}"
    return getattr(case, "latest_note", None) or case.outcome or None


def _agency(case: Case) -> str | None:
    if case.department_id:
        return case.department.name
    level = LEVEL_BY_NAME.get(case.level)
    return level.label if level else None


def _address(case: Case) -> str | None:
    parts = [
        case.compound.name if case.compound_id else "",
        case.building.name if case.building_id else "",
    ]
    text = " ".join(p for p in parts if p)
    if not text and case.grid_id:
        text = case.grid.name
    return text or None


def service_request(case: Case) -> dict[str, Any]:
    """A case as an Open311 service request. Parties (names, phones, e-mails) are left out."""
    return {
        "service_request_id": case.number,
        "status": open311_status(case),
        "status_notes": _status_notes(case),
        "service_name": case.category.name,
        "service_code": case.category.code,
        "description": case.description or case.title,
        "agency_responsible": _agency(case),
        "service_notice": case.get_status_display(),
        "requested_datetime": _iso(case.reported_at),
        "updated_datetime": _iso(case.updated_at),
        "expected_datetime": _iso(case.due_at),
        "address": _address(case),
        "address_id": case.building.code if case.building_id else None,
        "zipcode": None,
        "lat": round(case.location.y, 7),
        "long": round(case.location.x, 7),
        "media_url": getattr(case, "media_url", None) or None,
    }


def with_details(qs: QuerySet[Case]) -> QuerySet[Case]:
    """What :func:`service_request` reads, in one query."""
    events = CaseEvent.objects.filter(case=OuterRef("pk")).order_by("-at", "-id")
    return qs.select_related("building", "compound", "grid", "merged_into").annotate(
        latest_note=Subquery(events.exclude(note="").values("note")[:1]),
        media_url=Subquery(events.filter(kind=MEDIA_EVENT).values("data__media_url")[:1]),
    )


# ---------------------------------------------------------------------------- schema
_COMPONENTS: dict[str, type[serializers.Serializer]] = {}


def _component(name: str, fields: dict[str, serializers.Field], many: bool = False) -> Any:
    """A named schema component; one class per name (spectacular wants one identity)."""
    if name not in _COMPONENTS:
        _COMPONENTS[name] = type(inline_serializer(name, fields))
    return _COMPONENTS[name](many=many)


# a plain schema: spectacular does not wrap non-2xx serializers in arrays
ERROR_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
        "required": ["code", "description"],
    },
}
ERRORS = {
    code: OpenApiResponse(ERROR_SCHEMA, description=text)
    for code, text in (
        (400, "bad input; the description names the field"),
        (401, "not signed in (Authorization: Bearer, session, or api_key on POST)"),
        (403, "refused"),
        (404, "unknown service_code or service request"),
    )
}
SERVICE_FIELDS = {
    "service_code": serializers.CharField(),
    "service_name": serializers.CharField(),
    "description": serializers.CharField(),
    "metadata": serializers.BooleanField(),
    "type": serializers.ChoiceField(choices=["realtime", "batch", "blackbox"]),
    "keywords": serializers.CharField(),
    "group": serializers.CharField(),
}
ATTRIBUTE_FIELDS = {
    "variable": serializers.BooleanField(),
    "code": serializers.CharField(),
    "datatype": serializers.ChoiceField(
        choices=["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
    ),
    "required": serializers.BooleanField(),
    "datatype_description": serializers.CharField(allow_null=True),
    "order": serializers.IntegerField(),
    "description": serializers.CharField(),
    "values": _component(
        "Open311AttributeValue",
        {"key": serializers.CharField(), "name": serializers.CharField()},
        many=True,
    ),
}
DEFINITION_FIELDS = {
    "service_code": serializers.CharField(),
    "attributes": _component("Open311Attribute", ATTRIBUTE_FIELDS, many=True),
}
REQUEST_FIELDS = {
    "service_request_id": serializers.CharField(),
    "status": serializers.ChoiceField(choices=["open", "closed"]),
    "status_notes": serializers.CharField(allow_null=True),
    "service_name": serializers.CharField(),
    "service_code": serializers.CharField(),
    "description": serializers.CharField(allow_blank=True),
    "agency_responsible": serializers.CharField(allow_null=True),
    "service_notice": serializers.CharField(allow_null=True),
    "requested_datetime": serializers.DateTimeField(),
    "updated_datetime": serializers.DateTimeField(),
    "expected_datetime": serializers.DateTimeField(allow_null=True),
    "address": serializers.CharField(allow_null=True),
    "address_id": serializers.CharField(allow_null=True),
    "zipcode": serializers.CharField(allow_null=True),
    "lat": serializers.FloatField(),
    "long": serializers.FloatField(),
    "media_url": serializers.CharField(allow_null=True),
}
CREATED_FIELDS = {
    "service_request_id": serializers.CharField(),
    "service_notice": serializers.CharField(),
    "account_id": serializers.CharField(allow_null=True),
}
_POST_FIELDS: dict[str, serializers.Field] = {
    "service_code": serializers.CharField(help_text="a category code (see services.json)"),
    "lat": serializers.FloatField(required=False, help_text="WGS84 latitude"),
    "long": serializers.FloatField(required=False, help_text="WGS84 longitude"),
    "address_string": serializers.CharField(required=False, help_text="kept in the description"),
    "address_id": serializers.CharField(required=False, help_text="a building code"),
    "description": serializers.CharField(required=False, max_length=MAX_DESCRIPTION),
    "media_url": serializers.URLField(required=False),
    "email": serializers.EmailField(required=False, help_text="stored as a party, never shown"),
    "first_name": serializers.CharField(required=False),
    "last_name": serializers.CharField(required=False),
    "phone": serializers.CharField(required=False),
    "device_id": serializers.CharField(required=False),
    "account_id": serializers.CharField(required=False),
    "jurisdiction_id": serializers.CharField(required=False, help_text="accepted, not needed"),
    "api_key": serializers.CharField(required=False, help_text="a JWT access token"),
}
for _code in (*services.FLAGS, "priority", "parties"):
    _POST_FIELDS[f"attribute[{_code}]"] = serializers.CharField(required=False)
POST_BODY = _component("Open311RequestBody", _POST_FIELDS)


def _q(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, str, OpenApiParameter.QUERY, description=description)


JURISDICTION = _q("jurisdiction_id", "accepted and ignored (one jurisdiction per server)")


# ---------------------------------------------------------------------------- views
class DiscoveryView(Open311View):
    @extend_schema(
        operation_id="open311_discovery",
        tags=["open311"],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        """Open311 service discovery: where the GeoReport v2 endpoint is and what it speaks."""
        url = request.build_absolute_uri(f"/{PREFIX}")
        return Response(
            {
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
        )


class ServiceListView(Open311View):
    @extend_schema(
        operation_id="open311_services",
        tags=["open311"],
        parameters=[JURISDICTION],
        responses={200: _component("Open311Service", SERVICE_FIELDS, many=True), 400: ERRORS[400]},
    )
    def get(self, request: Request) -> Response:
        """The public catalogue: every category in use is a service."""
        cats = Category.objects.filter(active=True).select_related("parent").order_by("code")
        return Response([service(c) for c in cats])


class ServiceDefinitionView(Open311View):
    @extend_schema(
        operation_id="open311_service_definition",
        tags=["open311"],
        parameters=[JURISDICTION],
        responses={
            200: _component("Open311ServiceDefinition", DEFINITION_FIELDS),
            400: ERRORS[400],
            404: ERRORS[404],
        },
    )
    def get(self, request: Request, service_code: str) -> Response:
        """The attributes a request of this service may carry."""
        return Response(service_definition(_category(service_code)))


class RequestListView(Open311View):
    permission_classes = [IsAuthenticated]
    parser_classes = [FormParser, MultiPartParser, JSONParser]

    @extend_schema(
        operation_id="open311_requests",
        tags=["open311"],
        parameters=[
            JURISDICTION,
            _q("service_request_id", "case numbers, comma-separated (overrides the rest)"),
            _q("service_code", "category codes, comma-separated"),
            _q("start_date", "ISO 8601; default: 90 days before end_date"),
            _q("end_date", "ISO 8601; default: now (or 90 days after start_date)"),
            _q("status", "open, closed or open,closed"),
        ],
        responses={200: _component("Open311ServiceRequest", REQUEST_FIELDS, many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        """Service requests in the caller's territory: newest first, at most 1000."""
        params = request.query_params
        qs = case_queryset(request)
        ids = [i.strip() for i in params.get("service_request_id", "").split(",") if i.strip()]
        if ids:
            if len(ids) > MAX_REQUESTS:
                raise bad("service_request_id", f"at most {MAX_REQUESTS} ids")
            qs = qs.filter(number__in=ids)
        else:
            qs = self._filter(qs, params)
        rows = with_details(qs.select_related("category", "department"))[:MAX_REQUESTS]
        return Response([service_request(c) for c in rows])

    def _filter(self, qs: QuerySet[Case], params: Mapping) -> QuerySet[Case]:
        codes = [c.strip() for c in params.get("service_code", "").split(",") if c.strip()]
        if codes:
            qs = qs.filter(category__code__in=codes)
        wanted = {s.strip() for s in params.get("status", "").split(",") if s.strip()}
        if wanted - {"open", "closed"}:
            raise bad("status", "open, closed or open,closed")
        if wanted == {"open"}:
            qs = qs.filter(status__in=OPEN311_OPEN)
        elif wanted == {"closed"}:
            qs = qs.exclude(status__in=OPEN311_OPEN)
        start = _when(params.get("start_date"), "start_date")
        end = _when(params.get("end_date"), "end_date", end=True)
        if start is None and end is None:
            end = timezone.now()
        if start is None:
            start = end - DEFAULT_SPAN  # type: ignore[operator]
        if end is None:
            end = start + DEFAULT_SPAN
        if end < start:
            raise bad("end_date", "must not be before start_date")
        return qs.filter(reported_at__gte=start, reported_at__lte=end)

    @extend_schema(
        operation_id="open311_create_request",
        tags=["open311"],
        request={
            "application/x-www-form-urlencoded": POST_BODY,
            "multipart/form-data": POST_BODY,
            "application/json": POST_BODY,
        },
        responses={201: _component("Open311Created", CREATED_FIELDS, many=True), **ERRORS},
    )
    def post(self, request: Request) -> Response:
        """Report a service request: stored as a case (source ``open311``) and routed at once.
        Give lat/long, or address_id (a building code in your territory)."""
        data = request.data
        if not isinstance(data, Mapping):
            raise bad("body", "form fields or a JSON object")
        category = _category(data.get("service_code"))
        point, building = self._where(request, data)
        description = _text(data.get("description"), "description", MAX_DESCRIPTION)
        address = _text(data.get("address_string"), "address_string", 200)
        media_url = self._media_url(data.get("media_url"))
        _text(data.get("jurisdiction_id"), "jurisdiction_id", 64)
        device = _text(data.get("device_id"), "device_id", 64)
        flags, priority, parties = self._attributes(data)
        reporter = self._reporter(data)
        if reporter:
            parties.insert(0, reporter)
        text = description
        if address:
            text = f"{description}\n\n地址 (address_string): {address}".strip()
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
                external_ref=device,
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
        return Response(
            [
                {
                    "service_request_id": case.number,
                    "service_notice": self._notice(
                        case, len(visible_among(request, report.duplicates))
                    ),
                    "account_id": None,
                }
            ],
            status=status.HTTP_201_CREATED,
        )

    # -- POST helpers
    def _where(self, request: Request, data: Mapping) -> tuple[Any, Building | None]:
        from django.contrib.gis.geos import Point

        lat_raw, long_raw = data.get("lat"), data.get("long")
        building = None
        address_id = _text(data.get("address_id"), "address_id", 32)
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
        if lat_raw in (None, "") and long_raw in (None, ""):
            if building is None:
                raise bad("lat", "lat and long are required (or address_id, a building code)")
            return None, building
        if lat_raw in (None, ""):
            raise bad("lat", "required with long")
        if long_raw in (None, ""):
            raise bad("long", "required with lat")
        lat = _coordinate(lat_raw, "lat", 90)
        lon = _coordinate(long_raw, "long", 180)
        crs = data.get("crs")  # not in GeoReport v2 (WGS84); a phone on Amap may send gcj02
        if crs not in (None, ""):
            from geo.crs import UnsupportedCRS, to_wgs84

            try:
                lon, lat = to_wgs84(lon, lat, str(crs))
            except UnsupportedCRS as exc:
                raise bad("crs", str(exc)) from None
        return Point(lon, lat, srid=4326), building

    def _media_url(self, raw: Any) -> str:
        url = _text(raw, "media_url", 1000)
        if url:
            try:
                URLValidator(schemes=["http", "https"])(url)
            except DjangoValidationError:
                raise bad("media_url", "an http(s) URL") from None
        return url

    def _attributes(self, data: Mapping) -> tuple[list[str], int, list[dict]]:
        flags: list[str] = []
        priority = 3
        parties: list[dict] = []
        for code, value in _attributes(data).items():
            field = f"attribute[{code}]"
            if code in services.FLAGS:
                if _flag(value, field):
                    flags.append(code)
            elif code == "priority":
                key = _text(value, field, 2)
                if key and key not in dict(PRIORITIES):
                    raise bad(field, "one of 1, 2, 3, 4")
                priority = int(key or 3)
            elif code == "parties":
                lines = [n.strip() for n in _text(value, field, 1000).splitlines() if n.strip()]
                if len(lines) > 20 or any(len(n) > 50 for n in lines):
                    raise bad(field, "at most 20 names of at most 50 characters")
                parties += [{"name": n, "role": "当事人"} for n in lines]
            else:
                raise bad(field, "unknown attribute (see the service definition)")
        return flags, priority, parties

    def _reporter(self, data: Mapping) -> dict | None:
        first = _text(data.get("first_name"), "first_name", 50)
        last = _text(data.get("last_name"), "last_name", 50)
        phone = _text(data.get("phone"), "phone", 20)
        email = _text(data.get("email"), "email", 254)
        if phone and not re.fullmatch(r"[0-9+\-() ]{3,20}", phone):
            raise bad("phone", "digits, spaces and + - ( ) only")
        if email:
            try:
                EmailValidator()(email)
            except DjangoValidationError:
                raise bad("email", "not an e-mail address") from None
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
        parameters=[JURISDICTION],
        responses={200: _component("Open311ServiceRequest", REQUEST_FIELDS, many=True), **ERRORS},
    )
    def get(self, request: Request, service_request_id: str) -> Response:
        """One service request (a list of one, as the spec has it), if in your territory."""
        number = _text(service_request_id, "service_request_id", 200)
        qs = with_details(case_queryset(request).select_related("category", "department"))
        case = qs.filter(number=number).first()
        if case is None:
            raise Open311Error(404, f"service_request_id: no request {number!r} in your territory")
        return Response([service_request(case)])


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
