"""The street dispatch desk: the queue (unrouted, overdue, flagged), bulk actions and a case's
dispatch candidates (派遣候选人)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from gridsvc.cases import services
from gridsvc.cases.models import (
    Case,
)
from gridsvc.cases.services.candidates import dispatch_candidates

from .filters import DispatchQueueFilter
from .scope import case_queryset, resolve_action_ids
from .serializers import (
    BULK_ACTIONS,
    BulkActionSerializer,
    CaseSerializer,
)


class DispatchQueueView(GenericAPIView):
    """The street's dispatch queue: ``kind`` = unrouted | overdue | flagged | all, narrowed by
    the case list's filters (``q``, ``grid``, ``community``, ``category``, ``ordering`` …);
    at most 200 cases."""

    serializer_class = CaseSerializer
    filterset_class = DispatchQueueFilter
    pagination_class = None

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Case.objects.none()
        return case_queryset(self.request)

    @extend_schema(
        filters=True,
        responses=inline_serializer(
            "DispatchQueue",
            {"kind": serializers.CharField(), "results": CaseSerializer(many=True)},
        ),
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        qs = self.filter_queryset(self.get_queryset())[:200]  # kind checked by the filter set
        return Response(
            {
                "kind": request.query_params.get("kind") or "all",
                "results": self.get_serializer(qs, many=True).data,
            }
        )


class BulkActionView(APIView):
    """Apply one action to several cases: ``{"ids": [...], "versions": {id: version},
    ...action fields}``. Each case is changed in its own transaction; with ``versions`` a case
    changed since the dispatcher saw it is left alone (412 for that case, like If-Match); the
    answer says per case what happened."""

    @extend_schema(
        request=BulkActionSerializer,
        parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH, enum=BULK_ACTIONS)],
        responses={200: OpenApiTypes.OBJECT},
    )
    def post(self, request, name: str):  # type: ignore[no-untyped-def]
        if name not in BULK_ACTIONS:
            raise ValidationError({"action": f"one of {', '.join(BULK_ACTIONS)}"})
        name = "assign" if name == "reassign" else name
        ser = BulkActionSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        ids = ser.validated_data["ids"]
        versions = ser.validated_data.get("versions") or {}
        note = ser.validated_data.get("note", "")
        # the action's fields go to the rules as sent (each id resolved through the scope)
        body = request.data if isinstance(request.data, dict) else {}
        data = {k: v for k, v in body.items() if k not in ("ids", "note", "versions")}
        visible = set(case_queryset(request).filter(pk__in=ids).values_list("pk", flat=True))
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
                    note=note,
                    data=case_data,
                )
                results.append({"id": case_id, "ok": True, "status": case.status})
            except services.CaseError as exc:
                results.append(
                    {
                        "id": case_id,
                        "ok": False,
                        "status": exc.status_code,
                        exc.field: exc.message,
                    }
                )
        code = 200 if any(r["ok"] for r in results) else 400
        if all(r.get("status") == 404 for r in results):
            code = 404
        return Response({"action": name, "results": results}, status=code)


class CandidateSerializer(serializers.Serializer):
    member = serializers.IntegerField()
    name = serializers.CharField()
    role = serializers.CharField(help_text="post type (unit_head … street_dispatcher, mediator)")
    role_label = serializers.CharField(help_text="岗位名称")
    level = serializers.CharField(help_text="the chain level they would handle the case at")
    level_label = serializers.CharField()
    grid = serializers.IntegerField(allow_null=True, help_text="the grid they serve in")
    grid_name = serializers.CharField(allow_null=True)
    open_cases = serializers.IntegerField(help_text="open cases they handle now (whole street)")
    contact = serializers.CharField(
        allow_null=True, help_text="work phone; null for neighbour-tier callers or when none"
    )
    on_leave = serializers.BooleanField()
    reason = serializers.CharField(help_text="why they stand where they do")


class CaseCandidatesView(APIView):
    """Who this case can be dispatched to, best first: the level routing starts the case's
    category at (a fire hazard: the property manager), then up the chain, then below; people
    on leave last; the current handler left out (:mod:`gridsvc.cases.services.candidates`).
    A case the caller cannot see is 404."""

    @extend_schema(responses=CandidateSerializer(many=True))
    def get(self, request, pk: int):  # type: ignore[no-untyped-def]
        case = case_queryset(request).filter(pk=pk).first()
        if case is None:
            raise NotFound("no such case")
        rows = dispatch_candidates(case, request.user)
        return Response(CandidateSerializer(rows, many=True).data)
