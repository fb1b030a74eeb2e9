"""The street dispatch desk: the queue (unrouted, overdue, flagged) and bulk actions."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from gridsvc.cases import services
from gridsvc.cases.models import (
    Case,
)

from .scope import case_queryset, resolve_action_ids
from .serializers import CaseSerializer


class DispatchQueueView(APIView):
    """The street's dispatch queue: ``kind`` = unrouted | overdue | flagged | all."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind",
                str,
                enum=["all", "unrouted", "overdue", "flagged"],
                required=False,
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
        if name not in (
            "assign",
            "reassign",
            "escalate",
            "transfer",
            "set_deadline",
            "supervise",
        ):
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
