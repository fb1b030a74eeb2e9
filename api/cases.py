"""Cases API: report, read, act on cases; the street dispatch queue; approvals; follow-ups;
mediation records; figures. Rules live in :mod:`gridsvc.cases.services`; views translate.

- ``GET/POST /api/v1/cases/`` — cases in your territory (and those you handle or reported);
  ``?mine=1`` for the cases you handle; ``?format=geojson`` for a FeatureCollection. POST
  reports a case: it is routed at once and the answer lists nearby open duplicates.
- ``GET /api/v1/cases/{id}/`` carries an ``ETag``; every change takes ``If-Match`` (412 when
  someone changed the case first). ``POST /api/v1/cases/{id}/{action}/`` applies a workflow
  action (409 with the allowed actions when the case's state does not allow it).
- ``/api/v1/dispatch/queue/`` and ``/api/v1/dispatch/{action}/`` for bulk actions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.gis.geos import Point
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api.attachments import checked_upload, file_url
from api.schema import IllegalActionSerializer, StaleCaseSerializer
from gridsvc.cases import services
from gridsvc.cases.figures import case_figures as figures
from gridsvc.cases.figures import overdue
from gridsvc.cases.models import (
    OPEN_STATUSES,
    RUNNING_STATUSES,
    Attachment,
    Case,
    CaseEvent,
    CaseRequest,
    Category,
    Department,
    FollowUp,
    MediationRecord,
    Status,
)
from gridsvc.chain.services import LEVEL_BY_NAME
from gridsvc.territory.models import Building, Compound, Household, Unit
from gridsvc.uploads import Upload

from . import versions
from .scoping import request_scope

MAX_PHOTO_BYTES = 10 * 1024 * 1024


# ---------------------------------------------------------------------------- helpers
def case_queryset(request) -> QuerySet[Case]:  # type: ignore[no-untyped-def]
    """Cases the caller may see: their territory's, plus those they handle or reported."""
    base = Case.objects.select_related("category__parent", "handler", "department")
    scope = request_scope(request)
    if scope.everything:
        return base
    user = request.user
    mine = Q(handler=user) | Q(reported_by=user)
    return base.filter(Q(pk__in=scope.filter(Case.objects.all()).values("pk")) | mine)


def visible_among(request, cases) -> list[Case]:  # type: ignore[no-untyped-def]
    """Those of ``cases`` the caller may see (same order)."""
    ids = set(
        case_queryset(request).filter(pk__in=[c.pk for c in cases]).values_list("pk", flat=True)
    )
    return [c for c in cases if c.pk in ids]


def mask_name(name: str) -> str:
    name = (name or "").strip()
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""


def expected_version(request) -> int | None:  # type: ignore[no-untyped-def]
    """The case version the caller last saw (If-Match or ``version``)."""
    return versions.expected_version(request, "a case")


def point_from(data: dict, crs: str = "wgs84") -> Point | None:
    """A WGS84 point from ``lon``/``lat`` or a GeoJSON ``location`` in ``crs``."""
    from geo.crs import UnsupportedCRS, to_wgs84

    loc = data.get("location")
    lon, lat = data.get("lon"), data.get("lat")
    if isinstance(loc, dict):
        coords = loc.get("coordinates")
        if loc.get("type") != "Point" or not isinstance(coords, list | tuple) or len(coords) < 2:
            raise ValidationError({"location": "a GeoJSON Point {type, coordinates: [lon, lat]}"})
        lon, lat = coords[0], coords[1]
    elif loc not in (None, ""):
        raise ValidationError({"location": "a GeoJSON Point {type, coordinates: [lon, lat]}"})
    if lon in (None, "") and lat in (None, ""):
        return None
    try:
        lon_f, lat_f = float(lon), float(lat)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError({"location": "lon and lat must be numbers"}) from None
    if not (-180 <= lon_f <= 180 and -90 <= lat_f <= 90) or lon_f != lon_f or lat_f != lat_f:
        raise ValidationError({"location": "lon must be in [-180, 180] and lat in [-90, 90]"})
    try:
        lon_f, lat_f = to_wgs84(lon_f, lat_f, crs or "wgs84")
    except UnsupportedCRS as exc:
        raise ValidationError({"crs": str(exc)}) from None
    return Point(lon_f, lat_f, srid=4326)


def category_from(value: Any) -> Category:
    qs = Category.objects.filter(active=True)
    found = None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        found = qs.filter(pk=int(value)).first()
    elif isinstance(value, str) and value:
        found = qs.filter(code=value).first()
    if found is None:
        raise ValidationError({"category": "unknown category (give its id or code)"})
    return found


def in_scope(request, model, pk: Any, field_name: str):  # type: ignore[no-untyped-def]
    if pk in (None, ""):
        return None
    pk = _as_id(pk, field_name)
    obj = request_scope(request).filter(model.objects.all()).filter(pk=pk).first()
    if obj is None:  # outside the territory reads exactly like nonexistent
        raise ValidationError({field_name: [NOT_FOUND]})
    return obj


NOT_FOUND = "not found"


def _as_id(value: Any, field_name: str) -> int:
    if isinstance(value, bool):
        raise ValidationError({field_name: ["must be an id"]})
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError({field_name: ["must be an id"]}) from None


def resolve_action_ids(request, case: Case, data: dict) -> None:  # type: ignore[no-untyped-def]
    """Every id in an action's body is looked up through the caller's scope before the action
    runs; an id outside it is answered exactly like one that does not exist (400 naming the
    field, "not found") and is never acted on:

    - ``into`` (merge): a case the caller may see;
    - ``member`` (assign/reassign): an active member holding a position over the case's place
      now (the case's territory), whatever the caller could otherwise see;
    - ``grid`` (assign a case outside every grid): a grid of the caller's territory;
    - ``department`` (transfer): a department of the case's street, or one without a street.
    """
    from gridsvc.accounts.models import Member
    from gridsvc.chain.scope import scope_for
    from gridsvc.territory.models import Grid

    if data.get("into") not in (None, ""):
        pk = _as_id(data["into"], "into")
        if not case_queryset(request).filter(pk=pk).exists():
            raise ValidationError({"into": [NOT_FOUND]})
        data["into"] = pk
    place = case
    if data.get("grid") not in (None, ""):
        grid = in_scope(request, Grid, data["grid"], "grid")
        data["grid"] = grid.pk
        if case.grid_id is None:  # assign places the case in this grid first
            place = Case(
                street_id=grid.community.street_id,
                community_id=grid.community_id,
                grid_id=grid.pk,
                compound_id=case.compound_id,
                building_id=case.building_id,
                unit_id=case.unit_id,
            )
    if data.get("member") not in (None, ""):
        pk = _as_id(data["member"], "member")
        member = Member.objects.filter(pk=pk, is_active=True).first()
        if member is None or not _covers(scope_for(member), place):
            raise ValidationError({"member": [NOT_FOUND]})
        data["member"] = pk
    if data.get("department") not in (None, ""):
        pk = _as_id(data["department"], "department")
        if not Department.objects.filter(
            Q(street__isnull=True) | Q(street_id=case.street_id), pk=pk
        ).exists():
            raise ValidationError({"department": [NOT_FOUND]})
        data["department"] = pk


def _covers(scope, case: Case) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``scope`` holds a position over the case's place (the rule of
    :meth:`Scope.located_q`, on a case that may not be saved yet)."""
    return scope.everything or any(
        ref is not None and ref in ids
        for ref, ids in (
            (case.street_id, scope.street_ids),
            (case.community_id, scope.community_ids),
            (case.grid_id, scope.grid_ids),
            (case.compound_id, scope.compound_ids),
            (case.building_id, scope.building_ids),
            (case.unit_id, scope.unit_ids),
        )
    )


# ---------------------------------------------------------------------------- serializers
class CategorySerializer(serializers.ModelSerializer):
    start_level = serializers.CharField(source="effective_start_level")
    open_conditions = serializers.CharField(source="effective_open_conditions")
    close_conditions = serializers.CharField(source="effective_close_conditions")
    time_limits = serializers.SerializerMethodField()

    class Meta:
        model = Category
        fields = [
            "id",
            "code",
            "name",
            "kind",
            "parent",
            "start_level",
            "notify",
            "open_conditions",
            "close_conditions",
            "duplicate_radius_m",
            "duplicate_days",
            "time_limits",
        ]

    def get_time_limits(self, obj: Category) -> list[dict]:
        cat: Category | None = obj
        while cat is not None:
            rows = list(cat.time_limits.all())
            if rows:
                return [
                    {"stage": t.stage, "level": t.level, "amount": t.amount, "unit": t.unit}
                    for t in rows
                ]
            cat = cat.parent
        return []


class DepartmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Department
        fields = ["id", "code", "name", "contact"]


class CaseSerializer(serializers.ModelSerializer):
    category_code = serializers.CharField(source="category.code", read_only=True)
    category_name = serializers.CharField(source="category.name", read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    level_label = serializers.SerializerMethodField()
    handler_name = serializers.SerializerMethodField()
    department_name = serializers.SerializerMethodField()
    lon = serializers.SerializerMethodField()
    lat = serializers.SerializerMethodField()
    flags = serializers.ListField(child=serializers.CharField(), read_only=True)
    overdue = serializers.SerializerMethodField()
    allowed_actions = serializers.SerializerMethodField()
    parties = serializers.SerializerMethodField()
    conditions = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = [
            "id",
            "number",
            "kind",
            "category",
            "category_code",
            "category_name",
            "title",
            "description",
            "parties",
            "priority",
            "flags",
            "source",
            "lon",
            "lat",
            "located_by",
            "household",
            "unit",
            "building",
            "compound",
            "grid",
            "community",
            "street",
            "suggested_grid",
            "status",
            "status_label",
            "level",
            "level_label",
            "handler",
            "handler_name",
            "department",
            "department_name",
            "route_reason",
            "reported_at",
            "assigned_at",
            "resolved_at",
            "closed_at",
            "updated_at",
            "due_at",
            "due_stage",
            "yellow_at",
            "handle_due_at",
            "deadline_error",
            "overdue",
            "card",
            "supervised_at",
            "outcome",
            "resolved_level",
            "rejection_reason",
            "on_the_spot",
            "hold_until",
            "merged_into",
            "escalations",
            "reopened_count",
            "reworked_count",
            "sent_back_count",
            "extended_count",
            "conditions",
            "allowed_actions",
            "version",
        ]
        read_only_fields = fields

    def get_level_label(self, obj: Case) -> str:
        return LEVEL_BY_NAME[obj.level].label if obj.level in LEVEL_BY_NAME else ""

    def get_handler_name(self, obj: Case) -> str | None:
        return str(obj.handler) if obj.handler_id else None

    def get_department_name(self, obj: Case) -> str | None:
        return obj.department.name if obj.department_id else None

    def get_lon(self, obj: Case) -> float:
        return self._xy(obj)[0]

    def get_lat(self, obj: Case) -> float:
        return self._xy(obj)[1]

    def _xy(self, obj: Case) -> tuple[float, float]:
        from geo.crs import from_wgs84

        crs = self.context.get("crs", "wgs84")
        x, y = from_wgs84(obj.location.x, obj.location.y, crs)
        return round(x, 7), round(y, 7)

    def get_overdue(self, obj: Case) -> bool:
        return bool(obj.due_at and obj.status in RUNNING_STATUSES and obj.due_at < timezone.now())

    def get_allowed_actions(self, obj: Case) -> list[str]:
        return services.allowed_actions(obj)

    def get_parties(self, obj: Case) -> list[dict]:
        """Parties' names are personal data: in clear for the handler and the managers of the
        case, masked (张*) for the rest of the territory."""
        request = self.context.get("request")
        user = getattr(request, "user", None)
        clear = user is not None and (
            user.is_superuser or obj.handler_id == user.pk or obj.reported_by_id == user.pk
        )
        out = []
        for p in obj.parties or []:
            p = dict(p) if isinstance(p, dict) else {"name": str(p)}
            if not clear:
                p["name"] = mask_name(str(p.get("name", "")))
                p.pop("phone", None)
                p.pop("id_number", None)
            out.append(p)
        return out

    def get_conditions(self, obj: Case) -> dict:
        return {
            "open": obj.category.effective_open_conditions,
            "close": obj.category.effective_close_conditions,
        }


class PartySerializer(serializers.Serializer):
    name = serializers.CharField(max_length=50)
    role = serializers.CharField(max_length=30, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=20, required=False, allow_blank=True)


class ReportSerializer(serializers.Serializer):
    """A report 上报. Give lon/lat (in ``crs``) or a GeoJSON ``location``, or a reference."""

    category = serializers.CharField(help_text="category id or code")
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    parties = PartySerializer(many=True, required=False)
    priority = serializers.IntegerField(required=False, min_value=1, max_value=4, default=3)
    flags = serializers.ListField(
        child=serializers.ChoiceField(choices=list(services.FLAGS)), required=False
    )
    lon = serializers.FloatField(required=False, min_value=-180, max_value=180)
    lat = serializers.FloatField(required=False, min_value=-90, max_value=90)
    location = serializers.JSONField(required=False)
    crs = serializers.ChoiceField(
        choices=["wgs84", "gcj02", "bd09", "cgcs2000"], required=False, default="wgs84"
    )
    household = serializers.IntegerField(required=False)
    unit = serializers.IntegerField(required=False)
    building = serializers.IntegerField(required=False)
    compound = serializers.IntegerField(required=False)
    on_the_spot = serializers.BooleanField(required=False, default=False)
    outcome = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    photos_before = serializers.ListField(child=serializers.FileField(), required=False)
    photos_after = serializers.ListField(child=serializers.FileField(), required=False)


class EventSerializer(serializers.ModelSerializer):
    actor_name = serializers.SerializerMethodField()
    attachments = serializers.SerializerMethodField()

    class Meta:
        model = CaseEvent
        fields = [
            "id",
            "kind",
            "from_status",
            "to_status",
            "level",
            "actor",
            "actor_name",
            "at",
            "note",
            "data",
            "attachments",
        ]

    def get_actor_name(self, obj: CaseEvent) -> str:
        return str(obj.actor) if obj.actor_id else "系统"

    def get_attachments(self, obj: CaseEvent) -> list[dict]:
        request = self.context.get("request")
        return [
            {
                "id": a.id,
                "role": a.role,
                "size": a.size,
                "content_type": a.content_type,
                "url": file_url(a, request),  # the scoped download (api/attachments.py)
            }
            for a in obj.attachments.all()
        ]


class RequestSerializer(serializers.ModelSerializer):
    class Meta:
        model = CaseRequest
        fields = [
            "id",
            "case",
            "kind",
            "reason",
            "amount",
            "unit",
            "review_date",
            "state",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
        ]
        read_only_fields = [
            "id",
            "case",
            "state",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
        ]


class FollowUpSerializer(serializers.ModelSerializer):
    case_number = serializers.CharField(source="case.number", read_only=True)
    case_title = serializers.CharField(source="case.title", read_only=True)

    class Meta:
        model = FollowUp
        fields = [
            "id",
            "case",
            "case_number",
            "case_title",
            "assigned_to",
            "due_at",
            "done_at",
            "satisfied",
            "note",
        ]
        read_only_fields = fields


class MediationSerializer(serializers.ModelSerializer):
    court_confirmation_deadline = serializers.DateField(read_only=True)
    parties = PartySerializer(many=True)

    class Meta:
        model = MediationRecord
        fields = [
            "parties",
            "facts",
            "issues",
            "terms",
            "performance_method",
            "performance_deadline",
            "signed_on",
            "mediator",
            "honoured",
            "honoured_checked_on",
            "honoured_note",
            "court_confirmation_applied",
            "court_confirmation_deadline",
        ]
        read_only_fields = ["mediator", "court_confirmation_deadline"]

    def validate_parties(self, value: list) -> list:
        if len(value) < 2:
            raise ValidationError("a mediation agreement names at least two parties")
        return value

    def validate(self, attrs: dict) -> dict:
        signed = attrs.get("signed_on") or getattr(self.instance, "signed_on", None)
        deadline = attrs.get("performance_deadline") or getattr(
            self.instance, "performance_deadline", None
        )
        if signed and deadline and deadline < signed:
            raise ValidationError({"performance_deadline": "cannot be before the signing date"})
        if attrs.get("honoured") is not None and not attrs.get("honoured_checked_on"):
            attrs["honoured_checked_on"] = timezone.localdate()
        return attrs


ACTION_BODY = inline_serializer(
    "CaseActionBody",
    {
        "note": serializers.CharField(required=False),
        "version": serializers.IntegerField(required=False),
        "member": serializers.IntegerField(required=False, help_text="assign: the member"),
        "grid": serializers.IntegerField(required=False, help_text="assign: place in grid"),
        "outcome": serializers.CharField(required=False, help_text="resolve"),
        "satisfied": serializers.BooleanField(required=False, help_text="verify"),
        "department": serializers.IntegerField(required=False, help_text="transfer"),
        "reason": serializers.CharField(required=False, help_text="reject/reopen/send_back"),
        "into": serializers.IntegerField(required=False, help_text="merge: target case"),
        "due_at": serializers.DateTimeField(required=False, help_text="set_deadline"),
        "lon": serializers.FloatField(required=False),
        "lat": serializers.FloatField(required=False),
    },
)


# ---------------------------------------------------------------------------- filters
class CaseOrdering(filters.OrderingFilter):
    """``ordering=``: cases without a deadline come last either way; ties by age, then id."""

    def filter(self, qs, value):  # type: ignore[no-untyped-def]
        if not value:
            return qs
        order = []
        for param in value:
            field = self.get_ordering_value(param)
            expr = F(field.lstrip("-"))
            desc = field.startswith("-")
            order.append(expr.desc(nulls_last=True) if desc else expr.asc(nulls_last=True))
        return qs.order_by(*order, "reported_at", "id")


class CaseFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Status.choices)
    category = filters.CharFilter(method="by_category")
    kind = filters.ChoiceFilter(choices=Case._meta.get_field("kind").choices)
    grid = filters.NumberFilter(help_text="grid id")
    community = filters.NumberFilter(help_text="community id")
    card = filters.ChoiceFilter(choices=[("yellow", "yellow"), ("red", "red")])
    since = filters.IsoDateTimeFilter(field_name="reported_at", lookup_expr="gte")
    until = filters.IsoDateTimeFilter(field_name="reported_at", lookup_expr="lt")
    open = filters.BooleanFilter(method="by_open")
    overdue = filters.BooleanFilter(method="by_overdue")
    mine = filters.BooleanFilter(method="by_mine")
    level = filters.CharFilter()
    bbox = filters.CharFilter(method="by_bbox")
    q = filters.CharFilter(
        method="by_q",
        help_text="search: case number, title/description, category, building/compound/grid "
        "(every word must match; parties and residents are never searched)",
    )
    ordering = CaseOrdering(
        fields=(("due_at", "deadline"), ("priority", "priority"), ("reported_at", "created")),
        help_text="sort: deadline (soonest first, none last), priority (紧急 first), created "
        "(oldest first, i.e. by age); a leading - reverses; comma-separated for ties",
    )

    class Meta:
        model = Case
        fields = ["status", "category", "kind", "grid", "community", "card", "level"]

    def by_category(self, qs, name, value):  # type: ignore[no-untyped-def]
        codes = [v for v in value.split(",") if v]
        ids = [int(v) for v in codes if v.isdigit()]
        return qs.filter(
            Q(category__code__in=codes)
            | Q(category__parent__code__in=codes)
            | Q(category_id__in=ids)
            | Q(category__parent_id__in=ids)
        )

    def by_open(self, qs, name, value):  # type: ignore[no-untyped-def]
        return (
            qs.filter(status__in=OPEN_STATUSES) if value else qs.exclude(status__in=OPEN_STATUSES)
        )

    def by_overdue(self, qs, name, value):  # type: ignore[no-untyped-def]
        q = overdue(timezone.now())  # the figure's definition (gridsvc.cases.figures)
        return qs.filter(q) if value else qs.exclude(q)

    def by_q(self, qs, name, value):  # type: ignore[no-untyped-def]
        from gridsvc.cases.search import search_cases

        return search_cases(qs, value)

    def by_mine(self, qs, name, value):  # type: ignore[no-untyped-def]
        return qs.filter(handler=self.request.user) if value else qs

    def by_bbox(self, qs, name, value):  # type: ignore[no-untyped-def]
        from django.contrib.gis.geos import Polygon

        try:
            x0, y0, x1, y1 = (float(v) for v in value.split(","))
        except ValueError:
            raise ValidationError({"bbox": "minLon,minLat,maxLon,maxLat"}) from None
        if not (x0 < x1 and y0 < y1):
            raise ValidationError({"bbox": "min must be below max"})
        crs = self.request.query_params.get("crs") if self.request else None
        if crs:  # the box is in ``crs`` like the output: its WGS84 envelope
            from geo.crs import UnsupportedCRS, to_wgs84

            try:
                corners = [to_wgs84(x, y, crs) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
            except UnsupportedCRS as exc:
                raise ValidationError({"crs": str(exc)}) from None
            x0, y0 = min(c[0] for c in corners), min(c[1] for c in corners)
            x1, y1 = max(c[0] for c in corners), max(c[1] for c in corners)
        return qs.filter(location__intersects=Polygon.from_bbox((x0, y0, x1, y1)))


# ---------------------------------------------------------------------------- views
class CategoryViewSet(viewsets.ReadOnlyModelViewSet):
    """Category rules 案件类别 with their time limits and the conditions to open and close."""

    queryset = (
        Category.objects.filter(active=True)
        .select_related("parent")
        .prefetch_related("time_limits")
    )
    serializer_class = CategorySerializer
    pagination_class = None


class DepartmentViewSet(viewsets.ReadOnlyModelViewSet):
    """Outside departments 职能部门 a case can be transferred to."""

    queryset = Department.objects.all()
    serializer_class = DepartmentSerializer
    pagination_class = None


def _geojson(cases, context) -> dict:  # type: ignore[no-untyped-def]
    feats = []
    for row in CaseSerializer(cases, many=True, context=context).data:
        feats.append(
            {
                "type": "Feature",
                "id": row["id"],
                "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
                "properties": row,
            }
        )
    return {"type": "FeatureCollection", "features": feats}


@extend_schema_serializer(many=False)
class CaseFeatureCollectionSerializer(serializers.Serializer):
    """The case list as GeoJSON (``?format=geojson``), one page of it."""

    type = serializers.ChoiceField(choices=["FeatureCollection"])
    features = serializers.ListField(child=serializers.DictField())
    count = serializers.IntegerField(required=False)
    next = serializers.CharField(required=False, allow_null=True)


class GeoJSONRenderer(JSONRenderer):
    """``?format=geojson`` (or ``Accept: application/geo+json``) on the case list."""

    media_type = "application/geo+json"
    format = "geojson"


class CaseViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Cases 案件 (矛盾纠纷 and 安全隐患) in the caller's territory."""

    serializer_class = CaseSerializer
    filterset_class = CaseFilter

    def get_renderers(self):  # type: ignore[no-untyped-def]
        renderers = super().get_renderers()
        if self.action == "list":
            renderers.append(GeoJSONRenderer())
        return renderers

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Case.objects.none()
        return case_queryset(self.request)

    def get_serializer_context(self) -> dict:
        ctx = super().get_serializer_context()
        crs = self.request.query_params.get("crs", "wgs84") if self.request else "wgs84"
        from geo.crs import UnsupportedCRS, normalize_crs

        try:
            ctx["crs"] = normalize_crs(crs)
        except UnsupportedCRS as exc:
            raise ValidationError({"crs": str(exc)}) from None
        return ctx

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=["json", "geojson"]),
            OpenApiParameter("crs", str, enum=["wgs84", "gcj02", "bd09", "cgcs2000"]),
        ],
        responses={
            (200, "application/json"): CaseSerializer(many=True),
            (200, "application/geo+json"): CaseFeatureCollectionSerializer,
        },
    )
    def list(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        if request.accepted_renderer.format == "geojson":
            qs = self.filter_queryset(self.get_queryset())
            page = self.paginate_queryset(qs)
            body = _geojson(page if page is not None else qs, self.get_serializer_context())
            if page is not None:
                body["count"] = self.paginator.page.paginator.count
                body["next"] = self.paginator.get_next_link()
            return Response(body)
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        case = self.get_object()
        if request.headers.get("If-None-Match") == case.etag:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": case.etag})
        data = self.get_serializer(case).data
        return Response(data, headers={"ETag": case.etag})

    @extend_schema(
        request={"application/json": ReportSerializer, "multipart/form-data": ReportSerializer},
        responses={
            201: inline_serializer(
                "CaseReported",
                {
                    "case": CaseSerializer(),
                    "duplicates": inline_serializer(
                        "CaseDuplicateBrief",
                        {
                            "id": serializers.IntegerField(),
                            "number": serializers.CharField(),
                            "title": serializers.CharField(),
                            "status": serializers.CharField(),
                        },
                        many=True,
                    ),
                },
            )
        },
    )
    def create(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Report a case: it is routed at once; nearby open cases of the same category come
        back as ``duplicates``. ``on_the_spot`` (自处理) needs the outcome and photos before
        and after."""
        ser = ReportSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        v = ser.validated_data
        category = category_from(v["category"])
        point = point_from(request.data if isinstance(request.data, dict) else v, v["crs"])
        refs = {
            name: in_scope(request, model, v.get(name), name)
            for name, model in (
                ("household", Household),
                ("unit", Unit),
                ("building", Building),
                ("compound", Compound),
            )
        }
        if point is None and not any(refs.values()):
            raise ValidationError(
                {"location": "give lon/lat, a GeoJSON location or a household/unit/building"}
            )
        before = request.FILES.getlist("photos_before") if request.FILES else []
        after = request.FILES.getlist("photos_after") if request.FILES else []
        if v["on_the_spot"] and (not before or not after):
            raise ValidationError(
                {"photos_after": "on-the-spot handling needs photos before and after"}
            )
        # photos are checked by content, not by name or declared type (gridsvc.uploads)
        photos = {
            role: [
                checked_upload(f, f"photos_{role}", max_bytes=MAX_PHOTO_BYTES, documents=False)
                for f in files
            ]
            for role, files in (("before", before), ("after", after))
        }
        with transaction.atomic():
            rep = services.report_case(
                reporter=request.user,
                category=category,
                title=v["title"],
                description=v.get("description", ""),
                parties=[dict(p) for p in v.get("parties", [])],
                priority=v["priority"],
                flags=v.get("flags", []),
                location=point,
                source="app",
                on_the_spot=v["on_the_spot"],
                outcome=v.get("outcome", ""),
                **refs,
            )
            for role, ups in photos.items():
                for up in ups:
                    _attach(rep.case, up, role, request.user)
        ctx = self.get_serializer_context()
        body = {
            "case": CaseSerializer(rep.case, context=ctx).data,
            # only the duplicates the reporter may see (a neighbour grid's case stays unnamed)
            "duplicates": [
                {"id": d.id, "number": d.number, "title": d.title, "status": d.status}
                for d in visible_among(request, rep.duplicates)
            ],
        }
        return Response(body, status=status.HTTP_201_CREATED, headers={"ETag": rep.case.etag})

    @extend_schema(
        responses=inline_serializer(
            "CaseTimeline",
            {
                "case": serializers.CharField(),
                "route_reason": serializers.CharField(),
                "chain": serializers.ListField(child=serializers.DictField()),
                "events": EventSerializer(many=True),
            },
        )
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def events(self, request, pk=None):  # type: ignore[no-untyped-def]
        """The case's timeline (append-only events) and the chain walked when it was routed."""
        case = self.get_object()
        events = case.events.select_related("actor").prefetch_related("attachments")
        return Response(
            {
                "case": case.number,
                "route_reason": case.route_reason,
                "chain": case.chain,
                "events": EventSerializer(events, many=True, context={"request": request}).data,
            }
        )

    @extend_schema(
        responses=inline_serializer(
            "DuplicateCase",
            {
                "id": serializers.IntegerField(),
                "number": serializers.CharField(),
                "title": serializers.CharField(),
                "status": serializers.CharField(),
            },
            many=True,
        )
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def duplicates(self, request, pk=None):  # type: ignore[no-untyped-def]
        """Open cases of the same category nearby (radius and days from the category rule)."""
        case = self.get_object()
        found = services.find_duplicates(
            case.category, case.location, case.reported_at, exclude_id=case.pk
        )
        visible = case_queryset(request).filter(pk__in=found.values("pk"))
        return Response(
            [
                {"id": d.id, "number": d.number, "title": d.title, "status": d.status}
                for d in visible[:20]
            ]
        )

    def _act(self, request, pk, name: str) -> Response:  # type: ignore[no-untyped-def]
        case = self.get_object()
        data = dict(request.data) if isinstance(request.data, dict) else {}
        note = str(data.pop("note", "") or "")
        data.pop("version", None)
        where = None
        crs = str(data.pop("crs", None) or "wgs84")  # of lon/lat, as on a case report
        if data.get("lon") is not None or data.get("lat") is not None:
            where = point_from({"lon": data.pop("lon", None), "lat": data.pop("lat", None)}, crs)
        resolve_action_ids(request, case, data)
        case = services.act(
            case.pk,
            name,
            request.user,
            expected_version=expected_version(request),
            note=note,
            location=where,
            data=data,
        )
        return Response(
            CaseSerializer(case, context=self.get_serializer_context()).data,
            headers={"ETag": case.etag},
        )

    @extend_schema(
        request=ACTION_BODY,
        parameters=[
            OpenApiParameter(
                "If-Match",
                str,
                OpenApiParameter.HEADER,
                description="the case's ETag (or `version` in the body): 412 if it changed",
            )
        ],
        responses={200: CaseSerializer, 409: IllegalActionSerializer, 412: StaleCaseSerializer},
    )
    @action(detail=True, methods=["post"], url_path=r"actions/(?P<name>[a-z_]+)")
    def act(self, request, pk=None, name=None):  # type: ignore[no-untyped-def]
        """Apply a workflow action: start, assign, resolve, verify, close, escalate, transfer,
        reject, reopen, send_back, resume, merge, set_deadline, supervise, comment. Send the
        case's ETag in If-Match: 412 if it changed meanwhile; 409 lists the allowed actions."""
        if name not in services.ACTIONS:
            raise ValidationError({"action": f"one of {', '.join(services.ACTIONS)}"})
        return self._act(request, pk, name)

    @extend_schema(request=RequestSerializer, responses={201: RequestSerializer})
    @action(detail=True, methods=["post"], url_path="requests")
    def requests(self, request, pk=None):  # type: ignore[no-untyped-def]
        """Ask the level above for an extension 延时, a hold 挂账 or a void 作废."""
        case = self.get_object()
        ser = RequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        v = ser.validated_data
        req = services.request_exception(
            case.pk,
            v["kind"],
            request.user,
            reason=v.get("reason", ""),
            amount=v.get("amount"),
            unit=v.get("unit", ""),
            review_date=v.get("review_date"),
            expected_version=expected_version(request),
        )
        return Response(RequestSerializer(req).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MediationSerializer, responses=MediationSerializer)
    @action(detail=True, methods=["get", "put", "patch"])
    def mediation(self, request, pk=None):  # type: ignore[no-untyped-def]
        """The mediation agreement 人民调解协议 of a dispute, and whether it was honoured."""
        case = self.get_object()
        record = MediationRecord.objects.filter(case=case).first()
        if request.method == "GET":
            if record is None:
                return Response({"detail": "no mediation record yet"}, status=404)
            return Response(MediationSerializer(record).data)
        if case.kind != "dispute":
            raise ValidationError({"case": "mediation records are for disputes"})
        if not services.can_handle(request.user, case):
            return Response({"detail": "only the handler or the levels above"}, status=403)
        ser = MediationSerializer(record, data=request.data, partial=request.method == "PATCH")
        ser.is_valid(raise_exception=True)
        with transaction.atomic():
            saved = ser.save(case=case, mediator=record.mediator if record else request.user)
            kind = "mediation_recorded" if record is None else "mediation_updated"
            if "honoured" in ser.validated_data:
                kind = "mediation_follow_up"
            services.record(
                case,
                kind,
                request.user,
                from_status=case.status,
                data={"honoured": saved.honoured, "signed_on": str(saved.signed_on)},
            )
        return Response(MediationSerializer(saved).data, status=200 if record else 201)

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "CaseAttachmentUpload",
                {
                    "file": serializers.FileField(),
                    "role": serializers.ChoiceField(choices=["photo", "before", "after", "file"]),
                },
            )
        },
        responses={201: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["post"])
    def attachments(self, request, pk=None):  # type: ignore[no-untyped-def]
        """Attach a photo or file to the case (recorded as an event)."""
        case = self.get_object()
        f = request.FILES.get("file") if request.FILES else None
        if f is None:
            raise ValidationError({"file": "attach a file"})
        role = request.data.get("role", "photo")
        if role not in ("photo", "before", "after", "file"):
            raise ValidationError({"role": "photo, before, after or file"})
        # by content: images, and PDF for role "file" (gridsvc.uploads)
        up = checked_upload(f, "file", max_bytes=MAX_PHOTO_BYTES, documents=role == "file")
        with transaction.atomic():
            event = services.record(case, "attachment", request.user, from_status=case.status)
            att = _attach(case, up, role, request.user, event)
        body = {"id": att.pk, "role": att.role, "size": att.size, "content_type": att.content_type}
        return Response({**body, "url": file_url(att, request)}, status=201)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=False, methods=["get"])
    def figures(self, request):  # type: ignore[no-untyped-def]
        """At a glance: cases by state, category and the level they ended at (小矛盾不出小区,
        大矛盾不出社区), resolution rate, settled within a month; ``since``/``until`` filter."""
        qs = self.filter_queryset(self.get_queryset())
        return Response(figures(qs))


def _attach(case: Case, up: Upload, role: str, user, event: CaseEvent | None = None) -> Attachment:  # type: ignore[no-untyped-def]
    """Store a checked upload under a server-chosen name, its type as detected."""
    att = Attachment(
        case=case,
        event=event,
        role=role,
        content_type=up.content_type,
        size=up.size,
        sha256=up.sha256,
        uploaded_by=user if getattr(user, "pk", None) else None,
    )
    att.file.save(up.stored_name(f"case{case.pk}-"), ContentFile(up.data), save=False)
    att.save()
    return att


class CaseRequestViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Extension/hold/void requests on cases in your territory; the level above decides."""

    serializer_class = RequestSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return CaseRequest.objects.none()
        qs = CaseRequest.objects.filter(case__in=case_queryset(self.request).values("pk"))
        st = self.request.query_params.get("state")
        if st:
            if st not in CaseRequest.State.values:
                raise ValidationError({"state": f"one of {', '.join(CaseRequest.State.values)}"})
            qs = qs.filter(state=st)
        return qs

    @extend_schema(
        request=inline_serializer(
            "DecideRequest",
            {"approve": serializers.BooleanField(), "note": serializers.CharField(required=False)},
        ),
        responses=RequestSerializer,
    )
    @action(detail=True, methods=["post"])
    def decide(self, request, pk=None):  # type: ignore[no-untyped-def]
        req = get_object_or_404(self.get_queryset(), pk=pk)
        approve = request.data.get("approve") if isinstance(request.data, dict) else None
        if not isinstance(approve, bool):
            raise ValidationError({"approve": "true or false"})
        req = services.decide_request(
            req.pk, request.user, approve, str(request.data.get("note", ""))
        )
        return Response(RequestSerializer(req).data)


class FollowUpViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Return visits 回访 assigned to you (``?all=1``: every one in your territory)."""

    serializer_class = FollowUpSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return FollowUp.objects.none()
        qs = FollowUp.objects.select_related("case").filter(
            case__in=case_queryset(self.request).values("pk")
        )
        if self.request.query_params.get("all") not in ("1", "true"):
            qs = qs.filter(assigned_to=self.request.user)
        if self.request.query_params.get("done") in ("0", "false"):
            qs = qs.filter(done_at__isnull=True)
        return qs


# ---------------------------------------------------------------------------- dispatch
class DispatchQueueView(APIView):
    """The street's dispatch queue: ``kind`` = unrouted | overdue | flagged | all."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind", str, enum=["all", "unrouted", "overdue", "flagged"], required=False
            )
        ],
        responses=inline_serializer(
            "DispatchQueue",
            {"kind": serializers.CharField(), "results": CaseSerializer(many=True)},
        ),
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        kind = request.query_params.get("kind", "all")
        if kind not in ("all", "unrouted", "overdue", "flagged"):
            raise ValidationError({"kind": "one of all, unrouted, overdue, flagged"})
        qs = services.dispatch_queue(case_queryset(request), kind)[:200]
        return Response(
            {
                "kind": kind,
                "results": CaseSerializer(qs, many=True, context={"request": request}).data,
            }
        )


class BulkActionView(APIView):
    """Apply one action to several cases: ``{"ids": [...], "versions": {id: version},
    ...action fields}``. Each case is changed in its own transaction; with ``versions`` a case
    changed since the dispatcher saw it is left alone (412 for that case, like If-Match); the
    answer says per case what happened."""

    @extend_schema(
        request=inline_serializer(
            "BulkAction",
            {
                "ids": serializers.ListField(child=serializers.IntegerField()),
                "versions": serializers.DictField(
                    child=serializers.IntegerField(),
                    required=False,
                    help_text="case id → the version the dispatcher saw (as If-Match per case)",
                ),
                "member": serializers.IntegerField(required=False),
                "department": serializers.IntegerField(required=False),
                "due_at": serializers.DateTimeField(required=False),
                "note": serializers.CharField(required=False),
                "reason": serializers.CharField(required=False),
            },
        ),
        responses={200: OpenApiTypes.OBJECT},
    )
    def post(self, request, name: str):  # type: ignore[no-untyped-def]
        if name not in ("assign", "reassign", "escalate", "transfer", "set_deadline", "supervise"):
            raise ValidationError(
                {"action": "assign, reassign, escalate, transfer, set_deadline or supervise"}
            )
        name = "assign" if name == "reassign" else name
        body = request.data if isinstance(request.data, dict) else {}
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            raise ValidationError({"ids": "a non-empty list of case ids"})
        if len(ids) > 200:
            raise ValidationError({"ids": "at most 200 cases at once"})
        versions = body.get("versions") or {}
        if not isinstance(versions, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in versions.values()
        ):
            raise ValidationError({"versions": "an object of case id → version (integer)"})
        try:
            versions = {int(k): v for k, v in versions.items()}
        except ValueError:
            raise ValidationError({"versions": "keys must be case ids"}) from None
        visible = set(case_queryset(request).filter(pk__in=ids).values_list("pk", flat=True))
        data = {k: v for k, v in body.items() if k not in ("ids", "note", "versions")}
        results = []
        for case_id in ids:
            if case_id not in visible:
                results.append({"id": case_id, "ok": False, "status": 404, "detail": "not found"})
                continue
            case_data = dict(data)
            try:
                resolve_action_ids(request, Case.objects.get(pk=case_id), case_data)
            except ValidationError as exc:
                results.append({"id": case_id, "ok": False, "status": 400, **exc.detail})
                continue
            try:
                case = services.act(
                    case_id,
                    name,
                    request.user,
                    expected_version=versions.get(case_id),
                    note=str(body.get("note", "")),
                    data=case_data,
                )
                results.append({"id": case_id, "ok": True, "status": case.status})
            except services.CaseError as exc:
                results.append(
                    {"id": case_id, "ok": False, "status": exc.status_code, exc.field: exc.message}
                )
        code = 200 if any(r["ok"] for r in results) else 400
        if all(r.get("status") == 404 for r in results):
            code = 404
        return Response({"action": name, "results": results}, status=code)


def _parse_when(raw: str | None, name: str):  # type: ignore[no-untyped-def]
    if not raw:
        return None
    value = parse_datetime(raw)
    if value is None:
        raise ValidationError({name: "ISO 8601 date and time"})
    return value


# ---------------------------------------------------------------------------- assessment
def _period(request):  # type: ignore[no-untyped-def]
    from datetime import date

    today = timezone.localdate()
    first = today.replace(day=1)
    out = []
    for name, default in (("since", first), ("until", today + timedelta(days=1))):
        raw = request.query_params.get(name)
        if not raw:
            out.append(default)
            continue
        try:
            out.append(date.fromisoformat(raw))
        except ValueError:
            raise ValidationError({name: "a date YYYY-MM-DD"}) from None
    if out[0] >= out[1]:
        raise ValidationError({"until": "must be after since"})
    if (out[1] - out[0]).days > 3660:
        raise ValidationError({"until": "a period of at most ten years"})
    return out


BY_PARAM = OpenApiParameter(
    "by", str, enum=["member", "grid", "community", "department"], required=False
)
PERIOD_PARAMS = [
    OpenApiParameter("since", OpenApiTypes.DATE, required=False, description="first day"),
    OpenApiParameter("until", OpenApiTypes.DATE, required=False, description="day after the last"),
]


class AssessmentView(APIView):
    """考核: 按期处置率, 结案率, 按期结案率, 返工率, 超期未处置率, 延期率, on-the-spot count,
    weighted score and grade A–E per member, grid, community or outside department."""

    @extend_schema(parameters=[BY_PARAM, *PERIOD_PARAMS], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):  # type: ignore[no-untyped-def]
        from gridsvc.cases import assessment

        by = request.query_params.get("by", "grid")
        if by not in assessment.GROUPS:
            raise ValidationError({"by": f"one of {', '.join(assessment.GROUPS)}"})
        since, until = _period(request)
        rows = assessment.assess(case_queryset(request), by, since, until)
        weights, grades = assessment.scheme()
        return Response(
            {
                "by": by,
                "since": since,
                "until": until,
                "weights": weights,
                "grades": grades,
                "rows": rows,
            }
        )


class AssessmentCasesView(APIView):
    """The cases behind one figure of one row (drill-down)."""

    @extend_schema(
        parameters=[
            BY_PARAM,
            *PERIOD_PARAMS,
            OpenApiParameter("key", int, required=True),
            OpenApiParameter("figure", str, required=True),
        ],
        responses=CaseSerializer(many=True),
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        from gridsvc.cases import assessment

        by = request.query_params.get("by", "grid")
        if by not in assessment.GROUPS:
            raise ValidationError({"by": f"one of {', '.join(assessment.GROUPS)}"})
        try:
            key = int(request.query_params.get("key", ""))
        except ValueError:
            raise ValidationError(
                {"key": "the id of the member/grid/community/department"}
            ) from None
        since, until = _period(request)
        figure = request.query_params.get("figure", "")
        try:
            qs = assessment.drill_down(case_queryset(request), by, key, figure, since, until)
        except ValueError as exc:
            raise ValidationError({"figure": str(exc)}) from None
        return Response(CaseSerializer(qs[:500], many=True, context={"request": request}).data)


# ---------------------------------------------------------------------------- inbox
class InboxSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    title = serializers.CharField()
    body = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)


class InboxViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your inbox 消息: new cases, cards, escalations, send-back results, decisions
    (``?unread=1``). The phone also gets them through the change feed."""

    serializer_class = InboxSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        from gridsvc.supervision.models import InboxMessage

        if getattr(self, "swagger_fake_view", False):
            return InboxMessage.objects.none()
        qs = InboxMessage.objects.filter(member=self.request.user)
        if self.request.query_params.get("unread") in ("1", "true"):
            qs = qs.filter(read_at__isnull=True)
        return qs

    @extend_schema(request=None, responses=InboxSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):  # type: ignore[no-untyped-def]
        msg = get_object_or_404(self.get_queryset(), pk=pk)
        if msg.read_at is None:
            msg.read_at = timezone.now()
            msg.save(update_fields=["read_at"])
        return Response(InboxSerializer(msg).data)


# ---------------------------------------------------------------------------- routing
urlpatterns: list = []
root_urlpatterns: list = []


def register(router) -> None:  # type: ignore[no-untyped-def]
    """Register this domain's viewsets on the /api/v1/ router."""
    from django.urls import path

    router.register("categories", CategoryViewSet, basename="category")
    router.register("departments", DepartmentViewSet, basename="department")
    router.register("cases", CaseViewSet, basename="case")
    router.register("case-requests", CaseRequestViewSet, basename="case-request")
    router.register("follow-ups", FollowUpViewSet, basename="follow-up")
    router.register("inbox", InboxViewSet, basename="inbox")
    urlpatterns.extend(
        [
            path("assessment/", AssessmentView.as_view(), name="assessment"),
            path("assessment/cases/", AssessmentCasesView.as_view(), name="assessment-cases"),
            path("dispatch/queue/", DispatchQueueView.as_view(), name="dispatch-queue"),
            path("dispatch/<str:name>/", BulkActionView.as_view(), name="dispatch-action"),
        ]
    )
