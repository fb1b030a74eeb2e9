"""Views of the visits API. Domain rules live in gridsvc.visits (services, ingest, sync)."""

from __future__ import annotations

import re
from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from api.files import FileURLField
from api.pagination import PreparedPage, StandardPagination
from api.parsers import FormParser, JSONParser, MultiPartParser
from api.renderers import JSONRenderer, json_bytes
from api.schema import (
    ItemResultSerializer,
    StaleReportSerializer,
    VisitBatchResultSerializer,
    VisitConflictSerializer,
    VisitRejectedSerializer,
)
from api.versions import expected_version
from gridsvc.accounts.authentication import Rider, ride_with_caller
from gridsvc.chain.models import Position
from gridsvc.chain.scope import scope_for
from gridsvc.visits import services
from gridsvc.visits.ingest import ItemError, parse_photo, record_visits
from gridsvc.visits.models import (
    DailyReport,
    StaleDailyReport,
    Visit,
    VisitPhoto,
    VisitRule,
    VisitTask,
    save_daily_report,
)
from gridsvc.visits.sync import (
    FEED_LIMIT,
    BadCursor,
    changes_since,
    phone_estimate,
    probe_rider_statement,
)

from .. import batch
from ..privacy import viewer
from ..scoping import request_scope
from .serializers import (
    CoverageQuerySerializer,
    DayQuerySerializer,
    EstimateQuerySerializer,
    FeedQuerySerializer,
    RouteQuerySerializer,
    TaskListQuerySerializer,
    VisitBatchRequestSerializer,
    VisitListQuerySerializer,
    VisitUploadMultipartSerializer,
    VisitUploadSerializer,
    validate_items,
)


# ---------------------------------------------------------------- helpers
def sees_all_tracks(request) -> bool:  # type: ignore[no-untyped-def]
    """Location tracks are sensitive: only the street level (and superusers) see every visit's
    GPS point; others see their own visits' points only."""
    scope = request_scope(request)
    return scope.everything or bool(scope.street_ids)


def visible_tasks(request):  # type: ignore[no-untyped-def]
    return services.visible_tasks(request_scope(request), request.user)


def visible_visits(request):  # type: ignore[no-untyped-def]
    return services.visible_visits(request_scope(request), request.user)


class StaffWrites(BasePermission):
    def has_permission(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        if request.method in SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return bool(request.user and request.user.is_staff)


# ---------------------------------------------------------------- rules and tasks
class VisitRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = VisitRule
        fields = [
            "id",
            "code",
            "name",
            "target_group",
            "frequency",
            "window_days",
            "grace_days",
            "visitor_level",
            "joint_visit",
            "joint_with",
            "active",
            "description",
        ]

    def validate_target_group(self, value: str) -> str:
        VisitRule(target_group=value).clean()
        return value


class VisitRuleViewSet(viewsets.ModelViewSet):
    """Visit rules (走访规则). Anyone may read; staff edit (or use the admin)."""

    queryset = VisitRule.objects.all()
    serializer_class = VisitRuleSerializer
    permission_classes = [StaffWrites]


class VisitTaskSerializer(serializers.ModelSerializer):
    rule_code = serializers.CharField(source="rule.code", read_only=True)
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    building = serializers.IntegerField(source="household.unit.building_id", read_only=True)
    grid = serializers.IntegerField(source="household.unit.building.grid_id", read_only=True)
    room = serializers.CharField(source="household.room", read_only=True)

    class Meta:
        model = VisitTask
        fields = [
            "id",
            "rule",
            "rule_code",
            "rule_name",
            "household",
            "resident",
            "building",
            "grid",
            "room",
            "period",
            "period_start",
            "period_end",
            "due_on",
            "status",
            "assigned_member",
            "assigned_position",
            "assigned_level",
            "done_by",
            "updated_at",
        ]


# The columns VisitTaskSerializer writes, as a values() row (see _task_payload).
_TASK_ROW = (
    "id",
    "rule_id",
    "rule__code",
    "rule__name",
    "household_id",
    "resident_id",
    "household__unit__building_id",
    "household__unit__building__grid_id",
    "household__room",
    "period",
    "period_start",
    "period_end",
    "due_on",
    "status",
    "assigned_member_id",
    "assigned_position_id",
    "assigned_level",
    "done_by_id",
    "updated_at",
)


def _moment(value, tz) -> str | None:  # type: ignore[no-untyped-def]
    """A stored (aware) moment as DRF's DateTimeField writes it (ISO 8601 in the current time
    zone, UTC as ``Z``), the time zone looked up once per page instead of once per row."""
    if not value:
        return None
    out = value.astimezone(tz).isoformat()
    return out[:-6] + "Z" if out.endswith("+00:00") else out


def _task_payload(r: dict, tz=None) -> dict:  # type: ignore[no-untyped-def]
    """A task as VisitTaskSerializer writes it, from a :data:`_TASK_ROW` row
    (tests/test_request_cost_feed.py holds the two equal); ``tz``: the current time zone."""
    return {
        "id": r["id"],
        "rule": r["rule_id"],
        "rule_code": r["rule__code"],
        "rule_name": r["rule__name"],
        "household": r["household_id"],
        "resident": r["resident_id"],
        "building": r["household__unit__building_id"],
        "grid": r["household__unit__building__grid_id"],
        "room": r["household__room"],
        "period": r["period"],
        "period_start": r["period_start"].isoformat(),
        "period_end": r["period_end"].isoformat(),
        "due_on": r["due_on"].isoformat(),
        "status": r["status"],
        "assigned_member": r["assigned_member_id"],
        "assigned_position": r["assigned_position_id"],
        "assigned_level": r["assigned_level"],
        "done_by": r["done_by_id"],
        "updated_at": _moment(r["updated_at"], tz or timezone.get_current_timezone()),
    }


def _my_tasks(values: dict[str, int]) -> tuple:  # type: ignore[type-arg]
    """The tasks assigned to ``values["member"]``, as the list reads them (rows, counted)."""
    qs = VisitTask.objects.filter(assigned_member_id=values["member"]).order_by("due_on", "id")
    return qs.values(*_TASK_ROW), qs


#: the page of "my tasks" (?mine=1 and nothing else), its SQL built once per process and
#: prepared on the connection (issue 19)
MY_TASKS = PreparedPage(_my_tasks, "member")
_MINE_ONLY = frozenset({"mine", "page", "page_size", "format"})


def _prepared_mine(params) -> bool:  # type: ignore[no-untyped-def]
    """Whether a task list request is "my tasks" with no other filter (``mine`` true as
    TaskListQuerySerializer reads it)."""
    mine = params.get("mine")
    return (
        mine is not None
        and mine.lower() in serializers.BooleanField.TRUE_VALUES
        and _MINE_ONLY.issuperset(params.keys())
    )


class VisitTaskViewSet(viewsets.ReadOnlyModelViewSet):
    """Visit tasks (走访任务) in the caller's territory or assigned to them.

    Filters: ``status``, ``rule``, ``period`` (2026-11), ``assigned_member``, ``household``,
    ``mine=1`` (assigned to me), ``due_from`` / ``due_to`` (dates).
    """

    serializer_class = VisitTaskSerializer
    filterset_fields = ["status", "rule", "period", "assigned_member", "household"]

    @extend_schema(parameters=[TaskListQuerySerializer])
    def list(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        """A page written from plain rows (``values()``), the page and its count in one query,
        when the caller names none of the ``filterset_fields`` (a phone's "my tasks"): what
        the serializer writes, without model instances or fields built per request (issue
        19). With a filter, DRF's own path."""
        paginator = self.paginator
        if (
            isinstance(paginator, StandardPagination)
            and request.accepted_renderer.format == "json"
            and not any(name in request.query_params for name in self.filterset_fields)
        ):
            if _prepared_mine(request.query_params):  # no queryset built: the prepared page
                rows = paginator.paginate_prepared(MY_TASKS, {"member": request.user.pk}, request)
                if rows is not None:
                    tz = timezone.get_current_timezone()
                    return paginator.get_paginated_response([_task_payload(r, tz) for r in rows])
            qs = self.get_queryset()
            rows = paginator.paginate_values(qs.values(*_TASK_ROW), request, count_qs=qs)
            if rows is not None:
                tz = timezone.get_current_timezone()
                return paginator.get_paginated_response([_task_payload(r, tz) for r in rows])
        return super().list(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return VisitTask.objects.none()
        params = TaskListQuerySerializer.read(self.request.query_params)
        if params.get("mine"):
            # Assigned to me ⊆ visible to me (visible = in my territory OR assigned to me), so
            # the territory subquery adds nothing here; without it the query uses the
            # (assigned_member, status, due_on) index instead of scanning the territory.
            qs = VisitTask.objects.filter(assigned_member=self.request.user)
        else:
            qs = visible_tasks(self.request)
        # The serializer reads building_id and grid_id of the building, not its geometries.
        qs = qs.select_related("rule", "household__unit__building").defer(
            "household__unit__building__footprint", "household__unit__building__point"
        )
        if params.get("due_from"):
            qs = qs.filter(due_on__gte=params["due_from"])
        if params.get("due_to"):
            qs = qs.filter(due_on__lte=params["due_to"])
        return qs.order_by("due_on", "id")


# ---------------------------------------------------------------- visits
class VisitPhotoSerializer(serializers.ModelSerializer):
    url = FileURLField()  # the scoped download (api/attachments.py), never /media/

    class Meta:
        model = VisitPhoto
        fields = ["id", "url", "content_type", "size", "sha256", "exif_time"]


class VisitSerializer(serializers.ModelSerializer):
    """A visit. ``lon``/``lat``/``accuracy_m`` are null unless the caller made the visit or
    works at the street level (location tracks are sensitive). Neighbours (building/unit
    heads, property managers, owners' committees) see others' visits without ``purpose``,
    ``notes``, ``findings`` and ``participants_text``."""

    lon = serializers.SerializerMethodField()
    lat = serializers.SerializerMethodField()
    accuracy_m = serializers.SerializerMethodField()
    location_masked = serializers.SerializerMethodField()
    photos = VisitPhotoSerializer(many=True, read_only=True)
    participant_members = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Visit
        fields = [
            "id",
            "client_uuid",
            "member",
            "household",
            "resident",
            "task",
            "client_time",
            "server_time",
            "lon",
            "lat",
            "accuracy_m",
            "accuracy_grade",
            "location_source",
            "input_crs",
            "location_masked",
            "distance_m",
            "far_off",
            "purpose",
            "notes",
            "findings",
            "participant_members",
            "participants_text",
            "case_ids",
            "photos",
            "updated_at",
        ]

    def _shown(self, obj: Visit) -> bool:
        request = self.context.get("request")
        if request is None:
            return False
        return obj.member_id == request.user.id or sees_all_tracks(request)

    def get_lon(self, obj: Visit) -> float | None:
        return round(obj.location.x, 7) if obj.location and self._shown(obj) else None

    def get_lat(self, obj: Visit) -> float | None:
        return round(obj.location.y, 7) if obj.location and self._shown(obj) else None

    def get_accuracy_m(self, obj: Visit) -> float | None:
        return obj.accuracy_m if self._shown(obj) else None

    def get_location_masked(self, obj: Visit) -> bool:
        return obj.location is not None and not self._shown(obj)

    def to_representation(self, instance: Visit) -> dict:
        """Neighbours read others' visits without their words (notes, findings …)."""
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None:
            return data
        own = instance.member_id == request.user.id
        return services.present_visit(data, viewer(request).tier_of(instance), own)


class VisitCreatedSerializer(VisitSerializer):
    """The stored visit and what happened to it (schema of ``POST /visits/``)."""

    result = ItemResultSerializer(read_only=True)

    class Meta(VisitSerializer.Meta):
        fields = [*VisitSerializer.Meta.fields, "result"]


#: a visit's result states, in the batch summary's order (a conflict: same UUID, other content)
VISIT_STATES = ("accepted", "duplicate", "conflict", "rejected")


class VisitViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Visit log (走访记录). POST one visit (JSON with base64 photos, or multipart with
    ``photos`` files); POST ``batch/`` for offline uploads. Filters: ``household``,
    ``member``, ``far_off``, ``from`` / ``to`` (dates of the visit), ``client_uuid`` (one or
    more, comma-separated: which of my uploads arrived)."""

    serializer_class = VisitSerializer
    filterset_fields = ["household", "member", "far_off", "task"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Visit.objects.none()
        qs = visible_visits(self.request).prefetch_related("photos", "participant_members")
        params = VisitListQuerySerializer.read(self.request.query_params)
        if params.get("from"):
            qs = qs.filter(client_time__date__gte=params["from"])
        if params.get("to"):
            qs = qs.filter(client_time__date__lte=params["to"])
        if "client_uuid" in params:
            qs = qs.filter(client_uuid__in=params["client_uuid"])
        return qs

    @extend_schema(parameters=[VisitListQuerySerializer])
    def list(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        return super().list(request, *args, **kwargs)

    def _item_from_request(self, request) -> tuple[dict, list]:  # type: ignore[no-untyped-def]
        data = request.data
        files = []
        if hasattr(data, "getlist"):  # multipart / form
            files = request.FILES.getlist("photos")
            item = {k: data.get(k) for k in data if k != "photos"}
            if "participant_members" in data and len(data.getlist("participant_members")) > 1:
                item["participant_members"] = data.getlist("participant_members")
        elif isinstance(data, dict):
            item = dict(data)
        else:
            raise ValidationError({"non_field_errors": "a visit must be a JSON object"})
        return item, files

    @extend_schema(
        request={
            "application/json": VisitUploadSerializer,
            "multipart/form-data": VisitUploadMultipartSerializer,
        },
        responses={
            201: VisitCreatedSerializer,
            200: VisitCreatedSerializer,
            400: VisitRejectedSerializer,
            409: VisitConflictSerializer,
        },
    )
    def create(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        item, files = self._item_from_request(request)
        upload = (VisitUploadMultipartSerializer if files else VisitUploadSerializer)(
            context={"files": files}
        )
        (result,) = record_visits(
            request.user, validate_items([item], upload), request_scope(request)
        )
        if result.status == "rejected":
            exc = ValidationError(result.errors)  # field → [message], as everywhere
            return Response({**exc.detail, "code": result.code}, status=status.HTTP_400_BAD_REQUEST)
        if result.status == "conflict":
            return Response(
                {
                    "status": "conflict",
                    "code": result.code,
                    "id": result.id,
                    **(result.errors or {}),
                },
                status=status.HTTP_409_CONFLICT,
            )
        visit = Visit.objects.prefetch_related("photos", "participant_members").get(pk=result.id)
        body = VisitSerializer(visit, context={"request": request}).data
        body["result"] = result.as_dict()
        code = status.HTTP_201_CREATED if result.status == "accepted" else status.HTTP_200_OK
        return Response(body, status=code)

    @extend_schema(
        request=VisitBatchRequestSerializer,
        responses={200: VisitBatchResultSerializer},
        description='Offline upload: {"visits": [...]} with up to 500 items. Each item is '
        "accepted, duplicate (same UUID + same content), conflict (same UUID, other content) "
        "or rejected (errors name the field); one bad item never loses the others.",
    )
    @action(detail=False, methods=["post"], url_path="batch")
    def batch(self, request):  # type: ignore[no-untyped-def]
        # the envelope and the answer are the shared batch's (api/batch.py); the items are
        # judged and stored set-based (record_visits), not one savepoint per item
        raw = batch.read_items(
            request.data if isinstance(request.data, dict) else {},
            VisitBatchRequestSerializer,
            field="visits",
            limit=None,  # VisitsListField: at most MAX_BATCH (500)
        )
        results = record_visits(request.user, validate_items(raw), request_scope(request))
        return Response(batch.answer([r.as_dict() for r in results], VISIT_STATES))

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"photo": {"type": "string", "format": "binary"}},
            }
        },
        responses={201: VisitPhotoSerializer, 200: VisitPhotoSerializer},
    )
    @action(detail=True, methods=["post"], url_path="photos")
    def photos(self, request, pk=None):  # type: ignore[no-untyped-def]
        """Attach a photo (JPEG/PNG ≤ 5 MB) to one's own visit after the visit was synced."""
        visit = self.get_object()
        if visit.member_id != request.user.id:
            raise NotFound()
        upload = request.FILES.get("photo")
        if upload is None:
            raise ValidationError({"photo": "a file is required"})
        try:
            p = parse_photo(upload.read(), "photo")
        except ItemError as exc:
            raise ValidationError(exc.errors) from None
        existing = visit.photos.filter(sha256=p.sha256).first()
        if existing:
            return Response(VisitPhotoSerializer(existing).data, status=status.HTTP_200_OK)
        from django.contrib.gis.geos import Point
        from django.core.files.base import ContentFile

        photo = VisitPhoto(
            visit=visit,
            content_type=p.content_type,
            size=len(p.data),
            sha256=p.sha256,
            exif_point=Point(*p.exif_point, srid=4326) if p.exif_point else None,
            exif_time=p.exif_time,
        )
        ext = "jpg" if p.content_type == "image/jpeg" else "png"
        photo.image.save(f"{visit.client_uuid}-{p.sha256[:8]}.{ext}", ContentFile(p.data))
        return Response(VisitPhotoSerializer(photo).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[RouteQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    @action(detail=False, methods=["get"], url_path="route")
    def route(self, request):  # type: ignore[no-untyped-def]
        """Today's due visits (open or overdue, assigned to me) in walking order: stops per
        building, total length in metres and the path as a GeoJSON LineString."""
        params = RouteQuerySerializer.read(request.query_params)
        day = params.get("date") or services.local_today()
        lon, lat, crs = params.get("start_lon"), params.get("start_lat"), params["crs"]
        from geo.crs import from_wgs84, to_wgs84
        from geo.crs import transform_geojson_geometry as transform_geometry

        start = to_wgs84(lon, lat, crs) if lon is not None and lat is not None else None
        out = services.todays_route(request.user, day, start)
        if crs != "wgs84":  # the answer in the caller's coordinates too
            for point in [out.get("start"), *out.get("stops", [])]:
                if point:
                    point["lon"], point["lat"] = from_wgs84(point["lon"], point["lat"], crs)
            path = out.get("path")
            if path and path.get("type") == "Feature" and path.get("geometry"):
                path["geometry"] = transform_geometry(path["geometry"], "wgs84", crs)
            elif path and path.get("type") != "Feature":
                out["path"] = transform_geometry(path, "wgs84", crs)
        out["crs"] = crs
        return Response(out)

    @extend_schema(parameters=[CoverageQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    @action(detail=False, methods=["get"], url_path="coverage")
    def coverage(self, request):  # type: ignore[no-untyped-def]
        """Coverage per grid or member for tasks due in [from, to]: due, done, open, overdue,
        missed, flagged (done by a far-off visit), rate = done ÷ due."""
        params = CoverageQuerySerializer.read(request.query_params)
        d_from, d_to, group = params["from"], params["to"], params["group"]
        rows = services.coverage(
            d_from, d_to, group=group, scope=request_scope(request), member=request.user
        )
        return Response({"from": d_from, "to": d_to, "group": group, "results": rows})


# ---------------------------------------------------------------- sync
# The change feed's answer (gridsvc.visits.sync.changes_since), for the schema: docs/sync.md.
def _ids_field(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=serializers.IntegerField(), help_text=help_text)


class FeedHouseholdSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    unit = serializers.IntegerField()
    unit_number = serializers.CharField(allow_blank=True)
    building = serializers.IntegerField()
    building_name = serializers.CharField(allow_blank=True)
    grid = serializers.IntegerField(allow_null=True)
    room = serializers.CharField(allow_blank=True)
    floor = serializers.IntegerField()
    tenure = serializers.CharField(required=False, help_text="staff only (absent for neighbours)")
    head_name = serializers.CharField(allow_null=True, allow_blank=True)
    resident_count = serializers.IntegerField()
    residents = _ids_field("ids of all its residents now: drop the phone's others")


class FeedResidentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    household = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_blank=True)
    gender = serializers.CharField(allow_blank=True)
    birth_year = serializers.IntegerField(allow_null=True, required=False)
    id_number = serializers.CharField(allow_null=True, allow_blank=True, help_text="masked")
    phone = serializers.CharField(allow_null=True, allow_blank=True, help_text="masked")
    ethnicity = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="masked; absent for neighbours"
    )
    ethnicity_name = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    residency = serializers.CharField(allow_blank=True)
    relation_to_head = serializers.CharField(allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField())
    masked = serializers.ListField(child=serializers.CharField())


class FeedTaskSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rule = serializers.CharField()
    rule_name = serializers.CharField()
    household = serializers.IntegerField()
    resident = serializers.IntegerField(allow_null=True)
    period = serializers.CharField()
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    due_on = serializers.DateField()
    status = serializers.ChoiceField(choices=VisitTask.Status.choices)
    assigned_member = serializers.IntegerField(allow_null=True)
    done_by = serializers.IntegerField(allow_null=True)
    updated_at = serializers.DateTimeField()


class FeedCaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    kind = serializers.CharField()
    title = serializers.CharField()
    category = serializers.IntegerField()
    priority = serializers.IntegerField()
    status = serializers.CharField()
    level = serializers.CharField(allow_blank=True)
    household = serializers.IntegerField(allow_null=True)
    unit = serializers.IntegerField(allow_null=True)
    building = serializers.IntegerField(allow_null=True)
    compound = serializers.IntegerField(allow_null=True)
    grid = serializers.IntegerField(allow_null=True)
    community = serializers.IntegerField(allow_null=True)
    street = serializers.IntegerField(allow_null=True)
    lon = serializers.FloatField(help_text="WGS84")
    lat = serializers.FloatField(help_text="WGS84")
    handler = serializers.IntegerField(allow_null=True)
    handler_name = serializers.CharField(allow_null=True)
    mine = serializers.BooleanField(help_text="the member handles it")
    department = serializers.IntegerField(allow_null=True)
    department_name = serializers.CharField(allow_null=True)
    reported_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField(allow_null=True)
    due_stage = serializers.CharField(allow_blank=True)
    overdue = serializers.BooleanField()
    card = serializers.CharField(allow_blank=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()


class FeedInboxSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    title = serializers.CharField()
    body = serializers.CharField(allow_blank=True)
    object_type = serializers.CharField(allow_blank=True)
    object_id = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    read = serializers.BooleanField()
    read_at = serializers.DateTimeField(allow_null=True)


class FeedPurgeSerializer(serializers.Serializer):
    households = _ids_field("delete these households and everything of them on the phone")
    residents = _ids_field("delete these residents")
    tasks = _ids_field("delete these tasks")
    cases = _ids_field("delete these cases")


class FeedPackageSerializer(serializers.Serializer):
    grid = serializers.IntegerField()
    code = serializers.CharField()
    crs = serializers.CharField()
    etag = serializers.CharField(help_text="fetch the package again when it differs from yours")
    size = serializers.IntegerField()
    built_at = serializers.DateTimeField(allow_null=True)
    stale = serializers.BooleanField(help_text="the grid changed: a rebuild is under way")
    download = serializers.CharField()


class FeedSerializer(serializers.Serializer):
    cursor = serializers.CharField(help_text="opaque; send as since= next time")
    has_more = serializers.BooleanField(help_text="call again at once with the new cursor")
    territory_changed = serializers.BooleanField(
        help_text="this page belongs to a territory change (hand-over, post, boundary)"
    )
    households = FeedHouseholdSerializer(many=True)
    residents = FeedResidentSerializer(many=True)
    tasks = FeedTaskSerializer(many=True)
    cases = FeedCaseSerializer(many=True)
    cases_available = serializers.BooleanField()
    inbox = FeedInboxSerializer(many=True)
    purge = FeedPurgeSerializer()
    offline_packages = FeedPackageSerializer(many=True)


# a cursor as gridsvc.visits.sync.encode_cursor writes it (base64url body, 32 hex digits)
_CURSOR = re.compile(r"[A-Za-z0-9_-]+\.[0-9a-f]{32}")


def _feed_params(query) -> dict:  # type: ignore[no-untyped-def]
    """The feed's query as FeedQuerySerializer reads it; a poll naming only a well-formed
    cursor (what a phone sends all day) read without building the serializer."""
    if not query:  # a first sync
        return {}
    if len(query) == 1:
        since = query.get("since")
        if since and _CURSOR.fullmatch(since):
            return {"since": since}
    return FeedQuerySerializer.read(query)


class SyncChangesView(APIView):
    """Change feed for the phone (docs/sync.md): a first sync without ``since`` (everything
    the phone needs, paged), then what changed in my territory since ``since`` (an opaque
    cursor from the previous answer), with ``purge`` lists after deletions and territory
    changes (hand-over, a post left or new, a building moved to another grid)."""

    _probe: Rider | None = None
    _probed_since: str | None = None

    def initial(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        # a phone's poll (JWT, only a well-formed cursor) or first sync (JWT, no query): the
        # feed's probe rides with the caller's query (gridsvc.accounts.authentication.Rider),
        # so a quiet poll is one round trip, a first sync's first page two; its row is read
        # only after authentication passed and the cursor is found to be the caller's
        # (changes_since)
        query = request.query_params
        if request.META.get("HTTP_AUTHORIZATION") and len(query) <= 1:
            since = query.get("since")
            if not query or (since and _CURSOR.fullmatch(since)):
                statement = probe_rider_statement(since)
                if statement is not None:
                    self._probed_since = since or ""
                    self._probe = ride_with_caller(request, *statement)
        super().initial(request, *args, **kwargs)

    @extend_schema(parameters=[FeedQuerySerializer], responses={200: FeedSerializer})
    def get(self, request):  # type: ignore[no-untyped-def]
        params = _feed_params(request.query_params)
        limit = params.get("limit") or FEED_LIMIT
        since = params.get("since")
        rider = self._probe
        row = None
        if rider is not None and rider.ran and (since or "") == self._probed_since:
            row = rider.row  # None for a superuser: their feed reads everything
        try:
            body = changes_since(request.user, request_scope(request), since, limit, row)
        except BadCursor as exc:
            raise ValidationError({"since": str(exc)}) from None
        if (
            type(request.accepted_renderer) is JSONRenderer
            and request.accepted_media_type == JSONRenderer.media_type
        ):
            # plain JSON asked (a phone's every poll): the bytes the API's renderer writes,
            # without DRF's rendering (issue 19: the quiet poll's Python)
            content = json_bytes(body)
            if content is not None:
                resp = HttpResponse(content, content_type=JSONRenderer.media_type)
                resp.data = body  # as a Response has it (tests read it)
                return resp
        return Response(body)


class SyncEstimateView(APIView):
    """What a member's phone will hold (counts, approximate bytes), before it is handed out.
    ``?member=<id>`` for someone whose positions are in the staff part of my territory
    (default: me; neighbours: only themselves)."""

    @extend_schema(parameters=[EstimateQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):  # type: ignore[no-untyped-def]
        member = request.user
        member_id = EstimateQuerySerializer.read(request.query_params).get("member")
        if member_id is not None:
            if member_id != request.user.id:
                visible = services.work_record_positions(
                    request_scope(request),
                    request.user,
                    Position.objects.held_at().filter(member_id=member_id),
                )
                if not visible.exists():
                    raise ValidationError({"member": "no such member in your territory"})
                member = get_user_model().objects.get(pk=member_id)
        return Response(phone_estimate(member, scope_for(member)))


# ---------------------------------------------------------------- 一日一报
def _expected_report_version(request) -> int | None:  # type: ignore[no-untyped-def]
    """The report version the phone last saw: ``If-Match`` (its ETag) or ``version`` in the
    body; None when neither (merge by item id)."""
    return expected_version(request, "a daily report")


class DailyReportSerializer(serializers.ModelSerializer):
    """A daily report. Each item is ``{"id", "category", "description", …}``: send the phone's
    own item ``id`` (≤ 64 characters) or let the server give one. ``version`` (and the
    ``ETag``) is what ``If-Match`` names to replace the report; without it, an upload is merged
    by item id (docs/sync.md, Conflicts)."""

    member_name = serializers.CharField(source="member.__str__", read_only=True)
    date = serializers.DateField(required=False)
    items = serializers.ListField(
        child=serializers.DictField(), required=False, max_length=50, default=list
    )

    class Meta:
        model = DailyReport
        fields = [
            "id",
            "member",
            "member_name",
            "date",
            "nothing_abnormal",
            "items",
            "version",
            "updated_at",
        ]
        read_only_fields = ["member", "version"]
        validators: list = []  # one per member per day: POST updates today's report

    def validate_date(self, value: date) -> date:
        today = services.local_today()
        if value > today:
            raise serializers.ValidationError("cannot report for a future day")
        if value < today - timedelta(days=7):
            raise serializers.ValidationError("reports can be sent up to 7 days late")
        return value

    def validate_items(self, value: list) -> list:
        for i, item in enumerate(value):
            if not isinstance(item.get("description", ""), str) or not item.get("category"):
                raise serializers.ValidationError(f"item {i}: category and description")
            item_id = item.get("id")
            if item_id not in (None, "") and (
                isinstance(item_id, bool)
                or not isinstance(item_id, str | int)
                or not 1 <= len(str(item_id)) <= 64
            ):
                raise serializers.ValidationError(f"item {i}: id is a string of 1–64 characters")
        ids = [str(item["id"]) for item in value if item.get("id") not in (None, "")]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError("item ids must be unique")
        return value

    def validate(self, attrs):  # type: ignore[no-untyped-def]
        if attrs.get("nothing_abnormal", True) is False and not attrs.get("items"):
            raise serializers.ValidationError({"items": "list the items, or nothing_abnormal"})
        if attrs.get("items") and attrs.get("nothing_abnormal", True):
            attrs["nothing_abnormal"] = False
        return attrs


class StaleDailyReportSerializer(StaleReportSerializer):
    """412 on a daily report: the server's copy in ``current`` (schema only)."""

    current = DailyReportSerializer(help_text="the report as the server has it")


class DailyReportViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """一日一报: POST my report for today (or ``date``; sending again merges by item id, or
    replaces it with ``If-Match``, see :func:`gridsvc.visits.models.save_daily_report`); GET lists
    mine and those of members holding positions in my territory (``?date=``, ``?member=``).
    Neighbours (building/unit heads, property managers, owners' committees) read only their
    own: grid members' and cadres' reports are for staff (``services.work_record_positions``)."""

    serializer_class = DailyReportSerializer
    filterset_fields = ["date", "member", "nothing_abnormal"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return DailyReport.objects.none()
        scope = request_scope(self.request)
        qs = DailyReport.objects.select_related("member")
        if scope.everything:
            return qs
        readable = services.work_record_positions(scope, self.request.user, Position.objects.all())
        members = readable.values("member_id")
        return qs.filter(Q(member=self.request.user) | Q(member_id__in=members))

    def retrieve(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        report = self.get_object()
        return Response(self.get_serializer(report).data, headers={"ETag": report.etag})

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "If-Match",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="the report's ETag: replace it (412 with the server's copy if it "
                "changed); without it the upload is merged by item id",
            )
        ],
        responses={
            200: DailyReportSerializer,
            201: DailyReportSerializer,
            412: StaleDailyReportSerializer,
        },
    )
    def create(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Send my report for ``date`` (default today). Never erases what another device sent:
        without ``If-Match`` (or ``version``) items are merged by ``id``; with it the report is
        replaced if nobody changed it meanwhile, else 412 with the server's copy."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        day = data.get("date") or services.local_today()
        try:
            report, created = save_daily_report(
                request.user,
                day,
                data.get("nothing_abnormal", True),
                data.get("items", []),
                _expected_report_version(request),
            )
        except StaleDailyReport as exc:
            current = exc.current
            return Response(
                {
                    "If-Match": [exc.message],
                    "detail": exc.message,
                    "code": "stale_version",
                    "current_version": current.version,
                    "current": self.get_serializer(current).data,
                },
                status=status.HTTP_412_PRECONDITION_FAILED,
                headers={"ETag": current.etag},
            )
        return Response(
            self.get_serializer(report).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers={"ETag": report.etag},
        )

    @extend_schema(parameters=[DayQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    @action(detail=False, methods=["get"], url_path="missing")
    def missing(self, request):  # type: ignore[no-untyped-def]
        """Members with field positions (grid members, cadres, building and unit heads) in my
        territory who have not reported on ``date`` (default today)."""
        day = DayQuerySerializer.read(request.query_params).get("date") or services.local_today()
        from gridsvc.supervision.chase import missing_reports  # + grid, role, contact, chased

        rows = missing_reports(request_scope(request), day, request.user)
        return Response({"date": day, "count": len(rows), "results": rows})
