"""What a visit upload is (走访记录上传): one DRF definition for validation and the OpenAPI schema.

:class:`VisitUploadSerializer` validates one item — alone (``POST /api/v1/visits/``) or in a
batch (``POST /api/v1/visits/batch/``, :class:`VisitBatchRequestSerializer`) — and turns it into
a :class:`gridsvc.visits.ingest.VisitInput`; :func:`validate_items` runs it over a batch, item by
item, so a bad item becomes a ``rejected`` result (``code: invalid``, ``errors`` naming the
field) and never fails the others. The fields are strict where the content hash needs it (texts
are kept as sent, numbers are never booleans) and lenient where phones differ (ids as numbers or
digit strings, ``""`` for "not given", lists as JSON text in multipart forms, CRS aliases such as
``EPSG:4326`` or ``gcj-02``). What the territory, tasks and idempotency say is judged later, in
:func:`gridsvc.visits.ingest.record_visits`.
"""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField, empty
from rest_framework.serializers import as_serializer_error

from api.fields import from_1970  # the phones' rule, also of api.community's client_time
from geo.crs import SUPPORTED_CRS, UnsupportedCRS, normalize_crs
from gridsvc.visits.ingest import (
    MAX_BATCH,
    MAX_FINDINGS,
    MAX_PHOTO_BYTES,
    MAX_PHOTOS,
    ItemError,
    ItemResult,
    PhotoInput,
    VisitInput,
    convert_to_wgs84,
    has_nul,
    maybe_json,
    parse_photo,
)
from gridsvc.visits.sync import FEED_LIMIT

BIGINT_MAX = 2**63 - 1
MB = 1024 * 1024


def _blank(data: Any) -> bool:
    return data is None or data == ""


class _Optional:
    """Mixin: ``None`` and ``""`` mean "not given" (``None``), as the phone app sends them."""

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is not empty and _blank(data):
            if self.required:  # type: ignore[attr-defined]
                self.fail("required")  # type: ignore[attr-defined]
            return True, None
        return super().validate_empty_values(data)  # type: ignore[misc]


class IdField(_Optional, serializers.IntegerField):
    """A row id: an integer or a string of digits, never a boolean."""

    default_error_messages = {"invalid": "must be an integer id"}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", -BIGINT_MAX)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return super().to_internal_value(data)

    def run_validation(self, data: Any = empty) -> int | None:
        if type(data) is int:  # the common case, without DRF's generic path
            if not -BIGINT_MAX <= data <= BIGINT_MAX:
                raise serializers.ValidationError("out of range")
            return data
        return super().run_validation(data)


class NumberField(_Optional, serializers.FloatField):
    """A finite number in [min_value, max_value]; booleans and NaN are refused."""

    default_error_messages = {"invalid": "must be a number"}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        try:
            value = float(data)
        except (TypeError, ValueError):
            self.fail("invalid")
        if not math.isfinite(value) or not (self.min_value <= value <= self.max_value):
            raise serializers.ValidationError(
                f"must be between {self.min_value:g} and {self.max_value:g}"
            )
        return value

    def run_validators(self, value: Any) -> None:  # the range is checked above
        return None

    def run_validation(self, data: Any = empty) -> float | None:
        if data is empty or _blank(data):
            return super().run_validation(data)
        return self.to_internal_value(data)


class TextField(serializers.CharField):
    """Text kept exactly as sent (no trimming: it is part of the content hash); ``None`` → ``""``;
    only strings (a number is not silently turned into text)."""

    default_error_messages = {"invalid": "must be a string"}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None:
            return True, ""
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return data

    def run_validation(self, data: Any = empty) -> str:
        if data is empty:
            return super().run_validation(data)
        if data is None:
            return ""
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            raise serializers.ValidationError(f"at most {self.max_length} characters")
        if "\x00" in data:  # PostgreSQL refuses it
            raise serializers.ValidationError("must not contain the NUL character (\\u0000)")
        return data


class ClientUUIDField(serializers.UUIDField):
    default_error_messages = {
        "invalid": "a UUID is required",
        "required": "a UUID is required",
        "null": "a UUID is required",
    }

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if not isinstance(data, str | uuid.UUID):
            self.fail("invalid")
        try:
            return data if isinstance(data, uuid.UUID) else uuid.UUID(data)
        except ValueError:
            self.fail("invalid")
        raise AssertionError  # unreachable (fail raises)

    def run_validation(self, data: Any = empty) -> uuid.UUID:
        if isinstance(data, str):
            return self.to_internal_value(data)
        return super().run_validation(data)


class ClientTimeField(serializers.DateTimeField):
    """ISO 8601 on the phone's clock; without an offset it is read in the server's time zone.
    Kept as sent (not converted): the content hash is taken over it."""

    default_error_messages = {
        "invalid": "an ISO 8601 date-time is required",
        "required": "an ISO 8601 date-time is required",
        "null": "an ISO 8601 date-time is required",
    }

    def enforce_timezone(self, value):  # type: ignore[no-untyped-def]
        return timezone.make_aware(value) if timezone.is_naive(value) else value

    def to_internal_value(self, value):  # type: ignore[no-untyped-def]
        if not isinstance(value, str):
            self.fail("invalid")
        parsed = super().to_internal_value(value)
        from_1970(parsed)
        return parsed


class CrsField(serializers.ChoiceField):
    """The coordinate system of ``lon``/``lat``: one of the choices or an alias
    (``EPSG:4326``, ``gcj-02``, ``bd09ll`` …, :func:`geo.crs.normalize_crs`); blank = wgs84."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=list(SUPPORTED_CRS), **kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is empty or _blank(data):
            return True, "wgs84"
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> str:
        try:
            return normalize_crs(str(data))
        except UnsupportedCRS:
            raise serializers.ValidationError(f"one of {', '.join(SUPPORTED_CRS)}") from None

    def run_validation(self, data: Any = empty) -> str:
        if data is empty or _blank(data):
            return "wgs84"
        return self.to_internal_value(data)


class RuleField(serializers.CharField):
    """A visit rule by id (a number or digit string) or by code; the code is resolved with the
    rest of the batch (one query)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is not empty and _blank(data):
            return True, None
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, str) and not data.isdigit():
            if len(data) > 48:
                raise serializers.ValidationError("unknown rule")
            return data
        return IdField().to_internal_value(data)

    def run_validators(self, value: Any) -> None:
        return None


def _json_text(data: Any, what: str) -> Any:
    """Multipart forms carry lists as JSON text (same limits as a JSON body)."""
    try:
        return maybe_json(data)
    except ItemError as exc:
        raise serializers.ValidationError(next(iter(exc.errors.values()))) from None


class FindingSerializer(serializers.Serializer):
    """A finding of the visit; with ``open_case`` a case (上报) is opened for it, and its
    ``category`` must then be a case category code (``/api/v1/categories/``)."""

    category = serializers.CharField(max_length=64, help_text="a case category code to open a case")
    description = TextField(max_length=2000)
    open_case = serializers.BooleanField(
        required=False, default=False, help_text="report a case for this finding"
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError("must be an object")
        category = data.get("category")
        if not isinstance(category, str) or not category.strip() or len(category) > 64:
            raise serializers.ValidationError("category is required (≤ 64 characters)")
        desc = data.get("description", "")
        if desc is None:
            desc = ""
        if not isinstance(desc, str) or len(desc) > 2000:
            raise serializers.ValidationError("description must be text ≤ 2000")
        open_case = data.get("open_case", False)
        if not isinstance(open_case, bool):
            raise serializers.ValidationError("open_case must be true or false")
        return {"category": category.strip(), "description": desc, "open_case": open_case}


class FindingsField(serializers.ListField):
    """``[{category, description, open_case}]`` (≤ 20); JSON text in a multipart form."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", FindingSerializer())
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", MAX_FINDINGS)
        kwargs.setdefault("help_text", f"at most {MAX_FINDINGS}")
        super().__init__(**kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is not empty and _blank(data):
            return True, []
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        data = _json_text(data, "findings")
        if not isinstance(data, list):
            raise serializers.ValidationError(
                "must be a list of {category, description, open_case}"
            )
        if len(data) > MAX_FINDINGS:
            raise serializers.ValidationError(f"at most {MAX_FINDINGS} findings")
        out = []
        for i, f in enumerate(data):
            try:
                out.append(self.child.to_internal_value(f))
            except serializers.ValidationError as exc:
                raise serializers.ValidationError(f"item {i}: {_first(exc.detail)}") from None
        return out

    def run_validators(self, value: Any) -> None:
        return None


class MemberIdsField(serializers.ListField):
    """Member ids of a joint visit (联合走访); JSON text (or repeated fields) in a form."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", IdField())
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "member ids")
        super().__init__(**kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is not empty and _blank(data):
            return True, []
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> list[int]:
        data = _json_text(data, "participant_members")
        if not isinstance(data, list):
            raise serializers.ValidationError("must be a list of member ids")
        ids = set()
        for m in data:
            ids.add(0 if _blank(m) else self.child.to_internal_value(m))
        return sorted(ids)

    def run_validators(self, value: Any) -> None:
        return None


class VisitPhotoUploadSerializer(serializers.Serializer):
    data = serializers.CharField(help_text="the JPEG or PNG, base64 (≤ 5 MB decoded)")


def _decode_photo(p: Any) -> PhotoInput:
    encoded = p.get("data") if isinstance(p, Mapping) else p
    if not isinstance(encoded, str):
        raise ItemError({"photos": "each photo needs base64 'data'"})
    if "," in encoded[:64] and encoded.startswith("data:"):
        encoded = encoded.split(",", 1)[1]
    if len(encoded) > MAX_PHOTO_BYTES * 4 // 3 + 8:
        raise ItemError({"photos": f"a photo is at most {MAX_PHOTO_BYTES // MB} MB"})
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ItemError({"photos": "photo data is not valid base64"}) from None
    return parse_photo(data)


class PhotosField(serializers.ListField):
    """``[{data: base64}]`` (≤ 10; JPEG/PNG by magic bytes, ≤ 5 MB each; EXIF GPS read)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", VisitPhotoUploadSerializer())
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", MAX_PHOTOS)
        kwargs.setdefault("help_text", f"at most {MAX_PHOTOS}")
        super().__init__(**kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is not empty and _blank(data):
            return True, []
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> list[PhotoInput]:
        data = _json_text(data, "photos")
        if not isinstance(data, list):
            raise serializers.ValidationError("must be a list of {data: base64}")
        try:
            return [_decode_photo(p) for p in data]
        except ItemError as exc:
            raise serializers.ValidationError(exc.errors["photos"]) from None

    def run_validators(self, value: Any) -> None:
        return None


class VisitUploadSerializer(serializers.Serializer):
    """One visit as the phone records it (走访记录), in a batch or alone. ``client_uuid`` is
    its idempotency key; the server fills in the member (the caller)."""

    client_uuid = ClientUUIDField(help_text="made on the phone when the visit is made")
    household = IdField(
        error_messages={"required": "this field is required", "null": "this field is required"}
    )
    client_time = ClientTimeField(
        help_text="the phone's clock when the visit was made (corrected by X-Device-Time)"
    )
    resident = IdField(required=False, allow_null=True)
    task = IdField(required=False, allow_null=True, help_text="the visit task (走访任务) it closes")
    rule = RuleField(help_text="a visit rule's id or code")
    lon = NumberField(required=False, allow_null=True, min_value=-180, max_value=180)
    lat = NumberField(required=False, allow_null=True, min_value=-90, max_value=90)
    crs = CrsField(
        required=False,
        default="wgs84",
        help_text="of lon/lat (EPSG:4326, gcj-02 … are accepted too)",
    )
    accuracy_m = NumberField(required=False, allow_null=True, min_value=0, max_value=100_000)
    purpose = TextField(max_length=200)
    notes = TextField(max_length=5000)
    findings = FindingsField()
    participant_members = MemberIdsField()
    participants_text = TextField(max_length=300)
    photos = PhotosField()

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """Each declared field validates its value (DRF's loop, without its generic
        per-field overhead: a batch has 500 items); unknown fields are refused."""
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {"non_field_errors": ["each visit must be a JSON object"]}
            )
        plan = self.__dict__.get("_plan")
        if plan is None:
            plan = self.__dict__["_plan"] = [
                (name, f) for name, f in self.fields.items() if not f.read_only
            ]
            self.__dict__["_names"] = frozenset(name for name, _f in plan)
        if not data.keys() <= self.__dict__["_names"]:
            unknown = sorted(set(data) - self.__dict__["_names"])[0]
            raise serializers.ValidationError({unknown: ["unknown field"]})
        ret: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for name, f in plan:
            value = data.get(name, empty)
            if value is empty and not f.required:
                continue
            try:
                ret[name] = f.run_validation(value)
            except serializers.ValidationError as exc:
                errors[name] = exc.detail
            except SkipField:
                pass
        if errors:
            raise serializers.ValidationError(errors)
        return ret

    def run_validation(self, data: Any = empty) -> VisitInput:  # type: ignore[override]
        value = self.to_internal_value(data)
        try:
            return self.validate(value)
        except (serializers.ValidationError, DjangoValidationError) as exc:
            raise serializers.ValidationError(detail=as_serializer_error(exc)) from None

    def validate(self, attrs: dict[str, Any]) -> VisitInput:  # type: ignore[override]
        lon, lat = attrs.get("lon"), attrs.get("lat")
        if (lat is None) != (lon is None):
            raise serializers.ValidationError(
                {"lat" if lat is None else "lon": "give both lat and lon, or neither"}
            )
        photos = list(attrs.get("photos") or [])
        files = self.context.get("files") or []
        for f in files:
            if f.size > MAX_PHOTO_BYTES:
                raise serializers.ValidationError(
                    {"photos": f"a photo is at most {MAX_PHOTO_BYTES // MB} MB"}
                )
            try:
                photos.append(parse_photo(f.read()))
            except ItemError as exc:
                raise serializers.ValidationError(exc.errors) from None
        if len(photos) > MAX_PHOTOS:
            raise serializers.ValidationError({"photos": f"at most {MAX_PHOTOS} photos"})
        rule = attrs.get("rule")
        item = VisitInput(
            index=0,
            client_uuid=attrs["client_uuid"],
            household=attrs["household"],
            client_time=attrs["client_time"],
            resident=attrs.get("resident"),
            task=attrs.get("task"),
            rule=rule if isinstance(rule, int) else None,
            rule_code=rule if isinstance(rule, str) else "",
            lon=lon,
            lat=lat,
            crs=attrs.get("crs") or "wgs84",
            accuracy_m=attrs.get("accuracy_m"),
            purpose=attrs.get("purpose", ""),
            notes=attrs.get("notes", ""),
            findings=attrs.get("findings") or [],
            participant_members=attrs.get("participant_members") or [],
            participants_text=attrs.get("participants_text", ""),
            photos=photos,
        )
        if lon is not None:
            try:
                item.wgs84 = convert_to_wgs84(lon, lat, item.crs)  # type: ignore[arg-type]
            except ItemError as exc:
                raise serializers.ValidationError(exc.errors) from None
            item.location_source = "gps"
        else:
            exif = next((p.exif_point for p in photos if p.exif_point), None)
            if exif:
                item.wgs84, item.location_source = exif, "photo_exif"
        return item


class JsonTextField(serializers.CharField):
    """A list sent as JSON text in a multipart form, validated as ``inner`` validates it."""

    def __init__(self, inner: serializers.Field, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)
        self.inner = inner

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        return self.inner.validate_empty_values(data)

    def to_internal_value(self, data: Any) -> Any:
        return self.inner.to_internal_value(data)

    def run_validators(self, value: Any) -> None:
        return None


class VisitUploadMultipartSerializer(VisitUploadSerializer):
    """One visit as a multipart form: the fields of ``VisitUpload`` (``findings`` and
    ``participant_members`` as JSON text) and ``photos`` files."""

    findings = JsonTextField(FindingsField(), help_text="JSON list of findings")
    participant_members = JsonTextField(
        MemberIdsField(), help_text="JSON list of member ids (or the field repeated)"
    )
    photos = serializers.ListField(
        child=serializers.FileField(), required=False, help_text=f"at most {MAX_PHOTOS} files"
    )


class VisitsListField(serializers.ListField):
    """The batch's items: a list of at most :data:`MAX_BATCH`; each item is validated on its
    own (:func:`validate_items`), so one bad item never fails the batch."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", VisitUploadSerializer())
        kwargs.setdefault("max_length", MAX_BATCH)
        kwargs.setdefault("help_text", f"at most {MAX_BATCH}")
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        return data

    def run_validators(self, value: Any) -> None:
        if len(value) > MAX_BATCH:
            raise serializers.ValidationError(f"at most {MAX_BATCH} visits per batch")


class VisitBatchRequestSerializer(serializers.Serializer):
    """An offline upload (离线批量上传): ``{"visits": [ … up to 500 … ]}``."""

    visits = VisitsListField(
        error_messages={
            "required": "a list of visits is required",
            "null": "a list of visits is required",
            "not_a_list": "a list of visits is required",
        }
    )


# ---------------------------------------------------------------- query parameters
MAX_CLIENT_UUIDS = 500
MAX_COVERAGE_DAYS = 732


class QueryDateField(serializers.DateField):
    """A day, ``YYYY-MM-DD``."""

    default_error_messages = {
        "invalid": "must be a date YYYY-MM-DD",
        "required": "this parameter is required (YYYY-MM-DD)",
        "null": "this parameter is required (YYYY-MM-DD)",
    }

    def to_internal_value(self, value: Any) -> date:
        if value == "" and self.required:
            self.fail("required")
        return super().to_internal_value(value)


@extend_schema_field(OpenApiTypes.STR)  # the phone's contract: one comma-separated string
class UUIDListField(serializers.ListField):
    """One or more UUIDs, comma-separated and/or the parameter repeated (at most
    :data:`MAX_CLIENT_UUIDS`)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", serializers.UUIDField())
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[uuid.UUID]:
        values = data if isinstance(data, list) else [data]
        raw = [part.strip() for v in values if isinstance(v, str) for part in v.split(",")]
        raw = [part for part in raw if part]
        if not raw:
            raise serializers.ValidationError("one or more UUIDs, comma-separated")
        if len(raw) > MAX_CLIENT_UUIDS:
            raise serializers.ValidationError(f"at most {MAX_CLIENT_UUIDS} UUIDs")
        try:
            return [uuid.UUID(part) for part in raw]
        except ValueError:
            raise serializers.ValidationError("one or more UUIDs, comma-separated") from None

    def run_validators(self, value: Any) -> None:
        return None


class QuerySerializer(serializers.Serializer):
    """Query parameters (an empty one is as if not given); :meth:`read` → validated values or
    a 400 naming the parameter."""

    @classmethod
    def read(cls, params: Any) -> dict[str, Any]:
        s = cls(data=params)
        s.is_valid(raise_exception=True)
        return dict(s.validated_data)


class VisitListQuerySerializer(QuerySerializer):
    vars()["from"] = QueryDateField(required=False, help_text="visits made on or after this day")
    to = QueryDateField(required=False, help_text="visits made on or before this day")
    client_uuid = UUIDListField(
        required=False,
        help_text="one or more visit client UUIDs, comma-separated or repeated (at most "
        f"{MAX_CLIENT_UUIDS}): the visits with these UUIDs in my scope",
    )


class TaskListQuerySerializer(QuerySerializer):
    mine = serializers.BooleanField(required=False, help_text="only the tasks assigned to me")
    due_from = QueryDateField(required=False)
    due_to = QueryDateField(required=False)


class RouteQuerySerializer(QuerySerializer):
    date = QueryDateField(required=False, help_text="default: today")
    start_lon = NumberField(required=False, min_value=-180, max_value=180)
    start_lat = NumberField(required=False, min_value=-90, max_value=90)
    crs = CrsField(
        required=False,
        default="wgs84",
        help_text="coordinates of start_lon/start_lat and of the answer",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        lon, lat = attrs.get("start_lon"), attrs.get("start_lat")
        if (lon is None) != (lat is None):
            raise serializers.ValidationError(
                {"start_lat" if lat is None else "start_lon": "give start_lon and start_lat"}
            )
        return attrs


class CoverageQuerySerializer(QuerySerializer):
    vars()["from"] = QueryDateField(help_text="tasks due on or after this day")
    to = QueryDateField(help_text=f"tasks due on or before this day (≤ {MAX_COVERAGE_DAYS} days)")
    group = serializers.ChoiceField(choices=["grid", "member"], required=False, default="grid")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["to"] < attrs["from"]:
            raise serializers.ValidationError({"to": "must not be before 'from'"})
        if (attrs["to"] - attrs["from"]).days > MAX_COVERAGE_DAYS:
            raise serializers.ValidationError({"to": f"a span of at most {MAX_COVERAGE_DAYS} days"})
        return attrs


class DayQuerySerializer(QuerySerializer):
    date = QueryDateField(required=False, help_text="default: today")


class FeedQuerySerializer(QuerySerializer):
    since = serializers.CharField(required=False, help_text="the last cursor")
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=FEED_LIMIT,
        help_text=f"rows per stream, 1–{FEED_LIMIT}",
        error_messages={
            "invalid": "must be an integer",
            "min_value": f"between 1 and {FEED_LIMIT}",
            "max_value": f"between 1 and {FEED_LIMIT}",
        },
    )


class EstimateQuerySerializer(QuerySerializer):
    member = IdField(required=False, allow_null=True, help_text="default: me")


def _first(detail: Any) -> str:
    """The first message of a DRF error detail (list, dict or string)."""
    while isinstance(detail, list | dict):
        if not detail:
            return "invalid"
        detail = detail[0] if isinstance(detail, list) else next(iter(detail.values()))
    return str(detail)


def item_errors(detail: Any) -> dict[str, str]:
    """A DRF error detail as an item's ``errors``: field → one message."""
    if isinstance(detail, dict):
        return {str(k): _first(v) for k, v in detail.items()}
    return {"non_field_errors": _first(detail)}


def validate_items(
    raw_items: list[Any],
    serializer: VisitUploadSerializer | None = None,
) -> list[VisitInput | ItemResult]:
    """Each raw item as a :class:`VisitInput`, or a ``rejected`` :class:`ItemResult`
    (``code: invalid``, ``errors`` field → message) — in order, one per item."""
    serializer = serializer or VisitUploadSerializer()
    out: list[VisitInput | ItemResult] = []
    for i, raw in enumerate(raw_items):
        try:
            item = serializer.run_validation(raw)
        except serializers.ValidationError as exc:
            cu = raw.get("client_uuid") if isinstance(raw, Mapping) else None
            out.append(
                ItemResult(i, "rejected", str(cu) if cu else None, errors=item_errors(exc.detail))
            )
            continue
        item.index = i
        out.append(item)
    return out


__all__ = [
    "FindingSerializer",
    "VisitBatchRequestSerializer",
    "VisitPhotoUploadSerializer",
    "VisitUploadMultipartSerializer",
    "VisitUploadSerializer",
    "has_nul",
    "item_errors",
    "validate_items",
]
