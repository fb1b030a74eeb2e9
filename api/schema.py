"""The OpenAPI schema is the phone app's contract (issue 16 item 10; docs/sync.md).

Shared components for what the phone endpoints accept and return, and a drf-spectacular
post-processing hook (``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``) that adds to every
``/api/v1/`` operation what the protocol middleware does before any view runs: the request
headers (``Idempotency-Key``, ``X-Device-Time``, ``X-App-Version``) and the error answers with
their machine-readable ``code`` (400, 401, 403, 404, 409, 412, 413, 415, 422, 426, 429, 503).

The serializers here are for the schema only (views build their answers themselves); their
shape is checked against live answers by tests/test_sync_contract.py, the generated client in
tests/test_sync_day.py and schemathesis (tests/test_fuzz_api.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpResponse
from django.utils import translation
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SCHEMA_KWARGS, SpectacularAPIView
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

# ---------------------------------------------------------------- error answers
#: ``code`` values of protocol errors answered before a view runs, and of auth errors.
PROTOCOL_ERROR_CODES = [
    "bad_device_time",
    "bad_app_version",
    "bad_gzip",
    "idempotency_key_invalid",
    "idempotency_in_progress",
    "idempotency_key_reused",
    "body_too_large",
    "unsupported_content_encoding",
    "app_too_old",
    "database_unavailable",
    "token_not_valid",
    "device_revoked",
    "refresh_reused",
    "user_inactive",
    "password_changed",
    "stale_version",
]


class ErrorSerializer(serializers.Serializer):
    """An error: ``detail`` for people, ``code`` for the app (see docs/sync.md, Error codes).
    Some errors add fields (``min_version``, ``max_bytes``, ``allowed``, ``current_version``
    …)."""

    detail = serializers.CharField(required=False, help_text="for people")
    code = serializers.CharField(
        required=False,
        help_text="for the app, e.g. " + ", ".join(PROTOCOL_ERROR_CODES),
    )


class FieldErrorsSerializer(serializers.Serializer):
    """A 400: ``{"<field>": ["message", …]}`` for each wrong field (``non_field_errors`` for
    the whole body); protocol errors (a bad header or body encoding) are ``{"detail",
    "code"}``."""

    code = serializers.CharField(required=False, help_text="when given: the reason, for the app")
    detail = serializers.CharField(required=False)


class StaleCaseSerializer(serializers.Serializer):
    """412 on a case: someone changed it since you read it. Fetch it (its new ``ETag`` is in
    the answer's headers), show the member the server's copy."""

    detail = serializers.CharField()
    current_version = serializers.IntegerField()


class IllegalActionSerializer(serializers.Serializer):
    """409 on a case action the case's state does not allow (``allowed``, ``status``); or
    ``code: idempotency_in_progress`` (the same key is still running)."""

    detail = serializers.CharField()
    allowed = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="actions allowed"
    )
    status = serializers.CharField(required=False, help_text="the case's state")
    code = serializers.CharField(required=False)


# ---------------------------------------------------------------- visits
ITEM_STATUSES = ["accepted", "duplicate", "conflict", "rejected"]
ITEM_CODES = ["invalid", "not_in_territory", "unknown_task", "not_stored", "conflict"]
TASK_LINKS = ["linked", "task_reassigned", "task_closed", "no_task"]
TIME_FLAGS = ["future", "too_old", "before_task_window"]


# What a visit upload is (the request bodies) is defined once, where it is validated:
# api/visits/serializers.py (VisitUploadSerializer, VisitBatchRequestSerializer …).


class ItemResultSerializer(serializers.Serializer):
    """What happened to one uploaded visit. ``status`` says what to do; ``code`` is the
    machine-readable reason of a ``conflict`` or ``rejected`` item; ``errors`` maps the field
    to words for people."""

    index = serializers.IntegerField(help_text="position in the batch (0 for a single visit)")
    client_uuid = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=ITEM_STATUSES)
    id = serializers.IntegerField(allow_null=True, help_text="the stored visit")
    code = serializers.ChoiceField(choices=ITEM_CODES, required=False)
    errors = serializers.DictField(required=False, help_text="field → message(s)")
    far_off = serializers.BooleanField(required=False, allow_null=True)
    distance_m = serializers.FloatField(required=False, allow_null=True)
    closed_tasks = serializers.ListField(child=serializers.IntegerField(), required=False)
    case_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    client_time = serializers.DateTimeField(
        required=False, allow_null=True, help_text="as stored, on the server's clock"
    )
    time_corrected = serializers.BooleanField(required=False)
    time_flag = serializers.ChoiceField(choices=TIME_FLAGS, required=False, allow_null=True)
    task_link = serializers.ChoiceField(choices=TASK_LINKS, required=False, allow_null=True)


class BatchSummarySerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    conflict = serializers.IntegerField()
    rejected = serializers.IntegerField()


class VisitBatchResultSerializer(serializers.Serializer):
    summary = BatchSummarySerializer()
    results = ItemResultSerializer(many=True, help_text="one per item, in order")


class VisitRejectedSerializer(serializers.Serializer):
    """400 for a single visit: ``code`` (as an item's) beside ``{"<field>": [message]}``."""

    code = serializers.CharField(
        required=False, help_text="an item's code: " + ", ".join(ITEM_CODES)
    )


class VisitConflictSerializer(serializers.Serializer):
    """409 for a single visit: the same ``client_uuid`` is stored with other content (or
    ``code: idempotency_in_progress``: the same key is still running)."""

    status = serializers.CharField(required=False, help_text="`conflict`")
    code = serializers.CharField(help_text="`conflict` or `idempotency_in_progress`")
    id = serializers.IntegerField(required=False, allow_null=True, help_text="the stored visit")
    detail = serializers.CharField(required=False)
    client_uuid = serializers.CharField(required=False, help_text="why, for people")


# ---------------------------------------------------------------- daily reports
class StaleReportSerializer(serializers.Serializer):
    """412 on a daily report: the server's copy is in ``current``."""

    code = serializers.CharField(help_text="`stale_version`")
    detail = serializers.CharField()
    current_version = serializers.IntegerField()
    current = serializers.DictField(help_text="the report as the server has it (DailyReport)")


# ---------------------------------------------------------------- offline packages
class OfflinePackageMetaSerializer(serializers.Serializer):
    """An offline package of a grid (离线包): ready when ``etag`` is set; download it from
    ``download`` (Range resumes)."""

    grid = serializers.IntegerField()
    crs = serializers.CharField()
    code = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    stale = serializers.BooleanField()
    build_queued = serializers.BooleanField()
    size = serializers.IntegerField(allow_null=True, help_text="bytes")
    etag = serializers.CharField(allow_null=True)
    built_at = serializers.DateTimeField(allow_null=True)
    build_ms = serializers.IntegerField(allow_null=True)
    zooms = serializers.ListField(child=serializers.IntegerField(), allow_null=True)
    layers = serializers.ListField(child=serializers.CharField())
    tiles = serializers.IntegerField(allow_null=True)
    households = serializers.IntegerField(allow_null=True)
    download = serializers.URLField()
    error = serializers.CharField(allow_null=True)


# ---------------------------------------------------------------- the hook
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_FIELD_ERRORS_REF = {"$ref": "#/components/schemas/FieldErrors"}

_COMMON: dict[str, tuple[str, dict[str, Any]]] = {
    "400": ("invalid input: field → messages, or a protocol error with `code`", _FIELD_ERRORS_REF),
    "401": ("not signed in: `code` token_not_valid, device_revoked, refresh_reused …", _ERROR_REF),
    "403": ("not allowed for this member", _ERROR_REF),
    "404": ("not found in the member's territory", _ERROR_REF),
    "413": ("`code: body_too_large`: the body is too big after inflation", _ERROR_REF),
    "415": ("`code: unsupported_content_encoding`", _ERROR_REF),
    "426": ("`code: app_too_old`, `min_version`: update the app", _ERROR_REF),
    "429": ("too many requests (login attempts)", _ERROR_REF),
    "503": ("`code: database_unavailable`, `Retry-After`: keep the outbox, retry", _ERROR_REF),
}
_UNSAFE: dict[str, tuple[str, dict[str, Any]]] = {
    "409": (
        "`code: idempotency_in_progress` (retry after `Retry-After`), or a conflict",
        _ERROR_REF,
    ),
    "422": ("`code: idempotency_key_reused`: the same key with another request", _ERROR_REF),
}

_HEADERS = [
    {
        "name": "X-Device-Time",
        "in": "header",
        "required": False,
        "description": "the phone's clock now (ISO 8601 with offset, or epoch ms; from "
        "1970-01-01 to 2099-12-31 UTC, else 400 bad_device_time): visit times are corrected "
        "by the offset (docs/sync.md, Clocks)",
        "schema": {"type": "string"},
    },
    {
        "name": "X-App-Version",
        "in": "header",
        "required": False,
        "description": "the app's version (digits and dots); too old → 426 `app_too_old`",
        "schema": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)*([-+][0-9A-Za-z.+-]*)?$"},
    },
]
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "a fresh UUID per logical request, kept across retries: a retry gets the "
    "first answer (`Idempotent-Replayed: true`) (docs/sync.md, Retries)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}


_RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "X-Server-Time": {
        "description": "the server's clock, ISO 8601 UTC with milliseconds",
        "schema": {"type": "string", "format": "date-time"},
    },
    "X-Clock-Offset-Ms": {
        "description": "only when X-Device-Time was sent: the phone's clock minus the "
        "server's, in ms (positive: the phone is fast)",
        "schema": {"type": "integer"},
    },
}
_REPLAYED = {
    "description": "`true` when this is the stored answer to an earlier request with the same "
    "Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]},
}


def _schema_of(serializer: type[serializers.Serializer]) -> dict[str, Any]:
    """A plain JSON schema of a flat serializer (for the components the hook adds)."""
    kinds = {
        serializers.IntegerField: {"type": "integer"},
        serializers.BooleanField: {"type": "boolean"},
        serializers.ListField: {"type": "array", "items": {"type": "string"}},
    }
    props: dict[str, Any] = {}
    for name, field in serializer().fields.items():
        props[name] = dict(kinds.get(type(field), {"type": "string"}))
        if field.help_text:
            props[name]["description"] = str(field.help_text)
    return {
        "type": "object",
        "description": (serializer.__doc__ or "").strip(),
        "properties": props,
    }


def _json_only_when_identical(op: dict) -> None:
    """A body described the same way as JSON, form and multipart is JSON for a client: a
    generated client cannot tell the three apart by type and would send the last one (a
    form). Where multipart differs (files), each stays."""
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" in content and len(content) > 1:
        first = content["application/json"]
        if all(v == first for v in content.values()):
            op["requestBody"]["content"] = {"application/json": first}


def add_protocol_errors(result: dict, generator, request, public) -> dict:  # type: ignore[no-untyped-def]
    """POSTPROCESSING_HOOK: protocol headers and error answers on every ``/api/v1/``
    operation (the middleware in gridsvc/sync/ answers them before any view runs)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", {**_schema_of(ErrorSerializer), "additionalProperties": True})
    field_errors = {**_schema_of(FieldErrorsSerializer), "additionalProperties": True}
    for prop in field_errors["properties"].values():  # a field may be named code or detail
        prop.pop("type", None)
    schemas.setdefault(
        "FieldErrors",
        {  # DRF answers a bare list for a non-field ValidationError("…")
            "description": field_errors.pop("description"),
            "anyOf": [field_errors, {"type": "array", "items": {"type": "string"}}],
        },
    )
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = op.setdefault("parameters", [])
            named = {(p.get("in"), p.get("name", "").lower()) for p in params if "name" in p}
            extra = list(_HEADERS)
            if method != "get":
                extra.append(_IDEMPOTENCY_KEY)
            for header in extra:
                if ("header", header["name"].lower()) not in named:
                    params.append(dict(header))
            _json_only_when_identical(op)
            responses = op.setdefault("responses", {})
            codes = dict(_COMMON)
            if method != "get":
                codes.update(_UNSAFE)
            for code, (text, ref) in codes.items():
                if code not in responses:
                    responses[code] = {
                        "description": text,
                        "content": {"application/json": {"schema": ref}},
                    }
            for code, response in responses.items():
                headers = response.setdefault("headers", {})
                for name, header in _RESPONSE_HEADERS.items():
                    headers.setdefault(name, dict(header))
                if method != "get" and code[:1] in "24":
                    headers.setdefault("Idempotent-Replayed", dict(_REPLAYED))
    return result


def error_response(description: str, serializer: Any = None) -> OpenApiResponse:
    """An error answer for ``@extend_schema(responses=...)``."""
    return OpenApiResponse(response=serializer or ErrorSerializer, description=description)


# ---------------------------------------------------------------- the served schema
def _etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _not_modified(request: Any, etag: str) -> bool:
    """If-None-Match names ``etag``: weak comparison (RFC 9110 13.1.2), since the gzip
    middleware hands a compressed answer's ETag out as ``W/"…"`` and the browser sends it
    back so."""
    header = request.headers.get("If-None-Match", "")
    if header.strip() == "*":
        return True
    return etag in {t.strip().removeprefix("W/") for t in header.split(",")}


def _cached_answer(request: Any, content: bytes, content_type: str, etag: str) -> HttpResponse:
    """``content`` with its ``ETag``, or a 304 when the caller holds it. ``Cache-Control:
    private, no-cache``: a browser keeps it and revalidates at each use."""
    if _not_modified(request, etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(content, content_type=content_type)
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


def _paths_answer(schema: dict[str, Any]) -> tuple[bytes, str]:
    """``{"paths": [...]}``: the sorted path templates of ``schema`` (the generator's output,
    the one the full answer renders), as bytes with their ETag."""
    content = json.dumps({"paths": sorted(schema.get("paths", {}))}, separators=(",", ":"))
    encoded = content.encode()
    return encoded, _etag(encoded)


class CachedSchemaView(SpectacularAPIView):
    """``/api/schema/``: drf-spectacular's view, its answer built once per process for each
    language, version and format. The schema is public (``SERVE_PUBLIC``: the same for every
    caller, tests/test_schema_cache.py) and changes only with the code, so a deploy (new
    processes) is its only invalidation; building it took 0.5–1 s per request. The answer
    carries an ``ETag`` of its bytes and ``Cache-Control: private, no-cache``: a browser that
    holds it revalidates and gets a 304 without the 4–5 MB. Each build also keeps the list of
    its path templates, which ``/api/schema/paths/`` (:class:`SchemaPathsView`) serves."""

    _answers: ClassVar[dict[tuple[str, str | None, str], tuple[bytes, str, str, str]]] = {}
    #: ``/api/schema/paths/``'s answer (bytes, ETag) for each ``version``, kept by each build
    _paths: ClassVar[dict[str | None, tuple[bytes, str]]] = {}

    def _build(self, request: Any) -> Any:
        """drf-spectacular's answer (the schema, not yet rendered); its path templates are
        kept for :class:`SchemaPathsView`."""
        built = super().get(request)
        self._paths[request.GET.get("version")] = _paths_answer(built.data)
        return built

    @extend_schema(**SCHEMA_KWARGS)  # as drf-spectacular's (left out: SERVE_INCLUDE_SCHEMA)
    def get(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        lang = request.GET.get("lang") if settings.USE_I18N else None
        key = (lang or translation.get_language() or "", request.GET.get("version"),
               request.accepted_media_type)  # fmt: skip
        answer = self._answers.get(key)
        if answer is None:
            built = self._build(request)
            built.accepted_renderer = request.accepted_renderer
            built.accepted_media_type = request.accepted_media_type
            built.renderer_context = self.get_renderer_context()
            built.render()
            content = bytes(built.content)
            answer = (content, built["Content-Type"], built["Content-Disposition"], _etag(content))
            self._answers[key] = answer
        content, content_type, disposition, etag = answer
        response = _cached_answer(request, content, content_type, etag)
        if response.status_code == 200:
            response["Content-Disposition"] = disposition
        return response


class SchemaPathsSerializer(serializers.Serializer):
    """The API's path templates, as the keys of the OpenAPI schema's ``paths``."""

    paths = serializers.ListField(
        child=serializers.CharField(), help_text="sorted, e.g. `/api/v1/cases/{id}/`"
    )


class SchemaPathsView(CachedSchemaView):
    """``/api/schema/paths/``: which endpoints exist, without the 4–5 MB of the schema (the
    street office page lights a panel up only when its endpoint is listed). The path templates
    of the same cached build as ``/api/schema/`` (:meth:`CachedSchemaView._build`), never a
    list of its own; public and the same for every caller, like the schema."""

    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request, force=False):  # type: ignore[no-untyped-def]
        return (JSONRenderer(), JSONRenderer.media_type)  # JSON whatever Accept says

    @extend_schema(
        summary="The API's path templates",
        description="The keys of the OpenAPI schema's `paths` (`/api/schema/`), sorted: what "
        "a client needs to know which endpoints exist, without the whole schema. Public, the "
        "same for every caller; `ETag`, a 304 on `If-None-Match`.",
        parameters=[
            OpenApiParameter(
                "If-None-Match", str, OpenApiParameter.HEADER, description="an earlier ETag"
            )
        ],
        responses={
            200: SchemaPathsSerializer,
            304: OpenApiResponse(description="not modified: the ETag named is current"),
        },
        tags=["schema"],
    )
    def get(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        version = request.GET.get("version")
        if version not in self._paths:
            self._build(request)
        content, etag = self._paths[version]
        return _cached_answer(request, content, "application/json", etag)


@receiver(setting_changed)
def _forget_schema(**kwargs: Any) -> None:
    """A test that overrides a setting may change the schema: build it again."""
    CachedSchemaView._answers.clear()
    CachedSchemaView._paths.clear()
