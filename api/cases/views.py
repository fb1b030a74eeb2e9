"""Cases 案件 and what hangs off them: categories, departments, the case list/detail/report,
workflow actions, exception requests, follow-ups, mediation, attachments, the inbox."""

from __future__ import annotations

from typing import Any

from django.contrib.gis.geos import Point
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from api.files import checked_upload, file_url
from api.pagination import PreparedPage, StandardPagination
from api.schema import IllegalActionSerializer, StaleCaseSerializer
from gridsvc.cases import services
from gridsvc.cases.figures import case_figures as figures
from gridsvc.cases.models import (
    Attachment,
    Case,
    CaseEvent,
    CaseRequest,
    Category,
    Department,
    FollowUp,
    MediationRecord,
)
from gridsvc.cases.services.reporting import ReadAhead, check_report, may_draw_ahead
from gridsvc.territory.models import Building, Compound, Household, Unit
from gridsvc.uploads import Upload

from .filters import CaseFilter, CaseRequestFilter, FollowUpFilter, InboxFilter
from .inputs import (
    MAX_PHOTO_BYTES,
    category_and_place,
    category_from,
    expected_version,
    point_from,
)
from .scope import case_queryset, in_scope, resolve_action_ids, visible_among
from .serializers import (
    ACTION_BODY,
    CaseAttachmentUploadSerializer,
    CaseFeatureCollectionSerializer,
    CaseSerializer,
    CategorySerializer,
    DecideRequestSerializer,
    DepartmentSerializer,
    EventSerializer,
    FollowUpSerializer,
    InboxSerializer,
    MediationSerializer,
    ReportSerializer,
    RequestSerializer,
    case_rows,
    case_rows_payload,
    chain_holder_names,
    check_action_times,
)


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


class GeoJSONRenderer(JSONRenderer):
    """``?format=geojson`` (or ``Accept: application/geo+json``) on the case list."""

    media_type = "application/geo+json"
    format = "geojson"


_TRUE = ("1", "true")  # what CaseFilter's ``mine`` reads as true (lower-cased)
# "my cases" as a phone and the web page ask for it: ?mine=1, perhaps a page, its size, a CRS
_MINE_ONLY = frozenset({"mine", "page", "page_size", "crs", "format"})


def _my_cases(values: dict[str, int]) -> tuple:  # type: ignore[type-arg]
    """The cases ``values["member"]`` handles, as the list reads them (rows, counted)."""
    qs = Case.objects.filter(handler_id=values["member"])
    return case_rows(qs), qs


#: the page of "my cases" (?mine=1 and nothing else that filters or orders), its SQL built
#: once per process and prepared on the connection (issue 19)
MY_CASES = PreparedPage(_my_cases, "member")


def _mine_only(params) -> bool:  # type: ignore[no-untyped-def]
    """Whether a list request is "my cases" with no other filter or ordering."""
    mine = params.get("mine")
    return mine is not None and mine.lower() in _TRUE and _MINE_ONLY.issuperset(params.keys())


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
        mine = self.request.query_params.get("mine")
        if self.action == "list" and mine is not None and mine.lower() in _TRUE:
            # The cases I handle ⊆ the cases I may see (my territory's OR handled or reported
            # by me): without the territory subquery the list is read by the handler index.
            # (CaseFilter's ``mine`` narrows to the same rows.)
            return Case.objects.select_related("category__parent", "handler", "department").filter(
                handler=self.request.user
            )
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
        """The page and its count in one query (``StandardPagination.paginate_values``), of
        only the columns a case is written from, as plain rows (the category's conditions,
        the handler's and department's names joined), written by ``case_rows_payload`` as
        CaseSerializer writes them (issue 19: a page built a model instance and ran ~60
        serializer fields per case)."""
        paginator = self.paginator
        if request.accepted_renderer.format == "json" and isinstance(paginator, StandardPagination):
            crs = self.get_serializer_context()["crs"]
            if _mine_only(request.query_params):  # no queryset built: the prepared page
                page = paginator.paginate_prepared(MY_CASES, {"member": request.user.pk}, request)
                if page is not None:
                    return paginator.get_paginated_response(case_rows_payload(page, request, crs))
            qs = self.filter_queryset(self.get_queryset())
            page = paginator.paginate_values(case_rows(qs), request, count_qs=qs)
            if page is not None:
                return paginator.get_paginated_response(case_rows_payload(page, request, crs))
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
        request={
            "application/json": ReportSerializer,
            "multipart/form-data": ReportSerializer,
        },
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
        category, point, read = _category_and_point(request, v)
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
        # its refusals answered before the transaction: inside one (the Idempotency-Key's),
        # the report's block then needs no savepoint of its own (two statements fewer) — a
        # failure in it fails the request (500) and the whole transaction
        check_report(category, point, refs.values(), v["on_the_spot"], v.get("outcome", ""))
        with transaction.atomic(savepoint=False):
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
                read=read,
                **refs,
            )
            for role, ups in photos.items():
                for up in ups:
                    _attach(rep.case, up, role, request.user)
        ctx = self.get_serializer_context()
        ctx["handler_names"] = chain_holder_names(rep.case)  # the handler not loaded again
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
                "events": EventSerializer(
                    events, many=True, context={"request": request, "case": case}
                ).data,
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
        check_action_times(name, data)  # due_at: a date-time a client may send (400)
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
        responses={
            200: CaseSerializer,
            409: IllegalActionSerializer,
            412: StaleCaseSerializer,
        },
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
            return Response(MediationSerializer(record, context={"request": request}).data)
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
        answer = MediationSerializer(saved, context={"request": request, "clear": True})
        return Response(answer.data, status=200 if record else 201)

    @extend_schema(
        request={"multipart/form-data": CaseAttachmentUploadSerializer},
        responses={201: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["post"])
    def attachments(self, request, pk=None):  # type: ignore[no-untyped-def]
        """Attach a photo or file to the case (recorded as an event)."""
        case = self.get_object()
        ser = CaseAttachmentUploadSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        f, role = ser.validated_data["file"], ser.validated_data["role"]
        # by content: images, and PDF for role "file" (gridsvc.uploads)
        up = checked_upload(f, "file", max_bytes=MAX_PHOTO_BYTES, documents=role == "file")
        with transaction.atomic():
            event = services.record(case, "attachment", request.user, from_status=case.status)
            att = _attach(case, up, role, request.user, event)
        body = {
            "id": att.pk,
            "role": att.role,
            "size": att.size,
            "content_type": att.content_type,
        }
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
    filterset_class = CaseRequestFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return CaseRequest.objects.none()
        return CaseRequest.objects.filter(case__in=case_queryset(self.request).values("pk"))

    @extend_schema(request=DecideRequestSerializer, responses=RequestSerializer)
    @action(detail=True, methods=["post"], filter_backends=[])
    def decide(self, request, pk=None):  # type: ignore[no-untyped-def]
        req = get_object_or_404(self.get_queryset(), pk=pk)
        ser = DecideRequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        v = ser.validated_data
        req = services.decide_request(req.pk, request.user, v["approve"], v["note"])
        return Response(RequestSerializer(req).data)


class FollowUpViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Return visits 回访 assigned to you (``?all=1``: every one in your territory)."""

    serializer_class = FollowUpSerializer
    filterset_class = FollowUpFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return FollowUp.objects.none()
        return FollowUp.objects.select_related("case").filter(
            case__in=case_queryset(self.request).values("pk")
        )


class InboxViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your inbox 消息: new cases, cards, escalations, send-back results, decisions
    (``?unread=1``). The phone also gets them through the change feed."""

    serializer_class = InboxSerializer
    filterset_class = InboxFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        from gridsvc.supervision.models import InboxMessage

        if getattr(self, "swagger_fake_view", False):
            return InboxMessage.objects.none()
        return InboxMessage.objects.filter(member=self.request.user)

    @extend_schema(request=None, responses=InboxSerializer)
    @action(detail=True, methods=["post"], filter_backends=[])
    def read(self, request, pk=None):  # type: ignore[no-untyped-def]
        msg = get_object_or_404(self.get_queryset(), pk=pk)
        if msg.read_at is None:
            msg.read_at = timezone.now()
            msg.save(update_fields=["read_at"])
        return Response(InboxSerializer(msg).data)


_REFS = ("household", "unit", "building", "compound")


def _category_and_point(
    request: Request, v: dict[str, Any]
) -> tuple[Category, Point | None, ReadAhead | None]:
    """A report's category and point, refused as before (the category first); for a point
    alone (no household/unit/building/compound), read with what its report reads next in one
    round trip (:func:`category_and_place`, issue 19)."""
    data = request.data if isinstance(request.data, dict) else v
    if any(v.get(name) is not None for name in _REFS):
        category = category_from(v["category"])
        return category, point_from(data, v["crs"]), None
    try:
        point = point_from(data, v["crs"])
    except ValidationError:
        category_from(v["category"])  # an unknown category is the refusal, as before
        raise
    if point is None:
        return category_from(v["category"]), None, None
    draw = may_draw_ahead(v["on_the_spot"], v.get("flags", []), bool(request.FILES))
    category, read = category_and_place(v["category"], point, timezone.now(), draw)
    return category, point, read
